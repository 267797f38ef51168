//! Loading and verifying a bundle, from a directory or from parts in memory.
//!
//! Loading is three separate steps, so each can be swapped or extended on its own:
//!
//! 1. **read**: [`read_dir_parts`] reads `manifest.json` and every file it lists from a
//!    directory into [`BundleParts`]; a browser fetches the same parts over the network
//!    (web/src/kiln.js) and hands them over as bytes.
//! 2. **verify**: [`verify_digests`] compares every listed file's sha256 with the manifest
//!    and checks that every file the bundle uses is listed. [`BundleParts::digests`] hashes the
//!    files here; the browser hashes them with SubtleCrypto and passes the digests instead
//!    ([`Bundle::from_parts_with_digests`]).
//! 3. **parse/validate**: [`Bundle::assemble`] checks the manifest's structure, decodes the
//!    kernels' WGSL and locates every weight in its shard against its [`WeightSpec`].
//!
//! Nothing touches the GPU here, so a bundle can be verified on a machine without one.

use crate::error::{Result, RuntimeError};
use kiln_abi::{BufferKind, ElemType, Manifest, WeightSpec, MANIFEST_FILE};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use web_time::Instant;

/// A bundle's bytes as read, not yet verified: `manifest.json` and the files it lists, keyed by
/// their manifest-relative names.
#[derive(Clone, Debug, Default)]
pub struct BundleParts {
    /// The bytes of `manifest.json`.
    pub manifest: Vec<u8>,
    /// Every other file, by its name in `manifest.files`.
    pub files: HashMap<String, Vec<u8>>,
}

impl BundleParts {
    /// Hex sha256 of every file, by name (the digests [`verify_digests`] compares).
    pub fn digests(&self) -> HashMap<String, String> {
        self.files
            .iter()
            .map(|(name, bytes)| (name.clone(), kiln_abi::sha256_hex(bytes)))
            .collect()
    }
}

/// A verified bundle in host memory: the manifest, every kernel's WGSL, and the weight shards.
#[derive(Debug)]
pub struct Bundle {
    /// The directory it was loaded from; `None` for a bundle built from parts.
    dir: Option<PathBuf>,
    manifest: Manifest,
    wgsl: Vec<String>,
    /// Per kernel, the WGSL of each of its variants.
    variant_wgsl: Vec<Vec<String>>,
    shards: Vec<Vec<u8>>,
    /// Per weight (manifest order): shard index and byte range of its data in that shard.
    weights: Vec<(usize, Range<usize>)>,
    /// Listed files that are neither kernels nor weight shards (e.g. `tokenizer.json`).
    assets: HashMap<String, Vec<u8>>,
}

/// Reads `manifest.json` and every file it lists from `dir` (step 1 of loading; nothing is
/// verified yet). A listed name that is absolute or contains `..` is refused.
pub fn read_dir_parts(dir: &Path) -> Result<BundleParts> {
    let mpath = dir.join(MANIFEST_FILE);
    if !mpath.is_file() {
        return Err(RuntimeError::ManifestMissing { dir: dir.to_path_buf() });
    }
    let manifest_bytes = read(&mpath)?;
    let manifest = parse_manifest(&manifest_bytes, &mpath)?;
    let mut files = HashMap::with_capacity(manifest.files.len());
    for file in manifest.files.keys() {
        let path = safe_join(dir, file).ok_or_else(|| RuntimeError::Manifest {
            path: mpath.clone(),
            message: format!("file name '{file}' must be a relative path inside the bundle"),
        })?;
        files.insert(file.clone(), read(&path)?);
    }
    Ok(BundleParts {
        manifest: manifest_bytes,
        files,
    })
}

/// Parses and version-checks `manifest.json`; `path` names it in errors.
pub fn parse_manifest(bytes: &[u8], path: &Path) -> Result<Manifest> {
    let text = std::str::from_utf8(bytes).map_err(|e| RuntimeError::Manifest {
        path: path.to_path_buf(),
        message: format!("manifest.json is not UTF-8: {e}"),
    })?;
    Manifest::from_json(text).map_err(|e| RuntimeError::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Step 2 of loading: every file the bundle uses (kernel WGSL, weight shards) must be listed in
/// `manifest.files`, and every listed file must be present with the recorded sha256.
/// `digests` maps file names to hex sha256 of the bytes that will be used.
pub fn verify_digests(manifest: &Manifest, digests: &HashMap<String, String>) -> Result<()> {
    for k in &manifest.kernels {
        require_listed(&manifest.files, &k.file, || format!("WGSL of kernel '{}'", k.name))?;
        for (i, v) in k.variants.iter().enumerate() {
            require_listed(&manifest.files, &v.file, || {
                format!("WGSL of variant {i} of kernel '{}'", k.name)
            })?;
        }
    }
    for w in &manifest.weights {
        require_listed(&manifest.files, &w.file, || "weight shard".to_string())?;
    }
    for (file, expected) in &manifest.files {
        let actual = digests
            .get(file)
            .ok_or_else(|| RuntimeError::MissingFile { file: file.clone() })?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(RuntimeError::HashMismatch {
                file: file.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    Ok(())
}

impl Bundle {
    /// Loads and verifies the bundle in `dir`: [`read_dir_parts`], then the same steps as
    /// [`Bundle::from_parts`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Bundle> {
        Self::load_checked(dir.as_ref(), None)
    }

    /// Like [`Bundle::load`], and first checks that `manifest.json` has the integrity digest
    /// `integrity` (`sha256-<base64>`, as printed by `kiln compile`). The manifest holds the
    /// sha256 of every other file, so this pins the whole bundle, as SRI does for a script.
    pub fn load_with_integrity(dir: impl AsRef<Path>, integrity: &str) -> Result<Bundle> {
        Self::load_checked(dir.as_ref(), Some(integrity))
    }

    fn load_checked(dir: &Path, integrity: Option<&str>) -> Result<Bundle> {
        let t0 = Instant::now();
        let parts = read_dir_parts(dir)?;
        if let Some(expected) = integrity {
            kiln_abi::check_integrity(&parts.manifest, expected)?;
        }
        let digests = parts.digests();
        let mut bundle = Self::verify_and_assemble(parts, &digests, &dir.join(MANIFEST_FILE))?;
        bundle.dir = Some(dir.to_path_buf());
        bundle.log_loaded(&dir.display().to_string(), t0);
        Ok(bundle)
    }

    /// Builds a bundle from parts already in memory (e.g. fetched over the network): hashes
    /// every file, verifies the digests against the manifest, then parses and validates.
    pub fn from_parts(parts: BundleParts) -> Result<Bundle> {
        let t0 = Instant::now();
        let digests = parts.digests();
        let bundle = Self::verify_and_assemble(parts, &digests, Path::new(MANIFEST_FILE))?;
        bundle.log_loaded("parts in memory", t0);
        Ok(bundle)
    }

    /// Like [`Bundle::from_parts`], with the files' sha256 digests computed by the caller (a
    /// browser hashes with SubtleCrypto, much faster than hashing in wasm). The digests must be
    /// of exactly the bytes in `parts`; they are compared with the manifest here.
    pub fn from_parts_with_digests(parts: BundleParts, digests: &HashMap<String, String>) -> Result<Bundle> {
        let t0 = Instant::now();
        let bundle = Self::verify_and_assemble(parts, digests, Path::new(MANIFEST_FILE))?;
        bundle.log_loaded("parts in memory", t0);
        Ok(bundle)
    }

    /// Parses the manifest, verifies the digests (step 2), then assembles (step 3).
    fn verify_and_assemble(parts: BundleParts, digests: &HashMap<String, String>, mpath: &Path) -> Result<Bundle> {
        let manifest = parse_manifest(&parts.manifest, mpath)?;
        verify_digests(&manifest, digests)?;
        Self::assemble(manifest, parts.files, mpath)
    }

    /// Step 3 of loading: structural checks, WGSL decoding, weight location. `files` must hold
    /// every file the manifest lists (verified by the caller).
    fn assemble(manifest: Manifest, mut files: HashMap<String, Vec<u8>>, mpath: &Path) -> Result<Bundle> {
        check_structure(&manifest).map_err(|message| RuntimeError::Manifest {
            path: mpath.to_path_buf(),
            message,
        })?;
        let mut wgsl = Vec::with_capacity(manifest.kernels.len());
        let mut variant_wgsl = Vec::with_capacity(manifest.kernels.len());
        let source = |k: &kiln_abi::KernelSpec, file: &str| -> Result<String> {
            let bytes = files
                .get(file)
                .ok_or_else(|| RuntimeError::MissingFile { file: file.to_string() })?;
            String::from_utf8(bytes.clone()).map_err(|e| RuntimeError::Pipeline {
                kernel: k.name.clone(),
                file: file.to_string(),
                message: format!("WGSL file is not UTF-8: {e}"),
            })
        };
        let bad = |e: kiln_abi::ManifestError| RuntimeError::Manifest {
            path: mpath.to_path_buf(),
            message: e.to_string(),
        };
        for (ki, k) in manifest.kernels.iter().enumerate() {
            let src = source(k, &k.file)?;
            manifest.check_kernel_source(ki, &src).map_err(bad)?;
            wgsl.push(src);
            let mut variants = Vec::with_capacity(k.variants.len());
            for (vi, v) in k.variants.iter().enumerate() {
                let src = source(k, &v.file)?;
                manifest.check_variant_source(ki, vi, &src).map_err(bad)?;
                variants.push(src);
            }
            variant_wgsl.push(variants);
        }

        let mut shard_index: HashMap<&str, usize> = HashMap::new();
        let mut shards = Vec::new();
        for w in &manifest.weights {
            if !shard_index.contains_key(w.file.as_str()) {
                let bytes = files
                    .remove(w.file.as_str())
                    .ok_or_else(|| RuntimeError::MissingFile { file: w.file.clone() })?;
                shard_index.insert(w.file.as_str(), shards.len());
                shards.push(bytes);
            }
        }
        let mut weights = Vec::with_capacity(manifest.weights.len());
        for w in &manifest.weights {
            let si = shard_index[w.file.as_str()];
            weights.push((si, locate_weight(w, &shards[si])?));
        }
        let kernel_files: std::collections::HashSet<&str> = manifest
            .kernels
            .iter()
            .flat_map(|k| std::iter::once(k.file.as_str()).chain(k.variants.iter().map(|v| v.file.as_str())))
            .collect();
        files.retain(|name, _| !kernel_files.contains(name.as_str()));
        Ok(Bundle {
            dir: None,
            manifest,
            wgsl,
            variant_wgsl,
            shards,
            weights,
            assets: files,
        })
    }

    fn log_loaded(&self, origin: &str, t0: Instant) {
        let weight_bytes: usize = self.weights.iter().map(|(_, r)| r.len()).sum();
        log::info!(
            "loaded bundle '{origin}' ({}, {} kernels, {} weights, {:.1} MiB) in {:.1} ms",
            self.manifest.model,
            self.manifest.kernels.len(),
            self.manifest.weights.len(),
            weight_bytes as f64 / (1 << 20) as f64,
            t0.elapsed().as_secs_f64() * 1e3
        );
    }

    /// The directory the bundle was loaded from; `None` for a bundle built from parts.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// WGSL source of kernel `kernel` (manifest order). Panics if out of range.
    pub fn wgsl(&self, kernel: usize) -> &str {
        &self.wgsl[kernel]
    }

    /// WGSL source of variant `variant` of kernel `kernel`. Panics if out of range.
    pub fn variant_wgsl(&self, kernel: usize, variant: usize) -> &str {
        &self.variant_wgsl[kernel][variant]
    }

    /// The verified bytes of a listed file that is neither a kernel nor a weight shard (e.g.
    /// a language model's `tokenizer.json`), or `None` if the bundle has no such file.
    pub fn asset(&self, name: &str) -> Option<&[u8]> {
        self.assets.get(name).map(|v| v.as_slice())
    }

    /// Raw little-endian bytes of weight `weight` (manifest order), exactly as stored in its
    /// shard. Panics if out of range.
    pub fn weight_data(&self, weight: usize) -> &[u8] {
        let (s, r) = &self.weights[weight];
        &self.shards[*s][r.clone()]
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| RuntimeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn safe_join(dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let ok = !rel.is_empty() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    ok.then(|| dir.join(p))
}

fn require_listed(files: &BTreeMap<String, String>, file: &str, what: impl FnOnce() -> String) -> Result<()> {
    if files.contains_key(file) {
        Ok(())
    } else {
        Err(RuntimeError::UnlistedFile {
            file: file.to_string(),
            what: what(),
        })
    }
}

/// Consistency checks beyond `Manifest::check_indices`: binding 0 is the uniform, weights fill
/// weight buffers one to one, weight buffers have constant sizes.
fn check_structure(m: &Manifest) -> Result<(), String> {
    for k in &m.kernels {
        use kiln_abi::BindingKind::*;
        if k.bindings.first() != Some(&Uniform) {
            return Err(format!(
                "kernel '{}': binding 0 must be the uniform parameter block",
                k.name
            ));
        }
        if let Some(i) = k.bindings.iter().skip(1).position(|b| *b == Uniform) {
            return Err(format!(
                "kernel '{}': binding {} is a uniform; only binding 0 may be",
                k.name,
                i + 1
            ));
        }
        if k.workgroup_size.contains(&0) {
            return Err(format!("kernel '{}': workgroup size has a zero", k.name));
        }
    }
    let mut filled = vec![None::<&str>; m.buffers.len()];
    for w in &m.weights {
        let b = &m.buffers[w.buffer];
        if b.kind != BufferKind::Weight {
            return Err(format!(
                "weight '{}' fills buffer {} '{}', which is not a weight buffer",
                w.name, w.buffer, b.label
            ));
        }
        if let Some(other) = filled[w.buffer].replace(&w.name) {
            return Err(format!(
                "weights '{other}' and '{}' both fill buffer {}",
                w.name, w.buffer
            ));
        }
    }
    for (i, b) in m.buffers.iter().enumerate() {
        if b.kind == BufferKind::Weight {
            if filled[i].is_none() {
                return Err(format!("weight buffer {i} '{}' is not filled by any weight", b.label));
            }
            let Some(size) = b.size.as_const() else {
                return Err(format!(
                    "weight buffer {i} '{}' has a symbolic size '{}'",
                    b.label, b.size
                ));
            };
            let w = m.weights.iter().find(|w| w.buffer == i).expect("filled");
            let bytes = w.shape.iter().product::<u64>() * w.dtype.host_size() as u64;
            if bytes as i64 > size {
                return Err(format!(
                    "weight '{}' has {bytes} bytes but its buffer {i} '{}' holds {size}",
                    w.name, b.label
                ));
            }
        }
    }
    let program_inputs = m.programs.iter().flat_map(|p| p.inputs.iter().flatten());
    for io in m.inputs.iter().chain(program_inputs) {
        if m.buffers[io.buffer].kind != BufferKind::Input {
            return Err(format!(
                "input '{}' lives in buffer {}, which is not an input buffer",
                io.name, io.buffer
            ));
        }
    }
    let program_io = m
        .programs
        .iter()
        .flat_map(|p| p.inputs.iter().flatten().chain(p.outputs.iter().flatten()));
    for io in m.inputs.iter().chain(&m.outputs).chain(program_io) {
        if crate::host::storage_size(io.storage).is_none() {
            return Err(format!(
                "'{}' has storage dtype {}; GPU storage is f32, f16, i32 or u32",
                io.name,
                io.storage.name()
            ));
        }
    }
    Ok(())
}

fn safetensors_dtype(t: ElemType) -> Dtype {
    match t {
        ElemType::F32 => Dtype::F32,
        ElemType::F16 => Dtype::F16,
        ElemType::I32 => Dtype::I32,
        ElemType::I64 => Dtype::I64,
        ElemType::U32 => Dtype::U32,
        ElemType::I8 => Dtype::I8,
        ElemType::U8 => Dtype::U8,
        ElemType::Bool => Dtype::BOOL,
    }
}

/// Finds weight `w` in its shard and checks dtype, shape and byte count; returns the byte range
/// of its data within the shard file.
fn locate_weight(w: &WeightSpec, shard: &[u8]) -> Result<Range<usize>> {
    let err = |message: String| RuntimeError::Weight {
        name: w.name.clone(),
        file: w.file.clone(),
        message,
    };
    if matches!(w.dtype, ElemType::I64 | ElemType::Bool) {
        return Err(err(format!(
            "dtype {} cannot be uploaded as-is; weights must be stored in a GPU storage dtype \
             (f32, f16, i32, u32, or u8/i8 for packed bytes)",
            w.dtype.name()
        )));
    }
    let (header_len, meta) =
        SafeTensors::read_metadata(shard).map_err(|e| err(format!("shard is not a valid safetensors file: {e}")))?;
    let info = meta
        .info(&w.name)
        .ok_or_else(|| err("no tensor of this name in the shard".to_string()))?;
    let want = safetensors_dtype(w.dtype);
    if info.dtype != want {
        return Err(err(format!(
            "dtype is {:?} in the shard, manifest says {}",
            info.dtype,
            w.dtype.name()
        )));
    }
    let shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
    if shape != w.shape {
        return Err(err(format!(
            "shape is {:?} in the shard, manifest says {:?}",
            info.shape, w.shape
        )));
    }
    let (a, b) = info.data_offsets;
    let start = 8 + header_len + a;
    Ok(start..8 + header_len + b)
}
