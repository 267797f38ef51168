// Kiln GEMV kernel: {{ label }}
// schedule: gemv(lanes={{ lanes }}, ksplit={{ ksplit }}, rows={{ rows }}{% if slices > 1 %}, slices={{ slices }}{% endif %}); C[b] = A[b] x B[b] for few rows of A
// A workgroup owns {{ lanes }} column groups of {{ w }} columns of B and {{ rows }} rows of A. Its
// {{ ksplit }} thread rows split K between them (each streams B rows k = ly, ly + {{ ksplit }}, ...,
// unrolled by {{ unroll }} so that many loads are in flight), then a tree reduction in workgroup memory adds
// the partial sums. Consecutive lanes read consecutive {{ vty }}s of one row of B.
{%- if slices > 1 %}
// K split over {{ slices }} workgroups (workgroup z = batch x {{ slices }} + slice), {{ kslice }} rows of B each:
// a workgroup stores its partial sums in the scratch buffer ([batch][slice][row][column]
// after the arrival counters), and the last of its column group to arrive adds the slices
// in slice order and writes the outputs.
{%- endif %}
{{ header }}
{% if epilogue %}
fn kiln_epilogue(v: {{ ty }}, gm: i32, gn: i32, batch: i32) -> {{ ty }} {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
var<workgroup> part: array<{{ vty }}, {{ lanes * ksplit * rows }}>;
{%- if slices > 1 %}
@group(0) @binding({{ scratch_binding }}) var<storage, read_write> scratch: array<atomic<u32>>;
// Whether this workgroup is the last of its column group to arrive.
var<workgroup> s_last: u32;
{%- endif %}

@compute @workgroup_size({{ lanes }}, {{ ksplit }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lx = i32(lid3.x);
    let ly = i32(lid3.y);
    let col = i32(wid.x) * {{ lanes }}i + lx;
    let m0 = i32(wid.y) * {{ rows }}i;
{%- if slices > 1 %}
    let batch = i32(wid.z) / {{ slices }}i;
    let slice = i32(wid.z) % {{ slices }}i;
    let k_begin = slice * {{ kslice }}i;
    let k_end = min(k_begin + {{ kslice }}i, {{ k }});
{%- else %}
    let batch = i32(wid.z);
{%- endif %}
{%- for line in batch_lines %}
    {{ line }}
{%- endfor %}
    let b_base = b_off / {{ w }}i + col;
{%- for r in range(end=rows) %}
    let a_row{{ r }} = a_off + min(m0 + {{ r }}i, {{ m }} - 1i) * {{ k }};
    var acc{{ r }} = {{ vty }}({{ zero }});
{%- endfor %}
    if (col < {{ ncols }}) {
        var kk = {{ k_lo }}ly;
        for (; kk + {{ (unroll - 1) * ksplit }}i < {{ k_hi }}; kk += {{ unroll * ksplit }}i) {
{%- for u in range(end=unroll) %}
            let b{{ u }} = in1[b_base + (kk + {{ u * ksplit }}i) * {{ ncols }}];
{%- endfor %}
{%- for u in range(end=unroll) %}{% for r in range(end=rows) %}
            acc{{ r }} = fma({{ vty }}(in0[a_row{{ r }} + kk + {{ u * ksplit }}i]), b{{ u }}, acc{{ r }});
{%- endfor %}{% endfor %}
        }
        for (; kk < {{ k_hi }}; kk += {{ ksplit }}i) {
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
{%- if slices > 1 %}
    // This slice's partial sums, released before its arrival is counted.
    if (ly == 0i && col < {{ ncols }}) {
{%- for r in range(end=rows) %}
        if (m0 + {{ r }}i < {{ m }}) {
            let sum = part[{{ r * ksplit }}i * {{ lanes }}i + lx];
            let at = {{ counters }}i + ((batch * {{ slices }}i + slice) * {{ m }} + m0 + {{ r }}i) * {{ n }} + col * {{ w }}i;
{%- for j in range(end=w) %}
            atomicStore(&scratch[at + {{ j }}i], bitcast<u32>(sum{% if w > 1 %}[{{ j }}]{% endif %}));
{%- endfor %}
        }
{%- endfor %}
    }
    storageBarrier();
    let counter = ((batch * {{ row_groups }}i + i32(wid.y)) * {{ col_groups }}i + i32(wid.x)) * {{ counter_stride }}i;
    if (lx == 0i && ly == 0i) {
        s_last = select(0u, 1u, atomicAdd(&scratch[counter], 1u) == {{ slices - 1 }}u);
    }
    if (workgroupUniformLoad(&s_last) == 0u) {
        return;
    }
    // The last to arrive acquires the other slices' sums.
    storageBarrier();
    if (lx == 0i && ly == 0i) {
        // Ready for the next dispatch that binds the scratch buffer.
        atomicStore(&scratch[counter], 0u);
    }
{%- endif %}
    if (ly == 0i && col < {{ ncols }}) {
{%- for r in range(end=rows) %}
        if (m0 + {{ r }}i < {{ m }}) {
{%- if slices > 1 %}
            // The slices' sums, added in slice order.
            let at = {{ counters }}i + (batch * {{ slices }}i * {{ m }} + m0 + {{ r }}i) * {{ n }} + col * {{ w }}i;
            var sum = {{ vty }}({{ zero }});
{%- for sl in range(end=slices) %}
{%- if w > 1 %}
            sum += vec4<f32>({% for j in range(end=w) %}bitcast<f32>(atomicLoad(&scratch[at + {{ sl }}i * {{ m }} * {{ n }} + {{ j }}i])){% if not loop.last %}, {% endif %}{% endfor %});
{%- else %}
            sum += bitcast<f32>(atomicLoad(&scratch[at + {{ sl }}i * {{ m }} * {{ n }}]));
{%- endif %}
{%- endfor %}
{%- else %}
            let sum = part[{{ r * ksplit }}i * {{ lanes }}i + lx];
{%- endif %}
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
