//! ping both ways over IPv4 and IPv6 between two stacks on two simulated
//! adapters; the stacks answer by themselves (ARP / NDP resolution first).

mod common;

use common::Pair;
use cxos_net::ping::{Ping, PingConfig};
use cxos_net::smoltcp::time::Duration;
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::Mode;

const A: &str = "10.0.0.1/24,ip6=fd00::1/64";
const B: &str = "10.0.0.2/24,ip6=fd00::2/64";

fn ping(p: &mut Pair, from_a: bool, args: &str) -> (cxos_net::app::Verdict, String) {
    let cfg: PingConfig = args.parse().unwrap();
    let now = p.now;
    let net = if from_a { &mut p.a.net } else { &mut p.b.net };
    let mut app = Ping::new(net, cfg, now).unwrap();
    p.run_app(from_a, &mut app, Duration::from_secs(30))
}

fn check(v: &cxos_net::app::Verdict, out: &str, target: &str, n: u32) {
    assert!(v.ok, "{v}\n{out}");
    for seq in 1..=n {
        assert!(
            out.contains(&format!(
                "64 bytes from {target}: icmp_seq={seq} ttl=64 time="
            )),
            "reply {seq} missing:\n{out}"
        );
    }
    assert!(
        out.contains(&format!(
            "{n} packets transmitted, {n} received, 0% packet loss"
        )),
        "{out}"
    );
    assert!(out.contains("rtt min/avg/max/mdev = "), "{out}");
    assert!(
        out.starts_with(&format!("PING {target} ({target}) 56")),
        "{out}"
    );
}

#[test]
fn ping_both_ways_ipv4_and_ipv6() {
    let mut p = Pair::new(A, B);
    let (v, out) = ping(&mut p, true, "10.0.0.2 -c 3 -i 0.2");
    check(&v, &out, "10.0.0.2", 3);
    let (v, out) = ping(&mut p, false, "10.0.0.1 -c 2");
    check(&v, &out, "10.0.0.1", 2);
    let (v, out) = ping(&mut p, true, "fd00::2 -c 3 -i 0.2");
    check(&v, &out, "fd00::2", 3);
    let (v, out) = ping(&mut p, false, "fd00::1 -c 2");
    check(&v, &out, "fd00::1", 2);
    // Link-local addresses from the MACs work too.
    let ll = p.a.net.ipv6_link_local().to_string();
    let (v, out) = ping(&mut p, false, &format!("{ll} -c 1"));
    check(&v, &out, &ll, 1);
    let (sa, sb) = (p.a.net.stats(), p.b.net.stats());
    assert_eq!(sa.phy.rx_malformed + sb.phy.rx_malformed, 0);
    assert_eq!(sa.phy.rx_bad_checksum + sb.phy.rx_bad_checksum, 0);
    p.close();
}

#[test]
fn ping_in_threaded_model_mode() {
    let mut p = Pair::with(
        Personality::ConnectX6Dx,
        Personality::ConnectX5,
        Mode::Threaded,
        EthConfig::default(),
        A,
        B,
    );
    let (v, out) = ping(&mut p, true, "10.0.0.2 -c 3 -i 0.05");
    check(&v, &out, "10.0.0.2", 3);
    let (v, out) = ping(&mut p, false, "fd00::1 -c 3 -i 0.05");
    check(&v, &out, "fd00::1", 3);
    p.close();
}

#[test]
fn ping_to_a_silent_address_reports_loss_and_fails() {
    let mut p = Pair::new(A, B);
    let (v, out) = ping(&mut p, true, "10.0.0.9 -c 2 -i 0.5 -W 1");
    assert!(!v.ok, "{out}");
    assert!(
        out.contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{out}"
    );
    assert!(!out.contains("rtt min"), "{out}");
    p.close();
}

#[test]
fn ping_refuses_what_cannot_work() {
    let mut p = Pair::new("10.0.0.1/24", "none");
    let now = p.now;
    // No IPv4 address on b.
    let e = Ping::new(&mut p.b.net, "10.0.0.1".parse().unwrap(), now).unwrap_err();
    assert_eq!(e, cxos_net::ping::PingError::NoSourceAddress);
    let e = Ping::new(&mut p.a.net, "10.0.0.2 -s 1473".parse().unwrap(), now).unwrap_err();
    assert_eq!(
        e,
        cxos_net::ping::PingError::TooLarge {
            size: 1473,
            max: 1472
        }
    );
    assert!(Ping::new(&mut p.a.net, "10.0.0.2 -s 1472".parse().unwrap(), now).is_ok());
    p.close();
}

/// Without `-c` ping runs until stopped, as iputils' does: well past any
/// fixed count, then the interrupt prints the statistics.
#[test]
fn ping_without_count_runs_until_aborted() {
    use cxos_net::app::{App, AppStatus};
    let mut p = Pair::new(A, B);
    let now = p.now;
    let cfg: PingConfig = "-i 0.01 10.0.0.2".parse().unwrap();
    let mut app = Ping::new(&mut p.a.net, cfg, now).unwrap();
    let mut out = String::new();
    let end = p.now + Duration::from_secs(30);
    while !out.contains("icmp_seq=20 ") {
        let progress = p.poll();
        let now = p.now;
        let status = app.poll(&mut p.a.net, now, &mut out);
        assert_eq!(status, AppStatus::Running, "{out}");
        assert!(p.now < end, "{out}");
        if !progress {
            let at = App::<common::Port>::poll_at(&app, now);
            p.idle(at, Duration::from_millis(100));
        }
    }
    let now = p.now;
    let v = app.abort(&mut p.a.net, now, &mut out);
    assert!(out.contains("--- 10.0.0.2 ping statistics ---"), "{out}");
    let sent: u32 = v.summary.split(' ').next().unwrap().parse().unwrap();
    assert!(sent >= 20, "{v}");
    p.close();
}
