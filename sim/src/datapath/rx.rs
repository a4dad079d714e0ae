//! The receive engine: a frame from the wire is checked (link up, length),
//! filtered by the vport's addresses and promiscuous flags
//! ([`vport_accepts`]), steered by the NIC_RX flow tables
//! ([`crate::cmd::flow`]) to one or more TIRs, each of which picks an RQ
//! (directly or by RSS, [`super::rss`]); the RQ takes it into its next
//! posted WQE (or the next strides of its current multi-packet WQE) and a
//! responder CQE (`MLX5_CQE_RESP_SEND`, [`offload_fields`]: RSS hash,
//! checksum results, header types, stripped VLAN; byte_cnt 0x2c, rqn in
//! sop_drop_qpn 0x38, wqe_counter 0x3c) follows, and an EQE + MSI-X when
//! the CQ is armed. With `vsd` clear a customer VLAN tag is stripped into
//! the CQE.
//!
//! A receive data segment (`struct mlx5_wqe_data_seg`: byte_count, lkey,
//! addr) gives its buffer's length in byte_count bits 30:0 ([`seg_len`]);
//! bit 31 is a flag, not length (Linux sets it on every receive segment as
//! `MLX5_HW_START_PADDING`, the bit a send WQE uses for `MLX5_INLINE_SEG`)
//! and changes nothing in where the frame goes. A segment with length 0
//! ends the scatter list (Linux pads with byte_count 0 and the terminate
//! lkey).
//!
//! Posted WQEs: the RQ's doorbell record dword 0 holds the receive counter
//! (16 bits); the model re-reads it only when it has consumed everything it
//! last saw. No posted WQE: the frame is dropped and counted in the RQ's Q
//! counter set (`out_of_buffer`) and the port's `rx_dropped_no_wqe`.
//!
//! Errors (responder error CQE `MLX5_CQE_RESP_ERR`): LOCAL_PROT (0x04) for a
//! data segment whose lkey the mkey table refuses (`cmd::mkey`: unknown
//! key, another protection domain, no local write, outside the key's range)
//! or whose address the bus refuses; LOCAL_LENGTH (0x01) when the WQE's segments are too small
//! for the frame. The RQ moves to ERR; with `flush_in_error_en` the rest of
//! the posted WQEs complete with WR_FLUSH (0x05).
#![deny(unsafe_code)]

use crate::cmd::cq::{self, CQE_SIZE, cqe};
use crate::cmd::sq::{STATE_ERR, STATE_RDY};
use crate::cmd::wq::Wq;
use crate::function::Function;
use crate::sanitizer::Purpose;

use super::csum;
use super::frame::{self, Headers};
use crate::cmd::flow::{Key, MAX_DEST, Verdict};

const ETH_HLEN: usize = 14;
const ETH_FCS_LEN: usize = 4;
const DS: usize = 16;
/// Largest RQ stride (4 data segments).
const MAX_STRIDE: usize = 64;

/// The buffer length of a receive data segment: byte_count bits 30:0 (see
/// the module docs for bit 31).
fn seg_len(d: &[u8]) -> u32 {
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & 0x7fff_ffff
}

/// Take one frame from the wire.
pub fn receive(dev: &mut Function, f: &[u8]) {
    let stats = &mut dev.nic.wire.stats;
    stats.rx_frames += 1;
    stats.rx_bytes += f.len() as u64;
    let (mc, bc) = crate::wire::dest_class(f);
    stats.rx_multicast += mc as u64;
    stats.rx_broadcast += bc as u64;
    stats.rx_sizes[crate::wire::size_bucket(f.len())] += 1;
    if !dev.phys_port.oper_up() {
        stats.rx_dropped_link_down += 1;
        return;
    }
    // The MAC accepts frames up to the port's largest MTU plus an Ethernet
    // header and one VLAN tag.
    if f.len() < ETH_HLEN || f.len() > dev.phys_port.max_mtu as usize + ETH_HLEN + 4 {
        stats.rx_dropped_bad_length += 1;
        return;
    }
    // PMTU's MTU counts the FCS, which frames here come without.
    if f.len() + ETH_FCS_LEN > dev.phys_port.admin_mtu as usize {
        stats.rx_dropped_too_long += 1;
        return;
    }
    if !vport_accepts(&dev.vport, f) {
        dev.nic.wire.stats.rx_dropped_vport_filter += 1;
        return;
    }
    dev.vport.counters.count_rx(f);
    let h = frame::parse(f);
    let key = Key::of_frame(f, &h);
    let mut tirs = [0u32; MAX_DEST];
    let n = match dev.nic.flow.lookup(&key, f.len(), &mut tirs) {
        Verdict::Forward(n) => n,
        Verdict::Drop => {
            dev.nic.wire.stats.rx_dropped_by_rule += 1;
            return;
        }
        Verdict::Miss => {
            dev.nic.wire.stats.rx_dropped_no_steering += 1;
            return;
        }
    };
    for tirn in &tirs[..n] {
        let Some(tir) = dev.nic.tirs.get(*tirn) else {
            dev.nic.wire.stats.rx_dropped_no_steering += 1;
            continue;
        };
        let Some((rqn, hash)) = crate::datapath::rss::select(dev, tir, f, &h) else {
            dev.nic.wire.stats.rx_dropped_no_steering += 1;
            continue;
        };
        deliver(dev, rqn, f, &h, hash);
    }
}

/// The vport's address filter (the e-switch's view of the function):
/// its own MAC (the vport context's permanent address) and the unicast
/// list, broadcast, multicast addresses in the multicast list; everything
/// of a class with promisc_uc / promisc_mc, everything with promisc_all.
pub fn vport_accepts(v: &crate::cmd::vport::Vport, f: &[u8]) -> bool {
    let Some(d) = f.get(..6) else {
        return false;
    };
    if v.promisc_all || d == [0xff; 6] {
        return true;
    }
    if d[0] & 1 != 0 {
        v.promisc_mc || v.mc.iter().any(|m| m == d)
    } else {
        v.promisc_uc || v.mac == d || v.uc.iter().any(|m| m == d)
    }
}

/// The receive counter from the RQ's doorbell record (dword 0).
fn posted(dev: &mut Function, wq: &Wq) -> Option<u16> {
    let mut raw = [0u8; 4];
    dev.bus
        .read(wq.dbr, &mut raw, Purpose::DoorbellRecord)
        .ok()?;
    Some(u32::from_be_bytes(raw) as u16)
}

fn read_wqe(dev: &mut Function, wq: &Wq, index: u16, into: &mut [u8]) -> bool {
    let off = (index as u64 & (wq.entries() as u64 - 1)) << wq.log_stride;
    match wq.addr(off) {
        Some(a) => dev.bus.read(a, into, Purpose::WqBuffer).is_ok(),
        None => false,
    }
}

/// RSS result for the CQE: (hash, `rss_hash_type`).
pub type Hash = (u32, u8);

fn deliver(dev: &mut Function, rqn: u32, f: &[u8], h: &Headers, hash: Hash) {
    let Some(rq) = dev.nic.rqs.get(rqn) else {
        dev.nic.wire.stats.rx_dropped_no_steering += 1;
        return;
    };
    if rq.state != STATE_RDY {
        dev.nic.wire.stats.rx_dropped_rq_not_ready += 1;
        return;
    }
    let (ci, mut pc, cqn, counter_set) = (rq.consumer, rq.posted, rq.cqn, rq.counter_set);
    // VLAN strip (rqc.vsd clear): a customer tag leaves the frame for the CQE.
    let strip = match h.vlan {
        Some((0x8100, tci)) if !rq.vsd => Some(tci),
        _ => None,
    };
    let wq = rq.wq.clone();
    if ci == pc && !wqe_posted(dev, rqn, &wq, ci, &mut pc, counter_set) {
        return;
    }
    let parts: [&[u8]; 2] = if strip.is_some() {
        [&f[..12], &f[16..]]
    } else {
        [f, &[]]
    };
    let ctx = RxCtx {
        rqn,
        cqn,
        counter_set,
        wq: &wq,
        f,
        h,
        hash,
        strip,
    };
    if let Some((log_n, log_sz)) = wq.striding {
        deliver_striding(dev, &ctx, parts, ci, pc, log_n, log_sz);
        return;
    }
    let stride = 1usize << wq.log_stride;
    let mut wqe = [0u8; MAX_STRIDE];
    let result = if let Some(s) = dev.faults.queues.take_rq_wqe(rqn) {
        // An injected bad lkey / address: refused before any write.
        Err(s)
    } else if read_wqe(dev, &wq, ci, &mut wqe[..stride]) {
        scatter(dev, wq.pd, wq.end_pad, &wqe[..stride], parts)
    } else {
        Err(cqe::SYN_LOCAL_PROT)
    };
    let next = ci.wrapping_add(1);
    if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
        rq.consumer = next;
        rq.delivered += result.is_ok() as u64;
    }
    match result {
        Ok(()) => {
            dev.nic.wire.stats.rx_delivered += 1;
            let len = parts[0].len() + parts[1].len();
            let mut e = [0u8; CQE_SIZE];
            offload_fields(&mut e, f, h, strip, hash);
            e[cqe::BYTE_CNT..cqe::BYTE_CNT + 4].copy_from_slice(&(len as u32).to_be_bytes());
            e[cqe::QPN..cqe::QPN + 4].copy_from_slice(&rqn.to_be_bytes());
            e[cqe::WQE_COUNTER..cqe::WQE_COUNTER + 2].copy_from_slice(&ci.to_be_bytes());
            e[cqe::OP_OWN] = cqe::OP_RESP_SEND << 4;
            cq::post(dev, cqn, &mut e);
        }
        Err(syndrome) => {
            dev.nic.wire.stats.rx_dropped_wqe_error += 1;
            let mut e = [0u8; CQE_SIZE];
            cq::error_entry(&mut e, cqe::OP_RESP_ERR, syndrome, 0, rqn, ci);
            cq::post(dev, cqn, &mut e);
            if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
                rq.state = STATE_ERR;
            }
            log::debug!(target: "mlx5_sim::rx", "RQ {rqn:#x} WQE {ci}: error CQE syndrome {syndrome:#x}, RQ to ERR");
            flush(dev, rqn);
        }
    }
}

/// Whether a WQE is posted at `ci` (re-reading the doorbell record into
/// `pc`); if not, the frame is dropped and counted (out_of_buffer).
fn wqe_posted(
    dev: &mut Function,
    rqn: u32,
    wq: &Wq,
    ci: u16,
    pc: &mut u16,
    counter_set: u8,
) -> bool {
    *pc = posted(dev, wq).unwrap_or(*pc);
    if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
        rq.posted = *pc;
    }
    if ci != *pc {
        return true;
    }
    dev.nic.wire.stats.rx_dropped_no_wqe += 1;
    if counter_set != 0
        && let Some(c) = dev.q_counters.get_mut(counter_set)
    {
        c.out_of_buffer = c.out_of_buffer.wrapping_add(1);
    }
    false
}

/// What the striding receive path needs about the frame and its RQ.
struct RxCtx<'a> {
    rqn: u32,
    cqn: u32,
    counter_set: u8,
    wq: &'a Wq,
    f: &'a [u8],
    h: &'a Headers,
    hash: Hash,
    strip: Option<u16>,
}

/// `mpwrq_cqe_bc` (device.h): the byte_cnt dword of a striding RQ CQE is
/// filler (bit 31) | consumed_strides (30:16) | byte count (15:0); the
/// WQE index goes to `wqe_id` (0x02) and the first stride's index to
/// `wqe_counter` (0x3c).
const MPWRQ_FILLER: u32 = 1 << 31;
const CQE_WQE_ID: usize = 0x02;

fn striding_cqe(e: &mut [u8; CQE_SIZE], rqn: u32, wqe: u16, stride: u32, bc: u32) {
    e[CQE_WQE_ID..CQE_WQE_ID + 2].copy_from_slice(&wqe.to_be_bytes());
    e[cqe::BYTE_CNT..cqe::BYTE_CNT + 4].copy_from_slice(&bc.to_be_bytes());
    e[cqe::QPN..cqe::QPN + 4].copy_from_slice(&rqn.to_be_bytes());
    e[cqe::WQE_COUNTER..cqe::WQE_COUNTER + 2].copy_from_slice(&(stride as u16).to_be_bytes());
    e[cqe::OP_OWN] = cqe::OP_RESP_SEND << 4;
}

/// Striding RQ (multi-packet WQE): the frame takes the next
/// `ceil(len / stride)` strides of the current WQE (one data segment
/// addressing `strides x stride` bytes); when they do not fit, a filler
/// CQE consumes the rest of the WQE and the frame goes to the next one.
fn deliver_striding(
    dev: &mut Function,
    c: &RxCtx,
    parts: [&[u8]; 2],
    mut ci: u16,
    mut pc: u16,
    log_n: u8,
    log_sz: u8,
) {
    let (nstrides, stride) = (1u32 << log_n, 1usize << log_sz);
    let len = parts[0].len() + parts[1].len();
    let need = len.div_ceil(stride).max(1) as u32;
    let mut used = dev.nic.rqs.get(c.rqn).map_or(0, |r| r.strides_used);
    if need > nstrides {
        return rx_error(dev, c.rqn, c.cqn, ci, cqe::SYN_LOCAL_LENGTH);
    }
    if used + need > nstrides {
        let mut e = [0u8; CQE_SIZE];
        striding_cqe(
            &mut e,
            c.rqn,
            ci,
            used,
            MPWRQ_FILLER | (nstrides - used) << 16,
        );
        cq::post(dev, c.cqn, &mut e);
        ci = ci.wrapping_add(1);
        used = 0;
        if let Some(rq) = dev.nic.rqs.get_mut(c.rqn) {
            rq.consumer = ci;
            rq.strides_used = 0;
        }
        if ci == pc && !wqe_posted(dev, c.rqn, c.wq, ci, &mut pc, c.counter_set) {
            return;
        }
    }
    if let Some(s) = dev.faults.queues.take_rq_wqe(c.rqn) {
        return rx_error(dev, c.rqn, c.cqn, ci, s);
    }
    let mut d = [0u8; DS];
    if !read_wqe(dev, c.wq, ci, &mut d) {
        return rx_error(dev, c.rqn, c.cqn, ci, cqe::SYN_LOCAL_PROT);
    }
    let count = seg_len(&d) as u64;
    let lkey = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
    let addr = u64::from_be_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
    let Ok(addr) = dev.mkeys.translate(lkey, c.wq.pd, addr, count, true) else {
        return rx_error(dev, c.rqn, c.cqn, ci, cqe::SYN_LOCAL_PROT);
    };
    if count < (nstrides as u64) << log_sz {
        return rx_error(dev, c.rqn, c.cqn, ci, cqe::SYN_LOCAL_LENGTH);
    }
    let at = addr + (used as u64) * stride as u64;
    let ok = dev.bus.write(at, parts[0], Purpose::Packet).is_ok()
        && dev
            .bus
            .write(at + parts[0].len() as u64, parts[1], Purpose::Packet)
            .is_ok()
        && (!c.wq.end_pad
            || pad_end(
                dev,
                at + len as u64,
                (need as u64) * stride as u64 - len as u64,
            )
            .is_ok());
    if !ok {
        return rx_error(dev, c.rqn, c.cqn, ci, cqe::SYN_LOCAL_PROT);
    }
    dev.nic.wire.stats.rx_delivered += 1;
    let mut e = [0u8; CQE_SIZE];
    offload_fields(&mut e, c.f, c.h, c.strip, c.hash);
    striding_cqe(&mut e, c.rqn, ci, used, need << 16 | len as u32);
    cq::post(dev, c.cqn, &mut e);
    used += need;
    if let Some(rq) = dev.nic.rqs.get_mut(c.rqn) {
        rq.delivered += 1;
        if used == nstrides {
            rq.consumer = ci.wrapping_add(1);
            rq.strides_used = 0;
        } else {
            rq.consumer = ci;
            rq.strides_used = used;
        }
    }
}

/// A responder error CQE for WQE `ci`; the RQ goes to ERR and (with
/// flush_in_error_en) its other posted WQEs are flushed.
fn rx_error(dev: &mut Function, rqn: u32, cqn: u32, ci: u16, syndrome: u8) {
    dev.nic.wire.stats.rx_dropped_wqe_error += 1;
    let mut e = [0u8; CQE_SIZE];
    cq::error_entry(&mut e, cqe::OP_RESP_ERR, syndrome, 0, rqn, ci);
    cq::post(dev, cqn, &mut e);
    if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
        rq.state = STATE_ERR;
        rq.consumer = ci.wrapping_add(1);
        rq.strides_used = 0;
    }
    log::debug!(target: "mlx5_sim::rx", "RQ {rqn:#x} WQE {ci}: error CQE syndrome {syndrome:#x}, RQ to ERR");
    flush(dev, rqn);
}

/// The receive offload fields of a responder CQE (`struct mlx5_cqe64`):
/// rss_hash_result 0x0c, rss_hash_type 0x10, check_sum 0x14, hds_ip_ext
/// 0x1c (`CQE_L2_OK` / `CQE_L3_OK` / `CQE_L4_OK`), l4_l3_hdr_type 0x1d
/// (bit 0: VLAN stripped), vlan_info 0x1e.
pub fn offload_fields(
    e: &mut [u8; CQE_SIZE],
    f: &[u8],
    h: &Headers,
    strip: Option<u16>,
    hash: Hash,
) {
    e[cqe::RSS_HASH..cqe::RSS_HASH + 4].copy_from_slice(&hash.0.to_be_bytes());
    e[cqe::RSS_HASH_TYPE] = hash.1;
    let sums = csum::Sums::of(f, h);
    e[cqe::CHECK_SUM..cqe::CHECK_SUM + 2].copy_from_slice(&sums.raw().to_be_bytes());
    let mut ok = cqe::L2_OK;
    if sums.l3_ok(h) {
        ok |= cqe::L3_OK;
    }
    if sums.l4_ok(f, h) {
        ok |= cqe::L4_OK;
    }
    e[cqe::HDS_IP_EXT] = ok;
    e[cqe::L4_L3_HDR_TYPE] = frame::cqe_hdr_type(h) | strip.is_some() as u8;
    if let Some(tci) = strip {
        e[cqe::VLAN_INFO..cqe::VLAN_INFO + 2].copy_from_slice(&tci.to_be_bytes());
    }
}

/// The cache line end padding aligns to (`cache_line_128byte`).
fn cache_line(dev: &Function) -> u64 {
    if dev
        .caps
        .general(crate::cmd::caps::hca_cap::CACHE_LINE_128BYTE)
        != 0
    {
        128
    } else {
        64
    }
}

/// End padding: zeros from `end` up to the next cache line boundary, as far
/// as `room` bytes of the buffer allow.
fn pad_end(dev: &mut Function, end: u64, room: u64) -> Result<(), u8> {
    const ZEROS: [u8; 128] = [0; 128];
    let line = cache_line(dev);
    let n = (end.next_multiple_of(line) - end).min(room) as usize;
    if n > 0 && dev.bus.write(end, &ZEROS[..n], Purpose::Packet).is_err() {
        return Err(cqe::SYN_LOCAL_PROT);
    }
    Ok(())
}

/// Copy the frame (`parts`, one after the other) into the WQE's data
/// segments; with `end_pad`, pad the last one written.
fn scatter(
    dev: &mut Function,
    pd: u32,
    end_pad: bool,
    wqe: &[u8],
    parts: [&[u8]; 2],
) -> Result<(), u8> {
    let total = parts[0].len() + parts[1].len();
    let mut done = 0;
    // (end of the frame's bytes, room left) in the last segment written.
    let mut last = (0u64, 0u64);
    for d in wqe.chunks_exact(DS) {
        if done == total {
            break;
        }
        let count = seg_len(d) as usize;
        if count == 0 {
            break;
        }
        let lkey = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        let addr = u64::from_be_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
        let n = count.min(total - done);
        let addr = dev
            .mkeys
            .translate(lkey, pd, addr, n as u64, true)
            .map_err(|_| cqe::SYN_LOCAL_PROT)?;
        // The segment's bytes may straddle the two parts.
        let mut written = 0;
        while written < n {
            let at = done + written;
            let (part, off) = if at < parts[0].len() {
                (parts[0], at)
            } else {
                (parts[1], at - parts[0].len())
            };
            let k = (part.len() - off).min(n - written);
            if dev
                .bus
                .write(addr + written as u64, &part[off..off + k], Purpose::Packet)
                .is_err()
            {
                return Err(cqe::SYN_LOCAL_PROT);
            }
            written += k;
        }
        done += n;
        last = (addr + n as u64, (count - n) as u64);
    }
    if done == total && end_pad {
        pad_end(dev, last.0, last.1)?;
    }
    if done < total {
        return Err(cqe::SYN_LOCAL_LENGTH);
    }
    Ok(())
}

/// Complete every posted WQE of an RQ in ERR with WR_FLUSH (when the RQ
/// has `flush_in_error_en`).
pub fn flush(dev: &mut Function, rqn: u32) {
    let Some(rq) = dev.nic.rqs.get(rqn) else {
        return;
    };
    if !rq.flush_in_error {
        return;
    }
    let (mut ci, cqn) = (rq.consumer, rq.cqn);
    let wq = rq.wq.clone();
    let Some(pc) = posted(dev, &wq) else {
        return;
    };
    while ci != pc {
        let mut e = [0u8; CQE_SIZE];
        cq::error_entry(&mut e, cqe::OP_RESP_ERR, cqe::SYN_WR_FLUSH, 0, rqn, ci);
        cq::post(dev, cqn, &mut e);
        ci = ci.wrapping_add(1);
    }
    if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
        rq.consumer = ci;
        rq.posted = pc;
    }
}
