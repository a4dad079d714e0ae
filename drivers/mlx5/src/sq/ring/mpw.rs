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

/// Frames of `len` bytes an inline session of `ds` segments holds.
#[inline(always)]
fn inline_fit(ds: usize, len: usize) -> usize {
    (ds.saturating_sub(2) * DS).saturating_sub(4) / len
}

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
        let per_bb = WQEBB / DS;
        let bufs_len = (c.bufs as usize * buf_size).min(bufs.len());
        let base = bufs.device_addr().get();
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
                // The length of the frame written into buffer `bufs_pc`
                // that ended the last session (0: none).
                let mut pending = 0usize;
                while sent < n {
                    let start = c.pc;
                    let slot = (start & mask) as usize;
                    let free = entries - c.pc.wrapping_sub(c.cc) as usize;
                    let to_end = entries - slot;
                    let first = (bufs_pc & bufs_mask) as usize;
                    let free_bufs = c.bufs.wrapping_sub(bufs_pc.wrapping_sub(c.bufs_cc)) as usize;
                    if free == 0 || free_bufs == 0 {
                        break;
                    }
                    // The session's room, and what it may fill while the
                    // frame after it still finds a block of its own.
                    let room = (free.min(to_end) * per_bb).min(mpw::SESSION_DS);
                    let spare = ((free - 1) * per_bb).min(mpw::SESSION_DS);
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
                    let inline = len <= inline_max && mpw::inline_ds(len) <= room;
                    let cap = if inline {
                        inline_fit(room, len).min(1 + inline_fit(spare, len))
                    } else {
                        (room - 2)
                            .min(1 + spare.saturating_sub(2))
                            .min(free_bufs)
                            .min(c.bufs as usize - first)
                    }
                    .min(mpw::MAX_FRAMES)
                    .min(n - sent);
                    let Some(session) = segs.get_mut(slot * per_bb..slot * per_bb + room) else {
                        bad = true;
                        break;
                    };
                    let (hdr, body) = session.split_at_mut(2);
                    // Frames in the session, and its segments.
                    let (m, ds) = if inline {
                        let (bc, frames) = body.as_flattened_mut().split_at_mut(4);
                        let Some(all_frames) = frames.get_mut(..cap * len) else {
                            bad = true;
                            break;
                        };
                        let mut chunks = all_frames.chunks_exact_mut(len);
                        let mut m = 0;
                        if let Some(d) = chunks.next() {
                            d.copy_from_slice(&b[..len]);
                            m = 1;
                        }
                        for d in chunks {
                            let l = write(sent + m, b);
                            if l != len {
                                end(l, max, &mut pending, &mut bad);
                                break;
                            }
                            d.copy_from_slice(&b[..len]);
                            m += 1;
                        }
                        let total = m * len;
                        bc.copy_from_slice(&(total as u32 | empw::INLINE).to_be_bytes());
                        // The last segment's tail zeroed.
                        let pad = (4 + total).next_multiple_of(DS) - 4;
                        if let Some(t) = frames.get_mut(total..pad) {
                            t.fill(0);
                        }
                        (m, mpw::inline_ds(total))
                    } else {
                        let Some(run) = run.get_mut(..cap * buf_size) else {
                            bad = true;
                            break;
                        };
                        let word = wqe::data_word(len as u32, lkey);
                        let mut addr = base + (first * buf_size) as u64;
                        let mut frames = body.iter_mut().zip(run.chunks_exact_mut(buf_size));
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
                        (m, mpw::pointer_ds(m))
                    };
                    let head = mpw::ctrl_head_of(start, sqn8, ds);
                    let nbb = ds.div_ceil(per_bb) as u16;
                    let signal = c.close_session(signalled, start, head, nbb, bufs_pc);
                    if let [ctl, e] = hdr {
                        put(ctl, head, wqe::ctrl_flags_word(signal));
                        put(e, cs_word | len as u64, 0);
                    }
                    sent += m;
                    bytes += (m * len) as u64;
                    if bad {
                        break;
                    }
                }
                c.bufs_pc = bufs_pc;
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
