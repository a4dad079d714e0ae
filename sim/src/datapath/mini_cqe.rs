//! CQE compression (PRM "CQE Compression"; `cqc.cqe_comp_en`,
//! `cqc.mini_cqe_res_format`, `struct mlx5_mini_cqe8` in device.h).
//!
//! A CQ created with `cqe_comp_en` holds the responder CQEs of a burst of
//! received frames ([`crate::function::Function::receive_burst`]) and,
//! when the burst ends (or a CQE that cannot join arrives, or the session
//! is [`MAX_SESSION`] long), writes them as one compressed session of `n`
//! CQE slots for `n` frames:
//!
//! - slot `t` (the title): the first CQE with `byte_cnt` (0x2c) holding
//!   `n` and `op_own` bits 3:2 (`cqe_format`) = 3 (`MLX5_COMPRESSED`);
//!   every field but the mini-CQE's ones is common to the session;
//! - mini-CQE array `k` (8 entries of 8 bytes) in slot `t + 1` for
//!   `k = 0` and `t + 8k` after: per frame the result word (format 0:
//!   `rx_hash_result`; format 1: `check_sum` then `stridx`, 0 here) and
//!   `byte_cnt`; the arrays carry no owner bit;
//! - the other slots of the session are not written (software rewrites
//!   the owner bytes of all `n` slots as it consumes them).
//!
//! Frame `i` of the session has the title's fields with the mini-CQE's,
//! and its `wqe_counter` is the title's plus `i` (cyclic RQ) or plus the
//! strides the frames before it consumed (striding RQ, from their byte
//! counts' `consumed_strides`). A single held CQE is written as it was.
//! Joins a session only a CQE that is a responder CQE (not a filler, not
//! an error) equal to the title outside the mini-CQE's fields and
//! `wqe_counter`, whose `wqe_counter` follows the last one's.
#![deny(unsafe_code)]

use crate::cmd::cq::{self, CQE_SIZE, cqe};
use crate::function::Function;

/// The longest session the model builds (`cqe_compression_max_num`).
pub const MAX_SESSION: usize = 64;
/// `MLX5_COMPRESSED` in `op_own` bits 3:2.
pub const FORMAT_COMPRESSED: u8 = 3;
/// `mini_cqe_res_format`: 0 RSS hash, 1 checksum (`MLX5_CQE_FORMAT_CSUM`).
pub const RES_HASH: u8 = 0;
pub const RES_CSUM: u8 = 1;
/// Entries of a mini-CQE array (`MLX5_MINI_CQE_ARRAY_SIZE`).
pub const ARRAY: usize = 8;
const MINI: usize = 8;
const RSS_HASH_TYPE: usize = 0x10;
const CHECK_SUM_END: usize = 0x16;
const MPWRQ_FILLER: u32 = 1 << 31;

/// The slot (relative to the title) of mini-CQE array `k`.
pub fn array_slot(k: usize) -> usize {
    if k == 0 { 1 } else { ARRAY * k }
}

fn be32(e: &[u8; CQE_SIZE], o: usize) -> u32 {
    u32::from_be_bytes([e[o], e[o + 1], e[o + 2], e[o + 3]])
}

fn wqe_counter(e: &[u8; CQE_SIZE]) -> u16 {
    u16::from_be_bytes([e[cqe::WQE_COUNTER], e[cqe::WQE_COUNTER + 1]])
}

/// The `wqe_counter` the CQE after `e` must have to join its session.
fn next_counter(e: &[u8; CQE_SIZE], striding: bool) -> u16 {
    if striding {
        let strides = (be32(e, cqe::BYTE_CNT) >> 16) & 0x7fff;
        wqe_counter(e).wrapping_add(strides as u16)
    } else {
        wqe_counter(e).wrapping_add(1)
    }
}

/// Whether `e` is a CQE a session may hold at all.
fn compressible(e: &[u8; CQE_SIZE]) -> bool {
    e[cqe::OP_OWN] >> 4 == cqe::OP_RESP_SEND
        && (e[cqe::OP_OWN] >> 2) & 3 == 0
        && be32(e, cqe::BYTE_CNT) & MPWRQ_FILLER == 0
}

/// Whether `e` may follow `last` in the session titled `title`.
fn joins(
    title: &[u8; CQE_SIZE],
    last: &[u8; CQE_SIZE],
    e: &[u8; CQE_SIZE],
    fmt: u8,
    striding: bool,
) -> bool {
    // Fields the mini-CQE carries, and the counter, may differ; with the
    // checksum format the hash is the title's for the first frame only.
    let differ = |o: usize| {
        (cqe::BYTE_CNT..cqe::BYTE_CNT + 4).contains(&o)
            || (cqe::WQE_COUNTER..cqe::WQE_COUNTER + 2).contains(&o)
            || match fmt {
                RES_HASH => (cqe::RSS_HASH..RSS_HASH_TYPE).contains(&o),
                _ => {
                    (cqe::RSS_HASH..=RSS_HASH_TYPE).contains(&o)
                        || (cqe::CHECK_SUM..CHECK_SUM_END).contains(&o)
                }
            }
    };
    (0..CQE_SIZE).all(|o| differ(o) || title[o] == e[o])
        && wqe_counter(e) == next_counter(last, striding)
}

/// The mini-CQE of `e` (`struct mlx5_mini_cqe8`).
fn mini(e: &[u8; CQE_SIZE], fmt: u8) -> [u8; MINI] {
    let mut m = [0u8; MINI];
    match fmt {
        RES_HASH => m[0..4].copy_from_slice(&e[cqe::RSS_HASH..cqe::RSS_HASH + 4]),
        _ => m[0..2].copy_from_slice(&e[cqe::CHECK_SUM..CHECK_SUM_END]),
    }
    m[4..8].copy_from_slice(&e[cqe::BYTE_CNT..cqe::BYTE_CNT + 4]);
    m
}

/// Called by [`cq::post`] for every CQE: `Some(written)` when the CQE was
/// taken into (or written with) a session, `None` when `post` writes it
/// itself (after this wrote any held session: order is kept).
pub fn hold(dev: &mut Function, cqn: u32, e: &[u8; CQE_SIZE]) -> Option<bool> {
    let batching = dev.nic.cqs.batching;
    let cq = dev.nic.cqs.get(cqn)?;
    let fmt = cq.compression?;
    if !batching || !compressible(e) {
        flush(dev, cqn);
        return None;
    }
    let rqn = be32(e, cqe::QPN) & 0xff_ffff;
    let striding = dev
        .nic
        .rqs
        .get(rqn)
        .is_some_and(|r| r.wq.striding.is_some());
    let cq = dev.nic.cqs.get(cqn)?;
    let max = MAX_SESSION.min(1 << cq.log_size);
    let fits = match (cq.session.first(), cq.session.last()) {
        (Some(t), Some(l)) => cq.session.len() < max && joins(t, l, e, fmt, striding),
        _ => true,
    };
    if !fits {
        flush(dev, cqn);
    }
    let cq = dev.nic.cqs.get_mut(cqn)?;
    cq.session.push(*e);
    Some(true)
}

/// Write CQ `cqn`'s held CQEs (a session, or one plain CQE).
pub fn flush(dev: &mut Function, cqn: u32) {
    let Some(cq) = dev.nic.cqs.get_mut(cqn) else {
        return;
    };
    let fmt = cq.compression.unwrap_or(RES_CSUM);
    let mut held = std::mem::take(&mut cq.session);
    match held.len() {
        0 => {}
        1 => {
            cq::post_now(dev, cqn, &mut held[0]);
        }
        n => write_session(dev, cqn, &held, fmt, n),
    }
    held.clear();
    if let Some(cq) = dev.nic.cqs.get_mut(cqn) {
        cq.session = held;
    }
}

/// Write every CQ's held CQEs (the end of a burst).
pub fn flush_all(dev: &mut Function) {
    let held: Vec<u32> = dev.nic.cqs.with_session().collect();
    for cqn in held {
        flush(dev, cqn);
    }
}

fn write_session(dev: &mut Function, cqn: u32, held: &[[u8; CQE_SIZE]], fmt: u8, n: usize) {
    let Some(t) = cq::reserve(dev, cqn, n as u32) else {
        return;
    };
    for (k, chunk) in held.chunks(ARRAY).enumerate() {
        let mut arr = [0u8; CQE_SIZE];
        for (i, e) in chunk.iter().enumerate() {
            arr[i * MINI..(i + 1) * MINI].copy_from_slice(&mini(e, fmt));
        }
        if !cq::write_slot(dev, cqn, t.wrapping_add(array_slot(k) as u32), &arr, false) {
            return;
        }
    }
    let mut title = held[0];
    title[cqe::BYTE_CNT..cqe::BYTE_CNT + 4].copy_from_slice(&(n as u32).to_be_bytes());
    title[cqe::OP_OWN] = (title[cqe::OP_OWN] & 0xf0) | FORMAT_COMPRESSED << 2;
    if cq::write_slot(dev, cqn, t, &title, true) {
        dev.nic.wire.stats.rx_compressed_sessions += 1;
        cq::completed(dev, cqn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_slots_follow_the_prm() {
        // Arrays at title+1, +8, +16: frames 0-7, 8-15, 16-23.
        assert_eq!([array_slot(0), array_slot(1), array_slot(2)], [1, 8, 16]);
    }

    /// Mini-CQE (`struct mlx5_mini_cqe8`): checksum at byte 0 (format 1)
    /// or rx_hash_result at 0 (format 0), byte_cnt at byte 4.
    #[test]
    fn mini_cqe_layout() {
        let mut e = [0u8; CQE_SIZE];
        e[0x0c..0x10].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        e[0x14..0x16].copy_from_slice(&[0x12, 0x34]);
        e[0x2c..0x30].copy_from_slice(&[0, 0, 0x05, 0xea]);
        assert_eq!(mini(&e, RES_CSUM), [0x12, 0x34, 0, 0, 0, 0, 0x05, 0xea]);
        assert_eq!(
            mini(&e, RES_HASH),
            [0xde, 0xad, 0xbe, 0xef, 0, 0, 0x05, 0xea]
        );
    }

    #[test]
    fn joining_rules() {
        let mut a = [0u8; CQE_SIZE];
        a[cqe::OP_OWN] = cqe::OP_RESP_SEND << 4;
        a[0x38..0x3c].copy_from_slice(&[0, 0, 0x10, 0x01]);
        let mut b = a;
        b[0x3d] = 1;
        b[0x14] = 0x55;
        assert!(joins(&a, &a, &b, RES_CSUM, false));
        // The checksum is the title's in the hash format.
        assert!(!joins(&a, &a, &b, RES_HASH, false));
        // Not the next WQE.
        b[0x3d] = 2;
        assert!(!joins(&a, &a, &b, RES_CSUM, false));
        // Striding: the next stride after the strides the last consumed.
        a[0x2c..0x30].copy_from_slice(&[0, 3, 0, 64]);
        b[0x3d] = 3;
        assert!(joins(&a, &a, &b, RES_CSUM, true));
        // Another queue.
        b[0x3b] = 2;
        assert!(!joins(&a, &a, &b, RES_CSUM, true));
        let mut f = a;
        f[0x2c] = 0x80;
        assert!(!compressible(&f));
    }
}
