{% import "macros" as macros %}
// Kiln softmax kernel: {{ label }}
// schedule: row_reduce(workgroup_size={{ wg }}); one workgroup per row; the row cached in registers ({{ cache }} per thread) when it fits, else three passes over it
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
    let neg_inf = 0xff800000u; // a let, not a constant: WGSL constants must be finite
{%- if cache %}
    // The row is read once into {{ cache }} registers per thread, then reduced and written.
{%- for j in range(end=cache) %}
    let k{{ j }} = i32(lid) + {{ j * wg }}i;
    let x{{ j }} = select(bitcast<f32>(neg_inf), {{ x0 }}base + min(k{{ j }}, {{ len }} - 1i) * {{ inner }}{{ x0e }}, k{{ j }} < {{ len }});
{%- endfor %}
    var m = x0;
{%- for j in range(start=1, end=cache) %}
    m = max(m, x{{ j }});
{%- endfor %}
    m = reduce_max(lid, m);
    var s = 0.0f;
{%- for j in range(end=cache) %}
    s += select(0.0f, exp(x{{ j }} - m), k{{ j }} < {{ len }});
{%- endfor %}
    s = reduce_sum(lid, s);
{%- if log %}
    let ls = log(s);
{%- else %}
    let inv = 1.0f / s;
{%- endif %}
{%- for j in range(end=cache) %}
    if (k{{ j }} < {{ len }}) {
{%- if log %}
        out[base + k{{ j }} * {{ inner }}] = x{{ j }} - m - ls;
{%- else %}
        out[base + k{{ j }} * {{ inner }}] = exp(x{{ j }} - m) * inv;
{%- endif %}
    }
{%- endfor %}
{%- else %}
    var m = bitcast<f32>(neg_inf);
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
{%- endif %}
}
