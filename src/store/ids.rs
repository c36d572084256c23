//! Reading, comparing and checking stream IDs (`<ms>-<seq>`) as clients send them.
//!
//! Every channel stream is written with `XADD channel:<c> * …`: Redis makes each ID unique
//! within its stream and later than any ID already there (seed 003's entries, a clock that ran
//! ahead), so no ID generator is kept. A message is named across channels by its channel and
//! its ID (its hash is `message:{channel:<c>}:<id>`, see [`super::keys`]).

use crate::error::{Error, Result};

/// Parses a stream ID `ms-seq` into a comparable pair.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Whether `a` comes after `b` in stream order (unparsable IDs count as earliest).
pub fn id_after(a: &str, b: &str) -> bool {
    parse_id(a).unwrap_or((0, 0)) > parse_id(b).unwrap_or((0, 0))
}

/// Validates a client-supplied stream ID.
pub fn check_id(id: &str) -> Result<()> {
    if id.len() <= 41 && parse_id(id).is_some() {
        Ok(())
    } else {
        Err(Error::body("stream IDs look like 1631623305083-0"))
    }
}

/// A client-supplied stream ID as Redis writes it (`<ms>-<seq>`, no sign or leading zeros; a
/// missing `-<seq>` is `-0`), or `invalid_body`.
pub fn canonical_id(id: &str) -> Result<String> {
    check_id(id)?;
    let (ms, seq) = parse_id(id).expect("checked");
    Ok(format!("{ms}-{seq}"))
}

/// The exclusive start `(<ms>-<seq>` of a range of the entries after `id`, or None when no
/// stream ID can follow it (the largest there is): Redis refuses such a range outright, so the
/// caller answers "nothing" itself. `invalid_body` when `id` is no stream ID.
pub fn after_bound(id: &str) -> Result<Option<String>> {
    check_id(id)?;
    let (ms, seq) = parse_id(id).expect("checked");
    Ok(if (ms, seq) == (u64::MAX, u64::MAX) {
        None
    } else {
        Some(format!("({ms}-{seq}"))
    })
}

/// The exclusive end `(<ms>-<seq>` of a range of the entries before `id`, or None when no
/// stream ID can precede it (`0-0`): Redis refuses such a range outright, so the caller answers
/// "nothing" itself. `invalid_body` when `id` is no stream ID.
pub fn before_bound(id: &str) -> Result<Option<String>> {
    check_id(id)?;
    let (ms, seq) = parse_id(id).expect("checked");
    Ok(if (ms, seq) == (0, 0) {
        None
    } else {
        Some(format!("({ms}-{seq}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_numerically() {
        assert!(id_after("10-0", "9-5"));
        assert!(id_after("10-10", "10-9"));
        assert!(!id_after("10-1", "10-1"));
        assert!(check_id("1631623305083-0").is_ok());
        assert!(check_id("abc").is_err());
    }

    #[test]
    fn range_bounds_stop_at_the_ends_of_the_id_space() {
        assert_eq!(after_bound("5-1").unwrap().as_deref(), Some("(5-1"));
        assert_eq!(after_bound("+05").unwrap().as_deref(), Some("(5-0"));
        assert_eq!(
            after_bound("18446744073709551615-18446744073709551615").unwrap(),
            None
        );
        assert_eq!(after_bound("0-0").unwrap().as_deref(), Some("(0-0"));
        assert_eq!(before_bound("0-0").unwrap(), None);
        assert_eq!(before_bound("00-000").unwrap(), None);
        assert_eq!(before_bound("0").unwrap(), None);
        assert_eq!(before_bound("0-1").unwrap().as_deref(), Some("(0-1"));
        assert!(after_bound("(5-0").is_err() && before_bound("5-x").is_err());
        assert_eq!(canonical_id("+007-+1").unwrap(), "7-1");
    }
}
