//! Structural validation of a manifest, and of each kernel's WGSL against its [`KernelSpec`].
//!
//! A manifest that passes [`Manifest::validate`] can be executed without the runtime indexing
//! out of bounds, underflowing a count or writing into a weight: every index points at
//! something that exists, every dispatch binds what its kernel declares, kernels only write
//! intermediate buffers, constant sizes and grids are sane, outputs read what a kernel wrote (or
//! a constant of the right size). [`Manifest::check_kernel_source`] compares a kernel's WGSL
//! with its spec (entry point, `@workgroup_size`, the binding list), so a manifest whose
//! `workgroup_size` disagrees with the shader is refused before any GPU work. Integrity of the
//! bytes is a separate matter (the sha256 of every file, and the manifest digest in
//! [`crate::integrity`]); these checks catch inconsistency, not a consistent forgery.

use crate::{BindingKind, BufferKind, ElemType, KernelSpec, Manifest, ManifestError, SizeExpr};

impl Manifest {
    /// Checks the manifest's structure (see the module docs); the error says what and where.
    pub fn validate(&self) -> Result<(), ManifestError> {
        self.check_indices()?;
        for (i, b) in self.buffers.iter().enumerate() {
            if let Some(size) = b.size.as_const() {
                if size < 0 {
                    return Err(ManifestError::Structure(format!(
                        "manifest: buffer {i} '{}' has a negative size {size}",
                        b.label
                    )));
                }
            }
        }
        for k in &self.kernels {
            check_kernel_spec(k)?;
        }
        for p in &self.programs {
            for (i, d) in p.dispatches.iter().enumerate() {
                let at = || format!("manifest: program '{}' dispatch {i} ({})", p.name, d.label);
                let k = &self.kernels[d.kernel];
                if !k.variants.is_empty() {
                    check_variant_dispatch(self, d.kernel, d).map_err(|why| {
                        ManifestError::Structure(format!("{}: kernel '{}' has variants: {why}", at(), k.name))
                    })?;
                }
                for (slot, (&b, kind)) in d.buffers.iter().zip(&k.bindings[1..]).enumerate() {
                    let buf = &self.buffers[b];
                    if *kind == BindingKind::Storage
                        && !matches!(
                            buf.kind,
                            BufferKind::Intermediate | BufferKind::State | BufferKind::Scratch
                        )
                    {
                        return Err(ManifestError::Structure(format!(
                            "{}: binding {} of kernel '{}' is written, but it is bound to {} buffer {b} '{}'; kernels may only write intermediate, state and scratch buffers",
                            at(),
                            slot + 1,
                            k.name,
                            kind_name(buf.kind),
                            buf.label
                        )));
                    }
                }
                let consts: Vec<Option<i64>> = d.grid.iter().map(SizeExpr::as_const).collect();
                if let Some(v) = consts.iter().flatten().find(|&&v| v < 0) {
                    return Err(ManifestError::Structure(format!(
                        "{}: grid {} has a negative count {v}",
                        at(),
                        grid_str(&d.grid)
                    )));
                }
                if consts.iter().filter(|c| **c == Some(0)).count() >= 2 {
                    return Err(ManifestError::Structure(format!(
                        "{}: grid {} has zero workgroups in two dimensions; the compiler never writes such a grid",
                        at(),
                        grid_str(&d.grid)
                    )));
                }
            }
        }
        self.check_states()?;
        self.check_outputs()?;
        let program_outputs = self.programs.iter().flat_map(|p| p.outputs.iter().flatten());
        let program_inputs = self.programs.iter().flat_map(|p| p.inputs.iter().flatten());
        for io in self.outputs.iter().chain(program_outputs) {
            if io.index_bound.is_some() {
                return Err(ManifestError::Structure(format!(
                    "manifest: output '{}' has an index bound; only inputs may",
                    io.name
                )));
            }
        }
        for io in self.inputs.iter().chain(program_inputs) {
            if io.index_bound.is_some() && !matches!(io.storage, crate::ElemType::I32 | crate::ElemType::U32) {
                return Err(ManifestError::Structure(format!(
                    "manifest: input '{}' has an index bound but {} storage; index inputs are integers",
                    io.name,
                    io.storage.name()
                )));
            }
        }
        Ok(())
    }

    /// Every state lives alone in a `state` buffer of its constant size, names are unique, and
    /// every `state` buffer belongs to a state.
    fn check_states(&self) -> Result<(), ManifestError> {
        let mut owner: Vec<Option<&str>> = vec![None; self.buffers.len()];
        for st in &self.states {
            let buf = &self.buffers[st.buffer];
            if buf.kind != BufferKind::State {
                return Err(ManifestError::State(format!(
                    "manifest: state '{}' lives in {} buffer {} '{}', not a state buffer",
                    st.name,
                    kind_name(buf.kind),
                    st.buffer,
                    buf.label
                )));
            }
            if let Some(other) = owner[st.buffer].replace(&st.name) {
                return Err(ManifestError::State(format!(
                    "manifest: states '{other}' and '{}' share buffer {}",
                    st.name, st.buffer
                )));
            }
            if self.states.iter().filter(|o| o.name == st.name).count() > 1 {
                return Err(ManifestError::State(format!(
                    "manifest: state name '{}' appears twice",
                    st.name
                )));
            }
            let numel = st
                .shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n < u64::MAX / 4)
                .ok_or_else(|| {
                    ManifestError::State(format!("manifest: state '{}' has an overflowing shape", st.name))
                })?;
            // f16 states hold two values per 32-bit word; the others one value per word.
            let bytes = match st.storage {
                ElemType::F16 => numel.div_ceil(2) * 4,
                ElemType::F32 | ElemType::I32 | ElemType::U32 => numel * 4,
                other => {
                    return Err(ManifestError::State(format!(
                        "manifest: state '{}' has storage {}; states are f32, f16, i32 or u32",
                        st.name,
                        other.name()
                    )))
                }
            };
            if buf.size.as_const().map(|s| s as u64) != Some(bytes) {
                return Err(ManifestError::State(format!(
                    "manifest: state '{}' needs {bytes} bytes but its buffer {} has size '{}'",
                    st.name, st.buffer, buf.size
                )));
            }
        }
        if let Some(i) =
            (0..self.buffers.len()).find(|&i| self.buffers[i].kind == BufferKind::State && owner[i].is_none())
        {
            return Err(ManifestError::State(format!(
                "manifest: state buffer {i} '{}' belongs to no state",
                self.buffers[i].label
            )));
        }
        Ok(())
    }

    /// An output must be read from a buffer some kernel writes, an input buffer (an output that
    /// is an input), or a weight buffer holding a constant of exactly the output's size.
    fn check_outputs(&self) -> Result<(), ManifestError> {
        let written: std::collections::HashSet<usize> = self
            .programs
            .iter()
            .flat_map(|p| &p.dispatches)
            .flat_map(|d| {
                let k = &self.kernels[d.kernel];
                d.buffers
                    .iter()
                    .zip(&k.bindings[1..])
                    .filter(|(_, kind)| **kind == BindingKind::Storage)
                    .map(|(&b, _)| b)
            })
            .collect();
        let program_outputs = self.programs.iter().flat_map(|p| p.outputs.iter().flatten());
        for o in self.outputs.iter().chain(program_outputs) {
            let buf = &self.buffers[o.buffer];
            match buf.kind {
                BufferKind::Input | BufferKind::State => {}
                BufferKind::Intermediate if written.contains(&o.buffer) => {}
                BufferKind::Intermediate => {
                    return Err(ManifestError::Output(format!(
                        "manifest: output '{}' reads buffer {} '{}', which no dispatch writes",
                        o.name, o.buffer, buf.label
                    )))
                }
                BufferKind::Scratch => {
                    return Err(ManifestError::Output(format!(
                        "manifest: output '{}' reads buffer {} '{}', a kernel's scratch, which holds no tensor",
                        o.name, o.buffer, buf.label
                    )))
                }
                BufferKind::Weight => {
                    let out_elems: Option<i64> = o
                        .shape
                        .iter()
                        .map(SizeExpr::as_const)
                        .try_fold(1i64, |acc, d| d.and_then(|d| acc.checked_mul(d)));
                    let weight_elems = self
                        .weights
                        .iter()
                        .find(|w| w.buffer == o.buffer)
                        .and_then(|w| w.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)));
                    if out_elems.is_none() || out_elems.map(|n| n as u64) != weight_elems {
                        return Err(ManifestError::Output(format!(
                            "manifest: output '{}' [{}] reads weight buffer {} '{}' of another size; an output may read a weight only when it is that constant",
                            o.name,
                            o.shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
                            o.buffer,
                            buf.label
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks kernel `kernel`'s WGSL source against its spec: the entry point exists, the
    /// `@workgroup_size` equals the manifest's, and the `@binding`s of group 0 are exactly the
    /// manifest's bindings (same count, order and access).
    pub fn check_kernel_source(&self, kernel: usize, wgsl: &str) -> Result<(), ManifestError> {
        self.kernel_source_mismatch(kernel, wgsl)
            .map_err(|msg| ManifestError::KernelSource { kernel, msg })
    }

    /// [`Manifest::check_kernel_source`] for every kernel and kernel variant, with sources
    /// looked up by file name (a missing source is an error).
    pub fn check_sources<'a>(&self, source: impl Fn(&str) -> Option<&'a str>) -> Result<(), ManifestError> {
        for (ki, k) in self.kernels.iter().enumerate() {
            let missing = |file: &str| ManifestError::KernelSource {
                kernel: ki,
                msg: format!("no WGSL source for '{file}'"),
            };
            self.check_kernel_source(ki, source(&k.file).ok_or_else(|| missing(&k.file))?)?;
            for (vi, v) in k.variants.iter().enumerate() {
                self.check_variant_source(ki, vi, source(&v.file).ok_or_else(|| missing(&v.file))?)?;
            }
        }
        Ok(())
    }

    /// [`Manifest::check_kernel_source`] for variant `variant` of kernel `kernel`, against the
    /// kernel as it runs with that variant ([`KernelSpec::with_variant`]).
    pub fn check_variant_source(&self, kernel: usize, variant: usize, wgsl: &str) -> Result<(), ManifestError> {
        let k = self
            .kernels
            .get(kernel)
            .and_then(|k| Some(k.with_variant(k.variants.get(variant)?)));
        match k {
            Some(k) => source_mismatch(&k, wgsl),
            None => Err(format!("manifest has no variant {variant} of kernel {kernel}")),
        }
        .map_err(|msg| ManifestError::KernelSource { kernel, msg })
    }

    fn kernel_source_mismatch(&self, kernel: usize, wgsl: &str) -> Result<(), String> {
        let k = self
            .kernels
            .get(kernel)
            .ok_or_else(|| format!("manifest has no kernel {kernel}"))?;
        source_mismatch(k, wgsl)
    }
}

fn source_mismatch(k: &KernelSpec, wgsl: &str) -> Result<(), String> {
    let at = || format!("kernel '{}' ({})", k.name, k.file);
    let code = strip_comments(wgsl);
    let ws = workgroup_size_of(&code).map_err(|e| format!("{}: {e}", at()))?;
    if ws != k.workgroup_size {
        return Err(format!(
            "{}: the manifest says workgroup_size {:?}, the shader declares @workgroup_size{:?}",
            at(),
            k.workgroup_size,
            ws
        ));
    }
    if !has_fn(&code, &k.entry_point) {
        return Err(format!("{}: the shader has no entry point fn {}", at(), k.entry_point));
    }
    let bindings = bindings_of(&code).map_err(|e| format!("{}: {e}", at()))?;
    if bindings != k.bindings {
        return Err(format!(
            "{}: the manifest lists bindings {:?}, the shader declares {:?}",
            at(),
            k.bindings,
            bindings
        ));
    }
    Ok(())
}

fn check_kernel_spec(k: &KernelSpec) -> Result<(), ManifestError> {
    if k.bindings.first() != Some(&BindingKind::Uniform) {
        return Err(ManifestError::Kernel(format!(
            "manifest: kernel '{}': binding 0 must be the uniform parameter block",
            k.name
        )));
    }
    if let Some(i) = k.bindings.iter().skip(1).position(|b| *b == BindingKind::Uniform) {
        return Err(ManifestError::Kernel(format!(
            "manifest: kernel '{}': binding {} is a uniform; only binding 0 may be",
            k.name,
            i + 1
        )));
    }
    if k.workgroup_size.contains(&0) {
        return Err(ManifestError::Kernel(format!(
            "manifest: kernel '{}': workgroup size {:?} has a zero",
            k.name, k.workgroup_size
        )));
    }
    if k.entry_point.is_empty() {
        return Err(ManifestError::Kernel(format!(
            "manifest: kernel '{}' has an empty entry point",
            k.name
        )));
    }
    for (i, v) in k.variants.iter().enumerate() {
        if v.workgroup_size.contains(&0) {
            return Err(ManifestError::Kernel(format!(
                "manifest: variant {i} of kernel '{}': workgroup size {:?} has a zero",
                k.name, v.workgroup_size
            )));
        }
        if v.grid.iter().any(|g| g.as_const().is_some_and(|c| c < 0)) {
            return Err(ManifestError::Kernel(format!(
                "manifest: variant {i} of kernel '{}': grid {:?} has a negative count",
                k.name, v.grid
            )));
        }
        if v.file.is_empty() {
            return Err(ManifestError::Kernel(format!(
                "manifest: variant {i} of kernel '{}' has no file",
                k.name
            )));
        }
    }
    Ok(())
}

/// A chosen variant replaces the grid of every dispatch of its kernel, so that grid must hold
/// for each: either every variant grid and the dispatch's parameters are constant, or the
/// dispatch is the same as the kernel's first one (parameters and grid) and the variant grids
/// use only symbols that grid uses.
fn check_variant_dispatch(m: &Manifest, kernel: usize, d: &crate::manifest::Dispatch) -> Result<(), String> {
    let k = &m.kernels[kernel];
    let constant = d.params.iter().all(|v| v.as_const().is_some())
        && k.variants.iter().all(|v| v.grid.iter().all(|g| g.as_const().is_some()));
    if constant {
        return Ok(());
    }
    let first = m
        .programs
        .iter()
        .flat_map(|p| &p.dispatches)
        .find(|o| o.kernel == kernel)
        .expect("the dispatch itself");
    if first.params != d.params || first.grid != d.grid {
        return Err(format!(
            "its dispatches differ (grid {} and {}), so a symbolic variant grid cannot hold for each",
            grid_str(&first.grid),
            grid_str(&d.grid)
        ));
    }
    let mut known = Vec::new();
    first.grid.iter().for_each(|g| symbols(g, &mut known));
    for v in &k.variants {
        let mut used = Vec::new();
        v.grid.iter().for_each(|g| symbols(g, &mut used));
        if let Some(s) = used.iter().find(|s| !known.contains(s)) {
            return Err(format!(
                "variant grid {} uses '{s}', which the kernel's grid does not",
                grid_str(&v.grid)
            ));
        }
    }
    Ok(())
}

/// Appends the symbols of `e` to `out`.
fn symbols(e: &SizeExpr, out: &mut Vec<String>) {
    match e {
        SizeExpr::Const(_) => {}
        SizeExpr::Sym(s) => out.push(s.clone()),
        SizeExpr::Bin(_, a, b) => {
            symbols(a, out);
            symbols(b, out);
        }
    }
}

fn kind_name(k: BufferKind) -> &'static str {
    match k {
        BufferKind::Input => "input",
        BufferKind::Weight => "weight",
        BufferKind::Intermediate => "intermediate",
        BufferKind::State => "state",
        BufferKind::Scratch => "scratch",
    }
}

fn grid_str(g: &[SizeExpr; 3]) -> String {
    format!("[{}, {}, {}]", g[0], g[1], g[2])
}

/// WGSL without `//` line comments and `/* */` block comments (block comments nest in WGSL).
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let (mut i, mut depth) = (0, 0usize);
    let mut start = 0;
    while i < b.len() {
        if depth == 0 && b[i..].starts_with(b"//") {
            out.push_str(&src[start..i]);
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            start = i;
        } else if b[i..].starts_with(b"/*") {
            if depth == 0 {
                out.push_str(&src[start..i]);
            }
            depth += 1;
            i += 2;
        } else if depth > 0 && b[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            start = i;
            out.push(' ');
        } else {
            i += 1;
        }
    }
    if depth == 0 {
        out.push_str(&src[start.min(src.len())..]);
    }
    out
}

/// The integer literal arguments of the one `@workgroup_size(...)` attribute.
fn workgroup_size_of(code: &str) -> Result<[u32; 3], String> {
    let mut found = code.match_indices("@workgroup_size");
    let (at, _) = found.next().ok_or("the shader has no @workgroup_size")?;
    if found.next().is_some() {
        return Err("the shader has more than one @workgroup_size; a kernel has one entry point".into());
    }
    let rest = code[at + "@workgroup_size".len()..].trim_start();
    let args = rest
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .map(|(a, _)| a)
        .ok_or("@workgroup_size has no argument list")?;
    let mut ws = [1u32; 3];
    let parts: Vec<&str> = args.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(format!("@workgroup_size({args}) must have 1 to 3 arguments"));
    }
    for (i, p) in parts.iter().enumerate() {
        let digits = p.trim_end_matches(['u', 'i']);
        ws[i] = digits
            .parse()
            .map_err(|_| format!("@workgroup_size argument '{p}' is not an integer literal"))?;
    }
    Ok(ws)
}

fn has_fn(code: &str, name: &str) -> bool {
    code.match_indices("fn").any(|(i, _)| {
        let before_ok = i == 0 || !is_ident(code.as_bytes()[i - 1]);
        let rest = &code[i + 2..];
        let trimmed = rest.trim_start();
        before_ok
            && trimmed.len() < rest.len()
            && trimmed.starts_with(name)
            && trimmed[name.len()..].trim_start().starts_with('(')
    })
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The `@binding(N) var<...>` declarations, in binding order; bindings must be 0..n.
fn bindings_of(code: &str) -> Result<Vec<BindingKind>, String> {
    let mut found: Vec<(u32, BindingKind)> = Vec::new();
    for (at, _) in code.match_indices("@binding") {
        let rest = code[at + "@binding".len()..].trim_start();
        let (num, rest) = rest
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .ok_or("@binding has no argument")?;
        let index: u32 = num
            .trim()
            .trim_end_matches(['u', 'i'])
            .parse()
            .map_err(|_| format!("@binding({num}) is not an integer literal"))?;
        let var = rest
            .find("var")
            .map(|v| &rest[v + 3..])
            .ok_or_else(|| format!("@binding({index}) is not followed by a var declaration"))?;
        let space: String = var
            .trim_start()
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .map(|(s, _)| s.chars().filter(|c| !c.is_whitespace()).collect())
            .ok_or_else(|| format!("@binding({index}) has no address space"))?;
        let kind = match space.as_str() {
            "uniform" => BindingKind::Uniform,
            "storage" | "storage,read" => BindingKind::ReadOnlyStorage,
            "storage,read_write" => BindingKind::Storage,
            other => {
                return Err(format!(
                    "@binding({index}) has address space <{other}>, which the kernel ABI does not use"
                ))
            }
        };
        found.push((index, kind));
    }
    found.sort_by_key(|(i, _)| *i);
    for (want, (got, _)) in found.iter().enumerate() {
        if *got as usize != want {
            return Err(format!(
                "the shader's bindings are not numbered 0..{} (found @binding({got}))",
                found.len()
            ));
        }
    }
    Ok(found.into_iter().map(|(_, k)| k).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WGSL: &str = "// a @workgroup_size(1) in a comment is ignored\n\
        struct Params { n: i32 }\n\
        @group(0) @binding(0) var<uniform> params: Params;\n\
        @group(0) @binding(1) var<storage, read> x: array<f32>;\n\
        /* @binding(7) var<storage, read_write> ghost: array<f32>; */\n\
        @group(0) @binding(2) var<storage, read_write> y: array<f32>;\n\
        @compute @workgroup_size(64, 1, 1)\n\
        fn main(@builtin(global_invocation_id) id: vec3<u32>) { y[id.x] = x[id.x]; }\n";

    fn spec() -> Manifest {
        let m = r#"{"format_version":2,"compiler_version":"t","model":"m",
            "requirements":{"target":"t","features":[],"limits":{}},"symbols":["n"],
            "inputs":[{"name":"x","dtype":"f32","storage":"f32","shape":["n"],"buffer":0}],
            "outputs":[{"name":"y","dtype":"f32","storage":"f32","shape":["n"],"buffer":1}],
            "buffers":[{"kind":"input","size":"n * 4","label":"x"},{"kind":"intermediate","size":"n * 4","label":"y"},
                       {"kind":"weight","size":16,"label":"w"}],
            "weights":[{"name":"w","file":"w.safetensors","dtype":"f32","shape":[4],"buffer":2}],
            "kernels":[{"name":"k0","file":"k0.wgsl","entry_point":"main","workgroup_size":[64,1,1],
                        "bindings":["uniform","read_only_storage","storage"],"params":["n"],"schedule":"injective","grid_splittable":true}],
            "programs":[{"name":"run","dispatches":[{"kernel":0,"buffers":[0,1],"params":["n"],"grid":["cdiv(n, 64)",1,1],"label":"copy"}]}],
            "files":{}}"#;
        Manifest::from_json(m).unwrap()
    }

    /// [`spec`] with its dispatch's parameter bound to a constant and a variant of kernel 0
    /// that needs a feature, with its own workgroup size and grid.
    fn with_variant() -> Manifest {
        let mut m = spec();
        m.format_version = crate::FORMAT_VERSION;
        m.programs[0].dispatches[0].params = vec![SizeExpr::c(256)];
        m.kernels[0].variants.push(crate::KernelVariant {
            file: "k0_v.wgsl".into(),
            workgroup_size: [128, 1, 1],
            grid: [SizeExpr::c(2), SizeExpr::c(1), SizeExpr::c(1)],
            schedule: "fast".into(),
            schedule_params: String::new(),
            requires: crate::VariantRequirements {
                features: vec!["shader-f16".into()],
                limits: [("maxComputeWorkgroupStorageSize".to_string(), 20000)].into(),
                ..Default::default()
            },
        });
        m
    }

    /// [`spec`] with a state of 7 values in a new state buffer of `bytes`, stored as `storage`.
    fn with_state(storage: ElemType, bytes: i64) -> Manifest {
        let mut m = spec();
        m.buffers.push(crate::BufferSpec {
            kind: BufferKind::State,
            size: SizeExpr::c(bytes),
            label: "s".into(),
        });
        m.states.push(crate::StateSpec {
            name: "s".into(),
            storage,
            shape: vec![7, 1],
            buffer: 3,
        });
        m
    }

    #[test]
    fn state_buffers_hold_one_value_per_word_or_two_f16_values() {
        with_state(ElemType::F32, 28).validate().unwrap();
        with_state(ElemType::F16, 16).validate().unwrap();
        let wrong = with_state(ElemType::F16, 28).validate().unwrap_err().to_string();
        assert!(wrong.contains("state 's' needs 16 bytes"), "{wrong}");
        let wrong = with_state(ElemType::I64, 56).validate().unwrap_err().to_string();
        assert!(wrong.contains("storage i64"), "{wrong}");
    }

    /// A scratch buffer (arrival counters and partial results) may be written by kernels and
    /// reads back as its kind, but no program output may name it: it holds no tensor.
    #[test]
    fn scratch_buffers_are_written_by_kernels_and_never_outputs() {
        let mut m = spec();
        m.format_version = crate::FORMAT_VERSION;
        m.buffers[1].kind = BufferKind::Scratch;
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(r#""kind":"scratch""#), "{text}");
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("output 'y'") && err.contains("scratch"), "{err}");
        m.outputs.clear();
        m.validate().unwrap();
        assert_eq!(Manifest::from_json(&serde_json::to_string(&m).unwrap()).unwrap(), m);
    }

    #[test]
    fn variants_read_back_and_apply() {
        let m = with_variant();
        m.validate().unwrap();
        let back = Manifest::from_json(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        m.check_variant_source(0, 0, &WGSL.replace("(64, 1, 1)", "(128, 1, 1)"))
            .unwrap();
        assert!(m.check_variant_source(0, 0, WGSL).is_err(), "workgroup size differs");
        // Without the variant: the manifest unchanged but for the empty variant list.
        let plain = m.with_variants(&[None]);
        assert!(plain.kernels[0].variants.is_empty());
        assert_eq!(plain.programs, m.programs);
        assert_eq!(plain.requirements, m.requirements);
        // With it: the variant's file, workgroup, schedule and grid, and its requirements.
        let v = m.with_variants(&[Some(0)]);
        let k = &v.kernels[0];
        assert_eq!(
            (k.file.as_str(), k.workgroup_size, k.schedule.as_str()),
            ("k0_v.wgsl", [128, 1, 1], "fast")
        );
        assert_eq!(
            (k.name.as_str(), &k.bindings, &k.params),
            ("k0", &m.kernels[0].bindings, &m.kernels[0].params)
        );
        assert_eq!(v.programs[0].dispatches[0].grid[0], SizeExpr::c(2));
        assert_eq!(v.requirements.features, vec!["shader-f16".to_string()]);
        assert_eq!(v.requirements.limits["maxComputeWorkgroupStorageSize"], 20000);
    }

    #[test]
    fn symbolic_variant_grids_need_one_kind_of_dispatch() {
        // A symbolic variant grid is accepted while the kernel's dispatches are all the same
        // and the grid uses only their symbols.
        let mut m = with_variant();
        let sym = SizeExpr::parse("cdiv(n, 64)").unwrap();
        m.programs[0].dispatches[0].grid[0] = sym.clone();
        m.programs[0].dispatches[0].params = vec![SizeExpr::parse("n").unwrap()];
        m.kernels[0].variants[0].grid[0] = SizeExpr::parse("cdiv(n, 128)").unwrap();
        m.validate().unwrap();
        // One that uses another symbol is refused.
        let mut bad = m.clone();
        bad.kernels[0].variants[0].grid[0] = SizeExpr::parse("cdiv(q, 128)").unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("uses 'q'"));
        // Two different dispatches of the kernel: no grid of the variant can hold for both.
        let mut two = m.clone();
        let mut d = two.programs[0].dispatches[0].clone();
        d.grid[0] = SizeExpr::parse("cdiv(n, 32)").unwrap();
        two.programs[0].dispatches.push(d);
        assert!(two.validate().unwrap_err().to_string().contains("dispatches differ"));
        // A negative constant count is refused.
        let mut neg = with_variant();
        neg.kernels[0].variants[0].grid[1] = SizeExpr::c(-1);
        assert!(neg.validate().unwrap_err().to_string().contains("negative count"));
    }

    #[test]
    fn format_versions_two_to_six_are_read_others_refused() {
        let text = serde_json::to_string(&spec()).unwrap();
        for (v, ok) in [
            (1, false),
            (2, true),
            (3, true),
            (4, true),
            (5, true),
            (6, true),
            (7, false),
        ] {
            let t = text.replacen("\"format_version\":2", &format!("\"format_version\":{v}"), 1);
            assert_eq!(Manifest::from_json(&t).is_ok(), ok, "version {v}");
        }
    }

    #[test]
    fn a_consistent_manifest_and_shader_pass() {
        let m = spec();
        m.validate().unwrap();
        m.check_kernel_source(0, WGSL).unwrap();
    }

    #[test]
    fn shader_disagreements_are_named() {
        let m = spec();
        let e = m
            .check_kernel_source(0, &WGSL.replace("(64, 1, 1)", "(32, 1, 1)"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("k0") && e.contains("[64, 1, 1]") && e.contains("[32, 1, 1]"),
            "{e}"
        );
        let e = m
            .check_kernel_source(0, &WGSL.replace("read_write", "read"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bindings"), "{e}");
        let e = m
            .check_kernel_source(0, &WGSL.replace("fn main", "fn other"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("entry point"), "{e}");
        let mut m2 = m.clone();
        m2.kernels[0].workgroup_size = [128, 1, 1];
        assert!(m2
            .check_kernel_source(0, WGSL)
            .unwrap_err()
            .to_string()
            .contains("workgroup_size"));
    }

    #[test]
    fn edited_manifests_are_refused_with_what_and_where() {
        let base = spec();
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "zero workgroups",
                Box::new(|m| m.programs[0].dispatches[0].grid = [0.into(), 0.into(), 0.into()]),
            ),
            (
                "negative",
                Box::new(|m| m.programs[0].dispatches[0].grid[1] = (-1).into()),
            ),
            ("weight buffer 2", Box::new(|m| m.outputs[0].buffer = 2)),
            (
                "written",
                Box::new(|m| m.programs[0].dispatches[0].buffers = vec![1, 2]),
            ),
            ("no bindings", Box::new(|m| m.kernels[0].bindings.clear())),
            (
                "binding 0",
                Box::new(|m| m.kernels[0].bindings[0] = BindingKind::Storage),
            ),
            ("has a zero", Box::new(|m| m.kernels[0].workgroup_size = [0, 1, 1])),
            ("negative size", Box::new(|m| m.buffers[1].size = (-4).into())),
            (
                "refers to buffer 9",
                Box::new(|m| m.programs[0].dispatches[0].buffers[0] = 9),
            ),
            (
                "takes 2 and 1",
                Box::new(|m| m.programs[0].dispatches[0].buffers.push(1)),
            ),
        ];
        for (needle, edit) in cases {
            let mut m = base.clone();
            edit(&mut m);
            let err = m.validate().expect_err(needle);
            assert!(err.to_string().contains(needle), "expected {needle:?} in: {err}");
            // The same edit in the JSON text is refused by the parser.
            assert!(Manifest::from_json(&m.to_json()).is_err(), "{needle}");
        }
    }

    #[test]
    fn an_output_may_be_a_constant_of_its_own_size() {
        let mut m = spec();
        m.outputs[0].buffer = 2;
        m.outputs[0].shape = vec![4.into()];
        m.validate().unwrap();
    }
}
