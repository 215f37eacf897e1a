//! The open-files budget. Every connection is a file descriptor, and so is every database
//! and partner connection: a process that may open fewer files than
//! `server.max_connections` has its accepts fail (EMFILE) long before the cap, and while they
//! fail no new POS gets in. Many systems start services with a soft limit of 1,024 and a
//! far higher hard one, so the hub raises its soft limit to the hard one (as Go's runtime and
//! most servers do), and says at start-up when even that cannot hold the cap.

/// Descriptors kept for what is not a client connection: the database pool, partner
/// connections, the listeners, the log and the SQLite files.
const RESERVED: u64 = 512;

/// What start-up found: the limit in force, and whether it holds `max_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenFiles {
    pub limit: Option<u64>,
    pub holds_the_cap: bool,
}

/// Raises the soft open-files limit to the hard one and checks it against the cap.
#[cfg(unix)]
pub(crate) fn raise_limit(max_connections: usize) -> OpenFiles {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limits = getrlimit(Resource::Nofile);
    // `None` is unlimited: raise only a finite soft limit below the hard one.
    let below_hard = match (limits.current, limits.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let raised = rustix::process::Rlimit {
            current: limits.maximum,
            maximum: limits.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limits = getrlimit(Resource::Nofile),
            Err(e) => tracing::debug!(error = %e, "cannot raise the open-files limit"),
        }
    }
    let open_files = OpenFiles {
        limit: limits.current,
        holds_the_cap: limits
            .current
            .is_none_or(|limit| limit >= max_connections as u64 + RESERVED),
    };
    if let (Some(limit), false) = (open_files.limit, open_files.holds_the_cap) {
        tracing::warn!(
            open_files_limit = limit,
            max_connections,
            "server.max_connections does not fit in the open-files limit: connections past \
             about {} are refused by the system, not by the hub; raise the limit \
             (ulimit -n, systemd LimitNOFILE, docker --ulimit nofile) or lower the cap",
            limit.saturating_sub(RESERVED),
        );
    }
    open_files
}

#[cfg(not(unix))]
pub(crate) fn raise_limit(_max_connections: usize) -> OpenFiles {
    OpenFiles {
        limit: None,
        holds_the_cap: true,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let found = raise_limit(100);
        assert_eq!(found.limit, before.maximum);
        let beyond = raise_limit(usize::MAX - RESERVED as usize);
        assert_eq!(beyond.holds_the_cap, beyond.limit.is_none());
    }
}
