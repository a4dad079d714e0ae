//! Host tools the network tests use, found on PATH and installed with
//! apt-get when we are root on Debian/Ubuntu.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::Skip;

/// A program and the Debian package that ships it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

/// The tools this crate knows.
pub const TOOLS: &[Tool] = &[
    Tool {
        program: "ip",
        package: "iproute2",
    },
    Tool {
        program: "ping",
        package: "iputils-ping",
    },
    Tool {
        program: "iperf3",
        package: "iperf3",
    },
    Tool {
        program: "dnsmasq",
        package: "dnsmasq-base",
    },
    Tool {
        program: "tshark",
        package: "tshark",
    },
    Tool {
        program: "dumpcap",
        package: "tshark",
    },
    // A DHCP client (`busybox udhcpc`) for tests of the DHCP server.
    Tool {
        program: "busybox",
        package: "busybox",
    },
];

impl Tool {
    /// The tool named `program`.
    pub fn named(program: &str) -> Option<Tool> {
        TOOLS.iter().copied().find(|t| t.program == program)
    }
}

/// Whether we run as root (the owner of /proc/self is our effective uid).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `name` on PATH (also the sbin directories, which a non-login PATH may lack).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One installer at a time in this process (tests run in parallel).
static INSTALLING: Mutex<()> = Mutex::new(());

/// Makes sure every program in `programs` is there: missing ones are
/// installed with apt-get when root on a Debian-like system (non-interactive;
/// tshark's "may non-root users capture" question answered no), otherwise
/// a [`Skip`] naming what to install.
pub fn require_tools(programs: &[&str]) -> Result<(), Skip> {
    let mut tools = Vec::new();
    for p in programs {
        let tool = Tool::named(p)
            .ok_or_else(|| Skip::new(format!("testnet does not know the tool '{p}'")))?;
        if !tools.contains(&tool) {
            tools.push(tool);
        }
    }
    let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<Tool> = tools
        .into_iter()
        .filter(|t| find_program(t.program).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    let debian = std::fs::read_to_string("/etc/os-release").is_ok_and(|r| is_debian_like(&r))
        && find_program("apt-get").is_some();
    if !is_root() || !debian {
        return Err(Skip::new(format!(
            "missing {} (install: apt-get install {})",
            missing
                .iter()
                .map(|t| t.program)
                .collect::<Vec<_>>()
                .join(", "),
            packages.join(" ")
        )));
    }
    install(&packages).map_err(Skip::new)?;
    let still: Vec<&str> = missing
        .iter()
        .filter(|t| find_program(t.program).is_none())
        .map(|t| t.program)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(Skip::new(format!(
            "apt-get installed {} but {} still missing",
            packages.join(" "),
            still.join(", ")
        )))
    }
}

/// True on Debian, Ubuntu and derivatives (the text of /etc/os-release).
pub fn is_debian_like(os_release: &str) -> bool {
    os_release.lines().any(|line| {
        line.split_once('=').is_some_and(|(k, v)| {
            (k == "ID" || k == "ID_LIKE")
                && v.trim_matches('"')
                    .split_whitespace()
                    .any(|id| id == "debian" || id == "ubuntu")
        })
    })
}

fn install(packages: &[&str]) -> Result<(), String> {
    let say = |line: &str| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "testnet: {line}");
    };
    say(&format!("installing {}", packages.join(" ")));
    if packages.contains(&"tshark") {
        // Without this the wireshark-common postinst asks whether non-root
        // users may capture.
        let mut c = Command::new("debconf-set-selections")
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("debconf-set-selections: {e}"))?;
        if let Some(stdin) = c.stdin.as_mut() {
            use std::io::Write;
            let _ = stdin
                .write_all(b"wireshark-common wireshark-common/install-setuid boolean false\n");
        }
        drop(c.stdin.take());
        let _ = c.wait();
    }
    let apt = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    apt(&["update", "-q"])?;
    let mut args = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=300",
    ];
    args.extend_from_slice(packages);
    apt(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_map_to_debian_packages() {
        assert_eq!(Tool::named("dnsmasq").unwrap().package, "dnsmasq-base");
        assert_eq!(Tool::named("ip").unwrap().package, "iproute2");
        assert_eq!(Tool::named("tshark").unwrap().package, "tshark");
        assert!(Tool::named("nc").is_none());
        let e = require_tools(&["nc"]).unwrap_err();
        assert!(e.reason.contains("does not know the tool 'nc'"), "{e}");
    }

    #[test]
    fn debian_is_recognised() {
        assert!(is_debian_like("ID=debian\n"));
        assert!(is_debian_like("ID=pop\nID_LIKE=\"ubuntu debian\"\n"));
        assert!(!is_debian_like("ID=fedora\n"));
    }

    #[test]
    fn programs_are_found_on_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-cxos").is_none());
    }
}
