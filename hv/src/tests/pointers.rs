//! Guest pointers the hypervisor must refuse (-EFAULT), unknown hypercalls (-ENOSYS) and
//! multicall batches.

use super::{nr, World, EFAULT, EINVAL, ENOSYS};
use crate::abi::{MulticallEntry, HYPERVISOR_VIRT_START, RO_MPT_VIRT_START};
use crate::mm::PAGE_SIZE;

#[test]
fn console_io_with_bad_pointers_is_efault() {
    let mut w = World::new();
    let d = w.create("ptr");
    let unmapped = w.hv.doms[&d].virt_base + 64 * 1024 * 1024;
    assert!(w.walk(d, unmapped).is_none());
    let last_mapped = w.hv.doms[&d].virt_base + 4 * 1024 * 1024 - 4;
    for (what, ptr, len) in [
        ("NULL", 0u64, 8u64),
        ("hypervisor range", 0xFFFF_8300_0000_0000, 8),
        ("the M2P (mapped, but Xen's)", RO_MPT_VIRT_START, 8),
        ("unmapped", unmapped, 8),
        ("non-canonical", 0x0000_8000_0000_0000, 8),
        ("runs off the mapping", last_mapped, 16),
        ("wraps around", u64::MAX - 3, 16),
    ] {
        assert_eq!(w.hypercall(d, nr::CONSOLE_IO, [0, len, ptr, 0, 0]), EFAULT, "{what}");
    }
    w.assert_trace(&["d1v0 console_io(write, 8 bytes) = -EFAULT"]);
    // Nothing reached the console, and the domain is alive and well.
    assert!(w.hv.platform.console.is_empty());
    assert_eq!(w.console_write(d, "still here\n"), 0);
}

#[test]
fn unknown_hypercalls_are_enosys() {
    let mut w = World::new();
    let d = w.create("nosys");
    for n in [11u64, 31, 38, 39, 63, 64, 1000, u64::MAX] {
        assert_eq!(w.hypercall(d, n, [1, 2, 3, 4, 5]), ENOSYS, "hypercall {n}");
    }
    w.assert_trace(&["d1v0 hypercall63(0x1, 0x2) = -ENOSYS"]);
    // Hypercall 6 is the legacy sched_op: command 1 (block) is known, 7 is not.
    assert_eq!(w.hypercall(d, 6, [7, 0, 0, 0, 0]), ENOSYS);
    w.assert_trace(&["d1v0 sched_op_compat(7) = -ENOSYS"]);
    w.assert_trace(&["d1v0 hypercall1000(", "= -ENOSYS"]);
    // Unknown sub-ops too.
    assert_eq!(w.hypercall(d, nr::CONSOLE_IO, [7, 0, 0, 0, 0]), ENOSYS);
    assert_eq!(w.hypercall(d, nr::SCHED_OP, [99, 0, 0, 0, 0]), ENOSYS);
    assert_eq!(w.hypercall(d, nr::EVENT_CHANNEL_OP, [99, 0, 0, 0, 0]), ENOSYS);
    assert_eq!(w.hv.hypercalls, 12);
}

fn entry(op: u64, args: [u64; 6]) -> MulticallEntry {
    MulticallEntry { op, result: 0xdead_beef, args }
}

#[test]
fn multicall_writes_results_back() {
    let mut w = World::new();
    let d = w.create("mc");
    let list = w.scratch(d, 5);
    let msg = w.scratch(d, 6);
    w.write(d, msg, b"batched\n");
    let entries = [
        entry(nr::XEN_VERSION, [0; 6]),
        entry(nr::CONSOLE_IO, [0, 8, msg, 0, 0, 0]),
        entry(nr::CONSOLE_IO, [0, 8, 0, 0, 0, 0]),
        entry(200, [0; 6]),
        entry(nr::MULTICALL, [list, 1, 0, 0, 0, 0]),
    ];
    for (i, e) in entries.iter().enumerate() {
        w.write_pod(d, list + i as u64 * 64, e);
    }
    assert_eq!(w.hypercall(d, nr::MULTICALL, [list, entries.len() as u64, 0, 0, 0]), 0);
    let results: Vec<i64> = (0..entries.len()).map(|i| w.read_pod::<MulticallEntry>(d, list + i as u64 * 64).result as i64).collect();
    assert_eq!(results, vec![(4 << 16) | 17, 0, EFAULT, ENOSYS, EINVAL]);
    assert_eq!(w.hv.record("mc").unwrap().console, vec!["batched".to_string()]);
    w.assert_trace(&["d1v0 multicall(5 calls) = 0"]);
    w.assert_trace(&["d1v0   console_io(write, 8 bytes) = -EFAULT"]);
}

#[test]
fn multicall_with_a_bad_list_is_efault() {
    let mut w = World::new();
    let d = w.create("mcbad");
    assert_eq!(w.hypercall(d, nr::MULTICALL, [0, 1, 0, 0, 0]), EFAULT);
    assert_eq!(w.hypercall(d, nr::MULTICALL, [HYPERVISOR_VIRT_START, 2, 0, 0, 0]), EFAULT);
    // A list whose first entry is fine but whose second runs off the mapping: nothing runs.
    let end = w.hv.doms[&d].virt_base + 4 * 1024 * 1024 - 64;
    let msg = w.scratch(d, 6);
    w.write(d, msg, b"must not print\n");
    w.write_pod(d, end, &entry(nr::CONSOLE_IO, [0, 15, msg, 0, 0, 0]));
    assert_eq!(w.hypercall(d, nr::MULTICALL, [end, 2, 0, 0, 0]), EFAULT);
    assert!(w.hv.record("mcbad").unwrap().console.is_empty(), "the batch was validated first");
    // Too many entries.
    assert_eq!(w.hypercall(d, nr::MULTICALL, [msg, 1 << 20, 0, 0, 0]), EINVAL);
}

/// A list that can be read but not written back (a read-only page: here the L4 itself, whose
/// slot 0 decodes as `set_trap_table(0)`): the call fails with -EFAULT. The multicall's own
/// trace line must still be the top-level one (not indented as if nested) and keep the inner
/// call's line.
#[test]
fn multicall_on_a_read_only_list_keeps_the_trace_straight() {
    let mut w = World::new();
    let d = w.create("mcro");
    let si = w.start_info(d);
    assert!(!w.walk(d, si.pt_base).unwrap().writable);
    assert_eq!(w.hypercall(d, nr::MULTICALL, [si.pt_base, 1, 0, 0, 0]), EFAULT);
    w.assert_trace(&["d1v0 multicall(1 calls) = -EFAULT"]);
    w.assert_trace(&["d1v0   set_trap_table(clear) = 0"]);
}

#[test]
fn hypercall_arguments_spanning_pages() {
    let mut w = World::new();
    let d = w.create("span");
    let buf = w.scratch(d, 7) + PAGE_SIZE - 3;
    w.write(d, buf, b"split\n");
    assert_eq!(w.hypercall(d, nr::CONSOLE_IO, [0, 6, buf, 0, 0]), 0);
    assert_eq!(w.hv.record("span").unwrap().console, vec!["split".to_string()]);
}
