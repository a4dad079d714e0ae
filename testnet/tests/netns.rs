//! The namespaces themselves (root only; skipped with a visible line
//! otherwise): two namespaces joined by a veth pair ping each other, stock
//! tools start and answer inside, and everything is gone afterwards — after
//! a normal drop, a panic, and the death of the process that made it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cxos_testnet::{Capture, Netns, prepare, unique_ifname};

fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn gone(name: &str, dir: &Path) {
    assert!(
        !namespaces().iter().any(|n| n == name),
        "{name} still exists"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
}

/// Two namespaces with a veth pair between them, addressed 10.99.0.1/.2
/// and fd99::1/::2.
fn joined(tools: &[&str]) -> Option<(Netns, Netns, String, String)> {
    let a = match prepare("veth-a", tools) {
        Ok(ns) => ns,
        Err(skip) => {
            skip.report();
            return None;
        }
    };
    let b = Netns::new("veth-b").unwrap();
    let (va, vb) = (unique_ifname("vea"), unique_ifname("veb"));
    a.add_veth(&va, &b, &vb).unwrap();
    a.add_addr(&va, "10.99.0.1/24").unwrap();
    b.add_addr(&vb, "10.99.0.2/24").unwrap();
    a.add_addr(&va, "fd99::1/64").unwrap();
    b.add_addr(&vb, "fd99::2/64").unwrap();
    a.link_up(&va).unwrap();
    b.link_up(&vb).unwrap();
    Some((a, b, va, vb))
}

#[test]
fn veth_namespaces_ping_each_other_and_vanish() {
    let Some((a, b, va, vb)) = joined(&["ping"]) else {
        return;
    };
    let out = a.ping("10.99.0.2", 2).unwrap();
    assert!(out.contains("2 received"), "{out}");
    let out = b.ping("fd99::1", 1).unwrap();
    assert!(out.contains("1 received"), "{out}");
    // b learned a's MAC by ARP.
    assert_eq!(b.neighbour("10.99.0.1"), Some(a.mac_of(&va).unwrap()));
    // The interfaces are not in our own namespace.
    let here = Command::new("ip").args(["link"]).output().unwrap();
    let here = String::from_utf8_lossy(&here.stdout);
    assert!(!here.contains(&va) && !here.contains(&vb));
    let (na, da) = (a.name().to_string(), a.dir().to_path_buf());
    let (nb, db) = (b.name().to_string(), b.dir().to_path_buf());
    drop(a);
    drop(b);
    gone(&na, &da);
    gone(&nb, &db);
}

#[test]
fn processes_in_it_are_killed_and_a_panic_still_cleans_up() {
    let ns = match prepare("panic", &[]) {
        Ok(ns) => ns,
        Err(skip) => return skip.report(),
    };
    let (name, dir) = (ns.name().to_string(), ns.dir().to_path_buf());
    let mut sleeper = ns.command("sleep");
    sleeper.arg("1000");
    let pid = ns.spawn("sleep", sleeper).unwrap();
    // Started without spawn(): found by `ip netns pids` at cleanup.
    let stray = ns.command("sleep").arg("1001").spawn().unwrap();
    let stray_pid = stray.id();
    assert!(PathBuf::from(format!("/proc/{pid}")).exists());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _ns = ns;
        panic!("a test fails while holding the namespace");
    }));
    assert!(result.is_err());
    gone(&name, &dir);
    // What the tools logged is kept.
    let kept = std::env::temp_dir().join("cxos-netns-logs").join(&name);
    assert!(kept.join("sleep.log").exists());
    std::fs::remove_dir_all(&kept).unwrap();
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists());
    // The stray was killed (reaped here: it is our child).
    let mut stray = stray;
    let status = stray.wait().unwrap();
    assert!(!status.success(), "stray pid {stray_pid} ended {status}");
}

#[test]
fn a_killed_test_process_leaves_nothing_behind() {
    if std::env::var_os("CXOS_TESTNET_CHILD").is_some() {
        // The child: make a namespace and die without dropping it.
        let ns = Netns::new("orphan").unwrap();
        println!("NETNS {} {}", ns.name(), ns.dir().display());
        std::process::exit(0);
    }
    if let Err(skip) = prepare("orphan-parent", &[]).map(drop) {
        return skip.report();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_test_process_leaves_nothing_behind",
            "--nocapture",
        ])
        .env("CXOS_TESTNET_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("NETNS "))
        .unwrap_or_else(|| panic!("child said {text}"));
    let (name, dir) = line.split_once(' ').unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while namespaces().iter().any(|n| n == name) || PathBuf::from(dir).exists() {
        assert!(Instant::now() < deadline, "the watchdog left {name}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stock_iperf3_dnsmasq_and_tshark_run_inside() {
    let Some((a, b, va, vb)) = joined(&["ping", "iperf3", "dnsmasq", "tshark"]) else {
        return;
    };
    let cap = b.start_tshark(&vb, "vb").unwrap();
    a.start_iperf3_server(5201).unwrap();
    a.start_dnsmasq(&va, "10.99.0.50", "10.99.0.60", "255.255.255.0", 120)
        .unwrap();
    let json = b
        .run("iperf3", &["-c", "10.99.0.1", "-n", "1M", "--json"])
        .unwrap();
    assert!(json.contains("\"sum_received\""), "{json}");
    b.ping("10.99.0.1", 1).unwrap();
    let file = cap.stop().unwrap();
    let echo = Capture::read(&file, "icmp.type == 8", &["ip.src", "ip.dst"]).unwrap();
    assert_eq!(
        echo,
        vec![vec!["10.99.0.2".to_string(), "10.99.0.1".to_string()]]
    );
    let syn = Capture::read(
        &file,
        "tcp.flags.syn == 1 && tcp.dstport == 5201",
        &["ip.dst"],
    )
    .unwrap();
    assert!(!syn.is_empty(), "no iperf3 connection in the capture");
    assert!(
        a.log("dnsmasq")
            .contains("DHCP, IP range 10.99.0.50 -- 10.99.0.60")
    );
    assert!(a.exited("dnsmasq").is_none() && a.exited("iperf3-5201").is_none());
}

#[test]
fn dnsmasq_leases_an_address_to_a_dhcp_client() {
    let Some((a, b, va, vb)) = joined(&["dnsmasq", "busybox"]) else {
        return;
    };
    a.start_dnsmasq(&va, "10.99.0.50", "10.99.0.60", "255.255.255.0", 120)
        .unwrap();
    // One lease, then quit (-n: fail if none, -q: quit once bound); the
    // default script is absent, so udhcpc only reports the lease.
    b.run(
        "busybox",
        &[
            "udhcpc",
            "-i",
            &vb,
            "-n",
            "-q",
            "-f",
            "-t",
            "5",
            "-s",
            "/bin/true",
        ],
    )
    .unwrap();
    let mac = b.mac_of(&vb).unwrap();
    let leases = a.dhcp_leases();
    let lease = leases
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(mac.as_str()))
        .unwrap_or_else(|| panic!("no lease for {mac}: {leases:?}"));
    let ip = lease.split_whitespace().nth(2).unwrap();
    assert!(ip.starts_with("10.99.0."), "{lease}");
    assert!(
        a.log("dnsmasq")
            .contains(&format!("DHCPACK({va}) {ip} {mac}"))
    );
}
