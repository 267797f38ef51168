//! Comparing a case's outputs with the expected ones: dtype and shape exactly, integers and
//! bools exactly, floats within the case's [`Tolerance`] (NaN matches NaN, an infinity matches
//! the same infinity), as `numpy.testing.assert_allclose` does in ONNX's backend test runner.

use crate::case::{TestTensor, Values};
use kiln_runtime::HostTensor;

/// The tolerance of float outputs: `|got - want| <= atol + rtol * |want|` elementwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance (times `|want|`).
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

impl Tolerance {
    /// ONNX's tolerance for its node tests (`rtol=1e-3, atol=1e-7` in
    /// `onnx.backend.test.case.node.expect`), used unless a case states its own.
    pub const ONNX: Tolerance = Tolerance { rtol: 1e-3, atol: 1e-7 };

    /// Whether `got` is close enough to `want`. Infinities must match exactly (with an infinite
    /// `want`, `rtol * |want|` would accept anything, even the opposite infinity).
    pub fn accepts(&self, got: f64, want: f64) -> bool {
        if got.is_nan() || want.is_nan() {
            return got.is_nan() && want.is_nan();
        }
        if got.is_infinite() || want.is_infinite() {
            return got == want;
        }
        (got - want).abs() <= self.atol + self.rtol * want.abs()
    }
}

fn fmt_val(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
        format!("{v}")
    } else {
        format!("{v:.6e}")
    }
}

/// Compares one output; `Err` names the first mismatch.
pub fn compare(name: &str, got: &HostTensor, want: &TestTensor, tol: Tolerance) -> Result<(), String> {
    if got.dtype != want.elem {
        return Err(format!(
            "output '{name}': dtype {}, expected {}",
            got.dtype.name(),
            want.elem.name()
        ));
    }
    if got.shape != want.shape {
        return Err(format!(
            "output '{name}': shape {:?}, expected {:?}",
            got.shape, want.shape
        ));
    }
    let mut bad = 0usize;
    let mut first: Option<(usize, f64, f64)> = None;
    let mut note = |i: usize, a: f64, b: f64| {
        bad += 1;
        first.get_or_insert((i, a, b));
    };
    match &want.values {
        Values::Float(w) => {
            for (i, (&a, &b)) in got.to_f32().iter().zip(w).enumerate() {
                let (a, b) = (a as f64, b as f64);
                if !tol.accepts(a, b) {
                    note(i, a, b);
                }
            }
        }
        Values::Int(w) => {
            for (i, (&a, &b)) in got.to_i64().iter().zip(w).enumerate() {
                if a != b {
                    note(i, a as f64, b as f64);
                }
            }
        }
        Values::Bool(w) => {
            for (i, (&a, &b)) in got.to_bool().iter().zip(w).enumerate() {
                if a != b {
                    note(i, a as u8 as f64, b as u8 as f64);
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some((i, a, b)) => Err(format!(
            "output '{name}': {bad} of {} elements differ; first at flat index {i}: got {}, expected {}",
            got.numel(),
            fmt_val(a),
            fmt_val(b)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_abi::ElemType;

    fn f32s(v: &[f32]) -> TestTensor {
        TestTensor {
            elem: ElemType::F32,
            shape: vec![v.len()],
            values: Values::Float(v.to_vec()),
        }
    }

    #[test]
    fn uses_onnx_tolerance_not_a_loose_absolute_one() {
        let tol = Tolerance::ONNX;
        let want = f32s(&[1000.0, f32::NAN, 0.0, f32::INFINITY]);
        // 0.9 off 1000 is within rtol 1e-3; NaN matches NaN; inf matches inf.
        let got = HostTensor::from_f32(&[4], &[1000.9, f32::NAN, 0.0, f32::INFINITY]);
        assert!(compare("y", &got, &want, tol).is_ok());
        // 5e-5 off an expected 0 passed the old atol 1e-4; ONNX's atol is 1e-7.
        let got = HostTensor::from_f32(&[4], &[1000.0, f32::NAN, 5e-5, f32::INFINITY]);
        let e = compare("y", &got, &want, tol).unwrap_err();
        assert!(e.contains("1 of 4") && e.contains("index 2"), "{e}");
        // ...unless the case states a looser tolerance.
        assert!(compare("y", &got, &want, Tolerance { rtol: 1e-3, atol: 1e-4 }).is_ok());
        let got = HostTensor::from_f32(&[4], &[1001.2, f32::NAN, 0.0, f32::INFINITY]);
        assert!(compare("y", &got, &want, tol).unwrap_err().contains("index 0"));
        let got = HostTensor::from_f32(&[4], &[1000.0, 0.0, 0.0, f32::INFINITY]);
        assert!(compare("y", &got, &want, tol).unwrap_err().contains("index 1"));
        let got = HostTensor::from_f32(&[4], &[1000.0, f32::NAN, 0.0, f32::NEG_INFINITY]);
        assert!(compare("y", &got, &want, tol).unwrap_err().contains("index 3"));
        let got = HostTensor::from_f32(&[1, 4], &[1000.0, f32::NAN, 0.0, f32::INFINITY]);
        assert!(compare("y", &got, &want, tol).unwrap_err().contains("shape"));
    }

    #[test]
    fn integers_and_dtypes_exactly() {
        let want = TestTensor {
            elem: ElemType::I64,
            shape: vec![2],
            values: Values::Int(vec![5, -7]),
        };
        let tol = Tolerance::ONNX;
        assert!(compare("z", &HostTensor::from_i64(&[2], &[5, -7]), &want, tol).is_ok());
        assert!(compare("z", &HostTensor::from_i64(&[2], &[5, -6]), &want, tol).is_err());
        assert!(compare("z", &HostTensor::from_i32(&[2], &[5, -7]), &want, tol)
            .unwrap_err()
            .contains("dtype"));
    }
}
