//! Port management on a running adapter: the transceiver (PMAOS state,
//! paged MCIA reads, decoding), the identification LED (MLCR), the
//! advertised speeds (PTYS admin) and the IEEE 802.3 port counters
//! (PPCNT). Registers and errors: [`crate::module`].
//!
//! Each operation is a sequence of register accesses written once, over
//! any [`Exec`] (the free functions below), and the adapter state it
//! leaves ([`Adapter::port`], what a function reset replays) applied
//! after. The [`Adapter`] methods run a sequence on the adapter itself
//! (each command waited for in turn); [`crate::vnic::Nic`]'s `*_with`
//! methods run the same sequence over [`crate::vnic::CoopExec`], where
//! the adapter is not held while a command is with the device.

use alloc::vec::Vec;

use cxos_drivers::Platform;

use super::Adapter;
use crate::cmd::Exec;
use crate::error::Error;
use crate::module::{
    self, Ieee8023, Led, ModuleImage, ModuleState, PortError, SpeedSetting, mcia, mlcr, pmaos,
};
use crate::port::{self, AccessRegister, PortInfo, ptys};
use crate::sff::Transceiver;

fn register(x: &mut impl Exec, reg: u16, write: bool, data: &[u8]) -> Result<Vec<u8>, PortError> {
    Ok(x.exec(&AccessRegister { reg, write, data })?)
}

fn read_register(x: &mut impl Exec, reg: u16) -> Result<Vec<u8>, Error> {
    Ok(x.exec(&AccessRegister {
        reg,
        write: false,
        data: &port::read_request(reg),
    })?)
}

/// The port state: PAOS, PTYS, PMTU, PMLP.
pub(crate) fn read_port(x: &mut impl Exec) -> Result<PortInfo, Error> {
    let mut info = PortInfo::default();
    info.apply_paos(&read_register(x, port::REG_PAOS)?);
    info.apply_ptys(&read_register(x, port::REG_PTYS)?);
    info.apply_pmtu(&read_register(x, port::REG_PMTU)?);
    info.apply_pmlp(&read_register(x, port::REG_PMLP)?);
    Ok(info)
}

/// The state of cage `module` (PMAOS).
pub(crate) fn module_state(x: &mut impl Exec, module: u8) -> Result<ModuleState, PortError> {
    let d = register(x, module::REG_PMAOS, false, &module::pmaos_read(module))?;
    Ok(ModuleState::of(pmaos::OPER_STATUS.get(&d) as u8, 0))
}

/// `len` bytes from `offset` of `page` at `i2c` of cage `module`, in MCIA
/// reads of at most 48 bytes.
fn module_bytes(
    x: &mut impl Exec,
    module: u8,
    (i2c, page, offset): (u8, u8, u16),
    len: usize,
    commands: &mut u32,
) -> Result<Vec<u8>, PortError> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let at = offset + out.len() as u16;
        let n = (len - out.len()).min(mcia::MAX_BYTES);
        let req = module::mcia_read(module, i2c, page, at, n as u16);
        let d = register(x, module::REG_MCIA, false, &req)?;
        *commands += 1;
        let status = mcia::STATUS.get(&d) as u8;
        if status != 0 {
            return Err(PortError::Mcia {
                status,
                i2c,
                page,
                offset: at,
            });
        }
        let data = d.get(mcia::DWORDS..mcia::DWORDS + n).ok_or(PortError::Sff(
            crate::sff::SffError::Truncated {
                page,
                len: d.len(),
                need: mcia::DWORDS + n,
            },
        ))?;
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// The memory of the module in cage `module`: page 00h, then A2h on an
/// SFP that announces diagnostics (SFF-8472 byte 92 bit 6) or page 03h on
/// a paged QSFP (SFF-8636 byte 2 Flat_mem clear).
pub(crate) fn read_module(x: &mut impl Exec, module: u8) -> Result<ModuleImage, PortError> {
    let mut commands = 0;
    let low = module_bytes(x, module, (mcia::I2C_LOW, 0, 0), 256, &mut commands)?;
    let (mut a2, mut page3) = (None, None);
    // Further pages only where the identifier says what they are.
    match crate::sff::Identifier::of(low[0]) {
        Some(id) if id.is_sfp() && low[92] & 0x40 != 0 => {
            a2 = Some(module_bytes(
                x,
                module,
                (mcia::I2C_HIGH, 0, 0),
                256,
                &mut commands,
            )?);
        }
        Some(id) if id.is_sfp() => {}
        Some(_) if low[2] & 0x04 == 0 => {
            page3 = Some(module_bytes(
                x,
                module,
                (mcia::I2C_LOW, 3, 128),
                128,
                &mut commands,
            )?);
        }
        _ => {}
    }
    Ok(ModuleImage {
        low,
        a2,
        page3,
        commands,
    })
}

/// Set the identification LED (MLCR).
pub(crate) fn set_led(x: &mut impl Exec, led: Led) -> Result<(), PortError> {
    register(
        x,
        module::REG_MLCR,
        true,
        &module::mlcr_write(port::LOCAL_PORT, led.duration()),
    )?;
    Ok(())
}

/// The LED as MLCR reports it: (beacon_duration, beacon_remain).
pub(crate) fn led(x: &mut impl Exec) -> Result<(u16, u16), PortError> {
    let d = register(
        x,
        module::REG_MLCR,
        false,
        &module::mlcr_write(port::LOCAL_PORT, 0),
    )?;
    Ok((
        mlcr::BEACON_DURATION.get(&d) as u16,
        mlcr::BEACON_REMAIN.get(&d) as u16,
    ))
}

/// Advertise every protocol the port has (`Auto`) or only those of one
/// speed; the extended protocol set on parts that have one (the caller
/// reads the port state again after).
pub(crate) fn set_speed(x: &mut impl Exec, s: SpeedSetting) -> Result<(), PortError> {
    let caps = register(
        x,
        port::REG_PTYS,
        false,
        &port::read_request(port::REG_PTYS),
    )?;
    let ext_cap = ptys::EXT_ETH_PROTO_CAPABILITY.get(&caps);
    let cap = ptys::ETH_PROTO_CAPABILITY.get(&caps);
    let (ext, mask, speed): (bool, u32, fn(u32) -> u32) = if ext_cap != 0 {
        (true, ext_cap, port::ext_speed)
    } else {
        (false, cap, port::legacy_speed)
    };
    let admin = match s {
        SpeedSetting::Auto => mask,
        SpeedSetting::Forced(mbps) => {
            let m = (0..32)
                .filter(|b| mask & (1 << b) != 0 && speed(*b) == mbps)
                .fold(0, |m, b| m | (1 << b));
            if m == 0 {
                let mut supported: Vec<u32> = (0..32)
                    .filter(|b| mask & (1 << b) != 0)
                    .map(speed)
                    .filter(|s| *s != 0)
                    .collect();
                supported.sort_unstable();
                supported.dedup();
                return Err(PortError::Speed {
                    asked_mbps: mbps,
                    supported,
                });
            }
            m
        }
    };
    let mut d = port::read_request(port::REG_PTYS);
    if ext {
        ptys::EXT_ETH_PROTO_ADMIN.set(&mut d, admin);
    } else {
        ptys::ETH_PROTO_ADMIN.set(&mut d, admin);
    }
    register(x, port::REG_PTYS, true, &d)?;
    Ok(())
}

/// Program the port MTU (PMTU) for IP MTU `ip_mtu` on a port whose
/// largest is `max_mtu` (the caller reads the port state again after).
pub(crate) fn set_port_mtu(
    x: &mut impl Exec,
    ip_mtu: usize,
    max_mtu: u16,
) -> Result<(), PortError> {
    let max = usize::from(max_mtu).saturating_sub(module::PORT_MTU_OVERHEAD);
    if !(68..=max).contains(&ip_mtu) {
        return Err(PortError::Mtu { asked: ip_mtu, max });
    }
    let mut d = [0u8; port::pmtu::LEN];
    port::pmtu::LOCAL_PORT.set(&mut d, port::LOCAL_PORT);
    port::pmtu::ADMIN_MTU.set(&mut d, (ip_mtu + module::PORT_MTU_OVERHEAD) as u32);
    register(x, port::REG_PMTU, true, &d)?;
    Ok(())
}

/// The port's IEEE 802.3 counters (PPCNT group 0).
pub(crate) fn port_counters(x: &mut impl Exec) -> Result<Ieee8023, PortError> {
    let d = module::ppcnt::ieee_802_3_request();
    let d = register(x, module::REG_PPCNT, false, &d)?;
    Ok(Ieee8023::parse(&d))
}

impl<P: Platform> Adapter<P> {
    /// The cage's module state (PMAOS).
    pub fn module_state(&mut self) -> Result<ModuleState, PortError> {
        let m = self.port.module;
        module_state(self, m)
    }

    /// The module's memory ([`ModuleImage`]: page 00h, A2h or 03h).
    pub fn read_module(&mut self) -> Result<ModuleImage, PortError> {
        let m = self.port.module;
        read_module(self, m)
    }

    /// The module's data, decoded.
    pub fn transceiver(&mut self) -> Result<Transceiver, PortError> {
        self.read_module()?.decode().map_err(PortError::Sff)
    }

    /// The identification LED (MLCR).
    pub fn set_led(&mut self, led: Led) -> Result<(), PortError> {
        set_led(self, led)?;
        self.led_set(led);
        Ok(())
    }

    /// The LED as MLCR reports it: (beacon_duration, beacon_remain).
    pub fn led(&mut self) -> Result<(u16, u16), PortError> {
        led(self)
    }

    /// Advertise every protocol the port has (`Auto`) or only those of
    /// one speed. The port state is read again after.
    pub fn set_speed(&mut self, s: SpeedSetting) -> Result<(), PortError> {
        set_speed(self, s)?;
        self.configured.speed = Some(s);
        self.refresh_port()?;
        Ok(())
    }

    /// Program the port MTU (PMTU) for IP MTU `ip_mtu`: the MAC then
    /// drops (and counts) longer frames before they reach a receive
    /// queue. Returns the operational port MTU.
    pub fn set_port_mtu(&mut self, ip_mtu: usize) -> Result<u16, PortError> {
        let max = self.port.max_mtu;
        set_port_mtu(self, ip_mtu, max)?;
        self.configured.port_mtu = Some(ip_mtu);
        self.refresh_port()?;
        Ok(self.port.oper_mtu)
    }

    /// The port's IEEE 802.3 counters (PPCNT group 0).
    pub fn port_counters(&mut self) -> Result<Ieee8023, PortError> {
        port_counters(self)
    }

    /// A sequence set the LED: a function reset sets it again.
    pub(crate) fn led_set(&mut self, led: Led) {
        self.configured.led = Some(led);
    }

    /// A sequence set the advertised speeds: a function reset sets them
    /// again.
    pub(crate) fn speed_set(&mut self, s: SpeedSetting) {
        self.configured.speed = Some(s);
    }

    /// A sequence set the port MTU: a function reset sets it again.
    pub(crate) fn port_mtu_set(&mut self, ip_mtu: usize) {
        self.configured.port_mtu = Some(ip_mtu);
    }

    /// The port state a sequence read ([`read_port`]).
    pub(crate) fn port_read(&mut self, info: PortInfo) {
        self.port = info;
    }
}
