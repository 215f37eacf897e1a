//! Property tests of the parts of the hub that are pure functions: the payment state machine
//! as the services drive it, the QR encoders and parser, and the schema against the types.

use proptest::prelude::*;
use qrhub::domain::{
    classify_advice, classify_pay, decide_advice, settle_partner_answer, AdviceAnswer,
    AdviceDecision, AdviceKind, Money, Outcome, PartnerAnswer, PaymentState,
};
use qrhub::model::{
    schema, CreateQrCodeRequest, Operation, PaymentConfirmation, PaymentRequest, PaymentReversal,
    QrScheme, ScanNotification,
};
use qrhub::qr::{self, MerchantInfo, QrContent, StaticTemplate, SubObject};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// (a) The state machine, driven the way the services drive it.
// ---------------------------------------------------------------------------------------------

/// Something that happens to one payment. Each is applied exactly as the service that owns it
/// does (the file is named), using only the domain functions and compare-and-set moves.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// `service/scans.rs` → `claim_for_scan`: WAITING_FOR_SCAN → MATCHED, else nothing
    /// (a claim that must still decide before sending).
    Scan,
    /// `service/scans.rs` → `claim_for_scan`: WAITING_FOR_SCAN → FORWARDED, else nothing (the
    /// hub's own scans: the claiming instance sends at once).
    ScanAndSend,
    /// `service/payments.rs` (the held pay at its scan deadline) and `service/sweeper.rs`
    /// (`expired_waiting`): WAITING_FOR_SCAN → EXPIRED, else nothing.
    WindowEnd,
    /// `service/forward.rs`: MATCHED → FORWARDED, committed before the pay goes out.
    Forward,
    /// `service/forward.rs`: the partner was removed from the config: MATCHED → DECLINED.
    ForwardPartnerGone,
    /// `service/forward.rs`: the partner answered with this HTTP status (`classify_pay`); a
    /// 2xx for the amount asked or not (another amount is reversed).
    PartnerStatus { status: u16, relayable: bool },
    /// `service/forward.rs`: nothing reached the partner (connect refused): declined.
    PartnerNotSent,
    /// `service/forward.rs`: timeout or connection lost after sending: unknown.
    PartnerLost,
    /// `service/advices.rs`: a POS confirmation (a new advice id).
    PosConfirm,
    /// `service/advices.rs`: a POS reversal (a new advice id).
    PosReverse,
    /// `service/forward.rs::recover` via `store.recover`: a payment left FORWARDED becomes
    /// UNKNOWN with a reversal; one left MATCHED becomes DECLINED.
    RecoverStale,
}

fn event() -> impl Strategy<Value = Event> {
    let status = prop_oneof![
        Just(200u16),
        Just(201),
        Just(202),
        Just(400),
        Just(404),
        Just(500),
        Just(503),
        Just(504),
        100u16..600,
    ];
    prop_oneof![
        1 => Just(Event::Scan),
        3 => Just(Event::ScanAndSend),
        2 => Just(Event::WindowEnd),
        3 => Just(Event::Forward),
        1 => Just(Event::ForwardPartnerGone),
        4 => (status, any::<bool>())
            .prop_map(|(status, relayable)| Event::PartnerStatus { status, relayable }),
        1 => Just(Event::PartnerNotSent),
        1 => Just(Event::PartnerLost),
        3 => Just(Event::PosConfirm),
        3 => Just(Event::PosReverse),
        1 => Just(Event::RecoverStale),
    ]
}

/// One payment as the store holds it, plus what the hub queued toward the partner and what
/// the model knows of the partner's side.
#[derive(Debug, Clone)]
struct Payment {
    state: PaymentState,
    reversed_by_pos: bool,
    /// FORWARDED was committed: the partner was, or may have been, asked to pay.
    partner_maybe_asked: bool,
    /// The hub recorded a decline (a failed status, or nothing sent).
    partner_declined: bool,
    confirmations_queued: usize,
    reversals_queued: usize,
    history: Vec<PaymentState>,
}

fn is_final(state: PaymentState) -> bool {
    use PaymentState::*;
    matches!(state, Declined | Confirmed | Reversed | Expired)
}

impl Payment {
    fn new() -> Self {
        Self {
            state: PaymentState::WaitingForScan,
            reversed_by_pos: false,
            partner_maybe_asked: false,
            partner_declined: false,
            confirmations_queued: 0,
            reversals_queued: 0,
            history: vec![PaymentState::WaitingForScan],
        }
    }

    /// A compare-and-set from `from`: applied only if the payment is still there, and every
    /// move the hub attempts must be one the state machine allows (the store refuses others
    /// with `IllegalTransition`, which would be a 500).
    fn cas(&mut self, from: PaymentState, to: PaymentState) -> bool {
        assert!(from.can_move_to(to), "the hub attempts {from} -> {to}");
        if self.state != from {
            return false;
        }
        self.state = to;
        self.history.push(to);
        true
    }

    /// `forward.rs`: the partner's answer is recorded against the state as it is now.
    fn partner_answer(&mut self, answer: PartnerAnswer, declined_because_not_sent: bool) {
        if self.state != PaymentState::Forwarded {
            // "partner answer came after the payment moved on; ignored"
            return;
        }
        let settlement = settle_partner_answer(answer, self.reversed_by_pos);
        if self.cas(PaymentState::Forwarded, settlement.state) {
            if answer == PartnerAnswer::Declined {
                self.partner_declined = true;
                if declined_because_not_sent {
                    self.partner_maybe_asked = false;
                }
            }
            if settlement.queue_reversal {
                self.reversals_queued += 1;
            }
        }
    }

    /// `advices.rs`: decide on the state as read, then one compare-and-set.
    fn advice(&mut self, kind: AdviceKind) {
        match decide_advice(kind, self.state) {
            AdviceDecision::Apply {
                to,
                send_to_partner,
            } => {
                let from = self.state;
                if self.cas(from, to) && send_to_partner {
                    match kind {
                        AdviceKind::Confirmation => self.confirmations_queued += 1,
                        AdviceKind::Reversal => self.reversals_queued += 1,
                    }
                }
            }
            AdviceDecision::MarkReversedByPos => {
                assert!(
                    matches!(self.state, PaymentState::Matched | PaymentState::Forwarded),
                    "reversed_by_pos set in {}",
                    self.state
                );
                self.reversed_by_pos = true;
            }
            AdviceDecision::Absorb => {}
            // A refusal is a bad request by its type (no status to check).
            AdviceDecision::Refuse(_) => {}
        }
    }

    fn apply(&mut self, event: Event) {
        use PaymentState::*;
        match event {
            Event::Scan => {
                self.cas(WaitingForScan, Matched);
            }
            Event::ScanAndSend => {
                if self.cas(WaitingForScan, Forwarded) {
                    self.partner_maybe_asked = true;
                }
            }
            Event::WindowEnd => {
                self.cas(WaitingForScan, Expired);
            }
            Event::Forward => {
                if self.cas(Matched, Forwarded) {
                    self.partner_maybe_asked = true;
                }
            }
            Event::ForwardPartnerGone => {
                self.cas(Matched, Declined);
            }
            Event::PartnerStatus { status, relayable } => {
                let answer = match classify_pay(status) {
                    Outcome::Success if relayable => PartnerAnswer::Approved,
                    Outcome::Success => PartnerAnswer::ApprovedOtherAmount,
                    Outcome::Unknown => PartnerAnswer::Unknown,
                    Outcome::Failed => PartnerAnswer::Declined,
                };
                self.partner_answer(answer, false);
            }
            Event::PartnerNotSent => self.partner_answer(PartnerAnswer::Declined, true),
            Event::PartnerLost => self.partner_answer(PartnerAnswer::Unknown, false),
            Event::PosConfirm => self.advice(AdviceKind::Confirmation),
            Event::PosReverse => self.advice(AdviceKind::Reversal),
            Event::RecoverStale => {
                if self.cas(Forwarded, Unknown) {
                    self.reversals_queued += 1;
                }
                self.cas(Matched, Declined);
            }
        }
    }

    fn check_invariants(&self) {
        let confirmed = self.history.contains(&PaymentState::Confirmed);
        let reversed = self.history.contains(&PaymentState::Reversed);
        assert!(!(confirmed && reversed), "confirmed and reversed: {self:?}");
        assert!(
            self.confirmations_queued == 0 || self.reversals_queued == 0,
            "both a confirmation and a reversal queued: {self:?}"
        );
        assert!(self.confirmations_queued <= 1, "{self:?}");
        assert!(self.reversals_queued <= 1, "{self:?}");
        // A confirmation goes out only for a payment the partner approved and the POS confirmed.
        assert_eq!(
            self.confirmations_queued == 1,
            self.state == PaymentState::Confirmed,
            "{self:?}"
        );
        // A reversal goes out iff the partner was (or may have been) asked and did not
        // decline, and the payment is not (or can no longer be) completed: it is then UNKNOWN
        // or REVERSED. Before the answer (FORWARDED) and while APPROVED nothing is owed yet.
        let owes_reversal = self.partner_maybe_asked
            && !self.partner_declined
            && matches!(self.state, PaymentState::Unknown | PaymentState::Reversed);
        assert_eq!(self.reversals_queued == 1, owes_reversal, "{self:?}");
        if self.reversals_queued == 1 {
            assert!(
                self.partner_maybe_asked,
                "reversal of a pay never sent: {self:?}"
            );
        }
        if !self.partner_maybe_asked {
            assert_eq!(self.reversals_queued + self.confirmations_queued, 0);
        }
        // The payment only ever moved along legal edges.
        for pair in self.history.windows(2) {
            assert!(pair[0].can_move_to(pair[1]), "{:?}", self.history);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_state_machine_keeps_its_promises(events in prop::collection::vec(event(), 0..24)) {
        let mut payment = Payment::new();
        for event in events {
            let before = payment.clone();
            payment.apply(event);
            payment.check_invariants();
            if is_final(before.state) {
                // Final states absorb: no move, nothing more queued.
                prop_assert_eq!(payment.state, before.state, "{:?} after {:?}", event, before);
                prop_assert_eq!(payment.reversals_queued, before.reversals_queued);
                prop_assert_eq!(payment.confirmations_queued, before.confirmations_queued);
            }
        }
    }

    #[test]
    fn every_decision_on_every_state_is_legal(state in prop::sample::select(PaymentState::ALL.to_vec())) {
        for kind in [AdviceKind::Confirmation, AdviceKind::Reversal] {
            match decide_advice(kind, state) {
                AdviceDecision::Apply { to, send_to_partner } => {
                    prop_assert!(state.can_move_to(to));
                    // Only a payment the partner approved is advised to it.
                    prop_assert_eq!(send_to_partner, state == PaymentState::Approved);
                }
                AdviceDecision::MarkReversedByPos => {
                    prop_assert_eq!(kind, AdviceKind::Reversal);
                    prop_assert!(matches!(state, PaymentState::Matched | PaymentState::Forwarded));
                }
                AdviceDecision::Absorb | AdviceDecision::Refuse(_) => {}
            }
        }
        for answer in [
            PartnerAnswer::Approved,
            PartnerAnswer::ApprovedOtherAmount,
            PartnerAnswer::Declined,
            PartnerAnswer::Unknown,
        ] {
            for pos in [false, true] {
                let s = settle_partner_answer(answer, pos);
                prop_assert!(PaymentState::Forwarded.can_move_to(s.state));
            }
        }
    }

    #[test]
    fn classification_is_total_and_404_only_delivers_reversals(status in any::<u16>()) {
        let pay = classify_pay(status);
        if (200..=299).contains(&status) {
            prop_assert_eq!(pay, Outcome::Success);
        } else {
            prop_assert_ne!(pay, Outcome::Success);
        }
        for op in [Operation::ConfirmPayment, Operation::ReversePayment] {
            let advice = classify_advice(status, op, None, None);
            prop_assert_eq!(
                advice == AdviceAnswer::Delivered,
                (200..=299).contains(&status) || (status == 404 && op == Operation::ReversePayment)
            );
            // Nothing a gateway, a redirect or a throttle says ends an advice.
            if (300..=399).contains(&status) || [401, 403, 408, 425, 429].contains(&status)
                || ((500..=599).contains(&status) && status != 501)
            {
                let not_yet = matches!(advice, AdviceAnswer::NotYet { .. });
                prop_assert!(not_yet, "{} is final", status);
            }
        }
    }
}

/// The model is not vacuous: the paths of DESIGN §5 end where the design says.
#[test]
fn the_model_follows_the_documented_paths() {
    use Event::*;
    let run = |events: &[Event]| {
        let mut p = Payment::new();
        for e in events {
            p.apply(*e);
            p.check_invariants();
        }
        (p.state, p.confirmations_queued, p.reversals_queued)
    };
    let ok = PartnerStatus {
        status: 201,
        relayable: true,
    };
    use PaymentState::*;
    assert_eq!(run(&[Scan, Forward, ok, PosConfirm]), (Confirmed, 1, 0));
    assert_eq!(run(&[Scan, Forward, ok, PosReverse]), (Reversed, 0, 1));
    assert_eq!(
        run(&[Scan, Forward, PartnerLost, PosReverse]),
        (Reversed, 0, 1)
    );
    assert_eq!(run(&[Scan, PosReverse, Forward, ok]), (Reversed, 0, 1));
    assert_eq!(
        run(&[Scan, Forward, RecoverStale, ok, PosConfirm]),
        (Unknown, 0, 1)
    );
    let declined = PartnerStatus {
        status: 400,
        relayable: true,
    };
    assert_eq!(
        run(&[Scan, Forward, declined, PosReverse]),
        (Declined, 0, 0)
    );
    assert_eq!(run(&[Scan, Forward, PartnerNotSent]), (Declined, 0, 0));
    assert_eq!(run(&[WindowEnd, Scan, PosReverse]), (Expired, 0, 0));
    assert_eq!(run(&[PosReverse, Scan]), (Reversed, 0, 0));
    assert_eq!(run(&[Scan, RecoverStale, Forward]), (Declined, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// (b) QR round trips.
// ---------------------------------------------------------------------------------------------

/// Non-empty text of at most `max` characters: ASCII mostly, with multi-byte characters,
/// since lengths count characters.
fn text(max: usize) -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        8 => proptest::char::range(' ', '~'),
        1 => Just('é'),
        1 => Just('北'),
        1 => Just('😀'),
        1 => any::<char>(),
    ];
    prop::collection::vec(ch, 1..=max).prop_map(|v| v.into_iter().collect())
}

const CURRENCIES: [&str; 6] = ["710", "392", "048", "840", "978", "156"];

fn merchant() -> impl Strategy<Value = MerchantInfo> {
    (
        "[0-9]{4}",
        text(25),
        text(15),
        "[A-Z]{2}",
        prop::option::of(text(10)),
    )
        .prop_map(
            |(category_code, name, city, country_code, postal_code)| MerchantInfo {
                category_code,
                name,
                city,
                country_code,
                postal_code,
            },
        )
}

fn partner_template() -> impl Strategy<Value = StaticTemplate> {
    (
        text(20),
        prop::collection::btree_map(1u8..=99, text(15), 0..=3),
    )
        .prop_map(|(guid, values)| StaticTemplate {
            tag: None,
            guid,
            sub_objects: values
                .into_iter()
                .map(|(id, value)| SubObject { id, value })
                .collect(),
        })
}

fn qr_content() -> impl Strategy<Value = QrContent> {
    // Tag 26 is 00(provider) + 01(tranId) with 8 characters of headers: 99 in all.
    let ids = text(30).prop_flat_map(|provider| {
        let room = 91 - provider.chars().count();
        (Just(provider), text(room))
    });
    (
        ids,
        prop::collection::vec(partner_template(), 0..=3),
        prop::option::of((
            0i64..1_000_000_000,
            prop::sample::select(CURRENCIES.to_vec()),
        )),
        any::<bool>(),
        prop::option::of(merchant()),
        prop::option::of(text(25)),
        prop::option::of(text(25)),
    )
        .prop_map(
            |(
                (provider_id, tran_id),
                partner_templates,
                amount,
                explicit,
                merchant,
                terminal,
                reference,
            )| {
                let amount = amount.map(|(minor_units, currency)| Money {
                    minor_units,
                    currency: currency.to_owned(),
                });
                QrContent {
                    provider_id,
                    tran_id,
                    partner_templates,
                    currency: amount
                        .as_ref()
                        .filter(|_| explicit)
                        .map(|a| a.currency.clone()),
                    amount,
                    merchant,
                    terminal_label: terminal,
                    reference_label: reference,
                }
            },
        )
}

const SCHEMES: [QrScheme; 3] = [
    QrScheme::ElectrumMerchantMinimal,
    QrScheme::EmvcoMerchant,
    QrScheme::PseudoEmvcoMerchant,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn encoded_payloads_parse_back(content in qr_content()) {
        for scheme in SCHEMES {
            let encoded = qr::encode(scheme, &content);
            // Everything is within the format's limits: only a compliant payload without
            // merchant data or a currency may be refused, and it must say so.
            let payload = match encoded {
                Ok(p) => p,
                Err(qr::EncodeError::Missing { .. })
                    if scheme == QrScheme::EmvcoMerchant
                        && (content.merchant.is_none() || content.amount.is_none()) => continue,
                Err(e) => return Err(TestCaseError::fail(format!("{scheme:?}: {e}"))),
            };
            let parsed = qr::parse(&payload)
                .map_err(|e| TestCaseError::fail(format!("{scheme:?} {payload:?}: {e}")))?;
            prop_assert_eq!(parsed.tran_id(&content.provider_id), Some(content.tran_id.as_str()));
            for (template, tag) in content.partner_templates.iter().zip(27u8..) {
                let object = parsed.get(tag).expect("template written");
                prop_assert_eq!(object.sub_value(0), Some(template.guid.as_str()));
                for sub in &template.sub_objects {
                    prop_assert_eq!(object.sub_value(sub.id), Some(sub.value.as_str()));
                }
            }
            if scheme == QrScheme::ElectrumMerchantMinimal {
                prop_assert_eq!(parsed.crc(), None);
                continue;
            }
            // The CRC verifies, and is crc16 of everything before it, "6304" included.
            let crc = parsed.crc().expect("EMVCo payloads carry a CRC");
            let (body, tag) = payload.split_at(payload.len() - 4);
            prop_assert!(body.ends_with("6304"));
            prop_assert_eq!(qr::crc_hex(qr::crc16(body.as_bytes())), tag);
            prop_assert_eq!(qr::crc16(body.as_bytes()), crc);
            prop_assert_eq!(parsed.money(), content.amount.clone());
            prop_assert_eq!(
                parsed.point_of_initiation(),
                Some(if content.amount.is_some() { "12" } else { "11" })
            );
            if let Some(m) = &content.merchant {
                prop_assert_eq!(parsed.merchant_category_code(), Some(m.category_code.as_str()));
                prop_assert_eq!(parsed.merchant_name(), Some(m.name.as_str()));
                prop_assert_eq!(parsed.merchant_city(), Some(m.city.as_str()));
                prop_assert_eq!(parsed.country_code(), Some(m.country_code.as_str()));
                prop_assert_eq!(parsed.postal_code(), m.postal_code.as_deref());
            }
            prop_assert_eq!(parsed.terminal_label(), content.terminal_label.as_deref());
            prop_assert_eq!(parsed.reference_label(), content.reference_label.as_deref());
        }
    }

    /// The hub's own codes: a minted tranId (32 lower-case hex) and its provider id.
    #[test]
    fn hub_tran_ids_round_trip(
        tran_id in "[0-9a-f]{32}",
        provider in "[a-z]{2,8}(\\.[a-z]{2,8}){1,2}",
        minor in 1i64..100_000_000,
    ) {
        let content = QrContent {
            amount: Some(Money { minor_units: minor, currency: "710".into() }),
            merchant: Some(MerchantInfo {
                category_code: "5411".into(),
                name: "DEMO STORE".into(),
                city: "CAPE TOWN".into(),
                country_code: "ZA".into(),
                postal_code: None,
            }),
            terminal_label: Some("T0000001".into()),
            ..QrContent::new(provider.clone(), tran_id.clone())
        };
        for scheme in SCHEMES {
            let payload = qr::encode(scheme, &content).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let parsed = qr::parse(&payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.tran_id(&provider), Some(tran_id.as_str()));
            prop_assert_eq!(parsed.crc().is_some(), scheme != QrScheme::ElectrumMerchantMinimal);
        }
    }

    /// Unconstrained content (any sub-tag ids, repeats, over-long values): whatever the
    /// encoders accept must parse back.
    #[test]
    fn whatever_encodes_parses(
        provider in text(20),
        tran_id in text(75),
        templates in prop::collection::vec(
            (text(20), prop::collection::vec((0u8..=120, text(20)), 0..4)),
            0..3,
        ),
    ) {
        let content = QrContent {
            partner_templates: templates
                .into_iter()
                .map(|(guid, subs)| StaticTemplate {
                    tag: None,
                    guid,
                    sub_objects: subs.into_iter().map(|(id, value)| SubObject { id, value }).collect(),
                })
                .collect(),
            ..QrContent::new(provider.clone(), tran_id.clone())
        };
        for scheme in [QrScheme::ElectrumMerchantMinimal, QrScheme::PseudoEmvcoMerchant] {
            if let Ok(payload) = qr::encode(scheme, &content) {
                let parsed = qr::parse(&payload)
                    .map_err(|e| TestCaseError::fail(format!("{scheme:?} {payload:?}: {e}")))?;
                prop_assert_eq!(parsed.tran_id(&provider), Some(tran_id.as_str()));
            }
        }
    }

    #[test]
    fn the_parser_never_panics(s in "(000201)?[0-9A-Za-z .*é北😀]{0,120}") {
        let _ = qr::parse(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any single-character substitution of an EMVCo payload never passes as CRC-verified.
    #[test]
    fn a_damaged_emvco_payload_never_verifies(
        content in (qr_content(), merchant(), 0i64..1_000_000_000).prop_map(|(mut c, m, units)| {
            c.merchant.get_or_insert(m);
            c.amount.get_or_insert(Money { minor_units: units, currency: "710".into() });
            c.currency = None;
            c
        }),
        at in any::<prop::sample::Index>(),
        replacement in proptest::char::range(' ', '~'),
    ) {
        let payload = qr::encode(QrScheme::EmvcoMerchant, &content).expect("encodes");
        let mut chars: Vec<char> = payload.chars().collect();
        let i = at.index(chars.len());
        // ASCII for ASCII: a one-byte change, a burst the CRC always detects. (A multi-byte
        // character for one byte changes the length, which no CRC promises to catch.)
        prop_assume!(chars[i].is_ascii() && chars[i] != replacement);
        // Lower-case hex in the CRC itself is the same number, not damage.
        prop_assume!(!(i + 4 >= chars.len() && chars[i].eq_ignore_ascii_case(&replacement)));
        chars[i] = replacement;
        let damaged: String = chars.into_iter().collect();
        if let Ok(parsed) = qr::parse(&damaged) {
            prop_assert_eq!(parsed.crc(), None, "{:?}", damaged);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (c) The schema against the types.
// ---------------------------------------------------------------------------------------------

/// Any JSON value of bounded depth.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value for one field of a body: mostly ones the schema accepts, sometimes anything.
fn field_value(valid: Value) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => Just(Some(valid)),
        2 => Just(None),
        2 => Just(Some(Value::Null)),
        1 => json_value().prop_map(Some),
    ]
}

fn originator() -> Value {
    json!({
        "institution": {"id": "1", "name": "Demo Retail"},
        "terminalId": "T0000001",
        "merchant": {
            "merchantType": "5411",
            "merchantId": "000000000012345",
            "merchantName": {"name": "DEMO STORE", "city": "CAPE TOWN", "region": "WC", "country": "ZA"}
        }
    })
}

/// Valid bodies of each request, every field present, to be mutated field by field.
fn full_bodies() -> Vec<(&'static str, Value)> {
    let time = json!("2021-05-03T11:04:04.123+02:00");
    let tpi =
        json!([{"institutionId": "1", "transactionIdentifier": "REF"}, {"institutionId": "2"}]);
    let amounts = json!({"requestAmount": {"amount": 15000, "currency": "710", "ledgerIndicator": "DEBIT"},
                         "additionalAmounts": {"tip": {"amount": 1, "currency": "710"}}});
    let institution = json!({"id": "wallet-1", "name": "Wallet"});
    vec![
        (
            "CreateQrCodeRequest",
            json!({
                "id": "qr-1", "time": time, "originator": originator(),
                "client": {"id": "pos-1", "name": "Demo Retail"},
                "thirdPartyIdentifiers": tpi, "rrn": "1", "stan": "2", "amounts": amounts,
                "customer": {"firstName": "Jo", "dateOfBirth": "1990-01-01T00:00:00Z",
                             "addressDetails": {"country": "ZA"}, "msisdn": "+27821234567"},
                "qrProperties": {"scheme": "EMVCO_MERCHANT", "singleUse": true,
                                 "expiryDate": "2031-01-01T00:00:00Z",
                                 "value": {"amount": 5, "currency": "710"}},
            }),
        ),
        (
            "PaymentRequest",
            json!({
                "id": "pay-1", "time": time, "originator": originator(),
                "client": {"id": "pos-1", "name": "Demo Retail"},
                "settlementEntity": institution, "receiver": institution,
                "thirdPartyIdentifiers": tpi,
                "slipData": {"messageLines": [{"text": "hi", "cut": true}], "slipWidth": 40},
                "basketRef": "b", "tranType": "GOODS_AND_SERVICES", "srcAccType": "DEFAULT",
                "destAccType": "CHEQUE", "stan": "1", "rrn": "2", "partner": institution,
                "amounts": amounts, "tranId": "f82d7f64feea4f2ab24da94aaf5c2941",
                "partnerPaymentToken": "tok",
            }),
        ),
        (
            "ScanNotification",
            json!({
                "id": "scan-1", "time": time, "partner": institution,
                "settlementEntity": institution, "receiver": institution,
                "thirdPartyIdentifiers": tpi, "amounts": amounts,
                "tranId": "f82d7f64feea4f2ab24da94aaf5c2941", "partnerPaymentToken": "tok",
            }),
        ),
        (
            "PaymentConfirmation",
            json!({
                "id": "c-1", "requestId": "pay-1", "time": time, "thirdPartyIdentifiers": tpi,
                "stan": "1", "rrn": "2", "amounts": amounts, "partner": institution, "tranId": "t",
            }),
        ),
        (
            "PaymentReversal",
            json!({
                "id": "r-1", "requestId": "pay-1", "time": time, "thirdPartyIdentifiers": tpi,
                "stan": "1", "rrn": "2", "amounts": amounts, "partner": institution, "tranId": "t",
                "reversalReason": "CANCELLED",
            }),
        ),
    ]
}

/// The API's path for one body: if the schema passes, the type must take it, and the type's
/// JSON must pass the schema again.
fn accepts_what_the_schema_accepts(name: &str, body: &Value) -> Result<(), TestCaseError> {
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(
        body: &Value,
        schema: &schema::Schema,
    ) -> Result<(), TestCaseError> {
        if !schema::check(body, schema).is_empty() {
            return Ok(());
        }
        let typed: T = serde_json::from_value(body.clone()).map_err(|e| {
            TestCaseError::fail(format!(
                "{}: schema passes, type refuses: {e}\n{body}",
                schema.name
            ))
        })?;
        let back = serde_json::to_value(&typed).expect("serialises");
        let errors = schema::check(&back, schema);
        prop_assert!(errors.is_empty(), "{}: {:?}\n{}", schema.name, errors, back);
        Ok(())
    }
    match name {
        "CreateQrCodeRequest" => {
            round::<CreateQrCodeRequest>(body, &schema::CREATE_QR_CODE_REQUEST)
        }
        "PaymentRequest" => round::<PaymentRequest>(body, &schema::PAYMENT_REQUEST),
        "ScanNotification" => round::<ScanNotification>(body, &schema::SCAN_NOTIFICATION),
        "PaymentConfirmation" => round::<PaymentConfirmation>(body, &schema::PAYMENT_CONFIRMATION),
        "PaymentReversal" => round::<PaymentReversal>(body, &schema::PAYMENT_REVERSAL),
        other => unreachable!("{other}"),
    }
}

/// A full valid body with each top-level field kept, dropped, nulled or replaced at random.
fn mutated_body() -> impl Strategy<Value = (&'static str, Value)> {
    prop::sample::select(full_bodies()).prop_flat_map(|(name, body)| {
        let fields: Vec<(String, Value)> = body
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let values: Vec<_> = fields.iter().map(|(_, v)| field_value(v.clone())).collect();
        (Just(name), Just(fields), values).prop_map(|(name, fields, values)| {
            let mut out = serde_json::Map::new();
            for ((key, _), value) in fields.into_iter().zip(values) {
                if let Some(v) = value {
                    out.insert(key, v);
                }
            }
            (name, Value::Object(out))
        })
    })
}

const SCHEMAS: [&schema::Schema; 8] = [
    &schema::CREATE_QR_CODE_REQUEST,
    &schema::PAYMENT_REQUEST,
    &schema::SCAN_NOTIFICATION,
    &schema::PAYMENT_CONFIRMATION,
    &schema::PAYMENT_REVERSAL,
    &schema::PAYMENT_RESPONSE,
    &schema::ERROR_DETAIL,
    &schema::AMOUNTS,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn the_schema_check_never_panics(value in json_value()) {
        for s in SCHEMAS {
            let errors = schema::check(&value, s);
            // A non-object body is one error, at "body".
            if !value.is_object() {
                prop_assert_eq!(errors.len(), 1);
                prop_assert_eq!(errors[0].field.as_str(), "body");
            }
        }
    }

    #[test]
    fn random_json_that_passes_the_schema_is_taken_by_the_type(value in json_value()) {
        for (name, _) in full_bodies() {
            accepts_what_the_schema_accepts(name, &value)?;
        }
    }

    #[test]
    fn mutated_bodies_that_pass_the_schema_are_taken_by_the_type(
        (name, body) in mutated_body()
    ) {
        accepts_what_the_schema_accepts(name, &body)?;
    }
}

#[test]
fn the_full_bodies_are_valid() {
    for (name, body) in full_bodies() {
        accepts_what_the_schema_accepts(name, &body).expect("valid");
    }
    for (name, body) in full_bodies() {
        let s = match name {
            "CreateQrCodeRequest" => &schema::CREATE_QR_CODE_REQUEST,
            "PaymentRequest" => &schema::PAYMENT_REQUEST,
            "ScanNotification" => &schema::SCAN_NOTIFICATION,
            "PaymentConfirmation" => &schema::PAYMENT_CONFIRMATION,
            _ => &schema::PAYMENT_REVERSAL,
        };
        assert_eq!(schema::check(&body, s), vec![], "{name}");
    }
}
