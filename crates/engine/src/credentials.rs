//! Tenants' app credentials (the client id and secret a Graph tenant signs
//! in with): the secret is sealed here, for its tenant, before the store
//! sees it, and opened here only for the provider that uses it.

use tenantatlas_domain::FieldError;
use tenantatlas_domain::access::Capability;
use tenantatlas_domain::directory::{Actor, Tenant, User};
use tenantatlas_domain::ids::{TenantId, WorkspaceId};
use tenantatlas_domain::names::{ClientId, ClientSecret, ProviderSpec, TenantName};
use zeroize::Zeroizing;

use crate::Engine;
use crate::directory::actor_of;
use crate::error::{EngineError, Result};
use crate::port::{CredentialStatus, SealedCredentials};
use crate::secrets::{Sealer, SecretError, key_file_of, load_or_create_key_file};

/// The name a client id is reported under when it is refused.
pub const CLIENT_ID_FIELD: &str = "client-id";

/// A tenant's app credentials, opened: for the provider that signs in as
/// the app, never to show (the secret's `Debug` and `Display` redact it).
#[derive(Clone, Debug)]
pub struct TenantCredentials {
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The client secret.
    pub secret: ClientSecret,
}

/// Only a tenant reached through Microsoft Graph signs in with app
/// credentials.
fn graph_only(field: &str, name: &str, provider: Option<&str>) -> Result<()> {
    match provider.map(|p| ProviderSpec::parse("provider", p)) {
        Some(Ok(ProviderSpec::Graph(_))) => Ok(()),
        _ => Err(FieldError::new(
            field,
            format!(
                "{name:?} is not connected through Microsoft Graph (provider {}): only a graph:TENANT tenant has app credentials",
                provider.unwrap_or("none")
            ),
        )
        .into()),
    }
}

impl Engine {
    /// The sealer, its key read on first use: the configured key, else
    /// (SQLite on disk) the key file beside the database, created when
    /// missing.
    async fn sealer(&self) -> Result<&Sealer> {
        let cell = &self.inner.sealer;
        let sealer = cell
            .get_or_try_init(|| async {
                if let Some(k) = &self.config().secret_key {
                    return Ok(Sealer::new(k.clone()));
                }
                let db = self.store().database_file().ok_or(SecretError::NoKey)?;
                let path = key_file_of(&db);
                // a few file operations, off the async threads
                let key = tokio::task::spawn_blocking(move || load_or_create_key_file(&path))
                    .await
                    .map_err(|_| EngineError::Internal("reading the key file failed".into()))??;
                Ok::<_, EngineError>(Sealer::new(key))
            })
            .await?;
        Ok(sealer)
    }

    async fn seal(&self, tenant: TenantId, client_id: &ClientId, secret: &ClientSecret) -> Result<SealedCredentials> {
        let sealed_secret = self.sealer().await?.seal(tenant, secret.expose().as_bytes())?;
        Ok(SealedCredentials {
            client_id: client_id.as_str().to_owned(),
            sealed_secret,
        })
    }

    /// Adds a tenant reached through Microsoft Graph (`provider` must be
    /// `graph:…`) with its app credentials. The secret is sealed first,
    /// then the tenant and its credentials are written in one transaction:
    /// when sealing fails (no key), nothing is written.
    pub async fn add_tenant_with_credentials(
        &self,
        workspace: WorkspaceId,
        name: &TenantName,
        provider: &ProviderSpec,
        client_id: &str,
        secret: &ClientSecret,
        actor: Actor,
    ) -> Result<Tenant> {
        let spec = provider.to_spec_string();
        graph_only("provider", name.as_str(), Some(&spec))?;
        let client_id = ClientId::parse(CLIENT_ID_FIELD, client_id)?;
        let now = self.now();
        let tenant = Tenant {
            id: TenantId::from_uuid(uuid::Uuid::now_v7()),
            workspace_id: workspace,
            name: name.as_str().to_owned(),
            provider: Some(spec),
            created_at: now,
        };
        let sealed = self.seal(tenant.id, &client_id, secret).await?;
        Ok(self
            .store()
            .add_tenant_with_credentials(&tenant, &sealed, actor, now)
            .await?)
    }

    /// Sets (or rotates) a Graph tenant's app credentials. A user needs
    /// `tenants.manage` on the tenant; the server command line (`None`)
    /// may. Audited, without the secret.
    pub async fn set_tenant_credentials(
        &self,
        who: Option<&User>,
        tenant: TenantId,
        client_id: &str,
        secret: &ClientSecret,
    ) -> Result<Tenant> {
        let t = match who {
            Some(u) => self.tenant_for(u.id, tenant, Capability::ManageTenants).await?.0,
            None => self.get_tenant(tenant).await?.ok_or(EngineError::NotFound("tenant"))?,
        };
        graph_only("tenant", &t.name, t.provider.as_deref())?;
        let client_id = ClientId::parse(CLIENT_ID_FIELD, client_id)?;
        let sealed = self.seal(t.id, &client_id, secret).await?;
        self.store()
            .put_credentials(t.id, &sealed, actor_of(who), self.now())
            .await?;
        Ok(t)
    }

    /// A tenant's app credentials, opened: for the provider that signs in
    /// with them (the engine's own callers; never shown to anyone). `None`
    /// when the tenant has none. A secret sealed for another tenant or with
    /// another key is an error that says so.
    pub async fn tenant_credentials(&self, tenant: TenantId) -> Result<Option<TenantCredentials>> {
        let Some(stored) = self.store().credentials(tenant).await? else {
            return Ok(None);
        };
        let mut plain = self.sealer().await?.open(tenant, &stored.sealed.sealed_secret)?;
        let text = Zeroizing::new(String::from_utf8(std::mem::take(&mut *plain)).map_err(|e| {
            // the bytes in the error are the secret's: wipe them too
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            SecretError::Unopenable(format!("the stored secret of tenant {tenant} is not text"))
        })?);
        let secret = ClientSecret::parse("secret", &text).map_err(|_| {
            SecretError::Unopenable(format!("the stored secret of tenant {tenant} is not a client secret"))
        })?;
        Ok(Some(TenantCredentials {
            client_id: stored.sealed.client_id,
            secret,
        }))
    }

    /// Whether a tenant has app credentials, with their client id (no key
    /// needed: nothing is opened).
    pub async fn credential_status(&self, tenant: TenantId) -> Result<Option<CredentialStatus>> {
        Ok(self.store().credentials(tenant).await?.map(|s| CredentialStatus {
            tenant_id: tenant,
            client_id: s.sealed.client_id,
            updated_at: s.updated_at,
        }))
    }

    /// The tenants of a workspace that have app credentials (no secrets).
    pub async fn credential_statuses(&self, workspace: WorkspaceId) -> Result<Vec<CredentialStatus>> {
        Ok(self.store().credential_statuses(workspace).await?)
    }
}
