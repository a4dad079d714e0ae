//! Building the kernel ELF, and reading its size.

use std::path::PathBuf;
use std::process::Command;

use crate::workspace::{Workspace, cargo};
use crate::{Result, XtaskError};

/// Which cargo profile builds the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `kernel`: release with panic = abort.
    Release,
    /// `kernel-dev`: dev with panic = abort (`--dev`).
    Dev,
}

impl Profile {
    pub fn from_dev_flag(dev: bool) -> Self {
        if dev { Self::Dev } else { Self::Release }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Release => "kernel",
            Self::Dev => "kernel-dev",
        }
    }
}

/// Where cargo puts the kernel binary for `profile`: `<target>/<profile>/cxos`.
pub fn elf_path(ws: &Workspace, profile: Profile) -> PathBuf {
    ws.target.join(profile.name()).join("cxos")
}

/// Builds the kernel and returns the ELF's path.
pub fn build(ws: &Workspace, profile: Profile) -> Result<PathBuf> {
    let status = Command::new(cargo())
        .args([
            "build",
            "--package",
            "cxos-kernel",
            "--profile",
            profile.name(),
        ])
        .current_dir(&ws.root)
        .status()
        .map_err(|e| XtaskError::msg(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(XtaskError::msg(format!("kernel build failed ({status})")));
    }
    let elf = elf_path(ws, profile);
    if !elf.is_file() {
        return Err(XtaskError::msg(format!(
            "kernel build succeeded but {} does not exist",
            elf.display()
        )));
    }
    Ok(elf)
}

/// Sizes of an ELF image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfSizes {
    /// Bytes of the file (with symbols and debug info).
    pub file: u64,
    /// Bytes the loader copies from the file (code and data): the sum of `p_filesz` of PT_LOAD segments.
    pub load_file: u64,
    /// Bytes the loaded image occupies in memory (with .bss): the sum of `p_memsz` of PT_LOAD segments.
    pub load_memory: u64,
}

/// Reads the program headers of a 64-bit little-endian ELF.
pub fn elf_sizes(bytes: &[u8]) -> Result<ElfSizes> {
    const PT_LOAD: u32 = 1;
    let bad = |why: &str| XtaskError::msg(format!("not a usable ELF64 file: {why}"));
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(bad("no ELF header"));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(bad("not 64-bit little-endian"));
    }
    let u16_at = |off: usize| u16::from_le_bytes([bytes[off], bytes[off + 1]]);
    let u64_at = |off: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            bytes.get(off..off + 8)?.try_into().ok()?,
        ))
    };
    // e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38 (ELF64 header).
    let phoff = u64_at(0x20).ok_or_else(|| bad("short header"))? as usize;
    let phentsize = u16_at(0x36) as usize;
    let phnum = u16_at(0x38) as usize;
    if phentsize < 56 {
        return Err(bad("program header entries too small"));
    }
    let mut load_file = 0u64;
    let mut load_memory = 0u64;
    for i in 0..phnum {
        let base = phoff
            .checked_add(i.checked_mul(phentsize).ok_or_else(|| bad("overflow"))?)
            .ok_or_else(|| bad("overflow"))?;
        let header = bytes
            .get(base..base + 56)
            .ok_or_else(|| bad("program header past end"))?;
        let p_type = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        // p_filesz at 0x20 and p_memsz at 0x28 of an Elf64_Phdr.
        let p_filesz = u64::from_le_bytes(header[0x20..0x28].try_into().expect("8 bytes"));
        let p_memsz = u64::from_le_bytes(header[0x28..0x30].try_into().expect("8 bytes"));
        if p_type == PT_LOAD {
            load_file = load_file.saturating_add(p_filesz);
            load_memory = load_memory.saturating_add(p_memsz);
        }
    }
    Ok(ElfSizes {
        file: bytes.len() as u64,
        load_file,
        load_memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made ELF64 header with two PT_LOAD (file 0x800 + 0x200, memory
    /// 0x1000 + 0x234 bytes) and one PT_NOTE (0x18).
    fn tiny_elf() -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 3 * 56];
        elf[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[0x38..0x3a].copy_from_slice(&3u16.to_le_bytes()); // e_phnum
        let segments = [
            (1u32, 0x800u64, 0x1000u64),
            (4, 0x18, 0x18),
            (1, 0x200, 0x234),
        ];
        for (i, (ty, filesz, memsz)) in segments.into_iter().enumerate() {
            let ph = 64 + i * 56;
            elf[ph..ph + 4].copy_from_slice(&ty.to_le_bytes());
            elf[ph + 0x20..ph + 0x28].copy_from_slice(&filesz.to_le_bytes());
            elf[ph + 0x28..ph + 0x30].copy_from_slice(&memsz.to_le_bytes());
        }
        elf
    }

    #[test]
    fn sums_load_segments_only() {
        let elf = tiny_elf();
        let sizes = elf_sizes(&elf).unwrap();
        assert_eq!(sizes.load_file, 0xa00);
        assert_eq!(sizes.load_memory, 0x1234);
        assert_eq!(sizes.file, elf.len() as u64);
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        let elf = tiny_elf();
        assert!(elf_sizes(&elf[..100]).is_err());
        assert!(elf_sizes(b"#!/bin/sh\n").is_err());
        let mut be = elf.clone();
        be[5] = 2;
        assert!(elf_sizes(&be).is_err());
    }

    #[test]
    fn profiles_map_to_cargo_dirs() {
        let ws = Workspace {
            root: "/w".into(),
            target: "/t".into(),
            bench_targets: Vec::new(),
        };
        assert_eq!(
            elf_path(&ws, Profile::Release),
            PathBuf::from("/t/kernel/cxos")
        );
        assert_eq!(
            elf_path(&ws, Profile::from_dev_flag(true)),
            PathBuf::from("/t/kernel-dev/cxos")
        );
    }
}
