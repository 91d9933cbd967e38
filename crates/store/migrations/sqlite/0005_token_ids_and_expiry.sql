-- API tokens get a public id (to list and revoke them without their
-- secret) and an optional expiry. Existing tokens get a fresh random id
-- (UUID text, as every id here) and never expire, as before.
ALTER TABLE api_tokens ADD COLUMN id TEXT;
UPDATE api_tokens SET id = (
    SELECT lower(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-8'
        || substr(h, 18, 3) || '-' || substr(h, 21, 12))
    FROM (SELECT hex(randomblob(16)) AS h)
) WHERE id IS NULL;
CREATE UNIQUE INDEX ux_api_tokens_id ON api_tokens (id);
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
