//! Debian's Linux booted to `/init` in the simulator (as `cargo xtask linux --accel sim` boots it:
//! same kernel, initramfs, memory, command line, tracing on), beside bare unicorn on the same
//! kernel's code:
//!
//! - `linux boot`: wall time of one boot to `/init` and its power-off (kernel unpacking and domain
//!   building included, as the `boot` command does them), the guest instructions retired, guest
//!   MIPS = instructions / wall, and the simulator's counters ([`sim::platform::SimStats`]).
//! - `bare unicorn`: the kernel's hottest loop (`xen_rebuild_p2m_list`'s scan of the p2m for runs
//!   of one entry type: 44% of the boot's instructions, 2.5 instructions per translation block),
//!   found in the unpacked kernel by its bytes, run on a bare unicorn instance with no hooks for
//!   [`BARE_ITERS`] iterations; measured before and after the boot, the faster of the two kept.
//! - the ratio: the boot's MIPS over bare unicorn's MIPS on that loop, measured in this run.
//!
//! Needs `target/linux/` as `cargo xtask linux` leaves it (kernel package unpacked, initrd.cpio);
//! without it the bench says so and skips. Wall-clock numbers are reported, never asserted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::repo_root;
use hv::domain::{Action, DomainConfig};
use unicorn_engine::{Arch, Mode, Prot, RegisterX86, Unicorn};

/// The kernel command line of `cargo xtask linux`.
const CMDLINE: &str = "console=hvc0 earlyprintk=xen loglevel=7 rdinit=/init";
/// The line the initramfs's `/init` prints when it is done.
const MARKER: &str = "xenolith-linux: done";
const MEMORY_MIB: u64 = 256;
/// Iterations of the p2m loop on bare unicorn (9 instructions each).
const BARE_ITERS: u32 = 40_000_000;

/// `xen_rebuild_p2m_list`'s inner loop in Debian 12's 6.1 kernel (arch/x86/xen/p2m.c: `for (i = 1;
/// i < chunk; i++) if (xen_p2m_elem_type(pfn + i) != type) break;`), from its `cmp %r9,%rdi`
/// (`pfn + i` against `xen_p2m_size`) to the `jmp` after the loop. Past `xen_p2m_size` every
/// entry is IDENTITY and an iteration is 9 instructions in 4 blocks: `cmp; jae` / `xor; jmp` /
/// `cmp; jne` / `inc; inc; cmp; jne`.
const P2M_LOOP: [u8; 46] = [
    0x4c, 0x39, 0xcf, // cmp %r9,%rdi
    0x73, 0x0f, // jae +15 (past the table: identity)
    0x4d, 0x8b, 0x04, 0xfa, // mov (%r10,%rdi,8),%r8
    0x49, 0x83, 0xf8, 0xff, // cmp $-1,%r8
    0x74, 0x0a, // je
    0x4d, 0x85, 0xf0, // test %r14,%r8
    0x74, 0x1b, // je
    0x45, 0x31, 0xc0, // xor %r8d,%r8d
    0xeb, 0x06, // jmp
    0x41, 0xb8, 0x01, 0x00, 0x00, 0x00, // mov $1,%r8d
    0x44, 0x39, 0xc6, // cmp %r8d,%esi
    0x75, 0x0b, // jne (type changed)
    0xff, 0xc2, // inc %edx
    0x48, 0xff, 0xc7, // inc %rdi
    0x39, 0xc2, // cmp %eax,%edx
    0x75, 0xd3, // jne back to the start
    0xeb, // jmp (out of the loop): where the bare run ends
];
/// Instructions per iteration past the table.
const P2M_LOOP_INSNS: u64 = 9;

struct Linux {
    kernel: PathBuf,
    initrd: PathBuf,
}

/// The kernel and initramfs `cargo xtask linux` left in target/linux, if it ran.
fn find_linux(root: &Path) -> Option<Linux> {
    let dir = root.join("target/linux");
    let initrd = dir.join("initrd.cpio");
    let kernel = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("linux-image-")))
        .filter_map(|d| std::fs::read_dir(d.join("boot")).ok())
        .flat_map(|r| r.filter_map(|e| e.ok().map(|e| e.path())))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))?;
    initrd.is_file().then_some(Linux { kernel, initrd })
}

/// One boot to `/init` and power-off, as the `boot` command does it: (wall, instructions, stats).
fn boot(l: &Linux) -> (Duration, u64, sim::platform::SimStats) {
    let t = Instant::now();
    let elf = sim::kernel::read_kernel(&l.kernel).unwrap_or_else(|e| panic!("linux: {e}"));
    let initrd = std::fs::read(&l.initrd).unwrap_or_else(|e| panic!("linux: {}: {e}", l.initrd.display()));
    let mut c = DomainConfig::new("linux", &l.kernel.display().to_string(), Arc::from(elf));
    c.memory_mib = MEMORY_MIB;
    c.cmdline = CMDLINE.into();
    c.on_reboot = Action::Destroy;
    c.initrd = Some(Arc::from(initrd));
    let mut hv = sim::new_hypervisor(MEMORY_MIB + 16).unwrap_or_else(|e| panic!("linux: cannot start the simulator: {e}"));
    hv.create_domain(c).unwrap_or_else(|e| panic!("linux: cannot build the domain: {e:?}"));
    let end = benches::run_to_end(&mut hv, 20_000_000_000);
    let wall = t.elapsed();
    benches::assert_powered_off(&hv, "linux");
    let console = benches::console(&hv, "linux");
    assert!(
        console.iter().any(|l| l.contains(MARKER)),
        "linux: /init did not finish (virtual time {end}); console ends {:?}",
        &console[console.len().saturating_sub(5)..]
    );
    (wall, hv.platform.instructions, hv.platform.stats())
}

/// The p2m loop on a bare unicorn instance (no hooks): (wall, instructions).
fn bare_p2m(code: &[u8], iters: u32) -> (Duration, u64) {
    const BASE: u64 = 0x10_0000;
    let mut uc = Unicorn::new(Arch::X86, Mode::MODE_64).expect("unicorn instance");
    uc.mem_map(BASE, 0x1000, Prot::READ | Prot::EXEC).expect("map code page");
    uc.mem_write(BASE, code).expect("write code");
    use RegisterX86::*;
    // pfn + i starts at 1 past a table of size 0 (every entry IDENTITY, type 0 = esi), chunk =
    // iters + 1 in eax, i = 1 in edx.
    for (r, v) in [(R9, 0), (RDI, 1), (RSI, 0), (RDX, 1), (RAX, iters as u64 + 1), (R10, 0), (R14, 0)] {
        uc.reg_write(r, v).expect("register");
    }
    let end = BASE + code.len() as u64 - 1;
    let t = Instant::now();
    uc.emu_start(BASE, end, 0, 0).expect("emu_start");
    let wall = t.elapsed();
    assert_eq!(uc.reg_read(RIP).expect("rip"), end, "bare p2m loop did not reach its end");
    assert_eq!(uc.reg_read(RDX).expect("rdx"), iters as u64 + 1, "bare p2m loop ran a wrong count");
    // The last iteration's `jne` falls through to the end: every iteration is 9 instructions.
    (wall, iters as u64 * P2M_LOOP_INSNS)
}

fn mips(insns: u64, wall: Duration) -> f64 {
    insns as f64 / wall.as_secs_f64() / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("linux_boot: bench");
        return;
    }
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test") {
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "linux_boot".contains(f.as_str())) {
        return;
    }
    let root = repo_root();
    let Some(l) = find_linux(&root) else {
        eprintln!(
            "linux_boot: skipped: no kernel and initramfs in {}; `cargo xtask linux --once` fetches and builds them",
            root.join("target/linux").display()
        );
        return;
    };
    let elf = sim::kernel::read_kernel(&l.kernel).unwrap_or_else(|e| panic!("linux: {e}"));
    let code = elf.windows(P2M_LOOP.len()).find(|w| *w == P2M_LOOP).map(<[u8]>::to_vec);
    if code.is_none() {
        eprintln!(
            "linux_boot: {} has no xen_rebuild_p2m_list loop as Debian 12's 6.1 kernel has it; no bare comparison",
            l.kernel.display()
        );
    }
    let bare = |code: &Option<Vec<u8>>| code.as_ref().map(|c| bare_p2m(c, BARE_ITERS));
    let b1 = bare(&code);
    let (wall, insns, stats) = boot(&l);
    let b2 = bare(&code);
    eprintln!("linux_boot: {} to /init and power-off", l.kernel.display());
    eprintln!("linux_boot: wall {:.2} s, {insns} guest instructions, {:.0} guest MIPS", wall.as_secs_f64(), mips(insns, wall));
    eprint!("{}", stats.report(insns).lines().map(|l| format!("linux_boot:   {l}\n")).collect::<String>());
    if let (Some(b1), Some(b2)) = (b1, b2) {
        let best = mips(b1.1, b1.0).max(mips(b2.1, b2.0));
        eprintln!("linux_boot: bare unicorn (no hooks) on the kernel's p2m loop: {best:.0} MIPS ({BARE_ITERS} iterations, best of 2)");
        eprintln!(
            "linux_boot: MIPS ratio boot/bare = {:.2}; the boot's {insns} instructions at bare speed would take {:.2} s",
            mips(insns, wall) / best,
            insns as f64 / best / 1e6
        );
    }
}
