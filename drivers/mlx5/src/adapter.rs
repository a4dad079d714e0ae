//! The adapter: attach (bring-up in PRM order, this file), detach (exact
//! reverse, `teardown`), polling, health, commands; what it reports of
//! itself is [`report`].
//!
//! Every device object and DMA region acquired during bring-up is recorded
//! on an undo stack as it is acquired; detach and a failed attach both run
//! that stack backwards, so a failure at any step frees exactly what was
//! allocated and leaves the device as it was found.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use cxos_drivers::{Clock, ConfigSpace, Mmio, Msix, PciAddress, Platform, Region};

use crate::caps::{
    self, CapMode, CapType, Caps, EthCaps, FlowCaps, GeneralCaps, QueryHcaCap, SetHcaCap,
};
use crate::cmd::Command;
use crate::cmd_engine::{CmdEngine, CmdPoll, PortEvents, Stats, Ticket};
use crate::cmdq::{self, CmdQueue};
use crate::eq::{self, CompEq, CreateEq, Eq, Eqn};
use crate::error::{AttachError, CmdError, CmdFailure, DeviceError, Error, Step, Unsupported};
use crate::hca::{self, QueryIssi};
use crate::health::{FaultReport, HealthConfig, HealthMonitor};
use crate::identify::Part;
use crate::init_seg::{self, FwVersion};
use crate::pages::PageKind;
use crate::pd::{AllocPd, AllocTransportDomain, Lkey, Pd, QuerySpecialContexts, Tdn};
use crate::port::{self, AccessRegister, PortInfo, Speed};
use crate::uar::{self, AllocUar, Uar};
use crate::vport::{Mac, QueryNicVportContext, VportInfo};

mod faults;
pub(crate) mod ports;
pub mod report;
pub mod reset;
mod teardown;

pub use report::{AdapterInfo, AdapterReport, EqInfo, PagesInfo, PhysSummary};
pub use reset::{Configured, ResetError, ResetHistory, ResetPolicy, ResetReport, ResetStart};

/// The string SET_DRIVER_VERSION reports.
pub const DRIVER_VERSION: &str = concat!("cxos,mlx5,", env!("CARGO_PKG_VERSION"));

/// [`Config::max_total_pages`] by default: 256 MiB. An Ethernet function
/// asks for a few hundred pages at init (the parts the model imitates ask
/// for 42 to 84); this leaves room for firmware that asks for much more
/// without letting a device take the machine's memory.
pub const DEFAULT_MAX_TOTAL_PAGES: u32 = 1 << 16;

/// Most completion EQs attach creates, whatever [`Config::comp_eqs`]
/// asks: `eq_number` is 8 bits (`create_eq_out`), so a function has at
/// most 256 EQs, EQ0 one of them.
pub const MAX_COMP_EQS: u16 = 255;

/// The IP MTU the port is brought to at attach (and `EthConfig`'s default).
pub const DEFAULT_IP_MTU: usize = 1500;

/// Attach-time settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Config {
    /// Command timeout; `None`: from the init segment (see [`cmdq`]).
    pub cmd_timeout_ms: Option<u64>,
    /// How long firmware may stay `initializing` after the command queue
    /// address is written; `None`: from the init segment.
    pub fw_init_timeout_ms: Option<u64>,
    pub health: HealthConfig,
    /// Completion EQs wanted, each on its own further MSI-X vector: one
    /// per CPU (the platform passes its online CPU count). Attach creates
    /// min(this, MSI-X vectors granted - 1, the function's EQ limit from
    /// the HCA caps - 1 for EQ0, [`MAX_COMP_EQS`]), at least one;
    /// [`Adapter::comp_eqs`] says how many it got.
    pub comp_eqs: u16,
    pub eq0_log_size: u8,
    pub comp_eq_log_size: u8,
    /// Largest page count the driver gives in one request.
    pub max_pages: u32,
    /// Most pages the device may hold at once: beyond it requests are
    /// refused (MANAGE_PAGES "allocation fail"), counted and logged, and the
    /// adapter keeps working. A platform with little memory sets it lower.
    pub max_total_pages: u32,
    /// MANAGE_PAGES take rounds that may return nothing before detach
    /// gives up on the remaining pages.
    pub reclaim_retries: u32,
    /// Set the port administratively up at attach (and back at detach).
    pub port_admin_up: bool,
    /// Function resets allowed before a failing function is given up.
    pub reset: ResetPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cmd_timeout_ms: None,
            fw_init_timeout_ms: None,
            health: HealthConfig::default(),
            comp_eqs: 4,
            eq0_log_size: 7,
            comp_eq_log_size: 10,
            max_pages: 1 << 18,
            max_total_pages: DEFAULT_MAX_TOTAL_PAGES,
            reclaim_retries: 10,
            port_admin_up: true,
            reset: ResetPolicy::default(),
        }
    }
}

/// Why attach failed, with the platform handed back.
#[derive(Debug)]
pub struct AttachFailure<P> {
    pub error: AttachError,
    pub platform: P,
}

/// What detach did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DetachReport {
    /// Pages the device never returned (freed anyway after DISABLE_HCA).
    pub pages_lost: usize,
    /// Teardown commands that failed.
    pub errors: u32,
    pub first_error: Option<Error>,
    /// A function level reset was done (lost commands or a failed device).
    pub reset: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Undo {
    DisableHca,
    ReclaimPages,
    TeardownHca,
    DeallocUar(Uar),
    MsixDisable,
    DestroyEq0,
    DestroyCompEqs,
    DeallocPd(Pd),
    DeallocTd(Tdn),
    PortAdminDown,
}

/// One attached ConnectX function.
#[derive(Debug)]
pub struct Adapter<P: Platform> {
    dev: CmdEngine<P>,
    config: Config,
    part: Part,
    fw: FwVersion,
    issi: u16,
    caps: Caps,
    uar: Option<Uar>,
    vectors: u16,
    /// Completion EQs, each behind its own lock: data paths (VNICs) share
    /// them without the adapter.
    comp_eqs: Vec<Arc<CompEq<P>>>,
    /// Completion EQs whose destruction failed while another handle was
    /// still out: kept until detach ends.
    eq_graveyard: Vec<Arc<CompEq<P>>>,
    pd: Option<Pd>,
    td: Option<Tdn>,
    lkey: Option<Lkey>,
    vport: VportInfo,
    port: PortInfo,
    undo: Vec<Undo>,
    attach_ns: u64,
    fw_stuck: bool,
    /// Dropped without detach: teardown errors then mean queues the device
    /// still has, and a function level reset follows.
    dropped: bool,
    /// Kept apart from the platform: a shell left by a function reset
    /// ([`Adapter::reset_function`]) has none.
    pci: PciAddress,
    /// What the user set (replayed after a function reset).
    configured: Configured,
    resets: ResetHistory,
}

/// The configurations the driver refuses: not Ethernet, CQE version other
/// than 1, device pages other than 4 KiB.
pub fn check_supported(g: &GeneralCaps) -> Result<(), Unsupported> {
    if g.port_type != caps::PORT_TYPE_ETH {
        return Err(Unsupported::PortType(g.port_type));
    }
    if g.cqe_version != 1 {
        return Err(Unsupported::CqeVersion(g.cqe_version));
    }
    if g.log_pg_sz != 12 {
        return Err(Unsupported::PageSize(g.log_pg_sz));
    }
    Ok(())
}

/// The link state in the driver's log lines: `link up 100G`, `link down`.
struct LinkText(bool, u32);

impl fmt::Display for LinkText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LinkText(true, mbps) => write!(f, "link up {}", Speed(mbps)),
            LinkText(false, _) => f.write_str("link down"),
        }
    }
}

fn at(step: Step) -> impl Fn(Error) -> AttachError {
    move |error| AttachError { step, error }
}

fn cmd_at(step: Step) -> impl Fn(CmdError) -> AttachError {
    move |e| AttachError {
        step,
        error: Error::Command(e),
    }
}

impl<P: Platform> Adapter<P> {
    /// Bring the function up. On failure everything done so far is undone
    /// and the platform is handed back.
    pub fn attach(p: P, config: Config) -> Result<Self, AttachFailure<P>> {
        Self::attach_with(p, config, None)
    }

    /// [`Adapter::attach`] with `idle` run between two looks at the device
    /// in every wait of the bring-up (firmware initialising, each
    /// command); it stays the adapter's idle work until
    /// [`Adapter::set_idle`] takes it away. The adapter is nobody else's
    /// while it runs, so `idle` may run the owner's other work: anything
    /// but this adapter.
    pub fn attach_with(
        p: P,
        config: Config,
        idle: Option<crate::vnic::IdleWork>,
    ) -> Result<Self, AttachFailure<P>> {
        let t0 = p.clock().now_ns();
        let pci = p.config().pci_address();
        let refuse = |p: P, step: Step, error: Error| {
            log::error!(target: "mlx5", "mlx5 {pci}: attach failed at step '{step}': {error}");
            Err(AttachFailure {
                error: AttachError { step, error },
                platform: p,
            })
        };
        let vendor = p.config().config_read16(0x00);
        let device = p.config().config_read16(0x02);
        let Some(part) = Part::from_ids(vendor, device) else {
            return refuse(
                p,
                Step::Identify,
                Unsupported::Device { vendor, device }.into(),
            );
        };
        if p.mmio().bar0_len() < init_seg::LEN {
            let len = p.mmio().bar0_len();
            return refuse(p, Step::Identify, DeviceError::Bar0TooSmall { len }.into());
        }
        // Read-only checks first: a refused device is left untouched.
        let rev = init_seg::cmdif_rev(p.mmio());
        if rev != 5 {
            return refuse(p, Step::Identify, Unsupported::CmdifRev(rev).into());
        }
        let cmdq = match CmdQueue::new(&p) {
            Ok(q) => q,
            Err(e) => return refuse(p, Step::CommandQueue, e),
        };
        let timeout_ms = config.cmd_timeout_ms.unwrap_or_else(|| {
            cmdq::timeout_from_device(
                init_seg::cmd_exec_to(p.mmio()),
                cmdq::DEFAULT_TIMEOUT_MS,
                cmdq::MAX_TIMEOUT_MS,
            )
        });
        let mut dev = CmdEngine::new(
            p,
            cmdq,
            timeout_ms,
            config.max_pages,
            config.max_total_pages,
        );
        dev.set_idle(idle);
        let mut a = Adapter {
            dev,
            config,
            part,
            fw: FwVersion::default(),
            issi: 0,
            caps: Caps::default(),
            uar: None,
            vectors: 0,
            comp_eqs: Vec::new(),
            eq_graveyard: Vec::new(),
            pd: None,
            td: None,
            lkey: None,
            vport: VportInfo::default(),
            port: PortInfo::default(),
            undo: Vec::new(),
            attach_ns: 0,
            fw_stuck: false,
            dropped: false,
            pci,
            configured: Configured::default(),
            resets: ResetHistory::default(),
        };
        match a.bring_up() {
            Ok(()) => {
                a.attach_ns = a.dev.p().clock().now_ns().saturating_sub(t0);
                let i = a.info();
                log::info!(
                    target: "mlx5",
                    "mlx5 {}: {} fw {}, {} port{}, MAC {}, {}",
                    i.pci,
                    i.part.name(),
                    i.fw,
                    i.ports,
                    if i.ports == 1 { "" } else { "s" },
                    i.mac,
                    LinkText(i.link_up, i.speed_mbps)
                );
                Ok(a)
            }
            Err(error) => {
                log::error!(
                    target: "mlx5",
                    "mlx5 {pci}: attach failed at step '{}': {}",
                    error.step,
                    error.error
                );
                let (platform, _) = a.unwind();
                Err(AttachFailure { error, platform })
            }
        }
    }

    /// Waits for firmware to clear `initializing`. `holds_cmdq`: the
    /// command queue address is written, so a stuck device must be reset
    /// at unwind to forget it.
    fn wait_firmware(&mut self, holds_cmdq: bool) -> Result<(), AttachError> {
        let start = self.dev.p().clock().now_ns();
        let limit_ms = self.config.fw_init_timeout_ms.unwrap_or_else(|| {
            cmdq::timeout_from_device(
                init_seg::cmd_q_init_to(self.dev.p().mmio()),
                cmdq::DEFAULT_INIT_TIMEOUT_MS,
                cmdq::MAX_INIT_TIMEOUT_MS,
            )
        });
        while init_seg::initializing(self.dev.p().mmio()) {
            let waited = self.dev.p().clock().now_ns().saturating_sub(start);
            if waited >= limit_ms * 1_000_000 {
                self.fw_stuck = holds_cmdq;
                return Err(at(Step::WaitFirmware)(Error::FirmwareTimeout {
                    waited_ms: waited / 1_000_000,
                }));
            }
            // The owner's work (a function reset's bring-up), or relax.
            self.dev.idle();
        }
        Ok(())
    }

    fn bring_up(&mut self) -> Result<(), AttachError> {
        // PRM "HCA Driver Start-up": firmware takes the command queue
        // address only once `initializing` has cleared after reset, and
        // clears it again once the command interface is up.
        self.wait_firmware(false)?;
        init_seg::set_cmdq_addr(self.dev.p().mmio(), self.dev.cmdq.addr());
        self.wait_firmware(true)?;
        let (mmio, clock) = (self.dev.p().mmio(), self.dev.p().clock());
        self.fw = init_seg::fw_version(mmio);
        self.dev.health = Some(HealthMonitor::new(mmio, clock, self.config.health));

        self.dev
            .exec(&hca::ENABLE_HCA)
            .map_err(cmd_at(Step::EnableHca))?;
        self.undo.push(Undo::DisableHca);

        self.negotiate_issi().map_err(at(Step::Issi))?;

        self.undo.push(Undo::ReclaimPages);
        self.dev
            .satisfy_pages(PageKind::Boot)
            .map_err(at(Step::BootPages))?;

        let current = self.query_caps().map_err(at(Step::QueryCaps))?;
        self.set_caps(&current).map_err(at(Step::SetCaps))?;

        self.dev
            .satisfy_pages(PageKind::Init)
            .map_err(at(Step::InitPages))?;
        self.dev
            .exec(&hca::InitHca)
            .map_err(cmd_at(Step::InitHca))?;
        self.undo.push(Undo::TeardownHca);

        if self.caps.general.driver_version {
            // Optional: the adapter works without it.
            if let Err(e) = self.dev.exec(&hca::SetDriverVersion(DRIVER_VERSION)) {
                log::warn!(
                    target: "mlx5",
                    "mlx5 {}: {} failed, continuing: {}",
                    self.pci(),
                    Step::DriverVersion,
                    e
                );
                if self.dev.is_failed() {
                    return Err(at(Step::DriverVersion)(Error::AdapterFailed));
                }
            }
        }

        let uar = self.dev.exec(&AllocUar).map_err(cmd_at(Step::AllocUar))?;
        self.undo.push(Undo::DeallocUar(uar));
        uar::validate(self.dev.p(), uar).map_err(at(Step::AllocUar))?;
        self.uar = Some(uar);

        self.enable_msix().map_err(at(Step::Msix))?;
        self.create_eq0(uar).map_err(at(Step::CreateEq0))?;
        // Requests raised before EQ0 existed had nowhere to go: ask.
        self.dev
            .satisfy_pages(PageKind::Regular)
            .map_err(at(Step::RegularPages))?;
        self.create_comp_eqs(uar).map_err(at(Step::CreateCompEqs))?;

        let pd = self.dev.exec(&AllocPd).map_err(cmd_at(Step::AllocPd))?;
        self.undo.push(Undo::DeallocPd(pd));
        self.pd = Some(pd);
        let td = self
            .dev
            .exec(&AllocTransportDomain)
            .map_err(cmd_at(Step::AllocTd))?;
        self.undo.push(Undo::DeallocTd(td));
        self.td = Some(td);
        self.lkey = Some(
            self.dev
                .exec(&QuerySpecialContexts)
                .map_err(cmd_at(Step::SpecialContexts))?,
        );

        self.vport = self
            .dev
            .exec(&QueryNicVportContext)
            .map_err(cmd_at(Step::Vport))?;

        self.read_port().map_err(at(Step::PortRegisters))?;
        self.default_port_mtu().map_err(at(Step::PortRegisters))?;
        if self.config.port_admin_up && !self.port.admin_up {
            self.write_paos(true).map_err(at(Step::PortUp))?;
            self.undo.push(Undo::PortAdminDown);
            self.read_port().map_err(at(Step::PortUp))?;
        }
        Ok(())
    }

    fn negotiate_issi(&mut self) -> Result<(), Error> {
        match self.dev.exec(&QueryIssi) {
            Ok(info) => {
                if info.supported & 0b10 != 0 {
                    self.dev.exec(&hca::set_issi(1))?;
                    self.issi = 1;
                } else if info.supported & 0b01 != 0 || info.supported == 0 {
                    // ISSI 0 only (an empty bitmap means the same on old
                    // firmware).
                    if info.current != 0 {
                        self.dev.exec(&hca::set_issi(0))?;
                    }
                    self.issi = 0;
                } else {
                    return Err(Unsupported::Issi(info.supported).into());
                }
                Ok(())
            }
            // BAD_OP: firmware older than QUERY_ISSI speaks ISSI 0.
            Err(CmdError {
                failure: CmdFailure::Status { status: 0x02, .. },
                ..
            }) => {
                self.issi = 0;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn query_cap(&mut self, kind: CapType, mode: CapMode) -> Result<Vec<u8>, Error> {
        Ok(self.dev.exec(&QueryHcaCap { kind, mode })?)
    }

    /// Query maximum and current general capabilities and refuse what the
    /// driver cannot drive; returns the current block.
    fn query_caps(&mut self) -> Result<Vec<u8>, Error> {
        let max = self.query_cap(CapType::General, CapMode::Max)?;
        let cur = self.query_cap(CapType::General, CapMode::Current)?;
        self.caps.general_max = GeneralCaps::parse(&max);
        let g = GeneralCaps::parse(&cur);
        self.caps.general = g;
        check_supported(&g)?;
        Ok(cur)
    }

    fn set_caps(&mut self, current: &[u8]) -> Result<(), Error> {
        let want = caps::general_caps_to_set(current);
        self.dev.exec(&SetHcaCap {
            kind: CapType::General,
            caps: &want,
        })?;
        let cur = self.query_cap(CapType::General, CapMode::Current)?;
        self.caps.general = GeneralCaps::parse(&cur);
        check_supported(&self.caps.general)?;
        if self.caps.general.eth_net_offloads {
            let c = self.query_cap(CapType::EthernetOffloads, CapMode::Current)?;
            self.caps.eth = EthCaps::parse(&c);
        }
        if self.caps.general.nic_flow_table {
            let c = self.query_cap(CapType::NicFlowTable, CapMode::Current)?;
            self.caps.flow = FlowCaps::parse(&c);
        }
        Ok(())
    }

    fn enable_msix(&mut self) -> Result<(), Error> {
        let table = self.dev.p().msix().msix_table_size();
        if table == 0 {
            return Err(cxos_drivers::PlatformError::MsixUnsupported.into());
        }
        let max_eqs = self.caps.general.max_eqs().max(1);
        let comp = (self.config.comp_eqs.min(MAX_COMP_EQS) as usize)
            .min(max_eqs.saturating_sub(1))
            .min(table as usize - 1);
        let vectors = self.dev.p().msix().msix_enable(1, 1 + comp as u16)?;
        self.undo.push(Undo::MsixDisable);
        if vectors == 0 || vectors > table {
            return Err(DeviceError::MsixVectors {
                granted: vectors,
                table,
            }
            .into());
        }
        self.vectors = vectors;
        Ok(())
    }

    fn eq_log_size(&self, wanted: u8) -> u8 {
        wanted
            .clamp(1, self.caps.general.log_max_eq_sz.max(1))
            .min(16)
    }

    /// CREATE_EQ on `vector`; the ring is kept by the caller on success.
    fn create_eq(
        &mut self,
        uar: Uar,
        vector: u16,
        log_size: u8,
        events: u64,
    ) -> Result<Eq<P>, Error> {
        let ring = eq::alloc_ring(self.dev.p().dma(), log_size)?;
        let cmd = CreateEq {
            log_size,
            uar,
            vector,
            events,
            pages: eq::ring_pages(&ring),
        };
        match self.dev.exec(&cmd) {
            Ok(eqn) => {
                let eq = Eq::new(
                    eqn,
                    vector,
                    ring,
                    log_size,
                    uar,
                    self.dev.p().mmio().clone(),
                );
                eq.doorbell(true);
                Ok(eq)
            }
            Err(e) => {
                if matches!(e.failure, CmdFailure::Timeout { .. }) {
                    // The device may have the ring: free it only at the end.
                    self.dev.graveyard.push(ring);
                }
                Err(e.into())
            }
        }
    }

    fn create_eq0(&mut self, uar: Uar) -> Result<(), Error> {
        let log = self.eq_log_size(self.config.eq0_log_size);
        let eq0 = self.create_eq(uar, 0, log, eq::EQ0_EVENTS)?;
        self.dev.eq0 = Some(eq0);
        self.undo.push(Undo::DestroyEq0);
        // From here on command completions arrive as EQEs on vector 0.
        self.dev.cmdq.use_events(true);
        Ok(())
    }

    fn create_comp_eqs(&mut self, uar: Uar) -> Result<(), Error> {
        self.undo.push(Undo::DestroyCompEqs);
        let log = self.eq_log_size(self.config.comp_eq_log_size);
        let want = self
            .config
            .comp_eqs
            .min(MAX_COMP_EQS)
            .min(self.vectors.saturating_sub(1));
        // With a single vector, one completion EQ shares vector 0.
        let vectors: Vec<u16> = if want == 0 {
            alloc::vec![0]
        } else {
            (1..=want).collect()
        };
        for v in vectors {
            let eq = self.create_eq(uar, v, log, 0)?;
            self.comp_eqs.push(Arc::new(CompEq::new(eq)));
        }
        Ok(())
    }

    fn read_register(&mut self, reg: u16) -> Result<Vec<u8>, Error> {
        let req = port::read_request(reg);
        let data = self.dev.exec(&AccessRegister {
            reg,
            write: false,
            data: &req,
        })?;
        Ok(data)
    }

    fn read_port(&mut self) -> Result<(), Error> {
        self.port = ports::read_port(self)?;
        Ok(())
    }

    /// Bring the port MTU (PMTU) to the Ethernet default, IP MTU 1500,
    /// unless it is there already. Firmware may leave it at the port's
    /// largest; a frame longer than a receive WQE's buffers is a
    /// LOCAL_LENGTH error that moves the RQ to ERR, so until a user asks
    /// for jumbo frames (`set_port_mtu`), the MAC drops what a default
    /// queue set could not take, whoever opens it.
    fn default_port_mtu(&mut self) -> Result<(), Error> {
        let mtu = (DEFAULT_IP_MTU + crate::module::PORT_MTU_OVERHEAD) as u16;
        if self.port.admin_mtu == mtu || self.port.max_mtu < mtu {
            return Ok(());
        }
        let mut d = [0u8; port::pmtu::LEN];
        port::pmtu::LOCAL_PORT.set(&mut d, port::LOCAL_PORT);
        port::pmtu::ADMIN_MTU.set(&mut d, u32::from(mtu));
        self.dev.exec(&AccessRegister {
            reg: port::REG_PMTU,
            write: true,
            data: &d,
        })?;
        let now = self.read_register(port::REG_PMTU)?;
        self.port.apply_pmtu(&now);
        Ok(())
    }

    fn write_paos(&mut self, up: bool) -> Result<(), Error> {
        let data = port::paos_admin(up);
        self.dev.exec(&AccessRegister {
            reg: port::REG_PAOS,
            write: true,
            data: &data,
        })?;
        Ok(())
    }

    // ----- running adapter -----

    /// Service EQ0 (page requests, port changes, stray completions) and
    /// refresh the port state after a port change. Call from the main loop
    /// (e.g. when vector 0 fired).
    pub fn poll(&mut self) -> Result<PortEvents, Error> {
        let events = self.take_events()?;
        crate::page_service::serve(&mut self.dev);
        if !events.is_empty() {
            let info = ports::read_port(self)?;
            self.port_events_read(info, events.len());
        }
        if self.dev.is_failed() {
            return Err(Error::AdapterFailed);
        }
        Ok(events)
    }

    /// The first part of [`Adapter::poll`]: EQ0 drained, the port events
    /// taken (page requests collected, not served; the port state not
    /// read yet).
    pub(crate) fn take_events(&mut self) -> Result<PortEvents, Error> {
        if self.dev.is_failed() {
            return Err(Error::AdapterFailed);
        }
        self.dev.check_eq0_interrupt();
        self.dev.drain_eq0(true);
        Ok(self.dev.take_port_events())
    }

    /// The command engine (page work over a `Nic`).
    pub(crate) fn engine_mut(&mut self) -> &mut CmdEngine<P> {
        &mut self.dev
    }

    /// Leave page requests to the owner's EQ0 service
    /// ([`Adapter::poll`], `Nic::poll_with`): not served inline after
    /// each command, where a `Nic`'s commands hold its lock. Set by an
    /// owner that polls through a `Nic`, so that MANAGE_PAGES waits
    /// cooperatively too.
    pub fn defer_page_requests(&mut self, defer: bool) {
        self.dev.defer_page_requests(defer);
    }

    /// The port state read after `events` port events ([`Adapter::poll`]).
    pub(crate) fn port_events_read(&mut self, info: PortInfo, events: usize) {
        let (was_up, was_speed) = (self.port.oper_up, self.port.speed_mbps);
        self.port = info;
        if self.port.oper_up != was_up
            || (self.port.oper_up && self.port.speed_mbps != was_speed)
            || events > 1
        {
            log::info!(
                target: "mlx5",
                "mlx5 {}: {}",
                self.pci(),
                LinkText(self.port.oper_up, self.port.speed_mbps)
            );
        }
    }

    /// Check health now (rate-limited by the configured interval for the
    /// counter; the syndrome is read every call). Call periodically.
    pub fn poll_health(&mut self) -> Result<(), FaultReport> {
        self.dev.check_health();
        match self.dev.fault {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Set the work to run between two looks at the device in the
    /// adapter's blocking waits (`None`: the clock's `relax`); returns the
    /// one set before. Only while nobody else can reach the adapter (a
    /// function reset's bring-up and restore, [`Adapter::attach_with`]):
    /// take it away before the adapter is shared (a `Nic`'s lock held
    /// while it runs other work would let that work wait on the lock).
    pub fn set_idle(
        &mut self,
        work: Option<crate::vnic::IdleWork>,
    ) -> Option<crate::vnic::IdleWork> {
        self.dev.set_idle(work)
    }

    /// Run one command (the data-path modules build on this).
    pub fn exec<C: Command>(&mut self, cmd: &C) -> Result<C::Output, CmdError> {
        self.dev.exec(cmd)
    }

    /// Start a command without waiting; several may be in flight.
    pub fn submit<C: Command>(&mut self, cmd: C) -> Result<Ticket<C>, CmdError> {
        self.dev.submit(cmd)
    }

    /// Wait for a submitted command (any order).
    pub fn wait<C: Command>(&mut self, t: Ticket<C>) -> Result<C::Output, CmdError> {
        self.dev.wait(t)
    }

    /// Look at a submitted command once without blocking (any order):
    /// still pending, or done with its output or typed error (a timeout
    /// once the command timeout passed).
    pub fn poll_command<C: Command>(&mut self, t: Ticket<C>) -> CmdPoll<C> {
        self.dev.poll(t)
    }

    /// Completion EQ `index`: call `f` with the CQN of every completion
    /// event waiting, then re-arm the EQ. Returns the events consumed
    /// (other event types on a completion EQ are counted and skipped).
    pub fn poll_comp_eq(&mut self, index: usize, f: impl FnMut(crate::cq::Cqn)) -> usize {
        self.comp_eqs.get(index).map_or(0, |eq| eq.poll(f))
    }

    /// Completion EQ `index` as a shared handle (its own lock), for data
    /// paths that share it without the adapter (VNICs).
    pub fn shared_comp_eq(&self, index: usize) -> Option<Arc<CompEq<P>>> {
        self.comp_eqs.get(index).cloned()
    }

    /// Keep DMA memory the device may still reference (a queue whose
    /// DESTROY failed) until detach has reset the function.
    pub fn retire(&mut self, mem: Region<P>) {
        log::warn!(target: "mlx5", "mlx5 {}: {} bytes of DMA memory kept until detach (the device may still use them)", self.pci, cxos_drivers::DmaRegion::len(&mem));
        self.dev.graveyard.push(mem);
    }

    /// Re-read PAOS/PTYS/PMTU/PMLP.
    pub fn refresh_port(&mut self) -> Result<&PortInfo, Error> {
        self.read_port()?;
        Ok(&self.port)
    }

    // ----- accessors -----

    pub fn platform(&self) -> &P {
        self.dev.p()
    }
    pub fn pci(&self) -> PciAddress {
        self.pci
    }
    pub fn part(&self) -> &Part {
        &self.part
    }
    pub fn fw_version(&self) -> FwVersion {
        self.fw
    }
    pub fn issi(&self) -> u16 {
        self.issi
    }
    pub fn caps(&self) -> &Caps {
        &self.caps
    }
    pub fn mac(&self) -> Mac {
        self.vport.mac
    }
    pub fn vport(&self) -> &VportInfo {
        &self.vport
    }
    pub fn port(&self) -> &PortInfo {
        &self.port
    }
    pub fn link_up(&self) -> bool {
        self.port.oper_up
    }
    pub fn uar(&self) -> Option<Uar> {
        self.uar
    }
    pub fn pd(&self) -> Option<Pd> {
        self.pd
    }
    pub fn tdn(&self) -> Option<Tdn> {
        self.td
    }
    pub fn reserved_lkey(&self) -> Option<Lkey> {
        self.lkey
    }
    pub fn vectors(&self) -> u16 {
        self.vectors
    }
    pub fn eq0(&self) -> Option<(Eqn, u16)> {
        self.dev.eq0.as_ref().map(|e| (e.eqn, e.vector))
    }
    /// EQ0's number and the driver's consumer counter (periodic check).
    pub(crate) fn eq0_state(&self) -> Option<(Eqn, u32)> {
        self.dev.eq0_state()
    }
    /// Write EQ0's consumer counter again and arm it.
    pub(crate) fn eq0_rearm(&mut self) {
        self.dev.eq0_rearm()
    }
    /// Record a lost EQ0 interrupt, if one is (periodic check).
    pub(crate) fn eq0_check_interrupt(&mut self) {
        self.dev.check_eq0_interrupt()
    }
    /// Completion EQs: (EQ number, MSI-X vector).
    pub fn comp_eqs(&self) -> Vec<(Eqn, u16)> {
        self.comp_eqs.iter().map(|e| (e.eqn(), e.vector)).collect()
    }
    pub fn pages_held(&self) -> usize {
        self.dev.pages.held()
    }
    pub fn stats(&self) -> Stats {
        self.dev.stats
    }
    pub fn is_failed(&self) -> bool {
        self.dev.is_failed()
    }
    pub fn fault(&self) -> Option<FaultReport> {
        self.dev.fault
    }
    /// Attach duration in nanoseconds.
    pub fn attach_ns(&self) -> u64 {
        self.attach_ns
    }
    pub fn command_timeout_ms(&self) -> u64 {
        self.dev.timeout_ns / 1_000_000
    }
}

impl<P: Platform> crate::cmd::Exec for Adapter<P> {
    fn exec<C: Command>(&mut self, cmd: &C) -> Result<C::Output, CmdError> {
        self.dev.exec(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockPlatform;
    use alloc::string::ToString;

    #[test]
    fn refusals_by_capability() {
        let ok = GeneralCaps {
            port_type: 1,
            cqe_version: 1,
            log_pg_sz: 12,
            ..GeneralCaps::default()
        };
        assert_eq!(check_supported(&ok), Ok(()));
        let ib = GeneralCaps { port_type: 0, ..ok };
        assert_eq!(check_supported(&ib), Err(Unsupported::PortType(0)));
        let v0 = GeneralCaps {
            cqe_version: 0,
            ..ok
        };
        assert_eq!(check_supported(&v0), Err(Unsupported::CqeVersion(0)));
        let big = GeneralCaps {
            log_pg_sz: 16,
            ..ok
        };
        assert_eq!(check_supported(&big), Err(Unsupported::PageSize(16)));
        assert!(
            Error::from(Unsupported::PortType(0))
                .to_string()
                .contains("not Ethernet")
        );
    }

    #[test]
    fn wrong_cmdif_rev_is_refused_without_touching_the_device() {
        let p = MockPlatform::new();
        p.s.borrow_mut().config_ids = (0x15b3, 0x1015);
        p.s.borrow_mut().bar0[0x04..0x06].copy_from_slice(&4u16.to_be_bytes());
        let bar_before = p.s.borrow().bar0.clone();
        let f = Adapter::attach(p.clone(), Config::default()).unwrap_err();
        assert_eq!(f.error.step, Step::Identify);
        assert_eq!(f.error.error, Error::Unsupported(Unsupported::CmdifRev(4)));
        assert!(f.error.to_string().contains("command interface revision 4"));
        assert_eq!(p.s.borrow().bar0, bar_before, "no register written");
        assert_eq!(p.live_regions(), 0, "no memory kept");
    }

    #[test]
    fn foreign_device_is_refused() {
        let p = MockPlatform::new();
        p.s.borrow_mut().config_ids = (0x8086, 0x10d3);
        let f = Adapter::attach(p.clone(), Config::default()).unwrap_err();
        assert_eq!(
            f.error.error,
            Error::Unsupported(Unsupported::Device {
                vendor: 0x8086,
                device: 0x10d3
            })
        );
        assert_eq!(p.live_regions(), 0);
    }
}
