//! `tenantatlas-mockgraph`: a faithful local Microsoft Graph serving
//! directory-provider folders as tenants (see the library's docs).
//!
//! ```text
//! tenantatlas-mockgraph --tenant TENANT_ID=DIR [--tenant …] [--bind ADDR] [--page-size N]
//!                       [--throttle FRACTION] [--retry-after SECONDS] [--token-lifetime SECONDS]
//! ```
//!
//! Prints its base URL (`http://127.0.0.1:8090`) as one line on stdout
//! once it listens, and serves until interrupted. A client secret is
//! required only when `MOCKGRAPH_CLIENT_SECRET` is set (never a flag: a
//! secret on a command line is visible to every user of the machine).
//! Exit codes: 0 after an interrupt, 2 for a bad argument or tenant
//! folder, 1 when the address cannot be bound.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tenantatlas_mockgraph::{MockConfig, StartError, check_seconds, check_tenant_id};

#[derive(Parser, Debug)]
#[command(
    name = "tenantatlas-mockgraph",
    version,
    about = "A faithful local Microsoft Graph: serves directory-provider folders as tenants.",
    after_help = "A client secret is required only when MOCKGRAPH_CLIENT_SECRET is set.\nControl routes: GET /_mock/stats, GET /_mock/requests, POST /_mock/faults."
)]
struct Args {
    /// Serves the folder DIR as the tenant TENANT_ID (a GUID or a domain).
    #[arg(long = "tenant", value_name = "TENANT_ID=DIR", required = true, value_parser = parse_tenant)]
    tenants: Vec<(String, PathBuf)>,
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// Items per list page.
    #[arg(long, value_name = "N", default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=1000))]
    page_size: u64,
    /// The fraction (0 to 1) of Graph requests answered 429.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = parse_fraction)]
    throttle: f64,
    /// The Retry-After of those 429s, in seconds (integer or decimal).
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds)]
    retry_after: String,
    /// How long an access token lives, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    token_lifetime: u64,
}

fn parse_tenant(s: &str) -> Result<(String, PathBuf), String> {
    let (id, dir) = s
        .split_once('=')
        .ok_or_else(|| "expected TENANT_ID=DIR (e.g. contoso.onmicrosoft.com=fixtures/tenants/contoso)".to_owned())?;
    check_tenant_id(id)?;
    if dir.is_empty() {
        return Err("the folder after '=' is empty".to_owned());
    }
    Ok((id.to_owned(), PathBuf::from(dir)))
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("'{s}' is not a fraction between 0 and 1 (like 0.05)")),
    }
}

fn parse_seconds(s: &str) -> Result<String, String> {
    check_seconds(s)?;
    Ok(s.to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut cfg = MockConfig::new()
        .page_size(usize::try_from(args.page_size).unwrap_or(25))
        .throttle(args.throttle, args.retry_after)
        .token_lifetime(Duration::from_secs(args.token_lifetime));
    cfg.tenants = args.tenants;
    if let Ok(secret) = std::env::var("MOCKGRAPH_CLIENT_SECRET")
        && !secret.is_empty()
    {
        cfg.client_secret = Some(secret);
    }
    let mock = match tenantatlas_mockgraph::start(cfg, args.bind).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tenantatlas-mockgraph: {e}");
            let code = match e.downcast_ref::<StartError>() {
                Some(StartError::Bind { .. }) => 1,
                _ => 2,
            };
            return ExitCode::from(code);
        }
    };
    let mut out = std::io::stdout().lock();
    // The one line a script waits for.
    if writeln!(out, "{}", mock.base_url()).and_then(|_| out.flush()).is_err() {
        return ExitCode::from(1);
    }
    drop(out);
    for (id, name) in mock.tenants() {
        eprintln!("tenantatlas-mockgraph: serving tenant {id} ({name})");
    }
    let _ = tokio::signal::ctrl_c().await;
    mock.stop().await;
    ExitCode::SUCCESS
}
