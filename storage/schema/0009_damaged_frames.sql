-- 0009: frames of a segment that arrived with pieces missing (RTP packets the camera or the link
-- lost): recorded as they came, and counted so that a reviewer knows which footage is damaged.
ALTER TABLE segment ADD COLUMN damaged_frames INTEGER NOT NULL DEFAULT 0;
