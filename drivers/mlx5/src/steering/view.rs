//! The steering as programmed: every rule ([`Steering::rules`]), every
//! table with its groups ([`Steering::tables`]), every entry
//! ([`Steering::programmed`]), for inspection and the shell.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use super::{
    Counted, MAC_LEVEL, Steering, TAP_LEVEL, Target, VLAN_LEVEL, VlanMatch, dmac_value, vlan_value,
};
use crate::flow::{Criteria, Destination, Fgn, Ftn, MatchValue};
use crate::flow_counter::FlowCounterId;
use crate::vport::Mac;

/// One rule as [`Steering::rules`] lists it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rule {
    pub mac: Mac,
    pub vlan: VlanMatch,
    pub dests: Vec<Destination>,
    pub counter: FlowCounterId,
}

/// One flow table entry as the driver programmed it
/// ([`Steering::programmed`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Programmed {
    pub table: Ftn,
    pub level: u8,
    pub index: u32,
    pub group: Fgn,
    pub value: MatchValue,
    pub dests: Vec<Destination>,
    pub counter: Option<FlowCounterId>,
}

/// One flow table and its groups as the driver created them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TableView {
    pub table: Ftn,
    pub level: u8,
    pub log_size: u8,
    /// (group, first index, last index, criteria).
    pub groups: Vec<(Fgn, u32, u32, Criteria)>,
}

impl Steering {
    /// Every rule, in table order.
    pub fn rules(&self) -> Vec<Rule> {
        let mut out = Vec::new();
        for s in self.macs.iter().flatten() {
            let mk = |vlan, c: &Counted| Rule {
                mac: s.mac,
                vlan,
                dests: c.dests.clone(),
                counter: c.counter,
            };
            match &s.target {
                Target::Direct(c) => out.push(mk(VlanMatch::Any, c)),
                Target::Vlans(t) => {
                    if let Some(c) = &t.default {
                        out.push(mk(VlanMatch::Any, c));
                    }
                    for (v, c) in t.vids.iter().flatten() {
                        out.push(mk(*v, c));
                    }
                }
            }
        }
        out
    }

    /// The root table and every VLAN table with their groups.
    pub fn tables(&self) -> Vec<TableView> {
        let size = 1u32 << self.log_root;
        let root = Self::root_groups(size);
        let mut out = Vec::new();
        if let Some(t) = &self.tap {
            out.push(TableView {
                table: t.table,
                level: TAP_LEVEL,
                log_size: 0,
                groups: vec![(t.group, 0, 0, Criteria::default())],
            });
        }
        out.push(TableView {
            table: self.table,
            level: MAC_LEVEL,
            log_size: self.log_root,
            groups: [self.exact, self.mcast, self.any]
                .into_iter()
                .zip(root)
                .map(|(g, (s, e, c))| (g, s, e, c))
                .collect(),
        });
        for s in self.macs.iter().flatten() {
            if let Target::Vlans(t) = &s.target {
                let n = t.vids.len() as u32;
                out.push(TableView {
                    table: t.table,
                    level: VLAN_LEVEL,
                    log_size: self.log_vlan,
                    groups: vec![
                        (
                            t.tagged,
                            0,
                            n - 1,
                            Criteria {
                                vlan: true,
                                ..Criteria::default()
                            },
                        ),
                        (t.any, n, n, Criteria::default()),
                    ],
                });
            }
        }
        out
    }

    /// Every entry as the driver programmed it, root table first, each
    /// MAC's VLAN table after its root entry.
    pub fn programmed(&self) -> Vec<Programmed> {
        let mut out = Vec::new();
        if let Some(t) = &self.tap {
            let mut dests = vec![Destination::Table(self.table)];
            dests.extend_from_slice(&t.dests);
            out.push(Programmed {
                table: t.table,
                level: TAP_LEVEL,
                index: 0,
                group: t.group,
                value: MatchValue::default(),
                dests,
                counter: Some(t.counter),
            });
        }
        for (i, s) in self.macs.iter().enumerate() {
            let Some(s) = s else { continue };
            let root = |dests: Vec<Destination>| Programmed {
                table: self.table,
                level: MAC_LEVEL,
                index: i as u32,
                group: self.exact,
                value: dmac_value(s.mac),
                dests,
                counter: Some(s.counter),
            };
            match &s.target {
                Target::Direct(c) => out.push(root(c.dests.clone())),
                Target::Vlans(t) => {
                    out.push(root(vec![Destination::Table(t.table)]));
                    for (k, v) in t.vids.iter().enumerate() {
                        if let Some((m, c)) = v {
                            out.push(Programmed {
                                table: t.table,
                                level: VLAN_LEVEL,
                                index: k as u32,
                                group: t.tagged,
                                value: vlan_value(*m),
                                dests: c.dests.clone(),
                                counter: Some(c.counter),
                            });
                        }
                    }
                    if let Some(c) = &t.default {
                        out.push(Programmed {
                            table: t.table,
                            level: VLAN_LEVEL,
                            index: t.vids.len() as u32,
                            group: t.any,
                            value: MatchValue::default(),
                            dests: c.dests.clone(),
                            counter: Some(c.counter),
                        });
                    }
                }
            }
        }
        for promisc in [false, true] {
            let c = if promisc {
                &self.promisc
            } else {
                &self.allmulti
            };
            if let Some(c) = c {
                let (index, group, value) = self.catch_all_entry(promisc);
                out.push(Programmed {
                    table: self.table,
                    level: MAC_LEVEL,
                    index,
                    group,
                    value,
                    dests: c.dests.clone(),
                    counter: Some(c.counter),
                });
            }
        }
        out
    }

    /// The tables as the driver programmed them, for the shell.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "nic_rx root table {} (dmac group {}, multicast {}, any {}) {}/{} MACs, promisc {}, allmulti {}",
            self.table.0,
            self.exact.0,
            self.mcast.0,
            self.any.0,
            self.macs.iter().flatten().count(),
            self.macs.len(),
            if self.promisc.is_some() { "on" } else { "off" },
            if self.allmulti.is_some() { "on" } else { "off" },
        );
        if let Some(t) = &self.tap {
            let _ = writeln!(
                s,
                "  tap table {} (root) -> table {}, promiscuous {} (counter {})",
                t.table.0,
                self.table.0,
                DestList(&t.dests),
                t.counter.0
            );
        }
        for (i, m) in self.macs.iter().enumerate() {
            let Some(m) = m else { continue };
            match &m.target {
                Target::Direct(r) => {
                    let _ = writeln!(
                        s,
                        "  [{i}] dmac {} -> {} (counter {})",
                        m.mac,
                        DestList(&r.dests),
                        r.counter.0
                    );
                }
                Target::Vlans(t) => {
                    let _ = writeln!(s, "  [{i}] dmac {} -> vlan table {}", m.mac, t.table.0);
                    for (v, r) in t.vids.iter().flatten() {
                        let _ = writeln!(
                            s,
                            "      {v} -> {} (counter {})",
                            DestList(&r.dests),
                            r.counter.0
                        );
                    }
                    if let Some(r) = &t.default {
                        let _ = writeln!(
                            s,
                            "      other -> {} (counter {})",
                            DestList(&r.dests),
                            r.counter.0
                        );
                    }
                }
            }
        }
        s
    }
}

/// Destinations printed "tir 5, tir 9".
#[derive(Debug)]
pub struct DestList<'a>(pub &'a [Destination]);

impl fmt::Display for DestList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("drop");
        }
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
