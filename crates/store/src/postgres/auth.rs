//! Sessions and API tokens. Only SHA-256 hashes of the secrets are stored;
//! changing a password or disabling a user ends their sessions in the same
//! transaction.

use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::UserId;

use super::{PgStore, insert_audit};
use crate::error::Result;
use crate::model::{Actor, AuditEntry, SessionRecord, TokenRecord};
use crate::rows::{self, RowExt as _};

/// The user columns, prefixed for a join.
const USER: &str = "u.id, u.email, u.platform_operator, u.disabled_at, u.password_changed_at, u.created_at";

fn audit(actor: Actor, action: &str, user: UserId, now: Timestamp) -> AuditEntry {
    AuditEntry {
        at: now,
        actor,
        workspace_id: None,
        tenant_id: None,
        action: action.to_owned(),
        target_type: Some("user".into()),
        target_id: Some(user.to_string()),
        detail: serde_json::json!({}),
    }
}

pub(super) async fn create_session(s: &PgStore, id_hash: &str, user: UserId, now: Timestamp) -> Result<()> {
    let mut tx = s.begin().await?;
    sqlx::query("INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at) VALUES ($1, $2, $3, $3)")
        .bind(id_hash)
        .bind(user.as_uuid())
        .bind(now.to_datetime())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn find_session(s: &PgStore, id_hash: &str) -> Result<Option<SessionRecord>> {
    let row = sqlx::query(&format!(
        "SELECT s.id_hash, s.created_at AS s_created_at, s.last_seen_at, {USER} \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1"
    ))
    .bind(id_hash)
    .fetch_optional(s.pool())
    .await?;
    row.map(|r| {
        Ok(SessionRecord {
            id_hash: r.text("id_hash")?,
            user: rows::user_from_row(&r)?,
            created_at: r.ts("s_created_at")?,
            last_seen_at: r.ts("last_seen_at")?,
        })
    })
    .transpose()
}

pub(super) async fn touch_session(s: &PgStore, id_hash: &str, now: Timestamp) -> Result<()> {
    let mut tx = s.begin().await?;
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $1")
        .bind(now.to_datetime())
        .bind(id_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_session(s: &PgStore, id_hash: &str) -> Result<()> {
    let mut tx = s.begin().await?;
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_password(s: &PgStore, user: UserId, hash: &str, actor: Actor, now: Timestamp) -> Result<()> {
    let mut tx = s.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now.to_datetime())
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
    insert_audit(&mut tx, &audit(actor, "user.password_change", user, now)).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn disable_user(s: &PgStore, user: UserId, actor: Actor, now: Timestamp) -> Result<()> {
    let mut tx = s.begin().await?;
    sqlx::query("UPDATE users SET disabled_at = COALESCE(disabled_at, $1) WHERE id = $2")
        .bind(now.to_datetime())
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut *tx)
        .await?;
    insert_audit(&mut tx, &audit(actor, "user.disable", user, now)).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn create_api_token(
    s: &PgStore,
    id_hash: &str,
    user: UserId,
    name: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<()> {
    let mut tx = s.begin().await?;
    sqlx::query("INSERT INTO api_tokens (id_hash, user_id, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id_hash)
        .bind(user.as_uuid())
        .bind(name)
        .bind(now.to_datetime())
        .execute(&mut *tx)
        .await?;
    let mut entry = audit(actor, "token.create", user, now);
    entry.detail = serde_json::json!({ "name": name });
    insert_audit(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn find_api_token(s: &PgStore, id_hash: &str) -> Result<Option<TokenRecord>> {
    let row = sqlx::query(&format!(
        "SELECT t.name, t.created_at AS t_created_at, {USER} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id_hash = $1"
    ))
    .bind(id_hash)
    .fetch_optional(s.pool())
    .await?;
    row.map(|r| {
        Ok(TokenRecord {
            name: r.text("name")?,
            user: rows::user_from_row(&r)?,
            created_at: r.ts("t_created_at")?,
        })
    })
    .transpose()
}
