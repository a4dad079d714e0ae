//! MSI-X through the eventfds QEMU hands over with SET_IRQS
//! (vfio-user spec "VFIO_USER_DEVICE_SET_IRQS", VFIO_IRQ_SET_ACTION_TRIGGER
//! with VFIO_IRQ_SET_DATA_EVENTFD): writing 1 to a vector's eventfd makes
//! QEMU deliver that vector's message. QEMU emulates the MSI-X table, its
//! masks and the PBA itself, so the model only signals.
#![deny(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dma::Interrupts;
use crate::pci_config::MSIX_VECTORS;

const N: usize = MSIX_VECTORS as usize;

/// The function's MSI-X vectors as eventfds.
#[derive(Debug)]
pub struct EventfdIrqs {
    fds: RwLock<Vec<Option<File>>>,
    /// Signals per vector, delivered or not.
    signalled: [AtomicU64; N],
    /// Signals that found no eventfd (vector not enabled by the guest).
    dropped: AtomicU64,
}

impl Default for EventfdIrqs {
    fn default() -> Self {
        EventfdIrqs {
            fds: RwLock::new((0..N).map(|_| None).collect()),
            signalled: std::array::from_fn(|_| AtomicU64::new(0)),
            dropped: AtomicU64::new(0),
        }
    }
}

/// Why a SET_IRQS was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    /// `start + count` runs past the 64 vectors.
    OutOfRange,
    /// Neither one fd per vector nor none at all.
    FdCount,
}

impl EventfdIrqs {
    /// SET_IRQS trigger of vectors `start..start+count`: `fds` (one per
    /// vector) become their eventfds; no fds with count 0 disables them all
    /// (VFIO_IRQ_SET_DATA_NONE), no fds otherwise disables those vectors.
    pub fn set(&self, start: u32, count: u32, fds: Vec<File>) -> Result<(), IrqError> {
        let mut table = self.fds.write().unwrap_or_else(|e| e.into_inner());
        if count == 0 && fds.is_empty() {
            table.iter_mut().for_each(|fd| *fd = None);
            return Ok(());
        }
        let end = start
            .checked_add(count)
            .filter(|end| *end as usize <= N)
            .ok_or(IrqError::OutOfRange)?;
        if !fds.is_empty() && fds.len() != count as usize {
            return Err(IrqError::FdCount);
        }
        let mut fds = fds.into_iter();
        for v in start..end {
            table[v as usize] = fds.next();
        }
        Ok(())
    }

    /// Forget every eventfd.
    pub fn clear(&self) {
        let mut table = self.fds.write().unwrap_or_else(|e| e.into_inner());
        table.iter_mut().for_each(|fd| *fd = None);
    }

    pub fn signalled(&self, vector: u16) -> u64 {
        self.signalled
            .get(vector as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Vectors that have an eventfd.
    pub fn enabled(&self) -> usize {
        let table = self.fds.read().unwrap_or_else(|e| e.into_inner());
        table.iter().filter(|fd| fd.is_some()).count()
    }
}

impl Interrupts for EventfdIrqs {
    fn signal(&self, vector: u16) {
        let v = vector as usize;
        if v >= N {
            return;
        }
        self.signalled[v].fetch_add(1, Ordering::Relaxed);
        let table = self.fds.read().unwrap_or_else(|e| e.into_inner());
        match &table[v] {
            // An eventfd write adds to its counter and never blocks short of
            // 2^64 - 2 pending signals; a failure leaves nothing to undo.
            Some(fd) => {
                let mut fd: &File = fd;
                if let Err(e) = fd.write_all(&1u64.to_ne_bytes()) {
                    log::warn!(target: "mlx5_sim::vfio", "MSI-X vector {v}: eventfd write: {e}");
                }
            }
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A pipe stands in for an eventfd: the test reads what was signalled.
    fn pipe() -> (File, File) {
        let (r, w) = std::io::pipe().unwrap();
        (
            File::from(std::os::fd::OwnedFd::from(r)),
            File::from(std::os::fd::OwnedFd::from(w)),
        )
    }

    #[test]
    fn signals_reach_the_vectors_fd_and_are_counted() {
        let irqs = EventfdIrqs::default();
        let (mut r0, w0) = pipe();
        let (mut r1, w1) = pipe();
        irqs.set(3, 2, vec![w0, w1]).unwrap();
        assert_eq!(irqs.enabled(), 2);
        irqs.signal(4);
        irqs.signal(3);
        irqs.signal(9);
        irqs.signal(200);
        let mut b = [0u8; 8];
        r0.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 1);
        r1.read_exact(&mut b).unwrap();
        assert_eq!(irqs.signalled(3), 1);
        assert_eq!(irqs.signalled(4), 1);
        assert_eq!(irqs.signalled(9), 1);
        assert_eq!(irqs.dropped(), 1);
        // Disabling one vector, then all.
        irqs.set(4, 1, vec![]).unwrap();
        assert_eq!(irqs.enabled(), 1);
        irqs.set(0, 0, vec![]).unwrap();
        assert_eq!(irqs.enabled(), 0);
    }

    #[test]
    fn bad_ranges_are_refused() {
        let irqs = EventfdIrqs::default();
        assert_eq!(irqs.set(63, 2, vec![]), Err(IrqError::OutOfRange));
        assert_eq!(irqs.set(u32::MAX, 2, vec![]), Err(IrqError::OutOfRange));
        let (_r, w) = pipe();
        assert_eq!(irqs.set(0, 2, vec![w]), Err(IrqError::FdCount));
    }
}
