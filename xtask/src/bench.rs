//! `cargo xtask bench`: the workspace's bench targets, the driver's
//! instructions per packet under callgrind (`bench_callgrind`), plus
//! xtask's own figures (PVH boot time under TCG, kernel size), printed as
//! one table. `--callgrind [FILTER]` runs only the callgrind figures.
//!
//! Bench targets are `harness = false` binaries that print lines
//! `bench: <name>: <value> <unit>`; xtask prints its own figures the same way.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use crate::kernel::{self, Profile};
use crate::qemu::{Boot, Machine, Qemu, Verdict};
use crate::session::Session;
use crate::workspace::{Workspace, cargo};
use crate::{Result, XtaskError};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Boots measured for the PVH boot figure (the median is reported).
    #[arg(long, default_value_t = 11)]
    pub runs: usize,
    /// Only xtask's own figures; skip `cargo bench --workspace`.
    #[arg(long)]
    pub xtask_only: bool,
    /// Only the callgrind instruction counts of the driver's packet paths
    /// (xtask/src/bench_callgrind.rs), for the figures whose name contains
    /// this (empty: all).
    #[arg(long, value_name = "FILTER", num_args = 0..=1, default_missing_value = "")]
    pub callgrind: Option<String>,
    /// Only the figures of cxos against Linux's mlx5_core on the same
    /// simulated ConnectX-5 (xtask/src/bench_linux.rs; needs root).
    #[arg(long)]
    pub linux: bool,
    /// cxos's pktgen against Linux's on the same model (a sink cable: no namespace).
    #[arg(long)]
    pub pktgen: bool,
    /// cxos's pktgen with 1 and with 2 CPUs (xtask/src/bench_pktgen_smp.rs).
    #[arg(long)]
    pub pktgen_smp: bool,
    /// MSI-X interrupts per CPU with -smp 2 and 4 (xtask/src/bench_irq_smp.rs).
    #[arg(long)]
    pub irq_smp: bool,
}

/// One `bench:` figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: String,
    pub unit: String,
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bench: {}: {} {}", self.name, self.value, self.unit)
    }
}

/// Parses `bench: <name>: <value> <unit>` (the unit may have spaces, e.g. `ns per packet`).
pub fn parse_figure(line: &str) -> Option<Figure> {
    let rest = line.trim().strip_prefix("bench: ")?;
    let (name, measure) = rest.split_once(": ")?;
    let (value, unit) = measure
        .trim()
        .split_once(' ')
        .unwrap_or((measure.trim(), ""));
    if name.is_empty() || value.parse::<f64>().is_err() {
        return None;
    }
    Some(Figure {
        name: name.to_string(),
        value: value.to_string(),
        unit: unit.trim().to_string(),
    })
}

/// The median of some durations (the upper one of the middle two for an even count).
pub fn median(mut samples: Vec<Duration>) -> Option<Duration> {
    samples.sort();
    samples.get(samples.len() / 2).copied()
}

/// Renders figures as an aligned table.
pub fn table(figures: &[Figure]) -> String {
    let w_name = figures
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0)
        .max("figure".len());
    let w_value = figures
        .iter()
        .map(|f| f.value.len())
        .max()
        .unwrap_or(0)
        .max("value".len());
    let mut out = format!("{:<w_name$}  {:>w_value$}  unit\n", "figure", "value");
    out.push_str(&format!(
        "{}  {}  ----\n",
        "-".repeat(w_name),
        "-".repeat(w_value)
    ));
    for f in figures {
        out.push_str(&format!(
            "{:<w_name$}  {:>w_value$}  {}\n",
            f.name, f.value, f.unit
        ));
    }
    out
}

pub fn run(ws: &Workspace, args: &BenchArgs) -> Result<u8> {
    let mut figures = Vec::new();
    let mut ok = true;
    if let Some(filter) = &args.callgrind {
        figures.extend(crate::bench_callgrind::figures(ws, filter)?);
        println!("\n{}", table(&figures));
        return Ok(0);
    }
    if args.irq_smp {
        let elf = kernel::build(ws, Profile::Release)?;
        match crate::bench_irq_smp::figures(ws, &elf) {
            Err(why) if why.starts_with("skipped: ") => println!("bench: irq per CPU {why}"),
            r => println!("\n{}", table(&r.map_err(XtaskError::msg)?)),
        }
        return Ok(0);
    }
    if args.pktgen_smp {
        let elf = kernel::build(ws, Profile::Release)?;
        let found = match crate::bench_pktgen_smp::figures(ws, &elf) {
            Err(why) if why.starts_with("skipped: ") => {
                println!("bench: pktgen 1 vs 2 CPUs {why}");
                return Ok(0);
            }
            r => r.map_err(XtaskError::msg)?,
        };
        println!("\n{}", table(&found));
        return Ok(0);
    }
    if args.pktgen {
        let elf = kernel::build(ws, Profile::Release)?;
        match crate::bench_pktgen::figures(ws, &elf) {
            Ok(found) => {
                for figure in &found {
                    println!("{figure}");
                }
                println!("\n{}", table(&found));
                return Ok(0);
            }
            Err(why) if why.starts_with("skipped: ") => {
                println!("bench: pktgen cxos vs Linux {why}");
                return Ok(0);
            }
            Err(why) => return Err(XtaskError::msg(why)),
        }
    }
    if args.linux {
        let elf = kernel::build(ws, Profile::Release)?;
        match crate::bench_linux::figures(ws, &elf, args.runs.max(1)) {
            Ok(found) => {
                for figure in &found {
                    println!("{figure}");
                }
                println!("\n{}", table(&found));
                return Ok(0);
            }
            Err(why) if why.starts_with("skipped: ") => {
                println!("bench: cxos vs Linux {why}");
                return Ok(0);
            }
            Err(why) => return Err(XtaskError::msg(why)),
        }
    }
    if !args.xtask_only {
        let (found, success) = cargo_bench(ws)?;
        figures.extend(found);
        ok &= success;
        figures.extend(crate::bench_callgrind::figures(ws, "")?);
    }
    let elf = kernel::build(ws, Profile::Release)?;
    let bytes = std::fs::read(&elf)?;
    let sizes = kernel::elf_sizes(&bytes)?;
    let bytes_figure = |name: &str, value: u64| Figure {
        name: name.into(),
        value: value.to_string(),
        unit: "bytes".into(),
    };
    let own = [
        bytes_figure("kernel-elf-file-size", sizes.file),
        bytes_figure("kernel-load-file-bytes", sizes.load_file),
        bytes_figure("kernel-load-memory-bytes", sizes.load_memory),
    ];
    for figure in own {
        println!("{figure}");
        figures.push(figure);
    }
    let boot = pvh_boot_time(ws, &elf, args.runs.max(1))?;
    let figure = Figure {
        name: "pvh-boot-to-selftest-pass-tcg".into(),
        value: boot.as_millis().to_string(),
        unit: "ms".into(),
    };
    println!("{figure}");
    figures.push(figure);
    // Bring-up of a simulated ConnectX-5 in QEMU (issue 8): attach time and trapped MMIO.
    for figure in crate::systests_attach::bench_figures(ws, &elf, args.runs.max(1))
        .map_err(XtaskError::msg)?
    {
        println!("{figure}");
        figures.push(figure);
    }
    // The main job (issue 9): stock iperf3 <-> cxos each way, attach,
    // QEMU start to first ping reply; needs root (peer network).
    match crate::mainjob::bench_figures(ws, &elf, args.runs.max(1)) {
        Ok(found) => {
            for figure in found {
                println!("{figure}");
                figures.push(figure);
            }
        }
        Err(e) if e.starts_with("skipped: ") => println!("main job figures {e}"),
        Err(e) => return Err(XtaskError::msg(e)),
    }
    println!("\n{}", table(&figures));
    Ok(if ok { 0 } else { 1 })
}

/// Runs the workspace's bench targets (`cargo bench --workspace --all-features --bench '*'`:
/// bench targets only, not every test harness in bench mode), echoing their
/// output and collecting `bench:` lines.
fn cargo_bench(ws: &Workspace) -> Result<(Vec<Figure>, bool)> {
    if ws.bench_targets.is_empty() {
        eprintln!("xtask: the workspace has no bench targets yet");
        return Ok((Vec::new(), true));
    }
    let mut child = Command::new(cargo())
        .args(["bench", "--workspace", "--all-features", "--bench", "*"])
        .current_dir(&ws.root)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| XtaskError::msg(format!("cannot run cargo bench: {e}")))?;
    let mut figures = Vec::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        figures.extend(parse_figure(&line));
    }
    let status = child.wait()?;
    if !status.success() {
        eprintln!("xtask: cargo bench --workspace failed ({status})");
    }
    Ok((figures, status.success()))
}

/// Wall time from starting QEMU to its exit after a passing selftest: the median of `runs`.
fn pvh_boot_time(ws: &Workspace, elf: &std::path::Path, runs: usize) -> Result<Duration> {
    let qemu = Qemu::system()?;
    let machine = Machine::new(Boot::Pvh {
        kernel: elf.to_path_buf(),
        cmdline: "test=selftest".into(),
    });
    let log = ws.logs_dir().join("bench-pvh-boot.log");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let command = machine.command(&qemu)?;
        let start = Instant::now();
        let mut session = Session::spawn(command, &log, Duration::from_secs(60))?;
        let status = session.wait_exit().map_err(XtaskError::msg)?;
        let elapsed = start.elapsed();
        let verdict = Verdict::from_status(status);
        if verdict != Verdict::Pass {
            return Err(XtaskError::msg(format!(
                "PVH selftest boot: {verdict} (log: {})",
                log.display()
            )));
        }
        samples.push(elapsed);
    }
    median(samples).ok_or_else(|| XtaskError::msg("no boot measured"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        assert_eq!(
            parse_figure("bench: cmd-roundtrip: 12.5 us"),
            Some(Figure {
                name: "cmd-roundtrip".into(),
                value: "12.5".into(),
                unit: "us".into()
            })
        );
        assert_eq!(
            parse_figure("bench: rx: 3 ns per packet").unwrap().unit,
            "ns per packet"
        );
        assert_eq!(parse_figure("bench: count: 7").unwrap().unit, "");
        assert_eq!(parse_figure("bench: x: fast ms"), None);
        assert_eq!(parse_figure("test result: ok"), None);
        assert_eq!(parse_figure("  bench: pvh: 210 ms").unwrap().value, "210");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            median(ms(&[300, 100, 200])),
            Some(Duration::from_millis(200))
        );
        assert_eq!(median(ms(&[4, 1, 3, 2])), Some(Duration::from_millis(3)));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn table_aligns_columns() {
        let f = |n: &str, v: &str| Figure {
            name: n.into(),
            value: v.into(),
            unit: "ms".into(),
        };
        let t = table(&[f("a", "1"), f("longer-name", "1234")]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "figure       value  unit");
        assert_eq!(lines[2], "a                1  ms");
        assert_eq!(lines[3], "longer-name   1234  ms");
    }
}
