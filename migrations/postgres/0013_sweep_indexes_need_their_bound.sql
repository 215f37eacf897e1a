-- The sweeps' partial indexes answer only the statements that bound their column.
--
-- Each of these indexes serves a sweep: codes waiting past their deadline, answers and
-- advices in flight for too long, deliveries due. A row leaves the index's state by an
-- update, and the entry of its old version stays in the index until vacuum removes it, so
-- between two vacuums each of them holds an entry for every payment or delivery that passed
-- through its state: tens of thousands after a minute at full load.
--
-- With a predicate of `state = '…'` alone, the planner may answer a flow's own statement
-- (`WHERE tran_id = $1 AND state = 'WAITING_FOR_SCAN'`, `WHERE id = $1 AND state = $2`,
-- a delivery's `o.id = d.id AND o.state = 'PENDING'`) from the sweep's index instead of the
-- key's: before the table has statistics it ANDs both, and after an ANALYZE taken when few
-- rows were in that state it believes the partial index nearly empty and walks it alone.
-- Either way the statement reads the dead entries (those vacuum has not removed and no
-- earlier scan has marked). In a 30 s benchmark the scan's claim read
-- 119 million index entries, half of PostgreSQL's time per flow (BENCHMARKS.md, issue 14
-- fourth round).
--
-- Adding `<column> IS NOT NULL` (always true: the columns are NOT NULL) takes these indexes
-- out of the flow's reach: a statement can use a partial index only if its WHERE implies the
-- predicate, and only a strict comparison on the column (`scan_deadline < $1`,
-- `updated_at < $1`, `next_attempt_at <= $1`) or the same test implies it. The sweeps bound
-- their column; the flow's statements never name it. The outbox reads that take the whole
-- PENDING set (counts, the back office's list by state) say `next_attempt_at IS NOT NULL`
-- themselves. The back office's payment search by state walks the newest-first index
-- instead, as its other filters do.
--
-- SQLite updates in place and removes a row's entry when it leaves the state, so its
-- indexes hold only live rows; its schema is unchanged.
--
-- This relies on PostgreSQL 15's planner (the version the project runs and tests): a later
-- version that drops `IS NOT NULL` on a NOT NULL column from queries and predicates would
-- make these indexes reachable again, and the test
-- `store_conformance::postgres_a_flow_never_walks_the_sweeps_indexes` says so.
--
-- The indexes are built before the old ones are dropped, so the table's exclusive lock (taken
-- by the first DROP and held until the migration commits) lasts only for the drops. Building
-- them still blocks writes to the table while it reads it; on a database already holding many
-- rows, create them beforehand with CREATE INDEX CONCURRENTLY under the same names and check
-- that each is valid (`pg_index.indisvalid`: a failed concurrent build leaves an invalid
-- index of that name, which this migration would keep).

CREATE INDEX IF NOT EXISTS payment_waiting_by_deadline_idx ON payment (scan_deadline)
    WHERE state = 'WAITING_FOR_SCAN' AND scan_deadline IS NOT NULL;
CREATE INDEX IF NOT EXISTS payment_in_flight_by_update_idx ON payment (updated_at)
    WHERE state IN ('MATCHED', 'FORWARDED') AND updated_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS payment_approved_by_update_idx ON payment (updated_at)
    WHERE state = 'APPROVED' AND updated_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_pending_by_next_attempt_idx ON outbox (next_attempt_at)
    WHERE state = 'PENDING' AND next_attempt_at IS NOT NULL;

DROP INDEX IF EXISTS payment_waiting_scan_deadline_idx;
DROP INDEX IF EXISTS payment_in_flight_updated_at_idx;
DROP INDEX IF EXISTS payment_approved_updated_at_idx;
DROP INDEX IF EXISTS outbox_pending_next_attempt_at_idx;
