//! `cargo xtask run`, the main job (issue 9): build, provision, start the
//! simulated ConnectX wired into a fresh peer network (a namespace with
//! the model's TAP, dnsmasq and stock iperf3; see [`crate::netns`]), boot
//! cxos (TCG, or `--accel kvm`), let it take its address by DHCP, measure
//! with the host's stock iperf3 against cxos's iperf3 server in both
//! directions, print a summary table and exit with the verdict. The
//! console is shown as it arrives. `--interactive` keeps cxos's shell
//! instead (and says how to reach it from the namespace);
//! `--passthrough <pci>` boots the same kernel with a real adapter handed
//! to QEMU by vfio-pci.
//!
//! The kernel runs `test=iperf3:-s,-1+iperf3:-s,-1` (two one-off
//! servers, one per direction), so it ends by itself with its verdict,
//! after printing its adapter counters and detaching.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::kernel::{self, Profile};
use crate::netns::{PeerConfig, PeerError, PeerNetwork};
use crate::qemu::{Boot, Machine, Qemu, Verdict};
use crate::run::RunArgs;
use crate::session::describe;
use crate::sim_device::SimDevice;
use crate::systests_sim::{Setup, qemu_command, sim_machine};
use crate::workspace::Workspace;
use crate::{Result, XtaskError};

/// Seconds of each iperf3 run.
pub const IPERF_SECONDS: u32 = 3;
/// The kernel's command line for the main job: DHCP on net0, then one
/// iperf3 server per direction.
pub const CMDLINE: &str = "net.0=dhcp test=iperf3:-s,-1+iperf3:-s,-1";
/// Boot, DHCP (dnsmasq probes an address for ~3 s before offering it),
/// two iperf3 runs and the teardown take ~20 s under TCG; the limit
/// covers a loaded machine.
pub const TIMEOUT: Duration = Duration::from_secs(120);
/// What cxos's iperf3 server prints when it is ready for a client.
const SERVER_READY: &str = "Server listening on 5201";

/// Entry point of `cargo xtask run` without `--sim`/`--plain`/`--iso`.
pub fn run(ws: &Workspace, args: &RunArgs) -> Result<u8> {
    let elf = kernel::build(ws, Profile::from_dev_flag(args.dev))?;
    if let Some(pci) = &args.passthrough {
        return passthrough(&elf, args, pci);
    }
    let setup = Setup::prepare(ws).map_err(XtaskError::msg)?;
    std::fs::create_dir_all(ws.xtask_dir())?;
    let logs = ws.xtask_dir().join("run");
    let mut err = std::io::stderr();
    match main_job(&setup, &elf, args, &logs, true, &mut err) {
        Ok(code) => Ok(code),
        Err(JobError::Skip(why)) => Err(XtaskError::msg(format!(
            "the main job needs its peer network, which cannot be had here: {why}\n\
             (run as root; or use `cargo xtask run --sim` for the model without a network)"
        ))),
        Err(JobError::Failed(why)) => Err(XtaskError::msg(why)),
    }
}

/// `--passthrough 0000:af:00.0`: the same kernel with a real ConnectX
/// function given to QEMU by vfio-pci (bound to the vfio-pci driver on
/// the host beforehand; README), the shell on this terminal and DHCP on
/// net0 unless `--cmdline` says otherwise.
fn passthrough(kernel: &Path, args: &RunArgs, pci: &str) -> Result<u8> {
    let cmdline = args.cmdline.clone().unwrap_or_else(|| "net.0=dhcp".into());
    let mut machine = Machine::new(Boot::Pvh {
        kernel: kernel.to_path_buf(),
        cmdline,
    });
    machine.accel = args.accel;
    machine.devices.push(format!("vfio-pci,host={pci}"));
    machine.devices.extend(args.device.iter().cloned());
    let qemu = Qemu::system()?;
    crate::provision::ensure(&machine.packages())?;
    let mut command = machine.command(&qemu)?;
    eprintln!("xtask: {}", describe(&command));
    let status = command
        .status()
        .map_err(|e| XtaskError::msg(format!("cannot start QEMU: {e}")))?;
    let verdict = Verdict::from_status(status);
    eprintln!("xtask: {verdict}");
    Ok(verdict.exit_code())
}

/// Why the main job did not get to a verdict.
#[derive(Debug)]
pub enum JobError {
    /// The peer network cannot exist here (not root).
    Skip(String),
    Failed(String),
}

impl From<String> for JobError {
    fn from(e: String) -> Self {
        JobError::Failed(e)
    }
}

impl From<&str> for JobError {
    fn from(e: &str) -> Self {
        JobError::Failed(e.to_string())
    }
}

/// One direction's figures from stock iperf3's `--json` report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub bits_per_second: f64,
    pub retransmits: u64,
}

/// The receiver's rate and the sender's retransmits of a TCP report.
pub fn throughput(json: &str) -> std::result::Result<Throughput, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("iperf3 JSON: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("iperf3: {e}"));
    }
    let end = v.get("end").ok_or("iperf3 JSON without `end`")?;
    let bps = end
        .pointer("/sum_received/bits_per_second")
        .and_then(|b| b.as_f64())
        .ok_or("iperf3 JSON without end.sum_received.bits_per_second")?;
    let retransmits = end
        .pointer("/sum_sent/retransmits")
        .and_then(|r| r.as_u64())
        .unwrap_or(0);
    Ok(Throughput {
        bits_per_second: bps,
        retransmits,
    })
}

/// The console as it arrives, shared with the thread reading QEMU.
type Console = Arc<Mutex<String>>;

/// Copies QEMU's serial output into `console`, to `log`, and (if `echo`)
/// to this terminal, until QEMU closes it.
fn pump(mut from: impl Read, console: Console, mut log: std::fs::File, echo: bool) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let _ = log.write_all(&buf[..n]);
        if echo {
            let mut out = std::io::stdout();
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
        }
        if let Ok(mut c) = console.lock() {
            c.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

/// Waits until `cond` holds on the console (checked every 50 ms) or
/// `deadline` passes; its result.
fn wait_console<T>(
    console: &Console,
    deadline: Instant,
    what: &str,
    mut cond: impl FnMut(&str) -> Option<T>,
) -> std::result::Result<T, String> {
    loop {
        if let Some(t) = cond(&console.lock().map_err(|_| "console lock poisoned")?) {
            return Ok(t);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A whole console line starting with `prefix`.
fn line_starting<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

/// The number after `word` in `line`.
fn number_after(line: &str, word: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    words.by_ref().find(|w| *w == word)?;
    words.next()?.trim_end_matches(',').parse().ok()
}

/// What the summary table shows.
#[derive(Debug, Default)]
pub struct Summary {
    pub attach_ms: Option<u64>,
    pub link_up_ms: Option<u64>,
    pub lease: Option<(String, u64)>,
    pub to_cxos: Option<Throughput>,
    pub from_cxos: Option<Throughput>,
    pub tx: Option<String>,
    pub rx: Option<String>,
    pub verdict: Option<Verdict>,
    pub model: Option<String>,
}

impl Summary {
    /// Reads what the kernel printed: attach time, lease, counters.
    fn read_console(&mut self, text: &str) {
        if let Some(l) = line_starting(text, "mlx5 01:00.0: attached in ") {
            self.attach_ms = number_after(l, "in");
            self.link_up_ms = number_after(l, "up");
        }
        if let Some(l) = line_starting(text, "test: net0 ready after ") {
            let ms = number_after(l, "after").unwrap_or(0);
            if let Some(lease) = line_starting(text, "net0: dhcp lease ") {
                let addr = lease.split_whitespace().nth(3).unwrap_or("?").to_string();
                self.lease = Some((addr, ms));
            }
        }
        // The kernel's final `stats` (after the tests, before detaching).
        self.tx = line_starting(text, "  tx: packets ").map(str::to_string);
        self.rx = line_starting(text, "  rx: packets ").map(str::to_string);
    }

    /// The table, one `xtask: ` line each.
    pub fn lines(&self) -> Vec<String> {
        let rate = |t: &Option<Throughput>| {
            t.map_or("not measured".to_string(), |t| {
                format!(
                    "{:.1} Mbit/s, {} retransmits",
                    t.bits_per_second / 1e6,
                    t.retransmits
                )
            })
        };
        let or_none = |s: &Option<String>| s.clone().unwrap_or_else(|| "not seen".into());
        let mut rows = vec![
            (
                "attach (guest clock)".to_string(),
                match (self.attach_ms, self.link_up_ms) {
                    (Some(a), Some(l)) => format!("{a} ms; link up {l} ms after kernel entry"),
                    (Some(a), None) => format!("{a} ms"),
                    _ => "not seen".into(),
                },
            ),
            (
                "DHCP address".to_string(),
                self.lease.as_ref().map_or("none".into(), |(a, ms)| {
                    format!("{a}, {ms} ms after the port opened")
                }),
            ),
            (
                format!("host -> cxos TCP {IPERF_SECONDS} s"),
                rate(&self.to_cxos),
            ),
            (
                format!("cxos -> host TCP {IPERF_SECONDS} s"),
                rate(&self.from_cxos),
            ),
            (
                "adapter tx".into(),
                or_none(&self.tx).trim().trim_start_matches("tx: ").into(),
            ),
            (
                "adapter rx".into(),
                or_none(&self.rx).trim().trim_start_matches("rx: ").into(),
            ),
            (
                "kernel verdict".into(),
                self.verdict.map_or("none".into(), |v| v.to_string()),
            ),
        ];
        if let Some(m) = &self.model {
            rows.push(("mlx5-sim".into(), m.clone()));
        }
        let mut out = vec!["summary:".to_string()];
        out.extend(rows.into_iter().map(|(k, v)| format!("  {k:<24} {v}")));
        out
    }

    /// Everything measured and the kernel passed.
    pub fn passed(&self) -> bool {
        self.to_cxos.is_some_and(|t| t.bits_per_second > 0.0)
            && self.from_cxos.is_some_and(|t| t.bits_per_second > 0.0)
            && self.verdict == Some(Verdict::Pass)
    }
}

/// The main job: `logs` is a directory for the console log, the model's
/// log and the capture; `echo` shows the console on this terminal.
/// Returns xtask's exit code (0: everything passed).
pub fn main_job(
    setup: &Setup,
    kernel: &Path,
    args: &RunArgs,
    logs: &Path,
    echo: bool,
    out: &mut dyn Write,
) -> std::result::Result<u8, JobError> {
    job(setup, kernel, args, logs, echo, out).map(|(code, _)| code)
}

/// A non-interactive main job's summary (for the figures).
fn main_job_summary(
    setup: &Setup,
    kernel: &Path,
    args: &RunArgs,
    logs: &Path,
    out: &mut dyn Write,
) -> std::result::Result<Summary, String> {
    match job(setup, kernel, args, logs, false, out) {
        Ok((0, Some(summary))) => Ok(summary),
        Ok((code, _)) => Err(format!("the main job exited {code}")),
        Err(JobError::Skip(why)) => Err(format!("skipped: {why}")),
        Err(JobError::Failed(why)) => Err(why),
    }
}

/// [`main_job`]'s body: the exit code and, unless interactive, the summary.
fn job(
    setup: &Setup,
    kernel: &Path,
    args: &RunArgs,
    logs: &Path,
    echo: bool,
    out: &mut dyn Write,
) -> std::result::Result<(u8, Option<Summary>), JobError> {
    let say = |out: &mut dyn Write, line: &str| {
        let _ = writeln!(out, "xtask: {line}");
    };
    std::fs::create_dir_all(logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let net = match PeerNetwork::create(&PeerConfig::new("run")) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => return Err(JobError::Skip(why)),
        Err(e) => return Err(JobError::Failed(e.to_string())),
    };
    let personality = args.personality.unwrap_or_default();
    let sim_log = logs.join("mlx5-sim.log");
    let pcap = logs.join("wire.pcap");
    let mut sim = SimDevice::start_with(
        &setup.sim,
        personality.as_str(),
        "run",
        &sim_log,
        &net.sim_options(Some(pcap.clone())),
    )?;
    let interactive = args.interactive;
    let cmdline = args.cmdline.clone().unwrap_or_else(|| {
        if interactive {
            "net.0=dhcp".into()
        } else {
            CMDLINE.into()
        }
    });
    let mut machine = sim_machine(kernel, &sim, &cmdline);
    machine.accel = args.accel;
    machine.devices.extend(args.device.iter().cloned());
    let mut command = qemu_command(setup, &machine, &[], false);
    say(
        out,
        &format!(
            "peer network: namespace {}, host side {} / {}, dnsmasq leasing by DHCP",
            net.netns().name(),
            net.host_ip(),
            net.host_ip6()
        ),
    );
    say(
        out,
        &format!(
            "mlx5-sim ({}) log: {}; wire capture: {}",
            personality.as_str(),
            sim_log.display(),
            pcap.display()
        ),
    );
    say(out, &describe(&command));

    if interactive {
        say(
            out,
            &format!(
                "reach cxos from the namespace, e.g. `ip netns exec {} iperf3 -c <its address>`; \
             model control socket: {}; type `poweroff` at `cxos> ` to end",
                net.netns().name(),
                sim.control.display()
            ),
        );
        let status = command
            .status()
            .map_err(|e| format!("cannot start QEMU: {e}"))?;
        let verdict = Verdict::from_status(status);
        say(out, &verdict.to_string());
        return Ok((verdict.exit_code(), None));
    }

    let console: Console = Arc::default();
    let log_path = logs.join("console.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let stdout = child.stdout.take().ok_or("QEMU's stdout is not piped")?;
    let reader = {
        let console = console.clone();
        std::thread::spawn(move || pump(stdout, console, log, echo))
    };
    let deadline = Instant::now() + TIMEOUT;
    let mut summary = Summary::default();
    let result = drive(&net, &console, deadline, &mut summary, out);
    // The kernel exits by itself after its tests; past the deadline (or
    // after a failure that leaves it waiting) it is stopped.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline && result.is_ok() => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = reader.join();
    summary.verdict = status.map(Verdict::from_status);
    summary.read_console(&console.lock().map_err(|_| "console lock poisoned")?);
    summary.model = Some(match sim.expect_clean_exit() {
        Ok(()) => "exited cleanly".into(),
        Err(e) => e,
    });
    for line in summary.lines() {
        say(out, &line);
    }
    say(out, &format!("console log: {}", log_path.display()));
    result?;
    let clean = summary.model.as_deref() == Some("exited cleanly");
    let code = if summary.passed() && clean { 0 } else { 1 };
    Ok((code, Some(summary)))
}

/// The host's side of the main job: wait for cxos's lease and its
/// servers, run stock iperf3 both ways.
fn drive(
    net: &PeerNetwork,
    console: &Console,
    deadline: Instant,
    summary: &mut Summary,
    out: &mut dyn Write,
) -> std::result::Result<(), String> {
    let address = wait_console(console, deadline, "cxos's DHCP lease", |text| {
        if let Some(l) = line_starting(text, "test: net0 not ready") {
            return Some(Err(l.to_string()));
        }
        line_starting(text, "test: net0 ready after ")?;
        let lease = line_starting(text, "net0: dhcp lease ")?;
        let cidr = lease.split_whitespace().nth(3)?;
        Some(Ok(cidr.split('/').next()?.to_string()))
    })??;
    let secs = IPERF_SECONDS.to_string();
    for (n, reverse) in [(1, false), (2, true)] {
        wait_console(console, deadline, "cxos's iperf3 server", |text| {
            (text.matches(SERVER_READY).count() >= n).then_some(())
        })?;
        let mut extra = vec!["-t", secs.as_str()];
        if reverse {
            extra.push("-R");
        }
        let json = net
            .iperf3_client(&address, &extra)
            .map_err(|e| e.to_string())?;
        let t = throughput(&json)?;
        let _ = writeln!(
            out,
            "xtask: stock iperf3 -c {address} {}: {:.1} Mbit/s, {} retransmits",
            extra.join(" "),
            t.bits_per_second / 1e6,
            t.retransmits
        );
        if reverse {
            summary.from_cxos = Some(t);
        } else {
            summary.to_cxos = Some(t);
        }
    }
    Ok(())
}

/// Boots cxos with a static address in a fresh peer network and pings it
/// from the namespace (one echo request every 20 ms) until it answers:
/// the wall time from starting QEMU to the first reply.
fn boot_to_first_ping(
    setup: &Setup,
    kernel: &Path,
    logs: &Path,
) -> std::result::Result<Duration, String> {
    let mut config = PeerConfig::new("bench");
    config.dhcp_lease_secs = None;
    let net = PeerNetwork::create(&config).map_err(|e| e.to_string())?;
    let guest = config.ipv4(2);
    let sim = SimDevice::start_with(
        &setup.sim,
        "cx5",
        "bench-ping",
        &logs.join("bench-ping-sim.log"),
        &net.sim_options(None),
    )?;
    let cmdline = format!("net.0={guest}/24");
    let machine = sim_machine(kernel, &sim, &cmdline);
    let mut command = qemu_command(setup, &machine, &[], false);
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    let deadline = started + Duration::from_secs(60);
    let result = loop {
        let ok = net
            .netns()
            .command("ping")
            .args(["-n", "-c", "1", "-W", "0.02", &guest])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            break Err("cxos never answered a ping within 60 s".to_string());
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Figures for `cargo xtask bench` (issue 9): over `runs` main jobs, the
/// medians of stock iperf3's throughput each way and of the attach time,
/// and the median boot-to-first-ping time (static address). Needs root.
pub fn bench_figures(
    ws: &Workspace,
    kernel: &Path,
    runs: usize,
) -> std::result::Result<Vec<crate::bench::Figure>, String> {
    let setup = Setup::prepare(ws)?;
    let logs = ws.xtask_dir().join("bench-run");
    let args = RunArgs {
        iso: false,
        uefi: false,
        accel: crate::qemu::Accel::Tcg,
        cmdline: None,
        device: Vec::new(),
        dev: false,
        sim: false,
        personality: None,
        interactive: false,
        plain: false,
        passthrough: None,
        wire: None,
        pcap: None,
    };
    let (mut up, mut down, mut attach, mut ping) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let mut out = Vec::new();
        let summary = main_job_summary(&setup, kernel, &args, &logs, &mut out)?;
        let text = String::from_utf8_lossy(&out);
        let to = summary
            .to_cxos
            .ok_or_else(|| format!("no host -> cxos figure:\n{text}"))?;
        let from = summary
            .from_cxos
            .ok_or_else(|| format!("no cxos -> host figure:\n{text}"))?;
        up.push(to.bits_per_second);
        down.push(from.bits_per_second);
        attach.push(Duration::from_millis(summary.attach_ms.unwrap_or(0)));
        ping.push(boot_to_first_ping(&setup, kernel, &logs)?);
    }
    let median_f = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let ms = |v: Vec<Duration>| crate::bench::median(v).map_or(0, |d| d.as_millis() as u64);
    let figure = |name: &str, value: String, unit: &str| crate::bench::Figure {
        name: name.into(),
        value,
        unit: unit.into(),
    };
    Ok(vec![
        figure(
            "tcg-host-iperf3-to-cxos-tcp",
            format!("{:.1}", median_f(up) / 1e6),
            "Mbit/s",
        ),
        figure(
            "tcg-cxos-to-host-iperf3-tcp",
            format!("{:.1}", median_f(down) / 1e6),
            "Mbit/s",
        ),
        figure("tcg-main-job-attach", ms(attach).to_string(), "ms"),
        figure(
            "tcg-qemu-start-to-first-ping-reply",
            ms(ping).to_string(),
            "ms",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_is_read_from_stock_json() {
        let json = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2e8,"retransmits":7},
            "sum_received":{"bits_per_second":1.5e8}}}"#;
        assert_eq!(
            throughput(json).unwrap(),
            Throughput {
                bits_per_second: 1.5e8,
                retransmits: 7
            }
        );
        assert!(throughput(r#"{"error":"unable to connect"}"#).is_err());
        assert!(throughput(r#"{"end":{}}"#).is_err());
    }

    #[test]
    fn summary_reads_the_console() {
        let text = "mlx5 01:00.0: attached in 26 ms; link up 52 ms after kernel entry\n\
            net0: dhcp lease 10.33.0.161/24 gw 10.33.0.1 from 10.33.0.1 for 120 s\n\
            test: net0 ready after 3400 ms: net0 ...\n\
            port 01:00.0:\n  tx: packets 5 bytes 300 doorbells 5\n  rx: packets 7 bytes 420 no_buffer_drops 0\n";
        let mut s = Summary::default();
        s.read_console(text);
        assert_eq!((s.attach_ms, s.link_up_ms), (Some(26), Some(52)));
        assert_eq!(s.lease, Some(("10.33.0.161/24".to_string(), 3400)));
        assert!(s.tx.as_deref().unwrap().contains("packets 5"));
        assert!(!s.passed());
        s.to_cxos = Some(Throughput {
            bits_per_second: 1.0,
            retransmits: 0,
        });
        s.from_cxos = s.to_cxos;
        s.verdict = Some(Verdict::Pass);
        assert!(s.passed());
        assert!(s.lines().iter().any(|l| l.contains("host -> cxos")));
    }
}
