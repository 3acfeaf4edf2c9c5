//! The scenario TOML parser (`sim::scenario::parse_str`), anchored in the repo's `scenarios/` so
//! `config = "domains/hello.cfg"` includes resolve to the real xl.cfg files.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A scenario may include any file by path (`config = ...`); keep the fuzzer away from device
    // and kernel files (reading /dev/zero never ends) and from escapes that could spell them.
    if ["/dev", "/proc", "/sys", "\\u", "\\U"].iter().any(|s| text.contains(s)) {
        return;
    }
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/fuzz.toml"));
    let _ = sim::scenario::parse_str(text, path);
});
