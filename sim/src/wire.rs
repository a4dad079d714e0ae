//! The function's Ethernet port seen from the wire: frames the transmit
//! engine sends wait in an outbox until the front end carries them to the
//! peer port (or to the test's `take_tx` log), and the port's own counters.
//!
//! Frame buffers are recycled: the transmit engine gathers into a buffer
//! from the pool, the front end hands the buffers back after delivery, so
//! steady traffic allocates nothing.
#![deny(unsafe_code)]

use std::time::{Duration, Instant};

/// Most frames waiting in the outbox; more are dropped and counted (a front
/// end that never drains, like vfio-user without a network, stays bounded).
pub const OUTBOX_MAX: usize = 4096;
/// Most spare buffers kept.
const POOL_MAX: usize = 4096;

/// Port counters, as the model's port saw the traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames put on the wire (link up).
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames sent while the link was down (lost, as on a cable pull).
    pub tx_dropped_link_down: u64,
    /// Frames dropped because the outbox was full.
    pub tx_dropped_outbox_full: u64,
    /// Frames that arrived at the port from the wire.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames delivered into a receive WQE.
    pub rx_delivered: u64,
    /// No flow table entry (or no root table) for the destination MAC.
    pub rx_dropped_no_steering: u64,
    /// Steered to an RQ with no posted WQE (also in the RQ's Q counter).
    pub rx_dropped_no_wqe: u64,
    /// Steered to an RQ that is not ready (RST or ERR).
    pub rx_dropped_rq_not_ready: u64,
    /// Arrived while the link was down.
    pub rx_dropped_link_down: u64,
    /// Shorter than an Ethernet header or longer than the port's maximum.
    pub rx_dropped_bad_length: u64,
    /// Frames longer than the PMTU operational MTU (FCS included): the
    /// MAC drops them (PPCNT a_frame_too_long_errors).
    pub rx_dropped_too_long: u64,
    /// The receive WQE could not take the frame (error CQE written).
    pub rx_dropped_wqe_error: u64,
    /// LSO WQEs executed (their segments count in `tx_frames`).
    pub tx_lso_sends: u64,
    /// ENHANCED_MPSW WQEs executed (each a session of frames).
    pub tx_empw_sessions: u64,
    /// Legacy MPW WQEs executed (each a session of equal-length frames).
    pub tx_mpw_sessions: u64,
    /// Compressed CQE sessions written (a title and mini-CQE arrays).
    pub rx_compressed_sessions: u64,
    /// Completion events of CQs with moderation (`cq_period` or
    /// `cq_max_count` set): each stands for one or more CQEs.
    pub cq_moderated_events: u64,
    /// BlueFlame writes that matched the WQE in memory, and that did not
    /// (also sanitizer violations).
    pub tx_bf_doorbells: u64,
    pub tx_bf_mismatches: u64,
    /// Not accepted by the vport's address filter (unicast not its own
    /// nor in its list without promisc_uc, multicast not in its list without
    /// promisc_mc).
    pub rx_dropped_vport_filter: u64,
    /// Dropped by a flow table entry whose action is DROP.
    pub rx_dropped_by_rule: u64,
    /// Of `tx_frames` / `rx_frames`: multicast (group bit set, not
    /// broadcast) and broadcast destinations.
    pub tx_multicast: u64,
    pub tx_broadcast: u64,
    pub rx_multicast: u64,
    pub rx_broadcast: u64,
    /// Arrived frames by length with the FCS the model does not carry
    /// (RFC 2819 buckets: 64, 65-127, 128-255, 256-511, 512-1023,
    /// 1024-1518, 1519-2047, 2048-4095, 4096-8191, 8192-10239 octets; runts
    /// count in the first).
    pub rx_sizes: [u64; 10],
    /// Times the operational state went down.
    pub link_down_events: u64,
}

/// Destination class of a frame: (multicast, broadcast) by its first bytes.
pub fn dest_class(frame: &[u8]) -> (bool, bool) {
    match frame.get(..6) {
        Some(d) if d == [0xff; 6] => (false, true),
        Some(d) if d[0] & 1 != 0 => (true, false),
        _ => (false, false),
    }
}

/// RFC 2819 length bucket of a frame of `len` bytes without FCS.
pub fn size_bucket(len: usize) -> usize {
    const TOPS: [usize; 9] = [64, 127, 255, 511, 1023, 1518, 2047, 4095, 8191];
    let with_fcs = len + 4;
    TOPS.iter().position(|t| with_fcs <= *t).unwrap_or(9)
}

/// A pause in transmit work at least this long ends a [`TxPeriod`].
pub const IDLE_GAP: Duration = Duration::from_millis(100);

/// A stretch of transmit work without a pause of [`IDLE_GAP`]: the frames
/// the engine processed (sent or dropped), the engine's own time on them,
/// and the wall time from the start of its first run to the end of its
/// last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxPeriod {
    pub frames: u64,
    pub busy: Duration,
    pub span: Duration,
    start: Option<Instant>,
    end: Option<Instant>,
}

impl TxPeriod {
    /// Frames per second of the span (0 for an empty one).
    pub fn rate(&self) -> f64 {
        per_second(self.frames, self.span)
    }

    /// Frames per second of the engine's busy time: what the model could
    /// have sent had it never waited for the driver.
    pub fn capacity(&self) -> f64 {
        per_second(self.frames, self.busy)
    }
}

fn per_second(frames: u64, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        frames as f64 / d.as_secs_f64()
    }
}

/// The transmit engine's own clock (its packet rate, for benchmarks that
/// must show the model was not the bottleneck): two clock reads per run of
/// the engine (one doorbell's work), none per frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct TxClock {
    pub frames: u64,
    pub busy: Duration,
    current: TxPeriod,
    peak: TxPeriod,
}

impl TxClock {
    /// The engine ran from `start` to `end` and processed `frames`
    /// (runs that processed none do not count).
    pub fn ran(&mut self, start: Instant, end: Instant, frames: u64) {
        if frames == 0 {
            return;
        }
        let busy = end.saturating_duration_since(start);
        self.frames += frames;
        self.busy += busy;
        let c = &mut self.current;
        if c.end
            .is_some_and(|e| start.saturating_duration_since(e) >= IDLE_GAP)
        {
            if c.frames > self.peak.frames {
                self.peak = *c;
            }
            *c = TxPeriod::default();
        }
        let first = *c.start.get_or_insert(start);
        c.frames += frames;
        c.busy += busy;
        c.end = Some(end);
        c.span = end.saturating_duration_since(first);
    }

    /// The period with the most frames so far (the current one included).
    pub fn peak(&self) -> TxPeriod {
        if self.current.frames > self.peak.frames {
            self.current
        } else {
            self.peak
        }
    }
}

#[derive(Debug, Default)]
pub struct Wire {
    pub stats: PortStats,
    pub clock: TxClock,
    /// Frames handed to [`Wire::send`] (sent or dropped): the engine's
    /// work, for [`TxClock`].
    pub processed: u64,
    out: Vec<Vec<u8>>,
    pool: Vec<Vec<u8>>,
}

impl Wire {
    /// An empty buffer for the next frame. Fresh buffers start empty and
    /// grow to the frames they carry, so the pool's footprint follows the
    /// traffic (a burst of small frames costs small buffers).
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Put `frame` on the wire (or count it lost).
    pub fn send(&mut self, frame: Vec<u8>, link_up: bool) {
        self.processed += 1;
        if !link_up {
            self.stats.tx_dropped_link_down += 1;
            self.recycle_one(frame);
        } else if self.out.len() >= OUTBOX_MAX {
            self.stats.tx_dropped_outbox_full += 1;
            self.recycle_one(frame);
        } else {
            self.stats.tx_frames += 1;
            self.stats.tx_bytes += frame.len() as u64;
            let (mc, bc) = dest_class(&frame);
            self.stats.tx_multicast += mc as u64;
            self.stats.tx_broadcast += bc as u64;
            self.out.push(frame);
        }
    }

    /// A buffer the engine did not send after all.
    pub fn recycle_one(&mut self, frame: Vec<u8>) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(frame);
        }
    }

    pub fn has_outgoing(&self) -> bool {
        !self.out.is_empty()
    }

    /// Move the waiting frames to the end of `into` (no allocation once
    /// `into` has grown to the batch size).
    pub fn take_outgoing(&mut self, into: &mut Vec<Vec<u8>>) {
        into.append(&mut self.out);
    }

    /// Take back delivered buffers (draining `from`).
    pub fn recycle(&mut self, from: &mut Vec<Vec<u8>>) {
        for b in from.drain(..) {
            self.recycle_one(b);
        }
    }

    /// Forget frames in flight (teardown keeps the counters).
    pub fn clear_outgoing(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        self.recycle(&mut out);
        self.out = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tx_clock_keeps_the_busiest_stretch() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut c = TxClock::default();
        // A few frames at boot, a pause, the run (two doorbells 1 ms
        // apart), a pause, a few frames again.
        c.ran(ms(0), ms(1), 3);
        c.ran(ms(500), ms(502), 100);
        c.ran(ms(503), ms(504), 60);
        c.ran(ms(503), ms(503), 0);
        c.ran(ms(900), ms(901), 2);
        let p = c.peak();
        assert_eq!(p.frames, 160);
        assert_eq!(p.span, Duration::from_millis(4));
        assert_eq!(p.busy, Duration::from_millis(3));
        assert_eq!(p.rate(), 40_000.0);
        assert!((p.capacity() - 160.0 / 0.003).abs() < 1e-6);
        assert_eq!((c.frames, c.busy), (165, Duration::from_millis(5)));
        assert_eq!(TxPeriod::default().rate(), 0.0);
    }

    #[test]
    fn every_frame_handed_to_the_wire_counts_as_processed() {
        let mut w = Wire::default();
        let b = w.buffer();
        w.send(b, true);
        let b = w.buffer();
        w.send(b, false);
        assert_eq!(w.processed, 2);
        assert_eq!(w.stats.tx_frames, 1);
    }

    #[test]
    fn buffers_are_recycled_and_the_outbox_is_bounded() {
        let mut w = Wire::default();
        let mut b = w.buffer();
        b.extend_from_slice(&[1, 2, 3]);
        w.send(b, true);
        let mut batch = Vec::new();
        w.take_outgoing(&mut batch);
        assert_eq!(batch, vec![vec![1, 2, 3]]);
        w.recycle(&mut batch);
        assert!(w.buffer().is_empty());
        for _ in 0..OUTBOX_MAX + 2 {
            let b = w.buffer();
            w.send(b, true);
        }
        assert_eq!(w.stats.tx_dropped_outbox_full, 2);
        let b = w.buffer();
        w.send(b, false);
        assert_eq!(w.stats.tx_dropped_link_down, 1);
    }
}
