{% import "quant" as quant -%}
// Kiln quantized tiled GEMM kernel: {{ label }}
// schedule: gemm(bm={{ bm }}, bn={{ bn }}, bk={{ bk }}, tm={{ tm }}, tn={{ tn }}); y[m, n] = sum_k x[m, k] * W[n, k], W packed as {{ block }}
// A workgroup computes a {{ bm }}x{{ bn }} block of y, each thread a {{ tm }}x{{ tn }} register tile
// (unrolled). Per step of {{ bk }} along K the x tile is copied and the W tile is dequantized
// from the packed u32 words (four values per word read where K allows) while it is stored in
// workgroup memory (transposed, [k][n]);
// W is never dequantized into global memory.
{{ header }}

{{ quant::quant_fns(block=block, row_bytes=row_bytes, block_elems=be, block_bytes=bb, parts=parts, row_stride=row_stride, block_stride=block_stride) }}
{% if epilogue %}
fn kiln_epilogue(v: f32, gm: i32, gn: i32, batch: i32) -> f32 {
{%- for line in epilogue %}
    {{ line }}
{%- endfor %}
}
{% endif %}
var<workgroup> ta: array<f32, {{ bm * bk }}>;
var<workgroup> tb: array<f32, {{ bk * bn }}>;

@compute @workgroup_size({{ tx_n }}, {{ ty_n }}, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let tx = lid3.x;
    let ty = lid3.y;
    let tid = ty * {{ tx_n }}u + tx;
    let row0 = wid.y * {{ bm }}u;
    let col0 = wid.x * {{ bn }}u;
    let mm = u32({{ m }});
{%- for i in range(end=tm) %}{% for j in range(end=tn) %}
    var acc{{ i }}_{{ j }} = 0.0;
{%- endfor %}{% endfor %}
    for (var k0 = 0u; k0 < {{ k }}u; k0 += {{ bk }}u) {
        for (var l = tid; l < {{ bm * bk }}u; l += {{ threads }}u) {
            let gm = row0 + l / {{ bk }}u;
            let gk = k0 + l % {{ bk }}u;
            let v = in0[min(gm, max(mm, 1u) - 1u) * {{ k }}u + min(gk, {{ k - 1 }}u)];
            ta[l] = select(0.0, v, gm < mm && gk < {{ k }}u);
        }
{%- if wvec4 %}
        // Four consecutive values of a W row at a time: one word of quants decoded together.
        for (var l = tid; l < {{ bn * bk4 }}u; l += {{ threads }}u) {
            let c = l / {{ bk4 }}u;
            let kk = (l % {{ bk4 }}u) * 4u;
            let gn = col0 + c;
            let gk = k0 + kk;
            var v = vec4<f32>(0.0);
            if (gn < {{ n }}u && gk < {{ k }}u) {
                v = kiln_qget4(gn, gk);
            }
            tb[kk * {{ bn }}u + c] = v.x;
            tb[(kk + 1u) * {{ bn }}u + c] = v.y;
            tb[(kk + 2u) * {{ bn }}u + c] = v.z;
            tb[(kk + 3u) * {{ bn }}u + c] = v.w;
        }
{%- else %}
        for (var l = tid; l < {{ bk * bn }}u; l += {{ threads }}u) {
            let c = l / {{ bk }}u;
            let kk = l % {{ bk }}u;
            let gn = col0 + c;
            let gk = k0 + kk;
            var v = 0.0;
            if (gn < {{ n }}u && gk < {{ k }}u) {
                v = kiln_qget(gn, gk);
            }
            tb[kk * {{ bn }}u + c] = v;
        }
{%- endif %}
        workgroupBarrier();
        for (var kk = 0u; kk < {{ bk }}u; kk++) {
{%- for i in range(end=tm) %}
            let a{{ i }} = ta[(ty * {{ tm }}u + {{ i }}u) * {{ bk }}u + kk];
{%- endfor %}
{%- for j in range(end=tn) %}
            let b{{ j }} = tb[kk * {{ bn }}u + tx * {{ tn }}u + {{ j }}u];
{%- endfor %}
{%- for i in range(end=tm) %}{% for j in range(end=tn) %}
            acc{{ i }}_{{ j }} = fma(a{{ i }}, b{{ j }}, acc{{ i }}_{{ j }});
{%- endfor %}{% endfor %}
        }
        workgroupBarrier();
    }
{%- for i in range(end=tm) %}{% for j in range(end=tn) %}
    {
        let gm = row0 + ty * {{ tm }}u + {{ i }}u;
        let gn = col0 + tx * {{ tn }}u + {{ j }}u;
        if (gm < mm && gn < {{ n }}u) {
{%- if epilogue %}
            out[gm * {{ n }}u + gn] = kiln_epilogue(acc{{ i }}_{{ j }}, i32(gm), i32(gn), 0i);
{%- else %}
            out[gm * {{ n }}u + gn] = acc{{ i }}_{{ j }};
{%- endif %}
        }
    }
{%- endfor %}{% endfor %}
}
