//! `schedctl`: the toolstack's `xl sched-credit -d D -w W -c C`, done by a guest through
//! `domctl(XEN_DOMCTL_scheduler_op)` as libxc's `xc_sched_credit_domain_get/set` do. Command
//! line: `target=DOMID weight=W cap=C` (defaults: 2, 768, 0). It prints whether it is privileged
//! (start_info's SIF_PRIVILEGED), then every call and its result:
//!
//! 1. getinfo on the target;
//! 2. if that worked: the corner cases as Xen answers them (putinfo with weight 0 and cap
//!    0xffff changes nothing, a cap above 100 x vCPUs is taken (the range checks are libxl's),
//!    an unknown domain is -ESRCH, another scheduler's id and the
//!    per-vCPU commands are -EINVAL), then putinfo with W and C, and getinfo again.
//!
//! An unprivileged domain gets -EPERM (-1) for the first call and stops there. It powers off at
//! the end.
#![no_std]
#![no_main]

use xenrt::{abi::*, println, StartInfo};

xenrt::entry!(main);

/// `__HYPERVISOR_domctl` (xen-public/xen.h).
const HYPERVISOR_DOMCTL: usize = 36;
/// `XEN_DOMCTL_INTERFACE_VERSION` (xen-public/domctl.h).
const DOMCTL_INTERFACE_VERSION: u32 = 0x15;
/// `XEN_DOMCTL_scheduler_op` (xen-public/domctl.h).
const DOMCTL_SCHEDULER_OP: u32 = 16;
/// `XEN_SCHEDULER_CREDIT`, `XEN_SCHEDULER_CREDIT2` (xen-public/domctl.h).
const SCHEDULER_CREDIT: u32 = 5;
const SCHEDULER_CREDIT2: u32 = 6;
/// `XEN_DOMCTL_SCHEDOP_*` (xen-public/domctl.h).
const SCHEDOP_PUTINFO: u32 = 0;
const SCHEDOP_GETINFO: u32 = 1;
const SCHEDOP_GETVCPUINFO: u32 = 3;

/// `struct xen_domctl` with `u.scheduler_op` (`struct xen_domctl_scheduler_op`: sched_id, cmd,
/// then the union whose credit member is `{uint16_t weight, cap}`), padded to the 128-byte
/// union (xen-public/domctl.h).
#[repr(C, align(8))]
struct Domctl {
    cmd: u32,
    interface_version: u32,
    domain: u16,
    _pad: [u16; 3],
    sched_id: u32,
    sched_cmd: u32,
    weight: u16,
    cap: u16,
    _rest: [u8; 116],
}
const _: () = assert!(core::mem::size_of::<Domctl>() == 144);

/// One scheduler_op; returns the hypercall's result and the (weight, cap) copied back.
fn sched_op(domain: u16, sched_id: u32, cmd: u32, weight: u16, cap: u16) -> (i64, u16, u16) {
    let mut d = Domctl {
        cmd: DOMCTL_SCHEDULER_OP,
        interface_version: DOMCTL_INTERFACE_VERSION,
        domain,
        _pad: [0; 3],
        sched_id,
        sched_cmd: cmd,
        weight,
        cap,
        _rest: [0; 116],
    };
    // SAFETY: `d` is a valid xen_domctl that the hypervisor may read and write back.
    let rc = unsafe { xenrt::hypercall::hypercall1(HYPERVISOR_DOMCTL, core::ptr::addr_of_mut!(d) as u64) };
    // SAFETY: the fields were written by the hypervisor's copy-back (or are ours).
    let (w, c) = unsafe { (core::ptr::read_volatile(&d.weight), core::ptr::read_volatile(&d.cap)) };
    (rc, w, c)
}

fn main(si: &'static StartInfo) -> ! {
    let target = xenrt::cmdline::arg_u64("target").unwrap_or(2) as u16;
    let weight = xenrt::cmdline::arg_u64("weight").unwrap_or(768) as u16;
    let cap = xenrt::cmdline::arg_u64("cap").unwrap_or(0) as u16;
    let privileged = si.flags & SIF_PRIVILEGED != 0;
    println!("schedctl: privileged={}", privileged);
    let (rc, w, c) = sched_op(target, SCHEDULER_CREDIT, SCHEDOP_GETINFO, 0, 0);
    println!("schedctl: getinfo d{} = {} weight={} cap={}", target, rc, w, c);
    if rc == 0 {
        let (rc, _, _) = sched_op(target, SCHEDULER_CREDIT, SCHEDOP_PUTINFO, 0, 0xffff);
        let (_, w, c) = sched_op(target, SCHEDULER_CREDIT, SCHEDOP_GETINFO, 0, 0);
        println!("schedctl: putinfo weight=0 cap=0xffff = {} (unchanged: weight={} cap={})", rc, w, c);
        // No range check in the hypervisor (csched_dom_cntl): a cap above 100 x vCPUs is taken.
        let (rc, _, _) = sched_op(target, SCHEDULER_CREDIT, SCHEDOP_PUTINFO, 0, 150);
        let (_, w, c) = sched_op(target, SCHEDULER_CREDIT, SCHEDOP_GETINFO, 0, 0);
        println!("schedctl: putinfo weight=0 cap=150 = {} (weight={} cap={})", rc, w, c);
        let (rc, _, _) = sched_op(0x7ff0, SCHEDULER_CREDIT, SCHEDOP_GETINFO, 0, 0);
        println!("schedctl: getinfo d32752 = {}", rc);
        let (rc, _, _) = sched_op(target, SCHEDULER_CREDIT2, SCHEDOP_GETINFO, 0, 0);
        println!("schedctl: getinfo sched_id=credit2 = {}", rc);
        let (rc, _, _) = sched_op(target, SCHEDULER_CREDIT, SCHEDOP_GETVCPUINFO, 0, 0);
        println!("schedctl: getvcpuinfo = {}", rc);
        let (rc, _, _) = sched_op(target, SCHEDULER_CREDIT, SCHEDOP_PUTINFO, weight, cap);
        println!("schedctl: putinfo d{} weight={} cap={} = {}", target, weight, cap, rc);
        let (rc, w, c) = sched_op(target, SCHEDULER_CREDIT, SCHEDOP_GETINFO, 0, 0);
        println!("schedctl: getinfo d{} = {} weight={} cap={}", target, rc, w, c);
    }
    println!("schedctl: done");
    xenrt::shutdown(SHUTDOWN_POWEROFF)
}
