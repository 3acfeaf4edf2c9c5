//! vCPU state behind `vcpu_op`: initialisation from a `vcpu_guest_context` (Xen's
//! arch_set_info_guest for a 64-bit PV vCPU, xen/arch/x86/domain.c), runstate accounting and the
//! guest's runstate area, the secondary vcpu_time_info copy, and the periodic timer (Xen's
//! common/sched/core.c).

use crate::abi::hypercall::{vcpu_op as vop, vgcf, vm_assist as vma};
use crate::abi::{self, shinfo, Errno, VcpuGuestContext, VcpuRunstateInfo};
use crate::domain::{DomState, Domain, Vcpu, VcpuState};
use crate::mm::frames::FrameTable;
use crate::mm::memory::Pod;
use crate::mm::pagetable::{PtCtx, XenSlots};
use crate::mm::paging::{self, in_xen_range, is_canonical};
use crate::mm::{MachineMemory, Maddr, Mfn, PAGE_SIZE};
use crate::DomId;
use alloc::collections::BTreeMap;

/// A vCPU's periodic timer (VCPUOP_set_periodic_timer): fires VIRQ_TIMER every `period` ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Periodic {
    pub period: u64,
    /// When it last fired (Xen's `periodic_last_event`).
    pub last: u64,
}

impl Periodic {
    pub fn next(&self) -> u64 {
        self.last.saturating_add(self.period)
    }
}

/// What vcpu_op keeps per vCPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuOpState {
    /// Has a context (vCPU 0 from the builder, others from VCPUOP_initialise): Xen's
    /// `is_initialised`. Only then does `guest_table` hold a type reference.
    pub initialised: bool,
    /// Xen's `v->runstate`.
    pub runstate: VcpuRunstateInfo,
    /// Guest virtual address of the registered runstate area.
    pub runstate_area: Option<u64>,
    /// Guest virtual address of the registered secondary vcpu_time_info.
    pub time_area: Option<u64>,
    pub periodic: Option<Periodic>,
    /// VCPUOP_send_nmi was called and the NMI not yet delivered.
    pub nmi_pending: bool,
    /// An NMI was delivered and the guest has not yet returned with HYPERVISOR_iret (Xen's
    /// `nmi_masked`).
    pub nmi_masked: bool,
    /// On a (virtual) CPU: its runstate is running. The periodic timer only ticks then.
    pub on_cpu: bool,
    /// The guest's LDT: linear address and number of entries (MMUEXT_SET_LDT,
    /// VCPUOP_initialise); not loaded into the CPU (see `crate::desc::set_ldt`).
    pub ldt_base: u64,
    pub ldt_ents: u64,
}

/// Xen's default period for a PV vCPU: "PV guests by default have a 100Hz ticker"
/// (pv/domain.c: pv_vcpu_initialise, MILLISECS(10)).
pub const DEFAULT_PERIOD_NS: u64 = 10_000_000;

impl VcpuOpState {
    /// vCPU 0 starts initialised and running, the others offline (Xen's vcpu_create).
    pub fn new(boot: bool, now: u64) -> Self {
        let state = if boot { vop::RUNSTATE_RUNNABLE } else { vop::RUNSTATE_OFFLINE };
        VcpuOpState {
            initialised: boot,
            runstate: VcpuRunstateInfo { state: state as i32, state_entry_time: now, ..Default::default() },
            // periodic_last_event starts at zero.
            periodic: Some(Periodic { period: DEFAULT_PERIOD_NS, last: 0 }),
            ..Default::default()
        }
    }
}

/// Write `data` at guest virtual `va` through the vCPU's kernel page tables, as the guest kernel
/// may (user-accessible and writable at every level; never the hypervisor's range). False when
/// any byte is not writable there (nothing is written then).
pub fn guest_write(mem: &mut MachineMemory<'_>, v: &Vcpu, va: u64, data: &[u8]) -> bool {
    let l4 = Mfn(v.cpu.cr3 >> 12);
    let l4 = if v.kernel_mode { l4 } else { v.guest_table };
    let mut chunks = alloc::vec::Vec::new();
    let mut done = 0usize;
    while done < data.len() {
        let Some(a) = va.checked_add(done as u64) else { return false };
        if in_xen_range(a) || !is_canonical(a) {
            return false;
        }
        let Ok(w) = paging::walk(mem, l4, a) else { return false };
        if !w.user || !w.writable {
            return false;
        }
        let n = ((PAGE_SIZE - w.maddr.offset()) as usize).min(data.len() - done);
        chunks.push((w.maddr, done, n));
        done += n;
    }
    chunks.into_iter().all(|(m, off, n)| mem.write(m, &data[off..off + n]).is_some())
}

/// The runstate a vCPU that is not on a CPU is in (Xen: blocked dominates offline).
pub fn idle_state(d: &Domain, v: &Vcpu) -> u32 {
    match v.state {
        VcpuState::Blocked => vop::RUNSTATE_BLOCKED,
        VcpuState::Down => vop::RUNSTATE_OFFLINE,
        VcpuState::Runnable if d.is_paused() || d.state != DomState::Running => vop::RUNSTATE_OFFLINE,
        VcpuState::Runnable => vop::RUNSTATE_RUNNABLE,
    }
}

/// Xen's vcpu_runstate_change: account the time in the old state, enter the new one.
pub fn runstate_change(v: &mut Vcpu, new: u32, now: u64) {
    let r = &mut v.op.runstate;
    let old = (r.state as usize).min(3);
    let entry = r.state_entry_time & !vop::XEN_RUNSTATE_UPDATE;
    r.time[old] = r.time[old].wrapping_add(now.saturating_sub(entry));
    r.state = new as i32;
    r.state_entry_time = now;
}

/// Xen's vcpu_runstate_get: the runstate with the time in the current state counted up to now.
pub fn runstate_get(v: &Vcpu, now: u64) -> VcpuRunstateInfo {
    let mut r = v.op.runstate;
    let s = (r.state as usize).min(3);
    r.time[s] = r.time[s].wrapping_add(now.saturating_sub(r.state_entry_time));
    r
}

/// Write the runstate into the guest's registered area (Xen's update_runstate_area): with
/// VMASST_TYPE_runstate_update_flag, `XEN_RUNSTATE_UPDATE` is set in `state_entry_time` first and
/// cleared once the copy is complete. A failed write is ignored, as Xen ignores it.
pub fn write_runstate_area(mem: &mut MachineMemory<'_>, v: &Vcpu, update_flag: bool) {
    let Some(va) = v.op.runstate_area else { return };
    let mut r = v.op.runstate;
    if update_flag {
        r.state_entry_time |= vop::XEN_RUNSTATE_UPDATE;
        if !guest_write(mem, v, va + 8, &r.state_entry_time.to_le_bytes()) {
            return;
        }
    }
    guest_write(mem, v, va, r.as_bytes());
    if update_flag {
        r.state_entry_time &= !vop::XEN_RUNSTATE_UPDATE;
        guest_write(mem, v, va + 8, &r.state_entry_time.to_le_bytes());
    }
}

/// Bring a vCPU's runstate in line with its scheduling state (a wake-up while it was off the CPU).
pub fn sync_idle(d: &mut Domain, vi: usize, now: u64) {
    let s = idle_state(d, &d.vcpus[vi]);
    let v = &mut d.vcpus[vi];
    if v.op.runstate.state as u32 != s && v.op.runstate.state as u32 != vop::RUNSTATE_RUNNING {
        runstate_change(v, s, now);
    }
}

/// A context switch (Xen's schedule → context_switch): the vCPU that was on the CPU leaves it in
/// the state its scheduling state says, `next` (if any) runs; each registered runstate area is
/// written.
pub fn context_switch(
    doms: &mut BTreeMap<DomId, Domain>,
    mem: &mut MachineMemory<'_>,
    now: u64,
    on_cpu: &mut Option<(DomId, u32)>,
    next: Option<(DomId, u32)>,
) {
    if *on_cpu == next {
        return;
    }
    if let Some((pd, pv)) = on_cpu.take() {
        if let Some(d) = doms.get_mut(&pd) {
            if (pv as usize) < d.vcpus.len() {
                let s = idle_state(d, &d.vcpus[pv as usize]);
                let flag = d.vm_assist & (1 << vma::TYPE_RUNSTATE_UPDATE_FLAG) != 0;
                let v = &mut d.vcpus[pv as usize];
                runstate_change(v, s, now);
                v.op.on_cpu = false;
                write_runstate_area(mem, v, flag);
            }
        }
    }
    if let Some((nd, nv)) = next {
        if let Some(d) = doms.get_mut(&nd) {
            if (nv as usize) < d.vcpus.len() {
                let flag = d.vm_assist & (1 << vma::TYPE_RUNSTATE_UPDATE_FLAG) != 0;
                let v = &mut d.vcpus[nv as usize];
                runstate_change(v, vop::RUNSTATE_RUNNING, now);
                v.op.on_cpu = true;
                write_runstate_area(mem, v, flag);
                *on_cpu = next;
                // vcpu_periodic_timer_work on the vCPU switched in: overdue, it fires now.
                if periodic_tick(v, now) {
                    if let Some(p) = d.evtchn.virq_port(abi::hypercall::virq::TIMER, nv) {
                        crate::evtchn::raise(mem, d, p);
                    }
                }
            }
        }
    }
}

/// Copy the vCPU's vcpu_info time into its registered secondary vcpu_time_info (Xen's
/// update_secondary_system_time): version made odd, the body written, version made even.
pub fn publish_time(mem: &mut MachineMemory<'_>, v: &Vcpu) {
    let Some(va) = v.op.time_area else { return };
    let mut t = [0u8; 32];
    if mem.read(v.vcpu_info.add(shinfo::TIME), &mut t).is_none() {
        return;
    }
    let ver = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let odd = (ver | 1).to_le_bytes();
    if !guest_write(mem, v, va, &odd) {
        return;
    }
    t[0..4].copy_from_slice(&odd);
    guest_write(mem, v, va, &t);
    guest_write(mem, v, va, &((ver | 1).wrapping_add(1)).to_le_bytes());
}

/// When the vCPU's periodic timer fires next, if it is armed: only while the vCPU is on a CPU
/// (Xen's sched_context_switch stops the previous vCPU's periodic timer and arms the next's).
pub fn periodic_deadline(v: &Vcpu) -> Option<u64> {
    v.op.periodic.filter(|_| v.op.on_cpu).map(|p| p.next())
}

/// The periodic timer is due at `now`: it fires and rearms (Xen's
/// vcpu_periodic_timer_work_locked). True when it fired. It ticks only while the vCPU is on a
/// CPU; [`context_switch`] catches it up when the vCPU is switched in.
pub fn periodic_tick(v: &mut Vcpu, now: u64) -> bool {
    if !v.op.on_cpu {
        return false;
    }
    match v.op.periodic.as_mut() {
        Some(p) if now >= p.next() => {
            p.last = now;
            true
        }
        _ => false,
    }
}

/// The selector with its RPL raised to the 64-bit PV guest kernel's (3): Xen's
/// fixup_guest_{code,stack}_selector.
fn fixup_selector(sel: u16) -> u16 {
    if sel & 3 >= 3 {
        sel
    } else {
        (sel & !3) | 3
    }
}

/// VCPUOP_initialise for a vCPU that has no context yet (Xen's arch_set_info_guest for a 64-bit
/// PV domain, in its order of checks). On success the vCPU holds the new context and stays down
/// unless `VGCF_online` is set.
pub fn initialise(
    frames: &mut FrameTable,
    mem: &mut MachineMemory<'_>,
    xen_slots: &XenSlots,
    d: &mut Domain,
    vi: usize,
    c: &VcpuGuestContext,
    now: u64,
) -> Result<(), Errno> {
    let dom = d.id;
    if d.vcpus[vi].op.initialised {
        return Err(Errno::EEXIST);
    }
    let u = &c.user_regs;
    let canon = [
        u.rip,
        u.rsp,
        c.kernel_sp,
        if c.ldt_ents != 0 { c.ldt_base } else { 0 },
        c.fs_base,
        c.gs_base_kernel,
        c.gs_base_user,
        c.event_callback_eip,
        c.syscall_callback_eip,
        c.failsafe_callback_eip,
    ];
    if canon.iter().any(|&a| !is_canonical(a)) || c.trap_ctxt.iter().any(|t| !is_canonical(t.address)) {
        return Err(Errno::EINVAL);
    }
    // __addr_ok(ldt_base), then the LDT safety checks.
    if in_xen_range(c.ldt_base) || c.ldt_base & (PAGE_SIZE - 1) != 0 || c.ldt_ents > 8192 {
        return Err(Errno::EINVAL);
    }
    let in_kernel = c.flags & vgcf::IN_KERNEL != 0;
    if !in_kernel && c.ctrlreg[1] == 0 {
        return Err(Errno::EINVAL);
    }
    // The GDT, then the page tables; a failure undoes the GDT (pv_destroy_gdt).
    let nr = (c.gdt_ents.min(abi::FIRST_RESERVED_GDT_ENTRY as u64 + 1)).div_ceil(512) as usize;
    let list: alloc::vec::Vec<u64> = c.gdt_frames.iter().copied().take(nr.min(16)).collect();
    crate::desc::set_gdt(frames, mem, dom, &mut d.vcpus[vi], &list, c.gdt_ents)?;
    let kernel = Mfn(c.ctrlreg[3] >> 12);
    let user = (c.ctrlreg[1] != 0).then_some(Mfn(c.ctrlreg[1] >> 12));
    {
        let mut pt = PtCtx { frames: &mut *frames, mem: &mut *mem, dom, xen_slots };
        let r = pt.get_type(kernel, 4).and_then(|()| match user {
            Some(u) => pt.get_type(u, 4).inspect_err(|_| pt.put_type(kernel)),
            None => Ok(()),
        });
        if let Err(e) = r {
            crate::desc::destroy_gdt(frames, &mut d.vcpus[vi]);
            return Err(e);
        }
    }
    let v = &mut d.vcpus[vi];
    v.trap_table = c.trap_ctxt;
    for t in v.trap_table.iter_mut() {
        t.cs = fixup_selector(t.cs);
    }
    v.callbacks.event = c.event_callback_eip;
    v.callbacks.failsafe = c.failsafe_callback_eip;
    v.callbacks.syscall = c.syscall_callback_eip;
    v.callbacks.syscall_mask_events = c.flags & vgcf::SYSCALL_DISABLES_EVENTS != 0;
    v.kernel_ss = fixup_selector(c.kernel_ss as u16);
    v.kernel_sp = c.kernel_sp;
    v.guest_table = kernel;
    v.guest_table_user = user;
    v.kernel_mode = in_kernel;
    // "non-nul selector kills fs_base / gs_base_user".
    let fs_base = if u.fs & !3 == 0 { c.fs_base } else { 0 };
    v.gs_base_kernel = c.gs_base_kernel;
    v.gs_base_user = if u.gs & !3 == 0 { c.gs_base_user } else { 0 };
    // IOPL is virtualised; real interrupts stay enabled.
    v.privs.iopl = ((u.rflags >> 12) & 3) as u8;
    v.privs.cr0_ts = c.ctrlreg[0] & (1 << 3) != 0;
    let gdt = v.cpu.gdt;
    v.cpu = crate::platform::CpuState {
        rax: u.rax,
        rbx: u.rbx,
        rcx: u.rcx,
        rdx: u.rdx,
        rsi: u.rsi,
        rdi: u.rdi,
        rbp: u.rbp,
        rsp: u.rsp,
        r8: u.r8,
        r9: u.r9,
        r10: u.r10,
        r11: u.r11,
        r12: u.r12,
        r13: u.r13,
        r14: u.r14,
        r15: u.r15,
        rip: u.rip,
        rflags: (u.rflags & !(3 << 12)) | (1 << 9) | 2,
        cs: fixup_selector(u.cs),
        ss: fixup_selector(u.ss),
        fs_base,
        gs_base: if in_kernel { v.gs_base_kernel } else { v.gs_base_user },
        cr3: if in_kernel { kernel.maddr().0 } else { user.unwrap_or(kernel).maddr().0 },
        gdt,
    };
    v.needs_flush = true;
    v.started = false;
    v.op.ldt_base = c.ldt_base;
    v.op.ldt_ents = c.ldt_ents;
    v.op.initialised = true;
    if c.flags & vgcf::ONLINE != 0 && v.state == VcpuState::Down {
        v.state = VcpuState::Runnable;
        runstate_change(v, vop::RUNSTATE_RUNNABLE, now);
    }
    Ok(())
}

/// Where VCPUOP_register_vcpu_info may put a vcpu_info (Xen's map_vcpu_info): -ENXIO for an
/// offset that does not leave room for it or is not aligned to it.
pub fn vcpu_info_offset_ok(offset: u32) -> bool {
    (offset as u64) <= PAGE_SIZE - shinfo::VCPU_INFO_SIZE && offset.is_multiple_of(8)
}

/// A guest handle Xen's guest_handle_okay accepts for `len` bytes: not reaching into the
/// hypervisor's range (64-bit PV `__addr_ok`).
pub fn handle_okay(va: u64, len: u64) -> bool {
    let end = va.wrapping_add(len.saturating_sub(1));
    end >= va && !in_xen_range(va) && !in_xen_range(end) && is_canonical(va) && is_canonical(end)
}

/// Machine address helper for tests and traces.
pub fn vcpu_info_maddr(mfn: Mfn, offset: u32) -> Maddr {
    Maddr(mfn.maddr().0 + offset as u64)
}
