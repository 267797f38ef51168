//! Loading and verifying a bundle directory.
//!
//! [`Bundle::load`] reads `manifest.json`, checks that every file the bundle uses is listed in
//! `manifest.files` and has the recorded sha256, reads the kernels' WGSL and the weight shards,
//! and checks every weight against its [`WeightSpec`]. Nothing touches the GPU here, so a bundle
//! can be verified on a machine without one.

use crate::error::{Result, RuntimeError};
use kiln_abi::{BufferKind, ElemType, Manifest, WeightSpec, MANIFEST_FILE};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A verified bundle in host memory: the manifest, every kernel's WGSL, and the weight shards.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    manifest: Manifest,
    wgsl: Vec<String>,
    shards: Vec<Vec<u8>>,
    /// Per weight (manifest order): shard index and byte range of its data in that shard.
    weights: Vec<(usize, Range<usize>)>,
}

impl Bundle {
    /// Loads and verifies the bundle in `dir` (see the module docs for what is checked).
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
        let dir = dir.to_path_buf();
        let mpath = dir.join(MANIFEST_FILE);
        if !mpath.is_file() {
            return Err(RuntimeError::ManifestMissing { dir });
        }
        let text = read(&mpath)?;
        if let Some(expected) = integrity {
            kiln_abi::check_integrity(&text, expected)?;
        }
        let text = String::from_utf8(text).map_err(|e| RuntimeError::Manifest {
            path: mpath.clone(),
            message: format!("manifest.json is not UTF-8: {e}"),
        })?;
        let manifest = Manifest::from_json(&text).map_err(|message| RuntimeError::Manifest {
            path: mpath.clone(),
            message,
        })?;
        check_structure(&manifest).map_err(|message| RuntimeError::Manifest {
            path: mpath.clone(),
            message,
        })?;

        // Every file the runtime reads must be listed (and thus hashed).
        for k in &manifest.kernels {
            require_listed(&manifest.files, &k.file, || format!("WGSL of kernel '{}'", k.name))?;
        }
        for w in &manifest.weights {
            require_listed(&manifest.files, &w.file, || "weight shard".to_string())?;
        }

        // Read and hash every listed file once; keep the ones we need.
        let mut contents: HashMap<&str, Vec<u8>> = HashMap::new();
        for (file, expected) in &manifest.files {
            let path = safe_join(&dir, file).ok_or_else(|| RuntimeError::Manifest {
                path: mpath.clone(),
                message: format!("file name '{file}' must be a relative path inside the bundle"),
            })?;
            let bytes = read(&path)?;
            let actual = kiln_abi::sha256_hex(&bytes);
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(RuntimeError::HashMismatch {
                    file: file.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
            contents.insert(file.as_str(), bytes);
        }

        let mut wgsl = Vec::with_capacity(manifest.kernels.len());
        for k in &manifest.kernels {
            let bytes = contents.get(k.file.as_str()).expect("listed and read above");
            let src = String::from_utf8(bytes.clone()).map_err(|e| RuntimeError::Pipeline {
                kernel: k.name.clone(),
                file: k.file.clone(),
                message: format!("WGSL file is not UTF-8: {e}"),
            })?;
            manifest
                .check_kernel_source(wgsl.len(), &src)
                .map_err(|message| RuntimeError::Manifest {
                    path: mpath.clone(),
                    message,
                })?;
            wgsl.push(src);
        }

        let mut shard_index: HashMap<&str, usize> = HashMap::new();
        let mut shards = Vec::new();
        for w in &manifest.weights {
            if !shard_index.contains_key(w.file.as_str()) {
                shard_index.insert(w.file.as_str(), shards.len());
                shards.push(contents.remove(w.file.as_str()).expect("listed and read above"));
            }
        }
        let mut weights = Vec::with_capacity(manifest.weights.len());
        for w in &manifest.weights {
            let si = shard_index[w.file.as_str()];
            weights.push((si, locate_weight(w, &shards[si])?));
        }
        let weight_bytes: usize = weights.iter().map(|(_, r)| r.len()).sum();
        log::info!(
            "loaded bundle '{}' ({}, {} kernels, {} weights, {:.1} MiB) in {:.1} ms",
            dir.display(),
            manifest.model,
            manifest.kernels.len(),
            manifest.weights.len(),
            weight_bytes as f64 / (1 << 20) as f64,
            t0.elapsed().as_secs_f64() * 1e3
        );
        Ok(Bundle {
            dir,
            manifest,
            wgsl,
            shards,
            weights,
        })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// WGSL source of kernel `kernel` (manifest order). Panics if out of range.
    pub fn wgsl(&self, kernel: usize) -> &str {
        &self.wgsl[kernel]
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

/// Joins a manifest-relative path, refusing absolute paths and `..` components.
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
    for io in m.inputs.iter() {
        if m.buffers[io.buffer].kind != BufferKind::Input {
            return Err(format!(
                "input '{}' lives in buffer {}, which is not an input buffer",
                io.name, io.buffer
            ));
        }
    }
    for io in m.inputs.iter().chain(&m.outputs) {
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
