//! cxos iperf3 against stock iperf3 (root only): the model's port is wired
//! to a TAP device in a namespace the test creates; stock `iperf3 -c` runs
//! there against the cxos server (TCP with and without -R, UDP), and the
//! cxos client runs against stock `iperf3 -s`. Verdicts come from stock
//! iperf3's `--json` output. Skipped with a visible line when not root.

mod common;

use common::TapNode;
use cxos_net::iperf3::{
    ClientPoll, Iperf3Args, Iperf3Client, Iperf3Report, Iperf3Server, ServerConfig, ServerPoll,
};
use serde_json::Value;

const PEER: &str = "10.77.0.1";
const CXOS: &str = "10.77.0.2";
const PEER6: &str = "fd77::1";
const CXOS6: &str = "fd77::2";
/// Real time any one run may take (a 2 s test, setup and the exchange).
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(40);

fn tap_node(tag: &str) -> Option<TapNode> {
    match TapNode::new(
        tag,
        &["iperf3"],
        &format!("{PEER}/24"),
        &format!("{CXOS}/24,ip6={CXOS6}/64"),
    ) {
        Ok(t) => Some(t),
        Err(skip) => {
            skip.report();
            None
        }
    }
}

/// The JSON document stock iperf3 printed to the log `log`.
fn stock_json(t: &TapNode, log: &str) -> Value {
    let text = t.ns.log(log);
    let start = text
        .find('{')
        .unwrap_or_else(|| panic!("no JSON from {log}:\n{text}"));
    serde_json::from_str(&text[start..])
        .unwrap_or_else(|e| panic!("{log}: bad JSON ({e}):\n{text}"))
}

fn no_error(j: &Value, what: &str) {
    assert!(
        j.get("error").is_none(),
        "{what}: stock iperf3 reports {}",
        j["error"]
    );
}

#[test]
fn stock_iperf3_client_against_cxos_server() {
    let Some(mut t) = tap_node("iperf3-s") else {
        return;
    };
    let mut out = String::new();
    let mut srv =
        Iperf3Server::start(ServerConfig::default(), &mut t.node.net.sockets, &mut out).unwrap();
    t.ns.add_addr(&t.ifname, &format!("{PEER6}/64")).unwrap();
    let runs: [(&str, &str, &[&str]); 8] = [
        ("tcp", CXOS, &["-t", "2"]),
        ("tcp-reverse", CXOS, &["-t", "2", "-R"]),
        ("tcp-parallel", CXOS, &["-t", "2", "-P", "2"]),
        ("udp", CXOS, &["-t", "2", "-u", "-b", "20M"]),
        ("udp-reverse", CXOS, &["-t", "2", "-u", "-R", "-b", "10M"]),
        ("tcp-ipv6", CXOS6, &["-t", "2"]),
        // The test ends by volume: the client decides, the server follows.
        ("tcp-bytes", CXOS, &["-n", "40M"]),
        (
            "udp-parallel",
            CXOS,
            &["-t", "2", "-u", "-b", "5M", "-P", "2"],
        ),
    ];
    for (log, addr, extra) in runs {
        let mut c = t.ns.command("iperf3");
        c.args(["-c", addr, "--json"]).args(extra);
        t.ns.spawn(log, c).unwrap();
        let deadline = std::time::Instant::now() + RUN_LIMIT;
        let mut result: Option<Result<Iperf3Report, _>> = None;
        while t.ns.exited(log).is_none() || result.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "{log} did not finish:\n{}\ncxos:\n{out}",
                t.ns.log(log)
            );
            let progress = t.poll();
            let now = t.now();
            if let ServerPoll::Finished(r) = srv.poll(&mut t.node.net.sockets, now, &mut out) {
                result = Some(r);
            }
            if !progress {
                t.idle(srv.poll_at(now));
            }
        }
        let status = t.ns.exited(log).unwrap();
        assert!(
            status.success(),
            "stock iperf3 {log} failed ({status}):\n{}\ncxos:\n{out}",
            t.ns.log(log)
        );
        let j = stock_json(&t, log);
        no_error(&j, log);
        let end = &j["end"];
        if extra.contains(&"-u") {
            // 3.12 leaves a receiver's "sum" bytes at 0; its counts are in "sum_received".
            let sum = if extra.contains(&"-R") {
                &end["sum_received"]
            } else {
                &end["sum"]
            };
            assert!(sum["bytes"].as_u64().unwrap() > 0, "{log}: {end}");
            assert!(sum["packets"].as_u64().unwrap() > 0, "{log}: {end}");
            assert!(sum["jitter_ms"].as_f64().is_some(), "{log}: {end}");
            eprintln!(
                "{log}: {} datagrams, {} lost",
                sum["packets"], sum["lost_packets"]
            );
        } else {
            let rx = end["sum_received"]["bits_per_second"].as_f64().unwrap();
            let tx = end["sum_sent"]["bits_per_second"].as_f64().unwrap();
            assert!(rx > 0.0 && tx > 0.0, "{log}: {end}");
            assert!(end["sum_received"]["bytes"].as_u64().unwrap() > 0);
            if extra.contains(&"-n") {
                let sent = end["sum_sent"]["bytes"].as_u64().unwrap();
                assert!(sent >= 40 << 20, "{log}: sent {sent}");
            }
            eprintln!(
                "{log}: stock iperf3 measured {:.1} Mbit/s received",
                rx / 1e6
            );
        }
        let r = result
            .unwrap()
            .unwrap_or_else(|e| panic!("cxos server: {e}\n{out}"));
        assert!(r.received_bytes > 0, "{r:?}");
        assert_eq!(r.reverse, extra.contains(&"-R"));
        assert_eq!(r.streams, if extra.contains(&"-P") { 2 } else { 1 });
    }
    assert_eq!(srv.tests_finished(), 8);
    assert!(out.contains("Accepted connection from fd77::1"), "{out}");
    assert!(out.contains("Accepted connection from 10.77.0.1"), "{out}");
    t.close();
}

/// Starts stock `iperf3 -s -1 --json -p port` (log `log`) and waits until it listens.
fn stock_server(t: &TapNode, log: &str, port: u16) {
    let mut c = t.ns.command("iperf3");
    c.args(["-s", "-1", "--json", "-p", &port.to_string()]);
    t.ns.spawn(log, c).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let filter = format!("sport = :{port}");
    loop {
        let listening = t.ns.run("ss", &["-Hltn", &filter]).unwrap_or_default();
        if !listening.trim().is_empty() {
            return;
        }
        assert!(
            t.ns.exited(log).is_none(),
            "stock server exited:\n{}",
            t.ns.log(log)
        );
        assert!(
            std::time::Instant::now() < deadline,
            "stock server not listening"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn cxos_client_against_stock_iperf3_server() {
    let Some(mut t) = tap_node("iperf3-c") else {
        return;
    };
    t.ns.add_addr(&t.ifname, &format!("{PEER6}/64")).unwrap();
    let runs = [
        ("tcp", PEER, 5202u16, "-t 2"),
        ("tcp-reverse", PEER, 5203, "-t 2 -R"),
        ("udp", PEER, 5204, "-t 2 -u -b 10M"),
        ("udp-reverse", PEER, 5205, "-t 2 -u -R -b 10M"),
        ("tcp-parallel", PEER, 5206, "-t 2 -P 2"),
        ("tcp-ipv6", PEER6, 5207, "-t 2"),
        ("udp-parallel", PEER, 5208, "-t 2 -u -b 5M -P 2"),
    ];
    for (log, addr, port, args) in runs {
        stock_server(&t, log, port);
        let Iperf3Args::Client(cfg) = format!("-c {addr} -p {port} {args}").parse().unwrap() else {
            unreachable!()
        };
        let mut out = String::new();
        let now = t.now();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mut c = Iperf3Client::start(
            cfg,
            &mut t.node.net.iface,
            &mut t.node.net.sockets,
            now,
            seed,
            &mut out,
        );
        let deadline = std::time::Instant::now() + RUN_LIMIT;
        let report = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "{log}: cxos client did not finish:\n{out}"
            );
            let progress = t.poll();
            let now = t.now();
            if let ClientPoll::Done(r) = c.poll(
                &mut t.node.net.iface,
                &mut t.node.net.sockets,
                now,
                &mut out,
            ) {
                break r.unwrap_or_else(|e| panic!("{log}: {e}\n{out}\nstock:\n{}", t.ns.log(log)));
            }
            if !progress {
                t.idle(c.poll_at(now));
            }
        };
        // The stock server exits after its one test; keep the stack answering meanwhile.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while t.ns.exited(log).is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "stock server did not exit:\n{}",
                t.ns.log(log)
            );
            if !t.poll() {
                t.idle(None);
            }
        }
        let j = stock_json(&t, log);
        no_error(&j, log);
        let end = &j["end"];
        if args.contains("-u") && report.reverse {
            let tx = &end["sum_sent"];
            assert!(tx["bytes"].as_u64().unwrap() > 0, "{log}: {end}");
            assert_eq!(
                report.sent_bytes,
                tx["bytes"].as_u64().unwrap(),
                "{log}\n{out}"
            );
            assert!(
                report.received_bytes > 0 && report.packets > 0,
                "{report:?}"
            );
        } else if args.contains("-u") {
            // A receiving 3.12 server puts its counts in "sum_received" ("sum" has 0 bytes).
            let rx = &end["sum_received"];
            assert!(rx["bytes"].as_u64().unwrap() > 0, "{log}: {end}");
            assert!(rx["packets"].as_u64().unwrap() > 0, "{log}: {end}");
            assert_eq!(
                rx["lost_packets"].as_u64(),
                Some(report.lost_packets),
                "{log}: {end}"
            );
            assert_eq!(
                report.received_bytes,
                rx["bytes"].as_u64().unwrap(),
                "{log}\n{out}"
            );
            assert!(report.packets > 0);
        } else {
            // The stock server's own count is the one cxos printed for it.
            if report.reverse {
                let sent = end["sum_sent"]["bytes"].as_u64().unwrap();
                assert!(sent > 0, "{log}: {end}");
                assert_eq!(report.sent_bytes, sent, "{log}\n{out}");
            } else {
                let got = end["sum_received"]["bytes"].as_u64().unwrap();
                assert!(got > 0, "{log}: {end}");
                assert_eq!(report.received_bytes, got, "{log}\n{out}");
            }
        }
        let streams = j["start"]["test_start"]["num_streams"].as_u64().unwrap();
        assert_eq!(streams, u64::from(report.streams));
        assert_eq!(
            j["start"]["test_start"]["reverse"].as_u64().unwrap() == 1,
            report.reverse
        );
        eprintln!(
            "{log}: cxos client {:.1} Mbit/s",
            report.receiver_bits_per_second / 1e6
        );
    }
    t.close();
}
