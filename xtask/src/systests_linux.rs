//! System tests with Linux's own mlx5_core as the driver: Debian trixie's
//! stock kernel ([`crate::linux_guest`]) in the vfio-user QEMU, with
//! `mlx5-sim` functions attached ([`crate::linux_vm`]). The model is the
//! same one cxos runs on; Linux is its independent client.
//!
//! To keep the CI cost down one boot serves several tests: one VM with all
//! five parts attached covers every `linux-probe-<part>`, and one VM on the
//! namespace peer covers `linux-peer-traffic`, `linux-mtu-ethtool` and
//! `linux-rmmod-cycles`. Each fixture runs once per `cargo xtask test` (by
//! the first test that needs it); every test then judges its own part of
//! the result. Every model runs with `--trace-commands`; traces, scripts,
//! serial logs and captures land next to the tests' logs.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::linux_guest::{self, LinuxGuest};
use crate::linux_vm::{self, LinuxVm};
use crate::sim_device::{SimDevice, SimOptions};
use crate::systests::{Context, SystemTest};
use crate::systests_sim::{self, Setup};

/// The parts, in the order they are attached (01:00.0 ... 05:00.0).
pub const PARTS: &[&str] = &["cx4", "cx4lx", "cx5", "cx6", "cx6dx"];

/// A Linux boot to the script takes ~5 s here; probing five functions and
/// the checks ~20 s more; the limit covers a loaded machine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(240);
/// How long cx6dx's firmware boots in the probe VM: longer than Linux
/// takes to boot and reach it (~5 s under TCG), so mlx5_core finds
/// `initializing` set and waits.
const FW_BOOT_MS: u64 = 9000;
/// The peer boot: traffic, MTU, ethtool and five rmmod cycles.
const PEER_TIMEOUT: Duration = Duration::from_secs(420);
/// The part the peer tests run on (the one `cargo xtask run` models).
const PEER_PART: &str = "cx5";
/// The guest's address in the peer network (the host side is `.1`).
const GUEST: u8 = 2;
/// rmmod / modprobe cycles.
const CYCLES: u32 = 5;
/// Linux and cxos side by side: two boots, pings and four iperf3 runs.
const MEET_TIMEOUT: Duration = Duration::from_secs(240);

pub fn all() -> Vec<SystemTest> {
    let t = |name, timeout, run| SystemTest { name, timeout, run };
    vec![
        t("linux-probe-cx4", PROBE_TIMEOUT, probe),
        t("linux-probe-cx4lx", PROBE_TIMEOUT, probe),
        t("linux-probe-cx5", PROBE_TIMEOUT, probe),
        t("linux-probe-cx6", PROBE_TIMEOUT, probe),
        t("linux-probe-cx6dx", PROBE_TIMEOUT, probe),
        t("linux-peer-traffic", PEER_TIMEOUT, peer_traffic),
        t("linux-mtu-ethtool", PEER_TIMEOUT, mtu_ethtool),
        t("linux-ethtool-m", PEER_TIMEOUT, ethtool_m),
        t("linux-rmmod-cycles", PEER_TIMEOUT, rmmod_cycles),
        t("linux-meets-cxos", MEET_TIMEOUT, meets_cxos),
    ]
}

/// The guest, provisioned once per run.
pub(crate) fn guest() -> Result<LinuxGuest, String> {
    static GUEST: OnceLock<Result<LinuxGuest, String>> = OnceLock::new();
    GUEST
        .get_or_init(|| linux_guest::guest().map_err(|e| e.to_string()))
        .clone()
}

/// Starts a model for a Linux VM with its command trace at `trace`.
fn start_sim(
    setup: &Setup,
    personality: &str,
    name: &str,
    log: PathBuf,
    options: SimOptions,
) -> Result<SimDevice, String> {
    SimDevice::start_with(&setup.sim, personality, name, &log, &options)
}

/// Failed commands in a `--trace-commands` file (`status` not 0x0).
pub fn failed_commands(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter(|l| l.starts_with("cmd ") && !l.contains(" status 0x0 "))
        .map(str::to_string)
        .collect()
}

// ---- linux-probe-<part> ----

/// What the probe boot left for the per-part tests.
#[derive(Debug, Clone)]
struct ProbeRun {
    /// The guest's serial output.
    text: String,
    /// Per part: (firmware the model reports, trace text, model problems).
    parts: Vec<(String, String, Vec<String>)>,
}

fn probe_run(ctx: &Context) -> Result<ProbeRun, String> {
    static RUN: OnceLock<Result<ProbeRun, String>> = OnceLock::new();
    RUN.get_or_init(|| run_probe(ctx)).clone()
}

const PROBE_SCRIPT: &str = r#"
modprobe mlx5_core
n=0
for p in cx4 cx4lx cx5 cx6 cx6dx; do
    n=$((n + 1)); pci=0000:0$n:00.0
    check probe-$p wait_for 60 has_netdev $pci
    dev=$(netdev_of $pci)
    value netdev-$p "$dev"
    check up-$p ip link set "$dev" up
done
n=0
for p in cx4 cx4lx cx5 cx6 cx6dx; do
    n=$((n + 1)); dev=$(netdev_of 0000:0$n:00.0)
    check carrier-$p wait_for 30 carrier_up "$dev"
    value fw-$p "$(ethtool -i "$dev" | sed -n 's/^firmware-version: //p')"
    value speed-$p "$(cat /sys/class/net/$dev/speed)"
    value driver-$p "$(ethtool -i "$dev" | sed -n 's/^driver: //p')"
done
# cx4 and cx4lx share one wire, cx5 and cx6 another: each pair pings
# across it, the second of the pair in a network namespace of its own.
pair() {
    a=$(netdev_of 0000:0$1:00.0); b=$(netdev_of 0000:0$2:00.0); ns=peer$1
    ip netns add $ns
    ip link set "$b" netns $ns
    ip addr add 10.9.$1.1/24 dev "$a"
    ip -n $ns addr add 10.9.$1.2/24 dev "$b"
    ip -n $ns link set lo up
    ip -n $ns link set "$b" up
    check ping-$3-$4 ping -c 3 -W 2 10.9.$1.2
    check ping-$4-$3 ip netns exec $ns ping -c 3 -W 2 10.9.$1.1
}
pair 1 2 cx4 cx4lx
pair 3 4 cx5 cx6
host_sync probed
report_dmesg
"#;

fn run_probe(ctx: &Context) -> Result<ProbeRun, String> {
    let setup = systests_sim::setup(ctx)?;
    let guest = guest()?;
    let log = ctx.ws.logs_dir().join("linux-probe.log");
    let mut sims = Vec::new();
    let wires = [
        std::env::temp_dir().join(format!("cxos-{}-probe-a.sock", std::process::id())),
        std::env::temp_dir().join(format!("cxos-{}-probe-b.sock", std::process::id())),
    ];
    for (i, p) in PARTS.iter().enumerate() {
        let options = SimOptions {
            trace: Some(log.with_extension(format!("{p}.trace"))),
            // cx4 + cx4lx on one wire, cx5 + cx6 on another, cx6dx alone.
            wire: wires.get(i / 2).map(|w| format!("unix:{}", w.display())),
            // cx6dx's firmware is still booting when Linux gets to it: its
            // driver must wait for `initializing` to clear.
            fw_boot_ms: (*p == "cx6dx").then_some(FW_BOOT_MS),
            ..SimOptions::default()
        };
        let sim = start_sim(
            &setup,
            p,
            &format!("linux-probe-{p}"),
            log.with_extension(format!("{p}.sim.log")),
            options,
        )?;
        sims.push(sim);
    }
    let refs: Vec<&SimDevice> = sims.iter().collect();
    let mut vm = LinuxVm::boot(
        &setup.qemu,
        &guest,
        &refs,
        PROBE_SCRIPT,
        &log,
        PROBE_TIMEOUT,
    )?;
    let sync = vm.next_sync()?;
    if sync.first().map(String::as_str) != Some("probed") {
        return Err(format!("unexpected sync {sync:?}"));
    }
    let mut parts = Vec::new();
    for (p, sim) in PARTS.iter().zip(&sims) {
        let stats = sim.ask_ok("stats")?;
        let fw = stats
            .iter()
            .find_map(|l| l.strip_prefix("firmware "))
            .map(|l| l.replace(" psid ", " ("))
            .map(|l| format!("{l})"))
            .unwrap_or_default();
        let mut problems = Vec::new();
        let san = sim.ask_ok("sanitizer")?;
        if san.last().map(String::as_str) != Some("ok 0 violations") {
            problems.push(format!("sanitizer: {san:?}"));
        }
        parts.push((fw, p.to_string(), problems));
    }
    vm.reply("go")?;
    let text = vm.finish()?;
    for ((_, trace, problems), sim) in parts.iter_mut().zip(sims.iter_mut()) {
        if let Err(e) = sim.expect_clean_exit() {
            problems.push(e);
        }
        let path = log.with_extension(format!("{trace}.trace"));
        *trace = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for w in &wires {
        let _ = std::fs::remove_file(w);
    }
    Ok(ProbeRun { text, parts })
}

/// `linux-probe-<part>`: mlx5_core probes the part, its netdev appears,
/// comes up with carrier, reports the model's firmware; no mlx5 error or
/// warning in dmesg (allow-list: [`linux_vm::DMESG_ALLOWED`]); every
/// command Linux issued succeeded; no DMA sanitizer violation. The parts
/// wired in pairs (cx4-cx4lx, cx5-cx6) also ping each other both ways.
fn probe(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let part = test.name.trim_start_matches("linux-probe-");
    let index = PARTS
        .iter()
        .position(|p| *p == part)
        .ok_or_else(|| format!("no part {part}"))?;
    let run = probe_run(ctx)?;
    let text = &run.text;
    let _ = std::fs::write(ctx.log_path(test), text);
    linux_vm::require_checks(
        text,
        &[
            &format!("probe-{part}"),
            &format!("up-{part}"),
            &format!("carrier-{part}"),
        ],
    )?;
    let (fw, trace, problems) = &run.parts[index];
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let got = linux_vm::value(text, &format!("fw-{part}")).unwrap_or("");
    if got != fw {
        return Err(format!(
            "ethtool -i firmware-version {got:?}, the model reports {fw:?}"
        ));
    }
    let driver = linux_vm::value(text, &format!("driver-{part}")).unwrap_or("");
    if driver != "mlx5_core" {
        return Err(format!("driver {driver:?}"));
    }
    let pings: Vec<String> = linux_vm::checks(text)
        .into_iter()
        .filter(|(n, _)| n.starts_with("ping-") && n.split('-').any(|w| w == part))
        .map(|(n, _)| n)
        .collect();
    if part != "cx6dx" && pings.len() != 2 {
        return Err(format!("pings of {part}: {pings:?}"));
    }
    let names: Vec<&str> = pings.iter().map(String::as_str).collect();
    linux_vm::require_checks(text, &names)?;
    let pci = format!("0000:0{}:00.0", index + 1);
    let dmesg: Vec<String> = linux_vm::dmesg_problems(text)
        .into_iter()
        .filter(|l| l.contains(&pci) || !l.contains("0000:0"))
        .collect();
    if !dmesg.is_empty() {
        return Err(format!("kernel log:\n{}", dmesg.join("\n")));
    }
    let failed = failed_commands(trace);
    if !failed.is_empty() {
        return Err(format!("commands that failed:\n{}", failed.join("\n")));
    }
    let commands = trace.lines().filter(|l| l.starts_with("cmd ")).count();
    if part == "cx6dx" {
        // The first command came after the firmware boot time.
        let first = trace
            .lines()
            .find(|l| l.starts_with("cmd 1 "))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|t| {
                t.trim_start_matches('+')
                    .trim_end_matches("ms")
                    .parse::<f64>()
                    .ok()
            })
            .ok_or("no first command in the trace")?;
        if first < FW_BOOT_MS as f64 {
            return Err(format!(
                "ENABLE_HCA at {first} ms, before firmware finished booting ({FW_BOOT_MS} ms)"
            ));
        }
    }
    println!(
        "    ({part}: {} at {} Mb/s, {commands} commands)",
        linux_vm::value(text, &format!("netdev-{part}")).unwrap_or("?"),
        linux_vm::value(text, &format!("speed-{part}")).unwrap_or("?")
    );
    Ok(())
}

// ---- the peer boot: linux-peer-traffic, linux-mtu-ethtool, linux-rmmod-cycles ----

/// What the peer boot left for its three tests.
#[derive(Debug, Clone)]
enum PeerRun {
    /// Not root or tools missing: the tests print this and pass.
    Skipped(String),
    Done {
        text: String,
        /// Host-side results by the test they belong to: ("traffic" |
        /// "mtu" | "rmmod", check, result).
        host: Vec<(&'static str, String, Result<(), String>)>,
        /// Figures printed by the tests.
        figures: Vec<String>,
        /// The model's command trace.
        trace: String,
    },
}

fn peer_run(ctx: &Context) -> Result<PeerRun, String> {
    static RUN: OnceLock<Result<PeerRun, String>> = OnceLock::new();
    RUN.get_or_init(|| run_peer(ctx)).clone()
}

fn peer_script(config: &crate::netns::PeerConfig) -> String {
    let (g4, g6) = (config.ipv4(GUEST), config.ipv6(u16::from(GUEST)));
    let (h4, h6) = (config.ipv4(1), config.ipv6(1));
    format!(
        r#"
pci=0000:01:00.0
modprobe mlx5_core
check probe wait_for 60 has_netdev $pci
dev=$(netdev_of $pci)
ip addr add {g4}/24 dev "$dev"
ip -6 addr add {g6}/64 dev "$dev" nodad
check up ip link set "$dev" up
check carrier wait_for 30 carrier_up "$dev"
value mac "$(cat /sys/class/net/$dev/address)"
check ping4 ping -c 3 -W 2 {h4}
check ping6 ping6 -c 3 -W 2 {h6}
iperf3 -s -D
host_sync traffic
set -- $CXOS_REPLY
check arp sh -c "ip neigh show {h4} dev $dev | grep -qi 'lladdr $2'"
check iperf3-client iperf3_client -c {h4} -p 5202 -t 2
check iperf3-client-reverse iperf3_client -c {h4} -p 5202 -t 2 -R
value fw "$(ethtool -i "$dev" | sed -n 's/^firmware-version: //p')"
check ethtool-i ethtool -i "$dev"
check ethtool-k ethtool -k "$dev"
check ethtool-l ethtool -l "$dev"
check ethtool-g ethtool -g "$dev"
check ethtool-m ethtool -m "$dev"
value module-pn "$(ethtool -m "$dev" | sed -n 's/^[[:space:]]*Vendor PN[[:space:]]*: //p')"
value module-sn "$(ethtool -m "$dev" | sed -n 's/^[[:space:]]*Vendor SN[[:space:]]*: //p')"
ethtool -S "$dev" > /tmp/stats-before
check ping-for-stats ping -c 5 -W 2 {h4}
ethtool -S "$dev" > /tmp/stats-after
moved() {{
    a=$(sed -n "s/^ *$1: //p" /tmp/stats-before); b=$(sed -n "s/^ *$1: //p" /tmp/stats-after)
    [ -n "$a" ] && [ -n "$b" ] && [ "$b" -ge $((a + 5)) ]
}}
for c in rx_packets tx_packets rx_packets_phy tx_packets_phy rx_vport_unicast_packets tx_vport_unicast_packets; do
    check stats-$c moved $c
done
host_sync mtu
check mtu-9000 ip link set "$dev" mtu 9000
check jumbo-ping ping -c 3 -W 2 -s 8972 {h4}
host_sync jumbo
check down ip link set "$dev" down
check oper-down wait_for 10 oper_down "$dev"
check up-again ip link set "$dev" up
check carrier-again wait_for 30 carrier_up "$dev"
check ping-after-flap ping -c 3 -W 2 {h4}
n=0
while [ $n -lt {CYCLES} ]; do
    n=$((n + 1))
    check rmmod-$n rmmod mlx5_core
    host_sync unloaded $n
    check modprobe-$n modprobe mlx5_core
    check probe-$n wait_for 60 has_netdev $pci
    dev=$(netdev_of $pci)
    ip addr add {g4}/24 dev "$dev"
    check up-$n ip link set "$dev" up
    check carrier-$n wait_for 30 carrier_up "$dev"
    check traffic-$n ping -c 3 -W 2 {h4}
done
report_dmesg
"#
    )
}

/// Stock iperf3 from the peer namespace to `addr` (its JSON report),
/// again (up to 5 times, 1 s apart) while it fails before the test starts
/// (no connection, or the control connection reset): an iperf3 server
/// closes its listening socket after each test and opens it again a
/// moment later, so back-to-back clients can find no listener, or be
/// reset (the guest's `iperf3_client` does the same).
pub(crate) fn host_iperf3(
    net: &crate::netns::PeerNetwork,
    addr: &str,
    extra: &[&str],
) -> Result<String, String> {
    let mut attempt = 1;
    loop {
        match net.iperf3_client(addr, extra) {
            Ok(json) => return Ok(json),
            Err(e) if attempt < 5 && before_the_test(&e.to_string()) => {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Stock iputils ping's output: every reply back, each carrying the data
/// sent (iputils compares the echoed pattern byte by byte and prints
/// "wrong data byte" otherwise: a frame the guest received into the wrong
/// buffers comes back changed).
fn clean_ping(out: String) -> Result<(), String> {
    if out.contains(" 0% packet loss") && !out.contains("wrong data byte") {
        Ok(())
    } else {
        Err(out)
    }
}

/// Whether an iperf3 client's error is one of the connection phase.
fn before_the_test(error: &str) -> bool {
    error.contains("unable to connect") || error.contains("control message")
}

/// One host-side check: its name and result, for the test it belongs to.
type HostCheck = (&'static str, String, Result<(), String>);

fn run_peer(ctx: &Context) -> Result<PeerRun, String> {
    use crate::netns::{PeerConfig, PeerError, PeerNetwork, TAP};
    let mut config = PeerConfig::new("linux");
    config.dhcp_lease_secs = None;
    let net = match PeerNetwork::create(&config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => return Ok(PeerRun::Skipped(why)),
        Err(e) => return Err(e.to_string()),
    };
    let setup = systests_sim::setup(ctx)?;
    let guest = guest()?;
    let log = ctx.ws.logs_dir().join("linux-peer.log");
    let trace_path = log.with_extension("trace");
    let mut options = net.sim_options(Some(log.with_extension("pcap")));
    options.trace = Some(trace_path.clone());
    let mut sim = start_sim(
        &setup,
        PEER_PART,
        "linux-peer",
        log.with_extension("sim.log"),
        options,
    )?;
    let mut vm = LinuxVm::boot(
        &setup.qemu,
        &guest,
        &[&sim],
        &peer_script(&config),
        &log,
        PEER_TIMEOUT,
    )?;
    let guest4 = config.ipv4(GUEST);
    let guest6 = config.ipv6(u16::from(GUEST));
    let mut host: Vec<HostCheck> = Vec::new();
    let mut figures = Vec::new();
    let mut record = |group: &'static str, name: &str, r: Result<(), String>| {
        host.push((group, name.to_string(), r));
    };
    // No more syncs: the script ran to its end (or died: finish() says which).
    while let Ok(sync) = vm.next_sync() {
        match sync.first().map(String::as_str) {
            Some("traffic") => {
                for (name, addr) in [("host-ping4", &guest4), ("host-ping6", &guest6)] {
                    let r = net
                        .ping(addr, 3)
                        .map_err(|e| e.to_string())
                        .and_then(clean_ping);
                    record("traffic", name, r);
                }
                let mac = linux_vm::value(vm.session.serial(), "mac")
                    .unwrap_or("")
                    .to_string();
                let neigh = net.netns().ip(&["neigh", "show", &guest4, "dev", TAP]);
                record(
                    "traffic",
                    "host-arp",
                    match neigh {
                        Ok(n)
                            if !mac.is_empty()
                                && n.to_lowercase().contains(&mac.to_lowercase()) =>
                        {
                            Ok(())
                        }
                        Ok(n) => Err(format!(
                            "host neighbour of {guest4}: {n:?}, guest MAC {mac:?}"
                        )),
                        Err(e) => Err(e.to_string()),
                    },
                );
                for (name, extra) in [
                    ("host-iperf3-tcp", &["-t", "2"][..]),
                    ("host-iperf3-tcp-reverse", &["-t", "2", "-R"][..]),
                    ("host-iperf3-udp", &["-t", "2", "-u", "-b", "10M"][..]),
                ] {
                    let r = host_iperf3(&net, &guest4, extra)
                        .and_then(|json| crate::systests_net::iperf3_summary(&json));
                    if let Ok((bps, n)) = &r {
                        figures.push(format!(
                            "{name}: {:.1} Mbit/s ({n} retransmits/lost)",
                            bps / 1e6
                        ));
                    }
                    record("traffic", name, r.map(drop));
                }
                let server = net.netns().start_iperf3_server(5202).map(drop);
                record(
                    "traffic",
                    "host-iperf3-server",
                    server.map_err(|e| e.to_string()),
                );
                // `ip netns exec` mounts the namespace's own sysfs.
                let tap_mac = net
                    .netns()
                    .run("cat", &[&format!("/sys/class/net/{TAP}/address")])
                    .unwrap_or_default();
                vm.reply(&format!("go {}", tap_mac.trim()))?;
            }
            Some("mtu") => {
                let r = net
                    .netns()
                    .ip(&["link", "set", TAP, "mtu", "9000"])
                    .map(drop);
                record("mtu", "host-mtu-9000", r.map_err(|e| e.to_string()));
                vm.reply("go")?;
            }
            Some("jumbo") => {
                let r = net
                    .netns()
                    .run(
                        "ping",
                        &[
                            "-n", "-c", "3", "-W", "2", "-M", "do", "-s", "8972", &guest4,
                        ],
                    )
                    .map_err(|e| e.to_string())
                    .and_then(clean_ping);
                record("mtu", "host-jumbo-ping", r);
                vm.reply("go")?;
            }
            Some("unloaded") => {
                let n = sync.get(1).cloned().unwrap_or_default();
                let pages = sim.ask_ok("pages");
                record(
                    "rmmod",
                    &format!("model-pages-{n}"),
                    match pages {
                        Ok(l) if l.last().map(String::as_str) == Some("ok 0 pages held") => Ok(()),
                        Ok(l) => Err(format!("after rmmod: {l:?}")),
                        Err(e) => Err(e),
                    },
                );
                let objects = sim.ask_ok("objects");
                record(
                    "rmmod",
                    &format!("model-objects-{n}"),
                    match objects {
                        Ok(l)
                            if l.last().map(String::as_str) == Some("ok 0 objects")
                                && l.iter().any(|x| x == "left-at-teardown 0") =>
                        {
                            Ok(())
                        }
                        Ok(l) => Err(format!("after rmmod: {l:?}")),
                        Err(e) => Err(e),
                    },
                );
                let san = sim.ask_ok("sanitizer");
                record(
                    "rmmod",
                    &format!("model-sanitizer-{n}"),
                    match san {
                        Ok(l) if l.last().map(String::as_str) == Some("ok 0 violations") => Ok(()),
                        Ok(l) => Err(format!("{l:?}")),
                        Err(e) => Err(e),
                    },
                );
                vm.reply("go")?;
            }
            other => return Err(format!("unexpected sync {other:?}")),
        }
    }
    let text = vm.finish()?;
    sim.expect_clean_exit()?;
    drop(net);
    let trace = std::fs::read_to_string(&trace_path)
        .map_err(|e| format!("{}: {e}", trace_path.display()))?;
    Ok(PeerRun::Done {
        text,
        host,
        figures,
        trace,
    })
}

/// Judges one of the peer boot's tests: its guest checks, its host-side
/// checks, and (each of them) the kernel log and the command trace.
fn judge_peer(
    ctx: &Context,
    test: &SystemTest,
    group: &str,
    guest_checks: &[String],
) -> Result<(), String> {
    let run = peer_run(ctx)?;
    let PeerRun::Done {
        text,
        host,
        figures,
        trace,
    } = run
    else {
        if let PeerRun::Skipped(why) = run {
            println!("    skipped: {why}");
        }
        return Ok(());
    };
    let _ = std::fs::write(ctx.log_path(test), &text);
    let names: Vec<&str> = guest_checks.iter().map(String::as_str).collect();
    linux_vm::require_checks(&text, &names)?;
    let bad: Vec<String> = host
        .iter()
        .filter(|(g, _, r)| *g == group && r.is_err())
        .map(|(_, n, r)| format!("{n}: {}", r.clone().unwrap_err()))
        .collect();
    if !bad.is_empty() {
        return Err(format!(
            "host-side checks failed:
  {}",
            bad.join(
                "
  "
            )
        ));
    }
    if !host.iter().any(|(g, _, _)| *g == group) && group != "none" {
        return Err(format!("no host-side check of {group} ran"));
    }
    let dmesg = linux_vm::dmesg_problems(&text);
    if !dmesg.is_empty() {
        return Err(format!(
            "kernel log:
{}",
            dmesg.join(
                "
"
            )
        ));
    }
    let failed = failed_commands(&trace);
    if !failed.is_empty() {
        return Err(format!(
            "commands that failed:
{}",
            failed.join(
                "
"
            )
        ));
    }
    if group == "traffic" {
        for f in figures {
            println!("    ({f})");
        }
    }
    Ok(())
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `linux-peer-traffic`: against the namespace peer, ping both ways (IPv4
/// and IPv6), ARP (each side learnt the other's MAC), stock iperf3 TCP
/// both ways and UDP with Linux's iperf3 as the server, and Linux's iperf3
/// client against the host's server both ways.
fn peer_traffic(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let checks = names(&[
        "probe",
        "up",
        "carrier",
        "ping4",
        "ping6",
        "arp",
        "iperf3-client",
        "iperf3-client-reverse",
    ]);
    judge_peer(ctx, test, "traffic", &checks)
}

/// `linux-mtu-ethtool`: `ethtool -i` (driver and the model's firmware
/// version), `-k`, `-l`, `-g` answer, `ethtool -S` counters (software,
/// port and vport) move with traffic, MTU 9000 with jumbo pings both ways,
/// and `ip link set down/up` (carrier off and back, traffic after).
fn mtu_ethtool(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let mut checks = names(&[
        "ethtool-i",
        "ethtool-k",
        "ethtool-l",
        "ethtool-g",
        "ping-for-stats",
        "mtu-9000",
        "jumbo-ping",
        "down",
        "oper-down",
        "up-again",
        "carrier-again",
        "ping-after-flap",
    ]);
    for c in [
        "rx_packets",
        "tx_packets",
        "rx_packets_phy",
        "tx_packets_phy",
        "rx_vport_unicast_packets",
        "tx_vport_unicast_packets",
    ] {
        checks.push(format!("stats-{c}"));
    }
    judge_peer(ctx, test, "mtu", &checks)?;
    if let Ok(PeerRun::Done { text, .. }) = peer_run(ctx) {
        let fw = linux_vm::value(&text, "fw").unwrap_or("");
        // The cx5 personality's firmware and PSID (sim/src/personality.rs).
        if fw != "16.35.2000 (MT_0000000008)" {
            return Err(format!("ethtool -i firmware-version {fw:?}"));
        }
    }
    Ok(())
}

/// `linux-ethtool-m`: Linux's `ethtool -m` reads the module through the
/// model's MCIA and its SFF-8636 decoder finds the part and serial number
/// of the cx5's 100G DAC (sim/src/module/inventory.rs `dac_100g`): an
/// independent check of the images and of MCIA.
fn ethtool_m(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    judge_peer(ctx, test, "mtu", &names(&["ethtool-m"]))?;
    if let Ok(PeerRun::Done { text, .. }) = peer_run(ctx) {
        let pn = linux_vm::value(&text, "module-pn").unwrap_or("");
        let sn = linux_vm::value(&text, "module-sn").unwrap_or("");
        if (pn, sn) != ("MCP1600-C001", "MT1822VS08719") {
            return Err(format!("ethtool -m: vendor PN {pn:?}, SN {sn:?}"));
        }
    }
    Ok(())
}

/// `linux-rmmod-cycles`: five rmmod / modprobe cycles with traffic after
/// each; after every rmmod the model holds no page and no object, Linux
/// left nothing for TEARDOWN_HCA to destroy, and the DMA sanitizer saw no
/// violation.
fn rmmod_cycles(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let mut checks = Vec::new();
    for n in 1..=CYCLES {
        for c in ["rmmod", "modprobe", "probe", "up", "carrier", "traffic"] {
            checks.push(format!("{c}-{n}"));
        }
    }
    judge_peer(ctx, test, "rmmod", &checks)
}

// ---- linux-meets-cxos ----

/// `linux-meets-cxos`: a Linux VM (ConnectX-6 Dx model) and a cxos VM
/// (ConnectX-5 model), the two models joined by the unix-socket wire: each
/// pings the other (IPv4, and IPv6 from Linux), Linux's iperf3 client runs
/// against cxos's server both ways, cxos's client against Linux's server.
/// Two independent drivers of the same hardware talking through it.
fn meets_cxos(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    use crate::systests_attach::{Shell, detach_clean, plain_line};
    use crate::systests_net::{spawn_vm, start_wired_sim};
    let setup = systests_sim::setup(ctx)?;
    let guest = guest()?;
    let log = ctx.log_path(test);
    let wire = std::env::temp_dir().join(format!("cxos-{}-meet.sock", std::process::id()));
    let _ = std::fs::remove_file(&wire);
    let mut sim_c = start_wired_sim(ctx, &setup, test, "cx5", "cxos", &wire)?;
    let options = SimOptions {
        wire: Some(format!("unix:{}", wire.display())),
        trace: Some(log.with_extension("linux.trace")),
        ..SimOptions::default()
    }
    .test_capture(log.with_extension("linux.pcap"));
    let mut sim_l = start_sim(
        &setup,
        "cx6dx",
        &format!("{}-linux", test.name),
        log.with_extension("sim-linux.log"),
        options,
    )?;
    let (c4, c6) = ("10.0.0.1", "fd00::1");
    let (l4, l6) = ("10.0.0.2", "fd00::2");
    let session = spawn_vm(
        ctx,
        &setup,
        test,
        &sim_c,
        "cxos",
        &format!("net.0={c4}/24,ip6={c6}/64"),
    )?;
    let mut shell = Shell::start(session)?;
    plain_line(&shell.ask("serve iperf3")?, "service ")?;
    let script = format!(
        r#"
pci=0000:01:00.0
modprobe mlx5_core
check probe wait_for 60 has_netdev $pci
dev=$(netdev_of $pci)
ip addr add {l4}/24 dev "$dev"
ip -6 addr add {l6}/64 dev "$dev" nodad
check up ip link set "$dev" up
check carrier wait_for 30 carrier_up "$dev"
check ping-cxos ping -c 3 -W 2 {c4}
check ping6-cxos ping6 -c 3 -W 2 {c6}
check iperf3-to-cxos iperf3_client -c {c4} -t 2
check iperf3-from-cxos iperf3_client -c {c4} -t 2 -R
iperf3 -s -D
sleep 1
host_sync serve
report_dmesg
"#
    );
    let mut vm = LinuxVm::boot(
        &setup.qemu,
        &guest,
        &[&sim_l],
        &script,
        &log.with_extension("linux.log"),
        MEET_TIMEOUT,
    )?;
    let sync = vm.next_sync()?;
    if sync.first().map(String::as_str) != Some("serve") {
        return Err(format!("unexpected sync {sync:?}"));
    }
    let ping = shell.ask(&format!("ping {l4} -c 3"))?;
    let iperf = shell.ask(&format!("iperf3 -c {l4} -t 2"))?;
    let linux_sanitizer = sim_l.ask_ok("sanitizer")?;
    vm.reply("go")?;
    let text = vm.finish()?;
    let _ = std::fs::write(&log, &text);
    linux_vm::require_checks(
        &text,
        &[
            "probe",
            "up",
            "carrier",
            "ping-cxos",
            "ping6-cxos",
            "iperf3-to-cxos",
            "iperf3-from-cxos",
        ],
    )?;
    plain_line(&ping, "3 packets transmitted, 3 received, 0% packet loss")?;
    if linux_sanitizer.last().map(String::as_str) != Some("ok 0 violations") {
        return Err(format!("the Linux side's model: {linux_sanitizer:?}"));
    }
    if iperf.lines().any(|l| l.starts_with("failed: ")) {
        return Err(format!(
            "cxos's iperf3 client against Linux's server:
{iperf}"
        ));
    }
    let json = plain_line(&iperf, "iperf3-json: ")?;
    let v: serde_json::Value = serde_json::from_str(json.trim_start_matches("iperf3-json: "))
        .map_err(|e| format!("{e}: {json}"))?;
    let bps = v
        .get("receiver_bits_per_second")
        .and_then(|b| b.as_f64())
        .unwrap_or(0.0);
    if bps <= 0.0 {
        return Err(format!("cxos -> Linux measured nothing: {json}"));
    }
    let dmesg = linux_vm::dmesg_problems(&text);
    if !dmesg.is_empty() {
        return Err(format!(
            "kernel log:
{}",
            dmesg.join(
                "
"
            )
        ));
    }
    detach_clean(&mut shell, &sim_c)?;
    shell.poweroff(&mut sim_c)?;
    sim_l.expect_clean_exit()?;
    let trace = std::fs::read_to_string(log.with_extension("linux.trace")).unwrap_or_default();
    let failed = failed_commands(&trace);
    if !failed.is_empty() {
        return Err(format!(
            "commands that failed:
{}",
            failed.join(
                "
"
            )
        ));
    }
    let _ = std::fs::remove_file(&wire);
    println!("    (cxos client -> Linux server: {:.1} Mbit/s)", bps / 1e6);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_valid() {
        crate::systests::validate(&all()).unwrap();
    }

    #[test]
    fn failed_commands_are_the_ones_with_a_status() {
        let trace = "reset +0.000ms\n\
                     cmd 1 +1.0ms ENABLE_HCA(0x104) op_mod 0x0 in 16 out 12 status 0x0 syndrome 0x0\n\
                     cmd 2 +2.0ms ACCESS_REG(0x805) op_mod 0x1 in 48 out 48 status 0x3 syndrome 0x30011 reg PFCC(0x5007) read\n\
                     \x20 in: 0805\n";
        assert_eq!(failed_commands(trace).len(), 1);
    }
}
