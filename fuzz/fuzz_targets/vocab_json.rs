//! Vocabulary JSON: parsed or refused; a parsed one round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v) = dbl::data::vocab::Vocab::from_json(Path::new("fuzz.json"), text) {
        let again = dbl::data::vocab::Vocab::from_json(Path::new("again.json"), &v.to_json())
            .expect("a loaded vocabulary serialises to a valid one");
        assert_eq!(v, again);
        let _ = v.encode_caption("a dog runs");
    }
});
