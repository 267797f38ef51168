enable f16;
enable wgpu_cooperative_matrix;
// Kiln GEMM kernel (cooperative matrices): {{ label }}
// schedule: coop_gemm(bm={{ bm }}, bn={{ bn }}, bk={{ bk }}, sm={{ sm }}, sn={{ sn }}{% if db %}, db{% endif %}); C[b] = A[b] x B[b]
// f16 x f16 -> f32 on 16x16x16 fragments. {{ subgroups }} subgroups of 32 lanes (the variant
// requires subgroups of exactly 32); subgroup s owns the {{ sm }}x{{ sn }} sub-block at row
// (s / {{ sg_cols }}) * {{ sm }}, column (s % {{ sg_cols }}) * {{ sn }} of the block, as {{ fm }}x{{ fn }} accumulator
// fragments. Each K-step converts the operands (read one step ahead into registers, {{ a_w }} values
// of A and {{ b_w }} of B per load: f32 as vec4s, f16 pairs as 32-bit words) to f16 in workgroup
// memory, row-major with {{ pad }} f16 of padding per row.
{{ header }}
{% if epilogue %}
fn kiln_epilogue(v: f32, gm: i32, gn: i32, batch: i32) -> f32 {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
// Load number e of the A block ({{ bm }} x {{ bk }}, {{ a_w }} consecutive k per load) at K-step k0.
fn kiln_load_a(e: u32, k0: i32, m0: i32, a_off: i32) -> {{ a_ty }} {
    let gm = m0 + i32(e / {{ a_units }}u);
    let gk = k0 + i32(e % {{ a_units }}u) * {{ a_w }}i;
{%- if whole_loads %}
    return {{ a_vec_u }}a_off + gm * {{ k }} + gk{{ a_vec_u_e }};
{%- else %}
    if (gm < {{ m }} && gk < {{ k }}) {
        return {{ a_vec_u }}a_off + gm * {{ k }} + gk{{ a_vec_u_e }};
    }
    return {{ a_ty }}();
{%- endif %}
}

// Load number e of the B block ({{ bk }} x {{ bn }}, {{ b_w }} consecutive n per load) at K-step k0.
fn kiln_load_b(e: u32, k0: i32, n0: i32, b_off: i32) -> {{ b_ty }} {
    let gk = k0 + i32(e / {{ b_units }}u);
    let gn = n0 + i32(e % {{ b_units }}u) * {{ b_w }}i;
{%- if whole_loads %}
    return {{ b_vec_u }}b_off + gk * {{ n }} + gn{{ b_vec_u_e }};
{%- else %}
    if (gk < {{ k }} && gn < {{ n }}) {
        return {{ b_vec_u }}b_off + gk * {{ n }} + gn{{ b_vec_u_e }};
    }
    return {{ b_ty }}();
{%- endif %}
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
{%- if vec_stage %}

// Stores a loaded unit of A (B) as f16 at vec4<f16> number `at` of its stage.
fn kiln_stage_a(at: u32, v: {{ a_ty }}) {
{%- for line in a_stage %}
    {{ line }}
{%- endfor %}
}

fn kiln_stage_b(at: u32, v: {{ b_ty }}) {
{%- for line in b_stage %}
    {{ line }}
{%- endfor %}
}
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
    var pa{{ t }} = kiln_load_a(lid + {{ t * threads }}u, 0i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
    var pb{{ t }} = kiln_load_b(lid + {{ t * threads }}u, 0i, n0, b_off);
{%- endfor %}
{%- if db %}
    // Step 0's operands go to stage 0 and step 1's loads are issued before the loop.
{%- for t in range(end=a_loads) %}
    kiln_stage_a(((lid + {{ t * threads }}u) / {{ a_units }}u) * {{ a_row_s }}u + ((lid + {{ t * threads }}u) % {{ a_units }}u){{ a_vecs }}, pa{{ t }});
{%- endfor %}
{%- for t in range(end=b_loads) %}
    kiln_stage_b(((lid + {{ t * threads }}u) / {{ b_units }}u) * {{ b_row_s }}u + ((lid + {{ t * threads }}u) % {{ b_units }}u){{ b_vecs }}, pb{{ t }});
{%- endfor %}
    if ({{ bk }}i < {{ k }}) {
{%- for t in range(end=a_loads) %}
        pa{{ t }} = kiln_load_a(lid + {{ t * threads }}u, {{ bk }}i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
        pb{{ t }} = kiln_load_b(lid + {{ t * threads }}u, {{ bk }}i, n0, b_off);
{%- endfor %}
    }
    workgroupBarrier();
    // Two K-steps per iteration, one per stage, so every stage offset is a constant: a step
    // multiplies from its stage while the next step's operands (in registers) are stored into
    // the other one and the loads of the step after are issued; one barrier per step (the
    // stage a step fills was last read before the previous barrier).
    for (var k0 = 0i; k0 < {{ k }}; k0 += {{ 2 * bk }}i) {
{%- else %}
    for (var k0 = 0i; k0 < {{ k }}; k0 += {{ bk }}i) {
{%- endif %}
{%- for half in halves %}
{%- set ra = half * a_len_s %}
{%- set rb = half * b_len_s %}
{%- set wa = (1 - half) * a_len_s %}
{%- set wb = (1 - half) * b_len_s %}
{%- if half == 1 %}
        // An odd number of steps ends after the first half.
        if (k0 + {{ bk }}i >= {{ k }}) {
            break;
        }
{%- endif %}
{%- if db %}
        if (k0 + {{ (half + 1) * bk }}i < {{ k }}) {
{%- for t in range(end=a_loads) %}
            {
                let e = lid + {{ t * threads }}u;
                kiln_stage_a({{ wa }}u + (e / {{ a_units }}u) * {{ a_row_s }}u + (e % {{ a_units }}u){{ a_vecs }}, pa{{ t }});
            }
{%- endfor %}
{%- for t in range(end=b_loads) %}
            {
                let e = lid + {{ t * threads }}u;
                kiln_stage_b({{ wb }}u + (e / {{ b_units }}u) * {{ b_row_s }}u + (e % {{ b_units }}u){{ b_vecs }}, pb{{ t }});
            }
{%- endfor %}
            if (k0 + {{ (half + 2) * bk }}i < {{ k }}) {
{%- for t in range(end=a_loads) %}
                pa{{ t }} = kiln_load_a(lid + {{ t * threads }}u, k0 + {{ (half + 2) * bk }}i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
                pb{{ t }} = kiln_load_b(lid + {{ t * threads }}u, k0 + {{ (half + 2) * bk }}i, n0, b_off);
{%- endfor %}
            }
        }
{%- else %}
{%- for t in range(end=a_loads) %}
        {
            let e = lid + {{ t * threads }}u;
{%- if vec_stage %}
            kiln_stage_a((e / {{ a_units }}u) * {{ a_row_s }}u + (e % {{ a_units }}u){{ a_vecs }}, pa{{ t }});
{%- else %}
            let o = (e / {{ a_units }}u) * {{ a_row }}u + (e % {{ a_units }}u) * 4u;
            let h = vec4<f16>(pa{{ t }});
            a_sh[o] = h.x;
            a_sh[o + 1u] = h.y;
            a_sh[o + 2u] = h.z;
            a_sh[o + 3u] = h.w;
{%- endif %}
        }
{%- endfor %}
{%- for t in range(end=b_loads) %}
        {
            let e = lid + {{ t * threads }}u;
{%- if vec_stage %}
            kiln_stage_b((e / {{ b_units }}u) * {{ b_row_s }}u + (e % {{ b_units }}u){{ b_vecs }}, pb{{ t }});
{%- else %}
            let o = (e / {{ b_units }}u) * {{ b_row }}u + (e % {{ b_units }}u) * 4u;
            let h = vec4<f16>(pb{{ t }});
            b_sh[o] = h.x;
            b_sh[o + 1u] = h.y;
            b_sh[o + 2u] = h.z;
            b_sh[o + 3u] = h.w;
{%- endif %}
        }
{%- endfor %}
        workgroupBarrier();
        // The next step's operands go to registers while this step multiplies.
        if (k0 + {{ bk }}i < {{ k }}) {
{%- for t in range(end=a_loads) %}
            pa{{ t }} = kiln_load_a(lid + {{ t * threads }}u, k0 + {{ bk }}i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
            pb{{ t }} = kiln_load_b(lid + {{ t * threads }}u, k0 + {{ bk }}i, n0, b_off);
{%- endfor %}
        }
{%- endif %}
{%- for kk in ksteps %}
        {
{%- for i in range(end=fm) %}
            let a{{ i }} = coopLoadT<coop_mat16x16<f16, A>>(&a_sh[{% if db %}{{ ra }}u + {% endif %}((sg_m + {{ i * 16 }}u) * {{ a_row }}u + {{ kk }}u){% if vec_stage %} / 4u{% endif %}], {{ a_row_s }}u);
{%- endfor %}
{%- for j in range(end=fn) %}
            let b{{ j }} = coopLoadT<coop_mat16x16<f16, B>>(&b_sh[{% if db %}{{ rb }}u + {% endif %}({{ kk * b_row }}u + sg_n + {{ j * 16 }}u){% if vec_stage %} / 4u{% endif %}], {{ b_row_s }}u);
{%- endfor %}
{%- for i in range(end=fm) %}{% for j in range(end=fn) %}
            acc_{{ i }}_{{ j }} = coopMultiplyAdd(a{{ i }}, b{{ j }}, acc_{{ i }}_{{ j }});
{%- endfor %}{% endfor %}
        }
{%- endfor %}
        workgroupBarrier();
{%- endfor %}
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
