//! Parsers of the PVH start info and the multiboot2 info block.
//!
//! They read physical memory through [`Memory`] so host tests can feed them
//! hand-built bytes; every length and count is checked against a sane bound.

use core::fmt;

use crate::info::{BootInfo, BootProtocol, MemoryKind, MemoryRegion, RsdpSource};

/// `eax` on multiboot2 entry.
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
/// `hvm_start_info.magic` ("xEn3" with the top bit set).
pub const PVH_MAGIC: u32 = 0x336e_c578;

/// Largest multiboot2 info block accepted (GRUB's are a few KiB).
const MB2_MAX_SIZE: u32 = 1 << 20;
/// Largest PVH memory map accepted.
const PVH_MAX_ENTRIES: u32 = 4096;

/// Read access to physical memory.
pub trait Memory {
    /// Fill `buf` from physical address `addr`; false if not readable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;

    fn read_u32(&self, addr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b).then(|| u32::from_le_bytes(b))
    }

    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b).then(|| u64::from_le_bytes(b))
    }
}

/// Why the boot structures could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// Neither the multiboot2 magic in eax nor a PVH start info at ebx.
    UnknownProtocol { eax: u32, ebx: u32 },
    /// A structure lies outside readable memory.
    Unreadable { what: &'static str, addr: u64 },
    /// A size or count is out of bounds.
    Malformed { what: &'static str, value: u64 },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownProtocol { eax, ebx } => write!(
                f,
                "unknown boot protocol (eax={eax:#x}, ebx={ebx:#x}): neither multiboot2 nor PVH"
            ),
            Self::Unreadable { what, addr } => write!(f, "{what} at {addr:#x} is not readable"),
            Self::Malformed { what, value } => write!(f, "malformed {what}: {value:#x}"),
        }
    }
}

fn read_u32(mem: &dyn Memory, addr: u64, what: &'static str) -> Result<u32, BootError> {
    mem.read_u32(addr)
        .ok_or(BootError::Unreadable { what, addr })
}

fn read_u64(mem: &dyn Memory, addr: u64, what: &'static str) -> Result<u64, BootError> {
    mem.read_u64(addr)
        .ok_or(BootError::Unreadable { what, addr })
}

/// Copy a NUL-terminated string of at most `max` bytes; returns its length
/// (without the NUL) and whether it was cut.
fn read_cstr(mem: &dyn Memory, addr: u64, out: &mut BootInfo) -> Result<u64, BootError> {
    let mut buf = [0u8; crate::info::MAX_CMDLINE + 1];
    let mut len = 0usize;
    while len < buf.len() {
        let mut b = [0u8; 1];
        if !mem.read(addr + len as u64, &mut b) {
            return Err(BootError::Unreadable {
                what: "command line",
                addr: addr + len as u64,
            });
        }
        if b[0] == 0 {
            break;
        }
        buf[len] = b[0];
        len += 1;
    }
    out.set_cmdline(&buf[..len]);
    Ok(len as u64 + 1)
}

/// Parse `hvm_start_info` (Xen's `arch-x86/hvm/start_info.h`): magic at 0,
/// version at 4, cmdline_paddr at 24, rsdp_paddr at 32, memmap_paddr at 40,
/// memmap_entries at 48 (version >= 1); memory map entries are
/// `{addr: u64, size: u64, type: u32, reserved: u32}`.
pub fn parse_pvh(mem: &dyn Memory, start_info: u64) -> Result<BootInfo, BootError> {
    let magic = read_u32(mem, start_info, "PVH start info")?;
    if magic != PVH_MAGIC {
        return Err(BootError::Malformed {
            what: "PVH start info magic",
            value: magic.into(),
        });
    }
    let mut info = BootInfo::new(BootProtocol::Pvh);
    let version = read_u32(mem, start_info + 4, "PVH start info")?;
    info.push_boot_range(start_info, start_info + 56);

    let cmdline = read_u64(mem, start_info + 24, "PVH start info")?;
    if cmdline != 0 {
        let len = read_cstr(mem, cmdline, &mut info)?;
        info.push_boot_range(cmdline, cmdline + len);
    }
    let rsdp = read_u64(mem, start_info + 32, "PVH start info")?;
    if rsdp != 0 {
        info.rsdp = RsdpSource::Address(rsdp);
    }
    if version >= 1 {
        let map = read_u64(mem, start_info + 40, "PVH start info")?;
        let entries = read_u32(mem, start_info + 48, "PVH start info")?;
        if entries > PVH_MAX_ENTRIES {
            return Err(BootError::Malformed {
                what: "PVH memory map entry count",
                value: entries.into(),
            });
        }
        for i in 0..u64::from(entries) {
            let e = map + i * 24;
            let start = read_u64(mem, e, "PVH memory map")?;
            let len = read_u64(mem, e + 8, "PVH memory map")?;
            let kind = read_u32(mem, e + 16, "PVH memory map")?;
            info.push_memory(MemoryRegion {
                start,
                len,
                kind: MemoryKind::from_e820(kind),
            });
        }
        info.push_boot_range(map, map + u64::from(entries) * 24);
    }
    Ok(info)
}

/// Parse a multiboot2 information block (Multiboot2 spec 3.6): `total_size`
/// at 0, tags from offset 8, each `{type: u32, size: u32}` 8-aligned. Used
/// tags: 1 command line, 6 memory map, 14/15 ACPI RSDP copies, 0 end.
pub fn parse_multiboot2(mem: &dyn Memory, addr: u64) -> Result<BootInfo, BootError> {
    let total = read_u32(mem, addr, "multiboot2 info")?;
    if !(16..=MB2_MAX_SIZE).contains(&total) {
        return Err(BootError::Malformed {
            what: "multiboot2 info size",
            value: total.into(),
        });
    }
    let end = addr + u64::from(total);
    let mut info = BootInfo::new(BootProtocol::Multiboot2);
    info.push_boot_range(addr, end);
    let mut tag = addr + 8;
    let mut have_new_rsdp = false;
    while tag + 8 <= end {
        let ty = read_u32(mem, tag, "multiboot2 tag")?;
        let size = u64::from(read_u32(mem, tag + 4, "multiboot2 tag")?);
        if ty == 0 {
            break;
        }
        if size < 8 || tag + size > end {
            return Err(BootError::Malformed {
                what: "multiboot2 tag size",
                value: size,
            });
        }
        let body = tag + 8;
        let body_len = size - 8;
        match ty {
            1 => {
                let n = (body_len as usize).min(crate::info::MAX_CMDLINE + 1);
                let mut buf = [0u8; crate::info::MAX_CMDLINE + 1];
                if !mem.read(body, &mut buf[..n]) {
                    return Err(BootError::Unreadable {
                        what: "multiboot2 command line",
                        addr: body,
                    });
                }
                let len = buf[..n].iter().position(|&b| b == 0).unwrap_or(n);
                info.set_cmdline(&buf[..len]);
                if len == n && body_len as usize > crate::info::MAX_CMDLINE {
                    info.cmdline_truncated = true;
                }
            }
            6 => {
                let entry_size = u64::from(read_u32(mem, body, "multiboot2 memory map")?);
                if !(24..=4096).contains(&entry_size) {
                    return Err(BootError::Malformed {
                        what: "multiboot2 memory map entry size",
                        value: entry_size,
                    });
                }
                let mut e = body + 8;
                while e + entry_size <= tag + size {
                    let start = read_u64(mem, e, "multiboot2 memory map")?;
                    let len = read_u64(mem, e + 8, "multiboot2 memory map")?;
                    let kind = read_u32(mem, e + 16, "multiboot2 memory map")?;
                    info.push_memory(MemoryRegion {
                        start,
                        len,
                        kind: MemoryKind::from_e820(kind),
                    });
                    e += entry_size;
                }
            }
            14 | 15 => {
                // 14 holds an ACPI 1.0 RSDP (20 bytes), 15 an ACPI 2.0+ one
                // (36 bytes); prefer the newer one when both are present.
                if ty == 14 && have_new_rsdp {
                    tag += (size + 7) & !7;
                    continue;
                }
                let want = if ty == 14 { 20 } else { 36 };
                let len = (body_len as usize).min(want);
                let mut bytes = [0u8; 36];
                if !mem.read(body, &mut bytes[..len]) {
                    return Err(BootError::Unreadable {
                        what: "multiboot2 ACPI tag",
                        addr: body,
                    });
                }
                info.rsdp = RsdpSource::Copy { bytes, len };
                have_new_rsdp |= ty == 15;
            }
            _ => {}
        }
        tag += (size + 7) & !7;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Physical memory of a test: `bytes` at `base`.
    struct FakeMemory {
        base: u64,
        bytes: Vec<u8>,
    }

    impl Memory for FakeMemory {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let Some(off) = addr.checked_sub(self.base) else {
                return false;
            };
            let off = off as usize;
            match self.bytes.get(off..off + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    fn put(bytes: &mut [u8], off: usize, v: &[u8]) {
        bytes[off..off + v.len()].copy_from_slice(v);
    }

    #[test]
    fn pvh_start_info_is_parsed() {
        let base = 0x1000u64;
        let mut b = vec![0u8; 0x400];
        // start_info at 0x1000, cmdline at 0x1100, memmap at 0x1200
        put(&mut b, 0, &0x336e_c578u32.to_le_bytes());
        put(&mut b, 4, &1u32.to_le_bytes());
        put(&mut b, 24, &0x1100u64.to_le_bytes());
        put(&mut b, 32, &0xf_5a40u64.to_le_bytes());
        put(&mut b, 40, &0x1200u64.to_le_bytes());
        put(&mut b, 48, &2u32.to_le_bytes());
        put(&mut b, 0x100, b"test=selftest log=debug\0");
        put(&mut b, 0x200, &0u64.to_le_bytes());
        put(&mut b, 0x208, &0x9fc00u64.to_le_bytes());
        put(&mut b, 0x210, &1u32.to_le_bytes());
        put(&mut b, 0x218, &0x10_0000u64.to_le_bytes());
        put(&mut b, 0x220, &0x1fee_0000u64.to_le_bytes());
        put(&mut b, 0x228, &2u32.to_le_bytes());
        let info = parse_pvh(&FakeMemory { base, bytes: b }, base).unwrap();
        assert_eq!(info.protocol, BootProtocol::Pvh);
        assert_eq!(info.cmdline(), b"test=selftest log=debug");
        assert_eq!(info.rsdp, RsdpSource::Address(0xf5a40));
        assert_eq!(
            info.memory_map(),
            &[
                MemoryRegion {
                    start: 0,
                    len: 0x9fc00,
                    kind: MemoryKind::Usable
                },
                MemoryRegion {
                    start: 0x10_0000,
                    len: 0x1fee_0000,
                    kind: MemoryKind::Reserved
                },
            ]
        );
        assert_eq!(
            info.boot_ranges(),
            &[(0x1000, 0x1038), (0x1100, 0x1118), (0x1200, 0x1230)]
        );
    }

    #[test]
    fn pvh_rejects_bad_magic_and_huge_maps() {
        let mut b = vec![0u8; 64];
        put(&mut b, 0, &0x1234u32.to_le_bytes());
        let mem = FakeMemory { base: 0, bytes: b };
        assert!(matches!(
            parse_pvh(&mem, 0),
            Err(BootError::Malformed { .. })
        ));
        let mut b = vec![0u8; 64];
        put(&mut b, 0, &PVH_MAGIC.to_le_bytes());
        put(&mut b, 4, &1u32.to_le_bytes());
        put(&mut b, 48, &100_000u32.to_le_bytes());
        let mem = FakeMemory { base: 0, bytes: b };
        assert_eq!(
            parse_pvh(&mem, 0).unwrap_err(),
            BootError::Malformed {
                what: "PVH memory map entry count",
                value: 100_000
            }
        );
        // Start info outside memory.
        assert!(matches!(
            parse_pvh(&mem, 0x10_0000),
            Err(BootError::Unreadable { .. })
        ));
    }

    /// A multiboot2 block as GRUB builds it: cmdline, mmap, ACPI old + new.
    fn multiboot2_block() -> Vec<u8> {
        let mut b = vec![0u8; 8];
        let tag = |b: &mut Vec<u8>, ty: u32, body: &[u8]| {
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
            b.extend_from_slice(body);
            while !b.len().is_multiple_of(8) {
                b.push(0);
            }
        };
        tag(&mut b, 1, b"log=info\0");
        let mut mmap = Vec::new();
        mmap.extend_from_slice(&24u32.to_le_bytes());
        mmap.extend_from_slice(&0u32.to_le_bytes());
        for (start, len, ty) in [
            (0u64, 0x9fc00u64, 1u32),
            (0x10_0000, 0x7ee_0000, 1),
            (0xfffc_0000, 0x4_0000, 2),
        ] {
            mmap.extend_from_slice(&start.to_le_bytes());
            mmap.extend_from_slice(&len.to_le_bytes());
            mmap.extend_from_slice(&ty.to_le_bytes());
            mmap.extend_from_slice(&0u32.to_le_bytes());
        }
        tag(&mut b, 6, &mmap);
        let mut v2 = [0u8; 36];
        v2[..8].copy_from_slice(b"RSD PTR ");
        v2[15] = 2;
        tag(&mut b, 15, &v2);
        let mut v1 = [0u8; 20];
        v1[..8].copy_from_slice(b"RSD PTR ");
        tag(&mut b, 14, &v1);
        tag(&mut b, 0, &[]);
        let total = b.len() as u32;
        b[..4].copy_from_slice(&total.to_le_bytes());
        b
    }

    #[test]
    fn multiboot2_tags_are_parsed() {
        let bytes = multiboot2_block();
        let total = bytes.len() as u64;
        let mem = FakeMemory {
            base: 0x8000,
            bytes,
        };
        let info = parse_multiboot2(&mem, 0x8000).unwrap();
        assert_eq!(info.protocol, BootProtocol::Multiboot2);
        assert_eq!(info.cmdline(), b"log=info");
        assert_eq!(info.memory_map().len(), 3);
        assert_eq!(info.memory_map()[2].kind, MemoryKind::Reserved);
        assert_eq!(info.memory_map()[1].len, 0x7ee_0000);
        match info.rsdp {
            RsdpSource::Copy { bytes, len } => {
                assert_eq!(len, 36);
                assert_eq!(bytes[15], 2, "the ACPI 2.0 copy wins");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(info.boot_ranges(), &[(0x8000, 0x8000 + total)]);
    }

    #[test]
    fn multiboot2_rejects_bad_sizes() {
        let mut bytes = multiboot2_block();
        // First tag claims to run past the end of the block.
        bytes[12..16].copy_from_slice(&0x1000u32.to_le_bytes());
        let mem = FakeMemory { base: 0, bytes };
        assert_eq!(
            parse_multiboot2(&mem, 0).unwrap_err(),
            BootError::Malformed {
                what: "multiboot2 tag size",
                value: 0x1000
            }
        );
        let mut bytes = multiboot2_block();
        bytes[..4].copy_from_slice(&4u32.to_le_bytes());
        let mem = FakeMemory { base: 0, bytes };
        assert!(parse_multiboot2(&mem, 0).is_err());
    }

    #[test]
    fn long_cmdline_is_truncated_and_flagged() {
        let mut b = vec![0u8; 0x1000];
        put(&mut b, 0, &PVH_MAGIC.to_le_bytes());
        put(&mut b, 24, &0x100u64.to_le_bytes());
        for x in &mut b[0x100..0x100 + 2000] {
            *x = b'a';
        }
        let info = parse_pvh(&FakeMemory { base: 0, bytes: b }, 0).unwrap();
        assert_eq!(info.cmdline().len(), crate::info::MAX_CMDLINE);
        assert!(info.cmdline_truncated);
    }
}
