{#- Shared template pieces. -#}
{% macro workgroup_reduce(name, combine, halves) -%}
fn {{ name }}(lid: u32, x: f32) -> f32 {
    scratch[lid] = x;
    workgroupBarrier();
{%- for s in halves %}
    if (lid < {{ s }}u) {
        let a = scratch[lid];
        let b = scratch[lid + {{ s }}u];
        scratch[lid] = {{ combine }};
    }
    workgroupBarrier();
{%- endfor %}
    let r = scratch[0];
    workgroupBarrier();
    return r;
}
{%- endmacro workgroup_reduce %}

{#- A flash-attention workgroup's keys, [kbeg, kend): with `slices` > 1, workgroup z walks one
    contiguous run of whole `bk`-key blocks of the `sk` keys; else all of them. -#}
{% macro key_slice(sk, slices, bk) %}
{%- if slices > 1 %}
    // This workgroup's slice of the keys, in whole blocks: [kbeg, kend).
    let slice = i32(wid.z);
    let kchunk = (({{ sk }} + {{ slices - 1 }}i) / {{ slices }}i + {{ bk - 1 }}i) / {{ bk }}i * {{ bk }}i;
    let kbeg = slice * kchunk;
    let kend = min({{ sk }}, kbeg + kchunk);
{%- else %}
    let kbeg = 0i;
    let kend = {{ sk }};
{%- endif %}
{%- endmacro key_slice %}

{#- The K and V staging of the register-tiled and cooperative-matrix flash attention
    (`codegen::TiledStaging`): each thread's coordinates and registers (`setup` lines), then the
    loads of the first block from `kbeg` (`load` lines). -#}
{% macro stage_first_block(setup, load) %}
    // This thread's share of the K and V blocks: fixed coordinates, a register each.
{%- for line in setup %}
    {{ line }}
{%- endfor %}
    // The first block's loads, in flight with the query block's.
    {
        let jn = kbeg;
{%- for line in load %}
        {{ line }}
{%- endfor %}
    }
{%- endmacro stage_first_block %}

{#- Combines a decode attention's `splits` key slices for one output element: with each
    slice's maximum, sum and weighted value in `{m}{s}`, `{l}{s}`, `{o}{s}` and `neg_inf` in
    scope, leaves `o` and `l` rescaled to the slices' common maximum (a slice whose keys were
    all masked adds nothing); the output is `o / l`. -#}
{% macro combine_slices(splits, m, l, o) %}
    var m = neg_inf;
{%- for s in range(end=splits) %}
    m = max(m, {{ m }}{{ s }});
{%- endfor %}
    let mr = select(m, 0.0f, m == neg_inf);
    var l = 0.0f;
    var o = 0.0f;
{%- for s in range(end=splits) %}
    let w{{ s }} = exp({{ m }}{{ s }} - mr);
    l = fma({{ l }}{{ s }}, w{{ s }}, l);
    o = fma({{ o }}{{ s }}, w{{ s }}, o);
{%- endfor %}
{%- endmacro combine_slices %}

{#- `workgroup_reduce`'s sum over a workgroup of `threads` threads with subgroup operations:
    each subgroup adds its values (`subgroupAdd`) and its first invocation stores the sum;
    then every subgroup adds those sums again (each invocation reads every `ssz`-th of them,
    `ssz` the subgroup size), so every thread ends with the total: two barriers and one or
    two workgroup-memory reads per thread instead of a barrier per halving. Subgroups cover
    consecutive invocation indices, as the kernels' subgroup variants assume. -#}
{% macro subgroup_reduce_sum(name, threads, min_ssz) -%}
fn {{ name }}(lid: u32, x: f32, ssz: u32) -> f32 {
    let s = subgroupAdd(x);
    if (lid % ssz == 0u) {
        scratch[lid / ssz] = s;
    }
    workgroupBarrier();
    // A constant trip count (subgroups are at least {{ min_ssz }} wide), so the second
    // subgroupAdd stays in uniform control flow.
    let nsub = {{ threads }}u / ssz;
    var v = 0.0;
    for (var j = 0u; j < {{ threads }}u / {{ min_ssz }}u / {{ min_ssz }}u + 1u; j++) {
        let i = lid % ssz + j * ssz;
        if (i < nsub) {
            v += scratch[i];
        }
    }
    let r = subgroupAdd(v);
    workgroupBarrier();
    return r;
}
{%- endmacro subgroup_reduce_sum %}

{#- The 8-bit rounding of a GEMV's outputs (an activation quantizer fused as its epilogue,
    `KernelBody::QGemm::q8_out`): the workgroup's `wout` consecutive outputs of each of its
    `rows` rows of x wait in `kiln_yq` (row r at r * wout); thread `t` (of `threads`, at least
    one per word: rows * wout / 4) rounds 4 of them, as quantize_rows.wgsl does: per block of
    32, d = max|y| / 127 and q = round(y * (1 / d)) (ties to even). The 8 threads of a block
    share their maxima (and integer sums) through `kiln_ym`, two barriers in all (with `sg`, by
    subgroup shuffles: the 8 are consecutive invocations of one subgroup; no barrier). Stored as
    f32 q * d, or with `packed` as `words`-word blocks (d, d times the integers' sum, the
    bytes). Needs `wid`, `m0` and `mm` (rows of x) in scope. -#}
{% macro q8_round_outputs(t, threads, rows, wout, nout, packed, words, sg=false) -%}
    workgroupBarrier();
    // Word j of the outputs: row r, values 4(w % 8) .. + 4 of the workgroup's block w / 8.
    let qj = {{ t }};
    let qlive = qj < {{ rows * wout / 4 }}u;
    let qr = qj / {{ wout / 4 }}u;
    let qw = qj % {{ wout / 4 }}u;
    let qo = min(qj, {{ rows * wout / 4 - 1 }}u) * 4u;
    let qv = vec4<f32>(kiln_yq[qo], kiln_yq[qo + 1u], kiln_yq[qo + 2u], kiln_yq[qo + 3u]);
    let qa = abs(qv);
{%- if sg %}
    // A block's 8 words are all live or all not, so the shuffles stay within live ones.
    let qm1 = max(max(qa.x, qa.y), max(qa.z, qa.w));
    let qm2 = max(qm1, subgroupShuffleXor(qm1, 1u));
    let qm4 = max(qm2, subgroupShuffleXor(qm2, 2u));
    let qmax = max(qm4, subgroupShuffleXor(qm4, 4u));
{%- else %}
    if (qlive) {
        kiln_ym[qj] = max(max(qa.x, qa.y), max(qa.z, qa.w));
    }
    workgroupBarrier();
    // The block's first word.
    let qb = qj & ~7u;
    var qmax = 0.0;
    if (qlive) {
        for (var e = 0u; e < 8u; e++) {
            qmax = max(qmax, kiln_ym[qb + e]);
        }
    }
{%- endif %}
    let qd = qmax / 127.0;
    let qid = select(0.0, 1.0 / qd, qd > 0.0);
    let qq = round(qv * qid);
    let gb = wid.x * {{ wout / 32 }}u + qw / 8u;
    let qm = m0 + qr;
    let qstore = qlive && qm < mm && gb < {{ nout / 32 }}u;
{%- if packed %}
{%- if sg %}
    let qs1 = dot(qq, vec4<f32>(1.0));
    let qs2 = qs1 + subgroupShuffleXor(qs1, 1u);
    let qs4 = qs2 + subgroupShuffleXor(qs2, 2u);
    let qsum = qs4 + subgroupShuffleXor(qs4, 4u);
{%- else %}
    workgroupBarrier();
    if (qlive) {
        kiln_ym[qj] = dot(qq, vec4<f32>(1.0));
    }
    workgroupBarrier();
{%- endif %}
    if (qstore) {
        let ob = (qm * {{ nout / 32 }}u + gb) * {{ words }}u;
        out[ob + 2u + qw % 8u] = pack4xI8(vec4<i32>(qq));
        if (qw % 8u == 0u) {
{%- if sg %}
            let s = qsum;
{%- else %}
            var s = 0.0;
            for (var e = 0u; e < 8u; e++) {
                s += kiln_ym[qb + e];
            }
{%- endif %}
            out[ob] = bitcast<u32>(qd);
            out[ob + 1u] = bitcast<u32>(qd * s);
        }
    }
{%- else %}
    if (qstore) {
        let oo = qm * {{ nout }}u + gb * 32u + 4u * (qw % 8u);
        out[oo] = qq.x * qd;
        out[oo + 1u] = qq.y * qd;
        out[oo + 2u] = qq.z * qd;
        out[oo + 3u] = qq.w * qd;
    }
{%- endif %}
{%- endmacro q8_round_outputs %}


{#- One step of the 8-bit rounding of a row (quantize_rows.wgsl, and a GEMV that rounds its own
    x): with `a`, `b` (values 8e .. 8e + 8 of the row, part e % 4 of block e / 4), `e` and
    `live` in scope, thread `t` shares the block's maximum with its 3 neighbours through
    `scratch`, rounds, and stores: with `packed` the block's words at `blk` of `dest` (scale,
    scaled integer sum, bytes), else f32 values into `out` at `base`. -#}
{% macro q8_round_part(t, packed, dest="out", blk="") %}        let m4 = max(abs(a), abs(b));
        // The previous step's readers are done with `scratch`.
        workgroupBarrier();
        scratch[{{ t }}] = max(max(m4.x, m4.y), max(m4.z, m4.w));
        workgroupBarrier();
        let g = {{ t }} & ~3u;
        let amax = max(max(scratch[g], scratch[g + 1u]), max(scratch[g + 2u], scratch[g + 3u]));
        let d = amax / 127.0;
        let id = select(0.0, 1.0 / d, d > 0.0);
        let qa = round(a * id);
        let qb = round(b * id);
{%- if packed %}
        workgroupBarrier();
        scratch[{{ t }}] = dot(qa + qb, vec4<f32>(1.0));
        workgroupBarrier();
        if (live) {
            let blk = {{ blk }};
            {{ dest }}[blk + 2u + 2u * (e & 3u)] = pack4xI8(vec4<i32>(qa));
            {{ dest }}[blk + 3u + 2u * (e & 3u)] = pack4xI8(vec4<i32>(qb));
            if ((e & 3u) == 0u) {
                {{ dest }}[blk] = bitcast<u32>(d);
                {{ dest }}[blk + 1u] = bitcast<u32>(d * (scratch[g] + scratch[g + 1u] + scratch[g + 2u] + scratch[g + 3u]));
            }
        }
{%- else %}
        if (live) {
            out[base + 2u * e] = qa * d;
            out[base + 2u * e + 1u] = qb * d;
        }
{%- endif %}
{%- endmacro q8_round_part %}

{#- A GEMV's tail: workgroups from `from` on run other kernels' parts (`lines`, over `n`
    threads; a decode step's K/V appends moved here, lower::defer), a thread per element, and
    leave. The branch is uniform over the workgroup, so the GEMV's barriers stay uniform. #}
{% macro tail_parts(from, threads, n, lines) %}
    if (wid.x >= {{ from }}u) {
        // Another kernel's parts: {{ n }} threads from workgroup {{ from }} on.
        let idx = i32((wid.x - {{ from }}u) * {{ threads }}u + lidx);
        if (idx < {{ n }}i) {
{%- for line in lines %}
            {{ line }}
{%- endfor %}
        }
        return;
    }
{%- endmacro tail_parts %}
