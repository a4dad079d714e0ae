//! Physical frame allocator built from the loader's memory map.
//!
//! Free memory is a sorted list of disjoint `[start, end)` ranges of 4 KiB
//! frames with fixed capacity (it exists before the heap does). Allocation
//! is first fit with an alignment, so the same allocator hands out single
//! frames, the heap, and physically contiguous DMA regions.

use core::fmt;

use cxos_boot::{MemoryKind, MemoryRegion};
use heapless::Vec;

pub const FRAME_SIZE: u64 = 4096;
/// Free ranges kept; a map fragmented beyond this loses its smallest pieces.
pub const MAX_RANGES: usize = 256;
/// Memory below 1 MiB stays with the firmware (real-mode structures).
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// Something odd in the memory map; the allocator copes and reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapIssue {
    /// Two entries overlap; a non-usable type wins on the overlap (two
    /// usable entries are merged).
    Overlap {
        a: (u64, u64),
        b: (u64, u64),
    },
    ZeroLength {
        start: u64,
    },
    /// start + len overflows 64 bits; the entry is clipped.
    Wraps {
        start: u64,
        len: u64,
    },
    /// More fragments than [`MAX_RANGES`]; some memory is left unused.
    TooFragmented,
}

impl fmt::Display for MapIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Overlap { a, b } => write!(
                f,
                "entries [{:#x}, {:#x}) and [{:#x}, {:#x}) overlap; the non-usable type wins",
                a.0, a.1, b.0, b.1
            ),
            Self::ZeroLength { start } => write!(f, "zero-length entry at {start:#x} ignored"),
            Self::Wraps { start, len } => {
                write!(f, "entry at {start:#x} with length {len:#x} wraps; clipped")
            }
            Self::TooFragmented => write!(f, "too many free ranges; some memory left unused"),
        }
    }
}

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    Unaligned(u64),
    /// Part of the range is already free.
    DoubleFree(u64),
    TooFragmented,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u64,
    end: u64,
}

#[derive(Debug)]
pub struct FrameAllocator {
    /// Sorted by start, disjoint, never touching.
    ranges: Vec<Range, MAX_RANGES>,
    free_frames: u64,
    total_frames: u64,
    usable_bytes: u64,
}

const fn align_up(x: u64, a: u64) -> u64 {
    x.saturating_add(a - 1) & !(a - 1)
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::empty()
    }
}

impl FrameAllocator {
    pub const fn empty() -> Self {
        Self {
            ranges: Vec::new(),
            free_frames: 0,
            total_frames: 0,
            usable_bytes: 0,
        }
    }

    /// Build from a memory map minus `reserved` ranges (kernel image, boot
    /// structures, ACPI tables...). Issues go to `report`.
    pub fn from_map(
        map: &[MemoryRegion],
        reserved: &[(u64, u64)],
        report: &mut dyn FnMut(MapIssue),
    ) -> Self {
        let mut a = Self::empty();
        let clip = |r: &MemoryRegion, report: &mut dyn FnMut(MapIssue)| -> Option<(u64, u64)> {
            if r.len == 0 {
                report(MapIssue::ZeroLength { start: r.start });
                return None;
            }
            match r.start.checked_add(r.len) {
                Some(end) => Some((r.start, end)),
                None => {
                    report(MapIssue::Wraps {
                        start: r.start,
                        len: r.len,
                    });
                    Some((r.start, !(FRAME_SIZE - 1)))
                }
            }
        };
        // Overlaps between any two entries are reported once each.
        for (i, x) in map.iter().enumerate() {
            for y in &map[i + 1..] {
                let (xe, ye) = (x.start.saturating_add(x.len), y.start.saturating_add(y.len));
                if x.len > 0 && y.len > 0 && x.start < ye && y.start < xe {
                    report(MapIssue::Overlap {
                        a: (x.start, xe),
                        b: (y.start, ye),
                    });
                }
            }
        }
        for r in map.iter().filter(|r| r.kind == MemoryKind::Usable) {
            let Some((start, end)) = clip(r, report) else {
                continue;
            };
            // Partial frames at either end are unusable (0x9fc00 is common).
            let (s, e) = (align_up(start, FRAME_SIZE), end & !(FRAME_SIZE - 1));
            if s < e && a.insert(s, e).is_err() {
                report(MapIssue::TooFragmented);
            }
        }
        for r in map.iter().filter(|r| r.kind != MemoryKind::Usable) {
            if let Some((start, end)) = clip(r, report)
                && a.remove(start & !(FRAME_SIZE - 1), align_up(end, FRAME_SIZE))
                    .is_err()
            {
                report(MapIssue::TooFragmented);
            }
        }
        a.usable_bytes = a.ranges.iter().map(|r| r.end - r.start).sum();
        let mut fragmented = a.remove(0, LOW_MEMORY_END).is_err();
        for &(s, e) in reserved {
            fragmented |= a
                .remove(s & !(FRAME_SIZE - 1), align_up(e, FRAME_SIZE))
                .is_err();
        }
        if fragmented {
            report(MapIssue::TooFragmented);
        }
        a.free_frames = a.count_free();
        a.total_frames = a.free_frames;
        a
    }

    fn count_free(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| (r.end - r.start) / FRAME_SIZE)
            .sum()
    }

    /// Union `[s, e)` into the free list (merging neighbours).
    fn insert(&mut self, s: u64, e: u64) -> Result<(), ()> {
        let mut s = s;
        let mut e = e;
        // Absorb every range that overlaps or touches [s, e).
        let mut i = 0;
        while i < self.ranges.len() {
            let r = self.ranges[i];
            if r.start <= e && s <= r.end {
                s = s.min(r.start);
                e = e.max(r.end);
                self.ranges.remove(i);
            } else {
                i += 1;
            }
        }
        let pos = self.ranges.partition_point(|r| r.start < s);
        self.ranges
            .insert(pos, Range { start: s, end: e })
            .map_err(drop)
    }

    /// Remove `[s, e)` from the free list.
    fn remove(&mut self, s: u64, e: u64) -> Result<(), ()> {
        let mut i = 0;
        while i < self.ranges.len() {
            let r = self.ranges[i];
            if r.end <= s || e <= r.start {
                i += 1;
                continue;
            }
            match (r.start < s, e < r.end) {
                (false, false) => {
                    self.ranges.remove(i);
                }
                (true, false) => {
                    self.ranges[i].end = s;
                    i += 1;
                }
                (false, true) => {
                    self.ranges[i].start = e;
                    i += 1;
                }
                (true, true) => {
                    self.ranges
                        .insert(
                            i + 1,
                            Range {
                                start: e,
                                end: r.end,
                            },
                        )
                        .map_err(drop)?;
                    self.ranges[i].end = s;
                    i += 2;
                }
            }
        }
        Ok(())
    }

    /// Allocate `count` contiguous frames whose first address is a multiple
    /// of `align` bytes (a power of two >= 4 KiB).
    pub fn alloc(&mut self, count: u64, align: u64) -> Option<u64> {
        self.alloc_in(count, align, 0, u64::MAX)
    }

    /// Like [`FrameAllocator::alloc`], within `[min, max)` physical addresses.
    pub fn alloc_in(&mut self, count: u64, align: u64, min: u64, max: u64) -> Option<u64> {
        let align = align.max(FRAME_SIZE);
        if count == 0 || !align.is_power_of_two() {
            return None;
        }
        let bytes = count.checked_mul(FRAME_SIZE)?;
        let start = self.ranges.iter().find_map(|r| {
            let s = align_up(r.start.max(min), align);
            let e = s.checked_add(bytes)?;
            (e <= r.end && e <= max).then_some(s)
        })?;
        // Splitting a range can need one more slot; refuse rather than lose memory.
        self.remove(start, start + bytes).ok()?;
        self.free_frames -= count;
        Some(start)
    }

    /// Return `count` frames at `start`.
    pub fn free(&mut self, start: u64, count: u64) -> Result<(), FreeError> {
        if !start.is_multiple_of(FRAME_SIZE) {
            return Err(FreeError::Unaligned(start));
        }
        let end = start + count * FRAME_SIZE;
        if self.ranges.iter().any(|r| r.start < end && start < r.end) {
            return Err(FreeError::DoubleFree(start));
        }
        self.insert(start, end)
            .map_err(|()| FreeError::TooFragmented)?;
        self.free_frames += count;
        Ok(())
    }

    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    /// Frames free right after construction.
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    pub fn used_frames(&self) -> u64 {
        self.total_frames - self.free_frames
    }

    /// Bytes of usable RAM in the map (above nothing reserved).
    pub fn usable_bytes(&self) -> u64 {
        self.usable_bytes
    }

    /// The free ranges, for reports.
    pub fn free_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|r| (r.start, r.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn region(start: u64, len: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion { start, len, kind }
    }

    fn build(map: &[MemoryRegion], reserved: &[(u64, u64)]) -> (FrameAllocator, Vec<MapIssue>) {
        let mut issues = Vec::new();
        let a = FrameAllocator::from_map(map, reserved, &mut |i| issues.push(i));
        (a, issues)
    }

    /// The map QEMU q35 gives with -m 512M.
    fn q35_map() -> Vec<MemoryRegion> {
        vec![
            region(0, 0x9fc00, MemoryKind::Usable),
            region(0x9fc00, 0x400, MemoryKind::Reserved),
            region(0xf0000, 0x10000, MemoryKind::Reserved),
            region(0x10_0000, 0x1fee_0000, MemoryKind::Usable),
            region(0x1ffe_0000, 0x2_0000, MemoryKind::Reserved),
            region(0xb000_0000, 0x1000_0000, MemoryKind::Reserved),
        ]
    }

    #[test]
    fn q35_map_minus_kernel() {
        let (a, issues) = build(&q35_map(), &[(0x10_0000, 0x15_0000)]);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(a.usable_bytes(), 0x9f000 + 0x1fee_0000);
        assert_eq!(
            a.free_ranges().collect::<Vec<_>>(),
            vec![(0x15_0000, 0x1ffe_0000)]
        );
        assert_eq!(a.free_frames(), (0x1ffe_0000 - 0x15_0000) / FRAME_SIZE);
    }

    #[test]
    fn alloc_and_free_merge_back() {
        let (mut a, _) = build(&q35_map(), &[]);
        let before = a.free_frames();
        let x = a.alloc(1, FRAME_SIZE).unwrap();
        assert_eq!(x, 0x10_0000);
        let y = a.alloc(3, 0x10_0000).unwrap();
        assert_eq!(y, 0x20_0000, "aligned to 1 MiB");
        let z = a.alloc(1, FRAME_SIZE).unwrap();
        assert_eq!(z, 0x10_1000, "first fit uses the gap left by alignment");
        assert_eq!(a.free_frames(), before - 5);
        assert_eq!(a.used_frames(), 5);
        a.free(y, 3).unwrap();
        a.free(x, 1).unwrap();
        a.free(z, 1).unwrap();
        assert_eq!(a.free_frames(), before);
        assert_eq!(a.free_ranges().count(), 1);
    }

    #[test]
    fn alloc_within_bounds() {
        let map = [
            region(0x10_0000, 0x10_0000, MemoryKind::Usable),
            region(0x1_0000_0000, 0x10_0000, MemoryKind::Usable),
        ];
        let (mut a, _) = build(&map, &[]);
        assert_eq!(
            a.alloc_in(1, FRAME_SIZE, 1 << 32, u64::MAX),
            Some(0x1_0000_0000)
        );
        assert_eq!(
            a.alloc_in(2, FRAME_SIZE, 0x18_0000, 0x18_2000),
            Some(0x18_0000)
        );
        assert_eq!(a.alloc_in(1, FRAME_SIZE, 0x18_0000, 0x18_2000), None);
        assert_eq!(a.alloc_in(1, FRAME_SIZE, 0x20_0000, 0x1_0000_0000), None);
        assert_eq!(a.free_frames(), 0x200 - 3);
    }

    #[test]
    fn double_free_and_unaligned_free_are_refused() {
        let (mut a, _) = build(&q35_map(), &[]);
        let x = a.alloc(2, FRAME_SIZE).unwrap();
        a.free(x, 2).unwrap();
        assert_eq!(a.free(x, 1), Err(FreeError::DoubleFree(x)));
        assert_eq!(a.free(x + 1, 1), Err(FreeError::Unaligned(x + 1)));
    }

    #[test]
    fn exhaustion_returns_none() {
        let (mut a, _) = build(&[region(0x10_0000, 0x4000, MemoryKind::Usable)], &[]);
        assert_eq!(a.alloc(5, FRAME_SIZE), None);
        assert!(a.alloc(4, FRAME_SIZE).is_some());
        assert_eq!(a.alloc(1, FRAME_SIZE), None);
        assert_eq!(a.alloc(0, FRAME_SIZE), None);
        assert_eq!(a.free_frames(), 0);
    }

    #[test]
    fn odd_maps_are_reported_and_survived() {
        let map = [
            // Usable overlapping a reserved hole: reserved wins.
            region(0x10_0000, 0x10_0000, MemoryKind::Usable),
            region(0x18_0000, 0x1000, MemoryKind::Reserved),
            // Unaligned usable entry: shrunk to whole frames.
            region(0x30_0800, 0x2000, MemoryKind::Usable),
            region(0x40_0000, 0, MemoryKind::Usable),
            region(u64::MAX - 0xfff, 0x2000, MemoryKind::Reserved),
            // Two usable entries overlapping each other: union.
            region(0x50_0000, 0x2000, MemoryKind::Usable),
            region(0x50_1000, 0x2000, MemoryKind::Usable),
        ];
        let (a, issues) = build(&map, &[]);
        assert!(issues.contains(&MapIssue::Overlap {
            a: (0x10_0000, 0x20_0000),
            b: (0x18_0000, 0x18_1000)
        }));
        assert!(issues.contains(&MapIssue::ZeroLength { start: 0x40_0000 }));
        assert!(issues.iter().any(|i| matches!(i, MapIssue::Wraps { .. })));
        assert_eq!(
            a.free_ranges().collect::<Vec<_>>(),
            vec![
                (0x10_0000, 0x18_0000),
                (0x18_1000, 0x20_0000),
                (0x30_1000, 0x30_2000),
                (0x50_0000, 0x50_3000)
            ]
        );
        for i in &issues {
            assert!(!i.to_string().is_empty());
        }
    }

    #[test]
    fn fragmentation_beyond_capacity_is_reported() {
        let map: Vec<_> = (0..(MAX_RANGES as u64 + 10))
            .map(|i| region(0x100_0000 + i * 0x2000, 0x1000, MemoryKind::Usable))
            .collect();
        let (a, issues) = build(&map, &[]);
        assert!(issues.contains(&MapIssue::TooFragmented));
        assert_eq!(a.free_frames(), MAX_RANGES as u64);
    }
}
