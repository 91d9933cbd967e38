//! What pages show, built once from the domain's views: row, KPI, widget
//! and decision models, and the templates (askama, escaped by default).
//! Every surface labels a run's problem class through
//! [`ProblemClass::label`] (law 6) and links to it through the one
//! canonical helper (law 5).

use std::collections::HashMap;

use askama::Template;
use axum::http::StatusCode;
use serde::Serialize;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::TenantId;
use tenantatlas_domain::lifecycle::RunStatus;
use tenantatlas_domain::problem::ProblemClass;
use tenantatlas_domain::view::{ProgressView, RunView};

/// The page frame: who is signed in and what the navigation shows.
#[derive(Clone, Debug, Default)]
pub struct Chrome {
    /// The user's e-mail.
    pub email: String,
    /// Unread notifications.
    pub unread: u64,
    /// Whether the system plane link shows.
    pub platform_operator: bool,
    /// Whether the admin plane shows (the user is a member somewhere).
    pub admin: bool,
    /// Where the brand links to.
    pub home: &'static str,
    /// The widget's first rendering.
    pub widget: String,
}

/// A run in a table.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub url: String,
    pub label: &'static str,
    pub tenant: String,
    pub status: String,
    pub class: &'static str,
    pub class_label: &'static str,
    pub progress: String,
    pub created: String,
}

/// Tenant names by id, for rows.
pub type Names = HashMap<TenantId, String>;

pub fn when(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    // 2026-11-23T10:11:12.123456Z → 2026-11-23 10:11:12 UTC
    match s.split_once('T') {
        Some((d, rest)) => format!("{d} {} UTC", rest.get(..8).unwrap_or(rest)),
        None => s,
    }
}

pub fn progress_text(p: &ProgressView) -> String {
    match p {
        ProgressView::Counted { processed, total, .. } => format!("{processed} / {total}"),
        ProgressView::Phased { phase, phases, label } => format!("phase {phase} of {phases}: {label}"),
        ProgressView::Indeterminate { elapsed_s } => format!("{} elapsed", duration_text(*elapsed_s)),
    }
}

pub fn duration_text(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn status_text(v: &RunView) -> String {
    match v.outcome {
        Some(o) => o.as_str().replace('_', " "),
        None => v.status.as_str().to_owned(),
    }
}

pub fn row(v: &RunView, names: &Names) -> Row {
    Row {
        id: v.id.to_string(),
        url: v.view_url.clone(),
        label: v.label,
        tenant: tenant_name(v.tenant_id, names),
        status: status_text(v),
        class: v.problem_class.as_str(),
        class_label: v.problem_class.label(),
        progress: if v.status == RunStatus::Completed {
            match &v.progress {
                ProgressView::Counted { .. } => progress_text(&v.progress),
                _ => String::new(),
            }
        } else {
            progress_text(&v.progress)
        },
        created: when(v.created_at),
    }
}

pub fn tenant_name(t: Option<TenantId>, names: &Names) -> String {
    match t {
        Some(t) => names.get(&t).cloned().unwrap_or_else(|| t.to_string()),
        None => "(system)".into(),
    }
}

/// A number on a dashboard that drills through to the list.
#[derive(Clone, Debug)]
pub struct Kpi {
    pub class: &'static str,
    pub label: &'static str,
    pub count: u64,
    pub url: String,
}

/// One KPI per problem class, linking to `base` + `problem=…` (the list's
/// own filter parameters, law 6).
pub fn kpis(counts: &tenantatlas_engine::ClassCounts, base: &str) -> Vec<Kpi> {
    let sep = if base.contains('?') { '&' } else { '?' };
    ProblemClass::ALL
        .iter()
        .map(|c| Kpi {
            class: c.as_str(),
            label: c.label(),
            count: counts.get(*c),
            url: format!("{base}{sep}problem={}", c.as_str()),
        })
        .collect()
}

/// An active run in the widget.
#[derive(Clone, Debug)]
pub struct WidgetRun {
    pub id: String,
    pub url: String,
    pub label: &'static str,
    pub tenant: String,
    pub class: &'static str,
    pub counted: Option<(u64, u64)>,
    pub phase: Option<String>,
    pub elapsed: String,
    pub since_ms: i64,
}

pub fn widget_run(v: &RunView, names: &Names) -> WidgetRun {
    let since = v.started_at.unwrap_or(v.created_at);
    let (counted, phase, elapsed) = match &v.progress {
        ProgressView::Counted { processed, total, .. } => (Some((*processed, *total)), None, String::new()),
        ProgressView::Phased { phase, phases, label } => {
            (None, Some(format!("phase {phase} of {phases}: {label}")), String::new())
        }
        ProgressView::Indeterminate { elapsed_s } => (None, None, duration_text(*elapsed_s)),
    };
    WidgetRun {
        id: v.id.to_string(),
        url: v.view_url.clone(),
        label: v.label,
        tenant: tenant_name(v.tenant_id, names),
        class: v.problem_class.as_str(),
        counted,
        phase,
        elapsed,
        since_ms: since.unix_micros() / 1000,
    }
}

#[derive(Template)]
#[template(path = "widget.html")]
struct WidgetT<'a> {
    runs: &'a [WidgetRun],
}

/// The widget's HTML (one line: it travels as one SSE data field).
pub fn widget(runs: &[WidgetRun]) -> String {
    WidgetT { runs }.render().unwrap_or_default().replace('\n', "")
}

#[derive(Template)]
#[template(path = "toast.html")]
struct ToastT<'a> {
    kind: &'a str,
    message: &'a str,
    view_url: &'a str,
}

/// A start toast.
pub fn toast(t: &tenantatlas_domain::notify::StartToast) -> String {
    let kind = match t.kind {
        tenantatlas_domain::notify::ToastKind::Queued => "queued",
        tenantatlas_domain::notify::ToastKind::AlreadyQueued => "already_queued",
    };
    ToastT {
        kind,
        message: &t.message,
        view_url: &t.view_url,
    }
    .render()
    .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginT<'a> {
    error: Option<&'a str>,
}

pub fn login(error: Option<&str>) -> String {
    LoginT { error }.render().unwrap_or_default()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorT<'a> {
    status: u16,
    message: &'a str,
}

pub fn error_page(status: StatusCode, message: &str) -> String {
    ErrorT {
        status: status.as_u16(),
        message,
    }
    .render()
    .unwrap_or_default()
}

/// An action the caller may take on a run.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Action {
    /// `cancel`, `retry`, `reconcile`.
    pub action: &'static str,
    /// What the button says.
    pub label: &'static str,
    /// Always POST.
    pub method: &'static str,
    /// Where to send it.
    pub url: String,
}

/// The decision zone: is it active, was it reconciled, what next.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Decision {
    /// The problem class (law 6).
    pub problem_class: &'static str,
    /// One sentence.
    pub headline: String,
    /// What to do next (from the reason-code catalog where there is one).
    pub next_step: String,
    /// What this caller may do.
    pub actions: Vec<Action>,
}

/// What the caller may do on a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allowed {
    pub cancel: bool,
    pub retry: bool,
    pub reconcile: bool,
}

/// The decision for `v` seen by a caller allowed `may`; `base` is the
/// route prefix of the actions (`/admin/operations/{id}`,
/// `/api/v1/runs/{id}`, `/system/runs/{id}`).
pub fn decision(v: &RunView, may: Allowed, base: &str) -> Decision {
    let reason = v.reason_code.map(|c| c.info());
    let (headline, next_step) = match v.problem_class {
        ProblemClass::Active => (
            match v.status {
                RunStatus::Queued => format!("Queued since {}; waiting for a worker.", when(v.created_at)),
                _ => format!("Running (attempt {}).", v.attempt),
            },
            "Nothing to do: it is being worked on. Progress updates live.".to_owned(),
        ),
        ProblemClass::ActiveStale => (
            "Likely stuck: it has not made progress or reported a heartbeat in time.".to_owned(),
            "The reconciler completes it once its lease lapses; you may cancel it now.".to_owned(),
        ),
        ProblemClass::Reconciled => {
            let r = v.reconciliation.as_ref();
            (
                format!(
                    "Reconciled at {}: it was stuck while {} (last heartbeat {}) and was completed as {}.",
                    r.map_or_else(String::new, |r| when(r.reconciled_at)),
                    r.map_or("active", |r| r.previous_status.as_str()),
                    r.and_then(|r| r.last_heartbeat_at)
                        .map_or_else(|| "never".to_owned(), when),
                    status_text(v)
                ),
                reason.map_or_else(|| "Start it again.".to_owned(), |i| i.next_step.to_owned()),
            )
        }
        ProblemClass::NeedsFollowUp => (
            format!(
                "Completed as {}{}.",
                status_text(v),
                reason.map_or_else(String::new, |i| format!(": {}", i.message))
            ),
            reason.map_or_else(|| "Look at the failures below.".to_owned(), |i| i.next_step.to_owned()),
        ),
        ProblemClass::Ok => ("Succeeded.".to_owned(), "Nothing to do.".to_owned()),
        ProblemClass::Cancelled => ("Cancelled.".to_owned(), "Start it again when you need it.".to_owned()),
    };
    let active = v.status != RunStatus::Completed;
    let mut actions = Vec::new();
    if active && may.cancel {
        actions.push(Action {
            action: "cancel",
            label: "Cancel",
            method: "POST",
            url: format!("{base}/cancel"),
        });
    }
    if active && may.reconcile {
        actions.push(Action {
            action: "reconcile",
            label: "Reconcile now",
            method: "POST",
            url: format!("{base}/reconcile"),
        });
    }
    if !active && v.problem_class != ProblemClass::Ok && may.retry {
        actions.push(Action {
            action: "retry",
            label: "Start again",
            method: "POST",
            url: format!("{base}/retry"),
        });
    }
    Decision {
        problem_class: v.problem_class.as_str(),
        headline,
        next_step,
        actions,
    }
}

/// Colours of the classes in charts (as in the stylesheet).
fn class_colour(c: ProblemClass) -> &'static str {
    match c {
        ProblemClass::Active => "#2563eb",
        ProblemClass::ActiveStale => "#b45309",
        ProblemClass::NeedsFollowUp => "#b91c1c",
        ProblemClass::Reconciled => "#7c3aed",
        ProblemClass::Ok => "#15803d",
        ProblemClass::Cancelled => "#6b7280",
    }
}

/// Completed runs per day by class, as stacked bars (server-side SVG).
/// `rows` are (day number, class, runs); `today` is today's day number.
pub fn runs_per_day_svg(rows: &[(i64, ProblemClass, u64)], today: i64, days: i64) -> String {
    use std::fmt::Write as _;
    let (w, h, pad, legend) = (640.0_f64, 180.0_f64, 28.0_f64, 18.0_f64);
    let first = today - days + 1;
    let mut per_day: HashMap<i64, Vec<(ProblemClass, u64)>> = HashMap::new();
    for (d, c, n) in rows {
        if *d >= first && *d <= today {
            per_day.entry(*d).or_default().push((*c, *n));
        }
    }
    let max = per_day
        .values()
        .map(|v| v.iter().map(|(_, n)| *n).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = (w - pad) / days as f64;
    let plot_h = h - pad - legend;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Completed runs per day by class\">"
    );
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"12\" font-size=\"10\" fill=\"#6b7280\">{}</text>",
        max as u64
    );
    for i in 0..days {
        let day = first + i;
        let x = pad + i as f64 * slot;
        let mut y = legend + plot_h;
        let mut parts = per_day.remove(&day).unwrap_or_default();
        parts.sort_by_key(|(c, _)| ProblemClass::ALL.iter().position(|x| x == c));
        for (c, n) in parts {
            let bh = n as f64 / max * plot_h;
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{}: {n} {}</title></rect>",
                x + 1.0,
                (slot - 2.0).max(1.0),
                class_colour(c),
                day_label(day),
                c.label()
            );
        }
        if i % 2 == 0 || days <= 8 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"#6b7280\" text-anchor=\"middle\">{}</text>",
                x + slot / 2.0,
                h - 4.0,
                day_label(day).get(5..).unwrap_or_default()
            );
        }
    }
    let mut lx = pad;
    for c in [
        ProblemClass::Ok,
        ProblemClass::NeedsFollowUp,
        ProblemClass::Reconciled,
        ProblemClass::Cancelled,
    ] {
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"2\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"11\" font-size=\"10\">{}</text>",
            class_colour(c),
            lx + 13.0,
            c.label()
        );
        lx += 110.0;
    }
    svg.push_str("</svg>");
    svg
}

fn day_label(day: i64) -> String {
    let t = Timestamp::from_unix_micros(day * 86_400_000_000);
    t.to_rfc3339().get(..10).unwrap_or_default().to_owned()
}

/// Duration distribution per type: runs per duration bucket, one row per
/// type (server-side SVG).
pub fn durations_svg(rows: &[(&'static str, Vec<std::time::Duration>)]) -> String {
    use std::fmt::Write as _;
    const BUCKETS: [(&str, f64); 6] = [
        ("< 1 s", 1.0),
        ("1–10 s", 10.0),
        ("10 s–1 min", 60.0),
        ("1–10 min", 600.0),
        ("10–60 min", 3600.0),
        ("> 1 h", f64::INFINITY),
    ];
    let (label_w, cell_w, row_h, head) = (170.0_f64, 78.0_f64, 22.0_f64, 20.0_f64);
    let w = label_w + cell_w * BUCKETS.len() as f64;
    let h = head + row_h * rows.len().max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Duration distribution per operation type\">"
    );
    for (i, (name, _)) in BUCKETS.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"13\" font-size=\"10\" text-anchor=\"middle\" fill=\"#6b7280\">{name}</text>",
            label_w + cell_w * (i as f64 + 0.5)
        );
    }
    if rows.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"11\" fill=\"#6b7280\">No successful runs yet.</text>",
            head + 14.0
        );
    }
    for (r, (label, durations)) in rows.iter().enumerate() {
        let mut counts = [0u64; BUCKETS.len()];
        for d in durations {
            let s = d.as_secs_f64();
            let i = BUCKETS.iter().position(|(_, up)| s < *up).unwrap_or(BUCKETS.len() - 1);
            counts[i] += 1;
        }
        let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
        let y = head + r as f64 * row_h;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"11\">{label}</text>",
            y + 15.0
        );
        for (i, n) in counts.iter().enumerate() {
            let opacity = if *n == 0 { 0.05 } else { 0.2 + 0.8 * (*n as f64 / max) };
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#2563eb\" fill-opacity=\"{opacity:.2}\"><title>{label}, {}: {n}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{n}</text>",
                label_w + cell_w * i as f64 + 1.0,
                y + 2.0,
                cell_w - 2.0,
                row_h - 4.0,
                BUCKETS[i].0,
                label_w + cell_w * (i as f64 + 0.5),
                y + 15.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}
