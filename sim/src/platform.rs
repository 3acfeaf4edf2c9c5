//! The simulator's implementation of the core's [`Platform`]: one unicorn instance per vCPU,
//! all mapping the same host buffer as machine memory, real 4-level paging, guests in ring 3.
//!
//! Exits: the `syscall` gate (SYSCALL hook), faults and `int n` (interrupt hook), invalid
//! opcodes (invalid-instruction hook), and the time budget (block hook). Virtual time is the
//! number of guest instructions retired: each block is charged its instruction count, decoded
//! when unicorn translates the block and cached, so a run is bit-for-bit repeatable.

use std::collections::HashMap;

use hv::mm::paging::{self, PTE_NX, PTE_RW};
use hv::mm::Mfn;
use hv::platform::{CpuState, DebugRegs, Exit, Gate, Platform, VcpuKey};
use hv::DomId;
use unicorn_engine::unicorn_const::{HookType, MemType};
use unicorn_engine::{Prot, RegisterX86, UcHookId, Unicorn};

use crate::uc_fix::ExceptionState;

/// Frames the simulator keeps for itself (GDT, ring-0 stub and stack).
pub const RESERVED_FRAMES: u64 = 32;
const GDT_FRAME: u64 = 1;
const GDT_FRAMES: u64 = 16;
const STUB_FRAME: u64 = 17;
const STACK_FRAME: u64 = 18;
/// Where the simulator's private pages live in every address space (L4 slot 261, supervisor).
pub const XEN_PRIV: u64 = 0xFFFF_8280_0000_0000;
const GDT_VA: u64 = XEN_PRIV;
const STUB_VA: u64 = XEN_PRIV + GDT_FRAMES * 4096;
const STACK_VA: u64 = STUB_VA + 4096;
/// `until` for emu_start: an address guests never execute.
const UNTIL: u64 = XEN_PRIV + 0x10_0000;

/// Machine memory: a page-aligned host buffer.
struct Ram {
    ptr: *mut u8,
    len: usize,
    /// The allocation `ptr` was carved from.
    base: *mut u8,
    layout: std::alloc::Layout,
}

impl Ram {
    fn new(len: usize) -> Result<Ram, String> {
        // Ask for 16-byte alignment and align by hand: a page-aligned `alloc_zeroed` makes the
        // allocator memset the whole buffer, while a plain zeroed allocation of this size comes
        // straight from fresh (already zero) pages, so machine memory costs nothing until used.
        let layout = std::alloc::Layout::from_size_align(len + 4096, 16).map_err(|e| format!("{len} bytes of machine memory: {e}"))?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        if base.is_null() {
            return Err(format!("the host cannot give {} MiB of machine memory", len >> 20));
        }
        let ptr = base.wrapping_add(base.align_offset(4096));
        Ok(Ram { ptr, len, base, layout })
    }
}

impl Drop for Ram {
    fn drop(&mut self) {
        // SAFETY: allocated in `Ram::new` with this layout; all unicorn instances that map it
        // are dropped before (field order of `SimPlatform`).
        unsafe { std::alloc::dealloc(self.base, self.layout) }
    }
}

/// Per-vCPU data the hooks see.
pub(crate) struct Hooked {
    pub(crate) exit: Option<Exit>,
    budget: u64,
    pub(crate) ran: u64,
    pub(crate) ram: *const u8,
    pub(crate) ram_len: usize,
    pub(crate) cr3: u64,
    /// Direct-mapped cache of instruction counts per block: (address, size, count, address of
    /// the block's first I/O instruction or [`NO_IO`]).
    icache: Vec<(u64, u32, u32, u64)>,
    /// I/O instructions that have a code hook (see [`SimPlatform::run`]).
    io_hooked: std::collections::HashSet<u64>,
    /// A block about to run holds an I/O instruction with no hook yet: stop, hook, retry.
    io_retry: Option<(u64, u64, u64)>,
    /// The exit is a #GP(0) the platform raised for a ring-3 I/O instruction.
    io_fault: bool,
    /// gdb's hooks in this instance (`xenolith ... --gdb`).
    pub(crate) gdb: Option<Box<crate::gdb::Attach>>,
    /// Armed hardware breakpoints (None: DR7 enables none, nothing is hooked).
    watch: Option<Box<crate::watch::Watch>>,
    /// The vCPU's CR4.FSGSBASE (the real bit in its instance's CR4).
    fsgsbase: bool,
    /// Block-hook calls and instruction-count cache misses (see [`SimStats`]).
    blocks: u64,
    icache_misses: u64,
}

/// What the simulator did, counted (`XENOLITH_STATS=1 xenolith boot ...` prints it; the Linux
/// bench reports it): where a run's wall time goes is mostly a matter of how often each of these
/// happens.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimStats {
    /// `emu_start` calls (one per `run`, more when an I/O block is hooked and retried).
    pub emu_starts: u64,
    /// Exits returned to the core, by cause.
    pub exit_gate: u64,
    pub exit_budget: u64,
    pub exit_exception: u64,
    pub exit_softint: u64,
    pub exit_other: u64,
    /// Entries through the ring-0 `iretq` stub (whole-context restore) after a selector change.
    pub reenters: u64,
    /// CR3 writes into unicorn (each flushes its TLB).
    pub cr3_writes: u64,
    /// Block-hook calls (translation blocks executed) and instruction-count cache misses.
    pub blocks: u64,
    pub icache_misses: u64,
    /// Exception details read back through a context save/restore (uc_fix).
    pub exc_takes: u64,
    /// Unicorn register reads and writes done by the platform around runs.
    pub reg_reads: u64,
    pub reg_writes: u64,
}

impl SimStats {
    /// One line per counter, for stderr.
    pub fn report(&self, instructions: u64) -> String {
        format!(
            "instructions retired  {instructions}\nemu_start calls       {}\nexits: gate {} budget {} exception {} softint {} other {}\nreenters (iretq stub) {}\nCR3 writes            {}\nblock hooks           {} ({:.2} insns/block)\nicount cache misses   {}\nexception reads       {}\nregister reads/writes {} / {}\n",
            self.emu_starts,
            self.exit_gate,
            self.exit_budget,
            self.exit_exception,
            self.exit_softint,
            self.exit_other,
            self.reenters,
            self.cr3_writes,
            self.blocks,
            instructions as f64 / self.blocks.max(1) as f64,
            self.icache_misses,
            self.exc_takes,
            self.reg_reads,
            self.reg_writes,
        )
    }
}

/// The block hook (without gdb): count the block's instructions into the time slice, and stop
/// before a block with an unhooked I/O instruction.
extern "C" fn block_hook(uc: *mut unicorn_engine::uc_engine, addr: u64, size: u32, data: *mut std::ffi::c_void) {
    // SAFETY: `data` is the instance's `Hooked` (see `new_vcpu`); unicorn calls hooks one at a
    // time on the thread that runs `emu_start`, and no other reference to it is live then.
    let d = unsafe { &mut *data.cast::<Hooked>() };
    d.blocks += 1;
    let (n, io) = d.count(addr, size);
    if d.io_stop(addr, size, io) || d.charge(addr, n) {
        // SAFETY: the live handle of the instance running this hook.
        let _ = unsafe { unicorn_engine::uc_emu_stop(uc) };
    }
}

/// `icache` entry of a block without I/O instructions.
const NO_IO: u64 = u64::MAX;

/// `wrfsbase`/`wrgsbase` with a 64-bit register: unicorn writes any value, hardware raises #GP(0)
/// for a non-canonical one. They get the same code hook as I/O instructions.
fn is_wrbase(i: &iced_x86::Instruction) -> bool {
    use iced_x86::Code::*;
    matches!(i.code(), Wrfsbase_r64 | Wrgsbase_r64)
}

/// The unicorn register of a 64-bit general register.
fn uc_gpr(r: iced_x86::Register) -> Option<RegisterX86> {
    use iced_x86::Register as I;
    Some(match r {
        I::RAX => RegisterX86::RAX,
        I::RBX => RegisterX86::RBX,
        I::RCX => RegisterX86::RCX,
        I::RDX => RegisterX86::RDX,
        I::RSI => RegisterX86::RSI,
        I::RDI => RegisterX86::RDI,
        I::RBP => RegisterX86::RBP,
        I::RSP => RegisterX86::RSP,
        I::R8 => RegisterX86::R8,
        I::R9 => RegisterX86::R9,
        I::R10 => RegisterX86::R10,
        I::R11 => RegisterX86::R11,
        I::R12 => RegisterX86::R12,
        I::R13 => RegisterX86::R13,
        I::R14 => RegisterX86::R14,
        I::R15 => RegisterX86::R15,
        _ => return None,
    })
}

/// Is this an instruction that needs the I/O permission check (`in`, `out`, `ins`, `outs`)?
fn is_io(i: &iced_x86::Instruction) -> bool {
    use iced_x86::Mnemonic::*;
    matches!(i.mnemonic(), In | Out | Insb | Insw | Insd | Outsb | Outsw | Outsd)
}

const ICACHE: usize = 16384;

impl Hooked {
    fn new(ram: *const u8, ram_len: usize) -> Hooked {
        Hooked {
            exit: None,
            budget: 0,
            ran: 0,
            ram,
            ram_len,
            cr3: 0,
            icache: vec![(0, 0, 0, NO_IO); ICACHE],
            io_hooked: Default::default(),
            io_retry: None,
            io_fault: false,
            gdb: None,
            watch: None,
            fsgsbase: false,
            blocks: 0,
            icache_misses: 0,
        }
    }

    fn mem(&self) -> &[u8] {
        // SAFETY: `ram` points to the platform's machine memory of `ram_len` bytes, which
        // outlives every unicorn instance; the core does not write it while a vCPU runs.
        unsafe { std::slice::from_raw_parts(self.ram, self.ram_len) }
    }

    /// Read guest-virtual bytes through the page tables, host side (never faults).
    fn read_virt(&self, va: u64, out: &mut [u8]) -> bool {
        let mem = self.mem();
        let mut i = 0;
        while i < out.len() {
            let Ok(w) = paging::walk_slice(mem, Mfn(self.cr3 >> 12), va.wrapping_add(i as u64)) else { return false };
            let n = (4096 - (w.maddr.0 & 4095) as usize).min(out.len() - i);
            out[i..i + n].copy_from_slice(&mem[w.maddr.0 as usize..w.maddr.0 as usize + n]);
            i += n;
        }
        true
    }

    /// A block about to run holds an I/O instruction with no hook yet: note it for
    /// [`SimPlatform::run`] and say to stop before the block runs.
    #[inline]
    fn io_stop(&mut self, addr: u64, size: u32, io: u64) -> bool {
        if io != NO_IO && self.exit.is_none() && !self.io_hooked.contains(&io) {
            // unicorn lets ring 3 do port I/O (its gen_check_io returns at once); hardware
            // raises #GP(0) at IOPL 0. Stop before this block runs, put a code hook on the
            // instruction, and run the block again (see `SimPlatform::run`).
            self.io_retry = Some((addr, addr + size as u64, io));
            return true;
        }
        false
    }

    /// Charge a block of `n` instructions to the time slice; true when the slice is used up
    /// (the exit is set; the caller stops emulation).
    /// Never in the simulator's ring-0 entry stub (`addr`): stopped there, before its `iretq`,
    /// the instance would hold the ring-0 context (CS 0), not the guest's; the slice then ends
    /// at the guest's first block instead, as hardware takes no interrupt inside Xen's exit path.
    #[inline]
    fn charge(&mut self, addr: u64, n: u32) -> bool {
        self.ran += n as u64;
        // A #DB waiting for the next boundary (or held by a `mov ss` shadow) is not cut off
        // by the end of the time slice: hardware takes no interrupt there either.
        if self.ran >= self.budget && self.exit.is_none() && self.watch.as_ref().is_none_or(|w| w.pending == 0) && addr & !0xfff != STUB_VA
        {
            self.exit = Some(Exit::Budget);
            return true;
        }
        false
    }

    /// Instructions in the block at `addr`, and the address of its first I/O instruction.
    #[inline]
    fn count(&mut self, addr: u64, size: u32) -> (u32, u64) {
        let e = self.icache[icache_slot(addr)];
        if e.0 == addr && e.1 == size && e.2 != 0 {
            return (e.2, e.3);
        }
        self.icache_misses += 1;
        self.decode_block(addr, size)
    }

    /// Decode the block at `addr` from guest memory and cache its instruction count. Called on a
    /// cache miss and whenever unicorn translates a block: code the guest rewrote (Linux patches
    /// its own text: alternatives, return thunks, jump labels) is counted as it now is, not as a
    /// stale entry for the same address and size says.
    fn decode_block(&mut self, addr: u64, size: u32) -> (u32, u64) {
        let mut bytes = vec![0u8; size as usize];
        let mut io = NO_IO;
        let n = if self.read_virt(addr, &mut bytes) {
            let mut dec = iced_x86::Decoder::with_ip(64, &bytes, addr, iced_x86::DecoderOptions::NONE);
            let mut n = 0;
            while dec.can_decode() {
                let i = dec.decode();
                if io == NO_IO && (is_io(&i) || is_wrbase(&i)) {
                    io = i.ip();
                }
                n += 1;
            }
            n.max(1)
        } else {
            1 + size / 4
        };
        self.icache[icache_slot(addr)] = (addr, size, n, io);
        (n, io)
    }
}

#[inline]
fn icache_slot(addr: u64) -> usize {
    ((addr ^ (addr >> 12)) as usize) & (ICACHE - 1)
}

/// One vCPU's emulator.
struct SimVcpu {
    uc: Unicorn<'static, Hooked>,
    exc: ExceptionState,
    entered: bool,
    /// The ring-0 state the instance first entered its guest from (long mode, paging, our
    /// GDT): restored to enter again through the `iretq` stub when CS or SS must change
    /// (writing CS does not switch between 64-bit and compatibility mode in unicorn).
    ring0: Option<crate::uc_fix::SavedContext>,
    /// Registers as of the last exit: only changed ones are written back.
    last: CpuState,
    flush: bool,
    /// Its domain's [`SimPlatform::dom_runs`] when this instance last stopped: another vCPU of
    /// the domain ran since when they differ.
    seen_runs: u64,
    /// Hooks that exist while breakpoints are armed (see `crate::watch`).
    dbg_code_hook: Option<UcHookId>,
    dbg_mem_hook: Option<UcHookId>,
}

/// Sink for console bytes (the `boot` command streams them).
pub type ConsoleSink = Box<dyn FnMut(DomId, &str, &[u8])>;

/// The unicorn platform.
pub struct SimPlatform {
    vcpus: HashMap<VcpuKey, SimVcpu>,
    ram: Ram,
    /// Whose guest GDT the shared GDT frames hold (vCPU and the core's version), and how many
    /// guest entries were written there.
    gdt_loaded: Option<(VcpuKey, hv::platform::GuestGdt)>,
    gdt_written: usize,
    /// Trace lines collected so far.
    pub trace: Vec<String>,
    /// Also print trace lines to stderr as they come.
    pub echo_trace: bool,
    pub console_sink: Option<ConsoleSink>,
    /// Total guest instructions retired.
    pub instructions: u64,
    /// Why the last vCPU could not be created (the core only hears "cannot create a unicorn
    /// instance"), for the CLI's message.
    pub vcpu_error: Option<String>,
    /// The gdb stub, when one is attached (`sim::gdb`).
    pub gdb: Option<crate::gdb::Shared>,
    /// Counters (see [`SimStats`]); `blocks` and `icache_misses` are summed from the vCPUs by
    /// [`SimPlatform::stats`].
    stats: SimStats,
    /// How many runs each domain's vCPUs have made. Translated code is not invalidated across
    /// unicorn instances (PLATFORM-FACTS.md): a vCPU whose domain ran another vCPU since its own
    /// last run drops its translations before it runs, so code another vCPU wrote (Linux's
    /// `text_poke`, an `int3` put in and taken out again) is what it executes, as on an x86 CPU
    /// between one hypervisor entry and the next.
    dom_runs: HashMap<DomId, u64>,
}

fn gdt_entries() -> Vec<(usize, u64)> {
    vec![
        (0xe008 >> 3, 0x00af_9a00_0000_ffff), // ring-0 64-bit code (the entry stub)
        (0xe010 >> 3, 0x00cf_9200_0000_ffff), // ring-0 data
        (0xe020 >> 3, 0x00cf_fa00_0000_ffff), // FLAT_RING3_CS32
        (0xe028 >> 3, 0x00cf_f200_0000_ffff), // FLAT_RING3_DS32 / SS
        (0xe030 >> 3, 0x00af_fa00_0000_ffff), // FLAT_RING3_CS64
    ]
}

impl SimPlatform {
    /// A platform with `mib` MiB of machine memory; panics when the host cannot allocate it
    /// (see [`SimPlatform::try_new`]).
    pub fn new(mib: u64) -> SimPlatform {
        Self::try_new(mib).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A platform with `mib` MiB of machine memory, or why the host cannot give it.
    pub fn try_new(mib: u64) -> Result<SimPlatform, String> {
        let ram = Ram::new((mib as usize) << 20)?;
        let mut p = SimPlatform {
            vcpus: HashMap::new(),
            ram,
            gdt_loaded: None,
            gdt_written: 0,
            trace: Vec::new(),
            echo_trace: false,
            console_sink: None,
            instructions: 0,
            vcpu_error: None,
            gdb: None,
            stats: SimStats::default(),
            dom_runs: HashMap::new(),
        };
        let mem = p.memory();
        for (idx, d) in gdt_entries() {
            let a = (GDT_FRAME * 4096) as usize + idx * 8;
            mem[a..a + 8].copy_from_slice(&d.to_le_bytes());
        }
        // The ring-0 entry stub: iretq into the guest.
        let s = (STUB_FRAME * 4096) as usize;
        mem[s..s + 2].copy_from_slice(&[0x48, 0xcf]);
        Ok(p)
    }

    /// What the simulator did so far.
    pub fn stats(&self) -> SimStats {
        let mut s = self.stats;
        for v in self.vcpus.values() {
            let d = v.uc.get_data();
            s.blocks += d.blocks;
            s.icache_misses += d.icache_misses;
        }
        s
    }

    /// Map the simulator's private pages (GDT, stub, stack) into the hypervisor's address space.
    pub fn map_private(hv: &mut hv::Hypervisor<SimPlatform>) -> Result<(), &'static str> {
        for i in 0..GDT_FRAMES {
            hv.map_xen_page(GDT_VA + i * 4096, Mfn(GDT_FRAME + i), PTE_RW | PTE_NX)?;
        }
        hv.map_xen_page(STUB_VA, Mfn(STUB_FRAME), 0)?;
        hv.map_xen_page(STACK_VA, Mfn(STACK_FRAME), PTE_RW | PTE_NX)?;
        Ok(())
    }

    fn new_vcpu(&self, key: VcpuKey) -> Result<SimVcpu, String> {
        let data = Hooked::new(self.ram.ptr, self.ram.len);
        let mut uc = crate::uc_fix::new_instance(data)?;
        if let Some(g) = &self.gdb {
            crate::gdb::attach(&mut uc, g, key);
        }
        // SAFETY: the buffer is `ram.len` bytes, page aligned, and outlives this instance (the
        // platform drops its vCPUs before its memory).
        unsafe { uc.mem_map_ptr(0, self.ram.len as u64, Prot::ALL, self.ram.ptr.cast()) }.map_err(|e| format!("mem_map_ptr: {e:?}"))?;
        if uc.get_data().gdb.is_some() {
            // With gdb, every block goes through gdb's own check first (`crate::gdb::on_block`).
            uc.add_block_hook(1, 0, |uc, addr, size| {
                let d = uc.get_data_mut();
                d.blocks += 1;
                let (n, io) = d.count(addr, size);
                if d.io_stop(addr, size, io) {
                    let _ = uc.emu_stop();
                    return;
                }
                match crate::gdb::on_block(uc, addr, n as u64) {
                    crate::gdb::BlockAction::Charge => {}
                    crate::gdb::BlockAction::Free | crate::gdb::BlockAction::Hold => return,
                }
                if uc.get_data_mut().charge(addr, n) {
                    let _ = uc.emu_stop();
                }
            })
            .map_err(|e| format!("{e:?}"))?;
        } else {
            // The hook every executed block calls: registered raw, so a block costs one C call
            // into `block_hook` and no reference counting (the crate's closure hooks upgrade a
            // weak reference to the instance on every call).
            let data: *mut Hooked = uc.get_data_mut();
            let mut id: unicorn_engine::uc_hook = 0;
            // SAFETY: `block_hook` has the signature of unicorn's block callback
            // (uc_cb_hookcode_t); `data` points into the instance's own heap cell, which lives as
            // long as the instance and so as long as the hook.
            let err = unsafe {
                unicorn_engine::uc_hook_add(
                    uc.get_handle(),
                    &mut id,
                    HookType::BLOCK.0 as i32,
                    block_hook as *mut std::ffi::c_void,
                    data.cast(),
                    1,
                    0,
                )
            };
            if err != unicorn_engine::unicorn_const::uc_error::OK {
                return Err(format!("block hook: {err:?}"));
            }
        }
        // A block (re)translated: count it from its current bytes (see `Hooked::decode_block`).
        uc.add_edge_gen_hook(1, 0, |uc, cur, _prev| {
            let (pc, size) = (cur.pc, cur.size as u32);
            uc.get_data_mut().decode_block(pc, size);
        })
        .map_err(|e| format!("{e:?}"))?;
        uc.add_insn_sys_hook(unicorn_engine::X86Insn::SYSCALL, 1, 0, |uc| {
            uc.get_data_mut().exit = Some(Exit::Gate);
            let _ = uc.emu_stop();
        })
        .map_err(|e| format!("{e:?}"))?;
        uc.add_intr_hook(|uc, intno| {
            let cr2 = if intno == 14 || intno == 8 { uc.reg_read(RegisterX86::CR2).unwrap_or(0) } else { 0 };
            // Read once per process: this hook runs on every guest exception.
            static XDEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            if *XDEBUG.get_or_init(|| std::env::var_os("XDEBUG").is_some()) {
                eprintln!("intr {intno} rip={:#x} cr2={cr2:#x}", uc.reg_read(RegisterX86::RIP).unwrap_or(0));
            }
            // Error code and int-vs-fault are filled in after emu_start returns.
            uc.get_data_mut().exit = Some(Exit::Exception { vector: intno as u8, error_code: None, cr2 });
            let _ = uc.emu_stop();
        })
        .map_err(|e| format!("{e:?}"))?;
        uc.add_insn_invalid_hook(|uc| {
            uc.get_data_mut().exit = Some(Exit::Exception { vector: 6, error_code: None, cr2: 0 });
            false
        })
        .map_err(|e| format!("{e:?}"))?;
        // With exits enabled and none set, `until` is ignored: unicorn would otherwise look up
        // the (unmapped) `until` address on every start, a swallowed instruction-fetch #PF that
        // leaves QEMU's `old_exception` set and turns the guest's next fault into a #DF.
        uc.ctl_exits_enable().map_err(|e| format!("exits: {e:?}"))?;
        let exc = ExceptionState::new(&uc)?;
        Ok(SimVcpu {
            uc,
            exc,
            entered: false,
            ring0: None,
            last: CpuState::default(),
            flush: true,
            seen_runs: 0,
            dbg_code_hook: None,
            dbg_mem_hook: None,
        })
    }
}

/// unicorn raises #GP(0) for a non-canonical stack-segment operand where hardware raises
/// #SS(0) (see `hv::emulate::is_stack_fault`). True if the instruction at rip is one.
fn ss_noncanonical(h: &Hooked, cpu: &CpuState) -> bool {
    let n = (4096 - (cpu.rip & 4095)).min(15) as usize;
    let mut b = [0u8; 15];
    h.read_virt(cpu.rip, &mut b[..n]) && hv::emulate::is_stack_fault(&b[..n], cpu)
}

/// Raise #GP(0) at the I/O instruction at `io`, before it runs, as hardware does for ring 3 at
/// IOPL 0 (the core then emulates it against the guest's virtual IOPL, as Xen does). The code
/// hook stops emulation before the instruction executes (unicorn checks the exit request right
/// after a code hook). It checks the bytes again: the same address may hold other code in
/// another address space.
fn hook_io(uc: &mut Unicorn<'static, Hooked>, first: u64, end: u64) {
    // Every such instruction of the block: a `wrfsbase` that does not fault must not leave the
    // next one unchecked.
    let mut bytes = vec![0u8; (end - first) as usize];
    if !uc.get_data().read_virt(first, &mut bytes) {
        return;
    }
    let addrs: Vec<u64> = iced_x86::Decoder::with_ip(64, &bytes, first, iced_x86::DecoderOptions::NONE)
        .into_iter()
        .filter(|i| is_io(i) || is_wrbase(i))
        .map(|i| i.ip())
        .collect();
    for io in addrs {
        hook_one(uc, io);
    }
}

fn hook_one(uc: &mut Unicorn<'static, Hooked>, io: u64) {
    if !uc.get_data_mut().io_hooked.insert(io) {
        return;
    }
    let _ = uc.add_code_hook(io, io, |uc, addr, _size| {
        let d = uc.get_data_mut();
        if d.exit.is_some() {
            return;
        }
        let n = (4096 - (addr & 4095)).min(15) as usize;
        let mut b = [0u8; 15];
        if !d.read_virt(addr, &mut b[..n]) {
            return;
        }
        let i = iced_x86::Decoder::with_ip(64, &b[..n], addr, iced_x86::DecoderOptions::NONE).decode();
        if is_wrbase(&i) {
            // With CR4.FSGSBASE clear unicorn raises #UD itself; with it set, hardware refuses
            // a non-canonical base with #GP(0).
            let v = uc_gpr(i.op0_register()).and_then(|r| uc.reg_read(r).ok()).unwrap_or(0);
            let d = uc.get_data_mut();
            if d.fsgsbase && !paging::is_canonical(v) {
                d.exit = Some(Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
                d.io_fault = true;
                let _ = uc.emu_stop();
            }
        } else if is_io(&i) {
            d.exit = Some(Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
            d.io_fault = true;
            let _ = uc.emu_stop();
        }
    });
}

/// Arm (or disarm) the vCPU's hardware breakpoints: the per-instruction code hook while DR7
/// enables any breakpoint, the memory hook while it enables a data breakpoint; none otherwise.
/// Translations made with or without the hooks are dropped when they come or go.
fn arm_breakpoints(v: &mut SimVcpu, regs: &DebugRegs) {
    let armed = regs.armed();
    let data = armed && crate::watch::Watch::has_data(regs);
    v.uc.get_data_mut().watch = armed.then(|| Box::new(crate::watch::Watch::new(*regs)));
    let mut changed = false;
    if armed != v.dbg_code_hook.is_some() {
        changed = true;
        if let Some(h) = v.dbg_code_hook.take() {
            let _ = v.uc.remove_hook(h);
        } else {
            v.dbg_code_hook =
                v.uc.add_code_hook(1, 0, |uc, addr, _size| {
                    let d = uc.get_data_mut();
                    if d.exit.is_some() {
                        return;
                    }
                    let Some(mut w) = d.watch.take() else { return };
                    let hit = w.boundary(addr, |a| {
                        let n = (4096 - (a & 4095)).min(15) as usize;
                        let mut b = [0u8; 15];
                        d.read_virt(a, &mut b[..n]) && crate::watch::is_movss(&b[..n])
                    });
                    d.watch = Some(w);
                    if let Some(dr6) = hit {
                        d.exit = Some(Exit::Debug { dr6 });
                        let _ = uc.emu_stop();
                    }
                })
                .ok();
        }
    }
    if data != v.dbg_mem_hook.is_some() {
        changed = true;
        if let Some(h) = v.dbg_mem_hook.take() {
            let _ = v.uc.remove_hook(h);
        } else {
            v.dbg_mem_hook =
                v.uc.add_mem_hook(HookType::MEM_READ | HookType::MEM_WRITE, 1, 0, |uc, ty, addr, size, _value| {
                    if let Some(w) = uc.get_data_mut().watch.as_mut() {
                        w.access(addr, size as u64, ty == MemType::WRITE);
                    }
                    true
                })
                .ok();
        }
    }
    if changed {
        let _ = v.uc.ctl_flush_tb();
    }
}

fn w(uc: &mut Unicorn<'static, Hooked>, r: RegisterX86, v: u64) {
    let _ = uc.reg_write(r, v);
}

/// Write the registers the core changed since the last exit; returns how many, and whether CR3
/// was written.
fn write_changed(v: &mut SimVcpu, cpu: &CpuState) -> (u64, bool) {
    use RegisterX86::*;
    let l = v.last;
    let uc = &mut v.uc;
    let mut n = 0;
    macro_rules! sync {
        ($($f:ident => $r:ident),*) => { $( if cpu.$f != l.$f { w(uc, $r, cpu.$f); n += 1; } )* };
    }
    sync!(rax => RAX, rbx => RBX, rcx => RCX, rdx => RDX, rsi => RSI, rdi => RDI, rbp => RBP,
        rsp => RSP, r8 => R8, r9 => R9, r10 => R10, r11 => R11, r12 => R12, r13 => R13,
        r14 => R14, r15 => R15, rflags => RFLAGS, fs_base => FS_BASE, gs_base => GS_BASE);
    if cpu.cr3 != l.cr3 || v.flush {
        w(uc, CR3, cpu.cr3);
        v.flush = false;
        return (n + 1, true);
    }
    (n, false)
}

fn read_all(uc: &Unicorn<'static, Hooked>, cpu: &mut CpuState) {
    use RegisterX86::*;
    let r = |reg| uc.reg_read(reg).unwrap_or(0);
    cpu.rax = r(RAX);
    cpu.rbx = r(RBX);
    cpu.rcx = r(RCX);
    cpu.rdx = r(RDX);
    cpu.rsi = r(RSI);
    cpu.rdi = r(RDI);
    cpu.rbp = r(RBP);
    cpu.rsp = r(RSP);
    cpu.r8 = r(R8);
    cpu.r9 = r(R9);
    cpu.r10 = r(R10);
    cpu.r11 = r(R11);
    cpu.r12 = r(R12);
    cpu.r13 = r(R13);
    cpu.r14 = r(R14);
    cpu.r15 = r(R15);
    cpu.rip = r(RIP);
    cpu.rflags = r(RFLAGS);
    cpu.fs_base = r(FS_BASE);
    cpu.gs_base = r(GS_BASE);
    cpu.cs = r(CS) as u16;
    cpu.ss = r(SS) as u16;
}

/// Is `cs` a compatibility-mode (not 64-bit) code segment in the GDT the vCPU runs with?
fn is_compat_cs(mem: &[u8], cs: u16) -> bool {
    if cs & 4 != 0 {
        return false;
    }
    let a = (GDT_FRAME * 4096) as usize + (cs as usize >> 3) * 8;
    let Some(d) = mem.get(a..a + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))) else { return false };
    d & (1 << 47) != 0 && d & (1 << 43) != 0 && d & (1 << 53) == 0
}

/// Copy the guest's descriptors (validated by the core, in frames the guest cannot write) into
/// the GDT every vCPU instance uses, below Xen's reserved entries, clearing what the previous
/// guest GDT left beyond them; as Xen maps the guest's GDT frames at the start of the per-vCPU
/// GDT. Only one vCPU runs at a time, so one shared table suffices. Returns how many entries
/// now hold guest descriptors.
fn load_guest_gdt(mem: &mut [u8], gdt: &hv::platform::GuestGdt, written: usize) -> usize {
    let base = (GDT_FRAME * 4096) as usize;
    let n = (gdt.entries as usize).min(hv::abi::FIRST_RESERVED_GDT_ENTRY);
    for i in 0..n {
        let d = gdt
            .desc_maddr(i)
            .and_then(|a| mem.get(a as usize..a as usize + 8))
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
        mem[base + i * 8..base + i * 8 + 8].copy_from_slice(&d.to_le_bytes());
    }
    for i in n..written.min(hv::abi::FIRST_RESERVED_GDT_ENTRY) {
        mem[base + i * 8..base + i * 8 + 8].fill(0);
    }
    n
}

/// Take the data-breakpoint matches waiting for the next boundary.
fn d_pending(uc: &mut Unicorn<'static, Hooked>) -> u64 {
    uc.get_data_mut().watch.as_mut().map(|w| core::mem::take(&mut w.pending)).unwrap_or(0)
}

/// TSD | PAE | OSFXSR | OSXMMEXCPT: the CR4 every vCPU runs with. TSD: the guest's rdtsc (ring 3)
/// raises #GP and the core answers with virtual time.
const CR4_BASE: u64 = (1 << 2) | (1 << 5) | (1 << 9) | (1 << 10);
/// CR4.FSGSBASE, set while the vCPU's own view has it (as Xen's pv_make_cr4).
const CR4_FSGSBASE: u64 = 1 << 16;

/// Bring a fresh instance into long mode with paging and enter ring 3 at `cpu` through a real
/// `iretq` (writing CS does not change CPL in unicorn).
fn enter(v: &mut SimVcpu, cpu: &CpuState, mem: &mut [u8]) -> Result<u64, String> {
    use RegisterX86::*;
    let uc = &mut v.uc;
    let mut gdtr = [0u8; 24];
    gdtr[8..16].copy_from_slice(&GDT_VA.to_le_bytes());
    gdtr[16..20].copy_from_slice(&0xffffu32.to_le_bytes());
    uc.reg_write_long(GDTR, &gdtr).map_err(|e| format!("GDTR: {e:?}"))?;
    w(uc, CR3, cpu.cr3);
    let fsgsbase = uc.get_data().fsgsbase;
    w(uc, CR4, CR4_BASE | if fsgsbase { CR4_FSGSBASE } else { 0 });
    let mut msr = [0u8; 16];
    msr[0..4].copy_from_slice(&0xC000_0080u32.to_le_bytes());
    msr[8..16].copy_from_slice(&((1u64 << 0) | (1 << 8) | (1 << 10) | (1 << 11)).to_le_bytes()); // SCE|LME|LMA|NXE
    uc.reg_write_long(MSR, &msr).map_err(|e| format!("EFER: {e:?}"))?;
    w(uc, CR0, 0x8001_0033); // PG | WP | NE | ET | MP | PE
    v.ring0 = Some(crate::uc_fix::SavedContext::save(&v.uc)?);
    iret_into(v, cpu, mem)
}

/// Enter the guest at `cpu` from the saved ring-0 state through the stub's `iretq`, which loads
/// CS and SS from the GDT (switching between 64-bit and compatibility mode as hardware does).
fn reenter(v: &mut SimVcpu, cpu: &CpuState, mem: &mut [u8]) -> Result<u64, String> {
    let Some(r0) = v.ring0.as_ref() else { return Err("no ring-0 context".into()) };
    // The saved context is the whole CPU of the first entry, x87/SSE/AVX registers included:
    // keep the guest's (Linux's init lost a `movups` store across the #PF it took: xmm0 came
    // back as it was at the first entry).
    let fpu = save_fpu(&v.uc);
    r0.restore(&v.uc)?;
    restore_fpu(&mut v.uc, &fpu);
    w(&mut v.uc, RegisterX86::CR3, cpu.cr3);
    // The saved context has the CR4 of the first entry: put back the vCPU's CR4.FSGSBASE
    // (set_fsgsbase may have changed it since), or a guest that enabled it would take #UD on
    // rdfsbase after its next hypercall or mode switch.
    let fsgsbase = v.uc.get_data().fsgsbase;
    w(&mut v.uc, RegisterX86::CR4, CR4_BASE | if fsgsbase { CR4_FSGSBASE } else { 0 });
    iret_into(v, cpu, mem)
}

/// The x87, SSE and AVX registers of an instance (YMM0-15 hold XMM0-15).
fn save_fpu(uc: &Unicorn<'static, Hooked>) -> Vec<(RegisterX86, Vec<u8>)> {
    use RegisterX86::*;
    let mut out = Vec::new();
    for r in [FPCW, FPSW, FPTAG, MXCSR] {
        if let Ok(x) = uc.reg_read(r) {
            out.push((r, x.to_le_bytes().to_vec()));
        }
    }
    let long = [
        ST0, ST1, ST2, ST3, ST4, ST5, ST6, ST7, YMM0, YMM1, YMM2, YMM3, YMM4, YMM5, YMM6, YMM7, YMM8, YMM9, YMM10, YMM11, YMM12, YMM13,
        YMM14, YMM15,
    ];
    for r in long {
        if let Ok(b) = uc.reg_read_long(r) {
            out.push((r, b.to_vec()));
        }
    }
    out
}

fn restore_fpu(uc: &mut Unicorn<'static, Hooked>, saved: &[(RegisterX86, Vec<u8>)]) {
    use RegisterX86::*;
    for (r, b) in saved {
        if matches!(r, FPCW | FPSW | FPTAG | MXCSR) {
            let mut q = [0u8; 8];
            q.copy_from_slice(&b[..8]);
            let _ = uc.reg_write(*r, u64::from_le_bytes(q));
        } else {
            let _ = uc.reg_write_long(*r, b);
        }
    }
}

/// Write the `iretq` frame and the guest's registers; returns where to start (the stub).
fn iret_into(v: &mut SimVcpu, cpu: &CpuState, mem: &mut [u8]) -> Result<u64, String> {
    use RegisterX86::*;
    let uc = &mut v.uc;
    // iretq frame on the ring-0 stack: rip, cs, rflags, rsp, ss.
    let frame = [cpu.rip, cpu.cs as u64, cpu.rflags, cpu.rsp, cpu.ss as u64];
    let sp_off = (STACK_FRAME * 4096 + 4096 - 64) as usize;
    for (i, q) in frame.iter().enumerate() {
        mem[sp_off + i * 8..sp_off + i * 8 + 8].copy_from_slice(&q.to_le_bytes());
    }
    w(uc, RSP, STACK_VA + 4096 - 64);
    for (r, val) in [
        (RAX, cpu.rax),
        (RBX, cpu.rbx),
        (RCX, cpu.rcx),
        (RDX, cpu.rdx),
        (RSI, cpu.rsi),
        (RDI, cpu.rdi),
        (RBP, cpu.rbp),
        (R8, cpu.r8),
        (R9, cpu.r9),
        (R10, cpu.r10),
        (R11, cpu.r11),
        (R12, cpu.r12),
        (R13, cpu.r13),
        (R14, cpu.r14),
        (R15, cpu.r15),
        (FS_BASE, cpu.fs_base),
        (GS_BASE, cpu.gs_base),
    ] {
        w(uc, r, val);
    }
    Ok(STUB_VA)
}

impl Platform for SimPlatform {
    fn memory(&mut self) -> &mut [u8] {
        // SAFETY: `ram` is a live allocation of `len` bytes owned by self; unicorn only touches
        // it while `run` executes, never while the core holds this borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ram.ptr, self.ram.len) }
    }

    fn gate(&self) -> Gate {
        Gate::Syscall
    }

    fn vcpu_create(&mut self, key: VcpuKey) -> Result<(), &'static str> {
        let v = self.new_vcpu(key).map_err(|e| {
            self.vcpu_error = Some(format!("cannot create vCPU {}: {e}", key.vcpu));
            "cannot create a unicorn instance"
        })?;
        self.vcpus.insert(key, v);
        Ok(())
    }

    fn vcpu_destroy(&mut self, key: VcpuKey) {
        if let Some(v) = self.vcpus.remove(&key) {
            let d = v.uc.get_data();
            self.stats.blocks += d.blocks;
            self.stats.icache_misses += d.icache_misses;
        }
    }

    fn run(&mut self, key: VcpuKey, cpu: &mut CpuState, budget_ns: u64) -> (Exit, u64) {
        let mem_ptr = self.ram.ptr;
        let mem_len = self.ram.len;
        let trace: *const Vec<String> = &self.trace;
        if self.gdt_loaded != Some((key, cpu.gdt)) {
            // SAFETY: see `memory`; no unicorn instance runs during this call.
            let mem = unsafe { std::slice::from_raw_parts_mut(mem_ptr, mem_len) };
            self.gdt_written = load_guest_gdt(mem, &cpu.gdt, self.gdt_written);
            self.gdt_loaded = Some((key, cpu.gdt));
        }
        let Some(v) = self.vcpus.get_mut(&key) else { return (Exit::Fatal("no such vCPU"), 0) };
        if !crate::gdb::before_run(&mut v.uc, self.instructions, trace) {
            // gdb gave up this run (to re-run it for reverse execution).
            return (Exit::Budget, budget_ns.max(1));
        }
        {
            let d = v.uc.get_data_mut();
            d.exit = None;
            d.budget = budget_ns.max(1);
            d.ran = 0;
            d.cr3 = cpu.cr3;
            if let Some(w) = d.watch.as_mut() {
                // SAFETY: see `memory`; no unicorn instance runs during this call.
                let mem = unsafe { std::slice::from_raw_parts(mem_ptr, mem_len) };
                w.resolve(mem, cpu.cr3);
                w.rf_at = (cpu.rflags & (1 << 16) != 0).then_some(cpu.rip);
            }
        }
        let start = if !v.entered {
            // SAFETY: see `memory`; no unicorn instance runs during this call.
            let mem = unsafe { std::slice::from_raw_parts_mut(mem_ptr, mem_len) };
            match enter(v, cpu, mem) {
                Ok(s) => {
                    v.entered = true;
                    v.last = *cpu;
                    s
                }
                Err(_) => return (Exit::Fatal("cannot enter the guest"), 0),
            }
        } else if cpu.cs != v.last.cs || cpu.ss != v.last.ss {
            // The core moved the vCPU to other selectors (a bounce, iret, a hypercall's flat
            // selectors): only a real `iretq` loads them.
            // SAFETY: see `memory`; no unicorn instance runs during this call.
            let mem = unsafe { std::slice::from_raw_parts_mut(mem_ptr, mem_len) };
            v.flush = false;
            self.stats.reenters += 1;
            self.stats.cr3_writes += 1;
            self.stats.reg_writes += 20;
            match reenter(v, cpu, mem) {
                Ok(s) => s,
                Err(_) => return (Exit::Fatal("cannot re-enter the guest"), 0),
            }
        } else {
            let (n, cr3) = write_changed(v, cpu);
            self.stats.reg_writes += n;
            self.stats.cr3_writes += cr3 as u64;
            cpu.rip
        };
        let runs = self.dom_runs.entry(key.dom).or_insert(0);
        if v.seen_runs != *runs {
            // Another vCPU of the domain ran since this one did: see the code it wrote.
            let _ = v.uc.ctl_flush_tb();
            v.uc.get_data_mut().icache.fill((0, 0, 0, NO_IO));
        }
        *runs += 1;
        v.seen_runs = *runs;
        let mut start = start;
        let res = loop {
            self.stats.emu_starts += 1;
            let res = v.uc.emu_start(start, UNTIL, 0, 0);
            match v.uc.get_data_mut().io_retry.take() {
                Some((first, end, io)) if v.uc.get_data().exit.is_none() => {
                    let _ = io;
                    hook_io(&mut v.uc, first, end);
                    let _ = v.uc.ctl_remove_cache(first, end);
                    start = v.uc.reg_read(RegisterX86::RIP).unwrap_or(first);
                }
                _ if crate::gdb::take_resync(&mut v.uc) => {
                    // gdb's hooks changed before a block: run it again with them. Deleting a
                    // hook invalidates the blocks it was translated into, through a page walk
                    // that may fault (a supervisor page seen from ring 3): unicorn swallows the
                    // fault but leaves `old_exception` set (see uc_fix), so clear it.
                    let _ = v.exc.take(&v.uc);
                    start = v.uc.reg_read(RegisterX86::RIP).unwrap_or(start);
                }
                _ => break res,
            }
        };
        read_all(&v.uc, cpu);
        self.stats.reg_reads += 22;
        crate::gdb::after_run(&v.uc, key.vcpu, cpu);
        v.last = *cpu;
        if matches!(v.uc.get_data().exit, Some(Exit::Gate)) {
            // As the syscall entries of Xen (and of the image) record it: the flat selectors
            // of the mode SYSCALL came from (x86_64/entry.S lstar_enter, cstar_enter).
            // SAFETY: see `memory`; no unicorn instance runs during this call.
            let mem = unsafe { std::slice::from_raw_parts(mem_ptr, mem_len) };
            if is_compat_cs(mem, cpu.cs) {
                cpu.cs = hv::abi::FLAT_RING3_CS32;
                cpu.ss = hv::abi::FLAT_RING3_SS32;
            } else {
                cpu.cs = hv::abi::FLAT_KERNEL_CS;
                cpu.ss = hv::abi::FLAT_KERNEL_SS;
            }
        }
        let d = v.uc.get_data_mut();
        let ran = d.ran;
        let exit = d.exit.take();
        let io_fault = std::mem::take(&mut d.io_fault);
        self.instructions += ran;
        let exit = match (exit, res) {
            (Some(e), _) if io_fault => e,

            (Some(Exit::Exception { vector, cr2, .. }), _) if vector != 6 => {
                self.stats.exc_takes += 1;
                let last = v.exc.take(&v.uc).unwrap_or(crate::uc_fix::LastException { error_code: 0, is_int: false });
                if vector == 1 && !last.is_int {
                    // TF single step (unicorn's own): DR6.BS, with any data match of the same
                    // instruction.
                    let pending = d_pending(&mut v.uc);
                    Exit::Debug { dr6: hv::privop::dr::DR6_DEFAULT | hv::privop::dr::DR6_BS | pending }
                } else if last.is_int {
                    let hooked = v.uc.get_data();
                    let mut b = [0u8; 1];
                    let len = if vector == 3 && hooked.read_virt(cpu.rip.wrapping_sub(1), &mut b) && b[0] == 0xcc { 1 } else { 2 };
                    Exit::SoftInt { vector, len }
                } else {
                    let has = hv::abi::vector::has_error_code(vector);
                    let vector = if vector == 13 && last.error_code == 0 && ss_noncanonical(v.uc.get_data(), cpu) { 12 } else { vector };
                    Exit::Exception { vector, error_code: has.then_some(last.error_code), cr2 }
                }
            }
            (Some(e), _) => e,
            (None, Ok(())) => Exit::Fatal("emulation stopped without an exit"),
            (None, Err(_)) => Exit::Fatal("emulation error"),
        };
        match exit {
            Exit::Gate => self.stats.exit_gate += 1,
            Exit::Budget => self.stats.exit_budget += 1,
            Exit::Exception { .. } => self.stats.exit_exception += 1,
            Exit::SoftInt { .. } => self.stats.exit_softint += 1,
            _ => self.stats.exit_other += 1,
        }
        crate::gdb::after_exit(&v.uc, key.vcpu, exit == Exit::Gate);
        if let Some(w) = v.uc.get_data_mut().watch.as_mut() {
            w.exit();
        }
        (exit, ran.max(1))
    }

    fn fsgsbase(&self) -> bool {
        // unicorn's CPU (Haswell) has FSGSBASE and checks CR4.FSGSBASE when the instruction
        // runs; the canonical check is ours (hook_io).
        true
    }

    fn set_fsgsbase(&mut self, key: VcpuKey, enabled: bool) {
        if let Some(v) = self.vcpus.get_mut(&key) {
            v.uc.get_data_mut().fsgsbase = enabled;
            if v.entered {
                w(&mut v.uc, RegisterX86::CR4, CR4_BASE | if enabled { CR4_FSGSBASE } else { 0 });
            }
        }
    }

    fn set_debug_regs(&mut self, key: VcpuKey, regs: &DebugRegs) {
        if let Some(v) = self.vcpus.get_mut(&key) {
            arm_breakpoints(v, regs);
        }
    }

    fn flush_tlb(&mut self, key: VcpuKey) {
        if let Some(v) = self.vcpus.get_mut(&key) {
            v.flush = true;
        }
    }

    fn switch_tables(&mut self, _key: VcpuKey, _cr3: u64) {
        // The simulated hypervisor runs on the host, never on guest page tables; the vCPU's
        // instance loads the new CR3 when it next runs.
    }

    fn code_changed(&mut self, _first_maddr: u64, _len: u64) {
        // New domains get new unicorn instances, whose translation caches start empty.
    }

    fn idle(&mut self, ns: u64) -> u64 {
        ns
    }

    fn wants_core_view(&self) -> bool {
        self.gdb.as_ref().is_some_and(crate::gdb::wants_view)
    }

    fn core_view(&mut self, view: hv::debug::CoreView) {
        if let Some(g) = &self.gdb {
            crate::gdb::set_view(g, view);
        }
    }

    fn trace(&mut self, line: &str) {
        if self.echo_trace {
            eprintln!("{line}");
        }
        self.trace.push(line.to_string());
    }

    fn console(&mut self, dom: DomId, name: &str, bytes: &[u8]) {
        if self.gdb.as_ref().is_some_and(|g| !crate::gdb::console_visible(g)) {
            return;
        }
        if let Some(s) = self.console_sink.as_mut() {
            s(dom, name, bytes);
        }
    }
}

/// Why a simulator could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The host could not give what it needs (machine memory).
    #[error("{0}")]
    Host(String),
    #[error("{0}")]
    Core(&'static str),
}

/// A hypervisor over a fresh simulator with `mib` MiB of machine memory.
pub fn new_hypervisor(mib: u64) -> Result<hv::Hypervisor<SimPlatform>, StartError> {
    let p = SimPlatform::try_new(mib).map_err(StartError::Host)?;
    let mut h = hv::Hypervisor::new(p, RESERVED_FRAMES).map_err(StartError::Core)?;
    SimPlatform::map_private(&mut h).map_err(StartError::Core)?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slice never ends in the ring-0 entry stub: stopped before its `iretq`, the instance
    /// would hold the stub's selectors (CS 0) and the vCPU would be saved with them (Debian's
    /// Linux crashed so under `boot -c`: "code selector 0x0 is not a flat ring-3 selector").
    #[test]
    fn a_slice_does_not_end_in_the_entry_stub() {
        let mut d = Hooked::new(std::ptr::null(), 0);
        d.budget = 1;
        assert!(!d.charge(STUB_VA, 3), "the stub's block runs whatever the budget");
        assert!(d.exit.is_none());
        assert!(d.charge(0x40_0000, 5), "the guest's first block ends the slice");
        assert_eq!(d.exit, Some(Exit::Budget));
        assert_eq!(d.ran, 8);
    }
}
