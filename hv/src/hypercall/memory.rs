//! memory_op: the balloon driver's operations (increase_reservation, decrease_reservation,
//! populate_physmap, exchange) and every other XENMEM_* sub-op, as Xen 4.17 answers a 64-bit PV
//! domU (xen/common/memory.c `do_memory_op`; the x86 ones in xen/arch/x86/mm.c
//! `arch_memory_op` and x86_64/mm.c `subarch_memory_op`).
//!
//! A PV domain is not "translated": the frame numbers it passes and receives are machine frames
//! (GMFN = MFN), the P2M is the guest's own, and Xen keeps only the M2P (`set_gpfn_from_mfn`).
//! Frames given back (`guest_remove_page`) lose their allocation reference; one still
//! referenced (mapped, typed, pinned, in a GDT, used by the hypervisor) stays the domain's until
//! its last reference goes, then is freed (`reclaim`): a frame never reaches another domain while
//! anything of its owner can still reach it.

use alloc::vec::Vec;

use super::Ctx;
use crate::abi::hypercall::memory_op as op;
use crate::abi::{
    mapspace, memf, AddToPhysmap, AddToPhysmapBatch, E820Entry, Errno, ForeignMemoryMap, MachphysMapping, MachphysMfnList, MemAccessOp,
    MemAcquireResource, MemoryExchange, MemoryMap, MemoryReservation, PodTarget, RemoveFromPhysmap, ReservedDeviceMemoryMap,
    VnumaTopologyInfo, DOMID_SELF, HYPERVISOR_VIRT_END, RDM_ALL, RO_MPT_VIRT_END, RO_MPT_VIRT_START,
};
use crate::mm::frames::{Owner, NO_PFN};
use crate::mm::Mfn;
use crate::DomId;

/// `MEMOP_EXTENT_SHIFT` / `MEMOP_CMD_MASK`: the sub-op is the low 6 bits of `cmd`, the rest the
/// continuation's start extent (xen/include/xen/hypercall.h; not in the public headers).
pub const MEMOP_EXTENT_SHIFT: u32 = 6;
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;

/// The largest extent order an unprivileged domain may ask for: Xen's `domu_max_order`,
/// `CONFIG_DOMU_MAX_ORDER` (9 in Xen 4.17's default x86 build; the `memop-max-order` command
/// line option changes it). xen/common/memory.c `max_order`.
pub const DOMU_MAX_ORDER: u32 = 9;

/// `E820MAX` (xen/arch/x86/include/asm/e820.h): the most entries XENMEM_set_memory_map takes.
pub const E820MAX: u32 = 1024;

/// The M2P entry of a frame that is no guest's (Xen's `INVALID_M2P_ENTRY`, ~0).
const INVALID_M2P: u64 = !0;

fn sub_name(cmd: u64) -> Option<&'static str> {
    Some(match cmd {
        op::INCREASE_RESERVATION => "increase_reservation",
        op::DECREASE_RESERVATION => "decrease_reservation",
        op::MAXIMUM_RAM_PAGE => "maximum_ram_page",
        op::CURRENT_RESERVATION => "current_reservation",
        op::MAXIMUM_RESERVATION => "maximum_reservation",
        op::MACHPHYS_MFN_LIST => "machphys_mfn_list",
        op::POPULATE_PHYSMAP => "populate_physmap",
        op::ADD_TO_PHYSMAP => "add_to_physmap",
        op::MEMORY_MAP => "memory_map",
        op::MACHINE_MEMORY_MAP => "machine_memory_map",
        op::EXCHANGE => "exchange",
        op::MACHPHYS_MAPPING => "machphys_mapping",
        op::SET_MEMORY_MAP => "set_memory_map",
        op::MAXIMUM_GPFN => "maximum_gpfn",
        op::REMOVE_FROM_PHYSMAP => "remove_from_physmap",
        op::SET_POD_TARGET => "set_pod_target",
        op::GET_POD_TARGET => "get_pod_target",
        op::GET_SHARING_FREED_PAGES => "get_sharing_freed_pages",
        op::GET_SHARING_SHARED_PAGES => "get_sharing_shared_pages",
        op::PAGING_OP => "paging_op",
        op::ACCESS_OP => "access_op",
        op::SHARING_OP => "sharing_op",
        op::ADD_TO_PHYSMAP_BATCH => "add_to_physmap_batch",
        op::CLAIM_PAGES => "claim_pages",
        op::MACHPHYS_COMPAT_MFN_LIST => "machphys_compat_mfn_list",
        op::GET_VNUMAINFO => "get_vnumainfo",
        op::RESERVED_DEVICE_MEMORY_MAP => "reserved_device_memory_map",
        op::ACQUIRE_RESOURCE => "acquire_resource",
        _ => return None,
    })
}

/// `rcu_lock_domain_by_any_id`: DOMID_SELF is the caller.
fn by_any_id(ctx: &Ctx<'_, '_>, domid: u16) -> Option<DomId> {
    if domid == DOMID_SELF {
        Some(ctx.dom)
    } else {
        ctx.doms.contains_key(&domid).then_some(domid)
    }
}

/// `rcu_lock_domain_by_id`: DOMID_SELF is no domain.
fn by_id(ctx: &Ctx<'_, '_>, domid: u16) -> Option<DomId> {
    ctx.doms.contains_key(&domid).then_some(domid)
}

/// The XSM dummy policy's `XSM_TARGET` for an unprivileged caller: only itself.
fn xsm_target(ctx: &Ctx<'_, '_>, d: DomId) -> Result<(), Errno> {
    if d == ctx.dom {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// `guest_handle_subrange_okay(h, first, last)` for 8-byte elements on 64-bit PV: the start of
/// the sub-range must be a guest address (`__addr_ok`: below 2^47 or above the hypervisor's
/// range) and the count must fit in 32 bits (xen/arch/x86/include/asm/uaccess.h
/// `array_access_ok`).
fn subrange_okay(base: u64, first: u64, last: u64) -> bool {
    let count = last.wrapping_sub(first).wrapping_add(1);
    let addr = base.wrapping_add(first.wrapping_mul(8));
    count >> 32 == 0 && (addr < (1 << 47) || addr >= HYPERVISOR_VIRT_END)
}

/// The highest machine address bits an allocation may use (`MEMF_bits`), from a reservation's
/// address bits: `None` is no limit.
fn frame_limit(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        1u64 << (bits - 12)
    }
}

/// Is `mfn` one of the domain's Xen-heap pages (shared_info, grant-table frames): shared with
/// the guest, never in its tot_pages, never freed by it (Xen's `share_xen_page_with_guest`).
fn xen_heap(ctx: &Ctx<'_, '_>, d: DomId, mfn: Mfn) -> bool {
    ctx.doms.get(&d).is_some_and(|dd| dd.shared_info == mfn || dd.grant.shared.contains(&mfn) || dd.grant.status.contains(&mfn))
}

/// Is the frame still in use by its domain: referenced in the frame table, or a vCPU's GDT
/// frame (the hypervisor reads descriptors there by machine address).
fn busy(ctx: &Ctx<'_, '_>, mfn: Mfn) -> bool {
    ctx.frames.referenced(mfn) || ctx.doms.values().any(|d| d.vcpus.iter().any(|v| v.gdt_frames.contains(&mfn)))
}

fn set_m2p(ctx: &mut Ctx<'_, '_>, mfn: Mfn, pfn: u64) {
    let a = ctx.xen.m2p.maddr().add(mfn.0 * 8);
    ctx.mem.write_u64(a, pfn);
}

/// Free every frame the calling domain gave back that nothing references any more (the
/// put_page that drops Xen's last reference): its tot_pages goes down, the M2P entry becomes
/// invalid and every vCPU of the domain flushes its TLB before it runs again.
pub fn reclaim(ctx: &mut Ctx<'_, '_>) {
    let d = ctx.dom;
    let Some(list) = ctx.doms.get_mut(&d).map(|dd| core::mem::take(&mut dd.mem.released)) else { return };
    if list.is_empty() {
        return;
    }
    let mut keep = Vec::new();
    for mfn in list {
        let Some(f) = ctx.frames.get(mfn).copied() else { continue };
        if f.owner != Owner::Dom(d) || !f.released {
            continue; // freed another way since
        }
        if busy(ctx, mfn) {
            keep.push(mfn);
            continue;
        }
        if ctx.tracing {
            let name = if f.pfn == NO_PFN { "a frame".into() } else { alloc::format!("pfn {:#x}", f.pfn) };
            ctx.lines.push(alloc::format!("d{d} {name} freed: its last reference went"));
        }
        free_frame(ctx, d, mfn, f.pfn);
    }
    if let Some(dd) = ctx.doms.get_mut(&d) {
        dd.mem.released = keep;
    }
}

/// Give a frame of `d` back to the heap: Xen's free_domheap_page (tot_pages) and
/// free_heap_pages (`set_gpfn_from_mfn(mfn, INVALID_M2P_ENTRY)`).
fn free_frame(ctx: &mut Ctx<'_, '_>, d: DomId, mfn: Mfn, pfn: u32) {
    ctx.frames.free(mfn);
    set_m2p(ctx, mfn, INVALID_M2P);
    if let Some(dd) = ctx.doms.get_mut(&d) {
        dd.mem.tot_pages = dd.mem.tot_pages.saturating_sub(1);
        if pfn != NO_PFN {
            if let Some(e) = dd.p2m.get_mut(pfn as usize) {
                if *e == mfn {
                    *e = Mfn::INVALID;
                }
            }
        }
        for v in &mut dd.vcpus {
            v.needs_flush = true;
        }
    }
}

/// `alloc_domheap_pages(d, order, memflags)`: an aligned extent of `2^order` frames for `d`,
/// scrubbed, with no M2P entry. Counted in tot_pages, which may not pass max_pages
/// (`assign_pages`: "Over-allocation"), unless `no_refcount` (MEMF_no_refcount, exchange).
fn alloc_extent(ctx: &mut Ctx<'_, '_>, d: DomId, order: u32, limit: u64, no_refcount: bool) -> Option<Mfn> {
    let n = 1u64 << order;
    if !no_refcount {
        let dd = ctx.doms.get(&d)?;
        if dd.mem.tot_pages + n > dd.mem.max_pages {
            return None;
        }
    }
    let base = ctx.frames.alloc_aligned(order, limit, Owner::Dom(d))?;
    for i in 0..n {
        let m = Mfn(base.0 + i);
        if ctx.frames.get(m).is_some_and(|f| f.dirty) {
            ctx.mem.zero_frame(m);
            ctx.frames.set_clean(m);
        }
        set_m2p(ctx, m, INVALID_M2P);
    }
    if !no_refcount {
        if let Some(dd) = ctx.doms.get_mut(&d) {
            dd.mem.tot_pages += n;
        }
    }
    Some(base)
}

/// `guest_physmap_add_page` for a PV domain: only the M2P (`set_gpfn_from_mfn`).
fn physmap_add(ctx: &mut Ctx<'_, '_>, d: DomId, gpfn: u64, mfn: Mfn, order: u32) {
    for i in 0..(1u64 << order) {
        let m = Mfn(mfn.0 + i);
        let pfn = gpfn.wrapping_add(i);
        set_m2p(ctx, m, pfn);
        if let Some(f) = ctx.frames.get_mut(m) {
            f.pfn = u32::try_from(pfn).ok().filter(|&p| p != NO_PFN).unwrap_or(NO_PFN);
        }
        if let Some(e) = ctx.doms.get_mut(&d).and_then(|dd| dd.p2m.get_mut(pfn as usize)) {
            *e = m;
        }
    }
}

/// `guest_remove_page(d, gmfn)` for a PV domain (xen/common/memory.c): GMFN is the MFN. Not a
/// machine frame: -EINVAL; not the domain's, or already given back and unreferenced (freed):
/// -ENXIO (`get_page` fails). Otherwise the allocation reference goes (`put_page_alloc_ref`);
/// the frame is freed at once if nothing else references it, else when its last reference
/// goes. Xen-heap frames stay (`put_page` never frees them).
fn guest_remove_page(ctx: &mut Ctx<'_, '_>, d: DomId, gmfn: u64) -> Result<(), Errno> {
    let mfn = Mfn(gmfn);
    let Some(f) = ctx.frames.get(mfn).copied() else { return Err(Errno::EINVAL) };
    if f.owner != Owner::Dom(d) {
        return Err(Errno::ENXIO);
    }
    let heap = xen_heap(ctx, d, mfn);
    if f.released && !busy(ctx, mfn) {
        return Err(Errno::ENXIO);
    }
    if f.released {
        return Ok(());
    }
    if let Some(fm) = ctx.frames.get_mut(mfn) {
        fm.released = true;
    }
    if heap {
        return Ok(());
    }
    if busy(ctx, mfn) {
        if let Some(dd) = ctx.doms.get_mut(&d) {
            dd.mem.released.push(mfn);
        }
    } else {
        free_frame(ctx, d, mfn, f.pfn);
    }
    Ok(())
}

/// Xen's `struct memop_args` after `construct_memop_from_reservation`.
struct Memop {
    d: DomId,
    list: u64,
    nr_extents: u64,
    order: u32,
    limit: u64,
    pod: bool,
    nr_done: u64,
}

/// `construct_memop_from_reservation` (xen/common/memory.c): the address-bits limit, and the
/// node flags (a domU may not ask for an exact node; without vNUMA a vnode is ignored).
fn construct_memop(ctx: &Ctx<'_, '_>, r: &MemoryReservation, d: DomId) -> Option<Memop> {
    let bits = r.mem_flags & memf::ADDRESS_BITS_MASK;
    let max_bits = 64 - (ctx.frames.len().max(1) - 1).leading_zeros() + 12; // get_order_from_pages(max_page) + PAGE_SHIFT
    let mut limit = u64::MAX;
    if bits != 0 && bits < max_bits {
        if bits <= 12 {
            return None;
        }
        limit = frame_limit(bits);
    }
    if r.mem_flags & memf::VNODE == 0 {
        // propagate_node: XENMEMF_get_node(x) == NUMA_NO_NODE when the node field is 0.
        let node = ((r.mem_flags >> memf::NODE_SHIFT).wrapping_sub(1)) & 0xff;
        if node != 0xff && r.mem_flags & memf::EXACT_NODE_REQUEST != 0 {
            return None;
        }
    }
    Some(Memop { d, list: r.extent_start, nr_extents: r.nr_extents, order: r.extent_order, limit, pod: false, nr_done: 0 })
}

fn increase_reservation(ctx: &mut Ctx<'_, '_>, a: &mut Memop) {
    if a.list != 0 && !subrange_okay(a.list, a.nr_done, a.nr_extents - 1) {
        return;
    }
    if a.order > DOMU_MAX_ORDER {
        return;
    }
    let mut i = a.nr_done;
    while i < a.nr_extents {
        let Some(mfn) = alloc_extent(ctx, a.d, a.order, a.limit, false) else { break };
        if a.list != 0 && ctx.write_guest(a.list.wrapping_add(i.wrapping_mul(8)), &mfn.0).is_err() {
            break;
        }
        i += 1;
    }
    a.nr_done = i;
}

fn populate_physmap(ctx: &mut Ctx<'_, '_>, a: &mut Memop) {
    if !subrange_okay(a.list, a.nr_done, a.nr_extents - 1) {
        return;
    }
    if a.order > DOMU_MAX_ORDER {
        // (With MEMF_populate_on_demand the limit is MAX_ORDER, but PoD on oneself fails anyway.)
        return;
    }
    let mut i = a.nr_done;
    while i < a.nr_extents {
        let Ok(gpfn) = ctx.read_guest::<u64>(a.list.wrapping_add(i.wrapping_mul(8))) else { break };
        if a.pod {
            // "Disallow populating PoD pages on oneself." (and a domU may target no other).
            break;
        }
        let Some(mfn) = alloc_extent(ctx, a.d, a.order, a.limit, false) else { break };
        physmap_add(ctx, a.d, gpfn, mfn, a.order);
        if ctx.write_guest(a.list.wrapping_add(i.wrapping_mul(8)), &mfn.0).is_err() {
            break;
        }
        i += 1;
    }
    a.nr_done = i;
}

fn decrease_reservation(ctx: &mut Ctx<'_, '_>, a: &mut Memop) {
    if !subrange_okay(a.list, a.nr_done, a.nr_extents - 1) || a.order > DOMU_MAX_ORDER {
        return;
    }
    let mut i = a.nr_done;
    'out: while i < a.nr_extents {
        let Ok(gmfn) = ctx.read_guest::<u64>(a.list.wrapping_add(i.wrapping_mul(8))) else { break };
        for j in 0..(1u64 << a.order) {
            if let Err(e) = guest_remove_page(ctx, a.d, gmfn.wrapping_add(j)) {
                let note = alloc::format!("extent {i}: mfn {:#x}: {e}", gmfn.wrapping_add(j));
                ctx.annotate(|n| n.push_str(&note));
                break 'out;
            }
        }
        i += 1;
    }
    a.nr_done = i;
}

/// increase_reservation, decrease_reservation, populate_physmap: the return value is the
/// number of extents done (counting from the continuation's start), never an errno.
fn reservation_op(ctx: &mut Ctx<'_, '_>, sub: u64, start: u64, arg: u64) -> i64 {
    let start_i = start as i64;
    let Ok(r) = ctx.read_guest::<MemoryReservation>(arg) else { return start_i };
    ctx.describe(|d| {
        *d = alloc::format!(
            "memory_op({}, {} extent{} of order {})",
            sub_name(sub).unwrap_or("?"),
            r.nr_extents,
            if r.nr_extents == 1 { "" } else { "s" },
            r.extent_order
        )
    });
    // "Is size too large for us to encode a continuation?"
    if r.nr_extents > (u32::MAX as u64 >> MEMOP_EXTENT_SHIFT) || start >= r.nr_extents {
        return start_i;
    }
    let Some(d) = by_any_id(ctx, r.domid) else { return start_i };
    let Some(mut a) = construct_memop(ctx, &r, d) else { return start_i };
    a.nr_done = start;
    if sub == op::POPULATE_PHYSMAP && r.mem_flags & memf::POPULATE_ON_DEMAND != 0 {
        a.pod = true;
    }
    // xsm_memory_adjust_reservation(XSM_TARGET): a domU may only change its own.
    if xsm_target(ctx, d).is_err() {
        return start_i;
    }
    match sub {
        op::INCREASE_RESERVATION => increase_reservation(ctx, &mut a),
        op::DECREASE_RESERVATION => decrease_reservation(ctx, &mut a),
        _ => populate_physmap(ctx, &mut a),
    }
    a.nr_done as i64
}

/// `memory_exchange` (xen/common/memory.c), for a PV domain.
fn exchange(ctx: &mut Ctx<'_, '_>, arg: u64) -> Result<i64, Errno> {
    let mut x: MemoryExchange = ctx.read_guest(arg)?;
    ctx.describe(|d| {
        *d = alloc::format!(
            "memory_op(exchange, {} extents of order {} for order {})",
            x.input.nr_extents,
            x.input.extent_order,
            x.output.extent_order
        )
    });
    let field = arg.wrapping_add(64);
    let fail_early = |ctx: &mut Ctx<'_, '_>, x: &MemoryExchange, rc: Errno| -> Result<i64, Errno> {
        ctx.write_guest(field, &x.nr_exchanged)?;
        Err(rc)
    };
    let (ino, outo) = (x.input.extent_order, x.output.extent_order);
    if ino.max(outo) > DOMU_MAX_ORDER {
        return fail_early(ctx, &x, Errno::EPERM);
    }
    let (inn, outn) = (x.input.nr_extents, x.output.nr_extents);
    let shr = |o: u32| if o >= 64 { 0 } else { !0u64 >> o };
    if x.nr_exchanged > inn || x.input.domid != x.output.domid || shr(ino) < inn || shr(outo) < outn || inn << ino != outn << outo {
        return fail_early(ctx, &x, Errno::EINVAL);
    }
    if x.nr_exchanged == inn {
        return Ok(0);
    }
    if !subrange_okay(x.input.extent_start, x.nr_exchanged, inn - 1) {
        return fail_early(ctx, &x, Errno::EFAULT);
    }
    let (in_chunk, out_chunk) = if ino <= outo { (outo - ino, 0) } else { (0, ino - outo) };
    let out_first = if ino <= outo { x.nr_exchanged >> in_chunk } else { x.nr_exchanged << out_chunk };
    if !subrange_okay(x.output.extent_start, out_first, outn - 1) {
        return fail_early(ctx, &x, Errno::EFAULT);
    }
    // propagate_node(out.mem_flags): a domU may not ask for an exact node.
    let node = ((x.output.mem_flags >> memf::NODE_SHIFT).wrapping_sub(1)) & 0xff;
    if node != 0xff && x.output.mem_flags & memf::EXACT_NODE_REQUEST != 0 {
        return fail_early(ctx, &x, Errno::EINVAL);
    }
    let Some(d) = by_any_id(ctx, x.input.domid) else { return fail_early(ctx, &x, Errno::ESRCH) };
    if let Err(e) = xsm_target(ctx, d) {
        return fail_early(ctx, &x, e);
    }
    let bits = x.output.mem_flags & memf::ADDRESS_BITS_MASK;
    let limit = if bits == 0 || bits <= 12 {
        if bits == 0 {
            u64::MAX
        } else {
            0
        }
    } else {
        frame_limit(bits)
    };

    let mut rc: Result<(), Errno> = Ok(());
    let mut i = x.nr_exchanged >> in_chunk;
    let end = inn >> in_chunk;
    while i < end {
        // Steal a chunk's worth of input pages: each must be the domain's, allocated, and
        // referenced by nothing else (steal_page: exactly the allocation reference and ours).
        let mut stolen: Vec<Mfn> = Vec::new();
        let mut err = None;
        'steal: for j in 0..(1u64 << in_chunk) {
            let Ok(gmfn) = ctx.read_guest::<u64>(x.input.extent_start.wrapping_add(((i << in_chunk) + j).wrapping_mul(8))) else {
                err = Some(Errno::EFAULT);
                break;
            };
            for k in 0..(1u64 << ino) {
                let mfn = Mfn(gmfn.wrapping_add(k));
                let Some(f) = ctx.frames.get(mfn).copied() else {
                    err = Some(Errno::EINVAL);
                    break 'steal;
                };
                let why = if f.owner != Owner::Dom(d) {
                    "not the domain's"
                } else if f.released || stolen.contains(&mfn) {
                    "already given back"
                } else if xen_heap(ctx, d, mfn) {
                    "a Xen-heap page"
                } else if busy(ctx, mfn) {
                    "still referenced"
                } else {
                    ""
                };
                if !why.is_empty() {
                    let note = alloc::format!("mfn {:#x} cannot be stolen: {why}", mfn.0);
                    ctx.annotate(|n| n.push_str(&note));
                    err = Some(Errno::EINVAL);
                    break 'steal;
                }
                stolen.push(mfn);
            }
        }
        if let Some(e) = err {
            rc = Err(e);
            break;
        }
        // Allocate a chunk's worth of output pages (MEMF_no_owner: outside tot_pages).
        let mut out: Vec<Mfn> = Vec::new();
        for _ in 0..(1u64 << out_chunk) {
            match alloc_extent(ctx, d, outo, limit, true) {
                Some(m) => out.push(m),
                None => break,
            }
        }
        if out.len() as u64 != 1u64 << out_chunk {
            for m in out {
                for k in 0..(1u64 << outo) {
                    ctx.frames.free(Mfn(m.0 + k));
                }
            }
            rc = Err(Errno::ENOMEM);
            break;
        }
        // Success: the input pages go back to the heap (tot_pages unchanged: the output pages
        // take their place), the output pages go into the physmap.
        for m in stolen {
            let pfn = ctx.frames.get(m).map(|f| f.pfn).unwrap_or(NO_PFN);
            free_frame(ctx, d, m, pfn);
            if let Some(dd) = ctx.doms.get_mut(&d) {
                dd.mem.tot_pages += 1;
            }
        }
        let mut chunk_rc = Ok(());
        for (j, m) in out.into_iter().enumerate() {
            let slot = x.output.extent_start.wrapping_add(((i << out_chunk) + j as u64).wrapping_mul(8));
            let Ok(gpfn) = ctx.read_guest::<u64>(slot) else {
                chunk_rc = Err(Errno::EFAULT);
                continue;
            };
            physmap_add(ctx, d, gpfn, m, outo);
            if ctx.write_guest(slot, &m.0).is_err() {
                chunk_rc = Err(Errno::EFAULT);
            }
        }
        if let Err(e) = chunk_rc {
            rc = Err(e);
            break;
        }
        i += 1;
    }
    if let Err(e) = rc {
        x.nr_exchanged = i << in_chunk;
        ctx.write_guest(field, &x.nr_exchanged)?;
        return Err(e);
    }
    x.nr_exchanged = inn;
    ctx.write_guest(field, &x.nr_exchanged)?;
    Ok(0)
}

/// XENMEM_machphys_mfn_list (x86_64/mm.c subarch_memory_op): the machine frame of each 2 MiB of
/// the M2P, for as many 2 MiB chunks as the M2P has (up to max_extents).
fn machphys_mfn_list(ctx: &mut Ctx<'_, '_>, arg: u64) -> Result<i64, Errno> {
    let mut l: MachphysMfnList = ctx.read_guest(arg)?;
    let m2p_bytes = ctx.frames.len() * 8;
    let chunks = m2p_bytes.div_ceil(2 << 20);
    let mut i = 0u64;
    while i != l.max_extents as u64 && i < chunks {
        let mfn = ctx.xen.m2p.0 + i * 512;
        ctx.write_guest(l.extent_start.wrapping_add(i * 8), &mfn)?;
        i += 1;
    }
    l.nr_extents = i as u32;
    ctx.write_guest(arg, &l)?;
    Ok(0)
}

pub fn memory_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (a[0], a[1]);
    let sub = cmd & MEMOP_CMD_MASK;
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    let name = sub_name(sub);
    ctx.describe(|d| {
        *d = match (name, start) {
            (Some(n), 0) => alloc::format!("memory_op({n})"),
            (Some(n), s) => alloc::format!("memory_op({n}, start {s})"),
            (None, _) => alloc::format!("memory_op({cmd})"),
        }
    });
    reclaim(ctx);
    let r = memory_op_inner(ctx, sub, start, cmd, arg);
    reclaim(ctx);
    r
}

fn memory_op_inner(ctx: &mut Ctx<'_, '_>, sub: u64, start: u64, cmd: u64, arg: u64) -> Result<i64, Errno> {
    match sub {
        op::INCREASE_RESERVATION | op::DECREASE_RESERVATION | op::POPULATE_PHYSMAP => Ok(reservation_op(ctx, sub, start, arg)),
        op::EXCHANGE => {
            if start != 0 {
                return Err(Errno::EINVAL);
            }
            exchange(ctx, arg)
        }
        op::MAXIMUM_RAM_PAGE => {
            if start != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(ctx.frames.len() as i64) // max_page
        }
        op::CURRENT_RESERVATION | op::MAXIMUM_RESERVATION | op::MAXIMUM_GPFN => {
            if start != 0 {
                return Err(Errno::EINVAL);
            }
            let domid: u16 = ctx.read_guest(arg)?;
            let d = by_any_id(ctx, domid).ok_or(Errno::ESRCH)?;
            xsm_target(ctx, d)?; // xsm_memory_stat_reservation(XSM_TARGET)
            let dd = &ctx.doms[&d];
            Ok(match sub {
                op::CURRENT_RESERVATION => dd.mem.tot_pages as i64,
                op::MAXIMUM_RESERVATION => dd.mem.max_pages as i64,
                _ => {
                    // domain_get_maximum_gpfn for PV: (shared_info.arch.max_pfn ?: 1) - 1, the
                    // guest's own count of pfns (xen/arch/x86/mm.c).
                    let a = dd.shared_info.maddr().add(core::mem::offset_of!(crate::abi::SharedInfo, max_pfn) as u64);
                    let max_pfn = ctx.mem.read_u64(a).unwrap_or(0);
                    (max_pfn.max(1) - 1) as i64
                }
            })
        }
        op::ADD_TO_PHYSMAP => {
            // "Check for malicious or buggy input": size is 16 bits.
            if start > u16::MAX as u64 {
                return Err(Errno::EDOM);
            }
            let x: AddToPhysmap = ctx.read_guest(arg)?;
            if x.space == mapspace::GMFN_FOREIGN {
                return Err(Errno::ENOSYS);
            }
            by_any_id(ctx, x.domid).ok_or(Errno::ESRCH)?;
            // xatp_permission_check: a PV domain is not translated.
            Err(Errno::EACCES)
        }
        op::ADD_TO_PHYSMAP_BATCH => {
            if start > u16::MAX as u64 {
                return Err(Errno::EDOM);
            }
            let x: AddToPhysmapBatch = ctx.read_guest(arg)?;
            if x.space as u32 == mapspace::GMFN_RANGE {
                return Err(Errno::EOPNOTSUPP);
            }
            by_any_id(ctx, x.domid).ok_or(Errno::ESRCH)?;
            Err(Errno::EACCES)
        }
        op::REMOVE_FROM_PHYSMAP => {
            if start != 0 {
                return Err(Errno::EINVAL);
            }
            let x: RemoveFromPhysmap = ctx.read_guest(arg)?;
            by_any_id(ctx, x.domid).ok_or(Errno::ESRCH)?;
            Err(Errno::EACCES) // PV: not paging_mode_translate
        }
        op::CLAIM_PAGES => {
            if start != 0 {
                return Err(Errno::EINVAL);
            }
            let r: MemoryReservation = ctx.read_guest(arg)?;
            if r.extent_start != 0 || r.extent_order != 0 || r.mem_flags != 0 {
                return Err(Errno::EINVAL);
            }
            by_id(ctx, r.domid).ok_or(Errno::EINVAL)?;
            Err(Errno::EPERM) // xsm_claim_pages(XSM_PRIV)
        }
        op::GET_VNUMAINFO => {
            if start != 0 {
                return Err(Errno::EINVAL);
            }
            let t: VnumaTopologyInfo = ctx.read_guest(arg)?;
            if t.pad != 0 {
                return Err(Errno::EINVAL);
            }
            let d = by_any_id(ctx, t.domid).ok_or(Errno::ESRCH)?;
            xsm_target(ctx, d)?;
            Err(Errno::EOPNOTSUPP) // no vNUMA: d->vnuma is NULL
        }
        op::RESERVED_DEVICE_MEMORY_MAP => {
            // CONFIG_HAS_PASSTHROUGH (x86): no IOMMU here reports any region.
            if start != 0 {
                return Err(Errno::EINVAL);
            }
            let mut m: ReservedDeviceMemoryMap = ctx.read_guest(arg)?;
            if !subrange_okay(m.buffer, 0, (m.nr_entries as u64).wrapping_sub(1)) && m.nr_entries != 0 {
                return Err(Errno::EFAULT);
            }
            if m.flags & !RDM_ALL != 0 {
                return Err(Errno::EINVAL);
            }
            m.nr_entries = 0;
            ctx.write_guest(arg, &m)?;
            Ok(0)
        }
        op::ACCESS_OP => {
            // mem_access_memop: rcu_lock_live_remote_domain_by_id, then PV fails the sanity check.
            let m: MemAccessOp = ctx.read_guest(arg)?;
            let d = by_id(ctx, m.domid).ok_or(Errno::ESRCH)?;
            if d == ctx.dom {
                return Err(Errno::EPERM);
            }
            Err(Errno::EINVAL) // p2m_mem_access_sanity_check: not an HVM domain
        }
        op::ACQUIRE_RESOURCE => {
            let m: MemAcquireResource = ctx.read_guest(arg)?;
            if m.pad != 0 || m.frame >> 32 != 0 || (m.frame.wrapping_add(m.nr_frames as u64)) >> 32 != 0 {
                return Err(Errno::EINVAL);
            }
            // rcu_lock_remote_domain_by_id, then xsm_domain_resource_map(XSM_DM_PRIV).
            let d = by_id(ctx, m.domid).ok_or(Errno::ESRCH)?;
            if d == ctx.dom {
                return Err(Errno::EPERM);
            }
            Err(Errno::EPERM)
        }
        op::GET_SHARING_FREED_PAGES | op::GET_SHARING_SHARED_PAGES if start == 0 => {
            Ok(0) // no memory sharing (CONFIG_MEM_SHARING off): nothing saved or shared
        }
        op::MEMORY_MAP if start == 0 => {
            // xen/arch/x86/mm.c arch_memory_op: the map the toolstack set; none (a domain
            // xl builds gets none in 4.17) is -ENOSYS, "backwards compatibility", and the guest
            // falls back to start_info.nr_pages.
            let mut map: MemoryMap = ctx.read_guest(arg)?;
            let Some(e820) = ctx.domain_ref().mem.e820.clone().filter(|e| !e.is_empty()) else {
                ctx.annotate(|n| n.push_str("no memory map set"));
                return Err(Errno::ENOSYS);
            };
            map.nr_entries = map.nr_entries.min(e820.len() as u32);
            for (i, e) in e820.iter().take(map.nr_entries as usize).enumerate() {
                ctx.write_guest(map.buffer.wrapping_add(i as u64 * 20), e)?;
            }
            ctx.write_guest(arg, &map)?;
            Ok(0)
        }
        op::SET_MEMORY_MAP if start == 0 => {
            let f: ForeignMemoryMap = ctx.read_guest(arg)?;
            if f.map.nr_entries > E820MAX {
                return Err(Errno::EINVAL);
            }
            let d = by_any_id(ctx, f.domid).ok_or(Errno::ESRCH)?;
            // xsm_domain_memory_map(XSM_TARGET): a domU may set its own map, no other.
            xsm_target(ctx, d)?;
            let mut v = Vec::with_capacity(f.map.nr_entries as usize);
            for i in 0..f.map.nr_entries as u64 {
                v.push(ctx.read_guest::<E820Entry>(f.map.buffer.wrapping_add(i * 20))?);
            }
            if let Some(dd) = ctx.doms.get_mut(&d) {
                dd.mem.e820 = Some(v);
            }
            Ok(0)
        }
        op::MACHINE_MEMORY_MAP if start == 0 => Err(Errno::EPERM), // xsm_machine_memory_map(XSM_PRIV)
        op::MACHPHYS_MAPPING if start == 0 => {
            // A domU is not the hardware domain: max_mfn is the whole M2P range.
            let m = MachphysMapping {
                v_start: RO_MPT_VIRT_START,
                v_end: RO_MPT_VIRT_END,
                max_mfn: ((RO_MPT_VIRT_END - RO_MPT_VIRT_START) >> 3) - 1,
            };
            ctx.write_guest(arg, &m)?;
            Ok(0)
        }
        op::SET_POD_TARGET | op::GET_POD_TARGET if start == 0 => {
            // CONFIG_HVM: a PV domain has no PoD target.
            let t: PodTarget = ctx.read_guest(arg)?;
            by_any_id(ctx, t.domid).ok_or(Errno::ESRCH)?;
            Err(Errno::EINVAL)
        }
        op::MACHPHYS_MFN_LIST if start == 0 => machphys_mfn_list(ctx, arg),
        _ => {
            // Everything else reaches subarch_memory_op's default: -ENOSYS. That covers
            // paging_op and sharing_op (CONFIG_MEM_PAGING / CONFIG_MEM_SHARING are off in the
            // default build), machphys_compat_mfn_list (no 32-bit PV), and any x86 sub-op with
            // continuation bits set (arch_memory_op switches on the whole cmd).
            let _ = cmd;
            Err(Errno::ENOSYS)
        }
    }
}
