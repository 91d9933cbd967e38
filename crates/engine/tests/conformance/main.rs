//! The conformance suite: the same cases on SQLite and PostgreSQL.
#![expect(
    clippy::unwrap_used,
    reason = "test support code: a failed setup step should stop the test"
)]

mod harness;
mod standins;

mod concurrency;
mod credentials;
mod directory;
mod fanout;
mod guards;
mod lifecycle;
mod monitoring;
mod starts;
mod units;
mod upgrade;
mod work;
mod worker;

use std::time::Duration;

use tenantatlas_domain::catalog::OperationType;
use tenantatlas_domain::ids::{RunId, TenantId};
use tenantatlas_domain::params::{Params, RawParams};
use tenantatlas_domain::run::Run;
use tenantatlas_engine::{Engine, Initiator};

/// Parses JSON parameters for `op`.
pub fn params(op: OperationType, v: serde_json::Value) -> Params {
    let catalog = standins::catalog();
    let spec = catalog.spec(op).expect("a type with a spec or a stand-in");
    spec.parse_params(RawParams::Json(&v)).unwrap()
}

/// Starts a synthetic run with `units` planned units (or indeterminate).
pub async fn start_synthetic(
    e: &Engine,
    who: Initiator,
    tenant: TenantId,
    v: serde_json::Value,
) -> tenantatlas_engine::Started {
    e.start(
        who,
        tenant,
        OperationType::Synthetic,
        params(OperationType::Synthetic, v),
    )
    .await
    .unwrap()
}

/// Claims a queued run as a worker would.
pub async fn claim(e: &Engine, id: RunId) -> Run {
    e.claim(id, "worker-1", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("claimable")
}

conformance! {
    crate::directory::workspaces_tenants_users_and_audit => workspaces_tenants_users_and_audit,
    crate::directory::memberships_and_entitlements => memberships_and_entitlements,
    crate::directory::a_workspace_keeps_an_owner_when_owners_leave_at_once => a_workspace_keeps_an_owner_when_owners_leave_at_once,
    crate::directory::api_tokens_store_only_their_hash => api_tokens_store_only_their_hash,
    crate::credentials::credentials_are_sealed_for_their_tenant_and_rotate => credentials_are_sealed_for_their_tenant_and_rotate,
    crate::credentials::credential_writes_are_checked_and_authorized => credential_writes_are_checked_and_authorized,
    crate::credentials::without_a_usable_key_nothing_is_written => without_a_usable_key_nothing_is_written,
    crate::starts::a_start_creates_a_queued_run_with_its_timeline => a_start_creates_a_queued_run_with_its_timeline,
    crate::starts::identical_starts_join_and_subscribe => identical_starts_join_and_subscribe,
    crate::starts::refused_starts_create_nothing => refused_starts_create_nothing,
    crate::starts::types_without_a_handler_are_refused_and_create_nothing => types_without_a_handler_are_refused_and_create_nothing,
    crate::starts::batch_start_dedupes_within_and_across_batches => batch_start_dedupes_within_and_across_batches,
    crate::lifecycle::completion_notifies_every_subscriber_once => completion_notifies_every_subscriber_once,
    crate::lifecycle::system_runs_notify_nobody => system_runs_notify_nobody,
    crate::lifecycle::illegal_transitions_are_refused => illegal_transitions_are_refused,
    crate::lifecycle::cancel_queued_running_and_completed => cancel_queued_running_and_completed,
    crate::lifecycle::cancel_is_authorized => cancel_is_authorized,
    crate::lifecycle::block_and_requeue => block_and_requeue,
    crate::lifecycle::reconcile_keeps_lineage => reconcile_keeps_lineage,
    crate::lifecycle::a_heartbeat_between_the_reconcilers_read_and_write_keeps_the_run => a_heartbeat_between_the_reconcilers_read_and_write_keeps_the_run,
    crate::units::units_count_once_and_derive_the_outcome => units_count_once_and_derive_the_outcome,
    crate::units::zero_units_complete_at_once => zero_units_complete_at_once,
    crate::units::stale_attempts_are_fenced => stale_attempts_are_fenced,
    crate::units::phases_and_counts => phases_and_counts,
    crate::fanout::parent_completes_once_with_its_last_child => parent_completes_once_with_its_last_child,
    crate::fanout::zero_children_complete_the_parent => zero_children_complete_the_parent,
    crate::monitoring::filters_and_keyset_pagination => filters_and_keyset_pagination,
    crate::monitoring::reads_are_scoped_to_the_viewer => reads_are_scoped_to_the_viewer,
    crate::monitoring::sql_problem_classes_agree_with_the_domain => sql_problem_classes_agree_with_the_domain,
    crate::monitoring::notifications_inbox => notifications_inbox,
    crate::concurrency::two_hundred_identical_starts_make_one_run => two_hundred_identical_starts_make_one_run,
    crate::concurrency::fifty_concurrent_completions_transition_once => fifty_concurrent_completions_transition_once,
    crate::concurrency::concurrent_unit_completions_count_once => concurrent_unit_completions_count_once,
    crate::work::claims_take_due_runs_once => claims_take_due_runs_once,
    crate::work::heartbeats_extend_fence_and_carry_cancel => heartbeats_extend_fence_and_carry_cancel,
    crate::work::batched_completions_fence_each_write => batched_completions_fence_each_write,
    crate::work::orphans_of_a_restarted_node_resume => orphans_of_a_restarted_node_resume,
    crate::work::sweep_reconciles_stale_runs_visibly => sweep_reconciles_stale_runs_visibly,
    crate::work::adaptive_thresholds_learn_from_recent_runs => adaptive_thresholds_learn_from_recent_runs,
    crate::work::schedules_fire_once_per_fire_time => schedules_fire_once_per_fire_time,
    crate::work::schedules_of_an_opt_in_type_need_the_opt_in => schedules_of_an_opt_in_type_need_the_opt_in,
    crate::worker::a_worker_runs_counted_work_to_completion => a_worker_runs_counted_work_to_completion,
    crate::worker::retries_back_off_then_succeed_without_redoing_units => retries_back_off_then_succeed_without_redoing_units,
    crate::worker::cancellation_reaches_a_running_handler => cancellation_reaches_a_running_handler,
    crate::worker::a_panicking_handler_fails_its_run_and_the_worker_survives => a_panicking_handler_fails_its_run_and_the_worker_survives,
    crate::worker::shutdown_releases_runs_for_another_worker => shutdown_releases_runs_for_another_worker,
    crate::worker::a_process_without_the_opt_in_leaves_synthetic_runs_alone => a_process_without_the_opt_in_leaves_synthetic_runs_alone,
    crate::worker::a_reconciled_run_ignores_late_results => a_reconciled_run_ignores_late_results,
    crate::worker::an_idle_worker_wakes_on_a_start => an_idle_worker_wakes_on_a_start,
    crate::worker::retry_after_steers_the_requeue => retry_after_steers_the_requeue,
    crate::worker::a_handler_sees_its_tenant_and_its_fence => a_handler_sees_its_tenant_and_its_fence,
    crate::upgrade::a_database_of_an_earlier_main_migrates_forward_and_reads_back => a_database_of_an_earlier_main_migrates_forward_and_reads_back,
}
