//! Packet generator and sink below the stack, for measuring the driver's
//! packet path: `pktgen` transmits frames as fast as the device takes
//! them ([`NetDevice::transmit_burst`], one doorbell per burst) and
//! `pktsink` receives and drops ([`NetDevice::receive_burst`]); both
//! report packets per second and Gbit/s of frame bytes (without FCS,
//! preamble and gap).
//!
//! `pktgen [-s size] [-c count] [-t seconds] [-b batch] [--dst mac]`
//! (the interface with the apps' `-I`): frames of `size` bytes (default
//! 60, Linux pktgen's `pkt_size`), ethertype 0x88B6 (IEEE 802 local
//! experimental 2: not the raw L2 test's), a 32-bit sequence number after
//! the header; `count` frames (0: no limit; the default 0 runs `-t`),
//! for at most `seconds` (default 10 when no count is given), in bursts
//! of `batch` (default 32), to `mac` (default broadcast).
//!
//! `pktsink [-c count] [-t seconds]`: takes every frame the interface
//! receives (the stack sees none meanwhile: [`NetIf::set_rx_bypass`])
//! until `count` frames arrived or `seconds` passed (default 10).

use alloc::string::String;
use core::fmt::{self, Write};
use core::str::FromStr;

use cxos_drivers::net::{NetDevice, TxError, TxMeta};
use smoltcp::time::{Duration, Instant};

use crate::app::{App, AppStatus, Verdict};
use crate::netif::{Mac, NetIf};
use crate::ping::parse_secs;

/// The generator's ethertype (IEEE 802 local experimental ethertype 2).
pub const PKTGEN_ETHERTYPE: u16 = 0x88b6;
/// Ethernet header and sequence number.
const MIN_FRAME: usize = 18;
/// The largest burst (the rings have more entries than this).
const MAX_BATCH: usize = 256;

/// Why pktgen / pktsink arguments were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: &str, v: &str) -> ArgError {
    ArgError(alloc::format!("bad {what} '{v}'"))
}

/// `pktgen` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PktGenConfig {
    pub size: usize,
    /// 0: no limit.
    pub count: u64,
    /// None: no limit (a count was given).
    pub time: Option<Duration>,
    pub batch: usize,
    pub dst: Mac,
}

impl FromStr for PktGenConfig {
    type Err = ArgError;

    fn from_str(s: &str) -> Result<Self, ArgError> {
        let mut cfg = PktGenConfig {
            size: 60,
            count: 0,
            time: None,
            batch: 32,
            dst: Mac([0xff; 6]),
        };
        let mut w = s.split_whitespace();
        while let Some(x) = w.next() {
            let mut value = |what: &str| {
                w.next()
                    .ok_or_else(|| ArgError(alloc::format!("option {x} needs {what}")))
            };
            match x {
                "-s" => {
                    let v = value("a size")?;
                    cfg.size = v.parse().map_err(|_| bad("size", v))?;
                }
                "-c" => {
                    let v = value("a count")?;
                    cfg.count = v.parse().map_err(|_| bad("count", v))?;
                }
                "-t" => {
                    let v = value("seconds")?;
                    cfg.time = Some(
                        parse_secs(v)
                            .filter(|d| d.total_millis() > 0)
                            .ok_or_else(|| bad("time", v))?,
                    );
                }
                "-b" => {
                    let v = value("a batch")?;
                    cfg.batch = v
                        .parse()
                        .ok()
                        .filter(|b| (1..=MAX_BATCH).contains(b))
                        .ok_or_else(|| bad("batch (1..=256)", v))?;
                }
                "--dst" => {
                    let v = value("a MAC")?;
                    cfg.dst = v.parse().map_err(|_| bad("MAC", v))?;
                }
                other => return Err(ArgError(alloc::format!("unexpected '{other}'"))),
            }
        }
        if cfg.count == 0 && cfg.time.is_none() {
            cfg.time = Some(Duration::from_secs(10));
        }
        Ok(cfg)
    }
}

/// `pktsink` arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PktSinkConfig {
    /// 0: no limit.
    pub count: u64,
    pub time: Duration,
}

impl FromStr for PktSinkConfig {
    type Err = ArgError;

    fn from_str(s: &str) -> Result<Self, ArgError> {
        let mut cfg = PktSinkConfig {
            count: 0,
            time: Duration::from_secs(10),
        };
        let mut w = s.split_whitespace();
        while let Some(x) = w.next() {
            let v = match x {
                "-c" | "-t" => w
                    .next()
                    .ok_or_else(|| ArgError(alloc::format!("option {x} needs a value")))?,
                other => return Err(ArgError(alloc::format!("unexpected '{other}'"))),
            };
            if x == "-c" {
                cfg.count = v.parse().map_err(|_| bad("count", v))?;
            } else {
                cfg.time = parse_secs(v)
                    .filter(|d| d.total_millis() > 0)
                    .ok_or_else(|| bad("time", v))?;
            }
        }
        Ok(cfg)
    }
}

/// Packets per second and Gbit/s of `frames` frames of `bytes` bytes in
/// `elapsed`.
fn rate(frames: u64, bytes: u64, elapsed: Duration) -> (u64, f64) {
    let us = elapsed.total_micros().max(1);
    let pps = frames * 1_000_000 / us;
    let gbps = (bytes * 8) as f64 / (us as f64 * 1000.0);
    (pps, gbps)
}

/// The generator.
#[derive(Debug)]
pub struct PktGen {
    cfg: PktGenConfig,
    sent: u64,
    busy: u64,
    started: Option<Instant>,
    done: Option<Verdict>,
}

impl PktGen {
    pub fn new<D: NetDevice>(net: &NetIf<D>, cfg: PktGenConfig) -> Result<PktGen, ArgError> {
        let max = net.device().mtu() + 14;
        if cfg.size < MIN_FRAME || cfg.size > max {
            return Err(ArgError(alloc::format!(
                "frame size {} outside {MIN_FRAME}..={max}",
                cfg.size
            )));
        }
        Ok(PktGen {
            cfg,
            sent: 0,
            busy: 0,
            started: None,
            done: None,
        })
    }

    fn finish(&mut self, now: Instant, ok: bool, why: &str, out: &mut dyn Write) -> Verdict {
        if let Some(v) = &self.done {
            return v.clone();
        }
        let elapsed = now - self.started.unwrap_or(now);
        let (pps, gbps) = rate(self.sent, self.sent * self.cfg.size as u64, elapsed);
        let s = alloc::format!(
            "pktgen: sent {} frames of {} bytes in {}.{:03} s: {pps} pps, {gbps:.3} Gbit/s (ring full {} times){why}",
            self.sent,
            self.cfg.size,
            elapsed.secs(),
            elapsed.millis() % 1000,
            self.busy
        );
        let _ = writeln!(out, "{s}");
        let v = Verdict { ok, summary: s };
        self.done = Some(v.clone());
        v
    }
}

impl<D: NetDevice> App<D> for PktGen {
    fn name(&self) -> &str {
        "pktgen"
    }

    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn Write) -> AppStatus {
        if let Some(v) = &self.done {
            return AppStatus::Done(v.clone());
        }
        let start = *self.started.get_or_insert(now);
        let (src, dst, size) = (net.mac(), self.cfg.dst.0, self.cfg.size);
        let dev = net.device_mut();
        dev.poll();
        // Bursts until the ring is full or the run is over; the time is
        // looked at once per poll (the caller's clock).
        let over = |sent: u64| self.cfg.count != 0 && sent >= self.cfg.count;
        for _ in 0..64 {
            if over(self.sent) {
                break;
            }
            let left = if self.cfg.count == 0 {
                self.cfg.batch
            } else {
                (self.cfg.count - self.sent).min(self.cfg.batch as u64) as usize
            };
            let base = self.sent;
            let r = dev.transmit_burst(left, size, TxMeta::default(), |i, f| {
                f[0..6].copy_from_slice(&dst);
                f[6..12].copy_from_slice(&src);
                f[12..14].copy_from_slice(&PKTGEN_ETHERTYPE.to_be_bytes());
                f[14..18].copy_from_slice(&((base + i as u64) as u32).to_be_bytes());
            });
            match r {
                Ok(n) => {
                    self.sent += n as u64;
                    if n < left {
                        self.busy += 1;
                        dev.poll();
                        break;
                    }
                }
                Err(TxError::Busy) => {
                    self.busy += 1;
                    break;
                }
                Err(e) => {
                    let why = alloc::format!(": {e}");
                    return AppStatus::Done(self.finish(now, false, &why, out));
                }
            }
        }
        let timed_out = self.cfg.time.is_some_and(|t| now - start >= t);
        if over(self.sent) || timed_out {
            return AppStatus::Done(self.finish(now, true, "", out));
        }
        AppStatus::Running
    }

    fn poll_at(&self, now: Instant) -> Option<Instant> {
        self.done.is_none().then_some(now)
    }

    fn abort(&mut self, _net: &mut NetIf<D>, now: Instant, out: &mut dyn Write) -> Verdict {
        self.finish(now, false, " (interrupted)", out)
    }
}

/// The sink.
#[derive(Debug)]
pub struct PktSink {
    cfg: PktSinkConfig,
    got: u64,
    bytes: u64,
    started: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    done: Option<Verdict>,
}

impl PktSink {
    /// Start taking every frame `net` receives (the stack gets none until
    /// the sink is done).
    pub fn new<D: NetDevice>(net: &mut NetIf<D>, cfg: PktSinkConfig, now: Instant) -> PktSink {
        net.set_rx_bypass(true);
        PktSink {
            cfg,
            got: 0,
            bytes: 0,
            started: now,
            first: None,
            last: None,
            done: None,
        }
    }

    fn finish(&mut self, ok: bool, why: &str, out: &mut dyn Write) -> Verdict {
        if let Some(v) = &self.done {
            return v.clone();
        }
        // The rate over the time frames were arriving.
        let elapsed = match (self.first, self.last) {
            (Some(a), Some(b)) => b - a,
            _ => Duration::ZERO,
        };
        let (pps, gbps) = rate(self.got, self.bytes, elapsed);
        let s = alloc::format!(
            "pktsink: received {} frames ({} bytes) in {}.{:03} s: {pps} pps, {gbps:.3} Gbit/s{why}",
            self.got,
            self.bytes,
            elapsed.secs(),
            elapsed.millis() % 1000
        );
        let _ = writeln!(out, "{s}");
        let v = Verdict { ok, summary: s };
        self.done = Some(v.clone());
        v
    }
}

impl<D: NetDevice> App<D> for PktSink {
    fn name(&self) -> &str {
        "pktsink"
    }

    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn Write) -> AppStatus {
        if let Some(v) = &self.done {
            return AppStatus::Done(v.clone());
        }
        let dev = net.device_mut();
        let mut bytes = 0u64;
        let mut n = 0u64;
        for _ in 0..64 {
            let k = dev.receive_burst(MAX_BATCH, |f| bytes += f.len() as u64);
            n += k as u64;
            if k == 0 {
                break;
            }
        }
        if n > 0 {
            self.first.get_or_insert(now);
            self.last = Some(now);
            self.got += n;
            self.bytes += bytes;
        }
        let counted = self.cfg.count != 0 && self.got >= self.cfg.count;
        if counted || now - self.started >= self.cfg.time {
            net.set_rx_bypass(false);
            return AppStatus::Done(self.finish(true, "", out));
        }
        AppStatus::Running
    }

    fn poll_at(&self, now: Instant) -> Option<Instant> {
        self.done.is_none().then_some(now)
    }

    fn abort(&mut self, net: &mut NetIf<D>, _now: Instant, out: &mut dyn Write) -> Verdict {
        net.set_rx_bypass(false);
        self.finish(false, " (interrupted)", out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_in_any_order_with_linux_like_defaults() {
        let d: PktGenConfig = "".parse().unwrap();
        assert_eq!(
            (d.size, d.count, d.time, d.batch, d.dst),
            (60, 0, Some(Duration::from_secs(10)), 32, Mac([0xff; 6]))
        );
        let a: PktGenConfig = "-s 64 -c 1000 -b 16 --dst 02:00:00:00:00:01"
            .parse()
            .unwrap();
        let b: PktGenConfig = "--dst 02:00:00:00:00:01 -b 16 -c 1000 -s 64"
            .parse()
            .unwrap();
        assert_eq!(a, b);
        assert_eq!((a.size, a.count, a.time, a.batch), (64, 1000, None, 16));
        assert_eq!(a.dst, Mac([2, 0, 0, 0, 0, 1]));
        let t: PktGenConfig = "-t 2.5".parse().unwrap();
        assert_eq!(t.time, Some(Duration::from_millis(2500)));
        for bad in ["-s", "-s x", "-b 0", "-b 257", "--dst 1:2", "-t 0", "-x"] {
            assert!(bad.parse::<PktGenConfig>().is_err(), "{bad}");
        }
        let s: PktSinkConfig = "-t 3 -c 50".parse().unwrap();
        assert_eq!((s.count, s.time), (50, Duration::from_secs(3)));
        assert_eq!("".parse::<PktSinkConfig>().unwrap().count, 0);
        assert!("-c".parse::<PktSinkConfig>().is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(
            rate(1000, 64_000, Duration::from_millis(500)),
            (2000, 0.001024)
        );
    }
}
