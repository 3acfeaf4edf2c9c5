//! The kernel unpacker (`sim::kernel::unpack_limited`: bzImage setup headers and the gzip, bzip2,
//! xz, lzma, zstd and lz4 decoders) on arbitrary bytes, bounded at 4 MiB of output; what unpacks
//! goes on to `hv::elf::parse`. Nothing may panic, and no output may exceed the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

const LIMIT: u64 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok((elf, _)) = sim::kernel::unpack_limited(data.to_vec(), LIMIT) {
        assert!(elf.len() as u64 <= LIMIT.max(data.len() as u64));
        let _ = hv::elf::parse(&elf);
    }
});
