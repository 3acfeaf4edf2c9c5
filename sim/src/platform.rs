//! The simulator's implementation of the core's [`Platform`]: one unicorn instance per vCPU,
//! all mapping the same host buffer as machine memory, real 4-level paging, guests in ring 3.
//!
//! Exits: the `syscall` gate (SYSCALL hook), faults and `int n` (interrupt hook), invalid
//! opcodes (invalid-instruction hook), and the time budget (block hook). Virtual time is the
//! number of guest instructions retired: each block is charged its instruction count, decoded
//! once and cached, so a run is bit-for-bit repeatable.

use std::collections::HashMap;

use hv::mm::paging::{self, PTE_NX, PTE_RW};
use hv::mm::Mfn;
use hv::platform::{CpuState, Exit, Gate, Platform, VcpuKey};
use hv::DomId;
use unicorn_engine::{Prot, RegisterX86, Unicorn};

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
struct Hooked {
    exit: Option<Exit>,
    budget: u64,
    ran: u64,
    ram: *const u8,
    ram_len: usize,
    cr3: u64,
    /// Direct-mapped cache of instruction counts per block: (address, size, count, address of
    /// the block's first I/O instruction or [`NO_IO`]).
    icache: Vec<(u64, u32, u32, u64)>,
    /// I/O instructions that have a code hook (see [`SimPlatform::run`]).
    io_hooked: std::collections::HashSet<u64>,
    /// A block about to run holds an I/O instruction with no hook yet: stop, hook, retry.
    io_retry: Option<(u64, u64, u64)>,
    /// The exit is a #GP(0) the platform raised for a ring-3 I/O instruction.
    io_fault: bool,
}

/// `icache` entry of a block without I/O instructions.
const NO_IO: u64 = u64::MAX;

/// Is this an instruction that needs the I/O permission check (`in`, `out`, `ins`, `outs`)?
fn is_io(i: &iced_x86::Instruction) -> bool {
    use iced_x86::Mnemonic::*;
    matches!(i.mnemonic(), In | Out | Insb | Insw | Insd | Outsb | Outsw | Outsd)
}

const ICACHE: usize = 4096;

impl Hooked {
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

    /// Instructions in the block at `addr`, and the address of its first I/O instruction.
    fn count(&mut self, addr: u64, size: u32) -> (u32, u64) {
        let slot = ((addr ^ (addr >> 12)) as usize) & (ICACHE - 1);
        let e = self.icache[slot];
        if e.0 == addr && e.1 == size && e.2 != 0 {
            return (e.2, e.3);
        }
        let mut bytes = vec![0u8; size as usize];
        let mut io = NO_IO;
        let n = if self.read_virt(addr, &mut bytes) {
            let mut dec = iced_x86::Decoder::with_ip(64, &bytes, addr, iced_x86::DecoderOptions::NONE);
            let mut n = 0;
            while dec.can_decode() {
                let i = dec.decode();
                if io == NO_IO && is_io(&i) {
                    io = i.ip();
                }
                n += 1;
            }
            n.max(1)
        } else {
            1 + size / 4
        };
        self.icache[slot] = (addr, size, n, io);
        (n, io)
    }
}

/// One vCPU's emulator.
struct SimVcpu {
    uc: Unicorn<'static, Hooked>,
    exc: ExceptionState,
    entered: bool,
    /// Registers as of the last exit: only changed ones are written back.
    last: CpuState,
    flush: bool,
}

/// Sink for console bytes (the `boot` command streams them).
pub type ConsoleSink = Box<dyn FnMut(DomId, &str, &[u8])>;

/// The unicorn platform.
pub struct SimPlatform {
    vcpus: HashMap<VcpuKey, SimVcpu>,
    ram: Ram,
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
            trace: Vec::new(),
            echo_trace: false,
            console_sink: None,
            instructions: 0,
            vcpu_error: None,
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

    /// Map the simulator's private pages (GDT, stub, stack) into the hypervisor's address space.
    pub fn map_private(hv: &mut hv::Hypervisor<SimPlatform>) -> Result<(), &'static str> {
        for i in 0..GDT_FRAMES {
            hv.map_xen_page(GDT_VA + i * 4096, Mfn(GDT_FRAME + i), PTE_RW | PTE_NX)?;
        }
        hv.map_xen_page(STUB_VA, Mfn(STUB_FRAME), 0)?;
        hv.map_xen_page(STACK_VA, Mfn(STACK_FRAME), PTE_RW | PTE_NX)?;
        Ok(())
    }

    fn new_vcpu(&self) -> Result<SimVcpu, String> {
        let data = Hooked {
            exit: None,
            budget: 0,
            ran: 0,
            ram: self.ram.ptr,
            ram_len: self.ram.len,
            cr3: 0,
            icache: vec![(0, 0, 0, NO_IO); ICACHE],
            io_hooked: Default::default(),
            io_retry: None,
            io_fault: false,
        };
        let mut uc = crate::uc_fix::new_instance(data)?;
        // SAFETY: the buffer is `ram.len` bytes, page aligned, and outlives this instance (the
        // platform drops its vCPUs before its memory).
        unsafe { uc.mem_map_ptr(0, self.ram.len as u64, Prot::ALL, self.ram.ptr.cast()) }
            .map_err(|e| format!("mem_map_ptr: {e:?}"))?;
        uc.add_block_hook(1, 0, |uc, addr, size| {
            let d = uc.get_data_mut();
            let (n, io) = d.count(addr, size);
            if io != NO_IO && !d.io_hooked.contains(&io) && d.exit.is_none() {
                // unicorn lets ring 3 do port I/O (its gen_check_io returns at once); hardware
                // raises #GP(0) at IOPL 0. Stop before this block runs, put a code hook on the
                // instruction, and run the block again (see `SimPlatform::run`).
                d.io_retry = Some((addr, addr + size as u64, io));
                let _ = uc.emu_stop();
                return;
            }
            let n = n as u64;
            d.ran += n;
            if d.ran >= d.budget && d.exit.is_none() {
                d.exit = Some(Exit::Budget);
                let _ = uc.emu_stop();
            }
        })
        .map_err(|e| format!("{e:?}"))?;
        uc.add_insn_sys_hook(unicorn_engine::X86Insn::SYSCALL, 1, 0, |uc| {
            uc.get_data_mut().exit = Some(Exit::Gate);
            let _ = uc.emu_stop();
        })
        .map_err(|e| format!("{e:?}"))?;
        uc.add_intr_hook(|uc, intno| {
            let cr2 = if intno == 14 || intno == 8 { uc.reg_read(RegisterX86::CR2).unwrap_or(0) } else { 0 };
            if std::env::var_os("XDEBUG").is_some() { eprintln!("intr {intno} rip={:#x} cr2={cr2:#x}", uc.reg_read(RegisterX86::RIP).unwrap_or(0)); }
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
        Ok(SimVcpu { uc, exc, entered: false, last: CpuState::default(), flush: true })
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
fn hook_io(uc: &mut Unicorn<'static, Hooked>, io: u64) {
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
        if is_io(&i) {
            d.exit = Some(Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
            d.io_fault = true;
            let _ = uc.emu_stop();
        }
    });
}

fn w(uc: &mut Unicorn<'static, Hooked>, r: RegisterX86, v: u64) {
    let _ = uc.reg_write(r, v);
}

fn write_changed(v: &mut SimVcpu, cpu: &CpuState) {
    use RegisterX86::*;
    let l = v.last;
    let uc = &mut v.uc;
    macro_rules! sync {
        ($($f:ident => $r:ident),*) => { $( if cpu.$f != l.$f { w(uc, $r, cpu.$f); } )* };
    }
    sync!(rax => RAX, rbx => RBX, rcx => RCX, rdx => RDX, rsi => RSI, rdi => RDI, rbp => RBP,
        rsp => RSP, r8 => R8, r9 => R9, r10 => R10, r11 => R11, r12 => R12, r13 => R13,
        r14 => R14, r15 => R15, rflags => RFLAGS, fs_base => FS_BASE, gs_base => GS_BASE);
    if cpu.cr3 != l.cr3 || v.flush {
        w(uc, CR3, cpu.cr3);
        v.flush = false;
    }
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
}

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
    // TSD: the guest's rdtsc (ring 3) raises #GP and the core answers with virtual time.
    w(uc, CR4, (1 << 2) | (1 << 5) | (1 << 9) | (1 << 10)); // TSD | PAE | OSFXSR | OSXMMEXCPT
    let mut msr = [0u8; 16];
    msr[0..4].copy_from_slice(&0xC000_0080u32.to_le_bytes());
    msr[8..16].copy_from_slice(&((1u64 << 0) | (1 << 8) | (1 << 10) | (1 << 11)).to_le_bytes()); // SCE|LME|LMA|NXE
    uc.reg_write_long(MSR, &msr).map_err(|e| format!("EFER: {e:?}"))?;
    w(uc, CR0, 0x8001_0033); // PG | WP | NE | ET | MP | PE
    // iretq frame on the ring-0 stack: rip, cs, rflags, rsp, ss.
    let frame = [cpu.rip, cpu.cs as u64, cpu.rflags, cpu.rsp, cpu.ss as u64];
    let sp_off = (STACK_FRAME * 4096 + 4096 - 64) as usize;
    for (i, q) in frame.iter().enumerate() {
        mem[sp_off + i * 8..sp_off + i * 8 + 8].copy_from_slice(&q.to_le_bytes());
    }
    w(uc, RSP, STACK_VA + 4096 - 64);
    for (r, val) in [(RAX, cpu.rax), (RBX, cpu.rbx), (RCX, cpu.rcx), (RDX, cpu.rdx), (RSI, cpu.rsi), (RDI, cpu.rdi), (RBP, cpu.rbp),
        (R8, cpu.r8), (R9, cpu.r9), (R10, cpu.r10), (R11, cpu.r11), (R12, cpu.r12), (R13, cpu.r13), (R14, cpu.r14), (R15, cpu.r15),
        (FS_BASE, cpu.fs_base), (GS_BASE, cpu.gs_base)]
    {
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
        let v = self.new_vcpu().map_err(|e| {
            self.vcpu_error = Some(format!("cannot create vCPU {}: {e}", key.vcpu));
            "cannot create a unicorn instance"
        })?;
        self.vcpus.insert(key, v);
        Ok(())
    }

    fn vcpu_destroy(&mut self, key: VcpuKey) {
        self.vcpus.remove(&key);
    }

    fn run(&mut self, key: VcpuKey, cpu: &mut CpuState, budget_ns: u64) -> (Exit, u64) {
        let mem_ptr = self.ram.ptr;
        let mem_len = self.ram.len;
        let Some(v) = self.vcpus.get_mut(&key) else { return (Exit::Fatal("no such vCPU"), 0) };
        {
            let d = v.uc.get_data_mut();
            d.exit = None;
            d.budget = budget_ns.max(1);
            d.ran = 0;
            d.cr3 = cpu.cr3;
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
        } else {
            write_changed(v, cpu);
            cpu.rip
        };
        let mut start = start;
        let res = loop {
            let res = v.uc.emu_start(start, UNTIL, 0, 0);
            match v.uc.get_data_mut().io_retry.take() {
                Some((first, end, io)) if v.uc.get_data().exit.is_none() => {
                    hook_io(&mut v.uc, io);
                    let _ = v.uc.ctl_remove_cache(first, end);
                    start = v.uc.reg_read(RegisterX86::RIP).unwrap_or(first);
                }
                _ => break res,
            }
        };
        read_all(&v.uc, cpu);
        v.last = *cpu;
        let d = v.uc.get_data_mut();
        let ran = d.ran;
        let exit = d.exit.take();
        let io_fault = std::mem::take(&mut d.io_fault);
        self.instructions += ran;
        let exit = match (exit, res) {
            (Some(e), _) if io_fault => e,
            (Some(Exit::Exception { vector, cr2, .. }), _) if vector != 6 => {
                let last = v.exc.take(&v.uc).unwrap_or(crate::uc_fix::LastException { error_code: 0, is_int: false });
                if last.is_int {
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
        (exit, ran.max(1))
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

    fn trace(&mut self, line: &str) {
        if self.echo_trace {
            eprintln!("{line}");
        }
        self.trace.push(line.to_string());
    }

    fn console(&mut self, dom: DomId, name: &str, bytes: &[u8]) {
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
