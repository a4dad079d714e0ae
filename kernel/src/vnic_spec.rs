//! The VNIC part of the `vnic.<N>=` / `vnic create` syntax: the
//! `mac:`, `vlan:` and `queues:` items of a [`VnicSpec`] (the driver's
//! description of a VNIC), parsed here and printed back ([`SpecText`]).
//! The shell's `ip:` items around them are the caller's.

use alloc::string::String;
use core::fmt;

use mlx5::Mac;
use mlx5::vnic::{VnicSpec, valid_queues};

/// Why a [`VnicSpec`] did not parse.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SpecError {
    BadMac(String),
    BadVlan(String),
    BadQueues(String),
    UnknownKey(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::BadMac(s) => write!(f, "bad MAC address '{s}'"),
            SpecError::BadVlan(s) => write!(f, "bad VLAN id '{s}' (1..=4094)"),
            SpecError::BadQueues(s) => write!(f, "bad queue count '{s}' (1, 2, 4 .. 64)"),
            SpecError::UnknownKey(s) => write!(f, "unknown VNIC setting '{s}'"),
        }
    }
}

impl core::error::Error for SpecError {}

fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in m.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(Mac(m))
}

/// `mac:02:00:00:00:00:01,vlan:10,queues:2`: each optional, any order
/// (`=` works as well as `:` after the key).
pub fn parse(s: &str) -> Result<VnicSpec, SpecError> {
    let mut spec = VnicSpec::default();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = match item.find([':', '=']) {
            Some(i) => (&item[..i], &item[i + 1..]),
            None => (item, ""),
        };
        match key {
            "mac" => {
                spec.mac = Some(parse_mac(value).ok_or(SpecError::BadMac(value.into()))?);
            }
            "vlan" => {
                let v: u16 = value
                    .parse()
                    .map_err(|_| SpecError::BadVlan(value.into()))?;
                if !(1..=4094).contains(&v) {
                    return Err(SpecError::BadVlan(value.into()));
                }
                spec.vlan = Some(v);
            }
            "queues" => {
                let q: u8 = value
                    .parse()
                    .map_err(|_| SpecError::BadQueues(value.into()))?;
                if !valid_queues(q) {
                    return Err(SpecError::BadQueues(value.into()));
                }
                spec.queues = q;
            }
            _ => return Err(SpecError::UnknownKey(item.into())),
        }
    }
    Ok(spec)
}

/// A [`VnicSpec`] as [`parse`] reads it: `mac:..,vlan:..,queues:..`
/// (the MAC and VLAN only when set).
#[derive(Clone, Copy, Debug)]
pub struct SpecText<'a>(pub &'a VnicSpec);

impl fmt::Display for SpecText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = self.0;
        let mut sep = "";
        if let Some(m) = spec.mac {
            write!(f, "mac:{m}")?;
            sep = ",";
        }
        if let Some(v) = spec.vlan {
            write!(f, "{sep}vlan:{v}")?;
            sep = ",";
        }
        write!(f, "{sep}queues:{}", spec.queues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_round_trips() {
        let s: VnicSpec = parse("mac:02:00:00:00:00:01,vlan:10,queues:2").unwrap();
        assert_eq!(
            s,
            VnicSpec {
                mac: Some(Mac([2, 0, 0, 0, 0, 1])),
                vlan: Some(10),
                queues: 2
            }
        );
        assert_eq!(
            alloc::format!("{}", SpecText(&s)),
            "mac:02:00:00:00:00:01,vlan:10,queues:2"
        );
        assert_eq!(parse(&alloc::format!("{}", SpecText(&s))).unwrap(), s);
        assert_eq!(parse("").unwrap(), VnicSpec::default());
        assert_eq!(
            alloc::format!("{}", SpecText(&VnicSpec::default())),
            "queues:1"
        );
        assert_eq!(parse("vlan=20").unwrap().vlan, Some(20), "= works too");
        for (bad, want) in [
            ("vlan:0", SpecError::BadVlan("0".into())),
            ("vlan:4095", SpecError::BadVlan("4095".into())),
            ("queues:3", SpecError::BadQueues("3".into())),
            ("queues:128", SpecError::BadQueues("128".into())),
            (
                "mac:02:00:00:00:00",
                SpecError::BadMac("02:00:00:00:00".into()),
            ),
            (
                "mac:02:00:00:00:00:001",
                SpecError::BadMac("02:00:00:00:00:001".into()),
            ),
            ("ip:dhcp", SpecError::UnknownKey("ip:dhcp".into())),
        ] {
            assert_eq!(parse(bad), Err(want), "{bad}");
        }
    }
}
