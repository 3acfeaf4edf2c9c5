//! The console ring backend, the domain lifecycle (pause, unpause, shutdown, reboot, destroy),
//! blocking and timers, and determinism of the trace.

use super::mock::OnEmpty;
use super::{nr, World};
use crate::abi::{cons_ring, ShutdownReason};
use crate::domain::Action;
use crate::hv::{RecordState, SLICE_NS};
use crate::mm::PAGE_SIZE;
use crate::platform::Exit;

#[test]
fn console_ring_is_drained_and_notified() {
    let mut w = World::new();
    let d = w.create("ring");
    let si = w.start_info(d);
    let ring = w.hv.doms[&d].start_info_va + 2 * PAGE_SIZE;
    assert_eq!(w.mfn_of(d, ring).0, si.console_mfn);
    let text = b"hello from the ring\nand a partial";
    w.write(d, ring + cons_ring::OUT, text);
    w.write_pod(d, ring + cons_ring::OUT_PROD, &(text.len() as u32));
    assert!(!w.port_pending(d, si.console_evtchn));
    let arg = w.scratch(d, 0);
    w.write_pod(d, arg, &si.console_evtchn);
    assert_eq!(w.hypercall(d, nr::EVENT_CHANNEL_OP, [4, arg, 0, 0, 0]), 0);
    let cons: u32 = w.read_pod(d, ring + cons_ring::OUT_CONS);
    assert_eq!(cons, text.len() as u32, "out_cons caught up with out_prod");
    assert!(w.port_pending(d, si.console_evtchn), "the backend notified the guest");
    assert_eq!(w.hv.record("ring").unwrap().console, vec!["hello from the ring".to_string()]);
    w.assert_trace(&["d1 console \"hello from the ring\""]);
    assert_eq!(w.hv.platform.console.last().unwrap().2, text.to_vec());

    // Wrap around the 2 KiB ring: start near the end.
    let start = 2048 - 5;
    w.write_pod(d, ring + cons_ring::OUT_CONS, &(start as u32));
    let more = b"wrapped line\n";
    for (i, b) in more.iter().enumerate() {
        w.write(d, ring + cons_ring::OUT + ((start + i) % 2048) as u64, &[*b]);
    }
    w.write_pod(d, ring + cons_ring::OUT_PROD, &((start + more.len()) as u32));
    assert_eq!(w.hypercall(d, nr::EVENT_CHANNEL_OP, [4, arg, 0, 0, 0]), 0);
    assert_eq!(w.hv.record("ring").unwrap().console.last().unwrap(), "and a partialwrapped line");
}

#[test]
fn sends_on_bad_ports_are_einval() {
    let mut w = World::new();
    let d = w.create("ports");
    let arg = w.scratch(d, 0);
    for port in [0u32, 999, 5000, u32::MAX] {
        w.write_pod(d, arg, &port);
        assert_eq!(w.hypercall(d, nr::EVENT_CHANNEL_OP, [4, arg, 0, 0, 0]), super::EINVAL, "port {port}");
    }
    assert_eq!(w.hypercall(d, nr::EVENT_CHANNEL_OP, [4, 0, 0, 0, 0]), super::EFAULT);
}

#[test]
fn paused_domains_do_not_run() {
    let mut w = World::new();
    let d = w.create("p");
    w.hv.run_until(w.hv.now + SLICE_NS);
    let runs = w.hv.platform.runs_of(d);
    assert!(runs > 0);
    w.hv.pause("p").unwrap();
    assert_eq!(w.hv.record("p").unwrap().state, RecordState::Paused);
    let idle = w.hv.platform.idle_ns;
    w.hv.run_until(w.hv.now + 5 * SLICE_NS);
    assert_eq!(w.hv.platform.runs_of(d), runs, "a paused domain must not run");
    assert!(w.hv.platform.idle_ns > idle, "the machine idled");
    // Pauses nest.
    w.hv.pause("p").unwrap();
    w.hv.unpause("p").unwrap();
    w.hv.run_until(w.hv.now + SLICE_NS);
    assert_eq!(w.hv.platform.runs_of(d), runs);
    w.hv.unpause("p").unwrap();
    assert_eq!(w.hv.record("p").unwrap().state, RecordState::Running);
    w.hv.run_until(w.hv.now + SLICE_NS);
    assert!(w.hv.platform.runs_of(d) > runs);
    assert!(w.hv.unpause("p").is_err(), "not paused");
    assert!(w.hv.pause("nobody").is_err());
    w.assert_trace(&["d1 pause"]);
    w.assert_trace(&["d1 unpause"]);
}

#[test]
fn poweroff_destroys_and_frees_every_frame() {
    let mut w = World::new();
    let free = w.hv.frames.free_frames();
    let m2p = w.hv.xen.m2p.maddr();
    let d = w.create("off");
    let frames: Vec<_> = w.hv.frames.domain_frames(d).collect();
    assert_eq!(w.hv.frames.free_frames(), free - frames.len() as u64);
    assert_eq!(w.console_write(d, "bye\n"), 0);
    assert_eq!(w.shutdown_call(d, 0), None);
    assert_eq!(w.hv.frames.free_frames(), free, "all frames back");
    for m in &frames {
        assert_eq!(w.hv.frames.owner(*m), Some(crate::mm::Owner::Free));
        assert_eq!(w.mread_u64(m2p.add(m.0 * 8)), !0, "M2P entry of a freed frame");
    }
    let r = w.hv.record("off").unwrap();
    assert_eq!((r.state, r.shutdowns.clone()), (RecordState::Destroyed, vec![ShutdownReason::Poweroff]));
    assert_eq!(r.console, vec!["bye".to_string()]);
    assert!(w.hv.platform.destroyed.iter().any(|k| k.dom == d));
    w.assert_trace(&["d1v0 sched_op(shutdown, poweroff) = 0"]);
    w.assert_trace(&["d1 shutdown poweroff -> destroy"]);
    // The frames can be used again, and the new owner sees none of the old data.
    let d2 = w.create("again");
    assert_eq!(w.hv.frames.free_frames(), free - frames.len() as u64);
    let scratch = w.scratch(d2, 15);
    assert_eq!(w.read(d2, scratch, 4), vec![0; 4], "scrubbed");
}

#[test]
fn preserve_keeps_the_domain_until_destroy() {
    let mut w = World::new();
    let free = w.hv.frames.free_frames();
    let mut cfg = World::config("keep");
    cfg.on_poweroff = Action::Preserve;
    let d = w.try_create(cfg).unwrap();
    assert_eq!(w.shutdown_call(d, 0), Some(0));
    assert_eq!(w.hv.record("keep").unwrap().state, RecordState::Shutdown(ShutdownReason::Poweroff));
    let runs = w.hv.platform.runs_of(d);
    w.hv.run_until(w.hv.now + 3 * SLICE_NS);
    assert_eq!(w.hv.platform.runs_of(d), runs, "a shut-down domain does not run");
    assert!(w.hv.frames.free_frames() < free);
    w.hv.destroy("keep").unwrap();
    assert_eq!(w.hv.frames.free_frames(), free);
    assert_eq!(w.hv.record("keep").unwrap().state, RecordState::Destroyed);
}

#[test]
fn reboot_rebuilds_with_a_new_generation() {
    let mut w = World::new();
    let d = w.create("rb");
    assert_eq!(w.hv.doms[&d].generation, 0);
    let free_running = w.hv.frames.free_frames();
    // Leave marks that a rebuild must wipe: a trap table and dirty memory.
    assert_eq!(w.set_traps(d, &[(14, 0, super::image::ENTRY)]), 0);
    let scratch = w.scratch(d, 15);
    w.write(d, scratch, b"old life");
    assert!(w.shutdown_call(d, 1).is_some(), "rebuilt under the same id");
    let dom = &w.hv.doms[&d];
    assert_eq!(dom.generation, 1);
    assert_eq!(dom.vcpus[0].key.generation, 1);
    assert_eq!(dom.vcpus[0].trap_table[14].address, 0, "fresh vCPU state");
    let keys: Vec<u32> = w.hv.platform.created.iter().filter(|k| k.dom == d).map(|k| k.generation).collect();
    assert_eq!(keys, vec![0, 1]);
    assert!(w.hv.platform.destroyed.iter().any(|k| k.dom == d && k.generation == 0));
    assert_eq!(w.hv.frames.free_frames(), free_running, "same footprint, nothing leaked");
    let r = w.hv.record("rb").unwrap();
    assert_eq!((r.state, r.shutdowns.clone()), (RecordState::Running, vec![ShutdownReason::Reboot]));
    assert_eq!(w.cpu(d).rip, super::image::ENTRY);
    assert_eq!(w.read(d, scratch, 8), vec![0; 8], "old memory scrubbed");
    // It runs again, from the start.
    assert_eq!(w.console_write(d, "second life\n"), 0);
    assert_eq!(w.traces().iter().filter(|l| l.starts_with("d1v0 start")).count(), 2);
    w.assert_trace(&["d1 shutdown reboot -> restart"]);
    // xl reboot / xl shutdown from the toolstack ask through control/shutdown; this guest
    // ignores them, so the grace time passes and the hypervisor does the same.
    w.hv.shutdown("rb", ShutdownReason::Reboot).unwrap();
    assert_eq!(w.hv.doms[&d].generation, 1, "the guest is asked first");
    assert_eq!(w.hv.store.read("/local/domain/1/control/shutdown"), Some(&b"reboot"[..]));
    w.hv.run_until(w.hv.now + crate::store::SHUTDOWN_GRACE_NS + 1);
    assert_eq!(w.hv.doms[&d].generation, 2);
    assert_eq!(w.hv.store.read("/local/domain/1/control/shutdown"), Some(&b""[..]), "a fresh tree");
    w.hv.shutdown("rb", ShutdownReason::Poweroff).unwrap();
    w.hv.run_until(w.hv.now + crate::store::SHUTDOWN_GRACE_NS + 1);
    assert!(w.hv.doms.is_empty());
}

#[test]
fn block_sleeps_until_the_timer() {
    let mut w = World::new();
    let d = w.create("sleepy");
    // Bind VIRQ_TIMER, arm a timer 3 slices ahead, block.
    let arg = w.scratch(d, 0);
    w.write(d, arg, &[0; 12]);
    assert_eq!(w.hypercall(d, nr::EVENT_CHANNEL_OP, [1, arg, 0, 0, 0]), 0, "bind_virq(timer)");
    let port: u32 = w.read_pod(d, arg + 8);
    let deadline = w.hv.now + 3 * SLICE_NS;
    assert_eq!(w.hypercall(d, 15, [deadline, 0, 0, 0, 0]), 0, "set_timer_op");
    w.step_hypercall(d, nr::SCHED_OP, [1, 0, 0, 0, 0]);
    w.run();
    assert_eq!(w.hv.doms[&d].vcpus[0].state, crate::domain::VcpuState::Blocked);
    let runs = w.hv.platform.runs_of(d);
    w.hv.run_until(deadline - 1);
    assert_eq!(w.hv.platform.runs_of(d), runs, "blocked: not run before the deadline");
    w.hv.run_until(deadline + SLICE_NS);
    assert!(w.hv.platform.runs_of(d) > runs, "woken by the timer");
    assert!(w.port_pending(d, port));
    assert_eq!(w.upcall_mask(d), 0, "block enabled events");
}

/// The same script on a fresh machine gives the same trace, line for line.
#[test]
fn same_script_same_trace() {
    fn script() -> (Vec<String>, Vec<super::mock::Run>) {
        let mut w = World::new();
        w.hv.platform.on_empty = OnEmpty::Fatal;
        let a = w.create("a");
        let b = w.create("b");
        let victim = w.hv.doms[&b].p2m[3];
        for d in [a, b] {
            let (msg, reason, traps) = (w.scratch(d, 0), w.scratch(d, 1), w.scratch(d, 2));
            w.write(d, msg, format!("hello from d{d}\n").as_bytes());
            w.write_pod(d, reason, &0u32);
            w.write_pod(d, traps, &crate::abi::TrapInfo { vector: 14, flags: 0, cs: 0xe033, _pad: 0, address: super::image::ENTRY + 0x10 });
            w.write_pod(d, traps + 16, &crate::abi::TrapInfo::default());
            let va = w.scratch(d, 3);
            w.step_hypercall(d, nr::SET_TRAP_TABLE, [traps, 0, 0, 0, 0]);
            w.step_hypercall(d, nr::CONSOLE_IO, [0, 14, msg, 0, 0]);
            w.step_hypercall(d, nr::UPDATE_VA_MAPPING, [va, victim.maddr().0 | 7, 0, 0, 0]);
            w.step(d, |_, _| Exit::Exception { vector: 14, error_code: Some(2), cr2: 0x1234 });
            w.step(d, |_, _| Exit::Budget);
            w.step_hypercall(d, nr::XEN_VERSION, [0; 5]);
            w.step_hypercall(d, nr::SCHED_OP, [2, reason, 0, 0, 0]);
        }
        w.run();
        assert!(w.hv.doms.is_empty());
        (w.hv.platform.traces.clone(), w.hv.platform.runs.clone())
    }
    let (t1, r1) = script();
    let (t2, r2) = script();
    assert!(t1.len() > 15, "{t1:#?}");
    assert_eq!(t1, t2);
    assert_eq!(r1.len(), r2.len());
    for (x, y) in r1.iter().zip(&r2) {
        assert_eq!((x.key, x.entry, x.budget), (y.key, y.entry, y.budget));
    }
    assert!(t1.iter().any(|l| l.contains("d2v0 console_io(write, 14 bytes) = 0")));
}

#[test]
fn sched_credit_sets_reads_and_refuses_bad_values() {
    use crate::hv::ControlError;
    let mut w = World::new();
    w.create("a");
    assert_eq!(w.hv.sched_credit_get("a"), Ok((256, 0)));
    assert_eq!(w.hv.sched_credit("a", Some(64), Some(25)), Ok((64, 25)));
    assert_eq!(w.hv.sched_credit("a", None, Some(0)), Ok((64, 0)));
    assert_eq!(w.hv.sched_credit_get("a"), Ok((64, 0)));
    assert!(matches!(w.hv.sched_credit("a", Some(0), None), Err(ControlError::Invalid(_))));
    assert_eq!(w.hv.sched_credit("a", None, Some(101)), Err(ControlError::Invalid("cap 101 is out of range 0..=100 for 1 vcpus".into())));
    assert_eq!(w.hv.sched_credit("nope", Some(1), None), Err(ControlError::NoSuchDomain("nope".into())));
    let id = w.hv.domid("a").unwrap();
    assert_eq!(w.hv.sched.params(id), Some((64, 0)));
}

/// Two pCPUs run the two vCPUs of one domain at the same time, and a third vCPU shares them:
/// every pCPU stays busy, shares follow the credit scheduler, and the interleaving is the same
/// on every run.
#[test]
fn two_pcpus_run_vcpus_of_one_domain_in_parallel() {
    use crate::domain::VcpuState;
    let run = || {
        let mut w = World::new();
        w.hv.set_pcpus(2);
        w.hv.sched.record();
        let mut c = World::config("smp");
        c.vcpus = 2;
        let a = w.try_create(c).expect("create");
        // Bring vCPU 1 up as VCPUOP_initialise + VCPUOP_up would: vCPU 0's context.
        let d = w.hv.doms.get_mut(&a).unwrap();
        d.vcpus[1].cpu = d.vcpus[0].cpu;
        d.vcpus[1].state = VcpuState::Runnable;
        let b = w.create("one");
        w.hv.run_until(3_000_000_000);
        w.hv.sched.flush_spans();
        let spans = w.hv.sched.spans.take().unwrap();
        (a, b, spans)
    };
    let (a, b, spans) = run();
    let ran = |d: u16, v: Option<u32>| -> u64 {
        spans.iter().filter(|s| s.unit.0 == d && v.is_none_or(|v| s.unit.1 == v)).map(|s| s.end - s.start).sum()
    };
    // 6 s of pCPU time: 2 vCPUs × weight 256 against 1 × 256: 4 s and 2 s, within 1 %.
    let total: u64 = spans.iter().map(|s| s.end - s.start).sum();
    assert!(total >= 5_990_000_000, "idle pCPU time with work queued: {total}");
    assert!(ran(a, None).abs_diff(4_000_000_000) <= 30_000_000, "d{a}: {}", ran(a, None));
    assert!(ran(b, None).abs_diff(2_000_000_000) <= 30_000_000, "d{b}: {}", ran(b, None));
    // vCPU 0 and vCPU 1 of the same domain ran at the same time on different pCPUs.
    let overlap = spans
        .iter()
        .any(|x| x.unit == (a, 0) && spans.iter().any(|y| y.unit == (a, 1) && y.pcpu != x.pcpu && y.start < x.end && x.start < y.end));
    assert!(overlap, "vCPUs of d{a} never ran in parallel");
    // No vCPU ever ran on two pCPUs at once.
    for x in &spans {
        for y in &spans {
            if x.unit == y.unit && x != y {
                assert!(x.end <= y.start || y.end <= x.start, "{x:?} overlaps {y:?}");
            }
        }
    }
    assert_eq!(run().2, spans, "two runs with 2 pCPUs differ");
}
