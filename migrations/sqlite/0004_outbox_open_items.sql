-- Advices an operator must act on: refused by the partner (FAILED) or never delivered by
-- their expiry (DEAD). The sweeper counts them every second for the alerting gauges, so the
-- count reads this small index rather than the whole outbox.
CREATE INDEX outbox_open_items_idx ON outbox (state) WHERE state IN ('FAILED', 'DEAD');
