//! Convolution-specific code: the channel-blocked operand loads of the implicit GEMM
//! (`gemm_vec4.wgsl`'s `cb` path) and the direct kernel of convolutions with one input channel
//! per group (depthwise), rendered through the injective template.
//!
//! The implicit GEMM computes, per image and group, `C[OCg, P] = W[OCg, K] · im2col(x)[K, P]`
//! with `K = Cg · KK` (KK kernel positions) and P the output pixels. Reading im2col element by
//! element costs a division and a modulo per axis for every element of every K-step. The
//! channel-blocked order walks K as (channel block of `bk`, kernel position, channel in the
//! block): K-step `s` covers channels `(s / KK) · bk ..+ bk` at kernel position `s % KK`. A
//! thread's k-rows and output pixels are then the same at every step, so their decomposition
//! and base addresses are computed once before the K loop, and each step adds one uniform
//! offset (the channel block and kernel position) and checks the pixel's window against the
//! input's bounds once per pixel. The sum runs over the same products in another order.

use super::params::ParamSet;
use kiln_ir::Dim;

/// A convolution's shapes and attributes, as `KernelBody::Conv` holds them.
pub(super) struct ConvGeometry<'a> {
    /// Input shape `[N, C, *spatial]`.
    pub x: &'a [Dim],
    /// Weight shape `[OC, C / groups, *kernel]`.
    pub w: &'a [Dim],
    /// Output shape `[N, OC, *spatial]`.
    pub out: &'a [Dim],
    /// Stride per spatial axis.
    pub strides: &'a [usize],
    /// Padding (begin, end) per spatial axis.
    pub pads: &'a [(usize, usize)],
    /// Dilation per spatial axis.
    pub dilations: &'a [usize],
}

impl ConvGeometry<'_> {
    fn spatial(&self) -> usize {
        self.x.len() - 2
    }

    /// Kernel positions (the product of the kernel's extents).
    fn kernel_positions(&self) -> i64 {
        self.w[2..]
            .iter()
            .map(|d| d.as_const().expect("concrete kernel"))
            .product()
    }

    /// Elements between consecutive positions of spatial axis `a` of the input.
    fn input_stride(&self, a: usize) -> Dim {
        Dim::product(&self.x[3 + a..])
    }
}

/// The lines of the channel-blocked loads: `pre` before the K loop (per-thread invariants),
/// `step` inside a block that defines `kn`, the first k of the K-step being loaded, and assigns
/// the template's prefetch registers `sa{t}` (A, the weights) and `sb{t}` (B, im2col).
pub(super) struct BlockedLoads {
    /// Statements before the K loop.
    pub pre: Vec<String>,
    /// Statements of one K-step's loads.
    pub step: Vec<String>,
}

/// Whether a convolution under `bk` takes the channel-blocked loads: channels per group a
/// constant multiple of `bk` (a K-step never crosses a group's channels, so no per-element
/// channel check is needed and K has no ragged step).
pub(super) fn channel_blocked_applies(w: &[Dim], bk: u32) -> bool {
    w[1].as_const().is_some_and(|cg| cg > 0 && cg % bk as i64 == 0)
}

/// Tile sizes the loads are laid out for (the template's scalar-read path: element `e` of
/// thread `lid`'s load `t` is `lid + t · threads`; A's element e is (e / bk, e % bk), B's
/// (e / bn, e % bn)).
pub(super) struct LoadTile {
    /// Block rows (output channels).
    pub bm: u32,
    /// Block columns (output pixels).
    pub bn: u32,
    /// K-step.
    pub bk: u32,
    /// Threads of the workgroup.
    pub threads: u32,
}

/// The channel-blocked loads ([`BlockedLoads`]) of a convolution whose GEMM dims are the WGSL
/// expressions `m` (OCg), `n` (P) and `k` (K); the template's batch lines define `a_off`
/// (the group's weights) and `x_off` (the image and group's first input channel).
pub(super) fn channel_blocked_loads(
    geo: &ConvGeometry,
    tile: &LoadTile,
    [m, n, k]: [&str; 3],
    params: &mut ParamSet,
) -> BlockedLoads {
    let LoadTile { bm, bn, bk, threads } = *tile;
    let sp = geo.spatial();
    let kk = geo.kernel_positions();
    let insz = params.dim(&Dim::product(&geo.x[2..]), "insz");
    let mut pre = Vec::new();
    // Pixels: every B load of a thread reads the same column when the workgroup covers whole
    // rows of the B block per load.
    let shared_pixel = threads.is_multiple_of(bn);
    let b_loads = (bk * bn).div_ceil(threads);
    let a_loads = (bm * bk).div_ceil(threads);
    let pixel_of = |t: u32| if shared_pixel { 0 } else { t };
    let pixels = if shared_pixel { 1 } else { b_loads };
    for q in 0..pixels {
        pre.push(format!("let cv_n{q} = n0 + (i32(lid) + {}i) % {bn}i;", q * threads));
        pre.push(format!("var cv_r{q} = cv_n{q};"));
        for a in (0..sp).rev() {
            let od = params.divisor(&geo.out[2 + a], "odim");
            pre.push(format!("let cv_o{q}_{a} = cv_r{q} % {od};"));
            pre.push(format!("cv_r{q} = cv_r{q} / {od};"));
            // The input coordinate of kernel position 0.
            pre.push(format!(
                "let cv_i{q}_{a} = cv_o{q}_{a} * {}i - {}i;",
                geo.strides[a], geo.pads[a].0
            ));
        }
    }
    // B loads: base address of each load's k-row (channel in the block) and pixel.
    for t in 0..b_loads {
        let q = pixel_of(t);
        let mut terms = vec![
            "x_off".to_string(),
            format!("((i32(lid) + {}i) / {bn}i) * {insz}", t * threads),
        ];
        for a in 0..sp {
            let st = geo.input_stride(a);
            terms.push(if st == Dim::c(1) {
                format!("cv_i{q}_{a}")
            } else {
                format!("cv_i{q}_{a} * {}", params.dim(&st, "istride"))
            });
        }
        pre.push(format!("let cv_bx{t} = {};", terms.join(" + ")));
    }
    // A loads: the weight row and channel of each load at kernel position 0 of block 0.
    for t in 0..a_loads {
        pre.push(format!("let cv_ae{t} = i32(lid) + {}i;", t * threads));
        pre.push(format!(
            "let cv_ax{t} = a_off + (m0 + cv_ae{t} / {bk}i) * {k} + (cv_ae{t} % {bk}i) * {kk}i;"
        ));
        pre.push(format!(
            "let cv_aok{t} = cv_ae{t} < {}i && m0 + cv_ae{t} / {bk}i < {m};",
            bm * bk
        ));
    }
    // One K-step: its channel block and kernel position (uniform), then the loads.
    let mut step = vec![
        format!("let cv_s = kn / {bk}i;"),
        format!("let cv_cb = cv_s / {kk}i;"),
        format!("var cv_kr = cv_s % {kk}i;"),
    ];
    let mut koff = vec![format!("cv_cb * {bk}i * {insz}")];
    for a in (0..sp).rev() {
        let kd = geo.w[2 + a].as_const().expect("concrete kernel");
        let dil = match geo.dilations[a] {
            1 => String::new(),
            d => format!(" * {d}i"),
        };
        step.push(format!("let cv_k{a} = (cv_kr % {kd}i){dil};"));
        step.push(format!("cv_kr = cv_kr / {kd}i;"));
    }
    for a in 0..sp {
        let st = geo.input_stride(a);
        koff.push(if st == Dim::c(1) {
            format!("cv_k{a}")
        } else {
            format!("cv_k{a} * {}", params.dim(&st, "istride"))
        });
    }
    step.push(format!("let cv_kx = {};", koff.join(" + ")));
    step.push(format!("let cv_ka = cv_cb * {}i + cv_s % {kk}i;", bk as i64 * kk));
    for q in 0..pixels {
        // The window position is inside the input (one unsigned compare per axis also rejects
        // the negative coordinates of the padding).
        let mut cond = vec![format!("cv_n{q} < {n}")];
        for a in 0..sp {
            let id = params.dim(&geo.x[2 + a], "idim");
            cond.push(format!("u32(cv_i{q}_{a} + cv_k{a}) < u32({id})"));
        }
        step.push(format!("let cv_ok{q} = {};", cond.join(" && ")));
    }
    for t in 0..b_loads {
        let mut ok = format!("cv_ok{}", pixel_of(t));
        if (t + 1) * threads > bk * bn {
            ok = format!("{ok} && i32(lid) + {}i < {}i", t * threads, bk * bn);
        }
        step.push(format!("sb{t} = 0.0;"));
        step.push(format!("if ({ok}) {{ sb{t} = in0[cv_bx{t} + cv_kx]; }}"));
    }
    for t in 0..a_loads {
        step.push(format!("sa{t} = 0.0;"));
        step.push(format!("if (cv_aok{t}) {{ sa{t} = in1[cv_ax{t} + cv_ka]; }}"));
    }
    BlockedLoads { pre, step }
}

/// Most kernel positions the direct kernel unrolls (a 9x9 window); larger windows stay on the
/// implicit GEMM, whose K loop is not unrolled.
pub const MAX_DIRECT_TAPS: i64 = 81;

/// Whether a convolution takes the direct kernel ([`direct_lines`]): one input channel per
/// group (depthwise), where the implicit GEMM's K is only the kernel positions, and at most
/// [`MAX_DIRECT_TAPS`] of them.
pub(crate) fn direct_applies(w: &[Dim]) -> bool {
    let taps = w[2..].iter().try_fold(1i64, |n, d| d.as_const().map(|v| n * v));
    w[1].as_const() == Some(1) && taps.is_some_and(|t| t <= MAX_DIRECT_TAPS)
}

/// The statements of the direct kernel's element `idx` (the injective template's body): the
/// output's coordinates, the window's taps unrolled (each tap inside the input read and
/// multiplied by its weight), the bias (input 2, when `bias`), then `store(value)` (the
/// statement that writes the result).
pub(super) fn direct_lines(
    geo: &ConvGeometry,
    groups: usize,
    bias: bool,
    params: &mut ParamSet,
    store: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let sp = geo.spatial();
    let names: Vec<String> = (0..geo.out.len()).map(|i| format!("c{i}")).collect();
    let mut lines = super::decompose(params, "idx", "rem", &names, geo.out);
    // Output channel c1 reads input channel c1 / (OC / groups) (one channel per group).
    let oc = geo.w[0].as_const().expect("inference made OC concrete");
    let per = oc / groups as i64;
    let c = params.dim(&geo.x[1], "c");
    let insz = params.dim(&Dim::product(&geo.x[2..]), "insz");
    let ci = if per == 1 {
        "c1".to_string()
    } else {
        format!("c1 / {per}i")
    };
    lines.push(format!("let cv_x = (c0 * {c} + {ci}) * {insz};"));
    let kk = geo.kernel_positions();
    lines.push(format!("let cv_w = c1 * {kk}i;"));
    for a in 0..sp {
        lines.push(format!(
            "let cv_i{a} = c{} * {}i - {}i;",
            2 + a,
            geo.strides[a],
            geo.pads[a].0
        ));
    }
    lines.push("var cv_acc = 0.0;".into());
    let extents: Vec<i64> = geo.w[2..]
        .iter()
        .map(|d| d.as_const().expect("concrete kernel"))
        .collect();
    for tap in 0..kk {
        // Kernel coordinates of the tap, last axis fastest.
        let mut r = tap;
        let mut kc = vec![0i64; sp];
        for a in (0..sp).rev() {
            kc[a] = r % extents[a];
            r /= extents[a];
        }
        let mut cond = Vec::new();
        let mut off = Vec::new();
        for (a, k) in kc.iter().enumerate() {
            let id = params.dim(&geo.x[2 + a], "idim");
            let at = format!("cv_i{a} + {}i", k * geo.dilations[a] as i64);
            cond.push(format!("u32({at}) < u32({id})"));
            let st = geo.input_stride(a);
            off.push(if st == Dim::c(1) {
                format!("({at})")
            } else {
                format!("({at}) * {}", params.dim(&st, "istride"))
            });
        }
        lines.push(format!(
            "if ({}) {{ cv_acc = fma(in0[cv_x + {}], in1[cv_w + {tap}i], cv_acc); }}",
            cond.join(" && "),
            off.join(" + ")
        ));
    }
    if bias {
        lines.push("cv_acc = cv_acc + in2[c1];".into());
    }
    lines.push(store("cv_acc"));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_kernel_takes_one_channel_per_group_and_small_windows() {
        let w = |s: &[i64]| s.iter().map(|&v| Dim::c(v)).collect::<Vec<_>>();
        assert!(direct_applies(&w(&[32, 1, 3, 3])));
        assert!(direct_applies(&w(&[64, 1, 9, 9])));
        assert!(direct_applies(&w(&[8, 1, 4])));
        assert!(!direct_applies(&w(&[32, 2, 3, 3])), "two channels per group: a GEMM");
        assert!(!direct_applies(&w(&[4, 1, 11, 11])), "121 taps: not unrolled");
    }

    #[test]
    fn channel_blocked_loads_need_whole_blocks_of_channels() {
        let w = |cg: i64| vec![Dim::c(8), Dim::c(cg), Dim::c(3), Dim::c(3)];
        assert!(channel_blocked_applies(&w(64), 16));
        assert!(channel_blocked_applies(&w(32), 32));
        assert!(!channel_blocked_applies(&w(48), 32));
        assert!(!channel_blocked_applies(&w(3), 8));
    }
}
