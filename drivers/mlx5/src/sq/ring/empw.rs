//! Transmit bursts as enhanced multi-packet send sessions (PRM "Enhanced
//! Multi-Packet Send WQE"; the segments of [`crate::wqe::empw`]): one
//! control and one Ethernet segment per session, then 16 bytes per frame
//! (a data segment pointing at the frame's buffer), or the frame itself
//! when it is no longer than the queue's inline limit (an inline data
//! segment; the buffer is free again at once, the frame being in the
//! WQE). A session ends at [`wqe::empw::SESSION_DS`] segments, at the
//! ring's free room or the burst's end; its control segment is written
//! last, once its segment count is known. Used on parts with
//! `enhanced_multi_pkt_send_wqe` and no inline-header rule, for bursts
//! whose offloads are the same for every frame.

use cxos_drivers::{DmaRegion, Platform, Region};

use super::{Burst, Signalled, Sq};
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
        let ds_mask = (mask as usize + 1) * (wqe::WQEBB / DS) - 1;
        let bufs_len = (c.bufs as usize * buf_size).min(bufs.len());
        let base = bufs.device_addr().get();
        let bufs_mask = c.bufs.wrapping_sub(1);
        let eth = [wqe::eth_flags_word(cs, 0), vlan.map_or(0, wqe::eth_insert_word)];
        let inline_max = inline_max.min(MAX_INLINE);
        let (lkey, sqn8) = (c.lkey, c.sqn8);
        let mut sent = 0;
        let mut bytes = 0u64;
        // A length out of range (or a view the pool cannot give) ends the
        // burst; running out of ring or buffers makes it `full`.
        let mut bad = false;
        let mut stop = false;
        ring.mem.with_bytes_mut(0, ring.mem.len(), |ring| {
            bufs.with_bytes_mut(0, bufs_len, |all| {
                let (segs, _) = ring.as_chunks_mut::<DS>();
                while sent < n && !stop && !bad {
                    let free_blocks = (mask as usize + 1) - c.pc.wrapping_sub(c.cc) as usize;
                    let room = (free_blocks * (wqe::WQEBB / DS)).min(empw::SESSION_DS);
                    // Control, Ethernet, one frame.
                    if room < 3 {
                        break;
                    }
                    let start = c.pc;
                    let at = (start & mask) as usize * (wqe::WQEBB / DS);
                    let mut ds = 2;
                    while sent < n && ds < room {
                        if c.bufs_pc.wrapping_sub(c.bufs_cc) >= c.bufs {
                            stop = true;
                            break;
                        }
                        let off = (c.bufs_pc & bufs_mask) as usize * buf_size;
                        let Some(b) = all.get_mut(off..off + buf_size) else {
                            bad = true;
                            break;
                        };
                        let len = write(sent, b);
                        if len.wrapping_sub(1) >= max {
                            bad = true;
                            break;
                        }
                        let inline = len <= inline_max && ds + empw::inline_ds(len) <= room;
                        if inline {
                            if !put_inline(segs, at + ds, ds_mask, &b[..len]) {
                                bad = true;
                                break;
                            }
                            ds += empw::inline_ds(len);
                        } else {
                            let Some(s) = segs.get_mut((at + ds) & ds_mask) else {
                                bad = true;
                                break;
                            };
                            put(s, wqe::data_word(len as u32, lkey), base + off as u64);
                            ds += 1;
                            c.bufs_pc = c.bufs_pc.wrapping_add(1);
                        }
                        sent += 1;
                        bytes += len as u64;
                    }
                    if ds == 2 {
                        break;
                    }
                    let head = wqe::ctrl_head_of(start, ctrl::OPCODE_ENHANCED_MPSW, sqn8, ds);
                    let signal = c.sig_left == 1;
                    let nbb = ds.div_ceil(wqe::WQEBB / DS) as u16;
                    if let Some(s) = segs.get_mut(at & ds_mask) {
                        put(s, head, wqe::ctrl_flags_word(signal));
                    }
                    if let Some(e) = segs.get_mut((at + 1) & ds_mask) {
                        put(e, eth[0], eth[1]);
                    }
                    c.last_start = start;
                    c.last_head = head;
                    c.pc = start.wrapping_add(nbb);
                    if signal {
                        c.sig_left = c.cq_every;
                        if let Some(slot) = signalled.get_mut((start & mask) as usize) {
                            *slot = Signalled {
                                counter: start,
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
            })
        });
        self.stats.packets += sent as u64;
        self.stats.bytes += bytes;
        if !cs.is_empty() {
            self.stats.csum += sent as u64;
        }
        if vlan.is_some() {
            self.stats.vlan_insert += sent as u64;
        }
        let full = sent < n && !bad;
        if full {
            self.stats.full += 1;
        }
        Burst { sent, full }
    }
}

/// Store two big-endian words in one segment.
#[inline(always)]
fn put(s: &mut [u8; DS], a: u64, b: u64) {
    let (w, _) = s.as_chunks_mut::<8>();
    w[0] = a.to_be_bytes();
    w[1] = b.to_be_bytes();
}

/// An inline data segment at segment `at` (wrapping at the ring's end):
/// `byte_count` with [`empw::INLINE`], the frame, zeros to the segment's
/// end.
#[inline(always)]
fn put_inline(segs: &mut [[u8; DS]], at: usize, mask: usize, frame: &[u8]) -> bool {
    let Some(first) = segs.get_mut(at & mask) else {
        return false;
    };
    let head = frame.len().min(DS - 4);
    first[..4].copy_from_slice(&(frame.len() as u32 | empw::INLINE).to_be_bytes());
    first[4..4 + head].copy_from_slice(&frame[..head]);
    first[4 + head..].fill(0);
    for (k, chunk) in frame[head..].chunks(DS).enumerate() {
        let Some(s) = segs.get_mut((at + 1 + k) & mask) else {
            return false;
        };
        s[..chunk.len()].copy_from_slice(chunk);
        s[chunk.len()..].fill(0);
    }
    true
}
