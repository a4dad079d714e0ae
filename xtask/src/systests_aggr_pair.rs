//! Link aggregation of cxos against itself (issue 19): `aggr-cxos-pair`.
//! Two cxos VMs, each on its own `mlx5-sim --ports 2` (a cx5 board and a
//! cx4lx board, so the two ends have different system MACs), the boards'
//! port wires joined pairwise by the model's `unix:` wire (port 0 to
//! port 0, port 1 to port 1; a wire carries carrier changes to the other
//! end, as a cable does). Both boot with `aggr.0=ports:net0+net1,...`:
//! A actively with the L4 policy, B passively with L3 (a passive end
//! speaks only to an active one, so this drives both LACP_Activity
//! settings).
//!
//! One boot of each VM walks through: negotiation (each end
//! Collecting_Distributing on both members, `aggr show -L` naming the
//! other end's system MAC as partner on both), ping both ways over
//! aggr0, then failover: B pings A while the model's `link 0 down` pulls
//! the cable of A's port 0 (B's port 0 loses carrier too); both ends
//! take net0 out, the ping goes on over net1 to its end; `link 0 up` and
//! net0 rejoins on both ends, and ping works again. Both ends power off
//! cleanly.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::session::tail;
use crate::sim_device::{SecondPort, SimDevice, SimOptions};
use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, plain_line};
use crate::systests_sim::{self, PROMPT};

/// Two boots under TCG and LACP convergence: ~60 s on an idle machine;
/// the limit covers 2 shared cores.
const TIMEOUT: Duration = Duration::from_secs(240);
const A4: &str = "10.20.0.1";
const B4: &str = "10.20.0.2";
/// Pings B sends across the failover, one every half second.
const FAILOVER_PINGS: u32 = 12;

pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "aggr-cxos-pair",
        timeout: TIMEOUT,
        run: aggr_pair,
    }]
}

fn at(step: &'static str) -> impl Fn(String) -> String {
    move |e| format!("step `{step}`: {e}")
}

fn aggr_pair(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let log = ctx.log_path(test);
    let dir = std::env::temp_dir().join(format!("cxos-{}-aggr-pair", std::process::id()));
    let result = run(ctx, test, &log, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result.map_err(|e| {
        let mut out = e;
        for side in ["a", "b"] {
            let path = log.with_extension(format!("{side}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push_str(&format!(
                "\n--- cxos {side} console ({}), last lines ---\n{}",
                path.display(),
                tail(&text, 20)
            ));
        }
        out
    })
}

/// Whether member `port`'s line of `aggr show` says it distributes.
fn distributing(show: &str, port: &str) -> Option<bool> {
    let line = show
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{port}: ")))?;
    Some(line.contains("collecting-distributing"))
}

/// The aggregation's system MAC from `aggr show` (`aggr0: 2 ports, mac X, ...`).
fn aggr_mac(show: &str) -> Option<String> {
    let line = show.lines().find(|l| l.starts_with("aggr0: "))?;
    Some(line.split_once(", mac ")?.1.split(',').next()?.to_string())
}

/// Polls `aggr show` on `shell` until both members are in the state
/// `want` gives (or `wait` passes).
fn wait_members(shell: &mut Shell, wait: Duration, want: [bool; 2]) -> Result<String, String> {
    let until = Instant::now() + wait;
    loop {
        let show = shell.ask("aggr show")?;
        if [distributing(&show, "net0"), distributing(&show, "net1")] == want.map(Some) {
            return Ok(show);
        }
        if Instant::now() >= until {
            return Err(format!("not within {} s:\n{show}", wait.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn ping_all(shell: &mut Shell, to: &str, count: u32) -> Result<(), String> {
    let answer = shell.ask(&format!("ping -I aggr0 {to} -c {count}"))?;
    plain_line(
        &answer,
        &format!("{count} packets transmitted, {count} received"),
    )
    .map(|_| ())
}

fn start_sim(
    ctx: &Context,
    setup: &systests_sim::Setup,
    test: &SystemTest,
    log: &Path,
    dir: &Path,
    personality: &str,
    side: &str,
) -> Result<SimDevice, String> {
    let wire = |port: u8| format!("unix:{}", dir.join(format!("wire{port}.sock")).display());
    let options = SimOptions {
        wire: Some(wire(0)),
        second_port: Some(SecondPort {
            wire: Some(wire(1)),
            pcap: Some(log.with_extension(format!("{side}1.pcap"))),
        }),
        ..SimOptions::default()
    }
    .test_capture(log.with_extension(format!("{side}0.pcap")));
    SimDevice::start_with(
        &setup.sim,
        personality,
        &format!("{}-{side}", test.name),
        &log.with_extension(format!("sim-{side}.log")),
        &options,
    )
}

fn run(ctx: &Context, test: &SystemTest, log: &Path, dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let setup = systests_sim::setup(ctx).map_err(at("setup"))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut sim_a =
        start_sim(ctx, &setup, test, log, dir, "cx5", "a").map_err(at("start model A"))?;
    let mut sim_b =
        start_sim(ctx, &setup, test, log, dir, "cx4lx", "b").map_err(at("start model B"))?;

    let cmdline_a = format!("aggr.0=ports:net0+net1,lacp:active,policy:l4,timer:fast,ip:{A4}/24");
    let cmdline_b = format!("aggr.0=ports:net0+net1,lacp:passive,policy:l3,timer:fast,ip:{B4}/24");
    let session_a = crate::systests_net::spawn_vm(ctx, &setup, test, &sim_a, "a", &cmdline_a)
        .map_err(at("boot A"))?;
    let session_b = crate::systests_net::spawn_vm(ctx, &setup, test, &sim_b, "b", &cmdline_b)
        .map_err(at("boot B"))?;
    let mut a = Shell::start(session_a).map_err(at("A's shell"))?;
    let mut b = Shell::start(session_b).map_err(at("B's shell"))?;
    let booted = Instant::now();

    // Negotiation: each end aggregates both links with the other.
    let show_a = wait_members(&mut a, Duration::from_secs(40), [true, true])
        .map_err(at("A: both members Collecting_Distributing"))?;
    let show_b = wait_members(&mut b, Duration::from_secs(40), [true, true])
        .map_err(at("B: both members Collecting_Distributing"))?;
    let converged = booted.elapsed();
    let mac_a = aggr_mac(&show_a).ok_or_else(|| format!("no mac in A's:\n{show_a}"))?;
    let mac_b = aggr_mac(&show_b).ok_or_else(|| format!("no mac in B's:\n{show_b}"))?;
    if mac_a == mac_b {
        return Err(format!("both ends have system MAC {mac_a}"));
    }
    for (shell, partner, who) in [(&mut a, &mac_b, "A"), (&mut b, &mac_a, "B")] {
        let long = shell.ask("aggr show -L").map_err(at("aggr show -L"))?;
        let partners = long
            .lines()
            .filter(|l| l.trim().starts_with(&format!("partner: system {partner} ")))
            .count();
        if partners != 2 {
            return Err(format!(
                "step `{who}'s aggr show -L names the other end as partner on both ports`:\n{long}"
            ));
        }
    }
    ping_all(&mut a, B4, 3).map_err(at("A pings B over aggr0"))?;
    ping_all(&mut b, A4, 3).map_err(at("B pings A over aggr0"))?;

    // Failover: B pings A across a pulled cable on port 0.
    b.session
        .send_line(&format!("ping -I aggr0 {A4} -c {FAILOVER_PINGS} -i 0.5"))?;
    b.session
        .expect_from(b.ready, &format!("from {A4}: icmp_seq=2 "))
        .map_err(at("B's ping runs before the cable is pulled"))?;
    sim_a.ask_ok("link 0 down").map_err(at("link 0 down"))?;
    let pulled = Instant::now();
    wait_members(&mut a, Duration::from_secs(5), [false, true])
        .map_err(at("A takes net0 out at once"))?;
    let left = pulled.elapsed();
    let end = b
        .session
        .expect_from(b.ready, PROMPT)
        .map_err(at("B's ping across the failover ends"))?;
    let answer = b.session.serial()[b.ready..end].to_string();
    b.ready = end;
    wait_members(&mut b, Duration::from_secs(5), [false, true])
        .map_err(at("B takes net0 out (carrier lost on the wire)"))?;
    let summary = plain_line(&answer, &format!("{FAILOVER_PINGS} packets transmitted, "))
        .map_err(at("B's failover ping summary"))?;
    let received: u32 = summary
        .split(", ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no received count in {summary}"))?;
    // The ping keeps working: its last pings, sent well after the
    // cable went, are all answered over net1.
    let last_answered = (FAILOVER_PINGS - 2..=FAILOVER_PINGS)
        .all(|seq| answer.contains(&format!("from {A4}: icmp_seq={seq} ")));
    if !last_answered || received + 3 < FAILOVER_PINGS {
        return Err(format!(
            "step `the ping goes on over net1`: {received} of {FAILOVER_PINGS} answered:\n{answer}"
        ));
    }
    ping_all(&mut a, B4, 3).map_err(at("A pings B over net1 alone"))?;

    sim_a.ask_ok("link 0 up").map_err(at("link 0 up"))?;
    let plugged = Instant::now();
    wait_members(&mut a, Duration::from_secs(30), [true, true]).map_err(at("net0 rejoins on A"))?;
    wait_members(&mut b, Duration::from_secs(30), [true, true]).map_err(at("net0 rejoins on B"))?;
    let rejoin = plugged.elapsed();
    ping_all(&mut b, A4, 3).map_err(at("B pings A after the rejoin"))?;

    a.poweroff(&mut sim_a).map_err(at("A powers off"))?;
    b.poweroff(&mut sim_b).map_err(at("B powers off"))?;
    println!(
        "    (LACP converged {:.1} s after both shells were up, net0 out {:.1} s after link down, {received}/{FAILOVER_PINGS} pings across the failover, rejoin {:.1} s; total {:.1} s)",
        converged.as_secs_f64(),
        left.as_secs_f64(),
        rejoin.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
