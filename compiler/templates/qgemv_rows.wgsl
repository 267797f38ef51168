{% import "quant" as quant -%}
{% import "macros" as macros -%}
// Kiln quantized GEMV kernel, row-parallel: {{ label }}
// schedule: gemv(lanes={{ lanes }}, ksplit={{ ksplit }}, rows={{ rows }}); y[m, n] = sum_k x[m, k] * W[n, k], W packed as {{ block }}, block-column-major
// W's blocks are stored block 0 of every row, then block 1, ..: consecutive threads own
// consecutive outputs{% if glu %} (each a row of the gate half of W and the same row of the up half:
// silu(gate · x) * (up · x)){% endif %}, so their block reads are adjacent, and all of them read the
// same x values at once. A workgroup owns {{ lanes }} outputs and {{ rows }} rows of x; the {{ ksplit }}
// threads of an output take every {{ ksplit }}th block of its {{ nblocks }}, decode it in registers
// ({{ parts }} parts of `kiln_qdot`) and dot it with x; their partial sums are added in workgroup memory.
// W is never dequantized into memory.
{{ header }}

{{ quant::quant_fns(block=block, row_bytes=row_bytes, block_elems=be, block_bytes=bb, parts=parts, row_stride=row_stride, block_stride=block_stride, xvec=xvec, norm=norm, row_elems=k) }}
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
// Per word of `kiln_yq`: its largest magnitude, then its integers' sum.
var<workgroup> kiln_ym: array<f32, {{ rows * wout / 4 }}>;
{%- endif %}
var<workgroup> part: array<f32, {{ lanes * ksplit * rows * lrows }}>;
{%- if norm %}
// The fused RMS norm's partial sums of squares, added like `part`.
var<workgroup> part_ss: array<f32, {{ lanes * ksplit }}>;
{%- endif %}

@compute @workgroup_size({{ lanes }}, {{ ksplit }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>{% if tail %}, @builtin(local_invocation_index) lidx: u32{% endif %}) {
{%- if tail %}
{{ macros::tail_parts(from=tail_from, threads=threads, n=tail_n, lines=tail) }}
{%- endif %}
    let ln = lid3.x;
    let lk = lid3.y;
    let gn = wid.x * {{ lanes }}u + ln;
    let m0 = wid.y * {{ rows }}u;
    let mm = u32({{ m }});
{%- for r in range(end=rows) %}
    let xr{{ r }} = min(m0 + {{ r }}u, max(mm, 1u) - 1u) * {{ k }}u;
{%- for i in range(end=lrows) %}
    var acc{{ r }}_{{ i }} = 0.0;
{%- endfor %}
{%- endfor %}
    if (gn < {{ nout }}u) {
{%- for row in w_rows %}
        let rb{{ loop.index0 }} = {{ row }} * {{ row_stride }}u;
{%- endfor %}
        for (var kb = lk; kb < {{ nblocks }}u; kb += {{ ksplit }}u) {
            let ob = kb * {{ block_stride }}u;
            let xk = kb * {{ be }}u;
{%- for r in range(end=rows) %}
{%- for i in range(end=lrows) %}
{%- if norm and i > 0 %}
            // Row {{ i }} re-reads x: its squares are already in `kiln_ss`.
            let ss{{ r }}_{{ i }} = kiln_ss;
{%- endif %}
            acc{{ r }}_{{ i }} += {% for p in range(end=parts) %}{% if p > 0 %} + {% endif %}kiln_qdot(rb{{ i }} + ob, xr{{ r }} + xk, {{ p }}u){% endfor %};
{%- if norm and i > 0 %}
            kiln_ss = ss{{ r }}_{{ i }};
{%- endif %}
{%- endfor %}
{%- endfor %}
        }
    }
    // Partial sum slot s = r * {{ lrows }} + i (x row r, accumulator i), per K thread and output.
{%- for r in range(end=rows) %}
{%- for i in range(end=lrows) %}
    part[({{ (r * lrows + i) * ksplit }}u + lk) * {{ lanes }}u + ln] = acc{{ r }}_{{ i }};
{%- endfor %}
{%- endfor %}
{%- if norm %}
    part_ss[lk * {{ lanes }}u + ln] = kiln_ss;
{%- endif %}
    workgroupBarrier();
    if (lk == 0u && gn < {{ nout }}u) {
{%- if norm %}
        var ss = 0.0;
        for (var j = 0u; j < {{ ksplit }}u; j++) {
            ss += part_ss[j * {{ lanes }}u + ln];
        }
        // x / sqrt(mean(x²) + eps) · g · w = (x · g · w) / sqrt(mean(x²) + eps).
        let inv = inverseSqrt(ss / {{ k }}.0 + {{ eps }});
{%- endif %}
{%- for r in range(end=rows) %}
        if (m0 + {{ r }}u < mm) {
            var v = 0.0;
{%- if glu %}
            var w = 0.0;
{%- endif %}
            for (var j = 0u; j < {{ ksplit }}u; j++) {
                v += part[({{ r * lrows * ksplit }}u + j) * {{ lanes }}u + ln];
{%- if glu %}
                w += part[({{ (r * lrows + 1) * ksplit }}u + j) * {{ lanes }}u + ln];
{%- endif %}
            }
{%- if norm %}
            v *= inv;
{%- if glu %}
            w *= inv;
{%- endif %}
{%- endif %}
            let gm = i32(m0 + {{ r }}u);
{%- if glu %}
            // silu(gate) * up
            let y = v * (1.0 / (1.0 + exp(-v))) * w;
{%- elif epilogue %}
            let y = kiln_epilogue(v, gm, i32(gn), 0i);
{%- else %}
            let y = v;
{%- endif %}
{%- if qout %}
            kiln_yq[{{ r * wout }}u + ln] = y;
{%- else %}
            out[gm * {{ nout }}i + i32(gn)] = y;
{%- endif %}
        }
{%- endfor %}
    }
{%- if qout %}
{{ macros::q8_round_outputs(t="lid3.y * " ~ lanes ~ "u + lid3.x", threads=lanes * ksplit, rows=rows, wout=wout, nout=nout, packed=qpacked, words=q8_words) }}
{%- endif %}
}
