//! Writable page tables (Xen's "ptwr"): a PV kernel's write to a read-only mapping of one of its
//! own L1 page tables is emulated, the new entry validated exactly like an `mmu_update` of it.
//!
//! Xen 4.17: traps.c `fixup_page_fault` calls `pv_ro_page_fault` (pv/ro-page-fault.c) for a
//! #PF from guest kernel mode whose error code has write and present set and neither
//! reserved-bit nor instruction-fetch, when the domain enabled VMASST_TYPE_writable_pagetables.
//! `pv_ro_page_fault` reads the guest's L1 entry for the address (`guest_get_eff_kern_l1e`) and
//! goes on only for a present, read-only one; `ptwr_do_page_fault` only when that entry maps a
//! frame of the domain typed PGT_l1_page_table (higher-level tables are never emulated:
//! "Page-directory entries cannot be written", xen.h). The instruction is then emulated;
//! `ptwr_emulated_update` accepts only naturally aligned writes of at most 8 bytes within the
//! page of %cr2, merges a narrower write with the rest of the entry, validates the new entry
//! with `get_page_from_l1e` (here: [`PtCtx::update_entry`], the mmu_update path) and drops the
//! old entry's reference. When anything fails (X86EMUL_UNHANDLEABLE) the #PF goes to the guest
//! as it came.
//!
//! The forms emulated here are those a kernel uses on entries: `mov` (register or immediate),
//! `xchg`, `cmpxchg`, `cmpxchg8b`, `and`/`or`/`xor` and `bt{s,r,c}`, with or without `lock`
//! (the vCPU is stopped while the core runs, so a locked and a plain read-modify-write are the
//! same here). Others (Xen's x86_emulate takes any memory write) are refused with a trace line.

use alloc::string::String;

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use crate::abi::hypercall::vm_assist as vma;
use crate::emulate::{reg64, write_reg};
use crate::hypercall::mmu::{frame_name, pt_ctx};
use crate::hypercall::Ctx;
use crate::mm::frames::{Owner, PageType};
use crate::mm::paging::{self, pte_mfn, PTE_ADDR, PTE_P, PTE_RW};
use crate::mm::{Maddr, PAGE_SIZE};
use crate::platform::CpuState;
use crate::traps::pf;

const CF: u64 = 1 << 0;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const TF: u64 = 1 << 8;
const RF: u64 = 1 << 16;
const OF: u64 = 1 << 11;
const ARITH: u64 = CF | PF | AF | ZF | SF | OF;

/// What became of a #PF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a write Xen's ptwr emulates (or refused): deliver the #PF as it came.
    NotMine,
    /// The write was emulated and the instruction retired.
    Emulated,
    /// Emulated, and the vCPU single-steps: DR6.BS is set, a #DB is due.
    EmulatedDebug,
}

/// Read register `r` with its width (AH..BH are bits 8..15).
fn read_reg(c: &mut CpuState, r: Register) -> Option<u64> {
    let high8 = matches!(r, Register::AH | Register::BH | Register::CH | Register::DH);
    let size = r.size();
    let v = *reg64(c, r)?;
    Some(match (size, high8) {
        (8, _) => v,
        (4, _) => v & 0xffff_ffff,
        (2, _) => v & 0xffff,
        (1, true) => (v >> 8) & 0xff,
        (1, false) => v & 0xff,
        _ => return None,
    })
}

fn mask(size: u64) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// A register or immediate source operand, cut to `size` bytes.
fn source(c: &mut CpuState, ins: &Instruction, op: u32, size: u64) -> Option<u64> {
    let v = match ins.op_kind(op) {
        OpKind::Register => read_reg(c, ins.op_register(op))?,
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => ins.immediate(op),
        _ => return None,
    };
    Some(v & mask(size))
}

/// SF, ZF and PF of a result of `size` bytes.
fn szp(r: u64, size: u64) -> u64 {
    let mut f = 0;
    if r & mask(size) == 0 {
        f |= ZF;
    }
    if r >> (size * 8 - 1) & 1 != 0 {
        f |= SF;
    }
    if (r as u8).count_ones() % 2 == 0 {
        f |= PF;
    }
    f
}

/// The arithmetic flags of `cmp a, b` (a - b) on `size` bytes.
fn sub_flags(a: u64, b: u64, size: u64) -> u64 {
    let m = mask(size);
    let r = a.wrapping_sub(b) & m;
    let top = size * 8 - 1;
    let mut f = szp(r, size);
    if a & m < b & m {
        f |= CF;
    }
    if ((a ^ b) & (a ^ r)) >> top & 1 != 0 {
        f |= OF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    f
}

/// The emulated effect of one instruction on its memory operand of `size` bytes (`old`).
struct Effect {
    /// The value to store, or none (a failed cmpxchg stores nothing).
    store: Option<u64>,
    /// Register writes (with x86 width semantics) and the arithmetic flags to set.
    regs: [(Register, u64); 2],
    nregs: usize,
    flags: Option<(u64, u64)>,
}

impl Effect {
    fn store(v: u64) -> Self {
        Effect { store: Some(v), regs: [(Register::None, 0); 2], nregs: 0, flags: None }
    }
    fn reg(mut self, r: Register, v: u64) -> Self {
        self.regs[self.nregs] = (r, v);
        self.nregs += 1;
        self
    }
    fn flags(mut self, which: u64, set: u64) -> Self {
        self.flags = Some((which, set));
        self
    }
}

/// The memory operand's linear address (FS/GS bases; others are flat in 64-bit mode).
fn linear(c: &CpuState, ins: &Instruction, op: u32) -> Option<u64> {
    let mut c2 = *c;
    ins.virtual_address(op, 0, |r, _, _| {
        let v = match r.full_register() {
            Register::FS => c.fs_base,
            Register::GS => c.gs_base,
            Register::ES | Register::CS | Register::SS | Register::DS | Register::None => 0,
            Register::RIP => ins.next_ip(),
            full => *reg64(&mut c2, full)?,
        };
        Some(if r.size() == 4 && r.full_register() != r { v & 0xffff_ffff } else { v })
    })
}

/// Describe an entry for traces without machine addresses: `pfn 0x68f8|0x8000000000000165`
/// for a present one (the frame by name and the flag bits), the raw value otherwise.
fn describe_pte(ctx: &Ctx<'_, '_>, e: u64) -> String {
    if e & PTE_P == 0 {
        return alloc::format!("{e:#x}");
    }
    alloc::format!("{}|{:#x}", frame_name(ctx, pte_mfn(e)), e & !PTE_ADDR)
}

/// Xen's `fixup_page_fault` → `pv_ro_page_fault` → `ptwr_do_page_fault` for the current vCPU's
/// #PF at `cr2` with hardware error code `ec`.
pub fn page_fault(ctx: &mut Ctx<'_, '_>, ec: u32, cr2: u64) -> Outcome {
    use Outcome::NotMine;
    if !ctx.cur_ref().kernel_mode
        || ec & (pf::RSVD | pf::FETCH) != 0
        || ec & (pf::WRITE | pf::PRESENT) != (pf::WRITE | pf::PRESENT)
        || ctx.domain_ref().vm_assist & (1 << vma::TYPE_WRITABLE_PAGETABLES) == 0
    {
        return NotMine;
    }
    // guest_get_eff_kern_l1e: no entry for an address in Xen's range (__addr_ok).
    if paging::in_xen_range(cr2) || !paging::is_canonical(cr2) {
        return NotMine;
    }
    let l4 = crate::mm::Mfn(ctx.cur_ref().cpu.cr3 >> 12);
    let Ok(walk) = paging::walk(&ctx.mem, l4, cr2) else { return NotMine };
    let Some(leaf) = ctx.mem.read_u64(walk.l1e) else { return NotMine };
    if leaf & (PTE_P | PTE_RW) != PTE_P {
        return NotMine;
    }
    let table = pte_mfn(leaf);
    match ctx.frames.get(table) {
        Some(f) if f.owner == Owner::Dom(ctx.dom) && f.ty == PageType::PageTable(1) => {}
        _ => return NotMine,
    }
    let rip = ctx.cur_ref().cpu.rip;
    let (bytes, n) = crate::privop::fetch(ctx, rip);
    let ins = Decoder::with_ip(64, &bytes[..n], rip, DecoderOptions::NONE).decode();
    let who = ctx.who();
    let refuse = |ctx: &mut Ctx<'_, '_>, why: &str| {
        if ctx.tracing {
            ctx.lines.push(alloc::format!("{who} ptwr at {rip:#x} [{cr2:#x}]: {why}, #PF to the guest"));
        }
        NotMine
    };
    if ins.is_invalid() || n == 0 {
        return refuse(ctx, "undecodable instruction");
    }
    let text = crate::privop::format_insn(&ins);
    // The memory operand: the one the instruction writes.
    let Some(mop) = (0..ins.op_count()).find(|&i| ins.op_kind(i) == OpKind::Memory) else {
        return refuse(ctx, &alloc::format!("'{text}' writes no memory operand"));
    };
    let size = ins.memory_size().size() as u64;
    let Some(mut ea) = linear(&ctx.cur_ref().cpu, &ins, mop) else {
        return refuse(ctx, &alloc::format!("'{text}': no address"));
    };
    let mnemonic = ins.mnemonic();
    // bt* with a register bit offset address a bit string (SDM: BT): the offset's signed
    // quotient moves the operand.
    let mut bit = 0u64;
    if matches!(mnemonic, Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc) {
        let bits = size * 8;
        match ins.op1_kind() {
            OpKind::Register => {
                let raw = read_reg(&mut ctx.cur().cpu, ins.op1_register()).unwrap_or(0);
                let off = match size {
                    2 => raw as u16 as i16 as i64,
                    4 => raw as u32 as i32 as i64,
                    _ => raw as i64,
                };
                ea = ea.wrapping_add((off.div_euclid(bits as i64) * size as i64) as u64);
                bit = off.rem_euclid(bits as i64) as u64;
            }
            _ => bit = ins.immediate(1) & (bits - 1),
        }
    }
    // ptwr_emulated_write/cmpxchg: 1, 2, 4 or 8 bytes; ptwr_emulated_update: naturally aligned,
    // within the page of %cr2.
    if !matches!(size, 1 | 2 | 4 | 8) || ea & (size - 1) != 0 || (ea ^ cr2) & !(PAGE_SIZE - 1) != 0 {
        return refuse(ctx, &alloc::format!("'{text}': {size}-byte access at {ea:#x}"));
    }
    let word = Maddr(table.maddr().0 + (ea & (PAGE_SIZE - 1) & !7));
    let shift = (ea & 7) * 8;
    let Some(full) = ctx.mem.read_u64(word) else { return refuse(ctx, "entry unreadable") };
    let old = (full >> shift) & mask(size);
    let m = mask(size);
    let effect = {
        let c = &mut ctx.cur().cpu;
        let src1 = |c: &mut CpuState| source(c, &ins, 1, size);
        match (mnemonic, mop) {
            (Mnemonic::Mov, 0) => src1(c).map(Effect::store),
            (Mnemonic::Xchg, _) => {
                let r = ins.op_register(1 - mop);
                read_reg(c, r).map(|v| Effect::store(v & m).reg(r, old))
            }
            (Mnemonic::Cmpxchg, 0) => src1(c).and_then(|new| {
                let acc = match size {
                    1 => Register::AL,
                    2 => Register::AX,
                    4 => Register::EAX,
                    _ => Register::RAX,
                };
                let a = read_reg(c, acc)?;
                let f = sub_flags(a, old, size);
                Some(if a == old {
                    Effect::store(new).flags(ARITH, f)
                } else {
                    // "Failure: write the value we saw to EAX" (x86_emulate), no store.
                    Effect { store: None, ..Effect::store(0) }.reg(acc, old).flags(ARITH, f)
                })
            }),
            (Mnemonic::Cmpxchg8b, 0) => {
                let want = (c.rdx & 0xffff_ffff) << 32 | (c.rax & 0xffff_ffff);
                Some(if want == old {
                    Effect::store((c.rcx & 0xffff_ffff) << 32 | (c.rbx & 0xffff_ffff)).flags(ZF, ZF)
                } else {
                    Effect { store: None, ..Effect::store(0) }
                        .reg(Register::EAX, old & 0xffff_ffff)
                        .reg(Register::EDX, old >> 32)
                        .flags(ZF, 0)
                })
            }
            (Mnemonic::And | Mnemonic::Or | Mnemonic::Xor, 0) => src1(c).map(|s| {
                let r = match mnemonic {
                    Mnemonic::And => old & s,
                    Mnemonic::Or => old | s,
                    _ => old ^ s,
                } & m;
                Effect::store(r).flags(ARITH, szp(r, size))
            }),
            (Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc, 0) => {
                let b = 1u64 << bit;
                let r = match mnemonic {
                    Mnemonic::Bts => old | b,
                    Mnemonic::Btr => old & !b,
                    _ => old ^ b,
                };
                Some(Effect::store(r).flags(CF, if old & b != 0 { CF } else { 0 }))
            }
            _ => None,
        }
    };
    let Some(effect) = effect else {
        return refuse(ctx, &alloc::format!("'{text}' is not an emulated form"));
    };
    let name = alloc::format!("{mnemonic:?}").to_lowercase();
    if let Some(v) = effect.store {
        let new_full = (full & !(m << shift)) | ((v & m) << shift);
        if let Err(e) = pt_ctx(ctx).update_entry(word, new_full) {
            if ctx.tracing {
                let (o, nw) = (describe_pte(ctx, full), describe_pte(ctx, new_full));
                let note = if new_full & PTE_P != 0 { crate::hypercall::mmu::owner_note(ctx, pte_mfn(new_full)) } else { String::new() };
                let sep = if note.is_empty() { "" } else { ", " };
                ctx.lines.push(alloc::format!("{who} ptwr {name} [{ea:#x}] {o} -> {nw} = {e}{sep}{note}: #PF to the guest"));
            }
            return NotMine;
        }
        ctx.fx.flush_tlb = true;
        if ctx.tracing {
            let now = ctx.mem.read_u64(word).unwrap_or(new_full);
            let (o, nw) = (describe_pte(ctx, full), describe_pte(ctx, now));
            ctx.lines.push(alloc::format!("{who} ptwr {name} [{ea:#x}] {o} -> {nw} = ok"));
        }
    } else if ctx.tracing {
        let o = describe_pte(ctx, full);
        ctx.lines.push(alloc::format!("{who} ptwr {name} [{ea:#x}] {o}: compare failed, no write"));
    }
    let c = &mut ctx.cur().cpu;
    for &(r, v) in &effect.regs[..effect.nregs] {
        write_reg(c, r, v);
    }
    if let Some((which, set)) = effect.flags {
        c.rflags = (c.rflags & !which) | (set & which);
    }
    c.rip = ins.next_ip();
    c.rflags &= !RF;
    // pv_ro_page_fault: "if ( ctxt.retire.singlestep ) pv_inject_DB(X86_DR6_BS)".
    if c.rflags & TF != 0 {
        let v = ctx.cur();
        v.privs.dr[6] |= crate::privop::dr::DR6_BS | crate::privop::dr::DR6_DEFAULT;
        return Outcome::EmulatedDebug;
    }
    Outcome::Emulated
}
