//! GGUF bytes through Kiln's reader and its accessors: must return a model or a typed error,
//! never panic, abort (e.g. allocate for a forged count) or hang.
#![no_main]

use kiln_compiler::frontend::gguf::Gguf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = Gguf::from_bytes(data.to_vec()) else {
        return;
    };
    for (key, value) in g.metadata() {
        let _ = value.to_string();
        let _ = (g.get_u32(key), g.get_f32(key), g.get_str(key), g.get_str_array(key));
    }
    let _ = g.architecture();
    let names: Vec<String> = g.tensor_infos().iter().map(|t| t.name.clone()).collect();
    for name in names {
        if let Ok(t) = g.tensor(&name) {
            assert_eq!(t.bytes.len() as u64, t.info.n_bytes);
            // The reader bounded the tensor by the file's size, so this allocation is too.
            let _ = g.tensor_f32(&name);
        }
    }
});
