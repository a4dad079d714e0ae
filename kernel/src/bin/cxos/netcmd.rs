//! The shell's network commands (feature `net`), parsed by
//! [`cxos_kernel::shellcmd`]: interfaces, the apps of
//! [`crate::netstack`], services, and the mlx5 VNICs.

use cxos_kernel::cmdline::MAX_VNICS;
use cxos_kernel::shellcmd::{NetCommand, app_error};
use cxos_net::config::IfConfig;

use crate::netstack::{self, AppId, Owner};
use crate::{mlx5nic, print, println, vnics};

/// Run `cmd`: `Some(id)` when it left app `id` running in the foreground.
pub fn execute(cmd: NetCommand<'_>) -> Option<AppId> {
    match cmd {
        NetCommand::ShowAll { cmd } => {
            let lines = netstack::status_lines();
            if lines.is_empty() {
                println!("{cmd}: no interfaces");
            }
            for l in lines {
                println!("{l}");
            }
        }
        NetCommand::Show { cmd, name } => match netstack::status_line(name) {
            Some(line) => println!("{line}"),
            None => println!("{cmd}: no interface {name}"),
        },
        NetCommand::Configure {
            cmd,
            name,
            cfg,
            port,
        } => {
            if let Some(n) = name
                .strip_prefix("vnic")
                .and_then(|n| n.parse::<u32>().ok())
            {
                if vnics::set_ip(n, &cfg) {
                    let line = netstack::reconfigure_now(name, &cfg).unwrap_or_else(|| {
                        alloc::format!("{name}: not created; {cfg} used when it is")
                    });
                    println!("{line}");
                } else {
                    println!("{cmd}: no {name}");
                    return None;
                }
            } else {
                netstack::set_port_items(name, port);
                // Addresses as they are (only `mtu=`, `speed=`, `led=`
                // new): the interface keeps its state, neighbours and
                // DHCP lease included.
                let unchanged = netstack::status_line(name).is_some()
                    && IfConfig { mtu: None, ..cfg }
                        == IfConfig {
                            mtu: None,
                            ..netstack::config_for(name)
                        };
                let line = if unchanged {
                    netstack::set_config(name, &cfg);
                    netstack::status_line(name)
                } else {
                    netstack::reconfigure(name, &cfg)
                }
                .unwrap_or_else(|| {
                    alloc::format!("{name}: not attached; {cfg} used when it opens")
                });
                println!("{line}");
                // The port's settings, now, as `speed` and `led` do.
                for r in mlx5nic::port_items(name, port).unwrap_or_default() {
                    match r {
                        Ok(line) => print!("{line}"),
                        Err(e) => println!("{cmd}: {e}"),
                    }
                }
                if !port.tune.is_empty()
                    && let Some(Err(e)) = mlx5nic::ethtool::apply_to(name, &port.tune)
                {
                    println!("{cmd}: {name}: {e}");
                }
                // `queues=`: the port's interface made again (`portq`).
                match port
                    .queues
                    .and_then(|q| mlx5nic::portq::set_queues(name, q))
                {
                    Some(Ok(line)) => println!("{line}"),
                    Some(Err(e)) => println!("{cmd}: {name}: {e}"),
                    None => {}
                }
            }
            // `mtu=` applies at run time too, as `mtu <if> <n>` does (a
            // device that is not open takes it when it opens).
            if let Some(mtu) = cfg.mtu {
                match mlx5nic::set_mtu(name, usize::from(mtu)) {
                    Some(Ok(line)) => println!("{line}"),
                    Some(Err(e)) => println!("{cmd}: {name}: {e}"),
                    None => {}
                }
            }
        }
        NetCommand::Ethtool(e) => match mlx5nic::ethtool::run(e) {
            Some(Ok(text)) => print!("{text}"),
            Some(Err(why)) => println!("ethtool: {}: {why}", e.interface()),
            None => println!("ethtool: no interface {}", e.interface()),
        },
        NetCommand::App(app) => match netstack::start_app(&app, Owner::Shell) {
            Ok(id) => return Some(id),
            Err(e) => println!("{}", app_error(&app.app, &e)),
        },
        NetCommand::Services => {
            let lines = netstack::services();
            if lines.is_empty() {
                println!("serve: no services");
            }
            for l in lines {
                println!("{l}");
            }
        }
        NetCommand::ServeStop(id) => {
            if netstack::stop_service(id) {
                println!("service {id} stopped");
            } else {
                println!("serve: no service {id}");
            }
        }
        NetCommand::Serve(app) => match netstack::start_app(&app, Owner::Service) {
            Ok(id) => println!("service {id}: {} started", app.app),
            Err(e) => println!("serve: {e}"),
        },
        NetCommand::VnicCreate(def) => {
            let Some(n) = vnics::define(def) else {
                println!("vnic: all {MAX_VNICS} VNIC numbers in use");
                return None;
            };
            match mlx5nic::add_vnic(n, &def) {
                Some(Ok(status)) => {
                    println!("vnic{n}: created {def}");
                    println!("{status}");
                }
                Some(Err(e)) => {
                    vnics::undefine(n);
                    println!("vnic: vnic{n} not created: {e}");
                }
                None => println!("vnic{n}: defined {def}; created when what it is over opens"),
            }
        }
        NetCommand::VnicDelete(n) => {
            let defined = vnics::undefine(n);
            match mlx5nic::remove_vnic(n) {
                Some(rep) => match rep.first_error {
                    None => println!("vnic{n}: deleted, {} errors", rep.errors),
                    Some(e) => println!("vnic{n}: deleted, {} errors (first: {e})", rep.errors),
                },
                None if defined => println!("vnic{n}: deleted (was not created)"),
                None => println!("vnic: no vnic{n}"),
            }
        }
        NetCommand::AggrCreate { name, def } => {
            let n = cxos_kernel::aggr_def::aggr_number(name).unwrap_or(0);
            match mlx5nic::members::create(n, &def) {
                Ok(line) => println!("{line}"),
                Err(e) => println!("aggr: {name} not created: {e}"),
            }
        }
        NetCommand::AggrDelete(name) => {
            let n = cxos_kernel::aggr_def::aggr_number(name).unwrap_or(0);
            match mlx5nic::members::delete(n) {
                Ok(line) => println!("{line}"),
                Err(e) => println!("aggr: {e}"),
            }
        }
        NetCommand::AggrShow { long } => {
            let lines = mlx5nic::members::show(long);
            if lines.is_empty() {
                println!("aggr: no aggregations");
            }
            for l in lines {
                println!("{l}");
            }
        }
        NetCommand::VnicList => {
            let defs = vnics::list();
            if defs.is_empty() {
                println!("vnic: no VNICs");
            }
            for (n, def) in defs {
                let name = alloc::format!("vnic{n}");
                let state = match netstack::status_line(&name) {
                    Some(_) => "up",
                    None => "not created",
                };
                println!("{name} {def} {state}");
            }
        }
        NetCommand::Promisc { name, on } => match mlx5nic::set_promisc(name, on) {
            Some(Ok(())) => println!("{name}: promiscuous {}", if on { "on" } else { "off" }),
            Some(Err(e)) => println!("promisc: {name}: {e}"),
            None => println!("promisc: no interface {name}"),
        },
        NetCommand::Mtu { name, mtu } => match mlx5nic::set_mtu(name, mtu) {
            Some(Ok(line)) => println!("{line}"),
            Some(Err(e)) => println!("mtu: {name}: {e}"),
            None => println!("mtu: no interface {name}"),
        },
        NetCommand::Vnics => {
            let lines = mlx5nic::vnic_lines();
            if lines.is_empty() {
                println!("vnics: no interfaces");
            }
            for l in lines.into_iter().chain(crate::rxspread::lines()) {
                println!("{l}");
            }
        }
    }
    None
}
