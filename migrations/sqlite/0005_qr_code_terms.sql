-- What a code lets a payment be: the amount it names (createQrCode's amounts.requestAmount,
-- else qrProperties.value) and whether a payment may be for less or more. A pay is checked
-- against them on arrival, and an approval for another amount against them before it is
-- relayed. Codes stored before this name no amount and admit any, as they did.
ALTER TABLE qr_code ADD COLUMN amount_minor INTEGER;
ALTER TABLE qr_code ADD COLUMN currency TEXT;
ALTER TABLE qr_code ADD COLUMN part_payment_allowed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE qr_code ADD COLUMN over_payment_allowed INTEGER NOT NULL DEFAULT 0;
