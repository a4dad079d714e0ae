//! A small ACPI table reader: RSDP, RSDT/XSDT, MADT, MCFG, FADT (ACPI 6.4
//! sections 5.2.5, 5.2.7, 5.2.8, 5.2.9, 5.2.12; PCI Firmware 3.2 4.1.2 for
//! MCFG). Every table's checksum is validated; a bad table is skipped with
//! a note, never trusted.
//!
//! Not the `acpi` crate (5.x; 6.x needs nightly): its MADT entry iterator
//! spins forever on a zero-length entry and underflows on one longer than
//! the rest of the table (the walk then runs past it), its MADT and MCFG
//! interpretation (`PlatformInfo`, `PciConfigRegions`) needs the nightly
//! `allocator_api`, and it reads tables in place through references into
//! mapped physical memory, where this reader copies checked bytes through
//! [`Memory`] (which host tests feed).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use bitfield_struct::bitfield;
use cxos_boot::Memory;

/// Largest table accepted (MADTs of big machines are a few KiB).
const MAX_TABLE: u32 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcpiError {
    NoRsdp,
    BadRsdp(&'static str),
    Unreadable(u64),
    BadTable {
        signature: [u8; 4],
        addr: u64,
        why: &'static str,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRsdp => write!(f, "no RSDP found"),
            Self::BadRsdp(why) => write!(f, "bad RSDP: {why}"),
            Self::Unreadable(a) => write!(f, "table at {a:#x} not readable"),
            Self::BadTable {
                signature,
                addr,
                why,
            } => write!(
                f,
                "table {} at {addr:#x}: {why}",
                String::from_utf8_lossy(signature)
            ),
        }
    }
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)) == 0
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap_or([0; 8]))
}

/// The root pointer: where the RSDT and (ACPI 2.0+) the XSDT are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rsdp {
    pub revision: u8,
    pub rsdt: u32,
    pub xsdt: Option<u64>,
}

/// Validate RSDP bytes (20 for revision 0, 36 otherwise).
pub fn parse_rsdp(b: &[u8]) -> Result<Rsdp, AcpiError> {
    if b.len() < 20 || &b[..8] != b"RSD PTR " {
        return Err(AcpiError::BadRsdp("signature"));
    }
    if !checksum_ok(&b[..20]) {
        return Err(AcpiError::BadRsdp("checksum"));
    }
    let revision = b[15];
    let rsdt = u32_at(b, 16);
    if revision < 2 {
        return Ok(Rsdp {
            revision,
            rsdt,
            xsdt: None,
        });
    }
    if b.len() < 36 {
        return Err(AcpiError::BadRsdp("revision 2 RSDP shorter than 36 bytes"));
    }
    let len = u32_at(b, 20) as usize;
    if len < 36 || len > b.len().max(36) || !checksum_ok(&b[..36]) {
        return Err(AcpiError::BadRsdp("extended checksum"));
    }
    let xsdt = u64_at(b, 24);
    Ok(Rsdp {
        revision,
        rsdt,
        xsdt: (xsdt != 0).then_some(xsdt),
    })
}

/// Read the 36 RSDP bytes at `addr` (fewer are valid for revision 0).
pub fn read_rsdp(mem: &dyn Memory, addr: u64) -> Result<Rsdp, AcpiError> {
    let mut b = [0u8; 36];
    if !mem.read(addr, &mut b[..20]) {
        return Err(AcpiError::Unreadable(addr));
    }
    if b[15] >= 2 && !mem.read(addr, &mut b) {
        return Err(AcpiError::Unreadable(addr));
    }
    parse_rsdp(if b[15] >= 2 { &b } else { &b[..20] })
}

/// Find the RSDP in `[start, start + len)` on 16-byte boundaries (the EBDA's
/// first KiB and 0xe0000..0x100000 on BIOS machines).
pub fn scan_rsdp(mem: &dyn Memory, start: u64, len: u64) -> Option<u64> {
    let mut a = start & !15;
    while a + 20 <= start + len {
        let mut sig = [0u8; 8];
        if mem.read(a, &mut sig) && &sig == b"RSD PTR " && read_rsdp(mem, a).is_ok() {
            return Some(a);
        }
        a += 16;
    }
    None
}

/// Read a whole table at `addr` and check its length and checksum.
pub fn read_table(mem: &dyn Memory, addr: u64) -> Result<Vec<u8>, AcpiError> {
    let mut hdr = [0u8; 36];
    if !mem.read(addr, &mut hdr) {
        return Err(AcpiError::Unreadable(addr));
    }
    let signature: [u8; 4] = hdr[..4].try_into().unwrap_or([0; 4]);
    let len = u32_at(&hdr, 4);
    if !(36..=MAX_TABLE).contains(&len) {
        return Err(AcpiError::BadTable {
            signature,
            addr,
            why: "length out of range",
        });
    }
    let mut t = alloc::vec![0u8; len as usize];
    if !mem.read(addr, &mut t) {
        return Err(AcpiError::Unreadable(addr));
    }
    if !checksum_ok(&t) {
        return Err(AcpiError::BadTable {
            signature,
            addr,
            why: "checksum",
        });
    }
    Ok(t)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalApic {
    pub processor_uid: u32,
    pub apic_id: u32,
    pub enabled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

/// An ISA IRQ routed to another GSI or with non-default polarity/trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptOverride {
    pub source: u8,
    pub gsi: u32,
    pub flags: MpsIntiFlags,
}

/// MPS INTI flags of an interrupt source override (ACPI 6.4 table 5.50).
#[bitfield(u16)]
#[derive(PartialEq, Eq)]
pub struct MpsIntiFlags {
    /// 00b: as the bus (ISA: active high), 01b active high, 11b active low.
    #[bits(2)]
    pub polarity: u8,
    /// 00b: as the bus (ISA: edge), 01b edge, 11b level.
    #[bits(2)]
    pub trigger_mode: u8,
    #[bits(12)]
    __: u16,
}

impl MpsIntiFlags {
    pub const fn active_low(&self) -> bool {
        self.polarity() == 0b11
    }

    pub const fn level_triggered(&self) -> bool {
        self.trigger_mode() == 0b11
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Madt {
    pub local_apic_address: u64,
    pub local_apics: Vec<LocalApic>,
    pub io_apics: Vec<IoApic>,
    pub overrides: Vec<InterruptOverride>,
    /// Set when PC-AT compatible 8259s are present (flags bit 0).
    pub pcat_compat: bool,
}

/// Parse a checksummed MADT ("APIC"). Truncated entries end the walk.
pub fn parse_madt(t: &[u8]) -> Madt {
    let mut m = Madt {
        local_apic_address: u64::from(u32_at(t, 36)),
        pcat_compat: u32_at(t, 40) & 1 != 0,
        ..Madt::default()
    };
    let mut off = 44;
    while off + 2 <= t.len() {
        let ty = t[off];
        let len = usize::from(t[off + 1]);
        if len < 2 || off + len > t.len() {
            break;
        }
        let e = &t[off..off + len];
        match (ty, len) {
            (0, 8..) => m.local_apics.push(LocalApic {
                processor_uid: e[2].into(),
                apic_id: e[3].into(),
                enabled: u32_at(e, 4) & 3 != 0,
            }),
            (1, 12..) => m.io_apics.push(IoApic {
                id: e[2],
                address: u32_at(e, 4),
                gsi_base: u32_at(e, 8),
            }),
            (2, 10..) => m.overrides.push(InterruptOverride {
                source: e[3],
                gsi: u32_at(e, 4),
                flags: MpsIntiFlags::from_bits(u16_at(e, 8)),
            }),
            (5, 12..) => m.local_apic_address = u64_at(e, 4),
            (9, 16..) => m.local_apics.push(LocalApic {
                processor_uid: u32_at(e, 12),
                apic_id: u32_at(e, 4),
                enabled: u32_at(e, 8) & 3 != 0,
            }),
            _ => {}
        }
        off += len;
    }
    m
}

/// One ECAM window of the MCFG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcamRegion {
    pub base: u64,
    pub segment: u16,
    pub start_bus: u8,
    pub end_bus: u8,
}

/// Parse a checksummed MCFG: entries of 16 bytes from offset 44.
pub fn parse_mcfg(t: &[u8]) -> Vec<EcamRegion> {
    t.get(44..)
        .unwrap_or(&[])
        .chunks_exact(16)
        .map(|e| EcamRegion {
            base: u64_at(e, 0),
            segment: u16_at(e, 8),
            start_bus: e[10],
            end_bus: e[11],
        })
        .filter(|r| r.start_bus <= r.end_bus && r.base != 0)
        .collect()
}

/// What the kernel uses from the FADT ("FACP").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fadt {
    /// I/O port of the PM timer, if any.
    pub pm_timer_port: Option<u16>,
    /// The PM timer counts 32 bits (else 24).
    pub pm_timer_32bit: bool,
    pub pm1a_control_port: Option<u16>,
    /// Physical address of the DSDT (X_DSDT preferred).
    pub dsdt: Option<u64>,
}

pub fn parse_fadt(t: &[u8]) -> Fadt {
    let word = |off: usize| (t.len() >= off + 4).then(|| u32_at(t, off));
    let port = |v: Option<u32>| v.filter(|&p| p != 0 && p <= 0xffff).map(|p| p as u16);
    Fadt {
        pm_timer_port: port(word(76)),
        pm_timer_32bit: word(112).is_some_and(|f| f & (1 << 8) != 0),
        pm1a_control_port: port(word(64)),
        dsdt: (t.len() >= 148)
            .then(|| u64_at(t, 140))
            .filter(|&a| a != 0)
            .or_else(|| word(40).filter(|&a| a != 0).map(u64::from)),
    }
}

/// SLP_TYPa of the `\_S5_` package in a DSDT (ACPI 6.4 7.4.2): the bytes
/// `_S5_`, PackageOp 0x12, PkgLength (1..4 bytes), NumElements, then the
/// first element as ZeroOp/OneOp/BytePrefix. Enough for soft-off without an
/// AML interpreter; anything else gives `None`.
pub fn find_s5(dsdt: &[u8]) -> Option<u8> {
    let body = dsdt.get(36..)?;
    let at = body.windows(4).position(|w| w == b"_S5_")?;
    let rest = body.get(at + 4..)?;
    if *rest.first()? != 0x12 {
        return None;
    }
    let extra = usize::from(rest.get(1)? >> 6);
    let elem = rest.get(1 + 1 + extra + 1..)?;
    match *elem.first()? {
        0x00 => Some(0),
        0x01 => Some(1),
        0x0a => elem.get(1).copied(),
        _ => None,
    }
}

/// Everything found, plus notes about tables that were skipped.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    pub madt: Option<Madt>,
    pub mcfg: Vec<EcamRegion>,
    pub fadt: Option<Fadt>,
    /// `[start, end)` of every table read, to keep them out of the allocator.
    pub ranges: Vec<(u64, u64)>,
    pub notes: Vec<AcpiError>,
}

/// Walk the XSDT (or the RSDT before ACPI 2.0) and parse the known tables.
pub fn read_tables(mem: &dyn Memory, rsdp: &Rsdp) -> Result<Tables, AcpiError> {
    let (root_addr, entry_size) = match rsdp.xsdt {
        Some(x) => (x, 8),
        None => (u64::from(rsdp.rsdt), 4),
    };
    let root = read_table(mem, root_addr)?;
    let mut out = Tables::default();
    out.ranges.push((root_addr, root_addr + root.len() as u64));
    for e in root[36..].chunks_exact(entry_size) {
        let addr = if entry_size == 8 {
            u64_at(e, 0)
        } else {
            u64::from(u32_at(e, 0))
        };
        let t = match read_table(mem, addr) {
            Ok(t) => t,
            Err(err) => {
                out.notes.push(err);
                continue;
            }
        };
        out.ranges.push((addr, addr + t.len() as u64));
        match &t[..4] {
            b"APIC" => out.madt = Some(parse_madt(&t)),
            b"MCFG" => out.mcfg = parse_mcfg(&t),
            b"FACP" => out.fadt = Some(parse_fadt(&t)),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Physical memory of a test: `bytes` at `base`.
    #[derive(Debug)]
    pub struct FakeMemory {
        pub base: u64,
        pub bytes: Vec<u8>,
    }

    impl Memory for FakeMemory {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let Some(off) = addr.checked_sub(self.base) else {
                return false;
            };
            match self.bytes.get(off as usize..off as usize + buf.len()) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
    }

    fn fix_checksum(b: &mut [u8], at: usize) {
        b[at] = 0;
        let sum = b.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        b[at] = 0u8.wrapping_sub(sum);
    }

    /// A table with the standard 36-byte header and `body`.
    fn table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&(36 + body.len() as u32).to_le_bytes());
        t.push(1); // revision
        t.push(0); // checksum
        t.extend_from_slice(b"CXOSTS");
        t.extend_from_slice(b"TESTTABL");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(b"CXOS");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(body);
        fix_checksum(&mut t, 9);
        t
    }

    fn rsdp_v2(xsdt: u64) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(b"RSD PTR ");
        r.push(0);
        r.extend_from_slice(b"BOCHS ");
        r.push(2);
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&36u32.to_le_bytes());
        r.extend_from_slice(&xsdt.to_le_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]);
        let mut first = r[..20].to_vec();
        fix_checksum(&mut first, 8);
        r[8] = first[8];
        fix_checksum(&mut r, 32);
        r
    }

    /// The MADT body of a 2-CPU q35: LAPIC address, flags, 2 local APICs,
    /// one I/O APIC, the IRQ0 -> GSI2 override and a level-triggered SCI.
    fn madt_body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
        b.extend_from_slice(&[0, 8, 1, 1, 0, 0, 0, 0]); // disabled
        b.extend_from_slice(&[1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0]);
        b.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]);
        b.extend_from_slice(&[0x7f, 3, 0]); // unknown type: skipped
        b
    }

    fn mcfg_body() -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b.extend_from_slice(&0xb000_0000u64.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0xff, 0, 0, 0, 0]);
        b
    }

    /// Memory at 0x1000: RSDP at 0x1000, XSDT at 0x1100, MADT at 0x1200,
    /// MCFG at 0x1400, FADT at 0x1500.
    fn machine(corrupt_mcfg: bool) -> FakeMemory {
        let base = 0x1000u64;
        let mut mem = vec![0u8; 0x800];
        let put = |m: &mut Vec<u8>, at: u64, b: &[u8]| {
            let o = (at - base) as usize;
            m[o..o + b.len()].copy_from_slice(b);
        };
        put(&mut mem, 0x1000, &rsdp_v2(0x1100));
        let mut xsdt_body = Vec::new();
        for a in [0x1200u64, 0x1400, 0x1500] {
            xsdt_body.extend_from_slice(&a.to_le_bytes());
        }
        put(&mut mem, 0x1100, &table(b"XSDT", &xsdt_body));
        put(&mut mem, 0x1200, &table(b"APIC", &madt_body()));
        let mut mcfg = table(b"MCFG", &mcfg_body());
        if corrupt_mcfg {
            mcfg[50] ^= 1;
        }
        put(&mut mem, 0x1400, &mcfg);
        let mut fadt = vec![0u8; 244 - 36];
        fadt[64 - 36..68 - 36].copy_from_slice(&0x604u32.to_le_bytes());
        fadt[76 - 36..80 - 36].copy_from_slice(&0x608u32.to_le_bytes());
        fadt[112 - 36..116 - 36].copy_from_slice(&(1u32 << 8).to_le_bytes());
        fadt[40 - 36..44 - 36].copy_from_slice(&0x1600u32.to_le_bytes());
        put(&mut mem, 0x1500, &table(b"FACP", &fadt));
        FakeMemory { base, bytes: mem }
    }

    #[test]
    fn rsdp_checksums() {
        let r = rsdp_v2(0x1234_5678);
        assert_eq!(
            parse_rsdp(&r).unwrap(),
            Rsdp {
                revision: 2,
                rsdt: 0,
                xsdt: Some(0x1234_5678)
            }
        );
        let mut bad = r.clone();
        bad[30] ^= 0x40;
        assert_eq!(
            parse_rsdp(&bad),
            Err(AcpiError::BadRsdp("extended checksum"))
        );
        let mut bad = r.clone();
        bad[16] ^= 1;
        assert_eq!(parse_rsdp(&bad), Err(AcpiError::BadRsdp("checksum")));
        assert_eq!(
            parse_rsdp(b"RSD PTX 0123456789ab"),
            Err(AcpiError::BadRsdp("signature"))
        );
    }

    #[test]
    fn full_walk() {
        let mem = machine(false);
        assert_eq!(scan_rsdp(&mem, 0x1000, 0x800), Some(0x1000));
        let rsdp = read_rsdp(&mem, 0x1000).unwrap();
        let t = read_tables(&mem, &rsdp).unwrap();
        assert!(t.notes.is_empty(), "{:?}", t.notes);
        let madt = t.madt.unwrap();
        assert_eq!(madt.local_apic_address, 0xfee0_0000);
        assert!(madt.pcat_compat);
        assert_eq!(
            madt.local_apics,
            vec![
                LocalApic {
                    processor_uid: 0,
                    apic_id: 0,
                    enabled: true
                },
                LocalApic {
                    processor_uid: 1,
                    apic_id: 1,
                    enabled: false
                }
            ]
        );
        assert_eq!(
            madt.io_apics,
            vec![IoApic {
                id: 0,
                address: 0xfec0_0000,
                gsi_base: 0
            }]
        );
        assert_eq!(
            madt.overrides,
            vec![
                InterruptOverride {
                    source: 0,
                    gsi: 2,
                    flags: MpsIntiFlags::from_bits(0)
                },
                InterruptOverride {
                    source: 9,
                    gsi: 9,
                    flags: MpsIntiFlags::from_bits(0xd)
                }
            ]
        );
        // The SCI: active high (01b), level (11b).
        assert!(madt.overrides[1].flags.level_triggered());
        assert!(!madt.overrides[1].flags.active_low());
        assert!(!madt.overrides[0].flags.level_triggered());
        assert_eq!(
            t.mcfg,
            vec![EcamRegion {
                base: 0xb000_0000,
                segment: 0,
                start_bus: 0,
                end_bus: 0xff
            }]
        );
        assert_eq!(
            t.fadt,
            Some(Fadt {
                pm_timer_port: Some(0x608),
                pm_timer_32bit: true,
                pm1a_control_port: Some(0x604),
                dsdt: Some(0x1600)
            })
        );
        assert_eq!(t.ranges.len(), 4);
    }

    #[test]
    fn bad_table_is_skipped_with_note() {
        let mem = machine(true);
        let rsdp = read_rsdp(&mem, 0x1000).unwrap();
        let t = read_tables(&mem, &rsdp).unwrap();
        assert!(t.mcfg.is_empty());
        assert!(t.madt.is_some());
        assert_eq!(
            t.notes,
            vec![AcpiError::BadTable {
                signature: *b"MCFG",
                addr: 0x1400,
                why: "checksum"
            }]
        );
        assert_eq!(t.notes[0].to_string(), "table MCFG at 0x1400: checksum");
    }

    #[test]
    fn truncated_madt_entries_stop_the_walk() {
        let mut body = madt_body();
        // An entry claiming 200 bytes at the end.
        body.extend_from_slice(&[1, 200, 0, 0]);
        let t = table(b"APIC", &body);
        let m = parse_madt(&t);
        assert_eq!(m.io_apics.len(), 1);
        // Zero-length entry would loop forever if not refused.
        let mut body = madt_body();
        body.truncate(8);
        body.extend_from_slice(&[0, 0, 0, 0]);
        let m = parse_madt(&table(b"APIC", &body));
        assert!(m.local_apics.is_empty());
    }

    #[test]
    fn s5_package() {
        // Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero }) as QEMU q35.
        let q35 = table(
            b"DSDT",
            &[
                0x10, 0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
            ],
        );
        assert_eq!(find_s5(&q35), Some(0));
        // Name (_S5, Package (0x02) { 0x05, 0x05 }) with a BytePrefix.
        let b = table(
            b"DSDT",
            &[
                0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x02, 0x0a, 0x05, 0x0a, 0x05,
            ],
        );
        assert_eq!(find_s5(&b), Some(5));
        // Two-byte PkgLength.
        let b = table(
            b"DSDT",
            &[
                0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x40, 0x01, 0x02, 0x01, 0x00,
            ],
        );
        assert_eq!(find_s5(&b), Some(1));
        assert_eq!(find_s5(&table(b"DSDT", b"_S5_")), None);
        assert_eq!(find_s5(&table(b"DSDT", b"nothing")), None);
        assert_eq!(find_s5(&[0u8; 10]), None);
    }

    #[test]
    fn missing_rsdp_and_bad_lengths() {
        let mem = FakeMemory {
            base: 0xe0000,
            bytes: vec![0; 0x2000],
        };
        assert_eq!(scan_rsdp(&mem, 0xe0000, 0x2000), None);
        let mut bytes = table(b"APIC", &madt_body());
        bytes[4..8].copy_from_slice(&10u32.to_le_bytes());
        let mem = FakeMemory {
            base: 0x1000,
            bytes,
        };
        assert!(matches!(
            read_table(&mem, 0x1000),
            Err(AcpiError::BadTable {
                why: "length out of range",
                ..
            })
        ));
        assert_eq!(read_table(&mem, 0x9000), Err(AcpiError::Unreadable(0x9000)));
    }
}
