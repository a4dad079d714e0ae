//! The port's receive steering: which frames the adapter delivers, and to
//! which TIR, built from the NIC_RX flow tables ([`crate::flow`]), flow
//! counters ([`crate::flow_counter`]) and the vport's address lists and
//! promiscuous flags ([`crate::vport`]).
//!
//! Layout (the one the illumos mlxcx driver describes; levels
//! [`TAP_LEVEL`] < [`MAC_LEVEL`] < [`VLAN_LEVEL`] < [`TRAFFIC_LEVEL`]):
//! - while promiscuous VNICs exist, a tap table is the NIC_RX root: one
//!   catch-all entry forwarding every frame to the MAC table and to each
//!   promiscuous destination ([`PortSteering::tap_join`]); it is rebuilt
//!   and the root switched (make before break) when that set changes;
//! - the MAC table (the root otherwise) has three groups, tried in index
//!   order: one matching the exact destination MAC (every (MAC, VLAN)
//!   rule's MAC has one entry there), one matching only the multicast bit
//!   of the destination MAC (the all-multicast entry), one matching
//!   nothing (the promiscuous entry of a port without VNICs);
//! - a MAC whose only rule is (MAC, any VLAN) forwards straight to its
//!   destinations; a MAC with other rules forwards to its own VLAN table:
//!   one group matching VLAN presence and id (one entry per
//!   [`VlanMatch::Id`] rule, and the [`VlanMatch::Untagged`] rule: no tag),
//!   one matching nothing (the [`VlanMatch::Any`] rule: untagged frames
//!   and VLANs no other rule claims);
//! - an entry forwards to one or more destinations (the adapter replicates
//!   the frame to each: broadcast and multicast shared by several VNICs,
//!   [`PortSteering::join`] / [`PortSteering::leave`]), and counts into its
//!   own flow counter;
//! - the vport's unicast and multicast address lists hold every rule's MAC
//!   (the e-switch's filter in front of the tables), its promiscuous flags
//!   follow the promiscuous / all-multicast modes.
//!
//! A frame nothing matches is dropped by the adapter. Rules are added and
//! removed at run time ([`PortSteering::add_rule`],
//! [`PortSteering::remove_rule`]): VNICs (a MAC, an optional VLAN, their
//! own RQs behind their own TIR) are one rule each. Turning a MAC's direct
//! entry into a VLAN table replaces its root entry (delete, then set at
//! the same index), and a shared entry whose destinations change is
//! rewritten the same way: frames for it arriving in between are dropped.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::cmd::Exec;
use crate::error::CmdError;
use crate::flow::{
    BROADCAST, CreateFlowGroup, CreateFlowTable, Criteria, DeleteFte, Destination,
    DestroyFlowGroup, DestroyFlowTable, Fgn, FlowEntry, FlowError, Ftn, MAX_DESTINATIONS,
    MatchValue, SetFlowTableRoot, SetFte, TABLE_TYPE_NIC_RX,
};
use crate::flow_counter::{
    AllocFlowCounter, FlowCounterId, QueryFlowCounter, Traffic, dealloc_flow_counter,
};
use crate::tir::Tirn;
use crate::vport::{Mac, ModifyNicVportContext, VportChange};

const TT: u8 = TABLE_TYPE_NIC_RX;

/// Table levels: the tap table (promiscuous VNICs, root while it
/// exists), the MAC table (root otherwise), the per-MAC VLAN tables; the
/// traffic-type tables of RSS ports are at [`TRAFFIC_LEVEL`].
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

impl fmt::Display for VlanMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VlanMatch::Any => f.write_str("any vlan"),
            VlanMatch::Untagged => f.write_str("untagged"),
            VlanMatch::Id(v) => write!(f, "vlan {v}"),
        }
    }
}

/// One installed entry: where it forwards and its counter.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Counted {
    dests: Vec<Destination>,
    counter: FlowCounterId,
}

#[derive(Debug)]
struct VlanTable {
    table: Ftn,
    tagged: Fgn,
    any: Fgn,
    /// The [`VlanMatch::Any`] rule, in the last index.
    default: Option<Counted>,
    /// (Untagged or Id, rule) per index of the tagged group.
    vids: Vec<Option<(VlanMatch, Counted)>>,
}

impl VlanTable {
    fn is_empty(&self) -> bool {
        self.default.is_none() && self.vids.iter().all(|v| v.is_none())
    }
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

/// One rule as [`PortSteering::rules`] lists it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rule {
    pub mac: Mac,
    pub vlan: VlanMatch,
    pub dests: Vec<Destination>,
    pub counter: FlowCounterId,
}

/// One flow table entry as the driver programmed it
/// ([`PortSteering::programmed`]).
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

/// The port's steering tables (see the module documentation).
#[derive(Debug)]
pub struct PortSteering {
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

#[derive(Debug)]
struct Tap {
    table: Ftn,
    group: Fgn,
    counter: FlowCounterId,
    /// The promiscuous destinations (the MAC table comes first in the
    /// entry).
    dests: Vec<Destination>,
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

impl PortSteering {
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

    /// Program a rule's entry again after its destinations changed.
    fn rewrite(&self, ex: &mut impl Exec, loc: Loc) -> Result<(), FlowError> {
        let (Some((table, index, group, value)), Some(c)) = (self.entry_of(loc), self.counted(loc))
        else {
            return Err(FlowError::NoEntry(FlowEntry(u32::MAX)));
        };
        ex.exec(&DeleteFte {
            table_type: TT,
            table,
            index,
        })?;
        ex.exec(&SetFte {
            table_type: TT,
            table,
            index,
            group,
            value,
            dests: &c.dests,
            counter: Some(c.counter),
        })?;
        Ok(())
    }

    fn set_root(
        &self,
        ex: &mut impl Exec,
        index: usize,
        mac: Mac,
        dests: &[Destination],
        counter: FlowCounterId,
    ) -> Result<(), CmdError> {
        ex.exec(&SetFte {
            table_type: TT,
            table: self.table,
            index: index as u32,
            group: self.exact,
            value: dmac_value(mac),
            dests,
            counter: Some(counter),
        })
    }

    /// Steer frames for `mac` (and, with `vlan`, only those tagged with
    /// that VLAN id; without, untagged ones and VLANs no rule claims) to
    /// `to`: a TIR, or a deeper table (level 2 or more: the traffic-type
    /// table of an RSS port). The MAC joins the vport's address list.
    pub fn add_rule(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        vlan: Option<u16>,
        to: impl Into<Destination>,
    ) -> Result<FlowEntry, FlowError> {
        self.add_match(ex, mac, vlan.into(), to.into())
    }

    /// A new rule for (`mac`, `m`) to `to`; `Duplicate` if the rule
    /// exists (see [`PortSteering::join`] for shared rules).
    pub fn add_match(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        m: VlanMatch,
        dest: Destination,
    ) -> Result<FlowEntry, FlowError> {
        if matches!(m, VlanMatch::Id(v) if v > 0xfff) {
            return Err(FlowError::Unsupported);
        }
        let slot = match self.slot_of(mac) {
            Some(i) => i,
            None => {
                let Some(i) = self.macs.iter().position(|s| s.is_none()) else {
                    return Err(FlowError::TableFull);
                };
                // The root entry's counter; a direct rule's own.
                let counter = alloc_counter(ex)?;
                let target = match m {
                    VlanMatch::Any => Target::Direct(Counted {
                        dests: vec![dest],
                        counter,
                    }),
                    _ => match vlan_table(ex, self.log_vlan) {
                        Ok(t) => Target::Vlans(t),
                        Err(e) => {
                            let _ = ex.exec(&dealloc_flow_counter(counter));
                            return Err(e.into());
                        }
                    },
                };
                let root_dests = match &target {
                    Target::Direct(r) => r.dests.clone(),
                    Target::Vlans(t) => vec![Destination::Table(t.table)],
                };
                if let Err(e) = self.set_root(ex, i, mac, &root_dests, counter) {
                    let _ = ex.exec(&dealloc_flow_counter(counter));
                    if let Target::Vlans(t) = target {
                        destroy_vlan_table(ex, t);
                    }
                    return Err(e.into());
                }
                self.macs[i] = Some(MacSlot {
                    mac,
                    counter,
                    target,
                });
                if m == VlanMatch::Any {
                    self.sync_lists(ex)?;
                    return Ok(FlowEntry(i as u32));
                }
                i
            }
        };
        let table = self.table;
        let log_vlan = self.log_vlan;
        let exact = self.exact;
        let Some(s) = self.macs[slot].as_mut() else {
            return Err(FlowError::NoEntry(FlowEntry(slot as u32)));
        };
        match (&mut s.target, m) {
            (Target::Direct(_), VlanMatch::Any) => {
                return Err(FlowError::Duplicate(FlowEntry(slot as u32)));
            }
            (Target::Direct(old), _) => {
                // Move the direct rule (and its counter) into a new VLAN
                // table as its default; the root entry gets a new counter.
                let old = old.clone();
                let root_counter = alloc_counter(ex)?;
                let mut t = match vlan_table(ex, log_vlan) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = ex.exec(&dealloc_flow_counter(root_counter));
                        return Err(e.into());
                    }
                };
                if let Err(e) = set_vlan_entry(ex, &t, None, &old) {
                    destroy_vlan_table(ex, t);
                    let _ = ex.exec(&dealloc_flow_counter(root_counter));
                    return Err(e.into());
                }
                t.default = Some(old);
                s.counter = root_counter;
                ex.exec(&DeleteFte {
                    table_type: TT,
                    table,
                    index: slot as u32,
                })?;
                ex.exec(&SetFte {
                    table_type: TT,
                    table,
                    index: slot as u32,
                    group: exact,
                    value: dmac_value(mac),
                    dests: &[Destination::Table(t.table)],
                    counter: Some(s.counter),
                })?;
                s.target = Target::Vlans(t);
            }
            (Target::Vlans(_), _) => {}
        }
        let Target::Vlans(t) = &mut s.target else {
            return Err(FlowError::NoEntry(FlowEntry(slot as u32)));
        };
        match m {
            VlanMatch::Any => {
                if t.default.is_some() {
                    return Err(FlowError::Duplicate(FlowEntry(slot as u32)));
                }
                let r = Counted {
                    dests: vec![dest],
                    counter: alloc_counter(ex)?,
                };
                if let Err(e) = set_vlan_entry(ex, t, None, &r) {
                    let _ = ex.exec(&dealloc_flow_counter(r.counter));
                    return Err(e.into());
                }
                t.default = Some(r);
            }
            m => {
                if t.vids.iter().flatten().any(|(k, _)| *k == m) {
                    return Err(FlowError::Duplicate(FlowEntry(slot as u32)));
                }
                let Some(k) = t.vids.iter().position(|x| x.is_none()) else {
                    return Err(FlowError::TableFull);
                };
                let r = Counted {
                    dests: vec![dest],
                    counter: alloc_counter(ex)?,
                };
                if let Err(e) = set_vlan_entry(ex, t, Some((k, m)), &r) {
                    let _ = ex.exec(&dealloc_flow_counter(r.counter));
                    return Err(e.into());
                }
                t.vids[k] = Some((m, r));
            }
        }
        self.sync_lists(ex)?;
        Ok(FlowEntry(slot as u32))
    }

    /// Add `dest` to the destinations of the shared rule (`mac`, `m`),
    /// creating it if needed (broadcast and multicast addresses several
    /// VNICs receive). Joining twice is not an error.
    pub fn join(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        m: VlanMatch,
        dest: Destination,
    ) -> Result<(), FlowError> {
        let Some(loc) = self.locate(mac, m) else {
            return self.add_match(ex, mac, m, dest).map(|_| ());
        };
        let Some(c) = self.counted_mut(loc) else {
            return Err(FlowError::NoEntry(FlowEntry(u32::MAX)));
        };
        if c.dests.contains(&dest) {
            return Ok(());
        }
        if c.dests.len() >= MAX_DESTINATIONS {
            return Err(FlowError::TableFull);
        }
        c.dests.push(dest);
        let r = self.rewrite(ex, loc);
        if r.is_err()
            && let Some(c) = self.counted_mut(loc)
        {
            c.dests.retain(|d| *d != dest);
        }
        r
    }

    /// Take `dest` out of the rule (`mac`, `m`); the rule goes with its
    /// last destination.
    pub fn leave(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        m: VlanMatch,
        dest: Destination,
    ) -> Result<(), FlowError> {
        let missing = FlowError::NoEntry(FlowEntry(u32::MAX));
        let loc = self.locate(mac, m).ok_or(missing)?;
        let c = self.counted_mut(loc).ok_or(missing)?;
        if !c.dests.contains(&dest) {
            return Err(missing);
        }
        if c.dests.len() == 1 {
            return self.remove_match(ex, mac, m);
        }
        c.dests.retain(|d| *d != dest);
        self.rewrite(ex, loc)
    }

    /// Remove the rule for (`mac`, `vlan`); the MAC leaves the tables and
    /// the vport's list with its last rule.
    pub fn remove_rule(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        vlan: Option<u16>,
    ) -> Result<(), FlowError> {
        self.remove_match(ex, mac, vlan.into())
    }

    /// Remove the rule for (`mac`, `m`), whatever its destinations.
    pub fn remove_match(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        m: VlanMatch,
    ) -> Result<(), FlowError> {
        let Some(slot) = self.slot_of(mac) else {
            return Err(FlowError::NoEntry(FlowEntry(u32::MAX)));
        };
        let entry = FlowEntry(slot as u32);
        let Some(s) = self.macs[slot].as_mut() else {
            return Err(FlowError::NoEntry(entry));
        };
        let last = match (&mut s.target, m) {
            (Target::Direct(_), VlanMatch::Any) => true,
            (Target::Direct(_), _) => return Err(FlowError::NoEntry(entry)),
            (Target::Vlans(t), VlanMatch::Any) => {
                let Some(r) = t.default.as_ref() else {
                    return Err(FlowError::NoEntry(entry));
                };
                let counter = r.counter;
                ex.exec(&DeleteFte {
                    table_type: TT,
                    table: t.table,
                    index: t.vids.len() as u32,
                })?;
                t.default = None;
                let _ = ex.exec(&dealloc_flow_counter(counter));
                t.is_empty()
            }
            (Target::Vlans(t), m) => {
                let Some(k) = t
                    .vids
                    .iter()
                    .position(|x| x.as_ref().is_some_and(|(id, _)| *id == m))
                else {
                    return Err(FlowError::NoEntry(entry));
                };
                ex.exec(&DeleteFte {
                    table_type: TT,
                    table: t.table,
                    index: k as u32,
                })?;
                if let Some((_, r)) = t.vids[k].take() {
                    let _ = ex.exec(&dealloc_flow_counter(r.counter));
                }
                t.is_empty()
            }
        };
        if last {
            ex.exec(&DeleteFte {
                table_type: TT,
                table: self.table,
                index: slot as u32,
            })?;
            if let Some(s) = self.macs[slot].take() {
                if let Target::Vlans(t) = s.target {
                    destroy_vlan_table(ex, t);
                }
                let _ = ex.exec(&dealloc_flow_counter(s.counter));
            }
            self.sync_lists(ex)?;
        }
        Ok(())
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

    fn set_vport_promisc(&self, ex: &mut impl Exec) -> Result<(), CmdError> {
        let p = self.promisc.is_some() || self.tap.is_some();
        ex.exec(&ModifyNicVportContext(VportChange::Promisc {
            uc: p,
            mc: p || self.allmulti.is_some(),
            all: p,
        }))
    }

    /// Index, group and match value of the all-multicast (`false`) or
    /// promiscuous (`true`) entry.
    fn catch_all_entry(&self, promisc: bool) -> (u32, Fgn, MatchValue) {
        let size = self.macs.len() as u32 + 2;
        if promisc {
            (size - 1, self.any, MatchValue::default())
        } else {
            (size - 2, self.mcast, dmac_value(Mac([0x01, 0, 0, 0, 0, 0])))
        }
    }

    /// A catch-all entry at `index` of `group` (the all-multicast or
    /// promiscuous one), or its removal.
    fn set_catch_all(
        &mut self,
        ex: &mut impl Exec,
        promisc: bool,
        to: Option<Destination>,
    ) -> Result<(), FlowError> {
        let (index, group, value) = self.catch_all_entry(promisc);
        let cur = if promisc {
            self.promisc.take()
        } else {
            self.allmulti.take()
        };
        if let Some(c) = cur {
            if let Err(e) = ex.exec(&DeleteFte {
                table_type: TT,
                table: self.table,
                index,
            }) {
                if promisc {
                    self.promisc = Some(c);
                } else {
                    self.allmulti = Some(c);
                }
                return Err(e.into());
            }
            let _ = ex.exec(&dealloc_flow_counter(c.counter));
        }
        if let Some(dest) = to {
            let counter = alloc_counter(ex)?;
            let dests = [dest];
            if let Err(e) = ex.exec(&SetFte {
                table_type: TT,
                table: self.table,
                index,
                group,
                value,
                dests: &dests,
                counter: Some(counter),
            }) {
                let _ = ex.exec(&dealloc_flow_counter(counter));
                return Err(e.into());
            }
            let c = Some(Counted {
                dests: dests.to_vec(),
                counter,
            });
            if promisc {
                self.promisc = c;
            } else {
                self.allmulti = c;
            }
        }
        self.set_vport_promisc(ex)?;
        Ok(())
    }

    /// Promiscuous mode: every frame no rule claims goes to `to` (None:
    /// off, such frames are dropped again).
    pub fn set_promisc(
        &mut self,
        ex: &mut impl Exec,
        to: Option<Destination>,
    ) -> Result<(), FlowError> {
        self.set_catch_all(ex, true, to)
    }

    /// All-multicast mode: every multicast frame no rule claims goes to
    /// `to` (None: off).
    pub fn set_allmulti(
        &mut self,
        ex: &mut impl Exec,
        to: Option<Destination>,
    ) -> Result<(), FlowError> {
        self.set_catch_all(ex, false, to)
    }

    /// Build a tap table forwarding to the MAC table and `dests`, make it
    /// the root, then remove the old tap (make before break: no frame is
    /// lost while the promiscuous set changes). No destinations: the MAC
    /// table is the root again.
    fn set_tap(&mut self, ex: &mut impl Exec, dests: Vec<Destination>) -> Result<(), FlowError> {
        let old = self.tap.take();
        let mut new = None;
        if !dests.is_empty() {
            let table = ex.exec(&CreateFlowTable {
                table_type: TT,
                level: TAP_LEVEL,
                log_size: 0,
            });
            let made = table.and_then(|table| {
                let group = match ex.exec(&CreateFlowGroup {
                    table_type: TT,
                    table,
                    start: 0,
                    end: 0,
                    criteria: Criteria::default(),
                }) {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = ex.exec(&DestroyFlowTable {
                            table_type: TT,
                            table,
                        });
                        return Err(e);
                    }
                };
                let tap = Tap {
                    table,
                    group,
                    counter: FlowCounterId(0),
                    dests,
                };
                let r = alloc_counter(ex).and_then(|counter| {
                    let mut all = vec![Destination::Table(self.table)];
                    all.extend_from_slice(&tap.dests);
                    let set = ex.exec(&SetFte {
                        table_type: TT,
                        table,
                        index: 0,
                        group,
                        value: MatchValue::default(),
                        dests: &all,
                        counter: Some(counter),
                    });
                    if set.is_err() {
                        let _ = ex.exec(&dealloc_flow_counter(counter));
                    }
                    set.map(|()| counter)
                });
                match r {
                    Ok(counter) => Ok(Tap { counter, ..tap }),
                    Err(e) => {
                        destroy_tap(ex, tap, false);
                        Err(e)
                    }
                }
            });
            match made {
                Ok(t) => new = Some(t),
                Err(e) => {
                    self.tap = old;
                    return Err(e.into());
                }
            }
        }
        let root = new.as_ref().map_or(self.table, |t| t.table);
        if let Err(e) = ex.exec(&SetFlowTableRoot {
            table_type: TT,
            table: root,
        }) {
            if let Some(t) = new {
                destroy_tap(ex, t, true);
            }
            self.tap = old;
            return Err(e.into());
        }
        if let Some(t) = old {
            destroy_tap(ex, t, true);
        }
        self.tap = new;
        self.set_vport_promisc(ex)?;
        Ok(())
    }

    /// A promiscuous destination: every frame the port receives reaches
    /// it (besides wherever the rules send it). Joining twice is not an
    /// error.
    pub fn tap_join(&mut self, ex: &mut impl Exec, dest: Destination) -> Result<(), FlowError> {
        let mut dests = self.tap.as_ref().map_or(Vec::new(), |t| t.dests.clone());
        if dests.contains(&dest) {
            return Ok(());
        }
        if dests.len() + 1 >= MAX_DESTINATIONS {
            return Err(FlowError::TableFull);
        }
        dests.push(dest);
        self.set_tap(ex, dests)
    }

    pub fn tap_leave(&mut self, ex: &mut impl Exec, dest: Destination) -> Result<(), FlowError> {
        let mut dests = self.tap.as_ref().map_or(Vec::new(), |t| t.dests.clone());
        let Some(i) = dests.iter().position(|d| *d == dest) else {
            return Err(FlowError::NoEntry(FlowEntry(u32::MAX)));
        };
        dests.remove(i);
        self.set_tap(ex, dests)
    }

    /// The promiscuous destinations.
    pub fn tapped(&self) -> &[Destination] {
        self.tap.as_ref().map_or(&[], |t| &t.dests[..])
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

    /// The flow counter of a rule.
    pub fn counter(&self, mac: Mac, vlan: Option<u16>) -> Option<FlowCounterId> {
        self.counter_of(mac, vlan.into())
    }

    pub fn counter_of(&self, mac: Mac, m: VlanMatch) -> Option<FlowCounterId> {
        self.locate(mac, m)
            .and_then(|l| self.counted(l))
            .map(|c| c.counter)
    }

    /// The destinations of a rule.
    pub fn dests_of(&self, mac: Mac, m: VlanMatch) -> Option<&[Destination]> {
        self.locate(mac, m)
            .and_then(|l| self.counted(l))
            .map(|c| &c.dests[..])
    }

    /// Frames and bytes a rule steered (a command: not for the packet
    /// path).
    pub fn traffic(
        &self,
        ex: &mut impl Exec,
        mac: Mac,
        vlan: Option<u16>,
    ) -> Result<Traffic, FlowError> {
        self.traffic_of(ex, mac, vlan.into())
    }

    pub fn traffic_of(
        &self,
        ex: &mut impl Exec,
        mac: Mac,
        m: VlanMatch,
    ) -> Result<Traffic, FlowError> {
        let id = self
            .counter_of(mac, m)
            .ok_or(FlowError::NoEntry(FlowEntry(u32::MAX)))?;
        Ok(ex.exec(&QueryFlowCounter { id, clear: false })?)
    }

    /// Frames the promiscuous (`true`) or all-multicast entry took.
    pub fn catch_all_traffic(
        &self,
        ex: &mut impl Exec,
        promisc: bool,
    ) -> Result<Traffic, FlowError> {
        let c = if promisc {
            &self.promisc
        } else {
            &self.allmulti
        };
        let c = c.as_ref().ok_or(FlowError::NoEntry(FlowEntry(u32::MAX)))?;
        Ok(ex.exec(&QueryFlowCounter {
            id: c.counter,
            clear: false,
        })?)
    }

    /// Compatibility with the single-table steering: the root entry of a
    /// MAC.
    pub fn find(&self, mac: Mac) -> Option<FlowEntry> {
        self.slot_of(mac).map(|i| FlowEntry(i as u32))
    }

    /// Compatibility with the single-table steering: (`mac`, no VLAN) to a
    /// TIR.
    pub fn add(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        dest: Destination,
    ) -> Result<FlowEntry, FlowError> {
        self.add_rule(ex, mac, None, dest)
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

/// The TIRs of an RSS port, one per traffic type: TCP and UDP over IPv4
/// and IPv6 hash addresses and ports, other IPv4 / IPv6 the addresses
/// only, everything else goes to one queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RssTirs {
    pub ipv4_tcp: Tirn,
    pub ipv4_udp: Tirn,
    pub ipv6_tcp: Tirn,
    pub ipv6_udp: Tirn,
    pub ipv4: Tirn,
    pub ipv6: Tirn,
    pub other: Tirn,
}

/// The traffic-type table of an RSS port (level 2): every rule of the
/// port forwards here, and it picks the TIR by ethertype and IP protocol
/// (groups tried in order: ethertype + protocol, ethertype, anything).
#[derive(Debug)]
pub struct TrafficTable {
    pub table: Ftn,
    groups: [Fgn; 3],
    entries: usize,
}

/// Level of the traffic-type table (below the VLAN tables).
pub const TRAFFIC_LEVEL: u8 = 3;

impl TrafficTable {
    pub fn create(ex: &mut impl Exec, t: &RssTirs) -> Result<Self, CmdError> {
        let table = ex.exec(&CreateFlowTable {
            table_type: TT,
            level: TRAFFIC_LEVEL,
            log_size: 3,
        })?;
        let mut me = TrafficTable {
            table,
            groups: [Fgn(0); 3],
            entries: 0,
        };
        let specs = [
            (
                0,
                3,
                Criteria {
                    ethertype: true,
                    ip_protocol: true,
                    ..Criteria::default()
                },
            ),
            (
                4,
                5,
                Criteria {
                    ethertype: true,
                    ..Criteria::default()
                },
            ),
            (6, 6, Criteria::default()),
        ];
        let mut made = 0;
        let mut r = Ok(());
        for (i, (start, end, criteria)) in specs.into_iter().enumerate() {
            match ex.exec(&CreateFlowGroup {
                table_type: TT,
                table,
                start,
                end,
                criteria,
            }) {
                Ok(g) => {
                    me.groups[i] = g;
                    made += 1;
                }
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        const V4: u16 = crate::frame::ETHERTYPE_IPV4;
        const V6: u16 = crate::frame::ETHERTYPE_IPV6;
        const TCP: u8 = crate::frame::IPPROTO_TCP;
        const UDP: u8 = crate::frame::IPPROTO_UDP;
        let entries = [
            (0, Some(V4), Some(TCP), t.ipv4_tcp),
            (0, Some(V4), Some(UDP), t.ipv4_udp),
            (0, Some(V6), Some(TCP), t.ipv6_tcp),
            (0, Some(V6), Some(UDP), t.ipv6_udp),
            (1, Some(V4), None, t.ipv4),
            (1, Some(V6), None, t.ipv6),
            (2, None, None, t.other),
        ];
        if r.is_ok() {
            for (index, (g, ethertype, ip_protocol, tir)) in entries.into_iter().enumerate() {
                if let Err(e) = ex.exec(&SetFte {
                    table_type: TT,
                    table,
                    index: index as u32,
                    group: me.groups[g],
                    value: MatchValue {
                        ethertype,
                        ip_protocol,
                        ..MatchValue::default()
                    },
                    dests: &[Destination::Tir(tir)],
                    counter: None,
                }) {
                    r = Err(e);
                    break;
                }
                me.entries += 1;
            }
        }
        match r {
            Ok(()) => Ok(me),
            Err(e) => {
                let groups = made;
                let _ = me.destroy_parts(ex, groups);
                Err(e)
            }
        }
    }

    fn destroy_parts(self, ex: &mut impl Exec, groups: usize) -> Result<(), CmdError> {
        let mut first = Ok(());
        let mut keep = |r: Result<(), CmdError>| {
            if let (Err(e), Ok(())) = (r, &first) {
                first = Err(e);
            }
        };
        for i in 0..self.entries {
            keep(ex.exec(&DeleteFte {
                table_type: TT,
                table: self.table,
                index: i as u32,
            }));
        }
        for g in self.groups[..groups].iter().rev() {
            keep(ex.exec(&DestroyFlowGroup {
                table_type: TT,
                table: self.table,
                group: *g,
            }));
        }
        keep(ex.exec(&DestroyFlowTable {
            table_type: TT,
            table: self.table,
        }));
        first
    }

    pub fn destroy(self, ex: &mut impl Exec) -> Result<(), CmdError> {
        self.destroy_parts(ex, 3)
    }
}

/// Delete a tap table: its entry (when set) and counter, group, table.
fn destroy_tap(ex: &mut impl Exec, t: Tap, with_entry: bool) {
    if with_entry {
        let _ = ex.exec(&DeleteFte {
            table_type: TT,
            table: t.table,
            index: 0,
        });
        let _ = ex.exec(&dealloc_flow_counter(t.counter));
    }
    let _ = ex.exec(&DestroyFlowGroup {
        table_type: TT,
        table: t.table,
        group: t.group,
    });
    let _ = ex.exec(&DestroyFlowTable {
        table_type: TT,
        table: t.table,
    });
}

/// A MAC's VLAN table ([`VLAN_LEVEL`]): the tagged group over all but the last
/// index, the catch-all group in the last.
fn vlan_table(ex: &mut impl Exec, log: u8) -> Result<VlanTable, CmdError> {
    let size = 1u32 << log;
    let table = ex.exec(&CreateFlowTable {
        table_type: TT,
        level: VLAN_LEVEL,
        log_size: log,
    })?;
    let tagged = match ex.exec(&CreateFlowGroup {
        table_type: TT,
        table,
        start: 0,
        end: size - 2,
        criteria: Criteria {
            vlan: true,
            ..Criteria::default()
        },
    }) {
        Ok(g) => g,
        Err(e) => {
            let _ = ex.exec(&DestroyFlowTable {
                table_type: TT,
                table,
            });
            return Err(e);
        }
    };
    let any = match ex.exec(&CreateFlowGroup {
        table_type: TT,
        table,
        start: size - 1,
        end: size - 1,
        criteria: Criteria::default(),
    }) {
        Ok(g) => g,
        Err(e) => {
            let _ = ex.exec(&DestroyFlowGroup {
                table_type: TT,
                table,
                group: tagged,
            });
            let _ = ex.exec(&DestroyFlowTable {
                table_type: TT,
                table,
            });
            return Err(e);
        }
    };
    Ok(VlanTable {
        table,
        tagged,
        any,
        default: None,
        vids: vec![None; size as usize - 1],
    })
}

/// Set a VLAN table entry: (`index`, VLAN id or untagged) in the tagged
/// group (an untagged entry matches cvlan_tag 0, VID 0), or the catch-all
/// (`None`).
fn set_vlan_entry(
    ex: &mut impl Exec,
    t: &VlanTable,
    at: Option<(usize, VlanMatch)>,
    r: &Counted,
) -> Result<(), CmdError> {
    let (index, group, value) = match at {
        Some((k, m)) => (k as u32, t.tagged, vlan_value(m)),
        None => (t.vids.len() as u32, t.any, MatchValue::default()),
    };
    ex.exec(&SetFte {
        table_type: TT,
        table: t.table,
        index,
        group,
        value,
        dests: &r.dests,
        counter: Some(r.counter),
    })
}

/// Delete a VLAN table's entries, counters, groups and the table (best
/// effort: used on teardown and to undo).
fn destroy_vlan_table(ex: &mut impl Exec, t: VlanTable) {
    for (k, v) in t.vids.iter().enumerate() {
        if let Some((_, r)) = v {
            let _ = ex.exec(&DeleteFte {
                table_type: TT,
                table: t.table,
                index: k as u32,
            });
            let _ = ex.exec(&dealloc_flow_counter(r.counter));
        }
    }
    if let Some(r) = &t.default {
        let _ = ex.exec(&DeleteFte {
            table_type: TT,
            table: t.table,
            index: t.vids.len() as u32,
        });
        let _ = ex.exec(&dealloc_flow_counter(r.counter));
    }
    for g in [t.any, t.tagged] {
        let _ = ex.exec(&DestroyFlowGroup {
            table_type: TT,
            table: t.table,
            group: g,
        });
    }
    let _ = ex.exec(&DestroyFlowTable {
        table_type: TT,
        table: t.table,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::op;
    use crate::mock::MockExec;

    const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const M: Mac = Mac([0x33, 0x33, 0, 0, 0, 1]);

    #[test]
    fn rules_vlan_tables_counters_and_vport_lists_at_run_time() {
        let mut ex = MockExec::default();
        let cfg = SteeringConfig {
            log_root: 2,
            log_vlan: 2,
        };
        let mut st = PortSteering::create(&mut ex, cfg).unwrap();
        // Root: table, exact [0..=1], multicast [2], any [3], root.
        let groups = ex.inputs(op::CREATE_FLOW_GROUP);
        assert_eq!(
            &groups[0][0x1c..0x28],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        // Multicast group: dmac criteria 01:00:00:00:00:00 only.
        assert_eq!(&groups[1][0x48..0x4e], &[1, 0, 0, 0, 0, 0]);
        assert_eq!(&groups[2][0x3c..0x40], &[0, 0, 0, 0], "catch-all");
        let n = ex.log.len();
        st.add_rule(&mut ex, A, None, Tirn(7)).unwrap();
        assert_eq!(
            ex.opcodes()[n..],
            [
                op::ALLOC_FLOW_COUNTER,
                op::SET_FLOW_TABLE_ENTRY,
                op::MODIFY_NIC_VPORT_CONTEXT
            ]
        );
        assert_eq!(
            st.add_rule(&mut ex, A, None, Tirn(7)),
            Err(FlowError::Duplicate(FlowEntry(0)))
        );
        // A VLAN rule turns A's direct entry into a VLAN table: its old
        // rule becomes the table's default, keeping its counter.
        let old_counter = st.counter(A, None).unwrap();
        let n = ex.log.len();
        st.add_rule(&mut ex, A, Some(10), Tirn(8)).unwrap();
        assert_eq!(
            ex.opcodes()[n..],
            [
                op::ALLOC_FLOW_COUNTER,
                op::CREATE_FLOW_TABLE,
                op::CREATE_FLOW_GROUP,
                op::CREATE_FLOW_GROUP,
                op::SET_FLOW_TABLE_ENTRY,
                op::DELETE_FLOW_TABLE_ENTRY,
                op::SET_FLOW_TABLE_ENTRY,
                op::ALLOC_FLOW_COUNTER,
                op::SET_FLOW_TABLE_ENTRY,
            ]
        );
        let vt = ex.inputs(op::CREATE_FLOW_TABLE)[1];
        assert_eq!(&vt[0x18..0x1c], &[0, 0x02, 0, 0x02], "level 2, log 2");
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        let root = ftes[ftes.len() - 2];
        // Root entry -> the VLAN table (type 1).
        assert_eq!(root[0x340], 0x01);
        let vid = ftes[ftes.len() - 1];
        // VLAN entry: first_vid 10 and cvlan_tag in the match value.
        assert_eq!(&vid[0x8c..0x94], &[0, 0, 0x00, 0x0a, 0, 0, 0x80, 0]);
        assert_eq!(&vid[0x340..0x344], &[0x02, 0, 0, 8]);
        assert_eq!(st.counter(A, None), Some(old_counter));
        assert_eq!(st.rules().len(), 2);
        assert!(st.report().contains("vlan 10 -> tir 8"), "{}", st.report());
        // A multicast MAC joins the vport's multicast list.
        st.add_rule(&mut ex, M, None, Tirn(7)).unwrap();
        let lists = ex.inputs(op::MODIFY_NIC_VPORT_CONTEXT);
        let last = lists[lists.len() - 1];
        assert_eq!(&last[0x1f0..0x1f4], &[0x01, 0, 0, 1]);
        assert_eq!(&last[0x202..0x208], &M.0);
        assert_eq!(
            st.add_rule(&mut ex, Mac([2, 9, 9, 9, 9, 9]), None, Tirn(7)),
            Err(FlowError::TableFull)
        );
        // Promiscuous: catch-all entry (index 3) + vport flags.
        st.set_promisc(&mut ex, Some(Tirn(7).into())).unwrap();
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        assert_eq!(&ftes[ftes.len() - 1][0x20..0x24], &[0, 0, 0, 3]);
        let lists = ex.inputs(op::MODIFY_NIC_VPORT_CONTEXT);
        assert_eq!(&lists[lists.len() - 1][0x1f0..0x1f4], &[0xe0, 0, 0, 0]);
        st.set_allmulti(&mut ex, Some(Tirn(7).into())).unwrap();
        st.set_promisc(&mut ex, None).unwrap();
        let lists = ex.inputs(op::MODIFY_NIC_VPORT_CONTEXT);
        assert_eq!(&lists[lists.len() - 1][0x1f0..0x1f4], &[0x40, 0, 0, 0]);
        assert!(!st.promisc() && st.allmulti());
        // Removing A's rules one by one: the VLAN table goes with the last.
        st.remove_rule(&mut ex, A, Some(10)).unwrap();
        assert_eq!(
            st.remove_rule(&mut ex, A, Some(10)),
            Err(FlowError::NoEntry(FlowEntry(0)))
        );
        let n = ex.log.len();
        st.remove_rule(&mut ex, A, None).unwrap();
        let ops = ex.opcodes()[n..].to_vec();
        assert!(ops.contains(&op::DESTROY_FLOW_TABLE), "{ops:x?}");
        assert_eq!(st.find(A), None);
        // Everything created is destroyed: counters, groups, tables.
        st.destroy(&mut ex).unwrap();
        let count = |o: u16| ex.opcodes().iter().filter(|&&x| x == o).count();
        assert_eq!(
            count(op::ALLOC_FLOW_COUNTER),
            count(op::DEALLOC_FLOW_COUNTER)
        );
        assert_eq!(count(op::CREATE_FLOW_GROUP), count(op::DESTROY_FLOW_GROUP));
        assert_eq!(count(op::CREATE_FLOW_TABLE), count(op::DESTROY_FLOW_TABLE));
        assert_eq!(
            count(op::SET_FLOW_TABLE_ENTRY),
            count(op::DELETE_FLOW_TABLE_ENTRY)
        );
    }

    #[test]
    fn shared_rules_join_and_leave_and_untagged_matches_only_untagged() {
        let mut ex = MockExec::default();
        let cfg = SteeringConfig {
            log_root: 3,
            log_vlan: 2,
        };
        let mut st = PortSteering::create(&mut ex, cfg).unwrap();
        let (t1, t2) = (Destination::Tir(Tirn(21)), Destination::Tir(Tirn(22)));
        // Untagged: A's VLAN table, an entry in the tagged group whose
        // value is cvlan_tag 0 / VID 0.
        st.add_match(&mut ex, A, VlanMatch::Untagged, t1).unwrap();
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        let e = ftes[ftes.len() - 1];
        let tagged_group = ex
            .log
            .iter()
            .filter(|(o, _)| *o == op::CREATE_FLOW_GROUP)
            .count();
        assert_eq!(tagged_group, 5, "root 3 + the VLAN table's 2");
        assert_eq!(&e[0x20..0x24], &[0, 0, 0, 0], "index 0: the tagged group");
        assert_eq!(&e[0x8c..0x94], &[0; 8], "no tag, VID 0");
        assert_eq!(
            st.add_match(&mut ex, A, VlanMatch::Untagged, t2),
            Err(FlowError::Duplicate(FlowEntry(0)))
        );
        // Broadcast shared by two destinations: the second join rewrites
        // the entry with both.
        let bcast = VlanMatch::Id(10);
        st.join(&mut ex, BROADCAST, bcast, t1).unwrap();
        let n = ex.log.len();
        st.join(&mut ex, BROADCAST, bcast, t2).unwrap();
        st.join(&mut ex, BROADCAST, bcast, t2).unwrap();
        assert_eq!(
            ex.opcodes()[n..],
            [op::DELETE_FLOW_TABLE_ENTRY, op::SET_FLOW_TABLE_ENTRY],
            "joining twice changes nothing"
        );
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        let e = ftes[ftes.len() - 1];
        assert_eq!(&e[0x50..0x54], &[0, 0, 0, 2]);
        assert_eq!(
            &e[0x340..0x350],
            &[2, 0, 0, 21, 0, 0, 0, 0, 2, 0, 0, 22, 0, 0, 0, 0]
        );
        assert_eq!(st.dests_of(BROADCAST, bcast), Some(&[t1, t2][..]));
        // The programmed view lists every entry once.
        let p = st.programmed();
        assert_eq!(p.len(), 4, "A root + untagged, broadcast root + vlan 10");
        assert!(
            p.iter()
                .any(|e| e.level == VLAN_LEVEL && e.dests == [t1, t2])
        );
        assert_eq!(st.tables().len(), 3);
        // Leaving: the entry keeps the other; the last leave removes it
        // (and the broadcast VLAN table with it).
        st.leave(&mut ex, BROADCAST, bcast, t1).unwrap();
        assert_eq!(st.dests_of(BROADCAST, bcast), Some(&[t2][..]));
        assert!(matches!(
            st.leave(&mut ex, BROADCAST, bcast, t1),
            Err(FlowError::NoEntry(_))
        ));
        st.leave(&mut ex, BROADCAST, bcast, t2).unwrap();
        assert_eq!(st.find(BROADCAST), None);
        st.remove_match(&mut ex, A, VlanMatch::Untagged).unwrap();
        st.destroy(&mut ex).unwrap();
        let count = |o: u16| ex.opcodes().iter().filter(|&&x| x == o).count();
        assert_eq!(
            count(op::ALLOC_FLOW_COUNTER),
            count(op::DEALLOC_FLOW_COUNTER)
        );
        assert_eq!(count(op::CREATE_FLOW_TABLE), count(op::DESTROY_FLOW_TABLE));
        assert_eq!(
            count(op::SET_FLOW_TABLE_ENTRY),
            count(op::DELETE_FLOW_TABLE_ENTRY)
        );
    }

    #[test]
    fn failed_root_undoes_groups_and_table() {
        let mut ex = MockExec {
            fail_opcode: Some(op::SET_FLOW_TABLE_ROOT),
            ..MockExec::default()
        };
        let e = PortSteering::create(&mut ex, SteeringConfig::default()).unwrap_err();
        assert_eq!(e.opcode, op::SET_FLOW_TABLE_ROOT);
        let count = |o: u16| ex.opcodes().iter().filter(|&&x| x == o).count();
        assert_eq!(count(op::CREATE_FLOW_GROUP), 3);
        assert_eq!(count(op::DESTROY_FLOW_GROUP), 3);
        assert_eq!(count(op::DESTROY_FLOW_TABLE), 1);
    }
}
