//! Cold caches for kernel timing ([`crate::Session::evict_caches`]).
//!
//! A benchmark that repeats one kernel finds its data in the GPU's last-level cache (50 MB on
//! an H200) unlike a model that streams more than that per step. [`CacheScrub`] reads a
//! scratch buffer larger than the cache end to end with a small kernel, so that the cache then
//! holds the scratch buffer's lines. It reads rather than writes: written lines would be dirty,
//! and the timed kernel would pay for writing them back to memory as its own reads evict them,
//! which a model's kernels (whose caches hold clean weights) never do.

/// The scratch buffer, its reading kernel and one bind group per binding-sized chunk.
pub(crate) struct CacheScrub {
    /// The size asked for when it was made (what [`CacheScrub::record`] reads, rounded down to
    /// the limits).
    pub requested: u64,
    pipeline: wgpu::ComputePipeline,
    chunk: u64,
    chunks: Vec<wgpu::BindGroup>,
    // Kept alive for the bind groups.
    _buffer: wgpu::Buffer,
    _sink: wgpu::Buffer,
}

/// Workgroups per chunk; each thread strides over the chunk in steps of the whole grid.
const WORKGROUPS: u32 = 1024;

/// Each thread XORs the 16-byte words it reads and stores the result only if it equals a value
/// the zero-filled buffer never produces: the loads cannot be optimized away, nothing is written.
const SHADER: &str = r#"
@group(0) @binding(0) var<storage, read> scrub: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let stride = nw.x * 256u;
    var acc = vec4<u32>(0u);
    for (var i = gid.x; i < arrayLength(&scrub); i += stride) {
        acc ^= scrub[i];
    }
    if (all(acc == vec4<u32>(0x9e3779b9u))) {
        sink[0] = acc.x;
    }
}
"#;

impl CacheScrub {
    /// A scratch buffer of `bytes` (rounded down to whole 256-byte chunks; at most
    /// `limits.max_buffer_size`) read in chunks of at most `limits.max_storage_buffer_binding_size`.
    pub fn new(device: &wgpu::Device, limits: &wgpu::Limits, bytes: u64) -> Option<CacheScrub> {
        let requested = bytes;
        let bytes = bytes.min(limits.max_buffer_size) & !255;
        let chunk = limits.max_storage_buffer_binding_size.min(bytes) & !255;
        if chunk == 0 {
            return None;
        }
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cache scrub"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let sink = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("cache scrub sink"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("cache scrub"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("cache scrub"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        let chunks = (0..bytes / chunk)
            .map(|i| {
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("cache scrub"),
                    layout: &layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &buffer,
                                offset: i * chunk,
                                size: wgpu::BufferSize::new(chunk),
                            }),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: sink.as_entire_binding(),
                        },
                    ],
                })
            })
            .collect::<Vec<_>>();
        Some(CacheScrub {
            requested,
            pipeline,
            chunk,
            chunks,
            _buffer: buffer,
            _sink: sink,
        })
    }

    /// Bytes one [`CacheScrub::record`] reads.
    pub fn bytes_read(&self) -> u64 {
        self.chunk * self.chunks.len() as u64
    }

    /// Records the reads of the whole scratch buffer, in one pass with `timestamps` at its
    /// beginning and end when given.
    pub fn record(&self, enc: &mut wgpu::CommandEncoder, timestamps: Option<wgpu::ComputePassTimestampWrites>) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("cache scrub"),
            timestamp_writes: timestamps,
        });
        pass.set_pipeline(&self.pipeline);
        for bg in &self.chunks {
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(WORKGROUPS, 1, 1);
        }
    }
}
