//! Packet capture in the classic pcap format (the libpcap file format of
//! tcpdump and Wireshark: a 24-byte global header, then a 16-byte record
//! header before each frame), link type 1 (LINKTYPE_ETHERNET).
//!
//! Records are written whole and flushed after every call, so `tshark -r`
//! or `tcpdump -r` on the file sees them while the model still runs.
#![deny(unsafe_code)]

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The magic number of microsecond-resolution pcap, written in our byte
/// order (readers detect the order from it).
const MAGIC: u32 = 0xa1b2_c3d4;
const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;
/// Most bytes of one frame kept by default; longer frames are cut (orig_len
/// keeps the real length). 64 KiB covers every frame the model carries.
pub const SNAPLEN: u32 = 65_535;
/// LINKTYPE_ETHERNET: frames start with the destination MAC.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Which way a frame went through the port (pcap has no field for it;
/// kept for the counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The port transmitted it.
    Out,
    /// It arrived at the port.
    In,
}

/// How much a capture keeps: tcpdump's `-s snaplen` and a ceiling on the
/// file (a bulk-traffic test at a gigabit would otherwise write gigabytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes kept of each frame (1..=[`SNAPLEN`]; 0 means [`SNAPLEN`], as
    /// tcpdump's `-s 0`).
    pub snaplen: u32,
    /// The file stops growing at this many bytes; later frames are counted
    /// as lost. `None`: no ceiling.
    pub max_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            snaplen: SNAPLEN,
            max_bytes: None,
        }
    }
}

impl Limits {
    fn snaplen(&self) -> u32 {
        match self.snaplen {
            0 => SNAPLEN,
            n => n.min(SNAPLEN),
        }
    }
}

/// An open capture file. Shared by the threads that see frames.
#[derive(Debug)]
pub struct Pcap {
    out: Mutex<Sink>,
}

#[derive(Debug)]
struct Sink {
    w: BufWriter<File>,
    snaplen: u32,
    /// Bytes left before the ceiling (`u64::MAX` without one).
    room: u64,
    records: u64,
    /// A write failed or the ceiling was reached: further records are
    /// dropped (counted), the model goes on.
    failed: bool,
    lost: u64,
}

/// The global header (24 bytes, our byte order) of a capture with the
/// default snap length.
pub fn global_header() -> [u8; 24] {
    global_header_with(SNAPLEN)
}

/// The global header of a capture keeping `snaplen` bytes of each frame.
pub fn global_header_with(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC.to_ne_bytes());
    h[4..6].copy_from_slice(&VERSION_MAJOR.to_ne_bytes());
    h[6..8].copy_from_slice(&VERSION_MINOR.to_ne_bytes());
    // thiszone (8..12) and sigfigs (12..16) are 0.
    h[16..20].copy_from_slice(&snaplen.to_ne_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
    h
}

/// The record header of a frame of `len` bytes seen at `at` (default snap
/// length).
pub fn record_header(at: SystemTime, len: usize) -> [u8; 16] {
    record_header_with(at, len, SNAPLEN)
}

/// The record header of a frame of `len` bytes cut to `snaplen`.
pub fn record_header_with(at: SystemTime, len: usize, snaplen: u32) -> [u8; 16] {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let orig = u32::try_from(len).unwrap_or(u32::MAX);
    let incl = orig.min(snaplen);
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&(since.as_secs() as u32).to_ne_bytes());
    h[4..8].copy_from_slice(&since.subsec_micros().to_ne_bytes());
    h[8..12].copy_from_slice(&incl.to_ne_bytes());
    h[12..16].copy_from_slice(&orig.to_ne_bytes());
    h
}

impl Pcap {
    /// Creates (truncates) `path` and writes the global header; whole
    /// frames, no ceiling.
    pub fn create(path: &Path) -> io::Result<Pcap> {
        Pcap::create_with(path, Limits::default())
    }

    /// Creates (truncates) `path` keeping what `limits` allows.
    pub fn create_with(path: &Path, limits: Limits) -> io::Result<Pcap> {
        let snaplen = limits.snaplen();
        let mut w = BufWriter::with_capacity(64 << 10, File::create(path)?);
        let head = global_header_with(snaplen);
        w.write_all(&head)?;
        w.flush()?;
        Ok(Pcap {
            out: Mutex::new(Sink {
                w,
                snaplen,
                room: limits
                    .max_bytes
                    .map_or(u64::MAX, |m| m.saturating_sub(head.len() as u64)),
                records: 0,
                failed: false,
                lost: 0,
            }),
        })
    }

    /// Records one frame and flushes.
    pub fn record(&self, frame: &[u8], dir: Direction) {
        self.record_all(std::slice::from_ref(&frame), dir);
    }

    /// Records every frame of `frames` (one flush for all of them).
    pub fn record_all<F: AsRef<[u8]>>(&self, frames: &[F], _dir: Direction) {
        let now = SystemTime::now();
        let mut s = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if s.failed {
            s.lost += frames.len() as u64;
            return;
        }
        let mut result = Ok(());
        for (i, f) in frames.iter().enumerate() {
            let f = f.as_ref();
            let head = record_header_with(now, f.len(), s.snaplen);
            let keep = f.len().min(s.snaplen as usize);
            let size = (head.len() + keep) as u64;
            if size > s.room {
                log::warn!(target: "mlx5_sim::pcap", "capture full after {} records", s.records);
                s.failed = true;
                s.lost += (frames.len() - i) as u64;
                break;
            }
            s.room -= size;
            result =
                s.w.write_all(&head)
                    .and_then(|()| s.w.write_all(&f[..keep]));
            if result.is_err() {
                break;
            }
            s.records += 1;
        }
        let result = result.and_then(|()| s.w.flush());
        if let Err(e) = result {
            log::warn!(target: "mlx5_sim::pcap", "capture stopped: {e}");
            s.failed = true;
        }
    }

    /// Frames recorded so far.
    pub fn records(&self) -> u64 {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).records
    }

    /// Frames not recorded because the file could not be written.
    pub fn lost(&self) -> u64 {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).lost
    }
}

/// One record read back from a capture (tests and tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub secs: u32,
    pub micros: u32,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Parses a whole classic pcap file of either byte order; a truncated last
/// record (a writer caught mid-write) is left out.
pub fn parse(bytes: &[u8]) -> Result<(u32, Vec<Record>), String> {
    let head = bytes
        .get(..24)
        .ok_or_else(|| format!("{} bytes: no pcap global header", bytes.len()))?;
    let magic = [head[0], head[1], head[2], head[3]];
    let u32_at = |b: &[u8], at: usize| -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if magic == MAGIC.to_le_bytes() {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    if magic != MAGIC.to_le_bytes() && magic != MAGIC.to_be_bytes() {
        return Err(format!("bad pcap magic {magic:02x?}"));
    }
    let linktype = u32_at(head, 20);
    let mut records = Vec::new();
    let mut at = 24;
    while let Some(h) = bytes.get(at..at + 16) {
        let incl = u32_at(h, 8) as usize;
        let Some(data) = bytes.get(at + 16..at + 16 + incl) else {
            break;
        };
        records.push(Record {
            secs: u32_at(h, 0),
            micros: u32_at(h, 4),
            orig_len: u32_at(h, 12),
            data: data.to_vec(),
        });
        at += 16 + incl;
    }
    Ok((linktype, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn global_header_is_the_libpcap_one() {
        // pcap-savefile(5): magic a1b2c3d4, version 2.4, thiszone 0,
        // sigfigs 0, snaplen, network 1 (LINKTYPE_ETHERNET); little-endian host.
        #[cfg(target_endian = "little")]
        assert_eq!(
            global_header(),
            [
                0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                0x00, 0x00, 0x01, 0x00, 0x00, 0x00
            ]
        );
    }

    #[test]
    fn record_header_has_time_and_lengths() {
        let at = UNIX_EPOCH + Duration::new(0x0102_0304, 5_000);
        #[cfg(target_endian = "little")]
        assert_eq!(
            record_header(at, 60),
            [
                0x04, 0x03, 0x02, 0x01, 0x05, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0
            ]
        );
        // Longer than the snap length: cut, with the original length kept.
        let h = record_header(at, 70_000);
        assert_eq!(u32::from_ne_bytes([h[8], h[9], h[10], h[11]]), SNAPLEN);
        assert_eq!(u32::from_ne_bytes([h[12], h[13], h[14], h[15]]), 70_000);
    }

    #[test]
    fn records_are_readable_while_the_file_is_open() {
        let path = std::env::temp_dir().join(format!("mlx5-sim-pcap-{}.pcap", std::process::id()));
        let p = Pcap::create(&path).unwrap();
        p.record(&[0xff; 60], Direction::Out);
        p.record_all(&[vec![1u8; 14], vec![2u8; 100]], Direction::In);
        // Not dropped, not closed: a reader sees all three now.
        let (linktype, recs) = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(linktype, LINKTYPE_ETHERNET);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].data, vec![0xff; 60]);
        assert_eq!(recs[2].orig_len, 100);
        assert_eq!(p.records(), 3);
        drop(p);
        // A truncated tail is ignored, bad magic refused.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 5);
        assert_eq!(parse(&bytes).unwrap().1.len(), 2);
        assert!(parse(&[0u8; 24]).is_err());
        assert!(parse(&[0u8; 3]).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn snaplen_cuts_frames_and_the_ceiling_stops_the_file() {
        let path =
            std::env::temp_dir().join(format!("mlx5-sim-pcap-lim-{}.pcap", std::process::id()));
        // 24 header bytes + two records of 16 + 64: room for exactly two.
        let p = Pcap::create_with(
            &path,
            Limits {
                snaplen: 64,
                max_bytes: Some(24 + 2 * (16 + 64)),
            },
        )
        .unwrap();
        p.record_all(&[vec![7u8; 1514], vec![8u8; 60]], Direction::Out);
        p.record(&[9u8; 1514], Direction::In);
        p.record(&[9u8; 60], Direction::In);
        let bytes = std::fs::read(&path).unwrap();
        // The global header's snaplen field (offset 16) says 64.
        assert_eq!(
            u32::from_ne_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            64
        );
        let (_, recs) = parse(&bytes).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].data, vec![7u8; 64]);
        assert_eq!(recs[0].orig_len, 1514);
        assert_eq!(recs[1].data, vec![8u8; 60]);
        assert_eq!(bytes.len(), 24 + 16 + 64 + 16 + 60);
        assert_eq!((p.records(), p.lost()), (2, 2));
        std::fs::remove_file(&path).unwrap();
        // snaplen 0 is the default, as tcpdump's -s 0.
        assert_eq!(
            Limits {
                snaplen: 0,
                max_bytes: None
            }
            .snaplen(),
            SNAPLEN
        );
    }
}
