//! GPT-2's byte-level alphabet: every byte as one printable character, so that byte-level BPE
//! vocabularies can be stored as text (a space is `Ġ`, a newline `Ċ`).
//!
//! Bytes that are printable Latin-1 (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the
//! other 68 bytes take the characters from U+0100 upwards, in byte order.

/// Whether GPT-2 keeps `byte` as its own Latin-1 character.
fn is_printable(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The byte-level character of each byte, and the reverse mapping.
#[derive(Debug, Clone)]
pub(crate) struct ByteLevel {
    to_char: [char; 256],
    /// The byte of each character code below U+0144 (the alphabet's end), if it has one.
    from_code: [Option<u8>; 0x144],
}

impl ByteLevel {
    /// The GPT-2 mapping.
    pub(crate) fn new() -> Self {
        let mut to_char = ['\0'; 256];
        let mut from_code = [None; 0x144];
        let mut next_extra = 0x100u32;
        for byte in 0..=255u8 {
            let code = if is_printable(byte) {
                u32::from(byte)
            } else {
                next_extra += 1;
                next_extra - 1
            };
            to_char[byte as usize] = char::from_u32(code).expect("U+0000..U+0143 are characters");
            from_code[code as usize] = Some(byte);
        }
        Self { to_char, from_code }
    }

    /// The character that stands for `byte`.
    pub(crate) fn char_of(&self, byte: u8) -> char {
        self.to_char[byte as usize]
    }

    /// The byte that `c` stands for, or `None` if `c` is not in the alphabet.
    pub(crate) fn byte_of(&self, c: char) -> Option<u8> {
        self.from_code.get(c as usize).copied().flatten()
    }

    /// `bytes` in the byte-level alphabet.
    pub(crate) fn encode(&self, bytes: &[u8]) -> String {
        bytes.iter().map(|&b| self.char_of(b)).collect()
    }

    /// The bytes a byte-level token text stands for; a character outside the alphabet stands
    /// for its own UTF-8 bytes.
    pub(crate) fn decode(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.byte_of(c) {
                Some(b) => out.push(b),
                None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_is_a_bijection_with_gpt2_landmarks() {
        let bl = ByteLevel::new();
        assert_eq!(bl.char_of(b' '), 'Ġ');
        assert_eq!(bl.char_of(b'\n'), 'Ċ');
        assert_eq!(bl.char_of(b'\t'), 'ĉ');
        assert_eq!(bl.char_of(0), 'Ā');
        assert_eq!(bl.char_of(b'A'), 'A');
        assert_eq!(bl.char_of(0xAD), 'Ń');
        let chars: std::collections::HashSet<char> = (0..=255u8).map(|b| bl.char_of(b)).collect();
        assert_eq!(chars.len(), 256);
        for b in 0..=255u8 {
            assert_eq!(bl.byte_of(bl.char_of(b)), Some(b));
        }
        assert_eq!(bl.byte_of('€'), None);
        assert_eq!(bl.decode("héĠ€"), [b'h', 0xE9, b' ', 0xE2, 0x82, 0xAC]);
    }
}
