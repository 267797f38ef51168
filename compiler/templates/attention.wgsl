// Kiln attention kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}); one thread per query row: scores q·k (+ fused
// scale/mask expression), softmax online over the keys (running max and sum), weighted sum of v
{{ header }}
{% if score_lines %}
fn kiln_score(v: f32, i: i32) -> f32 {
{%- for line in score_lines %}
    {{ line }}
{%- endfor %}
}
{% endif %}
@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = i32(wid.x + wid.y * nwg.x) * {{ wg }}i + i32(lid);
    if (row >= {{ rows }}) {
        return;
    }
    let b = row / {{ sq }};
    let q_base = row * {{ d }}i;
    let k_base = b * {{ d }}i * {{ sk }};
    let v_base = b * {{ sk }} * {{ dv }}i;
    let s_base = row * {{ sk }};
{%- for c in range(end=d) %}
    let q{{ c }} = {{ xq }}q_base + {{ c }}i{{ xqe }};
{%- endfor %}
    let neg_inf = 0xff800000u; // a let, not a constant: WGSL constants must be finite
    var m = bitcast<f32>(neg_inf);
    var l = 0.0f;
{%- for c in range(end=dv) %}
    var o{{ c }} = 0.0f;
{%- endfor %}
    for (var j = 0i; j < {{ sk }}; j++) {
        var s = 0.0f;
{%- for c in range(end=d) %}
        s = fma(q{{ c }}, {{ xk }}k_base + {{ c }}i * {{ sk }} + j{{ xke }}, s);
{%- endfor %}
{%- if score_lines %}
        s = kiln_score(s, s_base + j);
{%- endif %}
        let m2 = max(m, s);
        let scale = exp(m - m2);
        let p = exp(s - m2);
        l = l * scale + p;
        let vb = v_base + j * {{ dv }}i;
{%- for c in range(end=dv) %}
        o{{ c }} = fma(p, {{ xv }}vb + {{ c }}i{{ xve }}, o{{ c }} * scale);
{%- endfor %}
        m = m2;
    }
    let inv = 1.0f / l;
    let o_base = row * {{ dv }}i;
{%- for c in range(end=dv) %}
    out[o_base + {{ c }}i] = o{{ c }} * inv;
{%- endfor %}
}
