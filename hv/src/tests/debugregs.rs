//! Debug registers and #DB as Xen gives them to a PV guest (pv/misc-hypercalls.c: set_debugreg,
//! do_get_debugreg; traps.c: do_debug; pv/emul-priv-op.c: I/O breakpoints, single step).

use super::image::ENTRY;
use super::World;
use crate::abi::{hypercall as nr, Errno};
use crate::platform::{DebugRegs, Exit};
use crate::DomId;

const DB_HANDLER: u64 = ENTRY + 0x300;
const GP_HANDLER: u64 = ENTRY + 0x200;

fn world() -> (World, DomId) {
    let mut w = World::new();
    let d = w.create("dbg");
    assert_eq!(w.set_traps(d, &[(1, 0, DB_HANDLER), (13, 0, GP_HANDLER)]), 0);
    let sp = w.scratch(d, 30) + 0x800;
    w.cpu_mut(d).rsp = sp;
    (w, d)
}

fn set(w: &mut World, d: DomId, reg: u64, v: u64) -> i64 {
    w.hypercall(d, nr::SET_DEBUGREG as u64, [reg, v, 0, 0, 0])
}

fn get(w: &mut World, d: DomId, reg: u64) -> i64 {
    w.hypercall(d, nr::GET_DEBUGREG as u64, [reg, 0, 0, 0, 0])
}

#[test]
fn set_and_get_debugreg_answer_with_xens_errnos() {
    let (mut w, d) = world();
    assert_eq!(get(&mut w, d, 6), 0xffff_0ff0);
    assert_eq!(get(&mut w, d, 7), 0x400);
    assert_eq!(get(&mut w, d, 8), Errno::ENODEV.to_ret());
    assert_eq!(set(&mut w, d, 8, 0), Errno::ENODEV.to_ret());
    // Breakpoint addresses: not in Xen's range, canonical (breakpoint_addr_ok) -> -EPERM.
    assert_eq!(set(&mut w, d, 0, 0xffff_8000_0000_1000), Errno::EPERM.to_ret());
    assert_eq!(set(&mut w, d, 3, 0x0000_8000_0000_0000), Errno::EPERM.to_ret());
    assert_eq!(set(&mut w, d, 2, 0xffff_8800_0000_0000), 0, "above Xen's range is a guest address");
    // DR6/DR7: the upper half is -EINVAL, GD -EPERM, an I/O breakpoint without CR4.DE -EPERM.
    assert_eq!(set(&mut w, d, 6, 1 << 32), Errno::EINVAL.to_ret());
    assert_eq!(set(&mut w, d, 7, 1 << 32), Errno::EINVAL.to_ret());
    assert_eq!(set(&mut w, d, 7, 0x2000), Errno::EPERM.to_ret());
    assert_eq!(set(&mut w, d, 7, 1 | (2 << 16)), Errno::EPERM.to_ret());
    assert_eq!(get(&mut w, d, 7), 0x400, "a refused write changes nothing");
    // Fixed bits: DR6 reads 1s where reserved, bit 12 clear; DR7 bit 10 set, 11/12/14/15 clear.
    assert_eq!(set(&mut w, d, 6, 0), 0);
    assert_eq!(get(&mut w, d, 6), 0xffff_0ff0);
    assert_eq!(set(&mut w, d, 7, 0xd800), 0);
    assert_eq!(get(&mut w, d, 7), 0x400);
    // DR4/DR5 alias DR6/DR7 while CR4.DE is clear.
    assert_eq!(set(&mut w, d, 5, 0x3), 0);
    assert_eq!(get(&mut w, d, 4), 0xffff_0ff0);
    assert_eq!(get(&mut w, d, 5), 0x403);
    w.assert_trace(&["d1v0 set_debugreg(0, 0xffff800000001000) = -EPERM"]);
    w.assert_trace(&["d1v0 get_debugreg(8) = -ENODEV"]);
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].privs.cr4 |= crate::privop::CR4_DE;
    assert_eq!(get(&mut w, d, 4), Errno::ENODEV.to_ret(), "DR4 is #UD (-ENODEV) with CR4.DE");
}

#[test]
fn the_platform_arms_what_the_guest_set_without_io_breakpoints() {
    let (mut w, d) = world();
    assert_eq!(set(&mut w, d, 0, 0x1000), 0);
    assert_eq!(set(&mut w, d, 1, 0x80), 0);
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].privs.cr4 |= crate::privop::CR4_DE;
    // DR0 write, 4 bytes, G0; DR1 I/O, 1 byte, L1.
    let dr7 = 0x400 | 0x2 | (0b1101 << 16) | (1 << 2) | (0b0010 << 20);
    assert_eq!(set(&mut w, d, 7, dr7), 0);
    w.hypercall(d, nr::XEN_VERSION as u64, [0, 0, 0, 0, 0]);
    let (_, last) = *w.hv.platform.debug_regs.last().expect("the platform heard of the breakpoints");
    assert_eq!(last, DebugRegs { addr: [0x1000, 0x80, 0, 0], dr7: dr7 & !(1 << 2) }, "I/O breakpoints are emulated, not armed");
    assert_eq!(get(&mut w, d, 7), dr7 as i64, "DR7 reads back with the I/O enable (dr7_emul)");
    let n = w.hv.platform.debug_regs.len();
    w.hypercall(d, nr::XEN_VERSION as u64, [0, 0, 0, 0, 0]);
    assert_eq!(w.hv.platform.debug_regs.len(), n, "told once per change, not on every run");
}

#[test]
fn a_debug_exit_merges_into_the_virtual_dr6_and_bounces_db() {
    let (mut w, d) = world();
    let rip = w.scratch(d, 20);
    w.cpu_mut(d).rip = rip;
    w.exit(d, Exit::Debug { dr6: 0xffff_0ff1 });
    assert_eq!(w.cpu(d).rip, DB_HANDLER);
    w.assert_trace(&["d1v0 trap #DB dr6=0xffff0ff1 at ", "-> guest handler"]);
    // Sticky until the guest clears it (Xen's do_debug ORs the status in)...
    w.cpu_mut(d).rip = rip;
    w.exit(d, Exit::Debug { dr6: 0xffff_4ff2 });
    assert_eq!(get(&mut w, d, 6), 0xffff_4ff3);
    // ... and a default-1 bit the CPU cleared (RTM, bit 16) clears.
    w.cpu_mut(d).rip = rip;
    w.exit(d, Exit::Debug { dr6: 0xfffe_0ff0 });
    assert_eq!(get(&mut w, d, 6), 0xfffe_4ff3);
}

#[test]
fn emulated_out_hits_an_io_breakpoint_and_emulation_single_steps() {
    let (mut w, d) = world();
    let rip = w.scratch(d, 20);
    w.write(d, rip, &[0xe6, 0x80, 0xe6, 0x84]); // out %al,$0x80; out %al,$0x84
    {
        let v = &mut w.hv.doms.get_mut(&d).unwrap().vcpus[0];
        v.privs.iopl = 1;
        v.privs.cr4 |= crate::privop::CR4_DE;
    }
    assert_eq!(set(&mut w, d, 3, 0x80), 0);
    assert_eq!(set(&mut w, d, 7, 0x400 | (1 << 6) | (0b0010 << 28)), 0);
    w.cpu_mut(d).rip = rip;
    w.exit(d, Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
    assert_eq!(w.cpu(d).rip, DB_HANDLER, "#DB after the emulated out");
    assert_eq!(get(&mut w, d, 6), 0xffff_0ff8);
    w.assert_trace(&["d1v0 trap #DB dr6=0xffff0ff8 at ", &format!("{:#x}", rip + 2)]);
    // Another port: no #DB.
    assert_eq!(set(&mut w, d, 6, 0xffff_0ff0), 0);
    w.cpu_mut(d).rip = rip + 2;
    w.exit(d, Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
    assert_eq!(w.cpu(d).rip, rip + 4);
    // TF: the emulated instruction single-steps (pv_emul_instruction_done).
    w.cpu_mut(d).rip = rip + 2;
    w.cpu_mut(d).rflags |= 1 << 8;
    w.exit(d, Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
    assert_eq!(w.cpu(d).rip, DB_HANDLER);
    assert_eq!(get(&mut w, d, 6), 0xffff_4ff0);
}

#[test]
fn an_early_db_after_mov_ss_is_recognised() {
    use crate::emulate::movss_breakpoint;
    use crate::platform::CpuState;
    // mov -4(%rbp), %ss (8e 55 fc) ending at rip; DR0 read/write, 2 bytes, on that slot.
    let cpu = CpuState { rip: 0x1003, rbp: 0x2004, cs: crate::abi::FLAT_RING3_CS64, ..Default::default() };
    let regs = DebugRegs { addr: [0x2000, 0, 0, 0], dr7: 0x401 | (0b0111 << 16) };
    let before = [0x90, 0x90, 0x8e, 0x55, 0xfc];
    assert!(movss_breakpoint(&before, &cpu, &regs, 0xffff_0ff1));
    assert!(!movss_breakpoint(&before, &cpu, &regs, 0xffff_0ff2), "another breakpoint fired");
    let far = DebugRegs { addr: [0x3000, 0, 0, 0], ..regs };
    assert!(!movss_breakpoint(&before, &cpu, &far, 0xffff_0ff1), "the operand is not watched");
    // mov (%rcx), %ds is not a shadow.
    let cpu2 = CpuState { rip: 0x1002, rcx: 0x2000, ..cpu };
    assert!(!movss_breakpoint(&[0x8e, 0x19], &cpu2, &regs, 0xffff_0ff1));
    assert!(movss_breakpoint(&[0x8e, 0x11], &cpu2, &regs, 0xffff_0ff1));
}

/// mov %rax,%cr4; mov %cr4,%rax at a scratch page; returns what the guest reads back.
fn write_cr4(w: &mut World, d: DomId, val: u64) -> u64 {
    let rip = w.scratch(d, 21);
    w.write(d, rip, &[0x0f, 0x22, 0xe0, 0x0f, 0x20, 0xe0]);
    w.cpu_mut(d).rip = rip;
    w.cpu_mut(d).rax = val;
    w.exit(d, Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
    w.cpu_mut(d).rax = 0;
    w.exit(d, Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
    assert_eq!(w.cpu(d).rip, rip + 6);
    w.cpu(d).rax
}

#[test]
fn fsgsbase_is_offered_and_switched_only_where_the_platform_can() {
    use crate::privop::CR4_FSGSBASE;
    // Without it (the mock's default): CPUID leaf 7 hides it and CR4 discards the bit.
    let (mut w, d) = world();
    assert!(!w.hv.xen.fsgsbase);
    assert_eq!(crate::traps::cpuid(7, 0, w.hv.xen.fsgsbase)[1] & 1, 0);
    assert_eq!(write_cr4(&mut w, d, crate::privop::PV_CR4_VISIBLE | CR4_FSGSBASE) & CR4_FSGSBASE, 0);
    assert!(w.hv.platform.fsgsbase_set.is_empty());
    // With it: offered, kept in the guest's view, and the platform told when it changes.
    let mut mock = super::mock::Mock::new(super::MACHINE_MIB, crate::platform::Gate::Syscall);
    mock.fsgsbase = true;
    let mut hv = crate::Hypervisor::new(mock, super::RESERVED).expect("hypervisor");
    hv.platform.xen_slots = Some(hv.xen.slots.to_vec());
    let mut w = World { hv };
    let d = w.create("fsgs");
    assert_eq!(crate::traps::cpuid(7, 0, w.hv.xen.fsgsbase)[1] & 1, 1);
    let base = crate::privop::PV_CR4_VISIBLE;
    assert_eq!(write_cr4(&mut w, d, base | CR4_FSGSBASE), base | CR4_FSGSBASE);
    assert_eq!(write_cr4(&mut w, d, base), base);
    let key = w.hv.doms[&d].vcpus[0].key;
    assert_eq!(w.hv.platform.fsgsbase_set, vec![(key, true), (key, false)]);
}
