//! Multi-command sequences that wait cooperatively (issue 17's command
//! timeout): with the model told to drop one command (`Fault::
//! CommandNoCompletion`), a port sequence (`traninfo`'s module read), a
//! VNIC's MTU change and a VNIC's creation wait without holding the
//! adapter: the idle work runs between two looks, and in it another
//! adapter answers commands, another VNIC's queue receives frames and the
//! waiting adapter itself answers other commands. The lost command ends in
//! the typed timeout (opcode, `CmdFailure::Timeout`), recorded as
//! `mlx5.cmd.timeout`, and the adapter works afterwards. The same for a
//! function reset's bring-up (`ResetStart::finish` with idle work: the
//! FLR's wait and every command's), for the port-state read after an
//! EQ0 port event and for the MANAGE_PAGES of a page request
//! (`Nic::poll_with`, page requests deferred to it).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cxos_drivers::NetDevice;
use mlx5::cmd::op;
use mlx5::error::{CmdError, Error};
use mlx5::fault::FaultClass;
use mlx5::flow::FlowError;
use mlx5::module::PortError;
use mlx5::vnic::{Nic, NicConfig, Vnic, VnicError, VnicSpec};
use mlx5::vport::QueryNicVportContext;
use mlx5::{Adapter, CmdFailure};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Fault, Mode, SimPlatform};

type A = Adapter<SimPlatform>;

fn open(sim: &SimPlatform) -> Nic<A> {
    let a = Adapter::attach(sim.clone(), common::short_timeouts())
        .unwrap_or_else(|f| panic!("attach failed: {}", f.error));
    let r = mlx5::Resources::of(&a).expect("resources");
    // Cyclic receive queues: an MTU change rebuffers them (MODIFY_RQ).
    let d = NicConfig::default();
    let cfg = NicConfig {
        eth: mlx5::EthConfig {
            rq_kind: mlx5::RqChoice::Cyclic,
            ..d.eth
        },
        ..d
    };
    Nic::new(a, r, cfg).unwrap_or_else(|f| panic!("Nic::new failed: {}", f.error))
}

/// A frame to `dst` from a peer; the payload names it.
fn frame(dst: [u8; 6], seq: u16) -> Vec<u8> {
    let mut f = vec![0u8; 80];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0xee, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..16].copy_from_slice(&seq.to_be_bytes());
    f
}

/// One frame from the wire to `v`: received (its queue makes progress).
fn one_frame(sim: &SimPlatform, v: &mut Vnic<A>, seq: u16) -> bool {
    sim.inject_rx(&frame(v.mac().0, seq));
    v.poll();
    let mut got = false;
    while v.receive(|_, _| ()).is_some() {
        got = true;
    }
    v.flush();
    got
}

/// The timeout of the dropped `opcode`, typed.
fn assert_timeout(e: &CmdError, opcode: u16) {
    assert_eq!(e.opcode, opcode, "{e}");
    assert!(matches!(e.failure, CmdFailure::Timeout { .. }), "{e}");
}

fn assert_recorded(nic: &Nic<A>, opcode: u16) {
    let rec = nic
        .with_adapter(|a| a.faults().records().last().copied())
        .expect("a fault record");
    assert_eq!(rec.class, FaultClass::CmdTimeout);
    assert!(
        format!("{rec}").contains(&format!("opcode={opcode:#x}")),
        "{rec}"
    );
}

fn close(nic: Nic<A>, sim: &SimPlatform) {
    // The idle work may hold handles of the Nic.
    nic.set_idle(Box::new(|| ()));
    let (a, _) = nic.close().expect("no VNIC left");
    let (_, r) = a.detach();
    assert!(r.reset || r.errors == 0, "{r:?}");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}

/// `traninfo`'s module read (PMAOS, then paged MCIA reads) with its first
/// MCIA read dropped: while it waits, another adapter reads its module
/// and its VNIC receives, and the waiting adapter answers commands; then
/// the typed timeout, and the same read works.
#[test]
fn lost_module_read_holds_neither_its_adapter_nor_another() {
    let (sa, sb) = (
        SimPlatform::new(Personality::ConnectX5, Mode::Synchronous),
        SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous),
    );
    let (na, nb) = (open(&sa), open(&sb));
    let mut vb = nb.create(VnicSpec::default()).expect("vnic on B");
    let want = na.with_adapter(|a| a.read_module()).expect("module");
    assert_eq!(na.read_module_with(|| ()).expect("module"), want);
    let b_image = nb.with_adapter(|a| a.read_module()).expect("module B");

    assert!(na.module_state_with(|| ()).is_ok());
    // The first MCIA read (an ACCESS_REGISTER) is lost.
    sa.inject(Fault::CommandNoCompletion {
        opcode: op::ACCESS_REGISTER,
    });
    let (mut looks, mut b_reads, mut b_frames, mut a_cmds) = (0, 0, 0, 0);
    let r = na.read_module_with(|| {
        looks += 1;
        if nb.read_module_with(|| ()).as_ref() == Ok(&b_image) {
            b_reads += 1;
        }
        if one_frame(&sb, &mut vb, looks as u16) {
            b_frames += 1;
        }
        if na.with_adapter(|a| a.exec(&QueryNicVportContext)).is_ok() {
            a_cmds += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    });
    match r {
        Err(PortError::Adapter(Error::Command(e))) => assert_timeout(&e, op::ACCESS_REGISTER),
        other => panic!("want the typed timeout, got {other:?}"),
    }
    assert!(looks > 0);
    assert_eq!((b_reads, b_frames, a_cmds), (looks, looks, looks));
    assert_recorded(&na, op::ACCESS_REGISTER);
    // Usable afterwards: the same image, through either path.
    assert_eq!(na.read_module_with(|| ()).expect("module after"), want);
    assert_eq!(na.with_adapter(|a| a.read_module()).expect("module"), want);

    // The LED, speed and PMTU sequences take the same path.
    sa.inject(Fault::CommandNoCompletion {
        opcode: op::ACCESS_REGISTER,
    });
    let mut looks = 0;
    let e = na
        .set_port_mtu_with(3000, || {
            looks += 1;
            std::thread::sleep(Duration::from_millis(1));
        })
        .expect_err("lost PMTU write");
    assert!(looks > 0);
    assert!(
        matches!(&e, PortError::Adapter(Error::Command(c)) if c.opcode == op::ACCESS_REGISTER),
        "{e}"
    );
    assert_eq!(na.set_port_mtu_with(3000, || ()).expect("PMTU"), 3022);
    assert_eq!(na.with_adapter(|a| a.port().oper_mtu), 3022);

    vb.destroy();
    close(na, &sa);
    close(nb, &sb);
}

/// What the idle work of a `Nic` saw: looks, frames another VNIC
/// received, another steering change refused as busy.
#[derive(Default)]
struct Seen {
    looks: AtomicUsize,
    frames: AtomicUsize,
    busy: AtomicUsize,
}

/// Give `nic` idle work that feeds a frame to `other` and receives it at
/// every look (another queue of the same adapter making progress), and
/// tries a steering change on it.
fn watch(nic: &Nic<A>, sim: &SimPlatform, other: &Arc<Mutex<Vnic<A>>>) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let (s, sim, other) = (seen.clone(), sim.clone(), other.clone());
    nic.set_idle(Box::new(move || {
        let n = s.looks.fetch_add(1, Ordering::Relaxed) + 1;
        let mut v = other.lock().unwrap();
        if one_frame(&sim, &mut v, n as u16) {
            s.frames.fetch_add(1, Ordering::Relaxed);
        }
        if v.add_multicast([0x01, 0, 0x5e, 0, 0, 7]) == Err(cxos_drivers::FilterError::Device) {
            s.busy.fetch_add(1, Ordering::Relaxed);
        }
        drop(v);
        std::thread::sleep(Duration::from_millis(1));
    }));
    seen
}

/// A VNIC's MTU change (RQ RDY -> RST -> RDY with new buffers) with its
/// MODIFY_RQ dropped: meanwhile another VNIC of the same adapter keeps
/// receiving; then the typed timeout, and the MTU change and traffic work.
#[test]
fn lost_mtu_command_leaves_other_queues_running() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let nic = open(&sim);
    let mut v1 = nic.create(VnicSpec::default()).expect("vnic 1");
    let v2 = Arc::new(Mutex::new(nic.create(VnicSpec::default()).expect("vnic 2")));
    let seen = watch(&nic, &sim, &v2);
    sim.inject(Fault::CommandNoCompletion {
        opcode: op::MODIFY_RQ,
    });
    let e = v1.queue_set_mut().set_mtu(3000, 3000).expect_err("lost");
    match &e {
        Error::Command(c) => assert_timeout(c, op::MODIFY_RQ),
        other => panic!("want the typed timeout, got {other}"),
    }
    let looks = seen.looks.load(Ordering::Relaxed);
    assert!(looks > 0);
    assert_eq!(seen.frames.load(Ordering::Relaxed), looks);
    assert_recorded(&nic, op::MODIFY_RQ);
    // Usable afterwards: the change goes through, both VNICs receive.
    v1.queue_set_mut().set_mtu(3000, 3000).expect("MTU");
    assert_eq!(v1.mtu(), 3000);
    assert!(one_frame(&sim, &mut v1, 1));
    assert!(one_frame(&sim, &mut v2.lock().unwrap(), 2));
    nic.set_idle(Box::new(|| ()));
    v1.destroy();
    let v2 = Arc::try_unwrap(v2)
        .unwrap_or_else(|_| panic!("one handle"))
        .into_inner()
        .unwrap();
    v2.destroy();
    close(nic, &sim);
}

/// A VNIC's creation with its flow rule's SET_FLOW_TABLE_ENTRY dropped:
/// meanwhile another VNIC keeps receiving and its own steering change is
/// refused as busy (typed, not a wait on a held lock); then the typed
/// timeout with everything undone, and the same VNIC is created.
#[test]
fn lost_vnic_create_command_leaves_the_adapter_usable() {
    let sim = SimPlatform::new(Personality::ConnectX6Dx, Mode::Synchronous);
    let nic = open(&sim);
    let v2 = Arc::new(Mutex::new(nic.create(VnicSpec::default()).expect("vnic")));
    let count = nic.count();
    let seen = watch(&nic, &sim, &v2);
    let spec = VnicSpec {
        mac: Some(mlx5::Mac([0x02, 0, 0, 0, 0x11, 0x22])),
        ..VnicSpec::default()
    };
    sim.inject(Fault::CommandNoCompletion {
        opcode: op::SET_FLOW_TABLE_ENTRY,
    });
    match nic.create(spec) {
        Err(VnicError::Flow(FlowError::Command(c))) => assert_timeout(&c, op::SET_FLOW_TABLE_ENTRY),
        other => panic!("want the typed timeout, got {other:?}"),
    }
    let looks = seen.looks.load(Ordering::Relaxed);
    assert!(looks > 0);
    assert_eq!(seen.frames.load(Ordering::Relaxed), looks);
    assert_eq!(seen.busy.load(Ordering::Relaxed), looks, "steering busy");
    assert_recorded(&nic, op::SET_FLOW_TABLE_ENTRY);
    assert_eq!(nic.count(), count, "undone");
    nic.set_idle(Box::new(|| ()));
    let mut v = nic.create(spec).expect("created after");
    assert!(one_frame(&sim, &mut v, 1));
    assert!(nic.flows_report().checks.iter().all(|c| c.matches()));
    v.destroy();
    let v2 = Arc::try_unwrap(v2)
        .unwrap_or_else(|_| panic!("one handle"))
        .into_inner()
        .unwrap();
    v2.destroy();
    close(nic, &sim);
}

/// A function reset's bring-up with its SET_DRIVER_VERSION lost (the
/// bring-up goes on without it): the idle work runs through the FLR's
/// wait and every wait of the bring-up, another adapter's VNIC receiving
/// at each look; the new adapter records the typed timeout, keeps the
/// function's fault history, and works once its idle work is taken away.
#[test]
fn lost_bring_up_command_in_a_function_reset_waits_with_the_idle_work() {
    let (sa, sb) = (
        SimPlatform::new(Personality::ConnectX5, Mode::Synchronous),
        SimPlatform::new(Personality::ConnectX4Lx, Mode::Synchronous),
    );
    let mut a = Adapter::attach(sa.clone(), common::short_timeouts())
        .unwrap_or_else(|f| panic!("attach failed: {}", f.error));
    let nb = open(&sb);
    let vb = Arc::new(Mutex::new(
        nb.create(VnicSpec::default()).expect("vnic on B"),
    ));
    let start = a.begin_reset().unwrap_or_else(|e| panic!("{e}"));
    assert!(a.is_failed(), "the old adapter is a failed shell");
    sa.inject(Fault::CommandNoCompletion {
        opcode: op::SET_DRIVER_VERSION,
    });
    let seen = Arc::new(Seen::default());
    let (s, sim, other) = (seen.clone(), sb.clone(), vb.clone());
    let idle = Box::new(move || {
        let n = s.looks.fetch_add(1, Ordering::Relaxed) + 1;
        if one_frame(&sim, &mut other.lock().unwrap(), n as u16) {
            s.frames.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(1));
    });
    let (mut new, report) = start.finish(Some(idle)).unwrap_or_else(|e| panic!("{e}"));
    let looks = seen.looks.load(Ordering::Relaxed);
    // The FLR's 100 ms and the lost command's 300 ms, a look a
    // millisecond or so.
    assert!(looks >= 100, "{looks} looks");
    assert_eq!(seen.frames.load(Ordering::Relaxed), looks);
    assert!(report.took_ns >= 400_000_000, "{report:?}");
    let timeouts: Vec<_> = new
        .faults()
        .records()
        .filter(|r| r.class == FaultClass::CmdTimeout)
        .copied()
        .collect();
    assert_eq!(timeouts.len(), 1, "{timeouts:?}");
    assert!(format!("{}", timeouts[0]).contains("opcode=0x10d"));
    assert_eq!(
        new.faults().count(FaultClass::Health),
        1,
        "the reset's record"
    );
    drop(a);
    assert!(
        new.set_idle(None).is_some(),
        "the idle work stays until taken"
    );
    new.exec(&QueryNicVportContext)
        .expect("the new adapter works");
    let before = seen.looks.load(Ordering::Relaxed);
    new.exec(&QueryNicVportContext).expect("again");
    assert_eq!(seen.looks.load(Ordering::Relaxed), before, "taken away");
    let (_, r) = new.detach();
    assert_eq!(r.pages_lost, 0, "{r:?}");
    let vb = Arc::try_unwrap(vb)
        .unwrap_or_else(|_| panic!("one handle"))
        .into_inner()
        .unwrap();
    vb.destroy();
    close(nb, &sb);
    assert!(sa.sanitizer_violations().is_empty());
}

/// EQ0's port event with the port-state read after it lost: `poll_with`
/// runs the idle work while the read waits (the adapter answers other
/// commands meanwhile), returns the typed timeout; the next event reads
/// the port and the link state follows.
#[test]
fn lost_port_state_read_after_a_port_event_waits_with_the_idle_work() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let nic = open(&sim);
    assert!(nic.with_adapter(|a| a.link_up()));
    sim.set_link(false);
    sim.inject(Fault::CommandNoCompletion {
        opcode: op::ACCESS_REGISTER,
    });
    let (mut looks, mut cmds) = (0, 0);
    let r = nic.poll_with(|| {
        looks += 1;
        if nic.with_adapter(|a| a.exec(&QueryNicVportContext)).is_ok() {
            cmds += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    });
    match r {
        Err(Error::Command(e)) => assert_timeout(&e, op::ACCESS_REGISTER),
        other => panic!("want the typed timeout, got {other:?}"),
    }
    assert!(looks > 0);
    assert_eq!(cmds, looks);
    assert_recorded(&nic, op::ACCESS_REGISTER);
    sim.set_link(true);
    sim.set_link(false);
    let events = nic.poll_with(|| ()).expect("events");
    assert!(!events.is_empty());
    assert!(!nic.with_adapter(|a| a.link_up()), "link down read");
    sim.set_link(true);
    nic.poll_with(|| ()).expect("events");
    assert!(nic.with_adapter(|a| a.link_up()), "link up read");
    close(nic, &sim);
}

/// A page request (the model's page-request EQE) with page requests left
/// to the owner's EQ0 service: a command completing does not serve it
/// (its lock held); `poll_with` does, and with its MANAGE_PAGES lost the
/// idle work runs (the adapter answering other commands) until the typed
/// timeout is recorded; the next request is served.
#[test]
fn lost_manage_pages_in_eq0_service_waits_with_the_idle_work() {
    let sim = SimPlatform::new(Personality::ConnectX5, Mode::Synchronous);
    let nic = open(&sim);
    nic.with_adapter(|a| a.defer_page_requests(true));
    let held = nic.with_adapter(|a| a.pages_held());
    sim.request_pages(8);
    nic.with_adapter(|a| a.exec(&QueryNicVportContext))
        .expect("a command meanwhile");
    assert_eq!(nic.with_adapter(|a| a.pages_held()), held, "deferred");
    nic.poll_with(|| ()).expect("served");
    assert_eq!(nic.with_adapter(|a| a.pages_held()), held + 8);

    sim.request_pages(8);
    sim.inject(Fault::CommandNoCompletion {
        opcode: op::MANAGE_PAGES,
    });
    let (mut looks, mut cmds) = (0, 0);
    nic.poll_with(|| {
        looks += 1;
        if nic.with_adapter(|a| a.exec(&QueryNicVportContext)).is_ok() {
            cmds += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    })
    .expect("events");
    assert!(looks > 0);
    assert_eq!(cmds, looks);
    assert_recorded(&nic, op::MANAGE_PAGES);
    // Pages a lost give may have reached the device are kept.
    let kept = nic.with_adapter(|a| a.pages_held());
    assert_eq!(kept, held + 16);
    sim.request_pages(4);
    nic.poll_with(|| ()).expect("served after");
    assert_eq!(nic.with_adapter(|a| a.pages_held()), kept + 4);
    close(nic, &sim);
}
