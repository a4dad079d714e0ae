//! What every built-in test and service implements: a non-blocking state
//! machine polled with its interface, the time and a console sink.

use alloc::string::String;
use core::fmt;

use cxos_drivers::net::NetDevice;
use smoltcp::time::Instant;

use crate::netif::NetIf;

/// How a test ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    /// One line (the summary the app also printed).
    pub summary: String,
}

impl Verdict {
    pub fn pass(summary: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            summary: summary.into(),
        }
    }

    pub fn fail(summary: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            summary: summary.into(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.ok { "PASS" } else { "FAIL" },
            self.summary
        )
    }
}

/// What a poll left the app in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppStatus {
    Running,
    Done(Verdict),
}

/// A built-in test or service.
pub trait App<D: NetDevice> {
    fn name(&self) -> &str;

    /// Advance without blocking; console lines (each ending in '\n') go to
    /// `out`. After `Done` the app has released its sockets and is not
    /// polled again.
    fn poll(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> AppStatus;

    /// The next time the app must be polled even without network input
    /// (its timers); None: only when the interface made progress.
    fn poll_at(&self, now: Instant) -> Option<Instant> {
        let _ = now;
        None
    }

    /// Stop now (shell interrupt, shutdown): release sockets, print the
    /// summary, return the verdict so far.
    fn abort(&mut self, net: &mut NetIf<D>, now: Instant, out: &mut dyn fmt::Write) -> Verdict;
}
