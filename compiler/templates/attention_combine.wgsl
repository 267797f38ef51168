{% import "macros" as macros -%}
// Kiln decode attention combine kernel: {{ label }}
// schedule: {{ schedule }}; one thread per output element (batch, row, channel) rescales the
// {{ splits }} key slices' partial results to their common max and divides by the total sum.
{{ header }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = i32(wid.x + wid.y * nwg.x) * {{ wg }}i + i32(lid);
    if (idx >= {{ total }}) {
        return;
    }
    let row = idx / {{ dv }}i;
    let c = idx % {{ dv }}i;
    let b = row / {{ sq }}i;
    let r = row % {{ sq }}i;
    let neg_inf = kiln_f32_bits(0xff800000u);
    // Unrolled over the slices, so each round of loads is in flight together.
    let base = (b * {{ splits }}i * {{ sq }}i + r) * {{ dv + 2 }}i;
{%- for s in range(end=splits) %}
    let m{{ s }} = in{{ partial }}[base + {{ s * sq * (dv + 2) + dv }}i];
    let l{{ s }} = in{{ partial }}[base + {{ s * sq * (dv + 2) + dv + 1 }}i];
    let o{{ s }} = in{{ partial }}[base + {{ s * sq * (dv + 2) }}i + c];
{%- endfor %}
{{- macros::combine_slices(splits=splits, m="m", l="l", o="o") }}
    out[idx] = o / l;
}
