//! Internet checksums (RFC 1071) as the adapter's offload engines compute
//! them: the IPv4 header checksum and the TCP/UDP checksum with the IPv4 or
//! IPv6 pseudo header (RFC 793, 768, 8200 section 8.1). Transmit fills them
//! in when the Ethernet segment's `cs_flags` ask; receive checks them for
//! the CQE's L3_OK / L4_OK flags and reports the raw sum (`check_sum`).
//! Every offset comes from [`super::frame::parse`], which bounds-checked it.
#![deny(unsafe_code)]

use super::frame::{Headers, L3, L4};

/// Ones'-complement sum of `data` added to `acc`, folded to 16 bits. Sums
/// big-endian 32-bit words into 64 bits (the same sum once folded: 2^16
/// is 1 modulo 0xffff), then the 16-bit and 8-bit tail.
pub fn add(acc: u32, data: &[u8]) -> u32 {
    let mut wide = acc as u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        wide += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    if rest.len() >= 2 {
        wide += u16::from_be_bytes([rest[0], rest[1]]) as u64;
    }
    if rest.len() % 2 == 1 {
        wide += (rest[rest.len() - 1] as u64) << 8;
    }
    // Down to 16 bits without losing carries, so callers can add a few
    // more 16-bit quantities to the result without overflowing.
    while wide > 0xffff {
        wide = (wide & 0xffff) + (wide >> 16);
    }
    wide as u32
}

/// Fold a 32-bit accumulator to 16 bits (ones' complement).
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Pseudo header sum for the L4 segment of `h` (`len` bytes of L4).
fn pseudo(f: &[u8], h: &Headers, len: usize) -> u32 {
    let l3 = h.l2_len;
    match h.l3 {
        L3::Ipv4 => {
            let acc = add(0, &f[l3 + 12..l3 + 20]);
            acc + h.ip_proto as u32 + len as u32
        }
        L3::Ipv6 => {
            let acc = add(0, &f[l3 + 8..l3 + 40]);
            acc + h.ip_proto as u32 + (len as u32 >> 16) + (len as u32 & 0xffff)
        }
        L3::None => 0,
    }
}

/// Byte offset of the checksum field of the L4 header.
fn l4_field(h: &Headers) -> Option<usize> {
    match h.l4 {
        L4::Tcp => Some(h.l4_off() + 16),
        L4::Udp => Some(h.l4_off() + 6),
        L4::None => None,
    }
}

/// Write the IPv4 header checksum (no-op for other frames).
pub fn fill_ipv4(f: &mut [u8], h: &Headers) {
    if h.l3 != L3::Ipv4 {
        return;
    }
    let l3 = h.l2_len;
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    let c = !fold(add(0, &f[l3..l3 + h.l3_len]));
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Write the TCP or UDP checksum (no-op for other frames).
pub fn fill_l4(f: &mut [u8], h: &Headers) {
    let Some(at) = l4_field(h) else {
        return;
    };
    let (start, end) = (h.l4_off(), h.ip_end);
    if at + 2 > end {
        return;
    }
    f[at] = 0;
    f[at + 1] = 0;
    let mut c = !fold(add(pseudo(f, h, end - start), &f[start..end]));
    if c == 0 && h.l4 == L4::Udp {
        // UDP: 0 means "no checksum"; a computed 0 is sent as all ones.
        c = 0xffff;
    }
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// The sums the receive engine needs, in one pass over the datagram:
/// the L3 header and the L4 segment (or, without IP, everything after L2).
#[derive(Clone, Copy, Debug)]
pub struct Sums {
    l3: u32,
    rest: u32,
}

impl Sums {
    pub fn of(f: &[u8], h: &Headers) -> Sums {
        if h.l3 == L3::None {
            return Sums {
                l3: 0,
                rest: add(0, f.get(h.l2_len..).unwrap_or(&[])),
            };
        }
        let l4 = h.l4_off();
        Sums {
            l3: add(0, &f[h.l2_len..l4]),
            rest: add(0, &f[l4..h.ip_end.max(l4)]),
        }
    }

    /// The CQE's `check_sum`: the ones'-complement sum of everything after
    /// the L2 header up to the end of the IP datagram (or of the frame,
    /// without IP).
    pub fn raw(&self) -> u16 {
        fold(fold(self.l3) as u32 + fold(self.rest) as u32)
    }

    /// Whether the IPv4 header checksum is right (IPv6 has none: true).
    pub fn l3_ok(&self, h: &Headers) -> bool {
        match h.l3 {
            L3::Ipv4 => fold(self.l3) == 0xffff,
            L3::Ipv6 => true,
            L3::None => false,
        }
    }

    /// Whether the TCP/UDP checksum is right (UDP over IPv4 without a
    /// checksum counts as right, as the receiver may not check it).
    pub fn l4_ok(&self, f: &[u8], h: &Headers) -> bool {
        let Some(at) = l4_field(h) else {
            return false;
        };
        let (start, end) = (h.l4_off(), h.ip_end);
        if at + 2 > end {
            return false;
        }
        if h.l4 == L4::Udp && h.l3 == L3::Ipv4 && f[at] == 0 && f[at + 1] == 0 {
            return true;
        }
        fold(fold(self.rest) as u32 + fold(pseudo(f, h, end - start)) as u32) == 0xffff
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::parse;
    use super::*;

    /// The IPv4 header of RFC 1071's companion example (Wikipedia "IPv4
    /// header checksum"): 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
    #[test]
    fn ipv4_header_checksum_matches_the_worked_example() {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ]);
        f.resize(14 + 0x73, 0);
        let h = parse(&f);
        fill_ipv4(&mut f, &h);
        assert_eq!(&f[24..26], &[0xb8, 0x61]);
        assert!(Sums::of(&f, &h).l3_ok(&h));
        f[24] ^= 1;
        assert!(!Sums::of(&f, &h).l3_ok(&h));
    }

    /// UDP over IPv4, by hand: 10.0.0.1:1 -> 10.0.0.2:2, payload "ab".
    /// Pseudo header 0a00+0001+0a00+0002+0011+000a = 0x141e; UDP header
    /// 0001+0002+000a; payload 0x6162: sum 0x758d -> checksum 0x8a72.
    /// A DHCP discover: 0.0.0.0 -> 255.255.255.255, whose pseudo header
    /// alone sums to 0xffff_ffff unfolded (this once overflowed).
    #[test]
    fn all_ones_addresses_do_not_overflow() {
        let mut f = vec![0u8; 14 + 20 + 8 + 300];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&328u16.to_be_bytes());
        f[14 + 9] = 17;
        f[30..34].copy_from_slice(&[0xff; 4]);
        f[34..38].copy_from_slice(&[0, 68, 0, 67]);
        f[38..40].copy_from_slice(&308u16.to_be_bytes());
        f[42..].fill(0xff);
        let h = parse(&f);
        fill_ipv4(&mut f, &h);
        fill_l4(&mut f, &h);
        let s = Sums::of(&f, &h);
        assert!(s.l3_ok(&h) && s.l4_ok(&f, &h));
        // The same over IPv6 with all-ones addresses and payload.
        let mut g = vec![0xffu8; 14 + 40 + 8 + 300];
        g[12..14].copy_from_slice(&[0x86, 0xdd]);
        g[14] = 0x60;
        g[18..20].copy_from_slice(&308u16.to_be_bytes());
        g[20] = 17;
        g[58..60].copy_from_slice(&308u16.to_be_bytes());
        let h = parse(&g);
        fill_l4(&mut g, &h);
        let s = Sums::of(&g, &h);
        assert!(s.l3_ok(&h) && s.l4_ok(&g, &h));
    }

    #[test]
    fn udp_checksum_by_hand() {
        let mut f = vec![0u8; 14 + 20 + 8 + 2];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&30u16.to_be_bytes());
        f[14 + 9] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..42].copy_from_slice(&[0, 1, 0, 2, 0, 10, 0, 0]);
        f[42..44].copy_from_slice(b"ab");
        let h = parse(&f);
        fill_l4(&mut f, &h);
        assert_eq!(&f[40..42], &[0x8a, 0x72]);
        let s = Sums::of(&f, &h);
        assert!(
            s.l4_ok(&f, &h) && !s.l3_ok(&h),
            "IPv4 header checksum not filled"
        );
        // check_sum: everything after the Ethernet header, by hand: the IPv4
        // header words 4500+001e+0000+0000+0011+0000+0a00+0001+0a00+0002 =
        // 0x6932, plus the UDP words 0x758d - 0x141e (pseudo) + 0x8a72.
        let ip = 0x4500 + 0x001e + 0x0011 + 0x0a00 + 0x0001 + 0x0a00 + 0x0002;
        let udp = 0x0001 + 0x0002 + 0x000a + 0x8a72 + 0x6162;
        assert_eq!(s.raw(), fold(ip + udp));
        f[43] ^= 0x10;
        assert!(!Sums::of(&f, &h).l4_ok(&f, &h));
    }
}
