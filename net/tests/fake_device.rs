//! The Phy and NetIf against a scripted NetDevice (no model): what is
//! asked of a device with checksum offloads, what a full transmit ring
//! does, link events, devices the interface refuses.

use std::collections::VecDeque;

use cxos_drivers::net::{
    FilterError, L3Proto, L4Proto, LinkState, NetDevice, NetStats, Offloads, RxMeta, TxError,
    TxMeta,
};
use cxos_net::app::{App, AppStatus};
use cxos_net::ping::Ping;
use cxos_net::smoltcp::time::{Duration, Instant};
use cxos_net::smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Ipv4Address, Ipv4Packet, TcpPacket,
};
use cxos_net::{NetEvent, NetIf, NetIfError};

#[derive(Debug, Default)]
struct FakeDev {
    mac: [u8; 6],
    mtu: usize,
    link: LinkState,
    offloads: Offloads,
    rx: VecDeque<(Vec<u8>, RxMeta)>,
    /// Frames transmitted and flushed, with what was asked.
    wire: Vec<(Vec<u8>, TxMeta)>,
    queued: Vec<(Vec<u8>, TxMeta)>,
    ring: usize,
    in_flight: usize,
    multicast: Vec<[u8; 6]>,
    /// Refuse every `transmit_then` with this error after the frame was
    /// written (as a driver does when the written frame's WQE does not fit).
    refuse_after_write: Option<TxError>,
}

impl FakeDev {
    fn new() -> FakeDev {
        FakeDev {
            mac: [0x02, 0, 0, 0, 0, 0x0b],
            mtu: 1500,
            link: LinkState {
                up: true,
                speed_mbps: 25_000,
            },
            ring: 64,
            ..FakeDev::default()
        }
    }
}

impl NetDevice for FakeDev {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        self.mtu
    }
    fn link(&self) -> LinkState {
        self.link
    }
    fn offloads(&self) -> Offloads {
        self.offloads
    }
    fn poll(&mut self) -> usize {
        let n = self.in_flight;
        self.in_flight = 0;
        n
    }
    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let (frame, meta) = self.rx.pop_front()?;
        Some(f(&frame, meta))
    }
    fn tx_free(&self) -> usize {
        self.ring - self.in_flight - self.queued.len()
    }
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        self.transmit_with(len, TxMeta::default(), f)
    }
    fn transmit_with<R>(
        &mut self,
        len: usize,
        meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        if !self.link.up {
            return Err(TxError::Down);
        }
        if self.tx_free() == 0 {
            return Err(TxError::Busy);
        }
        if meta.csum && !self.offloads.tx_l4_csum {
            return Err(TxError::BadLength(len));
        }
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.queued.push((b, meta));
        Ok(r)
    }
    fn transmit_then<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        if !self.link.up {
            return Err(TxError::Down);
        }
        if self.tx_free() == 0 {
            return Err(TxError::Busy);
        }
        let mut b = vec![0u8; len];
        let (r, meta) = f(&mut b);
        if let Some(e) = self.refuse_after_write {
            return Err(e);
        }
        if meta.csum && !self.offloads.tx_l4_csum {
            return Err(TxError::Unsupported);
        }
        self.queued.push((b, meta));
        Ok(r)
    }
    fn flush(&mut self) {
        self.in_flight += self.queued.len();
        self.wire.append(&mut self.queued);
    }
    fn stats(&self) -> NetStats {
        NetStats::default()
    }
    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        if !self.multicast.contains(&mac) {
            self.multicast.push(mac);
        }
        Ok(())
    }
    fn remove_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        self.multicast.retain(|m| *m != mac);
        Ok(())
    }
}

const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

fn arp_reply(to: [u8; 6], to_ip: Ipv4Address) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(PEER_MAC),
        source_protocol_addr: Ipv4Address::new(10, 0, 0, 1),
        target_hardware_addr: EthernetAddress(to),
        target_protocol_addr: to_ip,
    };
    let mut f = vec![0u8; 14 + repr.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(EthernetAddress(to));
    eth.set_src_addr(EthernetAddress(PEER_MAC));
    eth.set_ethertype(EthernetProtocol::Arp);
    repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    f
}

fn net(dev: FakeDev) -> NetIf<FakeDev> {
    NetIf::new(
        "fake0",
        dev,
        &"10.0.0.2/24".parse().unwrap(),
        Instant::from_millis(0),
    )
    .unwrap_or_else(|e| panic!("{}", e.error))
}

#[test]
fn devices_the_interface_cannot_use_are_given_back() {
    let mut d = FakeDev::new();
    d.mac = [0x01, 0, 0x5e, 0, 0, 1];
    let e = NetIf::new("x", d, &"dhcp".parse().unwrap(), Instant::from_millis(0)).unwrap_err();
    assert_eq!(e.error, NetIfError::BadMac([0x01, 0, 0x5e, 0, 0, 1]));
    assert_eq!(e.device.mtu, 1500, "the device comes back");
    let mut d = FakeDev::new();
    d.mtu = 576;
    let e = NetIf::new("x", d, &"dhcp".parse().unwrap(), Instant::from_millis(0)).unwrap_err();
    assert_eq!(e.error, NetIfError::BadMtu(576));
    assert_eq!(format!("{}", e.error), "device MTU 576 outside 1280..=9216");
}

#[test]
fn checksum_offload_is_asked_per_frame_and_left_to_the_device() {
    let mut d = FakeDev::new();
    d.offloads = Offloads {
        tx_ipv4_csum: true,
        tx_l4_csum: true,
        rx_csum: true,
        ..Offloads::default()
    };
    let mut n = net(d);
    let h = n.tcp_socket(4096, 4096);
    let cx = n.iface.context();
    n.sockets
        .get_mut::<cxos_net::smoltcp::socket::tcp::Socket>(h)
        .connect(cx, (Ipv4Address::new(10, 0, 0, 1), 80), 40000)
        .unwrap();
    let now = Instant::from_millis(10);
    n.poll(now);
    // ARP first: no checksum in it, none asked.
    let wire = std::mem::take(&mut n.device_mut().wire);
    let arp = wire
        .iter()
        .find(|(f, _)| EthernetFrame::new_unchecked(&f[..]).ethertype() == EthernetProtocol::Arp)
        .expect("an ARP request went out");
    assert!(!arp.1.csum, "ARP asks no checksum");
    assert_eq!(arp.1.geometry.map(|g| g.headers()), Some(14));
    let mac = n.mac();
    n.device_mut().rx.push_back((
        arp_reply(mac, Ipv4Address::new(10, 0, 0, 2)),
        RxMeta::default(),
    ));
    n.poll(now);
    let wire = std::mem::take(&mut n.device_mut().wire);
    let syn = wire
        .iter()
        .find(|(f, _)| EthernetFrame::new_unchecked(&f[..]).ethertype() == EthernetProtocol::Ipv4)
        .expect("a SYN went out");
    assert!(syn.1.csum, "checksum offload asked");
    // With the geometry smoltcp wrote: Ethernet, 20-byte IPv4, TCP with
    // its options (data offset).
    let g = syn.1.geometry.expect("geometry given");
    assert_eq!(
        (g.l2, g.l3, g.l3_len, g.l4),
        (14, L3Proto::Ipv4, 20, L4Proto::Tcp)
    );
    let eth = EthernetFrame::new_unchecked(&syn.0[..]);
    let ip = Ipv4Packet::new_unchecked(eth.payload());
    assert_eq!(ip.checksum(), 0, "IPv4 header checksum left to the device");
    let tcp = TcpPacket::new_unchecked(ip.payload());
    assert!(tcp.syn());
    assert_eq!(tcp.checksum(), 0, "TCP checksum left to the device");
    assert_eq!(g.l4_len as usize, tcp.header_len() as usize);
}

#[test]
fn a_full_ring_is_counted_and_stashed_replies_go_out_later() {
    let mut n = net(FakeDev::new());
    let mac = n.mac();
    let now = Instant::from_millis(10);
    // Fill the ring: nothing can go out.
    n.device_mut().ring = 0;
    // An ARP request for us arrives: the reply is made while the frame is
    // lent, staged, and cannot be sent yet.
    let req = arp_request();
    n.device_mut().rx.push_back((req, RxMeta::default()));
    n.poll(now);
    assert!(n.device().wire.is_empty());
    assert!(n.stats().phy.tx_busy > 0);
    assert_eq!(
        n.poll_delay(now),
        Some(Duration::from_millis(1)),
        "staged reply pending: retry soon"
    );
    // Room again: the staged reply goes out on the next poll.
    n.device_mut().ring = 8;
    n.poll(now);
    let wire = &n.device().wire;
    assert_eq!(wire.len(), 1, "{wire:?}");
    let eth = EthernetFrame::new_unchecked(&wire[0].0[..]);
    assert_eq!(eth.dst_addr(), EthernetAddress(PEER_MAC));
    assert_eq!(eth.src_addr(), EthernetAddress(mac));
    assert!(!wire[0].1.csum, "no offload asked of a device without it");
}

#[test]
fn a_frame_refused_after_it_was_written_is_dropped_and_counted() {
    let mut n = net(FakeDev::new());
    let now = Instant::from_millis(10);
    n.device_mut().refuse_after_write = Some(TxError::Busy);
    let mut ping = Ping::new(&mut n, "10.0.0.1 -c 3 -W 1".parse().unwrap(), now).unwrap();
    let mut out = String::new();
    let mut t = now;
    for _ in 0..5 {
        n.poll(t);
        let _ = ping.poll(&mut n, t, &mut out);
        t += Duration::from_millis(10);
    }
    // What smoltcp wrote was refused: counted, nothing sent, no panic
    // (the token's closure ran once, inside the device).
    assert!(n.stats().phy.tx_busy > 0, "{:?}", n.stats().phy);
    assert!(n.device_mut().wire.is_empty() && n.device_mut().queued.is_empty());
    n.device_mut().refuse_after_write = None;
    for _ in 0..300 {
        n.poll(t);
        let _ = ping.poll(&mut n, t, &mut out);
        n.device_mut().flush();
        if !n.device_mut().wire.is_empty() {
            return;
        }
        t += Duration::from_millis(10);
    }
    panic!("nothing sent once the device takes frames again");
}

#[test]
fn link_changes_are_events_and_a_down_link_fails_transmits() {
    let mut n = net(FakeDev::new());
    let now = Instant::from_millis(10);
    n.device_mut().link.up = false;
    n.poll(now);
    assert_eq!(n.next_event(), Some(NetEvent::LinkDown));
    assert!(
        n.status_line()
            .contains("fake0 02:00:00:00:00:0b link down")
    );
    let mut ping = Ping::new(&mut n, "10.0.0.1 -c 1 -W 0.1".parse().unwrap(), now).unwrap();
    let mut out = String::new();
    let mut t = now;
    let v = loop {
        n.poll(t);
        if let AppStatus::Done(v) = ping.poll(&mut n, t, &mut out) {
            break v;
        }
        t += Duration::from_millis(10);
    };
    assert!(!v.ok);
    assert!(n.stats().phy.tx_errors > 0, "{:?}", n.stats().phy);
    n.device_mut().link.up = true;
    n.poll(t);
    assert_eq!(n.next_event(), Some(NetEvent::LinkUp));
    assert!(n.status_line().contains("link up 25000Mb/s"));
    let _ = App::<FakeDev>::name(&ping);
}

#[test]
fn the_device_is_told_which_multicast_groups_ipv6_needs() {
    let cfg = "10.0.0.2/24,ip6=fd00::2/64".parse().unwrap();
    let mut n = NetIf::new("fake0", FakeDev::new(), &cfg, Instant::from_millis(0))
        .unwrap_or_else(|e| panic!("{}", e.error));
    let mut got = n.device().multicast.clone();
    got.sort();
    // All-nodes, solicited-node of fe80::ff:fe00:b and of fd00::2.
    assert_eq!(
        got,
        vec![
            [0x33, 0x33, 0, 0, 0, 1],
            [0x33, 0x33, 0xff, 0, 0, 0x02],
            [0x33, 0x33, 0xff, 0, 0, 0x0b],
        ]
    );
    n.reconfigure(&"10.0.0.2/24".parse().unwrap());
    let mut got = n.device().multicast.clone();
    got.sort();
    assert_eq!(
        got,
        vec![[0x33, 0x33, 0, 0, 0, 1], [0x33, 0x33, 0xff, 0, 0, 0x0b]]
    );
}

#[test]
fn the_stack_mtu_follows_a_runtime_change_of_the_device() {
    let mut n = net(FakeDev::new());
    assert_eq!(n.phy().capabilities().max_transmission_unit, 1514);
    let addrs = n.iface.ip_addrs().to_vec();
    n.change_mtu(Instant::from_millis(5), |d| d.mtu = 9000);
    assert_eq!(n.iface.ip_addrs(), &addrs[..], "addresses kept");
    assert_eq!(n.phy().capabilities().max_transmission_unit, 9014);
    assert_eq!(n.phy().capabilities().ip_mtu(), 9000);
}

/// An ARP request from the peer (10.0.0.1) for 10.0.0.2.
fn arp_request() -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(PEER_MAC),
        source_protocol_addr: Ipv4Address::new(10, 0, 0, 1),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Address::new(10, 0, 0, 2),
    };
    let mut f = vec![0u8; 14 + repr.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(EthernetAddress::BROADCAST);
    eth.set_src_addr(EthernetAddress(PEER_MAC));
    eth.set_ethertype(EthernetProtocol::Arp);
    repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    f
}

/// An ICMP echo request from the peer to 10.0.0.2 (`to`), checksums
/// right.
fn echo_request(to: [u8; 6], seq_no: u16) -> Vec<u8> {
    use cxos_net::smoltcp::phy::ChecksumCapabilities;
    use cxos_net::smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Repr};
    let data = [0x5a; 32];
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 7,
        seq_no,
        data: &data,
    };
    let ip = Ipv4Repr {
        src_addr: Ipv4Address::new(10, 0, 0, 1),
        dst_addr: Ipv4Address::new(10, 0, 0, 2),
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + ip.buffer_len() + icmp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(EthernetAddress(to));
    eth.set_src_addr(EthernetAddress(PEER_MAC));
    eth.set_ethertype(EthernetProtocol::Ipv4);
    let caps = ChecksumCapabilities::default();
    let mut p = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut p, &caps);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(p.payload_mut()), &caps);
    f
}

#[test]
fn a_runtime_mtu_change_keeps_the_arp_neighbours() {
    let mut n = net(FakeDev::new());
    let mac = n.mac();
    let mut t = Instant::from_millis(10);
    // The peer resolves us: smoltcp answers and learns the peer's MAC.
    n.device_mut()
        .rx
        .push_back((arp_request(), RxMeta::default()));
    n.poll(t);
    assert_eq!(n.device_mut().wire.len(), 1, "the ARP reply");
    n.device_mut().wire.clear();
    for (i, mtu) in [9000, 1500].into_iter().enumerate() {
        t += Duration::from_millis(100);
        n.change_mtu(t, |d| d.mtu = mtu);
        assert_eq!(n.phy().capabilities().ip_mtu(), mtu);
        // The peer pings: the first reply goes out at once, no ARP
        // request before it (smoltcp would drop the reply for one).
        n.device_mut()
            .rx
            .push_back((echo_request(mac, i as u16), RxMeta::default()));
        n.poll(t);
        let wire = std::mem::take(&mut n.device_mut().wire);
        assert_eq!(wire.len(), 1, "MTU {mtu}: {wire:?}");
        let eth = EthernetFrame::new_unchecked(&wire[0].0[..]);
        assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4, "MTU {mtu}");
        assert_eq!(eth.dst_addr(), EthernetAddress(PEER_MAC));
    }
    // A binding older than smoltcp's entry lifetime (60 s) is not
    // replayed: the stack resolves the peer again, as it would have.
    t += Duration::from_secs(61);
    n.change_mtu(t, |d| d.mtu = 9000);
    n.device_mut()
        .rx
        .push_back((echo_request(mac, 9), RxMeta::default()));
    n.poll(t);
    let wire = std::mem::take(&mut n.device_mut().wire);
    assert!(
        wire.iter()
            .all(|(f, _)| EthernetFrame::new_unchecked(&f[..]).ethertype() == EthernetProtocol::Arp),
        "{wire:?}"
    );
}
