//! What an adapter reports of itself, as values: the attach line
//! ([`AdapterInfo`]), the shell's `phys` line ([`PhysSummary`]) and full
//! report ([`AdapterReport`]: capabilities, EQs, pages, command
//! counters). The kernel turns them into text.

use alloc::vec::Vec;

use cxos_drivers::{PciAddress, Platform};

use super::Adapter;
use crate::caps::Caps;
use crate::cmd_engine::Stats;
use crate::eq::Eqn;
use crate::health::FaultReport;
use crate::identify::Part;
use crate::init_seg::FwVersion;
use crate::pd::{Lkey, Pd, Tdn};
use crate::port::PortInfo;
use crate::uar::Uar;
use crate::vport::{Mac, VportInfo};

/// The adapter as its attach line names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AdapterInfo {
    pub pci: PciAddress,
    pub part: Part,
    pub fw: FwVersion,
    /// Physical ports of the part (at least 1).
    pub ports: u8,
    pub mac: Mac,
    pub link_up: bool,
    /// Mb/s of the link when up.
    pub speed_mbps: u32,
}

/// One adapter as the shell's `phys` lists it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PhysSummary {
    pub pci: PciAddress,
    pub part: Part,
    pub fw: FwVersion,
    pub mac: Mac,
    pub link_up: bool,
    pub speed_mbps: u32,
    /// Operational MTU of the port.
    pub mtu: u16,
    /// Marked failed by the health monitor.
    pub failed: bool,
}

/// An EQ: its number, MSI-X vector, size, the events it took and (a
/// completion EQ) those naming a CQ no data path claimed, dropped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EqInfo {
    pub eqn: Eqn,
    pub vector: u16,
    pub entries: usize,
    pub events: u64,
    pub stray: u64,
}

/// Firmware pages: held now, given and returned since attach, the total
/// cap and the pages refused (beyond the cap or during teardown).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PagesInfo {
    pub held: usize,
    pub given: u64,
    pub returned: u64,
    pub cap: u32,
    pub refused: u64,
}

/// Everything `phys <pci>` shows of an adapter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AdapterReport {
    pub summary: PhysSummary,
    pub issi: u16,
    pub uar: Option<Uar>,
    pub pd: Option<Pd>,
    pub td: Option<Tdn>,
    pub lkey: Option<Lkey>,
    pub vectors: u16,
    pub caps: Caps,
    pub vport: VportInfo,
    pub port: PortInfo,
    pub eq0: Option<EqInfo>,
    /// The completion EQs (`events` is not counted for them: 0).
    pub comp_eqs: Vec<EqInfo>,
    pub pages: PagesInfo,
    pub commands: Stats,
    pub fault: Option<FaultReport>,
}

impl<P: Platform> Adapter<P> {
    /// What the attach line says.
    pub fn info(&self) -> AdapterInfo {
        AdapterInfo {
            pci: self.pci(),
            part: self.part,
            fw: self.fw,
            ports: self.caps.general.num_ports.max(1),
            mac: self.vport.mac,
            link_up: self.port.oper_up,
            speed_mbps: self.port.speed_mbps,
        }
    }

    /// The shell's `phys` line.
    pub fn summary(&self) -> PhysSummary {
        PhysSummary {
            pci: self.pci(),
            part: self.part,
            fw: self.fw,
            mac: self.vport.mac,
            link_up: self.port.oper_up,
            speed_mbps: self.port.speed_mbps,
            mtu: self.port.oper_mtu,
            failed: self.is_failed(),
        }
    }

    /// The shell's `phys <pci>`: capabilities, EQs, pages, command
    /// counters.
    pub fn report(&self) -> AdapterReport {
        AdapterReport {
            summary: self.summary(),
            issi: self.issi,
            uar: self.uar,
            pd: self.pd,
            td: self.td,
            lkey: self.lkey,
            vectors: self.vectors,
            caps: self.caps,
            vport: self.vport,
            port: self.port,
            eq0: self.dev.eq0.as_ref().map(|e| EqInfo {
                eqn: e.eqn,
                vector: e.vector,
                entries: e.entries(),
                events: e.events_seen,
                stray: 0,
            }),
            comp_eqs: self
                .comp_eqs
                .iter()
                .map(|c| EqInfo {
                    eqn: c.eqn(),
                    vector: c.vector,
                    entries: c.entries(),
                    events: c.events_seen(),
                    stray: c.stray_events(),
                })
                .collect(),
            pages: PagesInfo {
                held: self.dev.pages.held(),
                given: self.dev.pages.given_total,
                returned: self.dev.pages.returned_total,
                cap: self.dev.max_total_pages,
                refused: self.dev.stats.pages_refused,
            },
            commands: self.dev.stats,
            fault: self.dev.fault,
        }
    }
}
