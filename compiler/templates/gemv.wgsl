// Kiln GEMV kernel: {{ label }}
// schedule: gemv(lanes={{ lanes }}, ksplit={{ ksplit }}, rows={{ rows }}); C[b] = A[b] x B[b] for few rows of A
// A workgroup owns {{ lanes }} column groups of {{ w }} columns of B and {{ rows }} rows of A. Its
// {{ ksplit }} thread rows split K between them (each streams B rows k = ly, ly + {{ ksplit }}, ...,
// unrolled by {{ unroll }} so that many loads are in flight), then a tree reduction in workgroup memory adds
// the partial sums. Consecutive lanes read consecutive {{ vty }}s of one row of B.
{{ header }}
{% if epilogue %}
fn kiln_epilogue(v: {{ ty }}, gm: i32, gn: i32, batch: i32) -> {{ ty }} {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
var<workgroup> part: array<{{ vty }}, {{ lanes * ksplit * rows }}>;

@compute @workgroup_size({{ lanes }}, {{ ksplit }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lx = i32(lid3.x);
    let ly = i32(lid3.y);
    let col = i32(wid.x) * {{ lanes }}i + lx;
    let m0 = i32(wid.y) * {{ rows }}i;
    let batch = i32(wid.z);
{%- for line in batch_lines %}
    {{ line }}
{%- endfor %}
    let b_base = b_off / {{ w }}i + col;
{%- for r in range(end=rows) %}
    let a_row{{ r }} = a_off + min(m0 + {{ r }}i, {{ m }} - 1i) * {{ k }};
    var acc{{ r }} = {{ vty }}({{ zero }});
{%- endfor %}
    if (col < {{ ncols }}) {
        var kk = ly;
        for (; kk + {{ (unroll - 1) * ksplit }}i < {{ k }}; kk += {{ unroll * ksplit }}i) {
{%- for u in range(end=unroll) %}
            let b{{ u }} = in1[b_base + (kk + {{ u * ksplit }}i) * {{ ncols }}];
{%- endfor %}
{%- for u in range(end=unroll) %}{% for r in range(end=rows) %}
            acc{{ r }} = fma({{ vty }}(in0[a_row{{ r }} + kk + {{ u * ksplit }}i]), b{{ u }}, acc{{ r }});
{%- endfor %}{% endfor %}
        }
        for (; kk < {{ k }}; kk += {{ ksplit }}i) {
            let b0 = in1[b_base + kk * {{ ncols }}];
{%- for r in range(end=rows) %}
            acc{{ r }} = fma({{ vty }}(in0[a_row{{ r }} + kk]), b0, acc{{ r }});
{%- endfor %}
        }
    }
{%- for r in range(end=rows) %}
    part[({{ r * ksplit }}i + ly) * {{ lanes }}i + lx] = acc{{ r }};
{%- endfor %}
    workgroupBarrier();
{%- for s in halves %}
    if (ly < {{ s }}i) {
{%- for r in range(end=rows) %}
        part[({{ r * ksplit }}i + ly) * {{ lanes }}i + lx] += part[({{ r * ksplit + s }}i + ly) * {{ lanes }}i + lx];
{%- endfor %}
    }
    workgroupBarrier();
{%- endfor %}
    if (ly == 0i && col < {{ ncols }}) {
{%- for r in range(end=rows) %}
        if (m0 + {{ r }}i < {{ m }}) {
            let sum = part[{{ r * ksplit }}i * {{ lanes }}i + lx];
            let gm = m0 + {{ r }}i;
{%- for j in range(end=w) %}
            {
                let gn = col * {{ w }}i + {{ j }}i;
{%- if w == 1 %}
                let v = sum;
{%- else %}
                let v = sum[{{ j }}];
{%- endif %}
{%- if epilogue %}
                out[c_off + gm * {{ n }} + gn] = kiln_epilogue(v, gm, gn, batch);
{%- else %}
                out[c_off + gm * {{ n }} + gn] = v;
{%- endif %}
            }
{%- endfor %}
        }
{%- endfor %}
    }
}
