//! Receive spreading (issue 21) against the model: an RSS VNIC with two
//! receive queues on queue set 0 lends its second one to a receive helper
//! on queue set 1 ([`Nic::create_rx_helper`], [`Vnic::spread_rx`]). The
//! model's RQT then lists the VNIC's queue 0 and the helper's queue; every
//! flow whose Toeplitz hash picks entry 1 reaches the helper, every other
//! one the VNIC itself, each frame exactly once; what the helper received
//! and passed on comes out of the VNIC's own `receive` after its own
//! frames ([`Vnic::set_inbox`]); the VNIC's destroy takes the helper with
//! it and every DMA byte is back.

mod common;

use std::collections::VecDeque;

use common::pkt::{self, KINDS};
use cxos_drivers::{NetDevice, RxMeta};
use mlx5::Mac;
use mlx5::vnic::{RxInbox, Vnic, VnicSpec};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

type A = mlx5::Adapter<SimPlatform>;

const FLOWS: u32 = 64;

/// Flow `i` to `dst`: a TCP/IPv4 frame whose addresses and ports vary
/// with `i`, its sequence number in the IPv4 identification field.
fn flow(dst: Mac, i: u32) -> Vec<u8> {
    let kind = KINDS[0];
    let mut f = pkt::build(kind, dst.0, [2, 0, 0, 0, 0, 0x42], 40, i, false);
    let ip = 14;
    f[ip + 4..ip + 6].copy_from_slice(&(i as u16).to_be_bytes());
    f[ip + 12 + 3] = i as u8;
    f[ip + 16 + 2] = (i >> 2) as u8;
    let tp = ip + kind.l3_len();
    f[tp..tp + 2].copy_from_slice(&(1000 + 7 * i as u16).to_be_bytes());
    pkt::fix_csums(&mut f, kind);
    f
}

fn seq_of(f: &[u8]) -> u32 {
    u32::from(u16::from_be_bytes([f[18], f[19]]))
}

/// What the kernel's hand-off ring does for the test: frames the helper
/// received, in order; the helper goes with it.
struct Inbox {
    frames: VecDeque<(Vec<u8>, RxMeta)>,
    helper: Option<Vnic<A>>,
}

impl RxInbox for Inbox {
    fn take(&mut self, f: &mut dyn FnMut(&[u8], RxMeta)) -> bool {
        match self.frames.pop_front() {
            Some((b, m)) => {
                f(&b, m);
                true
            }
            None => false,
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        if let Some(h) = self.helper.take() {
            assert_eq!(h.destroy().errors, 0);
        }
    }
}

#[test]
fn a_helper_on_another_queue_set_takes_the_flows_its_rqt_entry_hashes_to() {
    common::logger();
    let sim = SimPlatform::new_loopback(Personality::ConnectX5, Mode::Synchronous);
    let dma_before = sim.dma_in_use();
    let nic = common::nic(&sim, false);
    assert!(nic.queue_sets() >= 2);
    let mut main = nic
        .create_on(
            VnicSpec {
                queues: 2,
                ..VnicSpec::default()
            },
            0,
        )
        .unwrap();
    let mut helper = nic.create_rx_helper(&main, 1).unwrap();
    assert!(helper.is_rx_helper() && !main.is_rx_helper());
    assert_eq!(helper.queue_set().eq_indexes(), [1], "the helper's EQ");
    assert_eq!(nic.count(), 1, "a helper is not a VNIC of its own");
    let h_rqn = helper.helper_rqn().unwrap();
    main.spread_rx(&[h_rqn]).unwrap();
    let rqt = main.queue_set().rqt().unwrap();
    let own0 = main.queue_set().rq_at(0).unwrap().rqn;
    assert_eq!(sim.rqt(rqt.0), Some(vec![own0.0, h_rqn.0]));
    // Too many helpers for the table: refused, nothing changed.
    assert!(main.spread_rx(&[h_rqn, h_rqn]).is_err());

    let dst = main.mac();
    let (mut at_main, mut at_helper) = (Vec::new(), Vec::new());
    for i in 0..FLOWS {
        let f = flow(dst, i);
        main.transmit(f.len(), |b| b.copy_from_slice(&f)).unwrap();
        main.flush();
        assert!(common::eventually(|| {
            main.poll();
            helper.poll();
            let n = at_main.len() + at_helper.len();
            while let Some(x) = main.receive(|b, m| (seq_of(b), m.rss_hash)) {
                at_main.push(x);
            }
            while let Some(x) = helper.receive(|b, m| (b.to_vec(), m)) {
                at_helper.push(x);
            }
            main.flush();
            helper.flush();
            at_main.len() + at_helper.len() > n
        }));
    }
    assert_eq!(at_main.len() + at_helper.len(), FLOWS as usize);
    assert!(
        !at_main.is_empty() && !at_helper.is_empty(),
        "both queues take flows"
    );
    for (seq, hash) in &at_main {
        assert_eq!(hash % 2, 0, "flow {seq} hashed to entry 1 reached queue 0");
    }
    for (b, m) in &at_helper {
        assert_eq!(
            m.rss_hash % 2,
            1,
            "flow {} hashed to entry 0 reached the helper",
            seq_of(b)
        );
    }
    // The helper's frames come out of the VNIC after its own.
    let handed: Vec<u32> = at_helper.iter().map(|(b, _)| seq_of(b)).collect();
    main.set_inbox(Some(Box::new(Inbox {
        frames: at_helper.into_iter().collect(),
        helper: Some(helper),
    })));
    let mut taken = Vec::new();
    while let Some(s) = main.receive(|b, _| seq_of(b)) {
        taken.push(s);
    }
    assert_eq!(taken, handed);
    let mut all: Vec<u32> = at_main.iter().map(|(s, _)| *s).chain(taken).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..FLOWS).collect::<Vec<_>>(),
        "each frame exactly once"
    );

    assert_eq!(main.destroy().errors, 0);
    let (a, rep) = nic.close().expect("the helper went with its VNIC");
    assert_eq!(rep.errors, 0, "{rep:?}");
    let (_, drep) = a.detach();
    assert_eq!(drep.errors, 0, "{drep:?}");
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}
