{% import "macros" as macros -%}
// Kiln attention combine kernel: {{ label }}
// schedule: {{ schedule }}; one thread per output element (batch, row, channel) rescales the
// {{ slices }} key slices' unnormalized rows ([batch][slice][row][o.., max, sum]) to their common
// maximum and divides by the total sum.
{{ header }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = i32(wid.x + wid.y * nwg.x) * {{ wg }}i + i32(lid);
    if (idx >= {{ total }}) {
        return;
    }
    let row = idx / {{ dv }}i;
    let c = idx % {{ dv }}i;
    let b = row / {{ sq }};
    let r = row % {{ sq }};
    let neg_inf = kiln_f32_bits(0xff800000u);
    // Slice t of row r at base + t * stride; unrolled, so the slices' loads are in flight together.
    let stride = {{ sq }} * {{ dv + 2 }}i;
    let base = (b * {{ slices }}i * {{ sq }} + r) * {{ dv + 2 }}i;
{%- for t in range(end=slices) %}
    let m{{ t }} = in0[base + {{ t }}i * stride + {{ dv }}i];
    let l{{ t }} = in0[base + {{ t }}i * stride + {{ dv + 1 }}i];
    let o{{ t }} = in0[base + {{ t }}i * stride + c];
{%- endfor %}
{{- macros::combine_slices(splits=slices, m="m", l="l", o="o") }}
    out[idx] = o / l;
}
