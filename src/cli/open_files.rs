//! The open-files limit (RLIMIT_NOFILE), and the client connections that fit in it.

/// Linux refuses an unlimited soft limit for open files; its usual ceiling is 2^20.
const CEILING: u64 = 1 << 20;

/// The soft limit after [`raise`], and what it was before when it was raised.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raised {
    /// The soft limit now; `None` when it cannot be read (or is unlimited).
    pub limit: Option<u64>,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<u64>,
}

/// Raises the soft open-files limit to the hard one (a process may always do so).
pub fn raise() -> Raised {
    let known = |value: u64| (value != rlimit::INFINITY).then_some(value);
    let Ok((before, _)) = rlimit::Resource::NOFILE.get() else {
        return Raised::default();
    };
    match rlimit::increase_nofile_limit(CEILING) {
        Ok(now) if now > before => Raised {
            limit: known(now),
            raised_from: known(before),
        },
        _ => Raised {
            limit: known(before),
            raised_from: None,
        },
    }
}

/// Descriptors the process needs besides client connections and outgoing calls: standard
/// streams, listeners, the event loop's own, resolver files.
const BASE_FILES: u64 = 32;
/// The least room kept for outgoing calls (SpyCloud, JWKS hosts).
const MIN_OUTGOING_FILES: u64 = 64;

/// The most client connections that fit an open-files limit of `open_files`, with
/// `other_connections` more (the metrics port's) served beside them: what is left after the
/// process's own files and room for outgoing calls (a quarter of the rest, at least 64), and
/// never more than `configured`. At least 1.
pub fn connections_within(open_files: u64, configured: usize, other_connections: usize) -> usize {
    let available = open_files.saturating_sub(BASE_FILES + other_connections as u64);
    let outgoing = (available / 4).max(MIN_OUTGOING_FILES);
    let fit = usize::try_from(available.saturating_sub(outgoing)).unwrap_or(usize::MAX);
    configured.min(fit).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_room_for_outgoing_calls_within_the_open_files_limit() {
        // A common hard limit: the configured cap fits.
        assert_eq!(connections_within(1_048_576, 1024, 16), 1024);
        // 1 024 open files cannot hold 1 024 connections and the relay's own calls.
        let fit = connections_within(1024, 1024, 16);
        assert_eq!(fit, 732);
        assert!(fit as u64 + 32 + 16 + 64 <= 1024);
        assert_eq!(connections_within(256, 1024, 16), 144);
        assert_eq!(connections_within(256, 100, 0), 100);
        assert_eq!(connections_within(10, 1024, 0), 1);
    }
}
