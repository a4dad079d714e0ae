//! The transceiver module through its registers: PMAOS, MCIA (EEPROM reads
//! at 0x50/0x51, pages, the 48-byte limit, MCIA status on errors), MLCR
//! (the LED), PTYS following the module, PORT_MODULE and PORT_CHANGE
//! events, and the MAC's PMTU drops counted in PPCNT. Offsets are written
//! by hand from mlx5_ifc.h (`pmaos_reg`, `mcia_reg`, `mlcr_reg`,
//! `ptys_reg`, `struct mlx5_eqe_port_module`) and SFF-8472 / SFF-8636.
mod common;

use common::*;
use mlx5_sim::Personality;
use mlx5_sim::harness::Mode;
use mlx5_sim::module::ModuleKind;

/// Register data starts at byte 0x10 of ACCESS_REGISTER's input and output.
const D: usize = 0x10;

fn mcia(r: &mut Raw, i2c: u8, page: u8, offset: u16, size: u16) -> (u8, Vec<u8>) {
    let mut m = Msg::new(ACCESS_REG, 1, D + 0x90);
    // mcia_reg: module byte 1, i2c_device_address byte 4, page_number
    // byte 5, device_address bytes 6-7, size bytes 10-11.
    m.be16(0x0a, 0x9014)
        .u8(D + 4, i2c)
        .u8(D + 5, page)
        .be16(D + 6, offset)
        .be16(D + 0x0a, size);
    let out = r.ok(&m, D + 0x90);
    // status byte 3, dwords from byte 0x10.
    (out[D + 3], out[D + 0x10..D + 0x10 + size as usize].to_vec())
}

fn ptys_oper(r: &mut Raw) -> (u32, u32, u8) {
    let mut m = Msg::new(ACCESS_REG, 1, D + 0x40);
    m.be16(0x0a, 0x5004).u8(D + 1, 1).u8(D + 3, 0x04);
    let out = r.ok(&m, D + 0x40);
    // ext_eth_proto_oper @0x20, eth_proto_oper @0x24, connector_type
    // bits 0x17c..0x180 (byte 0x2f low nibble).
    (
        be32(&out, D + 0x20),
        be32(&out, D + 0x24),
        out[D + 0x2f] & 0xf,
    )
}

fn pmaos(r: &mut Raw) -> (u8, u8) {
    let mut m = Msg::new(ACCESS_REG, 1, D + 0x10);
    m.be16(0x0a, 0x5012);
    let out = r.ok(&m, D + 0x10);
    // admin_status byte 2 low nibble, oper_status byte 3 low nibble.
    (out[D + 2] & 0xf, out[D + 3] & 0xf)
}

#[test]
fn mcia_reads_the_eeprom_as_sff_lays_it_out() {
    let mut r = Raw::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let _up = r.bring_up();
    // The Lx ships with a 25G DAC (SFF-8472): identifier 03h (SFP, SFF-8024
    // Table 4-1) at byte 0, ext identifier 04h, connector 21h (copper
    // pigtail) at byte 2.
    let (st, b) = mcia(&mut r, 0x50, 0, 0, 3);
    assert_eq!((st, b.as_slice()), (0, &[0x03, 0x04, 0x21][..]));
    // Vendor name bytes 20-35, OUI 37-39, PN 40-55 (space padded).
    let (_, b) = mcia(&mut r, 0x50, 0, 20, 36);
    assert_eq!(&b[..16], b"Mellanox        ");
    assert_eq!(&b[17..20], &[0x00, 0x02, 0xc9]);
    assert_eq!(&b[20..36], b"MCP2M00-A001    ");
    // The whole A0h page in 48-byte reads; CC_BASE (63) and CC_EXT (95)
    // are the low bytes of the sums of 0-62 and 64-94.
    let mut page = Vec::new();
    for at in (0..256).step_by(48) {
        let n = 48.min(256 - at) as u16;
        let (st, b) = mcia(&mut r, 0x50, 0, at as u16, n);
        assert_eq!(st, 0);
        page.extend(b);
    }
    let sum = |b: &[u8]| b.iter().fold(0u8, |a, x| a.wrapping_add(*x));
    assert_eq!(sum(&page[..63]), page[63]);
    assert_eq!(sum(&page[64..95]), page[95]);
    // A DAC has no diagnostics at A2h: no answer at 0x51 (status 1,
    // NO_EEPROM_MODULE).
    assert_eq!(mcia(&mut r, 0x51, 0, 0, 4).0, 1);
    // More than 48 bytes, or past byte 255: the command fails.
    let mut m = Msg::new(ACCESS_REG, 1, D + 0x90);
    m.be16(0x0a, 0x9014).u8(D + 4, 0x50).be16(D + 0x0a, 49);
    assert_eq!(r.fails(&m, D + 0x90).0, 0x03, "BAD_PARAM");
    let mut m = Msg::new(ACCESS_REG, 1, D + 0x90);
    m.be16(0x0a, 0x9014)
        .u8(D + 4, 0x50)
        .be16(D + 6, 250)
        .be16(D + 0x0a, 8);
    assert_eq!(r.fails(&m, D + 0x90).0, 0x03);
    // Another module number: no such cage.
    let mut m = Msg::new(ACCESS_REG, 1, D + 0x90);
    m.be16(0x0a, 0x9014)
        .u8(D + 1, 1)
        .u8(D + 4, 0x50)
        .be16(D + 0x0a, 1);
    assert_eq!(r.fails(&m, D + 0x90).0, 0x03);
    // No module: status 3 (MODULE_NOT_CONNECTED), zeros.
    r.p.with_model(|d| d.remove_module());
    assert_eq!(mcia(&mut r, 0x50, 0, 0, 4), (3, vec![0; 4]));
    assert!(r.p.sanitizer_violations().is_empty());
}

#[test]
fn mcia_pages_and_diagnostics() {
    let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
    let _up = r.bring_up();
    r.p.with_model(|d| {
        d.remove_module();
        d.insert_module(ModuleKind::Sr4100g).unwrap()
    });
    // SFF-8636: identifier 11h (QSFP28) at 0 and 128; status byte 2 bit 2
    // (Flat_mem) clear on a paged module.
    let (_, b) = mcia(&mut r, 0x50, 0, 0, 3);
    assert_eq!((b[0], b[2] & 0x04), (0x11, 0));
    let (_, b) = mcia(&mut r, 0x50, 0, 128, 3);
    assert_eq!(b, [0x11, 0xcc, 0x0c], "identifier, ext id, MPO 1x12");
    // Vendor PN bytes 168-183; wavelength 186-187 in 0.05 nm (850 nm).
    let (_, b) = mcia(&mut r, 0x50, 0, 168, 20);
    assert_eq!(&b[..16], b"MMA1B00-C100D   ");
    assert_eq!(u16::from_be_bytes([b[18], b[19]]), 17000);
    // Page 03h: temperature high alarm at 128-129 (75 degC = 19200/256).
    let (st, b) = mcia(&mut r, 0x50, 3, 128, 2);
    assert_eq!((st, b), (0, 19200u16.to_be_bytes().to_vec()));
    // A page the module lacks: I2C error (status 9).
    assert_eq!(mcia(&mut r, 0x50, 2, 128, 2).0, 9);
    // An SFP module with diagnostics through a QSA: A2h temperature at
    // 96-97 (SFF-8472 Table 9-11).
    r.p.with_model(|d| {
        d.remove_module();
        d.insert_module(ModuleKind::Sr10g).unwrap()
    });
    let (st, b) = mcia(&mut r, 0x51, 0, 96, 2);
    assert_eq!((st, b), (0, 9088u16.to_be_bytes().to_vec()));
}

#[test]
fn module_events_and_the_speed_follow_the_module() {
    let mut r = Raw::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let up = r.bring_up();
    // An EQ for port changes (9) and port module events (0x16) only.
    let mut m = Msg::new(DESTROY_EQ, 0, 0x10);
    m.u8(0x0b, up.eq);
    r.ok(&m, 0x10);
    let (_, eq_buf) = r.create_eq(up.uar, 0, (1 << 9) | (1 << 0x16), 6);
    let mut eq = EqReader { log_size: 6, ci: 0 };
    // 25G DAC: 25GBASE-CR (legacy bit 27), direct attach (7).
    assert_eq!(ptys_oper(&mut r), (0, 1 << 27, 7));
    assert_eq!(pmaos(&mut r), (1, 1), "enabled, plugged");
    r.p.with_model(|d| d.remove_module());
    // struct mlx5_eqe_port_module: module byte 1, module_status byte 3
    // (2: unplugged).
    let e = eq.poll(&eq_buf).expect("module event");
    assert_eq!((e.ty, e.data[1], e.data[3]), (0x16, 0, 2));
    let e = eq.poll(&eq_buf).expect("link down");
    assert_eq!((e.ty, e.sub), (0x09, 1));
    assert_eq!(pmaos(&mut r), (1, 2));
    // No module: no link, connector NONE (1).
    assert_eq!(ptys_oper(&mut r), (0, 0, 1));
    // 1000BASE-T in the 25G port: eth_proto bit 25, twisted pair (2).
    r.p.with_model(|d| d.insert_module(ModuleKind::Copper1g).unwrap());
    let e = eq.poll(&eq_buf).expect("module event");
    assert_eq!((e.ty, e.data[3]), (0x16, 1), "plugged, enabled");
    let e = eq.poll(&eq_buf).expect("link up");
    assert_eq!((e.ty, e.sub), (0x09, 4));
    assert_eq!(ptys_oper(&mut r), (0, 1 << 25, 2));
    // A QSFP module does not fit the SFP28 cage; the cage must be empty.
    let why =
        r.p.with_model(|d| d.insert_module(ModuleKind::Dac10g))
            .unwrap_err();
    assert!(why.contains("remove it first"), "{why}");
    r.p.with_model(|d| d.remove_module());
    let why =
        r.p.with_model(|d| d.insert_module(ModuleKind::Dac100g))
            .unwrap_err();
    assert!(why.contains("does not fit the SFP28 cage"), "{why}");
    r.p.with_model(|d| d.insert_module(ModuleKind::Dac10g).unwrap());
    let _ = eq.drain(&eq_buf);
    // A module error: plugged with error (3), error_type at byte 6
    // (5: unknown identifier); the link goes down.
    r.p.with_model(|d| d.module_error(5).unwrap());
    let e = eq.poll(&eq_buf).expect("module error");
    assert_eq!((e.ty, e.data[3], e.data[6]), (0x16, 3, 5));
    assert_eq!(eq.poll(&eq_buf).map(|e| e.sub), Some(1));
    assert_eq!(pmaos(&mut r), (1, 3));
    // PMAOS admin disable (ase, admin_status 2): plugged, disabled (4).
    r.p.with_model(|d| {
        d.remove_module();
        d.insert_module(ModuleKind::Dac10g).unwrap()
    });
    let _ = eq.drain(&eq_buf);
    let mut m = Msg::new(ACCESS_REG, 0, D + 0x10);
    m.be16(0x0a, 0x5012).u8(D + 2, 2).u8(D + 4, 0x80);
    r.ok(&m, D + 0x10);
    assert_eq!(pmaos(&mut r), (2, 4));
    assert_eq!(eq.poll(&eq_buf).map(|e| (e.ty, e.data[3])), Some((0x16, 4)));
    assert_eq!(eq.poll(&eq_buf).map(|e| e.sub), Some(1));
    assert_eq!(mcia(&mut r, 0x50, 0, 0, 1).0, 0x10, "MODULE_DISABLED");
    assert!(r.p.sanitizer_violations().is_empty());
}

#[test]
fn extended_protocols_follow_the_module_on_cx6() {
    let mut r = Raw::new(Personality::ConnectX6, Mode::Synchronous);
    let _up = r.bring_up();
    // 200G DAC: 200GAUI-4 (extended bit 12).
    assert_eq!(ptys_oper(&mut r).0, 1 << 12);
    r.p.with_model(|d| {
        d.remove_module();
        d.insert_module(ModuleKind::Copper1g).unwrap()
    });
    // 1000BASE-X/SGMII (extended bit 1), speed 1G.
    assert_eq!(ptys_oper(&mut r).0, 1 << 1);
    assert_eq!(r.p.with_model(|d| d.phys_port.speed_mbps()), 1000);
}

#[test]
fn mlcr_beacon_reads_back() {
    let mut r = Raw::new(Personality::ConnectX5, Mode::Synchronous);
    let _up = r.bring_up();
    let mlcr = |r: &mut Raw, write: Option<u16>| {
        let mut m = Msg::new(ACCESS_REG, if write.is_some() { 0 } else { 1 }, D + 0x0c);
        // mlcr_reg: local_port byte 1, beacon_duration bytes 6-7,
        // beacon_remain bytes 10-11.
        m.be16(0x0a, 0x902b).u8(D + 1, 1);
        if let Some(s) = write {
            m.be16(D + 6, s);
        }
        let out = r.ok(&m, D + 0x0c);
        (be16(&out, D + 6), be16(&out, D + 0x0a))
    };
    assert_eq!(mlcr(&mut r, None), (0, 0));
    assert_eq!(mlcr(&mut r, Some(0xffff)), (0xffff, 0xffff), "on");
    let (d, left) = mlcr(&mut r, Some(30));
    assert_eq!(d, 30);
    assert!((29..=30).contains(&left), "{left}");
    assert_eq!(mlcr(&mut r, Some(0)), (0, 0));
}

#[test]
fn the_mac_drops_frames_above_the_port_mtu_and_counts_them() {
    let mut r = Raw::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let _up = r.bring_up();
    let ppcnt_too_long = |r: &mut Raw| {
        let mut m = Msg::new(ACCESS_REG, 1, D + 0x100);
        m.be16(0x0a, 0x5008).u8(D + 1, 1);
        // eth_802_3_cntrs_grp_data_layout: counter 12,
        // a_frame_too_long_errors, at counter_set byte 8 + 12 * 8.
        be64(&r.ok(&m, D + 0x100), D + 8 + 12 * 8)
    };
    // PMTU 1522 (IP MTU 1500): a 1518-byte frame (FCS not on the model's
    // wire) fits, 1519 does not.
    let mut m = Msg::new(ACCESS_REG, 0, D + 0x10);
    m.be16(0x0a, 0x5003).u8(D + 1, 1).be16(D + 8, 1522);
    r.ok(&m, D + 0x10);
    let mut frame = vec![0u8; 1519];
    frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    r.p.with_model(|d| {
        d.receive(&frame[..1518]);
        d.receive(&frame);
    });
    assert_eq!(ppcnt_too_long(&mut r), 1);
    assert_eq!(r.p.with_model(|d| d.nic.wire.stats.rx_dropped_too_long), 1);
    // PMTU 9022 (IP MTU 9000): a 9018-byte frame passes the MAC.
    let mut m = Msg::new(ACCESS_REG, 0, D + 0x10);
    m.be16(0x0a, 0x5003).u8(D + 1, 1).be16(D + 8, 9022);
    r.ok(&m, D + 0x10);
    r.p.with_model(|d| d.receive(&vec![0u8; 9018]));
    assert_eq!(ppcnt_too_long(&mut r), 1);
}
