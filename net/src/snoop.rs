//! `snoop [-c n] [-x]`: one line per received frame, as the stock capture
//! tools print them (`tcpdump -e`): time, source > destination MAC, the
//! VLAN tag, the ethertype and a short summary of ARP, IPv4, IPv6, ICMP,
//! TCP and UDP; `-x` adds the frame in hex. Frames for other MACs reach
//! it only while the interface is promiscuous. Everything is parsed with
//! bounds checks: a short or odd frame prints what could be read.

use alloc::format;
use alloc::string::String;
use core::fmt::{self, Write};
use core::str::FromStr;

use cxos_drivers::net::NetDevice;
use smoltcp::time::Instant;

use crate::app::{App, AppStatus, Verdict};
use crate::netif::NetIf;

/// Frames the capture queue holds between two polls.
const QUEUE: usize = 256;

/// `snoop` arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnoopConfig {
    /// Stop after this many frames (default: until interrupted).
    pub count: Option<u32>,
    pub hex: bool,
}

impl FromStr for SnoopConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut cfg = SnoopConfig::default();
        let mut words = s.split_whitespace();
        while let Some(w) = words.next() {
            match w {
                "-x" => cfg.hex = true,
                "-c" => {
                    let n = words.next().ok_or("option -c needs a count")?;
                    cfg.count = Some(
                        n.parse::<u32>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| format!("'{n}' is not a frame count"))?,
                    );
                }
                other => {
                    return Err(format!(
                        "unexpected argument '{other}' (snoop [-I <if>] [-c n] [-x])"
                    ));
                }
            }
        }
        Ok(cfg)
    }
}

fn mac(b: &[u8]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ipv4(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

fn ipv6(b: &[u8]) -> String {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    format!("{}", core::net::Ipv6Addr::from(a))
}

/// The transport summary of protocol `proto` carried in `l4`.
fn transport(out: &mut String, proto: u8, src: &str, dst: &str, l4: &[u8]) {
    let port = |at| be16(l4, at).unwrap_or(0);
    let _ = match proto {
        1 | 58 if !l4.is_empty() => {
            let name = match (proto, l4[0]) {
                (1, 8) | (58, 128) => "echo request",
                (1, 0) | (58, 129) => "echo reply",
                (58, 135) => "neighbor solicitation",
                (58, 136) => "neighbor advertisement",
                (58, 133) => "router solicitation",
                _ => "",
            };
            let icmp = if proto == 1 { "ICMP" } else { "ICMP6" };
            if name.is_empty() {
                write!(out, "{src} > {dst}: {icmp} type {}", l4[0])
            } else if l4[0] == 8 || l4[0] == 0 || l4[0] == 128 || l4[0] == 129 {
                write!(
                    out,
                    "{src} > {dst}: {icmp} {name}, id {}, seq {}, length {}",
                    port(4),
                    port(6),
                    l4.len()
                )
            } else {
                write!(out, "{src} > {dst}: {icmp} {name}")
            }
        }
        6 if l4.len() >= 20 => {
            let flags = l4[13];
            let mut f = String::new();
            for (bit, c) in [
                (0x02, 'S'),
                (0x01, 'F'),
                (0x04, 'R'),
                (0x08, 'P'),
                (0x10, '.'),
            ] {
                if flags & bit != 0 {
                    f.push(c);
                }
            }
            let data = l4.len().saturating_sub(usize::from(l4[12] >> 4) * 4);
            write!(
                out,
                "{src}.{} > {dst}.{}: TCP [{f}], length {data}",
                port(0),
                port(2)
            )
        }
        17 if l4.len() >= 8 => write!(
            out,
            "{src}.{} > {dst}.{}: UDP, length {}",
            port(0),
            port(2),
            l4.len() - 8
        ),
        p => write!(out, "{src} > {dst}: protocol {p}"),
    };
}

/// One frame as a line (no time, no newline).
pub fn summary(f: &[u8]) -> String {
    let mut out = String::new();
    if f.len() < 14 {
        let _ = write!(out, "truncated frame, length {}", f.len());
        return out;
    }
    let _ = write!(out, "{} > {}", mac(&f[6..12]), mac(&f[..6]));
    let mut at = 12;
    let mut ty = be16(f, at).unwrap_or(0);
    if ty == 0x8100
        && let Some(tci) = be16(f, at + 2)
    {
        let _ = write!(out, ", vlan {}", tci & 0x0fff);
        at += 4;
        ty = be16(f, at).unwrap_or(0);
    }
    let l3 = f.get(at + 2..).unwrap_or(&[]);
    let _ = write!(out, ", length {}: ", f.len());
    match ty {
        0x0806 if l3.len() >= 28 => {
            let _ = match be16(l3, 6) {
                Some(1) => write!(
                    out,
                    "ARP, Request who-has {} tell {}",
                    ipv4(&l3[24..]),
                    ipv4(&l3[14..])
                ),
                Some(2) => write!(
                    out,
                    "ARP, Reply {} is-at {}",
                    ipv4(&l3[14..]),
                    mac(&l3[8..])
                ),
                _ => write!(out, "ARP"),
            };
        }
        0x0800 if l3.len() >= 20 && l3[0] >> 4 == 4 => {
            let hl = usize::from(l3[0] & 0xf) * 4;
            let total = usize::from(be16(l3, 2).unwrap_or(0)).min(l3.len());
            let l4 = l3.get(hl..total).unwrap_or(&[]);
            out.push_str("IPv4 ");
            transport(&mut out, l3[9], &ipv4(&l3[12..]), &ipv4(&l3[16..]), l4);
        }
        0x86dd if l3.len() >= 40 => {
            let len = usize::from(be16(l3, 4).unwrap_or(0));
            let l4 = l3.get(40..(40 + len).min(l3.len())).unwrap_or(&[]);
            out.push_str("IPv6 ");
            transport(&mut out, l3[6], &ipv6(&l3[8..]), &ipv6(&l3[24..]), l4);
        }
        t => {
            let _ = write!(out, "ethertype {t:#06x}");
        }
    }
    out
}

/// The capture app.
#[derive(Debug)]
pub struct Snoop {
    cfg: SnoopConfig,
    seen: u32,
    done: Option<Verdict>,
}

impl Snoop {
    /// Start capturing on `net` (frames received from now on).
    pub fn new<D: NetDevice>(net: &mut NetIf<D>, cfg: SnoopConfig) -> Snoop {
        net.phy_mut().snoop_open(QUEUE);
        Snoop {
            cfg,
            seen: 0,
            done: None,
        }
    }

    fn finish<D: NetDevice>(&mut self, net: &mut NetIf<D>, out: &mut dyn fmt::Write) -> Verdict {
        if let Some(v) = &self.done {
            return v.clone();
        }
        let dropped = net.phy_mut().snoop_close();
        let v = Verdict::pass(format!("{} frames captured, {dropped} dropped", self.seen));
        let _ = writeln!(out, "{}", v.summary);
        self.done = Some(v.clone());
        v
    }
}

impl<D: NetDevice> App<D> for Snoop {
    fn name(&self) -> &str {
        "snoop"
    }

    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> AppStatus {
        if let Some(v) = &self.done {
            return AppStatus::Done(v.clone());
        }
        let us = now.total_micros().max(0);
        while self.cfg.count.is_none_or(|c| self.seen < c) {
            let hex = self.cfg.hex;
            let printed = net.phy_mut().snoop_next(|f| {
                let _ = writeln!(
                    out,
                    "{}.{:06} {}",
                    us / 1_000_000,
                    us % 1_000_000,
                    summary(f)
                );
                if hex {
                    for (i, row) in f.chunks(16).enumerate() {
                        let _ = write!(out, "\t0x{:04x}:", 16 * i);
                        for b in row {
                            let _ = write!(out, " {b:02x}");
                        }
                        let _ = writeln!(out);
                    }
                }
            });
            if printed.is_none() {
                break;
            }
            self.seen += 1;
        }
        if self.cfg.count.is_some_and(|c| self.seen >= c) {
            return AppStatus::Done(self.finish(net, out));
        }
        AppStatus::Running
    }

    fn abort(&mut self, net: &mut NetIf<D>, _now: Instant, out: &mut dyn fmt::Write) -> Verdict {
        self.finish(net, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn arguments() {
        assert_eq!("".parse::<SnoopConfig>(), Ok(SnoopConfig::default()));
        assert_eq!(
            "-x -c 5".parse::<SnoopConfig>(),
            Ok(SnoopConfig {
                count: Some(5),
                hex: true
            })
        );
        assert!("-c 0".parse::<SnoopConfig>().is_err());
        assert!("-v".parse::<SnoopConfig>().unwrap_err().contains("'-v'"));
    }

    #[test]
    fn frames_summarised_by_hand() {
        // An ICMP echo request 10.0.0.1 -> 10.0.0.2 with VLAN 5.
        #[rustfmt::skip]
        let mut f: Vec<u8> = alloc::vec![
            0x02, 0, 0, 0, 0xbe, 0xef,   // destination
            0x02, 0, 0, 0, 0, 0x01,      // source
            0x81, 0x00, 0x00, 0x05,      // 802.1Q, VID 5
            0x08, 0x00,                  // IPv4
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, // ver/ihl, total 28, ttl, ICMP
            10, 0, 0, 1, 10, 0, 0, 2,    // addresses
            8, 0, 0, 0, 0, 7, 0, 3,      // echo request, id 7, seq 3
        ];
        assert_eq!(
            summary(&f),
            "02:00:00:00:00:01 > 02:00:00:00:be:ef, vlan 5, length 46: IPv4 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 3, length 8"
        );
        // ARP request, untagged.
        #[rustfmt::skip]
        let arp: Vec<u8> = alloc::vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06,
            0, 1, 0x08, 0, 6, 4, 0, 1,   // Ethernet/IPv4, request
            0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1,
            0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ];
        assert!(summary(&arp).ends_with("ARP, Request who-has 10.0.0.2 tell 10.0.0.1"));
        // Truncated in the IPv4 header, and shorter than Ethernet.
        f.truncate(30);
        assert!(summary(&f).ends_with("ethertype 0x0800"));
        assert_eq!(summary(&[1, 2, 3]), "truncated frame, length 3");
        for n in 0..f.len() {
            let _ = summary(&f[..n]);
        }
    }
}
