{% import "macros" as macros -%}
// Kiln attention kernel: {{ label }}
// schedule: attention(rows={{ br }}, bk={{ bk }}, splits={{ splits }}{% if slices > 1 %}, slices={{ slices }}{% endif %}): flash attention. A
// workgroup of {{ wg }} threads per (batch, tile of {{ br }} query rows) walks the keys {{ bk }} at a
// time, staging K and V as vec4s in workgroup memory. Each row has {{ splits }} thread(s); each holds
// the row's query and its own output row in registers, scores its {{ g }} keys of every block
// (the threads of a subgroup read the same key: one broadcast per vec4) and keeps its own
// online softmax (running maximum and sum), so nothing is reduced inside the key walk. The
// scores are never stored. At the end the row's threads rescale their partial results to
// the common maximum and add them in workgroup memory, which the workgroup writes out.
{%- if slices > 1 %}
// Keys split over {{ slices }} workgroups per row tile (workgroup z): each walks one contiguous slice
// and writes its rows unnormalized, with their maximum and sum ([batch][slice][row][o.., max,
// sum]); a combine kernel rescales and adds the slices.
{%- endif %}
{{ header }}
{% if score_lines %}
fn kiln_score(v: f32, at0: i32, at1: i32, at2: i32) -> f32 {
{%- for line in score_lines %}
    {{ line }}
{%- endfor %}
}
{% endif %}
// The key block: K at 0 and V at {{ v_off }}, each [key][channel / 4] with one vec4 of padding per
// key (conflict-free staging stores). After the key walk: the combined rows, [row][channel / 4].
var<workgroup> kv: array<vec4<f32>, {{ tile }}>;
// Each thread's running maximum and sum: [split][row].
var<workgroup> ml: array<vec2<f32>, {{ wg }}>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = i32(wid.x);
    let r0 = i32(wid.y) * {{ br }}i;
    let r = i32(lid) % {{ br }}i;
    let s = i32(lid) / {{ br }}i;
    let k_base = b * {{ d }}i * {{ sk }};
    let v_base = b * {{ sk }} * {{ dv }}i;
    let neg_inf = kiln_f32_bits(0xff800000u); // made at run time: WGSL constants must be finite
    // Rows past the end read the batch's last row (finite scores) and store nothing.
    let row = b * {{ sq }} + min(r0 + r, {{ sq }} - 1i);
    let rr = min(r0 + r, {{ sq }} - 1i);
    let qb = row * {{ d }}i;
{%- for c in range(end=d4) %}
    let q{{ c }} = vec4<f32>({% for k in range(end=4) %}{% if k > 0 %}, {% endif %}{% if c * 4 + k < d %}{{ xq }}qb + {{ c * 4 + k }}i{{ xqe }}{% else %}0.0f{% endif %}{% endfor %});
{%- endfor %}
    var m = neg_inf;
    var l = 0.0f;
{%- for c in range(end=dv4) %}
    var o{{ c }} = vec4<f32>(0.0f);
{%- endfor %}
    // This thread's keys of a block: s, s + {{ splits }}, ...; their K and V rows.
    let ko = s * {{ ks }}i;
    let vo = {{ v_off }}i + s * {{ vs }}i;
{{- macros::key_slice(sk=sk, slices=slices, bk=bk) }}
    for (var j0 = kbeg; j0 < kend; j0 += {{ bk }}i) {
        // K block: 4 channels of one key per thread and step.
        for (var e = i32(lid); e < {{ bk * d4 }}i; e += {{ wg }}i) {
{%- if k_keys_fast %}
            let jj = e % {{ bk }}i;
            let c = 4i * (e / {{ bk }}i);
{%- else %}
            let jj = e / {{ d4 }}i;
            let c = 4i * (e % {{ d4 }}i);
{%- endif %}
            let j = j0 + jj;
            let kc = k_base + c * {{ sk }} + j;
            var kv4 = vec4<f32>(0.0f);
            if (j < {{ sk }}) {
{%- for k in range(end=4) %}
{%- if d % 4 == 0 %}
                kv4[{{ k }}] = {{ xk }}kc + {{ k }}i * {{ sk }}{{ xke }};
{%- else %}
                if (c + {{ k }}i < {{ d }}i) {
                    kv4[{{ k }}] = {{ xk }}kc + {{ k }}i * {{ sk }}{{ xke }};
                }
{%- endif %}
{%- endfor %}
            }
            kv[jj * {{ ks }}i + c / 4i] = kv4;
        }
        // V block: 4 channels of one key per thread and step.
        for (var e = i32(lid); e < {{ bk * dv4 }}i; e += {{ wg }}i) {
            let jj = e / {{ dv4 }}i;
            let c = 4i * (e % {{ dv4 }}i);
            let j = j0 + jj;
            let vc = v_base + j * {{ dv }}i + c;
            var vv = vec4<f32>(0.0f);
            if (j < {{ sk }}) {
{%- for k in range(end=4) %}
{%- if dv % 4 == 0 %}
                vv[{{ k }}] = {{ xv }}vc + {{ k }}i{{ xve }};
{%- else %}
                if (c + {{ k }}i < {{ dv }}i) {
                    vv[{{ k }}] = {{ xv }}vc + {{ k }}i{{ xve }};
                }
{%- endif %}
{%- endfor %}
            }
            kv[{{ v_off }}i + jj * {{ vs }}i + c / 4i] = vv;
        }
        workgroupBarrier();
        // Scores of this thread's {{ g }} keys, unrolled over the channels.
{%- for kk in range(end=g) %}
        var a{{ kk }} = 0.0f;
{%- endfor %}
{%- for c in range(end=d4) %}
{%- for kk in range(end=g) %}
        a{{ kk }} += dot(q{{ c }}, kv[ko + {{ kk * splits * ks + c }}i]);
{%- endfor %}
{%- endfor %}
        var bm = neg_inf;
{%- for kk in range(end=g) %}
        {
            let j = j0 + s + {{ kk * splits }}i;
{%- if score_lines %}
            a{{ kk }} = kiln_score(a{{ kk }}, b, rr, min(j, {{ sk }} - 1i));
{%- endif %}
            a{{ kk }} = select(neg_inf, a{{ kk }}, j < kend);
            bm = max(bm, a{{ kk }});
        }
{%- endfor %}
        // A larger maximum rescales what was summed so far (from -inf: by 0).
        if (bm > m) {
            let alpha = exp(m - bm);
            l *= alpha;
{%- for c in range(end=dv4) %}
            o{{ c }} *= alpha;
{%- endfor %}
            m = bm;
        }
        // Every score masked to -inf so far: subtract 0 instead (exp gives 0, not NaN).
        let mr = select(m, 0.0f, m == neg_inf);
{%- for kk in range(end=g) %}
        {
            let p = exp(a{{ kk }} - mr);
            l += p;
{%- for c in range(end=dv4) %}
            o{{ c }} = fma(vec4<f32>(p), kv[vo + {{ kk * splits * vs + c }}i], o{{ c }});
{%- endfor %}
        }
{%- endfor %}
        workgroupBarrier();
    }
    // Combine the row's threads: rescale each to the row's maximum, divide by the total sum.
    // A row whose every score is -inf has sum 0: 0 / 0 gives NaN, as softmax does.
    ml[lid] = vec2<f32>(m, l);
    workgroupBarrier();
    var mx = neg_inf;
{%- for t in range(end=splits) %}
    mx = max(mx, ml[{{ t * br }}i + r].x);
{%- endfor %}
    let mxr = select(mx, 0.0f, mx == neg_inf);
    var total = 0.0f;
{%- for t in range(end=splits) %}
    {
        let e = ml[{{ t * br }}i + r];
        total = fma(e.y, exp(e.x - mxr), total);
    }
{%- endfor %}
{%- if slices > 1 %}
    // Unnormalized: the combine kernel divides by the sum over the slices.
    let f = exp(m - mxr);
{%- else %}
    let f = exp(m - mxr) / total;
{%- endif %}
{%- for t in range(end=splits) %}
    if (s == {{ t }}i) {
{%- for c in range(end=dv4) %}
        kv[r * {{ dv4 }}i + {{ c }}i] = {% if t > 0 %}kv[r * {{ dv4 }}i + {{ c }}i] + {% endif %}o{{ c }} * f;
{%- endfor %}
    }
    workgroupBarrier();
{%- endfor %}
{%- if slices > 1 %}
    // The workgroup's rows of this slice, consecutive threads on consecutive channels; each
    // row's first thread adds its maximum and sum.
    let pbase = (b * {{ slices }}i + slice) * {{ sq }};
    for (var e = i32(lid); e < {{ br * dv }}i; e += {{ wg }}i) {
        let rr = e / {{ dv }}i;
        let c = e % {{ dv }}i;
        if (r0 + rr < {{ sq }}) {
            out[(pbase + r0 + rr) * {{ dv + 2 }}i + c] = kv[rr * {{ dv4 }}i + c / 4i][c % 4i];
        }
    }
    if (s == 0i && r0 + r < {{ sq }}) {
        out[(pbase + r0 + r) * {{ dv + 2 }}i + {{ dv }}i] = mx;
        out[(pbase + r0 + r) * {{ dv + 2 }}i + {{ dv + 1 }}i] = total;
    }
{%- else %}
    // The workgroup's rows, consecutive threads on consecutive channels.
    for (var e = i32(lid); e < {{ br * dv }}i; e += {{ wg }}i) {
        let rr = e / {{ dv }}i;
        let c = e % {{ dv }}i;
        if (r0 + rr < {{ sq }}) {
            out[(b * {{ sq }} + r0 + rr) * {{ dv }}i + c] = kv[rr * {{ dv4 }}i + c / 4i][c % 4i];
        }
    }
{%- endif %}
}
