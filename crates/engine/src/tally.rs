//! What this node did: runs it started, completed and reconciled, and how
//! long the runs it claimed had waited. The figures behind `/metrics`'
//! counters.
//!
//! They are this process's own (Prometheus' convention for counters: they
//! start at zero with the process, and a cluster's totals are the sum over
//! its nodes), so a scrape never counts the ledger. The figures that are
//! about now — active runs, queue depth — are read from the database.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::run::Run;

/// Upper bounds (seconds) of the claim-latency histogram's buckets.
pub const CLAIM_LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// A cumulative histogram in Prometheus' shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or below each of [`CLAIM_LATENCY_BUCKETS`].
    pub buckets: [u64; CLAIM_LATENCY_BUCKETS.len()],
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, le) in self.buckets.iter_mut().zip(CLAIM_LATENCY_BUCKETS) {
            if s <= le {
                *b += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TallySnapshot {
    /// Runs this node started (joins are not starts), by type name.
    pub started: BTreeMap<&'static str, u64>,
    /// Runs this node completed, by type and outcome name.
    pub completed: BTreeMap<(&'static str, &'static str), u64>,
    /// Runs this node's reconciler (or a platform operator on this node)
    /// completed as stale, by type name.
    pub reconciled: BTreeMap<&'static str, u64>,
    /// Start-to-claim latency of the runs this node's workers claimed.
    pub claim_latency: Histogram,
}

/// The node's counters. Cheap to update (one uncontended lock).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    data: Mutex<TallySnapshot>,
}

impl Tally {
    fn with(&self, f: impl FnOnce(&mut TallySnapshot)) {
        let mut d = self.data.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut d);
    }

    /// Counts one run started (not a join).
    pub(crate) fn started(&self, op: OperationType) {
        self.with(|d| *d.started.entry(op.as_str()).or_default() += 1);
    }

    /// Counts `run` if it is completed (a transition that completed it).
    pub(crate) fn completed(&self, run: &Run) {
        let Some(outcome) = run.state.outcome() else { return };
        self.with(|d| {
            let op = run.op_type.as_str();
            *d.completed.entry((op, outcome.as_str())).or_default() += 1;
            if run.reconciliation.is_some() {
                *d.reconciled.entry(op).or_default() += 1;
            }
        });
    }

    pub(crate) fn claimed(&self, runs: &[Run]) {
        if runs.is_empty() {
            return;
        }
        self.with(|d| {
            for r in runs {
                if let Some(claim) = &r.claim {
                    d.claim_latency.observe(claim.at.since(r.available_at));
                }
            }
        });
    }

    pub(crate) fn snapshot(&self) -> TallySnapshot {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(120));
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], 1, "≤ 5 ms");
        assert_eq!(h.buckets[3], 2, "≤ 50 ms");
        assert_eq!(
            h.buckets[CLAIM_LATENCY_BUCKETS.len() - 1],
            2,
            "≤ 60 s; 120 s only in +Inf"
        );
        assert!((h.sum - 120.033).abs() < 1e-9);
    }
}
