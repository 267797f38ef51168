//! `.npy` bytes through the decoder `kiln run` reads inputs with (`kiln::npy::read_npy` is
//! this plus the file read): must return an array or a typed error, never panic, abort (e.g.
//! allocate for a forged shape) or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = kiln_npy::decode(data) {
        let numel = a.shape.iter().product::<usize>();
        assert_eq!(a.data.len(), numel * a.dtype.host_size());
    }
});
