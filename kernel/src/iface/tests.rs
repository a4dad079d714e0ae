//! The table against two stacks on a wire of two software devices (a
//! frame one transmits, the other receives): apps found by interface
//! name and by address, services listed and stopped, interfaces taken
//! down under running apps, the driver reaching its device again.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use cxos_drivers::{LinkState, NetStats, Offloads, RxMeta, TxError};
use cxos_net::smoltcp::time::Duration;
use spin::Mutex;

use super::*;

type Queue = Arc<Mutex<VecDeque<alloc::vec::Vec<u8>>>>;

/// One end of the wire.
#[derive(Debug)]
struct WireEnd {
    mac: [u8; 6],
    rx: Queue,
    tx: Queue,
    sent: u64,
}

fn wire() -> (WireEnd, WireEnd) {
    let (a, b): (Queue, Queue) = (Arc::default(), Arc::default());
    (
        WireEnd {
            mac: [2, 0, 0, 0, 0, 1],
            rx: a.clone(),
            tx: b.clone(),
            sent: 0,
        },
        WireEnd {
            mac: [2, 0, 0, 0, 0, 2],
            rx: b,
            tx: a,
            sent: 0,
        },
    )
}

impl NetDevice for WireEnd {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        1500
    }
    fn link(&self) -> LinkState {
        LinkState {
            up: true,
            speed_mbps: 1000,
        }
    }
    fn offloads(&self) -> Offloads {
        Offloads::default()
    }
    fn poll(&mut self) -> usize {
        0
    }
    fn receive<R>(&mut self, f: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        let frame = self.rx.lock().pop_front()?;
        Some(f(&frame, RxMeta::default()))
    }
    fn tx_free(&self) -> usize {
        64
    }
    fn transmit<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        let mut frame = alloc::vec![0u8; len];
        let r = f(&mut frame);
        self.tx.lock().push_back(frame);
        self.sent += 1;
        Ok(r)
    }
    fn flush(&mut self) {}
    fn stats(&self) -> NetStats {
        NetStats {
            tx_packets: self.sent,
            ..NetStats::default()
        }
    }
}

/// A device type no interface of the table has.
struct Other;

impl NetDevice for Other {
    fn mac(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 9]
    }
    fn mtu(&self) -> usize {
        1500
    }
    fn link(&self) -> LinkState {
        LinkState::default()
    }
    fn offloads(&self) -> Offloads {
        Offloads::default()
    }
    fn poll(&mut self) -> usize {
        0
    }
    fn receive<R>(&mut self, _: impl FnOnce(&[u8], RxMeta) -> R) -> Option<R> {
        None
    }
    fn tx_free(&self) -> usize {
        0
    }
    fn transmit<R>(&mut self, _: usize, _: impl FnOnce(&mut [u8]) -> R) -> Result<R, TxError> {
        Err(TxError::Down)
    }
    fn flush(&mut self) {}
    fn stats(&self) -> NetStats {
        NetStats::default()
    }
}

fn interface(name: &str, dev: WireEnd, cfg: &str) -> Box<dyn Interface> {
    let net = NetIf::new(name, dev, &cfg.parse().unwrap(), Instant::ZERO).unwrap();
    Box::new(NetInterface::new(net))
}

/// net0 (10.0.0.1, fd00::1) and vnic3 (10.0.0.2, fd00::2) on one wire.
fn pair() -> Interfaces {
    let (a, b) = wire();
    let mut t = Interfaces::new();
    t.add(interface("net0", a, "10.0.0.1/24,ip6=fd00::1/64"))
        .unwrap();
    t.add(interface("vnic3", b, "10.0.0.2/24,ip6=fd00::2/64"))
        .unwrap();
    t
}

/// Poll until `id` has a verdict (at most `limit` of simulated time).
fn run(t: &mut Interfaces, id: AppId, out: &mut String, limit: Duration) -> Verdict {
    let mut now = Instant::ZERO;
    let end = now + limit;
    while now < end {
        t.poll(now, out);
        if let Some(v) = t.take_result(id) {
            return v;
        }
        now += Duration::from_millis(10);
    }
    panic!("app {id} did not finish:\n{out}");
}

fn ping(args: &str) -> AppCommand {
    AppCommand::parse("ping", args).unwrap()
}

#[test]
fn apps_find_their_interface_by_name_address_or_default() {
    let mut t = pair();
    let mut out = String::new();
    for (args, on) in [
        ("10.0.0.2 -c 2 -i 0.1", "net0"),
        ("-c 2 -I vnic3 -i 0.1 10.0.0.1", "vnic3"),
        ("10.0.0.1 -c 2 -i 0.1 -I 10.0.0.2", "vnic3"),
        ("-I fd00::1 fd00::2 -c 1", "net0"),
    ] {
        let cmd = ping(args);
        assert_eq!(t.resolve(&cmd.target).as_deref(), Ok(on), "{args}");
        let id = t.start(&cmd, Owner::Shell, Instant::ZERO, 0).unwrap();
        let v = run(&mut t, id, &mut out, Duration::from_secs(10));
        assert!(v.ok, "{args}: {v}\n{out}");
        assert!(t.take_result(id).is_none(), "collected once");
    }
    for (args, why) in [
        (
            "-I net1 10.0.0.2",
            "no interface net1 (no attached port or VNIC with that name)",
        ),
        ("-I 10.0.0.9 10.0.0.2", "no interface with address 10.0.0.9"),
    ] {
        let e = t.start(&ping(args), Owner::Shell, Instant::ZERO, 0);
        assert_eq!(e, Err(why.into()));
    }
    // The app's own refusal comes back as it was.
    let e = t.start(
        &ping("-I vnic3 fd00::1 -s 2000"),
        Owner::Shell,
        Instant::ZERO,
        0,
    );
    assert!(e.unwrap_err().starts_with("ping: "));
}

#[test]
fn services_are_listed_until_stopped_and_leave_no_verdict() {
    let mut t = pair();
    let mut out = String::new();
    let serve = |t: &mut Interfaces, app: &str, args: &str| {
        let cmd = AppCommand::service(app, args).unwrap();
        t.start(&cmd, Owner::Service, Instant::ZERO, 0).unwrap()
    };
    let iperf = serve(&mut t, "iperf3", "-I vnic3");
    let echo = serve(&mut t, "echo", "-p 7007 -I 10.0.0.1");
    t.poll(Instant::ZERO, &mut out);
    assert_eq!(
        t.services(),
        [
            format!("service {iperf}: iperf3 -s on vnic3"),
            format!("service {echo}: echo -p 7007 on net0"),
        ]
    );
    assert!(out.contains("Server listening on 5201"), "{out}");
    let shell_app = t
        .start(&ping("10.0.0.2"), Owner::Shell, Instant::ZERO, 0)
        .unwrap();
    assert!(
        !t.stop_service(shell_app, Instant::ZERO, &mut out),
        "not a service"
    );
    assert!(t.stop_service(iperf, Instant::ZERO, &mut out));
    assert!(!t.stop_service(iperf, Instant::ZERO, &mut out));
    assert_eq!(t.services().len(), 1);
    assert!(
        t.take_result(iperf).is_none(),
        "services have no owner waiting"
    );
    // Ctrl-C on the endless ping: its summary, its verdict for the shell.
    assert!(t.abort(shell_app, Instant::ZERO, &mut out));
    assert!(out.contains("--- 10.0.0.2 ping statistics ---"), "{out}");
    assert!(t.take_result(shell_app).is_some());
}

#[test]
fn an_interface_going_down_stops_its_apps_and_keeps_its_place() {
    let mut t = pair();
    t.set_config("net0", "dhcp".parse().unwrap());
    assert_eq!(t.config_for("net0"), "dhcp".parse().unwrap());
    assert_eq!(t.config_for("net5"), "none".parse().unwrap());
    let mut out = String::new();
    let id = t
        .start(&ping("-I vnic3 10.0.0.1"), Owner::Test, Instant::ZERO, 0)
        .unwrap();
    let gone = t.set_down("vnic3", "01:00.0 not attached", Instant::ZERO, &mut out);
    let gone = gone.expect("vnic3 was running");
    assert!(gone.apps().is_empty());
    assert!(
        out.contains("ping 10.0.0.1 on vnic3: stopped: interface vnic3 going away"),
        "{out}"
    );
    assert!(!t.take_result(id).unwrap().ok);
    let lines = t.status_lines();
    assert!(
        lines[0].starts_with("net0 02:00:00:00:00:01 link up"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "vnic3: 01:00.0 not attached");
    assert_eq!(
        t.status_line("vnic3").as_deref(),
        Some("vnic3: 01:00.0 not attached")
    );
    assert!(t.reconfigure("vnic3", &"dhcp".parse().unwrap()).is_none());
    assert!(!t.ready("vnic3"));
    // The driver gets its device back; a new stack takes the old place.
    let any = gone.into_any();
    let net = any
        .downcast::<NetInterface<WireEnd>>()
        .expect("a NetInterface<WireEnd>")
        .into_net();
    t.add(interface("vnic3", net.into_device(), "10.0.0.2/24"))
        .unwrap();
    assert!(t.status_lines()[1].starts_with("vnic3 02:00:00:00:00:02"));
    let taken = t.add(interface("vnic3", wire().0, "none")).unwrap_err();
    assert_eq!(taken.to_string(), "interface vnic3 exists");
    assert!(t.remove("vnic3", Instant::ZERO, &mut out).is_some());
    assert!(t.remove("vnic3", Instant::ZERO, &mut out).is_none());
    assert_eq!(t.status_lines().len(), 1);
}

#[test]
fn the_registering_driver_reaches_its_device() {
    let mut t = pair();
    let mut out = String::new();
    let id = t
        .start(&ping("10.0.0.2 -c 1"), Owner::Shell, Instant::ZERO, 0)
        .unwrap();
    assert!(run(&mut t, id, &mut out, Duration::from_secs(5)).ok);
    let sent = t
        .net_mut::<WireEnd>("net0")
        .map(|net| net.device().stats().tx_packets);
    assert!(
        sent.is_some_and(|n| n >= 2),
        "ARP and echo request: {sent:?}"
    );
    // Another device type under that name is not this driver's.
    assert!(t.net_mut::<Other>("net0").is_none());
    assert!(t.net_mut::<WireEnd>("net9").is_none());
}

#[test]
fn ready_needs_link_and_the_asked_for_address() {
    let (a, b) = wire();
    let mut t = Interfaces::new();
    t.add(interface("net0", a, "none")).unwrap();
    t.add(interface("net1", b, "dhcp")).unwrap();
    assert!(t.ready("net0"), "link up, no IPv4 asked for");
    assert!(!t.ready("net1"), "no lease yet");
    assert!(!t.ready("net2"));
}

#[test]
fn events_print_as_the_console_always_did() {
    use cxos_net::Lease;
    use cxos_net::smoltcp::wire::{Ipv4Address, Ipv4Cidr};
    let lease = Lease {
        address: Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 5), 24),
        router: None,
        server: Ipv4Address::new(10, 0, 0, 1),
        dns: Vec::new(),
        acquired: Instant::ZERO,
        duration: Some(Duration::from_secs(60)),
    };
    assert_eq!(
        event_line("net0", &NetEvent::LeaseAcquired(lease.clone())),
        "net0: dhcp lease 10.0.0.5/24 gw none from 10.0.0.1 for 60 s"
    );
    assert_eq!(
        event_line("net0", &NetEvent::LeaseRenewed(lease)),
        "net0: dhcp lease renewed 10.0.0.5/24 for 60 s"
    );
    assert_eq!(event_line("vnic1", &NetEvent::LinkDown), "vnic1: link down");
}

/// A lent interface keeps its place and status line, is neither polled
/// nor removable meanwhile (the other one keeps answering: a ping from it
/// to the lent one gets no reply until it is given back), and comes back
/// as it was.
#[test]
fn a_lent_interface_keeps_its_place_and_returns() {
    let mut t = pair();
    let mut out = String::new();
    let line = t.status_line("vnic3").unwrap();
    let lent = t.lend("vnic3").expect("running");
    assert!(t.is_lent("vnic3"));
    assert!(t.lend("vnic3").is_none(), "lent once");
    assert_eq!(t.status_line("vnic3").unwrap(), line);
    assert!(t.remove("vnic3", Instant::ZERO, &mut out).is_none());
    assert!(
        t.set_down("vnic3", "gone", Instant::ZERO, &mut out)
            .is_none()
    );
    assert!(t.add(interface("vnic3", wire().0, "10.0.0.9/24")).is_err());
    assert!(t.resolve(&Target::Name("vnic3".into())).is_err());
    // net0 still polls: its ping to the lent interface goes unanswered.
    let id = t
        .start(&ping("10.0.0.2 -c 1 -W 1"), Owner::Shell, Instant::ZERO, 1)
        .unwrap();
    assert!(
        !run(&mut t, id, &mut out, Duration::from_secs(3)).ok,
        "{out}"
    );
    t.give_back(lent);
    assert!(!t.is_lent("vnic3"));
    assert_eq!(t.status_line("vnic3").unwrap(), line);
    let id = t
        .start(&ping("10.0.0.2 -c 1 -W 1"), Owner::Shell, Instant::ZERO, 2)
        .unwrap();
    assert!(
        run(&mut t, id, &mut out, Duration::from_secs(3)).ok,
        "{out}"
    );
}

#[test]
fn first_up_skips_down_entries() {
    let mut t = pair();
    assert_eq!(t.first_up().as_deref(), Some("net0"));
    let mut out = String::new();
    assert!(
        t.set_down("net0", "no link", Instant::ZERO, &mut out)
            .is_some()
    );
    assert_eq!(t.first_up().as_deref(), Some("vnic3"));
    assert!(t.remove("vnic3", Instant::ZERO, &mut out).is_some());
    assert_eq!(t.first_up(), None);
}
