//! Transmit bursts as enhanced multi-packet send sessions (PRM "Enhanced
//! Multi-Packet Send WQE"; the segments of [`crate::wqe::empw`]): one
//! control and one Ethernet segment per session, then 16 bytes per frame
//! (a data segment pointing at the frame's buffer), or the frame itself
//! when it is no longer than the queue's inline limit (an inline data
//! segment; the buffer is free again at once, the frame being in the
//! WQE). A session ends at [`wqe::empw::SESSION_DS`] segments, at the
//! ring's free room or its end (a session is one plain run of the ring,
//! never wrapping), at the end of the run of free buffers or of the
//! burst; its control segment is written last, once its segment count is
//! known. The frames' loop has no bounds check of its own: the session's
//! segments and its buffers are two slices zipped. Used on parts with
//! `enhanced_multi_pkt_send_wqe` and no inline-header rule, for bursts
//! whose offloads are the same for every frame.

use cxos_drivers::{DmaRegion, Platform, Region};

use super::{Burst, Sq};
use crate::wqe::{self, CsFlags, DS, ctrl, empw};

/// Largest frame the driver inlines in a session: one that fits an
/// empty session (the rest of the session's segments after control and
/// Ethernet).
pub const MAX_INLINE: usize = (empw::SESSION_DS - 2) * DS - 4;

impl<P: Platform> Sq<P> {
    /// Whether bursts go out as eMPW sessions, and the longest frame
    /// they inline (0: none).
    pub fn empw(&self) -> Option<usize> {
        self.empw
    }

    /// [`Sq::post_burst`] as eMPW sessions: up to `n` frames, each
    /// written by `write(i, buffer)` into the next MTU buffer, every one
    /// with checksum flags `cs` and tag `vlan`; a length of 0 or above
    /// `max` ends the burst without that frame.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn post_empw<F>(
        &mut self,
        bufs: &Region<P>,
        buf_size: usize,
        max: usize,
        n: usize,
        cs: CsFlags,
        vlan: Option<u16>,
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
        let per_bb = wqe::WQEBB / DS;
        let bufs_len = (c.bufs as usize * buf_size).min(bufs.len());
        let base = bufs.device_addr().get();
        let bufs_mask = c.bufs.wrapping_sub(1);
        let eth = [
            wqe::eth_flags_word(cs, 0),
            vlan.map_or(0, wqe::eth_insert_word),
        ];
        let inline_max = inline_max.min(MAX_INLINE);
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
                while sent < n && !bad {
                    // A session never runs past the ring's end (the next
                    // one starts at block 0), so it is one plain slice.
                    let start = c.pc;
                    let slot = (start & mask) as usize;
                    let to_end = mask as usize + 1 - slot;
                    let room = (c.free_blocks().min(to_end) * per_bb).min(empw::SESSION_DS);
                    // Likewise the run of buffers it sends from.
                    let first = (bufs_pc & bufs_mask) as usize;
                    let free_bufs = c.bufs.wrapping_sub(bufs_pc.wrapping_sub(c.bufs_cc)) as usize;
                    let k = (n - sent)
                        .min(free_bufs)
                        .min(c.bufs as usize - first)
                        .min(room.saturating_sub(2));
                    if k == 0 {
                        break;
                    }
                    let Some(session) = segs.get_mut(slot * per_bb..slot * per_bb + room) else {
                        bad = true;
                        break;
                    };
                    let Some(run) = all.get_mut(first * buf_size..(first + k) * buf_size) else {
                        bad = true;
                        break;
                    };
                    let (hdr, frames) = session.split_at_mut(2);
                    let mut addr = base + (first * buf_size) as u64;
                    let (used, ds) = if inline_max == 0 {
                        // One data segment per frame, buffers in order.
                        let mut m = 0;
                        for (b, s) in run.chunks_exact_mut(buf_size).zip(frames.iter_mut()) {
                            let len = write(sent, b);
                            if len.wrapping_sub(1) >= max {
                                bad = true;
                                break;
                            }
                            put(s, wqe::data_word(len as u32, lkey), addr);
                            addr += buf_size as u64;
                            sent += 1;
                            m += 1;
                            bytes += len as u64;
                        }
                        (m, m)
                    } else {
                        // Inline frames leave their buffer for the next.
                        let (mut used, mut ds) = (0, 0);
                        while sent < n && ds < frames.len() && used < k {
                            let Some(b) = run.get_mut(used * buf_size..(used + 1) * buf_size)
                            else {
                                bad = true;
                                break;
                            };
                            let len = write(sent, b);
                            if len.wrapping_sub(1) >= max {
                                bad = true;
                                break;
                            }
                            let need = empw::inline_ds(len);
                            if len <= inline_max && ds + need <= frames.len() {
                                if !put_inline(&mut frames[ds..ds + need], &b[..len]) {
                                    bad = true;
                                    break;
                                }
                                ds += need;
                            } else {
                                let Some(s) = frames.get_mut(ds) else {
                                    bad = true;
                                    break;
                                };
                                put(s, wqe::data_word(len as u32, lkey), addr);
                                addr += buf_size as u64;
                                ds += 1;
                                used += 1;
                            }
                            sent += 1;
                            bytes += len as u64;
                        }
                        (used, ds)
                    };
                    if ds == 0 {
                        break;
                    }
                    let ds = ds + 2;
                    bufs_pc = bufs_pc.wrapping_add(used as u16);
                    let head = wqe::ctrl_head_of(start, ctrl::OPCODE_ENHANCED_MPSW, sqn8, ds);
                    let nbb = ds.div_ceil(per_bb) as u16;
                    let signal = c.close_session(signalled, head, nbb, bufs_pc);
                    if let [ctl, e] = hdr {
                        put(ctl, head, wqe::ctrl_flags_word(signal));
                        put(e, eth[0], eth[1]);
                    }
                }
            })
        });
        self.stats
            .sessions_sent(sent, n, bad, bytes, !cs.is_empty(), vlan.is_some())
    }
}

/// Store two big-endian words in one segment.
#[inline(always)]
fn put(s: &mut [u8; DS], a: u64, b: u64) {
    let (w, _) = s.as_chunks_mut::<8>();
    w[0] = a.to_be_bytes();
    w[1] = b.to_be_bytes();
}

/// An inline data segment filling `segs` (`struct mlx5_wqe_inline_seg`):
/// `byte_count` with [`empw::INLINE`], the frame, zeros to the last
/// segment's end; false (nothing written) unless `segs` are exactly the
/// segments the frame takes ([`empw::inline_ds`]).
///
/// The segments are one flat run of bytes: the frame goes in with one
/// copy, and the padding is the last segment zeroed (one 16-byte store)
/// before the frame is written over its head. (A copy and a fill per
/// segment, with their varying lengths, cost a third of a mixed burst.)
#[inline(always)]
fn put_inline(segs: &mut [[u8; DS]], frame: &[u8]) -> bool {
    let len = frame.len();
    if segs.len() != empw::inline_ds(len) {
        return false;
    }
    let Some(last) = segs.last_mut() else {
        return false;
    };
    *last = [0; DS];
    let Some((count, data)) = segs.as_flattened_mut().split_first_chunk_mut::<4>() else {
        return false;
    };
    let Some(data) = data.get_mut(..len) else {
        return false;
    };
    *count = (len as u32 | empw::INLINE).to_be_bytes();
    data.copy_from_slice(frame);
    true
}

#[cfg(test)]
mod tests {
    use super::put_inline;
    use crate::wqe::DS;

    /// `n` segments of stale bytes (a ring's old WQEs).
    fn stale(n: usize) -> alloc::vec::Vec<[u8; DS]> {
        alloc::vec![[0xee; DS]; n]
    }

    /// A frame of `len` bytes 1, 2, 3, ...
    fn frame(len: usize) -> alloc::vec::Vec<u8> {
        (1..=len as u8).collect()
    }

    #[test]
    fn inline_segment_golden() {
        // `struct mlx5_wqe_inline_seg` (PRM "Inline Data Segment"):
        // bytes 0..4 byte_count (be32) with MLX5_INLINE_SEG (bit 31)
        // set, the data from byte 4, padded to the segment's 16 bytes.
        //
        // 21 bytes (not a multiple of 16): two segments, byte_count
        // 0x80000015, the frame at 4..25, zeros at 25..32.
        let mut s = stale(2);
        assert!(put_inline(&mut s, &frame(21)));
        let mut golden = [0u8; 2 * DS];
        golden[..4].copy_from_slice(&[0x80, 0x00, 0x00, 0x15]);
        golden[4..25].copy_from_slice(&frame(21));
        assert_eq!(s.as_flattened(), golden);

        // DS - 4 = 12 bytes: one segment, byte_count 0x8000000c, the
        // frame to its end, no padding.
        let mut s = stale(1);
        assert!(put_inline(&mut s, &frame(12)));
        let mut golden = [0u8; DS];
        golden[..4].copy_from_slice(&[0x80, 0x00, 0x00, 0x0c]);
        golden[4..].copy_from_slice(&frame(12));
        assert_eq!(s.as_flattened(), golden);

        // 28 bytes: two segments filled exactly (4 + 28 = 32).
        let mut s = stale(2);
        assert!(put_inline(&mut s, &frame(28)));
        let mut golden = [0u8; 2 * DS];
        golden[..4].copy_from_slice(&[0x80, 0x00, 0x00, 0x1c]);
        golden[4..].copy_from_slice(&frame(28));
        assert_eq!(s.as_flattened(), golden);

        // 100 bytes over seven segments: the frame at 4..104, zeros at
        // 104..112.
        let mut s = stale(7);
        assert!(put_inline(&mut s, &frame(100)));
        let mut golden = [0u8; 7 * DS];
        golden[..4].copy_from_slice(&[0x80, 0x00, 0x00, 0x64]);
        golden[4..104].copy_from_slice(&frame(100));
        assert_eq!(s.as_flattened(), golden);
    }

    #[test]
    fn inline_segment_refuses_segments_not_the_frames() {
        // One byte too long for its segments (13 bytes in one, 29 in
        // two), segments more than the frame takes (12 bytes in two) and
        // none at all: refused, the segments left as they were.
        for (n, len) in [(1, 13), (2, 29), (2, 12), (0, 0), (0, 5)] {
            let mut s = stale(n);
            assert!(!put_inline(&mut s, &frame(len)), "{len} bytes in {n}");
            assert_eq!(s, stale(n), "{len} bytes in {n}");
        }
    }
}
