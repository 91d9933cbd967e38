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

/// `s` as one sentence: trimmed, ending in exactly one period (messages
/// that already end in one are not given a second).
pub fn sentence(s: &str) -> String {
    let s = s.trim().trim_end_matches('.');
    format!("{s}.")
}

/// Progress of a run in a few words: a queued run that has done nothing
/// yet says how long it has waited, not "elapsed".
pub fn run_progress_text(v: &RunView) -> String {
    match &v.progress {
        ProgressView::Indeterminate { elapsed_s } if v.status == RunStatus::Queued => {
            format!("waiting {}", duration_text(*elapsed_s))
        }
        p => progress_text(p),
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
    v.word().to_owned()
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
            run_progress_text(v)
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
    /// Queued: its time reads as waiting, not as work.
    pub waiting: bool,
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
        waiting: v.status == RunStatus::Queued,
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

/// One start form of a tenant dashboard: the type and an input per
/// parameter, drawn from its spec (the same rules the server checks).
#[derive(Clone, Debug)]
pub struct StartForm {
    pub op: &'static str,
    pub label: &'static str,
    pub fields: Vec<FormField>,
    /// A required parameter: the form is open, not behind "Parameters".
    pub open: bool,
}

/// One input of a start form.
#[derive(Clone, Debug)]
pub struct FormField {
    pub name: &'static str,
    /// `number`, `text` or `select`.
    pub input: &'static str,
    pub min: String,
    pub max: String,
    pub pattern: &'static str,
    pub choices: Vec<&'static str>,
    pub value: String,
    pub required: bool,
    pub help: &'static str,
}

pub fn start_form(spec: &tenantatlas_domain::catalog::TypeSpec) -> StartForm {
    use tenantatlas_domain::params::ParamKind;
    let fields: Vec<FormField> = spec
        .params
        .iter()
        .map(|p| {
            let value = spec
                .suggested
                .iter()
                .find(|(n, _)| *n == p.name)
                .map(|(_, v)| *v)
                .or(p.default)
                .unwrap_or_default()
                .to_owned();
            let mut f = FormField {
                name: p.name,
                input: "text",
                min: String::new(),
                max: String::new(),
                pattern: "",
                choices: Vec::new(),
                value,
                required: p.required,
                help: p.help,
            };
            match p.kind {
                ParamKind::Int { min, max } => {
                    f.input = "number";
                    f.min = min.to_string();
                    f.max = max.to_string();
                }
                ParamKind::Id => f.pattern = "[A-Za-z0-9._:\\-]{1,128}",
                ParamKind::IdList => f.pattern = "[A-Za-z0-9._:\\-]{1,128}(, *[A-Za-z0-9._:\\-]{1,128})*",
                ParamKind::Bool => {
                    f.input = "select";
                    f.choices = vec!["true", "false"];
                }
                ParamKind::Choice(words) => {
                    f.input = "select";
                    f.choices = words.to_vec();
                }
            }
            f
        })
        .collect();
    StartForm {
        op: spec.name(),
        label: spec.op.label(),
        open: fields.iter().any(|f| f.required),
        fields,
    }
}

#[derive(Template)]
#[template(path = "error_toast.html")]
struct ErrorToastT<'a> {
    message: &'a str,
    field: &'a str,
}

/// A refused start as a toast: what went wrong, naming the field as the
/// start form names it (`units`, not the API's `params.units`).
pub fn error_toast(e: &crate::WebError) -> String {
    let field = e.field.as_deref().unwrap_or_default();
    let short = field.strip_prefix("params.").unwrap_or(field);
    let message = match e.message.strip_prefix(field) {
        Some(rest) if !field.is_empty() => format!("{short}{rest}"),
        _ => e.message.clone(),
    };
    ErrorToastT {
        message: &message,
        field: short,
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

/// The next step of a completed run that did not succeed, for a caller
/// who may not start it again (a readonly member): who can act, not an
/// instruction they cannot follow.
fn follow_up(v: &RunView, may: Allowed, next_step: String) -> String {
    // system runs (no tenant) start on their schedule: nobody starts them
    if may.retry || v.tenant_id.is_none() {
        next_step
    } else {
        format!(
            "You may not start {} on this tenant; someone who may can follow up: {}",
            v.label,
            sentence(&next_step)
        )
    }
}

/// The decision for `v` seen by a caller allowed `may`; `base` is the
/// route prefix of the actions (`/admin/operations/{id}`,
/// `/api/v1/runs/{id}`, `/system/runs/{id}`).
pub fn decision(v: &RunView, may: Allowed, base: &str) -> Decision {
    let reason = v.reason_code.map(|c| c.info());
    let (headline, next_step) = match v.problem_class {
        ProblemClass::Active if v.status == RunStatus::Queued => (
            format!("Queued since {}; waiting for a worker.", when(v.created_at)),
            "Nothing to do: a worker takes it when one is free. Progress updates live.".to_owned(),
        ),
        ProblemClass::Active => (
            format!("Running (attempt {}).", v.attempt),
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
                follow_up(
                    v,
                    may,
                    reason.map_or_else(|| "Start it again.".to_owned(), |i| i.next_step.to_owned()),
                ),
            )
        }
        ProblemClass::NeedsFollowUp => (
            sentence(&format!(
                "Completed as {}{}",
                status_text(v),
                reason.map_or_else(String::new, |i| format!(": {}", i.message))
            )),
            follow_up(
                v,
                may,
                reason.map_or_else(|| "Look at the failures below.".to_owned(), |i| i.next_step.to_owned()),
            ),
        ),
        ProblemClass::Ok => ("Succeeded.".to_owned(), "Nothing to do.".to_owned()),
        ProblemClass::Cancelled => (
            "Cancelled.".to_owned(),
            follow_up(v, may, "Start it again when you need it.".to_owned()),
        ),
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
