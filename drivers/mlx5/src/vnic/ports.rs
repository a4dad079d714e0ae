//! The port sequences of [`crate::Adapter`] (transceiver, LED, speeds,
//! port MTU, port counters) run through a [`Nic`] without holding the
//! adapter while a command is with the device: each register access is
//! submitted and looked at under the control-plane lock, the caller's
//! `idle` runs between two looks with it free ([`CoopExec`]), and the
//! adapter state the sequence leaves (the port state, what a function
//! reset replays) is applied under the lock at the end. Same sequences,
//! same answers and typed errors as the `Adapter` methods. The owner's
//! EQ0 service ([`Nic::poll_with`]) reads the port state after a port
//! event the same way.

use cxos_drivers::Platform;

use super::{CoopExec, Nic};
use crate::adapter::ports;
use crate::error::Error;
use crate::module::{Ieee8023, Led, ModuleImage, ModuleState, PortError, SpeedSetting};
use crate::sff::Transceiver;
use crate::{Adapter, PortEvents};

impl<P: Platform> Nic<Adapter<P>> {
    /// [`Adapter::module_state`], cooperatively.
    pub fn module_state_with(&self, idle: impl FnMut()) -> Result<ModuleState, PortError> {
        let module = self.with_adapter(|a| a.port().module);
        ports::module_state(&mut CoopExec::new(self, idle), module)
    }

    /// [`Adapter::read_module`], cooperatively.
    pub fn read_module_with(&self, idle: impl FnMut()) -> Result<ModuleImage, PortError> {
        let module = self.with_adapter(|a| a.port().module);
        ports::read_module(&mut CoopExec::new(self, idle), module)
    }

    /// [`Adapter::set_led`], cooperatively.
    pub fn set_led_with(&self, led: Led, idle: impl FnMut()) -> Result<(), PortError> {
        ports::set_led(&mut CoopExec::new(self, idle), led)?;
        self.with_adapter(|a| a.led_set(led));
        Ok(())
    }

    /// [`Adapter::led`], cooperatively.
    pub fn led_with(&self, idle: impl FnMut()) -> Result<(u16, u16), PortError> {
        ports::led(&mut CoopExec::new(self, idle))
    }

    /// [`Adapter::set_speed`], cooperatively.
    pub fn set_speed_with(&self, s: SpeedSetting, idle: impl FnMut()) -> Result<(), PortError> {
        let mut x = CoopExec::new(self, idle);
        ports::set_speed(&mut x, s)?;
        self.with_adapter(|a| a.speed_set(s));
        let info = ports::read_port(&mut x)?;
        self.with_adapter(|a| a.port_read(info));
        Ok(())
    }

    /// [`Adapter::set_port_mtu`], cooperatively.
    pub fn set_port_mtu_with(&self, ip_mtu: usize, idle: impl FnMut()) -> Result<u16, PortError> {
        let max = self.with_adapter(|a| a.port().max_mtu);
        let mut x = CoopExec::new(self, idle);
        ports::set_port_mtu(&mut x, ip_mtu, max)?;
        self.with_adapter(|a| a.port_mtu_set(ip_mtu));
        let info = ports::read_port(&mut x)?;
        let oper = info.oper_mtu;
        self.with_adapter(|a| a.port_read(info));
        Ok(oper)
    }

    /// [`Adapter::port_counters`], cooperatively.
    pub fn port_counters_with(&self, idle: impl FnMut()) -> Result<Ieee8023, PortError> {
        ports::port_counters(&mut CoopExec::new(self, idle))
    }

    /// [`Adapter::transceiver`], cooperatively.
    pub fn transceiver_with(&self, idle: impl FnMut()) -> Result<Transceiver, PortError> {
        self.read_module_with(idle)?
            .decode()
            .map_err(PortError::Sff)
    }

    /// [`Adapter::poll`] (EQ0: page requests, port events), the port
    /// state read again after a port event cooperatively: EQ0 is drained
    /// and the page requests served under the lock, the register reads
    /// wait with it free.
    pub fn poll_with(&self, mut idle: impl FnMut()) -> Result<PortEvents, Error> {
        let events = self.with_adapter(|a| a.take_events())?;
        if !events.is_empty() {
            let info = ports::read_port(&mut CoopExec::new(self, &mut idle))?;
            self.with_adapter(|a| a.port_events_read(info, events.len()));
        }
        if self.with_adapter(|a| a.is_failed()) {
            return Err(Error::AdapterFailed);
        }
        Ok(events)
    }
}
