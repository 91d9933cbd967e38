//! Workspaces, tenants, users and memberships: parsed at the edge, written
//! with an audit entry in the same transaction.

use tenantatlas_domain::FieldError;
use tenantatlas_domain::access::{Capability, Membership, Role, TenantScope};
use tenantatlas_domain::directory::{Actor, AuditEntry, AuditRecord, Member, MembershipWrite, Tenant, User, Workspace};
use tenantatlas_domain::ids::{TenantId, UserId, WorkspaceId};
use tenantatlas_domain::names::{Email, Password, ProviderSpec, TenantName, WorkspaceName};

use crate::error::{EngineError, Result};
use crate::{Engine, password};

impl Engine {
    /// Creates a workspace.
    pub async fn create_workspace(&self, name: &WorkspaceName, actor: Actor) -> Result<Workspace> {
        Ok(self.store().create_workspace(name.as_str(), actor, self.now()).await?)
    }

    /// A workspace by id or name.
    pub async fn resolve_workspace(&self, key: &str) -> Result<Workspace> {
        self.store()
            .find_workspace(key)
            .await?
            .ok_or(EngineError::NotFound("workspace"))
    }

    /// Adds a tenant to a workspace.
    pub async fn add_tenant(
        &self,
        workspace: WorkspaceId,
        name: &TenantName,
        provider: Option<&ProviderSpec>,
        actor: Actor,
    ) -> Result<Tenant> {
        let spec = provider.map(ProviderSpec::to_spec_string);
        Ok(self
            .store()
            .add_tenant(workspace, name.as_str(), spec.as_deref(), actor, self.now())
            .await?)
    }

    /// A tenant by id or name (within `workspace` when given). A name that
    /// several workspaces use is ambiguous.
    pub async fn resolve_tenant(&self, key: &str, workspace: Option<WorkspaceId>) -> Result<Tenant> {
        let mut found = self.store().find_tenants(key, workspace).await?;
        match found.len() {
            0 => Err(EngineError::NotFound("tenant")),
            1 => Ok(found.remove(0)),
            _ => Err(FieldError::new(
                "tenant",
                "this name is used in several workspaces; give the tenant's id or its workspace",
            )
            .into()),
        }
    }

    /// Adds a user with an Argon2id hash of `password`.
    pub async fn add_user(
        &self,
        email: &Email,
        password: &Password,
        platform_operator: bool,
        actor: Actor,
    ) -> Result<User> {
        let password = password.clone();
        let hash = self
            .hashing(move || password::hash(&password))
            .await?
            .map_err(|_| EngineError::Internal("password hashing failed".into()))?;
        Ok(self
            .store()
            .add_user(email.as_str(), &hash, platform_operator, actor, self.now())
            .await?)
    }

    /// A user by id or e-mail address.
    pub async fn resolve_user(&self, key: &str) -> Result<User> {
        self.store().find_user(key).await?.ok_or(EngineError::NotFound("user"))
    }

    /// Creates or replaces a membership. `tenants`: `None` entitles the
    /// member to every tenant of the workspace.
    pub async fn put_member(
        &self,
        workspace: &Workspace,
        user: &User,
        role: Role,
        tenants: Option<Vec<Tenant>>,
        actor: Actor,
    ) -> Result<Membership> {
        if let Some(t) = tenants.iter().flatten().find(|t| t.workspace_id != workspace.id) {
            return Err(FieldError::new("tenant", format!("{:?} is not a tenant of this workspace", t.name)).into());
        }
        let write = MembershipWrite {
            workspace_id: workspace.id,
            user_id: user.id,
            role,
            tenants: tenants.map(|ts| ts.iter().map(|t| t.id).collect()),
        };
        self.store().put_membership(&write, actor, self.now()).await?;
        self.store()
            .membership(user.id, workspace.id)
            .await?
            .ok_or_else(|| EngineError::Internal("membership vanished after writing it".into()))
    }

    /// The members of a workspace, by e-mail. A user needs
    /// `members.manage` there; the server command line (`None`) may.
    pub async fn members(&self, who: Option<&User>, workspace: WorkspaceId) -> Result<Vec<Member>> {
        self.may_manage_members(who, workspace).await?;
        let mut members = self.store().members(workspace).await?;
        members.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(members)
    }

    /// Changes a member's role, keeping their tenant entitlement. A
    /// workspace keeps at least one owner.
    pub async fn change_role(
        &self,
        who: Option<&User>,
        workspace: WorkspaceId,
        user: UserId,
        role: Role,
    ) -> Result<Membership> {
        let current = self.changing_member(who, workspace, user).await?;
        let write = MembershipWrite {
            workspace_id: workspace,
            user_id: user,
            role,
            tenants: match current.tenants {
                TenantScope::All => None,
                TenantScope::Only(ids) => Some(ids),
            },
        };
        self.store().put_membership(&write, actor_of(who), self.now()).await?;
        self.store()
            .membership(user, workspace)
            .await?
            .ok_or(EngineError::NotFound("member"))
    }

    /// Ends a membership (the user loses the workspace at their next
    /// request). A workspace keeps at least one owner.
    pub async fn remove_member(&self, who: Option<&User>, workspace: WorkspaceId, user: UserId) -> Result<()> {
        self.changing_member(who, workspace, user).await?;
        if !self
            .store()
            .remove_membership(workspace, user, actor_of(who), self.now())
            .await?
        {
            return Err(EngineError::NotFound("member"));
        }
        Ok(())
    }

    /// The membership `who` is about to change, once `who` may manage
    /// members. (That the workspace keeps an owner is checked by the
    /// write itself, inside its transaction.)
    async fn changing_member(&self, who: Option<&User>, workspace: WorkspaceId, user: UserId) -> Result<Membership> {
        self.may_manage_members(who, workspace).await?;
        self.store()
            .membership(user, workspace)
            .await?
            .ok_or(EngineError::NotFound("member"))
    }

    async fn may_manage_members(&self, who: Option<&User>, workspace: WorkspaceId) -> Result<()> {
        let Some(u) = who else { return Ok(()) };
        match self.store().membership(u.id, workspace).await? {
            None => Err(EngineError::NotFound("workspace")),
            Some(m) if !m.role.has(Capability::ManageMembers) => Err(EngineError::Forbidden(Capability::ManageMembers)),
            Some(_) => Ok(()),
        }
    }

    /// Every workspace, by name (server command line, system plane).
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        Ok(self.store().list_workspaces().await?)
    }

    /// A workspace by id or name, if it exists.
    pub async fn find_workspace(&self, key: &str) -> Result<Option<Workspace>> {
        Ok(self.store().find_workspace(key).await?)
    }

    /// The tenants of a workspace, by name.
    pub async fn list_tenants(&self, workspace: WorkspaceId) -> Result<Vec<Tenant>> {
        Ok(self.store().list_tenants(workspace).await?)
    }

    /// A tenant by id, if it exists.
    pub async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        Ok(self.store().get_tenant(id).await?)
    }

    /// A user by id or e-mail, if one exists.
    pub async fn find_user(&self, key: &str) -> Result<Option<User>> {
        Ok(self.store().find_user(key).await?)
    }

    /// A user's memberships.
    pub async fn memberships_of(&self, user: UserId) -> Result<Vec<Membership>> {
        Ok(self.store().memberships_of(user).await?)
    }

    /// Appends an entry to the audit log.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<()> {
        Ok(self.store().append_audit(entry).await?)
    }

    /// The newest audit entries.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        Ok(self.store().audit_log(limit).await?)
    }
}

/// Who acts: a signed-in user, or the server command line.
pub(crate) fn actor_of(who: Option<&User>) -> Actor {
    who.map_or(Actor::Cli, |u| Actor::User(u.id))
}
