//! How the frontend tracks ONNX values: IR nodes, or integer tensors known at compile time.
//!
//! Shape computations (`Shape -> Gather -> Concat -> Reshape`) produce small integer tensors whose
//! elements are dims. Keeping them as [`Ints`] of [`Dim`]s lets them stay exact (`INT64_MAX` slice
//! ends), and lets a reshape target mention a symbolic dim (`[batch, 12, 64]`) that no constant
//! tensor could hold. They become IR constants only where an op reads them as data.

use kiln_ir::{DType, Dim, NodeId, Tensor};

/// An ONNX value as the frontend holds it.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// The output of an IR node.
    Node(NodeId),
    /// An integer (or boolean) tensor known at compile time.
    Ints(Ints),
}

/// An integer tensor known at compile time; elements are exact dims (constants or symbolic).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ints {
    /// Concrete shape.
    pub shape: Vec<usize>,
    /// Elements in row-major order.
    pub elems: Vec<Dim>,
    /// The elements are booleans (0/1), e.g. from `Equal` on shape values.
    pub boolean: bool,
}

impl Ints {
    /// A rank-1 tensor.
    pub fn vec(elems: Vec<Dim>) -> Ints {
        Ints {
            shape: vec![elems.len()],
            elems,
            boolean: false,
        }
    }

    /// A rank-0 tensor.
    pub fn scalar(d: Dim) -> Ints {
        Ints {
            shape: vec![],
            elems: vec![d],
            boolean: false,
        }
    }

    /// From exact integer values.
    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> Ints {
        Ints {
            shape,
            elems: values.iter().map(|&v| Dim::c(v)).collect(),
            boolean: false,
        }
    }

    /// Same shape, new elements, not boolean.
    pub fn with_elems(&self, elems: Vec<Dim>) -> Ints {
        Ints {
            shape: self.shape.clone(),
            elems,
            boolean: false,
        }
    }

    /// The values, if no element is symbolic.
    pub fn consts(&self) -> Option<Vec<i64>> {
        self.elems.iter().map(Dim::as_const).collect()
    }

    /// The tensor as IR data (i32, or bool); a symbolic element or a value outside i32 is an
    /// error.
    pub fn to_tensor(&self) -> Result<Tensor, String> {
        let mut v = Vec::with_capacity(self.elems.len());
        for d in &self.elems {
            let Some(c) = d.as_const() else {
                return Err(format!(
                    "shape of symbolic dim {d} needs --dim (the value is used as tensor data, which needs a concrete size)"
                ));
            };
            v.push(
                i32::try_from(c)
                    .map_err(|_| format!("value {c} is outside the i32 range that Kiln uses for ONNX int64 data"))?,
            );
        }
        if self.boolean {
            let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            return Ok(Tensor::from_f64(DType::Bool, self.shape.clone(), &f));
        }
        Ok(Tensor::i32(self.shape.clone(), v))
    }
}
