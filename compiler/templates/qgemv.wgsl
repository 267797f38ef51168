{% import "quant" as quant -%}
{% import "macros" as macros -%}
// Kiln quantized GEMV kernel: {{ label }}
// schedule: gemv(lanes={{ lanes }}, ksplit={{ ksplit }}, rows={{ rows }}, lane_rows={{ lane_rows }}{% if sg %}, sg{% endif %}); y[m, n] = sum_k x[m, k] * W[n, k], W packed as {{ block }}
// A workgroup owns {{ lanes * lane_rows }} outputs, {{ lane_rows }} adjacent ones per lane{% if glu %} (each from a row of the
// gate half of W and the same row of the up half: silu(gate · x) * (up · x)){% endif %}, and
// {{ rows }} rows of x. The {{ ksplit }} threads of a lane split each row's {{ nblocks }} blocks of
// {{ parts }} parts each (consecutive threads, consecutive parts), decode each part in registers
// straight from the packed u32 words and dot it with x, {{ unroll }} parts per loop step so that
// their loads are in flight together{% if xshare %}; the x values of a part are read once for the
// lane's {{ lrows }} rows{% endif %}; the partial sums are added {% if sg %}by subgroup shuffles{% else %}in workgroup memory in at most two
// steps{% endif %}. W is never dequantized into memory.
{%- if qout %}
// The outputs are rounded to 8 bits per block of 32 (an activation quantizer fused as epilogue)
// and stored {% if qpacked %}as blocks of bytes for the integer-dot GEMV that reads them{% else %}as f32 values on the blocks' integer grids{% endif %}.
{%- endif %}
{%- if xq8 %}
// x arrives as 8-bit integer blocks (an activation quantizer's output): each part's weight
// integers are dotted with x's by dot4I8Packed and scaled once.
{%- endif %}
{%- if sg %}
// Subgroup variant: a lane's {{ ksplit }} threads are consecutive lanes of one subgroup (naga takes
// the subgroup builtins without an `enable subgroups;`, which it does not parse yet).
{%- endif %}
{{ header }}

{{ quant::quant_fns(block=block, row_bytes=row_bytes, block_elems=be, block_bytes=bb, parts=parts, row_stride=row_stride, block_stride=block_stride, xvec=xvec, norm=norm, row_elems=k, xshare=xshare, xq8=xq8, xsrc=xsrc) }}
{%- if qx %}

// x's row, RMS-normalized (scale `in2`) and rounded to 8-bit blocks as the activation
// quantizer stores them: every workgroup makes its own copy before its dot products.
var<workgroup> kiln_xs: array<u32, {{ qx_words }}>;
var<workgroup> scratch: array<f32, {{ threads }}>;

{%- if sg %}
{{ macros::subgroup_reduce_sum(name="reduce_sum", threads=threads, min_ssz=ksplit) }}
{%- else %}
{{ macros::workgroup_reduce(name="reduce_sum", combine="a + b", halves=qx_halves) }}
{%- endif %}
{%- endif %}
{% if epilogue %}
fn kiln_epilogue(v: f32, gm: i32, gn: i32, batch: i32) -> f32 {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
{%- if qout %}
// The workgroup's outputs for each row of x, rounded to 8 bits once all are computed.
var<workgroup> kiln_yq: array<f32, {{ rows * wout }}>;
{%- if not sg or ksplit < 8 %}
// Per word of `kiln_yq`: its largest magnitude, then its integers' sum.
var<workgroup> kiln_ym: array<f32, {{ rows * wout / 4 }}>;
{%- endif %}
{%- endif %}
{%- if not sg %}
var<workgroup> part: array<f32, {{ lanes * ksplit * rows * lrows }}>;
{%- if norm %}
// The fused RMS norm's partial sums of squares, added like `part`.
var<workgroup> part_ss: array<f32, {{ lanes * ksplit }}>;
{%- endif %}
{%- endif %}

@compute @workgroup_size({{ ksplit }}, {{ lanes }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>{% if tail %}, @builtin(local_invocation_index) lidx: u32{% endif %}{% if qx and sg %}, @builtin(subgroup_size) ssz: u32{% endif %}) {
{%- if tail %}
{{ macros::tail_parts(from=tail_from, threads=threads, n=tail_n, lines=tail) }}
{%- endif %}
    let lk = lid3.x;
    let ln = lid3.y;
{%- if lane_rows > 1 %}
    // The lane's first output; its {{ lane_rows }} outputs are adjacent.
    let gn = (wid.x * {{ lanes }}u + ln) * {{ lane_rows }}u;
{%- else %}
    let gn = wid.x * {{ lanes }}u + ln;
{%- endif %}
    let m0 = wid.y * {{ rows }}u;
    let mm = u32({{ m }});
{%- if qx %}
    // Round x as quantize_rows.wgsl does: the row's mean square, then per 8 values (part e % 4
    // of block e / 4) x * inv * scale, the block's maximum shared by its 4 threads, round.
    let qt = lid3.y * {{ ksplit }}u + lid3.x;
    var qss = 0.0;
    for (var i = qt; i < {{ qx_k4 }}u; i += {{ threads }}u) {
        let v = vec4<f32>(in0[4u * i], in0[4u * i + 1u], in0[4u * i + 2u], in0[4u * i + 3u]);
        qss += dot(v, v);
    }
    let qinv = inverseSqrt(reduce_sum(qt, qss{% if sg %}, ssz{% endif %}) / {{ k }}.0 + {{ eps }});
    for (var c = 0u; c < {{ qx_chunks }}u; c++) {
        let e = c * {{ threads }}u + qt;
        let live = e < {{ qx_k8 }}u;
        var a = vec4<f32>(0.0);
        var b = vec4<f32>(0.0);
        if (live) {
            let o = 8u * e;
            a = vec4<f32>(in0[o], in0[o + 1u], in0[o + 2u], in0[o + 3u]) * qinv * vec4<f32>(in2[o], in2[o + 1u], in2[o + 2u], in2[o + 3u]);
            b = vec4<f32>(in0[o + 4u], in0[o + 5u], in0[o + 6u], in0[o + 7u]) * qinv * vec4<f32>(in2[o + 4u], in2[o + 5u], in2[o + 6u], in2[o + 7u]);
        }
{{ macros::q8_round_part(t="qt", packed=true, dest="kiln_xs", blk="(e / 4u) * " ~ q8_words ~ "u") }}
    }
    workgroupBarrier();
{%- endif %}
{%- for r in range(end=rows) %}
    let xr{{ r }} = min(m0 + {{ r }}u, max(mm, 1u) - 1u) * {{ k }}u;
{%- for i in range(end=lrows) %}
    var acc{{ r }}_{{ i }} = 0.0;
{%- endfor %}
{%- endfor %}
    if (gn < {{ nout }}u) {
{%- if glu %}
        // A gated pair: accumulators {{ lane_rows }}.. read the up half of W (rows {{ nout }}..).
{%- endif %}
{%- for row in w_rows %}
        let rb{{ loop.index0 }} = {{ row }} * {{ row_stride }}u;
{%- endfor %}
        var u = lk;
{%- if unroll > 1 %}
        for (; u + {{ (unroll - 1) * ksplit }}u < {{ nblocks * parts }}u; u += {{ unroll * ksplit }}u) {
{%- for j in range(end=unroll) %}
            let kb{{ j }} = (u + {{ j * ksplit }}u) / {{ parts }}u;
            let p{{ j }} = (u + {{ j * ksplit }}u) % {{ parts }}u;
            let ob{{ j }} = kb{{ j }} * {{ block_stride }}u;
            let xk{{ j }} = kb{{ j }} * {{ be }}u;
{%- endfor %}
{%- for r in range(end=rows) %}
{%- if xshare %}
{%- for j in range(end=unroll) %}
            let x{{ r }}_{{ j }} = kiln_qx(xr{{ r }} + xk{{ j }}, p{{ j }});
{%- endfor %}
{%- for i in range(end=lrows) %}
            acc{{ r }}_{{ i }} += {% for j in range(end=unroll) %}{% if j > 0 %} + {% endif %}kiln_qdotx(rb{{ i }} + ob{{ j }}, p{{ j }}, x{{ r }}_{{ j }}){% endfor %};
{%- endfor %}
{%- else %}
{%- for i in range(end=lrows) %}
{%- if norm and i > 0 %}
            // Row {{ i }} re-reads x: its squares are already in `kiln_ss`.
            let ss{{ r }}_{{ i }} = kiln_ss;
{%- endif %}
            acc{{ r }}_{{ i }} += {% for j in range(end=unroll) %}{% if j > 0 %} + {% endif %}kiln_qdot(rb{{ i }} + ob{{ j }}, xr{{ r }} + xk{{ j }}, p{{ j }}){% endfor %};
{%- if norm and i > 0 %}
            kiln_ss = ss{{ r }}_{{ i }};
{%- endif %}
{%- endfor %}
{%- endif %}
{%- endfor %}
        }
{%- endif %}
        for (; u < {{ nblocks * parts }}u; u += {{ ksplit }}u) {
            let kb = u / {{ parts }}u;
            let p = u % {{ parts }}u;
            let ob = kb * {{ block_stride }}u;
            let xk = kb * {{ be }}u;
{%- for r in range(end=rows) %}
{%- if xshare %}
            let x{{ r }} = kiln_qx(xr{{ r }} + xk, p);
{%- for i in range(end=lrows) %}
            acc{{ r }}_{{ i }} += kiln_qdotx(rb{{ i }} + ob, p, x{{ r }});
{%- endfor %}
{%- else %}
{%- for i in range(end=lrows) %}
{%- if norm and i > 0 %}
            let ss{{ r }}_{{ i }} = kiln_ss;
{%- endif %}
            acc{{ r }}_{{ i }} += kiln_qdot(rb{{ i }} + ob, xr{{ r }} + xk, p);
{%- if norm and i > 0 %}
            kiln_ss = ss{{ r }}_{{ i }};
{%- endif %}
{%- endfor %}
{%- endif %}
{%- endfor %}
        }
    }
{%- if sg %}
    // A butterfly over the lane's {{ ksplit }} threads (outside the `gn` test: every thread of
    // the subgroup takes part) leaves each of them with the lane's sums.
{%- for x in shuffles %}
{%- for r in range(end=rows) %}
{%- for i in range(end=lrows) %}
    acc{{ r }}_{{ i }} += subgroupShuffleXor(acc{{ r }}_{{ i }}, {{ x }}u);
{%- endfor %}
{%- endfor %}
{%- if norm %}
    kiln_ss += subgroupShuffleXor(kiln_ss, {{ x }}u);
{%- endif %}
{%- endfor %}
{%- else %}
    // Partial sum slot s = r * {{ lrows }} + i (x row r, accumulator i).
{%- for r in range(end=rows) %}
{%- for i in range(end=lrows) %}
    part[({{ (r * lrows + i) * lanes }}u + ln) * {{ ksplit }}u + lk] = acc{{ r }}_{{ i }};
{%- endfor %}
{%- endfor %}
{%- if norm %}
    part_ss[ln * {{ ksplit }}u + lk] = kiln_ss;
{%- endif %}
    workgroupBarrier();
{%- if step > 1 %}
    // Two steps instead of a tree (two barriers, not log2({{ ksplit }})): 8 threads per row
    // each add {{ step }} partial sums, then the first thread adds those 8.
    if (lk < 8u) {
{%- for s in range(end=rows * lrows) %}
        {
            let b = ({{ s * lanes }}u + ln) * {{ ksplit }}u + lk * {{ step }}u;
            var s = part[b];
{%- for j in range(start=1, end=step) %}
            s += part[b + {{ j }}u];
{%- endfor %}
            part[b] = s;
        }
{%- endfor %}
{%- if norm %}
        {
            let b = ln * {{ ksplit }}u + lk * {{ step }}u;
            var s = part_ss[b];
{%- for j in range(start=1, end=step) %}
            s += part_ss[b + {{ j }}u];
{%- endfor %}
            part_ss[b] = s;
        }
{%- endif %}
    }
    workgroupBarrier();
{%- endif %}
{%- endif %}
    if (lk == 0u && gn < {{ nout }}u) {
{%- if norm %}
{%- if sg %}
        let ss = kiln_ss;
{%- else %}
        let ss = part_ss[ln * {{ ksplit }}u]{% for j in range(start=1, end=count) %} + part_ss[ln * {{ ksplit }}u + {{ j * step }}u]{% endfor %};
{%- endif %}
        // x / sqrt(mean(x²) + eps) · g · w = (x · g · w) / sqrt(mean(x²) + eps).
        let inv = inverseSqrt(ss / {{ k }}.0 + {{ eps }});
{%- endif %}
{%- for r in range(end=rows) %}
{%- for i in range(end=lane_rows) %}
        if (m0 + {{ r }}u < mm{% if i > 0 %} && gn + {{ i }}u < {{ nout }}u{% endif %}) {
{%- if sg %}
            let v = acc{{ r }}_{{ i }}{% if norm %} * inv{% endif %};
{%- if glu %}
            let w = acc{{ r }}_{{ lane_rows + i }}{% if norm %} * inv{% endif %};
{%- endif %}
{%- else %}
            let b = ({{ (r * lrows + i) * lanes }}u + ln) * {{ ksplit }}u;
            let v = (part[b]{% for j in range(start=1, end=count) %} + part[b + {{ j * step }}u]{% endfor %}){% if norm %} * inv{% endif %};
{%- if glu %}
            let bu = ({{ (r * lrows + lane_rows + i) * lanes }}u + ln) * {{ ksplit }}u;
            let w = (part[bu]{% for j in range(start=1, end=count) %} + part[bu + {{ j * step }}u]{% endfor %}){% if norm %} * inv{% endif %};
{%- endif %}
{%- endif %}
            let gm = i32(m0 + {{ r }}u);
{%- if glu %}
            // silu(gate) * up
            let y = v * (1.0 / (1.0 + exp(-v))) * w;
{%- elif epilogue %}
            let y = kiln_epilogue(v, gm, i32(gn + {{ i }}u), 0i);
{%- else %}
            let y = v;
{%- endif %}
{%- if qout %}
            kiln_yq[{{ r * wout }}u + ln * {{ lane_rows }}u + {{ i }}u] = y;
{%- else %}
            out[gm * {{ nout }}i + i32(gn + {{ i }}u)] = y;
{%- endif %}
        }
{%- endfor %}
{%- endfor %}
    }
{%- if qout %}
{{ macros::q8_round_outputs(t="lid3.y * " ~ ksplit ~ "u + lid3.x", threads=lanes * ksplit, rows=rows, wout=wout, nout=nout, packed=qpacked, words=q8_words, sg=sg and ksplit >= 8) }}
{%- endif %}
}
