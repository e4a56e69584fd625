-- Fire events from FIRMS (issue 18): straw_burning and open_fire clues become tasks due in
-- 24 h, not the default 72: a burnt field is ploughed or sown within days, and the ash
-- and stubble an inspector must see are gone with it.
INSERT INTO task_due_rules (kind, hours) VALUES ('straw_burning', 24), ('open_fire', 24)
ON CONFLICT (kind) DO NOTHING;
