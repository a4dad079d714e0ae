//! Function reset recovery of one slot: the adapter failed (health
//! syndrome, stopped health counter, internal error event) or a queue's
//! recovery escalated. The driver resets the function and brings it up
//! again with the user's port settings ([`mlx5::Adapter::reset_function`]);
//! here the data path is rebuilt on it: the port's steering, then every
//! interface's VNIC as it was ([`mlx5::restore`]), swapped in under its
//! network stack so the interface keeps its addresses, routes and sockets
//! (TCP retransmits what was lost meanwhile). The FAULT records are the
//! driver's; this prints what was restored and how long it took.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mlx5::Resources;
use mlx5::adapter::ResetError;
use mlx5::restore::{self, VnicState};
use mlx5::vnic::{Nic, NicConfig};

#[cfg(feature = "net")]
use super::Mlx5Vnic;
#[cfg(not(feature = "net"))]
use super::close_nic;
use super::{Mlx5Adapter, Opened, Slot, State, bind_eq0};
use crate::{println, time};

/// Whether the slot's adapter asks for a function reset.
pub(super) fn wanted(slot: &mut Slot) -> bool {
    slot.state
        .with_adapter(|a| a.is_failed() || a.faults().escalation_pending())
        .unwrap_or(false)
}

/// Reset the slot's function and restore its data path (see the module
/// documentation). On a refusal (too many resets, no FLR) the adapter
/// stays failed, reported once; if bring-up fails the slot goes down.
pub(super) fn recover(slot: &mut Slot) {
    let addr = slot.addr;
    let t0 = time::now_ns();
    let states = snapshot(slot);
    let result = match &mut slot.state {
        State::Open(o) => o.nic.with_adapter(|a| a.reset_function()),
        State::Attached(a) => a.reset_function(),
        State::Down(_) | State::Moving => return,
    };
    let (adapter, report) = match result {
        Ok(r) => r,
        Err(ResetError::Attach(f)) => {
            let f = *f;
            println!(
                "mlx5 {addr}: function reset: bring-up failed at step '{}': {}; device left alone",
                f.error.step, f.error.error
            );
            drop_old(slot);
            f.platform.set_bus_master(false);
            slot.attach_error = Some(format!("{}", f.error));
            slot.state = State::Down(f.platform);
            #[cfg(feature = "net")]
            crate::netstack::set_down(&slot.iface(), &format!("{addr} failed"));
            return;
        }
        Err(e) => {
            println!("mlx5 {addr}: adapter failed: {e} (detach it)");
            slot.fault_reported = true;
            return;
        }
    };
    bind_eq0(&adapter, addr);
    let restored = match core::mem::replace(&mut slot.state, State::Moving) {
        State::Open(o) => reopen(slot, *o, adapter, &states),
        State::Attached(_) => {
            slot.state = super::open_port(slot, adapter);
            return report_done(addr, t0, report.took_ns, 0, 0);
        }
        other => {
            slot.state = other;
            return;
        }
    };
    let (ok, failed) = restored;
    report_done(addr, t0, report.took_ns, ok, failed);
}

fn report_done(addr: cxos_drivers::PciAddress, t0: u64, reset_ns: u64, ok: usize, failed: usize) {
    println!(
        "mlx5 {addr}: function reset: up again in {} ms (reset and bring-up {} ms), {ok} interfaces restored{}",
        time::now_ns().saturating_sub(t0) / 1_000_000,
        reset_ns / 1_000_000,
        if failed > 0 {
            format!(", {failed} lost")
        } else {
            String::new()
        }
    );
}

/// The interfaces of the slot, by name, with what their VNIC is.
fn snapshot(slot: &mut Slot) -> Vec<(String, VnicState)> {
    #[cfg(feature = "net")]
    {
        let State::Open(o) = &slot.state else {
            return Vec::new();
        };
        let names: Vec<String> = core::iter::once(slot.iface())
            .chain(o.vnics.iter().map(|n| format!("vnic{n}")))
            .collect();
        names
            .into_iter()
            .filter_map(|name| {
                let s = crate::netstack::with_net::<Mlx5Vnic, _>(&name, |net| {
                    VnicState::of(net.device())
                })?;
                Some((name, s))
            })
            .collect()
    }
    #[cfg(not(feature = "net"))]
    match &slot.state {
        State::Open(o) => alloc::vec![(String::from("port"), VnicState::of(&o.main))],
        _ => Vec::new(),
    }
}

/// The port's steering on the new adapter, then each interface's VNIC
/// replayed and swapped in; the old VNICs and steering go (their objects
/// went with the reset: their commands fail fast on the failed shell).
/// Restored and lost interfaces.
fn reopen(
    slot: &mut Slot,
    old: Opened,
    adapter: Mlx5Adapter,
    states: &[(String, VnicState)],
) -> (usize, usize) {
    let addr = slot.addr;
    let res = match Resources::of(&adapter) {
        Ok(r) => r,
        Err(e) => {
            println!("mlx5 {addr}: function reset: port not opened: {e}");
            return give_up_data_path(slot, old, adapter, states.len());
        }
    };
    let nic = match Nic::new(adapter, res, NicConfig::default()) {
        Ok(n) => {
            n.set_idle(super::cmdwait::idle_work());
            n.set_recovery_wake(super::faults::recovery_wanted);
            n
        }
        Err(f) => {
            println!("mlx5 {addr}: function reset: port not opened: {}", f.error);
            return give_up_data_path(slot, old, f.control, states.len());
        }
    };
    // The completion vectors wake the stacks, as at attach.
    let port = slot.index;
    nic.with_adapter(|a| super::bind_comp_vectors(a, port, addr));
    let port_mtu = nic.with_adapter(|a| {
        usize::from(a.port().admin_mtu).saturating_sub(mlx5::module::PORT_MTU_OVERHEAD)
    });
    let (mut ok, mut lost) = (0, 0);
    #[cfg(feature = "net")]
    let mut vnics = Vec::new();
    #[cfg(not(feature = "net"))]
    let mut main = None;
    #[cfg(feature = "net")]
    let Opened { nic: old_nic, .. } = old;
    #[cfg(not(feature = "net"))]
    let Opened {
        nic: old_nic,
        main: old_main,
    } = old;
    #[cfg(not(feature = "net"))]
    let mut old_main = Some(old_main);
    for (name, state) in states {
        match restore::replay(&nic, state, port_mtu) {
            Ok(v) => {
                ok += 1;
                #[cfg(feature = "net")]
                {
                    let swapped = crate::netstack::with_net::<Mlx5Vnic, _>(name, |net| {
                        core::mem::replace(net.device_mut(), v).release_after_reset();
                    });
                    if swapped.is_some()
                        && let Some(n) = name.strip_prefix("vnic").and_then(|n| n.parse().ok())
                    {
                        vnics.push(n);
                    }
                }
                #[cfg(not(feature = "net"))]
                {
                    if let Some(m) = old_main.take() {
                        m.release_after_reset();
                    }
                    main = Some(v);
                }
            }
            Err(e) => {
                lost += 1;
                println!("mlx5 {addr}: function reset: {name} not restored: {e}");
                #[cfg(feature = "net")]
                if let Some(v) = crate::netstack::close::<Mlx5Vnic>(
                    name,
                    Some(&format!("{addr}: not restored after a function reset")),
                ) {
                    v.release_after_reset();
                }
            }
        }
    }
    #[cfg(not(feature = "net"))]
    if let Some(m) = old_main {
        m.release_after_reset();
    }
    drop_nic(old_nic);
    #[cfg(feature = "net")]
    {
        slot.state = State::Open(alloc::boxed::Box::new(Opened { nic, vnics }));
    }
    #[cfg(not(feature = "net"))]
    {
        slot.state = match main {
            Some(main) => State::Open(alloc::boxed::Box::new(Opened { nic, main })),
            None => {
                let (a, _) = close_nic(nic);
                State::Attached(alloc::boxed::Box::new(a))
            }
        };
    }
    (ok, lost)
}

/// The new adapter came up but its data path did not: the interfaces go,
/// the adapter stays attached without one.
fn give_up_data_path(
    slot: &mut Slot,
    old: Opened,
    adapter: Mlx5Adapter,
    interfaces: usize,
) -> (usize, usize) {
    slot.state = State::Open(alloc::boxed::Box::new(old));
    drop_old(slot);
    #[cfg(feature = "net")]
    crate::netstack::set_down(&slot.iface(), &format!("{} has no data path", slot.addr));
    slot.state = State::Attached(alloc::boxed::Box::new(adapter));
    (0, interfaces)
}

/// The old data path after a failed reset: interfaces closed, VNICs and
/// steering dropped (on the failed shell nothing reaches the device).
fn drop_old(slot: &mut Slot) {
    let old = core::mem::replace(&mut slot.state, State::Moving);
    let State::Open(o) = old else {
        return;
    };
    #[cfg(feature = "net")]
    {
        let Opened { nic, vnics } = *o;
        let names = vnics.iter().map(|n| (format!("vnic{n}"), None));
        let port = (slot.iface(), Some(format!("{} failed", slot.addr)));
        for (name, why) in names.chain([port]) {
            if let Some(v) = crate::netstack::close::<Mlx5Vnic>(&name, why.as_deref()) {
                v.release_after_reset();
            }
        }
        drop_nic(nic);
    }
    #[cfg(not(feature = "net"))]
    {
        let Opened { nic, main } = *o;
        main.release_after_reset();
        drop_nic(nic);
    }
}

/// The old steering, once its VNICs are gone, and the shell adapter.
fn drop_nic(nic: Nic<Mlx5Adapter>) {
    if let Ok((shell, _)) = nic.close() {
        drop(shell);
    }
}
