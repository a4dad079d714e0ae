//! The work queue context shared by SQs and RQs (`mlx5_ifc_wq_bits` in
//! mlx5_ifc.h; PRM "Work Queue Context"), queue states, and the ring
//! memory every data-path queue uses: one DMA region holding the ring
//! followed by its 64-byte doorbell record.

use alloc::vec::Vec;

use cxos_drivers::{DmaAlloc, DmaRegion};

use crate::layout::{Field, Field64};

/// `mlx5_ifc_wq_bits` (0xc0 bytes, then the page list `pas`).
pub mod wqc {
    use crate::layout::{Field, Field64};
    pub const WQ_TYPE: Field = Field::new(0x00, 31, 28);
    pub const PD: Field = Field::new(0x08, 23, 0);
    pub const UAR_PAGE: Field = Field::new(0x0c, 23, 0);
    pub const DBR_ADDR: Field64 = Field64::new(0x10);
    pub const HW_COUNTER: Field = Field::new(0x18, 31, 0);
    pub const SW_COUNTER: Field = Field::new(0x1c, 31, 0);
    pub const LOG_WQ_STRIDE: Field = Field::new(0x20, 19, 16);
    /// log2(page size) - 12.
    pub const LOG_WQ_PG_SZ: Field = Field::new(0x20, 12, 8);
    pub const LOG_WQ_SZ: Field = Field::new(0x20, 4, 0);
    /// Striding RQ: log2(strides per WQE) - 9, log2(stride bytes) - 6.
    pub const LOG_WQE_NUM_OF_STRIDES: Field = Field::new(0x24, 11, 8);
    pub const LOG_WQE_STRIDE_SIZE: Field = Field::new(0x24, 2, 0);
    /// The page list, one be64 per 4 KiB page.
    pub const PAS: usize = 0xc0;
}

/// `wq_type`: cyclic (`MLX5_WQ_TYPE_CYCLIC`), cyclic striding
/// (`MLX5_WQ_TYPE_CYCLIC_STRIDING_RQ`).
pub const WQ_TYPE_CYCLIC: u32 = 1;
pub const WQ_TYPE_CYCLIC_STRIDING: u32 = 3;
/// The bases of the striding fields (`MLX5_MPWQE_LOG_NUM_STRIDES_BASE`,
/// `MLX5_MPWQE_LOG_STRIDE_SZ_BASE`).
pub const LOG_NUM_STRIDES_BASE: u8 = 9;
pub const LOG_STRIDE_SZ_BASE: u8 = 6;

/// SQ/RQ states (`MLX5_SQC_STATE_*`, `MLX5_RQC_STATE_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum QueueState {
    Rst,
    Rdy,
    Err,
}

impl QueueState {
    pub const fn bits(self) -> u32 {
        match self {
            QueueState::Rst => 0,
            QueueState::Rdy => 1,
            QueueState::Err => 3,
        }
    }

    /// A state field read from the device.
    pub fn from_bits(v: u32) -> Option<QueueState> {
        match v {
            0 => Some(QueueState::Rst),
            1 => Some(QueueState::Rdy),
            3 => Some(QueueState::Err),
            _ => None,
        }
    }
}

/// Bytes reserved for the doorbell record after a ring (PRM: 8 bytes used,
/// 64 keeps it on its own cache line).
pub const DBR_LEN: usize = 64;

/// A ring plus its doorbell record in one DMA region: the ring fills
/// whole 4 KiB pages (those the page list names) and the doorbell record
/// sits on the page after them, never inside a ring page.
#[derive(Debug)]
pub struct Ring<D: DmaRegion> {
    pub mem: D,
    /// Ring length in bytes, a multiple of 4 KiB; the doorbell record
    /// follows at this offset.
    pub ring_len: usize,
}

impl<D: DmaRegion> Ring<D> {
    /// Allocate a ring of at least `ring_len` bytes plus the doorbell record.
    pub fn alloc<A: DmaAlloc<Region = D>>(p: &A, ring_len: usize) -> Result<Self, crate::Error> {
        let ring_len = ring_len.max(1).div_ceil(4096) * 4096;
        let mem = p.dma_alloc(ring_len + DBR_LEN)?;
        Ok(Ring { mem, ring_len })
    }

    pub fn dbr_addr(&self) -> u64 {
        self.mem.device_addr().offset(self.ring_len).get()
    }

    /// Write dword `i` of the doorbell record. The queue that owns the
    /// ring issues [`cxos_drivers::Mmio::barrier_before_doorbell_record`]
    /// first.
    pub fn write_dbr(&self, i: usize, value: u32) {
        self.mem.write_be32(self.ring_len + 4 * i, value);
    }

    pub fn read_dbr(&self, i: usize) -> u32 {
        self.mem.read_be32(self.ring_len + 4 * i)
    }

    /// The 4 KiB pages of the ring (not the doorbell record), for `pas`.
    pub fn pages(&self) -> Vec<u64> {
        (0..self.ring_len.div_ceil(4096))
            .map(|i| self.mem.device_addr().offset(i * 4096).get())
            .collect()
    }
}

/// Fill a `wq_bits` at `base` of `inbox` for a cyclic queue.
pub(crate) struct WqParams<'a> {
    pub pd: u32,
    pub uar: u32,
    pub dbr_addr: u64,
    pub log_stride: u8,
    pub log_size: u8,
    pub pages: &'a [u64],
    /// Striding RQ: (log2 strides per WQE, log2 stride bytes).
    pub striding: Option<(u8, u8)>,
}

impl WqParams<'_> {
    pub(crate) fn write(&self, inbox: &mut [u8], base: usize) {
        let f = |x: Field| x.within(base);
        let f64 = |x: Field64| x.within(base);
        match self.striding {
            None => f(wqc::WQ_TYPE).set(inbox, WQ_TYPE_CYCLIC),
            Some((log_n, log_sz)) => {
                f(wqc::WQ_TYPE).set(inbox, WQ_TYPE_CYCLIC_STRIDING);
                f(wqc::LOG_WQE_NUM_OF_STRIDES).set(inbox, (log_n - LOG_NUM_STRIDES_BASE) as u32);
                f(wqc::LOG_WQE_STRIDE_SIZE).set(inbox, (log_sz - LOG_STRIDE_SZ_BASE) as u32);
            }
        }
        f(wqc::PD).set(inbox, self.pd);
        f(wqc::UAR_PAGE).set(inbox, self.uar);
        f64(wqc::DBR_ADDR).set(inbox, self.dbr_addr);
        f(wqc::LOG_WQ_STRIDE).set(inbox, self.log_stride as u32);
        f(wqc::LOG_WQ_PG_SZ).set(inbox, 0);
        f(wqc::LOG_WQ_SZ).set(inbox, self.log_size as u32);
        for (i, &pa) in self.pages.iter().enumerate() {
            Field64::new(base + wqc::PAS + 8 * i).set(inbox, pa);
        }
    }

    pub(crate) fn len(&self) -> usize {
        wqc::PAS + 8 * self.pages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockPlatform;

    #[test]
    fn states_round_trip_and_refuse_unknown() {
        for s in [QueueState::Rst, QueueState::Rdy, QueueState::Err] {
            assert_eq!(QueueState::from_bits(s.bits()), Some(s));
        }
        assert_eq!(QueueState::from_bits(2), None);
    }

    #[test]
    fn ring_dbr_follows_ring_and_pages_exclude_it() {
        let p = MockPlatform::new();
        let r = Ring::alloc(&p, 8192).unwrap();
        let base = r.mem.device_addr().get();
        assert_eq!(r.dbr_addr(), base + 8192);
        assert_eq!(r.pages(), [base, base + 4096]);
        r.write_dbr(1, 0x1234);
        assert_eq!(p.read(base + 8192 + 4, 4), [0, 0, 0x12, 0x34]);
        // A small ring still owns its whole page; the record is past it.
        let r = Ring::alloc(&p, 256).unwrap();
        let base = r.mem.device_addr().get();
        assert_eq!(r.dbr_addr(), base + 4096);
        assert_eq!(r.pages(), [base]);
    }
}
