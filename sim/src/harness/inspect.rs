//! White-box views of the model for tests (driver tests included): the
//! flow entries as the model holds them, flow counter values, frames
//! delivered per RQ, RSS tables, EQ rings and the vport's address filter. Read-only
//! snapshots taken under the model's lock.
#![deny(unsafe_code)]

use super::SimPlatform;
pub use crate::cmd::flow::{Dest, Key};

/// One flow table entry as the model holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEntryView {
    pub table: u32,
    pub table_level: u8,
    pub index: u32,
    pub group: u32,
    /// The match value (modelled `fte_match_set_lyr_2_4` fields).
    pub value: Key,
    /// The group's mask.
    pub mask: Key,
    /// `flow_context.action` bits (0x2 DROP, 0x4 FWD_DEST, 0x8 COUNT).
    pub action: u16,
    pub dests: Vec<Dest>,
    pub counters: Vec<u32>,
    pub flow_tag: u32,
}

/// One flow table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowTableView {
    pub id: u32,
    pub level: u8,
    pub log_size: u8,
    pub miss: Option<u32>,
    pub groups: usize,
    pub entries: usize,
}

/// The vport's address filter (nic_vport_context).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VportFilterView {
    pub mac: [u8; 6],
    pub promisc_uc: bool,
    pub promisc_mc: bool,
    pub promisc_all: bool,
    pub uc: Vec<[u8; 6]>,
    pub mc: Vec<[u8; 6]>,
}

impl SimPlatform {
    /// The NIC_RX root table, if one is set.
    pub fn flow_root(&self) -> Option<u32> {
        self.dev().nic.flow.root
    }

    /// Every flow table.
    pub fn flow_tables(&self) -> Vec<FlowTableView> {
        self.dev()
            .nic
            .flow
            .tables()
            .map(|t| FlowTableView {
                id: t.id,
                level: t.level,
                log_size: t.log_size,
                miss: t.miss,
                groups: t.group_count(),
                entries: t.entry_count(),
            })
            .collect()
    }

    /// Every flow entry of every table, by table id then flow index.
    pub fn flow_entries(&self) -> Vec<FlowEntryView> {
        let d = self.dev();
        let mut v = Vec::new();
        for t in d.nic.flow.tables() {
            for (index, e) in t.entries() {
                let mask = t
                    .groups()
                    .find(|g| g.id == e.group)
                    .map(|g| g.mask)
                    .unwrap_or_default();
                v.push(FlowEntryView {
                    table: t.id,
                    table_level: t.level,
                    index,
                    group: e.group,
                    value: e.value,
                    mask,
                    action: e.action,
                    dests: e.dests.clone(),
                    counters: e.counters.clone(),
                    flow_tag: e.flow_tag,
                });
            }
        }
        v
    }

    /// (packets, bytes) of flow counter `id`, if allocated.
    pub fn flow_counter(&self, id: u32) -> Option<(u64, u64)> {
        self.dev()
            .nic
            .flow
            .counter(id)
            .map(|c| (c.packets, c.bytes))
    }

    /// Frames delivered into RQ `rqn`'s WQEs (None: no such RQ).
    pub fn rq_frames(&self, rqn: u32) -> Option<u64> {
        self.dev().nic.rqs.get(rqn).map(|r| r.delivered)
    }

    /// (RQN, frames delivered) of every RQ.
    pub fn rq_frames_all(&self) -> Vec<(u32, u64)> {
        self.dev()
            .nic
            .rqs
            .map
            .values()
            .map(|r| (r.rqn, r.delivered))
            .collect()
    }

    /// Bus addresses of EQ `eqn`'s ring as CREATE_EQ gave it (first page
    /// up to 64 bytes times its entries; the driver allocates one region).
    pub fn eq_ring(&self, eqn: u8) -> Option<std::ops::Range<u64>> {
        let d = self.dev();
        let eq = d.eqs.get(eqn)?;
        let start = *eq.pas.first()?;
        Some(start..start + (64u64 << eq.log_size))
    }

    /// The RQ list of RQT `rqtn`.
    pub fn rqt(&self, rqtn: u32) -> Option<Vec<u32>> {
        self.dev().nic.rqts.get(rqtn).map(|t| t.rqns.clone())
    }

    /// The vport's address filter as the model applies it.
    pub fn vport_filter(&self) -> VportFilterView {
        let d = self.dev();
        let v = &d.vport;
        VportFilterView {
            mac: v.mac,
            promisc_uc: v.promisc_uc,
            promisc_mc: v.promisc_mc,
            promisc_all: v.promisc_all,
            uc: v.uc.clone(),
            mc: v.mc.clone(),
        }
    }
}
