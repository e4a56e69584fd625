-- Risk per regulated entity (issue 17): the current score of each entity, recomputed from
-- its clue history (kind weights, recency decay, review results, open clues, monitoring
-- gaps; oversight/risk.py holds the formula) whenever one of its clues or task results
-- changes. contributions lists the top terms of the score with the clue ids behind them,
-- so that a score is explainable. Draws (random inspections) read score from here.
CREATE TABLE IF NOT EXISTS entity_risk (
    entity         text PRIMARY KEY REFERENCES entities(id),
    score          double precision NOT NULL DEFAULT 0 CHECK (score >= 0),
    level          text NOT NULL DEFAULT 'low' CHECK (level IN ('low', 'medium', 'high')),
    contributions  jsonb NOT NULL DEFAULT '[]'::jsonb,
    computed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS entity_risk_score_idx ON entity_risk (score DESC);
