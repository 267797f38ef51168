// Kiln top-k kernel: {{ label }}
// schedule: injective(workgroup_size={{ wg }}); one thread per row, k selection passes in
// (value, index) order, so ties go to the lower index as ONNX requires
{{ header }}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = i32(wid.x + wid.y * nwg.x) * {{ wg }}i + i32(lid);
    if (row >= {{ rows }}) {
        return;
    }
    let o = row / {{ inner }};
    let i = row % {{ inner }};
    let base = o * {{ n }} * {{ inner }} + i;
    let out_base = o * {{ k }} * {{ inner }} + i;
    var pv: {{ ty }} = {{ zero }};
    var pi = -1i;
    for (var j = 0i; j < {{ k }}; j++) {
        var bv: {{ ty }} = {{ zero }};
        var bi = -1i;
        for (var t = 0i; t < {{ n }}; t++) {
            let v = in0[base + t * {{ inner }}];
            let after = pi < 0i || v {{ worse }} pv || (v == pv && t > pi);
            if (after && (bi < 0i || v {{ better }} bv)) {
                bv = v;
                bi = t;
            }
        }
        out[out_base + j * {{ inner }}] = bi;
        pv = bv;
        pi = bi;
    }
}
