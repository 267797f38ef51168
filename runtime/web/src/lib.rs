//! Kiln's runtime in the browser: wasm-bindgen bindings over `kiln-runtime`'s async core.
//!
//! This crate only translates between JavaScript values and the runtime's types; loading,
//! verification, device checks and execution are the same code the native CLI runs. The
//! JavaScript package in `web/` (fetching, caching, progress, typed arrays) is the public API;
//! these bindings are its private half:
//!
//! - `WebRuntime.request()` picks the WebGPU adapter;
//! - `runtime.check(manifestBytes)` checks the bundle's features and limits against it before
//!   any weights are downloaded;
//! - `runtime.createSession(manifestBytes, names, files, digests)` verifies the digests against
//!   the manifest, then creates the device, the pipelines and the weight buffers;
//! - `session.run(program, inputs)` runs a program and returns the outputs as raw bytes with
//!   dtype and shape.
#![cfg(target_arch = "wasm32")]
#![warn(missing_docs)]

use js_sys::{Array, Object, Reflect, Uint8Array};
use kiln_abi::{ElemType, IoSpec, SizeExpr};
use kiln_runtime::{Bundle, BundleParts, HostTensor, Runtime, RuntimeError, Session};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Routes Rust panics to the browser console (a panic is a bug; the message helps report it).
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("kiln: internal error (please report): {info}").into());
    }));
}

fn js_err(e: RuntimeError) -> JsError {
    JsError::new(&e.to_string())
}

fn get(obj: &JsValue, key: &str) -> Result<JsValue, JsError> {
    Reflect::get(obj, &JsValue::from_str(key)).map_err(|_| JsError::new(&format!("cannot read '{key}'")))
}

/// The WebGPU adapter the browser offers.
#[wasm_bindgen]
pub struct WebRuntime {
    runtime: Runtime,
}

#[wasm_bindgen]
impl WebRuntime {
    /// Requests the browser's WebGPU adapter; fails with an explanation when there is none.
    pub async fn request() -> Result<WebRuntime, JsError> {
        let runtime = Runtime::request(None).await.map_err(js_err)?;
        Ok(WebRuntime { runtime })
    }

    /// The adapter's name, vendor, architecture and backend, for display.
    #[wasm_bindgen(js_name = adapterInfo)]
    pub fn adapter_info(&self) -> String {
        let i = self.runtime.adapter_info();
        format!("{} ({}, {})", i.name, i.driver, i.backend.to_str())
    }

    /// Checks the features and limits `manifest` (the bytes of manifest.json) needs against
    /// the adapter; the error names the missing feature, or the limit, what needs it (e.g. a
    /// buffer and its size) and what the adapter offers.
    pub fn check(&self, manifest: &[u8]) -> Result<(), JsError> {
        let m = kiln_runtime::bundle::parse_manifest(manifest, Path::new("manifest.json")).map_err(js_err)?;
        self.runtime.check_requirements(&m).map_err(js_err)?;
        Ok(())
    }

    /// Builds the bundle from its parts and creates a session. `names[i]` is the manifest name
    /// of `files[i]` and `digests[i]` its hex sha256 (computed with SubtleCrypto by the
    /// caller); the digests are compared with the manifest before anything is used.
    #[wasm_bindgen(js_name = createSession)]
    pub async fn create_session(
        &self,
        manifest: Vec<u8>,
        names: Vec<String>,
        files: Array,
        digests: Vec<String>,
    ) -> Result<WebSession, JsError> {
        if names.len() != files.length() as usize || names.len() != digests.len() {
            return Err(JsError::new("createSession: names, files and digests differ in length"));
        }
        let mut parts = BundleParts {
            manifest,
            files: HashMap::with_capacity(names.len()),
        };
        let mut sums = HashMap::with_capacity(names.len());
        for (i, (name, digest)) in names.into_iter().zip(digests).enumerate() {
            let bytes: Uint8Array = files
                .get(i as u32)
                .dyn_into()
                .map_err(|_| JsError::new(&format!("createSession: file '{name}' is not a Uint8Array")))?;
            parts.files.insert(name.clone(), bytes.to_vec());
            sums.insert(name, digest);
        }
        let bundle = Bundle::from_parts_with_digests(parts, &sums).map_err(js_err)?;
        let session = Session::create_with_runtime(self.runtime.clone(), &bundle)
            .await
            .map_err(js_err)?;
        Ok(WebSession {
            inner: Rc::new(RefCell::new(Some(session))),
        })
    }
}

/// A bundle loaded onto the WebGPU device.
#[wasm_bindgen]
pub struct WebSession {
    /// `None` while a run holds the session (it is moved out for the duration of the run, so
    /// no borrow is held across an await).
    inner: Rc<RefCell<Option<Session>>>,
}

const BUSY: &str = "session is busy: wait for the previous run to finish";

/// Moves the session out for one async operation and puts it back afterwards.
async fn with_session<T>(
    inner: Rc<RefCell<Option<Session>>>,
    op: impl AsyncFnOnce(&mut Session) -> Result<T, JsError>,
) -> Result<T, JsError> {
    let taken = inner.borrow_mut().take();
    let mut session = taken.ok_or_else(|| JsError::new(BUSY))?;
    let result = op(&mut session).await;
    *inner.borrow_mut() = Some(session);
    result
}

#[wasm_bindgen]
impl WebSession {
    /// The manifest's inputs and outputs as JSON: `{inputs: [{name, dtype, shape}], outputs:
    /// [...], programs: [names]}`, shapes as strings of size expressions.
    pub fn signature(&self) -> Result<String, JsError> {
        let s = self.inner.borrow();
        let m = s.as_ref().ok_or_else(|| JsError::new(BUSY))?.manifest();
        let io = |v: &[IoSpec]| {
            v.iter()
                .map(|i| {
                    serde_json::json!({
                        "name": i.name,
                        "dtype": i.dtype.name(),
                        "shape": i.shape.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>()
        };
        Ok(serde_json::json!({
            "model": m.model,
            "inputs": io(&m.inputs),
            "outputs": io(&m.outputs),
            "programs": m.programs.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        })
        .to_string())
    }

    /// Runs `program`. `inputs` is an array of `{name, dtype, shape, bytes}` (shape may be
    /// null when the manifest determines it); resolves to an array of `{name, dtype, shape,
    /// bytes}` in manifest order. Calls must not overlap (the JavaScript wrapper queues them).
    pub fn run(&self, program: String, inputs: Array) -> Result<js_sys::Promise, JsError> {
        let host = {
            let s = self.inner.borrow();
            decode_inputs(s.as_ref().ok_or_else(|| JsError::new(BUSY))?.manifest(), &inputs)?
        };
        let inner = self.inner.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let outputs = with_session(inner, async |s| s.run_async(&program, &host).await.map_err(js_err)).await?;
            let out = Array::new();
            for (name, t) in outputs {
                let o = Object::new();
                Reflect::set(&o, &"name".into(), &name.into())?;
                Reflect::set(&o, &"dtype".into(), &t.dtype.name().into())?;
                let shape = Array::new();
                for d in &t.shape {
                    shape.push(&JsValue::from_f64(*d as f64));
                }
                Reflect::set(&o, &"shape".into(), &shape)?;
                Reflect::set(&o, &"bytes".into(), &Uint8Array::from(t.data.as_slice()))?;
                out.push(&o);
            }
            Ok(out.into())
        }))
    }

    /// Median, min and mean milliseconds of `iters` executions of `program` (record + submit +
    /// wait for the GPU; no upload or readback inside the timed region), after one full run.
    pub fn bench(&self, program: String, inputs: Array, iters: usize) -> Result<js_sys::Promise, JsError> {
        let host = {
            let s = self.inner.borrow();
            decode_inputs(s.as_ref().ok_or_else(|| JsError::new(BUSY))?.manifest(), &inputs)?
        };
        let inner = self.inner.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let t = with_session(inner, async |s| {
                s.bench_async(&program, &host, iters.max(1)).await.map_err(js_err)
            })
            .await?;
            let o = Object::new();
            let ms = |d: std::time::Duration| JsValue::from_f64(d.as_secs_f64() * 1e3);
            Reflect::set(&o, &"median".into(), &ms(t.median()))?;
            Reflect::set(&o, &"min".into(), &ms(t.min()))?;
            Reflect::set(&o, &"mean".into(), &ms(t.mean()))?;
            Ok(o.into())
        }))
    }
}

/// Converts `[{name, dtype, shape, bytes}]` into host tensors, inferring missing shapes.
fn decode_inputs(m: &kiln_abi::Manifest, inputs: &Array) -> Result<HashMap<String, HostTensor>, JsError> {
    let mut out = HashMap::new();
    for v in inputs.iter() {
        let name = get(&v, "name")?
            .as_string()
            .ok_or_else(|| JsError::new("an input has no name"))?;
        let dtype_name = get(&v, "dtype")?.as_string().unwrap_or_default();
        let dtype = elem_type(&dtype_name)
            .ok_or_else(|| JsError::new(&format!("input '{name}': unknown dtype '{dtype_name}'")))?;
        let bytes: Uint8Array = get(&v, "bytes")?
            .dyn_into()
            .map_err(|_| JsError::new(&format!("input '{name}': bytes must be a Uint8Array")))?;
        let numel = bytes.length() as usize / dtype.host_size();
        let shape_v = get(&v, "shape")?;
        let shape: Vec<usize> = if shape_v.is_null() || shape_v.is_undefined() {
            let spec = m
                .inputs
                .iter()
                .find(|i| i.name == name)
                .ok_or_else(|| JsError::new(&format!("'{name}' is not an input of this bundle")))?;
            infer_shape(spec, numel).map_err(|e| JsError::new(&format!("input '{name}': {e}")))?
        } else {
            Array::from(&shape_v)
                .iter()
                .map(|d| d.as_f64().map(|x| x as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| JsError::new(&format!("input '{name}': shape must be an array of numbers")))?
        };
        let t =
            HostTensor::new(dtype, shape, bytes.to_vec()).map_err(|e| JsError::new(&format!("input '{name}': {e}")))?;
        out.insert(name, t);
    }
    Ok(out)
}

fn elem_type(name: &str) -> Option<ElemType> {
    [
        ElemType::F32,
        ElemType::F16,
        ElemType::I32,
        ElemType::I64,
        ElemType::U32,
        ElemType::I8,
        ElemType::U8,
        ElemType::Bool,
    ]
    .into_iter()
    .find(|t| t.name() == name)
}

/// The shape of an input given only its element count: every dim must be a constant except at
/// most one, which is then `numel / product(constants)`.
fn infer_shape(spec: &IoSpec, numel: usize) -> Result<Vec<usize>, String> {
    let mut shape = Vec::with_capacity(spec.shape.len());
    let mut free = None;
    let mut known = 1usize;
    for (j, e) in spec.shape.iter().enumerate() {
        match e {
            SizeExpr::Const(c) => {
                shape.push(*c as usize);
                known *= *c as usize;
            }
            _ if free.is_none() => {
                free = Some(j);
                shape.push(0);
            }
            _ => {
                return Err(format!(
                    "its shape [{}] has more than one symbolic dim; pass {{data, shape}} instead of a bare array",
                    spec.shape.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
                ))
            }
        }
    }
    match free {
        Some(j) if known > 0 && numel.is_multiple_of(known) => shape[j] = numel / known,
        None if numel == known => {}
        _ => {
            return Err(format!(
                "{numel} elements do not fit shape [{}]",
                spec.shape.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
            ))
        }
    }
    Ok(shape)
}
