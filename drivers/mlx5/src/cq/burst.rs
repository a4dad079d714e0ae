//! The CQ as a receive burst reads it: the owner word of the entry at a
//! consumer index the caller keeps in a register, the few other words the
//! common completion needs, and one consumer-index update per burst
//! (`struct mlx5_cqe64` in device.h; offsets in [`crate::cqe::off`]).
//! Anything but the common case is left in the ring for [`Cq::pop`].

use cxos_drivers::{DmaRegion, Mmio, Platform, Region};

use super::Cq;
use crate::cqe;

/// The last 8 bytes of a CQE ([`cqe::off::QPN`]): `sop_drop_qpn` in the
/// high half, `wqe_counter` `[31:16]`, `signature`, `op_own` `[7:0]` in
/// the low half. One load: the owner byte and the QPN come together.
#[derive(Clone, Copy, Debug)]
pub struct CqeTail(pub u64);

impl CqeTail {
    #[inline(always)]
    pub fn qpn(self) -> u32 {
        (self.0 >> 32) as u32 & 0x00ff_ffff
    }

    #[inline(always)]
    pub fn wqe_counter(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The title of a compressed session ([`super::mini_cqe`]).
    #[inline(always)]
    pub fn is_title(self) -> bool {
        super::mini_cqe::is_title(self.0 as u8)
    }

    /// `op_own` `[7:4]` ([`crate::cqe::OpOwn`]).
    #[inline(always)]
    pub fn opcode(self) -> u8 {
        (self.0 as u8) >> 4
    }
}

/// The bits of a tail word ([`CqeTail`]) the common completion fixes:
/// the QPN `[55:32]`, and of `op_own` the opcode `[7:4]`, `cqe_format`
/// `[3:2]` and the owner bit `[0]` (not `se` `[1]`).
const COMMON_MASK: u64 = (0x00ff_ffff << 32) | 0xfd;

/// What [`Cq::tail_at`] found at a consumer index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailAt {
    /// The common completion asked for (the read barrier passed).
    Common,
    /// An entry the device still owns.
    Empty,
    /// A software-owned entry that is not the common completion (its
    /// reader reads its owner byte again, then the barrier).
    Other,
}

/// Tail words [`CqView::common_run`] reads with one accessor call.
const SCAN: usize = 8;

/// Where [`CqView::common_run`] stopped.
#[derive(Clone, Copy, Debug)]
pub enum RunEnd {
    /// At the bound asked or the ring's end: there may be more.
    Limit,
    /// At an entry the device still owns.
    Empty,
    /// At a software-owned entry that is not the common completion (its
    /// tail word; read nothing else of it before the read barrier).
    Other(CqeTail),
    /// At a software-owned entry that is the common completion but for
    /// its `wqe_counter`, which is not the run's next ([`RunExpect`]):
    /// the next WQE's first stride, a frame of another size before it,
    /// or a lie. Found by a counted scan only.
    Step,
}

/// What [`CqView::common_run`] expects of each tail word: the owner bit,
/// the opcode, format 0 and the QPN; and, for a striding RQ, the
/// `wqe_counter` (the first stride) of the run's first entry and the
/// strides each frame takes (`step`): entry `j` must say `counter + j *
/// step`. The `signature` byte and `se` are not compared (the driver
/// uses neither).
#[derive(Clone, Copy, Debug)]
pub struct RunExpect {
    opcode: u8,
    qpn: u32,
    counter: u16,
    step: u16,
    counted: bool,
}

impl RunExpect {
    /// Owner, opcode, format and QPN only (a cyclic RQ, whose loop checks
    /// each `wqe_counter` itself).
    #[inline(always)]
    pub fn common(opcode: u8, qpn: u32) -> RunExpect {
        RunExpect {
            opcode,
            qpn,
            counter: 0,
            step: 0,
            counted: false,
        }
    }

    /// [`RunExpect::common`] and entry `j`'s `wqe_counter` `counter + j *
    /// step` (a striding RQ's run of frames of `step` strides each).
    #[inline(always)]
    pub fn counted(opcode: u8, qpn: u32, counter: u16, step: u16) -> RunExpect {
        RunExpect {
            opcode,
            qpn,
            counter,
            step,
            counted: true,
        }
    }

    /// The tail word a common completion of ring pass `pass` has under
    /// [`COMMON_MASK`]: the QPN, the opcode, format 0 and the pass's
    /// owner bit.
    #[inline(always)]
    fn common_tail(self, pass: u32) -> u64 {
        ((self.qpn as u64 & 0x00ff_ffff) << 32) | ((self.opcode as u64) << 4) | (pass & 1) as u64
    }
}

/// The tail word's `wqe_counter` bits ([`CqeTail`]).
const COUNTER_MASK: u64 = 0xffff << 16;

/// A common completion's `wqe_id` (the low half of its first dword, a
/// striding RQ's WQE) and `wqe_counter` (the high half of its tail dword)
/// as one word, `wqe_id << 16 | wqe_counter`: what the RQ checks of each
/// entry of a run (`RxCursor::take_key`, `Rq::take_common`). `c` is the
/// entry from its start, at least up to `wqe_counter`'s end.
#[inline(always)]
pub fn run_key<const N: usize>(c: &[u8; N]) -> u32 {
    const { assert!(N >= cqe::off::TAIL + 2) };
    u32::from_be_bytes([
        c[cqe::off::WQE_ID + 2],
        c[cqe::off::WQE_ID + 3],
        c[cqe::off::TAIL],
        c[cqe::off::TAIL + 1],
    ])
}

/// A CQ as a burst loop reads it: the ring and its geometry in locals
/// (see [`Cq::view`]).
pub struct CqView<'a, P: Platform> {
    mem: &'a Region<P>,
    mmio: &'a P::Mmio,
    mask: u32,
    log_size: u32,
}

impl<P: Platform> core::fmt::Debug for CqView<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CqView")
            .field("mask", &self.mask)
            .finish_non_exhaustive()
    }
}

impl<P: Platform> CqView<'_, P> {
    /// [`Cq::owned_tail`].
    #[inline(always)]
    pub fn owned_tail(&self, ci: u32) -> Option<CqeTail> {
        let base = (ci & self.mask) as usize * cqe::LEN;
        let mut w = [0u64; 1];
        self.mem.read_be64s(base + cqe::off::QPN, &mut w);
        if !cqe::software_owns(w[0] as u32, ci >> self.log_size) {
            return None;
        }
        self.mmio.barrier_after_ownership_read();
        Some(CqeTail(w[0]))
    }

    /// How many entries from `ci` (at most `n`, none past the ring's
    /// end) are the common completion `e` describes: software-owned, its
    /// opcode, not a compressed session's title, of its queue and (a
    /// counted scan) with the `wqe_counter`s of its run. One 8-byte load
    /// of each entry's tail word and one masked compare against what the
    /// entry must say (an invalid opcode, a title, an error, another
    /// queue's completion or another stride all differ); the read barrier
    /// follows when any was found. The entry that stopped the run (if
    /// owned) is the caller's to look at, classified from the word the
    /// scan read. The tails are read [`SCAN`] at a time, one accessor call
    /// each (one at a time before the bound or the ring's end).
    #[inline(always)]
    pub fn common_run(&self, ci: u32, n: u32, e: RunExpect) -> (u32, RunEnd) {
        let slot = ci & self.mask;
        let n = n.min(self.mask + 1 - slot);
        let common = e.common_tail(ci >> self.log_size);
        let mask = if e.counted {
            COMMON_MASK | COUNTER_MASK
        } else {
            COMMON_MASK
        };
        // Entry `k`'s whole expectation (its counter wrapping at 16 bits).
        let exact = |k: u32| {
            let c = e.counter.wrapping_add((k as u16).wrapping_mul(e.step));
            common | (c as u64) << 16
        };
        let base = slot as usize * cqe::LEN + cqe::off::QPN;
        let pass = ci >> self.log_size;
        // Where an entry that is not the run's next stops it.
        // Ownership first: a burst usually ends at the empty ring.
        let stop = |w: u64, want: u64| {
            let d = w ^ want;
            if !cqe::software_owns(w as u32, pass) {
                Some(RunEnd::Empty)
            } else if d & mask == 0 {
                None
            } else if d & COMMON_MASK == 0 {
                Some(RunEnd::Step)
            } else {
                Some(RunEnd::Other(CqeTail(w)))
            }
        };
        let mut k = 0;
        let mut end = RunEnd::Limit;
        // Whole chunks: a fixed count of loads (unrolled), the compares
        // folded into one branch for the usual case. The compare is made
        // on the words as loaded (byte-swapped back: the swaps cancel the
        // accessor's), against the chunk's first expectation (kept as a
        // number, stepped per chunk) swapped once and, lane to lane, the
        // step added in the stored byte order (the counter's low byte at
        // [47:40], its high byte at [39:32]): exact while neither byte
        // carries; a carry only sends the chunk to the exact compare.
        let mask_raw = mask.swap_bytes();
        let step_raw = ((e.step as u64 & 0xff) << 40) | ((e.step as u64 >> 8) << 32);
        let chunk_step = ((e.step as u64) << 16).wrapping_mul(SCAN as u64);
        let mut first = exact(0);
        let mut tails = [0u64; SCAN];
        'scan: while k + SCAN as u32 <= n {
            self.mem
                .read_be64s_strided(base + k as usize * cqe::LEN, cqe::LEN, &mut tails);
            let mut want = first.swap_bytes();
            let mut acc = 0;
            for &w in &tails {
                acc |= w.swap_bytes() ^ want;
                want = want.wrapping_add(step_raw);
            }
            if acc & mask_raw == 0 {
                k += SCAN as u32;
                first = first.wrapping_add(chunk_step);
                continue;
            }
            // The chunk holds the run's end (or a carry): its entries
            // compared one at a time, exactly; the first classified from
            // the word the chunk read (a burst's usual end: the ring
            // empty there), the others read again (their words need not
            // stay live through the chunk's compare).
            let mut w = tails[0];
            for j in 0..SCAN {
                if j != 0 {
                    w = self.mem.read_be64(base + k as usize * cqe::LEN);
                }
                if let Some(x) = stop(w, exact(k)) {
                    end = x;
                    break 'scan;
                }
                k += 1;
            }
            first = exact(k);
        }
        // Fewer than a chunk before the bound or the ring's end.
        if matches!(end, RunEnd::Limit) {
            while k < n {
                let w = self.mem.read_be64(base + k as usize * cqe::LEN);
                if let Some(x) = stop(w, exact(k)) {
                    end = x;
                    break;
                }
                k += 1;
            }
        }
        if k != 0 {
            self.mmio.barrier_after_ownership_read();
        }
        (k, end)
    }

    /// Run `g` over a plain view of the `n` entries from `ci` (software
    /// owns them: [`CqView::common_run`] found them so, and the consumer
    /// index is not published past them while `g` runs), as whole CQEs.
    #[inline(always)]
    pub fn with_entries<R>(&self, ci: u32, n: u32, g: impl FnOnce(&[[u8; cqe::LEN]]) -> R) -> R {
        let base = (ci & self.mask) as usize * cqe::LEN;
        self.mem
            .with_bytes(base, n as usize * cqe::LEN, |b| g(b.as_chunks().0))
    }

    /// The byte count and the first dword (a striding RQ's `wqe_id`) of
    /// the entry at `ci`, after [`CqView::owned_tail`] found it
    /// software-owned: one range check, two plain loads.
    #[inline(always)]
    pub fn byte_cnt_and_wqe_id(&self, ci: u32) -> (u32, u16) {
        let base = (ci & self.mask) as usize * cqe::LEN;
        self.mem.with_bytes(base, cqe::off::QPN, |e| {
            let be32 = |o: usize| {
                e.get(o..o + 4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u32::from_be_bytes)
            };
            (be32(cqe::off::BYTE_CNT), be32(cqe::off::WQE_ID) as u16)
        })
    }

    /// [`Cq::word`].
    #[inline(always)]
    pub fn word(&self, ci: u32, off: usize) -> u64 {
        let base = (ci & self.mask) as usize * cqe::LEN;
        let mut w = [0u64; 1];
        self.mem.read_be64s(base + off, &mut w);
        w[0]
    }
}

impl<P: Platform> Cq<P> {
    /// The ring for a burst loop: its geometry copied out of `self`, so
    /// the loop keeps it in registers.
    #[inline(always)]
    pub fn view(&self) -> CqView<'_, P> {
        CqView {
            mem: &self.ring.mem,
            mmio: &self.mmio,
            mask: self.mask,
            log_size: self.log_size as u32,
        }
    }

    /// The consumer index (the next entry to read).
    #[inline(always)]
    pub fn ci(&self) -> u32 {
        self.ci
    }

    /// The tail word of the entry at consumer index `ci` if software owns
    /// it (owner bit of `ci`'s pass, a valid opcode), read before every
    /// other word of the entry: the read barrier follows it.
    #[inline(always)]
    pub fn owned_tail(&self, ci: u32) -> Option<CqeTail> {
        let base = (ci & self.mask) as usize * cqe::LEN;
        let mut w = [0u64; 1];
        self.ring.mem.read_be64s(base + cqe::off::QPN, &mut w);
        if !cqe::software_owns(w[0] as u32, ci >> self.log_size) {
            return None;
        }
        self.mmio.barrier_after_ownership_read();
        Some(CqeTail(w[0]))
    }

    /// The entry at `ci` by its tail word against the common completion
    /// `e` describes (software-owned in `ci`'s pass, its opcode, format 0,
    /// its QPN; the `wqe_counter` not compared): one 8-byte load, one
    /// masked compare, as [`CqView::common_run`] makes; the read
    /// barrier after it when it is the common completion. Read before
    /// every other word of the entry, each time the entry is taken: the
    /// device is not trusted to leave a software-owned entry alone.
    #[inline(always)]
    pub fn tail_at(&self, ci: u32, e: RunExpect) -> TailAt {
        let w = self.word(ci, cqe::off::QPN);
        let pass = ci >> self.log_size;
        if (w ^ e.common_tail(pass)) & COMMON_MASK == 0 {
            self.mmio.barrier_after_ownership_read();
            TailAt::Common
        } else if cqe::software_owns(w as u32, pass) {
            TailAt::Other
        } else {
            TailAt::Empty
        }
    }

    /// The 8-byte word at `off` (8-aligned) of the entry at `ci`, after
    /// [`Cq::owned_tail`] found it software-owned.
    #[inline(always)]
    pub fn word(&self, ci: u32, off: usize) -> u64 {
        let base = (ci & self.mask) as usize * cqe::LEN;
        let mut w = [0u64; 1];
        self.ring.mem.read_be64s(base + off, &mut w);
        w[0]
    }

    /// `n` entries read by a burst are consumed (the doorbell record at
    /// the next [`Cq::update_ci`]).
    #[inline(always)]
    pub fn consume(&mut self, n: u32) {
        self.ci = self.ci.wrapping_add(n);
        self.polled += n as u64;
    }
}

impl<P: Platform> Cq<P> {
    /// The whole entry at `ci` as [`Cq::pop`] reads it, without consuming
    /// it (software owns it: a burst found it so and has not published
    /// the consumer index past it).
    #[inline]
    pub fn entry(&self, ci: u32) -> crate::cqe::Cqe {
        let base = (ci & self.mask) as usize * cqe::LEN;
        let m = &self.ring.mem;
        let tail = m.read_be32(base + cqe::off::TAIL);
        let mut w = [0u64; cqe::WORDS];
        m.read_be64s(base, &mut w);
        crate::cqe::Cqe::from_words(tail, &w, || m.read_be32(base + cqe::off::QPN))
    }
}
