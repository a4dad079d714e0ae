//! Host memory: the memory that plays DMA memory, and a counting global
//! allocator for test binaries.
//!
//! DMA memory is page-aligned, zeroed, shared between
//! the driver (through `SimDma`) and the model (through `HostDmaSpace`),
//! possibly on different threads at once. Every access of 1, 2, 4 or 8
//! naturally aligned bytes is one atomic access (untorn, as on PCIe); bulk
//! copies are done with atomic accesses too, so a concurrent device write is
//! never a data race.
//!
//! This is the only module of the crate with `unsafe`.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

pub const PAGE: usize = 4096;

/// One allocation of host memory standing for a DMA region.
pub struct HostMem {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the memory is only reached through atomic operations (or through
// `with_bytes`, whose callers promise exclusive use), so sharing the
// pointer between threads is sound.
unsafe impl Send for HostMem {}
// SAFETY: as above: all shared access is atomic.
unsafe impl Sync for HostMem {}

impl std::fmt::Debug for HostMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostMem({} bytes)", self.layout.size())
    }
}

impl HostMem {
    /// `len` bytes rounded up to whole pages, zeroed; None if the host is out of memory.
    pub fn new(len: usize) -> Option<HostMem> {
        let size = len.max(1).div_ceil(PAGE) * PAGE;
        let layout = Layout::from_size_align(size, PAGE).ok()?;
        // SAFETY: layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        NonNull::new(raw).map(|ptr| HostMem { ptr, layout })
    }

    /// Mapped length (whole pages).
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    fn check(&self, off: usize, len: usize) {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len()),
            "DMA access {off:#x}+{len:#x} outside a region of {:#x} bytes",
            self.len()
        );
    }

    fn at(&self, off: usize) -> *mut u8 {
        // SAFETY: callers checked off < len; the result stays in the allocation.
        unsafe { self.ptr.as_ptr().add(off) }
    }

    fn byte(&self, off: usize) -> &AtomicU8 {
        // SAFETY: off was bounds-checked by the caller; AtomicU8 has the size
        // and alignment of u8 and the memory lives as long as self.
        unsafe { AtomicU8::from_ptr(self.at(off)) }
    }

    pub fn read_u8(&self, off: usize) -> u8 {
        self.check(off, 1);
        self.byte(off).load(Ordering::Acquire)
    }

    pub fn write_u8(&self, off: usize, v: u8) {
        self.check(off, 1);
        self.byte(off).store(v, Ordering::Release)
    }

    /// Native-endian u16/u32/u64 loads and stores: one atomic access when
    /// aligned, byte by byte otherwise.
    pub fn load16(&self, off: usize) -> u16 {
        self.check(off, 2);
        if off.is_multiple_of(2) {
            // SAFETY: in bounds (checked), 2-aligned (the allocation is page aligned).
            unsafe { AtomicU16::from_ptr(self.at(off) as *mut u16) }.load(Ordering::Acquire)
        } else {
            let mut b = [0u8; 2];
            self.read_bytes(off, &mut b);
            u16::from_ne_bytes(b)
        }
    }

    pub fn store16(&self, off: usize, v: u16) {
        self.check(off, 2);
        if off.is_multiple_of(2) {
            // SAFETY: in bounds and 2-aligned, as above.
            unsafe { AtomicU16::from_ptr(self.at(off) as *mut u16) }.store(v, Ordering::Release)
        } else {
            self.write_bytes(off, &v.to_ne_bytes());
        }
    }

    pub fn load32(&self, off: usize) -> u32 {
        self.check(off, 4);
        if off.is_multiple_of(4) {
            // SAFETY: in bounds and 4-aligned.
            unsafe { AtomicU32::from_ptr(self.at(off) as *mut u32) }.load(Ordering::Acquire)
        } else {
            let mut b = [0u8; 4];
            self.read_bytes(off, &mut b);
            u32::from_ne_bytes(b)
        }
    }

    pub fn store32(&self, off: usize, v: u32) {
        self.check(off, 4);
        if off.is_multiple_of(4) {
            // SAFETY: in bounds and 4-aligned.
            unsafe { AtomicU32::from_ptr(self.at(off) as *mut u32) }.store(v, Ordering::Release)
        } else {
            self.write_bytes(off, &v.to_ne_bytes());
        }
    }

    pub fn load64(&self, off: usize) -> u64 {
        self.check(off, 8);
        if off.is_multiple_of(8) {
            // SAFETY: in bounds and 8-aligned.
            unsafe { AtomicU64::from_ptr(self.at(off) as *mut u64) }.load(Ordering::Acquire)
        } else {
            let mut b = [0u8; 8];
            self.read_bytes(off, &mut b);
            u64::from_ne_bytes(b)
        }
    }

    pub fn store64(&self, off: usize, v: u64) {
        self.check(off, 8);
        if off.is_multiple_of(8) {
            // SAFETY: in bounds and 8-aligned.
            unsafe { AtomicU64::from_ptr(self.at(off) as *mut u64) }.store(v, Ordering::Release)
        } else {
            self.write_bytes(off, &v.to_ne_bytes());
        }
    }

    /// Copy out with atomic loads: 8 bytes at a time where aligned.
    pub fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len());
        let mut i = 0;
        while i < dst.len() {
            let at = off + i;
            if at.is_multiple_of(8) && dst.len() - i >= 8 {
                // SAFETY: at..at+8 is in bounds (checked above) and 8-aligned.
                let v =
                    unsafe { AtomicU64::from_ptr(self.at(at) as *mut u64) }.load(Ordering::Relaxed);
                dst[i..i + 8].copy_from_slice(&v.to_ne_bytes());
                i += 8;
            } else {
                dst[i] = self.byte(at).load(Ordering::Relaxed);
                i += 1;
            }
        }
        std::sync::atomic::fence(Ordering::Acquire);
    }

    /// Copy in with atomic stores: 8 bytes at a time where aligned.
    pub fn write_bytes(&self, off: usize, src: &[u8]) {
        self.check(off, src.len());
        std::sync::atomic::fence(Ordering::Release);
        let mut i = 0;
        while i < src.len() {
            let at = off + i;
            if at.is_multiple_of(8) && src.len() - i >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(&src[i..i + 8]);
                // SAFETY: at..at+8 is in bounds and 8-aligned.
                unsafe { AtomicU64::from_ptr(self.at(at) as *mut u64) }
                    .store(u64::from_ne_bytes(w), Ordering::Relaxed);
                i += 8;
            } else {
                self.byte(at).store(src[i], Ordering::Relaxed);
                i += 1;
            }
        }
    }

    pub fn fill(&self, off: usize, len: usize, byte: u8) {
        self.check(off, len);
        for i in 0..len {
            self.byte(off + i).store(byte, Ordering::Relaxed);
        }
        std::sync::atomic::fence(Ordering::Release);
    }

    /// Borrow `len` bytes at `off` as a slice. The platform contract says the
    /// device does not write this range while `f` runs.
    pub fn with_bytes<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        self.check(off, len);
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: in bounds; the caller (the driver, per the DmaRegion
        // contract) guarantees that the device does not write the range
        // while the slice lives, and the slice does not outlive `f`.
        let s = unsafe { std::slice::from_raw_parts(self.at(off), len) };
        f(s)
    }

    /// Mutable borrow of `len` bytes at `off`; the device neither reads nor
    /// writes the range while `f` runs (platform contract).
    pub fn with_bytes_mut<R>(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        self.check(off, len);
        // SAFETY: in bounds; exclusive use of the range for the duration of
        // `f` is the caller's promise (DmaRegion::with_bytes_mut contract).
        let s = unsafe { std::slice::from_raw_parts_mut(self.at(off), len) };
        let r = f(s);
        std::sync::atomic::fence(Ordering::Release);
        r
    }
}

/// A window of host memory accessed the way the kernel accesses DMA memory
/// (`kernel/src/dma.rs`, `DmaBuffer`): each access checks its bounds
/// against the region's length and its alignment, then is one volatile
/// load or store; nothing else (no atomics, no fences, no lookup). The
/// bench platform ([`super::bench`]) gives the driver this view, so what
/// callgrind counts in the accessors is what they cost in the kernel.
/// Bulk copies go 8 bytes at a time where aligned, as the kernel's do.
///
/// Sound only while the model and the driver take turns on one thread (the
/// bench platform's contract): volatile accesses are not atomic.
pub struct VolatileWindow {
    /// Keeps the memory alive while the window points into it.
    _mem: std::sync::Arc<HostMem>,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the window only hands out accesses through `&self` methods whose
// callers take turns with the model (the bench platform runs both on one
// thread); the pointer stays valid as long as `mem` lives.
unsafe impl Send for VolatileWindow {}
// SAFETY: as above.
unsafe impl Sync for VolatileWindow {}

impl std::fmt::Debug for VolatileWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VolatileWindow({} bytes)", self.len)
    }
}

impl VolatileWindow {
    /// The first `len` bytes of `mem`.
    pub fn new(mem: std::sync::Arc<HostMem>, len: usize) -> VolatileWindow {
        assert!(len <= mem.len(), "window past the end of its memory");
        let base = mem.ptr;
        VolatileWindow {
            _mem: mem,
            base,
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `size` bytes at `off`, bounds-checked (a driver bug panics, as the
    /// platform contract says).
    #[inline]
    fn ptr(&self, off: usize, size: usize) -> *mut u8 {
        if off.checked_add(size).is_none_or(|end| end > self.len) {
            outside(off, size, self.len);
        }
        // SAFETY: off + size <= len <= the allocation's size.
        unsafe { self.base.as_ptr().add(off) }
    }

    /// The `T` at `off`, bounds- and alignment-checked.
    #[inline]
    fn at<T>(&self, off: usize) -> *mut T {
        let p = self.ptr(off, size_of::<T>()) as *mut T;
        if !p.is_aligned() {
            unaligned(off);
        }
        p
    }

    #[inline]
    pub fn load<T: Copy>(&self, off: usize) -> T {
        // SAFETY: in bounds and aligned (checked by `at`); the memory lives
        // as long as `self._mem`; no concurrent access (type contract).
        unsafe { self.at::<T>(off).read_volatile() }
    }

    #[inline]
    pub fn store<T: Copy>(&self, off: usize, v: T) {
        // SAFETY: as in `load`.
        unsafe { self.at::<T>(off).write_volatile(v) }
    }

    /// Big-endian words at `off` (8-aligned), one volatile 8-byte store
    /// each, the range checked once (as the kernel's `DmaBuffer`).
    #[inline]
    pub fn store_be64s(&self, off: usize, words: &[u64]) {
        let p = self.ptr(off, 8 * words.len()) as *mut u64;
        if !p.is_aligned() {
            unaligned(off);
        }
        for (i, w) in words.iter().enumerate() {
            // SAFETY: p + i is inside the range checked by `ptr`, aligned.
            unsafe { p.add(i).write_volatile(w.to_be()) };
        }
    }

    /// Big-endian words at `off` (8-aligned) into `words`, one volatile
    /// 8-byte load each, the range checked once (as the kernel's
    /// `DmaBuffer`).
    #[inline]
    pub fn load_be64s(&self, off: usize, words: &mut [u64]) {
        let p = self.ptr(off, 8 * words.len()) as *const u64;
        if !p.is_aligned() {
            unaligned(off);
        }
        for (i, w) in words.iter_mut().enumerate() {
            // SAFETY: p + i is inside the range checked by `ptr`, aligned.
            *w = u64::from_be(unsafe { p.add(i).read_volatile() });
        }
    }

    /// Big-endian words at `off + i * stride` (both 8-aligned) into
    /// `words`, one volatile 8-byte load each, the range checked once (as
    /// the kernel's `DmaBuffer`).
    #[inline]
    pub fn load_be64s_strided(&self, off: usize, stride: usize, words: &mut [u64]) {
        let Some(last) = words.len().checked_sub(1) else {
            return;
        };
        let span = stride.checked_mul(last).and_then(|s| s.checked_add(8));
        let p = self.ptr(off, span.unwrap_or(usize::MAX));
        if !(p as usize | stride).is_multiple_of(8) {
            unaligned(off);
        }
        for (i, w) in words.iter_mut().enumerate() {
            // SAFETY: p + stride * i + 8 <= p + span, inside the range
            // checked by `ptr`; aligned (p and stride are).
            *w = u64::from_be(unsafe { (p.add(stride * i) as *const u64).read_volatile() });
        }
    }

    /// Whether an 8-byte access at `p + i` is aligned and `n - i` bytes
    /// remain for it.
    #[inline(always)]
    fn word_at(p: *mut u8, i: usize, n: usize) -> bool {
        (p as usize + i).is_multiple_of(8) && n - i >= 8
    }

    /// Copy out: volatile 8-byte loads where aligned, bytes at the edges
    /// (as the kernel's `DmaBuffer`).
    #[inline]
    pub fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        let p = self.ptr(off, dst.len());
        let mut i = 0;
        while i < dst.len() {
            if Self::word_at(p, i, dst.len()) {
                // SAFETY: p + i .. p + i + 8 is inside the range checked by
                // `ptr`, and aligned.
                let v = unsafe { (p.add(i) as *const u64).read_volatile() };
                dst[i..i + 8].copy_from_slice(&v.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: p + i is inside the range checked by `ptr`.
                dst[i] = unsafe { p.add(i).read_volatile() };
                i += 1;
            }
        }
    }

    /// Copy in: volatile 8-byte stores where aligned, bytes at the edges
    /// (as the kernel's `DmaBuffer`).
    #[inline]
    pub fn write_bytes(&self, off: usize, src: &[u8]) {
        let p = self.ptr(off, src.len());
        let mut i = 0;
        while i < src.len() {
            if Self::word_at(p, i, src.len()) {
                let mut w = [0u8; 8];
                w.copy_from_slice(&src[i..i + 8]);
                // SAFETY: as in `read_bytes`.
                unsafe { (p.add(i) as *mut u64).write_volatile(u64::from_ne_bytes(w)) };
                i += 8;
            } else {
                // SAFETY: p + i is inside the range checked by `ptr`.
                unsafe { p.add(i).write_volatile(src[i]) };
                i += 1;
            }
        }
    }

    #[inline]
    pub fn fill(&self, off: usize, len: usize, byte: u8) {
        let p = self.ptr(off, len);
        let word = u64::from_ne_bytes([byte; 8]);
        let mut i = 0;
        while i < len {
            if Self::word_at(p, i, len) {
                // SAFETY: as in `read_bytes`.
                unsafe { (p.add(i) as *mut u64).write_volatile(word) };
                i += 8;
            } else {
                // SAFETY: p + i is inside the range checked by `ptr`.
                unsafe { p.add(i).write_volatile(byte) };
                i += 1;
            }
        }
    }

    /// A plain slice over a range software owns (platform contract).
    #[inline]
    pub fn with_bytes<R>(&self, off: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let p = self.ptr(off, len);
        // SAFETY: in bounds; nothing writes the range while `f` runs (the
        // DmaRegion contract, and the model does not run meanwhile).
        f(unsafe { std::slice::from_raw_parts(p, len) })
    }

    #[inline]
    pub fn with_bytes_mut<R>(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let p = self.ptr(off, len);
        // SAFETY: in bounds; exclusive use of the range while `f` runs (the
        // DmaRegion contract, and the model does not run meanwhile).
        f(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }
}

impl Drop for HostMem {
    fn drop(&mut self) {
        // SAFETY: ptr was returned by alloc_zeroed with this very layout and
        // is freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
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

    #[test]
    fn zeroed_page_rounded_and_accessible() {
        let m = HostMem::new(100).unwrap();
        assert_eq!(m.len(), PAGE);
        assert_eq!(m.load64(4088), 0);
        m.store32(4, 0x1122_3344);
        assert_eq!(m.load32(4), 0x1122_3344);
        m.write_bytes(3, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let mut b = [0u8; 11];
        m.read_bytes(3, &mut b);
        assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        m.fill(0, 16, 0xab);
        assert!(m.with_bytes(0, 16, |s| s.iter().all(|x| *x == 0xab)));
    }

    #[test]
    #[should_panic(expected = "outside a region")]
    fn out_of_bounds_panics() {
        let m = HostMem::new(PAGE).unwrap();
        m.load32(PAGE);
    }
}

/// A global allocator for test binaries that counts what goes through it,
/// forwarding everything to `std::alloc::System`. Tests install it with
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc::new();`
/// and read [`live_bytes`], [`live_allocations`], [`allocations_total`] and
/// [`thread_allocations`] (a realloc counts as one allocation; its size
/// change counts in live bytes).
#[derive(Debug, Default)]
pub struct CountingAlloc;

impl CountingAlloc {
    pub const fn new() -> CountingAlloc {
        CountingAlloc
    }
}

static LIVE_BYTES: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);
static LIVE_ALLOCS: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);
static TOTAL_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Allocations made by this thread (const-initialised, no destructor:
    /// safe to touch from inside the allocator).
    static THREAD_ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn note_alloc() {
    TOTAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
}

/// Bytes allocated and not yet freed, through [`CountingAlloc`].
pub fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Allocations not yet freed.
pub fn live_allocations() -> isize {
    LIVE_ALLOCS.load(Ordering::Relaxed)
}

/// Allocation calls (alloc, alloc_zeroed, realloc) since the start, all threads.
pub fn allocations_total() -> u64 {
    TOTAL_ALLOCS.load(Ordering::Relaxed)
}

/// Allocation calls made by the calling thread since it started: immune to
/// the test harness's own threads.
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCS.try_with(|c| c.get()).unwrap_or(0)
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the bookkeeping is atomic
// counters and a const thread-local that never allocates.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's (valid) layout.
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            note_alloc();
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's (valid) layout.
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !p.is_null() {
            note_alloc();
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr/layout come from a matching alloc through us.
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds realloc's contract.
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note_alloc();
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}
