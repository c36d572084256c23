//! Stream IDs unique across channels.
//!
//! A message is kept under `message:<stream id>` (seed 003's layout), and mentions and search
//! refer to it by that ID, but Redis makes a stream ID unique only within its stream: two
//! channels written in the same millisecond would both get `<ms>-0` from `XADD … *`, and the
//! second message's hash would replace the first's. So no channel stream is ever written with
//! `*`. Every script that appends to a channel stream takes the next ID from one generator kept
//! in Redis ([`keys::STREAM_IDS`](super::keys::STREAM_IDS), `"<ms>-<seq>"`) and appends with that
//! ID; scripts run one at a time, so each ID is handed out once and IDs grow in the order events
//! are written, across all channels.
//!
//! Also reading, comparing and checking stream IDs (`<ms>-<seq>`) as clients send them. Nothing
//! here may hand out an ID outside a script: two scripts reading the generator apart could both
//! take the same one.

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

/// Lua defining `add_entry(ids_key, stream, maxlen, fields, hash_prefix)`, which appends `fields`
/// to `stream` (trimmed to about `maxlen` entries when `maxlen > 0`) under the next ID and returns
/// that ID and its millisecond.
///
/// The next ID is Redis's clock in ms with sequence 0, unless that is not after the generator's
/// last ID, in which case it is the last ID with the sequence raised by one (the rule `XADD *`
/// follows for one stream). A stream written past the generator — by seed 003's loader, an older
/// chatnode or a writer whose clock ran ahead — refuses that ID; then the ID goes past the
/// stream's last generated ID (`XINFO STREAM`, which also counts deleted entries) and is tried
/// once more. With a `hash_prefix`, an ID whose `<hash_prefix><id>` key exists already (a message
/// such a writer stored in another channel) is skipped, so a new message never replaces an older
/// one. The generator then holds the ID written.
pub(crate) const ADD_ENTRY_LUA: &str = r#"
local function add_entry(ids_key, stream, maxlen, fields, hash_prefix)
  local now = redis.call('TIME')
  local ms, seq = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), 0
  local function pass(last)
    local m, s = string.match(last or '', '^(%d+)-(%d+)$')
    m, s = tonumber(m), tonumber(s)
    if m and (m > ms or (m == ms and s >= seq)) then ms, seq = m, s + 1 end
  end
  local function xadd_args()
    if hash_prefix then
      while redis.call('EXISTS', hash_prefix .. string.format('%.0f-%.0f', ms, seq)) == 1 do
        seq = seq + 1
      end
    end
    local args = {stream}
    if maxlen > 0 then
      args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = maxlen
    end
    args[#args + 1] = string.format('%.0f-%.0f', ms, seq)
    for _, v in ipairs(fields) do args[#args + 1] = v end
    return args
  end
  pass(redis.call('GET', ids_key))
  local id = redis.pcall('XADD', unpack(xadd_args()))
  if type(id) == 'table' then
    local info = redis.call('XINFO', 'STREAM', stream)
    for i = 1, #info - 1, 2 do
      if info[i] == 'last-generated-id' then pass(info[i + 1]) end
    end
    id = redis.call('XADD', unpack(xadd_args()))
  end
  redis.call('SET', ids_key, id)
  return id, ms
end
"#;

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
