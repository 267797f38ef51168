//! ONNX backend conformance: runs the ONNX backend node tests through the whole pipeline
//! (frontend → compiler → bundle → runtime on the GPU), compares with the expected outputs, and
//! gates on a per-case expected-outcome list. `kiln conformance` is its command line.
//!
//! The cases are materialized offline by `scripts/onnx_conformance_data.py` into
//! `DIR/<case>/model.onnx` + `DIR/<case>/test_data_set_<N>/{input,output}_<K>.pb` (+ the case's
//! `tolerance.txt`). A case is *plain* when every graph input and output is a tensor of f32, f16,
//! i32, i64, bool, u8 or i8; other cases are *out of scope* and only counted. Each plain case
//! ends as one [`Outcome`]: pass; pass with frozen inputs (the frontend asked for a graph input
//! as a compile-time constant by its typed error, and freezing it made the case pass; see
//! `run.rs`); fail (wrong dtype, shape or value, floats compared with ONNX's own tolerance);
//! unsupported (declined by a typed error); error (anything else).
//!
//! One concern per module: [`case`] (finding and reading cases), [`compare`] (outputs against
//! expected values), [`run`] (one case in a worker, the frozen retry, errors to outcomes),
//! [`worker`] (worker processes and the pool), [`expect`] (the expected-outcome list and the
//! gate), [`report`] (the Markdown report), [`outcome`] (outcomes and counts).

pub mod case;
pub mod compare;
pub mod expect;
pub mod outcome;
pub mod report;
pub mod run;
pub mod worker;

pub use case::{discover, Case};
pub use compare::{compare, Tolerance};
pub use expect::{check, Expectations, Expected, Verdict};
pub use outcome::{CaseResult, Counts, Outcome, Phases, Summary};
pub use report::{render_report, top_causes};
pub use run::run_case;
pub use worker::{run_suite, worker_main};

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// What a conformance run is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory of materialized cases (`DIR/<case>/model.onnx`).
    pub dir: PathBuf,
    /// Only cases whose name contains this substring.
    pub filter: Option<String>,
    /// Where to write the Markdown report.
    pub report: Option<PathBuf>,
    /// The expected-outcome list to check the run against (the gate).
    pub expected: Option<PathBuf>,
    /// Rewrite `expected` with this run's outcomes instead of failing on changes.
    pub update_expected: bool,
    /// Worker processes running cases in parallel (0: one per available core).
    pub jobs: usize,
    /// Time limit per case (load + compile + run).
    pub timeout: Duration,
    /// Arguments that make the current executable run [`worker_main`] (for `kiln`:
    /// `conformance DIR --worker`).
    pub worker_args: Vec<String>,
    /// The command line, recorded in the report.
    pub command_line: String,
    /// No progress bar, and no progress lines when stderr is not a terminal.
    pub quiet: bool,
}

/// Runs the suite, prints totals, writes the report, and checks (or updates) the expected-outcome
/// list: `Err` when a case did worse than listed.
pub fn run_cli(opts: &Options) -> Result<()> {
    if opts.update_expected && opts.expected.is_none() {
        bail!("--update-expected needs --expected FILE (the list to rewrite)");
    }
    // Read the list first, so that a malformed one fails before minutes of running.
    let expected = match &opts.expected {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Expectations::parse(&text).with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.update_expected => Expectations::default(),
            Err(e) => return Err(e).with_context(|| format!("reading the expected-outcome list {}", path.display())),
        },
        None => Expectations::default(),
    };
    let summary = run_suite(opts)?;
    let c = summary.counts();
    let p = summary.phase_totals();
    println!(
        "{} cases: {} plain, {} out of scope; plain: {} passed, {} passed with frozen inputs, {} failed, {} unsupported, {} errors ({:.1}% pass, {:.1}% counting frozen passes)",
        summary.results.len(),
        c.plain,
        c.out_of_scope,
        c.pass,
        c.pass_frozen,
        c.fail,
        c.unsupported,
        c.error,
        c.pass_rate(),
        c.pass_rate_with_frozen()
    );
    println!(
        "wall time {:.1?} with {} worker(s) on {}; per-stage totals: load {:.1?}, compile {:.1?}, session {:.1?}, run {:.1?}",
        summary.wall, summary.jobs, summary.device, p.load, p.compile, p.session, p.run
    );
    for (cause, n) in top_causes(&summary).into_iter().take(15) {
        println!("  {n:5}  {cause}");
    }
    if let Some(path) = &opts.report {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, render_report(&summary, &opts.command_line))
            .with_context(|| format!("writing the report {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    let Some(path) = &opts.expected else {
        return Ok(());
    };
    let full_run = opts.filter.is_none();
    let verdict = check(&expected, &summary.results, full_run);
    print_changes("improvements (better than listed)", &verdict.improvements);
    print_changes("other changes", &verdict.other);
    print_changes(
        "REGRESSIONS (worse than listed, not listed, or not found)",
        &verdict.regressions,
    );
    if opts.update_expected {
        let updated = expected.updated(&summary.results, full_run);
        std::fs::write(path, updated.render()).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "expected-outcome list {} rewritten ({} cases; {} improvements and {} regressions accepted)",
            path.display(),
            updated.cases.len(),
            verdict.improvements.len(),
            verdict.regressions.len()
        );
        return Ok(());
    }
    if !verdict.ok() {
        bail!(
            "{} case(s) did worse than {} lists (see REGRESSIONS above); fix them, or accept the \
             change with --update-expected and say why in the commit",
            verdict.regressions.len(),
            path.display()
        );
    }
    println!(
        "conformance gate: every case as listed in {} or better ({} improvement(s){})",
        path.display(),
        verdict.improvements.len(),
        if verdict.improvements.is_empty() {
            ""
        } else {
            "; accept them with --update-expected"
        }
    );
    Ok(())
}

fn print_changes(title: &str, list: &[expect::Change]) {
    if list.is_empty() {
        return;
    }
    println!("{title}: {}", list.len());
    for c in list {
        println!("  {c}");
    }
}
