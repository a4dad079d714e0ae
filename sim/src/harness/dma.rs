//! DMA regions of the harness: `SimDma` (the driver's handle, implementing
//! `cxos_drivers::DmaRegion`) and `HostDmaSpace` (the model's view, resolving
//! bus addresses to host memory).
//!
//! Bus addresses start at 4 GiB, are never reused, and every region is
//! followed by an unmapped guard page, so an overrun or a use after free is
//! a fault the sanitizer reports, never a silent access to other memory.
#![deny(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use cxos_drivers::{DmaAddr, DmaRegion};

use super::mem::{HostMem, PAGE};
use crate::dma::{DmaFault, DmaSpace};

const BUS_BASE: u64 = 1 << 32;
/// Freed ranges remembered to tell "freed" from "never mapped". The
/// history is allocated at full size up front so the heap stays flat over
/// any number of allocate/free cycles (driver tests count allocations).
const FREED_KEPT: usize = 4096;

#[derive(Debug)]
struct Mapping {
    mem: Arc<HostMem>,
}

/// The bus as the model sees it.
#[derive(Debug)]
pub struct HostDmaSpace {
    regions: RwLock<BTreeMap<u64, Mapping>>,
    freed: Mutex<VecDeque<(u64, u64)>>,
    next: AtomicU64,
    live_bytes: AtomicU64,
}

impl Default for HostDmaSpace {
    fn default() -> Self {
        HostDmaSpace {
            regions: RwLock::new(BTreeMap::new()),
            freed: Mutex::new(VecDeque::with_capacity(FREED_KEPT)),
            next: AtomicU64::new(BUS_BASE),
            live_bytes: AtomicU64::new(0),
        }
    }
}

impl HostDmaSpace {
    /// Map a fresh region of `len` bytes; returns its bus address and memory.
    pub fn map(&self, len: usize) -> Option<(u64, Arc<HostMem>)> {
        let mem = Arc::new(HostMem::new(len)?);
        let span = mem.len() as u64 + PAGE as u64;
        let base = self.next.fetch_add(span, Ordering::Relaxed);
        self.regions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(base, Mapping { mem: mem.clone() });
        self.live_bytes.fetch_add(len as u64, Ordering::Relaxed);
        Some((base, mem))
    }

    fn unmap(&self, base: u64, len: usize) {
        let removed = self
            .regions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&base);
        if let Some(m) = removed {
            let mut freed = self.freed.lock().unwrap_or_else(|e| e.into_inner());
            if freed.len() == FREED_KEPT {
                freed.pop_front();
            }
            freed.push_back((base, base + m.mem.len() as u64));
            self.live_bytes.fetch_sub(len as u64, Ordering::Relaxed);
        }
    }

    /// (regions, bytes) currently mapped.
    pub fn in_use(&self) -> (usize, usize) {
        let n = self.regions.read().unwrap_or_else(|e| e.into_inner()).len();
        (n, self.live_bytes.load(Ordering::Relaxed) as usize)
    }

    fn resolve(&self, addr: u64, len: usize) -> Result<(Arc<HostMem>, usize), DmaFault> {
        let regions = self.regions.read().unwrap_or_else(|e| e.into_inner());
        if let Some((base, m)) = regions.range(..=addr).next_back() {
            let off = addr - base;
            if off < m.mem.len() as u64 {
                if off + len as u64 > m.mem.len() as u64 {
                    return Err(DmaFault::CrossesRegion);
                }
                return Ok((m.mem.clone(), off as usize));
            }
        }
        drop(regions);
        let freed = self.freed.lock().unwrap_or_else(|e| e.into_inner());
        if freed.iter().any(|(s, e)| addr >= *s && addr < *e) {
            Err(DmaFault::Freed)
        } else {
            Err(DmaFault::Unmapped)
        }
    }
}

impl DmaSpace for HostDmaSpace {
    fn read(&self, addr: u64, dst: &mut [u8]) -> Result<(), DmaFault> {
        let (mem, off) = self.resolve(addr, dst.len())?;
        mem.read_bytes(off, dst);
        Ok(())
    }

    fn write(&self, addr: u64, src: &[u8]) -> Result<(), DmaFault> {
        let (mem, off) = self.resolve(addr, src.len())?;
        mem.write_bytes(off, src);
        Ok(())
    }
}

/// A DMA region handed to the driver. Dropping it unmaps the region: a
/// later device access to it is reported by the sanitizer as a use after free.
#[derive(Debug)]
pub struct SimDma {
    mem: Arc<HostMem>,
    base: u64,
    len: usize,
    space: Arc<HostDmaSpace>,
}

impl SimDma {
    pub(crate) fn new(space: &Arc<HostDmaSpace>, len: usize) -> Option<SimDma> {
        let (base, mem) = space.map(len)?;
        Some(SimDma {
            mem,
            base,
            len,
            space: space.clone(),
        })
    }

    /// The host memory behind the region (the bench platform's volatile
    /// view of it).
    pub(crate) fn host_mem(&self) -> Arc<HostMem> {
        self.mem.clone()
    }

    fn check(&self, off: usize, n: usize) {
        assert!(
            off.checked_add(n).is_some_and(|e| e <= self.len),
            "access {off:#x}+{n:#x} past the end of a {:#x}-byte DMA region",
            self.len
        );
    }
}

impl Drop for SimDma {
    fn drop(&mut self) {
        self.space.unmap(self.base, self.len);
    }
}

impl DmaRegion for SimDma {
    fn device_addr(&self) -> DmaAddr {
        DmaAddr(self.base)
    }
    fn len(&self) -> usize {
        self.len
    }
    fn read_u8(&self, offset: usize) -> u8 {
        self.check(offset, 1);
        self.mem.read_u8(offset)
    }
    fn write_u8(&self, offset: usize, value: u8) {
        self.check(offset, 1);
        self.mem.write_u8(offset, value)
    }
    fn read_be16(&self, offset: usize) -> u16 {
        self.check(offset, 2);
        u16::from_be(self.mem.load16(offset))
    }
    fn write_be16(&self, offset: usize, value: u16) {
        self.check(offset, 2);
        self.mem.store16(offset, value.to_be())
    }
    fn read_be32(&self, offset: usize) -> u32 {
        self.check(offset, 4);
        u32::from_be(self.mem.load32(offset))
    }
    fn write_be32(&self, offset: usize, value: u32) {
        self.check(offset, 4);
        self.mem.store32(offset, value.to_be())
    }
    fn read_be64(&self, offset: usize) -> u64 {
        self.check(offset, 8);
        u64::from_be(self.mem.load64(offset))
    }
    fn write_be64(&self, offset: usize, value: u64) {
        self.check(offset, 8);
        self.mem.store64(offset, value.to_be())
    }
    fn read_be64s(&self, offset: usize, words: &mut [u64]) {
        self.check(offset, 8 * words.len());
        for (i, w) in words.iter_mut().enumerate() {
            *w = u64::from_be(self.mem.load64(offset + 8 * i));
        }
    }
    fn write_be64s(&self, offset: usize, words: &[u64]) {
        self.check(offset, 8 * words.len());
        for (i, w) in words.iter().enumerate() {
            self.mem.store64(offset + 8 * i, w.to_be());
        }
    }
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        self.check(offset, dst.len());
        self.mem.read_bytes(offset, dst)
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        self.check(offset, src.len());
        self.mem.write_bytes(offset, src)
    }
    fn fill(&self, offset: usize, len: usize, byte: u8) {
        self.check(offset, len);
        self.mem.fill(offset, len, byte)
    }
    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        self.check(offset, len);
        self.mem.with_bytes(offset, len, f)
    }
    fn with_bytes_mut<R>(&self, offset: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        self.check(offset, len);
        self.mem.with_bytes_mut(offset, len, f)
    }
}
