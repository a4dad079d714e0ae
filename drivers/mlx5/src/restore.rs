//! Replaying a function's data path after a function reset
//! ([`crate::Adapter::reset_function`]): what each VNIC was as its user
//! saw it ([`VnicState`]: its MAC, VLAN, receive queues, MTU, multicast
//! groups, promiscuous mode), taken before the reset, and the same VNIC
//! built again on the new adapter's steering ([`replay`]). The owner swaps
//! the new VNIC in place of the old one under its network stack, so the
//! interface keeps its addresses and sockets; the old VNIC is then dropped
//! (its commands fail fast on the failed shell, its memory goes back).

use alloc::vec::Vec;

use cxos_drivers::{FilterError, NetDevice};

use crate::control::Control;
use crate::error::Error;
use crate::vnic::{Nic, Vnic, VnicError, VnicSpec};
use crate::vport::Mac;

/// What a VNIC was, to build it again.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VnicState {
    /// With the MAC it had (a generated one is kept too).
    pub spec: VnicSpec,
    pub mtu: usize,
    pub groups: Vec<Mac>,
    pub promisc: bool,
    /// The queue set it was on ([`Nic::create_on`]): the CPU polling it
    /// keeps its interrupts.
    pub queue_set: usize,
}

impl VnicState {
    pub fn of<C: Control>(v: &Vnic<C>) -> Self {
        Self {
            spec: VnicSpec {
                mac: Some(v.mac()),
                vlan: v.vlan(),
                queues: v.queues() as u8,
            },
            mtu: NetDevice::mtu(v),
            groups: v.multicast().to_vec(),
            promisc: v.promiscuous(),
            queue_set: v.queue_set().eq_indexes().first().copied().unwrap_or(0),
        }
    }
}

/// Why a VNIC was not built again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RestoreError {
    Vnic(VnicError),
    Mtu(Error),
    Filter(FilterError),
}

impl core::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RestoreError::Vnic(e) => write!(f, "{e}"),
            RestoreError::Mtu(e) => write!(f, "MTU not restored: {e}"),
            RestoreError::Filter(e) => write!(f, "multicast or promiscuous not restored: {e:?}"),
        }
    }
}

/// Build the VNIC `s` describes on `nic`, with receive buffers for
/// `port_mtu` (the port's IP MTU, at least its own).
pub fn replay<C: Control>(
    nic: &Nic<C>,
    s: &VnicState,
    port_mtu: usize,
) -> Result<Vnic<C>, RestoreError> {
    let mut v = nic
        .create_on(s.spec, s.queue_set)
        .map_err(RestoreError::Vnic)?;
    let own = v.queue_set().config().mtu;
    let rx = port_mtu.max(s.mtu);
    if s.mtu != own || rx != own {
        v.queue_set_mut()
            .set_mtu(s.mtu, rx)
            .map_err(RestoreError::Mtu)?;
    }
    for g in &s.groups {
        v.add_multicast(g.0).map_err(RestoreError::Filter)?;
    }
    if s.promisc {
        v.set_promiscuous(true).map_err(RestoreError::Filter)?;
    }
    Ok(v)
}
