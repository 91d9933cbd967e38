//! A user's inbox of terminal notifications (law 5). They are written only
//! by the completion statement family in `lifecycle.rs`; here they are read
//! and marked read.

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::{NotificationId, UserId};
use tenantatlas_engine::port::Notifications;

use crate::SqlStore;
use crate::db::q;
use crate::error::Result;
use crate::model::Notification;
use crate::rows::{self, RowExt as _};

#[async_trait]
impl Notifications for SqlStore {
    async fn notifications(&self, user: UserId, limit: u32) -> Result<Vec<Notification>> {
        let found = self
            .all(
                &q(format!(
                    "SELECT {} FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
                    rows::NOTIFICATION_COLUMNS
                ))
                .bind(user)
                .bind(limit),
            )
            .await?;
        found.iter().map(rows::notification_from_row).collect()
    }

    async fn unread_count(&self, user: UserId) -> Result<u64> {
        let row = self
            .one(&q("SELECT COUNT(*) AS n FROM notifications WHERE user_id = $1 AND read_at IS NULL").bind(user))
            .await?;
        Ok(u64::try_from(row.int("n")?).unwrap_or(0))
    }

    async fn mark_read(&self, user: UserId, id: NotificationId, now: Timestamp) -> Result<bool> {
        let changed = self
            .write(
                &q("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND user_id = $3")
                    .bind(now)
                    .bind(id)
                    .bind(user),
            )
            .await?;
        Ok(changed == 1)
    }
}
