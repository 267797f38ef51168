// Kiln quantized GEMV kernel, whole blocks per thread: {{ label }}
// schedule: gemv(lanes={{ lanes }}, ksplit={{ ksplit }}, lane_rows={{ lane_rows }}, blocks={{ blocks }}); y[m, n] = sum_k x[m, k] * W[n, k], W packed as {{ block }}
// A workgroup owns {{ lanes * lane_rows }} outputs of one row of x, {{ lane_rows }} adjacent ones per lane{% if glu %} (each from a row of
// the gate half of W and the same row of the up half: silu(gate · x) * (up · x)){% endif %}. The
// {{ ksplit }} threads of a lane take turns over the row's {{ nsteps }} steps of {{ blocks }} whole blocks ({{ step_bytes }} bytes,
// loaded {% if wide %}as 16-byte words{% else %}as 4-byte words{% endif %} at once for each of the lane's {{ lrows }} rows of W){% if tail > 0 %}, then over the
// {{ tail }} blocks left, one at a time{% endif %}. Each block's 32 x values are read once for all rows; its
// quants become floats 1 + q/16 (q4) or 1 + (q + 128)/256 (q8) by placing their bits in a
// float's mantissa (no integer-to-float conversion), and the block's sum of x removes the
// offsets. The partial sums are added in workgroup memory in at most two steps. W is never
// dequantized into memory.
{{ header }}

// Word `i` of the packed weight.
fn kiln_w(i: u32) -> u32 {
{%- if wide %}
    return in1[i >> 2u][i & 3u];
{%- else %}
    return in1[i];
{%- endif %}
}

// The 4 bytes of W at byte `b` (even: blocks and rows have even sizes).
fn kiln_wword(b: u32) -> u32 {
    let i = b >> 2u;
    if ((b & 2u) == 0u) {
        return kiln_w(i);
    }
    return (kiln_w(i) >> 16u) | (kiln_w(i + 1u) << 16u);
}
{%- if norm %}

// The fused RMS norm's running sum of squares of the x values this thread has read.
var<private> kiln_ss: f32;
{%- endif %}

// x[i .. i + 4] (`i` a multiple of 4){% if norm %} times the norm's scale, its squares added to `kiln_ss`{% endif %}.
fn kiln_x4(i: u32) -> vec4<f32> {
    let v = in0[i >> 2u];
{%- if norm %}
    // Every x value of the row is read once by one of its threads (blocks are disjoint), so
    // the threads' sums add up to the row's sum of squares.
    kiln_ss += dot(v, v);
    return v * in2[(i % {{ k }}u) >> 2u];
{%- else %}
    return v;
{%- endif %}
}

// The sum of a block's 32 x values.
fn kiln_xsum(x: array<vec4<f32>, 8>) -> f32 {
    return dot(((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7])), vec4<f32>(1.0));
}
{%- if block == "q8_0" %}

// The 4 signed bytes of `q` as floats 1 + (b + 128) / 256: each byte (offset to unsigned)
// shifted into bits 15..22 of a float whose exponent makes it 1.x.
fn kiln_q8f(q: u32) -> vec4<f32> {
    let u = q ^ 0x80808080u;
    let m = vec4<u32>(u << 15u, u << 7u, u >> 1u, u >> 9u) & vec4<u32>(0x7f8000u);
    return bitcast<vec4<f32>>(m | vec4<u32>(0x3f800000u));
}

// A q8_0 block's dot product with x: scale word `h` (low half), quant words `qa`, `qb`.
// With f = 1 + (b + 128) / 256: sum b x = 256 sum f x - 384 sum x.
fn kiln_bdot(h: u32, qa: vec4<u32>, qb: vec4<u32>, x: array<vec4<f32>, 8>, xs: f32) -> f32 {
    let s = (dot(kiln_q8f(qa.x), x[0]) + dot(kiln_q8f(qa.y), x[1]))
        + (dot(kiln_q8f(qa.z), x[2]) + dot(kiln_q8f(qa.w), x[3]))
        + (dot(kiln_q8f(qb.x), x[4]) + dot(kiln_q8f(qb.y), x[5]))
        + (dot(kiln_q8f(qb.z), x[6]) + dot(kiln_q8f(qb.w), x[7]));
    return unpack2x16float(h).x * (256.0 * (s - xs) - 128.0 * xs);
}
{%- else %}

// The low nibbles of the 4 bytes of `q` as floats 1 + q / 16 (nibble shifted into bits 19..22
// of a float whose exponent makes it 1.x).
fn kiln_q4lo(q: u32) -> vec4<f32> {
    let m = vec4<u32>(q << 19u, q << 11u, q << 3u, q >> 5u) & vec4<u32>(0x780000u);
    return bitcast<vec4<f32>>(m | vec4<u32>(0x3f800000u));
}

// The high nibbles of the 4 bytes of `q` as floats 1 + q / 16.
fn kiln_q4hi(q: u32) -> vec4<f32> {
    let m = vec4<u32>(q << 15u, q << 7u, q >> 1u, q >> 9u) & vec4<u32>(0x780000u);
    return bitcast<vec4<f32>>(m | vec4<u32>(0x3f800000u));
}

// A {{ block }} block's dot product with x: header word `h` ({% if block == "q4_1" %}scale, min{% else %}scale in the low half{% endif %}), quant words `q`
// (word p: values 4p.. in the low nibbles, 16 + 4p.. in the high ones). With f = 1 + q / 16:
// sum q x = 16 (sum f x - sum x).
fn kiln_bdot(h: u32, q: vec4<u32>, x: array<vec4<f32>, 8>, xs: f32) -> f32 {
    let s = (dot(kiln_q4lo(q.x), x[0]) + dot(kiln_q4lo(q.y), x[1]))
        + (dot(kiln_q4lo(q.z), x[2]) + dot(kiln_q4lo(q.w), x[3]))
        + (dot(kiln_q4hi(q.x), x[4]) + dot(kiln_q4hi(q.y), x[5]))
        + (dot(kiln_q4hi(q.z), x[6]) + dot(kiln_q4hi(q.w), x[7]));
{%- if block == "q4_1" %}
    let dm = unpack2x16float(h);
    // sum (d q + m) x = 16 d (s - sum x) + m sum x
    return 16.0 * dm.x * (s - xs) + dm.y * xs;
{%- else %}
    // sum d (q - 8) x = d (16 (s - sum x) - 8 sum x)
    return unpack2x16float(h).x * (16.0 * (s - xs) - 8.0 * xs);
{%- endif %}
}
{%- endif %}
{% if epilogue %}
fn kiln_epilogue(v: f32, gm: i32, gn: i32, batch: i32) -> f32 {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
var<workgroup> part: array<f32, {{ lanes * ksplit * lrows }}>;
{%- if norm %}
// The fused RMS norm's partial sums of squares, added like `part`.
var<workgroup> part_ss: array<f32, {{ lanes * ksplit }}>;
{%- endif %}

@compute @workgroup_size({{ ksplit }}, {{ lanes }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lk = lid3.x;
    let ln = lid3.y;
    // The lane's first output; its {{ lane_rows }} outputs are adjacent.
    let gn = (wid.x * {{ lanes }}u + ln) * {{ lane_rows }}u;
    let m0 = wid.y;
    let mm = u32({{ m }});
    // The first x value of the row.
    let xr = min(m0, max(mm, 1u) - 1u) * {{ k }}u;
{%- for i in range(end=lrows) %}
    var acc{{ i }} = 0.0;
{%- endfor %}
    if (gn < {{ nout }}u) {
{%- if glu %}
        // A gated pair: accumulators {{ lane_rows }}.. read the up half of W (rows {{ nout }}..).
{%- endif %}
{%- for row in w_rows %}
        let rb{{ loop.index0 }} = {{ row }} * {{ row_bytes }}u;
{%- endfor %}
        for (var u = lk; u < {{ nsteps }}u; u += {{ ksplit }}u) {
{%- for line in step_lines %}
            {{ line }}
{%- endfor %}
        }
{%- if tail > 0 %}
        for (var tb = {{ nsteps * blocks }}u + lk; tb < {{ nblocks }}u; tb += {{ ksplit }}u) {
{%- for line in tail_lines %}
            {{ line }}
{%- endfor %}
        }
{%- endif %}
    }
    // Partial sum slot i (accumulator i).
{%- for i in range(end=lrows) %}
    part[({{ i * lanes }}u + ln) * {{ ksplit }}u + lk] = acc{{ i }};
{%- endfor %}
{%- if norm %}
    part_ss[ln * {{ ksplit }}u + lk] = kiln_ss;
{%- endif %}
    workgroupBarrier();
{%- if step > 1 %}
    // Two steps instead of a tree (two barriers, not log2({{ ksplit }})): 8 threads per row
    // each add {{ step }} partial sums, then the first thread adds those 8.
    if (lk < 8u) {
{%- for s in range(end=lrows) %}
        {
            let b = ({{ s * lanes }}u + ln) * {{ ksplit }}u + lk * {{ step }}u;
            var s = part[b];
{%- for j in range(start=1, end=step) %}
            s += part[b + {{ j }}u];
{%- endfor %}
            part[b] = s;
        }
{%- endfor %}
{%- if norm %}
        {
            let b = ln * {{ ksplit }}u + lk * {{ step }}u;
            var s = part_ss[b];
{%- for j in range(start=1, end=step) %}
            s += part_ss[b + {{ j }}u];
{%- endfor %}
            part_ss[b] = s;
        }
{%- endif %}
    }
    workgroupBarrier();
{%- endif %}
    if (lk == 0u && gn < {{ nout }}u && m0 < mm) {
{%- if norm %}
        let ss = part_ss[ln * {{ ksplit }}u]{% for j in range(start=1, end=count) %} + part_ss[ln * {{ ksplit }}u + {{ j * step }}u]{% endfor %};
        // x / sqrt(mean(x²) + eps) · g · w = (x · g · w) / sqrt(mean(x²) + eps).
        let inv = inverseSqrt(ss / {{ k }}.0 + {{ eps }});
{%- endif %}
        let gm = i32(m0);
{%- for i in range(end=lane_rows) %}
        if ({% if i > 0 %}gn + {{ i }}u < {{ nout }}u{% else %}true{% endif %}) {
            let b = ({{ i * lanes }}u + ln) * {{ ksplit }}u;
            let v = (part[b]{% for j in range(start=1, end=count) %} + part[b + {{ j * step }}u]{% endfor %}){% if norm %} * inv{% endif %};
{%- if glu %}
            let bu = ({{ (lane_rows + i) * lanes }}u + ln) * {{ ksplit }}u;
            let w = (part[bu]{% for j in range(start=1, end=count) %} + part[bu + {{ j * step }}u]{% endfor %}){% if norm %} * inv{% endif %};
            // silu(gate) * up
            out[gm * {{ nout }}i + i32(gn + {{ i }}u)] = v * (1.0 / (1.0 + exp(-v))) * w;
{%- elif epilogue %}
            out[gm * {{ nout }}i + i32(gn + {{ i }}u)] = kiln_epilogue(v, gm, i32(gn + {{ i }}u), 0i);
{%- else %}
            out[gm * {{ nout }}i + i32(gn + {{ i }}u)] = v;
{%- endif %}
        }
{%- endfor %}
    }
}
