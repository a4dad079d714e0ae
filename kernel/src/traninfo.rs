//! `traninfo`: a port's transceiver as text, like `dltraninfo -v` and
//! `ethtool -m` show it (decoded fields, diagnostics with their alarm and
//! warning thresholds), or its EEPROM as a hex dump (`-x`).

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use cxos_drivers::PciAddress;
use mlx5::module::{ModuleImage, ModuleState, PortError};
use mlx5::sff::{self, Diagnostics, Reach, Transceiver};

/// The text for one port: its module state, then the decoded module (or
/// why it could not be read), or with `hex` the pages read.
pub fn traninfo(
    addr: PciAddress,
    state: Result<ModuleState, PortError>,
    image: Option<Result<ModuleImage, PortError>>,
    hex: bool,
) -> String {
    let mut out = String::new();
    match state {
        Ok(s) => {
            let _ = writeln!(out, "{addr} module: {s}");
        }
        Err(e) => {
            let _ = writeln!(out, "{addr} module: {e}");
        }
    }
    match image {
        None => {}
        Some(Err(e)) => {
            let _ = writeln!(out, "  unreadable: {e}");
        }
        Some(Ok(img)) if hex => {
            dump(&mut out, "0x50 page 0", 0, &img.low);
            if let Some(a2) = &img.a2 {
                dump(&mut out, "0x51 page 0", 0, a2);
            }
            if let Some(p3) = &img.page3 {
                dump(&mut out, "0x50 page 3", 128, p3);
            }
        }
        Some(Ok(img)) => match img.decode() {
            Ok(t) => fields(&mut out, &t),
            Err(e) => {
                let _ = writeln!(out, "  undecodable: {e}");
            }
        },
    }
    out
}

fn dump(out: &mut String, what: &str, base: usize, b: &[u8]) {
    let _ = writeln!(out, "  {what}:");
    for (i, row) in b.chunks(16).enumerate() {
        let _ = write!(out, "  {:04x}:", base + 16 * i);
        for x in row {
            let _ = write!(out, " {x:02x}");
        }
        out.push('\n');
    }
}

fn fields(out: &mut String, t: &Transceiver) {
    let mut f = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<16}{v}");
    };
    f("identifier", String::from(t.identifier.name()));
    f("vendor", t.vendor.clone());
    f(
        "vendor oui",
        format!("{:02x}:{:02x}:{:02x}", t.oui[0], t.oui[1], t.oui[2]),
    );
    f("part number", t.pn.clone());
    f("revision", t.rev.clone());
    f("serial number", t.sn.clone());
    f("date code", t.date.clone());
    f(
        "connector",
        format!(
            "{} ({:#04x})",
            sff::connector_name(t.connector),
            t.connector
        ),
    );
    f("media", String::from(t.media));
    f("nominal rate", format!("{} MBd", t.nominal_mbd));
    match t.reach {
        Reach::CopperM(m) => f("length", format!("{m} m copper")),
        Reach::Om3M(m) => f("length", format!("{m} m OM3")),
        Reach::Unknown => {}
    }
    if let Some(w) = t.wavelength_nm {
        f("wavelength", format!("{w} nm"));
    }
    if let Some(d) = &t.diagnostics {
        diagnostics(out, d);
    }
}

/// Hundredths of a unit, signed: `35.50`.
fn centi(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", v.abs() / 100, v.abs() % 100)
}

fn diagnostics(out: &mut String, d: &Diagnostics) {
    // Temperature 1/256 degC, Vcc 100 uV, bias 2 uA, power 0.1 uW (SFF).
    let temp = |v: i16| centi(i64::from(v) * 100 / 256);
    let vcc = |v: u16| centi(i64::from(v) / 100);
    let bias = |v: u16| centi(i64::from(v) * 2 / 10);
    let power = |v: u16| centi(i64::from(v) / 100);
    let line = |out: &mut String, k: &str, unit: &str, now: String, t: [String; 4]| {
        let _ = writeln!(
            out,
            "  {k:<16}{now} {unit} (alarm {}..{}, warning {}..{})",
            t[1], t[0], t[3], t[2]
        );
    };
    line(
        out,
        "temperature",
        "C",
        temp(d.temperature),
        d.temp_thresholds.map(temp),
    );
    line(out, "vcc", "V", vcc(d.vcc), d.vcc_thresholds.map(vcc));
    line(
        out,
        "tx bias",
        "mA",
        bias(d.tx_bias),
        d.bias_thresholds.map(bias),
    );
    line(
        out,
        "tx power",
        "mW",
        power(d.tx_power),
        d.tx_power_thresholds.map(power),
    );
    line(
        out,
        "rx power",
        "mW",
        power(d.rx_power),
        d.rx_power_thresholds.map(power),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn addr() -> PciAddress {
        crate::pci::parse_address("01:00.0").unwrap()
    }

    #[test]
    fn errors_and_states_are_readable_lines() {
        assert_eq!(
            traninfo(addr(), Ok(ModuleState::Unplugged), None, false),
            "01:00.0 module: unplugged\n"
        );
        let e = PortError::Mcia {
            status: 3,
            i2c: 0x50,
            page: 0,
            offset: 0,
        };
        assert_eq!(
            traninfo(addr(), Ok(ModuleState::Plugged), Some(Err(e)), false),
            "01:00.0 module: plugged\n  unreadable: MCIA status 0x3 (module not connected) reading 0x50 page 0 byte 0\n"
        );
        let img = ModuleImage {
            low: vec![0x18; 256],
            ..Default::default()
        };
        assert_eq!(
            traninfo(
                addr(),
                Ok(ModuleState::Plugged),
                Some(Ok(img.clone())),
                false
            ),
            "01:00.0 module: plugged\n  undecodable: unknown identifier 0x18 (SFF-8024)\n"
        );
        let hex = traninfo(addr(), Ok(ModuleState::Plugged), Some(Ok(img)), true);
        assert!(hex.contains("  0x50 page 0:\n  0000: 18 18 18"), "{hex}");
        assert_eq!(hex.lines().count(), 2 + 16);
    }

    #[test]
    fn diagnostics_in_units() {
        let d = Diagnostics {
            temperature: 9088,
            vcc: 33000,
            tx_bias: 3250,
            tx_power: 5500,
            rx_power: 4800,
            temp_thresholds: [19200, -1280, 17920, 0],
            vcc_thresholds: [36300, 29700, 34650, 31350],
            bias_thresholds: [7500, 1000, 6000, 1500],
            tx_power_thresholds: [15849, 1000, 12589, 1259],
            rx_power_thresholds: [15849, 100, 12589, 158],
        };
        let mut s = String::new();
        diagnostics(&mut s, &d);
        assert!(
            s.contains("temperature     35.50 C (alarm -5.00..75.00, warning 0.00..70.00)"),
            "{s}"
        );
        assert!(s.contains("vcc             3.30 V"), "{s}");
        assert!(s.contains("tx bias         6.50 mA"), "{s}");
        assert!(s.contains("rx power        0.48 mW"), "{s}");
    }
}
