{% import "macros" as macros %}
// Kiln softmax kernel: {{ label }}
// schedule: row_reduce(workgroup_size={{ wg }}); one workgroup per row, three passes
{{ header }}

var<workgroup> scratch: array<f32, {{ wg }}>;

{{ macros::workgroup_reduce(name="reduce_max", combine="max(a, b)", halves=halves) }}

{{ macros::workgroup_reduce(name="reduce_sum", combine="a + b", halves=halves) }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = i32(wid.x + wid.y * nwg.x);
    if (row >= {{ rows }}) {
        return;
    }
    let base = (row / {{ inner }}) * {{ len }} * {{ inner }} + row % {{ inner }};
    var m = bitcast<f32>(0xff800000u);
    for (var k = i32(lid); k < {{ len }}; k += {{ wg }}i) {
        m = max(m, {{ x0 }}base + k * {{ inner }}{{ x0e }});
    }
    m = reduce_max(lid, m);
    var s = 0.0f;
    for (var k = i32(lid); k < {{ len }}; k += {{ wg }}i) {
        s += exp({{ x0 }}base + k * {{ inner }}{{ x0e }} - m);
    }
    s = reduce_sum(lid, s);
{%- if log %}
    let ls = log(s);
    for (var k = i32(lid); k < {{ len }}; k += {{ wg }}i) {
        out[base + k * {{ inner }}] = {{ x0 }}base + k * {{ inner }}{{ x0e }} - m - ls;
    }
{%- else %}
    let inv = 1.0f / s;
    for (var k = i32(lid); k < {{ len }}; k += {{ wg }}i) {
        out[base + k * {{ inner }}] = exp({{ x0 }}base + k * {{ inner }}{{ x0e }} - m) * inv;
    }
{%- endif %}
}
