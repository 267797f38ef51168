//! The runtime's error type.
//!
//! Every variant says *what* went wrong and *where* (file, kernel, input, limit, dispatch), so a
//! message read without context is still actionable. Nothing in this crate panics on bad input.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a bundle.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file could not be read.
    #[error("cannot read '{}': {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// The directory has no `manifest.json`.
    #[error("'{}' has no manifest.json; is it a Kiln bundle directory?", dir.display())]
    ManifestMissing {
        /// The directory that was given.
        dir: PathBuf,
    },

    /// `manifest.json` is malformed, of an unknown version, or inconsistent.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// Path of `manifest.json`.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A file listed in the manifest does not have the recorded sha256.
    #[error("bundle file '{file}' was modified: sha256 {actual}, expected {expected}")]
    HashMismatch {
        /// Path relative to the bundle directory.
        file: String,
        /// Hash recorded in the manifest.
        expected: String,
        /// Hash of the file on disk.
        actual: String,
    },

    /// A file listed in `manifest.files` was not provided (bundle loaded from parts).
    #[error("bundle file '{file}' is listed in manifest.json but was not provided")]
    MissingFile {
        /// Path relative to the bundle directory.
        file: String,
    },

    /// A file the bundle uses (kernel source or weight shard) is not listed in `files`,
    /// so its integrity cannot be checked.
    #[error("bundle file '{file}' ({what}) is not listed in manifest.json 'files', so it cannot be verified")]
    UnlistedFile {
        /// Path relative to the bundle directory.
        file: String,
        /// What uses it (`WGSL of kernel 'k0'`, `weight shard`).
        what: String,
    },

    /// A weight tensor is missing from its shard or does not match its [`kiln_abi::WeightSpec`].
    #[error("weight '{name}' in '{file}': {message}")]
    Weight {
        /// Tensor name.
        name: String,
        /// Shard file.
        file: String,
        /// What is wrong.
        message: String,
    },

    /// The bundle is internally inconsistent in a way the manifest parser cannot see.
    #[error("invalid bundle: {0}")]
    InvalidBundle(String),

    /// No usable GPU adapter was found.
    #[error("{0}")]
    NoAdapter(String),

    /// The bundle needs a WebGPU feature the adapter does not offer.
    #[error("the bundle needs WebGPU feature '{feature}', which adapter '{adapter}' does not offer")]
    MissingFeature {
        /// WebGPU feature name.
        feature: String,
        /// Adapter name.
        adapter: String,
    },

    /// The bundle names a feature or limit this runtime does not know.
    #[error("the bundle requires {kind} '{name}', which this runtime does not know")]
    UnknownRequirement {
        /// `feature` or `limit`.
        kind: &'static str,
        /// The name as written in the manifest.
        name: String,
    },

    /// A device limit is lower than the bundle needs.
    #[error("{limit}: the bundle needs {needed} ({source_of_need}), but adapter '{adapter}' offers only {available}")]
    LimitTooLow {
        /// WebGPU limit name (camelCase).
        limit: String,
        /// Value the bundle needs.
        needed: u64,
        /// Value the adapter offers.
        available: u64,
        /// Adapter name.
        adapter: String,
        /// Why the bundle needs it (`manifest requirements`, `kernel 'k2' workgroup size`, ...).
        source_of_need: String,
    },

    /// The adapter refused to create a device.
    #[error("adapter '{adapter}' could not create a device: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },

    /// A kernel's shader module or pipeline could not be created.
    #[error("kernel '{kernel}' ({file}): cannot create its pipeline: {message}")]
    Pipeline {
        /// Kernel name.
        kernel: String,
        /// WGSL file.
        file: String,
        /// wgpu's validation message.
        message: String,
    },

    /// The bundle has no program of this name.
    #[error("the bundle has no program '{name}'; it has: {available}")]
    UnknownProgram {
        /// Requested program.
        name: String,
        /// Comma-separated program names.
        available: String,
    },

    /// A manifest input was not given.
    #[error("input '{name}' is missing; the bundle expects inputs: {expected}")]
    MissingInput {
        /// Missing input.
        name: String,
        /// Comma-separated `name: dtype[shape]` of every expected input.
        expected: String,
    },

    /// A tensor was given under a name the bundle does not have.
    #[error("'{name}' is not an input of this bundle; the bundle expects inputs: {expected}")]
    UnknownInput {
        /// Given name.
        name: String,
        /// Comma-separated `name: dtype[shape]` of every expected input.
        expected: String,
    },

    /// An input has the wrong element type.
    #[error("input '{name}' has dtype {given}, but the bundle expects {expected}")]
    InputDtype {
        /// Input name.
        name: String,
        /// Expected dtype.
        expected: &'static str,
        /// Given dtype.
        given: &'static str,
    },

    /// An input has the wrong shape, or its dims disagree with dims bound by other inputs.
    #[error("input '{name}' has shape {given:?}, but the bundle expects [{expected}]: {detail}")]
    InputShape {
        /// Input name.
        name: String,
        /// Expected shape, as size expressions.
        expected: String,
        /// Given shape.
        given: Vec<usize>,
        /// Which dim is wrong and why.
        detail: String,
    },

    /// A value cannot be converted between host dtype and GPU storage dtype.
    #[error("{what}: {message}")]
    Conversion {
        /// `input 'ids'`, `output 'mask'`, ...
        what: String,
        /// What did not fit.
        message: String,
    },

    /// A size expression could not be evaluated (a dim without a value, a division by zero,
    /// a 64-bit overflow).
    #[error("{what}: {error}")]
    SizeEval {
        /// Which expression (`size of buffer 3 'x'`, `param 'n' of dispatch 2 'add'`).
        what: String,
        /// Why it failed.
        error: kiln_abi::expr::SizeExprError,
    },

    /// A size expression (buffer size, shape, parameter, grid) is negative or out of range.
    #[error("{what}: {message}")]
    SizeExpr {
        /// Which expression (`size of buffer 3 'x'`, `param 'n' of dispatch 2 'add'`).
        what: String,
        /// Why it failed.
        message: String,
    },

    /// A buffer needed at run time exceeds a device limit.
    #[error("buffer {buffer} '{label}' needs {size} bytes, more than the device's {limit} ({max})")]
    BufferTooLarge {
        /// Buffer index.
        buffer: usize,
        /// Buffer label.
        label: String,
        /// Bytes needed.
        size: u64,
        /// Limit name.
        limit: &'static str,
        /// Limit value.
        max: u64,
    },

    /// A dispatch grid cannot be issued on this device.
    #[error("program '{program}' dispatch {index} '{label}': {message}")]
    Grid {
        /// Program name.
        program: String,
        /// Dispatch index.
        index: usize,
        /// Dispatch label.
        label: String,
        /// Why.
        message: String,
    },

    /// wgpu reported a validation, out-of-memory or internal error, or readback failed.
    #[error("GPU error during {context}: {message}")]
    Gpu {
        /// What the runtime was doing.
        context: String,
        /// wgpu's message.
        message: String,
    },

    /// A [`crate::HostTensor`] was built with inconsistent data.
    #[error("host tensor: {0}")]
    HostTensor(String),

    /// `manifest.json` does not have the integrity digest the caller asked for.
    #[error(transparent)]
    Integrity(#[from] kiln_abi::IntegrityError),

    /// An index input (feeding a Gather or embedding) holds a value outside the indexed axis.
    #[error(transparent)]
    IndexOutOfRange(#[from] kiln_abi::IndexOutOfRange),

    /// The input dims break a condition the model relies on (e.g. a sequence longer than its
    /// position table).
    #[error(transparent)]
    Assumption(#[from] kiln_abi::AssumptionViolated),

    /// A run asked to read back an output the program does not have.
    #[error("program '{program}' has no output '{name}'; it has: {available}")]
    UnknownOutput {
        /// Requested output.
        name: String,
        /// Program name.
        program: String,
        /// Comma-separated output names.
        available: String,
    },

    /// Profiling needs timestamp queries, which the adapter does not offer.
    #[error("adapter '{adapter}' does not offer WebGPU timestamp queries (feature 'timestamp-query'), so dispatches cannot be timed; run without --profile, or on an adapter that has them")]
    TimestampsUnsupported {
        /// The adapter, with its backend.
        adapter: String,
    },

    /// A scalar symbol (e.g. `past`) was missing, unknown or out of range.
    #[error("program '{program}': {message}")]
    Scalar {
        /// Program name.
        program: String,
        /// What is wrong.
        message: String,
    },

    /// A queued run ([`crate::Session::submit_queued`]) was asked for an impossible forward
    /// or a resident input without a value.
    #[error("queued run of program '{program}': {message}")]
    Queued {
        /// Program name.
        program: String,
        /// What is wrong.
        message: String,
    },
}

/// Result alias used across the crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
