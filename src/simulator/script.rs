//! The queues of scripted behaviours, consumed one per incoming message.

use std::collections::{HashMap, VecDeque};

use super::behaviour::{AdviceBehaviour, PayBehaviour};

/// Scripted answers. A behaviour keyed by `tranId` takes precedence over the shared queue;
/// both are first in, first out. When both are empty the default applies.
#[derive(Debug, Default)]
pub(crate) struct Script {
    pay: VecDeque<PayBehaviour>,
    pay_by_tran: HashMap<String, VecDeque<PayBehaviour>>,
    advice: VecDeque<AdviceBehaviour>,
    advice_by_tran: HashMap<String, VecDeque<AdviceBehaviour>>,
    /// Advice ids held by a `FailTimes`: how many failures are left, and with which status.
    /// An id stays here once its failures are spent, so that it keeps getting 202.
    failing: HashMap<String, (u32, u16)>,
}

impl Script {
    pub(crate) fn push_pay(&mut self, tran_id: Option<String>, b: PayBehaviour) {
        match tran_id {
            Some(t) => self.pay_by_tran.entry(t).or_default().push_back(b),
            None => self.pay.push_back(b),
        }
    }

    pub(crate) fn next_pay(&mut self, tran_id: &str) -> Option<PayBehaviour> {
        pop_keyed(&mut self.pay_by_tran, Some(tran_id)).or_else(|| self.pay.pop_front())
    }

    pub(crate) fn push_advice(&mut self, tran_id: Option<String>, b: AdviceBehaviour) {
        match tran_id {
            Some(t) => self.advice_by_tran.entry(t).or_default().push_back(b),
            None => self.advice.push_back(b),
        }
    }

    /// The behaviour for one delivery of advice `advice_id`: its `FailTimes` state if it has
    /// one, else the next scripted behaviour.
    pub(crate) fn next_advice(
        &mut self,
        advice_id: &str,
        tran_id: Option<&str>,
    ) -> Option<AdviceBehaviour> {
        if let Some(state) = self.failing.get_mut(advice_id) {
            return Some(spend(state));
        }
        pop_keyed(&mut self.advice_by_tran, tran_id).or_else(|| self.advice.pop_front())
    }

    /// `FailTimes { n, status }` reached advice `advice_id`: hold the id, and answer this
    /// delivery (the first of the `n`).
    pub(crate) fn start_failing(
        &mut self,
        advice_id: &str,
        n: u32,
        status: u16,
    ) -> AdviceBehaviour {
        let state = self
            .failing
            .entry(advice_id.to_owned())
            .or_insert((n, status));
        spend(state)
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

fn spend(state: &mut (u32, u16)) -> AdviceBehaviour {
    if state.0 == 0 {
        AdviceBehaviour::Accept
    } else {
        state.0 -= 1;
        AdviceBehaviour::Status(state.1)
    }
}

fn pop_keyed<B>(map: &mut HashMap<String, VecDeque<B>>, key: Option<&str>) -> Option<B> {
    let key = key?;
    let queue = map.get_mut(key)?;
    let b = queue.pop_front();
    if queue.is_empty() {
        map.remove(key);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorType;

    #[test]
    fn keyed_behaviours_come_first_then_the_shared_queue_in_order() {
        let mut s = Script::default();
        s.push_pay(None, PayBehaviour::Hang);
        s.push_pay(None, PayBehaviour::DropConnection);
        s.push_pay(
            Some("t1".into()),
            PayBehaviour::decline(ErrorType::DoNotHonor),
        );
        assert_eq!(s.next_pay("t2"), Some(PayBehaviour::Hang));
        assert_eq!(
            s.next_pay("t1"),
            Some(PayBehaviour::decline(ErrorType::DoNotHonor))
        );
        assert_eq!(s.next_pay("t1"), Some(PayBehaviour::DropConnection));
        assert_eq!(s.next_pay("t1"), None);
    }

    #[test]
    fn fail_times_holds_its_advice_id_then_accepts_it_for_good() {
        let mut s = Script::default();
        s.push_advice(None, AdviceBehaviour::NotFound);
        assert_eq!(s.start_failing("a", 2, 500), AdviceBehaviour::Status(500));
        assert_eq!(s.next_advice("a", None), Some(AdviceBehaviour::Status(500)));
        assert_eq!(s.next_advice("a", None), Some(AdviceBehaviour::Accept));
        assert_eq!(s.next_advice("a", None), Some(AdviceBehaviour::Accept));
        // Other ids still take the queue.
        assert_eq!(s.next_advice("b", None), Some(AdviceBehaviour::NotFound));
        assert_eq!(s.next_advice("b", None), None);
    }

    #[test]
    fn fail_times_zero_accepts_at_once() {
        let mut s = Script::default();
        assert_eq!(s.start_failing("a", 0, 500), AdviceBehaviour::Accept);
    }
}
