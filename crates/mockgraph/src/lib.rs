//! A faithful local Microsoft Graph (`tenantatlas-mockgraph`): serves
//! directory-provider tenant folders ([`tenantatlas_providers::fixture`])
//! the way Graph's beta API serves a tenant, for tests, the demo and the
//! benchmark.
//!
//! Start one in-process with [`start`] (or run the binary). Everything is
//! at the server's root URL ([`MockGraph::base_url`]):
//!
//! - `POST /{tenant}/oauth2/v2.0/token` — Entra ID's client-credentials
//!   flow (the tenant by id or primary domain). Any client id and secret
//!   are accepted unless [`MockConfig::client_secret`] is set; a
//!   certificate credential (`client_assertion`) is accepted when no
//!   secret is required. Tokens are JWT-shaped (unsigned), carry the
//!   tenant's `grantedPermissions` as `roles`, expire after
//!   [`MockConfig::token_lifetime`], and select the tenant a Graph request
//!   reads.
//! - `/beta/…` — for every object type of
//!   [`tenantatlas_providers::object::DESCRIPTORS`]: lists paged at
//!   [`MockConfig::page_size`] with an absolute `@odata.nextLink` holding
//!   an opaque `$skiptoken` (bound to the list and this server's run),
//!   item reads (navigation data only through `$expand`), the navigation
//!   lists (`settings`, `assignments`, `scheduledActionsForRule`,
//!   `definitionValues` → `presentationValues`, `apps` through the app
//!   protection platform collections), `groups?$filter=displayName eq '…'`,
//!   create, `PATCH` (`PUT` for the settings catalog only), `DELETE`, and
//!   the actions `assign` (replaces the whole list), `scheduleActionsForRules`,
//!   `targetApps`, `updateDefinitionValues` (`{added, updated, deletedIds}`)
//!   and `POST …/definitionValues` (one value). Groups are read-only (403).
//!   Writes are as strict as Graph: read-only properties
//!   ([`tenantatlas_providers::clean::read_only_paths`]) are a 400 naming
//!   them. Permissions come from the token's `roles`; a missing one is a
//!   403 naming it.
//! - `POST /beta/$batch` — up to 20 requests, each through the same
//!   routing, with per-item statuses.
//! - Faults: each folder's `faults.json`, rules added at runtime
//!   ([`MockGraph::add_faults`], `POST /_mock/faults`), and
//!   [`MockConfig::throttle`]: that fraction of Graph requests answered 429
//!   deterministically (request n is throttled when ⌊n·f⌋ grows: with 0.05,
//!   every 20th). Counted are Graph requests with an accepted token, batch
//!   items one by one; not token requests, not `$batch` envelopes. A
//!   scripted fault that fires takes precedence.
//! - `GET /_mock/stats` ([`Stats`]), `GET /_mock/requests[?since=SEQ]`
//!   (`{"value": [`[`RequestRecord`]`…]}`; `DELETE` resets the log and the
//!   counters), `POST /_mock/faults` (`{"tenant", "faults"}`, 201) and
//!   `DELETE /_mock/faults[?tenant=ID]` (runtime rules only). The control
//!   routes take no token: bind the server to loopback.
//!
//! State lives in memory: writes change it, never the folders.

mod batch;
mod graph;
mod log;
mod odata;
mod reply;
mod route;
mod server;
mod state;
mod token;
mod writes;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tenantatlas_providers::fixture::{FaultRule, TenantData};
use tenantatlas_providers::object::ObjectType;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use batch::MAX_BATCH;
pub use log::{LOG_CAPACITY, RequestKind, RequestRecord, Stats};

use state::{Settings, Shared, Tenant};

/// How a local Graph is set up.
#[derive(Clone)]
pub struct MockConfig {
    /// The tenants served: the id each is served as, and its folder
    /// (loaded with [`TenantData::load`], `faults.json` included). A GUID
    /// is the tenant's id whatever its `tenant.json` says (one folder can
    /// be served as several tenants); a domain is an extra name for the
    /// tenant `tenant.json` describes.
    pub tenants: Vec<(String, PathBuf)>,
    /// Items per list page (Graph's Intune lists: 25).
    pub page_size: usize,
    /// The fraction (0 to 1) of Graph requests answered 429.
    pub throttle: f64,
    /// The `Retry-After` those 429s carry, in seconds (integer or decimal).
    pub retry_after: String,
    /// How long an access token lives.
    pub token_lifetime: Duration,
    /// The only client secret accepted (any is, when `None`).
    pub client_secret: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            tenants: Vec::new(),
            page_size: 25,
            throttle: 0.0,
            retry_after: "1".to_owned(),
            token_lifetime: Duration::from_secs(3600),
            client_secret: None,
        }
    }
}

impl fmt::Debug for MockConfig {
    // The client secret is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("tenants", &self.tenants)
            .field("page_size", &self.page_size)
            .field("throttle", &self.throttle)
            .field("retry_after", &self.retry_after)
            .field("token_lifetime", &self.token_lifetime)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl MockConfig {
    /// The defaults, serving no tenant yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves the folder `dir` as the tenant `id`.
    pub fn tenant(mut self, id: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.tenants.push((id.into(), dir.into()));
        self
    }

    /// Sets the page size.
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n;
        self
    }

    /// Answers this fraction of Graph requests 429 with `Retry-After:
    /// retry_after`.
    pub fn throttle(mut self, fraction: f64, retry_after: impl Into<String>) -> Self {
        self.throttle = fraction;
        self.retry_after = retry_after.into();
        self
    }

    /// Sets how long tokens live.
    pub fn token_lifetime(mut self, d: Duration) -> Self {
        self.token_lifetime = d;
        self
    }

    /// Requires this client secret.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Checks every setting; the error names the setting (as the binary's
    /// flag) and what is wrong.
    pub fn validate(&self) -> Result<(), StartError> {
        let bad = |flag: &str, why: String| Err(StartError::Invalid(format!("{flag}: {why}")));
        if self.tenants.is_empty() {
            return bad(
                "--tenant",
                "no tenant to serve (give at least one TENANT_ID=DIR)".to_owned(),
            );
        }
        for (i, (id, _)) in self.tenants.iter().enumerate() {
            if let Err(why) = check_tenant_id(id) {
                return bad("--tenant", why);
            }
            if self.tenants[..i]
                .iter()
                .any(|(other, _)| other.eq_ignore_ascii_case(id))
            {
                return bad("--tenant", format!("the tenant id {id} is given twice"));
            }
        }
        if self.token_lifetime.is_zero() || self.token_lifetime > MAX_TOKEN_LIFETIME {
            return bad(
                "--token-lifetime",
                format!(
                    "{} seconds is not between 1 and {}",
                    self.token_lifetime.as_secs_f64(),
                    MAX_TOKEN_LIFETIME.as_secs()
                ),
            );
        }
        if !(1..=1000).contains(&self.page_size) {
            return bad("--page-size", format!("{} is not between 1 and 1000", self.page_size));
        }
        if !(self.throttle.is_finite() && (0.0..=1.0).contains(&self.throttle)) {
            return bad(
                "--throttle",
                format!("{} is not a fraction between 0 and 1", self.throttle),
            );
        }
        if let Err(why) = check_seconds(&self.retry_after) {
            return bad("--retry-after", why);
        }
        if self.client_secret.as_deref().is_some_and(str::is_empty) {
            return bad("MOCKGRAPH_CLIENT_SECRET", "is empty".to_owned());
        }
        Ok(())
    }
}

/// The longest token lifetime accepted (a year).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// Whether `id` can name a tenant: a GUID, or a domain
/// (`contoso.onmicrosoft.com`).
pub fn check_tenant_id(id: &str) -> Result<(), String> {
    if uuid::Uuid::try_parse(id).is_ok() {
        return Ok(());
    }
    let labels: Vec<&str> = id.split('.').collect();
    let domain = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if domain {
        Ok(())
    } else {
        Err(format!(
            "the tenant id '{id}' is neither a GUID nor a domain name (e.g. contoso.onmicrosoft.com)"
        ))
    }
}

/// Whether `s` is a `Retry-After` in seconds (integer or decimal, ≥ 0).
pub fn check_seconds(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && s.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0);
    if ok {
        Ok(())
    } else {
        Err(format!("'{s}' is not a number of seconds (like 2 or 0.5)"))
    }
}

/// Why a local Graph did not start.
#[derive(Debug)]
pub enum StartError {
    /// A setting is wrong (the message names it).
    Invalid(String),
    /// A tenant folder could not be loaded.
    Tenant {
        /// The id it was to be served as.
        id: String,
        /// Its folder.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Invalid(m) => f.write_str(m),
            StartError::Tenant { id, dir, message } => {
                write!(f, "--tenant {id}={}: {message}", dir.display())
            }
            StartError::Bind { addr, message } => write!(f, "--bind {addr}: {message}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running local Graph. Dropping it stops the server (abruptly; use
/// [`MockGraph::stop`] to let requests in flight finish).
pub struct MockGraph {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Loads the tenants, binds `bind` (port 0 picks a free one) and serves in
/// a background task. Errors are [`StartError`]s.
pub async fn start(cfg: MockConfig, bind: SocketAddr) -> anyhow::Result<MockGraph> {
    cfg.validate()?;
    let mut tenants = Vec::with_capacity(cfg.tenants.len());
    for (id, dir) in &cfg.tenants {
        let data = TenantData::load(dir).map_err(|e| StartError::Tenant {
            id: id.clone(),
            dir: dir.clone(),
            message: e.to_string(),
        })?;
        let tenant = Tenant::new(id.clone(), data);
        if tenants
            .iter()
            .any(|t: &Arc<Tenant>| t.id.eq_ignore_ascii_case(&tenant.id))
        {
            return Err(StartError::Invalid(format!(
                "--tenant {id}={}: the tenant id {} is served twice",
                dir.display(),
                tenant.id
            ))
            .into());
        }
        tenants.push(Arc::new(tenant));
    }
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| StartError::Bind {
            addr: bind,
            message: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| StartError::Bind {
        addr: bind,
        message: e.to_string(),
    })?;
    // Links name a host a client can reach even when bound to all
    // interfaces.
    let host = match addr.ip() {
        ip if ip.is_unspecified() && addr.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let base_url = format!("http://{host}");
    let settings = Settings {
        page_size: cfg.page_size,
        throttle: cfg.throttle,
        retry_after: cfg.retry_after.clone(),
        token_lifetime: cfg.token_lifetime,
        client_secret: cfg.client_secret.clone(),
    };
    let shared = Arc::new(Shared::new(settings, tenants, base_url.clone()));
    let app = server::router(shared.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::warn!(error = %e, "the local Graph stopped with an error");
        }
    });
    Ok(MockGraph {
        addr,
        base_url,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    })
}

impl MockGraph {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the login URL (token endpoint at
    /// `/{tenant}/oauth2/v2.0/token`) and the Graph root (`/beta/…`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The token endpoint of a tenant.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url)
    }

    /// `http://127.0.0.1:PORT/beta`.
    pub fn graph_url(&self) -> String {
        format!("{}/beta", self.base_url)
    }

    /// The tenants served, in order: the id each is served as (its `tid`)
    /// and its display name.
    pub fn tenants(&self) -> Vec<(String, String)> {
        self.shared
            .tenants
            .iter()
            .map(|t| (t.id.clone(), t.display_name.clone()))
            .collect()
    }

    /// Issues an access token for a tenant (id or domain) without the token
    /// endpoint (benchmarks, tests); `None` for an unknown tenant.
    pub fn issue_token(&self, tenant: &str, client_id: &str) -> Option<String> {
        let t = self.shared.tenant(tenant)?;
        Some(
            self.shared
                .tokens
                .issue(t, client_id, self.shared.settings.token_lifetime),
        )
    }

    /// The counters (as `GET /_mock/stats`).
    pub fn stats(&self) -> Stats {
        self.shared.log.stats()
    }

    /// Every request recorded (at most [`LOG_CAPACITY`], the latest).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.records(0)
    }

    /// The requests recorded after `seq`.
    pub fn requests_since(&self, seq: u64) -> Vec<RequestRecord> {
        self.shared.log.records(seq)
    }

    /// The Graph writes recorded (direct and inside batches).
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.shared.log.records(0).into_iter().filter(|r| r.write).collect()
    }

    /// Forgets the recorded requests and zeroes the counters.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Adds fault rules to a tenant (id or domain), after its existing
    /// ones.
    pub fn add_faults(&self, tenant: &str, rules: Vec<FaultRule>) -> anyhow::Result<()> {
        let t = self
            .shared
            .tenant(tenant)
            .ok_or_else(|| anyhow::anyhow!("no tenant {tenant} is served"))?;
        t.add_faults(rules);
        Ok(())
    }

    /// Removes the rules added at runtime (the folder's `faults.json`
    /// stays).
    pub fn clear_faults(&self, tenant: &str) -> anyhow::Result<()> {
        let t = self
            .shared
            .tenant(tenant)
            .ok_or_else(|| anyhow::anyhow!("no tenant {tenant} is served"))?;
        t.clear_runtime_faults();
        Ok(())
    }

    /// A tenant's objects of a type as stored now (navigation data
    /// inline); `None` for an unknown tenant.
    pub fn objects(&self, tenant: &str, ty: ObjectType) -> Option<Vec<Value>> {
        let t = self.shared.tenant(tenant)?;
        let store = t.read();
        Some(store.coll(ty).map(|c| c.items().to_vec()).unwrap_or_default())
    }

    /// One stored object.
    pub fn object(&self, tenant: &str, ty: ObjectType, id: &str) -> Option<Value> {
        let t = self.shared.tenant(tenant)?;
        let store = t.read();
        store.coll(ty)?.get(id).cloned()
    }

    /// Stops the server, letting requests in flight finish (at most five
    /// seconds).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for MockGraph {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for MockGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockGraph").field("base_url", &self.base_url).finish()
    }
}
