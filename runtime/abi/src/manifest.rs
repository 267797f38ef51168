//! The bundle manifest (`manifest.json`), format version [`crate::FORMAT_VERSION`].
//!
//! See docs/bundle-format.md for the prose description; every field here is documented there.

use crate::SizeExpr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Top-level manifest of a compiled bundle.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Bundle format version; loaders reject versions they do not know.
    pub format_version: u32,
    /// `kiln <version>` that wrote the bundle.
    pub compiler_version: String,
    /// Model name (from the source file).
    pub model: String,
    /// What the device must offer.
    pub requirements: Requirements,
    /// Symbolic dims left open at compile time; bound from input shapes at run time.
    pub symbols: Vec<String>,
    /// Graph inputs, in declaration order.
    pub inputs: Vec<IoSpec>,
    /// Graph outputs, in declaration order.
    pub outputs: Vec<IoSpec>,
    /// Every GPU buffer the programs use.
    pub buffers: Vec<BufferSpec>,
    /// Weights and the buffers they fill.
    pub weights: Vec<WeightSpec>,
    /// Compute kernels (one WGSL module each).
    pub kernels: Vec<KernelSpec>,
    /// Dispatch programs by name (`run`, or `prefill`/`decode`).
    pub programs: Vec<Program>,
    /// sha256 (hex) of every other file in the bundle, by path relative to the bundle dir.
    pub files: BTreeMap<String, String>,
    /// Conditions on symbolic dims the model relies on; the runtime refuses inputs whose dims
    /// break one (instead of reading out of range on the GPU).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assumptions: Vec<SizeAssumption>,
    /// Persistent tensors (a KV cache) that live on the GPU across runs and programs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<StateSpec>,
}

/// A persistent tensor of constant shape in a [`BufferKind::State`] buffer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StateSpec {
    /// Unique name, e.g. `k_cache.0`.
    pub name: String,
    /// Element type in the buffer.
    pub storage: ElemType,
    /// Constant shape.
    pub shape: Vec<u64>,
    /// Its buffer (of kind `state`).
    pub buffer: usize,
}

/// `value <= max` must hold once the symbols are bound (e.g. `seq <= 512` for a model whose
/// position table has 512 rows).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SizeAssumption {
    /// The bounded value.
    pub value: SizeExpr,
    /// Its largest allowed value.
    pub max: SizeExpr,
    /// Which node relies on it and why.
    pub why: String,
}

/// Input dims that break a [`SizeAssumption`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the input dims give '{value}' = {actual}, more than '{max}' = {limit}, which the model allows: {why}")]
pub struct AssumptionViolated {
    /// The bounded expression.
    pub value: String,
    /// Its value for the given inputs.
    pub actual: i64,
    /// The bound expression.
    pub max: String,
    /// The bound's value.
    pub limit: i64,
    /// Which node relies on it.
    pub why: String,
}

/// Features and limits the bundle needs from the adapter.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Requirements {
    /// Target profile the bundle was compiled for (e.g. `webgpu-default`).
    pub target: String,
    /// WebGPU feature names, e.g. `shader-f16`.
    pub features: Vec<String>,
    /// Minimum values of WebGPU limits, by WebGPU limit name (camelCase, as in the spec).
    /// Limits on sizes that depend on symbolic dims are checked again at run time.
    pub limits: BTreeMap<String, u64>,
}

/// Element type of a tensor crossing the bundle boundary or living in a GPU buffer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ElemType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 32-bit signed int.
    I32,
    /// 64-bit signed int (host side only; stored as i32 on the GPU).
    I64,
    /// 32-bit unsigned int.
    U32,
    /// 8-bit signed int (host side only).
    I8,
    /// 8-bit unsigned int (host side only).
    U8,
    /// Boolean (host side; stored as u32 0/1 on the GPU).
    Bool,
}

impl ElemType {
    /// Bytes per element on the host / in files.
    pub fn host_size(self) -> usize {
        match self {
            ElemType::F32 | ElemType::I32 | ElemType::U32 => 4,
            ElemType::I64 => 8,
            ElemType::F16 => 2,
            ElemType::I8 | ElemType::U8 | ElemType::Bool => 1,
        }
    }

    /// The name used in messages (`f32`, `bool`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F16 => "f16",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::U32 => "u32",
            ElemType::I8 => "i8",
            ElemType::U8 => "u8",
            ElemType::Bool => "bool",
        }
    }
}

/// A graph input or output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IoSpec {
    /// Name in the source model.
    pub name: String,
    /// Element type the caller supplies / receives.
    pub dtype: ElemType,
    /// Element type in the GPU buffer (`f32`, `f16`, `i32` or `u32`).
    pub storage: ElemType,
    /// Shape; entries are constants or size expressions over symbols.
    pub shape: Vec<SizeExpr>,
    /// Buffer holding the value (index into `buffers`).
    pub buffer: usize,
    /// Set when the input's values index into a tensor (a Gather or embedding lookup): the
    /// runtime checks every value against it before upload, since an out-of-range index
    /// would otherwise read garbage (or zeros) on the GPU. Absent for other inputs and outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_bound: Option<IndexBound>,
}

/// The valid range of an index input: `0 <= i < bound`, or `-bound <= i < bound` when negative
/// indices count from the end (ONNX `Gather`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexBound {
    /// Size of the indexed axis.
    pub bound: u64,
    /// Whether `-bound..0` is valid too (counting from the end).
    pub negative: bool,
    /// The graph node that uses the input as indices, for messages.
    pub used_by: String,
}

/// An input value outside its [`IndexBound`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "input '{input}' holds index {value} at flat position {position}, outside the valid range {range} \
     (it indexes an axis of size {bound} in '{used_by}')"
)]
pub struct IndexOutOfRange {
    /// Input name.
    pub input: String,
    /// Flat (row-major) position of the offending value.
    pub position: usize,
    /// The value.
    pub value: i64,
    /// Size of the indexed axis.
    pub bound: u64,
    /// `0..bound` or `-bound..bound`.
    pub range: String,
    /// The node that uses the input as indices.
    pub used_by: String,
}

impl IoSpec {
    /// Checks that every value of an index input is inside its [`IndexBound`]; inputs without
    /// one accept anything. Values are in row-major order.
    pub fn check_index_values(&self, values: &[i64]) -> Result<(), IndexOutOfRange> {
        let Some(b) = &self.index_bound else {
            return Ok(());
        };
        let hi = i64::try_from(b.bound).unwrap_or(i64::MAX);
        let lo = if b.negative { -hi } else { 0 };
        match values.iter().position(|&v| v < lo || v >= hi) {
            None => Ok(()),
            Some(position) => Err(IndexOutOfRange {
                input: self.name.clone(),
                position,
                value: values[position],
                bound: b.bound,
                range: format!("{lo}..{hi}"),
                used_by: b.used_by.clone(),
            }),
        }
    }
}

/// What a buffer holds, which decides how the runtime creates and fills it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BufferKind {
    /// Filled from a graph input before each run.
    Input,
    /// Filled once from weight shards at load time.
    Weight,
    /// Written and read by kernels; may hold several values whose lifetimes do not overlap.
    Intermediate,
    /// One persistent [`StateSpec`]: allocated (zero-filled) at session creation, written in
    /// place by kernels, kept across runs and programs.
    State,
    /// Scratch of kernels whose last workgroup combines the others' partial results in the
    /// same dispatch: zero-filled when allocated and never shared with other values; every
    /// dispatch that binds it leaves its arrival counters at zero again (its partial results
    /// are left behind and overwritten by the next such dispatch).
    Scratch,
}

/// A GPU storage buffer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BufferSpec {
    /// What fills it.
    pub kind: BufferKind,
    /// Size in bytes (a size expression when it depends on symbols).
    pub size: SizeExpr,
    /// Values assigned to it, for inspection and debugging.
    pub label: String,
}

/// A weight tensor stored in a safetensors shard.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WeightSpec {
    /// Tensor name inside the shard.
    pub name: String,
    /// Shard file, relative to the bundle dir.
    pub file: String,
    /// Element type as stored in the shard (already the GPU storage type).
    pub dtype: ElemType,
    /// Concrete shape.
    pub shape: Vec<u64>,
    /// Buffer it fills.
    pub buffer: usize,
}

/// How a kernel binding is accessed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BindingKind {
    /// The kernel's parameter block (`var<uniform>`), always binding 0.
    Uniform,
    /// `var<storage, read>`.
    ReadOnlyStorage,
    /// `var<storage, read_write>`.
    Storage,
}

/// A compute kernel: one WGSL module with one entry point, bind group 0 only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KernelSpec {
    /// Unique name (also the WGSL file stem).
    pub name: String,
    /// WGSL file, relative to the bundle dir.
    pub file: String,
    /// Entry point name.
    pub entry_point: String,
    /// `@workgroup_size`.
    pub workgroup_size: [u32; 3],
    /// Bindings of group 0, in binding-index order (binding `i` is entry `i`).
    pub bindings: Vec<BindingKind>,
    /// Names of the i32 fields of the parameter struct, in order.
    pub params: Vec<String>,
    /// The schedule that produced the kernel, as display text (e.g. `gemv(lanes=8, ...)`).
    pub schedule: String,
    /// The same schedule as RON text of `kiln_schedules::Schedule`, which tools parse back.
    #[serde(default)]
    pub schedule_params: String,
    /// Where the schedule came from: `default` (the analytic model) or `tuning` (a record of
    /// the tuning database given to `kiln compile --tuning`).
    #[serde(default)]
    pub schedule_source: String,
    /// True if the kernel tolerates the runtime splitting a too-large X grid into X*Y
    /// (it reconstructs a linear workgroup index and bounds-checks it).
    pub grid_splittable: bool,
    /// Alternative implementations of the same kernel (same bindings and parameters), best
    /// first, each with what it needs from the adapter. The runtime takes the first variant
    /// the adapter supports, else this kernel itself, which needs only the manifest's
    /// `requirements`. A kernel with variants has constant parameters in every dispatch, and
    /// each variant a constant grid (format version 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<KernelVariant>,
}

/// One alternative implementation of a kernel: its own WGSL module, workgroup shape, grid and
/// schedule, with the bindings, parameters and entry point of the kernel it belongs to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KernelVariant {
    /// WGSL file, relative to the bundle dir.
    pub file: String,
    /// `@workgroup_size`.
    pub workgroup_size: [u32; 3],
    /// Workgroup counts (x, y, z) of every dispatch of the kernel when this variant runs.
    pub grid: [SizeExpr; 3],
    /// The schedule, as display text.
    pub schedule: String,
    /// The schedule as RON text of `kiln_schedules::Schedule`.
    pub schedule_params: String,
    /// What the adapter must offer for this variant.
    pub requires: VariantRequirements,
}

/// What a [`KernelVariant`] needs from the adapter, beyond the manifest's `requirements`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct VariantRequirements {
    /// WebGPU / wgpu feature names, e.g. `shader-f16`, `wgpu-cooperative-matrix`.
    pub features: Vec<String>,
    /// Cooperative-matrix configurations the adapter must report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cooperative_matrix: Vec<CoopMatrixConfig>,
    /// Subgroup width the kernel assumes: the adapter's smallest and largest subgroup sizes
    /// must both equal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subgroup_size: Option<u32>,
    /// Fewest lanes per subgroup the kernel works with (a group of this many consecutive
    /// invocations shares a subgroup): the adapter's smallest subgroup size must be at least
    /// this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_subgroup_size: Option<u32>,
    /// Minimum values of WebGPU limits (as in [`Requirements::limits`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, u64>,
}

/// A cooperative-matrix configuration: `C (m x n, cr) = A (m x k, ab) x B (k x n, ab) + C`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct CoopMatrixConfig {
    /// Rows of A and C.
    pub m: u32,
    /// Columns of B and C.
    pub n: u32,
    /// Columns of A, rows of B.
    pub k: u32,
    /// Element type of A and B.
    pub ab: ElemType,
    /// Element type of the accumulator and result.
    pub cr: ElemType,
}

impl Manifest {
    /// The manifest as it runs with the variants in `choice` (per kernel, the index of its
    /// chosen variant, or `None` for the kernel itself): a chosen variant replaces its kernel's
    /// file, workgroup shape and schedule and the grid of every dispatch of the kernel, and its
    /// features and limits join the requirements. No kernel of the result has variants.
    pub fn with_variants(&self, choice: &[Option<usize>]) -> Manifest {
        let mut m = self.clone();
        for (ki, k) in self.kernels.iter().enumerate() {
            let Some(v) = choice.get(ki).copied().flatten().and_then(|i| k.variants.get(i)) else {
                m.kernels[ki].variants.clear();
                continue;
            };
            m.kernels[ki] = k.with_variant(v);
            for f in &v.requires.features {
                if !m.requirements.features.contains(f) {
                    m.requirements.features.push(f.clone());
                }
            }
            for (name, value) in &v.requires.limits {
                let e = m.requirements.limits.entry(name.clone()).or_insert(0);
                *e = (*e).max(*value);
            }
            for p in &mut m.programs {
                for d in p.dispatches.iter_mut().filter(|d| d.kernel == ki) {
                    d.grid = v.grid.clone();
                }
            }
        }
        m
    }
}

impl KernelSpec {
    /// The kernel as it runs with variant `v`: the variant's file, workgroup shape and
    /// schedule, this kernel's name, bindings and parameters, and no variants.
    pub fn with_variant(&self, v: &KernelVariant) -> KernelSpec {
        KernelSpec {
            file: v.file.clone(),
            workgroup_size: v.workgroup_size,
            schedule: v.schedule.clone(),
            schedule_params: v.schedule_params.clone(),
            variants: Vec::new(),
            ..self.clone()
        }
    }
}

/// One compute dispatch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Dispatch {
    /// Kernel index.
    pub kernel: usize,
    /// Buffer index for each storage binding (bindings 1..), in order.
    pub buffers: Vec<usize>,
    /// Value of each kernel parameter.
    pub params: Vec<SizeExpr>,
    /// Workgroup counts (x, y, z) before any split.
    pub grid: [SizeExpr; 3],
    /// The graph node(s) this dispatch computes, for profiling and errors.
    pub label: String,
}

/// A named sequence of dispatches, recorded into one command encoder and one compute pass.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Program {
    /// `run`, `prefill`, `decode`, ...
    pub name: String,
    /// Dispatches in order.
    pub dispatches: Vec<Dispatch>,
    /// The program's own inputs; `None`: the manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<IoSpec>>,
    /// The program's own outputs; `None`: the manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<IoSpec>>,
    /// Symbols bound from the program's input shapes; `None`: the manifest's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols: Option<Vec<String>>,
    /// Symbols the caller binds by value at run time (e.g. `past`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scalars: Vec<String>,
}

impl Program {
    /// A program over the manifest's inputs, outputs and symbols.
    pub fn new(name: &str, dispatches: Vec<Dispatch>) -> Program {
        Program {
            name: name.to_string(),
            dispatches,
            inputs: None,
            outputs: None,
            symbols: None,
            scalars: Vec::new(),
        }
    }
}

/// Why a manifest was refused: each variant is one family of checks, and its text says what
/// and where (the buffer, state, kernel, program and dispatch by name and index).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the manifest's schema.
    #[error("manifest.json is malformed: {0}")]
    Malformed(String),
    /// A format version this build does not read.
    #[error("bundle format version {found} is not supported (this build reads version {supported})")]
    Version {
        /// The manifest's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// An index (buffer, kernel) that points at nothing, or a binding count that does not fit.
    #[error("{0}")]
    Index(String),
    /// A buffer, dispatch, grid or input/output that breaks a structural rule.
    #[error("{0}")]
    Structure(String),
    /// A state entry that does not match its buffer.
    #[error("{0}")]
    State(String),
    /// An output that reads nothing any dispatch writes, or a weight of another size.
    #[error("{0}")]
    Output(String),
    /// A kernel spec that breaks the kernel ABI (binding 0, workgroup size, entry point).
    #[error("{0}")]
    Kernel(String),
    /// A kernel's WGSL disagrees with its spec.
    #[error("{msg}")]
    KernelSource {
        /// The kernel's index.
        kernel: usize,
        /// What differs, naming the kernel and its file.
        msg: String,
    },
}

impl Manifest {
    /// Parses `manifest.json` text; errors say what is wrong.
    pub fn from_json(text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if !(crate::MIN_FORMAT_VERSION..=crate::FORMAT_VERSION).contains(&m.format_version) {
            return Err(ManifestError::Version {
                found: m.format_version,
                supported: crate::FORMAT_VERSION,
            });
        }
        m.validate()?;
        Ok(m)
    }

    /// The integrity digest of this manifest as Kiln writes it (`sha256-<base64>`, the
    /// Subresource Integrity format): the sha256 of the `manifest.json` bytes. The manifest
    /// lists the sha256 of every other file, so the digest covers the whole bundle.
    pub fn integrity(&self) -> String {
        crate::integrity_of(self.to_json().as_bytes())
    }

    /// Serializes to pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serializes")
    }

    /// Checks every [`SizeAssumption`] for bound symbols (expressions that cannot be evaluated
    /// are left to the shape checks).
    pub fn check_assumptions(&self, b: &crate::Bindings) -> Result<(), AssumptionViolated> {
        for a in &self.assumptions {
            if let (Ok(actual), Ok(limit)) = (a.value.eval(b), a.max.eval(b)) {
                if actual > limit {
                    return Err(AssumptionViolated {
                        value: a.value.to_string(),
                        actual,
                        max: a.max.to_string(),
                        limit,
                        why: a.why.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The program with this name.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// The inputs of program `p` (its own, else the manifest's).
    pub fn program_inputs(&self, p: usize) -> &[IoSpec] {
        self.programs[p].inputs.as_deref().unwrap_or(&self.inputs)
    }

    /// The outputs of program `p` (its own, else the manifest's).
    pub fn program_outputs(&self, p: usize) -> &[IoSpec] {
        self.programs[p].outputs.as_deref().unwrap_or(&self.outputs)
    }

    /// The symbols bound from program `p`'s input shapes (its own, else the manifest's).
    pub fn program_symbols(&self, p: usize) -> &[String] {
        self.programs[p].symbols.as_deref().unwrap_or(&self.symbols)
    }

    /// Every buffer program `p` binds or exchanges with the caller, sorted.
    pub fn program_buffers(&self, p: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self.programs[p]
            .dispatches
            .iter()
            .flat_map(|d| d.buffers.iter().copied())
            .chain(self.program_inputs(p).iter().map(|io| io.buffer))
            .chain(self.program_outputs(p).iter().map(|io| io.buffer))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Checks that every index points at something that exists.
    pub fn check_indices(&self) -> Result<(), ManifestError> {
        let nb = self.buffers.len();
        let program_io = self
            .programs
            .iter()
            .flat_map(|p| p.inputs.iter().flatten().chain(p.outputs.iter().flatten()));
        for io in self.inputs.iter().chain(&self.outputs).chain(program_io) {
            if io.buffer >= nb {
                return Err(ManifestError::Index(format!(
                    "manifest: '{}' refers to buffer {} of {nb}",
                    io.name, io.buffer
                )));
            }
        }
        for st in &self.states {
            if st.buffer >= nb {
                return Err(ManifestError::Index(format!(
                    "manifest: state '{}' refers to buffer {} of {nb}",
                    st.name, st.buffer
                )));
            }
        }
        for w in &self.weights {
            if w.buffer >= nb {
                return Err(ManifestError::Index(format!(
                    "manifest: weight '{}' refers to buffer {} of {nb}",
                    w.name, w.buffer
                )));
            }
        }
        for p in &self.programs {
            for (i, d) in p.dispatches.iter().enumerate() {
                let k = self.kernels.get(d.kernel).ok_or_else(|| {
                    ManifestError::Index(format!(
                        "manifest: program '{}' dispatch {i} refers to kernel {} of {}",
                        p.name,
                        d.kernel,
                        self.kernels.len()
                    ))
                })?;
                if k.bindings.is_empty() {
                    return Err(ManifestError::Index(format!(
                        "manifest: kernel '{}' has no bindings; binding 0 must be its parameter block",
                        k.name
                    )));
                }
                if d.buffers.len() + 1 != k.bindings.len() || d.params.len() != k.params.len() {
                    return Err(ManifestError::Index(format!(
                        "manifest: program '{}' dispatch {i} ({}) binds {} buffers and {} params; kernel '{}' takes {} and {}",
                        p.name,
                        d.label,
                        d.buffers.len(),
                        d.params.len(),
                        k.name,
                        k.bindings.len() - 1,
                        k.params.len()
                    )));
                }
                if let Some(b) = d.buffers.iter().find(|&&b| b >= nb) {
                    return Err(ManifestError::Index(format!(
                        "manifest: program '{}' dispatch {i} refers to buffer {b} of {nb}",
                        p.name
                    )));
                }
            }
        }
        Ok(())
    }
}
