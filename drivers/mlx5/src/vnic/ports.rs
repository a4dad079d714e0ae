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
use crate::cmd::Command;
use crate::cmd_engine::CmdEngine;
use crate::error::{CmdError, Error};
use crate::module::{Ieee8023, Led, ModuleImage, ModuleState, PortError, SpeedSetting};
use crate::page_service::PageHost;
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

    /// [`Adapter::poll`] (EQ0: page requests, port events) cooperatively:
    /// EQ0 is drained under the lock, then the page requests' MANAGE_PAGES
    /// and the port-state reads after a port event wait with it free
    /// (the pool and the port state updated under it). With
    /// [`Adapter::defer_page_requests`] this is where page requests are
    /// served.
    pub fn poll_with(&self, mut idle: impl FnMut()) -> Result<PortEvents, Error> {
        let events = self.with_adapter(|a| a.take_events())?;
        crate::page_service::serve(&mut NicPages {
            nic: self,
            idle: &mut idle,
        });
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

/// Page work through a `Nic`: MANAGE_PAGES waits with the lock free.
struct NicPages<'a, P: Platform, F: FnMut()> {
    nic: &'a Nic<Adapter<P>>,
    idle: F,
}

impl<P: Platform, F: FnMut()> PageHost for NicPages<'_, P, F> {
    type P = P;
    fn exec_page<C: Command>(&mut self, cmd: C) -> Result<C::Output, CmdError> {
        self.nic.exec_with(cmd, &mut self.idle)
    }
    fn engine<R>(&mut self, f: impl FnOnce(&mut CmdEngine<P>) -> R) -> R {
        self.nic.with_adapter(|a| f(a.engine_mut()))
    }
}
