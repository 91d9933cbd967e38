//! The vocabulary of reading runs: who may see which (scope), filters,
//! keyset cursors, pages, problem counts, and the change signals that tell
//! a live view to read again.

use crate::Timestamp;
use crate::catalog::OperationType;
use crate::ids::{RunId, TenantId, WorkspaceId};
use crate::lifecycle::StatusFilter;
use crate::problem::{ProblemClass, Thresholds};
use crate::run::Run;

/// Which runs a caller may see (row-level scope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunScope {
    /// Every run (system plane, server command line).
    Everything,
    /// Runs of these whole workspaces, plus of these individual tenants.
    Granted {
        /// Workspaces entitled in full.
        workspaces: Vec<WorkspaceId>,
        /// Individually entitled tenants.
        tenants: Vec<TenantId>,
    },
}

/// A keyset-pagination position: after this (created_at, id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Created-at of the last row shown.
    pub created_at: Timestamp,
    /// Id of the last row shown.
    pub id: RunId,
}

impl Cursor {
    /// Encodes as opaque text.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.unix_micros(), self.id.as_uuid().simple())
    }

    /// Decodes text made by [`Cursor::encode`].
    pub fn decode(field: &str, s: &str) -> Result<Self, crate::FieldError> {
        let bad = || crate::FieldError::new(field, "is not a cursor returned by a previous page");
        let (ts, id) = s.split_once('_').ok_or_else(bad)?;
        let created_at = Timestamp::from_unix_micros(ts.parse().map_err(|_| bad())?);
        let id = RunId::from_uuid(uuid::Uuid::parse_str(id).map_err(|_| bad())?);
        Ok(Self { created_at, id })
    }
}

/// Filters of the operations list (the same on every surface).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFilter {
    /// Only this workspace.
    pub workspace: Option<WorkspaceId>,
    /// Only this tenant.
    pub tenant: Option<TenantId>,
    /// Only this type.
    pub op_type: Option<OperationType>,
    /// Only runs this status filter selects.
    pub status: Option<StatusFilter>,
    /// Only this problem class (evaluated at `now`).
    pub problem: Option<ProblemClass>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Only children of this run.
    pub parent: Option<RunId>,
}

/// A list query.
#[derive(Clone, Debug, PartialEq)]
pub struct RunQuery {
    /// Row-level scope.
    pub scope: RunScope,
    /// Filters.
    pub filter: RunFilter,
    /// Page size (1–500).
    pub limit: u32,
    /// Continue after.
    pub cursor: Option<Cursor>,
    /// The moment problem classes are evaluated at.
    pub now: Timestamp,
    /// Stale thresholds.
    pub thresholds: Thresholds,
}

/// One page of runs, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<Run>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<Cursor>,
}

/// Counting runs per problem class.
#[derive(Clone, Debug, PartialEq)]
pub struct CountQuery {
    /// Row-level scope.
    pub scope: RunScope,
    /// Filters (problem and bucket filters are ignored).
    pub filter: RunFilter,
    /// Completed runs count only when completed on or after the start of
    /// this moment's UTC day (the per-day counters' grain); active runs
    /// always count.
    pub completed_since: Timestamp,
    /// The moment classes are evaluated at.
    pub now: Timestamp,
    /// Stale thresholds.
    pub thresholds: Thresholds,
}

/// One count row: how many runs of a tenant are in a problem class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemCount {
    /// The workspace.
    pub workspace_id: Option<WorkspaceId>,
    /// The tenant.
    pub tenant_id: Option<TenantId>,
    /// The class.
    pub class: ProblemClass,
    /// How many.
    pub count: u64,
}

/// Something changed in the database that live surfaces or workers care
/// about. Delivered in-process on SQLite and over LISTEN/NOTIFY on
/// PostgreSQL (so every node hears every node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Runs became due: workers should claim.
    Wake,
    /// Runs of these tenants changed (`None` in the list: system runs);
    /// an empty list means "possibly any".
    RunsChanged(Vec<Option<TenantId>>),
}
