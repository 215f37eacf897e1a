-- Indexes that follow a payment's or an outbox row's state cover only the states their
-- queries look for. Every state change writes a new row version into each index whose
-- predicate it meets, so a full (state, …) index cost one entry per change, and a lookup of
-- the few rows WAITING_FOR_SCAN had to step over the dead entries of every payment that
-- ever waited. The queries name these states literally, so their plans can use the
-- predicates (a bound parameter could not prove them).

-- Sweeper: scan windows that closed (expired_waiting).
DROP INDEX payment_state_scan_deadline_idx;
CREATE INDEX payment_waiting_scan_deadline_idx ON payment (scan_deadline)
    WHERE state = 'WAITING_FOR_SCAN';

-- Recovery: payments left MATCHED or FORWARDED by an instance that died.
DROP INDEX payment_state_updated_at_idx;
CREATE INDEX payment_in_flight_updated_at_idx ON payment (updated_at)
    WHERE state IN ('MATCHED', 'FORWARDED');

-- Outbox workers: rows still owed, by when they are due.
DROP INDEX outbox_state_next_attempt_at_idx;
CREATE INDEX outbox_pending_next_attempt_at_idx ON outbox (next_attempt_at)
    WHERE state = 'PENDING';

-- Timeline bodies are kept to be shown, never queried into: `json` stores the text as sent
-- (checked, not re-encoded), which costs the database less per event than `jsonb`.
ALTER TABLE payment_event ALTER COLUMN body TYPE json;
