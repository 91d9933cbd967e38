//! People-facing rendering of runs and lists.

use std::collections::HashMap;
use std::fmt::Write as _;

use tenantatlas_domain::ids::{TenantId, UserId};
use tenantatlas_domain::problem::ProblemClass;
use tenantatlas_domain::timeline::RunEvent;
use tenantatlas_domain::view::{ProgressView, RunView};

/// Prints one JSON document on stdout.
pub fn json(value: &impl serde::Serialize) -> Result<(), crate::CliError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| crate::CliError::Failed(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Progress in a few characters.
pub fn progress(p: &ProgressView) -> String {
    match p {
        ProgressView::Counted {
            processed,
            total,
            eta_s: Some(eta),
        } => format!("{processed}/{total} (ETA {eta:.0}s)"),
        ProgressView::Counted {
            processed,
            total,
            eta_s: None,
        } => format!("{processed}/{total}"),
        ProgressView::Phased { phase, phases, label } => format!("phase {phase}/{phases} {label}"),
        ProgressView::Indeterminate { elapsed_s } => format!("{elapsed_s:.1}s"),
    }
}

/// A run's progress: a queued run that has done nothing yet says how long
/// it has waited.
pub fn run_progress(v: &RunView) -> String {
    match &v.progress {
        ProgressView::Indeterminate { elapsed_s } if v.word() == "queued" => format!("waiting {elapsed_s:.1}s"),
        p => progress(p),
    }
}

/// The problem column: the class, when it says more than the status.
pub fn problem(v: &RunView) -> &'static str {
    match v.problem_class {
        ProblemClass::Active | ProblemClass::Ok => "",
        ProblemClass::Cancelled if v.word() == "cancelled" => "",
        c => c.label(),
    }
}

/// A table of runs.
pub fn runs_table(runs: &[RunView], tenant_names: &HashMap<TenantId, String>) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "TYPE".to_owned(),
        "TENANT".to_owned(),
        "STATUS".to_owned(),
        "PROBLEM".to_owned(),
        "PROGRESS".to_owned(),
        "CREATED".to_owned(),
    ]];
    for v in runs {
        let tenant = v
            .tenant_id
            .map(|t| tenant_names.get(&t).cloned().unwrap_or_else(|| t.to_string()))
            .unwrap_or_else(|| "(system)".to_owned());
        rows.push([
            v.id.to_string(),
            v.op_type.as_str().to_owned(),
            tenant,
            v.word().to_owned(),
            problem(v).to_owned(),
            run_progress(v),
            v.created_at.to_rfc3339(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// One run with its timeline.
pub fn run_detail(
    v: &RunView,
    tenant: Option<&str>,
    events: &[RunEvent],
    emails: &HashMap<UserId, String>,
    public_url: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Run {}  {} ({})", v.id, v.label, v.op_type.as_str());
    let _ = writeln!(out, "Tenant:     {}", tenant.unwrap_or("(system)"));
    let _ = writeln!(out, "Status:     {} [{}]", v.word(), v.problem_class.label());
    let _ = writeln!(out, "Progress:   {}", run_progress(v));
    let counts: Vec<String> = v
        .summary_counts
        .iter()
        .map(|(k, n)| format!("{}={n}", k.as_str()))
        .collect();
    if !counts.is_empty() {
        let _ = writeln!(out, "Counts:     {}", counts.join(" "));
    }
    if let Some(code) = v.reason_code {
        let info = code.info();
        let _ = writeln!(out, "Reason:     {} — {}", info.code, info.message);
        let _ = writeln!(out, "Next step:  {}", info.next_step);
    }
    if let Some(r) = &v.reconciliation {
        let _ = writeln!(
            out,
            "Reconciled: {} (was {}, last heartbeat {})",
            r.reconciled_at,
            r.previous_status.as_str(),
            r.last_heartbeat_at
                .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339())
        );
    }
    for f in &v.failures {
        let _ = writeln!(out, "Failure:    {}: {}", f.reason_code.as_str(), f.message);
    }
    let initiator = v.initiator.map_or_else(
        || "system".to_owned(),
        |u| emails.get(&u).cloned().unwrap_or_else(|| u.to_string()),
    );
    let _ = writeln!(out, "Started by: {initiator}");
    let _ = writeln!(out, "Created:    {}", v.created_at);
    if let Some(t) = v.started_at {
        let _ = writeln!(out, "Started:    {t}");
    }
    if let Some(t) = v.completed_at {
        let _ = writeln!(out, "Completed:  {t}");
    }
    if let Some(p) = v.parent_id {
        let _ = writeln!(out, "Parent:     {p}");
    }
    let _ = writeln!(out, "View:       {}{}", public_url.unwrap_or_default(), v.view_url);
    let _ = writeln!(out, "Timeline:");
    for e in events {
        let mut line = format!("  {}  {}", e.at, e.kind.as_str().replace('_', " "));
        if let Some(a) = e.attempt.filter(|a| *a > 0) {
            let _ = write!(line, " (attempt {a})");
        }
        if let Some(u) = e.actor_id {
            let _ = write!(line, " by {}", emails.get(&u).cloned().unwrap_or_else(|| u.to_string()));
        }
        if let Some(obj) = e.detail.as_object().filter(|o| !o.is_empty()) {
            let parts: Vec<String> = obj
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect();
            if !parts.is_empty() {
                let _ = write!(line, " — {}", parts.join(", "));
            }
        }
        let _ = writeln!(out, "{line}");
    }
    out
}
