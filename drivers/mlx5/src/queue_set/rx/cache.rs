//! The per-frame receive path ([`QueueSet::receive`]) served from a run
//! of common completions, as a burst reads them: the CQ keeps how many
//! entries from its consumer index [`crate::cq::CqView::common_run`]
//! found software-owned, of opcode `RESP_SEND`, not a session's title, of
//! the queue's RQN (one masked 8-byte compare per tail word)
//! ([`crate::cq::Cq::cached_run`]); each call takes the next of them,
//! reads its byte count and `wqe_id`/`wqe_counter` through one plain view
//! of the entry and has the RQ check them as a burst does
//! ([`crate::rq::RxCursor::take_key`]). [`RxMeta`] is decoded from that
//! entry alone. Whatever is not the common case (an empty run, an error,
//! a filler, a bad length or counter, a title, a session) goes through
//! [`QueueSet::next_frame`], which consumes it as before; any consumer
//! but this one ends the cached run.

use cxos_drivers::RxMeta;

use super::super::QueueSet;
use crate::control::Control;
use crate::cqe::{self, Cqe};

#[inline(always)]
fn be32(c: &[u8; cqe::LEN], o: usize) -> u32 {
    u32::from_be_bytes([c[o], c[o + 1], c[o + 2], c[o + 3]])
}

/// What the per-frame path reads of a common completion, as [`Cqe`]:
/// the tail (`wqe_counter`, `op_own`), `wqe_id`, `rss_hash_result`, the
/// dword of `hds_ip_ext`, `l4_l3_hdr_type` and `vlan_info`, and the byte
/// count; the others (the run's scan checked the QPN) are 0.
#[inline(always)]
fn common_cqe(c: &[u8; cqe::LEN]) -> Cqe {
    let mut w = [0u64; cqe::WORDS];
    // A word at 8k holds the dword at 8k in its high half, the one at
    // 8k + 4 in its low half.
    w[cqe::off::WQE_ID / 8] = (be32(c, cqe::off::WQE_ID) as u64) << 32;
    w[cqe::off::RSS_HASH / 8] = be32(c, cqe::off::RSS_HASH) as u64;
    w[cqe::off::HDR / 8] = be32(c, cqe::off::HDR) as u64;
    w[cqe::off::BYTE_CNT / 8] = be32(c, cqe::off::BYTE_CNT) as u64;
    Cqe::from_words(be32(c, cqe::off::TAIL), &w, || 0)
}

/// The bits of a CQE's last 8 bytes ([`crate::cq::CqeTail`]) a common
/// completion fixes: the QPN `[55:32]`, and of `op_own` the opcode
/// `[7:4]` and `cqe_format` `[3:2]` (the owner bit `[0]` checked by
/// [`crate::cq::Cq::owned_tail`]); not `se` `[1]`, `wqe_counter`,
/// `signature`.
const COMMON_TAIL_MASK: u64 = (0x00ff_ffff << 32) | 0xfc;

/// A common completion's tail bits under [`COMMON_TAIL_MASK`]: queue
/// `rqn`, opcode `RESP_SEND`, format 0 (no session).
#[inline(always)]
fn common_tail(rqn: u32) -> u64 {
    ((rqn as u64 & 0x00ff_ffff) << 32) | ((cqe::opcode::RESP_SEND as u64) << 4)
}

/// Entries the first step of a run's scan reads one at a time (fewer
/// than a chunk of [`crate::cq::CqView::common_run`]).
const FIRST: u32 = 7;

/// A common completion's `wqe_id` (the low half of its first dword) and
/// `wqe_counter` (the high half of its tail dword) as one word:
/// `wqe_id << 16 | wqe_counter`.
#[inline(always)]
fn key_of(c: &[u8; cqe::LEN]) -> u32 {
    u32::from_be_bytes([
        c[cqe::off::WQE_ID + 2],
        c[cqe::off::WQE_ID + 3],
        c[cqe::off::TAIL],
        c[cqe::off::TAIL + 1],
    ])
}

const _: () = assert!(cqe::off::WQE_ID.is_multiple_of(8));
const _: () = assert!(cqe::off::RSS_HASH % 8 == 4 && cqe::off::HDR % 8 == 4);
const _: () = assert!(cqe::off::BYTE_CNT % 8 == 4);

impl<C: Control> QueueSet<C> {
    /// Hand the next frame of receive queue `q` to `f` with its
    /// [`RxMeta`], its buffer released after (`Err(f)` when the queue has
    /// none): the next entry of the CQ's cached run of common completions
    /// (found anew when it is used up) if the RQ takes it as the common
    /// case ([`crate::rq::Rq::take_common`]); anything else through
    /// [`QueueSet::next_frame`], which consumes it as before.
    #[inline(always)]
    pub(in crate::queue_set) fn receive_at<R, F>(&mut self, q: usize, f: F) -> Result<R, F>
    where
        F: FnOnce(&[u8], RxMeta) -> R,
    {
        let Some(x) = self.parts.rx.get_mut(q) else {
            return Err(f);
        };
        // In error, its recovery pending: nothing is taken from it.
        if x.halted {
            return Err(f);
        }
        let Some(rq) = x.rq.as_mut() else {
            return Err(f);
        };
        if x.cq.cached_run() == 0 {
            // A session is read by `next_frame` (its completions are not
            // in the ring).
            if x.cq.in_session() {
                return self.receive_slow(q, f);
            }
            // The entry at the consumer index first, by itself: an empty
            // ring (the usual case of a queue polled in turn with others)
            // costs one load, and a run of one no scan.
            let ci = x.cq.ci();
            let Some(tail) = x.cq.owned_tail(ci) else {
                return Err(f);
            };
            let rqn = rq.rqn.0;
            if (tail.0 ^ common_tail(rqn)) & COMMON_TAIL_MASK != 0 {
                return self.receive_slow(q, f);
            }
            // The rest of the run: a few entries one at a time (runs of a
            // queue polled in turn with others are short, and a chunk of
            // the scan would read past them), a full step going on a
            // chunk at a time (into the ring's next pass, checked as
            // such).
            let view = x.cq.view();
            let next = ci.wrapping_add(1);
            let (mut k, _) = view.common_run(next, FIRST, cqe::opcode::RESP_SEND, rqn);
            if k == FIRST {
                let at = next.wrapping_add(k);
                k += view.common_run(at, u32::MAX, cqe::opcode::RESP_SEND, rqn).0;
            }
            let k = k + 1;
            x.cq.set_cached_run(k);
        }
        let ci = x.cq.ci();
        let Some((cqe, key)) =
            x.cq.view()
                .with_entries(ci, 1, |c| c.first().map(|c| (common_cqe(c), key_of(c))))
        else {
            return self.receive_slow(q, f);
        };
        // Not the common case (counter, strides, length, filler): left
        // for `next_frame`, which consumes it and names what is wrong.
        let Some(frame) = rq.take_common(key, cqe.byte_count()) else {
            return self.receive_slow(q, f);
        };
        x.cq.take_cached();
        let vlan_strip = self.cfg.vlan_strip && self.res.caps.vlan_strip;
        let mut meta = super::meta_of(&mut self.stats, vlan_strip, self.res.caps.csum, &cqe);
        meta.queue = q as u16;
        let r = rq.with_frame(frame, |b| f(b, meta));
        super::release_rx(x, frame.releases);
        Ok(r)
    }

    /// [`QueueSet::receive_at`] through [`QueueSet::next_frame`].
    #[inline(never)]
    fn receive_slow<R, F>(&mut self, q: usize, f: F) -> Result<R, F>
    where
        F: FnOnce(&[u8], RxMeta) -> R,
    {
        let Some((frame, meta)) = self.next_frame(q) else {
            return Err(f);
        };
        let r = match self.parts.rx.get(q).and_then(|x| x.rq.as_ref()) {
            Some(rq) => rq.with_frame(frame, |b| f(b, meta)),
            None => return Err(f),
        };
        self.release(q, frame.releases);
        Ok(r)
    }
}
