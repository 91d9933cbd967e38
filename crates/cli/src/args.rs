//! The command line, as CONTRACT.md writes it.

use clap::{Args, Parser, Subcommand};

/// TenantAtlas: operations for many Microsoft 365 / Intune tenants.
#[derive(Debug, Parser)]
#[command(name = "tenantatlas", version, about, max_term_width = 100)]
pub struct Cli {
    /// Database: sqlite://PATH or postgres://… (created when missing for SQLite).
    #[arg(
        long,
        env = "TENANTATLAS_DATABASE_URL",
        default_value = "sqlite://tenantatlas.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Allow the `synthetic` operation type (tests, demos, benchmarks).
    #[arg(long, env = "TENANTATLAS_ENABLE_SYNTHETIC", global = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub enable_synthetic: bool,

    /// Print exactly one JSON document on stdout (before or after the command).
    #[arg(long, global = true)]
    pub json: bool,

    /// The hub's external base URL (https://atlas.example.com), for the "View run" links printed.
    #[arg(long, env = "TENANTATLAS_PUBLIC_URL", global = true, value_name = "URL", value_parser = public_url)]
    pub public_url: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (and nothing else).
    Migrate,
    /// Workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCmd),
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Users.
    #[command(subcommand)]
    User(UserCmd),
    /// Workspace memberships.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Start or cancel one run.
    #[command(subcommand)]
    Run(RunCmd),
    /// List and inspect runs.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Run a worker: claim and execute due runs until stopped (SIGTERM/ctrl-c).
    Worker(WorkerArgs),
    /// Run a node: workers, the reconciler and the scheduler together.
    Serve(ServeArgs),
    /// Run one reconciler sweep and print what it did (or would do).
    Reconcile {
        /// Only report what would be reconciled.
        #[arg(long)]
        dry_run: bool,
    },
    /// Cron schedules.
    #[command(subcommand)]
    Schedule(ScheduleCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Seed a demo workspace and serve the hub with live runs.
    Demo {
        /// Where the hub listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: String,
    },
}

/// API token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token for a user; it is printed once and only its hash is kept.
    Create {
        /// The user (e-mail or id).
        email: String,
        /// A name that says what the token is for.
        #[arg(long, default_value = "api")]
        name: String,
        /// Stop working after this long: hours or days, like 12h or 90d
        /// (default: until revoked).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List API tokens (never their secrets).
    List {
        /// Only this user's (e-mail or id).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an API token: the next request with it is refused.
    Revoke {
        /// The token's id (from `token list`).
        id: String,
    },
}

/// Worker settings.
#[derive(Debug, Args, Clone)]
pub struct WorkerArgs {
    /// Runs executed at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// This node's stable name (runs an earlier process of the same name
    /// left running are resumed at start-up); default: hostname-pid.
    #[arg(long, env = "TENANTATLAS_NODE")]
    pub node: Option<String>,
    /// Lease length in seconds.
    #[arg(long, default_value_t = 30)]
    pub lease_seconds: u64,
    /// Heartbeat interval in seconds.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_seconds: u64,
    /// Grace period at shutdown, in seconds.
    #[arg(long, default_value_t = 10)]
    pub grace_seconds: u64,
    /// Serve `/metrics` and `/healthz` here (this process's counters are
    /// its own; `serve` nodes expose theirs on the hub).
    #[arg(long, env = "TENANTATLAS_METRICS_BIND")]
    pub metrics_bind: Option<String>,
}

/// Node settings.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Where the web hub listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// The hub is reached over HTTPS (a TLS proxy in front): session
    /// cookies get `Secure` and the `__Host-` prefix.
    #[arg(long, env = "TENANTATLAS_BEHIND_TLS", value_parser = clap::builder::FalseyValueParser::new())]
    pub behind_tls: bool,
    /// Proxies in front of the hub (CIDRs, comma-separated or repeated):
    /// when one of them connects, the client is the address it names in
    /// `X-Forwarded-For` (for sign-in throttling and logs). Without it, the
    /// connecting peer is the client.
    #[arg(long = "trusted-proxy", env = "TENANTATLAS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Runs executed at once by this node's worker (0: no worker).
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// This node's stable name; default: hostname-pid.
    #[arg(long, env = "TENANTATLAS_NODE")]
    pub node: Option<String>,
    /// Seconds between reconciler/scheduler sweeps.
    #[arg(long, default_value_t = 15)]
    pub sweep_seconds: u64,
    /// Lease length in seconds.
    #[arg(long, default_value_t = 30)]
    pub lease_seconds: u64,
    /// Heartbeat interval in seconds.
    #[arg(long, default_value_t = 5)]
    pub heartbeat_seconds: u64,
    /// Grace period at shutdown, in seconds.
    #[arg(long, default_value_t = 10)]
    pub grace_seconds: u64,
}

/// Schedule commands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Create or replace (by name) a schedule.
    Add {
        /// Its unique name.
        name: String,
        /// Five-field cron pattern, UTC: "minute hour day month weekday".
        #[arg(long)]
        cron: String,
        /// The operation type.
        #[arg(long = "type", value_name = "TYPE")]
        op_type: String,
        /// The tenant (id or name); omit for a system operation.
        #[arg(long)]
        tenant: Option<String>,
        /// The tenant's workspace, when its name is not unique.
        #[arg(long)]
        workspace: Option<String>,
        /// A parameter (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// List schedules.
    List {},
    /// Remove a schedule (by id or name); the runs it started stay.
    Remove {
        /// Its id or name.
        schedule: String,
    },
}

/// `--public-url`: an absolute http(s) URL with a host and no query or
/// fragment; answered without its trailing slash.
fn public_url(raw: &str) -> Result<String, String> {
    let rule = "must be an absolute http(s) URL without query or fragment, such as https://atlas.example.com";
    let url = url::Url::parse(raw.trim()).map_err(|_| rule.to_owned())?;
    let web = matches!(url.scheme(), "http" | "https");
    if !web || url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(rule.to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Whether a command prints one JSON document (the global `--json`).
#[derive(Debug, Clone, Copy)]
pub struct Json {
    /// Print exactly one JSON document on stdout.
    pub json: bool,
}

/// Workspace commands.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCmd {
    /// Create a workspace.
    Create {
        /// Its unique name.
        name: String,
    },
    /// List workspaces.
    List {},
}

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Add a tenant to a workspace. With a graph:TENANT provider the app's
    /// client secret is read from standard input, never from the command line.
    Add {
        /// The workspace (id or name).
        #[arg(long)]
        workspace: String,
        /// The tenant's name, unique within the workspace.
        name: String,
        /// Where its data comes from: directory:PATH (a tenant folder; it must
        /// load) or graph:TENANT (an Entra tenant id or domain).
        #[arg(long)]
        provider: Option<String>,
        /// The app registration's application (client) id (graph:TENANT only).
        #[arg(long, value_name = "APP_ID")]
        client_id: Option<String>,
        /// Refused: see [`ArgvSecret`].
        #[command(flatten)]
        argv_secret: ArgvSecret,
    },
    /// List the tenants of a workspace.
    List {
        /// The workspace (id or name).
        #[arg(long)]
        workspace: String,
    },
    /// Show one tenant (never its secret).
    Show {
        /// The tenant (id or name).
        tenant: String,
        /// The tenant's workspace, when its name is not unique.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// A Graph tenant's app credentials.
    #[command(subcommand)]
    Credentials(CredentialsCmd),
    /// Check the tenant's connection: sign-in, one read per object type and
    /// the permissions granted. Starts a provider.verify run, executes it in
    /// this process (a running worker may take it instead) and prints its
    /// answer; exits 1 when a check failed.
    Verify {
        /// The tenant (id or name).
        tenant: String,
        /// The tenant's workspace, when its name is not unique.
        #[arg(long)]
        workspace: Option<String>,
        /// How long to wait for the answer (1–3600).
        #[arg(long, default_value_t = 120, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
    },
}

/// App credential commands.
#[derive(Debug, Subcommand)]
pub enum CredentialsCmd {
    /// Set or rotate a graph tenant's app credentials; the new client secret
    /// is read from standard input.
    Set {
        /// The tenant (id or name).
        tenant: String,
        /// The tenant's workspace, when its name is not unique.
        #[arg(long)]
        workspace: Option<String>,
        /// The app registration's application (client) id.
        #[arg(long, value_name = "APP_ID")]
        client_id: String,
        /// Refused: see [`ArgvSecret`].
        #[command(flatten)]
        argv_secret: ArgvSecret,
    },
}

/// `--client-secret` / `--secret`, accepted by the parser only to be
/// refused with the reason: a secret on the command line is visible to
/// every user of the machine (`ps`, `/proc`) and kept in shell history.
/// Hidden from help.
#[derive(Debug, Args)]
pub struct ArgvSecret {
    /// A secret given on the command line (refused).
    #[arg(
        long = "client-secret",
        alias = "secret",
        hide = true,
        num_args = 0..=1,
        allow_hyphen_values = true,
        value_name = "SECRET"
    )]
    pub client_secret: Option<Option<String>>,
}

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user; the password is read from standard input.
    Add {
        /// E-mail address (the login).
        email: String,
        /// Give access to the system plane.
        #[arg(long)]
        platform_operator: bool,
    },
    /// List users.
    List {},
    /// Disable a user: their sessions and API tokens stop working at once.
    Disable {
        /// The user (e-mail or id).
        email: String,
    },
    /// Set a user's password, read from standard input; their sessions end.
    Passwd {
        /// The user (e-mail or id).
        email: String,
    },
}

/// Membership commands.
#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Add a member to a workspace, or change their role and tenants.
    Add {
        /// The workspace (id or name).
        #[arg(long)]
        workspace: String,
        /// The user (id or e-mail).
        email: String,
        /// owner, manager, operator or readonly.
        #[arg(long)]
        role: String,
        /// Entitle to this tenant only (repeatable); none: every tenant.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
    },
    /// List a workspace's members.
    List {
        /// The workspace (id or name).
        #[arg(long)]
        workspace: String,
    },
    /// Change a member's role, keeping their tenants.
    Role {
        /// The workspace (id or name).
        #[arg(long)]
        workspace: String,
        /// The user (id or e-mail).
        email: String,
        /// owner, manager, operator or readonly.
        #[arg(long)]
        role: String,
    },
    /// Remove a member from a workspace.
    Remove {
        /// The workspace (id or name).
        #[arg(long)]
        workspace: String,
        /// The user (id or e-mail).
        email: String,
    },
}

/// Run commands.
#[derive(Debug, Subcommand)]
pub enum RunCmd {
    /// Start an operation on a tenant (or join the identical active run).
    Start {
        /// The operation type, e.g. inventory.sync.
        #[arg(value_name = "TYPE")]
        op_type: String,
        /// The tenant (id or name).
        #[arg(long)]
        tenant: String,
        /// The tenant's workspace, when its name is not unique.
        #[arg(long)]
        workspace: Option<String>,
        /// A parameter (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Start as this user (authorized, notified); without it the run is
        /// system-initiated.
        #[arg(long = "as", value_name = "EMAIL")]
        as_user: Option<String>,
        /// Follow the run to its end with a progress bar; the exit code is
        /// its outcome: 0 succeeded, 1 failed, 6 partially succeeded,
        /// 4 blocked, 5 cancelled.
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a run: queued runs at once, running runs at their next heartbeat.
    Cancel {
        /// The run id.
        run: String,
        /// Cancel as this user (authorized, audited).
        #[arg(long = "as", value_name = "EMAIL")]
        as_user: Option<String>,
    },
}

/// Runs commands.
#[derive(Debug, Subcommand)]
pub enum RunsCmd {
    /// List runs, newest first.
    List(ListArgs),
    /// Show one run with its timeline.
    Show {
        /// The run id.
        run: String,
    },
}

/// Filters of `runs list` (the same as the API's and the web pages').
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this workspace (id or name).
    #[arg(long)]
    pub workspace: Option<String>,
    /// Only this tenant (id or name).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this operation type.
    #[arg(long = "type", value_name = "TYPE")]
    pub op_type: Option<String>,
    /// Only this status: queued, running, succeeded, partial, failed (failed or blocked), blocked, cancelled.
    #[arg(long)]
    pub status: Option<String>,
    /// Only this problem class: active, active_stale, needs_follow_up, reconciled, ok, cancelled.
    #[arg(long)]
    pub problem: Option<String>,
    /// Created at or after (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Created before (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Page size (1-500).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue after this cursor (from a previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// List what this user may see.
    #[arg(long = "as", value_name = "EMAIL")]
    pub as_user: Option<String>,
}
