//! Adapter selection, requirement checks and device creation.
//!
//! [`Runtime`] picks a wgpu adapter (any backend; discrete GPUs first; the `KILN_ADAPTER`
//! environment variable filters by a case-insensitive substring of the adapter name, driver or
//! backend). [`Runtime::check_requirements`] compares a manifest's required WebGPU features and
//! limits, plus the limits implied by its kernels and constant-size buffers, against the
//! adapter, and the device is then requested with exactly those limits: the WebGPU defaults
//! (clamped to the adapter) raised to what the bundle needs, never above the adapter.

use crate::error::{Result, RuntimeError};
use kiln_abi::{BindingKind, Manifest};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Environment variable holding an adapter filter (substring of name, driver or backend).
pub const ADAPTER_ENV: &str = "KILN_ADAPTER";

/// Hint printed when no adapter exists at all.
#[cfg(not(target_arch = "wasm32"))]
const NO_ADAPTER_HINT: &str = "wgpu found no GPU adapter (Vulkan, Metal, DX12 or GL). On a machine \
without a GPU, install a software Vulkan driver: on Debian/Ubuntu `apt-get install \
mesa-vulkan-drivers` (lavapipe); `vulkaninfo --summary` should then list 'llvmpipe'";

/// WebGPU limit names this runtime understands, with getters/setters on [`wgpu::Limits`].
/// `lower_is_better` marks the alignment limits, where the adapter must offer at most the value.
macro_rules! limit_table {
    ($($name:literal => $field:ident $(, $lower:ident)?;)*) => {
        /// Every WebGPU limit name (camelCase) the runtime can check.
        pub const KNOWN_LIMITS: &[&str] = &[$($name),*];

        fn limit_get(l: &wgpu::Limits, name: &str) -> Option<u64> {
            match name {
                $($name => Some(l.$field as u64),)*
                _ => None,
            }
        }

        fn limit_set(l: &mut wgpu::Limits, name: &str, v: u64) {
            match name {
                $($name => l.$field = v.try_into().unwrap_or(l.$field),)*
                _ => {}
            }
        }

        fn lower_is_better(name: &str) -> bool {
            match name {
                $($name => limit_table!(@lower $($lower)?),)*
                _ => false,
            }
        }
    };
    (@lower lower) => { true };
    (@lower) => { false };
}

/// Hint given in a browser when WebGPU offers no adapter.
#[cfg(target_arch = "wasm32")]
const NO_ADAPTER_HINT: &str = "WebGPU offered no adapter (navigator.gpu.requestAdapter() returned null). \
Use a browser with WebGPU enabled (Chrome/Edge 113+, Safari 26+, Firefox 141+ on Windows), and \
check that hardware acceleration is on; headless Chromium needs --enable-unsafe-webgpu";

limit_table! {
    "maxBindGroups" => max_bind_groups;
    "maxBindingsPerBindGroup" => max_bindings_per_bind_group;
    "maxDynamicUniformBuffersPerPipelineLayout" => max_dynamic_uniform_buffers_per_pipeline_layout;
    "maxDynamicStorageBuffersPerPipelineLayout" => max_dynamic_storage_buffers_per_pipeline_layout;
    "maxStorageBuffersPerShaderStage" => max_storage_buffers_per_shader_stage;
    "maxUniformBuffersPerShaderStage" => max_uniform_buffers_per_shader_stage;
    "maxUniformBufferBindingSize" => max_uniform_buffer_binding_size;
    "maxStorageBufferBindingSize" => max_storage_buffer_binding_size;
    "maxBufferSize" => max_buffer_size;
    "minUniformBufferOffsetAlignment" => min_uniform_buffer_offset_alignment, lower;
    "minStorageBufferOffsetAlignment" => min_storage_buffer_offset_alignment, lower;
    "maxComputeWorkgroupStorageSize" => max_compute_workgroup_storage_size;
    "maxComputeInvocationsPerWorkgroup" => max_compute_invocations_per_workgroup;
    "maxComputeWorkgroupSizeX" => max_compute_workgroup_size_x;
    "maxComputeWorkgroupSizeY" => max_compute_workgroup_size_y;
    "maxComputeWorkgroupSizeZ" => max_compute_workgroup_size_z;
    "maxComputeWorkgroupsPerDimension" => max_compute_workgroups_per_dimension;
    "maxImmediateSize" => max_immediate_size;
}

/// The value of a WebGPU limit (camelCase name) in `limits`, if the name is known.
pub fn limit_value(limits: &wgpu::Limits, name: &str) -> Option<u64> {
    limit_get(limits, name)
}

/// A chosen GPU adapter, ready to create a device for a bundle.
///
/// Cloning is cheap (the wgpu instance and adapter are reference-counted handles) and skips the
/// adapter enumeration of [`Runtime::new`]: a process that opens many bundles (the conformance
/// runner, a server) picks the adapter once and passes a clone to each
/// [`crate::Session::with_runtime`]. Every session still gets its own device, created with the
/// limits its bundle needs.
#[derive(Clone)]
pub struct Runtime {
    // Kept alive for the adapter's sake.
    _instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    info: wgpu::AdapterInfo,
    /// Whether kernels may run as their variants (see [`Runtime::without_variants`]).
    variants: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("adapter", &self.info).finish()
    }
}

/// One limit or feature need, with the reason it is needed (for error messages).
#[derive(Clone, Debug)]
struct Need {
    limit: String,
    value: u64,
    source: String,
}

impl Runtime {
    /// Picks an adapter, honoring the `KILN_ADAPTER` filter if set (blocking; native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Runtime> {
        let filter = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
        Self::with_adapter(filter.as_deref())
    }

    /// Blocking form of [`Runtime::request`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_adapter(filter: Option<&str>) -> Result<Runtime> {
        pollster::block_on(Self::request(filter))
    }

    /// Picks an adapter whose name, driver or backend contains `filter` (case-insensitive), or
    /// the best adapter if `filter` is `None`: discrete, then integrated, virtual, other, CPU;
    /// Vulkan/Metal/DX12 before GL. In a browser there is one candidate: the adapter
    /// `navigator.gpu.requestAdapter()` offers.
    pub async fn request(filter: Option<&str>) -> Result<Runtime> {
        let (instance, adapters) = enumerate().await;
        if adapters.is_empty() {
            return Err(RuntimeError::NoAdapter(NO_ADAPTER_HINT.to_string()));
        }
        let all: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        let mut candidates: Vec<(wgpu::Adapter, wgpu::AdapterInfo)> = adapters
            .into_iter()
            .map(|a| {
                let i = a.get_info();
                (a, i)
            })
            .filter(|(_, i)| match filter {
                None => true,
                Some(f) => {
                    let f = f.to_lowercase();
                    [i.name.as_str(), i.driver.as_str(), i.backend.to_str()]
                        .iter()
                        .any(|s| s.to_lowercase().contains(&f))
                }
            })
            .collect();
        if candidates.is_empty() {
            return Err(RuntimeError::NoAdapter(format!(
                "no adapter matches {ADAPTER_ENV}='{}'; available: {}",
                filter.unwrap_or_default(),
                all.join("; ")
            )));
        }
        candidates.sort_by_key(|(_, i)| rank(i));
        let (adapter, info) = candidates.swap_remove(0);
        log::info!("selected adapter {}", describe(&info));
        Ok(Runtime {
            _instance: instance,
            adapter,
            info,
            variants: true,
        })
    }

    /// Name, backend, driver and type of the chosen adapter.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The adapter's name for messages (browsers do not tell wgpu the name).
    fn adapter_name(&self) -> String {
        if self.info.name.is_empty() {
            format!("browser {}", self.info.backend.to_str())
        } else {
            self.info.name.clone()
        }
    }

    /// The best limits the adapter supports.
    pub fn adapter_limits(&self) -> wgpu::Limits {
        self.adapter.limits()
    }

    /// Checks that the adapter offers every feature and limit `manifest` needs: the declared
    /// `requirements` plus the limits implied by its kernels (storage bindings, workgroup
    /// sizes, parameter blocks) and its constant-size buffers. Returns the features and limits
    /// to request the device with.
    pub fn check_requirements(&self, manifest: &Manifest) -> Result<(wgpu::Features, wgpu::Limits)> {
        let adapter_name = self.adapter_name();
        let mut features = wgpu::Features::empty();
        for name in &manifest.requirements.features {
            let f = wgpu::Features::from_str(name).map_err(|_| RuntimeError::UnknownRequirement {
                kind: "feature",
                name: name.clone(),
            })?;
            if !self.adapter.features().contains(f) {
                return Err(RuntimeError::MissingFeature {
                    feature: name.clone(),
                    adapter: adapter_name,
                });
            }
            features |= f;
        }

        let available = self.adapter.limits();
        // Start from the WebGPU defaults, but never above (or for alignments, below) the adapter.
        let mut limits = wgpu::Limits::default().or_worse_values_from(&available);
        for need in needs(manifest) {
            let Some(have) = limit_get(&available, &need.limit) else {
                return Err(RuntimeError::UnknownRequirement {
                    kind: "limit",
                    name: need.limit,
                });
            };
            let lower = lower_is_better(&need.limit);
            let ok = if lower { have <= need.value } else { have >= need.value };
            if !ok {
                return Err(RuntimeError::LimitTooLow {
                    limit: need.limit,
                    needed: need.value,
                    available: have,
                    adapter: adapter_name,
                    source_of_need: need.source,
                });
            }
            let cur = limit_get(&limits, &need.limit).unwrap_or(0);
            let v = if lower {
                cur.min(need.value)
            } else {
                cur.max(need.value)
            };
            limit_set(&mut limits, &need.limit, v);
        }
        Ok((features, limits))
    }

    /// Why the adapter cannot run a kernel variant with requirements `r`, or `None` if it can:
    /// every feature (by its WebGPU/wgpu name), every cooperative-matrix configuration, the
    /// subgroup width (exact or least) and the limits.
    pub fn variant_unsupported(&self, r: &kiln_abi::VariantRequirements) -> Option<String> {
        for name in &r.features {
            match wgpu::Features::from_str(name) {
                Err(_) => return Some(format!("feature '{name}' is unknown to this runtime")),
                Ok(f) if !self.adapter.features().contains(f) => {
                    return Some(format!("the adapter lacks feature '{name}'"))
                }
                Ok(_) => {}
            }
        }
        if !r.cooperative_matrix.is_empty() {
            let have = self.adapter.cooperative_matrix_properties();
            for c in &r.cooperative_matrix {
                let scalar = |t: kiln_abi::ElemType| match t {
                    kiln_abi::ElemType::F16 => Some(wgpu::CooperativeScalarType::F16),
                    kiln_abi::ElemType::F32 => Some(wgpu::CooperativeScalarType::F32),
                    kiln_abi::ElemType::I32 => Some(wgpu::CooperativeScalarType::I32),
                    kiln_abi::ElemType::U32 => Some(wgpu::CooperativeScalarType::U32),
                    _ => None,
                };
                let found = have.iter().any(|p| {
                    (p.m_size, p.n_size, p.k_size) == (c.m, c.n, c.k)
                        && Some(p.ab_type) == scalar(c.ab)
                        && Some(p.cr_type) == scalar(c.cr)
                });
                if !found {
                    return Some(format!(
                        "the adapter reports no {}x{}x{} {}x{}->{} cooperative-matrix configuration",
                        c.m,
                        c.n,
                        c.k,
                        c.ab.name(),
                        c.ab.name(),
                        c.cr.name()
                    ));
                }
            }
        }
        if let Some(w) = r.subgroup_size {
            let (lo, hi) = (self.info.subgroup_min_size, self.info.subgroup_max_size);
            if (lo, hi) != (w, w) {
                return Some(format!(
                    "it assumes subgroups of {w}, the adapter's are {lo} to {hi} wide"
                ));
            }
        }
        if let Some(w) = r.min_subgroup_size {
            let lo = self.info.subgroup_min_size;
            if lo < w {
                return Some(format!(
                    "it needs subgroups of at least {w} lanes, the adapter's can be {lo}"
                ));
            }
        }
        let available = self.adapter.limits();
        for (name, &need) in &r.limits {
            match limit_get(&available, name) {
                None => return Some(format!("limit '{name}' is unknown to this runtime")),
                Some(have) if have < need => {
                    return Some(format!("it needs {name} = {need}, the adapter offers {have}"))
                }
                Some(_) => {}
            }
        }
        None
    }

    /// This runtime with every kernel run as itself, never as one of its variants (to compare
    /// the two forms, or to step around a variant a driver mishandles).
    pub fn without_variants(self) -> Self {
        Runtime {
            variants: false,
            ..self
        }
    }

    /// For each kernel of `manifest`, the first of its variants the adapter supports (`None`:
    /// the kernel itself; always `None` [`without_variants`](Self::without_variants)). Each
    /// decision is logged with its reason.
    pub fn choose_variants(&self, manifest: &Manifest) -> Vec<Option<usize>> {
        manifest
            .kernels
            .iter()
            .map(|k| {
                if !self.variants {
                    if !k.variants.is_empty() {
                        log::info!("kernel '{}': variants turned off", k.name);
                    }
                    return None;
                }
                k.variants
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| match self.variant_unsupported(&v.requires) {
                        None => {
                            log::info!("kernel '{}': variant {i} ({})", k.name, v.schedule);
                            Some(i)
                        }
                        Some(why) => {
                            log::info!("kernel '{}': not variant {i} ({}): {why}", k.name, v.schedule);
                            None
                        }
                    })
            })
            .collect()
    }

    /// Checks `manifest`'s requirements and creates a device and queue for it. Timestamp
    /// queries (and their writes inside passes) are requested too whenever the adapter offers
    /// them (for `Session::profile_async`; they cost nothing unless used).
    pub(crate) async fn open(&self, manifest: &Manifest) -> Result<Gpu> {
        let (mut features, limits) = self.check_requirements(manifest)?;
        features |= self.adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        if features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            features |= self.adapter.features() & wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        }
        let mut desc = wgpu::DeviceDescriptor {
            label: Some("kiln"),
            required_features: features,
            required_limits: limits,
            ..Default::default()
        };
        if features.intersects(wgpu::Features::all_experimental_mask()) {
            // SAFETY: experimental features (cooperative matrices) are requested only for a
            // kernel variant the adapter reports support for (its exact matrix configuration
            // and subgroup width); the compiler validated the variant with naga for exactly
            // these capabilities. wgpu asks callers to acknowledge that such features may
            // still have implementation bugs.
            desc.experimental_features = unsafe { wgpu::ExperimentalFeatures::enabled() };
        }
        let (device, queue) = self
            .adapter
            .request_device(&desc)
            .await
            .map_err(|e| RuntimeError::RequestDevice {
                adapter: self.adapter_name(),
                message: e.to_string(),
            })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("uncaptured wgpu error: {e}");
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let limits = device.limits();
        Ok(Gpu {
            device,
            queue,
            info: self.info.clone(),
            limits,
            uncaptured,
        })
    }
}

/// A device created for one bundle.
pub(crate) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Errors that escaped every error scope (logged and surfaced by the next run).
    pub uncaptured: Arc<Mutex<Vec<String>>>,
}

/// Lists the adapters [`Runtime`] chooses from (for `kiln devices` and diagnostics; native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters() -> Vec<wgpu::AdapterInfo> {
    pollster::block_on(enumerate()).1.iter().map(|a| a.get_info()).collect()
}

/// Enumerates adapters. Unless `WGPU_BACKEND` selects backends explicitly, the primary
/// backends (Vulkan, Metal, DX12) are tried first and GL only if they have no adapter:
/// probing GL on a headless machine is slow and noisy.
#[cfg(not(target_arch = "wasm32"))]
async fn enumerate() -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    let make = |backends: Option<wgpu::Backends>| async move {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(b) = backends {
            desc.backends = b;
        }
        let instance = wgpu::Instance::new(desc);
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        (instance, adapters)
    };
    if std::env::var_os("WGPU_BACKEND").is_some() {
        return make(None).await;
    }
    let primary = make(Some(wgpu::Backends::PRIMARY)).await;
    if !primary.1.is_empty() {
        return primary;
    }
    make(Some(wgpu::Backends::SECONDARY)).await
}

/// In a browser: the adapter `navigator.gpu.requestAdapter()` offers (high performance), if any.
#[cfg(target_arch = "wasm32")]
async fn enumerate() -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::BROWSER_WEBGPU;
    let instance = wgpu::Instance::new(desc);
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await;
    (instance, adapter.into_iter().collect())
}

fn describe(i: &wgpu::AdapterInfo) -> String {
    format!(
        "'{}' ({:?}, {}, driver '{}')",
        i.name,
        i.device_type,
        i.backend.to_str(),
        i.driver
    )
}

fn rank(i: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match i.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match i.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (ty, backend)
}

/// Uniform parameter block size for a kernel with `n` i32 params: 4*n rounded up to 16,
/// at least 16.
pub(crate) fn param_block_size(n: usize) -> u64 {
    ((4 * n as u64).div_ceil(16) * 16).max(16)
}

/// Buffer allocation size for `bytes`: rounded up to 4, at least 16 (one 4-vector: kernels
/// may bind any buffer as an array of 4-vectors, e.g. the vec4 injective kernel's output,
/// which WebGPU validates against a minimum binding size of one element even when empty).
pub(crate) fn alloc_size(bytes: u64) -> u64 {
    copy_size(bytes).max(16)
}

/// Size of a readback (staging) buffer or copy for `bytes`: rounded up to 4 (buffer copies
/// move whole words), at least 4. Readback buffers are never bound to a kernel.
pub(crate) fn copy_size(bytes: u64) -> u64 {
    (bytes.div_ceil(4) * 4).max(4)
}

/// Declared requirements plus the limits implied by the manifest's kernels and constant sizes.
fn needs(m: &Manifest) -> Vec<Need> {
    let mut out: Vec<Need> = m
        .requirements
        .limits
        .iter()
        .map(|(k, v)| Need {
            limit: k.clone(),
            value: *v,
            source: "manifest requirements".into(),
        })
        .collect();
    let mut imply = |limit: &str, value: u64, source: String| {
        out.push(Need {
            limit: limit.into(),
            value,
            source,
        })
    };
    for k in &m.kernels {
        let storage = k.bindings.iter().filter(|b| **b != BindingKind::Uniform).count();
        let [x, y, z] = k.workgroup_size.map(u64::from);
        let src = |what: &str| format!("kernel '{}' {what}", k.name);
        imply(
            "maxStorageBuffersPerShaderStage",
            storage as u64,
            src("storage bindings"),
        );
        imply("maxComputeWorkgroupSizeX", x, src("workgroup size"));
        imply("maxComputeWorkgroupSizeY", y, src("workgroup size"));
        imply("maxComputeWorkgroupSizeZ", z, src("workgroup size"));
        imply("maxComputeInvocationsPerWorkgroup", x * y * z, src("workgroup size"));
        imply(
            "maxUniformBufferBindingSize",
            param_block_size(k.params.len()),
            src("parameter block"),
        );
    }
    for (i, b) in m.buffers.iter().enumerate() {
        if let Some(size) = b.size.as_const() {
            let size = alloc_size(size.max(0) as u64);
            let src = format!("buffer {i} '{}'", b.label);
            imply("maxBufferSize", size, src.clone());
            imply("maxStorageBufferBindingSize", size, src);
        }
    }
    // Keep only the largest need per limit (or smallest, for alignments), first source wins ties.
    let mut best: Vec<Need> = Vec::new();
    for n in out {
        match best.iter_mut().find(|b| b.limit == n.limit) {
            Some(b) => {
                let better = if lower_is_better(&n.limit) {
                    n.value < b.value
                } else {
                    n.value > b.value
                };
                if better {
                    *b = n;
                }
            }
            None => best.push(n),
        }
    }
    best
}
