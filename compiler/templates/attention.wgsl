// Kiln attention kernel: {{ label }}
// schedule: attention(rows={{ br }}, bk={{ bk }}, tm={{ tm }}): flash attention. A workgroup of
// {{ ny }}x{{ nx }} threads per (batch, tile of {{ br }} query rows) walks the keys {{ bk }} at a
// time with an online softmax; the scores are never stored. Q^T stays in workgroup memory; per
// key block K^T and V are staged as vec4s, thread (ty, tx) scores its {{ tm }} rows against 4
// keys (a {{ tm }}x4 register tile), the block's row maxima are combined through workgroup
// memory, the probabilities are staged, and the thread adds them times V into its {{ tm }} rows
// x {{ cg * 4 }} value channels. Each thread keeps its own share of the row sums; they are added
// once at the end.
{{ header }}
{% if score_lines %}
fn kiln_score(v: f32, i: i32) -> f32 {
{%- for line in score_lines %}
    {{ line }}
{%- endfor %}
}
{% endif %}
// Q^T: [d][row groups] of {{ tm }} rows.
var<workgroup> q_tile: array<{{ qt }}, {{ d * ny }}>;
// K^T: [d][key groups] of 4 keys, one vec4 of padding per channel against bank conflicts.
var<workgroup> k_tile: array<vec4<f32>, {{ d * (nx + 1) }}>;
// Probabilities: [key][row groups] of {{ tm }} rows.
var<workgroup> p_tile: array<{{ qt }}, {{ bk * ny }}>;
// V: [key][channel groups] of 4 channels (zero past dv).
var<workgroup> v_tile: array<vec4<f32>, {{ bk * dvg }}>;
// Per-thread row maxima of a block, then row sums: [row][tx].
var<workgroup> red: array<f32, {{ br * nx }}>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = i32(wid.x);
    let r0 = i32(wid.y) * {{ br }}i;
    let tx = i32(lid) % {{ nx }}i;
    let ty = i32(lid) / {{ nx }}i;
    let k_base = b * {{ d }}i * {{ sk }};
    let v_base = b * {{ sk }} * {{ dv }}i;
    let neg_inf = kiln_f32_bits(0xff800000u); // made at run time: WGSL constants must be finite
    // Rows past the end read the batch's last row (finite scores) and store nothing.
    for (var e = i32(lid); e < {{ br * d }}i; e += {{ wg }}i) {
        let r = e / {{ d }}i;
        let c = e % {{ d }}i;
        let row = b * {{ sq }} + min(r0 + r, {{ sq }} - 1i);
{%- if tm == 1 %}
        q_tile[c * {{ ny }}i + r] = {{ xq }}row * {{ d }}i + c{{ xqe }};
{%- else %}
        q_tile[c * {{ ny }}i + r / {{ tm }}i][r % {{ tm }}i] = {{ xq }}row * {{ d }}i + c{{ xqe }};
{%- endif %}
    }
    // The score index of each of the thread's rows (its last valid row past the end).
{%- for i in range(end=tm) %}
    let sb{{ i }} = (b * {{ sq }} + min(r0 + ty * {{ tm }}i + {{ i }}i, {{ sq }} - 1i)) * {{ sk }};
    var m{{ i }} = neg_inf;
    var l{{ i }} = 0.0f;
{%- for g in range(end=cg) %}
    var o{{ i }}_{{ g }} = vec4<f32>(0.0f);
{%- endfor %}
{%- endfor %}
    for (var j0 = 0i; j0 < {{ sk }}; j0 += {{ bk }}i) {
        // K^T block: 4 keys of one channel per thread and step.
        for (var e = i32(lid); e < {{ d * nx }}i; e += {{ wg }}i) {
{%- if k_keys_fast %}
            let c = e / {{ nx }}i;
            let g = e % {{ nx }}i;
{%- else %}
            let c = e % {{ d }}i;
            let g = e / {{ d }}i;
{%- endif %}
            let j = j0 + 4i * g;
            let kc = k_base + c * {{ sk }} + j;
            var kv = vec4<f32>(0.0f);
{%- for k in range(end=4) %}
            if (j + {{ k }}i < {{ sk }}) {
                kv[{{ k }}] = {{ xk }}kc + {{ k }}i{{ xke }};
            }
{%- endfor %}
            k_tile[c * {{ nx + 1 }}i + g] = kv;
        }
        // V block: 4 channels of one key per thread and step.
        for (var e = i32(lid); e < {{ bk * dvg }}i; e += {{ wg }}i) {
            let j = j0 + e / {{ dvg }}i;
            let c = 4i * (e % {{ dvg }}i);
            let vc = v_base + j * {{ dv }}i + c;
            var vv = vec4<f32>(0.0f);
{%- for k in range(end=4) %}
            if (j < {{ sk }} && c + {{ k }}i < {{ dv }}i) {
                vv[{{ k }}] = {{ xv }}vc + {{ k }}i{{ xve }};
            }
{%- endfor %}
            v_tile[e] = vv;
        }
        workgroupBarrier();
        // Scores: rows ty*{{ tm }}.., keys j0 + 4*tx ..; unrolled over the channels, with two
        // partial sums per row (even and odd channels) so the FMA chains are half as long.
{%- for i in range(end=tm) %}
        var s{{ i }} = vec4<f32>(0.0f);
        var t{{ i }} = vec4<f32>(0.0f);
{%- endfor %}
{%- for c in range(end=d) %}
        {
            let qv = q_tile[{{ c * ny }}i + ty];
            let kv = k_tile[{{ c * (nx + 1) }}i + tx];
{%- for i in range(end=tm) %}
{%- if c % 2 == 0 %}
            s{{ i }} = fma(vec4<f32>(qv{{ comp[i] }}), kv, s{{ i }});
{%- else %}
            t{{ i }} = fma(vec4<f32>(qv{{ comp[i] }}), kv, t{{ i }});
{%- endif %}
{%- endfor %}
        }
{%- endfor %}
{%- for i in range(end=tm) %}
        s{{ i }} += t{{ i }};
{%- endfor %}
        let jt = j0 + 4i * tx;
        let live = vec4<i32>(jt) + vec4<i32>(0i, 1i, 2i, 3i) < vec4<i32>({{ sk }});
{%- for i in range(end=tm) %}
{%- if score_lines %}
{%- for k in range(end=4) %}
        s{{ i }}[{{ k }}] = kiln_score(s{{ i }}[{{ k }}], sb{{ i }} + min(jt + {{ k }}i, {{ sk }} - 1i));
{%- endfor %}
{%- endif %}
        s{{ i }} = select(vec4<f32>(neg_inf), s{{ i }}, live);
        red[(ty * {{ tm }}i + {{ i }}i) * {{ nx }}i + tx] = max(max(s{{ i }}.x, s{{ i }}.y), max(s{{ i }}.z, s{{ i }}.w));
{%- endfor %}
        workgroupBarrier();
{%- for i in range(end=tm) %}
        {
            let rr = (ty * {{ tm }}i + {{ i }}i) * {{ nx }}i;
            let bm = {% for t in range(end=nx) %}{% if t > 0 %}, {% endif %}{% if t < nx - 1 %}max({% endif %}red[rr + {{ t }}i]{% endfor %}{% for t in range(start=1, end=nx) %}){% endfor %};
            let m_new = max(m{{ i }}, bm);
            // Every score masked to -inf so far: subtract 0 instead (exp gives 0, not NaN).
            let mr = select(m_new, 0.0f, m_new == neg_inf);
            let alpha = exp(m{{ i }} - mr);
            s{{ i }} = exp(s{{ i }} - vec4<f32>(mr));
            l{{ i }} = fma(l{{ i }}, alpha, (s{{ i }}.x + s{{ i }}.y) + (s{{ i }}.z + s{{ i }}.w));
{%- for g in range(end=cg) %}
            o{{ i }}_{{ g }} *= alpha;
{%- endfor %}
            m{{ i }} = m_new;
        }
{%- endfor %}
{%- for k in range(end=4) %}
        p_tile[(4i * tx + {{ k }}i) * {{ ny }}i + ty] = {{ qt }}({% for i in range(end=tm) %}{% if i > 0 %}, {% endif %}s{{ i }}[{{ k }}]{% endfor %});
{%- endfor %}
        workgroupBarrier();
        // Probabilities times V, unrolled over the block's keys.
{%- for jj in range(end=bk) %}
        {
            let pv = p_tile[{{ jj * ny }}i + ty];
{%- for g in range(end=cg) %}
            let vv{{ g }} = v_tile[{{ jj * dvg + g * nx }}i + tx];
{%- endfor %}
{%- for i in range(end=tm) %}
{%- for g in range(end=cg) %}
            o{{ i }}_{{ g }} = fma(vec4<f32>(pv{{ comp[i] }}), vv{{ g }}, o{{ i }}_{{ g }});
{%- endfor %}
{%- endfor %}
        }
{%- endfor %}
        workgroupBarrier();
    }
    // Row sums: each thread's share, added over the row's {{ nx }} threads.
{%- for i in range(end=tm) %}
    red[(ty * {{ tm }}i + {{ i }}i) * {{ nx }}i + tx] = l{{ i }};
{%- endfor %}
    workgroupBarrier();
{%- for i in range(end=tm) %}
    {
        let r = r0 + ty * {{ tm }}i + {{ i }}i;
        let rr = (ty * {{ tm }}i + {{ i }}i) * {{ nx }}i;
        let l = {% for t in range(end=nx) %}{% if t > 0 %} + {% endif %}red[rr + {{ t }}i]{% endfor %};
        // A row whose every score is -inf has l = 0: 0 * inf gives NaN, as softmax does.
        let inv = 1.0f / l;
        if (r < {{ sq }}) {
            let ob = (b * {{ sq }} + r) * {{ dv }}i;
{%- for g in range(end=cg) %}
{%- for k in range(end=4) %}
            if (4i * (tx + {{ g * nx }}i) + {{ k }}i < {{ dv }}i) {
                out[ob + 4i * (tx + {{ g * nx }}i) + {{ k }}i] = o{{ i }}_{{ g }}[{{ k }}] * inv;
            }
{%- endfor %}
{%- endfor %}
        }
    }
{%- endfor %}
}
