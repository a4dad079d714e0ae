//! MSI-X of the harness: the model signals, the driver takes pending flags.
//! The table and PBA (BAR0 +0x2000 / +0x3000) belong to the platform, as
//! with QEMU: the harness keeps them here and never routes them to the model.
#![deny(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};

use crate::dma::Interrupts;
use crate::pci_config::MSIX_VECTORS;

const N: usize = MSIX_VECTORS as usize;

#[derive(Debug)]
pub struct Msix {
    enabled: AtomicBool,
    bound: AtomicU16,
    pending: [AtomicBool; N],
    /// Pending bits of masked vectors (the PBA).
    pba: [AtomicBool; N],
    masked: [AtomicBool; N],
    count: [AtomicU64; N],
    /// Table words as last written (address lo/hi, data, vector control).
    table: [AtomicU32; N * 4],
}

impl Default for Msix {
    fn default() -> Self {
        Msix {
            enabled: AtomicBool::new(false),
            bound: AtomicU16::new(0),
            pending: std::array::from_fn(|_| AtomicBool::new(false)),
            pba: std::array::from_fn(|_| AtomicBool::new(false)),
            masked: std::array::from_fn(|_| AtomicBool::new(false)),
            count: std::array::from_fn(|_| AtomicU64::new(0)),
            table: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

impl Msix {
    pub fn enable(&self, n: u16) {
        self.bound.store(n, Ordering::Release);
        self.enabled.store(true, Ordering::Release);
    }

    pub fn disable(&self) {
        self.enabled.store(false, Ordering::Release);
        self.bound.store(0, Ordering::Release);
        for i in 0..N {
            self.pending[i].store(false, Ordering::Relaxed);
            self.pba[i].store(false, Ordering::Relaxed);
        }
    }

    pub fn take_pending(&self, v: u16) -> bool {
        let v = v as usize;
        v < N && self.pending[v].swap(false, Ordering::AcqRel)
    }

    pub fn set_masked(&self, v: u16, masked: bool) {
        let v = v as usize;
        if v >= N {
            return;
        }
        self.masked[v].store(masked, Ordering::Release);
        if !masked && self.pba[v].swap(false, Ordering::AcqRel) {
            self.pending[v].store(true, Ordering::Release);
        }
    }

    pub fn count(&self, v: u16) -> u64 {
        self.count
            .get(v as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// BAR0 read inside the table (0x2000..0x2400) or PBA (0x3000..0x3008).
    pub fn bar_read32(&self, off: usize) -> u32 {
        if (0x2000..0x2000 + N * 16).contains(&off) {
            return self.table[(off - 0x2000) / 4].load(Ordering::Relaxed);
        }
        if (0x3000..0x3008).contains(&off) {
            let first = (off - 0x3000) * 8;
            return (0..32).fold(0u32, |acc, i| {
                acc | ((self.pba[first + i].load(Ordering::Relaxed) as u32) << i)
            });
        }
        0
    }

    /// BAR0 write inside the table: vector control bit 0 masks.
    pub fn bar_write32(&self, off: usize, value: u32) {
        if (0x2000..0x2000 + N * 16).contains(&off) {
            let word = (off - 0x2000) / 4;
            self.table[word].store(value, Ordering::Relaxed);
            if word % 4 == 3 {
                self.set_masked((word / 4) as u16, value & 1 != 0);
            }
        }
    }
}

impl Interrupts for Msix {
    fn signal(&self, vector: u16) {
        let v = vector as usize;
        if v >= N {
            return;
        }
        self.count[v].fetch_add(1, Ordering::Relaxed);
        if !self.enabled.load(Ordering::Acquire) || vector >= self.bound.load(Ordering::Acquire) {
            return;
        }
        if self.masked[v].load(Ordering::Acquire) {
            self.pba[v].store(true, Ordering::Release);
        } else {
            self.pending[v].store(true, Ordering::Release);
        }
    }
}
