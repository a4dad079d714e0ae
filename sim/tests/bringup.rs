//! The whole bring-up and teardown, by a raw client, on every personality
//! in both modes: no violations, every page and every DMA region returned.
mod common;

use common::*;
use cxos_drivers::{Clock, ConfigSpace, Mmio, Msix};
use mlx5_sim::Personality;

#[test]
fn bring_up_and_tear_down_every_personality_both_modes() {
    for mode in MODES {
        for pers in Personality::ALL {
            let mut raw = Raw::new(pers, mode);
            let fw = raw.p.bar0_read_be32(0x000);
            // fw_rev_major [15:0] is the part's firmware branch.
            let major = fw & 0xffff;
            let expect = match pers {
                Personality::ConnectX4 => 12,
                Personality::ConnectX4Lx => 14,
                Personality::ConnectX5 => 16,
                Personality::ConnectX6 => 20,
                Personality::ConnectX6Dx => 22,
            };
            assert_eq!(major, expect, "{pers:?}");
            let up = raw.bring_up();
            assert!(up.uar >= 4, "UAR pages never overlap pages 0-3");
            assert_eq!(up.resd_lkey, 0x100);
            assert!(raw.p.pages_held() > 0);
            raw.tear_down(up);
            assert_eq!(raw.p.pages_held(), 0, "{pers:?} {mode:?}");
            let v = raw.p.sanitizer_violations();
            assert!(v.is_empty(), "{pers:?} {mode:?}: {v:?}");
            let commands = raw.p.commands_executed();
            assert!(commands >= 20, "{commands}");
            drop(raw.p.clone());
            let p = raw.p.clone();
            drop(raw);
            assert_eq!(p.dma_in_use(), (0, 0), "every DMA region freed");
        }
    }
}

#[test]
fn config_space_identifies_each_part() {
    for pers in Personality::ALL {
        let p = mlx5_sim::harness::SimPlatform::new(pers, mlx5_sim::harness::Mode::Synchronous);
        assert_eq!(p.config_read16(0), 0x15b3);
        assert_eq!(p.config_read16(2), pers.device_id());
        // class code 0x020000 in bytes 0x09..0x0c.
        assert_eq!(p.config_read32(0x08) >> 8, 0x02_0000);
        assert_eq!(p.msix_table_size(), 64);
        assert_eq!(p.bar0_len(), 32 << 20);
        assert_eq!(p.pci_address().to_string(), "01:00.0");
    }
}

#[test]
fn health_counter_moves_and_timer_runs() {
    let p = mlx5_sim::harness::SimPlatform::new(
        Personality::ConnectX5,
        mlx5_sim::harness::Mode::Synchronous,
    );
    let a = p.bar0_read_be32(0x1010);
    p.delay_us(2_000);
    let b = p.bar0_read_be32(0x1010);
    assert_ne!(a, b, "health counter must move within 2 ms");
    let t1 = p.bar0_read_be64(0x1000);
    p.delay_us(10);
    let t2 = p.bar0_read_be64(0x1000);
    assert!(t2 > t1);
}

#[test]
fn function_reset_forgets_everything() {
    let mut raw = Raw::new(
        Personality::ConnectX6Dx,
        mlx5_sim::harness::Mode::Synchronous,
    );
    let up = raw.bring_up();
    raw.p.msix_enable(1, 1).unwrap();
    // Firmware takes its time after this reset, so the bit is seen set.
    raw.p
        .with_model(|d| d.set_fw_boot_delay(std::time::Duration::from_secs(3600)));
    // FLR through PCIe device control (cap at 0x60, devctl at +8, bit 15).
    raw.p.config_write16(0x68, 0x8000);
    assert_eq!(raw.p.bar0_read_be32(0x1fc) >> 31, 1, "initializing again");
    raw.p
        .with_model(|d| d.set_fw_boot_delay(std::time::Duration::ZERO));
    // MSI-X enable (message control bit 15 at 0x9e) is cleared by FLR.
    assert_eq!(raw.p.config_read16(0x9e) & 0x8000, 0);
    assert_eq!(raw.p.pages_held(), 0);
    drop(up);
    // The function comes back with a new command queue.
    let mut again = Raw::on(raw.p.clone());
    let up = again.bring_up();
    again.tear_down(up);
    assert!(again.p.sanitizer_violations().is_empty());
}

#[test]
fn two_adapters_of_one_part_differ_in_address_and_mac() {
    use mlx5_sim::harness::{Mode, SimConfig, SimPlatform};
    let a = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let cfg = SimConfig {
        pci_address: cxos_drivers::PciAddress::new(0, 2, 0, 0),
        mac: [0x0c, 0x42, 0xa1, 0x5e, 0x01, 0x01],
    };
    let b = SimPlatform::with_config(Personality::ConnectX5, Mode::Synchronous, cfg);
    assert_eq!(b.pci_address().to_string(), "02:00.0");
    let mac = |p: &SimPlatform| {
        let mut r = Raw::on(p.clone());
        let _up = r.bring_up();
        // nic_vport_context.permanent_address: ctx @0x10 of the output, MAC @ctx+0xf6.
        let out = r.ok(&Msg::new(QUERY_NIC_VPORT_CONTEXT, 0, 0x10), 0x110);
        out[0x10 + 0xf6..0x10 + 0xfc].to_vec()
    };
    assert_eq!(mac(&a), vec![0x0c, 0x42, 0xa1, 0x5e, 0x00, 0x12]);
    assert_eq!(mac(&b), cfg.mac.to_vec());
}
