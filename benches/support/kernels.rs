//! Shared by the raw-WGSL benches (`qgemv_layouts`, `coop_direct`, `gemv_split`): a compute
//! pipeline from WGSL, a bind group of plain buffers, and reading buffers back.

use kiln::runtime::wgpu;

/// The compute pipeline of `src`'s `main` (layout derived from the module).
#[allow(dead_code)]
pub fn pipeline(device: &wgpu::Device, src: &str) -> wgpu::ComputePipeline {
    pipeline_with_checks(device, src, true)
}

/// Like [`pipeline`], with wgpu's runtime checks (index clamps, loop bounds, division guards)
/// left out when `checks` is false: only for kernels that stay in bounds and finish their loops.
pub fn pipeline_with_checks(device: &wgpu::Device, src: &str, checks: bool) -> wgpu::ComputePipeline {
    let desc = wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(src.into()),
    };
    let module = if checks {
        device.create_shader_module(desc)
    } else {
        // SAFETY: the caller vouches for the kernel (see above).
        unsafe { device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
    };
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// A bind group of `buffers` at bindings 0, 1, ... of `p`'s group 0.
#[allow(dead_code)]
pub fn bind(device: &wgpu::Device, p: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
    let at: Vec<(u32, &wgpu::Buffer)> = buffers.iter().enumerate().map(|(i, b)| (i as u32, *b)).collect();
    bind_at(device, p, &at)
}

/// A bind group of `(binding, buffer)` pairs of `p`'s group 0 (a kernel's derived layout leaves
/// out the bindings it never reads, such as Kiln's unused `params`).
pub fn bind_at(device: &wgpu::Device, p: &wgpu::ComputePipeline, buffers: &[(u32, &wgpu::Buffer)]) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: *i,
            resource: b.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &p.get_bind_group_layout(0),
        entries: &entries,
    })
}

/// Copies each of `read` into a mappable buffer at the end of `enc`, submits, waits and
/// returns their bytes.
pub fn read_back(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    mut enc: wgpu::CommandEncoder,
    read: &[&wgpu::Buffer],
) -> Vec<Vec<u8>> {
    let staging: Vec<wgpu::Buffer> = read
        .iter()
        .map(|src| {
            let dst = device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: src.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            enc.copy_buffer_to_buffer(src, 0, &dst, 0, src.size());
            dst
        })
        .collect();
    queue.submit([enc.finish()]);
    for s in &staging {
        s.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    }
    device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    staging
        .iter()
        .map(|s| s.slice(..).get_mapped_range().expect("mapped").to_vec())
        .collect()
}
