//! System test of the fast path's packet generator and sink (issue 20):
//! cxos on the ConnectX-5 model under QEMU (TCG), the model without a
//! wire. `pktgen` sends a counted run (the driver's counters and the
//! empty ring show the device completed every frame) and reports its
//! rate; `pktsink` takes frames the model receives (injected through its
//! control socket) below the stack and reports its rate.

use std::time::Duration;

use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, boot, detach_clean, expect_model_clean, plain_line};
use crate::systests_net::number_after;
use crate::systests_sim::{PROMPT, expect_reply};

const TIMEOUT: Duration = Duration::from_secs(120);
/// Frames of the counted pktgen run.
const GEN_FRAMES: u64 = 20_000;
/// Frames injected for pktsink.
const SINK_FRAMES: u64 = 200;

pub fn all() -> Vec<SystemTest> {
    vec![
        SystemTest {
            name: "fast-pktgen-pktsink",
            timeout: TIMEOUT,
            run: pktgen_pktsink,
        },
        SystemTest {
            name: "fast-switches",
            timeout: Duration::from_secs(240),
            run: crate::systests_fast_switches::switches,
        },
    ]
}

/// `tx: packets <n>` of the shell's `stats`.
fn tx_packets(shell: &mut Shell) -> Result<u64, String> {
    let stats = shell.ask("stats")?;
    let line = plain_line(&stats, "  tx: packets ")?;
    number_after(line, "packets").ok_or_else(|| format!("stats: {line}"))
}

/// The pps figure of a pktgen/pktsink summary (`...: <n> pps, ...`).
fn pps(line: &str) -> Result<u64, String> {
    line.split_whitespace()
        .zip(line.split_whitespace().skip(1))
        .find(|(_, unit)| unit.trim_end_matches(',') == "pps")
        .and_then(|(n, _)| n.parse().ok())
        .ok_or_else(|| format!("no pps in {line:?}"))
}

fn pktgen_pktsink(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let (_setup, mut sim, mut shell) = boot(ctx, test, "cx5", "")?;

    let before = tx_packets(&mut shell)?;
    let answer = shell.ask(&format!("pktgen -c {GEN_FRAMES} -s 64"))?;
    let gen_line = plain_line(
        &answer,
        &format!("pktgen: sent {GEN_FRAMES} frames of 64 bytes in "),
    )?
    .to_string();
    let gen_pps = pps(&gen_line)?;
    let after = tx_packets(&mut shell)?;
    if after < before + GEN_FRAMES {
        return Err(format!(
            "tx packets {before} -> {after}: fewer than {GEN_FRAMES} sent"
        ));
    }
    let rings = shell.ask("rings")?;
    let sq = plain_line(&rings, "  sq 0x")?;
    if !sq.contains(" in_flight 0 ") {
        return Err(format!("frames still in flight after pktgen: {sq}"));
    }
    let answer = shell.ask("pktgen -s 10")?;
    plain_line(&answer, "pktgen: frame size 10 outside 18..=1514")?;

    // The sink first, then the frames: broadcast, ethertype 0x88b6.
    let cmd = format!("pktsink -c {SINK_FRAMES} -t 60");
    shell.session.send_line(&cmd)?;
    // The shell echoes the line and its newline, then starts the sink.
    shell
        .session
        .expect_from(shell.ready, &format!("{cmd}\n"))?;
    std::thread::sleep(Duration::from_millis(500));
    let mut frame = String::from("ffffffffffff02000000000188b6");
    frame.push_str(&"00".repeat(64 - 14));
    for _ in 0..SINK_FRAMES {
        expect_reply(
            &sim.ask_ok(&format!("inject {frame}"))?,
            "ok injected 64 bytes",
        )?;
    }
    let end = shell.session.expect_from(shell.ready, PROMPT)?;
    let answer = shell.session.serial()[shell.ready..end].to_string();
    shell.ready = end;
    let sink_line = plain_line(
        &answer,
        &format!(
            "pktsink: received {SINK_FRAMES} frames ({} bytes) in ",
            SINK_FRAMES * 64
        ),
    )?
    .to_string();
    let sink_pps = pps(&sink_line)?;

    detach_clean(&mut shell, &sim)?;
    expect_model_clean(&sim)?;
    expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    shell.poweroff(&mut sim)?;
    println!("    ({gen_line})");
    println!("    ({sink_line}; injected one control request at a time)");
    println!("    pktgen {gen_pps} pps, pktsink {sink_pps} pps");
    Ok(())
}
