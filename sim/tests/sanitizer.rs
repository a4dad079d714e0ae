//! The DMA sanitizer: bad addresses, memory freed too early, accesses after
//! DISABLE_HCA, accesses crossing a region's end.
mod common;

use common::*;
use cxos_drivers::{DmaAlloc, DmaRegion, Mmio};
use mlx5_sim::dma::DmaFault;
use mlx5_sim::harness::Mode;
use mlx5_sim::sanitizer::Purpose;
use mlx5_sim::{Personality, ViolationKind};

#[test]
fn page_at_a_bogus_address_is_caught() {
    let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
    r.simple(ENABLE_HCA, 0);
    let mut m = Msg::new(MANAGE_PAGES, 1, 0x18);
    m.be32(0x0c, 1).be64(0x10, 0xdead_0000);
    // The model cannot use the page: internal error, DMA_FAILED syndrome.
    assert_eq!(r.fails(&m, 0x10), (0x01, 0x0001_0001));
    let v = r.p.sanitizer_violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].addr, 0xdead_0000);
    assert_eq!(v[0].purpose, Purpose::Page);
    assert_eq!(v[0].kind, ViolationKind::Fault(DmaFault::Unmapped));
    assert!(v[0].write);
    assert!(v[0].to_string().contains("0xdead0000"), "{}", v[0]);
    assert_eq!(r.p.pages_held(), 0, "the page was not kept");
}

#[test]
fn eq_buffer_freed_while_the_eq_lives() {
    for mode in MODES {
        let mut r = Raw::new(Personality::ConnectX6, mode);
        let up = r.bring_up();
        let addr = up.eq_buf.device_addr().get();
        let Up { eq_buf, .. } = up;
        drop(eq_buf);
        r.p.set_link(false);
        let v = r.p.sanitizer_violations();
        assert!(!v.is_empty());
        assert_eq!(v[0].purpose, Purpose::EqBuffer);
        assert_eq!(v[0].kind, ViolationKind::Fault(DmaFault::Freed));
        assert!(v[0].addr >= addr && v[0].addr < addr + 4096);
    }
}

#[test]
fn access_after_disable_hca_is_reported() {
    let mut r = Raw::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let up = r.bring_up();
    let held = r.p.pages_held();
    r.simple(TEARDOWN_HCA, 0);
    // The driver "forgets" MANAGE_PAGES take and disables the function.
    r.simple(DISABLE_HCA, 0);
    let v = r.p.sanitizer_violations();
    assert_eq!(v.len(), held, "one report per page left with the device");
    assert!(
        v.iter()
            .all(|v| v.kind == ViolationKind::AfterDisable && v.purpose == Purpose::Page)
    );
    let pages: Vec<u64> = up.pages.iter().map(|p| p.device_addr().get()).collect();
    assert!(v.iter().all(|v| pages.contains(&v.addr)));
    // The pages were not written after the revoke.
    assert!(
        up.pages
            .iter()
            .all(|p| p.read_u8(0) != b'm' || p.read_u8(9) != b'c')
    );
}

#[test]
fn page_freed_by_the_driver_while_held() {
    let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
    let mut up = r.bring_up();
    // The model stamps each page ("mlx5-sim page") when it gets it.
    let mut stamp = [0u8; 13];
    up.pages[0].read_bytes(0, &mut stamp);
    assert_eq!(&stamp, b"mlx5-sim page");
    // Free every page the device holds; its command log write then faults.
    up.pages.clear();
    r.simple(NOP, 0);
    let v = r.p.sanitizer_violations();
    assert!(
        v.iter()
            .any(|v| v.purpose == Purpose::Page && v.kind == ViolationKind::Fault(DmaFault::Freed)),
        "{v:?}"
    );
}

#[test]
fn mailbox_problems() {
    let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
    r.simple(ENABLE_HCA, 0);
    // An entry whose input mailbox pointer is unmapped: delivery status 6.
    let q = r.cmdq();
    q.fill(0, 64, 0);
    q.write_u8(0, 7);
    q.write_be32(4, 0x100);
    q.write_be64(8, 0x7777_0000);
    q.write_be16(0x10, NOP);
    q.write_be32(0x38, 0x10);
    q.write_u8(0x3f, 1);
    r.p.bar0_write_be32(0x018, 1);
    assert_eq!(r.slot_status(0).0, 0x06);
    let v = r.p.sanitizer_violations();
    assert_eq!((v[0].addr, v[0].purpose), (0x7777_0000, Purpose::Mailbox));
    // The guard page right behind a region is never mapped.
    let buf = r.p.dma_alloc(4096).unwrap();
    let behind = buf.device_addr().get() + 4096;
    let q = r.cmdq();
    q.write_be64(8, behind);
    q.write_u8(0x3f, 1);
    r.p.bar0_write_be32(0x018, 1);
    assert_eq!(r.slot_status(0).0, 0x06);
    let v = r.p.sanitizer_violations();
    assert_eq!(
        (v[1].addr, v[1].kind),
        (behind, ViolationKind::Fault(DmaFault::Unmapped))
    );
}

#[test]
fn host_space_faults_are_typed() {
    use mlx5_sim::dma::DmaSpace;
    let space = mlx5_sim::harness::HostDmaSpace::default();
    let (base, _mem) = space.map(4096).unwrap();
    let mut b = [0u8; 8];
    assert_eq!(
        space.read(base + 4092, &mut b),
        Err(DmaFault::CrossesRegion)
    );
    assert_eq!(space.read(base + 4096, &mut b), Err(DmaFault::Unmapped));
    assert_eq!(space.write(base + 8, &b), Ok(()));
    assert_eq!(space.in_use(), (1, 4096));
}

#[test]
fn memory_handed_over_twice_for_two_uses() {
    let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
    let up = r.bring_up();
    // Use the first page given (the model's command log is still in it) as
    // an EQ buffer as well.
    let page = up.pages[0].device_addr().get();
    let mut m = Msg::new(CREATE_EQ, 0, 0x118);
    m.be32(0x1c, (6 << 24) | up.uar).be64(0x110, page);
    r.ok(&m, 0x10);
    for _ in 0..10 {
        r.simple(NOP, 0);
    }
    let v = r.p.sanitizer_violations();
    assert!(
        v.iter()
            .any(|v| v.addr >> 12 == page >> 12 && v.kind == ViolationKind::Ungranted),
        "{v:?}"
    );
    drop(up);
}
