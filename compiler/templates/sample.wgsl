{%- macro argmax_loop(pen) -%}
        for (var i0 = 4i * t; i0 < vocab; i0 += {{ 4 * wg * argmax_unroll }}i) {
{%- for j in range(end=argmax_unroll) %}
            let i{{ j }} = i0 + {{ j * 4 * wg }}i;
            let l{{ j }} = vec4<f32>({% for c in range(end=4) %}{% if c > 0 %}, {% endif %}in0[base + min(i{{ j }} + {{ c }}i, vocab - 1i)]{% endfor %});
{%- endfor %}
{%- for j in range(end=argmax_unroll) %}
{%- for c in range(end=4) %}
            if (i{{ j }} + {{ c }}i < vocab) {
                let v = {% if pen %}kiln_penalized(l{{ j }}[{{ c }}], i{{ j }} + {{ c }}i, penalty){% else %}l{{ j }}[{{ c }}]{% endif %};
                if (bi < 0i || v > bv) {
                    bv = v;
                    bi = i{{ j }} + {{ c }}i;
                }
            }
{%- endfor %}
{%- endfor %}
        }
{%- endmacro argmax_loop -%}
{%- macro collect() -%}
        workgroupBarrier();
        if (t == 0i) {
            s_over = 0u;
        }
        workgroupBarrier();
        // Collect this thread's entries at or above `cut` ({{ pass_unroll }} loads at a time);
        // if any thread has more than {{ cands }}, every thread reads the row instead.
        c_n = 0u;
        var ci = t;
        for (; ci + {{ (pass_unroll - 1) * wg }}i < vocab; ci += {{ pass_unroll * wg }}i) {
{%- for j in range(end=pass_unroll) %}
            let cl{{ j }} = in0[base + ci + {{ j * wg }}i];
{%- endfor %}
{%- for j in range(end=pass_unroll) %}
            kiln_offer(&c_v, &c_i, &c_n, kiln_penalized(cl{{ j }}, ci + {{ j * wg }}i, penalty), ci + {{ j * wg }}i, cut);
{%- endfor %}
        }
        for (; ci < vocab; ci += {{ wg }}i) {
            kiln_offer(&c_v, &c_i, &c_n, kiln_penalized(in0[base + ci], ci, penalty), ci, cut);
        }
        if (c_n > {{ cands }}u) {
            s_over = 1u;
        }
        use_c = workgroupUniformLoad(&s_over) == 0u;
{%- endmacro collect -%}
// Kiln sampling kernel: {{ label }}
// one workgroup of {{ wg }} threads per row of logits; the algorithm (repetition penalty, greedy,
// temperature, top-k and top-p by bisection over order-preserving keys, a counter-based draw)
// and the order of its sums mirror kiln_ir::sample step for step. When sampling (not greedy),
// each thread first keeps its entries at or above a cut (a lower bound of the kept set's
// threshold) in registers, at most {{ cands }}, so the bisections' passes read those instead of
// the whole row; the sums add the same values in the same order (entries below the cut add
// nothing either way), and probes at or below the cut are decided by the bound. Where a
// thread has more entries above the cut, every pass reads the row.
{{ header }}

var<workgroup> s_f: array<f32, {{ wg }}>;
var<workgroup> s_u: array<u32, {{ wg }}>;
var<workgroup> s_i: array<i32, {{ wg }}>;
var<workgroup> s_bits: array<atomic<u32>, 1024>;
var<workgroup> s_rec: array<i32, {{ window }}>;
var<workgroup> s_lo: u32;
var<workgroup> s_hi: u32;
var<workgroup> s_mass: f32;
var<workgroup> s_thread: i32;
var<workgroup> s_rest: f32;
var<workgroup> s_cut: u32;
var<workgroup> s_over: u32;

// A float's order-preserving unsigned key.
fn kiln_key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if ((b & 0x80000000u) != 0u) {
        return ~b;
    }
    return b | 0x80000000u;
}

// The lowbias32 integer hash.
fn kiln_mix(x: u32) -> u32 {
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// Whether token i is among the recent ids (a bitmap filter, then the list).
fn kiln_recent(i: i32) -> bool {
    let bit = u32(i) & 32767u;
    if ((atomicLoad(&s_bits[bit >> 5u]) & (1u << (bit & 31u))) == 0u) {
        return false;
    }
    for (var j = 0i; j < {{ window }}i; j++) {
        if (s_rec[j] == i) {
            return true;
        }
    }
    return false;
}

// Logit l of token i after the repetition penalty.
fn kiln_penalized(l: f32, i: i32, penalty: f32) -> f32 {
    if (penalty != 1.0f && kiln_recent(i)) {
        return select(l * penalty, l / penalty, l > 0.0f);
    }
    return l;
}

// The logit of token i after the repetition penalty.
fn kiln_value(base: i32, i: i32, penalty: f32) -> f32 {
    return kiln_penalized(in0[base + i], i, penalty);
}

fn kiln_sum_f(lid: u32, x: f32) -> f32 {
    s_f[lid] = x;
    workgroupBarrier();
{%- for s in halves %}
    if (lid < {{ s }}u) {
        s_f[lid] = s_f[lid] + s_f[lid + {{ s }}u];
    }
    workgroupBarrier();
{%- endfor %}
    let r = s_f[0];
    workgroupBarrier();
    return r;
}

fn kiln_sum_u(lid: u32, x: u32) -> u32 {
    s_u[lid] = x;
    workgroupBarrier();
{%- for s in halves %}
    if (lid < {{ s }}u) {
        s_u[lid] = s_u[lid] + s_u[lid + {{ s }}u];
    }
    workgroupBarrier();
{%- endfor %}
    let r = s_u[0];
    workgroupBarrier();
    return r;
}

// Entry i's weight (logit l after the repetition penalty) if its key is at least `keep`.
fn kiln_weight(l: f32, i: i32, keep: u32, m: f32, inv_t: f32, penalty: f32) -> f32 {
    let v = kiln_penalized(l, i, penalty);
    if (kiln_key(v) >= keep) {
        return exp((v - m) * inv_t);
    }
    return 0.0f;
}

// Whether entry i (logit l) has a key of at least `mid` after the repetition penalty.
fn kiln_at_least(l: f32, i: i32, mid: u32, penalty: f32) -> u32 {
    return select(0u, 1u, kiln_key(kiln_penalized(l, i, penalty)) >= mid);
}

// This thread's sum of the weights of the entries whose key is at least `keep`, in the order
// t, t + {{ wg }}, ..; {{ pass_unroll }} loads are issued before any is used.
fn kiln_part(base: i32, t: i32, vocab: i32, keep: u32, m: f32, inv_t: f32, penalty: f32) -> f32 {
    var s = 0.0f;
    var i = t;
    for (; i + {{ (pass_unroll - 1) * wg }}i < vocab; i += {{ pass_unroll * wg }}i) {
{%- for j in range(end=pass_unroll) %}
        let l{{ j }} = in0[base + i + {{ j * wg }}i];
{%- endfor %}
{%- for j in range(end=pass_unroll) %}
        s += kiln_weight(l{{ j }}, i + {{ j * wg }}i, keep, m, inv_t, penalty);
{%- endfor %}
    }
    for (; i < vocab; i += {{ wg }}i) {
        s += kiln_weight(in0[base + i], i, keep, m, inv_t, penalty);
    }
    return s;
}

// How many of this thread's entries have a key of at least `mid` (loads issued as in
// `kiln_part`).
fn kiln_count(base: i32, t: i32, vocab: i32, mid: u32, penalty: f32) -> u32 {
    var c = 0u;
    var i = t;
    for (; i + {{ (pass_unroll - 1) * wg }}i < vocab; i += {{ pass_unroll * wg }}i) {
{%- for j in range(end=pass_unroll) %}
        let l{{ j }} = in0[base + i + {{ j * wg }}i];
{%- endfor %}
{%- for j in range(end=pass_unroll) %}
        c += kiln_at_least(l{{ j }}, i + {{ j * wg }}i, mid, penalty);
{%- endfor %}
    }
    for (; i < vocab; i += {{ wg }}i) {
        c += kiln_at_least(in0[base + i], i, mid, penalty);
    }
    return c;
}

// `kiln_part` over a thread's candidates (`n` of them, values after the penalty): the same
// additions in the same order, since every entry at or above `keep` is a candidate.
fn kiln_cpart(c_v: ptr<function, array<f32, {{ cands }}>>, n: u32, keep: u32, m: f32, inv_t: f32) -> f32 {
    var s = 0.0f;
    for (var j = 0u; j < min(n, {{ cands }}u); j++) {
        let v = (*c_v)[j];
        if (kiln_key(v) >= keep) {
            s += exp((v - m) * inv_t);
        }
    }
    return s;
}

// Appends entry i (value v after the penalty) to a thread's candidates if its key is at least
// `cut`; the count runs past the capacity, so an overflow shows.
fn kiln_offer(c_v: ptr<function, array<f32, {{ cands }}>>, c_i: ptr<function, array<i32, {{ cands }}>>, c_n: ptr<function, u32>, v: f32, i: i32, cut: u32) {
    if (kiln_key(v) >= cut) {
        if (*c_n < {{ cands }}u) {
            (*c_v)[*c_n] = v;
            (*c_i)[*c_n] = i;
        }
        *c_n += 1u;
    }
}

// This thread's weight at or above `keep`: from its candidates when it has them, else from
// the row.
fn kiln_own(use_c: bool, c_v: ptr<function, array<f32, {{ cands }}>>, n: u32, base: i32, t: i32, vocab: i32, keep: u32, m: f32, inv_t: f32, penalty: f32) -> f32 {
    if (use_c) {
        return kiln_cpart(c_v, n, keep, m, inv_t);
    }
    return kiln_part(base, t, vocab, keep, m, inv_t, penalty);
}

@compute @workgroup_size({{ wg }}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = i32(wid.x);
    let t = i32(lid);
    let vocab = {{ vocab }};
    let base = row * vocab;
    let temperature = bitcast<f32>(in1[0]);
    let top_k = in1[1];
    let top_p = bitcast<f32>(in1[2]);
    let penalty = bitcast<f32>(in1[3]);
    let inv_t = bitcast<f32>(in1[7]);

    // The recent ids and their bitmap.
    for (var w = lid; w < 1024u; w += {{ wg }}u) {
        atomicStore(&s_bits[w], 0u);
    }
    if (t < {{ window }}i) {
        s_rec[t] = in2[t];
    }
    workgroupBarrier();
    if (t < {{ window }}i) {
        let r = s_rec[t];
        if (r >= 0i && r < vocab) {
            let bit = u32(r) & 32767u;
            atomicOr(&s_bits[bit >> 5u], 1u << (bit & 31u));
        }
    }
    workgroupBarrier();

    // Argmax: each thread's first largest value, then a tree whose ties go to the lower index.
    // Thread t visits runs of 4 entries (4t.., 4t + {{ 4 * wg }}.., ...) in increasing order,
    // {{ argmax_unroll }} runs per step, all {{ 4 * argmax_unroll }} loads of a step issued into separate values before
    // any compare (a private array indexed in a loop lives in memory on some GPUs, and each
    // store into it waits for its load: one load in flight at a time). The order of visits
    // does not change which index wins.
    var bv = 0.0f;
    var bi = -1i;
    // Without a repetition penalty the loop compares the logits as loaded: the penalty's
    // bitmap lookup (a workgroup atomic load) stays out of the loop, however the driver's
    // compiler schedules the short-circuit.
    if (penalty == 1.0f) {
{{ self::argmax_loop(pen=false) }}
    } else {
{{ self::argmax_loop(pen=true) }}
    }
    s_f[lid] = bv;
    s_i[lid] = bi;
    workgroupBarrier();
{%- for s in halves %}
    if (lid < {{ s }}u) {
        let ov = s_f[lid + {{ s }}u];
        let oi = s_i[lid + {{ s }}u];
        let cv = s_f[lid];
        let ci = s_i[lid];
        if (oi >= 0i && (ci < 0i || ov > cv || (ov == cv && oi < ci))) {
            s_f[lid] = ov;
            s_i[lid] = oi;
        }
    }
    workgroupBarrier();
{%- endfor %}
    let m = s_f[0];
    let arg = max(s_i[0], 0i);
    workgroupBarrier();
    if (!(temperature > 0.0f) || top_k == 1i) {
        if (t == 0i) {
            out[row] = arg;
        }
        return;
    }
    let mk = kiln_key(m);
    // Each thread's largest key (0 for a thread without entries), for the top-k cut.
    s_u[lid] = select(0u, kiln_key(bv), bi >= 0i);
    if (t == 0i) {
        s_cut = 0u;
    }
    workgroupBarrier();
    let k_cut_on = top_k > 0i && top_k <= {{ wg }}i && top_k < vocab;
    if (k_cut_on) {
        // The k-th largest of the threads' maxima (ties to the lower thread): k entries are at
        // or above it, so the k-th largest entry is too.
        let mine = s_u[lid];
        var rank = 0i;
        for (var u = 0u; u < {{ wg }}u; u++) {
            let o = s_u[u];
            rank += select(0i, 1i, o > mine || (o == mine && u < lid));
        }
        if (rank == top_k - 1i) {
            s_cut = mine;
        }
    }
    workgroupBarrier();

    // This thread's candidates: its entries with a key at or above `cut`, in index order.
    var c_v: array<f32, {{ cands }}>;
    var c_i: array<i32, {{ cands }}>;
    var c_n = 0u;
    var cut = workgroupUniformLoad(&s_cut);
    var use_c = false;
    if (k_cut_on) {
{{ self::collect() }}
    }

    // Top-k: the largest key with at least k entries at or above it.
    var tk = 0u;
    if (top_k > 0i && top_k < vocab) {
        if (t == 0i) {
            s_lo = 0u;
            s_hi = mk;
        }
        workgroupBarrier();
        for (var it = 0i; it < {{ steps }}i; it++) {
            let lo = s_lo;
            let hi = s_hi;
            let mid = lo + (hi - lo) / 2u + ((hi - lo) & 1u);
            var c = 0u;
            if (!use_c) {
                c = kiln_count(base, t, vocab, mid, penalty);
            } else {
                for (var j = 0u; j < min(c_n, {{ cands }}u); j++) {
                    c += select(0u, 1u, kiln_key(c_v[j]) >= mid);
                }
            }
            var count = kiln_sum_u(lid, c);
            if (use_c && mid <= cut) {
                // At least k threads' maxima are at or above the cut, hence above `mid`.
                count = u32(top_k);
            }
            if (t == 0i && lo < hi) {
                if (count >= u32(top_k)) {
                    s_lo = mid;
                } else {
                    s_hi = mid - 1u;
                }
            }
            workgroupBarrier();
        }
        tk = s_lo;
        workgroupBarrier();
    }

    // Top-p: the largest key at or above which the kept weight is at least top_p of the total.
    let total = kiln_sum_f(lid, kiln_own(use_c, &c_v, c_n, base, t, vocab, tk, m, inv_t, penalty));
    var kept = tk;
    var kept_mass = total;
    if (top_p < 1.0f) {
        let goal = top_p * total;
        if (!use_c && top_p <= 0.9999f) {
            // A cut from the tail: the entries whose weight is below (1 - top_p) * total / (4
            // vocab) weigh less than a quarter of the share top-p may drop, so every threshold
            // at or below the cut keeps at least `goal` (with a margin far above rounding).
            let c = (1.0f - top_p) * total / (4.0f * f32(vocab));
            cut = max(tk, kiln_key(m + log(c) / inv_t));
{{ self::collect() }}
        }
        if (t == 0i) {
            s_lo = tk;
            s_hi = mk;
            s_mass = total;
        }
        workgroupBarrier();
        for (var it = 0i; it < {{ steps }}i; it++) {
            let lo = s_lo;
            let hi = s_hi;
            let mid = lo + (hi - lo) / 2u + ((hi - lo) & 1u);
            var s = kiln_sum_f(lid, kiln_own(use_c, &c_v, c_n, base, t, vocab, mid, m, inv_t, penalty));
            if (use_c && mid <= cut) {
                // Every threshold at or below the cut keeps at least `goal`; the final one is
                // above it, so this placeholder mass is never the kept mass.
                s = goal;
            }
            if (t == 0i && lo < hi) {
                if (s >= goal) {
                    s_lo = mid;
                    s_mass = s;
                } else {
                    s_hi = mid - 1u;
                }
            }
            workgroupBarrier();
        }
        kept = s_lo;
        kept_mass = s_mass;
        workgroupBarrier();
    }

    // The draw: find the thread whose entries hold the target, then the entry.
    let h = kiln_mix(bitcast<u32>(in1[4]) ^ kiln_mix(bitcast<u32>(in1[5]) ^ kiln_mix(bitcast<u32>(in1[6]) ^ kiln_mix(u32(row) ^ 0x9e3779b9u))));
    let u = f32(h >> 8u) * (1.0f / 16777216.0f);
    let draw = u * kept_mass;
    s_f[lid] = kiln_own(use_c, &c_v, c_n, base, t, vocab, kept, m, inv_t, penalty);
    workgroupBarrier();
    if (t == 0i) {
        var acc = 0.0f;
        var chosen = -1i;
        var rest = 0.0f;
        var last = 0i;
        for (var th = 0i; th < {{ wg }}i; th++) {
            let s = s_f[th];
            if (s > 0.0f) {
                last = th;
            }
            if (chosen < 0i && acc + s > draw) {
                chosen = th;
                rest = draw - acc;
            }
            acc += s;
        }
        if (chosen < 0i) {
            chosen = last;
            rest = s_f[last];
        }
        s_thread = chosen;
        s_rest = rest;
    }
    workgroupBarrier();
    if (t == s_thread && use_c) {
        var acc = 0.0f;
        var pick = -1i;
        for (var j = 0u; j < min(c_n, {{ cands }}u); j++) {
            let v = c_v[j];
            if (kiln_key(v) >= kept) {
                acc += exp((v - m) * inv_t);
                pick = c_i[j];
                if (acc > s_rest) {
                    break;
                }
            }
        }
        out[row] = select(arg, pick, pick >= 0i);
    } else if (t == s_thread) {
        var acc = 0.0f;
        var pick = -1i;
        for (var i = t; i < vocab; i += {{ wg }}i) {
            let v = kiln_value(base, i, penalty);
            if (kiln_key(v) >= kept) {
                acc += exp((v - m) * inv_t);
                pick = i;
                if (acc > s_rest) {
                    break;
                }
            }
        }
        out[row] = select(arg, pick, pick >= 0i);
    }
}
