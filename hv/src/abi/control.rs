//! Numbers of the control, platform and other hypercalls a domU may only be refused
//! (sysctl, domctl, platform_op, nmi_op, hvm_op), from Xen 4.17's public headers.

/// `XEN_SYSCTL_INTERFACE_VERSION`.
pub const SYSCTL_INTERFACE_VERSION: u32 = 0x0000_0015; // xen-public/sysctl.h
/// `XEN_DOMCTL_INTERFACE_VERSION`.
pub const DOMCTL_INTERFACE_VERSION: u32 = 0x0000_0015; // xen-public/domctl.h
/// `XENPF_INTERFACE_VERSION`.
pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001; // xen-public/platform.h

/// `XEN_DOMCTL_*` commands do_domctl treats specially when it looks up the target domain.
pub mod domctl {
    pub const CREATEDOMAIN: u32 = 1; // xen-public/domctl.h
    pub const SHADOW_OP: u32 = 10; // xen-public/domctl.h
    pub const SCHEDULER_OP: u32 = 16; // xen-public/domctl.h
    pub const ASSIGN_DEVICE: u32 = 37; // xen-public/domctl.h
    pub const TEST_ASSIGN_DEVICE: u32 = 45; // xen-public/domctl.h
    pub const DEASSIGN_DEVICE: u32 = 47; // xen-public/domctl.h
    pub const VM_EVENT_OP: u32 = 56; // xen-public/domctl.h
}

/// `XENNMI_register_callback`, `XENNMI_unregister_callback`.
pub const XENNMI_REGISTER_CALLBACK: u64 = 0; // xen-public/nmi.h
pub const XENNMI_UNREGISTER_CALLBACK: u64 = 1; // xen-public/nmi.h

/// `HVMOP_*` sub-ops answered for a PV caller, and `HVM_NR_PARAMS`.
pub const HVMOP_SET_PARAM: u64 = 0; // xen-public/hvm/hvm_op.h
pub const HVMOP_GET_PARAM: u64 = 1; // xen-public/hvm/hvm_op.h
pub const HVMOP_FLUSH_TLBS: u64 = 5; // xen-public/hvm/hvm_op.h
pub const HVM_NR_PARAMS: u32 = 39; // xen-public/hvm/params.h

/// The special domain ids: `DOMID_IO`, `DOMID_XEN`, `DOMID_INVALID`.
pub const DOMID_IO: u16 = 0x7FF1; // xen-public/xen.h
pub const DOMID_XEN: u16 = 0x7FF2; // xen-public/xen.h
pub const DOMID_INVALID: u16 = 0x7FF4; // xen-public/xen.h

use core::mem::{offset_of, size_of};

macro_rules! layout {
    ($t:ty, size = $s:expr $(, $f:ident @ $o:expr)* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $s);
        $( const _: () = assert!(offset_of!($t, $f) == $o); )*
    };
}

/// `struct xen_domctl` as Xen copies it: {cmd, interface_version, domain, _pad[3], u (128 bytes)}.
// xen-public/domctl.h
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DomctlHead {
    pub cmd: u32,
    pub interface_version: u32,
    pub domain: u16,
    pub _pad: [u16; 3],
    pub u: [u8; 128],
}
layout!(DomctlHead, size = 144, cmd @ 0, interface_version @ 4, domain @ 8, u @ 16);

/// `struct xen_sysctl`: {cmd, interface_version, u (128 bytes)}.
// xen-public/sysctl.h
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SysctlHead {
    pub cmd: u32,
    pub interface_version: u32,
    pub u: [u8; 128],
}
layout!(SysctlHead, size = 136, cmd @ 0, interface_version @ 4, u @ 8);

/// `struct xen_platform_op`: {cmd, interface_version, u (128 bytes)}.
// xen-public/platform.h
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PlatformOpHead {
    pub cmd: u32,
    pub interface_version: u32,
    pub u: [u8; 128],
}
layout!(PlatformOpHead, size = 136, cmd @ 0, interface_version @ 4, u @ 8);

/// `struct xennmi_callback` {handler_address, pad}.
// xen-public/nmi.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct NmiCallback {
    pub handler_address: u64,
    pub pad: u64,
}
layout!(NmiCallback, size = 16, handler_address @ 0, pad @ 8);

/// `struct xen_hvm_param` {domid, pad, index, value}.
// xen-public/hvm/hvm_op.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct HvmParam {
    pub domid: u16,
    pub pad: u16,
    pub index: u32,
    pub value: u64,
}
layout!(HvmParam, size = 16, domid @ 0, pad @ 2, index @ 4, value @ 8);

/// `struct evtchn_op` {cmd, u}: the argument of the legacy event_channel_op_compat, whose `u`
/// is what event_channel_op takes (the largest member, evtchn_status, is 24 bytes).
// xen-public/event_channel.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct EvtchnOpCompat {
    pub cmd: u32,
    pub u: [u32; 6],
}
layout!(EvtchnOpCompat, size = 28, cmd @ 0, u @ 4);

/// `struct physdev_op` {cmd, u}: the argument of the legacy physdev_op_compat (the largest
/// member of `u`, physdev_apic and physdev_set_iobitmap, is 16 bytes, 8-aligned).
// xen-public/physdev.h
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct PhysdevOpCompat {
    pub cmd: u32,
    pub _pad: u32,
    pub u: [u64; 2],
}
layout!(PhysdevOpCompat, size = 24, cmd @ 0, u @ 8);
