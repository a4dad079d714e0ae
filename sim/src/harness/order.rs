//! What the driver did, in order: a recorder of the driver's DMA-memory
//! accesses, barriers and BAR accesses through the harness's platform
//! ([`SimPlatform::record_order`](super::SimPlatform::record_order)), and
//! checkers of the ordering rule of `cxos_drivers::platform`:
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
//! Only the driver's side is recorded (the `SimDma` accessors and the
//! platform's MMIO); the model's own DMA never is. The log is bounded
//! ([`MAX_STEPS`]); a log that overflowed says so.
#![deny(unsafe_code)]

use std::fmt;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub use cxos_drivers::Barrier;

/// Steps kept by one recording; later ones are counted, not kept.
pub const MAX_STEPS: usize = 1 << 20;

/// One step the driver took through the harness's platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A `SimDma` write accessor (`write_*`, `write_bytes`, `fill`).
    DmaWrite {
        addr: u64,
        len: usize,
    },
    /// A `SimDma` read accessor (`read_*`, `read_bytes`).
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

/// The recorder a harness platform and its DMA regions share.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    on: AtomicBool,
    log: Mutex<OrderLog>,
}

impl Recorder {
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn push(&self, s: Step) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if !self.on() {
            return;
        }
        if log.steps.len() < MAX_STEPS {
            log.steps.push(s);
        } else {
            log.dropped += 1;
        }
    }

    pub(crate) fn start(&self) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        *log = OrderLog::default();
        self.on.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stop(&self) -> OrderLog {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        self.on.store(false, Ordering::Relaxed);
        std::mem::take(&mut *log)
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
        assert!(!rec.on());
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
}
