//! Wake-ups for requests that wait: a held `pay` waiting for its scan or its partner's
//! answer, and an early scan waiting for its `pay`. A waiter sleeps on a [`Notify`] with its
//! deadline as the timer, so waiting costs no polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A registration for one key; dropping the last one for a key forgets the key.
#[derive(Debug)]
pub struct Subscription<'a> {
    waiters: &'a Waiters,
    key: String,
    pub notify: Arc<Notify>,
}

impl Waiters {
    pub fn payment_key(payment_id: uuid::Uuid) -> String {
        format!("pay:{payment_id}")
    }

    pub fn tran_key(tran_id: &str) -> String {
        format!("tran:{tran_id}")
    }

    /// Registers interest in `key`. Create the `notified()` future and `enable()` it before
    /// reading the state you wait on, so a wake-up between the read and the wait is not lost.
    pub fn subscribe(&self, key: String) -> Subscription<'_> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let notify = map.entry(key.clone()).or_default().clone();
        Subscription {
            waiters: self,
            key,
            notify,
        }
    }

    /// Wakes everyone waiting on `key` in this process.
    pub fn wake(&self, key: &str) {
        let notify = {
            let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.get(key).cloned()
        };
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.map.lock().unwrap_or_else(|e| e.into_inner());
        // Two references are left when this is the last subscription: ours and the map's.
        if Arc::strong_count(&self.notify) <= 2 {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wake_between_check_and_wait_is_not_lost() {
        let waiters = Waiters::default();
        let sub = waiters.subscribe("k".into());
        let notified = sub.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        waiters.wake("k");
        tokio::time::timeout(Duration::from_secs(1), notified)
            .await
            .expect("the wake-up was kept");
    }

    #[tokio::test]
    async fn keys_are_forgotten_when_nobody_waits() {
        let waiters = Waiters::default();
        {
            let _a = waiters.subscribe("k".into());
            let _b = waiters.subscribe("k".into());
            assert_eq!(waiters.len(), 1);
        }
        assert!(waiters.is_empty());
    }
}
