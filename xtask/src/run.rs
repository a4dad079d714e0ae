//! `cargo xtask run`: boot the kernel in QEMU with the serial console on
//! this terminal and exit with the kernel's verdict.
//!
//! Without `--sim`, `--plain`, `--iso`/`--uefi` or `--device` it is the
//! main job ([`crate::mainjob`]): the simulated ConnectX in a peer network,
//! DHCP, iperf3 both ways against the host's stock iperf3, a summary.
//! `--plain` boots the kernel alone (its shell, or `--cmdline`).
//!
//! With `--sim`, `mlx5-sim` serves a simulated ConnectX at 01:00.0 over
//! vfio-user (the same launch as the `sim-*` system tests; see
//! [`crate::systests_sim`]); [`run_sim`] is also what the `sim-run` system
//! test calls.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use crate::image;
use crate::kernel::{self, Profile};
use crate::provision;
use crate::qemu::{Accel, Boot, Machine, Ovmf, Qemu, Verdict};
use crate::session::{Session, describe};
use crate::sim_device::{Personality, SimDevice, SimOptions};
use crate::systests_sim::{Setup, qemu_command, sim_machine};
use crate::workspace::Workspace;
use crate::{Result, XtaskError};

/// The kernel command line of `run --sim` without `--cmdline` or `--interactive`.
pub const SIM_DEFAULT_CMDLINE: &str = "test=selftest";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Boot the GRUB ISO (multiboot2) instead of loading the ELF directly (PVH).
    #[arg(long)]
    pub iso: bool,
    /// Boot the ISO under UEFI (OVMF); implies --iso.
    #[arg(long)]
    pub uefi: bool,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Kernel command line (e.g. `test=selftest log=debug`); empty starts the shell.
    /// Default: empty, or `test=selftest` with --sim (without --interactive).
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Extra QEMU `-device` (repeatable), e.g. `--device e1000e --device edu`.
    #[arg(long)]
    pub device: Vec<String>,
    /// Use the `kernel-dev` profile.
    #[arg(long)]
    pub dev: bool,
    /// Attach a simulated ConnectX (mlx5-sim over vfio-user, at 01:00.0);
    /// boots the ELF by PVH in a QEMU with vfio-user-pci.
    #[arg(long, conflicts_with_all = ["iso", "uefi"])]
    pub sim: bool,
    /// The part mlx5-sim models (with --sim and the main job; default cx5).
    #[arg(long, value_enum, conflicts_with_all = ["plain", "iso", "uefi", "passthrough"])]
    pub personality: Option<Personality>,
    /// With --sim or the main job: no `test=` on the command line, so the
    /// kernel starts its shell; type `poweroff` to end.
    #[arg(long, conflicts_with_all = ["plain", "iso", "uefi"])]
    pub interactive: bool,
    /// Boot the kernel alone, without a (simulated) adapter.
    #[arg(long, conflicts_with_all = ["sim", "passthrough"])]
    pub plain: bool,
    /// A real ConnectX function for the guest (vfio-pci, bound to the
    /// vfio-pci driver beforehand), e.g. `0000:af:00.0`; the shell with
    /// DHCP on net0 (README, "Real hardware").
    #[arg(long, conflicts_with_all = ["sim", "iso", "uefi"], value_parser = parse_host_pci)]
    pub passthrough: Option<String>,
    /// With --sim: the model's cable: `tap:IFNAME` (opened or created in
    /// this network namespace), `unix:PATH` (to another mlx5-sim naming
    /// the same PATH) or `none` (the default).
    #[arg(long, requires = "sim", value_parser = parse_wire)]
    pub wire: Option<String>,
    /// With --sim: record every frame on the model's wire (both ways) in
    /// this pcap file, readable while it runs (`tshark -r FILE`).
    #[arg(long, requires = "sim")]
    pub pcap: Option<PathBuf>,
}

/// A host PCI address `DDDD:BB:DD.F` (or `BB:DD.F`), as vfio-pci's
/// `host=` takes it.
pub fn parse_host_pci(s: &str) -> std::result::Result<String, String> {
    let parts: Vec<&str> = s.split([':', '.']).collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = match parts.as_slice() {
        [d, b, dev, f] => hex(d, 4) && hex(b, 2) && hex(dev, 2) && hex(f, 1),
        [b, dev, f] => hex(b, 2) && hex(dev, 2) && hex(f, 1),
        _ => false,
    };
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "'{s}' is not a PCI address like 0000:af:00.0 (see lspci -D)"
        ))
    }
}

/// `tap:IFNAME`, `unix:PATH` or `none`, as mlx5-sim's `--wire` takes them.
pub fn parse_wire(s: &str) -> std::result::Result<String, String> {
    let ok = match s.split_once(':') {
        None => s == "none",
        Some(("tap", name)) => {
            !name.is_empty()
                && name.len() <= 15
                && !name.contains(['/', ':'])
                && !name.contains(char::is_whitespace)
        }
        Some(("unix", path)) => !path.is_empty(),
        Some(_) => false,
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a wire: tap:IFNAME (1-15 bytes), unix:PATH or none"
        ))
    }
}

impl RunArgs {
    /// Whether these arguments ask for the main job (see the module docs).
    pub fn is_main_job(&self) -> bool {
        !(self.sim || self.plain || self.iso || self.uefi || !self.device.is_empty())
    }

    /// The model's wire and capture (no namespace: this one).
    pub fn sim_options(&self) -> SimOptions {
        SimOptions {
            wire: self.wire.clone(),
            pcap: self.pcap.clone(),
            netns: None,
            ..SimOptions::default()
        }
    }

    /// The kernel command line: --cmdline if given, else `test=selftest`
    /// for a non-interactive --sim run, else empty (the shell).
    pub fn kernel_cmdline(&self) -> String {
        match &self.cmdline {
            Some(cmdline) => cmdline.clone(),
            None if self.sim && !self.interactive => SIM_DEFAULT_CMDLINE.to_string(),
            None => String::new(),
        }
    }
}

/// Chooses how the kernel boots for these arguments (the ISO is built by the caller).
pub fn boot_for(
    args: &RunArgs,
    kernel: PathBuf,
    iso: Option<PathBuf>,
    vars: PathBuf,
) -> Result<Boot> {
    Ok(match (args.uefi, iso) {
        (true, Some(iso)) => Boot::UefiIso {
            iso,
            ovmf: Ovmf::find()?,
            vars,
        },
        (false, Some(iso)) if args.iso => Boot::BiosIso { iso },
        (false, None) if !args.iso => Boot::Pvh {
            kernel,
            cmdline: args.kernel_cmdline(),
        },
        _ => return Err(XtaskError::msg("internal: ISO expected for --iso/--uefi")),
    })
}

pub fn run(ws: &Workspace, args: &RunArgs) -> Result<u8> {
    if args.is_main_job() {
        return crate::mainjob::run(ws, args);
    }
    let elf = kernel::build(ws, Profile::from_dev_flag(args.dev))?;
    if args.sim {
        let setup = Setup::prepare(ws).map_err(XtaskError::msg)?;
        std::fs::create_dir_all(ws.xtask_dir())?;
        let sim_log = ws.xtask_dir().join("run.sim.log");
        return run_sim(
            &setup,
            &elf,
            args,
            "run",
            &sim_log,
            Console::Terminal,
            &mut std::io::stderr(),
        )
        .map_err(XtaskError::msg);
    }
    let wants_iso = args.iso || args.uefi;
    let iso = if wants_iso {
        let iso = ws.xtask_dir().join("run.iso");
        std::fs::create_dir_all(ws.xtask_dir())?;
        Some(image::make_iso(&elf, &args.kernel_cmdline(), &iso)?)
    } else {
        None
    };
    if args.uefi {
        provision::ensure(&[provision::OVMF])?;
    }
    let boot = boot_for(args, elf, iso, ws.xtask_dir().join("run-vars.fd"))?;
    let mut machine = Machine::new(boot);
    machine.accel = args.accel;
    machine.devices = args.device.clone();
    let qemu = Qemu::system()?;
    provision::ensure(&machine.packages())?;
    let mut command = machine.command(&qemu)?;
    eprintln!("xtask: {}", describe(&command));
    let status = command
        .status()
        .map_err(|e| XtaskError::msg(format!("cannot start QEMU: {e}")))?;
    let verdict = Verdict::from_status(status);
    eprintln!("xtask: {verdict}");
    Ok(verdict.exit_code())
}

/// Where the serial console of a `--sim` run goes.
#[derive(Debug, Clone, Copy)]
pub enum Console<'a> {
    /// This terminal: QEMU's stdio is ours, so what is typed reaches the
    /// kernel's serial port; no time limit.
    Terminal,
    /// Captured into the log at `path` (the system test), with a hard `timeout`.
    Log { path: &'a Path, timeout: Duration },
}

/// How often the model's `pages` and `sanitizer` are read while QEMU runs:
/// the model exits with QEMU, so the last reading is what is reported.
const POLL: Duration = Duration::from_millis(50);

/// `run --sim`: starts `mlx5-sim` (`name` keeps its socket directory unique,
/// its stderr goes to `sim_log`), boots `kernel` with the function attached
/// in the vfio-user QEMU of `setup`, and reports the kernel's verdict, the
/// model's last `pages` and `sanitizer` readings and the model's exit on
/// `out`. Returns xtask's exit code: the verdict's (0 pass, 1 fail, 2 no
/// verdict), or 2 if the model did not exit cleanly. The model and QEMU
/// are ended and the socket directory removed on every path, also when
/// xtask itself is killed (Ctrl-C) — see [`Watchdog`].
pub fn run_sim(
    setup: &Setup,
    kernel: &Path,
    args: &RunArgs,
    name: &str,
    sim_log: &Path,
    console: Console<'_>,
    out: &mut dyn Write,
) -> std::result::Result<u8, String> {
    run_sim_with(
        setup,
        kernel,
        args,
        &args.sim_options(),
        name,
        sim_log,
        console,
        out,
    )
}

/// [`run_sim`] with the model started as `options` say (e.g. in the
/// namespace of a [`crate::netns::PeerNetwork`], wired to its TAP).
#[allow(clippy::too_many_arguments)]
pub fn run_sim_with(
    setup: &Setup,
    kernel: &Path,
    args: &RunArgs,
    options: &SimOptions,
    name: &str,
    sim_log: &Path,
    console: Console<'_>,
    out: &mut dyn Write,
) -> std::result::Result<u8, String> {
    let personality = args.personality.unwrap_or_default();
    let cmdline = args.kernel_cmdline();
    let mut sim = SimDevice::start_with(&setup.sim, personality.as_str(), name, sim_log, options)?;
    let mut watchdog = Watchdog::spawn(&sim);
    let mut machine = sim_machine(kernel, &sim, &cmdline);
    machine.accel = args.accel;
    machine.devices.extend(args.device.iter().cloned());
    let command = qemu_command(setup, &machine, &[], false);
    let say = |out: &mut dyn Write, line: String| {
        let _ = writeln!(out, "xtask: {line}");
    };
    say(
        out,
        format!(
            "mlx5-sim ({}) log: {}",
            personality.as_str(),
            sim_log.display()
        ),
    );
    say(out, describe(&command));
    if let Some(wire) = &options.wire {
        say(out, format!("mlx5-sim wire: {wire}"));
    }
    if let Some(pcap) = &options.pcap {
        say(out, format!("mlx5-sim capture: {}", pcap.display()));
    }
    if args.interactive {
        say(
            out,
            format!(
                "mlx5-sim control socket: {} (one request a line, e.g. `link down`; `help` lists them)",
                sim.control.display()
            ),
        );
        say(out, "type `poweroff` at `cxos> ` to end".to_string());
    }

    let last = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let status = std::thread::scope(|scope| {
        scope.spawn(|| poll_model(&sim, &stop, &last));
        let status = run_qemu(command, console, &mut watchdog);
        stop.store(true, Ordering::Relaxed);
        status.map(|status| (status, Instant::now()))
    })?;
    let (status, exited) = status;

    let verdict = Verdict::from_status(status);
    say(out, verdict.to_string());
    match last.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some((pages, sanitizer, at)) => {
            let before = exited.saturating_duration_since(at).as_millis();
            say(
                out,
                format!(
                    "mlx5-sim, last read {before} ms before QEMU exited (the model exits with QEMU):"
                ),
            );
            say(out, format!("mlx5-sim pages: {pages}"));
            say(out, format!("mlx5-sim sanitizer: {sanitizer}"));
        }
        None => say(
            out,
            "mlx5-sim pages/sanitizer: no reading (the model never answered)".to_string(),
        ),
    }
    match sim.expect_clean_exit() {
        Ok(()) => {
            say(out, "mlx5-sim exited cleanly".to_string());
            Ok(verdict.exit_code())
        }
        Err(e) => {
            say(out, format!("mlx5-sim: {e}"));
            Ok(2)
        }
    }
}

/// The final lines of the last `pages` and `sanitizer` replies (`ok 0
/// pages held`, `ok 0 violations`) and when they were read.
type Reading = (String, String, Instant);

/// Reads `pages` and `sanitizer` every [`POLL`] until `stop`, keeping the latest.
fn poll_model(sim: &SimDevice, stop: &AtomicBool, last: &Mutex<Option<Reading>>) {
    let reply = |request: &str| {
        sim.ask(request)
            .ok()
            .and_then(|lines| lines.last().cloned())
    };
    while !stop.load(Ordering::Relaxed) {
        if let (Some(pages), Some(sanitizer), Ok(mut slot)) =
            (reply("pages"), reply("sanitizer"), last.lock())
        {
            *slot = Some((pages, sanitizer, Instant::now()));
        }
        let until = Instant::now() + POLL;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs QEMU with its console on `console` until it exits; its pid goes to `watchdog`.
fn run_qemu(
    mut command: Command,
    console: Console<'_>,
    watchdog: &mut Option<Watchdog>,
) -> std::result::Result<ExitStatus, String> {
    let watch = |watchdog: &mut Option<Watchdog>, pid: u32| {
        if let Some(w) = watchdog {
            w.watch(pid);
        }
    };
    match console {
        Console::Terminal => {
            let mut child = command
                .spawn()
                .map_err(|e| format!("cannot start QEMU: {e}"))?;
            watch(watchdog, child.id());
            child
                .wait()
                .map_err(|e| format!("cannot wait for QEMU: {e}"))
        }
        Console::Log { path, timeout } => {
            let mut session = Session::spawn(command, path, timeout).map_err(|e| e.to_string())?;
            watch(watchdog, session.id());
            session.wait_exit()
        }
    }
}

/// A `sh` in its own process group (so Ctrl-C on the terminal does not
/// reach it) that waits for EOF on its stdin, which only xtask holds: if
/// xtask dies without dropping this (Ctrl-C, a kill), the shell ends QEMU
/// and the model if they still run (checking first that the pid's command
/// line names the socket directory) and removes the socket directory.
/// Dropped normally, the shell is killed first and does nothing;
/// [`SimDevice`]'s own drop cleans up.
struct Watchdog(Child);

impl Watchdog {
    /// `$1` the model's pid, `$2` the socket directory; the first line read is QEMU's pid.
    const SCRIPT: &str = r#"read -r qemu; read -r line; for p in $qemu $1; do if grep -qa -- "$2" "/proc/$p/cmdline" 2>/dev/null; then kill "$p"; fi; done; rm -rf -- "$2""#;

    fn spawn(sim: &SimDevice) -> Option<Self> {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .args(["-c", Self::SCRIPT, "cxos-sim-watchdog"])
            .arg(sim.id().to_string())
            .arg(&sim.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()
            .map(Self)
    }

    /// Tells the watchdog QEMU's pid.
    fn watch(&mut self, qemu: u32) {
        if let Some(stdin) = self.0.stdin.as_mut() {
            let _ = writeln!(stdin, "{qemu}");
            let _ = stdin.flush();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(iso: bool, uefi: bool) -> RunArgs {
        RunArgs {
            iso,
            uefi,
            accel: Accel::Tcg,
            cmdline: Some("log=debug".into()),
            device: vec![],
            dev: false,
            sim: false,
            personality: None,
            interactive: false,
            plain: false,
            passthrough: None,
            wire: None,
            pcap: None,
        }
    }

    #[test]
    fn main_job_is_the_default() {
        assert!(parse(&[]).unwrap().is_main_job());
        assert!(
            parse(&["--interactive", "--personality", "cx4lx"])
                .unwrap()
                .is_main_job()
        );
        for other in [
            &["--sim"][..],
            &["--plain"],
            &["--iso"],
            &["--device", "edu"],
        ] {
            assert!(!parse(other).unwrap().is_main_job(), "{other:?}");
        }
        assert!(parse(&["--plain", "--sim"]).is_err());
    }

    #[test]
    fn passthrough_takes_a_host_pci_address() {
        let a = parse(&["--passthrough", "0000:AF:00.0"]).unwrap();
        assert_eq!(a.passthrough.as_deref(), Some("0000:af:00.0"));
        assert_eq!(
            parse(&["--passthrough", "af:00.1"])
                .unwrap()
                .passthrough
                .as_deref(),
            Some("af:00.1")
        );
        for bad in ["af:00", "0000:af:00.0x", "zz:00.0", ""] {
            assert!(parse(&["--passthrough", bad]).is_err(), "{bad}");
        }
        assert!(parse(&["--passthrough", "af:00.0", "--sim"]).is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(argv: &[&str]) -> std::result::Result<RunArgs, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("run").chain(argv.iter().copied())).map(|c| c.run)
    }

    #[test]
    fn sim_arguments_parse() {
        let a = parse(&["--sim", "--personality", "cx4lx"]).unwrap();
        assert!(a.sim && !a.interactive);
        assert_eq!(a.personality, Some(Personality::Cx4lx));
        assert_eq!(a.kernel_cmdline(), "test=selftest");
        let a = parse(&["--sim"]).unwrap();
        assert_eq!(a.personality.unwrap_or_default(), Personality::Cx5);
        for p in ["cx4", "cx4lx", "cx5", "cx6", "cx6dx"] {
            let a = parse(&["--sim", "--personality", p]).unwrap();
            assert_eq!(a.personality.unwrap().as_str(), p);
        }
    }

    #[test]
    fn wire_and_pcap_parse_and_reach_the_model() {
        let a = parse(&["--sim", "--wire", "tap:cxt0", "--pcap", "/tmp/w.pcap"]).unwrap();
        assert_eq!(
            a.sim_options(),
            SimOptions {
                wire: Some("tap:cxt0".into()),
                pcap: Some("/tmp/w.pcap".into()),
                netns: None,
                ..SimOptions::default()
            }
        );
        for good in ["none", "unix:/tmp/x.sock", "tap:a23456789012345"] {
            assert!(parse(&["--sim", "--wire", good]).is_ok(), "{good}");
        }
        for bad in [
            "tap:",
            "tap:a234567890123456",
            "unix:",
            "udp:1.2.3.4",
            "tap:a/b",
        ] {
            assert!(parse(&["--sim", "--wire", bad]).is_err(), "{bad}");
        }
        // Only with --sim.
        assert!(parse(&["--wire", "none"]).is_err());
        assert!(parse(&["--pcap", "/tmp/x.pcap"]).is_err());
        assert_eq!(
            parse(&["--sim"]).unwrap().sim_options(),
            SimOptions::default()
        );
    }

    #[test]
    fn sim_cmdline_defaults_and_overrides() {
        assert_eq!(
            parse(&["--sim", "--interactive"]).unwrap().kernel_cmdline(),
            ""
        );
        let a = parse(&["--sim", "--cmdline", "log=debug"]).unwrap();
        assert_eq!(a.kernel_cmdline(), "log=debug");
        let a = parse(&["--sim", "--interactive", "--cmdline", "attach=off"]).unwrap();
        assert_eq!(a.kernel_cmdline(), "attach=off");
        assert_eq!(parse(&[]).unwrap().kernel_cmdline(), "");
    }

    #[test]
    fn sim_options_are_validated() {
        // --personality and --interactive need a simulated adapter.
        assert!(parse(&["--plain", "--personality", "cx5"]).is_err());
        assert!(parse(&["--iso", "--interactive"]).is_err());
        // Unknown parts are refused.
        assert!(parse(&["--sim", "--personality", "cx7"]).is_err());
        assert!(parse(&["--sim", "--personality", "ConnectX-5"]).is_err());
        // The simulated adapter needs the PVH boot (the ELF in the vfio-user QEMU).
        assert!(parse(&["--sim", "--iso"]).is_err());
        assert!(parse(&["--sim", "--uefi"]).is_err());
    }

    #[test]
    fn default_run_boots_pvh_with_the_cmdline() {
        let boot = boot_for(&args(false, false), "/k".into(), None, "/v".into()).unwrap();
        assert_eq!(
            boot,
            Boot::Pvh {
                kernel: "/k".into(),
                cmdline: "log=debug".into()
            }
        );
    }

    #[test]
    fn iso_run_boots_bios() {
        let boot = boot_for(
            &args(true, false),
            "/k".into(),
            Some("/i.iso".into()),
            "/v".into(),
        )
        .unwrap();
        assert_eq!(
            boot,
            Boot::BiosIso {
                iso: "/i.iso".into()
            }
        );
        assert!(boot_for(&args(true, false), "/k".into(), None, "/v".into()).is_err());
    }
}
