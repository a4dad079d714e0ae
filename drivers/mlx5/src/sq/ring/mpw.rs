//! Transmit bursts as legacy multi-packet send sessions (PRM "Multi-Packet
//! Send WQE"; the layout of [`crate::wqe::mpw`]), on parts with
//! `multi_pkt_send_wqe` and not the enhanced form (ConnectX-4 Lx): one
//! control and one Ethernet segment per session, whose `mss` is the
//! length every frame of the session has, then a data segment per frame,
//! or, for frames no longer than the queue's inline limit, one inline
//! segment with the frames back to back (their buffer free again at
//! once: every frame of an inline session is written into the same one).
//! A frame of another length ends the session and opens the next; so do
//! [`mpw::MAX_FRAMES`] frames, [`mpw::SESSION_DS`] segments, the ring's
//! free room or its end (a session is one plain run of the ring, never
//! wrapping), the end of the run of free buffers and the end of the
//! burst. A session's control and Ethernet segments are written when it
//! closes, once its segment count is known.
//!
//! What a session can hold is worked out once when it opens (its `cap`),
//! so the frames' loop has no test but the frame's length: the segments
//! and the buffers are two slices zipped, the data segment is the same
//! word for every frame of a session. The cap also keeps this promise: a
//! frame is written into its buffer only when it can be posted, so the
//! frame that ends a session with another length (left in the next
//! buffer, `pending`) always has a free buffer and a free block after the
//! session for a one-block session of its own.

use cxos_drivers::{DmaRegion, Platform, Region};

use super::{Burst, Sq};
use crate::wqe::{self, CsFlags, DS, WQEBB, empw, mpw};

const PER_BB: usize = WQEBB / DS;

impl<P: Platform> Sq<P> {
    /// [`Sq::post_burst`] as legacy MPW sessions: up to `n` frames, each
    /// written by `write(i, buffer)` into the next MTU buffer, every one
    /// with checksum flags `cs` (no VLAN insert: such bursts go one WQE
    /// per frame); a length of 0 or above `max` ends the burst without
    /// that frame.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn post_mpw<F>(
        &mut self,
        bufs: &Region<P>,
        buf_size: usize,
        max: usize,
        n: usize,
        cs: CsFlags,
        inline_max: usize,
        mut write: F,
    ) -> Burst
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        let Sq {
            c, ring, signalled, ..
        } = self;
        let mask = c.mask;
        let entries = mask as usize + 1;
        let bufs_len = (c.bufs as usize * buf_size).min(bufs.len());
        let base = bufs.device_addr().get();
        let nbufs = c.bufs as usize;
        let bufs_mask = c.bufs.wrapping_sub(1);
        let inline_max = inline_max.min(mpw::MAX_INLINE);
        let cs_word = wqe::eth_flags_word(cs, 0);
        let (lkey, sqn8) = (c.lkey, c.sqn8);
        let mut sent = 0;
        let mut bytes = 0u64;
        // A length out of range (or a view the pool cannot give) ends the
        // burst; running out of ring or buffers makes it `full`.
        let mut bad = false;
        ring.mem.with_bytes_mut(0, ring.mem.len(), |ring| {
            bufs.with_bytes_mut(0, bufs_len, |all| {
                let (segs, _) = ring.as_chunks_mut::<DS>();
                let mut bufs_pc = c.bufs_pc;
                let mut free_bufs = nbufs - bufs_pc.wrapping_sub(c.bufs_cc) as usize;
                // The length of the frame written into buffer `bufs_pc`
                // that ended the last session (0: none).
                let mut pending = 0usize;
                while sent < n && free_bufs != 0 {
                    let free = c.free_blocks();
                    if free == 0 {
                        break;
                    }
                    let slot = (c.pc & mask) as usize;
                    let to_end = entries - slot;
                    let first = (bufs_pc & bufs_mask) as usize;
                    let Some(run) = all.get_mut(first * buf_size..) else {
                        bad = true;
                        break;
                    };
                    let Some(b) = run.get_mut(..buf_size) else {
                        bad = true;
                        break;
                    };
                    let len = if pending != 0 {
                        pending
                    } else {
                        write(sent, b)
                    };
                    pending = 0;
                    if len.wrapping_sub(1) >= max {
                        bad = true;
                        break;
                    }
                    let want = (n - sent).min(mpw::MAX_FRAMES);
                    let inline = if len <= inline_max {
                        inline_cap(free, to_end, len, want)
                    } else {
                        0
                    };
                    let (m, ds) = if inline != 0 {
                        let Some(session) = segs.get_mut(slot * PER_BB..) else {
                            bad = true;
                            break;
                        };
                        let (bc, frames) = session.as_flattened_mut().split_at_mut(2 * DS + 4);
                        let Some(all_frames) = frames.get_mut(..inline * len) else {
                            bad = true;
                            break;
                        };
                        let mut chunks = all_frames.chunks_exact_mut(len);
                        let mut m = 0;
                        if let (Some(d), Some(f)) = (chunks.next(), b.get(..len)) {
                            d.copy_from_slice(f);
                            m = 1;
                        }
                        for d in chunks {
                            let l = write(sent + m, b);
                            if l != len {
                                end(l, max, &mut pending, &mut bad);
                                break;
                            }
                            let Some(f) = b.get(..len) else {
                                break;
                            };
                            d.copy_from_slice(f);
                            m += 1;
                        }
                        let total = m * len;
                        if let Some(w) = bc.get_mut(2 * DS..) {
                            w.copy_from_slice(&(total as u32 | empw::INLINE).to_be_bytes());
                        }
                        // The last segment's tail zeroed.
                        let pad = (4 + total).next_multiple_of(DS) - 4;
                        if let Some(t) = frames.get_mut(total..pad) {
                            t.fill(0);
                        }
                        (m, mpw::inline_ds(total))
                    } else {
                        let cap = pointer_cap(free, to_end)
                            .min(want)
                            .min(free_bufs)
                            .min(nbufs - first);
                        let Some(session) =
                            segs.get_mut(slot * PER_BB + 2..slot * PER_BB + 2 + cap)
                        else {
                            bad = true;
                            break;
                        };
                        let Some(run) = run.get_mut(..cap * buf_size) else {
                            bad = true;
                            break;
                        };
                        let word = wqe::data_word(len as u32, lkey);
                        let mut addr = base + (first * buf_size) as u64;
                        let mut frames = session.iter_mut().zip(run.chunks_exact_mut(buf_size));
                        let mut m = 0;
                        if let Some((s, _)) = frames.next() {
                            put(s, word, addr);
                            m = 1;
                        }
                        for (s, b) in frames {
                            let l = write(sent + m, b);
                            if l != len {
                                end(l, max, &mut pending, &mut bad);
                                break;
                            }
                            addr += buf_size as u64;
                            put(s, word, addr);
                            m += 1;
                        }
                        bufs_pc = bufs_pc.wrapping_add(m as u16);
                        free_bufs -= m;
                        (m, mpw::pointer_ds(m))
                    };
                    let start = c.pc;
                    let head = mpw::ctrl_head_of(start, sqn8, ds);
                    let signal =
                        c.close_session(signalled, head, ds.div_ceil(PER_BB) as u16, bufs_pc);
                    if let Some([ctl, e]) = segs.get_mut(slot * PER_BB..slot * PER_BB + 2) {
                        put(ctl, head, wqe::ctrl_flags_word(signal));
                        put(e, cs_word | len as u64, 0);
                    }
                    sent += m;
                    bytes += (m * len) as u64;
                    if bad {
                        break;
                    }
                }
            })
        });
        self.stats.packets += sent as u64;
        self.stats.bytes += bytes;
        if !cs.is_empty() {
            self.stats.csum += sent as u64;
        }
        let full = sent < n && !bad;
        if full {
            self.stats.full += 1;
        }
        Burst { sent, full }
    }
}

/// Frames a pointer session may hold with `free` free blocks, `to_end`
/// of them before the ring's end: its segments fit both, and up to its
/// last frame but one, a block is left after it (for a frame of another
/// length, written before it is known not to join).
#[inline(always)]
fn pointer_cap(free: usize, to_end: usize) -> usize {
    if free >= 3 && to_end >= 2 {
        mpw::MAX_FRAMES
    } else {
        pointer_cap_tight(free, to_end)
    }
}

#[cold]
fn pointer_cap_tight(free: usize, to_end: usize) -> usize {
    let room = (free.min(to_end) * PER_BB).min(mpw::SESSION_DS);
    let spare = ((free - 1) * PER_BB).min(mpw::SESSION_DS);
    (room - 2).min(1 + spare.saturating_sub(2))
}

/// Frames of `len` bytes an inline session may hold (at most `want`), as
/// [`pointer_cap`]; 0 if not even one fits before the ring's end.
#[inline(always)]
fn inline_cap(free: usize, to_end: usize, len: usize, want: usize) -> usize {
    let ds = mpw::inline_ds(want * len);
    let need = ds.div_ceil(PER_BB);
    if ds <= mpw::SESSION_DS && free > need && to_end >= need {
        want
    } else {
        inline_cap_tight(free, to_end, len, want)
    }
}

#[cold]
fn inline_cap_tight(free: usize, to_end: usize, len: usize, want: usize) -> usize {
    let fit = |ds: usize| (ds.saturating_sub(2) * DS).saturating_sub(4) / len;
    let room = (free.min(to_end) * PER_BB).min(mpw::SESSION_DS);
    let spare = ((free - 1) * PER_BB).min(mpw::SESSION_DS);
    match fit(room) {
        0 => 0,
        f => f.min(1 + fit(spare)).min(want),
    }
}

/// A frame of length `len` ended the session: it opens the next one, or,
/// out of range, ends the burst (after the session).
#[inline(always)]
fn end(len: usize, max: usize, pending: &mut usize, bad: &mut bool) {
    if len.wrapping_sub(1) >= max {
        *bad = true;
    } else {
        *pending = len;
    }
}

/// Store two big-endian words in one segment.
#[inline(always)]
fn put(s: &mut [u8; DS], a: u64, b: u64) {
    let (w, _) = s.as_chunks_mut::<8>();
    w[0] = a.to_be_bytes();
    w[1] = b.to_be_bytes();
}
