-- The closed sets of values (a payment's state, an advice's kind, a delivery's state, an
-- event's direction) are checked by domains instead of table CHECK constraints.
--
-- A table's CHECK constraint is stored as a node tree in text. PostgreSQL 15 reads it back
-- (`stringToNode`) and plans it as an expression once per statement for every table the
-- statement writes, before the first row: about a dozen times per flow, since a flow's
-- statements write `payment`, `advice`, `outbox` and `payment_event`, several of them in one
-- statement. A profile of the backends under load showed that work as several per cent of
-- their CPU. A domain's constraint is read and planned once per connection (the type
-- cache) and only evaluated per row. In alternating benchmark runs the change took 0.15 to
-- 0.35 ms of PostgreSQL's CPU per flow (BENCHMARKS.md, issue 14, fifth round).
--
-- The checks themselves are unchanged: the same values are allowed, and a statement that
-- writes any other still fails with check_violation (23514).
--
-- A domain over text is text wherever it meets a text value: comparisons, the indexes'
-- operator classes, parameters bound as text, and the type PostgreSQL reports for a result
-- column, so no statement changes.
--
-- Cost on a database that already holds payments. The column's type changes without a
-- rewrite: each domain has no constraint yet at that moment, so the change is a relabelling.
-- But PostgreSQL rebuilds every index whose expression or predicate names the column (the
-- tranId key and the sweeps' partial indexes on `payment`, the partial indexes on
-- `outbox`), holding an ACCESS EXCLUSIVE lock on the table meanwhile: as long as building
-- those indexes takes, so run it when the hub is stopped or quiet. Each domain's constraint
-- is then added NOT VALID: the table CHECK dropped in the same transaction had already
-- checked every existing row, so a scan under a SHARE lock would prove nothing new. New
-- and updated values are checked all the same.
--
-- SQLite compiles a CHECK into the prepared statement once, so its schema is unchanged.

CREATE DOMAIN payment_state AS text;
CREATE DOMAIN advice_kind AS text;
CREATE DOMAIN outbox_state AS text;
CREATE DOMAIN event_direction AS text;

ALTER TABLE payment
    DROP CONSTRAINT payment_state_check,
    ALTER COLUMN state TYPE payment_state;
ALTER TABLE advice
    DROP CONSTRAINT advice_kind_check,
    ALTER COLUMN kind TYPE advice_kind;
ALTER TABLE outbox
    DROP CONSTRAINT outbox_kind_check,
    DROP CONSTRAINT outbox_state_check,
    ALTER COLUMN kind TYPE advice_kind,
    ALTER COLUMN state TYPE outbox_state;
ALTER TABLE payment_event
    DROP CONSTRAINT payment_event_direction_check,
    ALTER COLUMN direction TYPE event_direction;

ALTER DOMAIN payment_state ADD CONSTRAINT payment_state_check CHECK (VALUE IN (
    'WAITING_FOR_SCAN', 'MATCHED', 'FORWARDED', 'APPROVED', 'DECLINED',
    'UNKNOWN', 'CONFIRMED', 'REVERSED', 'EXPIRED')) NOT VALID;
ALTER DOMAIN advice_kind ADD CONSTRAINT advice_kind_check
    CHECK (VALUE IN ('CONFIRMATION', 'REVERSAL')) NOT VALID;
ALTER DOMAIN outbox_state ADD CONSTRAINT outbox_state_check
    CHECK (VALUE IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD')) NOT VALID;
ALTER DOMAIN event_direction ADD CONSTRAINT event_direction_check
    CHECK (VALUE IN ('IN', 'OUT')) NOT VALID;
