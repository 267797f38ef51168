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

{#- The 8-bit rounding of a GEMV's outputs (an activation quantizer fused as its epilogue,
    `KernelBody::QGemm::q8_out`): the workgroup's `wout` consecutive outputs of each of its
    `rows` rows of x wait in `kiln_yq` (row r at r * wout); after a barrier, thread `t` (of
    `threads`) rounds 4 of them at a time, as quantize_rows.wgsl does: per block of 32, d =
    max|y| / 127 and q = round(y * (1 / d)) (ties to even). Stored as f32 q * d, or with
    `packed` as `words`-word blocks (d, d times the integers' sum, the bytes). Needs `wid`, `m0`
    and `mm` (rows of x) in scope. -#}
{% macro q8_round_outputs(t, threads, rows, wout, nout, packed, words) -%}
    workgroupBarrier();
    for (var j = {{ t }}; j < {{ rows * wout / 4 }}u; j += {{ threads }}u) {
        // Word w of row r's outputs: values 4(w % 8) .. + 4 of the workgroup's block w / 8.
        let r = j / {{ wout / 4 }}u;
        let w = j % {{ wout / 4 }}u;
        let gb = wid.x * {{ wout / 32 }}u + w / 8u;
        let qm = m0 + r;
        if (qm < mm && gb < {{ nout / 32 }}u) {
            let base = r * {{ wout }}u + (w / 8u) * 32u;
            var amax = 0.0;
            for (var e = 0u; e < 32u; e++) {
                amax = max(amax, abs(kiln_yq[base + e]));
            }
            let d = amax / 127.0;
            let id = select(0.0, 1.0 / d, d > 0.0);
            let o = base + 4u * (w % 8u);
            let q = round(vec4<f32>(kiln_yq[o], kiln_yq[o + 1u], kiln_yq[o + 2u], kiln_yq[o + 3u]) * id);
{%- if packed %}
            let ob = (qm * {{ nout / 32 }}u + gb) * {{ words }}u;
            out[ob + 2u + w % 8u] = pack4xI8(vec4<i32>(q));
            if (w % 8u == 0u) {
                var s = 0.0;
                for (var e = 0u; e < 32u; e++) {
                    s += round(kiln_yq[base + e] * id);
                }
                out[ob] = bitcast<u32>(d);
                out[ob + 1u] = bitcast<u32>(d * s);
            }
{%- else %}
            let oo = qm * {{ nout }}u + gb * 32u + 4u * (w % 8u);
            out[oo] = q.x * d;
            out[oo + 1u] = q.y * d;
            out[oo + 2u] = q.z * d;
            out[oo + 3u] = q.w * d;
{%- endif %}
        }
    }
{%- endmacro q8_round_outputs %}
