//! What the engines need to know about a frame's headers: header lengths
//! for the inline rules and L3/L4 types for the CQE. Untrusted bytes: every
//! read is bounds-checked and a short frame just yields "unknown".
#![deny(unsafe_code)]

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    None,
    Ipv4,
    Ipv6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    None,
    Tcp,
    Udp,
}

/// Parsed header geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Ethernet header with its VLAN tag, if any.
    pub l2_len: usize,
    /// First VLAN tag: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
    /// Ethertype after the tag (0 when the frame is too short).
    pub ethertype: u16,
    pub l3: L3,
    pub l3_len: usize,
    /// IPv4 protocol / IPv6 next header (0 without IP).
    pub ip_proto: u8,
    /// IPv4 fragment (MF set or offset not 0): no L4 header to trust.
    pub frag: bool,
    /// End of the IP datagram in the frame (total length, clipped to the
    /// frame): what lies beyond is Ethernet padding.
    pub ip_end: usize,
    pub l4: L4,
    pub l4_len: usize,
    /// TCP: ACK flag set / payload present (for the CQE's l4_hdr_type).
    pub tcp_ack: bool,
    pub tcp_payload: bool,
}

impl Headers {
    /// Offset of the L4 header.
    pub fn l4_off(&self) -> usize {
        self.l2_len + self.l3_len
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

pub fn parse(f: &[u8]) -> Headers {
    let mut h = Headers {
        l2_len: ETH_HLEN,
        vlan: None,
        ethertype: 0,
        l3: L3::None,
        l3_len: 0,
        ip_proto: 0,
        frag: false,
        ip_end: 0,
        l4: L4::None,
        l4_len: 0,
        tcp_ack: false,
        tcp_payload: false,
    };
    let Some(mut ethertype) = be16(f, 12) else {
        return h;
    };
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        h.l2_len += VLAN_HLEN;
        let (Some(tci), Some(inner)) = (be16(f, 14), be16(f, 16)) else {
            return h;
        };
        h.vlan = Some((ethertype, tci));
        ethertype = inner;
    }
    h.ethertype = ethertype;
    let l3 = h.l2_len;
    let (proto, l4_at, total) = match ethertype {
        ETHERTYPE_IPV4 => {
            let Some(vihl) = f.get(l3) else { return h };
            let ihl = ((vihl & 0xf) as usize) * 4;
            if vihl >> 4 != 4 || ihl < 20 || f.len() < l3 + ihl {
                return h;
            }
            h.l3 = L3::Ipv4;
            h.l3_len = ihl;
            let total = be16(f, l3 + 2).unwrap_or(0) as usize;
            h.frag = be16(f, l3 + 6).unwrap_or(0) & 0x3fff != 0;
            (f.get(l3 + 9).copied().unwrap_or(0), l3 + ihl, l3 + total)
        }
        ETHERTYPE_IPV6 => {
            if f.len() < l3 + 40 || f[l3] >> 4 != 6 {
                return h;
            }
            h.l3 = L3::Ipv6;
            h.l3_len = 40;
            let payload = be16(f, l3 + 4).unwrap_or(0) as usize;
            (f[l3 + 6], l3 + 40, l3 + 40 + payload)
        }
        _ => return h,
    };
    h.ip_proto = proto;
    h.ip_end = total.clamp(l4_at, f.len());
    if h.frag {
        return h;
    }
    match proto {
        PROTO_TCP => {
            let Some(off) = f.get(l4_at + 12) else {
                return h;
            };
            let doff = ((off >> 4) as usize) * 4;
            if doff < 20 || f.len() < l4_at + doff {
                return h;
            }
            h.l4 = L4::Tcp;
            h.l4_len = doff;
            h.tcp_ack = f.get(l4_at + 13).is_some_and(|fl| fl & 0x10 != 0);
            h.tcp_payload = total.min(f.len()) > l4_at + doff;
        }
        PROTO_UDP if f.len() >= l4_at + 8 => {
            h.l4 = L4::Udp;
            h.l4_len = 8;
        }
        _ => {}
    }
    h
}

/// The CQE's `l4_l3_hdr_type` byte: l4_hdr_type in bits 6:4
/// (`CQE_L4_HDR_TYPE_*`, device.h), l3_hdr_type in bits 3:2 (1 IPv6, 2 IPv4).
pub fn cqe_hdr_type(h: &Headers) -> u8 {
    let l3 = match h.l3 {
        L3::None => 0,
        L3::Ipv6 => 1,
        L3::Ipv4 => 2,
    };
    let l4 = match h.l4 {
        L4::None => 0,
        L4::Udp => 2,
        L4::Tcp if !h.tcp_ack => 1,
        L4::Tcp if h.tcp_payload => 4,
        L4::Tcp => 3,
    };
    (l4 << 4) | (l3 << 2)
}

/// Bytes a WQE must inline under `MLX5_INLINE_MODE_*` `mode` (0 none,
/// 1 L2, 2 IP, 3 TCP/UDP) for this frame.
pub fn required_inline(h: &Headers, mode: u8) -> usize {
    match mode {
        0 => 0,
        1 => h.l2_len,
        2 => h.l2_len + h.l3_len,
        _ => h.l2_len + h.l3_len + h.l4_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-written IPv4/TCP frame: ethertype 0x0800 at 12, IHL 5, proto 6
    /// at 14+9, TCP data offset 5 at 34+12, flags ACK at 34+13, 4 bytes payload.
    #[test]
    fn ipv4_tcp_with_payload() {
        let mut f = vec![0u8; 14 + 20 + 20 + 4];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(20u16 + 20 + 4).to_be_bytes());
        f[14 + 9] = 6;
        f[34 + 12] = 0x50;
        f[34 + 13] = 0x10;
        let h = parse(&f);
        assert_eq!(
            (h.l3, h.l4, h.l3_len, h.l4_len),
            (L3::Ipv4, L4::Tcp, 20, 20)
        );
        assert_eq!(cqe_hdr_type(&h), 0x48);
        assert_eq!(required_inline(&h, 1), 14);
        assert_eq!(required_inline(&h, 3), 54);
    }

    #[test]
    fn vlan_ipv6_udp_and_garbage() {
        let mut f = vec![0u8; 18 + 40 + 8];
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        f[16..18].copy_from_slice(&[0x86, 0xdd]);
        f[18] = 0x60;
        f[18 + 6] = 17;
        let h = parse(&f);
        assert_eq!((h.l2_len, h.l3, h.l4), (18, L3::Ipv6, L4::Udp));
        assert_eq!(cqe_hdr_type(&h), 0x24);
        let h = parse(&[0xff; 5]);
        assert_eq!((h.l3, h.l4), (L3::None, L4::None));
    }
}
