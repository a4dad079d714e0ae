//! The vfio-user protocol, parsed by the model itself (QEMU's
//! docs/interop/vfio-user.rst): the client is untrusted input, so every
//! message is read whole (its header's `message_size` bytes, never more
//! than [`MAX_MESSAGE`]) and checked before anything acts on it.
//!
//! - A message whose header cannot be believed (size below the header or
//!   above [`MAX_MESSAGE`]), that ends before its size says (the client
//!   closes or stalls for [`MESSAGE_TIMEOUT`] inside it) or that carries
//!   more descriptors than [`MAX_FDS`] ends the connection
//!   ([`Refusal::closes`]).
//! - Any other bad message (unknown or unsupported command, a payload that
//!   does not match the command's layout, data longer than
//!   [`MAX_DATA_XFER`], an index out of range, descriptors where none
//!   belong, a command before VERSION or a second VERSION, a reply or a
//!   no-reply request where a reply is due) gets an error reply (`flags`
//!   REPLY | ERROR, `error` an errno) and the connection goes on, still in
//!   step: the whole message was consumed.
//!
//! Layouts (little-endian, as the client's host): the header is
//! `msg_id` u16 at 0, `command` u16 at 2, `message_size` u32 at 4 (header
//! included), `flags` u32 at 8 (bits 3:0 type: 0 command, 1 reply; bit 4
//! no reply; bit 5 error), `error` u32 at 12. The replies are the bytes the
//! `vfio_user` crate's server sent before (QEMU 11 accepts them).
#![deny(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vfio_bindings::bindings::vfio::{
    VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_IRQ_SET_DATA_BOOL,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, ServerBackend, ServerRegion};

use super::fds::recv_with_fds;

/// Bytes of a message header.
pub const HEADER_LEN: usize = 16;
/// Most data one REGION_READ or REGION_WRITE carries (the
/// `max_data_xfer_size` the VERSION reply announces).
pub const MAX_DATA_XFER: u32 = 1 << 20;
/// Largest message accepted: a REGION_WRITE of [`MAX_DATA_XFER`] bytes.
pub const MAX_MESSAGE: u32 = (HEADER_LEN + REGION_ACCESS_LEN) as u32 + MAX_DATA_XFER;
/// Most descriptors one message may carry.
pub const MAX_FDS: usize = 16;
/// Longest capabilities string a VERSION may carry.
pub const MAX_VERSION_JSON: usize = 4096;
/// How long a client may pause inside one message before the connection
/// is closed (between messages it may be idle for ever).
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Command numbers (`enum vfio_user_command`).
pub mod command {
    pub const VERSION: u16 = 1;
    pub const DMA_MAP: u16 = 2;
    pub const DMA_UNMAP: u16 = 3;
    pub const DEVICE_GET_INFO: u16 = 4;
    pub const DEVICE_GET_REGION_INFO: u16 = 5;
    pub const DEVICE_GET_REGION_IO_FDS: u16 = 6;
    pub const DEVICE_GET_IRQ_INFO: u16 = 7;
    pub const DEVICE_SET_IRQS: u16 = 8;
    pub const REGION_READ: u16 = 9;
    pub const REGION_WRITE: u16 = 10;
    pub const DMA_READ: u16 = 11;
    pub const DMA_WRITE: u16 = 12;
    pub const DEVICE_RESET: u16 = 13;
    pub const DIRTY_PAGES: u16 = 14;
}

/// Header flags.
pub mod flags {
    pub const TYPE_MASK: u32 = 0xf;
    pub const COMMAND: u32 = 0;
    pub const REPLY: u32 = 1;
    pub const NO_REPLY: u32 = 1 << 4;
    pub const ERROR: u32 = 1 << 5;
}

/// Payload bytes of DMA_MAP: argsz, flags, offset, address, size.
const DMA_MAP_LEN: usize = 32;
/// DMA_UNMAP: argsz, flags, address, size (a dirty bitmap would follow).
const DMA_UNMAP_LEN: usize = 24;
/// DEVICE_GET_INFO: argsz, flags, num_regions, num_irqs.
const GET_INFO_LEN: usize = 16;
/// DEVICE_GET_REGION_INFO: `struct vfio_region_info`.
const REGION_INFO_LEN: usize = 32;
/// DEVICE_GET_IRQ_INFO: argsz, flags, index, count.
const IRQ_INFO_LEN: usize = 16;
/// DEVICE_SET_IRQS: argsz, flags, index, start, count.
const SET_IRQS_LEN: usize = 20;
/// REGION_READ / REGION_WRITE: offset u64, region u32, count u32.
const REGION_ACCESS_LEN: usize = 16;

/// A message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    pub id: u16,
    pub command: u16,
    pub size: u32,
    pub flags: u32,
    pub error: u32,
}

impl Header {
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            id: u16::from_le_bytes([b[0], b[1]]),
            command: u16::from_le_bytes([b[2], b[3]]),
            size: le32(b, 4),
            flags: le32(b, 8),
            error: le32(b, 12),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.command.to_le_bytes());
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.error.to_le_bytes());
        b
    }

    fn no_reply(&self) -> bool {
        self.flags & flags::NO_REPLY != 0
    }

    /// The reply to this request, `payload` bytes after the header.
    fn reply(&self, payload: usize) -> Header {
        Header {
            id: self.id,
            command: self.command,
            size: (HEADER_LEN + payload) as u32,
            flags: flags::REPLY,
            error: 0,
        }
    }
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn le64(b: &[u8], o: usize) -> u64 {
    (le32(b, o) as u64) | (le32(b, o + 4) as u64) << 32
}

/// Why a message was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The connection ended `got` bytes into a message of `want`.
    Truncated { got: usize, want: usize },
    /// The client paused inside a message for [`MESSAGE_TIMEOUT`].
    Stalled,
    /// A `message_size` below the header or above [`MAX_MESSAGE`].
    Size(u32),
    /// More descriptors than [`MAX_FDS`].
    TooManyFds,
    /// Not a command (a reply, or an unknown type).
    NotACommand { flags: u32 },
    /// A command number the protocol does not have.
    Unknown(u16),
    /// One the model does not serve (DMA_READ/WRITE are server to client;
    /// region I/O fds, dirty pages).
    Unsupported(u16),
    /// A command before VERSION.
    BeforeVersion(u16),
    /// VERSION again.
    VersionAgain,
    /// The payload's length does not fit the command's layout.
    Length { command: u16, len: usize },
    /// VERSION's capabilities are not a NUL-terminated string.
    VersionString,
    /// NO_REPLY on a command whose answer is its reply.
    NoReply(u16),
    /// Descriptors on a command that takes none (or more than it takes).
    Fds { command: u16, fds: usize },
    /// A region or interrupt index the device does not have.
    Index { command: u16, index: u32 },
    /// REGION_READ/WRITE of more than [`MAX_DATA_XFER`] bytes.
    DataSize(u32),
    /// SET_IRQS with the BOOL data type.
    IrqData(u32),
    /// The device refused it (a bad DMA range, a BAR access out of range).
    Device(io::Error),
}

impl Refusal {
    /// The connection cannot go on in step with the client.
    pub fn closes(&self) -> bool {
        matches!(
            self,
            Self::Truncated { .. } | Self::Stalled | Self::Size(_) | Self::TooManyFds
        )
    }

    /// The errno of the error reply.
    pub fn errno(&self) -> u32 {
        let e = match self {
            Self::Unknown(_) | Self::Unsupported(_) => libc::ENOTSUP,
            Self::BeforeVersion(_) | Self::VersionAgain => libc::EPROTO,
            Self::DataSize(_) => libc::E2BIG,
            Self::Device(e) => e.raw_os_error().unwrap_or(libc::EINVAL),
            _ => libc::EINVAL,
        };
        e as u32
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { got, want } => {
                write!(f, "connection ended {got} bytes into a {want}-byte message")
            }
            Self::Stalled => write!(f, "client stalled inside a message for {MESSAGE_TIMEOUT:?}"),
            Self::Size(s) => write!(f, "message_size {s} outside {HEADER_LEN}..={MAX_MESSAGE}"),
            Self::TooManyFds => write!(f, "more than {MAX_FDS} descriptors"),
            Self::NotACommand { flags } => write!(f, "not a command (flags {flags:#x})"),
            Self::Unknown(c) => write!(f, "unknown command {c}"),
            Self::Unsupported(c) => write!(f, "command {c} not supported"),
            Self::BeforeVersion(c) => write!(f, "command {c} before VERSION"),
            Self::VersionAgain => f.write_str("VERSION again"),
            Self::Length { command, len } => {
                write!(
                    f,
                    "command {command}: payload of {len} bytes does not fit its layout"
                )
            }
            Self::VersionString => {
                f.write_str("VERSION capabilities are not a NUL-terminated string")
            }
            Self::NoReply(c) => write!(f, "command {c} with NO_REPLY (its answer is the reply)"),
            Self::Fds { command, fds } => write!(f, "command {command} with {fds} descriptors"),
            Self::Index { command, index } => write!(f, "command {command}: no index {index}"),
            Self::DataSize(n) => write!(f, "{n} bytes of data (at most {MAX_DATA_XFER})"),
            Self::IrqData(fl) => write!(f, "SET_IRQS data type not supported (flags {fl:#x})"),
            Self::Device(e) => write!(f, "{e}"),
        }
    }
}

/// One checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Version {
        major: u16,
        minor: u16,
    },
    DmaMap {
        flags: u32,
        offset: u64,
        address: u64,
        size: u64,
    },
    DmaUnmap {
        argsz: u32,
        flags: u32,
        address: u64,
        size: u64,
    },
    GetInfo,
    GetRegionInfo {
        index: u32,
    },
    GetIrqInfo {
        index: u32,
    },
    SetIrqs {
        flags: u32,
        index: u32,
        start: u32,
        count: u32,
    },
    RegionRead {
        offset: u64,
        region: u32,
        count: u32,
    },
    /// The data is the payload from byte 16 on.
    RegionWrite {
        offset: u64,
        region: u32,
        count: u32,
    },
    Reset,
}

/// Checks one whole message (`payload`: the `message_size - 16` bytes
/// after the header; `fds` descriptors came with it) against the
/// protocol and a device of `regions` regions and `irqs` interrupt
/// indexes.
pub fn parse(
    h: &Header,
    payload: &[u8],
    fds: usize,
    negotiated: bool,
    regions: u32,
    irqs: u32,
) -> Result<Message, Refusal> {
    use command::*;
    if h.flags & flags::TYPE_MASK != flags::COMMAND || h.flags & flags::ERROR != 0 {
        return Err(Refusal::NotACommand { flags: h.flags });
    }
    let c = h.command;
    match c {
        VERSION..=DIRTY_PAGES => {}
        _ => return Err(Refusal::Unknown(c)),
    }
    if matches!(
        c,
        DEVICE_GET_REGION_IO_FDS | DMA_READ | DMA_WRITE | DIRTY_PAGES
    ) {
        return Err(Refusal::Unsupported(c));
    }
    match (c == VERSION, negotiated) {
        (true, true) => return Err(Refusal::VersionAgain),
        (false, false) => return Err(Refusal::BeforeVersion(c)),
        _ => {}
    }
    let takes_fds = match c {
        DMA_MAP => 1,
        DEVICE_SET_IRQS => MAX_FDS,
        _ => 0,
    };
    if fds > takes_fds {
        return Err(Refusal::Fds { command: c, fds });
    }
    let answers = matches!(
        c,
        VERSION | DEVICE_GET_INFO | DEVICE_GET_REGION_INFO | DEVICE_GET_IRQ_INFO | REGION_READ
    );
    if answers && h.no_reply() {
        return Err(Refusal::NoReply(c));
    }
    let len = payload.len();
    let exactly = |want: usize| {
        if len == want {
            Ok(())
        } else {
            Err(Refusal::Length { command: c, len })
        }
    };
    let p = payload;
    Ok(match c {
        VERSION => {
            if len < 4 {
                return Err(Refusal::Length { command: c, len });
            }
            let caps = &p[4..];
            if !caps.is_empty()
                && (caps.len() > MAX_VERSION_JSON
                    || caps.last() != Some(&0)
                    || caps[..caps.len() - 1].contains(&0))
            {
                return Err(Refusal::VersionString);
            }
            Message::Version {
                major: u16::from_le_bytes([p[0], p[1]]),
                minor: u16::from_le_bytes([p[2], p[3]]),
            }
        }
        DMA_MAP => {
            exactly(DMA_MAP_LEN)?;
            Message::DmaMap {
                flags: le32(p, 4),
                offset: le64(p, 8),
                address: le64(p, 16),
                size: le64(p, 24),
            }
        }
        DMA_UNMAP => {
            exactly(DMA_UNMAP_LEN)?;
            Message::DmaUnmap {
                argsz: le32(p, 0),
                flags: le32(p, 4),
                address: le64(p, 8),
                size: le64(p, 16),
            }
        }
        DEVICE_GET_INFO => {
            exactly(GET_INFO_LEN)?;
            Message::GetInfo
        }
        DEVICE_GET_REGION_INFO => {
            exactly(REGION_INFO_LEN)?;
            let index = le32(p, 8);
            if index >= regions {
                return Err(Refusal::Index { command: c, index });
            }
            Message::GetRegionInfo { index }
        }
        DEVICE_GET_IRQ_INFO => {
            exactly(IRQ_INFO_LEN)?;
            let index = le32(p, 8);
            if index >= irqs {
                return Err(Refusal::Index { command: c, index });
            }
            Message::GetIrqInfo { index }
        }
        DEVICE_SET_IRQS => {
            exactly(SET_IRQS_LEN)?;
            let (fl, index) = (le32(p, 4), le32(p, 8));
            if index >= irqs {
                return Err(Refusal::Index { command: c, index });
            }
            if fl & VFIO_IRQ_SET_DATA_BOOL != 0 {
                return Err(Refusal::IrqData(fl));
            }
            Message::SetIrqs {
                flags: fl,
                index,
                start: le32(p, 12),
                count: le32(p, 16),
            }
        }
        REGION_READ | REGION_WRITE => {
            if len < REGION_ACCESS_LEN {
                return Err(Refusal::Length { command: c, len });
            }
            let (offset, region, count) = (le64(p, 0), le32(p, 8), le32(p, 12));
            if count > MAX_DATA_XFER {
                return Err(Refusal::DataSize(count));
            }
            if region >= regions {
                return Err(Refusal::Index {
                    command: c,
                    index: region,
                });
            }
            if c == REGION_READ {
                exactly(REGION_ACCESS_LEN)?;
                Message::RegionRead {
                    offset,
                    region,
                    count,
                }
            } else {
                exactly(REGION_ACCESS_LEN + count as usize)?;
                Message::RegionWrite {
                    offset,
                    region,
                    count,
                }
            }
        }
        DEVICE_RESET => {
            exactly(0)?;
            Message::Reset
        }
        _ => return Err(Refusal::Unsupported(c)),
    })
}

/// The capabilities the model announces in its VERSION reply (what the
/// `vfio_user` crate's server sent: one descriptor per message, 1 MiB of
/// data per access, 4 KiB migration pages).
pub const CAPABILITIES: &str = r#"{"capabilities":{"max_msg_fds":1,"max_data_xfer_size":1048576,"migration":{"pgsize":4096}}}"#;

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// The client closed it between messages; `negotiated`: after VERSION.
    Closed { negotiated: bool },
    /// The model closed it: the client broke the protocol.
    Refused(Refusal),
    /// The socket failed.
    Io(io::Error),
}

/// Serves one client until it leaves or breaks the protocol.
pub fn serve_connection(
    stream: &mut UnixStream,
    backend: &mut dyn ServerBackend,
    regions: &[ServerRegion],
    irqs: &[IrqInfo],
) -> End {
    let mut negotiated = false;
    loop {
        match one_message(stream, backend, regions, irqs, &mut negotiated) {
            Ok(true) => {}
            Ok(false) => return End::Closed { negotiated },
            Err(Err(e)) => return End::Io(e),
            Err(Ok((h, r))) => {
                log::warn!(target: "mlx5_sim::vfio", "message {} (command {}) refused: {r}", h.id, h.command);
                // Best effort: the client may be gone already.
                let reply = Header {
                    flags: flags::REPLY | flags::ERROR,
                    error: r.errno(),
                    ..h.reply(0)
                };
                let sent = stream.write_all(&reply.encode());
                if r.closes() {
                    return End::Refused(r);
                }
                if let Err(e) = sent {
                    return End::Io(e);
                }
            }
        }
    }
}

/// A refused message (its header, why) or a failed socket.
type Failed = Result<(Header, Refusal), io::Error>;

/// Reads, checks and answers one message; false when the client closed
/// the connection before it.
fn one_message(
    stream: &mut UnixStream,
    backend: &mut dyn ServerBackend,
    regions: &[ServerRegion],
    irqs: &[IrqInfo],
    negotiated: &mut bool,
) -> Result<bool, Failed> {
    let _ = stream.set_read_timeout(None);
    let mut hb = [0u8; HEADER_LEN];
    let r = recv_with_fds(stream, &mut hb, MAX_FDS).map_err(Err)?;
    if r.bytes == 0 {
        return Ok(false);
    }
    let _ = stream.set_read_timeout(Some(MESSAGE_TIMEOUT));
    let fds = r.fds;
    let partial = Header::parse(&hb);
    read_rest(stream, &mut hb[r.bytes..], r.bytes, HEADER_LEN).map_err(|e| Ok((partial, e)))?;
    let h = Header::parse(&hb);
    if r.truncated {
        return Err(Ok((h, Refusal::TooManyFds)));
    }
    if (h.size as usize) < HEADER_LEN || h.size > MAX_MESSAGE {
        return Err(Ok((h, Refusal::Size(h.size))));
    }
    let mut payload = vec![0u8; h.size as usize - HEADER_LEN];
    read_rest(stream, &mut payload, HEADER_LEN, h.size as usize).map_err(|e| Ok((h, e)))?;
    let m = parse(
        &h,
        &payload,
        fds.len(),
        *negotiated,
        regions.len() as u32,
        irqs.len() as u32,
    )
    .map_err(|e| Ok((h, e)))?;
    let reply = execute(&h, &m, &payload, fds, backend, regions, irqs).map_err(|e| Ok((h, e)))?;
    if matches!(m, Message::Version { .. }) {
        *negotiated = true;
    }
    if let Some(reply) = reply {
        stream.write_all(&reply).map_err(Err)?;
    }
    Ok(true)
}

/// `read_exact` of the rest of a message (`got` of `want` bytes in).
fn read_rest(
    stream: &mut UnixStream,
    buf: &mut [u8],
    got: usize,
    want: usize,
) -> Result<(), Refusal> {
    let mut at = 0;
    while at < buf.len() {
        match stream.read(&mut buf[at..]) {
            Ok(0) => {
                return Err(Refusal::Truncated {
                    got: got + at,
                    want,
                });
            }
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Refusal::Stalled);
            }
            Err(_) => {
                return Err(Refusal::Truncated {
                    got: got + at,
                    want,
                });
            }
        }
    }
    Ok(())
}

/// Does what a checked message asks; its reply (None for NO_REPLY).
fn execute(
    h: &Header,
    m: &Message,
    payload: &[u8],
    mut fds: Vec<OwnedFd>,
    backend: &mut dyn ServerBackend,
    regions: &[ServerRegion],
    irqs: &[IrqInfo],
) -> Result<Option<Vec<u8>>, Refusal> {
    let mut out = Vec::new();
    let dev = Refusal::Device;
    match *m {
        Message::Version { major, minor } => {
            log::info!(target: "mlx5_sim::vfio", "client version {major}.{minor}");
            out.extend_from_slice(&h.reply(4 + CAPABILITIES.len() + 1).encode());
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.extend_from_slice(CAPABILITIES.as_bytes());
            out.push(0);
        }
        Message::DmaMap {
            flags,
            offset,
            address,
            size,
        } => {
            let fd = fds.pop().map(File::from);
            backend
                .dma_map(
                    DmaMapFlags::from_bits_truncate(flags),
                    offset,
                    address,
                    size,
                    fd,
                )
                .map_err(dev)?;
            out.extend_from_slice(&h.reply(0).encode());
        }
        Message::DmaUnmap {
            argsz,
            flags,
            address,
            size,
        } => {
            backend
                .dma_unmap(DmaUnmapFlags::from_bits_truncate(flags), address, size)
                .map_err(dev)?;
            out.extend_from_slice(&h.reply(DMA_UNMAP_LEN).encode());
            for v in [argsz, flags] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&address.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
        }
        Message::GetInfo => {
            out.extend_from_slice(&h.reply(GET_INFO_LEN).encode());
            for v in [
                GET_INFO_LEN as u32,
                VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
                regions.len() as u32,
                irqs.len() as u32,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Message::GetRegionInfo { index } => {
            // The model's regions have no capabilities (no sparse mmap).
            let ri = &regions[index as usize].region_info;
            out.extend_from_slice(&h.reply(REGION_INFO_LEN).encode());
            for v in [ri.argsz, ri.flags, ri.index, ri.cap_offset] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&ri.size.to_le_bytes());
            out.extend_from_slice(&ri.offset.to_le_bytes());
        }
        Message::GetIrqInfo { index } => {
            let irq = &irqs[index as usize];
            out.extend_from_slice(&h.reply(IRQ_INFO_LEN).encode());
            for v in [IRQ_INFO_LEN as u32, irq.flags, irq.index, irq.count] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Message::SetIrqs {
            flags,
            index,
            start,
            count,
        } => {
            let files = fds.into_iter().map(File::from).collect();
            backend
                .set_irqs(index, flags, start, count, files)
                .map_err(dev)?;
            out.extend_from_slice(&h.reply(0).encode());
        }
        Message::RegionRead {
            offset,
            region,
            count,
        } => {
            let mut data = vec![0u8; count as usize];
            backend
                .region_read(region, offset, &mut data)
                .map_err(dev)?;
            out.extend_from_slice(&h.reply(REGION_ACCESS_LEN + count as usize).encode());
            out.extend_from_slice(&payload[..REGION_ACCESS_LEN]);
            out.extend_from_slice(&data);
        }
        Message::RegionWrite {
            offset,
            region,
            count: _,
        } => {
            backend
                .region_write(region, offset, &payload[REGION_ACCESS_LEN..])
                .map_err(dev)?;
            out.extend_from_slice(&h.reply(REGION_ACCESS_LEN).encode());
            out.extend_from_slice(&payload[..REGION_ACCESS_LEN]);
        }
        Message::Reset => {
            backend.reset().map_err(dev)?;
            out.extend_from_slice(&h.reply(0).encode());
        }
    }
    Ok(if h.no_reply() { None } else { Some(out) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(command: u16, size: usize, fl: u32) -> Header {
        Header {
            id: 7,
            command,
            size: size as u32,
            flags: fl,
            error: 0,
        }
    }

    #[test]
    fn header_bytes_are_little_endian_at_their_offsets() {
        // msg_id 0x0201 at 0, command 0x0009 at 2, size 0x20 at 4, flags
        // 0x10 (NO_REPLY) at 8, error 0x16 at 12.
        let b = [
            0x01, 0x02, 0x09, 0x00, 0x20, 0, 0, 0, 0x10, 0, 0, 0, 0x16, 0, 0, 0,
        ];
        let h = Header::parse(&b);
        assert_eq!(
            h,
            Header {
                id: 0x0201,
                command: command::REGION_READ,
                size: 0x20,
                flags: flags::NO_REPLY,
                error: 0x16
            }
        );
        assert_eq!(h.encode(), b);
    }

    #[test]
    fn every_bad_message_is_refused_with_a_reason() {
        use command::*;
        let p = |c, payload: &[u8], fds, negotiated| {
            parse(
                &hdr(c, 16 + payload.len(), 0),
                payload,
                fds,
                negotiated,
                9,
                5,
            )
        };
        // VERSION first, once; a NUL-terminated capabilities string.
        assert!(matches!(
            p(DEVICE_GET_INFO, &[0; 16], 0, false),
            Err(Refusal::BeforeVersion(4))
        ));
        assert!(matches!(
            p(VERSION, &[0, 0, 1, 0], 0, true),
            Err(Refusal::VersionAgain)
        ));
        assert!(matches!(
            p(VERSION, &[0, 0], 0, false),
            Err(Refusal::Length { .. })
        ));
        assert!(matches!(
            p(VERSION, b"\0\0\x01\0{}", 0, false),
            Err(Refusal::VersionString)
        ));
        assert!(matches!(
            p(VERSION, b"\0\0\x01\0{\0}\0", 0, false),
            Err(Refusal::VersionString)
        ));
        assert_eq!(
            p(VERSION, b"\0\0\x01\0{}\0", 0, false).unwrap(),
            Message::Version { major: 0, minor: 1 }
        );
        // Lengths: too short, too long, lying about the data.
        assert!(matches!(
            p(DMA_MAP, &[0; 31], 1, true),
            Err(Refusal::Length { .. })
        ));
        assert!(matches!(
            p(DMA_MAP, &[0; 33], 1, true),
            Err(Refusal::Length { .. })
        ));
        let mut rw = [0u8; 20];
        rw[12..16].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(
            p(REGION_WRITE, &rw, 0, true),
            Err(Refusal::Length { .. })
        ));
        rw[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            p(REGION_WRITE, &rw, 0, true),
            Ok(Message::RegionWrite { count: 4, .. })
        ));
        rw[12..16].copy_from_slice(&(MAX_DATA_XFER + 1).to_le_bytes());
        assert!(matches!(
            p(REGION_READ, &rw[..16], 0, true),
            Err(Refusal::DataSize(_))
        ));
        // Indexes.
        rw[8..12].copy_from_slice(&9u32.to_le_bytes());
        rw[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            p(REGION_READ, &rw[..16], 0, true),
            Err(Refusal::Index { index: 9, .. })
        ));
        let mut irq = [0u8; 16];
        irq[8..12].copy_from_slice(&5u32.to_le_bytes());
        assert!(matches!(
            p(DEVICE_GET_IRQ_INFO, &irq, 0, true),
            Err(Refusal::Index { .. })
        ));
        // Descriptors where none belong; BOOL irq data.
        assert!(matches!(
            p(DEVICE_RESET, &[], 1, true),
            Err(Refusal::Fds { fds: 1, .. })
        ));
        assert!(matches!(
            p(DMA_MAP, &[0; 32], 2, true),
            Err(Refusal::Fds { fds: 2, .. })
        ));
        let mut set = [0u8; 20];
        set[4..8].copy_from_slice(&VFIO_IRQ_SET_DATA_BOOL.to_le_bytes());
        assert!(matches!(
            p(DEVICE_SET_IRQS, &set, 0, true),
            Err(Refusal::IrqData(_))
        ));
        // Unknown, unsupported, not a command, NO_REPLY on a query.
        assert!(matches!(p(0, &[], 0, true), Err(Refusal::Unknown(0))));
        assert!(matches!(p(99, &[], 0, true), Err(Refusal::Unknown(99))));
        assert!(matches!(
            p(DMA_READ, &[], 0, true),
            Err(Refusal::Unsupported(11))
        ));
        let reply = hdr(DEVICE_RESET, 16, flags::REPLY);
        assert!(matches!(
            parse(&reply, &[], 0, true, 9, 5),
            Err(Refusal::NotACommand { .. })
        ));
        let quiet = hdr(DEVICE_GET_INFO, 32, flags::NO_REPLY);
        assert!(matches!(
            parse(&quiet, &[0; 16], 0, true, 9, 5),
            Err(Refusal::NoReply(4))
        ));
        // Only framing errors close the connection.
        assert!(Refusal::Size(3).closes() && Refusal::Stalled.closes());
        assert!(!Refusal::VersionAgain.closes());
        assert_eq!(Refusal::Unknown(0).errno(), libc::ENOTSUP as u32);
    }

    #[test]
    fn random_messages_never_panic() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ok = 0;
        for _ in 0..50_000 {
            let c = (next() % 16) as u16;
            let len = (next() % 48) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let h = hdr(c, 16 + len, (next() % 3) as u32 * flags::NO_REPLY);
            if let Ok(m) = parse(&h, &payload, (next() % 3) as usize, next() % 4 != 0, 9, 5) {
                ok += 1;
                let _ = format!("{m:?}");
            }
        }
        assert!(ok > 0);
    }
}
