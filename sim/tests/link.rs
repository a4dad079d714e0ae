//! The in-process harness joined to links: two simulated adapters, each
//! with the mlx5 driver, cabled by a unix-socket wire instead of
//! `SimPlatform::pair`, in both model modes; pcap capture of both
//! directions; unplugging a link hands the port back to its peer.

mod wires;

use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimConfig, SimPlatform};
use mlx5_sim::link::{LinkSpec, pcap};
use wires::*;

use cxos_drivers::{NetDevice, PciAddress};

fn second(p: Personality, mode: Mode) -> SimPlatform {
    let mut c = SimConfig::default_for(p);
    c.pci_address = PciAddress::new(0, 2, 0, 0);
    c.mac[5] ^= 0x40;
    SimPlatform::with_config(p, mode, c)
}

#[test]
fn two_adapters_on_a_unix_wire_exchange_frames_in_both_modes() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let dir = temp_dir(&format!("link-{mode:?}"));
        let spec: LinkSpec = format!("unix:{}", dir.join("wire").display())
            .parse()
            .unwrap();
        let sa = SimPlatform::new(Personality::ConnectX5, mode);
        let sb = second(Personality::ConnectX6Dx, mode);
        sa.attach_link(spec.open().unwrap()).unwrap();
        sb.attach_link(spec.open().unwrap()).unwrap();
        let cap = dir.join("a.pcap");
        sa.capture(&cap).unwrap();
        eventually("the wire to connect", || {
            sa.link_stats().unwrap().connected && sb.link_stats().unwrap().connected
        });
        let mut a = open(sa.clone());
        let mut b = open(sb.clone());
        let (ma, mb) = (a.mac(), b.mac());
        let ab: Vec<Vec<u8>> = (0..40)
            .map(|i| frame(mb, ma, i, 60 + 37 * i as usize))
            .collect();
        let ba: Vec<Vec<u8>> = (0..25)
            .map(|i| frame(ma, mb, 1000 + i, 1514 - i as usize))
            .collect();
        send(&mut a, &ab);
        send(&mut b, &ba);
        // A unix stream keeps order; every frame arrives intact.
        assert_eq!(collect(&mut b, ab.len()), ab);
        assert_eq!(collect(&mut a, ba.len()), ba);
        // a's writer counts a frame after writing it: b may hold the last
        // one before it is counted.
        let la = settled(
            || sa.link_stats().unwrap(),
            |l| (l.tx_frames, l.rx_frames) == (40, 25),
        );
        assert_eq!((la.tx_frames, la.rx_frames), (40, 25), "{la:?}");
        // Pulling b's cable takes a's link down too, and back up.
        sb.set_link(false);
        eventually("a's link down", || {
            !sa.with_model(|d| d.phys_port.oper_up())
        });
        sb.set_link(true);
        eventually("a's link up", || sa.with_model(|d| d.phys_port.oper_up()));
        assert_eq!(sb.port_stats().rx_delivered, 40);
        // The capture has both directions, in the libpcap format.
        assert_eq!(sa.stop_capture(), Some(65));
        let (linktype, records) = pcap::parse(&std::fs::read(&cap).unwrap()).unwrap();
        assert_eq!(linktype, pcap::LINKTYPE_ETHERNET);
        assert_eq!(records.len(), 65);
        for f in ab.iter().chain(&ba) {
            assert!(
                records.iter().any(|r| &r.data == f),
                "frame missing from the capture"
            );
        }
        close(a);
        close(b);
        assert!(sa.sanitizer_violations().is_empty());
        assert!(sb.sanitizer_violations().is_empty());
        let last = sa.detach_link().unwrap();
        assert_eq!(last.tx_frames, la.tx_frames);
        assert!(sa.link_stats().is_none());
        drop((sa, sb));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn unplugging_the_link_gives_the_port_back_to_its_peer() {
    let (sa, sb) = SimPlatform::pair(
        Personality::ConnectX4Lx,
        Personality::ConnectX5,
        Mode::Synchronous,
    );
    let cap = temp_dir("unplug").join("b.pcap");
    sb.capture(&cap).unwrap();
    // A cable to nowhere: what a sends is counted and dropped there.
    sa.attach_link("none".parse::<LinkSpec>().unwrap().open().unwrap())
        .unwrap();
    let mut a = open(sa.clone());
    let mut b = open(sb.clone());
    let (ma, mb) = (a.mac(), b.mac());
    send(&mut a, &[frame(mb, ma, 1, 100)]);
    eventually("the drop", || {
        sa.link_stats().unwrap().tx_dropped_no_peer == 1
    });
    assert_eq!(sb.port_stats().rx_frames, 0);
    sa.detach_link().unwrap();
    let f = frame(mb, ma, 2, 200);
    send(&mut a, std::slice::from_ref(&f));
    assert_eq!(collect(&mut b, 1), vec![f.clone()]);
    // b's capture saw it arrive (and not the frame lost on the link).
    let (_, records) = pcap::parse(&std::fs::read(&cap).unwrap()).unwrap();
    assert_eq!(
        records
            .iter()
            .filter(|r| r.data[12..14] == ETHERTYPE)
            .count(),
        1
    );
    assert!(records.iter().any(|r| r.data == f));
    close(a);
    close(b);
    std::fs::remove_dir_all(cap.parent().unwrap()).unwrap();
}
