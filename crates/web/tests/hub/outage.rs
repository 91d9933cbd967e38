//! A database outage, told at once: with PostgreSQL unreachable (a TCP
//! proxy in front of it is closed, which to the hub is PostgreSQL going
//! away), `/healthz` answers 503 within a second, the API and the pages
//! answer 503 `service.unavailable` with `Retry-After` within two, and the
//! hub recovers by itself when the database is back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::{api, body_text, databases, login, req, send, world};

/// A TCP forwarder to PostgreSQL that can be cut (listener and every
/// connection closed) and restored on the same port.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    tasks: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut p = Proxy {
            addr,
            upstream: upstream.to_owned(),
            tasks: None,
        };
        p.serve(listener);
        p
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        self.tasks = Some(tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            // dropping the JoinSet (when this task is aborted) aborts every
            // connection: both sides see their socket closed
        }));
    }

    /// Closes the listener and every connection.
    async fn cut(&mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
            let _ = t.await;
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_at_once_and_recovered_from() {
    let Some(mut db) = databases().into_iter().find(|d| d.url.starts_with("postgres")) else {
        eprintln!("TENANTATLAS_TEST_POSTGRES_URL is not set: the outage case needs PostgreSQL");
        return;
    };
    // the same database, reached through the proxy
    let rest = db.url.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let upstream = rest.split(['/', '?']).next().unwrap().to_owned();
    let mut proxy = Proxy::start(&upstream).await;
    db.url = db.url.replacen(&upstream, &proxy.addr.to_string(), 1);
    let proxied = db;
    let w = world(&proxied).await;
    let cookie = login(&w.app, &w.user("owner").email).await;
    let page = |path: &str| {
        req("GET", path)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap()
    };
    let health = || req("GET", "/healthz").body(Body::empty()).unwrap();
    assert_eq!(send(&w.app, health()).await.status(), 200);
    assert_eq!(api(&w.app, "GET", "/api/v1/runs", Some(&cookie), None).await.0, 200);

    proxy.cut().await;
    let t = Instant::now();
    let r = send(&w.app, health()).await;
    let took = t.elapsed();
    assert_eq!(r.status(), 503);
    assert!(took < Duration::from_secs(1), "/healthz answered in {took:?}");
    eprintln!("outage: /healthz 503 in {took:?}");

    let t = Instant::now();
    let (status, body) = api(&w.app, "GET", "/api/v1/runs", Some(&cookie), None).await;
    let took = t.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "service.unavailable");
    assert!(took < Duration::from_secs(2), "the API answered in {took:?}");
    eprintln!("outage: /api/v1/runs 503 in {took:?}");

    for path in ["/admin", "/admin/operations", "/system"] {
        let t = Instant::now();
        let r = send(&w.app, page(path)).await;
        let took = t.elapsed();
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(r.headers()[header::RETRY_AFTER], "2", "{path}");
        assert!(took < Duration::from_secs(2), "{path} answered in {took:?}");
        let text = body_text(r).await;
        assert!(text.contains("cannot reach its database"), "{path}: {text}");
    }
    // a sign-in attempt is not mistaken for a wrong password
    let form = format!("email={}&password=x", w.user("owner").email.replace('@', "%40"));
    let r = send(
        &w.app,
        req("POST", "/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), 503);

    proxy.restore().await;
    let t = Instant::now();
    loop {
        let (status, _) = api(&w.app, "GET", "/api/v1/runs", Some(&cookie), None).await;
        if status == 200 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no recovery without a restart: still {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("recovered {:?} after the database came back", t.elapsed());
    assert_eq!(send(&w.app, health()).await.status(), 200);
    assert_eq!(send(&w.app, page("/admin")).await.status(), 200);
}
