//! System test of the fast path's switches (issue 20): cxos on the
//! ConnectX-5 model in the peer network (the model's TAP in a namespace
//! of the test's own), booted with `net.0=...,tx-cqe-every=8,skb_tx_mpwqe=off`
//! (`ethtool -c` and `--show-priv-flags` show the command line's
//! settings; `ifconfig net0 ...,tx-cqe-every=4` changes the interval at
//! run time). Then CQE compression, CQ moderation, eMPW and BlueFlame
//! doorbells are turned on together with `ethtool --set-priv-flags` /
//! `ethtool -C`, off again, and on once more; in each setting stock ping
//! and iperf3 run both ways (plus a counted `pktgen`, the path that sends
//! bursts), and the model's control socket (`stats`: `fastpath
//! empw-sessions .. compressed-sessions .. moderated-events ..
//! bf-doorbells .. bf-mismatches ..`) says whether each technique was
//! used: the four counters grow while on, none while off, and no
//! BlueFlame write ever differs from its WQE in memory (nor any sanitizer
//! violation). The BlueFlame writes go through the write-combining alias
//! the attach line names (`mlx5 01:00.0: BlueFlame area mapped
//! write-combining at 0x...`, checked here); QEMU/TCG ignores memory types,
//! so the model's comparison is what shows the 64-byte writes still arrive
//! whole through it.

use crate::netns::PeerConfig;
use crate::systests::{Context, SystemTest};
use crate::systests_attach::plain_line;
use crate::systests_net::{
    PEER_GUEST, Peer, iperf3_summary, peer_boot, peer_finish, static_cmdline,
};
use crate::systests_sim::expect_reply;

/// The model's fast path counters: eMPW sessions, compressed CQE
/// sessions, moderated completion events, BlueFlame writes that matched
/// the WQE in memory and that did not.
fn fastpath(peer: &Peer) -> Result<[u64; 5], String> {
    let lines = peer.sim.ask_ok("stats")?;
    let line = lines
        .iter()
        .find(|l| l.starts_with("fastpath "))
        .ok_or_else(|| format!("no fastpath line in the model's stats: {lines:?}"))?;
    let w: Vec<&str> = line.split_whitespace().collect();
    let at = |key: &str| -> Result<u64, String> {
        w.iter()
            .position(|x| *x == key)
            .and_then(|i| w.get(i + 1))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("no {key} in {line:?}"))
    };
    Ok([
        at("empw-sessions")?,
        at("compressed-sessions")?,
        at("moderated-events")?,
        at("bf-doorbells")?,
        at("bf-mismatches")?,
    ])
}

/// Stock ping and iperf3 both ways, cxos's ping, a counted pktgen.
fn traffic(peer: &mut Peer, config: &PeerConfig, figures: &mut Vec<String>) -> Result<(), String> {
    let guest = config.ipv4(PEER_GUEST);
    let out = peer.net.ping(&guest, 3).map_err(|e| e.to_string())?;
    if !out.contains("3 packets transmitted, 3 received, 0% packet loss") {
        return Err(format!("stock ping {guest}:\n{out}"));
    }
    let host = peer.net.host_ip();
    let answer = peer.shell.ask(&format!("ping {host} -c 3"))?;
    plain_line(&answer, "3 packets transmitted, 3 received, 0% packet loss")?;
    for (what, extra) in [
        ("host -> cxos", &["-t", "2"][..]),
        ("cxos -> host (-R)", &["-t", "2", "-R"][..]),
    ] {
        let json = peer
            .net
            .iperf3_client(&guest, extra)
            .map_err(|e| format!("{what}: {e}"))?;
        let (bps, _) = iperf3_summary(&json).map_err(|e| format!("{what}: {e}"))?;
        figures.push(format!("{what} {:.1} Mbit/s", bps / 1e6));
    }
    let answer = peer.shell.ask("pktgen -c 2000 -s 64")?;
    plain_line(&answer, "pktgen: sent 2000 frames of 64 bytes in ")?;
    Ok(())
}

/// The settings all on or all off, checked with ethtool's own reports.
fn set(peer: &mut Peer, on: bool) -> Result<(), String> {
    let word = if on { "on" } else { "off" };
    for cmd in [
        format!(
            "ethtool --set-priv-flags net0 rx_cqe_compress {word} skb_tx_mpwqe {word} tx_blueflame {word}"
        ),
        // Stock ethtool's order is free: transmit first, receive after.
        format!(
            "ethtool -C net0 tx-frames {n} rx-usecs {u} tx-usecs {u} rx-frames {n}",
            u = if on { 16 } else { 0 },
            n = if on { 8 } else { 0 }
        ),
    ] {
        let answer = peer.shell.ask(&cmd)?;
        if answer.lines().any(|l| l.starts_with("ethtool: ")) {
            return Err(format!("{cmd}:\n{answer}"));
        }
    }
    let flags = peer.shell.ask("ethtool --show-priv-flags net0")?;
    plain_line(&flags, "Private flags for net0:")?;
    plain_line(&flags, &format!("rx_cqe_compress: {word}"))?;
    plain_line(&flags, &format!("skb_tx_mpwqe   : {word}"))?;
    plain_line(&flags, &format!("tx_blueflame   : {word}"))?;
    let c = peer.shell.ask("ethtool -c net0")?;
    plain_line(&c, "Coalesce parameters for net0:")?;
    plain_line(&c, &format!("rx-usecs: {}", if on { 16 } else { 0 }))?;
    plain_line(&c, &format!("rx-frames: {}", if on { 8 } else { 0 }))?;
    plain_line(&c, &format!("tx-usecs: {}", if on { 16 } else { 0 }))?;
    plain_line(&c, &format!("tx-frames: {}", if on { 8 } else { 0 }))?;
    plain_line(&c, "tx-cqe-every: 4")?;
    Ok(())
}

pub fn switches(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let config = PeerConfig::new("systest");
    let cmdline = format!(
        "{},tx-cqe-every=8,skb_tx_mpwqe=off",
        static_cmdline(&config)
    );
    let Some(mut peer) = peer_boot(ctx, test, false, &cmdline)? else {
        return Ok(());
    };
    let wc = bf_wc_line(peer.shell.session.serial())?.to_string();
    // The command line's settings are in force.
    let c = peer.shell.ask("ethtool -c net0")?;
    plain_line(&c, "tx-cqe-every: 8")?;
    plain_line(&c, "tx-frames: 0")?;
    plain_line(&c, "rx-frames: 0")?;
    let flags = peer.shell.ask("ethtool --show-priv-flags net0")?;
    plain_line(&flags, "skb_tx_mpwqe   : off")?;
    plain_line(&flags, "rx_cqe_compress: off")?;
    // The interval at run time: the same addresses, one item more.
    let addrs = static_cmdline(&config);
    let addrs = addrs.strip_prefix("net.0=").unwrap_or(&addrs);
    let answer = peer
        .shell
        .ask(&format!("ifconfig net0 {addrs},tx-cqe-every=4"))?;
    if answer.lines().any(|l| l.starts_with("ifconfig: ")) {
        return Err(format!("ifconfig net0 ...,tx-cqe-every=4:\n{answer}"));
    }
    let c = peer.shell.ask("ethtool -c net0")?;
    plain_line(&c, "tx-cqe-every: 4")?;
    let answer = peer
        .shell
        .ask("ethtool --set-priv-flags net0 rx_striding_rq on")?;
    plain_line(&answer, "ethtool: unknown private flag 'rx_striding_rq'")?;
    let answer = peer.shell.ask("serve iperf3")?;
    plain_line(&answer, "service ")?;

    let mut figures = Vec::new();
    for on in [true, false, true] {
        set(&mut peer, on)?;
        let before = fastpath(&peer)?;
        let mut f = Vec::new();
        traffic(&mut peer, &config, &mut f)?;
        let after = fastpath(&peer)?;
        let used: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        if used[4] != 0 {
            return Err(format!("{} BlueFlame writes unlike their WQE", used[4]));
        }
        let names = [
            "eMPW sessions",
            "compressed CQE sessions",
            "moderated events",
            "BlueFlame doorbells",
        ];
        for (n, what) in used.iter().zip(names) {
            if on && *n == 0 {
                return Err(format!("techniques on, but the model saw no {what}"));
            }
            if !on && *n != 0 {
                return Err(format!("techniques off, but the model saw {n} {what}"));
            }
        }
        figures.push(format!(
            "{}: {} eMPW sessions, {} compressed sessions, {} moderated events, {} BlueFlame doorbells (0 mismatches); {}",
            if on { "on" } else { "off" },
            used[0],
            used[1],
            used[2],
            used[3],
            f.join(", ")
        ));
    }
    expect_reply(&peer.sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    peer_finish(peer)?;
    println!("    ({wc})");
    for f in figures {
        println!("    ({f})");
    }
    Ok(())
}

/// The attach line of the BlueFlame write-combining alias: mapped in the
/// upper-half window (`mmu::WC_WINDOW`, PML4 slot 511), through PAT entry 1
/// with the IA32_PAT value that makes it WC, checked on every CPU.
fn bf_wc_line(serial: &str) -> Result<&str, String> {
    let line = plain_line(serial, "mlx5 01:00.0: BlueFlame area ")?;
    let rest = line
        .strip_prefix("mlx5 01:00.0: BlueFlame area mapped write-combining at 0xffffff80")
        .ok_or_else(|| format!("BlueFlame area not mapped write-combining: {line:?}"))?;
    if !rest.contains(" (PAT entry 1; IA32_PAT 0x0007040600070106 on every online CPU: ") {
        return Err(format!("unexpected PAT in {line:?}"));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::bf_wc_line;

    #[test]
    fn wc_attach_line() {
        let ok = "boot\nmlx5 01:00.0: BlueFlame area mapped write-combining at 0xffffff8000000000 (PAT entry 1; IA32_PAT 0x0007040600070106 on every online CPU: 2)\n";
        assert!(bf_wc_line(ok).is_ok());
        let not = "mlx5 01:00.0: BlueFlame area not mapped write-combining: CPU 1 has IA32_PAT 0x0007040600070406\n";
        assert!(bf_wc_line(not).is_err());
        let wt = "mlx5 01:00.0: BlueFlame area mapped write-combining at 0xffffff8000000000 (PAT entry 1; IA32_PAT 0x0007040600070406 on every online CPU: 2)\n";
        assert!(bf_wc_line(wt).is_err());
        assert!(bf_wc_line("mlx5 01:00.0: attached\n").is_err());
    }
}
