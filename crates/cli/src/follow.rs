//! `run start --follow`: watches a run to its end from the database, with a
//! progress bar for counted runs (processed/total, ETA) and a spinner with
//! elapsed time otherwise; answers the contract's exit code.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tenantatlas_domain::ids::RunId;
use tenantatlas_domain::lifecycle::{Outcome, RunState};
use tenantatlas_domain::run::Run;
use tenantatlas_domain::view::ProgressView;
use tenantatlas_engine::Engine;

use crate::CliError;

/// The exit code of a completed run (CONTRACT.md).
pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded => 0,
        Outcome::Failed => 1,
        Outcome::PartiallySucceeded => 6,
        Outcome::Blocked => 4,
        Outcome::Cancelled => 5,
    }
}

const POLL: Duration = Duration::from_millis(200);
const HINT_AFTER: Duration = Duration::from_secs(5);

/// Follows run `id` until it completes; draws on stderr when it is a
/// terminal (`show`), silently otherwise.
pub async fn follow(engine: &Engine, id: RunId, show: bool) -> Result<Run, CliError> {
    let bar = ProgressBar::with_draw_target(
        None,
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let spinner = ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    let counted = ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(spinner.clone());
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let mut hinted = false;
    loop {
        let run = engine
            .get_run_for(tenantatlas_engine::Viewer::Everything, id)
            .await
            .map_err(|e| match e {
                tenantatlas_engine::EngineError::NotFound(_) => CliError::Failed(format!("run {id} not found")),
                e => CliError::Failed(format!("cannot read the run: {e}")),
            })?;
        if let RunState::Completed(_) = run.state {
            bar.finish_and_clear();
            return Ok(run);
        }
        let view = engine.view(&run);
        match &view.progress {
            ProgressView::Counted {
                processed,
                total,
                eta_s,
            } => {
                bar.set_style(counted.clone());
                bar.set_length(*total);
                bar.set_position(*processed);
                bar.set_message(eta_s.map(|s| format!("ETA {s:.0}s")).unwrap_or_default());
            }
            ProgressView::Phased { phase, phases, label } => {
                bar.set_style(spinner.clone());
                bar.set_message(format!("phase {phase} of {phases}: {label}"));
            }
            ProgressView::Indeterminate { elapsed_s } => {
                bar.set_style(spinner.clone());
                let what = if run.state == RunState::Queued {
                    "queued"
                } else {
                    "running"
                };
                bar.set_message(format!("{} {what}, {elapsed_s:.1}s", run.op_type.label()));
            }
        }
        if run.state == RunState::Queued && !hinted && started.elapsed() > HINT_AFTER {
            hinted = true;
            bar.suspend(|| {
                eprintln!("waiting for a worker: start `tenantatlas worker` (or `serve`) on the same database");
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_own_exit_code_apart_from_bad_input() {
        let codes: Vec<u8> = Outcome::ALL.iter().map(|o| exit_code(*o)).collect();
        assert_eq!(exit_code(Outcome::PartiallySucceeded), 6, "CONTRACT.md");
        for (i, c) in codes.iter().enumerate() {
            assert!(!codes[..i].contains(c), "{codes:?}");
            assert!(![2, 3].contains(c), "2 and 3 mean bad input and refused: {codes:?}");
        }
    }
}
