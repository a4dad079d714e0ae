//! A Linux guest for the system tests: Debian trixie's stock kernel
//! (`linux-image-amd64`, Linux 6.12, with its own mlx5_core) and a small
//! initramfs that holds only what the tests run: busybox (static), dash as
//! `/bin/sh`, iproute2's `ip`, `iperf3`, `ethtool`, kmod, `lspci`,
//! `dnsmasq` and busybox's `udhcpd` (DHCP servers for a peer VM), the
//! shared libraries they load, and the kernel modules mlx5_core,
//! virtio_net (a peer VM's NICs), bonding, 8021q, pktgen and qemu_fw_cfg
//! with their dependencies.
//!
//! Provisioned once, like QEMU ([`crate::qemu_provision`]), from the same
//! Debian trixie tree: the packages are installed into the tree with its
//! own apt, the kernel package is downloaded and unpacked there (its
//! modules indexed with the tree's `depmod`), and the files the guest needs
//! are copied into an uncompressed newc cpio ([`crate::cpio`]). The result
//! lives next to the QEMU tree (`/var/cache/cxos/linux-guest-<content>`
//! for root, where `<content>` is a fingerprint of what goes in, so a
//! change to the lists below provisions a new guest instead of using a
//! stale one; `$CXOS_LINUX_GUEST_DIR` overrides): `vmlinuz`,
//! `initramfs.cpio`, `release` (the kernel release) and a stamp written
//! last. Concurrent runs wait on a lock file; a half-built directory is
//! never used.
//!
//! A test hands the guest a shell script through QEMU's firmware config
//! (`-fw_cfg name=opt/cxos/script,file=...`, see [`crate::linux_vm`]); the
//! guest's `/init` mounts the usual file systems, loads `qemu_fw_cfg`, runs
//! the script with dash and powers off. No root file system is unpacked
//! per boot and the cached image is never rewritten.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::cpio;
use crate::{Result, XtaskError};

/// Debian packages the guest's programs come from (installed into the
/// trixie tree; the kernel package is only downloaded and unpacked).
pub const PACKAGES: &[&str] = &[
    "busybox-static",
    "dash",
    "iproute2",
    "iperf3",
    "ethtool",
    "kmod",
    "pciutils",
    "dnsmasq-base",
];

/// The metapackage whose dependency names the kernel image package.
const KERNEL_METAPACKAGE: &str = "linux-image-amd64";

/// Programs copied with the libraries they need (paths in the tree).
const PROGRAMS: &[&str] = &[
    "usr/bin/ip",
    "usr/bin/iperf3",
    "usr/sbin/ethtool",
    "usr/bin/kmod",
    "usr/bin/lspci",
    "usr/sbin/dnsmasq",
];

/// Libraries loaded with dlopen, so the loader's list misses them:
/// glibc's pthread_cancel (iperf3 stops its threads with it) needs
/// libgcc_s for unwinding.
const DLOPENED: &[&str] = &["usr/lib/x86_64-linux-gnu/libgcc_s.so.1"];

/// Modules loaded in the guest (with what they depend on).
/// virtio and virtio_pci are built into Debian's kernel; virtio_net is a
/// module (with net_failover and failover).
pub const MODULES: &[&str] = &[
    "mlx5_core",
    "qemu_fw_cfg",
    "virtio_net",
    "bonding",
    "8021q",
    "pktgen",
];

/// kmod's names for itself.
const KMOD_TOOLS: &[&str] = &["modprobe", "insmod", "rmmod", "lsmod", "modinfo", "depmod"];

/// The loader, its path in the guest, and the library directory.
const LOADER: &str = "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
const LIB_DIR: &str = "usr/lib/x86_64-linux-gnu";

/// Where QEMU's firmware config hands the test script to the guest.
pub const SCRIPT_FW_CFG: &str = "opt/cxos/script";

/// Written last: its presence means the directory is complete.
const STAMP: &str = ".cxos-provisioned";
const DIR_VAR: &str = "CXOS_LINUX_GUEST_DIR";

/// The guest's `/init`.
const INIT: &str = r#"#!/bin/sh
# cxos Linux guest: mount, run the script QEMU passes through fw_cfg
# (opt/cxos/script), power off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname cxos-linux
ip link set lo up
# Answers the test types on the console are not echoed back.
stty -echo 2>/dev/null
modprobe qemu_fw_cfg
script=/sys/firmware/qemu_fw_cfg/by_name/opt/cxos/script/raw
echo "cxos-guest: up $(cut -d' ' -f1 /proc/uptime) s, Linux $(uname -r)"
if [ -r "$script" ]; then
    cp "$script" /tmp/script
    sh /tmp/script
    echo "cxos-guest: script exit $?"
else
    echo "cxos-guest: no script"
fi
sync
poweroff -f
"#;

/// A provisioned guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxGuest {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// The kernel release (`uname -r`), e.g. `6.12.117+deb13-amd64`.
    pub release: String,
}

impl LinuxGuest {
    fn at(dir: &Path) -> Result<LinuxGuest> {
        let release = std::fs::read_to_string(dir.join("release"))
            .map_err(|e| XtaskError::msg(format!("{}: {e}", dir.join("release").display())))?;
        Ok(LinuxGuest {
            kernel: dir.join("vmlinuz"),
            initramfs: dir.join("initramfs.cpio"),
            release: release.trim().to_string(),
        })
    }
}

/// `$CXOS_LINUX_GUEST_DIR`, else `linux-guest-<content>` next to the
/// QEMU tree.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(DIR_VAR).filter(|v| !v.is_empty()) {
        return dir.into();
    }
    let name = format!("linux-guest-{}", content_fingerprint());
    let qemu = crate::qemu_provision::cache_dir();
    qemu.parent()
        .map(|p| p.join(&name))
        .unwrap_or_else(|| Path::new("/var/cache/cxos").join(&name))
}

/// A fingerprint (FNV-1a, 32 bits in hex) of everything that decides the
/// guest's contents: packages, programs, modules and `/init`. A cached
/// guest built from other lists lives in another directory and is left
/// alone (a run of an older tree may still be using it).
pub fn content_fingerprint() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let lists = [PACKAGES, PROGRAMS, DLOPENED, MODULES, KMOD_TOOLS, &[INIT]];
    for item in lists.iter().flat_map(|l| l.iter()) {
        for b in item.bytes().chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff))
}

/// The guest, provisioned now if this is the first time (needs root).
pub fn guest() -> Result<LinuxGuest> {
    let dir = cache_dir();
    if dir.join(STAMP).is_file() {
        return LinuxGuest::at(&dir);
    }
    crate::qemu_provision::once(&dir, STAMP, |work| {
        let tree = crate::qemu_provision::debian_tree()?;
        build(&tree, work)
    })?;
    LinuxGuest::at(&dir)
}

/// Runs `args` inside the tree (chroot), failing on a non-zero exit.
fn in_tree(tree: &Path, args: &[&str]) -> Result<()> {
    let mut c = Command::new("chroot");
    c.arg(tree)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C");
    crate::qemu_provision::run(&mut c)
}

/// Like [`in_tree`], returning standard output.
fn in_tree_output(tree: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("chroot")
        .arg(tree)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| XtaskError::msg(format!("cannot run chroot: {e}")))?;
    if !out.status.success() {
        return Err(XtaskError::msg(format!(
            "`chroot {} {}` failed ({})",
            tree.display(),
            args.join(" "),
            out.status
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel image package `linux-image-amd64` depends on, from
/// `apt-cache depends` output.
pub fn kernel_package(apt_cache_depends: &str) -> Option<&str> {
    apt_cache_depends.lines().find_map(|l| {
        let dep = l.trim().strip_prefix("Depends: ")?;
        dep.starts_with("linux-image-").then_some(dep.trim())
    })
}

/// Builds the guest into `work` from the trixie `tree`.
fn build(tree: &Path, work: &Path) -> Result<()> {
    let started = Instant::now();
    eprintln!(
        "xtask: provisioning the Linux guest (Debian trixie {KERNEL_METAPACKAGE} and tools) into {} (once)",
        work.display()
    );
    in_tree(tree, &["apt-get", "update", "-q"])?;
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend_from_slice(PACKAGES);
    in_tree(tree, &install)?;
    let depends = in_tree_output(tree, &["apt-cache", "depends", KERNEL_METAPACKAGE])?;
    let kpkg = kernel_package(&depends)
        .ok_or_else(|| XtaskError::msg(format!("no linux-image dependency in:\n{depends}")))?;
    let release = kpkg.trim_start_matches("linux-image-").to_string();
    // The kernel package is unpacked in the tree's /tmp (the tree's dpkg
    // and depmod run on it), then removed.
    // Named by content: guests of two trees may be built at once.
    let scratch_in_tree = format!("/tmp/cxos-linux-guest-{}", content_fingerprint());
    let scratch = tree.join(scratch_in_tree.trim_start_matches('/'));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    // apt downloads as its own user (_apt) where it may.
    std::fs::set_permissions(
        &scratch,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )?;
    let script = format!(
        "cd {scratch_in_tree} && apt-get download -q {kpkg} && dpkg-deb -x {kpkg}_*.deb k \
         && ln -s usr/lib k/lib && depmod -b {scratch_in_tree}/k {release}"
    );
    in_tree(tree, &["sh", "-c", &script])?;
    let kroot = scratch.join("k");
    let image = Initramfs::collect(tree, &kroot, &release)?;
    image.write(&work.join("initramfs.cpio"))?;
    std::fs::copy(
        kroot.join(format!("boot/vmlinuz-{release}")),
        work.join("vmlinuz"),
    )?;
    std::fs::write(work.join("release"), format!("{release}\n"))?;
    std::fs::remove_dir_all(&scratch)?;
    eprintln!(
        "xtask: Linux guest {release} provisioned in {:.1} s ({} files, {:.1} MB initramfs)",
        started.elapsed().as_secs_f64(),
        image.files.len(),
        std::fs::metadata(work.join("initramfs.cpio"))?.len() as f64 / 1e6
    );
    Ok(())
}

/// What goes into the initramfs: guest path -> where its bytes come from.
#[derive(Debug, Default)]
struct Initramfs {
    dirs: BTreeSet<String>,
    /// (guest path, source path, mode).
    files: Vec<(String, PathBuf, u32)>,
    /// (guest path, target).
    links: Vec<(String, String)>,
}

impl Initramfs {
    fn add_dirs(&mut self, path: &str) {
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            self.dirs.insert(at.clone());
        }
    }

    fn add_file(&mut self, guest: &str, src: PathBuf, mode: u32) {
        if self.files.iter().any(|(g, _, _)| g == guest) {
            return;
        }
        if let Some((parent, _)) = guest.rsplit_once('/') {
            self.add_dirs(parent);
        }
        self.files.push((guest.to_string(), src, mode));
    }

    fn add_link(&mut self, guest: &str, target: &str) {
        if let Some((parent, _)) = guest.rsplit_once('/') {
            self.add_dirs(parent);
        }
        self.links.push((guest.to_string(), target.to_string()));
    }

    fn has(&self, guest: &str) -> bool {
        self.files.iter().any(|(g, _, _)| g == guest) || self.links.iter().any(|(g, _)| g == guest)
    }

    /// Everything the guest needs, from the tree and the unpacked kernel
    /// package at `kroot`.
    fn collect(tree: &Path, kroot: &Path, release: &str) -> Result<Initramfs> {
        let mut img = Initramfs::default();
        for d in [
            "bin", "sbin", "usr/bin", "usr/sbin", "lib64", LIB_DIR, "proc", "sys", "dev", "tmp",
            "run", "etc", "root", "var",
        ] {
            img.add_dirs(d);
        }
        // Debian is usr-merged: /lib is usr/lib.
        img.add_link("lib", "usr/lib");
        img.add_file(LOADER, tree.join(LOADER), 0o755);
        img.add_link("lib64/ld-linux-x86-64.so.2", &format!("/{LOADER}"));
        img.add_file("bin/busybox", tree.join("usr/bin/busybox"), 0o755);
        img.add_file("bin/sh", tree.join("usr/bin/dash"), 0o755);
        for prog in PROGRAMS {
            img.add_file(prog, tree.join(prog), 0o755);
            for lib in libraries(tree, &tree.join(prog))? {
                img.add_file(&lib, tree.join(&lib), 0o755);
            }
        }
        for lib in DLOPENED {
            img.add_file(lib, tree.join(lib), 0o755);
        }
        for tool in KMOD_TOOLS {
            img.add_link(&format!("usr/sbin/{tool}"), "/usr/bin/kmod");
        }
        // Busybox for every command no real program provides.
        let applets = Command::new(tree.join("usr/bin/busybox"))
            .arg("--list")
            .output()
            .map_err(|e| XtaskError::msg(format!("cannot run busybox --list: {e}")))?;
        for applet in String::from_utf8_lossy(&applets.stdout).lines() {
            let shadowed = ["bin", "sbin", "usr/bin", "usr/sbin"]
                .iter()
                .any(|d| img.has(&format!("{d}/{applet}")));
            if !applet.is_empty() && !shadowed && !applet.contains('/') {
                img.add_link(&format!("bin/{applet}"), "busybox");
            }
        }
        let mods = format!("usr/lib/modules/{release}");
        let mod_dir = kroot.join(&mods);
        let dep = std::fs::read_to_string(mod_dir.join("modules.dep"))
            .map_err(|e| XtaskError::msg(format!("{}: {e}", mod_dir.display())))?;
        for m in module_closure(&dep, MODULES)? {
            img.add_file(&format!("{mods}/{m}"), mod_dir.join(&m), 0o644);
        }
        for index in std::fs::read_dir(&mod_dir)? {
            let name = index?.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.") {
                img.add_file(&format!("{mods}/{name}"), mod_dir.join(&name), 0o644);
            }
        }
        Ok(img)
    }

    fn write(&self, to: &Path) -> Result<()> {
        let out = std::io::BufWriter::new(File::create(to)?);
        let mut w = cpio::Writer::new(out);
        for d in &self.dirs {
            w.dir(d)?;
        }
        for (guest, src, mode) in &self.files {
            let data = std::fs::read(src)
                .map_err(|e| XtaskError::msg(format!("{}: {e}", src.display())))?;
            w.file(guest, *mode, &data)?;
        }
        for (guest, target) in &self.links {
            w.symlink(guest, target)?;
        }
        w.file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )?;
        w.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
        w.file("init", 0o755, INIT.as_bytes())?;
        w.finish()?;
        Ok(())
    }
}

/// The libraries `program` loads, as paths in the tree (the tree's own
/// loader lists them: `ld.so --list` maps the libraries without running
/// the program).
fn libraries(tree: &Path, program: &Path) -> Result<Vec<String>> {
    let lib = tree.join(LIB_DIR);
    let out = Command::new(tree.join(LOADER))
        .arg("--list")
        .arg("--library-path")
        .arg(format!(
            "{}:{}",
            lib.display(),
            tree.join("usr/lib").display()
        ))
        .arg(program)
        .output()
        .map_err(|e| {
            XtaskError::msg(format!(
                "cannot list the libraries of {}: {e}",
                program.display()
            ))
        })?;
    if !out.status.success() {
        return Err(XtaskError::msg(format!(
            "the loader cannot list {}: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    parse_loader_list(&String::from_utf8_lossy(&out.stdout), tree)
}

/// Paths (relative to `tree`) of the libraries in `ld.so --list` output
/// (`libc.so.6 => /tree/usr/lib/x86_64-linux-gnu/libc.so.6 (0x...)`).
pub fn parse_loader_list(text: &str, tree: &Path) -> Result<Vec<String>> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("=> ") else {
            continue;
        };
        let path = rest.split(" (").next().unwrap_or("").trim();
        let rel = Path::new(path).strip_prefix(tree).map_err(|_| {
            XtaskError::msg(format!(
                "library outside the tree {}: {line}",
                tree.display()
            ))
        })?;
        libs.push(rel.to_string_lossy().into_owned());
    }
    Ok(libs)
}

/// The module files (paths under the modules directory) of `wanted` and
/// everything they depend on, from `modules.dep` (`path: dep dep ...`).
/// Names compare with `-` and `_` alike, as modprobe does.
pub fn module_closure(modules_dep: &str, wanted: &[&str]) -> Result<BTreeSet<String>> {
    let norm = |s: &str| s.replace('-', "_");
    let deps: Vec<(&str, Vec<&str>)> = modules_dep
        .lines()
        .filter_map(|l| {
            let (path, rest) = l.split_once(':')?;
            Some((path.trim(), rest.split_whitespace().collect()))
        })
        .collect();
    let name_of = |path: &str| {
        let file = path.rsplit('/').next().unwrap_or(path);
        norm(file.split(".ko").next().unwrap_or(file))
    };
    let mut out = BTreeSet::new();
    for w in wanted {
        let (path, more) = deps
            .iter()
            .find(|(p, _)| name_of(p) == norm(w))
            .ok_or_else(|| XtaskError::msg(format!("module {w} is not in modules.dep")))?;
        out.insert(path.to_string());
        out.extend(more.iter().map(|m| m.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_package_comes_from_the_metapackage() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.12.117+deb13-amd64\n";
        assert_eq!(
            kernel_package(text),
            Some("linux-image-6.12.117+deb13-amd64")
        );
        assert_eq!(kernel_package("linux-image-amd64\n"), None);
    }

    #[test]
    fn modules_come_with_their_dependencies() {
        let dep = "kernel/drivers/net/ethernet/mellanox/mlx5/core/mlx5_core.ko.xz: \
                   kernel/drivers/net/ethernet/mellanox/mlxfw/mlxfw.ko.xz \
                   kernel/drivers/pci/controller/pci-hyperv-intf.ko.xz\n\
                   kernel/drivers/net/ethernet/mellanox/mlxfw/mlxfw.ko.xz:\n\
                   kernel/drivers/pci/controller/pci-hyperv-intf.ko.xz:\n\
                   kernel/net/8021q/8021q.ko.xz: kernel/net/802/garp.ko.xz\n";
        let got = module_closure(dep, &["mlx5_core", "8021q"]).unwrap();
        assert_eq!(got.len(), 5);
        assert!(got.contains("kernel/drivers/pci/controller/pci-hyperv-intf.ko.xz"));
        assert!(module_closure(dep, &["pci_hyperv_intf"]).is_ok());
        assert!(module_closure(dep, &["bonding"]).is_err());
    }

    #[test]
    fn loader_lines_map_back_into_the_tree() {
        let tree = Path::new("/c/t");
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibc.so.6 => /c/t/usr/lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_loader_list(text, tree).unwrap(),
            vec!["usr/lib/x86_64-linux-gnu/libc.so.6".to_string()]
        );
        assert!(parse_loader_list("\tlibc.so.6 => /usr/lib/libc.so.6 (0x1)\n", tree).is_err());
    }

    #[test]
    fn the_cache_is_named_by_its_content() {
        let f = content_fingerprint();
        assert_eq!(f.len(), 8);
        assert!(f.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(f, content_fingerprint());
        if std::env::var_os(DIR_VAR).is_none() {
            assert!(cache_dir().ends_with(format!("linux-guest-{f}")));
        }
    }

    #[test]
    fn init_runs_the_fw_cfg_script() {
        assert!(INIT.contains(&format!("by_name/{SCRIPT_FW_CFG}/raw")));
        assert!(INIT.starts_with("#!/bin/sh\n"));
        assert!(INIT.trim_end().ends_with("poweroff -f"));
    }
}
