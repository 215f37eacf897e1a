-- What a code lets a payment be: the amount it names (createQrCode's amounts.requestAmount,
-- else qrProperties.value) and whether a payment may be for less or more. A pay is checked
-- against them on arrival, and an approval for another amount against them before it is
-- relayed. Codes stored before this name no amount and admit any, as they did.
ALTER TABLE qr_code ADD COLUMN amount_minor bigint;
ALTER TABLE qr_code ADD COLUMN currency text;
ALTER TABLE qr_code ADD COLUMN part_payment_allowed boolean NOT NULL DEFAULT false;
ALTER TABLE qr_code ADD COLUMN over_payment_allowed boolean NOT NULL DEFAULT false;
