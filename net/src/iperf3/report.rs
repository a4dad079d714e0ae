//! Console output like iperf3's (units, summary lines) and the one-line
//! JSON summary for scripts.

use alloc::string::String;
use core::fmt::{self, Write};

use super::Iperf3Error;
use super::engine::Engine;
use super::json::ObjectWriter;
use super::proto::{Protocol, Results};

/// Prefix of the machine-readable summary line.
pub const JSON_LINE_PREFIX: &str = "iperf3-json: ";

/// Which end of the test this report describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// The outcome of one finished test, from the point of view of `role`.
#[derive(Clone, Debug, PartialEq)]
pub struct Iperf3Report {
    pub role: Role,
    pub protocol: Protocol,
    /// Server sends, client receives.
    pub reverse: bool,
    pub streams: u32,
    /// Bytes the sending side wrote, and the seconds it sent for.
    pub sent_bytes: u64,
    pub sender_seconds: f64,
    /// Bytes the receiving side counted, and the seconds it received for.
    pub received_bytes: u64,
    pub receiver_seconds: f64,
    pub sender_bits_per_second: f64,
    pub receiver_bits_per_second: f64,
    /// TCP retransmits as reported by the sender (0: none or unknown).
    pub retransmits: u64,
    /// UDP: datagrams sent, datagrams the receiver found missing, receiver jitter.
    pub packets: u64,
    pub lost_packets: u64,
    pub jitter_ms: f64,
}

impl Iperf3Report {
    /// The summary as one JSON object (also printed after [`JSON_LINE_PREFIX`]).
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        ObjectWriter::new(&mut s)
            .str("role", role_name(self.role))
            .str("protocol", proto_name(self.protocol))
            .bool("reverse", self.reverse)
            .int("streams", i64::from(self.streams))
            .int("sent_bytes", clamp(self.sent_bytes))
            .float("sender_seconds", self.sender_seconds)
            .int("received_bytes", clamp(self.received_bytes))
            .float("receiver_seconds", self.receiver_seconds)
            .float("sender_bits_per_second", self.sender_bits_per_second)
            .float("receiver_bits_per_second", self.receiver_bits_per_second)
            .int("retransmits", clamp(self.retransmits))
            .int("packets", clamp(self.packets))
            .int("lost_packets", clamp(self.lost_packets))
            .fixed("jitter_ms", self.jitter_ms, 6)
            .null("error")
            .finish();
        s
    }
}

/// The JSON line for a test that failed.
pub fn error_json(role: Role, error: &Iperf3Error) -> String {
    let mut msg = String::new();
    let _ = write!(msg, "{error}");
    let mut s = String::new();
    ObjectWriter::new(&mut s)
        .str("role", role_name(role))
        .str("error", &msg)
        .finish();
    s
}

fn clamp(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Client => "client",
        Role::Server => "server",
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// A loss percentage as iperf3 prints it: "0%", "0.12%", "12%".
pub(crate) struct Percent(pub f64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        if p <= 0.0 {
            write!(f, "0%")
        } else if p < 10.0 {
            write!(f, "{p:.2}%")
        } else {
            write!(f, "{p:.0}%")
        }
    }
}

/// A value in iperf3's adaptive style: 2 decimals below 10, 1 below 100, none above.
struct Scaled(f64, &'static str);

impl fmt::Display for Scaled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v < 9.995 {
            write!(f, "{v:4.2} {}", self.1)
        } else if v < 99.95 {
            write!(f, "{v:4.1} {}", self.1)
        } else {
            write!(f, "{v:4.0} {}", self.1)
        }
    }
}

/// `v` in the largest unit of powers of `k` that it reaches; `units` are
/// the names of `k`^0 to `k`^3.
fn scaled(v: f64, k: f64, units: [&'static str; 4]) -> Scaled {
    let [one, kilo, mega, giga] = units;
    if v >= k * k * k {
        Scaled(v / (k * k * k), giga)
    } else if v >= k * k {
        Scaled(v / (k * k), mega)
    } else if v >= k {
        Scaled(v / k, kilo)
    } else {
        Scaled(v, one)
    }
}

/// Bytes in 1024-based units ("1.09 GBytes", " 112 MBytes").
pub fn fmt_bytes(b: f64) -> impl fmt::Display {
    scaled(b, 1024.0, ["Bytes", "KBytes", "MBytes", "GBytes"])
}

/// A bit rate in 1000-based units (" 940 Mbits/sec").
pub fn fmt_bits_per_sec(bps: f64) -> impl fmt::Display {
    scaled(
        bps,
        1000.0,
        ["bits/sec", "Kbits/sec", "Mbits/sec", "Gbits/sec"],
    )
}

fn rate(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 * 8.0 / secs
    } else {
        0.0
    }
}

/// The start of a summary line: label (a stream's number or "SUM"),
/// interval, transfer and bitrate of `bytes` in `secs`.
fn write_span(out: &mut dyn Write, label: &dyn fmt::Display, secs: f64, bytes: u64) {
    let _ = write!(
        out,
        "[{:>3}] {:6.2}-{:<6.2} sec  {}  {}",
        label,
        0.0,
        secs,
        fmt_bytes(bytes as f64),
        fmt_bits_per_sec(rate(bytes, secs))
    );
}

/// Prints iperf3's end-of-test summary (a sender and a receiver line per
/// stream, plus [SUM] lines with several streams) and returns the report.
/// `local` are this side's results, `peer` what the other side sent.
pub fn summarize(
    role: Role,
    reverse: bool,
    engine: &Engine,
    local: &Results,
    peer: &Results,
    out: &mut dyn Write,
) -> Iperf3Report {
    let udp = engine.protocol == Protocol::Udp;
    let _ = writeln!(out, "- - - - - - - - - - - - - - - - - - - - - - - - -");
    if udp {
        let _ = writeln!(
            out,
            "[ ID] Interval           Transfer     Bitrate         Jitter    Lost/Total Datagrams"
        );
    } else {
        let _ = writeln!(
            out,
            "[ ID] Interval           Transfer     Bitrate         Retr"
        );
    }
    let mut r = Iperf3Report {
        role,
        protocol: engine.protocol,
        reverse,
        streams: engine.streams.len() as u32,
        sent_bytes: 0,
        sender_seconds: 0.0,
        received_bytes: 0,
        receiver_seconds: 0.0,
        sender_bits_per_second: 0.0,
        receiver_bits_per_second: 0.0,
        retransmits: 0,
        packets: 0,
        lost_packets: 0,
        jitter_ms: 0.0,
    };
    for (st, mine) in engine.streams.iter().zip(&local.streams) {
        let theirs = peer.streams.iter().find(|p| p.id == mine.id);
        let (snd, rcv) = if engine.sending {
            (Some(mine), theirs)
        } else {
            (theirs, Some(mine))
        };
        if let Some(s) = snd {
            let secs = s.end_time - s.start_time;
            r.sent_bytes = r.sent_bytes.saturating_add(s.bytes);
            r.sender_seconds = r.sender_seconds.max(secs);
            r.retransmits = r
                .retransmits
                .saturating_add(u64::try_from(s.retransmits).unwrap_or(0));
            r.packets = r
                .packets
                .saturating_add(u64::try_from(s.packets).unwrap_or(0));
            write_span(out, &st.label, secs, s.bytes);
            let _ = if udp {
                writeln!(out, "  {:.3} ms  0/{} (0%)  sender", 0.0, s.packets)
            } else if s.retransmits >= 0 {
                writeln!(out, "  {:>4}             sender", s.retransmits)
            } else {
                writeln!(out, "                  sender")
            };
        }
        if let Some(d) = rcv {
            let secs = d.end_time - d.start_time;
            r.received_bytes = r.received_bytes.saturating_add(d.bytes);
            r.receiver_seconds = r.receiver_seconds.max(secs);
            r.lost_packets = r
                .lost_packets
                .saturating_add(u64::try_from(d.errors).unwrap_or(0));
            r.jitter_ms = r.jitter_ms.max(d.jitter * 1000.0);
            write_span(out, &st.label, secs, d.bytes);
            let _ = if udp {
                let total = snd.map_or(d.packets, |s| s.packets.max(d.packets));
                let pct = if total > 0 {
                    d.errors as f64 * 100.0 / total as f64
                } else {
                    0.0
                };
                writeln!(
                    out,
                    "  {:.3} ms  {}/{} ({})  receiver",
                    d.jitter * 1000.0,
                    d.errors,
                    total,
                    Percent(pct)
                )
            } else {
                writeln!(out, "                  receiver")
            };
        }
    }
    r.sender_bits_per_second = rate(r.sent_bytes, r.sender_seconds);
    r.receiver_bits_per_second = rate(r.received_bytes, r.receiver_seconds);
    if engine.streams.len() > 1 {
        write_span(out, &"SUM", r.sender_seconds, r.sent_bytes);
        let _ = writeln!(out, "                  sender");
        write_span(out, &"SUM", r.receiver_seconds, r.received_bytes);
        let _ = writeln!(out, "                  receiver");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn units_like_iperf3() {
        assert_eq!(format!("{}", fmt_bytes(117_440_512.0)), " 112 MBytes");
        assert_eq!(format!("{}", fmt_bytes(1_170_378_588.0)), "1.09 GBytes");
        assert_eq!(format!("{}", fmt_bytes(132_096.0)), " 129 KBytes");
        assert_eq!(format!("{}", fmt_bytes(12.0)), "12.0 Bytes");
        assert_eq!(
            format!("{}", fmt_bits_per_sec(940_000_000.0)),
            " 940 Mbits/sec"
        );
        assert_eq!(
            format!("{}", fmt_bits_per_sec(1_050_000.0)),
            "1.05 Mbits/sec"
        );
        assert_eq!(
            format!("{}", fmt_bits_per_sec(25_300_000_000.0)),
            "25.3 Gbits/sec"
        );
    }

    #[test]
    fn json_summary_fields() {
        let r = Iperf3Report {
            role: Role::Client,
            protocol: Protocol::Udp,
            reverse: false,
            streams: 1,
            sent_bytes: 1000,
            sender_seconds: 2.0,
            received_bytes: 900,
            receiver_seconds: 2.0,
            sender_bits_per_second: 4000.0,
            receiver_bits_per_second: 3600.0,
            retransmits: 0,
            packets: 10,
            lost_packets: 1,
            jitter_ms: 0.25,
        };
        assert_eq!(
            r.to_json(),
            r#"{"role":"client","protocol":"udp","reverse":false,"streams":1,"sent_bytes":1000,"sender_seconds":2,"received_bytes":900,"receiver_seconds":2,"sender_bits_per_second":4000,"receiver_bits_per_second":3600,"retransmits":0,"packets":10,"lost_packets":1,"jitter_ms":0.250000,"error":null}"#
        );
    }
}
