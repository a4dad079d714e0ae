//! pktgen on one stack's port and pktsink on the other's, through two
//! simulated adapters wired back to back (no flow control: what the
//! receiver has no buffer for, its adapter drops and counts): every frame
//! pktgen reports sent is either taken by pktsink (below the stack:
//! smoltcp never sees them) or counted as dropped by the receiving
//! adapter, both report packets per second and Gbit/s, and a run bounded
//! by time ends.

mod common;

use common::Pair;
use cxos_net::app::{App, AppStatus};
use cxos_net::pktgen::{PktGen, PktGenConfig, PktSink, PktSinkConfig};
use cxos_net::smoltcp::time::Duration;

const A: &str = "10.0.0.1/24";
const B: &str = "10.0.0.2/24";

/// Run pktgen (`gen` arguments) on a and pktsink (`sink`) on b; their
/// verdict lines.
fn run(p: &mut Pair, gen_args: &str, sink_args: &str) -> (String, String) {
    let mac_b = cxos_net::Mac(p.b.net.mac());
    let g: PktGenConfig = format!("{gen_args} --dst {mac_b}").parse().unwrap();
    let s: PktSinkConfig = sink_args.parse().unwrap();
    let now = p.now;
    let mut sink = PktSink::new(&mut p.b.net, s, now);
    let mut pktgen = PktGen::new(&p.a.net, g).unwrap();
    let mut out = String::new();
    let (mut gv, mut sv) = (None, None);
    let end = p.now + Duration::from_secs(60);
    while gv.is_none() || sv.is_none() {
        p.advance(Duration::from_millis(1));
        let now = p.now;
        if gv.is_none()
            && let AppStatus::Done(v) = pktgen.poll(&mut p.a.net, now, &mut out)
        {
            gv = Some(v);
        }
        if sv.is_none()
            && let AppStatus::Done(v) = sink.poll(&mut p.b.net, now, &mut out)
        {
            sv = Some(v);
        }
        assert!(p.now < end, "{out}");
    }
    let (gv, sv) = (gv.unwrap(), sv.unwrap());
    assert!(gv.ok && sv.ok, "{out}");
    let _ = App::<common::Port>::poll_at(&sink, p.now);
    (gv.summary, sv.summary)
}

fn number_after(line: &str, word: &str) -> u64 {
    let mut w = line.split_whitespace();
    w.by_ref().find(|x| *x == word);
    w.next().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX)
}

#[test]
fn every_generated_frame_reaches_the_sink() {
    let mut p = Pair::new(A, B);
    let rx_before = p.b.net.device().net_stats().rx_packets;
    let drops_before = p.b.sim.port_stats().rx_dropped_no_wqe;
    let (g, s) = run(&mut p, "-c 20000 -s 64 -b 32", "-t 1");
    assert!(
        g.starts_with("pktgen: sent 20000 frames of 64 bytes in "),
        "{g}"
    );
    assert!(g.contains(" pps, ") && g.contains(" Gbit/s"), "{g}");
    let got = number_after(&s, "received");
    assert!(
        got > 0 && s.contains(&format!("({} bytes)", got * 64)),
        "{s}"
    );
    assert!(number_after(&s, "s:") > 0, "{s}");
    let dropped = p.b.sim.port_stats().rx_dropped_no_wqe - drops_before;
    assert_eq!(got + dropped, 20000, "{s}: {dropped} dropped");
    assert_eq!(
        p.b.net.device().net_stats().rx_packets - rx_before,
        got,
        "every frame through the burst path"
    );
    // Below the stack: nothing reached smoltcp as unsupported, and the
    // stack has its frames again after the sink.
    assert_eq!(p.b.net.stats().phy.rx_unsupported, 0);
    assert!(!p.b.net.rx_bypass());
    p.close();
}

#[test]
fn a_timed_run_ends_and_reports_its_rate() {
    let mut p = Pair::new(A, B);
    let drops_before = p.b.sim.port_stats().rx_dropped_no_wqe;
    let (g, s) = run(&mut p, "-t 0.2 -s 1514 -b 8", "-t 0.5");
    let sent = number_after(&g, "sent");
    assert!(sent > 0 && g.contains("frames of 1514 bytes"), "{g}");
    let dropped = p.b.sim.port_stats().rx_dropped_no_wqe - drops_before;
    assert_eq!(number_after(&s, "received") + dropped, sent, "{g}\n{s}");
    p.close();
}
