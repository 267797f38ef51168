//! Executing a bundle's programs on a device.
//!
//! A [`Session`] owns the device created for one bundle, a compute pipeline per kernel, the
//! weight buffers (uploaded once, in one batch) and a cache of input/intermediate buffers and
//! bind groups that survives across runs. [`Session::run`] binds symbolic dims from the input
//! shapes, converts and uploads the inputs, evaluates buffer sizes, kernel parameters and grids,
//! records the whole program into one command encoder and one compute pass, copies the outputs
//! to staging buffers, submits once and reads back.
//!
//! The core is async (device creation, error scopes, buffer mapping and completion are
//! awaited), so the same code runs in a browser, where nothing may block. Native callers use
//! the blocking wrappers ([`Session::new`], [`Session::run`], [`Session::bench`]), which drive
//! the async core with `pollster`; natively the device is polled before awaiting, which is what
//! makes wgpu run the callbacks.

use crate::bundle::Bundle;
use crate::callback::callback_future;
use crate::device::{alloc_size, copy_size, param_block_size, Gpu, Runtime, ADAPTER_ENV};
use crate::error::{Result, RuntimeError};
use crate::host::{from_storage, storage_size, to_storage, HostTensor};
use crate::probe::{self, DeviceProbe};
use crate::profile::{DispatchTime, HostTimes, Profile};
use crate::scrub::CacheScrub;
use kiln_abi::{BindingKind, Bindings, BufferKind, IoSpec, Manifest, SizeExpr};
use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::time::Duration;
use web_time::Instant;

mod queued;
pub use queued::{Forward, Readback};

/// How a [`Session`] picks its adapter.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Case-insensitive substring of the adapter name, driver or backend; `None` picks the best
    /// adapter. Defaults to the `KILN_ADAPTER` environment variable.
    pub adapter: Option<String>,
    /// Whether kernels may run as the variants the adapter supports (subgroup, f16 or
    /// cooperative-matrix forms); `false` runs every kernel as its plain form. Defaults to
    /// `true` unless the `KILN_KERNEL_VARIANTS` environment variable is `0`.
    pub kernel_variants: bool,
}

/// Environment variable that turns kernel variants off when `0` ([`SessionOptions`]).
pub const KERNEL_VARIANTS_ENV: &str = "KILN_KERNEL_VARIANTS";

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            adapter: std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty()),
            kernel_variants: std::env::var(KERNEL_VARIANTS_ENV).map_or(true, |v| v.trim() != "0"),
        }
    }
}

/// Per-iteration wall-clock times of [`Session::bench`]; each iteration records the program,
/// submits it and waits for the GPU to finish.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Program name.
    pub program: String,
    /// One entry per timed iteration.
    pub times: Vec<Duration>,
}

impl Timing {
    /// Fastest iteration.
    pub fn min(&self) -> Duration {
        self.times.iter().copied().min().unwrap_or_default()
    }

    /// Mean over iterations.
    pub fn mean(&self) -> Duration {
        if self.times.is_empty() {
            return Duration::ZERO;
        }
        self.times.iter().sum::<Duration>() / self.times.len() as u32
    }

    /// Median over iterations.
    pub fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t.get(t.len() / 2).copied().unwrap_or_default()
    }
}

struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// A GPU buffer slot; `generation` changes whenever the buffer is replaced, invalidating
/// cached bind groups.
#[derive(Default)]
struct Slot {
    buffer: Option<wgpu::Buffer>,
    size: u64,
    generation: u64,
}

struct ProgramState {
    uniform: wgpu::Buffer,
    uniform_size: u64,
    /// Per dispatch: offset and size of its parameter block in `uniform`. The blocks of
    /// dynamic dispatches (see `dynamic`) come first, in dispatch order, so the parameters a
    /// decode step changes are one contiguous write.
    blocks: Vec<(u64, u64)>,
    /// Per dispatch: the generations of its buffers and the bind group built for them.
    bind_groups: Vec<Option<(Vec<u64>, wgpu::BindGroup)>>,
    /// Every buffer the program binds or exchanges ([`Manifest::program_buffers`], computed
    /// once).
    buffers: Vec<usize>,
    /// The parameter bytes last written to `uniform` (empty before the first run), so a run
    /// uploads only the blocks whose values changed (in a decode step, the few that depend on
    /// the position).
    written: Vec<u8>,
    /// Per dispatch: whether a parameter or the grid names a symbol. The others evaluate to
    /// the same values in every run, so after the first run they are taken from `written`
    /// and `grids` instead of being evaluated again.
    dynamic: Vec<bool>,
    /// Per dispatch: the (possibly split) workgroup counts of the last run; `None` where it
    /// had an empty grid or before the first run.
    grids: Vec<Option<[u32; 3]>>,
}

/// What one run will do once inputs are uploaded and sizes evaluated.
struct Plan {
    program: usize,
    /// Dispatch index and (possibly split) workgroup counts of every non-empty dispatch.
    dispatches: Vec<(usize, [u32; 3])>,
    outputs: Vec<OutPlan>,
}

/// What [`Session::execute`] measured.
struct Trace {
    wall: Duration,
    host: HostTimes,
    /// Dispatch index and workgroups of every dispatch that ran.
    dispatches: Vec<(usize, [u32; 3])>,
    /// Raw timestamps (two per dispatch) when the run was timed.
    ticks: Option<Vec<u64>>,
}

/// The mappable buffer that receives a timed run's timestamps.
struct Queries {
    readback: wgpu::Buffer,
}

struct OutPlan {
    /// Index among the program's outputs.
    index: usize,
    shape: Vec<usize>,
    /// Bytes of the value in storage dtype.
    bytes: u64,
}

/// Bytes [`Session::probe_device_async`] reads to measure the read rate.
const PROBE_READ_BYTES: u64 = 256 << 20;

/// A bundle loaded onto a device, ready to run its programs.
pub struct Session {
    manifest: Manifest,
    gpu: Gpu,
    kernels: Vec<Kernel>,
    slots: Vec<Slot>,
    programs: Vec<ProgramState>,
    /// Per (program, output): a mappable staging buffer, grown as needed.
    staging: HashMap<(usize, usize), wgpu::Buffer>,
    /// The most device memory held at once so far ([`Session::memory_report`]).
    peak_bytes: u64,
    /// Small mappable buffers that queued runs copy outputs into ([`Session::readback`]).
    readbacks: Vec<Option<queued::ReadbackBuffer>>,
    /// The scratch buffer [`Session::evict_caches`] reads, with its kernel.
    scrub: Option<CacheScrub>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("model", &self.manifest.model)
            .field("adapter", &self.gpu.info.name)
            .finish_non_exhaustive()
    }
}

/// Validation, out-of-memory and internal error scopes around a block of GPU calls; popped in
/// reverse order (also on drop, so an early `?` return keeps the scope stack balanced).
struct Scopes(Vec<wgpu::ErrorScopeGuard>);

impl Scopes {
    fn push(device: &wgpu::Device) -> Scopes {
        Scopes(vec![
            device.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            device.push_error_scope(wgpu::ErrorFilter::Internal),
            device.push_error_scope(wgpu::ErrorFilter::Validation),
        ])
    }

    /// Pops all scopes now (innermost first, keeping the device's scope stack balanced) and
    /// returns a future of the first error any of them caught. Awaiting can be deferred, so
    /// many scopes can be popped before any result is awaited.
    fn pop(mut self) -> impl std::future::Future<Output = Option<String>> {
        let pending: Vec<_> = std::iter::from_fn(|| self.0.pop()).map(|g| g.pop()).collect();
        async move {
            let mut first = None;
            for p in pending {
                if let Some(e) = p.await {
                    first.get_or_insert_with(|| format_error(&e));
                }
            }
            first
        }
    }
}

impl Drop for Scopes {
    fn drop(&mut self) {
        while let Some(g) = self.0.pop() {
            drop(g);
        }
    }
}

fn format_error(e: &wgpu::Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        src = c.source();
    }
    s
}

/// The timestamps in a mapped readback buffer (little-endian u64 ticks), which is unmapped.
fn read_ticks(readback: &wgpu::Buffer, context: &str) -> Result<Vec<u64>> {
    let view = readback
        .slice(..)
        .get_mapped_range()
        .map_err(|e| gpu_err(context, e.to_string()))?;
    let ticks = view
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    drop(view);
    readback.unmap();
    Ok(ticks)
}

fn gpu_err(context: impl Into<String>, message: String) -> RuntimeError {
    RuntimeError::Gpu {
        context: context.into(),
        message,
    }
}

fn input_list(inputs: &[IoSpec]) -> String {
    inputs
        .iter()
        .map(|i| format!("{}: {}[{}]", i.name, i.dtype.name(), shape_str(&i.shape)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shape_str(s: &[SizeExpr]) -> String {
    s.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
}

/// Blocking wrappers over the async core, for native callers (the CLI, tests, benches).
#[cfg(not(target_arch = "wasm32"))]
impl Session {
    /// Picks an adapter per `options`, checks the bundle's requirements, creates the device,
    /// the pipelines and the weight buffers. Blocking form of [`Session::create`].
    pub fn new(bundle: &Bundle, options: &SessionOptions) -> Result<Session> {
        pollster::block_on(Self::create(bundle, options))
    }

    /// Like [`Session::new`] with an adapter already chosen. A process that opens many bundles
    /// passes each a clone of one [`Runtime`] (cheap) instead of enumerating adapters again.
    pub fn with_runtime(runtime: Runtime, bundle: &Bundle) -> Result<Session> {
        pollster::block_on(Self::create_with_runtime(runtime, bundle))
    }

    /// Blocking form of [`Session::run_async`].
    pub fn run(&mut self, program: &str, inputs: &HashMap<String, HostTensor>) -> Result<Vec<(String, HostTensor)>> {
        pollster::block_on(self.run_async(program, inputs))
    }

    /// Blocking form of [`Session::run_with_async`].
    pub fn run_with(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        scalars: &[(&str, i64)],
        read: Option<&[&str]>,
    ) -> Result<Vec<(String, HostTensor)>> {
        pollster::block_on(self.run_with_async(program, inputs, scalars, read))
    }

    /// Blocking form of [`Session::profile_async`].
    pub fn profile(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        scalars: &[(&str, i64)],
        read: Option<&[&str]>,
    ) -> Result<Profile> {
        pollster::block_on(self.profile_async(program, inputs, scalars, read))
    }

    /// Blocking form of [`Session::probe_device_async`].
    pub fn probe_device(&mut self) -> Result<DeviceProbe> {
        pollster::block_on(self.probe_device_async())
    }

    /// Blocking form of [`Session::reset_states_async`].
    pub fn reset_states(&mut self) -> Result<()> {
        pollster::block_on(self.reset_states_async())
    }

    /// Blocking form of [`Session::bench_async`].
    pub fn bench(&mut self, program: &str, inputs: &HashMap<String, HostTensor>, iters: usize) -> Result<Timing> {
        pollster::block_on(self.bench_async(program, inputs, iters))
    }

    /// Like [`Session::bench`], calling `progress(n)` after the `n`-th timed iteration.
    pub fn bench_with_progress(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        iters: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Timing> {
        pollster::block_on(self.bench_progress_async(program, inputs, iters, 1, progress))
    }

    /// Blocking form of [`Session::bench_repeated_async`].
    pub fn bench_repeated(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        iters: usize,
        repeats: usize,
    ) -> Result<Timing> {
        pollster::block_on(self.bench_repeated_async(program, inputs, iters, repeats))
    }
}

impl Session {
    /// Picks an adapter per `options`, checks the bundle's requirements, creates the device,
    /// the pipelines and the weight buffers.
    pub async fn create(bundle: &Bundle, options: &SessionOptions) -> Result<Session> {
        let mut runtime = Runtime::request(options.adapter.as_deref()).await?;
        if !options.kernel_variants {
            runtime = runtime.without_variants();
        }
        Self::create_with_runtime(runtime, bundle).await
    }

    /// Like [`Session::create`] with an adapter already chosen.
    pub async fn create_with_runtime(runtime: Runtime, bundle: &Bundle) -> Result<Session> {
        // Each kernel runs as the best of its variants the adapter supports, else as itself.
        let choice = runtime.choose_variants(bundle.manifest());
        let manifest = bundle.manifest().with_variants(&choice);
        let t0 = Instant::now();
        let gpu = runtime.open(&manifest).await?;
        log::info!(
            "device on '{}' ({}) ready in {:.1} ms",
            gpu.info.name,
            gpu.info.backend.to_str(),
            t0.elapsed().as_secs_f64() * 1e3
        );

        // Every pipeline is created before any error scope is awaited, so a browser compiles
        // them concurrently instead of one round trip per kernel.
        let t1 = Instant::now();
        let mut pending = Vec::with_capacity(manifest.kernels.len());
        for (i, k) in manifest.kernels.iter().enumerate() {
            let wgsl = match choice[i] {
                Some(v) => bundle.variant_wgsl(i, v),
                None => bundle.wgsl(i),
            };
            pending.push(create_kernel(&gpu.device, k, wgsl));
        }
        let mut kernels = Vec::with_capacity(pending.len());
        for (kernel, scope) in pending {
            if let Some(message) = scope.await {
                let k = &manifest.kernels[kernels.len()];
                return Err(RuntimeError::Pipeline {
                    kernel: k.name.clone(),
                    file: k.file.clone(),
                    message,
                });
            }
            kernels.push(kernel);
        }
        log::info!(
            "created {} pipelines in {:.1} ms",
            kernels.len(),
            t1.elapsed().as_secs_f64() * 1e3
        );

        let mut session = Session {
            slots: (0..manifest.buffers.len()).map(|_| Slot::default()).collect(),
            staging: HashMap::new(),
            peak_bytes: 0,
            readbacks: Vec::new(),
            scrub: None,
            programs: Vec::new(),
            kernels,
            manifest,
            gpu,
        };
        session.upload_weights(bundle).await?;
        session.create_states()?;
        session.programs = (0..session.manifest.programs.len())
            .map(|p| session.create_program_state(p))
            .collect::<Result<_>>()?;
        session.peak_bytes = held_bytes(&session.slots, &session.programs, &session.staging);
        Ok(session)
    }

    /// Device memory this session holds, by kind, and the peak so far.
    pub fn memory_report(&self) -> crate::MemoryReport {
        let mut r = crate::MemoryReport::default();
        for (slot, spec) in self.slots.iter().zip(&self.manifest.buffers) {
            let bytes = if slot.buffer.is_some() { slot.size } else { 0 };
            match spec.kind {
                BufferKind::Weight => r.weights += bytes,
                BufferKind::State => r.states += bytes,
                BufferKind::Input => r.inputs += bytes,
                BufferKind::Intermediate | BufferKind::Scratch => r.intermediates += bytes,
            }
        }
        r.uniforms = self.programs.iter().map(|p| p.uniform_size).sum();
        r.staging = self.staging.values().map(|b| b.size()).sum::<u64>()
            + self.readbacks.iter().flatten().map(|r| r.size()).sum::<u64>();
        r.peak = self.peak_bytes.max(r.total());
        r
    }

    /// The manifest of the loaded bundle.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Name, backend, driver and type of the adapter in use.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.gpu.info
    }

    /// The limits the device was created with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.gpu.limits
    }

    /// Creates every weight buffer mapped, copies its data in, and flushes them all with one
    /// submit and one wait.
    async fn upload_weights(&mut self, bundle: &Bundle) -> Result<()> {
        let t0 = Instant::now();
        let scopes = Scopes::push(&self.gpu.device);
        let mut total = 0u64;
        for (wi, w) in self.manifest.weights.iter().enumerate() {
            let spec = &self.manifest.buffers[w.buffer];
            let size = spec.size.as_const().unwrap_or(0).max(0) as u64;
            let size = alloc_size(size);
            self.check_buffer_size(w.buffer, size)?;
            let data = bundle.weight_data(wi);
            let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&spec.label),
                size,
                usage: storage_usage(),
                mapped_at_creation: true,
            });
            if !data.is_empty() {
                let mut view = buffer
                    .slice(..)
                    .get_mapped_range_mut()
                    .map_err(|e| gpu_err(format!("upload of weight '{}'", w.name), e.to_string()))?;
                view.slice(..data.len()).copy_from_slice(data);
            }
            buffer.unmap();
            total += data.len() as u64;
            self.slots[w.buffer] = Slot {
                buffer: Some(buffer),
                size,
                generation: 1,
            };
        }
        let idx = self.gpu.queue.submit([]);
        if let Some(e) = scopes.pop().await {
            return Err(gpu_err("weight upload", e));
        }
        self.wait(idx, "weight upload").await?;
        log::info!(
            "uploaded {} weights ({:.1} MiB) in {:.1} ms",
            self.manifest.weights.len(),
            total as f64 / (1 << 20) as f64,
            t0.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    }

    /// Allocates every state buffer at its constant size (wgpu zero-fills new buffers).
    fn create_states(&mut self) -> Result<()> {
        for st in &self.manifest.states {
            let spec = &self.manifest.buffers[st.buffer];
            let size = alloc_size(spec.size.as_const().unwrap_or(0).max(0) as u64);
            self.check_buffer_size(st.buffer, size)?;
            let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&spec.label),
                size,
                usage: storage_usage(),
                mapped_at_creation: false,
            });
            self.slots[st.buffer] = Slot {
                buffer: Some(buffer),
                size,
                generation: 1,
            };
        }
        Ok(())
    }

    /// Zero-fills every state (e.g. the KV cache before a new conversation).
    pub async fn reset_states_async(&mut self) -> Result<()> {
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("reset states"),
        });
        for st in &self.manifest.states {
            if let Some(b) = &self.slots[st.buffer].buffer {
                enc.clear_buffer(b, 0, None);
            }
        }
        let idx = self.gpu.queue.submit([enc.finish()]);
        self.wait(idx, "reset of the states").await
    }

    fn create_program_state(&self, p: usize) -> Result<ProgramState> {
        let program = &self.manifest.programs[p];
        let align = u64::from(self.gpu.limits.min_uniform_buffer_offset_alignment).max(16);
        let dynamic: Vec<bool> = program
            .dispatches
            .iter()
            .map(|d| d.params.iter().chain(&d.grid).any(names_symbol))
            .collect();
        // Dynamic dispatches' blocks first: a decode step rewrites only those (one write when
        // they are adjacent; interleaved with the static ones they cost one write each).
        let mut blocks = vec![(0u64, 0u64); program.dispatches.len()];
        let mut offset = 0u64;
        for pass in [true, false] {
            for (di, d) in program.dispatches.iter().enumerate() {
                if dynamic[di] == pass {
                    let size = param_block_size(self.manifest.kernels[d.kernel].params.len());
                    blocks[di] = (offset, size);
                    offset += size.div_ceil(align) * align;
                }
            }
        }
        let uniform_size = offset.max(16);
        if uniform_size > self.gpu.limits.max_buffer_size {
            return Err(RuntimeError::InvalidBundle(format!(
                "program '{}' needs a {uniform_size}-byte parameter buffer, more than maxBufferSize ({})",
                program.name, self.gpu.limits.max_buffer_size
            )));
        }
        let uniform = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&format!("params of program '{}'", program.name)),
            size: uniform_size,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(ProgramState {
            uniform,
            uniform_size,
            blocks,
            bind_groups: (0..program.dispatches.len()).map(|_| None).collect(),
            buffers: self.manifest.program_buffers(p),
            written: Vec::new(),
            dynamic,
            grids: vec![None; program.dispatches.len()],
        })
    }

    fn program_index(&self, name: &str) -> Result<usize> {
        self.manifest
            .programs
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| RuntimeError::UnknownProgram {
                name: name.to_string(),
                available: self
                    .manifest
                    .programs
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Runs program `program` on `inputs` (by manifest input name) and returns the outputs in
    /// manifest order, converted to their declared dtypes.
    pub async fn run_async(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
    ) -> Result<Vec<(String, HostTensor)>> {
        self.run_with_async(program, inputs, &[], None).await
    }

    /// Runs program `program` with its inputs (by name) and its scalar symbols bound to the
    /// given values, and returns the outputs named in `read` (every output when `None`), in
    /// the program's output order. Outputs not asked for stay on the GPU; state buffers keep
    /// what the program wrote for the next run.
    pub async fn run_with_async(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        scalars: &[(&str, i64)],
        read: Option<&[&str]>,
    ) -> Result<Vec<(String, HostTensor)>> {
        Ok(self.execute(program, inputs, scalars, read, false).await?.0)
    }

    /// Whether the device can time dispatches ([`Session::profile_async`]): the adapter offers
    /// WebGPU's `timestamp-query` feature (the runtime requests it whenever it is offered).
    pub fn can_profile(&self) -> bool {
        self.gpu.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Whether [`Session::profile_async`] times the dispatches inside one pass, as a plain run
    /// records them (the device has timestamp writes inside passes, a native-only feature),
    /// rather than each in a pass of its own.
    pub fn times_inside_passes(&self) -> bool {
        self.gpu
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    }

    /// Reads `bytes` (at most the device's buffer size limit) of a scratch buffer, so that the
    /// next run starts with cold caches: a benchmark that repeats one kernel would otherwise
    /// find its weights in the GPU's last-level cache (50 MB on an H200), unlike a model that
    /// streams more weights than that per step (the runtime's `scrub` module says why it reads
    /// rather than writes). Submitted without waiting; queue order puts it before the next run. The
    /// buffer is kept for the next call and not counted in [`Session::memory_report`].
    pub fn evict_caches(&mut self, bytes: u64) {
        self.ensure_scrub(bytes);
        let Some(scrub) = &self.scrub else {
            return;
        };
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("cache scrub"),
        });
        scrub.record(&mut enc, None);
        self.gpu.queue.submit([enc.finish()]);
    }

    /// Makes (or remakes larger) the cache-scrub buffer and kernel to read at least `bytes`;
    /// false where the device's limits fit no chunk.
    fn ensure_scrub(&mut self, bytes: u64) -> bool {
        if !matches!(&self.scrub, Some(s) if s.requested >= bytes) {
            self.scrub = CacheScrub::new(&self.gpu.device, &self.gpu.limits, bytes);
        }
        self.scrub.is_some()
    }

    /// Measures what the device can do at best (module `probe`): reading the cache-scrub
    /// buffer (256 MiB where the limits allow) once untimed and once timed, then a chain of
    /// dependent one-workgroup dispatches in one pass, each with timestamps around its pass.
    /// Fails with [`RuntimeError::TimestampsUnsupported`] when the adapter has no timestamp
    /// queries.
    pub async fn probe_device_async(&mut self) -> Result<DeviceProbe> {
        if !self.can_profile() {
            return Err(RuntimeError::TimestampsUnsupported {
                adapter: format!("{} ({})", self.gpu.info.name, self.gpu.info.backend.to_str()),
            });
        }
        let context = "device probe";
        if !self.ensure_scrub(PROBE_READ_BYTES) {
            return Err(gpu_err(context, "no scratch buffer fits the device's limits".into()));
        }
        let scrub = self.scrub.as_ref().expect("ensured above");
        let device = &self.gpu.device;
        let chain = probe::DispatchChain::new(device);
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("probe timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 4,
        });
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probe timestamps"),
            size: 32,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("probe timestamp readback"),
            size: 32,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let writes = |begin: u32| wgpu::ComputePassTimestampWrites {
            query_set: &set,
            beginning_of_pass_write_index: Some(begin),
            end_of_pass_write_index: Some(begin + 1),
        };
        let scopes = Scopes::push(device);
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(context) });
        scrub.record(&mut enc, None);
        scrub.record(&mut enc, Some(writes(0)));
        chain.record(&mut enc, writes(2));
        enc.resolve_query_set(&set, 0..4, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &readback, 0, 32);
        let idx = self.gpu.queue.submit([enc.finish()]);
        let scope = scopes.pop();
        let (tx, rx) = callback_future();
        readback.slice(..).map_async(wgpu::MapMode::Read, move |r| tx.send(r));
        self.drive(idx, context)?;
        if let Some(e) = scope.await {
            return Err(gpu_err(context, e));
        }
        match rx.await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(gpu_err(context, e.to_string())),
            None => return Err(gpu_err(context, "the device dropped the timestamp readback".into())),
        }
        let ticks = read_ticks(&readback, context)?;
        self.check_uncaptured(context)?;
        let period = f64::from(self.gpu.queue.get_timestamp_period());
        let span = |a: usize| ticks[a + 1].saturating_sub(ticks[a]) as f64 * period * 1e-9;
        let read_s = span(0).max(1e-9);
        Ok(DeviceProbe {
            read_bytes_per_s: scrub.bytes_read() as f64 / read_s,
            dispatch: Duration::from_secs_f64(span(2) / f64::from(probe::CHAIN)),
        })
    }

    /// Runs program `program` once like [`Session::run_with_async`] and measures it: the GPU
    /// time of every dispatch (timestamps between the dispatches of one pass where the device
    /// allows, else a pass per dispatch with timestamps at its beginning and end), the wall
    /// time, and the host's breakdown (prepare, record, submit, wait, readback). The run has its usual effects (states are written). Fails with
    /// [`RuntimeError::TimestampsUnsupported`] when the adapter has no timestamp queries.
    pub async fn profile_async(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        scalars: &[(&str, i64)],
        read: Option<&[&str]>,
    ) -> Result<Profile> {
        if !self.can_profile() {
            return Err(RuntimeError::TimestampsUnsupported {
                adapter: format!("{} ({})", self.gpu.info.name, self.gpu.info.backend.to_str()),
            });
        }
        let (_, trace) = self.execute(program, inputs, scalars, read, true).await?;
        let pi = self.program_index(program)?;
        let prog = &self.manifest.programs[pi];
        let period = f64::from(self.gpu.queue.get_timestamp_period());
        let ticks = trace.ticks.unwrap_or_default();
        let dispatches = trace
            .dispatches
            .iter()
            .enumerate()
            .map(|(i, &(di, workgroups))| {
                let d = &prog.dispatches[di];
                let k = &self.manifest.kernels[d.kernel];
                let (begin, end) = (ticks.get(2 * i).copied(), ticks.get(2 * i + 1).copied());
                let ns = match (begin, end) {
                    (Some(b), Some(e)) => e.saturating_sub(b) as f64 * period,
                    _ => 0.0,
                };
                DispatchTime {
                    index: di,
                    label: d.label.clone(),
                    kernel: k.name.clone(),
                    schedule: k.schedule.clone(),
                    workgroups,
                    gpu: Duration::from_nanos(ns.round() as u64),
                }
            })
            .collect();
        Ok(Profile {
            program: program.to_string(),
            dispatches,
            inside_pass: self.times_inside_passes(),
            wall: trace.wall,
            host: trace.host,
        })
    }

    /// One run: prepare, record (with a timestamped pass per dispatch when `timestamps`),
    /// submit, wait, read back. Returns the outputs and where the time went.
    async fn execute(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        scalars: &[(&str, i64)],
        read: Option<&[&str]>,
        timestamps: bool,
    ) -> Result<(Vec<(String, HostTensor)>, Trace)> {
        let t0 = Instant::now();
        let pi = self.program_index(program)?;
        if let Some(read) = read {
            let outs = self.manifest.program_outputs(pi);
            if let Some(bad) = read.iter().find(|r| !outs.iter().any(|o| o.name == **r)) {
                return Err(RuntimeError::UnknownOutput {
                    name: bad.to_string(),
                    program: program.to_string(),
                    available: outs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", "),
                });
            }
        }
        let context = format!("program '{program}'");
        let scopes = Scopes::push(&self.gpu.device);
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(program) });
        let mut plan = self.prepare(pi, inputs, scalars, &[], &mut enc)?;
        if let Some(read) = read {
            let outs = self.manifest.program_outputs(pi);
            plan.outputs.retain(|o| read.contains(&outs[o.index].name.as_str()));
        }
        let t_prep = Instant::now();
        let queries = if timestamps {
            Some(self.record_timed(&plan, &mut enc))
        } else {
            self.record(&plan, &mut enc, 1);
            None
        };

        // Copy outputs into staging buffers (grown as needed).
        let mut copies = Vec::new();
        for (oi, out) in plan.outputs.iter().enumerate() {
            if out.bytes == 0 {
                continue;
            }
            let spec = &self.manifest.program_outputs(pi)[out.index];
            let n = copy_size(out.bytes);
            let staging = match self.staging.get(&(pi, out.index)) {
                Some(b) if b.size() >= n => b.clone(),
                _ => {
                    // The old staging buffer is released after the new one exists.
                    let held = held_bytes(&self.slots, &self.programs, &self.staging);
                    self.peak_bytes = self.peak_bytes.max(held + n);
                    let b = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(&format!("staging for output '{}'", spec.name)),
                        size: n,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    self.staging.insert((pi, out.index), b.clone());
                    b
                }
            };
            let src = self.slots[spec.buffer]
                .buffer
                .as_ref()
                .expect("output buffers are allocated by prepare");
            enc.copy_buffer_to_buffer(src, 0, &staging, 0, n);
            copies.push((oi, staging, n));
        }
        let t_rec = Instant::now();
        let idx = self.gpu.queue.submit([enc.finish()]);
        let scope = scopes.pop();

        // Map every staging buffer; each mapping resolves once the GPU has finished the copy.
        let mut maps = Vec::with_capacity(copies.len());
        for (_, staging, n) in &copies {
            let (tx, rx) = callback_future();
            staging.slice(..*n).map_async(wgpu::MapMode::Read, move |r| tx.send(r));
            maps.push(rx);
        }
        let ticks_map = queries.as_ref().map(|q| {
            let (tx, rx) = callback_future();
            q.readback.slice(..).map_async(wgpu::MapMode::Read, move |r| tx.send(r));
            rx
        });
        let t_sub = Instant::now();
        self.drive(idx, &context)?;
        if let Some(e) = scope.await {
            return Err(gpu_err(context, e));
        }
        let t_wait = Instant::now();
        for rx in maps.into_iter().chain(ticks_map) {
            match rx.await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(gpu_err(format!("readback in {context}"), e.to_string())),
                None => {
                    return Err(gpu_err(
                        format!("readback in {context}"),
                        "the device dropped a staging buffer's mapping request".into(),
                    ))
                }
            }
        }
        let mut raw: Vec<Vec<u8>> = vec![Vec::new(); plan.outputs.len()];
        for (oi, staging, n) in &copies {
            let view = staging
                .slice(..*n)
                .get_mapped_range()
                .map_err(|e| gpu_err(format!("readback in {context}"), e.to_string()))?;
            raw[*oi] = view[..plan.outputs[*oi].bytes as usize].to_vec();
            drop(view);
            staging.unmap();
        }
        let ticks = match &queries {
            Some(q) => Some(read_ticks(&q.readback, &format!("timestamp readback in {context}"))?),
            None => None,
        };
        self.check_uncaptured(&context)?;

        let mut results = Vec::with_capacity(plan.outputs.len());
        for (out, bytes) in plan.outputs.into_iter().zip(raw) {
            let spec = &self.manifest.program_outputs(pi)[out.index];
            let what = format!("output '{}'", spec.name);
            let t = from_storage(&bytes, spec.storage, spec.dtype, out.shape, &what)?;
            results.push((spec.name.clone(), t));
        }
        let t_end = Instant::now();
        let host = HostTimes {
            prepare: t_prep - t0,
            record: t_rec - t_prep,
            submit: t_sub - t_rec,
            wait: t_wait - t_sub,
            readback: t_end - t_wait,
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        log::debug!(
            "{context}: {} dispatches, prepare {:.3} ms, record {:.3} ms, submit {:.3} ms, wait {:.3} ms, readback {:.3} ms, total {:.3} ms",
            plan.dispatches.len(),
            ms(host.prepare),
            ms(host.record),
            ms(host.submit),
            ms(host.wait),
            ms(host.readback),
            ms(t_end - t0)
        );
        let trace = Trace {
            wall: t_end - t0,
            host,
            dispatches: plan.dispatches,
            ticks,
        };
        Ok((results, trace))
    }

    /// Times `iters` executions of `program` on `inputs`. One full [`Session::run`] first
    /// validates everything and warms up; then inputs are uploaded once and each timed
    /// iteration records the program into one encoder and pass, submits it and waits for the
    /// device to finish (no upload or readback inside the timed region).
    pub async fn bench_async(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        iters: usize,
    ) -> Result<Timing> {
        self.bench_repeated_async(program, inputs, iters, 1).await
    }

    /// Like [`Session::bench_async`], but each timed iteration records the program's dispatches
    /// `repeats` times back to back into its one pass, and the reported times are per repeat.
    /// This amortizes the submit+wait round trip (tens of microseconds) that would otherwise
    /// swamp kernels of that size, such as a GEMV; what remains per repeat is the kernels plus
    /// the barrier between dependent dispatches. With more than one repeat the timer starts at
    /// the submit, so the CPU's encoding of the repeats (a few microseconds per dispatch, while
    /// the GPU waits) is not timed, as CUDA-event timing of back-to-back launches does not
    /// time their launch cost while the GPU is busy; one repeat (a program's latency) times the
    /// encoding too.
    pub async fn bench_repeated_async(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        iters: usize,
        repeats: usize,
    ) -> Result<Timing> {
        self.bench_progress_async(program, inputs, iters, repeats, &mut |_| {})
            .await
    }

    /// [`Session::bench_repeated_async`] calling `progress(n)` after the `n`-th timed iteration
    /// (for a progress bar).
    pub async fn bench_progress_async(
        &mut self,
        program: &str,
        inputs: &HashMap<String, HostTensor>,
        iters: usize,
        repeats: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Timing> {
        let repeats = repeats.max(1);
        self.run_async(program, inputs).await?;
        let pi = self.program_index(program)?;
        let context = format!("benchmark of program '{program}'");
        let scopes = Scopes::push(&self.gpu.device);
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(program) });
        let plan = self.prepare(pi, inputs, &[], &[], &mut enc)?;
        let idx = self.gpu.queue.submit([enc.finish()]);
        self.wait(idx, &context).await?;
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let mut t = Instant::now();
            let mut enc = self
                .gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(program) });
            self.record(&plan, &mut enc, repeats);
            let commands = enc.finish();
            if repeats > 1 {
                // Kernel timing: the CPU's encoding of the repeats is not timed.
                t = Instant::now();
            }
            let idx = self.gpu.queue.submit([commands]);
            self.wait(idx, &context).await?;
            times.push(t.elapsed() / repeats as u32);
            progress(times.len());
        }
        if let Some(e) = scopes.pop().await {
            return Err(gpu_err(context, e));
        }
        self.check_uncaptured(&context)?;
        let timing = Timing {
            program: program.to_string(),
            times,
        };
        log::info!(
            "{context}: {iters} iterations, median {:.3} ms, min {:.3} ms",
            timing.median().as_secs_f64() * 1e3,
            timing.min().as_secs_f64() * 1e3
        );
        Ok(timing)
    }

    /// Resolves once the GPU has finished all work submitted so far (up to `idx`).
    async fn wait(&self, idx: wgpu::SubmissionIndex, context: &str) -> Result<()> {
        let (tx, rx) = callback_future();
        self.gpu.queue.on_submitted_work_done(move || tx.send(()));
        self.drive(idx, context)?;
        rx.await.ok_or_else(|| {
            gpu_err(
                context,
                "the device dropped a completion callback (device lost?)".into(),
            )
        })
    }

    /// Natively, blocks until submission `idx` is done and runs the completion callbacks (wgpu
    /// runs them only inside `poll`). In a browser the event loop runs them: nothing to do.
    fn drive(&self, idx: wgpu::SubmissionIndex, context: &str) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.gpu
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(idx),
                    timeout: None,
                })
                .map(|_| ())
                .map_err(|e| gpu_err(context, e.to_string()))
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (idx, context);
            Ok(())
        }
    }

    fn check_uncaptured(&self, context: &str) -> Result<()> {
        let mut v = self.gpu.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        if v.is_empty() {
            return Ok(());
        }
        let msg = v.join("; ");
        v.clear();
        Err(gpu_err(context, msg))
    }

    fn check_buffer_size(&self, buffer: usize, size: u64) -> Result<()> {
        let l = &self.gpu.limits;
        for (limit, max) in [
            ("maxStorageBufferBindingSize", l.max_storage_buffer_binding_size),
            ("maxBufferSize", l.max_buffer_size),
        ] {
            if size > max {
                return Err(RuntimeError::BufferTooLarge {
                    buffer,
                    label: self.manifest.buffers[buffer].label.clone(),
                    size,
                    limit,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Binds program `pi`'s scalars to the given values and its symbols from input shapes,
    /// and checks every input's dtype and shape.
    fn bind_inputs(
        &self,
        pi: usize,
        inputs: &HashMap<String, HostTensor>,
        scalars: &[(&str, i64)],
    ) -> Result<Bindings> {
        let m = &self.manifest;
        let m_inputs = m.program_inputs(pi);
        let program = &m.programs[pi];
        let mut unknown: Vec<&String> = inputs
            .keys()
            .filter(|k| !m_inputs.iter().any(|i| &i.name == *k))
            .collect();
        unknown.sort();
        if let Some(name) = unknown.first() {
            return Err(RuntimeError::UnknownInput {
                name: name.to_string(),
                expected: input_list(m_inputs),
            });
        }
        let mut bindings = Bindings::new();
        for (name, v) in scalars {
            if !program.scalars.iter().any(|s| s == name) {
                return Err(RuntimeError::Scalar {
                    program: program.name.clone(),
                    message: format!(
                        "'{name}' is not a scalar of the program (its scalars: {})",
                        if program.scalars.is_empty() {
                            "none".to_string()
                        } else {
                            program.scalars.join(", ")
                        }
                    ),
                });
            }
            if *v < 0 || *v > i64::from(i32::MAX) {
                return Err(RuntimeError::Scalar {
                    program: program.name.clone(),
                    message: format!("'{name}' = {v} is outside 0..=2^31-1"),
                });
            }
            bindings.insert(name.to_string(), *v);
        }
        if let Some(missing) = program.scalars.iter().find(|s| !bindings.contains_key(*s)) {
            return Err(RuntimeError::Scalar {
                program: program.name.clone(),
                message: format!("scalar '{missing}' needs a value"),
            });
        }
        let shape_err = |spec: &IoSpec, t: &HostTensor, detail: String| RuntimeError::InputShape {
            name: spec.name.clone(),
            expected: shape_str(&spec.shape),
            given: t.shape.clone(),
            detail,
        };
        // Pass 1: dtype, rank, and bare symbols.
        let mut bound_by: HashMap<String, (String, usize)> = HashMap::new();
        for spec in m_inputs {
            let t = inputs.get(&spec.name).ok_or_else(|| RuntimeError::MissingInput {
                name: spec.name.clone(),
                expected: input_list(m_inputs),
            })?;
            if t.dtype != spec.dtype {
                return Err(RuntimeError::InputDtype {
                    name: spec.name.clone(),
                    expected: spec.dtype.name(),
                    given: t.dtype.name(),
                });
            }
            if t.data.len() != t.numel() * t.dtype.host_size() {
                return Err(RuntimeError::HostTensor(format!(
                    "input '{}' has shape {:?} but {} data bytes",
                    spec.name,
                    t.shape,
                    t.data.len()
                )));
            }
            if spec.index_bound.is_some() {
                spec.check_index_values(&t.to_i64())?;
            }
            if t.shape.len() != spec.shape.len() {
                return Err(shape_err(
                    spec,
                    t,
                    format!("rank is {}, expected {}", t.shape.len(), spec.shape.len()),
                ));
            }
            for (j, (e, &d)) in spec.shape.iter().zip(&t.shape).enumerate() {
                if let SizeExpr::Sym(s) = e {
                    let d = d as i64;
                    match bindings.get(s) {
                        Some(&v) if v != d => {
                            let (by, bj) = &bound_by[s];
                            return Err(shape_err(
                                spec,
                                t,
                                format!("dim {j} is {d}, but '{s}' = {v} from dim {bj} of input '{by}'"),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            bindings.insert(s.clone(), d);
                            bound_by.insert(s.clone(), (spec.name.clone(), j));
                        }
                    }
                }
            }
        }
        // Pass 2: every dim expression must evaluate to the given dim.
        for spec in m_inputs {
            let t = &inputs[&spec.name];
            for (j, (e, &d)) in spec.shape.iter().zip(&t.shape).enumerate() {
                let v = e
                    .eval(&bindings)
                    .map_err(|msg| shape_err(spec, t, format!("dim {j} ('{e}'): {msg}")))?;
                if v != d as i64 {
                    return Err(shape_err(spec, t, format!("dim {j} is {d}, expected '{e}' = {v}")));
                }
            }
        }
        for s in m.program_symbols(pi) {
            if !bindings.contains_key(s) {
                return Err(RuntimeError::InvalidBundle(format!(
                    "symbol '{s}' is not a bare dim of any input, so it cannot be bound"
                )));
            }
        }
        m.check_assumptions(&bindings)?;
        Ok(bindings)
    }

    /// Everything before recording. First validates and computes (dims, buffer sizes, input
    /// conversion, parameters, grids, output sizes) without touching the GPU, so a failed run
    /// leaves the session's buffers as they were; then grows buffers, uploads inputs and
    /// parameters, and refreshes bind groups. Inputs named in `resident` are checked but not
    /// uploaded: their buffers must already hold them (forwarded by an earlier queued run).
    fn prepare(
        &mut self,
        pi: usize,
        inputs: &HashMap<String, HostTensor>,
        scalars: &[(&str, i64)],
        resident: &[&str],
        enc: &mut wgpu::CommandEncoder,
    ) -> Result<Plan> {
        let bindings = self.bind_inputs(pi, inputs, scalars)?;
        let m = &self.manifest;
        let program = &m.programs[pi];

        // Phase 1: evaluate and check; no GPU calls.
        // Allocation size of every input and intermediate buffer the program uses (weights
        // and states are allocated at load).
        let mut sizes: Vec<Option<u64>> = vec![None; m.buffers.len()];
        for &bi in &self.programs[pi].buffers {
            let spec = &m.buffers[bi];
            if matches!(spec.kind, BufferKind::Weight | BufferKind::State) {
                continue;
            }
            let what = || format!("size of buffer {bi} '{}'", spec.label);
            let size = eval_nonneg(&spec.size, &bindings, what)?;
            let size = alloc_size(size);
            self.check_buffer_size(bi, size)?;
            sizes[bi] = Some(size);
        }
        // Capacity each buffer will have after growth.
        let capacity = |b: usize| self.slots[b].size.max(sizes[b].unwrap_or(0));

        let mut uploads = Vec::with_capacity(m.program_inputs(pi).len());
        for spec in m.program_inputs(pi) {
            if resident.contains(&spec.name.as_str()) {
                let slot = &self.slots[spec.buffer];
                if slot.buffer.is_none() || slot.size < sizes[spec.buffer].unwrap_or(0) {
                    return Err(RuntimeError::Queued {
                        program: program.name.clone(),
                        message: format!(
                            "input '{}' is resident, but its buffer holds no value of that size (upload it once first)",
                            spec.name
                        ),
                    });
                }
                continue;
            }
            let t = &inputs[&spec.name];
            let mut bytes = to_storage(t, spec.storage, &format!("input '{}'", spec.name))?;
            if bytes.len() as u64 > sizes[spec.buffer].unwrap_or(0) {
                return Err(RuntimeError::InvalidBundle(format!(
                    "input '{}' needs {} bytes but its buffer {} '{}' has size '{}'",
                    spec.name,
                    bytes.len(),
                    spec.buffer,
                    m.buffers[spec.buffer].label,
                    m.buffers[spec.buffer].size
                )));
            }
            bytes.resize(bytes.len().div_ceil(4) * 4, 0);
            uploads.push((spec.buffer, bytes));
        }

        let state = &self.programs[pi];
        let max_wg = u64::from(self.gpu.limits.max_compute_workgroups_per_dimension);
        // After a first run, dispatches without symbols keep their parameters and grids.
        let ran = state.written.len() == state.uniform_size as usize;
        let mut params = if ran {
            state.written.clone()
        } else {
            vec![0u8; state.uniform_size as usize]
        };
        let mut dispatches = Vec::with_capacity(program.dispatches.len());
        for (di, d) in program.dispatches.iter().enumerate() {
            if ran && !state.dynamic[di] {
                if let Some(g) = state.grids[di] {
                    dispatches.push((di, g));
                }
                continue;
            }
            let kernel = &m.kernels[d.kernel];
            let (offset, _) = state.blocks[di];
            for (pj, e) in d.params.iter().enumerate() {
                let what = || {
                    format!(
                        "param '{}' of program '{}' dispatch {di} '{}'",
                        kernel.params[pj], program.name, d.label
                    )
                };
                let v = e
                    .eval(&bindings)
                    .map_err(|error| RuntimeError::SizeEval { what: what(), error })?;
                let v = i32::try_from(v).map_err(|_| RuntimeError::SizeExpr {
                    what: what(),
                    message: format!("'{e}' = {v} does not fit in i32"),
                })?;
                let at = offset as usize + 4 * pj;
                params[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            let grid_err = |message: String| RuntimeError::Grid {
                program: program.name.clone(),
                index: di,
                label: d.label.clone(),
                message,
            };
            let mut g = [0u64; 3];
            for (a, e) in d.grid.iter().enumerate() {
                let v = e
                    .eval(&bindings)
                    .map_err(|msg| grid_err(format!("grid {}: {msg}", ["x", "y", "z"][a])))?;
                if v < 0 {
                    return Err(grid_err(format!("grid '{e}' = {v} is negative")));
                }
                g[a] = v as u64;
            }
            if g.contains(&0) {
                continue;
            }
            if g[0] > max_wg && kernel.grid_splittable && g[1] == 1 && g[2] == 1 {
                g = [max_wg, g[0].div_ceil(max_wg), 1];
            }
            if let Some(a) = g.iter().position(|&v| v > max_wg) {
                return Err(grid_err(format!(
                    "grid {:?} of kernel '{}' exceeds maxComputeWorkgroupsPerDimension ({max_wg}) in {}{}",
                    g,
                    kernel.name,
                    ["x", "y", "z"][a],
                    if kernel.grid_splittable {
                        ""
                    } else {
                        " and the kernel is not grid_splittable"
                    }
                )));
            }
            dispatches.push((di, g.map(|v| v as u32)));
        }

        let mut outputs = Vec::with_capacity(m.program_outputs(pi).len());
        for (index, spec) in m.program_outputs(pi).iter().enumerate() {
            let mut shape = Vec::with_capacity(spec.shape.len());
            for (j, e) in spec.shape.iter().enumerate() {
                let what = || format!("dim {j} of output '{}'", spec.name);
                shape.push(eval_nonneg(e, &bindings, what)? as usize);
            }
            let elem = storage_size(spec.storage).expect("checked at load");
            let bytes = shape.iter().product::<usize>() as u64 * elem;
            if bytes > 0 && bytes > capacity(spec.buffer) {
                return Err(RuntimeError::InvalidBundle(format!(
                    "output '{}' has {bytes} bytes but its buffer {} '{}' holds {}",
                    spec.name,
                    spec.buffer,
                    m.buffers[spec.buffer].label,
                    capacity(spec.buffer)
                )));
            }
            outputs.push(OutPlan { index, shape, bytes });
        }

        // Phase 2: grow buffers, upload, refresh bind groups.
        for (bi, size) in sizes.iter().enumerate() {
            let Some(size) = *size else { continue };
            if self.slots[bi].size >= size {
                continue;
            }
            // The grown buffer coexists with the one it replaces until the copy is done.
            let held = held_bytes(&self.slots, &self.programs, &self.staging);
            self.peak_bytes = self.peak_bytes.max(held + size);
            let slot = &mut self.slots[bi];
            let spec = &m.buffers[bi];
            let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&spec.label),
                size,
                usage: storage_usage(),
                mapped_at_creation: false,
            });
            if let (Some(old), BufferKind::Intermediate) = (&slot.buffer, spec.kind) {
                // Keep state (e.g. a KV cache) across growth.
                enc.copy_buffer_to_buffer(old, 0, &buffer, 0, slot.size);
            }
            log::debug!("buffer {bi} '{}': {} -> {size} bytes", spec.label, slot.size);
            slot.buffer = Some(buffer);
            slot.size = size;
            slot.generation += 1;
        }
        for (b, bytes) in &uploads {
            if !bytes.is_empty() {
                let buffer = self.slots[*b].buffer.as_ref().expect("allocated above");
                self.gpu.queue.write_buffer(buffer, 0, bytes);
            }
        }
        let state = &mut self.programs[pi];
        write_changed(&self.gpu.queue, &state.uniform, &state.written, &params, &state.blocks);
        state.written = params;
        state.grids.iter_mut().for_each(|g| *g = None);
        for &(di, g) in &dispatches {
            state.grids[di] = Some(g);
        }
        for &(di, _) in &dispatches {
            let d = &program.dispatches[di];
            let slots = &self.slots;
            let current = |k: &[u64]| {
                k.len() == d.buffers.len() && d.buffers.iter().zip(k).all(|(&b, &g)| slots[b].generation == g)
            };
            if matches!(&state.bind_groups[di], Some((k, _)) if current(k)) {
                continue;
            }
            let key: Vec<u64> = d.buffers.iter().map(|&b| self.slots[b].generation).collect();
            let (offset, size) = state.blocks[di];
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &state.uniform,
                    offset,
                    size: NonZeroU64::new(size),
                }),
            }];
            for (j, &b) in d.buffers.iter().enumerate() {
                let buffer = self.slots[b].buffer.as_ref().expect("allocated above");
                entries.push(wgpu::BindGroupEntry {
                    binding: j as u32 + 1,
                    resource: buffer.as_entire_binding(),
                });
            }
            let bg = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&format!("{} #{di} ({})", program.name, m.kernels[d.kernel].name)),
                layout: &self.kernels[d.kernel].layout,
                entries: &entries,
            });
            state.bind_groups[di] = Some((key, bg));
        }
        Ok(Plan {
            program: pi,
            dispatches,
            outputs,
        })
    }

    /// Records the planned dispatches into one compute pass.
    fn record(&self, plan: &Plan, enc: &mut wgpu::CommandEncoder, repeats: usize) {
        let program = &self.manifest.programs[plan.program];
        let state = &self.programs[plan.program];
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&program.name),
            timestamp_writes: None,
        });
        let mut pipeline = None;
        for &(di, [x, y, z]) in plan.dispatches.iter().cycle().take(plan.dispatches.len() * repeats) {
            let d = &program.dispatches[di];
            let (_, bg) = state.bind_groups[di].as_ref().expect("prepared");
            // Consecutive dispatches of one kernel (e.g. the layers' GEMVs) keep its pipeline.
            if pipeline != Some(d.kernel) {
                pass.set_pipeline(&self.kernels[d.kernel].pipeline);
                pipeline = Some(d.kernel);
            }
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Records the planned dispatches with a timestamp at the beginning and end of each
    /// (queries `2i` and `2i + 1`), then resolves the queries into a mappable buffer. Where the
    /// device has timestamp writes inside passes, the dispatches share one pass as in a plain
    /// run and the timestamps go between them, so dispatch `i` is timed from the end of the
    /// one before it (its barrier and launch included) to its own end, and the times add up to
    /// the run's GPU time; otherwise each dispatch gets a pass of its own with timestamps at
    /// its beginning and end (which adds a pass's start-up to every dispatch). Query sets hold
    /// at most [`wgpu::QUERY_SET_MAX_QUERIES`], so long programs use several.
    fn record_timed(&self, plan: &Plan, enc: &mut wgpu::CommandEncoder) -> Queries {
        let program = &self.manifest.programs[plan.program];
        let state = &self.programs[plan.program];
        let per_set = (wgpu::QUERY_SET_MAX_QUERIES / 2) as usize;
        let total = (2 * plan.dispatches.len()).max(2) as u64;
        let resolve = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: 8 * total,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamp readback"),
            size: 8 * total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let inside = self.times_inside_passes();
        for (ci, chunk) in plan.dispatches.chunks(per_set).enumerate() {
            let count = 2 * chunk.len() as u32;
            let set = self.gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("dispatch timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let dispatch = |pass: &mut wgpu::ComputePass, di: usize, [x, y, z]: [u32; 3]| {
                let d = &program.dispatches[di];
                let (_, bg) = state.bind_groups[di].as_ref().expect("prepared");
                pass.set_pipeline(&self.kernels[d.kernel].pipeline);
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(x, y, z);
            };
            if inside {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("timed dispatches"),
                    timestamp_writes: None,
                });
                for (i, &(di, workgroups)) in chunk.iter().enumerate() {
                    pass.write_timestamp(&set, 2 * i as u32);
                    dispatch(&mut pass, di, workgroups);
                    pass.write_timestamp(&set, 2 * i as u32 + 1);
                }
            } else {
                for (i, &(di, workgroups)) in chunk.iter().enumerate() {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&program.dispatches[di].label),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &set,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    dispatch(&mut pass, di, workgroups);
                }
            }
            enc.resolve_query_set(&set, 0..count, &resolve, (2 * ci * per_set * 8) as u64);
        }
        enc.copy_buffer_to_buffer(&resolve, 0, &readback, 0, 8 * total);
        Queries { readback }
    }
}

/// Uploads `new` parameter bytes over `old` (what the buffer holds; empty when nothing was
/// written yet): only the parameter blocks that differ, in offset order, blocks up to 256 bytes
/// apart merged into one write.
fn write_changed(queue: &wgpu::Queue, uniform: &wgpu::Buffer, old: &[u8], new: &[u8], blocks: &[(u64, u64)]) {
    if old.len() != new.len() {
        queue.write_buffer(uniform, 0, new);
        return;
    }
    let mut changed: Vec<(usize, usize)> = blocks
        .iter()
        .map(|&(offset, size)| (offset as usize, (offset + size) as usize))
        .filter(|&(a, b)| old[a..b] != new[a..b])
        .collect();
    changed.sort_unstable();
    let mut run: Option<(usize, usize)> = None;
    let flush = |r: (usize, usize)| queue.write_buffer(uniform, r.0 as u64, &new[r.0..r.1]);
    for (a, b) in changed {
        // Blocks are 16-byte aligned and sized, so every write is too; blocks up to 256 bytes
        // apart are merged (the gap's bytes are unchanged, so rewriting them is harmless).
        run = match run {
            Some((s, e)) if a <= e + 256 => Some((s, b)),
            Some(r) => {
                flush(r);
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some(r) = run {
        flush(r);
    }
}

/// Whether `e` names a symbol (so its value can change from run to run).
fn names_symbol(e: &SizeExpr) -> bool {
    match e {
        SizeExpr::Const(_) => false,
        SizeExpr::Sym(_) => true,
        SizeExpr::Bin(_, l, r) => names_symbol(l) || names_symbol(r),
    }
}

/// Evaluates a size expression that must be non-negative; `what` names it in errors.
fn eval_nonneg(e: &SizeExpr, b: &Bindings, what: impl Fn() -> String) -> Result<u64> {
    let v = e
        .eval(b)
        .map_err(|error| RuntimeError::SizeEval { what: what(), error })?;
    u64::try_from(v).map_err(|_| RuntimeError::SizeExpr {
        what: what(),
        message: format!("'{e}' = {v} is negative"),
    })
}

/// Bytes of every buffer a session holds: slots, uniform blocks, staging.
fn held_bytes(slots: &[Slot], programs: &[ProgramState], staging: &HashMap<(usize, usize), wgpu::Buffer>) -> u64 {
    let slots: u64 = slots.iter().filter(|s| s.buffer.is_some()).map(|s| s.size).sum();
    let uniforms: u64 = programs.iter().map(|p| p.uniform_size).sum();
    slots + uniforms + staging.values().map(|b| b.size()).sum::<u64>()
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

/// Creates the shader module, explicit bind group layout, pipeline layout and compute pipeline
/// of one kernel inside error scopes, so a bad shader becomes an error naming the kernel.
/// Returns the kernel and the (already popped) scopes' future, which yields the first error.
fn create_kernel(
    device: &wgpu::Device,
    k: &kiln_abi::KernelSpec,
    wgsl: &str,
) -> (Kernel, impl std::future::Future<Output = Option<String>>) {
    let scopes = Scopes::push(device);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(&k.file),
        source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(wgsl)),
    });
    let entries: Vec<wgpu::BindGroupLayoutEntry> = k
        .bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: match b {
                    BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                    BindingKind::ReadOnlyStorage => wgpu::BufferBindingType::Storage { read_only: true },
                    BindingKind::Storage => wgpu::BufferBindingType::Storage { read_only: false },
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(&k.name),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(&k.name),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&k.name),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(&k.entry_point),
        compilation_options: Default::default(),
        cache: None,
    });
    (Kernel { pipeline, layout }, scopes.pop())
}
