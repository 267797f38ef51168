//! Finding special tokens (`<|im_start|>`, `</s>`, added tokens) in text, so that each is
//! encoded as its one token instead of being split into pieces.
//!
//! The text is scanned left to right; at each position the longest special token that
//! starts there wins (leftmost-longest, as Hugging Face's added-token matcher).

use std::collections::HashMap;

/// A run of the text: either ordinary text to tokenize, or one special token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment<'t> {
    /// Text without special tokens.
    Text(&'t str),
    /// A special token's id.
    Token(u32),
}

/// The special tokens of a vocabulary, indexed by their first byte.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpecialTokens {
    /// Per first byte: (token text, id), longest text first.
    by_first_byte: HashMap<u8, Vec<(String, u32)>>,
}

impl SpecialTokens {
    /// Indexes the given (text, id) pairs; empty texts are ignored.
    pub(crate) fn new(tokens: impl IntoIterator<Item = (String, u32)>) -> Self {
        let mut by_first_byte: HashMap<u8, Vec<(String, u32)>> = HashMap::new();
        for (text, id) in tokens {
            if let Some(&first) = text.as_bytes().first() {
                by_first_byte.entry(first).or_default().push((text, id));
            }
        }
        for list in by_first_byte.values_mut() {
            // Longest first; equal lengths by id so the choice is deterministic.
            list.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        }
        Self { by_first_byte }
    }

    /// Splits `text` at the special tokens in it; empty text runs are left out.
    pub(crate) fn split<'t>(&self, text: &'t str) -> Vec<Fragment<'t>> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let (mut start, mut at) = (0, 0);
        while at < bytes.len() {
            let found = self
                .by_first_byte
                .get(&bytes[at])
                .and_then(|list| list.iter().find(|(t, _)| bytes[at..].starts_with(t.as_bytes())));
            match found {
                Some((t, id)) => {
                    if at > start {
                        out.push(Fragment::Text(&text[start..at]));
                    }
                    out.push(Fragment::Token(*id));
                    at += t.len();
                    start = at;
                }
                None => at += 1,
            }
        }
        if start < bytes.len() {
            out.push(Fragment::Text(&text[start..]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_special_at_the_leftmost_position_wins() {
        let specials = SpecialTokens::new([
            ("<|a|>".to_string(), 5),
            ("<|a|><|b|>".to_string(), 7),
            ("<|b|>".to_string(), 6),
        ]);
        use Fragment::*;
        assert_eq!(
            specials.split("x<|a|><|b|>y<|b|>"),
            [Text("x"), Token(7), Text("y"), Token(6)]
        );
        assert_eq!(specials.split("<|a|>"), [Token(5)]);
        assert_eq!(specials.split("<|a| é"), [Text("<|a| é")]);
        assert_eq!(specials.split(""), []);
    }
}
