//! The transmit engine. A send doorbell (UAR +0x800/+0x900, second dword
//! `sqn << 8 | ds`) makes the model read the SQ's doorbell record (dword 1:
//! the producer counter, 16 bits) and execute every WQE from its consumer
//! counter up to it.
//!
//! A WQE (PRM "Send WQE Format"; qp.h): control segment
//! (`struct mlx5_wqe_ctrl_seg`: opmod_idx_opcode, qpn_ds, fm_ce_se at byte
//! 11), Ethernet segment (`struct mlx5_wqe_eth_seg`: cs_flags 4, mss 6,
//! inline_hdr.sz 12, inline bytes from 14, continuing over the following
//! 16-byte segments), data segments (`struct mlx5_wqe_data_seg`:
//! byte_count, lkey, addr). The frame is the inline bytes followed by the
//! data segments' bytes; frames shorter than 60 bytes are padded (as the
//! MAC does).
//!
//! Offloads, as the Ethernet segment asks: `cs_flags` 0x40 fills the IPv4
//! header checksum, 0x80 the TCP/UDP checksum (IPv4 or IPv6); `insert`
//! (type 0x8000, | 1 for a service tag) puts a VLAN tag after the MAC
//! addresses (the union leaves no inline headers then). LSO (opcode 0x0e,
//! `mss`, all headers inline) cuts the send into MSS-sized TCP segments
//! ([`segment`]). The inline rule: at least the headers the part requires
//! (`wqe_inline_mode` 0: L2; 1: the vport context's min_wqe_inline_mode;
//! 2: none) or the SQ's `min_wqe_inline_mode`, whichever is more.
//!
//! Errors complete the WQE with an error CQE (`MLX5_CQE_REQ_ERR`) carrying
//! `MLX5_CQE_SYNDROME_*`: LOCAL_LENGTH (0x01) for a data segment of 0
//! bytes, inline bytes beyond the WQE or a frame outside 14..=MTU+18 bytes
//! (an LSO payload beyond 2^max_lso_cap); LOCAL_QP_OP (0x02) for an opcode
//! other than NOP / SEND / LSO (and ENHANCED_MPSW where the part has it),
//! a SEND or LSO on an SQ without a TIS, a
//! wrong wqe_index or qpn, inline data segments,
//! an MSS without LSO or LSO without one, LSO of anything but TCP or
//! without all headers inline, LSO with a VLAN insert, tunnel (software
//! parser / inner checksum) offloads, or fewer inline header bytes than
//! the inline rule requires; LOCAL_PROT (0x04) for an lkey the mkey
//! table refuses (`cmd::mkey`: unknown key, another protection domain, no
//! local read, outside the key's range) or a data address the bus refuses
//! (the sanitizer records it). The SQ moves to ERR; with
//! `flush_in_error_en` every further posted WQE completes with WR_FLUSH
//! (0x05).
//!
//! A NOP (opcode 0x00) sends nothing and completes like any WQE: drivers
//! post them to pad the ring's end or to ask for a completion.
//!
//! An ENHANCED_MPSW WQE (opcode 0x29, parts with
//! `enhanced_multi_pkt_send_wqe`) sends many frames: [`super::empw`]; so
//! does a legacy MPW WQE (opcode 0x0e with opcode modifier 1, parts with
//! `multi_pkt_send_wqe` and SQs that allow it): [`super::mpw`]. Any other
//! opcode modifier is LOCAL_QP_OP.
#![deny(unsafe_code)]

use crate::cmd::cq::{self, CQE_SIZE, cqe};
use crate::cmd::sq::{LOG_WQEBB, STATE_ERR, STATE_RDY};
use crate::cmd::wq::Wq;
use crate::function::Function;
use crate::sanitizer::Purpose;

use super::{csum, frame};

/// `MLX5_OPCODE_NOP`, `MLX5_OPCODE_SEND`, `MLX5_OPCODE_LSO` (device.h).
pub const OPCODE_NOP: u8 = 0x00;
pub const OPCODE_SEND: u8 = 0x0a;
pub const OPCODE_LSO: u8 = 0x0e;
/// `MLX5_OPCODE_ENHANCED_MPSW` (device.h).
pub const OPCODE_ENHANCED_MPSW: u8 = 0x29;
const WQEBB: usize = 1 << LOG_WQEBB;
pub(super) const DS: usize = 16;
/// A WQE has at most 63 segments (ds is 6 bits).
const MAX_WQE: usize = 64 * DS;
/// `MLX5_INLINE_SEG`: data segment carrying inline data.
pub(super) const INLINE_SEG: u32 = 0x8000_0000;
pub(super) const MIN_FRAME: usize = 60;
pub(super) const ETH_HLEN: usize = 14;

/// Record a send doorbell; true when the SQ now has work pending.
pub fn doorbell(dev: &mut Function, page: u32, qpn_ds: u32) -> bool {
    let sqn = qpn_ds >> 8;
    let Some(sq) = dev.nic.sqs.get(sqn) else {
        log::debug!(target: "mlx5_sim::tx", "send doorbell for unknown SQ {sqn:#x} dropped");
        return false;
    };
    if sq.wq.uar != page {
        log::debug!(target: "mlx5_sim::tx", "SQ {sqn:#x} rung on UAR {page}, not its UAR {}: dropped", sq.wq.uar);
        return false;
    }
    if !dev.nic.tx_pending.contains(&sqn) {
        dev.nic.tx_pending.push(sqn);
    }
    true
}

/// What went wrong with a WQE: the CQE syndrome.
struct WqeError(u8);

/// The SQ's fixed parameters, copied out so the engine can borrow the device.
pub(super) struct Ctx {
    sqn: u32,
    cqn: u32,
    pub(super) wq: Wq,
    /// Inline mode the part requires (`MLX5_INLINE_MODE_*`).
    pub(super) inline_mode: u8,
    pub(super) max_frame: usize,
    /// log2 of the largest LSO payload (`max_lso_cap`).
    max_lso_log: u8,
    /// The SQ has a TIS: it may send frames (else NOPs only).
    has_tis: bool,
    /// The part executes ENHANCED_MPSW WQEs.
    empw: bool,
    /// The part executes legacy MPW WQEs and the SQ allows them.
    mpw: bool,
}

/// Execute the SQ's posted WQEs.
pub fn process(dev: &mut Function, sqn: u32) {
    let Some(sq) = dev.nic.sqs.get(sqn) else {
        return;
    };
    let state = sq.state;
    if state != STATE_RDY && !(state == STATE_ERR && sq.flush_in_error) {
        return;
    }
    if dev.faults.queues.sq_stalled(sqn) {
        return;
    }
    let caps = dev.personality.caps();
    // The part's rule (`wqe_inline_mode`: 0 L2, 1 the vport context's
    // min_wqe_inline_mode, 2 none), or the SQ's own promise if stricter.
    let part = match caps.wqe_inline_mode {
        0 => 1,
        1 => dev.vport.min_inline,
        _ => 0,
    };
    let ctx = Ctx {
        sqn,
        cqn: sq.cqn,
        wq: sq.wq.clone(),
        inline_mode: part.max(sq.min_inline),
        max_frame: dev.phys_port.max_mtu as usize + ETH_HLEN + VLAN_HLEN,
        max_lso_log: caps.max_lso_cap,
        has_tis: sq.tisn.is_some(),
        empw: caps.enhanced_mpw,
        mpw: caps.legacy_mpw && sq.allow_mpw,
    };
    let mut ci = sq.consumer;
    let Some(pc) = producer(dev, &ctx.wq) else {
        return;
    };
    if state == STATE_ERR {
        flush_range(dev, &ctx, &mut ci, pc);
    } else {
        let mut wqe = [0u8; MAX_WQE];
        while ci != pc {
            let posted = pc.wrapping_sub(ci);
            let nbb = match execute(dev, &ctx, ci, posted, &mut wqe) {
                Ok(0) => break,
                Ok(nbb) => nbb,
                Err((nbb, WqeError(syndrome))) => {
                    let nbb = nbb.min(posted);
                    let mut e = [0u8; CQE_SIZE];
                    cq::error_entry(&mut e, cqe::OP_REQ_ERR, syndrome, wqe[3], sqn, ci);
                    cq::post(dev, ctx.cqn, &mut e);
                    ci = ci.wrapping_add(nbb);
                    let flush = match dev.nic.sqs.get_mut(sqn) {
                        Some(sq) => {
                            sq.state = STATE_ERR;
                            sq.errors += 1;
                            sq.flush_in_error
                        }
                        None => false,
                    };
                    log::debug!(target: "mlx5_sim::tx", "SQ {sqn:#x} WQE {ci}: error CQE syndrome {syndrome:#x}, SQ to ERR");
                    if flush {
                        flush_range(dev, &ctx, &mut ci, pc);
                    }
                    break;
                }
            };
            ci = ci.wrapping_add(nbb);
        }
    }
    if let Some(sq) = dev.nic.sqs.get_mut(sqn) {
        sq.consumer = ci;
    }
}

/// The producer counter from the doorbell record (dword 1).
fn producer(dev: &mut Function, wq: &Wq) -> Option<u16> {
    let mut raw = [0u8; 4];
    dev.bus
        .read(wq.dbr + 4, &mut raw, Purpose::DoorbellRecord)
        .ok()?;
    Some(u32::from_be_bytes(raw) as u16)
}

/// Read WQEBB `index` of the ring into `into`.
fn read_wqebb(dev: &mut Function, wq: &Wq, index: u16, into: &mut [u8]) -> bool {
    match wqebb_addr(wq, index) {
        Some(a) => dev.bus.read(a, into, Purpose::WqBuffer).is_ok(),
        None => false,
    }
}

/// Bytes of a ring page (the `pas` entries of the WQ).
const WQ_PAGE: usize = 4096;

/// Read `into.len() / WQEBB` consecutive WQEBBs from `index` on: one bus
/// read per run that stays inside one ring page and does not wrap (the
/// pages of the ring need not be adjacent in memory; each is granted on
/// its own).
fn read_wqebbs(dev: &mut Function, wq: &Wq, index: u16, into: &mut [u8]) -> bool {
    let mask = wq.entries() as usize - 1;
    let mut k = 0;
    while k * WQEBB < into.len() {
        let slot = (index as usize + k) & mask;
        let in_page = (WQ_PAGE - (slot * WQEBB) % WQ_PAGE) / WQEBB;
        let run = (into.len() / WQEBB - k).min(in_page).min(mask + 1 - slot);
        let at = k * WQEBB;
        if !read_wqebb(dev, wq, slot as u16, &mut into[at..at + run * WQEBB]) {
            return false;
        }
        k += run;
    }
    true
}

/// Guest address of WQEBB `index` of the ring.
pub(super) fn wqebb_addr(wq: &Wq, index: u16) -> Option<u64> {
    wq.addr((index as u64 & (wq.entries() as u64 - 1)) << LOG_WQEBB)
}

/// WQEBBs a WQE with `ds` segments occupies (at least one).
fn wqebbs(ds: usize) -> u16 {
    (ds * DS).div_ceil(WQEBB).max(1) as u16
}

/// Complete every WQE from `ci` to `pc` with WR_FLUSH error CQEs (a WQE
/// that claims more WQEBBs than are posted ends the range).
fn flush_range(dev: &mut Function, ctx: &Ctx, ci: &mut u16, pc: u16) {
    let mut ctrl = [0u8; WQEBB];
    while *ci != pc {
        if !read_wqebb(dev, &ctx.wq, *ci, &mut ctrl) {
            return;
        }
        let nbb = wqebbs((ctrl[7] & 0x3f) as usize).min(pc.wrapping_sub(*ci));
        let mut e = [0u8; CQE_SIZE];
        cq::error_entry(
            &mut e,
            cqe::OP_REQ_ERR,
            cqe::SYN_WR_FLUSH,
            ctrl[3],
            ctx.sqn,
            *ci,
        );
        cq::post(dev, ctx.cqn, &mut e);
        if let Some(sq) = dev.nic.sqs.get_mut(ctx.sqn) {
            sq.errors += 1;
        }
        *ci = ci.wrapping_add(nbb);
    }
}

/// Flush the SQ's posted WQEs (MODIFY_SQ to ERR).
pub fn flush(dev: &mut Function, sqn: u32) {
    let Some(sq) = dev.nic.sqs.get(sqn) else {
        return;
    };
    if !sq.flush_in_error {
        return;
    }
    let ctx = Ctx {
        sqn,
        cqn: sq.cqn,
        wq: sq.wq.clone(),
        inline_mode: 0,
        max_frame: 0,
        max_lso_log: 0,
        has_tis: false,
        empw: false,
        mpw: false,
    };
    let mut ci = sq.consumer;
    let Some(pc) = producer(dev, &ctx.wq) else {
        return;
    };
    flush_range(dev, &ctx, &mut ci, pc);
    if let Some(sq) = dev.nic.sqs.get_mut(sqn) {
        sq.consumer = ci;
    }
}

/// Execute the WQE at `ci` (`posted` WQEBBs are posted from it): gather
/// the frame, apply the offloads, send it (or its LSO segments), write the
/// CQE it asks for. Returns its WQEBB count (0: the WQE is not fully posted
/// yet, nothing done), or that count and the error.
fn execute(
    dev: &mut Function,
    ctx: &Ctx,
    ci: u16,
    posted: u16,
    wqe: &mut [u8; MAX_WQE],
) -> Result<u16, (u16, WqeError)> {
    if !read_wqebb(dev, &ctx.wq, ci, &mut wqe[..WQEBB]) {
        wqe[..WQEBB].fill(0);
        return Err((1, WqeError(cqe::SYN_LOCAL_PROT)));
    }
    let ds = (wqe[7] & 0x3f) as usize;
    let nbb = wqebbs(ds);
    if nbb > posted {
        return Ok(0);
    }
    let fail = |s: u8| Err((nbb, WqeError(s)));
    let rest = &mut wqe[WQEBB..nbb as usize * WQEBB];
    if !read_wqebbs(dev, &ctx.wq, ci.wrapping_add(1), rest) {
        return fail(cqe::SYN_LOCAL_PROT);
    }
    // `sq-bad-opcode` (queue_faults): the opcode read as one no SQ takes,
    // then refused below as any such opcode is.
    let opcode = dev.faults.queues.sq_opcode(ctx.sqn, wqe[3]);
    let wqe_index = u16::from_be_bytes([wqe[1], wqe[2]]);
    let qpn = u32::from_be_bytes([0, wqe[4], wqe[5], wqe[6]]);
    let mpw = opcode == OPCODE_LSO && wqe[0] == super::mpw::OPC_MOD_MPW && ctx.mpw;
    let lso = opcode == OPCODE_LSO && !mpw;
    if (wqe[0] != 0 && !mpw) || wqe_index != ci || qpn != ctx.sqn || ds == 0 {
        return fail(cqe::SYN_LOCAL_QP_OP);
    }
    // A NOP sends nothing (drivers post them to pad the ring's end or to
    // ask for a completion); it may carry segments, which are not read.
    if opcode == OPCODE_NOP {
        complete(dev, ctx, wqe, ci, 0);
        return Ok(nbb);
    }
    let empw = opcode == OPCODE_ENHANCED_MPSW && ctx.empw;
    if !(opcode == OPCODE_SEND || lso || empw || mpw) || ds < 2 || !ctx.has_tis {
        return fail(cqe::SYN_LOCAL_QP_OP);
    }
    let eth = EthSeg::parse(&wqe[DS..2 * DS]);
    if mpw {
        if let Some(s) = dev.faults.queues.take_sq_wqe(ctx.sqn) {
            return fail(s);
        }
        return match super::mpw::send(dev, ctx, &wqe[..ds * DS], &eth) {
            Ok(bytes) => {
                complete(dev, ctx, wqe, ci, bytes);
                Ok(nbb)
            }
            Err(s) => fail(s),
        };
    }
    if empw {
        if let Some(s) = dev.faults.queues.take_sq_wqe(ctx.sqn) {
            return fail(s);
        }
        return match super::empw::send(dev, ctx, &wqe[..ds * DS], &eth) {
            Ok(bytes) => {
                complete(dev, ctx, wqe, ci, bytes);
                Ok(nbb)
            }
            Err(s) => fail(s),
        };
    }
    // Software parser offsets, inner (tunnel) checksums: not offered; MSS
    // belongs to LSO and LSO needs one.
    if eth.swp != 0 || eth.cs_flags & !(CS_L3 | CS_L4) != 0 || lso != (eth.mss != 0) {
        return fail(cqe::SYN_LOCAL_QP_OP);
    }
    if lso && eth.vlan.is_some() {
        return fail(cqe::SYN_LOCAL_QP_OP);
    }
    // An injected bad lkey / address: refused before any memory is read.
    if let Some(s) = dev.faults.queues.take_sq_wqe(ctx.sqn) {
        return fail(s);
    }
    let ihs = eth.ihs;
    let wqe_len = ds * DS;
    if DS + 14 + ihs > wqe_len {
        return fail(cqe::SYN_LOCAL_LENGTH);
    }
    let mut buf = if lso {
        std::mem::take(&mut dev.nic.lso_buf)
    } else {
        dev.nic.wire.buffer()
    };
    buf.clear();
    let limit = if lso {
        ihs + (1usize << ctx.max_lso_log)
    } else {
        // Room for the tag the engine inserts.
        ctx.max_frame - if eth.vlan.is_some() { VLAN_HLEN } else { 0 }
    };
    // Headers are parsed only when a rule or an offload needs them.
    let parse = ctx.inline_mode != 0 || lso || eth.cs_flags != 0;
    let result = gather(dev, ctx.wq.pd, wqe, wqe_len, &eth, &mut buf, limit).and_then(|()| {
        if !parse {
            return Ok(None);
        }
        let h = frame::parse(&buf);
        let need = frame::required_inline(&h, ctx.inline_mode);
        if ihs < need || (lso && (h.l4 != frame::L4::Tcp || ihs < h.l4_off() + h.l4_len)) {
            return Err(cqe::SYN_LOCAL_QP_OP);
        }
        Ok(Some(h))
    });
    let h = match result {
        Ok(h) => h,
        Err(s) => {
            give_back(dev, buf, lso);
            return fail(s);
        }
    };
    let len = buf.len();
    let up = dev.phys_port.oper_up();
    if let (true, Some(h)) = (lso, h) {
        segment(dev, &buf, &h, eth.mss as usize, up);
        dev.nic.lso_buf = buf;
    } else {
        if let Some((tpid, tci)) = eth.vlan {
            insert_vlan(&mut buf, tpid, tci);
        }
        if eth.cs_flags != 0 {
            let h = match h {
                Some(h) if eth.vlan.is_none() => h,
                _ => frame::parse(&buf),
            };
            if eth.cs_flags & CS_L3 != 0 {
                csum::fill_ipv4(&mut buf, &h);
            }
            if eth.cs_flags & CS_L4 != 0 {
                csum::fill_l4(&mut buf, &h);
            }
        }
        if buf.len() < MIN_FRAME {
            buf.resize(MIN_FRAME, 0);
        }
        dev.vport.counters.count_tx(&buf);
        dev.nic.wire.send(buf, up);
    }
    complete(dev, ctx, wqe, ci, len);
    Ok(nbb)
}

/// The requester CQE of WQE `ci` if its control segment asks for one:
/// fm_ce_se bits 3:2 (qp.h `MLX5_WQE_CTRL_CQ_UPDATE` / `_AND_EQE`): 2 = CQE
/// always, 3 = CQE and event; 0 = only on error.
fn complete(dev: &mut Function, ctx: &Ctx, wqe: &[u8], ci: u16, len: usize) {
    if (wqe[11] >> 2) & 3 < 2 {
        return;
    }
    let mut e = [0u8; CQE_SIZE];
    e[cqe::BYTE_CNT..cqe::BYTE_CNT + 4].copy_from_slice(&(len as u32).to_be_bytes());
    e[cqe::QPN..cqe::QPN + 4].copy_from_slice(&(((wqe[3] as u32) << 24) | ctx.sqn).to_be_bytes());
    e[cqe::WQE_COUNTER..cqe::WQE_COUNTER + 2].copy_from_slice(&ci.to_be_bytes());
    e[cqe::OP_OWN] = cqe::OP_REQ << 4;
    cq::post(dev, ctx.cqn, &mut e);
}

fn give_back(dev: &mut Function, buf: Vec<u8>, lso: bool) {
    if lso {
        dev.nic.lso_buf = buf;
    } else {
        dev.nic.wire.recycle_one(buf);
    }
}

/// `cs_flags` bits (qp.h `MLX5_ETH_WQE_L3_CSUM`, `MLX5_ETH_WQE_L4_CSUM`).
pub const CS_L3: u8 = 1 << 6;
pub const CS_L4: u8 = 1 << 7;
/// `insert.type` bits (qp.h `MLX5_ETH_WQE_INSERT_VLAN`, `MLX5_ETH_WQE_SVLAN`).
pub const INSERT_VLAN: u16 = 1 << 15;
pub const INSERT_SVLAN: u16 = 1 << 0;
pub(super) const VLAN_HLEN: usize = 4;

/// The Ethernet segment (`struct mlx5_wqe_eth_seg`): swp offsets 0..4,
/// cs_flags 4, swp_flags 5, mss 6..8, flow_table_metadata 8..12, then
/// either inline_hdr (sz 12..14, bytes from 14) or insert (type 12..14 with
/// bit 15 set, vlan_tci 14..16).
pub(super) struct EthSeg {
    pub(super) swp: u64,
    pub(super) cs_flags: u8,
    pub(super) mss: u16,
    pub(super) ihs: usize,
    /// (TPID, TCI) to insert after the MAC addresses.
    pub(super) vlan: Option<(u16, u16)>,
}

impl EthSeg {
    fn parse(e: &[u8]) -> EthSeg {
        let word = u16::from_be_bytes([e[12], e[13]]);
        let (ihs, vlan) = if word & INSERT_VLAN != 0 {
            let tpid = if word & INSERT_SVLAN != 0 {
                0x88a8
            } else {
                0x8100
            };
            (0, Some((tpid, u16::from_be_bytes([e[14], e[15]]))))
        } else {
            (word as usize, None)
        };
        EthSeg {
            swp: u64::from_be_bytes([e[0], e[1], e[2], e[3], 0, e[5], 0, 0]),
            cs_flags: e[4],
            mss: u16::from_be_bytes([e[6], e[7]]),
            ihs,
            vlan,
        }
    }

    /// Bytes the segment occupies with its inline headers (16-byte units).
    fn len(&self) -> usize {
        if self.ihs > 2 {
            DS + (self.ihs - 2).div_ceil(DS) * DS
        } else {
            DS
        }
    }
}

/// The inline header bytes followed by the data segments' bytes, at most
/// `limit` in all.
fn gather(
    dev: &mut Function,
    pd: u32,
    wqe: &[u8],
    wqe_len: usize,
    eth: &EthSeg,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), u8> {
    let inline_start = DS + 14;
    buf.extend_from_slice(&wqe[inline_start..inline_start + eth.ihs]);
    let mut seg = DS + eth.len();
    while seg + DS <= wqe_len {
        let d = &wqe[seg..seg + DS];
        let raw_count = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        let lkey = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        let addr = u64::from_be_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
        seg += DS;
        if raw_count & INLINE_SEG != 0 {
            return Err(cqe::SYN_LOCAL_QP_OP);
        }
        if raw_count == 0 || buf.len() + raw_count as usize > limit {
            return Err(cqe::SYN_LOCAL_LENGTH);
        }
        let addr = dev
            .mkeys
            .translate(lkey, pd, addr, raw_count as u64, false)
            .map_err(|_| cqe::SYN_LOCAL_PROT)?;
        let start = buf.len();
        buf.resize(start + raw_count as usize, 0);
        if dev
            .bus
            .read(addr, &mut buf[start..], Purpose::Packet)
            .is_err()
        {
            return Err(cqe::SYN_LOCAL_PROT);
        }
    }
    if buf.len() < ETH_HLEN || buf.len() > limit {
        return Err(cqe::SYN_LOCAL_LENGTH);
    }
    Ok(())
}

/// Insert a VLAN tag after the MAC addresses.
pub(super) fn insert_vlan(buf: &mut Vec<u8>, tpid: u16, tci: u16) {
    let len = buf.len();
    buf.resize(len + VLAN_HLEN, 0);
    buf.copy_within(12..len, 12 + VLAN_HLEN);
    buf[12..14].copy_from_slice(&tpid.to_be_bytes());
    buf[14..16].copy_from_slice(&tci.to_be_bytes());
}

/// TCP flags only the first / last segment of a large send keeps.
const TCP_CWR: u8 = 0x80;
const TCP_PSH: u8 = 0x08;
const TCP_FIN: u8 = 0x01;

/// Cut the large send in `big` (headers `h`, payload after them) into
/// frames of at most `mss` payload bytes: IPv4 total length, id (+1 per
/// segment) and header checksum, IPv6 payload length, TCP sequence number,
/// flags (CWR on the first only, PSH and FIN on the last only) and checksum
/// rewritten per segment.
fn segment(dev: &mut Function, big: &[u8], h: &frame::Headers, mss: usize, up: bool) {
    let hl = h.l4_off() + h.l4_len;
    let l3 = h.l2_len;
    let tcp = h.l4_off();
    let payload = &big[hl..];
    let id0 = u16::from_be_bytes([big[l3 + 4], big[l3 + 5]]);
    let seq0 = u32::from_be_bytes([big[tcp + 4], big[tcp + 5], big[tcp + 6], big[tcp + 7]]);
    let flags = big[tcp + 13];
    let count = payload.len().div_ceil(mss).max(1);
    for i in 0..count {
        let off = i * mss;
        let chunk = &payload[off.min(payload.len())..(off + mss).min(payload.len())];
        let mut f = dev.nic.wire.buffer();
        f.extend_from_slice(&big[..hl]);
        f.extend_from_slice(chunk);
        let ip_len = hl - l3 + chunk.len();
        match h.l3 {
            frame::L3::Ipv4 => {
                f[l3 + 2..l3 + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
                f[l3 + 4..l3 + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            }
            frame::L3::Ipv6 => {
                f[l3 + 4..l3 + 6].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
            }
            frame::L3::None => {}
        }
        f[tcp + 4..tcp + 8].copy_from_slice(&seq0.wrapping_add(off as u32).to_be_bytes());
        let mut fl = flags;
        if i != 0 {
            fl &= !TCP_CWR;
        }
        if i + 1 != count {
            fl &= !(TCP_PSH | TCP_FIN);
        }
        f[tcp + 13] = fl;
        let sh = frame::parse(&f);
        csum::fill_ipv4(&mut f, &sh);
        csum::fill_l4(&mut f, &sh);
        if f.len() < MIN_FRAME {
            f.resize(MIN_FRAME, 0);
        }
        dev.vport.counters.count_tx(&f);
        dev.nic.wire.send(f, up);
    }
    dev.nic.wire.stats.tx_lso_sends += 1;
}
