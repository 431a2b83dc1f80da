//! `.npy` header parsing and the size arithmetic built on it: any bytes
//! either parse to a header whose payload size is representable, or are
//! refused with an error; never a panic or overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = dbl::data::npy::parse_header(Path::new("fuzz.npy"), data) {
        let bytes = h.len().checked_mul(4).expect("checked by parse_header");
        assert!(bytes.checked_add(h.data_offset).is_some());
    }
});
