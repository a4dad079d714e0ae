//! `cargo xtask acceptance`: the seed's acceptance checks as one scripted
//! suite in one cxos boot — attach, transceiver, module swap, LED, L2, IP,
//! iperf3, promiscuous capture, VNICs, detach — against a device, with a
//! report (`<target>/xtask/acceptance/report.md`, a table on stdout).
//!
//! The device is the model (mlx5-sim in a namespace peer, as the net-peer
//! tests run it) by default, or a real adapter passed through by vfio-pci
//! (`--passthrough <pci> --peer-if <host interface>`: the host interface
//! cabled to it goes into a namespace the suite creates, and comes back
//! when the namespace is deleted). The checks are the same code for both;
//! only [`Hands`] differs: what a hand does on real hardware (pulling a
//! module, looking at the LED) the model's control socket does, and on
//! hardware without a terminal those checks are skipped with a reason.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use crate::netns::{Netns, PeerConfig, PeerError, PeerNetwork};
use crate::qemu::{Boot, Machine};
use crate::session::Session;
use crate::sim_device::SimDevice;
use crate::systests::{Context, SystemTest};
use crate::systests_attach::{Shell, msix_counts, plain_line};
use crate::systests_net::{PEER_GUEST, iperf3_summary, number_after, static_cmdline};
use crate::systests_sim::{PROMPT, expect_reply};

#[derive(Debug, Args)]
pub struct AcceptanceArgs {
    /// A real ConnectX function (bound to vfio-pci) instead of the model,
    /// e.g. `0000:af:00.0`; needs --peer-if.
    #[arg(long, value_parser = crate::run::parse_host_pci, requires = "peer_if")]
    pub passthrough: Option<String>,
    /// With --passthrough: the host interface cabled to the adapter (moved
    /// into the suite's namespace for the run).
    #[arg(long, requires = "passthrough")]
    pub peer_if: Option<String>,
}

/// One acceptance check, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Attach,
    Transceiver,
    ModuleSwap,
    Led,
    L2,
    Ip,
    Iperf3,
    Promisc,
    Vnics,
    Detach,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::Attach,
        Check::Transceiver,
        Check::ModuleSwap,
        Check::Led,
        Check::L2,
        Check::Ip,
        Check::Iperf3,
        Check::Promisc,
        Check::Vnics,
        Check::Detach,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::Attach => "attach",
            Check::Transceiver => "transceiver",
            Check::ModuleSwap => "module-swap",
            Check::Led => "led",
            Check::L2 => "l2",
            Check::Ip => "ip",
            Check::Iperf3 => "iperf3",
            Check::Promisc => "promisc",
            Check::Vnics => "vnics",
            Check::Detach => "detach",
        }
    }

    /// What a person must do for this check on real hardware, if anything.
    fn hand_step(self) -> Option<&'static str> {
        match self {
            Check::ModuleSwap => Some("pull and re-insert the transceiver"),
            Check::Led => Some("look at the port LED"),
            _ => None,
        }
    }
}

/// Who does the steps that need a hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandsKind {
    /// The model's control socket.
    Model,
    /// A person at this terminal, prompted.
    Terminal,
    /// Nobody (hardware, stdin not a terminal): those checks are skipped.
    Nobody,
}

/// Why `check` cannot run with these hands (`None`: it runs).
pub fn skip_reason(check: Check, hands: HandsKind) -> Option<String> {
    match (check.hand_step(), hands) {
        (Some(step), HandsKind::Nobody) => {
            Some(format!("needs someone to {step}; stdin is not a terminal"))
        }
        _ => None,
    }
}

/// The hands of a run.
enum Hands<'a> {
    Model(&'a SimDevice),
    Terminal,
    Nobody,
}

impl Hands<'_> {
    fn kind(&self) -> HandsKind {
        match self {
            Hands::Model(_) => HandsKind::Model,
            Hands::Terminal => HandsKind::Terminal,
            Hands::Nobody => HandsKind::Nobody,
        }
    }
}

/// Asks the person at the terminal; the trimmed answer.
fn prompt(question: &str) -> Result<String, String> {
    ask(
        question,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout(),
    )
}

/// `question` on `out`, the answer from `input` (a line, trimmed; empty
/// at end of input).
fn ask(
    question: &str,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn Write,
) -> Result<String, String> {
    write!(out, "\n>>> {question} ")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot ask: {e}"))?;
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    Ok(line.trim().to_string())
}

/// Whether a person's answer to a `[y/n]` question is yes.
fn confirms(answer: &str) -> bool {
    answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes")
}

/// Who does the hand steps: the model's control socket, or on hardware
/// the person at this terminal, or nobody when stdin is not one.
fn hands_kind(hardware: bool, stdin_is_terminal: bool) -> HandsKind {
    match (hardware, stdin_is_terminal) {
        (false, _) => HandsKind::Model,
        (true, true) => HandsKind::Terminal,
        (true, false) => HandsKind::Nobody,
    }
}

/// The adapter and peer interface of a hardware run (`None`: the model).
/// clap makes each option require the other.
fn hardware_target(args: &AcceptanceArgs) -> Option<(&str, &str)> {
    args.passthrough.as_deref().zip(args.peer_if.as_deref())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skipped(String),
}

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub check: Check,
    pub outcome: Outcome,
    /// Measured figures (`attach 26 ms`, `host -> cxos 900.1 Mbit/s`, ...).
    pub figures: Vec<String>,
    pub secs: f64,
}

/// What the report says about the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub device: String,
    pub console_log: PathBuf,
    pub results: Vec<CheckResult>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
            .count()
    }

    /// The stdout table: one line per check.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            let (word, why) = match &r.outcome {
                Outcome::Pass => ("pass", String::new()),
                Outcome::Fail(why) => ("FAIL", first_line(why)),
                Outcome::Skipped(why) => ("skipped", why.clone()),
            };
            let figures = r.figures.join("; ");
            let detail = [why, figures]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" — ");
            let line = format!(
                "{:<12} {:<8} {:>6.1} s  {detail}",
                r.check.name(),
                word,
                r.secs
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }

    /// The markdown report.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# cxos acceptance report\n\n");
        let _ = writeln!(out, "Device: {}  ", self.device);
        let _ = writeln!(out, "Console log: `{}`\n", self.console_log.display());
        let passed = self
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .count();
        let skipped = self.results.len() - passed - self.failed();
        let _ = writeln!(
            out,
            "{passed} passed, {} failed, {skipped} skipped\n",
            self.failed()
        );
        out.push_str("| check | result | time | figures / reason |\n|---|---|---|---|\n");
        for r in &self.results {
            let (word, why) = match &r.outcome {
                Outcome::Pass => ("pass", String::new()),
                Outcome::Fail(why) => ("**fail**", first_line(why)),
                Outcome::Skipped(why) => ("skipped", why.clone()),
            };
            let cell = [why, r.figures.join("; ")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
                .replace('|', "\\|");
            let _ = writeln!(
                out,
                "| {} | {word} | {:.1} s | {cell} |",
                r.check.name(),
                r.secs
            );
        }
        for r in &self.results {
            if let Outcome::Fail(why) = &r.outcome {
                let _ = write!(out, "\n## {} failed\n\n```\n{why}\n```\n", r.check.name());
            }
        }
        out
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// The peer's side of the wire: a namespace, the interface cabled to the
/// device (the model's TAP or the host's NIC; VLAN 10 rides on it).
struct PeerSide<'a> {
    ns: &'a Netns,
    ifname: String,
    config: &'a PeerConfig,
    /// Why the peer has no VLAN 10 (the tagged VNIC's check fails with it).
    no_vlan: Option<String>,
}

/// The VLAN of the tagged VNIC, and its subnet.
const VLAN: u16 = 10;
const VLAN_SUBNET: [u8; 3] = [10, 34, 0];
/// Raw frames each way.
const L2_FRAMES: u32 = 20;

/// A boot at its prompt, what the checks work on.
struct Suite<'a> {
    shell: Shell,
    peer: PeerSide<'a>,
    hands: Hands<'a>,
    /// The adapter's PCI address in the guest (from its attach line).
    pci: String,
    boot_text: String,
}

impl Suite<'_> {
    fn run(&mut self) -> Vec<CheckResult> {
        let mut results = Vec::new();
        for check in Check::ALL {
            let start = Instant::now();
            let mut figures = Vec::new();
            let outcome = match skip_reason(check, self.hands.kind()) {
                Some(why) => Outcome::Skipped(why),
                None => match self.one(check, &mut figures) {
                    Ok(None) => Outcome::Pass,
                    Ok(Some(why)) => Outcome::Skipped(why),
                    Err(why) => Outcome::Fail(why),
                },
            };
            results.push(CheckResult {
                check,
                outcome,
                figures,
                secs: start.elapsed().as_secs_f64(),
            });
        }
        results
    }

    /// Runs `check`; `Ok(Some(why))` when it found it cannot run.
    fn one(&mut self, check: Check, figures: &mut Vec<String>) -> Result<Option<String>, String> {
        match check {
            Check::Attach => self.attach(figures),
            Check::Transceiver => self.transceiver(figures),
            Check::ModuleSwap => self.module_swap(figures),
            Check::Led => self.led(figures),
            Check::L2 => self.l2(figures),
            Check::Ip => self.ip(figures),
            Check::Iperf3 => self.iperf3(figures),
            Check::Promisc => {
                let host = self.peer.config.ipv4(1);
                crate::systests_port::promisc_snoop(
                    &mut self.shell,
                    self.peer.ns,
                    &self.peer.ifname,
                    &host,
                    self.peer.config,
                )
            }
            Check::Vnics => self.vnics(),
            Check::Detach => self.detach(),
        }
        .map(|()| None)
        .or_else(|e| match e.strip_prefix(SKIP) {
            Some(why) => Ok(Some(why.to_string())),
            None => Err(e),
        })
    }

    /// Part and firmware, MAC and link on the attach line, its time, and
    /// MSI-X entry 0 (commands and events) interrupting.
    fn attach(&mut self, figures: &mut Vec<String>) -> Result<(), String> {
        let pci = &self.pci;
        let info = self
            .boot_text
            .lines()
            .find(|l| l.starts_with(&format!("mlx5 {pci}: ")) && l.contains(" fw "))
            .ok_or_else(|| format!("no `mlx5 {pci}: <part> fw ..` line at boot"))?;
        if !info.contains(", MAC ") || !info.contains("link up") {
            return Err(format!("attach line without MAC or link up: {info}"));
        }
        let ms = attach_ms(&self.boot_text, pci)
            .ok_or_else(|| format!("no `mlx5 {pci}: attached in .. ms` line"))?;
        figures.push(format!("attach {ms} ms"));
        figures.push(
            info.trim_start_matches(&format!("mlx5 {pci}: "))
                .to_string(),
        );
        let irq = self.shell.ask("irq")?;
        match msix_counts(&irq, pci).iter().find(|(e, _)| *e == 0) {
            Some((_, n)) if *n > 0 => Ok(()),
            _ => Err(format!("MSI-X entry 0 of {pci} never fired:\n{irq}")),
        }
    }

    /// `traninfo`: vendor, part number and serial number decoded.
    fn transceiver(&mut self, figures: &mut Vec<String>) -> Result<(), String> {
        let info = self.shell.ask(&format!("traninfo {}", self.pci))?;
        let mut got = Vec::new();
        for field in ["vendor", "part number", "serial number"] {
            let line = plain_line(&info, &format!("  {field} "))?;
            let value = line[field.len() + 2..].trim();
            if value.is_empty() {
                return Err(format!("traninfo shows no {field}:\n{info}"));
            }
            got.push(value.to_string());
        }
        figures.push(format!("module {}", got.join(" / ")));
        Ok(())
    }

    /// Module out: link down on the console; back in: link up.
    fn module_swap(&mut self, figures: &mut Vec<String>) -> Result<(), String> {
        let pci = self.pci.clone();
        match &self.hands {
            Hands::Model(sim) => {
                expect_reply(&sim.ask_ok("module remove")?, "ok removed, link down")?;
            }
            Hands::Terminal => {
                prompt(&format!(
                    "Pull the transceiver (or cable) of {pci}, then press Enter."
                ))?;
            }
            Hands::Nobody => return Err(format!("{SKIP}nobody to pull the module")),
        }
        self.shell
            .wait_for_line(&format!("mlx5 {pci}: link down"))?;
        let t = Instant::now();
        match &self.hands {
            Hands::Model(sim) => expect_reply(
                &sim.ask_ok("module insert 100g-dac")?,
                "ok inserted 100g-dac, link up 100G",
            )?,
            _ => {
                prompt("Insert it again, then press Enter.")?;
            }
        }
        let up = self.shell.wait_for_line(&format!("mlx5 {pci}: link up"))?;
        figures.push(format!(
            "{up} ({} ms after insert)",
            t.elapsed().as_millis()
        ));
        // The console's event lines are behind us: next answers start here.
        self.shell.ask("uptime")?;
        Ok(())
    }

    /// `led beacon`, then `led off`: the model's LED follows; on hardware
    /// the person says what they see.
    fn led(&mut self, figures: &mut Vec<String>) -> Result<(), String> {
        let pci = self.pci.clone();
        plain_line(
            &self.shell.ask(&format!("led {pci} beacon 30"))?,
            &format!("mlx5 {pci}: led beacon "),
        )?;
        match &self.hands {
            Hands::Model(sim) => {
                let led = sim.ask_ok("led")?;
                match led.last() {
                    Some(l) if l.starts_with("ok led beacon ") => {
                        figures.push(format!("model: {}", &l[3..]));
                    }
                    _ => return Err(format!("model LED after beacon: {led:?}")),
                }
            }
            _ => {
                let a = prompt(&format!("Is the LED of {pci} blinking? [y/n]"))?;
                if !confirms(&a) {
                    return Err(format!("the LED does not blink (answer {a:?})"));
                }
                figures.push("blinking, seen by the operator".into());
            }
        }
        self.shell.ask(&format!("led {pci} off"))?;
        match &self.hands {
            Hands::Model(sim) => expect_reply(&sim.ask_ok("led")?, "ok led off"),
            _ => {
                let a = prompt(&format!("Has the LED of {pci} stopped blinking? [y/n]"))?;
                if confirms(&a) {
                    Ok(())
                } else {
                    Err(format!("the LED still blinks (answer {a:?})"))
                }
            }
        }
    }

    /// cxos's `l2send` to the peer (counted by a raw socket there) and the
    /// peer's frames to cxos's `l2recv`.
    fn l2(&mut self, figures: &mut Vec<String>) -> Result<(), String> {
        let ns = self.peer.ns;
        let script = ns.dir().join("l2peer.py");
        std::fs::write(&script, L2_PEER).map_err(|e| e.to_string())?;
        let mac = guest_mac(&self.boot_text, &self.pci)?;
        let peer_mac = ns.mac_of(&self.peer.ifname).map_err(|e| e.to_string())?;
        // Peer receives. cxos sends only once the peer's socket is bound
        // (its `ready` line): a fixed pause lost every frame when a loaded
        // machine started Python later than that.
        let mut recv = ns
            .command("python3")
            .arg(&script)
            .args(["recv", &self.peer.ifname, &mac, &L2_FRAMES.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the L2 receiver: {e}"))?;
        let mut peer_out = std::io::BufReader::new(
            recv.stdout
                .take()
                .ok_or("the L2 receiver has no output pipe")?,
        );
        let mut ready = String::new();
        std::io::BufRead::read_line(&mut peer_out, &mut ready).map_err(|e| e.to_string())?;
        if ready.trim() != "ready" {
            let out = recv.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "the L2 receiver did not start: {ready}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let sent = self.shell.ask(&format!("l2send {peer_mac} {L2_FRAMES}"))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut peer_out, &mut text).map_err(|e| e.to_string())?;
        let out = recv.wait_with_output().map_err(|e| e.to_string())?;
        if !text.contains(&format!("received {L2_FRAMES} ")) {
            return Err(format!(
                "the peer did not get cxos's {L2_FRAMES} frames: {text}{}\ncxos: {sent}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // cxos receives.
        self.shell
            .session
            .send_line(&format!("l2recv {L2_FRAMES} -W 10"))?;
        std::thread::sleep(Duration::from_millis(500));
        let send = ns
            .run(
                "python3",
                &[
                    script.to_str().unwrap_or_default(),
                    "send",
                    &self.peer.ifname,
                    &mac,
                    &L2_FRAMES.to_string(),
                ],
            )
            .map_err(|e| e.to_string())?;
        let end = self.shell.session.expect_from(self.shell.ready, PROMPT)?;
        let answer = self.shell.session.serial()[self.shell.ready..end].to_string();
        self.shell.ready = end;
        plain_line(
            &answer,
            &format!("l2recv: received {L2_FRAMES} of {L2_FRAMES} frames from "),
        )
        .map_err(|e| format!("{e} (peer: {send})"))?;
        figures.push(format!("{L2_FRAMES} frames each way, none lost"));
        Ok(())
    }

    /// Stock ping to cxos and cxos's ping to the peer, IPv4 and IPv6.
    fn ip(&mut self, figures: &mut Vec<String>) -> Result<(), String> {
        let c = self.peer.config;
        let want = "3 packets transmitted, 3 received, 0% packet loss";
        for addr in [c.ipv4(PEER_GUEST), c.ipv6(u16::from(PEER_GUEST))] {
            let out = self.peer.ns.ping(&addr, 3).map_err(|e| e.to_string())?;
            if !out.contains(want) {
                return Err(format!("ping {addr} from the peer:\n{out}"));
            }
            if let Some(rtt) = out.lines().find(|l| l.starts_with("rtt ")) {
                figures.push(format!("peer -> {addr}: {rtt}"));
            }
        }
        for addr in [c.ipv4(1), c.ipv6(1)] {
            let answer = self.shell.ask(&format!("ping {addr} -c 3"))?;
            plain_line(&answer, want).map_err(|e| format!("cxos ping {addr}: {e}"))?;
            if let Some(rtt) = answer.lines().find(|l| l.starts_with("rtt ")) {
                figures.push(format!("cxos -> {addr}: {rtt}"));
            }
        }
        Ok(())
    }

    /// Stock iperf3 against cxos's server, both directions, 2 s each.
    fn iperf3(&mut self, figures: &mut Vec<String>) -> Result<(), String> {
        plain_line(&self.shell.ask("serve iperf3")?, "service ")?;
        let guest = self.peer.config.ipv4(PEER_GUEST);
        for (what, extra) in [("peer -> cxos", &[][..]), ("cxos -> peer", &["-R"][..])] {
            let mut args = vec!["-c", &guest, "--json", "-t", "2"];
            args.extend_from_slice(extra);
            let json = self
                .peer
                .ns
                .run("iperf3", &args)
                .map_err(|e| format!("{what}: {e}"))?;
            let (bps, retr) = iperf3_summary(&json).map_err(|e| format!("{what}: {e}"))?;
            figures.push(format!(
                "{what} {:.1} Mbit/s ({retr} retransmits)",
                bps / 1e6
            ));
        }
        Ok(())
    }

    /// Two untagged VNICs and one on VLAN 10, each pinged from the peer.
    fn vnics(&mut self) -> Result<(), String> {
        if let Some(why) = &self.peer.no_vlan {
            return Err(format!("the peer has no VLAN {VLAN}: {why}"));
        }
        let c = self.peer.config;
        let vlan_ip = c.vlan_ipv4(VLAN, 30).ok_or("the peer has no VLAN subnet")?;
        let defs = [
            (format!("ip:{}/24", c.ipv4(30)), c.ipv4(30)),
            (format!("ip:{}/24", c.ipv4(31)), c.ipv4(31)),
            (format!("vlan:{VLAN},ip:{vlan_ip}/24"), vlan_ip.clone()),
        ];
        for (def, addr) in &defs {
            let answer = self.shell.ask(&format!("vnic create {def}"))?;
            if !answer.contains(": created ") {
                return Err(format!("vnic create {def}:\n{answer}"));
            }
            let out = self.peer.ns.ping(addr, 3).map_err(|e| e.to_string())?;
            if !out.contains("3 received") {
                return Err(format!("VNIC {def} does not answer ping:\n{out}"));
            }
        }
        Ok(())
    }

    /// `detach`: nothing lost; on the model no page held, no violation.
    fn detach(&mut self) -> Result<(), String> {
        let answer = self.shell.ask(&format!("detach {}", self.pci))?;
        plain_line(
            &answer,
            &format!("mlx5 {}: detached: 0 pages lost, 0 errors", self.pci),
        )?;
        if let Hands::Model(sim) = &self.hands {
            crate::systests_attach::expect_model_clean(sim)?;
        }
        Ok(())
    }
}

/// A check's error starting with this is a skip (found while running).
const SKIP: &str = "skip: ";

/// `mlx5 <pci>: attached in <n> ms...`: n.
fn attach_ms(text: &str, pci: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("mlx5 {pci}: attached in ")))?;
    number_after(line, "in")
}

/// The guest address of the first mlx5 function that attached.
fn attached_pci(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("mlx5 ")?;
        let (pci, rest) = rest.split_once(": ")?;
        rest.starts_with("attached in ").then(|| pci.to_string())
    })
}

fn guest_mac(text: &str, pci: &str) -> Result<String, String> {
    let prefix = format!("mlx5 {pci}: ");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .find_map(|l| Some(l.split_once(", MAC ")?.1.split(',').next()?.to_lowercase()))
        .ok_or_else(|| format!("no MAC for {pci} on the console"))
}

/// The peer's raw-frame tool: `recv IF SRC_MAC N` counts frames of the
/// l2send format (net/src/l2.rs: ethertype 0x88B5, `CXL2`, run, seq,
/// count) from SRC_MAC for up to 10 s; `send IF DST_MAC N` sends N.
const L2_PEER: &str = r#"
import socket, struct, sys, time
mode, ifname, mac, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
peer = bytes.fromhex(mac.replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
s.bind((ifname, 0x88B5))
own = s.getsockname()[4][:6]
if mode == "send":
    run = int(time.time()) & 0xFFFFFFFF
    for seq in range(n):
        head = peer + own + struct.pack("!H4sIII", 0x88B5, b"CXL2", run, seq, n)
        body = bytes(((seq ^ i) * 31) & 0xFF for i in range(64 - len(head)))
        s.send(head + body)
    print("sent %d" % n)
else:
    s.settimeout(1.0)
    print("ready", flush=True)
    seen, end = set(), time.time() + 10
    while len(seen) < n and time.time() < end:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        if f[6:12] == peer and f[14:18] == b"CXL2":
            seen.add(struct.unpack("!I", f[22:26])[0])
    print("received %d of %d" % (len(seen), n))
"#;

/// The model run: the net-peer tests' namespace peer (with a VLAN for the
/// tagged VNIC) and mlx5-sim's cx5 in it.
pub fn run_model(ctx: &Context, test: &SystemTest) -> Result<Option<Report>, String> {
    let mut config = PeerConfig::new("accept");
    config.dhcp_lease_secs = None;
    config.vlans = vec![(VLAN, VLAN_SUBNET)];
    let net = match PeerNetwork::create(&config) {
        Ok(net) => net,
        Err(PeerError::Skip(why)) => {
            println!("    skipped: {why}");
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    let setup = crate::systests_sim::setup(ctx)?;
    let log = ctx.log_path(test);
    let options = net.sim_options(Some(log.with_extension("pcap")));
    let mut sim = SimDevice::start_with(
        &setup.sim,
        "cx5",
        test.name,
        &log.with_extension("sim.log"),
        &options,
    )?;
    let machine = crate::systests_sim::machine(ctx, &sim, &static_cmdline(&config));
    let session = crate::systests_sim::spawn_qemu(&setup, ctx, test, &machine, &[], false)?;
    let peer = PeerSide {
        ns: net.netns(),
        ifname: crate::netns::TAP.to_string(),
        config: &config,
        no_vlan: None,
    };
    let results = run_suite(session, peer, Hands::Model(&sim))?;
    if passed(&results, Check::Detach) {
        sim.expect_clean_exit()?;
    }
    Ok(Some(Report {
        device: "mlx5-sim cx5 (model) on a namespace peer".into(),
        console_log: log,
        results,
    }))
}

/// Boots to the prompt, runs every check, powers off.
fn run_suite<'a>(
    session: Session,
    peer: PeerSide<'a>,
    hands: Hands<'a>,
) -> Result<Vec<CheckResult>, String> {
    let start = Instant::now();
    let shell = Shell::start(session);
    let boot_secs = start.elapsed().as_secs_f64();
    let mut shell = match shell {
        Ok(shell) => shell,
        Err(why) => {
            return Ok(not_booted(format!("no shell prompt: {why}"), boot_secs));
        }
    };
    let boot_text = shell.session.serial().to_string();
    let Some(pci) = attached_pci(&boot_text) else {
        let _ = shell.ask("log");
        return Ok(not_booted(
            "no mlx5 function attached at boot".into(),
            boot_secs,
        ));
    };
    let mut suite = Suite {
        shell,
        peer,
        hands,
        pci,
        boot_text,
    };
    let mut results = suite.run();
    if let Some(first) = results.first_mut() {
        first.secs += boot_secs;
    }
    // After a clean detach the kernel powers off with a passing verdict.
    let mut shell = suite.shell;
    let off = shell.session.send_line("poweroff").and_then(|()| {
        let status = shell.session.wait_exit()?;
        crate::systests::expect_verdict(
            crate::qemu::Verdict::from_status(status),
            crate::qemu::Verdict::Pass,
        )
    });
    if passed(&results, Check::Detach) {
        off.map_err(|e| format!("poweroff after the checks: {e}"))?;
    }
    Ok(results)
}

/// Attach failed with `why`; every other check skipped for it.
fn not_booted(why: String, secs: f64) -> Vec<CheckResult> {
    Check::ALL
        .into_iter()
        .map(|check| CheckResult {
            check,
            outcome: if check == Check::Attach {
                Outcome::Fail(why.clone())
            } else {
                Outcome::Skipped("no adapter at a shell (see attach)".into())
            },
            figures: Vec::new(),
            secs: if check == Check::Attach { secs } else { 0.0 },
        })
        .collect()
}

fn passed(results: &[CheckResult], check: Check) -> bool {
    results
        .iter()
        .any(|r| r.check == check && r.outcome == Outcome::Pass)
}

/// The hardware run: the adapter by vfio-pci, `peer_if` in a namespace.
fn run_hardware(ctx: &Context, pci: &str, peer_if: &str, log: &Path) -> Result<Report, String> {
    if !cxos_testnet::is_root() {
        return Err("the peer namespace and vfio need root".into());
    }
    cxos_testnet::require_tools(&["ip", "ping", "iperf3"]).map_err(|s| s.reason)?;
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("the peer's raw-frame tool needs python3".into());
    }
    let mut config = PeerConfig::new("accept");
    config.dhcp_lease_secs = None;
    config.vlans = vec![(VLAN, VLAN_SUBNET)];
    let ns = Netns::new(&config.tag).map_err(|e| e.to_string())?;
    ns.adopt_link(peer_if).map_err(|e| e.to_string())?;
    ns.add_addr(peer_if, &format!("{}/24", config.ipv4(1)))
        .map_err(|e| e.to_string())?;
    ns.add_addr(peer_if, &format!("{}/64", config.ipv6(1)))
        .map_err(|e| e.to_string())?;
    ns.link_up(peer_if).map_err(|e| e.to_string())?;
    let vlan_if = format!("{peer_if}.{VLAN}");
    let vlan_if = if vlan_if.len() > 15 {
        format!("accv{VLAN}")
    } else {
        vlan_if
    };
    // Where the host lacks 802.1Q only the VNIC check suffers.
    let [a, b, c] = VLAN_SUBNET;
    let no_vlan = ns
        .ip(&[
            "link", "add", "link", peer_if, "name", &vlan_if, "type", "vlan", "id", "10",
        ])
        .and_then(|_| ns.add_addr(&vlan_if, &format!("{a}.{b}.{c}.1/24")))
        .and_then(|()| ns.link_up(&vlan_if))
        .err()
        .map(|e| e.to_string());

    let mut machine = Machine::new(Boot::Pvh {
        kernel: ctx.kernel.clone(),
        cmdline: static_cmdline(&config),
    });
    machine.devices.push(format!("vfio-pci,host={pci}"));
    crate::provision::ensure(&machine.packages()).map_err(|e| e.to_string())?;
    let command = machine.command(&ctx.qemu).map_err(|e| e.to_string())?;
    // A person may take their time over the hand steps.
    let session =
        Session::spawn(command, log, Duration::from_secs(1800)).map_err(|e| e.to_string())?;
    let hands = match hands_kind(true, std::io::stdin().is_terminal()) {
        HandsKind::Terminal => Hands::Terminal,
        _ => Hands::Nobody,
    };
    let peer = PeerSide {
        ns: &ns,
        ifname: peer_if.to_string(),
        config: &config,
        no_vlan,
    };
    let results = run_suite(session, peer, hands)?;
    Ok(Report {
        device: format!("{pci} by vfio-pci, peer {peer_if}"),
        console_log: log.to_path_buf(),
        results,
    })
}

/// The report's place.
fn report_dir(ctx: &Context) -> PathBuf {
    ctx.ws.xtask_dir().join("acceptance")
}

fn write_report(dir: &Path, report: &Report) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("report.md");
    std::fs::write(&path, report.markdown()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The suite as a system test: every check passes on the model.
pub fn all() -> Vec<SystemTest> {
    vec![SystemTest {
        name: "acceptance-model",
        timeout: Duration::from_secs(150),
        run: acceptance_model,
    }]
}

fn acceptance_model(ctx: &Context, test: &SystemTest) -> Result<(), String> {
    let Some(report) = run_model(ctx, test)? else {
        return Ok(());
    };
    let path = write_report(&ctx.log_path(test).with_extension("d"), &report)?;
    print!("{}", indent(&report.table()));
    let not_passed: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| format!("{}: {:?}", r.check.name(), r.outcome))
        .collect();
    if report.results.len() != Check::ALL.len() || !not_passed.is_empty() {
        return Err(format!(
            "checks not passed ({}): {}",
            path.display(),
            not_passed.join("\n")
        ));
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// `cargo xtask acceptance`.
pub fn run(ws: &crate::workspace::Workspace, args: &AcceptanceArgs) -> crate::Result<u8> {
    let ctx = crate::test::prepare(ws)?;
    let test = SystemTest {
        name: "acceptance",
        timeout: Duration::from_secs(300),
        run: acceptance_model,
    };
    let report = match hardware_target(args) {
        Some((pci, peer_if)) => run_hardware(&ctx, pci, peer_if, &ctx.log_path(&test)),
        None => run_model(&ctx, &test).and_then(|r| {
            r.ok_or_else(|| "the model's peer network cannot exist here (see above)".into())
        }),
    }
    .map_err(crate::XtaskError::msg)?;
    let path = write_report(&report_dir(&ctx), &report).map_err(crate::XtaskError::msg)?;
    print!("{}", report.table());
    println!("report: {}", path.display());
    println!("console log: {}", report.console_log.display());
    Ok(u8::from(report.failed() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(check: Check, outcome: Outcome, figures: &[&str]) -> CheckResult {
        CheckResult {
            check,
            outcome,
            figures: figures.iter().map(|s| s.to_string()).collect(),
            secs: 1.25,
        }
    }

    #[test]
    fn hardware_without_a_terminal_skips_the_hand_steps_only() {
        let skipped: Vec<Check> = Check::ALL
            .into_iter()
            .filter(|c| skip_reason(*c, HandsKind::Nobody).is_some())
            .collect();
        assert_eq!(skipped, [Check::ModuleSwap, Check::Led]);
        assert_eq!(
            skip_reason(Check::Led, HandsKind::Nobody).unwrap(),
            "needs someone to look at the port LED; stdin is not a terminal"
        );
        for hands in [HandsKind::Model, HandsKind::Terminal] {
            assert!(Check::ALL.iter().all(|c| skip_reason(*c, hands).is_none()));
        }
    }

    #[test]
    fn checks_run_in_the_seed_order() {
        let names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "attach",
                "transceiver",
                "module-swap",
                "led",
                "l2",
                "ip",
                "iperf3",
                "promisc",
                "vnics",
                "detach"
            ]
        );
    }

    fn sample() -> Report {
        Report {
            device: "model".into(),
            console_log: PathBuf::from("/t/acceptance.log"),
            results: vec![
                result(Check::Attach, Outcome::Pass, &["attach 26 ms"]),
                result(Check::Led, Outcome::Skipped("needs someone".into()), &[]),
                result(
                    Check::Iperf3,
                    Outcome::Fail("iperf3 | broke\nsecond line".into()),
                    &["peer -> cxos 900.0 Mbit/s (0 retransmits)"],
                ),
            ],
        }
    }

    #[test]
    fn report_has_a_row_per_check_with_reasons_and_figures() {
        let md = sample().markdown();
        assert!(md.contains("Console log: `/t/acceptance.log`"), "{md}");
        assert!(md.contains("1 passed, 1 failed, 1 skipped"), "{md}");
        assert!(
            md.contains("| attach | pass | 1.2 s | attach 26 ms |"),
            "{md}"
        );
        assert!(
            md.contains("| led | skipped | 1.2 s | needs someone |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| iperf3 | **fail** | 1.2 s | iperf3 \\| broke; peer -> cxos 900.0 Mbit/s (0 retransmits) |"
            ),
            "{md}"
        );
        assert!(md.contains("## iperf3 failed\n\n```\niperf3 | broke\nsecond line\n```"));
        assert_eq!(sample().failed(), 1);
    }

    #[test]
    fn table_has_a_line_per_check() {
        let table = sample().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("attach       pass"), "{table}");
        assert!(lines[1].contains("skipped") && lines[1].ends_with("needs someone"));
        assert!(lines[2].contains("FAIL") && lines[2].contains("iperf3 | broke — peer"));
    }

    #[test]
    fn a_failed_boot_fails_attach_and_skips_the_rest() {
        let results = not_booted("no shell prompt".into(), 2.0);
        assert_eq!(results.len(), Check::ALL.len());
        assert_eq!(results[0].outcome, Outcome::Fail("no shell prompt".into()));
        assert!(
            results[1..]
                .iter()
                .all(|r| matches!(r.outcome, Outcome::Skipped(_)))
        );
    }

    #[test]
    fn boot_lines_are_read() {
        let text = "mlx5 01:00.0: ConnectX-5 fw 16.35.1012, MAC 02:11:22:33:44:55, link up 100G\n\
                    mlx5 01:00.0: attached in 26 ms; link up 52 ms after kernel entry\n";
        assert_eq!(attached_pci(text).as_deref(), Some("01:00.0"));
        assert_eq!(attach_ms(text, "01:00.0"), Some(26));
        assert_eq!(guest_mac(text, "01:00.0").unwrap(), "02:11:22:33:44:55");
        assert_eq!(attached_pci("mlx5 01:00.0: link down\n"), None);
    }

    #[test]
    fn hardware_hands_are_the_terminal_or_nobody_and_nobody_skips_the_hand_steps() {
        assert_eq!(hands_kind(false, false), HandsKind::Model);
        assert_eq!(hands_kind(false, true), HandsKind::Model);
        assert_eq!(hands_kind(true, true), HandsKind::Terminal);
        assert_eq!(hands_kind(true, false), HandsKind::Nobody);
        // Run by CI (no terminal) against hardware: only the hand steps
        // are skipped; the model and a person run every check.
        let skipped = |h| {
            Check::ALL
                .into_iter()
                .filter(|c| skip_reason(*c, h).is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            skipped(hands_kind(true, false)),
            [Check::ModuleSwap, Check::Led]
        );
        assert!(skipped(hands_kind(true, true)).is_empty());
        assert!(skipped(hands_kind(false, false)).is_empty());
    }

    #[test]
    fn a_person_is_asked_on_the_terminal_and_answers_there() {
        let mut out = Vec::new();
        let a = ask(
            "Is the LED of 01:00.0 blinking? [y/n]",
            &mut std::io::Cursor::new(b"  Y \nnext\n".to_vec()),
            &mut out,
        )
        .unwrap();
        assert_eq!(a, "Y");
        assert!(confirms(&a) && confirms("yes") && !confirms("n") && !confirms(""));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n>>> Is the LED of 01:00.0 blinking? [y/n] "
        );
        // Input closed (Ctrl-D): an empty answer, which is no.
        let a = ask(
            "Insert it again.",
            &mut std::io::Cursor::new(Vec::new()),
            &mut Vec::new(),
        );
        assert_eq!(a.as_deref(), Ok(""));
    }

    #[test]
    fn arguments_need_each_other() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: AcceptanceArgs,
        }
        let c = Cli::try_parse_from(["x", "--peer-if", "eth1", "--passthrough", "0000:af:00.0"])
            .unwrap();
        assert_eq!(c.a.passthrough.as_deref(), Some("0000:af:00.0"));
        assert_eq!(hardware_target(&c.a), Some(("0000:af:00.0", "eth1")));
        let model = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(hardware_target(&model.a), None);
        assert!(Cli::try_parse_from(["x", "--passthrough", "0000:af:00.0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--peer-if", "eth1"]).is_err());
        assert!(Cli::try_parse_from(["x", "--passthrough", "zz", "--peer-if", "e"]).is_err());
    }
}
