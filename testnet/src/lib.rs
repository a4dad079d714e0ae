//! Test support: network namespaces that hold a test's network (a TAP or
//! veth in it, addresses, stock peer tools: `dnsmasq`, `iperf3 -s`,
//! `tshark`, `ping`), removed when dropped — also when the test panics, and
//! when the test process is killed (a watchdog shell, see [`Netns::new`]).
//!
//! Everything here shells out to `ip` and the tools; no `unsafe`. It needs
//! root (CAP_NET_ADMIN, CAP_SYS_ADMIN for `ip netns`); a test calls
//! [`prepare`] first and, on a [`Skip`], prints it and passes:
//!
//! ```no_run
//! let ns = match cxos_testnet::prepare("ping", &["ip", "ping"]) {
//!     Ok(ns) => ns,
//!     Err(skip) => return skip.report(),
//! };
//! ns.run("ip", &["link", "show"]).unwrap();
//! ```
//!
//! Traffic stays inside namespaces the test created: nothing here touches
//! the host's own interfaces except to move a device the test made into a
//! namespace.
#![forbid(unsafe_code)]

mod netns;
mod tools;

pub use netns::{Capture, DhcpRange, Netns, unique_ifname};
pub use tools::{Tool, is_root, require_tools};

use std::fmt;

/// Why a test that needs root or host tools did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub reason: String,
}

impl Skip {
    pub fn new(reason: impl Into<String>) -> Skip {
        Skip {
            reason: reason.into(),
        }
    }

    /// Prints `skipped: <reason>` where it is seen even though the test
    /// harness captures output (straight to the process's stderr).
    pub fn report(&self) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipped: {}", self.reason);
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipped: {}", self.reason)
    }
}

/// A command that failed, with what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Root, the tools (installed if missing), and a fresh namespace tagged
/// `tag`; a [`Skip`] when that cannot be had (not root, no apt, ...). A
/// failure to create the namespace as root is a test failure (panics).
pub fn prepare(tag: &str, tools: &[&str]) -> std::result::Result<Netns, Skip> {
    if !is_root() {
        return Err(Skip::new(format!(
            "needs root for network namespaces (tag {tag})"
        )));
    }
    let mut wanted = vec!["ip"];
    wanted.extend_from_slice(tools);
    require_tools(&wanted)?;
    Ok(Netns::new(tag).unwrap_or_else(|e| panic!("cannot create a namespace: {e}")))
}
