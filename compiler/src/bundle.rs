//! The bundle writer: kernels, weights and manifest into a directory, atomically.
//!
//! Everything is written into a temporary sibling directory first; only when every file is
//! complete (and hashed into the manifest) does it replace the target. A failed compile never
//! leaves a half-written bundle behind, and never destroys an existing one. The target is
//! replaced only if it is empty or a Kiln bundle (a manifest whose `files` list every file in
//! the directory), so `-o` pointed at an unrelated folder destroys nothing. Temporary
//! directories left by a killed compile (`.NAME.tmp-PID`, `.NAME.old-PID` of a process that no
//! longer exists) are removed by the next compile into the same place.

use crate::CompileError;
use kiln_abi::{sha256_hex, Manifest, MANIFEST_FILE};
use kiln_ir::Tensor;
use std::path::Path;

/// Largest weight shard written, in bytes (many hosts and browsers handle files of this size well).
pub const SHARD_BYTES: usize = 512 << 20;

/// A compiled bundle held in memory.
#[derive(Clone, Debug)]
pub struct CompiledBundle {
    /// The manifest; `files` and weight `file` fields are filled in by [`write_bundle`].
    pub manifest: Manifest,
    /// WGSL sources by file name (relative to the bundle dir).
    pub kernel_sources: Vec<(String, String)>,
    /// Weight tensors (already in GPU storage dtype) by the index of their `WeightSpec`.
    pub weights: Vec<Tensor>,
    /// Other files the runtime reads by name (e.g. `tokenizer.json` of a language model),
    /// written and hashed like the kernels.
    pub assets: Vec<(String, Vec<u8>)>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> CompileError {
    CompileError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// Writes the bundle to `dir` (replacing an existing bundle there only on success).
pub fn write_bundle(b: &CompiledBundle, dir: &Path) -> Result<Manifest, CompileError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "bundle".into());
    remove_stale_temp_dirs(parent, &name);
    if dir.exists() {
        check_replaceable(dir)?;
    }
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = write_into(b, &tmp);
    match result {
        Ok(manifest) => {
            if dir.exists() {
                if let Err(e) = check_replaceable(dir) {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(e);
                }
                let old = parent.join(format!(".{name}.old-{}", std::process::id()));
                std::fs::rename(dir, &old).map_err(|e| io_err(dir, e))?;
                if let Err(e) = std::fs::rename(&tmp, dir) {
                    let _ = std::fs::rename(&old, dir);
                    return Err(io_err(dir, e));
                }
                let _ = std::fs::remove_dir_all(&old);
            } else {
                std::fs::rename(&tmp, dir).map_err(|e| io_err(dir, e))?;
            }
            Ok(manifest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Refuses to replace `dir` unless it is an empty directory or a Kiln bundle: a
/// `manifest.json` that parses as a manifest and lists (in `files`) every other file in the
/// directory. Anything else would be destroyed by the replacement.
pub fn check_replaceable(dir: &Path) -> Result<(), CompileError> {
    let refuse = |why: String| {
        io_err(
            dir,
            format!("exists and is not a Kiln bundle ({why}); refusing to replace it (choose another -o, or remove it yourself)"),
        )
    };
    if !dir.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    let mut files = Vec::new();
    list_files(dir, dir, &mut files).map_err(|e| io_err(dir, e))?;
    if files.is_empty() {
        return Ok(());
    }
    let text =
        std::fs::read_to_string(dir.join(MANIFEST_FILE)).map_err(|_| refuse(format!("no readable {MANIFEST_FILE}")))?;
    let manifest =
        Manifest::from_json(&text).map_err(|e| refuse(format!("{MANIFEST_FILE} is not a Kiln manifest: {e}")))?;
    if let Some(extra) = files
        .iter()
        .find(|f| f.as_str() != MANIFEST_FILE && !manifest.files.contains_key(f.as_str()))
    {
        return Err(refuse(format!("'{extra}' is not one of the bundle's files")));
    }
    Ok(())
}

/// Every file under `dir`, as `/`-separated paths relative to `root`; symlinks count as files.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            list_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    Ok(())
}

/// Removes `.NAME.tmp-PID` / `.NAME.old-PID` directories in `parent` whose process no longer
/// runs (a compile killed while writing). Only where process liveness can be read (`/proc`).
fn remove_stale_temp_dirs(parent: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().to_string();
        let pid = [".tmp-", ".old-"].iter().find_map(|kind| {
            file_name
                .strip_prefix(&format!(".{name}{kind}"))
                .and_then(|pid| pid.parse::<u32>().ok())
        });
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                log::info!("removing {} left by an interrupted compile", entry.path().display());
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn write_into(b: &CompiledBundle, dir: &Path) -> Result<Manifest, CompileError> {
    let mut m = b.manifest.clone();
    std::fs::create_dir_all(dir.join("kernels")).map_err(|e| io_err(dir, e))?;
    for (file, src) in &b.kernel_sources {
        let p = dir.join(file);
        std::fs::write(&p, src).map_err(|e| io_err(&p, e))?;
        m.files.insert(file.clone(), sha256_hex(src.as_bytes()));
    }
    for (file, bytes) in &b.assets {
        let p = dir.join(file);
        std::fs::write(&p, bytes).map_err(|e| io_err(&p, e))?;
        m.files.insert(file.clone(), sha256_hex(bytes));
    }
    // Shard weights in manifest order.
    let mut shard: Vec<usize> = Vec::new();
    let mut shard_bytes = 0usize;
    let mut shard_idx = 0usize;
    let flush = |shard: &mut Vec<usize>, idx: usize, m: &mut Manifest| -> Result<(), CompileError> {
        if shard.is_empty() {
            return Ok(());
        }
        let file = format!("weights-{idx:05}.safetensors");
        let p = dir.join(&file);
        let bytes: Vec<(String, Vec<u8>, &Tensor)> = shard
            .iter()
            .map(|&w| (m.weights[w].name.clone(), b.weights[w].to_le_bytes(), &b.weights[w]))
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
            .iter()
            .map(|(n, data, t)| {
                let dt = match t.dtype() {
                    kiln_ir::DType::F32 => safetensors::Dtype::F32,
                    kiln_ir::DType::F16 => safetensors::Dtype::F16,
                    kiln_ir::DType::I32 => safetensors::Dtype::I32,
                    kiln_ir::DType::U32 => safetensors::Dtype::U32,
                    kiln_ir::DType::I8 => safetensors::Dtype::I8,
                    kiln_ir::DType::U8 => safetensors::Dtype::U8,
                    kiln_ir::DType::Bool => safetensors::Dtype::BOOL,
                };
                let v = safetensors::tensor::TensorView::new(dt, t.shape.clone(), data)
                    .expect("sizes match by construction");
                (n.clone(), v)
            })
            .collect();
        let data = safetensors::serialize(views, None).map_err(|e| io_err(&p, e))?;
        std::fs::write(&p, &data).map_err(|e| io_err(&p, e))?;
        m.files.insert(file.clone(), sha256_hex(&data));
        for &w in shard.iter() {
            m.weights[w].file = file.clone();
        }
        shard.clear();
        Ok(())
    };
    for (w, t) in b.weights.iter().enumerate() {
        let n = t.numel() * t.dtype().host_size();
        if shard_bytes + n > SHARD_BYTES && !shard.is_empty() {
            flush(&mut shard, shard_idx, &mut m)?;
            shard_idx += 1;
            shard_bytes = 0;
        }
        shard.push(w);
        shard_bytes += n;
    }
    flush(&mut shard, shard_idx, &mut m)?;
    let p = dir.join(MANIFEST_FILE);
    std::fs::write(&p, m.to_json()).map_err(|e| io_err(&p, e))?;
    Ok(m)
}
