//! IPv4/IPv6 TCP/UDP frames for the offload tests, and an independent
//! checker (RFC 791 / 793 / 768 / 8200 checksums with pseudo-headers).

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// What a test frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub v6: bool,
    pub proto: u8,
}

pub const KINDS: [Kind; 4] = [
    Kind {
        v6: false,
        proto: TCP,
    },
    Kind {
        v6: false,
        proto: UDP,
    },
    Kind {
        v6: true,
        proto: TCP,
    },
    Kind {
        v6: true,
        proto: UDP,
    },
];

impl Kind {
    pub fn l3_len(self) -> usize {
        if self.v6 { 40 } else { 20 }
    }
    pub fn l4_len(self) -> usize {
        if self.proto == TCP { 20 } else { 8 }
    }
    pub fn headers(self) -> usize {
        14 + self.l3_len() + self.l4_len()
    }
}

/// Ones' complement sum of `b` (16-bit big-endian words) added to `acc`.
pub fn sum(mut acc: u32, b: &[u8]) -> u32 {
    let mut it = b.chunks_exact(2);
    for w in &mut it {
        acc += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    if let [x] = it.remainder() {
        acc += (*x as u32) << 8;
    }
    acc
}

pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// A frame of `kind` with `payload` bytes (pattern from `seq`), TCP
/// sequence `tcp_seq`; checksums left ZERO (the device fills them) when
/// `with_csums` is false, else computed here.
pub fn build(
    kind: Kind,
    dst: [u8; 6],
    src: [u8; 6],
    payload: usize,
    seq: u32,
    with_csums: bool,
) -> Vec<u8> {
    let l3 = kind.l3_len();
    let l4 = kind.l4_len();
    let mut f = vec![0u8; 14 + l3 + l4 + payload];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    let ip = 14;
    let tp = ip + l3;
    let l4_total = l4 + payload;
    if kind.v6 {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[ip] = 0x60;
        f[ip + 4..ip + 6].copy_from_slice(&(l4_total as u16).to_be_bytes());
        f[ip + 6] = kind.proto;
        f[ip + 7] = 64;
        f[ip + 8..ip + 24].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f[ip + 24..ip + 40].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[ip] = 0x45;
        f[ip + 2..ip + 4].copy_from_slice(&((l3 + l4_total) as u16).to_be_bytes());
        f[ip + 4..ip + 6].copy_from_slice(&(0x1000u16.wrapping_add(seq as u16)).to_be_bytes());
        f[ip + 6] = 0x40; // DF
        f[ip + 8] = 64;
        f[ip + 9] = kind.proto;
        f[ip + 12..ip + 16].copy_from_slice(&[10, 0, 0, 1]);
        f[ip + 16..ip + 20].copy_from_slice(&[10, 0, 0, 2]);
    }
    f[tp..tp + 2].copy_from_slice(&4000u16.to_be_bytes());
    f[tp + 2..tp + 4].copy_from_slice(&5201u16.to_be_bytes());
    if kind.proto == TCP {
        f[tp + 4..tp + 8].copy_from_slice(&seq.wrapping_mul(7919).to_be_bytes());
        f[tp + 8..tp + 12].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        f[tp + 12] = 0x50;
        f[tp + 13] = 0x18; // PSH | ACK
        f[tp + 14..tp + 16].copy_from_slice(&0xffffu16.to_be_bytes());
    } else {
        f[tp + 4..tp + 6].copy_from_slice(&(l4_total as u16).to_be_bytes());
    }
    for (i, b) in f[tp + l4..].iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(31).wrapping_add(seq) as u8;
    }
    if with_csums {
        fix_csums(&mut f, kind);
    }
    f
}

/// Offset of the L4 checksum field.
pub fn l4_csum_at(kind: Kind) -> usize {
    14 + kind.l3_len() + if kind.proto == TCP { 16 } else { 6 }
}

fn pseudo(f: &[u8], kind: Kind, l4_len: usize) -> u32 {
    let ip = 14;
    let mut acc = if kind.v6 {
        sum(0, &f[ip + 8..ip + 40])
    } else {
        sum(0, &f[ip + 12..ip + 20])
    };
    acc += kind.proto as u32;
    acc += (l4_len as u32) & 0xffff;
    acc += (l4_len as u32) >> 16;
    acc
}

/// Compute the IPv4 header and L4 checksums in place.
pub fn fix_csums(f: &mut [u8], kind: Kind) {
    let ip = 14;
    if !kind.v6 {
        f[ip + 10..ip + 12].fill(0);
        let c = fold(sum(0, &f[ip..ip + 20]));
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    }
    let tp = ip + kind.l3_len();
    let at = l4_csum_at(kind);
    f[at..at + 2].fill(0);
    let l4_len = f.len() - tp;
    let mut c = fold(sum(pseudo(f, kind, l4_len), &f[tp..]));
    if kind.proto == UDP && c == 0 {
        c = 0xffff;
    }
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Whether the IPv4 header checksum (true for IPv6) and the L4 checksum
/// of a received frame are right. The frame's own length fields decide
/// where it ends (the wire may pad short frames).
pub fn csums_ok(f: &[u8], kind: Kind) -> (bool, bool) {
    let ip = 14;
    let (l3_ok, end) = if kind.v6 {
        let pl = u16::from_be_bytes([f[ip + 4], f[ip + 5]]) as usize;
        (true, ip + 40 + pl)
    } else {
        let total = u16::from_be_bytes([f[ip + 2], f[ip + 3]]) as usize;
        (fold(sum(0, &f[ip..ip + 20])) == 0, ip + total)
    };
    let tp = ip + kind.l3_len();
    let f = &f[..end.min(f.len())];
    let l4_ok = fold(sum(pseudo(f, kind, f.len() - tp), &f[tp..])) == 0;
    (l3_ok, l4_ok)
}
