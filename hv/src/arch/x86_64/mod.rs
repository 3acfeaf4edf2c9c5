//! The bootable image's hypervisor: boot, CPU set-up, gate choice, and the same core loop as
//! the simulator over [`platform::BareMetal`].

pub mod boot;
pub mod cpu;
pub mod entry;
pub mod heap;
pub mod kvm;
pub mod platform;
pub mod pvh;
pub mod smp;
pub mod timer;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::addr_of_mut;

use crate::hv::{Hypervisor, RecordState};
use crate::mm::paging::{PTE_NX, PTE_PCD, PTE_PWT, PTE_RW, PTE_US};
use crate::platform::Gate;
use entry::{Frame, SYSCALL_VECTOR};
use platform::BareMetal;
use pvh::DIRECTMAP;

/// Machine memory the image manages (the direct map covers 1 GiB).
const MAX_RAM: u64 = 1 << 30;
const HEAP_BYTES: u64 = 48 << 20;

/// isa-debug-exit codes: QEMU exits with `(code << 1) | 1`.
pub const EXIT_PASS: u32 = 0x10;
pub const EXIT_FAIL: u32 = 0x11;

unsafe extern "C" {
    static __image_end: u8;
}

fn say(s: &str) {
    cpu::debugcon(s.as_bytes());
    cpu::debugcon(b"\n");
}

/// Probe whether a ring-3 `syscall` reaches ring 0 here: run two bytes of user code
/// (`syscall; ud2`) on the boot page tables. On kvm_pvm it jumps to LSTAR still in ring 3,
/// which faults on the supervisor-only hypervisor text.
fn probe_syscall() -> (bool, u64) {
    let v = probe_user(&[0x0f, 0x05, 0x0f, 0x0b], 0);
    (v == SYSCALL_VECTOR, v)
}

/// Does `wrfsbase` refuse a non-canonical base (#GP) as hardware does? QEMU 7.2's TCG writes it
/// (a guest could then plant a base the hypervisor's own `wrmsr` faults on), so guests get
/// FSGSBASE only where the CPU checks. Runs `wrfsbase %rax; ud2` in ring 3 with CR4.FSGSBASE.
fn probe_wrfsbase_checks() -> bool {
    cpu::set_cr4_fsgsbase(true);
    let v = probe_user(&[0xf3, 0x48, 0x0f, 0xae, 0xd0, 0x0f, 0x0b], 0x8000_0000_0000_0000);
    cpu::set_cr4_fsgsbase(false);
    // SAFETY: FS_BASE is architectural; 0 is canonical (the probe may have left anything).
    unsafe { cpu::wrmsr(0xC000_0100, 0) };
    v == 13
}

/// Run `code` in ring 3 (with `rax`) on the boot page tables until its first exit; the vector.
fn probe_user(code: &[u8], rax: u64) -> u64 {
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    static mut PROBE: Page = Page([0; 4096]);
    // SAFETY: boot-time, single CPU; the probe page is ours and identity-mapped below 1 GiB;
    // the US bits set for the probe are cleared again before returning.
    unsafe {
        let page = addr_of_mut!(PROBE) as *mut u8;
        for (i, &b) in code.iter().enumerate() {
            page.add(i).write(b);
        }
        let pa = page as u64 - DIRECTMAP;
        let pml4 = (DIRECTMAP + (&boot::boot_pml4 as *const u8 as u64)) as *mut u64;
        let pdpt = (DIRECTMAP + (&boot::boot_pdpt as *const u8 as u64)) as *mut u64;
        let pd = (DIRECTMAP + (&boot::boot_pd as *const u8 as u64)) as *mut u64;
        let slot = (pa >> 21) as usize;
        *pml4 |= PTE_US;
        *pdpt |= PTE_US;
        *pd.add(slot) |= PTE_US;
        cpu::write_cr3(cpu::read_cr3());
        let f = Frame { rip: pa, cs: 0xe033, ss: 0xe02b, rflags: 0x2, rsp: pa + 4096, rax, ..Frame::default() };
        let e = *entry::xen_enter_guest(&f);
        *pd.add(slot) &= !PTE_US;
        *pdpt &= !PTE_US;
        *pml4 &= !PTE_US;
        cpu::write_cr3(cpu::read_cr3());
        e.vector
    }
}

fn arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Called from the PVH entry in long mode, on the boot stack.
#[unsafe(no_mangle)]
extern "C" fn xenolith_rust_entry(start_info: u64) -> ! {
    let t_boot = cpu::rdtsc();
    let com1 = cpu::com1_init();
    say(if com1 { "# xenolith image (output on port 0xe9 and COM1)" } else { "# xenolith image" });
    cpu::init();
    smp::init_bsp();
    // SAFETY: the PVH loader passed this address in ebx.
    let Some(bi) = (unsafe { pvh::parse(start_info) }) else {
        say("# error: no PVH start info");
        cpu::exit(EXIT_FAIL);
    };
    let ram_top = if bi.ram_top == 0 { 128 << 20 } else { bi.ram_top.min(MAX_RAM) };
    // SAFETY: the linker script defines __image_end at the end of the image (direct-map address).
    let image_end = unsafe { &__image_end as *const u8 as u64 } - DIRECTMAP;
    let heap_start = (image_end + 0xfff) & !0xfff;
    // The pack's kernels (Linux's is 63 MiB) are copied into the heap: it grows by the module.
    let module_bytes = bi.module.map_or(0, |(_, len)| len.min(MAX_RAM).next_multiple_of(0x1000));
    let heap_end = heap_start + HEAP_BYTES + module_bytes;
    if let Some((m, len)) = bi.module {
        if m.checked_add(len).is_none_or(|end| end > MAX_RAM) {
            // QEMU puts the module near the top of RAM: with more than 1 GiB it lies beyond
            // the direct map, where reading it would fault in the hypervisor.
            say("# error: the boot module lies above the 1 GiB the image maps (give QEMU less memory)");
            cpu::exit(EXIT_FAIL);
        }
        if m < heap_end && m + len > heap_start {
            say("# error: the boot module overlaps the heap");
            cpu::exit(EXIT_FAIL);
        }
    }
    if heap_end >= ram_top {
        say("# error: not enough RAM for the heap");
        cpu::exit(EXIT_FAIL);
    }
    // SAFETY: [heap_start, heap_end) is RAM after the image and outside the boot module; the
    // core never hands out frames below `reserved` (= heap_end).
    unsafe { heap::HEAP.init((DIRECTMAP + heap_start) as usize, (DIRECTMAP + heap_end) as usize) };

    let cmdline = String::from_utf8_lossy(bi.cmdline).into_owned();
    let (works, vec) = probe_syscall();
    let gate = match arg(&cmdline, "gate") {
        Some("syscall") => Gate::Syscall,
        Some("int3") => Gate::Int3,
        _ if works => Gate::Syscall,
        _ => Gate::Int3,
    };
    let choice = match arg(&cmdline, "timer") {
        Some("0") => timer::Choice::Off,
        Some("x2apic") => timer::Choice::X2apic,
        Some("xapic") => timer::Choice::Xapic,
        _ => timer::Choice::Auto,
    };
    let (tkind, cal) = timer::init(choice);
    let timer = tkind != timer::Kind::None;
    say(&format!(
        "# gate={} (probe: ring-3 syscall {}; exit vector {vec}) preemption={}{}",
        gate.name(),
        if works { "reaches ring 0" } else { "does not reach ring 0" },
        tkind.name(),
        cal.map(|c| format!(" (calibrated: {} APIC ticks in {} TSC cycles)", c.ticks, c.tsc)).unwrap_or_default()
    ));

    // KVM's steal time (kvm.rs), unless `steal=0` (to measure without it).
    if arg(&cmdline, "steal") != Some("0") {
        if let Some(line) = kvm::init() {
            say(&line);
        }
    }

    let pack = bi.module.and_then(|(m, len)| {
        // SAFETY: the module lies inside the direct map and was not overwritten (checked above).
        let bytes = unsafe { core::slice::from_raw_parts((DIRECTMAP + m) as *const u8, len as usize) };
        crate::pack::read(bytes)
    });
    let Some(pack) = pack else {
        say("# error: no boot pack module (xtask boot-hw passes one as -initrd)");
        cpu::exit(EXIT_FAIL);
    };
    if let Some((m, len)) = bi.module {
        // The core relies on machine memory starting zeroed (it scrubs only frames a previous
        // owner used): the module's copy is in the heap now, clear the original.
        // SAFETY: the module lies in RAM inside the direct map and nothing refers to it anymore.
        unsafe { core::ptr::write_bytes((DIRECTMAP + m) as *mut u8, 0, len as usize) };
    }

    // iced-x86's decoder and formatter tables, built lazily at the first decode: now, before
    // any clock runs (emulate::warm_up_decoder; kvm_pvm emulates this ring-0 work, ~1-3 s).
    let t_dec = cpu::rdtsc();
    let dec_chars = crate::emulate::warm_up_decoder();
    say(&format!("# decoder tables: {} cycles ({dec_chars} chars formatted)", cpu::rdtsc().wrapping_sub(t_dec)));

    // Application processors (smp.rs): as many CPUs as `cpus=M` says (boot-hw passes QEMU's -smp).
    let wanted = arg(&cmdline, "cpus").and_then(|n| n.parse::<usize>().ok()).unwrap_or(1);
    let started = smp::start_aps(wanted);
    say(&format!(
        "# cpus: {} of {wanted} online ({}, apic ids {:?}, {} cycles)",
        started.online,
        if started.x2apic { "x2apic" } else { "xapic" },
        started.apic_ids,
        started.cycles
    ));
    if started.online < wanted.min(smp::MAX_CPUS) {
        say("# error: not every CPU came up");
        cpu::exit(EXIT_FAIL);
    }

    // SAFETY: machine memory [0, ram_top) is direct-mapped; frames below heap_end (image, heap,
    // boot data) are reserved and never given to domains.
    let mem = unsafe { core::slice::from_raw_parts_mut(DIRECTMAP as *mut u8, ram_top as usize) };
    // SAFETY: see above.
    let mut plat = unsafe { BareMetal::new(mem, gate) };
    plat.timer = timer;
    // Several CPUs: each loads its vCPU's state itself (smp.rs).
    plat.smp = smp::online() > 1;
    // Can a guest change its FS/GS base in ring 3? With `wrfsbase` where CR4.FSGSBASE is on (the
    // guest's view, or the host's under kvm_pvm), and without it too: loading a null selector into %gs
    // (Linux's loadsegment(gs, 0)) zeroes the base on QEMU TCG and on AMD. Read them back after
    // every exit, wherever the image runs.
    plat.bases_writable = true;
    // FSGSBASE for guests as Xen gives it (the real CR4 bit follows each vCPU's view): only
    // where ring 3 runs on our CR4 and the CPU has it.
    plat.fsgsbase_ok = works && cpu::has_fsgsbase() && probe_wrfsbase_checks();
    let mut hv = match Hypervisor::new(plat, heap_end >> 12) {
        Ok(h) => h,
        Err(e) => {
            say(&format!("# error: {e}"));
            cpu::exit(EXIT_FAIL);
        }
    };
    if smp::online() > 1 {
        hv.set_pcpus(smp::online());
    }
    // The direct map, supervisor-only, in every guest address space (slot 262).
    let mut a = 0;
    while a < ram_top {
        if let Err(e) = hv.map_xen_superpage(DIRECTMAP + a, a, PTE_RW) {
            say(&format!("# error: direct map: {e}"));
            cpu::exit(EXIT_FAIL);
        }
        a += 2 << 20;
    }
    if tkind == timer::Kind::XapicOneShot {
        // The xAPIC's registers, uncached and supervisor-only, in every guest address space
        // (the timer is armed and acknowledged while the hypervisor runs on a guest's tables).
        if let Err(e) = hv.map_xen_page(timer::XAPIC_VA, crate::mm::Mfn(timer::XAPIC_PHYS >> 12), PTE_RW | PTE_PCD | PTE_PWT | PTE_NX) {
            say(&format!("# error: xAPIC mapping: {e}"));
            cpu::exit(EXIT_FAIL);
        }
    }
    if arg(&cmdline, "trace") == Some("0") {
        // Benchmarks: no per-event trace over the (byte-at-a-time) debug console.
        hv.tracing = false;
        hv.platform.raw_console = true;
    }
    let t_hv = cpu::rdtsc();
    let names: Vec<String> = pack.domains.iter().map(|d| d.name.clone()).collect();
    for d in pack.domains {
        let _ = hv.create_domain(d);
    }
    let t_built = cpu::rdtsc();
    let end = if pack.run_for_ns == 0 { u64::MAX } else { pack.run_for_ns };
    let smp = smp::online() > 1;
    if smp && pack.run_for_ns == 0 {
        // Every CPU runs the core's loop under one lock (smp.rs) until no domain runs.
        smp::run(&mut hv, end);
    }
    if pack.run_for_ns == 0 {
        // No clock: until no domain is left running (QEMU's timeout bounds it).
        while hv.any_running() {
            let next = hv.now.saturating_add(10_000_000);
            hv.run_until(next);
        }
    } else {
        // The scenario's clock (TSC cycles as ns): its steps, by the core's driver as in the
        // simulator, to run_for; then each domain's CPU share beside the credit target.
        // On several CPUs every CPU runs the core's loop (smp.rs) to each step's time; the boot
        // CPU carries the step out while the others wait for the next stretch.
        let failed = |i: usize, e: &crate::hv::ControlError| say(&format!("# step {i} failed: {e}"));
        let params = if smp {
            hv.drive_with(&pack.steps, pack.run_for_ns, |h, t| smp::run(h, t), failed)
        } else {
            hv.drive(&pack.steps, pack.run_for_ns, failed)
        };
        // Over the run as it lasted: the last guest run ends at its exit, which can be past
        // run_for by the timer's lateness (charged to that guest), so the shares add up to 100 %.
        // On several CPUs too the clock counts only guest and idle time (smp.rs's `clock`).
        let run = hv.now.max(pack.run_for_ns);
        for s in hv.shares(&names, run, &params) {
            let target = s.target.map(|t| format!("{t:.2}")).unwrap_or_else(|| "-".into());
            say(&format!("# share {} measured={:.2} target={target}", s.name, s.measured));
        }
    }
    if smp {
        smp::report();
    }
    let mut summary = String::from("# done");
    for n in &names {
        let st = match hv.record(n).map(|r| (r.state, r.shutdowns.last().copied())) {
            Some((RecordState::Running | RecordState::Paused, _)) => "running",
            Some((_, Some(r))) => r.name(),
            Some((_, None)) => "destroyed",
            None => "not-created",
        };
        summary.push_str(&format!(" {n}={st}"));
    }
    summary.push_str(&format!(" exits={} hypercalls={}", hv.platform.exits, hv.hypercalls));
    let t_end = cpu::rdtsc();
    say(&format!(
        "# tsc: setup {} build {} run {} (cycles)",
        t_hv.wrapping_sub(t_boot),
        t_built.wrapping_sub(t_hv),
        t_end.wrapping_sub(t_built)
    ));
    if hv.platform.timer_exits > 0 {
        let p = &mut hv.platform;
        p.late_samples.sort_unstable();
        let pct = |q: usize| p.late_samples.get(p.late_samples.len() * q / 100).copied().unwrap_or(0);
        say(&format!(
            "# timer: {} expiries ended a run, overshooting the budget by {} TSC cycles on average (median {}, 90th percentile {}), {} at most; {} not charged as stolen",
            p.timer_exits,
            p.late_sum / p.timer_exits,
            pct(50),
            pct(90),
            p.late_max,
            p.stolen
        ));
    }
    say(&summary);
    cpu::exit(EXIT_PASS);
}

/// A trap taken in ring 0: a hypervisor bug. Report it and stop.
#[unsafe(no_mangle)]
extern "C" fn xenolith_ring0_trap(f: &Frame) -> ! {
    say(&format!(
        "# hypervisor trap: vector {} error {:#x} rip {:#x} cr2 {:#x} rsp {:#x}",
        f.vector,
        f.error,
        f.rip,
        cpu::read_cr2(),
        f.rsp
    ));
    cpu::exit(EXIT_FAIL);
}

/// For the image's panic handler.
pub fn panic_exit(msg: &str) -> ! {
    say(&format!("# hypervisor panic: {msg}"));
    cpu::exit(EXIT_FAIL);
}
