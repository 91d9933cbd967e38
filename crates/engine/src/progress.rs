//! Law 4 — progress is counted only when it is true; law 11 — fan-out
//! completes once.
//!
//! Work units are planned once (the total is set then), and each unit's
//! result is recorded in the unit ledger, whose one row per unit makes a
//! second count impossible whatever retries happen. Every write here is
//! fenced by the caller's attempt: a result arriving after the run was
//! reconciled or re-claimed changes nothing but the timeline.

use crate::port::{CountsWrite, Fence, NewRun, PlanApplied, UnitResult, UnitsApplied};
use tenantatlas_domain::FieldError;
use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::counts::SummaryCounts;
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::Outcome;
use tenantatlas_domain::params::Params;
use tenantatlas_domain::run::Run;

use crate::Engine;
use crate::error::Result;

/// Longest accepted unit key.
const MAX_UNIT_KEY: usize = 200;

fn check_keys<'a>(keys: impl Iterator<Item = &'a str>) -> Result<()> {
    for k in keys {
        if k.is_empty() || k.len() > MAX_UNIT_KEY || k.chars().any(char::is_control) {
            return Err(FieldError::new("unit_key", "must be 1-200 printable characters").into());
        }
    }
    Ok(())
}

impl Engine {
    /// Plans a running run's work units: sets its total once. Planning zero
    /// units completes the run at once as succeeded. A resumed attempt
    /// planning again gets [`PlanApplied::AlreadyPlanned`].
    pub async fn plan_units(&self, run: RunId, attempt: u32, keys: &[String]) -> Result<PlanApplied> {
        check_keys(keys.iter().map(String::as_str))?;
        let planned = self
            .store()
            .plan_units(Fence::new(run, attempt), keys, self.now())
            .await?;
        if planned == (PlanApplied::Planned { total: 0 }) {
            self.complete(run, Some(attempt), Outcome::Succeeded, None, Vec::new())
                .await?;
        }
        Ok(planned)
    }

    /// Records unit results; each unit counts once, ever.
    pub async fn complete_units(&self, run: RunId, attempt: u32, results: &[UnitResult]) -> Result<UnitsApplied> {
        check_keys(results.iter().map(|r| r.unit_key.as_str()))?;
        Ok(self
            .store()
            .complete_units(Fence::new(run, attempt), results, self.now(), &self.thresholds())
            .await?)
    }

    /// Fans a running parent out into queued child runs (same tenant): the
    /// parent's total is its children, and it completes — exactly once —
    /// when its last child does, with an outcome derived from theirs. Zero
    /// children completes it at once as succeeded.
    pub async fn fan_out(&self, parent: &Run, children: Vec<(OperationType, Params)>) -> Result<PlanApplied> {
        let now = self.now();
        let batch = children
            .into_iter()
            .map(|(op, params)| {
                Ok(NewRun {
                    workspace_id: parent.workspace_id,
                    tenant_id: parent.tenant_id,
                    op_type: op,
                    identity: self.spec(op)?.identity_key(&params),
                    params,
                    initiator: parent.initiator,
                    available_at: now,
                })
            })
            .collect::<Result<Vec<NewRun>>>()?;
        let planned = self
            .store()
            .fan_out(Fence::new(parent.id, parent.attempt), &batch, now)
            .await?;
        if matches!(planned, PlanApplied::Planned { .. }) {
            for child in &batch {
                self.tally_ref().started(child.op_type);
            }
        }
        if planned == (PlanApplied::Planned { total: 0 }) {
            self.complete(parent.id, Some(parent.attempt), Outcome::Succeeded, None, Vec::new())
                .await?;
        }
        Ok(planned)
    }

    /// Moves a running phased run to phase `phase` of `phases`.
    pub async fn set_phase(&self, run: RunId, attempt: u32, phase: u32, phases: u32, label: &str) -> Result<bool> {
        if phases == 0 || phase == 0 || phase > phases {
            return Err(FieldError::new("phase", "must be between 1 and the number of phases").into());
        }
        let label = tenantatlas_domain::sanitize::SafeText::sanitize(label);
        Ok(self
            .store()
            .set_phase(Fence::new(run, attempt), phase, phases, label.as_str(), self.now())
            .await?)
    }

    /// Adds reported counts (parsed at the edge by
    /// [`SummaryCounts::parse_reported`]) to a running run.
    pub async fn add_counts(&self, run: RunId, attempt: u32, counts: SummaryCounts) -> Result<bool> {
        Ok(self
            .store()
            .add_counts(
                &CountsWrite {
                    fence: Fence::new(run, attempt),
                    counts,
                },
                self.now(),
            )
            .await?)
    }
}
