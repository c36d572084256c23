//! Every example frame in docs/PROTOCOL.md parses as chatnode's types and re-serializes to the
//! same JSON value, and every frame kind in both directions has an example there.
//!
//! Which blocks count: every fenced block tagged `json` (the `js` snippet and the untagged
//! transcript of the React client's exchange are not frames). A block is one of:
//! - an **event object** (§3): an object whose `type` names no key of its own, other than the
//!   frames below, checked as a [`ChatEvent`];
//! - a **frame**, checked both as [`Inbound`] (client to server) and as [`Outbound`] (server to
//!   client). Some kinds exist in both directions (`channelLeave`, `history`, `typing`, …), and
//!   `channelLeave`'s answer looks exactly like the request; a block counts for each direction
//!   it round-trips in, and fails when it round-trips in neither.
//!
//! Top-level fields the server ignores (`userUUID`, `SUUID`, `SSUID`, `sessionUUID`) are dropped
//! before comparing: they are not part of the frame, and the doc shows them to say so.

use std::collections::BTreeSet;

use chatnode_protocol::{ChatEvent, Inbound, Outbound};
use serde_json::Value;

const IGNORED_TOP_LEVEL: [&str; 4] = ["userUUID", "SUUID", "SSUID", "sessionUUID"];

/// The doc's ```json blocks, with the line each starts on.
fn json_blocks(doc: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in doc.lines().enumerate() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed == "```json" => current = Some((n + 1, String::new())),
            Some(_) if trimmed == "```" => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "unclosed ```json block");
    blocks
}

/// What a block turned out to be.
#[derive(Debug)]
enum Example {
    Event,
    /// The kind it has as a client frame and as a server frame, where it round-trips as one.
    Frame(Option<&'static str>, Option<&'static str>),
}

fn check(value: &Value) -> Result<Example, String> {
    let kind = value["type"].as_str().ok_or("no string `type`")?;
    let is_frame = value.get(kind).is_some() || matches!(kind, "users" | "signOut");
    if !is_frame {
        let ev: ChatEvent = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        let again = serde_json::to_value(&ev).unwrap();
        return if &again == value {
            Ok(Example::Event)
        } else {
            Err(format!("event object re-serializes as {again}"))
        };
    }
    let mut frame = value.clone();
    for key in IGNORED_TOP_LEVEL {
        frame.as_object_mut().unwrap().remove(key);
    }
    let inbound = serde_json::from_value::<Inbound>(frame.clone())
        .map_err(|e| e.to_string())
        .and_then(|f| same(&frame, &f, f.kind()));
    let outbound = serde_json::from_value::<Outbound>(frame.clone())
        .map_err(|e| e.to_string())
        .and_then(|f| same(&frame, &f, f.kind()));
    match (inbound, outbound) {
        (Err(i), Err(o)) => Err(format!("as inbound: {i}; as outbound: {o}")),
        (i, o) => Ok(Example::Frame(i.ok(), o.ok())),
    }
}

fn same<T: serde::Serialize>(
    original: &Value,
    frame: &T,
    kind: &'static str,
) -> Result<&'static str, String> {
    let again = serde_json::to_value(frame).unwrap();
    if &again == original {
        Ok(kind)
    } else {
        Err(format!("re-serializes as {again}"))
    }
}

#[test]
fn every_example_in_protocol_md_round_trips() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).expect("docs/PROTOCOL.md");
    let blocks = json_blocks(&doc);
    assert!(blocks.len() > 30, "only {} json blocks found", blocks.len());
    let mut failures = Vec::new();
    let (mut inbound, mut outbound, mut events) = (BTreeSet::new(), BTreeSet::new(), 0);
    for (line, text) in &blocks {
        let result = serde_json::from_str::<Value>(text)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|v| check(&v));
        match result {
            Ok(Example::Event) => events += 1,
            Ok(Example::Frame(i, o)) => {
                inbound.extend(i);
                outbound.extend(o);
            }
            Err(e) => failures.push(format!("PROTOCOL.md line {line}: {e}\n{text}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(events >= 1, "no event object example");

    let all_inbound = [
        "signIn",
        "signUp",
        "signOut",
        "channelJoin",
        "channelLeave",
        "channelMessage",
        "users",
        "auth",
        "subscribe",
        "unsubscribe",
        "resume",
        "post",
        "history",
        "read",
        "typing",
    ];
    let missing: Vec<_> = all_inbound
        .iter()
        .filter(|k| !inbound.contains(*k))
        .collect();
    assert!(missing.is_empty(), "no client example of {missing:?}");
    let all_outbound = [
        "ready",
        "authorized",
        "error",
        "signOut",
        "sys",
        "users",
        "channelJoin",
        "channelMessage",
        "channelLeave",
        "subscribed",
        "unsubscribed",
        "message",
        "posted",
        "history",
        "unread",
        "typing",
        "presence",
        "mention",
        "channel_added",
    ];
    let missing: Vec<_> = all_outbound
        .iter()
        .filter(|k| !outbound.contains(*k))
        .collect();
    assert!(missing.is_empty(), "no server example of {missing:?}");
}
