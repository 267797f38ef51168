//! Bundle loading and verification (no GPU needed).

mod common;

use common::*;
use kiln_abi::*;
use kiln_runtime::{Bundle, RuntimeError};

/// One kernel `k0` adding a weight to an input; weight shard `weights.safetensors`.
fn small_bundle(dir: &std::path::Path) -> Manifest {
    let mut m = empty_manifest(&["n"]);
    let x = buffer(&mut m, BufferKind::Input, "n*4", "x");
    let w = buffer(&mut m, BufferKind::Weight, "16", "w");
    let y = buffer(&mut m, BufferKind::Intermediate, "n*4", "y");
    m.inputs.push(io("x", ElemType::F32, ElemType::F32, &["n"], x));
    m.outputs.push(io("y", ElemType::F32, ElemType::F32, &["n"], y));
    m.weights.push(WeightSpec {
        name: "w".into(),
        file: "weights.safetensors".into(),
        dtype: ElemType::F32,
        shape: vec![4],
        buffer: w,
    });
    let k = kernel(&mut m, "k0_add", &[false, false, true], &["n"], 64, true);
    m.programs.push(Program::new(
        "run",
        vec![dispatch(k, &[x, w, y], &["n"], "cdiv(n, 64)", "add")],
    ));
    let src = wgsl(
        &["n"],
        &[("x", "f32", false), ("w", "f32", false), ("y", "f32", true)],
        64,
        "  if (i >= params.n) { return; }\n  y[i] = x[i] + w[i % 4];",
    );
    let weights = [TestWeight {
        name: "w".into(),
        file: "weights.safetensors".into(),
        dtype: ElemType::F32,
        shape: vec![4],
        data: f32_bytes(&[1.0, 2.0, 3.0, 4.0]),
    }];
    write_bundle(dir, &mut m, &[src], &weights);
    m
}

#[test]
fn loads_a_good_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let m = small_bundle(dir.path());
    let b = Bundle::load(dir.path()).unwrap();
    assert_eq!(b.manifest(), &m);
    assert_eq!(b.weight_data(0), f32_bytes(&[1.0, 2.0, 3.0, 4.0]).as_slice());
    assert!(b.wgsl(0).contains("var<uniform> params: Params"));
}

#[test]
fn modified_wgsl_is_a_hash_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = small_bundle(dir.path());
    let path = dir.path().join("k0_add.wgsl");
    let mut src = std::fs::read_to_string(&path).unwrap();
    src.push_str("// tampered\n");
    std::fs::write(&path, &src).unwrap();
    let err = Bundle::load(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RuntimeError::HashMismatch { .. }), "{msg}");
    assert!(msg.contains("'k0_add.wgsl' was modified"), "{msg}");
    assert!(msg.contains(&m.files["k0_add.wgsl"]), "{msg}");
    assert!(msg.contains(&sha256_hex(src.as_bytes())), "{msg}");
}

#[test]
fn modified_weight_shard_is_a_hash_error() {
    let dir = tempfile::tempdir().unwrap();
    small_bundle(dir.path());
    let path = dir.path().join("weights.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("'weights.safetensors' was modified"), "{msg}");
}

#[test]
fn missing_listed_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    small_bundle(dir.path());
    std::fs::remove_file(dir.path().join("weights.safetensors")).unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("weights.safetensors"), "{msg}");
}

#[test]
fn unlisted_kernel_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = small_bundle(dir.path());
    m.files.remove("k0_add.wgsl");
    std::fs::write(dir.path().join(MANIFEST_FILE), m.to_json()).unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("'k0_add.wgsl'") && msg.contains("not listed"), "{msg}");
}

#[test]
fn missing_malformed_and_wrong_version_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("no manifest.json"), "{msg}");

    std::fs::write(dir.path().join(MANIFEST_FILE), "{ not json").unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("malformed"), "{msg}");

    let mut m = small_bundle(dir.path());
    m.format_version = 99;
    std::fs::write(dir.path().join(MANIFEST_FILE), m.to_json()).unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("version 99"), "{msg}");
}

#[test]
fn weight_spec_mismatch_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = small_bundle(dir.path());
    m.weights[0].shape = vec![2, 2];
    std::fs::write(dir.path().join(MANIFEST_FILE), m.to_json()).unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("weight 'w'") && msg.contains("shape"), "{msg}");

    m.weights[0].shape = vec![4];
    m.weights[0].dtype = ElemType::I32;
    std::fs::write(dir.path().join(MANIFEST_FILE), m.to_json()).unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("weight 'w'") && msg.contains("dtype"), "{msg}");

    m.weights[0].dtype = ElemType::F32;
    m.weights[0].name = "nope".into();
    std::fs::write(dir.path().join(MANIFEST_FILE), m.to_json()).unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("weight 'nope'") && msg.contains("no tensor"), "{msg}");
}

#[test]
fn paths_escaping_the_bundle_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = small_bundle(dir.path());
    m.files.insert("../outside".into(), "00".into());
    std::fs::write(dir.path().join(MANIFEST_FILE), m.to_json()).unwrap();
    let msg = Bundle::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("'../outside'"), "{msg}");
}

#[test]
fn example_manifest_in_the_format_doc_parses() {
    let m = Manifest::from_json(&doc_block("json")).unwrap();
    assert_eq!(m.programs[0].dispatches[0].grid[0], e("cdiv(n, 256)"));
    assert_eq!(m.kernels[0].bindings[1], BindingKind::ReadOnlyStorage);
}

/// Reads a bundle directory into parts the way a browser would receive them.
fn parts_of(dir: &std::path::Path) -> kiln_runtime::BundleParts {
    kiln_runtime::bundle::read_dir_parts(dir).unwrap()
}

#[test]
fn from_parts_builds_the_same_bundle_as_load() {
    let dir = tempfile::tempdir().unwrap();
    let m = small_bundle(dir.path());
    let b = Bundle::from_parts(parts_of(dir.path())).unwrap();
    assert_eq!(b.manifest(), &m);
    assert_eq!(b.dir(), None);
    assert_eq!(b.weight_data(0), f32_bytes(&[1.0, 2.0, 3.0, 4.0]).as_slice());
    assert_eq!(Bundle::load(dir.path()).unwrap().dir(), Some(dir.path()));
}

#[test]
fn from_parts_refuses_a_tampered_shard_and_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    small_bundle(dir.path());
    let mut parts = parts_of(dir.path());
    let shard = parts.files.get_mut("weights.safetensors").unwrap();
    let last = shard.len() - 1;
    shard[last] ^= 0x40;
    let err = Bundle::from_parts(parts).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::HashMismatch { file, .. } if file == "weights.safetensors"),
        "{err}"
    );

    let mut parts = parts_of(dir.path());
    parts.files.remove("k0_add.wgsl");
    let err = Bundle::from_parts(parts).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::MissingFile { file } if file == "k0_add.wgsl"),
        "{err}"
    );
}

#[test]
fn digests_computed_elsewhere_are_compared_with_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    small_bundle(dir.path());
    let parts = parts_of(dir.path());
    let good = parts.digests();
    Bundle::from_parts_with_digests(parts.clone(), &good).unwrap();

    // A digest that disagrees with the manifest (e.g. of bytes tampered in transit) is refused.
    let mut bad = good.clone();
    bad.insert("weights.safetensors".into(), kiln_abi::sha256_hex(b"something else"));
    let msg = Bundle::from_parts_with_digests(parts, &bad).unwrap_err().to_string();
    assert!(msg.contains("weights.safetensors") && msg.contains("modified"), "{msg}");
}
