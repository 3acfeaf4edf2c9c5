//! xen_version: every XENVER_* sub-op as Xen 4.17 answers a 64-bit PV domU
//! (xen/common/kernel.c `do_xen_version`, with the XSM dummy policy's `xsm_xen_version`:
//! version, platform_parameters and get_features for anyone; extraversion, compile_info,
//! capabilities, changeset, pagesize and guest_handle allowed to every guest (XSM_HOOK);
//! commandline and build_id privileged (XSM_PRIV), so a domU gets "<denied>" and -EPERM).

use super::Ctx;
use crate::abi::{feat, hypercall::vm_assist as vma, hypercall::xen_version as op, Errno, FeatureInfo, HYPERVISOR_VIRT_START};

/// The Xen version xenolith implements the interface of.
pub const XEN_MAJOR: u32 = 4;
pub const XEN_MINOR: u32 = 17;
/// `.$(XEN_SUBVERSION)$(XEN_VENDORVERSION)`: Xen 4.17.7's subversion with a vendor suffix, as
/// distributions set it (xen/Makefile).
pub const EXTRAVERSION: &str = ".7-xenolith";
/// `xen_deny()` (xen/common/version.c): what a denied string sub-op returns.
pub const DENIED: &str = "<denied>";
/// `arch_get_xen_caps` (xen/arch/x86/setup.c) on a host without HVM and without 32-bit PV
/// (`opt_pv32` off): one "xen-3.0-x86_64 " entry, trailing space included. xenolith runs only
/// 64-bit PV guests.
pub const CAPABILITIES: &str = "xen-3.0-x86_64 ";

/// Sizes of the string buffers (xen-public/version.h).
const EXTRAVERSION_LEN: usize = 16; // xen-public/version.h xen_extraversion_t
const CAPABILITIES_LEN: usize = 1024; // xen-public/version.h xen_capabilities_info_t
const CHANGESET_LEN: usize = 64; // xen-public/version.h xen_changeset_info_t
const HANDLE_LEN: usize = 16; // xen-public/version.h xen_domain_handle_t
/// xen_compile_info {compiler[64], compile_by[16], compile_domain[32], compile_date[32]}.
const COMPILE_INFO: [usize; 4] = [64, 16, 32, 32]; // xen-public/version.h

fn fixed_str(s: &str, len: usize) -> alloc::vec::Vec<u8> {
    // safe_strcpy: at most len - 1 bytes and a NUL, the rest zero (the buffer is memset first).
    let mut v = alloc::vec![0u8; len];
    let n = s.len().min(len - 1);
    v[..n].copy_from_slice(&s.as_bytes()[..n]);
    v
}

/// XENVER_get_features submap 0 for a PV domain (kernel.c): memory_op_vnode_supported always;
/// pae_pgdir_above_4gb only if the guest enabled VMASST_TYPE_pae_extended_cr3 (xl does not for a
/// 64-bit guest: xg_dom_x86.c sets it in the 32-bit vCPU context only); not translated, so
/// neither writable_page_tables nor auto_translated_physmap; not the hardware domain, so no
/// dom0; for PV mmu_pt_update_preserve_ad, highmem_assist and gnttab_map_avail_bits; and
/// direct_mapped (not translated).
pub fn features(vm_assist: u64) -> u32 {
    let mut f = (1 << feat::MEMORY_OP_VNODE_SUPPORTED)
        | (1 << feat::MMU_PT_UPDATE_PRESERVE_AD)
        | (1 << feat::HIGHMEM_ASSIST)
        | (1 << feat::GNTTAB_MAP_AVAIL_BITS)
        | (1 << feat::DIRECT_MAPPED);
    if vm_assist & (1 << vma::TYPE_PAE_EXTENDED_CR3) != 0 {
        f |= 1 << feat::PAE_PGDIR_ABOVE_4GB;
    }
    f
}

pub fn xen_version(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    // do_xen_version takes `int cmd`: the low 32 bits.
    let (cmd, arg) = (a[0] as u32 as u64, a[1]);
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
        op::BUILD_ID => "build_id",
        _ => "",
    };
    ctx.describe(|d| *d = if name.is_empty() { alloc::format!("xen_version({})", a[0]) } else { alloc::format!("xen_version({name})") });
    match cmd {
        op::VERSION => Ok(((XEN_MAJOR << 16) | XEN_MINOR) as i64),
        op::EXTRAVERSION => ctx.copy_to_guest(arg, &fixed_str(EXTRAVERSION, EXTRAVERSION_LEN)).map(|_| 0),
        op::COMPILE_INFO => {
            let mut v = fixed_str("rustc", COMPILE_INFO[0]);
            v.extend(fixed_str("xenolith", COMPILE_INFO[1]));
            v.extend(fixed_str("xenolith", COMPILE_INFO[2]));
            v.extend(fixed_str("reproducible", COMPILE_INFO[3]));
            ctx.copy_to_guest(arg, &v).map(|_| 0)
        }
        op::CAPABILITIES => ctx.copy_to_guest(arg, &fixed_str(CAPABILITIES, CAPABILITIES_LEN)).map(|_| 0),
        op::CHANGESET => ctx.copy_to_guest(arg, &fixed_str("xenolith", CHANGESET_LEN)).map(|_| 0),
        op::PLATFORM_PARAMETERS => ctx.write_guest(arg, &HYPERVISOR_VIRT_START).map(|_| 0),
        op::GET_FEATURES => {
            let mut fi: FeatureInfo = ctx.read_guest(arg)?;
            fi.submap = match fi.submap_idx {
                0 => features(ctx.domain_ref().vm_assist),
                _ => return Err(Errno::EINVAL),
            };
            ctx.annotate(|n| *n = alloc::format!("submap {:#x}", fi.submap));
            ctx.write_guest(arg, &fi).map(|_| 0)
        }
        // A non-null argument is -EINVAL.
        op::PAGESIZE => {
            if arg != 0 {
                Err(Errno::EINVAL)
            } else {
                Ok(4096)
            }
        }
        // The domain handle (its UUID): xl gives every domain a random one; xenolith's domains
        // have none (all zero), like a domain created without one.
        op::GUEST_HANDLE => ctx.copy_to_guest(arg, &[0u8; HANDLE_LEN]).map(|_| 0),
        // Denied: "<denied>" and its NUL, strlen(xen_deny()) + 1 bytes, nothing more.
        op::COMMANDLINE => {
            let mut v = alloc::vec::Vec::from(DENIED.as_bytes());
            v.push(0);
            ctx.copy_to_guest(arg, &v).map(|_| 0)
        }
        op::BUILD_ID => Err(Errno::EPERM),
        _ => Err(Errno::ENOSYS),
    }
}
