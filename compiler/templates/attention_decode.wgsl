// Kiln decode attention kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}), keys split {{ splits }} ways (flash-decoding); a
// workgroup per (batch, key slice) takes all {{ sq }} query rows of the batch over its slice of
// the runtime key count: the slice's keys are scored {{ bk }} at a time into workgroup memory
// (a thread per (row, key)), then a thread per (row, value channel) keeps a running max, sum and
// weighted sum of v (online softmax). Each slice writes its partial result (o, max, sum) per
// (row, channel); a combine kernel rescales and adds the slices.
{{ header }}
{% if score_lines %}
fn kiln_score(v: f32, i: i32) -> f32 {
{%- for line in score_lines %}
    {{ line }}
{%- endfor %}
}
{% endif %}
var<workgroup> q_tile: array<f32, {{ sq * d }}>;
var<workgroup> s_tile: array<f32, {{ sq * bk }}>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = i32(wid.x);
    let part = i32(wid.y);
    // Keys of this slice: the runtime key count split {{ splits }} ways (trailing slices may be
    // empty for a short context; they write an empty partial result).
    let kc = ({{ sk }} + {{ splits - 1 }}i) / {{ splits }}i;
    let k_beg = part * kc;
    let k_end = min(k_beg + kc, {{ sk }});
    let k_base = b * {{ d }}i * {{ sk }};
    let v_base = b * {{ sk }} * {{ dv }}i;
    let neg_inf = kiln_f32_bits(0xff800000u); // made at run time: WGSL constants must be finite
    for (var e = i32(lid); e < {{ sq * d }}i; e += {{ wg }}i) {
        q_tile[e] = {{ xq }}b * {{ sq * d }}i + e{{ xqe }};
    }
{%- for p in range(end=pairs) %}
    var rm{{ p }} = neg_inf;
    var rl{{ p }} = 0.0f;
    var ro{{ p }} = 0.0f;
{%- endfor %}
    workgroupBarrier();
    for (var j0 = k_beg; j0 < k_end; j0 += {{ bk }}i) {
        // Scores of the tile: K is [batch, d, sk], so consecutive threads read consecutive keys.
        for (var e = i32(lid); e < {{ sq * bk }}i; e += {{ wg }}i) {
            let r = e / {{ bk }}i;
            let j = j0 + e % {{ bk }}i;
            var s = neg_inf;
            if (j < k_end) {
                // Unrolled, so the {{ d }} loads of the key are in flight together.
                let qt = r * {{ d }}i;
                let kj = k_base + j;
{%- for c in range(end=d) %}
                let k{{ c }} = {{ xk }}kj + {{ c }}i * {{ sk }}{{ xke }};
{%- endfor %}
                var s0 = 0.0f;
                var s1 = 0.0f;
{%- for c in range(end=d) %}
                s{{ c % 2 }} = fma(q_tile[qt + {{ c }}i], k{{ c }}, s{{ c % 2 }});
{%- endfor %}
                s = s0 + s1;
{%- if score_lines %}
                s = kiln_score(s, (b * {{ sq }}i + r) * {{ sk }} + j);
{%- endif %}
            }
            s_tile[e] = s;
        }
        workgroupBarrier();
        let kn = min({{ bk }}i, k_end - j0);
{%- for p in range(end=pairs) %}
        {
            let e = i32(lid) + {{ p * wg }}i;
            if (e < {{ sq * dv }}i) {
                let r = e / {{ dv }}i;
                let c = e % {{ dv }}i;
                let st = r * {{ bk }}i;
                var tmax = neg_inf;
                for (var jj = 0i; jj < kn; jj++) {
                    tmax = max(tmax, s_tile[st + jj]);
                }
                let m_new = max(rm{{ p }}, tmax);
                // Every score masked to -inf so far: subtract 0 instead (exp gives 0, not NaN).
                let mr = select(m_new, 0.0f, m_new == neg_inf);
                var ls = 0.0f;
                var acc = 0.0f;
                // V is [batch, sk, dv]: consecutive threads read consecutive channels of a key;
                // four keys per step, so their loads are in flight together.
                let vc = v_base + j0 * {{ dv }}i + c;
                var jj = 0i;
                for (; jj + 3i < kn; jj += 4i) {
                    let v0 = {{ xv }}vc + jj * {{ dv }}i{{ xve }};
                    let v1 = {{ xv }}vc + (jj + 1i) * {{ dv }}i{{ xve }};
                    let v2 = {{ xv }}vc + (jj + 2i) * {{ dv }}i{{ xve }};
                    let v3 = {{ xv }}vc + (jj + 3i) * {{ dv }}i{{ xve }};
                    let p0 = exp(s_tile[st + jj] - mr);
                    let p1 = exp(s_tile[st + jj + 1i] - mr);
                    let p2 = exp(s_tile[st + jj + 2i] - mr);
                    let p3 = exp(s_tile[st + jj + 3i] - mr);
                    ls += (p0 + p1) + (p2 + p3);
                    acc = fma(p0, v0, fma(p1, v1, fma(p2, v2, fma(p3, v3, acc))));
                }
                for (; jj < kn; jj++) {
                    let pr = exp(s_tile[st + jj] - mr);
                    ls += pr;
                    acc = fma(pr, {{ xv }}vc + jj * {{ dv }}i{{ xve }}, acc);
                }
                let scale = exp(rm{{ p }} - mr);
                rl{{ p }} = fma(rl{{ p }}, scale, ls);
                ro{{ p }} = fma(ro{{ p }}, scale, acc);
                rm{{ p }} = m_new;
            }
        }
{%- endfor %}
        workgroupBarrier();
    }
{%- if splits > 1 %}
    // Partial results, [batch][slice][row][o_0 .. o_{dv-1}, max, sum].
{%- else %}
    // One slice: the output rows, [batch][row][channel].
{%- endif %}
{%- for p in range(end=pairs) %}
    {
        let e = i32(lid) + {{ p * wg }}i;
        if (e < {{ sq * dv }}i) {
{%- if splits > 1 %}
            let r = e / {{ dv }}i;
            let c = e % {{ dv }}i;
            let base = ((b * {{ splits }}i + part) * {{ sq }}i + r) * {{ dv + 2 }}i;
            out[base + c] = ro{{ p }};
            if (c == 0i) {
                out[base + {{ dv }}i] = rm{{ p }};
                out[base + {{ dv + 1 }}i] = rl{{ p }};
            }
{%- else %}
            out[b * {{ sq * dv }}i + e] = ro{{ p }} / rl{{ p }};
{%- endif %}
        }
    }
{%- endfor %}
}
