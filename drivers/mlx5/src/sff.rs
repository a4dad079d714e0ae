//! A transceiver's EEPROM decoded into typed fields: the identifier
//! (SFF-8024 rev 4.11 Table 4-1), SFP serial ID at A0h and diagnostics at
//! A2h (SFF-8472 rev 12.4 Tables 4-1, 9-5, 9-11), QSFP lower page, upper
//! page 00h and page 03h (SFF-8636 rev 2.10a Tables 6-2, 6-14, 6-26).
//!
//! The bytes come from the module (untrusted): a short page, an
//! identifier this decoder does not know, or a check code that does not
//! match is a typed [`SffError`], never a panic.

use alloc::string::String;
use core::fmt;

/// SFF-8024 Table 4-1 identifiers this decoder knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Identifier {
    /// 03h: SFP/SFP+/SFP28 (memory per SFF-8472).
    Sfp,
    /// 0Ch: QSFP (INF-8438).
    Qsfp,
    /// 0Dh: QSFP+ (SFF-8636).
    QsfpPlus,
    /// 11h: QSFP28 (SFF-8636).
    Qsfp28,
}

impl Identifier {
    pub fn of(b: u8) -> Option<Identifier> {
        Some(match b {
            0x03 => Identifier::Sfp,
            0x0c => Identifier::Qsfp,
            0x0d => Identifier::QsfpPlus,
            0x11 => Identifier::Qsfp28,
            _ => return None,
        })
    }

    pub fn is_sfp(self) -> bool {
        self == Identifier::Sfp
    }

    pub fn name(self) -> &'static str {
        match self {
            Identifier::Sfp => "SFP/SFP+/SFP28",
            Identifier::Qsfp => "QSFP",
            Identifier::QsfpPlus => "QSFP+",
            Identifier::Qsfp28 => "QSFP28",
        }
    }
}

/// Why the bytes do not decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SffError {
    /// A page shorter than its layout (`page`: 0 for A0h / page 00h, 0xa2
    /// for A2h, 3 for page 03h).
    Truncated { page: u8, len: usize, need: usize },
    /// Byte 0 names a form factor this decoder does not know.
    UnknownIdentifier(u8),
    /// A check code does not match the sum of the bytes it covers.
    BadChecksum {
        field: &'static str,
        offset: usize,
        stored: u8,
        computed: u8,
    },
}

impl fmt::Display for SffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SffError::Truncated { page, len, need } => {
                write!(f, "page {page:#04x} truncated: {len} bytes of {need}")
            }
            SffError::UnknownIdentifier(b) => write!(f, "unknown identifier {b:#04x} (SFF-8024)"),
            SffError::BadChecksum {
                field,
                offset,
                stored,
                computed,
            } => write!(
                f,
                "bad {field} at byte {offset}: stored {stored:#04x}, computed {computed:#04x}"
            ),
        }
    }
}

/// Live readings and [high alarm, low alarm, high warning, low warning]
/// thresholds in SFF units: temperature 1/256 degC (signed), Vcc 100 uV,
/// TX bias 2 uA, optical power 0.1 uW (lane 1 on QSFP).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Diagnostics {
    pub temperature: i16,
    pub vcc: u16,
    pub tx_bias: u16,
    pub tx_power: u16,
    pub rx_power: u16,
    pub temp_thresholds: [i16; 4],
    pub vcc_thresholds: [u16; 4],
    pub bias_thresholds: [u16; 4],
    pub tx_power_thresholds: [u16; 4],
    pub rx_power_thresholds: [u16; 4],
}

/// Cable length or reach (what the module states).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reach {
    /// Copper cable or 1000BASE-T reach in metres.
    CopperM(u16),
    /// OM3 multimode fibre in metres.
    Om3M(u16),
    Unknown,
}

/// What `traninfo` shows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transceiver {
    pub identifier: Identifier,
    /// SFF-8024 Table 4-3 connector code.
    pub connector: u8,
    pub vendor: String,
    pub oui: [u8; 3],
    pub pn: String,
    pub rev: String,
    pub sn: String,
    /// YYMMDD (and lot code) as the module writes it.
    pub date: String,
    /// The media/compliance the module claims, e.g. `1000BASE-T`.
    pub media: &'static str,
    /// Nominal signalling rate in MBd.
    pub nominal_mbd: u32,
    /// Laser wavelength (nm) of an optical module.
    pub wavelength_nm: Option<u16>,
    pub reach: Reach,
    pub diagnostics: Option<Diagnostics>,
}

/// SFF-8472 Table 4-1 (A0h) offsets.
pub mod sfp {
    pub const IDENTIFIER: usize = 0;
    pub const CONNECTOR: usize = 2;
    /// Ethernet 10G compliance (byte 3), 1G (byte 6), SFP+ cable (byte 8).
    pub const ETH_10G: usize = 3;
    pub const ETH_1G: usize = 6;
    pub const CABLE_TECH: usize = 8;
    pub const BR_NOMINAL: usize = 12;
    pub const LENGTH_OM4_COPPER: usize = 18;
    pub const LENGTH_OM3: usize = 19;
    pub const VENDOR_NAME: usize = 20;
    pub const TRANSCEIVER_EXT: usize = 36;
    pub const VENDOR_OUI: usize = 37;
    pub const VENDOR_PN: usize = 40;
    pub const VENDOR_REV: usize = 56;
    pub const WAVELENGTH: usize = 60;
    pub const CC_BASE: usize = 63;
    pub const BR_MAX: usize = 66;
    pub const VENDOR_SN: usize = 68;
    pub const DATE_CODE: usize = 84;
    /// Bit 6: digital diagnostics implemented (A2h answers).
    pub const DIAG_TYPE: usize = 92;
    pub const CC_EXT: usize = 95;
    pub const LEN: usize = 96;
    /// A2h (Tables 9-5, 9-11).
    pub const A2_THRESHOLDS: usize = 0;
    pub const A2_CC_DMI: usize = 95;
    pub const A2_LIVE: usize = 96;
    pub const A2_LEN: usize = 106;
}

/// SFF-8636 lower page (Table 6-2) and upper page 00h (Table 6-14)
/// offsets, as addressed.
pub mod qsfp {
    pub const IDENTIFIER: usize = 0;
    pub const STATUS: usize = 2;
    pub const FLAT_MEM: u8 = 1 << 2;
    pub const TEMPERATURE: usize = 22;
    pub const VCC: usize = 26;
    pub const RX_POWER: usize = 34;
    pub const TX_BIAS: usize = 42;
    pub const TX_POWER: usize = 50;
    pub const CONNECTOR: usize = 130;
    pub const COMPLIANCE: usize = 131;
    pub const BR_NOMINAL: usize = 140;
    pub const LENGTH_OM3: usize = 143;
    pub const LENGTH_COPPER: usize = 146;
    pub const DEVICE_TECH: usize = 147;
    pub const VENDOR_NAME: usize = 148;
    pub const VENDOR_OUI: usize = 165;
    pub const VENDOR_PN: usize = 168;
    pub const VENDOR_REV: usize = 184;
    pub const WAVELENGTH: usize = 186;
    pub const CC_BASE: usize = 191;
    pub const LINK_CODES: usize = 192;
    pub const VENDOR_SN: usize = 196;
    pub const DATE_CODE: usize = 212;
    pub const BR_NOMINAL_EXT: usize = 222;
    pub const CC_EXT: usize = 223;
    pub const LEN: usize = 224;
    /// Page 03h thresholds (Table 6-26), as addressed (128-255).
    pub const P3_TEMP: usize = 128;
    pub const P3_VCC: usize = 144;
    pub const P3_RX_POWER: usize = 176;
    pub const P3_TX_BIAS: usize = 184;
    pub const P3_TX_POWER: usize = 192;
    pub const P3_LEN: usize = 200;
}

/// Low 8 bits of the sum: every SFF check code.
pub fn check_code(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
}

fn check(b: &[u8], from: usize, at: usize, field: &'static str) -> Result<(), SffError> {
    let computed = check_code(&b[from..at]);
    if computed != b[at] {
        return Err(SffError::BadChecksum {
            field,
            offset: at,
            stored: b[at],
            computed,
        });
    }
    Ok(())
}

fn need(b: &[u8], page: u8, n: usize) -> Result<(), SffError> {
    if b.len() < n {
        return Err(SffError::Truncated {
            page,
            len: b.len(),
            need: n,
        });
    }
    Ok(())
}

/// Space-padded ASCII, trailing blanks dropped; bytes outside printable
/// ASCII shown as `?`.
fn ascii(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect();
    String::from(s.trim_end())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn thresholds(b: &[u8], at: usize) -> [u16; 4] {
    [0, 1, 2, 3].map(|i| be16(b, at + 2 * i))
}

/// SFF-8024 Table 4-4 extended compliance codes the modules carry.
fn extended_media(code: u8) -> Option<&'static str> {
    Some(match code {
        0x01 => "100G AOC",
        0x02 => "100GBASE-SR4",
        0x03 => "100GBASE-LR4",
        0x08 => "100G ACC",
        0x0b => "100GBASE-CR4",
        0x0c => "25GBASE-CR CA-25G-S",
        0x0d => "25GBASE-CR CA-25G-N",
        0x40 => "200GBASE-CR4",
        _ => return None,
    })
}

/// The module's page 00h (A0h on SFP: bytes 0-255; QSFP: lower page and
/// upper page 00h), and A2h (SFP with diagnostics) or page 03h (paged
/// QSFP, as bytes 128-255) when read.
pub fn decode(
    low: &[u8],
    a2: Option<&[u8]>,
    page3: Option<&[u8]>,
) -> Result<Transceiver, SffError> {
    need(low, 0, 1)?;
    let id = Identifier::of(low[0]).ok_or(SffError::UnknownIdentifier(low[0]))?;
    if id.is_sfp() {
        decode_sfp(low, a2)
    } else {
        decode_qsfp(id, low, page3)
    }
}

fn decode_sfp(b: &[u8], a2: Option<&[u8]>) -> Result<Transceiver, SffError> {
    use sfp::*;
    need(b, 0, LEN)?;
    check(b, 0, CC_BASE, "CC_BASE")?;
    check(b, 64, CC_EXT, "CC_EXT")?;
    let cable = b[CABLE_TECH] & 0x0c != 0;
    let media = if let Some(m) = extended_media(b[TRANSCEIVER_EXT]) {
        m
    } else if b[ETH_10G] & 0x10 != 0 {
        "10GBASE-SR"
    } else if b[ETH_10G] & 0x20 != 0 {
        "10GBASE-LR"
    } else if b[ETH_1G] & 0x08 != 0 {
        "1000BASE-T"
    } else if b[ETH_1G] & 0x01 != 0 {
        "1000BASE-SX"
    } else if b[CABLE_TECH] & 0x04 != 0 {
        "10GBASE-CR"
    } else {
        "unknown"
    };
    let nominal_mbd = match b[BR_NOMINAL] {
        0xff => u32::from(b[BR_MAX]) * 250,
        n => u32::from(n) * 100,
    };
    let reach = if cable || b[ETH_1G] & 0x08 != 0 {
        Reach::CopperM(b[LENGTH_OM4_COPPER].into())
    } else if b[LENGTH_OM3] != 0 {
        Reach::Om3M(u16::from(b[LENGTH_OM3]) * 10)
    } else {
        Reach::Unknown
    };
    let diagnostics = match a2 {
        Some(d) if b[DIAG_TYPE] & 0x40 != 0 => {
            need(d, 0xa2, A2_LEN)?;
            check(d, 0, A2_CC_DMI, "CC_DMI")?;
            let t = thresholds(d, A2_THRESHOLDS);
            Some(Diagnostics {
                temperature: be16(d, A2_LIVE) as i16,
                vcc: be16(d, A2_LIVE + 2),
                tx_bias: be16(d, A2_LIVE + 4),
                tx_power: be16(d, A2_LIVE + 6),
                rx_power: be16(d, A2_LIVE + 8),
                temp_thresholds: t.map(|v| v as i16),
                vcc_thresholds: thresholds(d, A2_THRESHOLDS + 8),
                bias_thresholds: thresholds(d, A2_THRESHOLDS + 16),
                tx_power_thresholds: thresholds(d, A2_THRESHOLDS + 24),
                rx_power_thresholds: thresholds(d, A2_THRESHOLDS + 32),
            })
        }
        _ => None,
    };
    Ok(Transceiver {
        identifier: Identifier::Sfp,
        connector: b[CONNECTOR],
        vendor: ascii(&b[VENDOR_NAME..VENDOR_NAME + 16]),
        oui: [b[VENDOR_OUI], b[VENDOR_OUI + 1], b[VENDOR_OUI + 2]],
        pn: ascii(&b[VENDOR_PN..VENDOR_PN + 16]),
        rev: ascii(&b[VENDOR_REV..VENDOR_REV + 4]),
        sn: ascii(&b[VENDOR_SN..VENDOR_SN + 16]),
        date: ascii(&b[DATE_CODE..DATE_CODE + 8]),
        media,
        nominal_mbd,
        wavelength_nm: (!cable && b[ETH_1G] & 0x08 == 0 && be16(b, WAVELENGTH) != 0)
            .then(|| be16(b, WAVELENGTH)),
        reach,
        diagnostics,
    })
}

fn decode_qsfp(id: Identifier, b: &[u8], page3: Option<&[u8]>) -> Result<Transceiver, SffError> {
    use qsfp::*;
    need(b, 0, LEN)?;
    check(b, 128, CC_BASE, "CC_BASE")?;
    check(b, LINK_CODES, CC_EXT, "CC_EXT")?;
    let c = b[COMPLIANCE];
    let media = if c & 0x80 != 0 {
        extended_media(b[LINK_CODES]).unwrap_or("unknown")
    } else if c & 0x08 != 0 {
        "40GBASE-CR4"
    } else if c & 0x04 != 0 {
        "40GBASE-SR4"
    } else if c & 0x02 != 0 {
        "40GBASE-LR4"
    } else {
        "unknown"
    };
    // Device technology bits 7-4 at or above 1010b: copper.
    let copper = b[DEVICE_TECH] >> 4 >= 0x0a;
    let nominal_mbd = match b[BR_NOMINAL] {
        0xff => u32::from(b[BR_NOMINAL_EXT]) * 250,
        n => u32::from(n) * 100,
    };
    let diagnostics = match page3 {
        Some(p) if b[STATUS] & FLAT_MEM == 0 => {
            // Page 03h as addressed from 128.
            need(p, 3, P3_LEN - 128)?;
            let th = |at: usize| thresholds(p, at - 128);
            Some(Diagnostics {
                temperature: be16(b, TEMPERATURE) as i16,
                vcc: be16(b, VCC),
                tx_bias: be16(b, TX_BIAS),
                tx_power: be16(b, TX_POWER),
                rx_power: be16(b, RX_POWER),
                temp_thresholds: th(P3_TEMP).map(|v| v as i16),
                vcc_thresholds: th(P3_VCC),
                bias_thresholds: th(P3_TX_BIAS),
                tx_power_thresholds: th(P3_TX_POWER),
                rx_power_thresholds: th(P3_RX_POWER),
            })
        }
        _ => None,
    };
    Ok(Transceiver {
        identifier: id,
        connector: b[CONNECTOR],
        vendor: ascii(&b[VENDOR_NAME..VENDOR_NAME + 16]),
        oui: [b[VENDOR_OUI], b[VENDOR_OUI + 1], b[VENDOR_OUI + 2]],
        pn: ascii(&b[VENDOR_PN..VENDOR_PN + 16]),
        rev: ascii(&b[VENDOR_REV..VENDOR_REV + 2]),
        sn: ascii(&b[VENDOR_SN..VENDOR_SN + 16]),
        date: ascii(&b[DATE_CODE..DATE_CODE + 8]),
        media,
        nominal_mbd,
        wavelength_nm: (!copper).then(|| be16(b, WAVELENGTH) / 20),
        reach: if copper {
            Reach::CopperM(b[LENGTH_COPPER].into())
        } else if b[LENGTH_OM3] != 0 {
            Reach::Om3M(u16::from(b[LENGTH_OM3]) * 2)
        } else {
            Reach::Unknown
        },
        diagnostics,
    })
}

/// SFF-8024 Table 4-3 connector names.
pub fn connector_name(c: u8) -> &'static str {
    match c {
        0x07 => "LC",
        0x0c => "MPO 1x12",
        0x21 => "Copper pigtail",
        0x22 => "RJ45",
        0x23 => "No separable connector",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A 1000BASE-T SFP (Finisar FCLF8522P2BTL), A0h bytes 0-95 written by
    /// hand at the SFF-8472 Table 4-1 offsets; check codes summed by hand.
    #[rustfmt::skip]
    const COPPER_1G: [u8; 96] = [
        0x03, 0x04, 0x22,                   // 0 identifier SFP, 1 ext id, 2 connector RJ45
        0, 0, 0, 0x08, 0, 0, 0, 0,          // 3-10 compliance: byte 6 bit 3 1000BASE-T
        0x01, 0x0c, 0,                      // 11 encoding 8B/10B, 12 BR 1.2 GBd, 13
        0, 0, 0, 0, 100, 0,                 // 14-19 lengths: 18 copper 100 m
        b'F', b'I', b'N', b'I', b'S', b'A', b'R', b' ', // 20-35 vendor name
        b'C', b'O', b'R', b'P', b'.', b' ', b' ', b' ',
        0,                                  // 36 extended compliance
        0x00, 0x90, 0x65,                   // 37-39 vendor OUI
        b'F', b'C', b'L', b'F', b'8', b'5', b'2', b'2', // 40-55 vendor PN
        b'P', b'2', b'B', b'T', b'L', b' ', b' ', b' ',
        b'A', b' ', b' ', b' ',             // 56-59 vendor rev
        0, 0, 0,                            // 60-61 wavelength, 62
        0xd6,                               // 63 CC_BASE
        0x00, 0x10, 0, 0,                   // 64-65 options, 66 BR max, 67
        b'P', b'U', b'Q', b'3', b'L', b'Q', b'5', b' ', // 68-83 vendor SN
        b' ', b' ', b' ', b' ', b' ', b' ', b' ', b' ',
        b'1', b'9', b'0', b'3', b'1', b'8', b' ', b' ', // 84-91 date code
        0, 0, 0,                            // 92 diag type, 93, 94
        0xa1,                               // 95 CC_EXT
    ];

    /// A 100GBASE-CR4 QSFP28 DAC (Mellanox MCP1600-C001): the lower page
    /// (byte 0 identifier, byte 2 Flat_mem) and upper page 00h at the
    /// SFF-8636 Table 6-14 offsets, by hand.
    fn dac_100g() -> Vec<u8> {
        let mut b = alloc::vec![0u8; 256];
        b[0] = 0x11; // identifier QSFP28
        b[2] = 0x04; // status: flat memory
        #[rustfmt::skip]
        let upper: [u8; 96] = [
            0x11, 0x00, 0x23,               // 128 identifier, 129 ext id, 130 no separable connector
            0x80, 0, 0, 0, 0, 0, 0, 0,      // 131-138 compliance: bit 7 extended
            0x07, 0xff, 0,                  // 139 encoding, 140 BR (see 222), 141
            0, 0, 0, 0, 1, 0xa0,            // 142-145 lengths, 146 copper 1 m, 147 copper unequalized
            b'M', b'e', b'l', b'l', b'a', b'n', b'o', b'x', // 148-163 vendor name
            b' ', b' ', b' ', b' ', b' ', b' ', b' ', b' ',
            0,                              // 164 extended module
            0x00, 0x02, 0xc9,               // 165-167 vendor OUI
            b'M', b'C', b'P', b'1', b'6', b'0', b'0', b'-', // 168-183 vendor PN
            b'C', b'0', b'0', b'1', b' ', b' ', b' ', b' ',
            b'A', b'2',                     // 184-185 vendor rev
            4, 6, 7, 0x0b,                  // 186-189 attenuation
            0,                              // 190 max case temperature
            0x1d,                           // 191 CC_BASE
            0x0b, 0, 0, 0,                  // 192 link codes 100GBASE-CR4, 193-195 options
            b'M', b'T', b'1', b'8', b'2', b'2', b'V', b'S', // 196-211 vendor SN
            b'0', b'8', b'7', b'1', b'9', b' ', b' ', b' ',
            b'1', b'8', b'0', b'5', b'3', b'1', b' ', b' ', // 212-219 date code
            0, 0,                           // 220 diag type, 221
            0x67,                           // 222 BR 25.75 GBd per lane
            0x64,                           // 223 CC_EXT
        ];
        b[128..224].copy_from_slice(&upper);
        b
    }

    #[test]
    fn decodes_a_1000base_t_sfp() {
        let t = decode(&COPPER_1G, None, None).unwrap();
        assert_eq!(t.identifier, Identifier::Sfp);
        assert_eq!(t.vendor, "FINISAR CORP.");
        assert_eq!(t.oui, [0x00, 0x90, 0x65]);
        assert_eq!(t.pn, "FCLF8522P2BTL");
        assert_eq!(t.rev, "A");
        assert_eq!(t.sn, "PUQ3LQ5");
        assert_eq!(t.date, "190318");
        assert_eq!(t.media, "1000BASE-T");
        assert_eq!(connector_name(t.connector), "RJ45");
        assert_eq!(t.nominal_mbd, 1200);
        assert_eq!(t.reach, Reach::CopperM(100));
        assert_eq!(t.wavelength_nm, None);
        assert_eq!(t.diagnostics, None);
    }

    #[test]
    fn decodes_a_100g_qsfp28_dac() {
        let b = dac_100g();
        let t = decode(&b, None, None).unwrap();
        assert_eq!(t.identifier, Identifier::Qsfp28);
        assert_eq!(
            (t.vendor.as_str(), t.pn.as_str()),
            ("Mellanox", "MCP1600-C001")
        );
        assert_eq!((t.rev.as_str(), t.sn.as_str()), ("A2", "MT1822VS08719"));
        assert_eq!(t.media, "100GBASE-CR4");
        assert_eq!(t.nominal_mbd, 25_750);
        assert_eq!(t.reach, Reach::CopperM(1));
        assert_eq!(connector_name(t.connector), "No separable connector");
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let mut b = COPPER_1G;
        b[40] = b'X';
        assert_eq!(
            decode(&b, None, None),
            Err(SffError::BadChecksum {
                field: "CC_BASE",
                offset: 63,
                stored: 0xd6,
                computed: 0xd6u8.wrapping_add(b'X' - b'F'),
            })
        );
        let mut b = COPPER_1G;
        b[70] = 0;
        assert!(matches!(
            decode(&b, None, None),
            Err(SffError::BadChecksum {
                field: "CC_EXT",
                offset: 95,
                ..
            })
        ));
        assert_eq!(
            decode(&[0x18], None, None),
            Err(SffError::UnknownIdentifier(0x18))
        );
        assert_eq!(
            decode(&COPPER_1G[..50], None, None),
            Err(SffError::Truncated {
                page: 0,
                len: 50,
                need: 96
            })
        );
        assert_eq!(
            decode(&[], None, None),
            Err(SffError::Truncated {
                page: 0,
                len: 0,
                need: 1
            })
        );
        let q = dac_100g();
        assert!(matches!(
            decode(&q[..200], None, None),
            Err(SffError::Truncated { need: 224, .. })
        ));
        // A paged module (Flat_mem clear) with a short page 03h.
        let mut q = q;
        q[2] = 0;
        assert_eq!(
            decode(&q, None, Some(&[0u8; 10])),
            Err(SffError::Truncated {
                page: 3,
                len: 10,
                need: 72
            })
        );
        // Diagnostics announced (byte 92 bit 6) with a short A2h.
        let mut b = COPPER_1G;
        b[92] = 0x40;
        b[95] = 0xa1 + 0x40;
        assert!(matches!(
            decode(&b, Some(&[0u8; 20]), None),
            Err(SffError::Truncated { page: 0xa2, .. })
        ));
        // Arbitrary bytes never panic.
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut b = [0u8; 256];
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *v = x as u8;
            }
            b[0] = [0x03, 0x0d, 0x11, 0x0c][(x % 4) as usize];
            let _ = decode(
                &b[..(x as usize % 257)],
                Some(&b[..(x >> 8) as usize % 257]),
                Some(&b),
            );
        }
    }
}
