//! Link aggregation against Linux's bonding driver (issue 19):
//! `aggr-linux-lacp`: cxos in QEMU on `mlx5-sim --ports 2` (one cx5
//! board, two functions, each port on its own `qemu:` wire), the Linux
//! peer VM ([`LinuxVm::boot_peer`]) with two virtio-net NICs on those
//! wires enslaved to bond0 (`mode=802.3ad lacp_rate=fast`, layer3+4
//! hash). cxos boots with `aggr.0=ports:net0+net1,...`.
//!
//! One pair of VMs walks through, in order: negotiation (both ends
//! Collecting_Distributing on both links: the peer's
//! `/proc/net/bonding/bond0` has cxos's system MAC as partner and both
//! slaves in the active aggregator, cxos's `aggr show -L` has Linux's),
//! ping both ways over aggr0 and over a VNIC on aggr0 tagged with VLAN 19
//! (`vnic.1=over:aggr0,vlan:19,...`; bond0.19 on the peer), iperf3 with `-P 4` rate-limited by `-b` in
//! both directions (`-R`) with both members carrying frames each way,
//! then failover: during a peer iperf3, the model's `link 0 down` takes
//! net0 out of cxos's aggregation at once (PORT_CHANGE) and out of
//! Linux's by LACP timeout (a virtio-net keeps its carrier); iperf3
//! completes with no interval of zero throughput longer than 3 s; `link
//! 0 up` and net0 rejoins on both ends. Then the Linux side takes a
//! member down (its NIC's cable, QMP `set_link`): cxos, whose port keeps
//! its link, takes net1 out by LACP timeout, and back when it returns.
//! Fast LACPDUs from both ends are
//! in each wire's capture (bounded: [`SimOptions::test_capture`]). cxos
//! detaches both functions with every page back.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::linux_vm::{self, LinuxVm, StreamNic};
use crate::qmp::Qmp;
use crate::session::tail;
use crate::sim_device::{SecondPort, SimDevice, SimOptions};
use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, plain_line};
use crate::systests_peer::fast_lacpdus_from;
use crate::systests_sim;

/// Two boots, LACP negotiation, four short iperf3 runs and a failover
/// under TCG: ~90 s on an idle machine; the limit covers 2 shared cores.
const TIMEOUT: Duration = Duration::from_secs(360);
const PEER_MAC: &str = "52:54:00:19:00:01";
const PEER_MAC2: &str = "52:54:00:19:00:02";
/// The cx5 board's port MACs (mlx5-sim: consecutive from the part's).
const CXOS_MAC: &str = "0c:42:a1:5e:00:12";
const CXOS_MAC2: &str = "0c:42:a1:5e:00:13";
const PEER4: &str = "10.19.0.1";
const CXOS4: &str = "10.19.0.2";
/// The tagged network: bond0.19 on the peer, a VNIC on aggr0 in cxos.
const VLAN: u16 = 19;
const PEER_VLAN4: &str = "10.19.1.1";
const CXOS_VLAN4: &str = "10.19.1.2";
/// iperf3's rate per stream: both VMs and the model share 2 cores, and
/// LACP's 1 s timers must keep running.
const RATE: &str = "5M";

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "aggr-linux-lacp",
        timeout: TIMEOUT,
        run: aggr_linux,
    }]
}

/// The peer's script; it syncs at `ready` (bond0 up, iperf3 server
/// running), `lacp` (the host checks cxos's side), `traffic` (the host
/// reads per-member counters), `failover` (the host pulls port 0 a few
/// seconds into the peer's iperf3 and plugs it back) and `rejoined`.
fn peer_script() -> String {
    format!(
        r#"
iperf_to() {{ iperf3_client "$@" > /tmp/iperf3.out 2>&1; s=$?; cat /tmp/iperf3.out; return $s; }}
agg_id() {{ sed -n '/Active Aggregator Info/,/^$/s/.*Aggregator ID: //p' /proc/net/bonding/bond0 | head -n 1; }}
both_in_active() {{
    a=$(agg_id); [ -n "$a" ] || return 1
    [ "$(grep -c "^Aggregator ID: $a\$" /proc/net/bonding/bond0)" -ge 2 ] || return 1
    # Actor and partner of both slaves in sync, collecting and
    # distributing (state 0x3f: active, short timeout, aggregatable too).
    [ "$(grep -c 'port state: 63$' /proc/net/bonding/bond0)" -ge 4 ]
}}
partner_is_cxos() {{ grep -q "Partner Mac Address: {CXOS_MAC}" /proc/net/bonding/bond0; }}
# Longest run of 1 s intervals at zero throughput in an iperf3 report.
zero_run() {{
    awk '/SUM/ && /sec/ && !/sender|receiver/ {{ if ($6 + 0 == 0) {{ r++; if (r > m) m = r }} else r = 0 }} END {{ print m + 0 }}' "$1"
}}
check virtio-net modprobe virtio_net
check nic wait_for 30 netdev_with_mac {PEER_MAC}
check nic2 wait_for 30 netdev_with_mac {PEER_MAC2}
dev=$(netdev_with_mac {PEER_MAC})
dev2=$(netdev_with_mac {PEER_MAC2})
check bonding modprobe bonding mode=802.3ad lacp_rate=fast miimon=100 xmit_hash_policy=layer3+4
check bond-enslave ip link set "$dev" master bond0
check bond-enslave2 ip link set "$dev2" master bond0
ip addr add {PEER4}/24 dev bond0
check bond-up ip link set bond0 up
check iperf3-server iperf3 -s -D
# A tagged network on bond0, where a VNIC on cxos's aggr0 lives.
check 8021q modprobe 8021q
check vlan ip link add link bond0 name bond0.{VLAN} type vlan id {VLAN}
ip addr add {PEER_VLAN4}/24 dev bond0.{VLAN}
check vlan-up ip link set bond0.{VLAN} up
host_sync ready
check lacp-partner wait_for 40 partner_is_cxos
check lacp-both-slaves wait_for 20 both_in_active
sed 's/^/  bond0| /' /proc/net/bonding/bond0
check ping-cxos ping -c 3 -W 2 {CXOS4}
check ping-cxos-vnic ping -c 3 -W 2 {CXOS_VLAN4}
host_sync lacp
check iperf3-to-cxos iperf_to -c {CXOS4} -t 3 -P 4 -b {RATE}
value iperf3-to "$(sed -n 's/.*SUM.* \([0-9.]* [KMG]bits\/sec\).*receiver$/\1/p' /tmp/iperf3.out)"
check iperf3-from-cxos iperf_to -c {CXOS4} -t 3 -P 4 -b {RATE} -R
value iperf3-from "$(sed -n 's/.*SUM.* \([0-9.]* [KMG]bits\/sec\).*receiver$/\1/p' /tmp/iperf3.out)"
host_sync traffic
iperf3_client -c {CXOS4} -t 14 -i 1 -P 4 -b {RATE} > /tmp/failover.out 2>&1 &
ipid=$!
host_sync failover
# `check` runs its command in a subshell, which cannot wait for our job.
wait $ipid
ipst=$?
check iperf3-through-failover test $ipst -eq 0
sed 's/^/  iperf3| /' /tmp/failover.out
value zero-run "$(zero_run /tmp/failover.out)"
check no-long-stall test "$(zero_run /tmp/failover.out)" -le 3
check rejoined-linux wait_for 20 both_in_active
sed 's/^/  bond0| /' /proc/net/bonding/bond0
check ping-after-rejoin ping -c 3 -W 2 {CXOS4}
host_sync rejoined
report_dmesg
"#
    )
}

const PEER_CHECKS: &[&str] = &[
    "virtio-net",
    "nic",
    "nic2",
    "bonding",
    "bond-enslave",
    "bond-enslave2",
    "bond-up",
    "iperf3-server",
    "lacp-partner",
    "lacp-both-slaves",
    "8021q",
    "vlan",
    "vlan-up",
    "ping-cxos",
    "ping-cxos-vnic",
    "iperf3-to-cxos",
    "iperf3-from-cxos",
    "iperf3-through-failover",
    "no-long-stall",
    "rejoined-linux",
    "ping-after-rejoin",
];

fn aggr_linux(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let log = ctx.log_path(test);
    let consoles = [
        ("Linux peer", log.with_extension("peer.log")),
        ("cxos", log.with_extension("cxos.log")),
    ];
    let dir = std::env::temp_dir().join(format!("cxos-{}-aggr", std::process::id()));
    let result = run(ctx, test, &log, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| {
        let mut out = e;
        for (who, path) in &consoles {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            out.push_str(&format!(
                "\n--- {who} console ({}), last lines ---\n{}",
                path.display(),
                tail(&text, 20)
            ));
        }
        out
    })
}

fn at(step: &'static str) -> impl Fn(String) -> String {
    move |e| format!("step `{step}`: {e}")
}

fn expect_sync(peer: &mut LinuxVm, tag: &'static str) -> Result<(), String> {
    let sync = peer.next_sync().map_err(at(tag))?;
    let checks = linux_vm::checks(peer.session.serial());
    if let Some((name, Err(why))) = checks.iter().find(|(_, r)| r.is_err()) {
        return Err(format!("step `{name}` (in the peer): {why}"));
    }
    if sync.first().map(String::as_str) != Some(tag) {
        return Err(format!("step `{tag}`: the peer synced {sync:?}"));
    }
    Ok(())
}

/// One member's line of `aggr show`: (distributing, tx frames, rx frames).
fn member(show: &str, port: &str) -> Result<(bool, u64, u64), String> {
    let line = show
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{port}: ")))
        .ok_or_else(|| format!("no {port} in:\n{show}"))?;
    let number_after = |word: &str| -> Option<u64> {
        line.split(word)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let tx = number_after(" tx ").ok_or_else(|| format!("no tx in {line}"))?;
    let rx = number_after(" rx ").ok_or_else(|| format!("no rx in {line}"))?;
    Ok((line.contains("collecting-distributing"), tx, rx))
}

/// Polls `aggr show` until `done` holds for it (or `wait` passes).
fn wait_show(
    shell: &mut Shell,
    wait: Duration,
    done: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let until = Instant::now() + wait;
    loop {
        let show = shell.ask("aggr show")?;
        if done(&show) {
            return Ok(show);
        }
        if Instant::now() >= until {
            return Err(format!("not within {} s:\n{show}", wait.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn both_distributing(show: &str) -> bool {
    matches!(
        (member(show, "net0"), member(show, "net1")),
        (Ok((true, _, _)), Ok((true, _, _)))
    )
}

fn run(ctx: &Context, test: &SystemTest, log: &Path, dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let setup = systests_sim::setup(ctx).map_err(at("setup"))?;
    let guest = crate::systests_linux::guest().map_err(at("provision the Linux guest"))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (wire0, wire1) = (dir.join("wire0.sock"), dir.join("wire1.sock"));
    let (pcap0, pcap1) = (log.with_extension("0.pcap"), log.with_extension("1.pcap"));
    let options = SimOptions {
        wire: Some(format!("qemu:{}", wire0.display())),
        second_port: Some(SecondPort {
            wire: Some(format!("qemu:{}", wire1.display())),
            pcap: Some(pcap1.clone()),
        }),
        ..SimOptions::default()
    }
    .test_capture(pcap0.clone());
    let mut sim = SimDevice::start_with(
        &setup.sim,
        "cx5",
        test.name,
        &log.with_extension("sim.log"),
        &options,
    )
    .map_err(at("start mlx5-sim --ports 2"))?;
    let board = sim.ask_ok("adapter").map_err(at("the model's board"))?;
    if board.len() != 4 || !board[1].contains(CXOS_MAC) || !board[2].contains(CXOS_MAC2) {
        return Err(format!("step `the model's board`: {board:?}"));
    }

    let nic = |id: &str, mac: &str, wire: &Path| StreamNic {
        id: id.to_string(),
        mac: mac.to_string(),
        wire: wire.to_path_buf(),
        speed_mbps: 100_000,
    };
    let qmp_path = dir.join("qmp.sock");
    let mut peer = LinuxVm::boot_peer(
        &setup.qemu,
        &guest,
        &[nic("p0", PEER_MAC, &wire0), nic("p1", PEER_MAC2, &wire1)],
        &qmp_path,
        &peer_script(),
        &log.with_extension("peer.log"),
        TIMEOUT,
    )
    .map_err(at("boot the Linux peer"))?;
    let mut qmp = Qmp::connect(&qmp_path, Duration::from_secs(30))
        .map_err(at("connect to the peer's QMP"))?;
    expect_sync(&mut peer, "ready")?;

    let cmdline = format!(
        "aggr.0=ports:net0+net1,lacp:active,policy:l4,timer:fast,ip:{CXOS4}/24 \
         vnic.1=over:aggr0,vlan:{VLAN},ip:{CXOS_VLAN4}/24"
    );
    let session = crate::systests_net::spawn_vm(ctx, &setup, test, &sim, "cxos", &cmdline)
        .map_err(at("boot cxos"))?;
    let booted = Instant::now();
    let mut shell = Shell::start(session).map_err(at("cxos's shell"))?;
    let answer = shell.ask("ifconfig aggr0").map_err(at("ifconfig aggr0"))?;
    plain_line(&answer, &format!("aggr0 {CXOS_MAC} "))
        .map_err(at("aggr0 is an interface with the first port's MAC"))?;
    for port in ["net0", "net1"] {
        let answer = shell
            .ask(&format!("ifconfig {port}"))
            .map_err(at("ifconfig"))?;
        plain_line(&answer, &format!("{port}: member of aggr0"))
            .map_err(at("a member's own interface is gone"))?;
    }
    let answer = shell
        .ask("serve iperf3 -I aggr0")
        .map_err(at("cxos serves iperf3"))?;
    plain_line(&answer, "service ").map_err(at("cxos serves iperf3"))?;
    peer.reply("go").map_err(at("ready"))?;

    // Negotiation.
    wait_show(&mut shell, Duration::from_secs(40), both_distributing)
        .map_err(at("cxos: both members Collecting_Distributing"))?;
    let converged = booted.elapsed();
    expect_sync(&mut peer, "lacp")?;
    let long = shell.ask("aggr show -L").map_err(at("aggr show -L"))?;
    let partners = long
        .lines()
        .filter(|l| {
            l.trim()
                .starts_with(&format!("partner: system {PEER_MAC} "))
        })
        .count();
    if partners != 2 {
        return Err(format!(
            "step `aggr show -L has Linux as partner on both ports`:\n{long}"
        ));
    }
    let answer = shell
        .ask(&format!("ping -I aggr0 {PEER4} -c 3"))
        .map_err(at("cxos pings the peer"))?;
    plain_line(&answer, "3 packets transmitted, 3 received")
        .map_err(at("cxos pings the peer over aggr0"))?;
    let answer = shell
        .ask(&format!("ping -I vnic1 {PEER_VLAN4} -c 3"))
        .map_err(at("cxos's VNIC on aggr0 pings the peer's VLAN"))?;
    plain_line(&answer, "3 packets transmitted, 3 received")
        .map_err(at("cxos's VNIC on aggr0 pings the peer's VLAN"))?;
    let before = shell.ask("aggr show").map_err(at("aggr show"))?;
    peer.reply("go").map_err(at("lacp"))?;

    // Traffic both ways: both members carry frames in each direction.
    expect_sync(&mut peer, "traffic")?;
    let after = shell.ask("aggr show").map_err(at("aggr show"))?;
    for port in ["net0", "net1"] {
        let (_, tx0, rx0) = member(&before, port)?;
        let (_, tx1, rx1) = member(&after, port)?;
        if tx1 <= tx0 + 100 || rx1 <= rx0 + 100 {
            return Err(format!(
                "step `both members carry traffic`: {port} tx {tx0}->{tx1} rx {rx0}->{rx1}\n{after}"
            ));
        }
    }
    peer.reply("go").map_err(at("traffic"))?;

    // Failover during the peer's iperf3.
    expect_sync(&mut peer, "failover")?;
    std::thread::sleep(Duration::from_secs(3));
    sim.ask_ok("link 0 down").map_err(at("link 0 down"))?;
    // At once: the port-change event, then the aggregation's next poll.
    let pulled = Instant::now();
    wait_show(&mut shell, Duration::from_secs(2), |show| {
        matches!(
            (member(show, "net0"), member(show, "net1")),
            (Ok((false, _, _)), Ok((true, _, _)))
        )
    })
    .map_err(at("net0 leaves at once on link down"))?;
    let left = pulled.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let (_, _, rx_a) = member(&shell.ask("aggr show")?, "net1")?;
    std::thread::sleep(Duration::from_secs(1));
    let (_, _, rx_b) = member(&shell.ask("aggr show")?, "net1")?;
    if rx_b <= rx_a {
        return Err(format!(
            "step `traffic continues over net1`: rx {rx_a} -> {rx_b}"
        ));
    }
    sim.ask_ok("link 0 up").map_err(at("link 0 up"))?;
    let rejoin_started = Instant::now();
    wait_show(&mut shell, Duration::from_secs(30), both_distributing)
        .map_err(at("net0 rejoins on cxos"))?;
    let rejoin = rejoin_started.elapsed();
    peer.reply("go").map_err(at("failover"))?;
    expect_sync(&mut peer, "rejoined")?;
    // The Linux side takes a member down (its NIC's cable, through QMP):
    // cxos's net1 keeps its link and must notice by LACP timeout (3 s).
    qmp.set_link("p1", false)
        .map_err(at("QMP set_link p1 off"))?;
    let cut = Instant::now();
    wait_show(&mut shell, Duration::from_secs(8), |show| {
        matches!(
            (member(show, "net0"), member(show, "net1")),
            (Ok((true, _, _)), Ok((false, _, _)))
        )
    })
    .map_err(at("cxos times net1 out when Linux's member goes"))?;
    let timed_out = cut.elapsed();
    let answer = shell
        .ask(&format!("ping -I aggr0 {PEER4} -c 3"))
        .map_err(at("ping over net0 alone"))?;
    plain_line(&answer, "3 packets transmitted, 3 received").map_err(at("ping over net0 alone"))?;
    qmp.set_link("p1", true).map_err(at("QMP set_link p1 on"))?;
    wait_show(&mut shell, Duration::from_secs(30), both_distributing)
        .map_err(at("net1 rejoins after Linux's member returns"))?;
    peer.reply("go").map_err(at("rejoined"))?;

    let text = peer.finish().map_err(at("the peer's script ends"))?;
    let _ = std::fs::write(log, &text);
    linux_vm::require_checks(&text, PEER_CHECKS).map_err(at("the peer's checks"))?;
    let splats = linux_vm::dmesg_problems(&text);
    if !splats.is_empty() {
        return Err(format!(
            "step `the peer's kernel log`:\n{}",
            splats.join("\n")
        ));
    }

    // Delete, detach both functions: every page back.
    let answer = shell.ask("aggr delete aggr0").map_err(at("aggr delete"))?;
    plain_line(&answer, "aggr0: deleted, 0 errors").map_err(at("aggr delete"))?;
    for (port, mac) in [("net0", CXOS_MAC), ("net1", CXOS_MAC2)] {
        let answer = shell
            .ask(&format!("ifconfig {port}"))
            .map_err(at("ifconfig"))?;
        plain_line(&answer, &format!("{port} {mac} "))
            .map_err(at("the members get their own interfaces back"))?;
    }
    for pci in ["01:00.0", "02:00.0"] {
        let answer = shell.ask(&format!("detach {pci}")).map_err(at("detach"))?;
        plain_line(
            &answer,
            &format!("mlx5 {pci}: detached: 0 pages lost, 0 errors"),
        )
        .map_err(at("detach"))?;
    }
    for port in ["0", "1"] {
        let pages = sim.ask_ok(&format!("pages {port}")).map_err(at("pages"))?;
        let san = sim
            .ask_ok(&format!("sanitizer {port}"))
            .map_err(at("sanitizer"))?;
        if pages.last().map(String::as_str) != Some("ok 0 pages held")
            || san.last().map(String::as_str) != Some("ok 0 violations")
        {
            return Err(format!(
                "step `model clean on port {port}`: {pages:?} {san:?}"
            ));
        }
    }
    shell.poweroff(&mut sim).map_err(at("cxos powers off"))?;

    let mut lacpdus = Vec::new();
    for (pcap, from) in [
        (&pcap0, [PEER_MAC, CXOS_MAC]),
        (&pcap1, [PEER_MAC2, CXOS_MAC2]),
    ] {
        let capture = std::fs::read(pcap).map_err(|e| format!("{}: {e}", pcap.display()))?;
        for mac in from {
            let n = fast_lacpdus_from(&capture, mac_bytes(mac)).map_err(at("the captures"))?;
            if n == 0 {
                return Err(format!(
                    "step `fast LACPDUs in the captures`: none from {mac} in {}",
                    pcap.display()
                ));
            }
            lacpdus.push(n.to_string());
        }
    }
    println!(
        "    (LACP converged {:.1} s after cxos booted, net0 out {:.1} s after link down, rejoin {:.1} s, net1 timed out {:.1} s after Linux's member went; peer iperf3 -P 4 -b {RATE}: to cxos {}, from cxos {}; longest zero run {} s; LACPDUs {}; total {:.1} s)",
        converged.as_secs_f64(),
        left.as_secs_f64(),
        rejoin.as_secs_f64(),
        timed_out.as_secs_f64(),
        linux_vm::value(&text, "iperf3-to").unwrap_or("?"),
        linux_vm::value(&text, "iperf3-from").unwrap_or("?"),
        linux_vm::value(&text, "zero-run").unwrap_or("?"),
        lacpdus.join("+"),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_valid() {
        crate::systests::validate(&all()).unwrap();
    }

    #[test]
    fn the_script_runs_every_check_it_requires() {
        let script = peer_script();
        for c in PEER_CHECKS {
            assert!(script.contains(&format!("check {c} ")), "{c}");
        }
        for tag in ["ready", "lacp", "traffic", "failover", "rejoined"] {
            assert!(script.contains(&format!("host_sync {tag}\n")), "{tag}");
        }
        assert!(script.contains("mode=802.3ad lacp_rate=fast"));
    }

    #[test]
    fn member_lines_are_read() {
        let show = "aggr0: 2 ports, mac 0c:42:a1:5e:00:12, lacp active policy L4 timer fast, link up 200000 Mb/s\n  net0: link up, collecting-distributing, tx 12 frames 900 bytes, rx 7 frames 500 bytes\n  net1: link down, not distributing, tx 0 frames 0 bytes, rx 3 frames 180 bytes\n";
        assert_eq!(member(show, "net0"), Ok((true, 12, 7)));
        assert_eq!(member(show, "net1"), Ok((false, 0, 3)));
        assert!(member(show, "net2").is_err());
        assert!(!both_distributing(show));
        assert_eq!(mac_bytes(CXOS_MAC), [0x0c, 0x42, 0xa1, 0x5e, 0x00, 0x12]);
    }
}
