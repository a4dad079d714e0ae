//! Transmit bursts: many frames posted with the ring's room checked once,
//! what every WQE of the burst repeats (Ethernet segment flags, the VLAN
//! insert word, the control segment's `qpn_ds`) built once, the
//! counters kept in registers and the statistics added once; one
//! doorbell at the end ([`Sq::ring_doorbell`]).
//!
//! The one-block WQEs ([`Sq::post_bare`] and [`Sq::post_l2`]'s layouts:
//! nothing inline, or the L2 rule's 18 bytes) are written here; a frame
//! that needs more (the IP/TCP inline rules, an already-tagged frame
//! with a tag to insert, a frame too short for the L2 rule) goes through
//! [`Sq::post_staged`] like a single transmit.

use cxos_drivers::{DmaRegion, Platform, Region};

use super::{InlineL2, MAX_FRAME, Sq, TxOpts, inline_l2};
use crate::frame::{self, Geometry, Net, Transport};
use crate::wqe::{self, CsFlags, InlineMode, WQEBB, ctrl};

/// What one burst posted.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Burst {
    /// Frames posted.
    pub sent: usize,
    /// The ring or the buffers ran out before the frames asked for.
    pub full: bool,
}

impl<P: Platform> Sq<P> {
    /// Frames a burst can post now: free MTU buffers and free basic
    /// blocks (a burst's common WQE is one block).
    #[inline(always)]
    pub fn burst_room(&self) -> usize {
        let c = &self.c;
        let bufs = c.bufs.wrapping_sub(c.bufs_pc.wrapping_sub(c.bufs_cc));
        let blocks = (c.mask as usize + 1) - c.pc.wrapping_sub(c.cc) as usize;
        (bufs as usize).min(blocks)
    }

    /// Post up to `n` frames, each written by `write(i, buffer)` straight
    /// into the next MTU buffer (`bufs`, `buf_size` bytes each, given
    /// whole) and returning its length; a length of 0 or above `max`
    /// (and [`MAX_FRAME`]) ends the burst without posting that frame.
    /// Every frame gets `opts` (no LSO); the checksum flags come from
    /// `opts.geometry` once for the burst, or from each frame when no
    /// geometry is given. Nothing is visible to the device before
    /// [`Sq::ring_doorbell`].
    ///
    /// The free part of the ring and the buffers are software's until the
    /// doorbell: the one-block WQEs are stored through a plain view of
    /// the ring (`DmaRegion::with_bytes_mut`, the range checked once per
    /// run of frames), ordered before the doorbell record by its barrier.
    #[inline(always)]
    pub fn post_burst<F>(
        &mut self,
        bufs: &Region<P>,
        buf_size: usize,
        max: usize,
        n: usize,
        opts: TxOpts,
        mut write: F,
    ) -> Burst
    where
        F: FnMut(usize, &mut [u8]) -> usize,
    {
        let room = self.burst_room();
        let want = n.min(room);
        let max = max.min(MAX_FRAME).min(buf_size);
        let fixed_cs = match (opts.csum, opts.geometry) {
            (false, _) => Some(CsFlags::of(false, false)),
            (true, Some(g)) => Some(cs_of(&g)),
            (true, None) => None,
        };
        if let (Some(inline_max), Some(cs)) = (self.empw, fixed_cs) {
            if !self.legacy_mpw {
                return self.post_empw(bufs, buf_size, max, n, cs, opts.vlan, inline_max, write);
            }
            // Legacy MPW sessions carry no VLAN insert.
            if opts.vlan.is_none() {
                return self.post_mpw(bufs, buf_size, max, n, cs, inline_max, write);
            }
        }
        let inline = self.inline;
        let one_block = matches!(inline, InlineMode::None | InlineMode::L2);
        let ds = if inline == InlineMode::L2 {
            wqe::send_ds(wqe::L2_INLINE, true)
        } else {
            wqe::send_ds(0, true)
        };
        let k = Invariant {
            lo: self.c.sqn8 | (ds as u32 & ctrl::DS_MASK),
            insert: opts.vlan.map_or(0, wqe::eth_insert_word),
            vlan: opts.vlan,
            fixed_cs,
            max,
            buf_size,
            base: bufs.device_addr().get(),
            mask: self.c.mask,
            bufs_mask: self.c.bufs.wrapping_sub(1),
        };
        let bufs_len = (self.c.bufs as usize * buf_size).min(bufs.len());
        let ring_len = self.ring.mem.len();
        let mut t = Tally::default();
        let mut sent = 0;
        while sent < want {
            // A run of one-block WQEs, until the burst ends, a WQE asks
            // for a completion (its bookkeeping is `&mut self`'s) or a
            // frame needs the staging path.
            let mut pc = self.c.pc;
            let mut bufs_pc = self.c.bufs_pc;
            let sig_left = self.c.sig_left;
            let lkey = self.c.lkey;
            let stop = if one_block {
                self.ring.mem.with_bytes_mut(0, ring_len, |ring| {
                    bufs.with_bytes_mut(0, bufs_len, |all| {
                        let (ring, _) = ring.as_chunks_mut::<WQEBB>();
                        let (pc, bufs_pc, sent, t) = (&mut pc, &mut bufs_pc, &mut sent, &mut t);
                        // One loop per inline rule: no test of it per frame.
                        if inline == InlineMode::None {
                            run::<false, F>(
                                &k, ring, all, &mut write, pc, bufs_pc, sig_left, lkey, sent, want,
                                t,
                            )
                        } else {
                            run::<true, F>(
                                &k, ring, all, &mut write, pc, bufs_pc, sig_left, lkey, sent, want,
                                t,
                            )
                        }
                    })
                })
            } else {
                Stop::Staged
            };
            let posted = pc.wrapping_sub(self.c.pc);
            self.c.pc = pc;
            self.c.bufs_pc = bufs_pc;
            self.c.sig_left = sig_left - posted;
            match stop {
                Stop::Done | Stop::Bad => break,
                Stop::Signal => {
                    self.signal(pc.wrapping_sub(1), 1);
                }
                Stop::Staged => {
                    // The frame is written (or, for a multi-block queue,
                    // not yet): the staging path as a single transmit.
                    let off = (bufs_pc & k.bufs_mask) as usize * buf_size;
                    let addr = bufs.device_addr().offset(off);
                    let ok = bufs.with_bytes_mut(off, buf_size, |b| {
                        let len = if one_block { t.pending } else { write(sent, b) };
                        if len.wrapping_sub(1) >= max {
                            return false;
                        }
                        self.post_staged(&b[..len], addr, opts).is_ok()
                    });
                    if !ok {
                        break;
                    }
                    sent += 1;
                }
            }
        }
        // The newest WQE, for the doorbell (a staged one set it itself).
        if let Some((start, head)) = t.last
            && self.c.pc == start.wrapping_add(1)
        {
            self.c.last_start = start;
            self.c.last_head = head;
        }
        self.stats.csum += t.csum;
        self.stats.packets += t.fast;
        self.stats.bytes += t.bytes;
        if opts.vlan.is_some() {
            self.stats.vlan_insert += t.fast;
        }
        let full = want < n && sent == want;
        if full {
            self.stats.full += 1;
        }
        Burst { sent, full }
    }
}

/// What every WQE of a burst repeats.
struct Invariant {
    /// `qpn_ds` of the control segment.
    lo: u32,
    /// The Ethernet segment's `insert` word (nothing inline).
    insert: u64,
    vlan: Option<u16>,
    fixed_cs: Option<CsFlags>,
    max: usize,
    buf_size: usize,
    /// Device address of the first buffer.
    base: u64,
    mask: u16,
    bufs_mask: u16,
}

/// A burst's running totals.
#[derive(Default)]
struct Tally {
    bytes: u64,
    fast: u64,
    csum: u64,
    /// The newest one-block WQE: its counter and control head.
    last: Option<(u16, u64)>,
    /// The length of a written frame left for the staging path.
    pending: usize,
}

/// Why a run of one-block WQEs stopped.
enum Stop {
    Done,
    /// A length out of range: the burst ends.
    Bad,
    /// The newest WQE asks for a completion.
    Signal,
    /// The frame just written needs the staging path.
    Staged,
}

/// One run of one-block WQEs into the plain views of the ring (`ring`,
/// basic blocks) and the buffers (`all`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run<const L2: bool, F: FnMut(usize, &mut [u8]) -> usize>(
    k: &Invariant,
    ring: &mut [[u8; WQEBB]],
    all: &mut [u8],
    write: &mut F,
    pc: &mut u16,
    bufs_pc: &mut u16,
    mut sig_left: u16,
    lkey: u32,
    sent: &mut usize,
    want: usize,
    t: &mut Tally,
) -> Stop {
    while *sent < want {
        let off = (*bufs_pc & k.bufs_mask) as usize * k.buf_size;
        let Some(b) = all.get_mut(off..off + k.buf_size) else {
            return Stop::Bad;
        };
        let len = write(*sent, b);
        if len.wrapping_sub(1) >= k.max {
            return Stop::Bad;
        }
        let frame = &b[..len];
        let cs = match k.fixed_cs {
            Some(cs) => cs,
            None => cs_of(&frame::parse(frame)),
        };
        let l2 = match L2 {
            false => None,
            true => match inline_l2(frame, k.vlan) {
                Some(h) => Some(h),
                None => {
                    t.pending = len;
                    return Stop::Staged;
                }
            },
        };
        let Some(w) = ring.get_mut((*pc & k.mask) as usize) else {
            return Stop::Bad;
        };
        let addr = k.base + off as u64;
        let head = (((*pc as u64) << 8 | ctrl::OPCODE_SEND as u64) << 32) | k.lo as u64;
        let signalled = sig_left == 1;
        put(w, 0, head);
        put(w, 1, wqe::ctrl_flags_word(signalled));
        put(w, 2, wqe::eth_flags_word(cs, 0));
        match l2 {
            None => {
                put(w, 3, k.insert);
                put(w, 4, wqe::data_word(len as u32, lkey));
                put(w, 5, addr);
            }
            Some(InlineL2 { words, consumed }) => {
                put(w, 3, words[0]);
                put(w, 4, words[1]);
                put(w, 5, words[2]);
                put(w, 6, wqe::data_word((len - consumed) as u32, lkey));
                put(w, 7, addr + consumed as u64);
            }
        }
        t.last = Some((*pc, head));
        *pc = pc.wrapping_add(1);
        *bufs_pc = bufs_pc.wrapping_add(1);
        *sent += 1;
        t.bytes += len as u64;
        t.fast += 1;
        t.csum += !cs.is_empty() as u64;
        if signalled {
            return Stop::Signal;
        }
        sig_left -= 1;
    }
    Stop::Done
}

/// Store big-endian word `i` of a basic block.
#[inline(always)]
fn put(w: &mut [u8; WQEBB], i: usize, v: u64) {
    let (words, _) = w.as_chunks_mut::<8>();
    words[i] = v.to_be_bytes();
}

/// The checksum flags of a frame's headers.
#[inline(always)]
fn cs_of(g: &Geometry) -> CsFlags {
    CsFlags::of(g.net == Net::Ipv4, g.transport != Transport::Other)
}
