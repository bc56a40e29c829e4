-- The JSON columns hold the text as written (json, not jsonb). Nothing queries inside
-- them and readers decode the text either way, while building jsonb was about a third of
-- PostgreSQL's time per projected event. Rewrites both tables under an exclusive lock.
alter table orders alter column state type json using state::json;
alter table order_events alter column payload type json using payload::json;
