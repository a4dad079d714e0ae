//! What the driver did, in order: [`Recording`], a harness function whose
//! driver-side DMA accesses, barriers and BAR accesses are recorded in
//! order when a test asks ([`Recording::start`] / [`Recording::take`]),
//! and checkers of the ordering rule of `cxos_drivers::platform`:
//!
//! - [`check_records`]: every doorbell-record write comes after a
//!   [`Barrier::BeforeDoorbellRecord`] that comes after every earlier DMA
//!   access (WQEs, frames, consumed entries);
//! - [`check_doorbells`]: every BAR doorbell comes after a
//!   [`Barrier::BeforeMmioDoorbell`] that comes after every earlier DMA
//!   access, the last of which is the queue's doorbell record (where it
//!   has one);
//! - [`check_entry_reads`]: every read of a CQE / EQE / command entry past
//!   its ownership comes after the ownership read and a
//!   [`Barrier::AfterOwnershipRead`] after it.
//!
//! A [`Recording`] is a separate platform type wrapping a [`SimPlatform`]
//! (its regions wrap `SimDma`), so the plain harness pays nothing for it.
//! Only the driver's side is recorded; the model's own DMA never is. The
//! log is bounded ([`MAX_STEPS`]); a log that overflowed says so.
#![deny(unsafe_code)]

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use cxos_drivers::Barrier;
use cxos_drivers::{DmaAddr, DmaAlloc, DmaRegion, Mmio, PlatformError};

use super::{SimDma, SimPlatform};

/// Steps kept by one recording; later ones are counted, not kept.
pub const MAX_STEPS: usize = 1 << 20;

/// One step the driver took through the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A DMA write accessor (`write_*`, `write_bytes`, `fill`).
    DmaWrite {
        addr: u64,
        len: usize,
    },
    /// A DMA read accessor (`read_*`, `read_bytes`).
    DmaRead {
        addr: u64,
        len: usize,
    },
    /// A plain slice lent by `with_bytes` (`write: false`) or
    /// `with_bytes_mut` (`write: true`): whatever the closure does happens
    /// here in the order.
    Lend {
        addr: u64,
        len: usize,
        write: bool,
    },
    Barrier(Barrier),
    /// A BAR0 write of 4 or 8 bytes.
    BarWrite {
        offset: usize,
        value: u64,
    },
    BarRead {
        offset: usize,
    },
}

impl Step {
    /// The DMA range this step touches, and whether it writes.
    fn dma(&self) -> Option<(u64, usize, bool)> {
        match *self {
            Step::DmaWrite { addr, len } => Some((addr, len, true)),
            Step::DmaRead { addr, len } => Some((addr, len, false)),
            Step::Lend { addr, len, write } => Some((addr, len, write)),
            _ => None,
        }
    }

    fn writes_into(&self, r: &Range<u64>) -> bool {
        matches!(self.dma(), Some((a, n, true)) if overlaps(a, n, r))
    }
}

fn overlaps(addr: u64, len: usize, r: &Range<u64>) -> bool {
    addr < r.end && addr.saturating_add(len.max(1) as u64) > r.start
}

/// What a recording holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderLog {
    pub steps: Vec<Step>,
    /// Steps past [`MAX_STEPS`], not kept (the checks need them all: a
    /// test treats a nonzero count as a failure).
    pub dropped: u64,
}

/// The log a recording platform and its DMA regions share.
#[derive(Debug, Default)]
struct Recorder {
    on: AtomicBool,
    log: Mutex<OrderLog>,
}

impl Recorder {
    fn push(&self, s: Step) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.steps.len() < MAX_STEPS {
            log.steps.push(s);
        } else {
            log.dropped += 1;
        }
    }

    fn start(&self) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        *log = OrderLog::default();
        self.on.store(true, Ordering::Relaxed);
    }

    fn stop(&self) -> OrderLog {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        self.on.store(false, Ordering::Relaxed);
        std::mem::take(&mut *log)
    }
}

/// A harness function as a driver platform whose DMA accesses, barriers
/// and BAR accesses are recorded in order between [`Recording::start`] and
/// [`Recording::take`]. Config space, MSI-X and the clock are the
/// [`SimPlatform`]'s, unrecorded. Clones share the log.
#[derive(Clone, Debug)]
pub struct Recording {
    sim: SimPlatform,
    rec: Arc<Recorder>,
}

impl Recording {
    pub fn new(sim: SimPlatform) -> Recording {
        Recording {
            sim,
            rec: Arc::default(),
        }
    }

    /// The function underneath (model inspection, fault injection).
    pub fn sim(&self) -> &SimPlatform {
        &self.sim
    }

    /// Start recording (earlier steps are dropped).
    pub fn start(&self) {
        self.rec.start();
    }

    /// Stop recording; what was recorded.
    pub fn take(&self) -> OrderLog {
        self.rec.stop()
    }
}

platform_over_sim!(Recording);

impl DmaAlloc for Recording {
    type Region = RecordedDma;

    fn dma_alloc(&self, size: usize) -> Result<RecordedDma, PlatformError> {
        Ok(RecordedDma {
            dma: self.sim.dma_alloc(size)?,
            rec: self.rec.clone(),
        })
    }
}

impl Mmio for Recording {
    fn bar0_len(&self) -> usize {
        self.sim.bar0_len()
    }
    fn bar0_read_be32(&self, offset: usize) -> u32 {
        self.rec.push(Step::BarRead { offset });
        self.sim.bar0_read_be32(offset)
    }
    fn bar0_write_be32(&self, offset: usize, value: u32) {
        self.rec.push(Step::BarWrite {
            offset,
            value: value as u64,
        });
        self.sim.bar0_write_be32(offset, value)
    }
    fn bar0_read_be64(&self, offset: usize) -> u64 {
        self.rec.push(Step::BarRead { offset });
        self.sim.bar0_read_be64(offset)
    }
    fn bar0_write_be64(&self, offset: usize, value: u64) {
        self.rec.push(Step::BarWrite { offset, value });
        self.sim.bar0_write_be64(offset, value)
    }
    fn barrier_before_doorbell_record(&self) {
        self.sim.barrier_before_doorbell_record();
        self.rec.push(Step::Barrier(Barrier::BeforeDoorbellRecord));
    }
    fn barrier_before_mmio_doorbell(&self) {
        self.sim.barrier_before_mmio_doorbell();
        self.rec.push(Step::Barrier(Barrier::BeforeMmioDoorbell));
    }
    fn barrier_after_ownership_read(&self) {
        self.sim.barrier_after_ownership_read();
        self.rec.push(Step::Barrier(Barrier::AfterOwnershipRead));
    }
}

/// A DMA region of a [`Recording`]: a `SimDma` whose accesses go into the
/// log.
#[derive(Debug)]
pub struct RecordedDma {
    dma: SimDma,
    rec: Arc<Recorder>,
}

impl RecordedDma {
    fn write(&self, offset: usize, len: usize) {
        self.rec.push(Step::DmaWrite {
            addr: self.dma.device_addr().offset(offset).get(),
            len,
        });
    }

    fn read(&self, offset: usize, len: usize) {
        self.rec.push(Step::DmaRead {
            addr: self.dma.device_addr().offset(offset).get(),
            len,
        });
    }

    fn lend(&self, offset: usize, len: usize, write: bool) {
        self.rec.push(Step::Lend {
            addr: self.dma.device_addr().offset(offset).get(),
            len,
            write,
        });
    }
}

impl DmaRegion for RecordedDma {
    fn device_addr(&self) -> DmaAddr {
        self.dma.device_addr()
    }
    fn len(&self) -> usize {
        self.dma.len()
    }
    fn read_u8(&self, offset: usize) -> u8 {
        self.read(offset, 1);
        self.dma.read_u8(offset)
    }
    fn write_u8(&self, offset: usize, value: u8) {
        self.write(offset, 1);
        self.dma.write_u8(offset, value)
    }
    fn read_be16(&self, offset: usize) -> u16 {
        self.read(offset, 2);
        self.dma.read_be16(offset)
    }
    fn write_be16(&self, offset: usize, value: u16) {
        self.write(offset, 2);
        self.dma.write_be16(offset, value)
    }
    fn read_be32(&self, offset: usize) -> u32 {
        self.read(offset, 4);
        self.dma.read_be32(offset)
    }
    fn write_be32(&self, offset: usize, value: u32) {
        self.write(offset, 4);
        self.dma.write_be32(offset, value)
    }
    fn read_be64(&self, offset: usize) -> u64 {
        self.read(offset, 8);
        self.dma.read_be64(offset)
    }
    fn write_be64(&self, offset: usize, value: u64) {
        self.write(offset, 8);
        self.dma.write_be64(offset, value)
    }
    fn read_be64s(&self, offset: usize, words: &mut [u64]) {
        self.read(offset, 8 * words.len());
        self.dma.read_be64s(offset, words)
    }
    fn write_be64s(&self, offset: usize, words: &[u64]) {
        self.write(offset, 8 * words.len());
        self.dma.write_be64s(offset, words)
    }
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        self.read(offset, dst.len());
        self.dma.read_bytes(offset, dst)
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        self.write(offset, src.len());
        self.dma.write_bytes(offset, src)
    }
    fn fill(&self, offset: usize, len: usize, byte: u8) {
        self.write(offset, len);
        self.dma.fill(offset, len, byte)
    }
    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        self.lend(offset, len, false);
        self.dma.with_bytes(offset, len, f)
    }
    fn with_bytes_mut<R>(&self, offset: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        self.lend(offset, len, true);
        self.dma.with_bytes_mut(offset, len, f)
    }
}

/// A step out of order: its index in the log and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderError {
    pub at: usize,
    pub what: String,
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}", self.at, self.what)
    }
}

impl std::error::Error for OrderError {}

fn fail(at: usize, what: String) -> OrderError {
    OrderError { at, what }
}

/// Walk back from `i` (exclusive) to the nearest `want` barrier, skipping
/// other barriers, BAR accesses and steps `skip` accepts; a DMA access met
/// first is the error.
fn barrier_before(
    steps: &[Step],
    i: usize,
    want: Barrier,
    skip: impl Fn(&Step) -> bool,
) -> Result<usize, OrderError> {
    for j in (0..i).rev() {
        match &steps[j] {
            Step::Barrier(b) if *b == want => return Ok(j),
            s if s.dma().is_some() && !skip(s) => {
                return Err(fail(
                    i,
                    format!(
                        "{s:?} at step {j} is not ordered before {:?} by {want:?}",
                        steps[i]
                    ),
                ));
            }
            _ => {}
        }
    }
    Err(fail(i, format!("no {want:?} before {:?}", steps[i])))
}

/// Every write into the doorbell record `dbr` comes after a
/// [`Barrier::BeforeDoorbellRecord`] with no DMA access between the
/// barrier and the write other than writes into the record itself (a CQ
/// arm writes `set_ci`, then the arm word). Returns the writes checked.
pub fn check_records(steps: &[Step], dbr: Range<u64>) -> Result<usize, OrderError> {
    let mut n = 0;
    for (i, s) in steps.iter().enumerate() {
        if s.writes_into(&dbr) {
            barrier_before(steps, i, Barrier::BeforeDoorbellRecord, |p| {
                p.writes_into(&dbr)
            })?;
            n += 1;
        }
    }
    Ok(n)
}

/// Every BAR write at `bar` comes after a [`Barrier::BeforeMmioDoorbell`]
/// with no DMA access between the two; with a doorbell record `dbr`, the
/// last DMA access before that barrier is a write into the record. Returns
/// the doorbells checked.
pub fn check_doorbells(
    steps: &[Step],
    bar: usize,
    dbr: Option<Range<u64>>,
) -> Result<usize, OrderError> {
    let mut n = 0;
    for (i, s) in steps.iter().enumerate() {
        if !matches!(s, Step::BarWrite { offset, .. } if *offset == bar) {
            continue;
        }
        let b = barrier_before(steps, i, Barrier::BeforeMmioDoorbell, |_| false)?;
        if let Some(dbr) = &dbr {
            let last = steps[..b].iter().rposition(|p| p.dma().is_some());
            match last {
                Some(j) if steps[j].writes_into(dbr) => {}
                Some(j) => {
                    return Err(fail(
                        i,
                        format!(
                            "the last DMA access before the doorbell is {:?} (step {j}), not its doorbell record",
                            steps[j]
                        ),
                    ));
                }
                None => return Err(fail(i, "doorbell without a doorbell record".into())),
            }
        }
        n += 1;
    }
    Ok(n)
}

/// Entries of `entry` bytes fill `ring`; `owner` is where their ownership
/// lives inside an entry. Every read of an entry that does not touch
/// `owner` comes after a read of that entry's ownership and a
/// [`Barrier::AfterOwnershipRead`] after it. Returns the reads checked.
pub fn check_entry_reads(
    steps: &[Step],
    ring: Range<u64>,
    entry: usize,
    owner: Range<usize>,
) -> Result<usize, OrderError> {
    let entries = ((ring.end - ring.start) / entry as u64) as usize;
    let mut owner_read: Vec<Option<usize>> = vec![None; entries];
    let mut last_barrier = None;
    let mut n = 0;
    for (i, s) in steps.iter().enumerate() {
        if *s == Step::Barrier(Barrier::AfterOwnershipRead) {
            last_barrier = Some(i);
            continue;
        }
        let Some((addr, len, false)) = s.dma() else {
            continue;
        };
        if !ring.contains(&addr) {
            continue;
        }
        let e = ((addr - ring.start) / entry as u64) as usize;
        let o = ((addr - ring.start) % entry as u64) as usize;
        if o < owner.end && o + len.max(1) > owner.start {
            owner_read[e] = Some(i);
            continue;
        }
        match owner_read[e] {
            None => return Err(fail(i, format!("entry {e} read before its ownership"))),
            Some(r) if last_barrier.is_none_or(|b| b < r) => {
                return Err(fail(
                    i,
                    format!(
                        "entry {e} read without {:?} after its ownership read (step {r})",
                        Barrier::AfterOwnershipRead
                    ),
                ));
            }
            Some(_) => n += 1,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: u64 = 0x1_0000_0000;
    const DBR: u64 = RING + 0x1000;
    const UAR: usize = 0x5800;

    fn w(addr: u64, len: usize) -> Step {
        Step::DmaWrite { addr, len }
    }
    fn r(addr: u64, len: usize) -> Step {
        Step::DmaRead { addr, len }
    }
    fn bar(offset: usize) -> Step {
        Step::BarWrite { offset, value: 0 }
    }
    const REC: Step = Step::Barrier(Barrier::BeforeDoorbellRecord);
    const MMIO: Step = Step::Barrier(Barrier::BeforeMmioDoorbell);
    const OWN: Step = Step::Barrier(Barrier::AfterOwnershipRead);

    /// Two WQEs and a frame, the record, the doorbell.
    fn transmit(rec: bool, mmio: bool) -> Vec<Step> {
        let mut v = vec![
            Step::Lend {
                addr: 0x2_0000_0000,
                len: 64,
                write: true,
            },
            w(RING, 64),
            w(RING + 64, 64),
        ];
        if rec {
            v.push(REC);
        }
        v.push(w(DBR + 4, 4));
        if mmio {
            v.push(MMIO);
        }
        v.push(bar(UAR));
        v
    }

    #[test]
    fn a_transmit_in_order_passes() {
        let s = transmit(true, true);
        assert_eq!(check_records(&s, DBR..DBR + 8), Ok(1));
        assert_eq!(check_doorbells(&s, UAR, Some(DBR..DBR + 8)), Ok(1));
    }

    #[test]
    fn a_missing_barrier_fails() {
        let s = transmit(false, true);
        let e = check_records(&s, DBR..DBR + 8).unwrap_err();
        assert_eq!(e.at, 3, "{e}");
        assert!(check_doorbells(&s, UAR, Some(DBR..DBR + 8)).is_ok());
        let s = transmit(true, false);
        assert!(check_records(&s, DBR..DBR + 8).is_ok());
        let e = check_doorbells(&s, UAR, Some(DBR..DBR + 8)).unwrap_err();
        assert_eq!(e.at, 5, "{e}");
    }

    #[test]
    fn a_write_after_the_barrier_fails() {
        // A WQE written between the barrier and the record.
        let s = vec![
            w(RING, 64),
            REC,
            w(RING + 64, 64),
            w(DBR + 4, 4),
            MMIO,
            bar(UAR),
        ];
        assert!(check_records(&s, DBR..DBR + 8).is_err());
        // A write between the record's barrier and the doorbell.
        let s = vec![w(RING, 64), REC, w(DBR + 4, 4), MMIO, w(RING, 8), bar(UAR)];
        assert!(check_doorbells(&s, UAR, Some(DBR..DBR + 8)).is_err());
        // The record is not the last thing written before the doorbell.
        let s = vec![REC, w(DBR + 4, 4), w(RING, 8), MMIO, bar(UAR)];
        assert!(check_doorbells(&s, UAR, Some(DBR..DBR + 8)).is_err());
        // No record at all.
        let s = vec![w(RING, 8), MMIO, bar(UAR)];
        assert!(check_doorbells(&s, UAR, Some(DBR..DBR + 8)).is_err());
        assert_eq!(check_doorbells(&s, UAR, None), Ok(1));
    }

    #[test]
    fn a_cq_arm_writes_both_record_words_after_one_barrier() {
        // CQE reads, set_ci and arm words, the arm doorbell at 0x20.
        let s = vec![
            r(RING + 0x3c, 4),
            OWN,
            r(RING + 0x2c, 4),
            REC,
            w(DBR, 4),
            w(DBR + 4, 4),
            MMIO,
            bar(0x5020),
        ];
        assert_eq!(check_records(&s, DBR..DBR + 8), Ok(2));
        assert_eq!(check_doorbells(&s, 0x5020, Some(DBR..DBR + 8)), Ok(1));
        assert_eq!(
            check_entry_reads(&s, RING..RING + 0x1000, 64, 0x3c..0x40),
            Ok(1)
        );
        // A CQE read after the barrier (between barrier and set_ci): out.
        let bad = vec![REC, r(RING + 0x2c, 4), w(DBR, 4)];
        assert!(check_records(&bad, DBR..DBR + 8).is_err());
    }

    #[test]
    fn entry_reads_need_the_ownership_read_and_the_barrier() {
        let ring = RING..RING + 0x1000;
        // EQE: owner byte 0x3f, then data and type.
        let ok = vec![
            r(RING + 64 + 0x3f, 1),
            OWN,
            r(RING + 64 + 0x20, 28),
            r(RING + 64 + 1, 1),
        ];
        assert_eq!(check_entry_reads(&ok, ring.clone(), 64, 0x3f..0x40), Ok(2));
        let no_barrier = vec![r(RING + 64 + 0x3f, 1), r(RING + 64 + 0x20, 28)];
        let e = check_entry_reads(&no_barrier, ring.clone(), 64, 0x3f..0x40).unwrap_err();
        assert_eq!(e.at, 1, "{e}");
        // A barrier from before this entry's ownership read does not count.
        let stale = vec![OWN, r(RING + 0x3f, 1), r(RING + 0x20, 4)];
        assert!(check_entry_reads(&stale, ring.clone(), 64, 0x3f..0x40).is_err());
        // The body before the owner.
        let early = vec![r(RING + 0x20, 4), r(RING + 0x3f, 1)];
        assert!(check_entry_reads(&early, ring.clone(), 64, 0x3f..0x40).is_err());
        // Another entry's ownership does not cover this one.
        let other = vec![r(RING + 0x3f, 1), OWN, r(RING + 64 + 0x20, 4)];
        assert!(check_entry_reads(&other, ring, 64, 0x3f..0x40).is_err());
    }

    #[test]
    fn the_recorder_is_bounded_and_off_by_default() {
        let rec = Recorder::default();
        rec.push(REC);
        rec.start();
        for _ in 0..MAX_STEPS + 3 {
            rec.push(MMIO);
        }
        let log = rec.stop();
        assert_eq!((log.steps.len(), log.dropped), (MAX_STEPS, 3));
        rec.push(OWN);
        assert_eq!(rec.stop(), OrderLog::default());
    }

    #[test]
    fn a_recording_platform_logs_dma_barriers_and_bar_writes_in_order() {
        use crate::Personality;
        use crate::harness::Mode;
        let rp = Recording::new(SimPlatform::new(Personality::ConnectX5, Mode::Synchronous));
        let d = rp.dma_alloc(64).unwrap();
        let at = d.device_addr().get();
        d.write_be32(0, 1);
        rp.start();
        d.write_bytes(8, &[1, 2, 3]);
        d.with_bytes_mut(16, 4, |b| b.fill(7));
        rp.barrier_before_doorbell_record();
        d.write_be32(0x20, 5);
        rp.barrier_before_mmio_doorbell();
        rp.bar0_write_be32(0x18, 0);
        assert_eq!(d.read_u8(16), 7);
        rp.barrier_after_ownership_read();
        let log = rp.take();
        d.write_be32(0, 2);
        assert_eq!(
            log.steps,
            [
                w(at + 8, 3),
                Step::Lend {
                    addr: at + 16,
                    len: 4,
                    write: true
                },
                REC,
                w(at + 0x20, 4),
                MMIO,
                Step::BarWrite {
                    offset: 0x18,
                    value: 0
                },
                r(at + 16, 1),
                OWN,
            ]
        );
        assert_eq!(rp.take(), OrderLog::default(), "off after take");
    }
}
