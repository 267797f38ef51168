//! The tuner's check in the whole model (`kiln tune` of an ONNX model).
//!
//! The tuner times each kernel alone, with cold caches. Inside the model a kernel reads what
//! the kernel before it has just written, much of it still in the L2 cache, and a split-K's
//! partial sums compete with that data; so a schedule that wins alone can lose in the model.
//! On the H200, MiniLM-L3's FFN-down product at 32x128 timed 182 us alone with its tuned tile
//! against 200 us with the default, and then took 177 us in the model against the default's
//! 149 us (docs/performance.md, twenty-third session).
//!
//! After tuning, [`check_in_model`] compiles the model twice: once with the run's new records
//! and once without them. It profiles both bundles in alternation, with timestamps around every
//! dispatch, and keeps a record only where its kernels' dispatches took no longer in the tuned
//! bundle than in the untuned one (medians over the rounds). A record that loses is replaced by
//! the kernel's analytic default (so its kernel compiles as without tuning, and a later run
//! still finds the key done). Records of cooperative-matrix variants (`coop <key>`) are not
//! checked here: the variant's dispatches carry the same labels as the kernel's.

use crate::tune::{TuneError, TuneOptions};
use kiln_compiler::{compile, tuning_key, write_bundle, CompileOptions, Model};
use kiln_ir::DimBindings;
use kiln_runtime::{Bundle, HostTensor, Profile, Runtime, Session};
use kiln_schedules::tuning::{TuningDb, TuningRecord};
use kiln_schedules::Schedule;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Profiling rounds of each bundle (alternating); each key's time is the median.
pub const CHECK_ROUNDS: usize = 5;

/// Share of `kiln tune`'s budget kept for the check (the kernels are tuned in the rest): on
/// the H200 the check of PP-OCRv4 det's 22 records took 13 s (two compiles, two sessions of 70
/// pipelines, twelve profiled runs), MiniLM-L3's 2 s.
pub const CHECK_SHARE: f64 = 0.1;

/// One tuned record, checked in the model.
#[derive(Clone, Debug, PartialEq)]
pub struct InModelCheck {
    /// The record's tuning key.
    pub key: String,
    /// Median GPU time of the key's dispatches per run of the tuned bundle.
    pub tuned: Duration,
    /// The same in the bundle compiled without the run's new records.
    pub untuned: Duration,
    /// Whether the record stays in the database (`tuned <= untuned`); if not, the key's record
    /// is now its analytic default.
    pub kept: bool,
}

/// Profiles `model` compiled with `db` and with `db` minus the records of `new` (the keys this
/// run wrote, each with its analytic default schedule), `rounds` times each in alternation.
/// Every record of `new` whose kernels took longer in the tuned bundle is replaced in `db` by
/// the default schedule, timed as in the model. Records of the default's own schedule, keys of
/// cooperative-matrix variants and keys with no dispatch in the model are left as they are.
/// Returns one check per key compared.
pub fn check_in_model(
    model: &Model,
    opts: &TuneOptions,
    opt_level: u8,
    db: &mut TuningDb,
    new: &[(String, Schedule)],
    runtime: &Runtime,
    rounds: usize,
) -> Result<Vec<InModelCheck>, TuneError> {
    let defaults: HashMap<&String, &Schedule> = new.iter().map(|(k, s)| (k, s)).collect();
    // A record of the default's own schedule has nothing to compare.
    let keys: Vec<&String> = new
        .iter()
        .filter(|(k, d)| !k.starts_with("coop ") && db.records.get(k).is_some_and(|r| r.schedule != *d))
        .map(|(k, _)| k)
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let copts = CompileOptions {
        opt_level,
        target: opts.target.clone(),
        dims: opts.dims.clone(),
        precision: opts.precision,
        ..Default::default()
    };
    // Which tuning key each dispatch's kernel has, by the label of the kernel it computes.
    let (_, drafts) = crate::tune::kernels_of(model, &copts)?;
    let key_of: HashMap<String, String> = drafts
        .iter()
        .map(|d| (d.label.clone(), tuning_key(&d.body)))
        .filter(|(_, k)| keys.contains(&k))
        .collect();
    let mut untuned_db = db.clone();
    for k in &keys {
        untuned_db.records.remove(*k);
    }
    let dir = tempfile::tempdir().map_err(|e| TuneError::Check(e.to_string()))?;
    let mut sessions = Vec::new();
    for (name, tuning) in [("tuned", db.clone()), ("untuned", untuned_db)] {
        let compiled = compile(
            model,
            &CompileOptions {
                tuning: Some(tuning),
                ..copts.clone()
            },
        )?;
        let path = dir.path().join(name);
        write_bundle(&compiled, &path).map_err(|e| TuneError::Check(format!("{name} bundle: {e}")))?;
        let bundle = Bundle::load(&path).map_err(|e| TuneError::Check(format!("{name} bundle: {e}")))?;
        let session = Session::with_runtime(runtime.clone(), &bundle)
            .map_err(|e| TuneError::Check(format!("{name} bundle: {e}")))?;
        sessions.push(session);
    }
    if !sessions[0].can_profile() {
        return Err(TuneError::Check(
            "the adapter cannot time dispatches (no timestamp-query feature)".into(),
        ));
    }
    let program = sessions[0]
        .manifest()
        .programs
        .first()
        .map(|p| p.name.clone())
        .ok_or_else(|| TuneError::Check("the bundle has no program".into()))?;
    let inputs = synthetic_inputs(&sessions[0], &opts.dims, opts.default_dim)?;
    // Per key, its dispatches' summed time in each round, per bundle.
    let mut times: [BTreeMap<String, Vec<Duration>>; 2] = Default::default();
    for round in 0..=rounds {
        for (b, session) in sessions.iter_mut().enumerate() {
            let profile = session
                .profile(&program, &inputs, &[], Some(&[]))
                .map_err(|e| TuneError::Check(e.to_string()))?;
            // Round 0 warms both bundles up and is not counted.
            if round > 0 {
                for (key, t) in per_key(&profile, &key_of) {
                    times[b].entry(key).or_default().push(t);
                }
            }
        }
    }
    let mut checks = Vec::new();
    for key in keys {
        let [tuned_times, untuned_times] = &mut times;
        let (Some(t), Some(u)) = (tuned_times.get_mut(key), untuned_times.get_mut(key)) else {
            continue;
        };
        let (tuned, untuned) = (median(t), median(u));
        let kept = tuned <= untuned;
        if !kept {
            let device = db.records.get(key).map(|r| r.device.clone()).unwrap_or_default();
            db.records.insert(
                key.clone(),
                TuningRecord {
                    schedule: *defaults[key],
                    micros: untuned.as_secs_f64() * 1e6,
                    device,
                },
            );
        }
        checks.push(InModelCheck {
            key: key.clone(),
            tuned,
            untuned,
            kept,
        });
    }
    Ok(checks)
}

/// Summed GPU time of a profile's dispatches per tuning key (a split-K's partial-sum and
/// combine dispatches count for their kernel's key).
fn per_key(profile: &Profile, key_of: &HashMap<String, String>) -> BTreeMap<String, Duration> {
    let mut out: BTreeMap<String, Duration> = BTreeMap::new();
    for d in &profile.dispatches {
        if let Some(key) = key_of.get(kiln_compiler::kernel_label(&d.label)) {
            *out.entry(key.clone()).or_default() += d.gpu;
        }
    }
    out
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Inputs for every input of the session's bundle: `dims`, then `default_dim` for the symbols
/// `dims` leaves unbound (as the tuner times them), filled by [`crate::convert::synthetic_input`].
fn synthetic_inputs(
    session: &Session,
    dims: &DimBindings,
    default_dim: i64,
) -> Result<HashMap<String, HostTensor>, TuneError> {
    let mut bind = dims.clone();
    let mut inputs = HashMap::new();
    for spec in &session.manifest().inputs {
        for d in &spec.shape {
            for s in symbols(d) {
                bind.entry(s).or_insert(default_dim);
            }
        }
        let t = crate::convert::synthetic_input(spec, &bind).map_err(|e| TuneError::Check(e.to_string()))?;
        inputs.insert(spec.name.clone(), t);
    }
    Ok(inputs)
}

/// The symbols a size expression names.
fn symbols(e: &kiln_runtime::abi::SizeExpr) -> Vec<String> {
    use kiln_runtime::abi::SizeExpr as S;
    match e {
        S::Const(_) => Vec::new(),
        S::Sym(s) => vec![s.clone()],
        S::Bin(_, a, b) => symbols(a).into_iter().chain(symbols(b)).collect(),
    }
}
