//! Privileged-instruction emulation (Xen's emul-priv-op.c): what a PV kernel's #GP(0) becomes.

use super::image::ENTRY;
use super::World;
use crate::platform::Exit;
use crate::DomId;

const GP_HANDLER: u64 = ENTRY + 0x200;

/// A domain with a #GP handler, about to execute `code` from a scratch page.
fn at(code: &[u8]) -> (World, DomId, u64) {
    let mut w = World::new();
    let d = w.create("priv");
    assert_eq!(w.set_traps(d, &[(13, 0, GP_HANDLER)]), 0);
    let rip = w.scratch(d, 20);
    w.write(d, rip, code);
    w.cpu_mut(d).rip = rip;
    w.cpu_mut(d).rsp = w.scratch(d, 30) + 0x800;
    (w, d, rip)
}

fn gp(w: &mut World, d: DomId) {
    w.exit(d, Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
}

#[test]
fn mov_from_cr3_gives_the_base_pointer_frame() {
    let (mut w, d, rip) = at(&[0x0f, 0x20, 0xd8]); // mov %cr3, %rax
    gp(&mut w, d);
    let l4 = w.hv.doms[&d].vcpus[0].guest_table;
    assert_eq!(w.cpu(d).rax, l4.0 << 12, "PV guests are not translated: CR3 holds the mfn");
    assert_eq!(w.cpu(d).rip, rip + 3);
    w.assert_trace(&["d1v0 emulate mov rax,cr3 = "]);
}

#[test]
fn cr0_may_change_ts_only() {
    let (mut w, d, rip) = at(&[0x0f, 0x22, 0xc0, 0x0f, 0x20, 0xc0]); // mov %rax,%cr0; mov %cr0,%rax
    w.cpu_mut(d).rax = crate::privop::PV_CR0 | crate::privop::CR0_TS;
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rip, rip + 3);
    w.cpu_mut(d).rax = 0;
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rax, crate::privop::PV_CR0 | crate::privop::CR0_TS);
    // Clearing PG is refused: #GP to the guest.
    w.cpu_mut(d).rip = rip;
    w.cpu_mut(d).rax = crate::privop::PV_CR0 & !crate::privop::CR0_PG;
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rip, GP_HANDLER);
}

#[test]
fn msrs_as_xen_gives_them_to_a_pv_domu() {
    let (mut w, d, rip) = at(&[0x0f, 0x32]); // rdmsr
    w.cpu_mut(d).rcx = 0xc000_0080;
    gp(&mut w, d);
    assert_eq!((w.cpu(d).rax, w.cpu(d).rdx, w.cpu(d).rip), (0xd01, 0, rip + 2));
    // An MSR Xen does not give a PV guest: #GP.
    w.cpu_mut(d).rip = rip;
    w.cpu_mut(d).rcx = 0x1234;
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rip, GP_HANDLER);
    w.assert_trace(&["emulate rdmsr 0x1234: #GP"]);
}

#[test]
fn wrmsr_fs_base_must_be_canonical() {
    let (mut w, d, rip) = at(&[0x0f, 0x30]); // wrmsr
    let c = w.cpu_mut(d);
    (c.rcx, c.rdx, c.rax) = (0xc000_0100, 0x1234, 0x5678);
    gp(&mut w, d);
    assert_eq!((w.cpu(d).fs_base, w.cpu(d).rip), (0x1234_0000_5678, rip + 2));
    w.cpu_mut(d).rip = rip;
    w.cpu_mut(d).rdx = 0x8000_0000;
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rip, GP_HANDLER);
    assert_eq!(w.cpu(d).fs_base, 0x1234_0000_5678);
}

#[test]
fn io_and_cli_need_the_virtual_iopl() {
    let (mut w, d, _) = at(&[0xfa]); // cli
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rip, GP_HANDLER, "IOPL 0: #GP");
    let (mut w, d, rip) = at(&[0xe4, 0x60]); // in $0x60, %al
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].privs.iopl = 1;
    w.cpu_mut(d).rax = 0x1200;
    gp(&mut w, d);
    assert_eq!((w.cpu(d).rax, w.cpu(d).rip), (0x12ff, rip + 2), "a domU reads all ones");
}

#[test]
fn user_mode_gets_the_gp() {
    let (mut w, d, _) = at(&[0x0f, 0x20, 0xd8]);
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].kernel_mode = false;
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].guest_table_user = Some(w.hv.doms[&d].vcpus[0].guest_table);
    let ksp = w.scratch(d, 31) + 0x800;
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].kernel_sp = ksp;
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rip, GP_HANDLER);
}

#[test]
fn rdtsc_is_virtual_time_and_vcpu_time_info_agrees() {
    let (mut w, d, rip) = at(&[0x0f, 0x31, 0x0f, 0x31]); // rdtsc; rdtsc
    gp(&mut w, d);
    let t1 = (w.cpu(d).rdx << 32) | (w.cpu(d).rax & 0xffff_ffff);
    assert!(t1 > 0 && t1 <= w.hv.now, "the guest's TSC is virtual time");
    assert_eq!(w.cpu(d).rip, rip + 2);
    w.assert_trace(&["d1v0 emulate rdtsc = "]);
    // The next run publishes vcpu_info.time with the same clock: system_time and tsc_timestamp
    // agree (one tick per ns), the version is even, the scale is 2^31 << 1 >> 32 = 1.
    gp(&mut w, d);
    let t2 = (w.cpu(d).rdx << 32) | (w.cpu(d).rax & 0xffff_ffff);
    assert!(t2 > t1);
    let t = w.vcpu_info(d).add(crate::abi::shinfo::TIME);
    let version = w.mread_u64(t) as u32;
    let (tsc_timestamp, system_time) = (w.mread_u64(t.add(8)), w.mread_u64(t.add(16)));
    let mul = w.mread_u64(t.add(24)) as u32;
    let (shift, flags) = (w.mread_u8(t.add(28)), w.mread_u8(t.add(29)));
    assert_eq!(version % 2, 0);
    assert_eq!(tsc_timestamp, system_time);
    // The record gives the time the guest's TSC says: system_time + (tsc - tsc_timestamp).
    assert_eq!(system_time + (t2 - tsc_timestamp), t2);
    assert_eq!((mul, shift, flags), (1 << 31, 1, crate::abi::XEN_PVCLOCK_TSC_STABLE_BIT));
    // And it is not rewritten while it stays right: the version does not move across exits
    // (Linux's pvclock loop reads the version, takes an rdtsc exit, reads it again).
    let at = w.cpu(d).rip;
    w.write(d, at, &[0x0f, 0x31]);
    gp(&mut w, d);
    assert_eq!(w.mread_u64(t) as u32, version, "the version moved although the record was right");
}

#[test]
fn rdtsc_from_user_mode_with_the_guests_cr4_tsd_is_a_gp_and_rdtscp_is_ud() {
    let (mut w, d, _) = at(&[0x0f, 0x01, 0xf9]); // rdtscp
    assert_eq!(w.set_traps(d, &[(13, 0, GP_HANDLER), (6, 0, GP_HANDLER + 0x40)]), 0);
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rip, GP_HANDLER + 0x40, "rdtscp is not in the CPUID policy: #UD");
    w.assert_trace(&["emulate rdtscp: #UD"]);
    let (mut w, d, _) = at(&[0x0f, 0x31]);
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].privs.cr4 |= crate::privop::CR4_TSD;
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].kernel_mode = false;
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].guest_table_user = Some(w.hv.doms[&d].vcpus[0].guest_table);
    let ksp = w.scratch(d, 31) + 0x800;
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].kernel_sp = ksp;
    gp(&mut w, d);
    assert_eq!(w.cpu(d).rip, GP_HANDLER);
}
