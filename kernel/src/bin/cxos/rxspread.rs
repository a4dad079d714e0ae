//! Per-CPU receive for one interface (issue 21, feature `net`): a VNIC
//! with RSS queues (`queues:<n>`) on a machine with more than one CPU
//! keeps its queue 0 on its owner CPU and lends its queues 1.. to the
//! next CPUs: each becomes a receive helper on that CPU's queue set
//! (`mlx5::vnic::Nic::create_rx_helper`; its completion EQ's vector is
//! that CPU's), listed in the VNIC's RSS table in place of its own queue
//! (`Vnic::spread_rx`), so the adapter spreads the VNIC's flows over the
//! CPUs. The CPU polling a helper copies each frame into a bounded ring
//! ([`cxos_kernel::handoff`]) to the owner, whose stack takes it after
//! its own frames (`Vnic::set_inbox`); the receive buffer goes straight
//! back to the helper's RQ. A full ring drops the frame and counts it.
//! Transmit stays on the owner CPU's send queue: the stack and its
//! sockets run there only.
//!
//! The helpers live as long as the VNIC: its inbox holds them and
//! destroys them when the VNIC goes (after its own queues and RSS table),
//! or releases them with it after a function reset. Through the inbox the
//! VNIC's periodic check checks them too (`Vnic::check_queues`: a
//! helper's recreated RQ takes its old one's place in the RSS table, under
//! the table's lock, whichever CPU runs the recovery) and an MTU change
//! resizes them and their rings (`Vnic::set_mtu`; the frames waiting in a
//! ring move to the new one). A VNIC replayed after
//! a function reset is spread again ([`spread`], from the reset).

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use cxos_drivers::{NetDevice, RxMeta};
use cxos_kernel::handoff::{self, Consumer, Producer};
use mlx5::vnic::{Nic, RxInbox};
use spin::Mutex;

use crate::platform::KernelPlatform;
use crate::smp::{self, MAX_CPUS};
use crate::{println, runtime};

/// Frames a hand-off ring holds (its memory: this many frame buffers).
const RING_SLOTS: usize = 256;
/// Frames one poll takes from a helper before letting the CPU's other
/// work run (it comes back at once).
const BUDGET: usize = 64;

// Spelled out, not `mlx5nic`'s aliases: mlx5nic calls into this module.
type Mlx5Adapter = mlx5::Adapter<KernelPlatform>;
type Mlx5Vnic = mlx5::vnic::Vnic<Mlx5Adapter>;

type Helper = Arc<Mutex<Option<Mlx5Vnic>>>;

/// A helper as the CPU polling it sees it.
struct Relay {
    /// `vnic<N> queue <i>`.
    what: String,
    owner: usize,
    helper: Helper,
    tx: Producer<RxMeta>,
}

/// Per CPU, the helpers it polls.
static RELAYS: [Mutex<Vec<Relay>>; MAX_CPUS] = [const { Mutex::new(Vec::new()) }; MAX_CPUS];

/// The owner's end: a ring per helper (taken round robin), and the
/// helpers.
struct Inbox {
    rings: Vec<Consumer<RxMeta>>,
    next: usize,
    helpers: Vec<(usize, Helper)>,
}

impl RxInbox for Inbox {
    fn take(&mut self, f: &mut dyn FnMut(&[u8], RxMeta)) -> bool {
        let n = self.rings.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.rings[i].pop(|b, m| f(b, m)).is_some() {
                self.next = (i + 1) % n;
                return true;
            }
        }
        false
    }

    fn check(&mut self) {
        for (_, h) in &self.helpers {
            // The polling CPU holds it for one poll at most (and skips it
            // while the check runs). A recreated RQ takes its old one's
            // place in the VNIC's RSS table and loan under the table's
            // lock (`mlx5::vnic::RxInbox::check`).
            if let Some(v) = h.lock().as_mut() {
                v.queue_set_mut().check();
            }
        }
    }

    fn set_mtu(&mut self, mtu: usize, rx_mtu: usize) -> Result<(), mlx5::Error> {
        for (i, (cpu, h)) in self.helpers.iter().enumerate() {
            // Its CPU's relays held: no push into its ring meanwhile.
            let mut relays = RELAYS[*cpu].lock();
            let mut slot = h.lock();
            let Some(v) = slot.as_mut() else { continue };
            v.queue_set_mut().set_mtu(mtu, rx_mtu)?;
            // Slots for its new frame size; the frames still queued move
            // over (those the new size still takes), so the owner's stack
            // gets them after the change.
            let frame = slot_size(v);
            let relay = relays.iter_mut().find(|r| Arc::ptr_eq(&r.helper, h));
            if let (Some(r), Some(c)) = (relay, self.rings.get_mut(i))
                && !c.resize(&mut r.tx, RING_SLOTS, frame)
            {
                println!("rx-spread: {}: hand-off ring not resized", r.what);
            }
        }
        Ok(())
    }

    fn release_after_reset(&mut self) {
        for (cpu, h) in self.helpers.drain(..) {
            let v = h.lock().take();
            RELAYS[cpu].lock().retain(|r| !Arc::ptr_eq(&r.helper, &h));
            if let Some(v) = v {
                v.release_after_reset();
            }
        }
    }
}

/// A ring slot for `v`'s frames: its receive buffer's size.
fn slot_size(v: &Mlx5Vnic) -> usize {
    let qs = v.queue_set();
    qs.rq_at(0).map_or(qs.max_frame(), |r| r.buf_size())
}

impl Drop for Inbox {
    fn drop(&mut self) {
        for (cpu, h) in self.helpers.drain(..) {
            // The polling CPU holds it for one poll at most.
            let v = h.lock().take();
            RELAYS[cpu].lock().retain(|r| !Arc::ptr_eq(&r.helper, &h));
            if let Some(v) = v {
                let rep = v.destroy();
                if rep.errors > 0 {
                    println!(
                        "rx-spread: a receive helper destroyed with {} errors",
                        rep.errors
                    );
                }
            }
        }
    }
}

/// Lend VNIC `n`'s queues 1.. (owned by CPU `owner`) to the CPUs after
/// it: [`spread_as`] for `vnic<n>`.
pub fn spread(nic: &Nic<Mlx5Adapter>, vnic: &mut Mlx5Vnic, n: u32, owner: usize) {
    spread_as(nic, vnic, &format!("vnic{n}"), owner);
}

/// Lend the queues 1.. of interface `name` (a VNIC or a port's own
/// `net<i>`, owned by CPU `owner`) to the CPUs after it, a line each.
/// Nothing to do with one queue or one CPU; a helper that cannot be made
/// leaves that queue (and the ones after it) with the owner.
pub fn spread_as(nic: &Nic<Mlx5Adapter>, vnic: &mut Mlx5Vnic, name: &str, owner: usize) {
    let cpus = smp::count();
    let queues = vnic.queue_set().rx_queues();
    if queues < 2 || cpus < 2 {
        return;
    }
    let mut inbox = Inbox {
        rings: Vec::new(),
        next: 0,
        helpers: Vec::new(),
    };
    let mut lent = Vec::new();
    for i in 1..queues.min(cpus) {
        let cpu = (owner + i) % cpus;
        let made = nic.create_rx_helper(vnic, cpu).map_err(|e| format!("{e}"));
        match made.and_then(|h| Ok((h.helper_rqn().ok_or("no receive queue")?, h))) {
            Ok((rqn, h)) => {
                inbox.helpers.push((cpu, Arc::new(Mutex::new(Some(h)))));
                lent.push((i, cpu, rqn));
            }
            Err(e) => {
                println!(
                    "{name}: receive queue {i} stays on cpu {owner}: no helper on cpu {cpu}: {e}"
                );
                break;
            }
        }
    }
    let rqns: Vec<_> = lent.iter().map(|(_, _, r)| *r).collect();
    if rqns.is_empty() {
        return;
    }
    if let Err(e) = vnic.spread_rx(&rqns) {
        println!("{name}: receive queues not spread: {e}");
        return;
    }
    let frame = slot_size(vnic);
    for ((i, cpu, _), (_, h)) in lent.iter().zip(&inbox.helpers) {
        let (tx, rx) = handoff::ring::<RxMeta>(RING_SLOTS, frame);
        inbox.rings.push(rx);
        RELAYS[*cpu].lock().push(Relay {
            what: format!("{name} queue {i}"),
            owner,
            helper: h.clone(),
            tx,
        });
        println!("{name}: receive queue {i} on cpu {cpu}, handed off to cpu {owner}");
        runtime::wake_at_on(*cpu, 0);
    }
    vnic.set_inbox(Some(Box::new(inbox)));
}

/// Interface `name` (a VNIC or a port's `net<i>`, owned by CPU `owner`)
/// was replayed after a function reset (its old helpers released with
/// the old VNIC): lend its queues again.
pub fn respread(nic: &Nic<Mlx5Adapter>, name: &str, vnic: &mut Mlx5Vnic, owner: usize) {
    spread_as(nic, vnic, name, owner);
}

/// Poll the helpers this CPU holds: their frames into the owners' rings,
/// the owners woken. From this CPU's main loop (`netstack::poll`).
pub fn poll() {
    let me = smp::current();
    let Some(mut relays) = RELAYS[me].try_lock() else {
        return;
    };
    for r in relays.iter_mut() {
        let Some(mut slot) = r.helper.try_lock() else {
            continue;
        };
        let Some(h) = slot.as_mut() else {
            continue;
        };
        h.poll();
        let mut taken = 0;
        while taken < BUDGET && h.receive(|b, m| r.tx.push(b, m)).is_some() {
            taken += 1;
        }
        h.flush();
        if taken > 0 {
            runtime::wake_at_on(r.owner, 0);
        }
        if taken == BUDGET {
            runtime::wake_at(0);
        }
    }
}

/// `vnics`: a line per lent receive queue. The helper is held while its
/// ring is read, so the CPU polling it cannot add to either meanwhile
/// (received = handed off + dropped + queued, unless a frame is lost).
pub fn lines() -> Vec<String> {
    let mut out = Vec::new();
    for (cpu, relays) in RELAYS.iter().enumerate().take(smp::count()) {
        for r in relays.lock().iter() {
            let slot = r.helper.lock();
            let received = slot.as_ref().map_or(0, |h| h.stats().rx_packets);
            let s = r.tx.stats();
            drop(slot);
            out.push(format!(
                "rx-spread {} on cpu {cpu} -> cpu {}: {received} frames received, {} handed off, {} dropped (ring full), {} too big, {} queued",
                r.what, r.owner, s.passed, s.dropped_full, s.dropped_big, s.queued
            ));
        }
    }
    out
}
