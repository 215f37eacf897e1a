//! The rules of a payment, free of I/O: its states and legal moves, what a partner's status
//! code means, and what each advice does to a payment in each state.

mod advice;
mod approval;
mod fees;
mod money;
mod outcome;
mod scan;
mod settlement_day;
mod state;

pub use advice::{decide_advice, AdviceDecision, AdviceKind, Refusal};
pub use approval::{
    approved_amount, check_approved_amount, confirmable, AmountMismatch, CodeTerms,
};
pub use fees::FeeSchedule;
pub use money::{check_amount, currency_exponent, Money, MAX_AMOUNT};
pub use outcome::{classify_advice, classify_pay, AdviceAnswer, Outcome};
pub use scan::{decide_scan, LatestPayment, ScanDecision, DUPLICATE_SCAN_ID, NO_PAYMENT_WAITING};
pub use settlement_day::SettlementDay;
pub use state::{settle_partner_answer, PartnerAnswer, PaymentState, Settlement};
