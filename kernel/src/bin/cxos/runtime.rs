//! The main loop: software timers on the local APIC one-shot timer, and
//! work woken by interrupts; `hlt` when there is nothing to do.
//!
//! Every CPU runs one (the APs from `smpboot`). What is per CPU and what
//! is shared:
//! - per CPU, touched only by that CPU's loop (no lock contention): its
//!   wake counter (`interrupts::WAKES[cpu]`), its poll deadline, its list
//!   of vector work (the work of the vectors bound to it, [`bind_vector_on`];
//!   a `spin::Mutex` that only binding and unbinding take from elsewhere);
//! - on the boot CPU only: the software timers, the boxed pollers of
//!   [`on_wake`] (the shell), the console;
//! - on every CPU: the plain-function pollers of [`on_wake_every_cpu`] (the
//!   network stack, which polls the calling CPU's own interfaces), one
//!   copy of the list per CPU (written at boot, then read by its CPU
//!   only).
//!
//! So a CPU's pass over its work takes only its own locks; nothing on a
//! packet path contends with another CPU's packet path. What stays
//! shared: the console (a line printed by an app), the interrupt counters
//! (per CPU too, read by `irq`), and the control plane's locks (the
//! adapter's, a table reached by the shell).
//!
//! Another CPU asks for work with [`wake_at_on`]: it lowers that CPU's poll
//! deadline (an atomic) and sends it the wake IPI.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use spin::Mutex;

use crate::interrupts::{self, Role, WAKES};
use crate::smp::MAX_CPUS;
use crate::{apic, arch, smp, time};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerId(u64);

struct Timer {
    id: u64,
    deadline: u64,
    period: Option<u64>,
    callback: Box<dyn FnMut() + Send>,
}

static TIMERS: Mutex<Vec<Timer>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static TIMER_VECTOR: AtomicU8 = AtomicU8::new(0);
/// Work the boot CPU runs whenever an interrupt woke its loop.
static POLLERS: Mutex<Vec<Box<dyn FnMut() + Send>>> = Mutex::new(Vec::new());
/// Work every CPU runs whenever an interrupt woke its loop: per CPU, a
/// copy of the same list.
const MAX_EVERY_CPU: usize = 4;
type EveryCpu = heapless::Vec<fn(), MAX_EVERY_CPU>;
static EVERY_CPU: [Mutex<EveryCpu>; MAX_CPUS] =
    [const { Mutex::new(heapless::Vec::new()) }; MAX_CPUS];
/// Handlers bound to one vector, run from the loop of the CPU the vector
/// is bound to when it fired.
type VectorWork = (u8, Box<dyn FnMut() + Send>);
static VECTOR_WORK: [Mutex<Vec<VectorWork>>; MAX_CPUS] =
    [const { Mutex::new(Vec::new()) }; MAX_CPUS];
/// Per CPU: earliest time (ns) at which its pollers want to run even
/// without an interrupt (`u64::MAX`: none), e.g. a network stack's poll
/// delay.
static POLL_DEADLINE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];
/// The longest an AP sleeps: its timer keeps ticking (`cpus` shows it).
const AP_TICK_NS: u64 = 10_000_000;

pub fn init() {
    let v = interrupts::alloc_vectors(1, 1, Role::Timer, "lapic-timer")
        .expect("a vector for the local APIC timer");
    TIMER_VECTOR.store(v, Ordering::Relaxed);
}

fn add(deadline: u64, period: Option<u64>, callback: Box<dyn FnMut() + Send>) -> TimerId {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    TIMERS.lock().push(Timer {
        id,
        deadline,
        period,
        callback,
    });
    TimerId(id)
}

/// Run `f` once, `delay_ns` from now, from the main loop.
pub fn oneshot(delay_ns: u64, f: impl FnMut() + Send + 'static) -> TimerId {
    add(time::now_ns().saturating_add(delay_ns), None, Box::new(f))
}

/// Run `f` every `period_ns` (at least 1 µs), from the main loop.
pub fn periodic(period_ns: u64, f: impl FnMut() + Send + 'static) -> TimerId {
    let p = period_ns.max(1000);
    add(time::now_ns().saturating_add(p), Some(p), Box::new(f))
}

pub fn cancel(id: TimerId) -> bool {
    let mut t = TIMERS.lock();
    let before = t.len();
    t.retain(|x| x.id != id.0);
    t.len() != before
}

pub fn active_timers() -> usize {
    TIMERS.lock().len()
}

/// Register work to run in the boot CPU's main loop after every
/// interrupt wake-up.
pub fn on_wake(f: impl FnMut() + Send + 'static) {
    POLLERS.lock().push(Box::new(f));
}

/// Register `f` to run in every CPU's main loop after each of its
/// wake-ups (and at its poll deadline); `f` works on what the calling CPU
/// owns.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub fn on_wake_every_cpu(f: fn()) {
    // A handful of subsystems register at boot: more is a kernel bug.
    for list in &EVERY_CPU {
        list.lock()
            .push(f)
            .expect("more per-CPU pollers than MAX_EVERY_CPU");
    }
}

/// Run this CPU's pollers (see [`on_wake`]) no later than `deadline_ns`,
/// even if no interrupt arrives; the earliest of several requests wins.
/// The request is consumed when the pollers run.
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub fn wake_at(deadline_ns: u64) {
    POLL_DEADLINE[smp::current()].fetch_min(deadline_ns, Ordering::AcqRel);
}

/// [`wake_at`] for CPU `cpu`'s pollers; another CPU is sent the wake IPI
/// (it may be asleep until a later deadline).
#[cfg_attr(not(feature = "net"), allow(dead_code))]
pub fn wake_at_on(cpu: usize, deadline_ns: u64) {
    let cpu = cpu.min(MAX_CPUS - 1);
    POLL_DEADLINE[cpu].fetch_min(deadline_ns, Ordering::AcqRel);
    if cpu != smp::current() {
        smp::wake(cpu);
    }
}

/// Bind `f` to `vector` on the boot CPU: after the vector fired, the
/// main loop (never the interrupt) consumes its pending flag and runs `f`
/// once.
pub fn bind_vector(vector: u8, f: impl FnMut() + Send + 'static) {
    bind_vector_on(0, vector, f);
}

/// [`bind_vector`] on CPU `cpu`'s main loop: the interrupt, wherever it
/// is delivered, wakes that CPU (`interrupts::set_work_cpu`).
pub fn bind_vector_on(cpu: usize, vector: u8, f: impl FnMut() + Send + 'static) {
    let cpu = cpu.min(MAX_CPUS - 1);
    for (i, list) in VECTOR_WORK.iter().enumerate() {
        if i != cpu {
            list.lock().retain(|(v, _)| *v != vector);
        }
    }
    interrupts::set_work_cpu(vector, cpu);
    VECTOR_WORK[cpu].lock().push((vector, Box::new(f)));
}

pub fn unbind_vector(vector: u8) {
    interrupts::clear_work_cpu(vector);
    for list in &VECTOR_WORK {
        list.lock().retain(|(v, _)| *v != vector);
    }
}

/// Run the handlers of every vector bound to this CPU that fired; true if
/// any ran. They run without the lock held, so they may bind or unbind.
fn run_vector_work() -> bool {
    let cpu = smp::current();
    let mut work = core::mem::take(&mut *VECTOR_WORK[cpu].lock());
    let mut ran = false;
    for (v, f) in &mut work {
        if interrupts::take_pending(*v) {
            f();
            ran = true;
        }
    }
    let mut slot = VECTOR_WORK[cpu].lock();
    // Work unbound or moved to another CPU meanwhile (by another CPU,
    // while this list was out) goes.
    work.retain(|(v, _)| interrupts::work_cpu(*v) == Some(cpu));
    work.append(&mut slot);
    *slot = work;
    ran
}

/// Run every expired timer; callbacks run without the timer lock held, so
/// they may add or cancel timers.
fn run_timers() -> bool {
    if smp::current() != 0 {
        return false;
    }
    let mut ran = false;
    loop {
        let now = time::now_ns();
        let due = {
            let mut t = TIMERS.lock();
            match t.iter().position(|x| x.deadline <= now) {
                Some(i) => t.swap_remove(i),
                None => break,
            }
        };
        let mut due = due;
        (due.callback)();
        ran = true;
        if let Some(p) = due.period {
            // Skip missed periods instead of firing a burst.
            let mut next = due.deadline + p;
            if next <= now {
                next = now + p;
            }
            due.deadline = next;
            TIMERS.lock().push(due);
        }
    }
    ran
}

/// The earliest deadline this CPU's loop must wake for: its poll deadline
/// if `with_poll` (the caller runs the pollers), and on the boot CPU the
/// software timers.
fn next_deadline(with_poll: bool) -> Option<u64> {
    let cpu = smp::current();
    let poll = if with_poll {
        POLL_DEADLINE[cpu].load(Ordering::Acquire)
    } else {
        u64::MAX
    };
    if cpu != 0 {
        return (poll != u64::MAX).then_some(poll);
    }
    let timers = TIMERS.lock().iter().map(|t| t.deadline).min();
    match timers {
        Some(t) => Some(t.min(poll)),
        None => (poll != u64::MAX).then_some(poll),
    }
}

/// Halt until an interrupt arrives or `deadline` (ns) passes, unless an
/// interrupt already arrived since `seen` (a value of `WAKES`).
pub fn halt_until(seen: u64, deadline: Option<u64>) {
    halt(seen, deadline, true);
}

/// [`halt_until`]; `with_poll` false: the pollers' deadline is left out,
/// for a caller that does not run them ([`wait_until`]: a poll deadline
/// already past would otherwise make it spin without ever sleeping).
fn halt(seen: u64, deadline: Option<u64>, with_poll: bool) {
    arch::interrupts_disable();
    let cpu = smp::current();
    if WAKES[cpu].load(Ordering::Acquire) != seen {
        arch::interrupts_enable();
        return;
    }
    let deadline = match (deadline, next_deadline(with_poll)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if cpu != 0 {
        // An AP's timer is its own vector, and it never stops ticking.
        let now = time::now_ns();
        let d = deadline.map_or(now + AP_TICK_NS, |d| d.min(now + AP_TICK_NS));
        if d <= now {
            arch::interrupts_enable();
            return;
        }
        let ticks = u128::from(d - now) * u128::from(time::apic_timer_hz()) / 1_000_000_000;
        apic::timer_oneshot(
            smp::timer_vector(),
            ticks.clamp(1, u128::from(u32::MAX)) as u32,
        );
        smp::halt_idle();
        return;
    }
    match deadline {
        Some(d) => {
            let now = time::now_ns();
            if d <= now {
                arch::interrupts_enable();
                return;
            }
            let ticks = u128::from(d - now) * u128::from(time::apic_timer_hz()) / 1_000_000_000;
            apic::timer_oneshot(
                TIMER_VECTOR.load(Ordering::Relaxed),
                ticks.clamp(1, u128::from(u32::MAX)) as u32,
            );
        }
        None => apic::timer_stop(),
    }
    smp::halt_idle();
}

pub fn timer_vector() -> u8 {
    TIMER_VECTOR.load(Ordering::Relaxed)
}

static LAST_WAKE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// One pass of this CPU's main loop: timers (boot CPU), then woken work,
/// then sleep if idle.
pub fn run_once() {
    let cpu = smp::current();
    let seen = WAKES[cpu].load(Ordering::Acquire);
    let mut busy = run_timers();
    busy |= run_vector_work();
    let woken = LAST_WAKE[cpu].swap(seen, Ordering::AcqRel) != seen;
    let due = POLL_DEADLINE[cpu].load(Ordering::Acquire) <= time::now_ns();
    if woken || due {
        POLL_DEADLINE[cpu].store(u64::MAX, Ordering::Release);
        let every = EVERY_CPU[cpu].lock().clone();
        for p in &every {
            p();
        }
        if cpu == 0 {
            // Take the pollers out so they can register more work.
            let mut pollers = core::mem::take(&mut *POLLERS.lock());
            for p in &mut pollers {
                p();
            }
            let mut slot = POLLERS.lock();
            pollers.append(&mut slot);
            *slot = pollers;
        }
        busy = true;
    }
    if !busy {
        halt_until(seen, None);
    }
}

/// Run the main loop until `cond` holds or `timeout_ns` passes; true if it
/// held. Timers and vector handlers keep running meanwhile.
pub fn wait_until(timeout_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = time::now_ns().saturating_add(timeout_ns);
    loop {
        let seen = WAKES[smp::current()].load(Ordering::Acquire);
        if cond() {
            return true;
        }
        if time::now_ns() >= deadline {
            return false;
        }
        run_timers();
        run_vector_work();
        if cond() {
            return true;
        }
        halt(seen, Some(deadline), false);
    }
}

/// The background part of one pass of the main loop, for code that waits
/// inside a poller (a shell command whose device command is out): expired
/// timers and the work of vectors that fired. The pollers are not run
/// (the caller is one of them); the caller polls what it needs itself.
pub fn run_background() {
    run_timers();
    run_vector_work();
}

/// The boot CPU's pollers (the shell), for code that waits inside a timer
/// or a vector's work (a function reset's bring-up): run now, unless
/// they are running already (the waiting code is one of them, or runs
/// inside one) or this is another CPU.
pub fn run_pollers() {
    if smp::current() != 0 {
        return;
    }
    let mut pollers = core::mem::take(&mut *POLLERS.lock());
    for p in &mut pollers {
        p();
    }
    let mut slot = POLLERS.lock();
    pollers.append(&mut slot);
    *slot = pollers;
}

/// Wait for the next interrupt, at most 1 ms (the platform's `relax`).
pub fn relax() {
    let seen = WAKES[smp::current()].load(Ordering::Acquire);
    halt_until(seen, Some(time::now_ns() + 1_000_000));
}
