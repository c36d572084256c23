//! Property tests of the parsers hostile input reaches first: WebSocket frames
//! (`protocol::decode`), audio headers (`sniff`, `wav_header`, `measure`), and the search query
//! builder (`escape`, `terms`, `UserQuery`). None may panic; each answers what its contract says.

use chatnode::protocol::{decode, ErrorCode};
use chatnode::store::search::{escape, terms, UserQuery, MAX_ALTERNATIVES};
use chatnode::voice::audio::{measure, sniff, wav_header, AudioError, Format};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FRAME_TYPES: &[&str] = &[
    "auth",
    "signIn",
    "signUp",
    "signOut",
    "users",
    "channelJoin",
    "channelLeave",
    "channelMessage",
    "subscribe",
    "unsubscribe",
    "resume",
    "post",
    "history",
    "read",
    "typing",
    "edit",
    "delete",
    "react",
    "unreact",
    "replies",
];

/// The codes `decode` may answer with: it only parses, so nothing about users or channels.
fn parse_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidJson | ErrorCode::InvalidFrame | ErrorCode::UnknownType
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_decodes_or_is_refused_with_a_parse_code(text in ".{0,300}") {
        if let Err(e) = decode(&text) {
            prop_assert!(parse_code(e.code), "{:?}", e);
        }
    }

    #[test]
    fn any_payload_of_any_frame_type_decodes_or_is_refused(
        kind in prop::sample::select(FRAME_TYPES),
        payload in json_value(),
        extra in json_value(),
    ) {
        let frame = json!({"type": kind, kind: payload, "extra": extra});
        if let Err(e) = decode(&frame.to_string()) {
            prop_assert!(parse_code(e.code), "{:?}", e);
        }
    }

    #[test]
    fn truncated_frames_are_refused_not_misread(cut in 1usize..60) {
        let frame = r#"{"type":"post","post":{"channel":"lobby","text":"hello there"}}"#;
        let cut = cut.min(frame.len() - 1);
        let e = decode(&frame[..cut]).unwrap_err();
        prop_assert_eq!(e.code, ErrorCode::InvalidJson);
    }

    #[test]
    fn deep_nesting_is_refused(depth in 1usize..20_000) {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        if let Err(e) = decode(&text) {
            prop_assert!(parse_code(e.code));
        }
    }

    #[test]
    fn sniffing_and_wav_headers_take_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = sniff(&bytes);
        let _ = wav_header(&bytes);
    }

    #[test]
    fn a_wav_header_is_read_back(rate in any::<u32>(), channels in any::<u16>(), junk in 0usize..3) {
        // Chunks before `fmt ` are skipped.
        let mut b = b"RIFF\0\0\0\0WAVE".to_vec();
        for _ in 0..junk {
            b.extend_from_slice(b"LIST\x03\0\0\0abc\0");
        }
        b.extend_from_slice(b"fmt \x10\0\0\0\x01\0");
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        prop_assert_eq!(wav_header(&b), Some((rate, channels)));
    }

    #[test]
    fn mutated_wavs_are_measured_or_refused_never_a_panic(
        rate in prop::sample::select(vec![0u32, 1, 999, 8_000, 16_000, 48_000, 96_000, u32::MAX]),
        channels in prop::sample::select(vec![0u16, 1, 2, 8, 9, u16::MAX]),
        flips in prop::collection::vec((0usize..200, any::<u8>()), 0..6),
        claimed in prop::sample::select(vec![
            Some(Format::Wav), Some(Format::Mp3), Some(Format::Flac), Some(Format::OggVorbis),
            Some(Format::Aac), Some(Format::M4a), None,
        ]),
    ) {
        let frames = 4_000usize;
        let mut b = b"RIFF".to_vec();
        b.extend_from_slice(&((36 + frames * 2) as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt \x10\0\0\0\x01\0");
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&rate.wrapping_mul(2).to_le_bytes());
        b.extend_from_slice(&2u16.wrapping_mul(channels).to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&((frames * 2) as u32).to_le_bytes());
        b.extend((0..frames * 2).map(|i| (i * 31) as u8));
        for (at, v) in flips {
            let at = at % b.len();
            b[at] = v;
        }
        match measure(&b, claimed, 60, 48_000) {
            Ok((_, ms)) => prop_assert!(ms <= 61_000),
            Err(AudioError::Unsupported(m)) => prop_assert!(m.contains("voice messages may")),
            Err(AudioError::TooLong { .. }) => {}
        }
        // Whatever the bytes claim, a rate above the cap or more than 8 channels is never taken.
        if let (Some((r, c)), Ok(_)) = (wav_header(&b), measure(&b, claimed, 60, 48_000)) {
            prop_assert!((1000..=48_000).contains(&r) && (1..=8).contains(&c));
        }
    }

    #[test]
    fn escaped_text_has_no_query_syntax_left(text in ".{0,80}") {
        let e = escape(&text);
        let mut chars = e.chars();
        let mut back = String::new();
        while let Some(c) = chars.next() {
            if c.is_alphanumeric() || c == '_' {
                back.push(c);
            } else {
                // Every other character is escaped: a backslash, then the character itself.
                prop_assert_eq!(c, '\\');
                back.push(chars.next().expect("an escaped character"));
            }
        }
        prop_assert_eq!(back, text);
    }

    #[test]
    fn search_terms_are_bounded_words(text in ".{0,400}") {
        let t = terms(&text);
        prop_assert!(t.len() <= 10);
        prop_assert!(t.iter().all(|w| !w.is_empty()));
    }

    #[test]
    fn user_queries_are_checked_and_built_without_panics(
        alternatives in prop::collection::vec("[a-z]{0,6}|[ ,.*@-]{0,3}", 0..12),
        city in proptest::option::of(".{0,20}"),
    ) {
        let q = alternatives.join("|");
        let query = UserQuery { q: Some(q.clone()), city, limit: 10, ..Default::default() };
        let searchable = q.split('|').filter(|a| !terms(a).is_empty()).count();
        prop_assert_eq!(query.check().is_ok(), searchable <= MAX_ALTERNATIVES);
        let built = query.to_query();
        prop_assert!(!built.is_empty());
        // User text never closes a clause early: braces and parentheses come only in pairs the
        // builder wrote, because every one from the text is escaped.
        let unescaped = |open: char, close: char| {
            let (mut depth, mut escaped) = (0i64, false);
            for c in built.chars() {
                if escaped { escaped = false; continue; }
                if c == '\\' { escaped = true; continue; }
                if c == open { depth += 1; }
                if c == close { depth -= 1; }
                if depth < 0 { return false; }
            }
            depth == 0
        };
        prop_assert!(unescaped('{', '}'), "{}", built);
        prop_assert!(unescaped('(', ')'), "{}", built);
    }
}
