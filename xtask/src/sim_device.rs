//! `mlx5-sim` as a PCI device of a QEMU run: builds the binary, starts it
//! with a control socket, adds the vfio-user function to a [`Machine`], and
//! talks to the control socket (`help` there lists the requests; every
//! reply ends with a line starting `ok` or `error:`).
//!
//! Guest RAM must be a shared memfd so QEMU can hand it to the model
//! (sim/README.md, "vfio-user with QEMU"); the function sits behind a PCIe root
//! port, so the guest finds it at 01:00.0.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::qemu::Machine;
use crate::workspace::{Workspace, cargo};

/// The parts `mlx5-sim --personality` models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Personality {
    Cx4,
    Cx4lx,
    #[default]
    Cx5,
    Cx6,
    Cx6dx,
}

impl Personality {
    /// The name `mlx5-sim --personality` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cx4 => "cx4",
            Self::Cx4lx => "cx4lx",
            Self::Cx5 => "cx5",
            Self::Cx6 => "cx6",
            Self::Cx6dx => "cx6dx",
        }
    }
}

/// How long the model may take to create its sockets, answer, or exit after QEMU is gone.
const SIM_GRACE: Duration = Duration::from_secs(10);

/// `cargo build -p mlx5-sim --features vfio --bin mlx5-sim`; its path.
pub fn build(ws: &Workspace) -> Result<PathBuf, String> {
    let args = [
        "build",
        "-p",
        "mlx5-sim",
        "--features",
        "vfio",
        "--bin",
        "mlx5-sim",
    ];
    let status = Command::new(cargo())
        .args(args)
        .current_dir(&ws.root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo {}` failed ({status})", args.join(" ")));
    }
    Ok(ws.target.join("debug").join("mlx5-sim"))
}

/// How to run `mlx5-sim` beyond its part: its cable and capture, and the
/// network namespace it runs in (a `tap:` wire opens the TAP there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// `--wire`: `tap:IFNAME`, `unix:PATH` (two models naming the same
    /// PATH are joined back to back; either may start first) or `none`.
    pub wire: Option<String>,
    /// `--pcap FILE`: every frame on the wire, both directions.
    pub pcap: Option<PathBuf>,
    /// `--snaplen N`: bytes of each frame the capture keeps (whole frames
    /// when none).
    pub snaplen: Option<u32>,
    /// `--pcap-max-mb MB`: where the capture stops (no ceiling when none).
    pub pcap_max_mb: Option<u64>,
    /// Run under `ip netns exec NETNS` (needs root).
    pub netns: Option<String>,
    /// `--trace-commands=FILE`: one line per command the driver issues.
    pub trace: Option<PathBuf>,
    /// `--fw-boot-ms`: how long firmware keeps `initializing` set after a
    /// reset (the model's default when none).
    pub fw_boot_ms: Option<u64>,
    /// `--ports 2`: the board's second port (its own PCI function and
    /// vfio-user socket) with this cable and capture.
    pub second_port: Option<SecondPort>,
}

/// The second port of a `--ports 2` board: its `--wire` and `--pcap`
/// (bounded like the first's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondPort {
    pub wire: Option<String>,
    pub pcap: Option<PathBuf>,
}

/// Bytes of each frame a test's capture keeps: Ethernet, two VLAN tags,
/// IPv6 with a TCP header and options fit (the payload of bulk traffic
/// is the test's own pattern and not worth gigabytes of disk).
pub const TEST_SNAPLEN: u32 = 160;
/// Where a test's capture stops (the start of a run is what a post-mortem
/// reads; a gigabit of iperf3 would otherwise fill the disk).
pub const TEST_PCAP_MAX_MB: u64 = 48;

impl SimOptions {
    /// A capture into `path` bounded the way tests need: headers, and at
    /// most [`TEST_PCAP_MAX_MB`].
    pub fn test_capture(mut self, path: PathBuf) -> SimOptions {
        self.pcap = Some(path);
        self.snaplen = Some(TEST_SNAPLEN);
        self.pcap_max_mb = Some(TEST_PCAP_MAX_MB);
        self
    }

    /// The program and arguments that start `sim` this way (before
    /// `--socket` and the rest).
    fn command(&self, sim: &Path) -> Command {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(sim);
                c
            }
            None => Command::new(sim),
        };
        let second = self.second_port.as_ref();
        if self.wire.is_some() || second.is_some_and(|p| p.wire.is_some()) {
            c.args(["--wire", self.wire.as_deref().unwrap_or("none")]);
        }
        if let Some(wire) = second.and_then(|p| p.wire.as_deref()) {
            c.args(["--wire", wire]);
        }
        if let Some(pcap) = &self.pcap {
            c.arg("--pcap").arg(pcap);
            if let Some(pcap) = second.and_then(|p| p.pcap.as_ref()) {
                c.arg("--pcap").arg(pcap);
            }
            if let Some(n) = self.snaplen {
                c.args(["--snaplen", &n.to_string()]);
            }
            if let Some(mb) = self.pcap_max_mb {
                c.args(["--pcap-max-mb", &mb.to_string()]);
            }
        }
        if let Some(trace) = &self.trace {
            let mut arg = std::ffi::OsString::from("--trace-commands=");
            arg.push(trace);
            c.arg(arg);
        }
        if let Some(ms) = self.fw_boot_ms {
            c.args(["--fw-boot-ms", &ms.to_string()]);
        }
        c
    }
}

/// A running `mlx5-sim`, killed if the test ends before it exits.
#[derive(Debug)]
pub struct SimDevice {
    child: Child,
    /// Private directory of the sockets (removed on drop).
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub control: PathBuf,
    /// The second port's function (`--ports 2`).
    pub socket2: Option<PathBuf>,
}

impl SimDevice {
    /// Starts `sim` (the `mlx5-sim` binary) as `personality`, its stderr
    /// in `log_path`, and waits until its sockets exist. `name` makes the
    /// socket directory unique within this process.
    pub fn start(
        sim: &Path,
        personality: &str,
        name: &str,
        log_path: &Path,
    ) -> Result<SimDevice, String> {
        SimDevice::start_with(sim, personality, name, log_path, &SimOptions::default())
    }

    /// [`SimDevice::start`] with a wire, a capture or a namespace.
    pub fn start_with(
        sim: &Path,
        personality: &str,
        name: &str,
        log_path: &Path,
        options: &SimOptions,
    ) -> Result<SimDevice, String> {
        // Unix socket paths are limited to 107 bytes: keep them short.
        let dir = std::env::temp_dir().join(format!("cxos-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let socket = dir.join("vfio.sock");
        let control = dir.join("control.sock");
        let socket2 = options.second_port.as_ref().map(|_| dir.join("vfio1.sock"));
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let log = std::fs::File::create(log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let mut command = options.command(sim);
        if let Some(s2) = &socket2 {
            command.args(["--ports", "2", "--socket"]).arg(&socket);
            command.arg("--socket").arg(s2);
        } else {
            command.arg("--socket").arg(&socket);
        }
        let child = command
            .args(["--personality", personality])
            .arg("--control")
            .arg(&control)
            .env("MLX5_SIM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", sim.display()))?;
        let mut dev = SimDevice {
            child,
            dir,
            socket,
            control,
            socket2,
        };
        let deadline = Instant::now() + SIM_GRACE;
        while !dev.socket.exists() || dev.socket2.as_ref().is_some_and(|s| !s.exists()) {
            if let Ok(Some(status)) = dev.child.try_wait() {
                return Err(format!("mlx5-sim exited at start ({status})"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "mlx5-sim did not create {} within {} s",
                    dev.socket.display(),
                    SIM_GRACE.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(dev)
    }

    /// The model's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Adds what the function needs to `machine`: guest RAM in a shared
    /// memfd (QEMU hands it to the model with DMA_MAP), a PCIe root port,
    /// and the vfio-user device behind it (so it appears at 01:00.0).
    pub fn attach_to(&self, machine: &mut Machine) {
        match &self.socket2 {
            // A 2-port board: port 0 at 01:00.0, port 1 at 02:00.0.
            Some(s2) => add_functions(machine, &[&self.socket, s2]),
            None => add_function(machine, &self.socket),
        }
    }

    /// Sends one control request; returns the reply lines (the final
    /// `ok`/`error:` line included).
    pub fn ask(&self, request: &str) -> Result<Vec<String>, String> {
        let fail = |e: std::io::Error| format!("control socket, {request:?}: {e}");
        let mut stream = UnixStream::connect(&self.control).map_err(fail)?;
        stream.set_read_timeout(Some(SIM_GRACE)).map_err(fail)?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .map_err(fail)?;
        let mut lines = Vec::new();
        for line in BufReader::new(stream).lines() {
            let line = line.map_err(fail)?;
            let last = line.starts_with("ok") || line.starts_with("error:");
            lines.push(line);
            if last {
                return Ok(lines);
            }
        }
        Err(format!(
            "control socket closed during {request:?} after {lines:?}"
        ))
    }

    /// Like [`Sim::ask`], and the reply must end in `ok`.
    pub fn ask_ok(&self, request: &str) -> Result<Vec<String>, String> {
        let lines = self.ask(request)?;
        match lines.last() {
            Some(last) if last.starts_with("ok") => Ok(lines),
            _ => Err(format!("{request:?} answered {lines:?}")),
        }
    }

    /// Waits for the model to exit (QEMU is gone); its exit status.
    pub fn wait_exit(&mut self) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + SIM_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    return Err(format!(
                        "mlx5-sim still running {} s after QEMU exited",
                        SIM_GRACE.as_secs()
                    ));
                }
                Err(e) => return Err(format!("cannot wait for mlx5-sim: {e}")),
            }
        }
    }

    pub fn expect_clean_exit(&mut self) -> Result<(), String> {
        let status = self.wait_exit()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("mlx5-sim exited with {status} after QEMU quit"))
        }
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// See [`SimDevice::attach_to`]: the machine options for a function served on `socket`.
fn add_function(machine: &mut Machine, socket: &Path) {
    add_functions(machine, &[socket]);
}

/// Several functions, each behind its own PCIe root port (`rp0`, `rp1`,
/// ...), so the guest finds them at 01:00.0, 02:00.0, ... in this order;
/// guest RAM is one shared memfd every model maps.
pub fn add_functions(machine: &mut Machine, sockets: &[&Path]) {
    machine.machine_type = format!("{},memory-backend=mem", machine.machine_type);
    machine.objects.push(format!(
        "memory-backend-memfd,id=mem,size={},share=on",
        machine.memory
    ));
    for (i, socket) in sockets.iter().enumerate() {
        machine
            .devices
            .push(format!("pcie-root-port,id=rp{i},chassis={}", i + 1));
        machine.devices.push(vfio_user_device_on(socket, i));
    }
}

/// The `-device` value QEMU 10.1+ takes for a vfio-user function (JSON form).
pub fn vfio_user_device(socket: &Path) -> String {
    vfio_user_device_on(socket, 0)
}

/// [`vfio_user_device`] behind root port `rp<port>`.
pub fn vfio_user_device_on(socket: &Path, port: usize) -> String {
    let path = serde_json::Value::from(socket.to_string_lossy().into_owned());
    format!(
        r#"{{"driver":"vfio-user-pci","socket":{{"type":"unix","path":{path}}},"bus":"rp{port}"}}"#
    )
}

/// A `<key> <n>` value from `stats` lines, e.g. `resets 1`, or the number
/// after `word` in a longer line (`mmio reads 3 writes 0`).
pub fn stat(lines: &[String], key: &str, word: &str) -> Option<u64> {
    let line = lines
        .iter()
        .find(|l| l.split_whitespace().next() == Some(key))?;
    let mut words = line.split_whitespace().skip(1);
    if word.is_empty() {
        return words.next()?.parse().ok();
    }
    words.by_ref().find(|w| *w == word)?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Boot;

    #[test]
    fn stats_lines_are_read_by_key_and_word() {
        let lines: Vec<String> = [
            "commands 3",
            "mmio reads 12 writes 4 dropped 0",
            "resets 2",
            "ok",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(stat(&lines, "commands", ""), Some(3));
        assert_eq!(stat(&lines, "mmio", "writes"), Some(4));
        assert_eq!(stat(&lines, "resets", ""), Some(2));
        assert_eq!(stat(&lines, "dma", "live"), None);
    }

    #[test]
    fn attach_to_adds_shared_ram_a_root_port_and_the_device() {
        let dev_socket = PathBuf::from("/tmp/x/vfio.sock");
        let mut m = Machine::new(Boot::Pvh {
            kernel: "k".into(),
            cmdline: String::new(),
        });
        // attach_to only reads the socket path; no process is needed for the arguments.
        let args = |m: &Machine| {
            m.args()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        add_function(&mut m, &dev_socket);
        let line = args(&m);
        assert!(line.contains("-machine q35,memory-backend=mem "), "{line}");
        assert!(line.contains("-m 512M "), "{line}");
        assert!(
            line.contains("-object memory-backend-memfd,id=mem,size=512M,share=on"),
            "{line}"
        );
        assert!(
            line.ends_with(
                r#"-device pcie-root-port,id=rp0,chassis=1 -device {"driver":"vfio-user-pci","socket":{"type":"unix","path":"/tmp/x/vfio.sock"},"bus":"rp0"}"#
            ),
            "{line}"
        );
    }

    #[test]
    fn options_become_arguments() {
        let args = |o: &SimOptions| {
            let c = o.command(Path::new("/b/mlx5-sim"));
            std::iter::once(c.get_program())
                .chain(c.get_args())
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(args(&SimOptions::default()), "/b/mlx5-sim");
        let o = SimOptions {
            wire: Some("tap:cxt0".into()),
            pcap: Some("/tmp/w.pcap".into()),
            netns: Some("cxos-run-1-0".into()),
            trace: Some("/tmp/t.txt".into()),
            fw_boot_ms: Some(300),
            ..SimOptions::default()
        };
        assert_eq!(
            args(&o),
            "ip netns exec cxos-run-1-0 /b/mlx5-sim --wire tap:cxt0 --pcap /tmp/w.pcap \
             --trace-commands=/tmp/t.txt --fw-boot-ms 300"
        );
        let o = SimOptions::default().test_capture("/tmp/c.pcap".into());
        assert_eq!(
            args(&o),
            "/b/mlx5-sim --pcap /tmp/c.pcap --snaplen 160 --pcap-max-mb 48"
        );
        let o = SimOptions {
            wire: Some("unix:/tmp/x/wire.sock".into()),
            ..SimOptions::default()
        };
        assert_eq!(args(&o), "/b/mlx5-sim --wire unix:/tmp/x/wire.sock");
    }

    #[test]
    fn personality_names_are_the_models() {
        use clap::ValueEnum;
        for p in Personality::value_variants() {
            let value = p.to_possible_value().unwrap();
            assert_eq!(value.get_name(), p.as_str());
        }
        assert_eq!(Personality::default(), Personality::Cx5);
    }

    #[test]
    fn device_json_quotes_the_path() {
        assert_eq!(
            vfio_user_device(Path::new("/tmp/a\"b/vfio.sock")),
            r#"{"driver":"vfio-user-pci","socket":{"type":"unix","path":"/tmp/a\"b/vfio.sock"},"bus":"rp0"}"#
        );
    }
}
