//! Transmit hash policy: which distributing port carries a frame, so that
//! every frame of one flow leaves on the same port (the Frame
//! Distributor's ordering requirement, 802.1AX-2014 6.2.4) while many flows spread over all of them.
//! The policies are those of illumos `dladm create-aggr -P`: L2 hashes the
//! MAC addresses, L3 the IP addresses, L4 the TCP/UDP ports, and any
//! combination hashes the union.

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// Which headers feed the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPolicy {
    pub l2: bool,
    pub l3: bool,
    pub l4: bool,
}

/// A policy string that is not a comma-separated list of L2, L3, L4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPolicy;

impl HashPolicy {
    pub const L2: HashPolicy = HashPolicy {
        l2: true,
        l3: false,
        l4: false,
    };
    pub const L3: HashPolicy = HashPolicy {
        l2: false,
        l3: true,
        l4: false,
    };
    pub const L4: HashPolicy = HashPolicy {
        l2: false,
        l3: false,
        l4: true,
    };

    /// Parses `dladm`'s syntax: `L2`, `L3,L4`, ... (case-insensitive).
    pub fn parse(s: &str) -> Result<HashPolicy, BadPolicy> {
        let mut policy = HashPolicy {
            l2: false,
            l3: false,
            l4: false,
        };
        for part in s.split(',') {
            match part.trim() {
                p if p.eq_ignore_ascii_case("l2") => policy.l2 = true,
                p if p.eq_ignore_ascii_case("l3") => policy.l3 = true,
                p if p.eq_ignore_ascii_case("l4") => policy.l4 = true,
                _ => return Err(BadPolicy),
            }
        }
        Ok(policy)
    }

    /// The hash of `frame` under this policy. A frame without the headers
    /// a policy names (ARP under L3, ICMP or a fragment under L4) hashes
    /// its MAC addresses instead, so it still has one port. Every
    /// fragment of an IP datagram skips the ports, as only the first
    /// carries them.
    pub fn hash(&self, frame: &[u8]) -> u32 {
        let mut h = Fnv::new();
        let mut used = false;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            h.write(frame);
            return h.finish();
        };
        if self.l2 {
            h.write(eth.dst_addr().as_bytes());
            h.write(eth.src_addr().as_bytes());
            used = true;
        }
        let (mut ethertype, mut payload) = (eth.ethertype(), eth.payload());
        // One 802.1Q tag: the VLAN ID is part of the flow.
        if ethertype == EthernetProtocol::Unknown(0x8100) && payload.len() >= 4 {
            h.write(&payload[..2]);
            ethertype = EthernetProtocol::from(u16::from_be_bytes([payload[2], payload[3]]));
            payload = &payload[4..];
        }
        let l4 = match ethertype {
            EthernetProtocol::Ipv4 => match Ipv4Packet::new_checked(payload) {
                Ok(ip) => {
                    if self.l3 {
                        h.write(&ip.src_addr().octets());
                        h.write(&ip.dst_addr().octets());
                        used = true;
                    }
                    let fragment = ip.more_frags() || ip.frag_offset() != 0;
                    (!fragment).then(|| (ip.next_header(), ip.payload()))
                }
                Err(_) => None,
            },
            EthernetProtocol::Ipv6 => match Ipv6Packet::new_checked(payload) {
                Ok(ip) => {
                    if self.l3 {
                        h.write(&ip.src_addr().octets());
                        h.write(&ip.dst_addr().octets());
                        used = true;
                    }
                    Some((ip.next_header(), ip.payload()))
                }
                Err(_) => None,
            },
            _ => None,
        };
        if self.l4 {
            let ports = match l4 {
                Some((IpProtocol::Tcp, p)) => TcpPacket::new_checked(p)
                    .ok()
                    .map(|t| (t.src_port(), t.dst_port())),
                Some((IpProtocol::Udp, p)) => UdpPacket::new_checked(p)
                    .ok()
                    .map(|u| (u.src_port(), u.dst_port())),
                _ => None,
            };
            if let Some((src, dst)) = ports {
                h.write(&src.to_be_bytes());
                h.write(&dst.to_be_bytes());
                used = true;
            }
        }
        if !used {
            h.write(eth.dst_addr().as_bytes());
            h.write(eth.src_addr().as_bytes());
        }
        h.finish()
    }
}

/// FNV-1a with a final avalanche, so that `hash % ports` depends on every
/// input bit.
struct Fnv(u32);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }

    fn finish(&self) -> u32 {
        let mut x = self.0;
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb_352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846c_a68b);
        x ^ (x >> 16)
    }
}
