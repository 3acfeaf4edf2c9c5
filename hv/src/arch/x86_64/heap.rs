//! The image's allocator: size-class free lists for small blocks, a first-fit free list of page
//! multiples for large ones, carved from one region of machine memory given at boot. No locking:
//! no interrupts in the hypervisor, and with several CPUs (smp.rs) only the holder of the
//! hypervisor lock allocates (the application processors allocate nothing of their own; the boot
//! CPU allocates alone while they start and after they park).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

const CLASSES: usize = 9; // 16 .. 4096
const PAGE: usize = 4096;

struct Inner {
    next: usize,
    end: usize,
    bins: [usize; CLASSES],
    /// Free large blocks: each starts with [next, size].
    big: usize,
}

/// The global allocator.
pub struct Heap(UnsafeCell<Inner>);

// SAFETY: the image runs on one CPU and never allocates from a trap handler that could
// interrupt an allocation (traps from ring 0 stop the machine).
unsafe impl Sync for Heap {}

#[global_allocator]
pub static HEAP: Heap = Heap(UnsafeCell::new(Inner { next: 0, end: 0, bins: [0; CLASSES], big: 0 }));

impl Heap {
    /// Give the allocator [start, end) (virtual addresses).
    ///
    /// # Safety
    /// The range must be mapped, writable, unused by anything else, and valid forever.
    pub unsafe fn init(&self, start: usize, end: usize) {
        // SAFETY: called once at boot before any allocation.
        let h = unsafe { &mut *self.0.get() };
        h.next = (start + PAGE - 1) & !(PAGE - 1);
        h.end = end;
    }
}

fn class(size: usize) -> Option<usize> {
    if size > PAGE {
        return None;
    }
    let c = size.max(16).next_power_of_two().trailing_zeros() as usize - 4;
    Some(c)
}

impl Inner {
    fn bump(&mut self, size: usize, align: usize) -> *mut u8 {
        let start = (self.next + align - 1) & !(align - 1);
        match start.checked_add(size) {
            Some(e) if e <= self.end => {
                self.next = e;
                start as *mut u8
            }
            _ => core::ptr::null_mut(),
        }
    }
}

// SAFETY: blocks handed out are disjoint parts of the region given to `init`; a freed block is
// only reused for a request of the same size class (or a large block of at least its size).
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: single-threaded, see `Sync` above.
        let h = unsafe { &mut *self.0.get() };
        let size = l.size().max(l.align());
        if let Some(c) = class(size) {
            let head = h.bins[c];
            if head != 0 {
                // SAFETY: `head` is a freed block of this class; its first word links the list.
                h.bins[c] = unsafe { *(head as *const usize) };
                return head as *mut u8;
            }
            let bytes = 16 << c;
            return h.bump(bytes, bytes.min(PAGE));
        }
        let need = (size + PAGE - 1) & !(PAGE - 1);
        if l.align() <= PAGE {
            let mut prev: *mut usize = &mut h.big;
            let mut cur = h.big;
            while cur != 0 {
                // SAFETY: `cur` is a freed large block holding [next, size].
                let (next, bsize) = unsafe { (*(cur as *const usize), *((cur + 8) as *const usize)) };
                if bsize >= need {
                    if bsize > need {
                        let rest = cur + need;
                        // SAFETY: the tail of a free block is free and page aligned.
                        unsafe {
                            *(rest as *mut usize) = next;
                            *((rest + 8) as *mut usize) = bsize - need;
                            *prev = rest;
                        }
                    } else {
                        // SAFETY: unlinking `cur` from the list it is on.
                        unsafe { *prev = next };
                    }
                    return cur as *mut u8;
                }
                prev = cur as *mut usize;
                cur = next;
            }
        }
        h.bump(need, l.align().max(PAGE))
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: single-threaded, see `Sync` above.
        let h = unsafe { &mut *self.0.get() };
        let size = l.size().max(l.align());
        let a = p as usize;
        if let Some(c) = class(size) {
            // SAFETY: the block is ours again and at least 16 bytes.
            unsafe { *(a as *mut usize) = h.bins[c] };
            h.bins[c] = a;
        } else {
            let need = (size + PAGE - 1) & !(PAGE - 1);
            // SAFETY: the block is ours again and at least a page.
            unsafe {
                *(a as *mut usize) = h.big;
                *((a + 8) as *mut usize) = need;
            }
            h.big = a;
        }
    }
}
