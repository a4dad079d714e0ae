//! QSFP+/QSFP28/QSFP56 memory (SFF-8636 rev 2.10a): the lower page (bytes
//! 0-127: identifier, status, live diagnostics per lane), upper page 00h
//! (bytes 128-255: the serial ID) and, on paged modules, upper page 03h
//! (alarm and warning thresholds). [`Qsfp::image`] lays a module's fields
//! out at the offsets of SFF-8636 Tables 6-2, 6-14 and 6-26 and computes
//! CC_BASE (byte 191: the low 8 bits of the sum of bytes 128-190) and
//! CC_EXT (byte 223: bytes 192-222).
#![deny(unsafe_code)]

use super::sff8472::{ascii, check_code};

/// Byte offsets of the lower page (SFF-8636 Table 6-2).
pub mod lower {
    pub const IDENTIFIER: usize = 0;
    pub const REVISION: usize = 1;
    /// Status: bit 2 Flat_mem (upper page 00h only), bit 0 Data_Not_Ready.
    pub const STATUS: usize = 2;
    pub const FLAT_MEM: u8 = 1 << 2;
    pub const TEMPERATURE: usize = 22;
    pub const VCC: usize = 26;
    /// Per lane 1-4, 2 bytes each.
    pub const RX_POWER: usize = 34;
    pub const TX_BIAS: usize = 42;
    pub const TX_POWER: usize = 50;
    pub const PAGE_SELECT: usize = 127;
}

/// Byte offsets of upper page 00h (SFF-8636 Table 6-14), as addressed
/// (128-255).
pub mod upper {
    pub const IDENTIFIER: usize = 128;
    pub const EXT_IDENTIFIER: usize = 129;
    pub const CONNECTOR: usize = 130;
    /// Specification compliance, bytes 131-138 (Table 6-17); byte 131 bit 7
    /// says: see the extended code at byte 192.
    pub const COMPLIANCE: usize = 131;
    pub const ENCODING: usize = 139;
    /// Units of 100 MBd (0xFF: see BR_NOMINAL_EXT).
    pub const BR_NOMINAL: usize = 140;
    pub const LENGTH_SMF_KM: usize = 142;
    /// OM3 in 2 m units, OM2 and OM1 in 1 m, copper (1 m) or OM4 (2 m).
    pub const LENGTH_OM3: usize = 143;
    pub const LENGTH_OM2: usize = 144;
    pub const LENGTH_OM1: usize = 145;
    pub const LENGTH_COPPER: usize = 146;
    pub const DEVICE_TECH: usize = 147;
    pub const VENDOR_NAME: usize = 148;
    pub const VENDOR_OUI: usize = 165;
    pub const VENDOR_PN: usize = 168;
    pub const VENDOR_REV: usize = 184;
    /// Wavelength in 0.05 nm, or copper attenuation at 2.5 / 5.0 GHz (dB).
    pub const WAVELENGTH: usize = 186;
    /// Wavelength tolerance, or attenuation at 7.0 / 12.9 GHz (dB).
    pub const WAVELENGTH_TOL: usize = 188;
    pub const MAX_CASE_TEMP: usize = 190;
    pub const CC_BASE: usize = 191;
    /// Extended specification compliance (SFF-8024 Table 4-4).
    pub const LINK_CODES: usize = 192;
    pub const OPTIONS: usize = 193;
    pub const VENDOR_SN: usize = 196;
    pub const DATE_CODE: usize = 212;
    pub const DIAG_TYPE: usize = 220;
    pub const ENHANCED_OPTIONS: usize = 221;
    /// Nominal rate in units of 250 MBd.
    pub const BR_NOMINAL_EXT: usize = 222;
    pub const CC_EXT: usize = 223;
}

/// Byte offsets of upper page 03h (SFF-8636 Table 6-26): thresholds as
/// high alarm, low alarm, high warning, low warning (2 bytes each).
pub mod page3 {
    pub const TEMP_THRESHOLDS: usize = 128;
    pub const VCC_THRESHOLDS: usize = 144;
    pub const RX_POWER_THRESHOLDS: usize = 176;
    pub const TX_BIAS_THRESHOLDS: usize = 184;
    pub const TX_POWER_THRESHOLDS: usize = 192;
}

/// Live values and thresholds of a paged (optical) module, SFF-8636 units
/// (temperature 1/256 degC signed, Vcc 100 uV, bias 2 uA, power 0.1 uW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    pub temperature: i16,
    pub vcc: u16,
    pub rx_power: [u16; 4],
    pub tx_bias: [u16; 4],
    pub tx_power: [u16; 4],
    pub temp_thresholds: [i16; 4],
    pub vcc_thresholds: [u16; 4],
    pub rx_power_thresholds: [u16; 4],
    pub tx_bias_thresholds: [u16; 4],
    pub tx_power_thresholds: [u16; 4],
}

/// The fields of one QSFP module (what [`Qsfp::image`] lays out).
#[derive(Clone, Copy, Debug)]
pub struct Qsfp {
    /// SFF-8024 identifier: 0x0D QSFP+, 0x11 QSFP28 (and QSFP56 under
    /// SFF-8636).
    pub identifier: u8,
    pub revision: u8,
    pub ext_identifier: u8,
    pub connector: u8,
    pub compliance: [u8; 8],
    pub encoding: u8,
    pub br_nominal: u8,
    pub br_nominal_ext: u8,
    pub length_om3: u8,
    pub length_copper: u8,
    pub device_tech: u8,
    pub vendor: &'static str,
    pub oui: [u8; 3],
    pub pn: &'static str,
    pub rev: &'static str,
    pub wavelength: [u8; 2],
    pub wavelength_tol: [u8; 2],
    pub max_case_temp: u8,
    pub link_codes: u8,
    pub options: [u8; 3],
    pub sn: &'static str,
    pub date: &'static str,
    pub diag_type: u8,
    pub enhanced_options: u8,
    /// Paged modules have page 03h with thresholds; flat ones (passive
    /// copper) have upper page 00h only.
    pub diagnostics: Option<Diagnostics>,
}

fn put16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// A QSFP memory map: bytes 0-255 as page 00h addresses them, and the
/// upper part (bytes 128-255) of page 03h when the module has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QsfpImage {
    pub page0: [u8; 256],
    pub page3: Option<[u8; 128]>,
}

impl Qsfp {
    pub fn image(&self) -> QsfpImage {
        let mut b = [0u8; 256];
        b[lower::IDENTIFIER] = self.identifier;
        b[lower::REVISION] = self.revision;
        if self.diagnostics.is_none() {
            b[lower::STATUS] = lower::FLAT_MEM;
        }
        b[upper::IDENTIFIER] = self.identifier;
        b[upper::EXT_IDENTIFIER] = self.ext_identifier;
        b[upper::CONNECTOR] = self.connector;
        b[upper::COMPLIANCE..upper::COMPLIANCE + 8].copy_from_slice(&self.compliance);
        b[upper::ENCODING] = self.encoding;
        b[upper::BR_NOMINAL] = self.br_nominal;
        b[upper::LENGTH_OM3] = self.length_om3;
        b[upper::LENGTH_COPPER] = self.length_copper;
        b[upper::DEVICE_TECH] = self.device_tech;
        ascii(
            &mut b[upper::VENDOR_NAME..upper::VENDOR_NAME + 16],
            self.vendor,
        );
        b[upper::VENDOR_OUI..upper::VENDOR_OUI + 3].copy_from_slice(&self.oui);
        ascii(&mut b[upper::VENDOR_PN..upper::VENDOR_PN + 16], self.pn);
        ascii(&mut b[upper::VENDOR_REV..upper::VENDOR_REV + 2], self.rev);
        b[upper::WAVELENGTH..upper::WAVELENGTH + 2].copy_from_slice(&self.wavelength);
        b[upper::WAVELENGTH_TOL..upper::WAVELENGTH_TOL + 2].copy_from_slice(&self.wavelength_tol);
        b[upper::MAX_CASE_TEMP] = self.max_case_temp;
        b[upper::CC_BASE] = check_code(&b[upper::IDENTIFIER..upper::CC_BASE]);
        b[upper::LINK_CODES] = self.link_codes;
        b[upper::OPTIONS..upper::OPTIONS + 3].copy_from_slice(&self.options);
        ascii(&mut b[upper::VENDOR_SN..upper::VENDOR_SN + 16], self.sn);
        ascii(&mut b[upper::DATE_CODE..upper::DATE_CODE + 8], self.date);
        b[upper::DIAG_TYPE] = self.diag_type;
        b[upper::ENHANCED_OPTIONS] = self.enhanced_options;
        b[upper::BR_NOMINAL_EXT] = self.br_nominal_ext;
        b[upper::CC_EXT] = check_code(&b[upper::LINK_CODES..upper::CC_EXT]);
        let page3 = self.diagnostics.map(|d| {
            put16(&mut b, lower::TEMPERATURE, d.temperature as u16);
            put16(&mut b, lower::VCC, d.vcc);
            for lane in 0..4 {
                put16(&mut b, lower::RX_POWER + 2 * lane, d.rx_power[lane]);
                put16(&mut b, lower::TX_BIAS + 2 * lane, d.tx_bias[lane]);
                put16(&mut b, lower::TX_POWER + 2 * lane, d.tx_power[lane]);
            }
            // Page 03h as addressed (128-255), stored from index 0.
            let mut p = [0u8; 128];
            for (i, t) in d.temp_thresholds.iter().enumerate() {
                put16(&mut p, page3::TEMP_THRESHOLDS - 128 + 2 * i, *t as u16);
            }
            for (at, ts) in [
                (page3::VCC_THRESHOLDS, d.vcc_thresholds),
                (page3::RX_POWER_THRESHOLDS, d.rx_power_thresholds),
                (page3::TX_BIAS_THRESHOLDS, d.tx_bias_thresholds),
                (page3::TX_POWER_THRESHOLDS, d.tx_power_thresholds),
            ] {
                for (i, t) in ts.iter().enumerate() {
                    put16(&mut p, at - 128 + 2 * i, *t);
                }
            }
            p
        });
        QsfpImage { page0: b, page3 }
    }
}
