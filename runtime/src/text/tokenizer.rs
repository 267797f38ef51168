//! [`Tokenizer`]: text to token ids and back, for both GGUF tokenizer models.
//!
//! - **gpt2** (byte-level BPE): the text is split into words by the pre-tokenizer named by
//!   `tokenizer.ggml.pre`, each word's UTF-8 bytes are written in GPT-2's byte-level alphabet,
//!   and ranked merges (`tokenizer.ggml.merges`, first = best) join its characters into tokens.
//! - **llama** (SentencePiece-style BPE): spaces become `▁` (one is prefixed when
//!   `add_space_prefix`), and adjacent symbols are merged while they form a vocabulary token,
//!   highest `tokenizer.ggml.scores` first; a character with no token is written as its UTF-8
//!   bytes through the `<0xNN>` byte-fallback tokens.
//!
//! In both, special tokens (types control, user-defined, unknown) found in the text are encoded
//! as themselves (see [`Tokenizer::encode`]); [`Tokenizer::encode_ordinary`] treats them as
//! plain text. Defaults for keys a GGUF file lacks follow GGML: `add_bos_token` and
//! `add_space_prefix` are true for llama and false for gpt2; a missing `pre` is GPT-2's regex.

use std::collections::HashMap;

use super::byte_level::ByteLevel;
use super::merge::merge;
use super::pretokenize::PreTokenizer;
use super::special::{Fragment, SpecialTokens};
use super::vocab::{TokenType, TokenizerModel, TokenizerSpec};
use super::TextError;

/// The model-specific part of a tokenizer.
#[derive(Debug, Clone)]
enum Algorithm {
    /// Byte-level BPE.
    Gpt2 {
        pre: PreTokenizer,
        byte_level: Box<ByteLevel>,
        /// (left id, right id) -> (rank, merged id).
        merges: HashMap<(u32, u32), (u32, u32)>,
    },
    /// SentencePiece-style BPE.
    Llama {
        scores: Vec<f32>,
        /// The `<0xNN>` token of each byte, where the vocabulary has one.
        byte_tokens: Box<[Option<u32>; 256]>,
        add_space_prefix: bool,
    },
}

/// A tokenizer built from a [`TokenizerSpec`]. Immutable once built; share it freely.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    algorithm: Algorithm,
    types: Vec<TokenType>,
    /// What each token decodes to.
    pieces: Vec<Vec<u8>>,
    /// Token text -> id (the first id when a text repeats).
    vocab: HashMap<String, u32>,
    specials: SpecialTokens,
    bos: Option<u32>,
    eos: Option<u32>,
    unknown: Option<u32>,
    add_bos: bool,
}

/// The SentencePiece space marker, U+2581.
const SPACE_MARK: char = '▁';

/// A merge priority for a token score: higher scores merge first.
fn score_priority(score: f32) -> u64 {
    let bits = score.to_bits();
    // Maps floats onto u32 in increasing order (negative floats reversed), then inverts.
    let ordered = if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    u64::from(u32::MAX - ordered)
}

/// The byte of a `<0xNN>` token text.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok()).flatten()
}

/// Splits a merge `"left right"` at its first space after the first character (a left part
/// may itself be a space, as GGML reads merges).
fn split_merge(merge: &str) -> Option<(&str, &str)> {
    let first = merge.chars().next()?.len_utf8();
    let at = first + merge[first..].find(' ')?;
    Some((&merge[..at], &merge[at + 1..]))
}

/// Whether tokens of this type are matched whole in text (GGML's special-token cache).
fn is_matched_whole(ty: TokenType) -> bool {
    matches!(ty, TokenType::Control | TokenType::UserDefined | TokenType::Unknown)
}

fn spec_error(field: &'static str, message: String) -> TextError {
    TextError::Spec { field, message }
}

impl Tokenizer {
    /// Builds the tokenizer, checking the spec: field lengths agree with `tokens`, every merge
    /// joins two tokens into a token, special ids are in range, the pre-tokenizer is known.
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Self, TextError> {
        let n = spec.tokens.len();
        if n == 0 {
            return Err(spec_error("tokens", "the vocabulary is empty".into()));
        }
        if u32::try_from(n).is_err() {
            return Err(spec_error("tokens", format!("{n} tokens do not fit u32 ids")));
        }
        if !spec.token_type.is_empty() && spec.token_type.len() != n {
            let message = format!("{} entries for {n} tokens", spec.token_type.len());
            return Err(spec_error("token_type", message));
        }
        if !spec.scores.is_empty() && spec.scores.len() != n {
            return Err(spec_error(
                "scores",
                format!("{} entries for {n} tokens", spec.scores.len()),
            ));
        }
        let types = (0..n).map(|id| spec.token_type_of(id)).collect::<Result<Vec<_>, _>>()?;
        let check_id = |field: &'static str, id: Option<u32>| match id {
            Some(id) if id as usize >= n => Err(spec_error(
                field,
                format!("id {id} is outside the vocabulary of {n} tokens"),
            )),
            _ => Ok(id),
        };
        let bos = check_id("bos_token_id", spec.bos_token_id)?;
        let eos = check_id("eos_token_id", spec.eos_token_id)?;
        let unknown = check_id("unknown_token_id", spec.unknown_token_id)?;
        check_id("padding_token_id", spec.padding_token_id)?;
        let is_llama = spec.model == TokenizerModel::Llama;
        let add_bos = spec.add_bos_token.unwrap_or(is_llama);
        if add_bos && bos.is_none() {
            return Err(spec_error("bos_token_id", "missing, but add_bos_token is set".into()));
        }

        let mut vocab = HashMap::with_capacity(n);
        for (id, text) in spec.tokens.iter().enumerate() {
            vocab.entry(text.clone()).or_insert(id as u32);
        }
        let specials = SpecialTokens::new(
            spec.tokens
                .iter()
                .zip(&types)
                .enumerate()
                .filter(|(_, (_, &ty))| is_matched_whole(ty))
                .map(|(id, (text, _))| (text.clone(), id as u32)),
        );

        let (algorithm, pieces) = match spec.model {
            TokenizerModel::Gpt2 => {
                let pre = PreTokenizer::from_name(spec.pre.as_deref())?;
                let byte_level = Box::new(ByteLevel::new());
                let mut merges = HashMap::with_capacity(spec.merges.len());
                for (rank, merge) in spec.merges.iter().enumerate() {
                    let (left, right) = split_merge(merge)
                        .ok_or_else(|| spec_error("merges", format!("merge {rank} {merge:?} is not 'left right'")))?;
                    let id_of = |text: &str| {
                        vocab.get(text).copied().ok_or_else(|| {
                            spec_error("merges", format!("merge {rank} {merge:?}: {text:?} is not a token"))
                        })
                    };
                    let key = (id_of(left)?, id_of(right)?);
                    let merged = id_of(&format!("{left}{right}"))?;
                    merges.entry(key).or_insert((rank as u32, merged));
                }
                let pieces = spec
                    .tokens
                    .iter()
                    .zip(&types)
                    .map(|(text, ty)| match ty {
                        TokenType::Control | TokenType::UserDefined => text.as_bytes().to_vec(),
                        _ => byte_level.decode(text),
                    })
                    .collect();
                (
                    Algorithm::Gpt2 {
                        pre,
                        byte_level,
                        merges,
                    },
                    pieces,
                )
            }
            TokenizerModel::Llama => {
                if spec.scores.is_empty() {
                    return Err(spec_error(
                        "scores",
                        "missing; the llama tokenizer merges by score".into(),
                    ));
                }
                let mut byte_tokens = Box::new([None; 256]);
                for (byte, slot) in byte_tokens.iter_mut().enumerate() {
                    *slot = vocab.get(&format!("<0x{byte:02X}>")).copied();
                }
                let mut pieces = Vec::with_capacity(n);
                for (id, (text, ty)) in spec.tokens.iter().zip(&types).enumerate() {
                    pieces.push(match ty {
                        TokenType::Byte => vec![parse_byte_token(text)
                            .ok_or_else(|| spec_error("tokens", format!("byte token {id} is {text:?}, not <0xNN>")))?],
                        TokenType::Normal | TokenType::Unknown => text.replace(SPACE_MARK, " ").into_bytes(),
                        TokenType::Control | TokenType::UserDefined => text.as_bytes().to_vec(),
                        TokenType::Unused => Vec::new(),
                    });
                }
                let algorithm = Algorithm::Llama {
                    scores: spec.scores.clone(),
                    byte_tokens,
                    add_space_prefix: spec.add_space_prefix.unwrap_or(true),
                };
                (algorithm, pieces)
            }
        };
        Ok(Self {
            algorithm,
            types,
            pieces,
            vocab,
            specials,
            bos,
            eos,
            unknown,
            add_bos,
        })
    }

    /// Parses the tokenizer JSON and builds the tokenizer.
    pub fn from_json(json: &str) -> Result<Self, TextError> {
        Self::from_spec(&TokenizerSpec::from_json(json)?)
    }

    /// Encodes `text`, with special tokens written in it (`<|im_start|>`) encoded as
    /// themselves, preceded by the BOS token if `add_bos`.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TextError> {
        self.encode_fragments(&self.specials.split(text), add_bos)
    }

    /// Encodes `text` as plain text: special-token texts in it are split like any other text
    /// (for untrusted input that must not inject control tokens).
    pub fn encode_ordinary(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TextError> {
        let fragments: &[Fragment] = if text.is_empty() { &[] } else { &[Fragment::Text(text)] };
        self.encode_fragments(fragments, add_bos)
    }

    fn encode_fragments(&self, fragments: &[Fragment], add_bos: bool) -> Result<Vec<u32>, TextError> {
        let mut ids = Vec::new();
        if add_bos {
            let bos = self
                .bos
                .ok_or_else(|| spec_error("bos_token_id", "missing, but BOS was asked for".into()))?;
            ids.push(bos);
        }
        // SentencePiece prefixes a space to the text and to the text after each special token.
        let mut after_special = true;
        for fragment in fragments {
            match *fragment {
                Fragment::Token(id) => {
                    ids.push(id);
                    after_special = true;
                }
                Fragment::Text(text) => {
                    match &self.algorithm {
                        Algorithm::Gpt2 {
                            pre,
                            byte_level,
                            merges,
                        } => {
                            for word in pre.split(text)? {
                                self.encode_byte_level_word(word, pre, byte_level, merges, &mut ids)?;
                            }
                        }
                        Algorithm::Llama {
                            scores,
                            byte_tokens,
                            add_space_prefix,
                        } => {
                            let prefix = if *add_space_prefix && after_special { " " } else { "" };
                            let escaped = format!("{prefix}{text}").replace(' ', "▁");
                            self.encode_sentencepiece(&escaped, scores, byte_tokens, &mut ids)?;
                        }
                    }
                    after_special = false;
                }
            }
        }
        Ok(ids)
    }

    fn encode_byte_level_word(
        &self,
        word: &str,
        pre: &PreTokenizer,
        byte_level: &ByteLevel,
        merges: &HashMap<(u32, u32), (u32, u32)>,
        ids: &mut Vec<u32>,
    ) -> Result<(), TextError> {
        let mapped = byte_level.encode(word.as_bytes());
        if pre.ignore_merges() {
            if let Some(&id) = self.vocab.get(&mapped) {
                ids.push(id);
                return Ok(());
            }
        }
        let initial = mapped
            .char_indices()
            .map(|(at, c)| {
                (
                    at..at + c.len_utf8(),
                    self.vocab.get(&mapped[at..at + c.len_utf8()]).copied(),
                )
            })
            .collect();
        let symbols = merge(&mapped, initial, |left, right, _| {
            merges.get(&(left?, right?)).map(|&(r, m)| (r.into(), m))
        });
        for (range, id) in symbols {
            match id.or(self.unknown) {
                Some(id) => ids.push(id),
                None => {
                    let piece = String::from_utf8_lossy(&byte_level.decode(&mapped[range])).into_owned();
                    return Err(TextError::Unencodable { piece });
                }
            }
        }
        Ok(())
    }

    fn encode_sentencepiece(
        &self,
        escaped: &str,
        scores: &[f32],
        byte_tokens: &[Option<u32>; 256],
        ids: &mut Vec<u32>,
    ) -> Result<(), TextError> {
        let initial = escaped
            .char_indices()
            .map(|(at, c)| {
                (
                    at..at + c.len_utf8(),
                    self.vocab.get(&escaped[at..at + c.len_utf8()]).copied(),
                )
            })
            .collect();
        let symbols = merge(escaped, initial, |_, _, joined| {
            self.vocab
                .get(joined)
                .map(|&id| (score_priority(scores[id as usize]), id))
        });
        for (range, id) in symbols {
            if let Some(id) = id {
                ids.push(id);
                continue;
            }
            // Byte fallback: the character's UTF-8 bytes as <0xNN> tokens.
            for &byte in escaped[range.clone()].as_bytes() {
                match byte_tokens[byte as usize].or(self.unknown) {
                    Some(id) => ids.push(id),
                    None => {
                        let piece = escaped[range].replace(SPACE_MARK, " ");
                        return Err(TextError::Unencodable { piece });
                    }
                }
            }
        }
        Ok(())
    }

    /// Decodes `ids` to text; special tokens are written as their text unless `skip_special`.
    /// Byte sequences that are not UTF-8 become U+FFFD. With `add_space_prefix` (llama), the
    /// space encoding prefixed is removed again: at the start and after each special token.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TextError> {
        let mut bytes = Vec::new();
        let mut at_text_start = true;
        for &id in ids {
            self.append_piece(id, skip_special, &mut at_text_start, &mut bytes)?;
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Appends the bytes token `id` decodes to; `at_text_start` tracks where a prefixed space
    /// is to be removed (see [`Tokenizer::decode`]).
    pub(crate) fn append_piece(
        &self,
        id: u32,
        skip_special: bool,
        at_text_start: &mut bool,
        out: &mut Vec<u8>,
    ) -> Result<(), TextError> {
        let index = id as usize;
        let piece = self.pieces.get(index).ok_or(TextError::UnknownId {
            id,
            vocab_size: self.pieces.len(),
        })?;
        let ty = self.types[index];
        let strips = matches!(
            self.algorithm,
            Algorithm::Llama {
                add_space_prefix: true,
                ..
            }
        );
        if self.is_matched_special(id) {
            if !(skip_special && ty == TokenType::Control) {
                out.extend_from_slice(piece);
            }
            *at_text_start = true;
            return Ok(());
        }
        match piece.split_first() {
            Some((b' ', rest)) if strips && *at_text_start => out.extend_from_slice(rest),
            _ => out.extend_from_slice(piece),
        }
        if !piece.is_empty() {
            *at_text_start = false;
        }
        Ok(())
    }

    /// Whether `id` is one of the tokens [`Tokenizer::encode`] matches whole in text.
    fn is_matched_special(&self, id: u32) -> bool {
        is_matched_whole(self.types[id as usize])
    }

    /// The bytes token `id` decodes to (special tokens: their text).
    pub fn token_bytes(&self, id: u32) -> Result<&[u8], TextError> {
        self.pieces
            .get(id as usize)
            .map(Vec::as_slice)
            .ok_or(TextError::UnknownId {
                id,
                vocab_size: self.pieces.len(),
            })
    }

    /// The id of a token by its vocabulary text (byte-level text for gpt2), if it exists.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.get(text).copied()
    }

    /// The number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token: generation stops when the model produces it.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Whether the model expects a BOS token before a prompt (`add_bos_token`, GGML's default).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `id` is a control token (skipped by `decode(.., skip_special = true)`).
    pub fn is_control(&self, id: u32) -> bool {
        self.types.get(id as usize) == Some(&TokenType::Control)
    }
}
