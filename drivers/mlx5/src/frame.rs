//! The header geometry the transmit path needs from a frame the stack
//! wrote: how many bytes to inline (the part's inline rule, PRM "Send WQE
//! Format": L2 / L3 / L4 headers), which checksums the Ethernet segment
//! asks for, and where an LSO frame's payload starts. A caller that knows
//! it passes it ([`cxos_drivers::TxGeometry`], converted here); otherwise
//! [`parse`] finds it in the frame, read in place. The bytes come from the
//! stack, not the device, but are still read defensively: anything that
//! does not parse is "not IP" and only its L2 header counts.

use cxos_drivers::{L3Proto, L4Proto, TxGeometry};

/// Ethernet header.
pub const ETH_HLEN: usize = 14;
/// One 802.1Q tag.
pub const VLAN_HLEN: usize = 4;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Net {
    Other,
    Ipv4,
    Ipv6,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    Other,
    Tcp,
    Udp,
}

/// Header lengths of one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Geometry {
    /// Ethernet header plus a VLAN tag when there is one.
    pub l2: usize,
    pub net: Net,
    /// IPv4 header (IHL) or the fixed IPv6 header; 0 when not IP.
    pub l3: usize,
    pub transport: Transport,
    /// TCP header (data offset) or 8 for UDP; 0 otherwise.
    pub l4: usize,
}

impl Geometry {
    /// Every header byte: where an LSO frame's payload starts.
    pub fn headers(&self) -> usize {
        self.l2 + self.l3 + self.l4
    }

    /// A frame of `len` bytes taken as an untagged Ethernet frame and
    /// nothing more (where nothing needs its headers).
    #[inline]
    pub fn l2_only(len: usize) -> Geometry {
        Geometry {
            l2: ETH_HLEN.min(len),
            net: Net::Other,
            l3: 0,
            transport: Transport::Other,
            l4: 0,
        }
    }
}

impl From<TxGeometry> for Geometry {
    /// What the stack says; lengths are trusted only as far as the
    /// transmit path clamps them (to the frame and to [`crate::wqe::MAX_HEADERS`]).
    #[inline]
    fn from(t: TxGeometry) -> Geometry {
        Geometry {
            l2: t.l2 as usize,
            net: match t.l3 {
                L3Proto::Ipv4 => Net::Ipv4,
                L3Proto::Ipv6 => Net::Ipv6,
                L3Proto::Other => Net::Other,
            },
            l3: t.l3_len as usize,
            transport: match t.l4 {
                L4Proto::Tcp => Transport::Tcp,
                L4Proto::Udp => Transport::Udp,
                L4Proto::Other => Transport::Other,
            },
            l4: t.l4_len as usize,
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parse the headers of `f`. IPv4 fragments other than the first, and
/// IPv6 with extension headers, have no transport header here.
pub fn parse(f: &[u8]) -> Geometry {
    let mut g = Geometry {
        l2: ETH_HLEN.min(f.len()),
        net: Net::Other,
        l3: 0,
        transport: Transport::Other,
        l4: 0,
    };
    let Some(mut ethertype) = be16(f, 12) else {
        return g;
    };
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        let Some(inner) = be16(f, 16) else {
            return g;
        };
        g.l2 = ETH_HLEN + VLAN_HLEN;
        ethertype = inner;
    }
    let at = g.l2;
    let proto = match ethertype {
        ETHERTYPE_IPV4 => {
            let Some(&vihl) = f.get(at) else { return g };
            let ihl = (vihl & 0x0f) as usize * 4;
            if vihl >> 4 != 4 || ihl < 20 || f.len() < at + ihl {
                return g;
            }
            g.net = Net::Ipv4;
            g.l3 = ihl;
            // More fragments or an offset: no (complete) L4 header.
            if be16(f, at + 6).is_some_and(|fo| fo & 0x3fff != 0) {
                return g;
            }
            f[at + 9]
        }
        ETHERTYPE_IPV6 => {
            if f.len() < at + 40 || f[at] >> 4 != 6 {
                return g;
            }
            g.net = Net::Ipv6;
            g.l3 = 40;
            f[at + 6]
        }
        _ => return g,
    };
    let l4 = at + g.l3;
    match proto {
        IPPROTO_TCP => {
            let Some(&off) = f.get(l4 + 12) else { return g };
            let doff = (off >> 4) as usize * 4;
            if doff >= 20 && f.len() >= l4 + doff {
                g.transport = Transport::Tcp;
                g.l4 = doff;
            }
        }
        IPPROTO_UDP if f.len() >= l4 + 8 => {
            g.transport = Transport::Udp;
            g.l4 = 8;
        }
        _ => {}
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn ipv4_tcp_ipv6_udp_vlan_and_junk() {
        // IPv4 (ethertype 0x0800 at 12, version/IHL 0x46 at 14: 24-byte
        // header), TCP at 38 with data offset 8 (32 bytes) at 38+12.
        let mut f = vec![0u8; 14 + 24 + 32 + 10];
        f[12] = 0x08;
        f[14] = 0x46;
        f[14 + 9] = IPPROTO_TCP;
        f[38 + 12] = 0x80;
        let g = parse(&f);
        assert_eq!((g.l2, g.net, g.l3), (14, Net::Ipv4, 24));
        assert_eq!((g.transport, g.l4, g.headers()), (Transport::Tcp, 32, 70));
        // A later fragment (offset 0x0010 at 14+6): no transport header.
        f[20..22].copy_from_slice(&[0x00, 0x10]);
        assert_eq!(parse(&f).transport, Transport::Other);
        // VLAN 0x8100 at 12, inner 0x86dd at 16, IPv6 (0x60 at 18), next
        // header UDP at 18+6.
        let mut f = vec![0u8; 18 + 40 + 8];
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        f[16..18].copy_from_slice(&[0x86, 0xdd]);
        f[18] = 0x60;
        f[24] = IPPROTO_UDP;
        let g = parse(&f);
        assert_eq!(
            (g.l2, g.net, g.l3, g.transport, g.l4),
            (18, Net::Ipv6, 40, Transport::Udp, 8)
        );
        // Truncated / bogus: L2 only, never a panic.
        for n in 0..f.len() {
            let g = parse(&f[..n]);
            assert!(g.headers() <= n.max(14));
        }
        let mut bad = vec![0u8; 60];
        bad[12] = 0x08;
        bad[14] = 0x43; // IHL 3: too short
        assert_eq!(parse(&bad).net, Net::Other);
        assert_eq!(parse(&[0u8; 5]).l2, 5);
    }

    #[test]
    fn the_stacks_geometry_converts_field_by_field() {
        let t = TxGeometry {
            l2: 18,
            l3: L3Proto::Ipv6,
            l3_len: 40,
            l4: L4Proto::Udp,
            l4_len: 8,
        };
        let g = Geometry::from(t);
        assert_eq!(
            (g.l2, g.net, g.l3, g.transport, g.l4),
            (18, Net::Ipv6, 40, Transport::Udp, 8)
        );
        assert_eq!(g.headers(), t.headers());
        assert_eq!(Geometry::l2_only(9).l2, 9);
        assert_eq!(Geometry::l2_only(60).headers(), 14);
    }
}
