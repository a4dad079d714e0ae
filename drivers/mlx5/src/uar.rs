//! User Access Regions (PRM "UAR"; `mlx5_ifc_alloc_uar_in_bits`,
//! `alloc_uar_out`, `dealloc_uar_in` in mlx5_ifc.h). UAR n is the 4 KiB
//! page at BAR0 + n * 4 KiB (log_uar_page_sz 0); it holds the EQ, CQ and
//! send doorbells.

use cxos_drivers::{ConfigSpace, Mmio, Platform};

use crate::cmd::{Command, SimpleCmd, op};
use crate::error::{BadOutput, DeviceError};
use crate::layout::Field;

pub const UAR_PAGE_SIZE: usize = 4096;
/// uar `[23:0]` of dword 0x08 in alloc_uar_out and dealloc_uar_in.
pub const UAR_FIELD: Field = Field::new(0x08, 23, 0);

/// A UAR index.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Uar(pub u32);

impl Uar {
    pub const fn bar_offset(self) -> usize {
        self.0 as usize * UAR_PAGE_SIZE
    }
}

#[derive(Clone, Copy, Debug)]
pub struct AllocUar;

impl Command for AllocUar {
    type Output = Uar;
    const OPCODE: u16 = op::ALLOC_UAR;
    fn in_len(&self) -> usize {
        0x10
    }
    fn out_len(&self) -> usize {
        0x10
    }
    fn build(&self, _inbox: &mut [u8]) {}
    fn parse(&self, out: &[u8]) -> Result<Uar, BadOutput> {
        Ok(Uar(UAR_FIELD.get(out)))
    }
}

pub type DeallocUar = SimpleCmd<{ op::DEALLOC_UAR }>;

pub fn dealloc_uar(uar: Uar) -> DeallocUar {
    DeallocUar::new(0, Some((UAR_FIELD, uar.0)))
}

/// BAR0 pages a UAR must never be: the initialization segment (pages 0-1:
/// the health counter is at 0x1010) and the pages of the MSI-X table and
/// PBA when they live in BAR0.
pub fn reserved_pages<C: ConfigSpace>(p: &C) -> [Option<usize>; 4] {
    let mut pages = [Some(0), Some(1), None, None];
    if let Some(cap) = crate::identify::find_capability(p, 0x11) {
        let table = p.config_read32(cap + 4);
        let pba = p.config_read32(cap + 8);
        if table & 7 == 0 {
            pages[2] = Some((table & !7) as usize / UAR_PAGE_SIZE);
        }
        if pba & 7 == 0 {
            pages[3] = Some((pba & !7) as usize / UAR_PAGE_SIZE);
        }
    }
    pages
}

/// Check an index the device handed out: inside BAR0 and not a reserved
/// page.
pub fn validate<P: Platform>(p: &P, uar: Uar) -> Result<Uar, crate::Error> {
    let end = (uar.0 as usize + 1).checked_mul(UAR_PAGE_SIZE);
    if end.is_none_or(|e| e > p.mmio().bar0_len()) {
        return Err(DeviceError::UarBeyondBar0(uar.0).into());
    }
    if reserved_pages(p.config()).contains(&Some(uar.0 as usize)) {
        return Err(DeviceError::UarReserved(uar.0).into());
    }
    Ok(uar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::encode;

    #[test]
    fn dealloc_uar_golden() {
        // dealloc_uar_in: opcode 0x803 at 0x00, uar [23:0] at 0x08.
        let b = encode(&dealloc_uar(Uar(0x12_3456)));
        assert_eq!(
            b,
            [
                0x08, 0x03, 0, 0, 0, 0, 0, 0, 0x00, 0x12, 0x34, 0x56, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn alloc_uar_parse() {
        // alloc_uar_out: uar [23:0] at byte 0x09..0x0b.
        let out = [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x00, 0x00, 0x07, 0, 0, 0, 0];
        assert_eq!(AllocUar.parse(&out), Ok(Uar(7)));
    }
}

#[cfg(test)]
mod validate_tests {
    use super::*;
    use crate::mock::MockPlatform;

    #[test]
    fn device_supplied_uar_indices_are_checked() {
        let p = MockPlatform::new(); // 64 KiB BAR0, no MSI-X capability
        assert!(validate(&p, Uar(0)).is_err(), "init segment");
        assert!(validate(&p, Uar(1)).is_err(), "health counter page");
        assert_eq!(validate(&p, Uar(4)), Ok(Uar(4)));
        assert_eq!(validate(&p, Uar(15)), Ok(Uar(15)));
        assert!(validate(&p, Uar(16)).is_err(), "past BAR0");
        assert!(validate(&p, Uar(u32::MAX)).is_err(), "no overflow");
    }
}
