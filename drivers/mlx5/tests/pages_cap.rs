//! A device that keeps asking for pages: twenty page requests of 65 536
//! pages each (what took 93 % of a 512 MiB guest before the cap). The
//! driver gives pages up to its total cap, refuses the rest (MANAGE_PAGES
//! "allocation fail"), counts it, and keeps working; detach takes every
//! page back.

mod common;

use mlx5::{Adapter, Config, Error};
use mlx5_sim::Personality;
use mlx5_sim::harness::{Mode, SimPlatform};

#[test]
fn page_requests_beyond_the_total_cap_are_refused_and_the_adapter_keeps_working() {
    for mode in [Mode::Synchronous, Mode::Threaded] {
        let sim = SimPlatform::new(Personality::ConnectX5, mode);
        let dma_start = sim.dma_in_use();
        let cap = 3000;
        let cfg = Config {
            max_total_pages: cap,
            ..common::config()
        };
        let mut a = Adapter::attach(sim.clone(), cfg).unwrap_or_else(|f| panic!("{}", f.error));
        let at_attach = a.pages_held();
        assert!(at_attach > 0 && at_attach < cap as usize);
        for _ in 0..20 {
            sim.request_pages(65536);
            assert!(common::eventually(|| {
                let _ = a.poll();
                a.stats().page_events > 0 && a.stats().page_cap_refusals > 0
            }));
        }
        assert!(common::eventually(|| {
            let _ = a.poll();
            a.stats().page_events == 20
        }));
        let s = a.stats();
        assert_eq!(
            a.pages_held(),
            cap as usize,
            "{mode:?}: filled up to the cap"
        );
        assert_eq!(sim.pages_held(), cap as usize, "{mode:?}: the model agrees");
        assert_eq!(s.page_cap_refusals, 20, "{mode:?}: {s:?}");
        assert_eq!(
            s.pages_refused,
            20 * 65536 - (cap as u64 - at_attach as u64),
            "{mode:?}: every page beyond the cap refused"
        );
        let r = a.report();
        assert_eq!((r.pages.cap, r.pages.refused), (cap, s.pages_refused));
        // Still working: commands run, the port reads.
        assert!(!a.is_failed());
        a.refresh_port().expect("a command after the storm");
        // An offer to give pages back larger than what the device holds.
        sim.request_pages(-100_000);
        assert!(common::eventually(|| {
            let _ = a.poll();
            a.stats().page_events == 21
        }));
        let (_, d) = a.detach();
        assert_eq!((d.errors, d.pages_lost), (0, 0), "{mode:?}: {d:?}");
        assert_eq!(sim.pages_held(), 0);
        assert_eq!(sim.dma_in_use(), dma_start);
        assert!(sim.sanitizer_violations().is_empty());
    }
}

#[test]
fn a_boot_request_beyond_the_cap_fails_attach_with_a_typed_error() {
    let sim = SimPlatform::new(Personality::ConnectX4, Mode::Synchronous);
    let dma_start = sim.dma_in_use();
    let cfg = Config {
        max_total_pages: 4,
        ..common::config()
    };
    let f = Adapter::attach(sim.clone(), cfg).expect_err("4 pages are not enough");
    assert_eq!(f.error.step, mlx5::Step::BootPages);
    assert!(
        matches!(
            f.error.error,
            Error::Device(mlx5::error::DeviceError::PageCap { cap: 4, .. })
        ),
        "{}",
        f.error
    );
    assert!(
        f.error.to_string().contains("cap of 4 pages"),
        "{}",
        f.error
    );
    assert_eq!(sim.dma_in_use(), dma_start);
    assert_eq!(sim.pages_held(), 0);
}
