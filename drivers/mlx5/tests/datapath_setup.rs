//! Data-path setup against mlx5-sim as it stands: the resources the port
//! data path takes from bring-up (inline mode resolved from each
//! personality's capabilities), Q counters, and a failed open undone
//! exactly (nothing leaked, no sanitizer violation), in both model modes.

mod common;

use mlx5::cmd::{Exec, op};
use mlx5::error::CmdFailure;
use mlx5::q_counter::{AllocQCounter, QueryQCounter, dealloc_q_counter};
use mlx5::wqe::InlineMode;
use mlx5::{Adapter, Error};
use mlx5::{EthConfig, QueueSet, Resources};
use mlx5_sim::Personality;
use mlx5_sim::faults::Fault;
use mlx5_sim::harness::{Mode, SimPlatform};

const MODES: [Mode; 2] = [Mode::Synchronous, Mode::Threaded];

fn attach(sim: &SimPlatform) -> Adapter<SimPlatform> {
    match Adapter::attach(sim.clone(), common::config()) {
        Ok(a) => a,
        Err(f) => panic!("attach failed: {}", f.error),
    }
}

fn detach_clean(a: Adapter<SimPlatform>, sim: &SimPlatform, dma_before: (usize, usize)) {
    let (_, rep) = a.detach();
    assert_eq!(rep.errors, 0, "{rep:?}");
    assert_eq!(sim.pages_held(), 0);
    assert_eq!(sim.dma_in_use(), dma_before, "all DMA memory freed");
    let v = sim.sanitizer_violations();
    assert!(v.is_empty(), "sanitizer violations: {v:?}");
}

#[test]
fn resources_follow_each_personality_inline_rule() {
    for pers in Personality::ALL {
        let sim = SimPlatform::new(pers, Mode::Synchronous);
        let before = sim.dma_in_use();
        let a = attach(&sim);
        let r = Resources::of(&a).expect("resources");
        let caps = pers.caps();
        let want = match caps.wqe_inline_mode {
            0 => InlineMode::L2,
            2 => InlineMode::None,
            _ if caps.vport_min_inline == 0 => InlineMode::None,
            _ => InlineMode::L2,
        };
        assert_eq!(r.inline, want, "{}", pers.name());
        assert_eq!(r.mac, a.mac());
        assert_eq!(Some(r.lkey), a.reserved_lkey());
        assert_eq!(r.eqn, a.comp_eqs()[0].0);
        detach_clean(a, &sim, before);
    }
}

#[test]
fn q_counters_allocate_query_and_free() {
    for mode in MODES {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let before = sim.dma_in_use();
        let mut a = attach(&sim);
        let id = Exec::exec(&mut a, &AllocQCounter).expect("alloc");
        let id2 = Exec::exec(&mut a, &AllocQCounter).expect("alloc 2");
        assert_ne!(id, id2);
        let q = Exec::exec(&mut a, &QueryQCounter { id, clear: true }).expect("query");
        assert_eq!(q.out_of_buffer, 0);
        Exec::exec(&mut a, &dealloc_q_counter(id2)).expect("dealloc");
        // Freeing it twice is the device's to refuse, with a typed error.
        let e = Exec::exec(&mut a, &dealloc_q_counter(id2)).unwrap_err();
        assert_eq!(e.opcode, op::DEALLOC_Q_COUNTER);
        assert!(matches!(e.failure, CmdFailure::Status { .. }), "{e}");
        Exec::exec(&mut a, &dealloc_q_counter(id)).expect("dealloc");
        detach_clean(a, &sim, before);
    }
}

#[test]
fn a_failed_open_is_undone_on_the_model() {
    for mode in MODES {
        let sim = SimPlatform::new(Personality::ConnectX6Dx, mode);
        let before = sim.dma_in_use();
        let a = attach(&sim);
        let r = Resources::of(&a).unwrap();
        let commands = sim.commands_executed();
        // The first CREATE_CQ fails: the Q counter allocated before it
        // must be freed and the CQ ring dropped.
        sim.inject(Fault::CommandStatus {
            opcode: op::CREATE_CQ,
            status: 0x05,
            syndrome: 0xc0ffee,
        });
        let f = QueueSet::open(a, r, EthConfig::default()).unwrap_err();
        match f.error {
            Error::Command(c) => {
                assert_eq!(c.opcode, op::CREATE_CQ);
                assert_eq!(
                    c.failure,
                    CmdFailure::Status {
                        status: 0x05,
                        syndrome: 0xc0ffee
                    }
                );
            }
            other => panic!("unexpected {other}"),
        }
        // ALLOC_Q_COUNTER, CREATE_CQ, DEALLOC_Q_COUNTER.
        assert_eq!(sim.commands_executed() - commands, 3);
        let mut a = f.control;
        // The freed counter set is free again: allocating succeeds.
        let id = Exec::exec(&mut a, &AllocQCounter).unwrap();
        Exec::exec(&mut a, &dealloc_q_counter(id)).unwrap();
        detach_clean(a, &sim, before);
    }
}
