//! Group commit for starts.
//!
//! One PostgreSQL commit costs a disk flush (milliseconds). Starts from
//! concurrent callers are therefore queued here and written together: a
//! collector takes whatever requests are waiting (up to a batch limit) and
//! writes them in one transaction through the store's batch start, while
//! the next batch accumulates. Each caller gets its own answer; if a batch
//! fails as a whole, its requests are retried one by one so that one bad
//! request cannot fail its neighbours.

use std::sync::Arc;

use crate::port::{NewRun, StartRecord};
use crate::port::{Store, StoreError};
use tenantatlas_domain::Timestamp;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::clock::Clock;
use crate::error::{EngineError, Result};

struct Job {
    new: NewRun,
    reply: oneshot::Sender<Result<StartRecord>>,
}

/// Submits starts to the group-commit collector.
#[derive(Clone, Debug)]
pub(crate) struct Starter {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Starter {
    /// Spawns the collector on the current Tokio runtime.
    pub(crate) fn spawn(store: Store, clock: Arc<dyn Clock>, max_batch: usize, in_flight: usize) -> Self {
        let (tx, rx) = mpsc::channel(max_batch.max(1) * 4);
        tokio::spawn(collect(rx, store, clock, max_batch.max(1), in_flight.max(1)));
        Self { tx }
    }

    /// Starts one run (or joins its twin), sharing a commit with whatever
    /// else is being started right now.
    pub(crate) async fn submit(&self, new: NewRun) -> Result<StartRecord> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { new, reply })
            .await
            .map_err(|_| EngineError::Internal("the start collector stopped".into()))?;
        answer
            .await
            .map_err(|_| EngineError::Internal("the start collector dropped a request".into()))?
    }
}

async fn collect(mut rx: mpsc::Receiver<Job>, store: Store, clock: Arc<dyn Clock>, max_batch: usize, in_flight: usize) {
    let permits = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        // Take everything that arrived while we waited for a permit.
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let store = store.clone();
        let now = clock.now();
        tokio::spawn(async move {
            write_batch(&store, jobs, now).await;
            drop(permit);
        });
    }
}

async fn write_batch(store: &Store, jobs: Vec<Job>, now: Timestamp) {
    let batch: Vec<NewRun> = jobs.iter().map(|j| j.new.clone()).collect();
    match store.start_runs(&batch, now).await {
        Ok(records) => {
            for (job, rec) in jobs.into_iter().zip(records) {
                let _ = job.reply.send(Ok(rec));
            }
        }
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(e.into()));
            }
        }
        Err(first) => {
            tracing::warn!(error = %first, size = jobs.len(), "batch start failed; retrying one by one");
            for job in jobs {
                let one = store
                    .start_runs(std::slice::from_ref(&job.new), now)
                    .await
                    .and_then(|mut v| {
                        v.pop()
                            .ok_or_else(|| StoreError::Corrupt("start returned nothing".into()))
                    });
                let _ = job.reply.send(one.map_err(EngineError::from));
            }
        }
    }
}
