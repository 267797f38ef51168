//! Bundle verification without a GPU: `manifest.json` bytes (before the first NUL) and one WGSL
//! source (after it) through the ABI's parser, structural validation, kernel-source check,
//! size-expression evaluation and integrity check. Must never panic, abort or hang.
#![no_main]

use kiln_abi::{check_integrity, integrity_of, Bindings, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (manifest, wgsl) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let _ = check_integrity(manifest, &integrity_of(manifest));
    let Ok(text) = std::str::from_utf8(manifest) else {
        return;
    };
    let Ok(m) = Manifest::from_json(text) else { return };
    let wgsl = String::from_utf8_lossy(wgsl);
    for k in 0..m.kernels.len() {
        let _ = m.check_kernel_source(k, &wgsl);
    }
    // Every expression under a few bindings, including extreme values.
    for v in [0i64, 1, 7, i64::MAX, i64::MIN] {
        let b: Bindings = m.symbols.iter().map(|s| (s.clone(), v)).collect();
        let _ = m.check_assumptions(&b);
        for e in m
            .buffers
            .iter()
            .map(|b| &b.size)
            .chain(m.inputs.iter().flat_map(|i| &i.shape))
        {
            let _ = e.eval(&b);
        }
        for d in m.programs.iter().flat_map(|p| &p.dispatches) {
            for e in d.params.iter().chain(&d.grid) {
                let _ = e.eval(&b);
            }
        }
    }
    let _ = m.to_json();
});
