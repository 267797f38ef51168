//! [`TokenizerSpec`]: the tokenizer exactly as GGUF stores it (`tokenizer.ggml.*` and
//! `tokenizer.chat_template`), serializable as the bundle's tokenizer JSON.
//!
//! The JSON keys are the GGUF keys without their `tokenizer.ggml.` / `tokenizer.` prefix;
//! `scripts/gguf_tokenizer_json.py` writes the same format from a GGUF file with Python.

use serde::{Deserialize, Serialize};

use super::TextError;

/// Which tokenization algorithm the vocabulary is for (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerModel {
    /// Byte-level BPE with ranked merges and a regex pre-tokenizer (GPT-2, Llama 3, Qwen2, SmolLM).
    Gpt2,
    /// SentencePiece-style BPE: merges chosen by token score over `▁`-escaped text, with
    /// `<0xNN>` byte-fallback tokens (Llama 1/2, Mistral).
    Llama,
}

impl TokenizerModel {
    /// The model from its GGUF name (`gpt2` or `llama`).
    pub fn from_gguf_name(name: &str) -> Result<Self, TextError> {
        match name {
            "gpt2" => Ok(Self::Gpt2),
            "llama" => Ok(Self::Llama),
            other => Err(TextError::Spec {
                field: "model",
                message: format!("unsupported tokenizer model '{other}' (supported: gpt2, llama)"),
            }),
        }
    }
}

/// The kind of a token (`tokenizer.ggml.token_type`, GGML's `llama_token_type` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// An ordinary vocabulary entry (1).
    Normal,
    /// The unknown token (2).
    Unknown,
    /// A special token such as `<|im_start|>` or `</s>`: matched whole in the text, skipped
    /// when decoding with `skip_special` (3).
    Control,
    /// A token added by the model's authors, matched whole in the text and decoded verbatim (4).
    UserDefined,
    /// A vocabulary slot that is never produced (5).
    Unused,
    /// A byte-fallback token `<0xNN>` (6).
    Byte,
}

impl TokenType {
    /// The type from its GGUF number; `None` for a number GGML does not define.
    pub fn from_gguf(value: i32) -> Option<Self> {
        Some(match value {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }
}

/// A tokenizer as GGUF stores it. Optional fields are `None` (or empty) when the GGUF file
/// lacks the key; the tokenizer then applies GGML's defaults (see [`crate::text::Tokenizer`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`.
    pub model: TokenizerModel,
    /// `tokenizer.ggml.pre`: the pre-tokenizer's name (`smollm`, `llama-bpe`, `qwen2`, `gpt2`,
    /// `default`); only used by [`TokenizerModel::Gpt2`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: each token's text, indexed by id (byte-level mapped for gpt2).
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores`: each token's score (SentencePiece merge priority), or empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type`: each token's [`TokenType`] number, or empty (all normal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_type: Vec<i32>,
    /// `tokenizer.ggml.merges`: BPE merges `"left right"`, highest priority first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_token_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template`: the Jinja chat template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
}

impl TokenizerSpec {
    /// A spec with the required fields (`tokenizer.ggml.model`, `tokenizer.ggml.tokens`) and
    /// every optional field absent; set the others as the GGUF file has them.
    pub fn new(model: TokenizerModel, tokens: Vec<String>) -> Self {
        Self {
            model,
            pre: None,
            tokens,
            scores: Vec::new(),
            token_type: Vec::new(),
            merges: Vec::new(),
            bos_token_id: None,
            eos_token_id: None,
            unknown_token_id: None,
            padding_token_id: None,
            add_bos_token: None,
            add_space_prefix: None,
            chat_template: None,
        }
    }

    /// Parses the tokenizer JSON (the bundle's file, or `scripts/gguf_tokenizer_json.py`'s output).
    pub fn from_json(json: &str) -> Result<Self, TextError> {
        Ok(serde_json::from_str(json)?)
    }

    /// Serializes as the tokenizer JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a TokenizerSpec always serializes")
    }

    /// The type of token `id` (normal when `token_type` is absent).
    pub fn token_type_of(&self, id: usize) -> Result<TokenType, TextError> {
        match self.token_type.get(id) {
            None => Ok(TokenType::Normal),
            Some(&value) => TokenType::from_gguf(value).ok_or_else(|| TextError::Spec {
                field: "token_type",
                message: format!("token {id} has type {value}, which GGML does not define (1..=6)"),
            }),
        }
    }
}
