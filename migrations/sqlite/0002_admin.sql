-- Back office (the /admin/v1 API): a timeline of every message the hub received or sent,
-- and the indexes that payment search and the settlement report need.

-- One row per message in or out. payment_id is NULL for messages that never reached a
-- payment (a createQrCode, a refused pay or scan); tran_id ties them together.
CREATE TABLE payment_event (
    id           INTEGER NOT NULL PRIMARY KEY,
    payment_id   TEXT    REFERENCES payment (id),
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
CREATE INDEX payment_event_payment_id_at_idx ON payment_event (payment_id, at, id);
CREATE INDEX payment_event_tran_id_at_idx ON payment_event (tran_id, at, id);

CREATE INDEX payment_created_at_id_idx ON payment (created_at, id);
CREATE INDEX payment_partner_created_at_idx ON payment (partner_id, created_at);
CREATE INDEX payment_client_created_at_idx ON payment (client_id, created_at);
