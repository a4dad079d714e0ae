//! Shared setup of the hosted tests: two simulated adapters wired back to
//! back, the mlx5 driver and a NetIf on each, polled alternately in one
//! thread with a fake clock; a small DHCP server; app drivers.
#![allow(dead_code)]

pub mod plant;

use std::sync::Once;

use cxos_net::app::{App, AppStatus, Verdict};
use cxos_net::smoltcp::iface::SocketHandle;
use cxos_net::smoltcp::socket::udp;
use cxos_net::smoltcp::time::{Duration, Instant};
use cxos_net::smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, IpAddress, Ipv4Address,
};
use cxos_net::{IfConfig, NetIf};
use mlx5::Adapter;
use mlx5::vnic::{Nic, NicConfig};
use mlx5::{EthConfig, QueueSet, Resources};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

pub type Port = QueueSet<Adapter<SimPlatform>>;

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        eprintln!("{} {}: {}", r.level(), r.target(), r.args());
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;
static INIT: Once = Once::new();

/// Install the logger once; the level comes from `NET_LOG` (off by default).
pub fn logger() {
    INIT.call_once(|| {
        let level = match std::env::var("NET_LOG").as_deref() {
            Ok("trace") => log::LevelFilter::Trace,
            Ok("debug") => log::LevelFilter::Debug,
            Ok("info") => log::LevelFilter::Info,
            Ok("warn") => log::LevelFilter::Warn,
            _ => log::LevelFilter::Off,
        };
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(level);
    });
}

/// Attach the driver to `sim` (5 s command and firmware timeouts); the
/// adapter and its resources.
pub fn attach(sim: &SimPlatform) -> (Adapter<SimPlatform>, Resources) {
    logger();
    let config = mlx5::Config {
        cmd_timeout_ms: Some(5_000),
        fw_init_timeout_ms: Some(5_000),
        ..mlx5::Config::default()
    };
    let a = match Adapter::attach(sim.clone(), config) {
        Ok(a) => a,
        Err(f) => panic!("attach failed: {}", f.error),
    };
    let r = Resources::of(&a).expect("resources");
    (a, r)
}

/// Attach the driver to `sim` and open its Ethernet port.
pub fn open_port(sim: &SimPlatform, cfg: EthConfig) -> Port {
    let (a, r) = attach(sim);
    match QueueSet::open(a, r, cfg) {
        Ok(p) => p,
        Err(f) => panic!("open failed: {}", f.error),
    }
}

/// Attach the driver to `sim` and open it for VNICs, each with SQs and
/// RQs of 2^`log_q` entries and no LSO buffers.
pub fn open_nic(sim: &SimPlatform, log_q: u8) -> Nic<Adapter<SimPlatform>> {
    let (a, res) = attach(sim);
    let cfg = NicConfig {
        eth: EthConfig {
            log_sq: log_q,
            log_rq: log_q,
            lso_bufs: 0,
            ..EthConfig::default()
        },
        ..NicConfig::default()
    };
    match Nic::new(a, res, cfg) {
        Ok(n) => n,
        Err(f) => panic!("Nic::new: {}", f.error),
    }
}

/// One adapter with its stack.
pub struct Node {
    pub sim: SimPlatform,
    pub net: NetIf<Port>,
    dma_before: (usize, usize),
}

impl Node {
    pub fn new(sim: SimPlatform, eth: EthConfig, cfg: &str, now: Instant) -> Node {
        let dma_before = sim.dma_in_use();
        let port = open_port(&sim, eth);
        let cfg: IfConfig = cfg.parse().expect("interface configuration");
        let net = match NetIf::new("net0", port, &cfg, now) {
            Ok(n) => n,
            Err(e) => panic!("NetIf::new: {}", e.error),
        };
        Node {
            sim,
            net,
            dma_before,
        }
    }

    /// Close the port, detach, and check that nothing leaked and the model
    /// saw no driver misbehaviour.
    pub fn close(self) {
        let port = self.net.into_device();
        let (a, rep) = port.close();
        assert_eq!(rep.errors, 0, "{rep:?}");
        detach_clean(a, &self.sim, self.dma_before);
    }
}

/// Detach `a` (its port or NIC closed) and check that the detach saw no
/// error, `sim` holds the DMA memory it held before the attach
/// (`dma_before`) and its sanitizer saw no driver misbehaviour.
pub fn detach_clean(a: Adapter<SimPlatform>, sim: &SimPlatform, dma_before: (usize, usize)) {
    let (_, drep) = a.detach();
    assert_eq!(drep.errors, 0, "{drep:?}");
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}

/// Two stacks on two adapters wired back to back, and a fake clock.
pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub now: Instant,
    pub mode: Mode,
}

impl Pair {
    /// ConnectX-5 and ConnectX-4 Lx, synchronous model, default port
    /// configuration.
    pub fn new(cfg_a: &str, cfg_b: &str) -> Pair {
        Pair::with(
            Personality::ConnectX5,
            Personality::ConnectX4Lx,
            Mode::Synchronous,
            EthConfig::default(),
            cfg_a,
            cfg_b,
        )
    }

    pub fn with(
        pa: Personality,
        pb: Personality,
        mode: Mode,
        eth: EthConfig,
        cfg_a: &str,
        cfg_b: &str,
    ) -> Pair {
        let (sa, sb) = SimPlatform::pair(pa, pb, mode);
        let now = Instant::from_millis(1_000);
        Pair {
            a: Node::new(sa, eth, cfg_a, now),
            b: Node::new(sb, eth, cfg_b, now),
            now,
            mode,
        }
    }

    /// Poll both stacks once; whether either made progress.
    pub fn poll(&mut self) -> bool {
        let a = self.a.net.poll(self.now);
        let b = self.b.net.poll(self.now);
        a || b
    }

    /// The earliest time either stack (or `extra`) wants a poll.
    fn next_deadline(&mut self, extra: Option<Instant>) -> Option<Instant> {
        let now = self.now;
        [
            self.a.net.poll_delay(now).map(|d| now + d),
            self.b.net.poll_delay(now).map(|d| now + d),
            extra,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Threaded model: both model threads are done ([`models_settled`]).
    fn settled(&self) -> bool {
        models_settled(&self.a.sim, &self.b.sim)
    }

    /// Nothing happened: move the clock to the next deadline (at least
    /// 1 ms, at most `max_jump`). In threaded mode frames may still be in
    /// flight on the model threads: wait (real time) until they settle
    /// first. A fixed pause was not enough on a loaded machine: the fake
    /// clock ran ahead of a descheduled model thread, and a ping reply
    /// still on its way counted as lost.
    pub fn idle(&mut self, extra: Option<Instant>, max_jump: Duration) {
        if self.mode == Mode::Threaded {
            let start = std::time::Instant::now();
            while !self.settled() && start.elapsed() < std::time::Duration::from_secs(10) {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            // What arrived meanwhile is taken at the current time, not
            // after the jump.
            if self.poll() {
                return;
            }
        }
        let to = self
            .next_deadline(extra)
            .unwrap_or(self.now + max_jump)
            .max(self.now + Duration::from_millis(1))
            .min(self.now + max_jump);
        self.now = to;
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Poll until `done` holds (checked after every round), jumping the
    /// clock when idle; false if `limit` of simulated time passed first.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            let progress = self.poll();
            if done(self) {
                return true;
            }
            if !progress {
                self.idle(None, Duration::from_millis(100));
            }
        }
        false
    }

    /// Run an app on stack `a` (`on_a`) or `b` until it is done; its
    /// console output is returned with the verdict.
    pub fn run_app<A: App<Port>>(
        &mut self,
        on_a: bool,
        app: &mut A,
        limit: Duration,
    ) -> (Verdict, String) {
        let mut out = String::new();
        let end = self.now + limit;
        loop {
            let progress = self.poll();
            let now = self.now;
            let net = if on_a {
                &mut self.a.net
            } else {
                &mut self.b.net
            };
            if let AppStatus::Done(v) = app.poll(net, now, &mut out) {
                return (v, out);
            }
            assert!(
                self.now < end,
                "app did not finish in {limit}; output:\n{out}"
            );
            if !progress {
                let at = app.poll_at(now);
                self.idle(at, Duration::from_millis(100));
            }
        }
    }

    pub fn close(self) {
        self.a.close();
        self.b.close();
    }
}

/// A DHCP server for the tests, on a UDP socket (port 67) of a stack with
/// a static address: hands out one address per client MAC from a pool,
/// answers DISCOVER with OFFER and REQUEST with ACK (or NAK for an address
/// it did not offer), counts what it did.
pub struct DhcpServer {
    socket: SocketHandle,
    pub server: Ipv4Address,
    pub router: Option<Ipv4Address>,
    pub prefix: u8,
    pub lease_secs: u32,
    pool: Vec<Ipv4Address>,
    leases: Vec<(EthernetAddress, Ipv4Address)>,
    pub offers: u32,
    pub acks: u32,
    pub naks: u32,
    /// Answer nothing (to let leases expire).
    pub silent: bool,
}

impl DhcpServer {
    pub fn new<D: cxos_drivers::NetDevice>(
        net: &mut NetIf<D>,
        pool: &[Ipv4Address],
        lease_secs: u32,
    ) -> DhcpServer {
        let cidr = net.ipv4().expect("the server has a static address");
        let (socket, _) = net.udp_socket(67, 8, 8 * 1024).expect("bind port 67");
        DhcpServer {
            socket,
            server: cidr.address(),
            router: Some(cidr.address()),
            prefix: cidr.prefix_len(),
            lease_secs,
            pool: pool.to_vec(),
            leases: Vec::new(),
            offers: 0,
            acks: 0,
            naks: 0,
            silent: false,
        }
    }

    fn address_for(&mut self, mac: EthernetAddress) -> Option<Ipv4Address> {
        if let Some((_, a)) = self.leases.iter().find(|(m, _)| *m == mac) {
            return Some(*a);
        }
        let a = self
            .pool
            .iter()
            .copied()
            .find(|a| !self.leases.iter().any(|(_, l)| l == a))?;
        self.leases.push((mac, a));
        Some(a)
    }

    /// Answer what arrived.
    pub fn poll<D: cxos_drivers::NetDevice>(&mut self, net: &mut NetIf<D>) {
        let mut requests = Vec::new();
        {
            let s = net.sockets.get_mut::<udp::Socket>(self.socket);
            while let Ok((data, meta)) = s.recv() {
                requests.push((data.to_vec(), meta.endpoint));
            }
        }
        for (data, from) in requests {
            if self.silent {
                continue;
            }
            let Ok(packet) = DhcpPacket::new_checked(&data[..]) else {
                continue;
            };
            let Ok(req) = DhcpRepr::parse(&packet) else {
                continue;
            };
            let mac = req.client_hardware_address;
            let (kind, yiaddr) = match req.message_type {
                DhcpMessageType::Discover => match self.address_for(mac) {
                    Some(a) => (DhcpMessageType::Offer, a),
                    None => continue,
                },
                DhcpMessageType::Request => {
                    let wanted = req.requested_ip.unwrap_or(req.client_ip);
                    match self.address_for(mac) {
                        Some(a) if a == wanted => (DhcpMessageType::Ack, a),
                        _ => (DhcpMessageType::Nak, Ipv4Address::UNSPECIFIED),
                    }
                }
                _ => continue,
            };
            let mask = u32::MAX << (32 - self.prefix as u32);
            let reply = DhcpRepr {
                message_type: kind,
                transaction_id: req.transaction_id,
                secs: 0,
                client_hardware_address: mac,
                client_ip: Ipv4Address::UNSPECIFIED,
                your_ip: yiaddr,
                server_ip: self.server,
                router: self.router,
                subnet_mask: Some(Ipv4Address::from(mask)),
                relay_agent_ip: Ipv4Address::UNSPECIFIED,
                broadcast: false,
                requested_ip: None,
                client_identifier: None,
                server_identifier: Some(self.server),
                parameter_request_list: None,
                dns_servers: None,
                max_size: None,
                lease_duration: Some(self.lease_secs),
                renew_duration: None,
                rebind_duration: None,
                additional_options: &[],
            };
            let mut buf = vec![0u8; reply.buffer_len()];
            reply
                .emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
                .expect("emit a DHCP reply");
            // A renewing client has its address and asked from it:
            // answer it directly; others by broadcast.
            let to = if from.addr != IpAddress::Ipv4(Ipv4Address::UNSPECIFIED)
                && kind == DhcpMessageType::Ack
            {
                (from.addr, 68)
            } else {
                (IpAddress::Ipv4(Ipv4Address::BROADCAST), 68)
            };
            net.sockets
                .get_mut::<udp::Socket>(self.socket)
                .send_slice(&buf, to)
                .expect("queue a DHCP reply");
            match kind {
                DhcpMessageType::Offer => self.offers += 1,
                DhcpMessageType::Ack => self.acks += 1,
                _ => self.naks += 1,
            }
        }
    }
}

/// A byte stream that is cheap to produce and check anywhere in it: a
/// pseudo-random block of prime length, repeated.
pub struct Pattern {
    block: Vec<u8>,
}

impl Pattern {
    pub const PERIOD: usize = 65_521;

    pub fn new() -> Pattern {
        let mut x: u32 = 0x1234_5678;
        let block = (0..Self::PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        Pattern { block }
    }

    /// Fill `buf` with the stream's bytes from `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut at = (offset % Self::PERIOD as u64) as usize;
        let mut done = 0;
        while done < buf.len() {
            let n = (Self::PERIOD - at).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.block[at..at + n]);
            done += n;
            at = 0;
        }
    }

    /// Whether `buf` equals the stream from `offset` on.
    pub fn matches(&self, offset: u64, buf: &[u8]) -> bool {
        let mut at = (offset % Self::PERIOD as u64) as usize;
        let mut done = 0;
        while done < buf.len() {
            let n = (Self::PERIOD - at).min(buf.len() - done);
            if buf[done..done + n] != self.block[at..at + n] {
                return false;
            }
            done += n;
            at = 0;
        }
        true
    }
}

impl Default for Pattern {
    fn default() -> Self {
        Pattern::new()
    }
}

// ---- iperf: TAP --------------------------------------------------------------
// (appended by helper "iperf")

/// One adapter and its stack whose port is wired to a TAP device moved
/// into a fresh network namespace (the stock tools' side), polled against
/// the real clock because the tools in the namespace run in real time.
/// Everything goes when it is dropped (the namespace by `Netns`, the TAP
/// with the link's threads).
pub struct TapNode {
    pub node: Node,
    pub ns: cxos_testnet::Netns,
    pub ifname: String,
    start: std::time::Instant,
}

impl TapNode {
    /// A namespace tagged `tag` with `tools` available, a TAP in it with
    /// `peer_cidr` (e.g. "10.77.0.1/24"), and cxos's stack configured with
    /// `cxos_cfg` on a ConnectX-5 model whose port is the TAP's other end.
    /// A `Skip` when not root or the tools cannot be had.
    pub fn new(
        tag: &str,
        tools: &[&str],
        peer_cidr: &str,
        cxos_cfg: &str,
    ) -> Result<TapNode, cxos_testnet::Skip> {
        let ns = cxos_testnet::prepare(tag, tools)?;
        let ifname = cxos_testnet::unique_ifname("cxt");
        let tap = mlx5_sim::link::TapDevice::open(&ifname)
            .unwrap_or_else(|e| panic!("open TAP {ifname}: {e}"));
        let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
        sim.attach_tap(tap)
            .expect("attach the TAP to the model's port");
        ns.adopt_link(&ifname)
            .expect("move the TAP into the namespace");
        ns.add_addr(&ifname, peer_cidr).expect("address the TAP");
        ns.link_up(&ifname).expect("TAP up");
        let start = std::time::Instant::now();
        let node = Node::new(sim, EthConfig::default(), cxos_cfg, Instant::from_millis(0));
        Ok(TapNode {
            node,
            ns,
            ifname,
            start,
        })
    }

    /// The stack's clock: real milliseconds since the node was made.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    pub fn poll(&mut self) -> bool {
        let now = self.now();
        self.node.net.poll(now)
    }

    /// Nothing to do: sleep a little (at most until the stack's or
    /// `extra`'s deadline, never more than 1 ms).
    pub fn idle(&mut self, extra: Option<Instant>) {
        let now = self.now();
        let until = [self.node.net.poll_delay(now).map(|d| now + d), extra]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_millis(1))
            .min(now + Duration::from_millis(1));
        if until > now {
            std::thread::sleep(std::time::Duration::from_micros(
                (until - now).total_micros(),
            ));
        }
    }

    /// Unplugs the TAP, then closes the adapter with the leak checks of
    /// [`Node::close`]; the namespace goes when `self.ns` drops.
    pub fn close(self) {
        self.node.sim.detach_link();
        self.node.close();
    }
}

/// Threaded model: the two wired models' threads are done with what the
/// drivers asked of them — no doorbell unprocessed, no frame waiting in an
/// outbox or between the two ports.
pub fn models_settled(a: &SimPlatform, b: &SimPlatform) -> bool {
    let busy = |s: &SimPlatform| s.with_model(|f| f.has_work() || f.nic.wire.has_outgoing());
    if busy(a) || busy(b) {
        return false;
    }
    let (pa, pb) = (a.port_stats(), b.port_stats());
    pa.tx_frames == pb.rx_frames && pb.tx_frames == pa.rx_frames
}
