-- Core tables of the foundation: resources and their owners, readings, dead letters, clues.
-- The @partitioned and @timeseries directive comments are rendered by storage.migrate for
-- TimescaleDB (hypertables, compression, retention) or plain PostgreSQL (range
-- partitions on time, BRIN). Every unique key includes the time column, as both require.

CREATE TABLE IF NOT EXISTS departments (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS stations (
    id           text PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    owner_dept   text REFERENCES departments(id),
    st           text,
    standard     text,
    password     text,
    lon          double precision,
    lat          double precision,
    interval_s   integer,
    properties   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS cameras (
    id           text PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    owner_dept   text REFERENCES departments(id),
    url          text NOT NULL,
    lon          double precision,
    lat          double precision,
    config       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS scene_collections (
    id           text PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    owner_dept   text REFERENCES departments(id),
    properties   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS readings (
    time     timestamptz NOT NULL,
    station  text NOT NULL,
    code     text NOT NULL,
    period   text NOT NULL,
    value    double precision NOT NULL,
    flag     text NOT NULL DEFAULT 'N',
    source   text NOT NULL,
    PRIMARY KEY (station, code, period, time)
) /*@partitioned(time)*/;
/*@timeseries(readings, time, chunk=1 day, segmentby=station\,code, compress_after=7 days, retain=5 years)*/
/*@hourly_readings*/

CREATE TABLE IF NOT EXISTS rejected (
    id        text PRIMARY KEY,
    time      timestamptz NOT NULL,
    source    text NOT NULL,
    reason    text NOT NULL,
    raw       bytea NOT NULL,
    context   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS rejected_time_idx ON rejected (time);

-- Current state of every clue (one row per episode); its history is in clue_events.
CREATE TABLE IF NOT EXISTS clues (
    clue_id     text PRIMARY KEY,
    modality    text NOT NULL,
    kind        text NOT NULL,
    rule        text NOT NULL,
    subject     text NOT NULL,
    state       text NOT NULL,
    start       timestamptz NOT NULL,
    time        timestamptz NOT NULL,
    "end"       timestamptz,
    confidence  double precision NOT NULL,
    location    jsonb,
    metrics     jsonb NOT NULL DEFAULT '{}'::jsonb,
    summary     text NOT NULL DEFAULT '',
    detector    text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS clues_state_idx ON clues (state, time DESC);

CREATE TABLE IF NOT EXISTS clue_events (
    time       timestamptz NOT NULL,
    clue_id    text NOT NULL,
    kind       text NOT NULL,
    state      text NOT NULL,
    payload    jsonb NOT NULL,
    PRIMARY KEY (clue_id, state, time)
) /*@partitioned(time)*/;
/*@timeseries(clue_events, time, chunk=7 days, segmentby=clue_id, compress_after=30 days, retain=10 years)*/

CREATE TABLE IF NOT EXISTS camera_health (
    time     timestamptz NOT NULL,
    camera   text NOT NULL,
    online   boolean NOT NULL,
    fps      double precision,
    detail   text NOT NULL DEFAULT '',
    PRIMARY KEY (camera, time)
) /*@partitioned(time)*/;
/*@timeseries(camera_health, time, chunk=7 days, segmentby=camera, compress_after=7 days, retain=1 year)*/
