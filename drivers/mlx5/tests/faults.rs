//! Failures injected at every bring-up command (error status, lost
//! completion), stuck firmware, and health failures mid-operation: each
//! yields the right typed error, a clean unwind, and a reusable device.

mod common;

use mlx5::cmd::op;
use mlx5::vport::QueryNicVportContext;
use mlx5::{Adapter, CmdFailure, Config, Error, FaultKind, HealthConfig, Step};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Fault, Mode, SimPlatform};

/// Every opcode attach issues, and the step that issues it first.
const BRING_UP: [(u16, Step); 15] = [
    (op::ENABLE_HCA, Step::EnableHca),
    (op::QUERY_ISSI, Step::Issi),
    (op::SET_ISSI, Step::Issi),
    (op::QUERY_PAGES, Step::BootPages),
    (op::MANAGE_PAGES, Step::BootPages),
    (op::QUERY_HCA_CAP, Step::QueryCaps),
    (op::SET_HCA_CAP, Step::SetCaps),
    (op::INIT_HCA, Step::InitHca),
    (op::ALLOC_UAR, Step::AllocUar),
    (op::CREATE_EQ, Step::CreateEq0),
    (op::ALLOC_PD, Step::AllocPd),
    (op::ALLOC_TRANSPORT_DOMAIN, Step::AllocTd),
    (op::QUERY_SPECIAL_CONTEXTS, Step::SpecialContexts),
    (op::QUERY_NIC_VPORT_CONTEXT, Step::Vport),
    (op::ACCESS_REGISTER, Step::PortRegisters),
];

fn check_unwound(sim: &SimPlatform, before: (usize, usize), what: &str) {
    assert_eq!(sim.dma_in_use(), before, "{what}: DMA leaked");
    assert_eq!(sim.pages_held(), 0, "{what}: pages left with the device");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "{what}: sanitizer: {v:?}");
}

/// After a failed attach the same function attaches and detaches cleanly.
fn check_reusable(sim: &SimPlatform, p: SimPlatform, before: (usize, usize), what: &str) {
    sim.clear_faults();
    let a = Adapter::attach(p, common::config())
        .unwrap_or_else(|f| panic!("{what}: re-attach failed: {}", f.error));
    let (_, r) = a.detach();
    assert_eq!(r.errors, 0, "{what}: {:?}", r.first_error);
    check_unwound(sim, before, what);
}

fn inject_each(
    make: impl Fn(u16) -> Fault,
    expect: impl Fn(CmdFailure) -> bool,
    mode: Mode,
    cfg: Config,
) {
    for (opcode, step) in BRING_UP {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let before = sim.dma_in_use();
        sim.inject(make(opcode));
        let what = format!("{} {:?}", mlx5::cmd::opcode_name(opcode), mode);
        let f = match Adapter::attach(sim.clone(), cfg) {
            Ok(_) => panic!("{what}: attach succeeded"),
            Err(f) => f,
        };
        assert_eq!(f.error.step, step, "{what}: {}", f.error);
        let c = f
            .error
            .error
            .command()
            .unwrap_or_else(|| panic!("{what}: not a command error: {}", f.error));
        assert_eq!(c.opcode, opcode, "{what}: {}", f.error);
        assert!(expect(c.failure), "{what}: {:?}", c.failure);
        // The message names the step and the command.
        let msg = f.error.to_string();
        assert!(msg.contains(step.name()) && msg.contains(mlx5::cmd::opcode_name(opcode)));
        check_unwound(&sim, before, &what);
        check_reusable(&sim, f.platform, before, &what);
    }
}

#[test]
fn error_status_at_each_bring_up_command() {
    inject_each(
        |opcode| Fault::CommandStatus {
            opcode,
            status: 0x03,
            syndrome: 0x1234_5678,
        },
        |f| {
            f == CmdFailure::Status {
                status: 0x03,
                syndrome: 0x1234_5678,
            }
        },
        Mode::Synchronous,
        common::config(),
    );
}

#[test]
fn lost_completion_at_each_bring_up_command() {
    inject_each(
        |opcode| Fault::CommandNoCompletion { opcode },
        |f| matches!(f, CmdFailure::Timeout { .. }),
        Mode::Synchronous,
        common::short_timeouts(),
    );
}

#[test]
fn error_status_threaded() {
    inject_each(
        |opcode| Fault::CommandStatus {
            opcode,
            status: 0x05,
            syndrome: 7,
        },
        |f| matches!(f, CmdFailure::Status { status: 0x05, .. }),
        Mode::Threaded,
        common::config(),
    );
}

/// SET_DRIVER_VERSION is optional: its failure is logged, not fatal.
#[test]
fn driver_version_failure_is_tolerated() {
    let sim = SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous);
    sim.inject(Fault::CommandStatus {
        opcode: op::SET_DRIVER_VERSION,
        status: 0x02,
        syndrome: 1,
    });
    let a = Adapter::attach(sim.clone(), common::config())
        .map_err(|f| f.error)
        .unwrap();
    a.detach();
    assert_eq!(sim.pages_held(), 0);
}

#[test]
fn firmware_stuck_initializing() {
    let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let before = sim.dma_in_use();
    sim.inject(Fault::InitializingStuck);
    let Err(f) = Adapter::attach(sim.clone(), common::short_timeouts()) else {
        panic!("attach must fail while firmware initializes");
    };
    assert_eq!(f.error.step, Step::WaitFirmware);
    assert!(matches!(f.error.error, Error::FirmwareTimeout { .. }));
    check_unwound(&sim, before, "initializing stuck");
    check_reusable(&sim, f.platform, before, "initializing stuck");
}

#[test]
fn health_syndrome_fails_the_adapter_and_commands_fail_fast() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let before = sim.dma_in_use();
        let mut a = Adapter::attach(sim.clone(), common::config())
            .map_err(|f| f.error)
            .unwrap();
        assert!(a.poll_health().is_ok());
        sim.inject(Fault::HealthSyndrome(0x08));
        let report = a.poll_health().expect_err("syndrome seen");
        assert_eq!(report.kind, FaultKind::Syndrome);
        assert_eq!(report.health.synd, 0x08);
        assert!(report.to_string().contains("hardware fatal error"));
        assert!(a.is_failed());
        let e = a.exec(&QueryNicVportContext).unwrap_err();
        assert_eq!(e.failure, CmdFailure::AdapterFailed);
        assert_eq!(a.poll().unwrap_err(), Error::AdapterFailed);
        assert!(a.summary().failed);
        let (_, r) = a.detach();
        assert!(r.errors > 0);
        assert_eq!(
            sim.dma_in_use(),
            before,
            "memory freed even for a dead device"
        );
    }
}

/// A command in flight when the device dies fails at once, long before its
/// (here one minute) timeout.
#[test]
fn pending_command_fails_when_health_fails() {
    let sim = SimPlatform::new(Personality::ConnectX6, Mode::Threaded);
    let before = sim.dma_in_use();
    let cfg = Config {
        cmd_timeout_ms: Some(60_000),
        ..common::config()
    };
    let mut a = Adapter::attach(sim.clone(), cfg)
        .map_err(|f| f.error)
        .unwrap();
    sim.inject(Fault::CommandNoCompletion {
        opcode: op::QUERY_NIC_VPORT_CONTEXT,
    });
    let t = a.submit(QueryNicVportContext).unwrap();
    sim.inject(Fault::HealthSyndrome(0x01));
    let e = a.wait(t).unwrap_err();
    assert_eq!(e.failure, CmdFailure::AdapterFailed);
    assert!(a.is_failed());
    let (_, r) = a.detach();
    assert!(r.reset, "lost command and dead device: function reset");
    check_unwound(&sim, before, "pending command");
}

#[test]
fn stuck_health_counter_fails_the_adapter() {
    let sim = SimPlatform::new(Personality::ConnectX4, Mode::Synchronous);
    let before = sim.dma_in_use();
    let cfg = Config {
        health: HealthConfig {
            poll_interval_ms: 5,
            max_misses: 3,
        },
        ..common::config()
    };
    let mut a = Adapter::attach(sim.clone(), cfg)
        .map_err(|f| f.error)
        .unwrap();
    // Healthy: the counter moves between polls.
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(6));
        assert!(a.poll_health().is_ok());
    }
    sim.inject(Fault::HealthCounterStops);
    let mut fault = None;
    assert!(common::eventually(|| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        match a.poll_health() {
            Ok(()) => false,
            Err(r) => {
                fault = Some(r);
                true
            }
        }
    }));
    assert!(matches!(
        fault.unwrap().kind,
        FaultKind::CounterStuck { misses: 3, .. }
    ));
    assert_eq!(
        a.exec(&QueryNicVportContext).unwrap_err().failure,
        CmdFailure::AdapterFailed
    );
    let (_, r) = a.detach();
    assert!(r.reset);
    check_unwound(&sim, before, "stuck counter");
}

/// Lost completions with the model on its own thread: the slot is
/// abandoned, the unwind resets the function while the model thread runs,
/// and the function comes back. (2 s timeout: a live command completes in
/// microseconds even on a loaded machine.)
#[test]
fn lost_completion_threaded() {
    for (opcode, step) in [
        (op::QUERY_HCA_CAP, Step::QueryCaps),
        (op::CREATE_EQ, Step::CreateEq0),
    ] {
        let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Threaded);
        let before = sim.dma_in_use();
        sim.inject(Fault::CommandNoCompletion { opcode });
        let cfg = Config {
            cmd_timeout_ms: Some(2_000),
            ..common::config()
        };
        let Err(f) = Adapter::attach(sim.clone(), cfg) else {
            panic!("attach must fail");
        };
        assert_eq!(f.error.step, step);
        let c = f.error.error.command().copied().expect("command error");
        assert_eq!(c.opcode, opcode);
        assert!(matches!(c.failure, CmdFailure::Timeout { .. }));
        check_unwound(&sim, before, "threaded lost completion");
        check_reusable(&sim, f.platform, before, "threaded lost completion");
    }
}
