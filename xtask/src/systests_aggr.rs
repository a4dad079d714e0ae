//! Link aggregation against Linux's bonding driver (issue 19):
//! `aggr-linux-lacp`: cxos in QEMU on `mlx5-sim --ports 2` (one cx5
//! board, two functions, each port on its own `qemu:` wire), the Linux
//! peer VM ([`systests_peer::boot_peer`]) with two virtio-net NICs on those
//! wires enslaved to bond0 (`mode=802.3ad lacp_rate=fast`, layer3+4
//! hash), VLAN interfaces bond0.19 and bond0.29, and dnsmasq serving a
//! DHCP range on each of the three networks. cxos boots with
//! `aggr.0=ports:net0+net1,...` and the first VNICs on it.
//!
//! One pair of VMs walks through, in order: negotiation (both ends
//! Collecting_Distributing on both links: the peer's
//! `/proc/net/bonding/bond0` has cxos's system MAC as partner and both
//! slaves in the active aggregator, cxos's `aggr show -L` has Linux's),
//! ping both ways over aggr0, iperf3 with `-P 4` rate-limited by `-b` in
//! both directions (`-R`) with both members carrying frames each way and
//! once unlimited (the aggregation's figure); 20 VNICs on aggr0
//! ([`vnic_plan`]: untagged and on VLANs 19 and 29, half static, half
//! leased from the peer's dnsmasq; 6 from the command line, 14 by `vnic
//! create`), each pinged from the peer and pinging the peer, their leases
//! in dnsmasq's lease file, `vnics` listing them over aggr0 and `aggr show`
//! naming them; then failover: during a peer iperf3, port 0's cable is
//! pulled (the model's `link 0 down` and QMP `set_link` off on the peer's
//! NIC on that wire): net0 leaves cxos's aggregation at once (PORT_CHANGE)
//! and Linux's by carrier loss (miimon); traffic goes on over net1 and
//! iperf3 completes with no interval of zero throughput longer than 3 s;
//! the cable back and net0 rejoins on both ends. The same for port 1
//! during an iperf3 from cxos (`-R`, so the peer's intervals are the
//! receiver's: the longest run of empty 0.5 s intervals of any stream is
//! the failover time), then, with port 1 still out on both ends, an
//! unlimited iperf3 over the one port left (the single-port figure), and
//! `link 1 up`. A queue fault on port 1's function under traffic (the
//! model's `fault 1 sq-bad-lkey`): the driver recovers the queue (`FAULT
//! mlx5.sq.err ... outcome=recovered`) and net1 stays Collecting_Distributing
//! on both ends throughout. Then the Linux side takes a member down (its
//! NIC's cable, QMP `set_link`): cxos, whose port keeps its link, takes
//! net1 out by LACP timeout, and back when it returns. `aggr delete`
//! gives the members their interfaces back; `aggr create` makes the
//! aggregation and its 20 VNICs again, and with it negotiated, cxos
//! detaches both functions: every page back, no object left at teardown,
//! no sanitizer violation. Fast LACPDUs from both ends are in each wire's
//! capture (bounded: [`SimOptions::test_capture`]).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::linux_vm;
use crate::pcap_flows;
use crate::qmp::Qmp;
use crate::sim_device::{SecondPort, SimDevice, SimOptions};
use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, plain_line};
use crate::systests_peer::{
    self, at, boot_peer, expect_sync, fast_lacpdus_from, finish_peer, mac_bytes,
};
use crate::systests_sim;

/// Two boots, LACP negotiation, 20 VNICs, eight short iperf3 runs, three
/// failovers, a queue fault and a detach under TCG: ~3 min on an idle
/// machine; the limit covers 2 shared cores.
const TIMEOUT: Duration = Duration::from_secs(600);
const PEER_MAC: &str = "52:54:00:19:00:01";
const PEER_MAC2: &str = "52:54:00:19:00:02";
/// The cx5 board's port MACs (mlx5-sim: consecutive from the part's).
const CXOS_MAC: &str = "0c:42:a1:5e:00:12";
const CXOS_MAC2: &str = "0c:42:a1:5e:00:13";
const PEER4: &str = "10.19.0.1";
const CXOS4: &str = "10.19.0.2";
/// The tagged networks: bond0.<vid> on the peer, VNICs on aggr0 in cxos;
/// network `k` (0 untagged, then these in order) is 10.19.k.0/24, the
/// peer is .1 on each.
const VLANS: [u16; 2] = [19, 29];
/// The peer's DHCP range on every network (host part).
const DHCP_FIRST: u8 = 100;
const DHCP_LAST: u8 = 149;
/// VNICs on aggr0, and how many of them (the first) the command line
/// defines; the rest are made with `vnic create`.
const VNICS: u32 = 20;
const CMDLINE_VNICS: u32 = 6;
/// iperf3's rate per stream: both VMs and the model share 2 cores, and
/// LACP's 1 s timers must keep running.
const RATE: &str = "5M";
/// The queue fault on port 1's function, and the class cxos records.
const FAULT: &str = "fault 1 sq-bad-lkey";
const FAULT_CLASS: &str = "mlx5.sq.err";

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "aggr-linux-lacp",
        timeout: TIMEOUT,
        run: aggr_linux,
    }]
}

/// One VNIC of the plan: `vnic<n>` on network `net` (0 untagged, else
/// VLAN `VLANS[net - 1]`), with a static address or a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PlannedVnic {
    n: u32,
    net: usize,
    /// `None`: DHCP.
    ip: Option<String>,
}

impl PlannedVnic {
    fn vlan(&self) -> Option<u16> {
        self.net.checked_sub(1).map(|i| VLANS[i])
    }

    /// The definition, in `vnic.<n>=` / `vnic create` form.
    fn def(&self) -> String {
        let vlan = self
            .vlan()
            .map(|v| format!(",vlan:{v}"))
            .unwrap_or_default();
        let ip = self
            .ip
            .as_ref()
            .map_or_else(|| "dhcp".to_string(), |a| format!("{a}/24"));
        format!("over:aggr0{vlan},ip:{ip}")
    }

    /// The peer's address on this VNIC's network.
    fn peer(&self) -> String {
        format!("10.19.{}.1", self.net)
    }
}

/// 20 VNICs, `vnic0` to `vnic19` (`vnic create` takes the first free
/// number): the networks in turn (VLAN 19, untagged, VLAN 29, VLAN 19,
/// ...), odd numbers leased, even ones static at `10.19.<net>.<10 + n>`.
fn vnic_plan() -> Vec<PlannedVnic> {
    (0..VNICS)
        .map(|n| {
            let net = [1, 0, 2][n as usize % 3];
            PlannedVnic {
                n,
                net,
                ip: (n % 2 == 0).then(|| format!("10.19.{net}.{}", 10 + n)),
            }
        })
        .collect()
}

/// The peer's script; it syncs at `ready` (bond0, VLANs, dnsmasq, iperf3
/// server), `lacp` (the host checks cxos's side), `traffic` (the host
/// reads per-member counters), `vnics` (the host answers with every
/// VNIC's address, `S:` static or `D:` leased), `vnics-pinged` (cxos pings
/// from each), `failover0` / `failover1` (the host pulls a cable a few
/// seconds into the iperf3, both ends losing carrier; port 1 stays out
/// until `single`), `fault`
/// (the host injects the queue fault) and `rejoined`.
fn peer_script() -> String {
    let mut vlans = String::new();
    let mut ranges = String::new();
    for (k, vid) in VLANS.iter().enumerate() {
        let net = k + 1;
        vlans.push_str(&format!(
            "check vlan{vid} ip link add link bond0 name bond0.{vid} type vlan id {vid}\n\
             ip addr add 10.19.{net}.1/24 dev bond0.{vid}\n\
             check vlan{vid}-up ip link set bond0.{vid} up\n"
        ));
    }
    for net in 0..=VLANS.len() {
        ranges.push_str(&format!(
            " --dhcp-range=10.19.{net}.{DHCP_FIRST},10.19.{net}.{DHCP_LAST},255.255.255.0,10m"
        ));
    }
    let interfaces: String = VLANS
        .iter()
        .map(|v| format!(" --interface=bond0.{v}"))
        .collect();
    format!(
        r#"
not() {{ ! "$@"; }}
iperf_to() {{ iperf3_client "$@" > /tmp/iperf3.out 2>&1; s=$?; cat /tmp/iperf3.out; return $s; }}
iperf_rate() {{ sed -n 's/.*SUM.* \([0-9.]* [KMG]bits\/sec\).*receiver$/\1/p' /tmp/iperf3.out; }}
agg_id() {{ sed -n '/Active Aggregator Info/,/^$/s/.*Aggregator ID: //p' /proc/net/bonding/bond0 | head -n 1; }}
both_in_active() {{
    a=$(agg_id); [ -n "$a" ] || return 1
    [ "$(grep -c "^Aggregator ID: $a\$" /proc/net/bonding/bond0)" -ge 2 ] || return 1
    # Actor and partner of both slaves in sync, collecting and
    # distributing (state 0x3f: active, short timeout, aggregatable too).
    [ "$(grep -c 'port state: 63$' /proc/net/bonding/bond0)" -ge 4 ]
}}
partner_is_cxos() {{ grep -q "Partner Mac Address: {CXOS_MAC}" /proc/net/bonding/bond0; }}
# Longest run of intervals at zero throughput in an iperf3 report: of
# the sum (`zero_run`), of any one stream (`stream_zero_run`).
zero_run() {{
    awk '/SUM/ && /sec/ && !/sender|receiver/ {{ if ($6 + 0 == 0) {{ r++; if (r > m) m = r }} else r = 0 }} END {{ print m + 0 }}' "$1"
}}
stream_zero_run() {{
    awk '/^\[ *[0-9]+\]/ && /sec/ && !/sender|receiver/ {{
        id = $0; sub(/\].*/, "", id); sub(/^\[ */, "", id)
        r = -1; for (i = 2; i <= NF; i++) if ($i ~ /bits\/sec$/) r = $(i - 1)
        if (r < 0) next
        if (r + 0 == 0) {{ z[id]++; if (z[id] > m) m = z[id] }} else z[id] = 0
    }} END {{ print m + 0 }}' "$1"
}}
# Every `S:addr` / `D:addr` answers a ping; every `D:` one is leased.
ping_all() {{
    bad=""
    for w in "$@"; do ping -c 1 -W 2 "${{w#?:}}" > /dev/null 2>&1 || bad="$bad ${{w#?:}}"; done
    [ -z "$bad" ] || {{ echo "no answer from$bad"; return 1; }}
}}
leased_all() {{
    n=0
    for w in "$@"; do
        case $w in D:*) n=$((n + 1)); grep -q " ${{w#D:}} " /tmp/leases || {{ echo "no lease for ${{w#D:}}"; cat /tmp/leases; return 1; }} ;; esac
    done
    [ "$n" -gt 0 ]
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
# Tagged networks on bond0, where VNICs on cxos's aggr0 live.
check 8021q modprobe 8021q
{vlans}check dhcp-server dnsmasq --conf-file=/dev/null --port=0 --user=root --group=root     --interface=bond0{interfaces} --bind-interfaces --dhcp-leasefile=/tmp/leases     --pid-file=/tmp/dnsmasq.pid{ranges}
host_sync ready
check lacp-partner wait_for 40 partner_is_cxos
check lacp-both-slaves wait_for 20 both_in_active
sed 's/^/  bond0| /' /proc/net/bonding/bond0
check ping-cxos ping -c 3 -W 2 {CXOS4}
host_sync lacp
check iperf3-to-cxos iperf_to -c {CXOS4} -t 3 -P 4 -b {RATE}
value iperf3-to "$(iperf_rate)"
check iperf3-from-cxos iperf_to -c {CXOS4} -t 3 -P 4 -b {RATE} -R
value iperf3-from "$(iperf_rate)"
check iperf3-aggr iperf_to -c {CXOS4} -t 3 -P 4
value iperf3-aggr "$(iperf_rate)"
host_sync traffic
host_sync vnics
set -- $CXOS_REPLY
shift
check vnic-leases leased_all "$@"
check ping-vnics ping_all "$@"
host_sync vnics-pinged
iperf3_client -c {CXOS4} -t 14 -i 1 -P 4 -b {RATE} > /tmp/failover.out 2>&1 &
ipid=$!
host_sync failover0
# `check` runs its command in a subshell, which cannot wait for our job.
wait $ipid
ipst=$?
check iperf3-through-failover test $ipst -eq 0
sed 's/^/  iperf3| /' /tmp/failover.out
value zero-run "$(zero_run /tmp/failover.out)"
check no-long-stall test "$(zero_run /tmp/failover.out)" -le 3
check rejoined-linux wait_for 20 both_in_active
check ping-after-rejoin ping -c 3 -W 2 {CXOS4}
iperf3_client -c {CXOS4} -R -t 12 -i 0.5 -P 4 -b {RATE} > /tmp/failover1.out 2>&1 &
ipid=$!
host_sync failover1
wait $ipid
ipst=$?
check iperf3-through-failover1 test $ipst -eq 0
sed 's/^/  iperf3| /' /tmp/failover1.out
value stream-gap1 "$(stream_zero_run /tmp/failover1.out)"
value zero-run1 "$(zero_run /tmp/failover1.out)"
# Every stream is back within 4 s of the cut (both ends lose carrier at
# once; a segment lost in flight costs smoltcp's RTO, 1 s, then 2 s).
check failover1-recovers test "$(stream_zero_run /tmp/failover1.out)" -le 8
check linux-loses-port1 wait_for 10 not both_in_active
check iperf3-single iperf_to -c {CXOS4} -t 3 -P 4
value iperf3-single "$(iperf_rate)"
host_sync single
check rejoined-linux1 wait_for 20 both_in_active
iperf3_client -c {CXOS4} -t 8 -i 1 -P 4 -b {RATE} > /tmp/fault.out 2>&1 &
ipid=$!
host_sync fault
wait $ipid
ipst=$?
check iperf3-through-fault test $ipst -eq 0
sed 's/^/  iperf3| /' /tmp/fault.out
check fault-keeps-both both_in_active
sed 's/^/  bond0| /' /proc/net/bonding/bond0
host_sync rejoined
kill "$(cat /tmp/dnsmasq.pid)"
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
    "8021q",
    "vlan19",
    "vlan19-up",
    "vlan29",
    "vlan29-up",
    "dhcp-server",
    "lacp-partner",
    "lacp-both-slaves",
    "ping-cxos",
    "iperf3-to-cxos",
    "iperf3-from-cxos",
    "iperf3-aggr",
    "vnic-leases",
    "ping-vnics",
    "iperf3-through-failover",
    "no-long-stall",
    "rejoined-linux",
    "ping-after-rejoin",
    "iperf3-through-failover1",
    "failover1-recovers",
    "linux-loses-port1",
    "iperf3-single",
    "rejoined-linux1",
    "iperf3-through-fault",
    "fault-keeps-both",
];

fn aggr_linux(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    systests_peer::with_peer_dir(ctx, test, "aggr", 20, |log, dir| run(ctx, test, log, dir))
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

/// A member's cable pulled (`up` false) or plugged back: the model's port
/// `port` and the peer's NIC `p<port>` on the other end both lose (or
/// get) carrier, as with a real cable. A link lost on one end only is the
/// `rejoined` step's case: there the far end notices by LACP timeout, and
/// the flows it hashes to the dead link stall for that timeout plus TCP's
/// backed-off retransmission (smoltcp's RTO is at least 1 s and doubles).
fn cable(sim: &mut SimDevice, qmp: &mut Qmp, port: u8, up: bool) -> Result<(), String> {
    let state = if up { "up" } else { "down" };
    sim.ask_ok(&format!("link {port} {state}"))
        .map_err(at("the model's link"))?;
    qmp.set_link(&format!("p{port}"), up)
        .map_err(at("QMP set_link on the peer's NIC"))
}

/// Polls `aggr show` until `port`'s transmit (`tx`) or receive counter
/// has grown by more than 100 frames from its first reading, within
/// `wait`: traffic goes on over it.
fn wait_frames(shell: &mut Shell, port: &str, tx: bool, wait: Duration) -> Result<(), String> {
    let count = |show: &str| member(show, port).map(|(_, t, r)| if tx { t } else { r });
    let first = count(&shell.ask("aggr show")?)?;
    wait_show(shell, wait, |show| {
        count(show).is_ok_and(|n| n > first + 100)
    })
    .map(|_| ())
    .map_err(|e| format!("{port} from {first} frames: {e}"))
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
    let (mut peer, mut qmp) = boot_peer(
        &setup,
        &[("p0", PEER_MAC, &wire0), ("p1", PEER_MAC2, &wire1)],
        &peer_script(),
        log,
        dir,
        TIMEOUT,
    )?;
    expect_sync(&mut peer, "ready")?;

    let plan = vnic_plan();
    let mut cmdline =
        format!("aggr.0=ports:net0+net1,lacp:active,policy:l4,timer:fast,ip:{CXOS4}/24");
    for v in plan.iter().filter(|v| v.n < CMDLINE_VNICS) {
        cmdline.push_str(&format!(" vnic.{}={}", v.n, v.def()));
    }
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
    // The rest of the VNICs, from the shell (numbered in order: the first
    // free number), on the aggregation that is up: up from the start.
    for v in plan.iter().filter(|v| v.n >= CMDLINE_VNICS) {
        let answer = shell
            .ask(&format!("vnic create {}", v.def()))
            .map_err(at("vnic create over:aggr0"))?;
        plain_line(&answer, &format!("vnic{}: created ", v.n))
            .map_err(at("vnic create over:aggr0"))?;
        let status = answer
            .lines()
            .find(|l| l.starts_with(&format!("vnic{} ", v.n)))
            .unwrap_or("");
        if !status.contains(" link up ") {
            return Err(format!(
                "step `a VNIC made on aggr0 while it is up is up`:\n{answer}"
            ));
        }
    }
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

    // 20 VNICs: every lease taken (cxos's side), the peer pings each and
    // finds the leases in its file, each pings the peer.
    expect_sync(&mut peer, "vnics")?;
    let addrs = wait_vnics(&mut shell, &plan, Duration::from_secs(60))
        .map_err(at("every VNIC on aggr0 has its address"))?;
    let words: Vec<String> = plan
        .iter()
        .zip(&addrs)
        .map(|(v, a)| format!("{}:{a}", if v.ip.is_some() { 'S' } else { 'D' }))
        .collect();
    peer.reply(&format!("go {}", words.join(" ")))
        .map_err(at("vnics"))?;
    expect_sync(&mut peer, "vnics-pinged")?;
    for v in &plan {
        let answer = shell
            .ask(&format!("ping -I vnic{} {} -c 1", v.n, v.peer()))
            .map_err(at("each VNIC pings the peer"))?;
        plain_line(&answer, "1 packets transmitted, 1 received")
            .map_err(at("each VNIC pings the peer"))?;
    }
    let show = shell.ask("aggr show").map_err(at("aggr show"))?;
    let names: Vec<String> = plan.iter().map(|v| format!("vnic{}", v.n)).collect();
    plain_line(&show, &format!("  vnics: {}", names.join(" ")))
        .map_err(at("aggr show names the VNICs on aggr0"))?;
    if !both_distributing(&show) {
        return Err(format!("step `aggr show: per-member state`:\n{show}"));
    }
    check_flows(&mut shell, &plan)?;
    peer.reply("go").map_err(at("vnics-pinged"))?;

    // Failover of port 0 during the peer's iperf3.
    expect_sync(&mut peer, "failover0")?;
    std::thread::sleep(Duration::from_secs(3));
    cable(&mut sim, &mut qmp, 0, false)?;
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
    std::thread::sleep(Duration::from_secs(2));
    wait_frames(&mut shell, "net1", false, Duration::from_secs(6))
        .map_err(at("traffic continues over net1 (rx)"))?;
    cable(&mut sim, &mut qmp, 0, true)?;
    let rejoin_started = Instant::now();
    wait_show(&mut shell, Duration::from_secs(30), both_distributing)
        .map_err(at("net0 rejoins on cxos"))?;
    let rejoin = rejoin_started.elapsed();
    peer.reply("go").map_err(at("failover0"))?;

    // Failover of port 1 during an iperf3 from cxos; port 1 stays out
    // for the single-port figure.
    expect_sync(&mut peer, "failover1")?;
    std::thread::sleep(Duration::from_secs(3));
    cable(&mut sim, &mut qmp, 1, false)?;
    // The captures' clock.
    let cut1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    wait_show(&mut shell, Duration::from_secs(2), |show| {
        matches!(
            (member(show, "net0"), member(show, "net1")),
            (Ok((true, _, _)), Ok((false, _, _)))
        )
    })
    .map_err(at("net1 leaves at once on link down"))?;
    std::thread::sleep(Duration::from_secs(2));
    wait_frames(&mut shell, "net0", true, Duration::from_secs(6))
        .map_err(at("traffic continues over net0 (tx)"))?;
    peer.reply("go").map_err(at("failover1"))?;
    expect_sync(&mut peer, "single")?;
    cable(&mut sim, &mut qmp, 1, true)?;
    wait_show(&mut shell, Duration::from_secs(30), both_distributing)
        .map_err(at("net1 rejoins on cxos"))?;
    peer.reply("go").map_err(at("single"))?;

    // A queue fault on port 1's function under traffic: recovered, and
    // net1 never leaves the aggregation (polled through one LACP short
    // timeout and more after the fault).
    expect_sync(&mut peer, "fault")?;
    std::thread::sleep(Duration::from_millis(1500));
    // Earlier console lines are behind the prompt of this answer.
    shell.ask("uptime").map_err(at("uptime"))?;
    let from = shell.ready;
    let armed = sim.ask_ok(FAULT).map_err(at("the queue fault"))?;
    let injected = Instant::now();
    let mut fault_line = None;
    while fault_line.is_none() || injected.elapsed() < Duration::from_secs(4) {
        let show = shell.ask("aggr show").map_err(at("aggr show"))?;
        if !both_distributing(&show) {
            return Err(format!(
                "step `net1 stays in the aggregation through the queue fault` ({armed:?}):\n{show}"
            ));
        }
        if fault_line.is_none() {
            // Printed on its own, possibly right after a prompt.
            fault_line = shell.session.serial()[from..]
                .lines()
                .map(|l| l.trim_start_matches(systests_sim::PROMPT).trim_end())
                .find(|l| {
                    l.starts_with(&format!("FAULT {FAULT_CLASS} "))
                        && !l.ends_with("outcome=pending")
                })
                .map(str::to_string);
        }
        if fault_line.is_none() && injected.elapsed() > Duration::from_secs(20) {
            return Err(format!(
                "step `the queue fault is recorded`: no FAULT {FAULT_CLASS} line 20 s after {armed:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let fault_line = fault_line.unwrap_or_default();
    if !fault_line.ends_with("outcome=recovered") {
        return Err(format!("step `the queue recovers`: {fault_line}"));
    }
    let long = shell.ask("aggr show -L").map_err(at("aggr show -L"))?;
    let actors = long
        .lines()
        .filter(|l| l.trim().starts_with("actor: ") && l.contains("collecting,distributing"))
        .count();
    if actors != 2 {
        return Err(format!(
            "step `both actors Collecting_Distributing after the fault`:\n{long}"
        ));
    }
    peer.reply("go").map_err(at("fault"))?;

    // The Linux side takes a member down (its NIC's cable, through QMP):
    // cxos's net1 keeps its link and must notice by LACP timeout (3 s).
    expect_sync(&mut peer, "rejoined")?;
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

    // Delete (the members get their interfaces back), create again (its
    // VNICs with it), and detach both functions with it negotiated.
    let answer = shell.ask("aggr delete aggr0").map_err(at("aggr delete"))?;
    plain_line(&answer, "aggr0: deleted, 0 errors").map_err(at("aggr delete"))?;
    for (port, mac) in [("net0", CXOS_MAC), ("net1", CXOS_MAC2)] {
        let answer = shell
            .ask(&format!("ifconfig {port}"))
            .map_err(at("ifconfig"))?;
        plain_line(&answer, &format!("{port} {mac} "))
            .map_err(at("the members get their own interfaces back"))?;
    }
    let answer = shell
        .ask("aggr create aggr0 net0 net1 lacp active policy L4 timer fast")
        .map_err(at("aggr create"))?;
    let remade = plan
        .iter()
        .filter(|v| {
            answer
                .lines()
                .any(|l| l.starts_with(&format!("vnic{} ", v.n)))
        })
        .count();
    if remade != plan.len() {
        return Err(format!(
            "step `aggr create makes its {} VNICs again`: {remade}\n{answer}",
            plan.len()
        ));
    }
    wait_show(&mut shell, Duration::from_secs(30), both_distributing)
        .map_err(at("the new aggr0 negotiates"))?;
    let answer = shell.ask("detach 01:00.0").map_err(at("detach"))?;
    plain_line(&answer, "aggr0: deleted, 0 errors (member net0 detached)")
        .map_err(at("detach with the aggregation up"))?;
    for pci in ["01:00.0", "02:00.0"] {
        let answer = if pci == "01:00.0" {
            answer.clone()
        } else {
            shell.ask(&format!("detach {pci}")).map_err(at("detach"))?
        };
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
        let objects = sim
            .ask_ok(&format!("objects {port}"))
            .map_err(at("objects"))?;
        if pages.last().map(String::as_str) != Some("ok 0 pages held")
            || san.last().map(String::as_str) != Some("ok 0 violations")
            || objects.last().map(String::as_str) != Some("ok 0 objects")
            || !objects.iter().any(|l| l == "left-at-teardown 0")
        {
            return Err(format!(
                "step `model clean on port {port}`: {pages:?} {san:?} {objects:?}"
            ));
        }
    }
    peer.reply("go").map_err(at("rejoined"))?;
    let text = finish_peer(peer, log, PEER_CHECKS)?;
    shell.poweroff(&mut sim).map_err(at("cxos powers off"))?;

    let mut lacpdus = Vec::new();
    for (pcap, from) in [
        (&pcap0, [PEER_MAC, CXOS_MAC]),
        (&pcap1, [PEER_MAC2, CXOS_MAC2]),
    ] {
        let capture = std::fs::read(pcap).map_err(|e| format!("{}: {e}", pcap.display()))?;
        for mac in from {
            let n = fast_lacpdus_from(&capture, mac_bytes(mac)?).map_err(at("the captures"))?;
            if n == 0 {
                return Err(format!(
                    "step `fast LACPDUs in the captures`: none from {mac} in {}",
                    pcap.display()
                ));
            }
            lacpdus.push(n.to_string());
        }
    }
    let failover = pcap_failover(&pcap1, &pcap0, cut1).map_err(at("the captures"))?;
    let value = |name| linux_vm::value(&text, name).unwrap_or("?");
    let gap = value("stream-gap1")
        .parse::<f64>()
        .map_or_else(|_| "?".to_string(), |n| format!("{:.1}", n * 0.5));
    println!(
        "    (LACP converged {:.1} s after cxos booted, net0 out {:.1} s after link down, rejoin {:.1} s, net1 timed out {:.1} s after Linux's member went; peer iperf3 -P 4 -b {RATE}: to cxos {}, from cxos {}; longest zero run {} s; link 1 down under iperf3 -R: longest stream gap {gap} s, sum's zero run {} x 0.5 s, from the captures {failover}; unlimited -P 4 to cxos: aggr0 {}, one port {}; {fault_line}; LACPDUs {}; total {:.1} s)",
        converged.as_secs_f64(),
        left.as_secs_f64(),
        rejoin.as_secs_f64(),
        timed_out.as_secs_f64(),
        value("iperf3-to"),
        value("iperf3-from"),
        value("zero-run"),
        value("zero-run1"),
        value("iperf3-aggr"),
        value("iperf3-single"),
        lacpdus.join("+"),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The failover figure from the captures (`pcap_flows`): per direction,
/// the longest time from a flow's last frame on the failed port's wire
/// before `cut` to its first on the other's, over the flows that moved.
fn pcap_failover(failed: &Path, other: &Path, cut: f64) -> Result<String, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let (failed, other) = (read(failed)?, read(other)?);
    let mut out = Vec::new();
    for (who, mac) in [("cxos->peer", CXOS_MAC), ("peer->cxos", PEER_MAC)] {
        let mac = mac_bytes(mac)?;
        let moved = pcap_flows::moved_flows(
            &pcap_flows::tcp_frames(&failed, mac)?,
            &pcap_flows::tcp_frames(&other, mac)?,
            cut,
            1.0,
        );
        let back: Vec<f64> = moved.values().flatten().copied().collect();
        let lost = moved.len() - back.len();
        let worst = back.iter().copied().reduce(f64::max);
        out.push(match worst {
            Some(w) => format!(
                "{who} {w:.2} s ({} flows moved{})",
                moved.len(),
                if lost > 0 {
                    format!(", {lost} not seen again")
                } else {
                    String::new()
                }
            ),
            None => format!("{who} - ({} flows moved, none seen again)", moved.len()),
        });
    }
    Ok(out.join(", "))
}

/// `flows` of each member port: the aggregation's MAC and every VNIC's
/// MAC and VLAN steered on both, as programmed and as the adapter reports.
fn check_flows(shell: &mut Shell, plan: &[PlannedVnic]) -> Result<(), String> {
    let list = shell.ask("vnics")?;
    let mut want = vec![format!("dmac {CXOS_MAC}")];
    for v in plan {
        let mac = list
            .lines()
            .find(|l| l.starts_with(&format!("vnic{} ", v.n)))
            .and_then(|l| l.split_whitespace().nth(1))
            .ok_or_else(|| format!("step `flows`: no vnic{} in:\n{list}", v.n))?;
        want.push(format!("dmac {mac}"));
    }
    want.extend(VLANS.iter().map(|id| format!(" vlan {id} ")));
    for pci in ["01:00.0", "02:00.0"] {
        let flows = shell.ask(&format!("flows {pci}"))?;
        let missing: Vec<&String> = want.iter().filter(|w| !flows.contains(*w)).collect();
        let summary = flows
            .lines()
            .find(|l| l.contains(" entries, "))
            .unwrap_or("");
        if !missing.is_empty() || flows.contains("MISMATCH") || !summary.ends_with(" 0 mismatched")
        {
            return Err(format!(
                "step `flows on both ports`: {pci} lacks {missing:?}:\n{flows}"
            ));
        }
    }
    Ok(())
}

/// Polls `vnics` until every planned VNIC is listed over aggr0 with its
/// VLAN and an address (its static one, or a lease in the peer's range
/// marked `(dhcp)`); the addresses in plan order.
fn wait_vnics(
    shell: &mut Shell,
    plan: &[PlannedVnic],
    wait: Duration,
) -> Result<Vec<String>, String> {
    let until = Instant::now() + wait;
    loop {
        let list = shell.ask("vnics")?;
        match vnic_addresses(&list, plan) {
            Ok(addrs) => return Ok(addrs),
            Err(e) if Instant::now() >= until => {
                return Err(format!("not within {} s: {e}\n{list}", wait.as_secs()));
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// Each planned VNIC's line of `vnics` (`vnic<n> <mac> vlan <id>|untagged
/// ... over aggr0 (net0+net1) link up ipv4 <a>/24[ (dhcp)] ...`): its
/// address.
fn vnic_addresses(list: &str, plan: &[PlannedVnic]) -> Result<Vec<String>, String> {
    plan.iter()
        .map(|v| {
            let name = format!("vnic{} ", v.n);
            let line = list
                .lines()
                .find(|l| l.starts_with(&name))
                .ok_or_else(|| format!("no vnic{}", v.n))?;
            let vlan = v
                .vlan()
                .map_or_else(|| " untagged ".to_string(), |id| format!(" vlan {id} "));
            if !line.contains(&vlan) || !line.contains(" over aggr0 (net0+net1) link up ") {
                return Err(format!("vnic{} is not{vlan}over aggr0, up: {line}", v.n));
            }
            let addr = line
                .split(" ipv4 ")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .filter(|a| *a != "none" && !a.is_empty())
                .ok_or_else(|| format!("vnic{} has no address yet", v.n))?;
            let dhcp = line.contains(" (dhcp) ");
            match &v.ip {
                Some(ip) if ip == addr && !dhcp => Ok(addr.to_string()),
                None if dhcp && in_range(addr, v.net) => Ok(addr.to_string()),
                _ => Err(format!("vnic{}: unexpected address: {line}", v.n)),
            }
        })
        .collect()
}

/// `addr` is in the peer's DHCP range on network `net`.
fn in_range(addr: &str, net: usize) -> bool {
    addr.strip_prefix(&format!("10.19.{net}."))
        .and_then(|h| h.parse::<u8>().ok())
        .is_some_and(|h| (DHCP_FIRST..=DHCP_LAST).contains(&h))
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
        for tag in [
            "ready",
            "lacp",
            "traffic",
            "vnics",
            "vnics-pinged",
            "failover0",
            "failover1",
            "single",
            "fault",
            "rejoined",
        ] {
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
    }

    #[test]
    fn the_plan_has_20_vnics_half_leased_on_three_networks() {
        let plan = vnic_plan();
        assert_eq!(plan.len(), 20);
        assert_eq!(plan.iter().filter(|v| v.ip.is_none()).count(), 10);
        for net in 0..=VLANS.len() {
            let on = plan.iter().filter(|v| v.net == net);
            assert!(on.clone().any(|v| v.ip.is_none()), "{net}");
            assert!(on.clone().any(|v| v.ip.is_some()), "{net}");
        }
        assert_eq!(plan[0].def(), "over:aggr0,vlan:19,ip:10.19.1.10/24");
        assert_eq!(plan[1].def(), "over:aggr0,ip:dhcp");
        assert_eq!(plan[2].def(), "over:aggr0,vlan:29,ip:10.19.2.12/24");
        assert_eq!(plan[2].peer(), "10.19.2.1");
        // The command line stays well inside the kernel's 1024 bytes.
        let defs: usize = plan
            .iter()
            .filter(|v| v.n < CMDLINE_VNICS)
            .map(|v| v.def().len() + 10)
            .sum();
        assert!(defs < 400, "{defs}");
    }

    #[test]
    fn vnic_lines_give_the_addresses() {
        let plan = &vnic_plan()[..3];
        let list = "net0: member of aggr0\n\
            vnic0 0c:42:a1:5e:00:12 vlan 19 queues 1 rx 1 pkts 60 B tx 1 pkts 60 B no-buffer 0 errors 0 over aggr0 (net0+net1) link up ipv4 10.19.1.10/24 ipv6 fe80::1 flow 1 pkts 60 B\n\
            vnic1 02:00:00:00:00:02 untagged queues 1 rx 0 pkts 0 B tx 0 pkts 0 B no-buffer 0 errors 0 over aggr0 (net0+net1) link up ipv4 10.19.0.100/24 (dhcp) ipv6 fe80::2 flow 0 pkts 0 B\n\
            vnic2 02:00:00:00:00:03 vlan 29 queues 1 rx 0 pkts 0 B tx 0 pkts 0 B no-buffer 0 errors 0 over aggr0 (net0+net1) link up ipv4 10.19.2.12/24 ipv6 fe80::3 flow 0 pkts 0 B\n";
        assert_eq!(
            vnic_addresses(list, plan),
            Ok(vec![
                "10.19.1.10".into(),
                "10.19.0.100".into(),
                "10.19.2.12".into()
            ])
        );
        // No lease yet, a lease outside the range, the wrong VLAN.
        let pending = list.replace("10.19.0.100/24 (dhcp)", "none (dhcp)");
        assert!(vnic_addresses(&pending, plan).is_err());
        let outside = list.replace("10.19.0.100/24", "10.19.0.99/24");
        assert!(vnic_addresses(&outside, plan).is_err());
        let tagged = list.replace("vlan 29", "vlan 19");
        assert!(vnic_addresses(&tagged, plan).is_err());
        let down = list.replacen(" link up ", " link down ", 1);
        assert!(vnic_addresses(&down, plan).is_err());
        assert!(vnic_addresses(list, &vnic_plan()[..4]).is_err());
        assert!(in_range("10.19.2.149", 2));
        assert!(!in_range("10.19.2.150", 2));
        assert!(!in_range("10.19.1.120", 2));
    }
}
