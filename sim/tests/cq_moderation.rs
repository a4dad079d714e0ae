//! CQ event moderation in the model, driven by the raw client (tests/dp)
//! in synchronous mode, where nothing runs the model between the test's
//! own steps: the period from the CQ's last event (`cq_period_mode` 0,
//! START_FROM_EQE) set by MODIFY_CQ, a period dropped when the driver
//! consumed everything and re-armed, and CREATE_CQ's checks of
//! `cq_period_mode` and the moderation fields against `cq_moderation` /
//! `cq_period_start_from_cqe`. The driver's tests
//! (drivers/mlx5/tests/cq_moderation.rs) cover START_FROM_CQE, counts and
//! both model modes.

mod common;
mod dp;

use std::time::Duration;

use common::*;
use cxos_drivers::{DmaAlloc, DmaRegion, Msix};
use dp::*;
use mlx5_sim::Personality;
use mlx5_sim::cmd::caps::{cap_type, hca_cap};
use mlx5_sim::harness::{Mode, SimPlatform};

const PERIOD_US: u32 = 2000;

fn events(p: &SimPlatform, cqn: u32) -> u64 {
    p.with_model(|f| f.nic.cqs.get(cqn).map_or(0, |c| c.events))
}

#[test]
fn period_from_the_last_event() {
    let p = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    let cqn = n.rx_cq.cqn;
    // modify_cq_in: cqn dword 0x08, modify_field_select 0x0c = period |
    // count (bits 0, 1); cqc at 0x10, its dword 0x10 -> 0x20: cq_period
    // [27:16], cq_max_count [15:0] = 0.
    let mut m = Msg::new(MODIFY_CQ, 0, 0x110);
    m.be32(0x08, cqn)
        .be32(0x0c, 0b11)
        .be32(0x20, PERIOD_US << 16);
    n.raw.ok(&m, 0x10);
    let src = [2, 0, 0, 0, 0, 1];

    // No event yet: the period runs from the first CQE.
    p.inject_rx(&frame(n.mac, src, 80, 0));
    assert_eq!(events(&p, cqn), 0, "held for the period");
    // The driver takes the CQE and re-arms with nothing left unsignalled:
    // the period ends without an event.
    n.rx_cq.poll().expect("the CQE");
    n.repost_rx();
    n.rx_cq.arm(&p);
    std::thread::sleep(Duration::from_micros(u64::from(PERIOD_US) + 1000));
    assert!(!p.msix_take_pending(COMP_VECTOR), "nothing to signal");
    assert_eq!(events(&p, cqn), 0);

    p.inject_rx(&frame(n.mac, src, 80, 1));
    assert_eq!(events(&p, cqn), 0, "held for the period");
    std::thread::sleep(Duration::from_micros(u64::from(PERIOD_US) + 1000));
    // Looking for the interrupt lets the model time the period.
    assert!(p.msix_take_pending(COMP_VECTOR), "fired after the period");
    assert_eq!(events(&p, cqn), 1);
    let mut eq = EqReader { log_size: 7, ci: 0 };
    let eqe = eq.poll(&n.comp_eq_buf).expect("completion EQE");
    assert_eq!(be32(&eqe.data, 24) & 0xff_ffff, cqn, "mlx5_eqe_comp.cqn");
    eq.doorbell(&p, n.up.uar, n.comp_eq, true);
    n.rx_cq.poll().expect("the CQE");
    n.repost_rx();
    n.rx_cq.arm(&p);

    // The period since the last event has passed: the next CQE fires at
    // once (START_FROM_EQE), no timer involved.
    std::thread::sleep(Duration::from_micros(u64::from(PERIOD_US) + 1000));
    p.inject_rx(&frame(n.mac, src, 80, 2));
    assert_eq!(events(&p, cqn), 2, "period already over");
    assert!(p.sanitizer_violations().is_empty());
}

/// CREATE_CQ with `word0` as the cqc's dword 0 and `word4` as its dword
/// 0x10 (cq_period / cq_max_count).
fn create(n: &mut Net, word0: u32, word4: u32) -> Result<u32, (u8, u32)> {
    let p = n.raw.p.clone();
    let buf = p.dma_alloc(4096).unwrap();
    let dbr = p.dma_alloc(64).unwrap();
    let mut m = Msg::new(CREATE_CQ, 0, 0x110 + 8);
    // cqc: log_cq_size 6 | uar_page dword 0x0c, c_eqn 0x14, dbr_addr 0x38.
    m.be32(0x10, word0)
        .be32(0x10 + 0x0c, (6 << 24) | n.up.uar)
        .be32(0x10 + 0x10, word4)
        .be32(0x10 + 0x14, n.comp_eq as u32)
        .be64(0x10 + 0x38, dbr.device_addr().get())
        .be64(0x110, buf.device_addr().get());
    let r = n.raw.exec(&m, 0x10);
    assert_eq!(r.delivery, 0);
    let out = if r.status() == 0 {
        Ok(be32(&r.out, 0x08) & 0xff_ffff)
    } else {
        Err((r.status(), r.syndrome()))
    };
    // Leak nothing: a created CQ is destroyed at once.
    if let Ok(cqn) = out {
        let mut d = Msg::new(DESTROY_CQ, 0, 0x10);
        d.be32(0x08, cqn);
        n.raw.ok(&d, 0x10);
    }
    out
}

#[test]
fn create_cq_checks_the_moderation_fields() {
    let p = SimPlatform::new(Personality::ConnectX4, Mode::Synchronous);
    let mut n = Net::open(p.clone());
    // cq_period_mode: cqc bits 0xf..0x11 = dword 0 [16:15].
    let mode = |m: u32| m << 15;
    let bad_param = 0x03;
    assert!(
        create(&mut n, mode(1), (50 << 16) | 8).is_ok(),
        "START_FROM_CQE"
    );
    assert!(
        create(&mut n, mode(0), (50 << 16) | 8).is_ok(),
        "START_FROM_EQE"
    );
    assert_eq!(
        create(&mut n, mode(2), 0).unwrap_err().0,
        bad_param,
        "no period mode 2"
    );
    p.with_model(|f| {
        f.caps
            .set_current(cap_type::GENERAL, hca_cap::CQ_PERIOD_START_FROM_CQE, 0)
    });
    assert_eq!(create(&mut n, mode(1), 0).unwrap_err().0, bad_param);
    assert!(create(&mut n, mode(0), (50 << 16) | 8).is_ok());
    p.with_model(|f| {
        f.caps
            .set_current(cap_type::GENERAL, hca_cap::CQ_MODERATION, 0)
    });
    assert_eq!(create(&mut n, 0, 50 << 16).unwrap_err().0, bad_param);
    assert_eq!(create(&mut n, 0, 8).unwrap_err().0, bad_param);
    assert!(create(&mut n, 0, 0).is_ok(), "0/0: no moderation asked");
}
