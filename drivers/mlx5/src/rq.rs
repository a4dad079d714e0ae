//! Receive queues (PRM "Receive Queue"; `mlx5_ifc_rqc_bits`,
//! `create_rq_in/out`, `modify_rq_in`, `destroy_rq_in`, `query_rq_in/out`
//! in mlx5_ifc.h) and the cyclic receive ring with its buffer pool.
//!
//! Cyclic RQ: WQE i is one data segment (stride 16 bytes) pointing at
//! buffer i of one pool region; the WQEs are written once and never change.
//! The device may use WQEs below the doorbell record's 16-bit counter, so
//! re-posting a consumed buffer is only counting: buffers are handed back
//! in the order they were received ([`Rq::recycle`]) and the doorbell
//! record is written once per batch ([`Rq::commit`]).

use alloc::vec::Vec;
use core::fmt;

use cxos_drivers::{DmaAlloc, DmaRegion, Mmio, Platform, Region};

use crate::cmd::{Command, SimpleCmd, op};
use crate::cq::Cqn;
use crate::cqe::Cqe;
use crate::error::BadOutput;
use crate::layout::Field;
use crate::pd::{Lkey, Pd};
use crate::wq::{QueueState, Ring, WqParams, wqc};
use crate::wqe::{self, DS};

mod burst;
pub use burst::{RxCursor, Span, StrideWindow, Taken};

/// An RQ number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Rqn(pub u32);

/// `mlx5_ifc_rqc_bits` (0x30 bytes, then `wq`).
pub mod rqc {
    use crate::layout::Field;
    pub const RLKY: Field = Field::new(0x00, 31, 31);
    /// vsd: VLAN strip disable.
    pub const VSD: Field = Field::new(0x00, 28, 28);
    pub const MEM_RQ_TYPE: Field = Field::new(0x00, 27, 24);
    pub const STATE: Field = Field::new(0x00, 23, 20);
    pub const FLUSH_IN_ERROR_EN: Field = Field::new(0x00, 18, 18);
    pub const CQN: Field = Field::new(0x08, 23, 0);
    pub const COUNTER_SET_ID: Field = Field::new(0x0c, 31, 24);
    pub const WQ: usize = 0x30;
}

/// create_rq_in / modify_rq_in / query_rq_out: rqc at 0x20.
pub const CTX: usize = 0x20;
/// rqn `[23:0]` of dword 0x08; modify_rq_in: current state `[31:28]`.
pub const RQN: Field = Field::new(0x08, 23, 0);
pub const MODIFY_CUR_STATE: Field = Field::new(0x08, 31, 28);

/// How an RQ's WQEs hold frames.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RqKind {
    /// One buffer per WQE, one frame per buffer.
    Cyclic,
    /// Multi-packet WQEs (PRM "Striding RQ"): each WQE's buffer is
    /// 2^`log_strides` strides of 2^`log_stride` bytes; a frame takes the
    /// next whole strides, so small frames pack densely.
    Striding { log_strides: u8, log_stride: u8 },
}

/// CREATE_RQ (one data segment per WQE).
#[derive(Clone, Debug)]
pub struct CreateRq {
    pub cqn: Cqn,
    pub pd: Pd,
    pub dbr_addr: u64,
    pub log_size: u8,
    /// Q counter set counting this RQ's drops (0: none).
    pub counter_set_id: u8,
    /// Strip the VLAN tag into the CQE (`vsd` 0).
    pub vlan_strip: bool,
    pub kind: RqKind,
    pub pages: Vec<u64>,
}

impl CreateRq {
    fn wq(&self) -> WqParams<'_> {
        WqParams {
            pd: self.pd.0,
            uar: 0,
            dbr_addr: self.dbr_addr,
            log_stride: 4,
            log_size: self.log_size,
            pages: &self.pages,
            striding: match self.kind {
                RqKind::Cyclic => None,
                RqKind::Striding {
                    log_strides,
                    log_stride,
                } => Some((log_strides, log_stride)),
            },
        }
    }
}

impl Command for CreateRq {
    type Output = Rqn;
    const OPCODE: u16 = op::CREATE_RQ;
    fn in_len(&self) -> usize {
        CTX + rqc::WQ + self.wq().len()
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let f = |x: Field| x.within(CTX);
        f(rqc::VSD).set(inbox, !self.vlan_strip as u32);
        f(rqc::MEM_RQ_TYPE).set(inbox, 0);
        f(rqc::STATE).set(inbox, QueueState::Rst.bits());
        f(rqc::FLUSH_IN_ERROR_EN).set(inbox, 1);
        f(rqc::CQN).set(inbox, self.cqn.0);
        f(rqc::COUNTER_SET_ID).set(inbox, self.counter_set_id as u32);
        self.wq().write(inbox, CTX + rqc::WQ);
    }
    fn parse(&self, out: &[u8]) -> Result<Rqn, BadOutput> {
        Ok(Rqn(RQN.get(out)))
    }
}

/// MODIFY_RQ: a state transition.
#[derive(Clone, Copy, Debug)]
pub struct ModifyRq {
    pub rqn: Rqn,
    pub from: QueueState,
    pub to: QueueState,
}

impl Command for ModifyRq {
    type Output = ();
    const OPCODE: u16 = op::MODIFY_RQ;
    fn in_len(&self) -> usize {
        CTX + rqc::WQ + wqc::PAS
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        MODIFY_CUR_STATE.set(inbox, self.from.bits());
        RQN.set(inbox, self.rqn.0);
        rqc::STATE.within(CTX).set(inbox, self.to.bits());
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

pub type DestroyRq = SimpleCmd<{ op::DESTROY_RQ }>;

pub fn destroy_rq(rqn: Rqn) -> DestroyRq {
    DestroyRq::new(0, Some((RQN, rqn.0)))
}

/// What QUERY_RQ reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RqInfo {
    pub state: Option<QueueState>,
    pub cqn: Cqn,
    pub counter_set_id: u8,
    pub hw_counter: u32,
    pub sw_counter: u32,
}

/// QUERY_RQ.
#[derive(Clone, Copy, Debug)]
pub struct QueryRq(pub Rqn);

impl Command for QueryRq {
    type Output = RqInfo;
    const OPCODE: u16 = op::QUERY_RQ;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        CTX + rqc::WQ + wqc::PAS
    }
    fn build(&self, inbox: &mut [u8]) {
        RQN.set(inbox, self.0.0);
    }
    fn parse(&self, out: &[u8]) -> Result<RqInfo, BadOutput> {
        let wq = CTX + rqc::WQ;
        Ok(RqInfo {
            state: QueueState::from_bits(rqc::STATE.within(CTX).get(out)),
            cqn: Cqn(rqc::CQN.within(CTX).get(out)),
            counter_set_id: rqc::COUNTER_SET_ID.within(CTX).get(out) as u8,
            hw_counter: wqc::HW_COUNTER.within(wq).get(out),
            sw_counter: wqc::SW_COUNTER.within(wq).get(out),
        })
    }
}

/// A received frame: buffer `slot` holds `len` bytes from `offset`;
/// once it is recycled, `releases` WQEs may be posted again (1 for a
/// cyclic RQ; for a striding one, 1 when this frame used up its WQE).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RxFrame {
    pub slot: u16,
    pub len: usize,
    pub offset: usize,
    pub releases: u16,
}

/// A responder CQE that yields no frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RxError {
    /// `wqe_counter` (striding: `wqe_id` or the stride index) is not the
    /// next one (device bug; nothing consumed).
    WqeCounter { counter: u16, expected: u16 },
    /// Byte count 0 or larger than the buffer (striding: than the strides
    /// the CQE consumed): the space was consumed and `releases` WQEs must
    /// be recycled; the frame is dropped.
    Length {
        slot: u16,
        byte_cnt: u32,
        releases: u16,
    },
    /// A striding RQ's filler CQE: the rest of the WQE's strides are
    /// skipped; `releases` WQEs to recycle.
    Filler { releases: u16 },
}

impl fmt::Display for RxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RxError::WqeCounter { counter, expected } => {
                write!(f, "completion for WQE {counter}, expected {expected}")
            }
            RxError::Length { slot, byte_cnt, .. } => {
                write!(f, "byte count {byte_cnt} does not fit buffer {slot}")
            }
            RxError::Filler { .. } => f.write_str("filler completion"),
        }
    }
}

impl core::error::Error for RxError {}

/// Receive counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RqStats {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
    pub recoveries: u64,
    /// Striding RQ: filler CQEs (WQE tails skipped) and WQEs used up.
    pub fillers: u64,
    pub wqes_done: u64,
}

/// The receive ring of one RQ, its buffers, and an MMIO handle for the
/// barrier before its doorbell record (an RQ has no BAR doorbell).
#[derive(Debug)]
pub struct Rq<P: Platform> {
    pub rqn: Rqn,
    ring: Ring<Region<P>>,
    bufs: Region<P>,
    mmio: P::Mmio,
    buf_size: usize,
    log_size: u8,
    /// Counter of the next WQE the device completes.
    ci: u16,
    /// The doorbell record's counter: WQEs below it are posted.
    posted: u16,
    /// Counter value last written to the doorbell record.
    published: u16,
    /// Frames handed out and not yet recycled.
    outstanding: u16,
    kind: RqKind,
    /// Striding RQ: strides per WQE (0: cyclic) and log2 of the stride
    /// size, kept apart from `kind` for the packet path.
    nstrides: u32,
    stride_shift: u32,
    /// Entries - 1.
    mask: u16,
    /// Striding RQ: strides of the current WQE used.
    used: u32,
    /// Striding RQ: the strides the last frame a burst took used, the
    /// burst's guess for the next run's frames ([`Rq::run_counter`]): a
    /// hint only, every frame's strides are checked.
    step: u16,
    pub stats: RqStats,
}

impl<P: Platform> Rq<P> {
    /// Ring of 2^log_size 16-byte WQEs and a pool of as many buffers of
    /// `buf_size` bytes (rounded up to 64).
    #[allow(clippy::type_complexity)]
    pub fn alloc<A: DmaAlloc<Region = Region<P>>>(
        p: &A,
        log_size: u8,
        buf_size: usize,
    ) -> Result<(Ring<Region<P>>, Region<P>, usize), crate::Error> {
        let buf_size = buf_size.div_ceil(64) * 64;
        let ring = Ring::alloc(p, (DS << log_size).max(64))?;
        let bufs = p.dma_alloc(buf_size << log_size)?;
        Ok((ring, bufs, buf_size))
    }

    /// Write every WQE (buffer i for WQE i) and post them all.
    pub fn new(
        rqn: Rqn,
        ring: Ring<Region<P>>,
        bufs: Region<P>,
        buf_size: usize,
        log_size: u8,
        lkey: Lkey,
        mmio: P::Mmio,
    ) -> Self {
        let n = 1usize << log_size;
        for i in 0..n {
            let mut w = [0u8; DS];
            let addr = bufs.device_addr().offset(i * buf_size).get();
            wqe::write_data(&mut w, buf_size as u32, lkey.0, addr);
            ring.mem.write_bytes(i * DS, &w);
        }
        let mut rq = Self {
            rqn,
            ring,
            bufs,
            mmio,
            buf_size,
            log_size,
            ci: 0,
            posted: n as u16,
            published: 0,
            outstanding: 0,
            kind: RqKind::Cyclic,
            nstrides: 0,
            stride_shift: 0,
            mask: (n - 1) as u16,
            used: 0,
            step: 1,
            stats: RqStats::default(),
        };
        rq.commit();
        rq
    }

    /// A striding RQ: `buf_size` (each WQE's buffer) must be the strides
    /// times the stride size.
    pub fn striding(mut self, log_strides: u8, log_stride: u8) -> Self {
        self.kind = RqKind::Striding {
            log_strides,
            log_stride,
        };
        self.nstrides = 1 << log_strides;
        self.stride_shift = log_stride as u32;
        self
    }

    pub fn kind(&self) -> RqKind {
        self.kind
    }

    pub fn entries(&self) -> usize {
        1 << self.log_size
    }

    /// Released WQEs to gather before a doorbell-record write (the
    /// per-frame path's batch): a quarter of a cyclic ring; every striding
    /// WQE, since each holds many frames and one held back is that many
    /// frames the device drops when a burst fills the ring.
    #[inline]
    pub fn commit_batch(&self) -> usize {
        if self.nstrides != 0 {
            1
        } else {
            (self.entries() / 4).max(1)
        }
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// WQEs the device may still fill.
    pub fn posted(&self) -> usize {
        self.posted.wrapping_sub(self.ci) as usize
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding as usize
    }

    /// The frame of a responder CQE whose `wqe_id << 16 | wqe_counter`
    /// is `key` and byte count `byte_cnt`, if it is the common case (the
    /// per-frame path's [`RxCursor::take_key`]: the next WQE, or the next
    /// strides of the current one, posted, a length that fits; not a
    /// filler). `None` takes nothing: [`Rq::complete`] then names what is
    /// wrong.
    #[inline(always)]
    pub fn take_common(&mut self, key: u32, byte_cnt: u32) -> Option<RxFrame> {
        let ci = self.ci;
        if self.posted == ci {
            return None;
        }
        let slot = ci & self.mask;
        if self.nstrides == 0 {
            let len = byte_cnt as usize;
            if key as u16 != ci || len.wrapping_sub(1) >= self.buf_size {
                return None;
            }
            self.ci = ci.wrapping_add(1);
            self.outstanding += 1;
            self.stats.packets += 1;
            self.stats.bytes += len as u64;
            return Some(RxFrame {
                slot,
                len,
                offset: 0,
                releases: 1,
            });
        }
        // `mpwrq_cqe_bc`: filler [31], strides [30:16], bytes [15:0]; with
        // the filler bit kept, `strides - 1 < left` refuses a filler, zero
        // strides and more than the WQE has left in one compare.
        let used = self.used;
        let strides = byte_cnt >> 16;
        let len = (byte_cnt & 0xffff) as usize;
        let size = (strides as usize) << self.stride_shift;
        if key != ((ci as u32) << 16 | used)
            || strides.wrapping_sub(1) >= self.nstrides.wrapping_sub(used)
            || len.wrapping_sub(1) >= size
        {
            return None;
        }
        let offset = (used as usize) << self.stride_shift;
        let mut releases = 0;
        if used + strides == self.nstrides {
            self.ci = ci.wrapping_add(1);
            self.used = 0;
            self.outstanding += 1;
            self.stats.wqes_done += 1;
            releases = 1;
        } else {
            self.used = used + strides;
        }
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
        Some(RxFrame {
            slot,
            len,
            offset,
            releases,
        })
    }

    /// A responder CQE: the next buffer (striding: the next strides of
    /// the current WQE) holds a frame.
    #[inline]
    pub fn complete(&mut self, cqe: &Cqe) -> Result<RxFrame, RxError> {
        if self.nstrides != 0 {
            return self.complete_striding(cqe);
        }
        let expected = self.ci;
        if cqe.wqe_counter() != expected || self.posted() == 0 {
            return Err(RxError::WqeCounter {
                counter: cqe.wqe_counter(),
                expected,
            });
        }
        let slot = expected & self.mask;
        self.ci = self.ci.wrapping_add(1);
        self.outstanding += 1;
        let len = cqe.byte_count() as usize;
        if len == 0 || len > self.buf_size {
            self.stats.errors += 1;
            return Err(RxError::Length {
                slot,
                byte_cnt: cqe.byte_count(),
                releases: 1,
            });
        }
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
        Ok(RxFrame {
            slot,
            len,
            offset: 0,
            releases: 1,
        })
    }

    /// `mpwrq_cqe_bc` (device.h): byte_cnt = filler `[31]`, consumed
    /// strides `[30:16]`, bytes `[15:0]`; `wqe_id` names the WQE and
    /// `wqe_counter` the first stride.
    #[inline(always)]
    fn complete_striding(&mut self, cqe: &Cqe) -> Result<RxFrame, RxError> {
        let (nstrides, log_stride) = (self.nstrides, self.stride_shift);
        let filler = cqe.is_filler();
        let strides = cqe.strides();
        let len = cqe.stride_bytes() as usize;
        let expected = self.ci;
        if cqe.wqe_id() != expected || self.posted() == 0 {
            return Err(RxError::WqeCounter {
                counter: cqe.wqe_id(),
                expected,
            });
        }
        if cqe.wqe_counter() as u32 != self.used || strides == 0 || self.used + strides > nstrides {
            return Err(RxError::WqeCounter {
                counter: cqe.wqe_counter(),
                expected: self.used as u16,
            });
        }
        let slot = expected & self.mask;
        let offset = (self.used as usize) << log_stride;
        self.used += strides;
        let mut releases = 0;
        if self.used == nstrides {
            self.ci = self.ci.wrapping_add(1);
            self.used = 0;
            self.outstanding += 1;
            self.stats.wqes_done += 1;
            releases = 1;
        }
        if filler {
            self.stats.fillers += 1;
            return Err(RxError::Filler { releases });
        }
        if len == 0 || len > (strides as usize) << log_stride {
            self.stats.errors += 1;
            return Err(RxError::Length {
                slot,
                byte_cnt: cqe.byte_count(),
                releases,
            });
        }
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
        Ok(RxFrame {
            slot,
            len,
            offset,
            releases,
        })
    }

    /// Read a received frame in place (the device does not own the buffer
    /// until it is recycled).
    #[inline]
    pub fn with_frame<R>(&self, f: RxFrame, g: impl FnOnce(&[u8]) -> R) -> R {
        // [`Rq::complete`] checked the offset and length against the
        // buffer; the region's own check stays (a driver bug panics).
        let slot = (f.slot & self.mask) as usize;
        self.bufs
            .with_bytes(slot * self.buf_size + f.offset, f.len, g)
    }

    /// Give the oldest `n` handed-out buffers back to the device (posted
    /// at the next [`Rq::commit`]).
    #[inline]
    pub fn recycle(&mut self, n: usize) {
        let n = n.min(self.outstanding as usize) as u16;
        self.outstanding -= n;
        self.posted = self.posted.wrapping_add(n);
    }

    /// Publish the receive counter: one doorbell-record write per batch,
    /// none when nothing changed. The barrier orders the reads of the
    /// recycled buffers (and, the first time, the WQE writes) before it.
    #[inline]
    pub fn commit(&mut self) {
        if self.published != self.posted {
            self.mmio.barrier_before_doorbell_record();
            self.ring.write_dbr(0, self.posted as u32);
            self.published = self.posted;
        }
    }

    /// After the RQ went ERR -> RST: the device starts over at WQE 0 and
    /// every buffer is posted again. Refused while frames are handed out
    /// (their slots would be reused).
    pub fn reset(&mut self) -> bool {
        if self.outstanding != 0 {
            return false;
        }
        self.ci = 0;
        self.used = 0;
        self.posted = self.entries() as u16;
        self.published = 0;
        self.mmio.barrier_before_doorbell_record();
        self.ring.write_dbr(0, 0);
        self.stats.recoveries += 1;
        true
    }

    /// Runtime MTU change, with the RQ in RST and nothing handed out: new
    /// data buffers of `buf_size` bytes (64-byte multiple) for a cyclic
    /// RQ, every WQE rewritten to point at them and posted again (at the
    /// next [`Rq::commit`], after RST -> RDY). Returns the old buffers,
    /// which the device no longer owns; `Err` gives `bufs` back untouched
    /// (frames handed out, or a striding RQ, whose strides take any frame).
    pub fn rebuffer(
        &mut self,
        bufs: Region<P>,
        buf_size: usize,
        lkey: Lkey,
    ) -> Result<Region<P>, Region<P>> {
        let n = self.entries();
        if self.outstanding != 0
            || self.kind != RqKind::Cyclic
            || !buf_size.is_multiple_of(64)
            || bufs.len() < n * buf_size
        {
            return Err(bufs);
        }
        for i in 0..n {
            let mut w = [0u8; DS];
            let addr = bufs.device_addr().offset(i * buf_size).get();
            wqe::write_data(&mut w, buf_size as u32, lkey.0, addr);
            self.ring.mem.write_bytes(i * DS, &w);
        }
        self.buf_size = buf_size;
        self.ci = 0;
        self.used = 0;
        self.posted = n as u16;
        self.published = 0;
        self.mmio.barrier_before_doorbell_record();
        self.ring.write_dbr(0, 0);
        Ok(core::mem::replace(&mut self.bufs, bufs))
    }

    /// Device address of the buffer of `slot`.
    pub fn buf_addr(&self, slot: u16) -> u64 {
        let slot = slot as usize & (self.entries() - 1);
        self.bufs.device_addr().offset(slot * self.buf_size).get()
    }

    /// Device addresses of the ring and of its doorbell record.
    pub fn ring_addr(&self) -> (u64, u64) {
        (self.ring.mem.device_addr().get(), self.ring.dbr_addr())
    }

    pub fn dma_bytes(&self) -> usize {
        self.ring.mem.len() + self.bufs.len()
    }

    pub fn into_parts(self) -> (Ring<Region<P>>, Region<P>) {
        (self.ring, self.bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;
    use crate::mock::MockPlatform;

    #[test]
    fn create_rq_golden_bytes() {
        let b = encode(&CreateRq {
            cqn: Cqn(0x77),
            pd: Pd(3),
            dbr_addr: 0x3000_0040,
            log_size: 9,
            counter_set_id: 2,
            vlan_strip: false,
            kind: RqKind::Cyclic,
            pages: alloc::vec![0x3000_0000, 0x3000_1000],
        });
        assert_eq!(b.len(), 0x110 + 16);
        assert_eq!(&b[0..4], &[0x09, 0x08, 0, 0]);
        // rqc dword 0: vsd [28] = 1, mem_rq_type [27:24] = 0, state 0 RST,
        // flush_in_error_en [18] = 1.
        assert_eq!(&b[0x20..0x24], &[0x10, 0x04, 0x00, 0x00]);
        // rqc 0x08 cqn -> 0x28; rqc 0x0c counter_set_id [31:24] -> 0x2c.
        assert_eq!(&b[0x28..0x30], &[0, 0, 0, 0x77, 0x02, 0, 0, 0]);
        // wq at 0x50: cyclic; pd at 0x58; dbr_addr at 0x60.
        assert_eq!(&b[0x50..0x54], &[0x10, 0, 0, 0]);
        assert_eq!(&b[0x58..0x5c], &[0, 0, 0, 3]);
        assert_eq!(&b[0x60..0x68], &[0, 0, 0, 0, 0x30, 0, 0, 0x40]);
        // log_wq_stride 4 (16 B), log_wq_sz 9.
        assert_eq!(&b[0x70..0x74], &[0x00, 0x04, 0x00, 0x09]);
        assert_eq!(&b[0x118..0x120], &[0, 0, 0, 0, 0x30, 0, 0x10, 0]);
    }

    #[test]
    fn modify_destroy_query_golden() {
        let b = encode(&ModifyRq {
            rqn: Rqn(0x55),
            from: QueueState::Rst,
            to: QueueState::Rdy,
        });
        // modify_rq_in: rq_state [31:28] + rqn at 0x08; rqc state at 0x20.
        assert_eq!(&b[0..4], &[0x09, 0x09, 0, 0]);
        assert_eq!(&b[0x08..0x0c], &[0x00, 0, 0, 0x55]);
        assert_eq!(&b[0x20..0x24], &[0x00, 0x10, 0, 0]);
        assert_eq!(
            encode(&destroy_rq(Rqn(0x55)))[..12],
            [0x09, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x55]
        );
        let mut out = alloc::vec![0u8; 0x110];
        out[0x20..0x24].copy_from_slice(&[0x00, 0x10, 0, 0]);
        out[0x28..0x2c].copy_from_slice(&[0, 0, 0, 4]);
        out[0x2c] = 3;
        out[0x68..0x6c].copy_from_slice(&[0, 0, 1, 0]);
        let i = QueryRq(Rqn(1)).parse(&out).unwrap();
        assert_eq!(i.state, Some(QueueState::Rdy));
        assert_eq!(i.cqn, Cqn(4));
        assert_eq!(i.counter_set_id, 3);
        assert_eq!(i.hw_counter, 0x100);
    }

    fn cqe(counter: u16, len: u32) -> Cqe {
        crate::cqe::build::responder(0, counter, len)
    }

    #[test]
    fn wqes_point_at_the_pool_and_everything_is_posted_once() {
        let p = MockPlatform::new();
        let (ring, bufs, bs) = Rq::<MockPlatform>::alloc(&p, 2, 1500).unwrap();
        assert_eq!(bs, 1536);
        let rbase = ring.mem.device_addr().get();
        let dbr = ring.dbr_addr();
        let baddr = bufs.device_addr().get();
        let rq = Rq::<MockPlatform>::new(Rqn(1), ring, bufs, bs, 2, Lkey(0x100), p.clone());
        let mut golden = [0u8; 16];
        golden[..8].copy_from_slice(&[0, 0, 0x06, 0x00, 0, 0, 0x01, 0x00]);
        golden[8..].copy_from_slice(&(baddr + 3 * 1536).to_be_bytes());
        assert_eq!(p.read(rbase + 3 * 16, 16), golden);
        assert_eq!(p.read(dbr, 4), [0, 0, 0, 4]);
        assert_eq!(rq.posted(), 4);
    }

    #[test]
    fn receive_recycle_commit_and_device_input_checks() {
        let p = MockPlatform::new();
        let (ring, bufs, bs) = Rq::<MockPlatform>::alloc(&p, 2, 128).unwrap();
        let dbr = ring.dbr_addr();
        let baddr = bufs.device_addr().get();
        let mut rq = Rq::<MockPlatform>::new(Rqn(1), ring, bufs, bs, 2, Lkey(0x100), p.clone());
        p.write(baddr + 128, &[0xaa, 0xbb, 0xcc]);
        let f0 = rq.complete(&cqe(0, 60)).unwrap();
        let f1 = rq.complete(&cqe(1, 3)).unwrap();
        assert_eq!(
            f1,
            RxFrame {
                slot: 1,
                len: 3,
                offset: 0,
                releases: 1
            }
        );
        assert_eq!(rq.with_frame(f1, |b| b.to_vec()), [0xaa, 0xbb, 0xcc]);
        assert_eq!(f0.slot, 0);
        // Out of order / replayed counter: refused, nothing consumed.
        assert!(matches!(
            rq.complete(&cqe(5, 60)),
            Err(RxError::WqeCounter { expected: 2, .. })
        ));
        // Too long for the buffer: consumed, to be recycled, counted.
        assert_eq!(
            rq.complete(&cqe(2, 129)),
            Err(RxError::Length {
                slot: 2,
                byte_cnt: 129,
                releases: 1
            })
        );
        assert_eq!(rq.stats.errors, 1);
        assert_eq!(rq.posted(), 1);
        rq.recycle(3);
        assert_eq!(p.read(dbr, 4), [0, 0, 0, 4], "not before commit");
        rq.commit();
        assert_eq!(p.read(dbr, 4), [0, 0, 0, 7]);
        assert_eq!(rq.posted(), 4);
        // Wraps: slot of counter 4 is 0.
        let f = rq.complete(&cqe(3, 10)).unwrap();
        assert_eq!(f.slot, 3);
        let f = rq.complete(&cqe(4, 10)).unwrap();
        assert_eq!(f.slot, 0);
        assert!(!rq.reset(), "frames handed out");
        rq.recycle(2);
        assert!(rq.reset());
        rq.commit();
        assert_eq!(p.read(dbr, 4), [0, 0, 0, 4]);
        assert!(rq.complete(&cqe(0, 10)).is_ok());
    }

    #[test]
    fn no_buffer_posted_means_no_completion_accepted() {
        let p = MockPlatform::new();
        let (ring, bufs, bs) = Rq::<MockPlatform>::alloc(&p, 1, 64).unwrap();
        let mut rq = Rq::<MockPlatform>::new(Rqn(1), ring, bufs, bs, 1, Lkey(1), p.clone());
        rq.complete(&cqe(0, 10)).unwrap();
        rq.complete(&cqe(1, 10)).unwrap();
        assert!(rq.complete(&cqe(2, 10)).is_err());
    }

    #[test]
    fn striding_completions_strides_fillers_and_refusals() {
        let p = MockPlatform::new();
        // 2 WQEs of 2^9 strides of 64 bytes.
        let (ring, bufs, bs) = Rq::<MockPlatform>::alloc(&p, 1, 512 * 64).unwrap();
        let baddr = bufs.device_addr().get();
        let mut rq =
            Rq::<MockPlatform>::new(Rqn(1), ring, bufs, bs, 1, Lkey(1), p.clone()).striding(9, 6);
        // mpwrq byte_cnt: filler [31], strides [30:16], bytes [15:0].
        let c = |wqe: u16, stride: u16, bc: u32| crate::cqe::build::responder(wqe, stride, bc);
        // 100 bytes in 2 strides from stride 0.
        p.write(baddr, &[0xab; 4]);
        let f = rq.complete(&c(0, 0, (2 << 16) | 100)).unwrap();
        assert_eq!((f.slot, f.offset, f.len, f.releases), (0, 0, 100, 0));
        assert_eq!(rq.with_frame(f, |b| b[..4].to_vec()), [0xab; 4]);
        // The next frame must start at stride 2 of WQE 0.
        assert!(rq.complete(&c(0, 3, (1 << 16) | 60)).is_err());
        assert!(rq.complete(&c(1, 2, (1 << 16) | 60)).is_err());
        let f = rq.complete(&c(0, 2, (24 << 16) | 1514)).unwrap();
        assert_eq!((f.offset, f.len), (128, 1514));
        // More bytes than its strides hold: dropped, space consumed.
        assert!(matches!(
            rq.complete(&c(0, 26, (1 << 16) | 65)),
            Err(RxError::Length { releases: 0, .. })
        ));
        // Filler for the other 485 strides: WQE 0 done, one release.
        assert_eq!(
            rq.complete(&c(0, 27, (1 << 31) | (485 << 16))),
            Err(RxError::Filler { releases: 1 })
        );
        assert_eq!((rq.stats.fillers, rq.stats.wqes_done), (1, 1));
        // Strides beyond the WQE: refused.
        assert!(rq.complete(&c(1, 0, (513 << 16) | 60)).is_err());
        let f = rq.complete(&c(1, 0, (512 << 16) | 9000)).unwrap();
        assert_eq!((f.slot, f.releases), (1, 1));
        // Nothing posted now (WQE 0 not recycled yet).
        assert!(rq.complete(&c(2, 0, (1 << 16) | 60)).is_err());
        rq.recycle(2);
        rq.commit();
        assert!(rq.complete(&c(2, 0, (1 << 16) | 60)).is_ok());
    }
}
