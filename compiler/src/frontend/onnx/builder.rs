//! A small builder for ONNX `ModelProto`s in Rust: tests and tools make models without Python.
//!
//! ```
//! use kiln_compiler::frontend::onnx::builder::{d, DataType, ModelBuilder};
//! let mut b = ModelBuilder::new("mlp");
//! b.input("x", DataType::Float, &[d("batch"), d(4)]);
//! b.init_f32("w", &[4, 2], &[0.5; 8]);
//! b.node("MatMul", &["x", "w"], &["y"]).name("mm");
//! b.output("y", DataType::Float);
//! let bytes = b.encode();
//! assert!(!bytes.is_empty());
//! ```

use super::proto::attribute_proto::AttributeType;
pub use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use prost::Message;

/// One dim of a declared input/output shape.
#[derive(Clone, Debug, PartialEq)]
pub enum DimSpec {
    /// A fixed size (`dim_value`).
    Value(i64),
    /// A named symbolic size (`dim_param`).
    Param(String),
    /// Neither value nor name.
    Unknown,
}

impl From<i64> for DimSpec {
    fn from(v: i64) -> Self {
        DimSpec::Value(v)
    }
}

impl From<i32> for DimSpec {
    fn from(v: i32) -> Self {
        DimSpec::Value(v as i64)
    }
}

impl From<usize> for DimSpec {
    fn from(v: usize) -> Self {
        DimSpec::Value(v as i64)
    }
}

impl From<&str> for DimSpec {
    fn from(v: &str) -> Self {
        DimSpec::Param(v.to_string())
    }
}

/// Shorthand for a [`DimSpec`]: `d(4)`, `d("batch")`.
pub fn d(v: impl Into<DimSpec>) -> DimSpec {
    v.into()
}

/// Builds a `ModelProto` step by step (default opset: 17 of the default domain).
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    graph: GraphProto,
    opsets: Vec<(String, i64)>,
    ir_version: i64,
}

impl ModelBuilder {
    /// A model whose graph has this name, importing default-domain opset 17.
    pub fn new(graph_name: &str) -> ModelBuilder {
        ModelBuilder {
            graph: GraphProto {
                name: Some(graph_name.to_string()),
                ..Default::default()
            },
            opsets: vec![(String::new(), 17)],
            ir_version: 8,
        }
    }

    /// Sets the default-domain opset version.
    pub fn opset(&mut self, version: i64) -> &mut Self {
        self.opsets.retain(|(d, _)| !d.is_empty());
        self.opsets.insert(0, (String::new(), version));
        self
    }

    /// Imports an opset of another domain.
    pub fn import(&mut self, domain: &str, version: i64) -> &mut Self {
        self.opsets.push((domain.to_string(), version));
        self
    }

    /// Removes every opset import (for tests of models that lack one).
    pub fn clear_imports(&mut self) -> &mut Self {
        self.opsets.clear();
        self
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, dtype: DataType, dims: &[DimSpec]) -> &mut Self {
        self.graph.input.push(value_info(name, dtype, Some(dims)));
        self
    }

    /// Declares a graph output (element type only; shape left to inference).
    pub fn output(&mut self, name: &str, dtype: DataType) -> &mut Self {
        self.graph.output.push(value_info(name, dtype, None));
        self
    }

    /// Declares a graph output with a shape.
    pub fn output_shaped(&mut self, name: &str, dtype: DataType, dims: &[DimSpec]) -> &mut Self {
        self.graph.output.push(value_info(name, dtype, Some(dims)));
        self
    }

    /// Adds an initializer.
    pub fn initializer(&mut self, t: TensorProto) -> &mut Self {
        self.graph.initializer.push(t);
        self
    }

    /// Adds an f32 initializer (`float_data`).
    pub fn init_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) -> &mut Self {
        self.initializer(tensor_f32(name, dims, data))
    }

    /// Adds an i64 initializer (`int64_data`).
    pub fn init_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) -> &mut Self {
        self.initializer(tensor_i64(name, dims, data))
    }

    /// Adds a node; the returned handle sets its name, domain and attributes.
    pub fn node(&mut self, op_type: &str, inputs: &[&str], outputs: &[&str]) -> NodeRef<'_> {
        self.graph.node.push(NodeProto {
            op_type: Some(op_type.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        NodeRef(self.graph.node.last_mut().expect("just pushed"))
    }

    /// The model proto.
    pub fn build(&self) -> ModelProto {
        ModelProto {
            ir_version: Some(self.ir_version),
            producer_name: Some("kiln-onnx-builder".into()),
            opset_import: self
                .opsets
                .iter()
                .map(|(d, v)| OperatorSetIdProto {
                    domain: Some(d.clone()),
                    version: Some(*v),
                })
                .collect(),
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
    }

    /// The model serialized as ONNX protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.build().encode_to_vec()
    }
}

/// A handle on a node being built.
pub struct NodeRef<'a>(&'a mut NodeProto);

impl NodeRef<'_> {
    /// Sets the node name.
    pub fn name(self, name: &str) -> Self {
        self.0.name = Some(name.to_string());
        self
    }

    /// Sets the operator domain.
    pub fn domain(self, domain: &str) -> Self {
        self.0.domain = Some(domain.to_string());
        self
    }

    fn push(self, a: AttributeProto) -> Self {
        self.0.attribute.push(a);
        self
    }

    /// Adds an int attribute.
    pub fn attr_int(self, name: &str, v: i64) -> Self {
        self.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(v),
            ..Default::default()
        })
    }

    /// Adds a float attribute.
    pub fn attr_float(self, name: &str, v: f32) -> Self {
        self.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Float as i32),
            f: Some(v),
            ..Default::default()
        })
    }

    /// Adds an ints attribute.
    pub fn attr_ints(self, name: &str, v: &[i64]) -> Self {
        self.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: v.to_vec(),
            ..Default::default()
        })
    }

    /// Adds a floats attribute.
    pub fn attr_floats(self, name: &str, v: &[f32]) -> Self {
        self.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Floats as i32),
            floats: v.to_vec(),
            ..Default::default()
        })
    }

    /// Adds a string attribute.
    pub fn attr_str(self, name: &str, v: &str) -> Self {
        self.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::String as i32),
            s: Some(v.as_bytes().to_vec()),
            ..Default::default()
        })
    }

    /// Adds a tensor attribute.
    pub fn attr_tensor(self, name: &str, t: TensorProto) -> Self {
        self.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Tensor as i32),
            t: Some(t),
            ..Default::default()
        })
    }

    /// Adds a graph attribute (a control-flow body): the graph of `body` (its inputs, nodes,
    /// initializers and outputs; its opset imports are ignored).
    pub fn attr_graph(self, name: &str, body: &ModelBuilder) -> Self {
        self.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Graph as i32),
            g: body.build().graph,
            ..Default::default()
        })
    }
}

fn value_info(name: &str, dtype: DataType, dims: Option<&[DimSpec]>) -> ValueInfoProto {
    let shape = dims.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: match d {
                    DimSpec::Value(v) => Some(dimension::Value::DimValue(*v)),
                    DimSpec::Param(p) => Some(dimension::Value::DimParam(p.clone())),
                    DimSpec::Unknown => None,
                },
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype as i32),
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An f32 tensor stored in `float_data`.
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: data.to_vec(),
        ..Default::default()
    }
}

/// An f32 tensor stored in `raw_data` (little-endian bytes).
pub fn tensor_f32_raw(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(data.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An i64 tensor stored in `int64_data`.
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

/// An i64 tensor stored in `raw_data`.
pub fn tensor_i64_raw(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(data.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A tensor of any element type from raw little-endian bytes.
pub fn tensor_raw(name: &str, dtype: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(dtype as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// An f32 tensor whose bytes live in an external file (`location` relative to the model).
pub fn tensor_external(
    name: &str,
    dtype: DataType,
    dims: &[i64],
    location: &str,
    offset: u64,
    length: u64,
) -> TensorProto {
    use super::proto::tensor_proto::DataLocation;
    use super::proto::StringStringEntryProto as Kv;
    let kv = |k: &str, v: String| Kv {
        key: Some(k.into()),
        value: Some(v),
    };
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(dtype as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![
            kv("location", location.into()),
            kv("offset", offset.to_string()),
            kv("length", length.to_string()),
        ],
        ..Default::default()
    }
}
