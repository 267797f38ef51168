//! Embedding Kiln's runtime: load a compiled bundle, feed inputs, read outputs.
//!
//! ```text
//! cargo run --release --example compile_model -- /tmp/mlp.kiln
//! cargo run --release --example run_bundle -- /tmp/mlp.kiln [sha256-...]
//! ```
//!
//! The runtime needs only the bundle directory (no compiler): `Bundle::load` reads the manifest
//! and verifies every file's sha256 (and, given an integrity digest, the manifest itself),
//! `Session::new` opens a GPU device, creates the pipelines and uploads the weights once, and
//! `Session::run` binds symbolic dims from the input shapes. The example synthesizes an input
//! for every declared input (symbolic dims set to 2 and then 5, to show one bundle serving two
//! sizes) and prints each output's shape and first values.

use kiln::abi::ElemType;
use kiln::runtime::{Bundle, HostTensor, Session, SessionOptions};
use std::collections::HashMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, integrity) = match args.as_slice() {
        [dir] => (dir.clone(), None),
        [dir, digest] => (dir.clone(), Some(digest.clone())),
        _ => return Err("usage: run_bundle BUNDLE_DIR [sha256-DIGEST]".into()),
    };

    // Verify and load the bundle into host memory (no GPU needed for this step).
    let bundle = match &integrity {
        Some(digest) => Bundle::load_with_integrity(&dir, digest)?,
        None => Bundle::load(&dir)?,
    };
    let manifest = bundle.manifest();
    println!(
        "bundle '{}' (model '{}'), integrity {}",
        dir,
        manifest.model,
        manifest.integrity()
    );

    // Device, pipelines and weights. `KILN_ADAPTER=<substring>` picks an adapter by name.
    let mut session = Session::new(&bundle, &SessionOptions::default())?;
    println!("adapter: {}", session.adapter_info().name);

    for size in [2i64, 5] {
        // Every symbolic dim gets `size`; constant dims are what the manifest says.
        let symbols: HashMap<String, i64> = manifest.symbols.iter().map(|s| (s.clone(), size)).collect();
        let mut inputs = HashMap::new();
        for spec in &manifest.inputs {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .map(|d| d.eval(&symbols).map(|v| v as usize))
                .collect::<Result<_, _>>()?;
            let n: usize = shape.iter().product();
            let tensor = match spec.dtype {
                ElemType::F32 => {
                    HostTensor::from_f32(&shape, &(0..n).map(|i| (i % 7) as f32 / 7.0).collect::<Vec<_>>())
                }
                ElemType::I64 => HostTensor::from_i64(&shape, &vec![0; n]),
                ElemType::I32 => HostTensor::from_i32(&shape, &vec![0; n]),
                other => {
                    return Err(format!(
                        "input '{}': this example does not synthesize {}",
                        spec.name,
                        other.name()
                    )
                    .into())
                }
            };
            inputs.insert(spec.name.clone(), tensor);
        }
        // One submit, one wait; outputs come back in manifest order, in their declared dtypes.
        for (name, tensor) in session.run("run", &inputs)? {
            let values = tensor.to_f32();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(format!("output '{name}' has non-finite values").into());
            }
            let head: Vec<String> = values.iter().take(4).map(|v| format!("{v:.4}")).collect();
            println!("size {size}: {name} {:?} = [{}, ...]", tensor.shape, head.join(", "));
        }
    }
    Ok(())
}
