//! Control commands that wait cooperatively: a shell command's device
//! command is submitted under the adapter's lock, then the lock is let go
//! while the device has it ([`mlx5::vnic::Nic::exec_with`]); meanwhile the
//! rest of the kernel runs: expired timers, the work of vectors that fired
//! (EQ0, the completion vectors that wake the network stacks) and the
//! network stacks' polling. A lost command (the command timeout, up to
//! `mlx5::cmdq::MAX_TIMEOUT_MS`) then costs the shell's answer, not the
//! kernel's.
//!
//! The same idle work runs inside the driver's multi-command sequences
//! that wait through a `Nic` (port sequences: `traninfo`, `led`, `speed`,
//! PMTU; a VNIC's queue and steering changes: `mtu`, `promisc`, VNIC and
//! aggregation create/delete, queue recovery): every `Nic` gets [`idle`]
//! as its idle work ([`idle_work`]), which runs the rest of the kernel
//! only inside a [`run`] scope and otherwise only relaxes (a sequence
//! started from a timer, or from the network stacks' polling, waits as
//! before: its caller holds the tables the background work needs).
//!
//! A wait the background work started (a function reset's bring-up and
//! restore, `reset`; a check-path recovery; EQ0's port-event reads) runs
//! the boot CPU's pollers too, so the shell answers meanwhile; a shell
//! command's own wait does not (it is one of them).
//!
//! Rules that keep this sound on one CPU: the caller of [`run`] holds
//! neither the slot table nor the interface table (it works on a cloned
//! `Nic`, an interface lent out of the table: `netstack::with_net_lent`,
//! or a slot left `Moving` by a function reset); while a wait is in
//! progress the background work skips a function reset (it would replace
//! the adapter the command is out on) and takes the slot table only if
//! it is free; a control command issued from inside the background work
//! (a timer, or a shell command run by a reset's wait) waits without
//! running it again.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use cxos_drivers::PciAddress;
use mlx5::cmd::Command;
use mlx5::error::CmdError;
use mlx5::vnic::Nic;
use spin::MutexGuard;

use super::{Mlx5Adapter, SLOTS, Slot, State};
use crate::runtime;

/// A cooperative wait is in progress.
static WAITING: AtomicBool = AtomicBool::new(false);
/// The background work of a wait is running now (a wait inside it only
/// relaxes).
static IN_IDLE: AtomicBool = AtomicBool::new(false);

/// Whether a cooperative wait is in progress (background work runs inside
/// it).
pub(super) fn waiting() -> bool {
    WAITING.load(Ordering::Acquire)
}

/// The slot table for background work (timers, vector work): `None` when
/// a cooperative wait is in progress and the table is taken (skip this
/// round rather than spin on a lock this CPU holds).
pub(super) fn slots_for_background() -> Option<MutexGuard<'static, Vec<Slot>>> {
    if waiting() {
        SLOTS.try_lock()
    } else {
        Some(SLOTS.lock())
    }
}

/// Run `f` with the cooperative idle work (see the module documentation)
/// to call between two looks at a command; `f` hands it to
/// [`Nic::exec_with`] or one of the `Nic`'s `*_with` calls, and the
/// `Nic`s' own idle work ([`idle_work`]) does the same while `f` runs.
/// The caller holds neither the slot table nor the interface table.
pub(super) fn run<R>(f: impl FnOnce(&mut dyn FnMut()) -> R) -> R {
    if WAITING.swap(true, Ordering::AcqRel) {
        return f(&mut idle);
    }
    let r = f(&mut idle);
    WAITING.store(false, Ordering::Release);
    r
}

/// Between two looks at a command: inside a [`run`] scope (and not
/// inside its background work already) the rest of the kernel runs:
/// expired timers, vector work, the network stacks; then, and everywhere
/// else, a short sleep.
pub(super) fn idle() {
    if waiting() && !IN_IDLE.swap(true, Ordering::AcqRel) {
        runtime::run_background();
        #[cfg(feature = "net")]
        crate::netstack::poll_if_free();
        // The shell, when the wait is not its own (a reset or a check
        // from a timer, EQ0's work).
        runtime::run_pollers();
        IN_IDLE.store(false, Ordering::Release);
    }
    runtime::relax();
}

/// [`idle`] as a `Nic`'s idle work (`Nic::set_idle`).
pub(super) fn idle_work() -> mlx5::vnic::IdleWork {
    alloc::boxed::Box::new(idle)
}

/// Run `cmd` on `nic`'s adapter, the rest of the kernel running while the
/// device has it ([`run`]).
#[cfg(feature = "net")]
pub(super) fn exec<K: Command>(nic: &Nic<Mlx5Adapter>, cmd: K) -> Result<K::Output, CmdError> {
    run(|idle| nic.exec_with(cmd, idle))
}

/// `flows`: per function, the flow tables and every entry as programmed
/// next to what QUERY_FLOW_TABLE_ENTRY returns (the queries run
/// cooperatively, the slot table not held). Same text as the other
/// reports of `port_report`.
pub(super) fn flows(only: Option<PciAddress>) -> Option<String> {
    let sources: Vec<(PciAddress, Result<Nic<Mlx5Adapter>, &str>)> = SLOTS
        .lock()
        .iter()
        .filter(|s| only.is_none_or(|a| a == s.addr))
        .map(|s| {
            let nic = match &s.state {
                State::Open(o) => Ok(o.nic.clone()),
                State::Attached(_) => Err("no data path"),
                State::Down(_) | State::Moving => Err("not attached"),
            };
            (s.addr, nic)
        })
        .collect();
    if sources.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (addr, nic) in sources {
        let nic = match nic {
            Ok(n) => n,
            Err(why) => {
                out.push_str(&format!("port {addr}: {why}\n"));
                continue;
            }
        };
        let report = run(|idle| nic.flows_report_with(idle));
        out.push_str(&format!("port {addr}:\n"));
        for line in cxos_kernel::mlx5_report::flows(&report).lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    Some(out)
}

/// What `stats` needs of one slot, taken out of the slot table so the
/// table is not held while commands wait.
#[cfg(feature = "net")]
enum StatsSource {
    Open {
        addr: PciAddress,
        iface: String,
        nic: Nic<Mlx5Adapter>,
    },
    /// The `port <pci>: ...` line instead.
    Line(String),
}

/// `stats` (with the network stack): per function, the port VNIC's
/// counters, the MAC's 802.3 counters (both read cooperatively:
/// QUERY_Q_COUNTER, PPCNT) and the stack's. Same text as the other
/// reports of `port_report`.
#[cfg(feature = "net")]
pub(super) fn stats(only: Option<PciAddress>) -> Option<String> {
    use super::Mlx5Vnic;
    use crate::netstack::with_net;
    use mlx5::module::{Ieee8023, PortError, REG_PPCNT, ppcnt};
    use mlx5::port::AccessRegister;
    use mlx5::q_counter::QueryQCounter;

    let sources: Vec<StatsSource> = {
        let slots = SLOTS.lock();
        slots
            .iter()
            .filter(|s| only.is_none_or(|a| a == s.addr))
            .map(|s| match &s.state {
                State::Open(o) => StatsSource::Open {
                    addr: s.addr,
                    iface: s.iface(),
                    nic: o.nic.clone(),
                },
                State::Attached(_) => StatsSource::Line(format!("port {}: no data path\n", s.addr)),
                State::Down(_) | State::Moving => {
                    StatsSource::Line(format!("port {}: not attached\n", s.addr))
                }
            })
            .collect()
    };
    if sources.is_empty() {
        return None;
    }
    let mut out = String::new();
    for src in sources {
        let (addr, iface, nic) = match src {
            StatsSource::Line(l) => {
                out.push_str(&l);
                continue;
            }
            StatsSource::Open { addr, iface, nic } => (addr, iface, nic),
        };
        let mut body = String::new();
        let qc = with_net::<Mlx5Vnic, _>(&iface, |net| net.device().queue_set().q_counter());
        if let Some(Some(id)) = qc {
            match exec(&nic, QueryQCounter { id, clear: false }) {
                Ok(q) => {
                    with_net::<Mlx5Vnic, _>(&iface, |net| {
                        net.device_mut().queue_set_mut().apply_counters(&q)
                    });
                }
                Err(e) => body.push_str(&format!("q counter not read: {e}\n")),
            }
        }
        if let Some(text) = with_net::<Mlx5Vnic, _>(&iface, |net| {
            cxos_kernel::mlx5_report::stats(&net.device().queue_set().stats_report())
        }) {
            body.push_str(&text);
        }
        // The MAC's own IEEE 802.3 counters (PPCNT), read fresh.
        let req = ppcnt::ieee_802_3_request();
        let read = AccessRegister {
            reg: REG_PPCNT,
            write: false,
            data: &req,
        };
        let ppcnt = exec(&nic, read)
            .map(|d| Ieee8023::parse(&d))
            .map_err(PortError::from);
        body.push_str(&super::ppcnt_text(ppcnt));
        body.push_str(
            &with_net::<Mlx5Vnic, _>(&iface, |net| super::stack_stats(net)).unwrap_or_default(),
        );
        out.push_str(&format!("port {addr}:\n"));
        for line in body.lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    Some(out)
}
