//! The PVH boot protocol's `hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h).

/// Direct-map base: machine address `a` is at `DIRECTMAP + a`.
pub const DIRECTMAP: u64 = 0xFFFF_8300_0000_0000;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StartInfo {
    pub magic: u32,
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub modlist_paddr: u64,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<StartInfo>() == 56);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Module {
    pub paddr: u64,
    pub size: u64,
    pub cmdline_paddr: u64,
    pub reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub ty: u32,
    pub reserved: u32,
}

pub const MAGIC: u32 = 0x336e_c578;

/// What the image needs from the boot information.
pub struct BootInfo {
    pub cmdline: &'static [u8],
    /// First module (the boot pack): machine address and size.
    pub module: Option<(u64, u64)>,
    /// End of usable RAM (from the memory map).
    pub ram_top: u64,
}

/// # Safety
/// `pa` must be a physical address inside the direct map.
unsafe fn at<T: Copy>(pa: u64) -> T {
    // SAFETY: per the contract; the direct map covers the first GiB.
    unsafe { core::ptr::read_unaligned((DIRECTMAP + pa) as *const T) }
}

/// NUL-terminated string at a physical address.
///
/// # Safety
/// As for [`at`].
unsafe fn cstr(pa: u64) -> &'static [u8] {
    if pa == 0 {
        return &[];
    }
    let p = (DIRECTMAP + pa) as *const u8;
    let mut n = 0;
    // SAFETY: the boot loader's strings are NUL-terminated; bounded at 4 KiB.
    while n < 4096 && unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: the `n` bytes just scanned are readable and never written later.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// Parse the start info QEMU passed in `ebx`.
///
/// # Safety
/// `pa` is the address the PVH loader passed; everything it points to is in the first GiB.
pub unsafe fn parse(pa: u64) -> Option<BootInfo> {
    // SAFETY: per the contract.
    let si: StartInfo = unsafe { at(pa) };
    if si.magic != MAGIC {
        return None;
    }
    // SAFETY: per the contract.
    let cmdline = unsafe { cstr(si.cmdline_paddr) };
    let module = if si.nr_modules > 0 && si.modlist_paddr != 0 {
        // SAFETY: per the contract.
        let m: Module = unsafe { at(si.modlist_paddr) };
        Some((m.paddr, m.size))
    } else {
        None
    };
    let mut ram_top = 0;
    if si.version >= 1 {
        for i in 0..si.memmap_entries.min(128) as u64 {
            // SAFETY: per the contract.
            let e: MemmapEntry = unsafe { at(si.memmap_paddr + i * 24) };
            if e.ty == 1 {
                ram_top = ram_top.max(e.addr + e.size);
            }
        }
    }
    Some(BootInfo { cmdline, module, ram_top })
}
