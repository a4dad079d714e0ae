//! The `mlx5-sim` binary's wires, process against process: two models
//! joined by `--wire unix:PATH`, each driven by the mlx5 driver over a
//! vfio-user client, exchange frames both ways; one model leaves and a new
//! one takes its place on the same wire. And (root only) `--wire tap:` in a
//! namespace the test creates, with `--pcap`: a frame sent from the
//! namespace is in the capture and in the control socket's counters.
#![cfg(feature = "vfio")]

mod wires;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cxos_drivers::NetDevice;
use mlx5_sim::link::pcap;
use mlx5_sim::vfio::client::VfioPlatform;
use wires::*;

/// One `mlx5-sim` process with its sockets in `dir`.
struct Model {
    child: Child,
    socket: PathBuf,
    control: PathBuf,
}

impl Model {
    fn start(
        dir: &Path,
        tag: &str,
        personality: &str,
        extra: &[&str],
        netns: Option<&str>,
    ) -> Model {
        let socket = dir.join(format!("{tag}.sock"));
        let control = dir.join(format!("{tag}.ctl"));
        let bin = env!("CARGO_BIN_EXE_mlx5-sim");
        let mut c = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = c
            .arg("--socket")
            .arg(&socket)
            .args(["--personality", personality])
            .arg("--control")
            .arg(&control)
            .args(extra)
            .env("MLX5_SIM_LOG", "info")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("{tag}.log"))).unwrap())
            .spawn()
            .unwrap();
        let mut m = Model {
            child,
            socket,
            control,
        };
        eventually("the model's socket", || {
            assert!(m.child.try_wait().unwrap().is_none(), "mlx5-sim exited");
            m.socket.exists()
        });
        m
    }

    fn ask(&self, request: &str) -> Vec<String> {
        mlx5_sim::vfio::control::ask(&self.control, request, Some(PATIENCE)).unwrap()
    }

    /// The number after `word` in the `wire` reply line starting with `prefix`.
    fn wire(&self, prefix: &str, word: &str) -> u64 {
        let lines = self.ask("wire");
        let line = lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"));
        let mut w = line.split_whitespace();
        w.by_ref().find(|x| *x == word);
        w.next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    }

    fn connected(&self) -> bool {
        self.ask("wire")[0].contains(" connected yes ")
    }

    /// The client went away: the model exits by itself, with status 0.
    fn expect_clean_exit(mut self) {
        let mut status = None;
        eventually("the model to exit", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(status.unwrap().success(), "{status:?}");
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_model_processes_on_a_unix_wire_and_a_model_replaced() {
    let dir = temp_dir("vfio-wire");
    let wire = format!("unix:{}", dir.join("w").display());
    let a = Model::start(&dir, "a", "cx5", &["--wire", &wire], None);
    let b = Model::start(&dir, "b", "cx4lx", &["--wire", &wire], None);
    eventually("the wire", || a.connected() && b.connected());
    let pa = VfioPlatform::connect(&a.socket, &dir.join("a.ram")).unwrap();
    let pb = VfioPlatform::connect(&b.socket, &dir.join("b.ram")).unwrap();
    let mut da = open(pa);
    let mut db = open(pb);
    let (ma, mb) = (da.mac(), db.mac());
    let ab: Vec<Vec<u8>> = (0..30)
        .map(|i| frame(mb, ma, i, 60 + 40 * i as usize))
        .collect();
    let ba: Vec<Vec<u8>> = (0..10).map(|i| frame(ma, mb, 100 + i, 1514)).collect();
    send(&mut da, &ab);
    send(&mut db, &ba);
    assert_eq!(collect(&mut db, ab.len()), ab);
    assert_eq!(collect(&mut da, ba.len()), ba);
    // a's writer counts a frame after writing it: b may hold the last one
    // before it is counted.
    assert_eq!(settled(|| a.wire("wire tx", "frames"), |n| *n == 30), 30);
    assert_eq!(a.wire("wire rx", "frames"), 10);
    assert_eq!(b.wire("port rx", "delivered"), 30);
    let stats = a.ask("stats");
    assert!(
        stats.iter().any(|l| l == "wire tx 30 rx 10 connected yes"),
        "{stats:?}"
    );
    // A cable pulled at a is pulled at b: both ports go down, and up again.
    let link_of = |m: &Model| m.ask("stats").contains(&"link up".to_string());
    assert_eq!(a.ask("link down").last().unwrap(), "ok link down");
    eventually("b's link down", || !link_of(&b));
    assert_eq!(a.ask("link up").last().unwrap(), "ok link up");
    eventually("b's link up", || link_of(&b));
    assert_eq!(b.wire("wire unix:", "peer-carrier-changes"), 2);

    // b's VM goes away (its model exits with its client); a new model
    // takes its place on the same wire and traffic flows again.
    drop(close(db));
    b.expect_clean_exit();
    eventually("a to see b leave", || !a.connected());
    let b2 = Model::start(&dir, "b2", "cx6dx", &["--wire", &wire], None);
    eventually("the wire again", || a.connected() && b2.connected());
    assert_eq!(a.wire("wire unix:", "connects"), 2);
    let pb2 = VfioPlatform::connect(&b2.socket, &dir.join("b2.ram")).unwrap();
    // b2 moderates its receive CQ's events (1 ms, 64 CQEs): the 5 frames
    // never reach the count, so their event comes from the period, timed
    // by the server's model loop.
    let mut db2 = open_with(
        pb2,
        mlx5::EthConfig {
            cq_moderation: Some((1000, 64)),
            ..mlx5::EthConfig::default()
        },
    );
    let mb2 = db2.mac();
    let armed = db2.rx_cq().unwrap().armed;
    let again: Vec<Vec<u8>> = (0..5).map(|i| frame(mb2, ma, 200 + i, 300)).collect();
    send(&mut da, &again);
    assert_eq!(collect(&mut db2, again.len()), again);
    eventually("the moderated event", || {
        db2.poll();
        db2.rx_cq().unwrap().armed > armed
    });
    for m in [&a, &b2] {
        assert_eq!(m.ask("sanitizer").last().unwrap(), "ok 0 violations");
    }
    drop(close(da));
    drop(close(db2));
    a.expect_clean_exit();
    b2.expect_clean_exit();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_model_on_a_tap_in_a_namespace_captures_what_arrives() {
    let ns = match cxos_testnet::prepare("sim-bin-tap", &["ping"]) {
        Ok(ns) => ns,
        Err(skip) => return skip.report(),
    };
    let dir = temp_dir("vfio-tap");
    let cap = dir.join("wire.pcap");
    // The model creates the TAP in the namespace it runs in.
    let m = Model::start(
        &dir,
        "m",
        "cx5",
        &["--wire", "tap:cxtap0", "--pcap", cap.to_str().unwrap()],
        Some(ns.name()),
    );
    assert!(m.ask("wire")[0].starts_with("wire tap:cxtap0 connected yes"));
    ns.add_addr("cxtap0", "10.78.0.1/24").unwrap();
    ns.link_up("cxtap0").unwrap();
    let mac = ns.mac_of("cxtap0").unwrap();
    // Nobody answers: the ARP request is what matters.
    let _ = ns.run("ping", &["-n", "-c", "1", "-W", "1", "10.78.0.2"]);
    eventually("the frame at the port", || m.wire("wire rx", "frames") >= 1);
    assert!(m.wire("port rx", "frames") >= 1);
    let lines = m.ask("wire");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("pcap {} records", cap.display())))
    );
    let (_, records) = pcap::parse(&std::fs::read(&cap).unwrap()).unwrap();
    let hex: String = mac.split(':').collect();
    let arp = records.iter().find(|r| {
        r.data.len() >= 42
            && r.data[0..6] == [0xff; 6]
            && r.data[12..14] == [0x08, 0x06]
            && r.data[6..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                == hex
    });
    let arp = arp.expect("the namespace's ARP request in the capture");
    assert_eq!(arp.data[38..42], [10, 78, 0, 2]);
    // `link down` pulls the cable on the namespace's side too.
    let carrier = |want: bool| {
        eventually("the carrier", || {
            let l = ns.ip(&["link", "show", "dev", "cxtap0"]).unwrap();
            l.contains("NO-CARRIER") != want
        })
    };
    carrier(true);
    assert_eq!(m.ask("link down").last().unwrap(), "ok link down");
    carrier(false);
    assert_eq!(m.ask("link up").last().unwrap(), "ok link up");
    carrier(true);
    drop(m);
    drop(ns);
    std::fs::remove_dir_all(&dir).unwrap();
}
