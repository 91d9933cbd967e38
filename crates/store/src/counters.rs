//! Per-day class counters (law 6 at scale): the completion transaction adds
//! each completed run to `run_class_counts` under its tenant, UTC day and
//! class, which never changes again; dashboards read those few rows and
//! count only the active runs live (see `sqlgen::count_problems`).

use std::collections::BTreeMap;

use tenantatlas_domain::Timestamp;
use tenantatlas_domain::problem::terminal_class;
use tenantatlas_domain::run::Run;
use uuid::Uuid;

/// Stands for "no workspace / no tenant" (system runs) in the counters.
pub(crate) const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// A day in microseconds.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

/// The UTC day number of `t`.
pub(crate) fn day_of(t: Timestamp) -> i64 {
    t.unix_micros().div_euclid(DAY_MICROS)
}

/// The start of `t`'s UTC day.
pub(crate) fn day_start(t: Timestamp) -> Timestamp {
    Timestamp::from_unix_micros(day_of(t) * DAY_MICROS)
}

/// What to add: (workspace, tenant, day, class) → runs, in key order (so
/// concurrent writers lock counter rows in the same order).
pub(crate) fn deltas<'a>(runs: impl Iterator<Item = &'a Run>) -> Vec<(Uuid, Uuid, i64, &'static str, i64)> {
    let mut m: BTreeMap<(Uuid, Uuid, i64, &'static str), i64> = BTreeMap::new();
    for r in runs {
        let (Some(class), Some(at)) = (terminal_class(r), r.completed_at) else {
            continue;
        };
        let ws = r.workspace_id.map_or(Uuid::nil(), |w| w.as_uuid());
        let t = r.tenant_id.map_or(Uuid::nil(), |t| t.as_uuid());
        *m.entry((ws, t, day_of(at), class.as_str())).or_default() += 1;
    }
    m.into_iter().map(|((w, t, d, c), n)| (w, t, d, c, n)).collect()
}
