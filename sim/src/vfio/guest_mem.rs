//! Guest memory as the device's DMA space: the ranges QEMU hands over with
//! DMA_MAP (vfio-user spec, "VFIO_USER_DMA_MAP"), mapped from the memfd it
//! passes along, shared with the guest's vCPUs.
//!
//! The guest writes this memory concurrently (it polls owner bits while the
//! model writes completions), so every access goes through atomics: each
//! naturally aligned access of 1, 2, 4 or 8 bytes is one untorn access, as
//! on PCIe, and bulk copies are made of such accesses.
//!
//! Ranges that arrive without a file descriptor (QEMU's ROM and MMIO
//! ranges) are recorded but cannot be reached: accesses to them, writes to
//! read-only ranges, and accesses where nothing is mapped fail with a
//! [`DmaFault`], which the model's sanitizer records.
//!
//! With `fds.rs` (recvmsg), the only `unsafe` of the vfio-user front end is
//! here: mmap/munmap and the
//! atomic accesses to the mapped memory.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::dma::{DmaFault, DmaSpace};

/// Most bytes one DMA_MAP may cover (a guest with more RAM than this is not
/// something the tests build; it bounds what a bad message can ask for).
pub const MAX_MAP: u64 = 1 << 40;

/// Why a DMA_MAP or DMA_UNMAP was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Zero size, address wrap-around or more than [`MAX_MAP`] bytes.
    BadRange,
    /// The range overlaps one that is already mapped.
    Overlaps,
    /// mmap failed (errno).
    Mmap(i32),
    /// DMA_UNMAP of a range that is not exactly one mapped range.
    NotMapped,
    /// The file is shorter than offset + size (a mapping past its end
    /// would raise SIGBUS at the first access there), or cannot be
    /// measured.
    ShortFile { len: u64, end: u64 },
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRange => f.write_str("bad address range"),
            Self::Overlaps => f.write_str("range overlaps a mapped range"),
            Self::Mmap(errno) => write!(f, "mmap failed (errno {errno})"),
            Self::NotMapped => f.write_str("no mapping with this address and size"),
            Self::ShortFile { len, end } => {
                write!(
                    f,
                    "the file holds {len:#x} bytes, the mapping ends at {end:#x}"
                )
            }
        }
    }
}

/// One mmap of a file, unmapped when the last user drops it (so an access
/// in flight on the model thread finishes even if DMA_UNMAP arrives).
#[derive(Debug)]
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is shared memory reached only through atomic accesses
// (see `Mmap::byte` and friends), so using it from several threads is sound.
unsafe impl Send for Mmap {}
// SAFETY: as above.
unsafe impl Sync for Mmap {}

impl Mmap {
    fn new(file: &File, offset: u64, len: usize, writable: bool) -> Result<Mmap, MapError> {
        // Memory past the end of the file raises SIGBUS when touched:
        // map only what the file holds. (QEMU's memfds are sealed against
        // shrinking; a client that shrinks an unsealed file later is the
        // one thing this cannot catch.)
        let end = offset.checked_add(len as u64).ok_or(MapError::BadRange)?;
        let file_len = file
            .metadata()
            .map_err(|e| MapError::Mmap(e.raw_os_error().unwrap_or(0)))?
            .len();
        if file_len < end {
            return Err(MapError::ShortFile { len: file_len, end });
        }
        let offset = libc::off_t::try_from(offset).map_err(|_| MapError::BadRange)?;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint);
        // it overlaps nothing of ours, and the result is checked below.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(MapError::Mmap(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(MapError::Mmap(0))?;
        Ok(Mmap { ptr, len })
    }

    /// The atomic of type `T` at `off`; callers check `off + size_of::<T>()
    /// <= len` and natural alignment.
    fn at<T>(&self, off: usize) -> *mut T {
        debug_assert!(off + std::mem::size_of::<T>() <= self.len);
        // SAFETY: off is inside the mapping (checked by the caller).
        unsafe { self.ptr.as_ptr().add(off).cast::<T>() }
    }

    fn read(&self, off: usize, dst: &mut [u8]) {
        // Up to the first 8-aligned byte, then whole 8-byte words (the
        // bulk of every frame and WQE), then the rest.
        let head = ((8 - off % 8) % 8).min(dst.len());
        self.read_small(off, &mut dst[..head]);
        let body = (dst.len() - head) / 8 * 8;
        for (k, w) in dst[head..head + body].chunks_exact_mut(8).enumerate() {
            // SAFETY: 8 bytes inside the mapping (the caller's range),
            // 8-aligned; the memory lives as long as self.
            let v =
                unsafe { AtomicU64::from_ptr(self.at(off + head + 8 * k)) }.load(Ordering::Acquire);
            w.copy_from_slice(&v.to_ne_bytes());
        }
        self.read_small(off + head + body, &mut dst[head + body..]);
    }

    /// [`Mmap::read`] of an unaligned piece, largest aligned units first.
    fn read_small(&self, off: usize, dst: &mut [u8]) {
        let mut i = 0;
        while i < dst.len() {
            let at = off + i;
            let left = dst.len() - i;
            if at.is_multiple_of(8) && left >= 8 {
                // SAFETY: 8 bytes inside the mapping, 8-aligned (mmap is
                // page-aligned); the memory lives as long as self.
                let v = unsafe { AtomicU64::from_ptr(self.at(at)) }.load(Ordering::Acquire);
                dst[i..i + 8].copy_from_slice(&v.to_ne_bytes());
                i += 8;
            } else if at.is_multiple_of(4) && left >= 4 {
                // SAFETY: as above, 4 bytes, 4-aligned.
                let v = unsafe { AtomicU32::from_ptr(self.at(at)) }.load(Ordering::Acquire);
                dst[i..i + 4].copy_from_slice(&v.to_ne_bytes());
                i += 4;
            } else if at.is_multiple_of(2) && left >= 2 {
                // SAFETY: as above, 2 bytes, 2-aligned.
                let v = unsafe { AtomicU16::from_ptr(self.at(at)) }.load(Ordering::Acquire);
                dst[i..i + 2].copy_from_slice(&v.to_ne_bytes());
                i += 2;
            } else {
                // SAFETY: as above, one byte.
                dst[i] = unsafe { AtomicU8::from_ptr(self.at(at)) }.load(Ordering::Acquire);
                i += 1;
            }
        }
    }

    fn write(&self, off: usize, src: &[u8]) {
        let head = ((8 - off % 8) % 8).min(src.len());
        self.write_small(off, &src[..head]);
        let body = (src.len() - head) / 8 * 8;
        for (k, w) in src[head..head + body].chunks_exact(8).enumerate() {
            let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            // SAFETY: 8 bytes inside a writable mapping (the caller's
            // range), 8-aligned.
            unsafe { AtomicU64::from_ptr(self.at(off + head + 8 * k)) }.store(v, Ordering::Release);
        }
        self.write_small(off + head + body, &src[head + body..]);
    }

    /// [`Mmap::write`] of an unaligned piece, largest aligned units first.
    fn write_small(&self, off: usize, src: &[u8]) {
        let mut i = 0;
        while i < src.len() {
            let at = off + i;
            let left = src.len() - i;
            if at.is_multiple_of(8) && left >= 8 {
                let v = u64::from_ne_bytes(src[i..i + 8].try_into().unwrap_or_default());
                // SAFETY: 8 bytes inside a writable mapping, 8-aligned.
                unsafe { AtomicU64::from_ptr(self.at(at)) }.store(v, Ordering::Release);
                i += 8;
            } else if at.is_multiple_of(4) && left >= 4 {
                let v = u32::from_ne_bytes(src[i..i + 4].try_into().unwrap_or_default());
                // SAFETY: as above, 4 bytes, 4-aligned.
                unsafe { AtomicU32::from_ptr(self.at(at)) }.store(v, Ordering::Release);
                i += 4;
            } else if at.is_multiple_of(2) && left >= 2 {
                let v = u16::from_ne_bytes([src[i], src[i + 1]]);
                // SAFETY: as above, 2 bytes, 2-aligned.
                unsafe { AtomicU16::from_ptr(self.at(at)) }.store(v, Ordering::Release);
                i += 2;
            } else {
                // SAFETY: as above, one byte.
                unsafe { AtomicU8::from_ptr(self.at(at)) }.store(src[i], Ordering::Release);
                i += 1;
            }
        }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; no reference into
        // the mapping outlives self (accesses copy in and out).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One DMA_MAP range.
#[derive(Debug)]
struct Range {
    size: u64,
    /// None: the range exists but has no memory the device can reach.
    mem: Option<Arc<Mmap>>,
    readable: bool,
    writable: bool,
}

/// Counters of what QEMU asked for.
#[derive(Debug, Default)]
pub struct MapStats {
    pub maps: AtomicUsize,
    pub unmaps: AtomicUsize,
}

/// The guest's memory as the device sees it: bus address = guest physical
/// address (QEMU's vfio-user device has no IOMMU in front).
#[derive(Debug, Default)]
pub struct GuestMemory {
    ranges: RwLock<BTreeMap<u64, Range>>,
    pub stats: MapStats,
}

/// Access flags of a DMA_MAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

impl GuestMemory {
    /// DMA_MAP: `[iova, iova+size)` is guest memory at `offset` of `fd`
    /// (None for ranges QEMU cannot share).
    pub fn map(
        &self,
        iova: u64,
        size: u64,
        fd: Option<&File>,
        offset: u64,
        access: Access,
    ) -> Result<(), MapError> {
        let end = iova.checked_add(size).ok_or(MapError::BadRange)?;
        if size == 0 || size > MAX_MAP || offset.checked_add(size).is_none() {
            return Err(MapError::BadRange);
        }
        let len = usize::try_from(size).map_err(|_| MapError::BadRange)?;
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        let before = ranges.range(..end).next_back();
        if before.is_some_and(|(start, r)| start + r.size > iova) {
            return Err(MapError::Overlaps);
        }
        let mem = match fd {
            Some(file) => Some(Arc::new(Mmap::new(file, offset, len, access.write)?)),
            None => None,
        };
        ranges.insert(
            iova,
            Range {
                size,
                mem,
                readable: access.read,
                writable: access.write,
            },
        );
        self.stats.maps.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// DMA_UNMAP of a range mapped before (same address and size).
    pub fn unmap(&self, iova: u64, size: u64) -> Result<(), MapError> {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        match ranges.get(&iova) {
            Some(r) if r.size == size => {
                ranges.remove(&iova);
                self.stats.unmaps.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(MapError::NotMapped),
        }
    }

    /// Forget every range (the client went away or reset the device's view).
    pub fn unmap_all(&self) {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        let n = ranges.len();
        ranges.clear();
        self.stats.unmaps.fetch_add(n, Ordering::Relaxed);
    }

    /// Live ranges and the bytes of those backed by memory.
    pub fn mapped(&self) -> (usize, u64) {
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        let bytes = ranges
            .values()
            .filter(|r| r.mem.is_some())
            .map(|r| r.size)
            .sum();
        (ranges.len(), bytes)
    }

    /// Hands `[addr, addr+len)` to `f` piece by piece (QEMU maps guest
    /// RAM in several adjacent ranges): `f(memory, offset in it, offset in
    /// the access, bytes)`. Every piece is checked before any byte moves,
    /// so a failed access has no effect. The ranges stay read-locked
    /// meanwhile (an unmap waits for the copy); no allocation: this is
    /// every WQE, frame and CQE the model moves.
    fn pieces(
        &self,
        addr: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(&Mmap, usize, usize, usize),
    ) -> Result<(), DmaFault> {
        if addr.checked_add(len as u64).is_none() {
            return Err(DmaFault::Unmapped);
        }
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        let (start, r) = ranges
            .range(..=addr)
            .next_back()
            .filter(|(start, r)| addr - *start < r.size)
            .ok_or(DmaFault::Unmapped)?;
        let within = addr - start;
        if len as u64 <= r.size - within {
            // The common case: one range holds it all.
            f(reachable(r, write)?, within as usize, 0, len);
            return Ok(());
        }
        walk(&ranges, addr, len, write, |_, _, _, _| {})?;
        walk(&ranges, addr, len, write, f)
    }
}

/// A range's memory if the access may reach it.
fn reachable(r: &Range, write: bool) -> Result<&Mmap, DmaFault> {
    let allowed = if write { r.writable } else { r.readable };
    r.mem
        .as_deref()
        .filter(|_| allowed)
        .ok_or(DmaFault::Forbidden)
}

/// [`GuestMemory::pieces`] over several ranges.
fn walk(
    ranges: &BTreeMap<u64, Range>,
    addr: u64,
    len: usize,
    write: bool,
    mut f: impl FnMut(&Mmap, usize, usize, usize),
) -> Result<(), DmaFault> {
    let mut at = addr;
    let mut left = len as u64;
    while left > 0 {
        let (start, r) = ranges
            .range(..=at)
            .next_back()
            .filter(|(start, r)| at - *start < r.size)
            .ok_or(if at == addr {
                DmaFault::Unmapped
            } else {
                DmaFault::CrossesRegion
            })?;
        let mem = reachable(r, write)?;
        let within = at - start;
        let take = left.min(r.size - within);
        f(mem, within as usize, (at - addr) as usize, take as usize);
        at += take;
        left -= take;
    }
    Ok(())
}

impl DmaSpace for GuestMemory {
    fn read(&self, addr: u64, dst: &mut [u8]) -> Result<(), DmaFault> {
        self.pieces(addr, dst.len(), false, |mem, off, done, n| {
            mem.read(off, &mut dst[done..done + n])
        })
    }

    fn write(&self, addr: u64, src: &[u8]) -> Result<(), DmaFault> {
        self.pieces(addr, src.len(), true, |mem, off, done, n| {
            mem.write(off, &src[done..done + n])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::FromRawFd;

    const RW: Access = Access {
        read: true,
        write: true,
    };
    const RO: Access = Access {
        read: true,
        write: false,
    };

    /// A memfd of `len` bytes, as QEMU's memory-backend-memfd is.
    fn memfd(len: u64) -> File {
        // SAFETY: memfd_create with a valid NUL-terminated name; the result
        // is checked before it is wrapped.
        let fd = unsafe { libc::memfd_create(c"mlx5-sim-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(len).unwrap();
        file
    }

    #[test]
    fn device_writes_reach_the_file_and_file_writes_reach_the_device() {
        let mut file = memfd(0x4000);
        let mem = GuestMemory::default();
        // Guest physical 0x10_0000 is file offset 0x1000 (QEMU maps RAM at offsets).
        mem.map(0x10_0000, 0x2000, Some(&file), 0x1000, RW).unwrap();
        mem.write(0x10_0ffd, b"hello, world").unwrap();
        let mut buf = [0u8; 12];
        file.seek(SeekFrom::Start(0x1ffd)).unwrap();
        file.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello, world");
        file.seek(SeekFrom::Start(0x1010)).unwrap();
        file.write_all(&0x1122_3344_5566_7788u64.to_be_bytes())
            .unwrap();
        let mut word = [0u8; 8];
        mem.read(0x10_0010, &mut word).unwrap();
        assert_eq!(u64::from_be_bytes(word), 0x1122_3344_5566_7788);
        // Unaligned odd-sized copies take every path of the copy loop.
        let pattern: Vec<u8> = (0..61u8).collect();
        mem.write(0x10_0103, &pattern).unwrap();
        let mut back = vec![0u8; 61];
        mem.read(0x10_0103, &mut back).unwrap();
        assert_eq!(back, pattern);
        // Every alignment and length around the word loop: the bytes land
        // where the file has them, and nothing beyond.
        for start in 0..9u64 {
            for len in 0..26usize {
                let at = 0x10_0200 + start;
                mem.write(at - 1, &[0xee; 28]).unwrap();
                let bytes: Vec<u8> = (0..len).map(|i| (i as u8) ^ (start as u8) << 5).collect();
                mem.write(at, &bytes).unwrap();
                let mut back = vec![0u8; len + 2];
                mem.read(at - 1, &mut back).unwrap();
                assert_eq!(back[0], 0xee, "{start} {len}");
                assert_eq!(&back[1..=len], &bytes[..], "{start} {len}");
                assert_eq!(back[len + 1], 0xee, "{start} {len}");
            }
        }
        assert_eq!(mem.mapped(), (1, 0x2000));
    }

    #[test]
    fn unmapped_crossing_and_forbidden_accesses_fail_without_effect() {
        let file = memfd(0x3000);
        let mem = GuestMemory::default();
        mem.map(0x0, 0x1000, Some(&file), 0, RW).unwrap();
        // Adjacent pieces of the same memory may be crossed...
        mem.map(0x1000, 0x1000, Some(&file), 0x1000, RW).unwrap();
        mem.write(0xffc, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let mut b = [0u8; 8];
        mem.read(0xffc, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8]);
        // ...but a gap may not.
        assert_eq!(mem.read(0x1ffc, &mut b), Err(DmaFault::CrossesRegion));
        assert_eq!(mem.read(0x5000, &mut b), Err(DmaFault::Unmapped));
        assert_eq!(mem.read(u64::MAX - 3, &mut b), Err(DmaFault::Unmapped));
        // A read-only (ROM) range and a range without memory.
        mem.map(0xf_0000, 0x1000, Some(&file), 0x2000, RO).unwrap();
        mem.map(0xfffc_0000, 0x4_0000, None, 0, RO).unwrap();
        assert_eq!(mem.read(0xf_0000, &mut b), Ok(()));
        assert_eq!(mem.write(0xf_0000, &b), Err(DmaFault::Forbidden));
        assert_eq!(mem.read(0xfffc_0000, &mut b), Err(DmaFault::Forbidden));
        // The failed crossing write above touched nothing.
        assert_eq!(mem.write(0x1ffc, &[9; 8]), Err(DmaFault::CrossesRegion));
        let mut tail = [0u8; 4];
        mem.read(0x1ffc, &mut tail).unwrap();
        assert_eq!(tail, [0; 4]);
    }

    #[test]
    fn map_and_unmap_are_checked() {
        let file = memfd(0x2000);
        let mem = GuestMemory::default();
        assert_eq!(mem.map(0, 0, Some(&file), 0, RW), Err(MapError::BadRange));
        assert_eq!(
            mem.map(u64::MAX - 0xfff, 0x2000, None, 0, RW),
            Err(MapError::BadRange)
        );
        mem.map(0x1000, 0x1000, Some(&file), 0, RW).unwrap();
        assert_eq!(
            mem.map(0x1800, 0x1000, Some(&file), 0, RW),
            Err(MapError::Overlaps)
        );
        assert_eq!(
            mem.map(0x0, 0x1001, Some(&file), 0, RW),
            Err(MapError::Overlaps)
        );
        assert!(matches!(
            mem.map(0x8000, 0x1000, Some(&file), 0x123, RW),
            Err(MapError::Mmap(_))
        ));
        // Past the end of the file (SIGBUS at the first access if mapped).
        assert_eq!(
            mem.map(0x8000, 0x2000, Some(&file), 0x1000, RW),
            Err(MapError::ShortFile {
                len: 0x2000,
                end: 0x3000
            })
        );
        assert_eq!(
            mem.map(0x8000, 0x1000, Some(&memfd(0)), 0, RW),
            Err(MapError::ShortFile {
                len: 0,
                end: 0x1000
            })
        );
        assert_eq!(mem.unmap(0x1000, 0x800), Err(MapError::NotMapped));
        mem.unmap(0x1000, 0x1000).unwrap();
        let mut b = [0u8; 4];
        assert_eq!(mem.read(0x1000, &mut b), Err(DmaFault::Unmapped));
        assert_eq!(mem.stats.maps.load(Ordering::Relaxed), 1);
        assert_eq!(mem.stats.unmaps.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_model_sanitizer_records_faults_of_guest_memory() {
        use crate::sanitizer::{Bus, Purpose, ViolationKind};
        let mem = Arc::new(GuestMemory::default());
        let mut bus = Bus::new(mem.clone());
        // Mailboxes need no grant: the bus fault itself is what is recorded.
        let mut b = [0u8; 16];
        assert!(bus.read(0x4000, &mut b, Purpose::Mailbox).is_err());
        let v = bus.san.violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::Fault(DmaFault::Unmapped));
    }
}
