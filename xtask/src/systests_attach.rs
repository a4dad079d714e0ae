//! System tests of the kernel's mlx5 attach (issue 8, tests 1-4, 6, 7):
//! the kernel image boots in a QEMU that presents `mlx5-sim` over
//! vfio-user, claims the function, attaches the driver over BAR0, MSI-X
//! and DMA, and the shell's `phys`, `irq`, `detach`, `attach` and `reboot`
//! work against it. The model's control socket is the independent witness
//! (pages held, sanitizer violations, link changes, resets).
//!
//! The model and QEMU are launched by [`crate::systests_sim`] and
//! [`crate::sim_device`]; this file only drives the console and the
//! control socket.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::image;
use crate::qemu::{Boot, Machine, Ovmf, Verdict};
use crate::session::Session;
use crate::sim_device::{SimDevice, stat};
use crate::systests::{Context, SystemTest, expect_verdict};
use crate::systests_sim::{self, PROMPT, Setup, expect_reply, spawn_qemu, start_sim};

/// A boot with an attach is ~1 s here; the limit covers a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Ten detach/attach cycles plus the boot.
const CYCLES_TIMEOUT: Duration = Duration::from_secs(90);
/// GRUB under OVMF takes ~5 s on an idle machine.
const UEFI_TIMEOUT: Duration = Duration::from_secs(120);
/// The ISO boots to the shell and logs where the BARs are.
const ISO_CMDLINE: &str = "log=pci=debug";
/// The simulated function's address behind the root port.
const PCI: &str = "01:00.0";
const DETACH_CYCLES: usize = 10;
/// A page request is served within milliseconds (MSI-X) or a second (the
/// fallback poll); the margin covers a loaded machine.
const PAGE_WAIT: Duration = Duration::from_secs(20);

/// Personality, the part name the driver prints, the firmware major
/// version the model reports, and the link speed it reports.
const PARTS: &[(&str, &str, &str, &str)] = &[
    ("cx4", "ConnectX-4", "12", "100G"),
    ("cx4lx", "ConnectX-4 Lx", "14", "25G"),
    ("cx5", "ConnectX-5", "16", "100G"),
    ("cx6", "ConnectX-6", "20", "200G"),
    ("cx6dx", "ConnectX-6 Dx", "22", "100G"),
];

/// The attach tests, in the order they run.
pub fn all() -> Vec<SystemTest> {
    let t = |name, timeout, run| SystemTest { name, timeout, run };
    vec![
        t("attach-cx4", TIMEOUT, attach_personality),
        t("attach-cx4lx", TIMEOUT, attach_personality),
        t("attach-cx5", TIMEOUT, attach_personality),
        t("attach-cx6", TIMEOUT, attach_personality),
        t("attach-cx6dx", TIMEOUT, attach_personality),
        t("attach-selftest", TIMEOUT, selftest),
        t("attach-detach-cycles", CYCLES_TIMEOUT, detach_cycles),
        t("attach-events", TIMEOUT, events),
        t("attach-failure-and-fault", TIMEOUT, failure_and_fault),
        t("attach-two-functions", TIMEOUT, two_functions),
        t("attach-grub-bios", TIMEOUT, bios_iso),
        t("attach-grub-uefi", UEFI_TIMEOUT, uefi_iso),
        t("attach-reboot", TIMEOUT, reboot),
    ]
}

/// A kernel at its shell prompt with the model attached.
pub(crate) struct Shell {
    pub(crate) session: Session,
    /// Offset just past the latest prompt.
    pub(crate) ready: usize,
}

impl Shell {
    pub(crate) fn start(mut session: Session) -> Result<Self, String> {
        let ready = session.expect(PROMPT)?;
        Ok(Self { session, ready })
    }

    /// Types `command`; returns the answer up to the next prompt.
    pub(crate) fn ask(&mut self, command: &str) -> Result<String, String> {
        self.session.send_line(command)?;
        let end = self.session.expect_from(self.ready, PROMPT)?;
        let answer = self.session.serial()[self.ready..end - PROMPT.len()].to_string();
        self.ready = end;
        Ok(answer)
    }

    /// Waits for a whole console line starting with `prefix` printed since
    /// the last prompt (what the kernel prints on its own between
    /// commands, possibly right after the prompt); log lines, which start
    /// with a timestamp, do not match. Returns the line.
    pub(crate) fn wait_for_line(&mut self, prefix: &str) -> Result<String, String> {
        let mut from = self.ready;
        loop {
            let start = self.session.expect_from(from, prefix)? - prefix.len();
            let before = &self.session.serial()[..start];
            if before.ends_with('\n') || before.ends_with(PROMPT) {
                let end = self.session.expect_from(start, "\n")? - 1;
                return Ok(self.session.serial()[start..end].to_string());
            }
            from = start + 1;
        }
    }

    pub(crate) fn poweroff(mut self, sim: &mut SimDevice) -> Result<(), String> {
        self.session.send_line("poweroff")?;
        let status = self.session.wait_exit()?;
        expect_verdict(Verdict::from_status(status), Verdict::Pass)?;
        sim.expect_clean_exit()
    }
}

/// The first console line (not a log line) starting with `prefix`.
pub(crate) fn plain_line<'a>(text: &'a str, prefix: &str) -> Result<&'a str, String> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .ok_or_else(|| format!("no line starting with {prefix:?} in:\n{text}"))
}

/// `mlx5 01:00.0: <part> fw <major>.x.y, 1 port, MAC xx:..:xx, link up <speed>`.
fn check_info_line(text: &str, part: &str, fw_major: &str, speed: &str) -> Result<(), String> {
    check_info_line_of(PCI, text, part, fw_major, speed)
}

/// [`check_info_line`] for the function at `pci`.
fn check_info_line_of(
    pci: &str,
    text: &str,
    part: &str,
    fw_major: &str,
    speed: &str,
) -> Result<(), String> {
    let prefix = format!("mlx5 {pci}: {part} fw {fw_major}.");
    let line = plain_line(text, &prefix)?;
    let mac = line
        .split_once(", MAC ")
        .and_then(|(_, rest)| rest.split(',').next())
        .ok_or_else(|| format!("info line without a MAC: {line}"))?;
    let octets: Vec<&str> = mac.split(':').collect();
    if octets.len() != 6
        || octets
            .iter()
            .any(|o| o.len() != 2 || !o.bytes().all(|b| b.is_ascii_hexdigit()))
        || octets.iter().all(|o| *o == "00")
    {
        return Err(format!("bad MAC {mac:?} in: {line}"));
    }
    if !line.ends_with(&format!("link up {speed}")) {
        return Err(format!(
            "info line does not end in `link up {speed}`: {line}"
        ));
    }
    Ok(())
}

/// `mlx5 01:00.0: attached in <a> ms; link up <b> ms after kernel entry`:
/// (a, b).
fn attach_times(text: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("mlx5 {PCI}: attached in ")))?;
    let rest = line.split_once("attached in ")?.1;
    let (attach, rest) = rest.split_once(" ms; link up ")?;
    let entry = rest.strip_suffix(" ms after kernel entry")?;
    Some((attach.parse().ok()?, entry.parse().ok()?))
}

/// `msix 01:00.0 entry <i> vector <v> (<eqs>): <count>` lines: (entry, count).
pub(crate) fn msix_counts(text: &str, pci: &str) -> Vec<(u16, u64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("msix {pci} entry "))?;
            let (entry, rest) = rest.split_once(' ')?;
            let (_, count) = rest.rsplit_once("): ")?;
            Some((entry.parse().ok()?, count.trim().parse().ok()?))
        })
        .collect()
}

fn part_of(
    test: &SystemTest,
) -> Result<(&'static str, &'static str, &'static str, &'static str), String> {
    let name = test.name.strip_prefix("attach-").unwrap_or("");
    PARTS
        .iter()
        .copied()
        .find(|(p, ..)| *p == name)
        .ok_or_else(|| format!("no personality for test {}", test.name))
}

/// Starts the model and boots the kernel (PVH, `cmdline`) to its prompt.
pub(crate) fn boot(
    ctx: &Context,
    test: &SystemTest,
    personality: &str,
    cmdline: &str,
) -> Result<(Setup, SimDevice, Shell), String> {
    let setup = systests_sim::setup(ctx)?;
    let sim = start_sim(&setup, ctx, test, personality)?;
    let machine = systests_sim::machine(ctx, &sim, cmdline);
    let session = spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    let shell = Shell::start(session)?;
    Ok((setup, sim, shell))
}

/// Tests 1 and 2: the personality attaches at boot: part, firmware, MAC,
/// link up on the console; `phys` agrees and `phys <pci>` reports the
/// details; `help` lists the adapter commands; `irq` shows MSI-X entry 0
/// (command completions and events) with a non-zero count.
fn attach_personality(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let (personality, part, fw_major, speed) = part_of(test)?;
    let (_setup, mut sim, mut shell) = boot(ctx, test, personality, "")?;
    let boot_text = shell.session.serial().to_string();
    check_info_line(&boot_text, part, fw_major, speed)?;
    let (attach_ms, entry_ms) = attach_times(&boot_text).ok_or_else(|| {
        format!("no `mlx5 {PCI}: attached in .. ms; link up .. ms after kernel entry` line")
    })?;

    // Without a driver the boot makes no BAR0 access (sim-control-socket),
    // so right after the prompt these are the bring-up's (plus at most a
    // health poll or two).
    let stats = sim.ask_ok("stats")?;
    let mmio = |word| {
        stat(&stats, "mmio", word).ok_or_else(|| format!("stats lack `mmio {word}`: {stats:?}"))
    };
    let (reads, writes) = (mmio("reads")?, mmio("writes")?);
    let commands =
        stat(&stats, "commands", "").ok_or_else(|| format!("stats lack `commands`: {stats:?}"))?;

    let phys = shell.ask("phys")?;
    let line = plain_line(&phys, &format!("{PCI} {part} fw {fw_major}."))?;
    let link = format!("link up {speed}");
    for want in [link.as_str(), " mtu ", " ok"] {
        if !line.contains(want) {
            return Err(format!("phys line lacks {want:?}: {line}"));
        }
    }

    let report = shell.ask(&format!("phys {PCI}"))?;
    for prefix in ["  caps: ", "  eq0: ", "  pages: held ", "  commands: "] {
        plain_line(&report, prefix)?;
    }
    let help = shell.ask("help")?;
    for command in ["phys <pci>", "detach <pci>", "attach <pci>", "reboot"] {
        if !help.lines().any(|l| l.trim_start().starts_with(command)) {
            return Err(format!("help lacks {command:?}:\n{help}"));
        }
    }

    let irq = shell.ask("irq")?;
    let counts = msix_counts(&irq, PCI);
    match counts.iter().find(|(entry, _)| *entry == 0) {
        Some((_, n)) if *n > 0 => {}
        Some(_) => return Err(format!("MSI-X entry 0 never fired:\n{irq}")),
        None => return Err(format!("no `msix {PCI} entry 0 ...` line:\n{irq}")),
    }
    if !irq
        .lines()
        .any(|l| l.starts_with("irq ") && l.contains(" msi-x mlx5"))
    {
        return Err(format!(
            "no MSI-X vector owned by mlx5 in the table:\n{irq}"
        ));
    }
    expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    shell.poweroff(&mut sim)?;
    println!(
        "    ({personality}: attach {attach_ms} ms, kernel entry to link up {entry_ms} ms; \
         {commands} commands, trapped BAR0 reads {reads} writes {writes}; {} MSI-X vectors)",
        counts.len()
    );
    Ok(())
}

/// `test=selftest` with a function present: the kernel's own `mlx5`
/// selftest (attached at boot, link up, pages given, EQ0's vector fired,
/// detach with nothing lost, attach again) passes. (The model is gone
/// right after the kernel exits, so its sanitizer is checked elsewhere.)
fn selftest(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let setup = systests_sim::setup(ctx)?;
    let mut sim = start_sim(&setup, ctx, test, "cx4")?;
    let machine = systests_sim::machine(ctx, &sim, "test=selftest");
    let mut session = spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    let status = session.wait_exit()?;
    let text = session.serial();
    crate::console::check_selftest(
        text,
        &["frames", "dma", "heap", "timer", "cmdline", "mlx5"],
        &[],
    )?;
    expect_verdict(Verdict::from_status(status), Verdict::Pass)?;
    sim.expect_clean_exit()
}

/// Test 3: `detach` returns every page (driver's report and the model's
/// count) with no sanitizer violation, and `attach` works again, ten times.
fn detach_cycles(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let (_setup, mut sim, mut shell) = boot(ctx, test, "cx6dx", "")?;
    check_info_line(shell.session.serial(), "ConnectX-6 Dx", "22", "100G")?;
    if pages_held(&sim)? == 0 {
        return Err("the model holds no pages after attach".into());
    }
    for cycle in 1..=DETACH_CYCLES {
        let at = |e: String| format!("cycle {cycle}: {e}");
        detach_clean(&mut shell, &sim).map_err(at)?;
        let phys = shell.ask("phys").map_err(at)?;
        plain_line(&phys, &format!("{PCI} mlx5 detached")).map_err(at)?;

        let answer = shell.ask(&format!("attach {PCI}")).map_err(at)?;
        check_info_line(&answer, "ConnectX-6 Dx", "22", "100G").map_err(at)?;
        let phys = shell.ask("phys").map_err(at)?;
        plain_line(&phys, &format!("{PCI} ConnectX-6 Dx fw 22.")).map_err(at)?;
    }
    // Detaching twice, or an address nobody owns, is refused.
    let answer = shell.ask("detach 02:00.0")?;
    plain_line(&answer, "detach: no adapter at 02:00.0")?;
    let answer = shell.ask(&format!("attach {PCI}"))?;
    plain_line(&answer, &format!("attach: mlx5 {PCI}: already attached"))?;
    let answer = shell.ask("detach 1:0")?;
    plain_line(&answer, "usage: detach <pci>")?;
    expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    shell.poweroff(&mut sim)
}

/// Test 4: `link down` / `link up` on the model's control socket arrive
/// as port events (MSI-X) and the console reports both; `phys` follows.
/// Page requests (the model asking for and giving back pages) are served
/// from the same EQ while the kernel sits at its prompt.
fn events(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let (_setup, mut sim, mut shell) = boot(ctx, test, "cx5", "")?;
    check_info_line(shell.session.serial(), "ConnectX-5", "16", "100G")?;
    expect_reply(&sim.ask_ok("link down")?, "ok link down")?;
    shell.wait_for_line(&format!("mlx5 {PCI}: link down\n"))?;
    let phys = shell.ask("phys")?;
    plain_line(&phys, &format!("{PCI} ConnectX-5 fw 16."))?;
    if !phys.contains(" link down ") {
        return Err(format!("phys does not show the link down:\n{phys}"));
    }
    expect_reply(&sim.ask_ok("link up")?, "ok link up")?;
    shell.wait_for_line(&format!("mlx5 {PCI}: link up 100G\n"))?;
    let phys = shell.ask("phys")?;
    if !phys.contains(" link up 100G ") {
        return Err(format!("phys does not show the link up again:\n{phys}"));
    }

    let held = pages_held(&sim)?;
    sim.ask_ok("pages request 16")?;
    wait_pages(&sim, held + 16)?;
    sim.ask_ok("pages request -8")?;
    wait_pages(&sim, held + 8)?;
    detach_clean(&mut shell, &sim)?;
    shell.poweroff(&mut sim)
}

/// `detach 01:00.0` in the shell reports nothing lost, and the model agrees
/// (see [`expect_model_clean`]).
pub(crate) fn detach_clean(shell: &mut Shell, sim: &SimDevice) -> Result<(), String> {
    let answer = shell.ask(&format!("detach {PCI}"))?;
    plain_line(
        &answer,
        &format!("mlx5 {PCI}: detached: 0 pages lost, 0 errors"),
    )?;
    expect_model_clean(sim)
}

/// The model holds no page and its sanitizer recorded no violation.
pub(crate) fn expect_model_clean(sim: &SimDevice) -> Result<(), String> {
    expect_reply(&sim.ask_ok("pages")?, "ok 0 pages held")?;
    expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")
}

/// The model's `pages` count.
fn pages_held(sim: &SimDevice) -> Result<u64, String> {
    let reply = sim.ask_ok("pages")?;
    stat(&reply, "ok", "").ok_or_else(|| format!("`pages` answered {reply:?}"))
}

/// Waits (within the test's deadline, polling the control socket) until
/// the model holds `want` pages: the kernel served its page request.
fn wait_pages(sim: &SimDevice, want: u64) -> Result<(), String> {
    let deadline = std::time::Instant::now() + PAGE_WAIT;
    loop {
        let held = pages_held(sim)?;
        if held == want {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "the model holds {held} pages, {want} expected {} s after its page request",
                PAGE_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A failed attach names its step and leaves the device alone (no page
/// held, no violation), the kernel carries on and a later attach works;
/// a health fault after attach is reported on the console.
fn failure_and_fault(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let (_setup, mut sim, mut shell) = boot(ctx, test, "cx4lx", "attach=off")?;
    plain_line(
        shell.session.serial(),
        &format!("mlx5 {PCI}: not attached (attach=off)"),
    )?;
    let stats = sim.ask_ok("stats")?;
    if stat(&stats, "commands", "") != Some(0) {
        return Err(format!("attach=off still ran commands: {stats:?}"));
    }
    // ENABLE_HCA (opcode 0x104) answers bad parameter.
    sim.ask_ok("fault status 0x104 0x3 0x1234")?;
    let answer = shell.ask(&format!("attach {PCI}"))?;
    let line = plain_line(&answer, &format!("mlx5 {PCI}: attach failed at step '"))?;
    if !line.ends_with("device left alone") {
        return Err(format!(
            "failure line does not say the device is left alone: {line}"
        ));
    }
    expect_model_clean(&sim)?;
    let phys = shell.ask("phys")?;
    plain_line(&phys, &format!("{PCI} mlx5 detached"))?;

    sim.ask_ok("fault clear")?;
    let answer = shell.ask(&format!("attach {PCI}"))?;
    check_info_line(&answer, "ConnectX-4 Lx", "14", "25G")?;

    // A health syndrome: the once-a-second health poll reports it.
    sim.ask_ok("fault health 0x8")?;
    let fault = shell.wait_for_line(&format!("FAULT mlx5.health {PCI} function syndrome=0x8 "))?;
    if !fault.ends_with("action=function-reset outcome=escalate") {
        return Err(format!("fault line: {fault}"));
    }
    // The function is reset and comes back (fault-function-reset tests
    // what it restores).
    let fault = shell.wait_for_line(&format!(
        "FAULT mlx5.health {PCI} function syndrome=0x8 vendor_syndrome=0x0 reset_ms="
    ))?;
    if !fault.ends_with("action=function-reset outcome=recovered") {
        return Err(format!("recovery line: {fault}"));
    }
    shell.wait_for_line(&format!("mlx5 {PCI}: function reset: up again in "))?;
    let phys = shell.ask("phys")?;
    if phys.contains(" FAILED") {
        return Err(format!(
            "phys shows the adapter failed after its reset:\n{phys}"
        ));
    }
    detach_clean(&mut shell, &sim)?;
    shell.poweroff(&mut sim)
}

/// Two functions (as a 2-port adapter presents them), each its own model
/// behind its own root port: both attach with their own MSI-X vectors,
/// events reach the right one, and one detaches while the other runs.
fn two_functions(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    const SECOND: &str = "02:00.0";
    let setup = systests_sim::setup(ctx)?;
    let first = start_sim(&setup, ctx, test, "cx5")?;
    let log = ctx.log_path(test).with_extension("sim2.log");
    let second = SimDevice::start(&setup.sim, "cx4lx", &format!("{}-2", test.name), &log)?;
    let mut machine = systests_sim::machine(ctx, &first, "");
    // The first model brought the shared guest RAM; the second only needs
    // its own root port.
    machine
        .devices
        .push("pcie-root-port,id=rp1,chassis=2".to_string());
    machine.devices.push(
        crate::sim_device::vfio_user_device(&second.socket)
            .replace(r#""bus":"rp0""#, r#""bus":"rp1""#),
    );
    let session = spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    let mut shell = Shell::start(session)?;
    let text = shell.session.serial().to_string();
    check_info_line_of(PCI, &text, "ConnectX-5", "16", "100G")?;
    check_info_line_of(SECOND, &text, "ConnectX-4 Lx", "14", "25G")?;

    let irq = shell.ask("irq")?;
    for pci in [PCI, SECOND] {
        match msix_counts(&irq, pci).first() {
            Some((0, n)) if *n > 0 => {}
            _ => {
                return Err(format!(
                    "MSI-X entry 0 of {pci} absent or never fired:\n{irq}"
                ));
            }
        }
    }
    let vectors: Vec<&str> = irq
        .lines()
        .filter(|l| l.starts_with("msix "))
        .filter_map(|l| l.split(" vector ").nth(1)?.split_whitespace().next())
        .collect();
    let mut unique = vectors.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != vectors.len() {
        return Err(format!("two entries share a CPU vector:\n{irq}"));
    }

    // A link change on the first model is reported for the first function only.
    expect_reply(&first.ask_ok("link down")?, "ok link down")?;
    shell.wait_for_line(&format!("mlx5 {PCI}: link down\n"))?;
    let phys = shell.ask("phys")?;
    let second_line = plain_line(&phys, &format!("{SECOND} "))?;
    if !second_line.contains(" link up 25G ") {
        return Err(format!("the second function's link changed too:\n{phys}"));
    }

    let answer = shell.ask(&format!("detach {SECOND}"))?;
    plain_line(
        &answer,
        &format!("mlx5 {SECOND}: detached: 0 pages lost, 0 errors"),
    )?;
    expect_reply(&second.ask_ok("pages")?, "ok 0 pages held")?;
    if pages_held(&first)? == 0 {
        return Err("detaching the second function emptied the first".into());
    }
    let phys = shell.ask("phys")?;
    plain_line(&phys, &format!("{SECOND} mlx5 detached"))?;
    plain_line(&phys, &format!("{PCI} ConnectX-5 fw 16."))?;
    expect_reply(&first.ask_ok("link up")?, "ok link up")?;
    shell.wait_for_line(&format!("mlx5 {PCI}: link up 100G\n"))?;
    let answer = shell.ask(&format!("attach {SECOND}"))?;
    check_info_line_of(SECOND, &answer, "ConnectX-4 Lx", "14", "25G")?;
    for sim in [&first, &second] {
        expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    }
    let mut second = second;
    shell.poweroff(&mut { first })?;
    second.expect_clean_exit()
}

/// The GRUB ISO with the shell command line, made once per run.
fn shell_iso(ctx: &Context) -> Result<PathBuf, String> {
    static ISO: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ISO.get_or_init(|| {
        let iso = ctx.ws.xtask_dir().join("attach-shell.iso");
        image::make_iso(&ctx.kernel, ISO_CMDLINE, &iso).map_err(|e| e.to_string())
    })
    .clone()
}

/// Boots `boot` (a GRUB ISO) with the model attached; the kernel must say
/// it came through multiboot2, attach the ConnectX-6 and answer `phys`.
/// Returns where BAR0 was.
fn iso_attach(ctx: &Context, test: &SystemTest, boot: Boot) -> Result<u64, String> {
    let setup = systests_sim::setup(ctx)?;
    let mut sim = start_sim(&setup, ctx, test, "cx6")?;
    let mut machine = Machine::new(boot);
    machine.memory = systests_sim::RAM.to_string();
    sim.attach_to(&mut machine);
    let session = spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    let mut shell = Shell::start(session)?;
    let text = shell.session.serial().to_string();
    crate::systests::expect_boot(&text, "multiboot2")?;
    let bar0 = bar0_address(&text).ok_or("no `DEBUG pci: 01:00.0 BAR0 ... at 0x...` line")?;
    check_info_line(&text, "ConnectX-6", "20", "200G")?;
    let phys = shell.ask("phys")?;
    plain_line(&phys, &format!("{PCI} ConnectX-6 fw 20."))?;
    expect_reply(&sim.ask_ok("sanitizer")?, "ok 0 violations")?;
    shell.poweroff(&mut sim)?;
    println!("    (BAR0 at {bar0:#x})");
    Ok(bar0)
}

/// BAR0 of the function, from the kernel's `pci` debug line
/// `01:00.0 BAR0 Mem64 prefetchable at 0x..., 0x... bytes`.
fn bar0_address(text: &str) -> Option<u64> {
    let needle = format!("pci: {PCI} BAR0 ");
    let line = text.lines().find(|l| l.contains(&needle))?;
    let hex = line.split_once(" at 0x")?.1.split(',').next()?;
    u64::from_str_radix(hex, 16).ok()
}

/// Test 6: the same kernel ELF, booted by GRUB from the ISO under SeaBIOS,
/// attaches the model too.
fn bios_iso(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let iso = shell_iso(ctx)?;
    iso_attach(ctx, test, Boot::BiosIso { iso }).map(drop)
}

/// Test 6 under UEFI: OVMF places the 64-bit BAR0 above 4 GiB, where the
/// kernel must map it.
fn uefi_iso(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    crate::provision::ensure(&[crate::provision::OVMF]).map_err(|e| e.to_string())?;
    let ovmf = Ovmf::find().map_err(|e| e.to_string())?;
    let vars = ctx.ws.xtask_dir().join("attach-uefi-vars.fd");
    std::fs::copy(&ovmf.vars_template, &vars)
        .map_err(|e| format!("cannot copy {}: {e}", ovmf.vars_template.display()))?;
    let iso = shell_iso(ctx)?;
    let bar0 = iso_attach(ctx, test, Boot::UefiIso { iso, ovmf, vars })?;
    if bar0 < 1 << 32 {
        return Err(format!(
            "OVMF put BAR0 at {bar0:#x}, below 4 GiB: the high mapping was not exercised"
        ));
    }
    Ok(())
}

/// Test 7: the shell's `reboot` resets the machine (QEMU without
/// `-no-reboot`), the model is reset with it, and the rebooted kernel
/// attaches again.
fn reboot(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let setup = systests_sim::setup(ctx)?;
    let mut sim = start_sim(&setup, ctx, test, "cx5")?;
    let machine = systests_sim::machine(ctx, &sim, "");
    let session = spawn_qemu(&setup, ctx, test, &machine, &[], true)?;
    let mut shell = Shell::start(session)?;
    check_info_line(shell.session.serial(), "ConnectX-5", "16", "100G")?;
    let resets_before = resets(&sim)?;

    shell.session.send_line("reboot")?;
    let banner = shell.session.expect_from(shell.ready, "booted via pvh")?;
    let prompt = shell.session.expect_from(banner, PROMPT)?;
    let after = shell.session.serial()[banner..prompt].to_string();
    shell.ready = prompt;
    check_info_line(&after, "ConnectX-5", "16", "100G")?;
    let resets_after = resets(&sim)?;
    if resets_after <= resets_before {
        return Err(format!(
            "the model saw no reset: {resets_before} before the reboot, {resets_after} after"
        ));
    }
    detach_clean(&mut shell, &sim)?;
    shell.poweroff(&mut sim)
}

fn resets(sim: &SimDevice) -> Result<u64, String> {
    let stats = sim.ask_ok("stats")?;
    stat(&stats, "resets", "").ok_or_else(|| format!("stats lack `resets`: {stats:?}"))
}

/// Figures for `cargo xtask bench` (BENCHMARKS.md, issue 8): `runs` boots
/// of the kernel with a simulated ConnectX-5 attached; the medians of the
/// guest's attach time and of kernel entry to link up (the kernel's own
/// clock), and the model's count of commands and trapped BAR0 accesses
/// per bring-up.
pub fn bench_figures(
    ws: &crate::workspace::Workspace,
    kernel: &std::path::Path,
    runs: usize,
) -> Result<Vec<crate::bench::Figure>, String> {
    let qemu = crate::qemu_provision::vfio_user_qemu().map_err(|e| e.to_string())?;
    let ctx = Context::new(ws.clone(), qemu, kernel.to_path_buf());
    let test = SystemTest {
        name: "bench-attach",
        timeout: TIMEOUT,
        run: |_, _| Err("the bench's pseudo-test is not run".into()),
    };
    let (mut attach, mut entry) = (Vec::new(), Vec::new());
    let mut counts = (0, 0, 0);
    for _ in 0..runs.max(1) {
        let (_setup, mut sim, shell) = boot(&ctx, &test, "cx5", "")?;
        let (a, e) = attach_times(shell.session.serial()).ok_or("no attach-time line")?;
        attach.push(Duration::from_millis(a));
        entry.push(Duration::from_millis(e));
        let stats = sim.ask_ok("stats")?;
        let get = |key, word| {
            stat(&stats, key, word).ok_or_else(|| format!("stats lack `{key} {word}`: {stats:?}"))
        };
        counts = (
            get("commands", "")?,
            get("mmio", "reads")?,
            get("mmio", "writes")?,
        );
        shell.poweroff(&mut sim)?;
    }
    let ms =
        |samples: Vec<Duration>| crate::bench::median(samples).map_or(0, |d| d.as_millis() as u64);
    let figure = |name: &str, value: u64, unit: &str| crate::bench::Figure {
        name: name.into(),
        value: value.to_string(),
        unit: unit.into(),
    };
    Ok(vec![
        figure("qemu-mlx5-attach-cx5-tcg", ms(attach), "ms"),
        figure("qemu-kernel-entry-to-link-up-cx5-tcg", ms(entry), "ms"),
        figure("mlx5-attach-commands", counts.0, "commands"),
        figure("mlx5-attach-trapped-bar0-reads", counts.1, "reads"),
        figure("mlx5-attach-trapped-bar0-writes", counts.2, "writes"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "[    0.05] INFO mlx5: mlx5 01:00.0: ConnectX-5 fw 16.35.2000, 1 port, MAC 0c:42:a1:5e:00:12, link up 100G\n\
        mlx5 01:00.0: ConnectX-5 fw 16.35.2000, 1 port, MAC 0c:42:a1:5e:00:12, link up 100G\n\
        mlx5 01:00.0: attached in 26 ms; link up 52 ms after kernel entry\n";

    #[test]
    fn info_line_is_checked_field_by_field() {
        check_info_line(BOOT, "ConnectX-5", "16", "100G").unwrap();
        assert!(check_info_line(BOOT, "ConnectX-5", "14", "100G").is_err());
        assert!(check_info_line(BOOT, "ConnectX-5", "16", "25G").is_err());
        // Only the log line (with its timestamp) does not count.
        let log_only = BOOT.lines().next().unwrap();
        assert!(check_info_line(log_only, "ConnectX-5", "16", "100G").is_err());
        let no_mac =
            "mlx5 01:00.0: ConnectX-5 fw 16.1.2, 1 port, MAC 00:00:00:00:00:00, link up 100G\n";
        assert!(
            check_info_line(no_mac, "ConnectX-5", "16", "100G")
                .unwrap_err()
                .contains("bad MAC")
        );
        let down = "mlx5 01:00.0: ConnectX-5 fw 16.1.2, 1 port, MAC 0c:42:a1:5e:00:12, link down\n";
        assert!(check_info_line(down, "ConnectX-5", "16", "100G").is_err());
    }

    #[test]
    fn attach_times_are_read() {
        assert_eq!(attach_times(BOOT), Some((26, 52)));
        assert_eq!(attach_times("mlx5 01:00.0: attached in 20 ms\n"), None);
    }

    #[test]
    fn bar0_is_read_from_the_debug_line() {
        let text = "[    0.02] DEBUG pci: 01:00.0 BAR0 Mem64 prefetchable at 0xe000000000, 0x2000000 bytes\n";
        assert_eq!(bar0_address(text), Some(0xe0_0000_0000));
        assert_eq!(
            bar0_address("[    0.02] DEBUG pci: 01:00.0 BAR2 Mem64 at 0x1000, 0x10 bytes\n"),
            None
        );
    }

    #[test]
    fn msix_lines_are_read() {
        let irq = "irq 0x22 msi-x mlx5: 13\n\
            msix 01:00.0 entry 0 vector 0x22 (eq0 0): 13\n\
            msix 01:00.0 entry 1 vector 0x23 (comp eq 1, comp eq 5): 0\n\
            msix 02:00.0 entry 0 vector 0x30 (eq0 0): 7\n";
        assert_eq!(msix_counts(irq, "01:00.0"), [(0, 13), (1, 0)]);
        assert_eq!(msix_counts(irq, "02:00.0"), [(0, 7)]);
    }

    #[test]
    fn every_part_has_a_test() {
        for (p, ..) in PARTS {
            let name = format!("attach-{p}");
            let test = all().into_iter().find(|t| t.name == name).unwrap();
            assert_eq!(part_of(&test).unwrap().0, *p);
        }
        crate::systests::validate(&all()).unwrap();
    }
}
