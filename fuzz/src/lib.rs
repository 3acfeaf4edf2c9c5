//! Shared pieces of the fuzz targets: a hypervisor over the core's mock platform with one domain,
//! and the frame-table invariants checked after every step.

use std::sync::Arc;

use hv::domain::DomainConfig;
use hv::mm::paging::{pte_mfn, PTE_P, PTE_RW};
use hv::mm::{Mfn, Owner, PageType, PAGE_SIZE};
use hv::platform::Gate;
use hv::testing::{image, mock::Mock};
use hv::{DomId, Hypervisor};

/// Machine memory of the fuzz machine (MiB), as in the core's unit tests. Deliberately above
/// glibc's largest dynamic mmap threshold (32 MiB): each iteration's machine is then a fresh
/// mmap whose untouched pages cost nothing, where a smaller one is recycled from the heap and
/// memset in full every time (that memset was 2/3 of the `hypercall` target's time at 24 MiB).
pub const MACHINE_MIB: usize = 64;
/// Frames below this belong to the "platform", as in the core's unit tests.
pub const RESERVED: u64 = 16;
/// Memory of the fuzzed domain (MiB): the smallest that holds the builder's 4 MiB bootstrap area
/// with room to spare.
pub const DOMAIN_MIB: u64 = 8;

/// A fresh hypervisor over the mock (tracing off: the trace is not what is being fuzzed, and
/// formatting it costs most of an iteration).
pub fn hypervisor(gate: Gate) -> Hypervisor<Mock> {
    let mut hv = Hypervisor::new(Mock::new(MACHINE_MIB, gate), RESERVED).expect("hypervisor over the mock");
    hv.tracing = false;
    hv
}

/// A domain config for `kernel`, sized for the fuzz machine.
pub fn config(kernel: &[u8]) -> DomainConfig {
    let mut cfg = DomainConfig::new("fuzz", "fuzz", Arc::from(kernel));
    cfg.memory_mib = DOMAIN_MIB;
    cfg
}

/// A hypervisor with one domain running the core's test kernel (a minimal Xen PV64 ELF written
/// by `hv::testing::image`, as the unit tests make theirs).
pub fn with_test_domain(gate: Gate) -> (Hypervisor<Mock>, DomId) {
    let mut hv = hypervisor(gate);
    let d = hv.create_domain(config(&image::kernel())).expect("the test kernel builds");
    (hv, d)
}

/// Frame-table invariants that must hold whatever a guest did. Panics (a fuzz finding) if not.
///
/// - the free count matches the frames marked free;
/// - a free frame has no type, references or pin;
/// - no validated L1 table maps a page-table frame writable, and no page-table frame counts a
///   writable reference (Xen's central PV memory rule).
pub fn check_frames(hv: &mut Hypervisor<Mock>) {
    let n = hv.frames.len();
    let mut free = 0;
    let mut l1s = Vec::new();
    for i in 0..n {
        let f = *hv.frames.get(Mfn(i)).expect("frame in range");
        match f.owner {
            Owner::Free => {
                free += 1;
                assert!(
                    f.ty == PageType::None && f.type_refs == 0 && f.writable_refs == 0 && !f.pinned,
                    "free frame {i:#x} still has state: {f:?}"
                );
            }
            _ => {
                if f.ty == PageType::SegDesc {
                    assert_eq!(f.writable_refs, 0, "descriptor-table frame {i:#x} has writable references: {f:?}");
                    assert!(f.type_refs > 0, "descriptor-table frame {i:#x} has the type without a reference: {f:?}");
                }
                if let PageType::PageTable(level) = f.ty {
                    assert_eq!(f.writable_refs, 0, "page-table frame {i:#x} (L{level}) has writable references: {f:?}");
                    if level == 1 {
                        l1s.push(i);
                    }
                }
            }
        }
    }
    assert_eq!(free, hv.frames.free_frames(), "free-frame count");
    let mem = &hv.platform.mem;
    for l1 in l1s {
        let base = (l1 * PAGE_SIZE) as usize;
        for (slot, e) in mem[base..base + PAGE_SIZE as usize].chunks_exact(8).enumerate() {
            let e = u64::from_le_bytes(e.try_into().expect("8 bytes"));
            if e & (PTE_P | PTE_RW) != (PTE_P | PTE_RW) {
                continue;
            }
            let target = pte_mfn(e);
            if let Some(t) = hv.frames.get(target) {
                assert!(t.ty == PageType::None, "L1 {l1:#x}[{slot}] maps page-table frame {:#x} writable ({:?})", target.0, t.ty);
            }
        }
    }
}
