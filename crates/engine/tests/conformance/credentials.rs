//! Tenants' app credentials: sealed before the store sees them, bound to
//! their tenant, rotated in place, audited without the secret, and never
//! half-written.

use tenantatlas_domain::access::Role;
use tenantatlas_domain::names::{ClientSecret, ProviderSpec, TenantName};
use tenantatlas_engine::secrets::{SecretError, SecretKey};
use tenantatlas_engine::{EngineConfig, EngineError};
use tenantatlas_store::model::Actor;

use crate::harness::{Ctx, Db, every_type};

const APP: &str = "3F2504E0-4F89-11D3-9A0C-0305E82C3301";
const APP2: &str = "6f1e8e4a-3c2b-4d7e-9a51-2f0c8b7d1a01";
const SECRET: &str = "Xq8~plain-TEXT.secret_value_0001";
const SECRET2: &str = "Rotated~second.secret_value_0002";

fn secret(s: &str) -> ClientSecret {
    ClientSecret::parse("secret", s).unwrap()
}

fn graph(t: &str) -> ProviderSpec {
    ProviderSpec::parse("provider", &format!("graph:{t}")).unwrap()
}

fn name(n: &str) -> TenantName {
    TenantName::parse("name", n).unwrap()
}

/// A world with a key: the configured one on PostgreSQL (which has no key
/// file), the key file beside the database on SQLite.
async fn keyed(db: Db) -> Ctx {
    let secret_key = db.is_postgres().then(|| SecretKey::generate().unwrap());
    Ctx::with_config(
        db,
        EngineConfig {
            catalog: every_type(),
            enable_synthetic: true,
            secret_key,
            ..EngineConfig::default()
        },
    )
    .await
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

pub async fn credentials_are_sealed_for_their_tenant_and_rotate(db: Db) {
    let c = keyed(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let t = e
        .add_tenant_with_credentials(
            s.ws,
            &name("Contoso Graph"),
            &graph("contoso.onmicrosoft.com"),
            APP,
            &secret(SECRET),
            Actor::Cli,
        )
        .await
        .unwrap();
    assert_eq!(t.provider.as_deref(), Some("graph:contoso.onmicrosoft.com"));
    assert_eq!(e.resolve_tenant("contoso graph", Some(s.ws)).await.unwrap(), t);

    // round trip
    let got = e.tenant_credentials(t.id).await.unwrap().unwrap();
    assert_eq!(got.client_id, APP.to_lowercase(), "client ids are kept lower-case");
    assert_eq!(got.secret.expose(), SECRET);
    assert!(!format!("{got:?}").contains(SECRET), "Debug redacts the secret");

    // what the store holds is ciphertext
    let stored = c.store.credentials(t.id).await.unwrap().unwrap();
    assert_eq!(stored.sealed.client_id, APP.to_lowercase());
    assert!(!contains(&stored.sealed.sealed_secret, SECRET));
    assert!(!contains(&stored.sealed.sealed_secret, "plain-TEXT"));
    assert!(
        stored.sealed.sealed_secret.len() >= SECRET.len() + 16 + 24,
        "a nonce and a tag"
    );
    assert!(!format!("{stored:?}").contains(SECRET));

    // audited, without the secret
    let log = e.audit_log(20).await.unwrap();
    let actions: Vec<_> = log.iter().map(|r| r.entry.action.as_str()).collect();
    assert!(actions.contains(&"tenant.add"), "{actions:?}");
    let set = log
        .iter()
        .find(|r| r.entry.action == "tenant.credentials.set")
        .expect("the credentials are audited");
    assert_eq!(set.entry.tenant_id, Some(t.id));
    assert_eq!(set.entry.detail["client_id"], APP.to_lowercase());
    for r in &log {
        assert!(!r.entry.detail.to_string().contains(SECRET), "{:?}", r.entry);
    }

    // rotation replaces the row
    e.set_tenant_credentials(None, t.id, APP2, &secret(SECRET2))
        .await
        .unwrap();
    let got = e.tenant_credentials(t.id).await.unwrap().unwrap();
    assert_eq!((got.client_id.as_str(), got.secret.expose()), (APP2, SECRET2));
    let rotated = c.store.credentials(t.id).await.unwrap().unwrap();
    assert_ne!(rotated.sealed.sealed_secret, stored.sealed.sealed_secret);
    assert!(!contains(&rotated.sealed.sealed_secret, SECRET2));
    let statuses = e.credential_statuses(s.ws).await.unwrap();
    assert_eq!(statuses.len(), 1, "one row per tenant: {statuses:?}");
    assert_eq!(statuses[0].client_id, APP2);
    assert_eq!(e.credential_status(t.id).await.unwrap().unwrap().client_id, APP2);

    // a sealed secret copied into another tenant's row does not open
    let other = e
        .add_tenant_with_credentials(
            s.ws,
            &name("Fabrikam Graph"),
            &graph(APP2),
            APP,
            &secret(SECRET),
            Actor::Cli,
        )
        .await
        .unwrap();
    assert_eq!(
        e.tenant_credentials(other.id).await.unwrap().unwrap().secret.expose(),
        SECRET
    );
    c.store
        .put_credentials(other.id, &rotated.sealed, Actor::Cli, c.clock_now())
        .await
        .unwrap();
    let copied = e.tenant_credentials(other.id).await.unwrap_err();
    assert!(
        matches!(&copied, EngineError::Secret(SecretError::Unopenable(m)) if m.contains("another tenant")),
        "{copied:?}"
    );
    assert!(!copied.to_string().contains(SECRET2));
    // the original still opens
    assert_eq!(
        e.tenant_credentials(t.id).await.unwrap().unwrap().secret.expose(),
        SECRET2
    );
    assert_eq!(e.credential_statuses(s.ws).await.unwrap().len(), 2);

    // tenants without credentials have none
    assert!(e.tenant_credentials(s.a).await.unwrap().is_none());
    assert!(e.credential_status(s.b).await.unwrap().is_none());
}

pub async fn credential_writes_are_checked_and_authorized(db: Db) {
    let c = keyed(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let t = e
        .add_tenant_with_credentials(s.ws, &name("Graph"), &graph(APP2), APP, &secret(SECRET), Actor::Cli)
        .await
        .unwrap();

    // bad input names the field
    let bad = e
        .set_tenant_credentials(None, t.id, "not-a-guid", &secret(SECRET2))
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, EngineError::Invalid(f) if f.field == "client-id"),
        "{bad:?}"
    );
    let bad = e
        .add_tenant_with_credentials(s.ws, &name("Graph 2"), &graph(APP2), "app", &secret(SECRET), Actor::Cli)
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, EngineError::Invalid(f) if f.field == "client-id"),
        "{bad:?}"
    );
    let dir = ProviderSpec::parse("provider", "directory:/srv/x").unwrap();
    let bad = e
        .add_tenant_with_credentials(s.ws, &name("Graph 2"), &dir, APP, &secret(SECRET), Actor::Cli)
        .await
        .unwrap_err();
    assert!(
        matches!(&bad, EngineError::Invalid(f) if f.field == "provider"),
        "{bad:?}"
    );
    assert!(
        e.resolve_tenant("Graph 2", Some(s.ws)).await.is_err(),
        "nothing was added"
    );
    // a tenant that is not reached through Graph has no app credentials
    for not_graph in [s.a, s.b] {
        let refused = e
            .set_tenant_credentials(None, not_graph, APP, &secret(SECRET2))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, EngineError::Invalid(f) if f.field == "tenant"),
            "{refused:?}"
        );
        assert!(e.credential_status(not_graph).await.unwrap().is_none());
    }
    // a name in use: neither the tenant nor credentials are written
    let dup = e
        .add_tenant_with_credentials(s.ws, &name("graph"), &graph(APP2), APP2, &secret(SECRET2), Actor::Cli)
        .await
        .unwrap_err();
    assert!(matches!(dup, EngineError::Conflict(_)), "{dup:?}");
    assert_eq!(e.credential_statuses(s.ws).await.unwrap().len(), 1);
    assert_eq!(
        e.tenant_credentials(t.id).await.unwrap().unwrap().client_id,
        APP.to_lowercase()
    );

    // users: tenants.manage on the tenant (law 10's order)
    let manager = c.user("manager@contoso.test").await;
    c.member(s.ws, manager, Role::Manager, None).await;
    let user = async |id: tenantatlas_domain::ids::UserId| e.find_user(&id.to_string()).await.unwrap().unwrap();
    let op = user(s.operator).await;
    let refused = e
        .set_tenant_credentials(Some(&op), t.id, APP2, &secret(SECRET2))
        .await
        .unwrap_err();
    assert!(matches!(refused, EngineError::Forbidden(_)), "{refused:?}");
    let outsider = user(s.outsider).await;
    let refused = e
        .set_tenant_credentials(Some(&outsider), t.id, APP2, &secret(SECRET2))
        .await
        .unwrap_err();
    assert!(matches!(refused, EngineError::NotFound(_)), "{refused:?}");
    assert_eq!(
        e.tenant_credentials(t.id).await.unwrap().unwrap().secret.expose(),
        SECRET
    );
    let mgr = user(manager).await;
    e.set_tenant_credentials(Some(&mgr), t.id, APP2, &secret(SECRET2))
        .await
        .unwrap();
    assert_eq!(
        e.tenant_credentials(t.id).await.unwrap().unwrap().secret.expose(),
        SECRET2
    );
    let audited = e.audit_log(5).await.unwrap();
    let last = audited
        .iter()
        .find(|r| r.entry.action == "tenant.credentials.set")
        .unwrap();
    assert_eq!(last.entry.actor, Actor::User(manager));
}

/// Sealing fails before anything is written: PostgreSQL without a key;
/// on SQLite, a key file others can read. And a key that changed says so.
pub async fn without_a_usable_key_nothing_is_written(db: Db) {
    let postgres = db.is_postgres();
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    if postgres {
        assert_eq!(c.store.database_file(), None);
        let e = c
            .engine
            .add_tenant_with_credentials(s.ws, &name("Graph"), &graph(APP2), APP, &secret(SECRET), Actor::Cli)
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Secret(SecretError::NoKey)), "{e:?}");
        assert!(e.to_string().contains("TENANTATLAS_SECRET_KEY"), "{e}");
        assert!(
            c.engine.resolve_tenant("Graph", Some(s.ws)).await.is_err(),
            "no tenant half-written"
        );
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let db_file = c.store.database_file().expect("an SQLite file");
        let key_file = tenantatlas_engine::secrets::key_file_of(&db_file);
        assert!(!key_file.exists(), "no key file before a secret is stored");
        let t = c
            .engine
            .add_tenant_with_credentials(s.ws, &name("Graph"), &graph(APP2), APP, &secret(SECRET), Actor::Cli)
            .await
            .unwrap();
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "created private on first use");
        let on_disk = std::fs::read(&db_file).unwrap();
        assert!(
            !contains(&on_disk, SECRET),
            "the database file never holds the secret in clear"
        );

        // another engine (another process) with another key: named as such
        let other_key = c.another_engine_with(Some(SecretKey::generate().unwrap())).await;
        let e = other_key.tenant_credentials(t.id).await.unwrap_err();
        assert!(e.to_string().contains("another key"), "{e}");

        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fresh = c.another_engine_with(None).await;
        let e = fresh
            .add_tenant_with_credentials(s.ws, &name("Graph 2"), &graph(APP2), APP, &secret(SECRET), Actor::Cli)
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Secret(SecretError::UnsafeKeyFile(_))), "{e:?}");
        assert!(
            fresh.resolve_tenant("Graph 2", Some(s.ws)).await.is_err(),
            "no tenant half-written"
        );
        assert!(
            fresh.tenant_credentials(t.id).await.is_err(),
            "nor read with an unsafe key file"
        );
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let again = c.another_engine_with(None).await;
        assert_eq!(
            again.tenant_credentials(t.id).await.unwrap().unwrap().secret.expose(),
            SECRET
        );
    }
}
