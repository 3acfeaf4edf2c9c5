//! The hypercall table and its one dispatcher.
//!
//! Hypercalls are data: [`TABLE`] gives each number its name and handler. Handlers are plain
//! functions over a [`Ctx`]; they validate every guest argument, return Xen's errno on bad input,
//! and describe the call for the trace. Nothing a guest passes can panic the hypervisor.

mod console;
mod control;
mod cpu;
mod event;
pub(crate) mod grant;
mod memory;
pub(crate) mod mmu;
mod multicall;
mod physdev;
mod sched;
mod version;

pub use console::{console_output as console_output_pub, drain_console_ring, fill_console_input};
pub use cpu::deliver_nmi;
pub use event::unbind_peers;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::abi::{hypercall as nr, Errno, ShutdownReason};
use crate::domain::{Domain, Vcpu};
use crate::mm::frames::FrameTable;
use crate::mm::memory::Pod;
use crate::mm::paging::{self, in_xen_range};
use crate::mm::{MachineMemory, Maddr, Mfn, PAGE_SIZE};
use crate::{DomId, XenState};

/// A hypercall handler: arguments rdi, rsi, rdx, r10, r8.
pub type Handler = fn(&mut Ctx<'_, '_>, [u64; 5]) -> Result<i64, Errno>;

/// One row of the table.
#[derive(Clone, Copy)]
pub struct Hypercall {
    pub name: &'static str,
    pub handler: Handler,
}

const fn row(name: &'static str, handler: Handler) -> Option<Hypercall> {
    Some(Hypercall { name, handler })
}

/// Number of table slots (hypercall numbers 0..64).
pub const NR_HYPERCALLS: usize = 64;

/// The hypercall table. Numbers without a row are `-ENOSYS`.
pub static TABLE: [Option<Hypercall>; NR_HYPERCALLS] = {
    let mut t: [Option<Hypercall>; NR_HYPERCALLS] = [None; NR_HYPERCALLS];
    t[nr::SET_TRAP_TABLE as usize] = row("set_trap_table", cpu::set_trap_table);
    t[nr::MMU_UPDATE as usize] = row("mmu_update", mmu::mmu_update);
    t[nr::SET_GDT as usize] = row("set_gdt", cpu::set_gdt);
    t[nr::STACK_SWITCH as usize] = row("stack_switch", cpu::stack_switch);
    t[nr::SET_CALLBACKS as usize] = row("set_callbacks", cpu::set_callbacks);
    t[nr::FPU_TASKSWITCH as usize] = row("fpu_taskswitch", cpu::fpu_taskswitch);
    t[nr::SET_DEBUGREG as usize] = row("set_debugreg", crate::privop::hc_set_debugreg);
    t[nr::GET_DEBUGREG as usize] = row("get_debugreg", crate::privop::hc_get_debugreg);
    t[nr::UPDATE_DESCRIPTOR as usize] = row("update_descriptor", cpu::update_descriptor);
    t[nr::MEMORY_OP as usize] = row("memory_op", memory::memory_op);
    t[nr::MULTICALL as usize] = row("multicall", multicall::multicall);
    t[nr::UPDATE_VA_MAPPING as usize] = row("update_va_mapping", mmu::update_va_mapping);
    t[nr::UPDATE_VA_MAPPING_OTHERDOMAIN as usize] = row("update_va_mapping_otherdomain", mmu::update_va_mapping_otherdomain);
    t[nr::SET_TIMER_OP as usize] = row("set_timer_op", sched::set_timer_op);
    t[nr::XEN_VERSION as usize] = row("xen_version", version::xen_version);
    t[nr::CONSOLE_IO as usize] = row("console_io", console::console_io);
    t[nr::GRANT_TABLE_OP as usize] = row("grant_table_op", grant::grant_table_op);
    t[nr::VM_ASSIST as usize] = row("vm_assist", cpu::vm_assist);
    t[nr::IRET as usize] = row("iret", cpu::iret);
    t[nr::VCPU_OP as usize] = row("vcpu_op", cpu::vcpu_op);
    t[nr::SET_SEGMENT_BASE as usize] = row("set_segment_base", cpu::set_segment_base);
    t[nr::MMUEXT_OP as usize] = row("mmuext_op", mmu::mmuext_op);
    t[nr::SCHED_OP as usize] = row("sched_op", sched::sched_op);
    t[nr::SCHED_OP_COMPAT as usize] = row("sched_op_compat", sched::sched_op_compat);
    t[nr::CALLBACK_OP as usize] = row("callback_op", cpu::callback_op);
    t[nr::EVENT_CHANNEL_OP as usize] = row("event_channel_op", event::event_channel_op);
    t[nr::PHYSDEV_OP as usize] = row("physdev_op", physdev::physdev_op);
    t[nr::PLATFORM_OP as usize] = row("platform_op", control::platform_op);
    t[nr::EVENT_CHANNEL_OP_COMPAT as usize] = row("event_channel_op_compat", control::event_channel_op_compat);
    t[nr::PHYSDEV_OP_COMPAT as usize] = row("physdev_op_compat", control::physdev_op_compat);
    t[nr::XSM_OP as usize] = row("xsm_op", control::xsm_op);
    t[nr::NMI_OP as usize] = row("nmi_op", control::nmi_op);
    t[nr::HVM_OP as usize] = row("hvm_op", control::hvm_op);
    t[nr::SYSCTL as usize] = row("sysctl", control::sysctl);
    t[nr::DOMCTL as usize] = row("domctl", control::domctl);
    t[nr::KEXEC_OP as usize] = row("kexec_op", control::kexec_op);
    t[nr::XENPMU_OP as usize] = row("xenpmu_op", control::xenpmu_op);
    t[nr::DM_OP as usize] = row("dm_op", control::dm_op);
    t[nr::HYPFS_OP as usize] = row("hypfs_op", control::hypfs_op);
    t[nr::ARCH_0 as usize] = row("mca", control::mca);
    t[nr::ARCH_1 as usize] = row("paging_domctl_cont", control::paging_domctl_cont);
    t
};

/// Name of hypercall `n`, for traces.
pub fn name(n: u64) -> Option<&'static str> {
    TABLE.get(n as usize).copied().flatten().map(|h| h.name)
}

/// Side effects a hypercall asks the hypervisor to carry out after it returns.
#[derive(Default, Debug)]
pub struct Effects {
    pub flush_tlb: bool,
    pub yield_: bool,
    pub block: bool,
    /// SCHEDOP_poll: block (events stay masked) until a polled port fires or the timeout.
    pub poll: Option<crate::domain::Poll>,
    pub shutdown: Option<ShutdownReason>,
    /// The call replaced the vCPU's registers (iret): don't write a result into rax.
    pub no_ret: bool,
    /// The current domain must be crashed (message for the trace).
    pub crash: Option<String>,
    /// vCPUs whose upcall became pending.
    pub wake: Vec<(DomId, u32)>,
    /// The current domain's console ring was notified.
    pub console_kick: bool,
    pub store_kick: bool,
    /// The exit was a hypercall (whatever the gate).
    pub hypercall: bool,
    /// Bytes the current domain wrote with console_io.
    pub console_out: Vec<u8>,
    /// Page tables the current vCPU stopped using as a base pointer: their type references are
    /// dropped only after the platform has switched away from them (`Platform::switch_tables`),
    /// so that the hypervisor never runs on a table it has devalidated.
    pub release_tables: Vec<Mfn>,
}

/// Everything a handler may touch.
pub struct Ctx<'a, 'm> {
    pub mem: MachineMemory<'m>,
    pub frames: &'a mut FrameTable,
    pub doms: &'a mut BTreeMap<DomId, Domain>,
    pub xen: &'a XenState,
    pub dom: DomId,
    pub vcpu: usize,
    pub now: u64,
    pub tracing: bool,
    /// Extra trace lines (emitted after the call's own line).
    pub lines: Vec<String>,
    /// The call as the trace shows it, e.g. `console_io(write, 20 bytes)`.
    pub desc: String,
    /// A comment appended to the call's trace line.
    pub note: String,
    pub fx: Effects,
    /// Nesting depth (multicall).
    pub depth: u32,
}

impl<'a, 'm> Ctx<'a, 'm> {
    pub fn domain(&mut self) -> &mut Domain {
        self.doms.get_mut(&self.dom).expect("current domain exists")
    }
    pub fn domain_ref(&self) -> &Domain {
        self.doms.get(&self.dom).expect("current domain exists")
    }
    pub fn cur(&mut self) -> &mut Vcpu {
        let v = self.vcpu;
        &mut self.domain().vcpus[v]
    }
    pub fn cur_ref(&self) -> &Vcpu {
        &self.domain_ref().vcpus[self.vcpu]
    }

    /// Set the trace description (only formatted when tracing).
    pub fn describe(&mut self, f: impl FnOnce(&mut String)) {
        if self.tracing {
            self.desc.clear();
            f(&mut self.desc);
        }
    }

    /// Add a comment to the trace line.
    pub fn annotate(&mut self, f: impl FnOnce(&mut String)) {
        if self.tracing {
            f(&mut self.note);
        }
    }

    /// Who is calling, as traces name it (`d1v0`).
    pub fn who(&self) -> String {
        alloc::format!("d{}v{}", self.dom, self.vcpu)
    }

    /// Translate a guest virtual address for an access by the guest kernel.
    pub fn translate(&self, va: u64, write: bool) -> Result<Maddr, Errno> {
        if in_xen_range(va) || !paging::is_canonical(va) {
            return Err(Errno::EFAULT);
        }
        let l4 = Mfn(self.cur_ref().cpu.cr3 >> 12);
        let w = paging::walk(&self.mem, l4, va).map_err(|_| Errno::EFAULT)?;
        if !w.user || (write && !w.writable) {
            return Err(Errno::EFAULT);
        }
        Ok(w.maddr)
    }

    /// Copy bytes from guest virtual memory.
    pub fn copy_from_guest(&self, va: u64, out: &mut [u8]) -> Result<(), Errno> {
        let mut done = 0usize;
        while done < out.len() {
            let a = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
            let m = self.translate(a, false)?;
            let n = ((PAGE_SIZE - m.offset()) as usize).min(out.len() - done);
            self.mem.read(m, &mut out[done..done + n]).ok_or(Errno::EFAULT)?;
            done += n;
        }
        Ok(())
    }

    /// Copy bytes to guest virtual memory.
    pub fn copy_to_guest(&mut self, va: u64, data: &[u8]) -> Result<(), Errno> {
        let mut done = 0usize;
        while done < data.len() {
            let a = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
            let m = self.translate(a, true)?;
            let n = ((PAGE_SIZE - m.offset()) as usize).min(data.len() - done);
            self.mem.write(m, &data[done..done + n]).ok_or(Errno::EFAULT)?;
            done += n;
        }
        Ok(())
    }

    pub fn read_guest<T: Pod>(&self, va: u64) -> Result<T, Errno> {
        let mut v = T::zeroed();
        self.copy_from_guest(va, v.as_bytes_mut())?;
        Ok(v)
    }

    pub fn write_guest<T: Pod>(&mut self, va: u64, v: &T) -> Result<(), Errno> {
        self.copy_to_guest(va, v.as_bytes())
    }
}

/// Format a hypercall result for the trace.
pub fn fmt_ret(r: &Result<i64, Errno>) -> String {
    match r {
        Ok(v) if (0..4096).contains(v) => alloc::format!("{v}"),
        Ok(v) => alloc::format!("{v:#x}"),
        Err(e) => alloc::format!("{e}"),
    }
}

/// Run hypercall `n` with `args`. Returns the result; the caller writes it to rax unless
/// `fx.no_ret`. Appends the trace line for the call (and its extra lines) to `out`.
pub fn dispatch(ctx: &mut Ctx<'_, '_>, n: u64, args: [u64; 5], out: &mut Vec<String>) -> Result<i64, Errno> {
    ctx.desc.clear();
    ctx.note.clear();
    let row = TABLE.get(n as usize).copied().flatten();
    let r = match row {
        Some(h) => (h.handler)(ctx, args),
        None => {
            ctx.describe(|d| {
                let _ = write!(d, "hypercall{n}({:#x}, {:#x})", args[0], args[1]);
            });
            Err(Errno::ENOSYS)
        }
    };
    // A call that can drop references (mappings, types, pins, grant maps) frees the frames the
    // domain gave back and nothing references any more, as Xen's last put_page would.
    if matches!(n as u32, nr::MMU_UPDATE | nr::UPDATE_VA_MAPPING | nr::MMUEXT_OP | nr::GRANT_TABLE_OP)
        && ctx.doms.get(&ctx.dom).is_some_and(|d| !d.mem.released.is_empty())
    {
        memory::reclaim(ctx);
    }
    if ctx.tracing {
        let desc = if ctx.desc.is_empty() {
            alloc::format!("{}({:#x})", row.map(|h| h.name).unwrap_or("?"), args[0])
        } else {
            core::mem::take(&mut ctx.desc)
        };
        let indent = if ctx.depth > 0 { "  " } else { "" };
        let mut line = alloc::format!("d{}v{} {indent}{desc}", ctx.dom, ctx.vcpu);
        if !ctx.fx.no_ret || r.is_err() {
            let _ = write!(line, " = {}", fmt_ret(&r));
        }
        if !ctx.note.is_empty() {
            let _ = write!(line, "    {}", ctx.note);
            ctx.note.clear();
        }
        out.push(line);
        out.append(&mut ctx.lines);
    }
    r
}
