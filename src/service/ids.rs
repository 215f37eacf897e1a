//! The ids the hub mints for what it stores: payments, tranIds and outbox messages.
//!
//! Each is a UUID of version 7: the first 48 bits are the creation time in milliseconds (from
//! the hub's clock), the other 74 are random. Ids minted close together in time sort close
//! together, so the indexes they lead (most of those a flow writes, on both stores) take new
//! entries at their right-hand edge, in pages a moment's other writes
//! just touched, instead of in a random leaf page each. A random id (version 4) made each
//! write of a flow dirty pages of its own: on SQLite that is whole pages in the WAL and its
//! fsync, on PostgreSQL a full-page image after each checkpoint (BENCHMARKS.md, issue 14
//! eighth round).
//!
//! What the time part tells: when the hub minted the id. For a tranId, anyone who reads the
//! QR code learns when the POS asked for it, while the customer stands at that POS; nothing
//! the hub decides depends on it. The 74 random bits still put a live tranId out of reach
//! of guessing.

use chrono::{DateTime, Utc};
use uuid::{NoContext, Timestamp, Uuid};

/// A new time-ordered id, minted at `now`.
pub(crate) fn new_id(now: DateTime<Utc>) -> Uuid {
    // Before 1970 (a test's clock, say) counts as 1970: the id stays unique, only its place
    // in the order is lost.
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        seconds,
        now.timestamp_subsec_nanos(),
    ))
}

/// A new tranId, minted at `now`: 32 lower-case hex characters, as in Electrum's published
/// example.
pub(crate) fn new_tran_id(now: DateTime<Utc>) -> String {
    new_id(now).simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn ids_minted_later_sort_after_earlier_ones() {
        let start = DateTime::from_timestamp_millis(1_764_000_000_000).expect("a valid time");
        let ids: Vec<Uuid> = (0..1000)
            .map(|ms| new_id(start + TimeDelta::milliseconds(ms)))
            .collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        let tran_ids: Vec<String> = (0..1000)
            .map(|ms| new_tran_id(start + TimeDelta::milliseconds(ms)))
            .collect();
        assert!(tran_ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn ids_minted_at_the_same_time_still_differ_and_keep_the_tran_id_shape() {
        let now = DateTime::from_timestamp_millis(1_764_000_000_000).expect("a valid time");
        let ids: std::collections::HashSet<Uuid> = (0..10_000).map(|_| new_id(now)).collect();
        assert_eq!(ids.len(), 10_000);
        let tran_id = new_tran_id(now);
        assert_eq!(tran_id.len(), 32);
        assert!(tran_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // The time part is the hub's clock's, in milliseconds.
        assert!(tran_id.starts_with(&format!("{:012x}", now.timestamp_millis())));
    }

    #[test]
    fn a_clock_before_1970_still_mints_ids() {
        let before = DateTime::from_timestamp_millis(-5_000).expect("a valid time");
        assert_ne!(new_id(before), new_id(before));
    }
}
