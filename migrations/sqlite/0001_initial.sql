-- qrhub schema, SQLite. See DESIGN.md §5 (payment states) and §7 (outbox).
--
-- Times are TEXT in fixed-width RFC 3339 UTC with microseconds
-- ('2024-01-02T03:04:05.123456Z'), so that text order is time order.
-- UUIDs are hyphenated lower-case TEXT; JSON is TEXT; booleans are INTEGER 0/1.
-- Tables are STRICT so that a value of the wrong type is refused, not coerced.

CREATE TABLE qr_code (
    tran_id    TEXT NOT NULL PRIMARY KEY,
    client_id  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    scheme     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    UNIQUE (client_id, message_id)
) STRICT;

CREATE TABLE payment (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    message_id            TEXT    NOT NULL,
    tran_id               TEXT    NOT NULL,
    state                 TEXT    NOT NULL CHECK (state IN (
        'WAITING_FOR_SCAN', 'MATCHED', 'FORWARDED', 'APPROVED', 'DECLINED',
        'UNKNOWN', 'CONFIRMED', 'REVERSED', 'EXPIRED')),
    amount_minor          INTEGER NOT NULL,
    currency              TEXT    NOT NULL,
    request               TEXT    NOT NULL,
    partner_id            TEXT,
    partner_payment_token TEXT,
    scan_message_id       TEXT,
    partner_message_id    TEXT,
    reversed_by_pos       INTEGER NOT NULL DEFAULT 0 CHECK (reversed_by_pos IN (0, 1)),
    partner_status        INTEGER,
    partner_response      TEXT,
    created_at            TEXT    NOT NULL,
    scan_deadline         TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL,
    UNIQUE (client_id, message_id)
) STRICT;

-- One live payment per tranId. A payment that ended without money moving (expired,
-- declined, reversed) frees the tranId for a new attempt; an UNKNOWN one is still being
-- reversed and a CONFIRMED one has been paid, so both keep it.
CREATE UNIQUE INDEX payment_live_tran_id_key ON payment (tran_id)
    WHERE state NOT IN ('EXPIRED', 'DECLINED', 'REVERSED');
-- A partner's scan notification claims at most one payment.
CREATE UNIQUE INDEX payment_partner_scan_key ON payment (partner_id, scan_message_id)
    WHERE scan_message_id IS NOT NULL;
CREATE INDEX payment_tran_id_created_at_idx ON payment (tran_id, created_at);
CREATE INDEX payment_state_scan_deadline_idx ON payment (state, scan_deadline);
CREATE INDEX payment_state_updated_at_idx ON payment (state, updated_at);

CREATE TABLE advice (
    client_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('CONFIRMATION', 'REVERSAL')),
    request_id  TEXT NOT NULL,
    payment_id  TEXT REFERENCES payment (id),
    body        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (client_id, message_id)
) STRICT;
CREATE INDEX advice_client_request_idx ON advice (client_id, request_id);

CREATE TABLE outbox (
    id              TEXT    NOT NULL PRIMARY KEY,
    payment_id      TEXT    NOT NULL REFERENCES payment (id),
    partner_id      TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('CONFIRMATION', 'REVERSAL')),
    message_id      TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    expires_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
) STRICT;
CREATE INDEX outbox_state_next_attempt_at_idx ON outbox (state, next_attempt_at);
CREATE INDEX outbox_payment_id_idx ON outbox (payment_id);
