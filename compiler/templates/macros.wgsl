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
