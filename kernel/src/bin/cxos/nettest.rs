//! The command line's `test=<app>:<args>[+...]` (feature `net`): wait
//! until net0 is ready, run each app to its end, detach every adapter,
//! print the tally and leave QEMU with the verdict (the format the system
//! tests read).

use alloc::format;

use cxos_kernel::apps::AppCommand;
use cxos_kernel::cmdline::TestApp;
use cxos_kernel::shellcmd::Report;
use cxos_net::app::Verdict;

use crate::netstack::{self, Owner};
use crate::{arch, drivers, print, println, runtime, time};

/// The interface the tests wait for.
const TEST_INTERFACE: &str = "net0";

/// How long `test=` waits for net0 (link up, DHCP lease when asked for).
const READY_TIMEOUT_NS: u64 = 30_000_000_000;

/// Run `apps` one after the other; never returns.
pub fn run(apps: &[TestApp]) -> ! {
    let (mut passed, mut failed) = (0u32, 0u32);
    let start = time::now_ns();
    let deadline = start.saturating_add(READY_TIMEOUT_NS);
    while !netstack::ready(TEST_INTERFACE) && time::now_ns() < deadline {
        runtime::wake_at(deadline);
        runtime::run_once();
    }
    let status = netstack::status_lines()
        .into_iter()
        .next()
        .unwrap_or_else(|| "no interface".into());
    if netstack::ready(TEST_INTERFACE) {
        println!(
            "test: {TEST_INTERFACE} ready after {} ms: {status}",
            (time::now_ns() - start) / 1_000_000
        );
        for t in apps {
            let what = if t.args.is_empty() {
                t.app.clone()
            } else {
                format!("{} {}", t.app, t.args)
            };
            println!("test: {what}");
            let started = AppCommand::parse(&t.app, &t.args)
                .and_then(|cmd| netstack::start_app(&cmd, Owner::Test));
            let verdict = match started {
                Err(e) => Verdict::fail(e),
                Ok(id) => loop {
                    if let Some(v) = netstack::take_result(id) {
                        break v;
                    }
                    runtime::run_once();
                },
            };
            if verdict.ok {
                passed += 1;
                println!("test: {what} ... ok: {}", verdict.summary);
            } else {
                failed += 1;
                println!("test: {what} ... FAILED: {}", verdict.summary);
                break;
            }
        }
    } else {
        failed += 1;
        println!(
            "test: {TEST_INTERFACE} not ready after {} s: {status}",
            READY_TIMEOUT_NS / 1_000_000_000
        );
    }
    // The adapters' own counters (packets, drops, faults) for the record.
    if let Ok(report) = drivers::port_report(Report::Stats, None) {
        print!("{report}");
    }
    for line in drivers::detach_all() {
        println!("{line}");
    }
    println!("test: {passed} passed, {failed} failed");
    arch::exit(if failed == 0 {
        arch::EXIT_PASS
    } else {
        arch::EXIT_FAIL
    })
}
