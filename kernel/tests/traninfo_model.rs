//! `traninfo` on bad modules, end to end (the model's cage, MCIA reads
//! by the driver, the shell's text): a module that goes away in the
//! middle of a read (the model pulls it between two MCIA reads: inside
//! page 00h, and between page 00h and the next page), a bad check code,
//! an unknown identifier, an absent upper page. Each is a typed error
//! and a readable line, never a panic; the port keeps working (a module
//! plugged again reads whole).

use cxos_kernel::pci::parse_address;
use cxos_kernel::traninfo::traninfo;
use mlx5::module::{PortError, mcia};
use mlx5::{Adapter, Config};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::module::ModuleKind;

fn attach(sim: &SimPlatform) -> Adapter<SimPlatform> {
    let cfg = Config {
        cmd_timeout_ms: Some(5_000),
        fw_init_timeout_ms: Some(5_000),
        ..Config::default()
    };
    Adapter::attach(sim.clone(), cfg).unwrap_or_else(|f| panic!("attach failed: {}", f.error))
}

/// Plug `kind`, arrange for the module to be pulled right after the
/// model's `nth` MCIA read from now, and read it the way `traninfo` does.
fn pulled_at(
    sim: &SimPlatform,
    a: &mut Adapter<SimPlatform>,
    kind: ModuleKind,
    nth: u64,
) -> (PortError, String) {
    sim.with_model(|d| {
        d.remove_module();
        d.insert_module(kind).unwrap();
        d.pull_module_at_read = Some(d.module_reads + nth);
    });
    let _ = a.poll();
    let e = a.read_module().expect_err("the module left mid-read");
    let _ = a.poll();
    let state = a.module_state();
    let line = traninfo(
        parse_address("01:00.0").unwrap(),
        state,
        Some(Err(e.clone())),
        false,
    );
    (e, line)
}

#[test]
fn a_module_pulled_between_mcia_reads_is_a_typed_error_and_a_readable_line() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut a = attach(&sim);
    // Inside page 00h: pulled after two 48-byte reads, the third (bytes
    // 96..) finds the cage empty; status 3 is "module not connected" (PRM
    // "MCIA").
    let (e, line) = pulled_at(&sim, &mut a, ModuleKind::Dac25g, 2);
    assert_eq!(
        e,
        PortError::Mcia {
            status: 3,
            i2c: mcia::I2C_LOW,
            page: 0,
            offset: 96
        }
    );
    assert_eq!(
        line,
        "01:00.0 module: unplugged\n  unreadable: MCIA status 0x3 (module not connected) \
         reading 0x50 page 0 byte 96\n"
    );
    // Between pages: page 00h of the SR module read whole (6 reads), the
    // module gone before its diagnostics page A2h.
    let (e, line) = pulled_at(&sim, &mut a, ModuleKind::Sr10g, 6);
    assert_eq!(
        e,
        PortError::Mcia {
            status: 3,
            i2c: mcia::I2C_HIGH,
            page: 0,
            offset: 0
        }
    );
    assert!(
        line.ends_with(
            "unreadable: MCIA status 0x3 (module not connected) reading 0x51 page 0 byte 0\n"
        ),
        "{line}"
    );
    // A paged QSFP: page 00h whole, pulled before upper page 03h.
    let (e, _) = pulled_at(&sim, &mut a, ModuleKind::Sr4100g, 6);
    assert_eq!(
        e,
        PortError::Mcia {
            status: 3,
            i2c: mcia::I2C_LOW,
            page: 3,
            offset: 128
        }
    );
    // Plugged again, it reads whole.
    sim.with_model(|d| d.insert_module(ModuleKind::Dac25g).unwrap());
    let _ = a.poll();
    let t = a.transceiver().expect("a module plugged again reads whole");
    let line = traninfo(
        parse_address("01:00.0").unwrap(),
        a.module_state(),
        Some(a.read_module()),
        false,
    );
    assert!(line.contains(&t.pn), "{line}");
    let (_, rep) = a.detach();
    assert_eq!(rep.errors, 0, "{rep:?}");
}

#[test]
fn bad_eeproms_are_typed_errors_and_readable_lines() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let mut a = attach(&sim);
    let addr = parse_address("01:00.0").unwrap();
    let show = |a: &mut Adapter<SimPlatform>| {
        let _ = a.poll();
        traninfo(addr, a.module_state(), Some(a.read_module()), false)
    };
    // A bad check code: SFF-8636 CC_BASE (byte 191) no longer matches
    // bytes 128-190 once the vendor name (148-163) is changed.
    sim.with_model(|d| d.phys_port.module.as_mut().unwrap().eeprom.low[150] ^= 0xff);
    let line = show(&mut a);
    assert!(
        line.starts_with("01:00.0 module: plugged\n  undecodable: bad CC_BASE at byte 191"),
        "{line}"
    );
    // An identifier SFF-8024 gives to a form factor the decoder does not
    // know (18h: QSFP-DD).
    sim.with_model(|d| d.phys_port.module.as_mut().unwrap().eeprom.low[0] = 0x18);
    let line = show(&mut a);
    assert!(line.contains("unknown identifier 0x18"), "{line}");
    // A paged QSFP (SFF-8636 byte 2 bit 2 Flat_mem clear) whose upper
    // page 03h is absent: the module's bus answers the page select with
    // an error, and the read stops there.
    sim.with_model(|d| {
        d.remove_module();
        d.insert_module(ModuleKind::Sr4100g).unwrap();
        d.phys_port.module.as_mut().unwrap().eeprom.pages.clear();
    });
    let e = {
        let _ = a.poll();
        a.read_module().unwrap_err()
    };
    assert!(
        matches!(
            e,
            PortError::Mcia {
                page: 3,
                offset: 128,
                ..
            }
        ),
        "{e}"
    );
    let line = show(&mut a);
    assert!(
        line.contains("unreadable: MCIA status") && line.contains("page 3 byte 128"),
        "{line}"
    );
    let (_, rep) = a.detach();
    assert_eq!(rep.errors, 0, "{rep:?}");
}
