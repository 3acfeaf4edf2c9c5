//! Hypercalls: `call hypercall_page + nr*32` with arguments in rdi, rsi, rdx, r10, r8 and the
//! result (a negative Linux errno on failure) in rax.
//!
//! The stub pushes rcx/r11 on our stack and the hypervisor may clobber rcx and r11 (and, as debug
//! Xen builds do, scribble on the argument registers and r9), so all of those are declared
//! clobbered. `hypercall_page` is a 4096-byte page in .text that the hypervisor fills at load time
//! (announced with XEN_ELFNOTE_HYPERCALL_PAGE).

use crate::abi::*;
use core::arch::asm;

extern "C" {
    /// Defined in `boot.rs` (global_asm), 4096-aligned, 4096 bytes, in the executable segment.
    static hypercall_page: [u8; 4096];
}

/// Address of the stub for hypercall `nr` (folds to a constant when `nr` is constant).
#[inline(always)]
pub fn stub_address(nr: usize) -> u64 {
    // (Taking the address of an extern static is safe; nothing is read.)
    let base = core::ptr::addr_of!(hypercall_page) as u64;
    base + (nr as u64) * 32
}

/// Raw hypercall with five arguments; the other arities forward to it with zeros.
///
/// # Safety
/// Pointer arguments must be valid for what hypercall `nr` does with them; some hypercalls change
/// mappings or the trap table, which can break the caller's assumptions.
#[inline(always)]
pub unsafe fn hypercall5(nr: usize, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller vouches for the arguments; the stub only uses our stack (it pushes rcx
    // and r11 and returns), and all registers the hypervisor may change are declared clobbered.
    unsafe {
        asm!(
            "call {entry}",
            entry = in(reg) stub_address(nr),
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            inout("r10") a4 => _,
            inout("r8") a5 => _,
            out("r9") _,
            out("rcx") _,
            out("r11") _,
            lateout("rax") ret,
        );
    }
    ret
}

/// # Safety
/// See [`hypercall5`].
#[inline(always)]
pub unsafe fn hypercall0(nr: usize) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, 0, 0, 0, 0, 0) }
}
/// # Safety
/// See [`hypercall5`].
#[inline(always)]
pub unsafe fn hypercall1(nr: usize, a1: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, 0, 0, 0, 0) }
}
/// # Safety
/// See [`hypercall5`].
#[inline(always)]
pub unsafe fn hypercall2(nr: usize, a1: u64, a2: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, 0, 0, 0) }
}
/// # Safety
/// See [`hypercall5`].
#[inline(always)]
pub unsafe fn hypercall3(nr: usize, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, a3, 0, 0) }
}
/// # Safety
/// See [`hypercall5`].
#[inline(always)]
pub unsafe fn hypercall4(nr: usize, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(nr, a1, a2, a3, a4, 0) }
}

// ---- typed wrappers (all `unsafe` where they take raw pointers; safe helpers below) ----

/// console_io(cmd, count, buffer).
/// # Safety
/// `buf` must be valid for `count` bytes (or deliberately bad, to test the hypervisor).
pub unsafe fn console_io(cmd: u64, count: u64, buf: *const u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(HYPERVISOR_CONSOLE_IO, cmd, count, buf as u64) }
}

/// xen_version(cmd, arg).
/// # Safety
/// `arg` must be valid for the sub-operation's output (or null for `XENVER_version`).
pub unsafe fn xen_version(cmd: u64, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall2(HYPERVISOR_XEN_VERSION, cmd, arg as u64) }
}

/// sched_op(cmd, arg).
/// # Safety
/// `arg` must point at the sub-operation's argument structure.
pub unsafe fn sched_op(cmd: u64, arg: *const u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall2(HYPERVISOR_SCHED_OP, cmd, arg as u64) }
}

/// set_trap_table(table) — `table` is terminated by an entry with `address == 0`.
/// # Safety
/// Handlers must be valid trap entry points (see `traps`).
pub unsafe fn set_trap_table(table: *const TrapInfo) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall1(HYPERVISOR_SET_TRAP_TABLE, table as u64) }
}

/// set_callbacks(event_address, failsafe_address, syscall_address) (64-bit form).
/// # Safety
/// Addresses must be valid entry points.
pub unsafe fn set_callbacks(event: u64, failsafe: u64, syscall: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(HYPERVISOR_SET_CALLBACKS, event, failsafe, syscall) }
}

/// callback_op(cmd, arg).
/// # Safety
/// `arg` must point at a valid callback structure.
pub unsafe fn callback_op(cmd: u64, arg: *const u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall2(HYPERVISOR_CALLBACK_OP, cmd, arg as u64) }
}

/// mmu_update(req, count, success_count, domid).
/// # Safety
/// `req` must hold `count` entries; `done` may be null.
pub unsafe fn mmu_update(req: *const MmuUpdate, count: u64, done: *mut u32, domid: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall4(HYPERVISOR_MMU_UPDATE, req as u64, count, done as u64, domid) }
}

/// update_va_mapping(va, new_pte, flags).
/// # Safety
/// Remapping a page the program uses changes what its memory contains.
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(HYPERVISOR_UPDATE_VA_MAPPING, va, pte, flags) }
}

/// mmuext_op(ops, count, success_count, domid).
/// # Safety
/// `ops` must hold `count` entries; `done` may be null.
pub unsafe fn mmuext_op(ops: *const MmuextOp, count: u64, done: *mut u32, domid: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall4(HYPERVISOR_MMUEXT_OP, ops as u64, count, done as u64, domid) }
}

/// event_channel_op(cmd, arg).
/// # Safety
/// `arg` must point at the sub-operation's structure.
pub unsafe fn event_channel_op(cmd: u64, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall2(HYPERVISOR_EVENT_CHANNEL_OP, cmd, arg as u64) }
}

/// vcpu_op(cmd, vcpuid, arg).
/// # Safety
/// `arg` must point at the sub-operation's structure.
pub unsafe fn vcpu_op(cmd: u64, vcpu: u64, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(HYPERVISOR_VCPU_OP, cmd, vcpu, arg as u64) }
}

/// memory_op(cmd, arg).
/// # Safety
/// `arg` must point at the sub-operation's structure.
pub unsafe fn memory_op(cmd: u64, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall2(HYPERVISOR_MEMORY_OP, cmd, arg as u64) }
}

/// multicall(entries, count); per-entry results are written back into `result`.
/// # Safety
/// `calls` must hold `count` entries whose own arguments are valid.
pub unsafe fn multicall(calls: *mut MulticallEntry, count: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall2(HYPERVISOR_MULTICALL, calls as u64, count) }
}

/// vm_assist(cmd, type).
pub fn vm_assist(cmd: u64, ty: u64) -> i64 {
    // SAFETY: no pointers involved.
    unsafe { hypercall2(HYPERVISOR_VM_ASSIST, cmd, ty) }
}

/// stack_switch(ss, esp): sets the kernel stack used on entry from guest user mode.
pub fn stack_switch(ss: u64, sp: u64) -> i64 {
    // SAFETY: no pointers the hypervisor dereferences now.
    unsafe { hypercall2(HYPERVISOR_STACK_SWITCH, ss, sp) }
}

/// set_segment_base(which, base).
/// # Safety
/// Changing fs/gs bases affects code relying on them (xenrt does not).
pub unsafe fn set_segment_base(which: u64, base: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall2(HYPERVISOR_SET_SEGMENT_BASE, which, base) }
}

// ---- safe helpers ----

/// `XENVER_version`: `major << 16 | minor` (or a negative errno).
pub fn version() -> i64 {
    // SAFETY: XENVER_version takes no argument buffer.
    unsafe { xen_version(XENVER_VERSION, core::ptr::null_mut()) }
}

/// `SCHEDOP_yield`.
pub fn sched_yield() -> i64 {
    // SAFETY: SCHEDOP_yield takes no argument.
    unsafe { sched_op(SCHEDOP_YIELD, core::ptr::null()) }
}

/// `EVTCHNOP_send` on `port`.
pub fn evtchn_send(port: u32) -> i64 {
    let mut s = EvtchnSend { port };
    // SAFETY: `s` is a valid evtchn_send for the duration of the call.
    unsafe { event_channel_op(EVTCHNOP_SEND, core::ptr::addr_of_mut!(s).cast()) }
}

/// `SCHEDOP_shutdown` with `reason`; never returns (spins if the hypervisor does return).
pub fn shutdown(reason: u32) -> ! {
    let s = SchedShutdown { reason };
    // SAFETY: `s` is a valid sched_shutdown.
    unsafe { sched_op(SCHEDOP_SHUTDOWN, core::ptr::addr_of!(s).cast()) };
    loop {
        core::hint::spin_loop();
    }
}
