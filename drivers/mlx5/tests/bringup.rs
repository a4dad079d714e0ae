//! Bring-up and teardown against mlx5-sim on every personality, in both
//! model modes; reports; page requests; port events; several commands in
//! flight completing in any order.

mod common;

use cxos_drivers::PciAddress;
use mlx5::caps::{CapMode, CapType, QueryHcaCap};
use mlx5::pd::QuerySpecialContexts;
use mlx5::port::{self, AccessRegister};
use mlx5::vport::QueryNicVportContext;
use mlx5::{Adapter, PortEvent};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const MODES: [Mode; 2] = [Mode::Synchronous, Mode::Threaded];

fn attach(sim: &SimPlatform) -> Adapter<SimPlatform> {
    match Adapter::attach(sim.clone(), common::config()) {
        Ok(a) => a,
        Err(f) => panic!("attach failed: {}", f.error),
    }
}

fn assert_clean(sim: &SimPlatform, dma_before: (usize, usize)) {
    assert_eq!(sim.pages_held(), 0, "every page returned");
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}

#[test]
fn every_personality_attaches_and_detaches_in_both_modes() {
    for mode in MODES {
        for pers in Personality::ALL {
            let sim = SimPlatform::new(pers, mode);
            let before = sim.dma_in_use();
            let a = attach(&sim);
            let what = format!("{} {:?}", pers.name(), mode);
            assert_eq!(a.part().name(), pers.name(), "{what}");
            assert_eq!(a.part().id.device, pers.device_id(), "{what}");
            assert!(a.link_up(), "{what}: link up");
            assert!(a.port().speed_mbps > 0, "{what}: speed known");
            assert_ne!(a.mac().0, [0; 6], "{what}: permanent MAC");
            assert_eq!(a.caps().general.cqe_version, 1);
            assert!(a.pages_held() > 0, "{what}: boot/init pages given");
            assert_eq!(a.pages_held(), sim.pages_held(), "{what}: page accounting");
            assert!(a.vectors() >= 2, "{what}: EQ0 + completion vectors");
            let comp = a.comp_eqs();
            assert_eq!(comp.len(), (a.vectors() - 1) as usize, "{what}");
            for (i, (_, v)) in comp.iter().enumerate() {
                assert_eq!(*v as usize, i + 1, "{what}: one completion EQ per vector");
            }
            assert!(a.pd().is_some() && a.tdn().is_some() && a.reserved_lkey().is_some());
            // Completions after EQ0 came by event on vector 0.
            assert!(a.stats().cmd_events > 0, "{what}: command EQEs seen");
            assert!(sim.msix_count(0) > 0, "{what}: vector 0 signalled");
            // The attach line: `mlx5 01:00.0: <part> fw ..., 1 port, MAC ...,
            // link up <speed>`.
            let info = a.info();
            assert_eq!(info.pci, PciAddress::new(0, 1, 0, 0), "{info:?}");
            assert_eq!(info.part.name(), pers.name(), "{info:?}");
            assert_eq!((info.ports, info.mac), (1, a.mac()), "{info:?}");
            assert!(info.link_up && info.speed_mbps > 0, "{info:?}");
            let (_, report) = a.detach();
            assert_eq!(report.errors, 0, "{what}: {:?}", report.first_error);
            assert_eq!(report.pages_lost, 0, "{what}");
            assert_clean(&sim, before);
        }
    }
}

#[test]
fn timeouts_come_from_the_init_segment() {
    let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let cfg = mlx5::Config {
        cmd_timeout_ms: None,
        fw_init_timeout_ms: None,
        ..common::config()
    };
    let a = Adapter::attach(sim.clone(), cfg)
        .map_err(|f| f.error)
        .unwrap();
    // The model advertises cmd_exec_to = 60000 ms at 0xff8 (to_multiplier
    // 0: milliseconds); the driver caps it.
    assert_eq!(a.command_timeout_ms(), mlx5::cmdq::MAX_TIMEOUT_MS);
    a.detach();
}

#[test]
fn reattach_after_detach() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let a = attach(&sim);
    let mac = a.mac();
    let (p, _) = a.detach();
    let a = Adapter::attach(p, common::config())
        .map_err(|f| f.error)
        .unwrap();
    assert_eq!(a.mac(), mac);
    a.detach();
    assert_clean(&sim, before);
}

#[test]
fn reports_name_the_adapter() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let a = attach(&sim);
    // `phys`: `01:00.0 ConnectX-4 Lx fw ... mac <mac> ... ok`.
    let s = a.summary();
    assert_eq!(s.pci, PciAddress::new(0, 1, 0, 0), "{s:?}");
    assert_eq!(s.part.name(), "ConnectX-4 Lx", "{s:?}");
    assert_eq!((s.mac, s.failed), (a.mac(), false), "{s:?}");
    // `phys <pci>`: EQ0, the completion EQs, pages, commands, caps.
    let r = a.report();
    assert_eq!(r.summary, s);
    assert!(r.eq0.is_some_and(|e| e.entries > 0), "{r:?}");
    assert!(!r.comp_eqs.is_empty(), "{r:?}");
    assert_eq!(r.pages.held, a.pages_held(), "{r:?}");
    assert!(r.commands.commands > 0, "{r:?}");
    assert_eq!(r.caps.general.num_ports, 1, "{r:?}");
    a.detach();
}

#[test]
fn page_requests_of_both_signs() {
    for mode in MODES {
        let sim = SimPlatform::new(Personality::ConnectX6Dx, mode);
        let before = sim.dma_in_use();
        let mut a = attach(&sim);
        let held = sim.pages_held();
        sim.request_pages(8);
        assert!(
            common::eventually(|| {
                a.poll().unwrap();
                sim.pages_held() == held + 8
            }),
            "8 more pages given"
        );
        assert_eq!(a.pages_held(), held + 8);
        sim.request_pages(-5);
        assert!(
            common::eventually(|| {
                a.poll().unwrap();
                sim.pages_held() == held + 3
            }),
            "5 pages taken back"
        );
        assert_eq!(a.pages_held(), held + 3);
        assert!(a.stats().page_events >= 2);
        // A request beyond the configured limit is answered "cannot give"
        // (MANAGE_PAGES op_mod 0), not honoured; the adapter carries on.
        sim.request_pages(1 << 24);
        assert!(common::eventually(|| {
            a.poll().unwrap();
            a.stats().page_events >= 3
        }));
        assert_eq!(sim.pages_held(), held + 3);
        assert!(!a.is_failed());
        let (_, r) = a.detach();
        assert_eq!(r.pages_lost, 0);
        assert_clean(&sim, before);
    }
}

/// A page request that arrives while a command runs is served right after
/// it, without a poll.
#[test]
fn page_request_during_a_command() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut a = attach(&sim);
    let held = sim.pages_held();
    sim.request_pages(4);
    a.exec(&QuerySpecialContexts).unwrap();
    assert_eq!(sim.pages_held(), held + 4);
    assert_eq!(a.pages_held(), held + 4);
    a.detach();
    assert_eq!(sim.pages_held(), 0);
}

/// The port-event queue is bounded (`PORT_EVENTS`): a storm keeps the
/// latest events, and the link state is still read from the port.
#[test]
fn a_storm_of_port_events_keeps_the_latest() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut a = attach(&sim);
    for i in 0..100 {
        sim.set_link(i % 2 == 1);
    }
    let events = a.poll().unwrap();
    assert_eq!(events.len(), mlx5::cmd_engine::PORT_EVENTS, "{events:?}");
    assert_eq!(events.back(), Some(&PortEvent::Up));
    assert_eq!(events.front(), Some(&PortEvent::Down));
    assert!(a.link_up());
    assert!(a.poll().unwrap().is_empty());
    a.detach();
}

#[test]
fn port_change_events_update_the_link() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Threaded);
    let mut a = attach(&sim);
    assert!(a.link_up());
    sim.set_link(false);
    let mut seen = Vec::new();
    assert!(common::eventually(|| {
        seen.extend(a.poll().unwrap());
        !a.link_up()
    }));
    assert!(seen.contains(&PortEvent::Down), "{seen:?}");
    sim.set_link(true);
    assert!(common::eventually(|| {
        seen.extend(a.poll().unwrap());
        a.link_up()
    }));
    assert!(seen.contains(&PortEvent::Up), "{seen:?}");
    a.detach();
}

/// Several commands in flight on different slots, collected in reverse
/// order of submission; the threaded model completes them whenever it
/// gets to them.
#[test]
fn commands_complete_out_of_order_across_slots() {
    for mode in MODES {
        let sim = SimPlatform::new(Personality::ConnectX6, mode);
        let mut a = attach(&sim);
        let caps_cur = a
            .exec(&QueryHcaCap {
                kind: CapType::General,
                mode: CapMode::Current,
            })
            .unwrap();
        let lkey = a.exec(&QuerySpecialContexts).unwrap();
        let vport = a.exec(&QueryNicVportContext).unwrap();
        let req = port::read_request(port::REG_PTYS);
        let ptys = a
            .exec(&AccessRegister {
                reg: port::REG_PTYS,
                write: false,
                data: &req,
            })
            .unwrap();
        for _round in 0..20 {
            let t1 = a
                .submit(QueryHcaCap {
                    kind: CapType::General,
                    mode: CapMode::Current,
                })
                .unwrap();
            let t2 = a.submit(QuerySpecialContexts).unwrap();
            let t3 = a.submit(QueryNicVportContext).unwrap();
            let t4 = a
                .submit(AccessRegister {
                    reg: port::REG_PTYS,
                    write: false,
                    data: &req,
                })
                .unwrap();
            let slots = [t1.slot(), t2.slot(), t3.slot(), t4.slot()];
            assert!(
                slots
                    .iter()
                    .all(|s| slots.iter().filter(|x| *x == s).count() == 1)
            );
            assert_eq!(a.wait(t4).unwrap(), ptys);
            assert_eq!(a.wait(t3).unwrap(), vport);
            assert_eq!(a.wait(t2).unwrap(), lkey);
            assert_eq!(a.wait(t1).unwrap(), caps_cur);
        }
        assert_eq!(a.stats().spurious_completions, 0);
        let (_, r) = a.detach();
        assert_eq!(r.errors, 0);
    }
}

/// A port found administratively down is brought up at attach and put
/// back down at detach; with `port_admin_up` off it is left alone.
#[test]
fn port_admin_state_is_restored() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut a = attach(&sim);
    let down = port::paos_admin(false);
    a.exec(&AccessRegister {
        reg: port::REG_PAOS,
        write: true,
        data: &down,
    })
    .unwrap();
    assert!(!a.refresh_port().unwrap().admin_up);
    let (p, _) = a.detach();
    let a = Adapter::attach(p, common::config())
        .map_err(|f| f.error)
        .unwrap();
    assert!(a.port().admin_up && a.link_up(), "brought up at attach");
    let (p, r) = a.detach();
    assert_eq!(r.errors, 0);
    let cfg = mlx5::Config {
        port_admin_up: false,
        ..common::config()
    };
    let a = Adapter::attach(p, cfg).map_err(|f| f.error).unwrap();
    assert!(!a.port().admin_up, "restored to down at detach, left down");
    assert!(!a.link_up());
    assert!(!a.info().link_up, "{:?}", a.info());
    a.detach();
}

/// Completion EQs follow the configuration and the vectors granted: none
/// asked gives one sharing vector 0; eight asked give vectors 1..=8.
#[test]
fn completion_eqs_per_vector() {
    for (wanted, vectors) in [(0u16, vec![0u16]), (8, (1..=8).collect())] {
        let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
        let before = sim.dma_in_use();
        let cfg = mlx5::Config {
            comp_eqs: wanted,
            ..common::config()
        };
        let a = Adapter::attach(sim.clone(), cfg)
            .map_err(|f| f.error)
            .unwrap();
        let got: Vec<u16> = a.comp_eqs().iter().map(|(_, v)| *v).collect();
        assert_eq!(got, vectors);
        assert_eq!(a.vectors(), wanted + 1);
        let eqns: Vec<_> = a.comp_eqs().iter().map(|(e, _)| *e).collect();
        assert!(!eqns.contains(&a.eq0().unwrap().0), "distinct EQ numbers");
        a.detach();
        assert_clean(&sim, before);
    }
}
