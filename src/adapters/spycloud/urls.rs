//! The URLs of SpyCloud's calls and their encoding, and the cursors that lead from one page of
//! a call to the next.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::{MAX_PAGES, MAX_SCAN_PAGES};
use crate::domain::hashed::{Hashes, Table};
use crate::domain::{BreachQuery, Lookup, SeverityFilter, SourceError};
use crate::ports::WatchlistQuery;

/// A looked-up value goes in a path segment: `@` and unreserved characters stay, everything
/// else (`/ ? # % + :`, spaces, non-ASCII) is percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');
/// A query value: only unreserved characters stay literal.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `{base}/breach/data/<endpoint>/<value, percent-encoded>`, with `severity=` and `since=`
/// when the query sets them.
pub(super) fn breach_data_url(base: &str, lookup: &Lookup, query: &BreachQuery) -> String {
    let value = lookup.to_string();
    let mut url = format!(
        "{base}/breach/data/{}/{}",
        lookup.kind().endpoint(),
        utf8_percent_encode(&value, PATH_SEGMENT)
    );
    let mut separator = '?';
    if let Some(severity) = &query.severity {
        url.push(separator);
        push_severity(&mut url, severity);
        separator = '&';
    }
    if let Some(since) = query.since {
        url.push(separator);
        url.push_str(&format!("since={}", since.format("%Y-%m-%d")));
    }
    url
}

/// `{base}/breach/data/watchlist?since=<day>`, with `&severity=` when the query sets it.
pub(super) fn watchlist_url(base: &str, query: &WatchlistQuery) -> String {
    let mut url = format!("{base}/breach/data/watchlist?since={}", query.since);
    if let Some(severity) = &query.severity {
        url.push('&');
        push_severity(&mut url, severity);
    }
    url
}

/// `severity=<codes>`, the module setting `SEVERITY` on a breach-data call.
fn push_severity(url: &mut String, severity: &SeverityFilter) {
    url.push_str("severity=");
    url.extend(utf8_percent_encode(&severity.query_value(), QUERY_VALUE));
}

/// How one paged breach-data call follows its pages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Paging {
    /// The most pages it follows ([`Cursors`]).
    pub(super) max_pages: usize,
    /// Whether a 400 means no (more) records, SpyCloud refusing the looked-up value, rather
    /// than an error.
    pub(super) refused_is_empty: bool,
}

impl Paging {
    /// A lookup (email, domain, IP, username): SpyCloud's 400 refuses the value.
    pub(super) const LOOKUP: Self = Self {
        max_pages: MAX_PAGES,
        refused_is_empty: true,
    };
    /// The watchlist scan: there is no value to refuse, so a 400 is an error like any other.
    pub(super) const SCAN: Self = Self {
        max_pages: MAX_SCAN_PAGES,
        refused_is_empty: false,
    };
}

/// The cursors of one paged call: each leads to the next page's URL (the cursor joins the
/// query the URL already has, if any), none may repeat, and a chain may not pass its page cap
/// ([`MAX_PAGES`] for a lookup or a catalog call, [`MAX_SCAN_PAGES`] for a watchlist scan).
///
/// Cursors are remembered by a 64-bit seeded hash, so a chain of long cursors costs 8 bytes
/// a page; two different cursors with the same hash would be taken for a repeat (a chance of
/// about 1 in 10^11 for a 10 000-page chain).
pub(super) struct Cursors<'a> {
    url: &'a str,
    seen: Table<()>,
    hashes: Hashes,
    pages: usize,
    max_pages: usize,
}

impl<'a> Cursors<'a> {
    /// The cursors of the call to `url`, which may follow `max_pages` pages in all.
    pub(super) fn new(url: &'a str, max_pages: usize) -> Self {
        Self {
            url,
            seen: Table::default(),
            hashes: Hashes::default(),
            pages: 1,
            max_pages,
        }
    }

    /// The URL of the page a page's `cursor` names; `None` after the last page.
    ///
    /// # Errors
    /// A repeated cursor, or one more page than the cap: following them would loop or
    /// exhaust the relay, and stopping would drop records without a word.
    pub(super) fn follow(&mut self, cursor: Option<Value>) -> Result<Option<String>, SourceError> {
        let cursor = match cursor {
            Some(Value::String(cursor)) if !cursor.is_empty() => cursor,
            _ => return Ok(None),
        };
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let next = format!(
            "{}{separator}cursor={}",
            self.url,
            utf8_percent_encode(&cursor, QUERY_VALUE)
        );
        if !self.seen.insert(self.hashes.of(&cursor)) {
            return Err(SourceError::InvalidResponse(
                "SpyCloud repeated a page cursor".to_owned(),
            ));
        }
        if self.pages >= self.max_pages {
            return Err(SourceError::InvalidResponse(format!(
                "SpyCloud kept paginating past {} pages",
                self.max_pages
            )));
        }
        self.pages += 1;
        Ok(Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry;

    #[test]
    fn email_path_segment_encoding() {
        let encode = |s| utf8_percent_encode(s, PATH_SEGMENT).to_string();
        assert_eq!(encode("a.b-c_d~e@example.com"), "a.b-c_d~e@example.com");
        assert_eq!(
            encode("a+b/c?d#e%f g@example.com"),
            "a%2Bb%2Fc%3Fd%23e%25f%20g@example.com"
        );
    }

    #[test]
    fn each_lookup_calls_the_endpoint_of_its_type() {
        use crate::domain::ObservableType as T;
        for (kind, value, endpoint) in [
            (T::Email, "a@b.co", "emails"),
            (T::Domain, "b.co", "domains"),
            (T::Ip, "192.0.2.1", "ips"),
            (T::Ipv6, "::1", "ips"),
            (T::User, "emails", "usernames"),
        ] {
            let lookup = Lookup::parse(kind, value).unwrap();
            let url = breach_data_url("https://api.test/v2", &lookup, &BreachQuery::default());
            assert_eq!(lookup.kind().endpoint(), endpoint, "{url}");
            assert!(
                url.starts_with(&format!("https://api.test/v2/breach/data/{endpoint}/")),
                "{url}"
            );
        }
        assert_eq!(
            telemetry::endpoints(),
            [
                "emails",
                "domains",
                "ips",
                "usernames",
                "catalog",
                "watchlist"
            ]
        );
    }
}
