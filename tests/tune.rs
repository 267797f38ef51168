//! `kiln tune` end to end on this machine's adapter (lavapipe in CI): it writes a tuning
//! database that `kiln compile --tuning` then uses, it resumes instead of redoing work, and a
//! candidate that computes a wrong result is rejected by the interpreter check, never timed.

use crate::common;

use common::{compile, kiln, manifest, mlp_onnx, write_file};
use kiln::runtime::Runtime;
use kiln::schedules::tuning::TuningDb;
use kiln::schedules::{GemmParams, GemvParams, Schedule};
use kiln::tune::{jobs, tune_job, Rejection, TuneOptions};
use std::time::{Duration, Instant};

#[test]
fn tune_writes_records_that_compile_uses_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_file(dir.path(), "mlp.onnx", &mlp_onnx());
    let db_path = dir.path().join("db.ron");
    let db_arg = db_path.display().to_string();
    let model_arg = model.display().to_string();
    let out = kiln(["tune", &model_arg, "-o", &db_arg, "--budget", "2", "--iters", "2"]);
    out.ok();
    let db = TuningDb::load(&db_path).expect("the database was written");
    // The MLP has three matrix products: fc1 and branch read the same x and are merged into
    // one (as `kiln compile` merges them), plus fc2.
    assert_eq!(db.records.len(), 2, "{:#?}\n{}", db.records, out.describe());
    assert!(
        db.records.keys().all(|k| k.starts_with("gemm:")),
        "{:?}",
        db.records.keys()
    );
    assert!(db.records.values().all(|r| r.micros > 0.0 && !r.device.is_empty()));

    // A second run finds every kernel in the database and changes nothing.
    let again = kiln(["tune", &model_arg, "-o", &db_arg, "--budget", "2"]);
    again.ok();
    assert!(again.stderr.contains("2 already in"), "{}", again.describe());
    assert_eq!(TuningDb::load(&db_path).unwrap(), db);

    // The bundle's matmul kernels carry the recorded schedules, marked as coming from tuning.
    let bundle = dir.path().join("b");
    compile(&model, &bundle, &["--tuning", &db_arg]);
    let m = manifest(&bundle);
    let tuned: Vec<_> = m.kernels.iter().filter(|k| k.schedule_source == "tuning").collect();
    assert!(!tuned.is_empty(), "{:#?}", m.kernels);
    for k in &tuned {
        let s: Schedule = ron::from_str(&k.schedule_params).expect("schedule_params is RON of a Schedule");
        assert!(
            db.records.values().any(|r| r.schedule == s),
            "{} is not a recorded schedule",
            k.schedule
        );
    }
    // Without --tuning every kernel says it took the analytic default.
    let plain = dir.path().join("plain");
    compile(&model, &plain, &[]);
    assert!(manifest(&plain).kernels.iter().all(|k| k.schedule_source == "default"));
}

/// `--precision f16` adds the cooperative-matrix variants' jobs (`coop <key>`). Lavapipe has
/// no cooperative matrices: the run says so, tunes the kernels themselves as without the
/// option, and writes no `coop` record (a compile keeps the variants' defaults).
#[test]
fn f16_variants_are_skipped_where_the_adapter_cannot_run_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_file(dir.path(), "mlp.onnx", &mlp_onnx());
    let db_path = dir.path().join("db.ron");
    let db_arg = db_path.display().to_string();
    let model_arg = model.display().to_string();
    let opts = TuneOptions {
        target: kiln::schedules::DeviceLimits::desktop(),
        precision: kiln::compiler::Precision::F16,
        ..TuneOptions::default()
    };
    let loaded = kiln::compiler::frontend::onnx::load_onnx(&model, &Default::default()).unwrap();
    let js = jobs(&loaded, &opts, 2).unwrap();
    let coop = js.iter().filter(|j| j.key.starts_with("coop ")).count();
    assert!(coop > 0, "{:?}", js.iter().map(|j| &j.key).collect::<Vec<_>>());
    let runtime = Runtime::new().unwrap();
    let unsupported = js
        .iter()
        .filter_map(|j| j.variant.as_ref())
        .all(|r| runtime.variant_unsupported(r).is_some());
    let out = kiln([
        "tune",
        &model_arg,
        "-o",
        &db_arg,
        "--budget",
        "4",
        "--iters",
        "2",
        "--target",
        "desktop",
        "--precision",
        "f16",
    ]);
    out.ok();
    let db = TuningDb::load(&db_path).expect("the database was written");
    assert!(db.records.keys().any(|k| k.starts_with("gemm:")), "{}", out.describe());
    if unsupported {
        assert!(
            out.stderr
                .contains(&format!("{coop} cooperative-matrix variant kernel(s) not tuned here")),
            "{}",
            out.describe()
        );
        assert!(
            db.records.keys().all(|k| !k.starts_with("coop ")),
            "{:?}",
            db.records.keys()
        );
    }
}

#[test]
fn a_miscompiled_candidate_is_rejected_not_timed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "mlp.onnx", &mlp_onnx());
    let model = kiln::compiler::frontend::onnx::load_onnx_frozen(&path, &Default::default(), &Default::default())
        .expect("the MLP loads");
    let opts = TuneOptions {
        iters: 2,
        ..Default::default()
    };
    let mut job = jobs(&model, &opts, 2).expect("jobs").remove(0);
    let broken = Schedule::Gemm(GemmParams::new(64, 64, 16, 4, 4));
    assert_ne!(
        job.candidates[0], broken,
        "the default must not be the candidate broken below"
    );
    let fine = Schedule::Gemv(GemvParams::new(8, 8, 1));
    job.candidates = vec![job.candidates[0], broken, fine];
    // The hook halves the stored result of one candidate: valid WGSL, wrong answer.
    let hook = |s: &Schedule, b: &mut kiln::compiler::CompiledBundle| {
        if *s == broken {
            for (_, src) in &mut b.kernel_sources {
                *src = src.replace("] = acc_", "] = 0.5 * acc_");
            }
        }
    };
    let runtime = Runtime::new().expect("an adapter");
    let mut seen = Vec::new();
    let report = tune_job(
        &job,
        &runtime,
        &opts,
        Instant::now() + Duration::from_secs(60),
        Some(&hook),
        |r| seen.push(r.schedule),
    )
    .expect("tuning runs");
    assert_eq!(seen, job.candidates, "every candidate is reported once, in order");
    let outcome = |s: Schedule| {
        report
            .candidates
            .iter()
            .find(|c| c.schedule == s)
            .unwrap()
            .outcome
            .clone()
    };
    match outcome(broken) {
        Err(Rejection::Mismatch { error }) => assert!(error > 0.1, "{error}"),
        other => panic!("the broken candidate was not rejected: {other:?}"),
    }
    assert!(outcome(fine).is_ok(), "{:?}", outcome(fine));
    assert!(outcome(job.candidates[0]).is_ok());
    assert_ne!(report.record.expect("a record").schedule, broken);
}

/// A GEMM too large for the interpreter is checked at a shrunk size (another tuning key): the
/// check must run the candidate itself, so a candidate that computes a wrong result is rejected
/// there rather than timed. The hook breaks a kernel only where the candidate's schedule was
/// actually compiled, as a miscompiling schedule would.
#[test]
fn a_broken_candidate_of_a_shrunk_gemm_is_rejected() {
    let model = matmul_model(kiln::ir::DType::F32, &[400, 320], &[320, 400]);
    let opts = TuneOptions {
        iters: 2,
        ..Default::default()
    };
    let mut job = jobs(&model, &opts, 2).expect("jobs").remove(0);
    assert_ne!(job.key, job.check_key, "the check model is shrunk");
    let broken = Schedule::Gemm(GemmParams::new(64, 64, 16, 4, 4));
    assert_ne!(
        job.candidates[0], broken,
        "the default must not be the broken candidate"
    );
    job.candidates = vec![job.candidates[0], broken];
    let hook = |s: &Schedule, b: &mut kiln::compiler::CompiledBundle| {
        let compiled = b.manifest.kernels.iter().any(|k| k.schedule == s.to_string());
        if *s == broken && compiled {
            for (_, src) in &mut b.kernel_sources {
                *src = src.replace("] = acc_", "] = 0.5 * acc_");
            }
        }
    };
    let runtime = Runtime::new().expect("an adapter");
    let report = tune_job(
        &job,
        &runtime,
        &opts,
        Instant::now() + Duration::from_secs(120),
        Some(&hook),
        |_| {},
    )
    .expect("tuning runs");
    assert!(report.candidates[0].outcome.is_ok(), "{:?}", report.candidates[0]);
    match &report.candidates[1].outcome {
        Err(Rejection::Mismatch { error }) => assert!(*error > 0.1, "{error}"),
        other => panic!("the broken candidate was not rejected: {other:?}"),
    }
    assert_eq!(report.record.expect("a record").schedule, job.candidates[0]);
    // Forced under the timing key (the tuner's old behaviour), the check model does not take
    // the record and compiles its default: once, that let the broken candidate pass the check
    // and be timed; now a record that is not taken rejects the candidate.
    job.check_key = job.key.clone();
    job.candidates = vec![broken];
    let report = tune_job(
        &job,
        &runtime,
        &opts,
        Instant::now() + Duration::from_secs(120),
        Some(&hook),
        |_| {},
    )
    .expect("tuning runs");
    match &report.candidates[0].outcome {
        Err(Rejection::Compile(why)) => assert!(why.contains("does not apply"), "{why}"),
        other => panic!("a candidate whose record was not taken was not rejected: {other:?}"),
    }
    assert!(report.record.is_none());
}

/// Tuned with `--dim`, the model is specialized as `kiln compile --dim` specializes it, so the
/// records' keys are the compiled kernels' keys (concrete dims) and a compile with the same
/// values takes them. The test can fail: keyed by the symbolic dims (the tuner's old
/// behaviour), no record matches the specialized kernels and every kernel stays on its default.
#[test]
fn records_tuned_with_dims_are_used_by_a_compile_with_the_same_dims() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_file(dir.path(), "mlp.onnx", &mlp_onnx());
    let db_path = dir.path().join("db.ron");
    let db_arg = db_path.display().to_string();
    let model_arg = model.display().to_string();
    let out = kiln([
        "tune", &model_arg, "-o", &db_arg, "--dim", "batch=4", "--budget", "2", "--iters", "2",
    ]);
    out.ok();
    let db = TuningDb::load(&db_path).expect("the database was written");
    assert!(!db.records.is_empty(), "{}", out.describe());
    assert!(
        db.records.keys().all(|k| k.contains("m=4") && !k.contains("batch")),
        "{:?}",
        db.records.keys()
    );
    let bundle = dir.path().join("b");
    compile(&model, &bundle, &["--dim", "batch=4", "--tuning", &db_arg]);
    let m = manifest(&bundle);
    let tuned = m.kernels.iter().filter(|k| k.schedule_source == "tuning").count();
    assert_eq!(
        tuned,
        db.records.len(),
        "records {:#?}\nkernels {:#?}",
        db.records,
        m.kernels
    );
}

/// A GGUF language model: its prefill and decode kernels (the quantized products with their
/// fused norms and gating, cut out of the model with its weights) are tuned, `kiln compile
/// --tuning` takes the records, and the tuned bundle still generates the interpreter's tokens.
#[test]
fn a_gguf_model_is_tuned_for_both_programs() {
    use kiln::compiler::llm::{self, gguf::random_gguf, Reference};
    let config = crate::llm_cli::config();
    let bytes = random_gguf(&config, "llama", 5, kiln::ir::BlockType::Q4_1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = write_file(dir.path(), "tiny.gguf", &bytes);
    let db_path = dir.path().join("db.ron");
    let db_arg = db_path.display().to_string();

    // Every decode product's one-kernel model forms the very kernel it was cut from.
    let g = kiln::compiler::frontend::gguf::Gguf::from_bytes(bytes.clone()).unwrap();
    let m = llm::gguf::model_from_gguf(&g, "tiny", Some(32)).unwrap();
    let js = kiln::tune::jobs_for_programs(&m, &llm::programs(), &TuneOptions::default(), 2).expect("jobs");
    let decode: Vec<_> = js.iter().filter(|j| j.key.contains(":m=1,")).collect();
    assert!(
        decode.iter().any(|j| j.key.starts_with("qgemm_rmsnorm_glu:")),
        "{:?}",
        js.iter().map(|j| &j.key).collect::<Vec<_>>()
    );
    for j in &decode {
        assert_eq!(j.model_key, j.key);
        assert_eq!(j.check_key, j.key);
    }
    assert!(js
        .iter()
        .any(|j| j.key.starts_with("qgemm:") && j.key.contains(":m=n,")));
    // With 8-bit activations the gate/up GEMV rounds down's input: its job's candidates all own
    // whole blocks of 32 outputs per workgroup, the 1024-thread forms included on a target
    // that allows them, and its timing model forms the same kernel.
    let c8 = llm::LlamaConfig {
        activations: llm::Activations::Q8,
        ..llm::gguf::config_from_gguf(&g, "tiny", Some(32)).unwrap()
    };
    let m8 = llm::build(&c8, &mut llm::gguf::GgufWeights::new(&g)).unwrap();
    let desktop = TuneOptions {
        target: kiln::schedules::DeviceLimits::desktop(),
        ..TuneOptions::default()
    };
    let js8 = kiln::tune::jobs_for_programs(&m8, &llm::programs(), &desktop, 2).expect("jobs");
    let y8 = js8
        .iter()
        .find(|j| j.key.contains("_y8:") && j.key.contains(":m=1,"))
        .unwrap_or_else(|| panic!("{:?}", js8.iter().map(|j| &j.key).collect::<Vec<_>>()));
    assert_eq!(y8.model_key, y8.key);
    for c in &y8.candidates {
        let Schedule::Gemv(p) = c else {
            panic!("{c} is not a GEMV")
        };
        assert!((p.lanes * p.lane_rows).is_multiple_of(32), "{c}");
    }
    assert!(y8
        .candidates
        .iter()
        .any(|c| matches!(c, Schedule::Gemv(p) if p.threads() == 1024)));

    let out = kiln([
        "tune",
        model.to_str().unwrap(),
        "-o",
        &db_arg,
        "--budget",
        "5",
        "--iters",
        "2",
    ]);
    out.ok();
    let db = TuningDb::load(&db_path).expect("the database was written");
    assert!(db.records.keys().any(|k| k.contains(":m=1,")), "{}", out.describe());
    let bundle = dir.path().join("b");
    let b = bundle.to_str().unwrap();
    kiln([
        "compile",
        model.to_str().unwrap(),
        "-o",
        b,
        "--context",
        "32",
        "--tuning",
        &db_arg,
    ])
    .ok();
    let tuned: Vec<_> = manifest(&bundle)
        .kernels
        .into_iter()
        .filter(|k| k.schedule_source == "tuning")
        .collect();
    assert!(!tuned.is_empty());
    for k in &tuned {
        let s: Schedule = ron::from_str(&k.schedule_params).expect("RON of a Schedule");
        assert!(db.records.values().any(|r| r.schedule == s), "{}", k.schedule);
    }
    let out = kiln(["generate", b, "--prompt-ids", "3,1,4,1,5", "--max-tokens", "6", "--ids"]);
    out.ok();
    let got: Vec<i32> = out.stdout.trim().split(',').map(|t| t.parse().unwrap()).collect();
    let expected: Vec<i32> = Reference::new(&m.graph)
        .greedy(&[3, 1, 4, 1, 5], 6)
        .unwrap()
        .iter()
        .map(|s| s.next_token)
        .collect();
    assert_eq!(got, expected);

    // With `--activations q8` the decode GEMVs read 8-bit x: other kernels, other keys, tuned
    // under them and taken by a bundle compiled the same way. Both those that round their own
    // x (`xq8`) and those that read the 8-bit output of the kernel before them (`qgemm_x8`,
    // whose one-op model rounds its f32 input first, so that it forms the same kernel) are
    // tuned.
    let db8_path = dir.path().join("db8.ron");
    let db8_arg = db8_path.display().to_string();
    let m8 = model.to_str().unwrap();
    let out = kiln([
        "tune",
        m8,
        "-o",
        &db8_arg,
        "--budget",
        "8",
        "--iters",
        "2",
        "--activations",
        "q8",
    ]);
    out.ok();
    let db8 = TuningDb::load(&db8_path).expect("the database was written");
    assert!(
        db8.records.keys().any(|k| k.contains("_xq8") && k.contains(":m=1,"))
            && db8.records.keys().any(|k| k.starts_with("qgemm_x8:")),
        "{:?}\n{}",
        db8.records.keys().collect::<Vec<_>>(),
        out.describe()
    );
    let bundle8 = dir.path().join("b8");
    let b8 = bundle8.to_str().unwrap();
    kiln([
        "compile",
        m8,
        "-o",
        b8,
        "--context",
        "32",
        "--activations",
        "q8",
        "--tuning",
        &db8_arg,
    ])
    .ok();
    let tuned8 = manifest(&bundle8)
        .kernels
        .into_iter()
        .filter(|k| {
            k.schedule_source == "tuning"
                && std::fs::read_to_string(bundle8.join(&k.file)).is_ok_and(|src| src.contains("dot4I8Packed("))
        })
        .count();
    assert!(tuned8 > 0, "no integer-dot GEMV took a record");
    // Among them a GEMV reading the 8-bit x of the kernel before it.
    let x8 = manifest(&bundle8)
        .kernels
        .into_iter()
        .filter(|k| k.schedule_source == "tuning")
        .filter(|k| {
            std::fs::read_to_string(bundle8.join(&k.file))
                .is_ok_and(|src| src.contains("x arrives as 8-bit integer blocks"))
        })
        .count();
    assert!(x8 > 0, "no qgemm_x8 kernel took a record");
}

/// A record whose schedule does not apply to the kernel under its key (here a GEMV for fc2,
/// whose fused bias and ReLU prologue only the tiled GEMM reads) is not used: the kernel takes
/// its default and the compile succeeds, instead of failing on the database.
#[test]
fn a_record_that_does_not_apply_falls_back_to_the_default() {
    use kiln::schedules::tuning::TuningRecord;
    let dir = tempfile::tempdir().unwrap();
    let model = write_file(dir.path(), "mlp.onnx", &mlp_onnx());
    let mut db = TuningDb::default();
    db.records.insert(
        "gemm:b=1,m=4,n=8,k=32".into(),
        TuningRecord {
            schedule: Schedule::Gemv(GemvParams::new(4, 64, 4)),
            micros: 1.0,
            device: "test".into(),
        },
    );
    let db_path = dir.path().join("db.ron");
    // Compiles with `db` at batch 4 into bundle `name` and returns fc2's kernel.
    let fc2_with = |db: &TuningDb, name: &str| {
        db.save(&db_path).unwrap();
        let bundle = dir.path().join(name);
        compile(
            &model,
            &bundle,
            &["--dim", "batch=4", "--tuning", db_path.to_str().unwrap()],
        );
        let m = manifest(&bundle);
        m.programs[0]
            .dispatches
            .iter()
            .find(|d| d.label.contains("fc2"))
            .map(|d| m.kernels[d.kernel].clone())
            .expect("the fc2 kernel")
    };
    let fc2 = fc2_with(&db, "b");
    assert_eq!(fc2.schedule_source, "default", "{fc2:#?}");
    assert!(fc2.schedule.starts_with("gemm("), "{}", fc2.schedule);

    // The key is fc2's: a tiled schedule under it is taken.
    let tiled = Schedule::Gemm(GemmParams::new(32, 32, 16, 4, 4));
    db.records.get_mut("gemm:b=1,m=4,n=8,k=32").unwrap().schedule = tiled;
    let fc2 = fc2_with(&db, "b2");
    assert_eq!(fc2.schedule_source, "tuning", "{fc2:#?}");
    assert_eq!(fc2.schedule, tiled.to_string());
}

/// The tuner's check in the whole model (`kiln::tune_check`): a record that is not the
/// default's schedule is profiled in the model against the default, in alternation; the
/// verdict follows the measured medians (kept when the tuned bundle's dispatches took no
/// longer), a losing record is replaced by the default's schedule, and a record of the
/// default's own schedule is not compared at all.
#[test]
fn tuned_records_are_checked_in_the_whole_model() {
    use kiln::schedules::tuning::TuningRecord;
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "mlp.onnx", &mlp_onnx());
    let model = kiln::compiler::frontend::onnx::load_onnx_frozen(&path, &Default::default(), &Default::default())
        .expect("the MLP loads");
    let opts = TuneOptions {
        dims: [("batch".to_string(), 64)].into_iter().collect(),
        ..Default::default()
    };
    let js = jobs(&model, &opts, 2).expect("jobs");
    assert_eq!(js.len(), 2, "{:?}", js.iter().map(|j| &j.key).collect::<Vec<_>>());
    // The first product gets a scalar 2x2 tile (not its default); the second is recorded with
    // its own default.
    let other = Schedule::Gemm(GemmParams::new(32, 32, 16, 2, 2));
    assert_ne!(js[0].candidates[0], other);
    let record = |schedule| TuningRecord {
        schedule,
        micros: 1.0,
        device: "test".into(),
    };
    let mut db = TuningDb::default();
    db.records.insert(js[0].key.clone(), record(other));
    db.records.insert(js[1].key.clone(), record(js[1].candidates[0]));
    let new: Vec<_> = js.iter().map(|j| (j.key.clone(), j.candidates[0])).collect();
    let runtime = Runtime::new().unwrap();
    let checks =
        kiln::tune_check::check_in_model(&model, &opts, 2, &mut db, &new, &runtime, 3).expect("the check runs");
    assert_eq!(checks.len(), 1, "only the non-default record is compared: {checks:?}");
    let c = &checks[0];
    assert_eq!(c.key, js[0].key);
    assert!(c.tuned > Duration::ZERO && c.untuned > Duration::ZERO, "{c:?}");
    assert_eq!(c.kept, c.tuned <= c.untuned, "{c:?}");
    let now = &db.records[&js[0].key];
    if c.kept {
        assert_eq!(now.schedule, other);
    } else {
        assert_eq!(
            now.schedule, js[0].candidates[0],
            "the default replaces a losing record"
        );
        assert!((now.micros - c.untuned.as_secs_f64() * 1e6).abs() < 1e-6);
    }
    assert_eq!(db.records[&js[1].key], record(js[1].candidates[0]), "left as it was");
}

/// An f16 product (f16 operands in the graph, as an fp16 model has them) is tuned too: its
/// one-op model keeps f16 inputs, which compile as f16 pairs (`half_storage`) as they do in
/// the model, and every tiled candidate is checked against the interpreter with the f16
/// tolerance; no GEMV or split-K candidate is offered (an f16 product takes neither).
#[test]
fn an_f16_product_is_tuned_with_f16_operands() {
    let model = matmul_model(kiln::ir::DType::F16, &[48, 64], &[64, 40]);
    let opts = TuneOptions {
        iters: 2,
        ..Default::default()
    };
    let mut job = jobs(&model, &opts, 2).expect("jobs").remove(0);
    assert_eq!(job.key, "gemm:b=1,m=48,n=40,k=64");
    assert!(
        job.candidates
            .iter()
            .all(|s| matches!(s, Schedule::Gemm(p) if p.ksplit == 1)),
        "{:?}",
        job.candidates
    );
    // The timed model stores its operands as the model's compile does: f16 pairs.
    let timed = kiln::compiler::compile(&job.model, &Default::default()).expect("compiles");
    assert!(
        timed
            .manifest
            .inputs
            .iter()
            .all(|i| i.storage == kiln::abi::ElemType::F16),
        "{:?}",
        timed.manifest.inputs
    );
    job.candidates.truncate(4);
    let runtime = Runtime::new().expect("an adapter");
    let report = tune_job(
        &job,
        &runtime,
        &opts,
        Instant::now() + Duration::from_secs(60),
        None,
        |_| {},
    )
    .expect("tuning runs");
    for c in &report.candidates {
        assert!(c.outcome.is_ok(), "{}: {:?}", c.schedule, c.outcome);
    }
    assert!(report.record.is_some());
}

/// A model of one product `a x b` (inputs `a` and `b` of `dtype`, output `y`).
fn matmul_model(dtype: kiln::ir::DType, a: &[usize], b: &[usize]) -> kiln::compiler::Model {
    use kiln::ir::{Graph, Op, TensorType};
    let mut g = Graph::new();
    let x = g.add_input("a", TensorType::new(dtype, a));
    let w = g.add_input("b", TensorType::new(dtype, b));
    let y = g.add("c", Op::MatMul, &[x, w]).unwrap();
    g.add_output("y", y);
    kiln::compiler::Model {
        name: "product".into(),
        graph: g,
        io_dtypes: Default::default(),
    }
}
