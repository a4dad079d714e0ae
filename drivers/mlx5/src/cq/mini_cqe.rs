//! Compressed CQE sessions (PRM "CQE Compression"; `struct mlx5_mini_cqe8`
//! in device.h), read back as the CQEs they stand for.
//!
//! A session of `n` completions takes `n` CQE slots from consumer index
//! `t`: slot `t` holds the title (a full CQE with `op_own` bits 3:2 = 3,
//! `MLX5_COMPRESSED`, and `byte_cnt` = `n`), mini-CQE array `k` (eight
//! 8-byte entries: the result word, then `byte_cnt`) is in slot `t + 1`
//! for `k = 0` and `t + 8k` after, the other slots are not written by
//! the device. Completion `i` is the title with the mini-CQE's byte count
//! and result (the checksum with `mini_cqe_res_format` 1, past the first
//! completion the RSS hash not known; the RSS hash with format 0, the
//! checksum the title's) and a `wqe_counter` that
//! continues the title's: + 1 per completion on a cyclic RQ, + the
//! strides the completion before consumed on a striding RQ.
//!
//! Every slot of the session is made invalid (`op_own` 0xf1, as the ring
//! starts) once read, so none can look software-owned on the next pass.

use cxos_drivers::{DmaRegion, Mmio, Platform};

use super::Cq;
use crate::cqe::{self, Cqe};

/// `mini_cqe_res_format`: the RSS hash (`MLX5_CQE_FORMAT_HASH`, every
/// part with `cqe_compression`) or the checksum (`MLX5_CQE_FORMAT_CSUM`).
pub const RES_HASH: u8 = 0;
pub const RES_CSUM: u8 = 1;
/// `MLX5_COMPRESSED` in `op_own` bits 3:2.
pub const FORMAT_COMPRESSED: u8 = 3;
/// Entries of a mini-CQE array (`MLX5_MINI_CQE_ARRAY_SIZE`).
pub const ARRAY: u32 = 8;

/// The session being read (none when `left` is 0).
#[derive(Debug)]
pub struct Session {
    /// The CQ's RQ is striding (how `wqe_counter` continues).
    pub striding: bool,
    /// The CQ's `mini_cqe_res_format` is [`RES_HASH`] (else [`RES_CSUM`]).
    pub hash: bool,
    /// The CQ was created with `cqe_comp_en`: only then is a title one
    /// (on any other CQ the entry is an ordinary CQE in a format the
    /// queue refuses, never a count of slots to skip).
    pub enabled: bool,
    title: Option<Cqe>,
    left: u32,
    index: u32,
    counter: u16,
    /// The mini-CQE array being read, as in the ring (eight big-endian
    /// words), when its slot may no longer hold it: read by the per-frame
    /// path, or kept by [`Cq::read_session`] when a burst stopped inside it.
    minis: [u8; cqe::LEN],
    /// Sessions and completions read from them.
    pub sessions: u64,
    pub compressed: u64,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            striding: false,
            hash: false,
            enabled: false,
            title: None,
            left: 0,
            index: 0,
            counter: 0,
            minis: [0; cqe::LEN],
            sessions: 0,
            compressed: 0,
        }
    }
}

/// What takes a session's completions from [`Cq::read_session`], a
/// mini-CQE array at a time.
pub trait MiniSink {
    /// Take completions `from..from + n` of `array` (eight big-endian
    /// words: the result, then `byte_cnt`; `first`: completion `from` is
    /// the session's first; `title`: the session's title); returns how
    /// many were taken (fewer than `n`: the next is refused) and whether
    /// the read goes on (`false` with all `n` taken: the sink stops there,
    /// the rest left in the session).
    fn array(
        &mut self,
        array: &[u8; cqe::LEN],
        from: usize,
        n: usize,
        first: bool,
        title: Option<&Cqe>,
    ) -> (usize, bool);
}

/// What [`Cq::title_first`] found at the consumer index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Head {
    Empty,
    Session,
    Other,
}

/// Mini-CQE `j` of an array as in the ring (big-endian words).
#[inline(always)]
pub fn mini_word(array: &[u8; cqe::LEN], j: usize) -> u64 {
    array
        .as_chunks::<8>()
        .0
        .get(j)
        .map_or(0, |w| u64::from_be_bytes(*w))
}

/// Whether an owned entry's `op_own` (low byte of its tail) is a title.
#[inline(always)]
pub fn is_title(op_own: u8) -> bool {
    (op_own >> 2) & 3 == FORMAT_COMPRESSED
}

impl<P: Platform> Cq<P> {
    /// Whether a compressed session is being read (its rest is
    /// [`Cq::pop`]'s: the slots past the title are not CQEs).
    #[inline(always)]
    pub fn in_session(&self) -> bool {
        self.session.left != 0
    }

    /// The session's counters: (sessions, completions read from them).
    pub fn compression_stats(&self) -> (u64, u64) {
        (self.session.sessions, self.session.compressed)
    }

    /// The CQ's `mini_cqe_res_format` (set at open).
    pub fn set_mini_format(&mut self, format: u8) {
        self.session.hash = format == RES_HASH;
    }

    /// The RQ completing here is striding (set at open).
    pub fn set_striding(&mut self, striding: bool) {
        self.session.striding = striding;
    }

    /// Whether the CQ was created compressing.
    #[inline(always)]
    pub fn compressing(&self) -> bool {
        self.session.enabled
    }

    /// The CQ was created compressing (`cqe_comp_en`; set at open).
    pub fn set_compressing(&mut self, compressing: bool) {
        self.session.enabled = compressing;
    }

    /// Whether a session is being read or begins at the consumer index
    /// (its title software-owned: then it is begun).
    #[inline(always)]
    pub fn session_ready(&mut self) -> bool {
        if self.in_session() {
            return true;
        }
        let base = (self.ci & self.mask) as usize * cqe::LEN;
        let tail = self.ring.mem.read_be32(base + cqe::off::TAIL);
        if !self.session.enabled
            || !cqe::software_owns(tail, self.ci >> self.log_size)
            || !is_title(tail as u8)
        {
            return false;
        }
        self.mmio.barrier_after_ownership_read();
        self.start_session(tail);
        true
    }

    /// What is at the consumer index of a compressing CQ, read alone (one
    /// load of its tail word): nothing yet, a title (then its session is
    /// begun), or something else. Kept out of line: the burst loop of a
    /// CQ that does not compress keeps its registers.
    #[inline(never)]
    pub fn title_first(&mut self) -> Head {
        match self.owned_tail(self.ci) {
            None => Head::Empty,
            Some(t) if t.is_title() => {
                self.begin_session(t);
                Head::Session
            }
            Some(_) => Head::Other,
        }
    }

    /// Begin the session whose title is at the consumer index, its tail
    /// word `t` read by [`Cq::owned_tail`] (software-owned, the read
    /// barrier done) and a title ([`super::burst::CqeTail::is_title`]);
    /// only on a compressing CQ.
    #[inline(always)]
    pub fn begin_session(&mut self, t: super::burst::CqeTail) {
        if self.session.enabled && !self.in_session() {
            self.start_session(t.0 as u32);
        }
    }

    /// Begin the session whose title (software-owned, read barrier done)
    /// is at the consumer index: its eight words with one read (the QPN is
    /// the high half of the tail's). Out of line: [`Cq::title_first`]
    /// finding the ring empty keeps a light prologue.
    #[inline(never)]
    pub(super) fn start_session(&mut self, tail: u32) {
        let base = (self.ci & self.mask) as usize * cqe::LEN;
        let mut all = [0u64; cqe::WORDS + 1];
        self.ring.mem.read_be64s(base, &mut all);
        let Some((w, [last])) = all.split_first_chunk::<{ cqe::WORDS }>() else {
            return;
        };
        let qpn = (last >> 32) as u32;
        let title = Cqe::from_words(tail, w, || qpn);
        // The count comes from the device: at least one, at most a ring.
        let n = title.byte_count().clamp(1, self.mask + 1);
        let s = &mut self.session;
        s.counter = title.wqe_counter();
        s.title = Some(title);
        s.left = n;
        s.index = 0;
        s.sessions += 1;
    }

    /// The next completion of the session (`in_session`), consumed.
    pub fn next_in_session(&mut self) -> Cqe {
        let first = self.session.index == 0;
        let (mini, counter) = self.next_mini();
        self.session_cqe(mini, counter, first)
    }

    /// Completion of the session from its mini-CQE word and counter
    /// ([`Cq::next_mini`]; `first`: the session's first).
    #[inline]
    pub fn session_cqe(&self, mini: u64, counter: u16, first: bool) -> Cqe {
        match &self.session.title {
            Some(t) => t.decompressed(mini, counter, first, self.session.hash),
            None => Cqe::default(),
        }
    }

    /// The next completion is the session's first.
    #[inline(always)]
    pub fn session_first(&self) -> bool {
        self.session.index == 0
    }

    /// The title's `wqe_id` (a striding RQ's WQE: the whole session's).
    #[inline(always)]
    pub fn session_wqe_id(&self) -> u16 {
        self.session.title.as_ref().map_or(0, |t| t.wqe_id())
    }

    /// The title's `wqe_counter` continued to the session's next
    /// completion.
    #[inline(always)]
    pub fn session_counter(&self) -> u16 {
        self.session.counter
    }

    /// The `wqe_counter` of the session's next completion, after
    /// [`Cq::read_session`].
    #[inline(always)]
    pub fn set_session_counter(&mut self, counter: u16) {
        self.session.counter = counter;
    }

    /// The session's title (for [`Cqe::decompressed`]) and whether the
    /// mini-CQEs carry the RSS hash.
    #[inline(always)]
    pub fn session_title(&self) -> (Option<&Cqe>, bool) {
        (self.session.title.as_ref(), self.session.hash)
    }

    /// Up to `max` next completions of the session (`in_session`), read
    /// through one plain view of their slots (software owns a session's
    /// slots once its title is owned; the view stops at the ring's end),
    /// a mini-CQE array at a time, each given to `g` ([`MiniSink::array`];
    /// taking fewer than it was given, or asking to stop, ends the read).
    /// The completions taken are consumed and their slots made invalid
    /// (`op_own` 0xf1) in the same view; an array the read stopped inside
    /// is kept ([`Session`]'s copy) for the next read. Returns the
    /// completions taken and whether `g` ended the read (refused one, left
    /// in the session, or stopped). The caller continues `wqe_counter`
    /// itself and gives it back ([`Cq::set_session_counter`]).
    #[inline(always)]
    pub fn read_session(&mut self, max: usize, g: &mut impl MiniSink) -> (u32, bool) {
        let slot0 = self.ci & self.mask;
        let s = &mut self.session;
        let mut index = s.index;
        // Completions this read may take: their slots, up to the ring's end.
        let kmax = (max.min(u32::MAX as usize) as u32)
            .min(s.left)
            .min(self.mask + 1 - slot0);
        if kmax == 0 {
            return (0, false);
        }
        // The array to start with is the copy when the read starts inside
        // it, or array 0 when its slot (after the title's) is not among
        // the slots this read takes: then read it first.
        let mut have_copy = !index.is_multiple_of(ARRAY);
        if index == 0 && kmax < 2 {
            let at = (self.ci.wrapping_add(1) & self.mask) as usize * cqe::LEN;
            let mut w = [0u64; ARRAY as usize];
            self.ring.mem.read_be64s(at, &mut w);
            for (d, w) in s.minis.as_chunks_mut::<8>().0.iter_mut().zip(w) {
                *d = w.to_be_bytes();
            }
            have_copy = true;
        }
        let title = s.title.as_ref();
        let copy = &mut s.minis;
        let (k, refused) = self.ring.mem.with_bytes_mut(
            slot0 as usize * cqe::LEN,
            kmax as usize * cqe::LEN,
            |v| {
                let slots = v.as_chunks_mut::<{ cqe::LEN }>().0;
                let (mut k, mut refused) = (0usize, false);
                let kmax = slots.len();
                // The rest of an array read before (or array 0 read first).
                if have_copy {
                    let from = (index % ARRAY) as usize;
                    let n = (ARRAY as usize - from).min(kmax);
                    let (t, go) = g.array(copy, from, n, index == 0, title);
                    k = t.min(n);
                    index += k as u32;
                    refused = k < n || !go;
                }
                // Whole arrays: eight slots each, the array in the first
                // (array 0 in the second, after the title's: taken before
                // the loop, so the loop's array is at a fixed place).
                if index == 0
                    && let Some(arr) = slots.get(1)
                    && kmax >= ARRAY as usize
                {
                    let (t, go) = g.array(arr, 0, ARRAY as usize, true, title);
                    let t = t.min(ARRAY as usize);
                    if t < ARRAY as usize {
                        *copy = *arr;
                    }
                    refused = t < ARRAY as usize || !go;
                    k = t;
                    index = t as u32;
                }
                while !refused
                    && index != 0
                    && let Some(ch) = slots.get(k..k + ARRAY as usize)
                    && let Some(arr) = ch.first()
                {
                    let (t, go) = g.array(arr, 0, ARRAY as usize, false, title);
                    let t = t.min(ARRAY as usize);
                    if t < ARRAY as usize {
                        // Stopped inside it: its slot is about to be made
                        // invalid (its last byte is a slot's `op_own`).
                        *copy = *arr;
                        refused = true;
                    }
                    refused |= !go;
                    k += t;
                    index += t as u32;
                }
                // A last array the view holds part of.
                if !refused && k < kmax {
                    let first = index == 0;
                    if let Some(arr) = slots.get(k + usize::from(first)) {
                        let n = kmax - k;
                        let (t, go) = g.array(arr, 0, n, first, title);
                        let t = t.min(n);
                        *copy = *arr;
                        refused = t < n || !go;
                        k += t;
                        index += t as u32;
                    }
                }
                let (whole, rest) = slots.get_mut(..k).unwrap_or_default().as_chunks_mut::<8>();
                for ch in whole {
                    for e in ch {
                        e[cqe::off::OP_OWN] = cqe::INITIAL_OP_OWN;
                    }
                }
                for e in rest {
                    e[cqe::off::OP_OWN] = cqe::INITIAL_OP_OWN;
                }
                (k as u32, refused)
            },
        );
        let s = &mut self.session;
        s.index = index;
        s.left -= k;
        s.compressed += k as u64;
        self.ci = self.ci.wrapping_add(k);
        self.polled += k as u64;
        (k, refused)
    }

    /// The next completion of the session (`in_session`) as its mini-CQE
    /// word (`byte_cnt` in the low half) and `wqe_counter`, consumed: the
    /// array read once per eight, the slot made invalid.
    #[inline(always)]
    pub fn next_mini(&mut self) -> (u64, u16) {
        let i = self.session.index;
        if i.is_multiple_of(ARRAY) {
            // Array 0 follows the title; array k >= 1 is in the slot of
            // completion 8k.
            let at = if i == 0 {
                self.ci.wrapping_add(1)
            } else {
                self.ci
            };
            let base = (at & self.mask) as usize * cqe::LEN;
            let mut w = [0u64; ARRAY as usize];
            self.ring.mem.read_be64s(base, &mut w);
            for (d, w) in self.session.minis.as_chunks_mut::<8>().0.iter_mut().zip(w) {
                *d = w.to_be_bytes();
            }
        }
        let s = &mut self.session;
        let mini = mini_word(&s.minis, (i % ARRAY) as usize);
        let counter = s.counter;
        s.counter = if s.striding {
            counter.wrapping_add(((mini as u32) >> 16) as u16 & 0x7fff)
        } else {
            counter.wrapping_add(1)
        };
        s.index = i + 1;
        s.left -= 1;
        s.compressed += 1;
        let slot = (self.ci & self.mask) as usize * cqe::LEN;
        self.ring
            .mem
            .write_u8(slot + cqe::off::OP_OWN, cqe::INITIAL_OP_OWN);
        self.ci = self.ci.wrapping_add(1);
        self.polled += 1;
        (mini, counter)
    }
}
