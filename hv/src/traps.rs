//! Exceptions and events bounced into the guest kernel with Xen's 64-bit PV frame, and the
//! emulation of Xen's forced-emulation CPUID.
//!
//! Frame on the guest kernel stack (16-byte aligned), lowest address first:
//! `rcx, r11, [error code], rip, cs (saved upcall mask in bits 32..39), rflags, rsp, ss`.

use alloc::string::String;

use crate::abi::{self, shinfo, vector};
use crate::domain::Vcpu;
use crate::hypercall::Ctx;
use crate::mm::paging::{in_xen_range, is_canonical};

const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_NT: u64 = 1 << 14;
const RFLAGS_RF: u64 = 1 << 16;
const RFLAGS_VM: u64 = 1 << 17;
const RFLAGS_AC: u64 = 1 << 18;

/// #PF error-code bits.
pub mod pf {
    pub const PRESENT: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const USER: u32 = 4;
    pub const RSVD: u32 = 8;
    pub const FETCH: u32 = 16;
}

/// Describe a #PF error code for traces: `user|write|present`.
pub fn pf_error_name(e: u32) -> String {
    let mut s = String::new();
    s.push_str(if e & pf::USER != 0 { "user" } else { "supervisor" });
    s.push_str(if e & pf::FETCH != 0 {
        "|fetch"
    } else if e & pf::WRITE != 0 {
        "|write"
    } else {
        "|read"
    });
    if e & pf::PRESENT != 0 {
        s.push_str("|present");
    }
    s
}

/// Where a bounce goes.
pub struct Bounce {
    pub target: u64,
    pub error_code: Option<u32>,
    /// Mask events on entry.
    pub mask_events: bool,
}

/// Why a bounce could not be delivered: the domain must crash.
#[derive(Debug)]
pub struct BounceFailed(pub String);

/// Push the PV exception frame and redirect the vCPU to `b.target`.
pub fn bounce(ctx: &mut Ctx<'_, '_>, b: &Bounce) -> Result<(), BounceFailed> {
    if b.target == 0 || in_xen_range(b.target) || !is_canonical(b.target) {
        return Err(BounceFailed(alloc::format!("no handler (target {:#x})", b.target)));
    }
    let (kernel_mode, rsp_kernel, user_table_switch) = {
        let v = ctx.cur_ref();
        (v.kernel_mode, v.kernel_sp, v.guest_table)
    };
    let vi = ctx.cur_ref().vcpu_info;
    let saved_mask = ctx.mem.read_u8(vi.add(shinfo::UPCALL_MASK)).unwrap_or(1);
    let cpu = ctx.cur_ref().cpu;
    if !kernel_mode {
        // Switch to the guest kernel: its page tables, its stack, its %gs.
        let v = ctx.cur();
        v.kernel_mode = true;
        v.cpu.cr3 = user_table_switch.maddr().0;
        v.gs_base_user = v.cpu.gs_base;
        v.cpu.gs_base = v.gs_base_kernel;
        ctx.fx.flush_tlb = true;
    }
    let mut sp = if kernel_mode { cpu.rsp } else { rsp_kernel };
    sp &= !15;
    let cs = if kernel_mode { cpu.cs & !3 } else { cpu.cs | 3 } as u64 | ((saved_mask as u64) << 32);
    let rflags = (cpu.rflags & !RFLAGS_IF) | if saved_mask == 0 { RFLAGS_IF } else { 0 };
    let mut frame: alloc::vec::Vec<u64> = alloc::vec![cpu.rcx, cpu.r11];
    if let Some(e) = b.error_code {
        frame.push(e as u64);
    }
    frame.extend_from_slice(&[cpu.rip, cs, rflags, cpu.rsp, cpu.ss as u64]);
    sp = sp.wrapping_sub(frame.len() as u64 * 8);
    let bytes: alloc::vec::Vec<u8> = frame.iter().flat_map(|w| w.to_le_bytes()).collect();
    if ctx.copy_to_guest(sp, &bytes).is_err() {
        return Err(BounceFailed(alloc::format!("guest kernel stack {sp:#x} not writable")));
    }
    if b.mask_events {
        ctx.mem.write_u8(vi.add(shinfo::UPCALL_MASK), 1);
    }
    let v = ctx.cur();
    v.cpu.rsp = sp;
    v.cpu.rip = b.target;
    v.cpu.cs = abi::FLAT_KERNEL_CS;
    v.cpu.ss = abi::FLAT_KERNEL_SS;
    v.cpu.rflags &= !(RFLAGS_AC | RFLAGS_VM | RFLAGS_RF | RFLAGS_NT | RFLAGS_TF);
    Ok(())
}

/// The trap-table entry for `vec` as a bounce (None when the guest has no handler).
pub fn trap_bounce(v: &Vcpu, vec: u8, error_code: Option<u32>) -> Bounce {
    let ti = v.trap_table[vec as usize];
    Bounce { target: ti.address, error_code, mask_events: ti.flags & 4 != 0 }
}

/// May a ring-3 `int n` use the gate of `vec`? (Xen's permit_softint: DPL must be 3.)
pub fn softint_permitted(v: &Vcpu, vec: u8) -> bool {
    // int3 and into come through IDT gates of DPL 3 in Xen, whatever the guest asked for
    // (traps.c, do_general_protection: "The DPL specified by the guest OS for these vectors is
    // NOT CHECKED!!"). For the rest, Xen's permit_softint: the guest kernel runs in virtual
    // ring 1, so a gate of DPL >= 1 admits it, user space needs DPL 3 (XTF selftest: "PV guests
    // need DPL1").
    if vec == vector::BP || vec == vector::OF {
        return true;
    }
    let dpl = v.trap_table[vec as usize].flags & 3;
    dpl >= if v.kernel_mode { 1 } else { 3 }
}

/// Xen's forced-emulation prefix: `ud2; .ascii "xen"; cpuid`.
pub const FORCED_CPUID: [u8; 7] = [0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2];

/// The CPUID a PV guest sees: Xen's hypervisor leaves and a fixed, deterministic CPU.
pub fn cpuid(leaf: u32, subleaf: u32, fsgsbase: bool) -> [u32; 4] {
    match leaf {
        // Structured extended features, subleaf 0: FSGSBASE (EBX bit 0) when the platform can
        // give it as Xen does (Xen offers it to PV guests when the hardware has it).
        7 if subleaf == 0 => [0, fsgsbase as u32, 0, 0],
        // "GenuineIntel", max basic leaf 0xd.
        0 => [0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
        // Family 6 model 0x55; SSE3|CX16|POPCNT|HYPERVISOR; FPU|TSC|PAE|CX8|CMOV|PAT|CLFSH|MMX|FXSR|SSE|SSE2.
        1 => [0x0005_0654, 0x0000_0800, (1 << 0) | (1 << 13) | (1 << 23) | (1 << 31), 0x0789_a131 & !(1 << 5)],
        0x4000_0000 => [0x4000_0002, 0x566e_6558, 0x6558_4d4d, 0x4d4d_566e], // "XenVMMXenVMM"
        0x4000_0001 => [(4 << 16) | 17, 0, 0, 0],
        0x4000_0002 => [1, 0x4000_0000, 0, 0],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        // LAHF; SYSCALL|NX|LM.
        0x8000_0001 => [0, 0, 1, (1 << 11) | (1 << 20) | (1 << 29)],
        0x8000_0008 => [0x3028, 0, 0, 0],
        _ => [0; 4],
    }
}

/// Vector name plus error code for traces.
pub fn describe_fault(vec: u8, error_code: Option<u32>, cr2: u64) -> String {
    match (vec, error_code) {
        (vector::PF, Some(e)) => alloc::format!("#PF cr2={cr2:#x} error={}", pf_error_name(e)),
        // For #DB the third value is the DR6 the guest will read.
        (vector::DB, None) => alloc::format!("#DB dr6={cr2:#x}"),
        (v, Some(e)) => alloc::format!("{} error={e:#x}", vector::name(v)),
        (v, None) if vector::name(v) == "int" => alloc::format!("int {v:#x}"),
        (v, None) => String::from(vector::name(v)),
    }
}
