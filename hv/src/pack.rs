//! The boot pack: a scenario's domains in one blob, handed to the bootable image as its one PVH
//! module (QEMU passes a single `-initrd` to a PVH kernel). Written by the simulator's CLI,
//! read by the image. Little-endian, no padding requirements:
//!
//! ```text
//! "XLNPACK3"  u32 count  u64 run_for_ns
//! count x { str name, str kernel_name, str cmdline, u64 memory_mib, u32 vcpus,
//!           u8 on_poweroff, u8 on_reboot, u8 on_crash, u8 has_initrd, bytes elf, [bytes initrd],
//!           u16 weight, u16 cap, u8 privileged }
//! u32 steps
//! steps x { u64 at_ns, u8 action, str domain, u8 arg, u8 has_weight, u16 weight, u8 has_cap, u16 cap [, u32 len, bytes: input] }
//! str = u32 len + utf-8;  bytes = u64 len + data
//! ```
//!
//! `run_for_ns` 0: run until no domain is left running. Step actions: 0 pause, 1 unpause,
//! 2 shutdown (arg: 0 poweroff, 1 reboot, 2 suspend, 3 crash, 4 watchdog), 3 destroy,
//! 4 sched-credit, 5 console, 6 input (its bytes follow as u32 length + data) (`driver::StepAction`).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::abi::ShutdownReason;
use crate::domain::{Action, DomainConfig};
use crate::driver::{Step, StepAction};

const MAGIC: &[u8; 8] = b"XLNPACK3";

/// A decoded pack.
pub struct Pack {
    pub run_for_ns: u64,
    pub domains: Vec<DomainConfig>,
    pub steps: Vec<Step>,
}

const REASONS: [ShutdownReason; 5] =
    [ShutdownReason::Poweroff, ShutdownReason::Reboot, ShutdownReason::Suspend, ShutdownReason::Crash, ShutdownReason::Watchdog];

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

/// Encode domains and steps into a pack.
pub fn write(run_for_ns: u64, domains: &[DomainConfig], steps: &[Step]) -> Vec<u8> {
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
        v.extend_from_slice(&d.weight.to_le_bytes());
        v.extend_from_slice(&d.cap.to_le_bytes());
        v.push(d.privileged as u8);
    }
    v.extend_from_slice(&(steps.len() as u32).to_le_bytes());
    for st in steps {
        v.extend_from_slice(&st.at_ns.to_le_bytes());
        let (code, dom, arg, w, c) = match &st.action {
            StepAction::Pause(d) => (0u8, d, 0u8, None, None),
            StepAction::Unpause(d) => (1, d, 0, None, None),
            StepAction::Shutdown { domain, reason } => (2, domain, REASONS.iter().position(|r| r == reason).unwrap_or(0) as u8, None, None),
            StepAction::Destroy(d) => (3, d, 0, None, None),
            StepAction::SchedCredit { domain, weight, cap } => (4, domain, 0, *weight, *cap),
            StepAction::Console(d) => (5, d, 0, None, None),
            StepAction::Input { domain, .. } => (6, domain, 0, None, None),
        };
        v.push(code);
        s(&mut v, dom);
        v.push(arg);
        v.push(w.is_some() as u8);
        v.extend_from_slice(&w.unwrap_or(0).to_le_bytes());
        v.push(c.is_some() as u8);
        v.extend_from_slice(&c.unwrap_or(0).to_le_bytes());
        if let StepAction::Input { bytes, .. } = &st.action {
            v.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            v.extend_from_slice(bytes);
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
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn opt_u16(&mut self) -> Option<Option<u16>> {
        let has = self.u8()?;
        let v = self.u16()?;
        match has {
            0 => Some(None),
            1 => Some(Some(v)),
            _ => None,
        }
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
        d.weight = r.u16()?;
        d.cap = r.u16()?;
        d.privileged = r.u8()? != 0;
        domains.push(d);
    }
    let nsteps = r.u32()?;
    let mut steps = Vec::new();
    for _ in 0..nsteps.min(4096) {
        let at_ns = r.u64()?;
        let code = r.u8()?;
        let dom = r.str()?;
        let arg = r.u8()?;
        let (weight, cap) = (r.opt_u16()?, r.opt_u16()?);
        let action = match code {
            0 => StepAction::Pause(dom),
            1 => StepAction::Unpause(dom),
            2 => StepAction::Shutdown { domain: dom, reason: *REASONS.get(arg as usize)? },
            3 => StepAction::Destroy(dom),
            4 => StepAction::SchedCredit { domain: dom, weight, cap },
            5 => StepAction::Console(dom),
            6 => {
                let n = r.u32()? as usize;
                StepAction::Input { domain: dom, bytes: r.take(n)?.to_vec() }
            }
            _ => return None,
        };
        steps.push(Step { at_ns, action });
    }
    Some(Pack { run_for_ns, domains, steps })
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
        let steps = [
            Step { at_ns: 5, action: StepAction::SchedCredit { domain: "b".into(), weight: Some(64), cap: None } },
            Step { at_ns: 6, action: StepAction::Shutdown { domain: "a".into(), reason: ShutdownReason::Reboot } },
        ];
        let mut a = a;
        a.weight = 512;
        a.cap = 25;
        let p = read(&write(7, &[a, b], &steps)).expect("reads back");
        assert_eq!(p.steps, steps);
        assert_eq!((p.domains[0].weight, p.domains[0].cap), (512, 25));
        assert_eq!(p.run_for_ns, 7);
        assert_eq!(p.domains[0].initrd.as_deref(), Some(&b"070701 cpio"[..]));
        assert_eq!(p.domains[0].cmdline, "console=hvc0");
        assert!(p.domains[1].initrd.is_none());
        assert_eq!(&*p.domains[1].kernel, b"\x7fELF-b");
        // A bad initrd flag or a short initrd is refused, not misread.
        let mut bad = write(7, &[DomainConfig::new("c", "kc", Arc::from(&b"k"[..]))], &[]);
        let flag = bad.len() - 4 - 4 - 1 - 8 - 1; // steps (4), weight+cap (4), kernel (1) + its length (8), the flag
        bad[flag] = 2;
        assert!(read(&bad).is_none());
        let mut short = write(7, &[p.domains[0].clone()], &[]);
        short.truncate(short.len() - 2);
        assert!(read(&short).is_none());
    }
}
