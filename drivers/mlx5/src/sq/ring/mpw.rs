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
                        // The last segment's tail zeroed, as one
                        // 16-byte load and store (no call for a few bytes).
                        let ds = mpw::inline_ds(total);
                        let used = (4 + total) % DS;
                        if let (true, Some(last)) = (used != 0, session.get_mut(ds - 1)) {
                            let kept = u128::from_le_bytes(*last) & ((1u128 << (used * 8)) - 1);
                            *last = kept.to_le_bytes();
                        }
                        (m, ds)
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
        self.stats
            .sessions_sent(sent, n, bad, bytes, !cs.is_empty(), false)
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

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use cxos_drivers::{DmaAlloc, DmaRegion};

    use super::super::{Sq, SqConfig};
    use crate::mock::{MockDma, MockPlatform};
    use crate::pd::Lkey;
    use crate::sq::Sqn;
    use crate::uar::Uar;
    use crate::wqe::{DS, InlineMode, WQEBB, empw, mpw};

    const BUF: usize = 2048;

    /// Every session posted from block `from` to `to`, read back as the
    /// device reads it (control, Ethernet, the frames), checked against
    /// the layout of `crate::wqe::mpw`; returns each frame's bytes.
    fn sessions(sq: &Sq<MockPlatform>, bufs: &MockDma, from: u16, to: u16) -> Vec<Vec<u8>> {
        let entries = sq.entries() as u16;
        let base = bufs.device_addr().get();
        let mut frames = Vec::new();
        let mut at = from;
        while at != to {
            let mut w = Vec::new();
            // A session never wraps: read up to the ring's end.
            let slot = at & (entries - 1);
            for b in slot..entries {
                w.extend_from_slice(&sq.wqebb(b));
            }
            // Control: opmod 1, wqe_index, opcode LSO; ds.
            assert_eq!(w[0], mpw::OPC_MOD_MPW);
            assert_eq!(u16::from_be_bytes([w[1], w[2]]), at);
            assert_eq!(w[3], 0x0e);
            let ds = (w[7] & 0x3f) as usize;
            assert!((3..=mpw::SESSION_DS).contains(&ds), "ds {ds}");
            let nbb = ds.div_ceil(WQEBB / DS);
            assert!(slot as usize + nbb <= entries as usize, "wraps");
            // Ethernet: mss (bytes 6..8) is every frame's length.
            let len = u16::from_be_bytes([w[DS + 6], w[DS + 7]]) as usize;
            let word = |o: usize| u32::from_be_bytes([w[o], w[o + 1], w[o + 2], w[o + 3]]);
            let first = word(2 * DS);
            let n = if first & empw::INLINE != 0 {
                let total = (first & !empw::INLINE) as usize;
                assert_eq!(total % len, 0);
                assert_eq!(ds, mpw::inline_ds(total));
                for f in w[2 * DS + 4..][..total].chunks(len) {
                    frames.push(f.to_vec());
                }
                // The last segment's tail is zero.
                assert!(w[2 * DS + 4 + total..ds * DS].iter().all(|&x| x == 0));
                total / len
            } else {
                for s in 2..ds {
                    let o = s * DS;
                    assert_eq!(word(o) as usize, len);
                    assert_eq!(word(o + 4), 0x100);
                    let addr = u64::from_be_bytes(w[o + 8..o + 16].try_into().unwrap());
                    let off = (addr - base) as usize;
                    assert_eq!(off % BUF, 0);
                    let mut f = alloc::vec![0; len];
                    bufs.read_bytes(off, &mut f);
                    frames.push(f);
                }
                ds - 2
            };
            assert!((1..=mpw::MAX_FRAMES).contains(&n));
            at = at.wrapping_add(nbb as u16);
        }
        frames
    }

    #[test]
    fn every_written_frame_is_posted_however_full_the_ring() {
        // A ring of 8 blocks and 8 buffers, completions now and then
        // only: sessions meet the ring's end, its last free block and
        // the end of the buffers; lengths that change every few frames
        // (some inline, some pointed to) end sessions when the ring has
        // little room left.
        let p = MockPlatform::new();
        let log = 3;
        let ring = Sq::<MockPlatform>::alloc_ring(&p, log).unwrap();
        let cfg = SqConfig {
            uar: Uar(4),
            inline: InlineMode::L2,
            cq_every: 4,
            lkey: Lkey(0x100),
            bufs: 1 << log,
            lso_bufs: 0,
            empw: Some(100),
            legacy_mpw: true,
            bf: 0,
        };
        let mut sq = Sq::new(Sqn(0x0abc), ring, log, cfg, p.clone());
        let bufs = p.dma_alloc(BUF << log).unwrap();
        let mut seed = 7u32;
        let mut rnd = move |n: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) % n
        };
        let mut seq = 0u32;
        let mut len = 64;
        for round in 0..400 {
            let n = 1 + rnd(12) as usize;
            let from = sq.producer_counter();
            let mut written = Vec::new();
            let burst = sq.post_burst(&bufs, BUF, 1514, n, Default::default(), |_, b| {
                if rnd(3) == 0 {
                    len = [14, 20, 60, 64, 90, 100, 101, 200, 1514][rnd(9) as usize];
                }
                for (i, x) in b[..len].iter_mut().enumerate() {
                    *x = (i as u32 ^ seq) as u8;
                }
                seq += 1;
                written.push(b[..len].to_vec());
                len
            });
            // Nothing written is left behind, and the ring and the
            // buffers are never over-committed.
            assert_eq!(burst.sent, written.len(), "round {round}");
            assert!(burst.sent == n || burst.full, "round {round}");
            assert!(sq.in_flight() <= sq.entries());
            assert_eq!(sessions(&sq, &bufs, from, sq.producer_counter()), written);
            sq.ring_doorbell();
            // Complete everything now and then (the newest WQE asks for
            // a completion at the doorbell).
            if rnd(3) == 0 && sq.in_flight() > 0 {
                let last = sq.c.last_start;
                sq.complete_at(last).unwrap();
                assert_eq!(sq.in_flight(), 0);
                assert_eq!(sq.free_buffers(), 1 << log);
            }
        }
        assert!(sq.stats.full > 50, "{}", sq.stats.full);
    }
}
