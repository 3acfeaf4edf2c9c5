//! vCPU-state hypercalls: trap table, callbacks, iret, stacks, GDT, segment bases, vcpu_op,
//! vm_assist.

use super::Ctx;
use crate::abi::hypercall::{callback as cb, segbase, vcpu_op as vop, vm_assist as vma, VGCF_IN_SYSCALL};
use crate::abi::{self, shinfo, CallbackRegister, CallbackUnregister, Errno, IretContext, RegisterVcpuInfo, TrapInfo};
use crate::domain::VcpuState;
use crate::mm::frames::{Owner, PageType};
use crate::mm::paging::{in_xen_range, is_canonical};
use crate::mm::{Maddr, Mfn};

const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_IOPL: u64 = 3 << 12;
const RFLAGS_VM: u64 = 1 << 17;

pub fn set_trap_table(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let ptr = a[0];
    ctx.describe(|d| *d = "set_trap_table(...)".into());
    if ptr == 0 {
        ctx.cur().trap_table = [TrapInfo::default(); 256];
        ctx.describe(|d| *d = "set_trap_table(clear)".into());
        return Ok(0);
    }
    let mut n = 0;
    let mut table = ctx.cur_ref().trap_table;
    loop {
        let ti: TrapInfo = ctx.read_guest(ptr.wrapping_add(n * 16))?;
        if ti.address == 0 {
            break;
        }
        table[ti.vector as usize] = ti;
        n += 1;
        if n > 256 {
            return Err(Errno::EINVAL);
        }
    }
    ctx.cur().trap_table = table;
    ctx.describe(|d| *d = alloc::format!("set_trap_table({n} entries)"));
    Ok(0)
}

pub fn set_callbacks(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (event, failsafe, syscall) = (a[0], a[1], a[2]);
    ctx.describe(|d| *d = alloc::format!("set_callbacks(event {event:#x}, failsafe {failsafe:#x}, syscall {syscall:#x})"));
    for addr in [event, failsafe, syscall] {
        if in_xen_range(addr) || !is_canonical(addr) {
            return Err(Errno::EINVAL);
        }
    }
    let c = &mut ctx.cur().callbacks;
    c.event = event;
    c.failsafe = failsafe;
    c.syscall = syscall;
    Ok(0)
}

fn cb_name(ty: u32) -> &'static str {
    match ty {
        cb::TYPE_EVENT => "event",
        cb::TYPE_FAILSAFE => "failsafe",
        cb::TYPE_SYSCALL => "syscall",
        cb::TYPE_SYSCALL32 => "syscall32",
        cb::TYPE_NMI => "nmi",
        cb::TYPE_SYSENTER => "sysenter",
        _ => "?",
    }
}

pub fn callback_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, arg) = (a[0], a[1]);
    match cmd {
        cb::OP_REGISTER => {
            ctx.describe(|d| *d = "callback_op(register)".into());
            let r: CallbackRegister = ctx.read_guest(arg)?;
            ctx.describe(|d| *d = alloc::format!("callback_op(register, {} {:#x})", cb_name(r.ty as u32), r.address));
            if in_xen_range(r.address) || !is_canonical(r.address) {
                return Err(Errno::EINVAL);
            }
            let c = &mut ctx.cur().callbacks;
            match r.ty as u32 {
                cb::TYPE_EVENT => c.event = r.address,
                cb::TYPE_FAILSAFE => c.failsafe = r.address,
                cb::TYPE_SYSCALL => {
                    c.syscall = r.address;
                    c.syscall_mask_events = r.flags & cb::F_MASK_EVENTS != 0;
                }
                cb::TYPE_NMI => c.nmi = r.address,
                cb::TYPE_SYSCALL32 => {
                    c.syscall32 = r.address;
                    c.syscall32_mask_events = r.flags & cb::F_MASK_EVENTS != 0;
                }
                // SYSENTER from compatibility mode: accepted, never used (the platforms leave
                // SYSENTER unconfigured, so it faults).
                cb::TYPE_SYSENTER => {}
                _ => return Err(Errno::EINVAL),
            }
            Ok(0)
        }
        cb::OP_UNREGISTER => {
            ctx.describe(|d| *d = "callback_op(unregister)".into());
            let r: CallbackUnregister = ctx.read_guest(arg)?;
            match r.ty as u32 {
                cb::TYPE_NMI => {
                    ctx.cur().callbacks.nmi = 0;
                    Ok(0)
                }
                _ => Err(Errno::EINVAL),
            }
        }
        _ => {
            ctx.describe(|d| *d = alloc::format!("callback_op({cmd})"));
            Err(Errno::ENOSYS)
        }
    }
}

/// HYPERVISOR_iret: pop an iret_context from the guest stack (Xen's do_iret).
pub fn iret(ctx: &mut Ctx<'_, '_>, _a: [u64; 5]) -> Result<i64, Errno> {
    let rsp = ctx.cur_ref().cpu.rsp;
    let saved: IretContext = match ctx.read_guest(rsp) {
        Ok(s) => s,
        Err(_) => {
            ctx.describe(|d| *d = "iret".into());
            ctx.fx.crash = Some(alloc::format!("fault reading the iret context at {rsp:#x}"));
            ctx.fx.no_ret = true;
            return Ok(0);
        }
    };
    ctx.describe(|d| *d = alloc::format!("iret -> {:#x}", saved.rip));
    if saved.cs & 3 == 3 {
        // Returning to guest user mode.
        let Some(user) = ctx.cur_ref().guest_table_user else {
            ctx.fx.crash = Some("iret to user mode with no user page tables".into());
            ctx.fx.no_ret = true;
            return Ok(0);
        };
        let v = ctx.cur();
        v.kernel_mode = false;
        v.cpu.cr3 = user.maddr().0;
        v.gs_base_kernel = v.cpu.gs_base;
        v.cpu.gs_base = v.gs_base_user;
        ctx.fx.flush_tlb = true;
    }
    // With VMASST_TYPE_architectural_iopl the guest sets its virtual IOPL through iret (iret.c).
    let arch_iopl = ctx.domain_ref().vm_assist & (1 << vma::TYPE_ARCHITECTURAL_IOPL) != 0;
    let v = ctx.cur();
    if arch_iopl {
        v.privs.iopl = ((saved.rflags & RFLAGS_IOPL) >> 12) as u8;
    }
    v.cpu.rip = saved.rip;
    v.cpu.cs = (saved.cs as u16) | 3;
    v.cpu.rflags = (saved.rflags & !(RFLAGS_IOPL | RFLAGS_VM)) | RFLAGS_IF | 2;
    v.cpu.rsp = saved.rsp;
    v.cpu.ss = (saved.ss as u16) | 3;
    if saved.flags & VGCF_IN_SYSCALL == 0 {
        v.cpu.r11 = saved.r11;
        v.cpu.rcx = saved.rcx;
    }
    v.cpu.rax = saved.rax;
    let vi = v.vcpu_info;
    let mask = (saved.rflags & RFLAGS_IF == 0) as u8;
    ctx.mem.write_u8(vi.add(shinfo::UPCALL_MASK), mask);
    // async_exception_cleanup: returning from the NMI handler unmasks NMIs.
    ctx.cur().op.nmi_masked = false;
    ctx.fx.no_ret = true;
    // do_iret returns the restored %rax (what a multicall reports for it).
    Ok(saved.rax as i64)
}

pub fn stack_switch(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (ss, sp) = (a[0], a[1]);
    ctx.describe(|d| *d = alloc::format!("stack_switch({ss:#x}, {sp:#x})"));
    let v = ctx.cur();
    v.kernel_ss = (ss as u16) | 3;
    v.kernel_sp = sp;
    Ok(0)
}

/// HYPERVISOR_set_gdt (Xen's do_set_gdt and pv_set_gdt, pv/descriptor-tables.c): the frames
/// take the descriptor-page type (every descriptor checked), the old GDT's frames are released.
pub fn set_gdt(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (list, entries) = (a[0], a[1]);
    ctx.describe(|d| *d = alloc::format!("set_gdt({entries} entries)"));
    // Checked before the copy, as Xen's do_set_gdt does, so the copy has a sane size.
    if entries > abi::FIRST_RESERVED_GDT_ENTRY as u64 {
        return Err(Errno::EINVAL);
    }
    let nr = entries.div_ceil(512);
    let mut frames = alloc::vec::Vec::new();
    for i in 0..nr {
        let f: u64 = ctx.read_guest(list.wrapping_add(i * 8))?;
        frames.push(f);
    }
    let (dom, vi) = (ctx.dom, ctx.vcpu);
    let v = &mut ctx.doms.get_mut(&dom).ok_or(Errno::ESRCH)?.vcpus[vi];
    crate::desc::set_gdt(ctx.frames, &mut ctx.mem, dom, v, &frames, entries)?;
    ctx.fx.flush_tlb = true;
    Ok(0)
}

/// HYPERVISOR_update_descriptor (hypercall 10; Xen's do_update_descriptor): write one checked
/// descriptor at guest address `gaddr` (a machine address for PV). The frame must be the
/// domain's and either a descriptor page or one that can take the writable type.
pub fn update_descriptor(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (gaddr, desc) = (a[0], a[1]);
    ctx.describe(|d| *d = alloc::format!("update_descriptor({gaddr:#x}, {desc:#018x})"));
    // "gaddr must be aligned, or it will corrupt adjacent descriptors."
    if gaddr & 7 != 0 {
        return Err(Errno::EINVAL);
    }
    let Some(fixed) = crate::desc::check_descriptor(desc) else {
        ctx.annotate(|n| n.push_str("refused by check_descriptor"));
        return Err(Errno::EINVAL);
    };
    let mfn = Maddr(gaddr).mfn();
    let f = match ctx.frames.get(mfn) {
        Some(f) if f.owner == Owner::Dom(ctx.dom) => *f,
        _ => {
            let note = super::mmu::owner_note(ctx, mfn);
            ctx.annotate(|n| *n = note);
            return Err(Errno::EINVAL);
        }
    };
    match f.ty {
        PageType::SegDesc | PageType::None => {}
        // get_page_type(PGT_writable_page) fails on a page table.
        PageType::PageTable(_) => {
            let note = super::mmu::owner_note(ctx, mfn);
            ctx.annotate(|n| *n = note);
            return Err(Errno::EINVAL);
        }
    }
    ctx.mem.write_u64(Maddr(gaddr), fixed).ok_or(Errno::EINVAL)?;
    if f.ty == PageType::SegDesc {
        let dom = ctx.dom;
        if let Some(d) = ctx.doms.get_mut(&dom) {
            crate::desc::frame_changed(&mut d.vcpus, mfn);
        }
    }
    Ok(0)
}

pub fn set_segment_base(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (which, base) = (a[0], a[1]);
    let name = match which {
        segbase::FS => "fs",
        segbase::GS_USER => "gs_user",
        segbase::GS_KERNEL => "gs_kernel",
        segbase::GS_USER_SEL => "gs_user_sel",
        _ => "?",
    };
    ctx.describe(|d| *d = alloc::format!("set_segment_base({name}, {base:#x})"));
    if which != segbase::GS_USER_SEL && !is_canonical(base) {
        return Err(Errno::EINVAL);
    }
    let v = ctx.cur();
    match which {
        segbase::FS => v.cpu.fs_base = base,
        segbase::GS_KERNEL => {
            v.gs_base_kernel = base;
            if v.kernel_mode {
                v.cpu.gs_base = base;
            }
        }
        segbase::GS_USER => {
            v.gs_base_user = base;
            if !v.kernel_mode {
                v.cpu.gs_base = base;
            }
        }
        segbase::GS_USER_SEL => {
            // Loading a null or flat selector into the user %gs: base becomes 0.
            if base & 0xfff8 != 0 && base as u16 != abi::FLAT_RING3_DS32 {
                return Err(Errno::EINVAL);
            }
            v.gs_base_user = 0;
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

/// HYPERVISOR_vcpu_op, as Xen 4.17 answers a 64-bit PV domU (x86 do_vcpu_op, then
/// common_vcpu_op in xen/common/domain.c and arch_do_vcpu_op in xen/arch/x86/domain.c).
pub fn vcpu_op(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, id, arg) = (a[0], a[1] as u32, a[2]);
    let name = match cmd {
        vop::INITIALISE => "initialise",
        vop::UP => "up",
        vop::DOWN => "down",
        vop::IS_UP => "is_up",
        vop::SET_SINGLESHOT_TIMER => "set_singleshot_timer",
        vop::STOP_SINGLESHOT_TIMER => "stop_singleshot_timer",
        vop::SET_PERIODIC_TIMER => "set_periodic_timer",
        vop::STOP_PERIODIC_TIMER => "stop_periodic_timer",
        vop::REGISTER_VCPU_INFO => "register_vcpu_info",
        vop::GET_RUNSTATE_INFO => "get_runstate_info",
        vop::REGISTER_RUNSTATE_MEMORY_AREA => "register_runstate_memory_area",
        vop::REGISTER_VCPU_TIME_MEMORY_AREA => "register_vcpu_time_memory_area",
        vop::SEND_NMI => "send_nmi",
        vop::GET_PHYSID => "get_physid",
        _ => "",
    };
    ctx.describe(|d| *d = if name.is_empty() { alloc::format!("vcpu_op({cmd}, {id})") } else { alloc::format!("vcpu_op({name}, {id})") });
    // domain_vcpu(): the vCPU id is an unsigned int.
    let nr = ctx.domain_ref().vcpus.len();
    if id as usize >= nr || a[1] > u32::MAX as u64 {
        return Err(Errno::ENOENT);
    }
    let id = id as usize;
    let now = ctx.now;
    let current = id == ctx.vcpu;
    match cmd {
        vop::INITIALISE => {
            let c: abi::VcpuGuestContext = ctx.read_guest(arg)?;
            let (dom, slots) = (ctx.dom, ctx.xen.slots);
            let d = ctx.doms.get_mut(&dom).ok_or(Errno::ESRCH)?;
            crate::vcpu::initialise(ctx.frames, &mut ctx.mem, &slots, d, id, &c, now)?;
            let (rip, online) = (c.user_regs.rip, c.flags & abi::hypercall::vgcf::ONLINE != 0);
            let l4 = super::mmu::frame_name(ctx, Mfn(c.ctrlreg[3] >> 12));
            ctx.annotate(|n| *n = alloc::format!("rip={rip:#x} cr3={l4}{}", if online { " online" } else { "" }));
            Ok(0)
        }
        vop::UP => {
            let v = &mut ctx.domain().vcpus[id];
            if !v.op.initialised {
                return Err(Errno::EINVAL);
            }
            if v.state == VcpuState::Down {
                v.state = VcpuState::Runnable;
                crate::vcpu::runstate_change(v, vop::RUNSTATE_RUNNABLE, now);
            }
            Ok(0)
        }
        vop::DOWN => {
            // The last vCPU going down powers the domain off.
            let others = ctx.domain_ref().vcpus.iter().any(|v| v.id as usize != id && v.state != VcpuState::Down);
            if !others {
                ctx.fx.shutdown = Some(abi::ShutdownReason::Poweroff);
                return Ok(0);
            }
            let v = &mut ctx.domain().vcpus[id];
            if v.state != VcpuState::Down {
                v.state = VcpuState::Down;
                v.poll = None;
                if !current {
                    crate::vcpu::runstate_change(v, vop::RUNSTATE_OFFLINE, now);
                }
            }
            if current {
                // Off the CPU now; the state stays Down (not blocked) until VCPUOP_up.
                ctx.fx.yield_ = true;
            }
            Ok(0)
        }
        vop::IS_UP => Ok((ctx.domain_ref().vcpus[id].state != VcpuState::Down) as i64),
        vop::GET_RUNSTATE_INFO => {
            if !current {
                // A vCPU woken while off the CPU: its runstate follows its scheduling state.
                let d = ctx.domain();
                crate::vcpu::sync_idle(d, id, now);
            }
            let r = crate::vcpu::runstate_get(&ctx.domain_ref().vcpus[id], now);
            ctx.write_guest(arg, &r)?;
            Ok(0)
        }
        vop::REGISTER_RUNSTATE_MEMORY_AREA => {
            let va: u64 = ctx.read_guest(arg)?;
            if !crate::vcpu::handle_okay(va, core::mem::size_of::<abi::VcpuRunstateInfo>() as u64) {
                return Err(Errno::EFAULT);
            }
            let flag = ctx.domain_ref().vm_assist & (1 << vma::TYPE_RUNSTATE_UPDATE_FLAG) != 0;
            let v = &mut ctx.domain().vcpus[id];
            v.op.runstate_area = (va != 0).then_some(va);
            // Written at once: the current vCPU's live runstate, another's as vcpu_runstate_get.
            let saved = v.op.runstate;
            if !current {
                v.op.runstate = crate::vcpu::runstate_get(v, now);
            }
            let v = &ctx.doms[&ctx.dom].vcpus[id];
            crate::vcpu::write_runstate_area(&mut ctx.mem, v, flag);
            ctx.domain().vcpus[id].op.runstate = saved;
            ctx.annotate(|n| *n = alloc::format!("at {va:#x}"));
            Ok(0)
        }
        vop::REGISTER_VCPU_TIME_MEMORY_AREA => {
            let va: u64 = ctx.read_guest(arg)?;
            if !crate::vcpu::handle_okay(va, core::mem::size_of::<abi::VcpuTimeInfo>() as u64) {
                return Err(Errno::EFAULT);
            }
            let v = &mut ctx.domain().vcpus[id];
            v.op.time_area = (va != 0).then_some(va);
            let v = &ctx.doms[&ctx.dom].vcpus[id];
            crate::vcpu::publish_time(&mut ctx.mem, v);
            ctx.annotate(|n| *n = alloc::format!("at {va:#x}"));
            Ok(0)
        }
        vop::SET_PERIODIC_TIMER => {
            let t: abi::VcpuSetPeriodicTimer = ctx.read_guest(arg)?;
            // MILLISECS(1) .. STIME_DELTA_MAX.
            if t.period_ns < 1_000_000 || t.period_ns > i64::MAX as u64 {
                return Err(Errno::EINVAL);
            }
            let v = &mut ctx.domain().vcpus[id];
            let last = v.op.periodic.map(|p| p.last).unwrap_or(0);
            v.op.periodic = Some(crate::vcpu::Periodic { period: t.period_ns, last });
            // vcpu_periodic_timer_work_locked: due already, it fires now.
            if crate::vcpu::periodic_tick(v, now) {
                timer_event(ctx, id);
            }
            ctx.annotate(|n| *n = alloc::format!("every {} ns", t.period_ns));
            Ok(0)
        }
        vop::STOP_PERIODIC_TIMER => {
            ctx.domain().vcpus[id].op.periodic = None;
            Ok(0)
        }
        vop::SET_SINGLESHOT_TIMER => {
            if !current {
                return Err(Errno::EINVAL);
            }
            let t: abi::VcpuSetSingleshotTimer = ctx.read_guest(arg)?;
            // Xen 4.17.7's common_vcpu_op: a timeout already passed injects the event at once
            // (VCPU_SSHOTTMR_future no longer makes it -ETIME).
            if t.timeout_abs_ns < now {
                ctx.domain().vcpus[id].timer = None;
                timer_event(ctx, id);
                ctx.annotate(|n| n.push_str("already expired: fired"));
            } else {
                ctx.domain().vcpus[id].timer = Some(t.timeout_abs_ns);
            }
            Ok(0)
        }
        vop::STOP_SINGLESHOT_TIMER => {
            if !current {
                return Err(Errno::EINVAL);
            }
            ctx.domain().vcpus[id].timer = None;
            Ok(0)
        }
        vop::REGISTER_VCPU_INFO => register_vcpu_info(ctx, id, arg),
        vop::SEND_NMI => {
            // The argument must be a null handle.
            if arg != 0 {
                return Err(Errno::EINVAL);
            }
            let v = &mut ctx.domain().vcpus[id];
            if !v.op.nmi_pending {
                v.op.nmi_pending = true;
                let vid = v.id;
                let dom = ctx.dom;
                ctx.fx.wake.push((dom, vid));
            }
            Ok(0)
        }
        // Only a hardware domain's pinned vCPUs have a physical id.
        vop::GET_PHYSID => Err(Errno::EINVAL),
        _ => Err(Errno::ENOSYS),
    }
}

/// Deliver a pending virtual NMI (VCPUOP_send_nmi) to the guest's NMI callback before entering
/// it, as Xen's exit path does (x86_64/entry.S: process_nmi, before events): a bounce frame
/// with events masked, NMIs masked until HYPERVISOR_iret. Without a registered callback it
/// stays pending.
pub fn deliver_nmi(ctx: &mut Ctx<'_, '_>) {
    let v = ctx.cur_ref();
    if !v.op.nmi_pending || v.op.nmi_masked || v.callbacks.nmi == 0 {
        return;
    }
    let target = v.callbacks.nmi;
    let b = crate::traps::Bounce { target, error_code: None, mask_events: true };
    let v = ctx.cur();
    v.op.nmi_pending = false;
    v.op.nmi_masked = true;
    match crate::traps::bounce(ctx, &b) {
        Ok(()) => {
            if ctx.tracing {
                let who = ctx.who();
                ctx.lines.push(alloc::format!("{who} nmi -> {target:#x}"));
            }
        }
        Err(e) => ctx.fx.crash = Some(alloc::format!("nmi: {}", e.0)),
    }
}

/// send_timer_event: VIRQ_TIMER on vCPU `id`, if bound.
fn timer_event(ctx: &mut Ctx<'_, '_>, id: usize) {
    let dom = ctx.dom;
    let Some(d) = ctx.doms.get(&dom) else { return };
    if let Some(p) = d.evtchn.virq_port(abi::hypercall::virq::TIMER, id as u32) {
        let woke = crate::evtchn::raise(&mut ctx.mem, d, p);
        ctx.fx.wake.extend(woke.into_iter().map(|v| (dom, v)));
    }
}

/// VCPUOP_register_vcpu_info (Xen's map_vcpu_info): move the vCPU's vcpu_info into a page of the
/// domain; the hypervisor uses it from then on for events and time.
fn register_vcpu_info(ctx: &mut Ctx<'_, '_>, id: usize, arg: u64) -> Result<i64, Errno> {
    let r: RegisterVcpuInfo = ctx.read_guest(arg)?;
    if !crate::vcpu::vcpu_info_offset_ok(r.offset) {
        return Err(Errno::ENXIO);
    }
    if ctx.domain_ref().vcpus[id].vcpu_info_registered {
        return Err(Errno::EINVAL);
    }
    // "Run this command on yourself or on other offline VCPUS."
    if id != ctx.vcpu && ctx.domain_ref().vcpus[id].state != VcpuState::Down {
        return Err(Errno::EINVAL);
    }
    match ctx.frames.get(Mfn(r.mfn)).map(|f| (f.owner, f.ty)) {
        Some((Owner::Dom(d), PageType::None)) if d == ctx.dom => {}
        // get_page_type(PGT_writable_page) fails on page tables and descriptor pages;
        // get_page_from_gfn on frames that are not the domain's.
        _ => {
            let note = super::mmu::owner_note(ctx, Mfn(r.mfn));
            ctx.annotate(|n| *n = note);
            return Err(Errno::EINVAL);
        }
    }
    // The writable type reference: it can never become a page table or descriptor page.
    if let Some(f) = ctx.frames.get_mut(Mfn(r.mfn)) {
        f.writable_refs += 1;
    }
    let old = ctx.domain_ref().vcpus[id].vcpu_info;
    let new = crate::vcpu::vcpu_info_maddr(Mfn(r.mfn), r.offset);
    let mut buf = [0u8; shinfo::VCPU_INFO_SIZE as usize];
    ctx.mem.read(old, &mut buf).ok_or(Errno::EFAULT)?;
    ctx.mem.write(new, &buf).ok_or(Errno::EFAULT)?;
    // "Mark everything as being pending just to make sure nothing gets lost."
    ctx.mem.write_u64(new.add(shinfo::PENDING_SEL), !0);
    ctx.mem.write_u8(new.add(shinfo::UPCALL_PENDING), 1);
    let v = &mut ctx.domain().vcpus[id];
    v.vcpu_info = new;
    v.vcpu_info_registered = true;
    let vid = v.id;
    let dom = ctx.dom;
    ctx.fx.wake.push((dom, vid));
    let at = super::mmu::frame_name(ctx, Mfn(r.mfn));
    ctx.annotate(|n| *n = alloc::format!("vcpu_info at {at}+{:#x}", r.offset));
    Ok(0)
}

pub fn vm_assist(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, ty) = (a[0], a[1]);
    let c = match cmd {
        vma::CMD_ENABLE => "enable",
        vma::CMD_DISABLE => "disable",
        _ => "?",
    };
    ctx.describe(|d| *d = alloc::format!("vm_assist({c}, {ty})"));
    if ty >= 64 || vma::VALID & (1 << ty) == 0 {
        return Err(Errno::EINVAL);
    }
    match cmd {
        vma::CMD_ENABLE => ctx.domain().vm_assist |= 1 << ty,
        vma::CMD_DISABLE => ctx.domain().vm_assist &= !(1 << ty),
        _ => return Err(Errno::ENOSYS),
    }
    Ok(0)
}

pub fn fpu_taskswitch(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.describe(|d| *d = alloc::format!("fpu_taskswitch({})", a[0]));
    // The guest's view of CR0.TS (read back by `mov %cr0`). The FPU itself stays usable, so
    // there is never a #NM to deliver (Xen's lazy-FPU #NM is not modelled).
    ctx.cur().privs.cr0_ts = a[0] != 0;
    Ok(0)
}
