//! mmu_update, update_va_mapping and mmuext_op: every guest page-table change goes through the
//! page-type rules of `mm::pagetable`.

use alloc::string::String;

use super::Ctx;
use crate::abi::hypercall::{mmu, mmuext as op, uvmf};
use crate::abi::{Errno, MmuUpdate, MmuextOp, DOMID_SELF};
use crate::mm::frames::{Owner, PageType};
use crate::mm::pagetable::PtCtx;
use crate::mm::paging::{self, pte_mfn, PTE_NX, PTE_P, PTE_RW};
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

/// Xen's `get_pg_owner` then `xsm_mmu_update`/`xsm_mmuext_op(XSM_TARGET)` for an unprivileged
/// caller (xen/arch/x86/mm.c): DOMID_SELF is the caller; the caller's own id ("Cannot specify
/// itself as foreign domain") or a domain that does not exist is -ESRCH; DOMID_IO, DOMID_XEN or
/// another domain is not the caller's to change: -EPERM.
fn check_foreign(ctx: &Ctx<'_, '_>, foreigndom: u64) -> Result<(), Errno> {
    use crate::abi::control::{DOMID_IO, DOMID_XEN};
    let fd = (foreigndom & 0xffff) as u16;
    if fd == DOMID_SELF {
        Ok(())
    } else if fd == ctx.dom {
        Err(Errno::ESRCH)
    } else if fd == DOMID_IO || fd == DOMID_XEN || ctx.doms.contains_key(&fd) {
        Err(Errno::EPERM)
    } else {
        Err(Errno::ESRCH)
    }
}

/// `guest_handle_okay(h, count)` on 64-bit PV (asm/uaccess.h `array_access_ok`): the start is a
/// guest address and the count fits in 32 bits.
fn handle_okay(va: u64, count: u64) -> bool {
    count >> 32 == 0 && (va < (1 << 47) || va >= crate::abi::HYPERVISOR_VIRT_END)
}

/// `MMU_UPDATE_PREEMPTED` (xen/arch/x86/include/asm/mm.h): the top bit of a 32-bit `count`
/// marks a continuation; `count == MMU_UPDATE_PREEMPTED` with a null list returns `foreigndom`.
const MMU_UPDATE_PREEMPTED: u32 = 1 << 31;

/// The common head of do_mmu_update and do_mmuext_op: the 32-bit `count` with its continuation
/// bit, and the `done` count a continuation carries in `*pdone`. `Err` is the call's result.
fn batch_head(ctx: &Ctx<'_, '_>, list: u64, count: u64, pdone: u64, foreign: u64) -> Result<(u64, u32), Result<i64, Errno>> {
    let count = count as u32;
    if count == MMU_UPDATE_PREEMPTED && list == 0 {
        return Err(Ok(foreign as u32 as i32 as i64));
    }
    let mut done = 0u32;
    let count = if count & MMU_UPDATE_PREEMPTED != 0 {
        if pdone != 0 {
            done = ctx.read_guest(pdone).unwrap_or(0);
        }
        count & !MMU_UPDATE_PREEMPTED
    } else {
        count
    };
    if !handle_okay(list, count as u64) {
        return Err(Err(Errno::EFAULT));
    }
    Ok((count as u64, done))
}

/// The foreign page-table owner of mmu_update (`foreigndom >> 16`, the owner's id plus one):
/// a domain that does not exist is -ESRCH; the caller's own is the caller.
fn pt_owner(ctx: &Ctx<'_, '_>, foreigndom: u64) -> Result<bool, Errno> {
    let pt_dom = (foreigndom as u32) >> 16;
    if pt_dom == 0 {
        return Ok(false);
    }
    let id = (pt_dom - 1) as u16;
    if pt_dom - 1 > u16::MAX as u32 || !ctx.doms.contains_key(&id) {
        return Err(Errno::ESRCH);
    }
    Ok(id != ctx.dom)
}

pub fn mmu_update(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (reqs, done_ptr, foreign) = (a[0], a[2], a[3]);
    let count = a[1] as u32 as u64 & !(MMU_UPDATE_PREEMPTED as u64);
    ctx.describe(|d| *d = alloc::format!("mmu_update({count} req{})", if count == 1 { "" } else { "s" }));
    let (count, done0) = match batch_head(ctx, reqs, a[1], done_ptr, foreign) {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Xen's order: the page-table owner (-ESRCH, returned at once), the page owner (-ESRCH, with
    // *pdone written), then, at each request, xsm_mmu_update refuses a foreign owner (-EPERM).
    let foreign_pt = pt_owner(ctx, foreign)?;
    let pg = check_foreign(ctx, foreign);
    if pg == Err(Errno::ESRCH) {
        if done_ptr != 0 {
            let _ = ctx.write_guest(done_ptr, &done0);
        }
        return Err(Errno::ESRCH);
    }
    if count > MAX_BATCH {
        return Err(Errno::EINVAL);
    }
    let mut done = 0u64;
    let mut result = Ok(0);
    for i in 0..count {
        if foreign_pt || pg.is_err() {
            ctx.annotate(|n| n.push_str("foreign domain"));
            result = Err(Errno::EPERM);
            break;
        }
        let r: MmuUpdate = match ctx.read_guest(reqs.wrapping_add(i * 16)) {
            Ok(r) => r,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        // do_mmu_update: the command is `ptr & (sizeof(l1_pgentry_t) - 1)`, the low 3 bits.
        // MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD and (for a PV page-table owner, the
        // same) MMU_PT_UPDATE_NO_TRANSLATE update a page-table entry at `ptr - cmd`;
        // MMU_MACHPHYS_UPDATE sets the M2P entry of one of the caller's frames
        // (get_page_from_mfn failing, for a frame that is not its own, is -EINVAL); 4..=7 are
        // -ENOSYS.
        let cmd = r.ptr & 7;
        let res = match cmd {
            mmu::NORMAL_PT_UPDATE | mmu::PT_UPDATE_PRESERVE_AD | mmu::PT_UPDATE_NO_TRANSLATE => {
                pt(ctx).update_entry_ad(Maddr(r.ptr - cmd), r.val, cmd == mmu::PT_UPDATE_PRESERVE_AD)
            }
            4..=7 => Err(Errno::ENOSYS),
            _ => {
                let mfn = Mfn(r.ptr >> 12);
                match ctx.frames.owner(mfn) {
                    Some(Owner::Dom(d)) if d == ctx.dom => {
                        let m2p = ctx.xen.m2p.maddr().add(mfn.0 * 8);
                        ctx.mem.write_u64(m2p, r.val).ok_or(Errno::EINVAL)
                    }
                    _ => Err(Errno::EINVAL),
                }
            }
        };
        if let Err(e) = res {
            let note = if r.val & PTE_P != 0 && matches!(cmd, 0 | 2 | 3) {
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
    // "Add incremental work we have done to the @done output parameter" (a fault writing it is
    // ignored).
    if done_ptr != 0 {
        let _ = ctx.write_guest(done_ptr, &done0.wrapping_add(done as u32));
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

/// update_va_mapping_otherdomain (xen/arch/x86/mm.c): `get_pg_owner(domid)` (-ESRCH for the
/// caller's own id or a missing domain), then xsm_update_va_mapping(XSM_TARGET) refuses another
/// domain (-EPERM); DOMID_SELF is update_va_mapping itself.
pub fn update_va_mapping_otherdomain(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let domid = a[3] & 0xffff;
    ctx.describe(|d| *d = alloc::format!("update_va_mapping_otherdomain({:#x}, dom {domid:#x})", a[0]));
    check_foreign(ctx, domid)?;
    let r = update_va_mapping(ctx, a);
    if ctx.tracing {
        ctx.desc = alloc::format!("update_va_mapping_otherdomain{}", ctx.desc.trim_start_matches("update_va_mapping"));
    }
    r
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
        op::FLUSH_CACHE_GLOBAL => "flush_cache_global",
        op::MARK_SUPER => "mark_super",
        op::UNMARK_SUPER => "unmark_super",
        op::SET_LDT => "set_ldt",
        op::NEW_USER_BASEPTR => "new_user_baseptr",
        op::CLEAR_PAGE => "clear_page",
        op::COPY_PAGE => "copy_page",
        _ => return None,
    })
}

/// CLEAR_PAGE's and COPY_PAGE's destination: `get_page_from_gfn` (the caller's frame) and
/// `get_page_type(PGT_writable_page)` (not a page table), each failing with -EINVAL.
fn owned_plain(ctx: &Ctx<'_, '_>, mfn: Mfn) -> Result<(), Errno> {
    match ctx.frames.get(mfn) {
        Some(f) if f.owner == Owner::Dom(ctx.dom) && f.ty == PageType::None => Ok(()),
        _ => Err(Errno::EINVAL),
    }
}

/// `__addr_ok` (asm/uaccess.h): a guest address for a 64-bit PV guest.
fn addr_ok(va: u64) -> bool {
    va < (1 << 47) || va >= crate::abi::HYPERVISOR_VIRT_END
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
        op::TLB_FLUSH_LOCAL | op::TLB_FLUSH_ALL | op::INVLPG_LOCAL | op::INVLPG_ALL => {
            // A bad address in an INVLPG is no error: Xen flushes nothing (`__addr_ok`).
            ctx.fx.flush_tlb = true;
            Ok(())
        }
        op::TLB_FLUSH_MULTI | op::INVLPG_MULTI => {
            // vcpumask_to_pcpumask: the vCPU bitmap (arg2), one unsigned long per 64 vCPUs,
            // must be readable (-EINVAL otherwise).
            let words = (ctx.domain_ref().vcpus.len() as u64).div_ceil(64);
            for w in 0..words {
                ctx.read_guest::<u64>(o.arg2.wrapping_add(w * 8)).map_err(|_| Errno::EINVAL)?;
            }
            ctx.fx.flush_tlb = true;
            Ok(())
        }
        // cache_flush_permitted: a domain with no I/O memory or ports may not (-EACCES); the
        // global variant is -EINVAL then.
        op::FLUSH_CACHE => Err(Errno::EACCES),
        op::FLUSH_CACHE_GLOBAL => Err(Errno::EINVAL),
        op::SET_LDT => {
            // The argument checks of do_mmuext_op's MMUEXT_SET_LDT.
            let (base, ents) = (o.arg1, o.arg2 as u32);
            if ents > 8192 || (ents != 0 && (base & (PAGE_SIZE - 1) != 0 || !addr_ok(base))) {
                return Err(Errno::EINVAL);
            }
            crate::desc::set_ldt(ctx.cur(), base, ents as u64);
            Ok(())
        }
        op::CLEAR_PAGE => {
            owned_plain(ctx, mfn)?;
            ctx.mem.zero_frame(mfn).ok_or(Errno::EINVAL)
        }
        op::COPY_PAGE => {
            // The source must be the caller's (any type); then the destination as CLEAR_PAGE.
            let src = Mfn(o.arg2);
            match ctx.frames.owner(src) {
                Some(Owner::Dom(d)) if d == ctx.dom => {}
                _ => return Err(Errno::EINVAL),
            }
            owned_plain(ctx, mfn)?;
            let mut buf = [0u8; PAGE_SIZE as usize];
            ctx.mem.read(src.maddr(), &mut buf).ok_or(Errno::EINVAL)?;
            ctx.mem.write(mfn.maddr(), &buf).ok_or(Errno::EINVAL)
        }
        // PV superpages are not supported by Xen 4.17.
        op::MARK_SUPER | op::UNMARK_SUPER => Err(Errno::EOPNOTSUPP),
        _ => Err(Errno::ENOSYS),
    }
}

pub fn mmuext_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (ops, done_ptr, foreign) = (a[0], a[2], a[3]);
    let count = a[1] as u32 as u64 & !(MMU_UPDATE_PREEMPTED as u64);
    ctx.describe(|d| *d = alloc::format!("mmuext_op({count} op{})", if count == 1 { "" } else { "s" }));
    let (count, done0) = match batch_head(ctx, ops, a[1], done_ptr, foreign) {
        Ok(v) => v,
        Err(r) => return r,
    };
    // get_pg_owner (-ESRCH), then xsm_mmuext_op(XSM_TARGET) (-EPERM): before any op.
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
        let _ = ctx.write_guest(done_ptr, &done0.wrapping_add(done as u32));
    }
    result
}
