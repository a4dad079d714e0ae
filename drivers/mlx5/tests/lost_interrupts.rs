//! Lost interrupts (the model's `fault lost-interrupt`: the EQE is
//! written, the MSI-X message is not sent), with an owner that polls a
//! port only when its completion vector fired, as an interrupt-driven
//! kernel does. The periodic check finds the event left in the EQ's ring
//! (`mlx5.eq.stall ... pending=1 action=eq-poll`), takes it and re-arms;
//! traffic goes on.

mod common;

use std::time::{Duration, Instant};

use common::Port;
use cxos_drivers::{ConfigSpace, Msix, NetDevice, Platform, TxError};
use mlx5::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord};
use mlx5_sim::harness::SimPlatform;
use mlx5_sim::queue_faults::QueueFault;

const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// Port a sends and is polled on every round; port b receives and is
/// polled only when its completion vector fired (its checks run every
/// round).
struct Pair {
    sa: SimPlatform,
    sb: SimPlatform,
    a: Port,
    b: Port,
    /// b's completion vector.
    b_vector: u16,
    before: ((usize, usize), (usize, usize)),
}

fn pair() -> Pair {
    let common::pair::Pair {
        sa,
        sb,
        a,
        b,
        before,
    } = common::pair::Pair::open(true);
    let b_vector = b.control().comp_eqs()[b.eq_indexes()[0]].1;
    Pair {
        sa,
        sb,
        a,
        b,
        b_vector,
        before,
    }
}

impl Pair {
    /// Closes both ports ([`common::pair::Pair::close`]).
    fn close(self) {
        let Pair {
            sa,
            sb,
            a,
            b,
            before,
            ..
        } = self;
        common::pair::Pair {
            sa,
            sb,
            a,
            b,
            before,
        }
        .close();
    }
}

/// Checks that `r` is a lost interrupt found on `eq` (one EQE pending)
/// and recovered by polling the EQ; its line, printed.
fn eq_polled(r: &FaultRecord, eq: FaultObject) -> String {
    assert_eq!(r.object, eq, "{r}");
    assert_eq!(r.detail, Some(("pending", 1)), "{r}");
    assert_eq!(
        (r.action, r.outcome),
        (FaultAction::EqPoll, FaultOutcome::Recovered),
        "{r}"
    );
    let line = format!("{r}");
    println!("{line}");
    line
}

/// Send frames a -> b until `n` arrived or `limit` passed; b takes its
/// completions only on an interrupt. How many b received.
fn traffic(p: &mut Pair, n: usize, limit: Duration) -> usize {
    let (dst, src) = (p.b.mac(), p.a.mac());
    let mut got = 0;
    let start = Instant::now();
    while got < n && start.elapsed() < limit {
        match p.a.transmit(64, |b| {
            b[0..6].copy_from_slice(&dst);
            b[6..12].copy_from_slice(&src);
            b[12..14].copy_from_slice(&ETHERTYPE);
        }) {
            Ok(()) | Err(TxError::Busy) => {}
            Err(e) => panic!("transmit: {e}"),
        }
        p.a.flush();
        p.a.poll();
        p.a.check();
        if p.sb.msix().msix_take_pending(p.b_vector) {
            p.b.poll();
            while p.b.receive(|_, _| ()).is_some() {
                got += 1;
            }
            p.b.flush();
        }
        p.b.check();
        std::thread::sleep(Duration::from_micros(200));
    }
    got
}

fn records(port: &Port) -> Vec<FaultRecord> {
    port.control()
        .faults()
        .records()
        .filter(|r| r.class == FaultClass::EqStall)
        .copied()
        .collect()
}

#[test]
fn a_lost_completion_interrupt_is_found_and_the_eq_polled() {
    let mut p = pair();
    assert!(
        traffic(&mut p, 8, Duration::from_secs(5)) >= 8,
        "interrupt-driven traffic before the fault"
    );
    assert!(records(&p.b).is_empty());
    let armed =
        p.sb.inject_queue(QueueFault::LostInterrupt {
            eqn: None,
            count: 1,
        })
        .expect("armed");
    // Without the periodic check nothing would poll b again: the EQ holds
    // the event, disarmed, and no interrupt comes.
    assert!(
        traffic(&mut p, 32, Duration::from_secs(5)) >= 32,
        "{armed}: traffic after the lost interrupt; records {:?}",
        records(&p.b)
    );
    let recs = records(&p.b);
    assert_eq!(recs.len(), 1, "{armed}: one record per lost interrupt");
    let eqn = p.b.control().comp_eqs()[p.b.eq_indexes()[0]].0;
    let line = eq_polled(&recs[0], FaultObject::Eq(eqn.0.into()));
    assert!(
        line.starts_with("FAULT mlx5.eq.stall ")
            && line.contains(" pending=1 ")
            && line.ends_with("action=eq-poll outcome=recovered"),
        "{line}"
    );
    assert_eq!(p.sb.with_model(|d| d.faults.queues.dropped_interrupts), 1);
    p.close();
}

/// A lost EQ0 interrupt (`lost-interrupt eqn=0`): a command's completion
/// EQE is written and its interrupt not sent. The command still completes
/// (its wait drains EQ0 without an interrupt); EQ0 is left unarmed, so
/// the next commands' completions do not interrupt either (and cannot
/// hide the lost one); once the vector has been silent for
/// `LATE_IRQ_NS` the periodic check records `mlx5.eq.stall <eq0>
/// pending=1 ... action=eq-poll` and arms EQ0 again: the next command
/// interrupts.
#[test]
fn a_lost_eq0_interrupt_is_recorded_and_eq0_armed_again() {
    let mut p = pair();
    let (eq0, vector) = p.a.control().eq0().expect("EQ0");
    run_for(&mut p, Duration::from_millis(200));
    let irqs = p.sa.msix().msix_count(vector);
    p.a.control_mut().refresh_port().expect("a command");
    assert!(
        p.sa.msix().msix_count(vector) > irqs,
        "EQ0 interrupts for a command"
    );
    let armed =
        p.sa.inject_queue(QueueFault::LostInterrupt {
            eqn: Some(eq0.0),
            count: 1,
        })
        .expect("armed");
    assert_eq!(armed, format!("lost-interrupt eqn={:#x} count=1", eq0.0));
    let irqs = p.sa.msix().msix_count(vector);
    // Timed from before the drain that finds the interrupt missing, where
    // the driver's wait starts: a loaded machine that stretches the steps
    // before the run below cannot make the record look early.
    let start = Instant::now();
    p.a.control_mut()
        .refresh_port()
        .expect("a command whose interrupt is lost completes");
    assert_eq!(p.sa.with_model(|d| d.faults.queues.dropped_interrupts), 1);
    p.a.control_mut()
        .refresh_port()
        .expect("a command with EQ0 unarmed completes");
    assert_eq!(
        p.sa.msix().msix_count(vector),
        irqs,
        "EQ0 left unarmed while its interrupt is missing"
    );
    assert!(records(&p.a).is_empty(), "not before LATE_IRQ_NS");
    run_until(&mut p, &format!("{armed}: recorded"), |p| {
        !records(&p.a).is_empty()
    });
    assert!(
        start.elapsed() >= Duration::from_nanos(mlx5::cmd_engine::LATE_IRQ_NS / 2),
        "a late interrupt is given time"
    );
    let recs = records(&p.a);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let line = eq_polled(&recs[0], FaultObject::Eq(eq0.0.into()));
    assert!(
        line.starts_with(&format!(
            "FAULT mlx5.eq.stall {} eqn={:#x} ",
            p.sa.pci_address(),
            eq0.0
        )) && line.contains(" pending=1 ci=")
            && line.ends_with("action=eq-poll outcome=recovered"),
        "{line}"
    );
    let irqs = p.sa.msix().msix_count(vector);
    p.a.control_mut().refresh_port().expect("a command");
    assert!(
        p.sa.msix().msix_count(vector) > irqs,
        "EQ0 armed again: its command interrupts"
    );
    run_for(&mut p, Duration::from_millis(300));
    assert_eq!(records(&p.a).len(), 1, "one record per lost interrupt");
    assert!(traffic(&mut p, 8, Duration::from_secs(5)) >= 8);
    p.close();
}

/// Poll and check both ports (as the other hosted tests do) for `d`.
fn run_for(p: &mut Pair, d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        p.a.poll();
        p.b.poll();
        p.a.check();
        p.b.check();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Poll and check until `f` holds (at most 15 s: a query on a stalled
/// EQ0 takes the 5 s command timeout).
fn run_until(p: &mut Pair, what: &str, f: impl Fn(&Pair) -> bool) {
    let start = Instant::now();
    while !f(p) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}; records {:?}, interrupts dropped {}",
            records(&p.a),
            p.sa.with_model(|d| d.faults.queues.dropped_interrupts)
        );
        run_for(p, Duration::from_millis(20));
    }
}

/// Transmit completions nobody reaped (polled mode, the owner's poll
/// never ran; in interrupt mode the EQ check above finds the event
/// first): after the transmit timeout the check polls the CQ first, finds
/// them (`mlx5.tx.timeout ... action=eq-poll`), and the SQ is not reset.
#[test]
fn a_tx_timeout_with_completions_waiting_polls_instead_of_resetting() {
    let mut p = common::pair::Pair::open(false);
    let sqn = p.a.sq().unwrap().sqn;
    let entries = p.a.sq().unwrap().entries();
    for _ in 0..8 {
        p.send().expect("transmit");
    }
    let common::pair::Pair { mut a, mut b, .. } = p;
    a.flush();
    assert!(a.tx_free() < entries, "buffers in flight");
    let start = Instant::now();
    let r = loop {
        // a is checked, never polled.
        a.check();
        b.poll();
        while b.receive(|_, _| ()).is_some() {}
        b.flush();
        if let Some(r) = a
            .control()
            .faults()
            .records()
            .find(|r| r.class == FaultClass::TxTimeout)
        {
            break *r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no tx timeout: in flight {}, records {:?}",
            a.sq().unwrap().in_flight(),
            a.control().faults().records().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    println!("{r}");
    assert_eq!(
        (r.action, r.outcome),
        (FaultAction::EqPoll, FaultOutcome::Recovered),
        "{r}"
    );
    assert_eq!(a.tx_free(), entries, "every transmit buffer back");
    assert_eq!(a.sq().unwrap().sqn, sqn, "the SQ was not replaced");
    assert_eq!(
        a.control().faults().records().count(),
        1,
        "no queue reset after it"
    );
    common::pair::Pair { a, b, ..p }.close();
}

/// EQ0 out of step (the model's `eq-stall eqn=0`: QUERY_EQ shows a wrong
/// consumer counter, no EQEs are written): the periodic QUERY_EQ of EQ0
/// finds it, EQ0 is re-armed (`mlx5.eq.stall eqn=0x0 ... action=eq-rearm`)
/// and commands still complete.
#[test]
fn an_eq0_stall_is_found_by_query_eq() {
    let mut p = pair();
    let (eq0, _) = p.a.control().eq0().expect("EQ0");
    run_for(&mut p, Duration::from_millis(200));
    let armed =
        p.sa.inject_queue(QueueFault::EqStall {
            eqn: Some(eq0.0),
            sticky: false,
        })
        .expect("armed");
    run_until(&mut p, &format!("{armed}: found"), |p| {
        !records(&p.a).is_empty()
    });
    let r = records(&p.a)[0];
    println!("{r}");
    assert_eq!(r.object, FaultObject::Eq(eq0.0.into()), "{r}");
    assert_eq!(
        (r.action, r.outcome),
        (FaultAction::EqRearm, FaultOutcome::Recovered),
        "{r}"
    );
    assert_eq!(p.sa.with_model(|d| d.faults.queues.eq_stalled(eq0.0)), None);
    assert!(traffic(&mut p, 8, Duration::from_secs(5)) >= 8);
    p.close();
}
