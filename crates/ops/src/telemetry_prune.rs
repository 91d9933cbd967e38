//! `telemetry.prune`: deletes product-usage telemetry past its retention,
//! daily, as a system operation that touches nothing else.
//!
//! The telemetry ledger itself arrives with the telemetry issue; until then
//! this handler has nothing to delete and says so in its counts
//! (`deleted: 0`), so the daily schedule and its runs are already real.

use async_trait::async_trait;
use tenantatlas_domain::FieldError;
use tenantatlas_domain::catalog::{OperationType, ProgressPlan, SystemSchedule, TypeSpec, accepts};
use tenantatlas_domain::counts::SummaryCounts;
use tenantatlas_domain::params::Params;
use tenantatlas_domain::reason::ReasonCode;
use tenantatlas_engine::worker::{Done, HandlerError, Operation, RunContext};

/// The spec: a system type every node schedules daily.
pub static SPEC: TypeSpec = TypeSpec {
    schedule: Some(SystemSchedule {
        name: "system: telemetry prune",
        cron: "17 3 * * *",
    }),
    check: accepts::<NoParams>,
    // deleting what is past retention again deletes nothing twice
    resumable: true,
    ..TypeSpec::system(OperationType::TelemetryPrune, ProgressPlan::Indeterminate)
};

/// It takes no parameters.
#[derive(Clone, Copy, Debug)]
pub struct NoParams;

impl TryFrom<&Params> for NoParams {
    type Error = FieldError;

    fn try_from(p: &Params) -> Result<Self, FieldError> {
        match p.iter().next() {
            Some((name, _)) => Err(FieldError::new(
                format!("params.{name}"),
                "this operation takes no parameters",
            )),
            None => Ok(NoParams),
        }
    }
}

/// The telemetry retention prune.
#[derive(Clone, Copy, Debug, Default)]
pub struct TelemetryPrune;

#[async_trait]
impl Operation for TelemetryPrune {
    const SPEC: &'static TypeSpec = &SPEC;
    type Params = NoParams;

    async fn run(&self, ctx: &mut RunContext, _: NoParams) -> Result<Done, HandlerError> {
        let counts = SummaryCounts::parse_reported("summary_counts", &serde_json::json!({ "deleted": 0 }))
            .map_err(|e| HandlerError::fatal(ReasonCode::InternalError, &e.to_string()))?;
        ctx.counts(counts).await?;
        Ok(Done::Succeeded)
    }
}
