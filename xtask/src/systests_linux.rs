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

pub fn all() -> Vec<SystemTest> {
    let t = |name, timeout, run| SystemTest { name, timeout, run };
    vec![
        t("linux-probe-cx4", PROBE_TIMEOUT, probe),
        t("linux-probe-cx4lx", PROBE_TIMEOUT, probe),
        t("linux-probe-cx5", PROBE_TIMEOUT, probe),
        t("linux-probe-cx6", PROBE_TIMEOUT, probe),
        t("linux-probe-cx6dx", PROBE_TIMEOUT, probe),
    ]
}

/// The guest, provisioned once per run.
fn guest() -> Result<LinuxGuest, String> {
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
host_sync probed
report_dmesg
"#;

fn run_probe(ctx: &Context) -> Result<ProbeRun, String> {
    let setup = systests_sim::setup(ctx)?;
    let guest = guest()?;
    let log = ctx.ws.logs_dir().join("linux-probe.log");
    let mut sims = Vec::new();
    for p in PARTS {
        let options = SimOptions {
            trace: Some(log.with_extension(format!("{p}.trace"))),
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
    Ok(ProbeRun { text, parts })
}

/// `linux-probe-<part>`: mlx5_core probes the part, its netdev appears,
/// comes up with carrier, reports the model's firmware; no mlx5 error or
/// warning in dmesg (allow-list: [`linux_vm::DMESG_ALLOWED`]); every
/// command Linux issued succeeded; no DMA sanitizer violation.
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
    println!(
        "    ({part}: {} at {} Mb/s, {commands} commands)",
        linux_vm::value(text, &format!("netdev-{part}")).unwrap_or("?"),
        linux_vm::value(text, &format!("speed-{part}")).unwrap_or("?")
    );
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
