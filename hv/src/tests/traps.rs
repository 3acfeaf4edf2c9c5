//! Exceptions and software interrupts bounced to the guest kernel, the forced-emulation CPUID,
//! HYPERVISOR_iret, and event upcalls.

use super::image::ENTRY;
use super::{nr, World};
use crate::abi::{shinfo, IretContext, ShutdownReason};
use crate::hv::RecordState;
use crate::platform::{Exit, Gate};
use crate::DomId;

const PF_HANDLER: u64 = ENTRY + 0x100;
const GP_HANDLER: u64 = ENTRY + 0x200;
const INT80_HANDLER: u64 = ENTRY + 0x300;
const BP_HANDLER: u64 = ENTRY + 0x400;

/// A domain with a trap table: #PF, #GP, int 0x80 (DPL 3), int 0x81 (DPL 0), #BP (DPL 3).
fn with_traps() -> (World, DomId) {
    let mut w = World::new();
    let d = w.create("traps");
    let r =
        w.set_traps(d, &[(14, 0, PF_HANDLER), (13, 0, GP_HANDLER), (0x80, 3, INT80_HANDLER), (0x81, 0, INT80_HANDLER), (3, 3, BP_HANDLER)]);
    assert_eq!(r, 0);
    w.assert_trace(&["d1v0 set_trap_table(5 entries) = 0"]);
    (w, d)
}

/// Give the vCPU recognisable registers (odd rsp, to check the frame's alignment).
fn regs(w: &mut World, d: DomId) -> crate::platform::CpuState {
    let stack = w.scratch(d, 30) + 0x800 + 8;
    let c = w.cpu_mut(d);
    c.rip = ENTRY + 0x42;
    c.rsp = stack;
    c.rcx = 0x1111;
    c.r11 = 0x2222;
    c.rflags = 0x246;
    *c
}

fn frame(w: &mut World, d: DomId, words: usize) -> Vec<u64> {
    let sp = w.cpu(d).rsp;
    (0..words).map(|i| w.read_u64(d, sp + i as u64 * 8)).collect()
}

#[test]
fn page_fault_bounces_with_xens_frame() {
    let (mut w, d) = with_traps();
    let before = regs(&mut w, d);
    assert_eq!(w.upcall_mask(d), 1, "events start masked");
    w.exit(d, Exit::Exception { vector: 14, error_code: Some(6), cr2: 0xdead_b000 });
    let c = w.cpu(d);
    assert_eq!(c.rip, PF_HANDLER);
    assert_eq!(c.rsp % 16, 0);
    assert_eq!(c.rsp, (before.rsp & !15) - 8 * 8);
    assert_eq!((c.cs, c.ss), (0xe033, 0xe02b));
    let f = frame(&mut w, d, 8);
    assert_eq!(
        f,
        vec![0x1111, 0x2222, 2, before.rip, 0xe030 | (1 << 32), 0x246 & !0x200, before.rsp, 0xe02b],
        "[rcx, r11, err (user bit cleared: a kernel-mode fault, as Xen says), rip, cs|mask<<32, rflags, rsp, ss]"
    );
    let vi = w.vcpu_info(d);
    assert_eq!(vi, w.shared_info(d).add(0), "vCPU 0's vcpu_info is at the start of shared_info");
    assert_eq!(w.mread_u64(vi.add(16)), 0xdead_b000, "cr2 in vcpu_info");
    w.assert_trace(&["d1v0 trap #PF cr2=0xdeadb000 error=supervisor|write at", "-> guest handler"]);
    assert!(w.hv.doms.contains_key(&d));
}

#[test]
fn unmasked_events_show_as_if_in_the_saved_rflags() {
    let (mut w, d) = with_traps();
    let before = regs(&mut w, d);
    let vi = w.vcpu_info(d);
    w.hv.platform.mem[vi.0 as usize + shinfo::UPCALL_MASK as usize] = 0;
    w.exit(d, Exit::Exception { vector: 13, error_code: Some(0x18), cr2: 0 });
    assert_eq!(w.cpu(d).rip, GP_HANDLER);
    let f = frame(&mut w, d, 8);
    assert_eq!(f[2], 0x18);
    assert_eq!(f[4], 0xe030, "mask 0 in cs bits 32..39");
    assert_eq!(f[5] & 0x200, 0x200, "IF set: events were enabled");
    assert_eq!(f[6], before.rsp);
    assert_eq!(w.upcall_mask(d), 0, "trap gate (flags bit 2 clear) leaves events enabled");
}

#[test]
fn unhandled_fault_crashes_only_that_domain() {
    let mut w = World::new();
    // Strict scripts: a vCPU that runs past its script is a failure (Exit::Fatal).
    w.hv.platform.on_empty = super::mock::OnEmpty::Fatal;
    let bad = w.create("bad");
    let good = w.create("good");
    // good: print, then power off. bad: a #PF with no trap table.
    let (msg, reason) = (w.scratch(good, 0), w.scratch(good, 1));
    w.write(good, msg, b"good lives\n");
    w.write_pod(good, reason, &0u32);
    w.step_hypercall(good, nr::CONSOLE_IO, [0, 11, msg, 0, 0]);
    w.step_hypercall(good, nr::SCHED_OP, [2, reason, 0, 0, 0]);
    w.step(bad, |_, _| Exit::Exception { vector: 14, error_code: Some(4), cr2: 0x10 });
    w.run();

    let r = w.hv.record("bad").unwrap();
    assert_eq!(r.state, RecordState::Destroyed);
    assert_eq!(r.shutdowns, vec![ShutdownReason::Crash]);
    assert!(r.crash_reason.as_deref().unwrap().contains("#PF"), "{:?}", r.crash_reason);
    w.assert_trace(&["d1 crash"]);
    assert!(!w.hv.doms.contains_key(&bad));

    let r = w.hv.record("good").unwrap();
    assert_eq!(r.state, RecordState::Destroyed);
    assert_eq!(r.shutdowns, vec![ShutdownReason::Poweroff]);
    assert_eq!(r.console, vec!["good lives".to_string()]);
    assert!(r.crash_reason.is_none());
    assert!(w.hv.doms.is_empty());
    // The crash came first, and good ran after it.
    let t = w.traces();
    let crash = t.iter().position(|l| l.starts_with("d1 crash")).unwrap();
    let console = t.iter().position(|l| l.starts_with("d2v0 console_io")).unwrap();
    assert!(crash < console);
}

#[test]
fn a_bad_kernel_stack_crashes_the_domain() {
    let (mut w, d) = with_traps();
    w.cpu_mut(d).rsp = 0x1000; // unmapped
    w.exit(d, Exit::Exception { vector: 13, error_code: Some(0), cr2: 0 });
    assert_eq!(w.hv.record("traps").unwrap().shutdowns, vec![ShutdownReason::Crash]);
    w.assert_trace(&["d1v0 trap #GP", "not writable"]);
}

#[test]
fn the_platform_failing_crashes_the_domain() {
    let mut w = World::new();
    w.hv.platform.on_empty = super::mock::OnEmpty::Fatal;
    let d = w.create("fatal");
    w.hv.run_until(w.hv.now + 10_000);
    assert!(!w.hv.doms.contains_key(&d));
    assert_eq!(w.hv.record("fatal").unwrap().crash_reason.as_deref(), Some("platform: script ended"));
}

#[test]
fn int_n_with_a_dpl0_gate_is_gp() {
    let (mut w, d) = with_traps();
    let before = regs(&mut w, d);
    // `int $0x81` (cd 81) executed: rip is after the instruction.
    w.cpu_mut(d).rip = before.rip + 2;
    w.exit(d, Exit::SoftInt { vector: 0x81, len: 2 });
    assert_eq!(w.cpu(d).rip, GP_HANDLER);
    let f = frame(&mut w, d, 8);
    assert_eq!(f[2], 0x81 * 8 + 2, "#GP error code: IDT vector");
    assert_eq!(f[3], before.rip, "rip moved back to the int instruction");
    // A vector with no entry at all: also #GP.
    regs(&mut w, d);
    w.cpu_mut(d).rip = before.rip + 2;
    w.exit(d, Exit::SoftInt { vector: 0x82, len: 2 });
    assert_eq!(frame(&mut w, d, 8)[2], 0x82 * 8 + 2);
}

#[test]
fn int_n_with_a_dpl3_gate_is_bounced() {
    let (mut w, d) = with_traps();
    let before = regs(&mut w, d);
    w.cpu_mut(d).rip = before.rip + 2;
    w.exit(d, Exit::SoftInt { vector: 0x80, len: 2 });
    let c = w.cpu(d);
    assert_eq!(c.rip, INT80_HANDLER);
    assert_eq!(c.rsp, (before.rsp & !15) - 7 * 8, "no error code");
    let f = frame(&mut w, d, 7);
    assert_eq!(f, vec![0x1111, 0x2222, before.rip + 2, 0xe030 | (1 << 32), 0x46, before.rsp, 0xe02b]);
}

#[test]
fn forced_emulation_cpuid() {
    let (mut w, d) = with_traps();
    let rip = w.scratch(d, 31);
    w.write(d, rip, &crate::traps::FORCED_CPUID);
    {
        let c = w.cpu_mut(d);
        c.rip = rip;
        c.rax = 0x4000_0000;
        c.rcx = 0;
    }
    w.exit(d, Exit::Exception { vector: 6, error_code: None, cr2: 0 });
    let c = w.cpu(d);
    assert_eq!(c.rip, rip + 7);
    assert!(c.rax >= 0x4000_0002);
    let sig: Vec<u8> = [c.rbx as u32, c.rcx as u32, c.rdx as u32].iter().flat_map(|r| r.to_le_bytes()).collect();
    assert_eq!(&sig, b"XenVMMXenVMM");
    // Leaf 0x40000001: the version, as xen_version reports it.
    w.cpu_mut(d).rip = rip;
    w.cpu_mut(d).rax = 0x4000_0001;
    w.exit(d, Exit::Exception { vector: 6, error_code: None, cr2: 0 });
    assert_eq!(w.cpu(d).rax as i64, w.hypercall(d, nr::XEN_VERSION, [0; 5]));
    // A real #UD (no prefix) goes to the guest (none here: crash).
    w.cpu_mut(d).rip = rip + 1;
    w.exit(d, Exit::Exception { vector: 6, error_code: None, cr2: 0 });
    assert_eq!(w.hv.record("traps").unwrap().shutdowns, vec![ShutdownReason::Crash]);
}

#[test]
fn int3_gate_hypercalls() {
    let mut w = World::with_gate(Gate::Int3);
    let d = w.create("int3");
    let hp = w.hv.doms[&d].hypercall_page.unwrap();
    // xen_version through stub 17: int3 at offset 8, rip after it.
    w.step(d, move |c, _| {
        c.rax = 17;
        c.rdi = 0;
        c.rip = hp + 17 * 32 + 9;
        Exit::SoftInt { vector: 3, len: 1 }
    });
    w.run();
    assert_eq!(w.cpu(d).rax, (4 << 16) | 17);
    // An int3 elsewhere is a breakpoint: DPL-3 #BP handler.
    assert_eq!(w.set_traps(d, &[(3, 3, BP_HANDLER)]), 0);
    let before = regs(&mut w, d);
    w.cpu_mut(d).rip = before.rip + 1;
    w.exit(d, Exit::SoftInt { vector: 3, len: 1 });
    assert_eq!(w.cpu(d).rip, BP_HANDLER);
}

fn iret_ctx(w: &mut World, d: DomId, ctx: IretContext) {
    let sp = w.scratch(d, 29) + 0x100;
    w.cpu_mut(d).rsp = sp;
    w.write_pod(d, sp, &ctx);
}

#[test]
fn iret_restores_the_context() {
    let (mut w, d) = with_traps();
    let target = ENTRY + 0x777;
    let stack = w.scratch(d, 28) + 0x400;
    iret_ctx(
        &mut w,
        d,
        IretContext {
            rax: 0xaaaa,
            r11: 0xbbbb,
            rcx: 0xcccc,
            flags: 0,
            rip: target,
            cs: 0xe030,
            rflags: 0x200 | 0x3000 | 0x1,
            rsp: stack,
            ss: 0xe02b,
        },
    );
    assert_eq!(w.upcall_mask(d), 1);
    w.step_hypercall(d, nr::IRET, [0; 5]);
    w.run();
    let c = w.cpu(d);
    assert_eq!((c.rip, c.rsp, c.rax, c.r11, c.rcx), (target, stack, 0xaaaa, 0xbbbb, 0xcccc));
    assert_eq!((c.cs, c.ss), (0xe033, 0xe02b));
    assert_eq!(c.rflags & 0x3000, 0, "IOPL is not the guest's to set");
    assert_eq!(c.rflags & 0x201, 0x201);
    assert_eq!(w.upcall_mask(d), 0, "IF set in the context: events unmasked");
    assert!(w.hv.doms[&d].vcpus[0].kernel_mode);
    w.assert_trace(&[&format!("d1v0 iret -> {target:#x}")]);

    // IF clear → masked; VGCF_in_syscall → rcx/r11 are not restored.
    iret_ctx(
        &mut w,
        d,
        IretContext { rax: 1, r11: 0x5, rcx: 0x6, flags: 1 << 8, rip: target, cs: 0xe030, rflags: 0x2, rsp: stack, ss: 0xe02b },
    );
    w.cpu_mut(d).rcx = 0x77;
    w.step_hypercall(d, nr::IRET, [0; 5]);
    w.run();
    let c = w.cpu(d);
    assert_eq!((c.rax, c.rcx), (1, 0x77));
    assert_eq!(w.upcall_mask(d), 1);
}

#[test]
fn iret_to_user_without_user_tables_crashes() {
    let (mut w, d) = with_traps();
    iret_ctx(&mut w, d, IretContext { rip: ENTRY, cs: 0xe033, rflags: 0x202, rsp: 0x1000, ss: 0xe02b, ..Default::default() });
    w.step_hypercall(d, nr::IRET, [0; 5]);
    w.run();
    assert_eq!(w.hv.record("traps").unwrap().shutdowns, vec![ShutdownReason::Crash]);
}

#[test]
fn iret_with_a_bad_stack_crashes() {
    let (mut w, d) = with_traps();
    w.cpu_mut(d).rsp = 0;
    w.step_hypercall(d, nr::IRET, [0; 5]);
    w.run();
    assert!(w.hv.record("traps").unwrap().crash_reason.as_deref().unwrap().contains("iret"));
}

#[test]
fn pending_events_are_delivered_to_the_callback() {
    let (mut w, d) = with_traps();
    let cb = ENTRY + 0x900;
    assert_eq!(w.hypercall(d, 4, [cb, 0, 0, 0, 0]), 0, "set_callbacks");
    // Bind an IPI port and send to it while events are masked: pending, no upcall.
    let arg = w.scratch(d, 8);
    w.write(d, arg, &[0; 8]);
    assert_eq!(w.hypercall(d, nr::EVENT_CHANNEL_OP, [7, arg, 0, 0, 0]), 0, "bind_ipi");
    let port: u32 = w.read_pod(d, arg + 4);
    w.write_pod(d, arg, &port);
    regs(&mut w, d);
    assert_eq!(w.hypercall(d, nr::EVENT_CHANNEL_OP, [4, arg, 0, 0, 0]), 0, "send");
    assert!(w.port_pending(d, port));
    assert_ne!(w.cpu(d).rip, cb, "masked: no upcall");
    // Unmask via iret (IF set): the next entry delivers the upcall.
    let stack = w.scratch(d, 28) + 0x400;
    iret_ctx(&mut w, d, IretContext { rip: ENTRY, cs: 0xe030, rflags: 0x202, rsp: stack, ss: 0xe02b, ..Default::default() });
    w.step_hypercall(d, nr::IRET, [0; 5]);
    w.step(d, |_, _| Exit::Budget);
    w.run();
    assert_eq!(w.cpu(d).rip, cb);
    assert_eq!(w.upcall_mask(d), 1, "the callback runs with events masked");
    w.assert_trace(&[&format!("d1v0 event upcall -> {cb:#x}")]);
}

/// A context the CPU would refuse to enter (bare metal faults in its own `iretq`) crashes the
/// domain before the platform is asked to run it; the platform never sees it.
#[test]
fn iret_to_a_context_the_cpu_cannot_enter_crashes_only_the_domain() {
    for (cs, ss, rip, why) in [
        (0x1230u64, 0xe02bu64, ENTRY, "code selector 0x1233"),
        (0xe030, 0x0, ENTRY, "stack selector 0x3"),
        (0xe030, 0xe02b, 0x8000_0000_0000_0000, "rip 0x8000000000000000 is not canonical"),
    ] {
        let (mut w, d) = with_traps();
        let stack = w.scratch(d, 28) + 0x400;
        iret_ctx(&mut w, d, IretContext { rip, cs, rflags: 0x202, rsp: stack, ss, ..Default::default() });
        w.step_hypercall(d, nr::IRET, [0; 5]);
        let runs = w.hv.platform.runs.len();
        w.run();
        assert_eq!(w.hv.record("traps").unwrap().shutdowns, vec![ShutdownReason::Crash], "{why}");
        assert_eq!(w.hv.platform.runs.len(), runs + 1, "{why}: the refused context was run");
        w.assert_trace(&["cannot enter d1v0", why]);
    }
}

/// Xen's permit_softint: the guest kernel is in virtual ring 1, so `int $n` through a gate of
/// DPL 1 reaches its handler from kernel mode (XTF selftest's custom IDT entry).
#[test]
fn int_n_with_a_dpl1_gate_is_allowed_from_the_kernel() {
    let mut w = World::new();
    let d = w.create("dpl1");
    assert_eq!(w.set_traps(d, &[(0x21, 1, INT80_HANDLER), (13, 0, GP_HANDLER)]), 0);
    let before = regs(&mut w, d);
    w.cpu_mut(d).rip = before.rip + 2;
    w.exit(d, Exit::SoftInt { vector: 0x21, len: 2 });
    assert_eq!(w.cpu(d).rip, INT80_HANDLER);
}
