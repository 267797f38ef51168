//! Shared by the raw-kernel benches (`coop_direct`, `coop_ceiling`, `attn_ceiling`):
//! deterministic f16 operands, a device with the features a bench needs (f16 cooperative
//! matrices, subgroups, timestamps), and buffers filled from bytes.

use half::f16;
use kiln::runtime::wgpu;

/// Deterministic f16 values in [-1, 1].
pub fn f16_values(len: usize, seed: u64) -> Vec<f16> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            f16::from_f32(((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        })
        .collect()
}

/// A device with shader-f16, cooperative matrices, subgroups of exactly 32 and timestamps
/// (the adapter `KILN_ADAPTER` names, if set), with the adapter's buffer and workgroup-memory
/// limits and 1024-thread workgroups; or why there is none.
#[allow(dead_code)]
pub fn coop_device(label: &str) -> Result<(wgpu::Device, wgpu::Queue), String> {
    let want = wgpu::Features::SHADER_F16
        | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
        | wgpu::Features::SUBGROUP
        | wgpu::Features::TIMESTAMP_QUERY;
    device_with(label, want, 32..=32)
}

/// A device with the features `want` (which include timestamps) on an adapter whose smallest
/// subgroup size lies in `subgroups` (the adapter `KILN_ADAPTER` names, if set), with the
/// adapter's buffer and workgroup-memory limits and 1024-thread workgroups; or why there is
/// none.
pub fn device_with(
    label: &str,
    want: wgpu::Features,
    subgroups: std::ops::RangeInclusive<u32>,
) -> Result<(wgpu::Device, wgpu::Queue), String> {
    let instance = wgpu::Instance::default();
    let filter = std::env::var("KILN_ADAPTER").ok();
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    let adapter = adapters
        .into_iter()
        .filter(|a| filter.as_ref().is_none_or(|f| a.get_info().name.contains(f.as_str())))
        .find(|a| a.features().contains(want) && subgroups.contains(&a.get_info().subgroup_min_size))
        .ok_or(format!("no adapter with {want:?} and subgroups of {subgroups:?} lanes"))?;
    println!("device: {}", adapter.get_info().name);
    let mut limits = wgpu::Limits::default();
    limits.max_storage_buffer_binding_size = adapter.limits().max_storage_buffer_binding_size;
    limits.max_buffer_size = adapter.limits().max_buffer_size;
    limits.max_compute_invocations_per_workgroup = 1024;
    limits.max_compute_workgroup_size_x = 1024;
    limits.max_compute_workgroup_storage_size = adapter.limits().max_compute_workgroup_storage_size;
    let mut desc = wgpu::DeviceDescriptor {
        label: Some(label),
        required_features: want,
        required_limits: limits,
        ..Default::default()
    };
    if want.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        // SAFETY: experiments on an adapter that reports cooperative matrices; every result is
        // checked against the CPU before it is timed.
        desc.experimental_features = unsafe { wgpu::ExperimentalFeatures::enabled() };
    }
    pollster::block_on(adapter.request_device(&desc)).map_err(|e| e.to_string())
}

/// A buffer of `bytes` with `usage` (and `COPY_DST`, to be written).
pub fn upload(device: &wgpu::Device, queue: &wgpu::Queue, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    let buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes.len() as u64,
        usage: usage | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&buf, 0, bytes);
    buf
}
