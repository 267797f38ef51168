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
    // The MLP has three matrix products of distinct shapes (fc1, fc2, branch).
    assert_eq!(db.records.len(), 3, "{:#?}\n{}", db.records, out.describe());
    assert!(
        db.records.keys().all(|k| k.starts_with("gemm:")),
        "{:?}",
        db.records.keys()
    );
    assert!(db.records.values().all(|r| r.micros > 0.0 && !r.device.is_empty()));

    // A second run finds every kernel in the database and changes nothing.
    let again = kiln(["tune", &model_arg, "-o", &db_arg, "--budget", "2"]);
    again.ok();
    assert!(again.stderr.contains("3 already in"), "{}", again.describe());
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
