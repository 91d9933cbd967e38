//! Workspaces, tenants, users, memberships and the audit log on PostgreSQL.

use sqlx::postgres::PgPool;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::access::Membership;
use tenantatlas_domain::ids::{TenantId, UserId, WorkspaceId};
use uuid::Uuid;

use super::{PgStore, insert_audit};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::new_uuid;
use crate::rows::{self, USER_COLUMNS};

fn audit(
    actor: Actor,
    now: Timestamp,
    action: &str,
    ws: Option<WorkspaceId>,
    tenant: Option<TenantId>,
    target: (&str, String),
) -> AuditEntry {
    AuditEntry {
        at: now,
        actor,
        workspace_id: ws,
        tenant_id: tenant,
        action: action.to_owned(),
        target_type: Some(target.0.to_owned()),
        target_id: Some(target.1),
        detail: serde_json::json!({}),
    }
}

fn conflict_or(e: sqlx::Error, what: &str) -> StoreError {
    let e = StoreError::from(e);
    if e.is_unique_violation() {
        StoreError::Conflict(what.to_owned())
    } else {
        e
    }
}

pub(super) async fn create_workspace(s: &PgStore, name: &str, actor: Actor, now: Timestamp) -> Result<Workspace> {
    let ws = Workspace {
        id: WorkspaceId::from_uuid(new_uuid()),
        name: name.to_owned(),
        created_at: now,
    };
    let mut tx = s.begin().await?;
    sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(ws.id.as_uuid())
        .bind(&ws.name)
        .bind(now.to_datetime())
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "a workspace with this name already exists"))?;
    insert_audit(
        &mut tx,
        &audit(
            actor,
            now,
            "workspace.create",
            Some(ws.id),
            None,
            ("workspace", ws.id.to_string()),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(ws)
}

pub(super) async fn find_workspace(db: &PgPool, key: &str) -> Result<Option<Workspace>> {
    let row = match Uuid::parse_str(key.trim()) {
        Ok(id) => {
            sqlx::query("SELECT id, name, created_at FROM workspaces WHERE id = $1")
                .bind(id)
                .fetch_optional(db)
                .await?
        }
        Err(_) => {
            sqlx::query("SELECT id, name, created_at FROM workspaces WHERE lower(name) = lower($1)")
                .bind(key.trim())
                .fetch_optional(db)
                .await?
        }
    };
    row.as_ref().map(rows::workspace_from_row).transpose()
}

pub(super) async fn list_workspaces(db: &PgPool) -> Result<Vec<Workspace>> {
    let found = sqlx::query("SELECT id, name, created_at FROM workspaces ORDER BY lower(name)")
        .fetch_all(db)
        .await?;
    found.iter().map(rows::workspace_from_row).collect()
}

pub(super) async fn add_tenant(
    s: &PgStore,
    workspace: WorkspaceId,
    name: &str,
    provider: Option<&str>,
    actor: Actor,
    now: Timestamp,
) -> Result<Tenant> {
    let t = Tenant {
        id: TenantId::from_uuid(new_uuid()),
        workspace_id: workspace,
        name: name.to_owned(),
        provider: provider.map(str::to_owned),
        created_at: now,
    };
    let mut tx = s.begin().await?;
    sqlx::query("INSERT INTO tenants (id, workspace_id, name, provider, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(t.id.as_uuid())
        .bind(workspace.as_uuid())
        .bind(&t.name)
        .bind(&t.provider)
        .bind(now.to_datetime())
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "a tenant with this name already exists in the workspace"))?;
    insert_audit(
        &mut tx,
        &audit(
            actor,
            now,
            "tenant.add",
            Some(workspace),
            Some(t.id),
            ("tenant", t.id.to_string()),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(t)
}

const TENANT_COLUMNS: &str = "id, workspace_id, name, provider, created_at";

pub(super) async fn find_tenants(db: &PgPool, key: &str, workspace: Option<WorkspaceId>) -> Result<Vec<Tenant>> {
    let ws = workspace.map(|w| w.as_uuid());
    let found = match Uuid::parse_str(key.trim()) {
        Ok(id) => sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1 AND ($2::uuid IS NULL OR workspace_id = $2)"
        ))
        .bind(id)
        .bind(ws)
        .fetch_all(db)
        .await?,
        Err(_) => sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE lower(name) = lower($1) AND ($2::uuid IS NULL OR workspace_id = $2) ORDER BY id"
        ))
        .bind(key.trim())
        .bind(ws)
        .fetch_all(db)
        .await?,
    };
    found.iter().map(rows::tenant_from_row).collect()
}

pub(super) async fn tenant_access(
    db: &PgPool,
    tenant: TenantId,
    user: Option<UserId>,
) -> Result<Option<(Tenant, Option<Membership>)>> {
    let row = sqlx::query(
        "SELECT t.id, t.workspace_id, t.name, t.provider, t.created_at, m.user_id, m.role, m.all_tenants, \
         COALESCE(ARRAY(SELECT mt.tenant_id FROM membership_tenants mt \
           WHERE mt.workspace_id = m.workspace_id AND mt.user_id = m.user_id ORDER BY mt.tenant_id), '{}') AS tenants \
         FROM tenants t LEFT JOIN memberships m ON m.workspace_id = t.workspace_id AND m.user_id = $2 \
         WHERE t.id = $1",
    )
    .bind(tenant.as_uuid())
    .bind(user.map(|u| u.as_uuid()))
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let t = rows::tenant_from_row(&row)?;
    let member: Option<Uuid> = sqlx::Row::try_get(&row, "user_id")?;
    let m = match member {
        Some(_) => {
            let tenants: Vec<Uuid> = sqlx::Row::try_get(&row, "tenants")?;
            Some(rows::membership_from_row(
                &row,
                tenants.into_iter().map(TenantId::from_uuid).collect(),
            )?)
        }
        None => None,
    };
    Ok(Some((t, m)))
}

pub(super) async fn get_tenant(db: &PgPool, id: TenantId) -> Result<Option<Tenant>> {
    let row = sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(rows::tenant_from_row).transpose()
}

pub(super) async fn list_tenants(db: &PgPool, workspace: WorkspaceId) -> Result<Vec<Tenant>> {
    let found = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE workspace_id = $1 ORDER BY lower(name)"
    ))
    .bind(workspace.as_uuid())
    .fetch_all(db)
    .await?;
    found.iter().map(rows::tenant_from_row).collect()
}

pub(super) async fn add_user(
    s: &PgStore,
    email: &str,
    password_hash: &str,
    platform_operator: bool,
    actor: Actor,
    now: Timestamp,
) -> Result<User> {
    let u = User {
        id: UserId::from_uuid(new_uuid()),
        email: email.to_lowercase(),
        platform_operator,
        disabled_at: None,
        password_changed_at: now,
        created_at: now,
    };
    let mut tx = s.begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, platform_operator, password_changed_at, created_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(u.id.as_uuid())
    .bind(&u.email)
    .bind(password_hash)
    .bind(platform_operator)
    .bind(now.to_datetime())
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_or(e, "a user with this e-mail address already exists"))?;
    insert_audit(
        &mut tx,
        &audit(actor, now, "user.add", None, None, ("user", u.id.to_string())),
    )
    .await?;
    tx.commit().await?;
    Ok(u)
}

pub(super) async fn find_user(db: &PgPool, key: &str) -> Result<Option<User>> {
    let row = match Uuid::parse_str(key.trim()) {
        Ok(id) => {
            sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(db)
                .await?
        }
        Err(_) => {
            sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = lower($1)"))
                .bind(key.trim())
                .fetch_optional(db)
                .await?
        }
    };
    row.as_ref().map(rows::user_from_row).transpose()
}

pub(super) async fn put_membership(s: &PgStore, m: &MembershipWrite, actor: Actor, now: Timestamp) -> Result<()> {
    let ws = m.workspace_id.as_uuid();
    let user = m.user_id.as_uuid();
    let mut tx = s.begin().await?;
    sqlx::query(
        "INSERT INTO memberships (workspace_id, user_id, role, all_tenants, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role, all_tenants = excluded.all_tenants, updated_at = excluded.updated_at",
    )
    .bind(ws)
    .bind(user)
    .bind(m.role.as_str())
    .bind(m.tenants.is_none())
    .bind(now.to_datetime())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM membership_tenants WHERE workspace_id = $1 AND user_id = $2")
        .bind(ws)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    if let Some(tenants) = &m.tenants {
        let ids: Vec<Uuid> = tenants.iter().map(|t| t.as_uuid()).collect();
        sqlx::query(
            "INSERT INTO membership_tenants (workspace_id, user_id, tenant_id) SELECT $1, $2, t FROM UNNEST($3::uuid[]) AS t ON CONFLICT DO NOTHING",
        )
        .bind(ws)
        .bind(user)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(ref d) if d.is_foreign_key_violation() => StoreError::Invalid(
                tenantatlas_domain::FieldError::new("tenant", "is not a tenant of this workspace"),
            ),
            e => e.into(),
        })?;
    }
    let mut entry = audit(
        actor,
        now,
        "member.put",
        Some(m.workspace_id),
        None,
        ("user", m.user_id.to_string()),
    );
    entry.detail = serde_json::json!({
        "role": m.role.as_str(),
        "tenants": m.tenants.as_ref().map(|ts| ts.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
    });
    insert_audit(&mut tx, &entry).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn membership(db: &PgPool, user: UserId, workspace: Option<WorkspaceId>) -> Result<Vec<Membership>> {
    let found = sqlx::query(
        "SELECT m.workspace_id, m.user_id, m.role, m.all_tenants, \
         COALESCE(ARRAY(SELECT t.tenant_id FROM membership_tenants t WHERE t.workspace_id = m.workspace_id AND t.user_id = m.user_id ORDER BY t.tenant_id), '{}') AS tenants \
         FROM memberships m WHERE m.user_id = $1 AND ($2::uuid IS NULL OR m.workspace_id = $2) ORDER BY m.workspace_id",
    )
    .bind(user.as_uuid())
    .bind(workspace.map(|w| w.as_uuid()))
    .fetch_all(db)
    .await?;
    found
        .iter()
        .map(|row| {
            let tenants: Vec<Uuid> = sqlx::Row::try_get(row, "tenants")?;
            rows::membership_from_row(row, tenants.into_iter().map(TenantId::from_uuid).collect())
        })
        .collect()
}

pub(super) async fn members(db: &PgPool, workspace: WorkspaceId) -> Result<Vec<Member>> {
    let found = sqlx::query(
        "SELECT u.email, m.user_id FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 ORDER BY u.email",
    )
    .bind(workspace.as_uuid())
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for row in &found {
        let email: String = sqlx::Row::try_get(row, "email")?;
        let user: Uuid = sqlx::Row::try_get(row, "user_id")?;
        if let Some(m) = membership(db, UserId::from_uuid(user), Some(workspace)).await?.pop() {
            out.push(Member { membership: m, email });
        }
    }
    Ok(out)
}

pub(super) async fn audit_log(db: &PgPool, limit: u32) -> Result<Vec<AuditRecord>> {
    let found = sqlx::query(
        "SELECT id, at, actor_kind, actor_id, workspace_id, tenant_id, action, target_type, target_id, detail \
         FROM audit_log ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    found.iter().map(rows::audit_from_row).collect()
}
