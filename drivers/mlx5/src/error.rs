//! Errors: one typed error for every way a command or a bring-up step can
//! fail, carrying what the console message and the tests need.

use core::fmt;

use cxos_drivers::PlatformError;

use crate::cmd::opcode_name;
use crate::flow::FlowError;

/// Why one command failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CmdFailure {
    /// The command interface refused delivery (entry `status_own` `[7:1]`).
    Delivery(u8),
    /// The device executed the command and answered with an error.
    Status { status: u8, syndrome: u32 },
    /// No completion within the command timeout. The slot stays reserved
    /// (the device may still own it) until the adapter is detached.
    Timeout { waited_ms: u64 },
    /// The output was malformed (a count or index out of range).
    BadOutput(BadOutput),
    /// The adapter was marked failed (health); nothing was sent.
    AdapterFailed,
    /// Every command slot is busy or lost.
    NoFreeSlot,
    /// No DMA memory for the mailboxes.
    Platform(PlatformError),
    /// Input or output longer than the driver's mailbox chain.
    TooLong { in_len: usize, out_len: usize },
}

/// What was wrong with a command's output (its status was 0): values the
/// driver refuses before using them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BadOutput {
    /// ALLOC_Q_COUNTER returned counter set 0, which is reserved.
    ReservedQCounter,
    /// QUERY_FLOW_TABLE_ENTRY listed more destinations or flow counters
    /// than an entry may hold.
    TooManyDestinations { dests: usize, counters: usize },
    /// QUERY_FLOW_TABLE_ENTRY listed a destination of a type the driver
    /// does not program (`destination_type`).
    UnknownDestination(u8),
    /// MANAGE_PAGES (take) returned more pages than asked for.
    TooManyPages { asked: usize, returned: usize },
    /// A command slot collected while no command was in it.
    SlotNotBusy(usize),
    /// The entry was still the device's when its completion was collected.
    StillOwned,
    /// The entry's token is not the one the command was sent with.
    TokenChanged { sent: u8, got: u8 },
    /// QUERY_RQT listed more RQs than the table was known to hold.
    TooManyRqs { listed: usize, room: usize },
}

impl fmt::Display for BadOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ReservedQCounter => f.write_str("Q counter set id 0 (reserved)"),
            Self::TooManyDestinations { dests, counters } => write!(
                f,
                "flow entry lists more destinations or counters than allowed ({dests}, {counters})"
            ),
            Self::UnknownDestination(t) => {
                write!(f, "flow entry destination of an unknown type {t:#x}")
            }
            Self::TooManyPages { asked, returned } => write!(
                f,
                "MANAGE_PAGES returned more pages than asked ({returned} > {asked})"
            ),
            Self::SlotNotBusy(s) => write!(f, "slot {s} not busy"),
            Self::StillOwned => f.write_str("entry still owned by the device"),
            Self::TokenChanged { sent, got } => {
                write!(f, "token changed (sent {sent:#x}, got {got:#x})")
            }
            Self::TooManyRqs { listed, room } => {
                write!(f, "RQ table lists {listed} RQs, more than its {room}")
            }
        }
    }
}

impl core::error::Error for BadOutput {}

/// A failed command: opcode, op_mod and the failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CmdError {
    pub opcode: u16,
    pub op_mod: u16,
    pub failure: CmdFailure,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (opcode {:#x}, op_mod {:#x}): ",
            opcode_name(self.opcode),
            self.opcode,
            self.op_mod
        )?;
        match self.failure {
            CmdFailure::Delivery(d) => {
                write!(f, "delivery status {:#x} ({})", d, delivery_status_name(d))
            }
            CmdFailure::Status { status, syndrome } => write!(
                f,
                "status {:#x} ({}), syndrome {:#x}",
                status,
                status_name(status),
                syndrome
            ),
            CmdFailure::Timeout { waited_ms } => write!(f, "no completion after {waited_ms} ms"),
            CmdFailure::BadOutput(what) => write!(f, "malformed output: {what}"),
            CmdFailure::AdapterFailed => write!(f, "adapter failed, not sent"),
            CmdFailure::NoFreeSlot => write!(f, "no free command slot"),
            CmdFailure::Platform(e) => write!(f, "{e}"),
            CmdFailure::TooLong { in_len, out_len } => write!(
                f,
                "message too long for the driver (in {in_len}, out {out_len} bytes)"
            ),
        }
    }
}

impl CmdError {
    /// The command's status and syndrome, when the device executed it and
    /// answered with an error.
    pub fn status(&self) -> Option<(u8, u32)> {
        match self.failure {
            CmdFailure::Status { status, syndrome } => Some((status, syndrome)),
            _ => None,
        }
    }
}

impl core::error::Error for CmdError {}

/// Configurations the driver refuses (the device is left as found).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unsupported {
    /// Command interface revision other than 5.
    CmdifRev(u16),
    /// Port type other than Ethernet (1).
    PortType(u8),
    /// CQE version other than 1.
    CqeVersion(u8),
    /// Device page size (log2) other than 12 (4 KiB).
    PageSize(u8),
    /// Neither ISSI 0 nor ISSI 1 supported.
    Issi(u32),
    /// Command queue geometry the driver cannot use.
    CmdqGeometry { log_size: u8, log_stride: u8 },
    /// A command mailbox chain longer than the driver supports.
    MessageTooLong(usize),
    /// A PCI function this driver does not claim.
    Device { vendor: u16, device: u16 },
    /// A transmit inline mode (`wqe_inline_mode` / vport
    /// `min_wqe_inline_mode` value) the driver does not implement.
    InlineMode(u8),
    /// A striding receive queue asked for on a part without `striding_rq`.
    StridingRq,
    /// A fast path technique switched on where the part lacks the
    /// capability (named as `cmd_hca_cap` / `per_protocol_networking_offload_caps` spell it).
    Capability(&'static str),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::CmdifRev(r) => write!(f, "command interface revision {r} (need 5)"),
            Self::PortType(t) => write!(f, "port type {t} is not Ethernet"),
            Self::CqeVersion(v) => write!(f, "CQE version {v} (need 1)"),
            Self::PageSize(l) => write!(f, "device page size 2^{l} (need 4 KiB)"),
            Self::Issi(mask) => write!(f, "no supported ISSI (mask {mask:#x})"),
            Self::CmdqGeometry {
                log_size,
                log_stride,
            } => write!(
                f,
                "command queue of 2^{log_size} entries of 2^{log_stride} bytes"
            ),
            Self::MessageTooLong(n) => write!(f, "command message of {n} bytes"),
            Self::Device { vendor, device } => {
                write!(f, "PCI device {vendor:04x}:{device:04x} is not a ConnectX")
            }
            Self::InlineMode(m) => {
                write!(f, "inline mode {m} the driver does not implement yet")
            }
            Self::StridingRq => f.write_str("striding RQ asked for on a part without it"),
            Self::Capability(c) => write!(f, "the part lacks capability {c}"),
        }
    }
}

impl core::error::Error for Unsupported {}

/// Values the device (or the platform on its behalf) reported that the
/// driver refuses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeviceError {
    /// BAR0 shorter than the initialization segment.
    Bar0TooSmall { len: usize },
    /// The platform enabled no MSI-X vector, or more than the table has.
    MsixVectors { granted: u16, table: u16 },
    /// ALLOC_UAR returned a page outside BAR0.
    UarBeyondBar0(u32),
    /// ALLOC_UAR returned the init segment's or the MSI-X table's page.
    UarReserved(u32),
    /// A page request larger than `Config::max_pages`.
    PageRequest { pages: i64, limit: u32 },
    /// Pages asked for beyond `Config::max_total_pages` (what fitted was
    /// given, the rest refused).
    PageCap { asked: i64, held: usize, cap: u32 },
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Bar0TooSmall { len } => write!(f, "BAR0 too small ({len} bytes)"),
            Self::MsixVectors { granted, table } => {
                write!(f, "MSI-X vector count {granted} (table {table})")
            }
            Self::UarBeyondBar0(u) => write!(f, "UAR index {u} beyond BAR0"),
            Self::UarReserved(u) => {
                write!(f, "UAR index {u} overlapping the init segment or MSI-X")
            }
            Self::PageRequest { pages, limit } => write!(
                f,
                "page request of {pages} beyond the configured limit {limit}"
            ),
            Self::PageCap { asked, held, cap } => write!(
                f,
                "page request of {asked} refused beyond the cap of {cap} pages ({held} held)"
            ),
        }
    }
}

impl core::error::Error for DeviceError {}

/// What a data path needs from the adapter and did not get.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Missing {
    /// Not attached far enough: no completion EQ, PD, transport domain,
    /// UAR or reserved lkey.
    CompEq,
    Pd,
    TransportDomain,
    Uar,
    ReservedLkey,
    /// Completion EQ `index` cannot be shared between data paths.
    SharedCompEq(usize),
    /// The queues came up without a TIR to steer to.
    Tir,
    /// A completion EQ serves [`crate::eq::MAX_CLAIMED_CQS`] CQs already.
    CompEqRoom(crate::eq::Eqn),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::CompEq => f.write_str("adapter not fully attached (no completion EQ)"),
            Self::Pd => f.write_str("adapter not fully attached (no PD)"),
            Self::TransportDomain => {
                f.write_str("adapter not fully attached (no transport domain)")
            }
            Self::Uar => f.write_str("adapter not fully attached (no UAR)"),
            Self::ReservedLkey => f.write_str("adapter not fully attached (no reserved lkey)"),
            Self::SharedCompEq(i) => write!(f, "completion EQ {i} cannot be shared"),
            Self::Tir => f.write_str("queues without a TIR"),
            Self::CompEqRoom(e) => write!(f, "{}", crate::eq::EqFull(e)),
        }
    }
}

impl core::error::Error for Missing {}

/// A data path configuration the driver refuses (nothing was created).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BadConfig {
    /// IP MTU below 68 or above what one data segment carries.
    Mtu(usize),
    /// log2 of the SQ or RQ size outside 1..=15.
    LogSq(u8),
    LogRq(u8),
}

impl fmt::Display for BadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Mtu(m) => write!(f, "data path configuration out of range (mtu {m})"),
            Self::LogSq(l) => write!(f, "data path configuration out of range (log_sq {l})"),
            Self::LogRq(l) => write!(f, "data path configuration out of range (log_rq {l})"),
        }
    }
}

impl core::error::Error for BadConfig {}

/// Everything that can go wrong in the driver.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    Command(CmdError),
    Platform(PlatformError),
    /// `initializing` did not clear in time.
    FirmwareTimeout {
        waited_ms: u64,
    },
    Unsupported(Unsupported),
    /// The device reported a value the driver refuses (out of range).
    Device(DeviceError),
    /// Something a data path needs is not there.
    Missing(Missing),
    /// A data path configuration out of range.
    Config(BadConfig),
    /// A flow rule the steering refused.
    Flow(FlowError),
    /// The adapter is marked failed (health); it must be detached.
    AdapterFailed,
}

impl Error {
    /// The command error, when this is one.
    pub fn command(&self) -> Option<&CmdError> {
        match self {
            Error::Command(c) | Error::Flow(FlowError::Command(c)) => Some(c),
            _ => None,
        }
    }
}

impl From<DeviceError> for Error {
    fn from(e: DeviceError) -> Self {
        Error::Device(e)
    }
}

impl From<Missing> for Error {
    fn from(e: Missing) -> Self {
        Error::Missing(e)
    }
}

impl From<BadConfig> for Error {
    fn from(e: BadConfig) -> Self {
        Error::Config(e)
    }
}

/// A flow error that is a failed command stays one.
impl From<FlowError> for Error {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Command(c) => Error::Command(c),
            e => Error::Flow(e),
        }
    }
}

impl From<CmdError> for Error {
    fn from(e: CmdError) -> Self {
        Error::Command(e)
    }
}

impl From<PlatformError> for Error {
    fn from(e: PlatformError) -> Self {
        Error::Platform(e)
    }
}

impl From<Unsupported> for Error {
    fn from(e: Unsupported) -> Self {
        Error::Unsupported(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Command(c) => write!(f, "{c}"),
            Error::Platform(p) => write!(f, "platform: {p}"),
            Error::FirmwareTimeout { waited_ms } => {
                write!(f, "firmware still initializing after {waited_ms} ms")
            }
            Error::Unsupported(u) => write!(f, "unsupported: {u}"),
            Error::Device(what) => write!(f, "device reported {what}"),
            Error::Missing(m) => write!(f, "{m}"),
            Error::Config(c) => write!(f, "{c}"),
            Error::Flow(e) => write!(f, "steering: {e}"),
            Error::AdapterFailed => write!(f, "adapter failed"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Command(c) => Some(c),
            Error::Platform(p) => Some(p),
            Error::Unsupported(u) => Some(u),
            Error::Device(d) => Some(d),
            Error::Flow(f) => Some(f),
            _ => None,
        }
    }
}

/// The bring-up steps, in the order attach runs them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Step {
    Identify,
    CommandQueue,
    WaitFirmware,
    EnableHca,
    Issi,
    BootPages,
    QueryCaps,
    SetCaps,
    InitPages,
    InitHca,
    DriverVersion,
    AllocUar,
    Msix,
    CreateEq0,
    RegularPages,
    CreateCompEqs,
    AllocPd,
    AllocTd,
    SpecialContexts,
    Vport,
    PortRegisters,
    PortUp,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Identify => "identify",
            Step::CommandQueue => "command queue",
            Step::WaitFirmware => "wait for firmware",
            Step::EnableHca => "enable HCA",
            Step::Issi => "ISSI negotiation",
            Step::BootPages => "boot pages",
            Step::QueryCaps => "query capabilities",
            Step::SetCaps => "set capabilities",
            Step::InitPages => "init pages",
            Step::InitHca => "init HCA",
            Step::DriverVersion => "driver version",
            Step::AllocUar => "allocate UAR",
            Step::Msix => "MSI-X",
            Step::CreateEq0 => "create EQ0",
            Step::RegularPages => "regular pages",
            Step::CreateCompEqs => "create completion EQs",
            Step::AllocPd => "allocate PD",
            Step::AllocTd => "allocate transport domain",
            Step::SpecialContexts => "query special contexts",
            Step::Vport => "query vport context",
            Step::PortRegisters => "port registers",
            Step::PortUp => "port admin up",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed attach: the step and why. The device was unwound to where it
/// was before attach.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AttachError {
    pub step: Step,
    pub error: Error,
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step, self.error)
    }
}

impl core::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Command status names (PRM "Command Interface Status").
pub fn status_name(status: u8) -> &'static str {
    match status {
        0x00 => "ok",
        0x01 => "internal error",
        0x02 => "bad operation",
        0x03 => "bad parameter",
        0x04 => "bad system state",
        0x05 => "bad resource",
        0x06 => "resource busy",
        0x08 => "exceeds limit",
        0x09 => "bad resource state",
        0x0a => "bad index",
        0x0f => "no resources",
        0x10 => "bad QP state",
        0x30 => "bad packet",
        0x40 => "bad size",
        0x50 => "bad input length",
        0x51 => "bad output length",
        _ => "unknown status",
    }
}

/// Delivery status names (PRM "Command Delivery Status").
pub fn delivery_status_name(status: u8) -> &'static str {
    match status {
        0x00 => "ok",
        0x01 => "signature error",
        0x02 => "token error",
        0x03 => "bad block number",
        0x04 => "bad output pointer alignment",
        0x05 => "bad input pointer alignment",
        0x06 => "firmware internal error",
        0x07 => "bad input length",
        0x08 => "bad output length",
        0x09 => "reserved fields not zero",
        0x10 => "bad command type",
        _ => "unknown delivery status",
    }
}
