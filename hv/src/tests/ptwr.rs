//! Writable page tables (Xen's pv/ro-page-fault.c): a kernel's write through a read-only mapping
//! of its own L1 table, emulated and validated like mmu_update.

use super::image::ENTRY;
use super::World;
use crate::abi::hypercall::{vm_assist as vma, VM_ASSIST};
use crate::mm::paging::{PTE_A, PTE_NX, PTE_P, PTE_RW, PTE_US};
use crate::mm::{Maddr, Mfn};
use crate::platform::Exit;
use crate::traps::pf;
use crate::DomId;

const PF_HANDLER: u64 = ENTRY + 0x300;
const DB_HANDLER: u64 = ENTRY + 0x380;
const RW: u64 = PTE_P | PTE_RW | PTE_US | PTE_A;
const RO: u64 = PTE_P | PTE_US | PTE_A;
/// What the hardware reports for a PV kernel's write to a read-only page (it runs in ring 3).
const EC: u32 = pf::PRESENT | pf::WRITE | pf::USER;

fn pte(m: Mfn, flags: u64) -> u64 {
    m.maddr().0 | flags
}

struct Bench {
    w: World,
    d: DomId,
    /// The scratch VA whose entry the tests rewrite, and the frame it maps at first.
    va: u64,
    own: Mfn,
    /// The machine address of that entry, and the VA of it through the read-only window.
    entry: Maddr,
    pte_va: u64,
    rip: u64,
}

/// A domain with writable page tables on, its L1 mapped read-only, about to run `code` with
/// rbx pointing at the entry of scratch page 0.
fn bench(code: &[u8]) -> Bench {
    let mut w = World::new();
    let d = w.create("ptwr");
    assert_eq!(w.set_traps(d, &[(14, 0, PF_HANDLER), (1, 0, DB_HANDLER)]), 0);
    assert_eq!(w.hypercall(d, VM_ASSIST as u64, [vma::CMD_ENABLE, vma::TYPE_WRITABLE_PAGETABLES, 0, 0, 0]), 0);
    let va = w.scratch(d, 0);
    let own = w.mfn_of(d, va);
    let entry = w.l1e(d, va);
    let window = w.scratch(d, 1);
    assert_eq!(w.update_va_mapping(d, window, pte(entry.mfn(), RO)), 0, "an L1 may be mapped read-only");
    let pte_va = window + (entry.0 & 0xfff);
    let rip = w.scratch(d, 20);
    w.write(d, rip, code);
    let sp = w.scratch(d, 30) + 0x800;
    let c = w.cpu_mut(d);
    c.rip = rip;
    c.rbx = pte_va;
    c.rsp = sp;
    Bench { w, d, va, own, entry, pte_va, rip }
}

impl Bench {
    fn fault_at(&mut self, cr2: u64, ec: u32) {
        self.w.exit(self.d, Exit::Exception { vector: 14, error_code: Some(ec), cr2 });
    }
    fn fault(&mut self) {
        self.fault_at(self.pte_va, EC);
    }
    fn entry(&mut self) -> u64 {
        self.w.mread_u64(self.entry)
    }
    fn refs(&self, m: Mfn) -> (u32, u32) {
        let f = self.w.hv.frames.get(m).unwrap();
        (f.writable_refs, f.map_refs)
    }
    #[track_caller]
    fn bounced(&mut self) {
        assert_eq!(self.w.cpu(self.d).rip, PF_HANDLER, "the #PF goes to the guest");
    }
}

#[test]
fn xchg_clears_an_entry_and_drops_its_references() {
    let mut b = bench(&[0x48, 0x87, 0x13]); // xchg %rdx,(%rbx)
    let old = b.entry();
    assert_eq!(old & RW, RW);
    let before = b.refs(b.own);
    b.w.cpu_mut(b.d).rdx = 0;
    b.fault();
    assert_eq!(b.w.cpu(b.d).rip, b.rip + 3);
    assert_eq!(b.w.cpu(b.d).rdx, old, "xchg returns the old entry");
    assert_eq!(b.entry(), 0);
    assert_eq!(b.refs(b.own), (before.0 - 1, before.1 - 1), "the old mapping's references are dropped");
    assert!(b.w.walk(b.d, b.va).is_none());
    b.w.assert_trace(&["d1v0 ptwr xchg [", "pfn 0x", "-> 0x0 = ok"]);
    assert!(b.w.hv.platform.flushes.len() > 0);
}

#[test]
fn mov_register_and_immediate() {
    // mov %rcx,(%rbx); movq $0,(%rbx)
    let mut b = bench(&[0x48, 0x89, 0x0b, 0x48, 0xc7, 0x03, 0, 0, 0, 0]);
    let other = b.w.mfn_of(b.d, b.w.scratch(b.d, 2));
    let before = b.refs(other);
    b.w.cpu_mut(b.d).rcx = pte(other, RO);
    b.fault();
    assert_eq!(b.w.cpu(b.d).rip, b.rip + 3);
    assert_eq!(b.w.mfn_of(b.d, b.va), other);
    assert!(!b.w.walk(b.d, b.va).unwrap().writable);
    assert_eq!(b.refs(other), (before.0, before.1 + 1));
    b.w.assert_trace(&["d1v0 ptwr mov ["]);
    b.fault();
    assert_eq!(b.w.cpu(b.d).rip, b.rip + 10);
    assert_eq!(b.entry(), 0);
    assert_eq!(b.refs(other), before);
}

#[test]
fn cmpxchg_success_and_failure() {
    // lock cmpxchg %rcx,(%rbx), twice
    let mut b = bench(&[0xf0, 0x48, 0x0f, 0xb1, 0x0b, 0xf0, 0x48, 0x0f, 0xb1, 0x0b]);
    let old = b.entry();
    let new = old & !PTE_RW;
    b.w.cpu_mut(b.d).rax = old;
    b.w.cpu_mut(b.d).rcx = new;
    b.fault();
    assert_eq!(b.w.cpu(b.d).rip, b.rip + 5);
    assert_eq!(b.entry(), new);
    assert_ne!(b.w.cpu(b.d).rflags & (1 << 6), 0, "ZF on success");
    // Now rax (the old value) no longer matches: no store, rax gets the entry, ZF clear.
    b.w.cpu_mut(b.d).rcx = 0;
    b.fault();
    assert_eq!(b.w.cpu(b.d).rip, b.rip + 10);
    assert_eq!(b.entry(), new);
    assert_eq!(b.w.cpu(b.d).rax, new);
    assert_eq!(b.w.cpu(b.d).rflags & (1 << 6), 0);
    b.w.assert_trace(&["d1v0 ptwr cmpxchg [", "compare failed, no write"]);
}

#[test]
fn cmpxchg8b_works_and_cmpxchg16b_is_refused() {
    // lock cmpxchg8b (%rdi); lock cmpxchg16b (%rdi)
    let mut b = bench(&[0xf0, 0x0f, 0xc7, 0x0f, 0xf0, 0x48, 0x0f, 0xc7, 0x0f]);
    let old = b.entry();
    let new = old | PTE_NX;
    let c = b.w.cpu_mut(b.d);
    c.rdi = c.rbx;
    (c.rax, c.rdx, c.rbx, c.rcx) = (old & 0xffff_ffff, old >> 32, new & 0xffff_ffff, new >> 32);
    b.fault();
    assert_eq!(b.w.cpu(b.d).rip, b.rip + 4);
    assert_eq!(b.entry(), new);
    b.fault();
    b.bounced();
    assert_eq!(b.entry(), new);
    b.w.assert_trace(&["d1v0 ptwr at ", "16-byte access", "#PF to the guest"]);
}

#[test]
fn btr_bts_and_or_on_entries() {
    let code = [
        0xf0, 0x48, 0x0f, 0xba, 0x33, 0x01, // lock btrq $1,(%rbx)
        0xf0, 0x48, 0x0f, 0xab, 0x0b, // lock bts %rcx,(%rbx)
        0xf0, 0x80, 0x23, 0xfd, // lock andb $0xfd,(%rbx)
        0x48, 0x09, 0x0b, // or %rcx,(%rbx)
    ];
    let mut b = bench(&code);
    let old = b.entry();
    let before = b.refs(b.own);
    b.fault();
    assert_eq!(b.entry(), old & !PTE_RW);
    assert_ne!(b.w.cpu(b.d).rflags & 1, 0, "CF: the bit was set");
    assert_eq!(b.refs(b.own).0, before.0 - 1, "no longer a writable mapping");
    b.w.cpu_mut(b.d).rcx = 1;
    b.fault();
    assert_eq!(b.entry(), old);
    assert_eq!(b.w.cpu(b.d).rflags & 1, 0, "CF: the bit was clear");
    assert_eq!(b.refs(b.own), before);
    b.fault();
    assert_eq!(b.entry(), old & !PTE_RW, "a one-byte write is merged into the entry");
    b.w.cpu_mut(b.d).rcx = PTE_RW;
    b.fault();
    assert_eq!(b.entry(), old);
    assert_eq!(b.w.cpu(b.d).rip, b.rip + code.len() as u64);
    b.w.assert_trace(&["d1v0 ptwr btr ["]);
    b.w.assert_trace(&["d1v0 ptwr and ["]);
}

#[test]
fn a_four_byte_write_merges_with_the_entry() {
    let mut b = bench(&[0x89, 0x4b, 0x04]); // mov %ecx,4(%rbx)
    let old = b.entry();
    b.w.cpu_mut(b.d).rcx = (old >> 32) as u32 as u64 | 0x8000_0000;
    b.fault_at(b.pte_va + 4, EC);
    assert_eq!(b.w.cpu(b.d).rip, b.rip + 3);
    assert_eq!(b.entry(), old | PTE_NX);
}

#[test]
fn a_refused_entry_bounces_the_fault() {
    let mut b = bench(&[0x48, 0x89, 0x0b]); // mov %rcx,(%rbx)
    let d2 = b.w.create("victim");
    let victim = b.w.hv.doms[&d2].p2m[100];
    let old = b.entry();
    b.w.cpu_mut(b.d).rcx = pte(victim, RO);
    b.fault();
    b.bounced();
    assert_eq!(b.entry(), old);
    b.w.assert_trace(&["d1v0 ptwr mov [", &format!("= -{}", crate::abi::Errno::EBUSY.name()), "#PF to the guest"]);
    // A writable mapping of a page table (the L1 itself) is refused too.
    b.w.cpu_mut(b.d).rip = b.rip;
    b.w.cpu_mut(b.d).rcx = pte(b.entry.mfn(), RW);
    b.fault();
    b.bounced();
    assert_eq!(b.entry(), old);
    assert_eq!(b.refs(b.entry.mfn()).0, 0);
}

#[test]
fn higher_level_tables_are_not_emulated() {
    let mut b = bench(&[0x48, 0x89, 0x0b]);
    let l4 = b.w.hv.doms[&b.d].vcpus[0].guest_table;
    let window = b.w.scratch(b.d, 3);
    assert_eq!(b.w.update_va_mapping(b.d, window, pte(l4, RO)), 0);
    let e0 = b.w.read_u64(b.d, window);
    b.w.cpu_mut(b.d).rbx = window;
    b.w.cpu_mut(b.d).rcx = 0;
    b.fault_at(window, EC);
    b.bounced();
    assert_eq!(b.w.read_u64(b.d, window), e0);
    assert!(b.w.trace_lines(&["v0 ptwr"]).is_empty(), "not an L1: no ptwr at all");
}

#[test]
fn user_mode_misaligned_and_no_vm_assist_are_bounced() {
    // User mode: Xen emulates for guest kernel mode only.
    let mut b = bench(&[0x48, 0x89, 0x0b]);
    let old = b.entry();
    let ksp = b.w.scratch(b.d, 31) + 0x800;
    let v = &mut b.w.hv.doms.get_mut(&b.d).unwrap().vcpus[0];
    v.kernel_mode = false;
    v.kernel_sp = ksp;
    b.w.cpu_mut(b.d).rcx = 0;
    b.fault();
    b.bounced();
    assert_eq!(b.entry(), old);
    assert!(b.w.trace_lines(&["v0 ptwr"]).is_empty());

    // Misaligned: mov %rcx,1(%rbx).
    let mut b = bench(&[0x48, 0x89, 0x4b, 0x01]);
    let old = b.entry();
    b.fault_at(b.pte_va + 1, EC);
    b.bounced();
    assert_eq!(b.entry(), old);
    b.w.assert_trace(&["d1v0 ptwr at ", "8-byte access at", "#PF to the guest"]);

    // A not-present fault, or a read, is not ptwr's.
    let mut b = bench(&[0x48, 0x89, 0x0b]);
    b.fault_at(b.pte_va, pf::WRITE | pf::USER);
    b.bounced();
    assert!(b.w.trace_lines(&["v0 ptwr"]).is_empty());

    // Without VMASST_TYPE_writable_pagetables.
    let mut b = bench(&[0x48, 0x89, 0x0b]);
    let old = b.entry();
    assert_eq!(b.w.hypercall(b.d, VM_ASSIST as u64, [vma::CMD_DISABLE, vma::TYPE_WRITABLE_PAGETABLES, 0, 0, 0]), 0);
    b.w.cpu_mut(b.d).rcx = 0;
    b.fault();
    b.bounced();
    assert_eq!(b.entry(), old);
}

#[test]
fn an_unemulated_form_is_refused() {
    let mut b = bench(&[0x48, 0x01, 0x0b]); // add %rcx,(%rbx)
    let old = b.entry();
    b.fault();
    b.bounced();
    assert_eq!(b.entry(), old);
    b.w.assert_trace(&["d1v0 ptwr at ", "is not an emulated form"]);
}

#[test]
fn single_step_traps_after_the_emulated_write() {
    let mut b = bench(&[0x48, 0x87, 0x13]); // xchg %rdx,(%rbx)
    b.w.cpu_mut(b.d).rflags |= 1 << 8;
    b.w.cpu_mut(b.d).rdx = 0;
    b.fault();
    assert_eq!(b.entry(), 0);
    assert_eq!(b.w.cpu(b.d).rip, DB_HANDLER);
}
