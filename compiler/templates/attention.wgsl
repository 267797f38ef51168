// Kiln attention kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}); a workgroup per (batch, tile of {{ wg }} query
// rows), a thread per query row. Keys and values are staged {{ bk }} at a time in workgroup
// memory (read once per workgroup, consecutive threads on consecutive elements); each thread
// scores its row against the staged keys (+ fused scale/mask expression), keeps a running max
// and sum (online softmax) and the weighted sum of v in registers: the scores are never stored.
{{ header }}
{% if score_lines %}
fn kiln_score(v: f32, i: i32) -> f32 {
{%- for line in score_lines %}
    {{ line }}
{%- endfor %}
}
{% endif %}
var<workgroup> k_tile: array<f32, {{ bk * d }}>;
var<workgroup> v_tile: array<f32, {{ bk * dv }}>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = i32(wid.x);
    let r = i32(wid.y) * {{ wg }}i + i32(lid);
    // Rows past the end compute the batch's last row (uniform control flow for the barriers)
    // and store nothing.
    let row = b * {{ sq }} + min(r, {{ sq }} - 1i);
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
    for (var j0 = 0i; j0 < {{ sk }}; j0 += {{ bk }}i) {
        // K is [batch, d, sk]: consecutive threads read consecutive keys of one channel.
        for (var e = i32(lid); e < {{ bk * d }}i; e += {{ wg }}i) {
            let c = e / {{ bk }}i;
            let jj = e % {{ bk }}i;
            var v = 0.0f;
            if (j0 + jj < {{ sk }}) {
                v = {{ xk }}k_base + c * {{ sk }} + j0 + jj{{ xke }};
            }
            k_tile[jj * {{ d }}i + c] = v;
        }
        // V is [batch, sk, dv]: consecutive threads read consecutive channels of one key.
        for (var e = i32(lid); e < {{ bk * dv }}i; e += {{ wg }}i) {
            let jj = e / {{ dv }}i;
            var v = 0.0f;
            if (j0 + jj < {{ sk }}) {
                v = {{ xv }}v_base + j0 * {{ dv }}i + e{{ xve }};
            }
            v_tile[e] = v;
        }
        workgroupBarrier();
        let kn = min({{ bk }}i, {{ sk }} - j0);
        for (var jj = 0i; jj < kn; jj++) {
            var s = 0.0f;
            let kt = jj * {{ d }}i;
{%- for c in range(end=d) %}
            s = fma(q{{ c }}, k_tile[kt + {{ c }}i], s);
{%- endfor %}
{%- if score_lines %}
            s = kiln_score(s, s_base + j0 + jj);
{%- endif %}
            let m2 = max(m, s);
            let scale = exp(m - m2);
            let p = exp(s - m2);
            l = l * scale + p;
            let vt = jj * {{ dv }}i;
{%- for c in range(end=dv) %}
            o{{ c }} = fma(p, v_tile[vt + {{ c }}i], o{{ c }} * scale);
{%- endfor %}
            m = m2;
        }
        workgroupBarrier();
    }
    if (r < {{ sq }}) {
        let inv = 1.0f / l;
        let o_base = row * {{ dv }}i;
{%- for c in range(end=dv) %}
        out[o_base + {{ c }}i] = o{{ c }} * inv;
{%- endfor %}
    }
}
