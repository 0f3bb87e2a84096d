-- 0007: the web issue. A user's scope: the communes (comma-separated codes) a viewer sees; empty
-- means all. Event reviews say who and when. Alert acknowledgements and escalations.
ALTER TABLE user ADD COLUMN communes TEXT NOT NULL DEFAULT '';
ALTER TABLE event ADD COLUMN reviewed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE event ADD COLUMN reviewed_us INTEGER;
CREATE INDEX event_by_node_time_id ON event (node_id, start_us DESC, id DESC);
CREATE TABLE alert_ack (
  event_id TEXT PRIMARY KEY,
  node_id TEXT NOT NULL,
  acked_by TEXT NOT NULL,
  acked_us INTEGER NOT NULL,
  via TEXT NOT NULL DEFAULT 'page'
);
CREATE TABLE alert_escalation (
  id INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL,
  node_id TEXT NOT NULL,
  from_channel TEXT NOT NULL,
  to_channel TEXT NOT NULL,
  after_s INTEGER NOT NULL,
  at_us INTEGER NOT NULL
);
CREATE INDEX alert_escalation_by_event ON alert_escalation (event_id);
