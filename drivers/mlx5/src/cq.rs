//! Completion queues (PRM "Completion Queues"; `mlx5_ifc_cqc_bits`,
//! `create_cq_in/out`, `destroy_cq_in`, `query_cq_out`, `modify_cq_in` in
//! mlx5_ifc.h); the entries are [`crate::cqe`].
//!
//! A CQ is a ring of 64-byte CQEs plus a doorbell record (dword 0
//! `set_ci`, dword 1 the arm word). Entries start with `op_own = 0xf1`
//! (invalid opcode, owner 1) and belong to software when their owner bit
//! equals `(ci >> log_size) & 1`.

use alloc::vec::Vec;

use cxos_drivers::{DmaAlloc, DmaRegion, Mmio, Platform, Region};

use crate::cmd::{Command, SimpleCmd, op};
use crate::cqe::{self, Cqe};
use crate::eq::Eqn;
use crate::error::BadOutput;
use crate::layout::{Field, Field64};
use crate::uar::Uar;
use crate::wq::Ring;

mod burst;
pub mod mini_cqe;
pub use burst::{CqView, CqeTail, RunEnd, RunExpect, TailAt, run_key};
pub use mini_cqe::Head;

/// A CQ number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Cqn(pub u32);

/// `mlx5_ifc_cqc_bits` (64 bytes).
pub mod cqc {
    use crate::layout::{Field, Field64};
    pub const STATUS: Field = Field::new(0x00, 31, 28);
    /// cqe_sz: 0 = 64 bytes.
    pub const CQE_SZ: Field = Field::new(0x00, 23, 21);
    /// oi (bit 0xe).
    pub const OI: Field = Field::new(0x00, 17, 17);
    /// cqe_comp_en (bit 0x11) and mini_cqe_res_format (bits 0x12..0x14).
    pub const CQE_COMP_EN: Field = Field::new(0x00, 14, 14);
    pub const MINI_CQE_RES_FORMAT: Field = Field::new(0x00, 13, 12);
    pub const LOG_CQ_SIZE: Field = Field::new(0x0c, 28, 24);
    pub const UAR_PAGE: Field = Field::new(0x0c, 23, 0);
    /// cq_period_mode (bits 0xf..0x11): `enum mlx5_cq_period_mode`.
    pub const CQ_PERIOD_MODE: Field = Field::new(0x00, 16, 15);
    pub const CQ_PERIOD: Field = Field::new(0x10, 27, 16);
    pub const CQ_MAX_COUNT: Field = Field::new(0x10, 15, 0);
    pub const C_EQN: Field = Field::new(0x14, 31, 0);
    /// log2(page size) - 12.
    pub const LOG_PAGE_SIZE: Field = Field::new(0x18, 28, 24);
    pub const CONSUMER_COUNTER: Field = Field::new(0x28, 23, 0);
    pub const PRODUCER_COUNTER: Field = Field::new(0x2c, 23, 0);
    pub const DBR_ADDR: Field64 = Field64::new(0x38);
    pub const LEN: usize = 0x40;
}

/// create_cq_in / modify_cq_in: cqc at 0x10, pas at 0x110.
pub const IN_CQC: usize = 0x10;
pub const IN_PAS: usize = 0x110;
/// cqn `[23:0]` of dword 0x08 in create_cq_out, destroy/query/modify_cq_in.
pub const CQN: Field = Field::new(0x08, 23, 0);
/// modify_cq_in: modify_field_select at 0x0c (`MLX5_CQ_MODIFY_PERIOD` bit 0,
/// `MLX5_CQ_MODIFY_COUNT` bit 1; PRM "MODIFY_CQ" field select bit 3
/// `c_eqn`, the bit cq.h's enum skips between `_OVERRUN` 2 and
/// `_PERIOD_MODE` 4).
pub const MODIFY_FIELD_SELECT: Field = Field::new(0x0c, 31, 0);
pub const MODIFY_PERIOD: u32 = 1 << 0;
pub const MODIFY_COUNT: u32 = 1 << 1;
pub const MODIFY_EQN: u32 = 1 << 3;
/// query_cq_out: cqc at 0x10.
pub const QUERY_OUT_CQC: usize = 0x10;

const _: () = assert!(IN_CQC + cqc::LEN <= IN_PAS);

/// CREATE_CQ.
#[derive(Clone, Debug)]
pub struct CreateCq {
    pub log_size: u8,
    pub uar: Uar,
    pub eqn: Eqn,
    pub dbr_addr: u64,
    pub pages: Vec<u64>,
    /// `mini_cqe_res_format` of a compressing CQ (`cqe_comp_en` set).
    pub compression: Option<u8>,
    /// Event moderation: `cq_period` (µs, at most [`MAX_CQ_PERIOD`]),
    /// `cq_max_count`, and whether the period runs from the first CQE
    /// (`MLX5_CQ_PERIOD_MODE_START_FROM_CQE`) or from the last event.
    pub moderation: Option<Moderation>,
}

/// CQ event moderation (PRM "Completion Event Moderation"; cqc `cq_period`,
/// `cq_max_count`, `cq_period_mode`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Moderation {
    pub period_us: u16,
    pub max_count: u16,
    pub from_cqe: bool,
}

/// `cq_period` is 12 bits.
pub const MAX_CQ_PERIOD: u16 = 0xfff;
/// `enum mlx5_cq_period_mode`.
pub const PERIOD_MODE_FROM_EQE: u32 = 0;
pub const PERIOD_MODE_FROM_CQE: u32 = 1;

impl Command for CreateCq {
    type Output = Cqn;
    const OPCODE: u16 = op::CREATE_CQ;
    fn in_len(&self) -> usize {
        IN_PAS + 8 * self.pages.len()
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let f = |x: Field| x.within(IN_CQC);
        f(cqc::CQE_SZ).set(inbox, 0);
        f(cqc::LOG_CQ_SIZE).set(inbox, self.log_size as u32);
        f(cqc::UAR_PAGE).set(inbox, self.uar.0);
        f(cqc::C_EQN).set(inbox, self.eqn.0 as u32);
        f(cqc::LOG_PAGE_SIZE).set(inbox, 0);
        if let Some(fmt) = self.compression {
            f(cqc::CQE_COMP_EN).set(inbox, 1);
            f(cqc::MINI_CQE_RES_FORMAT).set(inbox, fmt as u32);
        }
        if let Some(m) = self.moderation {
            let mode = if m.from_cqe {
                PERIOD_MODE_FROM_CQE
            } else {
                PERIOD_MODE_FROM_EQE
            };
            f(cqc::CQ_PERIOD_MODE).set(inbox, mode);
            f(cqc::CQ_PERIOD).set(inbox, u32::from(m.period_us.min(MAX_CQ_PERIOD)));
            f(cqc::CQ_MAX_COUNT).set(inbox, u32::from(m.max_count));
        }
        cqc::DBR_ADDR.within(IN_CQC).set(inbox, self.dbr_addr);
        for (i, &pa) in self.pages.iter().enumerate() {
            Field64::new(IN_PAS + 8 * i).set(inbox, pa);
        }
    }
    fn parse(&self, out: &[u8]) -> Result<Cqn, BadOutput> {
        Ok(Cqn(CQN.get(out)))
    }
}

pub type DestroyCq = SimpleCmd<{ op::DESTROY_CQ }>;

pub fn destroy_cq(cqn: Cqn) -> DestroyCq {
    DestroyCq::new(0, Some((CQN, cqn.0)))
}

/// What QUERY_CQ reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CqInfo {
    pub status: u8,
    pub log_size: u8,
    pub eqn: u32,
    pub consumer_counter: u32,
    pub producer_counter: u32,
    pub cq_period: u16,
    pub cq_max_count: u16,
}

/// QUERY_CQ.
#[derive(Clone, Copy, Debug)]
pub struct QueryCq(pub Cqn);

impl Command for QueryCq {
    type Output = CqInfo;
    const OPCODE: u16 = op::QUERY_CQ;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        IN_PAS
    }
    fn build(&self, inbox: &mut [u8]) {
        CQN.set(inbox, self.0.0);
    }
    fn parse(&self, out: &[u8]) -> Result<CqInfo, BadOutput> {
        let g = |x: Field| x.within(QUERY_OUT_CQC).get(out);
        Ok(CqInfo {
            status: g(cqc::STATUS) as u8,
            log_size: g(cqc::LOG_CQ_SIZE) as u8,
            eqn: g(cqc::C_EQN),
            consumer_counter: g(cqc::CONSUMER_COUNTER),
            producer_counter: g(cqc::PRODUCER_COUNTER),
            cq_period: g(cqc::CQ_PERIOD) as u16,
            cq_max_count: g(cqc::CQ_MAX_COUNT) as u16,
        })
    }
}

/// MODIFY_CQ (op_mod 0; `modify_cq_in`): the cqc fields given, each
/// named in `modify_field_select` ([`MODIFY_FIELD_SELECT`]).
#[derive(Clone, Copy, Debug)]
pub struct ModifyCq {
    pub cqn: Cqn,
    /// Interrupt moderation `(cq_period µs, cq_max_count)`: field select
    /// [`MODIFY_PERIOD`] | [`MODIFY_COUNT`]. `cq_period` is 12 bits: at
    /// most 4095.
    pub moderation: Option<(u16, u16)>,
    /// `c_eqn`, the EQ the CQ reports to from now on (EQ recreation moves
    /// the CQs of a stalled EQ): field select [`MODIFY_EQN`].
    pub eqn: Option<Eqn>,
}

impl ModifyCq {
    /// Moderation only.
    pub fn moderation(cqn: Cqn, period_us: u16, max_count: u16) -> ModifyCq {
        ModifyCq {
            cqn,
            moderation: Some((period_us, max_count)),
            eqn: None,
        }
    }

    /// The EQ only.
    pub fn eqn(cqn: Cqn, eqn: Eqn) -> ModifyCq {
        ModifyCq {
            cqn,
            moderation: None,
            eqn: Some(eqn),
        }
    }
}

impl Command for ModifyCq {
    type Output = ();
    const OPCODE: u16 = op::MODIFY_CQ;
    fn in_len(&self) -> usize {
        IN_PAS
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let f = |x: Field| x.within(IN_CQC);
        let mut select = 0;
        CQN.set(inbox, self.cqn.0);
        if let Some((period_us, max_count)) = self.moderation {
            select |= MODIFY_PERIOD | MODIFY_COUNT;
            f(cqc::CQ_PERIOD).set(inbox, period_us as u32);
            f(cqc::CQ_MAX_COUNT).set(inbox, max_count as u32);
        }
        if let Some(eqn) = self.eqn {
            select |= MODIFY_EQN;
            f(cqc::C_EQN).set(inbox, eqn.0 as u32);
        }
        MODIFY_FIELD_SELECT.set(inbox, select);
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

/// Bytes of a CQE [`Cq::with_body`] shows: up to `wqe_counter`'s end.
pub const BODY: usize = cqe::off::TAIL + 2;

/// UAR page offset of the CQ arm doorbell.
pub const UAR_CQ_ARM: usize = 0x20;
/// Arm command (`MLX5_CQ_DB_REQ_NOT`): an event for the next completion.
const ARM_CMD_NEXT: u32 = 0;

/// A CQ's ring, doorbell record and consumer index, and what its arm
/// doorbell needs (an MMIO handle and its UAR's BAR0 offset).
#[derive(Debug)]
pub struct Cq<P: Platform> {
    pub cqn: Cqn,
    pub eqn: Eqn,
    ring: Ring<Region<P>>,
    log_size: u8,
    /// Entries - 1.
    mask: u32,
    ci: u32,
    arm_sn: u32,
    mmio: P::Mmio,
    uar_base: usize,
    /// CQEs consumed so far.
    pub polled: u64,
    /// Times armed.
    pub armed: u64,
    /// The compressed session being read ([`mini_cqe`]).
    session: mini_cqe::Session,
}

/// Ring memory for a CQ of 2^log_size entries, every entry invalid and
/// owned by hardware.
pub fn alloc_ring<A: DmaAlloc>(p: &A, log_size: u8) -> Result<Ring<A::Region>, crate::Error> {
    let ring = Ring::alloc(p, cqe::LEN << log_size)?;
    for i in 0..1usize << log_size {
        ring.mem
            .write_u8(i * cqe::LEN + cqe::off::OP_OWN, cqe::INITIAL_OP_OWN);
    }
    Ok(ring)
}

impl<P: Platform> Cq<P> {
    pub fn new(
        cqn: Cqn,
        eqn: Eqn,
        ring: Ring<Region<P>>,
        log_size: u8,
        uar: Uar,
        mmio: P::Mmio,
    ) -> Self {
        Self {
            cqn,
            eqn,
            ring,
            log_size,
            mask: (1u32 << log_size) - 1,
            ci: 0,
            arm_sn: 0,
            mmio,
            uar_base: uar.bar_offset(),
            polled: 0,
            armed: 0,
            session: mini_cqe::Session::default(),
        }
    }

    /// The CREATE_CQ command for a ring.
    pub fn create_cmd(ring: &Ring<Region<P>>, log_size: u8, uar: Uar, eqn: Eqn) -> CreateCq {
        CreateCq {
            log_size,
            uar,
            eqn,
            dbr_addr: ring.dbr_addr(),
            pages: ring.pages(),
            compression: None,
            moderation: None,
        }
    }

    pub fn entries(&self) -> usize {
        1 << self.log_size
    }

    /// Run `g` over a plain view of the entry at `ci` before its
    /// `signature` and `op_own` bytes (`struct mlx5_cqe64` 0x00..0x3e,
    /// `wqe_counter` its last field), after [`Cq::tail_at`] found it
    /// software-owned and the read barrier passed (the consumer index is
    /// not published past it while `g` runs).
    #[inline(always)]
    pub fn with_body<R>(&self, ci: u32, g: impl FnOnce(&[u8; BODY]) -> R) -> Option<R> {
        let base = (ci & self.mask) as usize * cqe::LEN;
        self.ring
            .mem
            .with_bytes(base, BODY, |b| b.try_into().ok().map(g))
    }

    pub fn consumer_index(&self) -> u32 {
        self.ci
    }

    /// The next completion if software owns it; advances the consumer
    /// index (call [`Cq::update_ci`] once per batch).
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Cqe> {
        if self.in_session() {
            return Some(self.next_in_session());
        }
        let mask = self.mask;
        let base = (self.ci & mask) as usize * cqe::LEN;
        let m = &self.ring.mem;
        // wqe_counter, signature and op_own in one dword: the owner check
        // comes first (the device writes op_own last), the rest only
        // after the read barrier.
        let tail = m.read_be32(base + cqe::off::TAIL);
        if !cqe::software_owns(tail, self.ci >> self.log_size) {
            return None;
        }
        self.mmio.barrier_after_ownership_read();
        if self.session.enabled && mini_cqe::is_title(tail as u8) {
            self.start_session(tail);
            return Some(self.next_in_session());
        }
        // The entry up to the QPN in seven 8-byte loads, the range
        // checked once; then the QPN (checked against the queue).
        let mut w = [0u64; cqe::WORDS];
        m.read_be64s(base, &mut w);
        let c = Cqe::from_words(tail, &w, || m.read_be32(base + cqe::off::QPN));
        self.ci = self.ci.wrapping_add(1);
        self.polled += 1;
        Some(c)
    }

    /// Publish the consumer index in the doorbell record (`set_ci`): the
    /// CQEs read so far are the device's again once it lands.
    #[inline]
    pub fn update_ci(&self) {
        self.mmio.barrier_before_doorbell_record();
        self.ring.write_dbr(0, self.ci & 0x00ff_ffff);
    }

    /// Publish the consumer index and ask for an event on the next
    /// completion: doorbell record (`set_ci`, then the arm word), then the
    /// UAR's CQ doorbell (`sn << 28 | cmd << 24 | ci` high, CQN low).
    pub fn arm(&mut self) {
        self.update_ci();
        let word = ((self.arm_sn & 3) << 28) | (ARM_CMD_NEXT << 24) | (self.ci & 0x00ff_ffff);
        self.ring.write_dbr(1, word);
        self.mmio.barrier_before_mmio_doorbell();
        self.mmio.bar0_write_be64(
            self.uar_base + UAR_CQ_ARM,
            ((word as u64) << 32) | self.cqn.0 as u64,
        );
        self.armed += 1;
    }

    /// After an event for this CQ: the next arm uses the next sequence
    /// number.
    pub fn event_seen(&mut self) {
        self.arm_sn = self.arm_sn.wrapping_add(1);
    }

    pub fn dma_bytes(&self) -> usize {
        self.ring.mem.len()
    }

    /// Device address of the first CQE.
    pub fn ring_addr(&self) -> u64 {
        self.ring.mem.device_addr().get()
    }

    /// Device address of the doorbell record.
    pub fn dbr_addr(&self) -> u64 {
        self.ring.dbr_addr()
    }

    /// The ring, for a CQ the device may still reference.
    pub fn into_ring(self) -> Ring<Region<P>> {
        self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;
    use crate::cqe::opcode;
    use crate::mock::MockPlatform;
    use alloc::vec;

    #[test]
    fn create_cq_golden_bytes() {
        let cmd = CreateCq {
            log_size: 10,
            uar: Uar(3),
            eqn: Eqn(7),
            dbr_addr: 0x0000_0001_0000_4000,
            pages: vec![0x0000_0001_0000_0000, 0x0000_0001_0000_1000],
            compression: None,
            moderation: None,
        };
        let b = encode(&cmd);
        assert_eq!(b.len(), 0x110 + 16);
        // opcode 0x400 (create_cq_in 0x00 [31:16]).
        assert_eq!(&b[0..4], &[0x04, 0x00, 0x00, 0x00]);
        // cqc at 0x10: dword 0 cqe_sz [23:21] = 0 (64 B).
        assert_eq!(&b[0x10..0x14], &[0, 0, 0, 0]);
        // cqc 0x0c -> 0x1c: log_cq_size [28:24] = 10, uar_page [23:0] = 3.
        assert_eq!(&b[0x1c..0x20], &[0x0a, 0x00, 0x00, 0x03]);
        // cqc 0x14 -> 0x24: c_eqn = 7.
        assert_eq!(&b[0x24..0x28], &[0x00, 0x00, 0x00, 0x07]);
        // cqc 0x18 -> 0x28: log_page_size 0 (4 KiB).
        assert_eq!(&b[0x28..0x2c], &[0, 0, 0, 0]);
        // cqc 0x38 -> 0x48: dbr_addr be64.
        assert_eq!(&b[0x48..0x50], &[0, 0, 0, 1, 0, 0, 0x40, 0]);
        // pas at 0x110.
        assert_eq!(
            &b[0x110..0x120],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x10, 0]
        );
    }

    /// Moderation in CREATE_CQ: cq_period_mode (cqc bits 0xf..0x11, dword 0
    /// [16:15]) = 1 START_FROM_CQE -> inbox byte 0x12 = 0x80; cqc 0x10 ->
    /// inbox 0x20: cq_period [27:16] = 50, cq_max_count [15:0] = 8.
    #[test]
    fn create_cq_moderation_golden_bytes() {
        let cmd = CreateCq {
            log_size: 10,
            uar: Uar(3),
            eqn: Eqn(7),
            dbr_addr: 0x4000,
            pages: vec![0x1000],
            compression: None,
            moderation: Some(Moderation {
                period_us: 50,
                max_count: 8,
                from_cqe: true,
            }),
        };
        let b = encode(&cmd);
        assert_eq!(&b[0x10..0x14], &[0x00, 0x00, 0x80, 0x00]);
        assert_eq!(&b[0x20..0x24], &[0x00, 0x32, 0x00, 0x08]);
        // A period beyond 12 bits is clamped to 4095 (0xfff), never spilling.
        let long = CreateCq {
            moderation: Some(Moderation {
                period_us: 0xffff,
                max_count: 1,
                from_cqe: false,
            }),
            ..cmd
        };
        let b = encode(&long);
        assert_eq!(&b[0x10..0x14], &[0, 0, 0, 0]);
        assert_eq!(&b[0x20..0x24], &[0x0f, 0xff, 0x00, 0x01]);
    }

    #[test]
    fn destroy_query_modify_golden() {
        // destroy_cq_in: opcode 0x401, cqn [23:0] at 0x08.
        assert_eq!(
            encode(&destroy_cq(Cqn(0x0a0b0c))),
            [
                0x04, 0x01, 0, 0, 0, 0, 0, 0, 0x00, 0x0a, 0x0b, 0x0c, 0, 0, 0, 0
            ]
        );
        // modify_cq_in: opcode 0x403, cqn 0x08, field select 0x0c = 3,
        // cqc at 0x10: cq_period [27:16] / cq_max_count [15:0] of cqc 0x10
        // -> 0x20, nothing else in the context.
        let b = encode(&ModifyCq::moderation(Cqn(5), 0x10, 0x40));
        assert_eq!(&b[0..4], &[0x04, 0x03, 0, 0]);
        assert_eq!(&b[0x08..0x10], &[0, 0, 0, 5, 0, 0, 0, 3]);
        assert_eq!(&b[0x20..0x24], &[0x00, 0x10, 0x00, 0x40]);
        assert!(b[0x10..0x20].iter().chain(&b[0x24..]).all(|x| *x == 0));
        // The EQ change: field select bit 3 (0x08) at 0x0c, c_eqn (cqc
        // dword 0x14 -> input 0x24), nothing else in the context.
        let b = encode(&ModifyCq::eqn(Cqn(0x81), Eqn(7)));
        assert_eq!(&b[0..4], &[0x04, 0x03, 0, 0]);
        assert_eq!(&b[0x08..0x10], &[0, 0, 0, 0x81, 0, 0, 0, 0x08]);
        assert_eq!(&b[0x24..0x28], &[0, 0, 0, 7]);
        assert!(b[0x10..0x24].iter().chain(&b[0x28..]).all(|x| *x == 0));
        // Both at once: field select 0x0b (bits 0, 1, 3), cqc 0x10 -> 0x20
        // period 0x20 / count 0x08, cqc 0x14 -> 0x24 c_eqn 2.
        let b = encode(&ModifyCq {
            cqn: Cqn(3),
            moderation: Some((0x20, 0x08)),
            eqn: Some(Eqn(2)),
        });
        assert_eq!(&b[0x08..0x10], &[0, 0, 0, 3, 0, 0, 0, 0x0b]);
        assert_eq!(&b[0x20..0x28], &[0x00, 0x20, 0x00, 0x08, 0, 0, 0, 2]);
        // query_cq_out: cqc at 0x10; status [31:28] of cqc 0x00, log_cq_size
        // at cqc 0x0c, consumer_counter cqc 0x28 -> 0x38, producer 0x3c.
        let mut out = vec![0u8; IN_PAS];
        out[0x10] = 0x90; // status 9 (overflow)
        out[0x1c..0x20].copy_from_slice(&[0x06, 0, 0, 1]);
        out[0x24..0x28].copy_from_slice(&[0, 0, 0, 2]);
        out[0x38..0x3c].copy_from_slice(&[0xff, 0x00, 0x01, 0x00]);
        out[0x3c..0x40].copy_from_slice(&[0x00, 0x00, 0x01, 0x40]);
        let i = QueryCq(Cqn(1)).parse(&out).unwrap();
        assert_eq!(i.status, 9);
        assert_eq!(i.log_size, 6);
        assert_eq!(i.eqn, 2);
        assert_eq!(i.consumer_counter, 0x100);
        assert_eq!(i.producer_counter, 0x140);
    }

    #[test]
    fn pop_reads_the_same_fields_as_parse() {
        let p = MockPlatform::new();
        let ring = alloc_ring(&p, 1).unwrap();
        let base = ring.mem.device_addr().get();
        let mut cq = Cq::<MockPlatform>::new(Cqn(1), Eqn(1), ring, 1, Uar(5), p.clone());
        for (i, op_own) in [(0usize, 0x20u8), (1, 0xe0)] {
            let mut raw = [0u8; 64];
            for (j, b) in raw.iter_mut().enumerate() {
                *b = (j as u8).wrapping_mul(7).wrapping_add(i as u8);
            }
            raw[0x3f] = op_own;
            p.write(base + (i * 64) as u64, &raw);
            assert_eq!(cq.pop(), Some(Cqe::parse(&raw)), "entry {i}");
        }
    }

    /// Write a CQE the way the device does: body, then op_own.
    fn post(p: &MockPlatform, ring: u64, idx: usize, op: u8, owner: u8, wqe_counter: u16) {
        let at = ring + (idx * 64) as u64;
        p.write(at + 0x3c, &wqe_counter.to_be_bytes());
        p.write(at + 0x3f, &[(op << 4) | owner]);
    }

    #[test]
    fn owner_bit_per_pass_set_ci_and_arm_doorbell() {
        let p = MockPlatform::new();
        let ring = alloc_ring(&p, 2).unwrap();
        let base = ring.mem.device_addr().get();
        let dbr = ring.dbr_addr();
        assert!((0..4).all(|i| ring.mem.read_u8(i * 64 + 0x3f) == 0xf1));
        let mut cq = Cq::<MockPlatform>::new(Cqn(0x42), Eqn(1), ring, 2, Uar(5), p.clone());
        assert!(cq.pop().is_none(), "fresh ring is hardware-owned");
        for i in 0..4 {
            post(&p, base, i, opcode::REQ, 0, i as u16);
        }
        for i in 0..4 {
            assert_eq!(cq.pop().map(|c| c.wqe_counter()), Some(i));
        }
        assert!(cq.pop().is_none(), "stale first-pass entry");
        post(&p, base, 0, opcode::RESP_SEND, 1, 4);
        assert_eq!(cq.pop().map(|c| c.opcode()), Some(opcode::RESP_SEND));
        cq.update_ci();
        assert_eq!(p.read(dbr, 4), [0, 0, 0, 5]);
        cq.event_seen();
        cq.arm();
        // Arm word: sn 1 [29:28], cmd 0, ci 5; UAR 5 at BAR0 0x5000 + 0x20:
        // arm word high, CQN low.
        assert_eq!(p.read(dbr + 4, 4), [0x10, 0, 0, 5]);
        let s = p.s.borrow();
        assert_eq!(&s.bar0[0x5020..0x5028], &[0x10, 0, 0, 5, 0, 0, 0, 0x42]);
    }
}
