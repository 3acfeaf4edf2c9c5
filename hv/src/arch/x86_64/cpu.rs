//! Descriptor tables, MSRs, control registers and port I/O for the single physical CPU.

use core::arch::asm;
use core::ptr::addr_of_mut;

use super::entry;

/// Hypervisor selectors, in Xen's reserved GDT area next to the guests' flat selectors.
pub const HV_CS: u16 = 0xe008;
pub const HV_DS: u16 = 0xe010;
pub const TSS_SEL: u16 = 0xe040;

/// Entries of a hypervisor GDT (each CPU has one): up to the TSS's two.
pub const GDT_ENTRIES: usize = (0xe050 >> 3) as usize;
static mut GDT: [u64; GDT_ENTRIES] = [0; GDT_ENTRIES];

/// The 64-bit TSS (SDM vol. 3A 7.7).
#[repr(C, packed)]
pub struct Tss {
    _r0: u32,
    rsp: [u64; 3],
    _r1: u64,
    ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    iomap: u16,
}

impl Tss {
    /// Traps from ring 3 on `rsp0`; NMI, #DF and #MC on IST 1 = `ist_nmi`; #DB on IST 2 =
    /// `ist_db` (one held by a guest's `mov ss` shadow can arrive on the first instruction of
    /// the syscall entry, still on the guest's stack pointer: XSA-260). No I/O bitmap.
    pub const fn new(rsp0: u64, ist_nmi: u64, ist_db: u64) -> Self {
        Tss { _r0: 0, rsp: [rsp0, 0, 0], _r1: 0, ist: [ist_nmi, ist_db, 0, 0, 0, 0, 0], _r2: 0, _r3: 0, iomap: 104 }
    }
}
static mut TSS: Tss = Tss::new(0, 0, 0);

/// Fill a hypervisor GDT: our code and data selectors, Xen's flat ring-3 selectors
/// (FLAT_RING3_CS32 0xe020, FLAT_RING3_DS32/SS 0xe028, FLAT_RING3_CS64 0xe030) and the TSS at
/// `tss`; nothing below Xen's reserved area (the guest's entries go there).
pub fn build_gdt(gdt: &mut [u64; GDT_ENTRIES], tss: *const Tss) {
    *gdt = [0; GDT_ENTRIES];
    gdt[(HV_CS >> 3) as usize] = 0x00af_9a00_0000_ffff;
    gdt[(HV_DS >> 3) as usize] = 0x00cf_9200_0000_ffff;
    gdt[0xe020 >> 3] = 0x00cf_fa00_0000_ffff;
    gdt[0xe028 >> 3] = 0x00cf_f200_0000_ffff;
    gdt[0xe030 >> 3] = 0x00af_fa00_0000_ffff;
    let (base, limit) = (tss as u64, (core::mem::size_of::<Tss>() - 1) as u64);
    let t = (TSS_SEL >> 3) as usize;
    gdt[t] = (limit & 0xffff) | ((base & 0xff_ffff) << 16) | (0x89 << 40) | (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt[t + 1] = base >> 32;
}

/// Load a GDT that `build_gdt` filled: CS, DS, ES and SS on our selectors, FS and GS null,
/// and its TSS.
///
/// # Safety
/// `gdt` is this CPU's own, filled by `build_gdt` with a TSS that, as the GDT, lives for ever.
pub unsafe fn load_gdt(gdt: &[u64; GDT_ENTRIES]) {
    let gdtr = Pointer { limit: (GDT_ENTRIES * 8 - 1) as u16, base: gdt.as_ptr() as u64 };
    // SAFETY: per the contract; the selectors loaded match the descriptors build_gdt wrote.
    unsafe {
        asm!(
            "lgdt [{g}]",
            "push {cs}",
            "lea {t}, [rip + 2f]",
            "push {t}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "xor {t:e}, {t:e}",
            "mov fs, {t:x}",
            "mov gs, {t:x}",
            "ltr {tss:x}",
            g = in(reg) &gdtr,
            cs = in(reg) HV_CS as u64,
            ds = in(reg) HV_DS as u64,
            tss = in(reg) TSS_SEL as u64,
            t = out(reg) _,
        );
    }
}

/// Load an IDT of 256 gates at `base`.
///
/// # Safety
/// `base` holds 256 valid gates that live for ever.
pub unsafe fn load_idt(base: u64) {
    let idtr = Pointer { limit: (256 * 16 - 1) as u16, base };
    // SAFETY: per the contract.
    unsafe { asm!("lidt [{}]", in(reg) &idtr) };
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    lo: u64,
    hi: u64,
}
static mut IDT: [Gate; 256] = [Gate { lo: 0, hi: 0 }; 256];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Copy the guest's descriptors into the CPU's GDT below Xen's reserved entries (as Xen maps
/// the guest's GDT frames at the start of the per-vCPU GDT), clearing what the previous guest
/// GDT left beyond them. The core validated them (check_descriptor) in frames the guest cannot
/// write; `mem` is machine memory. Returns how many entries now hold guest descriptors.
pub fn load_guest_gdt(mem: &[u8], g: &crate::platform::GuestGdt, written: usize) -> usize {
    let n = (g.entries as usize).min(crate::abi::FIRST_RESERVED_GDT_ENTRY);
    let mut gdtr = Pointer { limit: 0, base: 0 };
    // SAFETY: sgdt stores 10 bytes into our local.
    unsafe { asm!("sgdt [{}]", in(reg) &mut gdtr, options(nostack)) };
    // SAFETY: this CPU's own GDT (`init`'s static on the boot CPU, its per-CPU block's on an
    // AP, smp.rs), loaded by `load_tables` with GDT_ENTRIES > FIRST_RESERVED_GDT_ENTRY entries;
    // only entries below Xen's reserved area (never a selector the hypervisor uses, nor the
    // TSS) are written, and no guest selector is loaded in the CPU while it runs here.
    let gdt = unsafe { core::slice::from_raw_parts_mut(gdtr.base as *mut u64, GDT_ENTRIES) };
    for (i, slot) in gdt.iter_mut().enumerate().take(n) {
        *slot = g
            .desc_maddr(i)
            .and_then(|a| mem.get(a as usize..a as usize + 8))
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .unwrap_or(0);
    }
    for slot in gdt.iter_mut().take(written.min(crate::abi::FIRST_RESERVED_GDT_ENTRY)).skip(n) {
        *slot = 0;
    }
    n
}

/// Load our GDT (with Xen's flat ring-3 selectors), TSS, IDT and the syscall MSRs.
pub fn init() {
    // SAFETY: single CPU, called once at boot before any guest runs; the tables are statics
    // that live for the whole run, and the selectors loaded match the descriptors written here.
    unsafe {
        *addr_of_mut!(TSS) = Tss::new(
            &entry::xen_trap_stack_top as *const u8 as u64,
            &entry::xen_ist_stack_top as *const u8 as u64,
            &entry::xen_db_stack_top as *const u8 as u64,
        );
        let gdt = &mut *addr_of_mut!(GDT);
        build_gdt(gdt, addr_of_mut!(TSS));
        load_gdt(gdt);
        let idt = &mut *addr_of_mut!(IDT);
        let table = &entry::xen_isr_table as *const u8 as u64;
        for (v, g) in idt.iter_mut().enumerate() {
            let h = table + v as u64 * 16;
            // Interrupt gates; int3 and into may be used from ring 3 (Xen does the same).
            let dpl: u64 = if v == 3 || v == 4 { 3 } else { 0 };
            let ist: u64 = if v == 2 || v == 8 || v == 18 {
                1
            } else if v == 1 {
                2
            } else {
                0
            };
            g.lo = (h & 0xffff) | ((HV_CS as u64) << 16) | (ist << 32) | ((0x8e | (dpl << 5)) << 40) | (((h >> 16) & 0xffff) << 48);
            g.hi = h >> 32;
        }
        load_idt(idt.as_ptr() as u64);
        // syscall: kernel CS/SS from STAR[47:32], sysret user selectors from STAR[63:48].
        wrmsr(0xC000_0081, (0xe020u64 << 48) | ((HV_CS as u64) << 32));
        wrmsr(0xC000_0082, entry::xen_syscall_entry as *const () as u64);
        wrmsr(0xC000_0083, entry::xen_syscall32_entry as *const () as u64);
        wrmsr(0xC000_0084, 0x4_7700); // mask IF, TF, DF, AC, NT, IOPL
    }
}

/// Load the hardware breakpoints: DR7 off while DR0..3 change, then the new DR7.
pub fn load_debug_regs(addr: &[u64; 4], dr7: u64) {
    // SAFETY: debug-register writes in ring 0; the core only lets guests name addresses outside
    // the hypervisor's range and DR7 values without GD or reserved bits (privop::set_debugreg),
    // so no breakpoint can fire on the hypervisor's own code or data.
    unsafe {
        asm!("mov dr7, {}", in(reg) 0x400u64, options(nostack));
        asm!("mov dr0, {}", in(reg) addr[0], options(nostack));
        asm!("mov dr1, {}", in(reg) addr[1], options(nostack));
        asm!("mov dr2, {}", in(reg) addr[2], options(nostack));
        asm!("mov dr3, {}", in(reg) addr[3], options(nostack));
        asm!("mov dr7, {}", in(reg) dr7, options(nostack));
    }
}

/// Read DR6 and put it back to its default (0xffff0ff0), as Xen's do_debug.
pub fn take_dr6() -> u64 {
    let v: u64;
    // SAFETY: DR6 access in ring 0 (DR7.GD is never set).
    unsafe {
        asm!("mov {}, dr6", out(reg) v, options(nostack));
        asm!("mov dr6, {}", in(reg) 0xffff_0ff0u64, options(nostack));
    }
    v
}

/// # Safety
/// Writing MSRs changes machine state; callers pass architectural MSRs with valid values.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the caller guarantees `msr` and `v` are valid.
    unsafe { asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack)) }
}

/// # Safety
/// `msr` must be an architectural MSR that exists on this CPU.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    ((hi as u64) << 32) | lo as u64
}

pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid(leaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Does the CPU have FSGSBASE (CPUID.(7,0):EBX bit 0)?
pub fn has_fsgsbase() -> bool {
    if cpuid(0).0 < 7 {
        return false;
    }
    core::arch::x86_64::__cpuid_count(7, 0).ebx & 1 != 0
}

/// Set or clear CR4.FSGSBASE.
pub fn set_cr4_fsgsbase(on: bool) {
    let cr4 = read_cr4();
    let new = if on { cr4 | (1 << 16) } else { cr4 & !(1 << 16) };
    if new != cr4 {
        // SAFETY: only called when the CPU has FSGSBASE (has_fsgsbase); the bit changes which
        // ring-3 instructions are allowed, nothing the hypervisor relies on.
        unsafe { asm!("mov cr4, {}", in(reg) new, options(nostack)) };
    }
}

pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc has no side effects.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    ((hi as u64) << 32) | lo as u64
}

pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack)) };
    v
}

/// # Safety
/// `v` must be the machine address of an L4 table that maps the hypervisor (every guest L4 does).
pub unsafe fn write_cr3(v: u64) {
    // SAFETY: per the contract above, the running code stays mapped.
    unsafe { asm!("mov cr3, {}", in(reg) v, options(nostack)) }
}

pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn outb(port: u16, v: u8) {
    // SAFETY: the ports used (0xe9 debug console, 0xf4 isa-debug-exit) have no memory effects.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) }
}

pub fn outl(port: u16, v: u32) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack)) }
}

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: reading the COM1 registers has no memory effects.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

static mut COM1: bool = false;
const COM1_PORT: u16 = 0x3f8;

/// Detect COM1 (scratch-register test) and set it to 115200 8N1; output is mirrored there.
pub fn com1_init() -> bool {
    outb(COM1_PORT + 7, 0x5a);
    if inb(COM1_PORT + 7) != 0x5a {
        return false;
    }
    outb(COM1_PORT + 1, 0); // no interrupts
    outb(COM1_PORT + 3, 0x80); // DLAB
    outb(COM1_PORT, 1); // 115200
    outb(COM1_PORT + 1, 0);
    outb(COM1_PORT + 3, 0x03); // 8N1
                               // SAFETY: single CPU; written once at boot before any output that reads it.
    unsafe { COM1 = true };
    true
}

/// Write to the debug console (QEMU `-debugcon`, port 0xe9), and to COM1 when present.
pub fn debugcon(s: &[u8]) {
    for &b in s {
        outb(0xe9, b);
    }
    // SAFETY: a plain read of a flag written once at boot.
    if unsafe { COM1 } {
        for &b in s {
            let mut spins = 0;
            while inb(COM1_PORT + 5) & 0x20 == 0 && spins < 100_000 {
                spins += 1;
            }
            outb(COM1_PORT, b);
        }
    }
}

/// Leave QEMU through isa-debug-exit (exit status `(code << 1) | 1`), or halt forever.
pub fn exit(code: u32) -> ! {
    outl(0xf4, code);
    loop {
        // SAFETY: halting with interrupts off stops this CPU; nothing else runs.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
