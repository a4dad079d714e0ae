// Microsoft's "Verifying the RSS Hash Calculation" (Windows hardware
// documentation, NDIS RSS): the suite's Toeplitz key and its tables, typed
// in once. Read by the steering tests (as `common::ms_rss`) and by the
// model's Toeplitz unit tests (`include!` in sim/src/datapath/rss.rs); plain
// comments only, for `include!`.

/// The suite's 40-byte key.
pub const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// A row of the IPv4 table: (destination, destination port, source, source
/// port, IP-only hash, IP+TCP hash).
pub type MsV4 = ([u8; 4], u16, [u8; 4], u16, u32, u32);

/// The IPv4 table.
#[rustfmt::skip]
pub const MS_IPV4: [MsV4; 5] = [
    ([161, 142, 100, 80], 1766, [66, 9, 149, 187], 2794, 0x323e8fc2, 0x51ccc178),
    ([65, 69, 140, 83], 4739, [199, 92, 111, 2], 14230, 0xd718262a, 0xc626b0ea),
    ([12, 22, 207, 184], 38024, [24, 19, 198, 95], 12898, 0xd2d0a5de, 0x5c2b394a),
    ([209, 142, 163, 6], 2217, [38, 27, 205, 30], 48228, 0x82989176, 0xafc7327f),
    ([202, 188, 127, 2], 1303, [153, 39, 163, 191], 44251, 0x5d1809c5, 0x10e828a2),
];

/// A row of the IPv6 table, addresses as the suite writes them.
pub type MsV6 = (&'static str, u16, &'static str, u16, u32, u32);

/// The IPv6 table (its first and last rows).
#[rustfmt::skip]
pub const MS_IPV6: [MsV6; 3] = [
    ("3ffe:2501:0200:0003:0000:0000:0000:0001", 1766, "3ffe:2501:0200:1fff:0000:0000:0000:0007", 2794, 0x2cc18cd5, 0x40207d3d),
    ("ff02:0000:0000:0000:0000:0000:0000:0001", 4739, "3ffe:0501:0008:0000:0260:97ff:fe40:efab", 14230, 0x0f0c461c, 0xdde51bbf),
    ("fe80:0000:0000:0000:0200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:0003:0200:f8ff:fe21:67cf", 44251, 0x4b61e985, 0x02d1feef),
];
