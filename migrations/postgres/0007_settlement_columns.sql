-- The money of a payment in typed columns the reports add up, instead of numbers read out
-- of stored JSON (a partner's "amount": 150.0 made every report of its day fail):
-- approved_minor, what the partner approved (from its answer, checked by the hub);
-- settled_minor and fee_minor, fixed when the POS confirms (the confirmation's amount, else
-- the approved one, else the requested one; the fee by the schedule then in force).
ALTER TABLE payment ADD COLUMN approved_minor bigint;
ALTER TABLE payment ADD COLUMN settled_minor bigint;
ALTER TABLE payment ADD COLUMN fee_minor bigint;
-- The partner approved another amount than asked, which the hub refused (UNKNOWN, its
-- reversal queued; the POS was told INVALID_AMOUNT).
ALTER TABLE payment ADD COLUMN amount_refused boolean NOT NULL DEFAULT false;

-- Payments answered before this: the same amounts the reports read from JSON, where the
-- JSON holds a whole number.
UPDATE payment SET approved_minor = (partner_response #>> '{amounts,approvedAmount,amount}')::bigint
WHERE jsonb_typeof(partner_response #> '{amounts,approvedAmount,amount}') = 'number'
  AND (partner_response #>> '{amounts,approvedAmount,amount}') ~ '^-?[0-9]{1,18}$';
UPDATE payment p SET settled_minor = COALESCE(
    (SELECT (a.body #>> '{amounts,approvedAmount,amount}')::bigint FROM advice a
     WHERE a.client_id = p.client_id AND a.request_id = p.message_id AND a.payment_id = p.id
       AND a.kind = 'CONFIRMATION'
       AND (a.body #>> '{amounts,approvedAmount,amount}') ~ '^-?[0-9]{1,18}$'
     ORDER BY a.received_at LIMIT 1),
    p.approved_minor, p.amount_minor)
WHERE p.state = 'CONFIRMED';
