//! A 2-port adapter in the model (issue 19): two boards of two ports each
//! (`SimPlatform::adapter`), port 0 of one cabled to port 0 of the other
//! and port 1 to port 1. The functions of one board share firmware,
//! serial and system image GUID and differ in MAC and port GUID; the
//! driver attaches to all four functions, each pair of ports carries its
//! own traffic, and one port's cable pulled leaves its sibling running.

mod common;

use common::{Node, Pair};
use cxos_net::ping::{Ping, PingConfig};
use cxos_net::smoltcp::time::{Duration, Instant};
use mlx5::EthConfig;
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

const MAC_A: [u8; 6] = [0x0c, 0x42, 0xa1, 0x19, 0x00, 0x10];
const MAC_B: [u8; 6] = [0x0c, 0x42, 0xa1, 0x19, 0x00, 0x20];

fn pair(a: &SimPlatform, b: &SimPlatform, net: u8) -> Pair {
    let now = Instant::from_millis(1_000);
    let eth = EthConfig::default();
    Pair {
        a: Node::new(a.clone(), eth, &format!("10.{net}.0.1/24"), now),
        b: Node::new(b.clone(), eth, &format!("10.{net}.0.2/24"), now),
        now,
        mode: Mode::Synchronous,
    }
}

fn ping(p: &mut Pair, to: &str) -> (bool, String) {
    let cfg: PingConfig = format!("{to} -c 2 -i 0.2 -W 1").parse().unwrap();
    let mut app = Ping::new(&mut p.a.net, cfg, p.now).unwrap();
    let (v, out) = p.run_app(true, &mut app, Duration::from_secs(30));
    (v.ok, out)
}

#[test]
fn two_port_boards_share_identity_and_carry_traffic_per_port() {
    let a = SimPlatform::adapter(Personality::ConnectX4Lx, Mode::Synchronous, 2, 1, MAC_A);
    let b = SimPlatform::adapter(Personality::ConnectX4Lx, Mode::Synchronous, 2, 3, MAC_B);
    assert_eq!((a.len(), b.len()), (2, 2));
    SimPlatform::cable(&a[0], &b[0]);
    SimPlatform::cable(&a[1], &b[1]);

    let id = |s: &SimPlatform| s.with_model(|f| f.identity.clone());
    let (a0, a1, b0) = (id(&a[0]), id(&a[1]), id(&b[0]));
    assert_eq!((a0.port, a1.port, a0.ports), (0, 1, 2));
    assert_eq!(a0.system_image_guid, a1.system_image_guid);
    assert_eq!(a0.serial, a1.serial);
    assert_ne!(a0.port_guid(), a1.port_guid());
    assert_eq!(a[0].mac(), MAC_A);
    assert_eq!(a[1].mac(), [0x0c, 0x42, 0xa1, 0x19, 0x00, 0x11]);
    assert_eq!(b[1].mac(), [0x0c, 0x42, 0xa1, 0x19, 0x00, 0x21]);
    assert_eq!(b0.ports, 2);
    assert_eq!(
        a[1].with_model(|f| f.config_read(0, 4)),
        a[0].with_model(|f| f.config_read(0, 4)),
        "one part: same vendor and device ids"
    );

    let mut p0 = pair(&a[0], &b[0], 0);
    let mut p1 = pair(&a[1], &b[1], 1);
    // The drivers read the ports' own MACs.
    assert_eq!(p0.a.net.mac(), MAC_A);
    assert_eq!(p1.a.net.mac(), a[1].mac());

    let (ok, out) = ping(&mut p0, "10.0.0.2");
    assert!(ok, "{out}");
    let (ok, out) = ping(&mut p1, "10.1.0.2");
    assert!(ok, "{out}");
    // Each cable carried its own pair's frames only.
    for (x, y) in [(&a[0], &b[0]), (&a[1], &b[1])] {
        let (sx, sy) = (x.port_stats(), y.port_stats());
        assert!(sx.tx_frames >= 2 && sy.tx_frames >= 2);
        assert_eq!((sx.tx_frames, sy.tx_frames), (sy.rx_frames, sx.rx_frames));
    }
    // Separate counters and steering: port 1's frames never reached port 0.
    let before = a[0].port_stats();
    let (ok, out) = ping(&mut p1, "10.1.0.2");
    assert!(ok, "{out}");
    assert_eq!(a[0].port_stats().rx_frames, before.rx_frames);

    // Port 0's cable pulled: port 0 is down, its sibling is not.
    a[0].set_link(false);
    let (ok, _) = ping(&mut p0, "10.0.0.2");
    assert!(!ok, "no traffic over a pulled cable");
    let (ok, out) = ping(&mut p1, "10.1.0.2");
    assert!(ok, "the sibling port keeps running: {out}");
    a[0].set_link(true);
    assert!(p0.run_until(Duration::from_secs(5), |p| {
        use cxos_drivers::NetDevice;
        p.a.net.device_mut().poll();
        p.a.net.device().link().up
    }));
    let (ok, out) = ping(&mut p0, "10.0.0.2");
    assert!(ok, "port 0 back: {out}");

    p0.close();
    p1.close();
}
