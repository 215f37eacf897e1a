-- Fewer index entries per flow (BENCHMARKS.md, issue 14 second round). No update of
-- `payment` can be HOT (each changes `state`, which partial indexes name), so every one of a
-- flow's row versions writes an entry into each index of the table whose predicate it meets,
-- and each of a flow's eight timeline events into each index of `payment_event`. Index
-- entries, their WAL and the pages they dirty are most of what a flow costs the database.
-- On a database already holding many payments, building the two indexes below blocks writes
-- to their tables while it runs; to avoid that, create them beforehand with CREATE INDEX
-- CONCURRENTLY under the same names (this migration then skips them).

-- One index on tranId instead of two: the uniqueness of the live payment and the look-ups of
-- a tranId's payments (latest_payment_for_tran, scan_context, the claim) share it. An ended
-- payment (EXPIRED, DECLINED, REVERSED) is keyed by its own id, so it never collides; every
-- other payment of a tranId has NULL there, and NULLs count as equal here, so at most one of
-- them is stored. tranId leads, as a table distributed by it needs of a unique index.
CREATE UNIQUE INDEX IF NOT EXISTS payment_tran_id_key ON payment
    (tran_id, (CASE WHEN state IN ('EXPIRED', 'DECLINED', 'REVERSED') THEN id END))
    NULLS NOT DISTINCT;
DROP INDEX IF EXISTS payment_live_tran_id_key;
DROP INDEX IF EXISTS payment_tran_id_created_at_idx;

-- Back office only: a search by client or partner, newest first, walks the (created_at, id)
-- index and filters; clients and partners are few, so a page is found within a few pages of
-- all payments, and the settlement report always has its day's range on created_at.
DROP INDEX IF EXISTS payment_client_created_at_idx;
DROP INDEX IF EXISTS payment_partner_created_at_idx;

-- The timeline reads a payment's events by payment_id, and by tranId only the events that
-- never reached a payment (a createQrCode, a refused pay or scan): index only those.
CREATE INDEX IF NOT EXISTS payment_event_unlinked_tran_id_at_idx ON payment_event (tran_id, at, id)
    WHERE payment_id IS NULL;
DROP INDEX IF EXISTS payment_event_tran_id_at_idx;

-- The retention purge takes a batch of old events in the order of their ids (given as
-- events are recorded, so oldest first but for a batch's few milliseconds), which the
-- primary key serves; an index on `at` cost an entry per event.
DROP INDEX IF EXISTS payment_event_at_idx;
