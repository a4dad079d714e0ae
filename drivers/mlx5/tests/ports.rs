//! Port management against mlx5-sim: module events and state, paged MCIA
//! reads decoded and compared with the model's own images, a module
//! pulled mid-read, the LED, advertised speeds and the 802.3 counters.

mod common;

use mlx5::module::{Led, ModuleState, PortError, SpeedSetting};
use mlx5::sff::{Identifier, Reach};
use mlx5::{Adapter, FaultAction, FaultClass, FaultObject, FaultOutcome, PortEvent};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};
use mlx5_sim::module::ModuleKind;

fn attach(sim: &SimPlatform) -> Adapter<SimPlatform> {
    match Adapter::attach(sim.clone(), common::config()) {
        Ok(a) => a,
        Err(f) => panic!("attach failed: {}", f.error),
    }
}

/// The ASCII field at `at..at + n` of the model's page 00h, unpadded.
fn field(kind: ModuleKind, at: usize, n: usize) -> String {
    let e = kind.eeprom();
    String::from_utf8(e.low[at..at + n].to_vec())
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn module_events_follow_the_cage_and_the_speed_follows_the_module() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut a = attach(&sim);
    assert_eq!(a.port().speed_mbps, 25_000);
    assert_eq!(a.module_state().unwrap(), ModuleState::Plugged);
    sim.with_model(|d| d.remove_module());
    let ev: Vec<PortEvent> = a.poll().unwrap().into_iter().collect();
    assert_eq!(
        ev,
        [PortEvent::Module(ModuleState::Unplugged), PortEvent::Down]
    );
    assert!(!a.link_up());
    assert_eq!(a.module_state().unwrap(), ModuleState::Unplugged);
    // No module: MCIA answers status 3 (module not connected).
    assert_eq!(
        a.read_module(),
        Err(PortError::Mcia {
            status: 3,
            i2c: 0x50,
            page: 0,
            offset: 0
        })
    );
    sim.with_model(|d| d.insert_module(ModuleKind::Copper1g).unwrap());
    let ev: Vec<PortEvent> = a.poll().unwrap().into_iter().collect();
    assert_eq!(ev, [PortEvent::Module(ModuleState::Plugged), PortEvent::Up]);
    assert_eq!((a.link_up(), a.port().speed_mbps), (true, 1000));
    let t = a.transceiver().unwrap();
    assert_eq!(t.media, "1000BASE-T");
    // SFF-8472: vendor name 20-35, PN 40-55, SN 68-83 as the model has them.
    let k = ModuleKind::Copper1g;
    assert_eq!(t.vendor, field(k, 20, 16));
    assert_eq!(t.pn, field(k, 40, 16));
    assert_eq!(t.sn, field(k, 68, 16));
    // A module in error: the event names the error, the link goes down.
    sim.with_model(|d| d.module_error(6).unwrap());
    let ev: Vec<PortEvent> = a.poll().unwrap().into_iter().collect();
    assert_eq!(
        ev,
        [PortEvent::Module(ModuleState::Error(6)), PortEvent::Down]
    );
    // ... and is a fault record: port 1, the error type as syndrome.
    assert_eq!(a.faults().count(FaultClass::ModuleError), 1);
    let r = *a.faults().last().unwrap();
    assert_eq!(
        (r.class, r.object, r.syndrome, r.action, r.outcome),
        (
            FaultClass::ModuleError,
            FaultObject::Port(1),
            Some(6),
            FaultAction::None,
            FaultOutcome::Reported
        )
    );
    a.detach();
}

#[test]
fn paged_reads_decode_every_module_the_cage_takes() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Threaded);
    let mut a = attach(&sim);
    for kind in ModuleKind::ALL {
        sim.with_model(|d| {
            d.remove_module();
            d.insert_module(kind)
        })
        .unwrap();
        let img = a.read_module().unwrap();
        // 256 bytes of page 00h in 48-byte reads (6), and A2h (6 more) or
        // page 03h upper half (3) when the module has them.
        let want = match kind {
            ModuleKind::Sr10g => 12,
            ModuleKind::Sr4100g => 9,
            _ => 6,
        };
        assert_eq!(img.commands, want, "{kind:?}");
        let t = img.decode().unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let (vendor, pn, sn) = if t.identifier == Identifier::Sfp {
            ((20, 16), (40, 16), (68, 16))
        } else {
            ((148, 16), (168, 16), (196, 16))
        };
        assert_eq!(t.vendor, field(kind, vendor.0, vendor.1), "{kind:?}");
        assert_eq!(t.pn, field(kind, pn.0, pn.1), "{kind:?}");
        assert_eq!(t.sn, field(kind, sn.0, sn.1), "{kind:?}");
        match kind {
            ModuleKind::Sr10g => {
                let d = t.diagnostics.expect("SFF-8472 A2h");
                assert_eq!(d.temperature, 9088);
                assert_eq!(d.temp_thresholds[0], 19200);
                assert_eq!(t.wavelength_nm, Some(850));
            }
            ModuleKind::Sr4100g => {
                let d = t.diagnostics.expect("SFF-8636 page 03h");
                assert_eq!(d.temperature, 9728);
                assert_eq!(d.rx_power_thresholds[0], 34674);
                assert_eq!(t.wavelength_nm, Some(850));
                assert_eq!(t.reach, Reach::Om3M(70));
            }
            ModuleKind::Dac100g => assert_eq!(t.media, "100GBASE-CR4"),
            _ => {}
        }
    }
    a.detach();
}

#[test]
fn a_module_pulled_or_broken_is_a_typed_error() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut a = attach(&sim);
    // A bus stuck: the module does not answer (I2C error, status 9).
    sim.with_model(|d| d.module_error(2).unwrap());
    assert!(matches!(
        a.read_module(),
        Err(PortError::Mcia { status: 9, .. })
    ));
    // A corrupted EEPROM: the check code does not match.
    sim.with_model(|d| {
        let m = d.phys_port.module.as_mut().unwrap();
        m.error = None;
        m.eeprom.low[40] ^= 0xff;
    });
    let e = a.transceiver().unwrap_err();
    assert!(
        matches!(
            e,
            PortError::Sff(mlx5::sff::SffError::BadChecksum { offset: 63, .. })
        ),
        "{e}"
    );
    // An identifier the decoder does not know.
    sim.with_model(|d| d.phys_port.module.as_mut().unwrap().eeprom.low[0] = 0x18);
    assert_eq!(
        a.transceiver(),
        Err(PortError::Sff(mlx5::sff::SffError::UnknownIdentifier(0x18)))
    );
    a.detach();
}

#[test]
fn led_and_speeds() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut a = attach(&sim);
    a.set_led(Led::On).unwrap();
    assert_eq!(a.led().unwrap(), (0xffff, 0xffff));
    a.set_led(Led::Beacon(20)).unwrap();
    let (d, left) = a.led().unwrap();
    assert!(d == 20 && (19..=20).contains(&left), "{d} {left}");
    a.set_led(Led::Off).unwrap();
    assert_eq!(a.led().unwrap(), (0, 0));
    assert_eq!(
        sim.with_model(|d| d.phys_port.beacon),
        mlx5_sim::phys_port::Beacon::Off
    );
    // 25G DAC in the Lx: forced 10G, back to auto (25G), 100G refused.
    a.set_speed(SpeedSetting::Forced(10_000)).unwrap();
    let _ = a.poll().unwrap();
    assert_eq!(a.port().speed_mbps, 10_000);
    a.set_speed(SpeedSetting::Auto).unwrap();
    let _ = a.poll().unwrap();
    assert_eq!(a.port().speed_mbps, 25_000);
    let e = a.set_speed(SpeedSetting::Forced(100_000)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "100G not supported; this port runs 1G 10G 25G 40G 50G"
    );
    // The 802.3 counters (PPCNT) count what the MAC saw.
    a.set_port_mtu(1500).unwrap();
    let before = a.port_counters().unwrap();
    sim.with_model(|d| {
        d.receive(&[0xff; 60]);
        d.receive(&[0x02; 1600]);
    });
    let c = a.port_counters().unwrap();
    assert_eq!(c.frames_rx - before.frames_rx, 2);
    assert_eq!(c.broadcast_rx - before.broadcast_rx, 1);
    assert_eq!(c.too_long - before.too_long, 1);
    a.detach();
}

#[test]
fn the_port_mtu_is_the_ip_mtu_plus_22_and_the_mac_enforces_it() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    let mut a = attach(&sim);
    // Firmware left the MAC at the port's largest frame; attach brought it
    // to the Ethernet default (IP MTU 1500 + 22).
    assert!(a.port().max_mtu > 1522);
    assert_eq!(a.port().oper_mtu, 1522);
    assert_eq!(sim.with_model(|d| d.phys_port.admin_mtu), 1522);
    assert_eq!(a.set_port_mtu(9000).unwrap(), 9022);
    assert_eq!(sim.with_model(|d| d.phys_port.admin_mtu), 9022);
    assert_eq!(a.set_port_mtu(1500).unwrap(), 1522);
    // A 2000-byte frame stops at the MAC (counted), not in a receive queue.
    let before = a.port_counters().unwrap().too_long;
    sim.with_model(|d| d.receive(&[0x02; 2000]));
    assert_eq!(a.port_counters().unwrap().too_long, before + 1);
    let max = usize::from(a.port().max_mtu) - 22;
    assert_eq!(
        a.set_port_mtu(max + 1),
        Err(PortError::Mtu {
            asked: max + 1,
            max
        })
    );
    assert_eq!(
        a.set_port_mtu(67).unwrap_err().to_string(),
        format!("MTU 67 out of range: this port takes 68 to {max}")
    );
    a.detach();
}
