//! Failover time from two ports' captures (issue 19's figure): for each
//! TCP flow that was on the failed port just before the cut and moved to
//! the other, the time from its last frame on the failed port to its
//! first frame on the other. Frames are read from classic pcap files
//! (pcap-savefile(5)) as the model writes them ([`crate::sim_device::SimOptions::test_capture`]:
//! cut to 160 bytes, which keeps Ethernet, a VLAN tag and the IPv4 and
//! TCP headers); [`records`] is the pcap reader the system tests share.

use std::collections::BTreeMap;

/// One direction of a TCP flow: source and destination IPv4 address and
/// port.
pub type Flow = ([u8; 4], u16, [u8; 4], u16);

/// One record of a classic pcap file: capture time (seconds and
/// microseconds since the epoch) and the captured bytes.
pub struct Record<'a> {
    pub sec: u32,
    pub usec: u32,
    pub frame: &'a [u8],
}

/// The records of a classic microsecond pcap file (pcap-savefile(5)): a
/// 24-byte header starting with magic a1b2c3d4 in the writer's byte
/// order, then per frame a 16-byte record header (ts_sec, ts_usec,
/// incl_len, orig_len) and the frame. A truncated last record (the
/// capture's ceiling) ends them.
pub fn records(pcap: &[u8]) -> Result<impl Iterator<Item = Record<'_>>, String> {
    let magic = pcap
        .get(..4)
        .ok_or("not a pcap file: shorter than its header")?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] => false,
        _ => return Err(format!("not a microsecond pcap file: magic {magic:02x?}")),
    };
    let word = move |at: usize| -> Option<u32> {
        let b: [u8; 4] = pcap.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let mut at = 24;
    Ok(std::iter::from_fn(move || {
        let (sec, usec, caplen) = (word(at)?, word(at + 4)?, word(at + 8)?);
        let start = at + 16;
        let frame = pcap.get(start..start + caplen as usize)?;
        at = start + caplen as usize;
        Some(Record { sec, usec, frame })
    }))
}

/// A frame's capture time (seconds since the epoch) and its flow, for
/// the TCP-over-IPv4 frames sent by `src` (a MAC) in `pcap`.
pub fn tcp_frames(pcap: &[u8], src: [u8; 6]) -> Result<Vec<(f64, Flow)>, String> {
    Ok(records(pcap)?
        .filter(|r| r.frame.get(6..12) == Some(&src[..]))
        .filter_map(|r| {
            let flow = tcp_flow(r.frame)?;
            Some((f64::from(r.sec) + f64::from(r.usec) / 1e6, flow))
        })
        .collect())
}

/// The flow of an Ethernet frame carrying TCP over IPv4, tagged or not.
fn tcp_flow(frame: &[u8]) -> Option<Flow> {
    // EtherType at 12; an 802.1Q tag (0x8100) moves it 4 bytes on.
    let mut l3 = 14;
    let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
        l3 = 18;
    }
    let ip = frame.get(l3..)?;
    // IPv4 (RFC 791): version/IHL at 0, protocol at 9 (6: TCP), source
    // at 12, destination at 16.
    if ethertype != 0x0800 || ip.first()? >> 4 != 4 || *ip.get(9)? != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let tcp = ip.get(ihl..ihl + 4)?;
    Some((
        ip.get(12..16)?.try_into().ok()?,
        u16::from_be_bytes([tcp[0], tcp[1]]),
        ip.get(16..20)?.try_into().ok()?,
        u16::from_be_bytes([tcp[2], tcp[3]]),
    ))
}

/// Failover per flow: the flows with a frame on the failed port in the
/// `window` seconds before `cut` and none on the other port in that
/// window (the ones that had to move), each with the time from its last
/// frame on the failed port before `cut` to its first frame on the other
/// at or after `cut` (`None`: it never came back there).
pub fn moved_flows(
    failed: &[(f64, Flow)],
    other: &[(f64, Flow)],
    cut: f64,
    window: f64,
) -> BTreeMap<Flow, Option<f64>> {
    let mut last_on_failed: BTreeMap<Flow, f64> = BTreeMap::new();
    for &(t, f) in failed
        .iter()
        .filter(|(t, _)| *t < cut && *t >= cut - window)
    {
        let e = last_on_failed.entry(f).or_insert(t);
        *e = e.max(t);
    }
    for (_, f) in other.iter().filter(|(t, _)| *t < cut && *t >= cut - window) {
        last_on_failed.remove(f);
    }
    last_on_failed
        .into_iter()
        .map(|(f, last)| {
            let back = other
                .iter()
                .filter(|(t, g)| *g == f && *t >= cut)
                .map(|(t, _)| *t)
                .reduce(f64::min);
            (f, back.map(|b| b - last))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CXOS: [u8; 6] = [0x0c, 0x42, 0xa1, 0x5e, 0x00, 0x12];

    /// A record (16-byte header: ts_sec, ts_usec, incl_len, orig_len,
    /// little-endian) holding a frame from `src`: Ethernet with an
    /// optional 802.1Q tag, IPv4 (IHL 5) from 10.19.0.2 to 10.19.0.1 with
    /// `proto`, then the TCP (or other) ports.
    fn record(sec: u32, usec: u32, src: [u8; 6], vlan: bool, proto: u8, sport: u16) -> Vec<u8> {
        let mut f = vec![0x52, 0x54, 0x00, 0x19, 0x00, 0x01];
        f.extend(src);
        if vlan {
            // 12: TPID 0x8100, 14: TCI (VLAN 19).
            f.extend([0x81, 0x00, 0x00, 19]);
        }
        // EtherType IPv4.
        f.extend([0x08, 0x00]);
        // 0: version 4, IHL 5; 2: total length; 8: TTL 64, 9: protocol;
        // 12: source 10.19.0.2; 16: destination 10.19.0.1.
        f.extend([0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0]);
        f.extend([10, 19, 0, 2, 10, 19, 0, 1]);
        // TCP source port, destination port 5201 (0x1451).
        f.extend(sport.to_be_bytes());
        f.extend([0x14, 0x51]);
        let mut r = Vec::new();
        for w in [sec, usec, f.len() as u32, f.len() as u32] {
            r.extend(w.to_le_bytes());
        }
        r.extend(f);
        r
    }

    fn pcap(records: &[Vec<u8>]) -> Vec<u8> {
        // Magic a1b2c3d4 little-endian, version 2.4, snaplen 160, linktype 1.
        let mut p = vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 1, 0, 0, 0,
        ];
        for r in records {
            p.extend(r);
        }
        p
    }

    #[test]
    fn tcp_frames_are_read_by_source_tagged_or_not() {
        let other = [0x02, 0, 0, 0, 0, 9];
        let p = pcap(&[
            record(100, 500_000, CXOS, false, 6, 40000),
            record(101, 0, CXOS, true, 6, 40002),
            record(101, 0, CXOS, false, 17, 40004),
            record(102, 0, other, false, 6, 40006),
        ]);
        let frames = tcp_frames(&p, CXOS).unwrap();
        let flow = |port| ([10, 19, 0, 2], port, [10, 19, 0, 1], 5201);
        assert_eq!(frames, vec![(100.5, flow(40000)), (101.0, flow(40002))]);
        // A truncated last record ends the file.
        let mut cut = p.clone();
        cut.extend([0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0, 1, 2]);
        assert_eq!(tcp_frames(&cut, CXOS).unwrap().len(), 2);
        assert!(tcp_frames(&[0u8; 24], CXOS).is_err());
    }

    #[test]
    fn only_flows_that_moved_count() {
        let f = |port| ([10, 19, 0, 2], port, [10, 19, 0, 1], 5201u16);
        // Flow 1 on the failed port until 9.9, back on the other at 10.4;
        // flow 2 was on the other port all along; flow 3 never came back;
        // flow 4 was on the failed port long before the window.
        let failed = vec![(9.5, f(1)), (9.9, f(1)), (9.8, f(3)), (5.0, f(4))];
        let other = vec![(9.7, f(2)), (10.1, f(2)), (10.4, f(1)), (10.6, f(1))];
        let moved = moved_flows(&failed, &other, 10.0, 1.0);
        assert_eq!(moved.len(), 2);
        assert!((moved[&f(1)].unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(moved[&f(3)], None);
    }
}
