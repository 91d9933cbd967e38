//! Law 5 — three feedback surfaces, no others.
//!
//! This module holds the parts of them that are text: the one helper that
//! builds every "View run" link ([`run_view_url`]), the start toast
//! ([`StartToast`]) and the words of the one terminal notification
//! ([`terminal_notification`]). Notification text is built from catalog
//! words only — never from a failure's free text — so nothing a provider
//! said can reach an inbox.

use serde::Serialize;

use crate::Timestamp;
use crate::catalog::OperationType;
use crate::ids::RunId;
use crate::ids::{NotificationId, TenantId, UserId, WorkspaceId};
use crate::lifecycle::Outcome;
use crate::reason::ReasonCode;
use crate::run::UnitTally;

/// The canonical "View run" link of a run: its detail page.
pub fn run_view_url(id: RunId) -> String {
    format!("/admin/operations/{id}")
}

/// The kind of start toast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToastKind {
    /// A new run was queued.
    Queued,
    /// An identical run was already active and was joined.
    AlreadyQueued,
}

/// The intent-only toast answering a start; never persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StartToast {
    /// Queued or already queued.
    pub kind: ToastKind,
    /// What to tell the person.
    pub message: String,
    /// Link to the run detail.
    pub view_url: String,
}

impl StartToast {
    /// The toast for a start of `op` that created (`joined == false`) or
    /// joined run `id`.
    pub fn for_start(op: OperationType, id: RunId, joined: bool) -> Self {
        let label = op.label();
        let (kind, message) = if joined {
            (
                ToastKind::AlreadyQueued,
                format!("{label} is already queued or running; you will be notified when it ends."),
            )
        } else {
            (ToastKind::Queued, format!("{label} queued."))
        };
        Self {
            kind,
            message,
            view_url: run_view_url(id),
        }
    }
}

/// The words of a terminal notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationText {
    /// One line.
    pub title: String,
    /// A few sentences.
    pub body: String,
}

/// The terminal notification for a run of `op` that completed with
/// `outcome` (and `reason`, when not plain success). `reconciled` says the
/// reconciler completed it.
pub fn terminal_notification(
    op: OperationType,
    outcome: Outcome,
    reason: Option<ReasonCode>,
    reconciled: bool,
    units: &UnitTally,
) -> NotificationText {
    let label = op.label();
    let title = if reconciled {
        format!("{label} was reconciled as stale")
    } else {
        let verb = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::PartiallySucceeded => "partially succeeded",
            Outcome::Failed => "failed",
            Outcome::Blocked => "was blocked",
            Outcome::Cancelled => "was cancelled",
        };
        format!("{label} {verb}")
    };
    let mut body = String::new();
    if let Some(total) = units.total.filter(|t| *t > 0) {
        body.push_str(&format!("{} of {total} items processed", units.processed.min(total)));
        if units.failed > 0 {
            body.push_str(&format!(", {} failed", units.failed));
        }
        body.push_str(". ");
    }
    match reason {
        Some(code) if outcome != Outcome::Succeeded => {
            let info = code.info();
            body.push_str(info.message);
            body.push_str(" Next step: ");
            body.push_str(info.next_step);
        }
        _ if outcome == Outcome::Succeeded => body.push_str("Completed successfully."),
        _ => {}
    }
    NotificationText {
        title,
        body: body.trim().to_owned(),
    }
}

/// A persisted notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Id.
    pub id: NotificationId,
    /// Recipient.
    pub user_id: UserId,
    /// The run.
    pub run_id: RunId,
    /// Workspace of the run.
    pub workspace_id: Option<WorkspaceId>,
    /// Tenant of the run.
    pub tenant_id: Option<TenantId>,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// "View run" link.
    pub view_url: String,
    /// When read.
    pub read_at: Option<Timestamp>,
    /// When written.
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn view_url_points_at_the_run_detail() {
        let id = RunId::from_uuid(Uuid::from_u128(0xabc));
        assert_eq!(run_view_url(id), format!("/admin/operations/{id}"));
        assert_eq!(
            StartToast::for_start(OperationType::InventorySync, id, true).view_url,
            run_view_url(id)
        );
    }

    #[test]
    fn toasts() {
        let id = RunId::from_uuid(Uuid::from_u128(1));
        let q = StartToast::for_start(OperationType::InventorySync, id, false);
        assert_eq!(q.kind, ToastKind::Queued);
        assert_eq!(q.message, "Inventory sync queued.");
        let j = StartToast::for_start(OperationType::InventorySync, id, true);
        assert_eq!(j.kind, ToastKind::AlreadyQueued);
        assert_eq!(serde_json::to_value(j.kind).unwrap(), "already_queued");
    }

    #[test]
    fn terminal_texts() {
        let units = UnitTally {
            total: Some(10),
            processed: 10,
            succeeded: 8,
            failed: 2,
            ..UnitTally::default()
        };
        let n = terminal_notification(
            OperationType::InventorySync,
            Outcome::PartiallySucceeded,
            Some(ReasonCode::UnitFailed),
            false,
            &units,
        );
        assert_eq!(n.title, "Inventory sync partially succeeded");
        assert!(n.body.starts_with("10 of 10 items processed, 2 failed."), "{}", n.body);
        assert!(n.body.contains("Next step:"));

        let r = terminal_notification(
            OperationType::BackupSetCapture,
            Outcome::Failed,
            Some(ReasonCode::RunStaleReconciled),
            true,
            &UnitTally::default(),
        );
        assert_eq!(r.title, "Backup capture was reconciled as stale");
        assert!(r.body.contains("reconciled"));

        let ok = terminal_notification(
            OperationType::Synthetic,
            Outcome::Succeeded,
            None,
            false,
            &UnitTally::default(),
        );
        assert_eq!(ok.body, "Completed successfully.");
    }
}
