//! The ordering rule of the platform contract (`cxos_drivers::platform`),
//! checked on what the driver really does: the driver under test runs on a
//! `mlx5_sim::harness::Recording`, which logs its DMA accesses, barriers
//! and BAR accesses in order, and the checkers of
//! `mlx5_sim::harness::order` hold the log against the rule. Each check
//! returns how many events it looked at; every test asserts that number,
//! so none passes on an empty log.

mod common;

use std::ops::Range;

use cxos_drivers::{Barrier, Mmio, NetDevice};
use mlx5::pd::QuerySpecialContexts;
use mlx5::{Adapter, cq, eq, sq};
use mlx5::{EthConfig, QueueSet, Resources, RqChoice};
use mlx5_sim::Personality;
use mlx5_sim::harness::order::{check_doorbells, check_entry_reads, check_records};
use mlx5_sim::harness::{Mode, OrderLog, Recording, SimPlatform, Step};

use common::{close_port, open_port};

/// A port whose driver runs on a recording platform.
type Recorded = QueueSet<Adapter<Recording>>;

/// Every entry (CQE, EQE, command entry) is 64 bytes with its ownership
/// in byte 0x3f.
const ENTRY: usize = 64;
const OWNER: Range<usize> = 0x3f..0x40;

fn pair() -> (SimPlatform, SimPlatform) {
    SimPlatform::pair(
        Personality::ConnectX6Dx,
        Personality::ConnectX6Dx,
        Mode::Synchronous,
    )
}

fn cfg(interrupts: bool) -> EthConfig {
    EthConfig {
        interrupts,
        ..EthConfig::default()
    }
}

fn open_recorded(sim: &SimPlatform, cfg: EthConfig) -> (Recording, Recorded) {
    let r = Recording::new(sim.clone());
    let a = Adapter::attach(r.clone(), common::config())
        .map_err(|f| f.error)
        .unwrap();
    let res = Resources::of(&a).unwrap();
    let port = QueueSet::open(a, res, cfg).map_err(|f| f.error).unwrap();
    (r, port)
}

fn close_recorded(port: Recorded, sim: &SimPlatform, dma_before: (usize, usize)) {
    let (a, rep) = port.close();
    assert_eq!(rep.errors, 0, "{rep:?}");
    let (_, drep) = a.detach();
    assert_eq!(drep.errors, 0, "{drep:?}");
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    assert!(sim.sanitizer_violations().is_empty());
}

fn send<D: NetDevice>(a: &mut D, dst: [u8; 6], n: usize) {
    for i in 0..n {
        a.transmit(60, |f| {
            f[..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, i as u8]);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
        })
        .unwrap();
    }
    a.flush();
}

fn drain<D: NetDevice>(b: &mut D) -> usize {
    let mut n = 0;
    while b.receive(|_, _| ()).is_some() {
        n += 1;
    }
    b.flush();
    n
}

fn take(r: &Recording) -> Vec<Step> {
    let OrderLog { steps, dropped } = r.take();
    assert_eq!(dropped, 0, "the recording overflowed");
    steps
}

fn cq_ring<P: cxos_drivers::Platform>(c: &cq::Cq<P>) -> Range<u64> {
    c.ring_addr()..c.ring_addr() + (c.entries() * ENTRY) as u64
}

fn within(r: &Range<u64>) -> impl Fn(&Step) -> bool + '_ {
    move |s| matches!(*s, Step::DmaWrite { addr, .. } if r.contains(&addr))
}

#[test]
fn a_batch_of_transmits_writes_wqes_then_the_record_then_the_doorbell() {
    let (sa, sb) = pair();
    let (da, db) = (sa.dma_in_use(), sb.dma_in_use());
    let (ra, mut a) = open_recorded(&sa, cfg(false));
    let mut b = open_port(&sb, cfg(false));
    let sqq = a.sq().unwrap();
    let (ring, dbr) = sqq.ring_addr();
    let ring = ring..ring + (sqq.entries() * ENTRY) as u64;
    let dbr = dbr..dbr + 8;
    let doorbell = a.resources().uar.bar_offset() + sq::UAR_SEND_DOORBELL;

    ra.start();
    send(&mut a, b.mac(), 8);
    let s = take(&ra);

    // Eight frames written in place and eight WQEs (and the completion
    // request of the last), then exactly: barrier, record, barrier, BAR.
    let frames = s
        .iter()
        .filter(|x| matches!(x, Step::Lend { write: true, .. }))
        .count();
    assert_eq!(frames, 8, "{s:?}");
    let wqes = s.iter().filter(|x| within(&ring)(x)).count();
    assert!(wqes >= 8, "{wqes} WQE writes: {s:?}");
    let n = s.len();
    assert!(within(&ring)(&s[n - 5]), "{:?}", &s[n - 5..]);
    assert_eq!(s[n - 4], Step::Barrier(Barrier::BeforeDoorbellRecord));
    assert_eq!(
        s[n - 3],
        Step::DmaWrite {
            addr: dbr.start + 4,
            len: 4
        }
    );
    assert_eq!(s[n - 2], Step::Barrier(Barrier::BeforeMmioDoorbell));
    assert!(matches!(s[n - 1], Step::BarWrite { offset, .. } if offset == doorbell));
    assert_eq!(check_records(&s, dbr.clone()), Ok(1));
    assert_eq!(check_doorbells(&s, doorbell, Some(dbr)), Ok(1));

    assert_eq!(drain(&mut b), 8);
    a.poll();
    close_recorded(a, &sa, da);
    close_port(b, &sb, db);
}

#[test]
fn a_cq_arm_and_an_eq_arm_follow_the_completions_they_give_back() {
    let (sa, sb) = pair();
    let (da, db) = (sa.dma_in_use(), sb.dma_in_use());
    let (ra, mut a) = open_recorded(&sa, cfg(true));
    let mut b = open_port(&sb, cfg(false));
    let res = *a.resources();
    let uar = res.uar.bar_offset();
    let eq_ring = sa.eq_ring(res.eqn.0).expect("the port's completion EQ");
    let txc = a.tx_cq().unwrap();
    let (cq_ring, cq_dbr) = (cq_ring(txc), txc.dbr_addr()..txc.dbr_addr() + 8);
    let armed = txc.armed;

    // The transmit completions raise an event on the armed CQ's EQ; the
    // poll takes the EQE, re-arms the EQ, takes the CQEs and re-arms the CQ.
    send(&mut a, b.mac(), 4);
    ra.start();
    a.poll();
    let s = take(&ra);
    assert_eq!(a.tx_cq().unwrap().armed, armed + 1, "{s:?}");

    let eq_arm = uar + eq::UAR_EQ_ARM;
    let cq_arm = uar + cq::UAR_CQ_ARM;
    assert!(check_entry_reads(&s, eq_ring, ENTRY, OWNER).unwrap() >= 2);
    assert_eq!(check_doorbells(&s, eq_arm, None), Ok(1));
    // One signalled WQE, one CQE: its owner dword, the barrier, then the
    // rest of the entry in one wide read.
    assert!(check_entry_reads(&s, cq_ring, ENTRY, OWNER).unwrap() >= 1);
    // set_ci once for the batch, then set_ci and the arm word of the arm.
    assert_eq!(check_records(&s, cq_dbr.clone()), Ok(3));
    assert_eq!(check_doorbells(&s, cq_arm, Some(cq_dbr.clone())), Ok(1));
    // The arm itself, step by step.
    let i = s
        .iter()
        .position(|x| matches!(x, Step::BarWrite { offset, .. } if *offset == cq_arm))
        .unwrap();
    assert_eq!(
        s[i - 4..i],
        [
            Step::Barrier(Barrier::BeforeDoorbellRecord),
            Step::DmaWrite {
                addr: cq_dbr.start,
                len: 4
            },
            Step::DmaWrite {
                addr: cq_dbr.start + 4,
                len: 4
            },
            Step::Barrier(Barrier::BeforeMmioDoorbell),
        ]
    );
    // And the EQ's: its EQE reads, the barrier, the BAR write.
    let j = s
        .iter()
        .position(|x| matches!(x, Step::BarWrite { offset, .. } if *offset == eq_arm))
        .unwrap();
    assert_eq!(s[j - 1], Step::Barrier(Barrier::BeforeMmioDoorbell));
    assert!(matches!(s[j - 2], Step::DmaRead { .. }), "{:?}", &s[..j]);

    assert_eq!(drain(&mut b), 4);
    close_recorded(a, &sa, da);
    close_port(b, &sb, db);
}

#[test]
fn received_frames_are_read_after_their_cqe_and_reposted_after_a_barrier() {
    let (sa, sb) = pair();
    let (da, db) = (sa.dma_in_use(), sb.dma_in_use());
    let mut a = open_port(&sa, cfg(false));
    // Cyclic: every frame gives its buffer back (a striding WQE would
    // hold all eight).
    let (rb, mut b) = open_recorded(
        &sb,
        EthConfig {
            rq_kind: RqChoice::Cyclic,
            ..cfg(false)
        },
    );
    let rxc = b.rx_cq().unwrap();
    let (cq_ring, cq_dbr) = (cq_ring(rxc), rxc.dbr_addr()..rxc.dbr_addr() + 8);
    let rq_dbr = b.rq().unwrap().ring_addr().1;
    let rq_dbr = rq_dbr..rq_dbr + 4;

    send(&mut a, b.mac(), 8);
    rb.start();
    assert_eq!(drain(&mut b), 8);
    let s = take(&rb);

    assert!(check_entry_reads(&s, cq_ring.clone(), ENTRY, OWNER).unwrap() >= 8);
    // Each frame is lent after the read barrier that followed its CQE's
    // owner read (the CQE: the entry whose body was read last; a run's
    // scan reads the owner bytes of entries ahead).
    let entries = ((cq_ring.end - cq_ring.start) / ENTRY as u64) as usize;
    let mut owner_read = vec![None; entries];
    let (mut body, mut barrier, mut frames) = (None, None, 0);
    for (i, x) in s.iter().enumerate() {
        match *x {
            Step::DmaRead { addr, len } if cq_ring.contains(&addr) => {
                let e = ((addr - cq_ring.start) / ENTRY as u64) as usize;
                let o = ((addr - cq_ring.start) % ENTRY as u64) as usize;
                if o + len > OWNER.start {
                    owner_read[e] = Some(i);
                } else {
                    body = Some(e);
                }
            }
            // A plain view of an entry's body (the per-frame path's run).
            Step::Lend {
                addr, write: false, ..
            } if cq_ring.contains(&addr) => {
                body = Some(((addr - cq_ring.start) / ENTRY as u64) as usize);
            }
            Step::Barrier(Barrier::AfterOwnershipRead) => barrier = Some(i),
            Step::Lend { write: false, .. } => {
                let read = body.and_then(|e| owner_read[e]);
                assert!(barrier > read && read.is_some(), "step {i}: {s:?}");
                frames += 1;
            }
            _ => {}
        }
    }
    assert_eq!(frames, 8);
    // The buffers go back (RQ record) and the CQEs too (set_ci), each
    // after the barrier that orders the frame and CQE reads before it.
    assert_eq!(check_records(&s, rq_dbr), Ok(1));
    assert_eq!(check_records(&s, cq_dbr), Ok(1));

    a.poll();
    close_port(a, &sa, da);
    close_recorded(b, &sb, db);
}

#[test]
fn a_command_hands_its_entry_over_after_a_barrier_and_reads_the_answer_after_one() {
    common::logger();
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let r = Recording::new(sim.clone());
    let mut a = Adapter::attach(r.clone(), common::config())
        .map_err(|f| f.error)
        .unwrap();
    let page =
        ((sim.bar0_read_be32(0x10) as u64) << 32) | (sim.bar0_read_be32(0x14) & !0xfff) as u64;
    let (eqn, _) = a.eq0().unwrap();
    let eq0 = sim.eq_ring(eqn.0).unwrap();
    let eq_arm = a.uar().unwrap().bar_offset() + eq::UAR_EQ_ARM;

    r.start();
    a.exec(&QuerySpecialContexts).unwrap();
    let s = take(&r);

    let slot = s
        .iter()
        .find_map(|x| match *x {
            Step::BarWrite {
                offset: 0x18,
                value,
            } => Some(value.trailing_zeros() as u64),
            _ => None,
        })
        .expect("a command doorbell");
    let own = page + slot * ENTRY as u64 + 0x3f;
    // Entry fields, barrier, ownership byte, barrier, doorbell.
    assert_eq!(check_records(&s, own..own + 1), Ok(1));
    assert_eq!(check_doorbells(&s, 0x18, Some(own..own + 1)), Ok(1));
    // The answer (token, output) is read after the ownership read and
    // its barrier; the completion EQE likewise, and EQ0 is re-armed
    // after it was read.
    assert!(check_entry_reads(&s, page..page + 4096, ENTRY, OWNER).unwrap() >= 2);
    assert!(check_entry_reads(&s, eq0, ENTRY, OWNER).unwrap() >= 2);
    assert!(check_doorbells(&s, eq_arm, None).unwrap() >= 1);
    a.detach();
}
