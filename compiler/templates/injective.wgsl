// Kiln injective kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}, elems_per_thread={{ ept }})
{{ header }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = i32(wid.x + wid.y * nwg.x) * {{ wg * ept }}i + i32(lid);
{%- for j in range(end=ept) %}
    {
        let idx = base + {{ j * wg }}i;
        if (idx < {{ n }}) {
{%- for line in body %}
            {{ line }}
{%- endfor %}
        }
    }
{%- endfor %}
}
