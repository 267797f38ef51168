//! Device limit profiles that schedules and bundles are checked against at compile time.

use serde::{Deserialize, Serialize};

/// Why a target profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Neither a built-in name nor a readable file.
    #[error(
        "target '{target}' is neither a built-in profile (webgpu-default, desktop, h200) nor a readable RON file: {source}"
    )]
    Unreadable {
        /// The name or path given.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a RON `DeviceLimits`.
    #[error("target profile {path}: {source}")]
    Malformed {
        /// The file.
        path: String,
        /// RON's error (with its position).
        source: Box<ron::error::SpannedError>,
    },
}

/// The WebGPU limits (and features) the compiler checks kernels against. Field names follow
/// the WebGPU spec's limits (snake_case here, camelCase in manifests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLimits {
    /// Profile name, e.g. `webgpu-default`.
    pub name: String,
    /// maxComputeInvocationsPerWorkgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// maxComputeWorkgroupSizeX.
    pub max_compute_workgroup_size_x: u32,
    /// maxComputeWorkgroupSizeY.
    pub max_compute_workgroup_size_y: u32,
    /// maxComputeWorkgroupSizeZ.
    pub max_compute_workgroup_size_z: u32,
    /// maxComputeWorkgroupStorageSize (bytes).
    pub max_compute_workgroup_storage_size: u32,
    /// maxComputeWorkgroupsPerDimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// maxStorageBuffersPerShaderStage.
    pub max_storage_buffers_per_shader_stage: u32,
    /// maxStorageBufferBindingSize (bytes).
    pub max_storage_buffer_binding_size: u64,
    /// maxBufferSize (bytes).
    pub max_buffer_size: u64,
    /// The `shader-f16` feature.
    pub shader_f16: bool,
    /// Multiprocessors (NVIDIA SMs, AMD CUs) that run workgroups concurrently: not a WebGPU
    /// limit, a scheduling hint. The analytic defaults size split-K and tiles so that a GEMM
    /// launches enough workgroups to fill them. Profiles written before it existed read as
    /// [`DEFAULT_COMPUTE_UNITS`].
    #[serde(default = "default_compute_units")]
    pub compute_units: u32,
}

/// Multiprocessors assumed when a profile does not say: a large desktop GPU. Too many
/// workgroups cost a small GPU little; too few leave most of a large one idle.
pub const DEFAULT_COMPUTE_UNITS: u32 = 128;

fn default_compute_units() -> u32 {
    DEFAULT_COMPUTE_UNITS
}

impl DeviceLimits {
    /// The limits every WebGPU implementation guarantees (the spec's defaults): a bundle
    /// compiled for this profile runs on any WebGPU device.
    pub fn webgpu_default() -> DeviceLimits {
        DeviceLimits {
            name: "webgpu-default".into(),
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroup_size_x: 256,
            max_compute_workgroup_size_y: 256,
            max_compute_workgroup_size_z: 64,
            max_compute_workgroup_storage_size: 16384,
            max_compute_workgroups_per_dimension: 65535,
            max_storage_buffers_per_shader_stage: 8,
            max_storage_buffer_binding_size: 128 << 20,
            max_buffer_size: 256 << 20,
            shader_f16: false,
            compute_units: DEFAULT_COMPUTE_UNITS,
        }
    }

    /// Typical desktop discrete GPU limits (as exposed by Chrome/wgpu on NVIDIA/AMD).
    pub fn desktop() -> DeviceLimits {
        DeviceLimits {
            name: "desktop".into(),
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroup_size_x: 1024,
            max_compute_workgroup_size_y: 1024,
            max_compute_workgroup_size_z: 64,
            max_compute_workgroup_storage_size: 32768,
            max_compute_workgroups_per_dimension: 65535,
            max_storage_buffers_per_shader_stage: 10,
            max_storage_buffer_binding_size: (2u64 << 30) - 4,
            max_buffer_size: (2u64 << 30) - 4,
            shader_f16: false,
            compute_units: DEFAULT_COMPUTE_UNITS,
        }
    }

    /// The lent NVIDIA H200 through wgpu's Vulkan backend: the `desktop` limits, its 132 SMs
    /// and the 48 KiB of workgroup memory its driver grants (`maxComputeSharedMemorySize`),
    /// which the 128x256 bk32 f16 cooperative-matrix GEMM tile needs (157 vs 134 TFLOP/s at
    /// 4096³; the f32 defaults are the same as at 32 KiB: docs/performance.md, seventh session).
    pub fn h200() -> DeviceLimits {
        DeviceLimits {
            name: "h200".into(),
            compute_units: 132,
            max_compute_workgroup_storage_size: 48 * 1024,
            ..Self::desktop()
        }
    }

    /// A named built-in profile, or a RON file holding a `DeviceLimits`.
    pub fn from_name_or_file(s: &str) -> Result<DeviceLimits, ProfileError> {
        match s {
            "webgpu-default" | "webgpu" => Ok(Self::webgpu_default()),
            "desktop" => Ok(Self::desktop()),
            "h200" => Ok(Self::h200()),
            path => {
                let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Unreadable {
                    target: path.to_string(),
                    source,
                })?;
                ron::from_str(&text).map_err(|source| ProfileError::Malformed {
                    path: path.to_string(),
                    source: Box::new(source),
                })
            }
        }
    }
}
