//! Choosing the TSC and local APIC timer rates from several short
//! calibration windows against a reference clock (ACPI PM timer or PIT).
//!
//! Every reference read is bracketed by two TSC reads. When the CPU stops
//! between the reference read and a TSC read (a vCPU thread descheduled by a
//! loaded host, a TCG exit that waits for QEMU's global lock), one window's
//! TSC delta no longer matches its reference delta: a single window then
//! gives a rate that can be off by orders of magnitude. A wide bracket shows
//! that stall, so such windows are dropped and the median of the rest is
//! taken (the median also outvotes a window that lost reference wraps).

/// One reference read: the TSC just before and just after it, and the APIC
/// timer's current count read inside the same bracket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub tsc_before: u64,
    pub tsc_after: u64,
    /// Local APIC timer current count (counts down).
    pub apic: u32,
}

impl Sample {
    fn width(&self) -> u64 {
        self.tsc_after.saturating_sub(self.tsc_before)
    }

    /// Midpoint of the bracket: the best estimate of when the reference
    /// was read.
    fn mid(&self) -> u64 {
        self.tsc_before + self.width() / 2
    }
}

/// One calibration window: two bracketed reference reads `ref_ns` apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub start: Sample,
    pub end: Sample,
    /// Reference time between the two reads.
    pub ref_ns: u64,
}

impl Window {
    /// TSC ticks between the midpoints of the two brackets.
    pub fn tsc_ticks(&self) -> u64 {
        self.end.mid().saturating_sub(self.start.mid())
    }

    /// The TSC uncertainty of the window's endpoints: both bracket widths.
    fn bracket_ticks(&self) -> u64 {
        self.start.width() + self.end.width()
    }

    pub fn apic_ticks(&self) -> u64 {
        u64::from(self.start.apic.wrapping_sub(self.end.apic))
    }

    fn tsc_hz(&self) -> u64 {
        per_second(self.tsc_ticks(), self.ref_ns)
    }

    /// Usable at all: the reference advanced at least `min_ref_ns` and the
    /// TSC moved.
    fn counted(&self, min_ref_ns: u64) -> bool {
        self.ref_ns >= min_ref_ns && self.ref_ns > 0 && self.tsc_ticks() > 0
    }

    /// The stall next to a reference read, if any, was short: the
    /// brackets are within [`BRACKET_FACTOR`] of the narrowest window's
    /// (what a reference read costs on this machine) or under
    /// 1/[`FREE_BRACKET_SHARE`] of the window, and never over
    /// 1/[`MAX_BRACKET_SHARE`] of it.
    fn tight(&self, narrowest: u64) -> bool {
        let b = self.bracket_ticks();
        let t = self.tsc_ticks();
        let cheap = b <= narrowest.saturating_mul(BRACKET_FACTOR)
            || b.saturating_mul(FREE_BRACKET_SHARE) <= t;
        cheap && b.saturating_mul(MAX_BRACKET_SHARE) <= t
    }
}

/// Brackets this many times the narrowest are still normal reads: a
/// reference read costs about a microsecond on hardware and ~10 us under
/// QEMU TCG (an I/O exit), with some jitter; a descheduled vCPU stalls for
/// a host time slice, milliseconds.
pub const BRACKET_FACTOR: u64 = 4;
/// Brackets under 1/64 of the window (1.6 %) are always accepted.
pub const FREE_BRACKET_SHARE: u64 = 64;
/// Brackets over 1/8 of the window are never accepted.
pub const MAX_BRACKET_SHARE: u64 = 8;

/// The rates chosen from a set of windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub tsc_hz: u64,
    /// APIC timer ticks per second over the same window as `tsc_hz`.
    pub apic_hz: u64,
    /// Index of the window the rates come from.
    pub window: usize,
    /// Windows that passed the bracket check (the median is over them).
    pub tight: usize,
    /// Spread (max - min) of the TSC rate over those windows, in parts per
    /// million of the chosen rate.
    pub spread_ppm: u64,
}

/// The median TSC rate over the windows with tight brackets; when none is
/// tight, the window with the smallest relative bracket. `None` when no
/// window's reference advanced `min_ref_ns` (the reference is dead).
pub fn choose(windows: &[Window], min_ref_ns: u64) -> Option<Choice> {
    // Small fixed capacity: the kernel calibrates with a handful of windows.
    let windows = &windows[..windows.len().min(MAX_WINDOWS)];
    let narrowest = windows
        .iter()
        .filter(|w| w.counted(min_ref_ns))
        .map(Window::bracket_ticks)
        .min()
        .unwrap_or(0);
    let mut tight = [0usize; MAX_WINDOWS];
    let mut n = 0;
    for (i, w) in windows.iter().enumerate() {
        if w.counted(min_ref_ns) && w.tight(narrowest) {
            tight[n] = i;
            n += 1;
        }
    }
    if n == 0 {
        // Nothing tight: the least stalled window, relative to its length.
        let (i, w) = windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.counted(min_ref_ns))
            .min_by_key(|(_, w)| {
                u128::from(w.bracket_ticks()) * 1_000_000 / u128::from(w.tsc_ticks())
            })?;
        return Some(Choice {
            tsc_hz: w.tsc_hz(),
            apic_hz: per_second(w.apic_ticks(), w.ref_ns),
            window: i,
            tight: 0,
            spread_ppm: 0,
        });
    }
    let tight = &mut tight[..n];
    tight.sort_unstable_by_key(|&i| windows[i].tsc_hz());
    // Lower median: a real window, so the APIC rate comes from the same one.
    let i = tight[(n - 1) / 2];
    let w = &windows[i];
    let tsc_hz = w.tsc_hz();
    let lo = windows[tight[0]].tsc_hz();
    let hi = windows[tight[n - 1]].tsc_hz();
    Some(Choice {
        tsc_hz,
        apic_hz: per_second(w.apic_ticks(), w.ref_ns),
        window: i,
        tight: n,
        spread_ppm: per_million(hi - lo, tsc_hz),
    })
}

/// Windows [`choose`] looks at (more are ignored).
pub const MAX_WINDOWS: usize = 16;

fn per_second(ticks: u64, ns: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(ns.max(1))) as u64
}

fn per_million(part: u64, whole: u64) -> u64 {
    (u128::from(part) * 1_000_000 / u128::from(whole.max(1))) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2.6 GHz TSC, 62.5 MHz APIC timer (1 GHz bus / 16).
    const TSC_HZ: u64 = 2_600_000_000;
    const APIC_HZ: u64 = 62_500_000;

    fn ticks(ns: u64) -> u64 {
        ns * (TSC_HZ / 1_000_000) / 1000
    }

    fn sample(t_ns: u64, width_ns: u64) -> Sample {
        let apic = (u64::from(u32::MAX) - t_ns * APIC_HZ / 1_000_000_000) as u32;
        Sample {
            tsc_before: ticks(t_ns),
            tsc_after: ticks(t_ns + width_ns),
            apic,
        }
    }

    /// A window read at `t0` and `t0 + ref_ns` (real time) with 2 µs
    /// brackets.
    fn window(t0: u64, ref_ns: u64) -> Window {
        Window {
            start: sample(t0, 2000),
            end: sample(t0 + ref_ns, 2000),
            ref_ns,
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn clean_windows_give_the_rate() {
        let ws: [Window; 5] = core::array::from_fn(|i| window(i as u64 * 2 * MS, MS));
        let c = choose(&ws, MS / 2).unwrap();
        assert_eq!(c.tsc_hz, TSC_HZ);
        assert_eq!(c.apic_hz, APIC_HZ);
        assert_eq!(c.tight, 5);
        assert_eq!(c.spread_ppm, 0);
    }

    /// The failure seen under load: the vCPU stopped for 2.7 ms between
    /// the window's first reference read and its TSC read. Without the
    /// bracket the window measured ~3 µs of TSC against 2.7 ms of
    /// reference (~900x slow); with it the window is dropped.
    #[test]
    fn descheduled_window_is_dropped() {
        let mut ws: [Window; 5] = core::array::from_fn(|i| window(i as u64 * 2 * MS, MS));
        // Reference read at 10 ms, TSC after it at 12.7 ms; the loop's
        // first reference read (12.703 ms) already ended the window.
        ws[1] = Window {
            start: Sample {
                tsc_before: sample(10 * MS, 0).tsc_before,
                ..sample(12_700_000, 0)
            },
            end: sample(12_703_000, 2000),
            ref_ns: 2_703_000,
        };
        // Measured the old way (TSC read after the reference read), that
        // window is ~900x slow.
        let old = per_second(ws[1].end.tsc_after - ws[1].start.tsc_after, ws[1].ref_ns);
        assert!(old < TSC_HZ / 500, "{old}");
        let c = choose(&ws, MS / 2).unwrap();
        assert_eq!(c.tsc_hz, TSC_HZ);
        assert_eq!(c.tight, 4);
        assert_ne!(c.window, 1);
    }

    /// A stall between the last reference read and the TSC read (TSC
    /// too fast) is dropped the same way.
    #[test]
    fn stall_after_the_end_read_is_dropped() {
        let mut ws: [Window; 3] = core::array::from_fn(|i| window(i as u64 * 2 * MS, MS));
        ws[2].end.tsc_after += ticks(5 * MS);
        let c = choose(&ws, MS / 2).unwrap();
        assert_eq!(c.tsc_hz, TSC_HZ);
        assert_eq!(c.tight, 2);
    }

    /// A window with tight brackets but a wrong reference delta (the PM
    /// timer wrapped during a long stall inside the window) is outvoted by
    /// the median, and shows in the spread.
    #[test]
    fn median_outvotes_a_wrong_reference() {
        let mut ws: [Window; 5] = core::array::from_fn(|i| window(i as u64 * 2 * MS, MS));
        ws[3].ref_ns = MS / 900;
        let c = choose(&ws, 0).unwrap();
        assert_eq!(c.tsc_hz, TSC_HZ);
        assert_ne!(c.window, 3);
        assert!(c.spread_ppm > 1_000_000);
    }

    /// The rate from jittered windows is the median one, and the APIC rate
    /// comes from that same window.
    #[test]
    fn median_window_supplies_both_rates() {
        let mut ws: [Window; 5] = core::array::from_fn(|i| window(i as u64 * 2 * MS, MS));
        // Reference deltas 0.2 % short/long: TSC rates 1.002x, 0.998x, ...
        let refs = [998_000, 1_002_000, 1_000_000, 999_000, 1_001_000];
        for (w, r) in ws.iter_mut().zip(refs) {
            w.ref_ns = r;
        }
        let c = choose(&ws, MS / 2).unwrap();
        assert_eq!(c.window, 2);
        assert_eq!(c.tsc_hz, TSC_HZ);
        assert_eq!(c.apic_hz, APIC_HZ);
        // 1/0.998 - 1/1.002 of the rate: about 4000 ppm.
        assert!((3990..=4020).contains(&c.spread_ppm), "{}", c.spread_ppm);
    }

    /// Windows recorded from a cxos boot under QEMU TCG (TSC ticks of each
    /// bracket, TSC ticks and reference ns of the window): reference reads
    /// cost ~11 us there, 2-3 % of a 1 ms window, and all are tight.
    #[test]
    fn tcg_windows_are_tight() {
        let recorded = [
            (59_394, 31_034, 2_622_550, 1_013_257),
            (29_490, 28_908, 2_628_565, 1_011_860),
            (29_190, 29_704, 2_628_517, 1_011_581),
            (28_742, 28_748, 2_625_587, 1_011_022),
            (29_218, 27_392, 2_623_783, 1_010_742),
        ];
        let ws = recorded.map(|(b0, b1, tsc, ref_ns)| Window {
            start: Sample {
                tsc_before: 1_000_000,
                tsc_after: 1_000_000 + b0,
                apic: 0,
            },
            end: Sample {
                tsc_before: 1_000_000 + b0 / 2 + tsc - b1 / 2,
                tsc_after: 1_000_000 + b0 / 2 + tsc - b1 / 2 + b1,
                apic: 0,
            },
            ref_ns,
        });
        assert_eq!(ws[3].tsc_ticks(), 2_625_587);
        let c = choose(&ws, MS / 2).unwrap();
        assert_eq!(c.tight, 5);
        assert_eq!(c.window, 3);
        // 2 625 587 ticks in 1 011 022 ns.
        assert_eq!(c.tsc_hz, 2_596_963_270);
        assert!(c.spread_ppm < 5000, "{}", c.spread_ppm);
    }

    #[test]
    fn all_stalled_falls_back_to_the_least_stalled() {
        let mut ws: [Window; 3] = core::array::from_fn(|i| window(i as u64 * 2 * MS, MS));
        ws[0].end.tsc_after += ticks(200_000);
        ws[1].end.tsc_after += ticks(150_000);
        ws[2].end.tsc_after += ticks(300_000);
        let c = choose(&ws, MS / 2).unwrap();
        assert_eq!(c.window, 1);
        assert_eq!(c.tight, 0);
        // Midpoint moved by 75 µs in a 1 ms window.
        assert_eq!(c.tsc_hz, TSC_HZ + TSC_HZ / 1000 * 75);
    }

    #[test]
    fn dead_reference_gives_none() {
        let ws: [Window; 3] = core::array::from_fn(|i| window(i as u64 * 2 * MS, 0));
        assert_eq!(choose(&ws, MS / 2), None);
        assert_eq!(choose(&[], MS / 2), None);
    }
}
