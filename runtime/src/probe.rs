//! What the device can do at best, for a profile's floor ([`crate::Session::probe_device`]):
//! the rate of reading a large buffer and the cost of one dispatch that depends on the one
//! before it. A language model's decode step cannot run faster than reading its weights once,
//! nor than its chain of dispatches; `kiln bench --profile` prints the larger of the two next to
//! the step's measured time.

use web_time::Duration;

/// The probe's results.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceProbe {
    /// Bytes per second of reading a scratch buffer several times the last-level cache, with
    /// 16-byte loads (the runtime's cache-scrub kernel).
    pub read_bytes_per_s: f64,
    /// GPU time per dispatch of a chain of one-workgroup dispatches, each reading and writing
    /// the word the one before it wrote (so a barrier separates every pair), in one pass.
    pub dispatch: Duration,
}

impl DeviceProbe {
    /// The floor of a step that reads `bytes` of weights in `dispatches` dispatches: the
    /// larger of reading the bytes once and running the chain.
    pub fn floor(&self, bytes: u64, dispatches: usize) -> Duration {
        let read = Duration::from_secs_f64(bytes as f64 / self.read_bytes_per_s.max(1.0));
        read.max(self.dispatch * dispatches as u32)
    }
}

/// Dispatches in the probe's chain.
pub(crate) const CHAIN: u32 = 256;

/// Each dispatch adds one to a word: every dispatch reads what the one before it wrote.
const CHAIN_SHADER: &str = r#"
@group(0) @binding(0) var<storage, read_write> v: array<u32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_index) i: u32) {
    if (i == 0u) {
        v[0] = v[0] + 1u;
    }
}
"#;

/// The probe's chain: [`CHAIN`] one-workgroup dispatches of [`CHAIN_SHADER`] over one word.
pub(crate) struct DispatchChain {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    // Kept alive for the bind group.
    _word: wgpu::Buffer,
}

impl DispatchChain {
    pub fn new(device: &wgpu::Device) -> DispatchChain {
        let word = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probe chain"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("probe chain"),
            source: wgpu::ShaderSource::Wgsl(CHAIN_SHADER.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("probe chain"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("probe chain"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: word.as_entire_binding(),
            }],
        });
        DispatchChain {
            pipeline,
            bind_group,
            _word: word,
        }
    }

    /// Records the chain in one pass with `timestamps` at its beginning and end.
    pub fn record(&self, enc: &mut wgpu::CommandEncoder, timestamps: wgpu::ComputePassTimestampWrites) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("probe chain"),
            timestamp_writes: Some(timestamps),
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        for _ in 0..CHAIN {
            pass.dispatch_workgroups(1, 1, 1);
        }
    }
}
