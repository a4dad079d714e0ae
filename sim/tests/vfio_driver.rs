//! End to end through the vfio-user front end without QEMU: the mlx5 driver
//! runs over a `Platform` that is a vfio-user *client* (the `vfio_user`
//! crate's `Client`), talking over the socket to the server of
//! `mlx5_sim::vfio` exactly as QEMU would: BAR0 and config accesses are
//! REGION_READ/WRITE messages, driver memory is a shared file handed over
//! with DMA_MAP (at a bus address above 4 GiB), MSI-X vectors are fds given
//! with SET_IRQS. The control socket is checked along the way.
//!
//! No `unsafe`: guest memory is reached with pread/pwrite on the shared
//! file, which sees the server's MAP_SHARED writes through the page cache.
#![cfg(feature = "vfio")]
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cxos_drivers::Msix;
use mlx5::{Adapter, Config};
use mlx5_sim::Personality;
use mlx5_sim::vfio::client::{BAR0, VfioPlatform};
use mlx5_sim::vfio::{Options, serve};

/// The server on its own thread, as the `mlx5-sim` binary runs it.
struct Served {
    dir: PathBuf,
    control: PathBuf,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

fn start_server(name: &str, personality: Personality) -> (Served, VfioPlatform) {
    start_server_booting(name, personality, mlx5_sim::init_seg::DEFAULT_FW_BOOT_DELAY)
}

/// [`start_server`] whose firmware takes `fw_boot_delay` after each reset.
fn start_server_booting(
    name: &str,
    personality: Personality,
    fw_boot_delay: Duration,
) -> (Served, VfioPlatform) {
    let dir = std::env::temp_dir().join(format!("mlx5-sim-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let opts = Options {
        control: Some(dir.join("control.sock")),
        fw_boot_delay,
        ..Options::new(dir.join("vfio.sock"), personality)
    };
    let socket = opts.socket.clone();
    let control = dir.join("control.sock");
    let thread = std::thread::spawn(move || serve(&opts));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "server socket never appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let platform = VfioPlatform::connect(&socket, &dir.join("ram")).unwrap();
    (
        Served {
            dir,
            control,
            thread,
        },
        platform,
    )
}

impl Served {
    fn ask(&self, request: &str) -> Vec<String> {
        mlx5_sim::vfio::control::ask(&self.control, request, Some(Duration::from_secs(10))).unwrap()
    }

    fn stat(&self, key: &str, word: &str) -> u64 {
        let lines = self.ask("stats");
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in {lines:?}"));
        let mut words = line.split_whitespace().skip(1);
        if !word.is_empty() {
            words.by_ref().find(|w| *w == word);
        }
        words.next().unwrap().parse().unwrap()
    }

    /// The client went away: the server returns cleanly and removes its sockets.
    fn finish(self) {
        let result = self.thread.join().expect("server thread panicked");
        assert_eq!(result, Ok(()));
        assert!(!self.control.exists(), "control socket removed");
        assert!(
            !self.dir.join("vfio.sock").exists(),
            "vfio-user socket removed"
        );
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

fn config() -> Config {
    Config {
        comp_eqs: 2,
        ..Config::default()
    }
}

fn wait_link(a: &mut Adapter<VfioPlatform>, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.link_up() != up {
        a.poll().expect("poll");
        assert!(Instant::now() < deadline, "link never went {up}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_driver_attaches_and_detaches_over_vfio_user_on_every_personality() {
    for pers in Personality::ALL {
        let (served, platform) = start_server(pers.short_name(), pers);
        let mut a = match Adapter::attach(platform, config()) {
            Ok(a) => a,
            Err(f) => panic!("{}: attach failed: {}", pers.name(), f.error),
        };
        assert_eq!(a.part().id.device, pers.device_id());
        assert!(a.link_up(), "{}: link up", pers.name());
        assert!(a.stats().cmd_events > 0, "command completions came as EQEs");
        // The model's side: commands ran, vector 0 was signalled through its fd,
        // and the pages the driver gave are held.
        assert!(served.stat("commands", "") >= 15);
        assert!(served.stat("msix", "0") > 0);
        let held = format!("ok {} pages held", a.pages_held());
        assert_eq!(served.ask("pages"), [held]);
        assert!(served.stat("mmio", "writes") > 0);

        // Port events travel model -> EQE in guest memory -> MSI-X fd -> driver.
        assert_eq!(served.ask("link down"), ["ok link down"]);
        wait_link(&mut a, false);
        assert_eq!(served.ask("link up"), ["ok link up"]);
        wait_link(&mut a, true);

        let (platform, report) = a.detach();
        assert_eq!(report.errors, 0, "{report:?}");
        assert_eq!(report.pages_lost, 0);
        assert_eq!(served.ask("pages"), ["ok 0 pages held"]);
        assert_eq!(served.ask("sanitizer"), ["ok 0 violations"]);
        assert_eq!(platform.dma_live(), 0);
        drop(platform);
        served.finish();
    }
}

#[test]
fn a_device_reset_message_resets_the_model() {
    // Firmware boots for long enough after the reset that the guest's next
    // driver sees `initializing` set and must wait before writing the
    // command queue address (PRM start-up). Long enough that the look at
    // `initializing` below, two control-socket round trips after the
    // reset, comes inside it on a loaded machine too.
    let (served, platform) = start_server_booting(
        "reset",
        Personality::ConnectX6Dx,
        Duration::from_millis(2000),
    );
    let a = Adapter::attach(platform.clone(), config()).unwrap_or_else(|f| panic!("{}", f.error));
    assert!(a.pages_held() > 0);
    assert_eq!(served.stat("resets", ""), 0);
    // The guest reboots without detaching: QEMU sends DEVICE_RESET, and
    // the rebooted guest's driver starts from scratch.
    platform.reset_device().unwrap();
    // The old driver goes (dropped, it sees the device no longer knows
    // it, and frees its memory without a command).
    drop(a);
    assert_eq!(served.stat("resets", ""), 1);
    assert_eq!(
        served.ask("pages"),
        ["ok 0 pages held"],
        "pages dropped with the function"
    );
    let mut init = [0u8; 4];
    platform.read(BAR0, 0x1fc, &mut init);
    assert_eq!(
        init[0] & 0x80,
        0x80,
        "initializing is set again after reset"
    );
    platform.msix_disable();
    let a = Adapter::attach(platform, config()).unwrap_or_else(|f| panic!("{}", f.error));
    assert!(a.link_up());
    let (platform, report) = a.detach();
    assert_eq!(report.errors, 0, "{report:?}");
    assert_eq!(served.ask("pages"), ["ok 0 pages held"]);
    assert_eq!(served.ask("sanitizer"), ["ok 0 violations"]);
    drop(platform);
    served.finish();
}

#[test]
fn control_socket_faults_reach_the_driver() {
    let (served, platform) = start_server("fault", Personality::ConnectX5);
    // INIT_HCA (0x102) fails with bad parameter (0x3) during attach.
    assert_eq!(
        served.ask("fault status 0x102 0x3 0xabc"),
        ["ok armed CommandStatus { opcode: 258, status: 3, syndrome: 2748 }"]
    );
    let err = match Adapter::attach(platform, config()) {
        Ok(_) => panic!("attach succeeded despite the injected failure"),
        Err(f) => f,
    };
    let text = err.error.to_string();
    assert!(text.contains("0xabc"), "{text}");
    // The driver undid what it had done: every page back, nothing touched after.
    assert_eq!(served.ask("pages"), ["ok 0 pages held"]);
    assert_eq!(served.ask("sanitizer"), ["ok 0 violations"]);
    drop(err.platform);
    served.finish();
}

#[test]
fn page_requests_travel_over_vfio_user() {
    let (served, platform) = start_server("pages", Personality::ConnectX4Lx);
    let mut a = Adapter::attach(platform, config()).unwrap_or_else(|f| panic!("{}", f.error));
    let held = a.pages_held();
    assert_eq!(served.ask("pages request 16"), ["ok requested 16 pages"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.pages_held() != held + 16 {
        a.poll().expect("poll");
        assert!(
            Instant::now() < deadline,
            "the driver never gave the 16 pages"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        served.ask("pages"),
        [format!("ok {} pages held", held + 16)]
    );
    let (platform, report) = a.detach();
    assert_eq!(report.pages_lost, 0);
    assert_eq!(served.ask("pages"), ["ok 0 pages held"]);
    assert_eq!(served.ask("sanitizer"), ["ok 0 violations"]);
    drop(platform);
    served.finish();
}
