//! Kernels as users have them: an ELF, a compressed ELF, or a bzImage (`/boot/vmlinuz-*`), turned
//! into the ELF the domain builder loads, as Xen's toolstack does (libxenguest's
//! `xg_dom_bzimageloader.c`: `xc_dom_probe_bzimage_kernel` finds the payload from the setup header,
//! then the payload's magic chooses the decompressor; a compressed ELF is unpacked the same way).
//!
//! Every decompressor runs under a bound: the unpacked kernel may not exceed [`UNPACKED_LIMIT`]
//! (the same limit as an uncompressed kernel file), so a payload that decompresses without bound is
//! refused after at most that many bytes. A truncated stream, an unknown format or a setup header
//! whose payload lies outside the file is refused with a message; nothing here panics.

use std::io::Read;
use std::path::Path;

use crate::input::{self, InputKind, KERNEL_LIMIT};

/// Largest kernel ELF accepted after decompression.
pub const UNPACKED_LIMIT: u64 = KERNEL_LIMIT;

/// How a kernel file was packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// A plain ELF.
    Elf,
    /// A compressed ELF (e.g. `vmlinux.gz`).
    Compressed(Codec),
    /// A bzImage whose payload is compressed with this codec.
    BzImage(Codec),
}

/// The compression formats of Linux's bzImage payloads that xenolith unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Bzip2,
    Xz,
    Lzma,
    Zstd,
    Lz4,
    /// The payload is itself an uncompressed ELF (CONFIG_KERNEL_UNCOMPRESSED).
    None,
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
            Codec::Lzma => "lzma",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::None => "uncompressed",
        })
    }
}

impl std::fmt::Display for Packing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Packing::Elf => f.write_str("ELF"),
            Packing::Compressed(c) => write!(f, "{c}-compressed ELF"),
            Packing::BzImage(c) => write!(f, "bzImage with a {c} payload"),
        }
    }
}

/// Magic numbers of the compressed formats, as libxenguest probes them
/// (`xc_dom_probe_bzimage_kernel`), plus the LZ4 legacy frame's full magic.
fn codec_of(data: &[u8]) -> Result<Codec, String> {
    let has = |m: &[u8]| data.starts_with(m);
    Ok(if has(b"\x1f\x8b") {
        Codec::Gzip
    } else if has(b"BZh") {
        Codec::Bzip2
    } else if has(b"\xfd7zXZ\x00") {
        Codec::Xz
    } else if has(b"\x28\xb5\x2f\xfd") {
        Codec::Zstd
    } else if has(b"\x5d\x00") {
        Codec::Lzma
    } else if has(b"\x02\x21\x4c\x18") {
        Codec::Lz4
    } else if has(b"\x7fELF") {
        Codec::None
    } else if has(b"\x89LZO") {
        return Err("LZO-compressed payloads are not supported (gzip, bzip2, xz, lzma, zstd and lz4 are)".into());
    } else {
        return Err(format!("unknown payload format (magic {})", data.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()));
    })
}

/// Offsets in the x86 boot protocol's setup header (Linux's Documentation/arch/x86/boot.rst).
mod setup {
    pub const SETUP_SECTS: usize = 0x1f1;
    pub const HEADER: usize = 0x202; // "HdrS"
    pub const VERSION: usize = 0x206;
    pub const PAYLOAD_OFFSET: usize = 0x248;
    pub const PAYLOAD_LENGTH: usize = 0x24c;
    /// The setup header's end, at version 2.08 (payload fields included).
    pub const END: usize = 0x250;
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The compressed payload of a bzImage, or `None` when `bytes` is not a bzImage.
pub fn bzimage_payload(bytes: &[u8]) -> Option<Result<&[u8], String>> {
    if bytes.len() < setup::END || &bytes[setup::HEADER..setup::HEADER + 4] != b"HdrS" {
        return None;
    }
    let version = u16::from_le_bytes([bytes[setup::VERSION], bytes[setup::VERSION + 1]]);
    if version < 0x0208 {
        return Some(Err(format!(
            "bzImage boot protocol {}.{:02} is too old (2.08 or later has the payload fields)",
            version >> 8,
            version & 0xff
        )));
    }
    // As libxenguest: setup_sects is a byte, so this cannot overflow in u64.
    let off = (bytes[setup::SETUP_SECTS] as u64 + 1) * 512 + u32_at(bytes, setup::PAYLOAD_OFFSET) as u64;
    let len = u32_at(bytes, setup::PAYLOAD_LENGTH) as u64;
    let size = bytes.len() as u64;
    if off >= size {
        return Some(Err(format!("bzImage payload offset {off:#x} lies beyond the file ({size} bytes)")));
    }
    if off + len > size {
        return Some(Err(format!("bzImage payload {off:#x}+{len:#x} runs past the end of the file ({size} bytes)")));
    }
    Some(Ok(&bytes[off as usize..(off + len) as usize]))
}

fn too_big(limit: u64) -> String {
    format!("it unpacks to more than {} MiB, the limit for a kernel", limit >> 20)
}

/// Read a decompressing reader to its end, bounded.
fn drain(mut r: impl Read, limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    (&mut r).take(limit + 1).read_to_end(&mut out).map_err(|e| e.to_string())?;
    if out.len() as u64 > limit {
        return Err(too_big(limit));
    }
    Ok(out)
}

/// Decompress `data` (the whole compressed stream, possibly followed by the 4-byte size Linux's
/// build appends) with `codec`, producing at most `limit` bytes.
pub fn decompress(codec: Codec, data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    match codec {
        Codec::None => {
            if data.len() as u64 > limit {
                return Err(too_big(limit));
            }
            Ok(data.to_vec())
        }
        // One gzip member; what follows it (Linux's appended size) is not read.
        Codec::Gzip => drain(flate2::read::GzDecoder::new(data), limit),
        Codec::Bzip2 => {
            let out = drain(bzip2::read::BzDecoder::new(data), limit)?;
            if out.is_empty() {
                return Err("the bzip2 stream is empty or truncated".into());
            }
            Ok(out)
        }
        Codec::Zstd => {
            let d = ruzstd::decoding::StreamingDecoder::new(data).map_err(|e| e.to_string())?;
            drain(d, limit)
        }
        // One .xz stream (Linux's use the x86 BCJ filter before LZMA2) or one .lzma stream; what
        // follows it (Linux's appended size) is not read. Dictionaries are bounded like the output.
        Codec::Xz => drain(lzma_rust2::XzReader::new_mem_limit(data, false, dict_limit_kb(limit)), limit),
        Codec::Lzma => {
            let r = lzma_rust2::LzmaReader::new_mem_limit(data, dict_limit_kb(limit), None).map_err(|e| e.to_string())?;
            drain(r, limit)
        }
        Codec::Lz4 => lz4_legacy(data, limit),
    }
}

/// The decoder memory allowed for a stream that may unpack to `limit` bytes (KiB): a dictionary
/// larger than the output it can produce is never needed.
fn dict_limit_kb(limit: u64) -> u32 {
    // Plus room for the smallest presets' 1 MiB dictionary and the coder's tables.
    ((limit >> 10) + 4096).min(u32::MAX as u64) as u32
}

/// The LZ4 legacy frame Linux uses (`lz4 -l`): the magic, then blocks, each a little-endian
/// compressed size and that many bytes, each unpacking to at most 8 MiB. The stream ends at the
/// end of the data, at Linux's appended 4-byte size, or at a new magic (concatenated frames).
fn lz4_legacy(data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    const MAGIC: u32 = 0x184c_2102;
    const BLOCK_MAX: usize = 8 << 20;
    let mut out: Vec<u8> = Vec::new();
    let mut pos = 4;
    let mut block = vec![0u8; BLOCK_MAX];
    while data.len() - pos >= 4 {
        let n = u32_at(data, pos) as usize;
        if n as u32 == MAGIC {
            pos += 4;
            continue;
        }
        if data.len() - pos == 4 {
            break; // the appended unpacked size
        }
        pos += 4;
        if n > data.len() - pos {
            return Err(format!("truncated lz4 stream: a block of {n} bytes, {} left", data.len() - pos));
        }
        let got = lz4_flex::block::decompress_into(&data[pos..pos + n], &mut block).map_err(|e| format!("lz4: {e}"))?;
        if out.len() as u64 + got as u64 > limit {
            return Err(too_big(limit));
        }
        out.extend_from_slice(&block[..got]);
        pos += n;
    }
    if out.is_empty() {
        return Err("the lz4 stream holds no blocks".into());
    }
    Ok(out)
}

/// Turn a kernel file's bytes into an ELF: bzImages and compressed ELFs are unpacked.
pub fn unpack(bytes: Vec<u8>) -> Result<(Vec<u8>, Packing), String> {
    unpack_limited(bytes, UNPACKED_LIMIT)
}

/// [`unpack`] with another bound on the unpacked size (the fuzz target uses a small one).
pub fn unpack_limited(bytes: Vec<u8>, limit: u64) -> Result<(Vec<u8>, Packing), String> {
    if bytes.starts_with(b"\x7fELF") {
        return Ok((bytes, Packing::Elf));
    }
    let (packing, elf) = if let Some(payload) = bzimage_payload(&bytes) {
        let payload = payload?;
        let codec = codec_of(payload).map_err(|e| format!("bzImage: {e}"))?;
        let elf = decompress(codec, payload, limit).map_err(|e| format!("bzImage {codec} payload: {e}"))?;
        (Packing::BzImage(codec), elf)
    } else {
        match codec_of(&bytes) {
            Ok(Codec::None) => unreachable!("ELF handled above"),
            Ok(codec) => {
                let elf = decompress(codec, &bytes, limit).map_err(|e| format!("{codec}: {e}"))?;
                (Packing::Compressed(codec), elf)
            }
            // Neither ELF, bzImage nor a known compressed format: the ELF parser says why.
            Err(_) => return Ok((bytes, Packing::Elf)),
        }
    };
    if !elf.starts_with(b"\x7fELF") {
        return Err(format!("the {packing} does not unpack to an ELF image"));
    }
    Ok((elf, packing))
}

/// Read a kernel file (within the kernel size limit) and unpack it to an ELF.
pub fn read_kernel(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = input::read_input(path, InputKind::Kernel).map_err(|e| e.to_string())?;
    unpack(bytes).map(|(elf, _)| elf).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn elf_like(n: usize) -> Vec<u8> {
        let mut v = b"\x7fELF".to_vec();
        v.extend((0..n).map(|i| (i * 7 % 251) as u8));
        v
    }

    fn gzip(d: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    /// A minimal bzImage: setup sectors, the setup header, then `payload` + Linux's size trailer.
    fn bzimage(payload: &[u8], unpacked: u32) -> Vec<u8> {
        let mut b = vec![0u8; 2 * 512];
        b[setup::SETUP_SECTS] = 1;
        b[setup::HEADER..setup::HEADER + 4].copy_from_slice(b"HdrS");
        b[setup::VERSION..setup::VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
        b[setup::PAYLOAD_OFFSET..setup::PAYLOAD_OFFSET + 4].copy_from_slice(&0x40u32.to_le_bytes());
        let len = payload.len() as u32 + 4;
        b[setup::PAYLOAD_LENGTH..setup::PAYLOAD_LENGTH + 4].copy_from_slice(&len.to_le_bytes());
        b.resize(2 * 512 + 0x40, 0);
        b.extend_from_slice(payload);
        b.extend_from_slice(&unpacked.to_le_bytes());
        b
    }

    /// .xz as Linux's build makes it: the x86 BCJ filter, then LZMA2.
    fn xz_x86(d: &[u8]) -> Vec<u8> {
        let mut o = lzma_rust2::XzOptions::with_preset(1);
        o.filters.push(lzma_rust2::FilterConfig::new_bcj_x86(0));
        let mut w = lzma_rust2::XzWriter::new(Vec::new(), o).unwrap();
        w.write_all(d).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn plain_elf_passes_through() {
        let e = elf_like(100);
        assert_eq!(unpack(e.clone()).unwrap(), (e, Packing::Elf));
    }

    #[test]
    fn gzip_bzimage_and_gzipped_elf() {
        let e = elf_like(100_000);
        let (got, p) = unpack(bzimage(&gzip(&e), e.len() as u32)).unwrap();
        assert_eq!((got == e, p), (true, Packing::BzImage(Codec::Gzip)));
        let (got, p) = unpack(gzip(&e)).unwrap();
        assert_eq!((got == e, p), (true, Packing::Compressed(Codec::Gzip)));
    }

    #[test]
    fn xz_lzma_zstd_bzip2_lz4_payloads() {
        let e = elf_like(300_000);
        let xz = xz_x86(&e);
        let mut lz = lzma_rust2::LzmaWriter::new_use_header(Vec::new(), &lzma_rust2::LzmaOptions::with_preset(1), None).unwrap();
        lz.write_all(&e).unwrap();
        let lz = lz.finish().unwrap();
        let zs = ruzstd::encoding::compress_to_vec(&e[..], ruzstd::encoding::CompressionLevel::Fastest);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&e).unwrap();
        let bz = bz.finish().unwrap();
        let mut l4 = 0x184c_2102u32.to_le_bytes().to_vec();
        for chunk in e.chunks(100_000) {
            let c = lz4_flex::block::compress(chunk);
            l4.extend_from_slice(&(c.len() as u32).to_le_bytes());
            l4.extend_from_slice(&c);
        }
        for (payload, codec) in [(xz, Codec::Xz), (lz, Codec::Lzma), (zs, Codec::Zstd), (bz, Codec::Bzip2), (l4, Codec::Lz4)] {
            let (got, p) = unpack(bzimage(&payload, e.len() as u32)).unwrap_or_else(|err| panic!("{codec}: {err}"));
            assert_eq!(p, Packing::BzImage(codec));
            assert!(got == e, "{codec}: unpacked bytes differ");
        }
    }

    #[test]
    fn truncated_and_lying_inputs_are_refused() {
        let e = elf_like(200_000);
        let gz = gzip(&e);
        // Truncated stream.
        let err = unpack(bzimage(&gz[..gz.len() / 2], 0)).unwrap_err();
        assert!(err.contains("bzImage gzip payload"), "{err}");
        // Payload length past the end of the file.
        let mut b = bzimage(&gz, 0);
        b[setup::PAYLOAD_LENGTH..setup::PAYLOAD_LENGTH + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(b).unwrap_err().contains("runs past the end"));
        // Payload offset past the end.
        let mut b = bzimage(&gz, 0);
        b[setup::PAYLOAD_OFFSET..setup::PAYLOAD_OFFSET + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert!(unpack(b).unwrap_err().contains("beyond the file"));
        // Old boot protocol.
        let mut b = bzimage(&gz, 0);
        b[setup::VERSION..setup::VERSION + 2].copy_from_slice(&0x0206u16.to_le_bytes());
        assert!(unpack(b).unwrap_err().contains("too old"));
        // Unknown payload, and a payload that is not an ELF.
        assert!(unpack(bzimage(b"hello world", 0)).unwrap_err().contains("unknown payload format"));
        assert!(unpack(bzimage(&gzip(b"not an elf"), 0)).unwrap_err().contains("does not unpack to an ELF"));
        // LZO is named.
        assert!(unpack(bzimage(b"\x89LZO\x00\x0d\x0a", 0)).unwrap_err().contains("LZO"));
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        // 136 MiB of zeros compress to about 0.6 MiB of gzip; unpacking stops at the 128 MiB limit.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(UNPACKED_LIMIT >> 20) + 8 {
            enc.write_all(&zeros).unwrap();
        }
        let gz = enc.finish().unwrap();
        let err = decompress(Codec::Gzip, &gz, UNPACKED_LIMIT).unwrap_err();
        assert!(err.contains("more than 128 MiB"), "{err}");
        // The same bound for the other codecs, with a small limit.
        let e = elf_like(100_000);
        let xz = xz_x86(&e);
        assert!(decompress(Codec::Xz, &xz, 50_000).unwrap_err().contains("more than"));
        let zs = ruzstd::encoding::compress_to_vec(&e[..], ruzstd::encoding::CompressionLevel::Fastest);
        assert!(decompress(Codec::Zstd, &zs, 1000).unwrap_err().contains("more than"));
    }
}
