//! Tokenizers built from GGUF tokenizer metadata, against independent references:
//!
//! - SmolLM2-135M-Instruct's byte-level BPE (its GGUF's tokenizer, exported by
//!   `scripts/gguf_tokenizer_json.py` into .cache/models by `scripts/fetch_models.sh`; never
//!   committed): ids equal Hugging Face `tokenizers`' for the strings in
//!   tests/data/smollm2_reference_ids.json (`scripts/tokenizer_reference_ids.py`), for each
//!   pre-tokenizer Kiln knows, and decoding gives the strings back. Without the file the test
//!   fails with a hint; `KILN_SKIP_MODEL_TESTS=1` skips it.
//! - A small hand-made SentencePiece-style vocabulary whose expected ids are worked out by
//!   hand in the comments, and agree with Google's `sentencepiece` over the same vocabulary
//!   (tests/data/sentencepiece_reference_ids.json).

use std::path::PathBuf;

use kiln_runtime::text::{StreamDecoder, TextError, Tokenizer, TokenizerModel, TokenizerSpec};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// SmolLM2's tokenizer spec, or `None` when `KILN_SKIP_MODEL_TESTS` is `1`, `true` or `yes`.
fn smollm2_spec() -> Option<TokenizerSpec> {
    let skip = std::env::var("KILN_SKIP_MODEL_TESTS")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if matches!(skip.as_str(), "1" | "true" | "yes") {
        eprintln!("KILN_SKIP_MODEL_TESTS: skipping the SmolLM2 tokenizer test");
        return None;
    }
    let path = root().join(".cache/models/SmolLM2-135M-Instruct.tokenizer.json");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `bash scripts/fetch_models.sh` (or set KILN_SKIP_MODEL_TESTS=1)",
            path.display()
        )
    });
    Some(TokenizerSpec::from_json(&json).expect("the exported SmolLM2 tokenizer parses"))
}

/// Decodes `ids` one token at a time through a [`StreamDecoder`].
fn stream_decode(tokenizer: &Tokenizer, ids: &[u32], skip_special: bool) -> String {
    let mut stream = StreamDecoder::new(tokenizer, skip_special);
    let mut text = String::new();
    for &id in ids {
        text.push_str(&stream.push(id).unwrap());
    }
    text + &stream.finish()
}

#[test]
fn smollm2_ids_match_hugging_face_for_every_pre_tokenizer() {
    let Some(spec) = smollm2_spec() else { return };
    assert_eq!(spec.model, TokenizerModel::Gpt2);
    assert_eq!(
        spec.pre.as_deref(),
        Some("smollm"),
        "SmolLM2's GGUF names the smollm pre-tokenizer"
    );
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("data/smollm2_reference_ids.json")).expect("reference JSON");
    let mut checked = 0;
    for (pre, cases) in reference.as_object().unwrap() {
        let tokenizer = Tokenizer::from_spec(&TokenizerSpec {
            pre: Some(pre.clone()),
            ..spec.clone()
        })
        .unwrap();
        for case in cases.as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
            let ids = tokenizer.encode(text, false).unwrap();
            assert_eq!(ids, expected, "pre-tokenizer {pre}, text {text:?}");
            assert_eq!(
                tokenizer.decode(&ids, false).unwrap(),
                text,
                "decode, pre-tokenizer {pre}"
            );
            assert_eq!(
                stream_decode(&tokenizer, &ids, false),
                text,
                "stream decode, pre-tokenizer {pre}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 4 * 20, "only {checked} reference cases");
}

#[test]
fn smollm2_special_tokens_bos_and_plain_text() {
    let Some(spec) = smollm2_spec() else { return };
    let tokenizer = Tokenizer::from_spec(&spec).unwrap();
    let (im_start, im_end) = (
        tokenizer.token_id("<|im_start|>").unwrap(),
        tokenizer.token_id("<|im_end|>").unwrap(),
    );
    assert_eq!((im_start, im_end), (1, 2));
    assert!(!tokenizer.add_bos(), "SmolLM2's GGUF sets add_bos_token = false");
    // The chat-template test renders the template text committed with its cases: it is the GGUF's.
    let cases: serde_json::Value = serde_json::from_str(include_str!("data/chat_template_cases.json")).unwrap();
    assert_eq!(cases[0]["name"], "smollm2 two messages");
    assert_eq!(spec.chat_template.as_deref(), cases[0]["template"].as_str());
    assert_eq!(tokenizer.eos_id(), Some(im_end));

    let ids = tokenizer.encode("<|im_start|>user\nHi<|im_end|>", true).unwrap();
    assert_eq!(ids.first(), Some(&tokenizer.bos_id().unwrap()));
    assert_eq!(
        ids.iter().filter(|&&id| id == im_start).count(),
        2,
        "BOS then the special token"
    );
    assert_eq!(ids.last(), Some(&im_end));
    assert_eq!(
        tokenizer.decode(&ids, true).unwrap(),
        "user\nHi",
        "control tokens skipped"
    );

    // As plain text, the special tokens are split like any other text and decode back.
    let plain = tokenizer.encode_ordinary("<|im_start|>", false).unwrap();
    assert!(plain.len() > 1 && !plain.contains(&im_start), "{plain:?}");
    assert_eq!(tokenizer.decode(&plain, false).unwrap(), "<|im_start|>");

    // A long prompt tokenizes and round-trips (the merge loop is O(n log n) per word).
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(400) + &"x".repeat(5000);
    let ids = tokenizer.encode(&long, false).unwrap();
    assert!(ids.len() < long.len() / 2, "{} ids for {} bytes", ids.len(), long.len());
    assert_eq!(tokenizer.decode(&ids, false).unwrap(), long);
}

#[test]
fn streaming_waits_for_a_whole_character() {
    let Some(spec) = smollm2_spec() else { return };
    let tokenizer = Tokenizer::from_spec(&spec).unwrap();
    // The single-byte tokens of the 4 bytes of 🎉, fed one at a time.
    let single_byte = |b: u8| {
        (0..tokenizer.vocab_size() as u32)
            .find(|&id| tokenizer.token_bytes(id).unwrap() == [b])
            .unwrap_or_else(|| panic!("no token for byte {b:#x}"))
    };
    let mapped: Vec<u32> = "🎉".bytes().map(single_byte).collect();
    let mut stream = StreamDecoder::new(&tokenizer, false);
    let outputs: Vec<String> = mapped.iter().map(|&id| stream.push(id).unwrap()).collect();
    assert_eq!(outputs, ["", "", "", "🎉"]);
    assert_eq!(stream.finish(), "");
    // A stream cut inside a character ends with U+FFFD, like decode.
    let mut stream = StreamDecoder::new(&tokenizer, false);
    assert_eq!(stream.push(mapped[0]).unwrap(), "");
    assert_eq!(stream.finish(), "\u{FFFD}");
    assert_eq!(tokenizer.decode(&mapped[..1], false).unwrap(), "\u{FFFD}");
}

/// The hand-made SentencePiece-style vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte tokens
/// `<0x00>`..`<0xFF>` (ids 3..=258), then the pieces below (ids from 259), and a user-defined
/// `<|user|>`.
fn sentencepiece_spec() -> TokenizerSpec {
    let mut tokens = vec!["<unk>".to_string(), "<s>".to_string(), "</s>".to_string()];
    let mut scores = vec![0.0, 0.0, 0.0];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    let pieces: [(&str, f32); 18] = [
        ("▁", -10.0),     // 259
        ("h", -10.0),     // 260
        ("e", -10.0),     // 261
        ("l", -10.0),     // 262
        ("o", -10.0),     // 263
        ("w", -10.0),     // 264
        ("r", -10.0),     // 265
        ("d", -10.0),     // 266
        ("ll", -1.0),     // 267
        ("▁h", -2.0),     // 268
        ("he", -1.5),     // 269
        ("llo", -3.0),    // 270
        ("▁he", -2.5),    // 271
        ("▁hello", -4.0), // 272
        ("or", -1.2),     // 273
        ("▁w", -2.2),     // 274
        ("ld", -2.0),     // 275
        ("▁wor", -3.5),   // 276
    ];
    for (piece, score) in pieces {
        tokens.push(piece.to_string());
        scores.push(score);
        types.push(1);
    }
    tokens.push("<|user|>".to_string()); // 277
    scores.push(0.0);
    types.push(4);
    let mut spec = TokenizerSpec::new(TokenizerModel::Llama, tokens);
    spec.scores = scores;
    spec.token_type = types;
    spec.bos_token_id = Some(1);
    spec.eos_token_id = Some(2);
    spec.unknown_token_id = Some(0);
    spec
}

/// The id of byte `b`'s `<0xNN>` token.
fn byte(b: u8) -> u32 {
    3 + u32::from(b)
}

#[test]
fn sentencepiece_merges_by_score_with_byte_fallback() {
    let spec = sentencepiece_spec();
    let tokenizer = Tokenizer::from_spec(&spec).unwrap();
    assert!(tokenizer.add_bos(), "llama defaults to add_bos_token = true");
    let cases: &[(&str, &[u32])] = &[
        // "▁hello": ll (-1.0), then he (-1.5), then ▁he (-2.5; ▁h went stale when h grew),
        // then llo (-3.0), then ▁hello (-4.0).
        // "▁world": or (-1.2), ld (-2.0), ▁w (-2.2), ▁wor (-3.5); "▁world" is no token.
        ("hello world", &[272, 276, 275]),
        // "▁▁hello": the second ▁ merges as above; the first stays alone.
        (" hello", &[259, 272]),
        // "▁lll": two equal-score "ll" candidates; the leftmost merges first.
        ("lll", &[259, 267, 262]),
        // é has no piece: its UTF-8 bytes C3 A9 as byte tokens; '!' likewise.
        ("é!", &[259, byte(0xC3), byte(0xA9), byte(b'!')]),
        // Special tokens are matched whole; the text after them gets the space prefix again.
        ("<s>hello</s>", &[1, 272, 2]),
        // "hi " + <|user|> + "x": ▁h (-2.0) merges, i and x fall back to bytes.
        ("hi <|user|>x", &[268, byte(b'i'), 259, 277, 259, byte(b'x')]),
        ("", &[]),
    ];
    for &(text, expected) in cases {
        assert_eq!(tokenizer.encode(text, false).unwrap(), expected, "{text:?}");
        assert_eq!(tokenizer.decode(expected, false).unwrap(), text, "decode {text:?}");
        assert_eq!(
            stream_decode(&tokenizer, expected, false),
            text,
            "stream decode {text:?}"
        );
    }
    assert_eq!(tokenizer.encode("hello world", true).unwrap(), [1, 272, 276, 275]);
    assert_eq!(tokenizer.decode(&[1, 272, 276, 275, 2], true).unwrap(), "hello world");
    // As plain text "<s>" is "▁" then the bytes of '<', 's', '>'.
    assert_eq!(
        tokenizer.encode_ordinary("<s>", false).unwrap(),
        [259, byte(b'<'), byte(b's'), byte(b'>')]
    );
    // A continuing stream keeps the first token's space (it follows a prompt).
    let mut stream = StreamDecoder::continuing(&tokenizer, true);
    assert_eq!(stream.push(276).unwrap(), " wor");
    // Split UTF-8 from byte tokens is held back until complete.
    let mut stream = StreamDecoder::new(&tokenizer, false);
    assert_eq!(stream.push(byte(0xC3)).unwrap(), "");
    assert_eq!(stream.push(byte(0xA9)).unwrap(), "é");
    assert_eq!(
        stream.push(byte(0xFF)).unwrap(),
        "\u{FFFD}",
        "a byte that never starts UTF-8"
    );

    // Without the space prefix: "hello" is he + llo ("hello" is no token).
    let plain = Tokenizer::from_spec(&TokenizerSpec {
        add_space_prefix: Some(false),
        ..spec.clone()
    })
    .unwrap();
    assert_eq!(plain.encode("hello", false).unwrap(), [269, 270]);
    assert_eq!(plain.decode(&[259, 269, 270], false).unwrap(), " hello");

    // With neither a piece nor a byte token nor <unk>, encoding fails naming the character.
    let mut no_bytes = spec.clone();
    no_bytes.tokens.truncate(259 + 18);
    no_bytes.scores.truncate(259 + 18);
    no_bytes.token_type.truncate(259 + 18);
    for id in 3..259 {
        no_bytes.tokens[id].push('x');
        no_bytes.token_type[id] = 1;
    }
    no_bytes.unknown_token_id = None;
    let err = Tokenizer::from_spec(&no_bytes)
        .unwrap()
        .encode("héllo", false)
        .unwrap_err();
    assert!(
        matches!(&err, TextError::Unencodable { piece } if piece == "é"),
        "{err}"
    );
}

#[test]
fn bad_specs_and_ids_are_clear_errors() {
    let good = sentencepiece_spec();
    let expect_err = |spec: TokenizerSpec, field: &str, needle: &str| {
        let err = Tokenizer::from_spec(&spec).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, TextError::Spec { field: f, .. } if *f == field),
            "{text}"
        );
        assert!(text.contains(needle), "{text:?} should mention {needle:?}");
    };
    expect_err(
        TokenizerSpec {
            scores: vec![0.0; 3],
            ..good.clone()
        },
        "scores",
        "3 entries",
    );
    expect_err(
        TokenizerSpec {
            scores: vec![],
            ..good.clone()
        },
        "scores",
        "missing",
    );
    expect_err(
        TokenizerSpec {
            token_type: vec![9; good.tokens.len()],
            ..good.clone()
        },
        "token_type",
        "type 9",
    );
    expect_err(
        TokenizerSpec {
            eos_token_id: Some(100_000),
            ..good.clone()
        },
        "eos_token_id",
        "100000",
    );
    expect_err(
        TokenizerSpec {
            bos_token_id: None,
            ..good.clone()
        },
        "bos_token_id",
        "add_bos_token",
    );
    expect_err(TokenizerSpec::new(TokenizerModel::Llama, vec![]), "tokens", "empty");

    let mut bpe = TokenizerSpec::new(TokenizerModel::Gpt2, ["a", "b", "ab"].map(String::from).to_vec());
    bpe.merges = vec!["a b".into()];
    let tokenizer = Tokenizer::from_spec(&bpe).unwrap();
    assert_eq!(tokenizer.encode("abba", false).unwrap(), [2, 1, 0]);
    let err = tokenizer.decode(&[7], false).unwrap_err();
    assert!(matches!(err, TextError::UnknownId { id: 7, vocab_size: 3 }), "{err}");
    let err = tokenizer.encode("abc", false).unwrap_err();
    assert!(
        matches!(&err, TextError::Unencodable { piece } if piece == "c"),
        "{err}"
    );
    expect_err(
        TokenizerSpec {
            merges: vec!["a c".into()],
            ..bpe.clone()
        },
        "merges",
        "\"c\" is not a token",
    );
    expect_err(
        TokenizerSpec {
            merges: vec!["ab".into()],
            ..bpe.clone()
        },
        "merges",
        "not 'left right'",
    );
    expect_err(
        TokenizerSpec {
            pre: Some("tekken".into()),
            ..bpe.clone()
        },
        "pre",
        "'tekken'",
    );

    let err = TokenizerSpec::from_json(r#"{"model": "rwkv", "tokens": ["a"]}"#).unwrap_err();
    assert!(err.to_string().contains("rwkv"), "{err}");
    // The JSON round-trips.
    assert_eq!(TokenizerSpec::from_json(&good.to_json()).unwrap(), good);
}

#[test]
fn sentencepiece_ids_match_googles_sentencepiece() {
    // tests/data/sentencepiece_reference_ids.json: Google's sentencepiece over the same
    // vocabulary (scripts/sentencepiece_reference_ids.py). It matches user-defined tokens in the
    // text but not control tokens, so texts without a user-defined token are encoded as plain.
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("data/sentencepiece_reference_ids.json")).expect("reference JSON");
    let mut checked = 0;
    for (variant, prefix) in [("space_prefix", true), ("no_space_prefix", false)] {
        let spec = TokenizerSpec {
            add_space_prefix: Some(prefix),
            ..sentencepiece_spec()
        };
        let tokenizer = Tokenizer::from_spec(&spec).unwrap();
        for case in reference[variant].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
            let ids = if text.contains("<|user|>") {
                tokenizer.encode(text, false)
            } else {
                tokenizer.encode_ordinary(text, false)
            };
            assert_eq!(ids.unwrap(), expected, "{variant}: {text:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}
