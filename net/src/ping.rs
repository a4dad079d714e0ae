//! `ping`: ICMPv4 / ICMPv6 echo client printing lines like Linux ping.
//!
//! Raw IP sockets (not smoltcp's ICMP sockets) so that the replies' TTL /
//! hop limit can be shown. Requests carry a byte pattern that the replies
//! must return intact.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::str::FromStr;

use cxos_drivers::net::NetDevice;
use smoltcp::iface::SocketHandle;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::raw;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpProtocol, IpVersion,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
};

use crate::app::{App, AppStatus, Verdict};
use crate::netif::NetIf;

const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const ICMP_HEADER: usize = 8;
/// Hop limit of the requests.
const HOP_LIMIT: u8 = 64;
/// Replies buffered in the socket between polls.
const RX_PACKETS: usize = 32;
/// Sequence numbers a reply is matched against: the latest 65535 sent
/// (the 16-bit field wraps).
const MATCHED: usize = 65535;

/// `ping` arguments: `<addr> [-c count] [-i interval_s] [-W timeout_s] [-s size]`,
/// in any order, with iputils' defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingConfig {
    pub target: IpAddress,
    /// Requests to send (default: until stopped, as iputils' ping).
    pub count: Option<u32>,
    /// Between requests (default 1 s).
    pub interval: Duration,
    /// How long to wait for replies after the last request (default 2 s).
    pub timeout: Duration,
    /// ICMP data bytes (default 56).
    pub size: usize,
}

impl PingConfig {
    pub fn new(target: IpAddress) -> PingConfig {
        PingConfig {
            target,
            count: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            size: 56,
        }
    }
}

/// Why `ping` arguments were rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PingArgError {
    MissingTarget,
    BadTarget(String),
    /// An option without a value or with a value out of range.
    BadValue {
        option: &'static str,
        value: String,
    },
    UnknownOption(String),
    /// A second address.
    Extra(String),
}

impl fmt::Display for PingArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PingArgError::MissingTarget => f.write_str("ping: missing address"),
            PingArgError::BadTarget(s) => write!(f, "ping: '{s}' is not an IP address"),
            PingArgError::BadValue { option, value } => {
                write!(f, "ping: bad value '{value}' for {option}")
            }
            PingArgError::UnknownOption(s) => write!(f, "ping: unknown option '{s}'"),
            PingArgError::Extra(s) => write!(f, "ping: unexpected argument '{s}'"),
        }
    }
}

/// Seconds with up to three decimals ("0.2", "1", "2.5") as a Duration.
pub fn parse_secs(s: &str) -> Option<Duration> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty()) || frac.len() > 3 {
        return None;
    }
    let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut ms: u64 = 0;
    for (i, c) in frac.chars().enumerate() {
        ms += c.to_digit(10)? as u64 * [100, 10, 1][i];
    }
    Some(Duration::from_millis(
        int.checked_mul(1000)?.checked_add(ms)?,
    ))
}

impl FromStr for PingConfig {
    type Err = PingArgError;

    fn from_str(s: &str) -> Result<Self, PingArgError> {
        let mut target = None;
        let mut cfg = PingConfig::new(IpAddress::v4(0, 0, 0, 0));
        let mut words = s.split_whitespace();
        while let Some(w) = words.next() {
            let mut value = |option: &'static str| {
                words.next().ok_or(PingArgError::BadValue {
                    option,
                    value: String::new(),
                })
            };
            let bad = |option: &'static str, v: &str| PingArgError::BadValue {
                option,
                value: v.to_string(),
            };
            match w {
                "-c" => {
                    let v = value("-c")?;
                    cfg.count = Some(v.parse().ok().filter(|&n| n > 0).ok_or(bad("-c", v))?);
                }
                "-i" => {
                    let v = value("-i")?;
                    cfg.interval = parse_secs(v)
                        .filter(|d| d.total_millis() >= 1)
                        .ok_or(bad("-i", v))?;
                }
                "-W" => {
                    let v = value("-W")?;
                    cfg.timeout = parse_secs(v)
                        .filter(|d| d.total_millis() >= 1)
                        .ok_or(bad("-W", v))?;
                }
                "-s" => {
                    let v = value("-s")?;
                    cfg.size = v.parse().ok().filter(|&n| n <= 9000).ok_or(bad("-s", v))?;
                }
                o if o.starts_with('-') => return Err(PingArgError::UnknownOption(o.into())),
                a if target.is_none() => {
                    target = Some(
                        a.parse::<IpAddress>()
                            .map_err(|_| PingArgError::BadTarget(a.into()))?,
                    );
                }
                a => return Err(PingArgError::Extra(a.into())),
            }
        }
        cfg.target = target.ok_or(PingArgError::MissingTarget)?;
        Ok(cfg)
    }
}

/// Why a ping could not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PingError {
    /// No address of the target's family on the interface.
    NoSourceAddress,
    /// The request would not fit the MTU (no fragmentation here).
    TooLarge { size: usize, max: usize },
    /// The target is multicast, broadcast or unspecified.
    BadTarget(IpAddress),
}

impl fmt::Display for PingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PingError::NoSourceAddress => {
                f.write_str("ping: no source address of that family on the interface")
            }
            PingError::TooLarge { size, max } => {
                write!(f, "ping: {size} data bytes exceed the MTU (max {max})")
            }
            PingError::BadTarget(a) => write!(f, "ping: {a} is not a unicast address"),
        }
    }
}

/// Round-trip statistics in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttStats {
    pub count: u64,
    pub min_us: u64,
    pub max_us: u64,
    pub sum_us: u64,
    pub sum_sq_us: u128,
}

impl RttStats {
    fn add(&mut self, us: u64) {
        if self.count == 0 || us < self.min_us {
            self.min_us = us;
        }
        self.max_us = self.max_us.max(us);
        self.count += 1;
        self.sum_us += us;
        self.sum_sq_us += us as u128 * us as u128;
    }

    pub fn avg_us(&self) -> u64 {
        self.sum_us.checked_div(self.count).unwrap_or(0)
    }

    /// Mean deviation as Linux ping prints it: sqrt(E[x²] - E[x]²).
    pub fn mdev_us(&self) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let n = self.count as u128;
        let mean = self.sum_us as u128 / n;
        let var = (self.sum_sq_us / n).saturating_sub(mean * mean);
        isqrt(var) as u64
    }
}

fn isqrt(v: u128) -> u128 {
    if v < 2 {
        return v;
    }
    let mut x = v;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + v / x) / 2;
    }
    x
}

/// Where the request a reply with sequence field `seq` answers sits among
/// `kept` remembered requests, the first of which was request number
/// `forgotten + 1` (numbers count from 1 and wrap at 65536 on the wire):
/// the latest one that fits.
fn sent_slot(forgotten: usize, kept: usize, seq: u16) -> Option<usize> {
    let first = forgotten + 1;
    (first..first + kept)
        .rev()
        .find(|&k| k % 65536 == usize::from(seq))
        .map(|k| k - first)
}

/// Milliseconds with ping's precision (3 significant digits, at least
/// one decimal below 100 ms).
#[derive(Clone, Copy, Debug)]
pub struct Ms(pub u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us < 1_000 {
            write!(f, "{}.{:03}", us / 1000, us % 1000)
        } else if us < 10_000 {
            write!(f, "{}.{:02}", us / 1000, (us % 1000) / 10)
        } else if us < 100_000 {
            write!(f, "{}.{}", us / 1000, (us % 1000) / 100)
        } else {
            write!(f, "{}", us / 1000)
        }
    }
}

/// The echo client.
#[derive(Debug)]
pub struct Ping {
    cfg: PingConfig,
    socket: Option<SocketHandle>,
    source: IpAddress,
    ident: u16,
    /// Next sequence number to send (first is 1, like Linux).
    next_seq: u32,
    transmitted: u32,
    received: u32,
    duplicates: u32,
    /// Send time of the latest [`MATCHED`] sequence numbers and whether
    /// each was answered, oldest first (an endless ping stays bounded).
    sent: VecDeque<(Instant, bool)>,
    /// Requests sent before the oldest in `sent`.
    forgotten: usize,
    next_send: Instant,
    started: Instant,
    last_sent: Instant,
    rtt: RttStats,
    header_printed: bool,
    done: Option<Verdict>,
}

impl Ping {
    pub fn new<D: NetDevice>(
        net: &mut NetIf<D>,
        cfg: PingConfig,
        now: Instant,
    ) -> Result<Ping, PingError> {
        let t = cfg.target;
        if t.is_multicast() || t.is_unspecified() || t.is_broadcast() {
            return Err(PingError::BadTarget(t));
        }
        let ip_mtu = net.phy().capabilities().ip_mtu();
        let (source, version, protocol, header) = match t {
            IpAddress::Ipv4(d) => (
                IpAddress::Ipv4(
                    net.iface
                        .get_source_address_ipv4(&d)
                        .ok_or(PingError::NoSourceAddress)?,
                ),
                IpVersion::Ipv4,
                IpProtocol::Icmp,
                IPV4_HEADER,
            ),
            IpAddress::Ipv6(d) => (
                IpAddress::Ipv6(net.iface.get_source_address_ipv6(&d)),
                IpVersion::Ipv6,
                IpProtocol::Icmpv6,
                IPV6_HEADER,
            ),
        };
        let max = ip_mtu - header - ICMP_HEADER;
        if cfg.size > max {
            return Err(PingError::TooLarge {
                size: cfg.size,
                max,
            });
        }
        let packet = header + ICMP_HEADER + cfg.size;
        let buf = |n: usize| {
            raw::PacketBuffer::new(
                vec![raw::PacketMetadata::EMPTY; n],
                vec![0u8; n * (packet + 64)],
            )
        };
        let socket = raw::Socket::new(Some(version), Some(protocol), buf(RX_PACKETS), buf(2));
        let ident = net.ephemeral_port();
        Ok(Ping {
            cfg,
            socket: Some(net.sockets.add(socket)),
            source,
            ident,
            next_seq: 1,
            transmitted: 0,
            received: 0,
            duplicates: 0,
            sent: VecDeque::new(),
            forgotten: 0,
            next_send: now,
            started: now,
            last_sent: now,
            rtt: RttStats::default(),
            header_printed: false,
            done: None,
        })
    }

    pub fn transmitted(&self) -> u32 {
        self.transmitted
    }

    pub fn received(&self) -> u32 {
        self.received
    }

    pub fn rtt(&self) -> RttStats {
        self.rtt
    }

    fn pattern(i: usize) -> u8 {
        (i as u8).wrapping_add(0x10)
    }

    /// Write the echo request for `seq` as a whole IP packet.
    fn build(&self, seq: u16, buf: &mut [u8]) {
        let caps = ChecksumCapabilities::default();
        let data: Vec<u8> = (0..self.cfg.size).map(Self::pattern).collect();
        match (self.source, self.cfg.target) {
            (IpAddress::Ipv4(src), IpAddress::Ipv4(dst)) => {
                let icmp = Icmpv4Repr::EchoRequest {
                    ident: self.ident,
                    seq_no: seq,
                    data: &data,
                };
                let ip = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: IpProtocol::Icmp,
                    payload_len: icmp.buffer_len(),
                    hop_limit: HOP_LIMIT,
                };
                let mut p = Ipv4Packet::new_unchecked(&mut *buf);
                ip.emit(&mut p, &caps);
                icmp.emit(&mut Icmpv4Packet::new_unchecked(p.payload_mut()), &caps);
            }
            (IpAddress::Ipv6(src), IpAddress::Ipv6(dst)) => {
                let icmp = Icmpv6Repr::EchoRequest {
                    ident: self.ident,
                    seq_no: seq,
                    data: &data,
                };
                let ip = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: IpProtocol::Icmpv6,
                    payload_len: icmp.buffer_len(),
                    hop_limit: HOP_LIMIT,
                };
                let mut p = Ipv6Packet::new_unchecked(&mut *buf);
                ip.emit(&mut p);
                icmp.emit(
                    &src,
                    &dst,
                    &mut Icmpv6Packet::new_unchecked(p.payload_mut()),
                    &caps,
                );
            }
            _ => unreachable!("source chosen from the target's family"),
        }
    }

    fn packet_len(&self) -> usize {
        let header = match self.cfg.target {
            IpAddress::Ipv4(_) => IPV4_HEADER,
            IpAddress::Ipv6(_) => IPV6_HEADER,
        };
        header + ICMP_HEADER + self.cfg.size
    }

    /// An echo reply for us in `packet` (a whole IP packet): (seq, ttl,
    /// data intact).
    fn parse_reply(&self, packet: &[u8]) -> Option<(u16, u8, bool)> {
        let caps = ChecksumCapabilities::default();
        let (ident, seq, data, ttl) = match self.cfg.target {
            IpAddress::Ipv4(target) => {
                let ip = Ipv4Packet::new_checked(packet).ok()?;
                if ip.src_addr() != target {
                    return None;
                }
                let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
                match Icmpv4Repr::parse(&icmp, &caps).ok()? {
                    Icmpv4Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    } => (ident, seq_no, data, ip.hop_limit()),
                    _ => return None,
                }
            }
            IpAddress::Ipv6(target) => {
                let ip = Ipv6Packet::new_checked(packet).ok()?;
                if ip.src_addr() != target {
                    return None;
                }
                let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
                match Icmpv6Repr::parse(&ip.src_addr(), &ip.dst_addr(), &icmp, &caps).ok()? {
                    Icmpv6Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    } => (ident, seq_no, data, ip.hop_limit()),
                    _ => return None,
                }
            }
        };
        if ident != self.ident {
            return None;
        }
        let intact = data.len() == self.cfg.size
            && data.iter().enumerate().all(|(i, &b)| b == Self::pattern(i));
        Some((seq, ttl, intact))
    }

    /// Requests are still to be sent: `-c` not reached, or none given.
    fn more_to_send(&self) -> bool {
        self.cfg.count.is_none_or(|c| self.transmitted < c)
    }

    fn header(&self, out: &mut dyn fmt::Write) {
        let t = self.cfg.target;
        let _ = match t {
            IpAddress::Ipv4(_) => writeln!(
                out,
                "PING {t} ({t}) {}({}) bytes of data.",
                self.cfg.size,
                self.packet_len()
            ),
            IpAddress::Ipv6(_) => writeln!(out, "PING {t} ({t}) {} data bytes", self.cfg.size),
        };
    }

    fn summary(&mut self, out: &mut dyn fmt::Write) -> Verdict {
        let t = self.cfg.target;
        let loss = if self.transmitted == 0 {
            0
        } else {
            (self.transmitted - self.received) as u64 * 100 / self.transmitted as u64
        };
        let _ = writeln!(out, "--- {t} ping statistics ---");
        let mut line = String::new();
        let _ = write!(
            line,
            "{} packets transmitted, {} received, ",
            self.transmitted, self.received
        );
        if self.duplicates > 0 {
            let _ = write!(line, "+{} duplicates, ", self.duplicates);
        }
        let _ = write!(
            line,
            "{loss}% packet loss, time {}ms",
            (self.last_sent - self.started).total_millis()
        );
        let _ = writeln!(out, "{line}");
        if self.rtt.count > 0 {
            let _ = writeln!(
                out,
                "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
                Ms(self.rtt.min_us),
                Ms(self.rtt.avg_us()),
                Ms(self.rtt.max_us),
                Ms(self.rtt.mdev_us())
            );
        }
        // Like a test, not like ping's exit code: every request answered.
        let ok = self.transmitted > 0 && self.received == self.transmitted;
        Verdict { ok, summary: line }
    }

    fn release<D: NetDevice>(&mut self, net: &mut NetIf<D>) {
        if let Some(h) = self.socket.take() {
            net.sockets.remove(h);
        }
    }

    fn finish<D: NetDevice>(&mut self, net: &mut NetIf<D>, out: &mut dyn fmt::Write) -> Verdict {
        if let Some(v) = &self.done {
            return v.clone();
        }
        self.release(net);
        let v = self.summary(out);
        self.done = Some(v.clone());
        v
    }
}

impl<D: NetDevice> App<D> for Ping {
    fn name(&self) -> &str {
        "ping"
    }

    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> AppStatus {
        if let Some(v) = &self.done {
            return AppStatus::Done(v.clone());
        }
        let Some(h) = self.socket else {
            return AppStatus::Done(self.finish(net, out));
        };
        if !self.header_printed {
            self.header(out);
            self.header_printed = true;
        }
        // Replies.
        let mut lines: Vec<(u16, u8, bool)> = Vec::new();
        {
            let s = net.sockets.get_mut::<raw::Socket>(h);
            while let Ok(p) = s.recv() {
                if let Some(r) = self.parse_reply(p) {
                    lines.push(r);
                }
            }
        }
        for (seq, ttl, intact) in lines {
            let Some(slot) = sent_slot(self.forgotten, self.sent.len(), seq) else {
                continue;
            };
            let (at, answered) = self.sent[slot];
            let us = (now - at).total_micros();
            let dup = if answered { " (DUP!)" } else { "" };
            let t = self.cfg.target;
            if !intact {
                let _ = writeln!(
                    out,
                    "{} bytes from {t}: icmp_seq={seq} ttl={ttl} (wrong data)",
                    self.cfg.size + ICMP_HEADER
                );
                continue;
            }
            let _ = writeln!(
                out,
                "{} bytes from {t}: icmp_seq={seq} ttl={ttl} time={} ms{dup}",
                self.cfg.size + ICMP_HEADER,
                Ms(us)
            );
            if answered {
                self.duplicates += 1;
            } else {
                self.sent[slot].1 = true;
                self.received += 1;
                self.rtt.add(us);
            }
        }
        // Requests.
        if self.more_to_send() && now >= self.next_send {
            let len = self.packet_len();
            let seq = self.next_seq as u16;
            let mut buf = vec![0u8; len];
            self.build(seq, &mut buf);
            // A request the socket cannot take (its queue is stuck behind
            // an unresolved neighbour) counts as sent and lost, as a
            // request dropped on the wire would.
            let _ = net.sockets.get_mut::<raw::Socket>(h).send_slice(&buf);
            if self.sent.len() == MATCHED {
                self.sent.pop_front();
                self.forgotten += 1;
            }
            self.sent.push_back((now, false));
            self.transmitted += 1;
            self.next_seq += 1;
            self.last_sent = now;
            self.next_send = now + self.cfg.interval;
        }
        let all_sent = !self.more_to_send();
        let all_back = self.cfg.count.is_some_and(|c| self.received >= c);
        if all_sent && (all_back || now >= self.last_sent + self.cfg.timeout) {
            return AppStatus::Done(self.finish(net, out));
        }
        AppStatus::Running
    }

    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        if self.done.is_some() {
            return None;
        }
        if self.more_to_send() {
            Some(self.next_send)
        } else {
            Some(self.last_sent + self.cfg.timeout)
        }
    }

    fn abort(&mut self, net: &mut NetIf<D>, _now: Instant, out: &mut dyn fmt::Write) -> Verdict {
        self.finish(net, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn arguments_parse_like_ping() {
        let c: PingConfig = "10.0.0.1 -c 3 -i 0.2 -W 1.5 -s 100".parse().unwrap();
        assert_eq!(c.target, IpAddress::v4(10, 0, 0, 1));
        assert_eq!(c.count, Some(3));
        assert_eq!(c.interval, Duration::from_millis(200));
        assert_eq!(c.timeout, Duration::from_millis(1500));
        assert_eq!(c.size, 100);
        let c: PingConfig = "-c 2 fd00::1".parse().unwrap();
        assert_eq!(c.target, IpAddress::Ipv6("fd00::1".parse().unwrap()));
        assert_eq!((c.count, c.size), (Some(2), 56));
        // Without -c it runs until stopped, as iputils' ping does.
        let c: PingConfig = "-s 8 10.0.0.1 -i 0.5".parse().unwrap();
        assert_eq!((c.count, c.size), (None, 8));
    }

    #[test]
    fn bad_arguments_are_typed_errors() {
        let e = |s: &str| s.parse::<PingConfig>().unwrap_err();
        assert_eq!(e(""), PingArgError::MissingTarget);
        assert_eq!(e("-c 3"), PingArgError::MissingTarget);
        assert_eq!(e("10.0.0"), PingArgError::BadTarget("10.0.0".into()));
        assert_eq!(
            e("10.0.0.1 -c 0"),
            PingArgError::BadValue {
                option: "-c",
                value: "0".into()
            }
        );
        assert_eq!(
            e("10.0.0.1 -c"),
            PingArgError::BadValue {
                option: "-c",
                value: "".into()
            }
        );
        assert_eq!(
            e("10.0.0.1 -i 0.0001"),
            PingArgError::BadValue {
                option: "-i",
                value: "0.0001".into()
            }
        );
        assert_eq!(e("10.0.0.1 -f"), PingArgError::UnknownOption("-f".into()));
        assert_eq!(
            e("10.0.0.1 10.0.0.2"),
            PingArgError::Extra("10.0.0.2".into())
        );
    }

    #[test]
    fn replies_match_the_latest_request_of_their_sequence_number() {
        assert_eq!(sent_slot(0, 3, 1), Some(0));
        assert_eq!(sent_slot(0, 3, 3), Some(2));
        assert_eq!(sent_slot(0, 3, 4), None);
        assert_eq!(sent_slot(0, 3, 0), None);
        // Past the wrap: request 65536 went out as sequence 0.
        assert_eq!(sent_slot(0, 65535, 0), None);
        assert_eq!(sent_slot(1, 65535, 0), Some(65534));
        assert_eq!(sent_slot(1, 65535, 1), None, "request 1 is forgotten");
        assert_eq!(sent_slot(1, 65535, 2), Some(0));
        // Long after: 200000 sent, the last 65535 kept.
        let forgotten = 200_000 - MATCHED;
        assert_eq!(
            sent_slot(forgotten, MATCHED, (200_000 % 65536) as u16),
            Some(MATCHED - 1)
        );
    }

    #[test]
    fn times_print_with_pings_precision() {
        assert_eq!(format!("{}", Ms(520)), "0.520");
        assert_eq!(format!("{}", Ms(1_234)), "1.23");
        assert_eq!(format!("{}", Ms(12_345)), "12.3");
        assert_eq!(format!("{}", Ms(123_456)), "123");
    }

    #[test]
    fn rtt_statistics() {
        let mut r = RttStats::default();
        for us in [100, 200, 300] {
            r.add(us);
        }
        assert_eq!((r.min_us, r.avg_us(), r.max_us), (100, 200, 300));
        // sqrt((1e4 + 4e4 + 9e4)/3 - 4e4) = sqrt(6666) = 81
        assert_eq!(r.mdev_us(), 81);
        assert_eq!(isqrt(1 << 40), 1 << 20);
        assert_eq!(parse_secs("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_secs(".5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_secs("1.2345"), None);
        assert_eq!(parse_secs("x"), None);
    }
}
