//! The bench platform: a harness function whose DMA and MMIO accessors do
//! what the kernel's do, so that an instruction count of the driver's
//! packet path (callgrind) includes the accessors it calls and nothing of
//! the model.
//!
//! - DMA regions ([`BenchDma`]) are read and written through
//!   [`VolatileWindow`]: a bounds and alignment check, then one volatile
//!   load or store, as `kernel/src/dma.rs` does; the model sees the same
//!   host memory through its bus.
//! - BAR writes, once [`BenchPlatform::post_writes`] is on, are posted
//!   like PCIe writes: recorded in order in a fixed array (two stores and
//!   a count) and delivered to the model only by [`BenchPlatform::pump`],
//!   which the bench calls outside the measured functions. A BAR read
//!   delivers the posted writes first (a read pushes posted writes on
//!   PCIe). Before that (attach, open) every access goes to the model at
//!   once, as with [`SimPlatform`].
//! - Barriers are compiler fences, as the kernel's (`Bar0`): the model
//!   runs on the same thread, between the driver's calls.
//!
//! Synchronous mode only: the model must not run while the driver holds a
//! plain slice or a volatile access is in flight.
#![deny(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, compiler_fence};

use cxos_drivers::{DmaAddr, DmaAlloc, DmaRegion, Mmio, PlatformError};

use super::mem::VolatileWindow;
use super::{Mode, SimDma, SimPlatform};
use crate::personality::Personality;

/// Posted BAR writes kept before [`BenchPlatform::pump`] must run; more is
/// a bench bug (it forgot to pump) and panics.
pub const MAX_POSTED: usize = 4096;

/// Marks a 32-bit write in the posted log's offset word.
const WRITE32: u64 = 1 << 63;

/// The posted-write log: offsets and values in order.
#[derive(Debug)]
struct Posted {
    on: AtomicBool,
    len: AtomicUsize,
    slots: Box<[AtomicU64]>,
}

impl Posted {
    #[inline]
    fn push(&self, offset: u64, value: u64) {
        let n = self.len.load(Ordering::Relaxed);
        assert!(
            n < MAX_POSTED,
            "{MAX_POSTED} BAR writes posted and not pumped"
        );
        self.slots[2 * n].store(offset, Ordering::Relaxed);
        self.slots[2 * n + 1].store(value, Ordering::Relaxed);
        self.len.store(n + 1, Ordering::Relaxed);
    }

    /// A BlueFlame write: eight 64-bit writes posted at once (one check,
    /// the stores in a row: about what the kernel's four 16-byte stores
    /// cost, rather than eight separate posts).
    fn push_bf(&self, offset: u64, words: &[u64; 8]) {
        let n = self.len.load(Ordering::Relaxed);
        assert!(
            n + 8 <= MAX_POSTED,
            "{MAX_POSTED} BAR writes posted and not pumped"
        );
        let s: &[AtomicU64; 16] = (&self.slots[2 * n..2 * n + 16])
            .try_into()
            .expect("16 slots");
        for i in 0..8 {
            s[2 * i].store(offset + 8 * i as u64, Ordering::Relaxed);
            s[2 * i + 1].store(words[i], Ordering::Relaxed);
        }
        self.len.store(n + 8, Ordering::Relaxed);
    }
}

/// A harness function (synchronous mode) with kernel-like accessors and
/// posted BAR writes (see the module documentation). Clones share the
/// function and the log.
#[derive(Clone, Debug)]
pub struct BenchPlatform {
    sim: SimPlatform,
    posted: Arc<Posted>,
}

impl BenchPlatform {
    /// A bench platform over `sim`, which must run in [`Mode::Synchronous`].
    pub fn new(sim: SimPlatform) -> BenchPlatform {
        assert_eq!(
            sim.mode(),
            Mode::Synchronous,
            "the bench platform is synchronous"
        );
        BenchPlatform {
            sim,
            posted: Arc::new(Posted {
                on: AtomicBool::new(false),
                len: AtomicUsize::new(0),
                slots: (0..2 * MAX_POSTED).map(|_| AtomicU64::new(0)).collect(),
            }),
        }
    }

    /// Two functions wired back to back ([`SimPlatform::pair`]).
    pub fn pair(a: Personality, b: Personality) -> (BenchPlatform, BenchPlatform) {
        let (sa, sb) = SimPlatform::pair(a, b, Mode::Synchronous);
        (BenchPlatform::new(sa), BenchPlatform::new(sb))
    }

    /// The function underneath.
    pub fn sim(&self) -> &SimPlatform {
        &self.sim
    }

    /// From now on (`true`), BAR writes wait in the log for
    /// [`BenchPlatform::pump`]; `false` delivers what waits and goes back
    /// to immediate writes.
    pub fn post_writes(&self, on: bool) {
        if !on {
            self.pump();
        }
        self.posted.on.store(on, Ordering::Relaxed);
    }

    /// Deliver the posted BAR writes in order (the model runs the work
    /// they start, the peer receives what it sends); how many there were.
    pub fn pump(&self) -> usize {
        let n = self.posted.len.swap(0, Ordering::Relaxed);
        for i in 0..n {
            let off = self.posted.slots[2 * i].load(Ordering::Relaxed);
            let value = self.posted.slots[2 * i + 1].load(Ordering::Relaxed);
            if off & WRITE32 != 0 {
                self.sim
                    .bar0_write_be32((off & !WRITE32) as usize, value as u32);
            } else {
                self.sim.bar0_write_be64(off as usize, value);
            }
        }
        n
    }

    #[inline]
    fn posting(&self) -> bool {
        self.posted.on.load(Ordering::Relaxed)
    }
}

platform_over_sim!(BenchPlatform);

impl DmaAlloc for BenchPlatform {
    type Region = BenchDma;

    fn dma_alloc(&self, size: usize) -> Result<BenchDma, PlatformError> {
        let dma = self.sim.dma_alloc(size)?;
        let win = VolatileWindow::new(dma.host_mem(), dma.len());
        Ok(BenchDma { dma, win })
    }
}

impl Mmio for BenchPlatform {
    fn bar0_len(&self) -> usize {
        self.sim.bar0_len()
    }

    fn bar0_read_be32(&self, offset: usize) -> u32 {
        self.pump();
        self.sim.bar0_read_be32(offset)
    }

    fn bar0_write_be32(&self, offset: usize, value: u32) {
        if self.posting() {
            self.posted.push(offset as u64 | WRITE32, value as u64);
        } else {
            self.sim.bar0_write_be32(offset, value);
        }
    }

    fn bar0_read_be64(&self, offset: usize) -> u64 {
        self.pump();
        self.sim.bar0_read_be64(offset)
    }

    #[inline]
    fn bar0_write_be64(&self, offset: usize, value: u64) {
        if self.posting() {
            self.posted.push(offset as u64, value);
        } else {
            self.sim.bar0_write_be64(offset, value);
        }
    }

    #[inline]
    fn bar0_write_bf(&self, offset: usize, words: &[u64; 8]) {
        if self.posting() {
            self.posted.push_bf(offset as u64, words);
        } else {
            self.sim.bar0_write_bf(offset, words);
        }
    }

    #[inline]
    fn barrier_before_doorbell_record(&self) {
        compiler_fence(Ordering::SeqCst);
    }

    #[inline]
    fn barrier_before_mmio_doorbell(&self) {
        compiler_fence(Ordering::SeqCst);
    }

    #[inline]
    fn barrier_after_ownership_read(&self) {
        compiler_fence(Ordering::SeqCst);
    }
}

/// A DMA region of the bench platform: the harness's mapping (what the
/// model reaches), accessed through a [`VolatileWindow`].
#[derive(Debug)]
pub struct BenchDma {
    dma: SimDma,
    win: VolatileWindow,
}

impl DmaRegion for BenchDma {
    #[inline]
    fn device_addr(&self) -> DmaAddr {
        self.dma.device_addr()
    }
    #[inline]
    fn len(&self) -> usize {
        self.win.len()
    }
    #[inline]
    fn read_u8(&self, offset: usize) -> u8 {
        self.win.load(offset)
    }
    #[inline]
    fn write_u8(&self, offset: usize, value: u8) {
        self.win.store(offset, value)
    }
    #[inline]
    fn read_be16(&self, offset: usize) -> u16 {
        u16::from_be(self.win.load(offset))
    }
    #[inline]
    fn write_be16(&self, offset: usize, value: u16) {
        self.win.store(offset, value.to_be())
    }
    #[inline]
    fn read_be32(&self, offset: usize) -> u32 {
        u32::from_be(self.win.load(offset))
    }
    #[inline]
    fn write_be32(&self, offset: usize, value: u32) {
        self.win.store(offset, value.to_be())
    }
    #[inline]
    fn read_be64(&self, offset: usize) -> u64 {
        u64::from_be(self.win.load(offset))
    }
    #[inline]
    fn write_be64(&self, offset: usize, value: u64) {
        self.win.store(offset, value.to_be())
    }
    #[inline]
    fn read_be64s(&self, offset: usize, words: &mut [u64]) {
        self.win.load_be64s(offset, words)
    }
    #[inline]
    fn write_be64s(&self, offset: usize, words: &[u64]) {
        self.win.store_be64s(offset, words)
    }
    #[inline]
    fn read_be64s_strided(&self, offset: usize, stride: usize, words: &mut [u64]) {
        self.win.load_be64s_strided(offset, stride, words)
    }
    #[inline]
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        self.win.read_bytes(offset, dst)
    }
    #[inline]
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        self.win.write_bytes(offset, src)
    }
    #[inline]
    fn fill(&self, offset: usize, len: usize, byte: u8) {
        self.win.fill(offset, len, byte)
    }
    #[inline]
    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        self.win.with_bytes(offset, len, f)
    }
    #[inline]
    fn with_bytes_mut<R>(&self, offset: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        self.win.with_bytes_mut(offset, len, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_reach_the_models_memory_and_writes_wait_for_pump() {
        let b = BenchPlatform::new(SimPlatform::new(Personality::ConnectX5, Mode::Synchronous));
        let r = b.dma_alloc(64).unwrap();
        r.write_be32(4, 0x1122_3344);
        assert_eq!(r.read_u8(4), 0x11);
        r.write_be64(8, 0x0102_0304_0506_0708);
        assert_eq!(r.read_be16(8), 0x0102);
        r.write_bytes(16, b"abc");
        let mut out = [0u8; 3];
        r.read_bytes(16, &mut out);
        assert_eq!(&out, b"abc");
        assert_eq!(r.with_bytes(16, 3, |s| s.to_vec()), b"abc");
        // The harness mapping (what the model's bus resolves to) holds
        // the same bytes.
        let mut seen = [0u8; 4];
        r.dma.read_bytes(4, &mut seen);
        assert_eq!(seen, [0x11, 0x22, 0x33, 0x44]);
        // Posted: writes to a UAR page wait until the pump.
        b.post_writes(true);
        b.bar0_write_be64(0x5020, 1);
        b.bar0_write_be32(0x5028, 2);
        assert_eq!(b.posted.len.load(Ordering::Relaxed), 2);
        assert_eq!(b.pump(), 2);
        assert_eq!(b.pump(), 0);
        // A read pushes what is posted.
        b.bar0_write_be64(0x5020, 1);
        let _ = b.bar0_read_be32(0);
        assert_eq!(b.posted.len.load(Ordering::Relaxed), 0);
        b.post_writes(false);
    }

    #[test]
    #[should_panic(expected = "outside region")]
    fn out_of_bounds_panics_like_the_kernel() {
        let b = BenchPlatform::new(SimPlatform::new(Personality::ConnectX5, Mode::Synchronous));
        let r = b.dma_alloc(16).unwrap();
        r.read_be32(14);
    }
}
