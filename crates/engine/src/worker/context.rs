//! What a handler sees of its run: its tenant, parameters, unit planning
//! and results, phases, counts, the fence its own writes carry, and
//! whether it must stop.
//!
//! Every write goes through the engine fenced by the run's attempt
//! ([`Fence`]), so a handler that outlived its lease cannot change
//! anything; the domain stores a handler is built with take the same fence
//! and refuse the same way. Unit results are buffered and written in
//! batches.

use std::time::{Duration, Instant};

use crate::port::{Fence, PlanApplied, Tenant, UnitResult, UnitsApplied};
use tenantatlas_domain::counts::SummaryCounts;
use tenantatlas_domain::params::Params;
use tenantatlas_domain::progress::UnitOutcome;
use tenantatlas_domain::reason::Failure;
use tenantatlas_domain::run::Run;
use tokio::sync::watch;

use super::handler::HandlerError;
use super::{RETRY_LIMIT, retrying};
use crate::Engine;

/// Why a running handler must stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Someone asked to cancel the run.
    Cancelled,
    /// The run is no longer this attempt's (reconciled, re-claimed).
    Fenced,
    /// The worker is shutting down and its grace period ran out.
    Shutdown,
}

const FLUSH_UNITS: usize = 64;
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// A running run, as its handler sees it.
pub struct RunContext {
    engine: Engine,
    run: Run,
    fence: Fence,
    tenant: Option<Tenant>,
    stop: watch::Receiver<Option<StopReason>>,
    buffer: Vec<UnitResult>,
    last_flush: Instant,
    zero_units: bool,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("run", &self.run.id)
            .field("attempt", &self.run.attempt)
            .finish()
    }
}

impl RunContext {
    pub(crate) fn new(engine: Engine, run: Run, stop: watch::Receiver<Option<StopReason>>) -> Self {
        Self {
            engine,
            fence: Fence::new(run.id, run.attempt),
            run,
            tenant: None,
            stop,
            buffer: Vec::new(),
            last_flush: Instant::now(),
            zero_units: false,
        }
    }

    /// The run (as claimed).
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// The engine, for the reads a handler's dependencies need (a
    /// tenant's credentials).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Its parameters.
    pub fn params(&self) -> &Params {
        &self.run.params
    }

    /// The right to write on this attempt's behalf: pass it to every
    /// domain write, which the store refuses once the attempt is fenced.
    pub fn fence(&self) -> Fence {
        self.fence
    }

    /// The run's tenant (read once, then kept); `None` for a system run.
    /// A tenant deleted since the start blocks the run.
    pub async fn tenant(&mut self) -> Result<Option<&Tenant>, HandlerError> {
        let Some(id) = self.run.tenant_id else {
            return Ok(None);
        };
        if self.tenant.is_none() {
            let engine = &self.engine;
            let found = retrying(RETRY_LIMIT, || engine.get_tenant(id))
                .await
                .map_err(internal)?
                .ok_or_else(|| HandlerError::Blocked("the run's tenant no longer exists".into()))?;
            self.tenant = Some(found);
        }
        Ok(self.tenant.as_ref())
    }

    /// Now, by the engine's clock (for a `Retry-After` turned into
    /// [`HandlerError::not_before`]).
    pub fn now(&self) -> tenantatlas_domain::Timestamp {
        self.engine.now()
    }

    /// Why the handler must stop, if it must.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }

    /// `Err(Stopped)` once the handler must stop.
    pub fn check(&self) -> Result<(), HandlerError> {
        match self.stop_reason() {
            Some(_) => Err(HandlerError::Stopped),
            None => Ok(()),
        }
    }

    /// Sleeps for `d`, waking early with `Err(Stopped)` if the run must
    /// stop.
    pub async fn sleep(&mut self, d: Duration) -> Result<(), HandlerError> {
        self.check()?;
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            changed = stop.wait_for(Option::is_some) => {
                let _ = changed;
                Err(HandlerError::Stopped)
            }
        }
    }

    /// Plans the run's work units (law 4: the total is set once) and answers
    /// the keys still to do — all of them on a first attempt, the unfinished
    /// ones when a later attempt resumes. Zero units completes the run at
    /// once, as succeeded.
    pub async fn plan(&mut self, keys: Vec<String>) -> Result<Vec<String>, HandlerError> {
        self.check()?;
        if keys.is_empty() && self.run.units.total.is_none() {
            self.zero_units = true;
            return Ok(Vec::new());
        }
        let (engine, id, attempt) = (&self.engine, self.run.id, self.run.attempt);
        let planned = retrying(RETRY_LIMIT, || engine.plan_units(id, attempt, &keys))
            .await
            .map_err(internal)?;
        match planned {
            PlanApplied::Planned { total } => {
                self.run.units.total = Some(total);
                let mut k = keys;
                k.sort();
                k.dedup();
                Ok(k)
            }
            PlanApplied::AlreadyPlanned { total } => {
                self.run.units.total = Some(total);
                let pending = retrying(RETRY_LIMIT, || async {
                    Ok(engine.store().run_units(id, true, u32::MAX).await?)
                })
                .await
                .map_err(internal)?;
                Ok(pending.into_iter().map(|u| u.unit_key).collect())
            }
            PlanApplied::Fenced => Err(HandlerError::Stopped),
        }
    }

    /// Records that unit `key` ended with `outcome` (and `failure`, when it
    /// failed). Results are written in batches; each counts once, ever.
    pub async fn unit(
        &mut self,
        key: String,
        outcome: UnitOutcome,
        failure: Option<Failure>,
    ) -> Result<(), HandlerError> {
        self.buffer.push(UnitResult {
            unit_key: key,
            outcome,
            failure,
        });
        if self.buffer.len() >= FLUSH_UNITS || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush().await?;
        }
        self.check()
    }

    /// Writes buffered unit results now.
    pub async fn flush(&mut self) -> Result<(), HandlerError> {
        self.last_flush = Instant::now();
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.buffer);
        let (engine, id, attempt) = (&self.engine, self.run.id, self.run.attempt);
        match retrying(RETRY_LIMIT, || engine.complete_units(id, attempt, &batch))
            .await
            .map_err(internal)?
        {
            UnitsApplied::Counted { .. } => Ok(()),
            UnitsApplied::Fenced => Err(HandlerError::Stopped),
        }
    }

    /// Moves to phase `phase` of `phases`.
    pub async fn phase(&mut self, phase: u32, phases: u32, label: &str) -> Result<(), HandlerError> {
        self.check()?;
        let (engine, id, attempt) = (&self.engine, self.run.id, self.run.attempt);
        match retrying(RETRY_LIMIT, || engine.set_phase(id, attempt, phase, phases, label))
            .await
            .map_err(internal)?
        {
            true => Ok(()),
            false => Err(HandlerError::Stopped),
        }
    }

    /// Adds to the run's reported counts.
    pub async fn counts(&mut self, counts: SummaryCounts) -> Result<(), HandlerError> {
        let (engine, id, attempt) = (&self.engine, self.run.id, self.run.attempt);
        match retrying(RETRY_LIMIT, || engine.add_counts(id, attempt, counts.clone()))
            .await
            .map_err(internal)?
        {
            true => Ok(()),
            false => Err(HandlerError::Stopped),
        }
    }

    /// Whether the handler planned zero units.
    pub(crate) fn planned_zero(&self) -> bool {
        self.zero_units
    }
}

fn internal(e: crate::EngineError) -> HandlerError {
    tracing::warn!(error = %e, "a run's write failed");
    HandlerError::retryable(
        tenantatlas_domain::reason::ReasonCode::InternalError,
        "the run could not record its progress",
    )
}
