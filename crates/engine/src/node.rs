//! A node: a worker pool plus the singleton duties (reconciler, scheduler),
//! which one node at a time holds (PostgreSQL: an advisory lock on a
//! connection of its own; when the node dies the lock is released and
//! another node takes the duties within one sweep interval).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::worker::{Registry, Worker, WorkerConfig, WorkerReport};
use crate::{Engine, Result};

/// What a node runs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// A worker pool, if any.
    pub worker: Option<WorkerConfig>,
    /// Whether this node competes for the singleton duties.
    pub duties: bool,
    /// How often the duty holder sweeps (and others try to take over).
    pub sweep_interval: Duration,
    /// How often thresholds are re-learned (in sweeps).
    pub threshold_refresh_sweeps: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            worker: Some(WorkerConfig::default()),
            duties: true,
            sweep_interval: Duration::from_secs(15),
            threshold_refresh_sweeps: 20,
        }
    }
}

const DUTIES: &str = "duties";

/// Runs the node until `shutdown` fires.
pub async fn run_node(
    engine: Engine,
    registry: Registry,
    config: NodeConfig,
    shutdown: CancellationToken,
) -> Result<Option<WorkerReport>> {
    let worker = config.worker.clone().map(|wc| {
        let w = Worker::new(engine.clone(), registry, wc);
        tokio::spawn(w.run(shutdown.clone()))
    });
    let duties = config
        .duties
        .then(|| tokio::spawn(duties(engine.clone(), config.clone(), shutdown.clone())));
    if let Some(d) = duties
        && let Ok(Err(e)) = d.await
    {
        tracing::error!(error = %e, "the singleton duties stopped");
    }
    match worker {
        Some(w) => match w.await {
            Ok(r) => r.map(Some),
            Err(e) => Err(crate::EngineError::Internal(format!("the worker task failed: {e}"))),
        },
        None => {
            shutdown.cancelled().await;
            Ok(None)
        }
    }
}

async fn duties(engine: Engine, config: NodeConfig, shutdown: CancellationToken) -> Result<()> {
    if let Err(e) = engine.ensure_system_schedules().await {
        tracing::warn!(error = %e, "creating the system schedules failed");
    }
    let mut guard = None;
    let mut sweeps = 0u32;
    loop {
        if guard.is_none() {
            match engine.store().try_singleton(DUTIES).await {
                Ok(Some(g)) => {
                    tracing::info!("this node now holds the reconciler and scheduler duties");
                    guard = Some(g);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not try the singleton lock"),
            }
        }
        // Every node learns the thresholds it classifies with.
        if sweeps.is_multiple_of(config.threshold_refresh_sweeps.max(1))
            && let Err(e) = engine.refresh_thresholds().await
        {
            tracing::warn!(error = %e, "refreshing adaptive thresholds failed");
        }
        sweeps = sweeps.wrapping_add(1);
        if let Some(g) = guard.as_mut() {
            if g.still_held().await {
                if let Err(e) = engine.reconcile_sweep(false).await {
                    tracing::warn!(error = %e, "reconciler sweep failed");
                }
                if let Err(e) = engine.schedule_tick().await {
                    tracing::warn!(error = %e, "scheduler tick failed");
                }
            } else {
                tracing::warn!("lost the singleton lock; will try to take it again");
                guard = None;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(config.sweep_interval) => {}
        }
    }
}
