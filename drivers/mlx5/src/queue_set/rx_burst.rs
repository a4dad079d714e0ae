//! Receive bursts: [`QueueSet::receive_burst`] hands out every frame that
//! is there (up to a bound) with the CQE read only as far as the frame
//! needs. A round finds the run of common completions first — each
//! entry's tail word (owner bit, opcode, format and QPN) read with one
//! 8-byte load and checked with one masked compare — then reads the run's
//! byte counts and WQE indexes through one plain view of its entries and
//! the frames through one view of the receive buffers. A compressed
//! session is read a mini-CQE array at a time. The per-frame information
//! ([`RxInfo::meta`]) is decoded only when the caller asks. What is not
//! the common case (an error CQE, a filler, a bad length, a wrong queue)
//! is left in the ring for the per-frame path, which consumes it as
//! [`QueueSet::receive`] does (recovering the queue when it must).

use cxos_drivers::{L3Proto, L4Proto, Platform, RxMeta};

use super::{FaultCause, Plat, QueueSet};
use crate::control::Control;
use crate::cq::{Cq, Head, RunEnd};
use crate::cqe::{self, Cqe};
use crate::rq::RxCursor;

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

/// The [`RxMeta`] of a responder CQE (as `QueueSet::rx_meta` decodes it,
/// without its counters): the stripped tag with `vlan_strip`, the RSS
/// hash, the checksum results when the device checks (`csum`).
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

/// What a burst's loop hands on with each frame (copied into its
/// [`RxInfo`]).
#[derive(Clone, Copy)]
struct Ctx {
    queue: u16,
    vlan_strip: bool,
    csum: bool,
}

/// What a run of frames did: the cursor after it, frames, buffer
/// releases, bytes.
struct Took {
    cur: RxCursor,
    n: u32,
    releases: u32,
    bytes: u64,
}

impl<C: Control> QueueSet<C> {
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

    /// Receive queue `q`'s part of a burst: runs of common completions,
    /// compressed sessions, and the others through
    /// [`QueueSet::next_frame`].
    #[inline(always)]
    fn receive_burst_from<F>(&mut self, q: usize, max: usize, f: &mut F) -> usize
    where
        F: FnMut(&[u8], &RxInfo<'_, Plat<C>>),
    {
        let ctx = Ctx {
            queue: q as u16,
            vlan_strip: self.vlan_strip(),
            csum: self.res.caps.csum,
        };
        let mut got = 0;
        // Each round ends a run, a session, or takes one completion
        // through the per-frame path; a run or a session stops at the
        // ring's end, so the rounds are bounded by a few rings.
        let limit = self.parts.rx.get(q).map_or(0, |x| x.cq.entries());
        for _ in 0..=3 * limit {
            if got == max {
                return got;
            }
            let Some(x) = self.parts.rx.get_mut(q) else {
                return got;
            };
            let Some(rq) = x.rq.as_mut() else {
                return got;
            };
            if x.cq.in_session() {
                let (n, releases, bad) = session_burst(ctx, &mut x.cq, rq, max - got, f);
                got += n;
                self.release(q, releases);
                if let Some(wqe_counter) = bad {
                    self.rx_ring_fault(q, FaultCause::BadCompletion { wqe_counter });
                    return got;
                }
                continue;
            }
            let compressing = x.cq.compressing();
            if compressing {
                // Sessions come one after another: the entry at the
                // consumer index alone first (one load), so a title or
                // an empty ring costs no chunk of the run scan.
                match x.cq.title_first() {
                    Head::Empty => return got,
                    Head::Session => continue,
                    Head::Other => {}
                }
            }
            let cq = &x.cq;
            let view = cq.view();
            let start = cq.ci();
            let want = (max - got).min(u32::MAX as usize) as u32;
            let (k, end) = view.common_run(start, want, cqe::opcode::RESP_SEND, rq.rqn.0);
            let mut refused = false;
            if k != 0 {
                let cur = rq.cursor();
                let t = view.with_entries(start, k, |cqes| {
                    rq.with_buffers(|all| take_run(cqes, all, cur, cq, start, ctx, f))
                });
                rq.set_cursor(t.cur);
                rq.count(t.n as u64, t.bytes);
                x.cq.consume(t.n);
                got += t.n as usize;
                self.release(q, t.releases as u16);
                refused = t.n != k;
            }
            if !refused {
                match end {
                    RunEnd::Limit => continue,
                    RunEnd::Empty => return got,
                    // A title only on a compressing CQ; elsewhere the
                    // per-frame path refuses the entry.
                    RunEnd::Other(t) if t.is_title() && compressing => {
                        if let Some(x) = self.parts.rx.get_mut(q) {
                            x.cq.session_ready();
                        }
                        continue;
                    }
                    RunEnd::Other(_) => {}
                }
            }
            // The per-frame path takes the completion the run left (and
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
                    queue: ctx.queue,
                    vlan_strip: ctx.vlan_strip,
                    csum: ctx.csum,
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

/// The frames of a run of common completions (`cqes`, software-owned,
/// from consumer index `start`), each handed to `f` from `all` (the
/// receive buffers); stops at the first the RQ does not take as the
/// common case (left in the ring).
#[inline(always)]
fn take_run<P: Platform, F>(
    cqes: &[[u8; cqe::LEN]],
    all: &[u8],
    mut cur: RxCursor,
    cq: &Cq<P>,
    start: u32,
    ctx: Ctx,
    f: &mut F,
) -> Took
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let (mut n, mut bytes) = (0u32, 0u64);
    // Every WQE a frame used up is one more handed out: the releases.
    let outstanding = cur.outstanding();
    if cur.is_striding() {
        let mut w = cur.window(all);
        for c in cqes {
            let bc = u32::from_be_bytes([
                c[cqe::off::BYTE_CNT],
                c[cqe::off::BYTE_CNT + 1],
                c[cqe::off::BYTE_CNT + 2],
                c[cqe::off::BYTE_CNT + 3],
            ]);
            let key = u32::from_be_bytes([
                c[cqe::off::WQE_ID + 2],
                c[cqe::off::WQE_ID + 3],
                c[cqe::off::TAIL],
                c[cqe::off::TAIL + 1],
            ]);
            if key != w.key() {
                break;
            }
            let Some((frame, _)) = w.take(bc) else {
                break;
            };
            let info = RxInfo {
                cq,
                ci: start.wrapping_add(n),
                queue: ctx.queue,
                vlan_strip: ctx.vlan_strip,
                csum: ctx.csum,
                meta: None,
                mini: None,
            };
            f(frame, &info);
            n += 1;
            bytes += frame.len() as u64;
            if w.is_empty() {
                cur.settle(&w);
                w = cur.window(all);
            }
        }
        cur.settle(&w);
        return Took {
            releases: cur.outstanding().wrapping_sub(outstanding) as u32,
            cur,
            n,
            bytes,
        };
    }
    for c in cqes {
        let bc = u32::from_be_bytes([
            c[cqe::off::BYTE_CNT],
            c[cqe::off::BYTE_CNT + 1],
            c[cqe::off::BYTE_CNT + 2],
            c[cqe::off::BYTE_CNT + 3],
        ]);
        // `wqe_id` (the low half of the first dword) and `wqe_counter`
        // (the high half of the tail dword) as one word.
        let key = u32::from_be_bytes([
            c[cqe::off::WQE_ID + 2],
            c[cqe::off::WQE_ID + 3],
            c[cqe::off::TAIL],
            c[cqe::off::TAIL + 1],
        ]);
        let Some((t, _)) = cur.take_key(key, bc) else {
            break;
        };
        // `take` checked the frame against its buffer; the slice's own
        // check stays (a driver bug is no frame).
        let Some(frame) = all.get(t.offset..t.offset + t.len) else {
            break;
        };
        let info = RxInfo {
            cq,
            ci: start.wrapping_add(n),
            queue: ctx.queue,
            vlan_strip: ctx.vlan_strip,
            csum: ctx.csum,
            meta: None,
            mini: None,
        };
        f(frame, &info);
        n += 1;
        bytes += t.len as u64;
    }
    Took {
        releases: cur.outstanding().wrapping_sub(outstanding) as u32,
        cur,
        n,
        bytes,
    }
}

/// Up to `max` completions of the compressed session the CQ is reading
/// ([`crate::cq::mini_cqe`]), a mini-CQE array at a time, each decoded
/// from the title and its mini-CQE, handed to `f` like a run's: (frames,
/// buffer releases, the `wqe_counter` of a completion the queue refused).
#[inline(always)]
fn session_burst<P: Platform, F>(
    ctx: Ctx,
    cq: &mut Cq<P>,
    rq: &mut crate::rq::Rq<P>,
    max: usize,
    f: &mut F,
) -> (usize, u16, Option<u16>)
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let cur = rq.cursor();
    let outstanding = cur.outstanding();
    let wqe_id = cq.session_wqe_id();
    let start = cq.ci();
    // The cursor and the counts move into the buffers' closure and come
    // back out, so the loop keeps them in registers.
    let c = &mut *cq;
    let (cur, got, bytes, bad) = rq.with_buffers(move |all| {
        if cur.is_striding() {
            return striding_session(ctx, c, cur, wqe_id, all, max, f);
        }
        let mut cur = cur;
        let (mut got, mut bytes) = (0usize, 0u64);
        while got < max && c.in_session() {
            let m = c.take_minis(max - got);
            let mut counter = m.counter;
            // The title says where the session starts; the rest follows.
            let mut failed = m.first && !cur.expects(wqe_id, counter);
            for (j, &w) in c.minis(&m).iter().enumerate() {
                if failed {
                    break;
                }
                let Some((t, step)) = cur.take_next(w as u32) else {
                    failed = true;
                    break;
                };
                let Some(frame) = all.get(t.offset..t.offset + t.len) else {
                    failed = true;
                    break;
                };
                let info = RxInfo {
                    cq: &*c,
                    ci: 0,
                    queue: ctx.queue,
                    vlan_strip: ctx.vlan_strip,
                    csum: ctx.csum,
                    meta: None,
                    mini: Some((w, counter, m.first && j == 0)),
                };
                f(frame, &info);
                got += 1;
                bytes += frame.len() as u64;
                counter = counter.wrapping_add(step);
            }
            c.set_session_counter(counter);
            if failed {
                return (cur, got, bytes, Some(counter));
            }
        }
        (cur, got, bytes, None)
    });
    cq.invalidate(start, cq.ci().wrapping_sub(start));
    rq.set_cursor(cur);
    rq.count(got as u64, bytes);
    let releases = cur.outstanding().wrapping_sub(outstanding);
    (got, releases, bad)
}

/// [`session_burst`]'s loop on a striding RQ: the WQE's strides kept as
/// one window ([`RxCursor::window`]) across the session's arrays, so a
/// frame is its mini-CQE's byte count checked against the window and
/// taken off it.
#[inline(always)]
fn striding_session<P: Platform, F>(
    ctx: Ctx,
    c: &mut Cq<P>,
    mut cur: RxCursor,
    wqe_id: u16,
    all: &[u8],
    max: usize,
    f: &mut F,
) -> (RxCursor, usize, u64, Option<u16>)
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let (mut got, mut bytes) = (0usize, 0u64);
    let mut win = cur.window(all);
    while got < max && c.in_session() {
        let m = c.take_minis(max - got);
        let mut counter = m.counter;
        // The title says where the session starts; the completions after
        // it follow by construction: only their byte counts are checked.
        let mut failed = m.first && win.key() != ((wqe_id as u32) << 16 | counter as u32);
        for (j, &w) in c.minis(&m).iter().enumerate() {
            if failed {
                break;
            }
            let Some((frame, strides)) = win.take(w as u32) else {
                failed = true;
                break;
            };
            let info = RxInfo {
                cq: &*c,
                ci: 0,
                queue: ctx.queue,
                vlan_strip: ctx.vlan_strip,
                csum: ctx.csum,
                meta: None,
                mini: Some((w, counter, m.first && j == 0)),
            };
            f(frame, &info);
            got += 1;
            bytes += frame.len() as u64;
            counter = counter.wrapping_add(strides as u16);
            if win.is_empty() {
                cur.settle(&win);
                win = cur.window(all);
            }
        }
        c.set_session_counter(counter);
        if failed {
            cur.settle(&win);
            return (cur, got, bytes, Some(counter));
        }
    }
    cur.settle(&win);
    (cur, got, bytes, None)
}
