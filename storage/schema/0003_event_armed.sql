-- 0003: whether an event started inside its camera's (or zone's) armed hours. Events outside
-- them are stored like any other but not alerted.
ALTER TABLE event ADD COLUMN armed INTEGER NOT NULL DEFAULT 1;
