//! Work-around for unicorn issue 1883 and access to the exception details unicorn keeps but
//! does not expose.
//!
//! QEMU's `CPUX86State` records the exception in flight (`old_exception`), the error code and
//! whether it came from `int n` (`exception_is_int`). Unicorn never clears `old_exception` after
//! it hands an exception to the interrupt hook, so the second fault is reported as a double
//! fault and the third stops emulation silently. These fields are part of the CPU context that
//! `uc_context_save` copies. We find their offset once per process by calibration (a known
//! `int $0x41`, then a known #DE), then after every exception exit read the error code and
//! `exception_is_int` and write `old_exception = -1` back through a context restore.
//!
//! Also [`new_instance`], which every unicorn instance of the simulator comes from: it gives the
//! instance a small translation buffer (unicorn's default reserves 1 GiB of address space per
//! instance) and checks that the host has room for it first, since unicorn ends the process when
//! it cannot allocate one.

use std::sync::OnceLock;

use unicorn_engine::unicorn_const::uc_error;
use unicorn_engine::{uc_context, uc_context_alloc, uc_context_free, uc_context_restore, uc_context_save, uc_context_size};
use unicorn_engine::{Arch, Mode, Prot, RegisterX86, Unicorn};

/// The translation (TCG) buffer of every instance. Unicorn's default is 1 GiB of virtual memory
/// per instance, all of it reserved up front. 8 MiB held the test guests' code many times over
/// but not a Linux boot's: it filled, unicorn flushed every translation and translated again
/// (the boot took 19 s of CPU instead of 15.5 s). Pages of the buffer cost memory only once
/// code is translated into them.
pub const TCG_BUFFER_BYTES: u32 = 64 << 20;

/// Address space an instance needs, with a margin: its translation buffer, its TLB and QEMU's
/// other structures come to about the buffer and 1 MiB more of virtual memory (measured with
/// unicorn 2.1.5).
pub const INSTANCE_ADDRESS_SPACE: usize = 96 << 20;

/// `UC_CTL_WRITE(UC_CTL_TCG_BUFFER_SIZE, 1)` (unicorn.h; the Rust crate has no wrapper for it).
const CTL_WRITE_TCG_BUFFER_SIZE: u32 = 13 | (1 << 26) | (1 << 30);

/// A new x86-64 unicorn instance with a [`TCG_BUFFER_BYTES`] translation buffer.
///
/// Unicorn initialises its engine on the first call that needs it and allocates the translation
/// buffer then, so the size is set right after `uc_open`. When that allocation fails unicorn
/// prints "Could not allocate dynamic translator buffer" and calls `exit(1)`; so first this
/// reserves (and gives back) [`INSTANCE_ADDRESS_SPACE`] of address space, and reports an error
/// instead when the host (e.g. an address-space limit) cannot give it.
pub fn new_instance<'a, D>(data: D) -> Result<Unicorn<'a, D>, String> {
    let mut probe: Vec<u8> = Vec::new();
    if probe.try_reserve_exact(INSTANCE_ADDRESS_SPACE).is_err() {
        return Err(format!(
            "the host cannot give a unicorn instance its {} MiB of address space (is an address-space limit, ulimit -v, set?)",
            INSTANCE_ADDRESS_SPACE >> 20
        ));
    }
    drop(probe);
    let uc = Unicorn::new_with_data(Arch::X86, Mode::MODE_64, data).map_err(|e| format!("unicorn: {e:?}"))?;
    // SAFETY: a valid handle; this control takes one uint32_t argument (unicorn.h) and is only
    // stored until the engine initialises, which no call before this one has triggered.
    let err = unsafe { unicorn_engine::uc_ctl(uc.get_handle(), unicorn_engine::ControlType(CTL_WRITE_TCG_BUFFER_SIZE), TCG_BUFFER_BYTES) };
    if err != uc_error::OK {
        return Err(format!("unicorn: setting the translation buffer size: {err:?}"));
    }
    Ok(uc)
}

/// Offsets (from the start of a saved `uc_context`) of the fields we use.
#[derive(Clone, Copy, Debug)]
pub struct Offsets {
    pub error_code: usize,
    pub is_int: usize,
    pub old_exception: usize,
}

/// A saved context buffer for one unicorn instance.
pub struct ExceptionState {
    ctx: *mut uc_context,
    size: usize,
    off: Offsets,
}

/// What the last exception was, as QEMU recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastException {
    pub error_code: u32,
    pub is_int: bool,
}

fn alloc_ctx<D>(uc: &Unicorn<'_, D>) -> Result<(*mut uc_context, usize), String> {
    let mut ctx: *mut uc_context = std::ptr::null_mut();
    // SAFETY: the handle is a live unicorn instance; `ctx` receives a new allocation.
    let err = unsafe { uc_context_alloc(uc.get_handle(), &mut ctx) };
    if err != uc_error::OK || ctx.is_null() {
        return Err(format!("uc_context_alloc: {err:?}"));
    }
    // SAFETY: live handle.
    let size = unsafe { uc_context_size(uc.get_handle()) };
    Ok((ctx, size))
}

fn save<D>(uc: &Unicorn<'_, D>, ctx: *mut uc_context, size: usize) -> Result<Vec<u8>, String> {
    // SAFETY: `ctx` was allocated for this instance's architecture and mode.
    let err = unsafe { uc_context_save(uc.get_handle(), ctx) };
    if err != uc_error::OK {
        return Err(format!("uc_context_save: {err:?}"));
    }
    // SAFETY: the allocation is `size` bytes long (uc_context_size).
    Ok(unsafe { std::slice::from_raw_parts(ctx as *const u8, size) }.to_vec())
}

fn rd_i32(b: &[u8], o: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn rd_u64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Find the offsets with a throw-away instance.
fn calibrate() -> Result<Offsets, String> {
    let mut uc = new_instance(())?;
    uc.mem_map(0x1000, 0x2000, Prot::ALL).map_err(|e| format!("{e:?}"))?;
    // 0x1000: int $0x41 ; 0x1002: xor ecx,ecx ; div ecx
    uc.mem_write(0x1000, &[0xcd, 0x41, 0x31, 0xc9, 0xf7, 0xf1, 0xf4]).map_err(|e| format!("{e:?}"))?;
    uc.add_intr_hook(|uc, _| {
        let _ = uc.emu_stop();
    })
    .map_err(|e| format!("{e:?}"))?;
    uc.reg_write(RegisterX86::RSP, 0x2800).map_err(|e| format!("{e:?}"))?;
    let (ctx, size) = alloc_ctx(&uc)?;
    let result = (|| {
        uc.emu_start(0x1000, 0x2000, 0, 0).map_err(|e| format!("{e:?}"))?;
        let a = save(&uc, ctx, size)?;
        // error_code, exception_is_int, exception_next_eip, dr[8], 4 pointers, old_exception.
        let cands: Vec<usize> = (0..size.saturating_sub(120))
            .step_by(4)
            .filter(|&x| rd_i32(&a, x + 4) == Some(1) && rd_u64(&a, x + 8) == Some(0x1002) && rd_i32(&a, x + 112) == Some(-1))
            .collect();
        uc.emu_start(0x1002, 0x2000, 0, 0).map_err(|e| format!("{e:?}"))?;
        let b = save(&uc, ctx, size)?;
        let found: Vec<usize> = cands.into_iter().filter(|&x| rd_i32(&b, x + 4) == Some(0) && rd_i32(&b, x + 112) == Some(0)).collect();
        match found.as_slice() {
            [x] => Ok(Offsets { error_code: *x, is_int: *x + 4, old_exception: *x + 112 }),
            other => Err(format!("calibration found {} candidates", other.len())),
        }
    })();
    // SAFETY: allocated by uc_context_alloc above and not used after this.
    unsafe { uc_context_free(ctx) };
    result
}

/// The offsets for this process (calibrated once).
pub fn offsets() -> Result<Offsets, String> {
    static OFF: OnceLock<Result<Offsets, String>> = OnceLock::new();
    OFF.get_or_init(calibrate).clone()
}

impl ExceptionState {
    pub fn new<D>(uc: &Unicorn<'_, D>) -> Result<Self, String> {
        let off = offsets()?;
        let (ctx, size) = alloc_ctx(uc)?;
        Ok(Self { ctx, size, off })
    }

    /// Read the last exception's details and clear `old_exception` (the 1883 work-around).
    pub fn take<D>(&mut self, uc: &Unicorn<'_, D>) -> Result<LastException, String> {
        // SAFETY: `ctx` belongs to this instance (created in `new` with its handle).
        let err = unsafe { uc_context_save(uc.get_handle(), self.ctx) };
        if err != uc_error::OK {
            return Err(format!("uc_context_save: {err:?}"));
        }
        // SAFETY: the allocation is `size` bytes; the offsets were found inside it.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.ctx as *mut u8, self.size) };
        let error_code = rd_i32(buf, self.off.error_code).unwrap_or(0) as u32;
        let is_int = rd_i32(buf, self.off.is_int).unwrap_or(0) != 0;
        buf[self.off.old_exception..self.off.old_exception + 4].copy_from_slice(&(-1i32).to_le_bytes());
        // SAFETY: as above; restoring the context we just saved, with one field changed.
        let err = unsafe { uc_context_restore(uc.get_handle(), self.ctx) };
        if err != uc_error::OK {
            return Err(format!("uc_context_restore: {err:?}"));
        }
        Ok(LastException { error_code, is_int })
    }
}

impl Drop for ExceptionState {
    fn drop(&mut self) {
        // SAFETY: allocated by uc_context_alloc and owned by self.
        unsafe { uc_context_free(self.ctx) };
    }
}

/// A whole saved CPU context of one instance, restored later (the simulator keeps the ring-0
/// state it first entered a guest from, to enter again through its `iretq` stub).
pub struct SavedContext {
    ctx: *mut uc_context,
}

impl SavedContext {
    /// Save `uc`'s current context.
    pub fn save<D>(uc: &Unicorn<'_, D>) -> Result<Self, String> {
        let (ctx, _) = alloc_ctx(uc)?;
        // SAFETY: `ctx` was allocated for this instance's architecture and mode.
        let err = unsafe { uc_context_save(uc.get_handle(), ctx) };
        if err != uc_error::OK {
            // SAFETY: allocated above, not used after this.
            unsafe { uc_context_free(ctx) };
            return Err(format!("uc_context_save: {err:?}"));
        }
        Ok(SavedContext { ctx })
    }

    /// Put the saved context back into `uc` (the instance it was saved from).
    pub fn restore<D>(&self, uc: &Unicorn<'_, D>) -> Result<(), String> {
        // SAFETY: `ctx` was saved from this instance (the caller keeps them together).
        let err = unsafe { uc_context_restore(uc.get_handle(), self.ctx) };
        if err != uc_error::OK {
            return Err(format!("uc_context_restore: {err:?}"));
        }
        Ok(())
    }
}

impl Drop for SavedContext {
    fn drop(&mut self) {
        // SAFETY: allocated by uc_context_alloc and owned by self.
        unsafe { uc_context_free(self.ctx) };
    }
}
