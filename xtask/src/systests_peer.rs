//! System tests with a Linux *peer* VM (issue 19's partner for link
//! aggregation): Debian's stock kernel ([`crate::linux_guest`]) with
//! virtio-net NICs whose backends are the model's port wires
//! (`mlx5-sim --wire qemu:PATH`, QEMU's own stream netdev), booted by
//! [`LinuxVm::boot_peer`]; the test pulls a NIC's cable through the
//! peer's QMP socket ([`crate::qmp`]).
//!
//! `linux-peer-qemu-wire`: cxos in QEMU on `mlx5-sim --personality cx5
//! --wire qemu:PATH`, the Linux peer's first virtio-net connected to PATH,
//! its second to a second model's `qemu:` wire.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::linux_vm::{self, LinuxVm, StreamNic};
use crate::pcap_flows;
use crate::qmp::Qmp;
use crate::session::tail;
use crate::sim_device::{SimDevice, SimOptions};
use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, detach_clean, plain_line};
use crate::systests_sim;

/// Two boots (Linux ~10 s, cxos ~2 s under TCG), pings, a 2 s iperf3, a
/// cable pull and bonding: ~40 s on an idle machine; the limit covers 2
/// cores shared with other runs.
const TIMEOUT: Duration = Duration::from_secs(300);
/// The peer's NIC on cxos's wire: its QEMU id (what `set_link` names)
/// and MAC.
const NIC: &str = "p0";
const PEER_MAC: &str = "52:54:00:19:00:01";
/// The peer's second NIC, on a second model's wire that no VM drives (a
/// capture only: where the aggregation's second port will be).
const NIC2: &str = "p1";
const PEER_MAC2: &str = "52:54:00:19:00:02";
/// The untagged network: the peer's address and its DHCP range.
const PEER4: &str = "10.19.0.1";
const DHCP_FIRST: u8 = 50;
const DHCP_LAST: u8 = 59;
/// The tagged network (802.1Q on the peer, a VNIC on cxos).
const VLAN: u16 = 19;
const PEER_VLAN4: &str = "10.19.1.1";
const CXOS_VLAN4: &str = "10.19.1.2";
/// cxos's VNIC on the VLAN (`vnic.<N>` names it `vnic<N>`).
const CXOS_VNIC: &str = "vnic1";

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "linux-peer-qemu-wire",
        timeout: TIMEOUT,
        run: qemu_wire,
    }]
}

/// The peer's script. It syncs with the host at `ready` (address, VLAN,
/// DHCP server up: the host boots cxos), `pinged` (the host has cxos ping
/// back), `link-off` / `link-on` (the host pulls and plugs the cable
/// through QMP) and `resumed`.
fn peer_script() -> String {
    format!(
        r#"
not() {{ ! "$@"; }}
iperf_to() {{ iperf3_client "$@" > /tmp/iperf3.out 2>&1; s=$?; cat /tmp/iperf3.out; return $s; }}
check virtio-net modprobe virtio_net
check nic wait_for 30 netdev_with_mac {PEER_MAC}
check nic2 wait_for 30 netdev_with_mac {PEER_MAC2}
dev=$(netdev_with_mac {PEER_MAC})
dev2=$(netdev_with_mac {PEER_MAC2})
value nics "$dev $dev2"
ip addr add {PEER4}/24 dev "$dev"
check up ip link set "$dev" up
check up2 ip link set "$dev2" up
check carrier wait_for 30 carrier_up "$dev"
check carrier2 wait_for 30 carrier_up "$dev2"
# The kernel's own module requests find no /sbin/modprobe here.
check 8021q modprobe 8021q
check vlan ip link add link "$dev" name "$dev.{VLAN}" type vlan id {VLAN}
ip addr add {PEER_VLAN4}/24 dev "$dev.{VLAN}"
check vlan-up ip link set "$dev.{VLAN}" up
check dhcp-server dnsmasq --conf-file=/dev/null --port=0 --user=root --group=root \
    --interface="$dev" --bind-interfaces --dhcp-leasefile=/tmp/leases \
    --pid-file=/tmp/dnsmasq.pid --dhcp-range=10.19.0.{DHCP_FIRST},10.19.0.{DHCP_LAST},255.255.255.0,2m
host_sync ready
set -- $CXOS_REPLY
cxos=$2
check lease grep -q " $cxos " /tmp/leases
check ping-cxos ping -c 3 -W 2 "$cxos"
check ping-cxos-vlan ping -c 3 -W 2 {CXOS_VLAN4}
check iperf3-to-cxos iperf_to -c "$cxos" -t 2
value iperf3 "$(sed -n 's/.* \([0-9.]* [KMG]bits\/sec\).*receiver$/\1/p' /tmp/iperf3.out)"
host_sync pinged
host_sync link-off
check carrier-off wait_for 10 carrier_down "$dev"
check carrier2-stays carrier_up "$dev2"
check no-traffic-while-off not ping -c 2 -W 1 "$cxos"
host_sync link-on
check carrier-on wait_for 10 carrier_up "$dev"
check traffic-resumes wait_for 20 ping -c 1 -W 1 "$cxos"
check ping-cxos-again ping -c 3 -W 2 "$cxos"
host_sync resumed
kill "$(cat /tmp/dnsmasq.pid)"
ip link del "$dev.{VLAN}"
ip addr flush dev "$dev"
ip link set "$dev" down
ip link set "$dev2" down
check bonding modprobe bonding mode=802.3ad lacp_rate=fast miimon=100
check bond-enslave ip link set "$dev" master bond0
check bond-enslave2 ip link set "$dev2" master bond0
check bond-up ip link set bond0 up
check bond0-proc test -r /proc/net/bonding/bond0
check bond0-802.3ad grep -q "IEEE 802.3ad Dynamic link aggregation" /proc/net/bonding/bond0
check bond0-lacp-fast grep -q "LACP rate: fast" /proc/net/bonding/bond0
check bond0-slave grep -q "Slave Interface: $dev\$" /proc/net/bonding/bond0
check bond0-slave2 grep -q "Slave Interface: $dev2\$" /proc/net/bonding/bond0
check bond0-speed grep -q "Speed: 100000 Mbps" /proc/net/bonding/bond0
# Fast rate: a LACPDU a second, for the capture.
sleep 3
sed 's/^/  bond0| /' /proc/net/bonding/bond0
report_dmesg
"#
    )
}

/// The checks the peer's script must pass, in order.
const PEER_CHECKS: &[&str] = &[
    "virtio-net",
    "nic",
    "nic2",
    "up",
    "up2",
    "carrier",
    "carrier2",
    "8021q",
    "vlan",
    "vlan-up",
    "dhcp-server",
    "lease",
    "ping-cxos",
    "ping-cxos-vlan",
    "iperf3-to-cxos",
    "carrier-off",
    "carrier2-stays",
    "no-traffic-while-off",
    "carrier-on",
    "traffic-resumes",
    "ping-cxos-again",
    "bonding",
    "bond-enslave",
    "bond-enslave2",
    "bond-up",
    "bond0-proc",
    "bond0-802.3ad",
    "bond0-lacp-fast",
    "bond0-slave",
    "bond0-slave2",
    "bond0-speed",
];

/// `linux-peer-qemu-wire`: a stock QEMU NIC on the model's `qemu:` wire.
/// The Linux peer's virtio-net on `--wire qemu:PATH` of cxos's model
/// (cx5): the peer puts an address and a VLAN interface (8021q) on it and
/// serves DHCP (dnsmasq) on the untagged network; cxos leases its address
/// from the peer and has a static VNIC on the VLAN. The peer pings cxos
/// (untagged and on the VLAN) and cxos the peer, the peer's iperf3
/// client runs against cxos's server (`-t 2`). `set_link off` through
/// the peer's QMP: the peer loses carrier and no frame passes either way;
/// `set_link on`: carrier and traffic are back both ways. Last, bonding
/// in 802.3ad mode with fast LACP over both NICs: `/proc/net/bonding/bond0`
/// says so, and the peer's active, short-timeout LACPDUs are in each
/// model's capture (cxos has no LACP yet: nobody answers them). The
/// peer's second NIC is on a second model's wire that no VM drives (a
/// capture only), and keeps its carrier while the first is unplugged. cxos
/// detaches with every page returned. A failure names its step and ends
/// with the tail of both consoles.
fn qemu_wire(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    with_peer_dir(ctx, test, "peerq", 15, |log, dir| {
        run_qemu_wire(ctx, test, log, dir)
    })
}

/// Runs `body` with the test's log path and a scratch directory
/// `<tmp>/cxos-<pid>-<tag>` (for wire and QMP sockets; removed after). A
/// failure ends with the last `lines` lines of the peer's console
/// (`<log>.peer.log`) and of cxos's (`<log>.cxos.log`).
pub(crate) fn with_peer_dir(
    ctx: &Context,
    test: &SystemTest,
    tag: &str,
    lines: usize,
    body: impl FnOnce(&Path, &Path) -> Result<(), String>,
) -> Result<(), String> {
    let log = ctx.log_path(test);
    let consoles = [
        ("Linux peer", log.with_extension("peer.log")),
        ("cxos", log.with_extension("cxos.log")),
    ];
    let dir = std::env::temp_dir().join(format!("cxos-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = std::fs::create_dir_all(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
        .and_then(|()| body(&log, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| {
        let mut out = e;
        for (who, path) in &consoles {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            out.push_str(&format!(
                "\n--- {who} console ({}), last lines ---\n{}",
                path.display(),
                tail(&text, lines)
            ));
        }
        out
    })
}

/// Names the step a failure happened in.
pub(crate) fn at(step: &'static str) -> impl Fn(String) -> String {
    move |e| format!("step `{step}`: {e}")
}

/// Waits for the peer's next sync and requires it to be `tag`, with
/// every check the peer ran so far passed (the first that failed is the
/// step to report).
pub(crate) fn expect_sync(peer: &mut LinuxVm, tag: &'static str) -> Result<(), String> {
    let sync = peer.next_sync().map_err(at(tag))?;
    let checks = linux_vm::checks(peer.session.serial());
    if let Some((name, Err(why))) = checks.iter().find(|(_, r)| r.is_err()) {
        return Err(format!("step `{name}` (in the peer): {why}"));
    }
    if sync.first().map(String::as_str) != Some(tag) {
        return Err(format!(
            "step `{tag}`: the peer synced {sync:?}; its checks so far: {checks:?}"
        ));
    }
    Ok(())
}

/// Boots the Linux peer ([`LinuxVm::boot_peer`]) with a virtio-net NIC
/// per `(QEMU id, MAC, model wire)` of `nics` (reporting the cx5 port's
/// 100 Gb/s, what bonding keys on), running `script`, its console in
/// `<log>.peer.log`; connects to its QMP socket in `dir`. Waits first for
/// the wires' sockets (the models bind them at start).
pub(crate) fn boot_peer(
    setup: &systests_sim::Setup,
    nics: &[(&str, &str, &Path)],
    script: &str,
    log: &Path,
    dir: &Path,
    timeout: Duration,
) -> Result<(LinuxVm, Qmp), String> {
    let guest = crate::systests_linux::guest().map_err(at("provision the Linux guest"))?;
    for (_, _, wire) in nics {
        wait_for_socket(wire, Duration::from_secs(10))
            .map_err(at("the models listen on the wires"))?;
    }
    let nics: Vec<StreamNic> = nics
        .iter()
        .map(|(id, mac, wire)| StreamNic {
            id: id.to_string(),
            mac: mac.to_string(),
            wire: wire.to_path_buf(),
            speed_mbps: 100_000,
        })
        .collect();
    let qmp_path = dir.join("qmp.sock");
    let peer = LinuxVm::boot_peer(
        &setup.qemu,
        &guest,
        &nics,
        &qmp_path,
        script,
        &log.with_extension("peer.log"),
        timeout,
    )
    .map_err(at("boot the Linux peer"))?;
    let qmp = Qmp::connect(&qmp_path, Duration::from_secs(30))
        .map_err(at("connect to the peer's QMP"))?;
    Ok((peer, qmp))
}

/// Waits for the peer's script to end; writes its console to `log`,
/// requires every one of `checks` passed and no kernel splat. Its serial
/// output.
pub(crate) fn finish_peer(peer: LinuxVm, log: &Path, checks: &[&str]) -> Result<String, String> {
    let text = peer.finish().map_err(at("the peer's script ends"))?;
    let _ = std::fs::write(log, &text);
    linux_vm::require_checks(&text, checks).map_err(at("the peer's checks"))?;
    let splats = linux_vm::dmesg_problems(&text);
    if !splats.is_empty() {
        return Err(format!(
            "step `the peer's kernel log`:\n{}",
            splats.join("\n")
        ));
    }
    Ok(text)
}

/// cxos pings `to` (`-I if` when given) `count` times: all answered.
fn cxos_ping(shell: &mut Shell, iface: Option<&str>, to: &str, count: u32) -> Result<(), String> {
    let via = iface.map(|i| format!(" -I {i}")).unwrap_or_default();
    let answer = shell.ask(&format!("ping{via} {to} -c {count}"))?;
    plain_line(
        &answer,
        &format!("{count} packets transmitted, {count} received, 0% packet loss"),
    )
    .map(drop)
}

fn run_qemu_wire(ctx: &Context, test: &SystemTest, log: &Path, dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let setup = systests_sim::setup(ctx).map_err(at("setup"))?;
    let wire = dir.join("wire.sock");
    let wire2 = dir.join("wire2.sock");
    let pcap = log.with_extension("pcap");
    let pcap2 = log.with_extension("2.pcap");
    let options = SimOptions {
        wire: Some(format!("qemu:{}", wire.display())),
        ..SimOptions::default()
    }
    .test_capture(pcap.clone());
    let mut sim = SimDevice::start_with(
        &setup.sim,
        "cx5",
        test.name,
        &log.with_extension("sim.log"),
        &options,
    )
    .map_err(at("start mlx5-sim --wire qemu:"))?;
    let options2 = SimOptions {
        wire: Some(format!("qemu:{}", wire2.display())),
        ..SimOptions::default()
    }
    .test_capture(pcap2.clone());
    let _sim2 = SimDevice::start_with(
        &setup.sim,
        "cx5",
        &format!("{}-2", test.name),
        &log.with_extension("sim2.log"),
        &options2,
    )
    .map_err(at("start the second mlx5-sim --wire qemu:"))?;
    let (mut peer, mut qmp) = boot_peer(
        &setup,
        &[(NIC, PEER_MAC, &wire), (NIC2, PEER_MAC2, &wire2)],
        &peer_script(),
        log,
        dir,
        TIMEOUT,
    )?;
    expect_sync(&mut peer, "ready")?;
    let peer_up = started.elapsed();

    let cmdline = format!("net.0=dhcp vnic.1=vlan:{VLAN},ip:{CXOS_VLAN4}/24");
    let session = crate::systests_net::spawn_vm(ctx, &setup, test, &sim, "cxos", &cmdline)
        .map_err(at("boot cxos"))?;
    let mut shell = Shell::start(session).map_err(at("cxos's shell"))?;
    let line = shell
        .wait_for_line("net0: dhcp lease ")
        .map_err(at("cxos leases an address from the peer's dnsmasq"))?;
    let leased = leased_address(&line).map_err(at("the lease"))?;
    let answer = shell
        .ask("serve iperf3")
        .map_err(at("cxos serves iperf3"))?;
    plain_line(&answer, "service ").map_err(at("cxos serves iperf3"))?;
    peer.reply(&format!("go {leased}")).map_err(at("ready"))?;

    expect_sync(&mut peer, "pinged")?;
    cxos_ping(&mut shell, None, PEER4, 3).map_err(at("cxos pings the peer"))?;
    cxos_ping(&mut shell, Some(CXOS_VNIC), PEER_VLAN4, 3)
        .map_err(at("cxos pings the peer's VLAN interface"))?;
    peer.reply("go").map_err(at("pinged"))?;

    expect_sync(&mut peer, "link-off")?;
    qmp.set_link(NIC, false).map_err(at("QMP set_link off"))?;
    peer.reply("go").map_err(at("link-off"))?;

    expect_sync(&mut peer, "link-on")?;
    let answer = shell
        .ask(&format!("ping {PEER4} -c 2 -W 1"))
        .map_err(at("cxos pings the unplugged peer"))?;
    plain_line(&answer, "2 packets transmitted, 0 received")
        .map_err(at("no frame passes while the cable is out"))?;
    qmp.set_link(NIC, true).map_err(at("QMP set_link on"))?;
    peer.reply("go").map_err(at("link-on"))?;

    expect_sync(&mut peer, "resumed")?;
    cxos_ping(&mut shell, None, PEER4, 3).map_err(at("cxos pings the peer after set_link on"))?;
    peer.reply("go").map_err(at("resumed"))?;

    let text = finish_peer(peer, log, PEER_CHECKS)?;
    detach_clean(&mut shell, &sim).map_err(at("cxos detaches"))?;
    shell.poweroff(&mut sim).map_err(at("cxos powers off"))?;
    let mut lacpdus = Vec::new();
    for (mac, pcap) in [(PEER_MAC, &pcap), (PEER_MAC2, &pcap2)] {
        let capture = std::fs::read(pcap).map_err(|e| format!("{}: {e}", pcap.display()))?;
        let n = fast_lacpdus_from(&capture, mac_bytes(mac)?).map_err(at("the captures"))?;
        if n == 0 {
            return Err(format!(
                "step `fast LACPDUs from the peer's bond0 in the captures`: none from {mac} in {}",
                pcap.display()
            ));
        }
        lacpdus.push(n.to_string());
    }
    let lacpdus = lacpdus.join("+");
    let iperf = linux_vm::value(&text, "iperf3").unwrap_or("?");
    println!(
        "    (peer iperf3 -> cxos: {iperf}; cxos leased {leased}; {lacpdus} fast LACPDUs; \
         peer ready at {:.1} s, total {:.1} s)",
        peer_up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits until `path` exists (the model binds its wire at start).
fn wait_for_socket(path: &Path, wait: Duration) -> Result<(), String> {
    let until = Instant::now() + wait;
    while !path.exists() {
        if Instant::now() >= until {
            return Err(format!("no {} after {} s", path.display(), wait.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The address of `net0: dhcp lease A/24 gw ...`, which must be in the
/// peer's DHCP range.
fn leased_address(line: &str) -> Result<String, String> {
    let addr = line
        .strip_prefix("net0: dhcp lease ")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("lease line not understood: {line}"))?;
    let last = addr
        .strip_prefix("10.19.0.")
        .and_then(|o| o.parse::<u8>().ok())
        .ok_or_else(|| format!("leased {addr}, not in 10.19.0.0/24: {line}"))?;
    if !(DHCP_FIRST..=DHCP_LAST).contains(&last) {
        return Err(format!("leased {addr}, outside the peer's range: {line}"));
    }
    Ok(addr.to_string())
}

pub(crate) fn mac_bytes(mac: &str) -> Result<[u8; 6], String> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {mac}"));
    }
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).map_err(|e| format!("bad MAC {mac}: {e}"))?;
    }
    Ok(out)
}

/// Slow Protocols (IEEE 802.3 annex 57A): EtherType 0x8809, subtype 1 is
/// LACP.
const SLOW_PROTOCOLS: [u8; 2] = [0x88, 0x09];
const LACP_SUBTYPE: u8 = 1;
/// Where a LACPDU's Actor_State is in the frame (IEEE 802.1AX-2014
/// 6.4.2.3): after the Ethernet header (14), subtype and version (2), the
/// Actor TLV's type and length (2), system priority (2), system (6), key
/// (2), port priority (2) and port (2).
const ACTOR_STATE: usize = 32;
/// Actor_State bits 0 and 1 (6.4.2.3): LACP_Activity (active) and
/// LACP_Timeout (short: the partner is asked for fast LACPDUs).
const ACTIVE_SHORT: u8 = 0b11;

/// Active, short-timeout LACPDUs from `src` in a classic pcap file
/// ([`pcap_flows::records`]).
pub fn fast_lacpdus_from(pcap: &[u8], src: [u8; 6]) -> Result<usize, String> {
    // Destination 0..6, source 6..12, EtherType 12..14, subtype 14.
    Ok(pcap_flows::records(pcap)?
        .filter(|r| {
            let frame = r.frame;
            frame.len() > ACTOR_STATE
                && frame[6..12] == src
                && frame[12..14] == SLOW_PROTOCOLS
                && frame[14] == LACP_SUBTYPE
                && frame[ACTOR_STATE] & ACTIVE_SHORT == ACTIVE_SHORT
        })
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_valid() {
        crate::systests::validate(&all()).unwrap();
    }

    /// A capture written by hand: the header (magic d4 c3 b2 a1 = a1b2c3d4
    /// little-endian, version 2.4, snaplen 160, linktype 1), then LACPDUs
    /// cut to their first 36 bytes: active + short timeout from the peer
    /// (Actor_State 0x3f at offset 32), a slow-rate one from the peer
    /// (0x3d), an ARP frame from the peer, a fast one from someone else, a
    /// Marker PDU (subtype 2), and a truncated record.
    #[test]
    fn fast_lacpdus_are_counted_by_source() {
        let mut p = vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 1, 0, 0, 0,
        ];
        let peer = [0x52, 0x54, 0x00, 0x19, 0x00, 0x01];
        let other = [0x02, 0, 0, 0, 0, 9];
        let mut record = |src: [u8; 6], ethertype: [u8; 2], subtype: u8, state: u8| {
            // ts_sec, ts_usec, incl_len 36, orig_len 124.
            p.extend([0, 0, 0, 0, 0, 0, 0, 0, 36, 0, 0, 0, 124, 0, 0, 0]);
            // 0: slow-protocols multicast; 6: source; 12: EtherType.
            p.extend([0x01, 0x80, 0xc2, 0x00, 0x00, 0x02]);
            p.extend(src);
            p.extend(ethertype);
            // 14: subtype, version 1; 16: Actor TLV type 1, length 20;
            // 18: system priority 0xffff; 20: system; 26: key 0x001d;
            // 28: port priority 0x00ff; 30: port 1; 32: Actor_State.
            p.extend([subtype, 1, 1, 20, 0xff, 0xff]);
            p.extend(src);
            p.extend([0x00, 0x1d, 0x00, 0xff, 0x00, 0x01, state, 0, 0, 0]);
        };
        record(peer, SLOW_PROTOCOLS, LACP_SUBTYPE, 0x3f);
        record(peer, SLOW_PROTOCOLS, LACP_SUBTYPE, 0x3d);
        record(peer, [0x08, 0x06], 0, 0x3f);
        record(other, SLOW_PROTOCOLS, LACP_SUBTYPE, 0x3f);
        record(peer, SLOW_PROTOCOLS, 2, 0x3f);
        p.extend([0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0, 1, 2]);
        assert_eq!(p[24 + 16 + ACTOR_STATE], 0x3f);
        assert_eq!(fast_lacpdus_from(&p, peer), Ok(1));
        assert_eq!(fast_lacpdus_from(&p, other), Ok(1));
        assert!(fast_lacpdus_from(&[0u8; 24], peer).is_err());
        assert!(fast_lacpdus_from(&[0xd4], peer).is_err());
    }

    #[test]
    fn the_lease_must_come_from_the_peers_range() {
        assert_eq!(
            leased_address("net0: dhcp lease 10.19.0.53/24 gw 10.19.0.1 from 10.19.0.1 for 120 s"),
            Ok("10.19.0.53".to_string())
        );
        assert!(leased_address("net0: dhcp lease 10.19.0.60/24 gw none").is_err());
        assert!(leased_address("net0: dhcp lease 10.33.0.53/24 gw none").is_err());
        assert!(leased_address("net0: something").is_err());
    }

    #[test]
    fn the_script_runs_every_check_it_requires() {
        let script = peer_script();
        for c in PEER_CHECKS {
            assert!(script.contains(&format!("check {c} ")), "{c}");
        }
        for tag in ["ready", "pinged", "link-off", "link-on", "resumed"] {
            assert!(script.contains(&format!("host_sync {tag}\n")), "{tag}");
        }
        assert!(script.contains("modprobe bonding mode=802.3ad lacp_rate=fast"));
    }
}
