//! The command queue and its mailboxes (PRM "Command Queue"; `struct
//! mlx5_cmd_layout` and `struct mlx5_cmd_prot_block` in device.h).
//!
//! One 4 KiB page holds up to 32 command entries; each slot owns a
//! mailbox region that holds the input chain followed by the output
//! chain: slot 0's is grown on demand and kept until detach, the other
//! slots' (used only while commands overlap) are freed once collected,
//! an abandoned slot's kept (the device may still write it). Several slots may be in
//! flight; completion is noticed by polling the ownership bit or by the
//! command-completion EQE, and each slot is checked and collected on its
//! own, so completions in any order work.
//!
//! Timeouts: the init segment's `cmd_exec_to` and `cmd_q_init_to` dwords
//! (`struct mlx5_init_seg` in device.h) hold a `default_timeout` each
//! (mlx5_ifc.h `mlx5_ifc_default_timeout_bits`, the DTOR register's field
//! format): to_multiplier `[31:29]` (0 milliseconds, 1 seconds, 2
//! minutes, 3 hours) and to_value `[19:0]`. Zero means not advertised
//! (Linux's 60 s and 120 s then). A device may advertise hours; the
//! driver caps what it accepts ([`MAX_TIMEOUT_MS`],
//! [`MAX_INIT_TIMEOUT_MS`]) so one lost command cannot hold the caller
//! for long. The attach configuration may override both.

use alloc::vec;
use alloc::vec::Vec;

use cxos_drivers::{DmaAlloc, DmaRegion, Mmio, Platform, Region};

use crate::error::{BadOutput, CmdFailure, Unsupported};
use crate::init_seg;

/// Command entry (`mlx5_cmd_layout`), 64 bytes.
pub mod entry {
    /// type `[7:0]` (7: PCIe command interface).
    pub const TYPE: usize = 0x00;
    /// input length in bytes, be32.
    pub const INLEN: usize = 0x04;
    /// input mailbox pointer, be64.
    pub const IN_PTR: usize = 0x08;
    /// first 16 bytes of the input.
    pub const IN_INLINE: usize = 0x10;
    /// first 16 bytes of the output.
    pub const OUT_INLINE: usize = 0x20;
    /// output mailbox pointer, be64.
    pub const OUT_PTR: usize = 0x30;
    /// output length in bytes, be32.
    pub const OUTLEN: usize = 0x38;
    pub const TOKEN: usize = 0x3c;
    pub const SIG: usize = 0x3d;
    /// delivery status `[7:1]`, ownership `[0]` (1: hardware).
    pub const STATUS_OWN: usize = 0x3f;
    pub const LEN: usize = 0x40;
    pub const INLINE_LEN: usize = 0x10;
    pub const TYPE_PCIE: u8 = 7;
}

/// Mailbox block (`mlx5_cmd_prot_block`), 576 bytes used of a 1 KiB slot.
pub mod block {
    pub const DATA_LEN: usize = 0x200;
    /// next block pointer, be64.
    pub const NEXT: usize = 0x230;
    /// block number, be32.
    pub const BLOCK_NUM: usize = 0x238;
    pub const TOKEN: usize = 0x23d;
    pub const CTRL_SIG: usize = 0x23e;
    pub const SIG: usize = 0x23f;
    pub const LEN: usize = 0x240;
    /// Blocks are placed 1 KiB apart (1 KiB aligned).
    pub const STRIDE: usize = 0x400;
}

const _: () = assert!(entry::STATUS_OWN == entry::LEN - 1);
const _: () = assert!(block::SIG == block::LEN - 1);
const _: () = assert!(block::LEN <= block::STRIDE);

pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_INIT_TIMEOUT_MS: u64 = 120_000;
pub const MIN_TIMEOUT_MS: u64 = 100;
/// Longest a command may take before it counts as lost: beyond what any
/// command the driver issues takes on hardware (the slowest, TEARDOWN_HCA
/// and page reclaim, take a few seconds), short enough that a device
/// losing commands stalls its adapter's control plane only briefly.
pub const MAX_TIMEOUT_MS: u64 = 15_000;
/// Longest firmware initialization accepted (Linux's default).
pub const MAX_INIT_TIMEOUT_MS: u64 = 120_000;
/// Longest input or output the driver sends or accepts.
pub const MAX_MSG_LEN: usize = entry::INLINE_LEN + 64 * block::DATA_LEN;

/// Mailbox blocks needed for a message of `len` bytes.
pub const fn blocks_for(len: usize) -> usize {
    if len <= entry::INLINE_LEN {
        0
    } else {
        (len - entry::INLINE_LEN).div_ceil(block::DATA_LEN)
    }
}

/// A `default_timeout` value (see the module documentation) in
/// milliseconds; 0 when not advertised.
pub fn default_timeout_ms(value: u32) -> u64 {
    let unit_ms: u64 = match value >> 29 & 0x3 {
        0 => 1,
        1 => 1_000,
        2 => 60_000,
        _ => 3_600_000,
    };
    u64::from(value & 0xf_ffff) * unit_ms
}

/// A timeout from an init segment value (`cmd_exec_to`, `cmd_q_init_to`),
/// or `default` when the device advertises none; within
/// [`MIN_TIMEOUT_MS`]..=`max`.
pub fn timeout_from_device(value: u32, default: u64, max: u64) -> u64 {
    match default_timeout_ms(value) {
        0 => default.min(max),
        ms => ms.clamp(MIN_TIMEOUT_MS, max),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SlotState {
    Free,
    Busy {
        token: u8,
        opcode: u16,
        op_mod: u16,
        out_len: usize,
        in_blocks: usize,
        started_ns: u64,
    },
    /// Timed out: the device may still own it; never reused.
    Lost,
}

#[derive(Debug)]
struct Slot<D> {
    state: SlotState,
    mailboxes: Option<D>,
    /// Set by a command-completion EQE.
    signalled: bool,
}

/// The command queue: the entry page and per-slot mailboxes, with the
/// allocator the mailboxes come from and the MMIO handle of the command
/// doorbell.
#[derive(Debug)]
pub struct CmdQueue<P: Platform> {
    page: Region<P>,
    stride: usize,
    slots: Vec<Slot<Region<P>>>,
    dma: P::Dma,
    mmio: P::Mmio,
    next_token: u8,
    /// Completion by EQE (true) or by polling the ownership bit.
    events: bool,
}

/// What a finished slot produced.
#[derive(Debug)]
pub struct Finished {
    pub opcode: u16,
    pub op_mod: u16,
    pub started_ns: u64,
    pub result: Result<Vec<u8>, CmdFailure>,
}

impl<P: Platform> CmdQueue<P> {
    /// Read the geometry the device offers and allocate the entry page.
    /// Does not touch the device: [`init_seg::set_cmdq_addr`] does.
    pub fn new(p: &P) -> Result<Self, crate::Error> {
        let (log_size, log_stride) = init_seg::cmdq_geometry(p.mmio());
        let entries = 1usize << log_size.min(31);
        let stride = 1usize << log_stride.min(31);
        // At most 32 entries (one doorbell bit each), entries at least 64
        // bytes apart, all inside one 4 KiB page.
        if log_size > 5 || !(6..=12).contains(&log_stride) || entries * stride > 4096 {
            return Err(Unsupported::CmdqGeometry {
                log_size,
                log_stride,
            }
            .into());
        }
        let page = p.dma().dma_alloc(4096)?;
        let slots = (0..entries)
            .map(|_| Slot {
                state: SlotState::Free,
                mailboxes: None,
                signalled: false,
            })
            .collect();
        Ok(Self {
            page,
            stride,
            slots,
            dma: p.dma().clone(),
            mmio: p.mmio().clone(),
            next_token: 0,
            events: false,
        })
    }

    pub fn addr(&self) -> u64 {
        self.page.device_addr().get()
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn use_events(&mut self, on: bool) {
        self.events = on;
    }

    pub fn uses_events(&self) -> bool {
        self.events
    }

    pub fn busy(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::Busy { .. }))
            .count()
    }

    pub fn lost(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Lost)
            .count()
    }

    fn entry(&self, slot: usize) -> usize {
        slot * self.stride
    }

    /// Write `input` into a free slot and hand it to the device: mailboxes
    /// and entry fields, barrier, ownership bit, barrier, doorbell.
    pub fn submit(
        &mut self,
        input: &[u8],
        out_len: usize,
        now_ns: u64,
    ) -> Result<usize, CmdFailure> {
        let opcode = u16::from_be_bytes([input[0], input[1]]);
        let op_mod = u16::from_be_bytes([input[6], input[7]]);
        let in_len = input.len();
        let out_len = out_len.max(entry::INLINE_LEN);
        if in_len > MAX_MSG_LEN || out_len > MAX_MSG_LEN {
            return Err(CmdFailure::TooLong { in_len, out_len });
        }
        let slot = self
            .slots
            .iter()
            .position(|s| s.state == SlotState::Free)
            .ok_or(CmdFailure::NoFreeSlot)?;
        let in_blocks = blocks_for(in_len);
        let out_blocks = blocks_for(out_len);
        let need = (in_blocks + out_blocks) * block::STRIDE;
        if need > 0 {
            let big_enough = self.slots[slot]
                .mailboxes
                .as_ref()
                .is_some_and(|m| m.len() >= need);
            if !big_enough {
                // Drop the old region first: the slot is free, the device
                // has no pointer into it.
                self.slots[slot].mailboxes = None;
                self.slots[slot].mailboxes =
                    Some(self.dma.dma_alloc(need).map_err(CmdFailure::Platform)?);
            }
        }
        self.next_token = self.next_token.wrapping_add(1).max(1);
        let token = self.next_token;

        let mut in_ptr = 0;
        let mut out_ptr = 0;
        if let Some(mb) = self.slots[slot].mailboxes.as_ref() {
            let base = mb.device_addr();
            mb.fill(0, need, 0);
            for b in 0..in_blocks + out_blocks {
                let off = b * block::STRIDE;
                let (first, count, number) = if b < in_blocks {
                    (0, in_blocks, b)
                } else {
                    (in_blocks, out_blocks, b - in_blocks)
                };
                if b < in_blocks {
                    let start = entry::INLINE_LEN + number * block::DATA_LEN;
                    let end = (start + block::DATA_LEN).min(in_len);
                    mb.write_bytes(off, &input[start..end]);
                }
                let next = if number + 1 < count {
                    base.offset((first + number + 1) * block::STRIDE).get()
                } else {
                    0
                };
                mb.write_be64(off + block::NEXT, next);
                mb.write_be32(off + block::BLOCK_NUM, number as u32);
                mb.write_u8(off + block::TOKEN, token);
            }
            if in_blocks > 0 {
                in_ptr = base.get();
            }
            if out_blocks > 0 {
                out_ptr = base.offset(in_blocks * block::STRIDE).get();
            }
        }

        let e = self.entry(slot);
        let q = &self.page;
        // Everything but status_own, which is written once, last.
        q.fill(e, entry::STATUS_OWN, 0);
        q.write_u8(e + entry::TYPE, entry::TYPE_PCIE);
        q.write_be32(e + entry::INLEN, in_len as u32);
        q.write_be64(e + entry::IN_PTR, in_ptr);
        q.write_bytes(
            e + entry::IN_INLINE,
            &input[..in_len.min(entry::INLINE_LEN)],
        );
        q.write_be64(e + entry::OUT_PTR, out_ptr);
        q.write_be32(e + entry::OUTLEN, out_len as u32);
        q.write_u8(e + entry::TOKEN, token);
        // Ownership last: from here on the entry belongs to the device.
        self.mmio.barrier_before_doorbell_record();
        q.write_u8(e + entry::STATUS_OWN, 1);
        self.slots[slot].state = SlotState::Busy {
            token,
            opcode,
            op_mod,
            out_len,
            in_blocks,
            started_ns: now_ns,
        };
        self.slots[slot].signalled = false;
        init_seg::ring_cmd_doorbell(&self.mmio, slot);
        Ok(slot)
    }

    /// Record a command-completion EQE's slot vector. Bits of slots that are
    /// not busy are ignored (and counted by the caller as spurious).
    pub fn signal(&mut self, vector: u32) -> u32 {
        let mut spurious = 0;
        for bit in 0..32 {
            if vector & (1 << bit) == 0 {
                continue;
            }
            match self.slots.get_mut(bit) {
                Some(s) if matches!(s.state, SlotState::Busy { .. }) => s.signalled = true,
                _ => spurious |= 1 << bit,
            }
        }
        spurious
    }

    /// Whether the device gave `slot` back. In event mode the EQE decides;
    /// `force_poll` reads the ownership bit anyway (lost-interrupt recovery).
    pub fn is_done(&self, slot: usize, force_poll: bool) -> bool {
        let s = &self.slots[slot];
        if !matches!(s.state, SlotState::Busy { .. }) {
            return false;
        }
        if self.events && !force_poll && !s.signalled {
            return false;
        }
        // Even when an EQE said so, the entry must be back in software's
        // hands before it is read.
        self.page.read_u8(self.entry(slot) + entry::STATUS_OWN) & 1 == 0
    }

    /// Collect a slot the device gave back: delivery status, then the
    /// output (status and syndrome are checked by the caller).
    pub fn finish(&mut self, slot: usize) -> Finished {
        let SlotState::Busy {
            token,
            opcode,
            op_mod,
            out_len,
            in_blocks,
            started_ns,
        } = self.slots[slot].state
        else {
            return Finished {
                opcode: 0,
                op_mod: 0,
                started_ns: 0,
                result: Err(CmdFailure::BadOutput(BadOutput::SlotNotBusy(slot))),
            };
        };
        self.slots[slot].signalled = false;
        let e = self.entry(slot);
        let status_own = self.page.read_u8(e + entry::STATUS_OWN);
        if status_own & 1 != 0 {
            // Still the device's: never reuse it.
            self.slots[slot].state = SlotState::Lost;
            return Finished {
                opcode,
                op_mod,
                started_ns,
                result: Err(CmdFailure::BadOutput(BadOutput::StillOwned)),
            };
        }
        self.slots[slot].state = SlotState::Free;
        // Software's again: the delivery status, token and output after it.
        self.mmio.barrier_after_ownership_read();
        let result = if status_own >> 1 != 0 {
            Err(CmdFailure::Delivery(status_own >> 1))
        } else if let got = self.page.read_u8(e + entry::TOKEN)
            && got != token
        {
            Err(CmdFailure::BadOutput(BadOutput::TokenChanged {
                sent: token,
                got,
            }))
        } else {
            let mut out = vec![0u8; out_len];
            self.page
                .read_bytes(e + entry::OUT_INLINE, &mut out[..entry::INLINE_LEN]);
            if let Some(mb) = self.slots[slot].mailboxes.as_ref() {
                let mut done = entry::INLINE_LEN;
                let mut b = 0;
                while done < out_len {
                    let n = (out_len - done).min(block::DATA_LEN);
                    mb.read_bytes((in_blocks + b) * block::STRIDE, &mut out[done..done + n]);
                    done += n;
                    b += 1;
                }
            }
            Ok(out)
        };
        // Slots past the first are used only while commands overlap (a
        // periodic query out while the shell asks): their mailboxes go
        // back once read, so overlap leaves DMA use where it was.
        if slot != 0 {
            self.slots[slot].mailboxes = None;
        }
        Finished {
            opcode,
            op_mod,
            started_ns,
            result,
        }
    }

    /// Give up on a slot: it stays reserved until the queue is dropped.
    pub fn abandon(&mut self, slot: usize) -> (u16, u16) {
        let (opcode, op_mod) = match self.slots[slot].state {
            SlotState::Busy { opcode, op_mod, .. } => (opcode, op_mod),
            _ => (0, 0),
        };
        self.slots[slot].state = SlotState::Lost;
        (opcode, op_mod)
    }

    /// DMA bytes held by the queue (entry page and mailboxes).
    pub fn dma_bytes(&self) -> usize {
        self.page.len()
            + self
                .slots
                .iter()
                .filter_map(|s| s.mailboxes.as_ref())
                .map(|m| m.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_counts() {
        assert_eq!(blocks_for(16), 0);
        assert_eq!(blocks_for(17), 1);
        assert_eq!(blocks_for(16 + 512), 1);
        assert_eq!(blocks_for(16 + 513), 2);
        // QUERY_HCA_CAP output: 0x1010 bytes -> 8 blocks.
        assert_eq!(blocks_for(0x1010), 8);
    }

    #[test]
    fn timeouts_from_device() {
        // default_timeout: to_multiplier [31:29], to_value [19:0].
        assert_eq!(default_timeout_ms(0x0000_07d0), 2_000); // 2000 ms
        assert_eq!(default_timeout_ms(0x2000_0005), 5_000); // 5 s
        assert_eq!(default_timeout_ms(0x4000_0002), 120_000); // 2 min
        assert_eq!(default_timeout_ms(0x6000_0001), 3_600_000); // 1 h
        // Bits [28:20] are reserved: ignored.
        assert_eq!(default_timeout_ms(0x1ff0_0003), 3);
        assert_eq!(timeout_from_device(0, 7, MAX_TIMEOUT_MS), 7);
        assert_eq!(timeout_from_device(0, 60_000, 20_000), 20_000);
        assert_eq!(timeout_from_device(5, 7, MAX_TIMEOUT_MS), MIN_TIMEOUT_MS);
        assert_eq!(timeout_from_device(2000, 7, MAX_TIMEOUT_MS), 2000);
        assert_eq!(timeout_from_device(0x2000_0005, 7, MAX_TIMEOUT_MS), 5_000);
        // Hours advertised: capped.
        assert_eq!(
            timeout_from_device(0x6000_0010, 7, MAX_TIMEOUT_MS),
            MAX_TIMEOUT_MS
        );
        assert_eq!(
            timeout_from_device(u32::MAX, 7, MAX_INIT_TIMEOUT_MS),
            MAX_INIT_TIMEOUT_MS
        );
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;
    use crate::caps::{CapMode, CapType, QueryHcaCap};
    use crate::cmd::encode;
    use crate::mock::MockPlatform;

    /// Play the device for one entry: answer `out` (inline part and
    /// mailboxes) with delivery status `ds`.
    fn complete(p: &MockPlatform, q: &CmdQueue<MockPlatform>, slot: usize, out: &[u8], ds: u8) {
        let e = q.addr() + (slot * 64) as u64;
        let entry = p.read(e, 64);
        let n = out.len().min(16);
        p.write(e + 0x20, &out[..n]);
        let mut ptr = u64::from_be_bytes(entry[0x30..0x38].try_into().unwrap());
        let mut off = 16;
        while off < out.len() {
            let k = (out.len() - off).min(512);
            p.write(ptr, &out[off..off + k]);
            off += k;
            ptr = u64::from_be_bytes(p.read(ptr + 0x230, 8).try_into().unwrap());
        }
        p.write(e + 0x3f, &[ds << 1]);
    }

    /// QUERY_HCA_CAP, general, maximum: a 16-byte input whose 0x1010-byte
    /// output takes eight output mailboxes.
    fn big_query() -> Vec<u8> {
        encode(&QueryHcaCap {
            kind: CapType::General,
            mode: CapMode::Max,
        })
    }

    #[test]
    fn entry_and_mailbox_golden_bytes() {
        let p = MockPlatform::new();
        let mut q = CmdQueue::new(&p).unwrap();
        assert_eq!(q.slots(), 32);
        let cmd = QueryHcaCap {
            kind: CapType::General,
            mode: CapMode::Current,
        };
        let slot = q.submit(&encode(&cmd), 0x1010, 0).unwrap();
        assert_eq!(slot, 0);
        assert_eq!(p.s.borrow().doorbells, [1]);
        let e = p.read(q.addr(), 64);
        assert_eq!(e[0x00], 7, "type PCIe at 0x00");
        assert_eq!(&e[0x04..0x08], &[0, 0, 0, 0x10], "inlen at 0x04");
        assert_eq!(&e[0x08..0x10], &[0; 8], "no input mailbox for 16 bytes");
        assert_eq!(
            &e[0x10..0x18],
            &[0x01, 0x00, 0, 0, 0, 0, 0, 0x01],
            "inline input"
        );
        assert_eq!(&e[0x38..0x3c], &[0, 0, 0x10, 0x10], "outlen at 0x38");
        assert_eq!(e[0x3c], 1, "token at 0x3c");
        assert_eq!(e[0x3f], 1, "owned by hardware");
        // Output chain: 8 blocks, 1 KiB aligned, numbered, tokened, linked.
        let mut ptr = u64::from_be_bytes(e[0x30..0x38].try_into().unwrap());
        for i in 0..8u32 {
            assert_eq!(ptr % 1024, 0);
            let b = p.read(ptr, 0x240);
            assert_eq!(&b[0x238..0x23c], &i.to_be_bytes(), "block_num at 0x238");
            assert_eq!(b[0x23d], 1, "token at 0x23d");
            ptr = u64::from_be_bytes(b[0x230..0x238].try_into().unwrap());
        }
        assert_eq!(ptr, 0, "chain ends");
    }

    #[test]
    fn slots_complete_out_of_order() {
        let p = MockPlatform::new();
        let mut q = CmdQueue::new(&p).unwrap();
        let s0 = q.submit(&big_query(), 0x1010, 0).unwrap();
        let s1 = q.submit(&encode(&hca_enable()), 16, 0).unwrap();
        let s2 = q.submit(&encode(&hca_enable()), 16, 0).unwrap();
        assert_eq!((s0, s1, s2), (0, 1, 2));
        assert_eq!(p.s.borrow().doorbells, [1, 2, 4]);
        assert_eq!(q.busy(), 3);
        // The device finishes 2, then 0, then 1.
        complete(&p, &q, 2, &[0; 16], 0);
        assert!(!q.is_done(0, false) && !q.is_done(1, false) && q.is_done(2, false));
        assert!(q.finish(2).result.is_ok());
        let mut out = vec![0u8; 0x1010];
        out[0x1000] = 0xab; // lands in the 8th output block
        out[0x10] = 0xcd;
        complete(&p, &q, 0, &out, 0);
        let f = q.finish(0);
        assert_eq!(f.opcode, 0x100);
        assert_eq!(f.result.unwrap(), out);
        // Delivery failure on slot 1.
        complete(&p, &q, 1, &[0; 16], 2);
        assert_eq!(q.finish(1).result, Err(CmdFailure::Delivery(2)));
        assert_eq!(q.busy(), 0);
        // Entry page plus slot 0's mailboxes; all freed with the queue.
        assert_eq!(p.live_regions(), 2);
        drop(q);
        assert_eq!(p.live_regions(), 0);
    }

    #[test]
    fn an_overlapping_slots_mailboxes_go_back_once_collected() {
        let p = MockPlatform::new();
        let mut q = CmdQueue::new(&p).unwrap();
        let s0 = q.submit(&big_query(), 0x1010, 0).unwrap();
        let s1 = q.submit(&big_query(), 0x1010, 0).unwrap();
        assert_eq!((s0, s1), (0, 1));
        // Entry page plus both slots' mailboxes.
        assert_eq!(p.live_regions(), 3);
        complete(&p, &q, 1, &[0; 0x1010], 0);
        assert!(q.finish(1).result.is_ok());
        assert_eq!(p.live_regions(), 2, "slot 1's mailboxes freed");
        complete(&p, &q, 0, &[0; 0x1010], 0);
        assert!(q.finish(0).result.is_ok());
        assert_eq!(p.live_regions(), 2, "slot 0's kept for the next command");
    }

    #[test]
    fn device_tampering_is_an_error_not_a_panic() {
        let p = MockPlatform::new();
        let mut q = CmdQueue::new(&p).unwrap();
        let s = q.submit(&encode(&hca_enable()), 16, 0).unwrap();
        p.write(q.addr() + 0x3c, &[0x77]); // token changed
        complete(&p, &q, s, &[0; 16], 0);
        assert!(matches!(q.finish(s).result, Err(CmdFailure::BadOutput(_))));
        // A completion EQE for idle slots is reported as spurious.
        assert_eq!(q.signal(0x8000_0001), 0x8000_0001);
        // Lost slots are never reused.
        let s = q.submit(&encode(&hca_enable()), 16, 0).unwrap();
        q.abandon(s);
        let s2 = q.submit(&encode(&hca_enable()), 16, 0).unwrap();
        assert_ne!(s, s2);
        assert_eq!(q.lost(), 1);
    }

    #[test]
    fn event_mode_needs_the_eqe_and_the_ownership_bit() {
        let p = MockPlatform::new();
        let mut q = CmdQueue::new(&p).unwrap();
        q.use_events(true);
        let s = q.submit(&encode(&hca_enable()), 16, 0).unwrap();
        // EQE before the entry was handed back: not done yet.
        assert_eq!(q.signal(1 << s), 0);
        assert!(!q.is_done(s, false));
        complete(&p, &q, s, &[0; 16], 0);
        assert!(q.is_done(s, false));
        assert!(q.finish(s).result.is_ok());
        // Handed back without an EQE: only a forced poll sees it.
        let s = q.submit(&encode(&hca_enable()), 16, 0).unwrap();
        complete(&p, &q, s, &[0; 16], 0);
        assert!(!q.is_done(s, false));
        assert!(q.is_done(s, true));
        // Collected while the device still owns it: the slot is retired.
        let s = q.submit(&encode(&hca_enable()), 16, 0).unwrap();
        assert!(matches!(q.finish(s).result, Err(CmdFailure::BadOutput(_))));
        assert_eq!(q.lost(), 1);
    }

    #[test]
    fn geometry_is_validated() {
        let p = MockPlatform::new();
        p.s.borrow_mut().bar0[0x17] = 0x65; // 64 entries of 32 bytes
        assert!(CmdQueue::new(&p).is_err());
        p.s.borrow_mut().bar0[0x17] = 0x58; // 32 x 256 bytes > 4 KiB
        assert!(CmdQueue::new(&p).is_err());
        p.s.borrow_mut().bar0[0x17] = 0x46; // 16 x 64 bytes
        assert_eq!(CmdQueue::new(&p).unwrap().slots(), 16);
    }

    fn hca_enable() -> crate::hca::EnableHca {
        crate::hca::ENABLE_HCA
    }
}
