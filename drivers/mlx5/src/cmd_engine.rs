//! The command engine of one function: the command queue, EQ0 (once it
//! exists), firmware pages and the failed flag. Every command goes through
//! [`CmdEngine::submit`], then [`CmdEngine::poll`] (one look, never
//! blocking: pending, or done with the validated output or a typed
//! [`CmdError`], a timeout included) or [`CmdEngine::wait`] (polls until
//! done, yielding the CPU through the platform's `relax`); [`CmdEngine::exec`]
//! is submit + wait. Traced at log target `mlx5::cmd`, failing fast once
//! the adapter is failed, and servicing EQ0 (command completions, page
//! requests, port events) at every look. A caller that must not block
//! (the kernel's shell, whose wait lets the rest of the kernel run) polls
//! between its own work: `vnic::Nic::exec_with`.

use alloc::vec::Vec;

use cxos_drivers::{Clock, ConfigSpace, Msix, Platform, Region};

use crate::cmd::{Command, OUT_STATUS, OUT_SYNDROME, encode, opcode_name};
use crate::cmdq::{CmdQueue, Finished};
use crate::eq::{self, Eq, Eqe, event};
use crate::error::{CmdError, CmdFailure, Error};
use crate::fault::{
    FaultAction, FaultClass, FaultLog, FaultObject, FaultOutcome, FaultRecord, QUEUE_EVENTS,
    QueueEvent,
};
use crate::health::{FaultKind, FaultReport, HealthMonitor};
use crate::init_seg;
use crate::pages::{self, PageKind, PagePool, QueryPages};

mod eq0_irq;
pub use eq0_irq::LATE_IRQ_NS;

/// How often a waiting command re-reads the health syndrome.
const HEALTH_PEEK_NS: u64 = 1_000_000;
/// Polls of a waiting command before the loop starts yielding the CPU
/// (most commands complete within a few microseconds).
const SPIN_POLLS: u32 = 64;
/// In event mode, how long without an interrupt before EQ0 is peeked
/// directly (counted in `Stats::eq0_lost_interrupts`; EQ stalls proper
/// are found by the queue sets' QUERY_EQ check).
const EQ_PEEK_NS: u64 = 2_000_000;

/// A command in flight: [`CmdEngine::poll`] it until it is done, or
/// [`CmdEngine::wait`] for it.
#[derive(Debug)]
#[must_use = "a submitted command must be polled or waited for"]
pub struct Ticket<C> {
    slot: usize,
    cmd: C,
    /// When it was submitted (its timeout runs from here).
    start_ns: u64,
    /// When the health syndrome was last read for it.
    health_ns: u64,
    /// Polls so far (the blocking wait spins this many before relaxing).
    polls: u32,
}

impl<C> Ticket<C> {
    pub fn slot(&self) -> usize {
        self.slot
    }
    /// The command it carries.
    pub fn command(&self) -> &C {
        &self.cmd
    }
}

/// What [`CmdEngine::poll`] found.
#[derive(Debug)]
#[must_use = "a pending command must be polled again"]
pub enum CmdPoll<C: Command> {
    /// Still with the device (not timed out): poll the ticket again.
    Pending(Ticket<C>),
    /// Finished: the validated output, or why not (status and syndrome,
    /// timeout, failed adapter, bad output).
    Done(Result<C::Output, CmdError>),
}

/// Port events kept between two [`crate::Adapter::poll`]s: a storm of
/// events keeps only the latest ones.
pub const PORT_EVENTS: usize = 64;

/// The port events seen on EQ0, oldest first.
pub type PortEvents = heapless::Deque<PortEvent, PORT_EVENTS>;

/// Link state change seen on EQ0.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PortEvent {
    Down,
    Up,
    Other(u8),
    /// A PORT_MODULE event: the cage's new state.
    Module(crate::module::ModuleState),
}

/// Command and event counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    pub commands: u64,
    pub failed: u64,
    pub timeouts: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    pub eq0_events: u64,
    pub cmd_events: u64,
    pub page_events: u64,
    pub port_events: u64,
    pub other_events: u64,
    pub spurious_completions: u64,
    pub recovered_completions: u64,
    pub interrupts: u64,
    /// EQ0 drained without its interrupt while a command waited.
    pub eq0_lost_interrupts: u64,
    /// Pages asked for and not given: during teardown, or beyond
    /// `Config::max_total_pages`.
    pub pages_refused: u64,
    /// Page requests refused (in part or whole) for the total cap.
    pub page_cap_refusals: u64,
    pub unknown_pages_returned: u64,
    /// Page-request rounds cut short because the device kept asking while
    /// the driver served it ([`MAX_PAGE_ROUNDS`]).
    pub page_rounds_cut: u64,
}

/// Rounds of page requests one [`CmdEngine::service_page_requests`] serves
/// (each round may see new requests arrive): a device asking without end
/// cannot keep the caller in the loop; the rest waits for the next call.
pub const MAX_PAGE_ROUNDS: u32 = 8;

/// The command engine: everything a command needs on its way through the
/// device (see the module documentation). The [`crate::Adapter`] owns one.
#[derive(Debug)]
pub struct CmdEngine<P: Platform> {
    /// The platform, from attach until detach hands it back (the only
    /// time it is taken: [`CmdEngine::take_platform`]).
    plat: Option<P>,
    pub(crate) cmdq: CmdQueue<P>,
    pub(crate) eq0: Option<Eq<P>>,
    pub(crate) pages: PagePool<Region<P>>,
    /// Signed pages asked for by page-request events, not yet served.
    pub(crate) pending_pages: i64,
    pub(crate) in_page_work: bool,
    /// Page requests are the owner's to serve ([`CmdEngine::defer_page_requests`]).
    defer_pages: bool,
    /// Positive page requests are refused during teardown.
    pub(crate) accept_page_requests: bool,
    pub(crate) max_pages: u32,
    /// Most pages the device may hold at once (`Config::max_total_pages`).
    pub(crate) max_total_pages: u32,
    pub(crate) port_events: PortEvents,
    pub(crate) fault: Option<FaultReport>,
    /// Every fault record of the function ([`crate::fault`]).
    pub(crate) faults: FaultLog,
    /// Queue error events from EQ0 the queue sets have not taken yet.
    pub(crate) queue_events: heapless::Deque<QueueEvent, QUEUE_EVENTS>,
    /// Queue events dropped because nobody took them in time.
    pub queue_events_dropped: u64,
    /// Health counter sampling, once firmware is up.
    pub(crate) health: Option<HealthMonitor>,
    pub(crate) timeout_ns: u64,
    pub(crate) stats: Stats,
    /// EQ rings whose destruction failed: kept until detach ends.
    pub(crate) graveyard: Vec<Region<P>>,
    last_irq_ns: u64,
    /// Lost EQ0 interrupts ([`eq0_irq`]).
    eq0_irq: eq0_irq::Eq0Irq,
    /// The owner's work between two looks at a command in a blocking
    /// wait (`Adapter::set_idle`), instead of the clock's `relax`.
    idle: Idle,
}

/// [`CmdEngine`]'s idle work (a box of the owner's closure).
#[derive(Default)]
pub(crate) struct Idle(Option<crate::vnic::IdleWork>);

impl core::fmt::Debug for Idle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Idle(set)"
        } else {
            "Idle"
        })
    }
}

impl<P: Platform> CmdEngine<P> {
    pub fn new(
        p: P,
        cmdq: CmdQueue<P>,
        timeout_ms: u64,
        max_pages: u32,
        max_total_pages: u32,
    ) -> Self {
        Self {
            plat: Some(p),
            cmdq,
            eq0: None,
            pages: PagePool::default(),
            pending_pages: 0,
            in_page_work: false,
            defer_pages: false,
            accept_page_requests: true,
            max_pages,
            max_total_pages,
            port_events: PortEvents::new(),
            fault: None,
            faults: FaultLog::default(),
            queue_events: heapless::Deque::new(),
            queue_events_dropped: 0,
            health: None,
            timeout_ns: timeout_ms * 1_000_000,
            stats: Stats::default(),
            graveyard: Vec::new(),
            last_irq_ns: 0,
            eq0_irq: Default::default(),
            idle: Idle::default(),
        }
    }

    /// The platform. Present for the engine's whole life: only
    /// [`CmdEngine::take_platform`] takes it, as the adapter's detach
    /// consumes the adapter.
    #[inline]
    pub fn platform(&self) -> &P {
        match &self.plat {
            Some(p) => p,
            None => {
                unreachable!("the platform is taken only by detach, which consumes the adapter")
            }
        }
    }

    #[inline]
    pub(crate) fn p(&self) -> &P {
        self.platform()
    }

    pub(crate) fn has_platform(&self) -> bool {
        self.plat.is_some()
    }

    /// Hand the platform back (detach, after everything is torn down).
    pub(crate) fn take_platform(&mut self) -> Option<P> {
        self.plat.take()
    }

    pub fn is_failed(&self) -> bool {
        self.fault.is_some()
    }

    /// Mark the adapter failed and print the fault report.
    pub(crate) fn fail(&mut self, kind: FaultKind) {
        if self.fault.is_some() {
            return;
        }
        let report = FaultReport {
            kind,
            health: init_seg::health_buffer(self.p().mmio()),
            at_ns: self.p().clock().now_ns(),
        };
        log::debug!(target: "mlx5::health", "{report}");
        let h = &report.health;
        let mut r = FaultRecord::new(FaultClass::Health, FaultObject::Function, report.at_ns)
            .syndromes(h.synd.into(), h.ext_synd.into());
        r = match kind {
            // The queue-level record that escalated is in the log already.
            FaultKind::Escalated => {
                self.fault = Some(report);
                return;
            }
            FaultKind::Syndrome => r,
            FaultKind::CounterStuck { counter, .. } => r.detail("counter", counter.into()),
            FaultKind::InternalErrorEvent => r.detail("event", event::INTERNAL_ERROR.into()),
        };
        // Commands fail fast from here on; the owner's function reset
        // (escalation) brings the function back.
        self.record_fault(r.action(FaultAction::FunctionReset, FaultOutcome::Escalate));
        self.fault = Some(report);
    }

    /// Number `r`, keep it in the fault log, count it and print it (one
    /// console line, log target [`crate::fault::LOG_TARGET`]).
    pub fn record_fault(&mut self, mut r: FaultRecord) -> FaultRecord {
        // A shell left by a function reset has no platform: its records
        // carry the address they were made with.
        if let Some(p) = self.plat.as_ref() {
            r.pci = p.config().pci_address();
        }
        let r = self.faults.push(r);
        log::error!(target: crate::fault::LOG_TARGET, "{r}");
        r
    }

    /// [`FaultLog::settle`] a pending record with its outcome, and print
    /// it (the outcome's line).
    pub fn settle_fault(&mut self, mut r: FaultRecord) -> FaultRecord {
        if let Some(p) = self.plat.as_ref() {
            r.pci = p.config().pci_address();
        }
        let r = self.faults.settle(r);
        log::error!(target: crate::fault::LOG_TARGET, "{r}");
        r
    }

    /// Take the queue events whose object `mine` accepts (EQ0 drained
    /// first), up to `max`; the others stay for their owners.
    pub fn take_queue_events(
        &mut self,
        mine: &dyn Fn(FaultObject) -> bool,
        max: usize,
    ) -> heapless::Vec<QueueEvent, QUEUE_EVENTS> {
        self.drain_eq0(true);
        let mut out = heapless::Vec::new();
        let n = self.queue_events.len();
        for _ in 0..n {
            let Some(e) = self.queue_events.pop_front() else {
                break;
            };
            if out.len() < max && mine(e.object()) {
                let _ = out.push(e);
            } else {
                let _ = self.queue_events.push_back(e);
            }
        }
        out
    }

    pub fn fault_log(&self) -> &FaultLog {
        &self.faults
    }

    pub fn fault_log_mut(&mut self) -> &mut FaultLog {
        &mut self.faults
    }

    /// Look at the health syndrome now, and sample the health counter if
    /// its interval elapsed.
    pub(crate) fn check_health(&mut self) {
        if self.fault.is_some() {
            return;
        }
        if init_seg::health_syndrome(self.p().mmio()) != 0 {
            self.fail(FaultKind::Syndrome);
            return;
        }
        let mut health = self.health.take();
        let kind = health
            .as_mut()
            .and_then(|h| h.poll(self.p().mmio(), self.p().clock()));
        self.health = health;
        if let Some(kind) = kind {
            self.fail(kind);
        }
    }

    /// Run one command to completion: [`CmdEngine::submit`], then
    /// [`CmdEngine::wait`] (bring-up and other callers that may block).
    pub fn exec<C: Command>(&mut self, cmd: &C) -> Result<C::Output, CmdError> {
        let slot = self.submit_slot(cmd)?;
        let now = self.p().clock().now_ns();
        self.last_irq_ns = now;
        let mut t = Ticket {
            slot,
            cmd,
            start_ns: now,
            health_ns: now,
            polls: 0,
        };
        loop {
            match self.poll_slot::<C, _>(&mut t) {
                Some(r) => return r,
                None => self.relax(&mut t),
            }
        }
    }

    /// Start a command; several may be in flight (one per slot). Poll it
    /// with [`CmdEngine::poll`] or wait with [`CmdEngine::wait`].
    pub fn submit<C: Command>(&mut self, cmd: C) -> Result<Ticket<C>, CmdError> {
        let slot = self.submit_slot(&cmd)?;
        let now = self.p().clock().now_ns();
        self.last_irq_ns = now;
        Ok(Ticket {
            slot,
            cmd,
            start_ns: now,
            health_ns: now,
            polls: 0,
        })
    }

    /// Look at a submitted command once, without blocking: EQ0 is
    /// serviced (event mode), health peeked at, the timeout checked.
    /// Commands may finish in any order.
    pub fn poll<C: Command>(&mut self, mut t: Ticket<C>) -> CmdPoll<C> {
        if !self.has_platform() {
            // The shell a function reset left: its queue is gone.
            return CmdPoll::Done(Err(CmdError {
                opcode: C::OPCODE,
                op_mod: t.cmd.op_mod(),
                failure: CmdFailure::AdapterFailed,
            }));
        }
        match self.poll_slot::<C, C>(&mut t) {
            Some(r) => CmdPoll::Done(r),
            None => CmdPoll::Pending(t),
        }
    }

    /// Wait for a submitted command, in any order (polls it, spinning a
    /// little, then yielding the CPU through the platform's `relax`).
    pub fn wait<C: Command>(&mut self, mut t: Ticket<C>) -> Result<C::Output, CmdError> {
        loop {
            match self.poll_slot::<C, C>(&mut t) {
                Some(r) => return r,
                None => self.relax(&mut t),
            }
        }
    }

    fn relax<C>(&mut self, t: &mut Ticket<C>) {
        if t.polls < SPIN_POLLS {
            t.polls += 1;
            core::hint::spin_loop();
        } else {
            self.idle();
        }
    }

    /// Between two looks at the device in a blocking wait: the owner's
    /// idle work ([`CmdEngine::set_idle`]), else the clock's `relax`.
    pub(crate) fn idle(&mut self) {
        match self.idle.0.take() {
            Some(mut f) => {
                f();
                if self.idle.0.is_none() {
                    self.idle.0 = Some(f);
                }
            }
            None => self.p().clock().relax(),
        }
    }

    /// Set (or take away) the idle work of blocking waits; the one set
    /// before.
    pub(crate) fn set_idle(
        &mut self,
        work: Option<crate::vnic::IdleWork>,
    ) -> Option<crate::vnic::IdleWork> {
        core::mem::replace(&mut self.idle.0, work)
    }

    fn submit_slot<C: Command>(&mut self, cmd: &C) -> Result<usize, CmdError> {
        let err = |failure| CmdError {
            opcode: C::OPCODE,
            op_mod: cmd.op_mod(),
            failure,
        };
        if self.fault.is_some() {
            return Err(err(CmdFailure::AdapterFailed));
        }
        let input = encode(cmd);
        let now = self.p().clock().now_ns();
        self.cmdq.submit(&input, cmd.out_len(), now).map_err(err)
    }

    /// One look at `t`'s slot: `None` while it is still the device's and
    /// within its timeout.
    fn poll_slot<C: Command, K: core::borrow::Borrow<C>>(
        &mut self,
        t: &mut Ticket<K>,
    ) -> Option<Result<C::Output, CmdError>> {
        let cmd: &C = t.cmd.borrow();
        let slot = t.slot;
        let opcode = C::OPCODE;
        let op_mod = cmd.op_mod();
        let err = |failure| CmdError {
            opcode,
            op_mod,
            failure,
        };
        let start = t.start_ns;
        let mut finished = None;
        if self.cmdq.is_done(slot, false) {
            finished = Some(self.cmdq.finish(slot));
        } else if self.cmdq.uses_events() {
            self.service_eq0();
            if self.cmdq.is_done(slot, false) {
                finished = Some(self.cmdq.finish(slot));
            }
        }
        if finished.is_none() {
            let now = self.p().clock().now_ns();
            if now.saturating_sub(t.health_ns) >= HEALTH_PEEK_NS {
                t.health_ns = now;
                self.check_health();
            }
            if self.fault.is_some() {
                self.cmdq.abandon(slot);
                self.stats.failed += 1;
                self.trace_failure(opcode, op_mod, start, "adapter failed while waiting");
                return Some(Err(err(CmdFailure::AdapterFailed)));
            }
            if now.saturating_sub(start) < self.timeout_ns {
                return None;
            }
            // A completion whose EQE went missing still counts.
            if self.cmdq.is_done(slot, true) {
                self.stats.recovered_completions += 1;
                finished = Some(self.cmdq.finish(slot));
            } else {
                self.cmdq.abandon(slot);
                self.stats.failed += 1;
                self.stats.timeouts += 1;
                let waited_ms = now.saturating_sub(start) / 1_000_000;
                self.trace_failure(opcode, op_mod, start, "timeout");
                self.record_fault(
                    FaultRecord::new(FaultClass::CmdTimeout, FaultObject::Command(opcode), now)
                        .detail("waited_ms", waited_ms)
                        .action(FaultAction::None, FaultOutcome::Reported),
                );
                return Some(Err(err(CmdFailure::Timeout { waited_ms })));
            }
        }
        let finished = finished?;
        let result = self.complete(cmd, finished);
        // Page requests that arrived while this command ran.
        self.service_page_requests();
        Some(result)
    }

    fn complete<C: Command>(&mut self, cmd: &C, f: Finished) -> Result<C::Output, CmdError> {
        let took = self.p().clock().now_ns().saturating_sub(f.started_ns);
        self.stats.commands += 1;
        self.stats.total_ns += took;
        self.stats.max_ns = self.stats.max_ns.max(took);
        let err = |failure| CmdError {
            opcode: C::OPCODE,
            op_mod: f.op_mod,
            failure,
        };
        let out = match f.result {
            Ok(out) => out,
            Err(failure) => {
                self.stats.failed += 1;
                log::warn!(
                    target: "mlx5::cmd",
                    "{} op_mod={:#x} failed: {:?} ({} us)",
                    opcode_name(C::OPCODE),
                    f.op_mod,
                    failure,
                    took / 1000
                );
                return Err(err(failure));
            }
        };
        let status = OUT_STATUS.get(&out) as u8;
        let syndrome = OUT_SYNDROME.get(&out);
        if status != 0 {
            self.stats.failed += 1;
            log::warn!(
                target: "mlx5::cmd",
                "{} op_mod={:#x} status={:#x} ({}) syndrome={:#x} {} us",
                opcode_name(C::OPCODE),
                f.op_mod,
                status,
                crate::error::status_name(status),
                syndrome,
                took / 1000
            );
            return Err(err(CmdFailure::Status { status, syndrome }));
        }
        log::debug!(
            target: "mlx5::cmd",
            "{} op_mod={:#x} status=0 syndrome=0 {} us",
            opcode_name(C::OPCODE),
            f.op_mod,
            took / 1000
        );
        cmd.parse(&out).map_err(|what| {
            self.stats.failed += 1;
            err(CmdFailure::BadOutput(what))
        })
    }

    fn trace_failure(&self, opcode: u16, op_mod: u16, start: u64, what: &str) {
        log::warn!(
            target: "mlx5::cmd",
            "{} op_mod={:#x} {} after {} us",
            opcode_name(opcode),
            op_mod,
            what,
            self.p().clock().now_ns().saturating_sub(start) / 1000
        );
    }

    /// Drain EQ0 if its vector fired (or, after a while without an
    /// interrupt, if an event is waiting anyway), then re-arm it (unless
    /// its interrupt looks lost: [`eq0_irq`]).
    pub(crate) fn service_eq0(&mut self) {
        self.drain_eq0(false)
    }

    /// As [`CmdEngine::service_eq0`]; `peek` drains whatever is waiting
    /// without needing an interrupt (the owner's poll).
    pub(crate) fn drain_eq0(&mut self, peek: bool) {
        self.eq0_irq_late();
        let Some(eq0) = self.eq0.as_ref() else {
            return;
        };
        let vector = eq0.vector;
        let now = self.p().clock().now_ns();
        let fired = self.p().msix().msix_take_pending(vector);
        if fired {
            self.stats.interrupts += 1;
            self.last_irq_ns = now;
        } else if (!peek && now.saturating_sub(self.last_irq_ns) < EQ_PEEK_NS) || !eq0.has_event() {
            return;
        }
        if !fired && !peek {
            // Not a fault record: the owner's loop takes vector 0's flag
            // too, so a waiting command often finds its EQE this way.
            self.stats.eq0_lost_interrupts += 1;
        }
        let Some(mut eq0) = self.eq0.take() else {
            return;
        };
        let (ci, mut taken) = (eq0.consumer_index(), 0);
        // Bounded: at most one ring's worth per call.
        for _ in 0..eq0.entries() {
            let Some(e) = eq0.pop() else {
                break;
            };
            taken += 1;
            self.handle_event(e);
        }
        let arm = self.eq0_irq_arm_after(eq0.vector, taken, ci);
        eq0.doorbell(arm);
        self.eq0 = Some(eq0);
    }

    /// EQ0's number and the consumer counter the driver holds.
    pub(crate) fn eq0_state(&self) -> Option<(eq::Eqn, u32)> {
        self.eq0
            .as_ref()
            .map(|e| (e.eqn, e.consumer_index() & 0x00ff_ffff))
    }

    /// Write EQ0's consumer counter again and arm it.
    pub(crate) fn eq0_rearm(&mut self) {
        if let Some(e) = self.eq0.as_ref() {
            e.doorbell(true);
        }
    }

    fn handle_event(&mut self, e: Eqe) {
        self.stats.eq0_events += 1;
        match e.event_type {
            event::CMD => {
                self.stats.cmd_events += 1;
                let spurious = self.cmdq.signal(e.cmd_vector());
                if spurious != 0 {
                    self.stats.spurious_completions += 1;
                    log::warn!(
                        target: "mlx5::cmd",
                        "completion EQE for idle slots {spurious:#x}"
                    );
                }
            }
            event::PAGE_REQUEST => {
                self.stats.page_events += 1;
                let (func_id, n) = e.page_request();
                if func_id != 0 {
                    log::warn!(
                        target: "mlx5::pages",
                        "page request for function {func_id} ignored"
                    );
                    return;
                }
                log::debug!(target: "mlx5::pages", "page request {n}");
                self.pending_pages = self.pending_pages.saturating_add(n as i64);
            }
            event::PORT_CHANGE => {
                self.stats.port_events += 1;
                let ev = match e.sub_type {
                    eq::PORT_SUBTYPE_DOWN => PortEvent::Down,
                    eq::PORT_SUBTYPE_ACTIVE => PortEvent::Up,
                    other => PortEvent::Other(other),
                };
                // Bounded: a storm of events keeps only the latest ones.
                if self.port_events.is_full() {
                    self.port_events.pop_front();
                }
                let _ = self.port_events.push_back(ev);
            }
            event::PORT_MODULE => {
                self.stats.port_events += 1;
                if self.port_events.is_full() {
                    self.port_events.pop_front();
                }
                let state = crate::module::module_event(&e.data);
                if let crate::module::ModuleState::Error(t) = state {
                    // `port_module_event` module at byte 1.
                    let module = e.data.get(1).copied().unwrap_or(0);
                    let now = self.p().clock().now_ns();
                    self.record_fault(
                        FaultRecord::new(
                            FaultClass::ModuleError,
                            FaultObject::Port(module.saturating_add(1)),
                            now,
                        )
                        .syndromes(t.into(), 0)
                        .action(FaultAction::None, FaultOutcome::Reported),
                    );
                }
                let _ = self.port_events.push_back(PortEvent::Module(state));
            }
            event::CQ_ERROR
            | event::WQ_CATASTROPHIC
            | event::WQ_INVALID_REQUEST
            | event::WQ_ACCESS_ERROR => {
                self.stats.other_events += 1;
                match QueueEvent::parse(e.event_type, &e.data) {
                    Some(q) => {
                        log::debug!(target: "mlx5::eq", "queue event {q:?}");
                        if self.queue_events.is_full() {
                            self.queue_events.pop_front();
                            self.queue_events_dropped += 1;
                        }
                        let _ = self.queue_events.push_back(q);
                    }
                    None => log::warn!(
                        target: "mlx5::eq",
                        "event {:#x} naming no queue of ours: {:02x?}",
                        e.event_type,
                        e.data
                    ),
                }
            }
            event::INTERNAL_ERROR => {
                self.stats.other_events += 1;
                self.fail(FaultKind::InternalErrorEvent);
            }
            other => {
                self.stats.other_events += 1;
                log::warn!(
                    target: "mlx5::eq",
                    "mlx5 {}: event {:#x} sub_type {:#x} data {:02x?}",
                    self.p().config().pci_address(),
                    other,
                    e.sub_type,
                    e.data
                );
            }
        }
    }

    /// Serve page requests collected from EQ0 (not re-entrantly), the
    /// waits blocking ([`crate::page_service`]); nothing when the owner
    /// serves them itself ([`CmdEngine::defer_page_requests`]).
    pub(crate) fn service_page_requests(&mut self) {
        if self.defer_pages {
            return;
        }
        crate::page_service::serve(self)
    }

    /// The owner serves page requests itself, cooperatively
    /// (`Nic::serve_pages_with`): they are only collected from EQ0 here.
    pub(crate) fn defer_page_requests(&mut self, defer: bool) {
        self.defer_pages = defer;
    }

    /// QUERY_PAGES of `kind` and satisfy it.
    pub(crate) fn satisfy_pages(&mut self, kind: PageKind) -> Result<(), Error> {
        let n = self.exec(&QueryPages(kind))?;
        log::debug!(target: "mlx5::pages", "{:?} pages: {}", kind, n);
        crate::page_service::move_pages(self, n as i64)
    }

    /// MANAGE_PAGES take; returns how many came back.
    pub(crate) fn take_pages(&mut self, n: usize) -> Result<usize, Error> {
        crate::page_service::take_pages(self, n)
    }

    /// Drain port events seen so far.
    pub fn take_port_events(&mut self) -> PortEvents {
        core::mem::take(&mut self.port_events)
    }

    /// DMA bytes the command engine holds (queue, mailboxes, EQ0, pages).
    pub fn dma_bytes(&self) -> usize {
        self.cmdq.dma_bytes()
            + self.eq0.as_ref().map_or(0, |e| e.dma_bytes())
            + self.pages.held() * pages::PAGE_SIZE
    }
}
