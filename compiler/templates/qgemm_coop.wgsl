{% import "quant" as quant -%}
enable f16;
enable wgpu_cooperative_matrix;
// Kiln quantized GEMM kernel (cooperative matrices): {{ label }}
// schedule: coop_gemm(bm={{ bm }}, bn={{ bn }}, bk={{ bk }}, sm={{ sm }}, sn={{ sn }}, v4{% if db %}, db{% endif %}); y[m, n] = sum_k x[m, k] * W[n, k], W packed as {{ block }}
// f16 x f16 -> f32 on 16x16x16 fragments. {{ subgroups }} subgroups of 32 lanes (the variant
// requires subgroups of exactly 32); subgroup s owns the {{ sm }}x{{ sn }} sub-block at row
// (s / {{ sg_cols }}) * {{ sm }}, column (s % {{ sg_cols }}) * {{ sn }} of the block, as {{ fm }}x{{ fn }} accumulator
// fragments. Each K-step stages x's {{ bm }}x{{ bk }} block (f32 rounded to f16) and W's block,
// dequantized from the packed u32 words straight into f16 (never into global memory), as
// vec4<f16> rows padded by {{ pad }} f16: x row-major, W k-major (a thread decodes 4 rows x 4
// consecutive k and stores them transposed). The next step's values are read and decoded into
// registers while this step multiplies.
{{ header }}

{{ quant::quant_fns(block=block, row_bytes=row_bytes, block_elems=be, block_bytes=bb, parts=parts, row_stride=row_stride, block_stride=block_stride) }}
{% if epilogue %}
fn kiln_epilogue(v: f32, gm: i32, gn: i32, batch: i32) -> f32 {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
// vec4 number e of the x block ({{ bm }} rows x {{ bk }}, 4 consecutive k per vec4) at K-step
// k0, as f16 (K is a multiple of 4).
fn kiln_load_x(e: u32, k0: i32, m0: i32, mm: i32) -> vec4<f16> {
    let gm = m0 + i32(e / {{ bk4 }}u);
    let gk = k0 + i32(e % {{ bk4 }}u) * 4i;
    if (e < {{ a_vecs }}u && gm < mm && gk < {{ k }}i) {
        let i = u32(gm * {{ k }}i + gk);
        return vec4<f16>(vec4<f32>(in0[i], in0[i + 1u], in0[i + 2u], in0[i + 3u]));
    }
    return vec4<f16>(0.0h);
}

// W[row, e .. e + 4] (e a multiple of 4), zero outside W.
fn kiln_load_w4(row: i32, e: i32) -> vec4<f32> {
{%- if not whole_w %}
    if (row >= {{ n }}i || e >= {{ k }}i) {
        return vec4<f32>(0.0);
    }
{%- endif %}
    return kiln_qget4(u32(row), u32(e));
}
{% if db %}
// Two stages of each (double-buffered): a K-step fills one while the previous step's is still
// read, so one barrier per step suffices (the stage a step fills was last read two steps
// earlier, before the previous step's barrier).
var<workgroup> a_sh: array<vec4<f16>, {{ 2 * a_len_s }}>;
var<workgroup> b_sh: array<vec4<f16>, {{ 2 * b_len_s }}>;
{%- else %}
var<workgroup> a_sh: array<vec4<f16>, {{ a_len_s }}>;
var<workgroup> b_sh: array<vec4<f16>, {{ b_len_s }}>;
{%- endif %}
// One 16x16 f32 fragment per subgroup, for the epilogue and the bounds checks of the store.
var<workgroup> c_sh: array<f32, {{ subgroups * 256 }}>;

@compute @workgroup_size({{ threads }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = i32(wid.y) * {{ bm }}i;
    let n0 = i32(wid.x) * {{ bn }}i;
    let mm = i32({{ m }});
    let sg = lid / 32u;
    let sg_m = (sg / {{ sg_cols }}u) * {{ sm }}u;
    let sg_n = (sg % {{ sg_cols }}u) * {{ sn }}u;
{%- for i in range(end=fm) %}{% for j in range(end=fn) %}
    var acc_{{ i }}_{{ j }} = coop_mat16x16<f32, C>();
{%- endfor %}{% endfor %}
    // The first K-step's operands. A W unit e covers rows n0 + 4 (e / {{ bk4 }}) .. + 4 and
    // k0 + 4 (e % {{ bk4 }}) .. + 4: consecutive threads read consecutive words of a row.
{%- for t in range(end=a_loads) %}
    var pa{{ t }} = kiln_load_x(lid + {{ t * threads }}u, 0i, m0, mm);
{%- endfor %}
{%- for t in range(end=b_loads) %}
    var pb{{ t }}_0 = vec4<f32>(0.0);
    var pb{{ t }}_1 = vec4<f32>(0.0);
    var pb{{ t }}_2 = vec4<f32>(0.0);
    var pb{{ t }}_3 = vec4<f32>(0.0);
{%- endfor %}
{{- quant::w_unit_loads(b_loads=b_loads, threads=threads, b_units=b_units, bk4=bk4, k0="") }}
{%- if db %}
    // Offsets (in vec4s) of the stage this K-step fills and reads.
    var sa = 0u;
    var sb = 0u;
{%- endif %}
    for (var k0 = 0i; k0 < {{ k }}i; k0 += {{ bk }}i) {
{%- for t in range(end=a_loads) %}
        {
            let e = lid + {{ t * threads }}u;
            if (e < {{ a_vecs }}u) {
                a_sh[{% if db %}sa + {% endif %}(e / {{ bk4 }}u) * {{ row_a }}u + e % {{ bk4 }}u] = pa{{ t }};
            }
        }
{%- endfor %}
{%- for t in range(end=b_loads) %}
        {
            let e = lid + {{ t * threads }}u;
            if (e < {{ b_units }}u) {
                let nq = e / {{ bk4 }}u;
                let kq = e % {{ bk4 }}u;
{%- for j in range(end=4) %}
                b_sh[{% if db %}sb + {% endif %}(kq * 4u + {{ j }}u) * {{ row_b }}u + nq] = vec4<f16>(vec4<f32>(pb{{ t }}_0[{{ j }}], pb{{ t }}_1[{{ j }}], pb{{ t }}_2[{{ j }}], pb{{ t }}_3[{{ j }}]));
{%- endfor %}
            }
        }
{%- endfor %}
        workgroupBarrier();
        // The next step's loads and decoding go to registers while this step multiplies.
        if (k0 + {{ bk }}i < {{ k }}i) {
{%- for t in range(end=a_loads) %}
            pa{{ t }} = kiln_load_x(lid + {{ t * threads }}u, k0 + {{ bk }}i, m0, mm);
{%- endfor %}
{{- quant::w_unit_loads(b_loads=b_loads, threads=threads, b_units=b_units, bk4=bk4, k0="k0 + " ~ bk ~ "i + ") }}
        }
{%- for kk in ksteps %}
        {
{%- for i in range(end=fm) %}
            let a{{ i }} = coopLoadT<coop_mat16x16<f16, A>>(&a_sh[{% if db %}sa + {% endif %}((sg_m + {{ i * 16 }}u) * {{ row_a * 4 }}u + {{ kk }}u) / 4u], {{ row_a }}u);
{%- endfor %}
{%- for j in range(end=fn) %}
            let b{{ j }} = coopLoadT<coop_mat16x16<f16, B>>(&b_sh[{% if db %}sb + {% endif %}({{ kk * row_b * 4 }}u + sg_n + {{ j * 16 }}u) / 4u], {{ row_b }}u);
{%- endfor %}
{%- for i in range(end=fm) %}{% for j in range(end=fn) %}
            acc_{{ i }}_{{ j }} = coopMultiplyAdd(a{{ i }}, b{{ j }}, acc_{{ i }}_{{ j }});
{%- endfor %}{% endfor %}
        }
{%- endfor %}
{%- if db %}
        sa = {{ a_len_s }}u - sa;
        sb = {{ b_len_s }}u - sb;
{%- else %}
        workgroupBarrier();
{%- endif %}
    }
    // Each fragment goes through the subgroup's scratch fragment, then element by element to y
    // (bounds-checked{% if epilogue %}, through the epilogue{% endif %}).
    let lane = lid % 32u;
    let scratch = sg * 256u;
{%- for i in range(end=fm) %}{% for j in range(end=fn) %}
    coopStoreT(acc_{{ i }}_{{ j }}, &c_sh[scratch], 16u);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += 32u) {
        let gm = m0 + i32(sg_m + e / 16u) + {{ i * 16 }}i;
        let gn = n0 + i32(sg_n + e % 16u) + {{ j * 16 }}i;
        if (gm < mm && gn < {{ n }}i) {
{%- if epilogue %}
            out[gm * {{ n }}i + gn] = kiln_epilogue(c_sh[scratch + e], gm, gn, 0i);
{%- else %}
            out[gm * {{ n }}i + gn] = c_sh[scratch + e];
{%- endif %}
        }
    }
    workgroupBarrier();
{%- endfor %}{% endfor %}
}
