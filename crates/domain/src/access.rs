//! Law 10 — authorization is explicit and plane-aware.
//!
//! Roles and capabilities are data ([`Role::capabilities`]). On the admin
//! plane a decision is made in a fixed order — workspace membership, tenant
//! entitlement, capability — by [`authorize_tenant`]: not a member or not
//! entitled is [`Denied::NotFound`] (the tenant does not exist for the
//! caller, HTTP 404), a member lacking the capability is
//! [`Denied::Forbidden`] (HTTP 403). The system plane belongs to platform
//! operators only; being one grants nothing on the admin plane.
//!
//! A successful decision is a [`TenantGrant`]: a value that can only be
//! obtained from [`authorize_tenant`], which the engine requires before it
//! starts or changes anything on a user's behalf.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::FieldError;
use crate::ids::{TenantId, UserId, WorkspaceId};

/// Something a member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Capability {
    /// See runs, dashboards and notifications.
    #[serde(rename = "runs.view")]
    ViewRuns,
    /// Start inventory and directory syncs.
    #[serde(rename = "inventory.sync")]
    SyncInventory,
    /// Capture and change backups, run backup schedules and retention.
    #[serde(rename = "backups.manage")]
    ManageBackups,
    /// Restore configuration into a tenant.
    #[serde(rename = "restore.execute")]
    ExecuteRestore,
    /// Export policies.
    #[serde(rename = "policies.export")]
    ExportPolicies,
    /// Generate drift findings and compare against baselines.
    #[serde(rename = "drift.run")]
    RunDrift,
    /// Capture baselines.
    #[serde(rename = "baselines.manage")]
    ManageBaselines,
    /// Generate review packs and evidence snapshots.
    #[serde(rename = "reviews.generate")]
    GenerateReviews,
    /// Start the synthetic operation (tests, demos, benchmarks).
    #[serde(rename = "synthetic.start")]
    StartSynthetic,
    /// Cancel runs.
    #[serde(rename = "runs.cancel")]
    CancelRuns,
    /// Add and configure tenants.
    #[serde(rename = "tenants.manage")]
    ManageTenants,
    /// Manage memberships.
    #[serde(rename = "members.manage")]
    ManageMembers,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 12] = [
        Capability::ViewRuns,
        Capability::SyncInventory,
        Capability::ManageBackups,
        Capability::ExecuteRestore,
        Capability::ExportPolicies,
        Capability::RunDrift,
        Capability::ManageBaselines,
        Capability::GenerateReviews,
        Capability::StartSynthetic,
        Capability::CancelRuns,
        Capability::ManageTenants,
        Capability::ManageMembers,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Capability::ViewRuns => "runs.view",
            Capability::SyncInventory => "inventory.sync",
            Capability::ManageBackups => "backups.manage",
            Capability::ExecuteRestore => "restore.execute",
            Capability::ExportPolicies => "policies.export",
            Capability::RunDrift => "drift.run",
            Capability::ManageBaselines => "baselines.manage",
            Capability::GenerateReviews => "reviews.generate",
            Capability::StartSynthetic => "synthetic.start",
            Capability::CancelRuns => "runs.cancel",
            Capability::ManageTenants => "tenants.manage",
            Capability::ManageMembers => "members.manage",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role in a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including membership.
    Owner,
    /// Everything but membership.
    Manager,
    /// Day-to-day operations; no restores, no baseline capture, no admin.
    Operator,
    /// Sees everything in scope, changes nothing.
    Readonly,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Manager, Role::Operator, Role::Readonly];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Operator => "operator",
            Role::Readonly => "readonly",
        }
    }

    /// Parses a role name, naming `field` on failure.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| FieldError::new(field, "must be one of owner, manager, operator, readonly"))
    }

    /// The capabilities this role holds.
    pub const fn capabilities(self) -> &'static [Capability] {
        use Capability::*;
        match self {
            Role::Owner => &Capability::ALL,
            Role::Manager => &[
                ViewRuns,
                SyncInventory,
                ManageBackups,
                ExecuteRestore,
                ExportPolicies,
                RunDrift,
                ManageBaselines,
                GenerateReviews,
                StartSynthetic,
                CancelRuns,
                ManageTenants,
            ],
            Role::Operator => &[
                ViewRuns,
                SyncInventory,
                ManageBackups,
                ExportPolicies,
                RunDrift,
                GenerateReviews,
                StartSynthetic,
                CancelRuns,
            ],
            Role::Readonly => &[ViewRuns],
        }
    }

    /// Whether this role holds `cap`.
    pub fn has(self, cap: Capability) -> bool {
        self.capabilities().contains(&cap)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which tenants of the workspace a member is entitled to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant, present and future.
    All,
    /// Only these.
    Only(Vec<TenantId>),
}

impl TenantScope {
    /// Whether `tenant` is in scope.
    pub fn contains(&self, tenant: TenantId) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(ids) => ids.contains(&tenant),
        }
    }
}

/// A user's membership in one workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The member.
    pub user_id: UserId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Their role.
    pub role: Role,
    /// Their tenant entitlement.
    pub tenants: TenantScope,
}

/// Why an admin-plane request was denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Not a member of the workspace, or not entitled to the tenant: the
    /// resource does not exist for this caller (404).
    #[error("not found")]
    NotFound,
    /// A member in scope who lacks the capability (403).
    #[error("your role does not allow {0}")]
    Forbidden(Capability),
}

/// Proof that a user may exercise a capability on a tenant.
///
/// Only [`authorize_tenant`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantGrant {
    user_id: UserId,
    workspace_id: WorkspaceId,
    tenant_id: TenantId,
    capability: Capability,
    role: Role,
}

impl TenantGrant {
    /// The user.
    pub fn user_id(&self) -> UserId {
        self.user_id
    }
    /// The tenant's workspace.
    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }
    /// The tenant.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    /// The capability granted.
    pub fn capability(&self) -> Capability {
        self.capability
    }
    /// The role that granted it.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// The admin-plane decision: membership → entitlement → capability.
///
/// `membership` is the caller's membership in the workspace that owns
/// `tenant` (`None` when not a member).
pub fn authorize_tenant(
    membership: Option<&Membership>,
    tenant_workspace: WorkspaceId,
    tenant: TenantId,
    capability: Capability,
) -> Result<TenantGrant, Denied> {
    let m = membership.ok_or(Denied::NotFound)?;
    if m.workspace_id != tenant_workspace || !m.tenants.contains(tenant) {
        return Err(Denied::NotFound);
    }
    if !m.role.has(capability) {
        return Err(Denied::Forbidden(capability));
    }
    Ok(TenantGrant {
        user_id: m.user_id,
        workspace_id: m.workspace_id,
        tenant_id: tenant,
        capability,
        role: m.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ids() -> (UserId, WorkspaceId, TenantId, TenantId) {
        (
            UserId::from_uuid(Uuid::from_u128(1)),
            WorkspaceId::from_uuid(Uuid::from_u128(2)),
            TenantId::from_uuid(Uuid::from_u128(3)),
            TenantId::from_uuid(Uuid::from_u128(4)),
        )
    }

    fn member(role: Role, tenants: TenantScope) -> Membership {
        let (u, w, _, _) = ids();
        Membership {
            user_id: u,
            workspace_id: w,
            role,
            tenants,
        }
    }

    #[test]
    fn order_is_membership_then_entitlement_then_capability() {
        let (_, w, t, other) = ids();
        assert_eq!(
            authorize_tenant(None, w, t, Capability::ViewRuns),
            Err(Denied::NotFound)
        );
        let scoped = member(Role::Readonly, TenantScope::Only(vec![other]));
        // not entitled: 404 even though the capability is also missing
        assert_eq!(
            authorize_tenant(Some(&scoped), w, t, Capability::SyncInventory),
            Err(Denied::NotFound)
        );
        let ro = member(Role::Readonly, TenantScope::All);
        assert_eq!(
            authorize_tenant(Some(&ro), w, t, Capability::SyncInventory),
            Err(Denied::Forbidden(Capability::SyncInventory))
        );
        let g = authorize_tenant(Some(&ro), w, t, Capability::ViewRuns).unwrap();
        assert_eq!((g.tenant_id(), g.workspace_id(), g.role()), (t, w, Role::Readonly));
    }

    #[test]
    fn membership_of_another_workspace_is_not_found() {
        let (_, _, t, _) = ids();
        let owner = member(Role::Owner, TenantScope::All);
        let elsewhere = WorkspaceId::from_uuid(Uuid::from_u128(99));
        assert_eq!(
            authorize_tenant(Some(&owner), elsewhere, t, Capability::ViewRuns),
            Err(Denied::NotFound)
        );
    }

    #[test]
    fn role_table() {
        assert_eq!(Role::Owner.capabilities().len(), Capability::ALL.len());
        assert!(!Role::Manager.has(Capability::ManageMembers));
        assert!(!Role::Operator.has(Capability::ExecuteRestore));
        assert!(Role::Operator.has(Capability::SyncInventory));
        assert_eq!(Role::Readonly.capabilities(), &[Capability::ViewRuns]);
        for r in Role::ALL {
            assert!(r.has(Capability::ViewRuns), "{r} must see runs");
            assert_eq!(Role::parse("role", r.as_str()).unwrap(), r);
        }
        assert_eq!(Role::parse("role", "admin").unwrap_err().field, "role");
    }
}
