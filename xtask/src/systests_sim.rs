//! System tests of the simulated adapter: `mlx5-sim` serves a ConnectX
//! function over vfio-user to a QEMU that has `vfio-user-pci` (provisioned
//! by [`crate::qemu_provision`]), and the cxos kernel enumerates it.
//!
//! Each test starts its own `mlx5-sim` (stderr in `<test>.sim.log` next to
//! the serial log) with a control socket, then QEMU with guest RAM in a
//! shared memfd (the model reaches it through DMA_MAP) and the function
//! behind a PCIe root port, so it appears at 01:00.0.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::console::{self, PciLine};
use crate::netns::{Capture, PeerConfig, PeerError, PeerNetwork};
use crate::qemu::{Boot, Machine, Qemu, Verdict};
use crate::session::Session;
use crate::sim_device::{SimDevice, stat};
use crate::systests::{Context, SystemTest, expect_verdict};
use crate::workspace::Workspace;

/// One boot of the kernel is ~0.3 s here; the limit covers a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Guest RAM: a shared memfd so QEMU can hand it to the model (sim/README.md).
pub(crate) const RAM: &str = "512M";
pub(crate) const PROMPT: &str = "cxos> ";

/// The parts and the PCI device ids the PRM gives them (sim issue).
const PERSONALITIES: &[(&str, &str)] = &[
    ("cx4", "1013"),
    ("cx4lx", "1015"),
    ("cx5", "1017"),
    ("cx6", "101b"),
    ("cx6dx", "101d"),
];

/// The simulated-adapter tests, in the order they run.
pub fn all() -> Vec<SystemTest> {
    let t = |name, run| SystemTest {
        name,
        timeout: TIMEOUT,
        run,
    };
    vec![
        t("sim-pci-cx4", sim_pci),
        t("sim-pci-cx4lx", sim_pci),
        t("sim-pci-cx5", sim_pci),
        t("sim-pci-cx6", sim_pci),
        t("sim-pci-cx6dx", sim_pci),
        t("sim-control-socket", sim_control),
        t("sim-guest-reset", sim_reset),
        t("sim-run", sim_run),
        t("sim-wire-tap-peer-network", sim_wire_tap),
    ]
}

/// What every simulated-adapter test needs, found or built once per run.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub qemu: Qemu,
    /// The `mlx5-sim` binary.
    pub sim: PathBuf,
}

static SETUP: OnceLock<Result<Setup, String>> = OnceLock::new();

impl Setup {
    /// Finds (or provisions) a QEMU with `vfio-user-pci` and builds `mlx5-sim`.
    pub(crate) fn prepare(ws: &Workspace) -> Result<Setup, String> {
        let qemu = crate::qemu_provision::vfio_user_qemu().map_err(|e| e.to_string())?;
        let sim = crate::sim_device::build(ws)?;
        Ok(Setup { qemu, sim })
    }
}

/// [`Setup::prepare`], once per run of the system tests.
pub(crate) fn setup(ctx: &Context) -> Result<Setup, String> {
    SETUP.get_or_init(|| Setup::prepare(&ctx.ws)).clone()
}

/// Starts the model for `test`, its stderr in `<test>.sim.log`.
pub(crate) fn start_sim(
    setup: &Setup,
    ctx: &Context,
    test: &SystemTest,
    personality: &str,
) -> Result<SimDevice, String> {
    let log = ctx.log_path(test).with_extension("sim.log");
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    SimDevice::start(&setup.sim, personality, test.name, &log)
}

/// The kernel with `cmdline`, booted by PVH, with the function attached.
pub(crate) fn machine(ctx: &Context, sim: &SimDevice, cmdline: &str) -> Machine {
    sim_machine(&ctx.kernel, sim, cmdline)
}

/// The ELF `kernel` with `cmdline`, booted by PVH, with the function attached.
pub(crate) fn sim_machine(kernel: &Path, sim: &SimDevice, cmdline: &str) -> Machine {
    let mut m = Machine::new(Boot::Pvh {
        kernel: kernel.to_path_buf(),
        cmdline: cmdline.to_string(),
    });
    m.memory = RAM.to_string();
    sim.attach_to(&mut m);
    m
}

/// Starts QEMU for `machine` with `extra` arguments (and without
/// `-no-reboot` when `reboot` is set, so a reset reboots the guest).
pub(crate) fn spawn_qemu(
    setup: &Setup,
    ctx: &Context,
    test: &SystemTest,
    machine: &Machine,
    extra: &[&str],
    reboot: bool,
) -> Result<Session, String> {
    let command = qemu_command(setup, machine, extra, reboot);
    Session::spawn(command, &ctx.log_path(test), test.timeout).map_err(|e| e.to_string())
}

/// The provisioned QEMU's command for `machine` (see [`spawn_qemu`]).
pub(crate) fn qemu_command(
    setup: &Setup,
    machine: &Machine,
    extra: &[&str],
    reboot: bool,
) -> Command {
    let mut command = Command::new(&setup.qemu.program);
    command.args(&setup.qemu.leading_args);
    command.args(
        machine
            .args()
            .into_iter()
            .filter(|a| !(reboot && a == "-no-reboot")),
    );
    command.args(extra);
    crate::qemu::note_own_smp(extra);
    command
}

/// The function's line: 01:00.0, Mellanox, the part's device id, Ethernet,
/// MSI-X with 64 vectors and PCIe.
pub(crate) fn check_function(text: &str, device_id: &str) -> Result<(), String> {
    let lines = console::pci_lines(text);
    let id = format!("15b3:{device_id}");
    let f: &PciLine = lines
        .iter()
        .find(|l| l.id == id)
        .ok_or_else(|| format!("no `pci .. {id}` line"))?;
    if f.address != "01:00.0" || f.class != "020000" {
        return Err(format!("simulated function listed as {f:?}"));
    }
    for cap in ["msix(64)", "pcie"] {
        if !f.capabilities.iter().any(|c| c == cap) {
            return Err(format!(
                "pci {} {id}: no {cap} in {:?}",
                f.address, f.capabilities
            ));
        }
    }
    Ok(())
}

fn personality_of(test: &SystemTest) -> Result<(&'static str, &'static str), String> {
    let name = test.name.strip_prefix("sim-pci-").unwrap_or("cx6dx");
    PERSONALITIES
        .iter()
        .copied()
        .find(|(p, _)| *p == name)
        .ok_or_else(|| format!("no personality for test {}", test.name))
}

/// Every personality enumerates, the selftest still passes, and the model
/// exits 0 once QEMU is gone.
fn sim_pci(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let setup = setup(ctx)?;
    let (personality, device_id) = personality_of(test)?;
    let mut sim = start_sim(&setup, ctx, test, personality)?;
    let machine = machine(ctx, &sim, "test=selftest");
    let mut qemu = spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    let status = qemu.wait_exit()?;
    let text = qemu.serial().to_string();
    check_function(&text, device_id)?;
    console::check_selftest(&text, &["frames", "dma", "heap", "timer", "cmdline"], &[])?;
    expect_verdict(Verdict::from_status(status), Verdict::Pass)?;
    sim.expect_clean_exit()
}

/// The control socket answers while the kernel runs: counters, pages,
/// sanitizer, link changes, faults; then poweroff and a clean model exit.
fn sim_control(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let setup = setup(ctx)?;
    let mut sim = start_sim(&setup, ctx, test, "cx6dx")?;
    // The model's own side: the kernel claims the function but no driver
    // touches it (the driver's side is systests_attach's).
    let machine = machine(ctx, &sim, "attach=off");
    let mut qemu = spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    qemu.expect(PROMPT)?;
    check_function(qemu.serial(), "101d")?;
    crate::systests::expect_line(qemu.serial(), "mlx5 01:00.0: not attached (attach=off)")?;

    let stats = sim.ask_ok("stats")?;
    let need = |key: &str, word: &str| {
        stat(&stats, key, word).ok_or_else(|| format!("stats lack `{key} {word}`: {stats:?}"))
    };
    // QEMU read the config space and reset the device at startup, and
    // mapped guest RAM (the memfd) for DMA.
    if need("config", "reads")? == 0 || need("resets", "")? == 0 || need("dma", "live")? == 0 {
        return Err(format!(
            "stats show no config reads, reset or DMA map: {stats:?}"
        ));
    }
    // No driver touches the device: no commands, no page, no violation.
    if need("commands", "")? != 0 {
        return Err(format!("commands executed without a driver: {stats:?}"));
    }
    // Without a driver the kernel only sizes BAR0 through config space:
    // nothing traps in BAR0 and nothing is dropped.
    if need("mmio", "dropped")? != 0 {
        return Err(format!("BAR0 accesses of odd sizes: {stats:?}"));
    }
    expect_reply(&sim.ask_ok("pages")?, "ok 0 pages held")?;
    expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    expect_reply(&sim.ask_ok("link down")?, "ok link down")?;
    if !sim.ask_ok("stats")?.iter().any(|l| l == "link down") {
        return Err("stats do not show the link down".into());
    }
    expect_reply(&sim.ask_ok("link up")?, "ok link up")?;
    sim.ask_ok("fault status 0x104 0x3 0x1234")?;
    sim.ask_ok("fault clear")?;
    let help = sim.ask_ok("help")?;
    if !help.iter().any(|l| l.starts_with("fault no-completion")) {
        return Err(format!("help lacks the fault requests: {help:?}"));
    }
    let bad = sim.ask("link sideways")?;
    if !bad.last().is_some_and(|l| l.starts_with("error: ")) {
        return Err(format!("a bad request was not refused: {bad:?}"));
    }

    qemu.send_line("poweroff")?;
    let status = qemu.wait_exit()?;
    expect_verdict(Verdict::from_status(status), Verdict::Pass)?;
    sim.expect_clean_exit()
}

pub(crate) fn expect_reply(lines: &[String], want: &str) -> Result<(), String> {
    match lines.last() {
        Some(last) if last == want => Ok(()),
        _ => Err(format!("expected {want:?}, got {lines:?}")),
    }
}

/// A guest reboot (QEMU `system_reset`) sends DEVICE_RESET, the model
/// resets, and the rebooted kernel enumerates the function again.
fn sim_reset(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let setup = setup(ctx)?;
    let mut sim = start_sim(&setup, ctx, test, "cx5")?;
    // The model's side of a reboot; a reboot with the driver attached is systests_attach's.
    let monitor = sim.dir.join("monitor.sock");
    let monitor_arg = format!("unix:{},server=on,wait=off", monitor.display());
    let machine = machine(ctx, &sim, "attach=off");
    let mut qemu = spawn_qemu(
        &setup,
        ctx,
        test,
        &machine,
        &["-monitor", &monitor_arg],
        true,
    )?;
    let first = qemu.expect(PROMPT)?;
    let resets_before = resets(&sim)?;

    let mut mon = UnixStream::connect(&monitor).map_err(|e| format!("QEMU monitor: {e}"))?;
    mon.write_all(b"system_reset\n")
        .map_err(|e| format!("QEMU monitor: {e}"))?;
    let banner = qemu.expect_from(first, "booted via pvh")?;
    qemu.expect_from(banner, PROMPT)?;
    let after_reboot = &qemu.serial()[first..];
    check_function(after_reboot, "1017")?;
    let resets_after = resets(&sim)?;
    if resets_after <= resets_before {
        return Err(format!(
            "the model saw no reset: resets {resets_before} before the reboot, {resets_after} after"
        ));
    }
    expect_reply(&sim.ask_ok("pages")?, "ok 0 pages held")?;
    expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    drop(mon);

    qemu.send_line("poweroff")?;
    let status = qemu.wait_exit()?;
    expect_verdict(Verdict::from_status(status), Verdict::Pass)?;
    sim.expect_clean_exit()
}

/// `cargo xtask run --sim --personality cx4lx`, through the same function
/// with the console in the log: the selftest (its `mlx5` test included)
/// passes on a ConnectX-4 Lx, the model reports, and it exits cleanly.
fn sim_run(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: crate::run::RunArgs,
    }
    let setup = setup(ctx)?;
    let log = ctx.log_path(test);
    let sim_log = log.with_extension("sim.log");
    let pcap = log.with_extension("pcap");
    let _ = std::fs::remove_file(&pcap);
    let pcap_arg = pcap.to_string_lossy().into_owned();
    let args = Cli::try_parse_from([
        "run",
        "--sim",
        "--personality",
        "cx4lx",
        "--wire",
        "none",
        "--pcap",
        &pcap_arg,
    ])
    .map_err(|e| e.to_string())?
    .run;
    let mut out = Vec::new();
    let console = crate::run::Console::Log {
        path: &log,
        timeout: test.timeout,
    };
    let code = crate::run::run_sim(
        &setup,
        &ctx.kernel,
        &args,
        test.name,
        &sim_log,
        console,
        &mut out,
    );
    let report = String::from_utf8_lossy(&out).into_owned();
    // xtask's own lines follow the console in the test log.
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log) {
        let _ = write!(f, "\n--- xtask run --sim ---\n{report}");
    }
    let code = code?;
    let text =
        std::fs::read_to_string(&log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    crate::systests::expect_line(&text, "mlx5 01:00.0: ConnectX-4 Lx fw")?;
    check_function(&text, "1015")?;
    console::check_selftest(&text, &["mlx5"], &[])?;
    // --pcap reached the model: a capture file with the libpcap header
    // (magic a1b2c3d4 in the host's order, LINKTYPE_ETHERNET).
    let bytes = std::fs::read(&pcap).map_err(|e| format!("no capture {}: {e}", pcap.display()))?;
    if bytes.len() < 24 || bytes[..4] != 0xa1b2_c3d4u32.to_ne_bytes() || bytes[20] != 1 {
        return Err(format!("{} is not a pcap file", pcap.display()));
    }
    for want in [
        "xtask: mlx5-sim wire: none",
        "xtask: pass (QEMU exit status 33)",
        "xtask: mlx5-sim sanitizer: ok 0 violations",
        "xtask: mlx5-sim exited cleanly",
    ] {
        if !report.contains(want) {
            return Err(format!("no {want:?} in the report:\n{report}"));
        }
    }
    if code != 0 {
        return Err(format!("run --sim exited {code}, not 0:\n{report}"));
    }
    Ok(())
}

/// The peer network of issue 9 with the model on its TAP: `mlx5-sim` runs
/// in the namespace with `--wire tap:cxsim0 --pcap`, the kernel attaches
/// the adapter, a ping from the namespace broadcasts an ARP request that
/// reaches the model's port (control socket counters, the model's capture)
/// and the namespace's own capture (dumpcap, read with tshark) sees it
/// leave. Root only (skipped with the reason otherwise); the namespace is
/// gone afterwards.
fn sim_wire_tap(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let config = PeerConfig {
        subnet: [10, 34, 0],
        dhcp_lease_secs: Some(120),
        ..PeerConfig::new("sim-wire")
    };
    let net = match PeerNetwork::create(&config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => {
            println!("system {}: skipped: {why}", test.name);
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    let ns_name = net.netns().name().to_string();
    let addrs = net
        .netns()
        .ip(&["addr", "show", "dev", crate::netns::TAP])
        .map_err(|e| e.to_string())?;
    if !addrs.contains(&net.host_ip()) || !addrs.contains(&net.host_ip6()) {
        return Err(format!("the TAP lacks the host addresses: {addrs}"));
    }
    let setup = setup(ctx)?;
    let log = ctx.log_path(test);
    let sim_log = log.with_extension("sim.log");
    let model_pcap = log.with_extension("pcap");
    let mut sim = SimDevice::start_with(
        &setup.sim,
        "cx5",
        test.name,
        &sim_log,
        &net.sim_options(Some(model_pcap.clone())),
    )?;
    let wire = sim.ask_ok("wire")?;
    if !wire[0].starts_with("wire tap:cxsim0 connected yes") {
        return Err(format!("the model is not on the TAP: {wire:?}"));
    }
    let machine = machine(ctx, &sim, "");
    let mut qemu = spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    qemu.expect(PROMPT)?;
    crate::systests::expect_line(qemu.serial(), "mlx5 01:00.0: attached in")?;

    let capture = net.capture("tap").map_err(|e| e.to_string())?;
    // Nobody answers at .2: the broadcast ARP request is what matters.
    let _ = net.ping(&net.config().ipv4(2), 1);
    let file = capture.stop().map_err(|e| e.to_string())?;
    let seen = Capture::read(
        &file,
        "arp.opcode == 1",
        &["arp.src.proto_ipv4", "arp.dst.proto_ipv4"],
    )
    .map_err(|e| e.to_string())?;
    if !seen
        .iter()
        .any(|f| *f == [net.host_ip(), "10.34.0.2".to_string()])
    {
        return Err(format!(
            "the namespace's capture has no ARP request: {seen:?}"
        ));
    }
    let wire = sim.ask_ok("wire")?;
    let rx = |prefix: &str| {
        let line = wire.iter().find(|l| l.starts_with(prefix))?;
        let mut words = line.split_whitespace();
        words.by_ref().find(|w| *w == "frames")?;
        words.next()?.parse::<u64>().ok()
    };
    if rx("wire rx").unwrap_or(0) == 0 || rx("port rx").unwrap_or(0) == 0 {
        return Err(format!("nothing from the TAP reached the port: {wire:?}"));
    }
    let bytes = std::fs::read(&model_pcap)
        .map_err(|e| format!("no capture {}: {e}", model_pcap.display()))?;
    // An ARP request for .2 (ethertype 0806 at 12, opcode 1 at 20, target at 38).
    let arp = bytes
        .windows(30)
        .any(|w| w[..2] == [0x08, 0x06] && w[8..10] == [0, 1] && w[26..30] == [10, 34, 0, 2]);
    if !arp {
        return Err("the model's capture has no ARP request".into());
    }

    qemu.send_line("poweroff")?;
    let status = qemu.wait_exit()?;
    expect_verdict(Verdict::from_status(status), Verdict::Pass)?;
    sim.expect_clean_exit()?;
    drop(net);
    if crate::netns::Netns::exists(&ns_name) {
        return Err(format!("namespace {ns_name} left behind"));
    }
    Ok(())
}

fn resets(sim: &SimDevice) -> Result<u64, String> {
    let stats = sim.ask_ok("stats")?;
    stat(&stats, "resets", "").ok_or_else(|| format!("stats lack `resets`: {stats:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_line_is_checked() {
        let text = "pci 00:01.0 1b36:000c class 060400 pcie msix(1) cap(0d)\n\
                    pci 01:00.0 15b3:101d class 020000 pm pcie msix(64)\n";
        check_function(text, "101d").unwrap();
        assert!(check_function(text, "1017").is_err());
        let few = "pci 01:00.0 15b3:1017 class 020000 pm pcie msix(8)\n";
        assert!(
            check_function(few, "1017")
                .unwrap_err()
                .contains("msix(64)")
        );
        let elsewhere = "pci 00:03.0 15b3:1017 class 020000 pm pcie msix(64)\n";
        assert!(check_function(elsewhere, "1017").is_err());
    }

    #[test]
    fn every_personality_has_a_test() {
        for (p, _) in PERSONALITIES {
            let name = format!("sim-pci-{p}");
            let test = all().into_iter().find(|t| t.name == name).unwrap();
            assert_eq!(personality_of(&test).unwrap().0, *p);
        }
        crate::systests::validate(&all()).unwrap();
    }
}
