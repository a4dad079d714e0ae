//! The transmit ring of one SQ (PRM "Send Queue"; the WQE segments of
//! [`crate::wqe`]).
//!
//! Ring: 2^log_size WQEBBs of 64 bytes; a frame is one WQE of one or more
//! WQEBBs (control segment, Ethernet segment with the inline headers the
//! part requires, one data segment with the reserved lkey). The producer
//! counter `pc` counts WQEBBs (16 bits, as the doorbell record and
//! `wqe_index` hold it). [`Sq::post`] writes WQEs only;
//! [`Sq::ring_doorbell`] publishes a whole batch with one doorbell-record
//! write and one 64-bit UAR write (offset 0x800: the first 8 bytes of the
//! batch's last control segment). A completion is requested every
//! `cq_every` WQEs and on the last WQE of each batch, so every buffer comes
//! back; a requester CQE with `wqe_counter` c completes every WQE up to c.
//! On parts with enhanced multi-packet send, a burst ([`Sq::post_burst`])
//! is one WQE per session of many frames instead ([`empw`]); on
//! ConnectX-4 Lx, one legacy MPW WQE per run of equal-length frames
//! ([`mpw`]).

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use cxos_drivers::{DmaAddr, DmaAlloc, DmaRegion, Mmio, Platform, Region};

use super::Sqn;
use crate::cqe::Cqe;
use crate::frame::{self, Geometry, Net, Transport};
use crate::pd::Lkey;
use crate::uar::Uar;
use crate::wq::Ring;
use crate::wqe::{self, CsFlags, InlineMode, MAX_HEADERS, WQEBB, ctrl};

mod burst;
mod empw;
mod mpw;
mod session;
pub use burst::Burst;
pub use empw::MAX_INLINE as EMPW_MAX_INLINE;

/// UAR page offset of the send doorbell.
pub const UAR_SEND_DOORBELL: usize = 0x800;

/// Why a frame was not posted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PostError {
    /// No free WQE: reclaim completions first.
    Full,
    /// Zero length, past the buffer, or longer than the queue takes.
    BadLength,
    /// LSO asked for a frame that is not TCP, has no payload, or MSS 0.
    BadLso,
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PostError::Full => "send queue full",
            PostError::BadLength => "bad frame length",
            PostError::BadLso => "frame not segmentable as asked (LSO)",
        })
    }
}

impl core::error::Error for PostError {}

/// Offloads one WQE asks for (the Ethernet segment's fields).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TxOpts {
    /// Checksums: `L3_CSUM` for IPv4, `L4_CSUM` for TCP/UDP, as the
    /// frame's headers say.
    pub csum: bool,
    /// 802.1Q TCI to insert.
    pub vlan: Option<u16>,
    /// LSO with this MSS (opcode LSO, every header inlined; implies the
    /// checksums).
    pub mss: Option<u16>,
    /// LSO: the header length the caller computed (0: not checked); a
    /// mismatch with the headers refuses the frame.
    pub header_len: u16,
    /// The frame's headers as the caller knows them (none: parsed from
    /// the frame when needed).
    pub geometry: Option<Geometry>,
}

/// A completion the device reported that cannot be right.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BadCompletion {
    /// `wqe_counter` outside the WQEs in flight.
    WqeCounter { counter: u16, cc: u16, pc: u16 },
}

impl fmt::Display for BadCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BadCompletion::WqeCounter { counter, cc, pc } => write!(
                f,
                "completion for WQE {counter} not in flight (cc {cc}, pc {pc})"
            ),
        }
    }
}

impl core::error::Error for BadCompletion {}

/// Transmit counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SqStats {
    pub packets: u64,
    pub bytes: u64,
    pub doorbells: u64,
    pub completions: u64,
    pub full: u64,
    pub errors: u64,
    pub recoveries: u64,
    /// WQEs asking for checksums, VLAN insertion, LSO.
    pub csum: u64,
    pub vlan_insert: u64,
    pub lso: u64,
    /// Doorbells written as BlueFlame writes.
    pub bf_doorbells: u64,
}

/// Largest frame one data segment carries here (jumbo frames included).
pub const MAX_FRAME: usize = 16 * 1024;
/// Largest LSO frame: Ethernet header with a tag plus the largest IP
/// packet (the IPv4 total / IPv6 payload length is 16 bits).
pub const MAX_LSO_FRAME: usize = 18 + 65535;
/// Largest WQE the driver writes: control, Ethernet segment, every header
/// inline plus a VLAN tag, one data segment.
const MAX_WQE: usize = (2 + (MAX_HEADERS + 4).div_ceil(wqe::DS) + 1) * wqe::DS;
const _: () = assert!(MAX_WQE <= 4 * WQEBB);
const MAX_WQE_BUF: usize = MAX_WQE.div_ceil(WQEBB) * WQEBB;

/// What a signalled WQE completes, kept at its first basic block until
/// its CQE arrives: where it ends and where the buffer counters stand
/// after it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
struct Signalled {
    /// `wqe_index` of the WQE; `valid` false once consumed or reset.
    counter: u16,
    bufs_end: u16,
    lso_end: u16,
    nbb: u8,
    valid: bool,
}

/// The counters of the packet path, together in one cache line: the
/// producer and consumer counters of the ring (basic blocks) and of the
/// two transmit buffer FIFOs, the completion countdown, and what every
/// WQE repeats (SQN, lkey).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    pc: u16,
    cc: u16,
    mask: u16,
    /// `pc` at the last doorbell: WQEs past it are not published yet.
    rung: u16,
    /// First basic block of the newest WQE.
    last_start: u16,
    /// The first 8 bytes of the newest WQE's control segment: what the
    /// send doorbell writes (kept, not read back from the ring).
    last_head: u64,
    /// WQEs until the next one that asks for a completion.
    sig_left: u16,
    cq_every: u16,
    /// MTU buffers: taken in order (`bufs_pc`), given back in order
    /// (`bufs_cc`) when the WQEs that sent them complete.
    bufs_pc: u16,
    bufs_cc: u16,
    bufs: u16,
    lso_pc: u16,
    lso_cc: u16,
    lso: u16,
    /// `sqn << 8`, as `qpn_ds` holds it.
    sqn8: u32,
    lkey: u32,
}

/// A transmit buffer reserved by [`Sq::reserve`]: its index in its pool,
/// and the promise that the ring has room for a one-block WQE (the
/// written-wide ones; a larger WQE checks its own room and may still be
/// refused as [`PostError::Full`]). Consumed by [`Sq::post_with`];
/// dropping it unused reserves nothing.
#[derive(Debug)]
#[must_use]
pub struct Reserved {
    index: u16,
    lso: bool,
}

impl Reserved {
    /// Index of the buffer in its pool (MTU or LSO buffers).
    pub fn index(&self) -> usize {
        self.index as usize
    }

    pub fn is_lso(&self) -> bool {
        self.lso
    }
}

/// The transmit ring of one SQ, the bookkeeping of its transmit buffers
/// (which the owner keeps: two pools, used in order), and what its
/// doorbell needs (an MMIO handle and its UAR's BAR0 offset).
#[derive(Debug)]
pub struct Sq<P: Platform> {
    pub sqn: Sqn,
    c: Counters,
    ring: Ring<Region<P>>,
    signalled: Vec<Signalled>,
    mmio: P::Mmio,
    uar_base: usize,
    inline: InlineMode,
    /// Bursts as eMPW sessions, inlining frames up to this long.
    empw: Option<usize>,
    /// The sessions are legacy MPW ([`SqConfig::legacy_mpw`]).
    legacy_mpw: bool,
    /// BlueFlame buffer size (0: off) and the offset of the buffer the
    /// next doorbell writes (0 or `bf`, alternating).
    bf: usize,
    bf_offset: usize,
    pub stats: SqStats,
}

/// How an [`Sq`] is set up.
#[derive(Clone, Copy, Debug)]
pub struct SqConfig {
    pub uar: Uar,
    pub inline: InlineMode,
    /// A completion every this many WQEs (and at every doorbell).
    pub cq_every: u16,
    pub lkey: Lkey,
    /// Buffers in the MTU pool and the LSO pool (each at most the ring's
    /// entries; the MTU pool a power of two).
    pub bufs: u16,
    pub lso_bufs: u16,
    /// Post bursts as enhanced multi-packet send sessions, inlining the
    /// frames up to this many bytes (the part must have
    /// `enhanced_multi_pkt_send_wqe`; ignored unless `inline` is
    /// [`InlineMode::None`]).
    pub empw: Option<u16>,
    /// The sessions of [`SqConfig::empw`] are legacy multi-packet send
    /// WQEs (the part has `multi_pkt_send_wqe`, not the enhanced form;
    /// the SQ was created with `allow_multi_pkt_send_wqe`): equal-length
    /// frames, no VLAN insert, whatever the inline-header rule.
    pub legacy_mpw: bool,
    /// BlueFlame buffer size (PRM "BlueFlame"; 0: plain doorbells): a
    /// batch of at most [`BF_MAX_BLOCKS`] basic blocks has its last WQE's
    /// first block written into the UAR's BlueFlame buffers, used in turn.
    pub bf: u16,
}

/// Batches up to this many basic blocks ring with BlueFlame (a latency
/// trick: a large batch gains nothing from saving the device one fetch).
pub const BF_MAX_BLOCKS: u16 = 4;

impl<P: Platform> Sq<P> {
    /// A ring of 2^log_size WQEBBs with its doorbell record.
    pub fn alloc_ring<A: DmaAlloc<Region = Region<P>>>(
        p: &A,
        log_size: u8,
    ) -> Result<Ring<Region<P>>, crate::Error> {
        Ring::alloc(p, WQEBB << log_size)
    }

    pub fn new(
        sqn: Sqn,
        ring: Ring<Region<P>>,
        log_size: u8,
        cfg: SqConfig,
        mmio: P::Mmio,
    ) -> Self {
        let n = 1usize << log_size;
        let cq_every = cfg.cq_every.clamp(1, n as u16);
        Self {
            sqn,
            c: Counters {
                mask: (n - 1) as u16,
                sig_left: cq_every,
                cq_every,
                bufs: prev_power_of_two(cfg.bufs.min(n as u16)),
                lso: cfg.lso_bufs.min(n as u16),
                sqn8: sqn.0 << 8,
                lkey: cfg.lkey.0,
                ..Counters::default()
            },
            ring,
            signalled: vec![Signalled::default(); n],
            mmio,
            uar_base: cfg.uar.bar_offset(),
            inline: cfg.inline,
            empw: cfg
                .empw
                .filter(|_| cfg.inline == InlineMode::None || cfg.legacy_mpw)
                .map(usize::from),
            legacy_mpw: cfg.legacy_mpw,
            bf: usize::from(cfg.bf),
            bf_offset: 0,
            stats: SqStats::default(),
        }
    }

    pub fn entries(&self) -> usize {
        self.c.mask as usize + 1
    }

    /// Basic blocks posted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.c.pc.wrapping_sub(self.c.cc) as usize
    }

    /// Free basic blocks.
    pub fn free(&self) -> usize {
        self.entries() - self.in_flight()
    }

    /// Free buffers of the MTU pool and of the LSO pool.
    pub fn free_buffers(&self) -> usize {
        (self.c.bufs - self.c.bufs_pc.wrapping_sub(self.c.bufs_cc)) as usize
    }

    pub fn free_lso_buffers(&self) -> usize {
        (self.c.lso - self.c.lso_pc.wrapping_sub(self.c.lso_cc)) as usize
    }

    pub fn producer_counter(&self) -> u16 {
        self.c.pc
    }

    pub fn consumer_counter(&self) -> u16 {
        self.c.cc
    }

    pub fn inline_mode(&self) -> InlineMode {
        self.inline
    }

    /// A completion is requested every this many WQEs.
    pub fn cq_every(&self) -> u16 {
        self.c.cq_every
    }

    /// Request a completion every `n` WQEs from now on (clamped to the
    /// ring). What is posted and not yet published is published first, so
    /// the countdown restarts on a WQE boundary with every buffer covered
    /// by a signalled WQE.
    pub fn set_cq_every(&mut self, n: u16) {
        self.ring_doorbell();
        let n = n.clamp(1, self.entries() as u16);
        self.c.cq_every = n;
        self.c.sig_left = n;
    }

    /// BlueFlame doorbells with buffers of `size` bytes (0: off; the part's
    /// [`crate::control::DataPathCaps::bf_size`]); from the next doorbell on.
    pub fn set_blueflame(&mut self, size: u16) {
        self.bf = if usize::from(size) >= WQEBB {
            usize::from(size)
        } else {
            0
        };
        self.bf_offset = 0;
    }

    /// Whether doorbells of small batches are BlueFlame writes.
    pub fn blueflame(&self) -> bool {
        self.bf != 0
    }

    /// Post bursts as eMPW sessions inlining frames up to `inline` bytes
    /// (`None`: one WQE per frame); as [`SqConfig::empw`], only where no
    /// inline-header rule holds (or the sessions are legacy MPW).
    /// Sessions never outlive a burst, so this takes effect with the next
    /// one.
    pub fn set_empw(&mut self, inline: Option<u16>) {
        self.empw = inline
            .filter(|_| self.inline == InlineMode::None || self.legacy_mpw)
            .map(usize::from);
    }

    /// Whether the sessions are legacy MPW WQEs.
    pub fn legacy_mpw(&self) -> bool {
        self.legacy_mpw
    }

    /// The next buffer of the MTU pool (`lso`: of the LSO pool), if one is
    /// free and the ring has room for one basic block.
    #[inline(always)]
    pub fn reserve(&mut self, lso: bool) -> Option<Reserved> {
        let c = &self.c;
        let (pc, cc, n) = if lso {
            (c.lso_pc, c.lso_cc, c.lso)
        } else {
            (c.bufs_pc, c.bufs_cc, c.bufs)
        };
        if pc.wrapping_sub(cc) >= n || c.pc.wrapping_sub(c.cc) > c.mask {
            self.stats.full += 1;
            return None;
        }
        // The MTU pool is a power of two (a mask, no division).
        let index = if lso { pc % n } else { pc & (n - 1) };
        Some(Reserved { index, lso })
    }

    /// Write the WQE sending `frame` (plain: no offloads) from the buffer
    /// `r` reserved; see [`Sq::post_with`].
    #[inline]
    pub fn post(&mut self, r: Reserved, frame: &[u8], addr: DmaAddr) -> Result<(), PostError> {
        self.post_with(r, frame, addr, TxOpts::default())
    }

    /// Write the WQE sending `frame`, which lies at device address `addr`
    /// in the buffer `r` reserved (software owns it: the frame is read
    /// here in place for the headers a WQE inlines), with offloads:
    /// checksums, VLAN insertion, LSO (an LSO buffer's frame). Not visible
    /// to the device before [`Sq::ring_doorbell`]; the buffer comes back
    /// when a completion covers the WQE.
    ///
    /// The WQE inlines what the part's inline rule requires (all headers
    /// for LSO; the first [`wqe::L2_INLINE`] bytes when the rule is the L2
    /// header), with the VLAN tag written into the inlined header when
    /// there is one (the Ethernet segment's `insert` shares its bytes with
    /// `inline_hdr`), else inserted by the `insert` field. The headers
    /// come from `opts.geometry` when the caller knows them, else from
    /// parsing `frame`, and only when something needs them.
    ///
    /// The common WQEs (no inlining, or the L2 rule's 18 bytes; no LSO)
    /// are one basic block built in registers and stored as 8-byte words
    /// ([`DmaRegion::write_be64s`]); the others are assembled in a
    /// staging buffer first.
    #[inline(always)]
    pub fn post_with(
        &mut self,
        r: Reserved,
        frame: &[u8],
        addr: DmaAddr,
        opts: TxOpts,
    ) -> Result<(), PostError> {
        let len = frame.len();
        if opts.mss.is_some() || r.lso {
            if opts.mss.is_none() || !r.lso {
                return Err(PostError::BadLso);
            }
            return self.post_staged(frame, addr, opts);
        }
        if len == 0 || len > MAX_FRAME {
            return Err(PostError::BadLength);
        }
        let cs = if opts.csum {
            let g = match opts.geometry {
                Some(g) => g,
                None => frame::parse(frame),
            };
            CsFlags::of(g.net == Net::Ipv4, g.transport != Transport::Other)
        } else {
            CsFlags::of(false, false)
        };
        match self.inline {
            InlineMode::None => self.post_bare(len, addr, cs, opts.vlan),
            InlineMode::L2 => match inline_l2(frame, opts.vlan) {
                Some(h) => self.post_l2(len, addr, cs, opts.vlan, h),
                None => return self.post_staged(frame, addr, opts),
            },
            InlineMode::Ip | InlineMode::TcpUdp => return self.post_staged(frame, addr, opts),
        }
        Ok(())
    }

    /// A WQE with nothing inline: control, Ethernet segment (checksum
    /// flags, the tag in `insert`), one data segment; 48 bytes of one
    /// basic block.
    #[inline(always)]
    fn post_bare(&mut self, len: usize, addr: DmaAddr, cs: CsFlags, vlan: Option<u16>) {
        let c = &self.c;
        let head = wqe::ctrl_head_of(c.pc, ctrl::OPCODE_SEND, c.sqn8, wqe::send_ds(0, true));
        let insert = match vlan {
            Some(tci) => wqe::eth_insert_word(tci),
            None => 0,
        };
        let signalled = self.c.sig_left == 1;
        let w = [
            head,
            wqe::ctrl_flags_word(signalled),
            wqe::eth_flags_word(cs, 0),
            insert,
            wqe::data_word(len as u32, self.c.lkey),
            addr.get(),
        ];
        let at = (self.c.pc & self.c.mask) as usize * WQEBB;
        self.ring.mem.write_be64s(at, &w);
        self.posted(head, 1, len, false);
        self.count_offloads(cs, vlan.is_some());
    }

    /// A WQE with the L2 rule's 18 inline bytes `h` (the frame's first 18,
    /// or its first 14 with the tag after the MACs): control, Ethernet
    /// segment with the inline bytes running into the next 16, one data
    /// segment for the rest; one full basic block.
    #[inline(always)]
    fn post_l2(&mut self, len: usize, addr: DmaAddr, cs: CsFlags, vlan: Option<u16>, h: InlineL2) {
        let c = &self.c;
        let ds = wqe::send_ds(wqe::L2_INLINE, true);
        let head = wqe::ctrl_head_of(c.pc, ctrl::OPCODE_SEND, c.sqn8, ds);
        let signalled = c.sig_left == 1;
        let w = [
            head,
            wqe::ctrl_flags_word(signalled),
            wqe::eth_flags_word(cs, 0),
            h.words[0],
            h.words[1],
            h.words[2],
            wqe::data_word((len - h.consumed) as u32, c.lkey),
            addr.offset(h.consumed).get(),
        ];
        let at = (c.pc & c.mask) as usize * WQEBB;
        self.ring.mem.write_be64s(at, &w);
        self.posted(head, 1, len, false);
        self.count_offloads(cs, vlan.is_some());
    }

    #[inline(always)]
    fn count_offloads(&mut self, cs: CsFlags, vlan: bool) {
        if !cs.is_empty() {
            self.stats.csum += 1;
        }
        if vlan {
            self.stats.vlan_insert += 1;
        }
    }

    /// Every other WQE (LSO, inline rules past L2, short frames): built in
    /// a staging buffer by the segment writers, then copied to the ring
    /// block by block (a WQE of several blocks wraps around the ring's
    /// end like the device's fetch does).
    #[inline(never)]
    fn post_staged(&mut self, frame: &[u8], addr: DmaAddr, opts: TxOpts) -> Result<(), PostError> {
        let len = frame.len();
        let lso = opts.mss.is_some();
        let max = if lso { MAX_LSO_FRAME } else { MAX_FRAME };
        if len == 0 || len > max {
            return Err(PostError::BadLength);
        }
        let offload = opts.csum || lso;
        let needs_headers = offload
            || matches!(self.inline, InlineMode::Ip | InlineMode::TcpUdp)
            || (opts.vlan.is_some() && self.inline != InlineMode::None);
        let g = match (needs_headers, opts.geometry) {
            (false, _) => Geometry::l2_only(len),
            (true, Some(g)) => g,
            (true, None) => frame::parse(frame),
        };
        let mut inline = if self.inline == InlineMode::L2 && opts.vlan.is_none() {
            wqe::L2_INLINE.min(len)
        } else {
            self.inline.required(&g, len)
        };
        let cs = CsFlags::of(
            offload && g.net == Net::Ipv4,
            offload && g.transport != Transport::Other,
        );
        let opcode = match opts.mss {
            Some(mss) => {
                let hl = opts.header_len as usize;
                if g.transport != Transport::Tcp
                    || mss == 0
                    || len <= g.headers()
                    || (hl != 0 && hl != g.headers())
                {
                    return Err(PostError::BadLso);
                }
                inline = g.headers();
                ctrl::OPCODE_LSO
            }
            None => ctrl::OPCODE_SEND,
        };
        // A geometry may claim more than the frame or a WQE holds.
        let inline = inline.min(len).min(MAX_HEADERS);
        let in_wqe = wqe::inline_len(inline, opts.vlan.is_some());
        let has_data = len > inline;
        let ds = wqe::send_ds(in_wqe, has_data);
        let nbb = (ds * wqe::DS).div_ceil(WQEBB);
        if nbb > self.free() {
            self.stats.full += 1;
            return Err(PostError::Full);
        }
        let mut w = [0u8; MAX_WQE_BUF];
        let head = wqe::ctrl_head_of(self.c.pc, opcode, self.c.sqn8, ds);
        wqe::write_ctrl(&mut w, head, self.c.sig_left == 1);
        wqe::write_eth(&mut w[wqe::DS..], cs, opts.mss, &frame[..inline], opts.vlan);
        if has_data {
            wqe::write_data(
                &mut w[(ds - 1) * wqe::DS..],
                (len - inline) as u32,
                self.c.lkey,
                addr.offset(inline).get(),
            );
        }
        let mask = self.c.mask as usize;
        let idx = self.c.pc as usize & mask;
        for k in 0..nbb {
            let slot = (idx + k) & mask;
            self.ring
                .mem
                .write_bytes(slot * WQEBB, &w[k * WQEBB..(k + 1) * WQEBB]);
        }
        self.posted(head, nbb as u16, len, lso);
        if lso {
            self.stats.lso += 1;
        }
        self.count_offloads(cs, opts.vlan.is_some());
        Ok(())
    }

    /// Book a WQE of `nbb` basic blocks at `pc` (control segment head
    /// `head`) sending `len` bytes from
    /// the next buffer of its pool; a signalled one is remembered for its
    /// completion.
    #[inline(always)]
    fn posted(&mut self, head: u64, nbb: u16, len: usize, lso: bool) {
        let c = &mut self.c;
        let start = c.pc;
        c.last_start = start;
        c.last_head = head;
        c.pc = start.wrapping_add(nbb);
        if lso {
            c.lso_pc = c.lso_pc.wrapping_add(1);
        } else {
            c.bufs_pc = c.bufs_pc.wrapping_add(1);
        }
        c.sig_left -= 1;
        if c.sig_left == 0 {
            self.signal(start, nbb);
        }
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
    }

    /// The WQE at `start` (`nbb` blocks, the newest) asks for a completion:
    /// remember what it completes and restart the countdown.
    #[cold]
    fn signal(&mut self, start: u16, nbb: u16) {
        let c = &mut self.c;
        c.sig_left = c.cq_every;
        self.signalled[(start & c.mask) as usize] = Signalled {
            counter: start,
            bufs_end: c.bufs_pc,
            lso_end: c.lso_pc,
            nbb: nbb as u8,
            valid: true,
        };
    }

    /// Publish every WQE posted since the last call: the last one asks for
    /// a completion (if it did not already), the doorbell record gets the
    /// producer counter, then one 64-bit write to the UAR's send doorbell
    /// (the first 8 bytes of the last control segment), each step ordered
    /// after the one before by its barrier (WQEs and frames -> doorbell
    /// record -> BAR). Nothing to do: no MMIO.
    #[inline]
    pub fn ring_doorbell(&mut self) {
        let c = self.c;
        if c.pc == c.rung {
            return;
        }
        let at = (c.last_start & c.mask) as usize * WQEBB;
        if c.sig_left != c.cq_every {
            self.ring.mem.write_u8(at + ctrl::FM_CE_SE, wqe::SIGNALLED);
            self.signal(c.last_start, c.pc.wrapping_sub(c.last_start));
        }
        let head = c.last_head;
        self.mmio.barrier_before_doorbell_record();
        self.ring.write_dbr(1, c.pc as u32);
        self.mmio.barrier_before_mmio_doorbell();
        let db = self.uar_base + UAR_SEND_DOORBELL + self.bf_offset;
        if self.bf != 0 && c.pc.wrapping_sub(c.rung) <= BF_MAX_BLOCKS {
            self.ring_blueflame(db, at);
        } else {
            self.mmio.bar0_write_be64(db, head);
        }
        self.bf_offset ^= self.bf;
        self.c.rung = c.pc;
        self.stats.doorbells += 1;
    }

    /// The doorbell as a BlueFlame write: the newest WQE's first basic
    /// block (at ring offset `at`, read back as the device would fetch
    /// it, its completion flag included) into the BlueFlame buffer at
    /// BAR0 offset `db`.
    #[cold]
    fn ring_blueflame(&mut self, db: usize, at: usize) {
        let mut w = [0u64; WQEBB / 8];
        self.ring.mem.read_be64s(at, &mut w);
        self.mmio.bar0_write_bf(db, &w);
        self.stats.bf_doorbells += 1;
    }

    /// A requester CQE: every WQE up to and including the signalled one
    /// starting at `wqe_counter` is done, and every buffer they sent is
    /// free again. Returns how many buffers came back. A counter that is
    /// not a signalled WQE in flight (or whose bookkeeping does not fit
    /// what is in flight) is refused and nothing is reclaimed.
    #[inline]
    pub fn complete(&mut self, cqe: &Cqe) -> Result<usize, BadCompletion> {
        self.complete_at(cqe.wqe_counter())
    }

    /// [`Sq::complete`] for the requester CQE with `wqe_counter` `counter`.
    #[inline(always)]
    pub fn complete_at(&mut self, counter: u16) -> Result<usize, BadCompletion> {
        let c = &mut self.c;
        let bad = BadCompletion::WqeCounter {
            counter,
            cc: c.cc,
            pc: c.pc,
        };
        let slot = (counter & c.mask) as usize;
        let Some(s) = self.signalled.get(slot).copied() else {
            return Err(bad);
        };
        let ahead = counter.wrapping_sub(c.cc);
        let end = ahead as u32 + s.nbb as u32;
        let bufs = s.bufs_end.wrapping_sub(c.bufs_cc);
        let lso = s.lso_end.wrapping_sub(c.lso_cc);
        if !s.valid
            || s.counter != counter
            || end > c.pc.wrapping_sub(c.cc) as u32
            || bufs > c.bufs_pc.wrapping_sub(c.bufs_cc)
            || lso > c.lso_pc.wrapping_sub(c.lso_cc)
        {
            return Err(bad);
        }
        c.cc = c.cc.wrapping_add(end as u16);
        c.bufs_cc = s.bufs_end;
        c.lso_cc = s.lso_end;
        self.signalled[slot].valid = false;
        self.stats.completions += 1;
        Ok(bufs as usize + lso as usize)
    }

    /// After the SQ went ERR -> RST: every buffer in flight is free again
    /// and the ring starts over at counter 0, as the device does after
    /// reset. Returns how many buffers came back.
    pub fn reset(&mut self) -> usize {
        let c = &mut self.c;
        let n =
            c.bufs_pc.wrapping_sub(c.bufs_cc) as usize + c.lso_pc.wrapping_sub(c.lso_cc) as usize;
        c.bufs_cc = c.bufs_pc;
        c.lso_cc = c.lso_pc;
        c.pc = 0;
        c.cc = 0;
        c.rung = 0;
        c.last_start = 0;
        c.sig_left = c.cq_every;
        for s in self.signalled.iter_mut() {
            s.valid = false;
        }
        self.mmio.barrier_before_doorbell_record();
        self.ring.write_dbr(1, 0);
        self.stats.recoveries += 1;
        n
    }

    /// A copy of basic block `index` of the ring (for ring dumps and
    /// tests: what the device will read).
    pub fn wqebb(&self, index: u16) -> [u8; WQEBB] {
        let mut w = [0u8; WQEBB];
        let slot = (index & self.c.mask) as usize;
        self.ring.mem.read_bytes(slot * WQEBB, &mut w);
        w
    }

    /// Device addresses of the ring and of its doorbell record.
    pub fn ring_addr(&self) -> (u64, u64) {
        (self.ring.mem.device_addr().get(), self.ring.dbr_addr())
    }

    pub fn dma_bytes(&self) -> usize {
        self.ring.mem.len()
    }

    pub fn into_ring(self) -> Ring<Region<P>> {
        self.ring
    }
}

/// The largest power of two not above `n` (0 for 0).
const fn prev_power_of_two(n: u16) -> u16 {
    if n == 0 {
        0
    } else {
        1 << (15 - n.leading_zeros())
    }
}

/// The L2 rule's 18 inline bytes of one frame as they sit in a WQE from
/// `inline_hdr.sz` on (three 8-byte words: the size and the first two
/// bytes, then sixteen more), and how many frame bytes they consumed.
#[derive(Clone, Copy, Debug)]
struct InlineL2 {
    words: [u64; 3],
    consumed: usize,
}

/// The inline words of `frame` under the L2 rule: its first 18 bytes, or
/// with a tag to insert its MACs, the tag and its ethertype (14 bytes of
/// the frame). `None` when the frame is too short to leave a data segment
/// or already tagged while a tag is asked (the staging path does those).
#[inline(always)]
fn inline_l2(frame: &[u8], vlan: Option<u16>) -> Option<InlineL2> {
    let h: &[u8; wqe::L2_INLINE] = frame.get(..wqe::L2_INLINE)?.try_into().ok()?;
    let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]) as u64;
    let be64 = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let size = (wqe::L2_INLINE as u64) << 16;
    match vlan {
        None if frame.len() > wqe::L2_INLINE => Some(InlineL2 {
            words: [size | be16(0), be64(2), be64(10)],
            consumed: wqe::L2_INLINE,
        }),
        Some(tci) => {
            let et = be16(12) as u16;
            if et == frame::ETHERTYPE_VLAN || et == frame::ETHERTYPE_QINQ {
                return None;
            }
            Some(InlineL2 {
                words: [
                    size | be16(0),
                    be64(2),
                    (be16(10) << 48)
                        | ((frame::ETHERTYPE_VLAN as u64) << 32)
                        | ((tci as u64) << 16)
                        | be16(12),
                ],
                consumed: frame::ETH_HLEN,
            })
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{MockDma, MockPlatform};

    /// An SQ of 2^log entries on a fresh mock; the ring's device address
    /// and its doorbell record's.
    fn new_sq(
        log: u8,
        inline: InlineMode,
        cq_every: u16,
    ) -> (MockPlatform, Sq<MockPlatform>, u64, u64) {
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, log).unwrap();
        let (rbase, dbr) = (ring.mem.device_addr().get(), ring.dbr_addr());
        let cfg = SqConfig {
            uar: Uar(4),
            inline,
            cq_every,
            lkey: Lkey(0x100),
            bufs: 1 << log,
            lso_bufs: 2,
            empw: None,
            legacy_mpw: false,
            bf: 0,
        };
        let q = Sq::<MockPlatform>::new(Sqn(0x0abc), ring, log, cfg, p.clone());
        (p, q, rbase, dbr)
    }

    fn frame(p: &MockPlatform, len: usize) -> MockDma {
        let b = p.dma_alloc(len.max(1)).unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
        b.write_bytes(0, &bytes);
        b
    }

    /// Reserve a buffer and post the first `len` bytes of `buf`, read in
    /// place.
    fn post(sq: &mut Sq<MockPlatform>, buf: &MockDma, len: usize) -> Result<(), PostError> {
        let r = sq.reserve(false).ok_or(PostError::Full)?;
        let addr = buf.device_addr();
        buf.with_bytes(0, len, |f| sq.post(r, f, addr))
    }

    /// Post frame `f` from a fresh buffer with `o` (an LSO buffer when `o`
    /// asks LSO).
    fn post_frame(
        p: &MockPlatform,
        sq: &mut Sq<MockPlatform>,
        f: &[u8],
        o: TxOpts,
    ) -> Result<MockDma, PostError> {
        let b = p.dma_alloc(f.len()).unwrap();
        b.write_bytes(0, f);
        let addr = b.device_addr();
        let r = sq.reserve(o.mss.is_some()).ok_or(PostError::Full)?;
        b.with_bytes(0, f.len(), |fr| sq.post_with(r, fr, addr, o))
            .map(|()| b)
    }

    fn cqe(counter: u16) -> Cqe {
        crate::cqe::build::requester(counter)
    }

    #[test]
    fn wqe_golden_with_l2_inline_and_one_doorbell_per_batch() {
        let (p, mut sq, rbase, dbr) = new_sq(3, InlineMode::L2, 64);
        let buf = frame(&p, 100);
        let baddr = buf.device_addr().get();
        post(&mut sq, &buf, 60).unwrap();
        post(&mut sq, &buf, 100).unwrap();
        // Nothing rung yet.
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 0]);
        assert_eq!(&p.s.borrow().bar0[0x4800..0x4808], &[0; 8]);
        sq.ring_doorbell();
        sq.ring_doorbell(); // empty batch: no MMIO
        assert_eq!(sq.stats.doorbells, 1);
        let w = p.read(rbase + 64, 64);
        #[rustfmt::skip]
        let mut golden = [
            // ctrl: opmod 0, wqe_index 1 [23:8], opcode SEND 0x0a;
            0x00, 0x00, 0x01, 0x0a,
            // sqn 0xabc [31:8], ds 4;
            0x00, 0x0a, 0xbc, 0x04,
            // signature, rsvd, fm_ce_se = CQ_UPDATE (last of batch), imm
            0, 0, 0, 0x08,  0, 0, 0, 0,
            // eth seg: cs_flags 0, mss 0, metadata 0, inline_hdr.sz 18
            // (an L2 header with room for a tag, whatever the ethertype),
            // first two header bytes
            0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0x00, 0x12, 0x00, 0x01,
            // 16 more inline bytes: the segment's end
            2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
            // data seg: byte_count 82, lkey 0x100, addr = buffer + 18
            0x00, 0x00, 0x00, 0x52,  0x00, 0x00, 0x01, 0x00,  0, 0, 0, 0, 0, 0, 0, 0,
        ];
        golden[56..64].copy_from_slice(&(baddr + 18).to_be_bytes());
        assert_eq!(w, golden);
        // First WQE: not signalled (cq_every 8 after clamping, not last of
        // the batch).
        assert_eq!(p.read(rbase + 0x0b, 1), [0]);
        // Doorbell record dword 1 = pc 2; UAR 4 + 0x800 = ctrl bytes 0..8 of
        // the last WQE.
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 2]);
        assert_eq!(
            &p.s.borrow().bar0[0x4800..0x4808],
            &[0x00, 0x00, 0x01, 0x0a, 0x00, 0x0a, 0xbc, 0x04]
        );
    }

    /// BlueFlame (PRM "BlueFlame"): with 256-byte buffers (`log_bf_reg_size`
    /// 9), a one-WQE batch writes the WQE's whole first basic block into
    /// buffer 0 at UAR 4 + 0x800, the next into buffer 1 at + 0x900, then 0
    /// again; a batch of more than `BF_MAX_BLOCKS` blocks rings with the
    /// plain 8 bytes (to the buffer whose turn it is).
    #[test]
    fn blueflame_write_golden_and_alternating_buffers() {
        let (p, mut sq, _, dbr) = new_sq(3, InlineMode::None, 64);
        sq.set_blueflame(256);
        let buf = frame(&p, 64);
        let baddr = buf.device_addr().get();
        post(&mut sq, &buf, 64).unwrap();
        sq.ring_doorbell();
        #[rustfmt::skip]
        let mut golden = [
            // 0x800: ctrl: opmod 0, wqe_index 0 [23:8], opcode SEND 0x0a;
            0x00, 0x00, 0x00, 0x0a,
            // sqn 0xabc [31:8], ds 3;
            0x00, 0x0a, 0xbc, 0x03,
            // signature, rsvd, fm_ce_se = CQ_UPDATE (last of batch), imm
            0, 0, 0, 0x08,  0, 0, 0, 0,
            // 0x810: eth seg: cs_flags 0, mss 0, no inline header
            0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
            // 0x820: data seg: byte_count 64, lkey 0x100, the buffer's address
            0x00, 0x00, 0x00, 0x40,  0x00, 0x00, 0x01, 0x00,  0, 0, 0, 0, 0, 0, 0, 0,
            // 0x830: the rest of the basic block (never written: zero)
            0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
        ];
        golden[40..48].copy_from_slice(&baddr.to_be_bytes());
        assert_eq!(&p.s.borrow().bar0[0x4800..0x4840], &golden);
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 1]);
        assert_eq!((sq.stats.doorbells, sq.stats.bf_doorbells), (1, 1));
        // The next batch: buffer 1, WQE index 1.
        post(&mut sq, &buf, 64).unwrap();
        sq.ring_doorbell();
        assert_eq!(
            &p.s.borrow().bar0[0x4900..0x4908],
            &[0x00, 0x00, 0x01, 0x0a, 0x00, 0x0a, 0xbc, 0x03]
        );
        assert_eq!(&p.s.borrow().bar0[0x4920..0x4924], &[0, 0, 0, 0x40]);
        // A batch of 5 blocks: plain doorbell, buffer 0 again (WQE 6).
        for _ in 0..5 {
            post(&mut sq, &buf, 64).unwrap();
        }
        p.s.borrow_mut().bar0[0x4808..0x4840].fill(0xee);
        sq.ring_doorbell();
        assert_eq!(
            &p.s.borrow().bar0[0x4800..0x4808],
            &[0x00, 0x00, 0x06, 0x0a, 0x00, 0x0a, 0xbc, 0x03]
        );
        assert_eq!(&p.s.borrow().bar0[0x4808..0x4810], &[0xee; 8]);
        assert_eq!((sq.stats.doorbells, sq.stats.bf_doorbells), (3, 2));
        // Off: plain doorbells at 0x800 only.
        sq.set_blueflame(0);
        assert!(!sq.blueflame());
    }

    #[test]
    fn no_inline_wqe_golden_and_completion_every_n() {
        let (p, mut sq, rbase, _) = new_sq(3, InlineMode::None, 2);
        let buf = frame(&p, 64);
        for _ in 0..3 {
            post(&mut sq, &buf, 64).unwrap();
        }
        #[rustfmt::skip]
        let mut golden = [
            // ctrl: wqe_index 0, SEND; sqn 0xabc, ds 3; not signalled
            0x00, 0x00, 0x00, 0x0a,  0x00, 0x0a, 0xbc, 0x03,  0, 0, 0, 0,  0, 0, 0, 0,
            // eth seg: nothing inline, no flags
            0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
            // data seg: byte_count 64, lkey 0x100, the buffer's address
            0, 0, 0, 0x40,  0, 0, 0x01, 0x00,  0, 0, 0, 0, 0, 0, 0, 0,
        ];
        golden[40..48].copy_from_slice(&buf.device_addr().get().to_be_bytes());
        assert_eq!(p.read(rbase, 48), golden);
        // CE on the 2nd WQE (every 2), not the 1st or the 3rd (yet).
        assert_eq!(p.read(rbase + 64 + 0x0b, 1), [8]);
        assert_eq!(p.read(rbase + 128 + 0x0b, 1), [0]);
        sq.ring_doorbell();
        assert_eq!(p.read(rbase + 128 + 0x0b, 1), [8], "last of batch");
    }

    #[test]
    fn completions_free_buffers_in_order_and_bogus_counters_are_refused() {
        let (p, mut sq, _, _) = new_sq(3, InlineMode::L2, 1);
        let buf = frame(&p, 60);
        // One-block WQEs: all 8 blocks (and buffers) in flight.
        for _ in 0..8 {
            post(&mut sq, &buf, 60).unwrap();
        }
        assert!(sq.reserve(false).is_none());
        assert_eq!(sq.stats.full, 1);
        let jumbo = vec![0u8; MAX_FRAME + 1];
        let r = sq.reserve(false);
        assert!(r.is_none(), "still full");
        sq.complete(&cqe(0)).unwrap();
        let r = sq.reserve(false).unwrap();
        assert_eq!(
            sq.post(r, &jumbo, buf.device_addr()),
            Err(PostError::BadLength)
        );
        assert_eq!(post(&mut sq, &buf, 0), Err(PostError::BadLength));
        assert_eq!(sq.free_buffers(), 1);
        assert_eq!(sq.complete(&cqe(2)), Ok(2));
        assert_eq!(sq.free_buffers(), 3);
        // A counter beyond what is in flight, an old one, one already
        // completed: refused, nothing reclaimed.
        assert!(sq.complete(&cqe(9)).is_err());
        assert!(sq.complete(&cqe(1)).is_err(), "old");
        assert!(sq.complete(&cqe(2)).is_err(), "again");
        assert_eq!(sq.in_flight(), 5);
        // A two-block WQE (a tag inserted into an already tagged frame's
        // inlined header) checks its own room: 3 free blocks, then 1.
        let mut tagged: Vec<u8> = (0..60u8).collect();
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        let tag = TxOpts {
            vlan: Some(7),
            ..TxOpts::default()
        };
        post_frame(&p, &mut sq, &tagged, tag).unwrap();
        assert_eq!(sq.free(), 1);
        assert_eq!(
            post_frame(&p, &mut sq, &tagged, tag).err(),
            Some(PostError::Full)
        );
        assert_eq!((sq.in_flight(), sq.free_buffers()), (7, 2), "nothing taken");
        // Reset hands back the rest and restarts at 0.
        assert_eq!(sq.reset(), 6);
        assert_eq!(sq.free_buffers(), 8);
        assert_eq!((sq.producer_counter(), sq.in_flight()), (0, 0));
        assert!(sq.complete(&cqe(5)).is_err(), "nothing in flight");
    }

    #[test]
    fn selective_completions_reclaim_everything_up_to_the_counter() {
        let (p, mut sq, rbase, _) = new_sq(4, InlineMode::None, 4);
        let buf = frame(&p, 60);
        for _ in 0..10 {
            post(&mut sq, &buf, 60).unwrap();
        }
        sq.ring_doorbell();
        // Signalled: 3, 7 (every 4) and 9 (the last of the batch).
        let ce: Vec<u8> = (0..10)
            .map(|i| p.read(rbase + i * 64 + 0x0b, 1)[0])
            .collect();
        assert_eq!(ce, [0, 0, 0, 8, 0, 0, 0, 8, 0, 8]);
        // An unsignalled WQE has nothing to complete.
        assert!(sq.complete(&cqe(5)).is_err());
        assert_eq!(sq.complete(&cqe(3)), Ok(4));
        assert_eq!(sq.complete(&cqe(7)), Ok(4));
        assert_eq!(sq.complete(&cqe(9)), Ok(2));
        assert_eq!((sq.in_flight(), sq.free_buffers()), (0, 16));
        assert_eq!(sq.stats.completions, 3);
    }

    #[test]
    fn counters_wrap_at_16_bits() {
        let (p, mut sq, _, _) = new_sq(2, InlineMode::None, 1);
        let buf = frame(&p, 60);
        for _ in 0..70_000u32 {
            post(&mut sq, &buf, 60).unwrap();
            sq.ring_doorbell();
            let c = sq.producer_counter().wrapping_sub(1);
            assert_eq!(sq.complete(&cqe(c)), Ok(1));
        }
        assert_eq!(sq.stats.packets, 70_000);
        assert_eq!(sq.free_buffers(), 4);
    }

    /// Ethernet + IPv4 (20) + TCP (20) or UDP (8), `payload` bytes, each
    /// byte its index (headers overwritten).
    fn ip_frame(v6: bool, udp: bool, payload: usize) -> Vec<u8> {
        let l3 = if v6 { 40 } else { 20 };
        let l4 = if udp { 8 } else { 20 };
        let mut f: Vec<u8> = (0..14 + l3 + l4 + payload).map(|i| i as u8).collect();
        f[12..14].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        let proto = if udp { 17 } else { 6 };
        if v6 {
            f[14] = 0x60;
            f[14 + 6] = proto;
        } else {
            f[14] = 0x45;
            f[14 + 6..14 + 8].copy_from_slice(&[0x40, 0]);
            f[14 + 9] = proto;
        }
        if !udp {
            f[14 + l3 + 12] = 0x50;
        }
        f
    }

    #[test]
    fn checksum_flags_and_the_exact_inline_amount_of_every_mode() {
        let csum = TxOpts {
            csum: true,
            ..TxOpts::default()
        };
        // (mode, frame, inline bytes, cs_flags)
        let v4tcp = ip_frame(false, false, 40);
        let v6udp = ip_frame(true, true, 40);
        let mut l2only = v4tcp.clone();
        l2only[12..14].copy_from_slice(&[0x88, 0xb5]);
        // IHL 15 (60-byte IPv4 header), TCP data offset 15 (60 bytes).
        let mut long: Vec<u8> = (0..14 + 60 + 60 + 30).map(|i| i as u8).collect();
        long[12..14].copy_from_slice(&[0x08, 0x00]);
        long[14] = 0x4f;
        long[14 + 6..14 + 8].copy_from_slice(&[0x40, 0]);
        long[14 + 9] = 6;
        long[74 + 12] = 0xf0;
        let cases = [
            (InlineMode::None, &v4tcp, 0, 0xc0),
            // The L2 rule inlines 18 bytes (a header with a tag) whatever
            // the frame.
            (InlineMode::L2, &v4tcp, 18, 0xc0),
            (InlineMode::Ip, &v4tcp, 34, 0xc0),
            (InlineMode::TcpUdp, &v4tcp, 54, 0xc0),
            // IPv6: no L3 checksum, L4 (UDP) only.
            (InlineMode::TcpUdp, &v6udp, 62, 0x80),
            (InlineMode::Ip, &v6udp, 54, 0x80),
            // Not IP: nothing to checksum, L2 is all any mode needs.
            (InlineMode::TcpUdp, &l2only, 14, 0x00),
            // Headers past the first 64 bytes (IPv4 and TCP options).
            (InlineMode::TcpUdp, &long, 134, 0xc0),
            (InlineMode::Ip, &long, 74, 0xc0),
        ];
        for (mode, f, inline, cs) in cases {
            let (p, mut sq, rbase, _) = new_sq(3, mode, 1);
            let b = post_frame(&p, &mut sq, f, csum).unwrap();
            let w = p.read(rbase, 256);
            let ctx = alloc::format!("{mode:?} inline {inline}");
            // eth seg at 0x10: cs_flags at +4, inline_hdr.sz at +0x0c.
            assert_eq!(w[0x14], cs, "{ctx}");
            assert_eq!(&w[0x1c..0x1e], &(inline as u16).to_be_bytes(), "{ctx}");
            assert_eq!(&w[0x1e..0x1e + inline], &f[..inline], "{ctx}");
            // ds: ctrl + eth + inline past 2 bytes in 16-byte units + data.
            let ds = 2 + inline.saturating_sub(2).div_ceil(16) + 1;
            assert_eq!(w[7] as usize, ds, "{ctx}");
            let d = (ds - 1) * 16;
            assert_eq!(
                &w[d..d + 4],
                &((f.len() - inline) as u32).to_be_bytes(),
                "{ctx}"
            );
            let addr = b.device_addr().get() + inline as u64;
            assert_eq!(&w[d + 8..d + 16], &addr.to_be_bytes(), "{ctx}");
            assert_eq!(
                sq.producer_counter() as usize,
                (ds * 16).div_ceil(64),
                "{ctx}"
            );
        }
        // Without the csum request: no flags.
        let (p, mut sq, rbase, _) = new_sq(3, InlineMode::L2, 1);
        post_frame(&p, &mut sq, &v4tcp, TxOpts::default()).unwrap();
        assert_eq!(p.read(rbase + 0x14, 1), [0]);
    }

    #[test]
    fn the_callers_geometry_is_used_as_given_and_clamped() {
        let f = ip_frame(false, false, 40);
        let (p, mut sq, rbase, _) = new_sq(4, InlineMode::TcpUdp, 1);
        // The caller says IPv4 + UDP (8): inline 14 + 20 + 8, L3 and L4
        // flags; the frame (TCP) is not parsed.
        let said = Geometry {
            l2: 14,
            net: Net::Ipv4,
            l3: 20,
            transport: Transport::Udp,
            l4: 8,
        };
        let o = TxOpts {
            csum: true,
            geometry: Some(said),
            ..TxOpts::default()
        };
        post_frame(&p, &mut sq, &f, o).unwrap();
        let w = p.read(rbase, 64);
        assert_eq!((w[0x14], &w[0x1c..0x1e]), (0xc0, &[0u8, 42][..]));
        // Lengths past the frame and past any WQE: clamped to the frame.
        let huge = Geometry {
            l2: 200,
            l3: 200,
            l4: 200,
            ..said
        };
        let o = TxOpts {
            geometry: Some(huge),
            ..o
        };
        post_frame(&p, &mut sq, &f[..60], o).unwrap();
        // (The first WQE took two basic blocks.)
        let w = p.read(rbase + 2 * 64, 64);
        assert_eq!(&w[0x1c..0x1e], &[0, 60]);
        // Not IP (the caller's word): no checksum flags.
        let o = TxOpts {
            geometry: Some(Geometry::l2_only(f.len())),
            ..o
        };
        post_frame(&p, &mut sq, &f, o).unwrap();
        let w = p.read(rbase + 4 * 64, 64);
        assert_eq!((w[0x14], &w[0x1c..0x1e]), (0, &[0u8, 14][..]));
    }

    #[test]
    fn vlan_insert_by_the_insert_field_or_in_the_inlined_header() {
        let f = ip_frame(false, true, 20);
        let tag = TxOpts {
            vlan: Some(0x2064),
            ..TxOpts::default()
        };
        // Nothing inline: eth seg insert = type 0x8000 (INSERT_VLAN), TCI.
        let (p, mut sq, rbase, _) = new_sq(3, InlineMode::None, 1);
        post_frame(&p, &mut sq, &f, tag).unwrap();
        assert_eq!(p.read(rbase + 0x1c, 4), [0x80, 0x00, 0x20, 0x64]);
        assert_eq!(p.read(rbase + 7, 1), [3]);
        // L2 inline: 18 bytes = MACs, 0x8100 + TCI, ethertype; the data
        // segment starts at frame byte 14.
        let (p, mut sq, rbase, _) = new_sq(3, InlineMode::L2, 1);
        let b = post_frame(&p, &mut sq, &f, tag).unwrap();
        let w = p.read(rbase, 64);
        assert_eq!(&w[0x1c..0x1e], &[0, 18]);
        assert_eq!(&w[0x1e..0x2a], &f[..12]);
        assert_eq!(&w[0x2a..0x30], &[0x81, 0x00, 0x20, 0x64, 0x08, 0x00]);
        assert_eq!(&w[0x30..0x34], &((f.len() - 14) as u32).to_be_bytes());
        assert_eq!(&w[0x38..0x40], &(b.device_addr().get() + 14).to_be_bytes());
        // A frame already tagged, with a tag to insert: the staged path
        // inlines its whole L2 header (18) plus the new tag.
        let mut tagged = f.clone();
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        tagged[16..18].copy_from_slice(&[0x08, 0x00]);
        post_frame(&p, &mut sq, &tagged, tag).unwrap();
        let w = p.read(rbase + 64, 64);
        assert_eq!(&w[0x1c..0x1e], &[0, 22]);
        assert_eq!(&w[0x2a..0x2e], &[0x81, 0x00, 0x20, 0x64]);
    }

    #[test]
    fn lso_wqe_spans_blocks_wraps_the_ring_and_completes_as_one() {
        let (p, mut sq, rbase, _) = new_sq(3, InlineMode::None, 1);
        let small = frame(&p, 60);
        for _ in 0..3 {
            post(&mut sq, &small, 60).unwrap();
        }
        sq.complete(&cqe(2)).unwrap();
        for _ in 0..4 {
            post(&mut sq, &small, 60).unwrap();
        }
        sq.complete(&cqe(6)).unwrap();
        let f = ip_frame(false, false, 3000);
        let lso = TxOpts {
            mss: Some(1000),
            header_len: 54,
            ..TxOpts::default()
        };
        let b = post_frame(&p, &mut sq, &f, lso).unwrap();
        assert_eq!(sq.free_lso_buffers(), 1);
        // 54 header bytes inline: ds = 2 + ceil(52 / 16) + 1 = 7, two
        // WQEBBs: index 7 and (wrapped) 0.
        assert_eq!(sq.producer_counter(), 9);
        let w = p.read(rbase + 7 * 64, 64);
        assert_eq!(&w[0..8], &[0x00, 0x00, 0x07, 0x0e, 0x00, 0x0a, 0xbc, 0x07]);
        // cs_flags L3|L4, mss 1000 (0x03e8), inline_hdr.sz 54 (0x36).
        assert_eq!(&w[0x14..0x18], &[0xc0, 0x00, 0x03, 0xe8]);
        assert_eq!(&w[0x1c..0x1e], &[0x00, 0x36]);
        assert_eq!(&w[0x1e..0x40], &f[..0x22]);
        let w2 = p.read(rbase, 64);
        assert_eq!(&w2[..20], &f[0x22..54]);
        // Data segment = DS 6 = block 2's bytes 0x20..0x30.
        assert_eq!(&w2[0x20..0x24], &3000u32.to_be_bytes());
        assert_eq!(&w2[0x28..0x30], &(b.device_addr().get() + 54).to_be_bytes());
        // A counter inside the LSO WQE is not a WQE: refused.
        assert!(sq.complete(&cqe(8)).is_err());
        assert_eq!(sq.complete(&cqe(7)), Ok(1));
        assert_eq!((sq.in_flight(), sq.free_lso_buffers()), (0, 2));
        // Not TCP, wrong header length, MSS 0, LSO from an MTU buffer:
        // refused, nothing posted.
        let udp = ip_frame(false, true, 3000);
        assert_eq!(
            post_frame(&p, &mut sq, &udp, lso).err(),
            Some(PostError::BadLso)
        );
        let bad_hl = TxOpts {
            header_len: 50,
            ..lso
        };
        assert_eq!(
            post_frame(&p, &mut sq, &f, bad_hl).err(),
            Some(PostError::BadLso)
        );
        let mss0 = TxOpts {
            mss: Some(0),
            ..lso
        };
        assert_eq!(
            post_frame(&p, &mut sq, &f, mss0).err(),
            Some(PostError::BadLso)
        );
        let r = sq.reserve(false).unwrap();
        assert_eq!(
            sq.post_with(r, &f, b.device_addr(), lso),
            Err(PostError::BadLso)
        );
        assert_eq!(sq.producer_counter(), 9);
        // Both pools run out on their own.
        post_frame(&p, &mut sq, &f, lso).unwrap();
        post_frame(&p, &mut sq, &f, lso).unwrap();
        assert!(sq.reserve(true).is_none());
        assert!(sq.reserve(false).is_some());
        // Reset hands back each buffer once, whatever its WQE's size.
        post_frame(&p, &mut sq, &f[..60], TxOpts::default()).unwrap();
        assert_eq!(sq.reset(), 3);
        assert_eq!((sq.free_buffers(), sq.free_lso_buffers()), (8, 2));
    }
}
