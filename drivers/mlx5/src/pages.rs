//! Firmware pages (PRM "Pages Management"; `mlx5_ifc_query_pages_in/out_bits`,
//! `manage_pages_in/out_bits`). The device asks for 4 KiB pages at boot, at
//! init and at any time later (page-request EQE, either sign); the driver
//! gives them in batches and takes them back at teardown. Every page is
//! one DMA region owned by [`PagePool`] until the device returns it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use cxos_drivers::{DmaAlloc, DmaRegion};

use crate::cmd::{Command, op};
use crate::error::BadOutput;
use crate::layout::{Field, Field64};

pub const PAGE_SIZE: usize = 4096;
/// Pages per MANAGE_PAGES command (input 16 + 8 * 256 bytes).
pub const BATCH: usize = 256;

/// query_pages op_mod.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PageKind {
    Boot = 1,
    Init = 2,
    Regular = 3,
}

/// query_pages_out: num_pages (signed) at 0x0c.
pub const QUERY_PAGES_OUT_NUM: Field = Field::new(0x0c, 31, 0);
/// manage_pages_in: input_num_entries at 0x0c, pas at 0x10.
pub const MANAGE_PAGES_IN_NUM: Field = Field::new(0x0c, 31, 0);
pub const MANAGE_PAGES_IN_PAS: usize = 0x10;
/// manage_pages_out: output_num_entries at 0x08, pas at 0x10.
pub const MANAGE_PAGES_OUT_NUM: Field = Field::new(0x08, 31, 0);
pub const MANAGE_PAGES_OUT_PAS: usize = 0x10;

/// manage_pages op_mod.
pub const MANAGE_ALLOCATION_FAIL: u16 = 0;
pub const MANAGE_ALLOCATION_SUCCESS: u16 = 1;
pub const MANAGE_HCA_RETURN_PAGES: u16 = 2;

#[derive(Clone, Copy, Debug)]
pub struct QueryPages(pub PageKind);

impl Command for QueryPages {
    type Output = i32;
    const OPCODE: u16 = op::QUERY_PAGES;
    fn op_mod(&self) -> u16 {
        self.0 as u16
    }
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<i32, BadOutput> {
        Ok(QUERY_PAGES_OUT_NUM.get(out) as i32)
    }
}

/// MANAGE_PAGES giving pages (op_mod 1), or reporting that none could be
/// allocated (op_mod 0, no entries).
#[derive(Clone, Debug)]
pub struct GivePages<'a> {
    pub pages: &'a [u64],
    pub failed: bool,
}

impl Command for GivePages<'_> {
    type Output = ();
    const OPCODE: u16 = op::MANAGE_PAGES;
    fn op_mod(&self) -> u16 {
        if self.failed {
            MANAGE_ALLOCATION_FAIL
        } else {
            MANAGE_ALLOCATION_SUCCESS
        }
    }
    fn in_len(&self) -> usize {
        MANAGE_PAGES_IN_PAS + 8 * self.pages.len()
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, inbox: &mut [u8]) {
        MANAGE_PAGES_IN_NUM.set(inbox, self.pages.len() as u32);
        for (i, &pa) in self.pages.iter().enumerate() {
            Field64::new(MANAGE_PAGES_IN_PAS + 8 * i).set(inbox, pa);
        }
    }
    fn parse(&self, _out: &[u8]) -> Result<(), BadOutput> {
        Ok(())
    }
}

/// MANAGE_PAGES taking up to `count` pages back (op_mod 2).
#[derive(Clone, Copy, Debug)]
pub struct TakePages {
    pub count: usize,
}

impl Command for TakePages {
    type Output = Vec<u64>;
    const OPCODE: u16 = op::MANAGE_PAGES;
    fn op_mod(&self) -> u16 {
        MANAGE_HCA_RETURN_PAGES
    }
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        MANAGE_PAGES_OUT_PAS + 8 * self.count
    }
    fn build(&self, inbox: &mut [u8]) {
        MANAGE_PAGES_IN_NUM.set(inbox, self.count as u32);
    }
    fn parse(&self, out: &[u8]) -> Result<Vec<u64>, BadOutput> {
        let n = MANAGE_PAGES_OUT_NUM.get(out) as usize;
        if n > self.count {
            return Err(BadOutput::TooManyPages {
                asked: self.count,
                returned: n,
            });
        }
        Ok((0..n)
            .map(|i| Field64::new(MANAGE_PAGES_OUT_PAS + 8 * i).get(out))
            .collect())
    }
}

/// Pages the device holds, by device address.
#[derive(Debug)]
pub struct PagePool<D: DmaRegion> {
    held: BTreeMap<u64, D>,
    pub given_total: u64,
    pub returned_total: u64,
}

impl<D: DmaRegion> Default for PagePool<D> {
    fn default() -> Self {
        Self {
            held: BTreeMap::new(),
            given_total: 0,
            returned_total: 0,
        }
    }
}

impl<D: DmaRegion> PagePool<D> {
    /// Pages the device holds.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Allocate up to `n` pages (stops at the first platform refusal).
    pub fn alloc<A: DmaAlloc<Region = D>>(
        p: &A,
        n: usize,
    ) -> Result<Vec<D>, cxos_drivers::PlatformError> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(p.dma_alloc(PAGE_SIZE)?);
        }
        Ok(v)
    }

    /// Record pages the device accepted.
    pub fn insert(&mut self, pages: Vec<D>) {
        for pg in pages {
            self.given_total += 1;
            self.held.insert(pg.device_addr().get(), pg);
        }
    }

    /// Take back pages the device returned. Addresses the driver never
    /// gave (or already took back) are counted and ignored: the device is
    /// untrusted.
    pub fn remove(&mut self, addrs: &[u64]) -> (usize, usize) {
        let mut ok = 0;
        let mut unknown = 0;
        for a in addrs {
            if self.held.remove(a).is_some() {
                ok += 1;
                self.returned_total += 1;
            } else {
                unknown += 1;
            }
        }
        (ok, unknown)
    }

    /// Forget every page (after DISABLE_HCA when the device did not return
    /// them all); returns how many were lost.
    pub fn release_all(&mut self) -> usize {
        let n = self.held.len();
        self.held.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn give_pages_golden() {
        let b = encode(&GivePages {
            pages: &[0x0000_0001_0000_0000, 0x0000_0000_0abc_d000],
            failed: false,
        });
        #[rustfmt::skip]
        let golden = [
            0x01, 0x08, 0, 0, // 0x00 opcode MANAGE_PAGES
            0, 0, 0, 0x01,    // 0x04 op_mod 1 (allocation success)
            0, 0, 0, 0,       // 0x08 function_id 0
            0, 0, 0, 0x02,    // 0x0c input_num_entries
            0, 0, 0, 0x01, 0, 0, 0, 0,          // 0x10 pas[0]
            0, 0, 0, 0, 0x0a, 0xbc, 0xd0, 0x00, // 0x18 pas[1]
        ];
        assert_eq!(b, golden);
    }

    #[test]
    fn take_pages_bounds_the_count() {
        let cmd = TakePages { count: 2 };
        let b = encode(&cmd);
        assert_eq!(
            &b[..16],
            &[0x01, 0x08, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]
        );
        let mut out = [0u8; 0x20];
        out[0x0b] = 2; // output_num_entries at 0x08
        out[0x17] = 0x10; // pas[0] low byte... 0x10
        out[0x1e] = 0x20; // pas[1] = 0x2000
        assert_eq!(cmd.parse(&out), Ok(alloc::vec![0x10, 0x2000]));
        out[0x0b] = 3;
        assert!(cmd.parse(&out).is_err());
    }

    #[test]
    fn query_pages_signed() {
        let mut out = [0u8; 16];
        out[0x0c..0x10].copy_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(QueryPages(PageKind::Boot).parse(&out), Ok(-2));
        assert_eq!(QueryPages(PageKind::Init).op_mod(), 2);
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;
    use crate::mock::MockPlatform;

    #[test]
    fn pool_accounts_every_page_and_ignores_strangers() {
        let p = MockPlatform::new();
        let mut pool = PagePool::default();
        let pages = PagePool::alloc(&p, 3).unwrap();
        let addrs: Vec<u64> = pages.iter().map(|r| r.device_addr().get()).collect();
        pool.insert(pages);
        assert_eq!(pool.held(), 3);
        // One real page, one never given, one twice.
        let (ok, unknown) = pool.remove(&[addrs[1], 0xdead_0000, addrs[1]]);
        assert_eq!((ok, unknown), (1, 2));
        assert_eq!(pool.held(), 2);
        assert_eq!(p.live_regions(), 2, "returned page freed");
        assert_eq!(pool.release_all(), 2);
        assert_eq!(p.live_regions(), 0);
        assert_eq!((pool.given_total, pool.returned_total), (3, 1));
    }
}
