-- Every payment id a POS has used, whether by its `pay` or by a reversal that came before it:
-- the one unique key that both write. A `pay` and a reversal of the same id arriving at the
-- same instant each checked that the other was not there yet, and each could be stored: the
-- POS told "not found, nothing to reverse" while its payment went on to the partner. Now the
-- second to insert the key waits for the first to commit, and then sees it. (SQLite has one
-- writer at a time and checks the payment inside the reversal's write transaction instead.)
CREATE TABLE payment_message (
    client_id  text NOT NULL,
    message_id text NOT NULL,
    CONSTRAINT payment_message_pkey PRIMARY KEY (client_id, message_id)
);

INSERT INTO payment_message (client_id, message_id)
SELECT client_id, message_id FROM payment
UNION
SELECT client_id, request_id FROM advice WHERE kind = 'REVERSAL' AND payment_id IS NULL;
