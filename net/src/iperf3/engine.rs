//! The data streams of a running test, shared by client and server: moving
//! bytes through smoltcp sockets, UDP pacing/loss/jitter, interval lines.

use alloc::vec::Vec;
use core::fmt::Write;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpEndpoint;

use super::proto::{Protocol, Results, StreamResult, UdpHeader};
use super::report::{fmt_bits_per_sec, fmt_bytes};

/// Datagrams (or TCP fills) per stream per poll: keeps one poll short.
const BURST: usize = 64;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport {
    Tcp(SocketHandle),
    /// `handle` may be shared by all streams (server) or one per stream (client).
    Udp {
        handle: SocketHandle,
        remote: IpEndpoint,
    },
}

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    bytes: u64,
    /// UDP sender: datagrams sent; receiver: highest packet number seen.
    packets: u64,
    /// UDP receiver: packets missing (iperf3 cnt_error).
    lost: i64,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub id: u32,
    /// The number printed in "[  5]" (iperf3 prints its socket number).
    pub label: u32,
    pub transport: Transport,
    total: Counters,
    at_interval: Counters,
    out_of_order: u64,
    /// Seconds (RFC 1889 estimator, as iperf_udp.c).
    jitter: f64,
    prev_transit: Option<f64>,
}

impl Stream {
    pub fn new(index: usize, transport: Transport) -> Stream {
        Stream {
            id: super::proto::stream_id(index),
            label: 5 + index as u32,
            transport,
            total: Counters::default(),
            at_interval: Counters::default(),
            out_of_order: 0,
            jitter: 0.0,
            prev_transit: None,
        }
    }

    fn udp_received(&mut self, datagram: &[u8], counters_64bit: bool, now: Instant) {
        self.total.bytes += datagram.len() as u64;
        let Some(h) = UdpHeader::read(counters_64bit, datagram) else {
            return;
        };
        let sent = f64::from(h.sec) + f64::from(h.usec) / 1e6;
        let arrived = now.total_micros() as f64 / 1e6;
        let transit = arrived - sent;
        if let Some(prev) = self.prev_transit {
            let d = transit - prev;
            let d = if d < 0.0 { -d } else { d };
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.prev_transit = Some(transit);
        let expected = self.total.packets.saturating_add(1);
        if h.count >= expected {
            if h.count > expected {
                // Saturating: the packet number is the peer's to choose.
                let gap = i64::try_from(h.count - expected).unwrap_or(i64::MAX);
                self.total.lost = self.total.lost.saturating_add(gap);
            }
            self.total.packets = h.count;
        } else {
            self.out_of_order += 1;
            if self.total.lost > 0 {
                self.total.lost -= 1;
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Engine {
    pub protocol: Protocol,
    /// This side sends (client forward, server reverse).
    pub sending: bool,
    pub len: usize,
    /// Bits per second per stream; 0 = unlimited.
    pub rate: u64,
    pub counters_64bit: bool,
    pub streams: Vec<Stream>,
    pub start: Instant,
    last_report: Instant,
    /// Interval lines printed so far.
    reports: u64,
    /// Set when the test ends; data is no longer counted after it.
    pub end: Option<Instant>,
}

impl Engine {
    pub fn new(
        protocol: Protocol,
        sending: bool,
        len: usize,
        rate: u64,
        counters_64bit: bool,
        streams: Vec<Stream>,
        now: Instant,
    ) -> Engine {
        Engine {
            protocol,
            sending,
            len,
            rate,
            counters_64bit,
            streams,
            start: now,
            last_report: now,
            reports: 0,
            end: None,
        }
    }

    pub fn elapsed(&self, now: Instant) -> Duration {
        self.end.unwrap_or(now) - self.start
    }

    /// Bytes a paced stream may have sent by `now`.
    fn allowance(&self, now: Instant) -> u64 {
        let us = (now - self.start).total_micros();
        ((u128::from(self.rate) * u128::from(us)) / 8_000_000).min(u128::from(u64::MAX)) as u64
    }

    /// When pacing next allows a send (None: unpaced or not sending).
    pub fn next_send_at(&self, now: Instant) -> Option<Instant> {
        if !self.sending || self.rate == 0 || self.end.is_some() {
            return None;
        }
        let behind = self
            .streams
            .iter()
            .any(|s| s.total.bytes < self.allowance(now));
        if behind {
            Some(now)
        } else {
            Some(now + Duration::from_millis(1))
        }
    }

    pub fn next_report_at(&self) -> Instant {
        // Fixed one-second boundaries: a late poll does not shift the next.
        self.start + Duration::from_secs(self.reports + 1)
    }

    /// Moves data: sends while the sockets take it (and pacing allows),
    /// receives and discards what arrived. After the end, keeps draining
    /// received data (so the peer is never stuck on a full window) without
    /// counting it.
    pub fn pump(&mut self, sockets: &mut SocketSet<'static>, now: Instant) {
        let counting = self.end.is_none();
        if self.sending {
            if counting {
                self.send(sockets, now);
            }
        } else {
            self.receive(sockets, now, counting);
        }
        if self.sending {
            // A receiver never sends data back, but drain anyway.
            self.receive(sockets, now, false);
        }
    }

    fn send(&mut self, sockets: &mut SocketSet<'static>, now: Instant) {
        let limit = if self.rate == 0 {
            u64::MAX
        } else {
            self.allowance(now)
        };
        let secs = now.total_micros().max(0) as u64;
        let (sec, usec) = ((secs / 1_000_000) as u32, (secs % 1_000_000) as u32);
        let len = self.len;
        let c64 = self.counters_64bit;
        for st in &mut self.streams {
            match st.transport {
                Transport::Tcp(h) => {
                    let s = sockets.get_mut::<tcp::Socket>(h);
                    for _ in 0..2 {
                        let room = limit.saturating_sub(st.total.bytes);
                        if room == 0 || !s.can_send() {
                            break;
                        }
                        // Payload content is irrelevant to iperf3: claim buffer space as is.
                        let n = s
                            .send(|buf| {
                                let n = buf.len().min(room.min(usize::MAX as u64) as usize);
                                (n, n)
                            })
                            .unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        st.total.bytes += n as u64;
                    }
                }
                Transport::Udp { handle, remote } => {
                    let s = sockets.get_mut::<udp::Socket>(handle);
                    for _ in 0..BURST {
                        if st.total.bytes >= limit {
                            break;
                        }
                        let Ok(buf) = s.send(len, remote) else { break };
                        st.total.packets += 1;
                        UdpHeader {
                            sec,
                            usec,
                            count: st.total.packets,
                        }
                        .write(c64, buf);
                        st.total.bytes += len as u64;
                    }
                }
            }
        }
    }

    fn receive(&mut self, sockets: &mut SocketSet<'static>, now: Instant, counting: bool) {
        let c64 = self.counters_64bit;
        let mut done_udp: Vec<SocketHandle> = Vec::new();
        for i in 0..self.streams.len() {
            match self.streams[i].transport {
                Transport::Tcp(h) => {
                    let s = sockets.get_mut::<tcp::Socket>(h);
                    let mut got = 0u64;
                    while s.can_recv() {
                        let n = s.recv(|buf| (buf.len(), buf.len())).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        got += n as u64;
                    }
                    if counting {
                        self.streams[i].total.bytes += got;
                    }
                }
                Transport::Udp { handle, .. } => {
                    // A shared socket is drained once, its datagrams dispatched by sender.
                    if done_udp.contains(&handle) {
                        continue;
                    }
                    done_udp.push(handle);
                    let s = sockets.get_mut::<udp::Socket>(handle);
                    for _ in 0..BURST * 4 {
                        let Ok((data, meta)) = s.recv() else { break };
                        if !counting {
                            continue;
                        }
                        if let Some(st) = self.streams.iter_mut().find(|st| {
                            matches!(st.transport, Transport::Udp { handle: h, remote } if h == handle && remote == meta.endpoint)
                        }) {
                            st.udp_received(data, c64, now);
                        }
                    }
                }
            }
        }
    }

    /// Whether a TCP data connection was reset or closed under the test.
    pub fn stream_lost(&self, sockets: &SocketSet<'static>) -> bool {
        self.end.is_none()
            && self.streams.iter().any(|st| match st.transport {
                Transport::Tcp(h) => {
                    let s = sockets.get::<tcp::Socket>(h);
                    !s.is_open() || (!s.may_recv() && !s.can_recv())
                }
                Transport::Udp { .. } => false,
            })
    }

    /// Prints interval lines for every full second passed.
    pub fn report(&mut self, now: Instant, out: &mut dyn Write) {
        if self.end.is_some() || now < self.next_report_at() {
            return;
        }
        self.reports = (now - self.start).total_millis() / 1000;
        self.interval(now, out);
    }

    /// Ends the test at `now`: the last, partial interval is printed unless
    /// it is too short to mean anything (as iperf3 does).
    pub fn finish(&mut self, now: Instant, out: &mut dyn Write) {
        if self.end.is_some() {
            return;
        }
        if now - self.last_report >= Duration::from_millis(100) {
            self.interval(now, out);
        }
        self.end = Some(now);
    }

    fn interval(&mut self, now: Instant, out: &mut dyn Write) {
        let from = (self.last_report - self.start).total_micros() as f64 / 1e6;
        let to = (now - self.start).total_micros() as f64 / 1e6;
        let secs = to - from;
        let mut sum = Counters::default();
        for st in &mut self.streams {
            let d = Counters {
                bytes: st.total.bytes - st.at_interval.bytes,
                packets: st.total.packets.saturating_sub(st.at_interval.packets),
                lost: st.total.lost.saturating_sub(st.at_interval.lost),
            };
            st.at_interval = st.total;
            sum.bytes += d.bytes;
            sum.packets = sum.packets.saturating_add(d.packets);
            sum.lost = sum.lost.saturating_add(d.lost);
            let _ = write!(out, "[{:>3}] ", st.label);
            interval_line(
                out,
                self.protocol,
                self.sending,
                from,
                to,
                secs,
                d,
                st.jitter,
            );
        }
        if self.streams.len() > 1 {
            let _ = write!(out, "[SUM] ");
            let jitter = self.streams.iter().map(|s| s.jitter).fold(0.0, f64::max);
            interval_line(
                out,
                self.protocol,
                self.sending,
                from,
                to,
                secs,
                sum,
                jitter,
            );
        }
        self.last_report = now;
    }

    /// This side's results object for the exchange.
    pub fn results(&self, now: Instant) -> Results {
        let secs = self.elapsed(now).total_micros() as f64 / 1e6;
        let udp = self.protocol == Protocol::Udp;
        Results {
            sender_has_retransmits: if self.sending { 0 } else { -1 },
            streams: self
                .streams
                .iter()
                .map(|st| StreamResult {
                    id: st.id,
                    bytes: st.total.bytes,
                    retransmits: -1,
                    jitter: if udp && !self.sending { st.jitter } else { 0.0 },
                    errors: if udp && !self.sending {
                        st.total.lost
                    } else {
                        0
                    },
                    packets: if udp { st.total.packets as i64 } else { 0 },
                    start_time: 0.0,
                    end_time: secs,
                })
                .collect(),
        }
    }

    pub fn header(&self, out: &mut dyn Write) {
        let _ = match (self.protocol, self.sending) {
            (Protocol::Udp, true) => {
                writeln!(
                    out,
                    "[ ID] Interval           Transfer     Bitrate         Total Datagrams"
                )
            }
            (Protocol::Udp, false) => writeln!(
                out,
                "[ ID] Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams"
            ),
            (Protocol::Tcp, _) => writeln!(out, "[ ID] Interval           Transfer     Bitrate"),
        };
    }
}

#[allow(clippy::too_many_arguments)]
fn interval_line(
    out: &mut dyn Write,
    protocol: Protocol,
    sending: bool,
    from: f64,
    to: f64,
    secs: f64,
    d: Counters,
    jitter: f64,
) {
    let rate = if secs > 0.0 {
        d.bytes as f64 * 8.0 / secs
    } else {
        0.0
    };
    let _ = write!(
        out,
        "{:6.2}-{:<6.2} sec  {}  {}",
        from,
        to,
        fmt_bytes(d.bytes as f64),
        fmt_bits_per_sec(rate)
    );
    let _ = match (protocol, sending) {
        (Protocol::Tcp, _) => writeln!(out),
        (Protocol::Udp, true) => writeln!(out, "  {}", d.packets),
        (Protocol::Udp, false) => {
            let pct = if d.packets > 0 {
                d.lost as f64 * 100.0 / d.packets as f64
            } else {
                0.0
            };
            writeln!(
                out,
                "  {:.3} ms  {}/{} ({})",
                jitter * 1000.0,
                d.lost,
                d.packets,
                super::report::Percent(pct)
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::iface::SocketStorage;

    fn datagram(count: u64, sent_us: u64) -> [u8; 12] {
        let mut b = [0u8; 12];
        UdpHeader {
            sec: (sent_us / 1_000_000) as u32,
            usec: (sent_us % 1_000_000) as u32,
            count,
        }
        .write(false, &mut b);
        b
    }

    fn stream() -> Stream {
        let mut set = SocketSet::new(alloc::vec![SocketStorage::EMPTY]);
        let h = set.add(udp::Socket::new(
            udp::PacketBuffer::new(alloc::vec![], alloc::vec![]),
            udp::PacketBuffer::new(alloc::vec![], alloc::vec![]),
        ));
        Stream::new(
            0,
            Transport::Udp {
                handle: h,
                remote: IpEndpoint::new(smoltcp::wire::IpAddress::v4(1, 2, 3, 4), 9),
            },
        )
    }

    #[test]
    fn udp_loss_and_reordering_as_iperf_udp_c() {
        let mut st = stream();
        let at = |ms: i64| Instant::from_millis(ms);
        // 1, 2, then 4 (3 missing), then 3 late (no longer missing), then 7 (5, 6 missing).
        for (n, count) in [1u64, 2, 4, 3, 7].into_iter().enumerate() {
            st.udp_received(&datagram(count, 1000 * n as u64), false, at(10 + n as i64));
        }
        assert_eq!(
            (st.total.packets, st.total.lost, st.out_of_order),
            (7, 2, 1)
        );
        assert_eq!(st.total.bytes, 5 * 12);
        // A hostile packet number does not overflow the counters.
        st.udp_received(&datagram(u64::from(u32::MAX), 0), false, at(20));
        assert!(st.total.lost > 4_000_000_000);
        let mut c64 = [0u8; 16];
        UdpHeader {
            sec: 0,
            usec: 0,
            count: u64::MAX,
        }
        .write(true, &mut c64);
        st.udp_received(&c64, true, at(21));
        st.udp_received(&c64, true, at(22));
        assert!(st.total.lost > 0);
        // Truncated datagrams count as bytes only.
        st.udp_received(&[1, 2, 3], false, at(23));
    }

    #[test]
    fn udp_jitter_follows_rfc_1889() {
        let mut st = stream();
        // Constant transit time: no jitter.
        for i in 0..10u64 {
            st.udp_received(
                &datagram(i + 1, i * 1000),
                false,
                Instant::from_micros(500 + i as i64 * 1000),
            );
        }
        assert!(st.jitter < 1e-12, "{}", st.jitter);
        // Transit alternating by 1 ms: J += (|D| - J) / 16 converges to 1 ms.
        let mut st = stream();
        for i in 0..400u64 {
            let extra = if i % 2 == 0 { 0 } else { 1000 };
            st.udp_received(
                &datagram(i + 1, i * 1000),
                false,
                Instant::from_micros((i * 1000 + 500 + extra) as i64),
            );
        }
        assert!((st.jitter - 0.001).abs() < 1e-6, "{}", st.jitter);
    }
}
