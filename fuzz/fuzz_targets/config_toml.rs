//! Training config: TOML text plus `--set` overrides (the input split at
//! 0xFF bytes: TOML first, then one override per part). Parsed and validated,
//! or refused with an error; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xff);
    let Some(Ok(text)) = parts.next().map(std::str::from_utf8) else {
        return;
    };
    let overrides: Vec<String> = parts
        .filter_map(|p| std::str::from_utf8(p).ok())
        .map(str::to_string)
        .collect();
    if let Ok(cfg) = dbl::train::config::TrainConfig::from_toml_str(text, "fuzz.toml", &overrides) {
        let _ = cfg.validate();
    }
});
