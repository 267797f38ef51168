{% import "macros" as macros -%}
// Kiln attention kernel: {{ label }}
// schedule: attention(rows={{ br }}, bk={{ bk }}, splits={{ tc }}{% if slices > 1 %}, slices={{ slices }}{% endif %}, tm=4{% if pbuf %}, pbuf{% endif %}{% if vhalf %}, vhalf{% endif %}{% if sg %}, sg{% endif %}): register-tiled
// flash attention. A workgroup of {{ wg }} threads per (batch, tile of {{ br }} query rows) stages the
// query block once and walks the keys {{ bk }} at a time, staging K and V in workgroup memory (each
// thread loads its share of the next block into registers while the current one is used). Thread
// (tr, tc) = (lid / {{ tc }}, lid % {{ tc }}) owns rows 4 tr .. 4 tr + 3 of the tile: it computes their
// scores against {{ kg }} vec4 group(s) of keys (tc, tc + {{ tc }}, ..) as a 4 x {{ kg * 4 }} register tile (a vec4
// of Q rows times a vec4 of keys per channel: 16 FMAs per two vec4 reads) and their output
// channels in {{ og }} vec4 group(s) (tc, tc + {{ tc }}, ..). Per block: the row maxima of the {{ tc }} threads
// of a row group meet {% if sg %}by subgroup shuffles{% else %}in workgroup memory{% endif %}, every thread
// rescales with the same maximum, writes its probabilities {% if pbuf %}into their own block{% else %}over the
// (no longer needed) K block{% endif %}, and adds P x V from there. The row sums are added once at the
// end. The scores are never stored. Barriers per key block: {% if vhalf %}6 (the value block in two halves){% elif sg %}2{% elif pbuf %}3{% else %}4{% endif %}.
{%- if sg %}
// Subgroup variant: a row group's {{ tc }} threads are consecutive lanes of one subgroup (naga
// takes the subgroup builtins without an `enable subgroups;`, which it does not parse yet).
{%- endif %}
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
// The query block, [channel][row / 4].
var<workgroup> qs: array<array<vec4<f32>, {{ br4 }}>, {{ d }}>;
{%- if pbuf %}
// The key block, [channel][key / 4] (the key group XOR-swizzled by the channel: conflict-free
// staging along channels).
var<workgroup> kp: array<array<vec4<f32>, {{ bk4 }}>, {{ d }}>;
// The probabilities, [key][row / 4] (the row group swizzled by the key group). Both blocks are
// two-dimensional: a constant outer index and a thread-invariant inner one leave wgpu's index
// clamps out of the unrolled loops.
var<workgroup> pp: array<array<vec4<f32>, {{ br4 }}>, {{ bk }}>;
{%- elif k2d %}
// The key block, [channel][key / 4] (the key group XOR-swizzled by the channel: conflict-free
// staging along channels); after the scores, the probabilities [key][row / 4] (the row group
// swizzled by the key group): as many keys as rows, so both are rows of {{ bk4 }} vec4s, and
// two-dimensional (wgpu's index clamps stay out of the unrolled loops).
var<workgroup> kp: array<array<vec4<f32>, {{ bk4 }}>, {{ k2d_rows }}>;
{%- else %}
// The key block, [channel][key / 4] flattened (the key group XOR-swizzled by the channel:
// conflict-free staging along channels); after the scores, the probabilities [key][row / 4]
// flattened (the row group swizzled by the key group): as large as the larger of the two.
var<workgroup> kp: array<vec4<f32>, {{ kp_len }}>;
{%- endif %}
// The value block, [key][channel / 4] (zero past the head dim){% if vhalf %}: half of it, {{ hb }} keys at a time{% endif %}.
var<workgroup> vs: array<array<vec4<f32>, {{ dvs }}>, {% if vhalf %}{{ hb }}{% else %}{{ bk }}{% endif %}>;
{%- if not sg %}
// Each thread's row maxima (in the key walk) or sums (at the end): [row group][thread].
var<workgroup> red: array<array<vec4<f32>, {{ tc }}>, {{ br4 }}>;
{%- endif %}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = i32(wid.x);
    let r0 = i32(wid.y) * {{ br }}i;
    let tc = i32(lid) % {{ tc }}i;
    let tr = i32(lid) / {{ tc }}i;
    let neg_inf = kiln_f32_bits(0xff800000u); // made at run time: WGSL constants must be finite
    // The query block, 4 rows of one channel per thread and step (consecutive threads on
    // consecutive channels), every load issued before the first store (one memory latency, not
    // one per step). Rows past the end read the batch's last row (finite scores) and store
    // nothing.
{%- for it in range(end=nq) %}
    let qe{{ it }} = i32(lid) + {{ it * wg }}i;
    var qr{{ it }} = vec4<f32>(0.0f);
    {
        let c = qe{{ it }} % {{ d }}i;
        let g = min(qe{{ it }} / {{ d }}i, {{ br4 - 1 }}i);
{%- for k in range(end=4) %}
        qr{{ it }}[{{ k }}] = {{ xq }}(b * {{ sq }} + min(r0 + 4i * g + {{ k }}i, {{ sq }} - 1i)) * {{ d }}i + c{{ xqe }};
{%- endfor %}
    }
{%- endfor %}
{%- if score_lines %}
    // The thread's 4 query rows within the batch, clamped (coordinates of their scores).
{%- for i in range(end=4) %}
    let rr{{ i }} = min(r0 + 4i * tr + {{ i }}i, {{ sq }} - 1i);
{%- endfor %}
{%- endif %}
    // Running maximum and sum of the thread's 4 rows (the maximum is the row's, the same in
    // all {{ tc }} threads of the row group; the sum covers this thread's keys).
    var m = vec4<f32>(neg_inf);
    var l = vec4<f32>(0.0f);
{%- for g in range(end=og) %}
{%- for i in range(end=4) %}
    var o{{ g }}_{{ i }} = vec4<f32>(0.0f);
{%- endfor %}
{%- endfor %}
    // This thread's key groups in the probability block, and their row-group swizzle.
{%- for kk in range(end=kg) %}
    let kq{{ kk }} = tc + {{ kk * tc }}i;
    let ps{{ kk }} = tr ^ (kq{{ kk }} & {{ psw }}i);
{%- endfor %}
{{- macros::key_slice(sk=sk, slices=slices, bk=bk) }}
{{- macros::stage_first_block(setup=stage_setup, load=stage_load) }}
{%- for it in range(end=nq) %}
{%- if (it + 1) * wg > d * br4 %}
    if (qe{{ it }} < {{ d * br4 }}i) {
        qs[qe{{ it }} % {{ d }}i][qe{{ it }} / {{ d }}i] = qr{{ it }};
    }
{%- else %}
    qs[qe{{ it }} % {{ d }}i][qe{{ it }} / {{ d }}i] = qr{{ it }};
{%- endif %}
{%- endfor %}
    for (var j0 = kbeg; j0 < kend; j0 += {{ bk }}i) {
        // This block into workgroup memory: K as [channel][key / 4] (the key group swizzled
        // by the channel), V as [key][channel / 4]{% if pbuf %} (V past the barrier: every thread is past the last
        // block's P x V there){% endif %}.
{%- for line in stage_kstore %}
        {{ line }}
{%- endfor %}
{%- if not pbuf %}
{%- for line in stage_vstore %}
        {{ line }}
{%- endfor %}
{%- endif %}
        workgroupBarrier();
{%- if pbuf %}
{%- for line in stage_vstore %}
        {{ line }}
{%- endfor %}
{%- endif %}
        // The next block's loads, in flight during this block's arithmetic{% if vhalf %} (V's after the
        // second half of this block's V is stored){% endif %}.
        if (j0 + {{ bk }}i < kend) {
            let jn = j0 + {{ bk }}i;
{%- if vhalf %}
{%- for line in stage_kload %}
            {{ line }}
{%- endfor %}
{%- else %}
{%- for line in stage_load %}
            {{ line }}
{%- endfor %}
{%- endif %}
        }
        // Scores: a{key group}_{row} holds 4 keys of one row.
{%- for kk in range(end=kg) %}
{%- for i in range(end=4) %}
        var a{{ kk }}_{{ i }} = vec4<f32>(0.0f);
{%- endfor %}
{%- endfor %}
{%- for sw in kswz %}
{%- set c = loop.index0 %}
        {
            let q = qs[{{ c }}][tr];
{%- for kk in range(end=kg) %}
{%- if k2d %}
            let k{{ kk }} = kp[{{ c }}][kq{{ kk }} ^ {{ sw }}i];
{%- else %}
            let k{{ kk }} = kp[{{ c * bk4 }}i + (kq{{ kk }} ^ {{ sw }}i)];
{%- endif %}
{%- for i in range(end=4) %}
            a{{ kk }}_{{ i }} = fma(vec4<f32>(q[{{ i }}]), k{{ kk }}, a{{ kk }}_{{ i }});
{%- endfor %}
{%- endfor %}
        }
{%- endfor %}
        // The score expression; keys past this workgroup's range score -inf.
        var pm = vec4<f32>(neg_inf);
{%- for kk in range(end=kg) %}
        {
            let j = j0 + 4i * kq{{ kk }};
            let live = vec4<i32>(j) + vec4<i32>(0i, 1i, 2i, 3i) < vec4<i32>(kend);
{%- for i in range(end=4) %}
{%- if score_lines %}
{%- for k in range(end=4) %}
            a{{ kk }}_{{ i }}[{{ k }}] = kiln_score(a{{ kk }}_{{ i }}[{{ k }}], b, rr{{ i }}, min(j + {{ k }}i, {{ sk }} - 1i));
{%- endfor %}
{%- endif %}
            a{{ kk }}_{{ i }} = select(vec4<f32>(neg_inf), a{{ kk }}_{{ i }}, live);
            pm[{{ i }}] = max(pm[{{ i }}], max(max(a{{ kk }}_{{ i }}.x, a{{ kk }}_{{ i }}.y), max(a{{ kk }}_{{ i }}.z, a{{ kk }}_{{ i }}.w)));
{%- endfor %}
        }
{%- endfor %}
{%- if sg %}
        // The rows' maximum over the block: a butterfly over the row group's lanes (every
        // thread of the row group gets the same).
{%- for x in xors %}
        pm = max(pm, subgroupShuffleXor(pm, {{ x }}u));
{%- endfor %}
        let bm = max(m, pm);
{%- else %}
        red[tr][tc] = pm;
        workgroupBarrier();
        // The rows' maximum over the block (every thread of the row group reads the same).
        var bm = m;
{%- for t in range(end=tc) %}
        bm = max(bm, red[tr][{{ t }}]);
{%- endfor %}
{%- endif %}
        // Every score masked to -inf so far: subtract 0 instead (exp gives 0, not NaN). A
        // larger maximum rescales what was summed so far (from -inf: by 0).
        let mr = select(bm, vec4<f32>(0.0f), bm == vec4<f32>(neg_inf));
        let alpha = exp(m - mr);
        m = bm;
        l *= alpha;
{%- for g in range(end=og) %}
{%- for i in range(end=4) %}
        o{{ g }}_{{ i }} *= alpha[{{ i }}];
{%- endfor %}
{%- endfor %}
{%- if sg and not pbuf %}
        // Every thread is past its K reads before the probabilities overwrite them.
        workgroupBarrier();
{%- endif %}
{%- if pbuf %}
        // Probabilities, into their block (every thread is past the last block's P x V).
{%- else %}
        // Probabilities, written over the K block (every thread is past its K reads).
{%- endif %}
{%- for kk in range(end=kg) %}
        {
{%- for i in range(end=4) %}
            let p{{ i }} = exp(a{{ kk }}_{{ i }} - vec4<f32>(mr[{{ i }}]));
{%- endfor %}
            l += vec4<f32>(dot(p0, vec4<f32>(1.0f)), dot(p1, vec4<f32>(1.0f)), dot(p2, vec4<f32>(1.0f)), dot(p3, vec4<f32>(1.0f)));
            let jl = 4i * kq{{ kk }};
{%- if k2d %}
            {{ pb }}[jl][ps{{ kk }}] = vec4<f32>(p0.x, p1.x, p2.x, p3.x);
            {{ pb }}[jl + 1i][ps{{ kk }}] = vec4<f32>(p0.y, p1.y, p2.y, p3.y);
            {{ pb }}[jl + 2i][ps{{ kk }}] = vec4<f32>(p0.z, p1.z, p2.z, p3.z);
            {{ pb }}[jl + 3i][ps{{ kk }}] = vec4<f32>(p0.w, p1.w, p2.w, p3.w);
{%- else %}
            kp[jl * {{ br4 }}i + ps{{ kk }}] = vec4<f32>(p0.x, p1.x, p2.x, p3.x);
            kp[(jl + 1i) * {{ br4 }}i + ps{{ kk }}] = vec4<f32>(p0.y, p1.y, p2.y, p3.y);
            kp[(jl + 2i) * {{ br4 }}i + ps{{ kk }}] = vec4<f32>(p0.z, p1.z, p2.z, p3.z);
            kp[(jl + 3i) * {{ br4 }}i + ps{{ kk }}] = vec4<f32>(p0.w, p1.w, p2.w, p3.w);
{%- endif %}
        }
{%- endfor %}
        workgroupBarrier();
        // Output += P x V, one key at a time: a vec4 of rows times a vec4 of channels.
{%- for sw in pswz %}
{%- set j = loop.index0 %}
{%- set vrow = j %}
{%- if vhalf and j >= hb %}
{%- set vrow = j - hb %}
{%- endif %}
{%- if vhalf and j == hb %}
        // The value block's second half over the first (every thread is past its reads),
        // then the next block's V loads.
        workgroupBarrier();
{%- for line in stage_vstore1 %}
        {{ line }}
{%- endfor %}
        if (j0 + {{ bk }}i < kend) {
            let jn = j0 + {{ bk }}i;
{%- for line in stage_vload %}
            {{ line }}
{%- endfor %}
        }
        workgroupBarrier();
{%- endif %}
        {
{%- if k2d %}
            let p = {{ pb }}[{{ j }}][tr ^ {{ sw }}i];
{%- else %}
            let p = kp[{{ j * br4 }}i + (tr ^ {{ sw }}i)];
{%- endif %}
{%- for g in range(end=og) %}
            let v{{ g }} = vs[{{ vrow }}][tc + {{ g * tc }}i];
{%- for i in range(end=4) %}
            o{{ g }}_{{ i }} = fma(vec4<f32>(p[{{ i }}]), v{{ g }}, o{{ g }}_{{ i }});
{%- endfor %}
{%- endfor %}
        }
{%- endfor %}
{%- if not pbuf %}
        // The next block's K overwrites these probabilities.
        workgroupBarrier();
{%- endif %}
    }
    // The rows' sums over the row group's threads. A row whose every score is -inf has sum 0:
    // 0 / 0 gives NaN, as softmax does.
{%- if sg %}
    var total = l;
{%- for x in xors %}
    total += subgroupShuffleXor(total, {{ x }}u);
{%- endfor %}
{%- else %}
    red[tr][tc] = l;
    workgroupBarrier();
    var total = vec4<f32>(0.0f);
{%- for t in range(end=tc) %}
    total += red[tr][{{ t }}];
{%- endfor %}
{%- endif %}
{%- if slices > 1 %}
    // Unnormalized, with the rows' maximum and sum: the combine kernel divides by the sum over
    // the slices.
    let pbase = (b * {{ slices }}i + slice) * {{ sq }};
{%- else %}
    let inv = 1.0f / total;
{%- endif %}
{%- for i in range(end=4) %}
    if (r0 + 4i * tr + {{ i }}i < {{ sq }}) {
{%- if slices > 1 %}
        let ob = (pbase + r0 + 4i * tr + {{ i }}i) * {{ dv + 2 }}i;
        if (tc == 0i) {
            out[ob + {{ dv }}i] = m[{{ i }}];
            out[ob + {{ dv + 1 }}i] = total[{{ i }}];
        }
{%- else %}
        let ob = (b * {{ sq }} + r0 + 4i * tr + {{ i }}i) * {{ dv }}i;
{%- endif %}
{%- for g in range(end=og) %}
        {
            let c = 4i * (tc + {{ g * tc }}i);
{%- if og * tc > dv4 %}
            if (c < {{ dv }}i) {
{%- else %}
            {
{%- endif %}
{%- for k in range(end=4) %}
{%- if dv % 4 != 0 %}
                if (c + {{ k }}i < {{ dv }}i) {
                    out[ob + c + {{ k }}i] = o{{ g }}_{{ i }}[{{ k }}]{% if slices == 1 %} * inv[{{ i }}]{% endif %};
                }
{%- else %}
                out[ob + c + {{ k }}i] = o{{ g }}_{{ i }}[{{ k }}]{% if slices == 1 %} * inv[{{ i }}]{% endif %};
{%- endif %}
{%- endfor %}
            }
        }
{%- endfor %}
    }
{%- endfor %}
}
