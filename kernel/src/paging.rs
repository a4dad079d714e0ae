//! Identity mapping with 2 MiB pages in 4-level x86_64 page tables (Intel
//! SDM vol. 3 4.5): RAM above the boot map and device memory anywhere in
//! the 64-bit space. Device memory is uncached (PCD|PWT selects PAT entry 3,
//! UC, with the power-on PAT). One more kind of mapping: a 4 KiB page at a
//! chosen (non-identity) address, for the write-combining alias of a
//! device's BlueFlame buffers ([`map_4k_alias`], [`PAT_VALUE`]).
//!
//! The walk runs over [`TableMemory`] so host tests can check the entries
//! it writes; the kernel implements it over the identity-mapped tables.
//! Entry flags are `x86_64`'s [`PageTableFlags`].

use core::fmt;

use x86_64::structures::paging::PageTableFlags as Flags;

/// Physical address bits 51:12 of an entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
pub const TWO_MIB: u64 = 2 << 20;
/// 52-bit physical addresses at most (architectural limit).
pub const MAX_PHYS: u64 = 1 << 52;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    WriteBack,
    Uncached,
    /// PAT entry [`PAT_WC_INDEX`], programmed WC by [`PAT_VALUE`].
    WriteCombining,
}

/// The IA32_PAT MSR (Intel SDM vol. 3 11.12.2, "IA32_PAT MSR"; vol. 4
/// table 2-2, address 277H).
pub const IA32_PAT: u32 = 0x277;

/// The PAT entry cxos makes write-combining: entry 1, selected by PWT
/// alone (SDM vol. 3 table 11-11: index = PAT*4 + PCD*2 + PWT), so the
/// same flags select it in 4 KiB and 2 MiB entries (whose PAT bits sit at
/// different positions, 7 and 12). Its power-on type, WT, is used by no
/// mapping cxos makes: those use entry 0 (WB, no bits) and entry 3 (UC,
/// PCD|PWT), and a split 2 MiB page keeps PWT and PCD as they were.
pub const PAT_WC_INDEX: u64 = 1;

/// The IA32_PAT value every CPU is given: the power-on value
/// 0x0007_0406_0007_0406 (SDM vol. 3 table 11-12: WB, WT, UC-, UC, WB,
/// WT, UC-, UC) with entry 1 (bits 10:8) changed from WT (04H) to WC
/// (01H; memory-type encodings in SDM vol. 3 table 11-10).
pub const PAT_VALUE: u64 = 0x0007_0406_0007_0106;

/// The PWT/PCD/PAT bits of a 4 KiB entry for `cache`.
fn cache_flags_4k(cache: Cache) -> Flags {
    match cache {
        Cache::WriteBack => Flags::empty(),
        Cache::Uncached => Flags::NO_CACHE | Flags::WRITE_THROUGH,
        Cache::WriteCombining => Flags::WRITE_THROUGH,
    }
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    OutOfFrames,
    BadRange { start: u64, len: u64 },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfFrames => write!(f, "no frame for a page table"),
            Self::BadRange { start, len } => write!(f, "cannot map [{start:#x}, +{len:#x})"),
        }
    }
}

/// Access to page tables by physical address.
pub trait TableMemory {
    /// Entry `index` (< 512) of the table at `table`.
    fn read(&self, table: u64, index: usize) -> u64;
    fn write(&mut self, table: u64, index: usize, value: u64);
    /// A zeroed 4 KiB frame for a new table.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Drop the TLB entry of `addr` (its mapping changed).
    fn flush(&mut self, addr: u64);
}

/// The flags of entry `e` (its address bits dropped).
fn flags(e: u64) -> Flags {
    Flags::from_bits_truncate(e)
}

/// An entry pointing at `addr` with `flags`.
fn entry(addr: u64, flags: Flags) -> u64 {
    addr | flags.bits()
}

/// Flags of an entry pointing at a lower-level table.
const TABLE: Flags = Flags::PRESENT.union(Flags::WRITABLE);

/// The next-level table of entry `index` of `table`, created if absent.
fn next_table(mem: &mut dyn TableMemory, table: u64, index: usize) -> Result<u64, MapError> {
    let e = mem.read(table, index);
    if flags(e).contains(Flags::PRESENT) {
        return Ok(e & ADDR_MASK);
    }
    let t = mem.alloc_table().ok_or(MapError::OutOfFrames)?;
    mem.write(table, index, entry(t, TABLE));
    Ok(t)
}

/// Identity map `[start, start + len)` with 2 MiB pages under `pml4`.
/// Existing 2 MiB mappings are re-flagged (so device memory next to RAM
/// turns uncached); 1 GiB pages made by someone else are left alone.
pub fn map_identity(
    mem: &mut dyn TableMemory,
    pml4: u64,
    start: u64,
    len: u64,
    cache: Cache,
) -> Result<(), MapError> {
    let end = start
        .checked_add(len)
        .filter(|&e| e <= MAX_PHYS && len > 0)
        .ok_or(MapError::BadRange { start, len })?;
    let page = Flags::PRESENT
        | Flags::WRITABLE
        | Flags::HUGE_PAGE
        // PWT and PCD are at the same positions in a 2 MiB entry, and no
        // type here needs its PAT bit (bit 12).
        | cache_flags_4k(cache);
    let mut a = start & !(TWO_MIB - 1);
    while a < end {
        let pdpt = next_table(mem, pml4, ((a >> 39) & 511) as usize)?;
        let pdpt_index = ((a >> 30) & 511) as usize;
        if flags(mem.read(pdpt, pdpt_index)).contains(Flags::PRESENT | Flags::HUGE_PAGE) {
            a += TWO_MIB;
            continue;
        }
        let pd = next_table(mem, pdpt, pdpt_index)?;
        let pd_index = ((a >> 21) & 511) as usize;
        let old = mem.read(pd, pd_index);
        let new = entry(a, page);
        if old != new {
            mem.write(pd, pd_index, new);
            if flags(old).contains(Flags::PRESENT | Flags::HUGE_PAGE) {
                mem.flush(a);
            } else if flags(old).contains(Flags::PRESENT) {
                // It was split into 4 KiB pages: any of them may be cached.
                (0..512).for_each(|i| mem.flush(a + i * 0x1000));
            }
        }
        a += TWO_MIB;
    }
    Ok(())
}

/// Make the 4 KiB page at `addr` not present (a guard page below a stack),
/// splitting the 2 MiB page around it into 4 KiB pages with the same
/// attributes. A later [`map_identity`] over that 2 MiB maps it whole again.
pub fn unmap_4k(mem: &mut dyn TableMemory, pml4: u64, addr: u64) -> Result<(), MapError> {
    let bad = MapError::BadRange {
        start: addr,
        len: 0x1000,
    };
    if !addr.is_multiple_of(0x1000) || addr >= MAX_PHYS {
        return Err(bad);
    }
    let pml4e = mem.read(pml4, ((addr >> 39) & 511) as usize);
    if !flags(pml4e).contains(Flags::PRESENT) {
        return Ok(());
    }
    let pdpt = pml4e & ADDR_MASK;
    let pdpte = mem.read(pdpt, ((addr >> 30) & 511) as usize);
    if !flags(pdpte).contains(Flags::PRESENT) {
        return Ok(());
    }
    if flags(pdpte).contains(Flags::HUGE_PAGE) {
        return Err(bad);
    }
    let pd = pdpte & ADDR_MASK;
    let pd_index = ((addr >> 21) & 511) as usize;
    let pde = mem.read(pd, pd_index);
    if !flags(pde).contains(Flags::PRESENT) {
        return Ok(());
    }
    let pt = if flags(pde).contains(Flags::HUGE_PAGE) {
        let pt = mem.alloc_table().ok_or(MapError::OutOfFrames)?;
        let base = pde & ADDR_MASK & !(TWO_MIB - 1);
        // 4 KiB entries keep present/writable/PWT/PCD; bit 7 means PAT
        // there, so the huge-page bit is not carried over.
        let attrs = flags(pde)
            & (Flags::PRESENT | Flags::WRITABLE | Flags::WRITE_THROUGH | Flags::NO_CACHE);
        for i in 0..512u64 {
            mem.write(pt, i as usize, entry(base + i * 0x1000, attrs));
        }
        mem.write(pd, pd_index, entry(pt, TABLE));
        mem.flush(base);
        pt
    } else {
        pde & ADDR_MASK
    };
    mem.write(pt, ((addr >> 12) & 511) as usize, 0);
    mem.flush(addr);
    Ok(())
}

/// Map the 4 KiB page at `addr` again (identity, write-back), undoing
/// [`unmap_4k`]; the 2 MiB page around it must already be split (a page
/// inside a 2 MiB mapping is mapped already: nothing to do). The TLB
/// shootdown test unmaps and maps back a page another CPU has cached.
pub fn map_4k(mem: &mut dyn TableMemory, pml4: u64, addr: u64) -> Result<(), MapError> {
    let bad = MapError::BadRange {
        start: addr,
        len: 0x1000,
    };
    if !addr.is_multiple_of(0x1000) || addr >= MAX_PHYS {
        return Err(bad);
    }
    let pml4e = mem.read(pml4, ((addr >> 39) & 511) as usize);
    if !flags(pml4e).contains(Flags::PRESENT) {
        return Err(bad);
    }
    let pdpte = mem.read(pml4e & ADDR_MASK, ((addr >> 30) & 511) as usize);
    if !flags(pdpte).contains(Flags::PRESENT) {
        return Err(bad);
    }
    if flags(pdpte).contains(Flags::HUGE_PAGE) {
        return Ok(());
    }
    let pde = mem.read(pdpte & ADDR_MASK, ((addr >> 21) & 511) as usize);
    if !flags(pde).contains(Flags::PRESENT) {
        return Err(bad);
    }
    if flags(pde).contains(Flags::HUGE_PAGE) {
        return Ok(());
    }
    let pt = pde & ADDR_MASK;
    let index = ((addr >> 12) & 511) as usize;
    let new = entry(addr, Flags::PRESENT | Flags::WRITABLE);
    let old = mem.read(pt, index);
    if old != new {
        mem.write(pt, index, new);
        if flags(old).contains(Flags::PRESENT) {
            mem.flush(addr);
        }
    }
    Ok(())
}

/// Map the 4 KiB page at virtual address `virt` to physical `phys` with
/// `cache`, creating tables as needed: an alias of a page
/// that is also identity-mapped with another type. A `virt` inside a
/// 2 MiB or 1 GiB page is refused; an entry that was present and changes
/// is flushed.
pub fn map_4k_alias(
    mem: &mut dyn TableMemory,
    pml4: u64,
    virt: u64,
    phys: u64,
    cache: Cache,
) -> Result<(), MapError> {
    let bad = MapError::BadRange {
        start: virt,
        len: 0x1000,
    };
    if !virt.is_multiple_of(0x1000) || !phys.is_multiple_of(0x1000) || phys >= MAX_PHYS {
        return Err(bad);
    }
    let pdpt = next_table(mem, pml4, ((virt >> 39) & 511) as usize)?;
    let pdpt_index = ((virt >> 30) & 511) as usize;
    if flags(mem.read(pdpt, pdpt_index)).contains(Flags::PRESENT | Flags::HUGE_PAGE) {
        return Err(bad);
    }
    let pd = next_table(mem, pdpt, pdpt_index)?;
    let pd_index = ((virt >> 21) & 511) as usize;
    if flags(mem.read(pd, pd_index)).contains(Flags::PRESENT | Flags::HUGE_PAGE) {
        return Err(bad);
    }
    let pt = next_table(mem, pd, pd_index)?;
    let index = ((virt >> 12) & 511) as usize;
    // No NX bit: EFER.NXE is not always on (bit 63 is reserved then).
    let new = entry(
        phys,
        Flags::PRESENT | Flags::WRITABLE | cache_flags_4k(cache),
    );
    let old = mem.read(pt, index);
    if old != new {
        mem.write(pt, index, new);
        if flags(old).contains(Flags::PRESENT) {
            mem.flush(virt);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    // Entry bits as the SDM numbers them (vol. 3 tables 4-15..4-20),
    // written out so the tests do not take them from the code under test.
    const PRESENT: u64 = 1;
    const WRITABLE: u64 = 1 << 1;
    const PWT: u64 = 1 << 3;
    const PCD: u64 = 1 << 4;
    const HUGE: u64 = 1 << 7;
    /// Bit 7 of a 4 KiB entry (SDM vol. 3 table 4-20).
    const PAT_4K: u64 = 1 << 7;

    /// Tables as a map from physical address to 512 entries.
    #[derive(Debug, Default)]
    struct FakeTables {
        tables: HashMap<u64, Vec<u64>>,
        next: u64,
        limit: usize,
        flushed: Vec<u64>,
    }

    impl FakeTables {
        fn new(limit: usize) -> (Self, u64) {
            let mut t = Self {
                next: 0x10_0000,
                limit,
                ..Self::default()
            };
            let root = t.alloc_table().unwrap();
            (t, root)
        }

        fn entry(&self, pml4: u64, addr: u64) -> u64 {
            let pdpt = self.tables[&pml4][((addr >> 39) & 511) as usize] & ADDR_MASK;
            let pd = self.tables[&pdpt][((addr >> 30) & 511) as usize] & ADDR_MASK;
            self.tables[&pd][((addr >> 21) & 511) as usize]
        }
    }

    impl TableMemory for FakeTables {
        fn read(&self, table: u64, index: usize) -> u64 {
            self.tables[&table][index]
        }
        fn write(&mut self, table: u64, index: usize, value: u64) {
            self.tables.get_mut(&table).unwrap()[index] = value;
        }
        fn alloc_table(&mut self) -> Option<u64> {
            if self.tables.len() == self.limit {
                return None;
            }
            let t = self.next;
            self.next += 0x1000;
            self.tables.insert(t, vec![0; 512]);
            Some(t)
        }
        fn flush(&mut self, addr: u64) {
            self.flushed.push(addr);
        }
    }

    #[test]
    fn maps_a_high_bar_uncached() {
        let (mut t, root) = FakeTables::new(16);
        // A 32 MiB BAR at 0x38_0000_0000 (PML4 slot 0, PDPT slot 0xe0).
        map_identity(&mut t, root, 0x38_0000_0000, 32 << 20, Cache::Uncached).unwrap();
        assert_eq!(t.tables.len(), 3, "one PDPT and one PD were created");
        for i in 0..16u64 {
            let a = 0x38_0000_0000 + i * TWO_MIB;
            assert_eq!(t.entry(root, a), a | PRESENT | WRITABLE | HUGE | PCD | PWT);
        }
        let pd = t.tables[&(t.tables[&root][0] & ADDR_MASK)][0xe0] & ADDR_MASK;
        assert_eq!(t.tables[&pd][16], 0, "nothing past the end");
        assert!(t.flushed.is_empty(), "fresh entries need no flush");
    }

    #[test]
    fn partial_pages_are_covered_and_reflagging_flushes() {
        let (mut t, root) = FakeTables::new(16);
        map_identity(&mut t, root, 0x1_0000_0000, 4 << 20, Cache::WriteBack).unwrap();
        // 4 KiB straddling a 2 MiB boundary inside that RAM, made uncached.
        map_identity(&mut t, root, 0x1_001f_f000, 0x2000, Cache::Uncached).unwrap();
        assert_eq!(t.entry(root, 0x1_0000_0000) & (PCD | PWT), PCD | PWT);
        assert_eq!(t.entry(root, 0x1_0020_0000) & (PCD | PWT), PCD | PWT);
        assert_eq!(t.flushed, vec![0x1_0000_0000, 0x1_0020_0000]);
        // Mapping again with the same flags changes nothing.
        map_identity(&mut t, root, 0x1_0000_0000, 0x1000, Cache::Uncached).unwrap();
        assert_eq!(t.flushed.len(), 2);
    }

    #[test]
    fn crosses_pml4_slots() {
        let (mut t, root) = FakeTables::new(16);
        let start = (1u64 << 39) - TWO_MIB;
        map_identity(&mut t, root, start, 2 * TWO_MIB, Cache::Uncached).unwrap();
        assert_eq!(t.entry(root, start) & ADDR_MASK, start);
        assert_eq!(t.entry(root, 1 << 39) & ADDR_MASK, 1 << 39);
        assert_eq!(t.tables.len(), 5, "two PDPTs and two PDs");
    }

    #[test]
    fn errors() {
        let (mut t, root) = FakeTables::new(2);
        assert_eq!(
            map_identity(&mut t, root, 0x1_0000_0000, 0x1000, Cache::Uncached),
            Err(MapError::OutOfFrames)
        );
        assert_eq!(
            map_identity(&mut t, root, u64::MAX - 10, 100, Cache::Uncached),
            Err(MapError::BadRange {
                start: u64::MAX - 10,
                len: 100
            })
        );
        assert!(map_identity(&mut t, root, 0, 0, Cache::Uncached).is_err());
        assert!(map_identity(&mut t, root, MAX_PHYS, 0x1000, Cache::Uncached).is_err());
    }

    #[test]
    fn guard_page_splits_a_2mib_page() {
        let (mut t, root) = FakeTables::new(16);
        map_identity(&mut t, root, 0x4000_0000, TWO_MIB, Cache::Uncached).unwrap();
        let tables = t.tables.len();
        unmap_4k(&mut t, root, 0x4010_3000).unwrap();
        assert_eq!(t.tables.len(), tables + 1, "one page table");
        let pt = t.entry(root, 0x4000_0000);
        assert_eq!(
            pt & (HUGE | PRESENT),
            PRESENT,
            "PD entry now points at a table"
        );
        let pt = t.tables[&(pt & ADDR_MASK)].clone();
        assert_eq!(pt[0], 0x4000_0000 | PRESENT | WRITABLE | PCD | PWT);
        assert_eq!(pt[0x102], 0x4010_2000 | PRESENT | WRITABLE | PCD | PWT);
        assert_eq!(pt[0x103], 0, "the guard page");
        assert_eq!(pt[0x104], 0x4010_4000 | PRESENT | WRITABLE | PCD | PWT);
        assert_eq!(t.flushed, vec![0x4000_0000, 0x4010_3000]);
        // A second guard in the same 2 MiB reuses the table.
        unmap_4k(&mut t, root, 0x4010_5000).unwrap();
        assert_eq!(t.tables.len(), tables + 1);
        // Unmapped or unaligned addresses.
        unmap_4k(&mut t, root, 0x80_0000_0000).unwrap();
        assert!(unmap_4k(&mut t, root, 0x4010_3001).is_err());
        // Mapping the 2 MiB whole again drops every 4 KiB translation.
        t.flushed.clear();
        map_identity(&mut t, root, 0x4000_0000, TWO_MIB, Cache::Uncached).unwrap();
        assert_eq!(t.flushed.len(), 512);
        assert_eq!(t.flushed[511], 0x401f_f000);
    }

    #[test]
    fn map_4k_undoes_a_guard_page() {
        let (mut t, root) = FakeTables::new(16);
        map_identity(&mut t, root, 0x4000_0000, TWO_MIB, Cache::WriteBack).unwrap();
        // Inside a whole 2 MiB page: already mapped, nothing written.
        map_4k(&mut t, root, 0x4010_3000).unwrap();
        assert_eq!(
            t.entry(root, 0x4000_0000),
            0x4000_0000 | PRESENT | WRITABLE | HUGE
        );
        unmap_4k(&mut t, root, 0x4010_3000).unwrap();
        t.flushed.clear();
        map_4k(&mut t, root, 0x4010_3000).unwrap();
        let pt = t.tables[&(t.entry(root, 0x4000_0000) & ADDR_MASK)].clone();
        assert_eq!(pt[0x103], 0x4010_3000 | PRESENT | WRITABLE);
        assert!(t.flushed.is_empty(), "a not-present entry needs no flush");
        // Nothing mapped there at all, or unaligned.
        assert!(map_4k(&mut t, root, 0x80_0000_0000).is_err());
        assert!(map_4k(&mut t, root, 0x4010_3008).is_err());
    }

    #[test]
    fn leaves_foreign_1gib_pages_alone() {
        let (mut t, root) = FakeTables::new(16);
        let pdpt = t.alloc_table().unwrap();
        t.write(root, 0, pdpt | PRESENT | WRITABLE);
        t.write(pdpt, 4, (4 << 30) | PRESENT | WRITABLE | HUGE);
        map_identity(&mut t, root, 4 << 30, 4 << 20, Cache::Uncached).unwrap();
        assert_eq!(t.read(pdpt, 4), (4 << 30) | PRESENT | WRITABLE | HUGE);
    }

    /// The PAT entry a 4 KiB entry selects: PAT*4 + PCD*2 + PWT (SDM vol. 3
    /// 11.12.3, table 11-11).
    fn pat_index(e: u64) -> u64 {
        (e & PAT_4K != 0) as u64 * 4 + (e & PCD != 0) as u64 * 2 + (e & PWT != 0) as u64
    }

    /// The memory type of PAT entry `i` in IA32_PAT value `pat`: bits
    /// 8i+2..8i (SDM vol. 3 figure 11-9).
    fn pat_type(pat: u64, i: u64) -> u64 {
        (pat >> (8 * i)) & 7
    }

    #[test]
    fn pat_value_makes_only_the_wc_entry_new() {
        // Memory types, SDM vol. 3 table 11-10.
        const UC: u64 = 0x00;
        const WC: u64 = 0x01;
        const WT: u64 = 0x04;
        const WB: u64 = 0x06;
        const UC_MINUS: u64 = 0x07;
        // Power-on IA32_PAT, SDM vol. 3 table 11-12.
        let power_on = 0x0007_0406_0007_0406u64;
        assert_eq!(
            (0..8).map(|i| pat_type(power_on, i)).collect::<Vec<_>>(),
            [WB, WT, UC_MINUS, UC, WB, WT, UC_MINUS, UC]
        );
        assert_eq!(pat_type(PAT_VALUE, 1), WC);
        for i in (0..8).filter(|&i| i != 1) {
            assert_eq!(pat_type(PAT_VALUE, i), pat_type(power_on, i), "entry {i}");
        }
        // Reserved bits (7:3 of each byte) stay zero.
        assert_eq!(PAT_VALUE & 0xf8f8_f8f8_f8f8_f8f8, 0);
        assert_eq!(PAT_WC_INDEX, 1);
        assert_eq!(IA32_PAT, 0x277);
    }

    #[test]
    fn wc_alias_4k_entry_selects_the_wc_pat_entry() {
        let (mut t, root) = FakeTables::new(16);
        // The BAR identity-mapped uncached, as `pcibus` does.
        map_identity(&mut t, root, 0x38_0000_0000, 32 << 20, Cache::Uncached).unwrap();
        let virt = 0xffff_ff80_0000_0000u64 + 0x5000;
        let phys = 0x38_0000_5000u64;
        map_4k_alias(&mut t, root, virt, phys, Cache::WriteCombining).unwrap();
        let pdpt = t.tables[&root][511] & ADDR_MASK;
        let pd = t.tables[&pdpt][0] & ADDR_MASK;
        let pt = t.tables[&pd][0] & ADDR_MASK;
        let pte = t.tables[&pt][5];
        assert_eq!(pte, phys | PRESENT | WRITABLE | PWT);
        assert_eq!(pat_type(PAT_VALUE, pat_index(pte)), 0x01, "WC");
        // The identity mapping of the same page is still UC (entry 3).
        let uc = t.entry(root, phys);
        assert_eq!(uc & (PCD | PWT), PCD | PWT);
        assert_eq!(pat_type(PAT_VALUE, 3), 0x00, "UC");
        assert!(t.flushed.is_empty(), "a fresh entry needs no flush");
        // Remapping the same page changes nothing; another target flushes.
        map_4k_alias(&mut t, root, virt, phys, Cache::WriteCombining).unwrap();
        assert!(t.flushed.is_empty());
        map_4k_alias(&mut t, root, virt, phys + 0x1000, Cache::WriteCombining).unwrap();
        assert_eq!(t.flushed, vec![virt]);
        // Unaligned, or inside a 2 MiB page: refused.
        assert!(map_4k_alias(&mut t, root, virt + 8, phys, Cache::WriteCombining).is_err());
        assert!(map_4k_alias(&mut t, root, virt, phys + 8, Cache::WriteCombining).is_err());
        assert!(map_4k_alias(&mut t, root, 0x38_0000_0000, phys, Cache::WriteCombining).is_err());
    }
}
