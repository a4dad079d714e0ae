//! The tap table: while promiscuous VNICs exist, a one-entry table is the
//! NIC_RX root, forwarding every frame to the MAC table and to each
//! promiscuous destination; it is rebuilt and the root switched (make
//! before break) when that set changes.

use alloc::vec;

use super::{Steering, TAP_LEVEL, TT, alloc_counter};
use crate::cmd::Exec;
use crate::flow::{
    CreateFlowGroup, CreateFlowTable, Criteria, DeleteFte, Destination, DestroyFlowGroup,
    DestroyFlowTable, Dests, Fgn, FlowEntry, FlowError, Ftn, MAX_DESTINATIONS, MatchValue,
    SetFlowTableRoot, SetFte,
};
use crate::flow_counter::{FlowCounterId, dealloc_flow_counter};

#[derive(Debug)]
pub(super) struct Tap {
    pub(super) table: Ftn,
    pub(super) group: Fgn,
    pub(super) counter: FlowCounterId,
    /// The promiscuous destinations (the MAC table comes first in the
    /// entry).
    pub(super) dests: Dests,
}

impl Steering {
    /// Build a tap table forwarding to the MAC table and `dests`, make it
    /// the root, then remove the old tap (make before break: no frame is
    /// lost while the promiscuous set changes). No destinations: the MAC
    /// table is the root again.
    fn set_tap(&mut self, ex: &mut impl Exec, dests: Dests) -> Result<(), FlowError> {
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

    /// A promiscuous destination: every frame the function receives reaches
    /// it (besides wherever the rules send it). Joining twice is not an
    /// error.
    pub fn tap_join(&mut self, ex: &mut impl Exec, dest: Destination) -> Result<(), FlowError> {
        let mut dests = self.tap.as_ref().map_or(Dests::new(), |t| t.dests.clone());
        if dests.contains(&dest) {
            return Ok(());
        }
        // The entry lists the MAC table first.
        if dests.len() + 1 >= MAX_DESTINATIONS || dests.push(dest).is_err() {
            return Err(FlowError::TableFull);
        }
        self.set_tap(ex, dests)
    }

    pub fn tap_leave(&mut self, ex: &mut impl Exec, dest: Destination) -> Result<(), FlowError> {
        let mut dests = self.tap.as_ref().map_or(Dests::new(), |t| t.dests.clone());
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
}

/// Delete a tap table: its entry (when set) and counter, group, table.
pub(super) fn destroy_tap(ex: &mut impl Exec, t: Tap, with_entry: bool) {
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
