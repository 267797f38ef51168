{#- Decoding of GGUF block types from the packed weight binding `in1` (array<u32>, the file's
    bytes as little-endian words, GGUF's block order or block-column-major: block `kb` of row `r`
    at byte `r * row_stride + kb * block_stride`). `quant_fns(block, row_bytes, block_elems,
    block_bytes, parts, row_stride, block_stride)` emits:
      kiln_qdot(bb, xo, p)  part p (of `parts`) of the dot product of the block at byte `bb`
                            with in0[xo ..] (GEMV), and
      kiln_qget(row, e)  element `e` of weight row `row`, and
      kiln_qget4(row, e) elements `e .. e + 4` (`e` a multiple of 4; one word of quants
                            decoded at once, the tiled GEMM's tile loads).
    With `dot=false` (a kernel whose `in0` is not an f32 activation, the packed-table gather)
    the dot-product helpers `kiln_x4` and `kiln_qdot` are left out. With `xvec=true` (`in0`
    bound as vec4<f32>, only for blocks of 32 or more values, whose dot products read `in0` only
    through `kiln_x4` at multiples of 4) `kiln_x4` is one vector load. With `norm=true` (the
    GEMV's fused RMS norm, rows of `row_elems` values, the scale bound as `in2`) `kiln_x4`
    returns x times the scale and adds x's squares to the private `kiln_ss`. With `xshare=true`
    (q4_0, q4_1 and q8_0 only: a GEMV lane computing several rows of W) the dot product is
    split into `kiln_qx(xo, p)` (part p's 8 x values, read once) and `kiln_qdotx(bb, p, x)`
    (their dot product with the part of the block at byte `bb`), so each row reuses the x
    values in registers. With `xq8=true` (q4_0, q4_1 and q8_0 only; implies the split) `in0` is an
    activation stored as 8-bit integer blocks (`Q8_BLOCK_WORDS` = 10 words per 32 values: the
    scale d, d times the integers' sum, 32 signed bytes), `kiln_qx` returns part p's two words of
    bytes with the block's d and sum, and `kiln_qdotx` dots them with the weight's integers by
    `dot4I8Packed`; `kiln_x4` and `kiln_qdot` are left out. `xsrc` names the array the blocks
    are read from (`in0`, or the GEMV's workgroup copy when it rounds x itself).
    Block layouts are documented in ir/src/quant.rs. Block sizes are even, so every f16 lies
    inside one word and a 4-byte read starts at a word or half-word boundary. -#}
{% macro quant_fns(block, row_bytes, block_elems, block_bytes, parts, row_stride, block_stride, dot=true, xvec=false, norm=false, row_elems=0, xshare=false, xq8=false, xsrc="in0") -%}
fn kiln_wbyte(b: u32) -> u32 {
    return (in1[b >> 2u] >> ((b & 3u) * 8u)) & 255u;
}

fn kiln_wword(b: u32) -> u32 {
{%- if block_bytes % 4 == 0 and row_stride % 4 == 0 and block_stride % 4 == 0 %}
    // Blocks and rows are whole words, so every 4-byte read this block type makes is aligned.
    return in1[b >> 2u];
{%- else %}
    let i = b >> 2u;
    let s = (b & 3u) * 8u;
    if (s == 0u) {
        return in1[i];
    }
    return (in1[i] >> s) | (in1[i + 1u] << (32u - s));
{%- endif %}
}

fn kiln_wf16(b: u32) -> f32 {
    return unpack2x16float(in1[b >> 2u] >> ((b & 2u) * 8u)).x;
}

{%- if dot and not xq8 %}

{%- if norm %}

// The fused RMS norm's running sum of squares of the x values this thread has read.
var<private> kiln_ss: f32;
{%- endif %}

fn kiln_x4(i: u32) -> vec4<f32> {
{%- if norm %}
{%- if xvec %}
    let v = in0[i >> 2u];
{%- else %}
    let v = vec4<f32>(in0[i], in0[i + 1u], in0[i + 2u], in0[i + 3u]);
{%- endif %}
    // Every x value of the row is read exactly once by one of its threads (the parts of a
    // block cover disjoint values), so the threads' sums add up to the row's sum of squares.
    kiln_ss += dot(v, v);
{%- if xvec %}
    return v * in2[(i % {{ row_elems }}u) >> 2u];
{%- else %}
    let g = i % {{ row_elems }}u;
    return v * vec4<f32>(in2[g], in2[g + 1u], in2[g + 2u], in2[g + 3u]);
{%- endif %}
{%- elif xvec %}
    // `in0` is bound as vec4s and every `i` here is a multiple of 4: one 16-byte load.
    return in0[i >> 2u];
{%- else %}
    return vec4<f32>(in0[i], in0[i + 1u], in0[i + 2u], in0[i + 3u]);
{%- endif %}
}
{%- endif %}

fn kiln_nib_lo(q: u32) -> vec4<f32> {
    return vec4<f32>(f32(q & 15u), f32((q >> 8u) & 15u), f32((q >> 16u) & 15u), f32((q >> 24u) & 15u));
}

fn kiln_nib_hi(q: u32) -> vec4<f32> {
    return kiln_nib_lo(q >> 4u);
}

fn kiln_ubytes(q: u32) -> vec4<f32> {
    return vec4<f32>(f32(q & 255u), f32((q >> 8u) & 255u), f32((q >> 16u) & 255u), f32(q >> 24u));
}

fn kiln_sbytes(q: u32) -> vec4<f32> {
    let v = bitcast<vec4<i32>>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u);
    return vec4<f32>(v);
}
{%- if block == "q4_K" %}

// Sub-block j's 6-bit scale (x) and min (y) of the 12 packed bytes at byte `s`.
fn kiln_q4k_sm(s: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(kiln_wbyte(s + j) & 63u), f32(kiln_wbyte(s + j + 4u) & 63u));
    }
    let hi = kiln_wbyte(s + j + 4u);
    let sc = (hi & 15u) | ((kiln_wbyte(s + j - 4u) >> 6u) << 4u);
    let mn = (hi >> 4u) | ((kiln_wbyte(s + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}
{%- endif %}

{%- if dot and not xq8 %}

// Part `p` (of {{ parts }}) of the dot product of the block at byte `bb` with in0[xo ..]: the
// GEMV's unit of work, so that short rows still spread over many threads and consecutive
// threads read consecutive words of a block.
fn kiln_qdot(bb: u32, xo: u32, p: u32) -> f32 {
{%- if block == "f32" %}
    return bitcast<f32>(in1[bb >> 2u]) * in0[xo];
{%- elif block == "f16" %}
    return kiln_wf16(bb) * in0[xo];
{%- elif block == "bf16" %}
    return bitcast<f32>(((in1[bb >> 2u] >> ((bb & 2u) * 8u)) & 65535u) << 16u) * in0[xo];
{%- elif block == "q4_0" %}
    // Word p of the 16 value bytes: elements 4p.. (low nibbles) and 16 + 4p.. (high).
    let q = kiln_wword(bb + 2u + 4u * p);
    let s = dot(kiln_nib_lo(q) - 8.0, kiln_x4(xo + 4u * p)) + dot(kiln_nib_hi(q) - 8.0, kiln_x4(xo + 16u + 4u * p));
    return kiln_wf16(bb) * s;
{%- elif block == "q4_1" %}
    let dm = unpack2x16float(kiln_wword(bb));
    let q = kiln_wword(bb + 4u + 4u * p);
    let xl = kiln_x4(xo + 4u * p);
    let xh = kiln_x4(xo + 16u + 4u * p);
    let s = dot(kiln_nib_lo(q), xl) + dot(kiln_nib_hi(q), xh);
    return dm.x * s + dm.y * dot(xl + xh, vec4<f32>(1.0));
{%- elif block == "q8_0" %}
    // Words 2p and 2p + 1 of the 32 value bytes.
    let s = dot(kiln_sbytes(kiln_wword(bb + 2u + 8u * p)), kiln_x4(xo + 8u * p))
        + dot(kiln_sbytes(kiln_wword(bb + 6u + 8u * p)), kiln_x4(xo + 8u * p + 4u));
    return kiln_wf16(bb) * s;
{%- elif block == "q4_K" %}
    // Chunk p of 64 values: sub-block 2p in the low nibbles of 32 bytes, 2p + 1 in the high.
    let dm = unpack2x16float(kiln_wword(bb));
    let sm0 = kiln_q4k_sm(bb + 4u, 2u * p);
    let sm1 = kiln_q4k_sm(bb + 4u, 2u * p + 1u);
    var s0 = 0.0;
    var x0 = 0.0;
    var s1 = 0.0;
    var x1 = 0.0;
    for (var w = 0u; w < 8u; w++) {
        let q = kiln_wword(bb + 16u + 32u * p + 4u * w);
        let xl = kiln_x4(xo + 64u * p + 4u * w);
        let xh = kiln_x4(xo + 64u * p + 32u + 4u * w);
        s0 += dot(kiln_nib_lo(q), xl);
        x0 += dot(xl, vec4<f32>(1.0));
        s1 += dot(kiln_nib_hi(q), xh);
        x1 += dot(xh, vec4<f32>(1.0));
    }
    return dm.x * (sm0.x * s0 + sm1.x * s1) - dm.y * (sm0.y * x0 + sm1.y * x1);
{%- elif block == "q6_K" %}
    // Values 128h + 32r .. + 32 (p = 4h + r): low nibbles from ql, high bits from qh.
    let h = p >> 2u;
    let r = p & 3u;
    var s = 0.0;
    for (var w = 0u; w < 8u; w++) {
        let lo = (kiln_wword(bb + 64u * h + 32u * (r & 1u) + 4u * w) >> (4u * (r >> 1u))) & 0x0f0f0f0fu;
        let hi = (kiln_wword(bb + 128u + 32u * h + 4u * w) >> (2u * r)) & 0x03030303u;
        let qq = kiln_ubytes(lo | (hi << 4u)) - 32.0;
        let sc = f32(bitcast<i32>(kiln_wbyte(bb + 192u + 8u * h + w / 4u + 2u * r) << 24u) >> 24u);
        s += sc * dot(qq, kiln_x4(xo + 128u * h + 32u * r + 4u * w));
    }
    return kiln_wf16(bb + 208u) * s;
{%- endif %}
}
{%- endif %}
{%- if dot and xq8 %}

// Part `p`'s two words of x's bytes (x, y; q4: values 4p.. and 16 + 4p.., q8_0: 8p..) and its
// block's scale and scaled integer sum (z, w as f32 bits), from the block of value `xo`.
fn kiln_qx(xo: u32, p: u32) -> vec4<u32> {
    let b = (xo / 32u) * 10u;
{%- if block == "q8_0" %}
    return vec4<u32>({{ xsrc }}[b + 2u + 2u * p], {{ xsrc }}[b + 3u + 2u * p], {{ xsrc }}[b], {{ xsrc }}[b + 1u]);
{%- else %}
    return vec4<u32>({{ xsrc }}[b + 2u + p], {{ xsrc }}[b + 6u + p], {{ xsrc }}[b], {{ xsrc }}[b + 1u]);
{%- endif %}
}

// Part `p` of the block at byte `bb` dotted with x's integers (`kiln_qx`); a block's constant
// term (q4_0's -8, q4_1's minimum, times x's integer sum) is added by part 0.
fn kiln_qdotx(bb: u32, p: u32, x: vec4<u32>) -> f32 {
    let dx = bitcast<f32>(x.z);
{%- if block == "q4_0" %}
    let q = kiln_wword(bb + 2u + 4u * p);
    let i = dot4I8Packed(q & 0x0f0f0f0fu, x.x) + dot4I8Packed((q >> 4u) & 0x0f0f0f0fu, x.y);
    return kiln_wf16(bb) * (dx * f32(i) - select(0.0, 8.0 * bitcast<f32>(x.w), p == 0u));
{%- elif block == "q4_1" %}
    let dm = unpack2x16float(kiln_wword(bb));
    let q = kiln_wword(bb + 4u + 4u * p);
    let i = dot4I8Packed(q & 0x0f0f0f0fu, x.x) + dot4I8Packed((q >> 4u) & 0x0f0f0f0fu, x.y);
    return dm.x * dx * f32(i) + select(0.0, dm.y * bitcast<f32>(x.w), p == 0u);
{%- elif block == "q8_0" %}
    let i = dot4I8Packed(kiln_wword(bb + 2u + 8u * p), x.x) + dot4I8Packed(kiln_wword(bb + 6u + 8u * p), x.y);
    return kiln_wf16(bb) * dx * f32(i);
{%- endif %}
}
{%- elif dot and xshare %}

// The 8 x values part `p` of a block dots with (in0[xo ..] for the block's first value), as
// two vec4s: read once per part and shared by the rows a lane computes.
fn kiln_qx(xo: u32, p: u32) -> mat2x4<f32> {
{%- if block == "q8_0" %}
    return mat2x4<f32>(kiln_x4(xo + 8u * p), kiln_x4(xo + 8u * p + 4u));
{%- else %}
    return mat2x4<f32>(kiln_x4(xo + 4u * p), kiln_x4(xo + 16u + 4u * p));
{%- endif %}
}

// `kiln_qdot` with part `p`'s x values given (`kiln_qx`).
fn kiln_qdotx(bb: u32, p: u32, x: mat2x4<f32>) -> f32 {
{%- if block == "q4_0" %}
    let q = kiln_wword(bb + 2u + 4u * p);
    return kiln_wf16(bb) * (dot(kiln_nib_lo(q) - 8.0, x[0]) + dot(kiln_nib_hi(q) - 8.0, x[1]));
{%- elif block == "q4_1" %}
    let dm = unpack2x16float(kiln_wword(bb));
    let q = kiln_wword(bb + 4u + 4u * p);
    let s = dot(kiln_nib_lo(q), x[0]) + dot(kiln_nib_hi(q), x[1]);
    return dm.x * s + dm.y * dot(x[0] + x[1], vec4<f32>(1.0));
{%- elif block == "q8_0" %}
    let s = dot(kiln_sbytes(kiln_wword(bb + 2u + 8u * p)), x[0]) + dot(kiln_sbytes(kiln_wword(bb + 6u + 8u * p)), x[1]);
    return kiln_wf16(bb) * s;
{%- endif %}
}
{%- endif %}

fn kiln_qget(row: u32, e: u32) -> f32 {
    let bb = row * {{ row_stride }}u + (e / {{ block_elems }}u) * {{ block_stride }}u;
{%- if block == "f32" %}
    return bitcast<f32>(in1[bb >> 2u]);
{%- elif block == "f16" %}
    return kiln_wf16(bb);
{%- elif block == "bf16" %}
    return bitcast<f32>(((in1[bb >> 2u] >> ((bb & 2u) * 8u)) & 65535u) << 16u);
{%- elif block == "q4_0" %}
    let j = e % 32u;
    let q = (kiln_wbyte(bb + 2u + (j & 15u)) >> (4u * (j >> 4u))) & 15u;
    return kiln_wf16(bb) * (f32(q) - 8.0);
{%- elif block == "q4_1" %}
    let j = e % 32u;
    let q = (kiln_wbyte(bb + 4u + (j & 15u)) >> (4u * (j >> 4u))) & 15u;
    let dm = unpack2x16float(kiln_wword(bb));
    return dm.x * f32(q) + dm.y;
{%- elif block == "q8_0" %}
    let j = e % 32u;
    return kiln_wf16(bb) * f32(bitcast<i32>(kiln_wbyte(bb + 2u + j) << 24u) >> 24u);
{%- elif block == "q4_K" %}
    let j = e % 256u;
    let c = j / 64u;
    let hi = (j / 32u) & 1u;
    let sm = kiln_q4k_sm(bb + 4u, 2u * c + hi);
    let q = (kiln_wbyte(bb + 16u + 32u * c + (j & 31u)) >> (4u * hi)) & 15u;
    let dm = unpack2x16float(kiln_wword(bb));
    return dm.x * sm.x * f32(q) - dm.y * sm.y;
{%- elif block == "q6_K" %}
    let j = e % 256u;
    let h = j / 128u;
    let r = (j / 32u) & 3u;
    let l = j & 31u;
    let lo = (kiln_wbyte(bb + 64u * h + l + 32u * (r & 1u)) >> (4u * (r >> 1u))) & 15u;
    let hi = (kiln_wbyte(bb + 128u + 32u * h + l) >> (2u * r)) & 3u;
    let sc = f32(bitcast<i32>(kiln_wbyte(bb + 192u + 8u * h + l / 16u + 2u * r) << 24u) >> 24u);
    return kiln_wf16(bb + 208u) * sc * (f32(lo | (hi << 4u)) - 32.0);
{%- endif %}
}

fn kiln_qget4(row: u32, e: u32) -> vec4<f32> {
{%- if block_elems < 4 %}
    return vec4<f32>(kiln_qget(row, e), kiln_qget(row, e + 1u), kiln_qget(row, e + 2u), kiln_qget(row, e + 3u));
{%- else %}
    let bb = row * {{ row_stride }}u + (e / {{ block_elems }}u) * {{ block_stride }}u;
{%- if block == "q4_0" %}
    let j = e % 32u;
    let q = kiln_wword(bb + 2u + (j & 15u));
    return kiln_wf16(bb) * (kiln_nib_lo(q >> (4u * (j >> 4u))) - 8.0);
{%- elif block == "q4_1" %}
    let j = e % 32u;
    let q = kiln_wword(bb + 4u + (j & 15u));
    let dm = unpack2x16float(kiln_wword(bb));
    return dm.x * kiln_nib_lo(q >> (4u * (j >> 4u))) + dm.y;
{%- elif block == "q8_0" %}
    let j = e % 32u;
    return kiln_wf16(bb) * kiln_sbytes(kiln_wword(bb + 2u + j));
{%- elif block == "q4_K" %}
    let j = e % 256u;
    let c = j / 64u;
    let hi = (j / 32u) & 1u;
    let sm = kiln_q4k_sm(bb + 4u, 2u * c + hi);
    let q = kiln_wword(bb + 16u + 32u * c + (j & 31u)) >> (4u * hi);
    let dm = unpack2x16float(kiln_wword(bb));
    return dm.x * sm.x * kiln_nib_lo(q) - dm.y * sm.y;
{%- elif block == "q6_K" %}
    let j = e % 256u;
    let h = j / 128u;
    let r = (j / 32u) & 3u;
    let l = j & 31u;
    let lo = (kiln_wword(bb + 64u * h + l + 32u * (r & 1u)) >> (4u * (r >> 1u))) & 0x0f0f0f0fu;
    let hi = (kiln_wword(bb + 128u + 32u * h + l) >> (2u * r)) & 0x03030303u;
    let sc = f32(bitcast<i32>(kiln_wbyte(bb + 192u + 8u * h + l / 16u + 2u * r) << 24u) >> 24u);
    return kiln_wf16(bb + 208u) * sc * (kiln_ubytes(lo | (hi << 4u)) - 32.0);
{%- endif %}
{%- endif %}
}
{%- endmacro quant_fns %}


{#- The W loads of a quantized tiled GEMM's K-step (`qgemm_vec4.wgsl`, `qgemm_coop.wgsl`): for
    each of the thread's `b_loads` units `e` below `b_units` (rows n0 + 4 (e / `bk4`) .. + 4,
    k from `k0` + 4 (e % `bk4`) .. + 4; consecutive threads read consecutive words of a row),
    four decoded vec4s into `pb{t}_0` .. `pb{t}_3`, which the kernel declares. `k0` is WGSL
    text ending in `+ ` or empty (the first step). -#}
{% macro w_unit_loads(b_loads, threads, b_units, bk4, k0) -%}
{%- for t in range(end=b_loads) %}
            {
                let e = lid + {{ t * threads }}u;
                if (e < {{ b_units }}u) {
                    let r = n0 + i32(e / {{ bk4 }}u) * 4i;
                    let gk = {{ k0 }}i32(e % {{ bk4 }}u) * 4i;
                    pb{{ t }}_0 = kiln_load_w4(r, gk);
                    pb{{ t }}_1 = kiln_load_w4(r + 1i, gk);
                    pb{{ t }}_2 = kiln_load_w4(r + 2i, gk);
                    pb{{ t }}_3 = kiln_load_w4(r + 3i, gk);
                }
            }
{%- endfor %}
{%- endmacro w_unit_loads %}
