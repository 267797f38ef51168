// Kiln GEMM kernel: {{ label }}
// schedule: gemm(bm={{ bm }}, bn={{ bn }}, bk={{ bk }}, tm={{ tm }}, tn={{ tn }}{% if ksplit > 1 %}, ksplit={{ ksplit }}{% endif %}); C[b] = A[b] x B[b]{% if ksplit > 1 %}
// split-K: workgroup z = batch * {{ ksplit }} + slice; each slice sums its K range into out (the
// partial-sum buffer, laid out [batch][slice][M][N]); a combine kernel adds the slices.{% endif %}
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
var<workgroup> a_tile: array<{{ ty }}, {{ bk * bm }}>;
var<workgroup> b_tile: array<{{ ty }}, {{ bk * bn }}>;

@compute @workgroup_size({{ bn / tn }}, {{ bm / tm }}, 1)
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
{%- for i in range(end=tm) %}{% for j in range(end=tn) %}
    var acc_{{ i }}_{{ j }}: {{ ty }} = {{ zero }};
{%- endfor %}{% endfor %}
    for (var k0 = {{ k_beg }}; k0 < {{ k_lim }}; k0 += {{ bk }}i) {
        for (var e = i32(lid); e < {{ bm * bk }}i; e += {{ threads }}i) {
            let mm = e / {{ bk }}i;
            let kk = e % {{ bk }}i;
            let gm = m0 + mm;
            let gk = k0 + kk;
            var v: {{ ty }} = {{ zero }};
            if (gm < {{ m }} && gk < {{ k_lim }}) {
{%- for line in a_load %}
                {{ line }}
{%- endfor %}
            }
            a_tile[kk * {{ bm }}i + mm] = v;
        }
        for (var e = i32(lid); e < {{ bk * bn }}i; e += {{ threads }}i) {
            let kk = e / {{ bn }}i;
            let nn = e % {{ bn }}i;
            let gk = k0 + kk;
            let gn = n0 + nn;
            var v: {{ ty }} = {{ zero }};
            if (gk < {{ k_lim }} && gn < {{ n }}) {
{%- for line in b_load %}
                {{ line }}
{%- endfor %}
            }
            b_tile[kk * {{ bn }}i + nn] = v;
        }
        workgroupBarrier();
        for (var kk = 0i; kk < {{ bk }}i; kk++) {
{%- for i in range(end=tm) %}
            let a_{{ i }} = a_tile[kk * {{ bm }}i + ty * {{ tm }}i + {{ i }}i];
{%- endfor %}
{%- for j in range(end=tn) %}
            let b_{{ j }} = b_tile[kk * {{ bn }}i + tx * {{ tn }}i + {{ j }}i];
{%- endfor %}
{%- for i in range(end=tm) %}{% for j in range(end=tn) %}
            acc_{{ i }}_{{ j }} = {% if float %}fma(a_{{ i }}, b_{{ j }}, acc_{{ i }}_{{ j }}){% else %}acc_{{ i }}_{{ j }} + a_{{ i }} * b_{{ j }}{% endif %};
{%- endfor %}{% endfor %}
        }
        workgroupBarrier();
    }
{%- for i in range(end=tm) %}
    {
        let gm = m0 + ty * {{ tm }}i + {{ i }}i;
        if (gm < {{ m }}) {
{%- for j in range(end=tn) %}
            if (n0 + tx * {{ tn }}i + {{ j }}i < {{ n }}) {
{%- if epilogue %}
                out[c_off + gm * {{ n }} + n0 + tx * {{ tn }}i + {{ j }}i] = kiln_epilogue(acc_{{ i }}_{{ j }}, gm, n0 + tx * {{ tn }}i + {{ j }}i, batch);
{%- else %}
                out[c_off + gm * {{ n }} + n0 + tx * {{ tn }}i + {{ j }}i] = acc_{{ i }}_{{ j }};
{%- endif %}
            }
{%- endfor %}
        }
    }
{%- endfor %}
}
