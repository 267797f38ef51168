//! Optionals: `OptionalHasElement` and `OptionalGetElement` on tensors (an absent input is an
//! empty optional; Kiln has no optional-typed values otherwise).

use super::one;
use crate::frontend::onnx::ctx::{Ctx, N};
use crate::frontend::onnx::value::Value;
use crate::frontend::onnx::OnnxError;
use kiln_ir::{DType, Tensor};

/// `OptionalHasElement`: false for an absent input, true for a tensor.
pub(crate) fn has_element(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    let present = cx.value(n, 0)?.is_some();
    Ok(one(cx.constant(
        n,
        "",
        Tensor::from_f64(DType::Bool, vec![], &[f64::from(u8::from(present))]),
    )))
}

/// `OptionalGetElement`: the tensor itself; an empty optional is an error.
pub(crate) fn get_element(cx: &mut Ctx, n: &N) -> Result<Vec<Value>, OnnxError> {
    match cx.value(n, 0)? {
        Some(v) => Ok(vec![v.clone()]),
        None => Err(n.err("input 0 is an empty optional; it has no element to get")),
    }
}
