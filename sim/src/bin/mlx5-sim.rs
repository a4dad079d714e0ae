//! `mlx5-sim`: the ConnectX model as a vfio-user server for QEMU.
//!
//! `mlx5-sim --socket PATH --personality cx4|cx4lx|cx5|cx6|cx6dx [--ports 2]
//! [--wire tap:IFNAME|unix:PATH|qemu:PATH|sink|none] [--pcap FILE [--snaplen N]
//! [--pcap-max-mb MB]] [--control PATH] [--fw-boot-ms MS]
//! [--trace-commands[=FILE]] [--module KIND|none] [--no-blueflame]`
//! serves one QEMU (`-device vfio-user-pci,socket=...`) and exits with
//! status 0 when it disconnects. The port's cable: a TAP device opened (or
//! created) in the network namespace the process runs in, a unix-socket
//! wire to another `mlx5-sim` naming the same PATH (either may start first),
//! a socket at PATH where a stock QEMU NIC connects (`-netdev
//! stream,server=off,addr.type=unix,addr.path=PATH`), a sink (a far end
//! taking every frame at line rate: counted, never written; for
//! benchmarks) or none; `--pcap` records both directions in a classic pcap file,
//! `--snaplen` bytes of each frame (tcpdump's `-s`), up to `--pcap-max-mb`.
//! `--fw-boot-ms` is how long firmware keeps `initializing` set after each
//! reset; `--trace-commands` writes one line per command (and register
//! access) to FILE or, without one, to stderr (format: `mlx5_sim::trace`).
//! `--module` plugs another transceiver than the part's own (`10g-dac`,
//! `10g-sr`, `25g-dac`, `1g-copper`, `40g-qsfp`, `100g-sr4`, `100g-dac`,
//! `200g-dac`; `none`: an empty cage).
//! `--no-blueflame` makes every function one without BlueFlame registers
//! (`cmd_hca_cap.bf` and `log_bf_reg_size` 0, as firmware gives some
//! VFs): a driver must ring the UAR's plain doorbell.
//! `--ports 2` models a 2-port board: two PCI functions (one vfio-user
//! socket each: `--socket` twice, in port order) sharing firmware, PSID,
//! serial and system image GUID, each with its own MAC, vport, queues,
//! steering, counters, cable and capture (`--wire` / `--pcap` once per
//! port, in port order); the process exits when both clients are gone.
//! Log level from `MLX5_SIM_LOG` (error, warn, info, debug, trace; default
//! warn), on stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mlx5_sim::Personality;
use mlx5_sim::link::LinkSpec;
use mlx5_sim::vfio::{Options, PortOptions, serve};

#[derive(Debug, Parser)]
#[command(
    name = "mlx5-sim",
    about = "A software ConnectX adapter served over vfio-user"
)]
struct Cli {
    /// Ports on the board, each its own PCI function (1 or 2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    ports: u8,
    /// The vfio-user socket to create and serve (it must not exist); once
    /// per port, in port order.
    #[arg(long, required = true)]
    socket: Vec<PathBuf>,
    /// Which part to model.
    #[arg(long, value_parser = parse_personality)]
    personality: Personality,
    /// A unix socket for live control (`help` lists its requests).
    #[arg(long)]
    control: Option<PathBuf>,
    /// The port's cable: tap:IFNAME, unix:PATH, qemu:PATH, sink or none; once
    /// per port, in port order (ports not named: none).
    #[arg(long)]
    wire: Vec<LinkSpec>,
    /// Record every frame on the cable in this pcap file; once per port,
    /// in port order (ports not named: no capture).
    #[arg(long)]
    pcap: Vec<PathBuf>,
    /// Bytes of each frame the capture keeps (tcpdump's -s; 0: 65535).
    #[arg(long, default_value_t = mlx5_sim::link::pcap::SNAPLEN)]
    snaplen: u32,
    /// Stop the capture at this many megabytes (10^6); later frames are
    /// counted as lost (the control socket's `stats` shows how many).
    #[arg(long, value_name = "MB")]
    pcap_max_mb: Option<u64>,
    /// Milliseconds firmware takes to boot after each reset (`initializing`).
    #[arg(long, default_value_t = mlx5_sim::init_seg::DEFAULT_FW_BOOT_DELAY.as_millis() as u64)]
    fw_boot_ms: u64,
    /// Trace every command and register access to FILE (stderr without one).
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    trace_commands: Option<PathBuf>,
    /// The transceiver in the cage at start (none: empty; default: the
    /// part's own, e.g. a 25G DAC on cx4lx).
    #[arg(long, value_name = "KIND")]
    module: Option<mlx5_sim::module::ModuleChoice>,
    /// A function without BlueFlame registers: HCA caps bf and
    /// log_bf_reg_size 0, only the UAR's plain doorbell rings.
    #[arg(long)]
    no_blueflame: bool,
}

fn parse_personality(s: &str) -> Result<Personality, String> {
    Personality::from_short_name(s)
        .ok_or_else(|| format!("unknown personality '{s}' (cx4, cx4lx, cx5, cx6, cx6dx)"))
}

/// Log records to stderr, one line each.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            // Not eprintln!: it panics (and the model aborts) when stderr
            // cannot be written, e.g. a log file on a full disk.
            let _ = writeln!(
                std::io::stderr().lock(),
                "mlx5-sim: {} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = std::env::var("MLX5_SIM_LOG")
        .ok()
        .and_then(|l| l.parse::<log::LevelFilter>().ok())
        .unwrap_or(log::LevelFilter::Warn);
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(level);
    }
    let opts = match options(cli) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "mlx5-sim: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "mlx5-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The server's options: one socket per port, at most one wire and one
/// capture per port.
fn options(cli: Cli) -> Result<Options, String> {
    let ports = usize::from(cli.ports);
    if cli.socket.len() != ports {
        return Err(format!(
            "--ports {ports} needs {ports} --socket (given {})",
            cli.socket.len()
        ));
    }
    if cli.wire.len() > ports || cli.pcap.len() > ports {
        return Err(format!("at most {ports} --wire and {ports} --pcap"));
    }
    let wire = |i: usize| cli.wire.get(i).cloned().unwrap_or(LinkSpec::None);
    let pcap = |i: usize| cli.pcap.get(i).cloned();
    let more_ports = (1..ports)
        .map(|i| PortOptions {
            socket: cli.socket[i].clone(),
            wire: wire(i),
            pcap: pcap(i),
        })
        .collect();
    Ok(Options {
        socket: cli.socket[0].clone(),
        personality: cli.personality,
        control: cli.control,
        wire: wire(0),
        pcap: pcap(0),
        pcap_limits: mlx5_sim::link::PcapLimits {
            snaplen: cli.snaplen,
            max_bytes: cli.pcap_max_mb.map(|mb| mb.saturating_mul(1_000_000)),
        },
        fw_boot_delay: std::time::Duration::from_millis(cli.fw_boot_ms),
        trace_commands: cli.trace_commands,
        module: cli.module.unwrap_or_default(),
        blueflame: !cli.no_blueflame,
        more_ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_parses() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "mlx5-sim",
            "--socket",
            "/run/a.sock",
            "--personality",
            "cx6dx",
            "--control",
            "/run/c.sock",
        ])
        .unwrap();
        assert_eq!(cli.personality, Personality::ConnectX6Dx);
        assert_eq!(cli.socket, vec![PathBuf::from("/run/a.sock")]);
        assert_eq!(cli.control, Some(PathBuf::from("/run/c.sock")));
        assert!(cli.wire.is_empty());
        assert!(cli.pcap.is_empty());
        assert_eq!(cli.ports, 1);
        assert_eq!(cli.fw_boot_ms, 5);
        assert_eq!(cli.trace_commands, None);
        assert_eq!(cli.module, None);
        let module = |m: &str| {
            Cli::try_parse_from([
                "mlx5-sim",
                "--socket",
                "s",
                "--personality",
                "cx5",
                "--module",
                m,
            ])
            .map(|c| c.module)
        };
        use mlx5_sim::module::{ModuleChoice, ModuleKind};
        assert_eq!(module("none").unwrap(), Some(ModuleChoice::Empty));
        assert_eq!(
            module("1g-copper").unwrap(),
            Some(ModuleChoice::Kind(ModuleKind::Copper1g))
        );
        assert!(module("400g").is_err());
        let traced = |args: &[&str]| {
            let mut all = vec!["mlx5-sim", "--socket", "s", "--personality", "cx5"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).map(|c| (c.trace_commands, c.fw_boot_ms))
        };
        assert_eq!(
            traced(&["--trace-commands"]).unwrap(),
            (Some(PathBuf::from("-")), 5)
        );
        assert_eq!(
            traced(&["--trace-commands=/tmp/t", "--fw-boot-ms", "3000"]).unwrap(),
            (Some(PathBuf::from("/tmp/t")), 3000)
        );
        let cli = Cli::try_parse_from([
            "mlx5-sim",
            "--socket",
            "s",
            "--personality",
            "cx5",
            "--wire",
            "unix:/run/w.sock",
            "--pcap",
            "/tmp/x.pcap",
        ])
        .unwrap();
        assert_eq!(cli.wire, vec![LinkSpec::Unix("/run/w.sock".into())]);
        assert_eq!(cli.pcap, vec![PathBuf::from("/tmp/x.pcap")]);
        let tap = |w: &str| {
            Cli::try_parse_from([
                "mlx5-sim",
                "--socket",
                "s",
                "--personality",
                "cx5",
                "--wire",
                w,
            ])
            .map(|c| c.wire)
        };
        assert_eq!(tap("tap:cx0").unwrap(), vec![LinkSpec::Tap("cx0".into())]);
        for bad in ["tap:", "tap:much-too-long-name", "udp:x", "unix:"] {
            assert!(tap(bad).is_err(), "{bad}");
        }
        for p in ["cx4", "cx4lx", "cx5", "cx6"] {
            assert!(Cli::try_parse_from(["mlx5-sim", "--socket", "s", "--personality", p]).is_ok());
        }
        assert!(
            Cli::try_parse_from(["mlx5-sim", "--socket", "s", "--personality", "cx7"]).is_err()
        );
        assert!(Cli::try_parse_from(["mlx5-sim", "--personality", "cx5"]).is_err());
    }

    /// `--no-blueflame` reaches the functions the server builds: both
    /// ports report `bf` and `log_bf_reg_size` 0 in their current and
    /// maximum HCA caps, also after a function reset; without it the
    /// part's BlueFlame is there.
    #[test]
    fn no_blueflame_gives_functions_without_blueflame() {
        use mlx5_sim::cmd::caps::{cap_type, hca_cap};
        use mlx5_sim::vfio::server::functions;
        let built = |extra: &[&str]| {
            let mut all = vec![
                "mlx5-sim",
                "--personality",
                "cx6dx",
                "--ports",
                "2",
                "--socket",
                "a",
                "--socket",
                "b",
            ];
            all.extend_from_slice(extra);
            let cli = Cli::try_parse_from(all).unwrap();
            functions(&options(cli).unwrap()).unwrap()
        };
        let bf = |s: &mlx5_sim::vfio::server::Shared| {
            let dev = s.dev();
            let max = dev.caps.max(cap_type::GENERAL).unwrap().to_vec();
            let get = |area: &[u8], fld| mlx5_sim::bits::get(area, fld);
            let cur = dev.caps.current(cap_type::GENERAL).unwrap();
            [
                get(cur, hca_cap::BF),
                get(cur, hca_cap::LOG_BF_REG_SIZE),
                get(&max, hca_cap::BF),
                get(&max, hca_cap::LOG_BF_REG_SIZE),
            ]
        };
        for s in built(&["--no-blueflame"]) {
            assert_eq!(bf(&s), [0; 4]);
            s.reset();
            assert_eq!(bf(&s), [0; 4], "after a function reset");
        }
        for s in built(&[]) {
            let [b, log, ..] = bf(&s);
            assert_eq!(b, 1);
            assert_ne!(log, 0);
        }
    }

    #[test]
    fn two_ports_take_a_socket_wire_and_capture_each() {
        let parse = |args: &[&str]| {
            let mut all = vec!["mlx5-sim", "--personality", "cx4lx"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
                .map_err(|e| e.to_string())
                .and_then(options)
        };
        let o = parse(&[
            "--ports", "2", "--socket", "a", "--socket", "b", "--wire", "qemu:w0", "--wire",
            "qemu:w1", "--pcap", "p0", "--pcap", "p1",
        ])
        .unwrap();
        assert_eq!(o.socket, PathBuf::from("a"));
        assert_eq!(o.wire, LinkSpec::Qemu("w0".into()));
        assert_eq!(o.pcap, Some(PathBuf::from("p0")));
        assert_eq!(o.more_ports.len(), 1);
        assert_eq!(o.more_ports[0].socket, PathBuf::from("b"));
        assert_eq!(o.more_ports[0].wire, LinkSpec::Qemu("w1".into()));
        assert_eq!(o.more_ports[0].pcap, Some(PathBuf::from("p1")));
        // The second port without a wire or capture.
        let o = parse(&[
            "--ports", "2", "--socket", "a", "--socket", "b", "--wire", "qemu:w0",
        ])
        .unwrap();
        assert_eq!(o.more_ports[0].wire, LinkSpec::None);
        assert_eq!(o.more_ports[0].pcap, None);
        assert!(parse(&["--ports", "2", "--socket", "a"]).is_err());
        assert!(parse(&["--socket", "a", "--socket", "b"]).is_err());
        assert!(parse(&["--socket", "a", "--wire", "none", "--wire", "none"]).is_err());
        assert!(parse(&["--ports", "3", "--socket", "a"]).is_err());
    }
}
