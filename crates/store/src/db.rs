//! One way to run a statement on either database.
//!
//! Statements are written once as SQL text with `$n` placeholders — SQLite
//! and PostgreSQL both accept them — and a list of [`Arg`]s. Each dialect
//! binds the arguments in its own storage encoding (SQLite: ids as
//! hyphenated text, times as integer microseconds, JSON as text, booleans as
//! 0/1; PostgreSQL: `uuid`, `timestamptz`, `jsonb`, `boolean`), and rows come
//! back as a [`Row`] that decodes either encoding ([`RowExt`]). So a module
//! of this crate writes each statement once; it branches on [`Dialect`] only
//! where the SQL really differs (batch writes, claims, start dedupe), and
//! says why there.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqliteRow};
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::{NotificationId, RunId, TenantId, TokenId, UserId, WorkspaceId};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::Result;
use crate::model::Signal;
use crate::rows::RowExt;

/// Which SQL dialect a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound value, in no database's encoding yet.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Uuid(Option<Uuid>),
    Ts(Option<Timestamp>),
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Json(serde_json::Value),
    /// A list, for [`Q::any`]: an array on PostgreSQL, a JSON array on
    /// SQLite.
    Uuids(Vec<Uuid>),
    /// Bytes: `BLOB` on SQLite, `bytea` on PostgreSQL.
    Bytes(Vec<u8>),
}

macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl From<$t> for Arg {
            fn from($v: $t) -> Self {
                $e
            }
        }
    )*};
}

arg_from! {
    Uuid => |v| Arg::Uuid(Some(v));
    Option<Uuid> => |v| Arg::Uuid(v);
    Timestamp => |v| Arg::Ts(Some(v));
    Option<Timestamp> => |v| Arg::Ts(v);
    &str => |v| Arg::Text(Some(v.to_owned()));
    &String => |v| Arg::Text(Some(v.clone()));
    String => |v| Arg::Text(Some(v));
    Option<&str> => |v| Arg::Text(v.map(str::to_owned));
    Option<String> => |v| Arg::Text(v);
    &Option<String> => |v| Arg::Text(v.clone());
    i64 => |v| Arg::Int(Some(v));
    Option<i64> => |v| Arg::Int(v);
    u32 => |v| Arg::Int(Some(i64::from(v)));
    Option<u32> => |v| Arg::Int(v.map(i64::from));
    u64 => |v| Arg::Int(Some(i64::try_from(v).unwrap_or(i64::MAX)));
    bool => |v| Arg::Bool(v);
    serde_json::Value => |v| Arg::Json(v);
    &serde_json::Value => |v| Arg::Json(v.clone());
    &[u8] => |v| Arg::Bytes(v.to_vec());
}

macro_rules! id_args {
    ($($t:ty),*) => {$(
        arg_from! {
            $t => |v| Arg::Uuid(Some(v.as_uuid()));
            Option<$t> => |v| Arg::Uuid(v.map(|v| v.as_uuid()));
        }
    )*};
}

id_args!(RunId, TenantId, WorkspaceId, UserId, NotificationId, TokenId);

/// A statement: SQL text with `$n` placeholders and its arguments.
#[derive(Clone, Debug, Default)]
pub(crate) struct Q {
    pub(crate) text: String,
    pub(crate) args: Vec<Arg>,
}

/// A statement with this text.
pub(crate) fn q(text: impl Into<String>) -> Q {
    Q {
        text: text.into(),
        args: Vec::new(),
    }
}

impl Q {
    /// Binds the next placeholder.
    pub(crate) fn bind(mut self, a: impl Into<Arg>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Adds an argument and returns its placeholder (for SQL built in
    /// pieces).
    pub(crate) fn arg(&mut self, a: impl Into<Arg>) -> String {
        self.args.push(a.into());
        format!("${}", self.args.len())
    }

    /// Adds an argument for an anonymous `?` placeholder. Only for
    /// SQLite's large batch statements, whose every placeholder is `?` in
    /// argument order: SQLite looks each named `$n` up in a list (sqlx asks
    /// for every parameter's name), which costs a statement of a thousand
    /// parameters a quarter of its time; `?` parameters have no name.
    pub(crate) fn next(&mut self, a: impl Into<Arg>) -> &'static str {
        self.args.push(a.into());
        "?"
    }

    /// The membership test "is one of `list`" for the expression before
    /// it: `= ANY($n)` on PostgreSQL (one array argument: the text does not
    /// change with the list's length, so it stays prepared), `IN (SELECT
    /// value FROM json_each($n))` on SQLite, which has no arrays.
    pub(crate) fn any(&mut self, dialect: Dialect, list: Vec<Uuid>) -> String {
        let p = self.arg(Arg::Uuids(list));
        match dialect {
            Dialect::Postgres => format!("= ANY({p})"),
            Dialect::Sqlite => format!("IN (SELECT value FROM json_each({p}))"),
        }
    }

    fn sqlite(&self) -> Query<'_, Sqlite, SqliteArguments<'_>> {
        let mut query = sqlx::query(&self.text);
        for a in &self.args {
            query = match a {
                Arg::Uuid(u) => query.bind(u.map(|u| u.hyphenated().to_string())),
                Arg::Ts(t) => query.bind(t.map(Timestamp::unix_micros)),
                Arg::Text(s) => query.bind(s.as_deref()),
                Arg::Int(i) => query.bind(*i),
                Arg::Bool(b) => query.bind(i64::from(*b)),
                Arg::Json(v) => query.bind(v.to_string()),
                Arg::Uuids(list) => query.bind(
                    serde_json::Value::from(list.iter().map(|u| u.hyphenated().to_string()).collect::<Vec<_>>())
                        .to_string(),
                ),
                Arg::Bytes(b) => query.bind(b.as_slice()),
            };
        }
        query
    }

    fn pg(&self) -> Query<'_, Postgres, PgArguments> {
        let mut query = sqlx::query(&self.text);
        for a in &self.args {
            query = match a {
                Arg::Uuid(u) => query.bind(*u),
                Arg::Ts(t) => query.bind(t.map(Timestamp::to_datetime)),
                Arg::Text(s) => query.bind(s.as_deref()),
                Arg::Int(i) => query.bind(*i),
                Arg::Bool(b) => query.bind(*b),
                Arg::Json(v) => query.bind(sqlx::types::Json(v)),
                Arg::Uuids(list) => query.bind(list.as_slice()),
                Arg::Bytes(b) => query.bind(b.as_slice()),
            };
        }
        query
    }
}

/// A row of either database.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Pg(PgRow),
}

macro_rules! delegate_row {
    ($($name:ident -> $t:ty;)*) => {
        impl RowExt for Row {
            $(fn $name(&self, col: &str) -> Result<$t> {
                match self {
                    Row::Sqlite(r) => r.$name(col),
                    Row::Pg(r) => r.$name(col),
                }
            })*
        }
    };
}

delegate_row! {
    uuid -> Uuid;
    opt_uuid -> Option<Uuid>;
    ts -> Timestamp;
    opt_ts -> Option<Timestamp>;
    text -> String;
    opt_text -> Option<String>;
    int -> i64;
    opt_int -> Option<i64>;
    json -> serde_json::Value;
    boolean -> bool;
    bytes -> Vec<u8>;
}

/// A connection of either database, borrowed for a few statements.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Pg(&'c mut PgConnection),
}

impl Conn<'_> {
    /// The dialect it speaks.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Pg(_) => Dialect::Postgres,
        }
    }

    /// ` FOR UPDATE` on PostgreSQL, where a read inside a write transaction
    /// must lock its row against concurrent writers; nothing on SQLite,
    /// whose write transactions hold the database's one write lock from
    /// their first statement (`BEGIN IMMEDIATE`) and which has no such
    /// clause.
    pub(crate) fn for_update(&self) -> &'static str {
        match self {
            Conn::Sqlite(_) => "",
            Conn::Pg(_) => " FOR UPDATE",
        }
    }

    /// Runs a statement; answers the rows it changed.
    pub(crate) async fn execute(&mut self, q: &Q) -> Result<u64> {
        Ok(match self {
            Conn::Sqlite(c) => q.sqlite().execute(&mut **c).await?.rows_affected(),
            Conn::Pg(c) => q.pg().execute(&mut **c).await?.rows_affected(),
        })
    }

    /// Every row a statement answers.
    pub(crate) async fn all(&mut self, q: &Q) -> Result<Vec<Row>> {
        Ok(match self {
            Conn::Sqlite(c) => q
                .sqlite()
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::Pg(c) => q.pg().fetch_all(&mut **c).await?.into_iter().map(Row::Pg).collect(),
        })
    }

    /// The row a statement answers, if any.
    pub(crate) async fn opt(&mut self, q: &Q) -> Result<Option<Row>> {
        Ok(match self {
            Conn::Sqlite(c) => q.sqlite().fetch_optional(&mut **c).await?.map(Row::Sqlite),
            Conn::Pg(c) => q.pg().fetch_optional(&mut **c).await?.map(Row::Pg),
        })
    }

    /// The one row a statement answers.
    pub(crate) async fn one(&mut self, q: &Q) -> Result<Row> {
        Ok(match self {
            Conn::Sqlite(c) => Row::Sqlite(q.sqlite().fetch_one(&mut **c).await?),
            Conn::Pg(c) => Row::Pg(q.pg().fetch_one(&mut **c).await?),
        })
    }
}

/// A connection taken from a pool for reads.
pub(crate) enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Pg(PoolConnection<Postgres>),
}

impl Pooled {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(c) => Conn::Sqlite(c),
            Pooled::Pg(c) => Conn::Pg(c),
        }
    }
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Pg(sqlx::Transaction<'static, Postgres>),
}

/// A write transaction. Change signals raised in it are delivered when it
/// commits: on PostgreSQL as `NOTIFY` inside the transaction (PostgreSQL
/// delivers them at commit, to every node), on SQLite to this process's
/// listeners right after the commit (other processes notice the commit
/// through the file's data version).
pub(crate) struct Tx {
    inner: TxInner,
    signals: Vec<Signal>,
    local: broadcast::Sender<Signal>,
}

impl Tx {
    pub(crate) fn sqlite(t: sqlx::Transaction<'static, Sqlite>, local: broadcast::Sender<Signal>) -> Self {
        Self {
            inner: TxInner::Sqlite(t),
            signals: Vec::new(),
            local,
        }
    }

    pub(crate) fn pg(t: sqlx::Transaction<'static, Postgres>, local: broadcast::Sender<Signal>) -> Self {
        Self {
            inner: TxInner::Pg(t),
            signals: Vec::new(),
            local,
        }
    }

    /// The transaction's connection.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match &mut self.inner {
            TxInner::Sqlite(t) => Conn::Sqlite(t),
            TxInner::Pg(t) => Conn::Pg(t),
        }
    }

    /// Announces `s` once the transaction commits.
    pub(crate) fn signal(&mut self, s: Signal) {
        if !self.signals.contains(&s) {
            self.signals.push(s);
        }
    }

    /// Commits, then (SQLite) tells this process's listeners.
    pub(crate) async fn commit(mut self) -> Result<()> {
        match self.inner {
            TxInner::Pg(mut t) => {
                for s in &self.signals {
                    crate::postgres::notify(&mut t, s).await?;
                }
                t.commit().await?;
            }
            TxInner::Sqlite(t) => {
                t.commit().await?;
                for s in self.signals.drain(..) {
                    let _ = self.local.send(s);
                }
            }
        }
        Ok(())
    }
}
