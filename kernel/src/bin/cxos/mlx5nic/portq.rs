//! The receive queues of a port's own interface `net<i>` (issue 21,
//! feature `net`). The port's VNIC used to be made with one receive
//! queue, always: no option reached it (a VNIC had `queues:`, the port
//! nothing). `net.<i>=...,queues=N` (the VNIC syntax's `queues:` as a
//! port item, like `speed=` and ethtool's `rx-usecs=`; default 1) gives it
//! N receive queues with RSS over them. The boot CPU owns the interface;
//! on a machine with more than one CPU its queues 1.. are lent to the
//! next CPUs as a VNIC's are (`rxspread::spread_as`: receive helpers on
//! those CPUs' queue sets hand the frames to the boot CPU), and again
//! after a function reset (`rxspread::respread`). The completion EQs of
//! the queues it keeps are noted to wake the boot CPU
//! ([`super::note_poller`]).
//!
//! `ifconfig net<i> ...,queues=N` at run time makes the port's VNIC again
//! with N queues, as `aggr delete` gives a member its interface back: the
//! interface closes (its apps stop) and opens again with its
//! configuration (addresses, DHCP). A port that is not running (a member
//! of an aggregation, detached) takes the count when it opens.

use alloc::format;
use alloc::string::String;

use mlx5::Mac;
use mlx5::vnic::{Nic, VnicError, VnicSpec};

use super::{Mlx5Adapter, Mlx5Vnic, SLOTS, State, cmdwait};
use crate::netstack;

/// The receive queues `net<index>` is made with.
fn queues_of(index: usize) -> u8 {
    netstack::port_items_for(&format!("net{index}"))
        .queues
        .unwrap_or(1)
}

/// The VNIC of port `net<index>` (its own MAC `mac`) with its configured
/// receive queues; its completion EQs wake the boot CPU, which owns it.
pub(super) fn create(
    nic: &Nic<Mlx5Adapter>,
    index: usize,
    mac: Mac,
) -> Result<Mlx5Vnic, VnicError> {
    let mut v = nic.create(VnicSpec {
        mac: Some(mac),
        queues: queues_of(index),
        ..VnicSpec::default()
    })?;
    super::note_poller(index, v.queue_set().eq_indexes(), 0);
    crate::rxspread::spread_as(nic, &mut v, &format!("net{index}"), 0);
    Ok(v)
}

/// `queues=N` given at run time for interface `name`: a running `net<i>`
/// with another count is made again with N (the line saying so, or why
/// not); `None` when it is not running (it takes N when it opens).
pub fn set_queues(name: &str, queues: u8) -> Option<Result<String, String>> {
    let (index, nic) = {
        let slots = SLOTS.lock();
        let slot = slots.iter().find(|s| s.iface() == name)?;
        let State::Open(o) = &slot.state else {
            return None;
        };
        (slot.index, o.nic.clone())
    };
    let now = netstack::with_net::<Mlx5Vnic, _>(name, |net| net.device().queues())?;
    if now == usize::from(queues) {
        return Some(Ok(format!("{name}: {now} receive queues already")));
    }
    let mac = nic.resources().mac;
    let old = netstack::close::<Mlx5Vnic>(name, Some("changing its receive queues"))?;
    // Its rules and queues go, then come again, cooperatively (the
    // tables free meanwhile).
    let made = cmdwait::run(|_| {
        old.destroy();
        create(&nic, index, mac)
    });
    let v = match made {
        Ok(v) => v,
        Err(e) => {
            netstack::set_down(name, &format!("not reopened: {e}"));
            return Some(Err(format!("not reopened: {e}")));
        }
    };
    Some(match netstack::open(name, v) {
        Ok(line) => Ok(format!("{name}: {queues} receive queues\n{line}")),
        Err((v, why)) => {
            cmdwait::run(|_| v.destroy());
            netstack::set_down(name, &format!("not reopened: {why}"));
            Err(format!("not reopened: {why}"))
        }
    })
}
