//! Every file the CLI reads — kernel ELFs (`boot`, scenario domains, xl.cfg `kernel=`, `boot-hw
//! --kernel`), xl.cfg files and scenario files — goes through [`read_input`], which bounds it:
//!
//! - the file is opened with `O_NONBLOCK`, so a FIFO cannot block the open, and then refused
//!   unless it is a regular file (FIFOs, character and block devices, sockets, directories);
//! - a file longer than its kind's limit ([`KERNEL_LIMIT`], [`CONFIG_LIMIT`], [`SCENARIO_LIMIT`])
//!   is refused before a byte is read;
//! - at most limit + 1 bytes are ever read, so a file that grows while being read is still bounded.
//!
//! Every error names the file and what it was read as. [`quote`] bounds user strings echoed in
//! error messages.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest kernel ELF accepted: 128 MiB (Debian's uncompressed vmlinux is about 60 MiB).
pub const KERNEL_LIMIT: u64 = 128 << 20;
/// Largest initial ramdisk (boot module) accepted.
pub const RAMDISK_LIMIT: u64 = 512 << 20;
/// The largest xl.cfg file accepted: 1 MiB.
pub const CONFIG_LIMIT: u64 = 1 << 20;
/// The largest scenario file accepted: 1 MiB.
pub const SCENARIO_LIMIT: u64 = 1 << 20;

/// What a file is read as: names it in errors and chooses its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Kernel,
    Ramdisk,
    XlConfig,
    Scenario,
}

impl InputKind {
    /// The size limit for this kind of file, in bytes.
    pub fn limit(self) -> u64 {
        match self {
            InputKind::Kernel => KERNEL_LIMIT,
            InputKind::Ramdisk => RAMDISK_LIMIT,
            InputKind::XlConfig => CONFIG_LIMIT,
            InputKind::Scenario => SCENARIO_LIMIT,
        }
    }
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputKind::Kernel => "kernel",
            InputKind::Ramdisk => "ramdisk",
            InputKind::XlConfig => "xl.cfg file",
            InputKind::Scenario => "scenario file",
        })
    }
}

/// A file that could not be read as input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: cannot read {kind}: {source}", path.display())]
    Io { path: PathBuf, kind: InputKind, source: std::io::Error },
    #[error("{}: {kind} is {what}, not a regular file", path.display())]
    NotAFile { path: PathBuf, kind: InputKind, what: &'static str },
    #[error("{}: {kind} is too large: {} (the limit is {})", path.display(), size_text(*size, *limit), mib(*limit))]
    TooLarge {
        path: PathBuf,
        kind: InputKind,
        /// Its size; `None` when it grew past the limit while being read.
        size: Option<u64>,
        limit: u64,
    },
    #[error("{}: {kind} is not UTF-8 text", path.display())]
    NotText { path: PathBuf, kind: InputKind },
}

/// `size` bytes, or "more than" the limit when the file grew past it while being read.
fn size_text(size: Option<u64>, limit: u64) -> String {
    match size {
        Some(size) => format!("{size} bytes"),
        None => format!("more than {limit} bytes"),
    }
}

fn mib(n: u64) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// What a non-regular file is, for messages.
fn describe(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads the file at `path` as `kind`, with that kind's limit.
pub fn read_input(path: &Path, kind: InputKind) -> Result<Vec<u8>, InputError> {
    read_limited(path, kind, kind.limit())
}

/// Reads the file at `path` as UTF-8 text, with `kind`'s limit.
pub fn read_text(path: &Path, kind: InputKind) -> Result<String, InputError> {
    String::from_utf8(read_input(path, kind)?).map_err(|_| InputError::NotText { path: path.to_path_buf(), kind })
}

/// Reads at most `limit` bytes of the regular file at `path`; see the module docs.
pub fn read_limited(path: &Path, kind: InputKind, limit: u64) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io { path: path.to_path_buf(), kind, source };
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path) {
        Ok(f) => f,
        Err(e) => {
            // A socket cannot be opened at all (ENXIO): say what it is rather than why.
            if let Ok(m) = std::fs::metadata(path) {
                if !m.is_file() {
                    return Err(InputError::NotAFile { path: path.to_path_buf(), kind, what: describe(&m.file_type()) });
                }
            }
            return Err(io(e));
        }
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(InputError::NotAFile { path: path.to_path_buf(), kind, what: describe(&meta.file_type()) });
    }
    if meta.len() > limit {
        return Err(InputError::TooLarge { path: path.to_path_buf(), kind, size: Some(meta.len()), limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { path: path.to_path_buf(), kind, size: None, limit });
    }
    Ok(bytes)
}

/// The longest user string quoted whole in an error message, in characters.
pub const QUOTE_MAX: usize = 64;

/// `s` in double quotes for an error message, cut at [`QUOTE_MAX`] characters with an ellipsis and
/// its total length: `"aaaa…" (1048576 bytes)`.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        None => format!("\"{s}\""),
        Some((cut, _)) => format!("\"{}…\" ({} bytes)", &s[..cut], s.len()),
    }
}

/// `s` cut like [`quote`], without the quotes: for field names and other unquoted echoes.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &s[..cut], s.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn quick<T>(f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        r
    }

    #[test]
    fn dev_zero_is_refused_as_a_character_device() {
        let e = quick(|| read_input(Path::new("/dev/zero"), InputKind::Kernel)).unwrap_err();
        assert_eq!(e.to_string(), "/dev/zero: kernel is a character device, not a regular file");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let ok = std::process::Command::new("mkfifo").arg(&p).status().unwrap().success();
        assert!(ok, "mkfifo");
        let e = quick(|| read_input(&p, InputKind::Scenario)).unwrap_err();
        assert!(e.to_string().ends_with("fifo: scenario file is a FIFO, not a regular file"), "{e}");
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_input(dir.path(), InputKind::XlConfig).unwrap_err();
        assert!(e.to_string().ends_with(": xl.cfg file is a directory, not a regular file"), "{e}");
    }

    #[test]
    fn a_sparse_file_over_the_limit_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.elf");
        std::fs::File::create(&p).unwrap().set_len(2 << 30).unwrap();
        let e = quick(|| read_input(&p, InputKind::Kernel)).unwrap_err();
        assert!(e.to_string().ends_with("big.elf: kernel is too large: 2147483648 bytes (the limit is 128 MiB)"), "{e}");
    }

    #[test]
    fn limits_are_inclusive_and_missing_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.cfg");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_limited(&p, InputKind::XlConfig, 5).unwrap(), b"12345");
        assert!(matches!(read_limited(&p, InputKind::XlConfig, 4), Err(InputError::TooLarge { size: Some(5), .. })));
        let e = read_input(&dir.path().join("nope"), InputKind::Kernel).unwrap_err();
        assert!(e.to_string().contains("nope: cannot read kernel: No such file"), "{e}");
        std::fs::write(&p, b"\xff\xfe").unwrap();
        assert!(read_text(&p, InputKind::XlConfig).unwrap_err().to_string().ends_with("x.cfg: xl.cfg file is not UTF-8 text"));
    }

    #[test]
    fn a_file_longer_than_its_length_says_is_still_bounded() {
        // /proc files report length 0, like a file that grows after the check.
        let e = read_limited(Path::new("/proc/self/status"), InputKind::Scenario, 16).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { size: None, limit: 16, .. }), "{e}");
        assert!(e.to_string().ends_with("scenario file is too large: more than 16 bytes (the limit is 16 bytes)"), "{e}");
    }

    #[test]
    fn long_strings_are_cut_when_quoted() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "é".repeat(100);
        let q = quote(&long);
        assert_eq!(q, format!("\"{}…\" (200 bytes)", "é".repeat(64)));
        assert_eq!(clip(&"k".repeat(65)), format!("{}… (65 bytes)", "k".repeat(64)));
    }
}
