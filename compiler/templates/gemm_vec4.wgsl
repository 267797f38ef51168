// Kiln GEMM kernel (vec4 register tile): {{ label }}
// schedule: gemm(bm={{ bm }}, bn={{ bn }}, bk={{ bk }}, tm={{ tm }}, tn={{ tn }}{% if ksplit > 1 %}, ksplit={{ ksplit }}{% endif %}{% if db %}, db{% endif %}); C[b] = A[b] x B[b]{% if ksplit > 1 %}
// split-K: workgroup z = batch * {{ ksplit }} + slice; each slice sums its K range into out (the
// partial-sum buffer, laid out [batch][slice][M][N]); a combine kernel adds the slices.{% endif %}
// Each thread owns {{ tm }} rows x {{ cg }} vec4 column groups, held in explicitly named vec4
// accumulators (never a private array, which drivers spill). Both tiles live in workgroup memory as
// vec4s: A transposed (k-major), so a thread's 4 consecutive rows are one vec4 read. Each tile is
// an array of k-rows, so in the unrolled K-step the k-row index is a constant and the bounds
// clamp WebGPU puts on every dynamic index covers only the lane's column, the same for every k.{% if db %}
// Double-buffered: two stages of both tiles; a K-step fills one while the previous step's is
// still read, so one barrier per step suffices (the stage a step fills was last read two steps
// earlier, before the previous step's barrier).{% endif %}
{{ header }}
{%- if ksplit > 1 %}

// End of this workgroup's K slice.
var<private> k_end: i32;
{%- endif %}
{% if epilogue %}
fn kiln_epilogue(v: {{ ty }}, gm: i32, gn: i32, batch: i32) -> {{ ty }} {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
{%- if vec_loads %}
// vec4 number e of the A block (bm x bk, 4 consecutive k per vec4) at K-step k0.
fn kiln_load_a(e: i32, k0: i32, m0: i32, a_off: i32) -> vec4<{{ ty }}> {
    let gm = m0 + e / {{ bk4 }}i;
    let gk = k0 + (e % {{ bk4 }}i) * 4i;
    if (e < {{ a_vecs }}i && gm < {{ m }} && gk < {{ k_lim }}) {
        return {{ a_vec }}a_off + gm * {{ k }} + gk{{ a_vec_e }};
    }
    return vec4<{{ ty }}>({{ zero }});
}

// vec4 number e of the B block (bk x bn, 4 consecutive n per vec4) at K-step k0.
fn kiln_load_b(e: i32, k0: i32, n0: i32, b_off: i32) -> vec4<{{ ty }}> {
    let gk = k0 + e / {{ bn4 }}i;
    let gn = n0 + (e % {{ bn4 }}i) * 4i;
    if (e < {{ b_vecs }}i && gk < {{ k_lim }} && gn < {{ n }}) {
        return {{ b_vec }}b_off + gk * {{ n }} + gn{{ b_vec_e }};
    }
    return vec4<{{ ty }}>({{ zero }});
}
{% endif %}
var<workgroup> a_tile: array<array<vec4<{{ ty }}>, {{ a_row }}>, {{ k_rows }}>;
var<workgroup> b_tile: array<array<vec4<{{ ty }}>, {{ b_row }}>, {{ k_rows }}>;

@compute @workgroup_size({{ tx_n }}, {{ ty_n }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tx = i32(lid3.x);
    let ty = i32(lid3.y);
    let m0 = i32(wid.y) * {{ bm }}i;
    let n0 = i32(wid.x) * {{ bn }}i;
    let batch = i32(wid.z){% if ksplit > 1 %} / {{ ksplit }}i{% endif %};
{%- if ksplit > 1 %}
    // K slice wid.z % {{ ksplit }}: whole K-steps; the last slice is ragged (or empty).
    let kc = (({{ k }} + {{ ksplit - 1 }}i) / {{ ksplit }}i + {{ bk - 1 }}i) / {{ bk }}i * {{ bk }}i;
    let k_beg = (i32(wid.z) % {{ ksplit }}i) * kc;
    k_end = min(k_beg + kc, {{ k }});
{%- endif %}
{%- for line in batch_lines %}
    {{ line }}
{%- endfor %}
{%- if db %}
    // First k-row of the stage this K-step fills and reads.
    var st = 0i;
{%- endif %}
{%- for i in range(end=tm) %}{% for c in range(end=cg) %}
    var acc_{{ i }}_{{ c }} = vec4<{{ ty }}>({{ zero }});
{%- endfor %}{% endfor %}
{%- if vec_loads %}
    // Operands are read as vec4s (K and N are multiples of 4) into registers one K-step ahead:
    // the loads of step k0 + bk are in flight while step k0 is computed.
{%- for t in range(end=a_loads) %}
    var pa{{ t }} = kiln_load_a(i32(lid) + {{ t * threads }}i, {{ k_beg }}, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
    var pb{{ t }} = kiln_load_b(i32(lid) + {{ t * threads }}i, {{ k_beg }}, n0, b_off);
{%- endfor %}
    for (var k0 = {{ k_beg }}; k0 < {{ k_lim }}; k0 += {{ bk }}i) {
{%- for t in range(end=a_loads) %}
        {
            let e = i32(lid) + {{ t * threads }}i;
            if (e < {{ a_vecs }}i) {
                let mm = e / {{ bk4 }}i;
                let kq = e % {{ bk4 }}i;
{%- for j in range(end=4) %}
                a_tile[{% if db %}st + {% endif %}kq * 4i + {{ j }}i][mm / 4i][mm % 4i] = pa{{ t }}[{{ j }}];
{%- endfor %}
            }
        }
{%- endfor %}
{%- for t in range(end=b_loads) %}
        {
            let e = i32(lid) + {{ t * threads }}i;
            if (e < {{ b_vecs }}i) {
                b_tile[{% if db %}st + {% endif %}e / {{ bn4 }}i][e % {{ bn4 }}i] = pb{{ t }};
            }
        }
{%- endfor %}
        // The stage is complete; the next step's loads go to registers only, so they need no
        // barrier before the arithmetic.
        workgroupBarrier();
        if (k0 + {{ bk }}i < {{ k_lim }}) {
{%- for t in range(end=a_loads) %}
            pa{{ t }} = kiln_load_a(i32(lid) + {{ t * threads }}i, k0 + {{ bk }}i, m0, a_off);
{%- endfor %}
{%- for t in range(end=b_loads) %}
            pb{{ t }} = kiln_load_b(i32(lid) + {{ t * threads }}i, k0 + {{ bk }}i, n0, b_off);
{%- endfor %}
        }
{%- else %}
    // Operands read as scalars (K or N not a multiple of 4, or computed, like a convolution's
    // im2col) into registers one K-step ahead, as the vec4 path does: the loads of step
    // k0 + bk are in flight while step k0 is computed.
{%- for t in range(end=a_sloads) %}
    var sa{{ t }}: {{ ty }};
{%- endfor %}
{%- for t in range(end=b_sloads) %}
    var sb{{ t }}: {{ ty }};
{%- endfor %}
{%- if cb %}
    // Channel-blocked convolution loads: K-step s covers channels (s / kernel positions) * {{ bk }}
    // ..+ {{ bk }} at kernel position s % kernel positions, so each load's pixel, k-row and base
    // addresses are computed once here; a step adds its uniform offset.
{%- for line in cb_pre %}
    {{ line }}
{%- endfor %}
    {
        let kn = {{ k_beg }};
{%- for line in cb_step %}
        {{ line }}
{%- endfor %}
    }
{%- else %}
    {
{%- for t in range(end=a_sloads) %}
        {
            // A block (bm x bk): consecutive threads read consecutive k of one row.
            let e = i32(lid) + {{ t * threads }}i;
            let mm = e / {{ bk }}i;
            let kk = e % {{ bk }}i;
            let gm = m0 + mm;
            let gk = {{ k_beg }} + kk;
            var v: {{ ty }} = {{ zero }};
            if (e < {{ bm * bk }}i && gm < {{ m }} && gk < {{ k_lim }}) {
{%- for line in a_load %}
                {{ line }}
{%- endfor %}
            }
            sa{{ t }} = v;
        }
{%- endfor %}
{%- for t in range(end=b_sloads) %}
        {
            // B block (bk x bn): consecutive threads read consecutive n of one row.
            let e = i32(lid) + {{ t * threads }}i;
            let kk = e / {{ bn }}i;
            let nn = e % {{ bn }}i;
            let gk = {{ k_beg }} + kk;
            let gn = n0 + nn;
            var v: {{ ty }} = {{ zero }};
            if (e < {{ bk * bn }}i && gk < {{ k_lim }} && gn < {{ n }}) {
{%- for line in b_load %}
                {{ line }}
{%- endfor %}
            }
            sb{{ t }} = v;
        }
{%- endfor %}
    }
{%- endif %}
    for (var k0 = {{ k_beg }}; k0 < {{ k_lim }}; k0 += {{ bk }}i) {
{%- for t in range(end=a_sloads) %}
        {
            let e = i32(lid) + {{ t * threads }}i;
            if (e < {{ bm * bk }}i) {
                let mm = e / {{ bk }}i;
                a_tile[{% if db %}st + {% endif %}e % {{ bk }}i][mm / 4i][mm % 4i] = sa{{ t }};
            }
        }
{%- endfor %}
{%- for t in range(end=b_sloads) %}
        {
            let e = i32(lid) + {{ t * threads }}i;
            if (e < {{ bk * bn }}i) {
                let nn = e % {{ bn }}i;
                b_tile[{% if db %}st + {% endif %}e / {{ bn }}i][nn / 4i][nn % 4i] = sb{{ t }};
            }
        }
{%- endfor %}
        workgroupBarrier();
        if (k0 + {{ bk }}i < {{ k_lim }}) {
{%- if cb %}
            let kn = k0 + {{ bk }}i;
{%- for line in cb_step %}
            {{ line }}
{%- endfor %}
{%- else %}
{%- for t in range(end=a_sloads) %}
        {
            // A block (bm x bk): consecutive threads read consecutive k of one row.
            let e = i32(lid) + {{ t * threads }}i;
            let mm = e / {{ bk }}i;
            let kk = e % {{ bk }}i;
            let gm = m0 + mm;
            let gk = k0 + {{ bk }}i + kk;
            var v: {{ ty }} = {{ zero }};
            if (e < {{ bm * bk }}i && gm < {{ m }} && gk < {{ k_lim }}) {
{%- for line in a_load %}
                {{ line }}
{%- endfor %}
            }
            sa{{ t }} = v;
        }
{%- endfor %}
{%- for t in range(end=b_sloads) %}
        {
            // B block (bk x bn): consecutive threads read consecutive n of one row.
            let e = i32(lid) + {{ t * threads }}i;
            let kk = e / {{ bn }}i;
            let nn = e % {{ bn }}i;
            let gk = k0 + {{ bk }}i + kk;
            let gn = n0 + nn;
            var v: {{ ty }} = {{ zero }};
            if (e < {{ bk * bn }}i && gk < {{ k_lim }} && gn < {{ n }}) {
{%- for line in b_load %}
                {{ line }}
{%- endfor %}
            }
            sb{{ t }} = v;
        }
{%- endfor %}
{%- endif %}
        }
{%- endif %}
        // The K-step is unrolled: every workgroup-memory offset is a constant plus the thread's
        // lane (and the stage), so the compiler keeps the tile in registers and folds the
        // address arithmetic.
{%- for kk in range(end=bk) %}
        {
{%- for r in range(end=rg) %}
            let a{{ r }} = a_tile[{% if db %}st + {% endif %}{{ kk }}i][{{ r * ty_n }}i + ty];
{%- endfor %}
{%- for c in range(end=cg) %}
            let b{{ c }} = b_tile[{% if db %}st + {% endif %}{{ kk }}i][{{ c * tx_n }}i + tx];
{%- endfor %}
{%- for r in range(end=rg) %}{% for ii in range(end=4) %}{% for c in range(end=cg) %}
            acc_{{ r * 4 + ii }}_{{ c }} = {% if float %}fma(vec4<{{ ty }}>(a{{ r }}[{{ ii }}]), b{{ c }}, acc_{{ r * 4 + ii }}_{{ c }}){% else %}acc_{{ r * 4 + ii }}_{{ c }} + vec4<{{ ty }}>(a{{ r }}[{{ ii }}]) * b{{ c }}{% endif %};
{%- endfor %}{% endfor %}{% endfor %}
        }
{%- endfor %}
{%- if db %}
        st = {{ bk }}i - st;
{%- else %}
        workgroupBarrier();
{%- endif %}
    }
{%- if vec_store %}
    // N is a multiple of 4, so each accumulator's 4 columns are stored as one vec4 (out is a
    // vec4 array): a warp's store covers whole 32-byte sectors instead of every 4th word.
{%- for r in range(end=rg) %}{% for ii in range(end=4) %}
    {
        let gm = m0 + {{ r * ty_n * 4 }}i + ty * 4i + {{ ii }}i;
        if (gm < {{ m }}) {
{%- for c in range(end=cg) %}
            {
                let gn = n0 + {{ c * tx_n * 4 }}i + tx * 4i;
                if (gn < {{ n }}) {
{%- if epilogue %}
                    let v = acc_{{ r * 4 + ii }}_{{ c }};
                    out[(c_off + gm * {{ n }} + gn) / 4i] = vec4<{{ ty }}>(kiln_epilogue(v[0], gm, gn, batch), kiln_epilogue(v[1], gm, gn + 1i, batch), kiln_epilogue(v[2], gm, gn + 2i, batch), kiln_epilogue(v[3], gm, gn + 3i, batch));
{%- else %}
                    out[(c_off + gm * {{ n }} + gn) / 4i] = acc_{{ r * 4 + ii }}_{{ c }};
{%- endif %}
                }
            }
{%- endfor %}
        }
    }
{%- endfor %}{% endfor %}
{%- else %}
{%- for r in range(end=rg) %}{% for ii in range(end=4) %}
    {
        let gm = m0 + {{ r * ty_n * 4 }}i + ty * 4i + {{ ii }}i;
        if (gm < {{ m }}) {
{%- for c in range(end=cg) %}{% for j in range(end=4) %}
            {
                let gn = n0 + {{ c * tx_n * 4 + j }}i + tx * 4i;
                if (gn < {{ n }}) {
{%- if epilogue %}
                    out[c_off + gm * {{ n }} + gn] = kiln_epilogue(acc_{{ r * 4 + ii }}_{{ c }}[{{ j }}], gm, gn, batch);
{%- else %}
                    out[c_off + gm * {{ n }} + gn] = acc_{{ r * 4 + ii }}_{{ c }}[{{ j }}];
{%- endif %}
                }
            }
{%- endfor %}{% endfor %}
        }
    }
{%- endfor %}{% endfor %}
{%- endif %}
}
