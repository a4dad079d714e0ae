//! The receive engine: a frame from the wire is checked (link up, length),
//! steered by the NIC_RX root flow table on its destination MAC to a TIR,
//! whose RQ takes it into the next posted WQE; a responder CQE
//! (`MLX5_CQE_RESP_SEND`: byte_cnt 0x2c, l4_l3_hdr_type 0x25, rqn in
//! sop_drop_qpn 0x38, wqe_counter 0x3c) follows, and an EQE + MSI-X when
//! the CQ is armed.
//!
//! Posted WQEs: the RQ's doorbell record dword 0 holds the receive counter
//! (16 bits); the model re-reads it only when it has consumed everything it
//! last saw. No posted WQE: the frame is dropped and counted in the RQ's Q
//! counter set (`out_of_buffer`) and the port's `rx_dropped_no_wqe`.
//!
//! Errors (responder error CQE `MLX5_CQE_RESP_ERR`): LOCAL_PROT (0x04) for a
//! data segment whose lkey is not the reserved lkey or whose address the
//! bus refuses; LOCAL_LENGTH (0x01) when the WQE's segments are too small
//! for the frame. The RQ moves to ERR; with `flush_in_error_en` the rest of
//! the posted WQEs complete with WR_FLUSH (0x05).
#![deny(unsafe_code)]

use crate::cmd::cq::{self, CQE_SIZE, cqe};
use crate::cmd::pd::RESERVED_LKEY;
use crate::cmd::sq::{STATE_ERR, STATE_RDY};
use crate::cmd::wq::Wq;
use crate::device::Device;
use crate::sanitizer::Purpose;

use super::frame;

const ETH_HLEN: usize = 14;
const DS: usize = 16;
/// Largest RQ stride (4 data segments).
const MAX_STRIDE: usize = 64;

/// Take one frame from the wire.
pub fn receive(dev: &mut Device, f: &[u8]) {
    let stats = &mut dev.nic.wire.stats;
    stats.rx_frames += 1;
    stats.rx_bytes += f.len() as u64;
    if !dev.port.oper_up() {
        stats.rx_dropped_link_down += 1;
        return;
    }
    // The MAC accepts frames up to the port's largest MTU plus an Ethernet
    // header and one VLAN tag.
    if f.len() < ETH_HLEN || f.len() > dev.port.max_mtu as usize + ETH_HLEN + 4 {
        stats.rx_dropped_bad_length += 1;
        return;
    }
    let mut mac = [0u8; 8];
    mac[2..].copy_from_slice(&f[..6]);
    let dmac = u64::from_be_bytes(mac);
    let Some(tirn) = dev.nic.flow.lookup(dmac) else {
        dev.nic.wire.stats.rx_dropped_no_steering += 1;
        return;
    };
    let Some(rqn) = dev.nic.tirs.get(tirn).map(|t| t.rqn) else {
        dev.nic.wire.stats.rx_dropped_no_steering += 1;
        return;
    };
    deliver(dev, rqn, f);
}

/// The receive counter from the RQ's doorbell record (dword 0).
fn posted(dev: &mut Device, wq: &Wq) -> Option<u16> {
    let mut raw = [0u8; 4];
    dev.bus
        .read(wq.dbr, &mut raw, Purpose::DoorbellRecord)
        .ok()?;
    Some(u32::from_be_bytes(raw) as u16)
}

fn read_wqe(dev: &mut Device, wq: &Wq, index: u16, into: &mut [u8]) -> bool {
    let off = (index as u64 & (wq.entries() as u64 - 1)) << wq.log_stride;
    match wq.addr(off) {
        Some(a) => dev.bus.read(a, into, Purpose::WqBuffer).is_ok(),
        None => false,
    }
}

fn deliver(dev: &mut Device, rqn: u32, f: &[u8]) {
    let Some(rq) = dev.nic.rqs.get(rqn) else {
        dev.nic.wire.stats.rx_dropped_no_steering += 1;
        return;
    };
    if rq.state != STATE_RDY {
        dev.nic.wire.stats.rx_dropped_rq_not_ready += 1;
        return;
    }
    let (ci, mut pc, cqn, counter_set) = (rq.consumer, rq.posted, rq.cqn, rq.counter_set);
    let wq = rq.wq.clone();
    if ci == pc {
        pc = posted(dev, &wq).unwrap_or(pc);
        if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
            rq.posted = pc;
        }
        if ci == pc {
            dev.nic.wire.stats.rx_dropped_no_wqe += 1;
            if counter_set != 0
                && let Some(c) = dev.q_counters.get_mut(counter_set)
            {
                c.out_of_buffer = c.out_of_buffer.wrapping_add(1);
            }
            return;
        }
    }
    let stride = 1usize << wq.log_stride;
    let mut wqe = [0u8; MAX_STRIDE];
    let result = if read_wqe(dev, &wq, ci, &mut wqe[..stride]) {
        scatter(dev, &wqe[..stride], f)
    } else {
        Err(cqe::SYN_LOCAL_PROT)
    };
    let next = ci.wrapping_add(1);
    if let Some(rq) = dev.nic.rqs.get_mut(rqn) {
        rq.consumer = next;
    }
    match result {
        Ok(()) => {
            dev.nic.wire.stats.rx_delivered += 1;
            let h = frame::parse(f);
            let mut e = [0u8; CQE_SIZE];
            e[cqe::L4_L3_HDR_TYPE] = frame::cqe_hdr_type(&h);
            e[cqe::BYTE_CNT..cqe::BYTE_CNT + 4].copy_from_slice(&(f.len() as u32).to_be_bytes());
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

/// Copy `f` into the WQE's data segments.
fn scatter(dev: &mut Device, wqe: &[u8], f: &[u8]) -> Result<(), u8> {
    let mut done = 0;
    for d in wqe.chunks_exact(DS) {
        if done == f.len() {
            break;
        }
        let count = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
        if count == 0 {
            break;
        }
        let lkey = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        let addr = u64::from_be_bytes([d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15]]);
        if lkey != RESERVED_LKEY {
            return Err(cqe::SYN_LOCAL_PROT);
        }
        let n = count.min(f.len() - done);
        if dev
            .bus
            .write(addr, &f[done..done + n], Purpose::Packet)
            .is_err()
        {
            return Err(cqe::SYN_LOCAL_PROT);
        }
        done += n;
    }
    if done < f.len() {
        return Err(cqe::SYN_LOCAL_LENGTH);
    }
    Ok(())
}

/// Complete every posted WQE of an RQ in ERR with WR_FLUSH (when the RQ
/// has `flush_in_error_en`).
pub fn flush(dev: &mut Device, rqn: u32) {
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
