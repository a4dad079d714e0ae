//! A compressed session on a striding RQ whose WQE is used up inside a
//! mini-CQE array, the session going on in the next WQE: `receive_burst`
//! stops its read of the array where the WQE's strides end, settles the
//! queue (the WQE goes back to be re-posted) and reads the rest of the
//! session, from the same array, against the next WQE. Every frame
//! arrives intact and in order, nothing is refused, and the queue takes
//! traffic after.
//!
//! The model ends a session where the WQE changes (a session's
//! completions share the title's `wqe_id`), so the test merges two of
//! its sessions in the ring into one (PRM "CQE Compression"; offsets as
//! `struct mlx5_cqe64`: `byte_cnt` 0x2c — a title's completion count —,
//! `op_own` 0x3f with the format in bits 3:2; mini-CQE array `k` of the
//! session titled at slot `t` in slot `t + 1` for `k` 0, `t + 8k` after,
//! eight 8-byte `struct mlx5_mini_cqe8` each: the result word, then
//! `byte_cnt`).

mod common;

use common::{close_port as close, open_port as open};
use cxos_drivers::NetDevice;
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::sanitizer::Purpose;

/// Frame `seq` of `len` bytes to `dst`: ethertype 0x88b5, seq, pattern.
fn frame(dst: [u8; 6], len: usize, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    b[12..14].copy_from_slice(&[0x88, 0xb5]);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, x) in b[18..].iter_mut().enumerate() {
        *x = (i as u32 ^ seq) as u8;
    }
    b
}

/// The model's address of CQ `cqn`'s slot for producer counter `at`.
fn slot_addr(sim: &SimPlatform, cqn: u32, at: u32) -> u64 {
    sim.with_model(|f| {
        let cq = f.nic.cqs.get(cqn).expect("cq");
        let byte = (at & ((1u32 << cq.log_size) - 1)) as u64 * 64;
        cq.pas[(byte / 4096) as usize] + byte % 4096
    })
}

fn producer(sim: &SimPlatform, cqn: u32) -> u32 {
    sim.with_model(|f| f.nic.cqs.get(cqn).expect("cq").producer)
}

fn read_slot(sim: &SimPlatform, cqn: u32, at: u32) -> [u8; 64] {
    let addr = slot_addr(sim, cqn, at);
    let mut e = [0u8; 64];
    sim.with_model(|f| f.bus.read(addr, &mut e, Purpose::CqBuffer))
        .expect("read");
    e
}

fn write_slot(sim: &SimPlatform, cqn: u32, at: u32, e: &[u8; 64]) {
    let addr = slot_addr(sim, cqn, at);
    sim.with_model(|f| f.bus.write(addr, e, Purpose::CqBuffer))
        .expect("write");
}

/// Whether slot `e` is a title (format 3) and its completion count.
fn title(e: &[u8; 64]) -> Option<u32> {
    ((e[0x3f] >> 2) & 3 == 3).then(|| u32::from_be_bytes([e[0x2c], e[0x2d], e[0x2e], e[0x2f]]))
}

/// The slot of mini-CQE array `k` of the session titled at `t`.
fn array_slot(t: u32, k: u32) -> u32 {
    if k == 0 { t + 1 } else { t + 8 * k }
}

/// The mini-CQEs (8 bytes each) of the `n`-completion session titled at
/// `t`, in completion order.
fn minis(sim: &SimPlatform, cqn: u32, t: u32, n: u32) -> Vec<[u8; 8]> {
    (0..n)
        .map(|i| {
            let a = read_slot(sim, cqn, array_slot(t, i / 8));
            let j = (i % 8) as usize * 8;
            a[j..j + 8].try_into().expect("8 bytes")
        })
        .collect()
}

#[test]
fn a_session_going_on_past_its_wqe_inside_an_array() {
    // 512 strides of 64 bytes per WQE: 12 frames of 16 strides and 16 of
    // 20 fill the first exactly, in completion 27 (array 3, entry 3); 12
    // more go to the second WQE.
    let lens: Vec<usize> = [(12, 1024), (16, 1280), (12, 1024)]
        .iter()
        .flat_map(|&(n, len)| std::iter::repeat_n(len, n))
        .collect();
    let (first, n) = (28u32, lens.len() as u32);
    for mode in [Mode::Synchronous, Mode::Threaded] {
        // Bursts that read the whole session, that stop at the WQE's end
        // (4 × 7 = 28) and that stop elsewhere.
        for limit in [usize::MAX, 4, 3] {
            let ctx = format!("{mode:?} limit {limit}");
            let sim = SimPlatform::new(Personality::ConnectX5, mode);
            let before = sim.dma_in_use();
            let cfg = EthConfig {
                cqe_compression: true,
                log_rq: 6,
                ..EthConfig::default()
            };
            let mut p = open(&sim, cfg);
            assert!(p.rq().expect("rq").is_striding(), "{ctx}: a striding RQ");
            let dst = p.mac();
            let cqn = p.rx_cq().expect("rx cq").cqn.0;
            let t = producer(&sim, cqn);
            let frames: Vec<Vec<u8>> = (0..n).map(|s| frame(dst, lens[s as usize], s)).collect();
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            sim.inject_rx_burst(&refs);
            assert!(common::eventually(|| producer(&sim, cqn) == t + n));
            // The model wrote two sessions, one per WQE.
            let (a, b) = (read_slot(&sim, cqn, t), read_slot(&sim, cqn, t + first));
            assert_eq!(title(&a), Some(first), "{ctx}: the first WQE's session");
            assert_eq!(
                title(&b),
                Some(n - first),
                "{ctx}: the second WQE's session"
            );
            // One session of all 40: the second's mini-CQEs continue the
            // first's, in the arrays of the merged session (array 3 holds
            // completions 24..32: four of each WQE).
            let mut all = minis(&sim, cqn, t, first);
            all.extend(minis(&sim, cqn, t + first, n - first));
            for k in 0..n.div_ceil(8) {
                let mut e = read_slot(&sim, cqn, array_slot(t, k));
                for (j, m) in all.iter().skip(8 * k as usize).take(8).enumerate() {
                    e[8 * j..8 * j + 8].copy_from_slice(m);
                }
                write_slot(&sim, cqn, array_slot(t, k), &e);
            }
            let mut a = a;
            a[0x2c..0x30].copy_from_slice(&n.to_be_bytes());
            write_slot(&sim, cqn, t, &a);
            let (faults, done) = (p.eth_stats().faults, p.rq().expect("rq").stats.wqes_done);
            let (sessions, compressed) = p.rx_cq().expect("rx cq").compression_stats();
            let mut got = Vec::new();
            for _ in 0..64 {
                p.receive_burst(limit, |f, _| {
                    let seq = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
                    assert_eq!(f, frames[seq as usize].as_slice(), "{ctx}: frame {seq}");
                    got.push(seq);
                });
            }
            p.flush();
            assert_eq!(
                got,
                (0..n).collect::<Vec<_>>(),
                "{ctx}: every frame, in order"
            );
            assert_eq!(p.eth_stats().faults, faults, "{ctx}: nothing refused");
            assert_eq!(
                p.rx_cq().expect("rx cq").compression_stats(),
                (sessions + 1, compressed + u64::from(n)),
                "{ctx}: one session"
            );
            assert_eq!(
                p.rq().expect("rq").stats.wqes_done,
                done + 1,
                "{ctx}: the first WQE used up"
            );
            // The queue goes on: the next frames arrive.
            let more = [frame(dst, 100, 100), frame(dst, 64, 101)];
            for f in &more {
                sim.inject_rx(f);
            }
            let mut after = Vec::new();
            assert!(
                common::eventually(|| {
                    p.poll();
                    p.receive_burst(usize::MAX, |f, _| {
                        after.push(u32::from_be_bytes([f[14], f[15], f[16], f[17]]))
                    });
                    after.len() >= 2
                }),
                "{ctx}: traffic after the session, got {after:?}"
            );
            assert_eq!(after, [100, 101], "{ctx}");
            close(p, &sim, before);
        }
    }
}
