//! What the shell's `rings` and `stats` show of a queue set.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::QueueSet;
use crate::control::Control;

impl<C: Control> QueueSet<C> {
    /// The shell's `rings`: one line per queue.
    pub fn rings(&self) -> String {
        let mut s = String::new();
        if let (Some(q), Some(c)) = (self.parts.sq.as_ref(), self.parts.tx_cq.as_ref()) {
            let _ = writeln!(
                s,
                "sq {:#x} cq {:#x} eq {} entries {} pc {} cc {} in_flight {} free_bufs {} inline {:?} doorbells {}",
                q.sqn.0,
                c.cqn.0,
                c.eqn.0,
                q.entries(),
                q.producer_counter(),
                q.consumer_counter(),
                q.in_flight(),
                self.tx_free.len(),
                q.inline_mode(),
                q.stats.doorbells
            );
        }
        for (i, x) in self.parts.rx.iter().enumerate() {
            let (Some(q), c) = (x.rq.as_ref(), &x.cq) else {
                continue;
            };
            let _ = writeln!(
                s,
                "rq{i} {:#x} cq {:#x} eq {} entries {} buf {} posted {} cq_ci {} packets {} tir {:?} qcounter {:?}",
                q.rqn.0,
                c.cqn.0,
                c.eqn.0,
                q.entries(),
                q.buf_size(),
                q.posted(),
                c.consumer_index(),
                q.stats.packets,
                self.parts.tir.map(|t| t.0),
                self.parts.qc.map(|q| q.0)
            );
        }
        if let Some(rqt) = self.parts.rqt {
            let _ = writeln!(
                s,
                "rss: rqt {} over {} queues, indirect tirs {:?}, traffic table {:?}",
                rqt.0,
                self.parts.rx.len(),
                self.parts.rss.iter().map(|t| t.0).collect::<Vec<_>>(),
                self.parts.traffic.as_ref().map(|t| t.table.0)
            );
        }
        if let Some(st) = self.parts.steering.as_ref() {
            s.push_str(&st.report());
        }
        s
    }

    /// The shell's `stats`: per-queue counters, Q counter drops, faults.
    pub fn stats_report(&self) -> String {
        let mut s = String::new();
        if let Some(q) = self.parts.sq.as_ref() {
            let t = q.stats;
            let _ = writeln!(
                s,
                "tx: packets {} bytes {} doorbells {} completions {} busy {} errors {} recoveries {}",
                t.packets,
                t.bytes,
                t.doorbells,
                t.completions,
                self.stats.tx_busy,
                t.errors,
                t.recoveries
            );
        }
        if !self.parts.rx.is_empty() {
            let r = self.rx_stats();
            let _ = writeln!(
                s,
                "rx: packets {} bytes {} no_buffer_drops {} length_errors {} errors {} recoveries {}",
                r.packets,
                r.bytes,
                self.stats.rx_no_buffer,
                self.stats.rx_length_errors,
                r.errors,
                r.recoveries
            );
        }
        let t = self.parts.sq.as_ref().map(|q| q.stats).unwrap_or_default();
        let r = self.rx_stats();
        let _ = writeln!(
            s,
            "offloads: tx csum {} vlan {} lso {}; rx csum_ok {} csum_bad {} vlan_stripped {}; striding fillers {} wqes {}",
            t.csum,
            t.vlan_insert,
            t.lso,
            self.stats.rx_csum_ok,
            self.stats.rx_csum_bad,
            self.stats.rx_vlan_stripped,
            r.fillers,
            r.wqes_done
        );
        let _ = writeln!(
            s,
            "faults {} recovered {} not recovered {}",
            self.stats.faults, self.stats.recoveries, self.stats.failed_recoveries
        );
        if let Some(f) = self.last_fault {
            let _ = writeln!(s, "last fault: {f}");
        }
        s
    }
}
