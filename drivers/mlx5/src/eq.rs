//! Event queues (PRM "Event Queues"; `mlx5_ifc_eqc_bits`,
//! `mlx5_ifc_create_eq_in_bits`, `mlx5_ifc_destroy_eq_in_bits` in
//! mlx5_ifc.h; `struct mlx5_eqe` in device.h).
//!
//! EQ0 takes command completions, page requests, port changes and error
//! events on MSI-X vector 0; completion EQs (one per further vector) take
//! the CQ events of the data path. An EQE belongs to software when its
//! owner bit equals `(consumer_index >> log_size) & 1`; entries start with
//! owner 1 so nothing is valid before the device writes.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use cxos_drivers::{DmaAlloc, DmaRegion, Mmio, Platform, Region};

use crate::cmd::{Command, SimpleCmd, op};
use crate::cq::Cqn;
use crate::error::BadOutput;
use crate::layout::{Field, Field64};
use crate::uar::Uar;

/// An EQ number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Eqn(pub u8);

/// `mlx5_ifc_eqc_bits` (64 bytes).
pub mod eqc {
    use crate::layout::Field;
    pub const STATUS: Field = Field::new(0x00, 31, 28);
    pub const OI: Field = Field::new(0x00, 17, 17);
    pub const ST: Field = Field::new(0x00, 11, 8);
    pub const PAGE_OFFSET: Field = Field::new(0x08, 11, 6);
    pub const LOG_EQ_SIZE: Field = Field::new(0x0c, 28, 24);
    pub const UAR_PAGE: Field = Field::new(0x0c, 23, 0);
    pub const INTR: Field = Field::new(0x14, 11, 0);
    /// log2(page size) - 12.
    pub const LOG_PAGE_SIZE: Field = Field::new(0x18, 28, 24);
    pub const CONSUMER_COUNTER: Field = Field::new(0x28, 23, 0);
    pub const PRODUCER_COUNTER: Field = Field::new(0x2c, 23, 0);
    pub const LEN: usize = 0x40;
}

/// `mlx5_ifc_create_eq_in_bits`: eqc at 0x10, event_bitmask (events 0-63)
/// at 0x58, pas (one be64 per 4 KiB page) at 0x110.
pub const CREATE_EQ_IN_EQC: usize = 0x10;
pub const CREATE_EQ_IN_EVENT_BITMASK: Field64 = Field64::new(0x58);
pub const CREATE_EQ_IN_PAS: usize = 0x110;
/// `create_eq_out` / `destroy_eq_in`: eq_number `[7:0]` of dword 0x08.
pub const EQ_NUMBER: Field = Field::new(0x08, 7, 0);

const _: () = assert!(CREATE_EQ_IN_EQC + eqc::LEN <= 0x58);
const _: () = assert!(eqc::PRODUCER_COUNTER.end() <= eqc::LEN);

/// EQE (`struct mlx5_eqe`), 64 bytes.
pub mod eqe {
    pub const TYPE: usize = 0x01;
    pub const SUB_TYPE: usize = 0x03;
    pub const DATA: usize = 0x20;
    pub const DATA_LEN: usize = 28;
    pub const OWNER: usize = 0x3f;
    pub const LEN: usize = 0x40;
}

const _: () = assert!(eqe::DATA + eqe::DATA_LEN + 4 == eqe::LEN);

/// Event types (`enum mlx5_event`, device.h).
pub mod event {
    pub const COMPLETION: u8 = 0x00;
    pub const CQ_ERROR: u8 = 0x04;
    pub const WQ_CATASTROPHIC: u8 = 0x05;
    pub const INTERNAL_ERROR: u8 = 0x08;
    pub const PORT_CHANGE: u8 = 0x09;
    pub const CMD: u8 = 0x0a;
    pub const PAGE_REQUEST: u8 = 0x0b;
    pub const NIC_VPORT_CHANGE: u8 = 0x0d;
    pub const WQ_INVALID_REQUEST: u8 = 0x10;
    pub const WQ_ACCESS_ERROR: u8 = 0x11;
    pub const PORT_MODULE: u8 = 0x16;
    pub const STALL: u8 = 0x1b;
}

/// Port change sub types (`MLX5_PORT_CHANGE_SUBTYPE_*`).
pub const PORT_SUBTYPE_DOWN: u8 = 1;
pub const PORT_SUBTYPE_ACTIVE: u8 = 4;

/// Events EQ0 subscribes to.
pub const EQ0_EVENTS: u64 = (1 << event::CMD)
    | (1 << event::PAGE_REQUEST)
    | (1 << event::PORT_CHANGE)
    | (1 << event::INTERNAL_ERROR)
    | (1 << event::CQ_ERROR)
    | (1 << event::WQ_CATASTROPHIC)
    | (1 << event::WQ_INVALID_REQUEST)
    | (1 << event::WQ_ACCESS_ERROR)
    | (1 << event::NIC_VPORT_CHANGE)
    | (1 << event::PORT_MODULE);

/// Offsets in a UAR page (PRM "UAR Page Format"): EQ doorbell with arm,
/// and without.
pub const UAR_EQ_ARM: usize = 0x40;
pub const UAR_EQ_UPDATE_CI: usize = 0x48;

/// CREATE_EQ.
#[derive(Clone, Debug)]
pub struct CreateEq {
    pub log_size: u8,
    pub uar: Uar,
    pub vector: u16,
    pub events: u64,
    pub pages: Vec<u64>,
}

impl Command for CreateEq {
    type Output = Eqn;
    const OPCODE: u16 = op::CREATE_EQ;
    fn in_len(&self) -> usize {
        CREATE_EQ_IN_PAS + 8 * self.pages.len()
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        let b = CREATE_EQ_IN_EQC;
        eqc::LOG_EQ_SIZE.within(b).set(inbox, self.log_size as u32);
        eqc::UAR_PAGE.within(b).set(inbox, self.uar.0);
        eqc::INTR.within(b).set(inbox, self.vector as u32);
        eqc::LOG_PAGE_SIZE.within(b).set(inbox, 0);
        CREATE_EQ_IN_EVENT_BITMASK.set(inbox, self.events);
        for (i, &pa) in self.pages.iter().enumerate() {
            Field64::new(CREATE_EQ_IN_PAS + 8 * i).set(inbox, pa);
        }
    }
    fn parse(&self, out: &[u8]) -> Result<Eqn, BadOutput> {
        Ok(Eqn(EQ_NUMBER.get(out) as u8))
    }
}

pub type DestroyEq = SimpleCmd<{ op::DESTROY_EQ }>;

pub fn destroy_eq(eqn: Eqn) -> DestroyEq {
    DestroyEq::new(0, Some((EQ_NUMBER, eqn.0 as u32)))
}

/// What QUERY_EQ reports (`query_eq_out`: the `eqc` at 0x10).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct EqInfo {
    pub status: u8,
    /// `st`: 0x9 armed, 0xa fired.
    pub st: u8,
    pub consumer_counter: u32,
    pub producer_counter: u32,
}

/// `eqc.st` of an armed EQ (`MLX5_EQ_STATE_ARMED`).
pub const EQ_ST_ARMED: u8 = 0x9;

/// QUERY_EQ (`query_eq_in`: eq_number at 0x08 [7:0], as DESTROY_EQ).
#[derive(Clone, Copy, Debug)]
pub struct QueryEq(pub Eqn);

impl Command for QueryEq {
    type Output = EqInfo;
    const OPCODE: u16 = op::QUERY_EQ;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        // Up to the page list (`query_eq_out` puts it at 0x110 as
        // `create_eq_in` does); only the eqc is read.
        CREATE_EQ_IN_PAS
    }
    fn build(&self, inbox: &mut [u8]) {
        EQ_NUMBER.set(inbox, self.0.0 as u32);
    }
    fn parse(&self, out: &[u8]) -> Result<EqInfo, BadOutput> {
        let g = |x: Field| x.within(CREATE_EQ_IN_EQC).get(out);
        Ok(EqInfo {
            status: g(eqc::STATUS) as u8,
            st: g(eqc::ST) as u8,
            consumer_counter: g(eqc::CONSUMER_COUNTER),
            producer_counter: g(eqc::PRODUCER_COUNTER),
        })
    }
}

/// One event, copied out of the ring.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Eqe {
    pub event_type: u8,
    pub sub_type: u8,
    pub data: [u8; eqe::DATA_LEN],
}

impl Eqe {
    fn be32(&self, off: usize) -> u32 {
        u32::from_be_bytes([
            self.data[off],
            self.data[off + 1],
            self.data[off + 2],
            self.data[off + 3],
        ])
    }

    /// Command completion (`mlx5_eqe_cmd`): bit vector of finished slots.
    pub fn cmd_vector(&self) -> u32 {
        self.be32(0)
    }

    /// Page request (`mlx5_eqe_page_req`): function id and signed page
    /// count (negative: the device returns pages).
    pub fn page_request(&self) -> (u16, i32) {
        let func_id = u16::from_be_bytes([self.data[2], self.data[3]]);
        (func_id, self.be32(4) as i32)
    }

    /// Port change (`mlx5_eqe_port_state`): port number in `[7:4]` of byte 8.
    pub fn port(&self) -> u8 {
        self.data[8] >> 4
    }

    /// Completion (`mlx5_eqe_comp`): CQN in the low 24 bits of dword 6.
    pub fn cqn(&self) -> u32 {
        self.be32(24) & 0x00ff_ffff
    }
}

/// An EQ's ring in host memory, its consumer index, and what its
/// doorbell needs (an MMIO handle and its UAR's BAR0 offset).
#[derive(Debug)]
pub struct Eq<P: Platform> {
    pub eqn: Eqn,
    pub vector: u16,
    mem: Region<P>,
    log_size: u8,
    ci: u32,
    mmio: P::Mmio,
    uar: Uar,
    /// BAR0 offset of the UAR page holding this EQ's doorbell.
    uar_base: usize,
    pub events_seen: u64,
}

/// Ring memory for an EQ of 2^log_size entries, owner bits set to 1.
pub fn alloc_ring<A: DmaAlloc>(p: &A, log_size: u8) -> Result<A::Region, crate::Error> {
    let len = eqe::LEN << log_size;
    let mem = p.dma_alloc(len)?;
    for i in 0..1usize << log_size {
        mem.write_u8(i * eqe::LEN + eqe::OWNER, 1);
    }
    Ok(mem)
}

/// The 4 KiB page addresses of a ring, for CREATE_EQ's pas.
pub fn ring_pages<D: DmaRegion>(mem: &D) -> Vec<u64> {
    (0..mem.len().div_ceil(4096))
        .map(|i| mem.device_addr().offset(i * 4096).get())
        .collect()
}

impl<P: Platform> Eq<P> {
    pub fn new(
        eqn: Eqn,
        vector: u16,
        mem: Region<P>,
        log_size: u8,
        uar: Uar,
        mmio: P::Mmio,
    ) -> Self {
        Self {
            eqn,
            vector,
            mem,
            log_size,
            ci: 0,
            mmio,
            uar,
            uar_base: uar.bar_offset(),
            events_seen: 0,
        }
    }

    pub fn entries(&self) -> usize {
        1 << self.log_size
    }

    pub fn log_size(&self) -> u8 {
        self.log_size
    }

    /// The UAR page of this EQ's doorbell.
    pub fn uar(&self) -> Uar {
        self.uar
    }

    pub fn consumer_index(&self) -> u32 {
        self.ci
    }

    /// The next event if software owns it; advances the consumer index.
    /// The owner byte is read first; the rest only after the read barrier.
    pub fn pop(&mut self) -> Option<Eqe> {
        if !self.has_event() {
            return None;
        }
        let off = self.entry_offset();
        self.mmio.barrier_after_ownership_read();
        let mut data = [0u8; eqe::DATA_LEN];
        self.mem.read_bytes(off + eqe::DATA, &mut data);
        let e = Eqe {
            event_type: self.mem.read_u8(off + eqe::TYPE),
            sub_type: self.mem.read_u8(off + eqe::SUB_TYPE),
            data,
        };
        self.ci = self.ci.wrapping_add(1);
        self.events_seen += 1;
        Some(e)
    }

    fn entry_offset(&self) -> usize {
        let n = self.entries() as u32;
        (self.ci & (n - 1)) as usize * eqe::LEN
    }

    /// Whether an event is waiting (without consuming it).
    pub fn has_event(&self) -> bool {
        let owner = self.mem.read_u8(self.entry_offset() + eqe::OWNER) & 1;
        owner == ((self.ci >> self.log_size) & 1) as u8
    }

    /// Tell the device the consumer index, and re-arm the EQ if `arm`:
    /// the EQEs read so far are the device's again once this lands.
    pub fn doorbell(&self, arm: bool) {
        let v = ((self.eqn.0 as u32) << 24) | (self.ci & 0x00ff_ffff);
        let off = if arm { UAR_EQ_ARM } else { UAR_EQ_UPDATE_CI };
        self.mmio.barrier_before_mmio_doorbell();
        self.mmio.bar0_write_be32(self.uar_base + off, v);
    }

    pub fn dma_bytes(&self) -> usize {
        self.mem.len()
    }

    /// Device address of the first EQE.
    pub fn ring_addr(&self) -> u64 {
        self.mem.device_addr().get()
    }

    /// The ring memory, for an EQ the device may still reference.
    pub fn into_ring(self) -> Region<P> {
        self.mem
    }
}

/// CQs whose owners take their events from one completion EQ through
/// [`CompEq::poll_claim`] (VNICs): the bound of the EQ's pending list.
pub const MAX_CLAIMED_CQS: usize = 256;

/// A completion EQ already serves [`MAX_CLAIMED_CQS`] claimed CQs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EqFull(pub Eqn);

impl core::fmt::Display for EqFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "completion EQ {} serves {MAX_CLAIMED_CQS} CQs already",
            self.0.0
        )
    }
}

impl core::error::Error for EqFull {}

/// A completion EQ shared by the data paths whose CQs report to it (a
/// queue set, or several VNICs): the EQ and the completion events taken
/// from it but not yet claimed, behind the EQ's own small lock, never the
/// adapter's. With one queue set per CPU, each CPU polls its own EQ and
/// the lock is never contended.
pub struct CompEq<P: Platform> {
    /// The EQ's number, which changes when the EQ is recreated
    /// ([`CompEq::replace`]).
    eqn: AtomicU8,
    pub vector: u16,
    state: spin::Mutex<CompEqState<P>>,
}

struct CompEqState<P: Platform> {
    eq: Eq<P>,
    /// CQs whose owners claim their events ([`CompEq::claim`]).
    claimed: heapless::Vec<Cqn, MAX_CLAIMED_CQS>,
    /// Claimed CQs with an event their owner has not taken yet (each
    /// once).
    pending: heapless::Vec<Cqn, MAX_CLAIMED_CQS>,
    /// Completion events for CQs nobody claimed (device input the driver
    /// does not act on), counted and dropped.
    stray: u64,
}

impl<P: Platform> core::fmt::Debug for CompEq<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CompEq(eqn {} vector {})", self.eqn().0, self.vector)
    }
}

impl<P: Platform> CompEq<P> {
    pub fn new(eq: Eq<P>) -> Self {
        Self {
            eqn: AtomicU8::new(eq.eqn.0),
            vector: eq.vector,
            state: spin::Mutex::new(CompEqState {
                eq,
                claimed: heapless::Vec::new(),
                pending: heapless::Vec::new(),
                stray: 0,
            }),
        }
    }

    /// Call `f` with the CQN of every completion event waiting for a
    /// claimed CQ ([`CompEq::claim`]; events naming another CQ and other
    /// event types are counted and dropped) and of every pending one, then
    /// re-arm the EQ if it had events. At most one ring's worth of events
    /// per call: a device that keeps writing cannot hold the caller here.
    /// Returns the events consumed.
    pub fn poll(&self, mut f: impl FnMut(Cqn)) -> usize {
        let mut s = self.state.lock();
        let s = &mut *s;
        for c in s.pending.drain(..) {
            f(c);
        }
        let mut n = 0;
        for _ in 0..s.eq.entries() {
            let Some(e) = s.eq.pop() else {
                break;
            };
            if e.event_type == event::COMPLETION {
                let c = Cqn(e.cqn());
                if s.claimed.contains(&c) {
                    f(c);
                } else {
                    s.stray += 1;
                }
            }
            n += 1;
        }
        if n > 0 {
            s.eq.doorbell(true);
        }
        n
    }

    /// As [`CompEq::poll`], but only the events of the CQs in `own` reach
    /// `f`; the events of other claimed CQs stay pending for their owners,
    /// those of CQs nobody claimed are counted and dropped.
    pub fn poll_claim(&self, own: &[Cqn], mut f: impl FnMut(Cqn)) -> usize {
        let mut s = self.state.lock();
        let s = &mut *s;
        let mut fired = 0;
        // Bounded as in [`CompEq::poll`].
        for _ in 0..s.eq.entries() {
            let Some(e) = s.eq.pop() else {
                break;
            };
            if e.event_type == event::COMPLETION {
                let c = Cqn(e.cqn());
                if !s.claimed.contains(&c) {
                    s.stray += 1;
                } else if !s.pending.contains(&c) {
                    // Cannot fail: pending holds claimed CQs, each once.
                    let _ = s.pending.push(c);
                }
            }
            fired += 1;
        }
        if fired > 0 {
            s.eq.doorbell(true);
        }
        let mut n = 0;
        s.pending.retain(|c| {
            let mine = own.contains(c);
            if mine {
                f(*c);
                n += 1;
            }
            !mine
        });
        n
    }

    /// Take the events of `cqs` (which report to this EQ) for their owner's
    /// [`CompEq::poll_claim`]: all of them, or none when the EQ would serve
    /// more than [`MAX_CLAIMED_CQS`].
    pub fn claim(&self, cqs: &[Cqn]) -> Result<(), EqFull> {
        let mut s = self.state.lock();
        let new = cqs.iter().filter(|c| !s.claimed.contains(c)).count();
        if s.claimed.len() + new > MAX_CLAIMED_CQS {
            return Err(EqFull(self.eqn()));
        }
        for &c in cqs {
            if !s.claimed.contains(&c) {
                let _ = s.claimed.push(c);
            }
        }
        Ok(())
    }

    /// Drop CQs that are gone: their claim and their pending events.
    pub fn forget(&self, cqs: &[Cqn]) {
        let mut s = self.state.lock();
        s.claimed.retain(|c| !cqs.contains(c));
        s.pending.retain(|c| !cqs.contains(c));
    }

    /// The consumer counter the driver holds, and whether an event waits
    /// in the ring (for the stall check).
    pub fn consumer_state(&self) -> (u32, bool) {
        let s = self.state.lock();
        (s.eq.consumer_index() & 0x00ff_ffff, s.eq.has_event())
    }

    /// Write the consumer counter again and arm (EQ stall recovery).
    pub fn rearm(&self) {
        self.state.lock().eq.doorbell(true);
    }

    pub fn eqn(&self) -> Eqn {
        Eqn(self.eqn.load(Ordering::Acquire))
    }

    /// Size, UAR and vector of the EQ, to create its replacement.
    pub fn geometry(&self) -> (u8, Uar, u16) {
        let s = self.state.lock();
        (s.eq.log_size(), s.eq.uar(), s.eq.vector)
    }

    /// The CQs claimed on this EQ ([`CompEq::claim`]).
    pub fn claimed(&self) -> Vec<Cqn> {
        self.state.lock().claimed.iter().copied().collect()
    }

    /// Put `new` (a fresh EQ on the same vector, which the CQs now report
    /// to) in place of the EQ; returns the old one for DESTROY_EQ. Claims
    /// and pending events stay.
    pub fn replace(&self, new: Eq<P>) -> Eq<P> {
        let mut s = self.state.lock();
        self.eqn.store(new.eqn.0, Ordering::Release);
        core::mem::replace(&mut s.eq, new)
    }

    /// Completion events for CQs nobody claimed, so far.
    pub fn stray_events(&self) -> u64 {
        self.state.lock().stray
    }

    pub fn entries(&self) -> usize {
        self.state.lock().eq.entries()
    }

    pub fn events_seen(&self) -> u64 {
        self.state.lock().eq.events_seen
    }

    /// Device address of the first EQE.
    pub fn ring_addr(&self) -> u64 {
        self.state.lock().eq.ring_addr()
    }

    pub fn into_eq(self) -> Eq<P> {
        self.state.into_inner().eq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;
    use alloc::vec;

    #[test]
    fn create_eq_golden_bytes() {
        let cmd = CreateEq {
            log_size: 7,
            uar: Uar(5),
            vector: 3,
            events: 0x0c00,
            pages: vec![0x1_2345_6000, 0x1_2345_7000],
        };
        let b = encode(&cmd);
        assert_eq!(b.len(), 0x110 + 16);
        // opcode 0x301 at 0x00 [31:16]
        assert_eq!(&b[0..4], &[0x03, 0x01, 0x00, 0x00]);
        // eqc at 0x10: log_eq_size [28:24] and uar_page [23:0] of eqc dword
        // 0x0c -> input 0x1c: 0x07 << 24 | 5.
        assert_eq!(&b[0x1c..0x20], &[0x07, 0x00, 0x00, 0x05]);
        // intr [11:0] of eqc dword 0x14 -> input 0x24.
        assert_eq!(&b[0x24..0x28], &[0x00, 0x00, 0x00, 0x03]);
        // log_page_size (eqc 0x18 -> 0x28) is 0 for 4 KiB pages.
        assert_eq!(&b[0x28..0x2c], &[0, 0, 0, 0]);
        // event_bitmask at 0x58 (be64): bits 10 (cmd) and 11 (page request).
        assert_eq!(&b[0x58..0x60], &[0, 0, 0, 0, 0, 0, 0x0c, 0x00]);
        // pas at 0x110.
        assert_eq!(
            &b[0x110..0x120],
            &[
                0, 0, 0, 1, 0x23, 0x45, 0x60, 0x00, 0, 0, 0, 1, 0x23, 0x45, 0x70, 0x00
            ]
        );
    }

    #[test]
    fn eqe_fields() {
        let mut data = [0u8; eqe::DATA_LEN];
        // page request: func_id 0x22-0x23 (data +2), num_pages 0x24 (data +4)
        data[2..4].copy_from_slice(&[0x00, 0x00]);
        data[4..8].copy_from_slice(&[0xff, 0xff, 0xff, 0xf0]);
        let e = Eqe {
            event_type: event::PAGE_REQUEST,
            sub_type: 0,
            data,
        };
        assert_eq!(e.page_request(), (0, -16));
        let mut data = [0u8; eqe::DATA_LEN];
        data[0..4].copy_from_slice(&[0x00, 0x00, 0x00, 0x05]);
        data[8] = 0x10; // port 1 in [7:4] of EQE byte 0x28
        data[24..28].copy_from_slice(&[0xaa, 0x00, 0x01, 0x23]);
        let e = Eqe {
            event_type: event::CMD,
            sub_type: 0,
            data,
        };
        assert_eq!(e.cmd_vector(), 5);
        assert_eq!(e.port(), 1);
        assert_eq!(e.cqn(), 0x123);
    }

    #[test]
    fn eq0_mask_has_command_and_page_events() {
        assert_eq!(EQ0_EVENTS & 0x0e00, 0x0e00);
    }
}

#[cfg(test)]
mod ring_tests {
    use super::*;
    use crate::mock::MockPlatform;

    /// Write an EQE the way the device does: payload, then owner bit.
    fn post(p: &MockPlatform, ring: u64, idx: usize, ty: u8, owner: u8) {
        let at = ring + (idx * eqe::LEN) as u64;
        p.write(at + eqe::TYPE as u64, &[ty]);
        p.write(at + eqe::OWNER as u64, &[owner]);
    }

    #[test]
    fn owner_bit_alternates_per_pass_and_doorbells_carry_eqn_and_ci() {
        let p = MockPlatform::new();
        let mem = alloc_ring(&p, 2).unwrap();
        let base = mem.device_addr().get();
        // Fresh entries are owned by hardware (owner 1 on the first pass).
        assert!((0..4).all(|i| mem.read_u8(i * 64 + eqe::OWNER) == 1));
        let mut eq = Eq::<MockPlatform>::new(Eqn(9), 0, mem, 2, Uar(5), p.clone());
        assert!(eq.pop().is_none() && !eq.has_event());
        // First pass: the device writes owner 0.
        for i in 0..4 {
            post(&p, base, i, event::CMD, 0);
        }
        for _ in 0..4 {
            assert_eq!(eq.pop().map(|e| e.event_type), Some(event::CMD));
        }
        // Wrapped: entry 0 still holds the first pass's owner 0, which is
        // stale now (software expects 1 on the second pass).
        assert!(eq.pop().is_none());
        post(&p, base, 0, event::PAGE_REQUEST, 1);
        assert!(eq.has_event());
        assert_eq!(eq.pop().map(|e| e.event_type), Some(event::PAGE_REQUEST));
        assert_eq!(eq.consumer_index(), 5);
        // UAR 5 page at BAR0 + 0x5000: arm at +0x40, update at +0x48,
        // value eqn << 24 | ci.
        eq.doorbell(true);
        eq.doorbell(false);
        let s = p.s.borrow();
        assert_eq!(&s.bar0[0x5040..0x5044], &[0x09, 0x00, 0x00, 0x05]);
        assert_eq!(&s.bar0[0x5048..0x504c], &[0x09, 0x00, 0x00, 0x05]);
    }

    /// A completion EQE (`struct mlx5_eqe_comp`: CQN in the low 24 bits
    /// of the data's dword 6, EQE byte 0x38), written the way the device
    /// does.
    fn post_completion(p: &MockPlatform, ring: u64, idx: usize, cqn: u32) {
        let at = ring + (idx * eqe::LEN) as u64;
        p.write(at + 0x38, &cqn.to_be_bytes());
        post(p, ring, idx, event::COMPLETION, 0);
    }

    #[test]
    fn claimed_cqs_are_bounded_and_strays_are_dropped() {
        let p = MockPlatform::new();
        let mem = alloc_ring(&p, 3).unwrap();
        let base = mem.device_addr().get();
        let eq = CompEq::new(Eq::<MockPlatform>::new(
            Eqn(4),
            1,
            mem,
            3,
            Uar(5),
            p.clone(),
        ));
        let all: Vec<Cqn> = (0..MAX_CLAIMED_CQS as u32).map(Cqn).collect();
        assert_eq!(eq.claim(&all[..200]), Ok(()));
        // All or nothing: 200 + 57 is one too many.
        let more: Vec<Cqn> = (200..257).map(Cqn).collect();
        assert_eq!(eq.claim(&more), Err(EqFull(Eqn(4))));
        assert_eq!(eq.claim(&all[200..]), Ok(()), "exactly full");
        assert_eq!(eq.claim(&all[..3]), Ok(()), "claiming twice is not more");
        eq.forget(&all[..1]);
        assert_eq!(eq.claim(&[Cqn(1000)]), Ok(()));
        // Events: CQ 7 twice (pending once), CQ 9, a CQ nobody claimed, and
        // CQ 0 (forgotten).
        for (i, c) in [7, 7, 9, 5000, 0].into_iter().enumerate() {
            post_completion(&p, base, i, c);
        }
        let mut got = Vec::new();
        assert_eq!(eq.poll_claim(&[Cqn(9)], |c| got.push(c)), 1);
        assert_eq!(got, [Cqn(9)]);
        assert_eq!(eq.stray_events(), 2);
        // CQ 7's event waited for its owner.
        assert_eq!(eq.poll_claim(&[Cqn(7)], |c| got.push(c)), 1);
        assert_eq!(got, [Cqn(9), Cqn(7)]);
        assert_eq!(eq.poll_claim(&[Cqn(7)], |c| got.push(c)), 0);
    }

    #[test]
    fn an_owning_poll_takes_claimed_cqs_only_and_one_ring_per_call() {
        let p = MockPlatform::new();
        let mem = alloc_ring(&p, 3).unwrap();
        let base = mem.device_addr().get();
        let eq = CompEq::new(Eq::<MockPlatform>::new(
            Eqn(4),
            1,
            mem,
            3,
            Uar(5),
            p.clone(),
        ));
        assert_eq!(eq.claim(&[Cqn(3)]), Ok(()));
        // A full ring (8 entries) of completions: CQ 3 and CQ 9 nobody
        // claimed, alternating.
        for i in 0..8 {
            post_completion(&p, base, i, if i % 2 == 0 { 3 } else { 9 });
        }
        let mut got = Vec::new();
        assert_eq!(eq.poll(|c| got.push(c)), 8);
        assert_eq!(got, [Cqn(3); 4]);
        assert_eq!(eq.stray_events(), 4);
        // The device writes the next pass (owner 1) over the whole ring
        // again: one call still takes one ring's worth and returns.
        for i in 0..8 {
            let at = base + (i * eqe::LEN) as u64;
            p.write(at + 0x38, &3u32.to_be_bytes());
            post(&p, base, i, event::COMPLETION, 1);
        }
        assert_eq!(eq.poll(|c| got.push(c)), 8);
        assert_eq!(eq.poll(|c| got.push(c)), 0);
        assert_eq!(got.len(), 12);
    }

    #[test]
    fn ring_pages_list_every_4k_page() {
        let p = MockPlatform::new();
        let mem = alloc_ring(&p, 7).unwrap(); // 128 x 64 B = 8 KiB
        let pages = ring_pages(&mem);
        let base = mem.device_addr().get();
        assert_eq!(pages, [base, base + 4096]);
    }
}
