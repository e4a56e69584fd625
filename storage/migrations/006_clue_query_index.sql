-- The monitoring-center clue list filters on kind and a recent time window (plus a bbox
-- evaluated per row) and orders by time: an index on (kind, time DESC) reads only the
-- window of that kind, newest first, instead of every clue (bench/bench_storage.py).
CREATE INDEX IF NOT EXISTS clues_kind_time_idx ON clues (kind, time DESC);
