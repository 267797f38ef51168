//! [`StreamDecoder`]: decodes tokens one at a time as they are generated and hands back only
//! complete UTF-8, so a character split over several tokens (an emoji, a CJK character in a
//! byte-level vocabulary, `<0xNN>` byte-fallback tokens) is printed once it is whole.

use super::{TextError, Tokenizer};

/// An incremental decoder over one [`Tokenizer`]. Feeding ids one by one through
/// [`StreamDecoder::push`] and then [`StreamDecoder::finish`] yields exactly
/// `tokenizer.decode(ids, skip_special)`.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    skip_special: bool,
    at_text_start: bool,
    /// Bytes of an incomplete UTF-8 sequence, waiting for the tokens that complete it.
    pending: Vec<u8>,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder at the start of a text; special tokens are written unless `skip_special`.
    pub fn new(tokenizer: &'t Tokenizer, skip_special: bool) -> Self {
        Self {
            tokenizer,
            skip_special,
            at_text_start: true,
            pending: Vec::new(),
        }
    }

    /// A decoder that continues a text (a prompt): with `add_space_prefix` (llama) the first
    /// token keeps its leading space.
    pub fn continuing(tokenizer: &'t Tokenizer, skip_special: bool) -> Self {
        Self {
            at_text_start: false,
            ..Self::new(tokenizer, skip_special)
        }
    }

    /// Adds token `id` and returns the text it completes (often empty while a character is
    /// incomplete). Invalid UTF-8 is returned as U+FFFD as soon as it is known to be invalid.
    pub fn push(&mut self, id: u32) -> Result<String, TextError> {
        self.tokenizer
            .append_piece(id, self.skip_special, &mut self.at_text_start, &mut self.pending)?;
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return Ok(out);
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("valid up to here"));
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return Ok(out);
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: returns what is left (an incomplete sequence becomes U+FFFD).
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}
