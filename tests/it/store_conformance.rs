//! The same cases against both store backends: every case is an `async fn(SharedStore)`,
//! and `conformance!` runs each on a fresh PostgreSQL database (`postgres::<case>`) and on
//! a fresh SQLite file (`sqlite::<case>`). See `tests/it/common/db.rs` for the databases.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use chrono::{DateTime, Duration, SubsecRound, TimeZone, Utc};
use qrhub::domain::{AdviceKind, PaymentState};
use qrhub::store::*;
use serde_json::json;
use uuid::Uuid;

use crate::common::db::TestDb;

const CLIENT: &str = "pos-1";
const PARTNER: &str = "wallet-1";

/// A fixed moment with microseconds, so stored times compare exactly.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap() + Duration::microseconds(123_456)
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn new_tran() -> String {
    Uuid::new_v4().simple().to_string()
}

fn new_payment(tran_id: &str, message_id: &str) -> NewPayment {
    NewPayment {
        id: Uuid::new_v4(),
        client_id: CLIENT.into(),
        message_id: message_id.into(),
        tran_id: tran_id.into(),
        amount_minor: 1234,
        currency: "USD".into(),
        request: json!({"id": message_id, "tranId": tran_id, "amount": 12.34, "nested": {"a": [1, 2]}}),
        created_at: t0(),
        scan_deadline: t0() + secs(30),
        events: Vec::new(),
        wake: None,
    }
}

fn scan(tran_id: &str, partner: &str, scan_id: &str, at: DateTime<Utc>) -> ScanClaim {
    ScanClaim {
        tran_id: tran_id.into(),
        partner_id: partner.into(),
        scan_message_id: scan_id.into(),
        partner_payment_token: Some(format!("token-{scan_id}")),
        partner_message_id: format!("hub-{scan_id}"),
        at,
        to: PaymentState::Matched,
        events: Vec::new(),
    }
}

fn outbox_msg(payment_id: Uuid, kind: AdviceKind, at: DateTime<Utc>) -> NewOutboxMessage {
    let message_id = Uuid::new_v4().to_string();
    NewOutboxMessage {
        id: Uuid::new_v4(),
        payment_id,
        partner_id: PARTNER.into(),
        kind,
        body: json!({"id": message_id, "kind": kind.as_str()}),
        message_id,
        created_at: at,
        expires_at: at + Duration::days(3),
        first_try_until: None,
    }
}

fn advice(
    kind: AdviceKind,
    message_id: &str,
    request_id: &str,
    payment_id: Option<Uuid>,
) -> AdviceRecord {
    AdviceRecord {
        client_id: CLIENT.into(),
        message_id: message_id.into(),
        kind,
        request_id: request_id.into(),
        payment_id,
        body: json!({"id": message_id, "requestId": request_id}),
        received_at: t0() + secs(60),
    }
}

/// A stored payment, waiting for its scan.
async fn waiting(store: &SharedStore) -> NewPayment {
    let p = new_payment(&new_tran(), &Uuid::new_v4().to_string());
    assert_eq!(
        store.insert_payment(&p).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    p
}

/// A stored payment moved to FORWARDED at `at`.
async fn forwarded(store: &SharedStore, at: DateTime<Utc>) -> Uuid {
    let p = waiting(store).await;
    let claim = scan(&p.tran_id, PARTNER, &Uuid::new_v4().to_string(), at);
    assert!(matches!(
        store.claim_for_scan(&claim).await.unwrap(),
        ScanClaimOutcome::Claimed(_)
    ));
    assert!(store
        .transition(p.id, PaymentState::Matched, PaymentState::Forwarded, at)
        .await
        .unwrap());
    p.id
}

fn answer(
    payment_id: Uuid,
    to: PaymentState,
    reversal: Option<NewOutboxMessage>,
) -> PartnerAnswerRecord {
    PartnerAnswerRecord {
        payment_id,
        to,
        status: Some(if to == PaymentState::Approved {
            201
        } else {
            504
        }),
        body: Some(json!({"status": to.as_str()})),
        approved_minor: None,
        amount_refused: false,
        reversal,
        expected_reversed_by_pos: false,
        at: t0() + secs(5),
        events: Vec::new(),
        wake: None,
    }
}

/// A stored payment the partner approved.
async fn approved(store: &SharedStore) -> Uuid {
    let id = forwarded(store, t0() + secs(1)).await;
    assert!(store
        .record_partner_answer(&answer(id, PaymentState::Approved, None))
        .await
        .unwrap());
    id
}

async fn state_of(store: &SharedStore, id: Uuid) -> PaymentState {
    store
        .payment(id)
        .await
        .unwrap()
        .expect("payment exists")
        .state
}

/// One outbox row, PENDING and due at `t0`.
async fn one_outbox_row(store: &SharedStore) -> OutboxMessage {
    let id = forwarded(store, t0()).await;
    let msg = outbox_msg(id, AdviceKind::Reversal, t0());
    assert!(store
        .record_partner_answer(&answer(id, PaymentState::Unknown, Some(msg)))
        .await
        .unwrap());
    let mut rows = store.outbox_for_payment(id).await.unwrap();
    assert_eq!(rows.len(), 1);
    rows.remove(0)
}

async fn outbox_row(store: &SharedStore, msg: &OutboxMessage) -> OutboxMessage {
    store
        .outbox_for_payment(msg.payment_id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == msg.id)
        .expect("outbox row exists")
}

// ---------------------------------------------------------------------------------------
// Cases

async fn migrate_twice_and_ping(store: SharedStore) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn qr_codes(store: SharedStore) {
    let code = QrCodeRecord {
        tran_id: new_tran(),
        client_id: CLIENT.into(),
        message_id: "create-1".into(),
        scheme: "EMVCO".into(),
        payload: "000201010212".into(),
        created_at: t0(),
        expires_at: t0() + Duration::minutes(10),
        terms: qrhub::domain::CodeTerms {
            amount: Some((1000, "710".into())),
            part_payment_allowed: true,
            over_payment_allowed: false,
        },
    };
    assert_eq!(
        store.insert_qr_code(&code).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        store.qr_code(&code.tran_id).await.unwrap(),
        Some(code.clone())
    );

    // Same client and message id: a duplicate, whatever the tranId; nothing new stored.
    let again = QrCodeRecord {
        tran_id: new_tran(),
        ..code.clone()
    };
    assert_eq!(
        store.insert_qr_code(&again).await.unwrap(),
        InsertOutcome::Duplicate
    );
    assert_eq!(store.qr_code(&again.tran_id).await.unwrap(), None);
    assert_eq!(
        store.qr_code(&code.tran_id).await.unwrap(),
        Some(code.clone())
    );

    // The message id is unique per client only.
    let other_client = QrCodeRecord {
        tran_id: new_tran(),
        client_id: "pos-2".into(),
        ..code.clone()
    };
    assert_eq!(
        store.insert_qr_code(&other_client).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(store.qr_code("no-such-tran").await.unwrap(), None);
}

fn code_for(client_id: &str, message_id: &str) -> QrCodeRecord {
    QrCodeRecord {
        tran_id: new_tran(),
        client_id: client_id.into(),
        message_id: message_id.into(),
        scheme: "EMVCO".into(),
        payload: format!("000201010212{message_id}"),
        created_at: t0(),
        expires_at: t0() + Duration::minutes(10),
        terms: qrhub::domain::CodeTerms {
            amount: None,
            part_payment_allowed: false,
            over_payment_allowed: true,
        },
    }
}

/// Runs `write` on each of `items` at once, each from a task of its own, as concurrent
/// requests do; the answers in the items' order.
async fn all_at_once<T, R, Fut>(
    store: &SharedStore,
    items: &[T],
    write: impl Fn(SharedStore, T) -> Fut,
) -> Vec<R>
where
    T: Clone,
    R: Send + 'static,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let tasks: Vec<_> = items
        .iter()
        .map(|item| tokio::spawn(write(Arc::clone(store), item.clone())))
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Inserts `codes` all at once.
async fn insert_concurrently(
    store: &SharedStore,
    codes: &[QrCodeRecord],
) -> Vec<StoreResult<InsertOutcome>> {
    all_at_once(store, codes, |store, code| async move {
        store.insert_qr_code(&code).await
    })
    .await
}

/// Codes inserted at the same moment (which PostgreSQL's store writes many to a statement)
/// each get their own answer: a repeated request id is a duplicate whichever arrives second,
/// and a code the database refuses fails alone, the others stored.
async fn concurrent_codes_each_get_their_own_answer(store: SharedStore) {
    let mut codes: Vec<QrCodeRecord> = (0..40)
        .map(|i| code_for(CLIENT, &format!("many-{i}")))
        .collect();
    // The same request twice, and a tranId that clashes with another code's.
    codes.push(code_for(CLIENT, "many-7"));
    let mut clash = code_for("pos-2", "clash");
    clash.tran_id = codes[3].tran_id.clone();
    codes.push(clash);
    let outcomes = insert_concurrently(&store, &codes).await;

    let same_request: Vec<_> = [7, 40]
        .iter()
        .map(|&i| outcomes[i].as_ref().unwrap().clone())
        .collect();
    let mut sorted = same_request.clone();
    sorted.sort_by_key(|o| *o == InsertOutcome::Duplicate);
    assert_eq!(sorted, [InsertOutcome::Inserted, InsertOutcome::Duplicate]);
    let (clashing, other) = (&outcomes[41], &outcomes[3]);
    assert!(
        clashing.is_err() != other.is_err(),
        "exactly one of two codes with one tranId is stored: {clashing:?} {other:?}"
    );
    for (i, outcome) in outcomes.iter().enumerate() {
        if ![3, 7, 40, 41].contains(&i) {
            assert_eq!(
                outcome.as_ref().unwrap(),
                &InsertOutcome::Inserted,
                "code {i}"
            );
        }
        if let Ok(InsertOutcome::Inserted) = outcome {
            assert_eq!(
                store.qr_code(&codes[i].tran_id).await.unwrap().as_ref(),
                Some(&codes[i]),
                "code {i} is stored as sent"
            );
        }
    }
    assert_eq!(
        store.qr_code(&codes[40].tran_id).await.unwrap().is_some(),
        same_request[1] == InsertOutcome::Inserted,
        "a duplicate stores nothing"
    );
}

/// Payments inserted at the same moment each get their own answer, and only a stored
/// payment keeps its events: a repeated id and a busy tranId lose to whichever came first,
/// a reversed id is refused.
async fn concurrent_pays_each_get_their_own_answer(store: SharedStore) {
    let reversal = advice(AdviceKind::Reversal, "rev-gone", "gone-1", None);
    store.insert_orphan_reversal(&reversal).await.unwrap();
    let with_event = |tran_id: &str, message_id: &str| {
        let mut p = new_payment(tran_id, message_id);
        p.events = vec![NewEvent::new(
            event_kind::PAY,
            Direction::In,
            tran_id,
            CLIENT,
            t0(),
            "RECEIVED",
        )
        .message(message_id)
        .body(Some(json!({"id": message_id})))];
        p
    };
    let mut pays: Vec<NewPayment> = (0..30)
        .map(|i| with_event(&new_tran(), &format!("pay-{i}")))
        .collect();
    pays.push(with_event(&new_tran(), "pay-5"));
    pays.push(with_event(&pays[6].tran_id.clone(), "pay-busy"));
    pays.push(with_event(&new_tran(), "gone-1"));
    let outcomes = all_at_once(&store, &pays, |store, p| async move {
        store.insert_payment(&p).await.unwrap()
    })
    .await;

    use NewPaymentOutcome::*;
    let pair = |a: usize, b: usize| {
        let mut both = [outcomes[a].clone(), outcomes[b].clone()];
        both.sort_by_key(|o| *o != Inserted);
        both
    };
    assert_eq!(pair(5, 30), [Inserted, DuplicateId]);
    assert_eq!(pair(6, 31), [Inserted, TranIdInUse]);
    assert_eq!(outcomes[32], AlreadyReversed);
    for (i, (pay, outcome)) in pays.iter().zip(&outcomes).enumerate() {
        if ![5, 6, 30, 31, 32].contains(&i) {
            assert_eq!(*outcome, Inserted, "pay {i}");
        }
        let stored = store.payment(pay.id).await.unwrap();
        let timeline = store.payment_timeline(pay.id, &pay.tran_id).await.unwrap();
        let own_events = timeline.iter().filter(|e| e.payment_id == Some(pay.id));
        if *outcome == Inserted {
            let stored = stored.unwrap();
            assert_eq!(
                (
                    &stored.message_id,
                    &stored.tran_id,
                    stored.amount_minor,
                    &stored.request
                ),
                (
                    &pay.message_id,
                    &pay.tran_id,
                    pay.amount_minor,
                    &pay.request
                ),
                "pay {i} is stored as sent"
            );
            assert_eq!(own_events.count(), 1, "pay {i} keeps its event");
        } else {
            assert_eq!(stored, None, "pay {i} is not stored");
            assert_eq!(own_events.count(), 0, "pay {i} leaves no event");
        }
    }
}

/// Partners' answers recorded at the same moment (which PostgreSQL's store writes many to a
/// statement) are each their own compare-and-set: a second answer for a payment finds it
/// moved, an answer that expected the wrong POS reversal loses, and only a winner keeps its
/// events and its values.
async fn concurrent_answers_are_each_their_own_compare_and_set(store: SharedStore) {
    let mut ids = Vec::new();
    let mut trans = std::collections::HashMap::new();
    for _ in 0..24 {
        let id = forwarded(&store, t0()).await;
        trans.insert(id, store.payment(id).await.unwrap().unwrap().tran_id);
        ids.push(id);
    }
    let event = |id: Uuid, outcome: &str| {
        NewEvent::new(
            event_kind::PAY_RESPONSE,
            Direction::Out,
            trans[&id].clone(),
            CLIENT,
            t0(),
            outcome,
        )
        .payment(id)
    };
    let mut answers: Vec<PartnerAnswerRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let to = if i % 3 == 0 {
                PaymentState::Declined
            } else {
                PaymentState::Approved
            };
            PartnerAnswerRecord {
                approved_minor: (to == PaymentState::Approved).then_some(1000 + i as i64),
                events: vec![event(id, to.as_str())],
                ..answer(id, to, None)
            }
        })
        .collect();
    // A second answer for payment 4, and one that expects a reversal payment 5 never had.
    answers.push(PartnerAnswerRecord {
        events: vec![event(ids[4], "SECOND")],
        ..answer(ids[4], PaymentState::Declined, None)
    });
    answers.push(PartnerAnswerRecord {
        expected_reversed_by_pos: true,
        events: vec![event(ids[5], "STALE")],
        ..answer(ids[5], PaymentState::Declined, None)
    });
    let won = all_at_once(&store, &answers, |store, a| async move {
        store.record_partner_answer(&a).await.unwrap()
    })
    .await;
    assert_eq!(
        won[4] as u8 + won[24] as u8,
        1,
        "one answer for payment 4 wins"
    );
    assert!(!won[25], "an answer that expected a reversal loses");
    for (i, a) in answers.iter().enumerate() {
        if i < 24 && i != 4 {
            assert!(won[i], "answer {i}");
        }
        let p = store.payment(a.payment_id).await.unwrap().unwrap();
        let timeline = store.payment_timeline(p.id, &p.tran_id).await.unwrap();
        let kept = timeline
            .iter()
            .filter(|e| e.outcome == a.events[0].outcome && e.kind == event_kind::PAY_RESPONSE)
            .count();
        if won[i] {
            assert_eq!(
                (p.state, p.approved_minor),
                (a.to, a.approved_minor),
                "answer {i}"
            );
            assert_eq!(kept, 1, "answer {i} keeps its event");
        } else {
            assert_eq!(kept, 0, "answer {i} leaves no event");
        }
    }
}

/// A confirmation of `id` (APPROVED → CONFIRMED) with its outbox row and one event.
async fn confirmation_of(store: &SharedStore, id: Uuid, advice_id: &str) -> ApplyAdvice {
    let p = store.payment(id).await.unwrap().unwrap();
    let at = t0() + secs(60);
    ApplyAdvice {
        advice: advice(AdviceKind::Confirmation, advice_id, &p.message_id, Some(id)),
        payment_id: id,
        from: PaymentState::Approved,
        to: Some(PaymentState::Confirmed),
        mark_reversed_by_pos: false,
        settlement: Some(Settlement {
            settled_minor: 1234,
            fee_minor: 12,
        }),
        outbox: Some(NewOutboxMessage {
            first_try_until: Some(at + secs(30)),
            ..outbox_msg(id, AdviceKind::Confirmation, at)
        }),
        events: vec![NewEvent::new(
            event_kind::CONFIRMATION,
            Direction::In,
            p.tran_id.clone(),
            CLIENT,
            at,
            advice_id,
        )
        .payment(id)],
        wake: None,
    }
}

/// Advices applied at the same moment (which PostgreSQL's store writes many to a statement)
/// are each what one applied alone would be: a second advice for a payment finds it moved,
/// an advice id already taken is a duplicate, and only an applied advice leaves its outbox
/// row, its event and its settlement.
async fn concurrent_advices_are_each_applied_as_if_alone(store: SharedStore) {
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(approved(&store).await);
    }
    let mut applies = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        applies.push(confirmation_of(&store, id, &format!("conf-{i}")).await);
    }
    // Payment 4 confirmed twice (another advice id), an advice id reused for payment 19's
    // only confirmation's twin (payment 18's id), and one expecting a state payment 7 is not in.
    applies.push(confirmation_of(&store, ids[4], "conf-4-again").await);
    let mut reused = confirmation_of(&store, ids[19], "conf-18").await;
    reused.outbox = None;
    applies[19] = reused;
    applies.push(ApplyAdvice {
        from: PaymentState::Forwarded,
        to: None,
        ..confirmation_of(&store, ids[7], "conf-7-stale").await
    });
    let outcomes = all_at_once(&store, &applies, |store, a| async move {
        store.apply_advice(&a).await.unwrap()
    })
    .await;

    use ApplyAdviceOutcome::*;
    let pair = |a: usize, b: usize| {
        let mut both = [outcomes[a].clone(), outcomes[b].clone()];
        both.sort_by_key(|o| *o != Applied);
        both
    };
    assert_eq!(pair(4, 20), [Applied, StateChanged]);
    assert_eq!(pair(18, 19), [Applied, DuplicateAdvice]);
    assert_eq!(outcomes[21], StateChanged);
    for (i, apply) in applies.iter().enumerate() {
        if ![4, 18, 19, 20, 21].contains(&i) {
            assert_eq!(outcomes[i], Applied, "advice {i}");
        }
        let applied = outcomes[i] == Applied;
        let p = store.payment(apply.payment_id).await.unwrap().unwrap();
        let outbox = store.outbox_for_payment(apply.payment_id).await.unwrap();
        let queued = apply
            .outbox
            .as_ref()
            .is_some_and(|m| outbox.iter().any(|o| o.id == m.id));
        assert_eq!(
            queued,
            applied && apply.outbox.is_some(),
            "advice {i}'s outbox row"
        );
        let timeline = store.payment_timeline(p.id, &p.tran_id).await.unwrap();
        let kept = timeline
            .iter()
            .filter(|e| e.outcome == apply.events[0].outcome)
            .count();
        assert_eq!(kept, usize::from(applied), "advice {i}'s event");
        if applied {
            assert_eq!(
                (p.state, p.settled_minor, p.fee_minor),
                (PaymentState::Confirmed, Some(1234), Some(12)),
                "advice {i}"
            );
            assert_eq!(
                store
                    .advice(CLIENT, &apply.advice.message_id)
                    .await
                    .unwrap(),
                Some(apply.advice.clone()),
                "advice {i} is stored"
            );
        }
    }
}

async fn payment_insert_and_read(store: SharedStore) {
    let p = new_payment(&new_tran(), "pay-1");
    assert_eq!(
        store.insert_payment(&p).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    let expected = PaymentRecord {
        id: p.id,
        client_id: p.client_id.clone(),
        message_id: p.message_id.clone(),
        tran_id: p.tran_id.clone(),
        state: PaymentState::WaitingForScan,
        amount_minor: p.amount_minor,
        currency: p.currency.clone(),
        request: p.request.clone(),
        partner_id: None,
        partner_payment_token: None,
        scan_message_id: None,
        partner_message_id: None,
        reversed_by_pos: false,
        partner_status: None,
        partner_response: None,
        approved_minor: None,
        settled_minor: None,
        fee_minor: None,
        amount_refused: false,
        created_at: p.created_at,
        scan_deadline: p.scan_deadline,
        updated_at: p.created_at,
        pos_gone_at: None,
    };
    assert_eq!(store.payment(p.id).await.unwrap(), Some(expected.clone()));
    assert_eq!(
        store.payment_by_message(CLIENT, "pay-1").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.latest_payment_for_tran(&p.tran_id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(store.payment(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(
        store.payment_by_message("pos-2", "pay-1").await.unwrap(),
        None
    );
    assert_eq!(store.latest_payment_for_tran("nope").await.unwrap(), None);

    // The same message id again, even for another tranId: a duplicate, nothing stored.
    let dup = NewPayment {
        id: Uuid::new_v4(),
        ..new_payment(&new_tran(), "pay-1")
    };
    assert_eq!(
        store.insert_payment(&dup).await.unwrap(),
        NewPaymentOutcome::DuplicateId
    );
    assert_eq!(store.payment(dup.id).await.unwrap(), None);
    // The same message id again for the same tranId: still reported as the duplicate id.
    let dup_same_tran = NewPayment {
        id: Uuid::new_v4(),
        ..new_payment(&p.tran_id, "pay-1")
    };
    assert_eq!(
        store.insert_payment(&dup_same_tran).await.unwrap(),
        NewPaymentOutcome::DuplicateId
    );

    // Another client may use the same message id.
    let other = NewPayment {
        client_id: "pos-2".into(),
        ..new_payment(&new_tran(), "pay-1")
    };
    assert_eq!(
        store.insert_payment(&other).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
}

async fn tran_id_in_use_while_live(store: SharedStore) {
    let tran = new_tran();
    let first = new_payment(&tran, "pay-a");
    assert_eq!(
        store.insert_payment(&first).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    let mut second = new_payment(&tran, "pay-b");
    second.created_at = t0() + secs(40);
    assert_eq!(
        store.insert_payment(&second).await.unwrap(),
        NewPaymentOutcome::TranIdInUse
    );
    assert_eq!(store.payment(second.id).await.unwrap(), None);

    // EXPIRED frees the tranId.
    assert!(store
        .transition(
            first.id,
            PaymentState::WaitingForScan,
            PaymentState::Expired,
            t0() + secs(31)
        )
        .await
        .unwrap());
    assert_eq!(
        store.insert_payment(&second).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    assert_eq!(
        store
            .latest_payment_for_tran(&tran)
            .await
            .unwrap()
            .map(|p| p.id),
        Some(second.id)
    );

    // MATCHED holds it; DECLINED frees it.
    let claim = scan(&tran, PARTNER, "scan-b", t0() + secs(41));
    assert!(matches!(
        store.claim_for_scan(&claim).await.unwrap(),
        ScanClaimOutcome::Claimed(_)
    ));
    let mut third = new_payment(&tran, "pay-c");
    third.created_at = t0() + secs(50);
    assert_eq!(
        store.insert_payment(&third).await.unwrap(),
        NewPaymentOutcome::TranIdInUse
    );
    assert!(store
        .transition(
            second.id,
            PaymentState::Matched,
            PaymentState::Declined,
            t0() + secs(42)
        )
        .await
        .unwrap());
    assert_eq!(
        store.insert_payment(&third).await.unwrap(),
        NewPaymentOutcome::Inserted
    );

    // REVERSED (the POS gave up before the scan) frees it.
    assert!(store
        .transition(
            third.id,
            PaymentState::WaitingForScan,
            PaymentState::Reversed,
            t0() + secs(51)
        )
        .await
        .unwrap());
    let mut fourth = new_payment(&tran, "pay-d");
    fourth.created_at = t0() + secs(60);
    assert_eq!(
        store.insert_payment(&fourth).await.unwrap(),
        NewPaymentOutcome::Inserted
    );

    // APPROVED holds it.
    let claim = scan(&tran, PARTNER, "scan-d", t0() + secs(61));
    assert!(matches!(
        store.claim_for_scan(&claim).await.unwrap(),
        ScanClaimOutcome::Claimed(_)
    ));
    assert!(store
        .transition(
            fourth.id,
            PaymentState::Matched,
            PaymentState::Forwarded,
            t0() + secs(62)
        )
        .await
        .unwrap());
    assert!(store
        .record_partner_answer(&answer(fourth.id, PaymentState::Approved, None))
        .await
        .unwrap());
    let fifth = new_payment(&tran, "pay-e");
    assert_eq!(
        store.insert_payment(&fifth).await.unwrap(),
        NewPaymentOutcome::TranIdInUse
    );
    assert_eq!(
        store
            .latest_payment_for_tran(&tran)
            .await
            .unwrap()
            .map(|p| p.id),
        Some(fourth.id)
    );
}

async fn already_reversed(store: SharedStore) {
    let reversal = advice(AdviceKind::Reversal, "rev-1", "pay-9", None);
    assert_eq!(
        store.insert_orphan_reversal(&reversal).await.unwrap(),
        OrphanOutcome::Inserted
    );
    assert_eq!(
        store.advice(CLIENT, "rev-1").await.unwrap(),
        Some(reversal.clone())
    );
    // The same advice id again.
    let again = AdviceRecord {
        request_id: "pay-10".into(),
        ..reversal.clone()
    };
    assert_eq!(
        store.insert_orphan_reversal(&again).await.unwrap(),
        OrphanOutcome::DuplicateAdvice
    );
    assert_eq!(store.advice(CLIENT, "rev-1").await.unwrap(), Some(reversal));

    // A late pay with the reversed id is refused, and not stored.
    let late = new_payment(&new_tran(), "pay-9");
    assert_eq!(
        store.insert_payment(&late).await.unwrap(),
        NewPaymentOutcome::AlreadyReversed
    );
    assert_eq!(
        store.payment_by_message(CLIENT, "pay-9").await.unwrap(),
        None
    );
    // Another client's payment with that id is not affected.
    let other = NewPayment {
        client_id: "pos-2".into(),
        ..new_payment(&new_tran(), "pay-9")
    };
    assert_eq!(
        store.insert_payment(&other).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    // A confirmation does not block a pay.
    let confirmation = advice(AdviceKind::Confirmation, "conf-1", "pay-11", None);
    assert_eq!(
        store.insert_orphan_reversal(&confirmation).await.unwrap(),
        OrphanOutcome::Inserted
    );
    let p = new_payment(&new_tran(), "pay-11");
    assert_eq!(
        store.insert_payment(&p).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
}

/// A reversal that finds no payment, stored after the payment was: the reversal is for
/// that payment, and nothing is stored as an orphan.
async fn an_orphan_reversal_of_a_stored_payment_is_refused(store: SharedStore) {
    let paid = new_payment(&new_tran(), "pay-1");
    assert_eq!(
        store.insert_payment(&paid).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    let reversal = advice(AdviceKind::Reversal, "rev-1", "pay-1", None);
    assert_eq!(
        store.insert_orphan_reversal(&reversal).await.unwrap(),
        OrphanOutcome::PaymentExists
    );
    assert_eq!(store.advice(CLIENT, "rev-1").await.unwrap(), None);
}

async fn claim_for_scan_records_the_scan(store: SharedStore) {
    assert_eq!(
        store
            .claim_for_scan(&scan("unknown-tran", PARTNER, "scan-0", t0()))
            .await
            .unwrap(),
        ScanClaimOutcome::NothingWaiting
    );
    let p = waiting(&store).await;
    let claim = scan(&p.tran_id, PARTNER, "scan-1", t0() + secs(3));
    let ScanClaimOutcome::Claimed(record) = store.claim_for_scan(&claim).await.unwrap() else {
        panic!("the first scan must claim the waiting payment");
    };
    assert_eq!(record.id, p.id);
    assert_eq!(record.state, PaymentState::Matched);
    assert_eq!(record.partner_id.as_deref(), Some(PARTNER));
    assert_eq!(record.scan_message_id.as_deref(), Some("scan-1"));
    assert_eq!(
        record.partner_payment_token.as_deref(),
        Some("token-scan-1")
    );
    assert_eq!(record.partner_message_id.as_deref(), Some("hub-scan-1"));
    assert_eq!(record.updated_at, t0() + secs(3));
    assert_eq!(record.created_at, p.created_at);
    assert_eq!(store.payment(p.id).await.unwrap(), Some(record));

    let again = scan(&p.tran_id, "wallet-2", "scan-2", t0() + secs(4));
    assert_eq!(
        store.claim_for_scan(&again).await.unwrap(),
        ScanClaimOutcome::NothingWaiting
    );
    let stored = store.payment(p.id).await.unwrap().unwrap();
    assert_eq!(stored.partner_id.as_deref(), Some(PARTNER));
}

/// The hub's own scans claim straight into FORWARDED (one commit less per flow): the claim
/// is still a compare-and-set on WAITING_FOR_SCAN, and a claim the instance never followed
/// with its pay is recovered as unknown with a reversal queued, never declined.
async fn a_claim_goes_straight_to_forwarded(store: SharedStore) {
    let p = waiting(&store).await;
    let claim = ScanClaim {
        to: PaymentState::Forwarded,
        ..scan(&p.tran_id, PARTNER, "scan-f", t0() + secs(1))
    };
    let ScanClaimOutcome::Claimed(record) = store.claim_for_scan(&claim).await.unwrap() else {
        panic!("the scan must claim the waiting payment");
    };
    assert_eq!(record.state, PaymentState::Forwarded);
    assert_eq!(record.updated_at, t0() + secs(1));
    assert_eq!(record.partner_message_id.as_deref(), Some("hub-scan-f"));
    assert_eq!(state_of(&store, p.id).await, PaymentState::Forwarded);
    // Only one claim wins, whatever state it asks for.
    let second = ScanClaim {
        to: PaymentState::Forwarded,
        ..scan(&p.tran_id, "wallet-2", "scan-g", t0() + secs(2))
    };
    assert_eq!(
        store.claim_for_scan(&second).await.unwrap(),
        ScanClaimOutcome::NothingWaiting
    );
    // A claim into any other state is refused before the database is touched.
    let q = waiting(&store).await;
    let wrong = ScanClaim {
        to: PaymentState::Approved,
        ..scan(&q.tran_id, PARTNER, "scan-h", t0() + secs(1))
    };
    assert!(matches!(
        store.claim_for_scan(&wrong).await,
        Err(StoreError::IllegalTransition { .. })
    ));
    assert_eq!(state_of(&store, q.id).await, PaymentState::WaitingForScan);
    // Recovery: the claiming instance died before its pay's answer.
    let now = t0() + secs(120);
    let reversal_for = |p: &PaymentRecord| outbox_msg(p.id, AdviceKind::Reversal, now);
    let report = store
        .recover(now, t0() + secs(60), t0() + secs(60), &reversal_for)
        .await
        .unwrap();
    assert_eq!(report.forwarded_made_unknown, 1);
    assert_eq!(report.matched_never_sent, 0);
    assert_eq!(state_of(&store, p.id).await, PaymentState::Unknown);
    let rows = store.outbox_for_payment(p.id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kind, AdviceKind::Reversal);
}

async fn concurrent_claims_one_wins(store: SharedStore) {
    for i in 0..20 {
        let p = waiting(&store).await;
        let (a, b) = (
            scan(&p.tran_id, "wallet-a", &format!("a-{i}"), t0() + secs(1)),
            scan(&p.tran_id, "wallet-b", &format!("b-{i}"), t0() + secs(1)),
        );
        let (sa, sb) = (store.clone(), store.clone());
        let ta = tokio::spawn(async move { sa.claim_for_scan(&a).await });
        let tb = tokio::spawn(async move { sb.claim_for_scan(&b).await });
        let (ra, rb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
        let winners: Vec<&PaymentRecord> = [&ra, &rb]
            .into_iter()
            .filter_map(|r| match r {
                ScanClaimOutcome::Claimed(p) => Some(p),
                ScanClaimOutcome::NothingWaiting => None,
                ScanClaimOutcome::ScanIdInUse => panic!("the scan ids differ"),
            })
            .collect();
        assert_eq!(winners.len(), 1, "iteration {i}: {ra:?} / {rb:?}");
        let stored = store.payment(p.id).await.unwrap().unwrap();
        assert_eq!(stored.state, PaymentState::Matched);
        assert_eq!(stored.partner_id, winners[0].partner_id);
    }
}

/// Scans' claims made at the same moment (which PostgreSQL's store makes many to a
/// statement) are each their own compare-and-set: of two claims of one tranId one wins, a
/// claim of a tranId with nothing waiting finds nothing, a scan id another payment holds is
/// refused, and only a winner keeps its events, filed under the payment it claimed.
async fn concurrent_claims_are_each_their_own_compare_and_set(store: SharedStore) {
    let mut payments = Vec::new();
    for _ in 0..24 {
        payments.push(waiting(&store).await);
    }
    // A scan id that an earlier scan of another payment already holds.
    let holder = waiting(&store).await;
    let held = scan(&holder.tran_id, "wallet-a", "held-scan", t0() + secs(1));
    assert!(matches!(
        store.claim_for_scan(&held).await.unwrap(),
        ScanClaimOutcome::Claimed(_)
    ));
    let with_event = |claim: ScanClaim| ScanClaim {
        events: vec![NewEvent::new(
            event_kind::SCAN,
            Direction::In,
            claim.tran_id.clone(),
            claim.partner_id.clone(),
            t0() + secs(1),
            claim.scan_message_id.clone(),
        )],
        ..claim
    };
    let mut claims: Vec<ScanClaim> = payments
        .iter()
        .enumerate()
        .map(|(i, p)| {
            with_event(ScanClaim {
                to: if i % 2 == 0 {
                    PaymentState::Forwarded
                } else {
                    PaymentState::Matched
                },
                ..scan(&p.tran_id, "wallet-a", &format!("many-{i}"), t0() + secs(1))
            })
        })
        .collect();
    // 24: a second partner's claim of payment 3; 25: a tranId nothing waits for; 26: a
    // claim of a payment no other claim names, under a scan id another payment holds.
    let refused = waiting(&store).await;
    claims.push(with_event(scan(
        &payments[3].tran_id,
        "wallet-b",
        "rival-3",
        t0() + secs(1),
    )));
    claims.push(with_event(scan(
        &new_tran(),
        "wallet-a",
        "nobody-waits",
        t0() + secs(1),
    )));
    claims.push(with_event(scan(
        &refused.tran_id,
        "wallet-a",
        "held-scan",
        t0() + secs(1),
    )));
    let outcomes = all_at_once(&store, &claims, |store, claim| async move {
        store.claim_for_scan(&claim).await.unwrap()
    })
    .await;
    let won = |i: usize| matches!(outcomes[i], ScanClaimOutcome::Claimed(_));
    assert_eq!(
        won(3) as u8 + won(24) as u8,
        1,
        "one claim of payment 3 wins: {:?} / {:?}",
        outcomes[3],
        outcomes[24]
    );
    assert_eq!(outcomes[25], ScanClaimOutcome::NothingWaiting);
    assert_eq!(outcomes[26], ScanClaimOutcome::ScanIdInUse);
    assert_eq!(
        state_of(&store, refused.id).await,
        PaymentState::WaitingForScan
    );
    assert!(store
        .payment_timeline(refused.id, &refused.tran_id)
        .await
        .unwrap()
        .iter()
        .all(|e| e.kind != event_kind::SCAN));
    for (i, claim) in claims.iter().enumerate() {
        if i < 24 && i != 3 {
            assert!(won(i), "claim {i}: {:?}", outcomes[i]);
        }
        let Some(p) = payments.iter().find(|p| p.tran_id == claim.tran_id) else {
            continue;
        };
        let stored = store.payment(p.id).await.unwrap().unwrap();
        let timeline = store.payment_timeline(p.id, &p.tran_id).await.unwrap();
        let kept: Vec<_> = timeline
            .iter()
            .filter(|e| e.kind == event_kind::SCAN && e.outcome == claim.scan_message_id)
            .collect();
        if let ScanClaimOutcome::Claimed(record) = &outcomes[i] {
            assert_eq!(record.id, p.id, "claim {i} answers with its own payment");
            assert_eq!(
                (record.state, record.partner_id.as_deref()),
                (claim.to, Some(claim.partner_id.as_str())),
                "claim {i}"
            );
            assert_eq!(
                (stored.state, stored.scan_message_id.as_deref()),
                (claim.to, Some(claim.scan_message_id.as_str())),
                "claim {i} is what is stored"
            );
            assert_eq!(kept.len(), 1, "claim {i} keeps its event: {timeline:?}");
            assert_eq!(kept[0].payment_id, Some(p.id), "claim {i}'s event");
        } else {
            assert!(kept.is_empty(), "claim {i} leaves no event: {timeline:?}");
        }
    }
}

/// A scan that claimed nothing reads its code and the code's newest payment in one read.
async fn a_scan_reads_its_code_and_newest_payment(store: SharedStore) {
    let tran = new_tran();
    assert_eq!(
        store.scan_context(&tran).await.unwrap(),
        None,
        "never issued"
    );
    let code = QrCodeRecord {
        tran_id: tran.clone(),
        client_id: CLIENT.into(),
        message_id: Uuid::new_v4().to_string(),
        scheme: "EMVCO".into(),
        payload: "000201010212".into(),
        created_at: t0(),
        expires_at: t0() + Duration::minutes(10),
        terms: qrhub::domain::CodeTerms::default(),
    };
    store.insert_qr_code(&code).await.unwrap();
    assert_eq!(
        store.scan_context(&tran).await.unwrap(),
        Some(ScanContext {
            code_expires_at: code.expires_at,
            latest: None
        })
    );
    let first = new_payment(&tran, "pay-1");
    store.insert_payment(&first).await.unwrap();
    let latest = |state, partner: Option<&str>, scan: Option<&str>| {
        Some(ScanContext {
            code_expires_at: code.expires_at,
            latest: Some(LatestPayment {
                state,
                partner_id: partner.map(str::to_owned),
                scan_message_id: scan.map(str::to_owned),
                pos_gone: false,
            }),
        })
    };
    assert_eq!(
        store.scan_context(&tran).await.unwrap(),
        latest(PaymentState::WaitingForScan, None, None)
    );
    store
        .claim_for_scan(&scan(&tran, PARTNER, "scan-1", t0() + secs(1)))
        .await
        .unwrap();
    assert_eq!(
        store.scan_context(&tran).await.unwrap(),
        latest(PaymentState::Matched, Some(PARTNER), Some("scan-1"))
    );
    // Once the first payment ended, a newer one for the same code is the one reported.
    assert!(store
        .transition(
            first.id,
            PaymentState::Matched,
            PaymentState::Declined,
            t0() + secs(2)
        )
        .await
        .unwrap());
    let second = NewPayment {
        id: Uuid::new_v4(),
        message_id: "pay-2".into(),
        created_at: t0() + secs(3),
        ..first.clone()
    };
    assert_eq!(
        store.insert_payment(&second).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    assert_eq!(
        store.scan_context(&tran).await.unwrap(),
        latest(PaymentState::WaitingForScan, None, None)
    );
}

/// A row queued for the first try of the instance that queued it is leased to that try: no
/// worker takes it before the lease ends, and a try that never reported is then the
/// workers', its late result fenced off.
async fn an_advice_queued_for_its_first_try_is_leased_to_it(store: SharedStore) {
    let at = t0() + secs(5);
    let id = forwarded(&store, at).await;
    let msg = NewOutboxMessage {
        first_try_until: Some(at + secs(60)),
        ..outbox_msg(id, AdviceKind::Reversal, at)
    };
    assert!(store
        .record_partner_answer(&answer(id, PaymentState::Unknown, Some(msg.clone())))
        .await
        .unwrap());
    let first_try = msg.first_try().expect("leased");
    assert_eq!(first_try.attempts, 1);
    assert_eq!(
        store.outbox_for_payment(id).await.unwrap(),
        vec![first_try.clone()]
    );
    assert!(store
        .claim_due_outbox(at + secs(59), at + secs(120), 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = store
        .claim_due_outbox(at + secs(61), at + secs(120), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 2);
    let late = DeliveryResult::Delivered { status: 202 };
    assert!(!store
        .finish_delivery(msg.id, first_try.attempts, &late, at + secs(62))
        .await
        .unwrap());
}

/// A partner reusing one scan id for another tranId is told so, and nothing changes.
async fn a_scan_id_is_used_once_per_partner(store: SharedStore) {
    let first = waiting(&store).await;
    let second = waiting(&store).await;
    let claimed = store
        .claim_for_scan(&scan(&first.tran_id, "wallet-a", "scan-1", t0() + secs(1)))
        .await
        .unwrap();
    assert!(matches!(claimed, ScanClaimOutcome::Claimed(_)));
    let again = store
        .claim_for_scan(&scan(&second.tran_id, "wallet-a", "scan-1", t0() + secs(2)))
        .await
        .unwrap();
    assert_eq!(again, ScanClaimOutcome::ScanIdInUse);
    assert_eq!(
        state_of(&store, second.id).await,
        PaymentState::WaitingForScan
    );
    // Another partner may use the same id.
    let other = store
        .claim_for_scan(&scan(&second.tran_id, "wallet-b", "scan-1", t0() + secs(3)))
        .await
        .unwrap();
    assert!(matches!(other, ScanClaimOutcome::Claimed(_)));
}

async fn claim_races_expiry(store: SharedStore) {
    for i in 0..20 {
        let p = waiting(&store).await;
        let claim = scan(&p.tran_id, PARTNER, &format!("scan-{i}"), t0() + secs(30));
        let (sa, sb) = (store.clone(), store.clone());
        let id = p.id;
        let ta = tokio::spawn(async move { sa.claim_for_scan(&claim).await });
        let tb = tokio::spawn(async move {
            sb.transition(
                id,
                PaymentState::WaitingForScan,
                PaymentState::Expired,
                t0() + secs(30),
            )
            .await
        });
        let claimed = matches!(ta.await.unwrap().unwrap(), ScanClaimOutcome::Claimed(_));
        let expired = tb.await.unwrap().unwrap();
        assert!(
            claimed ^ expired,
            "iteration {i}: claimed {claimed}, expired {expired}"
        );
        let want = if claimed {
            PaymentState::Matched
        } else {
            PaymentState::Expired
        };
        assert_eq!(state_of(&store, p.id).await, want);
    }
}

fn abandoned(p: &NewPayment, at: DateTime<Utc>) -> AbandonedPay {
    AbandonedPay {
        payment_id: p.id,
        at,
        events: vec![NewEvent::new(
            event_kind::POS_GONE,
            Direction::In,
            &p.tran_id,
            CLIENT,
            at,
            "POS_WENT_AWAY",
        )],
    }
}

/// A pay whose POS went away ends EXPIRED with its event, and a scan reading the code is
/// told so; a payment no longer waiting is left alone, and writes no event.
async fn abandon_waiting_is_compare_and_set(store: SharedStore) {
    let p = waiting(&store).await;
    let code = QrCodeRecord {
        tran_id: p.tran_id.clone(),
        client_id: CLIENT.into(),
        message_id: Uuid::new_v4().to_string(),
        scheme: "EMVCO".into(),
        payload: "000201010212".into(),
        created_at: t0(),
        expires_at: t0() + Duration::minutes(10),
        terms: qrhub::domain::CodeTerms::default(),
    };
    store.insert_qr_code(&code).await.unwrap();
    assert!(store
        .abandon_waiting(&abandoned(&p, t0() + secs(2)))
        .await
        .unwrap());
    let stored = store.payment(p.id).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Expired);
    assert_eq!(stored.updated_at, t0() + secs(2));
    assert_eq!(stored.pos_gone_at, Some(t0() + secs(2)));
    assert_eq!(
        store.scan_context(&p.tran_id).await.unwrap(),
        Some(ScanContext {
            code_expires_at: code.expires_at,
            latest: Some(LatestPayment {
                state: PaymentState::Expired,
                partner_id: None,
                scan_message_id: None,
                pos_gone: true,
            }),
        })
    );
    // A second try, and a claim after it, find nothing waiting.
    assert!(!store
        .abandon_waiting(&abandoned(&p, t0() + secs(3)))
        .await
        .unwrap());
    assert_eq!(
        store
            .claim_for_scan(&scan(&p.tran_id, PARTNER, "late-scan", t0() + secs(4)))
            .await
            .unwrap(),
        ScanClaimOutcome::NothingWaiting
    );
    let timeline = store.payment_timeline(p.id, &p.tran_id).await.unwrap();
    let gone: Vec<_> = timeline
        .iter()
        .filter(|e| e.kind == event_kind::POS_GONE)
        .collect();
    assert_eq!(gone.len(), 1, "{timeline:?}");
    assert_eq!(gone[0].payment_id, Some(p.id));

    // Claimed first: the abandon loses and leaves the payment MATCHED; a scan window that
    // closed first is not marked as a POS that went away.
    let claimed = waiting(&store).await;
    store
        .claim_for_scan(&scan(
            &claimed.tran_id,
            PARTNER,
            "scan-first",
            t0() + secs(1),
        ))
        .await
        .unwrap();
    assert!(!store
        .abandon_waiting(&abandoned(&claimed, t0() + secs(2)))
        .await
        .unwrap());
    assert_eq!(state_of(&store, claimed.id).await, PaymentState::Matched);
    assert_eq!(
        store
            .payment(claimed.id)
            .await
            .unwrap()
            .unwrap()
            .pos_gone_at,
        None
    );
    let expired = waiting(&store).await;
    assert!(store
        .transition(
            expired.id,
            PaymentState::WaitingForScan,
            PaymentState::Expired,
            t0() + secs(30)
        )
        .await
        .unwrap());
    assert!(!store
        .abandon_waiting(&abandoned(&expired, t0() + secs(31)))
        .await
        .unwrap());
    assert!(store
        .payment_timeline(claimed.id, &claimed.tran_id)
        .await
        .unwrap()
        .iter()
        .chain(
            store
                .payment_timeline(expired.id, &expired.tran_id)
                .await
                .unwrap()
                .iter()
        )
        .all(|e| e.kind != event_kind::POS_GONE));
}

/// A POS going away and a scan at the same instant: exactly one wins, and the state says
/// which.
async fn claim_races_abandon(store: SharedStore) {
    for i in 0..20 {
        let p = waiting(&store).await;
        let claim = scan(&p.tran_id, PARTNER, &format!("scan-{i}"), t0() + secs(1));
        let gone = abandoned(&p, t0() + secs(1));
        let (sa, sb) = (store.clone(), store.clone());
        let ta = tokio::spawn(async move { sa.claim_for_scan(&claim).await });
        let tb = tokio::spawn(async move { sb.abandon_waiting(&gone).await });
        let claimed = matches!(ta.await.unwrap().unwrap(), ScanClaimOutcome::Claimed(_));
        let abandoned = tb.await.unwrap().unwrap();
        assert!(
            claimed ^ abandoned,
            "iteration {i}: claimed {claimed}, abandoned {abandoned}"
        );
        let want = if claimed {
            PaymentState::Matched
        } else {
            PaymentState::Expired
        };
        assert_eq!(state_of(&store, p.id).await, want);
    }
}

/// A payment of `client` the partner approved at `at`.
async fn approved_at(store: &SharedStore, client: &str, at: DateTime<Utc>) -> Uuid {
    let p = NewPayment {
        client_id: client.into(),
        ..new_payment(&new_tran(), &Uuid::new_v4().to_string())
    };
    assert_eq!(
        store.insert_payment(&p).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    let claim = scan(&p.tran_id, PARTNER, &Uuid::new_v4().to_string(), at);
    assert!(matches!(
        store.claim_for_scan(&claim).await.unwrap(),
        ScanClaimOutcome::Claimed(_)
    ));
    assert!(store
        .transition(p.id, PaymentState::Matched, PaymentState::Forwarded, at)
        .await
        .unwrap());
    assert!(store
        .record_partner_answer(&PartnerAnswerRecord {
            at,
            ..answer(p.id, PaymentState::Approved, None)
        })
        .await
        .unwrap());
    p.id
}

/// Approvals nobody advised: only APPROVED ones older than the cut-off, oldest first, per
/// client if asked; an advised one (confirmed) drops out.
async fn unadvised_approvals_are_listed_oldest_first(store: SharedStore) {
    assert_eq!(
        store.unadvised_stats(t0() + secs(3600)).await.unwrap(),
        UnadvisedStats::default()
    );
    let newest = approved_at(&store, "pos-1", t0() + secs(30)).await;
    let oldest = approved_at(&store, "pos-2", t0() + secs(10)).await;
    let middle = approved_at(&store, "pos-1", t0() + secs(20)).await;
    let confirmed = approved_at(&store, "pos-1", t0() + secs(5)).await;
    assert!(store
        .transition(
            confirmed,
            PaymentState::Approved,
            PaymentState::Confirmed,
            t0() + secs(6)
        )
        .await
        .unwrap());
    waiting(&store).await;
    let ids = |rows: Vec<PaymentRecord>| rows.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .unadvised_approvals(t0() + secs(25), None, 10)
            .await
            .unwrap()),
        vec![oldest, middle]
    );
    assert_eq!(
        ids(store
            .unadvised_approvals(t0() + secs(60), Some("pos-1"), 10)
            .await
            .unwrap()),
        vec![middle, newest]
    );
    assert_eq!(
        ids(store
            .unadvised_approvals(t0() + secs(60), None, 1)
            .await
            .unwrap()),
        vec![oldest]
    );
    assert_eq!(
        store.unadvised_stats(t0() + secs(25)).await.unwrap(),
        UnadvisedStats {
            count: 2,
            oldest_approved_at: Some(t0() + secs(10)),
        }
    );
}

/// The hub's own change of state: a compare-and-set whose outbox row and events exist only
/// if it won; a second try, or one from a state the payment left, writes nothing.
async fn change_state_is_compare_and_set_with_its_riders(store: SharedStore) {
    let id = approved_at(&store, CLIENT, t0() + secs(5)).await;
    let payment = store.payment(id).await.unwrap().unwrap();
    let change = |at| StateChange {
        payment_id: id,
        from: PaymentState::Approved,
        to: PaymentState::Reversed,
        at,
        outbox: Some(outbox_msg(id, AdviceKind::Reversal, at)),
        events: vec![event(event_kind::UNADVISED_REVERSAL, &payment.tran_id, at)],
    };
    let first = change(t0() + secs(3600));
    assert!(store.change_state(&first).await.unwrap());
    assert!(!store
        .change_state(&change(t0() + secs(3601)))
        .await
        .unwrap());
    let stored = store.payment(id).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Reversed);
    assert_eq!(stored.updated_at, t0() + secs(3600));
    let rows = store.outbox_for_payment(id).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0].message_id,
        first.outbox.as_ref().unwrap().message_id
    );
    let hub_reversals = store
        .payment_timeline(id, &payment.tran_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == event_kind::UNADVISED_REVERSAL)
        .count();
    assert_eq!(hub_reversals, 1);
    // The state machine still guards it.
    assert!(matches!(
        store
            .change_state(&StateChange {
                from: PaymentState::Reversed,
                to: PaymentState::Confirmed,
                ..change(t0() + secs(3602))
            })
            .await,
        Err(StoreError::IllegalTransition { .. })
    ));
    // Racing a POS's confirmation of the same approval: exactly one wins.
    for i in 0..10 {
        let id = approved_at(&store, CLIENT, t0() + secs(5)).await;
        let confirm = ApplyAdvice {
            advice: advice(
                AdviceKind::Confirmation,
                &format!("confirm-{i}"),
                &store.payment(id).await.unwrap().unwrap().message_id,
                Some(id),
            ),
            payment_id: id,
            from: PaymentState::Approved,
            to: Some(PaymentState::Confirmed),
            mark_reversed_by_pos: false,
            settlement: None,
            outbox: Some(outbox_msg(id, AdviceKind::Confirmation, t0() + secs(60))),
            events: Vec::new(),
            wake: None,
        };
        let reverse = StateChange {
            payment_id: id,
            events: Vec::new(),
            outbox: Some(outbox_msg(id, AdviceKind::Reversal, t0() + secs(60))),
            ..change(t0() + secs(60))
        };
        let (sa, sb) = (store.clone(), store.clone());
        let ta = tokio::spawn(async move { sa.apply_advice(&confirm).await });
        let tb = tokio::spawn(async move { sb.change_state(&reverse).await });
        let confirmed = ta.await.unwrap().unwrap() == ApplyAdviceOutcome::Applied;
        let reversed = tb.await.unwrap().unwrap();
        assert!(
            confirmed ^ reversed,
            "iteration {i}: confirmed {confirmed}, reversed {reversed}"
        );
        let rows = store.outbox_for_payment(id).await.unwrap();
        assert_eq!(rows.len(), 1, "only the winner's advice is queued");
    }
}

async fn transition_is_compare_and_set(store: SharedStore) {
    let p = waiting(&store).await;
    // Wrong `from`: nothing happens.
    assert!(!store
        .transition(p.id, PaymentState::Matched, PaymentState::Forwarded, t0())
        .await
        .unwrap());
    assert!(!store
        .transition(
            Uuid::new_v4(),
            PaymentState::WaitingForScan,
            PaymentState::Expired,
            t0()
        )
        .await
        .unwrap());
    assert_eq!(state_of(&store, p.id).await, PaymentState::WaitingForScan);
    // A move the state machine forbids is refused before the database is touched.
    let err = store
        .transition(
            p.id,
            PaymentState::WaitingForScan,
            PaymentState::Confirmed,
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");
    assert!(store
        .transition(
            p.id,
            PaymentState::WaitingForScan,
            PaymentState::Expired,
            t0() + secs(31)
        )
        .await
        .unwrap());
    let stored = store.payment(p.id).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Expired);
    assert_eq!(stored.updated_at, t0() + secs(31));
}

async fn partner_answer_with_reversal(store: SharedStore) {
    let id = forwarded(&store, t0() + secs(1)).await;
    let reversal = outbox_msg(id, AdviceKind::Reversal, t0() + secs(5));
    let ans = answer(id, PaymentState::Unknown, Some(reversal.clone()));
    assert!(store.record_partner_answer(&ans).await.unwrap());

    let stored = store.payment(id).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Unknown);
    assert_eq!(stored.partner_status, Some(504));
    assert_eq!(stored.partner_response, Some(json!({"status": "UNKNOWN"})));
    assert_eq!(stored.updated_at, ans.at);

    let rows = store.outbox_for_payment(id).await.unwrap();
    assert_eq!(
        rows,
        vec![OutboxMessage {
            id: reversal.id,
            payment_id: id,
            partner_id: reversal.partner_id.clone(),
            kind: AdviceKind::Reversal,
            message_id: reversal.message_id.clone(),
            body: reversal.body.clone(),
            state: OutboxState::Pending,
            attempts: 0,
            next_attempt_at: reversal.created_at,
            last_status: None,
            last_error: None,
            created_at: reversal.created_at,
            expires_at: reversal.expires_at,
            updated_at: reversal.created_at,
        }]
    );

    // A second answer (a duplicate delivery of the same outcome) loses, and queues nothing.
    let again = answer(
        id,
        PaymentState::Unknown,
        Some(outbox_msg(id, AdviceKind::Reversal, t0())),
    );
    assert!(!store.record_partner_answer(&again).await.unwrap());
    assert_eq!(store.outbox_for_payment(id).await.unwrap().len(), 1);

    // Not FORWARDED: nothing is written.
    let p = waiting(&store).await;
    let early = answer(
        p.id,
        PaymentState::Unknown,
        Some(outbox_msg(p.id, AdviceKind::Reversal, t0())),
    );
    assert!(!store.record_partner_answer(&early).await.unwrap());
    assert_eq!(state_of(&store, p.id).await, PaymentState::WaitingForScan);
    assert!(store.outbox_for_payment(p.id).await.unwrap().is_empty());

    // An answer leading to an illegal state is refused.
    let err = store
        .record_partner_answer(&answer(id, PaymentState::Confirmed, None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");
}

async fn partner_answer_rolls_back_when_the_outbox_insert_fails(store: SharedStore) {
    // The outbox row reuses an existing row's id: its insert fails, and so must the CAS.
    let existing = one_outbox_row(&store).await;
    let id = forwarded(&store, t0()).await;
    let mut clash = outbox_msg(id, AdviceKind::Reversal, t0());
    clash.id = existing.id;
    assert!(store
        .record_partner_answer(&answer(id, PaymentState::Unknown, Some(clash)))
        .await
        .is_err());
    let stored = store.payment(id).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Forwarded);
    assert_eq!(stored.partner_status, None);
    assert!(store.outbox_for_payment(id).await.unwrap().is_empty());
}

async fn apply_advice_happy_duplicate_and_stale(store: SharedStore) {
    let id = approved(&store).await;
    let confirmation = advice(AdviceKind::Confirmation, "conf-1", "pay-x", Some(id));
    let to_partner = outbox_msg(id, AdviceKind::Confirmation, t0() + secs(60));
    let apply = ApplyAdvice {
        advice: confirmation.clone(),
        payment_id: id,
        from: PaymentState::Approved,
        to: Some(PaymentState::Confirmed),
        mark_reversed_by_pos: false,
        settlement: Some(Settlement {
            settled_minor: 900,
            fee_minor: 14,
        }),
        outbox: Some(to_partner.clone()),
        events: Vec::new(),
        wake: None,
    };
    assert_eq!(
        store.apply_advice(&apply).await.unwrap(),
        ApplyAdviceOutcome::Applied
    );
    let stored = store.payment(id).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Confirmed);
    assert_eq!(
        (stored.settled_minor, stored.fee_minor),
        (Some(900), Some(14))
    );
    assert_eq!(stored.updated_at, confirmation.received_at);
    assert!(!stored.reversed_by_pos);
    assert_eq!(
        store.advice(CLIENT, "conf-1").await.unwrap(),
        Some(confirmation.clone())
    );
    let rows = store.outbox_for_payment(id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, to_partner.id);
    assert_eq!(rows[0].kind, AdviceKind::Confirmation);

    // The same advice id again (a racing repeat): refused, nothing new queued.
    let repeat = ApplyAdvice {
        outbox: Some(outbox_msg(id, AdviceKind::Confirmation, t0() + secs(61))),
        from: PaymentState::Confirmed,
        to: None,
        ..apply.clone()
    };
    assert_eq!(
        store.apply_advice(&repeat).await.unwrap(),
        ApplyAdviceOutcome::DuplicateAdvice
    );
    assert_eq!(store.outbox_for_payment(id).await.unwrap().len(), 1);

    // A decision taken on a stale state: nothing is written, not even the advice.
    let stale = ApplyAdvice {
        advice: advice(AdviceKind::Reversal, "rev-1", "pay-x", Some(id)),
        payment_id: id,
        from: PaymentState::Approved,
        to: Some(PaymentState::Reversed),
        mark_reversed_by_pos: false,
        settlement: None,
        outbox: Some(outbox_msg(id, AdviceKind::Reversal, t0() + secs(62))),
        events: Vec::new(),
        wake: None,
    };
    assert_eq!(
        store.apply_advice(&stale).await.unwrap(),
        ApplyAdviceOutcome::StateChanged
    );
    assert_eq!(store.advice(CLIENT, "rev-1").await.unwrap(), None);
    assert_eq!(state_of(&store, id).await, PaymentState::Confirmed);
    assert_eq!(store.outbox_for_payment(id).await.unwrap().len(), 1);

    // An unknown payment: StateChanged too.
    let missing = ApplyAdvice {
        advice: advice(AdviceKind::Reversal, "rev-2", "pay-y", None),
        payment_id: Uuid::new_v4(),
        outbox: None,
        ..stale.clone()
    };
    assert_eq!(
        store.apply_advice(&missing).await.unwrap(),
        ApplyAdviceOutcome::StateChanged
    );
    assert_eq!(store.advice(CLIENT, "rev-2").await.unwrap(), None);

    // Illegal moves are refused.
    let illegal = ApplyAdvice {
        advice: advice(AdviceKind::Reversal, "rev-3", "pay-x", Some(id)),
        from: PaymentState::Confirmed,
        to: Some(PaymentState::Reversed),
        outbox: None,
        ..stale
    };
    assert!(matches!(
        store.apply_advice(&illegal).await,
        Err(StoreError::IllegalTransition { .. })
    ));
    assert_eq!(store.advice(CLIENT, "rev-3").await.unwrap(), None);
}

async fn apply_advice_keeping_the_state(store: SharedStore) {
    // A reversal while the partner has the payment: mark it, keep FORWARDED.
    let id = forwarded(&store, t0() + secs(1)).await;
    let mark = ApplyAdvice {
        advice: advice(AdviceKind::Reversal, "rev-1", "pay-x", Some(id)),
        payment_id: id,
        from: PaymentState::Forwarded,
        to: None,
        mark_reversed_by_pos: true,
        settlement: None,
        outbox: None,
        events: Vec::new(),
        wake: None,
    };
    assert_eq!(
        store.apply_advice(&mark).await.unwrap(),
        ApplyAdviceOutcome::Applied
    );
    let stored = store.payment(id).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Forwarded);
    assert!(stored.reversed_by_pos);
    assert!(store.advice(CLIENT, "rev-1").await.unwrap().is_some());

    // Absorbed with a stale `from`: StateChanged, nothing stored.
    let stale = ApplyAdvice {
        advice: advice(AdviceKind::Reversal, "rev-2", "pay-x", Some(id)),
        from: PaymentState::Matched,
        mark_reversed_by_pos: false,
        settlement: None,
        ..mark.clone()
    };
    assert_eq!(
        store.apply_advice(&stale).await.unwrap(),
        ApplyAdviceOutcome::StateChanged
    );
    assert_eq!(store.advice(CLIENT, "rev-2").await.unwrap(), None);

    // Absorbed with the right `from`: stored, the payment untouched.
    let absorbed = ApplyAdvice {
        from: PaymentState::Forwarded,
        ..stale
    };
    assert_eq!(
        store.apply_advice(&absorbed).await.unwrap(),
        ApplyAdviceOutcome::Applied
    );
    assert!(store.advice(CLIENT, "rev-2").await.unwrap().is_some());
    assert_eq!(store.payment(id).await.unwrap().unwrap(), stored);
}

async fn outbox_lease_and_fencing(store: SharedStore) {
    let row = one_outbox_row(&store).await;
    let t = row.next_attempt_at;

    // Not due yet.
    assert!(store
        .claim_due_outbox(t - secs(1), t + secs(29), 10)
        .await
        .unwrap()
        .is_empty());

    let claimed = store.claim_due_outbox(t, t + secs(30), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, row.id);
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[0].next_attempt_at, t + secs(30));
    assert_eq!(claimed[0].state, OutboxState::Pending);
    assert_eq!(claimed[0].updated_at, t);

    // Leased: not claimed again before the lease ends...
    assert!(store
        .claim_due_outbox(t + secs(10), t + secs(40), 10)
        .await
        .unwrap()
        .is_empty());
    // ...and claimed again once it has (the first worker died).
    let reclaimed = store
        .claim_due_outbox(t + secs(31), t + secs(61), 10)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].attempts, 2);

    // The first worker comes back: its result is ignored.
    assert!(!store
        .finish_delivery(
            row.id,
            1,
            &DeliveryResult::Delivered { status: 202 },
            t + secs(32)
        )
        .await
        .unwrap());
    assert_eq!(outbox_row(&store, &row).await.state, OutboxState::Pending);

    // The current worker schedules a retry.
    let retry = DeliveryResult::Retry {
        status: Some(504),
        error: "gateway timeout".into(),
        next_attempt_at: t + secs(120),
    };
    assert!(store
        .finish_delivery(row.id, 2, &retry, t + secs(33))
        .await
        .unwrap());
    let stored = outbox_row(&store, &row).await;
    assert_eq!(stored.state, OutboxState::Pending);
    assert_eq!(stored.attempts, 2);
    assert_eq!(stored.next_attempt_at, t + secs(120));
    assert_eq!(stored.last_status, Some(504));
    assert_eq!(stored.last_error.as_deref(), Some("gateway timeout"));
    assert_eq!(stored.updated_at, t + secs(33));

    // Not due before the retry time; due after.
    assert!(store
        .claim_due_outbox(t + secs(119), t + secs(149), 10)
        .await
        .unwrap()
        .is_empty());
    let third = store
        .claim_due_outbox(t + secs(120), t + secs(150), 10)
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].attempts, 3);

    // A retry with no status clears the last status.
    let retry = DeliveryResult::Retry {
        status: None,
        error: "connection reset".into(),
        next_attempt_at: t + secs(200),
    };
    assert!(store
        .finish_delivery(row.id, 3, &retry, t + secs(121))
        .await
        .unwrap());
    assert_eq!(outbox_row(&store, &row).await.last_status, None);
    let fourth = store
        .claim_due_outbox(t + secs(200), t + secs(230), 10)
        .await
        .unwrap();
    assert_eq!(fourth[0].attempts, 4);

    assert!(store
        .finish_delivery(
            row.id,
            4,
            &DeliveryResult::Delivered { status: 202 },
            t + secs(201)
        )
        .await
        .unwrap());
    let stored = outbox_row(&store, &row).await;
    assert_eq!(stored.state, OutboxState::Delivered);
    assert_eq!(stored.last_status, Some(202));
    assert_eq!(stored.last_error, None);
    // Ended: never claimed again, and a second finish is ignored.
    assert!(store
        .claim_due_outbox(t + Duration::days(1), t + Duration::days(2), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .finish_delivery(
            row.id,
            4,
            &DeliveryResult::Delivered { status: 202 },
            t + secs(202)
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .outbox_by_state(OutboxState::Delivered, 10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        vec![row.id]
    );

    // A final failure ends the row, failed.
    let other = one_outbox_row(&store).await;
    let claimed = store.claim_due_outbox(t, t + secs(30), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let failed = DeliveryResult::Failed {
        status: 400,
        error: "rejected".into(),
    };
    assert!(store
        .finish_delivery(other.id, 1, &failed, t + secs(1))
        .await
        .unwrap());
    let stored = outbox_row(&store, &other).await;
    assert_eq!(stored.state, OutboxState::Failed);
    assert_eq!(stored.last_status, Some(400));
    assert_eq!(stored.last_error.as_deref(), Some("rejected"));
}

/// Several tries recorded in one call: each is its own compare-and-set, answered in order,
/// and a stale one changes nothing while the others are kept.
async fn deliveries_are_finished_together_each_on_its_own_try(store: SharedStore) {
    let t = t0();
    let rows = [
        one_outbox_row(&store).await,
        one_outbox_row(&store).await,
        one_outbox_row(&store).await,
    ];
    let claimed = store.claim_due_outbox(t, t + secs(30), 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let finished = vec![
        FinishedDelivery {
            id: rows[0].id,
            attempt: 1,
            result: DeliveryResult::Delivered { status: 202 },
            at: t + secs(1),
        },
        // A try that is not the row's current one.
        FinishedDelivery {
            id: rows[1].id,
            attempt: 7,
            result: DeliveryResult::Delivered { status: 202 },
            at: t + secs(1),
        },
        FinishedDelivery {
            id: rows[2].id,
            attempt: 1,
            result: DeliveryResult::Retry {
                status: Some(503),
                error: "maintenance".into(),
                next_attempt_at: t + secs(90),
            },
            at: t + secs(2),
        },
    ];
    assert_eq!(
        store.finish_deliveries(&finished).await.unwrap(),
        vec![true, false, true]
    );
    let first = outbox_row(&store, &rows[0]).await;
    assert_eq!(first.state, OutboxState::Delivered);
    assert_eq!(first.last_status, Some(202));
    assert_eq!(first.updated_at, t + secs(1));
    let second = outbox_row(&store, &rows[1]).await;
    assert_eq!(second.state, OutboxState::Pending);
    assert_eq!(second.last_status, None);
    let third = outbox_row(&store, &rows[2]).await;
    assert_eq!(third.state, OutboxState::Pending);
    assert_eq!(third.last_status, Some(503));
    assert_eq!(third.last_error.as_deref(), Some("maintenance"));
    assert_eq!(third.next_attempt_at, t + secs(90));
    // Recorded again, the ended row is no longer any try's; nothing at all is nothing.
    assert_eq!(
        store.finish_deliveries(&finished[..1]).await.unwrap(),
        vec![false]
    );
    assert!(store.finish_deliveries(&[]).await.unwrap().is_empty());

    // A stale try and the current one of the same row in one group: only the current one
    // is this row's.
    let row = one_outbox_row(&store).await;
    let t = t + Duration::days(1);
    let leased = store.claim_due_outbox(t, t + secs(30), 10).await.unwrap();
    assert!(leased.iter().any(|m| m.id == row.id));
    let again = store
        .claim_due_outbox(t + secs(31), t + secs(61), 10)
        .await
        .unwrap();
    let current = again
        .iter()
        .find(|m| m.id == row.id)
        .expect("leased again")
        .attempts;
    assert_eq!(current, 2);
    let tries: Vec<FinishedDelivery> = [1, 2]
        .into_iter()
        .map(|attempt| FinishedDelivery {
            id: row.id,
            attempt,
            result: DeliveryResult::Delivered { status: 202 },
            at: t + secs(32),
        })
        .collect();
    assert_eq!(
        store.finish_deliveries(&tries).await.unwrap(),
        vec![false, true]
    );
}

async fn outbox_claim_limit_and_order(store: SharedStore) {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(one_outbox_row(&store).await.id);
    }
    let t = t0();
    let first = store.claim_due_outbox(t, t + secs(30), 3).await.unwrap();
    assert_eq!(first.len(), 3);
    let second = store.claim_due_outbox(t, t + secs(30), 3).await.unwrap();
    assert_eq!(second.len(), 2);
    let all: HashSet<Uuid> = first.iter().chain(&second).map(|m| m.id).collect();
    assert_eq!(all, ids.into_iter().collect());
    assert_eq!(
        store
            .outbox_by_state(OutboxState::Pending, 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .outbox_by_state(OutboxState::Pending, 10)
            .await
            .unwrap()
            .len(),
        5
    );
    assert!(store
        .outbox_by_state(OutboxState::Dead, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_outbox_claims_are_disjoint(store: SharedStore) {
    let mut ids = HashSet::new();
    for _ in 0..60 {
        ids.insert(one_outbox_row(&store).await.id);
    }
    // Four workers claim small batches concurrently until nothing is left.
    let t = t0();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = store.claim_due_outbox(t, t + secs(30), 3).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|m| (m.id, m.attempts)));
                }
            })
        })
        .collect();
    let mut seen: Vec<Uuid> = Vec::new();
    for worker in workers {
        for (id, attempts) in worker.await.unwrap() {
            assert_eq!(attempts, 1, "row {id} was leased twice");
            seen.push(id);
        }
    }
    let unique: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a row was claimed twice");
    assert_eq!(unique, ids);
}

async fn dead_letters_and_operator_retry(store: SharedStore) {
    let row = one_outbox_row(&store).await;
    let expiry = row.expires_at;
    assert_eq!(
        store.dead_letter_expired(expiry - secs(1)).await.unwrap(),
        0
    );
    assert_eq!(
        store.dead_letter_expired(expiry + secs(1)).await.unwrap(),
        1
    );
    assert_eq!(
        store.dead_letter_expired(expiry + secs(2)).await.unwrap(),
        0
    );
    let dead = store.outbox_by_state(OutboxState::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, row.id);
    assert_eq!(dead[0].updated_at, expiry + secs(1));
    // Dead rows are not claimed, and a late worker cannot revive one.
    assert!(store
        .claim_due_outbox(expiry + secs(5), expiry + secs(35), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .finish_delivery(
            row.id,
            0,
            &DeliveryResult::Delivered { status: 202 },
            expiry
        )
        .await
        .unwrap());
    // A delivered row is not dead-lettered.
    let delivered = one_outbox_row(&store).await;
    let claimed = store
        .claim_due_outbox(t0(), t0() + secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(store
        .finish_delivery(
            delivered.id,
            1,
            &DeliveryResult::Delivered { status: 202 },
            t0()
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .dead_letter_expired(expiry + Duration::days(10))
            .await
            .unwrap(),
        0
    );

    // The operator retries.
    let now = expiry + Duration::hours(1);
    let new_expiry = now + Duration::days(3);
    assert!(store
        .retry_dead_letter(row.id, now, new_expiry)
        .await
        .unwrap());
    assert!(!store
        .retry_dead_letter(row.id, now, new_expiry)
        .await
        .unwrap());
    assert!(!store
        .retry_dead_letter(delivered.id, now, new_expiry)
        .await
        .unwrap());
    let stored = outbox_row(&store, &row).await;
    assert_eq!(stored.state, OutboxState::Pending);
    assert_eq!(stored.next_attempt_at, now);
    assert_eq!(stored.expires_at, new_expiry);
    let claimed = store
        .claim_due_outbox(now, now + secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, row.id);
}

async fn outbox_stats_count_pending_rows(store: SharedStore) {
    let empty = store.outbox_stats().await.unwrap();
    assert_eq!(empty.pending, 0);
    assert_eq!(empty.oldest_created_at, None);

    // Two rows, the newer queued first.
    let mut queued = Vec::new();
    for at in [t0() + secs(10), t0() + secs(3)] {
        let id = forwarded(&store, at).await;
        let msg = outbox_msg(id, AdviceKind::Reversal, at);
        queued.push(msg.clone());
        assert!(store
            .record_partner_answer(&answer(id, PaymentState::Unknown, Some(msg)))
            .await
            .unwrap());
    }
    let (newer, older) = (&queued[0], &queued[1]);
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(stats.pending, 2);
    assert_eq!(stats.oldest_created_at, Some(older.created_at));

    // Leased rows are still waiting; a delivered one is not.
    let claimed = store
        .claim_due_outbox(t0() + secs(20), t0() + secs(50), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(store.outbox_stats().await.unwrap().pending, 2);
    assert!(store
        .finish_delivery(
            older.id,
            1,
            &DeliveryResult::Delivered { status: 202 },
            t0() + secs(21)
        )
        .await
        .unwrap());
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(stats.pending, 1);
    assert_eq!(stats.oldest_created_at, Some(newer.created_at));

    // Nor is a dead letter.
    assert_eq!(
        store
            .dead_letter_expired(newer.expires_at + secs(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.outbox_stats().await.unwrap(),
        OutboxStats {
            pending: 0,
            oldest_created_at: None,
            refused: 0,
            dead: 1,
        }
    );

    // An advice the partner refused is an open item, and an operator's retry reopens it
    // as it does a dead letter.
    let at = t0() + secs(30);
    let id = forwarded(&store, at).await;
    let msg = outbox_msg(id, AdviceKind::Reversal, at);
    assert!(store
        .record_partner_answer(&answer(id, PaymentState::Unknown, Some(msg.clone())))
        .await
        .unwrap());
    let claimed = store
        .claim_due_outbox(at + secs(1), at + secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let refusal = DeliveryResult::Failed {
        status: 422,
        error: "no such payment".into(),
    };
    assert!(store
        .finish_delivery(msg.id, 1, &refusal, at + secs(2))
        .await
        .unwrap());
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.refused, stats.dead, stats.pending), (1, 1, 0));
    assert!(store
        .retry_dead_letter(msg.id, at + secs(3), at + secs(3600))
        .await
        .unwrap());
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.refused, stats.dead, stats.pending), (0, 1, 1));
    // A pending row is no open item: nothing to retry.
    assert!(!store
        .retry_dead_letter(msg.id, at + secs(4), at + secs(3600))
        .await
        .unwrap());
}

async fn pool_stats_are_consistent(store: SharedStore) {
    store.ping().await.unwrap();
    let stats = store.pool_stats();
    assert!(stats.max >= 1, "{stats:?}");
    assert!(stats.size >= 1, "a query just ran: {stats:?}");
    assert!(stats.idle <= stats.size, "{stats:?}");
    assert!(stats.size <= stats.max, "{stats:?}");
}

async fn recover_repairs_what_a_crash_left(store: SharedStore) {
    let old = t0();
    let recent = t0() + Duration::minutes(10);
    let now = t0() + Duration::minutes(12);
    let cutoff = t0() + Duration::minutes(5);

    let old_forwarded = forwarded(&store, old).await;
    let recent_forwarded = forwarded(&store, recent).await;
    let old_matched = waiting(&store).await;
    let claim = scan(&old_matched.tran_id, PARTNER, "scan-om", old);
    store.claim_for_scan(&claim).await.unwrap();
    let recent_matched = waiting(&store).await;
    let claim = scan(&recent_matched.tran_id, PARTNER, "scan-rm", recent);
    store.claim_for_scan(&claim).await.unwrap();
    let old_waiting = waiting(&store).await;
    let answered = approved(&store).await;

    let reversal_for = |p: &PaymentRecord| NewOutboxMessage {
        body: json!({"reverses": p.id, "partnerMessageId": p.partner_message_id}),
        ..outbox_msg(p.id, AdviceKind::Reversal, now)
    };
    let report = store
        .recover(now, cutoff, cutoff, &reversal_for)
        .await
        .unwrap();
    assert_eq!(
        report,
        RecoveryReport {
            forwarded_made_unknown: 1,
            matched_never_sent: 1,
        }
    );

    let stored = store.payment(old_forwarded).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Unknown);
    assert_eq!(stored.updated_at, now);
    let rows = store.outbox_for_payment(old_forwarded).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kind, AdviceKind::Reversal);
    assert_eq!(rows[0].state, OutboxState::Pending);
    assert_eq!(rows[0].body["reverses"], json!(old_forwarded));
    assert_eq!(
        rows[0].body["partnerMessageId"],
        json!(stored.partner_message_id)
    );

    assert_eq!(
        state_of(&store, old_matched.id).await,
        PaymentState::Declined
    );
    assert_eq!(
        state_of(&store, recent_forwarded).await,
        PaymentState::Forwarded
    );
    assert!(store
        .outbox_for_payment(recent_forwarded)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        state_of(&store, recent_matched.id).await,
        PaymentState::Matched
    );
    assert_eq!(
        state_of(&store, old_waiting.id).await,
        PaymentState::WaitingForScan
    );
    assert_eq!(state_of(&store, answered).await, PaymentState::Approved);

    // Running again (another instance, or the next period) finds nothing more.
    let again = store
        .recover(now + secs(1), cutoff, cutoff, &reversal_for)
        .await
        .unwrap();
    assert_eq!(again, RecoveryReport::default());
    assert_eq!(
        store.outbox_for_payment(old_forwarded).await.unwrap().len(),
        1
    );
}

/// Found by the chaos run: a hub killed while the partner had the payment, the POS's
/// reversal accepted by another instance meanwhile (marked, still FORWARDED). Recovery must
/// end it REVERSED with the hub's reversal queued, not UNKNOWN, which contradicts the POS's
/// accepted reversal and waits for another one forever.
async fn recovery_of_a_pos_reversed_payment_ends_reversed(store: SharedStore) {
    let id = forwarded(&store, t0()).await;
    let mark = ApplyAdvice {
        advice: advice(AdviceKind::Reversal, "rev-crash", "pay-x", Some(id)),
        payment_id: id,
        from: PaymentState::Forwarded,
        to: None,
        mark_reversed_by_pos: true,
        settlement: None,
        outbox: None,
        events: Vec::new(),
        wake: None,
    };
    assert_eq!(
        store.apply_advice(&mark).await.unwrap(),
        ApplyAdviceOutcome::Applied
    );
    let now = t0() + Duration::minutes(12);
    let reversal_for = |p: &PaymentRecord| outbox_msg(p.id, AdviceKind::Reversal, now);
    let report = store
        .recover(now, now - Duration::minutes(5), now, &reversal_for)
        .await
        .unwrap();
    assert_eq!(report.forwarded_made_unknown, 1);
    assert_eq!(state_of(&store, id).await, PaymentState::Reversed);
    let rows = store.outbox_for_payment(id).await.unwrap();
    assert_eq!(rows.len(), 1, "the partner still gets exactly one reversal");
    assert_eq!(rows[0].kind, AdviceKind::Reversal);
}

async fn concurrent_recovery_queues_one_reversal(store: SharedStore) {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(forwarded(&store, t0()).await);
    }
    let now = t0() + Duration::minutes(12);
    let cutoff = t0() + Duration::minutes(5);
    let run = |store: SharedStore| async move {
        let reversal_for = |p: &PaymentRecord| outbox_msg(p.id, AdviceKind::Reversal, now);
        store.recover(now, cutoff, cutoff, &reversal_for).await
    };
    let ta = tokio::spawn(run(store.clone()));
    let tb = tokio::spawn(run(store.clone()));
    let (a, b) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
    assert_eq!(a.forwarded_made_unknown + b.forwarded_made_unknown, 5);
    for id in ids {
        assert_eq!(state_of(&store, id).await, PaymentState::Unknown);
        assert_eq!(store.outbox_for_payment(id).await.unwrap().len(), 1);
    }
}

async fn expired_waiting_lists_past_deadlines(store: SharedStore) {
    let mut early = new_payment(&new_tran(), "pay-early");
    early.scan_deadline = t0() + secs(10);
    let mut late = new_payment(&new_tran(), "pay-late");
    late.scan_deadline = t0() + secs(60);
    // Sub-second and across a digit boundary, to catch text ordering mistakes.
    let mut fraction = new_payment(&new_tran(), "pay-fraction");
    fraction.scan_deadline = t0() + Duration::microseconds(9_876_543);
    let mut matched = new_payment(&new_tran(), "pay-matched");
    matched.scan_deadline = t0() + secs(5);
    for p in [&early, &late, &fraction, &matched] {
        assert_eq!(
            store.insert_payment(p).await.unwrap(),
            NewPaymentOutcome::Inserted
        );
    }
    store
        .claim_for_scan(&scan(&matched.tran_id, PARTNER, "scan-m", t0()))
        .await
        .unwrap();

    assert!(store.expired_waiting(t0(), 10).await.unwrap().is_empty());
    assert_eq!(
        store.expired_waiting(t0() + secs(10), 10).await.unwrap(),
        vec![fraction.id]
    );
    assert_eq!(
        store.expired_waiting(t0() + secs(11), 10).await.unwrap(),
        vec![fraction.id, early.id]
    );
    assert_eq!(
        store.expired_waiting(t0() + secs(100), 10).await.unwrap(),
        vec![fraction.id, early.id, late.id]
    );
    assert_eq!(
        store.expired_waiting(t0() + secs(100), 1).await.unwrap(),
        vec![fraction.id]
    );
    store
        .transition(
            early.id,
            PaymentState::WaitingForScan,
            PaymentState::Expired,
            t0() + secs(11),
        )
        .await
        .unwrap();
    assert_eq!(
        store.expired_waiting(t0() + secs(100), 10).await.unwrap(),
        vec![fraction.id, late.id]
    );
}

async fn times_round_trip(store: SharedStore) {
    // Nanoseconds are cut to microseconds; everything else survives exactly.
    let precise = Utc.with_ymd_and_hms(2031, 12, 31, 23, 59, 59).unwrap()
        + Duration::nanoseconds(987_654_321);
    let code = QrCodeRecord {
        tran_id: new_tran(),
        client_id: CLIENT.into(),
        message_id: "create-precise".into(),
        scheme: "EMVCO".into(),
        payload: "x".into(),
        created_at: precise,
        expires_at: Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
        terms: qrhub::domain::CodeTerms::default(),
    };
    store.insert_qr_code(&code).await.unwrap();
    let stored = store.qr_code(&code.tran_id).await.unwrap().unwrap();
    assert_eq!(stored.created_at, precise.trunc_subsecs(6));
    assert_eq!(stored.created_at.timestamp_subsec_micros(), 987_654);
    assert_eq!(stored.expires_at, code.expires_at);

    let mut p = new_payment(&new_tran(), "pay-precise");
    p.created_at = precise;
    p.scan_deadline = precise + Duration::microseconds(1);
    store.insert_payment(&p).await.unwrap();
    let stored = store.payment(p.id).await.unwrap().unwrap();
    assert_eq!(stored.created_at, precise.trunc_subsecs(6));
    assert_eq!(
        stored.scan_deadline,
        (precise + Duration::microseconds(1)).trunc_subsecs(6)
    );
    assert_eq!(stored.request, p.request);
}

// ---------------------------------------------------------------------------------------

fn event(kind: &'static str, tran_id: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent::new(kind, Direction::In, tran_id, CLIENT, at, "RECEIVED")
        .body(Some(json!({"k": kind})))
}

async fn events_ride_with_state_changes(store: SharedStore) {
    let tran = new_tran();
    store
        .record_events(&[event(event_kind::CREATE_QR_CODE, &tran, t0() - secs(1))])
        .await
        .unwrap();
    let p = NewPayment {
        events: vec![event(event_kind::PAY, &tran, t0())],
        ..new_payment(&tran, "pay-ev")
    };
    let p = NewPayment {
        events: p.events.iter().cloned().map(|e| e.payment(p.id)).collect(),
        ..p
    };
    assert_eq!(
        store.insert_payment(&p).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    // The claim's event gets the claimed payment's id; a losing claim writes nothing.
    let claim = ScanClaim {
        events: vec![event(event_kind::SCAN, &tran, t0() + secs(1))],
        ..scan(&tran, PARTNER, "scan-ev", t0() + secs(1))
    };
    assert!(matches!(
        store.claim_for_scan(&claim).await.unwrap(),
        ScanClaimOutcome::Claimed(_)
    ));
    let losing = ScanClaim {
        events: vec![event(event_kind::SCAN, &tran, t0() + secs(2))],
        ..scan(&tran, PARTNER, "scan-ev-2", t0() + secs(2))
    };
    assert_eq!(
        store.claim_for_scan(&losing).await.unwrap(),
        ScanClaimOutcome::NothingWaiting
    );
    assert!(store
        .transition(
            p.id,
            PaymentState::Matched,
            PaymentState::Forwarded,
            t0() + secs(2)
        )
        .await
        .unwrap());
    // A partner answer that loses its compare-and-set leaves no events either.
    let stale = PartnerAnswerRecord {
        expected_reversed_by_pos: true,
        events: vec![event(event_kind::PAY_RESPONSE, &tran, t0() + secs(3))],
        ..answer(p.id, PaymentState::Approved, None)
    };
    assert!(!store.record_partner_answer(&stale).await.unwrap());
    let won = PartnerAnswerRecord {
        events: vec![
            event(event_kind::PAY, &tran, t0() + secs(3)).payment(p.id),
            event(event_kind::PAY_RESPONSE, &tran, t0() + secs(3)).payment(p.id),
        ],
        ..answer(p.id, PaymentState::Approved, None)
    };
    assert!(store.record_partner_answer(&won).await.unwrap());
    // Another tranId's events stay out of this timeline.
    store
        .record_events(&[event(event_kind::CREATE_QR_CODE, &new_tran(), t0())])
        .await
        .unwrap();
    let timeline = store.payment_timeline(p.id, &tran).await.unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            event_kind::CREATE_QR_CODE,
            event_kind::PAY,
            event_kind::SCAN,
            event_kind::PAY,
            event_kind::PAY_RESPONSE
        ]
    );
    assert_eq!(timeline[0].payment_id, None);
    assert!(timeline[1..].iter().all(|e| e.payment_id == Some(p.id)));
    assert_eq!(timeline[2].at, t0() + secs(1));
    assert_eq!(timeline[2].body, Some(json!({"k": "SCAN"})));
    assert_eq!(timeline[2].direction, Direction::In);
}

/// A NUL character, which PostgreSQL cannot keep in text, costs neither its event nor the
/// others written with it: it is kept as U+FFFD.
async fn an_event_with_nul_is_kept_with_its_batch(store: SharedStore) {
    let tran = new_tran();
    let odd = NewEvent::new(
        event_kind::REVERSAL,
        Direction::Out,
        &tran,
        "wallet\u{0}1",
        t0(),
        "FAILED: no\u{0}pe",
    )
    .message("m\u{0}1")
    .body(Some(json!({"errorMessage": "no\u{0}pe"})));
    store
        .record_events(&[
            event(event_kind::CREATE_QR_CODE, &tran, t0() - secs(1)),
            odd,
            event(event_kind::SCAN, &tran, t0() + secs(1)),
        ])
        .await
        .unwrap();
    // No payment has these events: the timeline of the tranId alone.
    let timeline = store
        .payment_timeline(uuid::Uuid::new_v4(), &tran)
        .await
        .unwrap();
    assert_eq!(timeline.len(), 3, "{timeline:#?}");
    let kept = &timeline[1];
    assert!(!kept.outcome.contains('\0') && kept.outcome.starts_with("FAILED: no"));
    assert!(!kept.counterparty.contains('\0'));
    assert_eq!(
        kept.body.as_ref().map(|b| b["errorMessage"].is_string()),
        Some(true)
    );
}

async fn search_pages_newest_first(store: SharedStore) {
    let mut ids = Vec::new();
    for i in 0..5 {
        // Two payments share each instant: the id breaks the tie.
        let p = NewPayment {
            created_at: t0() + secs(i / 2),
            ..new_payment(&new_tran(), &format!("pay-{i}"))
        };
        assert_eq!(
            store.insert_payment(&p).await.unwrap(),
            NewPaymentOutcome::Inserted
        );
        ids.push((p.created_at, p.id));
    }
    ids.sort();
    ids.reverse();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .search_payments(&PaymentQuery {
                client_id: Some(CLIENT.into()),
                after,
                limit: 2,
                ..PaymentQuery::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|p| (p.created_at, p.id)));
        let last = page.last().unwrap();
        after = Some((last.created_at, last.id));
    }
    assert_eq!(seen, ids);
    let one = store
        .search_payments(&PaymentQuery {
            state: Some(PaymentState::WaitingForScan),
            from: Some(t0() + secs(2)),
            limit: 10,
            ..PaymentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let none = store
        .search_payments(&PaymentQuery {
            client_id: Some("pos-2".into()),
            limit: 10,
            ..PaymentQuery::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// Settlement adds up the typed amounts the service fixed (approved by the partner, settled
/// and charged at confirmation), whatever JSON is stored beside them.
async fn settlement_uses_partial_confirmations(store: SharedStore) {
    let approve = |id| PartnerAnswerRecord {
        // A float where the report used to read the amount: it must not matter any more.
        body: Some(json!({"amounts": {"approvedAmount": {"amount": 150.0, "currency": "USD"}}})),
        approved_minor: Some(1000),
        ..answer(id, PaymentState::Approved, None)
    };
    let mut approved = Vec::new();
    for _ in 0..3 {
        let id = forwarded(&store, t0()).await;
        assert!(store.record_partner_answer(&approve(id)).await.unwrap());
        approved.push(id);
    }
    for (n, (id, body, settled_minor, fee_minor)) in [
        (
            approved[0],
            json!({"id": "c0", "amounts": {"approvedAmount": {"amount": 420, "currency": "USD"}}}),
            420,
            10,
        ),
        (approved[1], json!({"id": "c1"}), 1000, 20),
    ]
    .into_iter()
    .enumerate()
    {
        let request_id = store.payment(id).await.unwrap().unwrap().message_id;
        let apply = ApplyAdvice {
            advice: AdviceRecord {
                body,
                ..advice(
                    AdviceKind::Confirmation,
                    &format!("conf-{n}"),
                    &request_id,
                    Some(id),
                )
            },
            payment_id: id,
            from: PaymentState::Approved,
            to: Some(PaymentState::Confirmed),
            mark_reversed_by_pos: false,
            settlement: Some(Settlement {
                settled_minor,
                fee_minor,
            }),
            outbox: None,
            events: Vec::new(),
            wake: None,
        };
        assert_eq!(
            store.apply_advice(&apply).await.unwrap(),
            ApplyAdviceOutcome::Applied
        );
    }
    let groups = store
        .settlement_groups(t0() - secs(60), t0() + secs(60), Some(PARTNER))
        .await
        .unwrap();
    let of = |state| groups.iter().find(|g| g.state == state).cloned();
    let confirmed = of(PaymentState::Confirmed).expect("confirmed");
    assert_eq!((confirmed.count, confirmed.amount_minor), (2, 1420));
    assert_eq!(confirmed.fee_minor, 30);
    let open = of(PaymentState::Approved).expect("approved");
    assert_eq!(
        (open.count, open.amount_minor, open.fee_minor),
        (1, 1000, 0)
    );
    assert_eq!(confirmed.currency, "USD");
    let rows = store
        .settled_payments(t0() - secs(60), t0() + secs(60), None)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .any(|r| r.payment_id == approved[0] && r.amount_minor == 420));
    // Another day, another partner: nothing.
    assert!(store
        .settlement_groups(t0() + secs(60), t0() + secs(120), None)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .settlement_groups(t0() - secs(60), t0() + secs(60), Some("wallet-9"))
        .await
        .unwrap()
        .is_empty());
}

/// Waits until a backend of this database waits for a lock: the store's statement started
/// and is held by the test's open transaction.
async fn until_a_statement_waits_on_a_lock(raw: &sqlx::PgPool) {
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(raw)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the store's statement never waited for the open transaction");
}

/// A `pay` and a reversal of the same id arriving at the same instant on PostgreSQL: each is
/// caught half-way (in a transaction the test holds open) while the other runs, and the
/// second always sees the first once it commits. Before `payment_message`, both succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_pay_and_a_reversal_of_its_id_never_both_succeed() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let raw = sqlx::PgPool::connect(&db.url).await.unwrap();

    // The pay first: its statement has taken the id and not committed when the reversal
    // comes. The reversal waits, then finds the payment.
    let mut pay = raw.begin().await.unwrap();
    sqlx::query("INSERT INTO payment_message (client_id, message_id) VALUES ($1, 'pay-1')")
        .bind(CLIENT)
        .execute(&mut *pay)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO payment (id, client_id, message_id, tran_id, state, amount_minor, \
         currency, request, created_at, scan_deadline, updated_at) VALUES \
         (gen_random_uuid(), $1, 'pay-1', $2, 'WAITING_FOR_SCAN', 100, 'USD', '{}', \
         now(), now(), now())",
    )
    .bind(CLIENT)
    .bind(new_tran())
    .execute(&mut *pay)
    .await
    .unwrap();
    let reversing = {
        let store = store.clone();
        tokio::spawn(async move {
            let reversal = advice(AdviceKind::Reversal, "rev-1", "pay-1", None);
            store.insert_orphan_reversal(&reversal).await
        })
    };
    until_a_statement_waits_on_a_lock(&raw).await;
    pay.commit().await.unwrap();
    assert_eq!(
        reversing.await.unwrap().unwrap(),
        OrphanOutcome::PaymentExists
    );
    assert_eq!(store.advice(CLIENT, "rev-1").await.unwrap(), None);

    // The reversal first: it has taken the id and stored itself, not committed, when the
    // pay comes. The pay waits, then is refused and not stored.
    let mut reversal = raw.begin().await.unwrap();
    sqlx::query("INSERT INTO payment_message (client_id, message_id) VALUES ($1, 'pay-2')")
        .bind(CLIENT)
        .execute(&mut *reversal)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO advice (client_id, message_id, kind, request_id, body, received_at) \
         VALUES ($1, 'rev-2', 'REVERSAL', 'pay-2', '{}', now())",
    )
    .bind(CLIENT)
    .execute(&mut *reversal)
    .await
    .unwrap();
    let paying = {
        let store = store.clone();
        tokio::spawn(async move {
            let late = new_payment(&new_tran(), "pay-2");
            store.insert_payment(&late).await
        })
    };
    until_a_statement_waits_on_a_lock(&raw).await;
    reversal.commit().await.unwrap();
    assert_eq!(
        paying.await.unwrap().unwrap(),
        NewPaymentOutcome::AlreadyReversed
    );
    assert_eq!(
        store.payment_by_message(CLIENT, "pay-2").await.unwrap(),
        None
    );
    raw.close().await;
    drop(store);
    db.cleanup().await;
}

/// The statements a flow runs find their row by its key, never through an index kept for the
/// sweeps (codes waiting past their deadline, answers and advices in flight). Those indexes
/// hold an entry for every payment that ever passed through their state until vacuum removes
/// it, so a claim answered from the waiting index read all of them: 119 million index
/// entries in a 30 s benchmark, half of PostgreSQL's time. The planner chose it before the
/// table had statistics, and after an `ANALYZE` taken when nothing was waiting it chose it
/// for every statement that names a state. Each case runs flows, analyzes the tables, runs
/// more, and reads how often each sweep index was scanned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_flow_never_walks_the_sweeps_indexes() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let flow = |store: SharedStore, n: usize| async move {
        let at = t0() + secs(5);
        for _ in 0..n {
            let p = waiting(&store).await;
            let claim = ScanClaim {
                to: PaymentState::Forwarded,
                ..scan(&p.tran_id, PARTNER, &Uuid::new_v4().to_string(), at)
            };
            assert!(matches!(
                store.claim_for_scan(&claim).await.unwrap(),
                ScanClaimOutcome::Claimed(_)
            ));
            assert!(store
                .record_partner_answer(&answer(p.id, PaymentState::Approved, None))
                .await
                .unwrap());
            let to_partner = NewOutboxMessage {
                first_try_until: Some(at + secs(60)),
                ..outbox_msg(p.id, AdviceKind::Confirmation, at)
            };
            let apply = ApplyAdvice {
                advice: advice(
                    AdviceKind::Confirmation,
                    &Uuid::new_v4().to_string(),
                    &p.message_id,
                    Some(p.id),
                ),
                payment_id: p.id,
                from: PaymentState::Approved,
                to: Some(PaymentState::Confirmed),
                mark_reversed_by_pos: false,
                settlement: None,
                outbox: Some(to_partner.clone()),
                events: Vec::new(),
                wake: None,
            };
            assert_eq!(
                store.apply_advice(&apply).await.unwrap(),
                ApplyAdviceOutcome::Applied
            );
            let delivered = DeliveryResult::Delivered { status: 202 };
            assert!(store
                .finish_delivery(to_partner.id, 1, &delivered, at + secs(1))
                .await
                .unwrap());
        }
    };
    flow(store.clone(), 200).await;
    let raw = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("ANALYZE payment, outbox")
        .execute(&raw)
        .await
        .unwrap();
    flow(store.clone(), 50).await;

    // A backend reports its index scans when it exits: drop the store (its connections with
    // it) and wait for them to be gone.
    drop(store);
    until_only_this_connection_is_left(&raw).await;
    let scans: Vec<(String, i64)> = sqlx::query_as(
        "SELECT indexrelname::text, idx_scan FROM pg_stat_user_indexes WHERE indexrelname IN \
         ('payment_waiting_by_deadline_idx', 'payment_in_flight_by_update_idx', \
         'payment_approved_by_update_idx', 'outbox_pending_by_next_attempt_idx') \
         ORDER BY 1",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(scans.len(), 4, "{scans:?}");
    assert!(scans.iter().all(|(_, n)| *n == 0), "{scans:?}");
    raw.close().await;
    db.cleanup().await;
}

/// The closed sets of values (a payment's state, an advice's kind, a delivery's state, an
/// event's direction) are checked by domains, not by table CHECK constraints: PostgreSQL
/// reads a table's CHECK back from text and plans it once per statement that writes the
/// table, about a dozen times per flow (migration 0014). The values are still checked.
/// Every flow starts with a QR code, gets a partner's answer and a POS's confirmation;
/// concurrent ones share a statement, and so a transaction: the rows they write carry the
/// same `xmin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_codes_answers_and_advices_share_a_statement() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let codes: Vec<QrCodeRecord> = (0..48)
        .map(|i| code_for(CLIENT, &format!("shared-{i}")))
        .collect();
    for outcome in insert_concurrently(&store, &codes).await {
        assert_eq!(outcome.unwrap(), InsertOutcome::Inserted);
    }
    let raw = sqlx::PgPool::connect(&db.url).await.unwrap();
    let transactions: i64 = sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM qr_code")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert!(
        transactions <= 48 / 4,
        "48 concurrent codes took {transactions} transactions"
    );

    // And partners' answers: the payments they move carry the same `xmin`.
    let mut ids = Vec::new();
    for _ in 0..24 {
        ids.push(forwarded(&store, t0()).await);
    }
    let answers: Vec<_> = ids
        .iter()
        .map(|&id| answer(id, PaymentState::Approved, None))
        .collect();
    let won = all_at_once(&store, &answers, |store, answer| async move {
        store.record_partner_answer(&answer).await.unwrap()
    })
    .await;
    assert!(won.iter().all(|&won| won), "{won:?}");
    let transactions = transactions_that_wrote(&raw, "payment", "id", &ids).await;
    assert!(
        transactions <= 24 / 4,
        "24 concurrent answers took {transactions} transactions"
    );

    // And the POS's confirmations of those payments.
    let mut applies = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        applies.push(confirmation_of(&store, id, &format!("shared-conf-{i}")).await);
    }
    let outcomes = all_at_once(&store, &applies, |store, apply| async move {
        store.apply_advice(&apply).await.unwrap()
    })
    .await;
    assert!(
        outcomes.iter().all(|o| *o == ApplyAdviceOutcome::Applied),
        "{outcomes:?}"
    );
    for table in ["payment", "advice", "outbox"] {
        let column = if table == "payment" {
            "id"
        } else {
            "payment_id"
        };
        let transactions = transactions_that_wrote(&raw, table, column, &ids).await;
        assert!(
            transactions <= 24 / 4,
            "24 concurrent confirmations took {transactions} transactions in {table}"
        );
    }
    raw.close().await;
    drop(store);
    db.cleanup().await;
}

/// Waits until every connection to `raw`'s database but `raw`'s own has closed: a backend
/// reports its scans to the statistics when it exits.
async fn until_only_this_connection_is_left(raw: &sqlx::PgPool) {
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                  AND pid <> pg_backend_pid()";
    let mut open: i64 = -1;
    for _ in 0..1000 {
        open = sqlx::query_scalar(others).fetch_one(raw).await.unwrap();
        if open == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    if open != 0 {
        let left: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT state, query FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid()",
        )
        .fetch_all(raw)
        .await
        .unwrap();
        panic!("the store's connections never closed: {left:?}");
    }
}

/// How many times the payments and the advices were read whole, once the count has stood
/// still for a while: a backend leaves `pg_stat_activity` a moment before it reports its
/// scans.
async fn whole_reads(raw: &sqlx::PgPool) -> i64 {
    let read = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT sum(seq_scan)::int8 FROM pg_stat_user_tables \
             WHERE relname IN ('payment', 'advice')",
        )
        .fetch_one(raw)
        .await
        .unwrap()
    };
    let mut last = read().await;
    let mut still = 0;
    while still < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = read().await;
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    last
}

/// The hot path's groups (pays, claims, answers, advices) reach each write's rows through an
/// index whatever the statistics say. Joined to the group's tranIds (the advices' request
/// ids) directly, the claim (the pay's check for a reversal that came first) was hashed
/// against a read of every payment (every advice) while the tables had never been
/// analyzed, as in a new database's first minute: 4 to 7 ms a group in a benchmark (issue
/// 14, ninth round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_grouped_writes_never_read_every_row() {
    let db = TestDb::postgres().await;
    drop(db.store().await);
    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    // As many payments as a minute at full load stores, each the size of a real one
    // (a POS's request is about a kilobyte): a table large enough that reading it whole
    // is never the cheaper way to a group's few rows.
    for sql in [
        // The statistics stay as young as they are: no ANALYZE.
        "ALTER TABLE payment SET (autovacuum_enabled = false)",
        "ALTER TABLE advice SET (autovacuum_enabled = false)",
        "INSERT INTO payment (id, client_id, message_id, tran_id, state, amount_minor, \
         currency, request, created_at, scan_deadline, updated_at) \
         SELECT gen_random_uuid(), 'old', 'old-' || g, 'old-tran-' || g, 'CONFIRMED', 1000, \
         '710', jsonb_build_object('request', repeat('x', 1000)), now(), now(), now() \
         FROM generate_series(1, 5000) g",
        "INSERT INTO advice (client_id, message_id, kind, request_id, body, received_at) \
         SELECT 'old', 'rev-' || g, 'REVERSAL', 'old-' || g, '{}', now() \
         FROM generate_series(1, 5000) g",
    ] {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    until_only_this_connection_is_left(&raw).await;
    let before = whole_reads(&raw).await;

    let store = db.store().await;
    let mut claimed_ids = Vec::new();
    for round in 0..4 {
        let pays: Vec<NewPayment> = (0..24)
            .map(|i| new_payment(&new_tran(), &format!("young-{round}-{i}")))
            .collect();
        let stored = all_at_once(&store, &pays, |store, p| async move {
            store.insert_payment(&p).await.unwrap()
        })
        .await;
        assert!(
            stored.iter().all(|o| *o == NewPaymentOutcome::Inserted),
            "{stored:?}"
        );
        let claims: Vec<ScanClaim> = pays
            .iter()
            .enumerate()
            .map(|(i, p)| ScanClaim {
                to: PaymentState::Forwarded,
                ..scan(&p.tran_id, PARTNER, &format!("young-{round}-{i}"), t0())
            })
            .collect();
        let claimed = all_at_once(&store, &claims, |store, claim| async move {
            store.claim_for_scan(&claim).await.unwrap()
        })
        .await;
        assert!(
            claimed
                .iter()
                .all(|o| matches!(o, ScanClaimOutcome::Claimed(_))),
            "{claimed:?}"
        );
        // And the partners' answers and the POS's confirmations of the same payments.
        let answers: Vec<_> = pays
            .iter()
            .map(|p| answer(p.id, PaymentState::Approved, None))
            .collect();
        let won = all_at_once(&store, &answers, |store, a| async move {
            store.record_partner_answer(&a).await.unwrap()
        })
        .await;
        assert!(won.iter().all(|&won| won), "{won:?}");
        let mut applies = Vec::new();
        for (i, p) in pays.iter().enumerate() {
            applies.push(confirmation_of(&store, p.id, &format!("young-conf-{round}-{i}")).await);
        }
        let applied = all_at_once(&store, &applies, |store, a| async move {
            store.apply_advice(&a).await.unwrap()
        })
        .await;
        assert!(
            applied.iter().all(|o| *o == ApplyAdviceOutcome::Applied),
            "{applied:?}"
        );
        claimed_ids.extend(pays.iter().map(|p| p.id));
    }
    // Groups formed: otherwise the test would pass with any statement.
    let transactions = transactions_that_wrote(&raw, "payment", "id", &claimed_ids).await;
    assert!(
        transactions <= 96 / 4,
        "96 claims in rounds of 24 took {transactions} transactions"
    );
    drop(store);
    until_only_this_connection_is_left(&raw).await;
    let reads = whole_reads(&raw).await - before;
    assert_eq!(
        reads, 0,
        "the groups read every payment or advice {reads} times"
    );
    raw.close().await;
    db.cleanup().await;
}

/// How many transactions last wrote the rows of `table` whose `column` is one of `ids`
/// (their distinct `xmin`s).
async fn transactions_that_wrote(
    raw: &sqlx::PgPool,
    table: &str,
    column: &str,
    ids: &[Uuid],
) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(DISTINCT xmin::text) FROM {table} WHERE {column} = ANY($1)"
    ))
    .bind(ids)
    .fetch_one(raw)
    .await
    .unwrap()
}

/// Every flow's scan claims its payment; concurrent claims share a statement, and so a
/// transaction: the payments they move carry the same `xmin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_claims_share_a_statement() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let mut payments = Vec::new();
    for _ in 0..24 {
        payments.push(waiting(&store).await);
    }
    // Each with an event, in an order that is not the payments' (nor their tranIds').
    let claims: Vec<_> = payments
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| ScanClaim {
            events: vec![NewEvent::new(
                event_kind::SCAN,
                Direction::In,
                p.tran_id.clone(),
                PARTNER,
                t0() + secs(1),
                format!("shared-{i}"),
            )],
            ..scan(&p.tran_id, PARTNER, &format!("shared-{i}"), t0() + secs(1))
        })
        .collect();
    let outcomes = all_at_once(&store, &claims, |store, claim| async move {
        store.claim_for_scan(&claim).await.unwrap()
    })
    .await;
    for (outcome, claim) in outcomes.into_iter().zip(&claims) {
        let p = payments
            .iter()
            .find(|p| p.tran_id == claim.tran_id)
            .unwrap();
        match outcome {
            ScanClaimOutcome::Claimed(claimed) => assert_eq!(claimed.id, p.id),
            other => panic!("{other:?}"),
        }
        let timeline = store.payment_timeline(p.id, &p.tran_id).await.unwrap();
        let events: Vec<_> = timeline
            .iter()
            .filter(|e| e.kind == event_kind::SCAN)
            .map(|e| (e.payment_id, e.outcome.as_str()))
            .collect();
        assert_eq!(
            events,
            [(Some(p.id), claim.scan_message_id.as_str())],
            "{timeline:?}"
        );
    }
    let ids: Vec<Uuid> = payments.iter().map(|p| p.id).collect();
    let raw = sqlx::PgPool::connect(&db.url).await.unwrap();
    let transactions = transactions_that_wrote(&raw, "payment", "id", &ids).await;
    assert!(
        transactions <= 24 / 4,
        "24 concurrent claims took {transactions} transactions"
    );
    raw.close().await;
    drop(store);
    db.cleanup().await;
}

/// A scan reads the newest payment of its tranId through the tranId's index, never by
/// walking all payments newest first until one matches: that walk is what the planner
/// picks for `ORDER BY created_at DESC LIMIT 1` when its statistics say a tranId has many
/// payments (early in a database's life, or after a skewed sample), and for a tranId with
/// no payment yet, the usual case of a scan that comes before its pay, it reads every
/// payment ever stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_scan_never_walks_every_payment_to_find_its_own() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let mut paid = Vec::new();
    for i in 0..300 {
        let code = code_for(CLIENT, &format!("walk-{i}"));
        store.insert_qr_code(&code).await.unwrap();
        let pay = new_payment(&code.tran_id, &format!("pay-walk-{i}"));
        store.insert_payment(&pay).await.unwrap();
        paid.push(code.tran_id);
    }
    let unpaid = code_for(CLIENT, "walk-unpaid");
    store.insert_qr_code(&unpaid).await.unwrap();
    // One connection: every other one this database has is the store's.
    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    for statement in [
        "ALTER TABLE payment ALTER COLUMN tran_id SET (n_distinct = 2)",
        "ANALYZE payment",
    ] {
        sqlx::query(statement).execute(&raw).await.unwrap();
    }
    // New connections, so that no plan made before the statistics is reused.
    drop(store);
    let store = db.store().await;
    for _ in 0..8 {
        let context = store.scan_context(&unpaid.tran_id).await.unwrap().unwrap();
        assert_eq!(context.latest, None);
        assert!(store
            .scan_context(&paid[7])
            .await
            .unwrap()
            .unwrap()
            .latest
            .is_some());
        assert_eq!(
            store
                .latest_payment_for_tran(&unpaid.tran_id)
                .await
                .unwrap(),
            None
        );
        assert!(store
            .latest_payment_for_tran(&paid[9])
            .await
            .unwrap()
            .is_some());
    }
    // A backend reports its index scans when it exits.
    drop(store);
    until_only_this_connection_is_left(&raw).await;
    let walks: i64 = sqlx::query_scalar(
        "SELECT idx_scan FROM pg_stat_user_indexes \
         WHERE indexrelname = 'payment_created_at_id_idx'",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    assert_eq!(
        walks, 0,
        "scans walked the payments newest first {walks} times"
    );
    raw.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_closed_sets_are_checked_by_domains_not_by_table_checks() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    let raw = sqlx::PgPool::connect(&db.url).await.unwrap();
    let table_checks: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, conname::text FROM pg_constraint \
         WHERE contype = 'c' AND conrelid <> 0 AND connamespace = 'public'::regnamespace \
         ORDER BY 1, 2",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(table_checks, Vec::<(String, String)>::new());
    let columns: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, domain_name::text \
         FROM information_schema.columns WHERE table_schema = 'public' AND \
         (table_name, column_name) IN (('payment', 'state'), ('advice', 'kind'), \
         ('outbox', 'kind'), ('outbox', 'state'), ('payment_event', 'direction')) ORDER BY 1, 2",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    let domain = |t: &str, c: &str, d: &str| (t.to_owned(), c.to_owned(), Some(d.to_owned()));
    assert_eq!(
        columns,
        vec![
            domain("advice", "kind", "advice_kind"),
            domain("outbox", "kind", "advice_kind"),
            domain("outbox", "state", "outbox_state"),
            domain("payment", "state", "payment_state"),
            domain("payment_event", "direction", "event_direction"),
        ]
    );

    // A value outside a set is refused where it is written, as the table checks did.
    let p = waiting(&store).await;
    let refused = [
        "UPDATE payment SET state = 'PAID' WHERE id = $1",
        "INSERT INTO payment_event (payment_id, tran_id, at, kind, direction, counterparty, \
         outcome) SELECT id, tran_id, now(), 'PAY', 'SIDEWAYS', 'pos', 'RECEIVED' \
         FROM payment WHERE id = $1",
    ];
    for sql in refused {
        let error = sqlx::query(sql).bind(p.id).execute(&raw).await.unwrap_err();
        let code = error.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("23514"), "{sql}: {error}");
    }
    for (value, domain) in [
        ("CONFIRMED", "payment_state"),
        ("CONFIRMATION", "advice_kind"),
        ("DEAD", "outbox_state"),
        ("OUT", "event_direction"),
    ] {
        sqlx::query(&format!("SELECT $1::{domain}"))
            .bind(value)
            .execute(&raw)
            .await
            .unwrap();
        let error = sqlx::query(&format!("SELECT $1::{domain}"))
            .bind(value.to_lowercase())
            .execute(&raw)
            .await
            .unwrap_err();
        let code = error.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("23514"), "{domain}: {error}");
    }
    raw.close().await;
    drop(store);
    db.cleanup().await;
}

/// A TCP relay between the store and PostgreSQL that counts the client's lone `Sync`
/// messages (sqlx's connection test, a round trip of its own) and can cut every connection
/// it carries, as a database restart or a proxy's idle timeout would.
struct Relay {
    url: String,
    tests: Arc<AtomicUsize>,
    cut: Arc<tokio::sync::Notify>,
}

impl Relay {
    async fn to(db_url: &str) -> Relay {
        let server: String = {
            let after_scheme = &db_url[db_url.find("://").unwrap() + 3..];
            let authority = &after_scheme[..after_scheme.find('/').unwrap()];
            authority.rsplit('@').next().unwrap().to_owned()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = db_url.replace(&server, &listener.local_addr().unwrap().to_string());
        let tests = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (counted, cutting) = (Arc::clone(&tests), Arc::clone(&cut));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = tokio::net::TcpStream::connect(&server).await.unwrap();
                let (counted, cutting) = (Arc::clone(&counted), Arc::clone(&cutting));
                tokio::spawn(async move {
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = upstream.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = from_client.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            if buf[..n] == [b'S', 0, 0, 0, 4] {
                                counted.fetch_add(1, SeqCst);
                            }
                            to_server.write_all(&buf[..n]).await?;
                        }
                    };
                    let down = tokio::io::copy(&mut from_server, &mut to_client);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cutting.notified() => {}
                    }
                });
            }
        });
        Relay { url, tests, cut }
    }

    fn tests(&self) -> usize {
        self.tests.load(SeqCst)
    }

    fn cut_all(&self) {
        self.cut.notify_waiters();
    }
}

/// A connection taken from the pool moments after its last statement is used as it is: sqlx
/// tests each one it hands out (a round trip) unless told otherwise, which at load was one
/// more wake-up of PostgreSQL per statement. One idle for longer is still tested first, so
/// a connection cut while idle (a restart, a proxy's timeout) is replaced, not failed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_busy_connection_is_not_tested_and_an_idle_one_is() {
    let db = TestDb::postgres().await;
    db.store().await; // migrated directly, not through the relay
    let relay = Relay::to(&db.url).await;
    let store = qrhub::store::connect(&relay.url, 4).await.unwrap();
    store.payment(Uuid::new_v4()).await.unwrap();

    let before = relay.tests();
    for _ in 0..40 {
        assert_eq!(store.payment(Uuid::new_v4()).await.unwrap(), None);
    }
    // sqlx always tests a connection when it comes back (it cannot be told not to): one per
    // statement, the last maybe not yet sent. Testing on the way out as well made it two; none
    // at all would mean the relay is not in the path.
    let tests = relay.tests() - before;
    assert!(
        (35..=45).contains(&tests),
        "{tests} connection tests for 40 statements"
    );

    // Every connection is cut while idle; once they have been idle long enough to be tested,
    // the next statement gets a new connection and succeeds.
    relay.cut_all();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    for _ in 0..4 {
        assert_eq!(store.payment(Uuid::new_v4()).await.unwrap(), None);
    }

    // Every connection is cut while busy (a restart under load): they were all used a
    // moment ago. The first statement finds its connection gone; the pool then tests the
    // others before use, so the next ones get new connections instead of failing too.
    let busy = futures::future::join_all((0..4).map(|_| store.payment(Uuid::new_v4()))).await;
    assert!(busy.iter().all(|r| r.is_ok()), "{busy:?}");
    let open = store.pool_stats().size;
    assert!(open >= 3, "{open} connections open; the case needs several");
    relay.cut_all();
    let mut failed = 0;
    for _ in 0..8 {
        if store.payment(Uuid::new_v4()).await.is_err() {
            failed += 1;
        }
    }
    assert!(
        failed <= 1,
        "{failed} of 8 statements failed on connections cut while busy"
    );
    drop(store);
    db.cleanup().await;
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::TestDb::postgres().await.run(super::$case).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::TestDb::sqlite().await.run(super::$case).await;
                }
            )*
        }
    };
}

conformance!(
    a_claim_goes_straight_to_forwarded,
    a_scan_id_is_used_once_per_partner,
    an_advice_queued_for_its_first_try_is_leased_to_it,
    a_scan_reads_its_code_and_newest_payment,
    events_ride_with_state_changes,
    an_event_with_nul_is_kept_with_its_batch,
    search_pages_newest_first,
    settlement_uses_partial_confirmations,
    migrate_twice_and_ping,
    qr_codes,
    concurrent_codes_each_get_their_own_answer,
    concurrent_advices_are_each_applied_as_if_alone,
    concurrent_answers_are_each_their_own_compare_and_set,
    concurrent_pays_each_get_their_own_answer,
    payment_insert_and_read,
    tran_id_in_use_while_live,
    already_reversed,
    an_orphan_reversal_of_a_stored_payment_is_refused,
    claim_for_scan_records_the_scan,
    concurrent_claims_one_wins,
    concurrent_claims_are_each_their_own_compare_and_set,
    claim_races_expiry,
    abandon_waiting_is_compare_and_set,
    claim_races_abandon,
    unadvised_approvals_are_listed_oldest_first,
    change_state_is_compare_and_set_with_its_riders,
    transition_is_compare_and_set,
    partner_answer_with_reversal,
    partner_answer_rolls_back_when_the_outbox_insert_fails,
    apply_advice_happy_duplicate_and_stale,
    apply_advice_keeping_the_state,
    outbox_lease_and_fencing,
    deliveries_are_finished_together_each_on_its_own_try,
    outbox_claim_limit_and_order,
    concurrent_outbox_claims_are_disjoint,
    dead_letters_and_operator_retry,
    outbox_stats_count_pending_rows,
    pool_stats_are_consistent,
    recover_repairs_what_a_crash_left,
    recovery_of_a_pos_reversed_payment_ends_reversed,
    concurrent_recovery_queues_one_reversal,
    expired_waiting_lists_past_deadlines,
    times_round_trip,
);

// ---------------------------------------------------------------------------------------
// SQLite only: how the file is opened.

#[tokio::test]
async fn sqlite_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/qrhub.db");
    let store = connect(&format!("sqlite://{}", path.display()), 4)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(path.exists());
    let p = new_payment(&new_tran(), "pay-1");
    assert_eq!(
        store.insert_payment(&p).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    drop(store);
    // Reopened, the data is there.
    let store = connect(&format!("sqlite://{}", path.display()), 4)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(store.payment(p.id).await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = connect("sqlite::memory:", 4).await.unwrap();
    store.migrate().await.unwrap();
    let p = new_payment(&new_tran(), "pay-1");
    assert_eq!(
        store.insert_payment(&p).await.unwrap(),
        NewPaymentOutcome::Inserted
    );
    assert_eq!(state_of(&store, p.id).await, PaymentState::WaitingForScan);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writes_never_fail_busy() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let p = new_payment(&new_tran(), &format!("pay-{i}"));
            store.insert_payment(&p).await?;
            let claim = scan(&p.tran_id, PARTNER, &format!("scan-{i}"), t0());
            store.claim_for_scan(&claim).await?;
            store
                .transition(p.id, PaymentState::Matched, PaymentState::Forwarded, t0())
                .await?;
            let ans = answer(
                p.id,
                PaymentState::Unknown,
                Some(outbox_msg(p.id, AdviceKind::Reversal, t0())),
            );
            store.record_partner_answer(&ans).await?;
            store.payment(p.id).await
        }));
    }
    for task in tasks {
        let stored = task.await.unwrap().unwrap().unwrap();
        assert_eq!(stored.state, PaymentState::Unknown);
    }
    assert_eq!(
        store
            .outbox_by_state(OutboxState::Pending, 1000)
            .await
            .unwrap()
            .len(),
        100
    );
    db.cleanup().await;
}

/// SQLite's writer commits the writes that wait together as one batch (one fsync): many
/// writes from tasks at once, some losing their compare-and-set and one failing half way,
/// are each answered as if alone, and the failed one leaves the others' writes stored.
/// On a current-thread runtime every task queues its write before the writer runs, so the
/// batching is not left to the machine's timing.
/// A batch in which an old payment takes an advice, whose event the writer inserts at the
/// batch's end, and then the retention purge deletes that payment: the batch's other writes
/// are kept. (The event stays without its payment until the events' own purge, as on
/// PostgreSQL: the timeline has no foreign key since SQLite's migration 0010.)
#[tokio::test]
async fn sqlite_a_batch_that_purges_a_payment_it_just_advised_keeps_its_other_writes() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let id = approved(&store).await;
    let confirm = ApplyAdvice {
        advice: advice(AdviceKind::Confirmation, "conf-1", "pay-x", Some(id)),
        payment_id: id,
        from: PaymentState::Approved,
        to: Some(PaymentState::Confirmed),
        mark_reversed_by_pos: false,
        settlement: None,
        outbox: None,
        events: Vec::new(),
        wake: None,
    };
    assert_eq!(
        store.apply_advice(&confirm).await.unwrap(),
        ApplyAdviceOutcome::Applied
    );
    let late = ApplyAdvice {
        advice: advice(AdviceKind::Confirmation, "conf-2", "pay-x", Some(id)),
        from: PaymentState::Confirmed,
        to: None,
        events: vec![NewEvent::new(
            event_kind::CONFIRMATION,
            Direction::In,
            "t",
            CLIENT,
            t0(),
            "ACCEPTED",
        )
        .payment(id)],
        ..confirm.clone()
    };
    let other = new_payment(&new_tran(), "pay-other");
    // On this test's one thread the writer runs only once all three are queued, in this
    // order: one batch.
    let (absorbed, purged, inserted) = tokio::join!(
        store.apply_advice(&late),
        store.purge(Purge::Payments, t0() + Duration::days(1), 100),
        store.insert_payment(&other),
    );
    assert_eq!(absorbed.unwrap(), ApplyAdviceOutcome::Applied);
    assert_eq!(purged.unwrap(), Some(1));
    assert_eq!(inserted.unwrap(), NewPaymentOutcome::Inserted);
    assert!(store.payment(id).await.unwrap().is_none());
    assert!(store.payment(other.id).await.unwrap().is_some());
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_concurrent_writes_share_commits_and_fail_alone() {
    let db = TestDb::sqlite().await;
    let sqlite = SqliteStore::connect(&db.url).await.unwrap();
    sqlite.migrate().await.unwrap();
    let store: SharedStore = std::sync::Arc::new(sqlite.clone());

    let mut trans = Vec::new();
    for _ in 0..20 {
        trans.push(waiting(&store).await);
    }
    // Its partner answer's reversal reuses an existing outbox row's id: the answer's
    // UPDATE runs, then its outbox insert fails, and the job must take the UPDATE back.
    let existing = one_outbox_row(&store).await;
    let failing = forwarded(&store, t0()).await;
    let mut clash = outbox_msg(failing, AdviceKind::Reversal, t0());
    clash.id = existing.id;
    let before = sqlite.writer_stats();

    // Two scans per payment (one wins, one finds nothing waiting), and the failing answer.
    let mut claims = Vec::new();
    for (i, p) in trans.iter().enumerate() {
        for side in ["a", "b"] {
            // Each claim brings its event, which the writer inserts for the whole batch
            // before its commit: only the winners' may be stored.
            let mut claim = scan(&p.tran_id, PARTNER, &format!("scan-{i}-{side}"), t0());
            claim.events = vec![NewEvent::new(
                event_kind::SCAN,
                Direction::In,
                &p.tran_id,
                PARTNER,
                t0(),
                "MATCHED",
            )
            .message(format!("scan-{i}-{side}"))];
            let store = store.clone();
            claims.push(tokio::spawn(
                async move { store.claim_for_scan(&claim).await },
            ));
        }
    }
    let fail = {
        let mut answer = answer(failing, PaymentState::Unknown, Some(clash));
        answer.events = vec![NewEvent::new(
            event_kind::SCAN,
            Direction::In,
            "failing",
            PARTNER,
            t0(),
            "NEVER STORED",
        )];
        let store = store.clone();
        tokio::spawn(async move { store.record_partner_answer(&answer).await })
    };
    let mut outcomes = Vec::new();
    for claim in claims {
        outcomes.push(claim.await.unwrap().unwrap());
    }
    assert!(
        fail.await.unwrap().is_err(),
        "the clashing outbox insert fails"
    );

    let after = sqlite.writer_stats();
    assert_eq!(after.jobs - before.jobs, 41);
    assert!(
        after.commits - before.commits <= 2,
        "41 writes queued at once should share one or two commits: {before:?} -> {after:?}"
    );
    for (pair, p) in outcomes.chunks(2).zip(&trans) {
        let won = pair
            .iter()
            .filter(|o| matches!(o, ScanClaimOutcome::Claimed(c) if c.id == p.id))
            .count();
        let lost = pair
            .iter()
            .filter(|o| **o == ScanClaimOutcome::NothingWaiting)
            .count();
        assert_eq!((won, lost), (1, 1), "{pair:?}");
        let stored = store.payment(p.id).await.unwrap().unwrap();
        assert_eq!(stored.state, PaymentState::Matched);
        assert!(stored.scan_message_id.is_some());
        let scans: Vec<_> = store
            .payment_timeline(p.id, &p.tran_id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == event_kind::SCAN)
            .collect();
        assert_eq!(scans.len(), 1, "the winning claim's event alone: {scans:?}");
        assert_eq!(scans[0].message_id, stored.scan_message_id);
        assert_eq!(scans[0].payment_id, Some(p.id));
    }
    assert!(
        store
            .payment_timeline(failing, "failing")
            .await
            .unwrap()
            .is_empty(),
        "the failed answer's event went with it"
    );
    let stored = store.payment(failing).await.unwrap().unwrap();
    assert_eq!(stored.state, PaymentState::Forwarded);
    assert_eq!(stored.partner_status, None);
    assert!(store.outbox_for_payment(failing).await.unwrap().is_empty());

    // Reopened (what a restart sees), every claim is there.
    drop((store, sqlite));
    let reopened = db.store().await;
    for p in &trans {
        assert_eq!(state_of(&reopened, p.id).await, PaymentState::Matched);
    }
    drop(reopened);
    db.cleanup().await;
}
