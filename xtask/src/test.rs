//! `cargo xtask test`: host tests, lint, then the QEMU system tests.
//!
//! Prints one line per check (`host ...`, `lint ...`, `system <name> ...`)
//! and ends with `N passed, M failed` alone on a line; exits 1 on any failure.

use std::process::Command;
use std::time::Instant;

use clap::Args;

use crate::kernel::{self, Profile};
use crate::qemu::{Qemu, SmpUse};
use crate::session::tail;
use crate::systests::{self, Context, SystemTest};
use crate::workspace::{Workspace, cargo};
use crate::{Result, XtaskError, lint, provision};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Skip `cargo test` and lint; run only the QEMU system tests.
    #[arg(long)]
    pub system_only: bool,
    /// Run only the system tests whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Give every system test's cxos machine this many CPUs (`-smp N`; on
    /// demand, not in CI; Linux guests keep their own).
    #[arg(long)]
    pub smp: Option<u16>,
}

/// The host tests; `--all-features` so feature-gated code (mlx5-sim's `vfio`
/// front end) is tested too.
const HOST_TESTS: &[&str] = &["test", "--workspace", "--all-features"];

/// Lines of a failed test's log shown on the terminal.
const TAIL_LINES: usize = 40;

/// Tally of checks.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, kind: &str, name: &str, result: std::result::Result<(), String>) {
        match result {
            Ok(()) => {
                println!("{kind} {name} ... ok");
                self.passed += 1;
            }
            Err(why) => {
                println!("{kind} {name} ... FAILED");
                for line in why.lines() {
                    println!("    {line}");
                }
                self.failed.push(format!("{kind} {name}"));
            }
        }
    }
}

fn cargo_step(ws: &Workspace, args: &[&str]) -> std::result::Result<(), String> {
    let status = Command::new(cargo())
        .args(args)
        .current_dir(&ws.root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

pub fn run(ws: &Workspace, args: &TestArgs) -> Result<u8> {
    let started = Instant::now();
    let mut tally = Tally::default();
    if !args.system_only {
        tally.record("host", "cargo-test", cargo_step(ws, HOST_TESTS));
        tally.record("lint", "clippy", cargo_step(ws, lint::CLIPPY));
        tally.record("lint", "rustfmt", cargo_step(ws, lint::RUSTFMT));
        for (name, args) in lint::KERNEL_FEATURE_SETS {
            tally.record("lint", name, cargo_step(ws, args));
        }
        let audit = lint::audit(&ws.root)
            .map_err(|e| e.to_string())
            .and_then(|findings| {
                if findings.is_empty() {
                    Ok(())
                } else {
                    Err(findings.join("\n"))
                }
            });
        tally.record("lint", "unsafe-audit", audit);
        let graph = lint::import_cycles(&ws.root)
            .map_err(|e| e.to_string())
            .and_then(|cycles| {
                if cycles.is_empty() {
                    Ok(())
                } else {
                    Err(cycles.join("\n"))
                }
            });
        tally.record("lint", "use-graph", graph);
    }

    if let Some(n) = args.smp {
        crate::qemu::set_smp_override(n);
    }
    let tests = systests::select(args.filter.as_deref());
    systests::validate(&tests)?;
    if tests.is_empty() {
        println!(
            "no system test matches {:?}",
            args.filter.as_deref().unwrap_or("")
        );
    } else {
        match prepare(ws) {
            Ok(ctx) => run_system_tests(&ctx, &tests, &mut tally),
            Err(e) => {
                // Without a kernel or QEMU every system test fails for the same reason.
                println!("system tests cannot run: {e}");
                for test in &tests {
                    tally.record("system", test.name, Err("not run".to_string()));
                }
            }
        }
    }

    let secs = started.elapsed().as_secs_f64();
    if !tally.failed.is_empty() {
        println!("\nfailed: {}", tally.failed.join(", "));
    }
    println!(
        "xtask test took {secs:.1} s; logs in {}",
        ws.logs_dir().display()
    );
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    Ok(if tally.failed.is_empty() { 0 } else { 1 })
}

/// Why `--smp n` did not reach a test's cxos machines, if it did not (a
/// test that pins `-smp n` itself ran with n CPUs all the same).
fn smp_not_applied(n: u16, used: &SmpUse) -> Option<String> {
    if used.own.iter().any(|own| *own != n.to_string()) {
        let own: Vec<&str> = used.own.iter().map(String::as_str).collect();
        Some(format!(
            "--smp {n} not applied: the test pins its own -smp {}",
            own.join(", ")
        ))
    } else if !used.cxos {
        Some(format!(
            "--smp {n} not applied: no cxos machine (Linux guests keep one CPU)"
        ))
    } else {
        None
    }
}

fn run_system_tests(ctx: &Context, tests: &[SystemTest], tally: &mut Tally) {
    let smp = crate::qemu::smp_override();
    let mut not_applied = Vec::new();
    for test in tests {
        let log = ctx.log_path(test);
        // A log left from an earlier run must not pass for this one's.
        let _ = std::fs::remove_file(&log);
        let _ = crate::qemu::take_smp_use();
        let result = (test.run)(ctx, test).map_err(|why| match std::fs::read_to_string(&log) {
            Ok(text) => format!(
                "{why}\n--- last {TAIL_LINES} lines of {} ---\n{}",
                log.display(),
                tail(&text, TAIL_LINES)
            ),
            Err(_) => format!("{why}\n(no log: QEMU was not started)"),
        });
        if let Some(n) = smp
            && let Some(why) = smp_not_applied(n, &crate::qemu::take_smp_use())
        {
            println!("    ({why})");
            not_applied.push(test.name);
        }
        tally.record("system", test.name, result);
    }
    if let Some(n) = smp {
        println!(
            "--smp {n}: {} of {} system tests ran their cxos machines with -smp {n}; not applied to: {}",
            tests.len() - not_applied.len(),
            tests.len(),
            if not_applied.is_empty() {
                "none".to_string()
            } else {
                not_applied.join(", ")
            }
        );
    }
}

/// Builds the kernel and makes sure every package the system tests use is there.
pub(crate) fn prepare(ws: &Workspace) -> Result<Context> {
    let mut packages = vec![provision::QEMU, provision::OVMF];
    packages.extend_from_slice(provision::IMAGE_TOOLS);
    provision::ensure(&packages)?;
    // The peer network of the network tests (namespace, TAP, dnsmasq,
    // stock ping/iperf3/tshark): installed when we may (root); otherwise
    // the tests that need them say why they cannot run.
    if let Err(e) = provision::ensure(provision::NETWORK_TOOLS) {
        println!("network tools: {e}");
    }
    let kernel = kernel::build(ws, Profile::Release)?;
    let qemu = Qemu::system()?;
    std::fs::create_dir_all(ws.logs_dir())
        .map_err(|e| XtaskError::msg(format!("cannot create {}: {e}", ws.logs_dir().display())))?;
    Ok(Context::new(ws.clone(), qemu, kernel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_and_names_failures() {
        let mut tally = Tally::default();
        tally.record("system", "a", Ok(()));
        tally.record("system", "b", Err("timed out".to_string()));
        tally.record("lint", "clippy", Ok(()));
        assert_eq!(tally.passed, 2);
        assert_eq!(tally.failed, ["system b"]);
    }

    #[test]
    fn names_tests_smp_did_not_reach() {
        let ran = SmpUse {
            cxos: true,
            own: Default::default(),
        };
        assert_eq!(smp_not_applied(2, &ran), None);
        let same = SmpUse {
            cxos: true,
            own: ["2".to_string()].into(),
        };
        assert_eq!(smp_not_applied(2, &same), None);
        assert!(smp_not_applied(4, &same).is_some());
        let pinned = SmpUse {
            cxos: true,
            own: ["4".to_string(), "3".to_string()].into(),
        };
        assert_eq!(
            smp_not_applied(2, &pinned).as_deref(),
            Some("--smp 2 not applied: the test pins its own -smp 3, 4")
        );
        let linux = SmpUse::default();
        assert_eq!(
            smp_not_applied(2, &linux).as_deref(),
            Some("--smp 2 not applied: no cxos machine (Linux guests keep one CPU)")
        );
    }
}
