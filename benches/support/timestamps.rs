//! Shared by the raw-WGSL benches (`qgemv_layouts`, `coop_direct`, `gemv_split`): what a pass needs to be
//! timed by timestamp queries at its beginning and end.

use kiln::runtime::wgpu;

/// A two-entry timestamp query set and the 16-byte buffer its results resolve into (copied
/// out from there to be read).
pub fn pass_timestamps(device: &wgpu::Device) -> (wgpu::QuerySet, wgpu::Buffer) {
    let set = device.create_query_set(&wgpu::QuerySetDescriptor {
        label: None,
        ty: wgpu::QueryType::Timestamp,
        count: 2,
    });
    let resolve = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    (set, resolve)
}
