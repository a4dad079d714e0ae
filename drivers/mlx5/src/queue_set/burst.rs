//! Bursts: [`QueueSet::transmit_burst`] posts many frames and rings one
//! doorbell; [`QueueSet::receive_burst`] hands out every frame that is
//! there (up to a bound) with the CQE read only as far as the frame
//! needs: its owner word (with the QPN), its byte count and, on a
//! striding RQ, its WQE index. The per-frame information ([`RxInfo::meta`])
//! is decoded only when the caller asks. What is not the common case
//! (an error CQE, a filler, a bad length, a wrong queue) is left in the
//! ring for the per-frame path, which consumes it as
//! [`QueueSet::receive`] does (recovering the queue when it must).

use cxos_drivers::{L3Proto, L4Proto, Platform, RxMeta, TxError, TxMeta};

use super::{FaultCause, Parts, Plat, QueueSet};
use crate::control::Control;
use crate::cq::Cq;
use crate::cqe::{self, Cqe};
use crate::frame::VLAN_HLEN;
use crate::sq::TxOpts;

/// What a receive burst gives with each frame: its queue and, decoded
/// on demand, what its CQE says ([`RxInfo::meta`]).
pub struct RxInfo<'a, P: Platform> {
    cq: &'a Cq<P>,
    ci: u32,
    queue: u16,
    vlan_strip: bool,
    csum: bool,
    /// The per-frame path's decoding (its CQE may be a compressed
    /// session's, not in the ring).
    meta: Option<RxMeta>,
    /// A compressed session's completion (not in the ring): its
    /// mini-CQE word, `wqe_counter`, and whether it is the session's first.
    mini: Option<(u64, u16, bool)>,
}

impl<P: Platform> core::fmt::Debug for RxInfo<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RxInfo")
            .field("ci", &self.ci)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl<P: Platform> RxInfo<'_, P> {
    /// The receive queue the frame landed on.
    #[inline(always)]
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The frame's [`RxMeta`], from its CQE (read now). The queue set's
    /// checksum and VLAN counters count only frames of the per-frame
    /// path ([`QueueSet::receive`]).
    #[inline]
    pub fn meta(&self) -> RxMeta {
        if let Some(m) = self.meta {
            return m;
        }
        let c = match self.mini {
            Some((mini, counter, first)) => self.cq.session_cqe(mini, counter, first),
            None => self.cq.entry(self.ci),
        };
        let mut m = meta_of(&c, self.vlan_strip, self.csum);
        m.queue = self.queue;
        m
    }
}

/// The [`RxMeta`] of a responder CQE (as `QueueSet::rx_meta` decodes it, without its counters): the stripped tag with `vlan_strip`,
/// the RSS hash, the checksum results when the device checks (`csum`).
#[inline(always)]
fn meta_of(cqe: &Cqe, vlan_strip: bool, csum: bool) -> RxMeta {
    let mut m = RxMeta::default();
    if vlan_strip && cqe.has_vlan() {
        m.vlan = Some(cqe.vlan_tci());
    }
    m.rss_hash = cqe.rss_hash();
    if !csum {
        return m;
    }
    m.l3 = cqe.l3();
    m.l4 = cqe.l4();
    m.l3_csum_ok = m.l3 == L3Proto::Ipv4 && cqe.l3_ok();
    m.l4_csum_ok = m.l4 != L4Proto::Other && cqe.l4_ok();
    m.csum_ok = m.l4_csum_ok && (m.l3 == L3Proto::Ipv6 || m.l3_csum_ok);
    m
}

impl<C: Control> QueueSet<C> {
    /// Post up to `n` frames and ring one doorbell. `write(i, buffer)`
    /// writes frame `i` into a whole transmit buffer and returns its
    /// length; 0 (or a length past the MTU frame) ends the burst there.
    /// Every frame gets `meta`'s offloads (no LSO: [`TxError::Unsupported`]);
    /// give `meta.geometry` with a checksum request and the headers are
    /// not looked at. Returns the frames posted; fewer than `n` when the
    /// ring or the buffers ran out (reap with [`QueueSet::poll`]).
    #[inline]
    pub fn transmit_burst<F>(&mut self, n: usize, meta: TxMeta, write: F) -> Result<usize, TxError>
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        if meta.lso.is_some() {
            return Err(TxError::Unsupported);
        }
        self.check_offloads(&meta)?;
        self.reap_tx();
        let room = if meta.vlan.is_some() { VLAN_HLEN } else { 0 };
        let max = self.max_frame() - room;
        let size = self.tx_buf_size;
        let Parts { sq, tx_bufs, .. } = &mut self.parts;
        let (Some(sq), Some(bufs)) = (sq.as_mut(), tx_bufs.as_ref()) else {
            return Err(TxError::Down);
        };
        let opts = TxOpts {
            csum: meta.csum,
            vlan: meta.vlan,
            geometry: meta.geometry.map(Into::into),
            ..TxOpts::default()
        };
        let b = sq.post_burst(bufs, size, max, n, opts, write);
        sq.ring_doorbell();
        if b.full {
            self.stats.tx_busy += 1;
        }
        Ok(b.sent)
    }

    /// Reap the transmit completions a burst finds: requester CQEs of
    /// the SQ, each freeing every WQE up to its `wqe_counter`, read as
    /// their owner word (with the QPN) only. Anything else, and the
    /// interrupt mode's EQ, is [`QueueSet::poll`]'s.
    #[inline(always)]
    fn reap_tx(&mut self) {
        if self.cfg.interrupts {
            self.poll();
            return;
        }
        let Parts { sq, tx_cq, .. } = &mut self.parts;
        let (Some(sq), Some(cq)) = (sq.as_mut(), tx_cq.as_mut()) else {
            return;
        };
        let sqn = sq.sqn.0;
        let start = cq.ci();
        let mut ci = start;
        let mut other = false;
        // At most one ring's worth, as `poll`.
        for _ in 0..cq.entries() {
            let Some(t) = cq.owned_tail(ci) else {
                break;
            };
            if t.opcode() != cqe::opcode::REQ
                || t.qpn() != sqn
                || sq.complete_at(t.wqe_counter()).is_err()
            {
                other = true;
                break;
            }
            ci = ci.wrapping_add(1);
        }
        if ci != start {
            cq.consume(ci.wrapping_sub(start));
            cq.update_ci();
        }
        if other {
            self.poll();
        }
    }

    /// Hand every received frame (at most `max`) to `f` in place, with
    /// its [`RxInfo`]; the buffers are re-posted after (doorbell record
    /// every quarter ring and at the end of the burst). Returns the
    /// frames handed out. The receive queues are taken round robin.
    #[inline]
    pub fn receive_burst<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(&[u8], &RxInfo<'_, Plat<C>>),
    {
        let queues = self.parts.rx.len();
        let mut got = 0;
        if queues == 1 {
            got = self.receive_burst_from(0, max, &mut f);
        } else {
            let mut q = self.rx_next.min(queues.saturating_sub(1));
            for _ in 0..queues {
                got += self.receive_burst_from(q, max - got, &mut f);
                q = if q + 1 == queues { 0 } else { q + 1 };
                if got == max {
                    break;
                }
            }
            self.rx_next = q;
        }
        for q in 0..queues {
            if let Some(x) = self.parts.rx.get_mut(q)
                && x.uncommitted > 0
            {
                super::commit_rx(x);
            }
        }
        got
    }

    /// Receive queue `q`'s part of a burst: the common completions in a
    /// tight loop, the others through [`QueueSet::next_frame`].
    #[inline(always)]
    fn receive_burst_from<F>(&mut self, q: usize, max: usize, f: &mut F) -> usize
    where
        F: FnMut(&[u8], &RxInfo<'_, Plat<C>>),
    {
        let vlan_strip = self.vlan_strip();
        let csum = self.res.caps.csum;
        let mut got = 0;
        // Each round ends at a completion the tight loop leaves; the
        // per-frame path consumes it, so the rounds are bounded by the
        // ring's size.
        let limit = self.parts.rx.get(q).map_or(0, |x| x.cq.entries());
        for _ in 0..=limit {
            let Some(x) = self.parts.rx.get_mut(q) else {
                return got;
            };
            let Some(rq) = x.rq.as_mut() else {
                return got;
            };
            if x.cq.session_ready() {
                let (n, releases, bad) =
                    session_burst(q as u16, &mut x.cq, rq, max - got, vlan_strip, csum, f);
                got += n;
                self.release(q, releases);
                if let Some(wqe_counter) = bad {
                    self.recover_rq(q, FaultCause::BadCompletion { wqe_counter });
                    return got;
                }
                if got == max {
                    return got;
                }
                continue;
            }
            let cq = &x.cq;
            let view = cq.view();
            let rqn = rq.rqn.0;
            let mut cur = rq.cursor();
            let start = cq.ci();
            let mut ci = start;
            let (mut releases, mut bytes) = (0u32, 0u64);
            let (mut stopped, mut title) = (false, false);
            rq.with_buffers(|all| {
                while got < max {
                    // A compressed session is read by the per-frame path.
                    if cq.in_session() {
                        stopped = true;
                        break;
                    }
                    let Some(t) = view.owned_tail(ci) else {
                        break;
                    };
                    if t.is_title() {
                        title = true;
                        break;
                    }
                    if t.opcode() != cqe::opcode::RESP_SEND || t.qpn() != rqn {
                        stopped = true;
                        break;
                    }
                    let (byte_cnt, wqe_id) = view.byte_cnt_and_wqe_id(ci);
                    let Some((taken, done)) = cur.take(wqe_id, t.wqe_counter(), byte_cnt) else {
                        stopped = true;
                        break;
                    };
                    // `take` checked the frame against its buffer; the
                    // slice's own check stays (a driver bug is no frame).
                    let Some(frame) = all.get(taken.offset..taken.offset + taken.len) else {
                        stopped = true;
                        break;
                    };
                    let info = RxInfo {
                        cq,
                        ci,
                        queue: q as u16,
                        vlan_strip,
                        csum,
                        meta: None,
                        mini: None,
                    };
                    f(frame, &info);
                    ci = ci.wrapping_add(1);
                    got += 1;
                    releases += done as u32;
                    bytes += taken.len as u64;
                }
            });
            rq.set_cursor(cur);
            let n = ci.wrapping_sub(start);
            rq.count(n as u64, bytes);
            x.cq.consume(n);
            self.release(q, releases as u16);
            if title && got < max {
                continue;
            }
            if !stopped || got == max {
                return got;
            }
            // The per-frame path takes the completion the loop left (and
            // whatever follows up to the next frame).
            let Some((frame, meta)) = self.next_frame(q) else {
                return got;
            };
            if let Some(x) = self.parts.rx.get(q)
                && let Some(rq) = x.rq.as_ref()
            {
                let info = RxInfo {
                    cq: &x.cq,
                    ci: x.cq.ci().wrapping_sub(1),
                    queue: q as u16,
                    vlan_strip,
                    csum,
                    meta: Some(meta),
                    mini: None,
                };
                rq.with_frame(frame, |b| f(b, &info));
                got += 1;
            }
            self.release(q, frame.releases);
        }
        got
    }
}

/// Up to `max` completions of the compressed session the CQ is reading
/// ([`crate::cq::mini_cqe`]), each decoded from the title and its
/// mini-CQE, handed to `f` like the tight loop's: (frames, buffer
/// releases, the `wqe_counter` of a completion the queue refused).
#[inline(always)]
fn session_burst<P: Platform, F>(
    queue: u16,
    cq: &mut Cq<P>,
    rq: &mut crate::rq::Rq<P>,
    max: usize,
    vlan_strip: bool,
    csum: bool,
    f: &mut F,
) -> (usize, u16, Option<u16>)
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let mut cur = rq.cursor();
    let (mut got, mut releases, mut bytes) = (0usize, 0u32, 0u64);
    let mut bad = None;
    let wqe_id = cq.session_wqe_id();
    rq.with_buffers(|all| {
        while got < max && cq.in_session() {
            let first = cq.session_first();
            let (mini, counter) = cq.next_mini();
            let frame = cur
                .take(wqe_id, counter, mini as u32)
                .and_then(|(t, done)| Some((all.get(t.offset..t.offset + t.len)?, done)));
            let Some((frame, done)) = frame else {
                bad = Some(counter);
                break;
            };
            let info = RxInfo {
                cq,
                ci: 0,
                queue,
                vlan_strip,
                csum,
                meta: None,
                mini: Some((mini, counter, first)),
            };
            f(frame, &info);
            got += 1;
            releases += done as u32;
            bytes += frame.len() as u64;
        }
    });
    rq.set_cursor(cur);
    rq.count(got as u64, bytes);
    (got, releases as u16, bad)
}
