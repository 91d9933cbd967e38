-- Server-side sessions and API tokens. Neither secret is stored: only the
-- SHA-256 of the random value the client holds, so a copy of the database
-- opens no session.

CREATE TABLE sessions (
    id_hash       text PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
CREATE INDEX ix_sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id_hash     text PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL,
    last_used_at timestamptz
);
CREATE INDEX ix_api_tokens_user ON api_tokens (user_id);

