//! Errors: one typed error for every way a command or a bring-up step can
//! fail, carrying what the console message and the tests need.

use core::fmt;

use cxos_drivers::PlatformError;

use crate::cmd::opcode_name;

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
    BadOutput(&'static str),
    /// The adapter was marked failed (health); nothing was sent.
    AdapterFailed,
    /// Every command slot is busy or lost.
    NoFreeSlot,
    /// No DMA memory for the mailboxes.
    Platform(PlatformError),
}

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
        }
    }
}

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
        }
    }
}

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
    Device(&'static str),
    /// The adapter is marked failed (health); it must be detached.
    AdapterFailed,
}

impl Error {
    /// The command error, when this is one.
    pub fn command(&self) -> Option<&CmdError> {
        match self {
            Error::Command(c) => Some(c),
            _ => None,
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
            Error::AdapterFailed => write!(f, "adapter failed"),
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
