//! The boot pack: a scenario's domains in one blob, handed to the bootable image as its one PVH
//! module (QEMU passes a single `-initrd` to a PVH kernel). Written by the simulator's CLI,
//! read by the image. Little-endian, no padding requirements:
//!
//! ```text
//! "XLNPACK2"  u32 count  u64 run_for_ns
//! count x { str name, str kernel_name, str cmdline, u64 memory_mib, u32 vcpus,
//!           u8 on_poweroff, u8 on_reboot, u8 on_crash, u8 has_initrd, bytes elf, [bytes initrd] }
//! str = u32 len + utf-8;  bytes = u64 len + data
//! ```

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::domain::{Action, DomainConfig};

const MAGIC: &[u8; 8] = b"XLNPACK2";

/// A decoded pack.
pub struct Pack {
    pub run_for_ns: u64,
    pub domains: Vec<DomainConfig>,
}

fn action_code(a: Action) -> u8 {
    match a {
        Action::Destroy => 0,
        Action::Restart => 1,
        Action::Preserve => 2,
        Action::RenameRestart => 3,
        Action::CoredumpDestroy => 4,
        Action::CoredumpRestart => 5,
    }
}

fn action_of(c: u8) -> Option<Action> {
    Some(match c {
        0 => Action::Destroy,
        1 => Action::Restart,
        2 => Action::Preserve,
        3 => Action::RenameRestart,
        4 => Action::CoredumpDestroy,
        5 => Action::CoredumpRestart,
        _ => return None,
    })
}

/// Encode domains into a pack.
pub fn write(run_for_ns: u64, domains: &[DomainConfig]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&(domains.len() as u32).to_le_bytes());
    v.extend_from_slice(&run_for_ns.to_le_bytes());
    let s = |v: &mut Vec<u8>, s: &str| {
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
        v.extend_from_slice(s.as_bytes());
    };
    for d in domains {
        s(&mut v, &d.name);
        s(&mut v, &d.kernel_name);
        s(&mut v, &d.cmdline);
        v.extend_from_slice(&d.memory_mib.to_le_bytes());
        v.extend_from_slice(&d.vcpus.to_le_bytes());
        let has_initrd = d.initrd.is_some() as u8;
        v.extend_from_slice(&[action_code(d.on_poweroff), action_code(d.on_reboot), action_code(d.on_crash), has_initrd]);
        v.extend_from_slice(&(d.kernel.len() as u64).to_le_bytes());
        v.extend_from_slice(&d.kernel);
        if let Some(m) = &d.initrd {
            v.extend_from_slice(&(m.len() as u64).to_le_bytes());
            v.extend_from_slice(m);
        }
    }
    v
}

struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// Decode a pack; `None` if it is malformed.
pub fn read(b: &[u8]) -> Option<Pack> {
    let mut r = Rd { b, at: 0 };
    if r.take(8)? != MAGIC {
        return None;
    }
    let count = r.u32()?;
    let run_for_ns = r.u64()?;
    let mut domains = Vec::new();
    for _ in 0..count.min(64) {
        let name = r.str()?;
        let kernel_name = r.str()?;
        let cmdline = r.str()?;
        let memory_mib = r.u64()?;
        let vcpus = r.u32()?;
        let (p, rb, c) = (action_of(r.u8()?)?, action_of(r.u8()?)?, action_of(r.u8()?)?);
        let has_initrd = r.u8()?;
        let n = usize::try_from(r.u64()?).ok()?;
        let elf: Arc<[u8]> = Arc::from(r.take(n)?);
        let mut d = DomainConfig::new(&name, &kernel_name, elf);
        d.initrd = match has_initrd {
            0 => None,
            1 => {
                let n = usize::try_from(r.u64()?).ok()?;
                Some(Arc::from(r.take(n)?))
            }
            _ => return None,
        };
        d.cmdline = cmdline;
        d.memory_mib = memory_mib;
        d.vcpus = vcpus;
        d.on_poweroff = p;
        d.on_reboot = rb;
        d.on_crash = c;
        domains.push(d);
    }
    Some(Pack { run_for_ns, domains })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_round_trip_with_and_without_an_initrd() {
        let mut a = DomainConfig::new("a", "ka", Arc::from(&b"\x7fELF-a"[..]));
        a.cmdline = "console=hvc0".into();
        a.initrd = Some(Arc::from(&b"070701 cpio"[..]));
        let b = DomainConfig::new("b", "kb", Arc::from(&b"\x7fELF-b"[..]));
        let p = read(&write(7, &[a, b])).expect("reads back");
        assert_eq!(p.run_for_ns, 7);
        assert_eq!(p.domains[0].initrd.as_deref(), Some(&b"070701 cpio"[..]));
        assert_eq!(p.domains[0].cmdline, "console=hvc0");
        assert!(p.domains[1].initrd.is_none());
        assert_eq!(&*p.domains[1].kernel, b"\x7fELF-b");
        // A bad initrd flag or a short initrd is refused, not misread.
        let mut bad = write(7, &[DomainConfig::new("c", "kc", Arc::from(&b"k"[..]))]);
        let flag = bad.len() - 1 - 8 - 1; // kernel (1) + its length (8) + the flag byte
        bad[flag] = 2;
        assert!(read(&bad).is_none());
        let mut short = write(7, &[p.domains[0].clone()]);
        short.truncate(short.len() - 2);
        assert!(read(&short).is_none());
    }
}
