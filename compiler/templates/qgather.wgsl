{% import "quant" as quant -%}
// Kiln packed-table gather kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}, elems_per_thread={{ ept }}); out[t, e] = W[in0[t], e], W packed as {{ block }} ([{{ n }}, {{ k }}])
// Each thread decodes {{ ept }} consecutive values of one gathered row from the packed u32 words
// (in1), so no dequantized copy of the table exists. Negative indices count from the end;
// out-of-range ones are clamped into the table.
{{ header }}

{{ quant::quant_fns(block=block, row_bytes=row_bytes, block_elems=be, block_bytes=bb, parts=parts, row_stride=row_stride, block_stride=block_stride, dot=false) }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = i32(wid.x + wid.y * nwg.x) * {{ wg }}i + i32(lid);
    // Thread t covers row t / {{ per_row }} of the output, values {{ ept }} (t % {{ per_row }}) ...
    let r = t / {{ per_row }}i;
    if (r >= {{ rows }}) {
        return;
    }
    let e = (t % {{ per_row }}i) * {{ ept }}i;
    let i = in0[r];
    let row = u32(clamp(select(i, i + {{ n }}i, i < 0i), 0i, {{ n - 1 }}i));
    let o = r * {{ k }}i + e;
{%- if ept == 4 %}
    let v = kiln_qget4(row, u32(e));
    out[o] = v.x;
    out[o + 1i] = v.y;
    out[o + 2i] = v.z;
    out[o + 3i] = v.w;
{%- else %}
    out[o] = kiln_qget(row, u32(e));
{%- endif %}
}
