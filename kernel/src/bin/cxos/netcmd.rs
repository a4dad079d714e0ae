//! The shell's network commands (feature `net`): interfaces and the apps
//! of [`crate::netstack`].

use alloc::string::String;

use crate::netstack::{self, Owner};
use crate::{println, vnics};

/// Their part of `help`.
pub const HELP: &str =
    "  ifconfig              interfaces: MAC, link, addresses, counters (also: ip)
  ifconfig net<i> <cfg> set an interface: dhcp | none | 10.0.0.2/24[,gw=10.0.0.1][,ip6=fd00::2/64]
  ping [-I net<i>] <addr> [-c N] [-i s] [-W s] [-s bytes]   ICMP echo (IPv4 or IPv6); Ctrl-C stops
  l2send <mac> <n>      send n raw test frames (ethertype 0x88b5)
  l2recv [n] [-W s]     receive raw test frames
  iperf3 -s | -c <addr> [-R] [-P n] [-t s] [-u -b rate]   iperf3-compatible test; Ctrl-C stops
  serve echo|discard|iperf3 [args]   start a background service (serve: list them)
  serve stop <id>       stop a background service
  vnic create <def>     new VNIC vnic<N>: mac:<mac|auto>,vlan:<id>,ip:<dhcp|none|a.b.c.d/nn>[,gw=..],queues:<n>
  vnic delete <N>       destroy vnic<N> (its flow entries and queues)
  vnic list             the VNIC definitions
  vnics                 every interface's VNIC: MAC, VLAN, queues, addresses, counters, flow counter
  (apps take -I vnic<N> like -I net<i>; ifconfig vnic<N> <cfg> reconfigures one)";

/// Run `line` if it is a network command: `Some(Some(id))` when it left
/// app `id` running in the foreground, `Some(None)` when it is done,
/// `None` when it is not a network command.
pub fn execute(line: &str) -> Option<Option<u32>> {
    let (cmd, arg) = line
        .split_once(' ')
        .map_or((line, ""), |(c, a)| (c, a.trim()));
    match cmd {
        "ifconfig" | "ip" => {
            ifconfig(cmd, arg);
            Some(None)
        }
        _ if netstack::APPS.contains(&cmd) => match netstack::start_app(cmd, arg, Owner::Shell) {
            Ok(id) => Some(Some(id)),
            Err(e) => {
                // Some apps' messages already name themselves.
                let prefix = alloc::format!("{cmd}: ");
                println!("{cmd}: {}", e.strip_prefix(prefix.as_str()).unwrap_or(&e));
                Some(None)
            }
        },
        "serve" => {
            serve(arg);
            Some(None)
        }
        "vnic" => {
            let (sub, rest) = arg.split_once(' ').unwrap_or((arg, ""));
            match sub {
                "create" => vnics::shell_create(rest.trim()),
                "delete" => vnics::shell_delete(rest.trim()),
                "list" if rest.trim().is_empty() => vnics::shell_list(),
                _ => println!("usage: vnic create <def> | vnic delete <N> | vnic list"),
            }
            Some(None)
        }
        "vnics" => {
            let lines = crate::mlx5nic::vnic_lines();
            if lines.is_empty() {
                println!("vnics: no interfaces");
            }
            for l in lines {
                println!("{l}");
            }
            Some(None)
        }
        _ => None,
    }
}

fn ifconfig(cmd: &str, arg: &str) {
    if arg.is_empty() {
        let lines = netstack::status_lines();
        if lines.is_empty() {
            println!("{cmd}: no interfaces");
        }
        for l in lines {
            println!("{l}");
        }
        return;
    }
    let (name, cfg) = arg.split_once(' ').unwrap_or((arg, ""));
    if let Some(n) = name
        .strip_prefix("vnic")
        .and_then(|n| n.parse::<u32>().ok())
        && !cfg.trim().is_empty()
    {
        match cfg.trim().parse::<cxos_net::config::IfConfig>() {
            Err(e) => println!("{cmd}: {e}"),
            Ok(c) => match vnics::reconfigure(n, &c) {
                Some(line) => println!("{line}"),
                None => println!("{cmd}: no vnic{n}"),
            },
        }
        return;
    }
    let index = name
        .strip_prefix("net")
        .and_then(|n| n.parse::<usize>().ok());
    match (index, cfg.trim()) {
        (Some(i), cfg) if !cfg.is_empty() && i < cxos_kernel::cmdline::MAX_INTERFACES => {
            match netstack::reconfigure(i, cfg) {
                Ok(line) => println!("{line}"),
                Err(e) => println!("{cmd}: {e}"),
            }
        }
        _ => println!(
            "usage: {cmd} [net<i> dhcp|none|<addr>/<prefix>[,gw=<addr>][,ip6=<addr>/<prefix>]]"
        ),
    }
}

fn serve(arg: &str) {
    let (what, rest) = arg.split_once(' ').unwrap_or((arg, ""));
    match what {
        "" => {
            let lines = netstack::services();
            if lines.is_empty() {
                println!("serve: no services");
            }
            for l in lines {
                println!("{l}");
            }
        }
        "stop" => match rest.trim().parse::<u32>() {
            Ok(id) if netstack::stop_service(id) => println!("service {id} stopped"),
            Ok(id) => println!("serve: no service {id}"),
            Err(_) => println!("usage: serve stop <id>"),
        },
        "echo" | "discard" | "iperf3" => {
            let args: String = if what == "iperf3" && rest.trim().is_empty() {
                "-s".into()
            } else {
                rest.trim().into()
            };
            match netstack::start_app(what, &args, Owner::Service) {
                Ok(id) => println!("service {id}: {what} started"),
                Err(e) => println!("serve: {e}"),
            }
        }
        other => println!("serve: unknown service '{other}' (echo, discard, iperf3)"),
    }
}
