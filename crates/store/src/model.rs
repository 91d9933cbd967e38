//! The values the store takes and returns: the nouns every layer shares
//! (from `tenantatlas_domain`) and the store's commands and answers (from
//! the engine's port, which the store implements).

pub use tenantatlas_domain::directory::*;
pub use tenantatlas_domain::notify::Notification;
pub use tenantatlas_domain::query::*;
pub use tenantatlas_domain::run::UnitRecord;
pub use tenantatlas_domain::schedule::{NewSchedule, Schedule};
pub use tenantatlas_domain::timeline::{NewEvent, RunEvent};
pub use tenantatlas_engine::port::{
    ClaimRequest, CountsWrite, Fence, HeartbeatAck, LifecycleWrite, MetricsGroup, MetricsSnapshot, NewRun, NewToken,
    PlanApplied, ReleaseRequest, ScheduleFire, SessionRecord, StartRecord, TokenRecord, TransitionDetail,
    TransitionResult, UnitResult, UnitsApplied,
};
