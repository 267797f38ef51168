{% import "quant" as quant -%}
// Kiln quantized GEMV kernel: {{ label }}
// schedule: gemv(lanes={{ lanes }}, ksplit={{ ksplit }}, rows={{ rows }}); y[m, n] = sum_k x[m, k] * W[n, k], W packed as {{ block }}
// A workgroup owns {{ lanes }} rows of W (outputs) and {{ rows }} rows of x. The {{ ksplit }} threads
// of one W row split its {{ nblocks }} blocks of {{ parts }} parts each (consecutive threads,
// consecutive parts), decode each part in registers straight from the packed u32 words and dot
// it with x, {{ unroll }} parts per loop step so that their loads are in flight together; the
// partial sums are added in workgroup memory in at most two steps. W is never dequantized into
// memory.
{{ header }}

{{ quant::quant_fns(block=block, row_bytes=row_bytes, block_elems=be, block_bytes=bb, parts=parts, xvec=xvec, norm=norm, row_elems=k) }}
{% if epilogue %}
fn kiln_epilogue(v: f32, gm: i32, gn: i32, batch: i32) -> f32 {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
var<workgroup> part: array<f32, {{ lanes * ksplit * rows }}>;
{%- if norm %}
// The fused RMS norm's partial sums of squares, added like `part`.
var<workgroup> part_ss: array<f32, {{ lanes * ksplit }}>;
{%- endif %}

@compute @workgroup_size({{ ksplit }}, {{ lanes }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lk = lid3.x;
    let ln = lid3.y;
    let gn = wid.x * {{ lanes }}u + ln;
    let m0 = wid.y * {{ rows }}u;
    let mm = u32({{ m }});
{%- for r in range(end=rows) %}
    let xr{{ r }} = min(m0 + {{ r }}u, max(mm, 1u) - 1u) * {{ k }}u;
    var acc{{ r }} = 0.0;
{%- endfor %}
    if (gn < {{ n }}u) {
        let rb = gn * {{ row_bytes }}u;
        var u = lk;
{%- if unroll > 1 %}
        for (; u + {{ (unroll - 1) * ksplit }}u < {{ nblocks * parts }}u; u += {{ unroll * ksplit }}u) {
{%- for j in range(end=unroll) %}
            let kb{{ j }} = (u + {{ j * ksplit }}u) / {{ parts }}u;
            let p{{ j }} = (u + {{ j * ksplit }}u) % {{ parts }}u;
            let bb{{ j }} = rb + kb{{ j }} * {{ bb }}u;
            let xk{{ j }} = kb{{ j }} * {{ be }}u;
{%- endfor %}
{%- for r in range(end=rows) %}
            acc{{ r }} += {% for j in range(end=unroll) %}{% if j > 0 %} + {% endif %}kiln_qdot(bb{{ j }}, xr{{ r }} + xk{{ j }}, p{{ j }}){% endfor %};
{%- endfor %}
        }
{%- endif %}
        for (; u < {{ nblocks * parts }}u; u += {{ ksplit }}u) {
            let kb = u / {{ parts }}u;
            let p = u % {{ parts }}u;
            let bb = rb + kb * {{ bb }}u;
            let xk = kb * {{ be }}u;
{%- for r in range(end=rows) %}
            acc{{ r }} += kiln_qdot(bb, xr{{ r }} + xk, p);
{%- endfor %}
        }
    }
{%- for r in range(end=rows) %}
    part[({{ r * lanes }}u + ln) * {{ ksplit }}u + lk] = acc{{ r }};
{%- endfor %}
{%- if norm %}
    part_ss[ln * {{ ksplit }}u + lk] = kiln_ss;
{%- endif %}
    workgroupBarrier();
{%- if step > 1 %}
    // Two steps instead of a tree (two barriers, not log2({{ ksplit }})): 8 threads per row
    // each add {{ step }} partial sums, then the first thread adds those 8.
    if (lk < 8u) {
{%- for r in range(end=rows) %}
        {
            let b = ({{ r * lanes }}u + ln) * {{ ksplit }}u + lk * {{ step }}u;
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
    if (lk == 0u && gn < {{ n }}u) {
{%- for r in range(end=rows) %}
        if (m0 + {{ r }}u < mm) {
            let b = ({{ r * lanes }}u + ln) * {{ ksplit }}u;
{%- if norm %}
            let ss = part_ss[ln * {{ ksplit }}u]{% for j in range(start=1, end=count) %} + part_ss[ln * {{ ksplit }}u + {{ j * step }}u]{% endfor %};
            // x / sqrt(mean(x²) + eps) · g · w = (x · g · w) / sqrt(mean(x²) + eps).
            let v = (part[b]{% for j in range(start=1, end=count) %} + part[b + {{ j * step }}u]{% endfor %}) * inverseSqrt(ss / {{ k }}.0 + {{ eps }});
{%- else %}
            let v = part[b]{% for j in range(start=1, end=count) %} + part[b + {{ j * step }}u]{% endfor %};
{%- endif %}
            let gm = i32(m0 + {{ r }}u);
{%- if epilogue %}
            out[gm * {{ n }}i + i32(gn)] = kiln_epilogue(v, gm, i32(gn), 0i);
{%- else %}
            out[gm * {{ n }}i + i32(gn)] = v;
{%- endif %}
        }
{%- endfor %}
    }
}
