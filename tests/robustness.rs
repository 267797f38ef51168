//! Regression tests for issue 10's findings (bad input attacks): panics and aborts, sizes
//! checked before allocation, silent wrong answers, manifest integrity and validation, and the
//! bundle writer's handling of `-o` and temporary directories. Every failure must be a clean
//! error (non-zero exit, no panic) that says what is wrong and where.

use crate::common;

use common::*;
use kiln::compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
use kiln::ir::Tensor;
use kiln::runtime::HostTensor;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// `kiln compile <model> -o <bundle> <extra...>` without asserting the result.
fn try_compile(model: &Path, bundle: &Path, extra: &[&str]) -> Outcome {
    let mut args: Vec<String> = vec![
        "compile".into(),
        model.display().to_string(),
        "-o".into(),
        bundle.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    kiln(&args)
}

/// Compiles `onnx` in a fresh temporary directory; returns (dir guard, work dir, bundle dir).
fn compiled(onnx: &[u8]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    let model = write_file(&work, "model.onnx", onnx);
    let bundle = work.join("bundle");
    compile(&model, &bundle, &[]);
    (tmp, work, bundle)
}

/// Token ids `ids: i64[batch, seq]` looked up in a 10-row embedding table -> `emb[batch, seq, 4]`.
fn embedding_onnx() -> Vec<u8> {
    let mut b = ModelBuilder::new("embedding");
    b.input("ids", DataType::Int64, &[d("batch"), d("seq")]);
    b.init_f32("table", &[10, 4], &values(40, 3, 1.0));
    b.node("Gather", &["table", "ids"], &["emb"]).name("word_embeddings");
    b.output("emb", DataType::Float);
    b.encode()
}

fn ids(shape: &[usize], v: &[i64]) -> BTreeMap<String, HostTensor> {
    BTreeMap::from([("ids".to_string(), HostTensor::from_i64(shape, v))])
}

#[test]
fn index_inputs_are_range_checked_before_upload() {
    let (_tmp, work, bundle) = compiled(&embedding_onnx());
    let m = manifest(&bundle);
    let b = m.inputs[0]
        .index_bound
        .as_ref()
        .expect("ids is recorded as an index input");
    assert_eq!((b.bound, b.negative), (10, true));
    // In range (negative indices count from the end, as in ONNX): matches the interpreter.
    let good = ids(&[2, 3], &[0, 9, 3, -1, -10, 5]);
    // Independent reference: the table rows at the (wrapped) ids, written out here.
    let table = values(40, 3, 1.0);
    let want: Vec<f32> = [0i64, 9, 3, -1, -10, 5]
        .iter()
        .flat_map(|&i| {
            let r = i.rem_euclid(10) as usize;
            table[r * 4..r * 4 + 4].to_vec()
        })
        .collect();
    let expected = HashMap::from([("emb".to_string(), Tensor::f32(vec![2, 3, 4], want))]);
    run_and_check(&bundle, &work, "good", &good, &expected);
    // One past the end, and one before the start: refused, naming the input, index and bound.
    for (tag, bad) in [("high", 10i64), ("low", -11)] {
        let inputs = ids(&[1, 3], &[1, bad, 2]);
        let mut args = vec!["run".to_string(), bundle.display().to_string()];
        let dir = work.join(tag);
        std::fs::create_dir_all(&dir).unwrap();
        args.extend(write_inputs(&dir, &inputs));
        kiln(&args).fails_with(&[
            "'ids'",
            &format!("index {bad}"),
            "-10..10",
            "word_embeddings",
            "position 1",
        ]);
    }
}

#[test]
fn constant_gather_index_out_of_range_is_a_compile_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = ModelBuilder::new("const_gather");
    b.input("x", DataType::Float, &[d(3), d(4)]);
    b.init_i64("idx", &[2], &[1, 3]);
    b.node("Gather", &["x", "idx"], &["y"]).name("pick_rows");
    b.output("y", DataType::Float);
    let model = write_file(tmp.path(), "m.onnx", &b.encode());
    try_compile(&model, &tmp.path().join("b"), &[]).fails_with(&["pick_rows", "index 3", "size 3"]);
}

#[test]
fn matmul_with_three_inputs_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = ModelBuilder::new("mm3");
    for n in ["a", "b", "c"] {
        b.input(n, DataType::Float, &[d(2), d(2)]);
    }
    b.node("MatMul", &["a", "b", "c"], &["y"]).name("mm");
    b.output("y", DataType::Float);
    let model = write_file(tmp.path(), "m.onnx", &b.encode());
    try_compile(&model, &tmp.path().join("b"), &[]).fails_with(&["'mm'", "3 inputs", "exactly 2"]);
}

#[test]
fn maxpool_with_a_zero_kernel_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = ModelBuilder::new("pool0");
    b.input("x", DataType::Float, &[d(1), d(1), d(4), d(4)]);
    b.node("MaxPool", &["x"], &["y"])
        .name("pool")
        .attr_ints("kernel_shape", &[0, 2]);
    b.output("y", DataType::Float);
    let model = write_file(tmp.path(), "m.onnx", &b.encode());
    try_compile(&model, &tmp.path().join("b"), &[]).fails_with(&["'pool'", "kernel_shape", "size 0"]);
}

#[test]
fn a_huge_constant_range_is_refused_before_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = ModelBuilder::new("range");
    b.init_i64("start", &[], &[0]);
    b.init_i64("limit", &[], &[1 << 40]);
    b.init_i64("delta", &[], &[1]);
    b.node("Range", &["start", "limit", "delta"], &["r"]).name("iota");
    b.output("r", DataType::Int64);
    let model = write_file(tmp.path(), "m.onnx", &b.encode());
    try_compile(&model, &tmp.path().join("b"), &[]).fails_with(&["iota", "1099511627776 elements"]);
}

#[test]
fn compile_prints_an_integrity_digest_that_run_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_file(tmp.path(), "m.onnx", &mlp_onnx());
    let bundle = tmp.path().join("bundle");
    let out = compile(&model, &bundle, &[]);
    let digest = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("integrity: "))
        .unwrap_or_else(|| panic!("no integrity line\n{}", out.describe()))
        .to_string();
    let text = std::fs::read(bundle.join("manifest.json")).unwrap();
    assert_eq!(digest, kiln::abi::integrity_of(&text));
    let inputs = write_inputs(tmp.path(), &mlp_inputs(2));
    let run = |digest: &str| {
        let mut args = vec![
            "run".to_string(),
            bundle.display().to_string(),
            "--integrity".into(),
            digest.into(),
        ];
        args.extend(inputs.clone());
        kiln(&args)
    };
    run(&digest).ok();
    // Any edit of the manifest (here: whitespace only) changes the digest.
    std::fs::write(bundle.join("manifest.json"), [text.as_slice(), b"\n"].concat()).unwrap();
    run(&digest).fails_with(&["integrity", &digest]);
    run("sha256-deadbeef").fails_with(&["sha256-deadbeef", "not of the form"]);
    // The library API has the same option.
    let err = kiln::runtime::Bundle::load_with_integrity(&bundle, &digest).unwrap_err();
    assert!(matches!(err, kiln::runtime::RuntimeError::Integrity(_)), "{err}");
}

/// Applies `edit` to the bundle's manifest (as JSON) and expects `kiln inspect` and `kiln run`
/// to refuse it with every needle in the message.
fn edited_manifest_is_refused(edit: impl Fn(&mut serde_json::Value), needles: &[&str]) {
    let (_tmp, work, bundle) = compiled(&mlp_onnx());
    let path = bundle.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    kiln(["inspect", &bundle.display().to_string()]).fails_with(needles);
    let mut args = vec!["run".to_string(), bundle.display().to_string()];
    args.extend(write_inputs(&work, &mlp_inputs(2)));
    kiln(&args).fails_with(needles);
}

#[test]
fn manifest_with_a_zero_grid_is_refused() {
    edited_manifest_is_refused(
        |v| v["programs"][0]["dispatches"][0]["grid"] = serde_json::json!([0, 0, 0]),
        &["dispatch 0", "zero workgroups"],
    );
}

#[test]
fn manifest_with_an_output_in_a_weight_buffer_is_refused() {
    edited_manifest_is_refused(
        |v| {
            let w = v["weights"][0]["buffer"].clone();
            v["outputs"][0]["buffer"] = w;
        },
        &["output 'out/prob:0'", "weight buffer"],
    );
}

#[test]
fn manifest_with_a_wrong_workgroup_size_is_refused() {
    edited_manifest_is_refused(
        |v| {
            let ws = &mut v["kernels"][0]["workgroup_size"];
            let x = ws[0].as_u64().unwrap();
            ws[0] = serde_json::json!(x * 2);
        },
        &["kernel 'k000", "workgroup_size", "@workgroup_size"],
    );
}

#[test]
fn manifest_with_empty_bindings_is_refused() {
    edited_manifest_is_refused(
        |v| v["kernels"][0]["bindings"] = serde_json::json!([]),
        &["k000", "no bindings"],
    );
}

#[test]
fn manifest_with_a_deeply_nested_size_expression_is_refused() {
    let deep = format!("{}1{}", "(".repeat(30_000), ")".repeat(30_000));
    edited_manifest_is_refused(
        move |v| v["buffers"][0]["size"] = serde_json::json!(deep),
        &["nests deeper"],
    );
}

#[test]
fn output_dir_with_a_manifest_beside_unrelated_files_is_not_replaced() {
    let (_tmp, work, bundle) = compiled(&mlp_onnx());
    let webapp = work.join("webapp");
    std::fs::create_dir(&webapp).unwrap();
    std::fs::copy(bundle.join("manifest.json"), webapp.join("manifest.json")).unwrap();
    write_file(&webapp, "index.html", b"<html></html>");
    let before = snapshot(&webapp);
    let model = write_file(&work, "m2.onnx", &mlp_onnx());
    try_compile(&model, &webapp, &[]).fails_with(&["webapp", "not a Kiln bundle", "index.html"]);
    assert_eq!(snapshot(&webapp), before, "the folder was changed");
    // A bundle with a stray file added is refused too; a clean bundle is replaced.
    write_file(&bundle, "notes.txt", b"mine");
    try_compile(&model, &bundle, &[]).fails_with(&["notes.txt"]);
    std::fs::remove_file(bundle.join("notes.txt")).unwrap();
    compile(&model, &bundle, &[]);
}

#[test]
fn temp_dirs_of_a_killed_compile_are_removed_by_the_next_one() {
    let (_tmp, work, bundle) = compiled(&mlp_onnx());
    // A pid that is not running (pids are at most 2^22 on Linux).
    let dead = (4_000_000u32..4_194_304)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let stale = work.join(format!(".bundle.tmp-{dead}"));
    std::fs::create_dir_all(stale.join("kernels")).unwrap();
    write_file(&stale, "manifest.json", b"{}");
    let model = write_file(&work, "again.onnx", &mlp_onnx());
    compile(&model, &bundle, &[]);
    assert!(!stale.exists(), "the stale temp dir is still there");
}

#[test]
fn bench_dim_flags_are_checked() {
    let (_tmp, work, bundle) = compiled(&mlp_onnx());
    let b = bundle.display().to_string();
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", b.as_str(), "--iters", "1"];
        args.extend(extra);
        kiln(&args)
    };
    bench(&["--dim", "bacth=2"]).fails_with(&["bacth", "batch"]);
    bench(&["--dim", "batch=2", "--dim", "batch=3"]).fails_with(&["batch", "more than once"]);
    let x = write_inputs(&work, &mlp_inputs(2));
    bench(&["--dim", "batch=3", &x[0], &x[1]]).fails_with(&["'x'", "batch = 2", "--dim batch=3"]);
    bench(&["--dim", "batch=2147483648"]).fails_with(&["batch=2147483648", "bytes"]);
    bench(&["--dim", "batch=2", "--temperature", "0.7"]).fails_with(&["--temperature", "language-model bundles only"]);
    bench(&["--dim", "batch=2"]).ok();
}

#[test]
fn demo_batch_is_checked_before_allocation() {
    kiln(["demo", "--batch", "0"]).fails_with(&["--batch", "at least 1"]);
    kiln(["demo", "--batch", "1000000000"]).fails_with(&["--batch 1000000000", "bytes"]);
}

/// A 15,000-node elementwise chain compiles at opt-level 2 on a test thread's small stack
/// (fusion caps a kernel's size, so the recursive expression renderer stays shallow) and runs
/// correctly on the GPU.
#[test]
fn a_very_long_elementwise_chain_compiles_and_runs() {
    use kiln::ir::{BinaryOp, DType, Dim, Graph, Op, Tensor, TensorType, UnaryOp};
    let mut g = Graph::new();
    let x = g.add_input(
        "x",
        TensorType {
            dtype: DType::F32,
            shape: vec![Dim::c(4), Dim::c(8)],
        },
    );
    let step = g.add_const("step", Tensor::scalar(DType::F32, 0.001));
    let mut v = x;
    for i in 0..15_000 {
        v = if i % 2 == 0 {
            g.add(&format!("neg{i}"), Op::Unary(UnaryOp::Neg), &[v]).unwrap()
        } else {
            g.add(&format!("add{i}"), Op::Binary(BinaryOp::Add), &[v, step])
                .unwrap()
        };
    }
    g.add_output("y", v);
    let model = kiln::compiler::Model {
        name: "long_chain".into(),
        graph: g,
        io_dtypes: Default::default(),
    };
    let bundle = kiln::compiler::compile(&model, &kiln::compiler::CompileOptions::default()).expect("compiles");
    let kernels = bundle.manifest.programs[0].dispatches.len();
    assert!(
        (15_000 / kiln::compiler::lower::fuse::MAX_FUSED_NODES..=100).contains(&kernels),
        "{kernels} dispatches"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chain.kiln");
    kiln::compiler::write_bundle(&bundle, &dir).unwrap();
    let loaded = kiln::runtime::Bundle::load(&dir).unwrap();
    let mut session = kiln::runtime::Session::new(&loaded, &Default::default()).unwrap();
    let input: Vec<f32> = values(32, 5, 1.0);
    let inputs = std::collections::HashMap::from([("x".to_string(), HostTensor::from_f32(&[4, 8], &input))]);
    let out = session.run("run", &inputs).unwrap();
    let ir_in = std::collections::HashMap::from([("x".to_string(), Tensor::f32(vec![4, 8], input.clone()))]);
    let expected = kiln::ir::interp::evaluate(&model.graph, &ir_in).unwrap();
    assert_close("long chain", &out[0].1, &expected["y"]);
}

/// `scripts/setup.sh` finds a driver in any search directory, even when another one is empty
/// (it used to `ls` two globs at once, fail on the empty one and reinstall lavapipe).
#[test]
fn setup_script_detects_a_driver_next_to_an_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (empty, other_empty, full) = (tmp.path().join("e1"), tmp.path().join("e2"), tmp.path().join("full"));
    for d in [&empty, &other_empty, &full] {
        std::fs::create_dir(d).unwrap();
    }
    write_file(&full, "lvp_icd.x86_64.json", b"{}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup.sh");
    let check = |dirs: &[&PathBuf]| {
        let joined = dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        std::process::Command::new("bash")
            .arg(&script)
            .arg("--check")
            .env("KILN_VULKAN_ICD_DIRS", joined)
            .env_remove("VK_ICD_FILENAMES")
            .env_remove("VK_DRIVER_FILES")
            .output()
            .unwrap()
    };
    assert!(check(&[&full, &empty]).status.success());
    assert!(check(&[&empty, &full]).status.success());
    let none = check(&[&empty, &other_empty]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no Vulkan driver found"));
}

/// `pos[1, 8, 4]` sliced to `[1, seq, 4]` with `seq` from the input's shape, added to
/// `x[1, seq, 4]`: the position-table pattern of BERT-style models (MiniLM has 512 rows).
fn position_table_onnx() -> Vec<u8> {
    let mut b = ModelBuilder::new("positions");
    b.input("x", DataType::Float, &[d(1), d("seq"), d(4)]);
    b.init_f32("pos", &[1, 8, 4], &values(32, 9, 1.0));
    b.init_i64("one", &[], &[1]);
    b.init_i64("axis0", &[1], &[0]);
    b.init_i64("zero", &[1], &[0]);
    b.init_i64("axis1", &[1], &[1]);
    b.node("Shape", &["x"], &["shape"]).name("shape");
    b.node("Gather", &["shape", "one"], &["seq_len"]).name("seq_len");
    b.node("Unsqueeze", &["seq_len", "axis0"], &["end"]).name("end");
    b.node("Slice", &["pos", "zero", "end", "axis1"], &["pos_used"])
        .name("position_slice");
    b.node("Add", &["x", "pos_used"], &["y"]).name("add_positions");
    b.output("y", DataType::Float);
    b.encode()
}

#[test]
fn a_sequence_longer_than_the_position_table_is_refused() {
    let (_tmp, work, bundle) = compiled(&position_table_onnx());
    let m = manifest(&bundle);
    assert_eq!(m.assumptions.len(), 1, "{:?}", m.assumptions);
    let x = |seq: usize| {
        BTreeMap::from([(
            "x".to_string(),
            HostTensor::from_f32(&[1, seq, 4], &values(seq * 4, 2, 1.0)),
        )])
    };
    for seq in [3, 8] {
        let inputs = x(seq);
        // Independent reference: x plus the first `seq` rows of the position table.
        let (xs, pos) = (values(seq * 4, 2, 1.0), values(32, 9, 1.0));
        let want: Vec<f32> = xs.iter().zip(&pos).map(|(a, b)| a + b).collect();
        let expected = HashMap::from([("y".to_string(), Tensor::f32(vec![1, seq, 4], want))]);
        run_and_check(&bundle, &work, &format!("seq{seq}"), &inputs, &expected);
    }
    let dir = work.join("seq9");
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = vec!["run".to_string(), bundle.display().to_string()];
    args.extend(write_inputs(&dir, &x(9)));
    kiln(&args).fails_with(&["'seq' = 9", "= 8", "position_slice"]);
    // The interpreter (the tests' oracle) refuses it too.
    let model =
        kiln::compiler::frontend::onnx::load_onnx_bytes(&position_table_onnx(), "p", &Default::default()).unwrap();
    let t = kiln::convert::to_ir(&x(9)["x"]).unwrap();
    let err =
        kiln::ir::interp::evaluate(&model.graph, &std::collections::HashMap::from([("x".to_string(), t)])).unwrap_err();
    assert!(err.to_string().contains("position_slice"), "{err}");
}

#[test]
fn a_tensor_beyond_32_bit_indexing_is_a_clear_compile_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = ModelBuilder::new("huge");
    b.init_i64("shape", &[2], &[65_536, 65_536]);
    b.node("ConstantOfShape", &["shape"], &["zeros"]).name("huge_zeros");
    b.output("zeros", DataType::Float);
    let model = write_file(tmp.path(), "m.onnx", &b.encode());
    try_compile(&model, &tmp.path().join("b"), &[]).fails_with(&["huge_zeros", "2147483647 elements"]);
}

/// A node that needs concrete sizes names every symbolic dim of its inputs in one error.
#[test]
fn an_error_about_symbolic_dims_names_all_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = ModelBuilder::new("strided");
    b.input("x", DataType::Float, &[d("n"), d(3), d("h"), d("w")]);
    b.init_f32("k", &[4, 3, 3, 3], &values(108, 1, 0.5));
    // Automatic padding depends on the input length, so it needs concrete sizes.
    b.node("Conv", &["x", "k"], &["y"])
        .name("stem")
        .attr_ints("strides", &[2, 2])
        .attr_str("auto_pad", "SAME_UPPER");
    b.output("y", DataType::Float);
    let model = write_file(tmp.path(), "m.onnx", &b.encode());
    try_compile(&model, &tmp.path().join("b"), &[]).fails_with(&[
        "stem",
        "--dim h=VALUE",
        "--dim n=VALUE",
        "--dim w=VALUE",
    ]);
    // With every dim given it compiles.
    compile(
        &model,
        &tmp.path().join("b"),
        &["--dim", "n=1", "--dim", "h=16", "--dim", "w=16"],
    );
}

/// A `.npy` whose header claims more data than the file holds (or a shape whose element count
/// overflows) is refused before anything is allocated for it.
#[test]
fn forged_npy_shapes_are_refused_before_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let (_t, _work, bundle) = compiled(&mlp_onnx());
    let real = tmp.path().join("real.npy");
    kiln::npy::write_npy(&real, &HostTensor::from_f32(&[4], &[1.0; 4])).unwrap();
    let bytes = std::fs::read(&real).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    let data = &bytes[10 + header_len..];
    for (tag, shape) in [
        ("overflow", "(4294967296, 4294967296)"),
        ("oversized", "(1099511627776,)"),
    ] {
        // Replace the shape tuple, whatever its spacing (`(4,)` or `(4, )`).
        let start = header.find("'shape': (").expect("header has a shape") + "'shape': ".len();
        let end = start + header[start..].find(')').unwrap() + 1;
        let mut h = format!("{}{shape}{}", &header[..start], &header[end..])
            .trim_end()
            .to_string();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut forged = bytes[..8].to_vec();
        forged.extend((h.len() as u16).to_le_bytes());
        forged.extend(h.as_bytes());
        forged.extend(data);
        let path = write_file(tmp.path(), &format!("{tag}.npy"), &forged);
        kiln([
            "run".to_string(),
            bundle.display().to_string(),
            "--input".into(),
            format!("x={}", path.display()),
        ])
        .fails_with(&[&format!("{tag}.npy"), "bytes of data"]);
    }
}

/// An FPN-like block over symbolic `n, h, w`: a strided convolution, max pooling, a nearest
/// 2x resize added back to the convolution's output (equal only when `h` and `w` are multiples
/// of 4, as for PP-OCR's multiples of 32), and a stride-2 transposed convolution.
fn strided_fpn_onnx() -> Vec<u8> {
    let mut b = ModelBuilder::new("fpn");
    b.input("x", DataType::Float, &[d("n"), d(2), d("h"), d("w")]);
    b.init_f32("k", &[4, 2, 3, 3], &values(72, 5, 0.5));
    b.init_f32("bias", &[4], &values(4, 6, 0.1));
    b.init_f32("up", &[4, 3, 2, 2], &values(48, 7, 0.5));
    b.init_f32("roi", &[0], &[]);
    b.init_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    b.node("Conv", &["x", "k", "bias"], &["c"])
        .name("stem")
        .attr_ints("strides", &[2, 2])
        .attr_ints("pads", &[1, 1, 1, 1]);
    b.node("MaxPool", &["c"], &["p"])
        .name("pool")
        .attr_ints("kernel_shape", &[2, 2])
        .attr_ints("strides", &[2, 2]);
    b.node("Resize", &["p", "roi", "scales"], &["r"])
        .name("upsample")
        .attr_str("mode", "nearest")
        .attr_str("coordinate_transformation_mode", "asymmetric")
        .attr_str("nearest_mode", "floor");
    b.node("Add", &["r", "c"], &["s"]).name("merge");
    b.node("ConvTranspose", &["s", "up"], &["y"])
        .name("head")
        .attr_ints("strides", &[2, 2])
        .attr_ints("kernel_shape", &[2, 2]);
    b.output("y", DataType::Float);
    b.encode()
}

/// Strided convolution, pooling, resize and transposed convolution over symbolic dims compile
/// once (floor/ceil quotients in the manifest) and run at two sizes, matching the interpreter;
/// a size for which the merged feature maps differ is refused with the node named.
#[test]
fn strided_convolutions_over_symbolic_dims_compile_once_and_run_at_two_sizes() {
    let (_tmp, work, bundle) = compiled(&strided_fpn_onnx());
    let m = manifest(&bundle);
    let out = m.outputs[0]
        .shape
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        out.contains("/ 2)"),
        "the output shape keeps quotients of h and w: {out}"
    );
    assert!(!m.assumptions.is_empty(), "the merge's equal sizes are recorded");
    let model =
        kiln::compiler::frontend::onnx::load_onnx_bytes(&strided_fpn_onnx(), "fpn", &Default::default()).unwrap();
    let x = |h: usize, w: usize| {
        BTreeMap::from([(
            "x".to_string(),
            HostTensor::from_f32(&[1, 2, h, w], &values(2 * h * w, 8, 1.0)),
        )])
    };
    for (h, w) in [(8, 12), (12, 4)] {
        let inputs = x(h, w);
        let ir_inputs = HashMap::from([("x".to_string(), kiln::convert::to_ir(&inputs["x"]).unwrap())]);
        let expected = kiln::ir::interp::evaluate(&model.graph, &ir_inputs).unwrap();
        assert_eq!(expected["y"].shape, vec![1, 3, h, w]);
        run_and_check(&bundle, &work, &format!("fpn{h}x{w}"), &inputs, &expected);
    }
    // h = 6: the convolution gives 3 rows, pooling and 2x resize give 2: refused, not read
    // out of range.
    let dir = work.join("fpn6");
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = vec!["run".to_string(), bundle.display().to_string()];
    args.extend(write_inputs(&dir, &x(6, 8)));
    kiln(&args).fails_with(&["merge", "to equal"]);
}

/// `kiln inspect ... | head -0`: writing to a closed pipe ends the process quietly (by
/// SIGPIPE, as other tools do), never with a panic about a broken pipe.
#[cfg(unix)]
#[test]
fn writing_to_a_closed_pipe_is_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let (_tmp, _work, bundle) = compiled(&embedding_onnx());
    for args in [vec!["inspect", "--kernels"], vec!["-q", "inspect"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(&args)
            .arg(&bundle)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before kiln writes its first line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?}\n{stderr}",
            out.status
        );
    }
}

/// A weight and an embedding table larger than the target's maxStorageBufferBindingSize (here
/// lowered to 16 KiB, as 128 MiB is for `webgpu-default`) are split across bindings: the model
/// compiles, no buffer exceeds the limit, and the outputs match the interpreter.
#[test]
fn weights_larger_than_the_binding_limit_are_split() {
    use kiln::compiler::{compile_to_dir, CompileOptions};
    let mut b = ModelBuilder::new("big_weights");
    b.input("x", DataType::Float, &[d("batch"), d(64)]);
    b.input("ids", DataType::Int64, &[d("batch"), d(3)]);
    b.init_f32("w", &[64, 300], &values(64 * 300, 11, 0.2));
    b.init_f32("table", &[50, 120], &values(50 * 120, 12, 1.0));
    b.node("MatMul", &["x", "w"], &["y"]).name("fc");
    b.node("Gather", &["table", "ids"], &["e"]).name("embed");
    b.output("y", DataType::Float);
    b.output("e", DataType::Float);
    let onnx = b.encode();
    let model = kiln::compiler::frontend::onnx::load_onnx_bytes(&onnx, "big", &Default::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b");
    let mut opts = CompileOptions::default();
    opts.target.max_storage_buffer_binding_size = 16 * 1024;
    let m = compile_to_dir(&model, &opts, &bundle).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        m.weights.len() >= 6,
        "w (76,800 bytes) and table (24,000) split: {}",
        m.weights.len()
    );
    for w in &m.weights {
        let bytes: u64 = w.shape.iter().product::<u64>() * 4;
        assert!(
            bytes <= 16 * 1024,
            "weight {} [{:?}] exceeds the limit",
            w.name,
            w.shape
        );
    }
    let inputs = BTreeMap::from([
        ("x".to_string(), HostTensor::from_f32(&[2, 64], &values(128, 13, 1.0))),
        ("ids".to_string(), HostTensor::from_i64(&[2, 3], &[0, 49, 7, 7, 20, 1])),
    ]);
    let ir_inputs: HashMap<String, Tensor> = inputs
        .iter()
        .map(|(k, v)| (k.clone(), kiln::convert::to_ir(v).unwrap()))
        .collect();
    let expected = kiln::ir::interp::evaluate(&model.graph, &ir_inputs).unwrap();
    run_and_check(&bundle, tmp.path(), "split", &inputs, &expected);
    // Without splitting room (one column of w is 256 bytes), a clear error names the node.
    let mut tiny = CompileOptions::default();
    tiny.target.max_storage_buffer_binding_size = 128;
    let Err(err) = kiln::compiler::compile(&model, &tiny) else {
        panic!("a 256-byte column cannot fit a 128-byte limit")
    };
    let err = err.to_string();
    assert!(
        err.contains("too large to split") && (err.contains("fc") || err.contains("embed")),
        "{err}"
    );
}
