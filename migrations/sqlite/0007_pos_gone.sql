-- When the POS's connection closed while its `pay` waited for a scan (DESIGN.md §5): the
-- payment ended EXPIRED then, and a later scan is told the POS went away instead of waiting
-- for another `pay`. NULL for every payment whose POS stayed (and for all earlier rows).
ALTER TABLE payment ADD COLUMN pos_gone_at TEXT;
