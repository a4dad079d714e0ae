//! The port's receive steering: which frames the adapter delivers, and to
//! which TIR, built from the NIC_RX flow tables ([`crate::flow`]), flow
//! counters ([`crate::flow_counter`]) and the vport's address lists and
//! promiscuous flags ([`crate::vport`]).
//!
//! Layout (the one the illumos mlxcx driver describes):
//! - the root table (level 0) has three groups, tried in index order: one
//!   matching the exact destination MAC (every (MAC, VLAN) rule's MAC
//!   has one entry there), one matching only the multicast bit of the
//!   destination MAC (the all-multicast entry), one matching nothing (the
//!   promiscuous entry);
//! - a MAC whose only rule is (MAC, no VLAN) forwards straight to its TIR;
//!   a MAC with VLAN rules forwards to its own VLAN table (level 1): one
//!   group matching VLAN presence and id (one entry per VLAN rule), one
//!   matching nothing (the (MAC, no VLAN) rule: untagged frames and VLANs
//!   no rule claims);
//! - every entry counts into its own flow counter;
//! - the vport's unicast and multicast address lists hold every rule's MAC
//!   (the e-switch's filter in front of the tables), its promiscuous flags
//!   follow the promiscuous / all-multicast modes.
//!
//! A frame nothing matches is dropped by the adapter. Rules are added and
//! removed at run time ([`PortSteering::add_rule`],
//! [`PortSteering::remove_rule`]): VNICs (a MAC, an optional VLAN, their
//! own RQs behind their own TIR) are one rule each. Turning a MAC's direct
//! entry into a VLAN table replaces its root entry (delete, then set at
//! the same index): frames for that MAC arriving in between are dropped.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::cmd::Exec;
use crate::error::CmdError;
use crate::flow::{
    BROADCAST, CreateFlowGroup, CreateFlowTable, Criteria, DeleteFte, Destination,
    DestroyFlowGroup, DestroyFlowTable, Fgn, FlowEntry, FlowError, Ftn, MatchValue,
    SetFlowTableRoot, SetFte, TABLE_TYPE_NIC_RX,
};
use crate::flow_counter::{
    AllocFlowCounter, FlowCounterId, QueryFlowCounter, Traffic, dealloc_flow_counter,
};
use crate::tir::Tirn;
use crate::vport::{Mac, ModifyNicVportContext, VportChange};

const TT: u8 = TABLE_TYPE_NIC_RX;

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

/// One installed entry: where it forwards and its counter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Counted {
    dest: Destination,
    counter: FlowCounterId,
}

#[derive(Debug)]
struct VlanTable {
    table: Ftn,
    tagged: Fgn,
    any: Fgn,
    /// The (MAC, no VLAN) rule, in the last index.
    default: Option<Counted>,
    /// (VLAN id, rule) per index of the tagged group.
    vids: Vec<Option<(u16, Counted)>>,
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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rule {
    pub mac: Mac,
    pub vlan: Option<u16>,
    pub dest: Destination,
    pub counter: FlowCounterId,
}

/// The port's steering tables (see the module documentation).
#[derive(Debug)]
pub struct PortSteering {
    pub table: Ftn,
    exact: Fgn,
    mcast: Fgn,
    any: Fgn,
    log_vlan: u8,
    macs: Vec<Option<MacSlot>>,
    allmulti: Option<Counted>,
    promisc: Option<Counted>,
    /// Vport address lists as last programmed.
    uc: Vec<Mac>,
    mc: Vec<Mac>,
}

fn alloc_counter(ex: &mut impl Exec) -> Result<FlowCounterId, CmdError> {
    ex.exec(&AllocFlowCounter)
}

impl PortSteering {
    /// Create the root table and its groups and make it the NIC_RX root.
    /// On failure whatever was created is destroyed again.
    pub fn create(ex: &mut impl Exec, cfg: SteeringConfig) -> Result<Self, CmdError> {
        let log_root = cfg.log_root.max(2);
        let size = 1u32 << log_root;
        let table = ex.exec(&CreateFlowTable {
            table_type: TT,
            level: 0,
            log_size: log_root,
        })?;
        let specs = [
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
        ];
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
            log_vlan: cfg.log_vlan.clamp(1, 12),
            macs,
            allmulti: None,
            promisc: None,
            uc: Vec::new(),
            mc: Vec::new(),
        })
    }

    fn slot_of(&self, mac: Mac) -> Option<usize> {
        self.macs
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.mac == mac))
    }

    fn set_root(
        &self,
        ex: &mut impl Exec,
        index: usize,
        mac: Mac,
        dest: Destination,
        counter: FlowCounterId,
    ) -> Result<(), CmdError> {
        ex.exec(&SetFte {
            table_type: TT,
            table: self.table,
            index: index as u32,
            group: self.exact,
            value: MatchValue {
                dmac: Some(mac),
                ..MatchValue::default()
            },
            dest: Some(dest),
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
        let dest: Destination = to.into();
        if vlan.is_some_and(|v| v > 0xfff) {
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
                let target = match vlan {
                    None => Target::Direct(Counted { dest, counter }),
                    Some(_) => match self.vlan_table(ex) {
                        Ok(t) => Target::Vlans(t),
                        Err(e) => {
                            let _ = ex.exec(&dealloc_flow_counter(counter));
                            return Err(e.into());
                        }
                    },
                };
                let root_dest = match &target {
                    Target::Direct(r) => r.dest,
                    Target::Vlans(t) => Destination::Table(t.table),
                };
                if let Err(e) = self.set_root(ex, i, mac, root_dest, counter) {
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
                if vlan.is_none() {
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
        match (&mut s.target, vlan) {
            (Target::Direct(_), None) => return Err(FlowError::Duplicate(FlowEntry(slot as u32))),
            (Target::Direct(old), Some(_)) => {
                // Move the direct rule (and its counter) into a new VLAN
                // table as its default; the root entry gets a new counter.
                let old = *old;
                let root_counter = alloc_counter(ex)?;
                let mut t = match vlan_table(ex, log_vlan) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = ex.exec(&dealloc_flow_counter(root_counter));
                        return Err(e.into());
                    }
                };
                if let Err(e) = set_vlan_entry(ex, &t, None, old) {
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
                    value: MatchValue {
                        dmac: Some(mac),
                        ..MatchValue::default()
                    },
                    dest: Some(Destination::Table(t.table)),
                    counter: Some(s.counter),
                })?;
                s.target = Target::Vlans(t);
            }
            (Target::Vlans(_), _) => {}
        }
        let Target::Vlans(t) = &mut s.target else {
            return Err(FlowError::NoEntry(FlowEntry(slot as u32)));
        };
        match vlan {
            None => {
                if t.default.is_some() {
                    return Err(FlowError::Duplicate(FlowEntry(slot as u32)));
                }
                let r = Counted {
                    dest,
                    counter: alloc_counter(ex)?,
                };
                if let Err(e) = set_vlan_entry(ex, t, None, r) {
                    let _ = ex.exec(&dealloc_flow_counter(r.counter));
                    return Err(e.into());
                }
                t.default = Some(r);
            }
            Some(v) => {
                if t.vids.iter().flatten().any(|(id, _)| *id == v) {
                    return Err(FlowError::Duplicate(FlowEntry(slot as u32)));
                }
                let Some(k) = t.vids.iter().position(|x| x.is_none()) else {
                    return Err(FlowError::TableFull);
                };
                let r = Counted {
                    dest,
                    counter: alloc_counter(ex)?,
                };
                if let Err(e) = set_vlan_entry(ex, t, Some((k, v)), r) {
                    let _ = ex.exec(&dealloc_flow_counter(r.counter));
                    return Err(e.into());
                }
                t.vids[k] = Some((v, r));
            }
        }
        self.sync_lists(ex)?;
        Ok(FlowEntry(slot as u32))
    }

    fn vlan_table(&self, ex: &mut impl Exec) -> Result<VlanTable, CmdError> {
        vlan_table(ex, self.log_vlan)
    }

    /// Remove the rule for (`mac`, `vlan`); the MAC leaves the tables and
    /// the vport's list with its last rule.
    pub fn remove_rule(
        &mut self,
        ex: &mut impl Exec,
        mac: Mac,
        vlan: Option<u16>,
    ) -> Result<(), FlowError> {
        let Some(slot) = self.slot_of(mac) else {
            return Err(FlowError::NoEntry(FlowEntry(u32::MAX)));
        };
        let entry = FlowEntry(slot as u32);
        let Some(s) = self.macs[slot].as_mut() else {
            return Err(FlowError::NoEntry(entry));
        };
        let last = match (&mut s.target, vlan) {
            (Target::Direct(_), None) => true,
            (Target::Direct(_), Some(_)) => return Err(FlowError::NoEntry(entry)),
            (Target::Vlans(t), None) => {
                let Some(r) = t.default else {
                    return Err(FlowError::NoEntry(entry));
                };
                ex.exec(&DeleteFte {
                    table_type: TT,
                    table: t.table,
                    index: t.vids.len() as u32,
                })?;
                t.default = None;
                let _ = ex.exec(&dealloc_flow_counter(r.counter));
                t.is_empty()
            }
            (Target::Vlans(t), Some(v)) => {
                let Some(k) = t.vids.iter().position(|x| x.is_some_and(|(id, _)| id == v)) else {
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
        let p = self.promisc.is_some();
        ex.exec(&ModifyNicVportContext(VportChange::Promisc {
            uc: p,
            mc: p || self.allmulti.is_some(),
            all: p,
        }))
    }

    /// A catch-all entry at `index` of `group` (the all-multicast or
    /// promiscuous one), or its removal.
    fn set_catch_all(
        &mut self,
        ex: &mut impl Exec,
        promisc: bool,
        to: Option<Destination>,
    ) -> Result<(), FlowError> {
        let size = self.macs.len() as u32 + 2;
        let (index, group, value) = if promisc {
            (size - 1, self.any, MatchValue::default())
        } else {
            (
                size - 2,
                self.mcast,
                MatchValue {
                    dmac: Some(Mac([0x01, 0, 0, 0, 0, 0])),
                    ..MatchValue::default()
                },
            )
        };
        let cur = if promisc { self.promisc } else { self.allmulti };
        if let Some(c) = cur {
            ex.exec(&DeleteFte {
                table_type: TT,
                table: self.table,
                index,
            })?;
            let _ = ex.exec(&dealloc_flow_counter(c.counter));
            if promisc {
                self.promisc = None;
            } else {
                self.allmulti = None;
            }
        }
        if let Some(dest) = to {
            let counter = alloc_counter(ex)?;
            if let Err(e) = ex.exec(&SetFte {
                table_type: TT,
                table: self.table,
                index,
                group,
                value,
                dest: Some(dest),
                counter: Some(counter),
            }) {
                let _ = ex.exec(&dealloc_flow_counter(counter));
                return Err(e.into());
            }
            let c = Some(Counted { dest, counter });
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
            let mk = |vlan, c: Counted| Rule {
                mac: s.mac,
                vlan,
                dest: c.dest,
                counter: c.counter,
            };
            match &s.target {
                Target::Direct(c) => out.push(mk(None, *c)),
                Target::Vlans(t) => {
                    if let Some(c) = t.default {
                        out.push(mk(None, c));
                    }
                    for (v, c) in t.vids.iter().flatten() {
                        out.push(mk(Some(*v), *c));
                    }
                }
            }
        }
        out
    }

    /// The flow counter of a rule.
    pub fn counter(&self, mac: Mac, vlan: Option<u16>) -> Option<FlowCounterId> {
        self.rules()
            .into_iter()
            .find(|r| r.mac == mac && r.vlan == vlan)
            .map(|r| r.counter)
    }

    /// Frames and bytes a rule steered (a command: not for the packet
    /// path).
    pub fn traffic(
        &self,
        ex: &mut impl Exec,
        mac: Mac,
        vlan: Option<u16>,
    ) -> Result<Traffic, FlowError> {
        let id = self
            .counter(mac, vlan)
            .ok_or(FlowError::NoEntry(FlowEntry(u32::MAX)))?;
        Ok(ex.exec(&QueryFlowCounter { id, clear: false })?)
    }

    /// Frames the promiscuous (`true`) or all-multicast entry took.
    pub fn catch_all_traffic(
        &self,
        ex: &mut impl Exec,
        promisc: bool,
    ) -> Result<Traffic, FlowError> {
        let c = if promisc { self.promisc } else { self.allmulti };
        let c = c.ok_or(FlowError::NoEntry(FlowEntry(u32::MAX)))?;
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
        for (i, m) in self.macs.iter().enumerate() {
            let Some(m) = m else { continue };
            match &m.target {
                Target::Direct(r) => {
                    let _ = writeln!(
                        s,
                        "  [{i}] dmac {} -> {} (counter {})",
                        m.mac, r.dest, r.counter.0
                    );
                }
                Target::Vlans(t) => {
                    let _ = writeln!(s, "  [{i}] dmac {} -> vlan table {}", m.mac, t.table.0);
                    for (v, r) in t.vids.iter().flatten() {
                        let _ =
                            writeln!(s, "      vlan {v} -> {} (counter {})", r.dest, r.counter.0);
                    }
                    if let Some(r) = t.default {
                        let _ = writeln!(s, "      other -> {} (counter {})", r.dest, r.counter.0);
                    }
                }
            }
        }
        s
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
pub const TRAFFIC_LEVEL: u8 = 2;

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
                    dest: Some(Destination::Tir(tir)),
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

/// A MAC's VLAN table (level 1): the tagged group over all but the last
/// index, the catch-all group in the last.
fn vlan_table(ex: &mut impl Exec, log: u8) -> Result<VlanTable, CmdError> {
    let size = 1u32 << log;
    let table = ex.exec(&CreateFlowTable {
        table_type: TT,
        level: 1,
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

/// Set a VLAN table entry: (`index`, VLAN id) in the tagged group, or the
/// catch-all (`None`).
fn set_vlan_entry(
    ex: &mut impl Exec,
    t: &VlanTable,
    at: Option<(usize, u16)>,
    r: Counted,
) -> Result<(), CmdError> {
    let (index, group, vlan) = match at {
        Some((k, v)) => (k as u32, t.tagged, Some(v)),
        None => (t.vids.len() as u32, t.any, None),
    };
    ex.exec(&SetFte {
        table_type: TT,
        table: t.table,
        index,
        group,
        value: MatchValue {
            vlan,
            ..MatchValue::default()
        },
        dest: Some(r.dest),
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
    if let Some(r) = t.default {
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
        assert_eq!(&vt[0x18..0x1c], &[0, 0x01, 0, 0x02], "level 1, log 2");
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
