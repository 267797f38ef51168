//! The text module's error type: bad tokenizer data, text that cannot be encoded, ids that
//! cannot be decoded, chat templates that fail.

/// Everything that can go wrong while building a tokenizer or chat template, encoding or
/// decoding. Each variant names the field, token, id or template position at fault.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The tokenizer data is inconsistent or unsupported (`field` is the GGUF key's short name,
    /// e.g. `merges`, `token_type`, `pre`).
    #[error("tokenizer {field}: {message}")]
    Spec {
        /// The field of [`crate::text::TokenizerSpec`] at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// The tokenizer JSON could not be parsed.
    #[error("tokenizer JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// A piece of the text maps to no token and the vocabulary has no unknown token.
    #[error("cannot encode {piece:?}: no token for it and the vocabulary has no unknown token")]
    Unencodable {
        /// The piece of text (after pre-tokenization) that has no token.
        piece: String,
    },

    /// The pre-tokenizer regex gave up on the text (its backtracking limit).
    #[error("pre-tokenizer '{pre}' failed on the text: {message}")]
    PreTokenizer {
        /// The pre-tokenizer's name.
        pre: String,
        /// The regex engine's message.
        message: String,
    },

    /// A token id outside the vocabulary was given to decode.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownId {
        /// The id.
        id: u32,
        /// The number of tokens in the vocabulary.
        vocab_size: usize,
    },

    /// The GGUF metadata has no `tokenizer.chat_template`.
    #[error("the model has no chat template (tokenizer.chat_template is missing)")]
    NoChatTemplate,

    /// The chat template failed to parse or to render (`raise_exception` included).
    #[error("chat template: {0}")]
    Template(String),
}
