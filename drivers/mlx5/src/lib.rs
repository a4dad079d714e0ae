//! Driver for NVIDIA/Mellanox ConnectX-4, 4 Lx, 5, 5 Ex, 6, 6 Dx and 6 Lx
//! Ethernet adapters ("mlx5"), written from the public PRM.
//!
//! The driver reaches the hardware only through the platform traits of
//! [`cxos_drivers::platform`] and is generic over a
//! [`cxos_drivers::Platform`]. The adapter keeps the bundle for the control
//! plane; every queue (SQ, RQ, CQ, EQ) owns its ring, its doorbell record,
//! a clone of the MMIO handle and its UAR offset, and follows the ordering
//! rule of the contract at each doorbell and each completion read (the
//! barriers of [`cxos_drivers::Mmio`]).
//!
//! Words: the *port* is the physical Ethernet port of the PCI function
//! ([`port`]: PAOS, PTYS, PMTU); a *queue set* ([`QueueSet`]) is one data
//! path over it (SQ, RQs, CQs, TIS/TIR, a hook into the steering); the
//! *command engine* ([`cmd_engine`]) runs commands; the *adapter*
//! ([`Adapter`]) is the attached function.
//!
//! Reports are values ([`adapter::report`], [`queue_set::RingsReport`],
//! [`queue_set::QueueSetStats`], [`steering::SteeringReport`],
//! [`vnic::FlowsReport`], [`vnic::VnicInfo`]); the kernel turns them into
//! the shell's text. Errors are typed ([`error`]): a failed command
//! carries its opcode, op_mod, status and syndrome.
//!
//! # Files
//!
//! One file per hardware object; every structure layout is a set of
//! [`layout::Field`] constants (big-endian `[hi:lo]`, as `mlx5_ifc.h` has
//! them) or, for packed flag bytes, a `bitfield-struct` type, each citing
//! the `mlx5_ifc.h` (or device.h, qp.h) struct it transcribes.
//!
//! - The function: [`identify`] (PCI ids, parts, FLR), [`init_seg`] (the
//!   initialization segment), [`adapter`] (attach in PRM order; detach in
//!   `adapter/teardown.rs`; [`adapter::report`]), [`health`], [`caps`],
//!   [`hca`] (ENABLE/INIT/TEARDOWN_HCA, ISSI), [`pages`] (firmware pages),
//!   [`uar`], [`pd`] (PD, transport domain, reserved lkey), [`vport`],
//!   [`port`] (the physical port's registers).
//! - Commands: [`cmd`] (the typed command trait, opcodes), [`cmdq`] (the
//!   command queue and its mailboxes), [`cmd_engine`] (submit, wait, EQ0
//!   service, page requests, port events), [`error`], [`layout`].
//! - Queues: [`eq`] (EQs, the shared completion EQs), [`cq`] (CQs) and
//!   [`cqe`] (the one CQE parser), [`sq`] (SQ commands) with `sq/ring.rs`
//!   (the transmit ring), [`rq`] (RQs, cyclic and striding rings), [`wq`]
//!   (the shared work queue context), [`wqe`] (WQE segments and their
//!   writers), [`frame`] (header parsing for inlining and offloads),
//!   [`tis`], [`tir`], [`rqt`], [`q_counter`].
//! - Steering: [`flow`] (flow table commands), [`flow_counter`],
//!   [`steering`] (the function's receive tables; rules, VLAN tables,
//!   catch-all modes, the tap table and the views in `steering/`),
//!   [`rss`] (the traffic-type table and the Toeplitz hash).
//! - Data path: [`control`] (what a queue set needs from the adapter),
//!   [`queue_set`] (one data path; `queue_set/`: config, open, tx, rx,
//!   recovery, report), [`vnic`] (VNICs; `vnic/`: the shared handle,
//!   reports).
//!
//! # Using it (the kernel's registry)
//!
//! - [`probe`]`(vendor, device)` / [`PCI_IDS`]: whether a function is ours.
//! - [`Adapter::attach`]`(platform, Config::default())`: bring-up in PRM
//!   order; on failure an [`AttachFailure`] with the step, the typed error
//!   and the platform back (everything undone). Logs one info line (the
//!   same as [`Adapter::info`] reports).
//! - [`Adapter::poll`]: from the main loop (e.g. when MSI-X vector 0
//!   fired; the driver takes vector 0's pending flag itself): serves page
//!   requests, port changes (returned), stray completions.
//! - [`Adapter::poll_health`]: periodically (every second or so; the
//!   counter is sampled at most every `Config::health.poll_interval_ms`).
//!   A fault marks the adapter failed; every later command fails at once.
//! - [`Adapter::detach`]: exact reverse; returns the platform and a
//!   [`DetachReport`]. Attach again works.
//! - Reports for the shell: [`Adapter::summary`] (`phys`),
//!   [`Adapter::report`] (caps, EQs, pages, command counters).
//! - Commands for later layers: [`Adapter::exec`], or [`Adapter::submit`] +
//!   [`Adapter::wait`] for several in flight, or [`Adapter::submit`] +
//!   [`Adapter::poll_command`] to wait without blocking (what
//!   [`vnic::Nic::exec_with`] does between its `idle` calls).
//!
//! # The data path
//!
//! [`QueueSet::open`]`(adapter, Resources::of(&adapter)?, EthConfig)` builds
//! a queue set and owns the adapter from then on ([`QueueSet::control_mut`];
//! [`QueueSet::close`] hands it back). It implements
//! [`cxos_drivers::NetDevice`]: `transmit` + `flush` (one doorbell per
//! batch), `receive` (in place), `poll` (completions, error recovery, CQ
//! re-arm in interrupt mode; call it when the completion EQ's vector
//! fired, or in a loop in polled mode). Reports: [`QueueSet::rings`],
//! [`QueueSet::stats_report`].
//!
//! Offloads ([`QueueSet::offloads`], [`cxos_drivers::NetDevice::transmit_with`]):
//! transmit checksums, VLAN insertion and LSO up to 64 KiB ([`sq`]: the
//! WQE inlines exactly the headers the part's inline rule asks for,
//! [`frame`] parses them), receive checksum results, stripped VLAN, RSS
//! hash and queue in [`cxos_drivers::RxMeta`]. Receive steering
//! ([`steering`]: root table by MAC, per-MAC VLAN tables, multicast,
//! promiscuous and all-multicast entries, a flow counter per entry
//! ([`flow_counter`]), the vport's address lists) with run-time
//! (MAC, VLAN) -> TIR rules for VNICs ([`QueueSet::steering_mut`]).
//! `EthConfig::rss_queues` > 1: one RQ and CQ per queue over the
//! completion EQs, an RQT ([`rqt`]), indirect TIRs per traffic type with a
//! configurable Toeplitz key ([`rss`]) behind a traffic-type table.
//! Receive queues are striding (multi-packet) where the part has
//! `striding_rq`, cyclic elsewhere (`EthConfig::rq_kind`).
//!
//! # VNICs
//!
//! [`vnic::Nic`]`::new(adapter, resources, NicConfig)` shares one adapter
//! between several network interfaces: [`vnic::Nic::create`] makes a
//! [`vnic::Vnic`] (a MAC, given or generated, an optional VLAN, its own
//! queue set, RSS with several queues) that is a
//! [`cxos_drivers::NetDevice`] of its own; the adapter's flow tables steer
//! each frame to its VNIC (no software demux); [`vnic::Vnic::destroy`]
//! removes exactly its rules and queues. Inspection: [`vnic::Nic::list`],
//! [`vnic::Nic::flows_report`] (entries as programmed next to
//! QUERY_FLOW_TABLE_ENTRY's answer).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod adapter;
pub mod caps;
pub mod cmd;
pub mod cmd_engine;
pub mod cmdq;
pub mod control;
pub mod cq;
pub mod cqe;
pub mod eq;
pub mod error;
pub mod fault;
pub mod flow;
pub mod flow_counter;
pub mod frame;
pub mod hca;
pub mod health;
pub mod identify;
pub mod init_seg;
pub mod layout;
#[cfg(test)]
mod mock;
pub mod module;
mod page_service;
pub mod pages;
pub mod pd;
pub mod port;
pub mod q_counter;
pub mod queue_set;
pub mod restore;
pub mod rq;
pub mod rqt;
pub mod rss;
pub mod sff;
pub mod sq;
pub mod steering;
pub mod tir;
pub mod tis;
pub mod uar;
pub mod vnic;
pub mod vport;
pub mod wq;
pub mod wqe;

pub use adapter::{Adapter, AttachFailure, Config, DetachReport};
pub use cmd_engine::{CmdPoll, PortEvent, PortEvents, Stats, Ticket};
pub use control::{Control, DataPathCaps, Resources};
pub use eq::Eqn;
pub use error::{AttachError, CmdError, CmdFailure, Error, Step, Unsupported};
pub use fault::{FaultAction, FaultClass, FaultLog, FaultObject, FaultOutcome, FaultRecord};
pub use health::{FaultKind, FaultReport, HealthConfig};
pub use identify::{PCI_IDS, Part, probe};
pub use pd::{Lkey, Pd, Tdn};
pub use queue_set::{
    CHECK_INTERVAL_MS, CloseReport, EthConfig, OpenFailure, QueueFault, QueueSet, RqChoice,
    TX_TIMEOUT_MS,
};
pub use uar::Uar;
pub use vport::Mac;
