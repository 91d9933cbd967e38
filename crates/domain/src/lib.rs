//! The pure core of TenantAtlas: types and rules, no I/O, no async.
//!
//! Every law of the operations engine (DESIGN.md §2) has a named home here;
//! the `engine` and `store` crates enforce them.
//!
//! | module        | law / concern                                                   |
//! |---------------|-----------------------------------------------------------------|
//! | [`lifecycle`] | law 1: statuses, outcomes, the legal transitions, status buckets |
//! | [`catalog`]   | the operation-type catalog; law 2's identity key derivation     |
//! | [`params`]    | parameter parsing and validation at the edge                    |
//! | [`counts`]    | law 3: the closed summary-count vocabulary                      |
//! | [`progress`]  | law 4: counted, phased, indeterminate progress; unit outcomes   |
//! | [`notify`]    | law 5: the one "View run" link and the terminal notification    |
//! | [`problem`]   | law 6: the one problem-class function; law 7's staleness rule   |
//! | [`reason`]    | law 8: reason codes with next steps                             |
//! | [`sanitize`]  | law 8: the failure-message sanitizer                            |
//! | [`access`]    | law 10: roles, capabilities, the authorization decision         |
//! | [`directory`] | workspaces, tenants, users, memberships, the audit trail        |
//! | [`query`]     | reading runs: scope, filters, cursors, pages, change signals    |
//! | [`run`]       | the run record every surface reads                              |
//! | [`view`]      | the public JSON shape of a run (CONTRACT.md)                    |
//! | [`schedule`]    | cron schedules: the next fire time                           |
//! | [`timeline`]    | the vocabulary of a run's timeline                        |
//! | [`names`]     | validation of names, e-mail addresses, passwords, provider specs|
//! | [`ids`], [`timestamp`] | typed ids and the microsecond timestamp               |

pub mod access;
pub mod catalog;
pub mod connection;
pub mod counts;
pub mod directory;
pub mod error;
pub mod ids;
pub mod lifecycle;
pub mod names;
pub mod notify;
pub mod params;
pub mod problem;
pub mod progress;
pub mod query;
pub mod reason;
pub mod run;
pub mod sanitize;
pub mod schedule;
pub mod timeline;
pub mod timestamp;
pub mod view;

pub use error::FieldError;
pub use timestamp::Timestamp;
