//! Steering rules: (MAC, VLAN match) -> destinations, each MAC an entry of
//! the MAC table forwarding straight to the rule's destinations or to the
//! MAC's VLAN table; shared rules (broadcast, multicast) list several
//! destinations ([`Steering::join`], [`Steering::leave`]).

use super::vlan::destroy_vlan_table;
use super::vlan::{set_vlan_entry, vlan_table};
use super::{Counted, Loc, MacSlot, Steering, TT, Target, VlanMatch, alloc_counter, dmac_value};
use crate::cmd::Exec;
use crate::error::CmdError;
use crate::flow::{DeleteFte, Destination, FlowEntry, FlowError, SetFte, one_dest};
use crate::flow_counter::{FlowCounterId, QueryFlowCounter, Traffic, dealloc_flow_counter};
use crate::vport::Mac;

impl Steering {
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
    /// exists (see [`Steering::join`] for shared rules).
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
                        dests: one_dest(dest),
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
                    Target::Vlans(t) => one_dest(Destination::Table(t.table)),
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
                    dests: one_dest(dest),
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
                    dests: one_dest(dest),
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
        if c.dests.push(dest).is_err() {
            return Err(FlowError::TableFull);
        }
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
}

#[cfg(test)]
mod tests {
    use super::super::{MacTarget, SteeringConfig, VLAN_LEVEL};
    use super::*;
    use crate::cmd::op;
    use crate::flow::BROADCAST;
    use crate::mock::MockExec;
    use crate::tir::Tirn;

    const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const M: Mac = Mac([0x33, 0x33, 0, 0, 0, 1]);

    #[test]
    fn rules_vlan_tables_counters_and_vport_lists_at_run_time() {
        let mut ex = MockExec::default();
        let cfg = SteeringConfig {
            log_root: 2,
            log_vlan: 2,
        };
        let mut st = Steering::create(&mut ex, cfg).unwrap();
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
        let report = st.report();
        assert!(
            report.macs.iter().any(|m| matches!(
                &m.target,
                MacTarget::Vlans { vlans, .. }
                    if vlans.iter().any(|(v, r)| *v == VlanMatch::Id(10)
                        && r.dests == [Destination::Tir(Tirn(8))])
            )),
            "{report:?}"
        );
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
        let mut st = Steering::create(&mut ex, cfg).unwrap();
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
}
