//! VNICs (feature `net`): extra interfaces `vnic<N>` on the first
//! ConnectX function, each a MAC (given or generated), optionally on a
//! VLAN, with its own receive queue(s) and its own network stack (own
//! addresses, static or DHCP). The adapter steers frames to them (the
//! driver's `mlx5::vnic`); nothing is demultiplexed in software.
//!
//! Defined by the command line (`vnic.<N>=...`) and the shell (`vnic
//! create|delete|list`); the definitions outlive a detach: every attach of
//! the first function creates them again.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use cxos_kernel::cmdline::MAX_VNICS;
use cxos_net::NetIf;
use cxos_net::config::IfConfig;
use mlx5::vnic::{Nic, VnicSpec};
use spin::Mutex;

use crate::mlx5nic::{self, Adp, Ifc};
use crate::netstack;
use crate::{println, runtime};

/// One VNIC's definition: `mac:<mac|auto>,vlan:<id>,ip:<cfg>,queues:<n>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VnicDef {
    pub spec: VnicSpec,
    pub ip: IfConfig,
}

/// IfConfig keys that continue an `ip:` item (`ip:10.0.0.2/24,gw=10.0.0.1`).
const IP_KEYS: &[&str] = &["gw=", "ip6=", "gw6=", "lease="];

impl FromStr for VnicDef {
    type Err = String;

    /// Items separated by ',' (or spaces), any order, each optional:
    /// `mac:<aa:bb:cc:dd:ee:ff|auto>` (default auto: a generated locally
    /// administered MAC), `vlan:<1..4094>` (default untagged),
    /// `queues:<1|2|4..64>` (default 1), `ip:<dhcp|none|a.b.c.d/nn>`
    /// (default none) followed by cxos-net's `gw=`, `ip6=`, `gw6=`,
    /// `lease=` items.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut spec_items: Vec<&str> = Vec::new();
        let mut ip: Option<String> = None;
        for item in s.split([',', ' ']).map(str::trim).filter(|i| !i.is_empty()) {
            if let Some(v) = item
                .strip_prefix("ip:")
                .or_else(|| item.strip_prefix("ip="))
            {
                if ip.is_some() {
                    return Err("ip given twice".into());
                }
                ip = Some(v.to_string());
            } else if IP_KEYS.iter().any(|k| item.starts_with(k)) {
                let Some(cfg) = ip.as_mut() else {
                    return Err(format!("'{item}' needs ip: before it"));
                };
                cfg.push(',');
                cfg.push_str(item);
            } else if item != "mac:auto" && item != "mac=auto" {
                spec_items.push(item);
            }
        }
        let spec =
            cxos_kernel::vnic_spec::parse(&spec_items.join(",")).map_err(|e| format!("{e}"))?;
        let ip = IfConfig::from_str(ip.as_deref().unwrap_or("none")).map_err(|e| format!("{e}"))?;
        Ok(VnicDef { spec, ip })
    }
}

impl fmt::Display for VnicDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.spec.mac.is_none() {
            f.write_str("mac:auto,")?;
        }
        write!(
            f,
            "{},ip:{}",
            cxos_kernel::vnic_spec::SpecText(&self.spec),
            self.ip
        )
    }
}

/// The definitions, by number.
static DEFS: Mutex<Vec<(u32, VnicDef)>> = Mutex::new(Vec::new());

/// Take the command line's `vnic.<N>=` values (printing the contract's
/// diagnostic for a bad one).
pub fn init(vnics: &[(u32, String)]) {
    let mut defs = DEFS.lock();
    for (n, text) in vnics {
        match VnicDef::from_str(text) {
            Ok(d) => defs.push((*n, d)),
            Err(e) => {
                println!("cmdline: bad value '{text}' for 'vnic.{n}', using no VNIC");
                println!("cmdline: ({e})");
            }
        }
    }
    defs.sort_by_key(|(n, _)| *n);
}

/// Create VNIC `n` on `nic` with its stack.
fn create(nic: &Nic<Adp>, n: u32, def: &VnicDef) -> Result<Ifc, String> {
    let vnic = nic.create(def.spec).map_err(|e| format!("{e}"))?;
    NetIf::new(&format!("vnic{n}"), vnic, &def.ip, netstack::now()).map_err(|e| {
        e.device.destroy();
        format!("{}", e.error)
    })
}

/// Every defined VNIC on a freshly opened adapter: its status line, or
/// `vnic<N>: not created: <why>`.
pub fn create_all(nic: &Nic<Adp>) -> Vec<(u32, Ifc)> {
    let defs = DEFS.lock().clone();
    let mut out = Vec::new();
    for (n, def) in defs {
        match create(nic, n, &def) {
            Ok(net) => {
                println!("{}", net.status_line());
                out.push((n, net));
            }
            Err(e) => println!("vnic{n}: not created: {e}"),
        }
    }
    out
}

/// `vnic create <def>`: define the lowest free number and create it.
pub fn shell_create(text: &str) {
    let def = match VnicDef::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            println!("vnic: {e}");
            return;
        }
    };
    let n = {
        let mut defs = DEFS.lock();
        let Some(n) = (0..MAX_VNICS).find(|n| !defs.iter().any(|(m, _)| m == n)) else {
            println!("vnic: all {MAX_VNICS} VNIC numbers in use");
            return;
        };
        defs.push((n, def));
        defs.sort_by_key(|(m, _)| *m);
        n
    };
    match mlx5nic::add_vnic(n, |nic| create(nic, n, &def)) {
        Some(Ok(status)) => {
            println!("vnic{n}: created {def}");
            println!("{status}");
            runtime::wake_at(0);
        }
        Some(Err(e)) => {
            DEFS.lock().retain(|(m, _)| *m != n);
            println!("vnic: vnic{n} not created: {e}");
        }
        None => println!("vnic{n}: defined {def}; created when net0's adapter opens"),
    }
}

/// `vnic delete <N>`.
pub fn shell_delete(arg: &str) {
    let Some(n) = arg.strip_prefix("vnic").unwrap_or(arg).parse::<u32>().ok() else {
        println!("usage: vnic delete <N>");
        return;
    };
    let defined = {
        let mut defs = DEFS.lock();
        let before = defs.len();
        defs.retain(|(m, _)| *m != n);
        defs.len() != before
    };
    match mlx5nic::remove_vnic(n) {
        Some(rep) => match rep.first_error {
            None => println!("vnic{n}: deleted, {} errors", rep.errors),
            Some(e) => println!("vnic{n}: deleted, {} errors (first: {e})", rep.errors),
        },
        None if defined => println!("vnic{n}: deleted (was not created)"),
        None => println!("vnic: no vnic{n}"),
    }
}

/// `vnic list`: the definitions, one line each.
pub fn shell_list() {
    let defs = DEFS.lock().clone();
    if defs.is_empty() {
        println!("vnic: no VNICs");
    }
    for (n, def) in defs {
        let state = if mlx5nic::with_iface(&format!("vnic{n}"), |_| ()).is_some() {
            "up"
        } else {
            "not created"
        };
        println!("vnic{n} {def} {state}");
    }
}

/// `ifconfig vnic<N> <cfg>`: reconfigure its stack (and its definition).
pub fn reconfigure(n: u32, cfg: &IfConfig) -> Option<String> {
    let mut defs = DEFS.lock();
    let def = defs.iter_mut().find(|(m, _)| *m == n)?;
    def.1.ip = *cfg;
    drop(defs);
    let line = mlx5nic::with_iface(&format!("vnic{n}"), |net| {
        net.reconfigure(cfg);
        net.status_line()
    });
    runtime::wake_at(0);
    Some(line.unwrap_or_else(|| format!("vnic{n}: not created; {cfg} used when it is")))
}
