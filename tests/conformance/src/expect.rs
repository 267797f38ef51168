//! The per-case expected-outcome list (`tests/onnx-conformance-expected.txt`) and the gate:
//! a run is compared case by case with the list; a case that got worse is a regression and
//! fails the run, a case that got better is an improvement, reported and accepted by rewriting
//! the list (`--update-expected`).
//!
//! The list has one line per case, `<case> <outcome>`, sorted by case name; `#` starts a comment:
//!
//! ```text
//! test_abs pass
//! test_reduce_sum_keepdims_example pass-frozen: axes
//! test_gridsample unsupported: GridSample: no lowering in the ONNX frontend
//! test_mod_mixed_sign_float known-failure: output 'z': 2 of 6 elements differ; ...
//! test_cast_DOUBLE_to_FLOAT out-of-scope
//! ```
//!
//! Outcomes rank `pass` > `pass-frozen` > `unsupported` > `known-failure` (a wrong answer or an
//! error). A frozen pass that needs fewer of its listed inputs is an improvement; one that needs
//! an input not listed is a regression. The text after `unsupported:` and `known-failure:` is
//! the reason, for people; it is not compared. A case missing from the list, or listed but not
//! found in a full run, also fails the gate until the list is regenerated.

use crate::outcome::{CaseResult, Outcome};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};

/// The expected outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Passes as is.
    Pass,
    /// Passes with (at most) these graph inputs frozen at the frontend's request.
    PassFrozen(Vec<String>),
    /// Declined by name as unsupported; the reason is a note.
    Unsupported(String),
    /// A wrong answer or an error, accepted for now; the reason says why.
    KnownFailure(String),
    /// Not a plain-tensor case.
    OutOfScope,
}

impl Expected {
    /// What a run's outcome would be recorded as.
    pub fn of(o: &Outcome) -> Expected {
        match o {
            Outcome::Pass => Expected::Pass,
            Outcome::PassFrozen(names) => Expected::PassFrozen(names.clone()),
            Outcome::Unsupported { .. } => Expected::Unsupported(o.reason()),
            Outcome::Fail(_) | Outcome::Error(_) => Expected::KnownFailure(o.reason()),
            Outcome::OutOfScope(_) => Expected::OutOfScope,
        }
    }

    /// Rank for "better or worse": higher is better; `None` for out of scope.
    fn rank(&self) -> Option<u8> {
        match self {
            Expected::Pass => Some(3),
            Expected::PassFrozen(_) => Some(2),
            Expected::Unsupported(_) => Some(1),
            Expected::KnownFailure(_) => Some(0),
            Expected::OutOfScope => None,
        }
    }

    /// The outcome word of a list line.
    pub fn kind(&self) -> &'static str {
        match self {
            Expected::Pass => "pass",
            Expected::PassFrozen(_) => "pass-frozen",
            Expected::Unsupported(_) => "unsupported",
            Expected::KnownFailure(_) => "known-failure",
            Expected::OutOfScope => "out-of-scope",
        }
    }

    /// The line text after the case name.
    fn render(&self) -> String {
        let one = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match self {
            Expected::PassFrozen(names) => format!("pass-frozen: {}", names.join(", ")),
            Expected::Unsupported(r) | Expected::KnownFailure(r) if !r.trim().is_empty() => {
                format!("{}: {}", self.kind(), one(r))
            }
            other => other.kind().to_string(),
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// The expected outcome of every listed case, by case name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expectations {
    /// Case name to expected outcome.
    pub cases: BTreeMap<String, Expected>,
}

impl Expectations {
    /// Parses a list; errors name the line.
    pub fn parse(text: &str) -> Result<Expectations> {
        let mut cases = BTreeMap::new();
        for (no, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || format!("line {}: '{line}'", no + 1);
            let (name, rest) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| anyhow::anyhow!("{}: expected '<case> <outcome>'", at()))?;
            let rest = rest.trim();
            let (kind, detail) = match rest.split_once(':') {
                Some((k, d)) => (k.trim(), Some(d.trim())),
                None => (rest, None),
            };
            let e = match (kind, detail) {
                ("pass", None) => Expected::Pass,
                ("out-of-scope", None) => Expected::OutOfScope,
                ("pass-frozen", Some(d)) if !d.is_empty() => {
                    Expected::PassFrozen(d.split(',').map(|s| s.trim().to_string()).collect())
                }
                ("unsupported", d) => Expected::Unsupported(d.unwrap_or("").to_string()),
                ("known-failure", Some(d)) if !d.is_empty() => Expected::KnownFailure(d.to_string()),
                ("known-failure", _) => bail!("{}: a known failure needs a reason ('known-failure: WHY')", at()),
                ("pass-frozen", _) => bail!("{}: 'pass-frozen' needs the frozen inputs ('pass-frozen: a, b')", at()),
                _ => bail!(
                    "{}: unknown outcome '{kind}' (expected pass, pass-frozen: INPUTS, unsupported, \
                     known-failure: REASON or out-of-scope)",
                    at()
                ),
            };
            if cases.insert(name.to_string(), e).is_some() {
                bail!("{}: case '{name}' is listed twice", at());
            }
        }
        Ok(Expectations { cases })
    }

    /// The list's text: a header, then one line per case in name order.
    pub fn render(&self) -> String {
        let mut o = String::from(
            "# Expected outcome of every ONNX backend node test case under `kiln conformance`.\n\
             # The conformance gate fails when a case does worse than listed here; improvements are\n\
             # accepted by regenerating this file (see docs/onnx-conformance.md):\n\
             #   kiln conformance tests/onnx-node --expected tests/onnx-conformance-expected.txt --update-expected\n\
             # Format: <case> pass | pass-frozen: INPUTS | unsupported: NOTE | known-failure: REASON | out-of-scope\n",
        );
        for (name, e) in &self.cases {
            o.push_str(name);
            o.push(' ');
            o.push_str(&e.render());
            o.push('\n');
        }
        o
    }

    /// The list updated with a run's results: every case that ran takes its new outcome, except
    /// that a known failure that is still a failure keeps its (possibly hand-written) reason.
    /// Cases that did not run are kept unless `full_run`, in which case they are dropped.
    pub fn updated(&self, results: &[CaseResult], full_run: bool) -> Expectations {
        let mut cases = if full_run { BTreeMap::new() } else { self.cases.clone() };
        for r in results {
            let new = Expected::of(&r.outcome);
            let keep = match (self.cases.get(&r.case.name), &new) {
                (Some(old @ Expected::KnownFailure(_)), Expected::KnownFailure(_)) => Some(old.clone()),
                _ => None,
            };
            cases.insert(r.case.name.clone(), keep.unwrap_or(new));
        }
        Expectations { cases }
    }
}

/// One case whose outcome differs from the list.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The case.
    pub case: String,
    /// What the list says (`None`: not listed).
    pub expected: Option<Expected>,
    /// What the run gave (`None`: the case was not found).
    pub got: Option<Expected>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |e: &Option<Expected>, none: &str| e.as_ref().map(|e| e.render()).unwrap_or_else(|| none.into());
        write!(
            f,
            "{}: expected {}, got {}",
            self.case,
            show(&self.expected, "(not listed)"),
            show(&self.got, "(no such case)")
        )
    }
}

/// The gate's verdict on a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Cases that did worse than listed, listed cases that were not found in a full run, and
    /// cases that are not listed: each fails the gate.
    pub regressions: Vec<Change>,
    /// Cases that did better than listed.
    pub improvements: Vec<Change>,
    /// Cases whose outcome kind matches the list but whose details moved sideways (e.g. a
    /// different set of frozen inputs of the same size); reported, not failing.
    pub other: Vec<Change>,
}

impl Verdict {
    /// Whether the gate passes.
    pub fn ok(&self) -> bool {
        self.regressions.is_empty()
    }
}

/// Compares a run with the list. `full_run` (no filter) also reports listed cases that were not
/// found.
pub fn check(expected: &Expectations, results: &[CaseResult], full_run: bool) -> Verdict {
    let mut v = Verdict::default();
    let mut seen = BTreeSet::new();
    for r in results {
        seen.insert(r.case.name.as_str());
        let got = Expected::of(&r.outcome);
        let change = |exp: Option<&Expected>| Change {
            case: r.case.name.clone(),
            expected: exp.cloned(),
            got: Some(got.clone()),
        };
        let Some(exp) = expected.cases.get(&r.case.name) else {
            v.regressions.push(change(None));
            continue;
        };
        match (exp, &got) {
            (Expected::PassFrozen(want), Expected::PassFrozen(have)) => {
                let want: BTreeSet<&String> = want.iter().collect();
                let have: BTreeSet<&String> = have.iter().collect();
                if have == want {
                } else if have.is_subset(&want) {
                    v.improvements.push(change(Some(exp)));
                } else {
                    v.regressions.push(change(Some(exp)));
                }
            }
            _ => match (exp.rank(), got.rank()) {
                (Some(a), Some(b)) if b > a => v.improvements.push(change(Some(exp))),
                (Some(a), Some(b)) if b < a => v.regressions.push(change(Some(exp))),
                (Some(_), Some(_)) | (None, None) => {}
                // A case that left the plain set no longer counts: a regression.
                (Some(_), None) => v.regressions.push(change(Some(exp))),
                // A case that joined the plain set: accepted by updating the list.
                (None, Some(_)) => v.other.push(change(Some(exp))),
            },
        }
    }
    if full_run {
        for (name, exp) in &expected.cases {
            if !seen.contains(name.as_str()) {
                v.regressions.push(Change {
                    case: name.clone(),
                    expected: Some(exp.clone()),
                    got: None,
                });
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Case;
    use crate::outcome::Phases;
    use std::path::PathBuf;

    fn result(name: &str, outcome: Outcome) -> CaseResult {
        CaseResult {
            case: Case {
                name: name.into(),
                dir: PathBuf::from(name),
                op: "Op".into(),
                scope: Ok(()),
                tolerance: crate::compare::Tolerance::ONNX,
            },
            outcome,
            phases: Phases::default(),
        }
    }

    fn frozen(names: &[&str]) -> Outcome {
        Outcome::PassFrozen(names.iter().map(|s| s.to_string()).collect())
    }

    const LIST: &str = "# comment\n\
        test_a pass\n\
        test_b pass-frozen: axes, shape\n\
        test_c unsupported: GridSample: no lowering\n\
        test_d known-failure: Mod of negative floats is off by one ulp\n\
        test_e out-of-scope\n\
        test_f pass-frozen: k\n";

    #[test]
    fn parses_and_renders_round_trip() {
        let e = Expectations::parse(LIST).unwrap();
        assert_eq!(e.cases.len(), 6);
        assert_eq!(
            e.cases["test_b"],
            Expected::PassFrozen(vec!["axes".into(), "shape".into()])
        );
        assert_eq!(
            e.cases["test_d"],
            Expected::KnownFailure("Mod of negative floats is off by one ulp".into())
        );
        assert_eq!(Expectations::parse(&e.render()).unwrap(), e);
    }

    #[test]
    fn rejects_malformed_lines_naming_them() {
        for (text, what) in [
            ("test_a", "expected '<case> <outcome>'"),
            ("test_a passed", "unknown outcome 'passed'"),
            ("test_a known-failure", "needs a reason"),
            ("test_a pass-frozen", "needs the frozen inputs"),
            ("test_a pass\ntest_a pass", "listed twice"),
        ] {
            let e = Expectations::parse(text).unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("line "), "{text:?}: {e}");
        }
    }

    #[test]
    fn worse_is_a_regression_better_an_improvement() {
        let e = Expectations::parse(LIST).unwrap();
        let unsupported = || Outcome::Unsupported {
            op: "X".into(),
            reason: "r".into(),
        };
        let results = vec![
            // pass -> frozen pass: worse.
            result("test_a", frozen(&["y"])),
            // frozen pass needing fewer inputs: better.
            result("test_b", frozen(&["axes"])),
            // unsupported -> wrong answer: worse.
            result("test_c", Outcome::Fail("output 'y': bad".into())),
            // known failure -> unsupported: better (a decline instead of a wrong answer).
            result("test_d", unsupported()),
            result("test_e", Outcome::OutOfScope("double".into())),
            // frozen pass needing another input: worse.
            result("test_f", frozen(&["k", "axis"])),
            // not listed: fails until the list is regenerated.
            result("test_new", Outcome::Pass),
        ];
        let v = check(&e, &results, true);
        let names = |l: &[Change]| l.iter().map(|c| c.case.clone()).collect::<Vec<_>>();
        assert_eq!(names(&v.regressions), ["test_a", "test_c", "test_f", "test_new"]);
        assert_eq!(names(&v.improvements), ["test_b", "test_d"]);
        assert!(!v.ok());
        assert_eq!(
            v.regressions[0].to_string(),
            "test_a: expected pass, got pass-frozen: y"
        );

        // Everything as listed: the gate passes, even with different failure reasons.
        let same = vec![
            result("test_a", Outcome::Pass),
            result("test_b", frozen(&["shape", "axes"])),
            result("test_c", unsupported()),
            result("test_d", Outcome::Error("crash".into())),
            result("test_e", Outcome::OutOfScope("double".into())),
            result("test_f", frozen(&["k"])),
        ];
        assert!(check(&e, &same, true).ok());
        // A full run that misses a listed case fails; a filtered run does not look for it.
        let v = check(&e, &same[..5], true);
        assert_eq!(v.regressions.len(), 1);
        assert_eq!(
            v.regressions[0].to_string(),
            "test_f: expected pass-frozen: k, got (no such case)"
        );
        assert!(check(&e, &same[..5], false).ok());
        // Leaving the plain set is a regression.
        let v = check(&e, &[result("test_a", Outcome::OutOfScope("x".into()))], false);
        assert_eq!(v.regressions.len(), 1);
    }

    #[test]
    fn update_keeps_hand_written_failure_reasons() {
        let e = Expectations::parse(LIST).unwrap();
        let results = vec![
            result("test_d", Outcome::Fail("output 'y': 1 of 4 elements differ".into())),
            result("test_a", frozen(&["y"])),
        ];
        let u = e.updated(&results, false);
        assert_eq!(u.cases["test_d"], e.cases["test_d"]);
        assert_eq!(u.cases["test_a"], Expected::PassFrozen(vec!["y".into()]));
        assert_eq!(u.cases.len(), 6);
        assert_eq!(e.updated(&results, true).cases.len(), 2);
    }
}
