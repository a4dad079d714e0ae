//! What the QEMU benches (`--pktgen`, `--pktgen-smp`, `--irq-smp`,
//! `--linux`) stand
//! on: the peer namespace, the system tests' QEMU and model, a log folder
//! of their own, and cxos booted on a model up to its shell. [`Host`] is
//! the same without the namespace, for benches whose model needs no
//! cable into one (`--pktgen`: a sink).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::netns::{PeerConfig, PeerError, PeerNetwork};
use crate::sim_device::SimDevice;
use crate::systests::Context;
use crate::systests_attach::Shell;
use crate::systests_sim::Setup;

pub struct Bed {
    pub config: PeerConfig,
    pub net: PeerNetwork,
    /// QEMU, the model and the log folder, as without the namespace.
    pub host: Host,
}

/// A [`Bed`] is a [`Host`] with a network: its QEMU, model, folder and
/// [`Host::boot_cxos`] are the host's.
impl std::ops::Deref for Bed {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

/// A bench's QEMU, model binary and log folder, without a network.
pub struct Host {
    pub ctx: Context,
    pub setup: Setup,
    /// `target/xtask/<name>`: the consoles and the models' logs.
    pub dir: PathBuf,
}

impl Host {
    /// The system tests' QEMU and model, and the folder `name`.
    pub fn new(
        ws: &crate::workspace::Workspace,
        kernel: &Path,
        name: &str,
    ) -> Result<Self, String> {
        let qemu = crate::qemu_provision::vfio_user_qemu().map_err(|e| e.to_string())?;
        let ctx = Context::new(ws.clone(), qemu, kernel.to_path_buf());
        let setup = crate::systests_sim::setup(&ctx)?;
        let dir = ws.xtask_dir().join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self { ctx, setup, dir })
    }

    /// cxos in QEMU (TCG) on `sim` with `cmdline`, `qemu_args` added to
    /// QEMU's, its console in `<dir>/<log>`: its shell once it prompts.
    pub fn boot_cxos(
        &self,
        sim: &SimDevice,
        cmdline: &str,
        qemu_args: &[&str],
        log: &str,
        timeout: Duration,
    ) -> Result<Shell, String> {
        let machine = crate::systests_sim::machine(&self.ctx, sim, cmdline);
        let command = crate::systests_sim::qemu_command(&self.setup, &machine, qemu_args, false);
        let session = crate::session::Session::spawn(command, &self.dir.join(log), timeout)
            .map_err(|e| e.to_string())?;
        Shell::start(session)
    }
}

impl Bed {
    /// The namespace `config` describes (its DHCP server off: the benches set
    /// addresses or need none) and the folder `name`; `Err` with
    /// `skipped: ...` when not root.
    pub fn new(
        ws: &crate::workspace::Workspace,
        kernel: &Path,
        mut config: PeerConfig,
        name: &str,
    ) -> Result<Self, String> {
        config.dhcp_lease_secs = None;
        let net = match PeerNetwork::create(&config) {
            Ok(net) => net,
            Err(PeerError::Skip(why)) => return Err(format!("skipped: {why}")),
            Err(e) => return Err(e.to_string()),
        };
        let host = Host::new(ws, kernel, name)?;
        Ok(Self { config, net, host })
    }
}
