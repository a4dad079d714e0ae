//! Raw L2 test below IP: `l2send <mac> <n>` transmits `n` frames of the
//! experimental ethertype 0x88B5 carrying a sequence number; `l2recv`
//! counts what arrives and reports received / lost / out-of-order.
//!
//! Frame: Ethernet header, then `CXL2` (4 bytes), run id (be32, the same
//! for one l2send), sequence number (be32, from 0), frame count of the run
//! (be32), then a pattern derived from the sequence number up to the
//! frame size.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::str::FromStr;

use cxos_drivers::net::{NetDevice, TxError};
use smoltcp::time::{Duration, Instant};

use crate::app::{App, AppStatus, Verdict};
use crate::netif::{Mac, NetIf};
use crate::phy::{ETH_HEADER, L2_TEST_ETHERTYPE};
use crate::ping::parse_secs;

const MAGIC: [u8; 4] = *b"CXL2";
/// Ethernet header + magic + run + seq + count.
pub const L2_HEADER: usize = ETH_HEADER + 16;
/// Smallest frame (Ethernet minimum without FCS).
pub const L2_MIN_FRAME: usize = 60;
/// Frames sent per poll (then the interface gets its turn).
const SEND_BATCH: u32 = 64;
/// Frames the receive queue holds between polls.
const RECV_QUEUE: usize = 1024;
/// Largest run l2recv tracks frame by frame.
pub const L2_MAX_COUNT: u32 = 1 << 24;

fn pattern(seq: u32, i: usize) -> u8 {
    (seq as usize ^ i).wrapping_mul(31) as u8
}

/// `l2send` arguments: `<mac> <n> [-s frame_bytes]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2SendConfig {
    pub dst: Mac,
    pub count: u32,
    /// Whole frame length without FCS (default 64).
    pub size: usize,
}

/// `l2recv` arguments: `[n] [-W idle_s]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2RecvConfig {
    /// Stop once this many distinct frames arrived (default: the count
    /// the frames announce).
    pub expect: Option<u32>,
    /// Stop after this long without a frame (default 2 s; before the
    /// first frame 5 times as long).
    pub idle: Duration,
}

impl Default for L2RecvConfig {
    fn default() -> Self {
        L2RecvConfig {
            expect: None,
            idle: Duration::from_secs(2),
        }
    }
}

/// Why l2send / l2recv arguments were rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L2ArgError {
    BadMac(String),
    BadCount(String),
    BadSize(String),
    BadIdle(String),
    MissingArgument(&'static str),
    Unexpected(String),
    /// The frame size does not fit between the header and the MTU.
    SizeOutOfRange {
        size: usize,
        min: usize,
        max: usize,
    },
}

impl fmt::Display for L2ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            L2ArgError::BadMac(s) => write!(f, "'{s}' is not a MAC address"),
            L2ArgError::BadCount(s) => {
                write!(f, "'{s}' is not a frame count (1..={L2_MAX_COUNT})")
            }
            L2ArgError::BadSize(s) => write!(f, "'{s}' is not a frame size"),
            L2ArgError::BadIdle(s) => write!(f, "'{s}' is not a time in seconds"),
            L2ArgError::MissingArgument(a) => write!(f, "missing {a}"),
            L2ArgError::Unexpected(s) => write!(f, "unexpected argument '{s}'"),
            L2ArgError::SizeOutOfRange { size, min, max } => {
                write!(f, "frame size {size} outside {min}..={max}")
            }
        }
    }
}

fn parse_count(s: &str) -> Result<u32, L2ArgError> {
    s.parse()
        .ok()
        .filter(|n| (1..=L2_MAX_COUNT).contains(n))
        .ok_or_else(|| L2ArgError::BadCount(s.to_string()))
}

impl FromStr for L2SendConfig {
    type Err = L2ArgError;

    fn from_str(s: &str) -> Result<Self, L2ArgError> {
        let mut w = s.split_whitespace();
        let mut dst = None;
        let mut count = None;
        let mut size = 64;
        while let Some(x) = w.next() {
            match x {
                "-s" => {
                    let v = w.next().ok_or(L2ArgError::MissingArgument("frame size"))?;
                    size = v.parse().map_err(|_| L2ArgError::BadSize(v.into()))?;
                }
                _ if dst.is_none() => {
                    dst = Some(x.parse::<Mac>().map_err(|_| L2ArgError::BadMac(x.into()))?)
                }
                _ if count.is_none() => count = Some(parse_count(x)?),
                _ => return Err(L2ArgError::Unexpected(x.into())),
            }
        }
        Ok(L2SendConfig {
            dst: dst.ok_or(L2ArgError::MissingArgument("destination MAC"))?,
            count: count.ok_or(L2ArgError::MissingArgument("frame count"))?,
            size,
        })
    }
}

impl FromStr for L2RecvConfig {
    type Err = L2ArgError;

    fn from_str(s: &str) -> Result<Self, L2ArgError> {
        let mut w = s.split_whitespace();
        let mut cfg = L2RecvConfig::default();
        while let Some(x) = w.next() {
            match x {
                "-W" => {
                    let v = w.next().ok_or(L2ArgError::MissingArgument("idle time"))?;
                    cfg.idle = parse_secs(v)
                        .filter(|d| d.total_millis() > 0)
                        .ok_or_else(|| L2ArgError::BadIdle(v.into()))?;
                }
                _ if cfg.expect.is_none() => cfg.expect = Some(parse_count(x)?),
                _ => return Err(L2ArgError::Unexpected(x.into())),
            }
        }
        Ok(cfg)
    }
}

/// The sender.
#[derive(Debug)]
pub struct L2Send {
    cfg: L2SendConfig,
    run: u32,
    sent: u32,
    busy: u64,
    started: Option<Instant>,
    done: Option<Verdict>,
}

impl L2Send {
    /// `run` tells this run's frames from another's (any number; the
    /// kernel uses its clock).
    pub fn new<D: NetDevice>(
        net: &NetIf<D>,
        cfg: L2SendConfig,
        run: u32,
    ) -> Result<L2Send, L2ArgError> {
        let max = net.device().mtu() + ETH_HEADER;
        if cfg.size < L2_MIN_FRAME || cfg.size > max {
            return Err(L2ArgError::SizeOutOfRange {
                size: cfg.size,
                min: L2_MIN_FRAME,
                max,
            });
        }
        Ok(L2Send {
            cfg,
            run,
            sent: 0,
            busy: 0,
            started: None,
            done: None,
        })
    }

    pub fn sent(&self) -> u32 {
        self.sent
    }

    fn finish(&mut self, ok: bool, out: &mut dyn fmt::Write, why: &str) -> Verdict {
        if let Some(v) = &self.done {
            return v.clone();
        }
        let mut s = String::new();
        let _ = write!(
            s,
            "l2send: sent {} of {} frames of {} bytes to {}{why}",
            self.sent, self.cfg.count, self.cfg.size, self.cfg.dst
        );
        let _ = writeln!(out, "{s}");
        let v = Verdict { ok, summary: s };
        self.done = Some(v.clone());
        v
    }
}

impl<D: NetDevice> App<D> for L2Send {
    fn name(&self) -> &str {
        "l2send"
    }

    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> AppStatus {
        if let Some(v) = &self.done {
            return AppStatus::Done(v.clone());
        }
        self.started.get_or_insert(now);
        let src = net.mac();
        let (dst, size, count, run) = (self.cfg.dst.0, self.cfg.size, self.cfg.count, self.run);
        let phy = net.phy_mut();
        for _ in 0..SEND_BATCH {
            if self.sent == count {
                break;
            }
            let seq = self.sent;
            let r = phy.transmit_raw(size, |b| {
                b[0..6].copy_from_slice(&dst);
                b[6..12].copy_from_slice(&src);
                b[12..14].copy_from_slice(&L2_TEST_ETHERTYPE.to_be_bytes());
                b[14..18].copy_from_slice(&MAGIC);
                b[18..22].copy_from_slice(&run.to_be_bytes());
                b[22..26].copy_from_slice(&seq.to_be_bytes());
                b[26..30].copy_from_slice(&count.to_be_bytes());
                for (i, x) in b[L2_HEADER..].iter_mut().enumerate() {
                    *x = pattern(seq, i);
                }
            });
            match r {
                Ok(()) => self.sent += 1,
                Err(TxError::Busy) => {
                    self.busy += 1;
                    break;
                }
                Err(e) => {
                    phy.flush();
                    let why = alloc::format!(": {e}");
                    return AppStatus::Done(self.finish(false, out, &why));
                }
            }
        }
        phy.flush();
        if self.sent == count {
            return AppStatus::Done(self.finish(true, out, ""));
        }
        AppStatus::Running
    }

    fn poll_at(&self, now: Instant) -> Option<Instant> {
        // More to send: as soon as the ring has room.
        (self.done.is_none()).then_some(now)
    }

    fn abort(&mut self, _net: &mut NetIf<D>, _now: Instant, out: &mut dyn fmt::Write) -> Verdict {
        self.finish(false, out, " (interrupted)")
    }
}

/// What l2recv counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L2RecvStats {
    /// Distinct frames of the run.
    pub received: u32,
    /// The run's announced frame count (0: nothing received).
    pub expected: u32,
    /// Frames that arrived after a higher sequence number.
    pub out_of_order: u32,
    pub duplicates: u32,
    /// Frames with a bad magic, length, sequence number or pattern.
    pub corrupt: u32,
    /// Frames of another run than the first one seen.
    pub foreign: u32,
}

impl L2RecvStats {
    pub fn lost(&self) -> u32 {
        self.expected.saturating_sub(self.received)
    }
}

/// The receiver.
#[derive(Debug)]
pub struct L2Recv {
    cfg: L2RecvConfig,
    stats: L2RecvStats,
    run: Option<u32>,
    from: Mac,
    highest: Option<u32>,
    seen: Vec<u64>,
    started: Instant,
    last_frame: Option<Instant>,
    done: Option<Verdict>,
}

impl L2Recv {
    /// Start listening (frames of 0x88B5 are queued from now on).
    pub fn new<D: NetDevice>(net: &mut NetIf<D>, cfg: L2RecvConfig, now: Instant) -> L2Recv {
        net.phy_mut().l2_open(RECV_QUEUE);
        L2Recv {
            cfg,
            stats: L2RecvStats::default(),
            run: None,
            from: Mac([0; 6]),
            highest: None,
            seen: Vec::new(),
            started: now,
            last_frame: None,
            done: None,
        }
    }

    pub fn stats(&self) -> L2RecvStats {
        self.stats
    }

    fn take(&mut self, f: &[u8]) {
        let be = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
        if f.len() < L2_HEADER || f[14..18] != MAGIC {
            self.stats.corrupt += 1;
            return;
        }
        let (run, seq, count) = (be(18), be(22), be(26));
        if count == 0 || count > L2_MAX_COUNT || seq >= count {
            self.stats.corrupt += 1;
            return;
        }
        match self.run {
            None => {
                self.run = Some(run);
                self.stats.expected = count;
                self.from = Mac([f[6], f[7], f[8], f[9], f[10], f[11]]);
                self.seen = vec![0; count.div_ceil(64) as usize];
            }
            Some(r) if r != run || count != self.stats.expected => {
                self.stats.foreign += 1;
                return;
            }
            Some(_) => {}
        }
        let intact = f[L2_HEADER..]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(seq, i));
        if !intact {
            self.stats.corrupt += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen[word] & (1 << bit) != 0 {
            self.stats.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.stats.received += 1;
        match self.highest {
            Some(h) if seq < h => self.stats.out_of_order += 1,
            _ => self.highest = Some(seq),
        }
    }

    fn finish<D: NetDevice>(&mut self, net: &mut NetIf<D>, out: &mut dyn fmt::Write) -> Verdict {
        if let Some(v) = &self.done {
            return v.clone();
        }
        net.phy_mut().l2_close();
        let s = self.stats;
        let mut line = String::new();
        if s.expected == 0 {
            line.push_str("l2recv: no frames received");
        } else {
            let _ = write!(
                line,
                "l2recv: received {} of {} frames from {}, lost {}, out-of-order {}, duplicates {}, corrupt {}",
                s.received,
                s.expected,
                self.from,
                s.lost(),
                s.out_of_order,
                s.duplicates,
                s.corrupt
            );
        }
        if s.foreign > 0 {
            let _ = write!(line, ", other runs {}", s.foreign);
        }
        let _ = writeln!(out, "{line}");
        let want = self.cfg.expect.unwrap_or(s.expected);
        let ok = s.expected > 0 && s.received >= want && s.corrupt == 0 && s.duplicates == 0;
        let v = Verdict { ok, summary: line };
        self.done = Some(v.clone());
        v
    }

    fn idle_limit(&self) -> Instant {
        match self.last_frame {
            Some(t) => t + self.cfg.idle,
            None => self.started + self.cfg.idle * 5,
        }
    }
}

impl<D: NetDevice> App<D> for L2Recv {
    fn name(&self) -> &str {
        "l2recv"
    }

    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> AppStatus {
        if let Some(v) = &self.done {
            return AppStatus::Done(v.clone());
        }
        let mut got = false;
        let mut buf = Vec::new();
        while net
            .phy_mut()
            .l2_next(|f| {
                buf.clear();
                buf.extend_from_slice(f);
            })
            .is_some()
        {
            self.take(&buf);
            got = true;
        }
        if got {
            self.last_frame = Some(now);
        }
        let s = self.stats;
        let target = self.cfg.expect.unwrap_or(s.expected);
        if (s.expected > 0 && s.received >= target) || now >= self.idle_limit() {
            return AppStatus::Done(self.finish(net, out));
        }
        AppStatus::Running
    }

    fn poll_at(&self, _now: Instant) -> Option<Instant> {
        self.done.is_none().then(|| self.idle_limit())
    }

    fn abort(&mut self, net: &mut NetIf<D>, _now: Instant, out: &mut dyn fmt::Write) -> Verdict {
        self.finish(net, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let c: L2SendConfig = "0c:42:a1:5e:00:11 1000 -s 128".parse().unwrap();
        assert_eq!(c.dst, Mac([0x0c, 0x42, 0xa1, 0x5e, 0, 0x11]));
        assert_eq!((c.count, c.size), (1000, 128));
        let c: L2SendConfig = "0c:42:a1:5e:00:11 5".parse().unwrap();
        assert_eq!(c.size, 64);
        let e = |s: &str| s.parse::<L2SendConfig>().unwrap_err();
        assert_eq!(e(""), L2ArgError::MissingArgument("destination MAC"));
        assert_eq!(
            e("0c:42:a1:5e:00:11"),
            L2ArgError::MissingArgument("frame count")
        );
        assert_eq!(
            e("0c:42:a1:5e:00 3"),
            L2ArgError::BadMac("0c:42:a1:5e:00".into())
        );
        assert_eq!(e("0c:42:a1:5e:00:11 0"), L2ArgError::BadCount("0".into()));
        assert_eq!(
            e("0c:42:a1:5e:00:11 3 4"),
            L2ArgError::Unexpected("4".into())
        );
        let r: L2RecvConfig = "100 -W 0.5".parse().unwrap();
        assert_eq!(r.expect, Some(100));
        assert_eq!(r.idle, Duration::from_millis(500));
        assert_eq!("".parse::<L2RecvConfig>().unwrap(), L2RecvConfig::default());
        assert_eq!(
            "-W x".parse::<L2RecvConfig>().unwrap_err(),
            L2ArgError::BadIdle("x".into())
        );
    }
}
