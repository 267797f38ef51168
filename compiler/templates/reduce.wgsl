// Kiln reduction kernel: {{ label }}
// schedule: row_reduce(workgroup_size={{ wg }}); one workgroup per output element
{{ header }}
{%- if epilogue %}

fn kiln_epilogue(v: {{ acc_ty }}, row: i32) -> {{ out_ty }} {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{%- endif %}

var<workgroup> scratch: array<{{ acc_ty }}, {{ wg }}>;
{%- if arg %}
var<workgroup> scratch_idx: array<i32, {{ wg }}>;
{%- endif %}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = i32(wid.x + wid.y * nwg.x);
    if (row >= {{ rows }}) {
        return;
    }
{%- for line in row_lines %}
    {{ line }}
{%- endfor %}
    var acc: {{ acc_ty }} = {{ init }};
{%- if arg %}
    var acc_idx: i32 = 0i;
{%- endif %}
    for (var r = i32(lid); r < {{ len }}; r += {{ wg }}i) {
{%- for line in elem_lines %}
        {{ line }}
{%- endfor %}
{%- if arg %}
        if ({{ better }}(v, acc){% if select_last %} || v == acc{% endif %} || r == i32(lid)) {
            acc = v;
            acc_idx = r;
        }
{%- else %}
        acc = {{ combine }};
{%- endif %}
    }
    scratch[lid] = acc;
{%- if arg %}
    scratch_idx[lid] = acc_idx;
{%- endif %}
    workgroupBarrier();
{%- for s in halves %}
    if (lid < {{ s }}u) {
{%- if arg %}
        let v = scratch[lid + {{ s }}u];
        let vi = scratch_idx[lid + {{ s }}u];
        let a = scratch[lid];
        let ai = scratch_idx[lid];
        if ({{ better }}(v, a) || (v == a && {% if select_last %}vi > ai{% else %}vi < ai{% endif %})) {
            scratch[lid] = v;
            scratch_idx[lid] = vi;
        }
{%- else %}
        let acc2 = scratch[lid];
        let v = scratch[lid + {{ s }}u];
        scratch[lid] = {{ combine_scratch }};
{%- endif %}
    }
    workgroupBarrier();
{%- endfor %}
    if (lid == 0u) {
{%- if arg %}
        out[row] = scratch_idx[0];
{%- else %}
        out[row] = {{ finish }};
{%- endif %}
    }
}
{%- if arg %}

fn {{ better }}(a: {{ acc_ty }}, b: {{ acc_ty }}) -> bool {
    return a {% if max %}>{% else %}<{% endif %} b;
}
{%- endif %}
