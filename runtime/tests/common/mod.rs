//! Test helpers: write a bundle directory by hand (manifest built from kiln_abi types, WGSL
//! strings, a safetensors shard, hashes computed) and gate GPU tests.

#![allow(dead_code)]

use kiln_abi::*;
use std::collections::BTreeMap;
use std::path::Path;

/// True when GPU tests should be skipped (`KILN_SKIP_GPU_TESTS=1`). Otherwise a GPU test that
/// finds no adapter fails loudly.
pub fn skip_gpu() -> bool {
    if std::env::var("KILN_SKIP_GPU_TESTS").as_deref() == Ok("1") {
        eprintln!("KILN_SKIP_GPU_TESTS=1: skipping GPU test");
        true
    } else {
        false
    }
}

/// Parses a size expression (panics on a typo in the test).
pub fn e(s: &str) -> SizeExpr {
    SizeExpr::parse(s).unwrap()
}

/// A manifest with no buffers, kernels or programs yet.
pub fn empty_manifest(symbols: &[&str]) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        compiler_version: "kiln test".into(),
        model: "test".into(),
        requirements: Requirements {
            target: "webgpu-default".into(),
            ..Default::default()
        },
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        inputs: vec![],
        outputs: vec![],
        buffers: vec![],
        weights: vec![],
        kernels: vec![],
        programs: vec![],
        files: BTreeMap::new(),
        assumptions: vec![],
        states: vec![],
    }
}

/// Adds a buffer; returns its index.
pub fn buffer(m: &mut Manifest, kind: BufferKind, size: &str, label: &str) -> usize {
    m.buffers.push(BufferSpec {
        kind,
        size: e(size),
        label: label.into(),
    });
    m.buffers.len() - 1
}

/// An input or output spec.
pub fn io(name: &str, dtype: ElemType, storage: ElemType, shape: &[&str], buffer: usize) -> IoSpec {
    IoSpec {
        name: name.into(),
        dtype,
        storage,
        shape: shape.iter().map(|s| e(s)).collect(),
        buffer,
        index_bound: None,
    }
}

/// Adds a kernel whose WGSL lives in `<name>.wgsl`; `storage` lists bindings 1.. (true =
/// read_write). Returns its index.
pub fn kernel(m: &mut Manifest, name: &str, storage: &[bool], params: &[&str], wg: u32, splittable: bool) -> usize {
    let mut bindings = vec![BindingKind::Uniform];
    bindings.extend(storage.iter().map(|&rw| {
        if rw {
            BindingKind::Storage
        } else {
            BindingKind::ReadOnlyStorage
        }
    }));
    m.kernels.push(KernelSpec {
        name: name.into(),
        file: format!("{name}.wgsl"),
        entry_point: "main".into(),
        workgroup_size: [wg, 1, 1],
        bindings,
        params: params.iter().map(|s| s.to_string()).collect(),
        schedule: "injective".into(),
        schedule_params: String::new(),
        schedule_source: "default".into(),
        grid_splittable: splittable,
        variants: Vec::new(),
    });
    m.kernels.len() - 1
}

/// A dispatch of kernel `k` with an x grid expression.
pub fn dispatch(k: usize, buffers: &[usize], params: &[&str], grid_x: &str, label: &str) -> Dispatch {
    Dispatch {
        kernel: k,
        buffers: buffers.to_vec(),
        params: params.iter().map(|s| e(s)).collect(),
        grid: [e(grid_x), e("1"), e("1")],
        label: label.into(),
    }
}

/// WGSL in the kernel ABI: `Params` of i32 fields, binding 0 uniform, then `bufs` as
/// `(name, elem type, read_write)`, a linear index `i` from a possibly split grid, and `body`.
pub fn wgsl(params: &[&str], bufs: &[(&str, &str, bool)], wg: u32, body: &str) -> String {
    let mut s = String::from("struct Params {");
    if params.is_empty() {
        s.push_str(" _unused: i32,");
    }
    for p in params {
        s.push_str(&format!(" {p}: i32,"));
    }
    s.push_str(" }\n@group(0) @binding(0) var<uniform> params: Params;\n");
    for (i, (name, ty, rw)) in bufs.iter().enumerate() {
        let access = if *rw { "read_write" } else { "read" };
        s.push_str(&format!(
            "@group(0) @binding({}) var<storage, {access}> {name}: array<{ty}>;\n",
            i + 1
        ));
    }
    s.push_str(&format!(
        "@compute @workgroup_size({wg}, 1, 1)\n\
         fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, \
         @builtin(local_invocation_index) lid: u32) {{\n  \
         let i = i32((wid.x + wid.y * nwg.x) * {wg}u + lid);\n{body}\n}}\n"
    ));
    s
}

/// A weight to write into a shard.
pub struct TestWeight {
    pub name: String,
    pub file: String,
    pub dtype: ElemType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

fn st_dtype(t: ElemType) -> safetensors::Dtype {
    use safetensors::Dtype;
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

/// Writes the bundle into `dir`: one WGSL file per kernel (`wgsl[i]` for kernel `i`), the
/// weight shards, and manifest.json with every file hashed. `m.weights` must already describe
/// `weights`.
pub fn write_bundle(dir: &Path, m: &mut Manifest, wgsl: &[String], weights: &[TestWeight]) {
    assert_eq!(m.kernels.len(), wgsl.len());
    let mut files = BTreeMap::new();
    for (k, src) in m.kernels.iter().zip(wgsl) {
        std::fs::write(dir.join(&k.file), src).unwrap();
        files.insert(k.file.clone(), sha256_hex(src.as_bytes()));
    }
    let mut shards: BTreeMap<&str, Vec<&TestWeight>> = BTreeMap::new();
    for w in weights {
        shards.entry(&w.file).or_default().push(w);
    }
    for (file, ws) in shards {
        let views: Vec<(String, safetensors::tensor::TensorView)> = ws
            .iter()
            .map(|w| {
                let v = safetensors::tensor::TensorView::new(st_dtype(w.dtype), w.shape.clone(), &w.data).unwrap();
                (w.name.clone(), v)
            })
            .collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        std::fs::write(dir.join(file), &bytes).unwrap();
        files.insert(file.to_string(), sha256_hex(&bytes));
    }
    m.files = files;
    std::fs::write(dir.join(MANIFEST_FILE), m.to_json()).unwrap();
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The first fenced block of language `lang` in docs/bundle-format.md.
pub fn doc_block(lang: &str) -> String {
    let doc = include_str!("../../../docs/bundle-format.md");
    let start = doc.find(&format!("```{lang}\n")).expect("block in doc") + lang.len() + 4;
    let len = doc[start..].find("```").expect("closed block");
    doc[start..start + len].to_string()
}
