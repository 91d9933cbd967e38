//! The `tenantatlas` command line.
//!
//! `args` declares the interface (CONTRACT.md), `commands` carries each
//! command out through the engine, `output` renders people-facing text.
//! Errors print as one line on stderr; the exit code says what kind:
//! 1 failure, 2 bad input (a name already taken too), 3 refused (the user
//! may not do this); `run start --follow` answers the run's outcome
//! (0 succeeded, 1 failed, 4 blocked, 5 cancelled, 6 partially succeeded).

mod args;
mod commands;
mod follow;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tenantatlas_engine::EngineError;

/// Why a command failed, and its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Exit 1: something failed.
    Failed(String),
    /// Exit 2: the input was bad.
    Usage(String),
    /// Exit 3: refused; nothing was created or changed.
    Refused(String),
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Refused(_) => 3,
        }
    }

    fn message(&self) -> String {
        let m = match self {
            CliError::Failed(m) | CliError::Usage(m) | CliError::Refused(m) => m,
        };
        m.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// An engine error, where "not found" of the named thing is a refusal
    /// (`refusal`) or plain failure.
    pub fn engine(e: EngineError, refusal: bool) -> Self {
        match e {
            EngineError::Invalid(f) => CliError::Usage(f.to_string()),
            // a name already taken, a workspace left without an owner: the
            // input is what has to change
            EngineError::Conflict(m) => CliError::Usage(m),
            e @ EngineError::Unavailable(_) => CliError::Usage(format!("type: {e}")),
            // a missing or bad key, an unsafe key file: the configuration
            // has to change
            EngineError::Secret(s) if s.is_configuration() => CliError::Usage(s.to_string()),
            EngineError::NotFound(what) if refusal => {
                CliError::Refused(format!("refused: {what} not found, or you may not act on it"))
            }
            e if e.is_refusal() => CliError::Refused(format!("refused: {e}")),
            e => CliError::Failed(e.to_string()),
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        CliError::engine(e, false)
    }
}

impl From<tenantatlas_domain::FieldError> for CliError {
    fn from(e: tenantatlas_domain::FieldError) -> Self {
        CliError::Usage(e.to_string())
    }
}

fn init_tracing(long_running: bool) {
    // One-shot commands stay quiet unless RUST_LOG asks; workers and nodes
    // log at info. Logs go to stderr so `--json` output stays one document.
    let default = if long_running { "info,sqlx=warn" } else { "off" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: a log file or journal gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    init_tracing(matches!(
        cli.command,
        args::Command::Worker(_) | args::Command::Serve(_)
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", e.message());
            ExitCode::from(e.code())
        }
    }
}
