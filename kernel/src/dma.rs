//! DMA memory: zeroed, page-aligned, physically contiguous regions whose
//! device address is their physical address (no IOMMU), accessed through
//! `volatile`'s [`VolatilePtr`] because a device may touch them at any
//! time. Ordering against the device is the caller's business, through the
//! barriers of `cxos_drivers::Mmio` (volatile accesses are not reordered
//! with each other by the compiler, but plain ones may be moved across
//! them, and the CPU orders nothing it is not told to).
//!
//! Where `volatile` does not fit: [`DmaRegion::with_bytes`] and
//! [`DmaRegion::with_bytes_mut`] lend a plain slice (smoltcp's zero-copy
//! tokens take `&[u8]` / `&mut [u8]`), which the platform contract allows
//! only while software owns the range; and the copies (`read_bytes`,
//! `write_bytes`, `fill`, `write_be64s`) go 8 bytes at a time (bytes at
//! unaligned edges) through `VolatilePtr<u64>` / `VolatilePtr<u8>`
//! because `volatile`'s slice copies need its `unstable` feature (nightly).
//! The accessors are `#[inline]`: the driver is instantiated in the kernel
//! binary and calls them per packet.
//!
//! The pool draws frames from a [`FrameAllocator`] reachable at the same
//! addresses it hands out (the kernel's identity map; in host tests, host
//! memory posing as physical memory).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};

use cxos_drivers::{DmaAddr, DmaAlloc, DmaRegion, PlatformError};
use spin::Mutex;
use volatile::VolatilePtr;

use crate::frames::{FRAME_SIZE, FrameAllocator};

/// Usage counters, read by `mem` and by leak tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaStats {
    pub regions: u64,
    pub bytes: u64,
    pub allocations: u64,
    pub failures: u64,
}

#[derive(Debug)]
pub struct DmaPool {
    frames: &'static Mutex<FrameAllocator>,
    regions: AtomicU64,
    bytes: AtomicU64,
    allocations: AtomicU64,
    failures: AtomicU64,
}

impl DmaPool {
    pub const fn new(frames: &'static Mutex<FrameAllocator>) -> Self {
        Self {
            frames,
            regions: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// A zeroed region of at least `size` bytes (whole pages are taken).
    pub fn alloc(&'static self, size: usize) -> Result<DmaBuffer, PlatformError> {
        let pages = (size as u64).div_ceil(FRAME_SIZE).max(1);
        let Some(addr) = self.frames.lock().alloc(pages, FRAME_SIZE) else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(PlatformError::OutOfDmaMemory { requested: size });
        };
        // Frame 0 is never usable memory; the accessors rely on it.
        assert!(addr != 0, "DMA region at address 0");
        // SAFETY: the frames were just taken from the allocator, so nobody
        // else uses them, and they are reachable at their physical address.
        unsafe { ptr::write_bytes(addr as *mut u8, 0, (pages * FRAME_SIZE) as usize) };
        self.regions.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(pages * FRAME_SIZE, Ordering::Relaxed);
        self.allocations.fetch_add(1, Ordering::Relaxed);
        Ok(DmaBuffer {
            addr,
            len: size,
            pages,
            pool: self,
        })
    }

    pub fn stats(&self) -> DmaStats {
        DmaStats {
            regions: self.regions.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            allocations: self.allocations.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// The kernel's DMA allocator is the pool itself (a static).
impl DmaAlloc for &'static DmaPool {
    type Region = DmaBuffer;

    fn dma_alloc(&self, size: usize) -> Result<DmaBuffer, PlatformError> {
        DmaPool::alloc(self, size)
    }
}

/// One DMA region; dropping it returns its frames to the pool.
#[derive(Debug)]
pub struct DmaBuffer {
    addr: u64,
    len: usize,
    pages: u64,
    pool: &'static DmaPool,
}

impl DmaBuffer {
    /// Bounds check of a driver-chosen offset (a driver bug if it fails:
    /// the platform contract says implementations panic).
    #[inline]
    fn ptr(&self, offset: usize, size: usize) -> *mut u8 {
        if offset.checked_add(size).is_none_or(|end| end > self.len) {
            outside(offset, size, self.len);
        }
        (self.addr as usize + offset) as *mut u8
    }

    /// The `T` at `offset` (bounds and alignment checked: a driver bug
    /// panics), for as long as the buffer is borrowed.
    #[inline]
    fn at<T>(&self, offset: usize) -> VolatilePtr<'_, T> {
        let p = self.ptr(offset, size_of::<T>()) as *mut T;
        if !p.is_aligned() {
            unaligned(offset);
        }
        // SAFETY: in bounds of the frames this buffer owns and aligned
        // (checked above), never null (`alloc` refuses address 0), and the
        // pointer's lifetime is the borrow of the buffer, which keeps the
        // frames allocated.
        unsafe { VolatilePtr::new(NonNull::new_unchecked(p)) }
    }

    /// The volatile `T` at byte `i` of a range `p` checked by [`Self::ptr`]
    /// (`i + size_of::<T>()` within it, aligned).
    #[inline]
    fn within<T>(&self, p: *mut u8, i: usize) -> VolatilePtr<'_, T> {
        // SAFETY: the caller keeps p + i .. p + i + size_of::<T>() inside
        // the range `ptr` checked and aligned for T; not null (as in `at`);
        // lives as long as the borrow of the buffer.
        unsafe { VolatilePtr::new(NonNull::new_unchecked(p.add(i) as *mut T)) }
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        let freed = self.pool.frames.lock().free(self.addr, self.pages);
        assert!(freed.is_ok(), "DMA region {:#x} freed twice", self.addr);
        self.pool.regions.fetch_sub(1, Ordering::Relaxed);
        self.pool
            .bytes
            .fetch_sub(self.pages * FRAME_SIZE, Ordering::Relaxed);
    }
}

macro_rules! volatile_be {
    ($read:ident, $write:ident, $t:ty) => {
        #[inline]
        fn $read(&self, offset: usize) -> $t {
            <$t>::from_be(self.at::<$t>(offset).read())
        }
        #[inline]
        fn $write(&self, offset: usize, value: $t) {
            self.at::<$t>(offset).write(value.to_be())
        }
    };
}

/// Whether an 8-byte access at `p + i` is aligned and `n - i` bytes remain
/// for it.
#[inline(always)]
fn word_at(p: *mut u8, i: usize, n: usize) -> bool {
    (p as usize + i).is_multiple_of(8) && n - i >= 8
}

impl DmaRegion for DmaBuffer {
    #[inline]
    fn device_addr(&self) -> DmaAddr {
        DmaAddr(self.addr)
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn read_u8(&self, offset: usize) -> u8 {
        self.at::<u8>(offset).read()
    }

    #[inline]
    fn write_u8(&self, offset: usize, value: u8) {
        self.at::<u8>(offset).write(value)
    }

    volatile_be!(read_be16, write_be16, u16);
    volatile_be!(read_be32, write_be32, u32);
    volatile_be!(read_be64, write_be64, u64);

    #[inline]
    fn write_be64s(&self, offset: usize, words: &[u64]) {
        let p = self.ptr(offset, 8 * words.len());
        if !(p as usize).is_multiple_of(8) {
            unaligned(offset);
        }
        for (i, w) in words.iter().enumerate() {
            self.within::<u64>(p, 8 * i).write(w.to_be());
        }
    }

    #[inline]
    fn read_be64s(&self, offset: usize, words: &mut [u64]) {
        let p = self.ptr(offset, 8 * words.len());
        if !(p as usize).is_multiple_of(8) {
            unaligned(offset);
        }
        for (i, w) in words.iter_mut().enumerate() {
            *w = u64::from_be(self.within::<u64>(p, 8 * i).read());
        }
    }

    #[inline]
    fn read_be64s_strided(&self, offset: usize, stride: usize, words: &mut [u64]) {
        let Some(last) = words.len().checked_sub(1) else {
            return;
        };
        let span = stride.checked_mul(last).and_then(|s| s.checked_add(8));
        let p = self.ptr(offset, span.unwrap_or(usize::MAX));
        if !(p as usize | stride).is_multiple_of(8) {
            unaligned(offset);
        }
        for (i, w) in words.iter_mut().enumerate() {
            *w = u64::from_be(self.within::<u64>(p, stride * i).read());
        }
    }

    #[inline]
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let (p, n) = (self.ptr(offset, dst.len()), dst.len());
        let mut i = 0;
        while i < n {
            if word_at(p, i, n) {
                let v = self.within::<u64>(p, i).read();
                dst[i..i + 8].copy_from_slice(&v.to_ne_bytes());
                i += 8;
            } else {
                dst[i] = self.within::<u8>(p, i).read();
                i += 1;
            }
        }
    }

    #[inline]
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        let (p, n) = (self.ptr(offset, src.len()), src.len());
        let mut i = 0;
        while i < n {
            if word_at(p, i, n) {
                let mut w = [0u8; 8];
                w.copy_from_slice(&src[i..i + 8]);
                self.within::<u64>(p, i).write(u64::from_ne_bytes(w));
                i += 8;
            } else {
                self.within::<u8>(p, i).write(src[i]);
                i += 1;
            }
        }
    }

    #[inline]
    fn fill(&self, offset: usize, len: usize, byte: u8) {
        let p = self.ptr(offset, len);
        let word = u64::from_ne_bytes([byte; 8]);
        let mut i = 0;
        while i < len {
            if word_at(p, i, len) {
                self.within::<u64>(p, i).write(word);
                i += 8;
            } else {
                self.within::<u8>(p, i).write(byte);
                i += 1;
            }
        }
    }

    #[inline]
    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let p = self.ptr(offset, len);
        // SAFETY: in bounds; the trait's contract is that the device does
        // not write this range while `f` runs, so a shared slice is sound.
        f(unsafe { core::slice::from_raw_parts(p, len) })
    }

    #[inline]
    fn with_bytes_mut<R>(&self, offset: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let p = self.ptr(offset, len);
        // SAFETY: in bounds; the device neither reads nor writes the range
        // while `f` runs (trait contract), and `&self` methods of this
        // buffer are not re-entered from `f` for the same range.
        f(unsafe { core::slice::from_raw_parts_mut(p, len) })
    }
}

/// A driver's access outside its region: a driver bug (the platform
/// contract panics). Out of line and cold so the checked accessors keep
/// their arguments in registers.
#[cold]
#[inline(never)]
#[track_caller]
fn outside(off: usize, size: usize, len: usize) -> ! {
    panic!("DMA access [{off}, +{size}) outside region of {len} bytes")
}

#[cold]
#[inline(never)]
#[track_caller]
fn unaligned(off: usize) -> ! {
    panic!("unaligned DMA access at {off}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxos_boot::{MemoryKind, MemoryRegion};
    use std::alloc::{Layout, alloc};

    /// A pool over 64 leaked host pages standing in for physical memory.
    fn pool() -> &'static DmaPool {
        let layout = Layout::from_size_align(64 * 4096, 4096).unwrap();
        // SAFETY: non-zero size; the memory is leaked on purpose.
        let base = unsafe { alloc(layout) } as u64;
        assert_ne!(base, 0);
        // Dirty it so zeroing is observable.
        // SAFETY: just allocated, 64 pages long.
        unsafe { ptr::write_bytes(base as *mut u8, 0xa5, 64 * 4096) };
        let map = [MemoryRegion {
            start: base,
            len: 64 * 4096,
            kind: MemoryKind::Usable,
        }];
        let frames = FrameAllocator::from_map(&map, &[], &mut |i| panic!("{i}"));
        let frames: &'static Mutex<FrameAllocator> = Box::leak(Box::new(Mutex::new(frames)));
        Box::leak(Box::new(DmaPool::new(frames)))
    }

    #[test]
    fn regions_are_zeroed_aligned_and_counted() {
        let p = pool();
        let free0 = p.frames.lock().free_frames();
        let a = p.alloc(100).unwrap();
        let b = p.alloc(8192 + 1).unwrap();
        assert_eq!(a.device_addr().get() % 4096, 0);
        assert_eq!(a.len(), 100);
        assert!((0..100).all(|i| a.read_u8(i) == 0));
        assert!((0..8193).all(|i| b.read_u8(i) == 0));
        assert_eq!(
            p.stats(),
            DmaStats {
                regions: 2,
                bytes: 4 * 4096,
                allocations: 2,
                failures: 0
            }
        );
        assert_eq!(p.frames.lock().free_frames(), free0 - 4);
        drop(a);
        assert_eq!(p.stats().regions, 1);
        assert_eq!(p.stats().bytes, 3 * 4096);
        drop(b);
        assert_eq!(p.stats().regions, 0);
        assert_eq!(p.stats().bytes, 0);
        assert_eq!(p.frames.lock().free_frames(), free0);
    }

    #[test]
    fn out_of_memory_is_an_error_and_counted() {
        let p = pool();
        let big = p.alloc(64 * 4096).unwrap();
        assert_eq!(
            p.alloc(1).unwrap_err(),
            PlatformError::OutOfDmaMemory { requested: 1 }
        );
        assert_eq!(p.stats().failures, 1);
        drop(big);
        assert!(p.alloc(1).is_ok());
    }

    #[test]
    fn accessors_are_big_endian() {
        let p = pool();
        let r = p.alloc(64).unwrap();
        r.write_be32(4, 0x1122_3344);
        assert_eq!(r.read_u8(4), 0x11);
        assert_eq!(r.read_u8(7), 0x44);
        r.write_be64(8, 0x0102_0304_0506_0708);
        assert_eq!(r.read_be16(8), 0x0102);
        assert_eq!(r.read_be64(8), 0x0102_0304_0506_0708);
        r.write_bytes(16, b"abc");
        let mut out = [0u8; 3];
        r.read_bytes(16, &mut out);
        assert_eq!(&out, b"abc");
        r.fill(20, 4, 0xff);
        assert_eq!(r.read_be32(20), 0xffff_ffff);
        assert_eq!(r.with_bytes(16, 3, |s| s.to_vec()), b"abc");
        r.with_bytes_mut(0, 2, |s| s.copy_from_slice(&[9, 8]));
        assert_eq!(r.read_be16(0), 0x0908);
    }

    #[test]
    fn wide_copies_agree_byte_for_byte() {
        let p = pool();
        let r = p.alloc(64).unwrap();
        // Unaligned edges and whole words in one copy.
        let src: Vec<u8> = (0..29u8).collect();
        r.write_bytes(3, &src);
        let mut back = [0u8; 29];
        r.read_bytes(3, &mut back);
        assert_eq!(&back[..], &src[..]);
        assert_eq!(r.read_u8(3 + 13), 13);
        assert_eq!(r.read_u8(2), 0);
        r.fill(1, 40, 0x5a);
        assert!((1..41).all(|i| r.read_u8(i) == 0x5a) && r.read_u8(41) == 0);
        r.write_be64s(8, &[0x1122_3344_5566_7788, 0x99aa_bbcc_ddee_ff00]);
        assert_eq!(r.read_u8(8), 0x11);
        assert_eq!(r.read_be64(16), 0x99aa_bbcc_ddee_ff00);
        let mut words = [0u64; 2];
        r.read_be64s(8, &mut words);
        assert_eq!(words, [0x1122_3344_5566_7788, 0x99aa_bbcc_ddee_ff00]);
    }

    #[test]
    #[should_panic(expected = "unaligned")]
    fn unaligned_words_panic() {
        let p = pool();
        let r = p.alloc(64).unwrap();
        r.write_be64s(4, &[1]);
    }

    #[test]
    fn the_pool_is_the_platform_allocator() {
        let p: &'static DmaPool = pool();
        let r = DmaAlloc::dma_alloc(&p, 10).unwrap();
        assert_eq!((r.len(), p.stats().regions), (10, 1));
        r.write_be16(8, 0xbeef);
        assert_eq!(r.read_be16(8), 0xbeef);
    }

    #[test]
    #[should_panic(expected = "unaligned")]
    fn unaligned_access_panics() {
        let p = pool();
        let r = p.alloc(16).unwrap();
        r.read_be32(2);
    }

    #[test]
    #[should_panic(expected = "outside region")]
    fn out_of_bounds_access_panics() {
        let p = pool();
        let r = p.alloc(16).unwrap();
        r.read_be32(14);
    }
}
