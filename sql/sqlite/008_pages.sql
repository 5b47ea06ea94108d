-- 008_pages.sql - the device a session was opened from, for "my account":
-- a coarse label made from the User-Agent ("Firefox, Linux"), never the
-- header itself.
ALTER TABLE sessions ADD COLUMN device TEXT NOT NULL DEFAULT '';
