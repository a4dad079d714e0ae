//! Over the TAP wire (root only; otherwise a visible `skipped:` line):
//! stock `ping` (IPv4 and IPv6) in a network namespace the test creates
//! answers from the in-process stack (driver + model + smoltcp), and
//! cxos's ping gets the namespace's Linux stack to answer.

mod common;

use std::process::Stdio;

use common::TapNode;
use cxos_net::app::{App, AppStatus};
use cxos_net::ping::Ping;

const PEER: &str = "10.77.0.1/24";
const PEER6: &str = "fd00:77::1/64";
const CXOS: &str = "10.77.0.2/24,ip6=fd00:77::2/64";

/// Run a stock command in the namespace while polling the stack; its
/// output and whether it succeeded.
fn run_stock(t: &mut TapNode, program: &str, args: &[&str]) -> (bool, String) {
    let mut child =
        t.ns.command(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let start = std::time::Instant::now();
    let status = loop {
        if !t.poll() {
            t.idle(None);
        }
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{program} hangs"
        );
    };
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (status.success(), text)
}

#[test]
fn stock_ping_reaches_the_in_process_stack_and_back() {
    let mut t = match TapNode::new("netping", &["ping"], PEER, CXOS) {
        Ok(t) => t,
        Err(skip) => return skip.report(),
    };
    // No duplicate address detection: the address is usable at once.
    t.ns.ip(&[
        "-6",
        "addr",
        "add",
        PEER6,
        "dev",
        &t.ifname.clone(),
        "nodad",
    ])
    .expect("IPv6 address on the TAP");

    let (ok, out) = run_stock(
        &mut t,
        "ping",
        &["-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"],
    );
    assert!(ok, "stock ping (IPv4) failed:\n{out}");
    assert!(
        out.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{out}"
    );
    assert!(out.contains("ttl=64"), "{out}");

    let (ok, out) = run_stock(
        &mut t,
        "ping",
        &["-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00:77::2"],
    );
    assert!(ok, "stock ping (IPv6) failed:\n{out}");
    assert!(
        out.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{out}"
    );

    // The other way: cxos's ping, Linux answers.
    for target in ["10.77.0.1", "fd00:77::1"] {
        let now = t.now();
        let cfg = format!("{target} -c 3 -i 0.2").parse().unwrap();
        let mut ping = Ping::new(&mut t.node.net, cfg, now).unwrap();
        let mut out = String::new();
        let v = loop {
            let progress = t.poll();
            let now = t.now();
            if let AppStatus::Done(v) = ping.poll(&mut t.node.net, now, &mut out) {
                break v;
            }
            if !progress {
                let at = App::<common::Port>::poll_at(&ping, now);
                t.idle(at);
            }
            assert!(
                now < cxos_net::smoltcp::time::Instant::from_secs(60),
                "{out}"
            );
        };
        assert!(v.ok, "cxos ping {target}:\n{out}");
        assert!(
            out.contains(&format!("64 bytes from {target}: icmp_seq=3 ttl=64 time=")),
            "{out}"
        );
    }
    let st = t.node.net.stats().phy;
    assert_eq!(st.rx_malformed + st.rx_bad_checksum, 0, "{st:?}");
    t.close();
}
