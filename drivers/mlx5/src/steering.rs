//! The function's receive steering: which frames arriving on its port the
//! adapter delivers, and to which TIR, built from the NIC_RX flow tables
//! ([`crate::flow`]), flow counters ([`crate::flow_counter`]) and the
//! vport's address lists and promiscuous flags ([`crate::vport`]).
//!
//! Layout (the one the illumos mlxcx driver describes; levels
//! [`TAP_LEVEL`] < [`MAC_LEVEL`] < [`VLAN_LEVEL`] <
//! [`crate::rss::TRAFFIC_LEVEL`]):
//! - while promiscuous VNICs exist, a tap table is the NIC_RX root: one
//!   catch-all entry forwarding every frame to the MAC table and to each
//!   promiscuous destination ([`Steering::tap_join`]); it is rebuilt
//!   and the root switched (make before break) when that set changes;
//! - the MAC table (the root otherwise) has three groups, tried in index
//!   order: one matching the exact destination MAC (every (MAC, VLAN)
//!   rule's MAC has one entry there), one matching only the multicast bit
//!   of the destination MAC (the all-multicast entry), one matching
//!   nothing (the promiscuous entry of a queue set without VNICs);
//! - a MAC whose only rule is (MAC, any VLAN) forwards straight to its
//!   destinations; a MAC with other rules forwards to its own VLAN table:
//!   one group matching VLAN presence and id (one entry per
//!   [`VlanMatch::Id`] rule, and the [`VlanMatch::Untagged`] rule: no tag),
//!   one matching nothing (the [`VlanMatch::Any`] rule: untagged frames
//!   and VLANs no other rule claims);
//! - an entry forwards to one or more destinations (the adapter replicates
//!   the frame to each: broadcast and multicast shared by several VNICs,
//!   [`Steering::join`] / [`Steering::leave`]), and counts into its
//!   own flow counter;
//! - the vport's unicast and multicast address lists hold every rule's MAC
//!   (the e-switch's filter in front of the tables), its promiscuous flags
//!   follow the promiscuous / all-multicast modes.
//!
//! A frame nothing matches is dropped by the adapter. Rules are added and
//! removed at run time ([`Steering::add_rule`],
//! [`Steering::remove_rule`]): VNICs (a MAC, an optional VLAN, their
//! own RQs behind their own TIR) are one rule each. Turning a MAC's direct
//! entry into a VLAN table replaces its root entry (delete, then set at
//! the same index), and a shared entry whose destinations change is
//! rewritten the same way: frames for it arriving in between are dropped.

//!
//! Files: this one (the tables, creation, destruction, the vport lists),
//! `rules` ((MAC, VLAN) rules and shared entries), `vlan` (per-MAC VLAN
//! tables), `catch_all` (promiscuous and all-multicast entries), `tap`
//! (the tap table of promiscuous VNICs), `view` (the rules, tables and
//! entries as programmed).

use alloc::vec::Vec;

use crate::cmd::Exec;
use crate::error::CmdError;
use crate::flow::{
    BROADCAST, CreateFlowGroup, CreateFlowTable, Criteria, DeleteFte, DestroyFlowGroup,
    DestroyFlowTable, Dests, Fgn, Ftn, MatchValue, SetFlowTableRoot, TABLE_TYPE_NIC_RX,
};
use crate::flow_counter::{AllocFlowCounter, FlowCounterId, dealloc_flow_counter};
use crate::vport::{Mac, ModifyNicVportContext, VportChange};

mod catch_all;
mod rules;
mod tap;
mod view;
mod vlan;

use tap::{Tap, destroy_tap};
use vlan::{VlanTable, destroy_vlan_table};

pub use view::{
    MacTarget, MacView, Programmed, Rule, RuleView, SteeringReport, TableView, TapView,
};

const TT: u8 = TABLE_TYPE_NIC_RX;

/// Table levels: the tap table (promiscuous VNICs, root while it
/// exists), the MAC table (root otherwise), the per-MAC VLAN tables; the
/// traffic-type tables of RSS queue sets are at
/// [`crate::rss::TRAFFIC_LEVEL`].
pub const TAP_LEVEL: u8 = 0;
pub const MAC_LEVEL: u8 = 1;
pub const VLAN_LEVEL: u8 = 2;

/// Table sizes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SteeringConfig {
    /// log2 of the root table size: 2^log - 2 MACs.
    pub log_root: u8,
    /// log2 of each VLAN table's size: 2^log - 1 VLANs per MAC.
    pub log_vlan: u8,
}

impl Default for SteeringConfig {
    fn default() -> Self {
        Self {
            log_root: 6,
            log_vlan: 4,
        }
    }
}

/// Which frames for a MAC a rule takes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum VlanMatch {
    /// Untagged frames and tags no other rule of the MAC claims.
    Any,
    /// Only frames without a VLAN tag.
    Untagged,
    /// Only frames tagged with this VLAN id.
    Id(u16),
}

impl From<Option<u16>> for VlanMatch {
    fn from(v: Option<u16>) -> Self {
        match v {
            None => VlanMatch::Any,
            Some(id) => VlanMatch::Id(id),
        }
    }
}

/// One installed entry: where it forwards and its counter.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Counted {
    dests: Dests,
    counter: FlowCounterId,
}

#[derive(Debug)]
enum Target {
    Direct(Counted),
    Vlans(VlanTable),
}

#[derive(Debug)]
struct MacSlot {
    mac: Mac,
    /// The root entry's own counter (every frame for the MAC).
    counter: FlowCounterId,
    target: Target,
}

/// Where a rule's entry is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loc {
    /// The MAC's root entry forwards straight to the rule's destinations.
    Direct(usize),
    /// The default (Any) entry of the MAC's VLAN table.
    Default(usize),
    /// Index `k` of the MAC's VLAN table's tagged group.
    Tagged(usize, usize),
}

/// The function's receive steering tables (see the module documentation).
#[derive(Debug)]
pub struct Steering {
    pub table: Ftn,
    exact: Fgn,
    mcast: Fgn,
    any: Fgn,
    log_root: u8,
    log_vlan: u8,
    macs: Vec<Option<MacSlot>>,
    allmulti: Option<Counted>,
    promisc: Option<Counted>,
    /// The tap table in front of the MAC table while promiscuous VNICs
    /// exist: one catch-all entry forwarding every frame to the MAC table
    /// and to each promiscuous VNIC.
    tap: Option<Tap>,
    /// Vport address lists as last programmed.
    uc: Vec<Mac>,
    mc: Vec<Mac>,
}

fn alloc_counter(ex: &mut impl Exec) -> Result<FlowCounterId, CmdError> {
    ex.exec(&AllocFlowCounter)
}

fn vlan_value(m: VlanMatch) -> MatchValue {
    MatchValue {
        vlan: match m {
            VlanMatch::Id(v) => Some(v),
            _ => None,
        },
        ..MatchValue::default()
    }
}

fn dmac_value(mac: Mac) -> MatchValue {
    MatchValue {
        dmac: Some(mac),
        ..MatchValue::default()
    }
}

impl Steering {
    /// Create the root table and its groups and make it the NIC_RX root.
    /// On failure whatever was created is destroyed again.
    pub fn create(ex: &mut impl Exec, cfg: SteeringConfig) -> Result<Self, CmdError> {
        let log_root = cfg.log_root.max(2);
        let size = 1u32 << log_root;
        let table = ex.exec(&CreateFlowTable {
            table_type: TT,
            level: MAC_LEVEL,
            log_size: log_root,
        })?;
        let specs = Self::root_groups(size);
        let mut groups: Vec<Fgn> = Vec::new();
        let mut failed = None;
        for (start, end, criteria) in specs {
            match ex.exec(&CreateFlowGroup {
                table_type: TT,
                table,
                start,
                end,
                criteria,
            }) {
                Ok(g) => groups.push(g),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if failed.is_none()
            && let Err(e) = ex.exec(&SetFlowTableRoot {
                table_type: TT,
                table,
            })
        {
            failed = Some(e);
        }
        if let Some(e) = failed {
            for &group in groups.iter().rev() {
                let _ = ex.exec(&DestroyFlowGroup {
                    table_type: TT,
                    table,
                    group,
                });
            }
            let _ = ex.exec(&DestroyFlowTable {
                table_type: TT,
                table,
            });
            return Err(e);
        }
        let mut macs = Vec::new();
        macs.resize_with(size as usize - 2, || None);
        Ok(Self {
            table,
            exact: groups[0],
            mcast: groups[1],
            any: groups[2],
            log_root,
            log_vlan: cfg.log_vlan.clamp(1, 12),
            macs,
            allmulti: None,
            promisc: None,
            tap: None,
            uc: Vec::new(),
            mc: Vec::new(),
        })
    }

    fn root_groups(size: u32) -> [(u32, u32, Criteria); 3] {
        [
            (
                0,
                size - 3,
                Criteria {
                    dmac: true,
                    ..Criteria::default()
                },
            ),
            (
                size - 2,
                size - 2,
                Criteria {
                    dmac_mcast: true,
                    ..Criteria::default()
                },
            ),
            (size - 1, size - 1, Criteria::default()),
        ]
    }

    fn slot_of(&self, mac: Mac) -> Option<usize> {
        self.macs
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.mac == mac))
    }

    /// Where the rule for (`mac`, `m`) is, if it exists.
    fn locate(&self, mac: Mac, m: VlanMatch) -> Option<Loc> {
        let slot = self.slot_of(mac)?;
        let s = self.macs[slot].as_ref()?;
        match (&s.target, m) {
            (Target::Direct(_), VlanMatch::Any) => Some(Loc::Direct(slot)),
            (Target::Direct(_), _) => None,
            (Target::Vlans(t), VlanMatch::Any) => t.default.as_ref().map(|_| Loc::Default(slot)),
            (Target::Vlans(t), m) => t
                .vids
                .iter()
                .position(|x| x.as_ref().is_some_and(|(k, _)| *k == m))
                .map(|k| Loc::Tagged(slot, k)),
        }
    }

    fn counted(&self, loc: Loc) -> Option<&Counted> {
        let slot = match loc {
            Loc::Direct(s) | Loc::Default(s) | Loc::Tagged(s, _) => s,
        };
        match (&self.macs.get(slot)?.as_ref()?.target, loc) {
            (Target::Direct(c), Loc::Direct(_)) => Some(c),
            (Target::Vlans(t), Loc::Default(_)) => t.default.as_ref(),
            (Target::Vlans(t), Loc::Tagged(_, k)) => t.vids.get(k)?.as_ref().map(|(_, c)| c),
            _ => None,
        }
    }

    fn counted_mut(&mut self, loc: Loc) -> Option<&mut Counted> {
        let slot = match loc {
            Loc::Direct(s) | Loc::Default(s) | Loc::Tagged(s, _) => s,
        };
        match (&mut self.macs.get_mut(slot)?.as_mut()?.target, loc) {
            (Target::Direct(c), Loc::Direct(_)) => Some(c),
            (Target::Vlans(t), Loc::Default(_)) => t.default.as_mut(),
            (Target::Vlans(t), Loc::Tagged(_, k)) => t.vids.get_mut(k)?.as_mut().map(|(_, c)| c),
            _ => None,
        }
    }

    /// The table, index, group and match value of a rule's entry.
    fn entry_of(&self, loc: Loc) -> Option<(Ftn, u32, Fgn, MatchValue)> {
        let slot = match loc {
            Loc::Direct(s) | Loc::Default(s) | Loc::Tagged(s, _) => s,
        };
        let s = self.macs.get(slot)?.as_ref()?;
        match (&s.target, loc) {
            (Target::Direct(_), Loc::Direct(i)) => {
                Some((self.table, i as u32, self.exact, dmac_value(s.mac)))
            }
            (Target::Vlans(t), Loc::Default(_)) => {
                Some((t.table, t.vids.len() as u32, t.any, MatchValue::default()))
            }
            (Target::Vlans(t), Loc::Tagged(_, k)) => {
                let (m, _) = t.vids.get(k)?.as_ref()?;
                Some((t.table, k as u32, t.tagged, vlan_value(*m)))
            }
            _ => None,
        }
    }

    /// Program the vport's unicast / multicast lists when they changed
    /// (broadcast passes the vport without being listed).
    fn sync_lists(&mut self, ex: &mut impl Exec) -> Result<(), CmdError> {
        let mut uc = Vec::new();
        let mut mc = Vec::new();
        for s in self.macs.iter().flatten() {
            if s.mac == BROADCAST {
                continue;
            }
            if s.mac.0[0] & 1 != 0 {
                mc.push(s.mac);
            } else {
                uc.push(s.mac);
            }
        }
        for (multicast, new) in [(false, uc), (true, mc)] {
            let old = if multicast { &self.mc } else { &self.uc };
            if *old == new {
                continue;
            }
            ex.exec(&ModifyNicVportContext(VportChange::Addresses {
                multicast,
                macs: &new,
            }))?;
            if multicast {
                self.mc = new;
            } else {
                self.uc = new;
            }
        }
        Ok(())
    }

    /// The NIC_RX root: the tap table while there is one, else the MAC
    /// table.
    pub fn root(&self) -> Ftn {
        self.tap.as_ref().map_or(self.table, |t| t.table)
    }

    pub fn promisc(&self) -> bool {
        self.promisc.is_some()
    }

    pub fn allmulti(&self) -> bool {
        self.allmulti.is_some()
    }

    /// Delete everything: entries, VLAN tables, counters, groups, the
    /// root table; the vport lists and promiscuous flags are cleared.
    /// Keeps going past failures and returns the first.
    pub fn destroy(mut self, ex: &mut impl Exec) -> Result<(), CmdError> {
        let mut first = Ok(());
        let mut keep = |r: Result<(), CmdError>| {
            if let (Err(e), Ok(())) = (r, &first) {
                first = Err(e);
            }
        };
        if let Some(t) = self.tap.take() {
            keep(
                ex.exec(&SetFlowTableRoot {
                    table_type: TT,
                    table: self.table,
                })
                .map(|_| ()),
            );
            destroy_tap(ex, t, true);
        }
        let size = self.macs.len() as u32 + 2;
        for (i, c) in [
            (size - 2, self.allmulti.take()),
            (size - 1, self.promisc.take()),
        ] {
            if let Some(c) = c {
                keep(ex.exec(&DeleteFte {
                    table_type: TT,
                    table: self.table,
                    index: i,
                }));
                keep(ex.exec(&dealloc_flow_counter(c.counter)));
            }
        }
        for i in 0..self.macs.len() {
            if let Some(s) = self.macs[i].take() {
                keep(ex.exec(&DeleteFte {
                    table_type: TT,
                    table: self.table,
                    index: i as u32,
                }));
                if let Target::Vlans(t) = s.target {
                    destroy_vlan_table(ex, t);
                }
                keep(ex.exec(&dealloc_flow_counter(s.counter)));
            }
        }
        for g in [self.any, self.mcast, self.exact] {
            keep(ex.exec(&DestroyFlowGroup {
                table_type: TT,
                table: self.table,
                group: g,
            }));
        }
        keep(ex.exec(&DestroyFlowTable {
            table_type: TT,
            table: self.table,
        }));
        if !self.uc.is_empty() || !self.mc.is_empty() {
            keep(self.sync_lists(ex));
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::op;
    use crate::mock::MockExec;

    #[test]
    fn failed_root_undoes_groups_and_table() {
        let mut ex = MockExec {
            fail_opcode: Some(op::SET_FLOW_TABLE_ROOT),
            ..MockExec::default()
        };
        let e = Steering::create(&mut ex, SteeringConfig::default()).unwrap_err();
        assert_eq!(e.opcode, op::SET_FLOW_TABLE_ROOT);
        let count = |o: u16| ex.opcodes().iter().filter(|&&x| x == o).count();
        assert_eq!(count(op::CREATE_FLOW_GROUP), 3);
        assert_eq!(count(op::DESTROY_FLOW_GROUP), 3);
        assert_eq!(count(op::DESTROY_FLOW_TABLE), 1);
    }
}
