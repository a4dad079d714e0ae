//! Queue faults found on the packet path issue no command: the poll (or
//! receive) that meets the error CQE records it at once (`outcome=pending`)
//! and takes the queue out of use; the owner's recovery step
//! (`QueueSet::run_pending_recoveries`) cycles it, starting each command
//! and looking at it on a later step, so a lost command holds the
//! recovery, not the caller. Counted on the model: no command between the
//! fault and the step. Every buffer back, traffic after, sanitizer clean.

mod common;

use std::time::{Duration, Instant};

use common::{Port, close_port as close};
use cxos_drivers::{NetDevice, TxError};
use mlx5::fault::{FaultAction, FaultClass, FaultOutcome, FaultRecord};
use mlx5_sim::Personality;
use mlx5_sim::harness::SimPlatform;
use mlx5_sim::queue_faults::{BadWqe, QueueFault};

const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

fn frame(b: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    b[12..14].copy_from_slice(&ETHERTYPE);
}

/// Send a -> b until `n` arrived, polling both and running their
/// recovery steps; how many arrived (at least `n` unless 5 s passed).
fn traffic(a: &mut Port, b: &mut Port, n: usize) -> usize {
    let (dst, src) = (b.mac(), a.mac());
    let (mut got, start) = (0, Instant::now());
    while got < n && start.elapsed() < Duration::from_secs(5) {
        match a.transmit(64, |f| frame(f, dst, src)) {
            Ok(()) | Err(TxError::Busy) => {}
            Err(e) => panic!("transmit: {e}"),
        }
        a.flush();
        a.poll();
        b.poll();
        a.run_pending_recoveries();
        b.run_pending_recoveries();
        while b.receive(|_, _| ()).is_some() {
            got += 1;
        }
        b.flush();
        std::thread::sleep(Duration::from_micros(200));
    }
    got
}

fn last(p: &Port, class: FaultClass) -> Option<FaultRecord> {
    p.control()
        .faults()
        .records()
        .rev()
        .find(|r| r.class == class)
        .copied()
}

/// Two cabled models and a port on each (a's adapter with `a_cfg`);
/// their DMA use before attach.
type Pair = (
    SimPlatform,
    SimPlatform,
    Port,
    Port,
    ((usize, usize), (usize, usize)),
);

fn pair(interrupts: bool, a_cfg: mlx5::Config) -> Pair {
    let parts = (Personality::ConnectX5, Personality::ConnectX5);
    let p = common::pair::Pair::open_parts(parts, interrupts, |sa, cfg| {
        let a = mlx5::Adapter::attach(sa.clone(), a_cfg)
            .map_err(|f| f.error)
            .expect("attach");
        let r = mlx5::Resources::of(&a).expect("resources");
        mlx5::QueueSet::open(a, r, cfg)
            .map_err(|f| f.error)
            .expect("open")
    });
    (p.sa, p.sb, p.a, p.b, p.before)
}

/// An SQ error CQE: the polls that find it run no command; the step
/// does (QUERY_SQ, MODIFY_SQ ERR -> RST, MODIFY_SQ RST -> RDY); the
/// record is settled in place; traffic resumes with every buffer back.
#[test]
fn an_sq_error_found_by_poll_is_recovered_by_the_step() {
    for interrupts in [false, true] {
        let (sa, sb, mut a, mut b, before) = pair(interrupts, common::config());
        assert!(traffic(&mut a, &mut b, 8) >= 8);
        let dma = sa.dma_in_use();
        sa.inject_queue(QueueFault::SqBad {
            what: BadWqe::Lkey,
            sqn: None,
            count: 1,
        })
        .expect("armed");
        let cmds = sa.commands_executed();
        let (dst, src) = (b.mac(), a.mac());
        a.transmit(64, |f| frame(f, dst, src)).expect("room");
        a.flush();
        let start = Instant::now();
        let pending = loop {
            a.poll();
            if let Some(r) = last(&a, FaultClass::SqErr) {
                break r;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no record");
            std::thread::sleep(Duration::from_millis(1));
        };
        for _ in 0..10 {
            a.poll();
        }
        assert_eq!(sa.commands_executed(), cmds, "a command inside poll");
        assert_eq!(
            (pending.action, pending.outcome),
            (FaultAction::QueueReset, FaultOutcome::Pending),
            "{pending}"
        );
        assert!(format!("{pending}").ends_with("action=queue-reset outcome=pending"));
        assert_eq!(
            a.transmit(64, |f| frame(f, dst, src)).unwrap_err(),
            TxError::Busy,
            "nothing posted to an SQ in error"
        );
        assert_eq!(a.recoveries_pending(), 1);
        assert_eq!(a.run_pending_recoveries(), 0);
        assert_eq!(sa.commands_executed(), cmds + 3, "QUERY_SQ, 2 x MODIFY_SQ");
        let done = last(&a, FaultClass::SqErr).unwrap();
        assert_eq!(done.seq, pending.seq, "settled in place: {done}");
        assert_eq!(
            (done.action, done.outcome),
            (FaultAction::QueueReset, FaultOutcome::Recovered),
            "{done}"
        );
        assert_eq!(a.control().faults().count(FaultClass::SqErr), 1);
        assert!(traffic(&mut a, &mut b, 16) >= 16, "traffic after");
        let entries = a.sq().unwrap().entries();
        assert_eq!(a.tx_free(), entries, "every transmit buffer back");
        assert_eq!(sa.dma_in_use(), dma, "nothing held");
        close(a, &sa, before.0);
        close(b, &sb, before.1);
    }
}

/// An RQ error CQE met by `receive`: no command, nothing taken from or
/// posted to the RQ until the step cycles it; then every buffer is
/// posted again and frames arrive.
#[test]
fn an_rq_error_found_by_receive_is_recovered_by_the_step() {
    for interrupts in [false, true] {
        let (sa, sb, mut a, mut b, before) = pair(interrupts, common::config());
        assert!(traffic(&mut a, &mut b, 8) >= 8);
        sb.inject_queue(QueueFault::RqBad {
            what: BadWqe::Addr,
            rqn: None,
            count: 1,
        })
        .expect("armed");
        let cmds = sb.commands_executed();
        let (dst, src) = (b.mac(), a.mac());
        let start = Instant::now();
        let pending = loop {
            let _ = a.transmit(64, |f| frame(f, dst, src));
            a.flush();
            a.poll();
            b.poll();
            while b.receive(|_, _| ()).is_some() {}
            b.flush();
            if let Some(r) = last(&b, FaultClass::RqErr) {
                break r;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no record");
            std::thread::sleep(Duration::from_millis(1));
        };
        let posted = b.rq().unwrap().posted();
        for _ in 0..4 {
            let _ = a.transmit(64, |f| frame(f, dst, src));
            a.flush();
            a.poll();
            b.poll();
            assert!(b.receive(|_, _| ()).is_none(), "taken from an RQ in error");
            b.flush();
        }
        assert_eq!(
            sb.commands_executed(),
            cmds,
            "a command inside poll/receive"
        );
        assert_eq!(b.rq().unwrap().posted(), posted, "posted to an RQ in error");
        assert_eq!(pending.outcome, FaultOutcome::Pending, "{pending}");
        assert_eq!(b.run_pending_recoveries(), 0);
        assert_eq!(sb.commands_executed(), cmds + 3, "QUERY_RQ, 2 x MODIFY_RQ");
        let done = last(&b, FaultClass::RqErr).unwrap();
        assert_eq!(
            (done.seq, done.action, done.outcome),
            (
                pending.seq,
                FaultAction::QueueReset,
                FaultOutcome::Recovered
            ),
            "{done}"
        );
        let rq = b.rq().unwrap();
        assert_eq!(rq.posted(), rq.entries(), "every receive buffer posted");
        assert!(traffic(&mut a, &mut b, 16) >= 16, "traffic after");
        close(a, &sa, before.0);
        close(b, &sb, before.1);
    }
}

/// The command timeout while a recovery's command is lost.
const LOST_COMMAND_MS: u64 = 3000;

/// The recovery's MODIFY_SQ is lost: each step returns at once (it only
/// looks at the command), the other side of the port keeps receiving,
/// and after the command timeout (`mlx5.cmd.timeout`) the recovery
/// escalates as the policy says: a port-level reset, which recovers.
#[test]
fn a_lost_recovery_command_holds_the_recovery_not_the_caller() {
    // A command timeout long enough that the steps and frames counted
    // inside it do not depend on the machine's load; a step that waited
    // for the command would take all of it.
    let cfg = mlx5::Config {
        cmd_timeout_ms: Some(LOST_COMMAND_MS),
        ..common::short_timeouts()
    };
    let (sa, sb, mut a, mut b, before) = pair(false, cfg);
    assert!(traffic(&mut a, &mut b, 8) >= 8);
    sa.inject_queue(QueueFault::SqBad {
        what: BadWqe::Lkey,
        sqn: None,
        count: 1,
    })
    .expect("armed");
    sa.inject(mlx5_sim::Fault::CommandNoCompletion {
        opcode: mlx5::cmd::op::MODIFY_SQ,
    });
    let (dst, src) = (b.mac(), a.mac());
    a.transmit(64, |f| frame(f, dst, src)).expect("room");
    a.flush();
    let start = Instant::now();
    while last(&a, FaultClass::SqErr).is_none() {
        a.poll();
        assert!(start.elapsed() < Duration::from_secs(5), "no record");
    }
    // b -> a frames arrive while a's SQ recovery waits on its command.
    let (bdst, bsrc) = (a.mac(), b.mac());
    let (mut steps, mut got, mut longest) = (0, 0, Duration::ZERO);
    let start = Instant::now();
    loop {
        let t = Instant::now();
        let left = a.run_pending_recoveries();
        longest = longest.max(t.elapsed());
        steps += 1;
        if left == 0 {
            break;
        }
        let _ = b.transmit(64, |f| frame(f, bdst, bsrc));
        b.flush();
        b.poll();
        a.poll();
        while a.receive(|_, _| ()).is_some() {
            got += 1;
        }
        a.flush();
        assert!(start.elapsed() < Duration::from_secs(30), "never ended");
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("{steps} steps, longest {longest:?}, {got} frames received meanwhile");
    assert!(
        steps > 10,
        "the lost command was waited for inside one step"
    );
    assert!(
        longest < Duration::from_millis(LOST_COMMAND_MS / 3),
        "a step waited {longest:?}"
    );
    assert!(got > 10, "{got} frames received while the recovery waited");
    let timeout = last(&a, FaultClass::CmdTimeout).expect("the lost command recorded");
    assert_eq!(
        timeout.object,
        mlx5::FaultObject::Command(mlx5::cmd::op::MODIFY_SQ),
        "{timeout}"
    );
    let done = last(&a, FaultClass::SqErr).unwrap();
    assert_eq!(
        (done.action, done.outcome),
        (FaultAction::PortReset, FaultOutcome::Recovered),
        "{done}"
    );
    assert_eq!(a.control().faults().count(FaultClass::SqErr), 1);
    sa.clear_faults();
    assert!(traffic(&mut a, &mut b, 16) >= 16, "traffic after");
    close(a, &sa, before.0);
    close(b, &sb, before.1);
}
