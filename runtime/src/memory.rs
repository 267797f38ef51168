//! What a [`crate::Session`] has allocated on the device, by kind, and the peak.
//!
//! The session counts every buffer it creates (weights, states such as the KV cache, program
//! inputs, intermediates, uniform parameter blocks, readback staging); bytes are allocation
//! sizes (rounded up to 4 bytes as the session allocates them). Buffers grow, never shrink,
//! and a grown buffer briefly coexists with the one it replaces (its contents may be copied
//! over), so the peak is taken at each growth with both counted.

use std::fmt;

/// Device memory a session holds, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Weight buffers (packed quantized weights count as their packed words).
    pub weights: u64,
    /// Persistent states (the KV cache).
    pub states: u64,
    /// Program input buffers.
    pub inputs: u64,
    /// Intermediate buffers (shared by values with disjoint lifetimes; one set per program).
    pub intermediates: u64,
    /// Uniform parameter blocks of the programs.
    pub uniforms: u64,
    /// Mappable staging buffers for reading outputs back.
    pub staging: u64,
    /// The largest total held at any moment so far.
    pub peak: u64,
}

impl MemoryReport {
    /// Everything held now.
    pub fn total(&self) -> u64 {
        self.weights + self.states + self.inputs + self.intermediates + self.uniforms + self.staging
    }

    /// The peak over weights + states, minus one (0.05 means 5% above them); 0 without them.
    pub fn overhead(&self) -> f64 {
        let base = self.weights + self.states;
        if base == 0 {
            return 0.0;
        }
        self.peak as f64 / base as f64 - 1.0
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "weights {:.2} MiB + states (KV cache) {:.2} MiB = {:.2} MiB; inputs {:.3} MiB, intermediates {:.3} MiB, uniforms {:.3} MiB, staging {:.3} MiB; total {:.2} MiB; peak {:.2} MiB ({:+.1}% over weights + states)",
            mib(self.weights),
            mib(self.states),
            mib(self.weights + self.states),
            mib(self.inputs),
            mib(self.intermediates),
            mib(self.uniforms),
            mib(self.staging),
            mib(self.total()),
            mib(self.peak),
            self.overhead() * 100.0
        )
    }
}
