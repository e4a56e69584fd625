-- Inspector tasks: one per routed clue, made by the database itself, so that every writer of
-- clues (the stream's CluesSink, a replay, a hand-made row) opens the task the same way.
--
-- A clue row that arrives with a department (or gets one later) makes one task for that
-- department (clue_id is unique: ON CONFLICT DO NOTHING keeps it idempotent). The task is
-- assigned in turn to the department's inspectors: the one with the fewest open tasks,
-- ties to the one assigned least recently, then by id; with no inspector it stays open.
-- Due time: created_at plus the hours of task_due_rules for the clue kind, else of '*'.
-- Every insert or update of a task takes the next event_seq and notifies channel
-- offsite_tasks; the API's task pusher (api/task_push.py) reads the changed rows and
-- publishes them to MQTT.

CREATE TABLE IF NOT EXISTS task_due_rules (
    kind   text PRIMARY KEY,
    hours  double precision NOT NULL CHECK (hours > 0)
);
INSERT INTO task_due_rules (kind, hours) VALUES ('*', 72) ON CONFLICT (kind) DO NOTHING;

CREATE SEQUENCE IF NOT EXISTS task_event_seq;

CREATE TABLE IF NOT EXISTS tasks (
    id             bigserial PRIMARY KEY,
    clue_id        text NOT NULL UNIQUE REFERENCES clues (clue_id),
    department     text NOT NULL,
    jurisdiction   text,
    clue_kind      text NOT NULL,
    state          text NOT NULL DEFAULT 'open'
                   CHECK (state IN ('open', 'assigned', 'accepted', 'closed')),
    assignee       text REFERENCES users (id),
    assigned_by    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    due_at         timestamptz NOT NULL,
    assigned_at    timestamptz,
    accepted_at    timestamptz,
    closed_at      timestamptz,
    result         text CHECK (result IN ('confirmed', 'false_positive', 'not_found')),
    note           text NOT NULL DEFAULT '',
    evidence_ids   text[] NOT NULL DEFAULT '{}',
    referred_at    timestamptz,
    referred_by    text,
    bundle         bytea,
    bundle_sha256  text,
    event_seq      bigint,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tasks_assignee_idx ON tasks (assignee, state);
CREATE INDEX IF NOT EXISTS tasks_department_idx ON tasks (department, created_at DESC);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_event_seq_idx ON tasks (event_seq);

-- The department's next inspector in turn (NULL if it has none).
CREATE OR REPLACE FUNCTION offsite_next_inspector(p_dept text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT u.id FROM users u
    WHERE u.department = p_dept AND u.role = 'inspector' AND NOT u.disabled
    ORDER BY (SELECT count(*) FROM tasks t
              WHERE t.assignee = u.id AND t.state IN ('assigned', 'accepted')),
             (SELECT max(t.assigned_at) FROM tasks t WHERE t.assignee = u.id) NULLS FIRST,
             u.id
    LIMIT 1
$$;

CREATE OR REPLACE FUNCTION offsite_clue_task() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    who text;
    hours double precision;
BEGIN
    IF EXISTS (SELECT 1 FROM tasks WHERE clue_id = NEW.clue_id) THEN
        RETURN NULL;
    END IF;
    who := offsite_next_inspector(NEW.department);
    hours := COALESCE((SELECT r.hours FROM task_due_rules r WHERE r.kind = NEW.kind),
                      (SELECT r.hours FROM task_due_rules r WHERE r.kind = '*'), 72);
    INSERT INTO tasks (clue_id, department, jurisdiction, clue_kind, state, assignee,
                       assigned_by, assigned_at, due_at)
    VALUES (NEW.clue_id, NEW.department, NEW.jurisdiction, NEW.kind,
            CASE WHEN who IS NULL THEN 'open' ELSE 'assigned' END, who,
            CASE WHEN who IS NULL THEN NULL ELSE 'auto' END,
            CASE WHEN who IS NULL THEN NULL ELSE now() END,
            now() + hours * interval '1 hour')
    ON CONFLICT (clue_id) DO NOTHING;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS clues_open_task ON clues;
CREATE TRIGGER clues_open_task AFTER INSERT ON clues
    FOR EACH ROW WHEN (NEW.department IS NOT NULL) EXECUTE FUNCTION offsite_clue_task();
DROP TRIGGER IF EXISTS clues_routed_task ON clues;
CREATE TRIGGER clues_routed_task AFTER UPDATE OF department ON clues
    FOR EACH ROW WHEN (OLD.department IS NULL AND NEW.department IS NOT NULL)
    EXECUTE FUNCTION offsite_clue_task();

CREATE OR REPLACE FUNCTION offsite_task_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.event_seq := nextval('task_event_seq');
    NEW.updated_at := now();
    PERFORM pg_notify('offsite_tasks',
                      json_build_object('task_id', NEW.id, 'event_id', NEW.event_seq)::text);
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS tasks_changed ON tasks;
CREATE TRIGGER tasks_changed BEFORE INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION offsite_task_changed();
