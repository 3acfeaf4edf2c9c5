//! Bringing up a domain's further vCPUs, as a PV kernel does (Linux's `cpu_initialize_context`
//! and `xen_cpu_up`): `VCPUOP_initialise` with a `vcpu_guest_context`, then `VCPUOP_up`.
//!
//! A vCPU started here runs `entry(id)` in kernel mode, events masked, on the stack it was
//! given (rsp 8 below its top, as after a call), on the page tables the domain was started with
//! (`start_info.pt_base`), with no trap table, GDT or callbacks of its own. [`bring_up`] starts
//! every vCPU the domain has beyond vCPU 0, one at a time, each on its own stack.

use crate::abi::*;
use crate::hypercall as hc;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

/// Where a further vCPU starts: its vCPU id in the first argument; it never returns.
pub type Entry = extern "C" fn(id: u32) -> !;

/// A further vCPU's stack: `SIZE` bytes, 16-byte aligned (declare them as zeroed statics).
#[repr(C, align(16))]
pub struct Stack<const SIZE: usize>(UnsafeCell<[u8; SIZE]>);

// SAFETY: the memory is never accessed through a reference; each stack is handed to one vCPU,
// which alone uses it (as its rsp) from then on.
unsafe impl<const SIZE: usize> Sync for Stack<SIZE> {}

impl<const SIZE: usize> Stack<SIZE> {
    pub const fn new() -> Self {
        Stack(UnsafeCell::new([0; SIZE]))
    }
    /// The address just above the stack (16-byte aligned).
    pub fn top(&self) -> u64 {
        self.0.get() as u64 + SIZE as u64
    }
}

impl<const SIZE: usize> Default for Stack<SIZE> {
    fn default() -> Self {
        Self::new()
    }
}

/// The `vcpu_guest_context` of a vCPU starting at `rip` in kernel mode on the stack below
/// `stack_top`, with `args` in rdi and rsi, on the domain's initial page tables.
pub fn context(rip: u64, stack_top: u64, args: [u64; 2]) -> VcpuGuestContext {
    let l4 = crate::mm::va_to_mfn(crate::start_info().pt_base);
    let mut c = VcpuGuestContext::zeroed();
    c.flags = VGCF_IN_KERNEL;
    let r = &mut c.user_regs;
    r.rip = rip;
    r.cs = FLAT_KERNEL_CS64;
    // Bit 1 is always set; IF is not the guest's to set (events start masked).
    r.rflags = 0x2;
    // As after a call: rsp + 8 is 16-byte aligned at a function's first instruction.
    r.rsp = stack_top - 8;
    r.ss = FLAT_KERNEL_SS64;
    r.rdi = args[0];
    r.rsi = args[1];
    c.kernel_ss = FLAT_KERNEL_SS64 as u64;
    c.kernel_sp = stack_top;
    // xen_pfn_to_cr3 (xen-public/arch-x86/xen-x86_64.h).
    c.ctrlreg[3] = l4 << 12;
    c
}

/// `vcpu_op(cmd, id, arg)`; the result as Xen gives it (0, or a negative errno).
///
/// # Safety
/// `arg` must be null or point at what `cmd` reads or writes.
pub unsafe fn op(cmd: u64, id: u32, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hc::vcpu_op(cmd, id as u64, arg) }
}

/// `VCPUOP_initialise` of vCPU `id` with `ctx`: 0, -EEXIST when it already has a context,
/// -ENOENT when the domain has no vCPU `id`, -EINVAL etc. for a context Xen refuses.
pub fn initialise_with(id: u32, ctx: &VcpuGuestContext) -> i64 {
    // SAFETY: the hypervisor only reads the context, which is a whole `vcpu_guest_context`.
    unsafe { op(VCPUOP_INITIALISE, id, ctx as *const VcpuGuestContext as *mut u8) }
}

/// `VCPUOP_initialise` of vCPU `id` so that, once up, it runs `entry(id)` on the stack below
/// `stack_top` (see the module documentation). The stack must be used by nothing else.
pub fn initialise(id: u32, entry: Entry, stack_top: u64) -> i64 {
    initialise_with(id, &context(entry as *const () as u64, stack_top, [id as u64, 0]))
}

/// `VCPUOP_up`: 0, or -EINVAL when vCPU `id` has no context yet, -ENOENT when there is none.
pub fn up(id: u32) -> i64 {
    // SAFETY: VCPUOP_up takes no argument.
    unsafe { op(VCPUOP_UP, id, core::ptr::null_mut()) }
}

/// `VCPUOP_is_up`: 1 when vCPU `id` is up, 0 when down, -ENOENT when there is none.
pub fn is_up(id: u32) -> i64 {
    // SAFETY: VCPUOP_is_up takes no argument.
    unsafe { op(VCPUOP_IS_UP, id, core::ptr::null_mut()) }
}

/// The last vCPU that [`bring_up`] started and that reached [`started`].
static STARTED: AtomicU32 = AtomicU32::new(0);

/// First code of a vCPU started by [`bring_up`]: say so, then run the guest's entry.
extern "C" fn started(id: u32, entry: Entry) -> ! {
    STARTED.store(id, Ordering::Release);
    entry(id)
}

/// Why [`bring_up`] stopped before Xen said the domain has no more vCPUs.
#[derive(Clone, Copy, Debug)]
pub struct BringUpError {
    /// The vCPU it was bringing up.
    pub id: u32,
    /// `"initialise"` or `"up"` (failed with `rc`), or `"stack"`: the domain has vCPU `id` but
    /// no stack was left for it (`rc` is what VCPUOP_is_up said).
    pub what: &'static str,
    pub rc: i64,
}

/// Brings up every vCPU the domain has beyond vCPU 0: for id = 1, 2, … `VCPUOP_initialise`
/// (each on `stacks[id - 1]`, running `entry(id)`), then `VCPUOP_up`, then waits without a
/// hypercall until that vCPU runs before the next one, until Xen answers -ENOENT for an id the
/// domain does not have (Xen's x86 `do_vcpu_op`: `domain_vcpu()` is NULL for `vcpuid >=
/// d->max_vcpus`). So the hypercalls and vCPU starts come in the same order on every platform
/// (the last line is `vcpu_op(initialise, N) = -ENOENT` for a domain of N vCPUs). Returns N.
/// Call it once, from vCPU 0.
pub fn bring_up<const SIZE: usize>(entry: Entry, stacks: &'static [Stack<SIZE>]) -> Result<u32, BringUpError> {
    let mut id: u32 = 1;
    loop {
        let Some(stack) = stacks.get(id as usize - 1) else {
            // Out of stacks: fine only if there is no such vCPU.
            let rc = is_up(id);
            return if rc == -ENOENT { Ok(id) } else { Err(BringUpError { id, what: "stack", rc }) };
        };
        let ctx = context(started as *const () as u64, stack.top(), [id as u64, entry as *const () as u64]);
        match initialise_with(id, &ctx) {
            0 => {}
            rc if rc == -ENOENT => return Ok(id),
            rc => return Err(BringUpError { id, what: "initialise", rc }),
        }
        let rc = up(id);
        if rc != 0 {
            return Err(BringUpError { id, what: "up", rc });
        }
        while STARTED.load(Ordering::Acquire) != id {
            core::hint::spin_loop();
        }
        id += 1;
    }
}
