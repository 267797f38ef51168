{% import "quant" as quant -%}
// Kiln quantized tiled GEMM kernel (vec4 register tile): {{ label }}
// schedule: gemm(bm={{ bm }}, bn={{ bn }}, bk={{ bk }}, tm={{ tm }}, tn={{ tn }}{% if db %}, db{% endif %}); y[m, n] = sum_k x[m, k] * W[n, k], W packed as {{ block }}
// Each thread owns {{ tm }} rows x {{ cg }} vec4 column groups of y in explicitly named vec4
// accumulators (f32). Both tiles live in workgroup memory as vec4s, k-major: x transposed (a
// thread's 4 consecutive rows are one vec4 read) and W's {{ bk }}x{{ bn }} block dequantized from
// the packed u32 words while the tile is filled: a thread decodes 4 rows x 4 consecutive k
// (one word of quants per row) and stores them transposed as 4 vec4s. W is never dequantized
// into global memory. The next K-step's x values and decoded W values are loaded into
// registers while the current step is computed.{% if db %}
// Double-buffered: two stages of both tiles, so one barrier per K-step suffices (the stage a
// step fills was last read two steps earlier, before the previous step's barrier).{% endif %}
{{ header }}

{{ quant::quant_fns(block=block, row_bytes=row_bytes, block_elems=be, block_bytes=bb, parts=parts, row_stride=row_stride, block_stride=block_stride) }}
{% if epilogue %}
fn kiln_epilogue(v: f32, gm: i32, gn: i32, batch: i32) -> f32 {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
// vec4 number e of the x block ({{ bm }} rows x {{ bk }}, 4 consecutive k per vec4) at K-step k0.
fn kiln_load_x(e: i32, k0: i32, m0: i32, mm: i32) -> vec4<f32> {
    let gm = m0 + e / {{ bk4 }}i;
    let gk = k0 + (e % {{ bk4 }}i) * 4i;
    if (e >= {{ a_vecs }}i || gm >= mm) {
        return vec4<f32>(0.0);
    }
{%- if k4 %}
    if (gk < {{ k }}i) {
        let i = u32(gm * {{ k }}i + gk);
        return vec4<f32>(in0[i], in0[i + 1u], in0[i + 2u], in0[i + 3u]);
    }
    return vec4<f32>(0.0);
{%- else %}
    // K is not a multiple of 4: each element is guarded (and its index clamped into the row).
    let r = u32(gm * {{ k }}i);
    var v = vec4<f32>(0.0);
    for (var j = 0i; j < 4i; j++) {
        v[j] = select(0.0, in0[r + u32(min(gk + j, {{ k - 1 }}i))], gk + j < {{ k }}i);
    }
    return v;
{%- endif %}
}

// Element values W[row, e .. e + 4] (e a multiple of 4), zero outside W.
fn kiln_load_w4(row: i32, e: i32) -> vec4<f32> {
    if (row >= {{ n }}i || e >= {{ k }}i) {
        return vec4<f32>(0.0);
    }
{%- if k4 %}
    return kiln_qget4(u32(row), u32(e));
{%- else %}
    var v = vec4<f32>(0.0);
    for (var j = 0i; j < 4i; j++) {
        if (e + j < {{ k }}i) {
            v[j] = kiln_qget(u32(row), u32(e + j));
        }
    }
    return v;
{%- endif %}
}

var<workgroup> a_tile: array<vec4<f32>, {{ a_tile_len }}>;
var<workgroup> b_tile: array<vec4<f32>, {{ b_tile_len }}>;

@compute @workgroup_size({{ tx_n }}, {{ ty_n }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tx = i32(lid3.x);
    let ty = i32(lid3.y);
    let m0 = i32(wid.y) * {{ bm }}i;
    let n0 = i32(wid.x) * {{ bn }}i;
    let mm = i32({{ m }});
{%- if db %}
    // Offsets of the stage this K-step fills and reads.
    var sa = 0i;
    var sb = 0i;
{%- endif %}
{%- for i in range(end=tm) %}{% for c in range(end=cg) %}
    var acc_{{ i }}_{{ c }} = vec4<f32>(0.0);
{%- endfor %}{% endfor %}
    // The first K-step's operands. A W unit e covers rows n0 + 4 (e / {{ bk4 }}) .. + 4 and
    // k0 + 4 (e % {{ bk4 }}) .. + 4: consecutive threads read consecutive words of a row.
{%- for t in range(end=a_loads) %}
    var pa{{ t }} = kiln_load_x(i32(lid) + {{ t * threads }}i, 0i, m0, mm);
{%- endfor %}
{%- for t in range(end=b_loads) %}
    var pb{{ t }}_0 = vec4<f32>(0.0);
    var pb{{ t }}_1 = vec4<f32>(0.0);
    var pb{{ t }}_2 = vec4<f32>(0.0);
    var pb{{ t }}_3 = vec4<f32>(0.0);
{%- endfor %}
{{- quant::w_unit_loads(b_loads=b_loads, threads=threads, b_units=b_units, bk4=bk4, k0="") }}
    for (var k0 = 0i; k0 < {{ k }}i; k0 += {{ bk }}i) {
{%- for t in range(end=a_loads) %}
        {
            let e = i32(lid) + {{ t * threads }}i;
            if (e < {{ a_vecs }}i) {
                let r = e / {{ bk4 }}i;
                let kq = e % {{ bk4 }}i;
{%- for j in range(end=4) %}
                a_tile[{% if db %}sa + {% endif %}(kq * 4i + {{ j }}i) * {{ a_row }}i + r / 4i][r % 4i] = pa{{ t }}[{{ j }}];
{%- endfor %}
            }
        }
{%- endfor %}
{%- for t in range(end=b_loads) %}
        {
            let e = i32(lid) + {{ t * threads }}i;
            if (e < {{ b_units }}i) {
                let nq = e / {{ bk4 }}i;
                let kq = e % {{ bk4 }}i;
{%- for j in range(end=4) %}
                b_tile[{% if db %}sb + {% endif %}(kq * 4i + {{ j }}i) * {{ b_row }}i + nq] = vec4<f32>(pb{{ t }}_0[{{ j }}], pb{{ t }}_1[{{ j }}], pb{{ t }}_2[{{ j }}], pb{{ t }}_3[{{ j }}]);
{%- endfor %}
            }
        }
{%- endfor %}
        workgroupBarrier();
        // The next step's loads go to registers only, so they overlap the arithmetic below.
        if (k0 + {{ bk }}i < {{ k }}i) {
{%- for t in range(end=a_loads) %}
            pa{{ t }} = kiln_load_x(i32(lid) + {{ t * threads }}i, k0 + {{ bk }}i, m0, mm);
{%- endfor %}
{{- quant::w_unit_loads(b_loads=b_loads, threads=threads, b_units=b_units, bk4=bk4, k0="k0 + " ~ bk ~ "i + ") }}
        }
        // The K-step is unrolled: every workgroup-memory offset is a constant plus the thread's
        // lane (and the stage), so the compiler keeps the tile in registers and folds the
        // address arithmetic.
{%- for kk in range(end=bk) %}
        {
{%- for r in range(end=rg) %}
            let a{{ r }} = a_tile[{% if db %}sa + {% endif %}{{ kk * a_row }}i + {{ r * ty_n }}i + ty];
{%- endfor %}
{%- for c in range(end=cg) %}
            let b{{ c }} = b_tile[{% if db %}sb + {% endif %}{{ kk * b_row }}i + {{ c * tx_n }}i + tx];
{%- endfor %}
{%- for r in range(end=rg) %}{% for ii in range(end=4) %}{% for c in range(end=cg) %}
            acc_{{ r * 4 + ii }}_{{ c }} = fma(vec4<f32>(a{{ r }}[{{ ii }}]), b{{ c }}, acc_{{ r * 4 + ii }}_{{ c }});
{%- endfor %}{% endfor %}{% endfor %}
        }
{%- endfor %}
{%- if db %}
        sa = {{ a_stage }}i - sa;
        sb = {{ b_stage }}i - sb;
{%- else %}
        workgroupBarrier();
{%- endif %}
    }
{%- for r in range(end=rg) %}{% for ii in range(end=4) %}
    {
        let gm = m0 + {{ r * ty_n * 4 }}i + ty * 4i + {{ ii }}i;
        if (gm < mm) {
{%- for c in range(end=cg) %}{% for j in range(end=4) %}
            {
                let gn = n0 + {{ c * tx_n * 4 + j }}i + tx * 4i;
                if (gn < {{ n }}i) {
{%- if epilogue %}
                    out[gm * {{ n }}i + gn] = kiln_epilogue(acc_{{ r * 4 + ii }}_{{ c }}[{{ j }}], gm, gn, 0i);
{%- else %}
                    out[gm * {{ n }}i + gn] = acc_{{ r * 4 + ii }}_{{ c }}[{{ j }}];
{%- endif %}
                }
            }
{%- endfor %}{% endfor %}
        }
    }
{%- endfor %}{% endfor %}
}
