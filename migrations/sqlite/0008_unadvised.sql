-- Approvals nobody advised (DESIGN.md §5): the sweeper counts them and lists them past an
-- age, oldest first. APPROVED is a state a payment leaves on its advice, so few rows are in
-- it at any time; an index on all payments' updated_at would cover every row ever stored.
CREATE INDEX payment_approved_updated_at_idx ON payment (updated_at)
    WHERE state = 'APPROVED';
