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
    /// Largest TCP segmentation offload payload (TCP data bytes of one
    /// [`TxMeta::lso`] frame, whatever its headers) in bytes (0: none).
    pub lso_max: u32,
    /// Transmit VLAN tag insertion / receive stripping.
    pub vlan_insert: bool,
    pub vlan_strip: bool,
}

/// Network-layer protocol of a received frame, as the device parsed it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum L3Proto {
    /// Not IP, or the device did not say.
    #[default]
    Other,
    Ipv4,
    Ipv6,
}

/// Transport protocol of a received frame, as the device parsed it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum L4Proto {
    /// Neither TCP nor UDP, a fragment, or the device did not say.
    #[default]
    Other,
    Tcp,
    Udp,
}

/// Per-frame receive information.
///
/// Checksums, per frame: a `true` flag means the device verified that
/// checksum and it was right, so the stack may skip verifying it; `false`
/// means nothing (not checked, not applicable, or wrong): the stack
/// verifies in software, which also catches a device that lies by
/// omission. A frame whose `l4` is `Tcp`/`Udp` with `l4_csum_ok` false
/// was checked and found bad when the device advertises `rx_csum` (the
/// stack still decides: verify and drop). Devices without `rx_csum`
/// leave every flag `false` and the protocols `Other`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RxMeta {
    /// Every checksum the frame carries was verified good: the IPv4
    /// header checksum (IPv4) and the TCP/UDP checksum (TCP/UDP over IPv4
    /// or IPv6). False for frames with neither (nothing to trust).
    pub csum_ok: bool,
    /// Stripped VLAN tag (TCI: PCP, DEI, VID), only with `vlan_strip`;
    /// the frame handed over is then untagged.
    pub vlan: Option<u16>,
    /// Network layer the device found.
    pub l3: L3Proto,
    /// Transport layer the device found.
    pub l4: L4Proto,
    /// IPv4 header checksum verified good (always false for IPv6).
    pub l3_csum_ok: bool,
    /// TCP/UDP checksum verified good.
    pub l4_csum_ok: bool,
    /// Receive-side scaling hash of the frame (0 when not hashed) and the
    /// receive queue it landed on (0 on single-queue devices).
    pub rss_hash: u32,
    pub queue: u16,
}

/// TCP segmentation offload request for one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Lso {
    /// TCP payload bytes per segment on the wire; each segment
    /// (`header_len + mss`, plus 4 with [`TxMeta::vlan`]) must fit the
    /// MTU plus the 18-byte link header, or the frame is refused.
    pub mss: u16,
    /// Ethernet + IP + TCP header bytes at the start of the frame (each
    /// segment gets a copy, with lengths, IPv4 id, sequence number, flags
    /// and checksums fixed up by the device).
    pub header_len: u16,
}

/// Where a transmitted frame's headers end, as the stack that wrote it
/// knows (it built them): the device inlines and offloads from this
/// instead of parsing the frame again. Lengths in bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TxGeometry {
    /// Ethernet header: 14, or 18 with an 802.1Q tag written in.
    pub l2: u8,
    /// Network layer, and its header length (IPv4 with options: the IHL
    /// in bytes; IPv6: 40; `Other`: 0).
    pub l3: L3Proto,
    pub l3_len: u8,
    /// Transport layer, and its header length (TCP: the data offset in
    /// bytes; UDP: 8; `Other`: 0).
    pub l4: L4Proto,
    pub l4_len: u8,
}

impl TxGeometry {
    /// Every header byte: where the payload starts.
    pub fn headers(&self) -> usize {
        self.l2 as usize + self.l3_len as usize + self.l4_len as usize
    }
}

/// Per-frame transmit requests ([`NetDevice::transmit_with`]). The
/// default asks for nothing: the frame goes out as written.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TxMeta {
    /// The device fills in the IPv4 header checksum and the TCP/UDP
    /// checksum (IPv4 or IPv6) of this frame; the frame's checksum
    /// fields may hold anything. Frames that are neither are sent as
    /// written. Needs `tx_ipv4_csum` / `tx_l4_csum`.
    pub csum: bool,
    /// Insert this 802.1Q tag (TCI) after the source MAC; the frame is
    /// written untagged. Needs `vlan_insert`.
    pub vlan: Option<u16>,
    /// Segment this (IPv4 or IPv6 TCP, up to `lso_max` payload bytes)
    /// frame into MSS-sized ones. Needs `lso_max` > 0; implies `csum`.
    pub lso: Option<Lso>,
    /// The frame's headers, when the caller knows them (a stack always
    /// does): the device then reads no header back to find them. Without
    /// it a device that needs them (checksums, inlining, LSO) parses the
    /// frame. It must describe the frame as written (a wrong geometry
    /// makes wrong checksums or a refused frame, never a fault).
    pub geometry: Option<TxGeometry>,
}

impl TxMeta {
    /// Nothing asked of the device.
    pub fn is_plain(&self) -> bool {
        !self.csum && self.vlan.is_none() && self.lso.is_none()
    }
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
    /// An offload the device does not offer ([`NetDevice::offloads`]).
    Unsupported,
    /// LSO asked for a frame it cannot segment: not TCP, no payload after
    /// its headers, MSS 0, or headers other than `header_len` says.
    BadLso,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::Busy => f.write_str("transmit ring full"),
            TxError::BadLength(n) => write!(f, "bad frame length {n}"),
            TxError::Down => f.write_str("device down"),
            TxError::Unsupported => f.write_str("offload not supported by the device"),
            TxError::BadLso => f.write_str("frame not segmentable as asked (LSO)"),
        }
    }
}

impl core::error::Error for TxError {}

/// Why a receive filter change did not happen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FilterError {
    /// The device has no such filter (it may receive everything anyway).
    Unsupported,
    /// No room for another address.
    Full,
    /// The device refused the change.
    Device,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterError::Unsupported => "receive filter not supported",
            FilterError::Full => "receive filter full",
            FilterError::Device => "device refused the receive filter change",
        })
    }
}

impl core::error::Error for FilterError {}

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

    /// [`NetDevice::transmit`] with per-frame offload requests (checksums,
    /// VLAN insertion, TCP segmentation; `len` may exceed the MTU only
    /// with `meta.lso`). Ask only for what [`NetDevice::offloads`]
    /// advertises: the default body, for devices with no offloads, sends
    /// plain frames and refuses any request with `TxError::Unsupported`.
    fn transmit_with<R>(
        &mut self,
        len: usize,
        meta: TxMeta,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, TxError> {
        if meta.is_plain() {
            self.transmit(len, f)
        } else {
            Err(TxError::Unsupported)
        }
    }

    /// [`NetDevice::transmit_with`] for a caller that knows what to ask
    /// only once the frame is written (a stack's transmit token: smoltcp
    /// writes the frame, then its headers say which checksums it needs
    /// and where they are): `f` writes the frame and returns its result
    /// and the requests. LSO cannot be asked this way (its buffer is
    /// chosen before the frame is written); a request the device does not
    /// offer, or an LSO one, drops the frame with the error. The default
    /// body, for devices with no offloads (whose callers ask for nothing),
    /// sends the frame as written.
    fn transmit_then<R>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> (R, TxMeta),
    ) -> Result<R, TxError> {
        self.transmit(len, |b| f(b).0)
    }

    /// Make queued transmits visible (one doorbell) and re-post consumed
    /// receive buffers (one doorbell-record update).
    fn flush(&mut self);

    /// Send up to `n` frames of `len` bytes, each written by `write(i,
    /// frame)`, with `meta`'s offloads (no LSO), and make them visible:
    /// one call, one doorbell where the device batches. Returns the frames
    /// queued (fewer when the ring is full; reap with
    /// [`NetDevice::poll`]). The default body transmits them one by one.
    fn transmit_burst(
        &mut self,
        n: usize,
        len: usize,
        meta: TxMeta,
        mut write: impl FnMut(usize, &mut [u8]),
    ) -> Result<usize, TxError> {
        let mut sent = 0;
        while sent < n {
            match self.transmit_with(len, meta, |b| write(sent, b)) {
                Ok(()) => sent += 1,
                Err(TxError::Busy) => break,
                Err(e) => {
                    self.flush();
                    return Err(e);
                }
            }
        }
        self.flush();
        Ok(sent)
    }

    /// Hand every received frame (at most `max`) to `f` in place, below
    /// any stack, and re-post their buffers; returns how many. The
    /// default body receives them one by one.
    fn receive_burst(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut got = 0;
        while got < max && self.receive(|b, _| f(b)).is_some() {
            got += 1;
        }
        self.flush();
        got
    }

    fn stats(&self) -> NetStats;

    /// Also receive frames sent to multicast address `mac` (IPv6
    /// all-nodes / solicited-node, mDNS...). Adding one twice is fine.
    /// Not a packet-path call (the device may run commands).
    fn add_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        let _ = mac;
        Err(FilterError::Unsupported)
    }

    /// Stop receiving frames for a multicast address added before.
    fn remove_multicast(&mut self, mac: [u8; 6]) -> Result<(), FilterError> {
        let _ = mac;
        Err(FilterError::Unsupported)
    }

    /// Receive every frame on the wire (on) or only those for the
    /// device's addresses (off).
    fn set_promiscuous(&mut self, on: bool) -> Result<(), FilterError> {
        let _ = on;
        Err(FilterError::Unsupported)
    }

    /// Receive every multicast frame (on) or only the added addresses.
    fn set_all_multicast(&mut self, on: bool) -> Result<(), FilterError> {
        let _ = on;
        Err(FilterError::Unsupported)
    }

    /// A device with timers of its own (a link aggregation's LACP
    /// machines): poll it again within this time even if no frame or
    /// interrupt comes. None: no timer.
    fn poll_within(&self) -> Option<core::time::Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device with no offloads and no filters: only the required methods.
    struct Plain {
        sent: usize,
    }

    impl NetDevice for Plain {
        fn mac(&self) -> [u8; 6] {
            [2, 0, 0, 0, 0, 1]
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn link(&self) -> LinkState {
            LinkState::default()
        }
        fn offloads(&self) -> Offloads {
            Offloads::default()
        }
        fn poll(&mut self) -> usize {
            0
        }
        fn receive<R>(&mut self, _f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
            None
        }
        fn tx_free(&self) -> usize {
            1
        }
        fn transmit<R>(
            &mut self,
            len: usize,
            f: impl FnOnce(&mut [u8]) -> R,
        ) -> Result<R, TxError> {
            let mut buf = [0u8; 64];
            self.sent += 1;
            Ok(f(&mut buf[..len]))
        }
        fn flush(&mut self) {}
        fn stats(&self) -> NetStats {
            NetStats::default()
        }
    }

    #[test]
    fn defaults_send_plain_frames_and_refuse_what_the_device_lacks() {
        let mut d = Plain { sent: 0 };
        assert!(TxMeta::default().is_plain());
        assert_eq!(d.transmit_with(60, TxMeta::default(), |b| b.len()), Ok(60));
        let csum = TxMeta {
            csum: true,
            ..TxMeta::default()
        };
        assert!(!csum.is_plain());
        assert_eq!(d.transmit_with(60, csum, |_| ()), Err(TxError::Unsupported));
        let lso = TxMeta {
            lso: Some(Lso {
                mss: 1460,
                header_len: 54,
            }),
            ..TxMeta::default()
        };
        assert_eq!(d.transmit_with(60, lso, |_| ()), Err(TxError::Unsupported));
        assert_eq!(d.sent, 1);
        // Asked after the frame is written: a device that offers nothing
        // sends it as written.
        assert_eq!(
            d.transmit_then(60, |b| (b.len(), TxMeta::default())),
            Ok(60)
        );
        assert_eq!(d.sent, 2);
        let g = TxGeometry {
            l2: 14,
            l3: L3Proto::Ipv4,
            l3_len: 20,
            l4: L4Proto::Tcp,
            l4_len: 32,
        };
        assert_eq!(g.headers(), 66);
        assert_eq!(
            d.add_multicast([0x33, 0x33, 0, 0, 0, 1]),
            Err(FilterError::Unsupported)
        );
        assert_eq!(
            d.remove_multicast([0x33, 0x33, 0, 0, 0, 1]),
            Err(FilterError::Unsupported)
        );
        assert_eq!(d.set_promiscuous(true), Err(FilterError::Unsupported));
        assert_eq!(d.set_all_multicast(true), Err(FilterError::Unsupported));
        // RxMeta's default claims nothing.
        let m = RxMeta::default();
        assert!(!m.csum_ok && !m.l3_csum_ok && !m.l4_csum_ok);
        assert_eq!((m.l3, m.l4, m.vlan), (L3Proto::Other, L4Proto::Other, None));
    }
}
