//! Pre-tokenizers of byte-level BPE models, chosen by `tokenizer.ggml.pre`: the text is split
//! into words by a sequence of regexes before BPE merges run inside each word.
//!
//! Each regex splits every piece of the previous step into its matches *and* the text between
//! them (Hugging Face's `Split` with the `Isolated` behaviour), so no text is ever dropped.
//! The regexes are those of the models' own Hugging Face `tokenizer.json` files; they need
//! look-ahead (`\s+(?!\S)`), hence `fancy-regex`.

use fancy_regex::Regex;

use super::TextError;

/// GPT-2's word regex (Hugging Face's `ByteLevel` pre-tokenizer with `use_regex`).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's word regex: case-insensitive contractions, a letter run with one leading
/// non-letter, digits in groups of up to three, newlines kept apart from other whitespace.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's word regex: Llama 3's with single digits.
const QWEN2: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Every number character on its own (Hugging Face's `Digits` with `individual_digits`).
const SINGLE_DIGITS: &str = r"\p{N}";

/// The pre-tokenizer names Kiln knows, for error messages.
pub(crate) const KNOWN: &str = "gpt2, default, smollm, llama-bpe, llama3, qwen2";

/// A named sequence of splitting regexes.
#[derive(Debug, Clone)]
pub(crate) struct PreTokenizer {
    name: String,
    regexes: Vec<Regex>,
    /// Whether a word that is itself a token skips the merges (Llama 3's `ignore_merges`).
    ignore_merges: bool,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` name (`None`: GPT-2's, as GGML's default).
    pub(crate) fn from_name(name: Option<&str>) -> Result<Self, TextError> {
        let name = name.unwrap_or("default");
        let (patterns, ignore_merges): (&[&str], bool) = match name {
            "gpt2" | "default" => (&[GPT2], false),
            "smollm" => (&[SINGLE_DIGITS, GPT2], false),
            "llama-bpe" | "llama3" => (&[LLAMA3], true),
            "qwen2" => (&[QWEN2], false),
            other => {
                return Err(TextError::Spec {
                    field: "pre",
                    message: format!("unsupported pre-tokenizer '{other}' (supported: {KNOWN})"),
                })
            }
        };
        let regexes = patterns
            .iter()
            .map(|p| Regex::new(p).expect("the built-in pre-tokenizer regexes compile"))
            .collect();
        Ok(Self {
            name: name.to_string(),
            regexes,
            ignore_merges,
        })
    }

    /// Whether a word that is a vocabulary token is emitted whole, without merges.
    pub(crate) fn ignore_merges(&self) -> bool {
        self.ignore_merges
    }

    /// Splits `text` into words, in order; their concatenation is `text`.
    pub(crate) fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, TextError> {
        let mut pieces = vec![text];
        for regex in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last = 0;
                for found in regex.find_iter(piece) {
                    let found = found.map_err(|e| TextError::PreTokenizer {
                        pre: self.name.clone(),
                        message: e.to_string(),
                    })?;
                    if found.start() > last {
                        next.push(&piece[last..found.start()]);
                    }
                    if found.end() > found.start() {
                        next.push(found.as_str());
                    }
                    last = found.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(name: &str, text: &str) -> Vec<String> {
        let pre = PreTokenizer::from_name(Some(name)).unwrap();
        let words = pre.split(text).unwrap();
        assert_eq!(words.concat(), text, "the words of {name} must cover the text");
        words.into_iter().map(String::from).collect()
    }

    #[test]
    fn gpt2_keeps_one_space_before_a_word_and_the_rest_apart() {
        // A whitespace run before a word gives its last character up (`\s+(?!\S)`), even a newline.
        assert_eq!(
            split("gpt2", "Hello  world!\n\nok"),
            ["Hello", " ", " world", "!", "\n", "\n", "ok"]
        );
        assert_eq!(split("gpt2", "a \n\n b"), ["a", " \n\n", " b"]);
        assert_eq!(split("gpt2", "it's 2024"), ["it", "'s", " 2024"]);
    }

    #[test]
    fn smollm_splits_every_digit() {
        assert_eq!(split("smollm", "a 123"), ["a", " ", "1", "2", "3"]);
    }

    #[test]
    fn llama3_groups_digits_by_three_and_keeps_newlines_apart() {
        assert_eq!(
            split("llama-bpe", "12345 x\n\n  y"),
            ["123", "45", " x", "\n\n", " ", " y"]
        );
        assert_eq!(split("qwen2", "12 IT'S"), ["1", "2", " IT", "'S"]);
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_it() {
        let err = PreTokenizer::from_name(Some("tekken")).unwrap_err().to_string();
        assert!(err.contains("'tekken'") && err.contains("smollm"), "{err}");
    }
}
