//! Bundle integrity digests in the Subresource Integrity format (`sha256-<base64>`).
//!
//! The digest of a bundle is the sha256 of its `manifest.json` bytes: the manifest records the
//! sha256 of every other file, so one digest pins the whole bundle, manifest edits included.
//! `kiln compile` prints it; `kiln run --integrity` and the runtime's loader check it. The
//! format is the one browsers check for `fetch(url, { integrity })`, so a web page can pin
//! `manifest.json` with the same string.

use sha2::{Digest, Sha256};

/// Prefix of the only digest algorithm Kiln writes and checks.
pub const INTEGRITY_PREFIX: &str = "sha256-";

/// Why an integrity check failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// The expected digest is not of the form `sha256-<base64>`.
    #[error("integrity '{given}' is not of the form sha256-<base64 of 32 bytes> (as printed by `kiln compile`)")]
    Malformed {
        /// The string given.
        given: String,
    },
    /// The manifest's digest differs from the expected one.
    #[error("bundle integrity check failed: manifest.json has digest {actual}, expected {expected}")]
    Mismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the manifest on disk.
        actual: String,
    },
}

/// The integrity digest (`sha256-<base64>`) of `bytes`.
pub fn integrity_of(bytes: &[u8]) -> String {
    format!("{INTEGRITY_PREFIX}{}", base64(&Sha256::digest(bytes)))
}

/// Checks `bytes` (a `manifest.json`) against an expected digest from [`integrity_of`].
pub fn check_integrity(bytes: &[u8], expected: &str) -> Result<(), IntegrityError> {
    let expected = expected.trim();
    let well_formed = expected.strip_prefix(INTEGRITY_PREFIX).is_some_and(|b| {
        b.len() == 44 && b.ends_with('=') && b.bytes().all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
    });
    if !well_formed {
        return Err(IntegrityError::Malformed {
            given: expected.to_string(),
        });
    }
    let actual = integrity_of(bytes);
    if actual != expected {
        return Err(IntegrityError::Mismatch {
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Standard base64 (RFC 4648, with padding), as SRI uses.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn digest_of_empty_input_is_the_known_sri_value() {
        // `printf '' | openssl dgst -sha256 -binary | base64`
        assert_eq!(integrity_of(b""), "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn check_accepts_the_digest_and_rejects_edits_and_malformed_strings() {
        let m = br#"{"format_version": 1}"#;
        let d = integrity_of(m);
        assert_eq!(check_integrity(m, &d), Ok(()));
        assert_eq!(check_integrity(m, &format!(" {d}\n")), Ok(()));
        let edited = br#"{"format_version": 2}"#;
        assert!(matches!(
            check_integrity(edited, &d),
            Err(IntegrityError::Mismatch { .. })
        ));
        for bad in ["", "sha256-", "sha384-abc", &d[7..], "sha256-!!!!", &format!("{d}x")] {
            assert!(
                matches!(check_integrity(m, bad), Err(IntegrityError::Malformed { .. })),
                "{bad:?} was accepted"
            );
        }
    }
}
