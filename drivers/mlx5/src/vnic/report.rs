//! What the shell shows of VNICs ([`Nic::list`], [`Vnic::info`]) and of
//! the flow tables ([`Nic::flows`]: every entry as programmed next to
//! what QUERY_FLOW_TABLE_ENTRY returns).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::{Nic, Vnic, VnicId, vlan_text};
use crate::control::Control;
use crate::error::CmdError;
use crate::flow::{Destination, FteView, QueryFte, TABLE_TYPE_NIC_RX};
use crate::steering::{DestList, Programmed};
use crate::vport::Mac;

/// One VNIC as [`Nic::list`] and [`Vnic::info`] report it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VnicInfo {
    pub id: VnicId,
    pub mac: Mac,
    pub vlan: Option<u16>,
    pub queues: usize,
    pub rqns: Vec<u32>,
    pub tir: u32,
    pub sqn: u32,
    /// Where its unicast rule forwards (its TIR, or its traffic-type
    /// table with RSS).
    pub dest: Destination,
    /// Packet counters: 0 in [`Nic::list`] (they live in the [`Vnic`]).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// One entry of [`Nic::flows`]: as the driver programmed it and as the
/// adapter reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowCheck {
    pub programmed: Programmed,
    pub hw: Result<FteView, CmdError>,
}

impl FlowCheck {
    /// Whether the adapter holds what the driver programmed.
    pub fn matches(&self) -> bool {
        let p = &self.programmed;
        match &self.hw {
            Ok(h) => {
                h.group == p.group
                    && h.value == p.value
                    && h.dests == p.dests
                    && h.counters == p.counter.into_iter().collect::<Vec<_>>()
            }
            Err(_) => false,
        }
    }
}

impl<C: Control> Nic<C> {
    /// The shell's `vnics` (adapter side): one line per VNIC with its
    /// queues and what its unicast flow rule steered.
    pub fn vnics_report(&self) -> String {
        let mut s = String::new();
        for v in self.list() {
            let t = self.flow_traffic(v.id);
            let _ = write!(
                s,
                "{} {} {} queues {} rqn {:?} tir {} sqn {:#x} -> {}",
                v.id,
                v.mac,
                vlan_text(v.vlan),
                v.queues,
                v.rqns,
                v.tir,
                v.sqn,
                v.dest
            );
            match t {
                Ok(t) => {
                    let _ = writeln!(s, "; flow {} pkts {} B", t.packets, t.bytes);
                }
                Err(e) => {
                    let _ = writeln!(s, "; flow counter unreadable: {e}");
                }
            }
        }
        if s.is_empty() {
            s.push_str("no VNICs\n");
        }
        s
    }

    /// Every entry of the root and VLAN tables as the driver programmed
    /// it, with what QUERY_FLOW_TABLE_ENTRY returns for it.
    pub fn flows(&self) -> Vec<FlowCheck> {
        self.with_steering(|st, ctl| {
            st.programmed()
                .into_iter()
                .map(|p| {
                    let hw = ctl.exec(&QueryFte {
                        table_type: TABLE_TYPE_NIC_RX,
                        table: p.table,
                        index: p.index,
                    });
                    FlowCheck { programmed: p, hw }
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The shell's `flows`: tables and groups, then each entry as
    /// programmed and, under it, as the adapter reports it ("hw ok" when
    /// they agree, the adapter's view and MISMATCH when not).
    pub fn flows_report(&self) -> String {
        let mut s = String::new();
        let tables = self.with_steering(|st, _| st.tables()).unwrap_or_default();
        for t in &tables {
            let _ = writeln!(
                s,
                "table {} level {} size {}",
                t.table.0,
                t.level,
                1u32 << t.log_size
            );
            for (g, first, last, c) in &t.groups {
                let _ = writeln!(s, "  group {} [{first}..={last}] match {}", g.0, crit(c));
            }
        }
        let checks = self.flows();
        let bad = checks.iter().filter(|c| !c.matches()).count();
        let criteria = |g: crate::flow::Fgn| {
            tables
                .iter()
                .flat_map(|t| t.groups.iter())
                .find(|x| x.0 == g)
                .map(|x| x.3)
                .unwrap_or_default()
        };
        for c in &checks {
            let p = &c.programmed;
            let _ = writeln!(
                s,
                "table {} [{}] group {} {} -> {} counter {}",
                p.table.0,
                p.index,
                p.group.0,
                value_text(&p.value, &criteria(p.group)),
                DestList(&p.dests),
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
                        value_text(&h.value, &criteria(h.group)),
                        DestList(&h.dests),
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
            checks.len(),
            checks.len() - bad,
            bad
        );
        s
    }
}

fn crit(c: &crate::flow::Criteria) -> String {
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
fn value_text(v: &crate::flow::MatchValue, c: &crate::flow::Criteria) -> String {
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

impl<C: Control> Vnic<C> {
    pub fn info(&self) -> VnicInfo {
        let s = self.qs.net_stats();
        VnicInfo {
            id: self.id,
            mac: self.mac,
            vlan: self.vlan,
            queues: self.qs.rx_queues(),
            rqns: (0..self.qs.rx_queues())
                .filter_map(|i| self.qs.rq_at(i).map(|r| r.rqn.0))
                .collect(),
            tir: self.qs.tir().map_or(0, |t| t.0),
            sqn: self.qs.sq().map_or(0, |q| q.sqn.0),
            dest: self.dest,
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
        }
    }

    /// One line for the shell's `vnics`.
    pub fn report_line(&self) -> String {
        let s = self.qs.net_stats();
        alloc::format!(
            "{} {} {} queues {} rx {} pkts {} B tx {} pkts {} B no-buffer {} errors {}",
            self.id,
            self.mac,
            vlan_text(self.vlan),
            self.qs.rx_queues(),
            s.rx_packets,
            s.rx_bytes,
            s.tx_packets,
            s.tx_bytes,
            s.rx_no_buffer,
            s.errors
        )
    }

    /// Its queues, one line each (the shell's `rings`).
    pub fn rings(&self) -> String {
        self.qs.rings()
    }
}
