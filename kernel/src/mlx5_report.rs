//! The console and shell text of the mlx5 driver's reports: the attach
//! line, `phys` (one line per adapter, and the full report of one),
//! `rings`, `stats`, `flows` and the driver's part of `vnics`. The driver
//! hands over values ([`mlx5::adapter::report`], [`mlx5::queue_set`]'s
//! and [`mlx5::vnic`]'s reports); every word of the text is here.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use cxos_drivers::PciAddress;
use mlx5::adapter::{AdapterInfo, AdapterReport, PhysSummary};
use mlx5::fault::{FaultAction, FaultClass, FaultObject, FaultOutcome, FaultRecord};
use mlx5::flow::{Criteria, Destination, Fgn, MatchValue};
use mlx5::port::Speed;
use mlx5::queue_set::{QueueSetStats, RingsReport};
use mlx5::steering::{MacTarget, RuleView, SteeringReport, VlanMatch};
use mlx5::vnic::{FlowsReport, VnicInfo};
use mlx5::{FaultKind, FaultReport};

/// `link up 100G` / `link down`.
struct Link(bool, u32);

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Link(true, mbps) => write!(f, "link up {}", Speed(mbps)),
            Link(false, _) => f.write_str("link down"),
        }
    }
}

/// The attach line: `mlx5 01:00.0: ConnectX-4 Lx fw 14.32.1010, 1 port,
/// MAC 0c:42:a1:00:00:01, link up 25G`.
pub fn info_line(i: &AdapterInfo) -> String {
    format!(
        "mlx5 {}: {} fw {}, {} port{}, MAC {}, {}",
        i.pci,
        i.part.name(),
        i.fw,
        i.ports,
        if i.ports == 1 { "" } else { "s" },
        i.mac,
        Link(i.link_up, i.speed_mbps)
    )
}

/// One line of `phys`: PCI address, part, firmware, MAC, link state and
/// speed, MTU, state.
pub fn phys_line(s: &PhysSummary) -> String {
    format!(
        "{} {} fw {} mac {} {} mtu {} {}",
        s.pci,
        s.part.name(),
        s.fw,
        s.mac,
        Link(s.link_up, s.speed_mbps),
        s.mtu,
        if s.failed { "FAILED" } else { "ok" }
    )
}

fn up(on: bool) -> &'static str {
    if on { "up" } else { "down" }
}

/// `phys <pci>`: the `phys` line, then capabilities, EQs, pages and
/// command counters, two spaces in.
pub fn adapter(r: &AdapterReport) -> String {
    let mut s = String::new();
    let (g, e) = (&r.caps.general, &r.caps.eth);
    let _ = writeln!(s, "{}", phys_line(&r.summary));
    let _ = writeln!(
        s,
        "  issi {} uar {:?} pd {:?} td {:?} lkey {:?} vectors {}",
        r.issi,
        r.uar.map(|u| u.0),
        r.pd.map(|p| p.0),
        r.td.map(|t| t.0),
        r.lkey.map(|l| l.0),
        r.vectors
    );
    let _ = writeln!(
        s,
        "  caps: ports {} cqe_version {} log_max_eq {} log_max_cq {} log_max_sq {} log_max_rq {} log_max_tir {} striding_rq {} flow_table {} vport_manager {}",
        g.num_ports,
        g.cqe_version,
        g.log_max_eq,
        g.log_max_cq,
        g.log_max_sq,
        g.log_max_rq,
        g.log_max_tir,
        g.striding_rq,
        g.nic_flow_table,
        g.vport_group_manager
    );
    let _ = writeln!(
        s,
        "  eth: csum {} vlan {} lso 2^{} inline_mode {} (vport min {}) rss_tbl {}",
        e.csum,
        e.vlan,
        e.max_lso,
        e.wqe_inline_mode,
        r.vport.min_wqe_inline_mode,
        e.rss_ind_tbl_cap
    );
    let p = &r.port;
    let _ = writeln!(
        s,
        "  port: admin {} oper {} speed {} max_mtu {} module {} width {}",
        up(p.admin_up),
        up(p.oper_up),
        Speed(p.speed_mbps),
        p.max_mtu,
        p.module,
        p.width
    );
    if let Some(q) = r.eq0 {
        let _ = writeln!(
            s,
            "  eq0: eqn {} vector {} entries {} events {}",
            q.eqn.0, q.vector, q.entries, q.events
        );
    }
    for c in &r.comp_eqs {
        let _ = writeln!(
            s,
            "  comp eq: eqn {} vector {} entries {} events {} stray {}",
            c.eqn.0, c.vector, c.entries, c.events, c.stray
        );
    }
    let _ = writeln!(
        s,
        "  pages: held {} given {} returned {} cap {} refused {}",
        r.pages.held, r.pages.given, r.pages.returned, r.pages.cap, r.pages.refused
    );
    let c = &r.commands;
    let _ = writeln!(
        s,
        "  commands: {} failed {} timeouts {} avg {} us max {} us; events {} (cmd {} page {} port {})",
        c.commands,
        c.failed,
        c.timeouts,
        c.total_ns.checked_div(c.commands).unwrap_or(0) / 1000,
        c.max_ns / 1000,
        c.eq0_events,
        c.cmd_events,
        c.page_events,
        c.port_events
    );
    if let Some(f) = r.fault {
        let _ = writeln!(s, "  {}", failed_record(r.summary.pci, &f));
    }
    s
}

/// The fault that left the adapter failed, as a fault record reads on
/// the console (`FAULT mlx5.health <pci> function ...`): failed until
/// its function reset brings it back.
fn failed_record(pci: PciAddress, f: &FaultReport) -> FaultRecord {
    let mut r = FaultRecord::new(FaultClass::Health, FaultObject::Function, f.at_ns)
        .syndromes(f.health.synd.into(), f.health.ext_synd.into());
    r.pci = pci;
    r = match f.kind {
        FaultKind::Syndrome | FaultKind::Escalated => r,
        FaultKind::CounterStuck { counter, misses } => r
            .detail("counter", counter.into())
            .detail("misses", misses.into()),
        FaultKind::InternalErrorEvent => r.detail("event", mlx5::eq::event::INTERNAL_ERROR.into()),
    };
    r.action(FaultAction::MarkFailed, FaultOutcome::Failed)
}

/// `rings`: one line per queue, the RSS objects, then the steering the
/// queue set owns.
pub fn rings(r: &RingsReport) -> String {
    let mut s = String::new();
    if let Some(q) = &r.sq {
        let _ = writeln!(
            s,
            "sq {:#x} cq {:#x} eq {} entries {} pc {} cc {} in_flight {} free_bufs {} inline {:?} doorbells {}",
            q.sqn.0,
            q.cqn.0,
            q.eqn.0,
            q.entries,
            q.pc,
            q.cc,
            q.in_flight,
            q.free_bufs,
            q.inline,
            q.doorbells
        );
    }
    for q in &r.rqs {
        let _ = writeln!(
            s,
            "rq{} {:#x} cq {:#x} eq {} entries {} buf {} posted {} cq_ci {} packets {} tir {:?} qcounter {:?}",
            q.index,
            q.rqn.0,
            q.cqn.0,
            q.eqn.0,
            q.entries,
            q.buf_size,
            q.posted,
            q.cq_ci,
            q.packets,
            q.tir.map(|t| t.0),
            q.q_counter.map(|c| c.0)
        );
    }
    if let Some(x) = &r.rss {
        let _ = writeln!(
            s,
            "rss: rqt {} over {} queues, indirect tirs {:?}, traffic table {:?}",
            x.rqt.0,
            x.queues,
            x.tirs.iter().map(|t| t.0).collect::<Vec<_>>(),
            x.traffic_table.map(|t| t.0)
        );
    }
    if let Some(st) = &r.steering {
        s.push_str(&steering(st));
    }
    s
}

/// A flow entry's destinations: `tir 5, table 9`, or `drop`.
struct Dests<'a>(&'a [Destination]);

impl fmt::Display for Dests<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("drop");
        }
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match d {
                Destination::Tir(t) => write!(f, "tir {}", t.0)?,
                Destination::Table(t) => write!(f, "table {}", t.0)?,
            }
        }
        Ok(())
    }
}

/// `-> tir 5 (counter 3)`.
struct Rule<'a>(&'a RuleView);

impl fmt::Display for Rule<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "-> {} (counter {})",
            Dests(&self.0.dests),
            self.0.counter.0
        )
    }
}

/// The receive steering as programmed: the MAC table, the tap table, each
/// MAC's entry and VLAN rules.
pub fn steering(r: &SteeringReport) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "nic_rx root table {} (dmac group {}, multicast {}, any {}) {}/{} MACs, promisc {}, allmulti {}",
        r.table.0,
        r.exact.0,
        r.multicast.0,
        r.any.0,
        r.macs_used,
        r.macs_max,
        on(r.promisc),
        on(r.allmulti),
    );
    if let Some(t) = &r.tap {
        let _ = writeln!(
            s,
            "  tap table {} (root) -> table {}, promiscuous {} (counter {})",
            t.table.0,
            r.table.0,
            Dests(&t.rule.dests),
            t.rule.counter.0
        );
    }
    for m in &r.macs {
        match &m.target {
            MacTarget::Direct(rule) => {
                let _ = writeln!(s, "  [{}] dmac {} {}", m.index, m.mac, Rule(rule));
            }
            MacTarget::Vlans {
                table,
                vlans,
                other,
            } => {
                let _ = writeln!(
                    s,
                    "  [{}] dmac {} -> vlan table {}",
                    m.index, m.mac, table.0
                );
                for (v, rule) in vlans {
                    let v = match v {
                        VlanMatch::Any => String::from("any vlan"),
                        VlanMatch::Untagged => String::from("untagged"),
                        VlanMatch::Id(id) => format!("vlan {id}"),
                    };
                    let _ = writeln!(s, "      {v} {}", Rule(rule));
                }
                if let Some(rule) = other {
                    let _ = writeln!(s, "      other {}", Rule(rule));
                }
            }
        }
    }
    s
}

/// `stats`: transmit and receive counters, offloads, faults.
pub fn stats(r: &QueueSetStats) -> String {
    let mut s = String::new();
    let e = &r.eth;
    if let Some(t) = &r.tx {
        let _ = writeln!(
            s,
            "tx: packets {} bytes {} doorbells {} completions {} busy {} errors {} recoveries {}",
            t.packets, t.bytes, t.doorbells, t.completions, e.tx_busy, t.errors, t.recoveries
        );
    }
    if let Some(x) = &r.rx {
        let _ = writeln!(
            s,
            "rx: packets {} bytes {} no_buffer_drops {} length_errors {} errors {} recoveries {}",
            x.packets, x.bytes, e.rx_no_buffer, e.rx_length_errors, x.errors, x.recoveries
        );
    }
    let (t, x) = (r.tx.unwrap_or_default(), r.rx.unwrap_or_default());
    let _ = writeln!(
        s,
        "offloads: tx csum {} vlan {} lso {}; rx csum_ok {} csum_bad {} vlan_stripped {}; striding fillers {} wqes {}",
        t.csum,
        t.vlan_insert,
        t.lso,
        e.rx_csum_ok,
        e.rx_csum_bad,
        e.rx_vlan_stripped,
        x.fillers,
        x.wqes_done
    );
    let _ = writeln!(
        s,
        "faults {} recovered {} not recovered {}",
        e.faults, e.recoveries, e.failed_recoveries
    );
    if let Some(f) = r.last_fault {
        let _ = writeln!(s, "last fault: {f}");
    }
    s
}

/// What a group matches on: `dmac+cvlan_tag+first_vid`, or `nothing
/// (catch-all)`.
fn criteria(c: &Criteria) -> String {
    let mut s = String::new();
    for (on, name) in [
        (c.dmac, "dmac"),
        (c.dmac_mcast, "dmac-multicast-bit"),
        (c.vlan, "cvlan_tag+first_vid"),
        (c.ethertype, "ethertype"),
        (c.ip_protocol, "ip_protocol"),
    ] {
        if on {
            if !s.is_empty() {
                s.push('+');
            }
            s.push_str(name);
        }
    }
    if s.is_empty() {
        s.push_str("nothing (catch-all)");
    }
    s
}

/// An entry's match value, read with its group's criteria: a VLAN group
/// entry without an id matches untagged frames; a catch-all matches any.
fn value(v: &MatchValue, c: &Criteria) -> String {
    let mut s = String::new();
    if let Some(m) = v.dmac {
        let _ = write!(s, "dmac {m} ");
    }
    if c.vlan {
        match v.vlan {
            Some(id) => {
                let _ = write!(s, "vlan {id} ");
            }
            None => s.push_str("untagged "),
        }
    }
    if let Some(t) = v.ethertype {
        let _ = write!(s, "ethertype {t:#06x} ");
    }
    if let Some(p) = v.ip_protocol {
        let _ = write!(s, "ip_protocol {p} ");
    }
    if s.is_empty() {
        s.push_str("any ");
    }
    s.pop();
    s
}

/// `flows`: the tables and groups, then each entry as programmed and,
/// under it, as the adapter reports it (`hw ok` when they agree, the
/// adapter's view and MISMATCH when not), then the tally.
pub fn flows(r: &FlowsReport) -> String {
    let mut s = String::new();
    for t in &r.tables {
        let _ = writeln!(
            s,
            "table {} level {} size {}",
            t.table.0,
            t.level,
            1u32 << t.log_size
        );
        for (g, first, last, c) in &t.groups {
            let _ = writeln!(
                s,
                "  group {} [{first}..={last}] match {}",
                g.0,
                criteria(c)
            );
        }
    }
    let bad = r.checks.iter().filter(|c| !c.matches()).count();
    let criteria_of = |g: Fgn| {
        r.tables
            .iter()
            .flat_map(|t| t.groups.iter())
            .find(|x| x.0 == g)
            .map(|x| x.3)
            .unwrap_or_default()
    };
    for c in &r.checks {
        let p = &c.programmed;
        let _ = writeln!(
            s,
            "table {} [{}] group {} {} -> {} counter {}",
            p.table.0,
            p.index,
            p.group.0,
            value(&p.value, &criteria_of(p.group)),
            Dests(&p.dests),
            p.counter.map_or(0, |c| c.0)
        );
        match &c.hw {
            Ok(h) if c.matches() => {
                let _ = writeln!(s, "    hw ok (action {:#x})", h.action);
            }
            Ok(h) => {
                let _ = writeln!(
                    s,
                    "    hw MISMATCH: group {} {} -> {} counters {:?} action {:#x}",
                    h.group.0,
                    value(&h.value, &criteria_of(h.group)),
                    Dests(&h.dests),
                    h.counters.iter().map(|c| c.0).collect::<Vec<_>>(),
                    h.action
                );
            }
            Err(e) => {
                let _ = writeln!(s, "    hw MISMATCH: query failed: {e}");
            }
        }
    }
    let _ = writeln!(
        s,
        "{} entries, {} as programmed, {} mismatched",
        r.checks.len(),
        r.checks.len() - bad,
        bad
    );
    s
}

/// The driver's part of a `vnics` line: `vnic3 02:..:01 vlan 10 queues 2
/// rx 5 pkts 320 B tx 1 pkts 64 B no-buffer 0 errors 0`.
pub fn vnic_line(v: &VnicInfo) -> String {
    let vlan = match v.vlan {
        Some(id) => format!("vlan {id}"),
        None => String::from("untagged"),
    };
    format!(
        "{} {} {vlan} queues {} rx {} pkts {} B tx {} pkts {} B no-buffer {} errors {}",
        v.id,
        v.mac,
        v.queues,
        v.rx_packets,
        v.rx_bytes,
        v.tx_packets,
        v.tx_bytes,
        v.rx_no_buffer,
        v.errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use cxos_drivers::PciAddress;
    use mlx5::adapter::{EqInfo, PagesInfo};
    use mlx5::caps::Caps;
    use mlx5::cmd_engine::Stats;
    use mlx5::cq::Cqn;
    use mlx5::eq::Eqn;
    use mlx5::error::{CmdError, CmdFailure};
    use mlx5::flow::{FteView, Ftn};
    use mlx5::flow_counter::FlowCounterId;
    use mlx5::identify::Part;
    use mlx5::init_seg::FwVersion;
    use mlx5::pd::{Lkey, Pd};
    use mlx5::port::PortInfo;
    use mlx5::q_counter::QCounterId;
    use mlx5::queue_set::{EthStats, FaultCause, QueueFault, QueueId, RqRing, RssRing, SqRing};
    use mlx5::rq::{RqStats, Rqn};
    use mlx5::rqt::Rqtn;
    use mlx5::sq::{SqStats, Sqn};
    use mlx5::steering::{MacView, Programmed, TableView, TapView};
    use mlx5::tir::Tirn;
    use mlx5::uar::Uar;
    use mlx5::vnic::{FlowCheck, VnicId};
    use mlx5::vport::{Mac, VportInfo};
    use mlx5::wqe::InlineMode;

    const PCI: PciAddress = PciAddress::new(0, 1, 0, 0);
    const MAC: Mac = Mac([0x0c, 0x42, 0xa1, 0x5e, 0x00, 0x12]);
    const FW: FwVersion = FwVersion {
        major: 16,
        minor: 35,
        subminor: 2000,
    };

    fn cx5() -> Part {
        Part::from_ids(0x15b3, 0x1017).unwrap()
    }

    fn summary(failed: bool) -> PhysSummary {
        PhysSummary {
            pci: PCI,
            part: cx5(),
            fw: FW,
            mac: MAC,
            link_up: true,
            speed_mbps: 100_000,
            mtu: 1500,
            failed,
        }
    }

    #[test]
    fn attach_and_phys_lines() {
        let mut i = AdapterInfo {
            pci: PCI,
            part: cx5(),
            fw: FW,
            ports: 1,
            mac: MAC,
            link_up: true,
            speed_mbps: 100_000,
        };
        assert_eq!(
            info_line(&i),
            "mlx5 01:00.0: ConnectX-5 fw 16.35.2000, 1 port, MAC 0c:42:a1:5e:00:12, link up 100G"
        );
        i.ports = 2;
        i.link_up = false;
        i.pci = PciAddress::new(1, 0x82, 0, 1);
        assert_eq!(
            info_line(&i),
            "mlx5 0001:82:00.1: ConnectX-5 fw 16.35.2000, 2 ports, MAC 0c:42:a1:5e:00:12, link down"
        );
        assert_eq!(
            phys_line(&summary(false)),
            "01:00.0 ConnectX-5 fw 16.35.2000 mac 0c:42:a1:5e:00:12 link up 100G mtu 1500 ok"
        );
        let mut s = summary(true);
        s.speed_mbps = 25_000;
        assert_eq!(
            phys_line(&s),
            "01:00.0 ConnectX-5 fw 16.35.2000 mac 0c:42:a1:5e:00:12 link up 25G mtu 1500 FAILED"
        );
    }

    #[test]
    fn the_full_adapter_report() {
        let mut caps = Caps::default();
        let g = &mut caps.general;
        (g.num_ports, g.cqe_version, g.log_max_eq, g.log_max_cq) = (1, 1, 8, 24);
        (g.log_max_sq, g.log_max_rq, g.log_max_tir) = (23, 23, 24);
        (g.striding_rq, g.nic_flow_table, g.vport_group_manager) = (true, true, false);
        let e = &mut caps.eth;
        (
            e.csum,
            e.vlan,
            e.max_lso,
            e.wqe_inline_mode,
            e.rss_ind_tbl_cap,
        ) = (true, true, 16, 1, 11);
        let r = AdapterReport {
            summary: summary(false),
            issi: 1,
            uar: Some(Uar(5)),
            pd: Some(Pd(1)),
            td: None,
            lkey: Some(Lkey(0x100)),
            vectors: 5,
            caps,
            vport: VportInfo {
                min_wqe_inline_mode: 1,
                ..VportInfo::default()
            },
            port: PortInfo {
                admin_up: true,
                oper_up: false,
                speed_mbps: 100,
                max_mtu: 9216,
                module: 3,
                width: 4,
                ..PortInfo::default()
            },
            eq0: Some(EqInfo {
                eqn: Eqn(7),
                vector: 0,
                entries: 128,
                events: 42,
                stray: 0,
            }),
            comp_eqs: vec![
                EqInfo {
                    eqn: Eqn(8),
                    vector: 1,
                    entries: 1024,
                    events: 5,
                    stray: 2,
                },
                EqInfo {
                    eqn: Eqn(9),
                    vector: 2,
                    entries: 1024,
                    events: 0,
                    stray: 0,
                },
            ],
            pages: PagesInfo {
                held: 4096,
                given: 4100,
                returned: 4,
                cap: 65536,
                refused: 70,
            },
            commands: Stats {
                commands: 30,
                failed: 1,
                timeouts: 0,
                total_ns: 3_000_000,
                max_ns: 900_000,
                eq0_events: 31,
                cmd_events: 25,
                page_events: 2,
                port_events: 1,
                ..Stats::default()
            },
            fault: None,
        };
        let want = "\
01:00.0 ConnectX-5 fw 16.35.2000 mac 0c:42:a1:5e:00:12 link up 100G mtu 1500 ok
  issi 1 uar Some(5) pd Some(1) td None lkey Some(256) vectors 5
  caps: ports 1 cqe_version 1 log_max_eq 8 log_max_cq 24 log_max_sq 23 log_max_rq 23 log_max_tir 24 striding_rq true flow_table true vport_manager false
  eth: csum true vlan true lso 2^16 inline_mode 1 (vport min 1) rss_tbl 11
  port: admin up oper down speed 100M max_mtu 9216 module 3 width 4
  eq0: eqn 7 vector 0 entries 128 events 42
  comp eq: eqn 8 vector 1 entries 1024 events 5 stray 2
  comp eq: eqn 9 vector 2 entries 1024 events 0 stray 0
  pages: held 4096 given 4100 returned 4 cap 65536 refused 70
  commands: 30 failed 1 timeouts 0 avg 100 us max 900 us; events 31 (cmd 25 page 2 port 1)
";
        assert_eq!(adapter(&r), want);
        // No commands yet: the average is 0, not a division by zero.
        let idle = AdapterReport {
            commands: Stats::default(),
            eq0: None,
            comp_eqs: vec![],
            ..r
        };
        assert!(
            adapter(&idle).contains("  commands: 0 failed 0 timeouts 0 avg 0 us max 0 us;"),
            "{}",
            adapter(&idle)
        );
        assert!(!adapter(&idle).contains("eq0:"));
        // Failed: the fault in the console's record form, last.
        let mut health = mlx5::init_seg::HealthBuffer::default();
        (health.synd, health.ext_synd) = (0x8, 0x12);
        let failed = AdapterReport {
            fault: Some(FaultReport {
                kind: FaultKind::CounterStuck {
                    counter: 0x1234,
                    misses: 3,
                },
                health,
                at_ns: 5,
            }),
            ..idle
        };
        let text = adapter(&failed);
        assert!(
            text.ends_with(
                "\n  FAULT mlx5.health 01:00.0 function syndrome=0x8 vendor_syndrome=0x12 counter=4660 misses=3 action=mark-failed outcome=failed\n"
            ),
            "{text}"
        );
        assert!(!text.contains("FAULT:"), "{text}");
    }

    fn rule(dests: Vec<Destination>, counter: u32) -> RuleView {
        RuleView {
            dests,
            counter: FlowCounterId(counter),
        }
    }

    fn steering_report() -> SteeringReport {
        SteeringReport {
            table: Ftn(10),
            exact: Fgn(11),
            multicast: Fgn(12),
            any: Fgn(13),
            macs_used: 2,
            macs_max: 62,
            promisc: false,
            allmulti: true,
            tap: Some(TapView {
                table: Ftn(20),
                rule: rule(vec![Destination::Tir(Tirn(9))], 21),
            }),
            macs: vec![
                MacView {
                    index: 0,
                    mac: Mac([2, 0, 0, 0, 0, 0x0a]),
                    target: MacTarget::Direct(rule(vec![Destination::Tir(Tirn(9))], 15)),
                },
                MacView {
                    index: 3,
                    mac: Mac([0xff; 6]),
                    target: MacTarget::Vlans {
                        table: Ftn(30),
                        vlans: vec![
                            (
                                VlanMatch::Id(10),
                                rule(
                                    vec![Destination::Tir(Tirn(8)), Destination::Table(Ftn(40))],
                                    31,
                                ),
                            ),
                            (VlanMatch::Untagged, rule(vec![], 32)),
                        ],
                        other: Some(rule(vec![Destination::Tir(Tirn(9))], 33)),
                    },
                },
            ],
        }
    }

    #[test]
    fn rings_with_rss_and_steering() {
        let r = RingsReport {
            sq: Some(SqRing {
                sqn: Sqn(0x105),
                cqn: Cqn(0x402),
                eqn: Eqn(3),
                entries: 512,
                pc: 700,
                cc: 690,
                in_flight: 10,
                free_bufs: 502,
                inline: InlineMode::L2,
                doorbells: 22,
            }),
            rqs: vec![
                RqRing {
                    index: 0,
                    rqn: Rqn(0x107),
                    cqn: Cqn(0x403),
                    eqn: Eqn(3),
                    entries: 16,
                    buf_size: 32768,
                    posted: 16,
                    cq_ci: 1000,
                    packets: 999,
                    tir: Some(Tirn(9)),
                    q_counter: Some(QCounterId(1)),
                },
                RqRing {
                    index: 1,
                    rqn: Rqn(0x108),
                    cqn: Cqn(0x404),
                    eqn: Eqn(4),
                    entries: 16,
                    buf_size: 32768,
                    posted: 15,
                    cq_ci: 3,
                    packets: 3,
                    tir: None,
                    q_counter: None,
                },
            ],
            rss: Some(RssRing {
                rqt: Rqtn(2),
                queues: 2,
                tirs: vec![Tirn(11), Tirn(12)],
                traffic_table: Some(Ftn(14)),
            }),
            steering: Some(steering_report()),
        };
        let want = "\
sq 0x105 cq 0x402 eq 3 entries 512 pc 700 cc 690 in_flight 10 free_bufs 502 inline L2 doorbells 22
rq0 0x107 cq 0x403 eq 3 entries 16 buf 32768 posted 16 cq_ci 1000 packets 999 tir Some(9) qcounter Some(1)
rq1 0x108 cq 0x404 eq 4 entries 16 buf 32768 posted 15 cq_ci 3 packets 3 tir None qcounter None
rss: rqt 2 over 2 queues, indirect tirs [11, 12], traffic table Some(14)
nic_rx root table 10 (dmac group 11, multicast 12, any 13) 2/62 MACs, promisc off, allmulti on
  tap table 20 (root) -> table 10, promiscuous tir 9 (counter 21)
  [0] dmac 02:00:00:00:00:0a -> tir 9 (counter 15)
  [3] dmac ff:ff:ff:ff:ff:ff -> vlan table 30
      vlan 10 -> tir 8, table 40 (counter 31)
      untagged -> drop (counter 32)
      other -> tir 9 (counter 33)
";
        assert_eq!(rings(&r), want);
        let bare = RingsReport {
            sq: None,
            rqs: vec![],
            rss: None,
            steering: None,
        };
        assert_eq!(rings(&bare), "");
    }

    #[test]
    fn stats_with_and_without_queues() {
        let r = QueueSetStats {
            tx: Some(SqStats {
                packets: 100,
                bytes: 6400,
                doorbells: 4,
                completions: 5,
                errors: 1,
                recoveries: 1,
                csum: 2,
                vlan_insert: 3,
                lso: 1,
                ..SqStats::default()
            }),
            rx: Some(RqStats {
                packets: 90,
                bytes: 5760,
                errors: 0,
                recoveries: 0,
                fillers: 7,
                wqes_done: 8,
            }),
            eth: EthStats {
                faults: 1,
                recoveries: 1,
                failed_recoveries: 0,
                rx_length_errors: 2,
                rx_no_buffer: 3,
                tx_busy: 6,
                rx_csum_ok: 80,
                rx_csum_bad: 1,
                rx_vlan_stripped: 9,
            },
            last_fault: Some(QueueFault {
                queue: QueueId::Sq(Sqn(0x105)),
                cause: FaultCause::ErrorCqe {
                    opcode: 0xd,
                    syndrome: 0x04,
                    vendor_syndrome: 0,
                    wqe_counter: 0,
                },
                at_ns: 1,
                returned: 5,
                recovered: true,
            }),
        };
        let want = "\
tx: packets 100 bytes 6400 doorbells 4 completions 5 busy 6 errors 1 recoveries 1
rx: packets 90 bytes 5760 no_buffer_drops 3 length_errors 2 errors 0 recoveries 0
offloads: tx csum 2 vlan 3 lso 1; rx csum_ok 80 csum_bad 1 vlan_stripped 9; striding fillers 7 wqes 8
faults 1 recovered 1 not recovered 0
last fault: sq 0x105: error CQE opcode 0xd syndrome 0x4 (local protection error) vendor 0x0 wqe 0; 5 buffers returned, queue recovered (RST -> RDY)
";
        assert_eq!(stats(&r), want);
        let empty = QueueSetStats {
            tx: None,
            rx: None,
            eth: EthStats::default(),
            last_fault: None,
        };
        assert_eq!(
            stats(&empty),
            "offloads: tx csum 0 vlan 0 lso 0; rx csum_ok 0 csum_bad 0 vlan_stripped 0; striding fillers 0 wqes 0\n\
             faults 0 recovered 0 not recovered 0\n"
        );
    }

    #[test]
    fn flows_as_programmed_and_as_the_adapter_reports_them() {
        let dmac = Criteria {
            dmac: true,
            ..Criteria::default()
        };
        let vlan = Criteria {
            vlan: true,
            ..Criteria::default()
        };
        let traffic = Criteria {
            ethertype: true,
            ip_protocol: true,
            ..Criteria::default()
        };
        let tables = vec![
            TableView {
                table: Ftn(10),
                level: 1,
                log_size: 2,
                groups: vec![
                    (Fgn(11), 0, 1, dmac),
                    (
                        Fgn(12),
                        2,
                        2,
                        Criteria {
                            dmac_mcast: true,
                            ..Criteria::default()
                        },
                    ),
                    (Fgn(13), 3, 3, Criteria::default()),
                ],
            },
            TableView {
                table: Ftn(30),
                level: 2,
                log_size: 4,
                groups: vec![
                    (Fgn(31), 0, 14, vlan),
                    (Fgn(32), 15, 15, Criteria::default()),
                ],
            },
            TableView {
                table: Ftn(40),
                level: 3,
                log_size: 3,
                groups: vec![(Fgn(41), 0, 3, traffic)],
            },
        ];
        let programmed =
            |table, index, group, value, dests: Vec<Destination>, counter| Programmed {
                table: Ftn(table),
                level: 1,
                index,
                group: Fgn(group),
                value,
                dests,
                counter,
            };
        let root = programmed(
            10,
            0,
            11,
            MatchValue {
                dmac: Some(Mac([2, 0, 0, 0, 0, 1])),
                ..MatchValue::default()
            },
            vec![Destination::Table(Ftn(30))],
            Some(FlowCounterId(7)),
        );
        let untagged = programmed(
            30,
            0,
            31,
            MatchValue::default(),
            vec![Destination::Tir(Tirn(9))],
            None,
        );
        let tcp = programmed(
            40,
            0,
            41,
            MatchValue {
                ethertype: Some(0x0800),
                ip_protocol: Some(6),
                ..MatchValue::default()
            },
            vec![Destination::Tir(Tirn(21))],
            None,
        );
        let other = programmed(
            30,
            15,
            32,
            MatchValue::default(),
            vec![Destination::Tir(Tirn(9))],
            Some(FlowCounterId(8)),
        );
        let hw = |p: &Programmed| FteView {
            group: p.group,
            action: 0xc,
            value: p.value,
            dests: p.dests.clone(),
            counters: p.counter.into_iter().collect(),
        };
        let report = FlowsReport {
            tables,
            checks: vec![
                FlowCheck {
                    hw: Ok(hw(&root)),
                    programmed: root,
                },
                FlowCheck {
                    // The adapter holds a tagged entry where an untagged
                    // one was programmed.
                    hw: Ok(FteView {
                        value: MatchValue {
                            vlan: Some(5),
                            ..MatchValue::default()
                        },
                        dests: vec![],
                        counters: vec![FlowCounterId(3), FlowCounterId(4)],
                        ..hw(&untagged)
                    }),
                    programmed: untagged,
                },
                FlowCheck {
                    hw: Ok(hw(&tcp)),
                    programmed: tcp,
                },
                FlowCheck {
                    programmed: other,
                    hw: Err(CmdError {
                        opcode: 0x937,
                        op_mod: 0,
                        failure: CmdFailure::Status {
                            status: 0x03,
                            syndrome: 0x1234,
                        },
                    }),
                },
            ],
        };
        let want = "\
table 10 level 1 size 4
  group 11 [0..=1] match dmac
  group 12 [2..=2] match dmac-multicast-bit
  group 13 [3..=3] match nothing (catch-all)
table 30 level 2 size 16
  group 31 [0..=14] match cvlan_tag+first_vid
  group 32 [15..=15] match nothing (catch-all)
table 40 level 3 size 8
  group 41 [0..=3] match ethertype+ip_protocol
table 10 [0] group 11 dmac 02:00:00:00:00:01 -> table 30 counter 7
    hw ok (action 0xc)
table 30 [0] group 31 untagged -> tir 9 counter 0
    hw MISMATCH: group 31 vlan 5 -> drop counters [3, 4] action 0xc
table 40 [0] group 41 ethertype 0x0800 ip_protocol 6 -> tir 21 counter 0
    hw ok (action 0xc)
table 30 [15] group 32 any -> tir 9 counter 8
    hw MISMATCH: query failed: QUERY_FLOW_TABLE_ENTRY (opcode 0x937, op_mod 0x0): status 0x3 (bad parameter), syndrome 0x1234
4 entries, 2 as programmed, 2 mismatched
";
        assert_eq!(flows(&report), want);
    }

    #[test]
    fn a_vnic_line() {
        let mut v = VnicInfo {
            id: VnicId(3),
            mac: Mac([2, 0x5e, 0, 0x12, 0, 0x83]),
            vlan: Some(10),
            queues: 2,
            rqns: vec![Rqn(0x20), Rqn(0x21)],
            tir: Some(Tirn(30)),
            sqn: Some(Sqn(0x1f)),
            dest: Destination::Table(Ftn(40)),
            rx_packets: 5,
            rx_bytes: 320,
            tx_packets: 1,
            tx_bytes: 64,
            rx_no_buffer: 0,
            errors: 2,
        };
        assert_eq!(
            vnic_line(&v),
            "vnic3 02:5e:00:12:00:83 vlan 10 queues 2 rx 5 pkts 320 B tx 1 pkts 64 B no-buffer 0 errors 2"
        );
        v.vlan = None;
        v.queues = 1;
        assert_eq!(
            vnic_line(&v),
            "vnic3 02:5e:00:12:00:83 untagged queues 1 rx 5 pkts 320 B tx 1 pkts 64 B no-buffer 0 errors 2"
        );
    }
}
