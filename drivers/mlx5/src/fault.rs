//! Fault records (the analogue of illumos FM ereports) and the recovery
//! policy (Linux devlink health's reporters: a grace period between two
//! recoveries of the same object, escalation when recovery fails or
//! repeats too often).
//!
//! Every fault the driver detects becomes one [`FaultRecord`]: its
//! [`FaultClass`], the function, the object, the syndromes, the WQE
//! counter, what the driver did ([`FaultAction`]) and how it went
//! ([`FaultOutcome`]). The adapter keeps the last [`FAULT_RING`] records
//! and a count per class ([`FaultLog`]) and prints each one on the console
//! as one line (log target [`LOG_TARGET`]):
//!
//! `FAULT <class> <pci> <object> <key=value ...> action=<...> outcome=<...>`
//!
//! Nothing here runs on the packet path: records are made by the recovery
//! code and the periodic checks.

use core::fmt;

use cxos_drivers::PciAddress;

/// Log target of the console line (the kernel prints it bare).
pub const LOG_TARGET: &str = "mlx5::fault";

/// Records the adapter keeps (oldest dropped first).
pub const FAULT_RING: usize = 64;

/// Linux's tx/rx reporters wait 500 ms between two recoveries.
pub const DEFAULT_GRACE_MS: u64 = 500;
/// Recoveries of one object inside [`DEFAULT_WINDOW_MS`] before the next
/// fault escalates instead of recovering the object again.
pub const DEFAULT_MAX_RECOVERIES: u32 = 5;
pub const DEFAULT_WINDOW_MS: u64 = 10_000;

/// The fault classes (issue list; names as printed).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum FaultClass {
    /// Error CQE on a send queue (bad lkey, address, opcode ...).
    SqErr,
    /// Error CQE on a receive queue.
    RqErr,
    /// CQ overrun: CQ error event, or found by QUERY_CQ.
    CqOverflow,
    /// An EQ that stopped delivering events.
    EqStall,
    /// Asynchronous work queue error events (catastrophic, invalid
    /// request, access error).
    WqCatastrophic,
    /// Firmware health: syndrome, stuck counter, internal error event.
    Health,
    /// A command that did not complete in time.
    CmdTimeout,
    /// Send WQEs outstanding without completion for too long.
    TxTimeout,
    /// A module (cage) error event.
    ModuleError,
}

impl FaultClass {
    pub const ALL: [FaultClass; 9] = [
        FaultClass::SqErr,
        FaultClass::RqErr,
        FaultClass::CqOverflow,
        FaultClass::EqStall,
        FaultClass::WqCatastrophic,
        FaultClass::Health,
        FaultClass::CmdTimeout,
        FaultClass::TxTimeout,
        FaultClass::ModuleError,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            FaultClass::SqErr => "mlx5.sq.err",
            FaultClass::RqErr => "mlx5.rq.err",
            FaultClass::CqOverflow => "mlx5.cq.overflow",
            FaultClass::EqStall => "mlx5.eq.stall",
            FaultClass::WqCatastrophic => "mlx5.wq.catastrophic",
            FaultClass::Health => "mlx5.health",
            FaultClass::CmdTimeout => "mlx5.cmd.timeout",
            FaultClass::TxTimeout => "mlx5.tx.timeout",
            FaultClass::ModuleError => "mlx5.module.error",
        }
    }

    /// Position in [`FaultClass::ALL`] (and in [`FaultLog::counts`]).
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn from_name(s: &str) -> Option<FaultClass> {
        FaultClass::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The object a fault names.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum FaultObject {
    Sq(u32),
    Rq(u32),
    Cq(u32),
    Eq(u32),
    /// The function as a whole (health).
    Function,
    /// A physical port (module events), 1-based as the PRM numbers them.
    Port(u8),
    /// A command, by opcode.
    Command(u16),
    /// A queue set (the port's or a VNIC's) as a whole, by the TIS its
    /// send queue uses (else its direct TIR): what a port-level reset
    /// recovers, so the policy counts those per queue set.
    QueueSet(u32),
}

impl fmt::Display for FaultObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FaultObject::Sq(n) => write!(f, "sqn={n:#x}"),
            FaultObject::Rq(n) => write!(f, "rqn={n:#x}"),
            FaultObject::Cq(n) => write!(f, "cqn={n:#x}"),
            FaultObject::Eq(n) => write!(f, "eqn={n:#x}"),
            FaultObject::Function => f.write_str("function"),
            FaultObject::Port(p) => write!(f, "port={p}"),
            FaultObject::Command(op) => write!(f, "opcode={op:#x}"),
            FaultObject::QueueSet(n) => write!(f, "queue_set={n:#x}"),
        }
    }
}

/// What the driver did about a fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultAction {
    /// Recorded only (e.g. a module error: nothing to recover in the
    /// driver; a command timeout: the caller sees the error).
    None,
    /// Queue moved ERR -> RST -> RDY, buffers returned and reposted.
    QueueReset,
    /// CQ destroyed and created again, its queue reset.
    CqRecreate,
    /// EQ re-armed with the consumer counter the driver holds (after
    /// polling what it had).
    EqRearm,
    /// EQ destroyed and created again.
    EqRecreate,
    /// Lost interrupt: the EQ polled without one.
    EqPoll,
    /// Every queue of the port's queue set reset (escalation from queue).
    PortReset,
    /// The function reset and re-initialised, configuration replayed.
    FunctionReset,
    /// The adapter marked failed (no recovery possible).
    MarkFailed,
    /// Recovery postponed to the end of the grace period.
    Deferred,
}

impl FaultAction {
    pub const fn name(self) -> &'static str {
        match self {
            FaultAction::None => "none",
            FaultAction::QueueReset => "queue-reset",
            FaultAction::CqRecreate => "cq-recreate",
            FaultAction::EqRearm => "eq-rearm",
            FaultAction::EqRecreate => "eq-recreate",
            FaultAction::EqPoll => "eq-poll",
            FaultAction::PortReset => "port-reset",
            FaultAction::FunctionReset => "function-reset",
            FaultAction::MarkFailed => "mark-failed",
            FaultAction::Deferred => "deferred",
        }
    }
}

/// How the action went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultOutcome {
    /// The object works again.
    Recovered,
    /// The action failed; the object is still broken.
    Failed,
    /// Inside the grace period: the periodic check recovers it later.
    Deferred,
    /// Recovery failed or repeated beyond the policy: the next level
    /// (port, then function reset) takes over.
    Escalate,
    /// Recorded; nothing to recover.
    Reported,
    /// Found on the packet path (which issues no command): the queue is
    /// out of use and its recovery runs from the owner's recovery step
    /// (`QueueSet::run_pending_recoveries`); the record is settled
    /// ([`FaultLog::settle`]) with the outcome then.
    Pending,
}

impl FaultOutcome {
    pub const fn name(self) -> &'static str {
        match self {
            FaultOutcome::Recovered => "recovered",
            FaultOutcome::Failed => "failed",
            FaultOutcome::Deferred => "deferred",
            FaultOutcome::Escalate => "escalate",
            FaultOutcome::Reported => "reported",
            FaultOutcome::Pending => "pending",
        }
    }
}

/// One fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultRecord {
    /// Sequence number in the adapter's log (1, 2, ...), set by
    /// [`FaultLog::push`].
    pub seq: u64,
    pub class: FaultClass,
    /// The function (set by the adapter when the record is logged).
    pub pci: PciAddress,
    pub object: FaultObject,
    /// CQE syndrome, event syndrome, health syndrome or command status.
    pub syndrome: Option<u32>,
    /// CQE vendor syndrome, health ext_synd or command syndrome.
    pub vendor_syndrome: Option<u32>,
    pub wqe_counter: Option<u16>,
    /// One more detail that matters to the class (`returned=` buffers,
    /// `pending=` WQEs, `ci=` counter, `event=` type ...).
    pub detail: Option<(&'static str, u64)>,
    /// A second detail ([`FaultRecord::detail`] fills this one when the
    /// first is taken).
    pub detail2: Option<(&'static str, u64)>,
    pub action: FaultAction,
    pub outcome: FaultOutcome,
    pub at_ns: u64,
}

impl FaultRecord {
    pub fn new(class: FaultClass, object: FaultObject, at_ns: u64) -> FaultRecord {
        FaultRecord {
            seq: 0,
            class,
            pci: PciAddress::default(),
            object,
            syndrome: None,
            vendor_syndrome: None,
            wqe_counter: None,
            detail: None,
            detail2: None,
            action: FaultAction::None,
            outcome: FaultOutcome::Reported,
            at_ns,
        }
    }

    pub fn syndromes(mut self, syndrome: u32, vendor: u32) -> Self {
        self.syndrome = Some(syndrome);
        self.vendor_syndrome = Some(vendor);
        self
    }

    pub fn wqe_counter(mut self, c: u16) -> Self {
        self.wqe_counter = Some(c);
        self
    }

    /// Add a `key=value` detail (two at most; a third replaces the
    /// second).
    pub fn detail(mut self, key: &'static str, value: u64) -> Self {
        if self.detail.is_none() {
            self.detail = Some((key, value));
        } else {
            self.detail2 = Some((key, value));
        }
        self
    }

    pub fn action(mut self, action: FaultAction, outcome: FaultOutcome) -> Self {
        self.action = action;
        self.outcome = outcome;
        self
    }
}

/// The console line (no trailing newline).
impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FAULT {} {} {}", self.class, self.pci, self.object)?;
        if let Some(s) = self.syndrome {
            write!(f, " syndrome={s:#x}")?;
        }
        if let Some(s) = self.vendor_syndrome {
            write!(f, " vendor_syndrome={s:#x}")?;
        }
        if let Some(c) = self.wqe_counter {
            write!(f, " wqe_counter={c}")?;
        }
        for (k, v) in self.detail.iter().chain(self.detail2.iter()) {
            write!(f, " {k}={v}")?;
        }
        write!(
            f,
            " action={} outcome={}",
            self.action.name(),
            self.outcome.name()
        )
    }
}

/// A record as the `faults` listing shows it: `[<s>.<µs>] #<seq> <line>`,
/// the time the platform clock gave the record (seconds, microseconds,
/// truncated), its sequence number and the console line.
#[derive(Clone, Copy, Debug)]
pub struct Listed<'a>(&'a FaultRecord);

impl FaultRecord {
    /// This record as `faults` lists it ([`Listed`]).
    pub fn listed(&self) -> Listed<'_> {
        Listed(self)
    }
}

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.at_ns;
        write!(
            f,
            "[{:5}.{:06}] #{} {}",
            ns / 1_000_000_000,
            (ns / 1000) % 1_000_000,
            self.0.seq,
            self.0
        )
    }
}

/// An asynchronous event naming a queue (EQ0): CQ error (`struct
/// mlx5_eqe_cq_err`: cqn at data 0, syndrome at 11) or a work queue error
/// (`struct mlx5_eqe_qp_srq`: type at data 20, queue number at 24).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum QueueEvent {
    CqError {
        cqn: u32,
        syndrome: u8,
    },
    /// `event`: WQ_CATASTROPHIC (0x05), WQ_INVALID_REQUEST (0x10),
    /// WQ_ACCESS_ERROR (0x11).
    Wq {
        event: u8,
        object: FaultObject,
    },
}

/// `MLX5_EVENT_QUEUE_TYPE_RQ` / `_SQ` (device.h).
const QUEUE_TYPE_RQ: u8 = 1;
const QUEUE_TYPE_SQ: u8 = 2;

/// Queue events kept between two looks by the queue sets (oldest
/// dropped first).
pub const QUEUE_EVENTS: usize = 64;

impl QueueEvent {
    /// The event of `event_type` with `data` (the EQE's 28 data bytes),
    /// if it names a queue the driver could own.
    pub fn parse(event_type: u8, data: &[u8]) -> Option<QueueEvent> {
        let be24 = |o: usize| -> Option<u32> {
            let b = data.get(o..o + 4)?;
            Some(u32::from_be_bytes([0, b[1], b[2], b[3]]))
        };
        match event_type {
            crate::eq::event::CQ_ERROR => Some(QueueEvent::CqError {
                cqn: be24(0)?,
                syndrome: *data.get(11)?,
            }),
            crate::eq::event::WQ_CATASTROPHIC
            | crate::eq::event::WQ_INVALID_REQUEST
            | crate::eq::event::WQ_ACCESS_ERROR => {
                let n = be24(24)?;
                let object = match *data.get(20)? {
                    QUEUE_TYPE_RQ => FaultObject::Rq(n),
                    QUEUE_TYPE_SQ => FaultObject::Sq(n),
                    _ => return None,
                };
                Some(QueueEvent::Wq {
                    event: event_type,
                    object,
                })
            }
            _ => None,
        }
    }

    pub fn object(&self) -> FaultObject {
        match *self {
            QueueEvent::CqError { cqn, .. } => FaultObject::Cq(cqn),
            QueueEvent::Wq { object, .. } => object,
        }
    }
}

/// Grace and escalation policy (devlink health's `grace_period`, plus a
/// bound on repeats).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultPolicy {
    /// Least time between two recoveries of the same object.
    pub grace_ms: u64,
    /// Recoveries of one object inside `window_ms` before escalation.
    pub max_recoveries: u32,
    pub window_ms: u64,
}

impl Default for FaultPolicy {
    fn default() -> Self {
        FaultPolicy {
            grace_ms: DEFAULT_GRACE_MS,
            max_recoveries: DEFAULT_MAX_RECOVERIES,
            window_ms: DEFAULT_WINDOW_MS,
        }
    }
}

/// What the policy says about recovering an object now.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Go ahead.
    Recover,
    /// Too soon after the last recovery: try again when the grace period
    /// has passed (at `until_ns`).
    Defer { until_ns: u64 },
    /// Repeated too often: hand it to the next level.
    Escalate,
}

/// Recovery history of one object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct History {
    object: FaultObject,
    last_ns: u64,
    window_start_ns: u64,
    in_window: u32,
}

/// Objects whose recovery history is kept (least recently recovered
/// forgotten first).
pub const HISTORY: usize = 32;

/// The adapter's fault log: the last records, counts per class, and the
/// recovery history the policy needs.
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    ring: heapless::Deque<FaultRecord, FAULT_RING>,
    counts: [u64; FaultClass::ALL.len()],
    /// Records pushed out of the ring.
    pub dropped: u64,
    next_seq: u64,
    pub policy: FaultPolicy,
    history: heapless::Vec<History, HISTORY>,
    /// Escalations requested and not yet taken by the owner
    /// ([`FaultLog::take_escalation`]).
    escalation: Option<FaultRecord>,
}

impl FaultLog {
    pub fn new(policy: FaultPolicy) -> FaultLog {
        FaultLog {
            policy,
            ..FaultLog::default()
        }
    }

    /// Keep `r` (numbered), count it, and return it as kept.
    pub fn push(&mut self, mut r: FaultRecord) -> FaultRecord {
        self.next_seq += 1;
        r.seq = self.next_seq;
        self.counts[r.class.index()] += 1;
        if self.ring.is_full() {
            self.ring.pop_front();
            self.dropped += 1;
        }
        let _ = self.ring.push_back(r);
        if r.outcome == FaultOutcome::Escalate {
            self.escalation = Some(r);
        }
        r
    }

    /// Put `r`, the outcome of a [`FaultOutcome::Pending`] record, in the
    /// place of the kept record with its sequence number: one fault, one
    /// record, counted once. A record pushed out of the ring meanwhile is
    /// kept anew (numbered, not counted again).
    pub fn settle(&mut self, r: FaultRecord) -> FaultRecord {
        if r.outcome == FaultOutcome::Escalate {
            self.escalation = Some(r);
        }
        if let Some(kept) = self.ring.iter_mut().find(|k| k.seq == r.seq && r.seq != 0) {
            *kept = r;
            return r;
        }
        let mut r = r;
        self.next_seq += 1;
        r.seq = self.next_seq;
        if self.ring.is_full() {
            self.ring.pop_front();
            self.dropped += 1;
        }
        let _ = self.ring.push_back(r);
        r
    }

    /// Count of records of each class, in [`FaultClass::ALL`] order.
    pub fn counts(&self) -> [u64; FaultClass::ALL.len()] {
        self.counts
    }

    pub fn count(&self, c: FaultClass) -> u64 {
        self.counts[c.index()]
    }

    pub fn total(&self) -> u64 {
        self.next_seq
    }

    /// Kept records, oldest first.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &FaultRecord> + '_ {
        self.ring.iter()
    }

    /// Records with a sequence number above `seq`, oldest first.
    pub fn since(&self, seq: u64) -> impl Iterator<Item = &FaultRecord> + '_ {
        self.ring.iter().filter(move |r| r.seq > seq)
    }

    pub fn last(&self) -> Option<&FaultRecord> {
        self.ring.back()
    }

    /// The latest record that asked for escalation, once.
    pub fn take_escalation(&mut self) -> Option<FaultRecord> {
        self.escalation.take()
    }

    /// Whether a record asked for escalation that nobody took yet.
    pub fn escalation_pending(&self) -> bool {
        self.escalation.is_some()
    }

    /// May `object` be recovered at `now_ns`? Counts the recovery when
    /// the answer is [`Verdict::Recover`].
    pub fn verdict(&mut self, object: FaultObject, now_ns: u64) -> Verdict {
        let grace = self.policy.grace_ms * 1_000_000;
        let window = self.policy.window_ms * 1_000_000;
        let pos = self.history.iter().position(|h| h.object == object);
        let Some(i) = pos else {
            if self.history.is_full() {
                // Forget the object recovered longest ago.
                if let Some((j, _)) = self
                    .history
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, h)| h.last_ns)
                {
                    self.history.swap_remove(j);
                }
            }
            let _ = self.history.push(History {
                object,
                last_ns: now_ns,
                window_start_ns: now_ns,
                in_window: 1,
            });
            return Verdict::Recover;
        };
        let h = &mut self.history[i];
        let since = now_ns.saturating_sub(h.last_ns);
        if since < grace {
            return Verdict::Defer {
                until_ns: h.last_ns + grace,
            };
        }
        if now_ns.saturating_sub(h.window_start_ns) >= window {
            h.window_start_ns = now_ns;
            h.in_window = 0;
        }
        if h.in_window >= self.policy.max_recoveries {
            return Verdict::Escalate;
        }
        h.in_window += 1;
        h.last_ns = now_ns;
        Verdict::Recover
    }

    /// Forget `object`'s history (it was destroyed or reset by a higher
    /// level).
    pub fn forget(&mut self, object: FaultObject) {
        if let Some(i) = self.history.iter().position(|h| h.object == object) {
            self.history.swap_remove(i);
        }
    }

    /// Forget every history (after a function reset).
    pub fn forget_all(&mut self) {
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn class_names_are_the_issue_list() {
        let names: alloc::vec::Vec<_> = FaultClass::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "mlx5.sq.err",
                "mlx5.rq.err",
                "mlx5.cq.overflow",
                "mlx5.eq.stall",
                "mlx5.wq.catastrophic",
                "mlx5.health",
                "mlx5.cmd.timeout",
                "mlx5.tx.timeout",
                "mlx5.module.error",
            ]
        );
        for (i, c) in FaultClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(FaultClass::from_name(c.name()), Some(*c));
        }
        assert_eq!(FaultClass::from_name("mlx5.sq"), None);
    }

    #[test]
    fn console_line_form() {
        let mut r = FaultRecord::new(FaultClass::SqErr, FaultObject::Sq(0x8), 5)
            .syndromes(0x04, 0x32)
            .wqe_counter(3)
            .detail("returned", 5)
            .action(FaultAction::QueueReset, FaultOutcome::Recovered);
        r.pci = PciAddress::new(0, 0, 3, 0);
        assert_eq!(
            format!("{r}"),
            "FAULT mlx5.sq.err 00:03.0 sqn=0x8 syndrome=0x4 vendor_syndrome=0x32 \
             wqe_counter=3 returned=5 action=queue-reset outcome=recovered"
        );
        let mut h = FaultRecord::new(FaultClass::Health, FaultObject::Function, 0)
            .action(FaultAction::FunctionReset, FaultOutcome::Escalate);
        h.pci = PciAddress::new(0, 0, 3, 0);
        assert_eq!(
            format!("{h}"),
            "FAULT mlx5.health 00:03.0 function action=function-reset outcome=escalate"
        );
    }

    #[test]
    fn listed_line_carries_the_timestamp() {
        let mut r = FaultRecord::new(FaultClass::ModuleError, FaultObject::Port(1), 0)
            .syndromes(6, 0)
            .action(FaultAction::None, FaultOutcome::Reported);
        r.pci = PciAddress::new(0, 1, 0, 0);
        r.seq = 1;
        let line = "FAULT mlx5.module.error 01:00.0 port=1 syndrome=0x6 \
                    vendor_syndrome=0x0 action=none outcome=reported";
        assert_eq!(
            format!("{}", r.listed()),
            format!("[    0.000000] #1 {line}")
        );
        // 1234.567891999 s: microseconds truncated, not rounded.
        r.at_ns = 1_234_567_891_999;
        r.seq = 42;
        assert_eq!(
            format!("{}", r.listed()),
            format!("[ 1234.567891] #42 {line}")
        );
        // Under a microsecond; and past the field width (about 3 years).
        r.at_ns = 999;
        assert_eq!(
            format!("{}", r.listed()),
            format!("[    0.000000] #42 {line}")
        );
        r.at_ns = 100_000_000_000_000_001;
        assert_eq!(
            format!("{}", r.listed()),
            format!("[100000000.000000] #42 {line}")
        );
        r.at_ns = u64::MAX;
        assert_eq!(
            format!("{}", r.listed()),
            format!("[18446744073.709551] #42 {line}")
        );
    }

    #[test]
    fn ring_is_bounded_and_counts_per_class() {
        let mut log = FaultLog::default();
        for i in 0..(FAULT_RING as u64 + 10) {
            let c = if i % 2 == 0 {
                FaultClass::SqErr
            } else {
                FaultClass::EqStall
            };
            log.push(FaultRecord::new(c, FaultObject::Eq(1), i));
        }
        assert_eq!(log.records().count(), FAULT_RING);
        assert_eq!(log.dropped, 10);
        assert_eq!(log.count(FaultClass::SqErr), 37);
        assert_eq!(log.count(FaultClass::EqStall), 37);
        assert_eq!(log.total(), 74);
        assert_eq!(log.records().next().unwrap().seq, 11);
        assert_eq!(log.since(72).count(), 2);
    }

    #[test]
    fn grace_then_escalation() {
        let ms = 1_000_000;
        let mut log = FaultLog::new(FaultPolicy {
            grace_ms: 500,
            max_recoveries: 3,
            window_ms: 10_000,
        });
        let o = FaultObject::Sq(1);
        assert_eq!(log.verdict(o, 0), Verdict::Recover);
        assert_eq!(
            log.verdict(o, 100 * ms),
            Verdict::Defer { until_ns: 500 * ms }
        );
        // Another queue is not held back by this one.
        assert_eq!(log.verdict(FaultObject::Rq(1), 100 * ms), Verdict::Recover);
        assert_eq!(log.verdict(o, 600 * ms), Verdict::Recover);
        assert_eq!(log.verdict(o, 1200 * ms), Verdict::Recover);
        assert_eq!(log.verdict(o, 1800 * ms), Verdict::Escalate);
        // A quiet window later, recovery is allowed again.
        assert_eq!(log.verdict(o, 20_000 * ms), Verdict::Recover);
        log.forget(o);
        assert_eq!(log.verdict(o, 20_001 * ms), Verdict::Recover);
    }

    #[test]
    fn queue_events_from_hand_written_data() {
        // mlx5_eqe_cq_err: cqn 0x000411 at 0..4, syndrome 1 at 11.
        let mut d = [0u8; 28];
        d[1..4].copy_from_slice(&[0, 0x04, 0x11]);
        d[11] = 1;
        assert_eq!(
            QueueEvent::parse(0x04, &d),
            Some(QueueEvent::CqError {
                cqn: 0x411,
                syndrome: 1
            })
        );
        // mlx5_eqe_qp_srq: type SQ (2) at 20, sqn 0x000009 at 24..28.
        let mut d = [0u8; 28];
        d[20] = 2;
        d[27] = 9;
        let e = QueueEvent::parse(0x05, &d).unwrap();
        assert_eq!(e.object(), FaultObject::Sq(9));
        d[20] = 1;
        assert_eq!(
            QueueEvent::parse(0x11, &d).unwrap().object(),
            FaultObject::Rq(9)
        );
        d[20] = 0;
        assert_eq!(QueueEvent::parse(0x05, &d), None, "a QP: not ours");
        assert_eq!(QueueEvent::parse(0x09, &d), None);
        assert_eq!(QueueEvent::parse(0x04, &d[..8]), None, "short");
    }

    #[test]
    fn a_pending_record_is_settled_in_place() {
        let mut log = FaultLog::default();
        let p = log.push(
            FaultRecord::new(FaultClass::SqErr, FaultObject::Sq(1), 0)
                .action(FaultAction::QueueReset, FaultOutcome::Pending),
        );
        log.push(FaultRecord::new(FaultClass::EqStall, FaultObject::Eq(1), 1));
        let done = log.settle(p.action(FaultAction::PortReset, FaultOutcome::Escalate));
        assert_eq!(done.seq, p.seq);
        let kept: alloc::vec::Vec<_> = log.records().map(|r| (r.seq, r.outcome)).collect();
        assert_eq!(
            kept,
            [(1, FaultOutcome::Escalate), (2, FaultOutcome::Reported)]
        );
        assert_eq!(log.count(FaultClass::SqErr), 1, "counted once");
        assert_eq!(log.take_escalation().map(|r| r.seq), Some(1));
        // Pushed out of the ring meanwhile: kept anew, not counted again.
        let mut log = FaultLog::default();
        let p = log.push(FaultRecord::new(FaultClass::RqErr, FaultObject::Rq(1), 0));
        for i in 0..FAULT_RING as u64 {
            log.push(FaultRecord::new(FaultClass::EqStall, FaultObject::Eq(1), i));
        }
        let done = log.settle(p.action(FaultAction::QueueReset, FaultOutcome::Recovered));
        assert_eq!(done.seq, FAULT_RING as u64 + 2);
        assert_eq!(log.count(FaultClass::RqErr), 1);
        assert_eq!(log.last().map(|r| r.outcome), Some(FaultOutcome::Recovered));
    }

    #[test]
    fn escalation_is_taken_once() {
        let mut log = FaultLog::default();
        log.push(
            FaultRecord::new(FaultClass::SqErr, FaultObject::Sq(1), 0)
                .action(FaultAction::FunctionReset, FaultOutcome::Escalate),
        );
        assert!(log.take_escalation().is_some());
        assert!(log.take_escalation().is_none());
    }
}
