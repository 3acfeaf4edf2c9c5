//! Grant tables: the per-domain state behind `grant_table_op` (Xen's `common/grant_table.c`).
//!
//! Owns: a domain's grant table version, its shared grant frames and (v2) status frames, the
//! active entries (grants of this domain that some domain has pinned, with their pin counts) and
//! the maptrack (this domain's own grant mappings of other domains' grants, by handle). The
//! hypercall handler (`hypercall::grant`) does the checks; this module keeps the state and the
//! byte layout of the shared entries in guest-visible frames.
//!
//! Every frame the hypervisor allocates for a grant table is owned by the domain (so that it can
//! map it with `update_va_mapping`, as PV guests do) and holds a permanent writable reference,
//! like shared_info: it can never become a page table.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::abi::hypercall::gnttab as g;
use crate::abi::{GrantEntryV1, GrantEntryV2};
use crate::mm::frames::{FrameTable, Owner};
use crate::mm::{MachineMemory, Maddr, Mfn, PAGE_SIZE};
use crate::DomId;

/// Xen's default `max_grant_frames` for a domU created by xl (`opt_max_grant_frames`).
pub const MAX_GRANT_FRAMES: u32 = 64;
/// Xen's `INITIAL_NR_GRANT_FRAMES`: a table always has at least this many frames.
pub const INITIAL_GRANT_FRAMES: u32 = 1;
/// Xen's default `max_maptrack_frames` (1024) times the handles per maptrack frame (256).
pub const MAX_MAPTRACK: usize = 1024 * 256;
/// Each of Xen's pin counters (`GNTPIN_cntr_width`) is 8 bits wide.
pub const PIN_MAX: u8 = u8::MAX;

/// One active grant: a grant of this domain that `domid` has pinned (Xen's
/// `active_grant_entry`). Pin counts are Xen's four 8-bit counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Active {
    pub domid: DomId,
    pub mfn: Mfn,
    /// Host writable / host read-only / device writable / device read-only pins.
    pub hstw: u8,
    pub hstr: u8,
    pub devw: u8,
    pub devr: u8,
    /// The window a copy may touch (a v2 sub-page grant), in bytes.
    pub start: u16,
    pub length: u16,
    pub sub_page: bool,
}

impl Active {
    pub fn pinned(&self) -> bool {
        self.hstw | self.hstr | self.devw | self.devr != 0
    }
    pub fn writable(&self) -> bool {
        self.hstw | self.devw != 0
    }
}

/// One grant mapping this domain holds (Xen's `grant_mapping`): handle = index.
#[derive(Clone, Copy, Debug)]
pub struct MapTrack {
    /// The granting domain and its grant reference.
    pub dom: DomId,
    pub gref: u32,
    /// `GNTMAP_*` flags still mapped (host_map / device_map, and readonly / contains_pte).
    pub flags: u32,
    pub mfn: Mfn,
}

/// A domain's grant table.
#[derive(Debug)]
pub struct GrantTable {
    /// 1 or 2.
    pub version: u32,
    /// Shared grant frames (grown on demand, never shrunk).
    pub shared: Vec<Mfn>,
    /// v2 status frames.
    pub status: Vec<Mfn>,
    pub max_frames: u32,
    /// Pinned entries of this table, by grant reference.
    pub active: BTreeMap<u32, Active>,
    /// This domain's grant mappings, by handle.
    pub maptrack: Vec<Option<MapTrack>>,
}

impl Default for GrantTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Status frames needed for `frames` grant frames in v2 (Xen's `grant_to_status_frames`).
pub fn status_frames_for(frames: u32) -> u32 {
    // 256 v2 entries per frame, 2 bytes of status each: 8 grant frames per status frame.
    frames.div_ceil(8)
}

impl GrantTable {
    pub fn new() -> Self {
        Self {
            version: 1,
            shared: Vec::new(),
            status: Vec::new(),
            max_frames: MAX_GRANT_FRAMES,
            active: BTreeMap::new(),
            maptrack: Vec::new(),
        }
    }

    /// Frames of the table as the guest sees it (at least Xen's initial one).
    pub fn nr_frames(&self) -> u32 {
        (self.shared.len() as u32).max(INITIAL_GRANT_FRAMES)
    }

    /// Grant entries addressable with the current version (Xen's `nr_grant_entries`).
    pub fn nr_entries(&self) -> u32 {
        let per = if self.version == 2 { PAGE_SIZE as u32 / 16 } else { PAGE_SIZE as u32 / 8 };
        self.nr_frames() * per
    }

    /// Allocate a frame for the table: owned by `dom`, zeroed, never a page table.
    fn alloc_frame(frames: &mut FrameTable, mem: &mut MachineMemory<'_>, dom: DomId) -> Option<Mfn> {
        let m = frames.alloc_contig(1, Owner::Dom(dom))?;
        mem.zero_frame(m)?;
        frames.set_clean(m);
        if let Some(f) = frames.get_mut(m) {
            f.writable_refs += 1;
        }
        Some(m)
    }

    /// Grow the table to `want` frames (at least the initial one), with status frames in v2
    /// (Xen's `gnttab_grow_table`). False when out of memory (nothing changes then).
    pub fn grow(&mut self, frames: &mut FrameTable, mem: &mut MachineMemory<'_>, dom: DomId, want: u32) -> bool {
        let want = want.max(INITIAL_GRANT_FRAMES).min(self.max_frames);
        let have = self.shared.len() as u32;
        let want_status = if self.version == 2 { status_frames_for(want) } else { 0 };
        let new_shared = want.saturating_sub(have) as u64;
        let new_status = want_status.saturating_sub(self.status.len() as u32) as u64;
        if new_shared + new_status > frames.free_frames() {
            return false;
        }
        for _ in 0..new_shared {
            match Self::alloc_frame(frames, mem, dom) {
                Some(m) => self.shared.push(m),
                None => return false,
            }
        }
        for _ in 0..new_status {
            match Self::alloc_frame(frames, mem, dom) {
                Some(m) => self.status.push(m),
                None => return false,
            }
        }
        true
    }

    /// Make sure the initial frame exists.
    pub fn ensure(&mut self, frames: &mut FrameTable, mem: &mut MachineMemory<'_>, dom: DomId) -> bool {
        self.shared.len() as u32 >= INITIAL_GRANT_FRAMES || self.grow(frames, mem, dom, INITIAL_GRANT_FRAMES)
    }

    /// Where entry `gref`'s header (flags, domid) lives.
    pub fn entry_addr(&self, gref: u32) -> Option<Maddr> {
        let size = if self.version == 2 { 16u64 } else { 8 };
        let per = PAGE_SIZE / size;
        let frame = self.shared.get((gref as u64 / per) as usize)?;
        Some(frame.maddr().add((gref as u64 % per) * size))
    }

    /// Where entry `gref`'s status flags live: the entry's own flags in v1, the status frame in v2.
    pub fn status_addr(&self, gref: u32) -> Option<Maddr> {
        if self.version == 2 {
            let per = PAGE_SIZE / 2;
            let frame = self.status.get((gref as u64 / per) as usize)?;
            Some(frame.maddr().add((gref as u64 % per) * 2))
        } else {
            self.entry_addr(gref)
        }
    }

    pub fn read_v1(&self, mem: &MachineMemory<'_>, gref: u32) -> Option<GrantEntryV1> {
        mem.read_pod(self.entry_addr(gref)?)
    }

    pub fn read_v2(&self, mem: &MachineMemory<'_>, gref: u32) -> Option<GrantEntryV2> {
        mem.read_pod(self.entry_addr(gref)?)
    }

    pub fn status(&self, mem: &MachineMemory<'_>, gref: u32) -> u16 {
        self.status_addr(gref).and_then(|a| mem.read_pod::<u16>(a)).unwrap_or(0)
    }

    pub fn set_status_bits(&self, mem: &mut MachineMemory<'_>, gref: u32, set: u16, clear: u16) {
        if let Some(a) = self.status_addr(gref) {
            let v = mem.read_pod::<u16>(a).unwrap_or(0);
            mem.write_pod(a, &((v | set) & !clear));
        }
    }

    /// Drop GTF_reading / GTF_writing as the pins of `gref` no longer need them (Xen's
    /// `reduce_status_for_pin`).
    pub fn reduce_status(&self, mem: &mut MachineMemory<'_>, gref: u32) {
        let a = self.active.get(&gref).copied().unwrap_or_default();
        let mut clear = 0;
        if !a.pinned() {
            clear |= g::GTF_READING;
        }
        if !a.writable() {
            clear |= g::GTF_WRITING;
        }
        if clear != 0 {
            self.set_status_bits(mem, gref, 0, clear);
        }
    }

    /// A free maptrack handle (the lowest), or None when the maptrack is full.
    pub fn new_handle(&mut self) -> Option<u32> {
        if let Some(i) = self.maptrack.iter().position(|m| m.is_none()) {
            return Some(i as u32);
        }
        if self.maptrack.len() >= MAX_MAPTRACK {
            return None;
        }
        self.maptrack.push(None);
        Some(self.maptrack.len() as u32 - 1)
    }

    /// Any entry beyond the reserved ones in use (Xen refuses a version change then)?
    pub fn busy_beyond_reserved(&self) -> bool {
        self.active.range(g::NR_RESERVED_ENTRIES..).any(|(_, a)| a.pinned())
    }

    /// Zero every shared frame (a version change leaves no crud).
    pub fn clear_shared(&self, mem: &mut MachineMemory<'_>) {
        for m in &self.shared {
            mem.zero_frame(*m);
        }
    }
}
