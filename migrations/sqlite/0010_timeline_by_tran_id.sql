-- The timeline keeps one index, on tranId, and no foreign key to its payment.
--
-- A flow records eight events, all in the one writer's transactions. Each event cost an
-- entry in three indexes (by payment, by tranId, by time) and a look-up of its payment for
-- the foreign key. In alternating benchmark runs, the two indexes alone took 10 to 18 % of
-- the hub's flows per second (BENCHMARKS.md, issue 14, fifth round).
--
-- - By payment: every event of a payment carries the payment's tranId, so the timeline
--   reads the tranId's events and keeps the payment's own and those that never reached a
--   payment (a createQrCode, a refused pay or scan), which it showed already.
-- - By time: the retention purge takes events in id order instead. Ids are the table's row
--   ids, given in the order events are recorded, so that is oldest first but for a
--   batch's few milliseconds, and it costs no index.
-- - The foreign key: events are written only in the transaction that changes their payment
--   or after it, and a payment is deleted only by the purge, which deletes its events
--   first; PostgreSQL dropped the same key in its migration 0010. With the key, deleting a
--   payment would also have to search the events for its children.
--
-- SQLite cannot drop a foreign key, so the table is copied into one without it.

CREATE TABLE payment_event_new (
    id           INTEGER NOT NULL PRIMARY KEY,
    payment_id   TEXT,
    tran_id      TEXT    NOT NULL,
    at           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    direction    TEXT    NOT NULL CHECK (direction IN ('IN', 'OUT')),
    counterparty TEXT    NOT NULL,
    message_id   TEXT,
    http_status  INTEGER,
    outcome      TEXT    NOT NULL,
    body         TEXT
) STRICT;
INSERT INTO payment_event_new (id, payment_id, tran_id, at, kind, direction, counterparty,
    message_id, http_status, outcome, body)
SELECT id, payment_id, tran_id, at, kind, direction, counterparty, message_id, http_status,
    outcome, body
FROM payment_event;
DROP TABLE payment_event;
ALTER TABLE payment_event_new RENAME TO payment_event;
CREATE INDEX payment_event_tran_id_at_idx ON payment_event (tran_id, at, id);
