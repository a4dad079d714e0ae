//! Health monitoring (PRM "Health Buffer"; the init segment's health
//! buffer at 0x200 and health counter at 0x1010). The driver owns no
//! threads: the owner calls [`crate::Adapter::poll_health`] periodically.
//! A nonzero syndrome, or a counter that does not move for `max_misses`
//! polls `poll_interval_ms` apart, marks the adapter failed.

use core::fmt;

use cxos_drivers::{Clock, Mmio};

use crate::init_seg::{self, HealthBuffer, health_syndrome_name};

/// Linux polls every 2 s and declares the device dead after 3 misses.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2_000;
pub const DEFAULT_MAX_MISSES: u32 = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HealthConfig {
    /// Minimum time between two counter samples.
    pub poll_interval_ms: u64,
    /// Consecutive samples without counter movement that mean "dead".
    pub max_misses: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            max_misses: DEFAULT_MAX_MISSES,
        }
    }
}

/// Why the adapter was marked failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultKind {
    /// The health buffer holds a syndrome.
    Syndrome,
    /// The health counter stopped.
    CounterStuck { counter: u32, misses: u32 },
    /// The device raised an internal error event (EQE type 0x08).
    InternalErrorEvent,
    /// A queue-level recovery escalated to a function reset.
    Escalated,
}

/// A fault report: what happened plus the health buffer at that moment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultReport {
    pub kind: FaultKind,
    pub health: HealthBuffer,
    pub at_ns: u64,
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::Syndrome => write!(f, "health syndrome")?,
            FaultKind::CounterStuck { counter, misses } => {
                write!(f, "health counter stuck at {counter:#x} for {misses} polls")?
            }
            FaultKind::InternalErrorEvent => write!(f, "internal error event")?,
            FaultKind::Escalated => write!(f, "recovery escalated to a function reset")?,
        }
        let h = &self.health;
        write!(
            f,
            "; synd {:#x} ({}), ext_synd {:#x}, irisc {}, fw_ver {:#x}, hw_id {:#x}, assert_exit_ptr {:#x}, assert_callra {:#x}, assert_var {:x?}",
            h.synd,
            health_syndrome_name(h.synd),
            h.ext_synd,
            h.irisc_index,
            h.fw_ver,
            h.hw_id,
            h.assert_exit_ptr,
            h.assert_callra,
            h.assert_var
        )
    }
}

/// Sampling state of the health counter.
#[derive(Clone, Copy, Debug)]
pub struct HealthMonitor {
    pub config: HealthConfig,
    last_counter: u32,
    misses: u32,
    last_poll_ns: u64,
    pub polls: u64,
}

impl HealthMonitor {
    pub fn new(mmio: &impl Mmio, clock: &impl Clock, config: HealthConfig) -> Self {
        Self {
            config,
            last_counter: init_seg::health_counter(mmio),
            misses: 0,
            last_poll_ns: clock.now_ns(),
            polls: 0,
        }
    }

    /// Sample if the interval has elapsed; a fault when the device is
    /// unhealthy.
    pub fn poll(&mut self, p: &impl Mmio, clock: &impl Clock) -> Option<FaultKind> {
        let now = clock.now_ns();
        if now.saturating_sub(self.last_poll_ns) < self.config.poll_interval_ms * 1_000_000 {
            return None;
        }
        self.last_poll_ns = now;
        self.polls += 1;
        if init_seg::health_syndrome(p) != 0 {
            return Some(FaultKind::Syndrome);
        }
        let counter = init_seg::health_counter(p);
        if counter == self.last_counter {
            self.misses += 1;
            if self.misses >= self.config.max_misses.max(1) {
                return Some(FaultKind::CounterStuck {
                    counter,
                    misses: self.misses,
                });
            }
        } else {
            self.misses = 0;
            self.last_counter = counter;
        }
        None
    }

    pub fn misses(&self) -> u32 {
        self.misses
    }
}
