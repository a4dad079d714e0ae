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
use crate::cq::mini_cqe::MiniSink;
use crate::cq::{Cq, Head, RunEnd, RunExpect, run_key};
use crate::cqe::{self, Cqe};
use crate::rq::RxCursor;

/// What a receive burst gives with each frame: its queue and, decoded
/// on demand, what its CQE says ([`RxInfo::meta`]).
pub struct RxInfo<'a, P: Platform> {
    queue: u16,
    vlan_strip: bool,
    csum: bool,
    src: Src<'a, P>,
}

/// Where an [`RxInfo`]'s completion is.
enum Src<'a, P: Platform> {
    /// In the ring at consumer index `ci` (not yet published).
    Ring(&'a Cq<P>, u32),
    /// A compressed session's completion (not in the ring): its title,
    /// whether mini-CQEs carry the hash, its mini-CQE word, and whether it
    /// is the session's first. (Its `wqe_counter` is not kept: no part of
    /// [`RxMeta`] comes from it.)
    Mini(Option<&'a Cqe>, bool, u64, bool),
    /// Decoded already (the per-frame path's).
    Meta(RxMeta),
}

impl<P: Platform> core::fmt::Debug for RxInfo<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RxInfo")
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
        let c = match self.src {
            Src::Meta(m) => return m,
            Src::Ring(cq, ci) => cq.entry(ci),
            Src::Mini(title, hash, mini, first) => title
                .map(|t| t.decompressed(mini, 0, first, hash))
                .unwrap_or_default(),
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

impl Ctx {
    #[inline(always)]
    fn info<P: Platform>(self, src: Src<'_, P>) -> RxInfo<'_, P> {
        RxInfo {
            queue: self.queue,
            vlan_strip: self.vlan_strip,
            csum: self.csum,
            src,
        }
    }
}

/// What a run of frames did: frames, buffer releases, bytes.
struct Done {
    n: u32,
    releases: u32,
    bytes: u64,
}

/// [`Done`] and the cursor after the run (a cyclic RQ's).
struct Took {
    cur: RxCursor,
    done: Done,
}

impl<C: Control> QueueSet<C> {
    /// Hand every received frame (at most `max`) to `f` in place, with
    /// its [`RxInfo`]; the buffers are re-posted after (doorbell record
    /// every quarter ring and at the end of the burst). Returns the
    /// frames handed out. The receive queues are taken round robin.
    /// Always inline: a caller's constants (one queue, `max`) and its
    /// callback shape the loop (`#[inline]` alone stopped inlining it
    /// into a one-frame caller once the striding run grew).
    #[inline(always)]
    pub fn receive_burst<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(&[u8], &RxInfo<'_, Plat<C>>),
    {
        let queues = self.parts.rx.len();
        let mut got = 0;
        if queues == 1 {
            got = self.receive_burst_from(0, max, &mut f);
            if let Some(x) = self.parts.rx.first_mut()
                && x.uncommitted > 0
            {
                super::commit_rx(x);
            }
            return got;
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
        for _ in 0..3 * limit + 1 {
            if got == max {
                return got;
            }
            let Some(x) = self.parts.rx.get_mut(q) else {
                return got;
            };
            // In error, its recovery pending (as in `next_frame`): a
            // completion the device wrote before it saw the error is not
            // handed out either.
            if x.halted {
                return got;
            }
            let Some(rq) = x.rq.as_mut() else {
                return got;
            };
            let compressing = x.cq.compressing();
            // Sessions come one after another: on a compressing CQ the
            // entry at the consumer index alone first (one load), so a
            // title or an empty ring costs no chunk of the run scan, and
            // a session it begins is read at once.
            if compressing && !x.cq.in_session() && x.cq.title_first() == Head::Empty {
                return got;
            }
            if x.cq.in_session() {
                let (n, releases, bad) = session_burst(ctx, &mut x.cq, rq, max - got, f);
                got += n;
                self.release(q, releases);
                if let Some(wqe_counter) = bad {
                    self.rx_ring_fault(q, FaultCause::BadCompletion { wqe_counter });
                    return got;
                }
                // Read to its end: the entry after it alone, here (as a
                // round starts), so the empty ring after a session ends
                // the burst without another round.
                if got < max
                    && let Some(x) = self.parts.rx.get_mut(q)
                    && !x.cq.in_session()
                    && x.cq.title_first() == Head::Empty
                {
                    return got;
                }
                continue;
            }
            let cq = &x.cq;
            let view = cq.view();
            let start = cq.ci();
            let want = (max - got).min(u32::MAX as usize) as u32;
            let resp = cqe::opcode::RESP_SEND;
            let (k, end, counted) = if rq.is_striding() {
                // Every tail's `wqe_counter` in the scan too (frames of
                // the last one's strides); where that guess ends (the
                // WQE used up, another frame size, or a lie) the rest of
                // the run without it, each counter checked by the loop.
                let (counter, step) = rq.run_counter();
                let e = RunExpect::counted(resp, rq.rqn.0, counter, step);
                match view.common_run(start, want, e) {
                    (kc, RunEnd::Step) if kc != 0 => {
                        let e = RunExpect::common(resp, rq.rqn.0);
                        let (k, end) = view.common_run(start.wrapping_add(kc), want - kc, e);
                        (kc + k, end, kc)
                    }
                    (kc, end) => (kc, end, kc),
                }
            } else {
                let (k, end) = view.common_run(start, want, RunExpect::common(resp, rq.rqn.0));
                (k, end, 0)
            };
            let mut refused = false;
            if k != 0 {
                let t = if rq.is_striding() {
                    stride_run(&view, rq, counted, k, cq, start, ctx, f)
                } else {
                    let cur = rq.cursor();
                    let t = view.with_entries(start, k, |cqes| {
                        rq.with_buffers(|all| take_run(cqes, all, cur, cq, start, ctx, f))
                    });
                    rq.set_cursor(t.cur);
                    t.done
                };
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
                    // The run's first entry with another `wqe_counter`
                    // than the RQ's next stride: the per-frame path
                    // refuses it.
                    RunEnd::Other(_) | RunEnd::Step => {}
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
                let info = ctx.info::<Plat<C>>(Src::Meta(meta));
                rq.with_frame(frame, |b| f(b, &info));
                got += 1;
            }
            self.release(q, frame.releases);
        }
        got
    }
}

/// A completion's byte count.
#[inline(always)]
fn byte_cnt(c: &[u8; cqe::LEN]) -> u32 {
    u32::from_be_bytes([
        c[cqe::off::BYTE_CNT],
        c[cqe::off::BYTE_CNT + 1],
        c[cqe::off::BYTE_CNT + 2],
        c[cqe::off::BYTE_CNT + 3],
    ])
}

/// A common completion's byte count and its key ([`run_key`]).
#[inline(always)]
fn bc_and_key(c: &[u8; cqe::LEN]) -> (u32, u32) {
    (byte_cnt(c), run_key(c))
}

/// A striding RQ's part of a run of `k` common completions from consumer
/// index `start`, of which the first `counted` had their `wqe_counter`s
/// checked by the scan against frames of the RQ's step
/// ([`Rq::run_counter`](crate::rq::Rq::run_counter)): those through
/// [`step_run`], the rest through [`window_run`] for each WQE's window the
/// run reaches (the loop's state is the window alone, the cursor settled
/// between).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn stride_run<P: Platform, F>(
    view: &crate::cq::CqView<'_, P>,
    rq: &mut crate::rq::Rq<P>,
    counted: u32,
    k: u32,
    cq: &Cq<P>,
    start: u32,
    ctx: Ctx,
    f: &mut F,
) -> Done
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let (mut n, mut bytes, mut releases) = (0u32, 0u64, 0u32);
    if counted != 0 {
        let step = rq.run_counter().1 as u32;
        let r = view.with_entries(start, counted, |cqes| {
            rq.with_buffers(|all| {
                let strides = rq.step_strides(all, counted, step);
                step_run(cqes, strides, step, cq, start, ctx, f)
            })
        });
        n = r.n;
        bytes = r.bytes;
        if rq.took_strides(n, step) {
            releases += 1;
        }
        if n == k {
            return Done { n, releases, bytes };
        }
        rq.learn_step(r.next);
    }
    // Bounded: each pass takes a frame or ends a WQE, or ends the run.
    for _ in 0..=k - n {
        let span = rq.span();
        let from = start.wrapping_add(n);
        let r = view.with_entries(from, k - n, |cqes| {
            rq.with_buffers(|all| window_run(cqes, all, span, cq, from, ctx, f))
        });
        n += r.n;
        bytes += r.bytes;
        if r.n != 0 {
            rq.learn_step(r.last);
        }
        // A used-up WQE: the rest of the run against the next one.
        if !rq.settle_span(r.parts) {
            break;
        }
        releases += 1;
        if n == k {
            break;
        }
    }
    Done { n, releases, bytes }
}

/// What [`step_run`] did: frames, bytes, and the strides of the
/// completion it stopped at (the next guess).
struct StepRun {
    n: u32,
    bytes: u64,
    next: u32,
}

/// The frames of the run of common completions `cqes` (software-owned,
/// from consumer index `start`) whose `wqe_counter`s the scan found to be
/// those of frames of the RQ's step from its next stride on, in
/// `strides` (the strides of that many frames the WQE has left,
/// [`Rq::step_strides`](crate::rq::Rq::step_strides), `size` bytes each):
/// each frame must then take exactly those strides (else the next counter
/// lied, or this byte count), so its byte count must be `step << 16 |
/// len` with `1 <= len <= size` — one compare for the strides, a zero
/// length, a length past the strides and the filler bit; the window is
/// checked once for all of them. The `wqe_id` of each must be the WQE's
/// (`id`, big-endian). Stops at the first that is not so (left for
/// [`window_run`]).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn step_run<P: Platform, F>(
    cqes: &[[u8; cqe::LEN]],
    (strides, size, id): (&[u8], usize, [u8; 2]),
    step: u32,
    cq: &Cq<P>,
    start: u32,
    ctx: Ctx,
    f: &mut F,
) -> StepRun
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let id = u16::from_ne_bytes(id);
    // The byte count less `step << 16 | 1`: `len - 1` when the strides
    // are `step` and `len` is 1..=size; anything else is `size` or more
    // while `size` is below 2^16 (where the strides field starts): the
    // frame's slice of its strides is the one check. (Larger frames than
    // that are left to `window_run`.)
    let first = ((step as usize) << 16) | 1;
    let cqes = if size < 0x1_0000 { cqes } else { &[] };
    // The frames' bytes less one each (`n` added after the loop).
    let (mut n, mut bytes, mut next) = (0usize, 0u64, step);
    for (c, b) in cqes.iter().zip(strides.chunks_exact(size.max(1))) {
        if u16::from_ne_bytes([c[cqe::off::WQE_ID + 2], c[cqe::off::WQE_ID + 3]]) != id {
            break;
        }
        let bc = byte_cnt(c);
        let len_1 = (bc as usize).wrapping_sub(first);
        let Some(frame) = b.get(..=len_1) else {
            next = bc >> 16;
            break;
        };
        let info = ctx.info(Src::Ring(cq, start.wrapping_add(n as u32)));
        f(frame, &info);
        bytes += len_1 as u64;
        n += 1;
    }
    StepRun {
        n: n as u32,
        bytes: bytes + n as u64,
        next,
    }
}

/// What [`window_run`] did: frames, bytes, what it left of the window
/// ([`crate::rq::StrideWindow::parts`]).
struct WindowRun {
    n: u32,
    bytes: u64,
    parts: (usize, usize, u32),
    /// The strides of the last frame taken.
    last: u32,
}

/// The frames of the run of common completions `cqes` (software-owned,
/// from consumer index `start`) that lie in the striding RQ's window
/// `span` of the receive buffers `all`, each handed to `f`; stops at the
/// first the window refuses (its WQE used up, or not the common case).
/// Out of line: the loop gets the registers to itself.
#[inline(never)]
fn window_run<P: Platform, F>(
    cqes: &[[u8; cqe::LEN]],
    all: &[u8],
    span: crate::rq::Span,
    cq: &Cq<P>,
    start: u32,
    ctx: Ctx,
    f: &mut F,
) -> WindowRun
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let mut w = crate::rq::StrideWindow::at(all, span);
    let (mut bytes, mut last) = (0u64, 0u32);
    // One induction variable: the entries left (`n` from them).
    let mut rest = cqes;
    while let [c, tail @ ..] = rest {
        let id = [c[cqe::off::WQE_ID + 2], c[cqe::off::WQE_ID + 3]];
        let counter = [c[cqe::off::TAIL], c[cqe::off::TAIL + 1]];
        if !w.expects_be(id, counter) {
            break;
        }
        let Some((frame, strides)) = w.take(byte_cnt(c)) else {
            break;
        };
        last = strides;
        let i = (cqes.len() - rest.len()) as u32;
        let info = ctx.info(Src::Ring(cq, start.wrapping_add(i)));
        f(frame, &info);
        rest = tail;
        bytes += frame.len() as u64;
    }
    WindowRun {
        n: (cqes.len() - rest.len()) as u32,
        bytes,
        parts: w.parts(),
        last,
    }
}

/// The frames of a run of common completions (`cqes`, software-owned,
/// from consumer index `start`) on a cyclic RQ, each handed to `f` from
/// `all` (the receive buffers); stops at the first the RQ does not take
/// as the common case (left in the ring).
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
    for c in cqes {
        let (bc, key) = bc_and_key(c);
        let Some((t, _)) = cur.take_key(key, bc) else {
            break;
        };
        // `take` checked the frame against its buffer; the slice's own
        // check stays (a driver bug is no frame).
        let Some(frame) = all.get(t.offset..t.offset + t.len) else {
            break;
        };
        let info = ctx.info(Src::Ring(cq, start.wrapping_add(n)));
        f(frame, &info);
        n += 1;
        bytes += t.len as u64;
    }
    Took {
        done: Done {
            releases: cur.outstanding().wrapping_sub(outstanding) as u32,
            n,
            bytes,
        },
        cur,
    }
}

/// Up to `max` completions of the compressed session the CQ is reading
/// ([`crate::cq::mini_cqe`]), read a mini-CQE array at a time through a
/// plain view of the session's slots ([`Cq::read_session`]), each handed
/// to `f` like a run's: (frames, buffer releases, the `wqe_counter` of a
/// completion the queue refused). The title says where the session
/// starts (checked against the RQ once); the completions after it follow
/// by construction and are checked by their byte counts.
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
    let counter = cq.session_counter();
    let hash = cq.session_title().1;
    let key = (cq.session_wqe_id() as u32) << 16 | counter as u32;
    if rq.is_striding() {
        return session_windows(ctx, cq, rq, key, hash, max, f);
    }
    let cur = rq.cursor();
    if cq.session_first() && !cur.expects(0, counter) {
        return (0, 0, Some(counter));
    }
    let outstanding = cur.outstanding();
    // The cursor and the counts move into the buffers' closure and come
    // back out, so the loop keeps them in registers.
    let c = &mut *cq;
    let (cur, r) = rq.with_buffers(move |all| {
        let mut t = Cyclic { cur, all };
        let r = session_frames(c, &mut t, hash, max, ctx, f);
        (t.cur, r)
    });
    // One `wqe_counter` step per completion.
    let counter = counter.wrapping_add(r.n as u16);
    cq.set_session_counter(counter);
    rq.set_cursor(cur);
    rq.count(r.n as u64, r.bytes);
    let releases = cur.outstanding().wrapping_sub(outstanding);
    (r.n, releases, r.bad.then_some(counter))
}

/// [`session_burst`] on a striding RQ: the session's frames taken off
/// the current WQE's window ([`crate::rq::Rq::span`]; no cursor copied in
/// and out), the queue settled from what the loop left of it, the session
/// going on against the next WQE's window when one is used up (met on the
/// refusal path, not tested per frame). `key`: the title's
/// `wqe_id << 16 | wqe_counter`, continued.
#[inline(always)]
fn session_windows<P: Platform, F>(
    ctx: Ctx,
    cq: &mut Cq<P>,
    rq: &mut crate::rq::Rq<P>,
    key: u32,
    hash: bool,
    max: usize,
    f: &mut F,
) -> (usize, u16, Option<u16>)
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let mut counter = key as u16;
    let (mut got, mut bytes, mut releases, mut bad) = (0usize, 0u64, 0u16, false);
    // Bounded: each pass but the last uses up a WQE with at least one
    // completion of the session, which is at most a ring long.
    for _ in 0..=cq.entries() {
        let span = rq.span();
        // What the loop needs moves into the closure (no references to
        // the caller's locals to follow in it).
        let (c, g, want) = (&mut *cq, &mut *f, max - got);
        let (r, parts, steps) = rq.with_buffers(move |all| {
            let mut w = crate::rq::StrideWindow::at(all, span);
            let from = w.key();
            if c.session_first() && from != key {
                let bad = SessionRun {
                    n: 0,
                    bytes: 0,
                    bad: true,
                };
                return (bad, w.parts(), 0);
            }
            let r = session_frames(c, &mut w, hash, want, ctx, g);
            // The strides taken: `wqe_counter`'s steps.
            let steps = w.key().wrapping_sub(from) as u16;
            (r, w.parts(), steps)
        });
        got += r.n;
        bytes += r.bytes;
        counter = counter.wrapping_add(steps);
        bad = r.bad;
        let used_up = rq.settle_span(parts);
        releases += u16::from(used_up);
        // A completion refused where the WQE's strides were used up is
        // tried again against the next WQE's window (the session goes on
        // there), as a run's; refused by a fresh window, it is a lie.
        if !used_up || got == max || !cq.in_session() {
            break;
        }
    }
    cq.set_session_counter(counter);
    rq.count(got as u64, bytes);
    (got, releases, bad.then_some(counter))
}

/// How a session's completions take their frames off the RQ, by their
/// byte counts only (the title checked before).
trait Take<'a> {
    /// The frame of the completion with byte count `bc`; `None` takes
    /// nothing.
    fn take(&mut self, bc: u32) -> Option<&'a [u8]>;
}

/// A striding RQ: the WQE's strides as one window.
impl<'a> Take<'a> for crate::rq::StrideWindow<'a> {
    #[inline(always)]
    fn take(&mut self, bc: u32) -> Option<&'a [u8]> {
        Some(crate::rq::StrideWindow::take(self, bc)?.0)
    }
}

/// A cyclic RQ: one buffer per completion.
struct Cyclic<'a> {
    cur: RxCursor,
    all: &'a [u8],
}

impl<'a> Take<'a> for Cyclic<'a> {
    #[inline(always)]
    fn take(&mut self, bc: u32) -> Option<&'a [u8]> {
        let (t, _) = self.cur.take_next(bc)?;
        self.all.get(t.offset..t.offset + t.len)
    }
}

/// What [`session_frames`] did: frames, bytes, whether one was refused.
struct SessionRun {
    n: usize,
    bytes: u64,
    bad: bool,
}

/// The session's loop: its arrays as [`Cq::read_session`] gives them,
/// each completion's frame taken by its byte count (the low half of its
/// mini-CQE word), until `max`, the session's end or a refusal.
#[inline(always)]
fn session_frames<'a, P: Platform, T: Take<'a>, F>(
    c: &mut Cq<P>,
    t: &mut T,
    hash: bool,
    max: usize,
    ctx: Ctx,
    f: &mut F,
) -> SessionRun
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    let mut sink = Frames {
        t,
        f,
        hash,
        ctx,
        bytes: 0,
        _p: core::marker::PhantomData,
    };
    let (mut got, mut bad) = (0usize, false);
    while got < max && c.in_session() {
        let (k, ended) = c.read_session(max - got, &mut sink);
        got += k as usize;
        if ended || k == 0 {
            bad = ended;
            break;
        }
    }
    SessionRun {
        n: got,
        bytes: sink.bytes,
        bad,
    }
}

/// [`session_frames`]' taker of mini-CQE arrays: the counts in registers
/// across arrays.
struct Frames<'t, 'a, T, F, P> {
    t: &'t mut T,
    f: &'t mut F,
    hash: bool,
    ctx: Ctx,
    bytes: u64,
    _p: core::marker::PhantomData<(&'a (), P)>,
}

impl<'a, T: Take<'a>, F, P: Platform> MiniSink for Frames<'_, 'a, T, F, P>
where
    F: FnMut(&[u8], &RxInfo<'_, P>),
{
    #[inline(always)]
    fn array(
        &mut self,
        arr: &[u8; cqe::LEN],
        from: usize,
        n: usize,
        first: bool,
        title: Option<&Cqe>,
    ) -> (usize, bool) {
        let Some(words) = arr.as_chunks::<8>().0.get(from..from + n) else {
            return (0, false);
        };
        // One induction variable: the words left (how many were taken
        // from them on the way out).
        let mut rest = words;
        while let [w, tail @ ..] = rest {
            let w = u64::from_be_bytes(*w);
            let Some(frame) = self.t.take(w as u32) else {
                return (n - rest.len(), false);
            };
            let src = Src::Mini(title, self.hash, w, first && rest.len() == n);
            (self.f)(frame, &self.ctx.info(src));
            self.bytes += frame.len() as u64;
            rest = tail;
        }
        (n, true)
    }
}
