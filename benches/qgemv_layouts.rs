//! Quantized GEMV weight layouts: an experiment that decides issue 8's next decode kernel before
//! it is built into the compiler.
//!
//! Kiln's decode GEMVs read q4_1 weights in GGUF's row-major layout (each row's 20-byte blocks in
//! a row), so the threads of a row split its K: every thread reads its own x values (6.4 bytes
//! of x per byte of weights through L1) and 4-byte weight words. Its f32 GEMV, whose threads
//! own columns and read x once per warp (a broadcast), streams at 87–90% of copy bandwidth on
//! the H200, the quantized one at about 30%. This bench times, on one q4_1 weight per shape,
//! with cold caches (a 256 MiB scratch buffer read before every timed run) and timestamp
//! queries:
//!
//! - `rowmajor`: the GGUF layout with K split inside a row (32 threads per row, 4 rows per
//!   workgroup, 8 values per thread per step): the structure of Kiln's kernel today;
//! - `blockcols S`: the same 20-byte blocks stored block-column-major (`[K/32][N]`: block j of
//!   every row, then block j + 1), one thread per row and whole blocks per step, x read by
//!   all threads of a warp at once; `S` threads split a row's K (64 rows per workgroup);
//! - `warp R rows, unroll U`: the GGUF layout, K split over the 32 threads of one subgroup per
//!   row, `R` rows per subgroup at once sharing x reads, partial sums added by `subgroupAdd`
//!   (no workgroup memory, no barrier), the K loop's trip count a constant unrolled `U` times;
//! - `x in registers, G rows`: the same, but each thread loads its x values once into
//!   registers and the subgroup then walks `G` rows (K ≤ 2048 only);
//! - `int8 x ...`: x quantized to 8 bits per 32 values (as llama.cpp's integer-dot GEMVs do)
//!   and dotted with the nibbles by `dot4I8Packed`; checked against the reference of the
//!   quantized x, with x's own rounding error printed beside it;
//! - `quantize x [(RMS norm)] + int8 x`: the same GEMV after a dispatch that quantizes x (one
//!   workgroup that first applies an RMS norm, or K / 2048 workgroups without it), both timed
//!   together: what int8 x costs a compiled decode step whose x is the previous kernel's f32
//!   output, unless that kernel writes x quantized itself;
//! - `read`: every byte of the weight read once with 16-byte loads (the ceiling);
//! - an empty dispatch first: the timing method's fixed cost, included in every figure.
//!
//! The eleventh session's run (docs/performance.md) also had a planar layout (quants and scales
//! in separate planes) and `blockcols` with 1–8 threads per row: all slower than `rowmajor`;
//! the twelfth session's had x quantized inside every GEMV workgroup (one thread per block into
//! workgroup memory): slower than `rowmajor` at every shape.
//! Subgroup kernels assume 32-wide subgroups (NVIDIA); on a CPU adapter they add through
//! workgroup memory instead, so their arithmetic is still checked there.
//!
//! Every kernel's result is checked against a CPU reference (f64) before it is timed.
//! `cargo bench --bench qgemv_layouts` (`KILN_ADAPTER=name` picks an adapter); on a CPU adapter
//! the shapes shrink. Not part of the test suite: it measures, it does not assert speed.

use kiln::runtime::wgpu;

#[path = "support/kernels.rs"]
mod kernels;
#[path = "support/timestamps.rs"]
mod timestamps;
use std::time::Duration;

/// Bytes read before each timed run, several times the largest last-level cache.
const SCRUB_BYTES: u64 = 256 << 20;
/// Timed runs per kernel (the median is reported).
const RUNS: usize = 7;

/// A q4_1 weight `[n, k]` as GGUF blocks: per 32 values an f16 scale `d`, an f16 minimum `m`
/// and 16 bytes of nibbles (value j in the low nibble of byte j for j < 16, in the high nibble
/// of byte j - 16 otherwise); value = d * q + m.
struct Weight {
    n: usize,
    k: usize,
    /// Row-major blocks, 5 words each.
    words: Vec<u32>,
}

impl Weight {
    fn random(n: usize, k: usize, seed: u64) -> Weight {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 32) as u32
        };
        let nb = k / 32;
        let mut words = Vec::with_capacity(n * nb * 5);
        for _ in 0..n * nb {
            let d = half::f16::from_f32(0.001 + (next() % 1000) as f32 * 1e-5);
            let m = half::f16::from_f32(-((next() % 1000) as f32) * 1e-4);
            words.push(u32::from(d.to_bits()) | (u32::from(m.to_bits()) << 16));
            for _ in 0..4 {
                words.push(next());
            }
        }
        Weight { n, k, words }
    }

    fn blocks(&self) -> usize {
        self.k / 32
    }

    /// Value `e` of row `r`.
    fn value(&self, r: usize, e: usize) -> f64 {
        let b = (r * self.blocks() + e / 32) * 5;
        let dm = self.words[b];
        let d = half::f16::from_bits(dm as u16).to_f64();
        let m = half::f16::from_bits((dm >> 16) as u16).to_f64();
        let j = e % 32;
        let byte = (self.words[b + 1 + (j % 16) / 4] >> (8 * (j % 4))) & 255;
        let q = if j < 16 { byte & 15 } else { byte >> 4 };
        d * f64::from(q) + m
    }

    /// The blocks reordered block-column-major: block j of every row, then block j + 1.
    fn block_columns(&self) -> Vec<u32> {
        let nb = self.blocks();
        let mut out = Vec::with_capacity(self.words.len());
        for j in 0..nb {
            for r in 0..self.n {
                let b = (r * nb + j) * 5;
                out.extend_from_slice(&self.words[b..b + 5]);
            }
        }
        out
    }
}

const COMMON: &str = r#"
struct P { n: u32, k: u32, nb: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn nib_lo(q: u32) -> vec4<f32> {
    return vec4<f32>(f32(q & 15u), f32((q >> 8u) & 15u), f32((q >> 16u) & 15u), f32((q >> 24u) & 15u));
}
"#;

/// GGUF row-major blocks, K split over the 32 threads of a row in parts of 8 values (one quant
/// word: values 4p.. in its low nibbles, 16 + 4p.. in its high ones).
const ROW_MAJOR: &str = r#"
var<workgroup> part: array<f32, 128>;

@compute @workgroup_size(32, 4, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let lk = lid.x;
    let row = wid.x * 4u + lid.y;
    var acc = 0.0;
    if (row < p.n) {
        let rb = row * p.nb * 5u;
        for (var u = lk; u < p.nb * 4u; u += 32u) {
            let kb = u >> 2u;
            let q_at = u & 3u;
            let wb = rb + kb * 5u;
            let dm = unpack2x16float(w[wb]);
            let q = w[wb + 1u + q_at];
            let xl = x[kb * 8u + q_at];
            let xh = x[kb * 8u + 4u + q_at];
            acc += dm.x * (dot(nib_lo(q), xl) + dot(nib_lo(q >> 4u), xh)) + dm.y * dot(xl + xh, vec4<f32>(1.0));
        }
    }
    part[lid.y * 32u + lk] = acc;
    workgroupBarrier();
    for (var s = 16u; s > 0u; s >>= 1u) {
        if (lk < s) {
            part[lid.y * 32u + lk] += part[lid.y * 32u + lk + s];
        }
        workgroupBarrier();
    }
    if (lk == 0u && row < p.n) {
        y[row] = part[lid.y * 32u];
    }
}
"#;

/// The dot product of block `kb` (scale word `dm`, quant words `q`) with x.
const BLOCK_DOT: &str = r#"
fn block_dot(dm_word: u32, q: vec4<u32>, kb: u32) -> f32 {
    let dm = unpack2x16float(dm_word);
    let b = kb * 8u;
    let x0 = x[b];
    let x1 = x[b + 1u];
    let x2 = x[b + 2u];
    let x3 = x[b + 3u];
    let x4 = x[b + 4u];
    let x5 = x[b + 5u];
    let x6 = x[b + 6u];
    let x7 = x[b + 7u];
    let s = dot(nib_lo(q.x), x0) + dot(nib_lo(q.y), x1) + dot(nib_lo(q.z), x2) + dot(nib_lo(q.w), x3)
        + dot(nib_lo(q.x >> 4u), x4) + dot(nib_lo(q.y >> 4u), x5) + dot(nib_lo(q.z >> 4u), x6) + dot(nib_lo(q.w >> 4u), x7);
    let sx = dot(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7, vec4<f32>(1.0));
    return dm.x * s + dm.y * sx;
}
"#;

/// Rows per workgroup of [`row_parallel`] with `s` threads per row (at most 256 threads).
fn rows_per_group(s: u32) -> u32 {
    (256 / s).min(64)
}

/// One thread per row (consecutive threads consecutive rows, [`rows_per_group`] rows per
/// workgroup), `s` threads splitting its blocks.
fn row_parallel(s: u32) -> String {
    let r = rows_per_group(s);
    let load = "let wb = (kb * p.n + row) * 5u;
            acc += block_dot(w[wb], vec4<u32>(w[wb + 1u], w[wb + 2u], w[wb + 3u], w[wb + 4u]), kb);";
    format!(
        r#"
var<workgroup> part: array<f32, {slots}>;

@compute @workgroup_size({r}, {s}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    let row = wid.x * {r}u + lid.x;
    var acc = 0.0;
    if (row < p.n) {{
        for (var kb = lid.y; kb < p.nb; kb += {s}u) {{
            {load}
        }}
    }}
    part[lid.y * {r}u + lid.x] = acc;
    workgroupBarrier();
    if (lid.y == 0u && row < p.n) {{
        var t = 0.0;
        for (var j = 0u; j < {s}u; j++) {{
            t += part[j * {r}u + lid.x];
        }}
        y[row] = t;
    }}
}}
"#,
        slots = r * s
    )
}

/// Reads every word of `w` once as vec4s (the words reinterpreted) and writes nothing unless
/// their XOR is a value random weights do not produce.
const READ: &str = r#"
@group(0) @binding(0) var<uniform> p: vec4<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    var acc = vec4<u32>(0u);
    for (var i = gid.x; i < arrayLength(&w); i += nw.x * 256u) {
        acc ^= w[i];
    }
    // `p` and `x` are read too, so the shader's bindings match the GEMVs' (and the scrub's).
    if (all(acc == vec4<u32>(0x12345678u)) || p.x == 0xffffffffu) {
        y[0] = acc.x + u32(x[0].x);
    }
}
"#;

/// GGUF row-major blocks, K split over the 32 threads of one subgroup per row (NVIDIA's
/// subgroups are 32 wide), 8 rows' subgroups per workgroup, each subgroup computing `r` rows at
/// once (the x values of a part read once for all of them), partial sums added by `subgroupAdd`
/// (no workgroup memory, no barrier); the K loop has a constant trip count and is unrolled `u`
/// times.
fn warp_rows(n: usize, k: usize, r: usize, u: usize) -> String {
    let nb = k / 32;
    let steps = nb * 4 / 32;
    let mut body = String::new();
    for j in 0..u {
        body += &format!(
            "            let kb{j} = (s + {off}u) >> 2u;
            let xl{j} = x[kb{j} * 8u + qa];
            let xh{j} = x[kb{j} * 8u + 4u + qa];
            let sx{j} = dot(xl{j} + xh{j}, vec4<f32>(1.0));\n",
            off = 32 * j
        );
        for i in 0..r {
            body += &format!(
                "            {{ let wb = rb{i} + kb{j} * 5u; let dm = unpack2x16float(w[wb]); let q = w[wb + 1u + qa];
              acc{i} += dm.x * (dot(nib_lo(q), xl{j}) + dot(nib_lo(q >> 4u), xh{j})) + dm.y * sx{j}; }}\n"
            );
        }
    }
    let mut decl = String::new();
    let mut tail = String::new();
    for i in 0..r {
        decl += &format!(
            "    let rb{i} = min(row0 + {i}u, {last}u) * {row_words}u;\n    var acc{i} = 0.0;\n",
            last = n - 1,
            row_words = nb * 5
        );
        tail += &format!(
            "    let t{i} = row_sum(acc{i}, lk, lid.y);\n    if (lk == 0u && row0 + {i}u < {n}u) {{ y[row0 + {i}u] = t{i}; }}\n"
        );
    }
    format!(
        r#"
@compute @workgroup_size(32, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    let lk = lid.x;
    let qa = lk & 3u;
    // The sizes are constants; `p` is read only so the bindings match the other kernels.
    if (p.pad == 0xffffffffu) {{ y[0] = 0.0; }}
    let row0 = (wid.x * 8u + lid.y) * {r}u;
{decl}    for (var s = lk; s < {end}u; s += {stride}u) {{
{body}    }}
{tail}}}
"#,
        end = steps * 32,
        stride = 32 * u
    )
}

/// Like [`warp_rows`] with one row at a time, but each thread first loads the x values of its
/// parts into registers (K / 256 parts of 8 values) and then walks `g` consecutive rows, so x is
/// read once per subgroup instead of once per row.
fn x_in_registers(n: usize, k: usize, g: usize) -> String {
    let nb = k / 32;
    let ppl = nb * 4 / 32;
    let mut pre = String::new();
    let mut dot = String::new();
    for j in 0..ppl {
        pre += &format!(
            "    let xl{j} = x[((lk >> 2u) + {o}u) * 8u + qa];
    let xh{j} = x[((lk >> 2u) + {o}u) * 8u + 4u + qa];
    let sx{j} = dot(xl{j} + xh{j}, vec4<f32>(1.0));\n",
            o = 8 * j
        );
        dot += &format!(
            "        {{ let wb = rb + ((lk >> 2u) + {o}u) * 5u; let dm = unpack2x16float(w[wb]); let q = w[wb + 1u + qa];
          acc += dm.x * (dot(nib_lo(q), xl{j}) + dot(nib_lo(q >> 4u), xh{j})) + dm.y * sx{j}; }}\n",
            o = 8 * j
        );
    }
    format!(
        r#"
@compute @workgroup_size(32, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    let lk = lid.x;
    let qa = lk & 3u;
    // The sizes are constants; `p` is read only so the bindings match the other kernels.
    if (p.pad == 0xffffffffu) {{ y[0] = 0.0; }}
    let row0 = (wid.x * 8u + lid.y) * {g}u;
{pre}    for (var g = 0u; g < {g}u; g++) {{
        let row = row0 + g;
        let rb = min(row, {last}u) * {row_words}u;
        var acc = 0.0;
{dot}        let t = row_sum(acc, lk, lid.y);
        if (lk == 0u && row < {n}u) {{ y[row] = t; }}
    }}
}}
"#,
        last = n - 1,
        row_words = nb * 5
    )
}

/// x quantized to 8 bits per 32 values (`xq`: 8 words of signed bytes per block, `xs`: the
/// block's scale and its scale times the sum of its bytes), dotted with the nibbles by
/// `dot4I8Packed` (an integer dot-product instruction where the device has one); otherwise
/// [`warp_rows`]'s structure, `r` rows per subgroup. With `regs`, x's words live in registers
/// and each subgroup walks `r` rows one after another instead.
fn int8_rows(n: usize, k: usize, r: usize, regs: bool) -> String {
    let nb = k / 32;
    let ppl = nb * 4 / 32;
    let mut pre = String::new();
    let mut body = String::new();
    let rows_at_once = if regs { 1 } else { r };
    for j in 0..ppl {
        let load = format!(
            "let kb{j} = (lk >> 2u) + {o}u; let xwl{j} = xq[kb{j} * 8u + qa]; let xwh{j} = xq[kb{j} * 8u + 4u + qa]; let xd{j} = xs[kb{j}];\n",
            o = 8 * j
        );
        if regs {
            pre += &format!("    {load}");
        } else {
            body += &format!("        {load}");
        }
        for i in 0..rows_at_once {
            body += &format!(
                "        {{ let wb = rb{i} + kb{j} * 5u; let dm = unpack2x16float(w[wb]); let q = w[wb + 1u + qa];
          let d = dot4I8Packed(q & 0x0f0f0f0fu, xwl{j}) + dot4I8Packed((q >> 4u) & 0x0f0f0f0fu, xwh{j});
          acc{i} += dm.x * xd{j}.x * f32(d) + select(0.0, dm.y * xd{j}.y, qa == 0u); }}\n"
            );
        }
    }
    let mut decl = String::new();
    let mut tail = String::new();
    for i in 0..rows_at_once {
        decl += &format!(
            "        let rb{i} = min(row0 + {i}u, {last}u) * {row_words}u;\n        var acc{i} = 0.0;\n",
            last = n - 1,
            row_words = nb * 5
        );
        tail += &format!(
            "        let t{i} = row_sum(acc{i}, lk, lid.y);\n        if (lk == 0u && row0 + {i}u < {n}u) {{ y[row0 + {i}u] = t{i}; }}\n"
        );
    }
    let (outer_open, outer_close, row0) = if regs {
        (
            format!("    for (var g = 0u; g < {r}u; g++) {{\n"),
            "    }\n",
            "first + g",
        )
    } else {
        ("    {\n".to_string(), "    }\n", "first")
    };
    format!(
        r#"
@group(0) @binding(4) var<storage, read> xq: array<u32>;
@group(0) @binding(5) var<storage, read> xs: array<vec2<f32>>;

@compute @workgroup_size(32, 8, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    let lk = lid.x;
    let qa = lk & 3u;
    // The sizes are constants; `p` is read only so the bindings match the other kernels.
    if (p.pad == 0xffffffffu) {{ y[0] = 0.0; }}
    let first = (wid.x * 8u + lid.y) * {r}u;
    // x (f32) stays bound so the bindings match the other kernels.
    if (x[0].x == 12345.0) {{ y[0] = 0.0; }}
{pre}{outer_open}        let row0 = {row0};
{decl}{body}{tail}{outer_close}}}
"#
    )
}

/// A dispatch that quantizes x for [`int8_rows`] before it: 4 threads per block of 32 (8
/// values each, the block's maximum and byte sum shared by subgroup shuffles), writing the
/// signed bytes and (scale, scale times the byte sum). With `norm`, one workgroup first takes
/// x's sum of squares and quantizes x / rms (a fused RMS norm, unit scale), as the decode
/// step's QKV and gate/up GEMVs would need; without, K / 2048 workgroups (the down GEMV's
/// input). Timed together with the GEMV that reads its output: the cost of the extra dispatch
/// is part of the figure.
fn quantize_x_kernel(k: usize, norm: bool) -> String {
    let quarters = k / 8;
    let (stride, ss) = if norm {
        (
            "256u".to_string(),
            format!(
                "    var ss = 0.0;
    for (var j = t; j < {quarters}u; j += 256u) {{ let a = x[2u * j]; let b = x[2u * j + 1u]; ss += dot(a, a) + dot(b, b); }}
    ss = subgroupAdd(ss);
    if (sl == 0u) {{ parts[t / sn] = ss; }}
    workgroupBarrier();
    var tot = 0.0;
    for (var i = 0u; i < 256u / sn; i++) {{ tot += parts[i]; }}
    scale = inverseSqrt(tot / {k}.0 + 1e-5);
"
            ),
        )
    } else {
        ("256u * nw.x".to_string(), String::new())
    };
    format!(
        r#"
struct P {{ n: u32, k: u32, nb: u32, pad: u32 }}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> xs: array<vec2<f32>>;
var<workgroup> parts: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) t: u32,
        @builtin(num_workgroups) nw: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32,
        @builtin(subgroup_size) sn: u32) {{
    if (p.pad == 0xffffffffu) {{ parts[0] = 1.0; }}
    var scale = 1.0;
{ss}    for (var j = gid.x; j < {quarters}u; j += {stride}) {{
        let a = x[2u * j] * scale;
        let b = x[2u * j + 1u] * scale;
        let ma = max(abs(a), abs(b));
        var m = max(max(ma.x, ma.y), max(ma.z, ma.w));
        m = max(m, subgroupShuffleXor(m, 1u));
        m = max(m, subgroupShuffleXor(m, 2u));
        let d = m / 127.0;
        let id = select(0.0, 1.0 / d, d > 0.0);
        let qa = vec4<i32>(round(a * id));
        let qb = vec4<i32>(round(b * id));
        xq[2u * j] = pack4xI8(qa);
        xq[2u * j + 1u] = pack4xI8(qb);
        var sum = dot(vec4<f32>(qa + qb), vec4<f32>(1.0));
        sum += subgroupShuffleXor(sum, 1u);
        sum += subgroupShuffleXor(sum, 2u);
        if ((j & 3u) == 0u) {{ xs[j >> 2u] = vec2<f32>(d, d * sum); }}
    }}
}}
"#
    )
}

/// The sum over a row's 32 threads (`lk`, of subgroup row `ly`): `subgroupAdd` where subgroups
/// are 32 wide (NVIDIA), else through workgroup memory, so that a CPU adapter checks the
/// kernels' arithmetic.
fn row_sum(subgroups32: bool) -> &'static str {
    if subgroups32 {
        "fn row_sum(v: f32, lk: u32, ly: u32) -> f32 { return subgroupAdd(v); }\n"
    } else {
        "var<workgroup> red: array<f32, 256>;
fn row_sum(v: f32, lk: u32, ly: u32) -> f32 {
    red[ly * 32u + lk] = v;
    workgroupBarrier();
    var t = 0.0;
    for (var i = 0u; i < 32u; i++) { t += red[ly * 32u + i]; }
    workgroupBarrier();
    return t;
}
"
    }
}

/// An empty dispatch of one workgroup: the timing method's fixed cost.
const EMPTY: &str = r#"
@compute @workgroup_size(32, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    if (p.n == 0xffffffffu) { y[lid.x] = x[0].x + f32(w[0]); }
}
"#;

/// x quantized per 32 values as [`int8_rows`] reads it: signed bytes, scale, scale times sum.
fn quantize_x(xs: &[f32]) -> (Vec<u32>, Vec<f32>, Vec<f64>) {
    let mut words = Vec::new();
    let mut scales = Vec::new();
    let mut deq = Vec::new();
    for block in xs.chunks(32) {
        let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let q: Vec<i8> = block.iter().map(|v| (v * id).round() as i8).collect();
        for c in q.chunks(4) {
            words.push(u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]));
        }
        let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
        scales.push(d);
        scales.push(d * sum as f32);
        deq.extend(q.iter().map(|&v| f64::from(v) * f64::from(d)));
    }
    (words, scales, deq)
}

struct Gpu {
    /// Whether the subgroup kernels can run (they assume 32-wide subgroups and say so when
    /// their check fails).
    subgroups: bool,
    device: wgpu::Device,
    queue: wgpu::Queue,
    name: String,
    cpu: bool,
    scrub: (wgpu::ComputePipeline, Vec<wgpu::BindGroup>),
}

fn storage(device: &wgpu::Device, words: &[u32], label: &str) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(words),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_SRC,
    })
}

use kernels::{bind, pipeline};

impl Gpu {
    fn new() -> Gpu {
        let instance = wgpu::Instance::default();
        let filter = std::env::var("KILN_ADAPTER").ok();
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        let adapter = adapters
            .into_iter()
            .filter(|a| {
                let info = a.get_info();
                filter.as_ref().is_none_or(|f| info.name.contains(f.as_str()))
                    && a.features().contains(wgpu::Features::TIMESTAMP_QUERY)
            })
            .max_by_key(|a| a.get_info().device_type != wgpu::DeviceType::Cpu)
            .expect("an adapter with timestamp queries");
        let info = adapter.get_info();
        let mut limits = wgpu::Limits::default();
        limits.max_storage_buffer_binding_size = adapter.limits().max_storage_buffer_binding_size;
        limits.max_buffer_size = adapter.limits().max_buffer_size;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: None,
            required_features: wgpu::Features::TIMESTAMP_QUERY | (adapter.features() & wgpu::Features::SUBGROUP),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .expect("a device");
        let chunk = (limits.max_storage_buffer_binding_size.min(SCRUB_BYTES)) & !255;
        let scrub_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scrub"),
            size: SCRUB_BYTES / chunk * chunk,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let sink = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sink"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let params = storage(&device, &[0; 4], "params");
        let empty = storage(&device, &[0; 4], "empty");
        let scrub_pipe = pipeline(&device, READ);
        let groups = (0..SCRUB_BYTES / chunk)
            .map(|i| {
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &scrub_pipe.get_bind_group_layout(0),
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: params.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: empty.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &scrub_buf,
                                offset: i * chunk,
                                size: wgpu::BufferSize::new(chunk),
                            }),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: sink.as_entire_binding(),
                        },
                    ],
                })
            })
            .collect();
        Gpu {
            subgroups: device.features().contains(wgpu::Features::SUBGROUP),
            device,
            queue,
            name: info.name,
            cpu: info.device_type == wgpu::DeviceType::Cpu,
            scrub: (scrub_pipe, groups),
        }
    }

    /// The median GPU time of `RUNS` cold runs of one dispatch.
    fn time(&self, p: &wgpu::ComputePipeline, bg: &wgpu::BindGroup, groups: [u32; 3]) -> Duration {
        self.time_seq(&[(p, bg, groups)])
    }

    /// The median GPU time of `RUNS` cold runs of dispatches in one pass (one after another).
    fn time_seq(&self, seq: &[Dispatch]) -> Duration {
        let (set, resolve) = timestamps::pass_timestamps(&self.device);
        let read = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let period = f64::from(self.queue.get_timestamp_period());
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.scrub.0);
                for g in &self.scrub.1 {
                    pass.set_bind_group(0, g, &[]);
                    pass.dispatch_workgroups(1024, 1, 1);
                }
            }
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &set,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    }),
                });
                for (p, bg, groups) in seq {
                    pass.set_pipeline(p);
                    pass.set_bind_group(0, *bg, &[]);
                    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                }
            }
            enc.resolve_query_set(&set, 0..2, &resolve, 0);
            enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, 16);
            self.queue.submit([enc.finish()]);
            read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
            self.device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
            let ticks: Vec<u64> = bytemuck::cast_slice(&read.slice(..).get_mapped_range().expect("mapped")).to_vec();
            read.unmap();
            times.push(Duration::from_nanos(
                (ticks[1].saturating_sub(ticks[0]) as f64 * period) as u64,
            ));
        }
        times.sort();
        times[times.len() / 2]
    }

    /// Runs dispatches in one pass and reads `y` back.
    fn run(&self, seq: &[Dispatch], y: &wgpu::Buffer) -> Vec<f32> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for (p, bg, groups) in seq {
                pass.set_pipeline(p);
                pass.set_bind_group(0, *bg, &[]);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            }
        }
        let bytes = kernels::read_back(&self.device, &self.queue, enc, &[y]);
        bytemuck::pod_collect_to_vec(&bytes[0])
    }
}

/// One kernel to check and time: name, WGSL, weight buffer, workgroups, whether it reads the
/// 8-bit x, whether it needs subgroups, and a dispatch before it that quantizes x (its WGSL,
/// workgroups, whether it applies the RMS norm).
type Case<'a> = (
    String,
    String,
    &'a wgpu::Buffer,
    [u32; 3],
    bool,
    bool,
    Option<(String, [u32; 3], bool)>,
);

/// A pipeline, its bindings and its workgroup counts.
type Dispatch<'a> = (&'a wgpu::ComputePipeline, &'a wgpu::BindGroup, [u32; 3]);

fn main() {
    let gpu = Gpu::new();
    println!("adapter: {} (subgroups: {})", gpu.name, gpu.subgroups);
    // SmolLM2-1.7B's decode products (QKV, O, gate or up, gate and up, down) and a 4096² one;
    // small on a CPU.
    let shapes: &[(usize, usize)] = if gpu.cpu {
        &[(256, 512), (96, 1024), (64, 2048)]
    } else {
        &[
            (6144, 2048),
            (2048, 2048),
            (8192, 2048),
            (16384, 2048),
            (2048, 8192),
            (4096, 4096),
        ]
    };
    {
        let p = pipeline(&gpu.device, &format!("{COMMON}{EMPTY}"));
        let b = storage(&gpu.device, &[0; 4], "b");
        let y = storage(&gpu.device, &[0; 64], "y");
        let bg = bind(&gpu.device, &p, &[&b, &b, &b, &y]);
        let t = gpu.time(&p, &bg, [1, 1, 1]);
        println!(
            "empty dispatch (the timing's fixed cost): {:.1} us",
            t.as_secs_f64() * 1e6
        );
    }
    println!("| N x K | MB | kernel | us | GB/s | max rel. error |");
    println!("| --- | ---: | --- | ---: | ---: | ---: |");
    for &(n, k) in shapes {
        let w = Weight::random(n, k, (n * 31 + k) as u64);
        // Irregular values in [-1, 1): quantizing multiples of a common step would put many
        // values exactly halfway between two bytes, where the GPU's and the reference's
        // rounding of the same product may differ.
        let xs: Vec<f32> = (0..k).map(|i| (i as f32 * 0.7).sin() * 0.999).collect();
        let reference = |xv: &dyn Fn(usize) -> f64| -> Vec<f64> {
            (0..n).map(|r| (0..k).map(|e| w.value(r, e) * xv(e)).sum()).collect()
        };
        let want = reference(&|e| f64::from(xs[e]));
        let (xq_words, xq_scales, xq_deq) = quantize_x(&xs);
        let want8 = reference(&|e| xq_deq[e]);
        // x / rms(x) (unit scale, epsilon 1e-5), as the norm-applying quantize dispatch sees it.
        let inv = 1.0 / (xs.iter().map(|v| v * v).sum::<f32>() / k as f32 + 1e-5).sqrt();
        let xn: Vec<f32> = xs.iter().map(|v| v * inv).collect();
        let wantn = reference(&|e| f64::from(xn[e]));
        let xn_deq = quantize_x(&xn).2;
        let want8n = reference(&|e| xn_deq[e]);
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-30);
        let bytes = (w.words.len() * 4) as f64;
        let params = storage(&gpu.device, &[n as u32, k as u32, (k / 32) as u32, 0], "params");
        let x = storage(&gpu.device, bytemuck::cast_slice::<f32, u32>(&xs), "x");
        let xq = storage(&gpu.device, &xq_words, "xq");
        let xsc = storage(&gpu.device, bytemuck::cast_slice::<f32, u32>(&xq_scales), "xs");
        let y = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("y"),
            size: (n * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let row_major = storage(&gpu.device, &w.words, "row-major");
        let block_cols = storage(&gpu.device, &w.block_columns(), "block columns");
        let mut cases: Vec<Case> = vec![(
            "rowmajor".into(),
            format!("{COMMON}{ROW_MAJOR}"),
            &row_major,
            [(n as u32).div_ceil(4), 1, 1],
            false,
            false,
            None,
        )];
        let s = 16u32;
        cases.push((
            format!("blockcols {s}"),
            format!("{COMMON}{BLOCK_DOT}{}", row_parallel(s)),
            &block_cols,
            [(n as u32).div_ceil(rows_per_group(s)), 1, 1],
            false,
            false,
            None,
        ));
        let steps = k / 256;
        for (r, u) in [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (4, 1)] {
            if steps % u != 0 || n % (8 * r) != 0 {
                continue;
            }
            cases.push((
                format!("warp {r} rows, unroll {u}"),
                format!("{COMMON}{}", warp_rows(n, k, r, u)),
                &row_major,
                [(n / (8 * r)) as u32, 1, 1],
                false,
                true,
                None,
            ));
        }
        if steps <= 8 {
            for g in [2, 4, 8] {
                cases.push((
                    format!("x in registers, {g} rows"),
                    format!("{COMMON}{}", x_in_registers(n, k, g)),
                    &row_major,
                    [(n / (8 * g)) as u32, 1, 1],
                    false,
                    true,
                    None,
                ));
            }
        }
        for r in [1, 2] {
            cases.push((
                format!("int8 x, {r} rows"),
                format!("{COMMON}{}", int8_rows(n, k, r, false)),
                &row_major,
                [(n / (8 * r)) as u32, 1, 1],
                true,
                true,
                None,
            ));
        }
        for norm in [true, false] {
            // The norm variant's single workgroup walks all of x: only where x is short.
            let groups = if norm { 1 } else { (k / 8).div_ceil(256) as u32 };
            cases.push((
                format!("quantize x{} + int8 x, 1 rows", if norm { " (RMS norm)" } else { "" }),
                format!("{COMMON}{}", int8_rows(n, k, 1, false)),
                &row_major,
                [(n / 8) as u32, 1, 1],
                true,
                true,
                Some((quantize_x_kernel(k, norm), [groups, 1, 1], norm)),
            ));
        }
        for g in [2, 4] {
            cases.push((
                format!("int8 x in registers, {g} rows"),
                format!("{COMMON}{}", int8_rows(n, k, g, true)),
                &row_major,
                [(n / (8 * g)) as u32, 1, 1],
                true,
                true,
                None,
            ));
        }
        for (name, src, weights, groups, int8, sg, prelude) in cases {
            if sg && !gpu.subgroups && !gpu.cpu {
                continue;
            }
            let src = if sg { format!("{}{src}", row_sum(!gpu.cpu)) } else { src };
            let p = pipeline(&gpu.device, &src);
            let bg = if int8 {
                bind(&gpu.device, &p, &[&params, &x, weights, &y, &xq, &xsc])
            } else {
                bind(&gpu.device, &p, &[&params, &x, weights, &y])
            };
            let pre = prelude.as_ref().map(|(src, groups, norm)| {
                let p = pipeline(&gpu.device, src);
                let bg = bind(&gpu.device, &p, &[&params, &x, &xq, &xsc]);
                (p, bg, *groups, *norm)
            });
            let mut seq: Vec<Dispatch> = Vec::new();
            if let Some((p, bg, groups, _)) = &pre {
                seq.push((p, bg, *groups));
            }
            seq.push((&p, &bg, groups));
            let got = gpu.run(&seq, &y);
            let normed = matches!(pre, Some((.., true)));
            let (exact, plain) = match (int8, normed) {
                (true, true) => (&want8n, &wantn),
                (true, false) => (&want8, &want),
                _ => (&want, &want),
            };
            let rel = |against: &[f64]| {
                got.iter()
                    .zip(against)
                    .map(|(g, w)| (f64::from(*g) - w).abs() / scale)
                    .fold(0.0, f64::max)
            };
            let err = rel(exact);
            if err >= 1e-4 {
                // The subgroup kernels assume 32-wide subgroups; anything else sums wrongly.
                assert!(sg, "{name} {n}x{k}: max error {err:e} of the largest output");
                println!("| {n} x {k} | | {name} | wrong (max error {err:.1e}; subgroups not 32 wide?) | | |");
                continue;
            }
            let t = gpu.time_seq(&seq);
            let note = if int8 {
                format!(" (x's own rounding: {:.1e})", rel(plain))
            } else {
                String::new()
            };
            println!(
                "| {n} x {k} | {:.1} | {name} | {:.1} | {:.0} | {err:.1e}{note} |",
                bytes / 1e6,
                t.as_secs_f64() * 1e6,
                bytes / t.as_secs_f64() / 1e9
            );
        }
        let p = pipeline(&gpu.device, READ);
        let sink = storage(&gpu.device, &[0; 4], "sink");
        let bg = bind(&gpu.device, &p, &[&params, &x, &row_major, &sink]);
        let t = gpu.time(&p, &bg, [1024, 1, 1]);
        println!(
            "| {n} x {k} | {:.1} | read | {:.1} | {:.0} | |",
            bytes / 1e6,
            t.as_secs_f64() * 1e6,
            bytes / t.as_secs_f64() / 1e9
        );
    }
}
