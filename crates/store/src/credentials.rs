//! Tenants' app credentials, as the engine sealed them: this module stores
//! and answers ciphertext and never sees a secret in clear.

use async_trait::async_trait;
use tenantatlas_domain::Timestamp;
use tenantatlas_domain::ids::{TenantId, WorkspaceId};
use tenantatlas_engine::port::{CredentialStatus, Credentials, SealedCredentials, StoredCredentials};

use crate::SqlStore;
use crate::db::{Conn, q};
use crate::directory::{TENANT_NAME_TAKEN, audit, conflict_or, insert_tenant};
use crate::error::{Result, StoreError};
use crate::model::{Actor, Tenant};
use crate::rows::RowExt as _;
use crate::runs::insert_audit;

/// Creates or replaces a tenant's row and records it, without the secret.
async fn upsert(
    conn: &mut Conn<'_>,
    tenant: TenantId,
    workspace: WorkspaceId,
    c: &SealedCredentials,
    actor: Actor,
    now: Timestamp,
) -> Result<()> {
    conn.execute(
        &q(
            "INSERT INTO tenant_credentials (tenant_id, client_id, sealed_secret, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO UPDATE SET client_id = excluded.client_id, \
             sealed_secret = excluded.sealed_secret, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(&c.client_id)
        .bind(c.sealed_secret.as_slice())
        .bind(now),
    )
    .await?;
    let mut entry = audit(
        actor,
        now,
        "tenant.credentials.set",
        Some(workspace),
        Some(tenant),
        ("tenant", tenant.to_string()),
    );
    // identifiers only: the client id is public, the secret never leaves
    // the sealed column
    entry.detail = serde_json::json!({ "client_id": c.client_id });
    insert_audit(conn, &entry).await
}

#[async_trait]
impl Credentials for SqlStore {
    async fn add_tenant_with_credentials(
        &self,
        tenant: &Tenant,
        credentials: &SealedCredentials,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Tenant> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        conn.execute(&insert_tenant(tenant))
            .await
            .map_err(|e| conflict_or(e, TENANT_NAME_TAKEN))?;
        let added = audit(
            actor,
            now,
            "tenant.add",
            Some(tenant.workspace_id),
            Some(tenant.id),
            ("tenant", tenant.id.to_string()),
        );
        insert_audit(&mut conn, &added).await?;
        upsert(&mut conn, tenant.id, tenant.workspace_id, credentials, actor, now).await?;
        tx.commit().await?;
        Ok(tenant.clone())
    }

    async fn put_credentials(
        &self,
        tenant: TenantId,
        credentials: &SealedCredentials,
        actor: Actor,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut conn = tx.conn();
        let row = conn
            .opt(&q("SELECT workspace_id FROM tenants WHERE id = $1").bind(tenant))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("tenant {tenant}")))?;
        let workspace = WorkspaceId::from_uuid(row.uuid("workspace_id")?);
        upsert(&mut conn, tenant, workspace, credentials, actor, now).await?;
        tx.commit().await
    }

    async fn credentials(&self, tenant: TenantId) -> Result<Option<StoredCredentials>> {
        let row = self
            .opt(
                &q("SELECT client_id, sealed_secret, updated_at FROM tenant_credentials WHERE tenant_id = $1")
                    .bind(tenant),
            )
            .await?;
        row.map(|r| {
            Ok(StoredCredentials {
                sealed: SealedCredentials {
                    client_id: r.text("client_id")?,
                    sealed_secret: r.bytes("sealed_secret")?,
                },
                updated_at: r.ts("updated_at")?,
            })
        })
        .transpose()
    }

    async fn credential_statuses(&self, workspace: WorkspaceId) -> Result<Vec<CredentialStatus>> {
        let found = self
            .all(
                &q(
                    "SELECT c.tenant_id, c.client_id, c.updated_at FROM tenant_credentials c \
                    JOIN tenants t ON t.id = c.tenant_id WHERE t.workspace_id = $1 ORDER BY c.tenant_id",
                )
                .bind(workspace),
            )
            .await?;
        found
            .iter()
            .map(|r| {
                Ok(CredentialStatus {
                    tenant_id: TenantId::from_uuid(r.uuid("tenant_id")?),
                    client_id: r.text("client_id")?,
                    updated_at: r.ts("updated_at")?,
                })
            })
            .collect()
    }
}
