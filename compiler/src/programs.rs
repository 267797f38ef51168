//! Several programs in one bundle: one model compiled once per program (each with its own
//! `--dim` values, e.g. `prefill` with `n` symbolic and `decode` with `n = 1`), merged into one
//! manifest that shares what the programs have in common.
//!
//! Weights are shared when name and contents are equal, states by name, kernels by identical
//! WGSL. Each program keeps its own inputs, outputs, symbols, scalars and intermediate buffers.

use crate::{compile, CompileError, CompileOptions, CompiledBundle, Model};
use kiln_abi::{BufferKind, IoSpec, KernelSpec, Program};
use kiln_ir::DimBindings;
use std::collections::HashMap;

/// One program to compile: its name and the dims it fixes on top of the options' `dims`.
#[derive(Clone, Debug)]
pub struct ProgramSpec {
    /// Program name (`prefill`, `decode`, ...).
    pub name: String,
    /// Dims specialized for this program only.
    pub dims: DimBindings,
}

/// Compiles `model` once per program and merges the results into one bundle whose top-level
/// inputs, outputs and symbols are empty (each program carries its own).
pub fn compile_programs(
    model: &Model,
    programs: &[ProgramSpec],
    opts: &CompileOptions,
) -> Result<CompiledBundle, CompileError> {
    let mut merged: Option<CompiledBundle> = None;
    let mut kernel_by_source: HashMap<String, usize> = HashMap::new();
    for spec in programs {
        // Every program compiles a graph rebuilt the same way (specialize re-adds the nodes in
        // topological order), so the rewrites make the same choices in each (e.g. the order
        // in which sibling weights are concatenated) and equal weights can be shared.
        let mut dims = opts.dims.clone();
        dims.extend(spec.dims.iter().map(|(k, v)| (k.clone(), *v)));
        let symbols = model.graph.symbols();
        if let Some(bad) = dims.keys().find(|d| !symbols.contains(d)) {
            return Err(CompileError::Usage(format!(
                "program '{}': the model has no symbolic dim '{bad}' (its symbolic dims: {})",
                spec.name,
                symbols.join(", ")
            )));
        }
        let specialized = Model {
            graph: model.graph.specialize(&dims)?,
            ..model.clone()
        };
        let o = CompileOptions {
            dims: DimBindings::new(),
            ..opts.clone()
        };
        let b = compile(&specialized, &o)?;
        let out = merged.get_or_insert_with(|| {
            let mut m = b.manifest.clone();
            m.inputs.clear();
            m.outputs.clear();
            m.symbols.clear();
            m.buffers.clear();
            m.weights.clear();
            m.kernels.clear();
            m.programs.clear();
            m.states.clear();
            m.assumptions.clear();
            CompiledBundle {
                assets: Vec::new(),
                manifest: m,
                kernel_sources: Vec::new(),
                weights: Vec::new(),
            }
        });
        merge_into(out, &mut kernel_by_source, &spec.name, b)?;
    }
    let out = merged.ok_or_else(|| CompileError::Usage("no programs to compile".into()))?;
    out.manifest
        .check_indices()
        .map_err(|e| CompileError::Internal(e.to_string()))?;
    out.manifest
        .validate()
        .map_err(|e| CompileError::Internal(e.to_string()))?;
    let sources = &out.kernel_sources;
    out.manifest
        .check_sources(|f| sources.iter().find(|(file, _)| file == f).map(|(_, s)| s.as_str()))
        .map_err(|e| CompileError::Internal(e.to_string()))?;
    Ok(out)
}

/// Appends the single `run` program of `b` to `out` as program `name`.
fn merge_into(
    out: &mut CompiledBundle,
    kernel_by_source: &mut HashMap<String, usize>,
    name: &str,
    b: CompiledBundle,
) -> Result<(), CompileError> {
    let m = &b.manifest;
    if out.manifest.programs.iter().any(|p| p.name == name) {
        return Err(CompileError::Usage(format!("program '{name}' is given twice")));
    }
    let om = &mut out.manifest;
    let mut bmap = vec![usize::MAX; m.buffers.len()];
    for (bi, buf) in m.buffers.iter().enumerate() {
        let shared = match buf.kind {
            BufferKind::Weight => {
                let wi = m
                    .weights
                    .iter()
                    .position(|w| w.buffer == bi)
                    .ok_or_else(|| CompileError::Internal(format!("weight buffer {bi} has no weight")))?;
                let w = &m.weights[wi];
                let same = om
                    .weights
                    .iter()
                    .zip(&out.weights)
                    .find(|(ow, ot)| ow.name == w.name && **ot == b.weights[wi]);
                match same {
                    Some((ow, _)) => Some(ow.buffer),
                    None => {
                        let mut spec = w.clone();
                        let mut k = 1;
                        while om.weights.iter().any(|o| o.name == spec.name) {
                            spec.name = format!("{}#{name}{k}", w.name);
                            k += 1;
                        }
                        spec.buffer = om.buffers.len();
                        om.weights.push(spec);
                        out.weights.push(b.weights[wi].clone());
                        None
                    }
                }
            }
            BufferKind::State => {
                let st = m
                    .states
                    .iter()
                    .find(|s| s.buffer == bi)
                    .ok_or_else(|| CompileError::Internal(format!("state buffer {bi} has no state")))?;
                match om.states.iter().find(|s| s.name == st.name) {
                    Some(o) if o.shape == st.shape && o.storage == st.storage => Some(o.buffer),
                    Some(o) => {
                        return Err(CompileError::Internal(format!(
                            "state '{}' is {:?} in one program and {:?} in another",
                            st.name, o.shape, st.shape
                        )))
                    }
                    None => {
                        let mut s = st.clone();
                        s.buffer = om.buffers.len();
                        om.states.push(s);
                        None
                    }
                }
            }
            // Each program keeps its own (a scratch buffer too: small, and its size is the
            // program's).
            BufferKind::Input | BufferKind::Intermediate | BufferKind::Scratch => None,
        };
        bmap[bi] = match shared {
            Some(i) => i,
            None => {
                let mut spec = buf.clone();
                if matches!(
                    buf.kind,
                    BufferKind::Input | BufferKind::Intermediate | BufferKind::Scratch
                ) {
                    spec.label = format!("{name}: {}", spec.label);
                }
                om.buffers.push(spec);
                om.buffers.len() - 1
            }
        };
    }
    let mut kmap = Vec::with_capacity(m.kernels.len());
    for k in &m.kernels {
        let src = b
            .kernel_sources
            .iter()
            .find(|(f, _)| *f == k.file)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| CompileError::Internal(format!("kernel '{}' has no source", k.name)))?;
        let idx = *kernel_by_source
            .entry(crate::codegen::kernel_identity(&src))
            .or_insert_with(|| {
                let idx = om.kernels.len();
                let kind = k.name.split_once('_').map(|(_, kind)| kind).unwrap_or("kernel");
                let file = format!("kernels/k{idx:03}_{kind}.wgsl");
                // Variants keep their sources under names derived from the merged kernel's.
                let mut variants = Vec::with_capacity(k.variants.len());
                for (vi, v) in k.variants.iter().enumerate() {
                    let Some((_, vsrc)) = b.kernel_sources.iter().find(|(f, _)| *f == v.file) else {
                        continue;
                    };
                    let vfile = format!("kernels/k{idx:03}_{kind}_v{vi}.wgsl");
                    out.kernel_sources.push((vfile.clone(), vsrc.clone()));
                    variants.push(kiln_abi::KernelVariant {
                        file: vfile,
                        ..v.clone()
                    });
                }
                om.kernels.push(KernelSpec {
                    name: format!("k{idx:03}_{kind}"),
                    file: file.clone(),
                    variants,
                    ..k.clone()
                });
                out.kernel_sources.push((file, src));
                idx
            });
        kmap.push(idx);
    }
    let io = |v: &[IoSpec]| -> Vec<IoSpec> {
        v.iter()
            .map(|s| IoSpec {
                buffer: bmap[s.buffer],
                ..s.clone()
            })
            .collect()
    };
    let p = m
        .programs
        .first()
        .ok_or_else(|| CompileError::Internal("a compiled model has no program".into()))?;
    let dispatches = p
        .dispatches
        .iter()
        .map(|d| kiln_abi::Dispatch {
            kernel: kmap[d.kernel],
            buffers: d.buffers.iter().map(|&x| bmap[x]).collect(),
            ..d.clone()
        })
        .collect();
    om.programs.push(Program {
        name: name.to_string(),
        dispatches,
        inputs: Some(io(&m.inputs)),
        outputs: Some(io(&m.outputs)),
        symbols: Some(m.symbols.clone()),
        scalars: p.scalars.clone(),
    });
    for (k, v) in &m.requirements.limits {
        let e = om.requirements.limits.entry(k.clone()).or_insert(0);
        *e = (*e).max(*v);
    }
    for a in &m.assumptions {
        if !om.assumptions.contains(a) {
            om.assumptions.push(a.clone());
        }
    }
    Ok(())
}
