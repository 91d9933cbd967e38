//! Sign-in throttling, against guessing without handing strangers a way to
//! lock people out (OWASP ASVS 5.0, V6.3 "general authentication
//! security": anti-automation that is effective against brute force and
//! credential stuffing, and does not let an attacker lock a user out).
//!
//! Failures are counted under three keys, each with a number of free
//! failures and then a delay that doubles with every further one (1 s,
//! 2 s, 4 s, … up to [`Policy::max_delay`]) — a slowdown, never a lockout:
//!
//! - **(account, client)**: the guesser's own pair, strict (3 free). A
//!   stranger failing against an account slows down only themselves.
//! - **client**: one address spraying many accounts (20 free).
//! - **account**: many addresses guessing one account (50 free). A client
//!   that has signed in to that account before is exempt, so a distributed
//!   attack slows down the attackers, not the account's owner.
//!
//! A failure is counted when the attempt is *reserved*, before the password
//! is verified, in one step under one lock: concurrent guesses cannot all
//! pass a check made before any of them was counted. A success takes its
//! reservation back. The client is the TCP peer, or — when the peer is a
//! trusted proxy (`--trusted-proxy`) — the address that proxy saw
//! ([`client_addr`]). Counters live in memory per node (a cluster of N
//! nodes allows N× the free failures) and are forgotten after
//! [`Policy::window`] without failures.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use ipnet::IpNet;
use tenantatlas_domain::Timestamp;

/// How many failures are free per key, and how delays grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Free failures of one account from one client.
    pub pair_free: u32,
    /// Free failures from one client, over all accounts.
    pub client_free: u32,
    /// Free failures of one account, over all clients it never signed in from.
    pub account_free: u32,
    /// The longest delay.
    pub max_delay: Duration,
    /// Counters are forgotten after this long without a failure.
    pub window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            pair_free: 3,
            client_free: 20,
            account_free: 50,
            max_delay: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Client(IpAddr),
    Account(String),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last: Timestamp,
}

/// A reserved sign-in attempt: counted as a failure until
/// [`Throttle::succeeded`] or [`Throttle::abandoned`] takes it back.
#[derive(Debug)]
#[must_use = "a reservation is settled by succeeded or abandoned, or stays a failure"]
pub struct Attempt {
    keys: Vec<Key>,
    pair: (String, IpAddr),
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    known: HashSet<(String, IpAddr)>,
}

/// The sign-in throttle.
pub struct Throttle {
    policy: Policy,
    state: Mutex<State>,
}

const MAX_ENTRIES: usize = 100_000;

impl Throttle {
    /// A throttle with `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    fn delay(&self, free: u32, failures: u32) -> Duration {
        match failures.checked_sub(free) {
            None => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << over.min(30)).min(self.policy.max_delay),
        }
    }

    /// Reserves an attempt of `account` from `client` at `now`, counting it
    /// as a failure at once; or answers how long to wait first.
    pub fn reserve(&self, account: &str, client: IpAddr, now: Timestamp) -> Result<Attempt, Duration> {
        let account = account.trim().to_lowercase();
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = self.policy.window;
        if state.entries.len() > MAX_ENTRIES {
            state.entries.retain(|_, e| now.since(e.last) < window);
        }
        let mut keys = vec![Key::Pair(account.clone(), client), Key::Client(client)];
        if !state.known.contains(&(account.clone(), client)) {
            keys.push(Key::Account(account.clone()));
        }
        let mut wait = Duration::ZERO;
        for key in &keys {
            let free = match key {
                Key::Pair(..) => self.policy.pair_free,
                Key::Client(_) => self.policy.client_free,
                Key::Account(_) => self.policy.account_free,
            };
            if let Some(e) = state.entries.get(key).filter(|e| now.since(e.last) < window) {
                let due = e.last.plus(self.delay(free, e.failures));
                if due > now {
                    wait = wait.max(due.since(now));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for key in &keys {
            let e = state
                .entries
                .entry(key.clone())
                .or_insert(Entry { failures: 0, last: now });
            if now.since(e.last) >= window {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = now;
        }
        Ok(Attempt {
            keys,
            pair: (account, client),
        })
    }

    fn take_back(state: &mut State, keys: &[Key]) {
        for key in keys {
            if let Some(e) = state.entries.get_mut(key) {
                e.failures = e.failures.saturating_sub(1);
            }
        }
    }

    /// The attempt signed in: its pair starts afresh, and the client is
    /// known to the account from now on.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::take_back(&mut state, &attempt.keys);
        let (account, client) = attempt.pair;
        state.entries.remove(&Key::Pair(account.clone(), client));
        if state.known.len() < MAX_ENTRIES {
            state.known.insert((account, client));
        }
    }

    /// The password was never checked (the service was busy): the attempt
    /// does not count.
    pub fn abandoned(&self, attempt: Attempt) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::take_back(&mut state, &attempt.keys);
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy;
/// then the nearest address in `X-Forwarded-For` that is not itself a
/// trusted proxy (proxies append what connected to them, so entries left
/// of an untrusted one may be forged and are ignored).
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(a) if is_trusted(&a) => nearest = a,
            Ok(a) => return a,
            Err(_) => return nearest,
        }
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_unix_micros(1_800_000_000_000_000);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn delays_grow_per_pair_and_a_stranger_slows_only_themselves() {
        let t = Throttle::new(Policy::default());
        let (stranger, owner) = (ip("203.0.113.9"), ip("198.51.100.7"));
        for _ in 0..3 {
            assert!(t.reserve("alice@example.test", stranger, T0).is_ok());
        }
        assert_eq!(
            t.reserve("Alice@example.test", stranger, T0).unwrap_err(),
            Duration::from_secs(1)
        );
        let later = T0.plus(Duration::from_secs(1));
        assert!(t.reserve("alice@example.test", stranger, later).is_ok());
        assert_eq!(
            t.reserve("alice@example.test", stranger, later).unwrap_err(),
            Duration::from_secs(2),
            "doubling"
        );
        // the account's owner, elsewhere, is not slowed down
        let ok = t.reserve("alice@example.test", owner, later).unwrap();
        t.succeeded(ok);
    }

    #[test]
    fn a_distributed_attack_slows_the_account_but_not_a_known_client() {
        let policy = Policy {
            account_free: 4,
            ..Policy::default()
        };
        let t = Throttle::new(policy);
        let owner = ip("198.51.100.7");
        let ok = t.reserve("bob@example.test", owner, T0).unwrap();
        t.succeeded(ok);
        for i in 0..4 {
            let _ = t
                .reserve("bob@example.test", ip(&format!("203.0.113.{i}")), T0)
                .unwrap();
        }
        assert!(
            t.reserve("bob@example.test", ip("203.0.113.200"), T0).is_err(),
            "a fifth stranger waits"
        );
        assert!(
            t.reserve("bob@example.test", owner, T0).is_ok(),
            "the owner's client does not"
        );
    }

    #[test]
    fn an_abandoned_attempt_does_not_count_and_counters_expire() {
        let t = Throttle::new(Policy::default());
        let c = ip("203.0.113.9");
        for _ in 0..10 {
            let a = t.reserve("carol@example.test", c, T0).unwrap();
            t.abandoned(a);
        }
        for _ in 0..3 {
            let _ = t.reserve("carol@example.test", c, T0).unwrap();
        }
        assert!(t.reserve("carol@example.test", c, T0).is_err());
        let after = T0.plus(Policy::default().window);
        assert!(
            t.reserve("carol@example.test", c, after).is_ok(),
            "forgotten after the window"
        );
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "192.0.2.66, 198.51.100.7, 10.1.1.1".parse().unwrap());
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.7"));
        assert_eq!(
            client_addr(ip("203.0.113.9"), &h, &trusted),
            ip("203.0.113.9"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(client_addr(ip("10.0.0.1"), &HeaderMap::new(), &trusted), ip("10.0.0.1"));
        h.insert("x-forwarded-for", "nonsense, 10.1.1.1".parse().unwrap());
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted), ip("10.1.1.1"));
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
    }
}
