//! A QEMU with `vfio-user-pci` (QEMU >= 10.1), for running mlx5-sim as a
//! PCI device.
//!
//! The system's `qemu-system-x86_64` is used when `-device help` lists
//! `vfio-user-pci`. Otherwise (Debian bookworm has QEMU 7.2 and, in
//! backports, 10.0 without it) a Debian trixie tree with QEMU from
//! trixie-backports is bootstrapped once into a cache directory outside the
//! repository and its binary runs through the tree's own dynamic loader, so
//! no chroot is needed at run time.
//!
//! Provisioning is idempotent: a stamp file inside the tree says it is
//! complete, and an exclusive lock on a file next to it makes concurrent
//! runs wait for each other instead of bootstrapping twice.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::provision::{self, HostPackage, Probe};
use crate::qemu::Qemu;
use crate::{Result, XtaskError};

/// The device whose presence decides whether a QEMU will do.
const VFIO_USER_DEVICE: &str = "vfio-user-pci";
/// Debian suite of the tree, and the suite QEMU comes from.
const SUITE: &str = "trixie";
const BACKPORTS: &str = "trixie-backports";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Written into the tree last; its presence means the tree is complete.
const STAMP: &str = ".cxos-provisioned";
/// Where root provisions (see [`cache_dir`]).
const ROOT_CACHE_DIR: &str = "/var/cache/cxos/qemu-trixie";
/// Environment variable that overrides the cache directory.
const DIR_VAR: &str = "CXOS_QEMU_DIR";

const DEBOOTSTRAP: HostPackage = HostPackage {
    name: "debootstrap",
    probe: Probe::AnyFile(&["/usr/sbin/debootstrap", "/usr/bin/debootstrap"]),
};

/// Where the provisioned tree lives: `$CXOS_QEMU_DIR`, else
/// `$XDG_CACHE_HOME/cxos/qemu-trixie`, else `/var/cache/cxos/qemu-trixie`
/// for root and `~/.cache/cxos/qemu-trixie` for anyone else.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    cache_dir_from(
        var(DIR_VAR),
        var("XDG_CACHE_HOME"),
        var("HOME"),
        running_as_root(),
    )
}

fn cache_dir_from(
    explicit: Option<OsString>,
    xdg_cache: Option<OsString>,
    home: Option<OsString>,
    root: bool,
) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.into();
    }
    let base = match (xdg_cache, root, home) {
        (Some(xdg), _, _) => PathBuf::from(xdg),
        (None, true, _) | (None, false, None) => return PathBuf::from(ROOT_CACHE_DIR),
        (None, false, Some(home)) => PathBuf::from(home).join(".cache"),
    };
    base.join("cxos").join("qemu-trixie")
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Whether `qemu -device help` output lists the vfio-user device.
pub fn lists_vfio_user(device_help: &str) -> bool {
    device_help.lines().any(|line| {
        line.trim_start()
            .strip_prefix("name \"")
            .and_then(|rest| rest.split('"').next())
            == Some(VFIO_USER_DEVICE)
    })
}

/// Runs `qemu -device help` and looks for `vfio-user-pci`.
fn has_vfio_user(qemu: &Qemu) -> bool {
    Command::new(&qemu.program)
        .args(&qemu.leading_args)
        .args(["-machine", "none", "-device", "help"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| {
            out.status.success() && lists_vfio_user(&String::from_utf8_lossy(&out.stdout))
        })
}

/// How to run the QEMU inside a provisioned tree: its own loader, its own
/// libraries, its own modules and its firmware directories (`-L`), so
/// nothing of the host's (older) QEMU or libraries is mixed in.
///
/// `QEMU_MODULE_DIR` matters: QEMU also searches its compiled-in module
/// directory, which is the host's, and a module of another QEMU build makes
/// it fail. `env` sets it, so a [`Qemu`] stays a program plus arguments.
pub fn tree_qemu(tree: &Path) -> Qemu {
    let lib = tree.join("usr/lib/x86_64-linux-gnu");
    let mut module_dir = OsString::from("QEMU_MODULE_DIR=");
    module_dir.push(lib.join("qemu"));
    let mut library_path = OsString::from(lib.as_os_str());
    library_path.push(":");
    library_path.push(tree.join("usr/lib"));
    Qemu {
        program: provision::find_program("env").unwrap_or_else(|| "/usr/bin/env".into()),
        leading_args: vec![
            module_dir,
            // The real loader file: `lib64/ld-linux-x86-64.so.2` is an
            // absolute symlink that would resolve to the host's loader.
            lib.join("ld-linux-x86-64.so.2").into(),
            "--library-path".into(),
            library_path,
            tree.join("usr/bin/qemu-system-x86_64").into(),
            "-L".into(),
            tree.join("usr/share/qemu").into(),
            "-L".into(),
            tree.join("usr/share/seabios").into(),
        ],
    }
}

/// Whether `qemu` knows the vfio-user device. `-device vfio-user-pci,help`
/// loads at most that device's module, while `-device help` loads every
/// module QEMU was built with (a provisioned tree has only the ones its
/// packages ship).
fn knows_vfio_user(qemu: &Qemu) -> bool {
    Command::new(&qemu.program)
        .args(&qemu.leading_args)
        .args(["-machine", "none", "-device"])
        .arg(format!("{VFIO_USER_DEVICE},help"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout)
                    .starts_with(&format!("{VFIO_USER_DEVICE} options"))
        })
}

/// A QEMU with `vfio-user-pci`: the system's if it has it, else the
/// provisioned one (bootstrapped now if this is the first time).
pub fn vfio_user_qemu() -> Result<Qemu> {
    if let Some(program) = provision::find_program("qemu-system-x86_64") {
        let system = Qemu {
            program,
            leading_args: Vec::new(),
        };
        if has_vfio_user(&system) {
            return Ok(system);
        }
    }
    let dir = cache_dir();
    // A tree root provisioned serves everyone (e.g. a user's run after CI's).
    let shared = Path::new(ROOT_CACHE_DIR);
    if std::env::var_os(DIR_VAR).is_none()
        && !dir.join(STAMP).is_file()
        && shared.join(STAMP).is_file()
    {
        return Ok(tree_qemu(shared));
    }
    provision_tree(&dir)
}

/// The Debian trixie tree QEMU runs from (the shared root one, else
/// ours), provisioned now if needed. Other provisioning steps (the Linux
/// guest, [`crate::linux_guest`]) install their packages into it.
pub fn debian_tree() -> Result<PathBuf> {
    let dir = cache_dir();
    let shared = Path::new(ROOT_CACHE_DIR);
    if std::env::var_os(DIR_VAR).is_none()
        && !dir.join(STAMP).is_file()
        && shared.join(STAMP).is_file()
    {
        return Ok(shared.to_path_buf());
    }
    provision_tree(&dir)?;
    Ok(dir)
}

/// Makes sure `dir` holds a complete tree; returns how to run its QEMU.
pub fn provision_tree(dir: &Path) -> Result<Qemu> {
    let qemu = tree_qemu(dir);
    once(dir, STAMP, bootstrap)?;
    Ok(qemu)
}

/// Builds `dir` once: under an exclusive lock on `<dir>.lock` (concurrent
/// runs wait for each other), `build` fills `<dir>.partial`, which is then
/// renamed to `dir` and gets `stamp` (written last) — so a half-built
/// directory (an interrupted run) is never mistaken for a usable one.
/// Needs root. Nothing happens if `dir` already has its stamp.
pub fn once(dir: &Path, stamp: &str, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if dir.join(stamp).is_file() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .ok_or_else(|| XtaskError::msg(format!("{} has no parent directory", dir.display())))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| XtaskError::msg(format!("cannot create {}: {e}", parent.display())))?;
    let lock_path = with_suffix(dir, ".lock");
    let lock = File::create(&lock_path)
        .map_err(|e| XtaskError::msg(format!("cannot create {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| XtaskError::msg(format!("cannot lock {}: {e}", lock_path.display())))?;
    // Another run may have finished while we waited for the lock.
    if dir.join(stamp).is_file() {
        return Ok(());
    }
    if !running_as_root() {
        return Err(XtaskError::msg(format!(
            "{} is not provisioned, and provisioning it (debootstrap, apt in a \
             chroot) needs root: run `cargo xtask provision --linux-guest` as root once \
             (QEMU and the Linux guest), or set {DIR_VAR} to a tree with QEMU >= 10.1",
            dir.display()
        )));
    }
    let work = with_suffix(dir, ".partial");
    for stale in [&work, &dir.to_path_buf()] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)
                .map_err(|e| XtaskError::msg(format!("cannot remove {}: {e}", stale.display())))?;
        }
    }
    std::fs::create_dir_all(&work)?;
    build(&work)?;
    std::fs::rename(&work, dir).map_err(|e| {
        XtaskError::msg(format!(
            "cannot rename {} to {}: {e}",
            work.display(),
            dir.display()
        ))
    })?;
    std::fs::write(dir.join(stamp), "provisioned by cargo xtask\n")?;
    drop(lock);
    Ok(())
}

/// debootstrap a trixie tree into `work` and install QEMU from
/// trixie-backports in it.
fn bootstrap(work: &Path) -> Result<()> {
    provision::ensure(&[DEBOOTSTRAP]).map_err(|e| {
        XtaskError::msg(format!("provisioning QEMU >= 10.1 needs debootstrap: {e}"))
    })?;
    let started = Instant::now();
    eprintln!(
        "xtask: provisioning QEMU from Debian {BACKPORTS} into {} (once; ~30-100 s, ~350 MB)",
        work.display()
    );
    run(Command::new(debootstrap()).args([
        "--variant=minbase".as_ref(),
        SUITE.as_ref(),
        work.as_os_str(),
        MIRROR.as_ref(),
    ]))?;
    std::fs::write(
        work.join("etc/apt/sources.list.d/backports.list"),
        format!("deb {MIRROR} {BACKPORTS} main\n"),
    )?;
    let in_tree = |args: &[&str]| {
        let mut c = Command::new("chroot");
        c.arg(work)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C");
        c
    };
    run(&mut in_tree(&["apt-get", "update", "-q"]))?;
    run(&mut in_tree(&[
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-t",
        BACKPORTS,
        "qemu-system-x86",
    ]))?;
    run(&mut in_tree(&["apt-get", "clean"]))?;
    let candidate = tree_qemu(work);
    if !knows_vfio_user(&candidate) {
        return Err(XtaskError::msg(format!(
            "the QEMU installed into {} does not list {VFIO_USER_DEVICE}",
            work.display()
        )));
    }
    eprintln!(
        "xtask: provisioned {} in {:.1} s",
        version(&candidate).unwrap_or_else(|| "QEMU".into()),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn debootstrap() -> PathBuf {
    provision::find_program("debootstrap").unwrap_or_else(|| "/usr/sbin/debootstrap".into())
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs `command`, failing on a non-zero exit.
pub fn run(command: &mut Command) -> Result<()> {
    let shown = crate::session::describe(command);
    let status = command
        .stdin(Stdio::null())
        .status()
        .map_err(|e| XtaskError::msg(format!("cannot run {shown}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(XtaskError::msg(format!("`{shown}` failed ({status})")))
    }
}

/// The first line of `qemu --version`, e.g. `QEMU emulator version 11.1.3 (...)`.
pub fn version(qemu: &Qemu) -> Option<String> {
    let out = Command::new(&qemu.program)
        .args(&qemu.leading_args)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_string)
}

/// `cargo xtask provision`: make sure a vfio-user QEMU exists; print how to run it.
pub fn run_provision() -> Result<u8> {
    let started = Instant::now();
    let qemu = vfio_user_qemu()?;
    println!(
        "{}",
        version(&qemu).unwrap_or_else(|| "QEMU (version unknown)".into())
    );
    println!("{}", crate::session::describe(&command_of(&qemu)));
    eprintln!(
        "xtask: provision took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

/// A command that runs `qemu` (program and leading arguments only).
pub fn command_of(qemu: &Qemu) -> Command {
    let mut c = Command::new(&qemu.program);
    c.args(&qemu.leading_args);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_vfio_user_in_device_help() {
        let help = "Network devices:\nname \"e1000e\", bus PCI, desc \"Intel 82574L\"\n\
                    name \"vfio-user-pci\", bus PCI, desc \"VFIO user PCI device\"\n";
        assert!(lists_vfio_user(help));
        let old = "name \"vfio-pci\", bus PCI, desc \"VFIO-based PCI device assignment\"\n\
                   name \"vfio-pci-nohotplug\", bus PCI\n";
        assert!(!lists_vfio_user(old));
        assert!(!lists_vfio_user(""));
    }

    #[test]
    fn cache_dir_precedence() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(
            cache_dir_from(s("/x/q"), s("/xdg"), s("/home/u"), false),
            PathBuf::from("/x/q")
        );
        assert_eq!(
            cache_dir_from(None, s("/xdg"), s("/home/u"), true),
            PathBuf::from("/xdg/cxos/qemu-trixie")
        );
        assert_eq!(
            cache_dir_from(None, None, s("/root"), true),
            PathBuf::from("/var/cache/cxos/qemu-trixie")
        );
        assert_eq!(
            cache_dir_from(None, None, s("/home/u"), false),
            PathBuf::from("/home/u/.cache/cxos/qemu-trixie")
        );
    }

    #[test]
    fn tree_qemu_uses_the_trees_loader_modules_and_firmware() {
        let q = tree_qemu(Path::new("/c/q"));
        assert!(q.program.ends_with("env"), "{}", q.program.display());
        let args: Vec<String> = q
            .leading_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "QEMU_MODULE_DIR=/c/q/usr/lib/x86_64-linux-gnu/qemu \
             /c/q/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
             --library-path /c/q/usr/lib/x86_64-linux-gnu:/c/q/usr/lib \
             /c/q/usr/bin/qemu-system-x86_64 -L /c/q/usr/share/qemu -L /c/q/usr/share/seabios"
        );
    }

    #[test]
    fn a_stamped_tree_is_used_without_provisioning() {
        let dir = std::env::temp_dir().join(format!("xtask-qprov-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(STAMP), "QEMU emulator version 11.1.3").unwrap();
        // No debootstrap, no network: the stamp alone decides.
        let q = provision_tree(&dir).unwrap();
        assert_eq!(q, tree_qemu(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
