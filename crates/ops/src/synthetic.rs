//! `synthetic`: a configurable workload for tests, demos and benchmarks
//! (CONTRACT.md). With `units` it plans that many counted units of
//! `unit_ms` each, every `fail_every`-th failing; without, it works
//! indeterminately for `duration_ms`. `fail_attempts` makes the first
//! attempts fail with a retryable error; `panic` makes the handler panic.

use std::time::Duration;

use async_trait::async_trait;
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_engine::worker::{Done, Handler, HandlerError, RunContext};

/// The synthetic workload.
#[derive(Clone, Copy, Debug, Default)]
pub struct Synthetic;

fn ms(v: Option<i64>) -> Duration {
    Duration::from_millis(u64::try_from(v.unwrap_or(0)).unwrap_or(0))
}

#[async_trait]
impl Handler for Synthetic {
    async fn run(&self, ctx: &mut RunContext) -> Result<Done, HandlerError> {
        let p = ctx.params().clone();
        if p.bool("panic") == Some(true) {
            panic!("synthetic panic requested by the run's parameters");
        }
        if let Some(n) = p.int("fail_attempts")
            && i64::from(ctx.run().attempt) <= n
        {
            return Err(HandlerError::retryable(
                ReasonCode::ProviderThrottled,
                "synthetic throttling (fail_attempts)",
            ));
        }
        let Some(units) = p.int("units") else {
            ctx.sleep(ms(p.int("duration_ms"))).await?;
            return Ok(Done::Succeeded);
        };
        let keys: Vec<String> = (0..units).map(|i| format!("unit-{i:07}")).collect();
        let pending = ctx.plan(keys).await?;
        let unit_time = ms(p.int("unit_ms"));
        let fail_every = p
            .int("fail_every")
            .and_then(|k| u64::try_from(k).ok())
            .filter(|k| *k > 0);
        for key in pending {
            if !unit_time.is_zero() {
                ctx.sleep(unit_time).await?;
            }
            let index: u64 = key.trim_start_matches("unit-").parse().unwrap_or(0);
            let failed = fail_every.is_some_and(|k| (index + 1).is_multiple_of(k));
            if failed {
                let f = Failure::new(ReasonCode::UnitInvalidPayload, &format!("synthetic failure of {key}"));
                ctx.unit(key, UnitOutcome::Failed, Some(f)).await?;
            } else {
                ctx.unit(key, UnitOutcome::Succeeded, None).await?;
            }
        }
        Ok(Done::FromUnits)
    }
}
