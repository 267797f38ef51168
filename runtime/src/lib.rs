//! Kiln's runtime: loads a compiled bundle and runs its dispatch programs on wgpu.
//!
//! ```no_run
//! use kiln_runtime::{Bundle, HostTensor, Session, SessionOptions};
//! use std::collections::HashMap;
//!
//! let bundle = Bundle::load("model.kiln")?; // reads and verifies every file
//! let mut session = Session::new(&bundle, &SessionOptions::default())?; // device + pipelines + weights
//! let inputs = HashMap::from([("x".to_string(), HostTensor::from_f32(&[2, 3], &[0.0; 6]))]);
//! for (name, tensor) in session.run("run", &inputs)? {
//!     println!("{name}: {:?} {:?}", tensor.shape, tensor.to_f32());
//! }
//! # Ok::<(), kiln_runtime::RuntimeError>(())
//! ```
//!
//! The core is async ([`Session::create`], [`Session::run_async`]) and builds for
//! `wasm32-unknown-unknown` with wgpu's WebGPU backend (the browser bindings are the
//! `kiln-web` crate in runtime/web); the blocking calls above are native-only wrappers.
//!
//! Modules, one concept each: [`bundle`] (loading and verification), [`device`] (adapter
//! choice, feature and limit checks), [`session`] (execution), [`profile`] (per-dispatch GPU times), [`host`] (host tensors and dtype
//! conversion), [`error`], and [`text`] (tokenizers and chat templates from GGUF tokenizer
//! metadata, for language models). The bundle format and kernel ABI are described in
//! docs/bundle-format.md.

#![warn(missing_docs)]

pub mod bundle;
mod callback;
pub mod device;
pub mod error;
pub mod host;
pub mod llm;
pub mod memory;
pub mod probe;
pub mod profile;
mod scrub;
pub mod session;
pub mod text;

pub use bundle::{Bundle, BundleParts};
#[cfg(not(target_arch = "wasm32"))]
pub use device::list_adapters;
pub use device::Runtime;
pub use error::RuntimeError;
pub use host::HostTensor;
pub use kiln_abi as abi;
pub use memory::MemoryReport;
pub use probe::DeviceProbe;
pub use profile::Profile;
pub use session::{Forward, Readback, Session, SessionOptions, Timing};
pub use wgpu;
