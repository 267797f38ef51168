//! Token sampling ([`crate::Op::Sample`]): the parameter layout, the counter-based random
//! number generator, and the reference algorithm.
//!
//! The GPU kernel (`compiler/templates/sample.wgsl`) runs the same algorithm with one workgroup
//! of [`WORKGROUP`] threads per row, and this module mirrors its order of operations (thread
//! `t` visits the vocabulary entries `t, t + WORKGROUP, ...`; per-thread partial sums are
//! combined by the same tree reduction; where the kernel reads a thread's candidates, the
//! entries at or above a cut that bounds the kept set from below, instead of the whole row, it
//! adds the same weights in the same order), so the interpreter and the GPU pick the same token
//! for the same seed. They can differ only where `exp` rounds differently on the two sides
//! and the random draw lands within that rounding of a boundary between two tokens'
//! cumulative probabilities (about 1e-6 per sampled token).
//!
//! Algorithm for one row of logits `l` (vocabulary `V`):
//! 1. repetition penalty: `v_i = l_i / penalty` if `l_i > 0` else `l_i * penalty`, for each
//!    distinct id `i` among the recent tokens (ids outside `0..V`, e.g. -1 padding, ignored);
//!    `v_i = l_i` otherwise;
//! 2. greedy (`temperature <= 0` or `top_k == 1`): the first index of the largest `v_i`;
//! 3. otherwise weights `w_i = exp((v_i - max v) * inv_t)` (`inv_t = 1 / temperature`, a
//!    parameter the host computes); top-k keeps the
//!    entries whose value is at least the k-th largest (ties included; found exactly by
//!    bisection over the values' order-preserving integer keys), top-p then keeps the entries
//!    at or above the largest threshold whose kept weight is at least `top_p` of the total
//!    (bisection again): the smallest set of most likely tokens with that mass;
//! 4. a uniform `u` in `[0, 1)` from [`uniform`]`(seed, step, row)` picks the kept entry where
//!    the running sum of weights, in the order thread by thread and within a thread by index,
//!    first exceeds `u * kept mass`.

/// Threads of the sampling kernel's workgroup (the order of the reference's sums follows it).
pub const WORKGROUP: usize = 256;
/// Bisection steps: enough to pin any 32-bit key.
pub const BISECTION_STEPS: usize = 32;
/// Most recent-token ids the kernel accepts (one per thread when loading them).
pub const MAX_WINDOW: usize = WORKGROUP;
/// Length of the parameter input (i32).
pub const PARAMS_LEN: usize = 8;
/// Parameter slot: temperature (f32 bits); `<= 0` is greedy.
pub const P_TEMPERATURE: usize = 0;
/// Parameter slot: top-k (0: off).
pub const P_TOP_K: usize = 1;
/// Parameter slot: top-p (f32 bits; `>= 1`: off).
pub const P_TOP_P: usize = 2;
/// Parameter slot: repetition penalty (f32 bits; 1: off).
pub const P_REPEAT_PENALTY: usize = 3;
/// Parameter slot: low 32 bits of the seed.
pub const P_SEED_LO: usize = 4;
/// Parameter slot: high 32 bits of the seed.
pub const P_SEED_HI: usize = 5;
/// Parameter slot: the step counter (e.g. the position of the sampled token).
pub const P_STEP: usize = 6;
/// Parameter slot: `1 / temperature` (f32 bits), computed once by the host so that both sides
/// scale by the same number.
pub const P_INV_TEMPERATURE: usize = 7;

/// Sampling settings, as the caller gives them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleParams {
    /// Softmax temperature; `<= 0` picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: u32,
    /// Keep the smallest set of most likely tokens whose probability is at least `top_p`
    /// (`>= 1`: all).
    pub top_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens by this (1: off).
    pub repeat_penalty: f32,
    /// Seed of the random draws.
    pub seed: u64,
}

impl Default for SampleParams {
    fn default() -> Self {
        SampleParams::greedy()
    }
}

impl SampleParams {
    /// Greedy decoding (no penalty).
    pub fn greedy() -> SampleParams {
        SampleParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repeat_penalty: 1.0,
            seed: 0,
        }
    }

    /// The parameter input of [`crate::Op::Sample`] for draw number `step`.
    pub fn encode(&self, step: u32) -> [i32; PARAMS_LEN] {
        let mut p = [0i32; PARAMS_LEN];
        p[P_TEMPERATURE] = self.temperature.to_bits() as i32;
        p[P_TOP_K] = self.top_k.min(i32::MAX as u32) as i32;
        p[P_TOP_P] = self.top_p.to_bits() as i32;
        p[P_REPEAT_PENALTY] = self.repeat_penalty.to_bits() as i32;
        p[P_SEED_LO] = self.seed as u32 as i32;
        p[P_SEED_HI] = (self.seed >> 32) as u32 as i32;
        p[P_STEP] = step as i32;
        let inv_t = if self.temperature > 0.0 {
            1.0 / self.temperature
        } else {
            0.0
        };
        p[P_INV_TEMPERATURE] = inv_t.to_bits() as i32;
        p
    }
}

/// An avalanching 32-bit integer hash (the "lowbias32" mixer: xor-shifts and two odd
/// multipliers), as the WGSL kernel computes it.
pub fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The counter-based uniform draw in `[0, 1)` for `(seed, step, row)`: 24 bits of a hash,
/// exact in f32. No state: step `s` of a seed is the same wherever it is computed.
pub fn uniform(seed_lo: u32, seed_hi: u32, step: u32, row: u32) -> f32 {
    let h = mix32(seed_lo ^ mix32(seed_hi ^ mix32(step ^ mix32(row ^ 0x9e37_79b9))));
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A float's order-preserving unsigned key (`a < b` iff `key(a) < key(b)` for non-NaN).
pub fn key(x: f32) -> u32 {
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Samples one row of logits with the raw parameter input (`[PARAMS_LEN]` i32) and the recent
/// token ids; returns the chosen index. Mirrors the GPU kernel step for step.
pub fn sample_row(logits: &[f32], params: &[i32], recent: &[i32], row: u32) -> usize {
    let v_len = logits.len();
    if v_len == 0 {
        return 0;
    }
    let p = |i: usize| params.get(i).copied().unwrap_or(0);
    let f = |i: usize| f32::from_bits(p(i) as u32);
    let (temperature, top_k, top_p, penalty) = (f(P_TEMPERATURE), p(P_TOP_K), f(P_TOP_P), f(P_REPEAT_PENALTY));
    let value = |i: usize| {
        let l = logits[i];
        if penalty != 1.0 && recent.contains(&(i as i32)) {
            if l > 0.0 {
                l / penalty
            } else {
                l * penalty
            }
        } else {
            l
        }
    };
    let vals: Vec<f32> = (0..v_len).map(value).collect();
    // Argmax: the first index of the largest value (each thread's best, then a tree whose
    // ties go to the lower index, which is the first index overall).
    let mut best = (f32::NEG_INFINITY, v_len);
    for (i, &v) in vals.iter().enumerate() {
        if v > best.0 || (best.1 == v_len && v == best.0) {
            best = (v, i);
        }
    }
    let (m, arg) = (best.0, if best.1 == v_len { 0 } else { best.1 });
    if temperature.is_nan() || temperature <= 0.0 || top_k == 1 {
        return arg;
    }
    let inv_t = f(P_INV_TEMPERATURE);
    let keys: Vec<u32> = vals.iter().map(|&v| key(v)).collect();
    let weights: Vec<f32> = vals.iter().map(|&v| ((v - m) * inv_t).exp()).collect();
    let mk = key(m);
    // Per-thread sums in the kernel's order, then its tree reduction.
    let mass = |t: u32| -> f32 {
        let mut part = [0f32; WORKGROUP];
        for (th, s) in part.iter_mut().enumerate() {
            let mut i = th;
            while i < v_len {
                if keys[i] >= t {
                    *s += weights[i];
                }
                i += WORKGROUP;
            }
        }
        let mut stride = WORKGROUP / 2;
        while stride > 0 {
            for th in 0..stride {
                part[th] += part[th + stride];
            }
            stride /= 2;
        }
        part[0]
    };
    let mut tk = 0u32;
    if top_k > 0 && (top_k as usize) < v_len {
        let (mut lo, mut hi) = (0u32, mk);
        for _ in 0..BISECTION_STEPS {
            let mid = lo + (hi - lo).div_ceil(2);
            let count = keys.iter().filter(|&&k| k >= mid).count();
            if lo < hi {
                if count >= top_k as usize {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
        }
        tk = lo;
    }
    let mut kept = tk;
    let mut kept_mass = mass(tk);
    if top_p < 1.0 {
        let target = top_p * kept_mass;
        let (mut lo, mut hi) = (tk, mk);
        for _ in 0..BISECTION_STEPS {
            let mid = lo + (hi - lo).div_ceil(2);
            let s = mass(mid);
            if lo < hi {
                if s >= target {
                    lo = mid;
                    kept_mass = s;
                } else {
                    hi = mid - 1;
                }
            }
        }
        kept = lo;
    }
    let target = uniform(p(P_SEED_LO) as u32, p(P_SEED_HI) as u32, p(P_STEP) as u32, row) * kept_mass;
    let mut part = [0f32; WORKGROUP];
    for (th, s) in part.iter_mut().enumerate() {
        let mut i = th;
        while i < v_len {
            if keys[i] >= kept {
                *s += weights[i];
            }
            i += WORKGROUP;
        }
    }
    // The thread whose range holds the target, then the entry inside it.
    let mut acc = 0f32;
    let mut chosen = None;
    let mut last = 0;
    for (th, &s) in part.iter().enumerate() {
        if s > 0.0 {
            last = th;
        }
        if chosen.is_none() && acc + s > target {
            chosen = Some((th, target - acc));
        }
        acc += s;
    }
    let (th, rest) = chosen.unwrap_or((last, part[last]));
    let mut acc = 0f32;
    let mut pick = None;
    let mut i = th;
    while i < v_len {
        if keys[i] >= kept {
            acc += weights[i];
            pick = Some(i);
            if acc > rest {
                break;
            }
        }
        i += WORKGROUP;
    }
    pick.unwrap_or(arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f32, k: u32, p: f32, seed: u64, step: u32) -> [i32; PARAMS_LEN] {
        SampleParams {
            temperature: t,
            top_k: k,
            top_p: p,
            repeat_penalty: 1.0,
            seed,
        }
        .encode(step)
    }

    #[test]
    fn keys_preserve_order() {
        let xs = [-1e30f32, -2.5, -0.0, 0.0, 1e-30, 1.0, 3.5, 1e30];
        for w in xs.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{} {}", w[0], w[1]);
        }
        assert!(key(-1.0) < key(1.0));
    }

    #[test]
    fn greedy_is_the_first_argmax() {
        let l = [0.5f32, 3.0, -1.0, 3.0];
        assert_eq!(sample_row(&l, &SampleParams::greedy().encode(0), &[], 0), 1);
        // top_k = 1 is greedy whatever the temperature.
        assert_eq!(sample_row(&l, &params(1.5, 1, 1.0, 9, 3), &[], 0), 1);
    }

    #[test]
    fn repetition_penalty_demotes_recent_tokens() {
        let l = [2.0f32, 1.9, -1.0];
        let mut p = SampleParams::greedy();
        p.repeat_penalty = 1.5;
        assert_eq!(sample_row(&l, &p.encode(0), &[0, -1, 0], 0), 1);
        assert_eq!(sample_row(&l, &p.encode(0), &[-1], 0), 0);
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let l: Vec<f32> = (0..1000).map(|i| (i % 37) as f32 * 0.1).collect();
        let best: Vec<usize> = (0..1000).filter(|i| i % 37 == 36).collect();
        for step in 0..50 {
            // top-k = number of ties at the top: only those.
            let t = sample_row(&l, &params(2.0, best.len() as u32, 1.0, 7, step), &[], 0);
            assert!(best.contains(&t), "{t}");
            // A tiny top-p keeps only the top value (all its ties).
            let t = sample_row(&l, &params(2.0, 0, 1e-6, 7, step), &[], 0);
            assert!(best.contains(&t), "{t}");
        }
    }

    #[test]
    fn draws_follow_the_distribution() {
        // Two tokens with probabilities 0.25 and 0.75 (logits ln 1, ln 3).
        let l = [0.0f32, 3f32.ln()];
        let n = 4000;
        let ones = (0..n)
            .filter(|&s| sample_row(&l, &params(1.0, 0, 1.0, 42, s), &[], 0) == 1)
            .count();
        let frac = ones as f64 / n as f64;
        // 4000 draws: standard deviation ~0.007; 5 sigma.
        assert!((frac - 0.75).abs() < 0.035, "{frac}");
        // Different seeds give different sequences; the same seed the same one.
        let seq = |seed| -> Vec<usize> {
            (0..64)
                .map(|s| sample_row(&l, &params(1.0, 0, 1.0, seed, s), &[], 0))
                .collect()
        };
        assert_eq!(seq(1), seq(1));
        assert_ne!(seq(1), seq(2));
    }

    #[test]
    fn uniform_is_in_range_and_spread() {
        let mut sum = 0.0f64;
        for s in 0..10_000 {
            let u = uniform(1, 0, s, 0);
            assert!((0.0..1.0).contains(&u));
            sum += u as f64;
        }
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02);
    }
}
