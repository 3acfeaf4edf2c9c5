//! The domain builder: Xen PV64 start of day, as Xen's toolstack (libxenguest) lays it out.
//!
//! Virtual layout from VIRT_BASE (pseudo-physical frame 0), in order: the kernel's segments, the
//! boot module (initrd) if there is one, the P2M list (`mfn_list`), start_info, the xenstore ring, the console ring, the initial page tables
//! (`pt_base`, `nr_pt_frames`), one boot-stack page; all of it mapped, rounded up to 4 MiB with at
//! least 512 KiB to spare. Page-table frames are mapped read-only, pages outside executable
//! segments are mapped NX. shared_info is a separate frame the guest maps itself.

use alloc::string::String;
use alloc::vec::Vec;

use crate::abi::{self, hypercall as hc, shinfo, StartInfo};
use crate::domain::*;
use crate::elf::{self, ElfError, KernelImage};
use crate::evtchn::{Backend, EvtchnTable, PortState};
use crate::mm::frames::{FrameTable, Owner};
use crate::mm::memory::Pod;
use crate::mm::pagetable::{PtCtx, XenSlots};
use crate::mm::paging::*;
use crate::mm::{MachineMemory, Mfn, PAGE_SIZE};
use crate::platform::{CpuState, Gate, VcpuKey};
use crate::DomId;

/// Why a domain could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    Elf(ElfError),
    /// The machine has too few free frames.
    OutOfMemory {
        need: u64,
        free: u64,
    },
    /// The domain's memory cannot hold its own bootstrap area.
    TooSmall {
        need_mib: u64,
        have_mib: u64,
    },
    Layout(String),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Elf(e) => write!(f, "{e}"),
            Self::OutOfMemory { need, free } => {
                write!(f, "out of machine memory: need {need} frames, {free} free")
            }
            Self::TooSmall { need_mib, have_mib } => {
                write!(f, "memory = {have_mib} MiB is too small for this kernel: it needs at least {need_mib} MiB")
            }
            Self::Layout(w) => write!(f, "bad kernel layout: {w}"),
        }
    }
}

fn round_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// Number of distinct aligned `size` regions touched by [start, end).
fn regions(start: u64, end: u64, size: u64) -> u64 {
    (end - 1) / size - start / size + 1
}

/// Write the hypercall page's 128 stubs for `gate`.
pub fn write_hypercall_page(page: &mut [u8], gate: Gate) {
    page.fill(0xcc);
    let gate_bytes: &[u8] = match gate {
        Gate::Syscall => &[0x0f, 0x05],
        Gate::Int3 => &[0xcc, 0x90],
    };
    for nr in 0..hc::PAGE_ENTRIES {
        let s = &mut page[nr as usize * 32..nr as usize * 32 + 32];
        let mut v: Vec<u8> = Vec::with_capacity(16);
        if nr == hc::IRET {
            v.extend_from_slice(&[0x51, 0x41, 0x53, 0x50, 0xb8]); // push rcx; push r11; push rax; mov eax,
            v.extend_from_slice(&nr.to_le_bytes());
            v.extend_from_slice(gate_bytes);
        } else {
            v.extend_from_slice(&[0x51, 0x41, 0x53, 0xb8]); // push rcx; push r11; mov eax,
            v.extend_from_slice(&nr.to_le_bytes());
            v.extend_from_slice(gate_bytes);
            v.extend_from_slice(&[0x41, 0x5b, 0x59, 0xc3]); // pop r11; pop rcx; ret
        }
        s[..v.len()].copy_from_slice(&v);
    }
}

/// Everything the builder needs from the hypervisor.
pub struct BuildEnv<'a, 'm> {
    pub frames: &'a mut FrameTable,
    pub mem: &'a mut MachineMemory<'m>,
    pub xen_slots: &'a XenSlots,
    pub m2p: Mfn,
    pub gate: Gate,
    pub now: u64,
}

struct Layout {
    img: KernelImage,
    vb: u64,
    mod_va: u64,
    p2m_va: u64,
    /// The P2M list outside the initial mapping (the kernel's INIT_P2M note), see [`P2mMap`].
    p2m_map: Option<P2mMap>,
    si_va: u64,
    store_va: u64,
    cons_va: u64,
    pt_va: u64,
    nr_pt: u64,
    stack_va: u64,
    map_end: u64,
}

/// A P2M list placed where the kernel's INIT_P2M note asks, as libxenguest does
/// (tools/libs/guest/xg_dom_core.c `xc_dom_build_image`: "Allocate p2m list if outside of
/// initial kernel mapping", after everything the initial page tables map;
/// xg_dom_x86.c `alloc_p2m_list_x86_64`: the list's frames, then the page tables that map it at
/// `p2m_base`; `start_info_x86_64`: `mfn_list = p2m_base`, `first_p2m_pfn`/`nr_p2m_frames` cover
/// both).
#[derive(Clone, Copy)]
struct P2mMap {
    /// First pfn of the list (its page tables follow it).
    pfn: u64,
    /// Frames of the list.
    list_frames: u64,
    /// Page tables mapping it (L3s, L2s and L1s).
    pt_frames: u64,
}

/// libxenguest honours INIT_P2M only below VIRT_BASE and page-aligned (`xc_dom_build_image`:
/// otherwise `p2m_base = UNSET_ADDR`, the list goes in the initial mapping). xenolith also
/// refuses (rather than building tables Xen's pin would reject) a list that is not canonical,
/// reaches into the hypervisor's range or shares a top-level (L4) slot with the kernel's mapping.
fn init_p2m(img: &KernelImage, vb: u64, list_bytes: u64) -> Result<Option<u64>, BuildError> {
    let Some(p) = img.init_p2m.filter(|&p| p < vb && p & (PAGE_SIZE - 1) == 0) else { return Ok(None) };
    let end = p.checked_add(list_bytes).filter(|&e| is_canonical(e - 1) && is_canonical(p));
    match end {
        Some(e) if !in_xen_range(p) && !in_xen_range(e - 1) && !(p..e).contains(&XEN_RANGE_START) && (e - 1) >> 39 < vb >> 39 => Ok(Some(p)),
        _ => Err(BuildError::Layout(alloc::format!(
            "INIT_P2M {p:#x}: a P2M list of {list_bytes:#x} bytes there is not canonical, reaches the hypervisor's range or shares an L4 slot with the kernel at {vb:#x}"
        ))),
    }
}

/// Start of the hypervisor's reserved virtual range (L4 slot 256).
const XEN_RANGE_START: u64 = 0xffff_8000_0000_0000;

fn layout(img: KernelImage, nr_pages: u64, module_len: u64) -> Result<Layout, BuildError> {
    let vb = img.virt_base;
    let bad = || BuildError::Layout(alloc::format!("segments {:#x}..{:#x} (virt_base {vb:#x})", img.v_start, img.v_end));
    let kstart = img.v_start & !(PAGE_SIZE - 1);
    let kend = img.v_end.checked_add(PAGE_SIZE - 1).ok_or_else(bad)? & !(PAGE_SIZE - 1);
    if kstart < vb || kend <= kstart || in_xen_range(kstart) || in_xen_range(kend - 1) || !is_canonical(kend - 1) {
        return Err(bad());
    }
    // Everything below is bounded by nr_pages (checked by the caller) and must stay canonical.
    // As libxenguest's xc_dom_build_image: the kernel, then the ramdisk, then the P2M list.
    let mod_va = kend;
    let list_bytes = round_up(nr_pages * 8, PAGE_SIZE);
    let outside = init_p2m(&img, vb, list_bytes)?;
    let after_mod = mod_va.checked_add(round_up(module_len, PAGE_SIZE)).ok_or_else(bad)?;
    let (p2m_va, si_va) = match outside {
        Some(p) => (p, after_mod),
        None => (after_mod, after_mod.checked_add(list_bytes).ok_or_else(bad)?),
    };
    let store_va = si_va.checked_add(PAGE_SIZE).ok_or_else(bad)?;
    let cons_va = store_va.checked_add(PAGE_SIZE).ok_or_else(bad)?;
    let pt_va = cons_va.checked_add(PAGE_SIZE).ok_or_else(bad)?;
    let mut nr_pt = 1;
    let map_end = loop {
        let end = pt_va.checked_add((nr_pt + 1) * PAGE_SIZE + (512 << 10) + (4 << 20) - 1).ok_or_else(bad)? / (4 << 20) * (4 << 20);
        let need = 1 + regions(vb, end, 1 << 39) + regions(vb, end, 1 << 30) + regions(vb, end, 1 << 21);
        if need <= nr_pt {
            break end;
        }
        nr_pt = need;
    };
    if !is_canonical(map_end - 1) || in_xen_range(map_end - 1) {
        return Err(bad());
    }
    let stack_va = pt_va + nr_pt * PAGE_SIZE;
    let mapped = (map_end - vb) / PAGE_SIZE;
    let p2m_map = outside.map(|p| {
        let e = p + list_bytes;
        P2mMap {
            pfn: mapped,
            list_frames: list_bytes / PAGE_SIZE,
            pt_frames: regions(p, e, 1 << 39) + regions(p, e, 1 << 30) + regions(p, e, 1 << 21),
        }
    });
    let used = mapped + p2m_map.map_or(0, |m| m.list_frames + m.pt_frames);
    if used > nr_pages {
        return Err(BuildError::TooSmall { need_mib: (used * PAGE_SIZE).div_ceil(1 << 20), have_mib: (nr_pages * PAGE_SIZE) >> 20 });
    }
    Ok(Layout { img, vb, mod_va, p2m_va, p2m_map, si_va, store_va, cons_va, pt_va, nr_pt, stack_va, map_end })
}

/// Largest domain the builder accepts (MiB).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;

/// Build domain `id` from `config`; `generation` distinguishes rebuilds.
pub fn build(env: &mut BuildEnv<'_, '_>, id: DomId, config: &DomainConfig, generation: u32) -> Result<Domain, BuildError> {
    let img = elf::parse(&config.kernel).map_err(BuildError::Elf)?;
    if config.memory_mib == 0 || config.memory_mib > MAX_MEMORY_MIB {
        return Err(BuildError::Layout(alloc::format!("memory = {} MiB: must be 1..={MAX_MEMORY_MIB}", config.memory_mib)));
    }
    if config.vcpus == 0 || config.vcpus as usize > abi::XEN_LEGACY_MAX_VCPUS {
        return Err(BuildError::Layout(alloc::format!(
            "vcpus = {}: must be 1..={} (the vcpu_info slots of shared_info)",
            config.vcpus,
            abi::XEN_LEGACY_MAX_VCPUS
        )));
    }
    let nr_pages = config.memory_mib * 256;
    let module_len = config.initrd.as_ref().map_or(0, |m| m.len() as u64);
    if module_len > nr_pages * PAGE_SIZE {
        return Err(BuildError::TooSmall { need_mib: module_len.div_ceil(1 << 20), have_mib: config.memory_mib });
    }
    let l = layout(img, nr_pages, module_len)?;
    let need = nr_pages + 1;
    if env.frames.free_frames() < need {
        return Err(BuildError::OutOfMemory { need, free: env.frames.free_frames() });
    }
    let owner = Owner::Dom(id);
    // shared_info first, so the frame after the domain's RAM is not the domain's own.
    let shared = env.frames.alloc_contig(1, owner).ok_or(BuildError::OutOfMemory { need, free: 0 })?;
    let p2m: Vec<Mfn> = match env.frames.alloc_contig(nr_pages, owner) {
        Some(base) => (0..nr_pages).map(|i| Mfn(base.0 + i)).collect(),
        None => env.frames.alloc_many(nr_pages, owner).ok_or(BuildError::OutOfMemory { need, free: env.frames.free_frames() })?,
    };
    let mem = &mut *env.mem;
    for (pfn, m) in p2m.iter().chain([&shared]).enumerate() {
        // Scrub only frames a previous owner used: machine memory starts zeroed.
        if env.frames.get(*m).is_none_or(|f| f.dirty) {
            mem.zero_frame(*m);
            env.frames.set_clean(*m);
        }
        if *m != shared {
            mem.write_u64(env.m2p.maddr().add(m.0 * 8), pfn as u64);
            if let Some(f) = env.frames.get_mut(*m) {
                f.pfn = pfn as u32;
            }
        }
    }
    mem.write_u64(env.m2p.maddr().add(shared.0 * 8), !0);

    let vb = l.vb;
    let va_maddr = |va: u64| p2m[((va - vb) / PAGE_SIZE) as usize].maddr().add(va & (PAGE_SIZE - 1));

    // Kernel segments.
    for s in &l.img.segments {
        let data = &config.kernel[s.offset as usize..(s.offset + s.filesz) as usize];
        let mut done = 0usize;
        while done < data.len() {
            // Page by page: pseudo-physically contiguous pages need not be machine-contiguous.
            let va = s.vaddr + done as u64;
            let n = ((PAGE_SIZE - (va & (PAGE_SIZE - 1))) as usize).min(data.len() - done);
            mem.write(va_maddr(va), &data[done..done + n]);
            done += n;
        }
    }
    // Boot module.
    if let Some(m) = &config.initrd {
        let mut done = 0usize;
        while done < m.len() {
            let va = l.mod_va + done as u64;
            let n = (PAGE_SIZE as usize).min(m.len() - done);
            mem.write(va_maddr(va), &m[done..done + n]);
            done += n;
        }
    }
    // P2M list: in the initial mapping, or (INIT_P2M) in the frames after it.
    for (pfn, m) in p2m.iter().enumerate() {
        let at = match l.p2m_map {
            Some(pm) => p2m[(pm.pfn + pfn as u64 / 512) as usize].maddr().add((pfn as u64 % 512) * 8),
            None => va_maddr(l.p2m_va + pfn as u64 * 8),
        };
        mem.write_u64(at, m.0);
    }
    // Hypercall page.
    if let Some(hp) = l.img.hypercall_page {
        if hp < vb || hp.checked_add(PAGE_SIZE).is_none_or(|end| end > l.map_end) || hp & (PAGE_SIZE - 1) != 0 {
            return Err(BuildError::Layout(alloc::format!("hypercall page {hp:#x} outside the image")));
        }
        let mut page = [0u8; PAGE_SIZE as usize];
        write_hypercall_page(&mut page, env.gate);
        mem.write(va_maddr(hp), &page);
    }

    // Page tables: L4 first, then tables in the order the mapping loop needs them.
    let pt_pfn0 = (l.pt_va - vb) / PAGE_SIZE;
    let mut next_pt = 1u64;
    let l4 = p2m[pt_pfn0 as usize];
    let exec = |va: u64| l.img.segments.iter().any(|s| s.executable && va + PAGE_SIZE > s.vaddr && va < s.vaddr + s.memsz);
    let mut va = vb;
    while va < l.map_end {
        let mut table = l4;
        for level in (2..=4u8).rev() {
            let ea = table.maddr().add(table_index(va, level) as u64 * 8);
            let e = mem.read_u64(ea).unwrap_or(0);
            table = if e & PTE_P != 0 {
                pte_mfn(e)
            } else {
                if next_pt >= l.nr_pt {
                    return Err(BuildError::Layout("page-table estimate too small".into()));
                }
                let t = p2m[(pt_pfn0 + next_pt) as usize];
                next_pt += 1;
                mem.write_u64(ea, t.maddr().0 | PTE_P | PTE_RW | PTE_US | PTE_A);
                t
            };
        }
        let pfn = (va - vb) / PAGE_SIZE;
        let mut e = p2m[pfn as usize].maddr().0 | PTE_P | PTE_US | PTE_A | PTE_D;
        if !(pt_pfn0..pt_pfn0 + l.nr_pt).contains(&pfn) {
            e |= PTE_RW;
        }
        if !exec(va) {
            e |= PTE_NX;
        }
        mem.write_u64(table.maddr().add(table_index(va, 1) as u64 * 8), e);
        va += PAGE_SIZE;
    }
    // INIT_P2M: map the list at its address with tables of its own (xg_dom_x86.c
    // setup_pgtables_x86_64 maps every mapping of `domx86->maps`), writable, not executable.
    if let Some(pm) = l.p2m_map {
        let mut next = pm.pfn + pm.list_frames;
        let last = next + pm.pt_frames;
        for i in 0..pm.list_frames {
            let va = l.p2m_va + i * PAGE_SIZE;
            let mut table = l4;
            for level in (2..=4u8).rev() {
                let ea = table.maddr().add(table_index(va, level) as u64 * 8);
                let e = mem.read_u64(ea).unwrap_or(0);
                table = if e & PTE_P != 0 {
                    pte_mfn(e)
                } else {
                    if next >= last {
                        return Err(BuildError::Layout("INIT_P2M page-table estimate too small".into()));
                    }
                    let t = p2m[next as usize];
                    next += 1;
                    mem.write_u64(ea, t.maddr().0 | PTE_P | PTE_RW | PTE_US | PTE_A);
                    t
                };
            }
            let e = p2m[(pm.pfn + i) as usize].maddr().0 | PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | PTE_NX;
            mem.write_u64(table.maddr().add(table_index(va, 1) as u64 * 8), e);
        }
    }
    {
        let mut pt = PtCtx { frames: env.frames, mem, dom: id, xen_slots: env.xen_slots };
        pt.pin(l4, 4).map_err(|e| BuildError::Layout(alloc::format!("initial page tables rejected: {e}")))?;
        // The vCPU's base pointer holds its own reference.
        pt.get_type(l4, 4).map_err(|e| BuildError::Layout(alloc::format!("{e}")))?;
    }

    // Frames the hypervisor itself writes by machine address (shared_info, the two rings) hold a
    // permanent writable reference, so that no page-table type can ever be taken on them: a
    // guest that could pin one as a page table would have the hypervisor write its entries.
    for f in [shared, va_maddr(l.store_va).mfn(), va_maddr(l.cons_va).mfn()] {
        if let Some(fi) = env.frames.get_mut(f) {
            fi.writable_refs += 1;
        }
    }
    let mem = &mut *env.mem;

    // Event channels for the two rings.
    let mut evtchn = EvtchnTable::new();
    let store_port = evtchn.alloc(PortState::Backend(Backend::Store)).unwrap_or(0);
    let cons_port = evtchn.alloc(PortState::Backend(Backend::Console)).unwrap_or(0);

    // start_info.
    let mut si = StartInfo::zeroed();
    si.magic[..14].copy_from_slice(b"xen-3.0-x86_64");
    si.nr_pages = nr_pages;
    si.shared_info = shared.maddr().0;
    // xen-public/xen.h: SIF_PRIVILEGED, "Is the domain privileged?" (a control domain; not
    // SIF_INITDOMAIN: it still has its console and store rings as a domU does).
    si.flags = if config.privileged { abi::SIF_PRIVILEGED } else { 0 };
    si.store_mfn = va_maddr(l.store_va).mfn().0;
    si.store_evtchn = store_port;
    si.console_mfn = va_maddr(l.cons_va).mfn().0;
    si.console_evtchn = cons_port;
    si.pt_base = l.pt_va;
    si.nr_pt_frames = l.nr_pt;
    si.mfn_list = l.p2m_va;
    if let Some(pm) = l.p2m_map {
        si.first_p2m_pfn = pm.pfn;
        si.nr_p2m_frames = pm.list_frames + pm.pt_frames;
    }
    if let Some(m) = &config.initrd {
        // A kernel with the MOD_START_PFN note takes mod_start as a PFN (xen-public/xen.h
        // SIF_MOD_START_PFN; libxenguest's xc_dom_x86 start_info setup); otherwise a virtual address.
        if l.img.mod_start_pfn {
            si.mod_start = (l.mod_va - vb) / PAGE_SIZE;
            si.flags |= abi::SIF_MOD_START_PFN;
        } else {
            si.mod_start = l.mod_va;
        }
        si.mod_len = m.len() as u64;
    }
    let cl = config.cmdline.as_bytes();
    let n = cl.len().min(1023);
    si.cmd_line[..n].copy_from_slice(&cl[..n]);
    mem.write_pod(va_maddr(l.si_va), &si);

    // shared_info: vCPU 0 starts with events masked; time at build.
    let vcpu_info0 = shared.maddr();
    mem.write_u8(vcpu_info0.add(shinfo::UPCALL_MASK), 1);

    let mut vcpus = Vec::new();
    for v in 0..config.vcpus {
        let vi = shared.maddr().add(v as u64 * shinfo::VCPU_INFO_SIZE);
        mem.write_u8(vi.add(shinfo::UPCALL_MASK), 1);
        let cpu = CpuState {
            rip: l.img.entry,
            rsp: l.stack_va + PAGE_SIZE,
            rsi: l.si_va,
            rflags: 0x202,
            cs: abi::FLAT_KERNEL_CS,
            ss: abi::FLAT_KERNEL_SS,
            cr3: l4.maddr().0,
            ..Default::default()
        };
        vcpus.push(Vcpu {
            id: v,
            key: VcpuKey { dom: id, vcpu: v, generation },
            state: if v == 0 { VcpuState::Runnable } else { VcpuState::Down },
            cpu,
            kernel_mode: true,
            trap_table: [abi::TrapInfo::default(); 256],
            callbacks: Callbacks::default(),
            kernel_ss: abi::FLAT_KERNEL_SS,
            kernel_sp: 0,
            guest_table: l4,
            guest_table_user: None,
            gs_base_kernel: 0,
            gs_base_user: 0,
            gdt_frames: Vec::new(),
            gdt_entries: 0,
            vcpu_info: vi,
            vcpu_info_registered: false,
            needs_flush: true,
            started: false,
            timer: None,
            poll: None,
            privs: crate::privop::PrivState::new(),
            op: crate::vcpu::VcpuOpState::new(v == 0, env.now),
        });
    }
    if vcpus.is_empty() {
        return Err(BuildError::Layout("a domain needs at least one vCPU".into()));
    }
    let _ = env.now;

    Ok(Domain {
        credit_changes: Vec::new(),
        id,
        config: config.clone(),
        generation,
        state: DomState::Running,
        pause_count: 0,
        vcpus,
        nr_pages,
        // xl sets max_pages to the target plus LIBXL_MAXMEM_CONSTANT (1 MiB): libxl_dom.c,
        // libxl__build_pre (xc_domain_setmaxmem(target_memkb + libxl__arch_extra_memory)).
        mem: crate::mm::DomMem { tot_pages: nr_pages, max_pages: nr_pages + 256, ..Default::default() },
        shared_info: shared,
        start_info_va: l.si_va,
        virt_base: vb,
        hypercall_page: l.img.hypercall_page,
        console: ConsoleState { ring: va_maddr(l.cons_va).mfn(), port: cons_port, ..Default::default() },
        store_ring: va_maddr(l.store_va).mfn(),
        store_port,
        evtchn,
        grant: crate::grant::GrantTable::new(),
        vm_assist: 0,
        shutdown_code: None,
        last_shutdown: None,
        p2m,
    })
}
