//! The steering as programmed: every rule ([`Steering::rules`]), every
//! table with its groups ([`Steering::tables`]), every entry
//! ([`Steering::programmed`]), for inspection and the shell.

use alloc::vec;
use alloc::vec::Vec;

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

/// What a rule forwards to, and its flow counter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RuleView {
    pub dests: Vec<Destination>,
    pub counter: FlowCounterId,
}

/// Where a MAC's root entry forwards: straight to its one rule's
/// destinations, or to its VLAN table (the tagged and untagged rules in
/// index order, then the rule for every other frame).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MacTarget {
    Direct(RuleView),
    Vlans {
        table: Ftn,
        vlans: Vec<(VlanMatch, RuleView)>,
        other: Option<RuleView>,
    },
}

/// One MAC of the MAC table, at `index`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MacView {
    pub index: usize,
    pub mac: Mac,
    pub target: MacTarget,
}

/// The tap table in front of the MAC table (it forwards to the MAC table
/// and to the promiscuous destinations of `rule`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TapView {
    pub table: Ftn,
    pub rule: RuleView,
}

/// The steering as [`Steering::report`] shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SteeringReport {
    /// The MAC table and its three groups.
    pub table: Ftn,
    pub exact: Fgn,
    pub multicast: Fgn,
    pub any: Fgn,
    /// MACs in the table, and its room for them.
    pub macs_used: usize,
    pub macs_max: usize,
    pub promisc: bool,
    pub allmulti: bool,
    pub tap: Option<TapView>,
    pub macs: Vec<MacView>,
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
                dests: c.dests.to_vec(),
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
                Target::Direct(c) => out.push(root(c.dests.to_vec())),
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
                                dests: c.dests.to_vec(),
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
                            dests: c.dests.to_vec(),
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
                    dests: c.dests.to_vec(),
                    counter: Some(c.counter),
                });
            }
        }
        out
    }

    /// The tables as the driver programmed them, for the shell: the MAC
    /// table, the tap table, each MAC's rules.
    pub fn report(&self) -> SteeringReport {
        let counted = |c: &Counted| RuleView {
            dests: c.dests.to_vec(),
            counter: c.counter,
        };
        SteeringReport {
            table: self.table,
            exact: self.exact,
            multicast: self.mcast,
            any: self.any,
            macs_used: self.macs.iter().flatten().count(),
            macs_max: self.macs.len(),
            promisc: self.promisc.is_some(),
            allmulti: self.allmulti.is_some(),
            tap: self.tap.as_ref().map(|t| TapView {
                table: t.table,
                rule: RuleView {
                    dests: t.dests.to_vec(),
                    counter: t.counter,
                },
            }),
            macs: self
                .macs
                .iter()
                .enumerate()
                .filter_map(|(index, m)| {
                    let m = m.as_ref()?;
                    let target = match &m.target {
                        Target::Direct(r) => MacTarget::Direct(counted(r)),
                        Target::Vlans(t) => MacTarget::Vlans {
                            table: t.table,
                            vlans: t
                                .vids
                                .iter()
                                .flatten()
                                .map(|(v, r)| (*v, counted(r)))
                                .collect(),
                            other: t.default.as_ref().map(counted),
                        },
                    };
                    Some(MacView {
                        index,
                        mac: m.mac,
                        target,
                    })
                })
                .collect(),
        }
    }
}
