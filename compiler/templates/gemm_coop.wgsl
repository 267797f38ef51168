enable f16;
enable wgpu_cooperative_matrix;
// Kiln GEMM kernel (cooperative matrices): {{ label }}
// schedule: coop_gemm(bm={{ bm }}, bn={{ bn }}, bk={{ bk }}, sm={{ sm }}, sn={{ sn }}{% if db %}, db{% endif %}); C[b] = A[b] x B[b]
// f16 x f16 -> f32 on 16x16x16 fragments. {{ subgroups }} subgroups of 32 lanes (the variant
// requires subgroups of exactly 32); subgroup s owns the {{ sm }}x{{ sn }} sub-block at row
// (s / {{ sg_cols }}) * {{ sm }}, column (s % {{ sg_cols }}) * {{ sn }} of the block, as {{ fm }}x{{ fn }} accumulator
// fragments. Each K-step converts the f32 operands (read as vec4s one step ahead, into registers)
// to f16 in workgroup memory, row-major with {{ pad }} f16 of padding per row.
{{ header }}
{% if epilogue %}
fn kiln_epilogue(v: f32, gm: i32, gn: i32, batch: i32) -> f32 {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
// vec4 number e of the A block ({{ bm }} x {{ bk }}, 4 consecutive k per vec4) at K-step k0.
fn kiln_load_a(e: i32, k0: i32, m0: i32, a_off: i32) -> vec4<f32> {
    let gm = m0 + e / {{ bk4 }}i;
    let gk = k0 + (e % {{ bk4 }}i) * 4i;
    if (gm < {{ m }} && gk < {{ k }}) {
        return {{ a_vec }}a_off + gm * {{ k }} + gk{{ a_vec_e }};
    }
    return vec4<f32>(0.0);
}

// vec4 number e of the B block ({{ bk }} x {{ bn }}, 4 consecutive n per vec4) at K-step k0.
fn kiln_load_b(e: i32, k0: i32, n0: i32, b_off: i32) -> vec4<f32> {
    let gk = k0 + e / {{ bn4 }}i;
    let gn = n0 + (e % {{ bn4 }}i) * 4i;
    if (gk < {{ k }} && gn < {{ n }}) {
        return {{ b_vec }}b_off + gk * {{ n }} + gn{{ b_vec_e }};
    }
    return vec4<f32>(0.0);
}

{%- if db %}
// Two stages of vec4<f16> each (one store per 4 values; fragment offsets and strides count
// vec4s): a K-step reads one while the next step's operands are stored into the other, so a
// step needs one barrier (the stage a step fills was last read before the previous barrier).
var<workgroup> a_sh: array<vec4<f16>, {{ 2 * a_len_s }}>;
var<workgroup> b_sh: array<vec4<f16>, {{ 2 * b_len_s }}>;
{%- elif vec_stage %}
// Stages of vec4<f16>: one store per 4 values; fragment offsets and strides count vec4s.
var<workgroup> a_sh: array<vec4<f16>, {{ a_len_s }}>;
var<workgroup> b_sh: array<vec4<f16>, {{ b_len_s }}>;
{%- else %}
var<workgroup> a_sh: array<f16, {{ a_len }}>;
var<workgroup> b_sh: array<f16, {{ b_len }}>;
{%- endif %}
{%- if not direct_store %}
// One 16x16 f32 fragment per subgroup, for the epilogue and the bounds checks of the store.
var<workgroup> c_sh: array<f32, {{ subgroups * 256 }}>;
{%- endif %}

@compute @workgroup_size({{ threads }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = i32(wid.y) * {{ bm }}i;
    let n0 = i32(wid.x) * {{ bn }}i;
    let batch = i32(wid.z);
{%- for line in batch_lines %}
    {{ line }}
{%- endfor %}
    let sg = lid / 32u;
    let sg_m = (sg / {{ sg_cols }}u) * {{ sm }}u;
    let sg_n = (sg % {{ sg_cols }}u) * {{ sn }}u;
{%- for i in range(end=fm) %}{% for j in range(end=fn) %}
    var acc_{{ i }}_{{ j }} = coop_mat16x16<f32, C>();
{%- endfor %}{% endfor %}
{%- for t in range(end=a_loads) %}
    var pa{{ t }} = kiln_load_a(i32(lid) + {{ t * threads }}i, 0i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
    var pb{{ t }} = kiln_load_b(i32(lid) + {{ t * threads }}i, 0i, n0, b_off);
{%- endfor %}
{%- if db %}
    // Stage offsets (in vec4s) of the stage this K-step reads; the other one is being filled.
    var sa = 0u;
    var sb = 0u;
{%- for t in range(end=a_loads) %}
    a_sh[((i32(lid) + {{ t * threads }}i) / {{ bk4 }}i) * {{ a_row_s }}i + (i32(lid) + {{ t * threads }}i) % {{ bk4 }}i] = vec4<f16>(pa{{ t }});
{%- endfor %}
{%- for t in range(end=b_loads) %}
    b_sh[((i32(lid) + {{ t * threads }}i) / {{ bn4 }}i) * {{ b_row_s }}i + (i32(lid) + {{ t * threads }}i) % {{ bn4 }}i] = vec4<f16>(pb{{ t }});
{%- endfor %}
    if ({{ bk }}i < {{ k }}) {
{%- for t in range(end=a_loads) %}
        pa{{ t }} = kiln_load_a(i32(lid) + {{ t * threads }}i, {{ bk }}i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
        pb{{ t }} = kiln_load_b(i32(lid) + {{ t * threads }}i, {{ bk }}i, n0, b_off);
{%- endfor %}
    }
    workgroupBarrier();
    for (var k0 = 0i; k0 < {{ k }}; k0 += {{ bk }}i) {
        // The next step's operands (in registers) go to the other stage and the loads of the
        // step after are issued, while this step multiplies.
        if (k0 + {{ bk }}i < {{ k }}) {
            let na = i32({{ a_len_s }}u - sa);
            let nb = i32({{ b_len_s }}u - sb);
{%- for t in range(end=a_loads) %}
            {
                let e = i32(lid) + {{ t * threads }}i;
                a_sh[na + (e / {{ bk4 }}i) * {{ a_row_s }}i + e % {{ bk4 }}i] = vec4<f16>(pa{{ t }});
            }
{%- endfor %}
{%- for t in range(end=b_loads) %}
            {
                let e = i32(lid) + {{ t * threads }}i;
                b_sh[nb + (e / {{ bn4 }}i) * {{ b_row_s }}i + e % {{ bn4 }}i] = vec4<f16>(pb{{ t }});
            }
{%- endfor %}
            if (k0 + {{ 2 * bk }}i < {{ k }}) {
{%- for t in range(end=a_loads) %}
                pa{{ t }} = kiln_load_a(i32(lid) + {{ t * threads }}i, k0 + {{ 2 * bk }}i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
                pb{{ t }} = kiln_load_b(i32(lid) + {{ t * threads }}i, k0 + {{ 2 * bk }}i, n0, b_off);
{%- endfor %}
            }
        }
{%- else %}
    for (var k0 = 0i; k0 < {{ k }}; k0 += {{ bk }}i) {
{%- for t in range(end=a_loads) %}
        {
            let e = i32(lid) + {{ t * threads }}i;
{%- if vec_stage %}
            a_sh[(e / {{ bk4 }}i) * {{ a_row_s }}i + e % {{ bk4 }}i] = vec4<f16>(pa{{ t }});
{%- else %}
            let o = (e / {{ bk4 }}i) * {{ a_row }}i + (e % {{ bk4 }}i) * 4i;
            let h = vec4<f16>(pa{{ t }});
            a_sh[o] = h.x;
            a_sh[o + 1i] = h.y;
            a_sh[o + 2i] = h.z;
            a_sh[o + 3i] = h.w;
{%- endif %}
        }
{%- endfor %}
{%- for t in range(end=b_loads) %}
        {
            let e = i32(lid) + {{ t * threads }}i;
{%- if vec_stage %}
            b_sh[(e / {{ bn4 }}i) * {{ b_row_s }}i + e % {{ bn4 }}i] = vec4<f16>(pb{{ t }});
{%- else %}
            let o = (e / {{ bn4 }}i) * {{ b_row }}i + (e % {{ bn4 }}i) * 4i;
            let h = vec4<f16>(pb{{ t }});
            b_sh[o] = h.x;
            b_sh[o + 1i] = h.y;
            b_sh[o + 2i] = h.z;
            b_sh[o + 3i] = h.w;
{%- endif %}
        }
{%- endfor %}
        workgroupBarrier();
        // The next step's operands go to registers while this step multiplies.
        if (k0 + {{ bk }}i < {{ k }}) {
{%- for t in range(end=a_loads) %}
            pa{{ t }} = kiln_load_a(i32(lid) + {{ t * threads }}i, k0 + {{ bk }}i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
            pb{{ t }} = kiln_load_b(i32(lid) + {{ t * threads }}i, k0 + {{ bk }}i, n0, b_off);
{%- endfor %}
        }
{%- endif %}
{%- for kk in ksteps %}
        {
{%- for i in range(end=fm) %}
            let a{{ i }} = coopLoadT<coop_mat16x16<f16, A>>(&a_sh[{% if db %}sa + {% endif %}((sg_m + {{ i * 16 }}u) * {{ a_row }}u + {{ kk }}u){% if vec_stage %} / 4u{% endif %}], {{ a_row_s }}u);
{%- endfor %}
{%- for j in range(end=fn) %}
            let b{{ j }} = coopLoadT<coop_mat16x16<f16, B>>(&b_sh[{% if db %}sb + {% endif %}({{ kk * b_row }}u + sg_n + {{ j * 16 }}u){% if vec_stage %} / 4u{% endif %}], {{ b_row_s }}u);
{%- endfor %}
{%- for i in range(end=fm) %}{% for j in range(end=fn) %}
            acc_{{ i }}_{{ j }} = coopMultiplyAdd(a{{ i }}, b{{ j }}, acc_{{ i }}_{{ j }});
{%- endfor %}{% endfor %}
        }
{%- endfor %}
        workgroupBarrier();
{%- if db %}
        sa = {{ a_len_s }}u - sa;
        sb = {{ b_len_s }}u - sb;
{%- endif %}
    }
{%- if direct_store %}
    // Whole blocks and no epilogue: fragments go straight to C.
    let row0 = m0 + i32(sg_m);
    let col0 = n0 + i32(sg_n);
{%- for i in range(end=fm) %}{% for j in range(end=fn) %}
    coopStoreT(acc_{{ i }}_{{ j }}, &out[c_off + (row0 + {{ i * 16 }}i) * {{ n }} + col0 + {{ j * 16 }}i], {{ n_u }}u);
{%- endfor %}{% endfor %}
{%- else %}
    // Each fragment goes through the subgroup's scratch fragment, then element by element to C
    // (bounds-checked{% if epilogue %}, through the epilogue{% endif %}).
    let lane = lid % 32u;
    let scratch = sg * 256u;
{%- for i in range(end=fm) %}{% for j in range(end=fn) %}
    coopStoreT(acc_{{ i }}_{{ j }}, &c_sh[scratch], 16u);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += 32u) {
        let gm = m0 + i32(sg_m + e / 16u) + {{ i * 16 }}i;
        let gn = n0 + i32(sg_n + e % 16u) + {{ j * 16 }}i;
        if (gm < {{ m }} && gn < {{ n }}) {
{%- if epilogue %}
            out[c_off + gm * {{ n }} + gn] = kiln_epilogue(c_sh[scratch + e], gm, gn, batch);
{%- else %}
            out[c_off + gm * {{ n }} + gn] = c_sh[scratch + e];
{%- endif %}
        }
    }
    workgroupBarrier();
{%- endfor %}{% endfor %}
{%- endif %}
}
