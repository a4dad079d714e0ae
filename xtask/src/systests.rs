//! The system tests: the real kernel image in QEMU, checked through its
//! serial console and exit status (the line formats are parsed in
//! `console.rs`; the exit codes are the kernel's `isa-debug-exit` codes).
//!
//! Each test boots its own QEMU with a hard timeout; its serial output goes
//! to `<target>/xtask/logs/<name>.log`.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::Duration;

use crate::console::{self, PciLine};
use crate::image;
use crate::qemu::{Boot, Machine, Ovmf, Qemu, Verdict};
use crate::session::Session;
use crate::workspace::Workspace;
use crate::{Result, XtaskError};

/// In-kernel tests every boot runs, and those that need a device QEMU adds.
const CORE_SELFTESTS: &[&str] = &["frames", "dma", "heap", "timer", "cmdline"];
const DEVICE_SELFTESTS: &[&str] = &["edu-msi", "e1000e-msix", "mlx5"];

/// One system test.
#[derive(Debug, Clone, Copy)]
pub struct SystemTest {
    pub name: &'static str,
    /// Hard limit for the whole QEMU run.
    pub timeout: Duration,
    pub run: fn(&Context, &SystemTest) -> std::result::Result<(), String>,
}

const PVH_TIMEOUT: Duration = Duration::from_secs(60);
/// GRUB under SeaBIOS takes ~1 s, under OVMF ~5 s on an idle machine.
const BIOS_TIMEOUT: Duration = Duration::from_secs(90);
const UEFI_TIMEOUT: Duration = Duration::from_secs(180);

/// Every system test, in the order they run.
pub fn all() -> Vec<SystemTest> {
    let t = |name, timeout, run| SystemTest { name, timeout, run };
    let mut tests = vec![
        t("pvh-selftest", PVH_TIMEOUT, pvh_selftest),
        t("bios-iso-selftest", BIOS_TIMEOUT, bios_iso_selftest),
        t("uefi-iso-selftest", UEFI_TIMEOUT, uefi_iso_selftest),
        t("pci-listing-e1000e-edu", PVH_TIMEOUT, pci_listing),
        t("edu-msi", PVH_TIMEOUT, edu_msi),
        t("e1000e-msix", PVH_TIMEOUT, e1000e_msix),
        t("legacy-pci-i440fx", PVH_TIMEOUT, legacy_pci),
        t("memory-64m", PVH_TIMEOUT, memory_small),
        t("memory-5g-above-4g", PVH_TIMEOUT, memory_large),
        t("cmdline-malformed", PVH_TIMEOUT, cmdline_malformed),
        t("unknown-test-fails", PVH_TIMEOUT, unknown_test),
        t("panic-reported", PVH_TIMEOUT, panic_reported),
        t("page-fault-reported", PVH_TIMEOUT, page_fault_reported),
        t("shell-help", PVH_TIMEOUT, shell_help),
        t("shell-lspci", PVH_TIMEOUT, shell_lspci),
        t("shell-mem", PVH_TIMEOUT, shell_mem),
        t("shell-irq", PVH_TIMEOUT, shell_irq),
        t("shell-uptime", PVH_TIMEOUT, shell_uptime),
        t("shell-log", PVH_TIMEOUT, shell_log),
        t("shell-poweroff", PVH_TIMEOUT, shell_poweroff),
        t("shell-unknown-command", PVH_TIMEOUT, shell_unknown_command),
    ];
    tests.extend(crate::systests_sim::all());
    tests.extend(crate::systests_attach::all());
    tests.extend(crate::systests_net::all());
    tests.extend(crate::systests_fast::all());
    tests.extend(crate::systests_vnic::all());
    tests.extend(crate::systests_port::all());
    tests.extend(crate::systests_reset::all());
    tests.extend(crate::acceptance::all());
    tests.extend(crate::systests_linux::all());
    tests.extend(crate::systests_peer::all());
    tests.extend(crate::systests_aggr::all());
    tests.extend(crate::systests_aggr_pair::all());
    tests.extend(crate::soak::all());
    tests.extend(crate::systests_faults::all());
    tests.extend(crate::systests_smp::all());
    tests
}

/// What the tests share: QEMU, the kernel ELF and (built on first use) the selftest ISO.
#[derive(Debug)]
pub struct Context {
    pub ws: Workspace,
    pub qemu: Qemu,
    pub kernel: PathBuf,
    iso: OnceCell<std::result::Result<PathBuf, String>>,
}

/// The command line baked into the ISO the ISO tests boot.
const ISO_CMDLINE: &str = "test=selftest";

impl Context {
    pub fn new(ws: Workspace, qemu: Qemu, kernel: PathBuf) -> Self {
        Self {
            ws,
            qemu,
            kernel,
            iso: OnceCell::new(),
        }
    }

    pub fn log_path(&self, test: &SystemTest) -> PathBuf {
        self.ws.logs_dir().join(format!("{}.log", test.name))
    }

    fn selftest_iso(&self) -> std::result::Result<PathBuf, String> {
        self.iso
            .get_or_init(|| {
                let iso = self.ws.xtask_dir().join("selftest.iso");
                image::make_iso(&self.kernel, ISO_CMDLINE, &iso).map_err(|e| e.to_string())
            })
            .clone()
    }

    pub fn pvh(&self, cmdline: &str) -> Machine {
        Machine::new(Boot::Pvh {
            kernel: self.kernel.clone(),
            cmdline: cmdline.to_string(),
        })
    }

    pub fn start(
        &self,
        test: &SystemTest,
        machine: &Machine,
    ) -> std::result::Result<Session, String> {
        crate::provision::ensure(&machine.packages()).map_err(|e| e.to_string())?;
        let command = machine.command(&self.qemu).map_err(|e| e.to_string())?;
        Session::spawn(command, &self.log_path(test), test.timeout).map_err(|e| e.to_string())
    }

    /// Boots `machine`, waits for QEMU to exit, returns the serial output and verdict.
    pub fn boot_to_exit(
        &self,
        test: &SystemTest,
        machine: &Machine,
    ) -> std::result::Result<(String, Verdict), String> {
        let mut session = self.start(test, machine)?;
        let status = session.wait_exit()?;
        Ok((session.serial().to_string(), Verdict::from_status(status)))
    }
}

pub fn expect_verdict(got: Verdict, want: Verdict) -> std::result::Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("expected {want}, got {got}"))
    }
}

pub fn expect_boot(text: &str, how: &str) -> std::result::Result<(), String> {
    match console::boot_method(text) {
        Some(m) if m == how => Ok(()),
        Some(m) => Err(format!("booted via {m}, expected {how}")),
        None => Err("no `cxos <version> booted via ...` line".to_string()),
    }
}

pub fn expect_line<'a>(text: &'a str, needle: &str) -> std::result::Result<&'a str, String> {
    console::line_with(text, needle).ok_or_else(|| format!("no line containing {needle:?}"))
}

/// A selftest run of `machine`: boots, passes, all core tests ok.
fn selftest_run(
    ctx: &Context,
    test: &SystemTest,
    machine: &Machine,
    how: &str,
    ok: &[&str],
    skipped: &[&str],
) -> std::result::Result<String, String> {
    let (text, verdict) = ctx.boot_to_exit(test, machine)?;
    expect_boot(&text, how)?;
    match console::mem_line(&text) {
        Some((mib, frames)) if mib > 0 && frames > 0 => {}
        Some(other) => return Err(format!("mem line reports nothing usable: {other:?}")),
        None => return Err("no `mem: <N> MiB usable, <N> frames free` line".to_string()),
    }
    if !text.lines().any(|l| console::log_line(l).is_some()) {
        return Err("no log line of the form `[    s.micros] LEVEL target: message`".to_string());
    }
    console::check_selftest(&text, ok, skipped)?;
    expect_verdict(verdict, Verdict::Pass)?;
    Ok(text)
}

fn pvh_selftest(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let machine = ctx.pvh("test=selftest");
    selftest_run(ctx, test, &machine, "pvh", CORE_SELFTESTS, DEVICE_SELFTESTS).map(drop)
}

fn bios_iso_selftest(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let machine = Machine::new(Boot::BiosIso {
        iso: ctx.selftest_iso()?,
    });
    selftest_run(
        ctx,
        test,
        &machine,
        "multiboot2",
        CORE_SELFTESTS,
        DEVICE_SELFTESTS,
    )
    .map(drop)
}

fn uefi_iso_selftest(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    crate::provision::ensure(&[crate::provision::OVMF]).map_err(|e| e.to_string())?;
    let ovmf = Ovmf::find().map_err(|e| e.to_string())?;
    let vars = ctx.ws.xtask_dir().join("uefi-iso-selftest-vars.fd");
    let machine = Machine::new(Boot::UefiIso {
        iso: ctx.selftest_iso()?,
        ovmf,
        vars,
    });
    selftest_run(
        ctx,
        test,
        &machine,
        "multiboot2",
        CORE_SELFTESTS,
        DEVICE_SELFTESTS,
    )
    .map(drop)
}

/// q35 with an e1000e and QEMU's `edu` device, in selftest mode.
fn devices_machine(ctx: &Context) -> Machine {
    ctx.pvh("test=selftest").device("e1000e").device("edu")
}

fn find_function<'a>(lines: &'a [PciLine], id: &str) -> std::result::Result<&'a PciLine, String> {
    lines
        .iter()
        .find(|l| l.id == id)
        .ok_or_else(|| format!("no `pci .. {id}` line"))
}

fn has_caps(line: &PciLine, caps: &[&str]) -> std::result::Result<(), String> {
    for cap in caps {
        if !line.capabilities.iter().any(|c| c == cap) {
            return Err(format!(
                "pci {} {}: capability {cap} missing (got {:?})",
                line.address, line.id, line.capabilities
            ));
        }
    }
    Ok(())
}

fn pci_listing(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let (text, verdict) = ctx.boot_to_exit(test, &devices_machine(ctx))?;
    let lines = console::pci_lines(&text);
    let host_bridge = find_function(&lines, "8086:29c0")?;
    if host_bridge.address != "00:00.0" || host_bridge.class != "060000" {
        return Err(format!("q35 host bridge listed as {host_bridge:?}"));
    }
    let e1000e = find_function(&lines, "8086:10d3")?;
    if e1000e.class != "020000" {
        return Err(format!("e1000e class {} (expected 020000)", e1000e.class));
    }
    has_caps(e1000e, &["msix(5)", "pcie"])?;
    let edu = find_function(&lines, "1234:11e8")?;
    has_caps(edu, &["msi"])?;
    expect_verdict(verdict, Verdict::Pass)
}

fn edu_msi(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    selftest_run(ctx, test, &devices_machine(ctx), "pvh", &["edu-msi"], &[]).map(drop)
}

fn e1000e_msix(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    selftest_run(
        ctx,
        test,
        &devices_machine(ctx),
        "pvh",
        &["e1000e-msix"],
        &[],
    )
    .map(drop)
}

/// The i440fx `pc` machine has no MCFG table: PCI must work through the
/// legacy 0xcf8 ports.
fn legacy_pci(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let mut machine = ctx.pvh("test=selftest");
    machine.machine_type = "pc".to_string();
    let text = selftest_run(ctx, test, &machine, "pvh", CORE_SELFTESTS, DEVICE_SELFTESTS)?;
    let lines = console::pci_lines(&text);
    let host_bridge = find_function(&lines, "8086:1237")?;
    if host_bridge.address != "00:00.0" {
        return Err(format!("i440fx host bridge at {}", host_bridge.address));
    }
    find_function(&lines, "8086:7000").map(drop)
}

/// Boots with `memory` of RAM; returns the usable MiB the kernel reported.
fn memory_run(ctx: &Context, test: &SystemTest, memory: &str) -> std::result::Result<u64, String> {
    let mut machine = ctx.pvh("test=selftest");
    machine.memory = memory.to_string();
    let text = selftest_run(ctx, test, &machine, "pvh", CORE_SELFTESTS, DEVICE_SELFTESTS)?;
    console::mem_line(&text)
        .map(|(mib, _)| mib)
        .ok_or_else(|| "no mem line".to_string())
}

fn memory_small(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    match memory_run(ctx, test, "64M")? {
        32..=64 => Ok(()),
        mib => Err(format!("64 MiB machine reported {mib} MiB usable")),
    }
}

/// q35 puts RAM beyond 2 GiB above 4 GiB: the memory map has a high region.
fn memory_large(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    match memory_run(ctx, test, "5G")? {
        mib if (4096..=5120).contains(&mib) => Ok(()),
        mib => Err(format!("5 GiB machine reported {mib} MiB usable")),
    }
}

fn cmdline_malformed(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let machine = ctx.pvh("test=selftest bogus=1 log=notalevel");
    let text = selftest_run(ctx, test, &machine, "pvh", CORE_SELFTESTS, &[])?;
    expect_line(&text, "cmdline: unknown key 'bogus' ignored")?;
    expect_line(&text, "cmdline: bad value 'notalevel' for 'log', using ")?;
    Ok(())
}

fn panic_reported(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let (text, verdict) = ctx.boot_to_exit(test, &ctx.pvh("test=panic"))?;
    let line = expect_line(&text, "PANIC at ")?;
    let at = line.find("PANIC at ").unwrap_or(0) + "PANIC at ".len();
    let (location, message) = line[at..]
        .split_once(": ")
        .ok_or_else(|| format!("malformed panic line: {line}"))?;
    let has_line_number = location.rsplit_once(':').is_some_and(|(file, n)| {
        file.ends_with(".rs") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    });
    if !has_line_number || !message.contains("test=panic") {
        return Err(format!("panic line lacks <file>:<line>: <message>: {line}"));
    }
    expect_verdict(verdict, Verdict::Fail)
}

fn page_fault_reported(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let (text, verdict) = ctx.boot_to_exit(test, &ctx.pvh("test=pagefault"))?;
    let line = expect_line(&text, "EXCEPTION page-fault (vector 14) error=")?;
    for field in [" rip=0x", " cr2=0x"] {
        if !line.contains(field) {
            return Err(format!("exception line lacks {field:?}: {line}"));
        }
    }
    expect_verdict(verdict, Verdict::Fail)
}

fn unknown_test(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let (text, verdict) = ctx.boot_to_exit(test, &ctx.pvh("test=no-such-test"))?;
    expect_line(&text, "test: unknown test 'no-such-test'")?;
    expect_verdict(verdict, Verdict::Fail)
}

const PROMPT: &str = "cxos> ";

/// A kernel at its shell prompt.
struct Shell {
    session: Session,
    /// Offset just past the latest prompt.
    ready: usize,
}

impl Shell {
    fn boot(
        ctx: &Context,
        test: &SystemTest,
        machine: &Machine,
    ) -> std::result::Result<Self, String> {
        let mut session = ctx.start(test, machine)?;
        let ready = session.expect(PROMPT)?;
        Ok(Self { session, ready })
    }

    /// Types `command`; returns what the kernel answered (the text between
    /// the command and the next prompt, the echoed command included).
    fn ask(&mut self, command: &str) -> std::result::Result<String, String> {
        self.session.send_line(command)?;
        let end = self.session.expect_from(self.ready, PROMPT)?;
        let answer = self.session.serial()[self.ready..end - PROMPT.len()].to_string();
        self.ready = end;
        Ok(answer)
    }
}

/// Boots to the shell and asks one command.
fn shell_answer(
    ctx: &Context,
    test: &SystemTest,
    machine: &Machine,
    command: &str,
) -> std::result::Result<String, String> {
    Shell::boot(ctx, test, machine)?.ask(command)
}

/// The first line of `text` that starts with `prefix`.
fn expect_line_start<'a>(text: &'a str, prefix: &str) -> std::result::Result<&'a str, String> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .ok_or_else(|| format!("no line starting with {prefix:?} in:\n{text}"))
}

/// The count of the first `irq <vector> <role> <owner>: <count>` line with this role.
fn irq_count(text: &str, role: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (head, count) = line.strip_prefix("irq ")?.rsplit_once(": ")?;
        let mut words = head.split_whitespace();
        let _vector = words.next()?;
        (words.next()? == role).then(|| count.trim().parse().ok())?
    })
}

fn expect_in(answer: &str, needles: &[&str]) -> std::result::Result<(), String> {
    for needle in needles {
        if !answer.contains(needle) {
            return Err(format!("answer lacks {needle:?}:\n{answer}"));
        }
    }
    Ok(())
}

fn shell_help(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let answer = shell_answer(ctx, test, &ctx.pvh(""), "help")?;
    expect_in(
        &answer,
        &["lspci", "mem", "irq", "uptime", "log", "poweroff"],
    )
}

fn shell_lspci(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let answer = shell_answer(ctx, test, &ctx.pvh("").device("edu"), "lspci")?;
    let lines = console::pci_lines(&answer);
    find_function(&lines, "8086:29c0")?;
    has_caps(find_function(&lines, "1234:11e8")?, &["msi"])
}

fn shell_mem(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let answer = shell_answer(ctx, test, &ctx.pvh(""), "mem")?;
    for prefix in ["heap: ", "frames: ", "dma: "] {
        expect_line_start(&answer, prefix)?;
    }
    Ok(())
}

fn shell_irq(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let mut shell = Shell::boot(ctx, test, &ctx.pvh(""))?;
    // The shell may drain input that arrived before its first prompt by
    // polling; a command typed after an answer can only arrive through the
    // serial interrupt, so after this one the serial count cannot be 0.
    shell.ask("uptime")?;
    let answer = shell.ask("irq")?;
    expect_line_start(&answer, "irq ")?;
    match irq_count(&answer, "serial") {
        Some(n) if n > 0 => Ok(()),
        Some(_) => Err(format!(
            "serial interrupt count is 0 after typing two commands:\n{answer}"
        )),
        None => Err(format!(
            "no `irq <vector> serial ...: <count>` line:\n{answer}"
        )),
    }
}

fn shell_uptime(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let answer = shell_answer(ctx, test, &ctx.pvh(""), "uptime")?;
    let line = expect_line_start(&answer, "uptime: ")?;
    if line.chars().any(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("uptime printed no number: {line}"))
    }
}

fn shell_unknown_command(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    // shell_answer already waits for the next prompt: the shell survived.
    let answer = shell_answer(ctx, test, &ctx.pvh(""), "frobnicate now")?;
    expect_in(&answer, &["unknown command 'frobnicate'"])
}

fn shell_log(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let mut shell = Shell::boot(ctx, test, &ctx.pvh(""))?;
    let answer = shell.ask("log kernel=trace")?;
    expect_line_start(&answer, "log: ")?;
    expect_in(&answer, &["kernel=trace"])?;
    let answer = shell.ask("log kernel=loud")?;
    expect_in(&answer, &["unknown level 'loud'"])
}

fn shell_poweroff(ctx: &Context, test: &SystemTest) -> std::result::Result<(), String> {
    let mut shell = Shell::boot(ctx, test, &ctx.pvh(""))?;
    shell.session.send_line("poweroff")?;
    let status = shell.session.wait_exit()?;
    let answer = &shell.session.serial()[shell.ready..];
    if !answer.lines().skip(1).any(|l| l.trim() == "poweroff") {
        return Err(format!("no `poweroff` line after the command:\n{answer}"));
    }
    expect_verdict(Verdict::from_status(status), Verdict::Pass)
}

/// Tests whose name contains `filter` (all without one).
pub fn select(filter: Option<&str>) -> Vec<SystemTest> {
    all()
        .into_iter()
        .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
        .collect()
}

/// Checks the test table itself (names unique and usable as file names).
pub fn validate(tests: &[SystemTest]) -> Result<()> {
    for (i, t) in tests.iter().enumerate() {
        if t.name.is_empty()
            || !t
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(XtaskError::msg(format!(
                "bad system test name {:?}",
                t.name
            )));
        }
        if tests[..i].iter().any(|o| o.name == t.name) {
            return Err(XtaskError::msg(format!(
                "duplicate system test {:?}",
                t.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_irq_counts_by_role() {
        let answer = "irq\nirq 0x20 timer lapic: 17\nirq 0x21 serial com1: 3\nirq spurious: 0\n";
        assert_eq!(irq_count(answer, "serial"), Some(3));
        assert_eq!(irq_count(answer, "timer"), Some(17));
        assert_eq!(irq_count(answer, "msi-x"), None);
        assert_eq!(irq_count("irq 0x21 serial com1: many\n", "serial"), None);
    }

    #[test]
    fn test_table_is_valid() {
        validate(&all()).unwrap();
        assert!(validate(&[all()[0], all()[0]]).is_err());
    }

    #[test]
    fn filter_selects_by_substring() {
        let names: Vec<&str> = select(Some("iso")).iter().map(|t| t.name).collect();
        assert_eq!(names, ["bios-iso-selftest", "uefi-iso-selftest"]);
        assert_eq!(select(None).len(), all().len());
        assert!(select(Some("nothing-matches")).is_empty());
    }

    #[test]
    fn every_shell_command_has_a_test() {
        // (command, the system test that types it)
        let typed_by = [
            ("help", "shell-help"),
            ("lspci", "shell-lspci"),
            ("mem", "shell-mem"),
            ("irq", "shell-irq"),
            ("cpus", "smp-cpus"),
            ("uptime", "shell-uptime"),
            ("log", "shell-log"),
            ("poweroff", "shell-poweroff"),
            ("phys", "attach-cx5"),
            ("detach", "attach-detach-cycles"),
            ("attach", "attach-detach-cycles"),
            ("reboot", "attach-reboot"),
            ("rings", "net-port-rings-stats"),
            ("stats", "net-port-rings-stats"),
            ("ifconfig", "net-shell-commands"),
            ("ip", "net-shell-commands"),
            ("ping", "net-shell-commands"),
            ("serve", "net-two-vms"),
            ("l2recv", "net-two-vms"),
            ("l2send", "net-two-vms"),
            ("iperf3", "net-two-vms"),
            ("pktgen", "fast-pktgen-pktsink"),
            ("pktsink", "fast-pktgen-pktsink"),
            ("ethtool", "fast-switches"),
            ("flows", "vnic-twenty-peer"),
            ("vnic", "vnic-twenty-peer"),
            ("vnics", "vnic-twenty-peer"),
        ];
        for (command, name) in typed_by {
            assert!(
                all().iter().any(|t| t.name == name),
                "{command}: no test {name}"
            );
        }
    }
}
