//! vCPU-state hypercalls: vcpu_op (Xen's common_vcpu_op / arch_set_info_guest), set_gdt and
//! update_descriptor (pv/descriptor-tables.c), HYPERVISOR_iret inside a multicall.

use super::{nr, World, EBUSY, EINVAL, ENOSYS};
use crate::abi::{IretContext, MulticallEntry, VcpuGuestContext};
use crate::desc::check_descriptor;
use crate::mm::frames::PageType;
use crate::mm::memory::Pod;
use crate::platform::Exit;

const ENOENT: i64 = -2; // xen-public/errno.h
const ENXIO: i64 = -6; // xen-public/errno.h
const EEXIST: i64 = -17; // xen-public/errno.h
const SET_GDT: u64 = 2; // xen-public/xen.h
const UPDATE_DESCRIPTOR: u64 = 10; // xen-public/xen.h
                                   // xen-public/vcpu.h
const INITIALISE: u64 = 0;
const UP: u64 = 1;
const DOWN: u64 = 2;
const IS_UP: u64 = 3;
const GET_RUNSTATE_INFO: u64 = 4;
const SET_PERIODIC_TIMER: u64 = 6;
const SET_SINGLESHOT_TIMER: u64 = 8;
const REGISTER_VCPU_INFO: u64 = 10;
const SEND_NMI: u64 = 11;
const GET_PHYSID: u64 = 12;

/// A flat 64-bit DPL3 code segment, and the same with DPL 0 (which Xen raises to 3).
const CS64_DPL3: u64 = 0x00af_fb00_0000_ffff;
const CS64_DPL0: u64 = 0x00af_9b00_0000_ffff;

#[test]
fn check_descriptor_follows_xen() {
    // Not present: anything goes, unchanged.
    assert_eq!(check_descriptor(0x1234_0000_0000_5678 & !(1 << 47)), Some(0x1234_0000_0000_5678 & !(1 << 47)));
    // Code/data: DPL raised to 3.
    assert_eq!(check_descriptor(CS64_DPL0), Some(CS64_DPL3));
    assert_eq!(check_descriptor(CS64_DPL3), Some(CS64_DPL3));
    // System descriptors other than a call gate are refused (a present 64-bit TSS, type 9).
    assert_eq!(check_descriptor(0x0000_8900_0000_0067), None);
    // A call gate to the flat kernel CS: DPL forced to 0, the DPL (raised to 3) kept as the RPL.
    let gate = (0xffffu64 << 48) | (0xec00u64 << 32) | (0xe033u64 << 16) | 0x1234;
    let fixed = check_descriptor(gate).unwrap();
    assert_eq!((fixed >> 45) & 3, 0, "gate DPL 0");
    assert_eq!((fixed >> 16) & 0xffff, 0xe033, "target RPL = original DPL");
    // A call gate to a hypervisor selector is refused; reserved bits must be clear.
    assert_eq!(check_descriptor((0xec00u64 << 32) | (0xe008u64 << 16)), None);
    assert_eq!(check_descriptor((0xec01u64 << 32) | (0xe033u64 << 16)), None);
}

#[test]
fn set_gdt_types_the_frames_and_update_descriptor_checks() {
    let mut w = World::new();
    let d = w.create("gdt");
    let page = w.scratch(d, 3);
    let list = w.scratch(d, 4);
    let mfn = w.mfn_of(d, page);
    w.write_pod(d, page + 8, &CS64_DPL0);
    w.write_pod(d, list, &mfn.0);
    // Still mapped writable: the frame cannot take the descriptor type.
    assert_eq!(w.hypercall(d, SET_GDT, [list, 16, 0, 0, 0]), EINVAL);
    // Too many entries.
    assert_eq!(w.hypercall(d, SET_GDT, [list, 14 * 512 + 1, 0, 0, 0]), EINVAL);
    let ro = (mfn.0 << 12) | 0x5;
    assert_eq!(w.update_va_mapping(d, page, ro), 0);
    assert_eq!(w.hypercall(d, SET_GDT, [list, 16, 0, 0, 0]), 0);
    assert_eq!(w.hv.frames.get(mfn).unwrap().ty, PageType::SegDesc);
    // Validated in place: DPL 0 became 3; the CPU state carries the GDT.
    assert_eq!(w.mread_u64(mfn.maddr().add(8)), CS64_DPL3);
    let g = w.cpu(d).gdt;
    assert_eq!((g.frames[0], g.entries), (mfn.0, 16));
    // A descriptor page can never be mapped writable, nor be a page table.
    assert_eq!(w.update_va_mapping(d, page, ro | 2), EBUSY);
    assert_eq!(w.mmuext(d, 3 /* MMUEXT_PIN_L4_TABLE */, mfn.0), EINVAL);
    // update_descriptor: aligned, checked, written, the CPU's copy reloaded.
    let ma = mfn.maddr().0 + 16;
    assert_eq!(w.hypercall(d, UPDATE_DESCRIPTOR, [ma + 4, CS64_DPL3, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(d, UPDATE_DESCRIPTOR, [ma, 0x0000_8900_0000_0067, 0, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(d, UPDATE_DESCRIPTOR, [ma, CS64_DPL0, 0, 0, 0]), 0);
    assert_eq!(w.mread_u64(mfn.maddr().add(16)), CS64_DPL3);
    assert_ne!(w.cpu(d).gdt.version, g.version);
    // Not the domain's frame.
    assert_eq!(w.hypercall(d, UPDATE_DESCRIPTOR, [0x1000, CS64_DPL3, 0, 0, 0]), EINVAL);
    // A new (empty) GDT releases the frame: writable again.
    assert_eq!(w.hypercall(d, SET_GDT, [list, 0, 0, 0, 0]), 0);
    assert_eq!(w.hv.frames.get(mfn).unwrap().ty, PageType::None);
    assert_eq!(w.update_va_mapping(d, page, ro | 2), 0);
    w.assert_trace(&["d1v0 update_descriptor(", "= 0"]);
}

fn two_vcpus(w: &mut World) -> crate::DomId {
    let mut c = World::config("smp");
    c.vcpus = 2;
    w.try_create(c).unwrap()
}

#[test]
fn vcpu_op_checks_as_xen() {
    let mut w = World::new();
    let d = two_vcpus(&mut w);
    let buf = w.scratch(d, 5);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [IS_UP, 2, 0, 0, 0]), ENOENT);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [IS_UP, 1 << 32, 0, 0, 0]), ENOENT);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [IS_UP, 1, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [UP, 1, 0, 0, 0]), EINVAL);
    // Singleshot timers are for the calling vCPU only.
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [SET_SINGLESHOT_TIMER, 1, buf, 0, 0]), EINVAL);
    // Periodic: at least 1 ms.
    w.write_pod(d, buf, &999_999u64);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [SET_PERIODIC_TIMER, 0, buf, 0, 0]), EINVAL);
    w.write_pod(d, buf, &1_000_000u64);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [SET_PERIODIC_TIMER, 0, buf, 0, 0]), 0);
    assert_eq!(w.hv.doms[&d].vcpus[0].op.periodic.map(|p| p.period), Some(1_000_000));
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [SEND_NMI, 0, buf, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [SEND_NMI, 1, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [GET_PHYSID, 0, buf, 0, 0]), EINVAL);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [99, 0, 0, 0, 0]), ENOSYS);
    // register_vcpu_info: the offset must leave room and be aligned (-ENXIO).
    let page = w.scratch(d, 6);
    let mfn = w.mfn_of(d, page).0;
    w.write_pod(d, buf, &crate::abi::RegisterVcpuInfo { mfn, offset: 4096 - 32, rsvd: 0 });
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [REGISTER_VCPU_INFO, 0, buf, 0, 0]), ENXIO);
    w.write_pod(d, buf, &crate::abi::RegisterVcpuInfo { mfn, offset: 4, rsvd: 0 });
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [REGISTER_VCPU_INFO, 0, buf, 0, 0]), ENXIO);
    w.write_pod(d, buf, &crate::abi::RegisterVcpuInfo { mfn, offset: 64, rsvd: 0 });
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [REGISTER_VCPU_INFO, 0, buf, 0, 0]), 0);
    assert_eq!(w.hv.doms[&d].vcpus[0].vcpu_info.0, (mfn << 12) + 64);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [REGISTER_VCPU_INFO, 0, buf, 0, 0]), EINVAL);
}

#[test]
fn vcpu_initialise_up_down() {
    let mut w = World::new();
    let d = two_vcpus(&mut w);
    let ctxp = w.scratch(d, 8); // two pages: the context is 5168 bytes
    let mut c = VcpuGuestContext::zeroed();
    c.flags = 1 << 2; // VGCF_in_kernel
    c.user_regs.rip = w.cpu(d).rip;
    c.user_regs.cs = 0xe033;
    c.user_regs.ss = 0xe02b;
    c.user_regs.rsp = w.scratch(d, 12) + 4096;
    c.user_regs.rflags = 0x3002;
    c.ctrlreg[3] = w.cpu(d).cr3;
    // A non-canonical rip is refused before anything is taken.
    c.user_regs.rip = 0x0000_8000_0000_0000;
    w.write_pod(d, ctxp, &c);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [INITIALISE, 1, ctxp, 0, 0]), EINVAL);
    c.user_regs.rip = w.cpu(d).rip;
    // User mode without a user L4.
    c.flags = 0;
    w.write_pod(d, ctxp, &c);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [INITIALISE, 1, ctxp, 0, 0]), EINVAL);
    c.flags = 1 << 2;
    // cr3 that is not an L4 of the domain.
    c.ctrlreg[3] = 0x1000;
    w.write_pod(d, ctxp, &c);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [INITIALISE, 1, ctxp, 0, 0]), EINVAL);
    c.ctrlreg[3] = w.cpu(d).cr3;
    w.write_pod(d, ctxp, &c);
    let refs = w.hv.frames.get(crate::mm::Mfn(c.ctrlreg[3] >> 12)).unwrap().type_refs;
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [INITIALISE, 1, ctxp, 0, 0]), 0);
    assert_eq!(w.hv.frames.get(crate::mm::Mfn(c.ctrlreg[3] >> 12)).unwrap().type_refs, refs + 1);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [INITIALISE, 1, ctxp, 0, 0]), EEXIST);
    let v1 = &w.hv.doms[&d].vcpus[1];
    assert_eq!((v1.cpu.rsp, v1.cpu.rflags & 0x3200, v1.privs.iopl), (c.user_regs.rsp, 0x200, 3));
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [IS_UP, 1, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [UP, 1, 0, 0, 0]), 0);
    assert_eq!(w.hv.doms[&d].vcpus[1].state, crate::domain::VcpuState::Runnable);
    // (The mock's script belongs to the domain: with two runnable vCPUs either may take the
    // next step, so the results are read from the state.)
    let buf = w.scratch(d, 5);
    w.step_hypercall(d, nr::VCPU_OP, [DOWN, 1, 0, 0, 0]);
    w.run();
    assert_eq!(w.hv.doms[&d].vcpus[1].state, crate::domain::VcpuState::Down);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [GET_RUNSTATE_INFO, 1, buf, 0, 0]), 0);
    let r: crate::abi::VcpuRunstateInfo = w.read_pod(d, buf);
    assert_eq!(r.state, 3, "offline");
    // The last vCPU going down powers the domain off.
    w.step_hypercall(d, nr::VCPU_OP, [DOWN, 0, 0, 0, 0]);
    w.run();
    assert_eq!(w.hv.record("smp").unwrap().shutdowns, vec![crate::abi::ShutdownReason::Poweroff]);
}

#[test]
fn iret_in_a_multicall_ends_the_batch_with_the_restored_rax() {
    let mut w = World::new();
    let d = w.create("mciret");
    let list = w.scratch(d, 5);
    let sp = w.scratch(d, 7) + 0x100;
    let target = w.cpu(d).rip + 0x40;
    let ctx = IretContext { rax: 0x1234, r11: 1, rcx: 2, flags: 0, rip: target, cs: 0xe030, rflags: 0x202, rsp: sp + 0x800, ss: 0xe02b };
    w.write_pod(d, sp, &ctx);
    w.cpu_mut(d).rsp = sp;
    let e = |op| MulticallEntry { op, result: 0xdead_beef, args: [0; 6] };
    for (i, en) in [e(nr::XEN_VERSION), e(nr::IRET), e(nr::XEN_VERSION)].iter().enumerate() {
        w.write_pod(d, list + i as u64 * 64, en);
    }
    let rax = w.hypercall(d, nr::MULTICALL, [list, 3, 0, 0, 0]);
    assert_eq!(rax, 0x1234);
    let c = w.cpu(d);
    assert_eq!((c.rip, c.rsp), (target, sp + 0x800));
    let results: Vec<u64> = (0..3).map(|i| w.read_pod::<MulticallEntry>(d, list + i * 64).result).collect();
    assert_eq!(results, vec![(4 << 16) | 17, 0x1234, 0xdead_beef], "the batch stops after the iret");
    w.assert_trace(&["d1v0   iret -> "]);
}

#[test]
fn send_nmi_reaches_the_nmi_callback_once_until_iret() {
    let mut w = World::new();
    let d = w.create("nmi");
    let buf = w.scratch(d, 5);
    let handler = w.cpu(d).rip + 0x80;
    // No callback yet: the NMI stays pending.
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [SEND_NMI, 0, 0, 0, 0]), 0);
    assert!(w.hv.doms[&d].vcpus[0].op.nmi_pending);
    // CALLBACKOP_register (0) of CALLBACKTYPE_nmi (4), xen-public/callback.h.
    w.write_pod(d, buf, &crate::abi::CallbackRegister { ty: 4, flags: 0, _pad: 0, address: handler });
    assert_eq!(w.hypercall(d, 30, [0, buf, 0, 0, 0]), 0);
    // Delivered at the next entry: a bounce frame, events masked.
    w.step(d, |_, _| Exit::Budget);
    w.run();
    assert_eq!(w.cpu(d).rip, handler);
    assert_eq!(w.upcall_mask(d), 1);
    assert!(w.hv.doms[&d].vcpus[0].op.nmi_masked);
    w.assert_trace(&[&format!("d1v0 nmi -> {handler:#x}")]);
    // A second NMI waits for the iret.
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [SEND_NMI, 0, 0, 0, 0]), 0);
    assert!(w.hv.doms[&d].vcpus[0].op.nmi_pending);
}

#[test]
fn runstate_area_and_default_periodic_timer() {
    let mut w = World::new();
    let d = w.create("rs");
    // Xen's 100 Hz default ticker for PV vCPUs.
    assert_eq!(w.hv.doms[&d].vcpus[0].op.periodic.map(|p| p.period), Some(10_000_000));
    let area = w.scratch(d, 9);
    let arg = w.scratch(d, 10);
    w.write_pod(d, arg, &area);
    // VMASST_TYPE_runstate_update_flag (5): the area is written with the update protocol.
    assert_eq!(w.hypercall(d, 21 /* vm_assist */, [0, 5, 0, 0, 0]), 0);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [5 /* register_runstate_memory_area */, 0, arg, 0, 0]), 0);
    let r: crate::abi::VcpuRunstateInfo = w.read_pod(d, area);
    assert_eq!(r.state, 0, "the caller is running");
    assert_eq!(r.state_entry_time >> 63, 0, "XEN_RUNSTATE_UPDATE is cleared once written");
    // A bad handle: the hypervisor's range.
    w.write_pod(d, arg, &0xffff_8300_0000_0000u64);
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [5, 0, arg, 0, 0]), -14);
    // get_runstate_info of the caller counts its running time up to now.
    assert_eq!(w.hypercall(d, nr::VCPU_OP, [GET_RUNSTATE_INFO, 0, arg, 0, 0]), 0);
    let r: crate::abi::VcpuRunstateInfo = w.read_pod(d, arg);
    assert_eq!(r.state, 0);
    assert!(r.time[0] > 0);
}

#[test]
fn compat_mode_syscall_goes_to_the_syscall32_callback() {
    let mut w = World::new();
    let d = w.create("sc32");
    let buf = w.scratch(d, 5);
    let (cb64, cb32) = (w.cpu(d).rip + 0x100, w.cpu(d).rip + 0x200);
    // CALLBACKTYPE_syscall (2) and CALLBACKTYPE_syscall32 (7), xen-public/callback.h.
    for (ty, a) in [(2u16, cb64), (7u16, cb32)] {
        w.write_pod(d, buf, &crate::abi::CallbackRegister { ty, flags: 0, _pad: 0, address: a });
        assert_eq!(w.hypercall(d, 30, [0, buf, 0, 0, 0]), 0);
    }
    let ksp = w.scratch(d, 12) + 4096;
    assert_eq!(w.hypercall(d, 3 /* stack_switch */, [0xe02b, ksp, 0, 0, 0]), 0);
    for (cs, target) in [(0xe023u16, cb32), (0xe033u16, cb64)] {
        {
            let v = &mut w.hv.doms.get_mut(&d).unwrap().vcpus[0];
            v.kernel_mode = false;
            v.guest_table_user = Some(v.guest_table);
        }
        // The platform reports the flat selectors of the mode SYSCALL came from.
        w.step(d, move |c, _| {
            c.cs = cs;
            c.ss = 0xe02b;
            Exit::Gate
        });
        w.run();
        let c = w.cpu(d);
        assert_eq!(c.rip, target, "cs {cs:#x}");
        // Frame: rcx, r11, rip, cs, ...: the user's code selector as it was.
        assert_eq!(w.read_u64(d, c.rsp + 24) & 0xffff, cs as u64);
        assert_eq!(c.cs, 0xe033);
    }
}

#[test]
fn a_gdt_frame_that_lost_its_type_is_never_loaded() {
    let mut w = World::new();
    let d = w.create("lost");
    let page = w.scratch(d, 3);
    let list = w.scratch(d, 4);
    let mfn = w.mfn_of(d, page);
    w.write_pod(d, list, &mfn.0);
    assert_eq!(w.update_va_mapping(d, page, (mfn.0 << 12) | 0x5), 0);
    assert_eq!(w.hypercall(d, SET_GDT, [list, 16, 0, 0, 0]), 0);
    // Whatever took the frame away behind the GDT's back (a bug elsewhere), the platform must
    // not be handed it: the domain is crashed before it runs again.
    w.hv.frames.get_mut(mfn).unwrap().ty = PageType::None;
    w.step(d, |_, _| Exit::Budget);
    w.run();
    w.assert_trace(&["cannot enter d1v0: a frame of its GDT is no longer one of its descriptor pages"]);
}
