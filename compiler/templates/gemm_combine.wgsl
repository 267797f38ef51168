// Kiln split-K combine kernel: {{ label }}
// schedule: {{ schedule }}; C[b] = epilogue(sum over {{ ksplit }} K slices of the partial products)
// The partial sums (binding in{{ partial }}) are laid out [batch][slice][M][N]; one thread per
// element of C adds its {{ ksplit }} slices in slice order, then applies the fused epilogue.
{{ header }}
{% if epilogue %}
fn kiln_epilogue(v: {{ ty }}, gm: i32, gn: i32, batch: i32) -> {{ ty }} {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = i32(wid.x + wid.y * nwg.x) * {{ wg }}i + i32(lid);
    if (idx < {{ total }}) {
        let batch = idx / {{ mn }};
        let r = idx % {{ mn }};
        let base = batch * {{ ksplit }}i * {{ mn }} + r;
        var v = in{{ partial }}[base];
{%- for s in range(start=1, end=ksplit) %}
        v += in{{ partial }}[base + {{ s }}i * {{ mn }}];
{%- endfor %}
{%- if epilogue %}
        out[idx] = kiln_epilogue(v, r / {{ n }}, r % {{ n }}, batch);
{%- else %}
        out[idx] = v;
{%- endif %}
    }
}
