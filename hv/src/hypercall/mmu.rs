//! mmu_update, update_va_mapping and mmuext_op: every guest page-table change goes through the
//! page-type rules of `mm::pagetable`.

use alloc::string::String;

use super::Ctx;
use crate::abi::hypercall::{mmu, mmuext as op, uvmf};
use crate::abi::{Errno, MmuUpdate, MmuextOp, DOMID_SELF};
use crate::mm::frames::{Owner, PageType};
use crate::mm::paging::{self, pte_mfn, PTE_NX, PTE_P, PTE_RW};
use crate::mm::pagetable::PtCtx;
use crate::mm::{Maddr, Mfn, PAGE_SIZE};

/// Upper bound on requests per call (Xen would preempt; we refuse absurd counts).
const MAX_BATCH: u64 = 1 << 16;

fn pt<'c, 'a, 'm>(ctx: &'c mut Ctx<'a, 'm>) -> PtCtx<'c, 'm> {
    PtCtx { frames: ctx.frames, mem: &mut ctx.mem, dom: ctx.dom, xen_slots: &ctx.xen.slots }
}

/// The page-table context of the calling domain (for other hypercall families).
pub(crate) fn pt_ctx<'c, 'a, 'm>(ctx: &'c mut Ctx<'a, 'm>) -> PtCtx<'c, 'm> {
    pt(ctx)
}

/// Name a machine frame for traces without machine addresses, so that traces do not depend on
/// where a platform placed the domain: `pfn 0x9` (own), `d2 pfn 0x0`, `shared_info`, `xen`,
/// `free`, or the raw number when no such frame exists. The pfn is the one the builder gave
/// the frame, whatever the guest later wrote into the M2P.
pub fn frame_name(ctx: &Ctx<'_, '_>, mfn: Mfn) -> String {
    let Some(f) = ctx.frames.get(mfn) else { return alloc::format!("mfn {:#x}", mfn.0) };
    match f.owner {
        Owner::Xen => "a xen frame".into(),
        Owner::Free => "a free frame".into(),
        Owner::Dom(d) => {
            // The builder's pfn, not the M2P's: the guest may rewrite its M2P entries.
            let pfn = f.pfn;
            let who = if d == ctx.dom { String::new() } else { alloc::format!("d{d} ") };
            if pfn == crate::mm::frames::NO_PFN {
                let shared = ctx.doms.get(&d).is_some_and(|dd| dd.shared_info == mfn);
                alloc::format!("{who}{}", if shared { "shared_info" } else { "an unmapped frame" })
            } else {
                alloc::format!("{who}pfn {pfn:#x}")
            }
        }
    }
}

/// Describe who owns a frame, for trace notes.
pub fn owner_note(ctx: &Ctx<'_, '_>, mfn: Mfn) -> String {
    let name = frame_name(ctx, mfn);
    match ctx.frames.get(mfn) {
        None => alloc::format!("{name} does not exist"),
        Some(f) => match (f.owner, f.ty) {
            (Owner::Dom(d), _) if d != ctx.dom => alloc::format!("{name} is owned by d{d}"),
            (Owner::Xen, _) | (Owner::Free, _) => alloc::format!("{name} is not the domain's"),
            (_, PageType::PageTable(l)) => alloc::format!("{name} is an L{l} page table"),
            (_, PageType::SegDesc) => alloc::format!("{name} is a descriptor-table page"),
            (_, PageType::None) => name,
        },
    }
}

fn check_foreign(ctx: &Ctx<'_, '_>, foreigndom: u64) -> Result<(), Errno> {
    let fd = foreigndom & 0xffff;
    if fd == DOMID_SELF as u64 || fd == ctx.dom as u64 {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

pub fn mmu_update(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (reqs, count, done_ptr, foreign) = (a[0], a[1], a[2], a[3]);
    ctx.describe(|d| *d = alloc::format!("mmu_update({count} req{})", if count == 1 { "" } else { "s" }));
    check_foreign(ctx, foreign)?;
    if count > MAX_BATCH {
        return Err(Errno::EINVAL);
    }
    let mut done = 0u64;
    let mut result = Ok(0);
    for i in 0..count {
        let r: MmuUpdate = match ctx.read_guest(reqs.wrapping_add(i * 16)) {
            Ok(r) => r,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let res = match r.ptr & mmu::CMD_MASK {
            mmu::NORMAL_PT_UPDATE => pt(ctx).update_entry(Maddr(r.ptr & !mmu::CMD_MASK), r.val),
            mmu::MACHPHYS_UPDATE => {
                let mfn = Mfn(r.ptr >> 12);
                match ctx.frames.owner(mfn) {
                    None => Err(Errno::EINVAL),
                    Some(Owner::Dom(d)) if d == ctx.dom => {
                        let m2p = ctx.xen.m2p.maddr().add(mfn.0 * 8);
                        ctx.mem.write_u64(m2p, r.val).ok_or(Errno::EINVAL)
                    }
                    Some(_) => Err(Errno::EPERM),
                }
            }
            _ => Err(Errno::EINVAL),
        };
        if let Err(e) = res {
            let note = if r.val & PTE_P != 0 && r.ptr & mmu::CMD_MASK == mmu::NORMAL_PT_UPDATE {
                let table_note = owner_note(ctx, Mfn(r.ptr >> 12));
                let target = owner_note(ctx, pte_mfn(r.val));
                alloc::format!("req {i}: ptr in {table_note}, maps {target}")
            } else {
                alloc::format!("req {i}: ptr {:#x}", r.ptr)
            };
            ctx.annotate(|n| n.push_str(&note));
            result = Err(e);
            break;
        }
        done += 1;
    }
    if done > 0 {
        ctx.fx.flush_tlb = true;
    }
    if done_ptr != 0 {
        ctx.write_guest(done_ptr, &(done as u32))?;
    }
    result
}

pub fn update_va_mapping(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (va, val, flags) = (a[0], a[1], a[2]);
    let target = if ctx.tracing && val & PTE_P != 0 { frame_name(ctx, pte_mfn(val)) } else { String::new() };
    ctx.describe(|d| {
        *d = if val & PTE_P != 0 {
            alloc::format!(
                "update_va_mapping({va:#x}, {target}{}{})",
                if val & PTE_RW != 0 { " rw" } else { " ro" },
                if val & PTE_NX != 0 { " nx" } else { "" }
            )
        } else {
            alloc::format!("update_va_mapping({va:#x}, not present)")
        }
    });
    if paging::in_xen_range(va) || !paging::is_canonical(va) {
        return Err(Errno::EINVAL);
    }
    let _ = flags & uvmf::FLUSHTYPE_MASK; // every successful update flushes (see below)
    let l4 = Mfn(ctx.cur_ref().cpu.cr3 >> 12);
    let l1e = paging::l1e_of(&ctx.mem, l4, va).ok_or(Errno::EINVAL)?;
    if let Err(e) = pt(ctx).update_entry(l1e, val) {
        if val & PTE_P != 0 {
            let note = owner_note(ctx, pte_mfn(val));
            ctx.annotate(|n| n.push_str(&note));
        }
        return Err(e);
    }
    ctx.fx.flush_tlb = true;
    Ok(0)
}

fn mmuext_name(cmd: u32) -> Option<&'static str> {
    Some(match cmd {
        op::PIN_L1_TABLE => "pin_l1",
        op::PIN_L2_TABLE => "pin_l2",
        op::PIN_L3_TABLE => "pin_l3",
        op::PIN_L4_TABLE => "pin_l4",
        op::UNPIN_TABLE => "unpin",
        op::NEW_BASEPTR => "new_baseptr",
        op::TLB_FLUSH_LOCAL => "tlb_flush_local",
        op::INVLPG_LOCAL => "invlpg_local",
        op::TLB_FLUSH_MULTI => "tlb_flush_multi",
        op::INVLPG_MULTI => "invlpg_multi",
        op::TLB_FLUSH_ALL => "tlb_flush_all",
        op::INVLPG_ALL => "invlpg_all",
        op::FLUSH_CACHE => "flush_cache",
        op::SET_LDT => "set_ldt",
        op::NEW_USER_BASEPTR => "new_user_baseptr",
        op::CLEAR_PAGE => "clear_page",
        op::COPY_PAGE => "copy_page",
        _ => return None,
    })
}

fn owned_plain(ctx: &Ctx<'_, '_>, mfn: Mfn) -> Result<(), Errno> {
    match ctx.frames.get(mfn) {
        None => Err(Errno::EINVAL),
        Some(f) if f.owner != Owner::Dom(ctx.dom) => Err(Errno::EPERM),
        Some(f) if f.ty != PageType::None => Err(Errno::EPERM),
        Some(_) => Ok(()),
    }
}

/// Make `mfn` the current vCPU's kernel base pointer (MMUEXT_NEW_BASEPTR, and a guest's
/// `mov %reg, %cr3` emulated): Xen's `new_guest_cr3`.
pub fn new_guest_cr3(ctx: &mut Ctx<'_, '_>, mfn: Mfn) -> Result<(), Errno> {
    pt(ctx).get_type(mfn, 4)?;
    // The old base keeps its reference until the platform has left it (see
    // `Effects::release_tables`): dropping it here could devalidate the very table the
    // hypervisor is running on (Xen's new_guest_cr3 also switches before the put).
    let old = ctx.cur_ref().guest_table;
    ctx.fx.release_tables.push(old);
    let v = ctx.cur();
    v.guest_table = mfn;
    if v.kernel_mode {
        v.cpu.cr3 = mfn.maddr().0;
    }
    ctx.fx.flush_tlb = true;
    Ok(())
}

fn one_mmuext(ctx: &mut Ctx<'_, '_>, o: &MmuextOp) -> Result<(), Errno> {
    let mfn = Mfn(o.arg1);
    match o.cmd {
        op::PIN_L1_TABLE..=op::PIN_L4_TABLE => pt(ctx).pin(mfn, (o.cmd + 1) as u8),
        op::UNPIN_TABLE => pt(ctx).unpin(mfn),
        op::NEW_BASEPTR => new_guest_cr3(ctx, mfn),
        op::NEW_USER_BASEPTR => {
            if o.arg1 != 0 {
                pt(ctx).get_type(mfn, 4)?;
            }
            if let Some(old) = ctx.cur_ref().guest_table_user {
                ctx.fx.release_tables.push(old);
            }
            let v = ctx.cur();
            v.guest_table_user = (o.arg1 != 0).then_some(mfn);
            if !v.kernel_mode {
                v.cpu.cr3 = o.arg1 << 12;
            }
            ctx.fx.flush_tlb = true;
            Ok(())
        }
        op::TLB_FLUSH_LOCAL | op::TLB_FLUSH_MULTI | op::TLB_FLUSH_ALL | op::FLUSH_CACHE => {
            ctx.fx.flush_tlb = true;
            Ok(())
        }
        op::INVLPG_LOCAL | op::INVLPG_MULTI | op::INVLPG_ALL => {
            if !paging::is_canonical(o.arg1) {
                return Err(Errno::EINVAL);
            }
            ctx.fx.flush_tlb = true;
            Ok(())
        }
        op::SET_LDT => {
            let (base, ents) = (o.arg1, o.arg2);
            if ents > 8192 || base & (PAGE_SIZE - 1) != 0 || (ents != 0 && paging::in_xen_range(base)) {
                return Err(Errno::EINVAL);
            }
            crate::desc::set_ldt(ctx.cur(), base, ents);
            Ok(())
        }
        op::CLEAR_PAGE => {
            owned_plain(ctx, mfn)?;
            ctx.mem.zero_frame(mfn).ok_or(Errno::EINVAL)
        }
        op::COPY_PAGE => {
            let src = Mfn(o.arg2);
            owned_plain(ctx, mfn)?;
            match ctx.frames.owner(src) {
                Some(Owner::Dom(d)) if d == ctx.dom => {}
                None => return Err(Errno::EINVAL),
                Some(_) => return Err(Errno::EPERM),
            }
            let mut buf = [0u8; PAGE_SIZE as usize];
            ctx.mem.read(src.maddr(), &mut buf).ok_or(Errno::EINVAL)?;
            ctx.mem.write(mfn.maddr(), &buf).ok_or(Errno::EINVAL)
        }
        _ => Err(Errno::ENOSYS),
    }
}

pub fn mmuext_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (ops, count, done_ptr, foreign) = (a[0], a[1], a[2], a[3]);
    ctx.describe(|d| *d = alloc::format!("mmuext_op({count} op{})", if count == 1 { "" } else { "s" }));
    check_foreign(ctx, foreign)?;
    if count > MAX_BATCH {
        return Err(Errno::EINVAL);
    }
    let mut done = 0u64;
    let mut result = Ok(0);
    let mut names = String::new();
    for i in 0..count {
        let o: MmuextOp = match ctx.read_guest(ops.wrapping_add(i * 24)) {
            Ok(o) => o,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        if ctx.tracing && i < 4 {
            let n = mmuext_name(o.cmd).map(String::from).unwrap_or_else(|| alloc::format!("cmd{}", o.cmd));
            if !names.is_empty() {
                names.push_str(", ");
            }
            names.push_str(&n);
        }
        if let Err(e) = one_mmuext(ctx, &o) {
            let note = if matches!(o.cmd, op::PIN_L1_TABLE..=op::NEW_BASEPTR | op::NEW_USER_BASEPTR) {
                owner_note(ctx, Mfn(o.arg1))
            } else {
                String::new()
            };
            ctx.annotate(|n| n.push_str(&note));
            result = Err(e);
            break;
        }
        done += 1;
    }
    if count <= 4 {
        ctx.describe(|d| *d = alloc::format!("mmuext_op({names})"));
    }
    if done_ptr != 0 {
        ctx.write_guest(done_ptr, &(done as u32))?;
    }
    result
}
