-- The money of a payment in typed columns the reports add up, instead of numbers read out
-- of stored JSON: approved_minor, what the partner approved (from its answer, checked by
-- the hub); settled_minor and fee_minor, fixed when the POS confirms (the confirmation's
-- amount, else the approved one, else the requested one; the fee by the schedule then in
-- force).
ALTER TABLE payment ADD COLUMN approved_minor INTEGER;
ALTER TABLE payment ADD COLUMN settled_minor INTEGER;
ALTER TABLE payment ADD COLUMN fee_minor INTEGER;
-- The partner approved another amount than asked, which the hub refused (UNKNOWN, its
-- reversal queued; the POS was told INVALID_AMOUNT).
ALTER TABLE payment ADD COLUMN amount_refused INTEGER NOT NULL DEFAULT 0;

-- Payments answered before this: the same amounts the reports read from JSON, where the
-- JSON holds a whole number.
UPDATE payment SET approved_minor = json_extract(partner_response, '$.amounts.approvedAmount.amount')
WHERE json_valid(partner_response)
  AND json_type(partner_response, '$.amounts.approvedAmount.amount') = 'integer';
UPDATE payment SET settled_minor = COALESCE(
    (SELECT json_extract(a.body, '$.amounts.approvedAmount.amount') FROM advice a
     WHERE a.client_id = payment.client_id AND a.request_id = payment.message_id
       AND a.payment_id = payment.id AND a.kind = 'CONFIRMATION' AND json_valid(a.body)
       AND json_type(a.body, '$.amounts.approvedAmount.amount') = 'integer'
     ORDER BY a.received_at LIMIT 1),
    approved_minor, amount_minor)
WHERE state = 'CONFIRMED';
