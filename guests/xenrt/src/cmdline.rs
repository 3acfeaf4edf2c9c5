//! Kernel command line (`start_info.cmd_line`, NUL-terminated, up to 1024 bytes).
//!
//! Options are whitespace-separated `key=value` tokens; [`arg`] returns the value of the first
//! token with that key (a bare `key` yields ""), [`arg_u64`] parses it as decimal or `0x` hex
//! (underscores allowed).

/// The command line up to the first NUL (or the longest valid UTF-8 prefix).
pub fn cmdline() -> &'static str {
    let raw = &crate::start_info().cmd_line;
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    match core::str::from_utf8(&raw[..len]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// Value of option `key`, if present.
pub fn arg(key: &str) -> Option<&'static str> {
    cmdline().split_ascii_whitespace().find_map(|tok| match tok.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        None if tok == key => Some(""),
        _ => None,
    })
}

/// Parses a decimal or `0x`-prefixed hex number (underscores ignored).
pub fn parse_u64(s: &str) -> Option<u64> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    let mut v: u64 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        v = v.checked_mul(radix)?.checked_add(c.to_digit(radix as u32)? as u64)?;
        any = true;
    }
    any.then_some(v)
}

/// Numeric value of option `key`, if present and well-formed.
pub fn arg_u64(key: &str) -> Option<u64> {
    arg(key).and_then(parse_u64)
}
