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
}
