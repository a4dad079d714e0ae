//! Shared by the link tests: the mlx5 driver on any platform (the
//! in-process harness or the vfio-user client), raw test frames sent and
//! collected through it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use cxos_drivers::{Platform, TxError};
use mlx5::{Adapter, Config};
use mlx5::{EthConfig, QueueSet, Resources};

pub type Port<P> = QueueSet<Adapter<P>>;

/// The experimental ethertype of the test frames (IEEE 802 local experimental).
pub const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
/// How long anything in these tests may take on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn open<P: Platform>(p: P) -> Port<P> {
    open_with(p, EthConfig::default())
}

pub fn open_with<P: Platform>(p: P, eth: EthConfig) -> Port<P> {
    let cfg = Config {
        cmd_timeout_ms: Some(5_000),
        fw_init_timeout_ms: Some(5_000),
        ..Config::default()
    };
    let a = match Adapter::attach(p, cfg) {
        Ok(a) => a,
        Err(f) => panic!("attach failed: {}", f.error),
    };
    let r = Resources::of(&a).expect("resources");
    match QueueSet::open(a, r, eth) {
        Ok(p) => p,
        Err(f) => panic!("open failed: {}", f.error),
    }
}

/// Closes the port and detaches; no errors on either.
pub fn close<P: Platform>(port: Port<P>) -> P {
    let (a, rep) = port.close();
    assert_eq!(rep.errors, 0, "{rep:?}");
    let (p, drep) = a.detach();
    assert_eq!(drep.errors, 0, "{drep:?}");
    p
}

/// Test frame `seq` of `len` bytes from `src` to `dst`.
pub fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    b[12..14].copy_from_slice(&ETHERTYPE);
    b[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, x) in b[18..].iter_mut().enumerate() {
        *x = (i as u32 ^ seq) as u8;
    }
    b
}

/// Sends each of `frames` (waiting for room when the SQ is full).
pub fn send<P: Platform>(port: &mut Port<P>, frames: &[Vec<u8>]) {
    let deadline = Instant::now() + PATIENCE;
    for f in frames {
        loop {
            match port.transmit(f.len(), |buf| buf.copy_from_slice(f)) {
                Ok(()) => break,
                Err(TxError::Busy) => {
                    port.flush();
                    port.poll();
                    assert!(Instant::now() < deadline, "transmit stuck");
                    std::thread::yield_now();
                }
                Err(e) => panic!("transmit: {e}"),
            }
        }
    }
    port.flush();
    port.poll();
}

/// Collects frames of ETHERTYPE until `want` arrived (others are skipped).
pub fn collect<P: Platform>(port: &mut Port<P>, want: usize) -> Vec<Vec<u8>> {
    collect_matching(port, want, |f| f[12..14] == ETHERTYPE)
}

/// Collects frames for which `keep` holds until `want` arrived, polling
/// every other frame away.
pub fn collect_matching<P: Platform>(
    port: &mut Port<P>,
    want: usize,
    keep: impl Fn(&[u8]) -> bool,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < want {
        port.poll();
        let mut any = false;
        while let Some(f) = port.receive(|f, _| f.to_vec()) {
            any = true;
            if f.len() >= 14 && keep(&f) {
                got.push(f);
            }
        }
        port.flush();
        if !any {
            assert!(
                Instant::now() < deadline,
                "received {} of {want} frames",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

/// Runs `f` until it holds or PATIENCE passes.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `read()` once `done` holds for it, or its last value after PATIENCE:
/// for counts another thread updates just after the event the test saw
/// (the caller asserts on the value, which names what it read).
pub fn settled<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = read();
        if done(&v) || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A private temporary directory (removed first if it exists).
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mlx5-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
