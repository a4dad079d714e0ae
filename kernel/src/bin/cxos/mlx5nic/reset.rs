//! Function reset recovery of one slot: the adapter failed (health
//! syndrome, stopped health counter, internal error event) or a queue's
//! recovery escalated. The driver resets the function and brings it up
//! again with the user's port settings ([`mlx5::Adapter::begin_reset`],
//! [`mlx5::adapter::ResetStart::finish`]); here the data path is rebuilt
//! on it: the port's steering, then every interface's VNIC as it was
//! ([`mlx5::restore`]), swapped in under its network stack so the
//! interface keeps its addresses, routes and sockets (TCP retransmits
//! what was lost meanwhile). The FAULT records are the driver's; this
//! prints what was restored and how long it took.
//!
//! The reset waits cooperatively ([`cmdwait::run`]): its first half (the
//! FLR initiated, no command) runs under the slot table, then the slot is
//! `Moving` (the shell sees it as not attached, the background work
//! skips it) and the table is let go while the bring-up, the replay of
//! the port settings and the restore of every VNIC wait for the device;
//! meanwhile the shell, the console, the other adapters and interfaces
//! run. A lost command there costs its command timeout and its
//! `mlx5.cmd.timeout` record, then the bring-up fails (the slot goes
//! down) or the VNIC it was for is lost, as before.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use cxos_drivers::PciAddress;
use mlx5::Resources;
use mlx5::adapter::ResetError;
use mlx5::restore::{self, VnicState};
use mlx5::vnic::{Nic, NicConfig};

#[cfg(feature = "net")]
use super::Mlx5Vnic;
#[cfg(not(feature = "net"))]
use super::close_nic;
use super::{Mlx5Adapter, Opened, SLOTS, Slot, State, bind_eq0, cmdwait};
use crate::{println, time};

/// Whether the slot's adapter asks for a function reset.
pub(super) fn wanted(slot: &mut Slot) -> bool {
    slot.state
        .with_adapter(|a| a.is_failed() || a.faults().escalation_pending())
        .unwrap_or(false)
}

/// Reset, one after the other, every function that asks for it (the
/// background work: service and check rounds, EQ0's work). Not while a
/// cooperative wait is in progress (a shell command's device command is
/// out, or another reset runs): the next round, once it is back.
pub(super) fn recover_all() {
    if cmdwait::waiting() {
        return;
    }
    let addrs: Vec<PciAddress> = {
        let Some(mut slots) = cmdwait::slots_for_background() else {
            return;
        };
        slots
            .iter_mut()
            .filter_map(|s| (!s.fault_reported && wanted(s)).then_some(s.addr))
            .collect()
    };
    for addr in addrs {
        recover(addr);
    }
}

/// Reset the function at `addr` and restore its data path (see the
/// module documentation). On a refusal (too many resets, no FLR) the
/// adapter stays failed, reported once; if bring-up fails the slot goes
/// down.
fn recover(addr: PciAddress) {
    let t0 = time::now_ns();
    let (start, old, states, index) = {
        let mut slots = SLOTS.lock();
        let Some(slot) = slots.iter_mut().find(|s| s.addr == addr) else {
            return;
        };
        if slot.fault_reported || !wanted(slot) {
            return;
        }
        let states = snapshot(slot);
        let begun = match &mut slot.state {
            State::Open(o) => o.nic.with_adapter(|a| a.begin_reset()),
            State::Attached(a) => a.begin_reset(),
            State::Down(_) | State::Moving => return,
        };
        match begun {
            Ok(start) => {
                let old = core::mem::replace(&mut slot.state, State::Moving);
                (start, old, states, slot.index)
            }
            Err(e) => {
                println!("mlx5 {addr}: adapter failed: {e} (detach it)");
                slot.fault_reported = true;
                return;
            }
        }
    };
    // The slot table let go, the port's interfaces lent out of their
    // tables (their old VNICs must not ring the function's doorbells
    // while it comes up again; their apps wait): the bring-up and the
    // restore wait cooperatively.
    let mut start = Some(start);
    let mut old = Some(old);
    let names: Vec<String> = states.iter().map(|(n, _)| n.clone()).collect();
    let outcome = lent(&names, Vec::new(), &mut |nets| {
        let (Some(start), Some(old)) = (start.take(), old.take()) else {
            return Outcome::Gone;
        };
        cmdwait::run(|_| reset_and_restore(addr, index, start, old, &states, nets))
    });
    match outcome {
        Outcome::Restored {
            state,
            ok,
            lost,
            reset_ns,
        } => {
            // Interfaces not restored go once they are back in their
            // tables.
            #[cfg(feature = "net")]
            for name in &lost {
                if let Some(v) = crate::netstack::close::<Mlx5Vnic>(
                    name,
                    Some(&format!("{addr}: not restored after a function reset")),
                ) {
                    v.release_after_reset();
                }
            }
            #[cfg(feature = "net")]
            if matches!(state, State::Attached(_)) {
                crate::netstack::set_down(
                    &format!("net{index}"),
                    &format!("{addr} has no data path"),
                );
            }
            with_slot(addr, |slot| slot.state = state);
            report_done(addr, t0, reset_ns, ok, lost.len());
        }
        Outcome::Reopen { adapter, reset_ns } => {
            // No interface to restore: opened as at attach, under the
            // slot table (its waits block as attach's do).
            with_slot(addr, |slot| slot.state = super::open_port(slot, *adapter));
            report_done(addr, t0, reset_ns, 0, 0);
        }
        Outcome::BringUpFailed { old, failure } => {
            let f = *failure;
            println!(
                "mlx5 {addr}: function reset: bring-up failed at step '{}': {}; device left alone",
                f.error.step, f.error.error
            );
            f.platform.set_bus_master(false);
            with_slot(addr, |slot| {
                slot.state = old;
                drop_old(slot);
                slot.attach_error = Some(format!("{}", f.error));
                slot.state = State::Down(f.platform);
                #[cfg(feature = "net")]
                crate::netstack::set_down(&slot.iface(), &format!("{addr} failed"));
            });
        }
        Outcome::Refused { old, why } => {
            println!("mlx5 {addr}: adapter failed: {why} (detach it)");
            with_slot(addr, |slot| {
                slot.state = old;
                slot.fault_reported = true;
            });
        }
        Outcome::Gone => {}
    }
}

/// How a reset's cooperative part ended.
enum Outcome {
    /// The data path restored: the slot's new state, how many interfaces
    /// came back and the names of those that did not.
    Restored {
        state: State,
        ok: usize,
        lost: Vec<String>,
        reset_ns: u64,
    },
    /// The slot had no data path: it is opened as at attach.
    Reopen {
        adapter: alloc::boxed::Box<Mlx5Adapter>,
        reset_ns: u64,
    },
    BringUpFailed {
        old: State,
        failure: alloc::boxed::Box<mlx5::AttachFailure<crate::platform::KernelPlatform>>,
    },
    Refused {
        old: State,
        why: String,
    },
    /// Nothing to do (already taken).
    Gone,
}

/// The port's interfaces while a reset runs: each lent out of its table.
#[cfg(feature = "net")]
type Lent<'a> = Vec<(String, &'a mut cxos_net::NetIf<Mlx5Vnic>)>;
#[cfg(not(feature = "net"))]
type Lent<'a> = Vec<(String, &'a mut ())>;

/// Run `f` with every interface of `names` lent out of its table
/// (`netstack::with_net_lent`, one inside the other); one already lent
/// or gone is left out.
#[cfg(feature = "net")]
fn lent<R>(names: &[String], nets: Lent<'_>, f: &mut dyn FnMut(&mut Lent<'_>) -> R) -> R {
    let Some((first, rest)) = names.split_first() else {
        let mut nets = nets;
        return f(&mut nets);
    };
    let mut carried = Some(nets);
    let inner = crate::netstack::with_net_lent::<Mlx5Vnic, _>(first, |net| {
        let mut nets: Lent<'_> = carried.take().unwrap_or_default();
        nets.push((first.clone(), net));
        lent(rest, nets, &mut *f)
    });
    match inner {
        Ok(r) => r,
        Err(_) => lent(rest, carried.take().unwrap_or_default(), f),
    }
}

#[cfg(not(feature = "net"))]
fn lent<R>(_names: &[String], nets: Lent<'_>, f: &mut dyn FnMut(&mut Lent<'_>) -> R) -> R {
    let mut nets = nets;
    f(&mut nets)
}

/// The cooperative part of a reset (inside [`cmdwait::run`], the slot
/// `Moving`, the port's interfaces lent as `nets`): the function brought
/// up again, then its data path.
fn reset_and_restore(
    addr: PciAddress,
    port: usize,
    start: mlx5::adapter::ResetStart<crate::platform::KernelPlatform>,
    old: State,
    states: &[(String, VnicState)],
    nets: &mut Lent<'_>,
) -> Outcome {
    let (mut adapter, report) = match start.finish(Some(cmdwait::idle_work())) {
        Ok(r) => r,
        Err(ResetError::Attach(failure)) => return Outcome::BringUpFailed { old, failure },
        Err(e) => {
            return Outcome::Refused {
                old,
                why: format!("{e}"),
            };
        }
    };
    bind_eq0(&adapter, addr);
    let reset_ns = report.took_ns;
    match old {
        State::Open(o) => {
            let (state, ok, lost) = reopen(addr, port, *o, adapter, states, nets);
            Outcome::Restored {
                state,
                ok,
                lost,
                reset_ns,
            }
        }
        _ => {
            adapter.set_idle(None);
            Outcome::Reopen {
                adapter: alloc::boxed::Box::new(adapter),
                reset_ns,
            }
        }
    }
}

/// Run `f` on the slot of `addr` (slots are never removed).
fn with_slot(addr: PciAddress, f: impl FnOnce(&mut Slot)) {
    if let Some(slot) = SLOTS.lock().iter_mut().find(|s| s.addr == addr) {
        f(slot);
    }
}

fn report_done(addr: PciAddress, t0: u64, reset_ns: u64, ok: usize, failed: usize) {
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
/// replayed and swapped in under its lent stack; the old VNICs and
/// steering go (their objects went with the reset: their commands fail
/// fast on the failed shell). The slot's new state, how many interfaces
/// were restored, and the names of those that were not (closed by the
/// caller once they are back in their tables).
fn reopen(
    addr: PciAddress,
    port: usize,
    old: Opened,
    mut adapter: Mlx5Adapter,
    states: &[(String, VnicState)],
    nets: &mut Lent<'_>,
) -> (State, usize, Vec<String>) {
    let all = || states.iter().map(|(n, _)| n.clone()).collect();
    let res = match Resources::of(&adapter) {
        Ok(r) => r,
        Err(e) => {
            println!("mlx5 {addr}: function reset: port not opened: {e}");
            return (give_up_data_path(addr, port, old, adapter), 0, all());
        }
    };
    // Nic::new's steering commands still wait with the bring-up's idle
    // work (the adapter is nobody else's yet); the shared adapter's
    // waits are the Nic's own (`set_idle` below).
    let nic = match Nic::new(adapter, res, NicConfig::default()) {
        Ok(n) => {
            n.with_adapter(|a| {
                a.set_idle(None);
                a.defer_page_requests(true);
            });
            n.set_idle(cmdwait::idle_work());
            n.set_recovery_wake(super::faults::recovery_wanted);
            n
        }
        Err(f) => {
            println!("mlx5 {addr}: function reset: port not opened: {}", f.error);
            adapter = f.control;
            adapter.set_idle(None);
            return (give_up_data_path(addr, port, old, adapter), 0, all());
        }
    };
    // The completion vectors wake the stacks, as at attach.
    nic.with_adapter(|a| super::bind_comp_vectors(a, port, addr));
    let port_mtu = nic.with_adapter(|a| {
        usize::from(a.port().admin_mtu).saturating_sub(mlx5::module::PORT_MTU_OVERHEAD)
    });
    let mut ok = 0;
    let mut lost = Vec::new();
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
                match nets.iter_mut().find(|(n, _)| n == name) {
                    Some((_, net)) => {
                        core::mem::replace(net.device_mut(), v).release_after_reset();
                        // Its completion EQs wake its owner again (binding
                        // the vectors anew noted only their own CPUs).
                        let owner = crate::netstack::owner_cpu(name).unwrap_or(0);
                        super::note_poller(port, net.device().queue_set().eq_indexes(), owner);
                        crate::rxspread::respread(&nic, name, net.device_mut(), state.queue_set);
                        if let Some(n) = name.strip_prefix("vnic").and_then(|n| n.parse().ok()) {
                            vnics.push(n);
                        }
                    }
                    // Not lent (it went meanwhile): nothing to put it in.
                    None => {
                        v.destroy();
                    }
                }
                #[cfg(not(feature = "net"))]
                {
                    let _ = (name, &nets);
                    if let Some(m) = old_main.take() {
                        m.release_after_reset();
                    }
                    main = Some(v);
                }
            }
            Err(e) => {
                println!("mlx5 {addr}: function reset: {name} not restored: {e}");
                lost.push(name.clone());
            }
        }
    }
    #[cfg(not(feature = "net"))]
    if let Some(m) = old_main {
        m.release_after_reset();
    }
    drop_nic(old_nic);
    #[cfg(feature = "net")]
    let state = State::Open(alloc::boxed::Box::new(Opened { nic, vnics }));
    #[cfg(not(feature = "net"))]
    let state = match main {
        Some(main) => State::Open(alloc::boxed::Box::new(Opened { nic, main })),
        None => {
            let (a, _) = close_nic(nic);
            State::Attached(alloc::boxed::Box::new(a))
        }
    };
    (state, ok, lost)
}

/// The new adapter came up but its data path did not: the old VNICs and
/// steering go (the caller closes the interfaces), the adapter stays
/// attached without a data path.
fn give_up_data_path(addr: PciAddress, port: usize, old: Opened, adapter: Mlx5Adapter) -> State {
    let _ = (addr, port);
    #[cfg(feature = "net")]
    drop_nic(old.nic);
    #[cfg(not(feature = "net"))]
    close_old(addr, port, old);
    State::Attached(alloc::boxed::Box::new(adapter))
}

/// The old data path after a failed reset: interfaces closed, VNICs and
/// steering dropped (on the failed shell nothing reaches the device).
fn drop_old(slot: &mut Slot) {
    let old = core::mem::replace(&mut slot.state, State::Moving);
    if let State::Open(o) = old {
        close_old(slot.addr, slot.index, *o);
    }
}

/// [`drop_old`] of an `Opened` taken out of its slot (port `port`).
fn close_old(addr: PciAddress, port: usize, o: Opened) {
    #[cfg(feature = "net")]
    {
        let Opened { nic, vnics } = o;
        let names = vnics.iter().map(|n| (format!("vnic{n}"), None));
        let own = (format!("net{port}"), Some(format!("{addr} failed")));
        for (name, why) in names.chain([own]) {
            if let Some(v) = crate::netstack::close::<Mlx5Vnic>(&name, why.as_deref()) {
                v.release_after_reset();
            }
        }
        drop_nic(nic);
    }
    #[cfg(not(feature = "net"))]
    {
        let _ = (addr, port);
        let Opened { nic, main } = o;
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
