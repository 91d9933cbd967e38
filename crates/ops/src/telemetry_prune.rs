//! `telemetry.prune`: deletes product-usage telemetry past its retention,
//! daily, as a system operation that touches nothing else.
//!
//! The telemetry ledger itself arrives with the telemetry issue; until then
//! this handler has nothing to delete and says so in its counts
//! (`deleted: 0`), so the daily schedule and its runs are already real.

use async_trait::async_trait;
use tenantatlas_domain::counts::SummaryCounts;
use tenantatlas_engine::worker::{Done, Handler, HandlerError, RunContext};

/// The telemetry retention prune.
#[derive(Clone, Copy, Debug, Default)]
pub struct TelemetryPrune;

#[async_trait]
impl Handler for TelemetryPrune {
    async fn run(&self, ctx: &mut RunContext) -> Result<Done, HandlerError> {
        let counts = SummaryCounts::parse_reported("summary_counts", &serde_json::json!({ "deleted": 0 }))
            .map_err(|e| HandlerError::fatal(tenantatlas_domain::reason::ReasonCode::InternalError, &e.to_string()))?;
        ctx.counts(counts).await?;
        Ok(Done::Succeeded)
    }
}
