// Kiln scatter-nd kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}); one thread per output element, scanning the
// update rows in order (the last matching update wins for reduction 'none')
{{ header }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = i32(wid.x + wid.y * nwg.x) * {{ wg }}i + i32(lid);
    if (idx >= {{ n }}) {
        return;
    }
{%- for line in coord_lines %}
    {{ line }}
{%- endfor %}
    var v = in0[idx];
    for (var u = 0i; u < {{ rows }}; u++) {
        var hit = true;
{%- for line in match_lines %}
        {{ line }}
{%- endfor %}
        if (hit) {
            let w = in2[u * {{ slice }} + rest];
            v = {{ combine }};
        }
    }
    out[idx] = v;
}
