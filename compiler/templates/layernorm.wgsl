{% import "macros" as macros %}
// Kiln {% if rms %}RMS{% else %}layer{% endif %}-norm kernel: {{ label }}
// schedule: row_reduce(workgroup_size={{ wg }}); one workgroup per row, {% if rms %}one pass (mean square){% else %}two-pass mean/variance{% endif %}; the row cached in registers ({% if vec4 %}{{ cache4 }} vec4{% else %}{{ cache }}{% endif %} per thread) when it fits
{{ header }}

var<workgroup> scratch: array<f32, {{ wg }}>;

{{ macros::workgroup_reduce(name="reduce_sum", combine="a + b", halves=halves) }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = i32(wid.x + wid.y * nwg.x);
    if (row >= {{ rows }}) {
        return;
    }
{%- if vec4 %}
    // The row is read once into {{ cache4 }} vec4 registers per thread (x, scale{% if not rms %}, bias{% endif %} and out are vec4 arrays).
    let base = row * {{ len4 }};
{%- for j in range(end=cache4) %}
    let k{{ j }} = i32(lid) + {{ j * wg }}i;
    let x{{ j }} = select(vec4<f32>(0.0f), in{{ s[0] }}[base + min(k{{ j }}, {{ len4 }} - 1i)], k{{ j }} < {{ len4 }});
{%- endfor %}
{%- if rms %}
    let mean = 0.0f;
{%- else %}
    var s = vec4<f32>(0.0f);
{%- for j in range(end=cache4) %}
    s += x{{ j }};
{%- endfor %}
    let mean = reduce_sum(lid, s.x + s.y + s.z + s.w) / f32({{ len }});
{%- endif %}
    var q = 0.0f;
{%- for j in range(end=cache4) %}
    {
        let d = select(vec4<f32>(0.0f), x{{ j }} - mean, k{{ j }} < {{ len4 }});
        q += dot(d, d);
    }
{%- endfor %}
    let inv = inverseSqrt(reduce_sum(lid, q) / f32({{ len }}) + {{ epsilon }});
{%- for j in range(end=cache4) %}
    if (k{{ j }} < {{ len4 }}) {
        out[base + k{{ j }}] = (x{{ j }} - mean) * inv * in{{ s[1] }}[k{{ j }}]{% if not rms %} + in{{ s[2] }}[k{{ j }}]{% endif %};
    }
{%- endfor %}
{%- else %}
    let base = row * {{ len }};
{%- if cache %}
    // The row is read once into {{ cache }} registers per thread.
{%- for j in range(end=cache) %}
    let k{{ j }} = i32(lid) + {{ j * wg }}i;
    let x{{ j }} = select(0.0f, {{ x0 }}base + min(k{{ j }}, {{ len }} - 1i){{ x0e }}, k{{ j }} < {{ len }});
{%- endfor %}
{%- if rms %}
    let mean = 0.0f;
{%- else %}
    var s = 0.0f;
{%- for j in range(end=cache) %}
    s += x{{ j }};
{%- endfor %}
    let mean = reduce_sum(lid, s) / f32({{ len }});
{%- endif %}
    var q = 0.0f;
{%- for j in range(end=cache) %}
    {
        let d = select(0.0f, x{{ j }} - mean, k{{ j }} < {{ len }});
        q += d * d;
    }
{%- endfor %}
    let inv = inverseSqrt(reduce_sum(lid, q) / f32({{ len }}) + {{ epsilon }});
{%- for j in range(end=cache) %}
    if (k{{ j }} < {{ len }}) {
        out[base + k{{ j }}] = (x{{ j }} - mean) * inv * {{ x1 }}k{{ j }}{{ x1e }}{% if not rms %} + {{ x2 }}k{{ j }}{{ x2e }}{% endif %};
    }
{%- endfor %}
{%- else %}
{%- if rms %}
    let mean = 0.0f;
{%- else %}
    var s = 0.0f;
    for (var k = i32(lid); k < {{ len }}; k += {{ wg }}i) {
        s += {{ x0 }}base + k{{ x0e }};
    }
    let mean = reduce_sum(lid, s) / f32({{ len }});
{%- endif %}
    var q = 0.0f;
    for (var k = i32(lid); k < {{ len }}; k += {{ wg }}i) {
        let d = {{ x0 }}base + k{{ x0e }} - mean;
        q += d * d;
    }
    let inv = inverseSqrt(reduce_sum(lid, q) / f32({{ len }}) + {{ epsilon }});
    for (var k = i32(lid); k < {{ len }}; k += {{ wg }}i) {
        out[base + k] = ({{ x0 }}base + k{{ x0e }} - mean) * inv * {{ x1 }}k{{ x1e }}{% if not rms %} + {{ x2 }}k{{ x2e }}{% endif %};
    }
{%- endif %}
{%- endif %}
}
