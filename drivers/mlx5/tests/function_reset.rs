//! Function reset recovery against the model: a health fault (syndrome,
//! stopped counter) is recorded, the function is reset and brought up
//! again, and what the user configured comes back: port MTU, LED, speed,
//! every VNIC with its MAC, VLAN, queues, MTU, multicast groups and
//! promiscuous mode (flow rules as before); traffic flows again; the old
//! function's pages are released by the reset, not lost; the model holds
//! exactly the new function's pages; no sanitizer violation. A device that
//! keeps failing is given up after the policy's resets. Command timeouts
//! are bounded and recorded.

mod common;

use cxos_drivers::{Clock, NetDevice};
use mlx5::adapter::{ResetError, ResetPolicy};
use mlx5::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord};
use mlx5::module::{Led, ModuleState, SpeedSetting};
use mlx5::restore::{self, VnicState};
use mlx5::vnic::{Nic, NicConfig, Vnic, VnicSpec};
use mlx5::{Adapter, CmdFailure, Config, EthConfig, PortEvent, Resources};
use mlx5_sim::Personality;
use mlx5_sim::faults::Fault;
use mlx5_sim::harness::{Mode, SimPlatform};

type A = Adapter<SimPlatform>;

/// Completion events polled (false) or by interrupt (true), as the queue
/// fault tests run them.
const MODES: [bool; 2] = [false, true];

/// The records of `a` are in sequence (1, 2, ... with none skipped but
/// the dropped ones), stamped by the platform clock: non-zero, never
/// going back, none later than `now_ns`; each one's `faults` line is its
/// timestamp in seconds and microseconds, its number and its console line.
fn check_stamps(a: &A, now_ns: u64) {
    let recs: Vec<FaultRecord> = a.faults().records().copied().collect();
    assert!(!recs.is_empty());
    for w in recs.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "{:?}", recs);
        assert!(w[1].at_ns >= w[0].at_ns, "time goes back: {recs:?}");
    }
    for r in &recs {
        assert!(r.at_ns > 0 && r.at_ns <= now_ns, "{r:?} at {now_ns}");
        // `[<s>.<us>] #<seq> FAULT ...`, read back.
        let line = format!("{}", r.listed());
        let (stamp, rest) = line.split_once("] #").expect(&line);
        let (s, us) = stamp
            .trim_start_matches('[')
            .trim()
            .split_once('.')
            .unwrap();
        assert_eq!(us.len(), 6, "{line}");
        let ns = s.parse::<u64>().unwrap() * 1_000_000_000 + us.parse::<u64>().unwrap() * 1000;
        assert!(ns <= r.at_ns && r.at_ns - ns < 1000, "{line}: {}", r.at_ns);
        assert_eq!(rest, format!("{} {r}", r.seq));
    }
}

fn nic_config(interrupts: bool) -> NicConfig {
    NicConfig {
        eth: EthConfig {
            log_sq: 5,
            log_rq: 5,
            lso_bufs: 0,
            interrupts,
            ..EthConfig::default()
        },
        ..NicConfig::default()
    }
}

fn open(a: A, interrupts: bool) -> Nic<A> {
    let r = Resources::of(&a).expect("resources");
    match Nic::new(a, r, nic_config(interrupts)) {
        Ok(n) => n,
        Err(f) => panic!("Nic::new failed: {}", f.error),
    }
}

fn frame(dst: [u8; 6], vlan: Option<u16>, seq: u16) -> Vec<u8> {
    let mut f = vec![0u8; 80];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    let at = match vlan {
        Some(v) => {
            f[12..14].copy_from_slice(&[0x81, 0x00]);
            f[14..16].copy_from_slice(&v.to_be_bytes());
            16
        }
        None => 12,
    };
    f[at..at + 2].copy_from_slice(&[0x88, 0xb5]);
    f[at + 2..at + 4].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Inject `f`; which VNICs received it.
fn who_gets(sim: &SimPlatform, vnics: &mut [Vnic<A>], f: &[u8]) -> Vec<usize> {
    sim.inject_rx(f);
    let mut out = Vec::new();
    for (i, v) in vnics.iter_mut().enumerate() {
        // Interrupt mode: the model's EQE may land after the doorbell.
        assert!(common::eventually(|| {
            v.poll();
            true
        }));
        while v.receive(|_, _| ()).is_some() {
            out.push(i);
        }
        v.flush();
    }
    out
}

/// Each VNIC gets its own unicast frame, one multicast group and
/// broadcast as set up below, and sends one frame.
fn check_traffic(sim: &SimPlatform, vnics: &mut [Vnic<A>], seq: u16) {
    for i in 0..vnics.len() {
        let (mac, vlan) = (vnics[i].mac().0, vnics[i].vlan());
        let mut got = who_gets(sim, vnics, &frame(mac, vlan, seq));
        // The promiscuous one (2) sees every frame too.
        if i != 2 {
            got.retain(|w| *w != 2);
        }
        got.dedup();
        assert_eq!(got, vec![i], "unicast to vnic {i}");
    }
    let group = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x7b];
    let mut got = who_gets(sim, vnics, &frame(group, None, seq));
    got.sort();
    assert_eq!(
        got,
        vec![0, 2],
        "multicast: its member and the promiscuous one"
    );
    sim.take_tx();
    for v in vnics.iter_mut() {
        v.transmit(64, |b| {
            b.fill(0);
            b[..6].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
        })
        .expect("transmit");
        v.flush();
    }
    let mut sent = 0;
    assert!(
        common::eventually(|| {
            for v in vnics.iter_mut() {
                v.poll();
            }
            sent += sim.take_tx().len();
            sent >= vnics.len()
        }),
        "every VNIC transmits"
    );
}

/// The recovery a kernel runs (what `mlx5nic` does with its interfaces):
/// snapshot, reset, replay, swap, drop the old.
fn recover(nic: Nic<A>, vnics: &mut [Vnic<A>], interrupts: bool) -> Nic<A> {
    let states: Vec<VnicState> = vnics.iter().map(VnicState::of).collect();
    let (new, rep) = nic
        .with_adapter(|a| a.reset_function())
        .unwrap_or_else(|e| panic!("reset failed: {e}"));
    assert!(rep.pages_released > 0);
    assert_eq!(rep.recent, 1);
    let port_mtu = usize::from(new.port().admin_mtu) - mlx5::module::PORT_MTU_OVERHEAD;
    let new_nic = open(new, interrupts);
    for (v, s) in vnics.iter_mut().zip(&states) {
        let fresh = restore::replay(&new_nic, s, port_mtu).expect("replay");
        // The old one goes: its commands fail fast on the failed shell.
        drop(std::mem::replace(v, fresh));
    }
    let (shell, _) = nic.close().expect("every old VNIC gone");
    assert!(shell.is_failed());
    drop(shell);
    new_nic
}

#[test]
fn health_faults_reset_the_function_and_restore_everything() {
    for (fault, interrupts) in [
        Fault::HealthSyndrome(0x8),
        Fault::HealthCounterStops,
        // The PRM's internal error event (type 0x08) on EQ0.
        Fault::InternalError,
    ]
    .into_iter()
    .flat_map(|f| MODES.map(|m| (f, m)))
    {
        let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
        let before = sim.dma_in_use();
        let cfg = Config {
            health: mlx5::HealthConfig {
                poll_interval_ms: 0,
                max_misses: 3,
            },
            ..common::config()
        };
        let mut a = Adapter::attach(sim.clone(), cfg).unwrap_or_else(|f| panic!("{}", f.error));
        a.set_port_mtu(4000).unwrap();
        a.set_led(Led::Beacon(30)).unwrap();
        a.set_speed(SpeedSetting::Forced(100_000)).unwrap();
        let mac = a.mac();
        let nic = open(a, interrupts);
        let mut vnics: Vec<Vnic<A>> = [
            VnicSpec {
                mac: Some(mac),
                ..VnicSpec::default()
            },
            VnicSpec {
                vlan: Some(10),
                queues: 2,
                ..VnicSpec::default()
            },
            VnicSpec::default(),
        ]
        .into_iter()
        .map(|s| nic.create(s).unwrap())
        .collect();
        vnics[0]
            .add_multicast([0x01, 0x00, 0x5e, 0x00, 0x00, 0x7b])
            .unwrap();
        vnics[1].queue_set_mut().set_mtu(3000, 4000).unwrap();
        vnics[2].set_promiscuous(true).unwrap();
        check_traffic(&sim, &mut vnics, 1);
        let flows_before = nic.flows().len();
        let macs: Vec<_> = vnics.iter().map(|v| (v.mac(), v.vlan())).collect();

        let injected_ns = sim.now_ns();
        sim.inject(fault);
        // As a kernel's main loop: EQ0 serviced (the internal error event
        // arrives there), health checked.
        let fault_kind = common::eventually(|| {
            nic.with_adapter(|a| {
                let _ = a.poll();
                a.poll_health()
            })
            .is_err()
        });
        assert!(
            fault_kind,
            "health fault seen ({fault:?}, interrupts {interrupts})"
        );
        // Commands fail fast now.
        assert!(nic.with_adapter(|a| a.port_counters()).is_err());

        let nic = recover(nic, &mut vnics, interrupts);

        // The model's fault is gone with the reset; the function is back.
        nic.with_adapter(|a| {
            assert!(!a.is_failed());
            assert_eq!(a.poll_health(), Ok(()));
            assert_eq!(
                a.port().admin_mtu as usize,
                4000 + mlx5::module::PORT_MTU_OVERHEAD
            );
            assert_eq!(a.configured().led, Some(Led::Beacon(30)));
            assert_eq!(a.configured().speed, Some(SpeedSetting::Forced(100_000)));
            assert_eq!(a.led().unwrap().0, 30);
            assert_eq!(a.reset_history().total, 1);
            // The escalation record, then the function reset's outcome.
            let recs: Vec<_> = a.faults().records().copied().collect();
            let last = recs.last().unwrap();
            assert_eq!(last.class, FaultClass::Health);
            assert_eq!(last.action, FaultAction::FunctionReset);
            assert_eq!(last.outcome, FaultOutcome::Recovered);
            assert!(recs.iter().any(|r| r.outcome == FaultOutcome::Escalate));
            assert_eq!(a.faults().count(FaultClass::Health), 2);
            // Both stamped after the injection (the fault was there from
            // then on), in order, in this test's time.
            assert_eq!(recs.len(), 2, "{recs:?}");
            assert!(recs.iter().all(|r| r.at_ns >= injected_ns), "{recs:?}");
            check_stamps(a, sim.now_ns());
            // The model holds exactly the new function's pages.
            assert_eq!(sim.pages_held(), a.pages_held());
        });
        let after: Vec<_> = vnics.iter().map(|v| (v.mac(), v.vlan())).collect();
        assert_eq!(after, macs, "same MACs and VLANs");
        assert_eq!(vnics[1].queues(), 2);
        assert_eq!(vnics[1].mtu(), 3000);
        assert_eq!(vnics[0].multicast().len(), 1);
        assert!(vnics[2].promiscuous());
        assert_eq!(nic.flows().len(), flows_before);
        assert!(nic.flows().iter().all(|c| c.matches()));
        check_traffic(&sim, &mut vnics, 2);

        for v in vnics {
            assert_eq!(v.destroy().errors, 0);
        }
        let (a, rep) = nic.close().expect("no VNIC left");
        assert_eq!(rep.errors, 0);
        let (_, drep) = a.detach();
        assert_eq!(drep.errors, 0, "{drep:?}");
        assert_eq!(drep.pages_lost, 0);
        assert_eq!(sim.pages_held(), 0);
        assert_eq!(sim.dma_in_use(), before, "all DMA memory freed");
        let v = sim.sanitizer_violations();
        assert!(v.is_empty(), "sanitizer violations: {v:?}");
    }
}

/// What the driver does with a module error (type 6, high temperature)
/// the model raises: the events `poll` returns, the link state after, and
/// the record it made (its number and time aside).
fn module_error(sim: &SimPlatform, nic: &Nic<A>) -> (Vec<PortEvent>, bool, FaultRecord) {
    let t0 = sim.now_ns();
    sim.with_model(|d| d.module_error(6).unwrap());
    nic.with_adapter(|a| {
        let ev: Vec<PortEvent> = a.poll().unwrap().into_iter().collect();
        let mut r = *a.faults().last().unwrap();
        assert!(r.at_ns >= t0 && r.at_ns <= sim.now_ns(), "{r:?}");
        (r.seq, r.at_ns) = (0, 0);
        (ev, a.link_up(), r)
    })
}

/// The cage gets a working module again: the link comes back.
fn replace_module(sim: &SimPlatform, nic: &Nic<A>) {
    sim.with_model(|d| {
        d.remove_module();
        d.insert_module(mlx5_sim::module::ModuleKind::default_for(d.personality))
            .unwrap()
    });
    nic.with_adapter(|a| {
        let ev: Vec<PortEvent> = a.poll().unwrap().into_iter().collect();
        assert_eq!(ev.last(), Some(&PortEvent::Up), "{ev:?}");
        assert!(a.link_up());
        assert_eq!(a.module_state().unwrap(), ModuleState::Plugged);
    });
}

/// What decides whether module events reach the driver and what the port
/// does with frames: the model's PMAOS `e` (module events on), the event
/// mask of the EQ that takes PORT_MODULE events, the port MTU the driver
/// read (admin, operational).
fn module_settings(sim: &SimPlatform, nic: &Nic<A>) -> (u8, Option<u64>, u16, u16) {
    let (e, mask) = sim.with_model(|d| {
        let mask = d
            .eqs
            .subscriber(mlx5::eq::event::PORT_MODULE)
            .and_then(|n| d.eqs.get(n))
            .map(|eq| eq.mask);
        (d.phys_port.module_events, mask)
    });
    let (admin, oper) = nic.with_adapter(|a| {
        let p = a.refresh_port().unwrap();
        (p.admin_mtu, p.oper_mtu)
    });
    (e, mask, admin, oper)
}

#[test]
fn a_module_error_after_a_function_reset_is_handled_as_before() {
    for interrupts in MODES {
        let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
        let before = sim.dma_in_use();
        let t_start = sim.now_ns();
        let mut a = Adapter::attach(sim.clone(), common::config())
            .unwrap_or_else(|f| panic!("{}", f.error));
        a.set_port_mtu(4000).unwrap();
        let nic = open(a, interrupts);
        let mut vnics = vec![nic.create(VnicSpec::default()).unwrap()];
        let settings = module_settings(&sim, &nic);
        assert_eq!(settings.0, 1, "module events on");
        assert!(settings.1.is_some(), "an EQ takes module events");
        assert_eq!(
            usize::from(settings.2),
            4000 + mlx5::module::PORT_MTU_OVERHEAD
        );

        let first = module_error(&sim, &nic);
        assert_eq!(
            first,
            (
                vec![PortEvent::Module(ModuleState::Error(6)), PortEvent::Down],
                false,
                FaultRecord {
                    pci: first.2.pci,
                    ..FaultRecord::new(FaultClass::ModuleError, FaultObject::Port(1), 0)
                        .syndromes(6, 0)
                        .action(FaultAction::None, FaultOutcome::Reported)
                }
            )
        );
        replace_module(&sim, &nic);

        sim.inject(Fault::HealthSyndrome(0x8));
        assert!(nic.with_adapter(|a| a.poll_health()).is_err());
        let nic = recover(nic, &mut vnics, interrupts);

        // Module events, their EQ and the port MTU as before.
        assert_eq!(module_settings(&sim, &nic), settings);
        // The same error is recorded and acted on as before the reset.
        assert_eq!(module_error(&sim, &nic), first);
        nic.with_adapter(|a| {
            assert_eq!(a.faults().count(FaultClass::ModuleError), 2);
            // Module error, health escalation, reset, module error: in
            // order, in this test's time.
            let recs: Vec<_> = a.faults().records().map(|r| r.class).collect();
            assert_eq!(
                recs,
                [
                    FaultClass::ModuleError,
                    FaultClass::Health,
                    FaultClass::Health,
                    FaultClass::ModuleError
                ]
            );
            assert!(a.faults().records().all(|r| r.at_ns >= t_start));
            check_stamps(a, sim.now_ns());
        });
        replace_module(&sim, &nic);
        // The link is back: the VNIC sends.
        sim.take_tx();
        vnics[0]
            .transmit(64, |b| {
                b.fill(0);
                b[..6].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
            })
            .expect("transmit");
        vnics[0].flush();
        assert!(common::eventually(|| {
            vnics[0].poll();
            !sim.take_tx().is_empty()
        }));

        for v in vnics {
            assert_eq!(v.destroy().errors, 0);
        }
        let (a, rep) = nic.close().expect("no VNIC left");
        assert_eq!(rep.errors, 0);
        let (_, drep) = a.detach();
        assert_eq!((drep.errors, drep.pages_lost), (0, 0), "{drep:?}");
        assert_eq!(sim.pages_held(), 0);
        assert_eq!(sim.dma_in_use(), before, "all DMA memory freed");
        let v = sim.sanitizer_violations();
        assert!(v.is_empty(), "sanitizer violations: {v:?}");
    }
}

#[test]
fn a_function_that_keeps_failing_is_given_up() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let before = sim.dma_in_use();
    let cfg = Config {
        reset: ResetPolicy {
            max_resets: 2,
            window_ms: 60_000,
        },
        ..common::config()
    };
    let mut a = Adapter::attach(sim.clone(), cfg).unwrap_or_else(|f| panic!("{}", f.error));
    for round in 0..2 {
        sim.inject(Fault::HealthSyndrome(0x1));
        assert!(a.poll_health().is_err());
        let (new, rep) = a.reset_function().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rep.recent, round + 1);
        drop(std::mem::replace(&mut a, new));
    }
    sim.inject(Fault::HealthSyndrome(0x1));
    assert!(a.poll_health().is_err());
    match a.reset_function() {
        Err(ResetError::Limit { resets: 2, .. }) => {}
        other => panic!("expected the limit, got {:?}", other.map(|(_, r)| r)),
    }
    let last = *a.faults().last().unwrap();
    assert_eq!(last.action, FaultAction::MarkFailed);
    assert_eq!(last.outcome, FaultOutcome::Failed);
    // Two resets (escalate, recovered), then escalate and mark-failed.
    assert_eq!(a.faults().count(FaultClass::Health), 6);
    // Still failed, still detachable (the detach resets it).
    let (_, rep) = a.detach();
    assert!(rep.reset);
    assert_eq!(sim.dma_in_use(), before);
    assert!(sim.sanitizer_violations().is_empty());
}

#[test]
fn a_lost_command_times_out_bounded_and_is_recorded() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut a = Adapter::attach(sim.clone(), common::short_timeouts())
        .unwrap_or_else(|f| panic!("{}", f.error));
    // ACCESS_REGISTER (PPCNT): the port counters' command.
    sim.inject(Fault::CommandNoCompletion { opcode: 0x805 });
    let t0 = std::time::Instant::now();
    let e = a.port_counters().unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(
            e,
            mlx5::module::PortError::Adapter(mlx5::Error::Command(mlx5::CmdError {
                opcode: 0x805,
                failure: CmdFailure::Timeout { .. },
                ..
            }))
        ),
        "{e:?}"
    );
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    assert_eq!(a.stats().timeouts, 1);
    let r = *a.faults().last().unwrap();
    assert_eq!(r.class, FaultClass::CmdTimeout);
    assert_eq!(format!("{}", r.object), "opcode=0x805");
    // The adapter keeps working.
    a.port_counters().unwrap();
    let (_, rep) = a.detach();
    assert!(rep.reset, "a lost command means a reset at detach");
    assert!(sim.sanitizer_violations().is_empty());
}

#[test]
fn an_escalated_queue_fault_resets_the_function_under_its_record() {
    use mlx5::fault::{FaultObject, FaultRecord};
    let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let before = sim.dma_in_use();
    let mut a =
        Adapter::attach(sim.clone(), common::config()).unwrap_or_else(|f| panic!("{}", f.error));
    // What a queue's reporter records when its recovery repeats too often.
    a.record_fault(
        FaultRecord::new(FaultClass::SqErr, FaultObject::Sq(0x10), 0)
            .syndromes(0x4, 0x32)
            .action(FaultAction::PortReset, FaultOutcome::Escalate),
    );
    assert!(a.faults().escalation_pending());
    assert!(!a.is_failed());
    let (new, _) = a.reset_function().unwrap_or_else(|e| panic!("{e}"));
    assert!(a.is_failed(), "the shell fails every command");
    let last = *new.faults().last().unwrap();
    assert_eq!(last.class, FaultClass::SqErr);
    assert_eq!(last.object, FaultObject::Sq(0x10));
    assert_eq!(
        (last.action, last.outcome),
        (FaultAction::FunctionReset, FaultOutcome::Recovered)
    );
    assert!(!new.faults().escalation_pending());
    assert_eq!(new.faults().count(FaultClass::SqErr), 2);
    drop(a);
    let (_, rep) = new.detach();
    assert_eq!((rep.errors, rep.pages_lost), (0, 0));
    assert_eq!(sim.pages_held(), 0);
    assert_eq!(sim.dma_in_use(), before);
    assert!(sim.sanitizer_violations().is_empty());
}
