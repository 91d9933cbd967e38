-- A Graph tenant's app credentials: the client id and the client secret as
-- the engine sealed it for this tenant (XChaCha20-Poly1305; the store never
-- sees the secret in clear). One row per tenant; setting them again
-- replaces the row.
CREATE TABLE tenant_credentials (
    tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    client_id      TEXT NOT NULL,
    sealed_secret  BLOB NOT NULL,
    updated_at     INTEGER NOT NULL
);
