//! How a case ended ([`Outcome`]), per-stage times, and counts over a run.

use crate::case::Case;
use std::time::Duration;

/// How one case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// All outputs match.
    Pass,
    /// All outputs match once the named graph inputs were frozen to the test data's values,
    /// each because the frontend asked for it as a compile-time constant
    /// (`OnnxError::NeedsConstant` naming that graph input); in the order they were asked for.
    PassFrozen(Vec<String>),
    /// Wrong dtype, shape or values; the reason names the output and the first mismatch.
    Fail(String),
    /// The frontend or compiler declined an op or a feature through a typed error (no lowering,
    /// unsupported opset or domain, an unsupported feature, a compile-time value that the graph
    /// computes at run time).
    Unsupported {
        /// The op that is unsupported (or whose feature is).
        op: String,
        /// What exactly.
        reason: String,
    },
    /// Any other error: load, compile, runtime, panic, crash, time-out.
    Error(String),
    /// Not a plain-tensor case (the reason says which input/output and why).
    OutOfScope(String),
}

impl Outcome {
    /// Short name: `pass`, `pass-frozen`, `fail`, `unsupported`, `error`, `out-of-scope`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::PassFrozen(_) => "pass-frozen",
            Outcome::Fail(_) => "fail",
            Outcome::Unsupported { .. } => "unsupported",
            Outcome::Error(_) => "error",
            Outcome::OutOfScope(_) => "out-of-scope",
        }
    }

    /// Whether the case passed (with or without frozen inputs).
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass | Outcome::PassFrozen(_))
    }

    /// One-line reason ("" for a plain pass; the frozen inputs for a frozen pass).
    pub fn reason(&self) -> String {
        match self {
            Outcome::Pass => String::new(),
            Outcome::PassFrozen(inputs) => format!("frozen: {}", inputs.join(", ")),
            Outcome::Fail(r) | Outcome::Error(r) | Outcome::OutOfScope(r) => r.clone(),
            Outcome::Unsupported { op, reason } => format!("unsupported op {op}: {reason}"),
        }
    }

    /// The same outcome, its message prefixed with the inputs frozen to reach it.
    pub fn with_frozen(self, names: &[String]) -> Outcome {
        if names.is_empty() {
            return self;
        }
        let tag = format!(
            "with {} frozen: ",
            names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
        );
        match self {
            Outcome::Fail(m) => Outcome::Fail(tag + &m),
            Outcome::Error(m) => Outcome::Error(tag + &m),
            Outcome::Unsupported { op, reason } => Outcome::Unsupported {
                op,
                reason: tag + &reason,
            },
            other => other,
        }
    }
}

/// Wall-clock time a case spent in each stage (zero for stages it did not reach).
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Reading test data and lowering the model.
    pub load: Duration,
    /// Compiling and writing the bundle.
    pub compile: Duration,
    /// Loading the bundle and creating the session (adapter, device, pipelines, weights).
    pub session: Duration,
    /// Running every data set and comparing.
    pub run: Duration,
}

impl Phases {
    /// The sum of the stages.
    pub fn total(&self) -> Duration {
        self.load + self.compile + self.session + self.run
    }
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// How it ended.
    pub outcome: Outcome,
    /// Time per stage.
    pub phases: Phases,
}

/// Counts over a set of results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Plain cases (everything but out of scope).
    pub plain: usize,
    /// Passed as is, no input frozen.
    pub pass: usize,
    /// Passed with graph inputs frozen at the frontend's request (not part of `pass`).
    pub pass_frozen: usize,
    /// Failed (wrong answer).
    pub fail: usize,
    /// Unsupported op or feature.
    pub unsupported: usize,
    /// Other errors.
    pub error: usize,
    /// Not plain-tensor cases.
    pub out_of_scope: usize,
}

impl Counts {
    /// Counts one outcome.
    pub fn add(&mut self, o: &Outcome) {
        if let Outcome::OutOfScope(_) = o {
            self.out_of_scope += 1;
            return;
        }
        self.plain += 1;
        match o {
            Outcome::Pass => self.pass += 1,
            Outcome::PassFrozen(_) => self.pass_frozen += 1,
            Outcome::Fail(_) => self.fail += 1,
            Outcome::Unsupported { .. } => self.unsupported += 1,
            Outcome::Error(_) | Outcome::OutOfScope(_) => self.error += 1,
        }
    }

    /// Counts every result.
    pub fn of(results: &[CaseResult]) -> Counts {
        let mut c = Counts::default();
        for r in results {
            c.add(&r.outcome);
        }
        c
    }

    /// Plain cases passed as is, in percent of the plain cases (0 when there are none).
    pub fn pass_rate(&self) -> f64 {
        percent(self.pass, self.plain)
    }

    /// Plain cases passed as is or with frozen inputs, in percent of the plain cases.
    pub fn pass_rate_with_frozen(&self) -> f64 {
        percent(self.pass + self.pass_frozen, self.plain)
    }
}

fn percent(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Per case, in name order.
    pub results: Vec<CaseResult>,
    /// The adapter the workers ran on.
    pub device: String,
    /// Wall-clock time of the whole run.
    pub wall: Duration,
    /// Worker processes used.
    pub jobs: usize,
    /// The `onnx` package version the data came from (if the data directory records it).
    pub onnx_version: Option<String>,
}

impl Summary {
    /// Totals over all results.
    pub fn counts(&self) -> Counts {
        Counts::of(&self.results)
    }

    /// Stage times summed over all cases.
    pub fn phase_totals(&self) -> Phases {
        let mut p = Phases::default();
        for r in &self.results {
            p.load += r.phases.load;
            p.compile += r.phases.compile;
            p.session += r.phases.session;
            p.run += r.phases.run;
        }
        p
    }
}
