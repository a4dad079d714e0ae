//! One network interface: a smoltcp `Interface` and `SocketSet` over a
//! [`Phy`], with static addresses or a DHCPv4 client, and the IPv6
//! link-local address derived from the MAC. ARP and NDP are smoltcp's;
//! so are echo replies (`auto-icmp-echo-reply`).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use cxos_drivers::net::{FilterError, NetDevice};
use log::{info, warn};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{Socket, dhcpv4, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr,
};

use crate::config::{IfConfig, Ipv4Config};
use crate::phy::{ETH_HEADER, Phy, PhyStats};

/// Frames taken from the device per interface poll before transmitting.
const INGRESS_BUDGET: usize = 64;
/// Egress rounds (one segment per socket each) per interface poll.
const EGRESS_ROUNDS: usize = 256;
/// First ephemeral port (IANA dynamic range).
const EPHEMERAL_FIRST: u16 = 49152;

/// A MAC address, printed `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Why a MAC string was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMac;

impl fmt::Display for BadMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a MAC address (expected aa:bb:cc:dd:ee:ff)")
    }
}

impl core::str::FromStr for Mac {
    type Err = BadMac;

    fn from_str(s: &str) -> Result<Mac, BadMac> {
        let mut m = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut m {
            let p = parts.next().ok_or(BadMac)?;
            if p.len() != 2 {
                return Err(BadMac);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| BadMac)?;
        }
        if parts.next().is_some() {
            return Err(BadMac);
        }
        Ok(Mac(m))
    }
}

/// The IPv6 link-local address of a MAC (modified EUI-64, RFC 4291
/// appendix A: universal/local bit flipped, ff:fe in the middle).
pub fn link_local(mac: [u8; 6]) -> Ipv6Address {
    Ipv6Address::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

/// The Ethernet multicast MAC of an IPv6 multicast address (RFC 2464 §7).
pub fn ipv6_multicast_mac(group: Ipv6Address) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// The solicited-node multicast group of an IPv6 unicast address.
pub fn solicited_node(addr: Ipv6Address) -> Ipv6Address {
    let o = addr.octets();
    Ipv6Address::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// A DHCPv4 lease in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Cidr,
    pub router: Option<Ipv4Address>,
    pub server: Ipv4Address,
    pub dns: Vec<Ipv4Address>,
    /// When it was acquired or last renewed.
    pub acquired: Instant,
    /// Lease time the server gave (None: not seen).
    pub duration: Option<Duration>,
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.address, self.server)?;
        if let Some(r) = self.router {
            write!(f, " router {r}")?;
        }
        if let Some(d) = self.duration {
            write!(f, " for {} s", d.secs())?;
        }
        Ok(())
    }
}

/// Something that happened to an interface (also logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    LeaseAcquired(Lease),
    LeaseRenewed(Lease),
    /// The lease expired or the server refused it; the address is gone.
    LeaseLost(Ipv4Cidr),
    LinkUp,
    LinkDown,
}

/// Why an interface could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetIfError {
    /// The device reports a multicast or all-zero MAC.
    BadMac([u8; 6]),
    /// The device's MTU is below IPv6's minimum (1280) or above 9216.
    BadMtu(usize),
}

impl fmt::Display for NetIfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetIfError::BadMac(m) => write!(f, "device MAC {} is not unicast", Mac(*m)),
            NetIfError::BadMtu(m) => write!(f, "device MTU {m} outside 1280..=9216"),
        }
    }
}

/// The device comes back when the interface cannot be created.
#[derive(Debug)]
pub struct OpenError<D> {
    pub error: NetIfError,
    pub device: D,
}

/// Counters of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfStats {
    pub phy: PhyStats,
    pub device: cxos_drivers::net::NetStats,
}

/// One interface.
pub struct NetIf<D: NetDevice> {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    phy: Phy<D>,
    name: String,
    mac: [u8; 6],
    cfg: IfConfig,
    dhcp: Option<SocketHandle>,
    lease: Option<Lease>,
    events: VecDeque<NetEvent>,
    link_up: bool,
    next_port: u16,
    /// Multicast MACs installed in the device.
    mcast: Vec<[u8; 6]>,
    /// A receiver below the stack (pktsink) takes every frame: the
    /// stack's ingress is skipped while set.
    rx_bypass: bool,
}

impl<D: NetDevice> NetIf<D> {
    /// Bring up interface `name` over `dev` with `cfg`.
    pub fn new(name: &str, dev: D, cfg: &IfConfig, now: Instant) -> Result<Self, OpenError<D>> {
        let mac = dev.mac();
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(OpenError {
                error: NetIfError::BadMac(mac),
                device: dev,
            });
        }
        let mtu = dev.mtu();
        if !(1280..=9216).contains(&mtu) {
            return Err(OpenError {
                error: NetIfError::BadMtu(mtu),
                device: dev,
            });
        }
        let mut phy = Phy::new(dev);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // TCP initial sequence numbers and ephemeral choices come from
        // this: differ per adapter and per boot time.
        config.random_seed = seed(mac, now);
        let iface = Interface::new(config, &mut phy, now);
        let link_up = phy.device().link().up;
        let mut me = NetIf {
            iface,
            sockets: SocketSet::new(Vec::new()),
            phy,
            name: name.into(),
            mac,
            cfg: IfConfig::default(),
            dhcp: None,
            lease: None,
            events: VecDeque::new(),
            link_up,
            mcast: Vec::new(),
            rx_bypass: false,
            next_port: EPHEMERAL_FIRST + (config_port_offset(mac, now) % 8192),
        };
        me.reconfigure(cfg);
        Ok(me)
    }

    /// Replace the addresses (and the DHCP client) by those of `cfg`.
    pub fn reconfigure(&mut self, cfg: &IfConfig) {
        if let Some(h) = self.dhcp.take() {
            self.sockets.remove(h);
        }
        if let Some(l) = self.lease.take() {
            self.event(NetEvent::LeaseLost(l.address));
        }
        let ll = link_local(self.mac);
        self.iface.update_ip_addrs(|a| {
            a.clear();
            // Capacity is 4 (Cargo feature): at most link-local, IPv4, IPv6.
            let _ = a.push(IpCidr::Ipv6(Ipv6Cidr::new(ll, 64)));
            if let Ipv4Config::Static { address, .. } = cfg.ipv4 {
                let _ = a.push(IpCidr::Ipv4(address));
            }
            if let Some(v6) = cfg.ipv6 {
                let _ = a.push(IpCidr::Ipv6(v6));
            }
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        routes.remove_default_ipv6_route();
        if let Ipv4Config::Static {
            gateway: Some(g), ..
        } = cfg.ipv4
        {
            // Capacity is 2 routes: one per family never overflows.
            let _ = routes.add_default_ipv4_route(g);
        }
        if let Some(g) = cfg.gateway6 {
            let _ = routes.add_default_ipv6_route(g);
        }
        if cfg.ipv4 == Ipv4Config::Dhcp {
            let mut s = dhcpv4::Socket::new();
            s.set_max_lease_duration(cfg.max_lease_secs.map(|s| Duration::from_secs(s as u64)));
            self.dhcp = Some(self.sockets.add(s));
        }
        self.cfg = *cfg;
        info!("{}: configured {} ({})", self.name, cfg, self.addresses());
        self.sync_multicast();
        if let Ipv4Config::Static {
            address,
            gateway: Some(g),
        } = cfg.ipv4
        {
            self.arp_probe(address.address(), g);
        }
    }

    /// Make the device accept exactly the multicast MACs the stack needs
    /// (IPv6 neighbour discovery). A device without multicast filters is
    /// assumed to receive them anyway.
    fn sync_multicast(&mut self) {
        let wanted = self.multicast_macs();
        let dev = self.phy.device_mut();
        for m in &self.mcast {
            if !wanted.contains(m)
                && let Err(e) = dev.remove_multicast(*m)
            {
                warn!("{}: cannot drop multicast {}: {e}", self.name, Mac(*m));
            }
        }
        let mut installed = Vec::new();
        for m in wanted {
            match dev.add_multicast(m) {
                Ok(()) => installed.push(m),
                Err(FilterError::Unsupported) => {}
                Err(e) => warn!("{}: cannot receive multicast {}: {e}", self.name, Mac(m)),
            }
        }
        self.mcast = installed;
    }

    /// Ask `target` for its MAC (an ARP request from `source`), so that
    /// answers to a peer that already knows us (the DHCP server, the
    /// gateway) are not dropped while smoltcp resolves it.
    fn arp_probe(&mut self, source: Ipv4Address, target: Ipv4Address) {
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(self.mac),
            source_protocol_addr: source,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let len = ETH_HEADER + repr.buffer_len();
        let mac = self.mac;
        let sent = self.phy.transmit_raw(len, |b| {
            let mut eth = EthernetFrame::new_unchecked(b);
            eth.set_dst_addr(EthernetAddress::BROADCAST);
            eth.set_src_addr(EthernetAddress(mac));
            eth.set_ethertype(EthernetProtocol::Arp);
            repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        });
        if sent.is_ok() {
            self.phy.flush();
        }
    }

    /// Move the interface forward: receive, transmit, timers, DHCP.
    /// Bounded work; returns whether anything happened (call again soon
    /// if so).
    pub fn poll(&mut self, now: Instant) -> bool {
        self.check_link();
        let dev = self.phy.device_mut();
        let reaped = dev.poll();
        self.iface.poll_maintenance(now);
        let taken = if self.rx_bypass {
            0
        } else {
            self.phy
                .ingress(now, &mut self.iface, &mut self.sockets, INGRESS_BUDGET)
        };
        let mut sent = false;
        for _ in 0..EGRESS_ROUNDS {
            match self
                .iface
                .poll_egress(now, &mut self.phy, &mut self.sockets)
            {
                PollResult::SocketStateChanged => sent = true,
                PollResult::None => break,
            }
        }
        self.phy.flush();
        let dhcp = self.poll_dhcp(now);
        reaped > 0 || taken > 0 || sent || dhcp
    }

    /// How long the caller may sleep (or wait for an interrupt) before the
    /// next poll; None: nothing is timed, wait for an interrupt.
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        let mut d = self.iface.poll_delay(now, &self.sockets);
        if let Some(own) = self.phy.device().poll_within() {
            let own = Duration::from_micros(own.as_micros().min(u128::from(u64::MAX)) as u64);
            d = Some(d.map_or(own, |d| d.min(own)));
        }
        if self.phy.has_pending() {
            // Replies wait for ring room: retry soon even if no transmit
            // completion interrupt comes.
            let soon = Duration::from_millis(1);
            return Some(d.map_or(soon, |d| d.min(soon)));
        }
        d
    }

    fn check_link(&mut self) {
        let up = self.phy.device().link().up;
        if up != self.link_up {
            self.link_up = up;
            self.event(if up {
                NetEvent::LinkUp
            } else {
                NetEvent::LinkDown
            });
        }
    }

    fn poll_dhcp(&mut self, now: Instant) -> bool {
        let Some(h) = self.dhcp else {
            return false;
        };
        let ack = self
            .phy
            .take_dhcp_ack()
            .filter(|a| a.client == EthernetAddress(self.mac));
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => None,
            Some(dhcpv4::Event::Deconfigured) => Some(None),
            Some(dhcpv4::Event::Configured(c)) => Some(Some(Lease {
                address: c.address,
                router: c.router,
                server: c.server.address,
                dns: c.dns_servers.iter().copied().collect(),
                acquired: now,
                duration: None,
            })),
        };
        let duration = |secs: Option<u32>| secs.map(|s| Duration::from_secs(s as u64));
        match event {
            Some(Some(mut lease)) => {
                lease.duration = ack.and_then(|a| self.effective(duration(a.lease_secs)));
                self.set_ipv4(Some(lease.address), lease.router);
                if self.lease.is_none() {
                    let me = lease.address.address();
                    self.arp_probe(me, lease.server);
                    if let Some(r) = lease.router.filter(|r| *r != lease.server) {
                        self.arp_probe(me, r);
                    }
                }
                let same = self
                    .lease
                    .as_ref()
                    .is_some_and(|l| l.address == lease.address);
                self.lease = Some(lease.clone());
                self.event(if same {
                    NetEvent::LeaseRenewed(lease)
                } else {
                    NetEvent::LeaseAcquired(lease)
                });
                true
            }
            Some(None) => {
                self.set_ipv4(None, None);
                if let Some(l) = self.lease.take() {
                    self.event(NetEvent::LeaseLost(l.address));
                }
                true
            }
            None => {
                // smoltcp reports no event when a renewal changes nothing:
                // the ACK for our address is the renewal.
                let Some(ack) = ack else { return false };
                if self.lease.as_ref().map(|l| l.address.address()) != Some(ack.your_ip) {
                    return false;
                }
                let d = self.effective(duration(ack.lease_secs));
                let Some(l) = self.lease.as_mut() else {
                    return false;
                };
                l.acquired = now;
                l.duration = d.or(l.duration);
                let l = l.clone();
                self.event(NetEvent::LeaseRenewed(l));
                true
            }
        }
    }

    /// A lease time as the client uses it (capped by `lease=`).
    fn effective(&self, d: Option<Duration>) -> Option<Duration> {
        match (d, self.cfg.max_lease_secs) {
            (Some(d), Some(cap)) => Some(d.min(Duration::from_secs(cap as u64))),
            (d, _) => d,
        }
    }

    fn set_ipv4(&mut self, addr: Option<Ipv4Cidr>, router: Option<Ipv4Address>) {
        self.iface.update_ip_addrs(|a| {
            a.retain(|c| !matches!(c, IpCidr::Ipv4(_)));
            if let Some(addr) = addr {
                let _ = a.push(IpCidr::Ipv4(addr));
            }
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some(r) = router {
            let _ = routes.add_default_ipv4_route(r);
        }
    }

    fn event(&mut self, e: NetEvent) {
        match &e {
            NetEvent::LeaseAcquired(l) => info!("{}: DHCP lease acquired: {l}", self.name),
            NetEvent::LeaseRenewed(l) => info!("{}: DHCP lease renewed: {l}", self.name),
            NetEvent::LeaseLost(a) => warn!("{}: DHCP lease lost: {a}", self.name),
            NetEvent::LinkUp => info!("{}: link up", self.name),
            NetEvent::LinkDown => warn!("{}: link down", self.name),
        }
        // Bounded: nobody reading events must not grow memory.
        if self.events.len() == 64 {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// The oldest event not yet taken.
    pub fn next_event(&mut self) -> Option<NetEvent> {
        self.events.pop_front()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn config(&self) -> &IfConfig {
        &self.cfg
    }

    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// The IPv4 address in use (static or leased).
    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().find_map(|c| match c {
            IpCidr::Ipv4(c) => Some(*c),
            _ => None,
        })
    }

    pub fn ipv6_link_local(&self) -> Ipv6Address {
        link_local(self.mac)
    }

    /// The configured IPv6 address besides the link-local one.
    pub fn ipv6(&self) -> Option<Ipv6Cidr> {
        self.cfg.ipv6
    }

    /// Multicast MACs the adapter must accept for IPv6 neighbour
    /// discovery: all-nodes and the solicited-node group of each address.
    pub fn multicast_macs(&self) -> Vec<[u8; 6]> {
        let mut v = alloc::vec![[0x33, 0x33, 0, 0, 0, 1]];
        for c in self.iface.ip_addrs() {
            if let IpCidr::Ipv6(c) = c {
                let m = ipv6_multicast_mac(solicited_node(c.address()));
                if !v.contains(&m) {
                    v.push(m);
                }
            }
        }
        v
    }

    /// A local port no TCP or UDP socket of this interface uses (from the
    /// dynamic range, rotating).
    pub fn ephemeral_port(&mut self) -> u16 {
        for _ in 0..16384 {
            let p = self.next_port;
            self.next_port = if p == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                p + 1
            };
            if !self.port_in_use(p) {
                return p;
            }
        }
        // Every dynamic port in use: reuse one (connects then fail with
        // smoltcp's own error rather than hanging here).
        self.next_port
    }

    fn port_in_use(&self, port: u16) -> bool {
        self.sockets.iter().any(|(_, s)| match s {
            Socket::Tcp(t) => {
                t.listen_endpoint().port == port
                    || t.local_endpoint().is_some_and(|e| e.port == port)
            }
            Socket::Udp(u) => u.endpoint().port == port,
            _ => false,
        })
    }

    pub fn device(&self) -> &D {
        self.phy.device()
    }

    /// Leave every received frame to a receiver below the stack
    /// ([`crate::pktgen::PktSink`]) while `on`.
    pub fn set_rx_bypass(&mut self, on: bool) {
        self.rx_bypass = on;
    }

    pub fn rx_bypass(&self) -> bool {
        self.rx_bypass
    }

    pub fn device_mut(&mut self) -> &mut D {
        self.phy.device_mut()
    }

    /// Change the device's MTU with `f`; the stack's MTU follows.
    /// smoltcp reads the device capabilities only when its interface is
    /// made, so a changed MTU makes a new one with the same addresses and
    /// routes (sockets, DHCP lease and multicast filters are kept; the
    /// neighbour cache starts empty).
    pub fn change_mtu<R>(&mut self, now: Instant, f: impl FnOnce(&mut D) -> R) -> R {
        let old = self.phy.device().mtu();
        let r = f(self.phy.device_mut());
        if self.phy.device().mtu() == old {
            return r;
        }
        self.phy.refresh_mtu();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(self.mac)));
        config.random_seed = seed(self.mac, now);
        let mut iface = Interface::new(config, &mut self.phy, now);
        let addrs: Vec<IpCidr> = self.iface.ip_addrs().to_vec();
        iface.update_ip_addrs(|a| {
            for c in addrs {
                let _ = a.push(c);
            }
        });
        let mut routes = heapless::Vec::new();
        self.iface.routes_mut().update(|r| routes = r.clone());
        iface.routes_mut().update(|r| *r = routes);
        // smoltcp keeps its neighbour cache inside the Interface: without
        // this the first reply to every peer would be lost to ARP.
        self.phy.replay_arp(now, &mut iface, &mut self.sockets);
        self.iface = iface;
        r
    }

    pub fn into_device(self) -> D {
        self.phy.into_device()
    }

    pub fn phy(&self) -> &Phy<D> {
        &self.phy
    }

    pub fn phy_mut(&mut self) -> &mut Phy<D> {
        &mut self.phy
    }

    pub fn stats(&self) -> IfStats {
        IfStats {
            phy: self.phy.stats(),
            device: self.phy.device().stats(),
        }
    }

    fn addresses(&self) -> String {
        let mut s = String::new();
        for (i, c) in self.iface.ip_addrs().iter().enumerate() {
            let _ = write!(s, "{}{c}", if i > 0 { " " } else { "" });
        }
        s
    }

    /// One line for `ifconfig`-like output: name, MAC, link, MTU,
    /// addresses, gateway, DHCP state, counters.
    pub fn status_line(&self) -> String {
        let mut s = String::new();
        let link = self.phy.device().link();
        let _ = write!(s, "{} {} link ", self.name, Mac(self.mac));
        if link.up {
            let _ = write!(s, "up {}Mb/s", link.speed_mbps);
        } else {
            s.push_str("down");
        }
        let _ = write!(s, " mtu {} {}", self.phy.device().mtu(), self.addresses());
        if let Some(r) = self.iface.routes().get_default_ipv4_route() {
            let _ = write!(s, " gw {}", r.via_router);
        }
        if let Some(r) = self.iface.routes().get_default_ipv6_route() {
            let _ = write!(s, " gw6 {}", r.via_router);
        }
        if self.dhcp.is_some() {
            match &self.lease {
                Some(l) => {
                    let _ = write!(s, " dhcp bound from {}", l.server);
                    if let Some(d) = l.duration {
                        let _ = write!(s, " lease {} s", d.secs());
                    }
                }
                None => s.push_str(" dhcp searching"),
            }
        }
        let st = self.stats();
        let _ = write!(
            s,
            " rx {} pkts {} B tx {} pkts {} B drops malformed {} csum {} unsupported {} no-buffer {}",
            st.phy.rx_frames,
            st.phy.rx_bytes,
            st.phy.tx_frames,
            st.phy.tx_bytes,
            st.phy.rx_malformed,
            st.phy.rx_bad_checksum,
            st.phy.rx_unsupported,
            st.device.rx_no_buffer
        );
        s
    }

    /// A UDP socket bound to `port` (0: an ephemeral one) with buffers of
    /// `packets` datagrams / `bytes` bytes each way. Returns the handle
    /// and the port.
    pub fn udp_socket(
        &mut self,
        port: u16,
        packets: usize,
        bytes: usize,
    ) -> Result<(SocketHandle, u16), udp::BindError> {
        let port = if port == 0 {
            self.ephemeral_port()
        } else {
            port
        };
        let buf = || {
            udp::PacketBuffer::new(
                alloc::vec![udp::PacketMetadata::EMPTY; packets],
                alloc::vec![0u8; bytes],
            )
        };
        let mut s = udp::Socket::new(buf(), buf());
        s.bind(port)?;
        Ok((self.sockets.add(s), port))
    }

    /// A TCP socket with `rx`/`tx` byte buffers.
    pub fn tcp_socket(&mut self, rx: usize, tx: usize) -> SocketHandle {
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(alloc::vec![0u8; rx]),
            tcp::SocketBuffer::new(alloc::vec![0u8; tx]),
        );
        self.sockets.add(s)
    }
}

impl<D: NetDevice + fmt::Debug> fmt::Debug for NetIf<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetIf")
            .field("name", &self.name)
            .field("mac", &Mac(self.mac))
            .field("cfg", &self.cfg)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// A seed from the MAC and the time (splitmix64 finaliser).
fn seed(mac: [u8; 6], now: Instant) -> u64 {
    let mut x = now.total_millis() as u64;
    for b in mac {
        x = x.rotate_left(8) ^ b as u64;
    }
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn config_port_offset(mac: [u8; 6], now: Instant) -> u16 {
    (seed(mac, now) >> 17) as u16
}
