//! A user's inbox: the terminal notifications of the runs they started or
//! joined (law 5). Written only at completion, by the lifecycle; read and
//! marked read here.

use tenantatlas_domain::ids::{NotificationId, UserId};
use tenantatlas_domain::notify::Notification;

use crate::Engine;
use crate::error::Result;

impl Engine {
    /// A user's newest notifications.
    pub async fn notifications(&self, user: UserId, limit: u32) -> Result<Vec<Notification>> {
        Ok(self.store().notifications(user, limit).await?)
    }

    /// How many of a user's notifications are unread.
    pub async fn unread_count(&self, user: UserId) -> Result<u64> {
        Ok(self.store().unread_count(user).await?)
    }

    /// Marks one of the user's notifications read; `false` when it is not
    /// theirs.
    pub async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<bool> {
        Ok(self.store().mark_read(user, id, self.now()).await?)
    }
}
