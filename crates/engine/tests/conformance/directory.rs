use tenantatlas_domain::access::{Role, TenantScope};
use tenantatlas_domain::names::{Email, Password, TenantName, WorkspaceName};
use tenantatlas_engine::EngineError;
use tenantatlas_store::model::Actor;

use crate::harness::{Ctx, Db};

pub async fn workspaces_tenants_users_and_audit(db: Db) {
    let c = Ctx::new(db).await;
    let e = &c.engine;
    let ws = e
        .create_workspace(&WorkspaceName::parse("name", "Contoso").unwrap(), Actor::Cli)
        .await
        .unwrap();
    assert_eq!(
        e.resolve_workspace("contoso").await.unwrap(),
        ws,
        "names resolve case-insensitively"
    );
    assert_eq!(
        e.resolve_workspace(&ws.id.to_string()).await.unwrap(),
        ws,
        "ids resolve"
    );
    let dup = e
        .create_workspace(&WorkspaceName::parse("name", "CONTOSO").unwrap(), Actor::Cli)
        .await
        .unwrap_err();
    assert!(matches!(dup, EngineError::Conflict(_)), "{dup:?}");
    assert!(matches!(
        e.resolve_workspace("nope").await,
        Err(EngineError::NotFound("workspace"))
    ));

    let other = e
        .create_workspace(&WorkspaceName::parse("name", "Fabrikam").unwrap(), Actor::Cli)
        .await
        .unwrap();
    let t1 = e
        .add_tenant(ws.id, &TenantName::parse("name", "Prod").unwrap(), None, Actor::Cli)
        .await
        .unwrap();
    let t2 = e
        .add_tenant(other.id, &TenantName::parse("name", "Prod").unwrap(), None, Actor::Cli)
        .await
        .unwrap();
    let dup = e
        .add_tenant(ws.id, &TenantName::parse("name", "prod").unwrap(), None, Actor::Cli)
        .await
        .unwrap_err();
    assert!(matches!(dup, EngineError::Conflict(_)));
    // the same name in two workspaces is ambiguous without a workspace
    let amb = e.resolve_tenant("Prod", None).await.unwrap_err();
    assert!(
        matches!(amb, EngineError::Invalid(ref f) if f.field == "tenant"),
        "{amb:?}"
    );
    assert_eq!(e.resolve_tenant("prod", Some(ws.id)).await.unwrap(), t1);
    assert_eq!(e.resolve_tenant(&t2.id.to_string(), None).await.unwrap(), t2);
    assert!(matches!(
        e.resolve_tenant(&t2.id.to_string(), Some(ws.id)).await,
        Err(EngineError::NotFound(_))
    ));

    let email = Email::parse("email", "Ops@Contoso.test").unwrap();
    let u = e
        .add_user(
            &email,
            &Password::parse("password", "a long enough secret").unwrap(),
            true,
            Actor::Cli,
        )
        .await
        .unwrap();
    assert_eq!(u.email, "ops@contoso.test");
    assert!(u.platform_operator);
    assert_eq!(e.resolve_user("OPS@contoso.test").await.unwrap().id, u.id);
    let hash = c.store.password_hash(u.id).await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("secret"));
    assert!(tenantatlas_engine::password::verify(&hash, "a long enough secret"));
    let dup = e
        .add_user(
            &email,
            &Password::parse("password", "another long secret").unwrap(),
            false,
            Actor::Cli,
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, EngineError::Conflict(_)));

    let audit = c.store.audit_log(100).await.unwrap();
    let actions: Vec<_> = audit.iter().rev().map(|a| a.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "workspace.create",
            "workspace.create",
            "tenant.add",
            "tenant.add",
            "user.add"
        ]
    );
    assert!(audit.iter().all(|a| a.entry.actor == Actor::Cli));
}

pub async fn memberships_and_entitlements(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let ws = c.store.find_workspace(&s.ws.to_string()).await.unwrap().unwrap();
    let user = c.store.find_user("operator@contoso.test").await.unwrap().unwrap();
    let b = c.store.get_tenant(s.b).await.unwrap().unwrap();
    let m = e
        .put_member(&ws, &user, Role::Readonly, Some(vec![b.clone()]), Actor::Cli)
        .await
        .unwrap();
    assert_eq!(m.role, Role::Readonly);
    assert_eq!(m.tenants, TenantScope::Only(vec![s.b]));
    // replacing keeps one membership
    let m = e.put_member(&ws, &user, Role::Manager, None, Actor::Cli).await.unwrap();
    assert_eq!((m.role, m.tenants), (Role::Manager, TenantScope::All));
    assert_eq!(c.store.memberships_of(user.id).await.unwrap().len(), 1);
    // a tenant of another workspace is refused, naming the field
    let other = c
        .store
        .create_workspace("Other", Actor::Cli, c.clock_now())
        .await
        .unwrap();
    let foreign = c
        .store
        .add_tenant(other.id, "X", None, Actor::Cli, c.clock_now())
        .await
        .unwrap();
    let err = e
        .put_member(&ws, &user, Role::Operator, Some(vec![foreign]), Actor::Cli)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Invalid(ref f) if f.field == "tenant"),
        "{err:?}"
    );
    let members = c.store.members(s.ws).await.unwrap();
    assert_eq!(members.len(), 4);
    assert!(
        members
            .iter()
            .any(|m| m.email == "scoped@contoso.test" && m.membership.tenants == TenantScope::Only(vec![s.b]))
    );
    assert!(c.store.membership(s.outsider, s.ws).await.unwrap().is_none());
}

/// API tokens: only their SHA-256 is stored; a disabled user's token stops
/// working.
pub async fn api_tokens_store_only_their_hash(db: Db) {
    let c = Ctx::new(db).await;
    let s = c.seed().await;
    let e = &c.engine;
    let owner = e.resolve_user(&s.owner.to_string()).await.unwrap();
    let token = e.create_api_token(&owner, "ci", None, Actor::Cli).await.unwrap().token;
    assert_eq!(e.token_user(&token).await.unwrap().map(|u| u.id), Some(s.owner));
    assert!(
        c.store.find_api_token(&token).await.unwrap().is_none(),
        "the token itself is not stored"
    );
    let stored = c
        .store
        .find_api_token(&tenantatlas_engine::auth::digest(&token))
        .await
        .unwrap()
        .expect("its hash is");
    assert_eq!((stored.name.as_str(), stored.user.id), ("ci", s.owner));
    e.disable_user(&owner, Actor::Cli).await.unwrap();
    assert_eq!(
        e.token_user(&token).await.unwrap(),
        None,
        "a disabled user's token is refused"
    );
}

/// A workspace keeps an owner under concurrency too: two owners demoted
/// (or removed) at once leave exactly one.
pub async fn a_workspace_keeps_an_owner_when_owners_leave_at_once(db: Db) {
    let c = Ctx::new(db).await;
    let e = &c.engine;
    let pw = Password::parse("p", "a long enough password").unwrap();
    let mut users = Vec::new();
    for n in ["first", "second"] {
        let email = Email::parse("e", &format!("{n}@owners.test")).unwrap();
        users.push(e.add_user(&email, &pw, false, Actor::Cli).await.unwrap());
    }
    for round in 0..8 {
        let name = WorkspaceName::parse("n", &format!("Owners {round}")).unwrap();
        let ws = e.create_workspace(&name, Actor::Cli).await.unwrap();
        for u in &users {
            e.put_member(&ws, u, Role::Owner, None, Actor::Cli).await.unwrap();
        }
        let (a, b) = (users[0].id, users[1].id);
        let (ra, rb) = if round % 2 == 0 {
            let (x, y) = tokio::join!(
                e.change_role(None, ws.id, a, Role::Readonly),
                e.change_role(None, ws.id, b, Role::Readonly)
            );
            (x.map(drop), y.map(drop))
        } else {
            tokio::join!(e.remove_member(None, ws.id, a), e.remove_member(None, ws.id, b))
        };
        let refused = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Err(EngineError::Conflict(m)) if m.contains("at least one owner")))
            .count();
        assert_eq!(
            (ra.is_ok() as u8 + rb.is_ok() as u8, refused),
            (1, 1),
            "round {round}: {ra:?} {rb:?}"
        );
        let owners = e
            .members(None, ws.id)
            .await
            .unwrap()
            .iter()
            .filter(|m| m.membership.role == Role::Owner)
            .count();
        assert_eq!(owners, 1, "round {round}");
    }
}
