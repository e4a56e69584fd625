-- Routing of clues and fusion of clues into cases.
-- Every clue row carries where it was routed: its site key (the key of the clues topic),
-- the primary department, the jurisdiction and the zones it touches (geo.routing). A case
-- is what the fusion agent (streams/clues.py) makes of the clues at one site within a
-- time window: one row per case, rewritten as clues join it; case_id is a natural key
-- (site and the data time of its first clue) and version orders rewrites, so re-delivered
-- clues leave the same row.

ALTER TABLE clues ADD COLUMN IF NOT EXISTS site text;
ALTER TABLE clues ADD COLUMN IF NOT EXISTS department text;
ALTER TABLE clues ADD COLUMN IF NOT EXISTS jurisdiction text;
ALTER TABLE clues ADD COLUMN IF NOT EXISTS zones jsonb NOT NULL DEFAULT '[]'::jsonb;
CREATE INDEX IF NOT EXISTS clues_site_idx ON clues (site, time DESC);
CREATE INDEX IF NOT EXISTS clues_department_idx ON clues (department, state, time DESC);

CREATE TABLE IF NOT EXISTS cases (
    case_id      text PRIMARY KEY,
    site         text NOT NULL,
    state        text NOT NULL,
    first_time   timestamptz NOT NULL,
    last_time    timestamptz NOT NULL,
    modalities   text[] NOT NULL,
    clue_ids     text[] NOT NULL,
    confidence   double precision NOT NULL,
    department   text,
    location     jsonb,
    evidence     jsonb NOT NULL DEFAULT '[]'::jsonb,
    summary      text NOT NULL DEFAULT '',
    version      integer NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cases_site_idx ON cases (site, last_time DESC);
CREATE INDEX IF NOT EXISTS cases_state_idx ON cases (state, last_time DESC);
