//! Sessions, API tokens and passwords. Only SHA-256 hashes of the secrets
//! are stored; changing a password or disabling a user ends their sessions
//! in the same transaction.

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::{TokenId, UserId};
use tenantatlas_engine::port::Auth;

use crate::SqlStore;
use crate::db::{Q, Row, q};
use crate::error::Result;
use crate::model::{Actor, AuditEntry, NewToken, SessionRecord, TokenRecord, User};
use crate::rows::{self, RowExt as _};
use crate::runs::insert_audit;

/// A token's columns, prefixed and aliased for a join with its user.
const TOKEN: &str = "t.id AS token_id, t.name, t.created_at AS since, t.expires_at, t.last_used_at";

fn token_from_row(r: &Row, user: User) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: TokenId::from_uuid(r.uuid("token_id")?),
        name: r.text("name")?,
        user,
        created_at: r.ts("since")?,
        expires_at: r.opt_ts("expires_at")?,
        last_used_at: r.opt_ts("last_used_at")?,
    })
}

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

impl SqlStore {
    /// A session's or token's row (`columns` of `table` aliased `alias`,
    /// found by its `id_hash`) with its user.
    async fn with_user(&self, columns: &str, table: &str, alias: &str, id_hash: &str) -> Result<Option<(Row, User)>> {
        let row = self
            .opt(
                &q(format!(
                    "SELECT {columns}, {USER} FROM {table} JOIN users u ON u.id = {alias}.user_id \
                     WHERE {alias}.id_hash = $1"
                ))
                .bind(id_hash),
            )
            .await?;
        row.map(|r| {
            let user = rows::user_from_row(&r)?;
            Ok((r, user))
        })
        .transpose()
    }

    /// Changes a user (`change`), ends their sessions, and audits it, in
    /// one transaction.
    async fn change_user(&self, change: Q, user: UserId, entry: AuditEntry) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        conn.execute(&change).await?;
        conn.execute(&q("DELETE FROM sessions WHERE user_id = $1").bind(user))
            .await?;
        insert_audit(&mut conn, &entry).await?;
        tx.commit().await
    }
}

#[async_trait]
impl Auth for SqlStore {
    async fn create_session(&self, id_hash: &str, user: UserId, now: Timestamp) -> Result<()> {
        self.write(
            &q("INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at) VALUES ($1, $2, $3, $3)")
                .bind(id_hash)
                .bind(user)
                .bind(now),
        )
        .await?;
        Ok(())
    }

    async fn find_session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        let found = self
            .with_user(
                "s.id_hash, s.created_at AS since, s.last_seen_at",
                "sessions s",
                "s",
                id_hash,
            )
            .await?;
        found
            .map(|(r, user)| {
                Ok(SessionRecord {
                    id_hash: r.text("id_hash")?,
                    user,
                    created_at: r.ts("since")?,
                    last_seen_at: r.ts("last_seen_at")?,
                })
            })
            .transpose()
    }

    async fn touch_session(&self, id_hash: &str, now: Timestamp) -> Result<()> {
        self.write(
            &q("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND last_seen_at < $1")
                .bind(now)
                .bind(id_hash),
        )
        .await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        self.write(&q("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash))
            .await?;
        Ok(())
    }

    async fn set_password(&self, user: UserId, hash: &str, actor: Actor, now: Timestamp) -> Result<()> {
        let change = q("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(user);
        self.change_user(change, user, audit(actor, "user.password_change", user, now))
            .await
    }

    async fn disable_user(&self, user: UserId, actor: Actor, now: Timestamp) -> Result<()> {
        let change = q("UPDATE users SET disabled_at = COALESCE(disabled_at, $1) WHERE id = $2")
            .bind(now)
            .bind(user);
        self.change_user(change, user, audit(actor, "user.disable", user, now))
            .await
    }

    async fn create_api_token(&self, t: &NewToken, actor: Actor, now: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        conn.execute(
            &q(
                "INSERT INTO api_tokens (id, id_hash, user_id, name, created_at, expires_at) \
                VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(t.id)
            .bind(&t.id_hash)
            .bind(t.user)
            .bind(&t.name)
            .bind(now)
            .bind(t.expires_at),
        )
        .await?;
        let mut entry = audit(actor, "token.create", t.user, now);
        entry.detail = serde_json::json!({
            "token_id": t.id.to_string(),
            "name": t.name,
            "expires_at": t.expires_at.map(Timestamp::to_rfc3339),
        });
        insert_audit(&mut conn, &entry).await?;
        tx.commit().await
    }

    async fn find_api_token(&self, id_hash: &str) -> Result<Option<TokenRecord>> {
        let found = self.with_user(TOKEN, "api_tokens t", "t", id_hash).await?;
        found.map(|(r, user)| token_from_row(&r, user)).transpose()
    }

    async fn api_token(&self, id: TokenId) -> Result<Option<TokenRecord>> {
        let row = self
            .opt(
                &q(format!(
                    "SELECT {TOKEN}, {USER} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
                ))
                .bind(id),
            )
            .await?;
        row.map(|r| token_from_row(&r, rows::user_from_row(&r)?)).transpose()
    }

    async fn list_api_tokens(&self, user: Option<UserId>) -> Result<Vec<TokenRecord>> {
        let found = self
            .all(
                &q(format!(
                    "SELECT {TOKEN}, {USER} FROM api_tokens t JOIN users u ON u.id = t.user_id \
                     WHERE ($1 IS NULL OR t.user_id = $1) ORDER BY t.created_at DESC, t.id DESC"
                ))
                .bind(user),
            )
            .await?;
        found
            .iter()
            .map(|r| token_from_row(r, rows::user_from_row(r)?))
            .collect()
    }

    async fn touch_api_token(&self, id_hash: &str, now: Timestamp) -> Result<()> {
        self.write(
            &q("UPDATE api_tokens SET last_used_at = $1 WHERE id_hash = $2 \
                AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(now)
            .bind(id_hash)
            .bind(now.minus(std::time::Duration::from_secs(60))),
        )
        .await?;
        Ok(())
    }

    async fn revoke_api_token(&self, id: TokenId, actor: Actor, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let gone = conn
            .opt(&q("DELETE FROM api_tokens WHERE id = $1 RETURNING user_id, name").bind(id))
            .await?;
        let Some(row) = gone else {
            return Ok(false);
        };
        let mut entry = audit(actor, "token.revoke", UserId::from_uuid(row.uuid("user_id")?), now);
        entry.detail = serde_json::json!({ "token_id": id.to_string(), "name": row.text("name")? });
        insert_audit(&mut conn, &entry).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let found = self
            .all(&q(format!("SELECT {USER} FROM users u ORDER BY u.email")))
            .await?;
        found.iter().map(rows::user_from_row).collect()
    }
}
