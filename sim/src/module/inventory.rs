//! The modules the model can plug, as data: every field of their EEPROMs
//! at the SFF-8472 / SFF-8636 offsets ([`super::sff8472`],
//! [`super::sff8636`]), with identifiers, connectors, encodings and
//! compliance codes from SFF-8024 rev 4.11 (Tables 4-1 to 4-4). Part
//! numbers follow the naming of NVIDIA/Mellanox LinkX cables and optics
//! (the 1000BASE-T module is a Finisar one, as Mellanox ships it); serial
//! numbers, date codes and diagnostic readings are the model's own.
#![deny(unsafe_code)]

use super::sff8472::{self as s, Sfp};
use super::sff8636::{self as q, Qsfp};

/// IEEE OUIs: Mellanox Technologies and Finisar.
pub const OUI_MELLANOX: [u8; 3] = [0x00, 0x02, 0xc9];
pub const OUI_FINISAR: [u8; 3] = [0x00, 0x90, 0x65];

/// SFF-8024 Table 4-3 connector codes.
pub mod connector {
    pub const LC: u8 = 0x07;
    pub const MPO_1X12: u8 = 0x0c;
    pub const COPPER_PIGTAIL: u8 = 0x21;
    pub const RJ45: u8 = 0x22;
    pub const NO_SEPARABLE: u8 = 0x23;
}

/// SFF-8472 Table 4-1 byte 1: serial ID defined by the 2-wire interface.
const SFP_EXT_ID: u8 = 0x04;
/// SFF-8472 byte 8 bit 2: passive cable (SFP+ cable technology).
const SFP_PASSIVE_CABLE: u8 = 1 << 2;
/// SFF-8472 bytes 60-61 of a passive cable: SFF-8431 Appendix E compliant.
const SFP_CABLE_SFF8431: [u8; 2] = [0x01, 0x00];

/// 10GBASE-CR: Mellanox MC3309130-001, 1 m passive SFP+ copper.
pub fn dac_10g() -> Sfp {
    Sfp {
        ext_identifier: SFP_EXT_ID,
        connector: connector::COPPER_PIGTAIL,
        transceiver: [0, 0, 0, 0, 0, SFP_PASSIVE_CABLE, 0, 0],
        encoding: 0x06,   // 64B/66B
        br_nominal: 0x67, // 10.3 GBd
        br_max: 0,
        length_smf_km: 0,
        length_om2: 0,
        length_om1: 0,
        length_om4_copper: 1,
        length_om3: 0,
        vendor: "Mellanox",
        transceiver_ext: 0,
        oui: OUI_MELLANOX,
        pn: "MC3309130-001",
        rev: "A2",
        wavelength_or_cable: SFP_CABLE_SFF8431,
        options: [0, 0],
        sn: "MT1538VS04211",
        date: "150919",
        diag_type: 0,
        enhanced_options: 0,
        compliance: 0,
        diagnostics: None,
    }
}

/// 10GBASE-SR: Mellanox MFM1T02A-SR, 850 nm, with digital diagnostics.
pub fn sr_10g() -> Sfp {
    Sfp {
        ext_identifier: SFP_EXT_ID,
        connector: connector::LC,
        // Byte 3 bit 4: 10GBASE-SR.
        transceiver: [0x10, 0, 0, 0, 0, 0, 0, 0],
        encoding: 0x06,
        br_nominal: 0x67,
        br_max: 0,
        length_smf_km: 0,
        length_om2: 8, // 80 m
        length_om1: 3, // 30 m
        length_om4_copper: 40,
        length_om3: 30, // 300 m
        vendor: "Mellanox",
        transceiver_ext: 0,
        oui: OUI_MELLANOX,
        pn: "MFM1T02A-SR",
        rev: "A3",
        wavelength_or_cable: 850u16.to_be_bytes(),
        // Byte 65: TX_DISABLE, TX_FAULT, LOS implemented.
        options: [0x00, 0x1a],
        sn: "MT1743FT10087",
        date: "171024",
        // DDM implemented, internally calibrated, average RX power.
        diag_type: 0x68,
        enhanced_options: 0xf0,
        compliance: 0x08, // SFF-8472 rev 12.3
        diagnostics: Some(s::Diagnostics {
            temperature: 9088, // 35.5 degC
            vcc: 33000,        // 3.3 V
            tx_bias: 3250,     // 6.5 mA
            tx_power: 5500,    // 0.55 mW
            rx_power: 4800,    // 0.48 mW
            temp_thresholds: [19200, -1280, 17920, 0],
            vcc_thresholds: [36300, 29700, 34650, 31350],
            bias_thresholds: [7500, 1000, 6000, 1500],
            tx_power_thresholds: [15849, 1000, 12589, 1259],
            rx_power_thresholds: [15849, 100, 12589, 158],
        }),
    }
}

/// 25GBASE-CR CA-S: Mellanox MCP2M00-A001, 1 m passive SFP28 copper.
pub fn dac_25g() -> Sfp {
    Sfp {
        br_nominal: 0xff,
        br_max: 0x67, // 25.75 GBd in 250 MBd units
        transceiver_ext: 0x0c,
        pn: "MCP2M00-A001",
        rev: "A",
        sn: "MT2006VS01842",
        date: "200211",
        compliance: 0x08,
        ..dac_10g()
    }
}

/// 1000BASE-T: Finisar FCLF8522P2BTL (Mellanox MC3208411-T), RJ45.
pub fn copper_1g() -> Sfp {
    Sfp {
        ext_identifier: SFP_EXT_ID,
        connector: connector::RJ45,
        // Byte 6 bit 3: 1000BASE-T.
        transceiver: [0, 0, 0, 0x08, 0, 0, 0, 0],
        encoding: 0x01,   // 8B/10B
        br_nominal: 0x0c, // 1.2 GBd
        br_max: 0,
        length_smf_km: 0,
        length_om2: 0,
        length_om1: 0,
        length_om4_copper: 100,
        length_om3: 0,
        vendor: "FINISAR CORP.",
        transceiver_ext: 0,
        oui: OUI_FINISAR,
        pn: "FCLF8522P2BTL",
        rev: "A",
        wavelength_or_cable: [0, 0],
        options: [0x00, 0x10],
        sn: "PUQ3LQ5",
        date: "190318",
        diag_type: 0,
        enhanced_options: 0,
        compliance: 0,
        diagnostics: None,
    }
}

/// 40GBASE-CR4: Mellanox MC2206130-001, 1 m passive QSFP+ copper (flat
/// memory).
pub fn qsfp_40g() -> Qsfp {
    Qsfp {
        identifier: 0x0d,
        revision: 0x07, // SFF-8636 rev 2.5 - 2.7
        ext_identifier: 0x00,
        connector: connector::NO_SEPARABLE,
        // Byte 131 bit 3: 40GBASE-CR4.
        compliance: [0x08, 0, 0, 0, 0, 0, 0, 0],
        encoding: 0x05, // 64B/66B (SFF-8636 coding)
        br_nominal: 0x67,
        br_nominal_ext: 0,
        length_om3: 0,
        length_copper: 1,
        device_tech: 0xa0, // copper cable, unequalized
        vendor: "Mellanox",
        oui: OUI_MELLANOX,
        pn: "MC2206130-001",
        rev: "A3",
        // Attenuation at 2.5 / 5.0 GHz, 7.0 / 12.9 GHz (dB).
        wavelength: [0x03, 0x04],
        wavelength_tol: [0x05, 0x08],
        max_case_temp: 0,
        link_codes: 0,
        options: [0, 0, 0],
        sn: "MT1440VS05873",
        date: "141002",
        diag_type: 0,
        enhanced_options: 0,
        diagnostics: None,
    }
}

/// 100GBASE-CR4: Mellanox MCP1600-C001, 1 m passive QSFP28 copper.
pub fn dac_100g() -> Qsfp {
    Qsfp {
        identifier: 0x11,
        revision: 0x08, // SFF-8636 rev 2.8 - 2.10
        // Byte 131 bit 7: see the extended code.
        compliance: [0x80, 0, 0, 0, 0, 0, 0, 0],
        encoding: 0x07, // 256B/257B
        br_nominal: 0xff,
        br_nominal_ext: 0x67, // 25.75 GBd per lane
        device_tech: 0xa0,
        pn: "MCP1600-C001",
        rev: "A2",
        wavelength: [0x04, 0x06],
        wavelength_tol: [0x07, 0x0b],
        link_codes: 0x0b, // 100GBASE-CR4, 25GBASE-CR CA-L
        sn: "MT1822VS08719",
        date: "180531",
        ..qsfp_40g()
    }
}

/// 100GBASE-SR4: Mellanox MMA1B00-C100D, 850 nm, MPO, paged memory with
/// diagnostics per lane.
pub fn sr4_100g() -> Qsfp {
    Qsfp {
        identifier: 0x11,
        revision: 0x08,
        ext_identifier: 0xcc, // power class 4, CDR in TX and RX
        connector: connector::MPO_1X12,
        compliance: [0x80, 0, 0, 0, 0, 0, 0, 0],
        encoding: 0x07,
        br_nominal: 0xff,
        br_nominal_ext: 0x67,
        length_om3: 35,    // 70 m
        length_copper: 50, // OM4: 100 m
        device_tech: 0x00, // 850 nm VCSEL
        vendor: "Mellanox",
        oui: OUI_MELLANOX,
        pn: "MMA1B00-C100D",
        rev: "B2",
        wavelength: 17000u16.to_be_bytes(),   // 850 nm in 0.05 nm
        wavelength_tol: 200u16.to_be_bytes(), // 10 nm
        max_case_temp: 70,
        link_codes: 0x02, // 100GBASE-SR4 or 25GBASE-SR
        options: [0x00, 0x00, 0x1e],
        sn: "MT1907FT02246",
        date: "190214",
        // Temperature and Vcc monitored, average RX power, TX power.
        diag_type: 0x3c,
        enhanced_options: 0,
        diagnostics: Some(q::Diagnostics {
            temperature: 9728, // 38 degC
            vcc: 32900,
            rx_power: [6310, 6026, 5888, 6166],
            tx_bias: [3400, 3380, 3420, 3390],
            tx_power: [7079, 6918, 7244, 7000],
            temp_thresholds: [19200, -1280, 17920, 0],
            vcc_thresholds: [36300, 29700, 34650, 31350],
            rx_power_thresholds: [34674, 513, 27542, 1023],
            tx_bias_thresholds: [6000, 1500, 5500, 2000],
            tx_power_thresholds: [22387, 1622, 17783, 2512],
        }),
    }
}

/// 200GBASE-CR4: Mellanox MCP1650-V001E30, 1 m passive QSFP56 copper
/// (PAM4).
pub fn dac_200g() -> Qsfp {
    Qsfp {
        encoding: 0x08,       // PAM4
        br_nominal_ext: 0x6a, // 26.5 GBd per lane
        pn: "MCP1650-V001E30",
        rev: "A2",
        link_codes: 0x40, // 50GBASE-CR, 100GBASE-CR2, 200GBASE-CR4
        sn: "MT2101VS00473",
        date: "210108",
        ..dac_100g()
    }
}
