{% import "macros" as macros %}
// Kiln activation quantizer: {{ label }}
// schedule: row_reduce(workgroup_size={{ wg }}); one workgroup per row of {{ k }} values{% if norm %}, RMS-normalized
// first (one pass for the mean square, then x * inv * scale as the graph computes it){% endif %}. Per block of 32 values:
// d = max|x| / 127, q = round(x * (1 / d)) (ties to even). Each thread rounds 8 consecutive
// values ({{ chunks }} step{% if chunks > 1 %}s{% endif %}); the 4 threads of a block share its maximum through workgroup memory.
{%- if packed %}
// Output: the blocks as {{ words }} words each (d, d times the integers' sum, then the 32 integers as
// signed bytes, 4 per word), read by integer-dot GEMVs.
{%- else %}
// Output: f32 values q * d.
{%- endif %}
{{ header }}

var<workgroup> scratch: array<f32, {{ wg }}>;
{%- if norm %}

{{ macros::workgroup_reduce(name="reduce_sum", combine="a + b", halves=halves) }}
{%- endif %}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= u32({{ rows }})) {
        return;
    }
    // The row's first vec4.
    let base = row * {{ k4 }}u;
{%- if norm %}
    var ss = 0.0f;
    for (var j = lid; j < {{ k4 }}u; j += {{ wg }}u) {
        let v = in0[base + j];
        ss += dot(v, v);
    }
    let inv = inverseSqrt(reduce_sum(lid, ss) / {{ k }}.0 + {{ eps }});
{%- endif %}
    for (var c = 0u; c < {{ chunks }}u; c++) {
        // Values 8e .. 8e + 8 of the row: part e % 4 of block e / 4.
        let e = c * {{ wg }}u + lid;
        let live = e < {{ k8 }}u;
        var a = vec4<f32>(0.0);
        var b = vec4<f32>(0.0);
        if (live) {
            a = in0[base + 2u * e];
            b = in0[base + 2u * e + 1u];
{%- if norm %}
            a = a * inv * in1[2u * e];
            b = b * inv * in1[2u * e + 1u];
{%- endif %}
        }
{{ macros::q8_round_part(t="lid", packed=packed, dest="out", blk="(row * " ~ nb ~ "u + e / 4u) * " ~ words ~ "u") }}
    }
}
