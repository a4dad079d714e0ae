//! A network namespace owned by a test, and the processes started in it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{Error, Result};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// How long a started tool may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// An interface name unique on this host while this process runs:
/// `prefix` (3 bytes kept), our pid and a counter, at most 15 bytes.
pub fn unique_ifname(prefix: &str) -> String {
    let p: String = prefix
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(3)
        .collect();
    let n = NEXT.fetch_add(1, Ordering::Relaxed) & 0xfff;
    format!("{p}{:x}-{n:x}", std::process::id())
}

/// Runs `command`; its stdout if it exits 0, else an error with both outputs.
pub fn output(mut command: Command) -> Result<String> {
    let what = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error(format!("cannot run {what}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

fn ip(args: &[&str]) -> Result<String> {
    let mut c = Command::new("ip");
    c.args(args);
    output(c)
}

/// The namespaces that exist (names only).
pub fn list() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// A network namespace with a unique name (`cxos-<tag>-<pid>-<n>`), a
/// private directory for the files of the tools started in it, and the
/// loopback up. Dropping it kills every process in it, deletes it and the
/// directory.
///
/// A watchdog (`sh`, in its own process group so Ctrl-C on the terminal
/// does not reach it) holds the other end of a pipe: if this process dies
/// without dropping the namespace (killed, Ctrl-C), the pipe closes and the
/// watchdog does the cleanup.
#[derive(Debug)]
pub struct Netns {
    name: String,
    dir: PathBuf,
    children: Mutex<Vec<(String, Child)>>,
    watchdog: Option<(Child, ChildStdin)>,
}

/// The watchdog's script: `$1` the namespace, `$2` its directory.
const WATCHDOG: &str = r#"read -r _; for p in $(ip netns pids "$1" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; ip netns del "$1" 2>/dev/null; rm -rf -- "$2""#;

impl Netns {
    /// Creates the namespace. `tag` (letters, digits, '-') names it for people.
    pub fn new(tag: &str) -> Result<Netns> {
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(24)
            .collect();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("cxos-{tag}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error(format!("cannot create {}: {e}", dir.display())))?;
        // A namespace of this name can only be left over from a dead
        // process that had our pid (and whose watchdog was killed too).
        if list().contains(&name) {
            let _ = ip(&["netns", "del", &name]);
        }
        if let Err(e) = ip(&["netns", "add", &name]) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let watchdog = {
            use std::os::unix::process::CommandExt;
            Command::new("sh")
                .args(["-c", WATCHDOG, "cxos-netns-watchdog", &name])
                .arg(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .ok()
                .and_then(|mut c| c.stdin.take().map(|s| (c, s)))
        };
        let ns = Netns {
            name,
            dir,
            children: Mutex::new(Vec::new()),
            watchdog,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a namespace called `name` exists.
    pub fn exists(name: &str) -> bool {
        list().iter().any(|n| n == name)
    }

    /// The namespace's private directory (logs, leases, captures).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `program` run inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `program args` inside; its stdout, or an error if it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut c = self.command(program);
        c.args(args);
        output(c)
    }

    /// `ip -n NAME args`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ip");
        c.args(["-n", &self.name]).args(args);
        output(c)
    }

    /// Starts `command` (made with [`Netns::command`]) with its stdout and
    /// stderr in `<dir>/<log>.log`; it is killed when the namespace goes.
    pub fn spawn(&self, log: &str, mut command: Command) -> Result<u32> {
        let path = self.log_path(log);
        let file = File::create(&path).map_err(|e| Error(format!("{}: {e}", path.display())))?;
        let err = file
            .try_clone()
            .map_err(|e| Error(format!("{}: {e}", path.display())))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| Error(format!("cannot start {command:?}: {e}")))?;
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((log.to_string(), child));
        Ok(pid)
    }

    pub fn log_path(&self, log: &str) -> PathBuf {
        self.dir.join(format!("{log}.log"))
    }

    /// What a process started with [`Netns::spawn`] printed so far.
    pub fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.log_path(log)).unwrap_or_default()
    }

    /// Waits until the log `log` contains `needle`; fails if the process
    /// exits first or it takes longer than `timeout`.
    pub fn wait_for_log(&self, log: &str, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log(log).contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.exited(log) {
                return Err(Error(format!(
                    "{log} exited ({status}) before printing {needle:?}:\n{}",
                    self.log(log)
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error(format!(
                    "{log} did not print {needle:?} within {} s:\n{}",
                    timeout.as_secs(),
                    self.log(log)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status of the process logging to `log`, if it has ended.
    pub fn exited(&self, log: &str) -> Option<std::process::ExitStatus> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .iter_mut()
            .find(|(l, _)| l == log)
            .and_then(|(_, c)| c.try_wait().ok().flatten())
    }

    /// Moves the interface `ifname` of our own namespace into this one.
    pub fn adopt_link(&self, ifname: &str) -> Result<()> {
        ip(&["link", "set", "dev", ifname, "netns", &self.name]).map(drop)
    }

    /// Adds `cidr` (IPv4 `10.0.0.1/24` or IPv6 `fd00::1/64`, the latter
    /// without duplicate address detection) to `ifname`.
    pub fn add_addr(&self, ifname: &str, cidr: &str) -> Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", ifname];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    pub fn link_up(&self, ifname: &str) -> Result<()> {
        self.ip(&["link", "set", "dev", ifname, "up"]).map(drop)
    }

    /// A veth pair: `here` in this namespace, `there` in `other`.
    pub fn add_veth(&self, here: &str, other: &Netns, there: &str) -> Result<()> {
        self.ip(&[
            "link",
            "add",
            here,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            &other.name,
        ])
        .map(drop)
    }

    /// The MAC of `ifname` (`aa:bb:cc:dd:ee:ff`).
    pub fn mac_of(&self, ifname: &str) -> Result<String> {
        let out = self.ip(&["-o", "link", "show", "dev", ifname])?;
        let mut words = out.split_whitespace();
        words
            .by_ref()
            .find(|w| *w == "link/ether")
            .and_then(|_| words.next())
            .map(str::to_string)
            .ok_or_else(|| Error(format!("no MAC in {out:?}")))
    }

    /// The link-layer address this namespace knows for `addr`, if any.
    pub fn neighbour(&self, addr: &str) -> Option<String> {
        let out = self.ip(&["neigh", "show", addr]).ok()?;
        let mut words = out.split_whitespace();
        words.by_ref().find(|w| *w == "lladdr")?;
        words.next().map(str::to_string)
    }

    /// `ping -c count -W 2 addr` inside (IPv4 or IPv6); its output.
    pub fn ping(&self, addr: &str, count: u32) -> Result<String> {
        self.run("ping", &["-n", "-c", &count.to_string(), "-W", "2", addr])
    }

    /// Stock `iperf3 -s` on `port`, log `iperf3-<port>`, once it listens.
    pub fn start_iperf3_server(&self, port: u16) -> Result<u32> {
        let log = format!("iperf3-{port}");
        let mut c = self.command("iperf3");
        c.args(["-s", "-p", &port.to_string(), "--forceflush"]);
        let pid = self.spawn(&log, c)?;
        self.wait_for_log(&log, "Server listening", READY_TIMEOUT)?;
        Ok(pid)
    }

    /// `dnsmasq` as a DHCP server only (no DNS, no system service, no
    /// config file) on `ifname`, leasing `first..=last` (IPv4, netmask
    /// `mask`) for `lease_secs` (dnsmasq's minimum is 120), leases in this
    /// namespace's directory; log `dnsmasq`. Returns once it serves.
    pub fn start_dnsmasq(
        &self,
        ifname: &str,
        first: &str,
        last: &str,
        mask: &str,
        lease_secs: u32,
    ) -> Result<u32> {
        let range = DhcpRange {
            ifname: ifname.into(),
            first: first.into(),
            last: last.into(),
            mask: mask.into(),
        };
        self.start_dnsmasq_ranges(&[range], lease_secs)
    }

    /// One `dnsmasq` serving several interfaces' ranges (a second instance
    /// could not bind the DHCP port), as [`Netns::start_dnsmasq`].
    pub fn start_dnsmasq_ranges(&self, ranges: &[DhcpRange], lease_secs: u32) -> Result<u32> {
        let leases = self.dir.join("dnsmasq.leases");
        let pid = self.dir.join("dnsmasq.pid");
        let mut c = self.command("dnsmasq");
        c.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port=0",
            "--bind-interfaces",
            "--except-interface=lo",
            "--dhcp-authoritative",
            "--log-dhcp",
            "--log-facility=-",
            "--user=root",
            "--group=root",
            // No ICMP probe of an address before offering it: with many
            // clients at once the probes queue up (seconds each).
            "--no-ping",
        ])
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .arg(format!("--pid-file={}", pid.display()));
        for r in ranges {
            c.arg(format!("--interface={}", r.ifname));
            c.arg(format!(
                "--dhcp-range={},{},{},{lease_secs}",
                r.first, r.last, r.mask
            ));
        }
        let pid = self.spawn("dnsmasq", c)?;
        self.wait_for_log("dnsmasq", "DHCP, IP range", READY_TIMEOUT)?;
        Ok(pid)
    }

    /// The dnsmasq lease file (one lease a line: expiry MAC IP name id).
    pub fn dhcp_leases(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.leases")).unwrap_or_default()
    }

    /// A capture on `ifname` into `<dir>/<name>.pcap` (classic pcap), once
    /// it captures. The capture engine is tshark's own, `dumpcap` (from
    /// wireshark-common, which the tshark package pulls in), run directly:
    /// tshark in front of it may lose the last packets when interrupted.
    /// Read the file with [`Capture::read`] (tshark).
    pub fn start_tshark(&self, ifname: &str, name: &str) -> Result<Capture> {
        let file = self.dir.join(format!("{name}.pcap"));
        let log = self.log_path(name);
        let out = File::create(&log).map_err(|e| Error(format!("{}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| Error(format!("{}: {e}", log.display())))?;
        let child = self
            .command("dumpcap")
            .args(["-q", "-P", "-i", ifname, "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error(format!("cannot start dumpcap: {e}")))?;
        let mut cap = Capture {
            child: Some(child),
            file,
            log,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&cap.log).unwrap_or_default();
            if text.contains("File: ") {
                return Ok(cap);
            }
            if let Some(c) = cap.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(Error(format!("dumpcap exited ({status}):\n{text}")));
            }
            if Instant::now() >= deadline {
                return Err(Error(format!("dumpcap did not start capturing:\n{text}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Copies the logs of the tools started here (`*.log`, the dnsmasq
    /// leases) into `to` (created), e.g. next to a failed test's own log:
    /// the namespace's directory goes with it.
    pub fn copy_logs(&self, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let keep = path
                .extension()
                .is_some_and(|e| e == "log" || e == "leases");
            if keep && let Some(name) = path.file_name() {
                std::fs::copy(&path, to.join(name))?;
            }
        }
        Ok(())
    }

    fn cleanup_now(&self) {
        for p in ip(&["netns", "pids", &self.name])
            .unwrap_or_default()
            .split_whitespace()
        {
            let _ = Command::new("kill")
                .args(["-9", p])
                .stderr(Stdio::null())
                .status();
        }
        let _ = ip(&["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // A failing test: keep what the tools said.
        if std::thread::panicking() {
            let to = std::env::temp_dir()
                .join("cxos-netns-logs")
                .join(&self.name);
            if self.copy_logs(&to).is_ok() {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "testnet: logs of namespace {} kept in {}",
                    self.name,
                    to.display()
                );
            }
        }
        let children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, mut c) in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        match self.watchdog.take() {
            Some((mut child, stdin)) => {
                // The watchdog cleans up when its stdin closes.
                drop(stdin);
                let deadline = Instant::now() + Duration::from_secs(10);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = child.kill();
                let _ = child.wait();
                if list().contains(&self.name) {
                    self.cleanup_now();
                }
            }
            None => self.cleanup_now(),
        }
    }
}

/// A running capture (see [`Netns::start_tshark`]).
#[derive(Debug)]
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
    pub log: PathBuf,
}

impl Capture {
    /// Stops the capture (SIGINT, so dumpcap finishes the file); its path.
    /// dumpcap leaves what is still in the kernel's capture ring when
    /// interrupted (libpcap hands a ring block over only when it fills or
    /// its timeout passes), so first the file must stop growing for a
    /// second: the packets of the moment before the call are in it.
    pub fn stop(mut self) -> Result<PathBuf> {
        let size = |f: &Path| f.metadata().map(|m| m.len()).unwrap_or(0);
        let quiet = Duration::from_millis(1000);
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut last, mut since) = (size(&self.file), Instant::now());
        while since.elapsed() < quiet && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let now = size(&self.file);
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(self.file.clone())
    }

    /// Fields of the packets of the capture matching `filter` (a Wireshark
    /// display filter), one Vec per packet (`tshark -r -Y -T fields`).
    pub fn read(file: &Path, filter: &str, fields: &[&str]) -> Result<Vec<Vec<String>>> {
        let mut c = Command::new("tshark");
        c.args(["-n", "-r"]).arg(file);
        c.args(["-Y", filter, "-T", "fields", "-E", "separator=\t"]);
        for f in fields {
            c.args(["-e", f]);
        }
        Ok(output(c)?
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_short_and_distinct() {
        let a = unique_ifname("tap-device");
        let b = unique_ifname("tap-device");
        assert_ne!(a, b);
        assert!(a.starts_with("tap"), "{a}");
        assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
    }
}

/// An IPv4 range dnsmasq leases on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpRange {
    pub ifname: String,
    pub first: String,
    pub last: String,
    pub mask: String,
}
