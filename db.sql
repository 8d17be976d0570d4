-- The finonex schema. The server and the processor apply this very file at start (it is
-- embedded into them, and every statement is idempotent), so a fresh PostgreSQL needs no
-- manual step; `psql -f db.sql` does the same by hand.

-- Each user's revenue: the sum of all applied events, in the smallest currency unit.
CREATE TABLE IF NOT EXISTS users_revenue (
    user_id text   PRIMARY KEY,
    revenue bigint NOT NULL DEFAULT 0
);

-- The exactly-once ledger: one row per applied events file, written in the same transaction
-- as that file's revenue. A file with a row here is never applied again.
CREATE TABLE IF NOT EXISTS processed_files (
    file_name   text        PRIMARY KEY,  -- the claimed file's base name, unique per claim
    events      bigint      NOT NULL,     -- valid events applied
    users       bigint      NOT NULL,     -- distinct users touched
    net_revenue numeric     NOT NULL,     -- sum of all deltas in the file
    sha256      text        NOT NULL,     -- of the file's bytes, to spot a changed file
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- The ledger is searched by digest, to refuse a processed file handed over again under a new
-- name.
CREATE INDEX IF NOT EXISTS processed_files_sha256 ON processed_files (sha256);
