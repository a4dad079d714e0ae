//! VNICs against the model: 20 VNICs (untagged and on two VLANs, some
//! with RSS) on one adapter; each frame reaches exactly the VNIC the
//! adapter's flow tables steer it to (frames to unknown MACs and other
//! VLANs dropped by the adapter, broadcast to exactly the VNICs of its
//! VLAN), VLAN tags stripped on receive and inserted on transmit; the
//! entries the driver programmed are what the adapter reports
//! (QUERY_FLOW_TABLE_ENTRY); destroying a VNIC removes exactly its flow
//! entries and frees its queues (the model's tables back to before);
//! interrupt mode: one VNIC's poll never takes another's CQ events; a
//! VNIC's link state follows the port.

mod common;

use cxos_drivers::NetDevice;
use mlx5::Adapter;
use mlx5::Mac;
use mlx5::vnic::{Nic, Vnic, VnicError, VnicSpec};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

type A = Adapter<SimPlatform>;

/// A frame to `dst` from a peer, tagged with `vlan` when given; the
/// payload names the frame.
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

/// What the stack of a VNIC gets: the frame without its tag.
fn untagged(f: &[u8]) -> Vec<u8> {
    if f[12..14] == [0x81, 0x00] {
        let mut u = f[..12].to_vec();
        u.extend_from_slice(&f[16..]);
        u
    } else {
        f.to_vec()
    }
}

/// Every frame each VNIC has received, drained.
fn drain(vnics: &mut [Vnic<A>]) -> Vec<Vec<Vec<u8>>> {
    vnics
        .iter_mut()
        .map(|v| {
            v.poll();
            let mut got = Vec::new();
            while let Some(f) = v.receive(|b, m| {
                assert_eq!(m.vlan, None, "the tag is the VNIC's business");
                b.to_vec()
            }) {
                got.push(f);
            }
            v.flush();
            got
        })
        .collect()
}

/// Inject `f`; which VNICs (indexes) received it.
fn who_gets(sim: &SimPlatform, vnics: &mut [Vnic<A>], f: &[u8]) -> Vec<usize> {
    sim.inject_rx(f);
    let want = untagged(f);
    let mut out = Vec::new();
    for (i, got) in drain(vnics).into_iter().enumerate() {
        for g in got {
            assert_eq!(&g[..want.len()], &want[..], "vnic {i} got another frame");
            out.push(i);
        }
    }
    out
}

fn layout() -> Vec<VnicSpec> {
    // 8 untagged, 6 on VLAN 10, 6 on VLAN 20; every fourth with 2 queues.
    (0..20)
        .map(|i| VnicSpec {
            mac: None,
            vlan: match i % 10 {
                0..=3 => None,
                4..=6 => Some(10),
                _ => Some(20),
            },
            queues: if i % 4 == 3 { 2 } else { 1 },
        })
        .collect()
}

/// The model's flow state: tables and entries (counters and all).
fn model_flows(sim: &SimPlatform) -> (Vec<(u32, u8)>, Vec<String>) {
    let tables = sim.flow_tables().iter().map(|t| (t.id, t.level)).collect();
    let entries = sim
        .flow_entries()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    (tables, entries)
}

#[test]
fn twenty_vnics_each_frame_steered_by_the_adapter() {
    for p in [Personality::ConnectX5, Personality::ConnectX4Lx] {
        let sim = SimPlatform::new(p, Mode::Synchronous);
        let before = sim.dma_in_use();
        let nic = common::nic(&sim, false);
        let mut vnics: Vec<Vnic<A>> = layout()
            .into_iter()
            .map(|s| nic.create(s).expect("create"))
            .collect();
        assert_eq!(nic.count(), 20);
        // Distinct, locally administered unicast MACs.
        let macs: Vec<Mac> = vnics.iter().map(|v| v.mac()).collect();
        for (i, m) in macs.iter().enumerate() {
            assert_eq!(m.0[0] & 3, 2, "{m}");
            assert!(!macs[..i].contains(m));
            assert!(
                sim.vport_filter().uc.contains(&m.0),
                "{m} on the vport list"
            );
        }
        // Unicast: exactly the owner, tag stripped.
        for i in 0..vnics.len() {
            let (mac, vlan) = (vnics[i].mac().0, vnics[i].vlan());
            assert_eq!(
                who_gets(&sim, &mut vnics, &frame(mac, vlan, i as u16)),
                vec![i],
                "{p:?} vnic {i}"
            );
            assert_eq!(vnics[i].flow_traffic().unwrap().packets, 1);
        }
        // VLAN isolation: a VNIC's MAC on another VLAN (or untagged / tagged
        // when it is not) reaches nobody; dropped in the adapter.
        let s0 = sim.port_stats();
        let mut sent = 0;
        for i in 0..vnics.len() {
            let mac = vnics[i].mac().0;
            for other in [None, Some(10), Some(20), Some(30)] {
                if other == vnics[i].vlan() {
                    continue;
                }
                assert!(who_gets(&sim, &mut vnics, &frame(mac, other, 0)).is_empty());
                sent += 1;
            }
        }
        let s1 = sim.port_stats();
        assert_eq!(s1.rx_dropped_no_steering - s0.rx_dropped_no_steering, sent);
        // Unknown MACs: dropped by the vport filter.
        for vlan in [None, Some(10)] {
            let stranger = [0x02, 0x77, 0, 0, 0, 9];
            assert!(who_gets(&sim, &mut vnics, &frame(stranger, vlan, 0)).is_empty());
        }
        assert_eq!(
            sim.port_stats().rx_dropped_vport_filter - s1.rx_dropped_vport_filter,
            2
        );
        // Broadcast: exactly the VNICs of that VLAN.
        for vlan in [None, Some(10), Some(20), Some(30)] {
            let want: Vec<usize> = (0..vnics.len())
                .filter(|&i| vnics[i].vlan() == vlan)
                .collect();
            let mut got = who_gets(&sim, &mut vnics, &frame([0xff; 6], vlan, 7));
            got.sort();
            assert_eq!(got, want, "broadcast on {vlan:?}");
        }
        // Multicast joined by two VNICs of VLAN 10: those two only.
        let group = [0x33, 0x33, 0, 0, 0, 0x42];
        for i in [4, 5] {
            vnics[i].add_multicast(group).unwrap();
        }
        let mut got = who_gets(&sim, &mut vnics, &frame(group, Some(10), 3));
        got.sort();
        assert_eq!(got, vec![4, 5]);
        assert!(who_gets(&sim, &mut vnics, &frame(group, None, 3)).is_empty());
        vnics[4].remove_multicast(group).unwrap();
        assert_eq!(who_gets(&sim, &mut vnics, &frame(group, Some(10), 3)), [5]);
        // The adapter holds what the driver programmed.
        let flows = nic.flows();
        assert!(flows.len() >= 20 + 20 + 3, "{}", flows.len());
        assert!(
            flows.iter().all(|c| c.matches()),
            "{:?}",
            nic.flows_report()
        );
        // `flows`' last line: `N entries, N as programmed, 0 mismatched`.
        let report = nic.flows_report();
        assert_eq!(report.checks.len(), flows.len(), "{report:?}");
        assert_eq!(
            report.checks.iter().filter(|c| !c.matches()).count(),
            0,
            "{report:?}"
        );
        assert_eq!(nic.list().len(), 20);
        // Transmit: tagged VNICs' frames carry their tag on the wire.
        let _ = sim.take_tx();
        for v in vnics.iter_mut() {
            let me = v.mac().0;
            v.transmit(64, |b| {
                b.fill(0);
                b[..6].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
                b[6..12].copy_from_slice(&me);
                b[12..14].copy_from_slice(&[0x88, 0xb5]);
            })
            .unwrap();
            v.flush();
        }
        let wire = sim.take_tx();
        assert_eq!(wire.len(), 20);
        for (v, f) in vnics.iter().zip(&wire) {
            assert_eq!(f[6..12], v.mac().0);
            match v.vlan() {
                Some(id) => {
                    assert_eq!(f[12..14], [0x81, 0x00]);
                    assert_eq!(u16::from_be_bytes([f[14], f[15]]) & 0xfff, id);
                    assert_eq!(f[16..18], [0x88, 0xb5]);
                }
                None => assert_eq!(f[12..14], [0x88, 0xb5]),
            }
        }
        for v in vnics {
            let rep = v.destroy();
            assert_eq!(rep.errors, 0, "{rep:?}");
        }
        assert!(sim.flow_entries().is_empty(), "{:?}", sim.flow_entries());
        assert!(sim.vport_filter().uc.is_empty());
        common::close_nic(nic, &sim, before);
    }
}

#[test]
fn destroying_a_vnic_removes_exactly_its_flows_and_frees_its_queues() {
    let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    let mut vnics: Vec<Vnic<A>> = layout()
        .into_iter()
        .take(10)
        .map(|s| nic.create(s).unwrap())
        .collect();
    for spec in [
        VnicSpec {
            vlan: Some(10),
            queues: 4,
            ..VnicSpec::default()
        },
        VnicSpec::default(),
        // Same MAC as vnic 0, on a VLAN: shares its root entry.
        VnicSpec {
            mac: Some(vnics[0].mac()),
            vlan: Some(20),
            queues: 1,
        },
    ] {
        let flows0 = model_flows(&sim);
        let uc0 = sim.vport_filter().uc;
        let dma0 = sim.dma_in_use();
        let mut x = nic.create(spec).unwrap();
        let info = x.info();
        let cqs: Vec<u32> = (0..x.queues())
            .filter_map(|i| x.queue_set().rx_cq_at(i).map(|c| c.cqn.0))
            .chain(x.queue_set().tx_cq().map(|c| c.cqn.0))
            .collect();
        // It works while it exists.
        sim.inject_rx(&frame(x.mac().0, x.vlan(), 1));
        x.poll();
        assert!(x.receive(|_, _| ()).is_some());
        x.flush();
        assert_ne!(model_flows(&sim), flows0);
        assert_eq!(
            nic.create(VnicSpec {
                mac: Some(x.mac()),
                ..spec
            })
            .unwrap_err(),
            VnicError::InUse {
                mac: x.mac(),
                vlan: x.vlan()
            }
        );
        let rep = x.destroy();
        assert_eq!(rep.errors, 0, "{rep:?}");
        // The model's tables are as before: same tables, same entries
        // (the shared broadcast entry rewritten without it), same vport list.
        assert_eq!(model_flows(&sim), flows0, "{spec:?}");
        assert_eq!(sim.vport_filter().uc, uc0);
        assert_eq!(sim.dma_in_use(), dma0, "its memory freed");
        sim.with_model(|d| {
            for c in &cqs {
                assert!(d.nic.cqs.get(*c).is_none(), "cq {c}");
            }
            for r in &info.rqns {
                assert!(d.nic.rqs.get(r.0).is_none(), "rq {r:?}");
            }
            assert!(d.nic.sqs.get(info.sqn.unwrap().0).is_none());
            assert!(d.nic.tirs.get(info.tir.unwrap().0).is_none());
        });
        // The others still get their frames.
        for i in [0, 5, 9] {
            let (mac, vlan) = (vnics[i].mac().0, vnics[i].vlan());
            assert_eq!(who_gets(&sim, &mut vnics, &frame(mac, vlan, 2)), [i]);
        }
    }
    assert!(
        nic.flows().iter().all(|c| c.matches()),
        "{:?}",
        nic.flows_report()
    );
    // Bad specs are refused before anything is created.
    for (spec, err) in [
        (
            VnicSpec {
                vlan: Some(4095),
                ..VnicSpec::default()
            },
            VnicError::BadVlan(4095),
        ),
        (
            VnicSpec {
                queues: 3,
                ..VnicSpec::default()
            },
            VnicError::BadQueues(3),
        ),
        (
            VnicSpec {
                mac: Some(Mac([0x33, 0x33, 0, 0, 0, 1])),
                ..VnicSpec::default()
            },
            VnicError::BadMac(Mac([0x33, 0x33, 0, 0, 0, 1])),
        ),
    ] {
        assert_eq!(nic.create(spec).unwrap_err(), err);
    }
    let nic = nic.close().expect_err("VNICs still exist");
    for v in vnics {
        assert_eq!(v.destroy().errors, 0);
    }
    common::close_nic(nic, &sim, before);
}

#[test]
fn the_handles_can_live_in_a_kernel_static() {
    fn send_and_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_and_sync::<Nic<A>>();
    send::<Vnic<A>>();
}

#[test]
fn one_vnics_poll_never_takes_another_vnics_completion_events() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let nic = common::nic(&sim, true);
    let mut a = nic.create(VnicSpec::default()).unwrap();
    let mut b = nic
        .create(VnicSpec {
            vlan: Some(10),
            ..VnicSpec::default()
        })
        .unwrap();
    let armed = |v: &Vnic<A>| v.queue_set().rx_cq().unwrap().armed;
    assert_eq!((armed(&a), armed(&b)), (1, 1));
    // A frame for b: its CQ's event sits in the EQ. a's poll drains the EQ
    // but leaves b's event for b.
    sim.inject_rx(&frame(b.mac().0, Some(10), 1));
    a.poll();
    assert_eq!((armed(&a), armed(&b)), (1, 1));
    assert!(a.receive(|_, _| ()).is_none());
    b.poll();
    assert_eq!(armed(&b), 2, "b re-armed its CQ after its event");
    assert!(b.receive(|_, _| ()).is_some());
    b.flush();
    // And the other way round, with a's event taken by b's poll first (b
    // may see an event of its own: it re-armed before taking its CQE).
    sim.inject_rx(&frame(a.mac().0, None, 2));
    b.poll();
    assert_eq!(armed(&a), 1);
    a.poll();
    assert_eq!(armed(&a), 2);
    assert!(a.receive(|_, _| ()).is_some());
    a.flush();
    assert_eq!(a.destroy().errors, 0);
    assert_eq!(b.destroy().errors, 0);
    common::close_nic(nic, &sim, before);
}

#[test]
fn a_vnics_link_follows_the_port_through_the_adapters_poll() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    let v = nic.create(VnicSpec::default()).unwrap();
    assert!(v.link().up);
    assert!(v.link().speed_mbps > 0);
    // The VNIC reads the state the adapter last saw (no adapter lock on
    // its poll): a port change shows once EQ 0 has been served.
    sim.set_link(false);
    assert!(v.link().up, "not yet seen by the adapter");
    nic.with_adapter(|a| a.poll()).unwrap();
    assert_eq!(v.link(), cxos_drivers::LinkState::default());
    sim.set_link(true);
    nic.with_adapter(|a| a.poll()).unwrap();
    assert!(v.link().up);
    assert_eq!(v.destroy().errors, 0);
    common::close_nic(nic, &sim, before);
}

/// Inject `f`; (VNIC index, frame as received) for every delivery.
fn deliveries(sim: &SimPlatform, vnics: &mut [Vnic<A>], f: &[u8]) -> Vec<(usize, Vec<u8>)> {
    sim.inject_rx(f);
    let mut out = Vec::new();
    for (i, got) in drain(vnics).into_iter().enumerate() {
        for g in got {
            out.push((i, g));
        }
    }
    out
}

#[test]
fn a_promiscuous_vnic_sees_everything_while_the_others_keep_theirs() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    // 0..=3 untagged, 4 and 5 on VLAN 10; 6 the promiscuous one.
    let mut vnics: Vec<Vnic<A>> = layout()
        .into_iter()
        .take(6)
        .chain([VnicSpec::default()])
        .map(|s| nic.create(s).unwrap())
        .collect();
    let mac_root = sim.flow_root();
    let flows0 = model_flows(&sim);
    let p = 6;
    vnics[p].set_promiscuous(true).unwrap();
    vnics[p].set_promiscuous(true).unwrap();
    assert!(vnics[p].promiscuous());
    assert_ne!(sim.flow_root(), mac_root, "the tap table is the root");
    assert!(sim.flow_tables().iter().any(|t| t.level == 0));
    assert!(sim.vport_filter().promisc_all);
    let (m0, m4) = (vnics[0].mac().0, vnics[4].mac().0);
    let stranger = [0x02, 0x77, 0, 0, 0, 9];
    for (f, owners) in [
        (frame(stranger, None, 1), vec![]),
        (frame(stranger, Some(30), 2), vec![]),
        (frame(m0, None, 3), vec![0]),
        (frame(m4, Some(10), 4), vec![4]),
        (frame(m4, Some(20), 5), vec![]),
        (frame([0xff; 6], Some(10), 6), vec![4, 5]),
    ] {
        let got = deliveries(&sim, &mut vnics, &f);
        let mut who: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
        who.sort();
        let mut want = owners.clone();
        want.push(p);
        assert_eq!(who, want, "{f:02x?}");
        for (i, g) in got {
            // The promiscuous VNIC (untagged, no stripping) sees the frame
            // as it was on the wire; the owners without their tag.
            let expect = if i == p { f.clone() } else { untagged(&f) };
            assert_eq!(&g[..expect.len()], &expect[..], "vnic {i}");
        }
    }
    let checks = nic.flows();
    assert!(
        checks.iter().all(|c| c.matches()),
        "{:?}",
        nic.flows_report()
    );
    assert!(checks.iter().any(|c| c.programmed.level == 0));
    assert!(nic.flows_report().tables.iter().any(|t| t.level == 0));
    // Off again: the MAC table is the root, strangers dropped by the vport.
    vnics[p].set_promiscuous(false).unwrap();
    assert_eq!(sim.flow_root(), mac_root);
    assert_eq!(model_flows(&sim), flows0);
    assert!(!sim.vport_filter().promisc_all);
    assert!(deliveries(&sim, &mut vnics, &frame(stranger, None, 7)).is_empty());
    // Destroyed while promiscuous: everything of it goes.
    vnics[p].set_promiscuous(true).unwrap();
    let pv = vnics.pop().unwrap();
    assert_eq!(pv.destroy().errors, 0);
    assert_eq!(sim.flow_root(), mac_root);
    assert!(!sim.vport_filter().promisc_all);
    assert_eq!(deliveries(&sim, &mut vnics, &frame(m0, None, 8)).len(), 1);
    for v in vnics {
        assert_eq!(v.destroy().errors, 0);
    }
    common::close_nic(nic, &sim, before);
}
