//! Workspaces, tenants, users, memberships and the audit log.

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::Membership;
use tenantatlas_domain::ids::{TenantId, UserId, WorkspaceId};
use tenantatlas_engine::port::Directory;
use uuid::Uuid;

use crate::db::{Conn, Row, q};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::rows::{self, RowExt as _, USER_COLUMNS};
use crate::runs::insert_audit;
use crate::{SqlStore, new_uuid};

pub(crate) fn audit(
    actor: Actor,
    now: Timestamp,
    action: &str,
    ws: Option<WorkspaceId>,
    tenant: Option<TenantId>,
    target: (&str, String),
) -> AuditEntry {
    AuditEntry {
        at: now,
        actor,
        workspace_id: ws,
        tenant_id: tenant,
        action: action.to_owned(),
        target_type: Some(target.0.to_owned()),
        target_id: Some(target.1),
        detail: serde_json::json!({}),
    }
}

pub(crate) fn conflict_or(e: StoreError, what: &str) -> StoreError {
    if e.is_unique_violation() {
        StoreError::Conflict(what.to_owned())
    } else {
        e
    }
}

/// The owners of `workspace`, counted with its row locked: on PostgreSQL
/// concurrent membership changes of one workspace queue here (SQLite has
/// one writer), so the count a change is judged on is the count it leaves.
async fn owners_locked(conn: &mut Conn<'_>, workspace: WorkspaceId) -> Result<i64> {
    conn.execute(&q("UPDATE workspaces SET name = name WHERE id = $1").bind(workspace))
        .await?;
    owners(conn, workspace).await
}

async fn owners(conn: &mut Conn<'_>, workspace: WorkspaceId) -> Result<i64> {
    conn.one(&q("SELECT COUNT(*) AS n FROM memberships WHERE workspace_id = $1 AND role = 'owner'").bind(workspace))
        .await?
        .int("n")
}

/// A workspace that had an owner keeps one: the rule of every membership
/// write, checked inside its transaction.
fn keep_an_owner(before: i64, after: i64) -> Result<()> {
    if before > 0 && after == 0 {
        return Err(StoreError::Conflict(
            "a workspace keeps at least one owner: make someone else owner first".into(),
        ));
    }
    Ok(())
}

const TENANT_COLUMNS: &str = "id, workspace_id, name, provider, created_at";

/// What a tenant name already in use in the workspace is answered.
pub(crate) const TENANT_NAME_TAKEN: &str = "name: a tenant with this name already exists in the workspace";

/// The insert of a new tenant.
pub(crate) fn insert_tenant(t: &Tenant) -> crate::db::Q {
    q("INSERT INTO tenants (id, workspace_id, name, provider, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(t.id)
        .bind(t.workspace_id)
        .bind(&t.name)
        .bind(&t.provider)
        .bind(t.created_at)
}

/// The tenants a membership is limited to (none when it covers all).
async fn entitled_tenants(conn: &mut Conn<'_>, workspace: WorkspaceId, user: UserId) -> Result<Vec<TenantId>> {
    let found = conn
        .all(
            &q("SELECT tenant_id FROM membership_tenants WHERE workspace_id = $1 AND user_id = $2 ORDER BY tenant_id")
                .bind(workspace)
                .bind(user),
        )
        .await?;
    found
        .iter()
        .map(|r| Ok(TenantId::from_uuid(r.uuid("tenant_id")?)))
        .collect()
}

/// A membership row (`workspace_id, user_id, role, all_tenants`) with its
/// tenants.
async fn membership_of(conn: &mut Conn<'_>, row: &Row) -> Result<Membership> {
    let tenants = if row.boolean("all_tenants")? {
        Vec::new()
    } else {
        let ws = WorkspaceId::from_uuid(row.uuid("workspace_id")?);
        entitled_tenants(conn, ws, UserId::from_uuid(row.uuid("user_id")?)).await?
    };
    rows::membership_from_row(row, tenants)
}

impl SqlStore {
    async fn memberships(&self, user: UserId, workspace: Option<WorkspaceId>) -> Result<Vec<Membership>> {
        let mut reader = self.reader().await?;
        let mut conn = reader.conn();
        let found = conn
            .all(
                &q("SELECT workspace_id, user_id, role, all_tenants FROM memberships \
                    WHERE user_id = $1 AND ($2 IS NULL OR workspace_id = $2) ORDER BY workspace_id")
                .bind(user)
                .bind(workspace),
            )
            .await?;
        let mut out = Vec::with_capacity(found.len());
        for row in &found {
            out.push(membership_of(&mut conn, row).await?);
        }
        Ok(out)
    }

    /// Runs `insert` and an audit entry in one transaction; a unique
    /// violation is `conflict`.
    async fn insert_audited(&self, insert: crate::db::Q, conflict: &str, entry: &AuditEntry) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        conn.execute(&insert).await.map_err(|e| conflict_or(e, conflict))?;
        insert_audit(&mut conn, entry).await?;
        tx.commit().await
    }
}

#[async_trait]
impl Directory for SqlStore {
    async fn create_workspace(&self, name: &str, actor: Actor, now: Timestamp) -> Result<Workspace> {
        let ws = Workspace {
            id: WorkspaceId::from_uuid(new_uuid()),
            name: name.to_owned(),
            created_at: now,
        };
        let target = ("workspace", ws.id.to_string());
        self.insert_audited(
            q("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(ws.id)
                .bind(&ws.name)
                .bind(now),
            "name: a workspace with this name already exists",
            &audit(actor, now, "workspace.create", Some(ws.id), None, target),
        )
        .await?;
        Ok(ws)
    }

    async fn find_workspace(&self, key: &str) -> Result<Option<Workspace>> {
        let stmt = match Uuid::parse_str(key.trim()) {
            Ok(id) => q("SELECT id, name, created_at FROM workspaces WHERE id = $1").bind(id),
            Err(_) => q("SELECT id, name, created_at FROM workspaces WHERE lower(name) = lower($1)").bind(key.trim()),
        };
        let row = self.opt(&stmt).await?;
        row.as_ref().map(rows::workspace_from_row).transpose()
    }

    async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        let found = self
            .all(&q("SELECT id, name, created_at FROM workspaces ORDER BY lower(name)"))
            .await?;
        found.iter().map(rows::workspace_from_row).collect()
    }

    async fn add_tenant(
        &self,
        workspace: WorkspaceId,
        name: &str,
        provider: Option<&str>,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Tenant> {
        let t = Tenant {
            id: TenantId::from_uuid(new_uuid()),
            workspace_id: workspace,
            name: name.to_owned(),
            provider: provider.map(str::to_owned),
            created_at: now,
        };
        let target = ("tenant", t.id.to_string());
        self.insert_audited(
            insert_tenant(&t),
            TENANT_NAME_TAKEN,
            &audit(actor, now, "tenant.add", Some(workspace), Some(t.id), target),
        )
        .await?;
        Ok(t)
    }

    async fn find_tenants(&self, key: &str, workspace: Option<WorkspaceId>) -> Result<Vec<Tenant>> {
        let stmt = match Uuid::parse_str(key.trim()) {
            Ok(id) => q(format!(
                "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1 AND ($2 IS NULL OR workspace_id = $2)"
            ))
            .bind(id),
            Err(_) => q(format!(
                "SELECT {TENANT_COLUMNS} FROM tenants WHERE lower(name) = lower($1) AND ($2 IS NULL OR workspace_id = $2) ORDER BY id"
            ))
            .bind(key.trim()),
        };
        let found = self.all(&stmt.bind(workspace)).await?;
        found.iter().map(rows::tenant_from_row).collect()
    }

    async fn get_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
        let row = self
            .opt(&q(format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1")).bind(id))
            .await?;
        row.as_ref().map(rows::tenant_from_row).transpose()
    }

    async fn list_tenants(&self, workspace: WorkspaceId) -> Result<Vec<Tenant>> {
        let found = self
            .all(
                &q(format!(
                    "SELECT {TENANT_COLUMNS} FROM tenants WHERE workspace_id = $1 ORDER BY lower(name)"
                ))
                .bind(workspace),
            )
            .await?;
        found.iter().map(rows::tenant_from_row).collect()
    }

    async fn add_user(
        &self,
        email: &str,
        password_hash: &str,
        platform_operator: bool,
        actor: Actor,
        now: Timestamp,
    ) -> Result<User> {
        let u = User {
            id: UserId::from_uuid(new_uuid()),
            email: email.to_lowercase(),
            platform_operator,
            disabled_at: None,
            password_changed_at: now,
            created_at: now,
        };
        let target = ("user", u.id.to_string());
        self.insert_audited(
            q(
                "INSERT INTO users (id, email, password_hash, platform_operator, password_changed_at, created_at) \
               VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(u.id)
            .bind(&u.email)
            .bind(password_hash)
            .bind(platform_operator)
            .bind(now),
            "email: a user with this e-mail address already exists",
            &audit(actor, now, "user.add", None, None, target),
        )
        .await?;
        Ok(u)
    }

    async fn find_user(&self, key: &str) -> Result<Option<User>> {
        let stmt = match Uuid::parse_str(key.trim()) {
            Ok(id) => q(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).bind(id),
            Err(_) => q(format!("SELECT {USER_COLUMNS} FROM users WHERE email = lower($1)")).bind(key.trim()),
        };
        let row = self.opt(&stmt).await?;
        row.as_ref().map(rows::user_from_row).transpose()
    }

    async fn password_hash(&self, user: UserId) -> Result<Option<String>> {
        let row = self
            .opt(&q("SELECT password_hash FROM users WHERE id = $1").bind(user))
            .await?;
        row.map(|r| r.text("password_hash")).transpose()
    }

    async fn put_membership(&self, m: &MembershipWrite, actor: Actor, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let before = owners_locked(&mut conn, m.workspace_id).await?;
        conn.execute(
            &q(
                "INSERT INTO memberships (workspace_id, user_id, role, all_tenants, created_at, updated_at) \
                VALUES ($1, $2, $3, $4, $5, $5) \
                ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role, \
                all_tenants = excluded.all_tenants, updated_at = excluded.updated_at",
            )
            .bind(m.workspace_id)
            .bind(m.user_id)
            .bind(m.role.as_str())
            .bind(m.tenants.is_none())
            .bind(now),
        )
        .await?;
        conn.execute(
            &q("DELETE FROM membership_tenants WHERE workspace_id = $1 AND user_id = $2")
                .bind(m.workspace_id)
                .bind(m.user_id),
        )
        .await?;
        for t in m.tenants.iter().flatten() {
            conn.execute(
                &q("INSERT INTO membership_tenants (workspace_id, user_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(m.workspace_id)
                    .bind(m.user_id)
                    .bind(*t),
            )
            .await
            .map_err(|e| match e {
                StoreError::Database(sqlx::Error::Database(ref d)) if d.is_foreign_key_violation() => StoreError::Invalid(
                    tenantatlas_domain::FieldError::new("tenant", "is not a tenant of this workspace"),
                ),
                e => e,
            })?;
        }
        keep_an_owner(before, owners(&mut conn, m.workspace_id).await?)?;
        let mut entry = audit(
            actor,
            now,
            "member.put",
            Some(m.workspace_id),
            None,
            ("user", m.user_id.to_string()),
        );
        entry.detail = serde_json::json!({
            "role": m.role.as_str(),
            "tenants": m.tenants.as_ref().map(|ts| ts.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
        });
        insert_audit(&mut conn, &entry).await?;
        tx.commit().await
    }

    async fn remove_membership(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        actor: Actor,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let before = owners_locked(&mut conn, workspace).await?;
        conn.execute(
            &q("DELETE FROM membership_tenants WHERE workspace_id = $1 AND user_id = $2")
                .bind(workspace)
                .bind(user),
        )
        .await?;
        let gone = conn
            .execute(
                &q("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                    .bind(workspace)
                    .bind(user),
            )
            .await?;
        if gone == 0 {
            return Ok(false);
        }
        keep_an_owner(before, owners(&mut conn, workspace).await?)?;
        let entry = audit(
            actor,
            now,
            "member.remove",
            Some(workspace),
            None,
            ("user", user.to_string()),
        );
        insert_audit(&mut conn, &entry).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn tenant_access(
        &self,
        tenant: TenantId,
        user: Option<UserId>,
    ) -> Result<Option<(Tenant, Option<Membership>)>> {
        let mut reader = self.reader().await?;
        let mut conn = reader.conn();
        let row = conn
            .opt(
                &q(
                    "SELECT t.id, t.workspace_id, t.name, t.provider, t.created_at, m.user_id, m.role, m.all_tenants \
                    FROM tenants t LEFT JOIN memberships m ON m.workspace_id = t.workspace_id AND m.user_id = $2 \
                    WHERE t.id = $1",
                )
                .bind(tenant)
                .bind(user),
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let t = rows::tenant_from_row(&row)?;
        let m = match row.opt_uuid("user_id")? {
            Some(_) => Some(membership_of(&mut conn, &row).await?),
            None => None,
        };
        Ok(Some((t, m)))
    }

    async fn membership(&self, user: UserId, workspace: WorkspaceId) -> Result<Option<Membership>> {
        Ok(self.memberships(user, Some(workspace)).await?.pop())
    }

    async fn memberships_of(&self, user: UserId) -> Result<Vec<Membership>> {
        self.memberships(user, None).await
    }

    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<Member>> {
        let mut reader = self.reader().await?;
        let mut conn = reader.conn();
        let found = conn
            .all(
                &q(
                    "SELECT u.email, m.workspace_id, m.user_id, m.role, m.all_tenants FROM memberships m \
                    JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 ORDER BY u.email",
                )
                .bind(workspace),
            )
            .await?;
        let mut out = Vec::with_capacity(found.len());
        for row in &found {
            out.push(Member {
                membership: membership_of(&mut conn, row).await?,
                email: row.text("email")?,
            });
        }
        Ok(out)
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        insert_audit(&mut self.writer().await?.conn(), entry).await
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        let found = self
            .all(
                &q("SELECT id, at, actor_kind, actor_id, workspace_id, tenant_id, action, target_type, target_id, detail \
                    FROM audit_log ORDER BY id DESC LIMIT $1")
                .bind(limit),
            )
            .await?;
        found.iter().map(rows::audit_from_row).collect()
    }
}
