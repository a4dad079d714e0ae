//! Slow Protocols PDUs of Link Aggregation: the LACPDU (IEEE 802.1AX-2014
//! 6.4.2.3, Figure 6-7) and the Marker PDU (6.5.3, Figure 6-24), in
//! smoltcp's `wire` style: a checked view over a byte buffer
//! ([`LacpduPacket`], [`MarkerPacket`]) with `mod field` offsets, and a
//! `Repr` that parses and emits it.
//!
//! Both PDUs follow the Ethernet header of an untagged frame with
//! EtherType [`ETHERTYPE_SLOW_PROTOCOLS`] sent to
//! [`SLOW_PROTOCOLS_MULTICAST`], and both are exactly [`PDU_LEN`] octets:
//! IEEE 802.3 Annex 57A caps a Slow Protocols frame at 128 octets with the
//! FCS, so a longer payload is [`Error::Oversized`], never "extra TLVs".
//! Every multi-octet field is big-endian (802.1AX-2014 6.4.2.3 a).
//!
//! This is a Version 1 implementation (what Linux bonding, illumos and
//! common switches send): a Version 2 LACPDU, which carries
//! 802.1AX-2014's conversation-sensitive TLVs before its Terminator, is
//! [`Error::Version`].

use bitfield_struct::bitfield;
use smoltcp::wire::{EthernetAddress, EthernetFrame, EthernetProtocol};

/// Slow Protocols EtherType (IEEE 802.3 Annex 57A.4).
pub const ETHERTYPE_SLOW_PROTOCOLS: u16 = 0x8809;
/// Slow Protocols multicast destination 01-80-C2-00-00-02 (IEEE 802.3
/// Annex 57A.4; 802.1AX-2014 6.2.11): never forwarded by a bridge.
pub const SLOW_PROTOCOLS_MULTICAST: EthernetAddress =
    EthernetAddress([0x01, 0x80, 0xc2, 0x00, 0x00, 0x02]);
/// Slow Protocols subtype of LACP (802.1AX-2014 6.4.2.3 a).
pub const SUBTYPE_LACP: u8 = 0x01;
/// Slow Protocols subtype of the Marker protocol (802.1AX-2014 6.5.3.2 a).
pub const SUBTYPE_MARKER: u8 = 0x02;
/// Version 1: the PDU layout this module parses (6.4.2.3 b, 6.5.3.2 b).
pub const VERSION_1: u8 = 0x01;
/// Octets of a LACPDU or Marker PDU after the Ethernet header: 60 (LACPDU)
/// or 20 (Marker) octets of TLVs and the reserved tail that pads both to
/// 110 (Figures 6-7 and 6-24).
pub const PDU_LEN: usize = 110;
/// Ethernet header (14 octets) plus the PDU: the whole frame without FCS.
pub const FRAME_LEN: usize = 14 + PDU_LEN;

/// What is wrong with a received PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than [`PDU_LEN`].
    Truncated,
    /// Longer than [`PDU_LEN`] (Annex 57A's 128-octet frame limit).
    Oversized,
    /// The Slow Protocols subtype is not the one this view parses.
    Subtype(u8),
    /// Version other than 1.
    Version(u8),
    /// A TLV type octet at `offset` is not the one the layout requires.
    TlvType { offset: usize, found: u8 },
    /// A TLV length octet at `offset` is not the one the layout requires.
    TlvLength { offset: usize, found: u8 },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => write!(f, "truncated PDU"),
            Error::Oversized => write!(f, "PDU longer than {PDU_LEN} octets"),
            Error::Subtype(s) => write!(f, "Slow Protocols subtype {s:#04x}"),
            Error::Version(v) => write!(f, "version {v}"),
            Error::TlvType { offset, found } => {
                write!(f, "TLV type {found:#04x} at offset {offset}")
            }
            Error::TlvLength { offset, found } => {
                write!(f, "TLV length {found} at offset {offset}")
            }
        }
    }
}

/// Actor_State / Partner_State (802.1AX-2014 6.4.2.3 n, Figure 6-8): bit 0
/// is the least significant bit of the octet.
#[bitfield(u8)]
#[derive(PartialEq, Eq)]
pub struct PortState {
    /// LACP_Activity: 1 Active, 0 Passive.
    pub lacp_activity: bool,
    /// LACP_Timeout: 1 Short Timeout, 0 Long Timeout.
    pub lacp_timeout: bool,
    /// Aggregation: 1 aggregatable, 0 Individual.
    pub aggregation: bool,
    /// Synchronization: the link is allocated to the right aggregator.
    pub synchronization: bool,
    pub collecting: bool,
    pub distributing: bool,
    /// Defaulted: the Receive machine uses administrative partner values.
    pub defaulted: bool,
    /// Expired: the Receive machine is in EXPIRED.
    pub expired: bool,
}

impl PortState {
    /// States no Mux machine can produce (6.4.15): collecting or
    /// distributing without Synchronization, or distributing without
    /// collecting (both the coupled and the independent Mux enable
    /// collecting first).
    pub fn is_possible(self) -> bool {
        let needs_sync = self.collecting() || self.distributing();
        (!needs_sync || self.synchronization()) && (!self.distributing() || self.collecting())
    }
}

mod field {
    pub type Field = core::ops::Range<usize>;

    // Both PDUs (Figures 6-7 and 6-24).
    pub const SUBTYPE: usize = 0;
    pub const VERSION: usize = 1;

    // LACPDU, Figure 6-7. The Actor and Partner information TLVs share one
    // layout at a 20-octet stride; offsets below are of the Actor TLV.
    pub const ACTOR_TLV: usize = 2;
    pub const PARTNER_TLV: usize = 22;
    pub const INFO_TYPE: usize = 0;
    pub const INFO_LEN: usize = 1;
    pub const INFO_SYSTEM_PRIORITY: Field = 2..4;
    pub const INFO_SYSTEM: Field = 4..10;
    pub const INFO_KEY: Field = 10..12;
    pub const INFO_PORT_PRIORITY: Field = 12..14;
    pub const INFO_PORT: Field = 14..16;
    pub const INFO_STATE: usize = 16;
    // 17..20: 3 reserved octets.
    pub const COLLECTOR_TLV: usize = 42;
    pub const COLLECTOR_LEN: usize = 43;
    pub const COLLECTOR_MAX_DELAY: Field = 44..46;
    // 46..58: 12 reserved octets.
    pub const LACP_TERMINATOR_TLV: usize = 58;
    pub const LACP_TERMINATOR_LEN: usize = 59;
    // 60..110: 50 reserved octets.

    // Marker PDU, Figure 6-24.
    pub const MARKER_TLV: usize = 2;
    pub const MARKER_LEN: usize = 3;
    pub const REQUESTER_PORT: Field = 4..6;
    pub const REQUESTER_SYSTEM: Field = 6..12;
    pub const REQUESTER_TRANSACTION_ID: Field = 12..16;
    // 16..18: 2 pad octets.
    pub const MARKER_TERMINATOR_TLV: usize = 18;
    pub const MARKER_TERMINATOR_LEN: usize = 19;
    // 20..110: 90 reserved octets.
}

/// TLV types and lengths of the LACPDU (6.4.2.3 c, d, o, p, r, s, t, u).
const TLV_TERMINATOR: u8 = 0x00;
const TLV_ACTOR: u8 = 0x01;
const TLV_PARTNER: u8 = 0x02;
const TLV_COLLECTOR: u8 = 0x03;
const INFO_LEN: u8 = 20;
const COLLECTOR_LEN: u8 = 16;
/// TLV types of the Marker PDU (6.5.3.2 c) and its Marker_Information /
/// Marker_Response length (6.5.3.2 d).
const TLV_MARKER_INFORMATION: u8 = 0x01;
const TLV_MARKER_RESPONSE: u8 = 0x02;
const MARKER_LEN: u8 = 16;

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn check_len(len: usize) -> Result<(), Error> {
    match len {
        l if l < PDU_LEN => Err(Error::Truncated),
        l if l > PDU_LEN => Err(Error::Oversized),
        _ => Ok(()),
    }
}

fn check_tlv(data: &[u8], ty: usize, len: usize, want: (u8, u8)) -> Result<(), Error> {
    if data[ty] != want.0 {
        return Err(Error::TlvType {
            offset: ty,
            found: data[ty],
        });
    }
    if data[len] != want.1 {
        return Err(Error::TlvLength {
            offset: len,
            found: data[len],
        });
    }
    Ok(())
}

/// A read/write view of a LACPDU (the octets after the Ethernet header).
#[derive(Debug, Clone)]
pub struct LacpduPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// Which of the two information TLVs of a LACPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Actor,
    Partner,
}

impl Side {
    fn base(self) -> usize {
        match self {
            Side::Actor => field::ACTOR_TLV,
            Side::Partner => field::PARTNER_TLV,
        }
    }
}

impl<T: AsRef<[u8]>> LacpduPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        LacpduPacket { buffer }
    }

    /// Wraps a buffer after [`Self::check`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Length, subtype, version, and the type and length of each of the
    /// four TLVs: a LACPDU has exactly one layout, so anything else is
    /// malformed.
    pub fn check(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        check_len(data.len())?;
        if data[field::SUBTYPE] != SUBTYPE_LACP {
            return Err(Error::Subtype(data[field::SUBTYPE]));
        }
        if data[field::VERSION] != VERSION_1 {
            return Err(Error::Version(data[field::VERSION]));
        }
        for (side, ty) in [(Side::Actor, TLV_ACTOR), (Side::Partner, TLV_PARTNER)] {
            let base = side.base();
            check_tlv(
                data,
                base + field::INFO_TYPE,
                base + field::INFO_LEN,
                (ty, INFO_LEN),
            )?;
        }
        check_tlv(
            data,
            field::COLLECTOR_TLV,
            field::COLLECTOR_LEN,
            (TLV_COLLECTOR, COLLECTOR_LEN),
        )?;
        check_tlv(
            data,
            field::LACP_TERMINATOR_TLV,
            field::LACP_TERMINATOR_LEN,
            (TLV_TERMINATOR, 0),
        )
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn info(&self, side: Side, f: field::Field) -> &[u8] {
        let base = side.base();
        &self.buffer.as_ref()[base + f.start..base + f.end]
    }

    pub fn system_priority(&self, side: Side) -> u16 {
        be16(self.info(side, field::INFO_SYSTEM_PRIORITY))
    }

    pub fn system(&self, side: Side) -> EthernetAddress {
        EthernetAddress::from_bytes(self.info(side, field::INFO_SYSTEM))
    }

    pub fn key(&self, side: Side) -> u16 {
        be16(self.info(side, field::INFO_KEY))
    }

    pub fn port_priority(&self, side: Side) -> u16 {
        be16(self.info(side, field::INFO_PORT_PRIORITY))
    }

    pub fn port(&self, side: Side) -> u16 {
        be16(self.info(side, field::INFO_PORT))
    }

    pub fn state(&self, side: Side) -> PortState {
        PortState::from_bits(self.buffer.as_ref()[side.base() + field::INFO_STATE])
    }

    /// CollectorMaxDelay, in tens of microseconds (6.4.2.3 q).
    pub fn collector_max_delay(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::COLLECTOR_MAX_DELAY])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> LacpduPacket<T> {
    /// Writes the fixed octets: subtype, version, every TLV type and
    /// length, and zeroes in every reserved octet (6.4.2.3: "transmitted
    /// as zero").
    pub fn fill_header(&mut self) {
        let data = self.buffer.as_mut();
        data.fill(0);
        data[field::SUBTYPE] = SUBTYPE_LACP;
        data[field::VERSION] = VERSION_1;
        data[field::ACTOR_TLV + field::INFO_TYPE] = TLV_ACTOR;
        data[field::ACTOR_TLV + field::INFO_LEN] = INFO_LEN;
        data[field::PARTNER_TLV + field::INFO_TYPE] = TLV_PARTNER;
        data[field::PARTNER_TLV + field::INFO_LEN] = INFO_LEN;
        data[field::COLLECTOR_TLV] = TLV_COLLECTOR;
        data[field::COLLECTOR_LEN] = COLLECTOR_LEN;
        data[field::LACP_TERMINATOR_TLV] = TLV_TERMINATOR;
        data[field::LACP_TERMINATOR_LEN] = 0;
    }

    fn info_mut(&mut self, side: Side, f: field::Field) -> &mut [u8] {
        let base = side.base();
        &mut self.buffer.as_mut()[base + f.start..base + f.end]
    }

    pub fn set_info(&mut self, side: Side, info: &PortInfo) {
        self.info_mut(side, field::INFO_SYSTEM_PRIORITY)
            .copy_from_slice(&info.system.priority.to_be_bytes());
        self.info_mut(side, field::INFO_SYSTEM)
            .copy_from_slice(&info.system.mac.0);
        self.info_mut(side, field::INFO_KEY)
            .copy_from_slice(&info.key.to_be_bytes());
        self.info_mut(side, field::INFO_PORT_PRIORITY)
            .copy_from_slice(&info.port_priority.to_be_bytes());
        self.info_mut(side, field::INFO_PORT)
            .copy_from_slice(&info.port.to_be_bytes());
        self.buffer.as_mut()[side.base() + field::INFO_STATE] = info.state.into_bits();
    }

    pub fn set_collector_max_delay(&mut self, delay: u16) {
        self.buffer.as_mut()[field::COLLECTOR_MAX_DELAY].copy_from_slice(&delay.to_be_bytes());
    }
}

/// A System Identifier: priority and MAC address (802.1AX-2014 6.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SystemId {
    pub priority: u16,
    pub mac: EthernetAddress,
}

/// One information TLV of a LACPDU: what a system says about one end of a
/// link (6.4.2.3 e-n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortInfo {
    pub system: SystemId,
    pub key: u16,
    pub port_priority: u16,
    pub port: u16,
    pub state: PortState,
}

impl PortInfo {
    /// The values that identify an end of a link, without its state
    /// (the comparisons of recordPDU, update_Selected and update_NTT).
    pub fn same_port(&self, other: &PortInfo) -> bool {
        self.system == other.system
            && self.key == other.key
            && self.port_priority == other.port_priority
            && self.port == other.port
    }
}

/// A parsed LACPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LacpduRepr {
    pub actor: PortInfo,
    pub partner: PortInfo,
    pub collector_max_delay: u16,
}

impl LacpduRepr {
    pub fn parse<T: AsRef<[u8]>>(packet: &LacpduPacket<T>) -> Result<Self, Error> {
        packet.check()?;
        let info = |side| PortInfo {
            system: SystemId {
                priority: packet.system_priority(side),
                mac: packet.system(side),
            },
            key: packet.key(side),
            port_priority: packet.port_priority(side),
            port: packet.port(side),
            state: packet.state(side),
        };
        Ok(LacpduRepr {
            actor: info(Side::Actor),
            partner: info(Side::Partner),
            collector_max_delay: packet.collector_max_delay(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PDU_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut LacpduPacket<T>) {
        packet.fill_header();
        packet.set_info(Side::Actor, &self.actor);
        packet.set_info(Side::Partner, &self.partner);
        packet.set_collector_max_delay(self.collector_max_delay);
    }
}

/// A read/write view of a Marker PDU.
#[derive(Debug, Clone)]
pub struct MarkerPacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// Marker Information (a request) or Marker Response (6.5.3.2 c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    Information,
    Response,
}

impl<T: AsRef<[u8]>> MarkerPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        MarkerPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    pub fn check(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        check_len(data.len())?;
        if data[field::SUBTYPE] != SUBTYPE_MARKER {
            return Err(Error::Subtype(data[field::SUBTYPE]));
        }
        if data[field::VERSION] != VERSION_1 {
            return Err(Error::Version(data[field::VERSION]));
        }
        let ty = data[field::MARKER_TLV];
        if ty != TLV_MARKER_INFORMATION && ty != TLV_MARKER_RESPONSE {
            return Err(Error::TlvType {
                offset: field::MARKER_TLV,
                found: ty,
            });
        }
        if data[field::MARKER_LEN] != MARKER_LEN {
            return Err(Error::TlvLength {
                offset: field::MARKER_LEN,
                found: data[field::MARKER_LEN],
            });
        }
        check_tlv(
            data,
            field::MARKER_TERMINATOR_TLV,
            field::MARKER_TERMINATOR_LEN,
            (TLV_TERMINATOR, 0),
        )
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn kind(&self) -> MarkerKind {
        if self.buffer.as_ref()[field::MARKER_TLV] == TLV_MARKER_RESPONSE {
            MarkerKind::Response
        } else {
            MarkerKind::Information
        }
    }

    pub fn requester_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::REQUESTER_PORT])
    }

    pub fn requester_system(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::REQUESTER_SYSTEM])
    }

    pub fn requester_transaction_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::REQUESTER_TRANSACTION_ID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MarkerPacket<T> {
    pub fn fill_header(&mut self, kind: MarkerKind) {
        let data = self.buffer.as_mut();
        data.fill(0);
        data[field::SUBTYPE] = SUBTYPE_MARKER;
        data[field::VERSION] = VERSION_1;
        data[field::MARKER_TLV] = match kind {
            MarkerKind::Information => TLV_MARKER_INFORMATION,
            MarkerKind::Response => TLV_MARKER_RESPONSE,
        };
        data[field::MARKER_LEN] = MARKER_LEN;
        data[field::MARKER_TERMINATOR_TLV] = TLV_TERMINATOR;
        data[field::MARKER_TERMINATOR_LEN] = 0;
    }

    pub fn set_requester_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::REQUESTER_PORT].copy_from_slice(&port.to_be_bytes());
    }

    pub fn set_requester_system(&mut self, system: EthernetAddress) {
        self.buffer.as_mut()[field::REQUESTER_SYSTEM].copy_from_slice(&system.0);
    }

    pub fn set_requester_transaction_id(&mut self, id: u32) {
        self.buffer.as_mut()[field::REQUESTER_TRANSACTION_ID].copy_from_slice(&id.to_be_bytes());
    }
}

/// A parsed Marker PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerRepr {
    pub kind: MarkerKind,
    pub requester_port: u16,
    pub requester_system: EthernetAddress,
    pub requester_transaction_id: u32,
}

impl MarkerRepr {
    pub fn parse<T: AsRef<[u8]>>(packet: &MarkerPacket<T>) -> Result<Self, Error> {
        packet.check()?;
        Ok(MarkerRepr {
            kind: packet.kind(),
            requester_port: packet.requester_port(),
            requester_system: packet.requester_system(),
            requester_transaction_id: packet.requester_transaction_id(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PDU_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut MarkerPacket<T>) {
        packet.fill_header(self.kind);
        packet.set_requester_port(self.requester_port);
        packet.set_requester_system(self.requester_system);
        packet.set_requester_transaction_id(self.requester_transaction_id);
    }

    /// The Marker Responder's answer (6.5.4.2): the same requester fields
    /// with the TLV type changed to Marker Response.
    pub fn response(&self) -> MarkerRepr {
        MarkerRepr {
            kind: MarkerKind::Response,
            ..*self
        }
    }
}

/// A Slow Protocols PDU this module parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowPdu {
    Lacp(LacpduRepr),
    Marker(MarkerRepr),
}

/// What a received frame is, as far as Link Aggregation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowFrame {
    /// Not a Slow Protocols frame: for the aggregation's clients.
    NotSlow,
    /// A well-formed LACPDU or Marker PDU.
    Pdu(SlowPdu),
    /// A Slow Protocols frame of another subtype (e.g. 802.3 OAM).
    OtherSubtype(u8),
    /// A malformed LACPDU or Marker PDU, or one sent to another address.
    Bad(FrameError),
}

/// Why a Slow Protocols frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not addressed to [`SLOW_PROTOCOLS_MULTICAST`].
    Destination,
    Pdu(Error),
}

/// Classifies a whole Ethernet frame (untagged; Slow Protocols frames are
/// never tagged) and parses its PDU.
pub fn parse_frame(frame: &[u8]) -> SlowFrame {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return SlowFrame::NotSlow;
    };
    if eth.ethertype() != EthernetProtocol::Unknown(ETHERTYPE_SLOW_PROTOCOLS) {
        return SlowFrame::NotSlow;
    }
    if eth.dst_addr() != SLOW_PROTOCOLS_MULTICAST {
        return SlowFrame::Bad(FrameError::Destination);
    }
    let pdu = eth.payload();
    let parsed = match pdu.first() {
        None => Err(Error::Truncated),
        Some(&SUBTYPE_LACP) => {
            LacpduRepr::parse(&LacpduPacket::new_unchecked(pdu)).map(SlowPdu::Lacp)
        }
        Some(&SUBTYPE_MARKER) => {
            MarkerRepr::parse(&MarkerPacket::new_unchecked(pdu)).map(SlowPdu::Marker)
        }
        Some(&other) => return SlowFrame::OtherSubtype(other),
    };
    match parsed {
        Ok(pdu) => SlowFrame::Pdu(pdu),
        Err(e) => SlowFrame::Bad(FrameError::Pdu(e)),
    }
}

/// Writes a whole frame (Ethernet header from `src`, then the PDU) into
/// `buf`.
pub fn emit_frame(src: EthernetAddress, pdu: &SlowPdu, buf: &mut [u8; FRAME_LEN]) {
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst_addr(SLOW_PROTOCOLS_MULTICAST);
    eth.set_src_addr(src);
    eth.set_ethertype(EthernetProtocol::Unknown(ETHERTYPE_SLOW_PROTOCOLS));
    let payload = eth.payload_mut();
    match pdu {
        SlowPdu::Lacp(repr) => repr.emit(&mut LacpduPacket::new_unchecked(payload)),
        SlowPdu::Marker(repr) => repr.emit(&mut MarkerPacket::new_unchecked(payload)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LACPDU frame written by hand from 802.1AX-2014 Figure 6-7: actor
    /// system 02:00:00:00:00:01 priority 0x8000 key 0x0011 port priority
    /// 0x00ff port 1, state 0x3d (Active, Aggregation, Sync, Collecting,
    /// Distributing); partner system 52:54:00:12:34:56 priority 0xffff key
    /// 0x0009 port priority 0x00ff port 2, state 0x3f; CollectorMaxDelay 5.
    #[rustfmt::skip]
    const LACPDU_FRAME: [u8; FRAME_LEN] = [
        // Ethernet: destination 01-80-C2-00-00-02 (0..6), source (6..12),
        // EtherType 0x8809 (12..14).
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x02,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a,
        0x88, 0x09,
        // PDU offset 0: Subtype LACP, 1: Version 1.
        0x01, 0x01,
        // 2: TLV_type Actor Information, 3: Actor_Information_Length 20.
        0x01, 0x14,
        // 4..6 Actor_System_Priority, 6..12 Actor_System.
        0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        // 12..14 Actor_Key, 14..16 Actor_Port_Priority, 16..18 Actor_Port.
        0x00, 0x11, 0x00, 0xff, 0x00, 0x01,
        // 18 Actor_State, 19..22 Reserved.
        0x3d, 0x00, 0x00, 0x00,
        // 22: TLV_type Partner Information, 23: Partner_Information_Length 20.
        0x02, 0x14,
        // 24..26 Partner_System_Priority, 26..32 Partner_System.
        0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        // 32..34 Partner_Key, 34..36 Partner_Port_Priority, 36..38 Partner_Port.
        0x00, 0x09, 0x00, 0xff, 0x00, 0x02,
        // 38 Partner_State, 39..42 Reserved.
        0x3f, 0x00, 0x00, 0x00,
        // 42: TLV_type Collector Information, 43: Collector_Information_Length 16.
        0x03, 0x10,
        // 44..46 CollectorMaxDelay, 46..58 Reserved (12).
        0x00, 0x05,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        // 58: TLV_type Terminator, 59: Terminator_Length 0.
        0x00, 0x00,
        // 60..110 Reserved (50).
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// A Marker PDU frame written by hand from 802.1AX-2014 Figure 6-24,
    /// sent from 02:00:00:00:00:`src` with TLV_type `tlv` (1 Marker
    /// Information, 2 Marker Response): requester port 3, system
    /// 02:00:00:00:00:01, transaction id 0x01020304 (a response returns
    /// the requester's fields unchanged, 6.5.4.2).
    #[rustfmt::skip]
    const fn marker_frame(src: u8, tlv: u8) -> [u8; FRAME_LEN] {
        let head: [u8; 34] = [
            // Ethernet: destination, source, EtherType 0x8809.
            0x01, 0x80, 0xc2, 0x00, 0x00, 0x02,
            0x02, 0x00, 0x00, 0x00, 0x00, src,
            0x88, 0x09,
            // PDU offset 0: Subtype Marker, 1: Version 1.
            0x02, 0x01,
            // 2: TLV_type, 3: Marker_Information/Response_Length 16.
            tlv, 0x10,
            // 4..6 Requester_Port, 6..12 Requester_System.
            0x00, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
            // 12..16 Requester_Transaction_ID, 16..18 Pad.
            0x01, 0x02, 0x03, 0x04, 0x00, 0x00,
            // 18: TLV_type Terminator, 19: Terminator_Length 0.
            0x00, 0x00,
        ];
        // 20..110 Reserved (90): zero.
        let mut frame = [0u8; FRAME_LEN];
        let mut i = 0;
        while i < head.len() {
            frame[i] = head[i];
            i += 1;
        }
        frame
    }

    /// A Marker Information PDU from 02:00:00:00:00:0b.
    const MARKER_FRAME: [u8; FRAME_LEN] = marker_frame(0x0b, 0x01);

    /// The Marker Response to [`MARKER_FRAME`], sent from
    /// 02:00:00:00:00:0c.
    const MARKER_RESPONSE_FRAME: [u8; FRAME_LEN] = marker_frame(0x0c, 0x02);

    #[test]
    fn marker_response_matches_golden_frame() {
        let SlowFrame::Pdu(SlowPdu::Marker(request)) = parse_frame(&MARKER_FRAME) else {
            panic!("the golden Marker does not parse");
        };
        let mut buf = [0x55u8; FRAME_LEN];
        let src = EthernetAddress([0x02, 0, 0, 0, 0, 0x0c]);
        emit_frame(src, &SlowPdu::Marker(request.response()), &mut buf);
        assert_eq!(buf, MARKER_RESPONSE_FRAME);
        assert_eq!(
            parse_frame(&MARKER_RESPONSE_FRAME),
            SlowFrame::Pdu(SlowPdu::Marker(MarkerRepr {
                kind: MarkerKind::Response,
                ..request
            }))
        );
    }

    #[test]
    fn malformed_markers_are_typed_errors_and_never_panic() {
        let marker = &MARKER_FRAME[14..];
        assert_eq!(
            MarkerPacket::new_checked(&marker[..PDU_LEN - 1]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            MarkerPacket::new_checked(&marker[..20]).unwrap_err(),
            Error::Truncated
        );
        let mut long = [0u8; PDU_LEN + 1];
        long[..PDU_LEN].copy_from_slice(marker);
        assert_eq!(
            MarkerPacket::new_checked(&long[..]).unwrap_err(),
            Error::Oversized
        );
        for (offset, value, want) in [
            (0usize, 0x01u8, Error::Subtype(1)),
            (1, 0x02, Error::Version(2)),
            (
                18,
                0x01,
                Error::TlvType {
                    offset: 18,
                    found: 1,
                },
            ),
        ] {
            let mut bad = [0u8; PDU_LEN];
            bad.copy_from_slice(marker);
            bad[offset] = value;
            assert_eq!(MarkerPacket::new_checked(&bad[..]).unwrap_err(), want);
        }
        // Every length of frame, and every octet of the PDU set to a few
        // values: a typed answer, and whatever parses emits back the
        // same PDU (Pad and the Reserved tail aside, ignored on receipt).
        for len in 0..MARKER_FRAME.len() + 8 {
            let mut frame = MARKER_FRAME.to_vec();
            frame.resize(len, 0xee);
            let parsed = parse_frame(&frame);
            assert_eq!(
                matches!(parsed, SlowFrame::Pdu(_)),
                len == FRAME_LEN,
                "{len}"
            );
        }
        for offset in 14..FRAME_LEN {
            for value in [0x00, 0x01, 0x02, 0x10, 0x7f, 0xff] {
                let mut frame = MARKER_FRAME;
                frame[offset] = value;
                if let SlowFrame::Pdu(pdu) = parse_frame(&frame) {
                    let mut again = [0u8; FRAME_LEN];
                    emit_frame(EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]), &pdu, &mut again);
                    // PDU octets 0..16 and the Terminator (18..20).
                    assert_eq!(again[..30], frame[..30], "offset {offset}");
                    assert_eq!(again[32..34], frame[32..34], "offset {offset}");
                }
            }
        }
    }

    fn golden_lacpdu() -> LacpduRepr {
        LacpduRepr {
            actor: PortInfo {
                system: SystemId {
                    priority: 0x8000,
                    mac: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
                },
                key: 0x11,
                port_priority: 0xff,
                port: 1,
                state: PortState::new()
                    .with_lacp_activity(true)
                    .with_aggregation(true)
                    .with_synchronization(true)
                    .with_collecting(true)
                    .with_distributing(true),
            },
            partner: PortInfo {
                system: SystemId {
                    priority: 0xffff,
                    mac: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
                },
                key: 9,
                port_priority: 0xff,
                port: 2,
                state: PortState::from_bits(0x3f),
            },
            collector_max_delay: 5,
        }
    }

    #[test]
    fn lacpdu_parses_golden_frame() {
        match parse_frame(&LACPDU_FRAME) {
            SlowFrame::Pdu(SlowPdu::Lacp(repr)) => assert_eq!(repr, golden_lacpdu()),
            other => panic!("{other:?}"),
        }
        let state = PortState::from_bits(0x3f);
        assert!(state.lacp_activity() && state.lacp_timeout() && state.distributing());
        assert!(!state.defaulted() && !state.expired());
    }

    #[test]
    fn lacpdu_emits_golden_frame() {
        let mut buf = [0xaau8; FRAME_LEN];
        let src = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
        emit_frame(src, &SlowPdu::Lacp(golden_lacpdu()), &mut buf);
        assert_eq!(buf, LACPDU_FRAME);
    }

    #[test]
    fn marker_round_trips_golden_frame() {
        let repr = match parse_frame(&MARKER_FRAME) {
            SlowFrame::Pdu(SlowPdu::Marker(repr)) => repr,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            repr,
            MarkerRepr {
                kind: MarkerKind::Information,
                requester_port: 3,
                requester_system: EthernetAddress([0x02, 0, 0, 0, 0, 1]),
                requester_transaction_id: 0x0102_0304,
            }
        );
        let mut buf = [0x55u8; FRAME_LEN];
        emit_frame(
            EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]),
            &SlowPdu::Marker(repr),
            &mut buf,
        );
        assert_eq!(buf, MARKER_FRAME);
        // The response differs only in the TLV type (offset 2 of the PDU).
        let mut response = [0u8; FRAME_LEN];
        let src = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
        emit_frame(src, &SlowPdu::Marker(repr.response()), &mut response);
        let mut expected = MARKER_FRAME;
        expected[14 + 2] = 0x02;
        assert_eq!(response, expected);
    }

    #[test]
    fn malformed_pdus_are_typed_errors() {
        let pdu = &LACPDU_FRAME[14..];
        assert_eq!(
            LacpduPacket::new_checked(&pdu[..109]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            LacpduPacket::new_checked(&[][..]).unwrap_err(),
            Error::Truncated
        );
        let mut long = [0u8; PDU_LEN + 1];
        long[..PDU_LEN].copy_from_slice(pdu);
        assert_eq!(
            LacpduPacket::new_checked(&long[..]).unwrap_err(),
            Error::Oversized
        );
        let cases: [(usize, u8, Error); 7] = [
            (0, 0x02, Error::Subtype(2)),
            (1, 0x00, Error::Version(0)),
            (1, 0x02, Error::Version(2)),
            (
                2,
                0x02,
                Error::TlvType {
                    offset: 2,
                    found: 2,
                },
            ),
            (
                23,
                0x13,
                Error::TlvLength {
                    offset: 23,
                    found: 0x13,
                },
            ),
            (
                43,
                0x14,
                Error::TlvLength {
                    offset: 43,
                    found: 0x14,
                },
            ),
            (
                58,
                0x04,
                Error::TlvType {
                    offset: 58,
                    found: 4,
                },
            ),
        ];
        for (offset, value, want) in cases {
            let mut bad = [0u8; PDU_LEN];
            bad.copy_from_slice(pdu);
            bad[offset] = value;
            assert_eq!(
                LacpduPacket::new_checked(&bad[..]).unwrap_err(),
                want,
                "offset {offset}"
            );
        }
        let marker = &MARKER_FRAME[14..];
        for (offset, value, want) in [
            (
                2usize,
                0x03u8,
                Error::TlvType {
                    offset: 2,
                    found: 3,
                },
            ),
            (
                3,
                0x14,
                Error::TlvLength {
                    offset: 3,
                    found: 0x14,
                },
            ),
            (
                19,
                0x01,
                Error::TlvLength {
                    offset: 19,
                    found: 1,
                },
            ),
        ] {
            let mut bad = [0u8; PDU_LEN];
            bad.copy_from_slice(marker);
            bad[offset] = value;
            assert_eq!(MarkerPacket::new_checked(&bad[..]).unwrap_err(), want);
        }
        let mut to_unicast = LACPDU_FRAME;
        to_unicast[0] = 0x02;
        assert_eq!(
            parse_frame(&to_unicast),
            SlowFrame::Bad(FrameError::Destination)
        );
        let mut oam = LACPDU_FRAME;
        oam[14] = 0x03;
        assert_eq!(parse_frame(&oam), SlowFrame::OtherSubtype(3));
        assert_eq!(
            parse_frame(&LACPDU_FRAME[..14]),
            SlowFrame::Bad(FrameError::Pdu(Error::Truncated))
        );
    }

    #[test]
    fn impossible_states() {
        assert!(PortState::from_bits(0x3d).is_possible());
        assert!(PortState::from_bits(0x0d).is_possible());
        // Distributing without collecting.
        assert!(!PortState::from_bits(0x2d).is_possible());
        // Collecting without synchronization.
        assert!(!PortState::from_bits(0x15).is_possible());
    }
}
