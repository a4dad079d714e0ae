//! What the shell shows of VNICs ([`Nic::list`], [`Vnic::info`]) and of
//! the flow tables ([`Nic::flows_report`]: the tables and every entry as
//! programmed next to what QUERY_FLOW_TABLE_ENTRY returns), as values;
//! the kernel turns them into text.

use alloc::vec::Vec;

use super::{Nic, Vnic, VnicId};
use crate::control::Control;
use crate::error::CmdError;
use crate::flow::{Destination, FteView, QueryFte, TABLE_TYPE_NIC_RX};
use crate::queue_set::RingsReport;
use crate::rq::Rqn;
use crate::sq::Sqn;
use crate::steering::{Programmed, TableView};
use crate::tir::Tirn;
use crate::vport::Mac;

/// One VNIC as [`Nic::list`] and [`Vnic::info`] report it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VnicInfo {
    pub id: VnicId,
    pub mac: Mac,
    pub vlan: Option<u16>,
    pub queues: usize,
    pub rqns: Vec<Rqn>,
    pub tir: Option<Tirn>,
    pub sqn: Option<Sqn>,
    /// Where its unicast rule forwards (its TIR, or its traffic-type
    /// table with RSS).
    pub dest: Destination,
    /// Counters: 0 in [`Nic::list`] (they live in the [`Vnic`]).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames the adapter dropped for want of a receive buffer.
    pub rx_no_buffer: u64,
    /// Error completions, both directions.
    pub errors: u64,
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

/// The flow tables with their groups, and every entry checked against
/// the adapter ([`Nic::flows_report`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowsReport {
    pub tables: Vec<TableView>,
    pub checks: Vec<FlowCheck>,
}

/// QUERY_FLOW_TABLE_ENTRY of a programmed entry.
fn query_fte(p: &Programmed) -> QueryFte {
    QueryFte {
        table_type: TABLE_TYPE_NIC_RX,
        table: p.table,
        index: p.index,
    }
}

impl<C: Control> Nic<C> {
    /// Every entry of the root and VLAN tables as the driver programmed
    /// it, with what QUERY_FLOW_TABLE_ENTRY returns for it.
    pub fn flows(&self) -> Vec<FlowCheck> {
        self.with_steering(|st, ctl| {
            st.programmed()
                .into_iter()
                .map(|p| {
                    let hw = ctl.exec(&query_fte(&p));
                    FlowCheck { programmed: p, hw }
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// [`Nic::flows_report`], each QUERY_FLOW_TABLE_ENTRY run with
    /// [`Nic::exec_with`] (`idle` between two looks, the lock let go).
    pub fn flows_report_with(&self, mut idle: impl FnMut()) -> FlowsReport {
        let (tables, programmed) = self
            .with_steering(|st, _| (st.tables(), st.programmed()))
            .unwrap_or_default();
        let checks = programmed
            .into_iter()
            .map(|p| {
                let hw = self.exec_with(query_fte(&p), &mut idle);
                FlowCheck { programmed: p, hw }
            })
            .collect();
        FlowsReport { tables, checks }
    }

    /// The shell's `flows`: the tables and groups, and each entry as
    /// programmed next to what the adapter reports.
    pub fn flows_report(&self) -> FlowsReport {
        FlowsReport {
            tables: self.with_steering(|st, _| st.tables()).unwrap_or_default(),
            checks: self.flows(),
        }
    }
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
                .filter_map(|i| self.qs.rq_at(i).map(|r| r.rqn))
                .collect(),
            tir: self.qs.tir(),
            sqn: self.qs.sq().map(|q| q.sqn),
            dest: self.dest,
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            rx_no_buffer: s.rx_no_buffer,
            errors: s.errors,
        }
    }

    /// Its queues (the shell's `rings`).
    pub fn rings(&self) -> RingsReport {
        self.qs.rings()
    }
}
