//! The core's loop split for real pCPUs running at once (`hv/smp.rs`, used by the image).

use super::*;
use crate::domain::VcpuState;
use crate::hv::SmpStep;

/// A domain with two runnable vCPUs on two pCPUs: `smp_enter` gives each pCPU its own vCPU of
/// that domain at the same time (both "running"); a hypercall exit handled for one leaves the
/// other's entry alone; an exit that comes back after the domain was destroyed is dropped.
#[test]
fn two_pcpus_get_two_vcpus_of_one_domain_at_once() {
    let mut w = World::new();
    w.hv.set_pcpus(2);
    let mut c = World::config("smp");
    c.vcpus = 2;
    let a = w.try_create(c).expect("create");
    let d = w.hv.doms.get_mut(&a).unwrap();
    d.vcpus[1].cpu = d.vcpus[0].cpu;
    d.vcpus[1].state = VcpuState::Runnable;
    let (mut on0, mut on1) = (None, None);
    let SmpStep::Run(e0) = w.hv.smp_enter(0, 1_000, &mut on0) else { panic!("pCPU 0 idle") };
    let SmpStep::Run(e1) = w.hv.smp_enter(1, 1_000, &mut on1) else { panic!("pCPU 1 idle") };
    assert_eq!((e0.dom, e1.dom), (a, a));
    assert_ne!(e0.vcpu, e1.vcpu, "one vCPU on two pCPUs");
    assert_eq!((on0, on1), (Some((a, e0.vcpu)), Some((a, e1.vcpu))));
    assert!(e0.budget > 0 && e1.budget > 0);
    // pCPU 0's vCPU makes a hypercall: xen_version(XENVER_version).
    let mut c0 = e0.cpu;
    c0.rax = nr::XEN_VERSION;
    c0.rdi = 0;
    let v0 = e0.vcpu as usize;
    w.hv.smp_exit(0, e0, c0, Exit::Gate, 500, 2_000, &mut on0);
    assert_eq!(w.hv.doms[&a].vcpus[v0].cpu.rax, 0x40011, "Xen 4.17");
    assert!(w.traces().iter().any(|l| l.contains("xen_version(version) = 0x40011")), "{:?}", w.traces());
    // The other pCPU's vCPU is still out, its copy untouched; the domain goes away meanwhile.
    w.hv.destroy("smp").expect("destroy");
    let late = e1.cpu;
    w.hv.smp_exit(1, e1, late, Exit::Budget, 500, 3_000, &mut on1);
    assert!(!w.hv.doms.contains_key(&a));
    assert!(w.hv.sched.pcpus[1].resched, "pCPU 1 decides again");
    // With nothing left, both pCPUs idle.
    assert!(matches!(w.hv.smp_enter(1, 4_000, &mut on1), SmpStep::Idle { .. }));
}
