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

/// The transmit ring of one SQ, and what its doorbell needs (an MMIO
/// handle and its UAR's BAR0 offset).
#[derive(Debug)]
pub struct Sq<P: Platform> {
    pub sqn: Sqn,
    ring: Ring<Region<P>>,
    log_size: u8,
    pc: u16,
    cc: u16,
    mmio: P::Mmio,
    uar_base: usize,
    inline: InlineMode,
    /// Owner cookie of the buffer each WQE sends and the WQE's basic
    /// block count, at the WQE's first block.
    ids: Vec<u32>,
    nbbs: Vec<u8>,
    /// WQEs since the last one that asks for a completion.
    unsignalled: u16,
    cq_every: u16,
    /// First 8 bytes of the newest control segment and its ring offset.
    last_ctrl: u64,
    last_off: usize,
    /// WQEs written since the last doorbell.
    pending: bool,
    /// Fault injection: corrupt the lkey of the next WQE.
    corrupt_next: bool,
    pub stats: SqStats,
}

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
        uar: Uar,
        inline: InlineMode,
        cq_every: u16,
        mmio: P::Mmio,
    ) -> Self {
        let n = 1usize << log_size;
        Self {
            sqn,
            ring,
            log_size,
            pc: 0,
            cc: 0,
            mmio,
            uar_base: uar.bar_offset(),
            inline,
            ids: vec![0; n],
            nbbs: vec![1; n],
            unsignalled: 0,
            cq_every: cq_every.clamp(1, (n as u16).max(1)),
            last_ctrl: 0,
            last_off: 0,
            pending: false,
            corrupt_next: false,
            stats: SqStats::default(),
        }
    }

    pub fn entries(&self) -> usize {
        1 << self.log_size
    }

    /// WQEs posted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.pc.wrapping_sub(self.cc) as usize
    }

    pub fn free(&self) -> usize {
        self.entries() - self.in_flight()
    }

    pub fn producer_counter(&self) -> u16 {
        self.pc
    }

    pub fn consumer_counter(&self) -> u16 {
        self.cc
    }

    pub fn inline_mode(&self) -> InlineMode {
        self.inline
    }

    /// Fault injection for tests: the next WQE carries a corrupted lkey,
    /// which the device answers with a local protection error CQE.
    pub fn inject_bad_lkey(&mut self) {
        self.corrupt_next = true;
    }

    /// Write the WQE sending `frame`, which lies at device address `addr`
    /// (a transmit buffer software owns: the frame is read here in place
    /// for the headers a WQE inlines); `id` comes back from
    /// [`Sq::complete`] when the device is done with the buffer. Not
    /// visible to the device before [`Sq::ring_doorbell`].
    #[inline]
    pub fn post(
        &mut self,
        frame: &[u8],
        addr: DmaAddr,
        lkey: Lkey,
        id: u32,
    ) -> Result<(), PostError> {
        self.post_with(frame, addr, lkey, id, TxOpts::default())
    }

    /// [`Sq::post`] with offloads: checksums, VLAN insertion, LSO. The
    /// WQE inlines what the part's inline rule requires (all headers for
    /// LSO; the first [`wqe::L2_INLINE`] bytes when the rule is the L2
    /// header), with the VLAN tag written into the inlined header when
    /// there is one (the Ethernet segment's `insert` shares its bytes with
    /// `inline_hdr`), else inserted by the `insert` field. The headers
    /// come from `opts.geometry` when the caller knows them, else from
    /// parsing `frame`, and only when something needs them.
    #[inline]
    pub fn post_with(
        &mut self,
        frame: &[u8],
        addr: DmaAddr,
        lkey: Lkey,
        id: u32,
        opts: TxOpts,
    ) -> Result<(), PostError> {
        let len = frame.len();
        let max = if opts.mss.is_some() {
            MAX_LSO_FRAME
        } else {
            MAX_FRAME
        };
        if len == 0 || len > max {
            return Err(PostError::BadLength);
        }
        let offload = opts.csum || opts.mss.is_some();
        if !offload && opts.vlan.is_none() && self.inline == InlineMode::None {
            return self.post_plain(len, addr, lkey, id);
        }
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
        if self.free() < nbb {
            self.stats.full += 1;
            return Err(PostError::Full);
        }
        let mut w = [0u8; MAX_WQE_BUF];
        let head = wqe::ctrl_head(self.pc, opcode, self.sqn.0, ds);
        wqe::write_ctrl(&mut w, head, self.signal_next());
        wqe::write_eth(&mut w[wqe::DS..], cs, opts.mss, &frame[..inline], opts.vlan);
        if has_data {
            let key = self.next_lkey(lkey);
            wqe::write_data(
                &mut w[(ds - 1) * wqe::DS..],
                (len - inline) as u32,
                key,
                addr.offset(inline).get(),
            );
        }
        let mask = self.entries() - 1;
        let idx = self.pc as usize & mask;
        // A WQE of several basic blocks wraps around the ring's end like
        // the device's WQE fetch does.
        for k in 0..nbb {
            let slot = (idx + k) & mask;
            self.ring
                .mem
                .write_bytes(slot * WQEBB, &w[k * WQEBB..(k + 1) * WQEBB]);
        }
        self.posted(idx, nbb, head, id, len);
        if opts.mss.is_some() {
            self.stats.lso += 1;
        }
        if !cs.is_empty() {
            self.stats.csum += 1;
        }
        if opts.vlan.is_some() {
            self.stats.vlan_insert += 1;
        }
        Ok(())
    }

    /// The common case on parts that need no inlining: control, an empty
    /// Ethernet segment and one data segment in one basic block.
    #[inline]
    fn post_plain(
        &mut self,
        len: usize,
        addr: DmaAddr,
        lkey: Lkey,
        id: u32,
    ) -> Result<(), PostError> {
        if self.free() == 0 {
            self.stats.full += 1;
            return Err(PostError::Full);
        }
        let ds = wqe::send_ds(0, true);
        let mut w = [0u8; WQEBB];
        let head = wqe::ctrl_head(self.pc, ctrl::OPCODE_SEND, self.sqn.0, ds);
        wqe::write_ctrl(&mut w, head, self.signal_next());
        let key = self.next_lkey(lkey);
        wqe::write_data(&mut w[(ds - 1) * wqe::DS..], len as u32, key, addr.get());
        let idx = self.pc as usize & (self.entries() - 1);
        self.ring.mem.write_bytes(idx * WQEBB, &w);
        self.posted(idx, 1, head, id, len);
        Ok(())
    }

    /// Whether the next WQE asks for a completion (every `cq_every`).
    #[inline(always)]
    fn signal_next(&mut self) -> bool {
        self.unsignalled += 1;
        let signalled = self.unsignalled >= self.cq_every;
        if signalled {
            self.unsignalled = 0;
        }
        signalled
    }

    /// The lkey of the next data segment (corrupted once after
    /// [`Sq::inject_bad_lkey`]).
    #[inline(always)]
    fn next_lkey(&mut self, lkey: Lkey) -> u32 {
        let mut key = lkey.0;
        if self.corrupt_next {
            key ^= 0x00ff_ff00;
            self.corrupt_next = false;
        }
        key
    }

    /// Book a WQE of `nbb` basic blocks written at ring index `idx` with
    /// control segment `head`, sending `len` bytes of buffer `id`.
    #[inline(always)]
    fn posted(&mut self, idx: usize, nbb: usize, head: u64, id: u32, len: usize) {
        self.ids[idx] = id;
        self.nbbs[idx] = nbb as u8;
        self.last_ctrl = head;
        self.last_off = idx * WQEBB;
        self.pc = self.pc.wrapping_add(nbb as u16);
        self.pending = true;
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
    }

    /// Publish every WQE posted since the last call: the last one asks for
    /// a completion, the doorbell record gets the producer counter, then
    /// one 64-bit write to the UAR's send doorbell, each step ordered after
    /// the one before by its barrier (WQEs and frames -> doorbell record ->
    /// BAR). Nothing to do: no MMIO.
    #[inline]
    pub fn ring_doorbell(&mut self) {
        if !self.pending {
            return;
        }
        if self.unsignalled != 0 {
            self.ring
                .mem
                .write_u8(self.last_off + ctrl::FM_CE_SE, wqe::SIGNALLED);
            self.unsignalled = 0;
        }
        self.mmio.barrier_before_doorbell_record();
        self.ring.write_dbr(1, self.pc as u32);
        self.mmio.barrier_before_mmio_doorbell();
        self.mmio
            .bar0_write_be64(self.uar_base + UAR_SEND_DOORBELL, self.last_ctrl);
        self.pending = false;
        self.stats.doorbells += 1;
    }

    /// A requester CQE: every WQE up to and including the one starting at
    /// `wqe_counter` is done; `f` gets the owner cookie of each. Returns
    /// how many WQEs completed. A counter that is not the start of a WQE
    /// in flight is refused and nothing is reclaimed.
    #[inline]
    pub fn complete(&mut self, cqe: &Cqe, mut f: impl FnMut(u32)) -> Result<usize, BadCompletion> {
        let bad = BadCompletion::WqeCounter {
            counter: cqe.wqe_counter(),
            cc: self.cc,
            pc: self.pc,
        };
        let ahead = cqe.wqe_counter().wrapping_sub(self.cc) as usize;
        if ahead >= self.in_flight() {
            return Err(bad);
        }
        let mask = self.entries() - 1;
        let mut n = 0;
        let mut at = 0usize;
        loop {
            n += 1;
            if at == ahead {
                break;
            }
            at += self.nbbs[(self.cc as usize + at) & mask].max(1) as usize;
            if at > ahead {
                return Err(bad);
            }
        }
        for _ in 0..n {
            let idx = self.cc as usize & mask;
            f(self.ids[idx]);
            self.cc = self.cc.wrapping_add(self.nbbs[idx].max(1) as u16);
        }
        self.stats.completions += 1;
        Ok(n)
    }

    /// After the SQ went ERR -> RST: hand back every buffer still in flight
    /// (`f` gets each cookie) and start the ring over at counter 0, as the
    /// device does after reset.
    pub fn reset(&mut self, mut f: impl FnMut(u32)) -> usize {
        let mask = self.entries() - 1;
        let mut n = 0;
        while self.cc != self.pc {
            let idx = self.cc as usize & mask;
            f(self.ids[idx]);
            n += 1;
            let step = (self.nbbs[idx].max(1) as u16).min(self.pc.wrapping_sub(self.cc));
            self.cc = self.cc.wrapping_add(step);
        }
        self.pc = 0;
        self.cc = 0;
        self.pending = false;
        self.unsignalled = 0;
        self.mmio.barrier_before_doorbell_record();
        self.ring.write_dbr(1, 0);
        self.stats.recoveries += 1;
        n
    }

    /// A copy of basic block `index` of the ring (for ring dumps and
    /// tests: what the device will read).
    pub fn wqebb(&self, index: u16) -> [u8; WQEBB] {
        let mut w = [0u8; WQEBB];
        let slot = index as usize & (self.entries() - 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockPlatform;

    fn frame(p: &MockPlatform, len: usize) -> crate::mock::MockDma {
        let b = p.dma_alloc(len.max(1)).unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
        b.write_bytes(0, &bytes);
        b
    }

    /// Post the first `len` bytes of `buf`, read in place.
    fn post(
        sq: &mut Sq<MockPlatform>,
        buf: &crate::mock::MockDma,
        len: usize,
        lkey: Lkey,
        id: u32,
    ) -> Result<(), PostError> {
        let addr = buf.device_addr();
        buf.with_bytes(0, len, |f| sq.post(f, addr, lkey, id))
    }

    #[test]
    fn wqe_golden_with_l2_inline_and_one_doorbell_per_batch() {
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 2).unwrap();
        let rbase = ring.mem.device_addr().get();
        let dbr = ring.dbr_addr();
        let mut sq =
            Sq::<MockPlatform>::new(Sqn(0x0abc), ring, 2, Uar(4), InlineMode::L2, 64, p.clone());
        let buf = frame(&p, 100);
        let baddr = buf.device_addr().get();
        post(&mut sq, &buf, 60, Lkey(0x100), 11).unwrap();
        post(&mut sq, &buf, 100, Lkey(0x100), 12).unwrap();
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
        // First WQE: not signalled (cq_every 64, not last of batch).
        assert_eq!(p.read(rbase + 0x0b, 1), [0]);
        // Doorbell record dword 1 = pc 2; UAR 4 + 0x800 = ctrl bytes 0..8 of
        // the last WQE.
        assert_eq!(p.read(dbr + 4, 4), [0, 0, 0, 2]);
        assert_eq!(
            &p.s.borrow().bar0[0x4800..0x4808],
            &[0x00, 0x00, 0x01, 0x0a, 0x00, 0x0a, 0xbc, 0x04]
        );
    }

    #[test]
    fn no_inline_mode_and_completion_every_n() {
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 3).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq =
            Sq::<MockPlatform>::new(Sqn(1), ring, 3, Uar(4), InlineMode::None, 2, p.clone());
        let buf = frame(&p, 64);
        for i in 0..3 {
            post(&mut sq, &buf, 64, Lkey(7), i).unwrap();
        }
        // ds 3: ctrl, eth (inline size 0), data at +0x20.
        let w = p.read(rbase, 64);
        assert_eq!(w[7], 3);
        assert_eq!(&w[0x1c..0x1e], &[0, 0]);
        assert_eq!(&w[0x20..0x28], &[0, 0, 0, 64, 0, 0, 0, 7]);
        // CE on the 2nd WQE (every 2), not the 1st or the 3rd (yet).
        assert_eq!(p.read(rbase + 0x0b, 1), [0]);
        assert_eq!(p.read(rbase + 64 + 0x0b, 1), [8]);
        assert_eq!(p.read(rbase + 128 + 0x0b, 1), [0]);
        sq.ring_doorbell();
        assert_eq!(p.read(rbase + 128 + 0x0b, 1), [8], "last of batch");
    }

    #[test]
    fn completions_reclaim_in_order_and_bogus_counters_are_refused() {
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 2).unwrap();
        let mut sq = Sq::<MockPlatform>::new(Sqn(1), ring, 2, Uar(4), InlineMode::L2, 1, p.clone());
        let buf = frame(&p, 60);
        for i in 0..4 {
            post(&mut sq, &buf, 60, Lkey(7), 100 + i).unwrap();
        }
        assert_eq!(post(&mut sq, &buf, 60, Lkey(7), 0), Err(PostError::Full));
        let jumbo = vec![0u8; MAX_FRAME + 1];
        assert_eq!(
            sq.post(&jumbo, buf.device_addr(), Lkey(7), 0),
            Err(PostError::BadLength)
        );
        assert_eq!(
            post(&mut sq, &buf, 0, Lkey(7), 0),
            Err(PostError::BadLength)
        );
        let mut got = Vec::new();
        let cqe = crate::cqe::build::requester;
        assert_eq!(sq.complete(&cqe(1), |id| got.push(id)), Ok(2));
        assert_eq!(got, [100, 101]);
        // A counter beyond what is in flight (device bug): refused, nothing
        // reclaimed.
        assert!(sq.complete(&cqe(9), |id| got.push(id)).is_err());
        assert!(sq.complete(&cqe(1), |id| got.push(id)).is_err(), "old");
        assert_eq!(sq.in_flight(), 2);
        // Reset hands back the rest and restarts at 0.
        let n = sq.reset(|id| got.push(id));
        assert_eq!(n, 2);
        assert_eq!(got, [100, 101, 102, 103]);
        assert_eq!((sq.producer_counter(), sq.in_flight()), (0, 0));
    }

    #[test]
    fn counters_wrap_at_16_bits() {
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 1).unwrap();
        let mut sq =
            Sq::<MockPlatform>::new(Sqn(1), ring, 1, Uar(4), InlineMode::None, 1, p.clone());
        let buf = frame(&p, 60);
        let mut n = 0u32;
        for i in 0..70_000u32 {
            post(&mut sq, &buf, 60, Lkey(7), i).unwrap();
            sq.ring_doorbell();
            let c = crate::cqe::build::requester(sq.producer_counter().wrapping_sub(1));
            sq.complete(&c, |id| {
                assert_eq!(id, n);
                n += 1;
            })
            .unwrap();
        }
        assert_eq!(n, 70_000);
    }

    #[test]
    fn injected_bad_lkey_hits_exactly_one_wqe() {
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 2).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq =
            Sq::<MockPlatform>::new(Sqn(1), ring, 2, Uar(4), InlineMode::None, 1, p.clone());
        let buf = frame(&p, 60);
        sq.inject_bad_lkey();
        post(&mut sq, &buf, 60, Lkey(0x100), 0).unwrap();
        post(&mut sq, &buf, 60, Lkey(0x100), 1).unwrap();
        assert_ne!(p.read(rbase + 0x24, 4), [0, 0, 1, 0]);
        assert_eq!(p.read(rbase + 64 + 0x24, 4), [0, 0, 1, 0]);
    }

    /// Ethernet + IPv4 (20) + TCP (20) or UDP (8), `payload` bytes, each
    /// byte its index (headers overwritten).
    fn ip_frame(v6: bool, udp: bool, payload: usize) -> alloc::vec::Vec<u8> {
        let l3 = if v6 { 40 } else { 20 };
        let l4 = if udp { 8 } else { 20 };
        let mut f: alloc::vec::Vec<u8> = (0..14 + l3 + l4 + payload).map(|i| i as u8).collect();
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

    fn post_frame(
        p: &MockPlatform,
        sq: &mut Sq<MockPlatform>,
        f: &[u8],
        o: TxOpts,
    ) -> Result<crate::mock::MockDma, PostError> {
        let b = p.dma_alloc(f.len()).unwrap();
        b.write_bytes(0, f);
        let addr = b.device_addr();
        b.with_bytes(0, f.len(), |fr| sq.post_with(fr, addr, Lkey(7), 1, o))
            .map(|()| b)
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
        let mut long: alloc::vec::Vec<u8> = (0..14 + 60 + 60 + 30).map(|i| i as u8).collect();
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
            let p = MockPlatform::new();
            let ring = Sq::<MockPlatform>::alloc_ring(&p, 2).unwrap();
            let rbase = ring.mem.device_addr().get();
            let mut sq = Sq::<MockPlatform>::new(Sqn(1), ring, 2, Uar(4), mode, 1, p.clone());
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
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 2).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq = Sq::<MockPlatform>::new(Sqn(1), ring, 2, Uar(4), InlineMode::L2, 1, p.clone());
        post_frame(&p, &mut sq, &v4tcp, TxOpts::default()).unwrap();
        assert_eq!(p.read(rbase + 0x14, 1), [0]);
    }

    #[test]
    fn the_callers_geometry_is_used_as_given_and_clamped() {
        let f = ip_frame(false, false, 40);
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 3).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq =
            Sq::<MockPlatform>::new(Sqn(1), ring, 3, Uar(4), InlineMode::TcpUdp, 1, p.clone());
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
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 2).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq =
            Sq::<MockPlatform>::new(Sqn(1), ring, 2, Uar(4), InlineMode::None, 1, p.clone());
        post_frame(&p, &mut sq, &f, tag).unwrap();
        assert_eq!(p.read(rbase + 0x1c, 4), [0x80, 0x00, 0x20, 0x64]);
        assert_eq!(p.read(rbase + 7, 1), [3]);
        // L2 inline: 18 bytes = MACs, 0x8100 + TCI, ethertype; the data
        // segment starts at frame byte 14.
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 2).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq = Sq::<MockPlatform>::new(Sqn(1), ring, 2, Uar(4), InlineMode::L2, 1, p.clone());
        let b = post_frame(&p, &mut sq, &f, tag).unwrap();
        let w = p.read(rbase, 64);
        assert_eq!(&w[0x1c..0x1e], &[0, 18]);
        assert_eq!(&w[0x1e..0x2a], &f[..12]);
        assert_eq!(&w[0x2a..0x30], &[0x81, 0x00, 0x20, 0x64, 0x08, 0x00]);
        assert_eq!(&w[0x30..0x34], &((f.len() - 14) as u32).to_be_bytes());
        assert_eq!(&w[0x38..0x40], &(b.device_addr().get() + 14).to_be_bytes());
    }

    #[test]
    fn lso_wqe_spans_blocks_wraps_the_ring_and_completes_as_one() {
        let p = MockPlatform::new();
        let ring = Sq::<MockPlatform>::alloc_ring(&p, 2).unwrap();
        let rbase = ring.mem.device_addr().get();
        let mut sq =
            Sq::<MockPlatform>::new(Sqn(0x33), ring, 2, Uar(4), InlineMode::None, 1, p.clone());
        let small = frame(&p, 60);
        for i in 0..3 {
            post(&mut sq, &small, 60, Lkey(7), i).unwrap();
        }
        let c = crate::cqe::build::requester;
        sq.complete(&c(2), |_| ()).unwrap();
        let f = ip_frame(false, false, 3000);
        let lso = TxOpts {
            mss: Some(1000),
            header_len: 54,
            ..TxOpts::default()
        };
        let b = post_frame(&p, &mut sq, &f, lso).unwrap();
        // 54 header bytes inline: ds = 2 + ceil(52 / 16) + 1 = 7, two
        // WQEBBs: index 3 and (wrapped) 0.
        assert_eq!(sq.producer_counter(), 5);
        let w = p.read(rbase + 3 * 64, 64);
        assert_eq!(&w[0..8], &[0x00, 0x00, 0x03, 0x0e, 0x00, 0x00, 0x33, 0x07]);
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
        assert!(sq.complete(&c(4), |_| ()).is_err());
        let mut got = alloc::vec::Vec::new();
        assert_eq!(sq.complete(&c(3), |id| got.push(id)), Ok(1));
        assert_eq!((got, sq.in_flight()), (alloc::vec![1], 0));
        // Not TCP, wrong header length, MSS 0: refused, nothing posted.
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
        assert_eq!(sq.producer_counter(), 5);
        // Reset hands back each WQE once, whatever its size.
        post_frame(&p, &mut sq, &f, lso).unwrap();
        post_frame(&p, &mut sq, &f[..60], TxOpts::default()).unwrap();
        assert_eq!(sq.reset(|_| ()), 2);
    }
}
