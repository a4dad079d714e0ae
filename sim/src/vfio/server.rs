//! The vfio-user server: one model function served to one QEMU client.
//!
//! Threads: the vfio-user loop ([`protocol::serve_connection`], which
//! reads and checks every message itself) answers every message at once: BAR and config accesses go straight to the
//! model under its lock, and a doorbell only kicks the model thread, which
//! runs the command processing and then carries the frames the port
//! transmitted to the link ([`crate::link`]: TAP, unix wire or none), whose
//! own threads write them and put arriving frames into the model's receive
//! path. The control socket has its own thread. When QEMU disconnects the
//! process ends; a client that breaks the protocol (or leaves before
//! VERSION) is disconnected, everything it set up is forgotten (DMA maps,
//! interrupts, a function reset) and the next client is served.
//!
//! Regions: BAR0 is 32 MiB, read/write, trapped (no mmap: doorbells trap,
//! sim/README.md "vfio-user with QEMU"); config space 4 KiB; the other BARs, the
//! ROM and VGA are absent. BAR0 registers are big-endian on the bus: a
//! 32-bit register value `v` at offset `o` is the bytes `v.to_be_bytes()`.
#![deny(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE,
    VFIO_IRQ_INFO_NORESIZE, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TYPE_MASK,
    VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK,
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_ERR_IRQ_INDEX,
    VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_REGIONS,
    VFIO_PCI_REQ_IRQ_INDEX, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    vfio_region_info,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, ServerBackend, ServerRegion};

use super::control::ModuleRequest;
use super::guest_mem::{Access, GuestMemory};
use super::irq::EventfdIrqs;
use super::protocol;
use crate::function::Function;
use crate::link::{Direction, LinkPort, LinkSpec, LinkStats, Pcap, PcapLimits};
use crate::pci_config::{BAR0_SIZE, MSIX_PBA_OFFSET, MSIX_TABLE_OFFSET, MSIX_VECTORS};
use crate::personality::Personality;

/// Bytes of PCI config space (PCIe extended).
pub const CONFIG_SIZE: u64 = 4096;

/// BAR0 pages QEMU keeps for its own MSI-X table and PBA emulation.
fn is_msix_page(off: u64) -> bool {
    let start = MSIX_TABLE_OFFSET as u64 & !0xfff;
    let end = (MSIX_PBA_OFFSET as u64 & !0xfff) + 0x1000;
    (start..end).contains(&off)
}

/// Counters the control socket's `stats` reports.
#[derive(Debug, Default)]
pub struct Counters {
    pub bar_reads: AtomicU64,
    pub bar_writes: AtomicU64,
    pub config_reads: AtomicU64,
    pub config_writes: AtomicU64,
    /// BAR accesses of a size the device does not decode (ignored).
    pub bar_odd: AtomicU64,
    pub resets: AtomicU64,
    pub set_irqs: AtomicU64,
    /// vfio-user clients accepted, and those disconnected for breaking
    /// the protocol ([`protocol`]).
    pub clients: AtomicU64,
    pub clients_refused: AtomicU64,
}

/// Wakes the model thread.
#[derive(Debug, Default)]
struct Kick {
    pending: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

/// Everything the three threads share.
#[derive(Debug)]
pub struct Shared {
    dev: Mutex<Function>,
    pub mem: Arc<GuestMemory>,
    pub irqs: Arc<EventfdIrqs>,
    pub counters: Counters,
    kick: Kick,
    /// The port's cable (set by [`serve`]; none in unit tests).
    link: Mutex<Option<LinkPort>>,
    /// Capture of everything on the cable.
    pcap: Mutex<Option<(PathBuf, Arc<Pcap>)>>,
}

impl Shared {
    pub fn new(p: Personality) -> Arc<Shared> {
        Shared::new_port(p, crate::adapter::Identity::new(p, 0, 1))
    }

    /// The function of port `identity.port` of a board (its MAC follows
    /// the first port's).
    pub fn new_port(p: Personality, identity: crate::adapter::Identity) -> Arc<Shared> {
        let mem = Arc::new(GuestMemory::default());
        let irqs = Arc::new(EventfdIrqs::default());
        let mac = crate::adapter::port_mac(crate::cmd::vport::default_mac(p), identity.port);
        let mut dev = Function::with_mac(p, mac, mem.clone(), irqs.clone());
        dev.identity = identity;
        Arc::new(Shared {
            dev: Mutex::new(dev),
            mem,
            irqs,
            counters: Counters::default(),
            kick: Kick::default(),
            link: Mutex::new(None),
            pcap: Mutex::new(None),
        })
    }

    /// Joins the port to `spec` (frames from it go into the model's
    /// receive path) and captures into `pcap` if given.
    pub fn attach_link(
        self: &Arc<Self>,
        spec: &LinkSpec,
        pcap: Option<&Path>,
        limits: PcapLimits,
    ) -> Result<(), String> {
        if let Some(path) = pcap {
            let p = Pcap::create_with(path, limits)
                .map_err(|e| format!("cannot create the capture {}: {e}", path.display()))?;
            *lock(&self.pcap) = Some((path.to_path_buf(), Arc::new(p)));
        }
        let link = spec
            .open()
            .map_err(|e| format!("cannot open the wire {spec}: {e}"))?;
        let weak = Arc::downgrade(self);
        let carrier = weak.clone();
        let port = LinkPort::start_with_carrier(
            link,
            Box::new(move |frame| {
                if let Some(s) = weak.upgrade() {
                    s.receive(frame);
                }
            }),
            // The other model's cable pulled is ours too (not echoed back).
            Box::new(move |up| {
                if let Some(s) = carrier.upgrade() {
                    s.dev().set_link(up);
                }
            }),
        )
        .map_err(|e| format!("cannot start the wire {spec}: {e}"))?;
        log::info!(target: "mlx5_sim::vfio", "wire {}", port.describe());
        *lock(&self.link) = Some(port);
        Ok(())
    }

    /// A frame arrives at the port from the wire (captured as one).
    pub fn receive(&self, frame: &[u8]) {
        if let Some(p) = self.capturing() {
            p.record(frame, Direction::In);
        }
        let mut d = self.dev();
        // Held for a compressed session until the model thread runs: the
        // frames this reader delivers before then join it.
        let held = d.receive_held(frame);
        let timer = d.take_new_cq_timer();
        drop(d);
        // The model thread ends the burst, and times a CQ moderation
        // period that started.
        if held || timer {
            self.kick();
        }
    }

    fn capturing(&self) -> Option<Arc<Pcap>> {
        lock(&self.pcap).as_ref().map(|(_, p)| p.clone())
    }

    /// The wire's description and counters, if one is attached.
    pub fn link_stats(&self) -> Option<(String, LinkStats)> {
        lock(&self.link)
            .as_ref()
            .map(|l| (l.describe().to_string(), l.stats()))
    }

    /// The capture file and the frames recorded in it.
    pub fn pcap_stats(&self) -> Option<(PathBuf, u64, u64)> {
        lock(&self.pcap)
            .as_ref()
            .map(|(path, p)| (path.clone(), p.records(), p.lost()))
    }

    /// Carrier up or down, as `link up|down` on the control socket: the
    /// model's port (a port-change event) and the wire's other end (a TAP
    /// shows NO-CARRIER, a unix wire's other model goes down too). True
    /// when the port is operationally up.
    pub fn set_link(&self, up: bool) -> bool {
        let oper_up = {
            let mut d = self.dev();
            d.set_link(up);
            d.phys_port.oper_up()
        };
        if let Some(link) = lock(&self.link).as_ref() {
            link.set_carrier(up);
        }
        oper_up
    }

    /// A module request on the cage: the model's port (PORT_MODULE and
    /// port-change events) and the wire's other end, which sees the cable
    /// go with the module (a TAP shows NO-CARRIER). The reply line.
    pub fn module(&self, req: &ModuleRequest) -> Result<String, String> {
        let (reply, cable) = {
            let mut d = self.dev();
            let reply = match req {
                ModuleRequest::Remove => {
                    if !d.remove_module() {
                        return Err("the cage is empty".into());
                    }
                    String::from("removed")
                }
                ModuleRequest::Insert(kind) => {
                    d.insert_module(*kind)?;
                    format!("inserted {}", kind.name())
                }
                ModuleRequest::Error(t) => {
                    d.module_error(*t)?;
                    format!("error {}", crate::module::error_name(*t))
                }
            };
            let p = &d.phys_port;
            let link = if p.oper_up() {
                format!("link up {}G", p.speed_mbps() as f64 / 1000.0)
            } else {
                String::from("link down")
            };
            (
                format!("{reply}, {link}"),
                p.cable_present() && p.far_end_up,
            )
        };
        if let Some(link) = lock(&self.link).as_ref() {
            link.set_carrier(cable);
        }
        Ok(reply)
    }

    /// Unplugs the wire (its threads end).
    fn detach_link(&self) {
        let port = lock(&self.link).take();
        drop(port);
    }

    /// Hands what the port transmitted to the capture and the link, without
    /// holding the model's lock meanwhile; the buffers go back to its pool.
    fn carry_frames<'a>(&'a self, mut d: MutexGuard<'a, Function>, batch: &mut Vec<Vec<u8>>) {
        while d.nic.wire.has_outgoing() {
            d.nic.wire.take_outgoing(batch);
            drop(d);
            if let Some(p) = self.capturing() {
                p.record_all(batch, Direction::Out);
            }
            if let Some(link) = lock(&self.link).as_ref() {
                link.send_batch(batch);
            }
            d = self.dev();
            d.nic.wire.recycle(batch);
        }
    }

    /// The model, locked. A panic on another thread while it held the lock
    /// is a model bug already reported; the state is used as it is.
    pub fn dev(&self) -> MutexGuard<'_, Function> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kick(&self) {
        *self.kick.pending.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.kick.cv.notify_one();
    }

    fn stop(&self) {
        self.kick.stop.store(true, Ordering::Release);
        self.kick();
    }

    /// The model thread: runs command and transmit work whenever a
    /// doorbell asked for it, then carries the transmitted frames.
    fn model_loop(&self) {
        let mut batch = Vec::with_capacity(256);
        // A CQ moderation period running: wake when it runs out.
        let mut timer: Option<Instant> = None;
        loop {
            {
                let mut pending = self.kick.pending.lock().unwrap_or_else(|e| e.into_inner());
                while !*pending && !self.kick.stop.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if timer.is_some_and(|t| t <= now) {
                        break;
                    }
                    let wait = timer.map_or(Duration::from_millis(100), |t| {
                        (t - now).min(Duration::from_millis(100))
                    });
                    pending = self
                        .kick
                        .cv
                        .wait_timeout(pending, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                *pending = false;
            }
            if self.kick.stop.load(Ordering::Acquire) {
                return;
            }
            let mut d = self.dev();
            d.end_burst();
            if d.has_work() {
                d.process();
            } else {
                d.cq_timers();
            }
            timer = d.next_cq_timer();
            // With no link (unit tests) the outbox keeps its old bound.
            if lock(&self.link).is_some() {
                self.carry_frames(d, &mut batch);
            }
        }
    }

    /// BAR0 read of `data.len()` bytes at `off`.
    pub fn bar_read(&self, off: u64, data: &mut [u8]) -> io::Result<()> {
        check_range(off, data.len(), BAR0_SIZE)?;
        self.counters.bar_reads.fetch_add(1, Ordering::Relaxed);
        let d = self.dev();
        // Registers are 32-bit big-endian; any access size reads the bytes
        // of the dwords it covers (reads have no side effects).
        for (i, byte) in data.iter_mut().enumerate() {
            let at = off + i as u64;
            *byte = if is_msix_page(at) {
                0
            } else {
                d.bar_read32((at & !3) as usize).to_be_bytes()[(at & 3) as usize]
            };
        }
        Ok(())
    }

    /// BAR0 write: 32- and 64-bit aligned writes reach the model; other
    /// sizes are dropped (the device decodes only those two).
    pub fn bar_write(&self, off: u64, data: &[u8]) -> io::Result<()> {
        check_range(off, data.len(), BAR0_SIZE)?;
        self.counters.bar_writes.fetch_add(1, Ordering::Relaxed);
        if is_msix_page(off) {
            return Ok(());
        }
        let work = match *data {
            [a, b, c, d] if off.is_multiple_of(4) => self
                .dev()
                .bar_write32(off as usize, u32::from_be_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] if off.is_multiple_of(8) => self
                .dev()
                .bar_write64(off as usize, u64::from_be_bytes([a, b, c, d, e, f, g, h])),
            // Wider stores (a BlueFlame write through write-combining):
            // dword by dword, in order.
            _ if off.is_multiple_of(4) && data.len().is_multiple_of(4) && data.len() <= 64 => {
                let mut d = self.dev();
                let mut work = false;
                for (i, w) in data.chunks_exact(4).enumerate() {
                    let v = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                    work |= d.bar_write32(off as usize + 4 * i, v);
                }
                work
            }
            _ => {
                self.counters.bar_odd.fetch_add(1, Ordering::Relaxed);
                log::warn!(target: "mlx5_sim::vfio", "BAR0 write of {} bytes at {off:#x} dropped", data.len());
                false
            }
        };
        if work {
            self.kick();
        }
        Ok(())
    }

    pub fn config_read(&self, off: u64, data: &mut [u8]) -> io::Result<()> {
        check_range(off, data.len(), CONFIG_SIZE)?;
        self.counters.config_reads.fetch_add(1, Ordering::Relaxed);
        let d = self.dev();
        let mut i = 0;
        while i < data.len() {
            let at = off as usize + i;
            if at.is_multiple_of(4) && data.len() - i >= 4 {
                let v = d.config_read(at as u16, 4);
                data[i..i + 4].copy_from_slice(&v.to_le_bytes());
                i += 4;
            } else {
                data[i] = d.config_read(at as u16, 1) as u8;
                i += 1;
            }
        }
        Ok(())
    }

    pub fn config_write(&self, off: u64, data: &[u8]) -> io::Result<()> {
        check_range(off, data.len(), CONFIG_SIZE)?;
        self.counters.config_writes.fetch_add(1, Ordering::Relaxed);
        let mut d = self.dev();
        let n = data.len();
        if matches!(n, 1 | 2 | 4) && off.is_multiple_of(n as u64) {
            let mut v = [0u8; 4];
            v[..n].copy_from_slice(data);
            d.config_write(off as u16, n, u32::from_le_bytes(v));
        } else {
            for (i, b) in data.iter().enumerate() {
                d.config_write((off as usize + i) as u16, 1, *b as u32);
            }
        }
        Ok(())
    }

    /// Device reset (VFIO_USER_DEVICE_RESET: guest reboot or FLR by QEMU).
    pub fn reset(&self) {
        self.counters.resets.fetch_add(1, Ordering::Relaxed);
        self.dev().reset();
        log::info!(target: "mlx5_sim::vfio", "device reset");
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_range(off: u64, len: usize, size: u64) -> io::Result<()> {
    match off.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("access of {len} bytes at {off:#x} outside a region of {size:#x} bytes"),
        )),
    }
}

/// The `vfio_user` crate's view of the function.
struct Backend {
    shared: Arc<Shared>,
}

const BAR0: u32 = VFIO_PCI_BAR0_REGION_INDEX;
const CONFIG: u32 = VFIO_PCI_CONFIG_REGION_INDEX;

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> io::Result<()> {
        match region {
            BAR0 => self.shared.bar_read(offset, data),
            CONFIG => self.shared.config_read(offset, data),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("region {region} does not exist"),
            )),
        }
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        match region {
            BAR0 => self.shared.bar_write(offset, data),
            CONFIG => self.shared.config_write(offset, data),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("region {region} does not exist"),
            )),
        }
    }

    fn dma_map(
        &mut self,
        flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> io::Result<()> {
        let access = Access {
            read: flags.contains(DmaMapFlags::READ),
            write: flags.contains(DmaMapFlags::WRITE),
        };
        log::debug!(target: "mlx5_sim::vfio", "DMA_MAP {address:#x}+{size:#x} {access:?} fd {}", fd.is_some());
        self.shared
            .mem
            .map(address, size, fd.as_ref(), offset, access)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
    }

    fn dma_unmap(&mut self, flags: DmaUnmapFlags, address: u64, size: u64) -> io::Result<()> {
        log::debug!(target: "mlx5_sim::vfio", "DMA_UNMAP {address:#x}+{size:#x} {flags:?}");
        if flags.contains(DmaUnmapFlags::UNMAP_ALL) {
            self.shared.mem.unmap_all();
            return Ok(());
        }
        self.shared
            .mem
            .unmap(address, size)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
    }

    fn reset(&mut self) -> io::Result<()> {
        self.shared.reset();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> io::Result<()> {
        self.shared
            .counters
            .set_irqs
            .fetch_add(1, Ordering::Relaxed);
        log::debug!(target: "mlx5_sim::vfio", "SET_IRQS index {index} flags {flags:#x} start {start} count {count} fds {}", fds.len());
        let action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        // Only MSI-X triggers matter: the model never raises INTx, and QEMU
        // does MSI-X masking itself.
        if index != VFIO_PCI_MSIX_IRQ_INDEX || action != VFIO_IRQ_SET_ACTION_TRIGGER {
            return Ok(());
        }
        let fds = match data {
            VFIO_IRQ_SET_DATA_EVENTFD => fds,
            VFIO_IRQ_SET_DATA_NONE => Vec::new(),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "unsupported SET_IRQS data type",
                ));
            }
        };
        self.shared
            .irqs
            .set(start, count, fds)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")))
    }
}

fn region(index: u32, size: u64, flags: u32) -> ServerRegion {
    ServerRegion {
        region_info: vfio_region_info {
            argsz: std::mem::size_of::<vfio_region_info>() as u32,
            flags,
            index,
            cap_offset: 0,
            size,
            offset: 0,
        },
        sparse_areas: Vec::new(),
        mmap_fd: None,
    }
}

/// The function's regions in VFIO PCI index order.
fn regions() -> Vec<ServerRegion> {
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| match index {
            BAR0 => region(index, BAR0_SIZE, rw),
            CONFIG => region(index, CONFIG_SIZE, rw),
            _ => region(index, 0, 0),
        })
        .collect()
}

/// The function's interrupts in VFIO PCI index order: INTx (the config
/// space names pin A, as the real part does), no MSI, 64 MSI-X vectors,
/// error reporting.
fn irqs() -> Vec<IrqInfo> {
    let irq = |index, flags, count| IrqInfo {
        index,
        flags,
        count,
    };
    vec![
        irq(
            VFIO_PCI_INTX_IRQ_INDEX,
            VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED,
            1,
        ),
        irq(VFIO_PCI_MSI_IRQ_INDEX, VFIO_IRQ_INFO_EVENTFD, 0),
        irq(
            VFIO_PCI_MSIX_IRQ_INDEX,
            VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE,
            MSIX_VECTORS as u32,
        ),
        // One error-reporting eventfd, so QEMU enables error recovery (the
        // model never reports errors through it).
        irq(VFIO_PCI_ERR_IRQ_INDEX, VFIO_IRQ_INFO_EVENTFD, 1),
        irq(VFIO_PCI_REQ_IRQ_INDEX, VFIO_IRQ_INFO_EVENTFD, 0),
    ]
}

/// What the `mlx5-sim` binary serves.
#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub personality: Personality,
    pub control: Option<PathBuf>,
    /// The port's cable.
    pub wire: LinkSpec,
    /// Capture of everything on the cable (classic pcap).
    pub pcap: Option<PathBuf>,
    /// How much of it the capture keeps.
    pub pcap_limits: PcapLimits,
    /// How long firmware boots after each reset (`initializing` set).
    pub fw_boot_delay: Duration,
    /// Trace every command ([`crate::trace`]) into this file; `-` is stderr.
    pub trace_commands: Option<PathBuf>,
    /// What the cage holds at start.
    pub module: crate::module::ModuleChoice,
    /// Whether the functions have BlueFlame registers (`false`: they
    /// report `bf` and `log_bf_reg_size` 0, [`crate::cmd::caps::Caps::without_blueflame`]).
    pub blueflame: bool,
    /// Ports after the first on the same board (`--ports 2`): each its
    /// own PCI function, served on its own socket.
    pub more_ports: Vec<PortOptions>,
}

/// One more port's function: its vfio-user socket, cable and capture.
#[derive(Debug, Clone)]
pub struct PortOptions {
    pub socket: PathBuf,
    pub wire: LinkSpec,
    pub pcap: Option<PathBuf>,
}

impl Options {
    /// `personality` served on `socket`: no control socket, no cable, the
    /// model's default firmware boot time, no trace.
    pub fn new(socket: PathBuf, personality: Personality) -> Options {
        Options {
            socket,
            personality,
            control: None,
            wire: LinkSpec::None,
            pcap: None,
            pcap_limits: PcapLimits::default(),
            fw_boot_delay: crate::init_seg::DEFAULT_FW_BOOT_DELAY,
            trace_commands: None,
            module: crate::module::ModuleChoice::Default,
            blueflame: true,
            more_ports: Vec::new(),
        }
    }
}

/// Serves one QEMU until it disconnects (with several ports: until every
/// port's client did). The control socket (if any) exists before the
/// vfio-user sockets do, so a launcher that waits for them may use it.
pub fn serve(opts: &Options) -> Result<(), String> {
    let shared = functions(opts)?;
    shared[0].attach_link(&opts.wire, opts.pcap.as_deref(), opts.pcap_limits)?;
    for (s, more) in shared[1..].iter().zip(&opts.more_ports) {
        s.attach_link(&more.wire, more.pcap.as_deref(), opts.pcap_limits)?;
    }
    let control = match &opts.control {
        Some(path) => Some(super::control::listen_ports(path, shared.clone())?),
        None => None,
    };
    let sockets: Vec<&Path> = std::iter::once(opts.socket.as_path())
        .chain(opts.more_ports.iter().map(|m| m.socket.as_path()))
        .collect();
    let result = std::thread::scope(|scope| {
        let served: Vec<_> = shared
            .iter()
            .zip(&sockets)
            .skip(1)
            .map(|(s, socket)| scope.spawn(move || serve_with(socket, s)))
            .collect();
        let mut result = serve_with(sockets[0], &shared[0]);
        for h in served {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(String::from("a port's server panicked")));
            result = result.and(r);
        }
        result
    });
    for s in &shared {
        s.stop();
        s.detach_link();
    }
    if let Some(path) = &opts.control {
        let _ = std::fs::remove_file(path);
    }
    drop(control);
    result
}

/// The board's functions, one per port, in their start state as the
/// options say (no cable, nothing served yet).
pub fn functions(opts: &Options) -> Result<Vec<Arc<Shared>>, String> {
    let ports = 1 + opts.more_ports.len();
    let ports_u8 = u8::try_from(ports).map_err(|_| String::from("too many ports"))?;
    if ports_u8 > opts.personality.max_ports() {
        return Err(format!(
            "{} comes with at most {} ports",
            opts.personality.short_name(),
            opts.personality.max_ports()
        ));
    }
    let mut shared = Vec::with_capacity(ports);
    for port in 0..ports_u8 {
        let s = Shared::new_port(
            opts.personality,
            crate::adapter::Identity::new(opts.personality, port, ports_u8),
        );
        configure(&s, opts, port == 0)?;
        shared.push(s);
    }
    Ok(shared)
}

/// A port's start state as the options say: boot delay, BlueFlame,
/// module, trace (the first port's commands only: one trace file).
fn configure(shared: &Shared, opts: &Options, first: bool) -> Result<(), String> {
    let mut dev = shared.dev();
    dev.set_fw_boot_delay(opts.fw_boot_delay);
    if !opts.blueflame {
        dev.caps.without_blueflame();
    }
    match opts.module {
        crate::module::ModuleChoice::Default => {}
        crate::module::ModuleChoice::Empty => {
            dev.remove_module();
        }
        crate::module::ModuleChoice::Kind(k) => {
            dev.remove_module();
            dev.insert_module(k)
                .map_err(|e| format!("--module {}: {e}", k.name()))?;
        }
    }
    if let Some(path) = opts.trace_commands.as_ref().filter(|_| first) {
        let out: Box<dyn io::Write + Send> = if path.as_os_str() == "-" {
            Box::new(io::stderr())
        } else {
            Box::new(io::BufWriter::new(File::create(path).map_err(|e| {
                format!("cannot create the trace {}: {e}", path.display())
            })?))
        };
        dev.set_trace(crate::trace::Trace::new(out));
    }
    Ok(())
}

fn serve_with(socket: &Path, shared: &Arc<Shared>) -> Result<(), String> {
    let listener =
        listen_at(socket).map_err(|e| format!("cannot serve on {}: {e}", socket.display()))?;
    let model = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("mlx5-sim model".into())
            .spawn(move || shared.model_loop())
            .map_err(|e| format!("cannot start the model thread: {e}"))?
    };
    log::info!(target: "mlx5_sim::vfio", "{} listening on {}", shared.dev().personality.short_name(), socket.display());
    let mut backend = Backend {
        shared: shared.clone(),
    };
    let (regions, irqs) = (regions(), irqs());
    let result = loop {
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => break Err(format!("vfio-user accept failed: {e}")),
        };
        shared.counters.clients.fetch_add(1, Ordering::Relaxed);
        let end = protocol::serve_connection(&mut stream, &mut backend, &regions, &irqs);
        drop(stream);
        match end {
            // QEMU went away: the model goes with it.
            protocol::End::Closed { negotiated: true } => break Ok(()),
            protocol::End::Io(e) => break Err(format!("vfio-user connection failed: {e}")),
            // A client that broke the protocol, or left before VERSION:
            // forget what it set up and wait for the next one.
            protocol::End::Refused(why) => {
                shared
                    .counters
                    .clients_refused
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!(target: "mlx5_sim::vfio", "client disconnected: {why}; waiting for the next");
            }
            protocol::End::Closed { negotiated: false } => {
                log::warn!(target: "mlx5_sim::vfio", "client left before VERSION; waiting for the next");
            }
        }
        shared.mem.unmap_all();
        shared.irqs.clear();
        shared.reset();
    };
    log::info!(target: "mlx5_sim::vfio", "client disconnected");
    // Benchmarks read the model's own packet rate here (the process ends now).
    log::info!(target: "mlx5_sim::vfio", "{}", crate::datapath::tx_engine_line(&shared.dev().nic));
    // Where a transfer lost its frames: the cable's and the port's counters
    // and every drop reason, as the control socket's `wire` answers.
    for line in super::control::execute(super::control::Request::Wire, shared).lines() {
        if line != "ok" {
            log::info!(target: "mlx5_sim::vfio", "{line}");
        }
    }
    shared.stop();
    let _ = model.join();
    shared.mem.unmap_all();
    shared.irqs.clear();
    let _ = std::fs::remove_file(socket);
    result
}

/// A listening unix socket at `path` (which must not exist). The socket is
/// bound and listening under a temporary name first and then renamed, so a
/// client that sees `path` can connect at once (a plain bind makes the file
/// appear before listen(), and a connect in between is refused).
pub fn listen_at(path: &Path) -> io::Result<UnixListener> {
    if path.symlink_metadata().is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the socket path exists",
        ));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar0_is_big_endian_and_msix_pages_stay_with_qemu() {
        let s = Shared::new(Personality::ConnectX5);
        let mut fw = [0u8; 4];
        s.bar_read(0, &mut fw).unwrap();
        let want = s.dev().bar_read32(0);
        assert_eq!(u32::from_be_bytes(fw), want);
        // A byte read takes the right byte of the big-endian dword.
        let mut b = [0u8; 1];
        s.bar_read(3, &mut b).unwrap();
        assert_eq!(b[0], want as u8);
        let mut table = [0xffu8; 8];
        s.bar_read(0x2000, &mut table).unwrap();
        assert_eq!(table, [0; 8]);
        assert!(s.bar_read(BAR0_SIZE - 2, &mut fw).is_err());
        // cmdif_rev 5 in the high half of dword 1 (init segment, device.h).
        s.bar_read(4, &mut fw).unwrap();
        assert_eq!(u16::from_be_bytes([fw[0], fw[1]]), 5);
    }

    #[test]
    fn config_space_reads_and_writes_are_little_endian() {
        let s = Shared::new(Personality::ConnectX6Dx);
        let mut id = [0u8; 4];
        s.config_read(0, &mut id).unwrap();
        assert_eq!(id, [0xb3, 0x15, 0x1d, 0x10]);
        let mut all = vec![0u8; CONFIG_SIZE as usize];
        s.config_read(0, &mut all).unwrap();
        assert_eq!(all[..4], id);
        assert_eq!(all[0x34], 0x40);
        // Bus master on, read back through a 2-byte access.
        s.config_write(4, &[0x06, 0x00]).unwrap();
        let mut cmd = [0u8; 2];
        s.config_read(4, &mut cmd).unwrap();
        assert_eq!(cmd, [0x06, 0x00]);
        assert!(s.config_read(CONFIG_SIZE, &mut cmd).is_err());
        assert_eq!(s.counters.config_writes.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn reset_restores_the_power_on_state() {
        let s = Shared::new(Personality::ConnectX4);
        s.dev().set_fw_boot_delay(Duration::from_secs(3600));
        s.config_write(4, &[0x06]).unwrap();
        // initializing (0x1fc bit 31) is set at power-on.
        let mut init = [0u8; 4];
        s.bar_read(0x1fc, &mut init).unwrap();
        assert_eq!(init[0] & 0x80, 0x80);
        s.reset();
        let mut cmd = [0u8; 1];
        s.config_read(4, &mut cmd).unwrap();
        assert_eq!(cmd[0], 0);
        assert_eq!(s.counters.resets.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn sockets_appear_only_when_listening() {
        let dir = std::env::temp_dir().join(format!("mlx5-sim-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = listen_at(&path).unwrap();
        // Connectable as soon as the path exists, and no temporary is left.
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(
            listen_at(&path).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn regions_and_irqs_describe_the_function() {
        let r = regions();
        assert_eq!(r.len(), 9);
        assert_eq!(r[0].region_info.size, 32 << 20);
        assert_eq!(r[7].region_info.size, 4096);
        assert!(
            r.iter()
                .all(|r| r.sparse_areas.is_empty() && r.mmap_fd.is_none())
        );
        let i = irqs();
        assert_eq!(i[VFIO_PCI_MSIX_IRQ_INDEX as usize].count, 64);
    }
}
