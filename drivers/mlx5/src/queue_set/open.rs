//! Opening and closing a queue set: every object is created in PRM order
//! and recorded in [`super::Parts`]; closing (and a failed open) destroys
//! exactly what exists, in reverse.

use alloc::vec::Vec;

use cxos_drivers::DmaAlloc;

use super::{
    CloseReport, Dma, EthConfig, EthStats, L2_OVERHEAD, LSO_BUF_SIZE, OpenFailure, Parts, Plat,
    QueueSet, RqChoice, RxQueue,
};
use crate::control::{Control, Resources};
use crate::cq::{self, Cq, Cqn};
use crate::error::{BadConfig, CmdError, Error, Missing, Unsupported};
use crate::flow::{BROADCAST, Destination};
use crate::q_counter::{self, AllocQCounter};
use crate::rq::{self, CreateRq, ModifyRq, Rq, RqKind};
use crate::rqt::{self, CreateRqt};
use crate::rss::{HASHED_TIRS, RssTirs, TrafficTable};
use crate::sq::{self, CreateSq, ModifySq, Sq, SqConfig};
use crate::steering::{Steering, SteeringConfig};
use crate::tir::{self, CreateTirIndirect, CreateTirSingle, HashedTraffic};
use crate::tis::{self, CreateTis};
use crate::wq::QueueState;

impl<C: Control> QueueSet<C> {
    /// Create the queues, TIS/TIR, Q counter and steering, post every
    /// receive buffer, move SQ and RQ to RDY, arm the CQs (interrupt
    /// mode). On failure everything created is destroyed again.
    pub fn open(ctl: C, res: Resources, cfg: EthConfig) -> Result<Self, OpenFailure<C>> {
        Self::open_with(ctl, res, cfg, true)
    }

    /// [`QueueSet::open`] without steering: queues, TIS/TIR (RQT and
    /// traffic table with RSS) only; nothing reaches the queue set until
    /// someone adds a rule to [`QueueSet::destination`] (a VNIC).
    pub(crate) fn open_queues(
        ctl: C,
        res: Resources,
        cfg: EthConfig,
    ) -> Result<Self, OpenFailure<C>> {
        Self::open_with(ctl, res, cfg, false)
    }

    fn open_with(
        ctl: C,
        res: Resources,
        cfg: EthConfig,
        own_steering: bool,
    ) -> Result<Self, OpenFailure<C>> {
        let frame = cfg.mtu + L2_OVERHEAD;
        let mut port = QueueSet {
            ctl,
            res,
            cfg,
            parts: Parts::default(),
            tx_buf_size: frame.div_ceil(64) * 64,
            rx_next: 0,
            eq_indexes: Vec::new(),
            stats: EthStats::default(),
            last_fault: None,
            watch: Default::default(),
            recoveries: Vec::new(),
            tx_halted: false,
            own_steering,
            loan: Default::default(),
        };
        let built = port.build().and_then(|()| port.claim_cqs());
        match built {
            Ok(()) => {
                if let Some(q) = port.rings().sq {
                    log::info!(
                        target: "mlx5::dp",
                        "mlx5: data path up: sq {:#x} cq {:#x} eq {} entries {} pc {} cc {} in_flight {} free_bufs {} inline {:?} doorbells {}",
                        q.sqn.0,
                        q.cqn.0,
                        q.eqn.0,
                        q.entries,
                        q.pc,
                        q.cc,
                        q.in_flight,
                        q.free_bufs,
                        q.inline,
                        q.doorbells
                    );
                }
                Ok(port)
            }
            Err(error) => {
                log::error!(target: "mlx5::dp", "mlx5: data path open failed: {error}");
                let _ = port.teardown();
                Err(OpenFailure {
                    error,
                    control: port.ctl,
                })
            }
        }
    }

    /// A CREATE that failed: memory the device may have seen (timeout) is
    /// retired, the rest dropped.
    fn failed_create(&mut self, e: CmdError, mem: impl IntoIterator<Item = Dma<C>>) -> Error {
        if matches!(e.failure, crate::error::CmdFailure::Timeout { .. }) {
            for m in mem {
                self.ctl.retire(m);
            }
        }
        e.into()
    }

    fn build(&mut self) -> Result<(), Error> {
        // The EQ may have been recreated (a stall) since `res` was taken.
        if let Some(eqn) = self.ctl.comp_eqn(self.res.eq_index) {
            self.res.eqn = eqn;
        }
        let r = self.res;
        let cfg = self.cfg;
        if cfg.mtu < 68 || cfg.mtu + L2_OVERHEAD > sq::MAX_FRAME {
            return Err(BadConfig::Mtu(cfg.mtu).into());
        }
        if !(1..=15).contains(&cfg.log_sq) {
            return Err(BadConfig::LogSq(cfg.log_sq).into());
        }
        if !(1..=15).contains(&cfg.log_rq) {
            return Err(BadConfig::LogRq(cfg.log_rq).into());
        }
        let qc = self.ctl.exec(&AllocQCounter)?;
        self.parts.qc = Some(qc);

        // As many CQEs as WQEs: a CQ never overflows. Receive queue i
        // completes on completion EQ (queue set + i) mod the EQ count.
        let n_rx = self.rx_queue_target();
        let n_eqs = self.ctl.comp_eq_count().max(1);
        self.parts.rx = Vec::with_capacity(n_rx);
        self.eq_indexes = Vec::with_capacity(n_eqs.min(n_rx) + 1);
        self.eq_indexes.push(r.eq_index);
        for i in 0..=n_rx {
            let rx = i > 0;
            let log = if rx {
                self.rx_geometry().cq_log
            } else {
                cfg.log_sq
            };
            let (eq_index, eqn) = if rx && n_rx > 1 {
                let k = (r.eq_index + i - 1) % n_eqs;
                match self.ctl.comp_eqn(k) {
                    Some(e) => (k, e),
                    None => (r.eq_index, r.eqn),
                }
            } else {
                (r.eq_index, r.eqn)
            };
            if !self.eq_indexes.contains(&eq_index) {
                self.eq_indexes.push(eq_index);
            }
            let ring = cq::alloc_ring(self.ctl.dma(), log)?;
            let mut cmd = Cq::<Plat<C>>::create_cmd(&ring, log, r.uar, eqn);
            if rx {
                cmd.compression = rx_compression(&cfg, self.res.caps.cqe_compression);
                cmd.moderation = rx_moderation(&cfg, &self.res.caps);
            } else {
                cmd.moderation = moderation(cfg.tx_cq_moderation, &self.res.caps);
            }
            let cqn = match self.ctl.exec(&cmd) {
                Ok(c) => c,
                Err(e) => return Err(self.failed_create(e, [ring.mem])),
            };
            let mut cq = Cq::new(cqn, eqn, ring, log, r.uar, self.ctl.mmio().clone());
            self.set_cq_format(&mut cq, rx);
            if rx {
                self.parts.rx.push(RxQueue {
                    cq,
                    rq: None,
                    uncommitted: 0,
                    event: false,
                    halted: false,
                });
            } else {
                self.parts.tx_cq = Some(cq);
            }
        }

        let tis = self.ctl.exec(&CreateTis {
            td: r.td,
            pd: r.pd,
            prio: 0,
        })?;
        self.parts.tis = Some(tis);

        let n_tx = 1usize << cfg.log_sq;
        let tx_bufs = self.ctl.dma().dma_alloc(n_tx * self.tx_buf_size)?;
        self.parts.tx_bufs = Some(tx_bufs);
        let ring = Sq::<Plat<C>>::alloc_ring(self.ctl.dma(), cfg.log_sq)?;
        let tx_cqn = self.parts.tx_cq.as_ref().map(|c| c.cqn).unwrap_or(Cqn(0));
        let cmd = CreateSq {
            cqn: tx_cqn,
            tisn: tis,
            pd: r.pd,
            uar: r.uar,
            dbr_addr: ring.dbr_addr(),
            log_size: cfg.log_sq,
            inline: r.inline,
            allow_mpw: self.res.caps.mpw,
            pages: ring.pages(),
        };
        let sqn = match self.ctl.exec(&cmd) {
            Ok(s) => s,
            Err(e) => return Err(self.failed_create(e, [ring.mem])),
        };
        let lso_bufs = if self.lso_max() > 0 { cfg.lso_bufs } else { 0 };
        self.parts.sq = Some(Sq::new(
            sqn,
            ring,
            cfg.log_sq,
            SqConfig {
                uar: r.uar,
                inline: r.inline,
                cq_every: cfg.cq_every,
                lkey: r.lkey,
                bufs: n_tx as u16,
                lso_bufs: lso_bufs as u16,
                empw: self.sq_empw(),
                legacy_mpw: self.sq_legacy_mpw(),
                bf: self.sq_bf(),
            },
            self.ctl.mmio().clone(),
        ));
        self.ctl.exec(&ModifySq {
            sqn,
            from: QueueState::Rst,
            to: QueueState::Rdy,
        })?;
        if lso_bufs > 0 {
            let n = lso_bufs as usize;
            self.parts.lso_bufs = Some(self.ctl.dma().dma_alloc(n * LSO_BUF_SIZE)?);
        }

        let mut rqns = Vec::with_capacity(n_rx);
        let geo = self.rx_geometry();
        if geo.kind == RqKind::Cyclic && cfg.rq_kind == RqChoice::Striding {
            return Err(Unsupported::StridingRq.into());
        }
        for i in 0..n_rx {
            let (ring, bufs, buf_size) =
                Rq::<Plat<C>>::alloc(self.ctl.dma(), geo.log_wqes, geo.buf_size)?;
            let cmd = CreateRq {
                cqn: self.parts.rx[i].cq.cqn,
                pd: r.pd,
                dbr_addr: ring.dbr_addr(),
                log_size: geo.log_wqes,
                counter_set_id: qc.0,
                vlan_strip: self.vlan_strip(),
                kind: geo.kind,
                pages: ring.pages(),
            };
            let rqn = match self.ctl.exec(&cmd) {
                Ok(q) => q,
                Err(e) => return Err(self.failed_create(e, [ring.mem, bufs])),
            };
            // Every WQE written and posted before the RQ becomes ready.
            let mut rq = Rq::new(
                rqn,
                ring,
                bufs,
                buf_size,
                geo.log_wqes,
                r.lkey,
                self.ctl.mmio().clone(),
            );
            if let RqKind::Striding {
                log_strides,
                log_stride,
            } = geo.kind
            {
                rq = rq.striding(log_strides, log_stride);
            }
            self.parts.rx[i].rq = Some(rq);
            self.ctl.exec(&ModifyRq {
                rqn,
                from: QueueState::Rst,
                to: QueueState::Rdy,
            })?;
            rqns.push(rqn);
        }

        let tir_rqt = self.ctl.exec(&CreateRqt {
            rqns: alloc::vec![rqns[0]],
        })?;
        self.parts.tir_rqt = Some(tir_rqt);
        let tir = self.ctl.exec(&CreateTirSingle {
            rqt: tir_rqt,
            td: r.td,
        })?;
        self.parts.tir = Some(tir);
        let mut to = Destination::Tir(tir);
        if n_rx > 1 {
            let rqt = self.ctl.exec(&CreateRqt { rqns })?;
            self.parts.rqt = Some(rqt);
            let mut tirs = [tir; HASHED_TIRS];
            // (IPv6, UDP / TCP / neither) per indirect TIR, in RssTirs order.
            let hashed: [(bool, Option<bool>); HASHED_TIRS] = [
                (false, Some(false)),
                (false, Some(true)),
                (true, Some(false)),
                (true, Some(true)),
                (false, None),
                (true, None),
            ];
            for (k, (ipv6, udp)) in hashed.into_iter().enumerate() {
                let t = self.ctl.exec(&CreateTirIndirect {
                    rqt,
                    td: r.td,
                    key: cfg.rss_key,
                    traffic: HashedTraffic { ipv6, udp },
                })?;
                // One per hashed traffic type: room for each.
                let _ = self.parts.rss.push(t);
                tirs[k] = t;
            }
            let tt = TrafficTable::create(
                &mut self.ctl,
                &RssTirs {
                    ipv4_tcp: tirs[0],
                    ipv4_udp: tirs[1],
                    ipv6_tcp: tirs[2],
                    ipv6_udp: tirs[3],
                    ipv4: tirs[4],
                    ipv6: tirs[5],
                    other: tir,
                },
            )?;
            to = Destination::Table(tt.table);
            self.parts.traffic = Some(tt);
        }

        if self.own_steering {
            let scfg = SteeringConfig {
                log_root: cfg.flow_log_size,
                log_vlan: cfg.vlan_log_size,
            };
            let mut steering = Steering::create(&mut self.ctl, scfg)?;
            for mac in [r.mac, BROADCAST] {
                if let Err(e) = steering.add_rule(&mut self.ctl, mac, None, to) {
                    let _ = steering.destroy(&mut self.ctl);
                    return Err(e.into());
                }
            }
            self.parts.steering = Some(steering);
        }

        if cfg.interrupts {
            if let Some(cq) = self.parts.tx_cq.as_mut() {
                cq.arm();
            }
            for q in self.parts.rx.iter_mut() {
                q.cq.arm();
            }
        }
        Ok(())
    }

    /// The queue set's CQs, each with the completion EQ it reports to.
    fn cqs_by_eq(&self) -> Vec<(Cqn, crate::eq::Eqn)> {
        let mut v: Vec<_> = self.parts.tx_cq.iter().map(|c| (c.cqn, c.eqn)).collect();
        v.extend(self.parts.rx.iter().map(|q| (q.cq.cqn, q.cq.eqn)));
        v
    }

    /// A queue set that owns the adapter claims its CQs' events on the
    /// shared completion EQs, so events naming any other CQ are counted
    /// and dropped there (a VNIC's are claimed by [`crate::vnic::Nic`]).
    fn claim_cqs(&mut self) -> Result<(), Error> {
        if !self.own_steering {
            return Ok(());
        }
        let cqs = self.cqs_by_eq();
        for &idx in &self.eq_indexes {
            let Some(eq) = self.ctl.shared_comp_eq(idx) else {
                continue;
            };
            let mine: Vec<Cqn> = cqs
                .iter()
                .filter(|(_, e)| *e == eq.eqn())
                .map(|(c, _)| *c)
                .collect();
            eq.claim(&mine)
                .map_err(|full| Missing::CompEqRoom(full.0))?;
        }
        Ok(())
    }

    /// Undo whatever exists, in reverse order of creation. Memory of a
    /// queue whose DESTROY failed is retired, not freed.
    pub(crate) fn teardown(&mut self) -> CloseReport {
        let mut rep = CloseReport::default();
        self.finish_queries();
        self.finish_recoveries();
        if self.own_steering {
            let cqs: Vec<Cqn> = self.cqs_by_eq().into_iter().map(|(c, _)| c).collect();
            for &idx in &self.eq_indexes {
                if let Some(eq) = self.ctl.shared_comp_eq(idx) {
                    eq.forget(&cqs);
                }
            }
        }
        fn note(rep: &mut CloseReport, r: Result<(), CmdError>) -> bool {
            match r {
                Ok(()) => true,
                Err(e) => {
                    rep.errors += 1;
                    rep.first_error.get_or_insert(e);
                    false
                }
            }
        }
        if let Some(st) = self.parts.steering.take() {
            let r = st.destroy(&mut self.ctl);
            note(&mut rep, r);
        }
        if let Some(t) = self.parts.traffic.take() {
            let r = t.destroy(&mut self.ctl);
            note(&mut rep, r);
        }
        while let Some(t) = self.parts.rss.pop() {
            let r = self.ctl.exec(&tir::destroy_tir(t));
            note(&mut rep, r);
        }
        if let Some(t) = self.parts.tir.take() {
            let r = self.ctl.exec(&tir::destroy_tir(t));
            note(&mut rep, r);
        }
        for t in [self.parts.rqt.take(), self.parts.tir_rqt.take()]
            .into_iter()
            .flatten()
        {
            let r = self.ctl.exec(&rqt::destroy_rqt(t));
            note(&mut rep, r);
        }
        for i in (0..self.parts.rx.len()).rev() {
            if let Some(q) = self.parts.rx[i].rq.take() {
                let r = self.ctl.exec(&rq::destroy_rq(q.rqn));
                if !note(&mut rep, r) {
                    let (ring, bufs) = q.into_parts();
                    self.ctl.retire(ring.mem);
                    self.ctl.retire(bufs);
                }
            }
        }
        let mut sq_gone = true;
        if let Some(q) = self.parts.sq.take() {
            let r = self.ctl.exec(&sq::destroy_sq(q.sqn));
            if !note(&mut rep, r) {
                sq_gone = false;
                self.ctl.retire(q.into_ring().mem);
            }
        }
        for b in [self.parts.tx_bufs.take(), self.parts.lso_bufs.take()]
            .into_iter()
            .flatten()
        {
            if !sq_gone {
                self.ctl.retire(b);
            }
        }
        if let Some(t) = self.parts.tis.take() {
            let r = self.ctl.exec(&tis::destroy_tis(t));
            note(&mut rep, r);
        }
        let mut cqs: Vec<Cq<Plat<C>>> = Vec::new();
        while let Some(q) = self.parts.rx.pop() {
            cqs.push(q.cq);
        }
        cqs.extend(self.parts.tx_cq.take());
        for cq in cqs {
            let r = self.ctl.exec(&cq::destroy_cq(cq.cqn));
            if !note(&mut rep, r) {
                self.ctl.retire(cq.into_ring().mem);
            }
        }
        if let Some(q) = self.parts.qc.take() {
            let r = self.ctl.exec(&q_counter::dealloc_q_counter(q));
            note(&mut rep, r);
        }
        rep
    }

    /// Destroy the data path and hand the adapter back.
    pub fn close(mut self) -> (C, CloseReport) {
        let rep = self.teardown();
        if rep.errors > 0 {
            log::warn!(target: "mlx5::dp", "mlx5: data path closed with {} errors", rep.errors);
        }
        (self.ctl, rep)
    }
}

/// The `mini_cqe_res_format` a receive CQ asks (`cqe_comp_en`), if it
/// compresses: the option on and the part able.
pub(super) fn rx_compression(cfg: &EthConfig, capable: bool) -> Option<u8> {
    (cfg.cqe_compression && capable).then_some(if cfg.cqe_compression_hash {
        cq::mini_cqe::RES_HASH
    } else {
        cq::mini_cqe::RES_CSUM
    })
}

/// The event moderation a receive CQ asks: the option set and the part
/// able (`cq_moderation`); the period from the first CQE where the part
/// offers it (`cq_period_start_from_cqe`), else from the last event.
pub(super) fn rx_moderation(
    cfg: &EthConfig,
    caps: &crate::control::DataPathCaps,
) -> Option<cq::Moderation> {
    moderation(cfg.cq_moderation, caps)
}

/// The event moderation a CQ asks for `m` (`cq_moderation` for receive
/// CQs, `tx_cq_moderation` for the transmit CQ), as [`rx_moderation`].
pub(super) fn moderation(
    m: Option<(u16, u16)>,
    caps: &crate::control::DataPathCaps,
) -> Option<cq::Moderation> {
    let (period_us, max_count) = m.filter(|&(p, n)| p != 0 || n != 0)?;
    if !caps.cq_moderation {
        log::warn!(target: "mlx5::dp", "mlx5: no cq_moderation capability: an event per completion");
        return None;
    }
    Some(cq::Moderation {
        period_us: period_us.min(cq::MAX_CQ_PERIOD),
        max_count,
        from_cqe: caps.cq_period_from_cqe,
    })
}

impl<C: Control> QueueSet<C> {
    /// Tell a CQ whether it compresses (a receive CQ with the option, on
    /// a part able), how its sessions' completions continue and what
    /// their mini-CQEs carry (at open and when it is recreated).
    pub(super) fn set_cq_format(&self, cq: &mut Cq<Plat<C>>, rx: bool) {
        let format = rx_compression(&self.cfg, self.res.caps.cqe_compression).filter(|_| rx);
        cq.set_compressing(format.is_some());
        cq.set_striding(!matches!(self.rx_geometry().kind, RqKind::Cyclic));
        cq.set_mini_format(format.unwrap_or(cq::mini_cqe::RES_CSUM));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::steering::MacTarget;

    #[test]
    fn open_and_close_run_the_prm_sequence_and_free_everything() {
        let port = QueueSet::open(MockCtl::new(), res(), cfg(false)).unwrap();
        assert_eq!(port.control().ex.opcodes(), OPEN_SEQUENCE);
        let ex = &port.control().ex;
        // The RQ names the Q counter (id 1: the first object created).
        assert_eq!(ex.inputs(op::CREATE_RQ)[0][0x2c], 1);
        // The SQ goes through the TIS (id 4) and completes on CQ 2.
        let sq_in = ex.inputs(op::CREATE_SQ)[0];
        assert_eq!(&sq_in[0x28..0x2c], &[0, 0, 0, 2]);
        assert_eq!(&sq_in[0x4c..0x50], &[0, 0, 0, 4]);
        // Both flow entries forward to the TIR (id 10, after its RQT 9) and count: the port
        // MAC, then broadcast.
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        assert_eq!(&ftes[0][0x88..0x8e], &MAC.0);
        assert_eq!(&ftes[1][0x88..0x8e], &[0xff; 6]);
        for f in &ftes {
            assert_eq!(&f[0x340..0x344], &[0x02, 0, 0, 10]);
            assert_eq!(&f[0x4c..0x50], &[0, 0, 0, 0x0c]);
        }
        // The vport's unicast list gets the port MAC (the multicast list
        // is cleared: broadcast needs no entry).
        let lists = ex.inputs(op::MODIFY_NIC_VPORT_CONTEXT);
        assert_eq!(&lists[0][0x1f0..0x1f4], &[0, 0, 0, 1]);
        assert_eq!(&lists[0][0x202..0x208], &MAC.0);
        // Every receive buffer posted before RDY.
        assert_eq!(port.rq().unwrap().posted(), 8);
        assert_eq!(port.tx_free(), 8);
        // The steering report: the port MAC's entry forwards to TIR 10.
        let rings = port.rings();
        let st = rings.steering.as_ref().unwrap();
        assert!(
            st.macs.iter().any(|m| m.mac == MAC
                && matches!(&m.target, MacTarget::Direct(r)
                    if r.dests == [Destination::Tir(crate::tir::Tirn(10))])),
            "{rings:?}"
        );
        let (ctl, rep) = port.close();
        assert_eq!(rep, CloseReport::default());
        let closing: Vec<u16> = ctl.ex.opcodes()[OPEN_SEQUENCE.len()..].to_vec();
        assert_eq!(
            closing,
            [
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DEALLOC_FLOW_COUNTER,
                op::DELETE_FLOW_TABLE_ENTRY,
                op::DEALLOC_FLOW_COUNTER,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_GROUP,
                op::DESTROY_FLOW_TABLE,
                op::MODIFY_NIC_VPORT_CONTEXT,
                op::DESTROY_TIR,
                op::DESTROY_RQT,
                op::DESTROY_RQ,
                op::DESTROY_SQ,
                op::DESTROY_TIS,
                op::DESTROY_CQ,
                op::DESTROY_CQ,
                op::DEALLOC_Q_COUNTER
            ]
        );
        assert_eq!(ctl.p.live_regions(), 0);
    }

    #[test]
    fn rss_open_builds_rqt_indirect_tirs_and_the_traffic_table() {
        let c = EthConfig {
            rss_queues: 4,
            ..cfg(false)
        };
        let port = QueueSet::open(MockCtl::new(), res(), c).unwrap();
        assert_eq!(port.rx_queues(), 4);
        let ex = &port.control().ex;
        assert_eq!(ex.inputs(op::CREATE_RQ).len(), 4);
        // CQs: the SQ's and one per receive queue.
        assert_eq!(ex.inputs(op::CREATE_CQ).len(), 5);
        // The RSS RQT (after queue 0's one-entry table) lists the four RQs
        // in queue order (rq_num list at 0x110).
        assert_eq!(ex.inputs(op::CREATE_RQT)[0][0x38..0x3c], [0, 0, 0, 1]);
        let rqt = ex.inputs(op::CREATE_RQT)[1];
        assert_eq!(&rqt[0x38..0x3c], &[0, 0, 0, 4]);
        for i in 0..4 {
            let rqn = port.rq_at(i).unwrap().rqn.0;
            assert_eq!(&rqt[0x110 + 4 * i..0x114 + 4 * i], &rqn.to_be_bytes());
        }
        // The dispatch TIR and six hashing TIRs with the configured key.
        let tirs = ex.inputs(op::CREATE_TIR);
        assert_eq!(tirs.len(), 7);
        for t in &tirs[1..] {
            assert_eq!(t[0x24] >> 4, 1, "indirect");
            assert_eq!(&t[0x48..0x70], &crate::rss::DEFAULT_KEY);
        }
        // The traffic-type table is level 3; the queue set's root entries
        // forward to it (destination type 1).
        let tables = ex.inputs(op::CREATE_FLOW_TABLE);
        assert_eq!(tables[0][0x19], 3);
        let tt = port.destination().unwrap();
        assert!(matches!(tt, Destination::Table(_)));
        let ftes = ex.inputs(op::SET_FLOW_TABLE_ENTRY);
        // 7 traffic-type entries, then the MAC and broadcast.
        assert_eq!(ftes.len(), 9);
        assert_eq!(ftes[7][0x340], 0x01);
        assert_eq!(ftes[8][0x340], 0x01);
        let (ctl, rep) = port.close();
        assert_eq!(rep, CloseReport::default());
        let count = |o: u16| ctl.ex.opcodes().iter().filter(|&&x| x == o).count();
        assert_eq!(count(op::CREATE_TIR), count(op::DESTROY_TIR));
        assert_eq!(count(op::CREATE_RQ), count(op::DESTROY_RQ));
        assert_eq!(count(op::CREATE_CQ), count(op::DESTROY_CQ));
        assert_eq!(count(op::CREATE_RQT), count(op::DESTROY_RQT));
        assert_eq!(count(op::CREATE_FLOW_TABLE), count(op::DESTROY_FLOW_TABLE));
        assert_eq!(count(op::CREATE_FLOW_GROUP), count(op::DESTROY_FLOW_GROUP));
        assert_eq!(ctl.p.live_regions(), 0);
    }

    #[test]
    fn a_failure_at_any_step_undoes_exactly_what_was_done() {
        let undo = |o: u16| match o {
            op::ALLOC_Q_COUNTER => Some(op::DEALLOC_Q_COUNTER),
            op::CREATE_CQ => Some(op::DESTROY_CQ),
            op::CREATE_TIS => Some(op::DESTROY_TIS),
            op::CREATE_SQ => Some(op::DESTROY_SQ),
            op::CREATE_RQ => Some(op::DESTROY_RQ),
            op::CREATE_TIR => Some(op::DESTROY_TIR),
            op::CREATE_FLOW_TABLE => Some(op::DESTROY_FLOW_TABLE),
            op::CREATE_FLOW_GROUP => Some(op::DESTROY_FLOW_GROUP),
            op::ALLOC_FLOW_COUNTER => Some(op::DEALLOC_FLOW_COUNTER),
            _ => None,
        };
        for failing in OPEN_SEQUENCE {
            let mut ctl = MockCtl::new();
            ctl.ex.fail_opcode = Some(failing);
            let f = QueueSet::open(ctl, res(), cfg(true)).unwrap_err();
            assert_eq!(f.error.command().map(|c| c.opcode), Some(failing));
            let ops = f.control.ex.opcodes();
            let stop = ops.iter().position(|&o| o == failing).unwrap();
            for created in ops[..stop].iter().filter_map(|&o| undo(o)) {
                let made = ops[..stop]
                    .iter()
                    .filter(|&&o| undo(o) == Some(created))
                    .count();
                let undone = ops[stop..].iter().filter(|&&o| o == created).count();
                assert_eq!(made, undone, "{created:#x} after failing {failing:#x}");
            }
            assert_eq!(f.control.p.live_regions(), 0, "failing {failing:#x}");
        }
    }
}
