//! Receive spreading (issue 21) against the model: an RSS VNIC with two
//! receive queues on queue set 0 lends its second one to a receive helper
//! on queue set 1 ([`Nic::create_rx_helper`], [`Vnic::spread_rx`]). The
//! model's RQT then lists the VNIC's queue 0 and the helper's queue; every
//! flow whose Toeplitz hash picks entry 1 reaches the helper, every other
//! one the VNIC itself, each frame exactly once; what the helper received
//! and passed on comes out of the VNIC's own `receive` after its own
//! frames ([`Vnic::set_inbox`]); the VNIC's destroy takes the helper with
//! it and every DMA byte is back.
//!
//! The spread outlives what happens to the queues: a CQ overrun that
//! recreates one of the VNIC's own RQs or the helper's RQ (found by the
//! VNIC's periodic check, [`Vnic::check_queues`], which checks the helper
//! through the inbox), a function reset with the VNIC replayed (the old
//! helper released, not destroyed, and a new one lent), and an MTU change
//! ([`Vnic::set_mtu`]: the helper takes frames of the new size).

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pkt::{self, KINDS};
use cxos_drivers::{NetDevice, RxMeta};
use mlx5::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome};
use mlx5::restore::{self, VnicState};
use mlx5::rq::Rqn;
use mlx5::vnic::{Nic, RxInbox, Vnic, VnicSpec};
use mlx5::{Mac, Resources};
use mlx5_sim::Personality;
use mlx5_sim::faults::Fault;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::queue_faults::QueueFault;

type A = mlx5::Adapter<SimPlatform>;

const FLOWS: u32 = 64;

/// Flow `i` to `dst`: a TCP/IPv4 frame whose addresses and ports vary
/// with `i`, its sequence number in the IPv4 identification field.
fn flow(dst: Mac, i: u32) -> Vec<u8> {
    flow_of(dst, i, 40)
}

/// [`flow`] with `payload` bytes.
fn flow_of(dst: Mac, i: u32, payload: usize) -> Vec<u8> {
    let kind = KINDS[0];
    let mut f = pkt::build(kind, dst.0, [2, 0, 0, 0, 0, 0x42], payload, i, false);
    let ip = 14;
    f[ip + 4..ip + 6].copy_from_slice(&(i as u16).to_be_bytes());
    f[ip + 12 + 3] = i as u8;
    f[ip + 16 + 2] = (i >> 2) as u8;
    let tp = ip + kind.l3_len();
    f[tp..tp + 2].copy_from_slice(&(1000 + 7 * i as u16).to_be_bytes());
    pkt::fix_csums(&mut f, kind);
    f
}

fn seq_of(f: &[u8]) -> u32 {
    u32::from(u16::from_be_bytes([f[18], f[19]]))
}

/// A helper as the kernel keeps it: its CPU and its owner's inbox reach
/// it through the lock.
type Helper = Arc<Mutex<Option<Vnic<A>>>>;

/// What the kernel's hand-off ring does for the test: frames the helper
/// received, in order, then (as the kernel's CPU polling it would) what
/// the helper receives now; the helper goes with it.
struct Inbox {
    frames: VecDeque<(Vec<u8>, RxMeta)>,
    helper: Helper,
    /// Frames that came through the helper.
    taken: Arc<AtomicUsize>,
    /// The helper went by `release_after_reset`.
    released: Arc<AtomicBool>,
}

impl Inbox {
    fn of(helper: Vnic<A>) -> Self {
        Self {
            frames: VecDeque::new(),
            helper: Arc::new(Mutex::new(Some(helper))),
            taken: Arc::default(),
            released: Arc::default(),
        }
    }
}

impl RxInbox for Inbox {
    fn take(&mut self, f: &mut dyn FnMut(&[u8], RxMeta)) -> bool {
        if let Some((b, m)) = self.frames.pop_front() {
            f(&b, m);
            return true;
        }
        let mut slot = self.helper.lock().unwrap();
        let Some(h) = slot.as_mut() else {
            return false;
        };
        h.poll();
        let got = h.receive(|b, m| f(b, m)).is_some();
        h.flush();
        if got {
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        got
    }

    fn check(&mut self) {
        if let Some(h) = self.helper.lock().unwrap().as_mut() {
            h.queue_set_mut().check();
        }
    }

    fn set_mtu(&mut self, mtu: usize, rx_mtu: usize) -> Result<(), mlx5::Error> {
        match self.helper.lock().unwrap().as_mut() {
            Some(h) => h.queue_set_mut().set_mtu(mtu, rx_mtu),
            None => Ok(()),
        }
    }

    fn release_after_reset(&mut self) {
        if let Some(h) = self.helper.lock().unwrap().take() {
            h.release_after_reset();
            self.released.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        if let Some(h) = self.helper.lock().unwrap().take() {
            assert_eq!(h.destroy().errors, 0);
        }
    }
}

/// VNIC `main` (two queues, queue set 0) with a helper on queue set 1 in
/// its RSS table and an inbox holding it.
struct Spread {
    /// The helper's receive CQ.
    h_cq: u32,
    taken: Arc<AtomicUsize>,
    released: Arc<AtomicBool>,
    helper: Helper,
}

fn spread(nic: &Nic<A>, main: &mut Vnic<A>) -> Spread {
    let helper = nic.create_rx_helper(main, 1).unwrap();
    let h_rqn = helper.helper_rqn().unwrap();
    let h_cq = helper.queue_set().rx_cq_at(0).unwrap().cqn.0;
    main.spread_rx(&[h_rqn]).unwrap();
    let inbox = Inbox::of(helper);
    let s = Spread {
        h_cq,
        taken: inbox.taken.clone(),
        released: inbox.released.clone(),
        helper: inbox.helper.clone(),
    };
    main.set_inbox(Some(Box::new(inbox)));
    s
}

/// The model's RSS table of `v` (RQ numbers).
fn table(sim: &SimPlatform, v: &Vnic<A>) -> Vec<u32> {
    sim.rqt(v.queue_set().rqt().unwrap().0).unwrap()
}

/// Send flows `from..from + FLOWS` of `payload` bytes to `v` (loopback),
/// each received through `v` exactly once (its own queue or the inbox);
/// how many came through the helper.
/// The VNIC lends exactly one helper RQ and its RSS table is its own
/// first RQ, then that one; returns the helper's RQ.
fn own_then_helper(sim: &SimPlatform, v: &Vnic<A>) -> Rqn {
    let own0 = v.queue_set().rq_at(0).unwrap().rqn;
    let lent = v.queue_set().rss_lent().to_vec();
    assert_eq!(lent.len(), 1, "one helper RQ lent");
    assert_eq!(table(sim, v), vec![own0.0, lent[0].0]);
    lent[0]
}

fn deliver(v: &mut Vnic<A>, taken: &AtomicUsize, from: u32, payload: usize) -> usize {
    let before = taken.load(Ordering::Relaxed);
    let dst = v.mac();
    let mut got = Vec::new();
    for i in from..from + FLOWS {
        let f = flow_of(dst, i, payload);
        v.transmit(f.len(), |b| b.copy_from_slice(&f)).unwrap();
        v.flush();
        assert!(
            common::eventually(|| {
                v.poll();
                let n = got.len();
                while let Some(s) = v.receive(|b, _| seq_of(b)) {
                    got.push(s);
                }
                v.flush();
                got.len() > n
            }),
            "flow {i} ({payload} bytes) not received"
        );
    }
    got.sort_unstable();
    assert_eq!(
        got,
        (from..from + FLOWS).collect::<Vec<_>>(),
        "each frame exactly once"
    );
    taken.load(Ordering::Relaxed) - before
}

/// Overrun CQ `cqn` and run the VNIC's periodic check until its record
/// says the CQ (and its RQ) were recreated.
fn overrun(sim: &SimPlatform, nic: &Nic<A>, v: &mut Vnic<A>, cqn: u32) {
    overrun_by(sim, nic, cqn, || {
        v.poll();
        v.check_queues();
    });
}

/// Overrun CQ `cqn` and run `step` (a poll and a check) until the record
/// says the CQ (and its RQ) were recreated.
fn overrun_by(sim: &SimPlatform, nic: &Nic<A>, cqn: u32, mut step: impl FnMut()) {
    sim.inject_queue(QueueFault::CqOverflow { cqn: Some(cqn) })
        .expect("armed");
    let start = Instant::now();
    let rec = loop {
        step();
        let found = nic.with_adapter(|a| {
            let _ = a.poll();
            a.faults()
                .records()
                .rev()
                .find(|r| r.class == FaultClass::CqOverflow && r.object == FaultObject::Cq(cqn))
                .copied()
        });
        if let Some(r) = found {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no record for CQ {cqn:#x}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        (rec.action, rec.outcome),
        (FaultAction::CqRecreate, FaultOutcome::Recovered),
        "{rec}"
    );
}

fn close(sim: &SimPlatform, nic: Nic<A>, dma_before: (usize, usize)) {
    let (a, rep) = nic.close().expect("the helper went with its VNIC");
    assert_eq!(rep.errors, 0, "{rep:?}");
    let (_, drep) = a.detach();
    assert_eq!(drep.errors, 0, "{drep:?}");
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}

/// As `common::nic` configures its Nic (polled).
fn nic_config() -> mlx5::vnic::NicConfig {
    mlx5::vnic::NicConfig {
        eth: mlx5::EthConfig {
            log_sq: 5,
            log_rq: 5,
            lso_bufs: 0,
            interrupts: false,
            ..mlx5::EthConfig::default()
        },
        ..mlx5::vnic::NicConfig::default()
    }
}

fn two_queues() -> VnicSpec {
    VnicSpec {
        queues: 2,
        ..VnicSpec::default()
    }
}

#[test]
fn a_helper_on_another_queue_set_takes_the_flows_its_rqt_entry_hashes_to() {
    common::logger();
    let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Synchronous);
    let dma_before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    assert!(nic.queue_sets() >= 2);
    let mut main = nic
        .create_on(
            VnicSpec {
                queues: 2,
                ..VnicSpec::default()
            },
            0,
        )
        .unwrap();
    let mut helper = nic.create_rx_helper(&main, 1).unwrap();
    assert!(helper.is_rx_helper() && !main.is_rx_helper());
    assert_eq!(helper.queue_set().eq_indexes(), [1], "the helper's EQ");
    assert_eq!(nic.count(), 1, "a helper is not a VNIC of its own");
    let h_rqn = helper.helper_rqn().unwrap();
    main.spread_rx(&[h_rqn]).unwrap();
    let rqt = main.queue_set().rqt().unwrap();
    let own0 = main.queue_set().rq_at(0).unwrap().rqn;
    assert_eq!(sim.rqt(rqt.0), Some(vec![own0.0, h_rqn.0]));
    // Too many helpers for the table: refused, nothing changed.
    assert!(main.spread_rx(&[h_rqn, h_rqn]).is_err());

    let dst = main.mac();
    let (mut at_main, mut at_helper) = (Vec::new(), Vec::new());
    for i in 0..FLOWS {
        let f = flow(dst, i);
        main.transmit(f.len(), |b| b.copy_from_slice(&f)).unwrap();
        main.flush();
        assert!(common::eventually(|| {
            main.poll();
            helper.poll();
            let n = at_main.len() + at_helper.len();
            while let Some(x) = main.receive(|b, m| (seq_of(b), m.rss_hash)) {
                at_main.push(x);
            }
            while let Some(x) = helper.receive(|b, m| (b.to_vec(), m)) {
                at_helper.push(x);
            }
            main.flush();
            helper.flush();
            at_main.len() + at_helper.len() > n
        }));
    }
    assert_eq!(at_main.len() + at_helper.len(), FLOWS as usize);
    assert!(
        !at_main.is_empty() && !at_helper.is_empty(),
        "both queues take flows"
    );
    for (seq, hash) in &at_main {
        assert_eq!(hash % 2, 0, "flow {seq} hashed to entry 1 reached queue 0");
    }
    for (b, m) in &at_helper {
        assert_eq!(
            m.rss_hash % 2,
            1,
            "flow {} hashed to entry 0 reached the helper",
            seq_of(b)
        );
    }
    // The helper's frames come out of the VNIC after its own.
    let handed: Vec<u32> = at_helper.iter().map(|(b, _)| seq_of(b)).collect();
    let mut inbox = Inbox::of(helper);
    inbox.frames = at_helper.into_iter().collect();
    main.set_inbox(Some(Box::new(inbox)));
    let mut taken = Vec::new();
    while let Some(s) = main.receive(|b, _| seq_of(b)) {
        taken.push(s);
    }
    assert_eq!(taken, handed);
    let mut all: Vec<u32> = at_main.iter().map(|(s, _)| *s).chain(taken).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..FLOWS).collect::<Vec<_>>(),
        "each frame exactly once"
    );

    assert_eq!(main.destroy().errors, 0);
    let (a, rep) = nic.close().expect("the helper went with its VNIC");
    assert_eq!(rep.errors, 0, "{rep:?}");
    let (_, drep) = a.detach();
    assert_eq!(drep.errors, 0, "{drep:?}");
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}

/// Each of the VNIC's own RQs, then the helper's, recreated after a CQ
/// overrun: the RSS table lists the VNIC's queue 0 and the helper's RQ as
/// they are now (never the VNIC's own queue 1), and every flow still
/// arrives exactly once, some through the helper.
#[test]
fn recreated_rqs_of_the_vnic_or_its_helper_keep_the_spread() {
    common::logger();
    let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Synchronous);
    let dma_before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    let mut main = nic.create_on(two_queues(), 0).unwrap();
    let Spread { h_cq, taken, .. } = spread(&nic, &mut main);
    let lent = main.queue_set().rss_lent().to_vec();
    assert_eq!(lent.len(), 1);
    assert!(
        deliver(&mut main, &taken, 0, 40) > 0,
        "the helper takes flows"
    );

    for q in 0..2 {
        let cqn = main.queue_set().rx_cq_at(q).unwrap().cqn.0;
        let old = main.queue_set().rq_at(q).unwrap().rqn;
        overrun(&sim, &nic, &mut main, cqn);
        assert_ne!(main.queue_set().rq_at(q).unwrap().rqn, old);
        assert_eq!(
            own_then_helper(&sim, &main),
            lent[0],
            "own RQ {q} recreated: the helper still in the table"
        );
        let n = deliver(&mut main, &taken, FLOWS * (1 + q as u32), 40);
        assert!(n > 0, "own RQ {q} recreated: the helper still takes flows");
    }

    overrun(&sim, &nic, &mut main, h_cq);
    let now = own_then_helper(&sim, &main);
    assert_ne!(now, lent[0], "the helper's RQ was recreated");
    assert!(
        deliver(&mut main, &taken, 3 * FLOWS, 40) > 0,
        "the helper's new RQ takes flows"
    );

    assert_eq!(main.destroy().errors, 0);
    close(&sim, nic, dma_before);
}

/// The helper recovers its RQ on its own (its CPU's check, not through
/// the VNIC's), and before the VNIC next checks its helpers one of the
/// VNIC's own RQs is recreated by the VNIC's own recovery (its check of
/// its own queues, as the kernel's recovery step runs it): the VNIC's
/// rewrite of the RSS table lists the helper's RQ as it is now, not the
/// one the helper destroyed (refused by the device, or, its number taken
/// again by the VNIC's new RQ as the model does here, entry 1 goes to the
/// VNIC's own queue 0 and the helper gets nothing). The loan is shared
/// with the helper, which swapped its RQ in it under the table's lock.
#[test]
fn an_own_rq_recreated_after_the_helper_recovered_alone_lists_the_helpers_new_rq() {
    common::logger();
    let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Synchronous);
    let dma_before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    let mut main = nic.create_on(two_queues(), 0).unwrap();
    let Spread {
        h_cq,
        taken,
        helper,
        ..
    } = spread(&nic, &mut main);
    assert!(deliver(&mut main, &taken, 0, 40) > 0);
    let h_old = own_then_helper(&sim, &main);

    overrun_by(&sim, &nic, h_cq, || {
        let mut slot = helper.lock().unwrap();
        let h = slot.as_mut().unwrap();
        h.poll();
        h.queue_set_mut().check();
    });
    let h_new = helper
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .helper_rqn()
        .unwrap();
    assert_ne!(h_new, h_old, "the helper's RQ was recreated");
    assert_eq!(
        main.queue_set().rss_lent(),
        vec![h_new],
        "the helper's recovery updated the VNIC's loan"
    );

    let own0 = main.queue_set().rx_cq_at(0).unwrap().cqn.0;
    let rq0 = main.queue_set().rq_at(0).unwrap().rqn;
    overrun_by(&sim, &nic, own0, || {
        main.poll();
        main.queue_set_mut().check();
    });
    assert_ne!(main.queue_set().rq_at(0).unwrap().rqn, rq0);
    assert_eq!(own_then_helper(&sim, &main), h_new);
    assert!(
        deliver(&mut main, &taken, FLOWS, 40) > 0,
        "the helper's new RQ takes flows"
    );
    drop(helper);
    assert_eq!(main.destroy().errors, 0);
    close(&sim, nic, dma_before);
}

/// A function reset: the VNIC is replayed on the new function, the old
/// one released with its helper (through the inbox, not destroyed: no
/// errors expected from commands to the dead function); a helper of the
/// replayed VNIC (as the kernel makes after the replay) is in its RSS
/// table again and takes flows.
#[test]
fn a_function_reset_releases_the_helper_and_the_replayed_vnic_spreads_again() {
    common::logger();
    let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Synchronous);
    let dma_before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    let mut main = nic.create_on(two_queues(), 0).unwrap();
    let Spread {
        taken, released, ..
    } = spread(&nic, &mut main);
    assert!(deliver(&mut main, &taken, 0, 40) > 0);

    sim.inject(Fault::InternalError);
    assert!(common::eventually(|| {
        nic.with_adapter(|a| {
            let _ = a.poll();
            a.poll_health()
        })
        .is_err()
    }));
    let state = VnicState::of(&main);
    let (new, _) = nic
        .with_adapter(|a| a.reset_function())
        .unwrap_or_else(|e| panic!("reset failed: {e}"));
    let port_mtu = usize::from(new.port().admin_mtu) - mlx5::module::PORT_MTU_OVERHEAD;
    let r = Resources::of(&new).expect("resources");
    let new_nic =
        Nic::new(new, r, nic_config()).unwrap_or_else(|f| panic!("Nic::new failed: {}", f.error));
    let fresh = restore::replay(&new_nic, &state, port_mtu).expect("replay");
    let old = std::mem::replace(&mut main, fresh);
    let _ = old.release_after_reset();
    assert!(
        released.load(Ordering::Relaxed),
        "the helper was released with its VNIC"
    );
    let (shell, _) = nic.close().expect("every old VNIC gone");
    assert!(shell.is_failed());
    drop(shell);

    let Spread { taken, .. } = spread(&new_nic, &mut main);
    own_then_helper(&sim, &main);
    assert!(deliver(&mut main, &taken, FLOWS, 40) > 0);

    assert_eq!(main.destroy().errors, 0);
    close(&sim, new_nic, dma_before);
}

/// The VNIC's MTU raised (cyclic receive buffers, ConnectX-4 Lx): the
/// helper's buffers follow, so frames of the new size hashed to the helper
/// arrive like the others.
#[test]
fn an_mtu_change_resizes_the_helper() {
    common::logger();
    let sim = SimPlatform::new_loopback(Personality::ConnectX4Lx, Mode::Synchronous);
    let dma_before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    nic.with_adapter(|a| a.set_port_mtu(4000)).unwrap();
    let mut main = nic.create_on(two_queues(), 0).unwrap();
    let Spread { taken, .. } = spread(&nic, &mut main);
    assert!(deliver(&mut main, &taken, 0, 40) > 0);
    main.set_mtu(4000, 4000).unwrap();
    assert_eq!(main.mtu(), 4000);
    assert!(
        deliver(&mut main, &taken, FLOWS, 3900) > 0,
        "large frames through the helper"
    );
    assert_eq!(main.destroy().errors, 0);
    close(&sim, nic, dma_before);
}
