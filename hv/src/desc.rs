//! Guest descriptor tables: Xen's `check_descriptor`, descriptor-page types, the guest GDT
//! (`set_gdt`, `update_descriptor`, VCPUOP_initialise) and the checks that make it safe for the
//! CPU to use the guest's selectors (Xen 4.17: xen/arch/x86/pv/descriptor-tables.c).
//!
//! A frame a vCPU uses as a GDT page has the descriptor-page type ([`PageType::SegDesc`], Xen's
//! PGT_seg_desc_page): every one of its 512 descriptors passed `check_descriptor` (and was fixed
//! up in place) when it took the type, it cannot be mapped writable, and `update_descriptor` is
//! the only way to change it. The platform copies the guest's descriptors into the CPU's GDT
//! below Xen's reserved entries ([`GuestGdt`]).

use alloc::string::String;

use crate::abi::{self, Errno, FIRST_RESERVED_GDT_ENTRY};
use crate::domain::Vcpu;
use crate::mm::frames::{FrameTable, Owner, PageType};
use crate::mm::{MachineMemory, Mfn};
use crate::platform::{CpuState, GuestGdt};
use crate::DomId;

/// Descriptor bits (high dword), as Xen's `_SEGMENT_*` (xen/arch/x86/include/asm/desc.h).
const SEG_TYPE: u32 = 0xf << 8;
const SEG_S: u32 = 1 << 12;
const SEG_DPL: u32 = 3 << 13;
const SEG_P: u32 = 1 << 15;
const SEG_L: u32 = 1 << 21;
const SEG_DB: u32 = 1 << 22;

/// Guest GDT pages: `FIRST_RESERVED_GDT_PAGE` in xen-public/arch-x86/xen.h.
pub const GDT_FRAMES: usize = 14;

/// Xen's `check_descriptor` for a 64-bit PV domain (pv/descriptor-tables.c): the descriptor as
/// Xen stores it, or `None` when Xen refuses it. Not-present descriptors and type 0 (the upper
/// half of a call gate) pass unchanged; code and data segments get their DPL raised to the guest
/// kernel's RPL (3 for 64-bit PV, `__fixup_guest_selector`); call gates must target an
/// acceptable selector and get DPL 0, the original DPL kept in the target selector's RPL;
/// everything else is refused.
pub fn check_descriptor(d: u64) -> Option<u64> {
    let (mut a, mut b) = (d as u32, (d >> 32) as u32);
    if b & SEG_P == 0 {
        return Some(d);
    }
    let mut dpl = (b >> 13) & 3;
    if dpl < 3 {
        dpl = 3;
    }
    b = (b & !SEG_DPL) | (dpl << 13);
    if b & SEG_S == 0 {
        if b & SEG_TYPE == 0 {
            return Some(d);
        }
        // Only a (64-bit) call gate is kept.
        if b & SEG_TYPE != 0xc00 {
            return None;
        }
        let cs = a >> 16;
        // guest_gate_selector_okay: a guest GDT selector, Xen's flat kernel CS, or an LDT one.
        let ok = ((cs >> 3) as usize) < FIRST_RESERVED_GDT_ENTRY || cs == abi::FLAT_KERNEL_CS as u32 || cs & 4 != 0;
        if !ok {
            return None;
        }
        b &= !SEG_DPL;
        let cs = (cs & !3) | dpl;
        a = (a & 0xffff) | (cs << 16);
        // Reserved bits (64-bit gate: the low byte of the high dword) must be zero.
        if b & 0xff != 0 {
            return None;
        }
    }
    Some(((b as u64) << 32) | a as u64)
}

/// Take a descriptor-page type reference on `mfn` for domain `dom`: Xen's
/// `get_page_and_type(page, d, PGT_seg_desc_page)`. The first reference validates (and fixes up)
/// all 512 descriptors; a frame with another type, or mapped writable, is refused.
pub fn get_segdesc(frames: &mut FrameTable, mem: &mut MachineMemory<'_>, dom: DomId, mfn: Mfn) -> Result<(), Errno> {
    let f = *frames.get(mfn).ok_or(Errno::EINVAL)?;
    if f.owner != Owner::Dom(dom) {
        return Err(Errno::EINVAL);
    }
    match f.ty {
        PageType::SegDesc => {}
        PageType::PageTable(_) => return Err(Errno::EINVAL),
        PageType::None => {
            if f.writable_refs != 0 {
                return Err(Errno::EINVAL);
            }
            // validate_segdesc_page: all or nothing.
            let mut fixed = [0u64; 512];
            for (i, slot) in fixed.iter_mut().enumerate() {
                let d = mem.read_u64(mfn.maddr().add(i as u64 * 8)).ok_or(Errno::EINVAL)?;
                *slot = check_descriptor(d).ok_or(Errno::EINVAL)?;
            }
            for (i, d) in fixed.iter().enumerate() {
                mem.write_u64(mfn.maddr().add(i as u64 * 8), *d).ok_or(Errno::EINVAL)?;
            }
            let fm = frames.get_mut(mfn).ok_or(Errno::EINVAL)?;
            fm.ty = PageType::SegDesc;
            fm.type_refs = 0;
        }
    }
    if let Some(fm) = frames.get_mut(mfn) {
        fm.type_refs += 1;
    }
    Ok(())
}

/// Drop a descriptor-page type reference; the last one makes the frame ordinary memory again.
pub fn put_segdesc(frames: &mut FrameTable, mfn: Mfn) {
    if let Some(f) = frames.get_mut(mfn) {
        if f.ty == PageType::SegDesc {
            f.type_refs = f.type_refs.saturating_sub(1);
            if f.type_refs == 0 {
                f.ty = PageType::None;
            }
        }
    }
}

/// Tear down a vCPU's GDT (Xen's `pv_destroy_gdt`): drop its frames' types.
pub fn destroy_gdt(frames: &mut FrameTable, v: &mut Vcpu) {
    for m in core::mem::take(&mut v.gdt_frames) {
        put_segdesc(frames, m);
    }
    v.gdt_entries = 0;
    sync_cpu_gdt(v);
}

/// Install a new GDT on a vCPU (Xen's `pv_set_gdt`): `entries` descriptors in `list` (one frame
/// per 512). -EINVAL when there are too many entries or a frame cannot take the descriptor type;
/// the old GDT is kept then.
pub fn set_gdt(
    frames: &mut FrameTable,
    mem: &mut MachineMemory<'_>,
    dom: DomId,
    v: &mut Vcpu,
    list: &[u64],
    entries: u64,
) -> Result<(), Errno> {
    if entries > FIRST_RESERVED_GDT_ENTRY as u64 {
        return Err(Errno::EINVAL);
    }
    let nr = entries.div_ceil(512) as usize;
    if list.len() < nr {
        return Err(Errno::EINVAL);
    }
    for i in 0..nr {
        if let Err(e) = get_segdesc(frames, mem, dom, Mfn(list[i])) {
            for &m in &list[..i] {
                put_segdesc(frames, Mfn(m));
            }
            return Err(e);
        }
    }
    destroy_gdt(frames, v);
    v.gdt_frames = list[..nr].iter().map(|&m| Mfn(m)).collect();
    v.gdt_entries = entries as u32;
    sync_cpu_gdt(v);
    Ok(())
}

/// MMUEXT_SET_LDT once its arguments passed (Xen's do_mmuext_op): the vCPU's LDT is `ents`
/// descriptors at linear `base` (base 0 when there are none).
///
/// Not done: Xen maps the LDT's pages lazily, on the guest's first use of an LDT selector
/// (a #PF in the per-vCPU LDT area: pv_map_ldt_shadow_page), typing each as a descriptor page.
/// xenolith does not load a guest LDT into the CPU, so an LDT selector faults (#GP) as with an
/// empty LDT.
pub fn set_ldt(v: &mut Vcpu, base: u64, ents: u64) {
    v.op.ldt_base = if ents != 0 { base } else { 0 };
    v.op.ldt_ents = ents;
}

/// Mirror the vCPU's GDT into the state the platform sees, with a new version.
pub fn sync_cpu_gdt(v: &mut Vcpu) {
    let mut g = GuestGdt { version: v.cpu.gdt.version.wrapping_add(1), entries: v.gdt_entries, ..Default::default() };
    for (i, m) in v.gdt_frames.iter().take(GDT_FRAMES).enumerate() {
        g.frames[i] = m.0;
    }
    v.cpu.gdt = g;
}

/// A descriptor of the guest GDT changed: every vCPU of the domain using `mfn` reloads.
pub fn frame_changed(vcpus: &mut [Vcpu], mfn: Mfn) {
    for v in vcpus.iter_mut().filter(|v| v.gdt_frames.contains(&mfn)) {
        v.cpu.gdt.version = v.cpu.gdt.version.wrapping_add(1);
    }
}

/// The descriptor the CPU would load for `sel` from the guest's GDT (`None` for an LDT selector,
/// one beyond the guest's GDT, or Xen's reserved area).
fn guest_desc(mem: &MachineMemory<'_>, gdt: &GuestGdt, sel: u16) -> Option<u64> {
    if sel & 4 != 0 {
        return None;
    }
    mem.read_u64(crate::mm::Maddr(gdt.desc_maddr((sel >> 3) as usize)?))
}

/// Is `sel` a code selector a return to guest ring 3 can load: Xen's flat ones, or a present
/// DPL-3 code segment of the guest's GDT (64-bit, or compatibility mode)?
fn code_ok(mem: &MachineMemory<'_>, gdt: &GuestGdt, sel: u16) -> bool {
    if sel == abi::FLAT_RING3_CS64 || sel == abi::FLAT_RING3_CS32 {
        return true;
    }
    let Some(d) = guest_desc(mem, gdt, sel) else { return false };
    let b = (d >> 32) as u32;
    // Present, S, code (type bit 3), DPL 3 (all guest descriptors are after check_descriptor),
    // not both L and D (reserved combination).
    sel & 3 == 3 && b & SEG_P != 0 && b & SEG_S != 0 && b & (1 << 11) != 0 && (b >> 13) & 3 == 3 && !(b & SEG_L != 0 && b & SEG_DB != 0)
}

/// Is `sel` a stack selector a return to ring 3 can load: Xen's flat one, or a present, writable
/// DPL-3 data segment of the guest's GDT?
fn stack_ok(mem: &MachineMemory<'_>, gdt: &GuestGdt, sel: u16) -> bool {
    if sel == abi::FLAT_RING3_DS32 {
        return true;
    }
    let Some(d) = guest_desc(mem, gdt, sel) else { return false };
    let b = (d >> 32) as u32;
    sel & 3 == 3 && b & SEG_P != 0 && b & SEG_S != 0 && b & (1 << 11) == 0 && b & (1 << 9) != 0 && (b >> 13) & 3 == 3
}

/// Why the CPU would refuse to enter the guest with this context, if it would: the return to
/// ring 3 (`iretq`) checks the code and stack selectors against the GDT the platform loads (Xen's
/// flat selectors and the guest's own GDT) and that `rip` is canonical; a refusal there would
/// fault in the hypervisor. (Xen turns such a fault into the guest's failsafe callback; xenolith
/// crashes the domain.)
///
/// It also refuses a GDT whose frames are no longer the domain's descriptor pages (a frame the
/// domain gave back while its GDT used it, which Xen's page references make impossible): the
/// platform must never copy another owner's memory into the CPU's GDT.
pub fn entry_problem(mem: &MachineMemory<'_>, frames: &FrameTable, dom: DomId, cpu: &CpuState) -> Option<String> {
    let nr = (cpu.gdt.entries as usize).div_ceil(512).min(GDT_FRAMES);
    for &m in &cpu.gdt.frames[..nr] {
        // (No frame number in the message: traces name no machine frames.)
        match frames.get(Mfn(m)) {
            Some(f) if f.owner == Owner::Dom(dom) && f.ty == PageType::SegDesc && f.type_refs > 0 => {}
            _ => return Some(String::from("a frame of its GDT is no longer one of its descriptor pages")),
        }
    }
    if !code_ok(mem, &cpu.gdt, cpu.cs) {
        return Some(alloc::format!(
            "code selector {:#x} is not a flat ring-3 selector nor a usable code segment of the guest's GDT",
            cpu.cs
        ));
    }
    if !stack_ok(mem, &cpu.gdt, cpu.ss) {
        return Some(alloc::format!(
            "stack selector {:#x} is not a flat ring-3 selector nor a usable data segment of the guest's GDT",
            cpu.ss
        ));
    }
    if !crate::mm::paging::is_canonical(cpu.rip) {
        return Some(alloc::format!("rip {:#x} is not canonical", cpu.rip));
    }
    None
}
