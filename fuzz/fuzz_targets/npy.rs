//! `.npy` bytes through the reader `kiln run` uses: must return a tensor or an error, never
//! panic, abort (e.g. allocate for a forged shape) or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("kiln-fuzz-{}.npy", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        if let Ok(t) = kiln::npy::read_npy(&path) {
            let _ = t.to_f32();
        }
    }
});
