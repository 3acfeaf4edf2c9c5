//! xen_version: xenolith presents itself as Xen 4.17 with a "-xenolith" extraversion.

use super::Ctx;
use crate::abi::{feat, hypercall::xen_version as op, Errno, FeatureInfo, HYPERVISOR_VIRT_START};

/// The Xen version xenolith implements the interface of.
pub const XEN_MAJOR: u32 = 4;
pub const XEN_MINOR: u32 = 17;
pub const EXTRAVERSION: &str = ".0-xenolith";

fn fixed_str(s: &str, len: usize) -> alloc::vec::Vec<u8> {
    let mut v = alloc::vec![0u8; len];
    let n = s.len().min(len - 1);
    v[..n].copy_from_slice(&s.as_bytes()[..n]);
    v
}

pub fn xen_version(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (a[0], a[1]);
    let name = match cmd {
        op::VERSION => "version",
        op::EXTRAVERSION => "extraversion",
        op::COMPILE_INFO => "compile_info",
        op::CAPABILITIES => "capabilities",
        op::CHANGESET => "changeset",
        op::PLATFORM_PARAMETERS => "platform_parameters",
        op::GET_FEATURES => "get_features",
        op::PAGESIZE => "pagesize",
        op::GUEST_HANDLE => "guest_handle",
        op::COMMANDLINE => "commandline",
        _ => "",
    };
    ctx.describe(|d| {
        *d = if name.is_empty() { alloc::format!("xen_version({cmd})") } else { alloc::format!("xen_version({name})") }
    });
    match cmd {
        op::VERSION => Ok(((XEN_MAJOR << 16) | XEN_MINOR) as i64),
        op::EXTRAVERSION => ctx.copy_to_guest(arg, &fixed_str(EXTRAVERSION, 16)).map(|_| 0),
        op::COMPILE_INFO => {
            let mut v = fixed_str("rustc", 64);
            v.extend(fixed_str("xenolith", 16));
            v.extend(fixed_str("xenolith", 32));
            v.extend(fixed_str("reproducible", 32));
            ctx.copy_to_guest(arg, &v).map(|_| 0)
        }
        op::CAPABILITIES => ctx.copy_to_guest(arg, &fixed_str("xen-3.0-x86_64", 1024)).map(|_| 0),
        op::CHANGESET => ctx.copy_to_guest(arg, &fixed_str("xenolith", 64)).map(|_| 0),
        op::PLATFORM_PARAMETERS => ctx.write_guest(arg, &HYPERVISOR_VIRT_START).map(|_| 0),
        op::GET_FEATURES => {
            let mut fi: FeatureInfo = ctx.read_guest(arg)?;
            fi.submap = match fi.submap_idx {
                0 => 1 << feat::PAE_PGDIR_ABOVE_4GB,
                _ => 0,
            };
            ctx.write_guest(arg, &fi).map(|_| 0)
        }
        op::PAGESIZE => Ok(4096),
        op::GUEST_HANDLE => ctx.copy_to_guest(arg, &[0u8; 16]).map(|_| 0),
        op::COMMANDLINE => ctx.copy_to_guest(arg, &[0u8; 1024]).map(|_| 0),
        _ => Err(Errno::ENOSYS),
    }
}
