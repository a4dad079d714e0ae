//! The port's receive steering against the model: flow counters count
//! what each rule steered, (MAC, VLAN) rules added and removed at run
//! time, frames for a MAC / VLAN nobody claims dropped in the adapter,
//! multicast addresses, promiscuous and all-multicast modes on and off.

mod common;

use common::{Port, close_port as close};
use cxos_drivers::NetDevice;
use mlx5::Adapter;
use mlx5::Mac;
use mlx5::flow::{Destination, FlowError};
use mlx5::steering::{MacTarget, VlanMatch};
use mlx5::{EthConfig, QueueSet, Resources};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

fn open(sim: &SimPlatform) -> Port {
    let a = match Adapter::attach(sim.clone(), common::config()) {
        Ok(a) => a,
        Err(f) => panic!("attach failed: {}", f.error),
    };
    let r = Resources::of(&a).expect("resources");
    match QueueSet::open(a, r, EthConfig::default()) {
        Ok(p) => p,
        Err(f) => panic!("open failed: {}", f.error),
    }
}

/// A frame to `dst` (tagged with `vlan` when given) of `len` bytes.
fn frame(dst: [u8; 6], vlan: Option<u16>, len: usize, seq: u8) -> Vec<u8> {
    let mut f = vec![seq; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    match vlan {
        Some(v) => {
            f[12..14].copy_from_slice(&[0x81, 0x00]);
            f[14..16].copy_from_slice(&v.to_be_bytes());
            f[16..18].copy_from_slice(&[0x88, 0xb5]);
        }
        None => f[12..14].copy_from_slice(&[0x88, 0xb5]),
    }
    f
}

/// Put `f` on the port's wire; the number of frames the port received
/// (all drained). Waits until the model accounted for the frame
/// (delivered or dropped), so it works in both model modes.
fn deliver(sim: &SimPlatform, port: &mut Port, f: &[u8]) -> usize {
    sim.inject_rx(f);
    assert!(common::eventually(|| {
        let s = sim.port_stats();
        s.rx_delivered + s.rx_dropped_no_steering + s.rx_dropped_vport_filter == s.rx_frames
    }));
    let mut n = 0;
    port.poll();
    while port.receive(|b, _| assert_eq!(&b[..f.len()], f)).is_some() {
        n += 1;
    }
    port.flush();
    n
}

fn dropped(sim: &SimPlatform) -> u64 {
    let s = sim.port_stats();
    s.rx_dropped_no_steering + s.rx_dropped_vport_filter
}

#[test]
fn flow_counters_count_what_each_rule_steered() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let before = sim.dma_in_use();
    let mut port = open(&sim);
    let me = port.mac();
    let mut bytes = 0u64;
    for (i, len) in [60usize, 100, 1514, 777].into_iter().enumerate() {
        assert_eq!(deliver(&sim, &mut port, &frame(me, None, len, i as u8)), 1);
        bytes += len as u64;
    }
    assert_eq!(deliver(&sim, &mut port, &frame([0xff; 6], None, 64, 9)), 1);
    let t = port.flow_traffic(Mac(me), None).unwrap();
    assert_eq!((t.packets, t.bytes), (4, bytes));
    let t = port.flow_traffic(Mac([0xff; 6]), None).unwrap();
    assert_eq!((t.packets, t.bytes), (1, 64));
    // The model's own view of the counters and tables agrees.
    let st = port.steering().unwrap();
    let id = st.counter(Mac(me), None).unwrap();
    assert_eq!(sim.flow_counter(id.0), Some((4, bytes)));
    assert_eq!(sim.flow_root(), Some(st.table.0));
    let entries = sim.flow_entries();
    let mine = entries
        .iter()
        .find(|e| e.counters.contains(&id.0))
        .expect("the port MAC's entry");
    assert_eq!(
        (mine.table, mine.table_level),
        (st.table.0, 1),
        "the MAC table"
    );
    assert_eq!(mine.action, 0x4 | 0x8, "forward and count");
    assert_eq!(sim.vport_filter().uc, vec![me]);
    assert!(matches!(
        port.flow_traffic(Mac([2, 1, 1, 1, 1, 1]), None),
        Err(FlowError::NoEntry(_))
    ));
    close(port, &sim, before);
}

#[test]
fn mac_vlan_rules_at_run_time_and_unclaimed_frames_dropped_in_the_adapter() {
    for p in [Personality::ConnectX4Lx, Personality::ConnectX6Dx] {
        let sim = SimPlatform::new(p, Mode::Synchronous);
        let before = sim.dma_in_use();
        let mut port = open(&sim);
        let tir = port.tir().unwrap();
        let me = port.mac();
        let vnic = [0x02, 0x56, 0, 0, 0, 0x10];
        // Nobody claims the VNIC's MAC yet.
        let d0 = dropped(&sim);
        assert_eq!(deliver(&sim, &mut port, &frame(vnic, Some(100), 80, 1)), 0);
        assert_eq!(deliver(&sim, &mut port, &frame(vnic, None, 80, 1)), 0);
        assert_eq!(dropped(&sim), d0 + 2);
        // (vnic, VLAN 100): only that VLAN arrives.
        {
            let (st, ctl) = port.steering_mut();
            st.unwrap()
                .add_rule(ctl, Mac(vnic), Some(100), tir)
                .unwrap();
        }
        assert_eq!(deliver(&sim, &mut port, &frame(vnic, Some(100), 80, 2)), 1);
        assert_eq!(deliver(&sim, &mut port, &frame(vnic, Some(101), 80, 3)), 0);
        assert_eq!(deliver(&sim, &mut port, &frame(vnic, None, 80, 4)), 0);
        assert_eq!(dropped(&sim), d0 + 4);
        // The port's own MAC takes VLAN 7 to its own rule; untagged and
        // other VLANs still reach the port's default rule.
        {
            let (st, ctl) = port.steering_mut();
            st.unwrap().add_rule(ctl, Mac(me), Some(7), tir).unwrap();
        }
        for vlan in [Some(7), None, Some(8)] {
            assert_eq!(
                deliver(&sim, &mut port, &frame(me, vlan, 90, 5)),
                1,
                "{vlan:?}"
            );
        }
        let t7 = port.flow_traffic(Mac(me), Some(7)).unwrap();
        let tdef = port.flow_traffic(Mac(me), None).unwrap();
        assert_eq!((t7.packets, tdef.packets), (1, 2));
        let tv = port.flow_traffic(Mac(vnic), Some(100)).unwrap();
        assert_eq!((tv.packets, tv.bytes), (1, 80));
        let report = port.rings();
        assert!(
            report
                .steering
                .iter()
                .flat_map(|s| &s.macs)
                .any(|m| matches!(
                    &m.target,
                    MacTarget::Vlans { vlans, .. } if vlans.iter().any(|(v, r)|
                        *v == VlanMatch::Id(100) && matches!(r.dests[..], [Destination::Tir(_)]))
                )),
            "{report:?}"
        );
        // In the model: the VNIC MAC's VLAN table sits at level 2 (below
        // the MAC table at 1) and its entry matches VLAN 100; the MAC is
        // on the vport's list.
        let levels: Vec<u8> = sim.flow_tables().iter().map(|t| t.level).collect();
        assert_eq!(levels.iter().filter(|&&l| l == 2).count(), 2, "{levels:?}");
        assert!(
            sim.flow_entries()
                .iter()
                .any(|e| e.table_level == 2 && e.value.cvlan_tag && e.value.first_vid == 100)
        );
        assert!(sim.vport_filter().uc.contains(&vnic));
        // Removing the VNIC's rule: its frames are dropped again.
        {
            let (st, ctl) = port.steering_mut();
            let st = st.unwrap();
            st.remove_rule(ctl, Mac(vnic), Some(100)).unwrap();
            assert!(st.find(Mac(vnic)).is_none());
            st.remove_rule(ctl, Mac(me), Some(7)).unwrap();
        }
        assert_eq!(deliver(&sim, &mut port, &frame(vnic, Some(100), 80, 6)), 0);
        assert_eq!(deliver(&sim, &mut port, &frame(me, Some(7), 80, 6)), 1);
        close(port, &sim, before);
    }
}

#[test]
fn multicast_addresses_promiscuous_and_all_multicast_on_and_off() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let before = sim.dma_in_use();
        let mut port = open(&sim);
        let mdns = [0x01, 0x00, 0x5e, 0, 0, 0xfb];
        let all_nodes = [0x33, 0x33, 0, 0, 0, 1];
        let stranger = [0x02, 0x77, 0x77, 0x77, 0x77, 0x77];
        let got = |port: &mut Port, dst| deliver(&sim, port, &frame(dst, None, 64, 1));
        for dst in [mdns, all_nodes, stranger] {
            assert_eq!(got(&mut port, dst), 0, "{mode:?} {dst:x?} before");
        }
        // One multicast address, through the NetDevice trait.
        NetDevice::add_multicast(&mut port, all_nodes).unwrap();
        NetDevice::add_multicast(&mut port, all_nodes).unwrap();
        assert_eq!(got(&mut port, all_nodes), 1, "{mode:?}");
        assert_eq!(got(&mut port, mdns), 0, "{mode:?}");
        NetDevice::remove_multicast(&mut port, all_nodes).unwrap();
        assert_eq!(got(&mut port, all_nodes), 0, "{mode:?}");
        // All-multicast: every multicast address, no unicast stranger.
        port.set_allmulti(true).unwrap();
        assert_eq!(got(&mut port, mdns), 1);
        assert_eq!(got(&mut port, all_nodes), 1);
        assert_eq!(got(&mut port, stranger), 0);
        port.set_allmulti(false).unwrap();
        assert_eq!(got(&mut port, mdns), 0);
        // Promiscuous: everything.
        NetDevice::set_promiscuous(&mut port, true).unwrap();
        assert_eq!(got(&mut port, stranger), 1);
        assert_eq!(got(&mut port, mdns), 1);
        let st = port.steering().unwrap();
        assert!(st.promisc() && !st.allmulti());
        let v = sim.vport_filter();
        assert!(v.promisc_all && v.promisc_uc && v.promisc_mc);
        port.set_promisc(false).unwrap();
        assert_eq!(got(&mut port, stranger), 0);
        let v = sim.vport_filter();
        assert!(!v.promisc_all && !v.promisc_uc && !v.promisc_mc && v.mc.is_empty());
        // The port's own traffic never stopped.
        let me = port.mac();
        assert_eq!(got(&mut port, me), 1);
        close(port, &sim, before);
    }
}
