//! Receive side scaling: the Toeplitz hash (Microsoft "RSS Hashing
//! Functions") or the inverted XOR8 over the fields an indirect TIR
//! selects, and the RQ its RQT puts at `hash % rqt_actual_size`.
//!
//! Hash input, in the Microsoft order: source address, destination
//! address, source port, destination port, each only when selected; or
//! the addresses and the IPsec SPI (ESP: the header's first word; AH: its
//! second) for ESP / AH frames. A frame whose L3 is not the selector's
//! (IPv4 vs IPv6) is not hashed (hash 0, type 0: RQT entry 0); one whose
//! L4 is not the selector's (TCP vs UDP) or is a fragment is hashed on the
//! addresses only. The CQE reports what was hashed in `rss_hash_type`
//! (device.h `CQE_RSS_HTYPE_IP` bits 3:2: 1 IPv4, 2 IPv6;
//! `CQE_RSS_HTYPE_L4` bits 7:6: 1 TCP, 2 UDP, 3 IPsec).
//!
//! Symmetric Toeplitz (`rx_hash_symmetric`) hashes both directions of a
//! flow alike: the model orders the (address, port) pairs before hashing,
//! the lower first, so a frame and its reply land on the same RQ. Inverted
//! XOR8 is the XOR of the input bytes, inverted, as an 8-bit hash.
#![deny(unsafe_code)]

use super::frame::{Headers, L3, L4};
use crate::cmd::tir::{HashFn, RxHash, Tir, sel};
use crate::function::Function;

/// Toeplitz hash of `input` under `key` (the key must be at least
/// `input.len() + 4` bytes: 40 bytes cover 36 bytes of IPv6 4-tuple).
pub fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut result = 0u32;
    // The 32-bit window of the key aligned with the current input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, byte) in input.iter().enumerate() {
        let next = key.get(i + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | ((next >> (7 - bit)) & 1) as u32;
        }
    }
    result
}

/// `ip_protocol` of ESP and AH.
const PROTO_ESP: u8 = 50;
const PROTO_AH: u8 = 51;
/// `CQE_RSS_HTYPE_L4` of an IPsec SPI hash.
const HTYPE_IPSEC: u8 = 3;

/// The hash input and CQE hash type for a frame under `h`'s selector.
fn input(f: &[u8], hd: &Headers, h: &RxHash, buf: &mut [u8; 36]) -> (usize, u8) {
    let (ip_len, src_at, ip_type) = match (hd.l3, h.ipv6) {
        (L3::Ipv4, false) => (4, hd.l2_len + 12, 1u8),
        (L3::Ipv6, true) => (16, hd.l2_len + 8, 2u8),
        _ => return (0, 0),
    };
    let symmetric = matches!(h.func, HashFn::Toeplitz { symmetric: true });
    let l4 = hd.l4_off();
    let l4_type = match (hd.l4, h.udp) {
        (L4::Tcp, false) => Some(1u8),
        (L4::Udp, true) => Some(2u8),
        _ => None,
    };
    // (source, destination) address and port, swapped for a symmetric hash
    // when the destination pair is the lower.
    let (mut a, mut b) = ((src_at, l4), (src_at + ip_len, l4 + 2));
    if symmetric {
        let pair = |(ip, port): (usize, usize)| {
            let p = if l4_type.is_some() {
                f.get(port..port + 2)
            } else {
                None
            };
            (f.get(ip..ip + ip_len), p)
        };
        if pair(b) < pair(a) {
            std::mem::swap(&mut a, &mut b);
        }
    }
    let mut n = 0;
    let mut ty = 0;
    for (bit, at) in [(sel::SRC_IP, a.0), (sel::DST_IP, b.0)] {
        if h.fields & bit != 0 {
            buf[n..n + ip_len].copy_from_slice(&f[at..at + ip_len]);
            n += ip_len;
            ty = ip_type << 2;
        }
    }
    if h.fields & sel::IPSEC_SPI != 0 {
        let spi_at = match hd.ip_proto {
            PROTO_ESP if !hd.frag => Some(l4),
            PROTO_AH if !hd.frag => Some(l4 + 4),
            _ => None,
        };
        if let Some(spi) = spi_at.and_then(|at| f.get(at..at + 4)) {
            buf[n..n + 4].copy_from_slice(spi);
            n += 4;
            ty |= HTYPE_IPSEC << 6;
        }
        return (n, ty);
    }
    let Some(l4_type) = l4_type else {
        return (n, ty);
    };
    for (bit, at) in [(sel::L4_SPORT, a.1), (sel::L4_DPORT, b.1)] {
        if h.fields & bit != 0 {
            buf[n..n + 2].copy_from_slice(&f[at..at + 2]);
            n += 2;
            ty |= l4_type << 6;
        }
    }
    (n, ty)
}

/// Inverted XOR8: the XOR of every input byte, inverted.
pub fn inverted_xor8(input: &[u8]) -> u32 {
    !input.iter().fold(0u8, |x, b| x ^ b) as u32
}

/// The RQ a frame steered to `tir` goes to, with the CQE's (hash, type).
pub fn select(dev: &Function, tir: &Tir, f: &[u8], hd: &Headers) -> Option<(u32, (u32, u8))> {
    let Some(h) = &tir.hash else {
        return Some((tir.rqn, (0, 0)));
    };
    let rqt = dev.nic.rqts.get(h.rqtn)?;
    let mut buf = [0u8; 36];
    let (n, ty) = input(f, hd, h, &mut buf);
    let hash = match (n, h.func) {
        (0, _) => 0,
        (_, HashFn::Toeplitz { .. }) => toeplitz(&h.key, &buf[..n]),
        (_, HashFn::InvertedXor8) => inverted_xor8(&buf[..n]),
    };
    let rqn = *rqt.rqns.get(hash as usize % rqt.rqns.len().max(1))?;
    Some((rqn, (hash, ty)))
}

#[cfg(test)]
mod tests {
    use super::*;

    include!("../../tests/common/ms_rss.rs");

    fn v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> (u32, u32) {
        let mut b = Vec::new();
        b.extend_from_slice(&src);
        b.extend_from_slice(&dst);
        let ip = toeplitz(&MS_KEY, &b);
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        (ip, toeplitz(&MS_KEY, &b))
    }

    /// The IPv4 table of the Microsoft verification suite: (destination,
    /// source, IP-only hash, IP+TCP hash).
    #[test]
    fn microsoft_ipv4_vectors() {
        for (dst, dport, src, sport, ip, tcp) in MS_IPV4 {
            assert_eq!(v4(src, dst, sport, dport), (ip, tcp), "{src:?} -> {dst:?}");
        }
    }

    /// The IPv6 table of the Microsoft verification suite (first and last rows).
    #[test]
    fn microsoft_ipv6_vectors() {
        let hex = |s: &str| -> [u8; 16] {
            let mut a = [0u8; 16];
            let mut i = 0;
            for part in s.split(':') {
                let v = u16::from_str_radix(part, 16).unwrap();
                a[i..i + 2].copy_from_slice(&v.to_be_bytes());
                i += 2;
            }
            a
        };
        for (dst, dport, src, sport, ip, tcp) in MS_IPV6 {
            let mut b = Vec::new();
            b.extend_from_slice(&hex(src));
            b.extend_from_slice(&hex(dst));
            assert_eq!(toeplitz(&MS_KEY, &b), ip, "{src} -> {dst}");
            b.extend_from_slice(&sport.to_be_bytes());
            b.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz(&MS_KEY, &b), tcp, "{src} -> {dst} TCP");
        }
    }

    /// A TCP/IPv4 frame (20-byte IP header, 20-byte TCP header) from
    /// `src`:`sport` to `dst`:`dport`, or an ESP one (protocol 50, SPI the
    /// first word after the IP header) when `spi` is given.
    fn frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, spi: Option<u32>) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[23] = if spi.is_some() { 50 } else { 6 };
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        match spi {
            Some(spi) => f[34..38].copy_from_slice(&spi.to_be_bytes()),
            None => {
                f[34..36].copy_from_slice(&sport.to_be_bytes());
                f[36..38].copy_from_slice(&dport.to_be_bytes());
                f[46] = 0x50;
            }
        }
        f
    }

    fn hash_of(func: HashFn, fields: u32, f: &[u8]) -> (u32, u8) {
        let h = RxHash {
            rqtn: 1,
            func,
            key: MS_KEY,
            ipv6: false,
            udp: false,
            fields,
        };
        let hd = super::super::frame::parse(f);
        let mut buf = [0u8; 36];
        let (n, ty) = input(f, &hd, &h, &mut buf);
        let v = match func {
            HashFn::Toeplitz { .. } => toeplitz(&h.key, &buf[..n]),
            HashFn::InvertedXor8 => inverted_xor8(&buf[..n]),
        };
        (v, ty)
    }

    #[test]
    fn symmetric_toeplitz_hashes_both_directions_alike() {
        let all = sel::SRC_IP | sel::DST_IP | sel::L4_SPORT | sel::L4_DPORT;
        let a = frame([66, 9, 149, 187], [161, 142, 100, 80], 2794, 1766, None);
        let b = frame([161, 142, 100, 80], [66, 9, 149, 187], 1766, 2794, None);
        let sym = HashFn::Toeplitz { symmetric: true };
        let plain = HashFn::Toeplitz { symmetric: false };
        assert_eq!(hash_of(sym, all, &a), hash_of(sym, all, &b));
        // Microsoft's vector for a (src 66.9.149.187:2794 -> 161.142.100.80:1766).
        assert_eq!(hash_of(plain, all, &a).0, 0x51ccc178);
        assert_ne!(hash_of(plain, all, &a).0, hash_of(plain, all, &b).0);
        // IPv4 | TCP in rss_hash_type.
        assert_eq!(hash_of(sym, all, &a).1, 1 << 2 | 1 << 6);
    }

    #[test]
    fn inverted_xor8_and_the_ipsec_spi() {
        let ips = sel::SRC_IP | sel::DST_IP;
        let f = frame([1, 2, 3, 4], [5, 6, 7, 8], 0, 0, Some(0x1122_3344));
        // XOR of 1..8 and 0x11, 0x22, 0x33, 0x44, inverted, 8 bits.
        let x = [1u8, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x22, 0x33, 0x44]
            .iter()
            .fold(0u8, |a, b| a ^ b);
        let (v, ty) = hash_of(HashFn::InvertedXor8, ips | sel::IPSEC_SPI, &f);
        assert_eq!(v, !x as u32);
        // IPv4 with the IPsec L4 type (3) in bits 7:6.
        assert_eq!(ty, 1 << 2 | 3 << 6);
        // Nothing selected: no input, hash of nothing.
        assert_eq!(hash_of(HashFn::InvertedXor8, 0, &f).1, 0);
    }
}
