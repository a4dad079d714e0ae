//! Physical memory, the kernel heap and DMA memory.
//!
//! The heap starts in a 512 KiB arena inside the kernel image (so the
//! command line and ACPI tables can be parsed before the frame allocator
//! exists) and grows by one block of frames once it does.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use cxos_boot::BootInfo;
use cxos_kernel::dma::{DmaPool, DmaStats};
use cxos_kernel::frames::{FRAME_SIZE, FrameAllocator};
use cxos_kernel::paging::MapError;
use linked_list_allocator::Heap;
use spin::Mutex;

use crate::arch;

pub static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::empty());
pub static DMA: DmaPool = DmaPool::new(&FRAMES);

const EARLY_HEAP: usize = 512 * 1024;
/// Main heap size tried first; halved until it fits.
const MAIN_HEAP: u64 = 32 << 20;

#[repr(C, align(4096))]
struct Arena([u8; EARLY_HEAP]);

static mut EARLY_ARENA: Arena = Arena([0; EARLY_HEAP]);

struct Heaps {
    early: Heap,
    main: Heap,
}

/// The global allocator: two heaps, with usage counters.
pub struct KernelHeap {
    heaps: Mutex<Heaps>,
    used: AtomicU64,
    allocations: AtomicU64,
    failures: AtomicU64,
}

#[global_allocator]
pub static HEAP: KernelHeap = KernelHeap {
    heaps: Mutex::new(Heaps {
        early: Heap::empty(),
        main: Heap::empty(),
    }),
    used: AtomicU64::new(0),
    allocations: AtomicU64::new(0),
    failures: AtomicU64::new(0),
};

// SAFETY: alloc/dealloc go through the heaps' lock (a spin lock: every
// CPU allocates), taken with interrupts off so that an interrupt arriving
// on the CPU holding it cannot deadlock on it; blocks are handed back to
// the heap that owns their address.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        arch::without_interrupts(|| self.alloc_locked(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's GlobalAlloc contract, passed on.
        arch::without_interrupts(|| unsafe { self.dealloc_locked(ptr, layout) })
    }
}

impl KernelHeap {
    fn alloc_locked(&self, layout: Layout) -> *mut u8 {
        let mut h = self.heaps.lock();
        let block = h
            .main
            .allocate_first_fit(layout)
            .or_else(|()| h.early.allocate_first_fit(layout));
        match block {
            Ok(p) => {
                self.used.fetch_add(layout.size() as u64, Ordering::Relaxed);
                self.allocations.fetch_add(1, Ordering::Relaxed);
                p.as_ptr()
            }
            Err(()) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                core::ptr::null_mut()
            }
        }
    }

    /// # Safety
    /// `ptr` came from `alloc` with `layout` (GlobalAlloc's contract).
    unsafe fn dealloc_locked(&self, ptr: *mut u8, layout: Layout) {
        let mut h = self.heaps.lock();
        let a = ptr as usize;
        let in_early = a >= h.early.bottom() as usize && a < h.early.top() as usize;
        // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc
        // contract), so it is non-null and owned by the heap chosen here.
        unsafe {
            let p = NonNull::new_unchecked(ptr);
            if in_early {
                h.early.deallocate(p, layout);
            } else {
                h.main.deallocate(p, layout);
            }
        }
        self.used.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    pub used: u64,
    pub size: u64,
    pub allocations: u64,
    pub failures: u64,
}

pub fn heap_stats() -> HeapStats {
    // Like every use of the heaps' lock: interrupts off while it is held.
    let size = arch::without_interrupts(|| {
        let h = HEAP.heaps.lock();
        (h.early.size() + h.main.size()) as u64
    });
    HeapStats {
        used: HEAP.used.load(Ordering::Relaxed),
        size,
        allocations: HEAP.allocations.load(Ordering::Relaxed),
        failures: HEAP.failures.load(Ordering::Relaxed),
    }
}

/// Make the early arena usable. First thing after the console.
pub fn init_early_heap() {
    // SAFETY: called once at boot; the arena is only ever used by the heap.
    unsafe {
        let p = (&raw mut EARLY_ARENA).cast::<u8>();
        HEAP.heaps.lock().early.init(p, EARLY_HEAP);
    }
}

/// Build the frame allocator from the boot memory map, reserving the kernel
/// image, the boot structures and `extra` (ACPI tables). The heap grows
/// next ([`grow_heap`]).
pub fn init_frames(boot: &BootInfo, extra: &[(u64, u64)]) {
    let mut reserved = alloc::vec::Vec::with_capacity(extra.len() + 8);
    reserved.push(boot.kernel_image);
    reserved.extend_from_slice(boot.boot_ranges());
    reserved.extend_from_slice(extra);
    let frames = FrameAllocator::from_map(boot.memory_map(), &reserved, &mut |issue| {
        log::warn!(target: "mem", "memory map: {issue}");
    });
    if boot.memory_truncated {
        log::warn!(target: "mem", "memory map: more than {} entries; the rest ignored", boot.memory_map().len());
    }
    for (s, e) in frames.free_ranges() {
        log::debug!(target: "mem", "free [{s:#x}, {e:#x})");
    }
    *FRAMES.lock() = frames;
}

/// Give the heap its main block of frames; `map` identity maps the block
/// when it lies above the boot tables' 4 GiB (the page tables are the
/// MMU's, which takes its frames from here).
pub fn grow_heap(map: impl FnOnce(u64, u64) -> Result<(), MapError>) {
    let mut size = MAIN_HEAP;
    let base = loop {
        if let Some(b) = FRAMES.lock().alloc(size / FRAME_SIZE, 2 << 20) {
            break Some(b);
        }
        size /= 2;
        if size < (1 << 20) {
            break None;
        }
    };
    match base {
        // SAFETY: the frames were just taken for the heap alone and are
        // identity mapped (the allocator hands out low memory first, and the
        // block is mapped below if it lies above 4 GiB).
        Some(b) => unsafe {
            if b + size > (4 << 30)
                && let Err(e) = map(b, size)
            {
                panic!("cannot map the heap: {e}");
            }
            HEAP.heaps.lock().main.init(b as *mut u8, size as usize);
        },
        None => {
            log::error!(target: "mem", "no memory for the main heap; running on the early arena")
        }
    }
}

/// One zeroed frame (page tables).
pub fn alloc_zeroed_frame() -> Option<u64> {
    let f = FRAMES.lock().alloc(1, FRAME_SIZE)?;
    // SAFETY: a fresh frame from the allocator, identity mapped.
    unsafe { core::ptr::write_bytes(f as *mut u8, 0, FRAME_SIZE as usize) };
    Some(f)
}

#[derive(Clone, Copy, Debug)]
pub struct FrameStats {
    pub free: u64,
    pub used: u64,
    pub usable_bytes: u64,
}

pub fn frame_stats() -> FrameStats {
    let f = FRAMES.lock();
    FrameStats {
        free: f.free_frames(),
        used: f.used_frames(),
        usable_bytes: f.usable_bytes(),
    }
}

pub fn dma_stats() -> DmaStats {
    DMA.stats()
}
