//! smoltcp's `phy::Device` over a [`NetDevice`].
//!
//! Transmit tokens write straight into a driver buffer. Receive is
//! zero-copy through [`Phy::ingress`]: the driver lends each frame to a
//! closure, and inside it smoltcp processes that one frame
//! (`Interface::poll_ingress_single` over a one-frame device). Replies
//! smoltcp generates while the frame is lent (ARP replies, echo replies,
//! RSTs) cannot reach the device, which is busy lending; they are staged
//! and sent right after. The plain `phy::Device::receive` (for a caller
//! using `Interface::poll`) copies each frame once.
//!
//! Every received frame is checked here before smoltcp sees it, so that
//! what smoltcp would drop silently is counted: truncated or inconsistent
//! headers, wrong checksums (verified here, once, unless the adapter
//! vouched for the frame with [`RxMeta::csum_ok`]; smoltcp itself is told
//! not to verify), unsupported ethertypes. Frames of the experimental
//! ethertype [`L2_TEST_ETHERTYPE`] go to the raw L2 test queue instead.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use cxos_drivers::net::{L3Proto, L4Proto, NetDevice, RxMeta, TxError, TxGeometry, TxMeta};
use smoltcp::iface::{Interface, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv6Packet, IpAddress, IpProtocol,
    Ipv4Address, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// IEEE 802 "local experimental" ethertype 1; frames of it are the raw L2
/// test's (l2send / l2recv), never smoltcp's.
pub const L2_TEST_ETHERTYPE: u16 = 0x88B5;

/// Ethernet header length (no VLAN tag: smoltcp does not do VLANs).
pub const ETH_HEADER: usize = 14;

/// Transmits queued before the device is told (one doorbell per batch).
const TX_BATCH: usize = 32;

/// Replies staged during ingress that could not be sent yet; beyond this
/// the oldest is dropped (the peer retransmits what matters).
const STASH_MAX: usize = 64;

/// DHCP client port: server replies to it are watched (lease renewals are
/// not events of smoltcp's DHCP socket).
const DHCP_CLIENT_PORT: u16 = 68;

/// What the Phy saw, beyond the driver's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhyStats {
    /// Frames handed to smoltcp, and their bytes.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames written by smoltcp or an app, and their bytes.
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames that could not be parsed: truncated headers, lengths that
    /// disagree, wrong IP version, unknown ARP operation.
    pub rx_malformed: u64,
    /// Wrong IPv4 header or TCP/UDP/ICMP checksum.
    pub rx_bad_checksum: u64,
    /// Ethertypes or packets smoltcp does not handle here (VLAN tags, IP
    /// fragments, IPv6 fragment headers, ...).
    pub rx_unsupported: u64,
    /// [`L2_TEST_ETHERTYPE`] frames queued for the L2 test.
    pub rx_l2_test: u64,
    /// [`L2_TEST_ETHERTYPE`] frames dropped: nobody listening, or the
    /// queue was full.
    pub rx_l2_dropped: u64,
    /// Transmits refused because the ring was full.
    pub tx_busy: u64,
    /// Transmits the device refused for another reason (down, bad length),
    /// and staged replies dropped.
    pub tx_errors: u64,
}

/// Where a received frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameClass {
    /// To smoltcp. `dhcp_client`: a UDP datagram to the DHCP client port.
    Stack {
        dhcp_client: bool,
    },
    L2Test,
    Malformed,
    BadChecksum,
    Unsupported,
}

/// Which checksums of a frame the adapter verified good (so they are not
/// verified again). ICMP checksums are always verified here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// The IPv4 header checksum.
    pub l3: bool,
    /// The TCP or UDP checksum.
    pub l4: bool,
}

impl Trust {
    /// What `meta` vouches for, if the device advertises receive checksum
    /// offload at all.
    pub fn of(rx_offload: bool, meta: &RxMeta) -> Trust {
        Trust {
            l3: rx_offload && (meta.l3_csum_ok || meta.csum_ok),
            l4: rx_offload && (meta.l4_csum_ok || meta.csum_ok),
        }
    }
}

/// Classify a received frame, verifying the checksums `trust` does not
/// cover.
pub fn classify(frame: &[u8], trust: Trust) -> FrameClass {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return FrameClass::Malformed;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => match ArpPacket::new_checked(eth.payload()) {
            Ok(p) => match ArpRepr::parse(&p) {
                Ok(ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request | ArpOperation::Reply,
                    ..
                }) => FrameClass::Stack { dhcp_client: false },
                _ => FrameClass::Malformed,
            },
            Err(_) => FrameClass::Malformed,
        },
        EthernetProtocol::Ipv4 => classify_ipv4(eth.payload(), trust),
        EthernetProtocol::Ipv6 => classify_ipv6(eth.payload(), trust),
        EthernetProtocol::Unknown(L2_TEST_ETHERTYPE) => FrameClass::L2Test,
        _ => FrameClass::Unsupported,
    }
}

fn classify_ipv4(bytes: &[u8], trust: Trust) -> FrameClass {
    let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
        return FrameClass::Malformed;
    };
    if ip.version() != 4 {
        return FrameClass::Malformed;
    }
    if !trust.l3 && !ip.verify_checksum() {
        return FrameClass::BadChecksum;
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        // Reassembly is not built in: smoltcp would drop it.
        return FrameClass::Unsupported;
    }
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let payload = ip.payload();
    match ip.next_header() {
        IpProtocol::Icmp => match Icmpv4Packet::new_checked(payload) {
            Ok(p) if p.verify_checksum() => FrameClass::Stack { dhcp_client: false },
            Ok(_) => FrameClass::BadChecksum,
            Err(_) => FrameClass::Malformed,
        },
        p => classify_l4(p, payload, &src, &dst, trust.l4),
    }
}

fn classify_ipv6(bytes: &[u8], trust: Trust) -> FrameClass {
    let Ok(ip) = Ipv6Packet::new_checked(bytes) else {
        return FrameClass::Malformed;
    };
    if ip.version() != 6 {
        return FrameClass::Malformed;
    }
    let (src6, dst6) = (ip.src_addr(), ip.dst_addr());
    let (src, dst) = (IpAddress::Ipv6(src6), IpAddress::Ipv6(dst6));
    let mut next = ip.next_header();
    let mut payload = ip.payload();
    // Skip the extension headers smoltcp understands (hop-by-hop options
    // carry MLD; destination options and routing have the same shape).
    for _ in 0..4 {
        match next {
            IpProtocol::HopByHop | IpProtocol::Ipv6Opts | IpProtocol::Ipv6Route => {
                if payload.len() < 8 {
                    return FrameClass::Malformed;
                }
                let len = (payload[1] as usize + 1) * 8;
                if payload.len() < len {
                    return FrameClass::Malformed;
                }
                next = IpProtocol::from(payload[0]);
                payload = &payload[len..];
            }
            IpProtocol::Ipv6Frag => return FrameClass::Unsupported,
            _ => break,
        }
    }
    match next {
        IpProtocol::Icmpv6 => match Icmpv6Packet::new_checked(payload) {
            Ok(p) if p.verify_checksum(&src6, &dst6) => FrameClass::Stack { dhcp_client: false },
            Ok(_) => FrameClass::BadChecksum,
            Err(_) => FrameClass::Malformed,
        },
        p => classify_l4(p, payload, &src, &dst, trust.l4),
    }
}

fn classify_l4(
    proto: IpProtocol,
    payload: &[u8],
    src: &IpAddress,
    dst: &IpAddress,
    verified: bool,
) -> FrameClass {
    match proto {
        IpProtocol::Tcp => match TcpPacket::new_checked(payload) {
            Ok(p) if verified || p.verify_checksum(src, dst) => {
                FrameClass::Stack { dhcp_client: false }
            }
            Ok(_) => FrameClass::BadChecksum,
            Err(_) => FrameClass::Malformed,
        },
        IpProtocol::Udp => match UdpPacket::new_checked(payload) {
            Ok(p) if verified || p.verify_checksum(src, dst) => FrameClass::Stack {
                dhcp_client: p.dst_port() == DHCP_CLIENT_PORT,
            },
            Ok(_) => FrameClass::BadChecksum,
            Err(_) => FrameClass::Malformed,
        },
        // Other protocols: smoltcp answers with ICMP "protocol unreachable"
        // or hands them to a raw socket.
        _ => FrameClass::Stack { dhcp_client: false },
    }
}

/// A DHCP ACK seen on its way to the DHCP client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpAckSeen {
    /// The client it is for (chaddr).
    pub client: EthernetAddress,
    pub your_ip: Ipv4Address,
    pub server: Option<Ipv4Address>,
    /// Lease time in seconds, as the server gave it.
    pub lease_secs: Option<u32>,
}

fn parse_dhcp_ack(frame: &[u8]) -> Option<DhcpAckSeen> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    let repr = DhcpRepr::parse(&dhcp).ok()?;
    (repr.message_type == DhcpMessageType::Ack).then_some(DhcpAckSeen {
        client: repr.client_hardware_address,
        your_ip: repr.your_ip,
        server: repr.server_identifier,
        lease_secs: repr.lease_duration,
    })
}

/// The L2 test's receive queue (copies; bounded).
#[derive(Debug)]
struct L2Queue {
    frames: VecDeque<Vec<u8>>,
    capacity: usize,
}

/// The transmit path: the device and what transmit tokens touch.
#[derive(Debug)]
struct TxPath<D: NetDevice> {
    dev: D,
    stats: PhyStats,
    /// Transmits queued since the last flush.
    unflushed: usize,
    /// Where a refused transmit token writes (its frame is dropped).
    scratch: Vec<u8>,
    /// The device fills the checksums smoltcp leaves out ([`tx_meta`]).
    tx_csum: bool,
}

impl<D: NetDevice> TxPath<D> {
    fn sent(&mut self, len: usize) {
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        self.unflushed += 1;
        if self.unflushed >= TX_BATCH {
            self.dev.flush();
            self.unflushed = 0;
        }
    }

    fn refused(&mut self, e: TxError) {
        match e {
            TxError::Busy => self.stats.tx_busy += 1,
            _ => self.stats.tx_errors += 1,
        }
    }

    /// The ring is full: tell the device about what is queued and reap
    /// what it completed.
    fn make_room(&mut self) {
        self.dev.flush();
        self.unflushed = 0;
        self.dev.poll();
    }

    fn has_room(&mut self) -> bool {
        if self.dev.tx_free() == 0 {
            self.make_room();
        }
        if self.dev.tx_free() == 0 {
            self.stats.tx_busy += 1;
            return false;
        }
        true
    }
}

/// A smoltcp device over a [`NetDevice`].
#[derive(Debug)]
pub struct Phy<D: NetDevice> {
    tx: TxPath<D>,
    caps: DeviceCapabilities,
    /// Rx offload advertised: frames with `csum_ok` are not re-verified.
    rx_offload: bool,
    /// Replies generated while a frame was lent, oldest first.
    stash: VecDeque<Vec<u8>>,
    /// Spare buffers for the stash and the L2 queue (no allocation per
    /// frame once warm).
    spare: Vec<Vec<u8>>,
    /// The copy made by the plain `phy::Device::receive`.
    rx_copy: Vec<u8>,
    l2: Option<L2Queue>,
    /// Copies of every received frame for a capture (`snoop`), taken
    /// before the frame is classified; bounded.
    snoop: Option<L2Queue>,
    /// Frames the capture queue had no room for.
    snoop_dropped: u64,
    dhcp_ack: Option<DhcpAckSeen>,
    /// The IPv4 neighbours smoltcp learned from ARP, remembered so that a
    /// rebuilt `Interface` (a runtime MTU change) starts with them.
    arp_seen: ArpMemory,
}

/// How many ARP bindings [`ArpMemory`] keeps (smoltcp's own cache holds
/// more; these are the most recent).
const ARP_MEMORY: usize = 16;

/// smoltcp's neighbour entry lifetime: a binding older than this would
/// have expired in the cache it came from, so it is not replayed.
const ARP_LIFETIME: Duration = Duration::from_secs(60);

/// The most recent ARP bindings received (sender IPv4 and MAC, the
/// target address it was aimed at, when): what smoltcp's neighbour cache
/// learns from ARP, since it fills its cache from every request or reply
/// aimed at one of its addresses.
#[derive(Debug, Default)]
struct ArpMemory {
    seen: heapless::Vec<ArpSeen, ARP_MEMORY>,
}

/// Sender IPv4 and MAC, target IPv4, when.
type ArpSeen = ([u8; 4], [u8; 6], [u8; 4], Instant);

impl ArpMemory {
    fn note(&mut self, frame: &[u8], now: Instant) {
        let Ok(arp) = ArpPacket::new_checked(frame.get(ETH_HEADER..).unwrap_or(&[])) else {
            return;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_protocol_addr: tpa,
            ..
        }) = ArpRepr::parse(&arp)
        else {
            return;
        };
        let (spa, tpa) = (spa.octets(), tpa.octets());
        self.seen.retain(|(ip, ..)| *ip != spa);
        if self.seen.is_full() {
            self.seen.remove(0);
        }
        let _ = self.seen.push((spa, sha.0, tpa, now));
    }

    /// Each remembered binding as an ARP reply to `mac`, for a new
    /// `Interface` to learn from as it learned from the original.
    fn replies(&self, mac: [u8; 6], now: Instant) -> impl Iterator<Item = [u8; 42]> + '_ {
        self.seen
            .iter()
            .filter(move |(.., at)| now < *at + ARP_LIFETIME)
            .map(move |(spa, sha, tpa, _)| {
                let repr = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: EthernetAddress(*sha),
                    source_protocol_addr: Ipv4Address::from(*spa),
                    target_hardware_addr: EthernetAddress(mac),
                    target_protocol_addr: Ipv4Address::from(*tpa),
                };
                let mut f = [0u8; 42];
                let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
                eth.set_dst_addr(EthernetAddress(mac));
                eth.set_src_addr(EthernetAddress(*sha));
                eth.set_ethertype(EthernetProtocol::Arp);
                repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
                f
            })
    }
}

impl<D: NetDevice> Phy<D> {
    pub fn new(dev: D) -> Self {
        let off = dev.offloads();
        let mut checksum = ChecksumCapabilities::default();
        // Receive checksums are verified in `classify`, never by smoltcp;
        // transmit checksums are computed by smoltcp unless offloaded.
        // The device fills both or neither (TxMeta::csum).
        let tx_csum = off.tx_ipv4_csum && off.tx_l4_csum;
        let by_stack = if tx_csum {
            Checksum::None
        } else {
            Checksum::Tx
        };
        checksum.ipv4 = by_stack;
        checksum.tcp = by_stack;
        checksum.udp = by_stack;
        checksum.icmpv4 = Checksum::Tx;
        checksum.icmpv6 = Checksum::Tx;
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = dev.mtu() + ETH_HEADER;
        caps.checksum = checksum;
        Phy {
            tx: TxPath {
                dev,
                stats: PhyStats::default(),
                unflushed: 0,
                scratch: Vec::new(),
                tx_csum,
            },
            caps,
            rx_offload: off.rx_csum,
            stash: VecDeque::new(),
            spare: Vec::new(),
            rx_copy: Vec::new(),
            l2: None,
            snoop: None,
            snoop_dropped: 0,
            dhcp_ack: None,
            arp_seen: ArpMemory::default(),
        }
    }

    /// Teach `iface` (new, e.g. rebuilt for another MTU) the ARP bindings
    /// the one before it learned, so its first reply to a known peer does
    /// not wait for (and lose its packet to) a new ARP exchange.
    pub fn replay_arp(&mut self, now: Instant, iface: &mut Interface, sockets: &mut SocketSet<'_>) {
        let mac = self.tx.dev.mac();
        let Phy {
            caps,
            stash,
            spare,
            arp_seen,
            ..
        } = self;
        for f in arp_seen.replies(mac, now) {
            let mut one = OneFrame {
                frame: Some(&f),
                caps,
                stash,
                spare,
            };
            iface.poll_ingress_single(now, &mut one, sockets);
        }
    }

    pub fn device(&self) -> &D {
        &self.tx.dev
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.tx.dev
    }

    /// After the device's MTU changed at run time: smoltcp's
    /// `max_transmission_unit` follows (device MTU + 14).
    pub fn refresh_mtu(&mut self) {
        self.caps.max_transmission_unit = self.tx.dev.mtu() + ETH_HEADER;
    }

    pub fn into_device(self) -> D {
        self.tx.dev
    }

    pub fn stats(&self) -> PhyStats {
        self.tx.stats
    }

    /// What smoltcp is told: Ethernet, MTU = device MTU + 14, checksums as
    /// described in the module documentation.
    pub fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }

    /// Hand up to `budget` received frames, in place, to `iface`; returns
    /// how many frames were taken from the device (whatever became of
    /// them). Staged replies are sent and transmits flushed at the end.
    pub fn ingress(
        &mut self,
        now: Instant,
        iface: &mut Interface,
        sockets: &mut SocketSet<'_>,
        budget: usize,
    ) -> usize {
        let mut taken = 0;
        while taken < budget {
            let Phy {
                tx,
                caps,
                rx_offload,
                stash,
                spare,
                l2,
                dhcp_ack,
                snoop,
                snoop_dropped,
                arp_seen,
                ..
            } = self;
            let TxPath { dev, stats, .. } = tx;
            let got = dev.receive(|frame, meta| {
                capture(snoop, snoop_dropped, spare, frame);
                match classify(frame, Trust::of(*rx_offload, &meta)) {
                    FrameClass::Stack { dhcp_client } => {
                        stats.rx_frames += 1;
                        stats.rx_bytes += frame.len() as u64;
                        if dhcp_client && let Some(ack) = parse_dhcp_ack(frame) {
                            *dhcp_ack = Some(ack);
                        }
                        if frame.get(12..14) == Some(&[0x08, 0x06]) {
                            arp_seen.note(frame, now);
                        }
                        let mut one = OneFrame {
                            frame: Some(frame),
                            caps,
                            stash,
                            spare,
                        };
                        iface.poll_ingress_single(now, &mut one, sockets);
                    }
                    class => count_other(stats, l2, spare, class, frame),
                }
            });
            if got.is_none() {
                break;
            }
            taken += 1;
            if !self.stash.is_empty() {
                self.send_stash();
            }
        }
        self.flush();
        taken
    }

    /// Send staged replies while the ring has room.
    fn send_stash(&mut self) {
        while let Some(buf) = self.stash.pop_front() {
            if !self.tx.has_room() {
                self.stash.push_front(buf);
                return;
            }
            let csum = self.tx.tx_csum;
            match self.tx.dev.transmit_then(buf.len(), |b| {
                b.copy_from_slice(&buf);
                ((), tx_meta(b, csum))
            }) {
                Ok(()) => {
                    self.tx.sent(buf.len());
                    self.spare.push(buf);
                }
                Err(TxError::Busy) => {
                    self.tx.refused(TxError::Busy);
                    self.stash.push_front(buf);
                    return;
                }
                Err(e) => {
                    self.tx.refused(e);
                    self.spare.push(buf);
                }
            }
        }
    }

    /// Send staged replies, make queued transmits visible to the device
    /// (one doorbell) and re-post consumed receive buffers.
    pub fn flush(&mut self) {
        self.send_stash();
        self.tx.dev.flush();
        self.tx.unflushed = 0;
    }

    /// Transmit a raw frame (the L2 test): `f` fills `len` bytes of a
    /// driver buffer. The device sees it at the next flush (at most 32
    /// frames later, or at the end of the interface poll).
    pub fn transmit_raw<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        if !self.tx.has_room() {
            return Err(TxError::Busy);
        }
        match self.tx.dev.transmit(len, f) {
            Ok(r) => {
                self.tx.sent(len);
                Ok(r)
            }
            Err(e) => {
                self.tx.refused(e);
                Err(e)
            }
        }
    }

    /// Start queueing [`L2_TEST_ETHERTYPE`] frames (at most `capacity`;
    /// more are counted in `rx_l2_dropped`). Frames queued earlier are
    /// discarded.
    pub fn l2_open(&mut self, capacity: usize) {
        self.l2 = Some(L2Queue {
            frames: VecDeque::new(),
            capacity: capacity.max(1),
        });
    }

    /// Stop queueing L2 test frames and discard the queue.
    pub fn l2_close(&mut self) {
        self.l2 = None;
    }

    pub fn l2_is_open(&self) -> bool {
        self.l2.is_some()
    }

    /// The oldest queued L2 test frame (whole frame, Ethernet header
    /// included).
    pub fn l2_next<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let q = self.l2.as_mut()?;
        let frame = q.frames.pop_front()?;
        let r = f(&frame);
        self.spare.push(frame);
        Some(r)
    }

    /// Start copying every received frame into a capture queue of at
    /// most `capacity` frames (more are counted as dropped).
    pub fn snoop_open(&mut self, capacity: usize) {
        self.snoop = Some(L2Queue {
            frames: VecDeque::new(),
            capacity: capacity.max(1),
        });
        self.snoop_dropped = 0;
    }

    /// Stop capturing; the frames the queue had no room for.
    pub fn snoop_close(&mut self) -> u64 {
        if let Some(q) = self.snoop.take() {
            self.spare.extend(q.frames);
        }
        self.snoop_dropped
    }

    /// The oldest captured frame.
    pub fn snoop_next<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let frame = self.snoop.as_mut()?.frames.pop_front()?;
        let r = f(&frame);
        self.spare.push(frame);
        Some(r)
    }

    /// Replies staged while the ring was full, not sent yet.
    pub fn has_pending(&self) -> bool {
        !self.stash.is_empty()
    }

    /// The last DHCP ACK seen on its way to the client since the last call.
    pub fn take_dhcp_ack(&mut self) -> Option<DhcpAckSeen> {
        self.dhcp_ack.take()
    }
}

/// Copy `frame` into the capture queue, if one is open.
fn capture(snoop: &mut Option<L2Queue>, dropped: &mut u64, spare: &mut Vec<Vec<u8>>, frame: &[u8]) {
    let Some(q) = snoop else {
        return;
    };
    if q.frames.len() >= q.capacity {
        *dropped += 1;
        return;
    }
    let mut buf = spare.pop().unwrap_or_default();
    buf.clear();
    buf.extend_from_slice(frame);
    q.frames.push_back(buf);
}

/// Count a frame that does not go to smoltcp; queue L2 test frames.
fn count_other(
    stats: &mut PhyStats,
    l2: &mut Option<L2Queue>,
    spare: &mut Vec<Vec<u8>>,
    class: FrameClass,
    frame: &[u8],
) {
    match class {
        FrameClass::Malformed => stats.rx_malformed += 1,
        FrameClass::BadChecksum => stats.rx_bad_checksum += 1,
        FrameClass::Unsupported => stats.rx_unsupported += 1,
        FrameClass::L2Test => match l2 {
            Some(q) if q.frames.len() < q.capacity => {
                stats.rx_l2_test += 1;
                let mut buf = spare.pop().unwrap_or_default();
                buf.clear();
                buf.extend_from_slice(frame);
                q.frames.push_back(buf);
            }
            _ => stats.rx_l2_dropped += 1,
        },
        FrameClass::Stack { .. } => {}
    }
}

/// What the device is asked for a frame smoltcp (or a staged reply) just
/// wrote: its geometry, read from the headers it wrote (an Ethernet
/// header, then IPv4 with its IHL or IPv6's fixed header, then TCP with
/// its data offset or UDP), and, when the device fills checksums
/// (`csum`), the checksums only where the frame has them: the IPv4 header
/// checksum and the TCP/UDP checksum. ARP and ICMPv6 frames ask nothing
/// (smoltcp fills ICMP checksums itself).
pub fn tx_meta(frame: &[u8], csum: bool) -> TxMeta {
    let geometry = tx_geometry(frame);
    let needs = geometry.l3 == L3Proto::Ipv4 || geometry.l4 != L4Proto::Other;
    TxMeta {
        csum: csum && needs,
        geometry: Some(geometry),
        ..TxMeta::default()
    }
}

/// The header lengths of a frame as written (see [`tx_meta`]); whatever
/// does not parse ends the geometry there.
pub fn tx_geometry(f: &[u8]) -> TxGeometry {
    let mut g = TxGeometry {
        l2: ETH_HEADER.min(f.len()) as u8,
        ..TxGeometry::default()
    };
    if f.len() < ETH_HEADER {
        return g;
    }
    let at = ETH_HEADER;
    let proto = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => {
            let Some(&vihl) = f.get(at) else { return g };
            let ihl = (vihl & 0x0f) as usize * 4;
            if vihl >> 4 != 4 || ihl < 20 || f.len() < at + ihl {
                return g;
            }
            g.l3 = L3Proto::Ipv4;
            g.l3_len = ihl as u8;
            // A fragment past the first has no transport header.
            if u16::from_be_bytes([f[at + 6], f[at + 7]]) & 0x1fff != 0 {
                return g;
            }
            f[at + 9]
        }
        0x86dd if f.len() >= at + 40 && f[at] >> 4 == 6 => {
            g.l3 = L3Proto::Ipv6;
            g.l3_len = 40;
            f[at + 6]
        }
        _ => return g,
    };
    let l4 = at + g.l3_len as usize;
    match proto {
        6 => {
            if let Some(&off) = f.get(l4 + 12) {
                let doff = (off >> 4) as usize * 4;
                if doff >= 20 && f.len() >= l4 + doff {
                    g.l4 = L4Proto::Tcp;
                    g.l4_len = doff as u8;
                }
            }
        }
        17 if f.len() >= l4 + 8 => {
            g.l4 = L4Proto::Udp;
            g.l4_len = 8;
        }
        _ => {}
    }
    g
}

/// Transmit token straight into a driver buffer.
#[derive(Debug)]
pub struct PhyTxToken<'a, D: NetDevice> {
    tx: &'a mut TxPath<D>,
}

impl<D: NetDevice> phy::TxToken for PhyTxToken<'_, D> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let tx = self.tx;
        // `f` must run whatever happens: if the device refuses before it
        // ran, it writes into scratch; either way a refused frame is
        // dropped (counted).
        let mut f = Some(f);
        let mut out = None;
        let csum = tx.tx_csum;
        let sent = tx.dev.transmit_then(len, |b| {
            out = f.take().map(|f| f(b));
            ((), tx_meta(b, csum))
        });
        match sent {
            Ok(()) => tx.sent(len),
            Err(e) => tx.refused(e),
        }
        match (out, f.take()) {
            (Some(r), _) => r,
            (None, Some(f)) => {
                tx.scratch.clear();
                tx.scratch.resize(len, 0);
                f(&mut tx.scratch)
            }
            (None, None) => unreachable!("the token's closure runs once"),
        }
    }
}

/// Receive token over a frame (lent by the driver, or copied).
#[derive(Debug)]
pub struct FrameRxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for FrameRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// A transmit token that stages its frame, for replies made while the
/// driver lends a received frame (the device cannot transmit then).
#[derive(Debug)]
pub struct StashTxToken<'a> {
    stash: &'a mut VecDeque<Vec<u8>>,
    spare: &'a mut Vec<Vec<u8>>,
}

impl phy::TxToken for StashTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.resize(len, 0);
        let r = f(&mut buf);
        if self.stash.len() == STASH_MAX
            && let Some(old) = self.stash.pop_front()
        {
            self.spare.push(old);
        }
        self.stash.push_back(buf);
        r
    }
}

/// The device smoltcp sees while the driver lends one received frame.
struct OneFrame<'a, 'f> {
    frame: Option<&'f [u8]>,
    caps: &'a DeviceCapabilities,
    stash: &'a mut VecDeque<Vec<u8>>,
    spare: &'a mut Vec<Vec<u8>>,
}

impl phy::Device for OneFrame<'_, '_> {
    type RxToken<'b>
        = FrameRxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = StashTxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(FrameRxToken<'_>, StashTxToken<'_>)> {
        let frame = self.frame.take()?;
        Some((
            FrameRxToken { frame },
            StashTxToken {
                stash: self.stash,
                spare: self.spare,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<StashTxToken<'_>> {
        Some(StashTxToken {
            stash: self.stash,
            spare: self.spare,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

impl<D: NetDevice> phy::Device for Phy<D> {
    type RxToken<'a>
        = FrameRxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = PhyTxToken<'a, D>
    where
        Self: 'a;

    /// Copies the next frame for smoltcp (frames for elsewhere are counted
    /// or queued on the way). [`Phy::ingress`] is the zero-copy path.
    fn receive(&mut self, _now: Instant) -> Option<(FrameRxToken<'_>, PhyTxToken<'_, D>)> {
        self.send_stash();
        let rx_offload = self.rx_offload;
        loop {
            let Phy {
                tx,
                l2,
                spare,
                rx_copy,
                dhcp_ack,
                snoop,
                snoop_dropped,
                ..
            } = self;
            let TxPath { dev, stats, .. } = tx;
            let for_stack = dev.receive(|frame, meta| {
                capture(snoop, snoop_dropped, spare, frame);
                match classify(frame, Trust::of(rx_offload, &meta)) {
                    FrameClass::Stack { dhcp_client } => {
                        stats.rx_frames += 1;
                        stats.rx_bytes += frame.len() as u64;
                        if dhcp_client && let Some(ack) = parse_dhcp_ack(frame) {
                            *dhcp_ack = Some(ack);
                        }
                        rx_copy.clear();
                        rx_copy.extend_from_slice(frame);
                        true
                    }
                    class => {
                        count_other(stats, l2, spare, class, frame);
                        false
                    }
                }
            })?;
            if for_stack {
                break;
            }
        }
        // A reply the ring has no room for goes to scratch, counted.
        Some((
            FrameRxToken {
                frame: &self.rx_copy,
            },
            PhyTxToken { tx: &mut self.tx },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<PhyTxToken<'_, D>> {
        if !self.tx.has_room() {
            return None;
        }
        Some(PhyTxToken { tx: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// An Ethernet frame of `ethertype` with `l3` after the header.
    fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    #[test]
    fn tx_meta_asks_only_for_the_checksums_a_frame_has() {
        // ARP (0x0806): nothing to checksum, geometry stops at L2.
        let arp = eth(0x0806, &[0u8; 28]);
        let m = tx_meta(&arp, true);
        assert!(!m.csum);
        assert_eq!(m.geometry.unwrap().headers(), 14);
        // IPv4 (version/IHL 0x46: 24 bytes) ICMP (protocol 1 at +9): the
        // header checksum only.
        let mut icmp = vec![0u8; 24 + 8];
        icmp[0] = 0x46;
        icmp[9] = 1;
        let m = tx_meta(&eth(0x0800, &icmp), true);
        let g = m.geometry.unwrap();
        assert!(m.csum);
        assert_eq!(
            (g.l3, g.l3_len, g.l4, g.l4_len),
            (L3Proto::Ipv4, 24, L4Proto::Other, 0)
        );
        // IPv4 TCP, data offset 8 (32 bytes) at TCP +12.
        let mut tcp = vec![0u8; 20 + 32 + 10];
        tcp[0] = 0x45;
        tcp[9] = 6;
        tcp[20 + 12] = 0x80;
        let m = tx_meta(&eth(0x0800, &tcp), true);
        let g = m.geometry.unwrap();
        assert_eq!((g.l4, g.l4_len, g.headers()), (L4Proto::Tcp, 32, 66));
        // Without the offload nothing is asked, the geometry still given.
        assert!(!tx_meta(&eth(0x0800, &tcp), false).csum);
        // A later fragment (offset 0x0010 at +6): no transport header.
        let mut frag = tcp.clone();
        frag[6..8].copy_from_slice(&[0x00, 0x10]);
        assert_eq!(
            tx_meta(&eth(0x0800, &frag), true).geometry.unwrap().l4,
            L4Proto::Other
        );
        // IPv6 (0x60) UDP (next header 17 at +6): the UDP checksum.
        let mut udp = vec![0u8; 40 + 8 + 4];
        udp[0] = 0x60;
        udp[6] = 17;
        let m = tx_meta(&eth(0x86dd, &udp), true);
        let g = m.geometry.unwrap();
        assert!(m.csum);
        assert_eq!(
            (g.l3, g.l3_len, g.l4, g.l4_len),
            (L3Proto::Ipv6, 40, L4Proto::Udp, 8)
        );
        // ICMPv6 (58): smoltcp fills it; nothing asked.
        udp[6] = 58;
        assert!(!tx_meta(&eth(0x86dd, &udp), true).csum);
        // Truncated headers: never a panic, nothing past what parses.
        let full = eth(0x0800, &tcp);
        for n in 0..full.len() {
            let g = tx_geometry(&full[..n]);
            assert!(g.headers() <= n.max(14), "{n}");
        }
    }
}
