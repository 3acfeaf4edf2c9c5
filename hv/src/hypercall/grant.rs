//! grant_table_op (hypercall 20) for 64-bit PV guests, as Xen 4.17's `common/grant_table.c`
//! and `arch/x86/pv/grant_table.c`: the same checks in the same order, the same errno for a bad
//! call and the same `GNTST_*` status for a bad operation.
//!
//! A grant map takes the references a PTE would (a writable map takes a writable reference, so
//! a granted page table can never be mapped writable, and a mapped granted frame can never
//! become one) and unmap drops them. Grant PTEs carry `PTE_GNTTAB`, which guests cannot set.

use alloc::string::String;
use core::fmt::Write;

use super::Ctx;
use crate::abi::hypercall::gnttab as g;
use crate::abi::{
    Errno, GnttabCacheFlush, GnttabCopy, GnttabGetStatusFrames, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize, GnttabSetupTable,
    GnttabUnmapAndReplace, GnttabUnmapGrantRef, DOMID_SELF,
};
use crate::grant::{Active, MapTrack, PIN_MAX};
use crate::mm::frames::{Owner, PageType};
use crate::mm::memory::Pod;
use crate::mm::paging::{self, pte_mfn, PTE_A, PTE_D, PTE_GNTTAB, PTE_NX, PTE_P, PTE_RW, PTE_US};
use crate::mm::{Maddr, Mfn, PAGE_SIZE};
use crate::DomId;

/// `GNTTABOP_CMD_MASK` (xen/common/grant_table.c: the low 12 bits; the rest is continuation state).
const CMD_MASK: u32 = (1 << 12) - 1;

fn op_name(cmd: u32) -> &'static str {
    match cmd {
        g::MAP_GRANT_REF => "map_grant_ref",
        g::UNMAP_GRANT_REF => "unmap_grant_ref",
        g::SETUP_TABLE => "setup_table",
        g::DUMP_TABLE => "dump_table",
        g::TRANSFER => "transfer",
        g::COPY => "copy",
        g::QUERY_SIZE => "query_size",
        g::UNMAP_AND_REPLACE => "unmap_and_replace",
        g::SET_VERSION => "set_version",
        g::GET_STATUS_FRAMES => "get_status_frames",
        g::GET_VERSION => "get_version",
        g::SWAP_GRANT_REF => "swap_grant_ref",
        g::CACHE_FLUSH => "cache_flush",
        _ => "?",
    }
}

fn gntst_name(s: i16) -> &'static str {
    match s {
        g::GNTST_OKAY => "okay",
        g::GNTST_GENERAL_ERROR => "general_error",
        g::GNTST_BAD_DOMAIN => "bad_domain",
        g::GNTST_BAD_GNTREF => "bad_gntref",
        g::GNTST_BAD_HANDLE => "bad_handle",
        g::GNTST_BAD_VIRT_ADDR => "bad_virt_addr",
        g::GNTST_BAD_DEV_ADDR => "bad_dev_addr",
        g::GNTST_PERMISSION_DENIED => "permission_denied",
        g::GNTST_BAD_PAGE => "bad_page",
        g::GNTST_BAD_COPY_ARG => "bad_copy_arg",
        g::GNTST_NO_SPACE => "no_space",
        _ => "?",
    }
}

/// Xen's `guest_handle_okay`: the whole array lies in guest space (no overflow, canonical, not
/// in the hypervisor's range).
fn handle_okay(base: u64, count: u64, size: u64) -> bool {
    let Some(len) = count.checked_mul(size) else { return false };
    if len == 0 {
        return true;
    }
    let Some(end) = base.checked_add(len - 1) else { return false };
    paging::is_canonical(base)
        && paging::is_canonical(end)
        && (base >> 47) == (end >> 47)
        && !(base < crate::abi::HYPERVISOR_VIRT_END && end >= crate::abi::HYPERVISOR_VIRT_START)
}

/// Per-call bookkeeping for the trace: the statuses of the first few operations.
struct Statuses(String, u32);

impl Statuses {
    fn new() -> Self {
        Self(String::new(), 0)
    }
    fn push(&mut self, ctx: &Ctx<'_, '_>, s: i16) {
        if ctx.tracing && self.1 < 4 {
            if !self.0.is_empty() {
                self.0.push_str(", ");
            }
            self.0.push_str(gntst_name(s));
        }
        self.1 += 1;
    }
}

pub fn grant_table_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd_full, uop, count) = (a[0] as u32, a[1], a[2] as u32);
    let cmd = cmd_full & CMD_MASK;
    ctx.describe(|d| {
        let _ = write!(d, "grant_table_op({}, {count})", op_name(cmd));
    });
    if (count as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    if cmd != g::CACHE_FLUSH && cmd_full & !CMD_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    // Every domain's table has its initial frame before any operation looks at it.
    let dom = ctx.dom;
    let ok = {
        let Ctx { doms, frames, mem, .. } = &mut *ctx;
        doms.get_mut(&dom).is_some_and(|d| d.grant.ensure(frames, mem, dom))
    };
    if !ok {
        return Err(Errno::ENOMEM);
    }
    let mut st = Statuses::new();
    let r = match cmd {
        g::MAP_GRANT_REF => batch::<GnttabMapGrantRef>(ctx, uop, count, &mut st, |ctx, op| {
            map_one(ctx, op);
            op.status
        }),
        g::UNMAP_GRANT_REF => batch::<GnttabUnmapGrantRef>(ctx, uop, count, &mut st, |ctx, op| {
            op.status = unmap_one(ctx, op.handle, op.host_addr, op.dev_bus_addr, 0);
            op.status
        }),
        g::UNMAP_AND_REPLACE => batch::<GnttabUnmapAndReplace>(ctx, uop, count, &mut st, |ctx, op| {
            op.status = unmap_one(ctx, op.handle, op.host_addr, 0, op.new_addr);
            op.status
        }),
        g::COPY => batch::<GnttabCopy>(ctx, uop, count, &mut st, |ctx, op| {
            op.status = copy_one(ctx, op);
            op.status
        }),
        g::SETUP_TABLE => setup_table(ctx, uop, count, &mut st),
        g::QUERY_SIZE => query_size(ctx, uop, count, &mut st),
        g::SET_VERSION => set_version(ctx, uop),
        g::GET_STATUS_FRAMES => get_status_frames(ctx, uop, count, &mut st),
        g::GET_VERSION => get_version(ctx, uop),
        g::CACHE_FLUSH => cache_flush(ctx, uop, count, cmd_full & !CMD_MASK),
        _ => Err(Errno::ENOSYS),
    };
    if !st.0.is_empty() {
        let more = if st.1 > 4 { ", …" } else { "" };
        let s = core::mem::take(&mut st.0);
        ctx.annotate(|n| {
            let _ = write!(n, "status {s}{more}");
        });
    }
    r
}

/// Run `one` over `count` operations of type `T` at `uop`, writing each back (Xen copies the
/// whole operation back for map, the status for the others: the other fields are unchanged).
fn batch<T: Pod>(
    ctx: &mut Ctx<'_, '_>,
    uop: u64,
    count: u32,
    st: &mut Statuses,
    mut one: impl FnMut(&mut Ctx<'_, '_>, &mut T) -> i16,
) -> Result<i64, Errno> {
    let size = core::mem::size_of::<T>() as u64;
    if !handle_okay(uop, count as u64, size) {
        return Err(Errno::EFAULT);
    }
    for i in 0..count as u64 {
        let at = uop.checked_add(i * size).ok_or(Errno::EFAULT)?;
        let mut op: T = ctx.read_guest(at)?;
        let s = one(ctx, &mut op);
        st.push(ctx, s);
        ctx.write_guest(at, &op)?;
    }
    Ok(0)
}

/// `rcu_lock_domain_by_any_id`: DOMID_SELF is the caller.
fn any_id(ctx: &Ctx<'_, '_>, dom: u16) -> Option<DomId> {
    let id = if dom == DOMID_SELF { ctx.dom } else { dom as DomId };
    ctx.doms.contains_key(&id).then_some(id)
}

/// XSM's dummy `XSM_TARGET` check for an unprivileged caller: only itself.
fn target_ok(ctx: &Ctx<'_, '_>, d: DomId) -> bool {
    d == ctx.dom
}

// ---------------------------------------------------------------------------------------------
// setup_table, query_size, versions, status frames

fn setup_table(ctx: &mut Ctx<'_, '_>, uop: u64, count: u32, st: &mut Statuses) -> Result<i64, Errno> {
    if count != 1 {
        return Err(Errno::EINVAL);
    }
    let mut op: GnttabSetupTable = ctx.read_guest(uop)?;
    if !handle_okay(op.frame_list, op.nr_frames as u64, 8) {
        return Err(Errno::EFAULT);
    }
    let n = op.nr_frames;
    ctx.describe(|d| {
        let _ = write!(d, "grant_table_op(setup_table, d{} {n} frame{})", op.dom as i16, if n == 1 { "" } else { "s" });
    });
    op.status = 'done: {
        let Some(d) = any_id(ctx, op.dom) else { break 'done g::GNTST_BAD_DOMAIN };
        if !target_ok(ctx, d) {
            break 'done g::GNTST_PERMISSION_DENIED;
        }
        let Ctx { doms, frames, mem, .. } = &mut *ctx;
        let Some(gt) = doms.get_mut(&d).map(|d| &mut d.grant) else { break 'done g::GNTST_BAD_DOMAIN };
        if n > gt.max_frames {
            break 'done g::GNTST_GENERAL_ERROR;
        }
        if !gt.grow(frames, mem, d, n) {
            break 'done g::GNTST_GENERAL_ERROR;
        }
        let list: alloc::vec::Vec<Mfn> = gt.shared[..n as usize].to_vec();
        let mut s = g::GNTST_OKAY;
        for (i, m) in list.iter().enumerate() {
            if ctx.write_guest(op.frame_list.wrapping_add(i as u64 * 8), &m.0).is_err() {
                s = g::GNTST_BAD_VIRT_ADDR;
            }
        }
        s
    };
    st.push(ctx, op.status);
    ctx.write_guest(uop.checked_add(8).ok_or(Errno::EFAULT)?, &op.status)?;
    Ok(0)
}

fn query_size(ctx: &mut Ctx<'_, '_>, uop: u64, count: u32, st: &mut Statuses) -> Result<i64, Errno> {
    if count != 1 {
        return Err(Errno::EINVAL);
    }
    let mut op: GnttabQuerySize = ctx.read_guest(uop)?;
    op.status = match any_id(ctx, op.dom) {
        None => g::GNTST_BAD_DOMAIN,
        Some(d) if !target_ok(ctx, d) => g::GNTST_PERMISSION_DENIED,
        Some(d) => {
            let gt = &ctx.doms[&d].grant;
            op.nr_frames = gt.nr_frames();
            op.max_nr_frames = gt.max_frames;
            g::GNTST_OKAY
        }
    };
    st.push(ctx, op.status);
    ctx.write_guest(uop, &op)?;
    Ok(0)
}

fn get_version(ctx: &mut Ctx<'_, '_>, uop: u64) -> Result<i64, Errno> {
    let mut op: GnttabGetVersion = ctx.read_guest(uop)?;
    let d = any_id(ctx, op.dom).ok_or(Errno::ESRCH)?;
    if !target_ok(ctx, d) {
        return Err(Errno::EPERM);
    }
    op.version = ctx.doms[&d].grant.version;
    let v = op.version;
    ctx.annotate(|n| {
        let _ = write!(n, "v{v}");
    });
    ctx.write_guest(uop.checked_add(4).ok_or(Errno::EFAULT)?, &op.version)?;
    Ok(0)
}

fn set_version(ctx: &mut Ctx<'_, '_>, uop: u64) -> Result<i64, Errno> {
    let want: u32 = ctx.read_guest(uop)?;
    ctx.describe(|d| {
        let _ = write!(d, "grant_table_op(set_version, {want})");
    });
    let res = set_version_inner(ctx, want);
    let now = ctx.domain_ref().grant.version;
    ctx.write_guest(uop, &now)?;
    res
}

fn set_version_inner(ctx: &mut Ctx<'_, '_>, want: u32) -> Result<i64, Errno> {
    if want != 1 && want != 2 {
        return Err(Errno::EINVAL);
    }
    let dom = ctx.dom;
    let Ctx { doms, frames, mem, .. } = &mut *ctx;
    let gt = &mut doms.get_mut(&dom).ok_or(Errno::ESRCH)?.grant;
    if gt.version == want {
        return Ok(0);
    }
    if gt.busy_beyond_reserved() {
        return Err(Errno::EBUSY);
    }
    // The reserved entries survive the switch, as v1 entries.
    let mut reserved = [crate::abi::GrantEntryV1::default(); g::NR_RESERVED_ENTRIES as usize];
    if gt.version == 1 {
        for (i, r) in reserved.iter_mut().enumerate() {
            *r = gt.read_v1(mem, i as u32).unwrap_or_default();
        }
    } else {
        for (i, r) in reserved.iter_mut().enumerate() {
            let e = gt.read_v2(mem, i as u32).unwrap_or_default();
            match e.flags & g::GTF_TYPE_MASK {
                g::GTF_PERMIT_ACCESS if e.frame >> 32 == 0 => {}
                g::GTF_PERMIT_ACCESS | g::GTF_TRANSITIVE => return Err(Errno::ERANGE),
                _ => {}
            }
            if e.flags & g::GTF_TYPE_MASK == g::GTF_PERMIT_ACCESS {
                *r = crate::abi::GrantEntryV1 { flags: e.flags | gt.status(mem, i as u32), domid: e.domid, frame: e.frame as u32 };
            }
        }
    }
    if gt.version == 1 {
        // Populate the status frames.
        let n = crate::grant::status_frames_for(gt.nr_frames()) as usize;
        if n.saturating_sub(gt.status.len()) as u64 > frames.free_frames() {
            return Err(Errno::ENOMEM);
        }
        gt.version = 2;
        let want_frames = gt.nr_frames();
        if !gt.grow(frames, mem, dom, want_frames) {
            gt.version = 1;
            return Err(Errno::ENOMEM);
        }
        gt.version = 1;
    } else {
        // Status frames the guest still maps (or anything else holds) make the switch -EBUSY
        // (XSA-255: freeing them would leave the guest a mapping of a free frame).
        if gt.status.iter().any(|m| frames.get(*m).is_none_or(|f| f.map_refs != 0 || f.type_refs != 0)) {
            return Err(Errno::EBUSY);
        }
        for m in core::mem::take(&mut gt.status) {
            frames.free(m);
        }
    }
    gt.clear_shared(mem);
    gt.version = want;
    for (i, r) in reserved.iter().enumerate() {
        let i = i as u32;
        if want == 1 {
            if let Some(a) = gt.entry_addr(i) {
                mem.write_pod(a, r);
            }
        } else {
            let e = crate::abi::GrantEntryV2 {
                flags: r.flags & !(g::GTF_READING | g::GTF_WRITING),
                domid: r.domid,
                frame: r.frame as u64,
                ..Default::default()
            };
            if let Some(a) = gt.entry_addr(i) {
                mem.write_pod(a, &e);
            }
            if let Some(a) = gt.status_addr(i) {
                mem.write_pod(a, &(r.flags & (g::GTF_READING | g::GTF_WRITING)));
            }
        }
    }
    Ok(0)
}

fn get_status_frames(ctx: &mut Ctx<'_, '_>, uop: u64, count: u32, st: &mut Statuses) -> Result<i64, Errno> {
    if count != 1 {
        return Err(Errno::EINVAL);
    }
    let mut op: GnttabGetStatusFrames = ctx.read_guest(uop)?;
    if !handle_okay(op.frame_list, op.nr_frames as u64, 8) {
        return Err(Errno::EFAULT);
    }
    op.status = 'done: {
        let Some(d) = any_id(ctx, op.dom) else { break 'done g::GNTST_BAD_DOMAIN };
        if !target_ok(ctx, d) {
            break 'done g::GNTST_PERMISSION_DENIED;
        }
        let list = ctx.doms[&d].grant.status.clone();
        if op.nr_frames as usize > list.len() {
            break 'done g::GNTST_GENERAL_ERROR;
        }
        let mut s = g::GNTST_OKAY;
        for (i, m) in list.iter().take(op.nr_frames as usize).enumerate() {
            if ctx.write_guest(op.frame_list.wrapping_add(i as u64 * 8), &m.0).is_err() {
                s = g::GNTST_BAD_VIRT_ADDR;
            }
        }
        s
    };
    st.push(ctx, op.status);
    ctx.write_guest(uop.checked_add(6).ok_or(Errno::EFAULT)?, &op.status)?;
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// Pinning grants (Xen's _set_status and acquire_grant_for_copy)

/// Pin grant `gref` of domain `rd` for the caller: check the entry, set GTF_reading/writing,
/// count the pin. `map`: a mapping (sub-page grants refused) rather than a copy. Returns the
/// active entry.
fn pin(ctx: &mut Ctx<'_, '_>, rd: DomId, gref: u32, readonly: bool, host: bool, map: bool) -> Result<Active, i16> {
    let ld = ctx.dom;
    let Ctx { doms, frames, mem, .. } = &mut *ctx;
    let Some(rdom) = doms.get_mut(&rd) else { return Err(g::GNTST_BAD_DOMAIN) };
    let gt = &mut rdom.grant;
    if gref >= gt.nr_entries() {
        return Err(g::GNTST_BAD_GNTREF);
    }
    let mut act = gt.active.get(&gref).copied().unwrap_or_default();
    let counter = |a: &Active| match (host, readonly) {
        (true, false) => a.hstw,
        (true, true) => a.hstr,
        (false, false) => a.devw,
        (false, true) => a.devr,
    };
    if act.pinned() && (act.domid != ld || counter(&act) == PIN_MAX || (map && act.sub_page)) {
        return Err(g::GNTST_GENERAL_ERROR);
    }
    if !act.pinned() || (!readonly && !act.writable()) {
        // The shared entry's type and domid (checked only when not yet pinned), and the
        // read-only flag for a writable pin.
        let (flags, domid, frame, off, len, sub) = if gt.version == 1 {
            // A table whose initial frame was never allocated reads as all-invalid entries.
            let e = gt.read_v1(mem, gref).unwrap_or_default();
            (e.flags, e.domid, e.frame as u64, 0u16, PAGE_SIZE as u16, false)
        } else {
            let e = gt.read_v2(mem, gref).unwrap_or_default();
            let sub = e.flags & g::GTF_SUB_PAGE != 0;
            if sub {
                (e.flags, e.domid, e.frame, e.page_off, e.length, true)
            } else {
                (e.flags, e.domid, e.frame, 0, PAGE_SIZE as u16, false)
            }
        };
        // A mapping may not use a sub-page grant. (Transitive grants are not supported: they
        // fail as any other type would.)
        let mask = if map { g::GTF_TYPE_MASK | g::GTF_SUB_PAGE } else { g::GTF_TYPE_MASK };
        let ty_ok = flags & mask == g::GTF_PERMIT_ACCESS;
        if !act.pinned() && (!ty_ok || domid != ld) {
            return Err(g::GNTST_GENERAL_ERROR);
        }
        if !readonly && flags & g::GTF_READONLY != 0 {
            return Err(g::GNTST_GENERAL_ERROR);
        }
        if !act.pinned() {
            // get_paged_frame: for a PV granter the frame is a machine frame it owns; a v2
            // sub-page window must lie inside the page.
            let mfn = Mfn(frame);
            if frames.owner(mfn) != Some(Owner::Dom(rd)) {
                return Err(g::GNTST_BAD_PAGE);
            }
            if sub && (off as u64).checked_add(len as u64).is_none_or(|e| e > PAGE_SIZE) {
                return Err(g::GNTST_GENERAL_ERROR);
            }
            act = Active { domid: ld, mfn, start: off, length: len, sub_page: sub, ..Default::default() };
        }
        let set = if readonly { g::GTF_READING } else { g::GTF_READING | g::GTF_WRITING };
        gt.set_status_bits(mem, gref, set, 0);
    }
    match (host, readonly) {
        (true, false) => act.hstw += 1,
        (true, true) => act.hstr += 1,
        (false, false) => act.devw += 1,
        (false, true) => act.devr += 1,
    }
    gt.active.insert(gref, act);
    Ok(act)
}

/// Drop a pin taken by [`pin`].
fn unpin(ctx: &mut Ctx<'_, '_>, rd: DomId, gref: u32, readonly: bool, host: bool) {
    let Ctx { doms, mem, .. } = &mut *ctx;
    let Some(rdom) = doms.get_mut(&rd) else { return };
    let gt = &mut rdom.grant;
    if let Some(a) = gt.active.get_mut(&gref) {
        let c = match (host, readonly) {
            (true, false) => &mut a.hstw,
            (true, true) => &mut a.hstr,
            (false, false) => &mut a.devw,
            (false, true) => &mut a.devr,
        };
        *c = c.saturating_sub(1);
        if !a.pinned() {
            gt.active.remove(&gref);
        }
    }
    gt.reduce_status(mem, gref);
}

// ---------------------------------------------------------------------------------------------
// Host mappings (Xen's create_grant_pv_mapping / replace_grant_pv_mapping)

/// The L1 entry a host mapping names: the PTE at machine address `addr` (contains_pte), or the
/// caller's L1 entry for virtual address `addr`. It must be in a validated L1 table the caller
/// owns.
fn host_l1e(ctx: &Ctx<'_, '_>, addr: u64, contains_pte: bool) -> Option<Maddr> {
    let l1e = if contains_pte {
        // XSA-227: a PTE address must be PTE-aligned.
        if !addr.is_multiple_of(8) {
            return None;
        }
        Maddr(addr)
    } else {
        if paging::in_xen_range(addr) || !paging::is_canonical(addr) {
            return None;
        }
        let l4 = Mfn(ctx.cur_ref().cpu.cr3 >> 12);
        paging::l1e_of(&ctx.mem, l4, addr)?
    };
    let f = ctx.frames.get(l1e.mfn())?;
    (f.owner == Owner::Dom(ctx.dom) && f.ty == PageType::PageTable(1)).then_some(l1e)
}

/// Take the references a mapping of `mfn` holds: every mapping a general one, a writable one a
/// writable (type) reference, which a page table cannot give.
fn get_refs(ctx: &mut Ctx<'_, '_>, mfn: Mfn, writable: bool) -> bool {
    let Some(f) = ctx.frames.get_mut(mfn) else { return false };
    if writable {
        if f.ty != PageType::None {
            return false;
        }
        f.writable_refs += 1;
    }
    f.map_refs = f.map_refs.saturating_add(1);
    true
}

fn put_refs(ctx: &mut Ctx<'_, '_>, mfn: Mfn, writable: bool) {
    if let Some(f) = ctx.frames.get_mut(mfn) {
        if writable {
            f.writable_refs = f.writable_refs.saturating_sub(1);
        }
        f.map_refs = f.map_refs.saturating_sub(1);
    }
}

/// Write the grant PTE for `mfn` at the host address; the old entry's references go.
fn create_host_mapping(ctx: &mut Ctx<'_, '_>, addr: u64, mfn: Mfn, flags: u32) -> Result<(), i16> {
    let l1e = host_l1e(ctx, addr, flags & g::GNTMAP_CONTAINS_PTE != 0).ok_or(g::GNTST_GENERAL_ERROR)?;
    let old = ctx.mem.read_u64(l1e).ok_or(g::GNTST_GENERAL_ERROR)?;
    if old & PTE_P != 0 && old & PTE_GNTTAB != 0 {
        // Xen would crash the domain for implicitly unmapping a grant; refuse instead.
        return Err(g::GNTST_GENERAL_ERROR);
    }
    let mut new = mfn.maddr().0 | PTE_P | PTE_A | PTE_D | PTE_US | PTE_NX | PTE_GNTTAB;
    if flags & g::GNTMAP_READONLY == 0 {
        new |= PTE_RW;
    }
    ctx.mem.write_u64(l1e, new).ok_or(g::GNTST_GENERAL_ERROR)?;
    if old & PTE_P != 0 {
        super::mmu::pt_ctx(ctx).put_entry(1, old, l1e.mfn());
    }
    ctx.fx.flush_tlb = true;
    Ok(())
}

/// Remove the grant PTE for `mfn` at the host address, putting there what `new_addr`'s PTE held
/// (unmap_and_replace; that PTE is cleared).
fn replace_host_mapping(ctx: &mut Ctx<'_, '_>, addr: u64, mfn: Mfn, new_addr: u64, flags: u32) -> Result<(), i16> {
    let contains_pte = flags & g::GNTMAP_CONTAINS_PTE != 0;
    let mut repl = 0u64;
    let mut repl_at = None;
    if new_addr != 0 {
        if contains_pte {
            return Err(g::GNTST_GENERAL_ERROR);
        }
        let at = host_l1e(ctx, new_addr, false).ok_or(g::GNTST_GENERAL_ERROR)?;
        repl = ctx.mem.read_u64(at).ok_or(g::GNTST_GENERAL_ERROR)?;
        if repl & PTE_P != 0 && repl & PTE_GNTTAB != 0 {
            return Err(g::GNTST_GENERAL_ERROR);
        }
        repl_at = Some(at);
    }
    let l1e = host_l1e(ctx, addr, contains_pte).ok_or(g::GNTST_GENERAL_ERROR)?;
    let old = ctx.mem.read_u64(l1e).ok_or(g::GNTST_GENERAL_ERROR)?;
    // The entry must be this grant's: present, a grant entry, the frame, and writable exactly
    // when the mapping is (so the references dropped are the ones this entry held).
    let writable = flags & g::GNTMAP_READONLY == 0;
    if old & PTE_P == 0 || old & PTE_GNTTAB == 0 || pte_mfn(old) != mfn || (old & PTE_RW != 0) != writable {
        return Err(g::GNTST_GENERAL_ERROR);
    }
    if let Some(at) = repl_at {
        if at == l1e {
            return Err(g::GNTST_GENERAL_ERROR);
        }
        ctx.mem.write_u64(at, 0).ok_or(g::GNTST_GENERAL_ERROR)?;
    }
    ctx.mem.write_u64(l1e, repl).ok_or(g::GNTST_GENERAL_ERROR)?;
    ctx.fx.flush_tlb = true;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// map / unmap

fn map_one(ctx: &mut Ctx<'_, '_>, op: &mut GnttabMapGrantRef) {
    let flags = op.flags;
    let readonly = flags & g::GNTMAP_READONLY != 0;
    let (dev, host) = (flags & g::GNTMAP_DEVICE_MAP != 0, flags & g::GNTMAP_HOST_MAP != 0);
    if !dev && !host {
        op.status = g::GNTST_BAD_GNTREF;
        return;
    }
    // rcu_lock_domain_by_id: DOMID_SELF is not a domain here.
    let rd = op.dom as DomId;
    if op.dom == DOMID_SELF || !ctx.doms.contains_key(&rd) {
        op.status = g::GNTST_BAD_DOMAIN;
        return;
    }
    let Some(handle) = ctx.domain().grant.new_handle() else {
        op.status = g::GNTST_NO_SPACE;
        return;
    };
    let gref = op.ref_;
    // Pin (device first, then host, as Xen adds both increments at once).
    let mut pinned: alloc::vec::Vec<bool> = alloc::vec::Vec::new();
    let mut mfn = Mfn(0);
    for is_host in [false, true] {
        if (is_host && !host) || (!is_host && !dev) {
            continue;
        }
        match pin(ctx, rd, gref, readonly, is_host, true) {
            Ok(a) => {
                mfn = a.mfn;
                pinned.push(is_host);
            }
            Err(s) => {
                for h in pinned {
                    unpin(ctx, rd, gref, readonly, h);
                }
                op.status = s;
                return;
            }
        }
    }
    // References: a writable device mapping takes a writable type reference; a host mapping a
    // general reference, and a writable one a writable type reference.
    let mut taken: alloc::vec::Vec<bool> = alloc::vec::Vec::new();
    let fail = |ctx: &mut Ctx<'_, '_>, taken: &[bool], s: i16, op: &mut GnttabMapGrantRef| {
        for w in taken {
            put_refs(ctx, mfn, *w);
        }
        for h in [false, true] {
            if (h && host) || (!h && dev) {
                unpin(ctx, rd, gref, readonly, h);
            }
        }
        op.status = s;
    };
    if dev {
        if !get_refs(ctx, mfn, !readonly) {
            return fail(ctx, &taken, g::GNTST_GENERAL_ERROR, op);
        }
        taken.push(!readonly);
    }
    if host {
        if !get_refs(ctx, mfn, !readonly) {
            return fail(ctx, &taken, g::GNTST_GENERAL_ERROR, op);
        }
        taken.push(!readonly);
        if let Err(s) = create_host_mapping(ctx, op.host_addr, mfn, flags) {
            return fail(ctx, &taken, s, op);
        }
    }
    if let Some(slot) = ctx.domain().grant.maptrack.get_mut(handle as usize) {
        *slot = Some(MapTrack { dom: rd, gref, flags, mfn });
    }
    op.dev_bus_addr = mfn.maddr().0;
    op.handle = handle;
    op.status = g::GNTST_OKAY;
}

fn unmap_one(ctx: &mut Ctx<'_, '_>, handle: u32, host_addr: u64, dev_bus_addr: u64, new_addr: u64) -> i16 {
    let Some(Some(m)) = ctx.domain_ref().grant.maptrack.get(handle as usize).copied() else {
        return g::GNTST_BAD_HANDLE;
    };
    if !ctx.doms.contains_key(&m.dom) {
        return g::GNTST_BAD_HANDLE;
    }
    let readonly = m.flags & g::GNTMAP_READONLY != 0;
    let mut flags = m.flags;
    if dev_bus_addr != 0 && flags & g::GNTMAP_DEVICE_MAP != 0 && dev_bus_addr != m.mfn.maddr().0 {
        return g::GNTST_BAD_DEV_ADDR;
    }
    if host_addr != 0 && flags & g::GNTMAP_HOST_MAP != 0 {
        if let Err(s) = replace_host_mapping(ctx, host_addr, m.mfn, new_addr, flags) {
            return s;
        }
        flags &= !g::GNTMAP_HOST_MAP;
        put_refs(ctx, m.mfn, !readonly);
        unpin(ctx, m.dom, m.gref, readonly, true);
    }
    if dev_bus_addr != 0 && flags & g::GNTMAP_DEVICE_MAP != 0 {
        flags &= !g::GNTMAP_DEVICE_MAP;
        put_refs(ctx, m.mfn, !readonly);
        unpin(ctx, m.dom, m.gref, readonly, false);
    }
    if let Some(slot) = ctx.domain().grant.maptrack.get_mut(handle as usize) {
        *slot = if flags & (g::GNTMAP_HOST_MAP | g::GNTMAP_DEVICE_MAP) == 0 { None } else { Some(MapTrack { flags, ..m }) };
    }
    g::GNTST_OKAY
}

// ---------------------------------------------------------------------------------------------
// copy

/// One side of a copy, claimed: the frame, the window the grant allows, and how to release it.
struct Buf {
    mfn: Mfn,
    off: u16,
    len: u16,
    /// (granting domain, gref) when claimed through a grant.
    grant: Option<(DomId, u32)>,
    writable_ref: bool,
}

fn claim(ctx: &mut Ctx<'_, '_>, d: DomId, u: u64, by_gref: bool, readonly: bool) -> Result<Buf, i16> {
    let mut b = if by_gref {
        let gref = u as u32;
        let a = pin(ctx, d, gref, readonly, true, false)?;
        Buf { mfn: a.mfn, off: a.start, len: a.length, grant: Some((d, gref)), writable_ref: false }
    } else {
        let mfn = Mfn(u);
        if ctx.frames.owner(mfn) != Some(Owner::Dom(d)) {
            return Err(g::GNTST_BAD_PAGE);
        }
        Buf { mfn, off: 0, len: PAGE_SIZE as u16, grant: None, writable_ref: false }
    };
    if !readonly {
        // get_page_type(PGT_writable_page): never into a page table.
        if !get_refs(ctx, b.mfn, true) {
            release(ctx, &b, readonly);
            return Err(g::GNTST_GENERAL_ERROR);
        }
        b.writable_ref = true;
    }
    Ok(b)
}

fn release(ctx: &mut Ctx<'_, '_>, b: &Buf, readonly: bool) {
    if let Some((d, gref)) = b.grant {
        unpin(ctx, d, gref, readonly, true);
    }
    if b.writable_ref {
        put_refs(ctx, b.mfn, true);
    }
}

fn copy_one(ctx: &mut Ctx<'_, '_>, op: &GnttabCopy) -> i16 {
    let src_gref = op.flags & g::GNTCOPY_SOURCE_GREF != 0;
    let dst_gref = op.flags & g::GNTCOPY_DEST_GREF != 0;
    // Only DOMID_SELF may name a frame directly.
    let lock = |ctx: &Ctx<'_, '_>, domid: u16, gref: bool| -> Result<DomId, i16> {
        if domid != DOMID_SELF && !gref {
            return Err(g::GNTST_PERMISSION_DENIED);
        }
        any_id(ctx, domid).ok_or(g::GNTST_BAD_DOMAIN)
    };
    let sd = match lock(ctx, op.source.domid, src_gref) {
        Ok(d) => d,
        Err(s) => return s,
    };
    let dd = match lock(ctx, op.dest.domid, dst_gref) {
        Ok(d) => d,
        Err(s) => return s,
    };
    let src = match claim(ctx, sd, op.source.u, src_gref, true) {
        Ok(b) => b,
        Err(s) => return s,
    };
    let dst = match claim(ctx, dd, op.dest.u, dst_gref, false) {
        Ok(b) => b,
        Err(s) => {
            release(ctx, &src, true);
            return s;
        }
    };
    let (so, doff, len) = (op.source.offset as u32, op.dest.offset as u32, op.len as u32);
    let status = if so + len > PAGE_SIZE as u32 || doff + len > PAGE_SIZE as u32 {
        g::GNTST_BAD_COPY_ARG
    } else if so < src.off as u32
        || so + len > src.off as u32 + src.len as u32
        || doff < dst.off as u32
        || doff + len > dst.off as u32 + dst.len as u32
    {
        // Outside the window a (v2 sub-page) grant allows.
        g::GNTST_GENERAL_ERROR
    } else {
        let mut buf = alloc::vec![0u8; len as usize];
        let ok = ctx.mem.read(src.mfn.maddr().add(so as u64), &mut buf).is_some()
            && ctx.mem.write(dst.mfn.maddr().add(doff as u64), &buf).is_some();
        if ok {
            g::GNTST_OKAY
        } else {
            g::GNTST_GENERAL_ERROR
        }
    };
    release(ctx, &src, true);
    release(ctx, &dst, false);
    status
}

// ---------------------------------------------------------------------------------------------
// cache_flush

fn cache_flush(ctx: &mut Ctx<'_, '_>, uop: u64, count: u32, cur_ref: u32) -> Result<i64, Errno> {
    for i in 0..count as u64 {
        let at = uop.checked_add(i * 16).ok_or(Errno::EFAULT)?;
        let op: GnttabCacheFlush = ctx.read_guest(at)?;
        let (off, len) = (op.offset as u64, op.length as u64);
        if off >= PAGE_SIZE || len > PAGE_SIZE || off + len > PAGE_SIZE || op.op & !(g::CACHE_INVAL | g::CACHE_CLEAN) != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 || op.op == 0 {
            if cur_ref != 0 {
                return Err(Errno::EILSEQ);
            }
            continue;
        }
        let mfn = Mfn(op.a >> 12);
        let owner = match ctx.frames.owner(mfn) {
            None => return Err(Errno::EINVAL),
            Some(Owner::Dom(d)) if ctx.doms.contains_key(&d) => d,
            Some(_) => return Err(Errno::EPERM),
        };
        if owner != ctx.dom {
            // grant_map_exists: the caller must have this frame pinned through a grant.
            let me = ctx.dom;
            let mapped = ctx.doms[&owner].grant.active.values().any(|a| a.domid == me && a.mfn == mfn);
            if !mapped {
                return Err(Errno::EINVAL);
            }
        }
        // x86: invalidating alone is not supported; cleaning flushes the cache (a no-op here).
        if op.op == g::CACHE_INVAL {
            return Err(Errno::EOPNOTSUPP);
        }
    }
    Ok(0)
}

/// Tear down every grant mapping involving `dying` before its frames are freed: its own
/// mappings of others' grants (references and pins dropped) and other domains' mappings of its
/// grants (their grant PTEs cleared and their handles closed), so that no domain keeps a
/// mapping of a frame the allocator may hand to someone else.
pub fn release_domain(
    doms: &mut alloc::collections::BTreeMap<DomId, crate::domain::Domain>,
    frames: &mut crate::mm::FrameTable,
    mem: &mut crate::mm::MachineMemory<'_>,
    dying: DomId,
) {
    // Its own mappings.
    let own: alloc::vec::Vec<MapTrack> =
        doms.get_mut(&dying).map(|d| core::mem::take(&mut d.grant.maptrack)).unwrap_or_default().into_iter().flatten().collect();
    for m in own {
        let readonly = m.flags & g::GNTMAP_READONLY != 0;
        if let Some(f) = frames.get_mut(m.mfn) {
            for bit in [g::GNTMAP_HOST_MAP, g::GNTMAP_DEVICE_MAP] {
                if m.flags & bit != 0 {
                    if !readonly {
                        f.writable_refs = f.writable_refs.saturating_sub(1);
                    }
                    f.map_refs = f.map_refs.saturating_sub(1);
                }
            }
        }
        if let Some(rd) = doms.get_mut(&m.dom) {
            let gt = &mut rd.grant;
            if let Some(a) = gt.active.get_mut(&m.gref) {
                if m.flags & g::GNTMAP_HOST_MAP != 0 {
                    if readonly {
                        a.hstr = a.hstr.saturating_sub(1)
                    } else {
                        a.hstw = a.hstw.saturating_sub(1)
                    }
                }
                if m.flags & g::GNTMAP_DEVICE_MAP != 0 {
                    if readonly {
                        a.devr = a.devr.saturating_sub(1)
                    } else {
                        a.devw = a.devw.saturating_sub(1)
                    }
                }
                if !a.pinned() {
                    gt.active.remove(&m.gref);
                }
            }
            gt.reduce_status(mem, m.gref);
        }
    }
    // Others' mappings of its grants: clear their grant PTEs that map its frames.
    let ids: alloc::vec::Vec<DomId> = doms.keys().copied().filter(|d| *d != dying).collect();
    for id in ids {
        let Some(d) = doms.get_mut(&id) else { continue };
        let mut hit = false;
        for slot in d.grant.maptrack.iter_mut() {
            let Some(m) = *slot else { continue };
            if m.dom != dying {
                continue;
            }
            hit = true;
            *slot = None;
            if m.flags & g::GNTMAP_HOST_MAP != 0 {
                // Find the grant PTEs in the mapper's L1 tables that map the frame.
                let l1s: alloc::vec::Vec<Mfn> =
                    frames.domain_frames(id).filter(|f| frames.get(*f).is_some_and(|fi| fi.ty == PageType::PageTable(1))).collect();
                'found: for t in l1s {
                    for s in 0..512u64 {
                        let a = t.maddr().add(s * 8);
                        let e = mem.read_u64(a).unwrap_or(0);
                        if e & PTE_P != 0 && e & PTE_GNTTAB != 0 && pte_mfn(e) == m.mfn {
                            mem.write_u64(a, 0);
                            break 'found;
                        }
                    }
                }
            }
        }
        if hit {
            for v in d.vcpus.iter_mut() {
                v.needs_flush = true;
            }
        }
    }
}
