//! Commands without blocking: `Adapter::submit` + `Adapter::poll_command`
//! (pending, done with the output, done with a typed error carrying
//! opcode, status and syndrome, timed out), completions in any order, and
//! `Nic::exec_with` (the caller's idle work runs between polls, without
//! the control-plane lock) against the model.

mod common;

use mlx5::caps::{CapMode, CapType, QueryHcaCap};
use mlx5::cmd::op;
use mlx5::fault::FaultClass;
use mlx5::vport::QueryNicVportContext;
use mlx5::{Adapter, CmdFailure, CmdPoll, Config};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Fault, Mode, SimPlatform};

/// Poll `t` until it is done (bounded by the command timeout the adapter
/// enforces; `common::eventually` bounds the test itself). Returns the
/// outcome and how many polls found it pending.
fn poll_done<C: mlx5::cmd::Command>(
    a: &mut Adapter<SimPlatform>,
    t: mlx5::Ticket<C>,
) -> (Result<C::Output, mlx5::CmdError>, usize) {
    let mut t = Some(t);
    let mut out = None;
    let mut pending = 0;
    assert!(common::eventually(|| {
        match a.poll_command(t.take().expect("ticket")) {
            CmdPoll::Pending(next) => {
                pending += 1;
                t = Some(next);
                false
            }
            CmdPoll::Done(r) => {
                out = Some(r);
                true
            }
        }
    }));
    (out.expect("done"), pending)
}

fn caps() -> QueryHcaCap {
    QueryHcaCap {
        kind: CapType::General,
        mode: CapMode::Current,
    }
}

/// A lost command stays pending while a later one completes and is
/// collected first; then the lost one times out (typed, recorded), its
/// slot is retired and the next command works.
#[test]
fn out_of_order_completion_and_timeout() {
    for (mode, cfg) in [
        (Mode::Synchronous, common::short_timeouts()),
        (
            Mode::Threaded,
            Config {
                cmd_timeout_ms: Some(2_000),
                ..common::config()
            },
        ),
    ] {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let before = sim.dma_in_use();
        let mut a = Adapter::attach(sim.clone(), cfg)
            .map_err(|f| f.error)
            .unwrap();
        let timeouts = a.stats().timeouts;
        sim.inject(Fault::CommandNoCompletion {
            opcode: op::QUERY_NIC_VPORT_CONTEXT,
        });
        let lost = a.submit(QueryNicVportContext).unwrap();
        let later = a.submit(caps()).unwrap();
        assert_ne!(lost.slot(), later.slot());
        let (r, _) = poll_done(&mut a, later);
        let general = r.expect("the later command completes first");
        assert_eq!(general.len(), 0x1000, "the capability page");
        // Still out: one look says so without blocking.
        let lost = match a.poll_command(lost) {
            CmdPoll::Pending(t) => t,
            CmdPoll::Done(r) => panic!("lost command done: {r:?}"),
        };
        let (r, pending) = poll_done(&mut a, lost);
        assert!(pending > 0);
        let e = r.expect_err("lost");
        assert_eq!(e.opcode, op::QUERY_NIC_VPORT_CONTEXT);
        assert!(matches!(e.failure, CmdFailure::Timeout { .. }), "{e}");
        assert_eq!(a.stats().timeouts, timeouts + 1);
        let rec = a.faults().records().last().copied().expect("a record");
        assert_eq!(rec.class, FaultClass::CmdTimeout);
        assert!(a.exec(&QueryNicVportContext).is_ok(), "next command");
        let (_, r) = a.detach();
        assert!(r.reset, "a lost command: function reset at detach");
        assert_eq!(sim.dma_in_use(), before);
    }
}

/// A failing command is done with its opcode, status and syndrome.
#[test]
fn status_and_syndrome_through_poll() {
    let sim = SimPlatform::new(Personality::ConnectX6, Mode::Synchronous);
    let mut a = Adapter::attach(sim.clone(), common::short_timeouts())
        .map_err(|f| f.error)
        .unwrap();
    sim.inject(Fault::CommandStatus {
        opcode: op::QUERY_HCA_CAP,
        status: 0x05,
        syndrome: 0x1234_5678,
    });
    let t = a.submit(caps()).unwrap();
    let (r, _) = poll_done(&mut a, t);
    let e = r.expect_err("status");
    assert_eq!(e.opcode, op::QUERY_HCA_CAP);
    assert_eq!(
        e.failure,
        CmdFailure::Status {
            status: 0x05,
            syndrome: 0x1234_5678
        }
    );
    let (_, r) = a.detach();
    assert!(!r.reset);
}

/// `Nic::exec_with`: the idle work runs between polls with the lock free
/// (it can use the Nic: another command completes meanwhile), and a lost
/// command ends in the typed timeout.
#[test]
fn exec_with_runs_idle_work_unlocked() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let a = Adapter::attach(sim.clone(), common::short_timeouts())
        .unwrap_or_else(|f| panic!("attach failed: {}", f.error));
    let r = mlx5::Resources::of(&a).expect("resources");
    let nic = mlx5::vnic::Nic::new(a, r, mlx5::vnic::NicConfig::default())
        .unwrap_or_else(|f| panic!("Nic::new failed: {}", f.error));
    // A live command: done at the first look, no idle call needed.
    let mut idle = 0;
    let out = nic.exec_with(caps(), || idle += 1).expect("caps");
    assert_eq!((out.len(), idle), (0x1000, 0));
    // A lost one: idle runs (and issues its own command) until timeout.
    sim.inject(Fault::CommandNoCompletion {
        opcode: op::QUERY_NIC_VPORT_CONTEXT,
    });
    let mut idle = 0;
    let mut inner_ok = 0;
    let e = nic
        .exec_with(QueryNicVportContext, || {
            idle += 1;
            if nic.with_adapter(|a| a.exec(&caps())).is_ok() {
                inner_ok += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        })
        .expect_err("lost");
    assert_eq!(e.opcode, op::QUERY_NIC_VPORT_CONTEXT);
    assert!(matches!(e.failure, CmdFailure::Timeout { .. }), "{e}");
    assert!(
        idle > 0 && inner_ok == idle,
        "idle {idle}, inner {inner_ok}"
    );
    let (a, _) = nic.close().expect("no VNICs");
    let (_, r) = a.detach();
    assert!(r.reset);
}

/// The shell's reports that query the device, run with `exec_with`
/// (`Nic::flow_traffic_with`, `Nic::flows_report_with`): the same answers
/// as the blocking ones; a lost query lets the idle work run until its
/// typed timeout, and only that query fails.
#[test]
fn reports_with_idle_work() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let a = Adapter::attach(sim.clone(), common::short_timeouts())
        .unwrap_or_else(|f| panic!("attach failed: {}", f.error));
    let r = mlx5::Resources::of(&a).expect("resources");
    let nic = mlx5::vnic::Nic::new(a, r, mlx5::vnic::NicConfig::default())
        .unwrap_or_else(|f| panic!("Nic::new failed: {}", f.error));
    let v = nic.create(mlx5::vnic::VnicSpec::default()).expect("vnic");
    let report = nic.flows_report_with(|| {});
    assert!(!report.checks.is_empty());
    assert_eq!(report, nic.flows_report());
    assert!(report.checks.iter().all(|c| c.matches()), "{report:?}");
    let t = nic.flow_traffic_with(v.id(), || {}).expect("counter");
    assert_eq!(t, v.flow_traffic().expect("counter"));

    sim.inject(Fault::CommandNoCompletion {
        opcode: op::QUERY_FLOW_COUNTER,
    });
    let mut idle = 0;
    let e = nic
        .flow_traffic_with(v.id(), || {
            idle += 1;
            std::thread::sleep(std::time::Duration::from_millis(1));
        })
        .expect_err("lost");
    assert!(idle > 0);
    assert!(format!("{e}").contains("QUERY_FLOW_COUNTER"), "{e}");

    sim.inject(Fault::CommandNoCompletion {
        opcode: op::QUERY_FLOW_TABLE_ENTRY,
    });
    let mut idle = 0;
    let lost = nic.flows_report_with(|| {
        idle += 1;
        std::thread::sleep(std::time::Duration::from_millis(1));
    });
    assert!(idle > 0);
    assert_eq!(lost.checks.len(), report.checks.len());
    let failed: Vec<_> = lost.checks.iter().filter(|c| c.hw.is_err()).collect();
    assert_eq!(failed.len(), 1, "{lost:?}");
    let e = failed[0].hw.as_ref().unwrap_err();
    assert_eq!(e.opcode, op::QUERY_FLOW_TABLE_ENTRY);
    assert!(matches!(e.failure, CmdFailure::Timeout { .. }), "{e}");
    assert_eq!(
        nic.flows_report_with(|| {}),
        report,
        "the next queries work"
    );

    let rep = v.destroy();
    assert_eq!(rep.errors, 0, "{rep:?}");
    let (a, _) = nic.close().expect("no VNICs");
    let (_, r) = a.detach();
    assert!(r.reset, "lost commands: function reset at detach");
}
