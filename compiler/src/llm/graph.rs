//! The Llama forward step as an IR graph (the layout is described in docs/llm.md).

use super::{
    LlamaConfig, LlamaWeights, LlmError, RopeStyle, LOGITS, N, NEXT_TOKEN, PAST, RECENT_TOKENS, REPEAT_WINDOW,
    SAMPLING, TOKENS,
};
use crate::Model;
use kiln_ir::{BinaryOp, DType, Dim, Expr, Graph, NodeId, Op, ReduceOp, SliceAxis, Tensor, TensorType, UnaryOp};

/// Value of masked attention scores (finite: WGSL has no infinity literals; `exp` of it
/// minus the row max is exactly 0 in f32).
const MASKED: f64 = -1e30;

struct Builder<'a> {
    g: Graph,
    c: &'a LlamaConfig,
    n: Dim,
    past: Dim,
}

/// Builds the graph of one forward step: input `tokens` `[n]` (i32) at positions
/// `past .. past + n` (`past` a scalar symbol), outputs `logits` `[1, vocab]` of the last
/// position and `next_token` `[1]` (drawn from them on the device by [`Op::Sample`] with the
/// inputs `sampling` (`[8]` i32, [`kiln_ir::sample`]'s layout) and `recent_tokens`
/// (`[REPEAT_WINDOW]` i32, -1 padded); greedy when the temperature is 0). The KV cache is the states `k_cache.L` and
/// `v_cache.L` of shape `[context, kv_heads, head_dim]`.
pub fn build(config: &LlamaConfig, w: &mut dyn LlamaWeights) -> Result<Model, LlmError> {
    config.validate()?;
    let c = config;
    let mut b = Builder {
        g: Graph::new(),
        c,
        n: Dim::sym(N),
        past: Dim::sym(PAST),
    };
    let tokens = b.g.add_input(
        TOKENS,
        TensorType {
            dtype: DType::I32,
            shape: vec![b.n.clone()],
        },
    );
    let total = b.past.add(&b.n);
    b.g.assume_at_most(
        total.clone(),
        Dim::c(c.context as i64),
        format!("the KV cache holds {} tokens (compiled context)", c.context),
    )?;
    let mut x = w.embedding(&mut b.g, "token_embd.weight", tokens, c.vocab, c.dim)?;

    let (cos, sin) = rope_tables(c);
    let cos = b.g.add_const("rope.cos", cos);
    let sin = b.g.add_const("rope.sin", sin);
    let mask = b.causal_mask(&total)?;
    for l in 0..c.layers {
        x = b.layer(w, l, x, cos, sin, mask, &total)?;
    }
    let last = b.g.add(
        "last_position",
        Op::Slice {
            axes: vec![SliceAxis {
                axis: 0,
                start: -1,
                end: kiln_ir::infer::SLICE_END_MAX,
                step: 1,
            }],
        },
        &[x],
    )?;
    let h = b.rms_norm(w, "output_norm", last)?;
    let head = if c.tied_output {
        "token_embd.weight"
    } else {
        "output.weight"
    };
    let [h] = b.projection_inputs(w, h, c.dim, [(head, c.vocab)])?;
    let logits = w.linear(&mut b.g, head, h, c.dim, c.vocab)?;
    let sampling = b.g.add_input(
        SAMPLING,
        TensorType {
            dtype: DType::I32,
            shape: vec![Dim::c(kiln_ir::sample::PARAMS_LEN as i64)],
        },
    );
    let recent = b.g.add_input(
        RECENT_TOKENS,
        TensorType {
            dtype: DType::I32,
            shape: vec![Dim::c(REPEAT_WINDOW as i64)],
        },
    );
    let next = b.g.add("sample", Op::Sample, &[logits, sampling, recent])?;
    b.g.add_output(LOGITS, logits);
    b.g.add_output(NEXT_TOKEN, next);
    Ok(Model {
        name: c.name.clone(),
        graph: b.g,
        io_dtypes: Default::default(),
    })
}

/// cos and sin of `pos * base^(-2j / rope_dims)` for every position and pair `j`, as f32
/// tables `[context, rope_dims / 2]` (computed in f64).
fn rope_tables(c: &LlamaConfig) -> (Tensor, Tensor) {
    let half = c.rope_dims / 2;
    let mut cos = Vec::with_capacity(c.context * half);
    let mut sin = Vec::with_capacity(c.context * half);
    for p in 0..c.context {
        for j in 0..half {
            let theta = p as f64 * (c.rope_base as f64).powf(-2.0 * j as f64 / c.rope_dims as f64);
            cos.push(theta.cos() as f32);
            sin.push(theta.sin() as f32);
        }
    }
    (
        Tensor::f32(vec![c.context, half], cos),
        Tensor::f32(vec![c.context, half], sin),
    )
}

fn f(op: BinaryOp, a: Expr, b: Expr) -> Expr {
    Expr::Binary(op, Box::new(a), Box::new(b), DType::F32)
}

impl Builder<'_> {
    fn tensor(&mut self, w: &mut dyn LlamaWeights, name: &str, shape: &[usize]) -> Result<Tensor, LlmError> {
        let t = w.tensor(name)?.ok_or_else(|| LlmError::MissingTensor(name.into()))?;
        if t.shape != shape || t.dtype() != DType::F32 {
            return Err(LlmError::Tensor {
                name: name.into(),
                msg: format!("expected f32 {shape:?}, got {} {:?}", t.dtype(), t.shape),
            });
        }
        Ok(t)
    }

    fn scalar(&mut self, name: &str, v: f64) -> NodeId {
        self.g.add_const(name, Tensor::scalar(DType::F32, v))
    }

    /// `Mul(Mul(x, Rsqrt(Add(ReduceMean(Mul(x, x), [last], keep_dims), eps))), weight)`: the
    /// exact form the optimizer's RMSNorm rule recognizes.
    fn rms_norm(&mut self, w: &mut dyn LlamaWeights, prefix: &str, x: NodeId) -> Result<NodeId, LlmError> {
        let name = format!("{prefix}.weight");
        let weight = self.tensor(w, &name, &[self.c.dim])?;
        let weight = self.g.add_const(&name, weight);
        let last = self.g.node(x).ty.rank() - 1;
        let sq = self
            .g
            .add(&format!("{prefix}.sq"), Op::Binary(BinaryOp::Mul), &[x, x])?;
        let mean = self.g.add(
            &format!("{prefix}.mean"),
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: vec![last],
                keep_dims: true,
            },
            &[sq],
        )?;
        let eps = self.scalar(&format!("{prefix}.eps"), self.c.rms_eps as f64);
        let var = self
            .g
            .add(&format!("{prefix}.add_eps"), Op::Binary(BinaryOp::Add), &[mean, eps])?;
        let inv = self
            .g
            .add(&format!("{prefix}.rsqrt"), Op::Unary(UnaryOp::Rsqrt), &[var])?;
        let normed = self
            .g
            .add(&format!("{prefix}.scale"), Op::Binary(BinaryOp::Mul), &[x, inv])?;
        Ok(self.g.add(
            &format!("{prefix}.weight_mul"),
            Op::Binary(BinaryOp::Mul),
            &[normed, weight],
        )?)
    }

    /// The inputs of the projections `weights` (name, output features; `in_f` inputs each)
    /// of `x` (an RMS norm's output, or the SwiGLU's): for a weight packed as q4_0, q4_1 or
    /// q8_0 (the block types with integer-dot GEMVs), `x` rounded to 8-bit integers per block
    /// of 32 ([`Op::QuantizeQ8`], one quantizer shared by them) when
    /// [`LlamaConfig::activations`] asks for it ([`super::Activations::quantizes`]); otherwise
    /// `x` itself.
    fn projection_inputs<const P: usize>(
        &mut self,
        w: &dyn LlamaWeights,
        x: NodeId,
        in_f: usize,
        weights: [(&str, usize); P],
    ) -> Result<[NodeId; P], LlmError> {
        let int8 = |name: &str| w.packed_block(name).filter(|b| b.has_int8_dot());
        let bytes: u64 = weights
            .iter()
            .filter_map(|&(name, out)| int8(name)?.bytes_for((out * in_f) as u64))
            .sum();
        let on = self.c.activations.quantizes(bytes);
        let mut q = None;
        let mut inputs = [x; P];
        for (input, &(name, _)) in inputs.iter_mut().zip(&weights) {
            if on && int8(name).is_some() {
                if q.is_none() {
                    let qname = format!("{}.q8", self.g.node(x).name);
                    q = Some(self.g.add(&qname, Op::QuantizeQ8, &[x])?);
                }
                *input = q.expect("made above");
            }
        }
        Ok(inputs)
    }

    /// A linear layer plus its bias when `bias` (Qwen2's q/k/v).
    fn linear(
        &mut self,
        w: &mut dyn LlamaWeights,
        name: &str,
        x: NodeId,
        in_f: usize,
        out_f: usize,
        bias: bool,
    ) -> Result<NodeId, LlmError> {
        let y = w.linear(&mut self.g, &format!("{name}.weight"), x, in_f, out_f)?;
        if !bias {
            return Ok(y);
        }
        let bname = format!("{name}.bias");
        let b = self.tensor(w, &bname, &[out_f])?;
        let b = self.g.add_const(&bname, b);
        Ok(self
            .g
            .add(&format!("{name}.add_bias"), Op::Binary(BinaryOp::Add), &[y, b])?)
    }

    fn reshape(&mut self, name: &str, x: NodeId, shape: Vec<Dim>) -> Result<NodeId, LlmError> {
        Ok(self.g.add(name, Op::Reshape { shape }, &[x])?)
    }

    fn transpose(&mut self, name: &str, x: NodeId, perm: Vec<usize>) -> Result<NodeId, LlmError> {
        Ok(self.g.add(name, Op::Transpose { perm }, &[x])?)
    }

    /// `[n, T]` f32: 0 where key `j` is visible to query `i` (`j <= past + i`), else a large
    /// negative number.
    fn causal_mask(&mut self, total: &Dim) -> Result<NodeId, LlmError> {
        let visible = Expr::Coord(1).cmp(
            BinaryOp::LessEqual,
            Expr::Dim(self.past.clone()).add(Expr::Coord(0)),
            DType::I32,
        );
        let expr = Expr::select(visible, Expr::Lit(0.0, DType::F32), Expr::Lit(MASKED, DType::F32));
        Ok(self.g.add(
            "causal_mask",
            Op::Compute {
                shape: vec![self.n.clone(), total.clone()],
                dtype: DType::F32,
                expr,
                name: "CausalMask".into(),
            },
            &[],
        )?)
    }

    /// RoPE on `x` `[n, heads, head_dim]` at positions `past + i`, reading the cos/sin tables
    /// (inputs 1 and 2) at that row; dims past `rope_dims` pass through.
    fn rope(&mut self, name: &str, x: NodeId, cos: NodeId, sin: NodeId) -> Result<NodeId, LlmError> {
        let c = self.c;
        let shape = self.g.node(x).ty.shape.clone();
        let i = Expr::Coord(0);
        let h = Expr::Coord(1);
        let d = Expr::Coord(2);
        let pos = Expr::Dim(self.past.clone()).add(i.clone());
        let load = |dd: Expr| Expr::Load {
            input: 0,
            index: vec![i.clone(), h.clone(), dd],
        };
        let table = |input: usize, j: Expr| Expr::Load {
            input,
            index: vec![pos.clone(), j],
        };
        let half = (c.rope_dims / 2) as i64;
        let (j, first, partner) = match c.rope_style {
            RopeStyle::Normal => {
                // Pairs (2j, 2j+1): the even one is first.
                let first = d
                    .clone()
                    .rem(Expr::int(2))
                    .cmp(BinaryOp::Equal, Expr::int(0), DType::I32);
                let partner = Expr::select(first.clone(), d.clone().add(Expr::int(1)), d.clone().sub(Expr::int(1)));
                (d.clone().div(Expr::int(2)), first, partner)
            }
            RopeStyle::Neox => {
                // Pairs (j, j + half).
                let first = d.clone().cmp(BinaryOp::Less, Expr::int(half), DType::I32);
                let j = Expr::select(first.clone(), d.clone(), d.clone().sub(Expr::int(half)));
                let partner = Expr::select(
                    first.clone(),
                    d.clone().add(Expr::int(half)),
                    d.clone().sub(Expr::int(half)),
                );
                (j, first, partner)
            }
        };
        let xd = load(d.clone());
        let xp = load(partner);
        // first: x*cos - partner*sin; second: x*cos + partner*sin.
        let signed = Expr::select(first, Expr::Unary(UnaryOp::Neg, Box::new(xp.clone()), DType::F32), xp);
        let rotated = f(
            BinaryOp::Add,
            f(BinaryOp::Mul, xd.clone(), table(1, j.clone())),
            f(BinaryOp::Mul, signed, table(2, j)),
        );
        let in_rope = d.cmp(BinaryOp::Less, Expr::int(c.rope_dims as i64), DType::I32);
        let expr = Expr::select(in_rope, rotated, xd);
        Ok(self.g.add(
            name,
            Op::Compute {
                shape,
                dtype: DType::F32,
                expr,
                name: "Rope".into(),
            },
            &[x, cos, sin],
        )?)
    }

    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        w: &mut dyn LlamaWeights,
        l: usize,
        x: NodeId,
        cos: NodeId,
        sin: NodeId,
        mask: NodeId,
        total: &Dim,
    ) -> Result<NodeId, LlmError> {
        let c = self.c;
        let p = |s: &str| format!("blk.{l}.{s}");
        let (hh, kvh, hd) = (c.heads, c.kv_heads, c.head_dim);
        let group = hh / kvh;
        let n = self.n.clone();
        let dn = |v: usize| Dim::c(v as i64);

        let h = self.rms_norm(w, &p("attn_norm"), x)?;
        let (wq, wk, wv) = (p("attn_q.weight"), p("attn_k.weight"), p("attn_v.weight"));
        let [hq, hk, hv] = self.projection_inputs(w, h, c.dim, [(&wq, hh * hd), (&wk, kvh * hd), (&wv, kvh * hd)])?;
        let q = self.linear(w, &p("attn_q"), hq, c.dim, hh * hd, c.qkv_bias)?;
        let k = self.linear(w, &p("attn_k"), hk, c.dim, kvh * hd, c.qkv_bias)?;
        let v = self.linear(w, &p("attn_v"), hv, c.dim, kvh * hd, c.qkv_bias)?;
        let q = self.reshape(&p("q_heads"), q, vec![n.clone(), dn(hh), dn(hd)])?;
        let k = self.reshape(&p("k_heads"), k, vec![n.clone(), dn(kvh), dn(hd)])?;
        let v = self.reshape(&p("v_heads"), v, vec![n.clone(), dn(kvh), dn(hd)])?;
        let q = self.rope(&p("q_rope"), q, cos, sin)?;
        let k = self.rope(&p("k_rope"), k, cos, sin)?;
        // An f16 cache stores the rounded keys and values; attention reads them back as f32.
        let (k, v) = if c.kv_cache == DType::F32 {
            (k, v)
        } else {
            (
                self.g.add(&p("k_store"), Op::Cast(c.kv_cache), &[k])?,
                self.g.add(&p("v_store"), Op::Cast(c.kv_cache), &[v])?,
            )
        };
        let cache_shape = vec![c.context, kvh, hd];
        let keys = self.g.add(
            &p("k_cache_append"),
            Op::StateAppend {
                state: format!("k_cache.{l}"),
                state_shape: cache_shape.clone(),
                offset: self.past.clone(),
            },
            &[k],
        )?;
        let values = self.g.add(
            &p("v_cache_append"),
            Op::StateAppend {
                state: format!("v_cache.{l}"),
                state_shape: cache_shape,
                offset: self.past.clone(),
            },
            &[v],
        )?;
        let (keys, values) = if c.kv_cache == DType::F32 {
            (keys, values)
        } else {
            (
                self.g.add(&p("keys_f32"), Op::Cast(DType::F32), &[keys])?,
                self.g.add(&p("values_f32"), Op::Cast(DType::F32), &[values])?,
            )
        };
        // Queries grouped by kv head: [n, KVH, G, hd] -> [KVH, G, n, hd] -> [KVH, G*n, hd].
        let gn = n.mul(&dn(group));
        let q = self.reshape(&p("q_groups"), q, vec![n.clone(), dn(kvh), dn(group), dn(hd)])?;
        let q = self.transpose(&p("q_by_kv_head"), q, vec![1, 2, 0, 3])?;
        let q = self.reshape(&p("q_rows"), q, vec![dn(kvh), gn.clone(), dn(hd)])?;
        let kt = self.transpose(&p("keys_t"), keys, vec![1, 2, 0])?; // [KVH, hd, T]
        let scores = self.g.add(&p("scores"), Op::MatMul, &[q, kt])?; // [KVH, G*n, T]
        let scale = self.scalar(&p("attn_scale"), 1.0 / (hd as f64).sqrt());
        let scores = self
            .g
            .add(&p("scores_scaled"), Op::Binary(BinaryOp::Mul), &[scores, scale])?;
        let scores = self.reshape(
            &p("scores_grouped"),
            scores,
            vec![dn(kvh), dn(group), n.clone(), total.clone()],
        )?;
        let scores = self
            .g
            .add(&p("scores_masked"), Op::Binary(BinaryOp::Add), &[scores, mask])?;
        let probs = self
            .g
            .add(&p("probs"), Op::Softmax { axis: 3, log: false }, &[scores])?;
        let probs = self.reshape(&p("probs_rows"), probs, vec![dn(kvh), gn, total.clone()])?;
        let vt = self.transpose(&p("values_by_head"), values, vec![1, 0, 2])?; // [KVH, T, hd]
        let o = self.g.add(&p("attn"), Op::MatMul, &[probs, vt])?; // [KVH, G*n, hd]
        let o = self.reshape(&p("attn_groups"), o, vec![dn(kvh), dn(group), n.clone(), dn(hd)])?;
        let o = self.transpose(&p("attn_by_token"), o, vec![2, 0, 1, 3])?;
        let o = self.reshape(&p("attn_rows"), o, vec![n.clone(), dn(hh * hd)])?;
        let o = self.linear(w, &p("attn_output"), o, hh * hd, c.dim, false)?;
        let x = self.g.add(&p("attn_residual"), Op::Binary(BinaryOp::Add), &[x, o])?;

        let h = self.rms_norm(w, &p("ffn_norm"), x)?;
        let (wg, wu) = (p("ffn_gate.weight"), p("ffn_up.weight"));
        let [hg, hu] = self.projection_inputs(w, h, c.dim, [(&wg, c.ffn), (&wu, c.ffn)])?;
        let gate = self.linear(w, &p("ffn_gate"), hg, c.dim, c.ffn, false)?;
        let up = self.linear(w, &p("ffn_up"), hu, c.dim, c.ffn, false)?;
        let sig = self.g.add(&p("ffn_sigmoid"), Op::Unary(UnaryOp::Sigmoid), &[gate])?;
        let silu = self.g.add(&p("ffn_silu"), Op::Binary(BinaryOp::Mul), &[gate, sig])?;
        let act = self.g.add(&p("ffn_swiglu"), Op::Binary(BinaryOp::Mul), &[silu, up])?;
        let wd = p("ffn_down.weight");
        // The down projection's input too: a decode step's gate/up GEMV rounds it as it
        // stores it (no quantizer dispatch; see `lower::anchor`).
        let [act] = self.projection_inputs(w, act, c.ffn, [(&wd, c.dim)])?;
        let down = self.linear(w, &p("ffn_down"), act, c.ffn, c.dim, false)?;
        Ok(self.g.add(&p("ffn_residual"), Op::Binary(BinaryOp::Add), &[x, down])?)
    }
}

/// Test access to the RoPE expression and tables.
#[cfg(test)]
pub(crate) struct TestBuilder<'a>(Builder<'a>);

#[cfg(test)]
impl<'a> TestBuilder<'a> {
    pub(crate) fn new(c: &'a LlamaConfig) -> TestBuilder<'a> {
        TestBuilder(Builder {
            g: Graph::new(),
            c,
            n: Dim::sym(N),
            past: Dim::sym(PAST),
        })
    }

    pub(crate) fn graph_mut(&mut self) -> &mut Graph {
        &mut self.0.g
    }

    pub(crate) fn rope_for_test(&mut self, x: NodeId, cos: NodeId, sin: NodeId) -> NodeId {
        self.0.rope("rope", x, cos, sin).unwrap()
    }
}

#[cfg(test)]
pub(crate) fn rope_tables_for_test(c: &LlamaConfig) -> (Tensor, Tensor) {
    rope_tables(c)
}
