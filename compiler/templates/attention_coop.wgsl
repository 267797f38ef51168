{% import "macros" as macros -%}
enable f16;
enable wgpu_cooperative_matrix;
// Kiln attention kernel (cooperative matrices): {{ label }}
// schedule: coop_attention(sg={{ subgroups }}, bk={{ bk }}{% if slices > 1 %}, slices={{ slices }}{% endif %}): flash attention on 16x16x16
// fragments, f16 x f16 -> f32. A workgroup of {{ subgroups }} subgroups of 32 lanes (the variant requires
// subgroups of exactly 32) per (batch, tile of {{ br }} query rows); subgroup s owns rows 16 s .. 16 s + 15.
// The query block is staged as f16 once and each subgroup keeps its rows as {{ dfrags | length }} A fragments.
// The keys go by in blocks of {{ bk }}, K and V staged as f16 (each thread loads its share of the next
// block into registers while the current one is used). Per block, each subgroup:
//  - multiplies its scores Q K^T into {{ kfrags | length }} f32 fragments and stores them to its scratch rows;
//  - runs the online softmax there, two lanes per row (lane l: row l % 16, half l / 16 of the
//    keys): the score expression, the row maximum (one shuffle), the rescale of the lane's
//    output channels and its sum, and the probabilities as f16 over its query rows;
//  - multiplies P V into {{ vfrags | length }} f32 fragments, stores them to its scratch rows, and each lane
//    adds its half of its row's channels to the output it keeps in registers.
// Barriers per key block: 4 (WGSL orders a subgroup's fragment stores before its lanes' reads
// only through one).
// (naga takes the subgroup builtins without an `enable subgroups;`, which it does not parse yet.)
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
// The key block, [channel][key / 4], rows of {{ ks }} vec4s.
var<workgroup> k_sh: array<vec4<f16>, {{ d * ks }}>;
// The value block, [key][channel / 4], rows of {{ vs }} vec4s.
var<workgroup> v_sh: array<vec4<f16>, {{ bk * vs }}>;
// Per query row, rows of {{ ps }} vec4s: first the query row [channel / 4], then each block's
// probabilities [key / 4].
var<workgroup> p_sh: array<vec4<f16>, {{ br * ps }}>;
// Per query row, rows of {{ ss4 }} vec4s of f32: each block's scores [key / 4], then its P V
// [channel / 4] (a lane's vec4 reads fall in distinct banks for each 8 lanes).
var<workgroup> s_sh: array<vec4<f32>, {{ br * ss4 }}>;

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = i32(wid.x);
    let r0 = i32(wid.y) * {{ br }}i;
    let sg = lid / 32u;
    let lane = lid % 32u;
    // This lane's row of the tile and its half of the row's keys and channels.
    let row = i32(sg) * 16i + i32(lane % 16u);
    let half = i32(lane / 16u);
    let neg_inf = kiln_f32_bits(0xff800000u); // made at run time: WGSL constants must be finite
    // The query block, a vec4 of channels per thread and step, every load issued before the
    // first store. Rows past the end read the batch's last row (finite scores) and store
    // nothing.
{%- for it in range(end=nq) %}
    let qe{{ it }} = i32(lid) + {{ it * wg }}i;
    var qr{{ it }} = vec4<f32>(0.0f);
    {
        let r = min(qe{{ it }} / {{ d4 }}i, {{ br - 1 }}i);
        let c = 4i * (qe{{ it }} % {{ d4 }}i);
        let base = (b * {{ sq }} + min(r0 + r, {{ sq }} - 1i)) * {{ d }}i + c;
{%- for k in range(end=4) %}
        qr{{ it }}[{{ k }}] = {{ xq }}base + {{ k }}i{{ xqe }};
{%- endfor %}
    }
{%- endfor %}
{%- if score_lines %}
    // The lane's query row within the batch, clamped (a coordinate of its scores).
    let rr = min(r0 + row, {{ sq }} - 1i);
{%- endif %}
{{- macros::key_slice(sk=sk, slices=slices, bk=bk) }}
{{- macros::stage_first_block(setup=stage_setup, load=stage_load) }}
{%- for it in range(end=nq) %}
{%- if (it + 1) * wg > br * d4 %}
    if (qe{{ it }} < {{ br * d4 }}i) {
        p_sh[(qe{{ it }} / {{ d4 }}i) * {{ ps }}i + qe{{ it }} % {{ d4 }}i] = vec4<f16>(qr{{ it }});
    }
{%- else %}
    p_sh[(qe{{ it }} / {{ d4 }}i) * {{ ps }}i + qe{{ it }} % {{ d4 }}i] = vec4<f16>(qr{{ it }});
{%- endif %}
{%- endfor %}
    workgroupBarrier();
    // The subgroup's query rows as A fragments, one per 16 channels.
    let p0 = sg * {{ 16 * ps }}u;
    let s0 = sg * {{ 16 * ss4 }}u;
{%- for c in dfrags %}
    let q{{ c }} = coopLoadT<coop_mat16x16<f16, A>>(&p_sh[p0 + {{ c * 4 }}u], {{ ps }}u);
{%- endfor %}
    // Running maximum and (this lane's keys') sum of the lane's row, and its output channels.
    var m = neg_inf;
    var l = 0.0f;
{%- for c in range(end=hv4) %}
    var o{{ c }} = vec4<f32>(0.0f);
{%- endfor %}
    for (var j0 = kbeg; j0 < kend; j0 += {{ bk }}i) {
        // This block into workgroup memory (every subgroup is past the last block's reads).
{%- for line in stage_kstore %}
        {{ line }}
{%- endfor %}
{%- for line in stage_vstore %}
        {{ line }}
{%- endfor %}
        workgroupBarrier();
        // The next block's loads, in flight during this block's arithmetic.
        if (j0 + {{ bk }}i < kend) {
            let jn = j0 + {{ bk }}i;
{%- for line in stage_load %}
            {{ line }}
{%- endfor %}
        }
        // Scores: 16 rows x 16 keys per fragment, into the subgroup's scratch rows.
{%- for j in kfrags %}
        {
            var acc = coop_mat16x16<f32, C>();
{%- for c in dfrags %}
            acc = coopMultiplyAdd(q{{ c }}, coopLoadT<coop_mat16x16<f16, B>>(&k_sh[{{ c * 16 * ks + j * 4 }}u], {{ ks }}u), acc);
{%- endfor %}
            coopStoreT(acc, &s_sh[s0 + {{ j * 4 }}u], {{ ss4 }}u);
        }
{%- endfor %}
        workgroupBarrier();
        // The lane's half of its row's scores: the score expression; keys past this
        // workgroup's range score -inf.
        let kb = j0 + half * {{ hk }}i;
        let sr = u32(row) * {{ ss4 }}u + u32(half) * {{ hk4 }}u;
        var pm = neg_inf;
{%- for g in range(end=hk4) %}
        let s4_{{ g }} = s_sh[sr + {{ g }}u];
{%- endfor %}
{%- for g in range(end=hk4) %}
{%- for k in range(end=4) %}
{%- set i = 4 * g + k %}
        var x{{ i }} = s4_{{ g }}[{{ k }}];
{%- if score_lines %}
        x{{ i }} = kiln_score(x{{ i }}, b, rr, min(kb + {{ i }}i, {{ sk }} - 1i));
{%- endif %}
        x{{ i }} = select(neg_inf, x{{ i }}, kb + {{ i }}i < kend);
        pm = max(pm, x{{ i }});
{%- endfor %}
{%- endfor %}
        // The row's maximum over the block (the row's other lane is 16 lanes away).
        pm = max(pm, subgroupShuffleXor(pm, 16u));
        let bm = max(m, pm);
        // Every score masked to -inf so far: subtract 0 instead (exp gives 0, not NaN). A
        // larger maximum rescales what was summed so far (from -inf: by 0).
        let mr = select(bm, 0.0f, bm == neg_inf);
        let alpha = exp(m - mr);
        m = bm;
        l *= alpha;
{%- for c in range(end=hv4) %}
        o{{ c }} *= alpha;
{%- endfor %}
        // Probabilities as f16 over the row's query (or last block's probabilities).
        let pr = u32(row) * {{ ps }}u + u32(half) * {{ hk4 }}u;
{%- for i in range(end=hk4) %}
        {
            let e = exp(vec4<f32>(x{{ 4 * i }}, x{{ 4 * i + 1 }}, x{{ 4 * i + 2 }}, x{{ 4 * i + 3 }}) - vec4<f32>(mr));
            l += dot(e, vec4<f32>(1.0f));
            p_sh[pr + {{ i }}u] = vec4<f16>(e);
        }
{%- endfor %}
        workgroupBarrier();
        // P V: 16 rows x 16 channels per fragment, into the subgroup's scratch rows.
{%- for j in kfrags %}
        let a{{ j }} = coopLoadT<coop_mat16x16<f16, A>>(&p_sh[p0 + {{ j * 4 }}u], {{ ps }}u);
{%- endfor %}
{%- for c in vfrags %}
        {
            var acc = coop_mat16x16<f32, C>();
{%- for j in kfrags %}
            acc = coopMultiplyAdd(a{{ j }}, coopLoadT<coop_mat16x16<f16, B>>(&v_sh[{{ j * 16 * vs + c * 4 }}u], {{ vs }}u), acc);
{%- endfor %}
            coopStoreT(acc, &s_sh[s0 + {{ c * 4 }}u], {{ ss4 }}u);
        }
{%- endfor %}
        workgroupBarrier();
        let vr = u32(row) * {{ ss4 }}u + u32(half) * {{ hv4 }}u;
{%- for c in range(end=hv4) %}
        o{{ c }} += s_sh[vr + {{ c }}u];
{%- endfor %}
    }
    // The row's sum over both lanes. A row whose every score is -inf has sum 0: 0 / 0 gives
    // NaN, as softmax does.
    let total = l + subgroupShuffleXor(l, 16u);
    if (r0 + row < {{ sq }}) {
{%- if slices > 1 %}
        // Unnormalized, with the row's maximum and sum: the combine kernel divides by the sum
        // over the slices.
        let ob = ((b * {{ slices }}i + slice) * {{ sq }} + r0 + row) * {{ dv + 2 }}i + half * {{ hv }}i;
        if (half == 0i) {
            out[ob + {{ dv }}i] = m;
            out[ob + {{ dv + 1 }}i] = total;
        }
{%- for c in range(end=hv4) %}
{%- for k in range(end=4) %}
        out[ob + {{ 4 * c + k }}i] = o{{ c }}[{{ k }}];
{%- endfor %}
{%- endfor %}
{%- else %}
        let ob = (b * {{ sq }} + r0 + row) * {{ dv }}i + half * {{ hv }}i;
        let inv = 1.0f / total;
{%- for c in range(end=hv4) %}
{%- for k in range(end=4) %}
        out[ob + {{ 4 * c + k }}i] = o{{ c }}[{{ k }}] * inv;
{%- endfor %}
{%- endfor %}
{%- endif %}
    }
}
