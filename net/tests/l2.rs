//! Raw L2 frames of ethertype 0x88B5 below IP: l2send from one stack,
//! l2recv on the other, counted received / lost / out-of-order; loss and
//! reordering made on purpose are reported as such.

mod common;

use common::Pair;
use cxos_net::app::{App, AppStatus};
use cxos_net::l2::{L2Recv, L2RecvConfig, L2Send, L2SendConfig};
use cxos_net::smoltcp::time::Duration;

const A: &str = "10.0.0.1/24";
const B: &str = "10.0.0.2/24";

/// Run l2send on a and l2recv on b together; output of both.
fn run(p: &mut Pair, send: &str, recv: &str) -> (bool, bool, String, L2Recv) {
    let mac_b = cxos_net::Mac(p.b.net.mac());
    let scfg: L2SendConfig = format!("{mac_b} {send}").parse().unwrap();
    let rcfg: L2RecvConfig = recv.parse().unwrap();
    let now = p.now;
    let mut rx = L2Recv::new(&mut p.b.net, rcfg, now);
    let mut tx = L2Send::new(&p.a.net, scfg, 7).unwrap();
    let mut out = String::new();
    let (mut sv, mut rv) = (None, None);
    let end = p.now + Duration::from_secs(60);
    while rv.is_none() || sv.is_none() {
        let progress = p.poll();
        let now = p.now;
        if sv.is_none()
            && let AppStatus::Done(v) = tx.poll(&mut p.a.net, now, &mut out)
        {
            sv = Some(v);
        }
        if rv.is_none()
            && let AppStatus::Done(v) = rx.poll(&mut p.b.net, now, &mut out)
        {
            rv = Some(v);
        }
        assert!(p.now < end, "{out}");
        if !progress {
            let at = App::<common::Port>::poll_at(&rx, now);
            p.idle(at, Duration::from_millis(100));
        }
    }
    (sv.unwrap().ok, rv.unwrap().ok, out, rx)
}

#[test]
fn every_frame_arrives_in_order() {
    let mut p = Pair::new(A, B);
    let (sent_ok, recv_ok, out, rx) = run(&mut p, "5000 -s 200", "");
    assert!(sent_ok && recv_ok, "{out}");
    let s = rx.stats();
    assert_eq!(
        (s.received, s.expected, s.lost(), s.out_of_order),
        (5000, 5000, 0, 0)
    );
    let mac_a = cxos_net::Mac(p.a.net.mac());
    let mac_b = cxos_net::Mac(p.b.net.mac());
    assert!(
        out.contains(&format!(
            "l2send: sent 5000 of 5000 frames of 200 bytes to {mac_b}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "l2recv: received 5000 of 5000 frames from {mac_a}, lost 0, out-of-order 0, duplicates 0, corrupt 0"
        )),
        "{out}"
    );
    // Not smoltcp's: nothing was counted as unsupported, and the queue is
    // closed again (later frames are dropped and counted).
    let st = p.b.net.stats().phy;
    assert_eq!(st.rx_l2_test, 5000);
    assert_eq!(st.rx_unsupported, 0);
    assert!(!p.b.net.phy().l2_is_open());
    p.close();
}

#[test]
fn loss_and_reordering_are_reported() {
    let mut p = Pair::new(A, B);
    let now = p.now;
    let mut rx = L2Recv::new(&mut p.b.net, "-W 1".parse().unwrap(), now);
    // Frames crafted like l2send's, injected out of order with gaps:
    // 0, 1, 3, 2, 5 of 8 (lost: 4, 6, 7), and a duplicate of 1.
    let (mac_a, mac_b) = (p.a.net.mac(), p.b.net.mac());
    let mut out = String::new();
    for seq in [0u32, 1, 3, 2, 5, 1] {
        let mut f = vec![0u8; 64];
        f[0..6].copy_from_slice(&mac_b);
        f[6..12].copy_from_slice(&mac_a);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(b"CXL2");
        f[18..22].copy_from_slice(&9u32.to_be_bytes());
        f[22..26].copy_from_slice(&seq.to_be_bytes());
        f[26..30].copy_from_slice(&8u32.to_be_bytes());
        for (i, x) in f[30..].iter_mut().enumerate() {
            *x = ((seq as usize ^ i).wrapping_mul(31)) as u8;
        }
        p.b.sim.inject_rx(&f);
    }
    // A corrupt one.
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&mac_b);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(b"XXXX");
    p.b.sim.inject_rx(&f);
    let v = loop {
        let progress = p.poll();
        let now = p.now;
        if let AppStatus::Done(v) = rx.poll(&mut p.b.net, now, &mut out) {
            break v;
        }
        if !progress {
            let at = App::<common::Port>::poll_at(&rx, now);
            p.idle(at, Duration::from_millis(100));
        }
    };
    assert!(!v.ok, "{out}");
    let s = rx.stats();
    assert_eq!(
        (
            s.received,
            s.expected,
            s.lost(),
            s.out_of_order,
            s.duplicates,
            s.corrupt
        ),
        (5, 8, 3, 1, 1, 1),
        "{out}"
    );
    assert!(out.contains("received 5 of 8 frames"), "{out}");
    assert!(
        out.contains("lost 3, out-of-order 1, duplicates 1, corrupt 1"),
        "{out}"
    );
    p.close();
}

#[test]
fn l2recv_without_a_sender_times_out_and_fails() {
    let mut p = Pair::new(A, B);
    let now = p.now;
    let mut rx = L2Recv::new(&mut p.b.net, "-W 0.2".parse().unwrap(), now);
    let mut out = String::new();
    let v = loop {
        let progress = p.poll();
        let now = p.now;
        if let AppStatus::Done(v) = rx.poll(&mut p.b.net, now, &mut out) {
            break v;
        }
        if !progress {
            let at = App::<common::Port>::poll_at(&rx, now);
            p.idle(at, Duration::from_millis(100));
        }
    };
    assert!(!v.ok);
    assert_eq!(out, "l2recv: no frames received\n");
    // Too big for the MTU: refused up front.
    let mac_b = cxos_net::Mac(p.b.net.mac());
    let cfg: L2SendConfig = format!("{mac_b} 1 -s 1515").parse().unwrap();
    assert!(L2Send::new(&p.a.net, cfg, 1).is_err());
    p.close();
}
