//! SQL for list and count filters, shared by both dialects.
//!
//! Both SQLite and PostgreSQL accept `$n` placeholders and row-value
//! comparisons, so the text is written once; each backend binds the arguments
//! in its own encoding (`db`). The problem-class predicates here are the SQL form of
//! [`tenantatlas_domain::problem::classify`]; the conformance suite holds the
//! two against each other.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use tenantatlas_domain::Timestamp;
use tenantatlas_domain::lifecycle::{RunStatus, StatusBucket, StatusFilter};
use tenantatlas_domain::problem::{ProblemClass, Thresholds};

use crate::db::Q as Sql;
use crate::model::{CountQuery, RunFilter, RunQuery, RunScope};
use crate::rows::RUN_COLUMNS;

fn scope_clause(sql: &mut Sql, scope: &RunScope) {
    match scope {
        RunScope::Everything => {}
        RunScope::Granted { workspaces, tenants } => {
            let mut parts = Vec::new();
            if !workspaces.is_empty() {
                let ph: Vec<_> = workspaces.iter().map(|w| sql.arg(w.as_uuid())).collect();
                parts.push(format!("workspace_id IN ({})", ph.join(", ")));
            }
            if !tenants.is_empty() {
                let ph: Vec<_> = tenants.iter().map(|t| sql.arg(t.as_uuid())).collect();
                parts.push(format!("tenant_id IN ({})", ph.join(", ")));
            }
            if parts.is_empty() {
                sql.push(" AND 1 = 0");
            } else {
                let joined = parts.join(" OR ");
                let _ = write!(sql.text, " AND ({joined})");
            }
        }
    }
}

fn filter_clause(sql: &mut Sql, f: &RunFilter, with_bucket: bool) {
    if let Some(w) = f.workspace {
        let p = sql.arg(w.as_uuid());
        let _ = write!(sql.text, " AND workspace_id = {p}");
    }
    if let Some(t) = f.tenant {
        let p = sql.arg(t.as_uuid());
        let _ = write!(sql.text, " AND tenant_id = {p}");
    }
    if let Some(t) = f.op_type {
        let p = sql.arg(t.as_str());
        let _ = write!(sql.text, " AND type = {p}");
    }
    if let Some(parent) = f.parent {
        let p = sql.arg(parent.as_uuid());
        let _ = write!(sql.text, " AND parent_id = {p}");
    }
    if let Some(since) = f.since {
        let p = sql.arg(since);
        let _ = write!(sql.text, " AND created_at >= {p}");
    }
    if let Some(until) = f.until {
        let p = sql.arg(until);
        let _ = write!(sql.text, " AND created_at < {p}");
    }
    if let Some(b) = f.status.filter(|_| with_bucket) {
        let (status, outcomes) = b.members();
        // active runs are found through the index of active runs
        let active = if status == RunStatus::Completed {
            ""
        } else {
            "active AND "
        };
        let _ = write!(sql.text, " AND {active}status = '{}'", status.as_str());
        if !outcomes.is_empty() {
            let list: Vec<_> = outcomes.iter().map(|o| format!("'{}'", o.as_str())).collect();
            let _ = write!(sql.text, " AND outcome IN ({})", list.join(", "));
        }
        if b != StatusFilter::Bucket(StatusBucket::Succeeded) && status == RunStatus::Completed {
            let _ = write!(sql.text, " AND {EXCEPTIONS}");
        }
    }
}

/// The predicate of the partial "exceptions" indexes (migration 0004),
/// word for word: completed runs that did not simply succeed, or were
/// reconciled. Lists that select only such runs repeat it so that both
/// planners can prove those small indexes apply (SQLite matches terms by
/// their text).
const EXCEPTIONS: &str = "(outcome <> 'succeeded' OR reconciled_at IS NOT NULL)";

/// Types grouped by equal threshold, so the SQL text stays stable.
fn grouped(
    thresholds: &Thresholds,
    pick: impl Fn(&tenantatlas_domain::catalog::StaleThresholds) -> Duration,
) -> BTreeMap<Duration, Vec<&'static str>> {
    let mut groups: BTreeMap<Duration, Vec<&'static str>> = BTreeMap::new();
    for (t, th) in thresholds.iter() {
        groups.entry(pick(&th)).or_default().push(t.as_str());
    }
    groups
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

/// The "likely stale" predicate for active runs at `now` (never NULL).
fn stale_predicate(sql: &mut Sql, now: Timestamp, thresholds: &Thresholds) -> String {
    let mut queued = Vec::new();
    for (d, names) in grouped(thresholds, |t| t.queued) {
        let p = sql.arg(now.minus(d));
        queued.push(format!("(type IN ({}) AND available_at <= {p})", quoted(&names)));
    }
    let now_p = sql.arg(now);
    let mut silent = vec![
        format!("(lease_expires_at IS NOT NULL AND lease_expires_at <= {now_p})"),
        format!("(progress_stale_at IS NOT NULL AND progress_stale_at <= {now_p})"),
    ];
    for (d, names) in grouped(thresholds, |t| t.heartbeat) {
        let p = sql.arg(now.minus(d));
        silent.push(format!(
            "(type IN ({}) AND COALESCE(heartbeat_at, started_at, created_at) <= {p})",
            quoted(&names)
        ));
    }
    // the adaptive duration threshold applies to runs without counted
    // progress (counted runs have the progress deadline above)
    let mut by_max: BTreeMap<Duration, Vec<&'static str>> = BTreeMap::new();
    for (t, th) in thresholds.iter() {
        if let Some(max) = th.running_max {
            by_max.entry(max).or_default().push(t.as_str());
        }
    }
    for (d, names) in by_max {
        let p = sql.arg(now.minus(d));
        silent.push(format!(
            "(units_total IS NULL AND type IN ({}) AND started_at IS NOT NULL AND started_at <= {p})",
            quoted(&names)
        ));
    }
    format!(
        "((status = 'queued' AND ({})) OR (status = 'running' AND ({})))",
        queued.join(" OR "),
        silent.join(" OR ")
    )
}

/// The SQL predicate selecting runs of `class` at `now`.
fn problem_predicate(sql: &mut Sql, class: ProblemClass, now: Timestamp, thresholds: &Thresholds) -> String {
    match class {
        ProblemClass::Active => {
            let stale = stale_predicate(sql, now, thresholds);
            format!("(active AND NOT {stale})")
        }
        ProblemClass::ActiveStale => {
            let stale = stale_predicate(sql, now, thresholds);
            format!("(active AND {stale})")
        }
        ProblemClass::NeedsFollowUp => format!(
            "(status = 'completed' AND outcome IN ('failed', 'partially_succeeded', 'blocked') AND reconciled_at IS NULL) AND {EXCEPTIONS}"
        ),
        ProblemClass::Reconciled => {
            format!("(status = 'completed' AND outcome <> 'cancelled' AND reconciled_at IS NOT NULL) AND {EXCEPTIONS}")
        }
        ProblemClass::Ok => "(outcome = 'succeeded' AND reconciled_at IS NULL)".to_owned(),
        ProblemClass::Cancelled => format!("(outcome = 'cancelled') AND {EXCEPTIONS}"),
    }
}

/// The SQL expression naming each run's problem class at `now`.
fn problem_case(sql: &mut Sql, now: Timestamp, thresholds: &Thresholds) -> String {
    let stale = stale_predicate(sql, now, thresholds);
    format!(
        "CASE WHEN outcome = 'cancelled' THEN 'cancelled' \
         WHEN status = 'completed' AND reconciled_at IS NOT NULL THEN 'reconciled' \
         WHEN outcome = 'succeeded' THEN 'ok' \
         WHEN status = 'completed' THEN 'needs_follow_up' \
         WHEN {stale} THEN 'active_stale' \
         ELSE 'active' END"
    )
}

/// Active runs the reconciler may complete (the SQL form of
/// [`tenantatlas_domain::problem::reconcilable`]), oldest first.
pub(crate) fn reconcilable(now: Timestamp, thresholds: &Thresholds, limit: u32) -> Sql {
    let mut sql = Sql::default();
    let mut queued = Vec::new();
    for (d, names) in grouped(thresholds, |t| t.queued) {
        let p = sql.arg(now.minus(d));
        queued.push(format!("(type IN ({}) AND available_at <= {p})", quoted(&names)));
    }
    let now_p = sql.arg(now);
    let mut silent = Vec::new();
    for (d, names) in grouped(thresholds, |t| t.heartbeat) {
        let p = sql.arg(now.minus(d));
        silent.push(format!(
            "(type IN ({}) AND COALESCE(heartbeat_at, started_at, created_at) <= {p})",
            quoted(&names)
        ));
    }
    let limit = sql.arg(i64::from(limit));
    let _ = write!(
        sql.text,
        "SELECT {RUN_COLUMNS} FROM operation_runs WHERE active AND ((status = 'queued' AND ({})) \
         OR (status = 'running' AND ((lease_expires_at IS NOT NULL AND lease_expires_at <= {now_p}) \
         OR (lease_expires_at IS NULL AND ({}))))) ORDER BY created_at, id LIMIT {limit}",
        queued.join(" OR "),
        silent.join(" OR ")
    );
    sql
}

/// A page of runs.
pub(crate) fn list_runs(q: &RunQuery) -> Sql {
    let mut sql = Sql::default();
    let active_only = matches!(q.filter.problem, Some(ProblemClass::Active | ProblemClass::ActiveStale))
        || matches!(
            q.filter.status,
            Some(StatusFilter::Bucket(StatusBucket::Queued | StatusBucket::Running))
        );
    if active_only {
        // Active runs are few: find the page's ids among the active runs in
        // scope first (materialized, so that the planner cannot walk a list
        // index backwards through every completed run of a tenant looking
        // for them; narrow, so that sorting them costs little), then read
        // those rows.
        sql.push("WITH a AS MATERIALIZED (SELECT id AS a_id, created_at AS a_created FROM operation_runs WHERE active");
        list_conditions(&mut sql, q);
        let limit = sql.arg(i64::from(q.limit.clamp(1, 500)) + 1);
        let _ = write!(
            sql.text,
            ") SELECT {RUN_COLUMNS} FROM operation_runs WHERE id IN \
             (SELECT a_id FROM a ORDER BY a_created DESC, a_id DESC LIMIT {limit}) ORDER BY created_at DESC, id DESC"
        );
        return sql;
    }
    let exceptions_only = matches!(
        q.filter.problem,
        Some(ProblemClass::NeedsFollowUp | ProblemClass::Reconciled | ProblemClass::Cancelled)
    ) || matches!(
        q.filter.status,
        Some(
            StatusFilter::Blocked
                | StatusFilter::Bucket(StatusBucket::Failed | StatusBucket::Partial | StatusBucket::Cancelled)
        )
    );
    if exceptions_only {
        // The page's ids first, from an exceptions index alone (it holds
        // every column the conditions test, so runs of other classes are
        // passed over without reading their rows), then those rows.
        sql.push("WITH a AS MATERIALIZED (SELECT id AS a_id FROM operation_runs WHERE 1 = 1");
        list_conditions(&mut sql, q);
        let limit = sql.arg(i64::from(q.limit.clamp(1, 500)) + 1);
        let _ = write!(
            sql.text,
            " ORDER BY created_at DESC, id DESC LIMIT {limit}) SELECT {RUN_COLUMNS} FROM operation_runs \
             WHERE id IN (SELECT a_id FROM a) ORDER BY created_at DESC, id DESC"
        );
        return sql;
    }
    let _ = write!(sql.text, "SELECT {RUN_COLUMNS} FROM operation_runs WHERE 1 = 1");
    list_conditions(&mut sql, q);
    let limit = sql.arg(i64::from(q.limit.clamp(1, 500)) + 1);
    let _ = write!(sql.text, " ORDER BY created_at DESC, id DESC LIMIT {limit}");
    sql
}

/// Scope, filters, problem class and cursor of a list.
fn list_conditions(sql: &mut Sql, q: &RunQuery) {
    scope_clause(sql, &q.scope);
    filter_clause(sql, &q.filter, true);
    if let Some(class) = q.filter.problem {
        let pred = problem_predicate(sql, class, q.now, &q.thresholds);
        let _ = write!(sql.text, " AND {pred}");
    }
    if let Some(c) = q.cursor {
        let ts = sql.arg(c.created_at);
        let id = sql.arg(c.id.as_uuid());
        let _ = write!(sql.text, " AND (created_at, id) < ({ts}, {id})");
    }
}

/// Runs per (workspace, tenant, problem class).
pub(crate) fn count_problems(q: &CountQuery) -> Sql {
    let mut sql = Sql::default();
    let case = problem_case(&mut sql, q.now, &q.thresholds);
    // completed runs count from the start of the window's first UTC day,
    // whichever way they are counted
    let since_day = crate::counters::day_of(q.completed_since);
    let f = &q.filter;
    let by_counters = f.op_type.is_none() && f.parent.is_none() && f.since.is_none() && f.until.is_none();
    if by_counters {
        // active runs live (through the index of active runs), completed
        // runs from the per-day class counters
        let _ = write!(
            sql.text,
            "SELECT workspace_id, tenant_id, {case} AS class, COUNT(*) AS n FROM operation_runs WHERE active"
        );
        scope_clause(&mut sql, &q.scope);
        filter_clause(&mut sql, f, false);
        let day = sql.arg(since_day);
        let nil = crate::counters::NIL;
        let _ = write!(
            sql.text,
            " GROUP BY workspace_id, tenant_id, class UNION ALL \
             SELECT NULLIF(workspace_id, '{nil}') AS workspace_id, NULLIF(tenant_id, '{nil}') AS tenant_id, class, \
             CAST(SUM(n) AS BIGINT) AS n FROM run_class_counts WHERE day >= {day}"
        );
        scope_clause(&mut sql, &q.scope);
        filter_clause(&mut sql, f, false);
        sql.push(" GROUP BY workspace_id, tenant_id, class");
        return sql;
    }
    let _ = write!(
        sql.text,
        "SELECT workspace_id, tenant_id, {case} AS class, COUNT(*) AS n FROM operation_runs WHERE 1 = 1"
    );
    scope_clause(&mut sql, &q.scope);
    filter_clause(&mut sql, f, false);
    let since = sql.arg(crate::counters::day_start(q.completed_since));
    let _ = write!(
        sql.text,
        " AND (active OR completed_at >= {since}) GROUP BY workspace_id, tenant_id, class"
    );
    sql
}

/// Completed runs per day and class within a scope, from the counters.
pub(crate) fn runs_per_day(scope: &RunScope, since: Timestamp) -> Sql {
    let mut sql = Sql::default();
    let day = sql.arg(crate::counters::day_of(since));
    let _ = write!(
        sql.text,
        "SELECT day, class, CAST(SUM(n) AS BIGINT) AS n FROM run_class_counts WHERE day >= {day}"
    );
    scope_clause(&mut sql, scope);
    sql.push(" GROUP BY day, class ORDER BY day, class");
    sql
}

/// Active runs per type and status.
pub(crate) const METRICS_ACTIVE: &str =
    "SELECT type, status, COUNT(*) AS n FROM operation_runs WHERE active GROUP BY type, status";

/// Queued runs due now.
pub(crate) const METRICS_QUEUE_DEPTH: &str =
    "SELECT COUNT(*) AS n FROM operation_runs WHERE active AND status = 'queued' AND available_at <= $1";

#[cfg(test)]
mod tests {
    use super::*;
    use tenantatlas_domain::ids::TenantId;
    use uuid::Uuid;

    #[test]
    fn empty_grant_selects_nothing_and_arguments_match_placeholders() {
        let q = RunQuery {
            scope: RunScope::Granted {
                workspaces: vec![],
                tenants: vec![],
            },
            filter: RunFilter::default(),
            limit: 10,
            cursor: None,
            now: Timestamp::EPOCH,
            thresholds: Thresholds::default(),
        };
        let s = list_runs(&q);
        assert!(s.text.contains("1 = 0"));
        assert_eq!(s.args.len(), 1);

        let q = RunQuery {
            scope: RunScope::Granted {
                workspaces: vec![],
                tenants: vec![TenantId::from_uuid(Uuid::nil())],
            },
            filter: RunFilter {
                problem: Some(ProblemClass::ActiveStale),
                ..RunFilter::default()
            },
            ..q
        };
        let s = list_runs(&q);
        let max = (1..=s.args.len()).filter(|i| s.text.contains(&format!("${i}"))).count();
        assert_eq!(max, s.args.len(), "{}", s.text);
    }
}
