//! The peer network of `cargo xtask run` and the network system tests: a
//! network namespace (cxos-testnet's [`Netns`]) holding the model's TAP
//! device with the host side's addresses on it, a DHCP server (`dnsmasq`
//! from dnsmasq-base, no system service) and the stock peers (`iperf3 -s`,
//! `ping`, a capture read with tshark). `mlx5-sim` runs inside it (see
//! [`PeerNetwork::sim_options`]) and opens that TAP as its wire, so every
//! frame the guest sends ends in the namespace: traffic never reaches the
//! host's own interfaces.
//!
//! Cleanup: dropping the [`PeerNetwork`] kills everything started in the
//! namespace (the model too) and deletes it, also while unwinding from a
//! panic; if xtask itself dies (Ctrl-C, kill), the namespace's watchdog
//! (a shell in its own process group, so Ctrl-C does not reach it) sees its
//! pipe close and does the same.

use std::path::PathBuf;
use std::time::Duration;

pub use cxos_testnet::{Capture, DhcpRange, Netns};

use crate::sim_device::SimOptions;

/// What the namespace offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Names the namespace (`cxos-<tag>-<pid>-<n>`).
    pub tag: String,
    /// The first three octets of the IPv4 /24; the host side is `.1`.
    pub subnet: [u8; 3],
    /// Run dnsmasq on the TAP, leasing `.100`..`.199` for this many
    /// seconds (dnsmasq's minimum is 120).
    pub dhcp_lease_secs: Option<u32>,
    /// VLAN sub-interfaces on the TAP (`cxsim0.<id>`): VLAN id and the
    /// first three octets of its own /24 (host side `.1`); dnsmasq, if
    /// configured, leases `.100`..`.199` on each too.
    pub vlans: Vec<(u16, [u8; 3])>,
}

impl PeerConfig {
    /// 10.33.0.0/24 with DHCP (lease 120 s).
    pub fn new(tag: &str) -> PeerConfig {
        PeerConfig {
            tag: tag.to_string(),
            subnet: [10, 33, 0],
            dhcp_lease_secs: Some(120),
            vlans: Vec::new(),
        }
    }

    /// `.n` of VLAN `vlan`'s subnet (`None` if it has none).
    pub fn vlan_ipv4(&self, vlan: u16, n: u8) -> Option<String> {
        let (_, [a, b, c]) = self.vlans.iter().find(|(v, _)| *v == vlan)?;
        Some(format!("{a}.{b}.{c}.{n}"))
    }

    /// `.n` of the subnet.
    pub fn ipv4(&self, n: u8) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.{n}")
    }

    /// `::n` of the IPv6 /64 (ULA `fd00:<b><c>::/64`, from the IPv4 subnet).
    pub fn ipv6(&self, n: u16) -> String {
        let [_, b, c] = self.subnet;
        format!("fd00:{:x}::{n:x}", u16::from_be_bytes([b, c]))
    }
}

/// Why the peer network is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    /// Cannot be had here (not root, tools missing and not installable):
    /// tests report it as a skip.
    Skip(String),
    /// Something failed that should have worked.
    Failed(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Skip(why) => write!(f, "skipped: {why}"),
            PeerError::Failed(why) => f.write_str(why),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> PeerError {
    PeerError::Failed(e.to_string())
}

/// The namespace with the model's TAP in it (see the module docs).
#[derive(Debug)]
pub struct PeerNetwork {
    ns: Netns,
    config: PeerConfig,
}

/// The TAP's name inside the namespace (names are per namespace).
pub const TAP: &str = "cxsim0";

impl PeerNetwork {
    /// Creates the namespace, a persistent TAP [`TAP`] in it with
    /// `.1/24` and `::1/64`, up, and dnsmasq on it if configured. Tools
    /// missing are installed when root (cxos-testnet's `require_tools`).
    pub fn create(config: &PeerConfig) -> Result<PeerNetwork, PeerError> {
        if !cxos_testnet::is_root() {
            return Err(PeerError::Skip(
                "the peer network needs root (network namespaces, TAP devices)".into(),
            ));
        }
        cxos_testnet::require_tools(&["ip", "ping", "iperf3", "dnsmasq", "tshark"])
            .map_err(|s| PeerError::Skip(s.reason))?;
        if !config.vlans.is_empty()
            && std::process::Command::new("python3")
                .arg("--version")
                .output()
                .is_err()
        {
            return Err(PeerError::Skip(
                "the VLAN relay needs python3 (the host kernel may lack 802.1Q)".into(),
            ));
        }
        let ns = Netns::new(&config.tag).map_err(failed)?;
        ns.ip(&["tuntap", "add", "dev", TAP, "mode", "tap"])
            .map_err(failed)?;
        ns.add_addr(TAP, &format!("{}/24", config.ipv4(1)))
            .map_err(failed)?;
        ns.add_addr(TAP, &format!("{}/64", config.ipv6(1)))
            .map_err(failed)?;
        ns.link_up(TAP).map_err(failed)?;
        for (id, [a, b, c]) in &config.vlans {
            let sub = vlan_ifname(*id);
            ns.ip(&["tuntap", "add", "dev", &sub, "mode", "tap"])
                .map_err(failed)?;
            ns.add_addr(&sub, &format!("{a}.{b}.{c}.1/24"))
                .map_err(failed)?;
            ns.link_up(&sub).map_err(failed)?;
        }
        let net = PeerNetwork {
            ns,
            config: config.clone(),
        };
        if !config.vlans.is_empty() {
            net.start_vlan_relay()?;
        }
        if let (Some(lease), false) = (config.dhcp_lease_secs, config.vlans.is_empty()) {
            net.start_dnsmasq_vlans(lease)?;
        } else if let Some(lease) = config.dhcp_lease_secs {
            net.ns
                .start_dnsmasq(
                    TAP,
                    &config.ipv4(100),
                    &config.ipv4(199),
                    "255.255.255.0",
                    lease,
                )
                .map_err(failed)?;
        }
        Ok(net)
    }

    /// The 802.1Q relay between the model's unix wire and the TAPs (see
    /// [`VLAN_RELAY`]), listening on the wire before the model starts.
    fn start_vlan_relay(&self) -> Result<(), PeerError> {
        let script = self.ns.dir().join("vlan_relay.py");
        std::fs::write(&script, VLAN_RELAY).map_err(failed)?;
        let mut c = self.ns.command("python3");
        c.arg("-u").arg(&script).arg(self.wire_path()).arg(TAP);
        for (id, _) in &self.config.vlans {
            c.arg(format!("{id}={}", vlan_ifname(*id)));
        }
        self.ns.spawn("vlan-relay", c).map_err(failed)?;
        self.ns
            .wait_for_log("vlan-relay", "listening", Duration::from_secs(10))
            .map_err(failed)
    }

    /// The unix wire the model joins when VLANs are configured.
    fn wire_path(&self) -> PathBuf {
        self.ns.dir().join("wire.sock")
    }

    /// One dnsmasq serving the TAP's subnet and every VLAN's (a second
    /// instance could not bind the DHCP port), leases in the same file as
    /// cxos-testnet's (so [`PeerNetwork::dhcp_leases`] reads them).
    fn start_dnsmasq_vlans(&self, lease: u32) -> Result<(), PeerError> {
        let range = |ifname: String, a: [u8; 3]| DhcpRange {
            ifname,
            first: format!("{}.{}.{}.100", a[0], a[1], a[2]),
            last: format!("{}.{}.{}.199", a[0], a[1], a[2]),
            mask: "255.255.255.0".into(),
        };
        let mut ranges = vec![DhcpRange {
            ifname: TAP.into(),
            first: self.config.ipv4(100),
            last: self.config.ipv4(199),
            mask: "255.255.255.0".into(),
        }];
        for (id, net) in &self.config.vlans {
            ranges.push(range(vlan_ifname(*id), *net));
        }
        self.ns
            .start_dnsmasq_ranges(&ranges, lease)
            .map(|_| ())
            .map_err(failed)
    }

    /// The namespace (run more tools in it with `netns().command(..)`).
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Keeps the tools' logs (dnsmasq's, iperf3 -s's, the leases) in `to`
    /// before the namespace goes (e.g. when a test fails).
    // For the issue 9 tests and `run`'s main job (tested below).
    #[allow(dead_code)]
    pub fn keep_logs(&self, to: &std::path::Path) -> Result<(), PeerError> {
        self.ns.copy_logs(to).map_err(failed)
    }

    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// The host side's IPv4 address (`.1`), the guest's gateway and peer.
    pub fn host_ip(&self) -> String {
        self.config.ipv4(1)
    }

    pub fn host_ip6(&self) -> String {
        self.config.ipv6(1)
    }

    /// How to start `mlx5-sim` in this namespace wired to its TAP
    /// (with `crate::sim_device::SimDevice::start_with` or
    /// `crate::run::run_sim_with`), capturing into `pcap` if given (headers
    /// only and bounded: [`SimOptions::test_capture`]).
    pub fn sim_options(&self, pcap: Option<PathBuf>) -> SimOptions {
        let wire = if self.config.vlans.is_empty() {
            format!("tap:{TAP}")
        } else {
            format!("unix:{}", self.wire_path().display())
        };
        let options = SimOptions {
            wire: Some(wire),
            netns: Some(self.ns.name().to_string()),
            ..SimOptions::default()
        };
        match pcap {
            Some(path) => options.test_capture(path),
            None => options,
        }
    }

    /// dnsmasq's lease file (one lease a line: expiry MAC IP name id).
    pub fn dhcp_leases(&self) -> String {
        self.ns.dhcp_leases()
    }

    /// The address dnsmasq leased to `mac` (`aa:bb:..`, lowercase), if any.
    pub fn leased_ip(&self, mac: &str) -> Option<String> {
        self.dhcp_leases().lines().find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[1].eq_ignore_ascii_case(mac)).then(|| w[2].to_string())
        })
    }

    /// Stock `iperf3 -s -p port` in the namespace, once it listens.
    // For the issue 9 tests and `run`'s main job (tested below).
    #[allow(dead_code)]
    pub fn iperf3_server(&self, port: u16) -> Result<u32, PeerError> {
        self.ns.start_iperf3_server(port).map_err(failed)
    }

    /// Stock `iperf3 -c addr --json extra..` from the namespace, to its
    /// end; its JSON report. A failed run (non-zero exit, or — iperf3 3.12
    /// exits 0 with `--json` — an `"error"` member in the report) is a
    /// `Failed` with iperf3's message.
    // For the issue 9 tests and `run`'s main job (tested below).
    #[allow(dead_code)]
    pub fn iperf3_client(&self, addr: &str, extra: &[&str]) -> Result<String, PeerError> {
        let mut args = vec!["-c", addr, "--json"];
        args.extend_from_slice(extra);
        let json = self.ns.run("iperf3", &args).map_err(failed)?;
        check_iperf3_report(addr, json)
    }

    /// [`PeerNetwork::iperf3_client`] started in the background (for
    /// things to happen during the run, e.g. the link going down); finish
    /// it with [`Iperf3Run::finish`].
    // For the issue 9 tests and `run`'s main job (tested below).
    #[allow(dead_code)]
    pub fn iperf3_client_start(&self, addr: &str, extra: &[&str]) -> Result<Iperf3Run, PeerError> {
        let mut c = self.ns.command("iperf3");
        c.args(["-c", addr, "--json"]).args(extra);
        let child = c
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| PeerError::Failed(format!("cannot start iperf3: {e}")))?;
        Ok(Iperf3Run {
            child,
            addr: addr.to_string(),
        })
    }

    /// Stock `ping -c count addr` from the namespace; its output.
    pub fn ping(&self, addr: &str, count: u32) -> Result<String, PeerError> {
        self.ns.ping(addr, count).map_err(failed)
    }

    /// A capture on the TAP into `<netns dir>/<name>.pcap` (stop it, then
    /// read it with [`Capture::read`]).
    pub fn capture(&self, name: &str) -> Result<Capture, PeerError> {
        self.ns.start_tshark(TAP, name).map_err(failed)
    }

    /// Waits until dnsmasq has leased an address to `mac`.
    // For the issue 9 tests and `run`'s main job (tested below).
    #[allow(dead_code)]
    pub fn wait_for_lease(&self, mac: &str, timeout: Duration) -> Result<String, PeerError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(ip) = self.leased_ip(mac) {
                return Ok(ip);
            }
            if std::time::Instant::now() >= deadline {
                return Err(PeerError::Failed(format!(
                    "no DHCP lease for {mac} within {} s; leases: {:?}; dnsmasq:\n{}",
                    timeout.as_secs(),
                    self.dhcp_leases(),
                    self.ns.log("dnsmasq")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The host kernel may lack 802.1Q (CONFIG_VLAN_8021Q, bridge VLAN
/// filtering, act_vlan: none of them on the development machine), so the
/// VLANs are done in user space: the model's wire is a unix wire (see
/// mlx5-sim's link/unix.rs: 8-byte hello each way, then records of a BE
/// u32 length and the frame, or a carrier word with bit 31 set) whose
/// other end is this relay. Untagged frames go to and from the TAP
/// [`TAP`]; frames tagged with a configured VLAN id lose the tag on the
/// way to their own TAP (`cxsim0.<id>`) and get it back on the way out;
/// other tags are dropped. Arguments: wire path, untagged TAP,
/// `<id>=<tap>`...
const VLAN_RELAY: &str = r#"
import fcntl, os, select, socket, struct, sys

TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
HELLO = b"cxwire1\n"

def tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd

def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

path, untagged = sys.argv[1], sys.argv[2]
vlans = {int(a.split("=")[0]): a.split("=")[1] for a in sys.argv[3:]}
fds = {None: tap(untagged)}
for vid, name in vlans.items():
    fds[vid] = tap(name)
by_fd = {fd: vid for vid, fd in fds.items()}
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
print("listening", path, flush=True)
while True:
    conn, _ = srv.accept()
    conn.sendall(HELLO)
    if read_exact(conn, 8) != HELLO:
        conn.close()
        continue
    print("connected", flush=True)
    counts = {}
    try:
        while True:
            ready, _, _ = select.select([conn] + list(by_fd), [], [])
            for r in ready:
                if r is conn:
                    word = struct.unpack(">I", read_exact(conn, 4))[0]
                    if word & 0x80000000:
                        continue
                    f = read_exact(conn, word)
                    vid = None
                    if len(f) >= 18 and f[12:14] == b"\x81\x00":
                        vid = struct.unpack(">H", f[14:16])[0] & 0xFFF
                        f = f[:12] + f[16:]
                    fd = fds.get(vid)
                    if fd is not None:
                        os.write(fd, f)
                        counts[vid] = counts.get(vid, 0) + 1
                else:
                    f = os.read(r, 65536)
                    vid = by_fd[r]
                    if vid is not None:
                        f = f[:12] + struct.pack(">HH", 0x8100, vid) + f[12:]
                    conn.sendall(struct.pack(">I", len(f)) + f)
    except (EOFError, OSError) as e:
        print("disconnected", e, counts, flush=True)
        conn.close()
"#;

/// The VLAN sub-interface of the TAP for VLAN `id` (`cxsim0.10`).
pub fn vlan_ifname(id: u16) -> String {
    format!("{TAP}.{id}")
}

/// An `iperf3 -c` running in the namespace (see
/// [`PeerNetwork::iperf3_client_start`]); killed if dropped unfinished.
#[derive(Debug)]
pub struct Iperf3Run {
    child: std::process::Child,
    addr: String,
}

impl Iperf3Run {
    /// Waits for the end of the run; its JSON report, checked as
    /// [`PeerNetwork::iperf3_client`] does.
    // For the issue 9 tests and `run`'s main job (tested below).
    #[allow(dead_code)]
    pub fn finish(mut self) -> Result<String, PeerError> {
        let mut out = String::new();
        let mut err = String::new();
        use std::io::Read;
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = self.child.wait().map_err(failed)?;
        if !status.success() && out.trim().is_empty() {
            return Err(PeerError::Failed(format!(
                "iperf3 -c {} failed ({status}): {err}",
                self.addr
            )));
        }
        check_iperf3_report(&self.addr, out)
    }
}

impl Drop for Iperf3Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// iperf3's `--json` report, or its `"error"` as a failure (iperf3 3.12
/// exits 0 with `--json` even when the test failed).
fn check_iperf3_report(addr: &str, json: String) -> Result<String, PeerError> {
    let report: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| PeerError::Failed(format!("iperf3 -c {addr}: bad JSON ({e}): {json}")))?;
    match report.get("error").and_then(|e| e.as_str()) {
        Some(error) => Err(PeerError::Failed(format!("iperf3 -c {addr}: {error}"))),
        None => Ok(json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root only: with VLANs, the relay answers on the unix wire; an ARP
    /// request tagged with VLAN 10 reaches `cxsim0.10` untagged and its
    /// reply comes back tagged with VLAN 10; one for an unknown VLAN is
    /// dropped.
    #[test]
    fn vlan_relay_tags_and_untags() {
        use std::io::{Read, Write};
        let config = PeerConfig {
            vlans: vec![(10, [10, 35, 10])],
            dhcp_lease_secs: None,
            ..PeerConfig::new("xtask-vlan")
        };
        let net = match PeerNetwork::create(&config) {
            Ok(net) => net,
            Err(PeerError::Skip(why)) => {
                let _ = writeln!(std::io::stderr(), "skipped: {why}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let o = net.sim_options(None);
        let path = o
            .wire
            .as_deref()
            .unwrap()
            .strip_prefix("unix:")
            .unwrap()
            .to_string();
        let addrs = net
            .netns()
            .ip(&["addr", "show", "dev", "cxsim0.10"])
            .unwrap();
        assert!(addrs.contains("inet 10.35.10.1/24"), "{addrs}");
        let mut w = std::os::unix::net::UnixStream::connect(&path).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        w.write_all(b"cxwire1\n").unwrap();
        let mut hello = [0u8; 8];
        w.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"cxwire1\n");
        let me = [0x02, 0, 0, 0, 0, 0xaa];
        let arp = |vid: u16, target: [u8; 4]| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&me);
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&vid.to_be_bytes());
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&me);
            f.extend_from_slice(&[10, 35, 10, 50]);
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&target);
            f
        };
        for f in [arp(20, [10, 35, 10, 1]), arp(10, [10, 35, 10, 1])] {
            w.write_all(&(f.len() as u32).to_be_bytes()).unwrap();
            w.write_all(&f).unwrap();
        }
        // Records until the tagged ARP reply (IPv6 chatter may come first).
        loop {
            let mut len = [0u8; 4];
            w.read_exact(&mut len).expect("an ARP reply on VLAN 10");
            let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
            w.read_exact(&mut f).unwrap();
            if f.len() >= 24 && f[12..14] == [0x81, 0x00] && f[16..18] == [0x08, 0x06] {
                assert_eq!(u16::from_be_bytes([f[14], f[15]]) & 0xfff, 10);
                assert_eq!(f[0..6], me, "the reply is for the requester");
                assert_eq!(f[24..26], [0, 2], "an ARP reply");
                break;
            }
        }
        let log = net.netns().log("vlan-relay");
        assert!(log.contains("connected"), "{log}");
    }

    #[test]
    fn addresses_follow_the_subnet() {
        let c = PeerConfig::new("t");
        assert_eq!(c.ipv4(1), "10.33.0.1");
        assert_eq!(c.ipv4(199), "10.33.0.199");
        assert_eq!(c.ipv6(1), "fd00:2100::1");
        let c = PeerConfig {
            subnet: [192, 168, 7],
            ..PeerConfig::new("t")
        };
        assert_eq!(c.ipv6(0x10), "fd00:a807::10");
    }

    /// Root only: the namespace has the TAP with both addresses and a
    /// serving dnsmasq; the model's options name them; all gone on drop.
    #[test]
    fn peer_network_is_built_and_removed() {
        let net = match PeerNetwork::create(&PeerConfig::new("xtask-peer")) {
            Ok(net) => net,
            Err(PeerError::Skip(why)) => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "skipped: {why}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let addrs = net.netns().ip(&["addr", "show", "dev", TAP]).unwrap();
        assert!(addrs.contains("inet 10.33.0.1/24"), "{addrs}");
        assert!(addrs.contains("inet6 fd00:2100::1/64"), "{addrs}");
        assert!(
            net.netns()
                .log("dnsmasq")
                .contains("DHCP, IP range 10.33.0.100 -- 10.33.0.199")
        );
        let o = net.sim_options(Some("/tmp/x.pcap".into()));
        assert_eq!(o.wire.as_deref(), Some("tap:cxsim0"));
        assert_eq!(o.snaplen, Some(crate::sim_device::TEST_SNAPLEN));
        assert_eq!(o.netns.as_deref(), Some(net.netns().name()));
        assert_eq!(net.leased_ip("52:54:00:00:00:01"), None);
        assert_eq!(net.config().tag, "xtask-peer");
        // The stock peers answer (client and server both in the namespace).
        net.iperf3_server(5201).unwrap();
        let json = net
            .iperf3_client(&net.host_ip(), &["-n", "256K", "-p", "5201"])
            .unwrap();
        assert!(json.contains("\"sum_received\""), "{json}");
        match net.iperf3_client(&net.host_ip6(), &["-n", "1K", "-p", "5999"]) {
            Err(PeerError::Failed(why)) => assert!(why.contains("iperf3"), "{why}"),
            other => panic!("a refused connection is a failure: {other:?}"),
        }
        let run = net
            .iperf3_client_start(&net.host_ip(), &["-n", "128K", "-p", "5201", "-R"])
            .unwrap();
        let json = run.finish().unwrap();
        assert!(json.contains("\"sum_received\""), "{json}");
        match net.wait_for_lease("52:54:00:00:00:01", Duration::from_millis(100)) {
            Err(PeerError::Failed(why)) => assert!(why.contains("no DHCP lease"), "{why}"),
            other => panic!("{other:?}"),
        }
        let kept = std::env::temp_dir().join(format!("cxos-peer-logs-{}", std::process::id()));
        net.keep_logs(&kept).unwrap();
        assert!(
            std::fs::read_to_string(kept.join("dnsmasq.log"))
                .unwrap()
                .contains("DHCP")
        );
        std::fs::remove_dir_all(&kept).unwrap();
        let name = net.netns().name().to_string();
        drop(net);
        let list = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
    }
}
