//! The network device contract between NIC drivers and the network stack
//! (net/, one smoltcp `Interface` per device or VNIC).
//!
//! Buffers belong to the driver and are lent, never copied twice: a
//! received frame is handed to the stack in place (the device does not
//! own the buffer while the closure runs, and gets it back afterwards); a
//! transmitted frame is written by the stack straight into a driver
//! buffer the device will read. This matches smoltcp's token API (an
//! `RxToken` consumes a `&[u8]`, a `TxToken` fills a `&mut [u8]` of the
//! asked length). Work is batched: transmits become visible to the device
//! at [`NetDevice::flush`] (one doorbell), received buffers are re-posted
//! in batches.

use core::fmt;

/// Link state as the adapter reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LinkState {
    pub up: bool,
    /// Megabits per second; 0 when unknown or down.
    pub speed_mbps: u32,
}

/// What the device can do for the stack. All `false`/0 means the stack
/// computes checksums and segments itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Offloads {
    /// Transmit: IPv4 header checksum.
    pub tx_ipv4_csum: bool,
    /// Transmit: TCP/UDP checksums over IPv4 and IPv6.
    pub tx_l4_csum: bool,
    /// Receive: checksums verified by the device ([`RxMeta::csum_ok`]).
    pub rx_csum: bool,
    /// Largest TCP segmentation offload payload in bytes (0: none).
    pub lso_max: u32,
    /// Transmit VLAN tag insertion / receive stripping.
    pub vlan_insert: bool,
    pub vlan_strip: bool,
}

/// Per-frame receive information.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RxMeta {
    /// The device verified the L3/L4 checksums (only with `rx_csum`).
    pub csum_ok: bool,
    /// Stripped VLAN tag (only with `vlan_strip`).
    pub vlan: Option<u16>,
}

/// Why a transmit did not happen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TxError {
    /// No free transmit buffer or descriptor: poll for completions.
    Busy,
    /// Zero, or longer than the MTU plus link header allows.
    BadLength(usize),
    /// The device is failed or down for recovery.
    Down,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::Busy => f.write_str("transmit ring full"),
            TxError::BadLength(n) => write!(f, "bad frame length {n}"),
            TxError::Down => f.write_str("device down"),
        }
    }
}

/// Frame and byte counters as the driver and device see them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NetStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames the device dropped for lack of a posted receive buffer.
    pub rx_no_buffer: u64,
    /// Error completions (either direction).
    pub errors: u64,
    /// Queue recoveries after errors.
    pub recoveries: u64,
}

/// One Ethernet device (a port or a VNIC) as the stack sees it.
pub trait NetDevice {
    /// Unicast MAC address.
    fn mac(&self) -> [u8; 6];
    /// IP MTU in bytes (the largest frame is this plus the 14-byte
    /// Ethernet header).
    fn mtu(&self) -> usize;
    fn link(&self) -> LinkState;
    fn offloads(&self) -> Offloads;

    /// Reap transmit completions, handle errors, re-arm interrupts; the
    /// same code runs in interrupt-driven and polled mode. Returns the
    /// number of completions processed.
    fn poll(&mut self) -> usize;

    /// Hand the next received frame to `f` in place; its buffer goes back
    /// to the device after `f` returns. `None`: nothing received.
    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R>;

    /// Transmit buffers free now.
    fn tx_free(&self) -> usize;

    /// Let `f` write a frame of `len` bytes into a transmit buffer and
    /// queue it. The device sees it at the next [`NetDevice::flush`].
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError>;

    /// Make queued transmits visible (one doorbell) and re-post consumed
    /// receive buffers (one doorbell-record update).
    fn flush(&mut self);

    fn stats(&self) -> NetStats;
}
