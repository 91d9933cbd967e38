//! `synthetic`: a configurable workload for tests, demos and benchmarks
//! (CONTRACT.md). With `units` it plans that many counted units of
//! `unit_ms` each, every `fail_every`-th failing; without, it works
//! indeterminately for `duration_ms`. `fail_attempts` makes the first
//! attempts fail with a retryable error; `panic` makes the handler panic.
//! It is refused unless the process opted in
//! (`TENANTATLAS_ENABLE_SYNTHETIC=1`).

use std::time::Duration;

use async_trait::async_trait;
use tenantatlas_domain::FieldError;
use tenantatlas_domain::access::Capability;
use tenantatlas_domain::catalog::{IdentityRule, OperationType, ProgressPlan, StaleThresholds, TypeSpec, accepts};
use tenantatlas_domain::params::{ParamKind, ParamSpec, Params};
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::reason::{Failure, ReasonCode};
use tenantatlas_engine::worker::{Done, HandlerError, Operation, RunContext};

/// The spec.
pub static SPEC: TypeSpec = TypeSpec {
    stale: StaleThresholds {
        queued: Duration::from_secs(5 * 60),
        heartbeat: Duration::from_secs(60),
        running_floor: Duration::from_secs(5 * 60),
        running_max: None,
    },
    needs_provider: false,
    // its units are skipped once finished; the rest only sleeps
    resumable: true,
    check: accepts::<SyntheticParams>,
    opt_in: Some("run with TENANTATLAS_ENABLE_SYNTHETIC=1 (or --enable-synthetic) to allow it"),
    // a start from the hub shows counted progress for a few seconds
    suggested: &[("units", "20"), ("unit_ms", "250")],
    ..TypeSpec::tenant(
        OperationType::Synthetic,
        Capability::StartSynthetic,
        ProgressPlan::CountedWhen("units"),
        &[
            ParamSpec {
                name: "units",
                kind: ParamKind::Int { min: 0, max: 1_000_000 },
                required: false,
                default: None,
                help: "planned unit count (0 completes at once; omitted: indeterminate)",
            },
            ParamSpec {
                name: "unit_ms",
                kind: ParamKind::Int { min: 0, max: 600_000 },
                required: false,
                default: Some("0"),
                help: "time per unit",
            },
            ParamSpec {
                name: "fail_every",
                kind: ParamKind::Int { min: 1, max: 1_000_000 },
                required: false,
                default: None,
                help: "every k-th unit fails (needs units)",
            },
            ParamSpec {
                name: "duration_ms",
                kind: ParamKind::Int {
                    min: 0,
                    max: 86_400_000,
                },
                required: false,
                default: Some("0"),
                help: "how long an indeterminate run works",
            },
            ParamSpec {
                name: "key",
                kind: ParamKind::Id,
                required: false,
                default: None,
                help: "identity: same key and tenant dedupe while one is active",
            },
            ParamSpec {
                name: "fail_attempts",
                kind: ParamKind::Int { min: 0, max: 10 },
                required: false,
                default: None,
                help: "the first N attempts fail with a retryable error (tests retries)",
            },
            ParamSpec {
                name: "panic",
                kind: ParamKind::Bool,
                required: false,
                default: None,
                help: "the handler panics (tests that a worker survives one)",
            },
        ],
        IdentityRule::ParamOrUnique("key"),
    )
};

/// What a synthetic run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Plans `units` counted units of `unit_time` each; every
    /// `fail_every`-th fails.
    Units {
        /// How many.
        units: u32,
        /// How long each takes.
        unit_time: Duration,
        /// Every k-th fails.
        fail_every: Option<u32>,
    },
    /// Works indeterminately for this long.
    For(Duration),
}

/// The parameters, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticParams {
    /// The work.
    pub work: Work,
    /// The first attempts that fail with a retryable error.
    pub fail_attempts: u32,
    /// Whether the handler panics.
    pub panic: bool,
}

fn count(p: &Params, name: &str) -> Result<Option<u32>, FieldError> {
    p.int(name)
        .map(|v| u32::try_from(v).map_err(|_| FieldError::new(format!("params.{name}"), "must fit 32 bits")))
        .transpose()
}

fn millis(p: &Params, name: &str) -> Duration {
    Duration::from_millis(p.int(name).and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

impl TryFrom<&Params> for SyntheticParams {
    type Error = FieldError;

    fn try_from(p: &Params) -> Result<Self, FieldError> {
        let fail_every = count(p, "fail_every")?;
        let work = match count(p, "units")? {
            Some(units) => Work::Units {
                units,
                unit_time: millis(p, "unit_ms"),
                fail_every,
            },
            None if fail_every.is_some() => {
                return Err(FieldError::new(
                    "params.fail_every",
                    "needs params.units (only counted units fail)",
                ));
            }
            None => Work::For(millis(p, "duration_ms")),
        };
        Ok(SyntheticParams {
            work,
            fail_attempts: count(p, "fail_attempts")?.unwrap_or(0),
            panic: p.bool("panic").unwrap_or(false),
        })
    }
}

/// The synthetic workload.
#[derive(Clone, Copy, Debug, Default)]
pub struct Synthetic;

#[async_trait]
impl Operation for Synthetic {
    const SPEC: &'static TypeSpec = &SPEC;
    type Params = SyntheticParams;

    async fn run(&self, ctx: &mut RunContext, p: SyntheticParams) -> Result<Done, HandlerError> {
        assert!(!p.panic, "synthetic panic requested by the run's parameters");
        if ctx.run().attempt <= p.fail_attempts {
            return Err(HandlerError::retryable(
                ReasonCode::ProviderThrottled,
                "synthetic throttling (fail_attempts)",
            ));
        }
        let (units, unit_time, fail_every) = match p.work {
            Work::For(d) => {
                ctx.sleep(d).await?;
                return Ok(Done::Succeeded);
            }
            Work::Units {
                units,
                unit_time,
                fail_every,
            } => (units, unit_time, fail_every),
        };
        let keys: Vec<String> = (0..units).map(|i| format!("unit-{i:07}")).collect();
        let pending = ctx.plan(keys).await?;
        for key in pending {
            if !unit_time.is_zero() {
                ctx.sleep(unit_time).await?;
            }
            let index: u32 = key.trim_start_matches("unit-").parse().unwrap_or(0);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tenantatlas_domain::params::RawParams;

    fn parse(v: serde_json::Value) -> Result<SyntheticParams, FieldError> {
        let p = SPEC.parse_params(RawParams::Json(&v))?;
        SyntheticParams::try_from(&p)
    }

    #[test]
    fn parameters_parse_into_the_work_they_describe() {
        assert_eq!(
            parse(json!({"units": 3, "unit_ms": 5, "fail_every": 2})).unwrap().work,
            Work::Units {
                units: 3,
                unit_time: Duration::from_millis(5),
                fail_every: Some(2)
            }
        );
        let p = parse(json!({"duration_ms": 7, "fail_attempts": 2})).unwrap();
        assert_eq!(
            (p.work, p.fail_attempts, p.panic),
            (Work::For(Duration::from_millis(7)), 2, false)
        );
    }

    #[test]
    fn the_edge_refuses_what_the_handler_could_not_run() {
        let e = parse(json!({"fail_every": 2})).unwrap_err();
        assert_eq!(e.field, "params.fail_every");
        assert!(e.rule.contains("needs params.units"), "{}", e.rule);
    }
}
