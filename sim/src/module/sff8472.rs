//! SFP/SFP+/SFP28 memory (SFF-8472 rev 12.4): the serial ID at 2-wire
//! address A0h (0x50, 256 bytes) and, for modules with digital diagnostics,
//! the diagnostics at A2h (0x51, 256 bytes). [`Sfp::image`] lays a module's
//! fields out at the offsets of SFF-8472 Table 4-1 (A0h) and Table 9-5
//! (A2h) and computes the check codes CC_BASE (byte 63: the low 8 bits of
//! the sum of bytes 0-62), CC_EXT (byte 95: bytes 64-94) and CC_DMI (A2h
//! byte 95: bytes 0-94).
#![deny(unsafe_code)]

/// Byte offsets of A0h (SFF-8472 Table 4-1).
pub mod a0 {
    pub const IDENTIFIER: usize = 0;
    pub const EXT_IDENTIFIER: usize = 1;
    pub const CONNECTOR: usize = 2;
    /// Transceiver compliance codes, bytes 3-10 (Table 5-3).
    pub const TRANSCEIVER: usize = 3;
    pub const ENCODING: usize = 11;
    /// Nominal signalling rate, units of 100 MBd (0xFF: see BR_MAX).
    pub const BR_NOMINAL: usize = 12;
    pub const LENGTH_SMF_KM: usize = 14;
    pub const LENGTH_SMF: usize = 15;
    /// Link lengths: OM2 and OM1 in 10 m, OM4 or copper (m), OM3 in 10 m.
    pub const LENGTH_OM2: usize = 16;
    pub const LENGTH_OM1: usize = 17;
    pub const LENGTH_OM4_COPPER: usize = 18;
    pub const LENGTH_OM3: usize = 19;
    pub const VENDOR_NAME: usize = 20;
    /// Extended compliance code (SFF-8024 Table 4-4).
    pub const TRANSCEIVER_EXT: usize = 36;
    pub const VENDOR_OUI: usize = 37;
    pub const VENDOR_PN: usize = 40;
    pub const VENDOR_REV: usize = 56;
    /// Laser wavelength (nm), or for cables the cable compliance bits.
    pub const WAVELENGTH: usize = 60;
    pub const CC_BASE: usize = 63;
    pub const OPTIONS: usize = 64;
    /// With BR_NOMINAL 0xFF: the nominal rate in units of 250 MBd.
    pub const BR_MAX: usize = 66;
    pub const VENDOR_SN: usize = 68;
    pub const DATE_CODE: usize = 84;
    pub const DIAG_TYPE: usize = 92;
    pub const ENHANCED_OPTIONS: usize = 93;
    pub const COMPLIANCE: usize = 94;
    pub const CC_EXT: usize = 95;
}

/// Byte offsets of A2h (SFF-8472 Tables 9-5 and 9-11).
pub mod a2 {
    /// Alarm and warning thresholds: high alarm, low alarm, high warning,
    /// low warning (2 bytes each) for temperature, Vcc, TX bias, TX power,
    /// RX power.
    pub const TEMP_THRESHOLDS: usize = 0;
    pub const VCC_THRESHOLDS: usize = 8;
    pub const BIAS_THRESHOLDS: usize = 16;
    pub const TX_POWER_THRESHOLDS: usize = 24;
    pub const RX_POWER_THRESHOLDS: usize = 32;
    pub const CC_DMI: usize = 95;
    pub const TEMPERATURE: usize = 96;
    pub const VCC: usize = 98;
    pub const TX_BIAS: usize = 100;
    pub const TX_POWER: usize = 102;
    pub const RX_POWER: usize = 104;
}

/// Digital diagnostics: live values and thresholds in SFF-8472's internal
/// calibration units (temperature 1/256 degC signed, Vcc 100 uV, bias
/// 2 uA, power 0.1 uW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    pub temperature: i16,
    pub vcc: u16,
    pub tx_bias: u16,
    pub tx_power: u16,
    pub rx_power: u16,
    /// [high alarm, low alarm, high warning, low warning] of each.
    pub temp_thresholds: [i16; 4],
    pub vcc_thresholds: [u16; 4],
    pub bias_thresholds: [u16; 4],
    pub tx_power_thresholds: [u16; 4],
    pub rx_power_thresholds: [u16; 4],
}

/// The fields of one SFP module (what [`Sfp::image`] lays out).
#[derive(Clone, Copy, Debug)]
pub struct Sfp {
    pub ext_identifier: u8,
    pub connector: u8,
    pub transceiver: [u8; 8],
    pub encoding: u8,
    pub br_nominal: u8,
    pub br_max: u8,
    pub length_smf_km: u8,
    pub length_om2: u8,
    pub length_om1: u8,
    pub length_om4_copper: u8,
    pub length_om3: u8,
    pub vendor: &'static str,
    pub transceiver_ext: u8,
    pub oui: [u8; 3],
    pub pn: &'static str,
    pub rev: &'static str,
    pub wavelength_or_cable: [u8; 2],
    pub options: [u8; 2],
    pub sn: &'static str,
    /// YYMMDD plus a two-character lot code.
    pub date: &'static str,
    pub diag_type: u8,
    pub enhanced_options: u8,
    pub compliance: u8,
    pub diagnostics: Option<Diagnostics>,
}

/// SFF-8024 identifier of every SFP form factor.
pub const IDENTIFIER_SFP: u8 = 0x03;

/// An ASCII field, padded with spaces (SFF-8472 section 4: vendor name,
/// part number, revision, serial number are space-padded ASCII).
pub fn ascii(out: &mut [u8], s: &str) {
    out.fill(b' ');
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b;
    }
}

/// Low 8 bits of the sum of `bytes`: every SFF check code.
pub fn check_code(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn put16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

impl Sfp {
    /// The A0h page and, with diagnostics, the A2h page.
    pub fn image(&self) -> ([u8; 256], Option<[u8; 256]>) {
        let mut b = [0u8; 256];
        b[a0::IDENTIFIER] = IDENTIFIER_SFP;
        b[a0::EXT_IDENTIFIER] = self.ext_identifier;
        b[a0::CONNECTOR] = self.connector;
        b[a0::TRANSCEIVER..a0::TRANSCEIVER + 8].copy_from_slice(&self.transceiver);
        b[a0::ENCODING] = self.encoding;
        b[a0::BR_NOMINAL] = self.br_nominal;
        b[a0::LENGTH_SMF_KM] = self.length_smf_km;
        b[a0::LENGTH_SMF] = self.length_smf_km.saturating_mul(10);
        b[a0::LENGTH_OM2] = self.length_om2;
        b[a0::LENGTH_OM1] = self.length_om1;
        b[a0::LENGTH_OM4_COPPER] = self.length_om4_copper;
        b[a0::LENGTH_OM3] = self.length_om3;
        ascii(&mut b[a0::VENDOR_NAME..a0::VENDOR_NAME + 16], self.vendor);
        b[a0::TRANSCEIVER_EXT] = self.transceiver_ext;
        b[a0::VENDOR_OUI..a0::VENDOR_OUI + 3].copy_from_slice(&self.oui);
        ascii(&mut b[a0::VENDOR_PN..a0::VENDOR_PN + 16], self.pn);
        ascii(&mut b[a0::VENDOR_REV..a0::VENDOR_REV + 4], self.rev);
        b[a0::WAVELENGTH..a0::WAVELENGTH + 2].copy_from_slice(&self.wavelength_or_cable);
        b[a0::CC_BASE] = check_code(&b[0..a0::CC_BASE]);
        b[a0::OPTIONS..a0::OPTIONS + 2].copy_from_slice(&self.options);
        b[a0::BR_MAX] = self.br_max;
        ascii(&mut b[a0::VENDOR_SN..a0::VENDOR_SN + 16], self.sn);
        ascii(&mut b[a0::DATE_CODE..a0::DATE_CODE + 8], self.date);
        b[a0::DIAG_TYPE] = self.diag_type;
        b[a0::ENHANCED_OPTIONS] = self.enhanced_options;
        b[a0::COMPLIANCE] = self.compliance;
        b[a0::CC_EXT] = check_code(&b[a0::OPTIONS..a0::CC_EXT]);
        let diag = self.diagnostics.map(|d| {
            let mut p = [0u8; 256];
            for (i, t) in d.temp_thresholds.iter().enumerate() {
                put16(&mut p, a2::TEMP_THRESHOLDS + 2 * i, *t as u16);
            }
            for (at, ts) in [
                (a2::VCC_THRESHOLDS, d.vcc_thresholds),
                (a2::BIAS_THRESHOLDS, d.bias_thresholds),
                (a2::TX_POWER_THRESHOLDS, d.tx_power_thresholds),
                (a2::RX_POWER_THRESHOLDS, d.rx_power_thresholds),
            ] {
                for (i, t) in ts.iter().enumerate() {
                    put16(&mut p, at + 2 * i, *t);
                }
            }
            p[a2::CC_DMI] = check_code(&p[0..a2::CC_DMI]);
            put16(&mut p, a2::TEMPERATURE, d.temperature as u16);
            put16(&mut p, a2::VCC, d.vcc);
            put16(&mut p, a2::TX_BIAS, d.tx_bias);
            put16(&mut p, a2::TX_POWER, d.tx_power);
            put16(&mut p, a2::RX_POWER, d.rx_power);
            p
        });
        (b, diag)
    }
}
