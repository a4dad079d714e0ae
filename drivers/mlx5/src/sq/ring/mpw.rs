//! Transmit bursts as legacy multi-packet send sessions (PRM "Multi-Packet
//! Send WQE"; the layout of [`crate::wqe::mpw`]), on parts with
//! `multi_pkt_send_wqe` and not the enhanced form (ConnectX-4 Lx): one
//! control and one Ethernet segment per session, whose `mss` is the
//! length every frame of the session has, then a data segment per frame,
//! or, for frames no longer than the queue's inline limit, one inline
//! segment with the frames back to back (their buffers free again at
//! once). A frame of another length ends the session and opens the next;
//! so do [`mpw::MAX_FRAMES`] frames, [`mpw::SESSION_DS`] segments, the
//! ring's free room or its end (a session is one plain run of the ring,
//! never wrapping) and the end of the burst. A session's control segment
//! is written when it closes, once its segment count is known.
//!
//! A frame is written into its buffer only when it can be posted: the
//! buffer is free and the ring has a free block besides the open
//! session's, so a frame that does not join the open session can always
//! open a one-block session of its own (pointed to if its inline session
//! would not fit before the ring's end).

use cxos_drivers::{DmaRegion, Platform, Region};

use super::{Burst, Signalled, Sq};
use crate::wqe::{self, CsFlags, DS, WQEBB, empw, mpw};

/// The session being built: its first basic block (`pc` when it
/// opened) and its byte offset in the ring, the length of its frames,
/// how many it has and can take (its room, fixed when it opens), its
/// segments so far, and whether the frames are inline (then `ds` covers
/// their bytes).
#[derive(Clone, Copy)]
struct Open {
    start: u16,
    at: usize,
    len: usize,
    frames: usize,
    cap: usize,
    ds: usize,
    inline: bool,
}

impl Open {
    const NONE: Open = Open {
        start: 0,
        at: 0,
        len: 0,
        frames: 0,
        cap: 0,
        ds: 0,
        inline: false,
    };

    #[inline(always)]
    fn nbb(&self) -> usize {
        self.ds.div_ceil(WQEBB / DS)
    }
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
        let bufs_len = (c.bufs as usize * buf_size).min(bufs.len());
        let base = bufs.device_addr().get();
        let bufs_mask = c.bufs.wrapping_sub(1);
        let inline_max = inline_max.min(mpw::MAX_INLINE);
        let cs_word = wqe::eth_flags_word(cs, 0);
        let lkey = c.lkey;
        let mut sent = 0;
        let mut bytes = 0u64;
        // A length out of range (or a view the pool cannot give) ends the
        // burst; running out of ring or buffers makes it `full`.
        let mut bad = false;
        ring.mem.with_bytes_mut(0, ring.mem.len(), |ring| {
            bufs.with_bytes_mut(0, bufs_len, |all| {
                // No session yet: `frames` 0 (no frame has length 0).
                let mut o = Open::NONE;
                while sent < n {
                    let used = c.pc.wrapping_sub(c.cc) as usize + o.nbb();
                    if c.bufs_pc.wrapping_sub(c.bufs_cc) >= c.bufs || used >= entries {
                        break;
                    }
                    let slot = (c.bufs_pc & bufs_mask) as usize;
                    let Some(b) = all.get_mut(slot * buf_size..(slot + 1) * buf_size) else {
                        bad = true;
                        break;
                    };
                    let len = write(sent, b);
                    if len.wrapping_sub(1) >= max {
                        bad = true;
                        break;
                    }
                    if len != o.len || o.frames == o.cap {
                        if o.frames > 0 {
                            close(c, signalled, ring, o, cs_word);
                        }
                        // The session's room, fixed when it opens: the
                        // free blocks up to the ring's end (at least one:
                        // `used < entries`).
                        let start = c.pc;
                        let free = entries - c.pc.wrapping_sub(c.cc) as usize;
                        let to_end = entries - (start & mask) as usize;
                        let room = (free.min(to_end) * (WQEBB / DS)).min(mpw::SESSION_DS);
                        let inline = len <= inline_max && mpw::inline_ds(len) <= room;
                        let cap = if inline {
                            ((room - 2) * DS - 4) / len
                        } else {
                            room - 2
                        };
                        o = Open {
                            start,
                            at: (start & mask) as usize * WQEBB,
                            len,
                            frames: 0,
                            cap: cap.min(mpw::MAX_FRAMES),
                            ds: 2,
                            inline,
                        };
                    }
                    if o.inline {
                        // After control, Ethernet and byte_count.
                        let from = o.at + 2 * DS + 4 + o.frames * len;
                        let (Some(dst), Some(src)) = (ring.get_mut(from..from + len), b.get(..len))
                        else {
                            bad = true;
                            break;
                        };
                        dst.copy_from_slice(src);
                        o.ds = mpw::inline_ds((o.frames + 1) * len);
                    } else {
                        let addr = base + (slot * buf_size) as u64;
                        if !put(
                            ring,
                            o.at + o.ds * DS,
                            wqe::data_word(len as u32, lkey),
                            addr,
                        ) {
                            bad = true;
                            break;
                        }
                        o.ds += 1;
                        c.bufs_pc = c.bufs_pc.wrapping_add(1);
                    }
                    o.frames += 1;
                    sent += 1;
                    bytes += len as u64;
                }
                if o.frames > 0 {
                    close(c, signalled, ring, o, cs_word);
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

/// Write the session's control and Ethernet segments (and its inline
/// segment's `byte_count`, the last segment's tail zeroed), and account
/// for it: the producer counter moves past it, a completion is asked for
/// every `cq_every` WQEs.
#[inline(always)]
fn close(
    c: &mut super::Counters,
    signalled: &mut [Signalled],
    ring: &mut [u8],
    o: Open,
    cs_word: u64,
) {
    let at = o.at;
    if o.inline {
        let total = o.frames * o.len;
        let end = at + 2 * DS + 4 + total;
        let pad = end.next_multiple_of(DS);
        if let Some(b) = ring.get_mut(at + 2 * DS..at + 2 * DS + 4) {
            b.copy_from_slice(&(total as u32 | empw::INLINE).to_be_bytes());
        }
        if let Some(t) = ring.get_mut(end..pad) {
            t.fill(0);
        }
    }
    let head = mpw::ctrl_head_of(o.start, c.sqn8, o.ds);
    let signal = c.sig_left == 1;
    put(ring, at, head, wqe::ctrl_flags_word(signal));
    put(ring, at + DS, cs_word | o.len as u64, 0);
    let nbb = o.nbb() as u16;
    c.last_start = o.start;
    c.last_head = head;
    c.pc = o.start.wrapping_add(nbb);
    if signal {
        c.sig_left = c.cq_every;
        if let Some(slot) = signalled.get_mut((o.start & c.mask) as usize) {
            *slot = Signalled {
                counter: o.start,
                bufs_end: c.bufs_pc,
                lso_end: c.lso_pc,
                nbb: nbb as u8,
                valid: true,
            };
        }
    } else {
        c.sig_left -= 1;
    }
}

/// Store two big-endian words as the segment at byte `at`.
#[inline(always)]
fn put(ring: &mut [u8], at: usize, a: u64, b: u64) -> bool {
    let Some(s) = ring.get_mut(at..at + DS) else {
        return false;
    };
    let (w, _) = s.as_chunks_mut::<8>();
    w[0] = a.to_be_bytes();
    w[1] = b.to_be_bytes();
    true
}
