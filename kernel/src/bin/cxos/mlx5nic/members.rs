//! Link aggregations over mlx5 ports (issue 19): `aggr<N>` is an
//! interface whose device is a [`cxos_net::aggr::Aggr`] over one VNIC per
//! member port, each created with the aggregation's MAC (the first
//! member's permanent MAC), so one address is programmed on every
//! member's vport and steering. A member port's own interface `net<i>`
//! (its port VNIC, and with it its addresses) is taken away while it is a
//! member and comes back when the aggregation is deleted (or its
//! adapter detached).
//!
//! SMP (issue 21): a VNIC on an aggregation is placed as one on a port
//! (`cpu:` or round-robin, [`VnicDef::owner_cpu`]): its member VNICs'
//! queues are on that CPU's queue set (their completion vectors wake it)
//! and its stack, sockets and apps are in that CPU's interface table, so
//! only that CPU polls it. The aggregation itself (`aggr<N>`: its
//! members, its LACP machines and its Slow Protocols frames) stays on the
//! boot CPU with the ports' own interfaces it replaces: LACP's periodic
//! transmit and timeouts run from its poll deadline on the boot CPU's
//! timers, and `aggr show`, delete and a member's detach reach its state
//! from the control plane there. A VNIC on another CPU only reads what
//! LACP decided: [`cxos_net::aggr::AggrState`], atomics the
//! aggregation's poll publishes (Release) and the VNIC's transmit and
//! receive read (Acquire); it picks up a change at its next poll (an
//! interrupt, its own deadline, or its CPU's tick). The periodic queue
//! checks, `aggr delete`/`create` and a member's detach reach a VNIC
//! wherever it runs: through its owner's table (`netstack::close`,
//! `netstack::with_net_lent`, which wakes the owner after).

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
use mlx5::vnic::{Nic, VnicSpec};
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

/// A member port's shared adapter (a clone of its `Nic`), by `net<i>`
/// index: the aggregation's VNICs are made and destroyed on these with
/// neither the slot table nor [`LIVE`] held, so their commands wait
/// cooperatively ([`super::cmdwait::run`]).
type PortNic = (usize, Nic<super::Mlx5Adapter>);

/// The open ports `ports`' `Nic`s (those open; `Err` names the first
/// that is not, when `all`).
fn port_nics(slots: &[Slot], ports: &[usize], all: bool) -> Result<Vec<PortNic>, String> {
    let mut out = Vec::new();
    for &i in ports {
        match slots.iter().find(|s| s.index == i).map(|s| &s.state) {
            Some(State::Open(o)) => out.push((i, o.nic.clone())),
            _ if all => return Err(format!("net{i} is not open")),
            _ => {}
        }
    }
    Ok(out)
}

fn nic_of(nics: &[PortNic], index: usize) -> Result<&Nic<super::Mlx5Adapter>, String> {
    nics.iter()
        .find(|(i, _)| *i == index)
        .map(|(_, n)| n)
        .ok_or_else(|| format!("net{index} is not open"))
}

/// The permanent MAC of port `net<index>`.
fn port_mac(nics: &[PortNic], index: usize) -> Option<[u8; 6]> {
    nic_of(nics, index)
        .ok()?
        .with_adapter(|a| Resources::of(a).ok().map(|r| r.mac.0))
}

/// A VNIC with `mac` on port `net<index>`.
fn create_on(nics: &[PortNic], index: usize, mac: [u8; 6]) -> Result<Mlx5Vnic, String> {
    create_spec(
        nics,
        index,
        VnicSpec {
            mac: Some(mlx5::Mac(mac)),
            ..VnicSpec::default()
        },
        0,
    )
}

/// A VNIC as `spec` says on port `net<index>`, on queue set `set` (its
/// CPU's: the completion vectors of its queues wake that CPU).
fn create_spec(
    nics: &[PortNic],
    index: usize,
    spec: VnicSpec,
    set: usize,
) -> Result<Mlx5Vnic, String> {
    let v = nic_of(nics, index)?
        .create_on(spec, set)
        .map_err(|e| format!("net{index}: {e}"))?;
    super::note_poller(index, v.queue_set().eq_indexes(), set);
    Ok(v)
}

/// VNIC `n` on every member port of an aggregation (one MAC: the first
/// port's choice when `def` lets the driver pick), registered as
/// interface `vnic<n>` owned by the CPU its definition places it on; its
/// status line, or why not.
fn create_vnic_on(
    nics: &[PortNic],
    ports: &[usize],
    state: Arc<AggrState>,
    n: u32,
    def: &VnicDef,
) -> Result<String, String> {
    let cpu = super::owner_cpu(n, def)?;
    let mut members: Vec<Mlx5Vnic> = Vec::new();
    let mut mac = def.spec.mac;
    for &i in ports {
        match create_spec(nics, i, VnicSpec { mac, ..def.spec }, cpu) {
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
    netstack::open_on(cpu, &format!("vnic{n}"), dev, &def.ip).map_err(|(dev, why)| {
        for v in dev.into_members() {
            v.destroy();
        }
        why
    })
}

/// `vnic create over:aggr<a> ...`: VNIC `n` on aggregation `a` (`None`: no
/// such aggregation). Its commands wait cooperatively, the tables let go.
pub fn add_vnic(n: u32, a: u8, def: &VnicDef) -> Option<Result<String, String>> {
    let (ports, state, nics) = {
        let slots = SLOTS.lock();
        let live = LIVE.lock();
        let l = live.iter().find(|l| l.n == u32::from(a))?;
        if l.vnics.contains(&n) {
            return Some(Err(format!("vnic{n} exists")));
        }
        let nics = match port_nics(&slots, &l.def.ports, true) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        (l.def.ports.clone(), l.state.clone(), nics)
    };
    let r = super::cmdwait::run(|_| create_vnic_on(&nics, &ports, state, n, def));
    if r.is_ok() {
        let mut live = LIVE.lock();
        match live.iter_mut().find(|l| l.n == u32::from(a)) {
            Some(l) => l.vnics.push(n),
            None => {
                // Its aggregation went meanwhile: take it back.
                drop(live);
                remove_dev(n);
                return Some(Err(format!("vnic{n}: aggr{a} went meanwhile")));
            }
        }
    }
    Some(r)
}

/// Close interface `vnic<n>` (a VNIC on an aggregation) and destroy its
/// member VNICs.
fn remove_dev(n: u32) -> Option<mlx5::CloseReport> {
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

/// Destroy VNIC `n` if it is on an aggregation (its commands wait
/// cooperatively, the aggregation table let go).
pub fn remove_vnic(n: u32) -> Option<mlx5::CloseReport> {
    {
        let mut live = LIVE.lock();
        let l = live.iter_mut().find(|l| l.vnics.contains(&n))?;
        l.vnics.retain(|m| *m != n);
    }
    super::cmdwait::run(|_| remove_dev(n))
}

/// Port `net<index>` gets its own interface back (its port VNIC).
fn reopen_port(nics: &[PortNic], index: usize) {
    let name = format!("net{index}");
    let Some(mac) = port_mac(nics, index) else {
        return;
    };
    let made = nic_of(nics, index).and_then(|nic| {
        super::portq::create(nic, index, mlx5::Mac(mac)).map_err(|e| format!("net{index}: {e}"))
    });
    match made {
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
/// line, or why not. Checked, and the member ports' `Nic`s taken, under
/// the tables; the VNICs are then made and the members' own interfaces
/// closed with neither table held, their commands waiting cooperatively
/// (the rest of the kernel runs meanwhile; a lost one costs its command
/// timeout and undoes the aggregation).
pub fn create(n: u32, def: &AggrDef) -> Result<String, String> {
    let name = aggr_name(n);
    let nics = {
        let slots = SLOTS.lock();
        let live = LIVE.lock();
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
        port_nics(&slots, &def.ports, true)?
    };
    let made = super::cmdwait::run(|_| create_with(n, def, &nics));
    let (live_entry, line) = made?;
    LIVE.lock().push(live_entry);
    Ok(line)
}

/// The commands of [`create`]: the aggregation's entry for [`LIVE`] and
/// its status line, or why not (everything undone).
fn create_with(n: u32, def: &AggrDef, nics: &[PortNic]) -> Result<(Live, String), String> {
    let name = aggr_name(n);
    let mut macs = Vec::new();
    for &i in &def.ports {
        macs.push(port_mac(nics, i).ok_or_else(|| format!("net{i} is not open"))?);
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
        match create_on(nics, i, mac) {
            Ok(v) => members.push((v, own)),
            Err(e) => {
                for (v, _) in members {
                    v.destroy();
                }
                for &j in &def.ports {
                    reopen_port(nics, j);
                }
                return Err(e);
            }
        }
    }
    let mut config = lacp::Config::new(EthernetAddress(mac));
    config.mode = def.mode;
    config.rate = def.rate;
    config.policy = def.policy;
    let undo = |devs: Vec<Mlx5Vnic>| {
        for v in devs {
            v.destroy();
        }
        for &j in &def.ports {
            reopen_port(nics, j);
        }
    };
    let aggr: AggrDev = match Aggr::new(members, config, Box::new(netstack::now)) {
        Ok(a) => a,
        Err((devs, e)) => {
            undo(devs);
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
                match create_vnic_on(nics, &def.ports, state.clone(), vn, &d) {
                    Ok(l) => {
                        println!("{l}");
                        vnics.push(vn);
                    }
                    Err(e) => println!("vnic{vn}: not created: {e}"),
                }
            }
            let live = Live {
                n,
                def: def.clone(),
                state,
                vnics,
            };
            Ok((live, line))
        }
        Err((aggr, why)) => {
            undo(aggr.into_members());
            Err(why)
        }
    }
}

/// `aggr delete <name>`: the report line, or why not. Taken out of
/// [`LIVE`] under the tables, then its VNICs destroyed and the members'
/// interfaces reopened cooperatively (as [`create`]).
pub fn delete(n: u32) -> Result<String, String> {
    let (entry, nics) = {
        let slots = SLOTS.lock();
        let entry = take_live(n)?;
        let nics = port_nics(&slots, &entry.def.ports, false)?;
        (entry, nics)
    };
    Ok(super::cmdwait::run(|_| delete_with(n, entry, &nics)))
}

/// [`delete`] with the slot table held (a member's detach): its waits
/// block, as the detach's do.
fn delete_locked(slots: &mut [Slot], n: u32) -> Result<String, String> {
    let entry = take_live(n)?;
    let nics = port_nics(slots, &entry.def.ports, false)?;
    Ok(delete_with(n, entry, &nics))
}

fn take_live(n: u32) -> Result<Live, String> {
    let mut live = LIVE.lock();
    let i = live
        .iter()
        .position(|l| l.n == n)
        .ok_or_else(|| format!("no {}", aggr_name(n)))?;
    Ok(live.remove(i))
}

/// The commands of a delete: the report line.
fn delete_with(n: u32, entry: Live, nics: &[PortNic]) -> String {
    let name = aggr_name(n);
    let Live { def, vnics, .. } = entry;
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
        reopen_port(nics, i);
    }
    format!("{name}: deleted, {errors} errors")
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
    // Each interface lent out of its table and checked inside a
    // cooperative wait, as the ports' (`faults::check_all`): lent already
    // or gone, its next period checks it.
    for (n, vnics) in live {
        let _ = netstack::with_net_lent::<AggrDev, _>(&aggr_name(n), |net| {
            super::cmdwait::run(|_| {
                let aggr = net.device_mut();
                for i in 0..aggr.member_count() {
                    if let Some(m) = aggr.member_mut(i) {
                        m.queue_set_mut().check();
                    }
                }
            })
        });
        for vn in vnics {
            let _ = netstack::with_net_lent::<AggrVnicDev, _>(&format!("vnic{vn}"), |net| {
                super::cmdwait::run(|_| {
                    let dev = net.device_mut();
                    let mut i = 0;
                    while let Some(m) = dev.member_mut(i) {
                        m.queue_set_mut().check();
                        i += 1;
                    }
                })
            });
        }
    }
}

/// `vnics`' lines for the VNICs on aggregations: the driver's line of
/// the first member (MAC, VLAN, queues) with counters summed over every
/// member, which aggregation and ports it is over, its addresses, its
/// flow rules' traffic on all members and the CPU that owns it.
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
            let cpu = netstack::owner_cpu(&name).unwrap_or(0);
            let Some((line, flows)) = netstack::with_net::<AggrVnicDev, _>(&name, |net| {
                aggr_vnic_line(net, &aggr_name(n), &over)
            }) else {
                continue;
            };
            // The flow counters are read cooperatively, the owner's table
            // let go (its CPU polls on meanwhile).
            let flow = cmdwait_flows(&flows);
            out.push(format!("{line} {flow} cpu {cpu}"));
        }
    }
    out
}

/// A member VNIC's flow counter: its port's `Nic` and its id.
type FlowOf = (Nic<super::Mlx5Adapter>, mlx5::vnic::VnicId);

/// `flow <pkts> pkts <bytes> B` summed over `flows`, each read in a
/// cooperative wait; `flow ? (<why>)` if one could not be read.
fn cmdwait_flows(flows: &[FlowOf]) -> String {
    let (mut pkts, mut bytes) = (0, 0);
    for (nic, id) in flows {
        match super::cmdwait::run(|idle| nic.flow_traffic_with(*id, idle)) {
            Ok(t) => {
                pkts += t.packets;
                bytes += t.bytes;
            }
            Err(e) => return format!("flow ? ({e})"),
        }
    }
    format!("flow {pkts} pkts {bytes} B")
}

/// [`vnic_lines`]' line of a VNIC on an aggregation up to its flow
/// counters, and where to read those.
fn aggr_vnic_line(
    net: &cxos_net::NetIf<AggrVnicDev>,
    aggr: &str,
    over: &str,
) -> (String, Vec<FlowOf>) {
    let dev = net.device();
    let Some(first) = dev.member(0) else {
        return (
            format!("{} over {aggr}: no members", net.name()),
            Vec::new(),
        );
    };
    let mut info = first.info();
    for m in (1..).map_while(|i| dev.member(i)) {
        let i = m.info();
        info.rx_packets += i.rx_packets;
        info.rx_bytes += i.rx_bytes;
        info.tx_packets += i.tx_packets;
        info.tx_bytes += i.tx_bytes;
        info.rx_no_buffer += i.rx_no_buffer;
        info.errors += i.errors;
    }
    let flows = (0..)
        .map_while(|i| dev.member(i))
        .map(|m| (m.nic().clone(), m.id()))
        .collect();
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
    // The aggregation's link: up while any member distributes.
    let link = if cxos_drivers::NetDevice::link(dev).up {
        "up"
    } else {
        "down"
    };
    let line = format!(
        "{} {rest} over {aggr} ({over}) link {link} ipv4 {v4}{dhcp} ipv6 {}",
        net.name(),
        net.ipv6_link_local()
    );
    (line, flows)
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
