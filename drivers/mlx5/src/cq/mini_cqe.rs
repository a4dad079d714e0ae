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
#[derive(Debug, Default)]
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
    minis: [u64; ARRAY as usize],
    /// Sessions and completions read from them.
    pub sessions: u64,
    pub compressed: u64,
}

/// Completions of a session [`Cq::take_minis`] consumed: mini-CQE words
/// `from..from + n` of [`Cq::minis`] (`byte_cnt` in the low half), the
/// first's `wqe_counter`, whether it is the session's first.
#[derive(Clone, Copy, Debug)]
pub struct Minis {
    pub from: usize,
    pub n: usize,
    pub first: bool,
    pub counter: u16,
}

/// What [`Cq::title_first`] found at the consumer index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Head {
    Empty,
    Session,
    Other,
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
    /// is at the consumer index.
    pub(super) fn start_session(&mut self, tail: u32) {
        let base = (self.ci & self.mask) as usize * cqe::LEN;
        let m = &self.ring.mem;
        let mut w = [0u64; cqe::WORDS];
        m.read_be64s(base, &mut w);
        let title = Cqe::from_words(tail, &w, || m.read_be32(base + cqe::off::QPN));
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

    /// Up to `max` (at least one) next completions of the session
    /// (`in_session`), all of one mini-CQE array, consumed together: the
    /// array read once (one wide load per eight completions). The caller
    /// continues `wqe_counter` from [`Minis::counter`], gives the one
    /// after the last back ([`Cq::set_session_counter`]) and makes the
    /// consumed slots invalid ([`Cq::invalidate`]) before the consumer
    /// index is published.
    #[inline(always)]
    pub fn take_minis(&mut self, max: usize) -> Minis {
        let i = self.session.index;
        if i.is_multiple_of(ARRAY) {
            let at = if i == 0 {
                self.ci.wrapping_add(1)
            } else {
                self.ci
            };
            let base = (at & self.mask) as usize * cqe::LEN;
            self.ring.mem.read_be64s(base, &mut self.session.minis);
        }
        let from = (i % ARRAY) as usize;
        let n = (ARRAY as usize - from)
            .min(self.session.left as usize)
            .min(max.max(1));
        let s = &mut self.session;
        let m = Minis {
            from,
            n,
            first: i == 0,
            counter: s.counter,
        };
        s.index = i + n as u32;
        s.left -= n as u32;
        s.compressed += n as u64;
        self.ci = self.ci.wrapping_add(n as u32);
        self.polled += n as u64;
        m
    }

    /// The words of the mini-CQE array [`Cq::take_minis`] read last.
    #[inline(always)]
    pub fn minis(&self, m: &Minis) -> &[u64] {
        self.session.minis.get(m.from..m.from + m.n).unwrap_or(&[])
    }

    /// The `wqe_counter` of the session's next completion, after
    /// [`Cq::take_minis`].
    #[inline(always)]
    pub fn set_session_counter(&mut self, counter: u16) {
        self.session.counter = counter;
    }

    /// Make the `n` slots from `ci` invalid (`op_own` 0xf1) through one
    /// plain view of them (two at the ring's end): software owns them
    /// until the consumer index is published, and every mini-CQE array
    /// among them was read (an array's last byte is a slot's `op_own`).
    #[inline(always)]
    pub fn invalidate(&self, ci: u32, n: u32) {
        let slot = ci & self.mask;
        let first = n.min(self.mask + 1 - slot);
        let mark = |at: u32, k: u32| {
            self.ring
                .mem
                .with_bytes_mut(at as usize * cqe::LEN, k as usize * cqe::LEN, |b| {
                    for e in b.as_chunks_mut::<{ cqe::LEN }>().0 {
                        e[cqe::off::OP_OWN] = cqe::INITIAL_OP_OWN;
                    }
                })
        };
        mark(slot, first);
        if first < n {
            mark(0, n - first);
        }
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
            self.ring.mem.read_be64s(base, &mut self.session.minis);
        }
        let s = &mut self.session;
        let mini = s.minis[(i % ARRAY) as usize];
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
