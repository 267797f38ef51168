//! Text for language models: tokenizers and chat templates built from a GGUF file's tokenizer
//! metadata. Pure Rust, so it works natively and in the browser (wasm32).
//!
//! ```no_run
//! use kiln_runtime::text::{ChatTemplate, Message, StreamDecoder, Tokenizer, TokenizerSpec};
//!
//! let spec = TokenizerSpec::from_json(&std::fs::read_to_string("tokenizer.json")?)?;
//! let tokenizer = Tokenizer::from_spec(&spec)?;
//! let prompt = ChatTemplate::new(&spec)?.render(&[Message::new("user", "Hi!")], true)?;
//! let ids = tokenizer.encode(&prompt, tokenizer.add_bos())?;
//! let mut stream = StreamDecoder::continuing(&tokenizer, true);
//! for id in ids {
//!     print!("{}", stream.push(id)?);
//! }
//! print!("{}", stream.finish());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules, one concept each: [`vocab`] (the GGUF tokenizer data, [`TokenizerSpec`]),
//! [`tokenizer`] (encode/decode), [`stream`] (incremental UTF-8-safe decoding), [`chat`] (chat
//! templates), [`error`]; internal: `pretokenize` (the `tokenizer.ggml.pre` regexes),
//! `byte_level` (GPT-2's byte alphabet), `merge` (the BPE merge loop), `special` (finding
//! special tokens in text). See docs/llm-text.md.

mod byte_level;
pub mod chat;
pub mod error;
mod merge;
mod pretokenize;
mod special;
pub mod stream;
pub mod tokenizer;
pub mod vocab;

pub use chat::{ChatTemplate, Message};
pub use error::TextError;
pub use stream::StreamDecoder;
pub use tokenizer::Tokenizer;
pub use vocab::{TokenType, TokenizerModel, TokenizerSpec};
