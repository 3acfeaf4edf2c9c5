//! Emulation of guest loads from the read-only M2P where the platform cannot map it for ring 3.
//!
//! On kvm_pvm (the KVM of these machines) ring-3 code runs on the host's shadow page tables, and
//! the L4 slots Linux reserves for a hypervisor (256..=271, exactly Xen's hole) belong to the
//! host: a guest's ring-3 read of the M2P at 0xFFFF800000000000 faults even though the
//! hypervisor mapped it. The core then decodes the faulting instruction and performs the load
//! itself. Only plain loads into a general register are emulated (`mov`, `movzx`, `movsx`,
//! `movsxd`); anything else is bounced to the guest as the #PF it was.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, OpKind, Register};

use crate::abi::RO_MPT_VIRT_START;
use crate::hypercall::Ctx;
use crate::mm::PAGE_SIZE;
use crate::platform::CpuState;

/// Build iced-x86's lazily initialised decoder and fast-formatter tables now (`lazy_static`,
/// built at the first decode/format). The core decodes at exits (an M2P load above, ptwr,
/// privileged instructions) and formats for the trace; without this the first such exit pays
/// for the tables. On kvm_pvm, which emulates the image's ring 0 at 600–1100 cycles per
/// instruction, that first exit took 5–14·10⁹ TSC cycles: on several CPUs, under the
/// hypervisor lock and on the TSC's clock, it took a whole 3 s run (scenarios/credit_smp.toml).
/// The image calls it at boot, before any clock runs.
pub fn warm_up_decoder() -> usize {
    // mov rax, [rbx+8]; cmpeqps xmm0, xmm1 (a pseudo-op); movsx eax, byte [rsi]; wrmsr;
    // add rax, 1; int3.
    const CODE: &[u8] = &[0x48, 0x8b, 0x43, 0x08, 0x0f, 0xc2, 0xc1, 0x00, 0x0f, 0xbe, 0x06, 0x0f, 0x30, 0x48, 0x83, 0xc0, 0x01, 0xcc];
    let mut dec = Decoder::with_ip(64, CODE, 0x1000, DecoderOptions::NONE);
    let mut text = 0;
    while dec.can_decode() {
        let ins = dec.decode();
        text += crate::privop::format_insn(&ins).len() + ins.memory_size().size();
    }
    text
}

pub(crate) fn reg64(c: &mut CpuState, r: Register) -> Option<&mut u64> {
    use Register::*;
    Some(match r.full_register() {
        RAX => &mut c.rax,
        RBX => &mut c.rbx,
        RCX => &mut c.rcx,
        RDX => &mut c.rdx,
        RSI => &mut c.rsi,
        RDI => &mut c.rdi,
        RBP => &mut c.rbp,
        RSP => &mut c.rsp,
        R8 => &mut c.r8,
        R9 => &mut c.r9,
        R10 => &mut c.r10,
        R11 => &mut c.r11,
        R12 => &mut c.r12,
        R13 => &mut c.r13,
        R14 => &mut c.r14,
        R15 => &mut c.r15,
        _ => return Option::None,
    })
}

/// Write `v` to `r` with x86 semantics (32-bit writes zero-extend, 8/16-bit writes merge).
pub(crate) fn write_reg(c: &mut CpuState, r: Register, v: u64) -> bool {
    let size = r.size();
    let high8 = matches!(r, Register::AH | Register::BH | Register::CH | Register::DH);
    let Some(full) = reg64(c, r) else { return false };
    *full = match (size, high8) {
        (8, _) => v,
        (4, _) => v & 0xffff_ffff,
        (2, _) => (*full & !0xffff) | (v & 0xffff),
        (1, true) => (*full & !0xff00) | ((v & 0xff) << 8),
        (1, false) => (*full & !0xff) | (v & 0xff),
        _ => return false,
    };
    true
}

/// Try to emulate the load at the vCPU's rip that faulted on `cr2` inside the M2P.
pub fn m2p_load(ctx: &mut Ctx<'_, '_>, cr2: u64) -> bool {
    let m2p_len = ctx.xen.m2p_frames * PAGE_SIZE;
    if !(RO_MPT_VIRT_START..RO_MPT_VIRT_START + m2p_len).contains(&cr2) {
        return false;
    }
    let rip = ctx.cur_ref().cpu.rip;
    let mut bytes = [0u8; 15];
    // An instruction may end near an unmapped page: take what is readable.
    let mut n = 0;
    while n < bytes.len() && ctx.copy_from_guest(rip.wrapping_add(n as u64), &mut bytes[n..n + 1]).is_ok() {
        n += 1;
    }
    let mut dec = Decoder::with_ip(64, &bytes[..n], rip, DecoderOptions::NONE);
    let ins: Instruction = dec.decode();
    if ins.is_invalid() || ins.op_count() != 2 || ins.op0_kind() != OpKind::Register || ins.op1_kind() != OpKind::Memory {
        return false;
    }
    let size = ins.memory_size().size() as u64;
    let signed = matches!(
        ins.code(),
        Code::Movsx_r16_rm8
            | Code::Movsx_r32_rm8
            | Code::Movsx_r64_rm8
            | Code::Movsx_r16_rm16
            | Code::Movsx_r32_rm16
            | Code::Movsx_r64_rm16
            | Code::Movsxd_r64_rm32
    );
    let plain = matches!(ins.mnemonic(), iced_x86::Mnemonic::Mov | iced_x86::Mnemonic::Movzx) || signed;
    if !plain || !(1..=8).contains(&size) || cr2.saturating_add(size) > RO_MPT_VIRT_START + m2p_len {
        return false;
    }
    let off = cr2 - RO_MPT_VIRT_START;
    let mut buf = [0u8; 8];
    if ctx.mem.read(ctx.xen.m2p.maddr().add(off), &mut buf[..size as usize]).is_none() {
        return false;
    }
    let mut v = u64::from_le_bytes(buf);
    if signed {
        let shift = 64 - size * 8;
        v = (((v << shift) as i64) >> shift) as u64;
    }
    let dst = ins.op0_register();
    let c = &mut ctx.cur().cpu;
    if !write_reg(c, dst, v) {
        return false;
    }
    c.rip = ins.next_ip();
    true
}

/// Is the instruction in `bytes` (at `cpu.rip`) an access through the stack segment to a
/// non-canonical address? Hardware raises #SS(0) for it (SDM vol. 3, 6.15), where unicorn and
/// QEMU's TCG raise #GP(0): the simulator and the image correct the exit with this. In 64-bit
/// mode ES/CS/DS/SS prefixes are ignored (an `ss:` prefix on another base is a #GP, XTF
/// memop-seg): the stack segment is that of an rsp/rbp base, unless FS or GS overrides it.
pub fn is_stack_fault(bytes: &[u8], cpu: &CpuState) -> bool {
    use iced_x86::Register as R;
    let i = Decoder::with_ip(64, bytes, cpu.rip, DecoderOptions::NONE).decode();
    let seg = i.memory_segment();
    if seg == R::FS || seg == R::GS || !matches!(i.memory_base().full_register(), R::RSP | R::RBP) {
        return false;
    }
    let mut c = *cpu;
    let reg = |r: Register, _: usize, _: usize| -> Option<u64> {
        let v = match r.full_register() {
            R::RIP => i.next_ip(),
            R::ES | R::CS | R::SS | R::DS | R::None => 0,
            full => *reg64(&mut c, full)?,
        };
        Some(if r.size() == 4 && r.full_register() != r { v & 0xffff_ffff } else { v })
    };
    let mut reg = reg;
    (0..i.op_count()).any(|op| {
        i.op_kind(op) == OpKind::Memory && i.virtual_address(op, 0, &mut reg).is_some_and(|a| !crate::mm::paging::is_canonical(a))
    })
}

/// Did the instruction that ends at `cpu.rip` load SS (`mov ss, m16` or `pop ss`) from memory
/// that one of the breakpoints reported in `dr6` watches? `before` holds the (up to 15) bytes
/// that end at rip. A data-breakpoint #DB reported there came one instruction early: hardware
/// holds it over the next instruction (the `mov ss` shadow), QEMU 7.2's TCG does not. `mov ss`
/// leaves every register it could address through unchanged, so its operand is recomputed from
/// the registers at the #DB.
pub fn movss_breakpoint(before: &[u8], cpu: &CpuState, regs: &crate::platform::DebugRegs, dr6: u64) -> bool {
    use crate::privop::dr;
    let bitness = if cpu.cs == crate::abi::FLAT_RING3_CS32 { 32 } else { 64 };
    for k in 1..=before.len() {
        let start = cpu.rip.wrapping_sub(k as u64);
        let bytes = &before[before.len() - k..];
        let insn = iced_x86::Decoder::with_ip(bitness, bytes, start, iced_x86::DecoderOptions::NONE).decode();
        if insn.is_invalid() || insn.len() != k {
            continue;
        }
        let (va, size) = match insn.code() {
            Code::Mov_Sreg_rm16 | Code::Mov_Sreg_r32m16 | Code::Mov_Sreg_r64m16
                if insn.op0_register() == Register::SS && insn.op1_kind() == iced_x86::OpKind::Memory =>
            {
                let mut c = *cpu;
                let Some(va) = insn.virtual_address(1, 0, |r, _, _| match r {
                    Register::ES | Register::CS | Register::SS | Register::DS => Some(0),
                    Register::FS => Some(cpu.fs_base),
                    Register::GS => Some(cpu.gs_base),
                    _ => reg64(&mut c, r).map(|v| *v & if r.size() == 4 { 0xffff_ffff } else { u64::MAX }),
                }) else {
                    continue;
                };
                (va, 2)
            }
            // pop ss (compatibility mode): the stack slot just popped.
            Code::Popw_SS => (cpu.rsp.wrapping_sub(2) & 0xffff_ffff, 2),
            Code::Popd_SS => (cpu.rsp.wrapping_sub(4) & 0xffff_ffff, 4),
            _ => continue,
        };
        let hit = (0..4).any(|n| {
            let len = dr::len(regs.dr7, n);
            let a = regs.addr[n] & !(len - 1);
            dr6 & (1 << n) != 0 && dr::rw(regs.dr7, n) == dr::RW_READ && a < va.wrapping_add(size) && va < a + len
        });
        if hit {
            return true;
        }
    }
    false
}
