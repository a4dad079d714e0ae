//! The catch-all modes: the promiscuous entry (every frame no rule claims)
//! and the all-multicast entry (every multicast frame no rule claims) at
//! the end of the MAC table, and the vport's promiscuous flags that follow
//! them.

use super::{Counted, Steering, TT, alloc_counter, dmac_value};
use crate::cmd::Exec;
use crate::error::CmdError;
use crate::flow::{
    DeleteFte, Destination, Fgn, FlowEntry, FlowError, MatchValue, SetFte, one_dest,
};
use crate::flow_counter::{QueryFlowCounter, Traffic, dealloc_flow_counter};
use crate::vport::{Mac, ModifyNicVportContext, VportChange};

impl Steering {
    pub(super) fn set_vport_promisc(&self, ex: &mut impl Exec) -> Result<(), CmdError> {
        let p = self.promisc.is_some() || self.tap.is_some();
        ex.exec(&ModifyNicVportContext(VportChange::Promisc {
            uc: p,
            mc: p || self.allmulti.is_some(),
            all: p,
        }))
    }

    /// Index, group and match value of the all-multicast (`false`) or
    /// promiscuous (`true`) entry.
    pub(super) fn catch_all_entry(&self, promisc: bool) -> (u32, Fgn, MatchValue) {
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
                dests: one_dest(dest),
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
}
