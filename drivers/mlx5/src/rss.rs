//! Receive-side scaling (PRM "Receive Side Scaling"): the traffic-type
//! flow table that sends each kind of traffic to the indirect TIR hashing
//! it ([`TrafficTable`], over the RQT of [`crate::rqt`] and the TIRs of
//! [`crate::tir`]), and the Toeplitz hash the adapter computes for an
//! indirect TIR (Microsoft's RSS specification), so the driver and its
//! tests can predict the queue a flow lands on: queue = RQT[hash mod
//! table size].

use crate::cmd::Exec;
use crate::error::CmdError;
use crate::flow::{
    CreateFlowGroup, CreateFlowTable, Criteria, DeleteFte, Destination, DestroyFlowGroup,
    DestroyFlowTable, Fgn, Ftn, MatchValue, SetFte, TABLE_TYPE_NIC_RX,
};
use crate::tir::Tirn;

const TT: u8 = TABLE_TYPE_NIC_RX;

/// The key of Microsoft's RSS verification suite, the default.
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Toeplitz hash of `input` (at most 36 bytes: IPv6 addresses and ports)
/// under `key`: for every set bit of the input (most significant first),
/// XOR in the 32 key bits starting at that bit's position.
pub fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, &byte) in input.iter().take(36).enumerate() {
        let next = key[i + 4];
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | ((next >> (7 - bit)) & 1) as u32;
        }
    }
    hash
}

/// The hash input of an IPv4 flow: source, destination address, then
/// (with `ports`) source and destination port.
pub fn ipv4_input(
    src: [u8; 4],
    dst: [u8; 4],
    ports: Option<(u16, u16)>,
    out: &mut [u8; 36],
) -> usize {
    out[..4].copy_from_slice(&src);
    out[4..8].copy_from_slice(&dst);
    match ports {
        Some((s, d)) => {
            out[8..10].copy_from_slice(&s.to_be_bytes());
            out[10..12].copy_from_slice(&d.to_be_bytes());
            12
        }
        None => 8,
    }
}

/// The hash input of an IPv6 flow.
pub fn ipv6_input(
    src: [u8; 16],
    dst: [u8; 16],
    ports: Option<(u16, u16)>,
    out: &mut [u8; 36],
) -> usize {
    out[..16].copy_from_slice(&src);
    out[16..32].copy_from_slice(&dst);
    match ports {
        Some((s, d)) => {
            out[32..34].copy_from_slice(&s.to_be_bytes());
            out[34..36].copy_from_slice(&d.to_be_bytes());
            36
        }
        None => 32,
    }
}

/// Indirect TIRs of an RSS queue set: one per hashed traffic type (TCP
/// and UDP over IPv4 and IPv6, other IPv4, other IPv6).
pub const HASHED_TIRS: usize = 6;

/// The TIRs of an RSS queue set, one per traffic type: TCP and UDP over IPv4
/// and IPv6 hash addresses and ports, other IPv4 / IPv6 the addresses
/// only, everything else goes to one queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RssTirs {
    pub ipv4_tcp: Tirn,
    pub ipv4_udp: Tirn,
    pub ipv6_tcp: Tirn,
    pub ipv6_udp: Tirn,
    pub ipv4: Tirn,
    pub ipv6: Tirn,
    pub other: Tirn,
}

/// The traffic-type table of an RSS queue set ([`TRAFFIC_LEVEL`]): every
/// rule of the queue set forwards here, and it picks the TIR by ethertype
/// and IP protocol
/// (groups tried in order: ethertype + protocol, ethertype, anything).
#[derive(Debug)]
pub struct TrafficTable {
    pub table: Ftn,
    groups: [Fgn; 3],
    entries: usize,
}

/// Level of the traffic-type table (below the VLAN tables).
pub const TRAFFIC_LEVEL: u8 = 3;

impl TrafficTable {
    pub fn create(ex: &mut impl Exec, t: &RssTirs) -> Result<Self, CmdError> {
        let table = ex.exec(&CreateFlowTable {
            table_type: TT,
            level: TRAFFIC_LEVEL,
            log_size: 3,
        })?;
        let mut me = TrafficTable {
            table,
            groups: [Fgn(0); 3],
            entries: 0,
        };
        let specs = [
            (
                0,
                3,
                Criteria {
                    ethertype: true,
                    ip_protocol: true,
                    ..Criteria::default()
                },
            ),
            (
                4,
                5,
                Criteria {
                    ethertype: true,
                    ..Criteria::default()
                },
            ),
            (6, 6, Criteria::default()),
        ];
        let mut made = 0;
        let mut r = Ok(());
        for (i, (start, end, criteria)) in specs.into_iter().enumerate() {
            match ex.exec(&CreateFlowGroup {
                table_type: TT,
                table,
                start,
                end,
                criteria,
            }) {
                Ok(g) => {
                    me.groups[i] = g;
                    made += 1;
                }
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        const V4: u16 = crate::frame::ETHERTYPE_IPV4;
        const V6: u16 = crate::frame::ETHERTYPE_IPV6;
        const TCP: u8 = crate::frame::IPPROTO_TCP;
        const UDP: u8 = crate::frame::IPPROTO_UDP;
        let entries = [
            (0, Some(V4), Some(TCP), t.ipv4_tcp),
            (0, Some(V4), Some(UDP), t.ipv4_udp),
            (0, Some(V6), Some(TCP), t.ipv6_tcp),
            (0, Some(V6), Some(UDP), t.ipv6_udp),
            (1, Some(V4), None, t.ipv4),
            (1, Some(V6), None, t.ipv6),
            (2, None, None, t.other),
        ];
        if r.is_ok() {
            for (index, (g, ethertype, ip_protocol, tir)) in entries.into_iter().enumerate() {
                if let Err(e) = ex.exec(&SetFte {
                    table_type: TT,
                    table,
                    index: index as u32,
                    group: me.groups[g],
                    value: MatchValue {
                        ethertype,
                        ip_protocol,
                        ..MatchValue::default()
                    },
                    dests: &[Destination::Tir(tir)],
                    counter: None,
                }) {
                    r = Err(e);
                    break;
                }
                me.entries += 1;
            }
        }
        match r {
            Ok(()) => Ok(me),
            Err(e) => {
                let groups = made;
                let _ = me.destroy_parts(ex, groups);
                Err(e)
            }
        }
    }

    fn destroy_parts(self, ex: &mut impl Exec, groups: usize) -> Result<(), CmdError> {
        let mut first = Ok(());
        let mut keep = |r: Result<(), CmdError>| {
            if let (Err(e), Ok(())) = (r, &first) {
                first = Err(e);
            }
        };
        for i in 0..self.entries {
            keep(ex.exec(&DeleteFte {
                table_type: TT,
                table: self.table,
                index: i as u32,
            }));
        }
        for g in self.groups[..groups].iter().rev() {
            keep(ex.exec(&DestroyFlowGroup {
                table_type: TT,
                table: self.table,
                group: *g,
            }));
        }
        keep(ex.exec(&DestroyFlowTable {
            table_type: TT,
            table: self.table,
        }));
        first
    }

    pub fn destroy(self, ex: &mut impl Exec) -> Result<(), CmdError> {
        self.destroy_parts(ex, 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> [u8; 4] {
        let mut a = [0u8; 4];
        for (i, p) in s.split('.').enumerate() {
            a[i] = p.parse().unwrap();
        }
        a
    }

    fn v6(groups: [u16; 8]) -> [u8; 16] {
        let mut a = [0u8; 16];
        for (i, g) in groups.iter().enumerate() {
            a[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
        }
        a
    }

    /// Microsoft's "Verifying the RSS Hash Calculation" IPv4 table:
    /// (destination, source, IPv4-only hash, with TCP ports hash).
    #[test]
    fn microsoft_ipv4_vectors() {
        let table = [
            (
                "161.142.100.80",
                1766,
                "66.9.149.187",
                2794,
                0x323e_8fc2u32,
                0x51cc_c178u32,
            ),
            (
                "65.69.140.83",
                4739,
                "199.92.111.2",
                14230,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                "12.22.207.184",
                38024,
                "24.19.198.95",
                12898,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                "209.142.163.6",
                2217,
                "38.27.205.30",
                48228,
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                "202.188.127.2",
                1303,
                "153.39.163.191",
                44251,
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        let mut buf = [0u8; 36];
        for (dst, dport, src, sport, ip, tcp) in table {
            let n = ipv4_input(v4(src), v4(dst), None, &mut buf);
            assert_eq!(toeplitz(&DEFAULT_KEY, &buf[..n]), ip, "{src} -> {dst}");
            let n = ipv4_input(v4(src), v4(dst), Some((sport, dport)), &mut buf);
            assert_eq!(toeplitz(&DEFAULT_KEY, &buf[..n]), tcp, "{src} -> {dst} tcp");
        }
    }

    /// The same suite's IPv6 table.
    #[test]
    fn microsoft_ipv6_vectors() {
        let table = [
            (
                [0x3ffe, 0x2501, 0x200, 3, 0, 0, 0, 1],
                1766,
                [0x3ffe, 0x2501, 0x200, 0x1fff, 0, 0, 0, 7],
                2794,
                0x2cc1_8cd5u32,
                0x4020_7d3du32,
            ),
            (
                [0xff02, 0, 0, 0, 0, 0, 0, 1],
                4739,
                [0x3ffe, 0x501, 8, 0, 0x260, 0x97ff, 0xfe40, 0xefab],
                14230,
                0x0f0c_461c,
                0xdde5_1bbf,
            ),
            (
                [0xfe80, 0, 0, 0, 0x200, 0xf8ff, 0xfe21, 0x67cf],
                38024,
                [0x3ffe, 0x1900, 0x4545, 3, 0x200, 0xf8ff, 0xfe21, 0x67cf],
                44251,
                0x4b61_e985,
                0x02d1_feef,
            ),
        ];
        let mut buf = [0u8; 36];
        for (dst, dport, src, sport, ip, tcp) in table {
            let n = ipv6_input(v6(src), v6(dst), None, &mut buf);
            assert_eq!(toeplitz(&DEFAULT_KEY, &buf[..n]), ip);
            let n = ipv6_input(v6(src), v6(dst), Some((sport, dport)), &mut buf);
            assert_eq!(toeplitz(&DEFAULT_KEY, &buf[..n]), tcp);
        }
    }
}
