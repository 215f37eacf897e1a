-- qrhub schema, PostgreSQL. See DESIGN.md §5 (payment states) and §7 (outbox).

-- QR codes the hub issued.
CREATE TABLE qr_code (
    tran_id    text        PRIMARY KEY,
    client_id  text        NOT NULL,
    message_id text        NOT NULL,
    scheme     text        NOT NULL,
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT qr_code_client_message_key UNIQUE (client_id, message_id)
);

CREATE TABLE payment (
    id                    uuid        PRIMARY KEY,
    client_id             text        NOT NULL,
    message_id            text        NOT NULL,
    tran_id               text        NOT NULL,
    state                 text        NOT NULL,
    amount_minor          bigint      NOT NULL,
    currency              text        NOT NULL,
    request               jsonb       NOT NULL,
    partner_id            text,
    partner_payment_token text,
    scan_message_id       text,
    partner_message_id    text,
    reversed_by_pos       boolean     NOT NULL DEFAULT false,
    partner_status        integer,
    partner_response      jsonb,
    created_at            timestamptz NOT NULL,
    scan_deadline         timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CONSTRAINT payment_client_message_key UNIQUE (client_id, message_id),
    CONSTRAINT payment_state_check CHECK (state IN (
        'WAITING_FOR_SCAN', 'MATCHED', 'FORWARDED', 'APPROVED', 'DECLINED',
        'UNKNOWN', 'CONFIRMED', 'REVERSED', 'EXPIRED'))
);

-- One live payment per tranId. A payment that ended without money moving (expired,
-- declined, reversed) frees the tranId for a new attempt; an UNKNOWN one is still being
-- reversed and a CONFIRMED one has been paid, so both keep it.
CREATE UNIQUE INDEX payment_live_tran_id_key ON payment (tran_id)
    WHERE state NOT IN ('EXPIRED', 'DECLINED', 'REVERSED');
-- A partner's scan notification claims at most one payment.
CREATE UNIQUE INDEX payment_partner_scan_key ON payment (partner_id, scan_message_id)
    WHERE scan_message_id IS NOT NULL;
-- latest_payment_for_tran.
CREATE INDEX payment_tran_id_created_at_idx ON payment (tran_id, created_at);
-- Sweepers: expired scan windows, and recovery of stale MATCHED/FORWARDED payments.
CREATE INDEX payment_state_scan_deadline_idx ON payment (state, scan_deadline);
CREATE INDEX payment_state_updated_at_idx ON payment (state, updated_at);

-- Advices received from POS clients.
CREATE TABLE advice (
    client_id   text        NOT NULL,
    message_id  text        NOT NULL,
    kind        text        NOT NULL,
    request_id  text        NOT NULL,
    -- NULL for a reversal of a payment the hub never saw.
    payment_id  uuid        REFERENCES payment (id),
    body        jsonb       NOT NULL,
    received_at timestamptz NOT NULL,
    CONSTRAINT advice_pkey PRIMARY KEY (client_id, message_id),
    CONSTRAINT advice_kind_check CHECK (kind IN ('CONFIRMATION', 'REVERSAL'))
);
CREATE INDEX advice_client_request_idx ON advice (client_id, request_id);

-- Advices owed to partners (store-and-forward).
CREATE TABLE outbox (
    id              uuid        PRIMARY KEY,
    payment_id      uuid        NOT NULL REFERENCES payment (id),
    partner_id      text        NOT NULL,
    kind            text        NOT NULL,
    message_id      text        NOT NULL,
    body            jsonb       NOT NULL,
    state           text        NOT NULL,
    -- Tries started so far; the fencing token of the current lease.
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT outbox_kind_check CHECK (kind IN ('CONFIRMATION', 'REVERSAL')),
    CONSTRAINT outbox_state_check CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD'))
);
CREATE INDEX outbox_state_next_attempt_at_idx ON outbox (state, next_attempt_at);
CREATE INDEX outbox_payment_id_idx ON outbox (payment_id);
