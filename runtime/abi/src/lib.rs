//! The contract between Kiln's compiler and runtime.
//!
//! A *bundle* is a directory holding `manifest.json` (a [`Manifest`]), WGSL files and
//! safetensors weight shards. This crate defines the manifest, the kernel ABI (how buffers and
//! parameters bind, see docs/bundle-format.md) and [`expr::SizeExpr`], the small expression
//! language in which buffer sizes, kernel parameters and grid sizes depend on symbolic dims.
//! It has no GPU and no compiler dependencies, so both sides (and the browser) can use it.

pub mod expr;
pub mod integrity;
pub mod manifest;
pub mod validate;

pub use expr::{Bindings, SizeExpr, SizeExprError};
pub use integrity::{check_integrity, integrity_of, IntegrityError};
pub use manifest::*;

use sha2::{Digest, Sha256};

/// Bundle format version written by this crate. Version 3 added kernel variants
/// ([`KernelVariant`]); a version-2 manifest is a version-3 one without them. Version 4 added
/// f16 states ([`StateSpec::storage`] `f16`: two values per 32-bit word); a version-3
/// manifest is a version-4 one whose states are all 32-bit. Version 5 added
/// [`VariantRequirements::min_subgroup_size`] (a reader that ignored it could run a subgroup
/// variant on subgroups too narrow for it); a version-4 manifest is a version-5 one without it.
/// Version 6 added [`BufferKind::Scratch`] (a reader that allocated it like an intermediate
/// buffer but shared or filled it would break the kernels that count arrivals in it); a
/// version-5 manifest is a version-6 one without it.
pub const FORMAT_VERSION: u32 = 6;

/// The oldest bundle format version loaders still read; they reject versions outside
/// `MIN_FORMAT_VERSION..=FORMAT_VERSION`.
pub const MIN_FORMAT_VERSION: u32 = 2;

/// File name of the manifest inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Hex sha256 of a byte string (used for every file in the bundle).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
