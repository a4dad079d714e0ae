//! The per-frame receive path (`QueueSet::receive`, which reads a common
//! completion's tail word and body itself, one entry a call) against a
//! device that lies in a completion software owns. Four frames arrive
//! from the model; the test rewrites the third completion as a hostile
//! device would (a `wqe_id` or `wqe_counter` out of order, a byte count
//! past its strides or past the buffer, another queue's QPN, a bad
//! opcode, an error CQE) and reads with `receive`, one frame a call. The
//! rewrite comes before the first call or between the first and the
//! second (the entry software-owned since before the first call: nothing
//! read of it before may be trusted when it is taken). The lie is refused
//! as `next_frame` refuses it (a typed fault, or a counted length error),
//! the frames before it arrive, and the queue takes traffic again.
//!
//! CQE layout: `struct mlx5_cqe64` (`wqe_id` low half at 0x02,
//! `byte_cnt` 0x2c, QPN 0x39..0x3c, `wqe_counter` 0x3c, `op_own` 0x3f,
//! opcode `[7:4]`; `struct mlx5_err_cqe`'s `syndrome` at 0x37; a
//! striding RQ's `byte_cnt` is `mpwrq_cqe_bc`: filler `[31]`, strides
//! `[30:16]`, bytes `[15:0]`).

mod common;

use common::{Port, close_port as close, open_port as open};
use cxos_drivers::NetDevice;
use mlx5::cqe::{opcode, syndrome};
use mlx5::queue_set::FaultCause;
use mlx5::{EthConfig, RqChoice};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::sanitizer::Purpose;

fn frame(dst: [u8; 6], len: usize, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    b[12..14].copy_from_slice(&[0x88, 0xb5]);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    b
}

fn producer(sim: &SimPlatform, cqn: u32) -> u32 {
    sim.with_model(|f| f.nic.cqs.get(cqn).expect("cq").producer)
}

/// Rewrite the entry for producer counter `at` with `edit` (the owner
/// bit kept as the device wrote it).
fn tamper(sim: &SimPlatform, cqn: u32, at: u32, edit: impl FnOnce(&mut [u8; 64])) {
    let addr = sim.with_model(|f| {
        let cq = f.nic.cqs.get(cqn).expect("cq");
        let nent = 1u32 << cq.log_size;
        let byte = (at & (nent - 1)) as u64 * 64;
        cq.pas[(byte / 4096) as usize] + byte % 4096
    });
    sim.with_model(|f| {
        let mut e = [0u8; 64];
        f.bus.read(addr, &mut e, Purpose::CqBuffer).expect("read");
        edit(&mut e);
        f.bus.write(addr, &e, Purpose::CqBuffer).expect("write");
    });
}

fn rx_cqn(p: &Port) -> u32 {
    p.rx_cq().expect("rx cq").cqn.0
}

fn seq(f: &[u8]) -> u32 {
    u32::from_be_bytes([f[14], f[15], f[16], f[17]])
}

/// Seqs `receive` hands out, one a call, until it hands out nothing;
/// then the owner's recovery step.
fn drain(p: &mut Port) -> Vec<u32> {
    let mut got = Vec::new();
    for _ in 0..4 {
        while let Some(s) = p.receive(|f, _| seq(f)) {
            got.push(s);
        }
    }
    p.flush();
    while p.run_pending_recoveries() != 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    got
}

#[derive(Debug, PartialEq)]
enum Refused {
    Fault(FaultCause),
    /// Dropped and counted (`EthStats::rx_length_errors`).
    LengthError,
}

/// When the test rewrites frame 2's completion.
#[derive(Clone, Copy, Debug)]
enum When {
    /// Before the first `receive`.
    BeforeFirst,
    /// After the first `receive` took frame 0.
    BetweenCalls,
}

/// Frames 0..4 arrive, frame 2's completion rewritten by `edit` (`when`);
/// frames 0 and 1 arrive, frame 2 is refused as `want` says (a length
/// error drops frame 2 alone: frame 3 arrives too), and the queue takes
/// traffic again.
fn lie_in_frames(
    rq: RqChoice,
    name: &str,
    when: When,
    edit: impl FnOnce(&mut [u8; 64]),
    want: impl FnOnce(&Refused) -> bool,
) {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let cfg = EthConfig {
        rq_kind: rq,
        ..EthConfig::default()
    };
    let mut p = open(&sim, cfg);
    let dst = p.mac();
    let cqn = rx_cqn(&p);
    let at = producer(&sim, cqn);
    for i in 0..4 {
        sim.inject_rx(&frame(dst, 60, i));
    }
    assert!(common::eventually(|| producer(&sim, cqn) == at + 4));
    let mut edit = Some(edit);
    if let When::BeforeFirst = when {
        tamper(&sim, cqn, at + 2, edit.take().expect("edit"));
    }
    let (faults, lens) = (p.eth_stats().faults, p.eth_stats().rx_length_errors);
    assert_eq!(p.receive(|f, _| seq(f)), Some(0), "{name} ({rq:?})");
    if let Some(edit) = edit {
        tamper(&sim, cqn, at + 2, edit);
    }
    let got = drain(&mut p);
    let s = p.eth_stats();
    let r = if s.faults > faults {
        let f = p.last_fault().expect("a fault record");
        assert!(f.recovered, "{f}");
        Refused::Fault(f.cause)
    } else {
        assert_eq!(s.rx_length_errors, lens + 1, "{name} ({rq:?}): refused");
        Refused::LengthError
    };
    let expect: &[u32] = if r == Refused::LengthError {
        &[1, 3]
    } else {
        &[1]
    };
    assert_eq!(
        got, expect,
        "{name} ({rq:?}, {when:?}): the frames around the lie"
    );
    assert!(want(&r), "{name} ({rq:?}): refused as {r:?}");
    let again = [frame(dst, 100, 10), frame(dst, 200, 11), frame(dst, 64, 12)];
    for f in &again {
        sim.inject_rx(f);
    }
    let mut got = Vec::new();
    assert!(
        common::eventually(|| {
            got.extend(drain(&mut p));
            got.len() >= 3
        }),
        "{name}: traffic after the lie, got {got:?}"
    );
    assert_eq!(got, [10, 11, 12], "{name}");
    close(p, &sim, before);
}

#[test]
fn lies_in_completions_are_refused_and_recorded() {
    let bad_counter = |r: &Refused| matches!(r, Refused::Fault(FaultCause::BadCompletion { .. }));
    for rq in [RqChoice::Striding, RqChoice::Cyclic] {
        // Fields the RQ checks: refused when the frame is taken.
        lie_in_frames(
            rq,
            "wqe_counter out of order",
            When::BeforeFirst,
            |e| e[0x3c] ^= 0x40,
            bad_counter,
        );
        // A length past what the buffer (cyclic) or the one stride the
        // frame took (striding) holds.
        lie_in_frames(
            rq,
            "byte_cnt past its strides or buffer",
            When::BeforeFirst,
            |e| {
                let bc = (1u32 << 16) | 0xffff;
                e[0x2c..0x30].copy_from_slice(&bc.to_be_bytes());
            },
            |r| *r == Refused::LengthError,
        );
        // Fields of the tail word: refused by its masked compare.
        lie_in_frames(
            rq,
            "another queue",
            When::BeforeFirst,
            |e| e[0x3b] ^= 0x5a,
            |r| matches!(r, Refused::Fault(FaultCause::WrongQueue { .. })),
        );
        lie_in_frames(
            rq,
            "bad opcode",
            When::BeforeFirst,
            |e| e[0x3f] = (7 << 4) | (e[0x3f] & 1),
            |r| *r == Refused::Fault(FaultCause::BadOpcode(7)),
        );
    }
    // A striding RQ names its WQE in `wqe_id`: another WQE's is refused.
    lie_in_frames(
        RqChoice::Striding,
        "wqe_id of another WQE",
        When::BeforeFirst,
        |e| e[0x03] ^= 0x11,
        bad_counter,
    );
}

#[test]
fn an_entry_rewritten_between_two_calls_is_read_as_it_now_is() {
    // The tail word (owner, opcode, format, QPN) of the entry taken is
    // read and checked when it is taken, not trusted from an earlier
    // look at it: the entry is refused as it now reads.
    let error = |e: &mut [u8; 64]| {
        e[0x37] = syndrome::LOCAL_LENGTH_ERR;
        e[0x3f] = (opcode::RESP_ERR << 4) | (e[0x3f] & 1);
    };
    for rq in [RqChoice::Striding, RqChoice::Cyclic] {
        lie_in_frames(rq, "error CQE", When::BetweenCalls, error, |r| {
            matches!(
                r,
                Refused::Fault(FaultCause::ErrorCqe {
                    opcode: opcode::RESP_ERR,
                    syndrome: syndrome::LOCAL_LENGTH_ERR,
                    ..
                })
            )
        });
        lie_in_frames(
            rq,
            "another queue",
            When::BetweenCalls,
            |e| e[0x3b] ^= 0x5a,
            |r| matches!(r, Refused::Fault(FaultCause::WrongQueue { .. })),
        );
        lie_in_frames(
            rq,
            "bad opcode",
            When::BetweenCalls,
            |e| e[0x3f] = (7 << 4) | (e[0x3f] & 1),
            |r| *r == Refused::Fault(FaultCause::BadOpcode(7)),
        );
    }
}
