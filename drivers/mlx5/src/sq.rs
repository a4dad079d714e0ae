//! Send queues (PRM "Send Queue"; `mlx5_ifc_sqc_bits`, `create_sq_in/out`,
//! `modify_sq_in`, `destroy_sq_in`, `query_sq_in/out` in mlx5_ifc.h) and
//! the transmit ring.
//!
//! Ring: 2^log_size WQEBBs of 64 bytes; every frame is one WQEBB (control
//! segment, Ethernet segment with the inline headers the part requires,
//! one data segment with the reserved lkey). The producer counter `pc`
//! counts WQEBBs (16 bits, as the doorbell record and `wqe_index` hold
//! it). [`Sq::post`] writes WQEs only; [`Sq::ring_doorbell`] publishes a
//! whole batch with one doorbell-record write and one 64-bit UAR write
//! (offset 0x800: the first 8 bytes of the batch's last control segment).
//! A completion is requested every `cq_every` WQEs and on the last WQE of
//! each batch, so every buffer comes back; a requester CQE with
//! `wqe_counter` c completes every WQE up to c.

use alloc::vec;
use alloc::vec::Vec;

use cxos_drivers::{DmaRegion, Platform};

use crate::cmd::{Command, SimpleCmd, op};
use crate::cq::{Cqe, Cqn};
use crate::layout::Field;
use crate::pd::{Lkey, Pd};
use crate::uar::Uar;
use crate::wq::{QueueState, Ring, WqParams, wqc};
use crate::wqe::{self, InlineMode, WQEBB, ctrl, data, eth};

/// An SQ number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Sqn(pub u32);

/// A TIS number (the transport interface an SQ sends through).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Tisn(pub u32);

/// `mlx5_ifc_sqc_bits` (0x30 bytes, then `wq`).
pub mod sqc {
    use crate::layout::Field;
    pub const RLKY: Field = Field::new(0x00, 31, 31);
    pub const FLUSH_IN_ERROR_EN: Field = Field::new(0x00, 28, 28);
    pub const MIN_WQE_INLINE_MODE: Field = Field::new(0x00, 26, 24);
    pub const STATE: Field = Field::new(0x00, 23, 20);
    pub const CQN: Field = Field::new(0x08, 23, 0);
    pub const TIS_LST_SZ: Field = Field::new(0x20, 31, 16);
    pub const TIS_NUM_0: Field = Field::new(0x2c, 23, 0);
    pub const WQ: usize = 0x30;
}

/// create_sq_in / modify_sq_in / query_sq_out: sqc at 0x20.
pub const CTX: usize = 0x20;
/// sqn `[23:0]` of dword 0x08: create_sq_out, destroy/query_sq_in,
/// modify_sq_in (with the current state `[31:28]`).
pub const SQN: Field = Field::new(0x08, 23, 0);
pub const MODIFY_CUR_STATE: Field = Field::new(0x08, 31, 28);

/// CREATE_SQ.
#[derive(Clone, Debug)]
pub struct CreateSq {
    pub cqn: Cqn,
    pub tisn: Tisn,
    pub pd: Pd,
    pub uar: Uar,
    pub dbr_addr: u64,
    pub log_size: u8,
    pub inline: InlineMode,
    pub pages: Vec<u64>,
}

impl CreateSq {
    fn wq(&self) -> WqParams<'_> {
        WqParams {
            pd: self.pd.0,
            uar: self.uar.0,
            dbr_addr: self.dbr_addr,
            log_stride: 6,
            log_size: self.log_size,
            pages: &self.pages,
        }
    }
}

impl Command for CreateSq {
    type Output = Sqn;
    const OPCODE: u16 = op::CREATE_SQ;
    fn in_len(&self) -> usize {
        CTX + sqc::WQ + self.wq().len()
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let f = |x: Field| x.within(CTX);
        // Flushed WQEs complete with errors, so every buffer comes back.
        f(sqc::FLUSH_IN_ERROR_EN).set(inbox, 1);
        f(sqc::MIN_WQE_INLINE_MODE).set(inbox, self.inline.sqc_bits());
        f(sqc::STATE).set(inbox, QueueState::Rst.bits());
        f(sqc::CQN).set(inbox, self.cqn.0);
        f(sqc::TIS_LST_SZ).set(inbox, 1);
        f(sqc::TIS_NUM_0).set(inbox, self.tisn.0);
        self.wq().write(inbox, CTX + sqc::WQ);
    }
    fn parse(&self, out: &[u8]) -> Result<Sqn, &'static str> {
        Ok(Sqn(SQN.get(out)))
    }
}

/// MODIFY_SQ: a state transition (RST -> RDY, ERR -> RST, ...).
#[derive(Clone, Copy, Debug)]
pub struct ModifySq {
    pub sqn: Sqn,
    pub from: QueueState,
    pub to: QueueState,
}

impl Command for ModifySq {
    type Output = ();
    const OPCODE: u16 = op::MODIFY_SQ;
    fn in_len(&self) -> usize {
        CTX + sqc::WQ + wqc::PAS
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        MODIFY_CUR_STATE.set(inbox, self.from.bits());
        SQN.set(inbox, self.sqn.0);
        sqc::STATE.within(CTX).set(inbox, self.to.bits());
    }
    fn parse(&self, _out: &[u8]) -> Result<(), &'static str> {
        Ok(())
    }
}

pub type DestroySq = SimpleCmd<{ op::DESTROY_SQ }>;

pub fn destroy_sq(sqn: Sqn) -> DestroySq {
    DestroySq::new(0, Some((SQN, sqn.0)))
}

/// What QUERY_SQ reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SqInfo {
    pub state: Option<QueueState>,
    pub cqn: Cqn,
    pub hw_counter: u32,
    pub sw_counter: u32,
}

/// QUERY_SQ.
#[derive(Clone, Copy, Debug)]
pub struct QuerySq(pub Sqn);

impl Command for QuerySq {
    type Output = SqInfo;
    const OPCODE: u16 = op::QUERY_SQ;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        CTX + sqc::WQ + wqc::PAS
    }
    fn build(&self, inbox: &mut [u8]) {
        SQN.set(inbox, self.0.0);
    }
    fn parse(&self, out: &[u8]) -> Result<SqInfo, &'static str> {
        let wq = CTX + sqc::WQ;
        Ok(SqInfo {
            state: QueueState::from_bits(sqc::STATE.within(CTX).get(out)),
            cqn: Cqn(sqc::CQN.within(CTX).get(out)),
            hw_counter: wqc::HW_COUNTER.within(wq).get(out),
            sw_counter: wqc::SW_COUNTER.within(wq).get(out),
        })
    }
}

/// UAR page offset of the send doorbell.
pub const UAR_SEND_DOORBELL: usize = 0x800;

/// Why a frame was not posted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxError {
    /// No free WQE: reclaim completions first.
    Full,
    /// Zero length, past the buffer, or longer than the queue takes.
    BadLength,
}

/// A completion the device reported that cannot be right.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BadCompletion {
    /// `wqe_counter` outside the WQEs in flight.
    WqeCounter { counter: u16, cc: u16, pc: u16 },
}

/// Transmit counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SqStats {
    pub packets: u64,
    pub bytes: u64,
    pub doorbells: u64,
    pub completions: u64,
    pub full: u64,
    pub errors: u64,
    pub recoveries: u64,
}

/// Largest frame one data segment carries here (jumbo frames included).
pub const MAX_FRAME: usize = 16 * 1024;

/// The transmit ring of one SQ.
#[derive(Debug)]
pub struct Sq<D: DmaRegion> {
    pub sqn: Sqn,
    ring: Ring<D>,
    log_size: u8,
    pc: u16,
    cc: u16,
    uar_base: usize,
    inline: InlineMode,
    /// Owner cookie of the buffer each WQE sends.
    ids: Vec<u32>,
    /// WQEs since the last one that asks for a completion.
    unsignalled: u16,
    cq_every: u16,
    /// First 8 bytes of the newest control segment and its ring offset.
    last_ctrl: u64,
    last_off: usize,
    /// WQEs written since the last doorbell.
    pending: bool,
    /// Fault injection: corrupt the lkey of the next WQE.
    corrupt_next: bool,
    pub stats: SqStats,
}

impl<D: DmaRegion> Sq<D> {
    /// A ring of 2^log_size WQEBBs with its doorbell record.
    pub fn alloc_ring<P: Platform<Dma = D>>(p: &P, log_size: u8) -> Result<Ring<D>, crate::Error> {
        Ring::alloc(p, WQEBB << log_size)
    }

    pub fn new(
        sqn: Sqn,
        ring: Ring<D>,
        log_size: u8,
        uar: Uar,
        inline: InlineMode,
        cq_every: u16,
    ) -> Self {
        let n = 1usize << log_size;
        Self {
            sqn,
            ring,
            log_size,
            pc: 0,
            cc: 0,
            uar_base: uar.bar_offset(),
            inline,
            ids: vec![0; n],
            unsignalled: 0,
            cq_every: cq_every.clamp(1, (n as u16).max(1)),
            last_ctrl: 0,
            last_off: 0,
            pending: false,
            corrupt_next: false,
            stats: SqStats::default(),
        }
    }

    pub fn entries(&self) -> usize {
        1 << self.log_size
    }

    /// WQEs posted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.pc.wrapping_sub(self.cc) as usize
    }

    pub fn free(&self) -> usize {
        self.entries() - self.in_flight()
    }

    pub fn producer_counter(&self) -> u16 {
        self.pc
    }

    pub fn consumer_counter(&self) -> u16 {
        self.cc
    }

    pub fn inline_mode(&self) -> InlineMode {
        self.inline
    }

    /// Fault injection for tests: the next WQE carries a corrupted lkey,
    /// which the device answers with a local protection error CQE.
    pub fn inject_bad_lkey(&mut self) {
        self.corrupt_next = true;
    }

    /// Write the WQE sending `len` bytes at `off` of `buf`; `id` comes back
    /// from [`Sq::complete`] when the device is done with the buffer. Not
    /// visible to the device before [`Sq::ring_doorbell`].
    #[inline]
    pub fn post<B: DmaRegion>(
        &mut self,
        buf: &B,
        off: usize,
        len: usize,
        lkey: Lkey,
        id: u32,
    ) -> Result<(), TxError> {
        if len == 0 || len > MAX_FRAME || off.checked_add(len).is_none_or(|e| e > buf.len()) {
            return Err(TxError::BadLength);
        }
        if self.free() == 0 {
            self.stats.full += 1;
            return Err(TxError::Full);
        }
        let idx = (self.pc as usize) & (self.entries() - 1);
        let woff = idx * WQEBB;
        let inline = self.inline.bytes(len);
        let has_data = len > inline;
        let ds = wqe::send_ds(inline, has_data);
        let mut w = [0u8; WQEBB];
        let d0 = ((self.pc as u32) << 8) | ctrl::OPCODE_SEND as u32;
        let d1 = (self.sqn.0 << 8) | ds as u32;
        w[ctrl::OPMOD_IDX_OPCODE..][..4].copy_from_slice(&d0.to_be_bytes());
        w[ctrl::QPN_DS..][..4].copy_from_slice(&d1.to_be_bytes());
        self.unsignalled += 1;
        if self.unsignalled >= self.cq_every {
            w[ctrl::FM_CE_SE] = ctrl::CE_CQ_UPDATE;
            self.unsignalled = 0;
        }
        let e = wqe::DS;
        w[e + eth::INLINE_HDR_SZ..][..2].copy_from_slice(&(inline as u16).to_be_bytes());
        if inline > 0 {
            buf.read_bytes(off, &mut w[e + eth::INLINE_HDR_START..][..inline]);
        }
        if has_data {
            let dseg =
                e + wqe::DS + inline.saturating_sub(eth::INLINE_IN_SEG).div_ceil(wqe::DS) * wqe::DS;
            let mut key = lkey.0;
            if self.corrupt_next {
                key ^= 0x00ff_ff00;
                self.corrupt_next = false;
            }
            let addr = buf.device_addr().offset(off + inline).get();
            w[dseg + data::BYTE_COUNT..][..4]
                .copy_from_slice(&((len - inline) as u32).to_be_bytes());
            w[dseg + data::LKEY..][..4].copy_from_slice(&key.to_be_bytes());
            w[dseg + data::ADDR..][..8].copy_from_slice(&addr.to_be_bytes());
        }
        self.ring.mem.write_bytes(woff, &w);
        self.ids[idx] = id;
        self.last_ctrl = ((d0 as u64) << 32) | d1 as u64;
        self.last_off = woff;
        self.pc = self.pc.wrapping_add(1);
        self.pending = true;
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
        Ok(())
    }

    /// Publish every WQE posted since the last call: the last one asks for
    /// a completion, the doorbell record gets the producer counter, then
    /// one 64-bit write to the UAR's send doorbell. Nothing to do: no MMIO.
    #[inline]
    pub fn ring_doorbell<P: Platform>(&mut self, p: &P) {
        if !self.pending {
            return;
        }
        if self.unsignalled != 0 {
            self.ring
                .mem
                .write_u8(self.last_off + ctrl::FM_CE_SE, ctrl::CE_CQ_UPDATE);
            self.unsignalled = 0;
        }
        self.ring.write_dbr(1, self.pc as u32);
        p.bar0_write_be64(self.uar_base + UAR_SEND_DOORBELL, self.last_ctrl);
        self.pending = false;
        self.stats.doorbells += 1;
    }

    /// A requester CQE: every WQE up to `wqe_counter` is done; `f` gets the
    /// owner cookie of each. Returns how many WQEs completed.
    #[inline]
    pub fn complete(&mut self, cqe: &Cqe, mut f: impl FnMut(u32)) -> Result<usize, BadCompletion> {
        let done = cqe.wqe_counter.wrapping_sub(self.cc) as usize + 1;
        if done > self.in_flight() {
            return Err(BadCompletion::WqeCounter {
                counter: cqe.wqe_counter,
                cc: self.cc,
                pc: self.pc,
            });
        }
        let mask = self.entries() - 1;
        for _ in 0..done {
            f(self.ids[self.cc as usize & mask]);
            self.cc = self.cc.wrapping_add(1);
        }
        self.stats.completions += 1;
        Ok(done)
    }

    /// After the SQ went ERR -> RST: hand back every buffer still in flight
    /// (`f` gets each cookie) and start the ring over at counter 0, as the
    /// device does after reset.
    pub fn reset(&mut self, mut f: impl FnMut(u32)) -> usize {
        let mask = self.entries() - 1;
        let n = self.in_flight();
        for _ in 0..n {
            f(self.ids[self.cc as usize & mask]);
            self.cc = self.cc.wrapping_add(1);
        }
        self.pc = 0;
        self.cc = 0;
        self.pending = false;
        self.unsignalled = 0;
        self.ring.write_dbr(1, 0);
        self.stats.recoveries += 1;
        n
    }

    /// Device addresses of the ring and of its doorbell record.
    pub fn ring_addr(&self) -> (u64, u64) {
        (self.ring.mem.device_addr().get(), self.ring.dbr_addr())
    }

    pub fn dma_bytes(&self) -> usize {
        self.ring.mem.len()
    }

    pub fn into_ring(self) -> Ring<D> {
        self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;
    use crate::mock::MockPlatform;

    #[test]
    fn create_sq_golden_bytes() {
        let cmd = CreateSq {
            cqn: Cqn(0x21),
            tisn: Tisn(0x31),
            pd: Pd(0x41),
            uar: Uar(6),
            dbr_addr: 0x2_0000_1000,
            log_size: 8,
            inline: InlineMode::L2,
            pages: alloc::vec![0x2_0000_0000],
        };
        let b = encode(&cmd);
        // create_sq_in: ctx at 0x20, wq at ctx + 0x30 = 0x50, pas at wq + 0xc0.
        assert_eq!(b.len(), 0x110 + 8);
        assert_eq!(&b[0..4], &[0x09, 0x04, 0, 0]);
        // sqc dword 0: flush_in_error_en [28] = 1, min_wqe_inline_mode
        // [26:24] = 1 (L2), state [23:20] = 0 (RST).
        assert_eq!(&b[0x20..0x24], &[0x11, 0x00, 0x00, 0x00]);
        // sqc 0x08 cqn -> 0x28.
        assert_eq!(&b[0x28..0x2c], &[0, 0, 0, 0x21]);
        // sqc 0x20 tis_lst_sz [31:16] = 1 -> 0x40; tis_num_0 sqc 0x2c -> 0x4c.
        assert_eq!(&b[0x40..0x44], &[0x00, 0x01, 0x00, 0x00]);
        assert_eq!(&b[0x4c..0x50], &[0, 0, 0, 0x31]);
        // wq 0x00 wq_type [31:28] = 1 cyclic -> 0x50.
        assert_eq!(&b[0x50..0x54], &[0x10, 0, 0, 0]);
        // wq 0x08 pd -> 0x58, 0x0c uar_page -> 0x5c, 0x10 dbr_addr -> 0x60.
        assert_eq!(&b[0x58..0x60], &[0, 0, 0, 0x41, 0, 0, 0, 6]);
        assert_eq!(&b[0x60..0x68], &[0, 0, 0, 2, 0, 0, 0x10, 0]);
        // wq 0x20 -> 0x70: log_wq_stride [19:16] = 6, log_wq_pg_sz [12:8] 0,
        // log_wq_sz [4:0] = 8.
        assert_eq!(&b[0x70..0x74], &[0x00, 0x06, 0x00, 0x08]);
        // pas at 0x50 + 0xc0 = 0x110.
        assert_eq!(&b[0x110..0x118], &[0, 0, 0, 2, 0, 0, 0, 0]);
    }

    #[test]
    fn modify_destroy_query_golden() {
        // modify_sq_in: sq_state [31:28] and sqn [23:0] at 0x08; new state
        // in sqc state [23:20] at 0x20.
        let b = encode(&ModifySq {
            sqn: Sqn(0x123),
            from: QueueState::Err,
            to: QueueState::Rst,
        });
        assert_eq!(&b[0..4], &[0x09, 0x05, 0, 0]);
        assert_eq!(&b[0x08..0x0c], &[0x30, 0x00, 0x01, 0x23]);
        assert_eq!(&b[0x20..0x24], &[0, 0, 0, 0]);
        let b = encode(&ModifySq {
            sqn: Sqn(1),
            from: QueueState::Rst,
            to: QueueState::Rdy,
        });
        assert_eq!(&b[0x08..0x0c], &[0x00, 0, 0, 1]);
        assert_eq!(&b[0x20..0x24], &[0x00, 0x10, 0, 0]);
        assert_eq!(
            encode(&destroy_sq(Sqn(7)))[..12],
            [0x09, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        // query_sq_out: sqc at 0x20 (state 0x20 [23:20], cqn 0x28), wq at
        // 0x50 (hw_counter 0x68, sw_counter 0x6c).
        let mut out = alloc::vec![0u8; 0x110];
        out[0x20..0x24].copy_from_slice(&[0x00, 0x30, 0, 0]);
        out[0x28..0x2c].copy_from_slice(&[0, 0, 0, 9]);
        out[0x68..0x6c].copy_from_slice(&[0, 0, 0, 5]);
        out[0x6c..0x70].copy_from_slice(&[0, 0, 0, 6]);
        let i = QuerySq(Sqn(1)).parse(&out).unwrap();
        assert_eq!(i.state, Some(QueueState::Err));
        assert_eq!(i.cqn, Cqn(9));
        assert_eq!((i.hw_counter, i.sw_counter), (5, 6));
        assert_eq!(encode(&QuerySq(Sqn(3)))[0..2], [0x09, 0x07]);
    }

    fn frame(p: &MockPlatform, len: usize) -> crate::mock::MockDma {
        let b = p.dma_alloc(len.max(1)).unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
        b.write_bytes(0, &bytes);
        b
    }

    #[test]
    fn wqe_golden_with_l2_inline_and_one_doorbell_per_batch() {
        let p = MockPlatform::new();
        let ring = Sq::alloc_ring(&p, 2).unwrap();
        let rbase = ring.mem.device_addr().get();
        let dbr = ring.dbr_addr();
        let mut sq = Sq::new(Sqn(0x0abc), ring, 2, Uar(4), InlineMode::L2, 64);
        let buf = frame(&p, 100);
        let baddr = buf.device_addr().get();
        sq.post(&buf, 0, 60, Lkey(0x100), 11).unwrap();
        sq.post(&buf, 0, 100, Lkey(0x100), 12).unwrap();
        // Nothing rung yet.
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 0]);
        assert_eq!(&p.s.borrow().bar0[0x4800..0x4808], &[0; 8]);
        sq.ring_doorbell(&p);
        sq.ring_doorbell(&p); // empty batch: no MMIO
        assert_eq!(sq.stats.doorbells, 1);
        let w = p.read(rbase + 64, 64);
        #[rustfmt::skip]
        let mut golden = [
            // ctrl: opmod 0, wqe_index 1 [23:8], opcode SEND 0x0a;
            0x00, 0x00, 0x01, 0x0a,
            // sqn 0xabc [31:8], ds 4;
            0x00, 0x0a, 0xbc, 0x04,
            // signature, rsvd, fm_ce_se = CQ_UPDATE (last of batch), imm
            0, 0, 0, 0x08,  0, 0, 0, 0,
            // eth seg: cs_flags 0, mss 0, metadata 0, inline_hdr.sz 18,
            // first two header bytes
            0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0x00, 0x12, 0x00, 0x01,
            // 16 more inline bytes
            2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
            // data seg: byte_count 82, lkey 0x100, addr = buffer + 18
            0x00, 0x00, 0x00, 0x52,  0x00, 0x00, 0x01, 0x00,  0, 0, 0, 0, 0, 0, 0, 0,
        ];
        golden[56..64].copy_from_slice(&(baddr + 18).to_be_bytes());
        assert_eq!(w, golden);
        // First WQE: not signalled (cq_every 64, not last of batch).
        assert_eq!(p.read(rbase + 0x0b, 1), [0]);
        // Doorbell record dword 1 = pc 2; UAR 4 + 0x800 = ctrl bytes 0..8 of
        // the last WQE.
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 2]);
        assert_eq!(
            &p.s.borrow().bar0[0x4800..0x4808],
            &[0x00, 0x00, 0x01, 0x0a, 0x00, 0x0a, 0xbc, 0x04]
        );
    }

    #[test]
    fn no_inline_mode_and_completion_every_n() {
        let p = MockPlatform::new();
        let ring = Sq::alloc_ring(&p, 3).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq = Sq::new(Sqn(1), ring, 3, Uar(4), InlineMode::None, 2);
        let buf = frame(&p, 64);
        for i in 0..3 {
            sq.post(&buf, 0, 64, Lkey(7), i).unwrap();
        }
        // ds 3: ctrl, eth (inline size 0), data at +0x20.
        let w = p.read(rbase, 64);
        assert_eq!(w[7], 3);
        assert_eq!(&w[0x1c..0x1e], &[0, 0]);
        assert_eq!(&w[0x20..0x28], &[0, 0, 0, 64, 0, 0, 0, 7]);
        // CE on the 2nd WQE (every 2), not the 1st or the 3rd (yet).
        assert_eq!(p.read(rbase + 0x0b, 1), [0]);
        assert_eq!(p.read(rbase + 64 + 0x0b, 1), [8]);
        assert_eq!(p.read(rbase + 128 + 0x0b, 1), [0]);
        sq.ring_doorbell(&p);
        assert_eq!(p.read(rbase + 128 + 0x0b, 1), [8], "last of batch");
    }

    #[test]
    fn completions_reclaim_in_order_and_bogus_counters_are_refused() {
        let p = MockPlatform::new();
        let ring = Sq::alloc_ring(&p, 2).unwrap();
        let mut sq = Sq::new(Sqn(1), ring, 2, Uar(4), InlineMode::L2, 1);
        let buf = frame(&p, 60);
        for i in 0..4 {
            sq.post(&buf, 0, 60, Lkey(7), 100 + i).unwrap();
        }
        assert_eq!(sq.post(&buf, 0, 60, Lkey(7), 0), Err(TxError::Full));
        assert_eq!(sq.post(&buf, 0, 61, Lkey(7), 0), Err(TxError::BadLength));
        assert_eq!(sq.post(&buf, 0, 0, Lkey(7), 0), Err(TxError::BadLength));
        let mut got = Vec::new();
        let cqe = |c: u16| Cqe {
            wqe_counter: c,
            ..Cqe::default()
        };
        assert_eq!(sq.complete(&cqe(1), |id| got.push(id)), Ok(2));
        assert_eq!(got, [100, 101]);
        // A counter beyond what is in flight (device bug): refused, nothing
        // reclaimed.
        assert!(sq.complete(&cqe(9), |id| got.push(id)).is_err());
        assert!(sq.complete(&cqe(1), |id| got.push(id)).is_err(), "old");
        assert_eq!(sq.in_flight(), 2);
        // Reset hands back the rest and restarts at 0.
        let n = sq.reset(|id| got.push(id));
        assert_eq!(n, 2);
        assert_eq!(got, [100, 101, 102, 103]);
        assert_eq!((sq.producer_counter(), sq.in_flight()), (0, 0));
    }

    #[test]
    fn counters_wrap_at_16_bits() {
        let p = MockPlatform::new();
        let ring = Sq::alloc_ring(&p, 1).unwrap();
        let mut sq = Sq::new(Sqn(1), ring, 1, Uar(4), InlineMode::None, 1);
        let buf = frame(&p, 60);
        let mut n = 0u32;
        for i in 0..70_000u32 {
            sq.post(&buf, 0, 60, Lkey(7), i).unwrap();
            sq.ring_doorbell(&p);
            let c = Cqe {
                wqe_counter: sq.producer_counter().wrapping_sub(1),
                ..Cqe::default()
            };
            sq.complete(&c, |id| {
                assert_eq!(id, n);
                n += 1;
            })
            .unwrap();
        }
        assert_eq!(n, 70_000);
    }

    #[test]
    fn injected_bad_lkey_hits_exactly_one_wqe() {
        let p = MockPlatform::new();
        let ring = Sq::alloc_ring(&p, 2).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq = Sq::new(Sqn(1), ring, 2, Uar(4), InlineMode::None, 1);
        let buf = frame(&p, 60);
        sq.inject_bad_lkey();
        sq.post(&buf, 0, 60, Lkey(0x100), 0).unwrap();
        sq.post(&buf, 0, 60, Lkey(0x100), 1).unwrap();
        assert_ne!(p.read(rbase + 0x24, 4), [0, 0, 1, 0]);
        assert_eq!(p.read(rbase + 64 + 0x24, 4), [0, 0, 1, 0]);
    }
}
