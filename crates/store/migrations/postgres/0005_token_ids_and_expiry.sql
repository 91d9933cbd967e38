-- API tokens get a public id (to list and revoke them without their
-- secret) and an optional expiry. Existing tokens get a fresh id and never
-- expire, as before.
ALTER TABLE api_tokens ADD COLUMN id uuid;
UPDATE api_tokens SET id = gen_random_uuid() WHERE id IS NULL;
ALTER TABLE api_tokens ALTER COLUMN id SET NOT NULL;
CREATE UNIQUE INDEX ux_api_tokens_id ON api_tokens (id);
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
