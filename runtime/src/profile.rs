//! GPU profiles of one run of a program ([`crate::Session::profile`]).
//!
//! A [`Profile`] holds the GPU time of every dispatch (measured with WebGPU timestamp queries),
//! the run's wall time, and where the host spent it ([`HostTimes`]). It can be grouped by
//! kernel kind or by operation (the dispatch label with the layer number blanked, so the 30
//! layers of a language model add up) and rendered as a text report.
//!
//! Where the device writes timestamps inside passes (native Vulkan, Metal, D3D12), the
//! dispatches run in one pass as in an ordinary run, each timed from the end of the one before
//! it, and the times add up to the run's GPU time. Elsewhere (the browser) each dispatch is
//! recorded in its own pass whose beginning and end write a timestamp; that adds a pass's
//! start-up to every dispatch on some drivers, so the sum can exceed an ordinary run's time and
//! the shares are what such a profile is for ([`Profile::inside_pass`] says which).

use std::fmt::Write as _;
use web_time::Duration;

/// The GPU time of one dispatch.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchTime {
    /// Index of the dispatch in the program.
    pub index: usize,
    /// The dispatch's label (the graph node it computes).
    pub label: String,
    /// Name of the kernel it runs.
    pub kernel: String,
    /// The kernel's schedule, as display text.
    pub schedule: String,
    /// Workgroups launched (after any grid split).
    pub workgroups: [u32; 3],
    /// Time between its two timestamps: from the end of the dispatch before it (inside one
    /// pass) or from the beginning of its own pass, to its end.
    pub gpu: Duration,
}

impl DispatchTime {
    /// The kernel kind: the kernel name without its `kNNN_` prefix (`gemv`, `injective`, ...).
    pub fn kind(&self) -> &str {
        kernel_kind(&self.kernel)
    }

    /// The operation: the label with every `.N.` layer index replaced by `.*.`, so the same
    /// operation of every layer falls in one group.
    pub fn op(&self) -> String {
        blank_layer(&self.label)
    }
}

/// Where the host spent one profiled run's wall time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostTimes {
    /// Binding symbols, checking and converting inputs, evaluating sizes, parameters and
    /// grids, growing buffers, uploading, refreshing bind groups.
    pub prepare: Duration,
    /// Recording the dispatches and the output copies into the command encoder.
    pub record: Duration,
    /// Finishing the encoder and submitting it.
    pub submit: Duration,
    /// Waiting for the GPU to finish.
    pub wait: Duration,
    /// Mapping, copying and converting the outputs.
    pub readback: Duration,
}

impl HostTimes {
    /// Sum of the parts.
    pub fn total(&self) -> Duration {
        self.prepare + self.record + self.submit + self.wait + self.readback
    }
}

/// A profiled run of one program.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Program name.
    pub program: String,
    /// One entry per dispatch that ran (dispatches with an empty grid are skipped), in order.
    pub dispatches: Vec<DispatchTime>,
    /// Whether the dispatches were timed inside one pass, as an ordinary run records them
    /// (else each in a pass of its own).
    pub inside_pass: bool,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// The host's share of the wall time.
    pub host: HostTimes,
}

/// Dispatches that share a kind or operation, with their summed GPU time.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileGroup {
    /// The kind or operation.
    pub name: String,
    /// Dispatches in the group.
    pub count: usize,
    /// Their summed GPU time.
    pub gpu: Duration,
    /// `gpu` over the profile's total GPU time (0 when that is zero).
    pub share: f64,
}

impl Profile {
    /// Summed GPU time of all dispatches.
    pub fn gpu_total(&self) -> Duration {
        self.dispatches.iter().map(|d| d.gpu).sum()
    }

    /// Groups dispatches by `key`, largest GPU time first (ties by name).
    pub fn group_by(&self, key: impl Fn(&DispatchTime) -> String) -> Vec<ProfileGroup> {
        let total = self.gpu_total().as_secs_f64();
        let mut groups: Vec<ProfileGroup> = Vec::new();
        for d in &self.dispatches {
            let name = key(d);
            match groups.iter_mut().find(|g| g.name == name) {
                Some(g) => {
                    g.count += 1;
                    g.gpu += d.gpu;
                }
                None => groups.push(ProfileGroup {
                    name,
                    count: 1,
                    gpu: d.gpu,
                    share: 0.0,
                }),
            }
        }
        for g in &mut groups {
            g.share = if total > 0.0 { g.gpu.as_secs_f64() / total } else { 0.0 };
        }
        groups.sort_by(|a, b| b.gpu.cmp(&a.gpu).then_with(|| a.name.cmp(&b.name)));
        groups
    }

    /// Groups by kernel kind and schedule (e.g. `gemv gemv(lanes=4, ksplit=64, rows=1)`).
    pub fn by_kind(&self) -> Vec<ProfileGroup> {
        self.group_by(|d| format!("{} {}", d.kind(), d.schedule))
    }

    /// Groups by operation (the label with layer indices blanked).
    pub fn by_op(&self) -> Vec<ProfileGroup> {
        self.group_by(DispatchTime::op)
    }

    /// A text report: totals, the host breakdown, and the `top` largest groups by kind and by
    /// operation.
    pub fn report(&self, top: usize) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let gpu = self.gpu_total();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "program '{}': {} dispatches, GPU {:.3} ms (sum of dispatches, {}), wall {:.3} ms",
            self.program,
            self.dispatches.len(),
            ms(gpu),
            if self.inside_pass {
                "timed inside one pass"
            } else {
                "each in its own pass"
            },
            ms(self.wall)
        );
        let h = &self.host;
        let _ = writeln!(
            s,
            "  host: prepare {:.3} ms, record {:.3} ms, submit {:.3} ms, wait {:.3} ms, readback {:.3} ms",
            ms(h.prepare),
            ms(h.record),
            ms(h.submit),
            ms(h.wait),
            ms(h.readback)
        );
        if !self.dispatches.is_empty() {
            let _ = writeln!(
                s,
                "  mean per dispatch: {:.1} us",
                gpu.as_secs_f64() * 1e6 / self.dispatches.len() as f64
            );
        }
        for (title, groups) in [("by kernel kind", self.by_kind()), ("by operation", self.by_op())] {
            let _ = writeln!(s, "  {title} (top {top}):");
            for g in groups.iter().take(top) {
                let _ = writeln!(
                    s,
                    "    {:>6.2}%  {:>10.3} ms  {:>4}x  {:>9.1} us each  {}",
                    g.share * 100.0,
                    ms(g.gpu),
                    g.count,
                    g.gpu.as_secs_f64() * 1e6 / g.count.max(1) as f64,
                    g.name
                );
            }
        }
        s
    }
}

/// The kernel name without its `kNNN_` prefix.
fn kernel_kind(name: &str) -> &str {
    match name.split_once('_') {
        Some((k, rest)) if k.starts_with('k') && k[1..].chars().all(|c| c.is_ascii_digit()) && k.len() > 1 => rest,
        _ => name,
    }
}

/// Replaces every all-digit `.`-separated component of a label by `*`.
fn blank_layer(label: &str) -> String {
    label
        .split('.')
        .map(|p| {
            if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) {
                "*"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(index: usize, label: &str, kernel: &str, us: u64) -> DispatchTime {
        DispatchTime {
            index,
            label: label.into(),
            kernel: kernel.into(),
            schedule: "s".into(),
            workgroups: [1, 1, 1],
            gpu: Duration::from_micros(us),
        }
    }

    #[test]
    fn groups_by_kind_and_op() {
        let p = Profile {
            program: "decode".into(),
            dispatches: vec![
                d(0, "blk.0.attn_q.weight:qmatmul", "k003_gemv", 30),
                d(1, "blk.1.attn_q.weight:qmatmul", "k019_gemv", 10),
                d(2, "argmax", "k519_row_reduce", 60),
            ],
            inside_pass: true,
            wall: Duration::from_micros(200),
            host: HostTimes::default(),
        };
        assert_eq!(p.gpu_total(), Duration::from_micros(100));
        let ops = p.by_op();
        assert_eq!(ops[0].name, "argmax");
        assert_eq!(ops[1].name, "blk.*.attn_q.weight:qmatmul");
        assert_eq!(ops[1].count, 2);
        assert!((ops[1].share - 0.4).abs() < 1e-9);
        let kinds = p.by_kind();
        assert_eq!(kinds[0].name, "row_reduce s");
        assert_eq!(kinds[1].name, "gemv s");
        let r = p.report(5);
        assert!(r.contains("3 dispatches"), "{r}");
        assert!(r.contains("blk.*.attn_q.weight:qmatmul"), "{r}");
        assert_eq!(kernel_kind("kernel_x"), "kernel_x");
        assert_eq!(kernel_kind("k12_gemm"), "gemm");
    }
}
