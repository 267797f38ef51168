//! naga validation of every generated module, with the target's capabilities.

use crate::CompileError;
use kiln_schedules::DeviceLimits;

/// What a cooperative-matrix GEMM variant needs: f16 and cooperative matrices.
pub const COOP_GEMM_CAPS: naga::valid::Capabilities = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32
    .union(naga::valid::Capabilities::SHADER_FLOAT16)
    .union(naga::valid::Capabilities::COOPERATIVE_MATRIX);

/// What a subgroup variant needs (the flash-attention kernel's shuffles), beside the target's.
pub const SUBGROUP_CAPS: naga::valid::Capabilities = naga::valid::Capabilities::SUBGROUP;

/// The naga capabilities a target profile offers every kernel.
pub fn target_caps(limits: &DeviceLimits) -> naga::valid::Capabilities {
    // f16 rounding of f32 values (quantizeToF16 / pack2x16float) is core WGSL.
    let mut caps = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if limits.shader_f16 {
        caps |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    caps
}

/// Parses and validates WGSL; failure is reported as a compiler bug with naga's diagnostic
/// and the full source.
pub fn validate_wgsl(kernel: &str, src: &str, limits: &DeviceLimits) -> Result<naga::Module, CompileError> {
    validate_wgsl_with(kernel, src, target_caps(limits))
}

/// [`validate_wgsl`] with explicit capabilities.
pub fn validate_wgsl_with(
    kernel: &str,
    src: &str,
    caps: naga::valid::Capabilities,
) -> Result<naga::Module, CompileError> {
    let bug = |message: String| CompileError::InvalidWgsl {
        kernel: kernel.to_string(),
        message,
        source_text: src.to_string(),
    };
    let module = naga::front::wgsl::parse_str(src).map_err(|e| bug(e.emit_to_string(src)))?;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| bug(e.emit_to_string(src)))?;
    Ok(module)
}

/// Workgroup memory a module declares, in bytes, as WebGPU counts it against
/// `maxComputeWorkgroupStorageSize`: each `var<workgroup>` rounded up to 16 bytes.
pub fn workgroup_storage_bytes(module: &naga::Module) -> u64 {
    let mut layouter = naga::proc::Layouter::default();
    if layouter.update(module.to_ctx()).is_err() {
        // A module naga validated has a layout; count nothing rather than guess.
        return 0;
    }
    module
        .global_variables
        .iter()
        .filter(|(_, v)| v.space == naga::AddressSpace::WorkGroup)
        .map(|(_, v)| (layouter[v.ty].size as u64).next_multiple_of(16))
        .sum()
}
