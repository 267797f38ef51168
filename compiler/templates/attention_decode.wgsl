{% import "macros" as macros -%}
// Kiln decode attention kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}), keys split {{ splits }} ways (flash-decoding); a
// workgroup per (batch, key slice) takes all {{ sq }} query rows of the batch over its slice of
// the runtime key count, {{ bk }} keys per step: {{ lanes }} consecutive threads share a key, each
// reading channels {% if pairs %}2 lane, 2 lane + 1, 2 lane + {{ 2 * lanes }}, .. (a packed f16 cache: one
// word per pair){% else %}lane, lane + {{ lanes }}, ..{% endif %} of its K and V rows (a warp reads whole cache rows
// at consecutive addresses, K and V at coordinates: no index division per element; the next
// step's loads are issued before a step's barriers). The query rows{% if fresh %} and the appended
// key's K and V rows{% endif %} are computed once per workgroup into workgroup memory (an element
// per thread, while the first step's loads are in flight), not by every thread that uses them.
// The lanes' shares of each score meet in workgroup memory; every thread keeps the running max
// of each row (the same in all threads) and the sum and weighted V of its own key slot (online
// softmax); at the end the key slots are added. Each slice writes its partial result (o, max, sum) per (row, channel);
{%- if fused %} the
// last slice of a batch to finish (counted by an atomic in the scratch buffer) rescales and
// adds them, so no combine dispatch follows.
{%- else %} a combine
// kernel rescales and adds the slices.
{%- endif %}
{{ header }}
{%- if fused %}
// Words 0 .. {{ counters }}: per batch (every {{ counter_stride }}th word), the count of slices that have written their partial
// results (zero between dispatches: the last slice resets it; every kernel that binds the
// buffer keeps its counters there, so none finds another's partial results in its counters).
// From word {{ counters }}, per batch {{ block }} words: the partial results
// [slice][row][o_0 .. o_{dv-1}, max, sum] as f32 bits. Atomic, so that the last slice reads
// what the others wrote through the release and acquire of the storage barriers around it.
@group(0) @binding({{ scratch_binding }}) var<storage, read_write> scratch: array<atomic<u32>>;
// Whether this workgroup is its batch's last slice.
var<workgroup> s_last: u32;
{%- endif %}
{% if score_lines %}
fn kiln_score(v: f32, at0: i32, at1: i32, at2: i32) -> f32 {
{%- for line in score_lines %}
    {{ line }}
{%- endfor %}
}
{% endif %}
// The query rows{% if fresh %}, and the K and V rows of the appended key{% endif %}.
var<workgroup> s_q: array<f32, {{ sq * d }}>;
{%- if fresh %}
var<workgroup> s_fk: array<f32, {{ d }}>;
var<workgroup> s_fv: array<f32, {{ dv }}>;
{%- endif %}
// Score shares [row][lane][key slot] (rows of {{ bk + 1 }}: padded against bank conflicts); at
// the end, one row's weighted values [key slot][channel] and sums [key slot].
var<workgroup> s_part: array<f32, {{ part_len }}>;
var<workgroup> s_tile: array<f32, {{ sq * bk }}>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = i32(wid.x);
    let part = i32(wid.y);
    let t = i32(lid);
    // This thread's key slot in each step and its lane (first channel).
    let kk = {% if idle %}min(t / {{ lanes }}i, {{ bk - 1 }}i){% else %}t / {{ lanes }}i{% endif %};
    let g = t % {{ lanes }}i;
    // Keys of this slice: the runtime key count split {{ splits }} ways in whole steps of {{ bk }}
    // keys (trailing slices may be empty for a short context; they write an empty partial result).
    let kc = (({{ sk }} + {{ splits - 1 }}i) / {{ splits }}i + {{ bk - 1 }}i) / {{ bk }}i * {{ bk }}i;
    let k_beg = part * kc;
    let k_end = min(k_beg + kc, {{ sk }});
    let neg_inf = kiln_f32_bits(0xff800000u); // made at run time: WGSL constants must be finite
{%- for i in range(end=nk) %}
    let rk{{ i }} = {% if pairs %}2i * g{% else %}g{% endif %} + {{ k_first[i] }}i;
    let ck{{ i }} = {% if k_past[i] %}min(rk{{ i }}, {{ d - 1 }}i){% else %}rk{{ i }}{% endif %};
{%- endfor %}
{%- for i in range(end=nv) %}
    let rv{{ i }} = {% if pairs %}2i * g{% else %}g{% endif %} + {{ v_first[i] }}i;
    let cv{{ i }} = {% if v_past[i] %}min(rv{{ i }}, {{ dv - 1 }}i){% else %}rv{{ i }}{% endif %};
{%- endfor %}
    // This thread's key of the first step: its channels of K and V, from the cache (loaded
    // first, so they are in flight while the query rows are computed). Each step loads the next
    // step's before it waits at its barriers, so the loads are in flight meanwhile.
{%- for i in range(end=nk) %}
    var k{{ i }} = 0.0f;
{%- endfor %}
{%- for i in range(end=nv) %}
    var v{{ i }} = 0.0f;
{%- endfor %}
    if (k_beg + kk < k_end{% if idle %} && t < {{ lanes * bk }}i{% endif %}) {
{%- for i in range(end=nk) %}
        k{{ i }} = {{ xk }}(b, ck{{ i }}, k_beg + kk);
{%- endfor %}
{%- for i in range(end=nv) %}
        v{{ i }} = {{ xv }}(b, k_beg + kk, cv{{ i }});
{%- endfor %}
    }
    // The query rows, an element per thread.
    for (var e = t; e < {{ sq * d }}i; e += {{ wg }}i) {
        s_q[e] = {{ xq }}b * {{ sq * d }}i + e{{ xqe }};
    }
{%- if fresh %}
    // The key this step appends (the last): its K and V come from the new row's values,
    // computed once (in the slice that has the key, an element per thread), not from the cache,
    // which holds only the keys before it until a later kernel writes the row.
    let j_new = {{ sk }} - 1i;
    let has_new = k_beg <= j_new && j_new < k_end;
    if (has_new) {
{%- if xk_new %}
        for (var e = t; e < {{ d }}i; e += {{ wg }}i) {
            s_fk[e] = {{ xk_new }}(b, e, j_new);
        }
{%- endif %}
{%- if xv_new %}
        for (var e = t; e < {{ dv }}i; e += {{ wg }}i) {
            s_fv[e] = {{ xv_new }}(b, j_new, e);
        }
{%- endif %}
    }
{%- endif %}
    workgroupBarrier();
{%- if fresh %}
{%- for i in range(end=nk) %}{% if xk_new %}
    var fk{{ i }} = 0.0f;
{%- endif %}{% endfor %}
{%- for i in range(end=nv) %}{% if xv_new %}
    var fv{{ i }} = 0.0f;
{%- endif %}{% endfor %}
    if (has_new) {
{%- for i in range(end=nk) %}{% if xk_new %}
        fk{{ i }} = s_fk[ck{{ i }}];
{%- endif %}{% endfor %}
{%- for i in range(end=nv) %}{% if xv_new %}
        fv{{ i }} = s_fv[cv{{ i }}];
{%- endif %}{% endfor %}
    }
    // The first step's key, where it is the appended one.
    let first_new = k_beg + kk >= j_new;
{%- for i in range(end=nk) %}{% if xk_new %}
    k{{ i }} = select(k{{ i }}, fk{{ i }}, first_new);
{%- endif %}{% endfor %}
{%- for i in range(end=nv) %}{% if xv_new %}
    v{{ i }} = select(v{{ i }}, fv{{ i }}, first_new);
{%- endif %}{% endfor %}
{%- endif %}
    // This thread's channels of q, per row (0 past the head dim).
{%- for r in range(end=sq) %}
{%- for i in range(end=nk) %}
{%- if k_past[i] %}
    let q{{ r }}_{{ i }} = select(0.0f, s_q[{{ r * d }}i + ck{{ i }}], rk{{ i }} < {{ d }}i);
{%- else %}
    let q{{ r }}_{{ i }} = s_q[{{ r * d }}i + ck{{ i }}];
{%- endif %}
{%- endfor %}
    var m{{ r }} = neg_inf;
    var l{{ r }} = 0.0f;
{%- for i in range(end=nv) %}
    var o{{ r }}_{{ i }} = 0.0f;
{%- endfor %}
{%- endfor %}
    for (var j0 = k_beg; j0 < k_end; j0 += {{ bk }}i) {
        let jn = j0 + {{ bk }}i + kk;
{%- for i in range(end=nk) %}
        var kn{{ i }} = 0.0f;
{%- endfor %}
{%- for i in range(end=nv) %}
        var vn{{ i }} = 0.0f;
{%- endfor %}
        if (jn < k_end{% if idle %} && t < {{ lanes * bk }}i{% endif %}) {
{%- for i in range(end=nk) %}
            kn{{ i }} = {% if xk_new %}select({{ xk }}(b, ck{{ i }}, jn), fk{{ i }}, jn >= j_new){% else %}{{ xk }}(b, ck{{ i }}, jn){% endif %};
{%- endfor %}
{%- for i in range(end=nv) %}
            vn{{ i }} = {% if xv_new %}select({{ xv }}(b, jn, cv{{ i }}), fv{{ i }}, jn >= j_new){% else %}{{ xv }}(b, jn, cv{{ i }}){% endif %};
{%- endfor %}
        }
{%- if idle %}
        if (t < {{ lanes * bk }}i) {
{%- endif %}
{%- for r in range(end=sq) %}
        s_part[({{ r * lanes }}i + g) * {{ bk + 1 }}i + kk] = {% for i in range(end=nk) %}{% if i + 1 < nk %}fma(q{{ r }}_{{ i }}, k{{ i }}, {% else %}q{{ r }}_{{ i }} * k{{ i }}{% endif %}{% endfor %}{% for i in range(end=nk) %}{% if i + 1 < nk %}){% endif %}{% endfor %};
{%- endfor %}
{%- if idle %}
        }
{%- endif %}
        workgroupBarrier();
        // A thread per (row, key) adds the lanes' shares.
        for (var e = t; e < {{ sq * bk }}i; e += {{ wg }}i) {
            let r = e / {{ bk }}i;
            let x = e % {{ bk }}i;
            let at = r * {{ lanes * (bk + 1) }}i + x;
            var s0 = 0.0f;
            var s1 = 0.0f;
{%- for l in range(end=lanes) %}
            s{{ l % 2 }} += s_part[at + {{ l * (bk + 1) }}i];
{%- endfor %}
            var s = s0 + s1;
            let jx = j0 + x;
            if (jx < k_end) {
{%- if score_lines %}
                s = kiln_score(s, b, r, jx);
{%- endif %}
            } else {
                s = neg_inf;
            }
            s_tile[e] = s;
        }
        workgroupBarrier();
{%- for r in range(end=sq) %}
        {
            var tmax = s_tile[{{ r * bk }}i];
{%- for x in range(start=1, end=bk) %}
            tmax = max(tmax, s_tile[{{ r * bk + x }}i]);
{%- endfor %}
            let m_new = max(m{{ r }}, tmax);
            // Every score masked to -inf so far: subtract 0 instead (exp gives 0, not NaN).
            let mr = select(m_new, 0.0f, m_new == neg_inf);
            let scale = exp(m{{ r }} - mr);
            let p = {% if idle %}select(0.0f, exp(s_tile[{{ r * bk }}i + kk] - mr), t < {{ lanes * bk }}i){% else %}exp(s_tile[{{ r * bk }}i + kk] - mr){% endif %};
            l{{ r }} = fma(l{{ r }}, scale, p);
{%- for i in range(end=nv) %}
            o{{ r }}_{{ i }} = fma(o{{ r }}_{{ i }}, scale, p * v{{ i }});
{%- endfor %}
            m{{ r }} = m_new;
        }
{%- endfor %}
{%- for i in range(end=nk) %}
        k{{ i }} = kn{{ i }};
{%- endfor %}
{%- for i in range(end=nv) %}
        v{{ i }} = vn{{ i }};
{%- endfor %}
    }
    // Add the key slots, one row at a time: each slot's weighted values and sum to workgroup
    // memory, then a thread per channel adds them.
{%- for r in range(end=sq) %}
    workgroupBarrier();
{%- if idle %}
    if (t < {{ lanes * bk }}i) {
{%- else %}
    {
{%- endif %}
{%- for i in range(end=nv) %}
{%- if v_past[i] %}
        if (rv{{ i }} < {{ dv }}i) {
            s_part[kk * {{ dv }}i + cv{{ i }}] = o{{ r }}_{{ i }};
        }
{%- else %}
        s_part[kk * {{ dv }}i + cv{{ i }}] = o{{ r }}_{{ i }};
{%- endif %}
{%- endfor %}
        if (g == 0i) {
            s_part[{{ bk * dv }}i + kk] = l{{ r }};
        }
    }
    workgroupBarrier();
    for (var c = t; c < {{ dv }}i; c += {{ wg }}i) {
        var o = 0.0f;
        var l = 0.0f;
{%- for x in range(end=bk) %}
        o += s_part[{{ x * dv }}i + c];
        l += s_part[{{ bk * dv + x }}i];
{%- endfor %}
{%- if fused %}
        // This slice's partial result in the batch's block of the scratch buffer.
        let base = {{ counters }}i + b * {{ block }}i + (part * {{ sq }}i + {{ r }}i) * {{ dv + 2 }}i;
        atomicStore(&scratch[base + c], bitcast<u32>(o));
        if (c == 0i) {
            atomicStore(&scratch[base + {{ dv }}i], bitcast<u32>(m{{ r }}));
            atomicStore(&scratch[base + {{ dv + 1 }}i], bitcast<u32>(l));
        }
{%- elif splits > 1 %}
        // Partial results, [batch][slice][row][o_0 .. o_{dv-1}, max, sum].
        let base = ((b * {{ splits }}i + part) * {{ sq }}i + {{ r }}i) * {{ dv + 2 }}i;
        out[base + c] = o;
        if (c == 0i) {
            out[base + {{ dv }}i] = m{{ r }};
            out[base + {{ dv + 1 }}i] = l;
        }
{%- else %}
        // One slice: the output rows, [batch][row][channel].
        out[(b * {{ sq }}i + {{ r }}i) * {{ dv }}i + c] = o / l;
{%- endif %}
    }
{%- endfor %}
{%- if fused %}
    // Arrival: this slice's partial results are released before its count, and the last
    // slice acquires the others' after reading the count.
    storageBarrier();
    if (t == 0i) {
        s_last = select(0u, 1u, atomicAdd(&scratch[b * {{ counter_stride }}i], 1u) == {{ splits - 1 }}u);
    }
    if (workgroupUniformLoad(&s_last) == 1u) {
        storageBarrier();
        // A thread per (row, channel) rescales the slices to their common max and divides by
        // the total sum (unrolled over the slices, so each round of loads is in flight together).
        for (var e = t; e < {{ sq * dv }}i; e += {{ wg }}i) {
            let r = e / {{ dv }}i;
            let c = e % {{ dv }}i;
            let at = {{ counters }}i + b * {{ block }}i + r * {{ dv + 2 }}i;
{%- for s in range(end=splits) %}
            let pm{{ s }} = bitcast<f32>(atomicLoad(&scratch[at + {{ s * sq * (dv + 2) + dv }}i]));
            let pl{{ s }} = bitcast<f32>(atomicLoad(&scratch[at + {{ s * sq * (dv + 2) + dv + 1 }}i]));
            let po{{ s }} = bitcast<f32>(atomicLoad(&scratch[at + {{ s * sq * (dv + 2) }}i + c]));
{%- endfor %}
{{- macros::combine_slices(splits=splits, m="pm", l="pl", o="po") }}
            out[(b * {{ sq }}i + r) * {{ dv }}i + c] = o / l;
        }
        // Ready for the next dispatch that binds the scratch buffer.
        if (t == 0i) {
            atomicStore(&scratch[b * {{ counter_stride }}i], 0u);
        }
    }
{%- endif %}
}
