//! Who exists and who did what: workspaces, tenants, users, memberships
//! and the audit trail, as every layer names them.

use crate::Timestamp;
use crate::access::{Membership, Role};
use crate::ids::{TenantId, UserId, WorkspaceId};

/// A workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// Id.
    pub id: WorkspaceId,
    /// Unique name.
    pub name: String,
    /// Created.
    pub created_at: Timestamp,
}

/// A tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Name, unique within the workspace.
    pub name: String,
    /// Provider spec text (`directory:…`, `graph:…`), if configured.
    pub provider: Option<String>,
    /// Created.
    pub created_at: Timestamp,
}

/// A user account (the password hash is never part of this value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Lower-case e-mail address.
    pub email: String,
    /// Whether the user belongs to the system plane.
    pub platform_operator: bool,
    /// When disabled, if disabled.
    pub disabled_at: Option<Timestamp>,
    /// Last password change.
    pub password_changed_at: Timestamp,
    /// Created.
    pub created_at: Timestamp,
}

/// A member of a workspace, for listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The membership.
    pub membership: Membership,
    /// The member's e-mail.
    pub email: String,
}

/// Who did something, for the audit log and the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user (or `--as`).
    User(UserId),
    /// The engine itself (scheduler, reconciler, workers).
    System,
    /// An administrator at the command line of the server.
    Cli,
}

impl Actor {
    /// The audit `actor_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::System => "system",
            Actor::Cli => "cli",
        }
    }

    /// The user, when a user.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User(u) => Some(*u),
            _ => None,
        }
    }
}

/// One audit-log entry to append.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// Workspace concerned.
    pub workspace_id: Option<WorkspaceId>,
    /// Tenant concerned.
    pub tenant_id: Option<TenantId>,
    /// What (`workspace.create`, `run.cancel`, …).
    pub action: String,
    /// Kind of target (`run`, `tenant`, …).
    pub target_type: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Identifiers and enums only.
    pub detail: serde_json::Value,
}

/// A stored audit-log entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// Sequence number.
    pub id: i64,
    /// The entry.
    pub entry: AuditEntry,
}

/// A membership to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipWrite {
    /// Workspace.
    pub workspace_id: WorkspaceId,
    /// User.
    pub user_id: UserId,
    /// Role.
    pub role: Role,
    /// `None`: every tenant; otherwise these.
    pub tenants: Option<Vec<TenantId>>,
}
