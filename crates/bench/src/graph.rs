//! `tenantatlas-bench graph`: reading a tenant of N objects with their
//! navigation data through the Microsoft Graph provider against the local
//! Graph (`tenantatlas-mockgraph`, a separate process, pages of 25) — every
//! list page, then a full read of each object whose type has navigation
//! data (settings in pages, scheduled actions, script content). Reported:
//! objects/s, requests, 429s met, and the peak RSS of this process (the
//! provider's side) — without faults and with a share of requests answered
//! 429 with a `Retry-After`.
//!
//! The per-tenant limiter ships with Intune's limits (2,000 requests per
//! 20 s), which bound any real tenant's read rate; `--unlimited` lifts it to
//! measure the provider's own cost.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tenantatlas_providers::graph::{ClientSecret, GraphConfig, GraphProvider, Limits};
use tenantatlas_providers::object::{Navigation, ObjectType};
use tenantatlas_providers::{ProviderError, TenantProvider};

use crate::median;

/// The served tenant.
const TENANT: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";
const CLIENT: &str = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f";
const SECRET: &str = "bench-secret-not-a-real-one";

/// What to measure.
pub struct GraphBench {
    /// Objects in the tenant.
    pub objects: usize,
    /// Rounds per variant (medians reported).
    pub rounds: usize,
    /// The share of requests answered 429 in the faulted variant.
    pub throttle: f64,
    /// Its `Retry-After`.
    pub retry_after: String,
    /// Lift the per-tenant limiter.
    pub unlimited: bool,
    /// Full reads in flight.
    pub concurrency: usize,
}

fn guid(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

/// A tenant folder of `n` objects: 30 % device configurations, 20 %
/// settings catalog policies with 30 settings each (two pages), 15 %
/// compliance policies with scheduled actions, 15 % scripts, 15 % apps,
/// 5 % groups.
fn write_tenant(dir: &Path, n: usize) -> Result<Vec<(ObjectType, usize)>> {
    let share = |pct: usize| n * pct / 100;
    let mut plan = vec![
        (ObjectType::SettingsCatalogPolicy, share(20)),
        (ObjectType::CompliancePolicy, share(15)),
        (ObjectType::PowershellScript, share(15)),
        (ObjectType::MobileApp, share(15)),
        (ObjectType::Group, share(5)),
    ];
    let rest = n - plan.iter().map(|p| p.1).sum::<usize>();
    plan.insert(0, (ObjectType::DeviceConfiguration, rest));
    std::fs::write(
        dir.join("tenant.json"),
        serde_json::to_vec(&json!({
            "id": TENANT,
            "displayName": "Bench",
            "domain": "bench.onmicrosoft.com",
            "grantedPermissions": tenantatlas_providers::object::required_permissions(),
        }))?,
    )?;
    for (k, (ty, count)) in plan.iter().enumerate() {
        let items: Vec<Value> = (0..*count).map(|i| object(*ty, &guid(k as u32 + 1, i), i)).collect();
        let file = tenantatlas_providers::fixture::collection_file(dir, *ty);
        std::fs::create_dir_all(file.parent().context("a collection file has a folder")?)?;
        std::fs::write(file, serde_json::to_vec(&json!({ "value": items }))?)?;
    }
    Ok(plan)
}

fn object(ty: ObjectType, id: &str, i: usize) -> Value {
    let stamp = "2026-11-01T08:00:00Z";
    match ty {
        ObjectType::DeviceConfiguration => json!({
            "@odata.type": "#microsoft.graph.windows10GeneralConfiguration",
            "id": id, "displayName": format!("Device restrictions {i}"), "version": 1,
            "createdDateTime": stamp, "lastModifiedDateTime": stamp,
            "passwordRequired": true, "passwordMinimumLength": 8 + (i % 8), "defenderRequireRealTimeMonitoring": true
        }),
        ObjectType::SettingsCatalogPolicy => {
            let settings: Vec<Value> = (0..30)
                .map(|s| json!({
                    "id": s.to_string(),
                    "settingInstance": {
                        "@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
                        "settingDefinitionId": format!("device_vendor_msft_policy_config_bench_setting{s}"),
                        "choiceSettingValue": {"value": format!("device_vendor_msft_policy_config_bench_setting{s}_1"), "children": []}
                    }
                }))
                .collect();
            json!({
                "@odata.type": "#microsoft.graph.deviceManagementConfigurationPolicy",
                "id": id, "name": format!("Settings policy {i}"), "description": "",
                "platforms": "windows10", "technologies": "mdm", "roleScopeTagIds": ["0"],
                "createdDateTime": stamp, "lastModifiedDateTime": stamp,
                "settingCount": 30, "settings": settings
            })
        }
        ObjectType::CompliancePolicy => json!({
            "@odata.type": "#microsoft.graph.windows10CompliancePolicy",
            "id": id, "displayName": format!("Compliance {i}"), "version": 1,
            "createdDateTime": stamp, "lastModifiedDateTime": stamp,
            "passwordRequired": true, "bitLockerEnabled": true,
            "scheduledActionsForRule": [{
                "id": format!("{id}-rule"), "ruleName": null,
                "scheduledActionConfigurations": [{"id": format!("{id}-block"), "gracePeriodHours": 0, "actionType": "block", "notificationTemplateId": "", "notificationMessageCCList": []}]
            }]
        }),
        ObjectType::PowershellScript => json!({
            "@odata.type": "#microsoft.graph.deviceManagementScript",
            "id": id, "displayName": format!("Script {i}"), "fileName": format!("script{i}.ps1"),
            "createdDateTime": stamp, "lastModifiedDateTime": stamp,
            "runAsAccount": "system", "enforceSignatureCheck": false, "runAs32Bit": false,
            "scriptContent": "V3JpdGUtT3V0cHV0ICJiZW5jaCI="
        }),
        ObjectType::MobileApp => json!({
            "@odata.type": "#microsoft.graph.webApp",
            "id": id, "displayName": format!("Web app {i}"), "publisher": "Bench",
            "createdDateTime": stamp, "lastModifiedDateTime": stamp,
            "appUrl": format!("https://app{i}.example"), "useManagedBrowser": false
        }),
        _ => json!({
            "@odata.type": "#microsoft.graph.group",
            "id": id, "displayName": format!("SG-Bench-{i}"), "securityEnabled": true, "mailEnabled": false,
            "createdDateTime": stamp
        }),
    }
}

/// The local Graph as a child process (its memory is not ours).
struct Mock {
    child: Child,
    url: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mockgraph_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("tenantatlas-mockgraph");
    if !bin.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p tenantatlas-mockgraph` (the same profile as this benchmark)",
            bin.display()
        );
    }
    Ok(bin)
}

fn start_mock(dir: &Path, throttle: f64, retry_after: &str) -> Result<Mock> {
    let mut child = Command::new(mockgraph_binary()?)
        .args([
            "--tenant",
            &format!("{TENANT}={}", dir.display()),
            "--bind",
            "127.0.0.1:0",
            "--page-size",
            "25",
            "--throttle",
            &throttle.to_string(),
            "--retry-after",
            retry_after,
        ])
        .env("MOCKGRAPH_CLIENT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child.stdout.take().context("the mock's stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line)?;
    let url = line.trim().to_owned();
    if !url.starts_with("http://") {
        let _ = child.kill();
        bail!("the local Graph did not start: {line:?}");
    }
    Ok(Mock { child, url })
}

async fn mock_stats(url: &str) -> Result<Value> {
    Ok(reqwest::get(format!("{url}/_mock/stats")).await?.json().await?)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Reads every object of `plan` with its navigation data; answers how
/// many objects were read.
async fn read_all(p: Arc<GraphProvider>, plan: &[(ObjectType, usize)], concurrency: usize) -> Result<usize> {
    let mut read = 0;
    for (ty, expected) in plan {
        let items = p.list_all(*ty).await.map_err(anyhow::Error::new)?;
        if items.len() != *expected {
            bail!("{ty}: listed {} of {expected}", items.len());
        }
        if ty.descriptor().navigation == Navigation::None {
            read += items.len();
            continue;
        }
        let ids: Vec<String> = items
            .iter()
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect();
        let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let (p, gate, ty) = (p.clone(), gate.clone(), *ty);
            set.spawn(async move {
                let _permit = gate.acquire_owned().await;
                p.get(ty, &id).await
            });
        }
        while let Some(done) = set.join_next().await {
            let v: std::result::Result<Value, ProviderError> = done?;
            v.map_err(anyhow::Error::new)?;
            read += 1;
        }
    }
    Ok(read)
}

/// Runs the benchmark and answers its report.
pub async fn graph(b: &GraphBench) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let plan = write_tenant(dir.path(), b.objects)?;
    // the peak from here on is the reading's, not the tenant's generation
    // (writing 5 to clear_refs resets VmHWM, Linux 4.0+)
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mut report = serde_json::Map::new();
    for (variant, throttle) in [("no_faults", 0.0), ("throttled", b.throttle)] {
        let mock = start_mock(dir.path(), throttle, &b.retry_after)?;
        let (mut rates, mut requests, mut reads, mut throttled, mut seconds) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..b.rounds.max(1) {
            let mut config = GraphConfig::new(TENANT, CLIENT, ClientSecret::new(SECRET));
            config.graph_url.clone_from(&mock.url);
            config.login_url.clone_from(&mock.url);
            if b.unlimited {
                config.limits = Limits {
                    writes: usize::MAX / 2,
                    requests: usize::MAX / 2,
                    window: Duration::from_secs(20),
                };
            }
            let p = Arc::new(GraphProvider::new(config).map_err(anyhow::Error::new)?);
            let before = mock_stats(&mock.url).await?;
            let t = Instant::now();
            let n = read_all(p.clone(), &plan, b.concurrency).await?;
            let s = t.elapsed().as_secs_f64();
            let after = mock_stats(&mock.url).await?;
            let delta = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
            if n != b.objects {
                bail!("read {n} of {} objects", b.objects);
            }
            rates.push(n as f64 / s);
            requests.push(delta("requests") as f64);
            reads.push(delta("reads") as f64);
            throttled.push(delta("throttled") as f64);
            seconds.push(s);
            // the limiter is per tenant and process: a later round must not
            // inherit this one's window
            if !b.unlimited {
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
        }
        report.insert(
            variant.to_owned(),
            json!({
                "objects_per_s": median(rates).round(),
                "seconds": (median(seconds) * 10.0).round() / 10.0,
                "http_requests": median(requests),
                "graph_reads": median(reads),
                "answered_429": median(throttled),
            }),
        );
    }
    report.insert("objects".into(), json!(b.objects));
    report.insert("throttle_fraction".into(), json!(b.throttle));
    report.insert("retry_after_s".into(), json!(b.retry_after));
    report.insert(
        "limiter".into(),
        json!(if b.unlimited {
            "lifted"
        } else {
            "intune (2000 requests / 20 s)"
        }),
    );
    report.insert("peak_rss_mib".into(), json!((peak_rss_mib() * 10.0).round() / 10.0));
    Ok(Value::Object(report))
}
