//! Privileged-instruction emulation for PV guest kernels, as Xen's `pv/emul-priv-op.c`.
//!
//! A PV kernel runs in ring 3, so its privileged instructions (`mov %cr3`, `rdmsr`, `in`,
//! `cli`...) raise #GP(0). Xen decodes the instruction and, when it is one a PV kernel may use,
//! carries it out against the vCPU's virtual state; anything else is bounced as the #GP it was.
//! This module owns that decision and the virtual control registers, MSRs and I/O privilege it
//! needs. It never touches the platform: results go into the vCPU's registers.
//!
//! Privilege, as Xen's `read_segment` presents it to the emulator: guest kernel mode is ring 0,
//! guest user mode ring 3. I/O and `cli`/`sti` use the virtual IOPL (`physdev_op(set_iopl)`):
//! kernel mode counts as ring 1, or ring 0 with `VMASST_TYPE_architectural_iopl` (`iopl_ok`).
//! Every emulated instruction is one trace line: `d1v0 emulate rdmsr 0xc0000080 = 0xd01`.

use alloc::string::String;
use iced_x86::{Code, Decoder, DecoderOptions, Instruction, OpKind, Register};

use crate::abi::{self, hypercall::vm_assist};

use crate::emulate::{reg64, write_reg};
use crate::hypercall::{mmu, Ctx};
use crate::mm::paging::is_canonical;
use crate::mm::{Mfn, PAGE_SIZE};

// Architectural control-register bits (Intel SDM vol. 3, 2.5).
pub const CR0_PE: u64 = 1 << 0;
pub const CR0_MP: u64 = 1 << 1;
pub const CR0_TS: u64 = 1 << 3;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_AM: u64 = 1 << 18;
pub const CR0_PG: u64 = 1 << 31;
/// CR0 as a 64-bit PV guest sees it (Xen's hardware CR0 without TS): TS comes from the vCPU's
/// virtual `fpu_taskswitch` state.
pub const PV_CR0: u64 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;

pub const CR4_TSD: u64 = 1 << 2;
pub const CR4_DE: u64 = 1 << 3;
pub const CR4_PAE: u64 = 1 << 5;
pub const CR4_MCE: u64 = 1 << 6;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub const CR4_FSGSBASE: u64 = 1 << 16;
pub const CR4_OSXSAVE: u64 = 1 << 18;
/// Bits a PV guest controls (Xen's PV_CR4_GUEST_MASK), limited to what its CPUID policy offers:
/// xenolith's policy has TSC and DE, FSGSBASE where the platform can give it, no XSAVE
/// (pv/domain.c: pv_fixup_guest_cr4 discards bits outside the policy).
const PV_CR4_GUEST_MASK: u64 = CR4_TSD | CR4_DE | CR4_FSGSBASE;
/// Hardware settings a PV guest sees (Xen's PV_CR4_GUEST_VISIBLE_MASK, as Xen sets them).
pub const PV_CR4_VISIBLE: u64 = CR4_PAE | CR4_MCE | CR4_OSFXSR | CR4_OSXMMEXCPT;

/// MSR indices (Intel SDM vol. 4; Xen's asm-x86/msr-index.h names).
pub mod msr {
    pub const IA32_TSC: u32 = 0x0000_0010;
    /// MSR_IA32_UCODE_REV (Intel) = MSR_AMD_PATCHLEVEL: the microcode revision.
    pub const IA32_UCODE_REV: u32 = 0x0000_008b;
    pub const APIC_BASE: u32 = 0x0000_001b;
    pub const INTEL_PLATFORM_INFO: u32 = 0x0000_00ce;
    pub const INTEL_MISC_FEATURES_ENABLES: u32 = 0x0000_0140;
    pub const IA32_MISC_ENABLE: u32 = 0x0000_01a0;
    pub const IA32_CR_PAT: u32 = 0x0000_0277;
    pub const IA32_PERF_CAPABILITIES: u32 = 0x0000_0345;
    pub const IA32_DEBUGCTL: u32 = 0x0000_01d9;
    pub const EFER: u32 = 0xc000_0080;
    pub const FS_BASE: u32 = 0xc000_0100;
    pub const GS_BASE: u32 = 0xc000_0101;
    pub const SHADOW_GS_BASE: u32 = 0xc000_0102;
}

/// APIC_BASE as Xen fakes it for PV guests: enabled, default base, BSP on vCPU 0.
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_BSP: u64 = 1 << 8;
const APIC_DEFAULT_PHYS_BASE: u64 = 0xfee0_0000;
/// Xen's PAT (XEN_MSR_PAT: WB, WT, UC-, UC, WC, WP, UC, UC).
const XEN_MSR_PAT: u64 = 0x0000_0501_0007_0406;
/// The microcode revision guests read (QEMU's default `ucode_rev` for its x86 CPU models).
const UCODE_REV: u64 = 0x1_0000_0000;
/// EFER a 64-bit PV guest reads: SCE | LME | LMA | NXE (guest_efer: known bits, no SVME).
const PV_EFER: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11);
/// MISC_ENABLE as guest_misc_enable() leaves it: BTS and PEBS unavailable, xTPR disabled.
const PV_MISC_ENABLE: u64 = (1 << 11) | (1 << 12) | (1 << 23);
/// PLATFORM_INFO: Xen offers CPUID faulting to every PV guest (bit 31).
const PLATFORM_INFO_CPUID_FAULTING: u64 = 1 << 31;
/// MISC_FEATURES_ENABLES bit 0: CPUID faulting on.
const MISC_FEATURES_CPUID_FAULTING: u64 = 1;

/// The virtual privileged state of one vCPU that emulation reads and writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrivState {
    /// CR0.TS (fpu_taskswitch, clts, mov to CR0).
    pub cr0_ts: bool,
    /// The guest's CR2: set on every #PF delivered, and by `mov to %cr2`.
    pub cr2: u64,
    /// The guest-controlled CR4 bits (TSD, DE); reads add [`PV_CR4_VISIBLE`].
    pub cr4: u64,
    /// DR0..DR3, DR6, DR7 (index 4 and 5 unused). DR7 holds what the CPU watches; the enables
    /// of I/O breakpoints are in `dr7_emul` (Xen's `arch.pv.dr7_emul`).
    pub dr: [u64; 8],
    /// Enable bits of the I/O breakpoints, which emulation of `in`/`out` checks.
    pub dr7_emul: u64,
    /// DR0..3 or DR7 changed since the platform last heard of them.
    pub dr_dirty: bool,
    /// CR4.FSGSBASE changed since the platform last heard of it.
    pub fsgsbase_dirty: bool,
    /// Virtual IOPL, 0..=3 (physdev_op set_iopl; iret with architectural_iopl).
    pub iopl: u8,
    /// CPUID faulting enabled (MISC_FEATURES_ENABLES bit 0).
    pub cpuid_faulting: bool,
}

impl PrivState {
    pub fn new() -> Self {
        // DR6/DR7 reset values (X86_DR6_DEFAULT, X86_DR7_DEFAULT).
        let mut dr = [0; 8];
        dr[6] = dr::DR6_DEFAULT;
        dr[7] = dr::DR7_DEFAULT;
        PrivState { dr, ..Default::default() }
    }
    pub fn cr0(&self) -> u64 {
        PV_CR0 | if self.cr0_ts { CR0_TS } else { 0 }
    }
    pub fn cr4(&self) -> u64 {
        (self.cr4 & PV_CR4_GUEST_MASK) | PV_CR4_VISIBLE
    }
    /// The breakpoints the CPU must watch while this vCPU runs (I/O breakpoints excluded).
    pub fn hw_debug_regs(&self) -> crate::platform::DebugRegs {
        crate::platform::DebugRegs { addr: [self.dr[0], self.dr[1], self.dr[2], self.dr[3]], dr7: self.dr[7] }
    }
    /// Xen's do_debug for a #DB taken in guest context: the status bits the CPU set join the
    /// virtual DR6, and bits the CPU cleared among the ones that default to 1 (RTM) clear.
    pub fn merge_dr6(&mut self, hw: u64) {
        self.dr[6] |= hw & !dr::DR6_DEFAULT;
        self.dr[6] &= hw | !dr::DR6_DEFAULT;
    }
}

/// Is the virtual IOPL enough for I/O and cli/sti at the vCPU's current privilege (iopl_ok)?
fn iopl_ok(ctx: &Ctx<'_, '_>) -> bool {
    let v = ctx.cur_ref();
    let cpl = if v.kernel_mode {
        if ctx.domain_ref().vm_assist & (1 << vm_assist::TYPE_ARCHITECTURAL_IOPL) != 0 {
            0
        } else {
            1
        }
    } else {
        3
    };
    cpl <= v.privs.iopl
}

/// Fetch the instruction bytes at `rip` (as many as are mapped, up to 15).
pub(crate) fn fetch(ctx: &Ctx<'_, '_>, rip: u64) -> ([u8; 15], usize) {
    let mut b = [0u8; 15];
    let first = ((PAGE_SIZE - (rip & (PAGE_SIZE - 1))) as usize).min(15);
    if ctx.copy_from_guest(rip, &mut b[..first]).is_err() {
        return (b, 0);
    }
    let n = if first < 15 && ctx.copy_from_guest(rip.wrapping_add(first as u64), &mut b[first..]).is_ok() { 15 } else { first };
    (b, n)
}

fn gpr(ctx: &mut Ctx<'_, '_>, r: Register) -> u64 {
    reg64(&mut ctx.cur().cpu, r).map(|v| *v).unwrap_or(0)
}

/// What happened to a #GP(0) exit.
pub enum Outcome {
    /// Carried out; rip is past the instruction.
    Emulated,
    /// Not a privileged instruction this vCPU may have emulated: bounce the #GP.
    Refused,
    /// The emulated instruction raises #UD instead (a DR4/DR5 access with CR4.DE set).
    Undefined,
    /// Carried out, and it ends in a #DB trap (single step, or an I/O breakpoint matched): the
    /// virtual DR6 already has the status bits (Xen's `ctxt.bpmatch` in pv_emulate_privileged_op).
    EmulatedDebug,
}

/// Try to emulate the instruction that raised #GP(0) at the current vCPU's rip.
pub fn emulate(ctx: &mut Ctx<'_, '_>) -> Outcome {
    let rip = ctx.cur_ref().cpu.rip;
    let (bytes, n) = fetch(ctx, rip);
    if n == 0 {
        return Outcome::Refused;
    }
    let bitness = if ctx.cur_ref().cpu.cs == abi::FLAT_RING3_CS32 { 32 } else { 64 };
    let mut dec = Decoder::with_ip(bitness, &bytes[..n], rip, DecoderOptions::NONE);
    let insn = dec.decode();
    if insn.is_invalid() {
        return Outcome::Refused;
    }
    let kernel = ctx.cur_ref().kernel_mode;
    let result = match insn.code() {
        Code::Mov_r64_cr | Code::Mov_r32_cr if kernel => read_cr(ctx, &insn),
        Code::Mov_cr_r64 | Code::Mov_cr_r32 if kernel => write_cr(ctx, &insn),
        Code::Mov_r64_dr | Code::Mov_r32_dr | Code::Mov_dr_r64 | Code::Mov_dr_r32 if kernel => {
            let r = if matches!(insn.code(), Code::Mov_r64_dr | Code::Mov_r32_dr) { read_dr(ctx, &insn) } else { write_dr(ctx, &insn) };
            match r {
                Ok(d) => Some(d),
                Err(DrError::Inval | DrError::Perm) => None,
                Err(DrError::Ud) => {
                    if ctx.tracing {
                        let (who, text) = (ctx.who(), format_insn(&insn));
                        ctx.lines.push(alloc::format!("{who} emulate {text}: #UD"));
                    }
                    return Outcome::Undefined;
                }
            }
        }
        // The guest's TSC is virtual time (one tick per ns) wherever the platform traps `rdtsc`
        // (Xen's emulated TSC, `pv_soft_rdtsc`): deterministic in the simulator. The guest's own
        // CR4.TSD still makes it a #GP from user mode.
        Code::Rdtsc if kernel || ctx.cur_ref().privs.cr4 & CR4_TSD == 0 => {
            let now = ctx.now;
            let c = &mut ctx.cur().cpu;
            (c.rax, c.rdx) = (now & 0xffff_ffff, now >> 32);
            Some(alloc::format!(" = {now:#x}"))
        }
        // RDTSCP is not in the guest's CPUID policy (traps::cpuid leaf 0x8000_0001): #UD, as
        // Xen's emulator raises it for a vCPU without the feature.
        Code::Rdtscp => {
            if ctx.tracing {
                let who = ctx.who();
                ctx.lines.push(alloc::format!("{who} emulate rdtscp: #UD (not in the CPUID policy)"));
            }
            return Outcome::Undefined;
        }
        Code::Rdmsr if kernel => rdmsr(ctx),
        Code::Wrmsr if kernel => wrmsr(ctx),
        Code::Clts if kernel => {
            ctx.cur().privs.cr0_ts = false;
            Some(String::new())
        }
        // Unprivileged domains' WBINVD is ignored (cache_op: "newer linux uses this in some
        // start-of-day timing loops").
        Code::Wbinvd if kernel => Some(String::new()),
        // With enough IOPL, Xen skips cli/sti without effect (validate: X86EMUL_DONE).
        Code::Cli | Code::Sti if iopl_ok(ctx) => Some(String::new()),
        Code::In_AL_imm8 | Code::In_AX_imm8 | Code::In_EAX_imm8 | Code::In_AL_DX | Code::In_AX_DX | Code::In_EAX_DX => port_in(ctx, &insn),
        Code::Out_imm8_AL | Code::Out_imm8_AX | Code::Out_imm8_EAX | Code::Out_DX_AL | Code::Out_DX_AX | Code::Out_DX_EAX => {
            port_out(ctx, &insn)
        }
        // Not one Xen emulates (or not from this mode): the #GP goes back as it came, with no
        // line of its own.
        _ => return Outcome::Refused,
    };
    let who = ctx.who();
    let text = if ctx.tracing { format_insn(&insn) } else { String::new() };
    match result {
        Some(detail) => {
            ctx.cur().cpu.rip = rip.wrapping_add(insn.len() as u64);
            if ctx.tracing {
                ctx.lines.push(alloc::format!("{who} emulate {text}{detail}"));
            }
            // Xen's pv_emulate_privileged_op: an emulated instruction retires like a real one,
            // so an I/O breakpoint it matched and the single-step trap (TF) are reported in DR6
            // and raise #DB after it.
            let mut bpmatch = 0;
            if let Some((port, size)) = io_port_of(ctx, &insn) {
                bpmatch |= io_breakpoints(&ctx.cur_ref().privs, port, size);
            }
            if ctx.cur_ref().cpu.rflags & RFLAGS_TF != 0 {
                bpmatch |= dr::DR6_BS;
            }
            let v = ctx.cur();
            v.cpu.rflags &= !RFLAGS_RF;
            if bpmatch != 0 {
                v.privs.dr[6] |= bpmatch | dr::DR6_DEFAULT;
                return Outcome::EmulatedDebug;
            }
            Outcome::Emulated
        }
        None => {
            if ctx.tracing {
                let msr = if matches!(insn.code(), Code::Rdmsr | Code::Wrmsr) {
                    alloc::format!(" {:#x}", ctx.cur_ref().cpu.rcx as u32)
                } else {
                    String::new()
                };
                ctx.lines.push(alloc::format!("{who} emulate {text}{msr}: #GP"));
            }
            Outcome::Refused
        }
    }
}

pub(crate) fn format_insn(insn: &Instruction) -> String {
    let mut f = iced_x86::FastFormatter::new();
    let mut s = String::new();
    f.format(insn, &mut s);
    s
}

fn cr_index(r: Register) -> Option<u8> {
    Some(match r {
        Register::CR0 => 0,
        Register::CR2 => 2,
        Register::CR3 => 3,
        Register::CR4 => 4,
        _ => return None,
    })
}

/// Xen's read_cr: CR0 (TS virtual), CR2, CR3 (the base pointer's frame: PV guests are not
/// translated, so gfn == mfn), CR4 (the guest's bits and the visible hardware ones).
fn read_cr(ctx: &mut Ctx<'_, '_>, insn: &Instruction) -> Option<String> {
    let v = ctx.cur_ref();
    let val = match cr_index(insn.op1_register())? {
        0 => v.privs.cr0(),
        2 => v.privs.cr2,
        3 => v.guest_table.0 << 12,
        4 => v.privs.cr4(),
        _ => return None,
    };
    let dst = insn.op0_register();
    write_reg(&mut ctx.cur().cpu, dst, val).then(|| alloc::format!(" = {val:#x}"))
}

/// Xen's write_cr: CR0 may change TS only; CR2 is stored; CR3 is a new base pointer; CR4 keeps
/// the guest-controlled bits the policy allows.
fn write_cr(ctx: &mut Ctx<'_, '_>, insn: &Instruction) -> Option<String> {
    let val = gpr(ctx, insn.op1_register());
    let val = if insn.op1_register().size() == 4 { val & 0xffff_ffff } else { val };
    match cr_index(insn.op0_register())? {
        0 => {
            if (val ^ ctx.cur_ref().privs.cr0()) & !CR0_TS != 0 {
                return None;
            }
            ctx.cur().privs.cr0_ts = val & CR0_TS != 0;
        }
        2 => {
            ctx.cur().privs.cr2 = val;
            let vi = ctx.cur_ref().vcpu_info;
            ctx.mem.write_u64(vi.add(abi::shinfo::CR2), val);
        }
        3 => mmu::new_guest_cr3(ctx, Mfn(val >> 12)).ok()?,
        4 => {
            // pv_fixup_guest_cr4: bits outside the policy are discarded, not refused.
            let mask = PV_CR4_GUEST_MASK & !if ctx.xen.fsgsbase { 0 } else { CR4_FSGSBASE };
            let p = &mut ctx.cur().privs;
            let new = val & mask;
            p.fsgsbase_dirty |= (p.cr4 ^ new) & CR4_FSGSBASE != 0;
            p.cr4 = new;
        }
        _ => return None,
    }
    Some(alloc::format!(" ({val:#x})"))
}

fn dr_number(r: Register) -> Option<u32> {
    Some(match r {
        Register::DR0 => 0,
        Register::DR1 => 1,
        Register::DR2 => 2,
        Register::DR3 => 3,
        Register::DR4 => 4,
        Register::DR5 => 5,
        Register::DR6 => 6,
        Register::DR7 => 7,
        _ => return None,
    })
}

/// Why a debug-register access fails, as Xen's set_debugreg says it (pv/misc-hypercalls.c):
/// -ENODEV is #UD to an emulated `mov`, -EINVAL (an invalid bit) and -EPERM (a valid bit the
/// guest may not use) are #GP(0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrError {
    Ud,
    Inval,
    Perm,
}

impl DrError {
    /// The hypercall's errno (HYPERVISOR_set_debugreg / get_debugreg).
    pub fn errno(self) -> abi::Errno {
        match self {
            DrError::Ud => abi::Errno::ENODEV,
            DrError::Inval => abi::Errno::EINVAL,
            DrError::Perm => abi::Errno::EPERM,
        }
    }
}

/// Debug-register layout: Xen's asm-x86/debugreg.h (xen/arch/x86/include/asm/debugreg.h) and
/// XTF's arch/x86/include/arch/x86-dbg-reg.h (X86_DR6_DEFAULT, X86_DR7_DEFAULT).
pub mod dr {
    /// DR6.B0..B3: breakpoint n matched (DR_TRAP0..3).
    pub const DR6_TRAPS: u64 = 0xf;
    /// DR6.BS: single step (DR_STEP).
    pub const DR6_BS: u64 = 0x4000;
    /// DR_STATUS_RESERVED_ZERO (~0xffffefff) and DR_STATUS_RESERVED_ONE (0xffff0ff0, also
    /// X86_DR6_DEFAULT: DR6 with no event recorded).
    pub const DR6_RESERVED_ZERO: u64 = !0xffff_efff;
    pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
    /// DR_CONTROL_RESERVED_ZERO (~0xffff27ff), DR_CONTROL_RESERVED_ONE (0x400 = X86_DR7_DEFAULT).
    pub const DR7_RESERVED_ZERO: u64 = !0xffff_27ff;
    pub const DR7_DEFAULT: u64 = 0x400;
    /// DR_GENERAL_DETECT.
    pub const DR7_GD: u64 = 0x2000;
    /// DR7_ACTIVE_MASK: the L0..3 and G0..3 enables.
    pub const DR7_ACTIVE_MASK: u64 = 0xff;
    /// DR_CONTROL_SHIFT, DR_CONTROL_SIZE, DR_ENABLE_SIZE.
    pub const CONTROL_SHIFT: u32 = 16;
    pub const CONTROL_SIZE: u32 = 4;
    pub const ENABLE_SIZE: u32 = 2;
    /// R/W field values: DR_RW_EXECUTE, DR_RW_WRITE, DR_IO, DR_RW_READ (read or write).
    pub const RW_EXECUTE: u64 = 0;
    pub const RW_WRITE: u64 = 1;
    pub const RW_IO: u64 = 2;
    pub const RW_READ: u64 = 3;

    /// Is breakpoint `n` enabled (L or G) in `dr7`?
    pub fn enabled(dr7: u64, n: usize) -> bool {
        dr7 & (3 << (n as u32 * ENABLE_SIZE)) != 0
    }
    /// Breakpoint `n`'s R/W field.
    pub fn rw(dr7: u64, n: usize) -> u64 {
        (dr7 >> (CONTROL_SHIFT + n as u32 * CONTROL_SIZE)) & 3
    }
    /// Breakpoint `n`'s length in bytes (LEN field: 00 = 1, 01 = 2, 10 = 8, 11 = 4; Xen's
    /// DR_LEN_1/2/8/4).
    pub fn len(dr7: u64, n: usize) -> u64 {
        match (dr7 >> (CONTROL_SHIFT + n as u32 * CONTROL_SIZE + 2)) & 3 {
            0 => 1,
            1 => 2,
            2 => 8,
            _ => 4,
        }
    }
}

/// Xen's x86emul_read_dr for a PV vCPU (and HYPERVISOR_get_debugreg): DR4/DR5 alias DR6/DR7
/// unless CR4.DE; DR7 reads back with the emulated I/O-breakpoint enables merged in.
pub fn get_debugreg(p: &PrivState, reg: u32) -> Result<u64, DrError> {
    match reg {
        0..=3 => Ok(p.dr[reg as usize]),
        4 | 5 if p.cr4 & CR4_DE != 0 => Err(DrError::Ud),
        4 | 6 => Ok(p.dr[6]),
        5 | 7 => Ok(p.dr[7] | p.dr7_emul),
        _ => Err(DrError::Ud),
    }
}

/// Xen's set_debugreg (pv/misc-hypercalls.c), used by `mov %reg, %drN` and
/// HYPERVISOR_set_debugreg: breakpoint addresses must be guest addresses (-EPERM), DR6/DR7 keep
/// their fixed bits and refuse the upper half (-EINVAL), DR7.GD is refused (-EPERM), and I/O
/// breakpoints need CR4.DE (-EPERM, checked before anything changes). Enabled I/O breakpoints
/// are kept apart (`dr7_emul`): the emulation of `in`/`out` checks them; the rest of DR7 is what
/// the platform arms in the CPU ([`PrivState::hw_debug_regs`]).
pub fn set_debugreg(p: &mut PrivState, reg: u32, value: u64) -> Result<(), DrError> {
    match reg {
        0..=3 => {
            if !is_canonical(value) || crate::mm::paging::in_xen_range(value) {
                return Err(DrError::Perm);
            }
            p.dr[reg as usize] = value;
            p.dr_dirty = true;
        }
        4 | 5 if p.cr4 & CR4_DE != 0 => return Err(DrError::Ud),
        4 | 6 => {
            if value >> 32 != 0 {
                return Err(DrError::Inval);
            }
            p.dr[6] = (value & !dr::DR6_RESERVED_ZERO) | dr::DR6_DEFAULT;
        }
        5 | 7 => {
            if value >> 32 != 0 {
                return Err(DrError::Inval);
            }
            let mut value = (value & !dr::DR7_RESERVED_ZERO) | dr::DR7_DEFAULT;
            if value & dr::DR7_GD != 0 {
                return Err(DrError::Perm);
            }
            let mut io_enable = 0;
            if value & dr::DR7_ACTIVE_MASK != 0 {
                for n in 0..4 {
                    if dr::rw(value, n) == dr::RW_IO {
                        if p.cr4 & CR4_DE == 0 {
                            return Err(DrError::Perm);
                        }
                        io_enable |= value & (3 << (n as u32 * dr::ENABLE_SIZE));
                    }
                }
                value &= !io_enable;
            }
            p.dr7_emul = io_enable;
            p.dr[7] = value;
            p.dr_dirty = true;
        }
        _ => return Err(DrError::Ud),
    }
    Ok(())
}

/// Xen's check_guest_io_breakpoint (pv/emul-priv-op.c): the enabled I/O breakpoints (with
/// CR4.DE) whose naturally aligned range overlaps ports `port..port+len`, as DR6.B0..3 bits.
pub fn io_breakpoints(p: &PrivState, port: u16, len: u32) -> u64 {
    if p.dr7_emul == 0 || p.cr4 & CR4_DE == 0 {
        return 0;
    }
    let mut hit = 0;
    for n in 0..4 {
        if !dr::enabled(p.dr7_emul, n) {
            continue;
        }
        let width = dr::len(p.dr[7], n);
        let start = p.dr[n] & !(width - 1);
        if start < port as u64 + len as u64 && start + width > port as u64 {
            hit |= 1 << n;
        }
    }
    hit
}

/// HYPERVISOR_set_debugreg(reg, value): Xen's do_set_debugreg (pv/misc-hypercalls.c), the same
/// rules as `mov %reg, %drN` with their errnos (-ENODEV, -EINVAL, -EPERM). `reg` is C `int`.
pub fn hc_set_debugreg(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, abi::Errno> {
    let (reg, value) = (a[0] as u32, a[1]);
    ctx.describe(|d| *d = alloc::format!("set_debugreg({}, {value:#x})", reg as i32));
    set_debugreg(&mut ctx.cur().privs, reg, value).map_err(DrError::errno)?;
    Ok(0)
}

/// HYPERVISOR_get_debugreg(reg): Xen's do_get_debugreg, the register's value, -ENODEV for
/// anything x86emul_read_dr refuses.
pub fn hc_get_debugreg(ctx: &mut Ctx<'_, '_>, a: [u64; 5]) -> Result<i64, abi::Errno> {
    let reg = a[0] as u32;
    ctx.describe(|d| *d = alloc::format!("get_debugreg({})", reg as i32));
    let v = get_debugreg(&ctx.cur_ref().privs, reg).map_err(|_| abi::Errno::ENODEV)?;
    Ok(v as i64)
}

fn read_dr(ctx: &mut Ctx<'_, '_>, insn: &Instruction) -> Result<String, DrError> {
    let n = dr_number(insn.op1_register()).ok_or(DrError::Ud)?;
    let val = get_debugreg(&ctx.cur_ref().privs, n)?;
    if !write_reg(&mut ctx.cur().cpu, insn.op0_register(), val) {
        return Err(DrError::Inval);
    }
    Ok(alloc::format!(" = {val:#x}"))
}

fn write_dr(ctx: &mut Ctx<'_, '_>, insn: &Instruction) -> Result<String, DrError> {
    let n = dr_number(insn.op0_register()).ok_or(DrError::Ud)?;
    let val = gpr(ctx, insn.op1_register());
    set_debugreg(&mut ctx.cur().privs, n, val)?;
    Ok(alloc::format!(" ({val:#x})"))
}

/// Xen's read_msr and guest_rdmsr, for what a 64-bit PV domU may read; anything else #GP.
fn rdmsr(ctx: &mut Ctx<'_, '_>) -> Option<String> {
    let c = ctx.cur_ref().cpu;
    let idx = c.rcx as u32;
    let v = ctx.cur_ref();
    let val = match idx {
        msr::APIC_BASE => APIC_BASE_ENABLE | APIC_DEFAULT_PHYS_BASE | if v.id == 0 { APIC_BASE_BSP } else { 0 },
        msr::FS_BASE => c.fs_base,
        msr::GS_BASE => c.gs_base,
        msr::SHADOW_GS_BASE => v.gs_base_user,
        msr::IA32_TSC => ctx.now,
        // Xen's guest_rdmsr forwards the host's microcode revision (msr.c, MSR_AMD_PATCHLEVEL);
        // xenolith's machine is fixed: the value QEMU's x86 CPU models report.
        msr::IA32_UCODE_REV => UCODE_REV,
        msr::EFER => PV_EFER,
        msr::IA32_CR_PAT => XEN_MSR_PAT,
        msr::IA32_MISC_ENABLE => PV_MISC_ENABLE,
        msr::IA32_PERF_CAPABILITIES => 0,
        // Xen 4.17 refuses this read; later Xen lets a PV guest read DEBUGCTL (as 0 here: no
        // branch tracing), and XTF's debug-regs expects the later behaviour.
        msr::IA32_DEBUGCTL => 0,
        msr::INTEL_PLATFORM_INFO => PLATFORM_INFO_CPUID_FAULTING,
        msr::INTEL_MISC_FEATURES_ENABLES => {
            if v.privs.cpuid_faulting {
                MISC_FEATURES_CPUID_FAULTING
            } else {
                0
            }
        }
        _ => return None,
    };
    let cpu = &mut ctx.cur().cpu;
    cpu.rax = val & 0xffff_ffff;
    cpu.rdx = val >> 32;
    Some(alloc::format!(" {idx:#x} = {val:#x}"))
}

/// Xen's write_msr and guest_wrmsr: the segment bases (canonical only), EFER and MISC_ENABLE
/// only to their current values, MISC_FEATURES_ENABLES' CPUID-faulting bit; anything else #GP.
fn wrmsr(ctx: &mut Ctx<'_, '_>) -> Option<String> {
    let c = ctx.cur_ref().cpu;
    let idx = c.rcx as u32;
    let val = (c.rdx << 32) | (c.rax & 0xffff_ffff);
    match idx {
        msr::FS_BASE | msr::GS_BASE | msr::SHADOW_GS_BASE if !is_canonical(val) => return None,
        msr::FS_BASE => ctx.cur().cpu.fs_base = val,
        // guest_wrmsr: an Intel guest may write 0 (the SDM's "write 0, CPUID, read" sequence).
        msr::IA32_UCODE_REV if val == 0 => {}
        msr::GS_BASE => {
            let v = ctx.cur();
            v.cpu.gs_base = val;
            if v.kernel_mode {
                v.gs_base_kernel = val;
            } else {
                v.gs_base_user = val;
            }
        }
        msr::SHADOW_GS_BASE => ctx.cur().gs_base_user = val,
        msr::EFER if val != PV_EFER => return None,
        msr::EFER => {}
        // A different value is ignored, not refused ("invalid:" in write_msr).
        msr::IA32_MISC_ENABLE => {}
        msr::INTEL_MISC_FEATURES_ENABLES if val & !MISC_FEATURES_CPUID_FAULTING != 0 => return None,
        msr::INTEL_MISC_FEATURES_ENABLES => ctx.cur().privs.cpuid_faulting = val != 0,
        _ => return None,
    }
    Some(alloc::format!(" {idx:#x} ({val:#x})"))
}

const RFLAGS_TF: u64 = 1 << 8;
const RFLAGS_RF: u64 = 1 << 16;

/// The port and width of an emulated `in`/`out`, for the I/O-breakpoint check.
fn io_port_of(ctx: &mut Ctx<'_, '_>, insn: &Instruction) -> Option<(u16, u32)> {
    match insn.mnemonic() {
        iced_x86::Mnemonic::In => Some(port_and_size(ctx, insn, 1, 0)),
        iced_x86::Mnemonic::Out => Some(port_and_size(ctx, insn, 0, 1)),
        _ => None,
    }
}

fn port_and_size(ctx: &mut Ctx<'_, '_>, insn: &Instruction, port_op: u32, data_op: u32) -> (u16, u32) {
    let port = match insn.op_kind(port_op) {
        OpKind::Immediate8 => insn.immediate8() as u16,
        _ => gpr(ctx, Register::DX) as u16,
    };
    (port, insn.op_register(data_op).size() as u32)
}

/// `in`: with enough IOPL, a domU reads all ones (no port is the domain's: Xen's guest_io_read
/// for ports the administrator did not grant); without it, #GP. The I/O bitmap
/// (physdev_op set_iobitmap) is not modelled.
fn port_in(ctx: &mut Ctx<'_, '_>, insn: &Instruction) -> Option<String> {
    if !iopl_ok(ctx) {
        return None;
    }
    let (port, size) = port_and_size(ctx, insn, 1, 0);
    let val = if size == 4 { 0xffff_ffff } else { (1u64 << (size * 8)) - 1 };
    write_reg(&mut ctx.cur().cpu, insn.op0_register(), val).then(|| alloc::format!(" port {port:#x} = {val:#x}"))
}

/// `out`: with enough IOPL, dropped (no port is the domain's); without it, #GP.
fn port_out(ctx: &mut Ctx<'_, '_>, insn: &Instruction) -> Option<String> {
    if !iopl_ok(ctx) {
        return None;
    }
    let (port, _) = port_and_size(ctx, insn, 0, 1);
    Some(alloc::format!(" port {port:#x} dropped"))
}
