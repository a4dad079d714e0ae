//! Link aggregations over mlx5 ports (issue 19): `aggr<N>` is an
//! interface whose device is a [`cxos_net::aggr::Aggr`] over one VNIC per
//! member port, each created with the aggregation's MAC (the first
//! member's permanent MAC), so one address is programmed on every
//! member's vport and steering. A member port's own interface `net<i>`
//! (its port VNIC, and with it its addresses) is taken away while it is a
//! member and comes back when the aggregation is deleted (or its
//! adapter detached).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use alloc::sync::Arc;

use cxos_kernel::aggr_def::{AggrDef, aggr_name};
use cxos_kernel::vnic_def::{Over, VnicDef};
use cxos_net::aggr::{Aggr, AggrState, AggrVnic};
use cxos_net::lacp;
use cxos_net::smoltcp::wire::EthernetAddress;
use mlx5::Resources;
use mlx5::vnic::VnicSpec;
use spin::Mutex;

use super::{Mlx5Vnic, SLOTS, Slot, State};
use crate::{netstack, println};

/// The aggregation's device.
pub type AggrDev = Aggr<Mlx5Vnic>;
/// The device of a VNIC on an aggregation (`vnic.<N>=over:aggr<n>,...`).
pub type AggrVnicDev = AggrVnic<Mlx5Vnic>;

/// A live aggregation: its number, definition, what its VNICs follow and
/// the VNICs on it.
struct Live {
    n: u32,
    def: AggrDef,
    state: Arc<AggrState>,
    vnics: Vec<u32>,
}

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

/// The open port `net<index>`: its slot.
fn open_slot(slots: &mut [Slot], index: usize) -> Option<&mut Slot> {
    slots
        .iter_mut()
        .find(|s| s.index == index && matches!(s.state, State::Open(_)))
}

/// The permanent MAC of port `net<index>`.
fn port_mac(slots: &mut [Slot], index: usize) -> Option<[u8; 6]> {
    let slot = open_slot(slots, index)?;
    let State::Open(o) = &mut slot.state else {
        return None;
    };
    o.nic
        .with_adapter(|a| Resources::of(a).ok().map(|r| r.mac.0))
}

/// A VNIC with `mac` on port `net<index>`.
fn create_on(slots: &mut [Slot], index: usize, mac: [u8; 6]) -> Result<Mlx5Vnic, String> {
    create_spec(
        slots,
        index,
        VnicSpec {
            mac: Some(mlx5::Mac(mac)),
            ..VnicSpec::default()
        },
    )
}

/// A VNIC as `spec` says on port `net<index>`.
fn create_spec(slots: &mut [Slot], index: usize, spec: VnicSpec) -> Result<Mlx5Vnic, String> {
    let slot = open_slot(slots, index).ok_or_else(|| format!("net{index} is not open"))?;
    let State::Open(o) = &mut slot.state else {
        return Err(format!("net{index} is not open"));
    };
    o.nic.create(spec).map_err(|e| format!("net{index}: {e}"))
}

/// VNIC `n` on every member port of an aggregation (one MAC: the first
/// port's choice when `def` lets the driver pick), registered as
/// interface `vnic<n>`; its status line, or why not.
fn create_vnic_on(
    slots: &mut [Slot],
    ports: &[usize],
    state: Arc<AggrState>,
    n: u32,
    def: &VnicDef,
) -> Result<String, String> {
    let mut members: Vec<Mlx5Vnic> = Vec::new();
    let mut mac = def.spec.mac;
    for &i in ports {
        match create_spec(slots, i, VnicSpec { mac, ..def.spec }) {
            Ok(v) => {
                mac = Some(v.mac());
                members.push(v);
            }
            Err(e) => {
                for v in members {
                    v.destroy();
                }
                return Err(e);
            }
        }
    }
    let dev = AggrVnic::new(members, state).map_err(|(devs, e)| {
        for v in devs {
            v.destroy();
        }
        format!("{e}")
    })?;
    netstack::open_with(&format!("vnic{n}"), dev, &def.ip).map_err(|(dev, why)| {
        for v in dev.into_members() {
            v.destroy();
        }
        why
    })
}

/// `vnic create over:aggr<a> ...`: VNIC `n` on aggregation `a` (`None`: no
/// such aggregation).
pub fn add_vnic(n: u32, a: u8, def: &VnicDef) -> Option<Result<String, String>> {
    let mut slots = SLOTS.lock();
    let mut live = LIVE.lock();
    let l = live.iter_mut().find(|l| l.n == u32::from(a))?;
    if l.vnics.contains(&n) {
        return Some(Err(format!("vnic{n} exists")));
    }
    let r = create_vnic_on(&mut slots, &l.def.ports, l.state.clone(), n, def);
    if r.is_ok() {
        l.vnics.push(n);
    }
    Some(r)
}

/// Destroy VNIC `n` if it is on an aggregation.
pub fn remove_vnic(n: u32) -> Option<mlx5::CloseReport> {
    let mut live = LIVE.lock();
    let l = live.iter_mut().find(|l| l.vnics.contains(&n))?;
    l.vnics.retain(|m| *m != n);
    let dev = netstack::close::<AggrVnicDev>(&format!("vnic{n}"), None)?;
    let mut rep = mlx5::CloseReport::default();
    for v in dev.into_members() {
        let r = v.destroy();
        rep.errors += r.errors;
        if rep.first_error.is_none() {
            rep.first_error = r.first_error;
        }
    }
    Some(rep)
}

/// Port `net<index>` gets its own interface back (its port VNIC).
fn reopen_port(slots: &mut [Slot], index: usize) {
    let name = format!("net{index}");
    let Some(mac) = port_mac(slots, index) else {
        return;
    };
    match create_on(slots, index, mac) {
        Ok(v) => match netstack::open(&name, v) {
            Ok(line) => println!("{line}"),
            Err((v, why)) => {
                v.destroy();
                println!("{name}: not reopened: {why}");
            }
        },
        Err(e) => println!("{name}: not reopened: {e}"),
    }
}

/// `aggr create <name> ...` (and `aggr.<n>=`): the interface's status
/// line, or why not.
pub fn create(n: u32, def: &AggrDef) -> Result<String, String> {
    let mut slots = SLOTS.lock();
    create_locked(&mut slots, n, def)
}

fn create_locked(slots: &mut [Slot], n: u32, def: &AggrDef) -> Result<String, String> {
    let name = aggr_name(n);
    let mut live = LIVE.lock();
    if live.iter().any(|l| l.n == n) {
        return Err(format!("{name} exists"));
    }
    if let Some((l, p)) = live.iter().find_map(|l| {
        def.ports
            .iter()
            .find(|p| l.def.ports.contains(p))
            .map(|p| (l, p))
    }) {
        return Err(format!("net{p} is a member of {}", aggr_name(l.n)));
    }
    let mut macs = Vec::new();
    for &i in &def.ports {
        macs.push(port_mac(slots, i).ok_or_else(|| format!("net{i} is not open"))?);
    }
    let mac = macs[0];
    // The members' own interfaces go (their VNICs hold the MACs).
    for &i in &def.ports {
        if let Some(v) =
            netstack::close::<Mlx5Vnic>(&format!("net{i}"), Some(&format!("member of {name}")))
        {
            v.destroy();
        }
    }
    let mut members = Vec::new();
    for (&i, &own) in def.ports.iter().zip(&macs) {
        match create_on(slots, i, mac) {
            Ok(v) => members.push((v, own)),
            Err(e) => {
                for (v, _) in members {
                    v.destroy();
                }
                for &j in &def.ports {
                    reopen_port(slots, j);
                }
                return Err(e);
            }
        }
    }
    let mut config = lacp::Config::new(EthernetAddress(mac));
    config.mode = def.mode;
    config.rate = def.rate;
    config.policy = def.policy;
    let undo = |slots: &mut [Slot], devs: Vec<Mlx5Vnic>| {
        for v in devs {
            v.destroy();
        }
        for &j in &def.ports {
            reopen_port(slots, j);
        }
    };
    let aggr: AggrDev = match Aggr::new(members, config, Box::new(netstack::now)) {
        Ok(a) => a,
        Err((devs, e)) => {
            undo(slots, devs);
            return Err(format!("{e}"));
        }
    };
    let state = aggr.state();
    match netstack::open_with(&name, aggr, &def.ip) {
        Ok(line) => {
            // The VNICs defined on it.
            let mut vnics = Vec::new();
            for (vn, d) in crate::vnics::list() {
                if d.over != Over::Aggr(n as u8) {
                    continue;
                }
                match create_vnic_on(slots, &def.ports, state.clone(), vn, &d) {
                    Ok(l) => {
                        println!("{l}");
                        vnics.push(vn);
                    }
                    Err(e) => println!("vnic{vn}: not created: {e}"),
                }
            }
            live.push(Live {
                n,
                def: def.clone(),
                state,
                vnics,
            });
            Ok(line)
        }
        Err((aggr, why)) => {
            undo(slots, aggr.into_members());
            Err(why)
        }
    }
}

/// `aggr delete <name>`: the report line, or why not.
pub fn delete(n: u32) -> Result<String, String> {
    let mut slots = SLOTS.lock();
    delete_locked(&mut slots, n)
}

fn delete_locked(slots: &mut [Slot], n: u32) -> Result<String, String> {
    let name = aggr_name(n);
    let (def, vnics) = {
        let mut live = LIVE.lock();
        let i = live
            .iter()
            .position(|l| l.n == n)
            .ok_or_else(|| format!("no {name}"))?;
        let l = live.remove(i);
        (l.def, l.vnics)
    };
    let mut errors = 0;
    // Its VNICs first (they stay defined: created again with it).
    for vn in vnics {
        if let Some(dev) = netstack::close::<AggrVnicDev>(&format!("vnic{vn}"), None) {
            for v in dev.into_members() {
                errors += v.destroy().errors;
            }
        }
    }
    if let Some(aggr) = netstack::close::<AggrDev>(&name, None) {
        for m in aggr.into_members() {
            errors += m.destroy().errors;
        }
    }
    for &i in &def.ports {
        reopen_port(slots, i);
    }
    Ok(format!("{name}: deleted, {errors} errors"))
}

/// Before the port at `index` is detached: its aggregation goes (the
/// other members get their interfaces back).
pub(super) fn release_port(slots: &mut [Slot], index: usize) {
    let n = LIVE
        .lock()
        .iter()
        .find(|l| l.def.ports.contains(&index))
        .map(|l| l.n);
    if let Some(n) = n
        && let Ok(line) = delete_locked(slots, n)
    {
        println!("{line} (member net{index} detached)");
    }
}

/// Every aggregation goes (before every adapter is detached).
pub(super) fn release_all(slots: &mut [Slot]) {
    let all: Vec<u32> = LIVE.lock().iter().map(|l| l.n).collect();
    for n in all {
        if let Ok(line) = delete_locked(slots, n) {
            println!("{line}");
        }
    }
}

/// The command line's `aggr.<n>=` definitions, once the ports are open.
pub fn init(defs: &[(u32, String)]) {
    for (n, text) in defs {
        match text.parse::<AggrDef>() {
            Ok(def) => match create(*n, &def) {
                Ok(line) => println!("{line}"),
                Err(e) => println!("{}: not created: {e}", aggr_name(*n)),
            },
            Err(e) => {
                println!("cmdline: bad value '{text}' for 'aggr.{n}', using no aggregation");
                println!("cmdline: ({e})");
            }
        }
    }
}

/// The periodic queue checks ([`super::faults::check_all`]) of every
/// aggregation's members and of the VNICs on aggregations: their port
/// interfaces are closed while they are members, so the ports' own checks
/// do not reach them.
pub(super) fn check_all() {
    let live: Vec<(u32, Vec<u32>)> = LIVE.lock().iter().map(|l| (l.n, l.vnics.clone())).collect();
    for (n, vnics) in live {
        netstack::with_net::<AggrDev, _>(&aggr_name(n), |net| {
            let aggr = net.device_mut();
            for i in 0..aggr.member_count() {
                if let Some(m) = aggr.member_mut(i) {
                    m.queue_set_mut().check();
                }
            }
        });
        for vn in vnics {
            netstack::with_net::<AggrVnicDev, _>(&format!("vnic{vn}"), |net| {
                let dev = net.device_mut();
                let mut i = 0;
                while let Some(m) = dev.member_mut(i) {
                    m.queue_set_mut().check();
                    i += 1;
                }
            });
        }
    }
}

/// `vnics`' lines for the VNICs on aggregations: the driver's line of
/// the first member (MAC, VLAN, queues) with counters summed over every
/// member, which aggregation and ports it is over, its addresses and its
/// flow rules' traffic on all members.
pub fn vnic_lines() -> Vec<String> {
    let live: Vec<(u32, Vec<usize>, Vec<u32>)> = LIVE
        .lock()
        .iter()
        .map(|l| (l.n, l.def.ports.clone(), l.vnics.clone()))
        .collect();
    let mut out = Vec::new();
    for (n, ports, vnics) in live {
        let over = ports
            .iter()
            .map(|i| format!("net{i}"))
            .collect::<Vec<_>>()
            .join("+");
        for vn in vnics {
            let name = format!("vnic{vn}");
            if let Some(line) = netstack::with_net::<AggrVnicDev, _>(&name, |net| {
                aggr_vnic_line(net, &aggr_name(n), &over)
            }) {
                out.push(line);
            }
        }
    }
    out
}

fn aggr_vnic_line(net: &cxos_net::NetIf<AggrVnicDev>, aggr: &str, over: &str) -> String {
    let dev = net.device();
    let Some(first) = dev.member(0) else {
        return format!("{} over {aggr}: no members", net.name());
    };
    let mut info = first.info();
    let (mut flow_pkts, mut flow_bytes, mut flow_err) = (0, 0, None);
    for m in (1..).map_while(|i| dev.member(i)) {
        let i = m.info();
        info.rx_packets += i.rx_packets;
        info.rx_bytes += i.rx_bytes;
        info.tx_packets += i.tx_packets;
        info.tx_bytes += i.tx_bytes;
        info.rx_no_buffer += i.rx_no_buffer;
        info.errors += i.errors;
    }
    for m in (0..).map_while(|i| dev.member(i)) {
        match m.flow_traffic() {
            Ok(t) => {
                flow_pkts += t.packets;
                flow_bytes += t.bytes;
            }
            Err(e) => flow_err = Some(format!("{e}")),
        }
    }
    let report = cxos_kernel::mlx5_report::vnic_line(&info);
    // The driver's line starts with the first member's own id.
    let rest = report.split_once(' ').map_or("", |(_, r)| r);
    let v4 = net
        .ipv4()
        .map_or_else(|| String::from("none"), |a| format!("{a}"));
    let dhcp = if matches!(net.config().ipv4, cxos_net::config::Ipv4Config::Dhcp) {
        " (dhcp)"
    } else {
        ""
    };
    let flow = match flow_err {
        None => format!("flow {flow_pkts} pkts {flow_bytes} B"),
        Some(e) => format!("flow ? ({e})"),
    };
    // The aggregation's link: up while any member distributes.
    let link = if cxos_drivers::NetDevice::link(dev).up {
        "up"
    } else {
        "down"
    };
    format!(
        "{} {rest} over {aggr} ({over}) link {link} ipv4 {v4}{dhcp} ipv6 {} {flow}",
        net.name(),
        net.ipv6_link_local()
    )
}

/// `aggr show [-L]`: one line per aggregation, one per member (client
/// traffic, then the Slow Protocols frames it sent and received) and one
/// naming the VNICs on it (when there are any); `-L`
/// adds each member's LACP state (actor and partner system, key, port
/// and state bits, selected, mux state, LACPDUs in and out).
pub fn show(long: bool) -> Vec<String> {
    let live: Vec<(u32, AggrDef, Vec<u32>)> = LIVE
        .lock()
        .iter()
        .map(|l| (l.n, l.def.clone(), l.vnics.clone()))
        .collect();
    let mut out = Vec::new();
    for (n, def, vnics) in live {
        let name = aggr_name(n);
        let lines = netstack::with_net::<AggrDev, _>(&name, |net| {
            let aggr = net.device();
            let link = cxos_drivers::NetDevice::link(aggr);
            let m = mac_text(aggr.lacp().config().system.mac.0);
            let mut lines = Vec::new();
            lines.push(format!(
                "{name}: {} ports, mac {m}, {}, link {} {} Mb/s",
                def.ports.len(),
                def.describe(),
                if link.up { "up" } else { "down" },
                link.speed_mbps
            ));
            for (k, &i) in def.ports.iter().enumerate() {
                let Some(r) = aggr.report(k) else { continue };
                let c = r.counters;
                lines.push(format!(
                    "  net{i}: link {}, {}, tx {} frames {} bytes, rx {} frames {} bytes, lacp tx {} rx {}",
                    if r.link.up { "up" } else { "down" },
                    if r.distributing {
                        "collecting-distributing"
                    } else {
                        "not distributing"
                    },
                    c.tx_frames,
                    c.tx_bytes,
                    c.rx_frames,
                    c.rx_bytes,
                    c.lacp_tx_frames,
                    c.lacp_rx_frames
                ));
                if let (true, Some(l)) = (long, r.lacp) {
                    lines.push(format!(
                        "    actor: system {} key {} port {} state {}",
                        mac_text(l.actor.system.mac.0),
                        l.actor.key,
                        l.actor.port,
                        state_bits(l.actor.state)
                    ));
                    lines.push(format!(
                        "    partner: system {} key {} port {} state {}",
                        mac_text(l.partner.system.mac.0),
                        l.partner.key,
                        l.partner.port,
                        state_bits(l.partner.state)
                    ));
                    lines.push(format!(
                        "    selected {:?}, mux {:?}, rx {:?}, collecting {}, distributing {}, lacpdus in {} out {}, bad {}",
                        l.selected,
                        l.mux_state,
                        l.rx_state,
                        l.collecting,
                        l.distributing,
                        l.lacpdus_rx,
                        l.lacpdus_tx,
                        l.bad_pdus
                    ));
                }
            }
            if !vnics.is_empty() {
                let names: Vec<String> = vnics.iter().map(|v| format!("vnic{v}")).collect();
                lines.push(format!("  vnics: {}", names.join(" ")));
            }
            lines
        })
        .unwrap_or_else(|| alloc::vec![format!("{name}: not open")]);
        out.extend(lines);
    }
    out
}

fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Actor/partner state as `dladm show-aggr -L` spells its flags.
fn state_bits(s: lacp::PortState) -> String {
    let mut out = Vec::new();
    for (on, n) in [
        (s.lacp_activity(), "active"),
        (s.lacp_timeout(), "short"),
        (s.aggregation(), "aggregatable"),
        (s.synchronization(), "sync"),
        (s.collecting(), "collecting"),
        (s.distributing(), "distributing"),
        (s.defaulted(), "defaulted"),
        (s.expired(), "expired"),
    ] {
        if on {
            out.push(n);
        }
    }
    if out.is_empty() {
        String::from("-")
    } else {
        out.join(",")
    }
}
