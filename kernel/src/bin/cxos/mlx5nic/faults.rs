//! Fault management in the kernel: the periodic queue checks of every
//! open port and VNIC ([`check_all`], from a timer: the driver's
//! `QueueSet::check`, never on the packet path), and the shell's
//! `faults [-v]` (each adapter's fault counts per class and its last
//! records; `-v`: every class, every record kept). The `FAULT ...`
//! console lines themselves come from the driver's log target
//! `mlx5::fault` (printed bare by the logger).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use mlx5::fault::{FAULT_RING, FaultClass};

use super::{SLOTS, State};

/// How often the queue checks run (the driver does its work at most
/// every `mlx5::CHECK_INTERVAL_MS` anyway).
pub const CHECK_PERIOD_NS: u64 = mlx5::CHECK_INTERVAL_MS * 1_000_000;

/// Records `faults` shows without `-v`.
const LAST: usize = 8;

/// Run the periodic fault checks of every open port and its VNICs. With
/// the network stack each interface is lent out of its table and checked
/// inside a cooperative wait ([`super::cmdwait::run`]), the slot table not
/// held: a recovery the check runs (a CQ or EQ recreated, a queue reset
/// after its grace period, a transmit timeout) whose command is lost
/// leaves the other interfaces and adapters running until the command
/// timeout. The records and their order are those of the checks in turn.
pub fn check_all() {
    #[cfg(feature = "net")]
    {
        let Some(slots) = super::cmdwait::slots_for_background() else {
            return;
        };
        let names: Vec<String> = slots
            .iter()
            .filter_map(|slot| match &slot.state {
                State::Open(o) => Some(
                    core::iter::once(slot.iface())
                        .chain(o.vnics.iter().map(|n| format!("vnic{n}")))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        drop(slots);
        for name in names {
            // Lent already (a shell command works on it) or gone: its
            // next period checks it.
            let _ = crate::netstack::with_net_lent::<super::Mlx5Vnic, _>(&name, |net| {
                super::cmdwait::run(|_| net.device_mut().queue_set_mut().check())
            });
        }
    }
    #[cfg(not(feature = "net"))]
    {
        let Some(mut slots) = super::cmdwait::slots_for_background() else {
            return;
        };
        for slot in slots.iter_mut() {
            if matches!(slot.state, State::Open(_)) {
                super::with_port_vnic(slot, |v| v.queue_set_mut().check());
            }
        }
    }
    // A check that took an internal error event off EQ0 (the queue checks
    // drain it) failed the function: reset it now, not at the next
    // service round up to a second later.
    super::reset::recover_all();
    #[cfg(feature = "net")]
    super::members::check_all();
}

/// `faults [-v]`: per adapter, the counts per class and the last records.
pub fn lines(verbose: bool) -> Vec<String> {
    let mut out = Vec::new();
    for slot in SLOTS.lock().iter_mut() {
        let addr = slot.addr;
        let Some(text) = slot.state.with_adapter(|a| {
            let log = a.faults();
            let mut v = Vec::new();
            v.push(format!(
                "{addr} faults {} (kept {} of {FAULT_RING}, {} dropped)",
                log.total(),
                log.records().count(),
                log.dropped
            ));
            for c in FaultClass::ALL {
                let n = log.count(c);
                if verbose || n > 0 {
                    v.push(format!("  {:<22} {n}", c.name()));
                }
            }
            let kept: Vec<_> = log.records().collect();
            let skip = if verbose {
                0
            } else {
                kept.len().saturating_sub(LAST)
            };
            for r in &kept[skip..] {
                v.push(format!("  {}", r.listed()));
            }
            v
        }) else {
            out.push(if matches!(slot.state, State::Moving) {
                format!("{addr} function reset in progress")
            } else {
                format!("{addr} not attached")
            });
            continue;
        };
        out.extend(text);
    }
    if out.is_empty() {
        out.push(String::from("no adapters"));
    }
    out
}
