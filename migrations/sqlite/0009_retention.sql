-- Retention (DESIGN.md §7): the purge deletes timeline events by age and delivered advices by
-- when they were delivered, oldest first, in small batches; each batch must find its rows
-- through an index rather than scan the table. Only DELIVERED rows are ever purged, so that
-- index covers them alone.
CREATE INDEX IF NOT EXISTS payment_event_at_idx ON payment_event (at);
CREATE INDEX IF NOT EXISTS outbox_delivered_updated_at_idx ON outbox (updated_at)
    WHERE state = 'DELIVERED';
