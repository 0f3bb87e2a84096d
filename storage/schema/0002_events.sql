-- 0002: events (motion, person, tamper, camera_offline, ...). The id is a ULID made when the
-- event started; [start_us, end_us) with end_us NULL while the event lasts.
CREATE TABLE event (
  id TEXT PRIMARY KEY,
  node_id TEXT NOT NULL,
  camera_id TEXT NOT NULL,
  type TEXT NOT NULL,
  label TEXT NOT NULL DEFAULT '',
  zones TEXT NOT NULL DEFAULT '[]',          -- JSON array of zone names
  start_us INTEGER NOT NULL,
  end_us INTEGER,
  peak_score REAL NOT NULL DEFAULT 0,
  box_x REAL, box_y REAL, box_w REAL, box_h REAL,  -- relative peak box
  snapshot_path TEXT NOT NULL DEFAULT '',
  pre_capture_s INTEGER NOT NULL DEFAULT 0,
  post_capture_s INTEGER NOT NULL DEFAULT 0,
  review_state TEXT NOT NULL DEFAULT 'new' CHECK (review_state IN ('new', 'confirmed', 'false_alarm')),
  review_note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX event_by_camera_time ON event (node_id, camera_id, start_us);
CREATE INDEX event_by_time ON event (node_id, start_us);
