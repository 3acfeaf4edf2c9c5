//! The xl.cfg parser of the simulator's toolstack (`sim::xlcfg`): the raw entry parser and the
//! domain spec built from it. Errors are fine (they name file, line and field); panics are not.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Path::new("/fuzz/domain.cfg");
    let _ = sim::xlcfg::parse(text, file);
    let _ = sim::xlcfg::parse_str(text, file);
    let _ = sim::xlcfg::parse_str_lenient(text, file);
});
