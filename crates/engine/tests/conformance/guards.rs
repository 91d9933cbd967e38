//! Law 1 and law 5 held by the source itself: these tests fail when any
//! code outside the lifecycle modules writes a run's status or outcome (in
//! Rust or SQL), or writes a notification anywhere but at completion.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

/// The only file allowed to write `status` / `outcome` and notifications
/// (both dialects' statements).
const LIFECYCLE_SQL: [&str; 1] = ["crates/store/src/lifecycle.rs"];
/// The only engine file allowed to call the store's lifecycle write.
const LIFECYCLE_ENGINE: &str = "crates/engine/src/lifecycle.rs";
/// Where the write family is declared (the engine's port).
const LIFECYCLE_DECLARED: [&str; 1] = ["crates/engine/src/port.rs"];
/// The store's methods that write status or outcome.
const LIFECYCLE_METHODS: [&str; 4] = ["apply_transition", "complete_many", "claim_due", "release_orphans"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn sources(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target" && n != "node_modules") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs" || e == "sql") {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

static UPDATE_RUNS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)UPDATE\s+operation_runs\b(?:\s+(?:AS\s+)?[a-z_]+)?\s+SET\s+(?P<set>.*?)(?:\bWHERE\b|\bRETURNING\b|\bFROM\b|;|"\s*[,)])"#).unwrap()
});
static STATUS_ASSIGN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|[\s,.])(?:[a-z_]+\.)?(status|outcome|active)\s*=").unwrap());
static INSERT_NOTIFICATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)INSERT\s+INTO\s+notifications\b").unwrap());
static INSERT_RUNS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?is)INSERT\s+INTO\s+operation_runs\b.*?(?:ON CONFLICT|"\s*[,)])"#).unwrap());

/// Where `text` assigns a run's status or outcome (or `active`, which
/// mirrors the status for the indexes).
fn status_writes(text: &str) -> Vec<String> {
    UPDATE_RUNS
        .captures_iter(text)
        .filter(|c| STATUS_ASSIGN.is_match(&c["set"]))
        .map(|c| c[0].chars().take(120).collect())
        .collect()
}

/// Inserts into operation_runs with a status other than 'queued'.
fn non_queued_inserts(text: &str) -> Vec<String> {
    INSERT_RUNS
        .find_iter(text)
        .filter(|m| {
            let s = m.as_str().to_lowercase();
            (s.contains("status") && !s.contains("'queued'")) || s.contains("active")
        })
        .map(|m| m.as_str().chars().take(120).collect())
        .collect()
}

#[test]
fn the_detectors_catch_what_they_guard() {
    assert_eq!(
        status_writes(r#"sqlx::query("UPDATE operation_runs SET status = 'completed' WHERE id = $1")"#).len(),
        1
    );
    assert_eq!(
        status_writes("UPDATE operation_runs r SET units_total = 1, outcome='failed' RETURNING id").len(),
        1
    );
    assert_eq!(
        status_writes("update operation_runs\n   set updated_at = $1,\n   status = $2\n where id = $3").len(),
        1
    );
    assert!(
        status_writes("UPDATE operation_runs SET cancel_requested_at = $1 WHERE id = $2 AND status = 'running'")
            .is_empty()
    );
    assert!(status_writes("UPDATE operation_runs SET reconciled_from_status = 'queued' WHERE x").is_empty());
    assert_eq!(
        status_writes("UPDATE operation_runs SET active = false WHERE x").len(),
        1
    );
    assert!(status_writes("UPDATE operation_runs SET units_total = 1 WHERE active AND id = $1").is_empty());
    assert_eq!(
        non_queued_inserts(r#"INSERT INTO operation_runs (id, status) VALUES ($1, 'running') ON CONFLICT"#).len(),
        1
    );
    assert!(
        non_queued_inserts(r#"INSERT INTO operation_runs (id, status) VALUES ($1, 'queued') ON CONFLICT"#).is_empty()
    );
    assert_eq!(
        non_queued_inserts(r#"INSERT INTO operation_runs (id, active) VALUES ($1, false) ON CONFLICT"#).len(),
        1
    );
    assert!(INSERT_NOTIFICATION.is_match("insert into notifications (id) values ($1)"));
}

#[test]
fn only_the_lifecycle_modules_write_status_or_outcome() {
    let root = workspace_root();
    let files = sources(&root);
    assert!(files.len() > 20, "the scan found the sources ({})", files.len());
    let mut offenders = Vec::new();
    let mut allowed_writes = 0;
    for (path, text) in &files {
        if path.contains("/tests/") || path.contains("/migrations/") {
            continue;
        }
        let writes = status_writes(text);
        if LIFECYCLE_SQL.contains(&path.as_str()) {
            allowed_writes += writes.len();
        } else {
            offenders.extend(writes.into_iter().map(|w| format!("{path}: {w}")));
        }
        offenders.extend(
            non_queued_inserts(text)
                .into_iter()
                .map(|w| format!("{path}: run created not queued: {w}")),
        );
    }
    assert!(
        offenders.is_empty(),
        "status/outcome written outside the lifecycle modules:\n{}",
        offenders.join("\n")
    );
    assert!(
        allowed_writes >= 6,
        "the lifecycle modules hold the writes ({allowed_writes} found)"
    );
}

#[test]
fn only_completion_writes_notifications() {
    let root = workspace_root();
    let mut offenders = Vec::new();
    let mut found = 0;
    for (path, text) in sources(&root) {
        if path.contains("/tests/") || path.contains("/migrations/") {
            continue;
        }
        let n = INSERT_NOTIFICATION.find_iter(&text).count();
        if LIFECYCLE_SQL.contains(&path.as_str()) {
            found += n;
        } else if n > 0 {
            offenders.push(path);
        }
    }
    assert!(
        offenders.is_empty(),
        "notifications written outside completion: {offenders:?}"
    );
    assert_eq!(found, 2, "one notification insert per dialect, in completion");
}

/// Calls of the store's lifecycle write family (on `store` or `store()`).
static STORE_LIFECYCLE_CALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bstore(?:\(\))?\s*\.\s*(apply_transition|complete_many|claim_due|release_orphans)\s*\(").unwrap()
});

#[test]
fn only_the_engine_lifecycle_module_calls_the_lifecycle_write() {
    // (The type system holds it too: these methods take a LifecycleWrite,
    // ClaimRequest or ReleaseRequest, which only the engine's lifecycle
    // module can build. This holds the source to the same rule.)
    let caught: Vec<String> = STORE_LIFECYCLE_CALL
        .captures_iter("self.store().claim_due(&c); store\n    .complete_many(&w); engine.claim_due(x)")
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(
        caught,
        ["claim_due", "complete_many"],
        "the detector finds store calls only"
    );
    let root = workspace_root();
    let mut offenders = Vec::new();
    let mut engine_calls: Vec<String> = Vec::new();
    for (path, text) in sources(&root) {
        if path.contains("/tests/")
            || LIFECYCLE_SQL.contains(&path.as_str())
            || LIFECYCLE_DECLARED.contains(&path.as_str())
        {
            continue;
        }
        let calls: Vec<String> = STORE_LIFECYCLE_CALL
            .captures_iter(&text)
            .map(|c| c[1].to_owned())
            .collect();
        if path == LIFECYCLE_ENGINE {
            engine_calls.extend(calls);
        } else if !calls.is_empty() {
            offenders.push(format!("{path}: {calls:?}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "the lifecycle write family is called outside {LIFECYCLE_ENGINE}: {offenders:?}"
    );
    for method in LIFECYCLE_METHODS {
        assert!(
            engine_calls.iter().any(|c| c == method),
            "{LIFECYCLE_ENGINE} calls {method} ({engine_calls:?})"
        );
    }
}

#[test]
fn the_domain_crate_does_no_io() {
    let manifest = std::fs::read_to_string(workspace_root().join("crates/domain/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    let names: Vec<&str> = deps
        .lines()
        .filter_map(|l| l.split(['=', '.']).next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    assert!(names.contains(&"serde"), "the scan read the dependency list: {names:?}");
    for forbidden in [
        "sqlx",
        "tokio",
        "axum",
        "reqwest",
        "hyper",
        "async-trait",
        "futures",
        "tenantatlas-store",
        "tenantatlas-engine",
    ] {
        assert!(!names.contains(&forbidden), "domain depends on {forbidden}");
    }
}
