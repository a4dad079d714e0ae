//! The port's cage and the transceiver module in it.
//!
//! Each part has the cage a real card of its family has ([`Cage::of`]):
//! SFP28 on a ConnectX-4 Lx, QSFP28 on ConnectX-4 and 5, QSFP56 on
//! ConnectX-6 and 6 Dx. An SFP module in a QSFP cage works through a QSA
//! adapter, as on real cards, at the SFP module's speed; a QSFP module
//! does not fit an SFP cage. The modules ([`ModuleKind`]) are realistic
//! EEPROM images ([`inventory`]) built by [`sff8472`] / [`sff8636`].
//!
//! What the module means for the port: the protocols it can run
//! ([`ModuleKind::protocols`]), so the link speed is the fastest protocol
//! the module, the port's capability and the PTYS admin set share; no
//! module (or one in error, or disabled by PMAOS) means no link. Its
//! EEPROM is read through MCIA ([`Eeprom::read`]).
#![deny(unsafe_code)]

pub mod inventory;
pub mod sff8472;
pub mod sff8636;

use crate::personality::{Personality, eth_proto as e, ext_eth_proto as x};

/// The cage of the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cage {
    Sfp28,
    Qsfp28,
    Qsfp56,
}

impl Cage {
    /// The cage a card of this part has.
    pub fn of(p: Personality) -> Cage {
        match p {
            Personality::ConnectX4Lx => Cage::Sfp28,
            Personality::ConnectX4 | Personality::ConnectX5 => Cage::Qsfp28,
            Personality::ConnectX6 | Personality::ConnectX6Dx => Cage::Qsfp56,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cage::Sfp28 => "SFP28",
            Cage::Qsfp28 => "QSFP28",
            Cage::Qsfp56 => "QSFP56",
        }
    }

    fn takes_qsfp(self) -> bool {
        self != Cage::Sfp28
    }
}

/// The physical form of a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Sfp,
    Qsfp,
}

/// A module of the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    Dac10g,
    Sr10g,
    Dac25g,
    Copper1g,
    Qsfp40g,
    Sr4100g,
    Dac100g,
    Dac200g,
}

impl ModuleKind {
    pub const ALL: [ModuleKind; 8] = [
        ModuleKind::Dac10g,
        ModuleKind::Sr10g,
        ModuleKind::Dac25g,
        ModuleKind::Copper1g,
        ModuleKind::Qsfp40g,
        ModuleKind::Sr4100g,
        ModuleKind::Dac100g,
        ModuleKind::Dac200g,
    ];

    /// The name the command line and the control socket use.
    pub fn name(self) -> &'static str {
        match self {
            ModuleKind::Dac10g => "10g-dac",
            ModuleKind::Sr10g => "10g-sr",
            ModuleKind::Dac25g => "25g-dac",
            ModuleKind::Copper1g => "1g-copper",
            ModuleKind::Qsfp40g => "40g-qsfp",
            ModuleKind::Sr4100g => "100g-sr4",
            ModuleKind::Dac100g => "100g-dac",
            ModuleKind::Dac200g => "200g-dac",
        }
    }

    pub fn from_name(s: &str) -> Option<ModuleKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The list of names, for messages.
    pub fn names() -> String {
        Self::ALL.map(|k| k.name()).join(", ")
    }

    /// What it is, in words (the control socket's `module`).
    pub fn describe(self) -> &'static str {
        match self {
            ModuleKind::Dac10g => "10G SFP+ passive copper (10GBASE-CR)",
            ModuleKind::Sr10g => "10GBASE-SR SFP+ 850 nm",
            ModuleKind::Dac25g => "25G SFP28 passive copper (25GBASE-CR)",
            ModuleKind::Copper1g => "1000BASE-T SFP",
            ModuleKind::Qsfp40g => "40G QSFP+ passive copper (40GBASE-CR4)",
            ModuleKind::Sr4100g => "100GBASE-SR4 QSFP28 850 nm",
            ModuleKind::Dac100g => "100G QSFP28 passive copper (100GBASE-CR4)",
            ModuleKind::Dac200g => "200G QSFP56 passive copper (200GBASE-CR4)",
        }
    }

    pub fn form(self) -> Form {
        match self {
            ModuleKind::Dac10g | ModuleKind::Sr10g | ModuleKind::Dac25g | ModuleKind::Copper1g => {
                Form::Sfp
            }
            _ => Form::Qsfp,
        }
    }

    /// The PTYS protocols (legacy `eth_proto`, extended `ext_eth_proto`)
    /// the module can run.
    pub fn protocols(self) -> (u32, u32) {
        match self {
            ModuleKind::Dac10g => (e::P10GBASE_CR, x::P10GBASE_XFI),
            ModuleKind::Sr10g => (e::P10GBASE_SR, x::P10GBASE_XFI),
            ModuleKind::Dac25g => (
                e::P25GBASE_CR | e::P10GBASE_CR,
                x::P25GAUI_1 | x::P10GBASE_XFI,
            ),
            ModuleKind::Copper1g => (e::P1000BASE_T, x::P1000BASE_X_SGMII),
            ModuleKind::Qsfp40g => (e::P40GBASE_CR4, x::P40GBASE_XLAUI_4),
            ModuleKind::Sr4100g => (e::P100GBASE_SR4, x::CAUI_4_100G),
            ModuleKind::Dac100g => (e::P100GBASE_CR4, x::CAUI_4_100G),
            ModuleKind::Dac200g => (e::P100GBASE_CR4, x::P200GAUI_4 | x::CAUI_4_100G),
        }
    }

    /// PTYS `connector_type` (`enum mlx5e_connector_type`): fibre for the
    /// optics, twisted pair for 1000BASE-T, direct attach for cables.
    pub fn connector_type(self) -> u8 {
        match self {
            ModuleKind::Sr10g | ModuleKind::Sr4100g => 6,
            ModuleKind::Copper1g => 2,
            _ => 7,
        }
    }

    /// Whether it can run in `cage` on a port that supports `caps`
    /// (legacy, extended): the reason when not.
    pub fn fits(self, cage: Cage, caps: (u32, u32)) -> Result<(), String> {
        if self.form() == Form::Qsfp && !cage.takes_qsfp() {
            return Err(format!(
                "{} is a QSFP module: it does not fit the {} cage",
                self.name(),
                cage.name()
            ));
        }
        let (legacy, ext) = self.protocols();
        if legacy & caps.0 == 0 && ext & caps.1 == 0 {
            return Err(format!("{} runs at none of the port's speeds", self.name()));
        }
        Ok(())
    }

    /// Its EEPROM.
    pub fn eeprom(self) -> Eeprom {
        match self {
            ModuleKind::Dac10g => Eeprom::sfp(&inventory::dac_10g()),
            ModuleKind::Sr10g => Eeprom::sfp(&inventory::sr_10g()),
            ModuleKind::Dac25g => Eeprom::sfp(&inventory::dac_25g()),
            ModuleKind::Copper1g => Eeprom::sfp(&inventory::copper_1g()),
            ModuleKind::Qsfp40g => Eeprom::qsfp(&inventory::qsfp_40g()),
            ModuleKind::Sr4100g => Eeprom::qsfp(&inventory::sr4_100g()),
            ModuleKind::Dac100g => Eeprom::qsfp(&inventory::dac_100g()),
            ModuleKind::Dac200g => Eeprom::qsfp(&inventory::dac_200g()),
        }
    }

    /// The module a card of this part ships with: 100G DACs on ConnectX-4,
    /// 5 and 6 Dx, a 25G DAC on ConnectX-4 Lx, a 200G DAC on ConnectX-6.
    pub fn default_for(p: Personality) -> ModuleKind {
        match p {
            Personality::ConnectX4Lx => ModuleKind::Dac25g,
            Personality::ConnectX6 => ModuleKind::Dac200g,
            _ => ModuleKind::Dac100g,
        }
    }
}

/// What the cage holds at start (`mlx5-sim --module`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModuleChoice {
    /// The module a card of the part ships with ([`ModuleKind::default_for`]).
    #[default]
    Default,
    /// `none`: an empty cage.
    Empty,
    Kind(ModuleKind),
}

impl std::str::FromStr for ModuleChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<ModuleChoice, String> {
        if s == "none" {
            return Ok(ModuleChoice::Empty);
        }
        ModuleKind::from_name(s)
            .map(ModuleChoice::Kind)
            .ok_or_else(|| format!("unknown module '{s}' (none, {})", ModuleKind::names()))
    }
}

/// Why an EEPROM read failed: MCIA `status` values (PRM "MCIA - Management
/// Cable Info Access Register").
pub mod mcia_status {
    pub const GOOD: u8 = 0x00;
    /// No response from the module's EEPROM (e.g. no device at that
    /// 2-wire address).
    pub const NO_EEPROM_MODULE: u8 = 0x01;
    /// No module present indication.
    pub const MODULE_NOT_CONNECTED: u8 = 0x03;
    /// The 2-wire access failed (a page the module does not have, a bus
    /// the module holds stuck).
    pub const I2C_ERROR: u8 = 0x09;
    /// The module is disabled (PMAOS).
    pub const MODULE_DISABLED: u8 = 0x10;
}

/// 2-wire addresses of the module's memory.
pub const I2C_LOW: u8 = 0x50;
pub const I2C_HIGH: u8 = 0x51;

/// A module's memory: page 00h (A0h) as 256 bytes, SFF-8472's A2h when the
/// module answers there, and SFF-8636 upper pages beyond 00h (as bytes
/// 128-255 of that page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eeprom {
    pub low: [u8; 256],
    pub a2: Option<[u8; 256]>,
    pub pages: Vec<(u8, [u8; 128])>,
}

impl Eeprom {
    pub fn sfp(m: &sff8472::Sfp) -> Eeprom {
        let (low, a2) = m.image();
        Eeprom {
            low,
            a2,
            pages: Vec::new(),
        }
    }

    pub fn qsfp(m: &sff8636::Qsfp) -> Eeprom {
        let img = m.image();
        Eeprom {
            low: img.page0,
            a2: None,
            pages: img.page3.map(|p| (3, p)).into_iter().collect(),
        }
    }

    /// `len` bytes from `offset` of `page` at 2-wire address `i2c`, as a
    /// module answers: at 0x50, bytes 0-127 are the lower page whatever
    /// page is selected and 128-255 the selected page (a page the module
    /// lacks fails); at 0x51 SFF-8472's diagnostics (page 0 only). The
    /// caller checks `offset + len <= 256`.
    pub fn read(&self, i2c: u8, page: u8, offset: usize, out: &mut [u8]) -> Result<(), u8> {
        let len = out.len();
        match i2c {
            I2C_LOW => {
                let upper: &[u8] = if page == 0 {
                    &self.low[128..]
                } else {
                    match self.pages.iter().find(|(n, _)| *n == page) {
                        Some((_, p)) => p,
                        None => return Err(mcia_status::I2C_ERROR),
                    }
                };
                for (i, o) in out.iter_mut().enumerate() {
                    let at = offset + i;
                    *o = if at < 128 {
                        self.low[at]
                    } else {
                        upper[at - 128]
                    };
                }
                Ok(())
            }
            I2C_HIGH => match (&self.a2, page) {
                (Some(a2), 0) => {
                    out.copy_from_slice(&a2[offset..offset + len]);
                    Ok(())
                }
                (Some(_), _) => Err(mcia_status::I2C_ERROR),
                (None, _) => Err(mcia_status::NO_EEPROM_MODULE),
            },
            _ => Err(mcia_status::NO_EEPROM_MODULE),
        }
    }
}

/// Module error types (`port_module_event_error_type`, PRM "Port Module
/// Event"): the control socket's names.
pub const ERROR_TYPES: [(&str, u8); 9] = [
    ("power-budget", 0x0),
    ("long-range", 0x1),
    ("bus-stuck", 0x2),
    ("bad-eeprom", 0x3),
    ("part-number", 0x4),
    ("unknown-identifier", 0x5),
    ("high-temperature", 0x6),
    ("bad-cable", 0x7),
    ("power-slot", 0xc),
];

pub fn error_name(t: u8) -> &'static str {
    ERROR_TYPES
        .iter()
        .find(|(_, v)| *v == t)
        .map_or("unknown", |(n, _)| n)
}

/// What is in the cage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plugged {
    /// `None` for an image given as bytes (a test's bad EEPROM).
    pub kind: Option<ModuleKind>,
    pub eeprom: Eeprom,
    /// Protocols the module runs (from its kind; a raw image states them).
    pub protocols: (u32, u32),
    pub connector_type: u8,
    /// Module error type while in error (PMAOS oper_status 3).
    pub error: Option<u8>,
}

impl Plugged {
    pub fn of(kind: ModuleKind) -> Plugged {
        Plugged {
            kind: Some(kind),
            eeprom: kind.eeprom(),
            protocols: kind.protocols(),
            connector_type: kind.connector_type(),
            error: None,
        }
    }

    pub fn describe(&self) -> String {
        let what = match self.kind {
            Some(k) => format!("{} ({})", k.name(), k.describe()),
            None => String::from("custom image"),
        };
        match self.error {
            Some(t) => format!("{what} error {}", error_name(t)),
            None => what,
        }
    }
}

/// PMAOS `oper_status` values (`pmaos_reg`; the port module event's
/// `module_status` uses the same codes).
pub mod oper {
    pub const INITIALIZING: u8 = 0;
    pub const PLUGGED_ENABLED: u8 = 1;
    pub const UNPLUGGED: u8 = 2;
    pub const PLUGGED_ERROR: u8 = 3;
    pub const PLUGGED_DISABLED: u8 = 4;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_valid_image_with_its_identifier() {
        for k in ModuleKind::ALL {
            let e = k.eeprom();
            let id = e.low[0];
            match k.form() {
                Form::Sfp => {
                    assert_eq!(id, 0x03, "{k:?}");
                    let cc: u8 = e.low[..63].iter().fold(0u8, |a, b| a.wrapping_add(*b));
                    assert_eq!(cc, e.low[63], "{k:?} CC_BASE");
                    let ce: u8 = e.low[64..95].iter().fold(0u8, |a, b| a.wrapping_add(*b));
                    assert_eq!(ce, e.low[95], "{k:?} CC_EXT");
                }
                Form::Qsfp => {
                    assert!(id == 0x0d || id == 0x11, "{k:?}");
                    assert_eq!(e.low[128], id);
                    let cc: u8 = e.low[128..191].iter().fold(0u8, |a, b| a.wrapping_add(*b));
                    assert_eq!(cc, e.low[191], "{k:?} CC_BASE");
                    let ce: u8 = e.low[192..223].iter().fold(0u8, |a, b| a.wrapping_add(*b));
                    assert_eq!(ce, e.low[223], "{k:?} CC_EXT");
                    // Flat memory exactly when there is no page 03h.
                    assert_eq!(e.low[2] & 0x04 != 0, e.pages.is_empty(), "{k:?}");
                }
            }
            assert_eq!(ModuleKind::from_name(k.name()), Some(k));
        }
    }

    #[test]
    fn cages_take_what_fits() {
        let lx = Personality::ConnectX4Lx.caps();
        let lx = (lx.eth_proto_cap, lx.ext_eth_proto_cap);
        assert!(ModuleKind::Copper1g.fits(Cage::Sfp28, lx).is_ok());
        let e = ModuleKind::Dac100g.fits(Cage::Sfp28, lx).unwrap_err();
        assert!(e.contains("does not fit the SFP28 cage"), "{e}");
        // An SFP module in a QSFP cage works through a QSA.
        let cx5 = Personality::ConnectX5.caps();
        let cx5 = (cx5.eth_proto_cap, cx5.ext_eth_proto_cap);
        assert!(ModuleKind::Dac10g.fits(Cage::Qsfp28, cx5).is_ok());
        assert!(ModuleKind::Dac200g.fits(Cage::Qsfp28, cx5).is_ok());
        for p in Personality::ALL {
            let c = p.caps();
            let k = ModuleKind::default_for(p);
            assert!(
                k.fits(Cage::of(p), (c.eth_proto_cap, c.ext_eth_proto_cap))
                    .is_ok(),
                "{p:?}"
            );
        }
    }

    #[test]
    fn reads_follow_the_memory_map() {
        let e = ModuleKind::Sr4100g.eeprom();
        let mut b = [0u8; 4];
        // Lower page whatever page is selected; page 03h above 127.
        e.read(I2C_LOW, 3, 0, &mut b[..1]).unwrap();
        assert_eq!(b[0], 0x11);
        e.read(I2C_LOW, 3, 128, &mut b[..2]).unwrap();
        assert_eq!(b[..2], 19200u16.to_be_bytes());
        assert_eq!(e.read(I2C_LOW, 2, 128, &mut b), Err(mcia_status::I2C_ERROR));
        assert_eq!(
            e.read(I2C_HIGH, 0, 0, &mut b),
            Err(mcia_status::NO_EEPROM_MODULE)
        );
        let sr = ModuleKind::Sr10g.eeprom();
        sr.read(I2C_HIGH, 0, 96, &mut b[..2]).unwrap();
        assert_eq!(b[..2], 9088u16.to_be_bytes());
    }
}
