//! The request log: every request the local Graph answers (never a body,
//! a token or a secret), and the counters of `GET /_mock/stats`.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How many records the log keeps (the oldest go first); the counters of
/// [`Stats`] count every request regardless.
pub const LOG_CAPACITY: usize = 200_000;

/// What kind of request a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    Token,
    /// A Graph request (`/beta/…`), sent directly or inside a `$batch`.
    Graph,
    /// A `POST /beta/$batch` envelope (its items are recorded as
    /// [`RequestKind::Graph`] with `in_batch`).
    Batch,
}

/// One request, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Its position in the log (1-based, increasing; survives trimming).
    pub seq: u64,
    /// What kind of request.
    pub kind: RequestKind,
    /// `GET`, `POST`, …
    pub method: String,
    /// The path and query as requested (`/beta/groups?$filter=…`); for a
    /// `$batch` item, `/beta/` and the item's `url`.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The tenant the token belonged to (`None` when it was not accepted).
    pub tenant: Option<String>,
    /// Whether it was a write (a Graph `POST`, `PATCH`, `PUT` or
    /// `DELETE`; never a token request or a `$batch` envelope).
    pub write: bool,
    /// Whether it was an item of a `$batch`.
    pub in_batch: bool,
}

/// The counters of `GET /_mock/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// HTTP requests received (Graph requests, `$batch` envelopes and token
    /// requests; not the items inside a batch, not `/_mock/…`).
    pub requests: u64,
    /// Graph reads (`GET`), direct or inside a batch.
    pub reads: u64,
    /// Graph writes (`POST`, `PATCH`, `PUT`, `DELETE`), direct or inside a
    /// batch.
    pub writes: u64,
    /// Answers `429 Too Many Requests`, direct or inside a batch.
    pub throttled: u64,
    /// Requests executed inside a `$batch`.
    pub batch_items: u64,
    /// Token requests.
    pub token_requests: u64,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    records: VecDeque<RequestRecord>,
    stats: Stats,
}

/// The log, shared by every request.
#[derive(Default)]
pub(crate) struct Log {
    inner: Mutex<Inner>,
}

/// Whether a method writes (anything else is counted as a read).
pub(crate) fn is_write(method: &str) -> bool {
    matches!(method, "POST" | "PATCH" | "PUT" | "DELETE")
}

/// What a caller tells the log about one request.
pub(crate) struct Entry<'a> {
    pub kind: RequestKind,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub tenant: Option<String>,
    pub in_batch: bool,
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the log down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one request.
    pub fn record(&self, e: Entry<'_>) {
        let write = e.kind == RequestKind::Graph && is_write(e.method);
        let mut g = self.lock();
        g.seq += 1;
        let s = &mut g.stats;
        match e.kind {
            RequestKind::Token => {
                s.requests += 1;
                s.token_requests += 1;
            }
            RequestKind::Batch => s.requests += 1,
            RequestKind::Graph => {
                if e.in_batch {
                    s.batch_items += 1;
                } else {
                    s.requests += 1;
                }
                if write {
                    s.writes += 1;
                } else {
                    s.reads += 1;
                }
            }
        }
        if e.status == 429 {
            s.throttled += 1;
        }
        let record = RequestRecord {
            seq: g.seq,
            kind: e.kind,
            method: e.method.to_owned(),
            path: e.path.to_owned(),
            status: e.status,
            tenant: e.tenant,
            write,
            in_batch: e.in_batch,
        };
        if g.records.len() >= LOG_CAPACITY {
            g.records.pop_front();
        }
        g.records.push_back(record);
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// The records after `since` (a `seq`; 0 for all that are kept).
    pub fn records(&self, since: u64) -> Vec<RequestRecord> {
        self.lock().records.iter().filter(|r| r.seq > since).cloned().collect()
    }

    /// Forgets every record and zeroes the counters (`seq` keeps counting).
    pub fn clear(&self) {
        let mut g = self.lock();
        g.records.clear();
        g.stats = Stats::default();
    }
}
