-- The timeline's link to its payment is no longer a foreign key. Every event insert checked
-- it with a row lock on the payment (`SELECT … FOR KEY SHARE`), nine per flow, and a lock
-- taken by the batched writer's own transaction is a WAL record and a dirtied page of the
-- payment's heap. Events are written only in the statement that changes their payment or
-- after it, and payments are never deleted, so the key could not fail. (A distributed
-- engine also asks that a foreign key between two large tables include the distribution
-- column; see DESIGN.md §8.)
ALTER TABLE payment_event DROP CONSTRAINT IF EXISTS payment_event_payment_id_fkey;
