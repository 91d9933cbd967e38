//! Decoding rows of either backend into domain values, written once.
//!
//! Each backend implements [`RowExt`] for its row type (how it stores ids,
//! times, JSON and booleans); the mappers below are shared.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::{Membership, Role, TenantScope};
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::counts::SummaryCounts;
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId, UserId, WorkspaceId};
use tenantatlas_domain::lifecycle::{Outcome, RunState, RunStatus};
use tenantatlas_domain::params::Params;
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_domain::run::{Claim, Lease, PhaseProgress, Reconciliation, Run, UnitTally};
use tenantatlas_domain::sanitize::SafeText;
use tenantatlas_domain::timeline::RunEventKind;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::model::{Notification, RunEvent, Tenant, UnitRecord, User, Workspace};

/// Typed column access that hides each backend's storage encoding.
pub(crate) trait RowExt {
    fn uuid(&self, col: &str) -> Result<Uuid>;
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>>;
    fn ts(&self, col: &str) -> Result<Timestamp>;
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn json(&self, col: &str) -> Result<serde_json::Value>;
    fn boolean(&self, col: &str) -> Result<bool>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>>;
}

fn corrupt(col: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("column {col}: {what}"))
}

impl RowExt for SqliteRow {
    fn uuid(&self, col: &str) -> Result<Uuid> {
        let s: String = self.try_get(col)?;
        Uuid::parse_str(&s).map_err(|e| corrupt(col, e))
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        let s: Option<String> = self.try_get(col)?;
        s.map(|s| Uuid::parse_str(&s).map_err(|e| corrupt(col, e))).transpose()
    }
    fn ts(&self, col: &str) -> Result<Timestamp> {
        Ok(Timestamp::from_unix_micros(self.try_get(col)?))
    }
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>> {
        Ok(self.try_get::<Option<i64>, _>(col)?.map(Timestamp::from_unix_micros))
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn json(&self, col: &str) -> Result<serde_json::Value> {
        let s: String = self.try_get(col)?;
        serde_json::from_str(&s).map_err(|e| corrupt(col, e))
    }
    fn boolean(&self, col: &str) -> Result<bool> {
        Ok(self.try_get::<i64, _>(col)? != 0)
    }
    fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(col)?)
    }
}

impl RowExt for PgRow {
    fn uuid(&self, col: &str) -> Result<Uuid> {
        Ok(self.try_get(col)?)
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        Ok(self.try_get(col)?)
    }
    fn ts(&self, col: &str) -> Result<Timestamp> {
        Ok(Timestamp::from_datetime(self.try_get(col)?))
    }
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>> {
        Ok(self
            .try_get::<Option<time::OffsetDateTime>, _>(col)?
            .map(Timestamp::from_datetime))
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.opt_int(col)?.ok_or_else(|| corrupt(col, "unexpected NULL"))
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        // integer columns are int4 or int8; counts are int8
        match self.try_get::<Option<i64>, _>(col) {
            Ok(v) => Ok(v),
            Err(sqlx::Error::ColumnDecode { .. }) => Ok(self.try_get::<Option<i32>, _>(col)?.map(i64::from)),
            Err(e) => Err(e.into()),
        }
    }
    fn json(&self, col: &str) -> Result<serde_json::Value> {
        Ok(self.try_get::<sqlx::types::Json<serde_json::Value>, _>(col)?.0)
    }
    fn boolean(&self, col: &str) -> Result<bool> {
        Ok(self.try_get(col)?)
    }
    fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(col)?)
    }
}

/// The columns every run query selects, in the order [`run_from_row`] reads.
pub(crate) const RUN_COLUMNS: &str = "id, workspace_id, tenant_id, type, identity_key, params, status, outcome, \
     initiator_id, parent_id, attempt, lease_owner, lease_expires_at, claimed_by, claimed_at, heartbeat_at, available_at, \
     units_total, units_processed, units_succeeded, units_partial, units_failed, units_skipped, \
     phase, phases, phase_label, counts, failures, reason_code, reconciled_at, reconciled_from_status, \
     reconciled_last_heartbeat_at, cancel_requested_at, last_progress_at, progress_stale_at, created_at, started_at, completed_at";

fn u64_of(col: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(col, "negative count"))
}

fn u32_of(col: &str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(col, "out of range"))
}

/// Decodes stored failures, re-sanitizing their messages (cheap, and it
/// lets sanitizer improvements reach old rows too).
pub(crate) fn failures_from_json(v: &serde_json::Value) -> Vec<Failure> {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|f| {
                    let code = ReasonCode::parse(f.get("reason_code")?.as_str()?)?;
                    let msg = f.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    Some(Failure::new(code, msg))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Encodes failures for storage.
pub(crate) fn failures_to_json(failures: &[Failure]) -> serde_json::Value {
    serde_json::Value::Array(
        failures
            .iter()
            .map(|f| {
                serde_json::json!({
                    "reason_code": f.reason_code.as_str(),
                    "message": f.message.as_str(),
                })
            })
            .collect(),
    )
}

pub(crate) fn run_from_row(r: &impl RowExt) -> Result<Run> {
    let status_s = r.text("status")?;
    let status = RunStatus::parse(&status_s).ok_or_else(|| corrupt("status", &status_s))?;
    let outcome = r
        .opt_text("outcome")?
        .map(|o| Outcome::parse(&o).ok_or_else(|| corrupt("outcome", o)))
        .transpose()?;
    let state =
        RunState::from_parts(status, outcome).ok_or_else(|| corrupt("status", "outcome does not match status"))?;
    let type_s = r.text("type")?;
    let op_type = OperationType::parse("type", &type_s).map_err(|_| corrupt("type", &type_s))?;
    let lease = match (r.opt_text("lease_owner")?, r.opt_ts("lease_expires_at")?) {
        (Some(owner), Some(expires_at)) => Some(Lease { owner, expires_at }),
        _ => None,
    };
    let claim = match (r.opt_text("claimed_by")?, r.opt_ts("claimed_at")?) {
        (Some(worker), Some(at)) => Some(Claim { worker, at }),
        _ => None,
    };
    let units = UnitTally {
        total: r
            .opt_int("units_total")?
            .map(|v| u64_of("units_total", v))
            .transpose()?,
        processed: u64_of("units_processed", r.int("units_processed")?)?,
        succeeded: u64_of("units_succeeded", r.int("units_succeeded")?)?,
        partial: u64_of("units_partial", r.int("units_partial")?)?,
        failed: u64_of("units_failed", r.int("units_failed")?)?,
        skipped: u64_of("units_skipped", r.int("units_skipped")?)?,
    };
    let phase = match (r.opt_int("phase")?, r.opt_int("phases")?) {
        (Some(p), Some(n)) => Some(PhaseProgress {
            phase: u32_of("phase", p)?,
            phases: u32_of("phases", n)?,
            label: r.opt_text("phase_label")?.unwrap_or_default(),
        }),
        _ => None,
    };
    let reconciliation = match r.opt_ts("reconciled_at")? {
        Some(at) => {
            let prev = r.opt_text("reconciled_from_status")?.unwrap_or_default();
            Some(Reconciliation {
                previous_status: RunStatus::parse(&prev).ok_or_else(|| corrupt("reconciled_from_status", prev))?,
                last_heartbeat_at: r.opt_ts("reconciled_last_heartbeat_at")?,
                reconciled_at: at,
            })
        }
        None => None,
    };
    Ok(Run {
        id: RunId::from_uuid(r.uuid("id")?),
        workspace_id: r.opt_uuid("workspace_id")?.map(WorkspaceId::from_uuid),
        tenant_id: r.opt_uuid("tenant_id")?.map(TenantId::from_uuid),
        op_type,
        identity_key: r.opt_text("identity_key")?,
        params: Params::from_stored(&r.json("params")?),
        state,
        initiator: r.opt_uuid("initiator_id")?.map(UserId::from_uuid),
        parent_id: r.opt_uuid("parent_id")?.map(RunId::from_uuid),
        attempt: u32_of("attempt", r.int("attempt")?)?,
        lease,
        claim,
        heartbeat_at: r.opt_ts("heartbeat_at")?,
        available_at: r.ts("available_at")?,
        units,
        phase,
        counts: SummaryCounts::from_stored(&r.json("counts")?),
        failures: failures_from_json(&r.json("failures")?),
        reason_code: r.opt_text("reason_code")?.and_then(|c| ReasonCode::parse(&c)),
        reconciliation,
        cancel_requested_at: r.opt_ts("cancel_requested_at")?,
        last_progress_at: r.opt_ts("last_progress_at")?,
        progress_stale_at: r.opt_ts("progress_stale_at")?,
        created_at: r.ts("created_at")?,
        started_at: r.opt_ts("started_at")?,
        completed_at: r.opt_ts("completed_at")?,
    })
}

pub(crate) fn workspace_from_row(r: &impl RowExt) -> Result<Workspace> {
    Ok(Workspace {
        id: WorkspaceId::from_uuid(r.uuid("id")?),
        name: r.text("name")?,
        created_at: r.ts("created_at")?,
    })
}

pub(crate) fn tenant_from_row(r: &impl RowExt) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId::from_uuid(r.uuid("id")?),
        workspace_id: WorkspaceId::from_uuid(r.uuid("workspace_id")?),
        name: r.text("name")?,
        provider: r.opt_text("provider")?,
        created_at: r.ts("created_at")?,
    })
}

pub(crate) const USER_COLUMNS: &str = "id, email, platform_operator, disabled_at, password_changed_at, created_at";

pub(crate) fn user_from_row(r: &impl RowExt) -> Result<User> {
    Ok(User {
        id: UserId::from_uuid(r.uuid("id")?),
        email: r.text("email")?,
        platform_operator: r.boolean("platform_operator")?,
        disabled_at: r.opt_ts("disabled_at")?,
        password_changed_at: r.ts("password_changed_at")?,
        created_at: r.ts("created_at")?,
    })
}

/// Builds a membership from its row and its entitled tenants.
pub(crate) fn membership_from_row(r: &impl RowExt, tenants: Vec<TenantId>) -> Result<Membership> {
    let role_s = r.text("role")?;
    Ok(Membership {
        user_id: UserId::from_uuid(r.uuid("user_id")?),
        workspace_id: WorkspaceId::from_uuid(r.uuid("workspace_id")?),
        role: Role::parse("role", &role_s).map_err(|_| corrupt("role", role_s))?,
        tenants: if r.boolean("all_tenants")? {
            TenantScope::All
        } else {
            TenantScope::Only(tenants)
        },
    })
}

pub(crate) const NOTIFICATION_COLUMNS: &str =
    "id, user_id, run_id, workspace_id, tenant_id, title, body, view_url, read_at, created_at";

pub(crate) fn notification_from_row(r: &impl RowExt) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId::from_uuid(r.uuid("id")?),
        user_id: UserId::from_uuid(r.uuid("user_id")?),
        run_id: RunId::from_uuid(r.uuid("run_id")?),
        workspace_id: r.opt_uuid("workspace_id")?.map(WorkspaceId::from_uuid),
        tenant_id: r.opt_uuid("tenant_id")?.map(TenantId::from_uuid),
        title: r.text("title")?,
        body: r.text("body")?,
        view_url: r.text("view_url")?,
        read_at: r.opt_ts("read_at")?,
        created_at: r.ts("created_at")?,
    })
}

pub(crate) fn event_from_row(r: &impl RowExt) -> Result<RunEvent> {
    let kind_s = r.text("kind")?;
    Ok(RunEvent {
        id: r.int("id")?,
        run_id: RunId::from_uuid(r.uuid("run_id")?),
        at: r.ts("at")?,
        kind: RunEventKind::parse(&kind_s).ok_or_else(|| corrupt("kind", kind_s))?,
        actor_id: r.opt_uuid("actor_id")?.map(UserId::from_uuid),
        attempt: r.opt_int("attempt")?.map(|a| u32_of("attempt", a)).transpose()?,
        detail: r.json("detail")?,
    })
}

pub(crate) fn unit_from_row(r: &impl RowExt) -> Result<UnitRecord> {
    let state = r.text("state")?;
    Ok(UnitRecord {
        unit_key: r.text("unit_key")?,
        outcome: if state == "pending" {
            None
        } else {
            Some(UnitOutcome::parse(&state).ok_or_else(|| corrupt("state", &state))?)
        },
        reason_code: r.opt_text("reason_code")?.and_then(|c| ReasonCode::parse(&c)),
        message: r.opt_text("message")?.map(|m| SafeText::sanitize(&m)),
        child_run_id: r.opt_uuid("child_run_id")?.map(RunId::from_uuid),
        updated_at: r.ts("updated_at")?,
    })
}

/// Trims a page fetched with `limit + 1` rows and computes its cursor.
pub(crate) fn page_of(runs: &mut Vec<Run>, limit: u32) -> crate::model::RunPage {
    let limit = usize::try_from(limit.clamp(1, 500)).unwrap_or(500);
    let next_cursor = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(|r| crate::model::Cursor {
            created_at: r.created_at,
            id: r.id,
        })
    } else {
        None
    };
    crate::model::RunPage {
        runs: std::mem::take(runs),
        next_cursor,
    }
}

pub(crate) fn problem_count_from_row(r: &impl RowExt) -> Result<crate::model::ProblemCount> {
    let class_s = r.text("class")?;
    Ok(crate::model::ProblemCount {
        workspace_id: r.opt_uuid("workspace_id")?.map(WorkspaceId::from_uuid),
        tenant_id: r.opt_uuid("tenant_id")?.map(TenantId::from_uuid),
        class: tenantatlas_domain::problem::ProblemClass::parse("class", &class_s)
            .map_err(|_| corrupt("class", class_s))?,
        count: u64_of("n", r.int("n")?)?,
    })
}

/// Adds the claim of the attempt a retry or release ends (its worker and
/// claim time) to that event's detail: the timeline reads earlier
/// attempts' claims from there, the current one's from the run.
pub(crate) fn with_ended_claim(run: &Run, mut detail: serde_json::Value) -> serde_json::Value {
    if let (Some(c), Some(obj)) = (&run.claim, detail.as_object_mut()) {
        obj.insert("worker".into(), serde_json::Value::String(c.worker.clone()));
        obj.insert("claimed_at".into(), serde_json::Value::String(c.at.to_rfc3339()));
    }
    detail
}

/// The run a fresh insert created, built without reading it back.
pub(crate) fn fresh_run(
    id: RunId,
    new: &crate::model::NewRun,
    identity_key: Option<String>,
    parent: Option<RunId>,
    now: Timestamp,
) -> Run {
    Run {
        id,
        workspace_id: new.workspace_id,
        tenant_id: new.tenant_id,
        op_type: new.op_type,
        identity_key,
        params: new.params.clone(),
        state: RunState::Queued,
        initiator: new.initiator,
        parent_id: parent,
        attempt: 0,
        lease: None,
        claim: None,
        heartbeat_at: None,
        available_at: new.available_at,
        units: UnitTally::default(),
        phase: None,
        counts: SummaryCounts::new(),
        failures: Vec::new(),
        reason_code: None,
        reconciliation: None,
        cancel_requested_at: None,
        last_progress_at: None,
        progress_stale_at: None,
        created_at: now,
        started_at: None,
        completed_at: None,
    }
}

/// The stored identity key of a new run: `None` for runs that never dedupe;
/// children's keys are scoped to their parent.
pub(crate) fn identity_key_of(
    identity: &tenantatlas_domain::catalog::IdentityKey,
    parent: Option<RunId>,
) -> Option<String> {
    use tenantatlas_domain::catalog::IdentityKey;
    match (identity, parent) {
        (IdentityKey::Unique, _) => None,
        (IdentityKey::Stable(k), None) => Some(k.clone()),
        (IdentityKey::Stable(k), Some(p)) => Some(format!("parent={p};{k}")),
    }
}

pub(crate) fn audit_from_row(r: &impl RowExt) -> Result<crate::model::AuditRecord> {
    use crate::model::{Actor, AuditEntry, AuditRecord};
    let actor = match (r.text("actor_kind")?.as_str(), r.opt_uuid("actor_id")?) {
        ("user", Some(u)) => Actor::User(UserId::from_uuid(u)),
        ("system", _) => Actor::System,
        _ => Actor::Cli,
    };
    Ok(AuditRecord {
        id: r.int("id")?,
        entry: AuditEntry {
            at: r.ts("at")?,
            actor,
            workspace_id: r.opt_uuid("workspace_id")?.map(WorkspaceId::from_uuid),
            tenant_id: r.opt_uuid("tenant_id")?.map(TenantId::from_uuid),
            action: r.text("action")?,
            target_type: r.opt_text("target_type")?,
            target_id: r.opt_text("target_id")?,
            detail: r.json("detail")?,
        },
    })
}

pub(crate) const SCHEDULE_COLUMNS: &str =
    "id, name, cron, workspace_id, tenant_id, type, params, enabled, next_fire_at, last_fired_at, last_run_id";

pub(crate) fn schedule_from_row(r: &impl RowExt) -> Result<crate::model::Schedule> {
    let type_s = r.text("type")?;
    Ok(crate::model::Schedule {
        id: r.uuid("id")?,
        name: r.text("name")?,
        cron: r.text("cron")?,
        workspace_id: r.opt_uuid("workspace_id")?.map(WorkspaceId::from_uuid),
        tenant_id: r.opt_uuid("tenant_id")?.map(TenantId::from_uuid),
        op_type: OperationType::parse("type", &type_s).map_err(|_| corrupt("type", &type_s))?,
        params: Params::from_stored(&r.json("params")?),
        enabled: r.boolean("enabled")?,
        next_fire_at: r.ts("next_fire_at")?,
        last_fired_at: r.opt_ts("last_fired_at")?,
        last_run_id: r.opt_uuid("last_run_id")?.map(RunId::from_uuid),
    })
}

/// When the run becomes likely stale for lack of progress, after `processed`
/// units (law 7; the rule lives in the domain).
pub(crate) fn progress_deadline_of(
    run: &Run,
    processed: u64,
    now: Timestamp,
    thresholds: &tenantatlas_domain::problem::Thresholds,
) -> Option<Timestamp> {
    let total = run.units.total?;
    let started = run.started_at?;
    let heartbeat = thresholds.of(run.op_type).heartbeat;
    tenantatlas_domain::problem::progress_deadline(started, now, processed, total, heartbeat)
}
