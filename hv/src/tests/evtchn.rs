//! Event channels as a domU sees them in Xen 4.17: interdomain channels between two domains,
//! IPIs, per-vCPU VIRQs, status, close, the errors for bad and foreign ports, and the FIFO ABI's
//! argument checks.

use super::{nr, World, EFAULT, EINVAL, ENOSYS, EPERM};
use crate::abi::{
    evtchn_stat as stat, shinfo, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnExpandArray, EvtchnInitControl, EvtchnPort, EvtchnReset, EvtchnSetPriority, EvtchnStatus, SchedPoll, DOMID_SELF,
};
use crate::domain::VcpuState;
use crate::mm::memory::Pod;
use crate::DomId;

const ENOENT: i64 = -2;
const ESRCH: i64 = -3;
const EEXIST: i64 = -17;
const EOPNOTSUPP: i64 = -95;

mod op {
    pub const BIND_INTERDOMAIN: u64 = 0;
    pub const BIND_VIRQ: u64 = 1;
    pub const CLOSE: u64 = 3;
    pub const SEND: u64 = 4;
    pub const STATUS: u64 = 5;
    pub const ALLOC_UNBOUND: u64 = 6;
    pub const BIND_IPI: u64 = 7;
    pub const BIND_VCPU: u64 = 8;
    pub const UNMASK: u64 = 9;
    pub const RESET: u64 = 10;
    pub const INIT_CONTROL: u64 = 11;
    pub const EXPAND_ARRAY: u64 = 12;
    pub const SET_PRIORITY: u64 = 13;
}

/// event_channel_op(cmd, &v) from `d` with `v` staged at scratch page 0: (rax, v after the call).
fn evop<T: Pod>(w: &mut World, d: DomId, cmd: u64, v: &T) -> (i64, T) {
    let a = w.scratch(d, 0);
    w.write_pod(d, a, v);
    let r = w.hypercall(d, nr::EVENT_CHANNEL_OP, [cmd, a, 0, 0, 0]);
    (r, w.read_pod(d, a))
}

fn port_op(w: &mut World, d: DomId, cmd: u64, port: u32) -> i64 {
    evop(w, d, cmd, &EvtchnPort { port }).0
}

fn status(w: &mut World, d: DomId, dom: u16, port: u32) -> (i64, EvtchnStatus) {
    evop(w, d, op::STATUS, &EvtchnStatus { dom, port, ..Default::default() })
}

fn alloc_unbound(w: &mut World, d: DomId, dom: u16, remote_dom: u16) -> (i64, u32) {
    let (r, s) = evop(w, d, op::ALLOC_UNBOUND, &EvtchnAllocUnbound { dom, remote_dom, port: 0 });
    (r, s.port)
}

fn bind_interdomain(w: &mut World, d: DomId, remote_dom: u16, remote_port: u32) -> (i64, u32) {
    let (r, s) = evop(w, d, op::BIND_INTERDOMAIN, &EvtchnBindInterdomain { remote_dom, _pad: 0, remote_port, local_port: 0 });
    (r, s.local_port)
}

fn bind_virq(w: &mut World, d: DomId, virq: u32, vcpu: u32) -> (i64, u32) {
    let (r, s) = evop(w, d, op::BIND_VIRQ, &EvtchnBindVirq { virq, vcpu, port: 0 });
    (r, s.port)
}

fn upcall_pending(w: &mut World, d: DomId, v: usize) -> bool {
    let vi = w.hv.doms[&d].vcpus[v].vcpu_info;
    w.mread_u8(vi.add(shinfo::UPCALL_PENDING)) != 0
}

fn pending_sel(w: &mut World, d: DomId, v: usize) -> u64 {
    let vi = w.hv.doms[&d].vcpus[v].vcpu_info;
    w.mread_u64(vi.add(shinfo::PENDING_SEL))
}

/// Clear `port`'s pending bit and the vCPU's upcall state, as the guest's handler would.
fn ack(w: &mut World, d: DomId, port: u32) {
    let a = w.shared_info(d).add(shinfo::EVTCHN_PENDING + (port / 64) as u64 * 8);
    let i = a.0 as usize;
    let v = w.mread_u64(a) & !(1 << (port % 64));
    w.hv.platform.mem[i..i + 8].copy_from_slice(&v.to_le_bytes());
    for vc in 0..w.hv.doms[&d].vcpus.len() {
        let vi = w.hv.doms[&d].vcpus[vc].vcpu_info;
        w.hv.platform.mem[vi.add(shinfo::UPCALL_PENDING).0 as usize] = 0;
        let s = vi.add(shinfo::PENDING_SEL).0 as usize;
        w.hv.platform.mem[s..s + 8].fill(0);
    }
}

#[test]
fn interdomain_channel_between_two_domains() {
    let mut w = World::new();
    let d1 = w.create("front");
    let d2 = w.create("back");
    // Ports 1 and 2 are the store and console rings: the first free port is 3.
    let (r, p1) = alloc_unbound(&mut w, d1, DOMID_SELF, d2);
    assert_eq!((r, p1), (0, 3));
    w.assert_trace(&["d1v0 event_channel_op(alloc_unbound, self for d2) = 0    port 3"]);
    let (r, s) = status(&mut w, d1, DOMID_SELF, p1);
    assert_eq!((r, s.status, s.u0), (0, stat::UNBOUND, d2 as u32));

    let (r, p2) = bind_interdomain(&mut w, d2, d1, p1);
    assert_eq!((r, p2), (0, 3));
    w.assert_trace(&["d2v0 event_channel_op(bind_interdomain, d1 port 3) = 0    port 3 <-> d1 port 3"]);
    assert!(w.port_pending(d2, p2), "Xen raises the binder's new port");
    ack(&mut w, d2, p2);
    let (_, s) = status(&mut w, d1, DOMID_SELF, p1);
    assert_eq!((s.status, s.u0, s.u1), (stat::INTERDOMAIN, d2 as u32, p2));
    let (_, s) = status(&mut w, d2, d2, p2);
    assert_eq!((s.status, s.u0, s.u1), (stat::INTERDOMAIN, d1 as u32, p1));

    // d1 -> d2: the remote port pends, with its selector and the upcall of the notified vCPU.
    assert_eq!(port_op(&mut w, d1, op::SEND, p1), 0);
    w.assert_trace(&["d1v0 event_channel_op(send, port 3) = 0    -> d2 port 3"]);
    assert!(w.port_pending(d2, p2));
    assert!(!w.port_pending(d1, p1));
    assert!(upcall_pending(&mut w, d2, 0));
    assert_eq!(pending_sel(&mut w, d2, 0), 1);
    // d2 -> d1.
    assert_eq!(port_op(&mut w, d2, op::SEND, p2), 0);
    assert!(w.port_pending(d1, p1));
    assert!(upcall_pending(&mut w, d1, 0));

    // d1 closes its end: d2's end waits for d1 again; sends on it are dropped.
    assert_eq!(port_op(&mut w, d1, op::CLOSE, p1), 0);
    assert!(!w.port_pending(d1, p1), "a freed port is no longer pending");
    let (_, s) = status(&mut w, d1, DOMID_SELF, p1);
    assert_eq!(s.status, stat::CLOSED);
    let (_, s) = status(&mut w, d2, DOMID_SELF, p2);
    assert_eq!((s.status, s.u0), (stat::UNBOUND, d1 as u32));
    assert_eq!(port_op(&mut w, d2, op::SEND, p2), 0);
    assert_eq!(port_op(&mut w, d1, op::CLOSE, p1), EINVAL, "closed twice");
    // d1 may bind to d2's now unbound end again, and d2 closes its end.
    let (r, p1b) = bind_interdomain(&mut w, d1, d2, p2);
    assert_eq!((r, p1b), (0, 3));
    assert_eq!(port_op(&mut w, d2, op::CLOSE, p2), 0);
    let (_, s) = status(&mut w, d1, DOMID_SELF, p1b);
    assert_eq!((s.status, s.u0), (stat::UNBOUND, d2 as u32));
}

#[test]
fn loopback_channel_and_destroyed_peer() {
    let mut w = World::new();
    let d1 = w.create("self");
    let d2 = w.create("peer");
    let (r, a) = alloc_unbound(&mut w, d1, d1, DOMID_SELF);
    assert_eq!(r, 0);
    let (r, b) = bind_interdomain(&mut w, d1, DOMID_SELF, a);
    assert_eq!((r, b), (0, a + 1));
    ack(&mut w, d1, b);
    assert_eq!(port_op(&mut w, d1, op::SEND, b), 0);
    assert!(w.port_pending(d1, a) && !w.port_pending(d1, b));
    // A channel to a domain that goes away becomes unbound (and sends on it are dropped).
    let (_, p) = alloc_unbound(&mut w, d2, DOMID_SELF, d1);
    let (r, q) = bind_interdomain(&mut w, d1, d2, p);
    assert_eq!(r, 0);
    w.hv.destroy("peer").unwrap();
    let (_, s) = status(&mut w, d1, DOMID_SELF, q);
    assert_eq!((s.status, s.u0), (stat::UNBOUND, d2 as u32));
    assert_eq!(port_op(&mut w, d1, op::SEND, q), 0);
}

#[test]
fn foreign_domains_and_bad_ports() {
    let mut w = World::new();
    let d1 = w.create("a");
    let d2 = w.create("b");
    let (_, p) = alloc_unbound(&mut w, d1, DOMID_SELF, 0);
    // Another domain's ports: XSM's dummy policy says -EPERM after the lookups.
    assert_eq!(alloc_unbound(&mut w, d2, d1, d2).0, EPERM);
    assert_eq!(alloc_unbound(&mut w, d2, 77, d2).0, ESRCH);
    assert_eq!(status(&mut w, d2, d1, p).0, EPERM);
    assert_eq!(status(&mut w, d2, d1, 64).0, EINVAL, "invalid port before XSM");
    assert_eq!(status(&mut w, d2, 77, p).0, ESRCH);
    assert_eq!(evop(&mut w, d2, op::RESET, &EvtchnReset { dom: d1 }).0, EPERM);
    assert_eq!(evop(&mut w, d2, op::RESET, &EvtchnReset { dom: 77 }).0, ESRCH);
    // p waits for dom0, not d2; a port that is not unbound; a domain that does not exist.
    assert_eq!(bind_interdomain(&mut w, d2, d1, p).0, EINVAL);
    assert_eq!(bind_interdomain(&mut w, d2, d1, 1).0, EINVAL);
    assert_eq!(bind_interdomain(&mut w, d2, d1, 5000).0, EINVAL);
    assert_eq!(bind_interdomain(&mut w, d2, 77, p).0, ESRCH);
    // Ports below the first bucket of 64 are valid even when free, the rest are not.
    let (r, s) = status(&mut w, d1, DOMID_SELF, 63);
    assert_eq!((r, s.status), (0, stat::CLOSED));
    let (r, s) = status(&mut w, d1, DOMID_SELF, 0);
    assert_eq!((r, s.status), (0, stat::CLOSED), "port 0 is reserved");
    assert_eq!(status(&mut w, d1, DOMID_SELF, 64).0, EINVAL);
    for port in [0, 63] {
        assert_eq!(port_op(&mut w, d1, op::CLOSE, port), EINVAL);
        assert_eq!(port_op(&mut w, d1, op::SEND, port), EINVAL);
    }
    assert_eq!(port_op(&mut w, d1, op::UNMASK, 63), 0);
    for port in [64, 4096, u32::MAX] {
        assert_eq!(port_op(&mut w, d1, op::UNMASK, port), EINVAL);
        assert_eq!(port_op(&mut w, d1, op::CLOSE, port), EINVAL);
    }
    w.assert_trace(&["d1v0 event_channel_op(close, port 4294967295) = -EINVAL"]);
    let a = w.scratch(d1, 0);
    assert_eq!(w.hypercall(d1, nr::EVENT_CHANNEL_OP, [op::STATUS, 0, 0, 0, 0]), EFAULT);
    assert_eq!(w.hypercall(d1, nr::EVENT_CHANNEL_OP, [99, a, 0, 0, 0]), ENOSYS);
    // The other domain's port numbers mean nothing here: d2's port 3 is free.
    assert_eq!(port_op(&mut w, d2, op::SEND, p), EINVAL);
}

#[test]
fn ports_run_out_at_max_evtchn_port() {
    let mut w = World::new();
    let d = w.create("many");
    let mut last = 0;
    loop {
        let (r, p) = alloc_unbound(&mut w, d, DOMID_SELF, 0);
        if r != 0 {
            assert_eq!(r, -28, "ENOSPC");
            break;
        }
        last = p;
    }
    assert_eq!(last, 1023, "xl's default event_channels");
    assert_eq!(w.hv.doms[&d].evtchn.ports.len(), 1024);
    // Reset closes them all (and the rings' ports too).
    assert_eq!(evop(&mut w, d, op::RESET, &EvtchnReset { dom: DOMID_SELF }).0, 0);
    assert_eq!(w.hv.doms[&d].evtchn.active(), 0);
    assert_eq!(alloc_unbound(&mut w, d, DOMID_SELF, 0), (0, 1));
}

#[test]
fn ipi_and_bind_vcpu() {
    let mut w = World::new();
    let mut cfg = World::config("smp");
    cfg.vcpus = 2;
    let d = w.try_create(cfg).unwrap();
    let (r, s) = evop(&mut w, d, op::BIND_IPI, &EvtchnBindIpi { vcpu: 1, port: 0 });
    assert_eq!((r, s.port), (0, 3));
    assert_eq!(evop(&mut w, d, op::BIND_IPI, &EvtchnBindIpi { vcpu: 2, port: 0 }).0, ENOENT);
    let ipi = s.port;
    assert_eq!(port_op(&mut w, d, op::SEND, ipi), 0);
    assert!(w.port_pending(d, ipi));
    assert!(upcall_pending(&mut w, d, 1) && !upcall_pending(&mut w, d, 0), "vCPU 1 is notified");
    assert_eq!(pending_sel(&mut w, d, 1), 1);
    let (_, st) = status(&mut w, d, DOMID_SELF, ipi);
    assert_eq!((st.status, st.vcpu), (stat::IPI, 1));
    // An IPI stays on its vCPU; an unbound port moves.
    assert_eq!(evop(&mut w, d, op::BIND_VCPU, &EvtchnBindVcpu { port: ipi, vcpu: 0 }).0, EINVAL);
    let (_, p) = alloc_unbound(&mut w, d, DOMID_SELF, 0);
    assert_eq!(evop(&mut w, d, op::BIND_VCPU, &EvtchnBindVcpu { port: p, vcpu: 1 }).0, 0);
    assert_eq!(evop(&mut w, d, op::BIND_VCPU, &EvtchnBindVcpu { port: p, vcpu: 2 }).0, ENOENT);
    assert_eq!(evop(&mut w, d, op::BIND_VCPU, &EvtchnBindVcpu { port: 50, vcpu: 0 }).0, EINVAL);
    assert_eq!(evop(&mut w, d, op::BIND_VCPU, &EvtchnBindVcpu { port: 64, vcpu: 0 }).0, EINVAL);
    assert_eq!(status(&mut w, d, DOMID_SELF, p).1.vcpu, 1);
    // Closing resets the notified vCPU to 0.
    assert_eq!(port_op(&mut w, d, op::CLOSE, p), 0);
    assert_eq!(status(&mut w, d, DOMID_SELF, p).1.vcpu, 0);
}

#[test]
fn virqs_are_per_vcpu() {
    use crate::abi::hypercall::virq;
    let mut w = World::new();
    let mut cfg = World::config("virq");
    cfg.vcpus = 2;
    let d = w.try_create(cfg).unwrap();
    w.hv.doms.get_mut(&d).unwrap().vcpus[0].op.periodic = None;
    let (r, t1) = bind_virq(&mut w, d, virq::TIMER, 1);
    assert_eq!(r, 0);
    w.assert_trace(&["event_channel_op(bind_virq, virq 0 vcpu 1) = 0    port 3"]);
    let (r, t0) = bind_virq(&mut w, d, virq::TIMER, 0);
    assert_eq!((r, t0), (0, t1 + 1));
    assert_eq!(bind_virq(&mut w, d, virq::TIMER, 1).0, EEXIST);
    assert_eq!(bind_virq(&mut w, d, virq::DEBUG, 1).0, 0, "VIRQ_DEBUG is per vCPU");
    // Global VIRQs bind on vCPU 0 only, and move with bind_vcpu.
    assert_eq!(bind_virq(&mut w, d, virq::CONSOLE, 1).0, EINVAL);
    assert_eq!(bind_virq(&mut w, d, virq::TIMER, 2).0, ENOENT);
    assert_eq!(bind_virq(&mut w, d, 24, 0).0, EINVAL);
    assert_eq!(bind_virq(&mut w, d, u32::MAX, 0).0, EINVAL);
    let (r, g) = bind_virq(&mut w, d, virq::DOM_EXC, 0);
    assert_eq!(r, 0);
    assert_eq!(bind_virq(&mut w, d, virq::DOM_EXC, 0).0, EEXIST);
    assert_eq!(evop(&mut w, d, op::BIND_VCPU, &EvtchnBindVcpu { port: g, vcpu: 1 }).0, 0);
    assert_eq!(evop(&mut w, d, op::BIND_VCPU, &EvtchnBindVcpu { port: t1, vcpu: 0 }).0, EINVAL);
    assert_eq!(bind_virq(&mut w, d, virq::DOM_EXC, 0).0, EEXIST, "still bound on vCPU 0's table");
    let (_, s) = status(&mut w, d, DOMID_SELF, t1);
    assert_eq!((s.status, s.u0, s.vcpu), (stat::VIRQ, virq::TIMER, 1));
    assert_eq!(port_op(&mut w, d, op::SEND, t1), EINVAL, "VIRQs cannot be sent");

    // vCPU 1's timer fires its own port, in its own vcpu_info (vCPU 0's default 100 Hz
    // periodic timer stopped at the start, as VCPUOP_stop_periodic_timer would).
    w.hv.doms.get_mut(&d).unwrap().vcpus[1].timer = Some(0);
    w.hypercall(d, nr::XEN_VERSION, [0, 0, 0, 0, 0]);
    assert!(w.port_pending(d, t1) && !w.port_pending(d, t0));
    assert!(upcall_pending(&mut w, d, 1) && !upcall_pending(&mut w, d, 0));
    // Closing frees the VIRQ for binding again.
    assert_eq!(port_op(&mut w, d, op::CLOSE, t1), 0);
    assert_eq!(bind_virq(&mut w, d, virq::TIMER, 1), (0, t1));
}

#[test]
fn unmask_reraises_a_pending_upcall() {
    let mut w = World::new();
    let d = w.create("mask");
    let (_, p) = evop(&mut w, d, op::BIND_IPI, &EvtchnBindIpi { vcpu: 0, port: 0 });
    let p = p.port;
    // Mask the port, send: pending but no upcall.
    let m = w.shared_info(d).add(shinfo::EVTCHN_MASK).0 as usize;
    w.hv.platform.mem[m] |= 1 << p;
    assert_eq!(port_op(&mut w, d, op::SEND, p), 0);
    assert!(w.port_pending(d, p));
    assert!(!upcall_pending(&mut w, d, 0));
    assert_eq!(pending_sel(&mut w, d, 0), 0);
    assert_eq!(port_op(&mut w, d, op::UNMASK, p), 0);
    assert!(upcall_pending(&mut w, d, 0));
    assert_eq!(pending_sel(&mut w, d, 0), 1);
    assert_eq!(w.hv.platform.mem[m] & (1 << p), 0);
}

#[test]
fn poll_blocks_without_unmasking_until_the_port_fires() {
    let mut w = World::new();
    let d1 = w.create("poller");
    let d2 = w.create("sender");
    let (_, p1) = alloc_unbound(&mut w, d1, DOMID_SELF, d2);
    let (_, p2) = bind_interdomain(&mut w, d2, d1, p1);
    assert_eq!(w.upcall_mask(d1), 1, "events start masked");
    let (_, other) = alloc_unbound(&mut w, d2, DOMID_SELF, d1);
    let (_, mine) = bind_interdomain(&mut w, d1, d2, other);
    ack(&mut w, d1, mine);
    ack(&mut w, d1, p1);
    let ports = w.scratch(d1, 1);
    w.write_pod(d1, ports, &p1);
    let poll = w.scratch(d1, 2);
    w.write_pod(d1, poll, &SchedPoll { ports, nr_ports: 1, _pad: 0, timeout: 0 });
    assert_eq!(w.hypercall(d1, nr::SCHED_OP, [3, poll, 0, 0, 0]), 0);
    assert_eq!(w.hv.doms[&d1].vcpus[0].state, VcpuState::Blocked);
    assert_eq!(w.upcall_mask(d1), 1, "poll leaves event delivery masked (XSA-221's test relies on it)");
    // Another, masked port of d1 firing does not end the poll (an unmasked one would: its
    // upcall kicks the vCPU, as in Xen).
    let m = w.shared_info(d1).add(shinfo::EVTCHN_MASK).0 as usize;
    w.hv.platform.mem[m] |= 1 << mine;
    assert_eq!(port_op(&mut w, d2, op::SEND, other), 0);
    assert!(w.port_pending(d1, mine));
    assert_eq!(w.hv.doms[&d1].vcpus[0].state, VcpuState::Blocked);
    assert_eq!(port_op(&mut w, d2, op::SEND, p2), 0);
    assert_eq!(w.hv.doms[&d1].vcpus[0].state, VcpuState::Runnable);
    assert!(w.hv.doms[&d1].vcpus[0].poll.is_none());
    // Already pending: returns at once. Too many ports: -EINVAL.
    w.write_pod(d1, poll, &SchedPoll { ports, nr_ports: 1, _pad: 0, timeout: 0 });
    assert_eq!(w.hypercall(d1, nr::SCHED_OP, [3, poll, 0, 0, 0]), 0);
    assert_eq!(w.hv.doms[&d1].vcpus[0].state, VcpuState::Runnable);
    w.write_pod(d1, poll, &SchedPoll { ports, nr_ports: 129, _pad: 0, timeout: 0 });
    assert_eq!(w.hypercall(d1, nr::SCHED_OP, [3, poll, 0, 0, 0]), EINVAL);
    // A timeout in the past (XSA-221 polls every port with timeout 1) never blocks.
    for port in [0u32, 63, 64, 4096] {
        w.write_pod(d1, ports, &port);
        w.write_pod(d1, poll, &SchedPoll { ports, nr_ports: 1, _pad: 0, timeout: 1 });
        assert_eq!(w.hypercall(d1, nr::SCHED_OP, [3, poll, 0, 0, 0]), 0);
        assert_eq!(w.hv.doms[&d1].vcpus[0].state, VcpuState::Runnable);
    }
    // A timeout in the future ends the poll.
    let t = w.hv.now + 50_000;
    w.write_pod(d1, poll, &SchedPoll { ports, nr_ports: 1, _pad: 0, timeout: t });
    assert_eq!(w.hypercall(d1, nr::SCHED_OP, [3, poll, 0, 0, 0]), 0);
    // (Due timers fire at the next scheduling decision: d2 spins out its slice first.)
    w.hv.run_until(t + super::SLICE_NS + 1);
    assert_eq!(w.hv.doms[&d1].vcpus[0].state, VcpuState::Runnable);
}

#[test]
fn fifo_abi_checks_come_in_xens_order() {
    let mut w = World::new();
    let mut cfg = World::config("fifo");
    cfg.vcpus = 2;
    let d = w.try_create(cfg).unwrap();
    let page = w.scratch(d, 3);
    let gfn = w.mfn_of(d, page).0;
    let ic = |control_gfn, offset, vcpu| EvtchnInitControl { control_gfn, offset, vcpu, link_bits: 0, _pad: [0; 7] };
    // XTF's XSA-188 test: a bad gfn is -EINVAL, and then there is no event array to expand.
    assert_eq!(evop(&mut w, d, op::INIT_CONTROL, &ic(u64::MAX - 1, 0, 0)).0, EINVAL);
    assert_eq!(evop(&mut w, d, op::EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: gfn }).0, EOPNOTSUPP);
    // vCPU first, then the offset's range and alignment, then the page.
    assert_eq!(evop(&mut w, d, op::INIT_CONTROL, &ic(u64::MAX - 1, 4095, 2)).0, ENOENT);
    assert_eq!(evop(&mut w, d, op::INIT_CONTROL, &ic(gfn, 4096 - 72 + 8, 1)).0, EINVAL);
    assert_eq!(evop(&mut w, d, op::INIT_CONTROL, &ic(gfn, 4, 1)).0, EINVAL);
    w.assert_trace(&["offset not 8-byte aligned"]);
    let l4 = w.hv.doms[&d].vcpus[0].guest_table.0;
    assert_eq!(evop(&mut w, d, op::INIT_CONTROL, &ic(l4, 0, 0)).0, EINVAL, "a page table cannot be the control block");
    let other = w.create("other");
    let foreign = w.mfn_of(other, w.scratch(other, 3)).0;
    assert_eq!(evop(&mut w, d, op::INIT_CONTROL, &ic(foreign, 0, 0)).0, EINVAL, "another domain's frame");
    // Valid arguments: the FIFO ABI is not implemented, the domain keeps the 2-level ABI.
    let (r, s) = evop(&mut w, d, op::INIT_CONTROL, &ic(gfn, 4096 - 72, 1));
    assert_eq!((r, s.link_bits), (ENOSYS, 0));
    // set_priority: a bad port first, then the 2-level ABI has no priorities.
    assert_eq!(evop(&mut w, d, op::SET_PRIORITY, &EvtchnSetPriority { port: 64, priority: 0 }).0, EINVAL);
    assert_eq!(evop(&mut w, d, op::SET_PRIORITY, &EvtchnSetPriority { port: 1, priority: 0 }).0, ENOSYS);
}
