-- Evidence store: content-addressed, per-source hash-chained, Ed25519-signed records.
-- The hashing, chaining and verification are in storage/evidence_chain.py; this is where
-- the records live. Column names are the fields of evidence_chain.EvidenceRecord.

-- Public keys that ever signed evidence; kept forever so old records stay verifiable after
-- a key is replaced. key_id is the first 16 hex digits of sha256(raw public key).
CREATE TABLE IF NOT EXISTS evidence_keys (
    key_id          text PRIMARY KEY,
    algorithm       text NOT NULL DEFAULT 'ed25519',
    public_key_hex  text NOT NULL UNIQUE,
    public_key_pem  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz,
    CHECK (algorithm = 'ed25519'),
    CHECK (length(public_key_hex) = 64)
);

-- time is the evidence's own (data) time, the partition column; fixed_at is when it was
-- hashed and signed. Both are inside the record hash. (source, seq) is unique per chain:
-- a partitioned table cannot enforce that without time, so appends take an advisory lock
-- per source (see evidence_chain). id is the item's natural key, so re-sent evidence is
-- found and skipped instead of chained twice.
CREATE TABLE IF NOT EXISTS evidence (
    time              timestamptz NOT NULL,
    id                text NOT NULL,
    clue_id           text NOT NULL,
    source            text NOT NULL,
    seq               bigint NOT NULL CHECK (seq > 0),
    fixed_at          timestamptz NOT NULL,
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    prev_hash         text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    record_hash       text NOT NULL CHECK (record_hash ~ '^[0-9a-f]{64}$'),
    key_id            text NOT NULL REFERENCES evidence_keys (key_id),
    signature         text NOT NULL,
    media_type        text NOT NULL,
    name              text NOT NULL,
    detector          text NOT NULL DEFAULT '',
    detector_version  text NOT NULL DEFAULT '',
    params            jsonb NOT NULL DEFAULT '{}'::jsonb,
    content           bytea,
    uri               text,
    CHECK (content IS NOT NULL OR uri IS NOT NULL),
    PRIMARY KEY (id, time),
    UNIQUE (source, seq, time)
) /*@partitioned(time)*/;
/*@timeseries(evidence, time, chunk=7 days, segmentby=source, compress_after=30 days, retain=10 years)*/
CREATE INDEX IF NOT EXISTS evidence_chain_idx ON evidence (source, seq DESC);
CREATE INDEX IF NOT EXISTS evidence_clue_idx ON evidence (clue_id, time DESC);
CREATE INDEX IF NOT EXISTS evidence_sha256_idx ON evidence (sha256);
