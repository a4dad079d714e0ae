//! The aggregation device (`cxos_net::aggr::Aggr`) under a fast-flapping
//! member and a partner that changes (issue 19, hosted, no model): three
//! aggregations on an in-memory cable plant, a simulated clock. A has
//! two members; A1 is cabled to B1 for good, A0's cable goes to B0 or to
//! C0 (another system, another key) and its link flaps every few ticks.
//! Throughout: a member distributes only with its link up and a partner
//! that agrees (the partner it aggregates with, in sync); a member whose
//! link drops leaves in the same poll; every client frame leaves on a
//! distributing member, and one flow stays on one member while the set
//! of distributing members is unchanged; memory stays flat. Afterwards
//! A0 rejoins B as soon as its cable is back for good. A Marker sent to
//! an aggregation is answered on the member it came in on. The plant,
//! clock and frames are `common/plant.rs`, shared with `aggr_flap_both.rs`.
//!
//! One test in this file: it counts the heap bytes the process holds
//! (`CountingAlloc`), which another test running alongside would disturb.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::plant::{
    A0, A1, B0, B1, Clock, MAC_A, MAC_B, Plant, PlantDev, Stepped, XorShift, aggr,
    all_distributing, check_member, udp_frame,
};
use cxos_drivers::NetDevice;
use cxos_net::aggr::Aggr;
use cxos_net::lacp::wire::{self, FRAME_LEN, MarkerKind, MarkerRepr, SlowFrame, SlowPdu};
use cxos_net::smoltcp::wire::EthernetAddress;
use mlx5_sim::harness::{CountingAlloc, live_bytes};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0];
const C0: usize = 4;

struct World {
    plant: Arc<Mutex<Plant>>,
    clock: Clock,
    a: Aggr<PlantDev>,
    b: Aggr<PlantDev>,
    c: Aggr<PlantDev>,
    /// (distributing members of A, flow) -> the member its frames took.
    flows: HashMap<(u8, u16), usize>,
}

impl World {
    fn new() -> World {
        let plant = Plant::new(
            5,
            vec![([A0, B0], true), ([A1, B1], true), ([A0, C0], false)],
        );
        let clock = Clock::default();
        World {
            a: aggr(&plant, &clock, MAC_A, 1, &[A0, A1]),
            b: aggr(&plant, &clock, MAC_B, 1, &[B0, B1]),
            c: aggr(&plant, &clock, MAC_C, 7, &[C0]),
            plant,
            clock,
            flows: HashMap::new(),
        }
    }

    /// A0's cable: to B0 or C0, up or down.
    fn cable(&mut self, to_c: bool, up: bool) {
        let mut plant = self.plant.lock().unwrap();
        plant.cables[0].1 = up && !to_c;
        plant.cables[2].1 = up && to_c;
    }

    fn all_distributing(&self) -> bool {
        all_distributing(&self.a, &self.b)
    }

    /// One frame of each of 16 flows from A: each on a distributing
    /// member, the same one as before for the same distributing set.
    fn send_flows(&mut self, mask: u8) {
        for flow in 0..16 {
            let frame = udp_frame(flow);
            let before = self.plant.lock().unwrap().client_tx.clone();
            let sent = self.a.transmit(frame.len(), |b| b.copy_from_slice(&frame));
            self.a.flush();
            let after = self.plant.lock().unwrap().client_tx.clone();
            if mask == 0 {
                assert!(sent.is_err());
                assert_eq!(before, after);
                continue;
            }
            assert!(sent.is_ok());
            let moved: Vec<usize> = [A0, A1]
                .into_iter()
                .filter(|&d| after[d] != before[d])
                .collect();
            assert_eq!(moved.len(), 1, "frame of flow {flow} went out {moved:?}");
            let member = moved[0];
            assert!(
                mask & (1 << member) != 0,
                "flow {flow} left on member {member}, not distributing (mask {mask:#b})"
            );
            let first = *self.flows.entry((mask, flow)).or_insert(member);
            assert_eq!(first, member, "flow {flow} moved with the same members");
        }
    }
}

impl Stepped for World {
    fn step(&mut self) {
        self.clock.tick();
        for x in [&mut self.a, &mut self.b, &mut self.c] {
            x.poll();
            while x.receive(|f, _| f.len()).is_some() {}
        }
        let a0 = check_member(&self.a, 0, MAC_B);
        let a1 = check_member(&self.a, 1, MAC_B);
        check_member(&self.b, 0, MAC_A);
        check_member(&self.b, 1, MAC_A);
        // C's only partner is A0, which stays with B: never.
        assert!(!check_member(&self.c, 0, MAC_A));
        // A member that lost its link left in this poll.
        if self.plant.lock().unwrap().peer(A0).is_none() {
            assert!(!a0);
        }
        self.send_flows(u8::from(a0) | u8::from(a1) << 1);
    }
}

/// Flaps A0 for `rounds` rounds: each round its link is down then up
/// for 1 to 4 ticks each, one round in five its cable moves between B0
/// and C0 (half of the moves with the link up), and one round in ten
/// ends with the link holding for [`HOLD_TICKS`]. Returns the link
/// changes made.
fn flap(w: &mut World, rng: &mut XorShift, rounds: usize, to_c: &mut bool) -> u64 {
    let mut changes = 0;
    for _ in 0..rounds {
        let r = rng.next();
        if r.is_multiple_of(5) {
            *to_c = !*to_c;
            if r & 0x100 != 0 {
                // A cable moved live: same link, another partner.
                w.cable(*to_c, true);
                w.step();
            }
        }
        w.cable(*to_c, false);
        changes += 1;
        for _ in 0..1 + (r >> 8) % 4 {
            w.step();
        }
        w.cable(*to_c, true);
        changes += 1;
        for _ in 0..1 + (r >> 16) % 4 {
            w.step();
        }
        if (r >> 24).is_multiple_of(10) {
            // The link holds for 3 s: A0 rejoins B (both ends waited
            // Aggregate_Wait_Time), and never joins C, whose system
            // and key differ from the aggregator's partner's.
            for _ in 0..HOLD_TICKS {
                w.step();
            }
            let a0 = w.a.report(0).unwrap().distributing;
            assert_eq!(
                a0,
                !*to_c,
                "after a hold on {}",
                if *to_c { "C" } else { "B" }
            );
        }
    }
    changes
}

/// A stable spell between flaps: Aggregate_Wait_Time and a few LACPDUs.
const HOLD_TICKS: usize = 300;

#[test]
fn fast_flapping_member_with_a_changing_partner() {
    let mut w = World::new();
    assert!(
        w.run_until(10_000, World::all_distributing),
        "A and B aggregate both links"
    );
    // Both members carry flows while both distribute.
    let used: std::collections::HashSet<usize> = w
        .flows
        .iter()
        .filter(|((mask, _), _)| *mask == 0b11)
        .map(|(_, &m)| m)
        .collect();
    assert_eq!(used.len(), 2, "16 flows all on one member");
    marker_is_answered_on_the_member_it_came_in_on(&mut w);

    let mut rng = XorShift(0x19_0a_0b_0c);
    let mut to_c = false;
    let changes_before = w.a.report(0).unwrap().lacp.unwrap().link_changes;
    // Warm-up: every buffer and map reaches its size.
    let mut changes = flap(&mut w, &mut rng, 50, &mut to_c);
    let live = live_bytes();
    changes += flap(&mut w, &mut rng, 300, &mut to_c);
    let grown = live_bytes() - live;
    assert!(grown < 1024, "{grown} bytes more held after 300 rounds");
    let l = w.a.report(0).unwrap().lacp.unwrap();
    assert!(
        l.link_changes - changes_before >= changes / 2 && l.bad_pdus == 0,
        "{l:?}"
    );
    // C's LACPDUs reached A0 during the flapping: the partner did change.
    assert!(w.c.report(0).unwrap().lacp.unwrap().lacpdus_tx > 0);

    // The cable back on B0 for good: A0 rejoins B at once once both ends
    // have waited Aggregate_Wait_Time, and both members carry flows again.
    w.cable(false, true);
    assert!(
        w.run_until(5_000, World::all_distributing),
        "A0 rejoins when the partner agrees again"
    );
    let a = w.a.report(0).unwrap().lacp.unwrap();
    assert_eq!(a.partner.system.mac.0, MAC_B);
}

/// A Marker to A arrives on A1: A1 answers it, from its own MAC.
fn marker_is_answered_on_the_member_it_came_in_on(w: &mut World) {
    let request = MarkerRepr {
        kind: MarkerKind::Information,
        requester_port: 2,
        requester_system: EthernetAddress(MAC_B),
        requester_transaction_id: 0x0019_0001,
    };
    let mut frame = [0u8; FRAME_LEN];
    wire::emit_frame(
        EthernetAddress([2, 0, 0, 0, 0x0b, 2]),
        &SlowPdu::Marker(request),
        &mut frame,
    );
    {
        let mut plant = w.plant.lock().unwrap();
        plant.rx[A1].push_back(frame.to_vec());
        for d in 0..5 {
            plant.markers_tx[d].clear();
        }
    }
    // Taken in by one step's receive, answered by the next poll.
    w.step();
    w.step();
    let plant = w.plant.lock().unwrap();
    let responses = |d: usize| -> Vec<(Vec<u8>, MarkerRepr)> {
        plant.markers_tx[d]
            .iter()
            .filter_map(|f| match wire::parse_frame(f) {
                SlowFrame::Pdu(SlowPdu::Marker(m)) => Some((f[6..12].to_vec(), m)),
                _ => None,
            })
            .collect()
    };
    // From A1's own MAC (the member's, 802.1AX-2014 6.2.11), on A1 only.
    let mut a1_mac = MAC_A;
    a1_mac[5] = 2;
    assert_eq!(responses(A1), vec![(a1_mac.to_vec(), request.response())]);
    assert!(responses(A0).is_empty());
    drop(plant);
    let r = w.a.report(1).unwrap().lacp.unwrap();
    assert_eq!((r.markers_rx, r.marker_responses_tx), (1, 1));
    // Not a client frame: nothing was delivered for it.
    assert_eq!(w.a.report(1).unwrap().counters.rx_not_collecting, 0);
}
