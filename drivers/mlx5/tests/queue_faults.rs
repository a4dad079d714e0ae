//! Every data-path fault class injected in the model (as the control
//! socket's `fault ...` does), in polled and interrupt mode: the driver
//! detects it, records it (`FAULT <class> ...`), recovers, traffic
//! resumes; every transmit buffer back, every DMA byte freed at detach,
//! no sanitizer violation.

mod common;

use std::time::{Duration, Instant};

use common::Port;
use common::pair::{ETHERTYPE, Pair};
use cxos_drivers::{NetDevice, TxError};
use mlx5::TX_TIMEOUT_MS;
use mlx5::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::queue_faults::{BadWqe, QueueFault};

fn pair(interrupts: bool) -> Pair {
    Pair::open(interrupts)
}

/// Send frames a -> b until `n` arrived (frames a fault eats are lost,
/// so sending goes on), polling and running the periodic checks on both;
/// how many b received (at least `n` unless traffic stopped for 5 s).
fn traffic(p: &mut Pair, n: usize) -> usize {
    let mut got = 0;
    let start = Instant::now();
    while got < n && start.elapsed() < Duration::from_secs(5) {
        match p.send() {
            Ok(()) | Err(TxError::Busy) => {}
            Err(e) => panic!("transmit: {e}"),
        }
        p.a.flush();
        tick(p);
        while p.b.receive(|_, _| ()).is_some() {
            got += 1;
        }
        p.b.flush();
        std::thread::sleep(Duration::from_micros(200));
    }
    got
}

fn tick(p: &mut Pair) {
    p.a.poll();
    p.b.poll();
    p.a.check();
    p.b.check();
}

/// Poll and check both sides until `side`'s log holds a record of
/// `class` with a final outcome.
fn wait_record(p: &mut Pair, on_a: bool, class: FaultClass) -> FaultRecord {
    let start = Instant::now();
    loop {
        tick(p);
        let port = if on_a { &p.a } else { &p.b };
        if let Some(r) = port.control().faults().records().rev().find(|r| {
            r.class == class
                && r.outcome != FaultOutcome::Deferred
                && r.outcome != FaultOutcome::Pending
        }) {
            return *r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {class} record; log: {:?}",
            port.control().faults().records().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Traffic flows, the fault is recorded and recovered, traffic flows
/// again, nothing is lost.
fn run(interrupts: bool, on_a: bool, q: QueueFault, class: FaultClass, action: FaultAction) {
    run_on(pair(interrupts), on_a, q, class, action);
}

fn run_on(p: Pair, on_a: bool, q: QueueFault, class: FaultClass, action: FaultAction) {
    Pair::close(run_kept(p, on_a, q, class, action));
}

/// [`run_on`] without closing the ports.
fn run_kept(
    mut p: Pair,
    on_a: bool,
    q: QueueFault,
    class: FaultClass,
    action: FaultAction,
) -> Pair {
    assert!(traffic(&mut p, 8) >= 8, "before the fault");
    let sim = if on_a { &p.sa } else { &p.sb };
    let dma_before = sim.dma_in_use();
    let counted = (p.a.net_stats(), p.b.net_stats());
    let armed = sim.inject_queue(q).expect("armed");
    // Frames that meet the fault (and those flushed behind them) are lost.
    traffic(&mut p, 4);
    let r = wait_record(&mut p, on_a, class);
    assert_eq!(
        (r.action, r.outcome),
        (action, FaultOutcome::Recovered),
        "{armed}: {r}"
    );
    let line = format!("{r}");
    println!("{line}");
    assert!(
        line.starts_with(&format!("FAULT {} ", class.name()))
            && line.ends_with("outcome=recovered"),
        "{line}"
    );
    let port = if on_a { &p.a } else { &p.b };
    assert!(port.control().faults().count(class) >= 1);
    assert!(traffic(&mut p, 16) >= 16, "{armed}: traffic after recovery");
    // A recovery that replaces a queue keeps its counters: a reader that
    // waits for them to grow (the soak's `stats`) sees traffic resume.
    let (a, b) = (p.a.net_stats(), p.b.net_stats());
    assert!(
        a.tx_packets >= counted.0.tx_packets + 16 && b.rx_packets >= counted.1.rx_packets + 16,
        "{armed}: counters after recovery: a tx {} -> {}, b rx {} -> {}",
        counted.0.tx_packets,
        a.tx_packets,
        counted.1.rx_packets,
        b.rx_packets
    );
    let entries = p.a.sq().unwrap().entries();
    assert_eq!(p.a.tx_free(), entries, "every transmit buffer back");
    // Recovery gives back what it replaced: nothing held until detach.
    let sim = if on_a { &p.sa } else { &p.sb };
    assert_eq!(
        sim.dma_in_use(),
        dma_before,
        "{armed}: DMA memory after recovery"
    );
    p
}

const MODES: [bool; 2] = [false, true];

type SimNic = mlx5::vnic::Nic<mlx5::Adapter<SimPlatform>>;
type SimVnic = mlx5::vnic::Vnic<mlx5::Adapter<SimPlatform>>;

/// A ConnectX-5 model, its DMA use before attach, and a Nic with one VNIC
/// of two receive queues (RSS) on small rings.
fn two_queue_vnic(interrupts: bool) -> (SimPlatform, (usize, usize), SimNic, SimVnic) {
    use mlx5::vnic::VnicSpec;
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let nic = common::nic(&sim, interrupts);
    let v = nic
        .create(VnicSpec {
            queues: 2,
            ..VnicSpec::default()
        })
        .unwrap();
    (sim, before, nic, v)
}

#[test]
fn sq_bad_lkey_and_bad_addr() {
    for interrupts in MODES {
        for what in [BadWqe::Lkey, BadWqe::Addr] {
            let q = QueueFault::SqBad {
                what,
                sqn: None,
                count: 1,
            };
            run(
                interrupts,
                true,
                q,
                FaultClass::SqErr,
                FaultAction::QueueReset,
            );
        }
    }
}

#[test]
fn rq_bad_lkey_and_bad_addr() {
    for interrupts in MODES {
        for what in [BadWqe::Lkey, BadWqe::Addr] {
            let q = QueueFault::RqBad {
                what,
                rqn: None,
                count: 2,
            };
            run(
                interrupts,
                false,
                q,
                FaultClass::RqErr,
                FaultAction::QueueReset,
            );
        }
    }
}

#[test]
fn cq_overflow_recreates_the_cq_and_its_sq() {
    for interrupts in MODES {
        run(
            interrupts,
            true,
            QueueFault::CqOverflow { cqn: None },
            FaultClass::CqOverflow,
            FaultAction::CqRecreate,
        );
    }
}

/// The receiving side's CQ overruns: a new CQ and RQ, put in the old
/// RQ's place in the RQT behind the dispatch TIR; frames arrive again.
#[test]
fn rx_cq_overflow_recreates_the_cq_and_its_rq() {
    for interrupts in MODES {
        let p = pair(interrupts);
        let cqn = p.b.rx_cq().unwrap().cqn.0;
        run_on(
            p,
            false,
            QueueFault::CqOverflow { cqn: Some(cqn) },
            FaultClass::CqOverflow,
            FaultAction::CqRecreate,
        );
    }
}

#[test]
fn wq_catastrophic_on_sq_and_rq() {
    for interrupts in MODES {
        run(
            interrupts,
            true,
            QueueFault::WqCatastrophic {
                sqn: None,
                rqn: None,
            },
            FaultClass::WqCatastrophic,
            FaultAction::QueueReset,
        );
        let p = pair(interrupts);
        let rqn = p.b.rq().unwrap().rqn.0;
        p.close();
        run(
            interrupts,
            false,
            QueueFault::WqCatastrophic {
                sqn: None,
                rqn: Some(rqn),
            },
            FaultClass::WqCatastrophic,
            FaultAction::QueueReset,
        );
    }
}

/// The last record of `class` on port a or b.
fn last_record(p: &Pair, on_a: bool, class: FaultClass) -> FaultRecord {
    let port = if on_a { &p.a } else { &p.b };
    port.control()
        .faults()
        .records()
        .rev()
        .find(|r| r.class == class)
        .copied()
        .expect("a record")
}

/// A WQE whose opcode no SQ takes: the model answers it as any such
/// WQE, LOCAL_QP_OP (0x02); the SQ is reset like for any error CQE.
#[test]
fn sq_bad_opcode_is_a_local_qp_op_error() {
    for interrupts in MODES {
        let q = QueueFault::SqBad {
            what: BadWqe::Opcode,
            sqn: None,
            count: 1,
        };
        let p = run_kept(
            pair(interrupts),
            true,
            q,
            FaultClass::SqErr,
            FaultAction::QueueReset,
        );
        let r = last_record(&p, true, FaultClass::SqErr);
        assert_eq!(r.syndrome, Some(0x02), "{r}");
        p.close();
    }
}

/// The WQ invalid request (0x10) and WQ access error (0x11) events, on
/// an SQ and on an RQ: recorded with the event type, the queue reset.
#[test]
fn wq_invalid_request_and_access_error_on_sq_and_rq() {
    for interrupts in MODES {
        for event in [0x10u8, 0x11] {
            let p = run_kept(
                pair(interrupts),
                true,
                QueueFault::WqError {
                    event,
                    sqn: None,
                    rqn: None,
                },
                FaultClass::WqCatastrophic,
                FaultAction::QueueReset,
            );
            let r = last_record(&p, true, FaultClass::WqCatastrophic);
            assert_eq!(r.object, FaultObject::Sq(p.a.sq().unwrap().sqn.0), "{r}");
            assert_eq!(r.detail, Some(("event", event.into())), "{r}");
            p.close();
            let p = pair(interrupts);
            let rqn = p.b.rq().unwrap().rqn.0;
            let p = run_kept(
                p,
                false,
                QueueFault::WqError {
                    event,
                    sqn: None,
                    rqn: Some(rqn),
                },
                FaultClass::WqCatastrophic,
                FaultAction::QueueReset,
            );
            let r = last_record(&p, false, FaultClass::WqCatastrophic);
            assert_eq!(r.object, FaultObject::Rq(rqn), "{r}");
            assert_eq!(r.detail, Some(("event", event.into())), "{r}");
            p.close();
        }
    }
}

/// A CQ overrun whose CQ error event is lost: the periodic QUERY_CQ
/// finds it (`lost_event=1`) and the CQ is recreated.
#[test]
fn a_cq_overrun_without_its_event_is_found_by_query_cq() {
    for interrupts in MODES {
        for on_a in [true, false] {
            let p = pair(interrupts);
            let cqn = if on_a {
                p.a.tx_cq().unwrap().cqn.0
            } else {
                p.b.rx_cq().unwrap().cqn.0
            };
            let p = run_kept(
                p,
                on_a,
                QueueFault::CqOverflowLostEvent { cqn: Some(cqn) },
                FaultClass::CqOverflow,
                FaultAction::CqRecreate,
            );
            let r = last_record(&p, on_a, FaultClass::CqOverflow);
            assert_eq!(r.object, FaultObject::Cq(cqn), "{r}");
            assert_eq!(r.detail, Some(("lost_event", 1)), "{r}");
            p.close();
        }
    }
}

#[test]
fn eq_stall_is_found_and_rearmed() {
    for interrupts in MODES {
        run(
            interrupts,
            true,
            QueueFault::EqStall {
                eqn: None,
                sticky: false,
            },
            FaultClass::EqStall,
            FaultAction::EqRearm,
        );
    }
}

/// A stall no arm heals (the EQ's context is broken): the EQ is
/// destroyed and created again on the same vector, its CQs moved to it
/// (MODIFY_CQ c_eqn); on the sending side and on the receiving side.
#[test]
fn a_sticky_eq_stall_recreates_the_eq() {
    for interrupts in MODES {
        for on_a in [true, false] {
            let p = pair(interrupts);
            let port = if on_a { &p.a } else { &p.b };
            let old = port.rx_cq().unwrap().eqn;
            let vector = port.control().comp_eqs()[0].1;
            let q = QueueFault::EqStall {
                eqn: None,
                sticky: true,
            };
            let mut p = run_kept(p, on_a, q, FaultClass::EqStall, FaultAction::EqRecreate);
            let port = if on_a { &p.a } else { &p.b };
            let (new, new_vector) = port.control().comp_eqs()[0];
            assert_ne!(new, old, "a new EQ");
            assert_eq!(new_vector, vector, "on the same vector");
            assert_eq!(port.rx_cq().unwrap().eqn, new);
            assert_eq!(port.tx_cq().unwrap().eqn, new);
            let sim = if on_a { &p.sa } else { &p.sb };
            sim.with_model(|d| {
                assert!(d.eqs.get(old.0).is_none(), "the old EQ is gone");
                assert!(!d.nic.cqs.uses_eq(old.0));
            });
            assert!(traffic(&mut p, 16) >= 16, "traffic on the new EQ");
            p.close();
        }
    }
}

/// The EQ cannot be created again (CREATE_EQ fails): the record asks for
/// the function reset.
#[test]
fn an_eq_that_cannot_be_recreated_escalates() {
    let mut p = pair(false);
    assert!(traffic(&mut p, 8) >= 8);
    p.sa.inject_queue(QueueFault::EqStall {
        eqn: None,
        sticky: true,
    })
    .unwrap();
    p.sa.inject(mlx5_sim::Fault::CommandStatus {
        opcode: 0x301,
        status: 0x05,
        syndrome: 0x1234,
    });
    let r = wait_record(&mut p, true, FaultClass::EqStall);
    assert_eq!(
        (r.action, r.outcome),
        (FaultAction::EqRecreate, FaultOutcome::Escalate),
        "{r}"
    );
    assert!(p.a.control().faults().escalation_pending());
    p.sa.clear_faults();
    p.close();
}

/// A periodic QUERY_EQ the device never answers: the check that started
/// it returns with it still out (had it waited, the timeout would be
/// recorded already), traffic flows while it is lost, its timeout is
/// recorded as `mlx5.cmd.timeout` with the opcode, and the next period's
/// QUERY_EQ works again (it finds an EQ stall and re-arms).
#[test]
fn a_lost_periodic_query_does_not_hold_the_checks() {
    for interrupts in MODES {
        // The synchronous model answers a live command inside its doorbell
        // write: only the lost one can meet the short timeout.
        let mut p = Pair::open_with(interrupts, |sa, cfg| {
            let a = mlx5::Adapter::attach(sa.clone(), common::short_timeouts())
                .map_err(|f| f.error)
                .expect("attach");
            let r = mlx5::Resources::of(&a).expect("resources");
            mlx5::QueueSet::open(a, r, cfg)
                .map_err(|f| f.error)
                .expect("open")
        });
        assert!(traffic(&mut p, 8) >= 8, "before the loss");
        p.sa.inject(mlx5_sim::Fault::CommandNoCompletion {
            opcode: mlx5::cmd::op::QUERY_EQ,
        });
        let start = Instant::now();
        while !p.a.query_outstanding() {
            assert!(start.elapsed() < Duration::from_secs(10), "no QUERY_EQ");
            tick(&mut p);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            p.a.control().faults().count(FaultClass::CmdTimeout),
            0,
            "the check returned with its query out"
        );
        assert!(traffic(&mut p, 16) >= 16, "traffic while the query is lost");
        let r = wait_record(&mut p, true, FaultClass::CmdTimeout);
        assert_eq!(
            r.object,
            mlx5::FaultObject::Command(mlx5::cmd::op::QUERY_EQ),
            "{r}"
        );
        p.sa.clear_faults();
        let q = QueueFault::EqStall {
            eqn: None,
            sticky: false,
        };
        let p = run_kept(p, true, q, FaultClass::EqStall, FaultAction::EqRearm);
        assert!(!p.a.query_outstanding());
        p.close();
    }
}

#[test]
fn sq_stall_is_a_tx_timeout_and_the_sq_recovers() {
    for interrupts in MODES {
        let t = Instant::now();
        run(
            interrupts,
            true,
            QueueFault::SqStall { sqn: None },
            FaultClass::TxTimeout,
            FaultAction::QueueReset,
        );
        assert!(t.elapsed() >= Duration::from_millis(TX_TIMEOUT_MS));
    }
}

#[test]
fn a_fault_storm_is_deferred_then_recovered() {
    let mut p = pair(false);
    assert!(traffic(&mut p, 4) >= 4);
    let sqn = p.a.sq().unwrap().sqn.0;
    // Three faults on one SQ inside the grace period: one recovery, then
    // one deferred record (the SQ waits in error and takes no frame, so
    // the third meets nothing), recovered by the periodic check once the
    // grace period has passed.
    for _ in 0..3 {
        p.sa.inject_queue(QueueFault::SqBad {
            what: BadWqe::Lkey,
            sqn: Some(sqn),
            count: 1,
        })
        .unwrap();
        let _ = p.send();
        p.a.flush();
        for _ in 0..10 {
            p.a.poll();
        }
        // The owner's recovery step (the poll only recorded the fault).
        p.a.run_pending_recoveries();
    }
    let sq: Vec<FaultRecord> =
        p.a.control()
            .faults()
            .records()
            .filter(|r| r.class == FaultClass::SqErr)
            .copied()
            .collect();
    let outcomes: Vec<_> = sq.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [FaultOutcome::Recovered, FaultOutcome::Deferred],
        "{sq:?}"
    );
    std::thread::sleep(Duration::from_millis(600));
    let n = traffic(&mut p, 8);
    assert!(
        n >= 8,
        "recovered after the grace period: {:#?} {:?}",
        p.a.control().faults().records().collect::<Vec<_>>(),
        p.a.rings()
    );
    let last =
        p.a.control()
            .faults()
            .records()
            .rev()
            .find(|r| r.class == FaultClass::SqErr)
            .copied()
            .unwrap();
    assert_eq!(
        (last.action, last.outcome),
        (FaultAction::QueueReset, FaultOutcome::Recovered),
        "{last}"
    );
    p.close();
}

/// An IPv4/UDP frame to `dst` from source port `sport` (RSS spreads them
/// over a VNIC's receive queues).
fn udp_frame(dst: [u8; 6], sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    // IPv4 header (20 bytes at 14): version/IHL, total length 46, TTL,
    // protocol 17, 10.0.0.1 -> 10.0.0.2 (checksum left 0: RSS ignores it).
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    // UDP header at 34: ports, length 26.
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// A VNIC queue set (its own dispatch TIR and RSS RQT): each receive
/// CQ overruns in turn and is recreated with a new RQ in the old one's
/// place; every frame sent to the VNIC (non-IP to queue 0, UDP spread
/// over both) arrives afterwards.
#[test]
fn rx_cq_overflow_on_a_vnic_queue_set() {
    for interrupts in MODES {
        let (sim, before, nic, mut v) = two_queue_vnic(interrupts);
        let mac = v.mac().0;
        let deliver = |v: &mut SimVnic, tag: u16| {
            let mut sent = 0;
            for s in 0..16u16 {
                sim.inject_rx(&udp_frame(mac, 1000 + tag * 16 + s));
                let mut raw = udp_frame(mac, 0);
                raw[12..14].copy_from_slice(&ETHERTYPE);
                sim.inject_rx(&raw);
                sent += 2;
            }
            let mut got = 0;
            let start = Instant::now();
            while got < sent && start.elapsed() < Duration::from_secs(5) {
                v.poll();
                while v.receive(|_, _| ()).is_some() {
                    got += 1;
                }
                v.flush();
            }
            (sent, got)
        };
        let (sent, got) = deliver(&mut v, 0);
        assert_eq!(got, sent, "before the fault");
        for q in 0..2 {
            let cqn = v.queue_set().rx_cq_at(q).unwrap().cqn.0;
            let old_rqn = v.queue_set().rq_at(q).unwrap().rqn;
            sim.inject_queue(QueueFault::CqOverflow { cqn: Some(cqn) })
                .expect("armed");
            let start = Instant::now();
            let rec = loop {
                v.poll();
                v.queue_set_mut().check();
                let found = nic.with_adapter(|a| {
                    let _ = a.poll();
                    a.faults()
                        .records()
                        .rev()
                        .find(|r| {
                            r.class == FaultClass::CqOverflow && r.object == FaultObject::Cq(cqn)
                        })
                        .copied()
                });
                if let Some(r) = found {
                    break r;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "no record for CQ {cqn:#x}"
                );
                std::thread::sleep(Duration::from_millis(5));
            };
            println!("{rec}");
            assert_eq!(
                (rec.action, rec.outcome),
                (FaultAction::CqRecreate, FaultOutcome::Recovered),
                "{rec}"
            );
            assert_ne!(v.queue_set().rx_cq_at(q).unwrap().cqn.0, cqn);
            assert_ne!(v.queue_set().rq_at(q).unwrap().rqn, old_rqn);
            let (sent, got) = deliver(&mut v, 1 + q as u16);
            assert_eq!(got, sent, "queue {q} recreated: every frame arrives");
        }
        assert_eq!(v.destroy().errors, 0);
        common::close_nic(nic, &sim, before);
    }
}

/// A fault armed against a queue goes with it: closed and opened again
/// on the same adapters, the new SQ and RQ get the old numbers (the model
/// hands out the lowest free one) and carry traffic without a fault.
#[test]
fn an_armed_fault_does_not_outlive_its_queue() {
    let mut p = pair(false);
    assert!(traffic(&mut p, 4) >= 4);
    let (sqn, rqn) = (p.a.sq().unwrap().sqn.0, p.b.rq().unwrap().rqn.0);
    for what in [BadWqe::Lkey, BadWqe::Addr] {
        p.sa.inject_queue(QueueFault::SqBad {
            what,
            sqn: Some(sqn),
            count: 4,
        })
        .unwrap();
        p.sb.inject_queue(QueueFault::RqBad {
            what,
            rqn: Some(rqn),
            count: 4,
        })
        .unwrap();
    }
    let Pair {
        sa,
        sb,
        a,
        b,
        before,
    } = p;
    let reopen = |port: Port| {
        let cfg = *port.config();
        let (adapter, rep) = port.close();
        assert_eq!(rep.errors, 0, "{rep:?}");
        let r = mlx5::Resources::of(&adapter).expect("resources");
        mlx5::QueueSet::open(adapter, r, cfg).unwrap_or_else(|f| panic!("open: {}", f.error))
    };
    let (a, b) = (reopen(a), reopen(b));
    let mut p = Pair {
        sa,
        sb,
        a,
        b,
        before,
    };
    assert_eq!(p.a.sq().unwrap().sqn.0, sqn, "the SQ number is reused");
    assert_eq!(p.b.rq().unwrap().rqn.0, rqn, "the RQ number is reused");
    assert!(traffic(&mut p, 16) >= 16);
    for (side, port) in [("a", &p.a), ("b", &p.b)] {
        let f = port.control().faults();
        assert_eq!(
            (f.count(FaultClass::SqErr), f.count(FaultClass::RqErr)),
            (0, 0),
            "{side}: {:?}",
            f.records().collect::<Vec<_>>()
        );
    }
    p.close();
}

/// A fault on one queue of a VNIC resets that queue only: the other
/// receive queue and the send queue keep their numbers, recover nothing
/// and go on carrying frames (an RQ fault, then an SQ fault).
#[test]
fn a_queue_fault_leaves_the_healthy_queues_alone() {
    for interrupts in MODES {
        let (sim, before, nic, mut v) = two_queue_vnic(interrupts);
        let mac = v.mac().0;
        // 16 UDP flows (RSS spreads them over both queues) and 16 non-IP
        // frames (queue 0); how many arrived.
        let deliver = |v: &mut SimVnic, tag: u16| {
            for s in 0..16u16 {
                sim.inject_rx(&udp_frame(mac, 1000 + tag * 16 + s));
                let mut raw = udp_frame(mac, 0);
                raw[12..14].copy_from_slice(&ETHERTYPE);
                sim.inject_rx(&raw);
            }
            let mut got = 0;
            let start = Instant::now();
            while got < 32 && start.elapsed() < Duration::from_secs(2) {
                v.poll();
                v.queue_set_mut().check();
                while v.receive(|_, _| ()).is_some() {
                    got += 1;
                }
                v.flush();
            }
            got
        };
        let state = |v: &SimVnic| {
            let qs = v.queue_set();
            let (r0, r1) = (qs.rq_at(0).unwrap(), qs.rq_at(1).unwrap());
            let sq = qs.sq().unwrap();
            (
                (r0.rqn, r1.rqn, sq.sqn),
                (
                    r0.stats.recoveries,
                    r1.stats.recoveries,
                    sq.stats.recoveries,
                ),
                r1.stats.packets,
            )
        };
        let record = |class: FaultClass, object: FaultObject| {
            nic.with_adapter(|a| {
                let _ = a.poll();
                a.faults()
                    .records()
                    .rev()
                    .find(|r| r.class == class && r.object == object)
                    .copied()
            })
        };
        assert_eq!(deliver(&mut v, 0), 32, "before the faults");
        let (queues, recoveries, packets1) = state(&v);
        assert_eq!(recoveries, (0, 0, 0));

        // RQ 0 refuses its next receive WQE.
        sim.inject_queue(QueueFault::RqBad {
            what: BadWqe::Lkey,
            rqn: Some(queues.0.0),
            count: 1,
        })
        .expect("armed");
        let mut tag = 1;
        let start = Instant::now();
        let rec = loop {
            deliver(&mut v, tag);
            tag += 1;
            if let Some(r) = record(FaultClass::RqErr, FaultObject::Rq(queues.0.0)) {
                break r;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no RQ record");
        };
        assert_eq!(
            (rec.action, rec.outcome),
            (FaultAction::QueueReset, FaultOutcome::Recovered),
            "{rec}"
        );
        assert_eq!(deliver(&mut v, tag), 32, "after the RQ fault");
        let (now, recoveries, packets) = state(&v);
        assert_eq!(now, queues, "no queue replaced");
        assert_eq!(recoveries, (1, 0, 0), "only RQ 0 was reset");
        assert!(packets > packets1, "RQ 1 carried frames throughout");

        // The send queue refuses its next WQE: the RQs are left alone.
        sim.inject_queue(QueueFault::SqBad {
            what: BadWqe::Lkey,
            sqn: Some(queues.2.0),
            count: 1,
        })
        .expect("armed");
        let start = Instant::now();
        let rec = loop {
            let _ = v.transmit(64, |b| {
                b[0..6].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
                b[6..12].copy_from_slice(&mac);
                b[12..14].copy_from_slice(&ETHERTYPE);
            });
            v.flush();
            v.poll();
            v.queue_set_mut().check();
            if let Some(r) = record(FaultClass::SqErr, FaultObject::Sq(queues.2.0)) {
                break r;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no SQ record");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(
            (rec.action, rec.outcome),
            (FaultAction::QueueReset, FaultOutcome::Recovered),
            "{rec}"
        );
        let (now, recoveries, packets1) = state(&v);
        assert_eq!(now, queues, "no queue replaced");
        assert_eq!(recoveries, (1, 0, 1), "only the SQ was reset");
        assert_eq!(deliver(&mut v, tag + 1), 32, "after the SQ fault");
        assert!(state(&v).2 > packets1, "RQ 1 carries frames");
        let entries = v.queue_set().sq().unwrap().entries();
        let start = Instant::now();
        while v.queue_set().tx_free() != entries && start.elapsed() < Duration::from_secs(2) {
            v.poll();
        }
        assert_eq!(v.destroy().errors, 0);
        common::close_nic(nic, &sim, before);
    }
}

/// The escalation chain under a tight policy (one recovery per object in
/// the window, no grace period), driven by real SQ faults: the first is
/// a queue reset; the second a port-level reset (the SQ and the RQ
/// cycled); the third asks for the function reset, after which a queue
/// set on the new function carries traffic.
#[test]
fn repeated_sq_faults_escalate_queue_then_port_then_function() {
    use mlx5::fault::FaultPolicy;
    let mut p = pair(false);
    p.a.control_mut().set_fault_policy(FaultPolicy {
        grace_ms: 0,
        max_recoveries: 1,
        window_ms: 600_000,
    });
    assert!(traffic(&mut p, 8) >= 8);
    let sqn = p.a.sq().unwrap().sqn.0;
    let rq_recoveries = |p: &Pair| p.a.rq().unwrap().stats.recoveries;
    let sq_records = |p: &Pair| -> Vec<FaultRecord> {
        p.a.control()
            .faults()
            .records()
            .filter(|r| r.class == FaultClass::SqErr)
            .copied()
            .collect()
    };
    let want = [
        (FaultAction::QueueReset, FaultOutcome::Recovered),
        (FaultAction::PortReset, FaultOutcome::Recovered),
        (FaultAction::FunctionReset, FaultOutcome::Escalate),
    ];
    for (i, step) in want.iter().enumerate() {
        assert!(!p.a.control().faults().escalation_pending());
        let rq_before = rq_recoveries(&p);
        p.sa.inject_queue(QueueFault::SqBad {
            what: BadWqe::Lkey,
            sqn: Some(sqn),
            count: 1,
        })
        .unwrap();
        // One frame at a time until the record is there (no longer: the
        // SQ left in error would time out as well).
        let start = Instant::now();
        while sq_records(&p).len() == i {
            let _ = p.send();
            p.a.flush();
            tick(&mut p);
            while p.b.receive(|_, _| ()).is_some() {}
            assert!(start.elapsed() < Duration::from_secs(10), "step {i}");
            std::thread::sleep(Duration::from_millis(1));
        }
        let recs = sq_records(&p);
        let r = recs[i];
        println!("{r}");
        assert_eq!(r.object, mlx5::FaultObject::Sq(sqn), "{r}");
        assert_eq!((r.action, r.outcome), *step, "{recs:?}");
        // A port-level reset cycles the receive queue too.
        let rq_cycled = rq_recoveries(&p) - rq_before;
        assert_eq!(rq_cycled, u64::from(i == 1), "step {i}: RQ recoveries");
        if i < 2 {
            assert!(traffic(&mut p, 8) >= 8, "traffic after step {i}");
        }
    }
    assert!(p.a.control().faults().escalation_pending());
    // The owner's part (the kernel's reset): close, reset the function,
    // open again on the new adapter.
    let Pair {
        sa,
        sb,
        a,
        b,
        before,
    } = p;
    let cfg = *a.config();
    let (mut old, rep) = a.close();
    assert_eq!(rep.errors, 0, "{rep:?}");
    let (new, _) = old.reset_function().unwrap_or_else(|e| panic!("{e}"));
    drop(old);
    let last = *new.faults().last().unwrap();
    assert_eq!(
        (last.class, last.action, last.outcome),
        (
            FaultClass::SqErr,
            FaultAction::FunctionReset,
            FaultOutcome::Recovered
        ),
        "{last}"
    );
    assert!(!new.faults().escalation_pending());
    let r = mlx5::Resources::of(&new).expect("resources");
    let a = mlx5::QueueSet::open(new, r, cfg).unwrap_or_else(|f| panic!("open: {}", f.error));
    let mut p = Pair {
        sa,
        sb,
        a,
        b,
        before,
    };
    assert!(traffic(&mut p, 8) >= 8, "traffic after the function reset");
    p.close();
}
