// Kiln injective kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}, elems_per_thread={{ ept }}, vec4): a thread
// computes {{ ept }} 4-vector(s) of consecutive elements, consecutive threads consecutive
// 4-vectors (16-byte loads and stores); all of a thread's loads come before its stores.
{{ header }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let base = i32(wid.x + wid.y * nwg.x) * {{ wg * ept }}i + i32(lid);
{%- for j in range(end=ept) %}
    var r{{ j }}: vec4<f32>;
    {
        // 4-vector {{ j }} of this thread (indices past the end are clamped on load, never stored).
        let i4 = base + {{ j * wg }}i;
        var r: vec4<f32>;
{%- for line in loads %}
        {{ line }}
{%- endfor %}
{%- for lane in lanes %}
        {
{%- for line in lane %}
            {{ line }}
{%- endfor %}
        }
{%- endfor %}
        r{{ j }} = r;
    }
{%- endfor %}
{%- for j in range(end=ept) %}
    if (base + {{ j * wg }}i < {{ n4 }}) {
        out[base + {{ j * wg }}i] = r{{ j }};
    }
{%- endfor %}
}
