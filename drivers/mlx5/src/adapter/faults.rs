//! The adapter's fault log ([`crate::fault`]): records, counts, the
//! recovery policy.

use cxos_drivers::Platform;

use super::Adapter;
use crate::fault::{
    FaultLog, FaultObject, FaultPolicy, FaultRecord, QUEUE_EVENTS, QueueEvent, Verdict,
};

impl<P: Platform> Adapter<P> {
    /// The fault log: counts per class and the last records.
    pub fn faults(&self) -> &FaultLog {
        self.dev.fault_log()
    }

    /// Keep, count and print a fault record; returns it numbered and
    /// with the function's address.
    pub fn record_fault(&mut self, mut r: FaultRecord) -> FaultRecord {
        r.pci = self.pci;
        self.dev.record_fault(r)
    }

    /// Settle a pending record with its outcome ([`FaultLog::settle`]).
    pub fn settle_fault(&mut self, mut r: FaultRecord) -> FaultRecord {
        r.pci = self.pci;
        self.dev.settle_fault(r)
    }

    /// May `object` be recovered now (grace period, escalation)?
    pub fn fault_verdict(&mut self, object: FaultObject) -> Verdict {
        // The failed shell a function reset leaves recovers nothing.
        if !self.dev.has_platform() {
            return Verdict::Escalate;
        }
        let now = cxos_drivers::Clock::now_ns(self.platform().clock());
        self.dev.fault_log_mut().verdict(object, now)
    }

    pub fn set_fault_policy(&mut self, policy: FaultPolicy) {
        self.dev.fault_log_mut().policy = policy;
    }

    /// Queue error events (CQ error, WQ errors) naming objects `mine`
    /// accepts.
    pub fn take_queue_events(
        &mut self,
        mine: &dyn Fn(FaultObject) -> bool,
        max: usize,
    ) -> heapless::Vec<QueueEvent, QUEUE_EVENTS> {
        self.dev.take_queue_events(mine, max)
    }

    /// The latest record that asked for escalation (function reset),
    /// once.
    pub fn take_escalation(&mut self) -> Option<FaultRecord> {
        self.dev.fault_log_mut().take_escalation()
    }
}
