//! The in-process harness: one simulated function behind the
//! `cxos_drivers::platform` traits, for hosted tests of the driver and of
//! the model. [`Recording`] is the same function with what the driver does
//! recorded in order, for the checks of [`order`].
//!
//! Two modes: [`Mode::Synchronous`] runs device work inside the BAR write
//! that triggers it (deterministic); [`Mode::Threaded`] runs it on a model
//! thread, like hardware, so tests find races.
//!
//! The port's cable: the peer of [`SimPlatform::pair`] (or itself, looped
//! back), nothing (frames go to [`SimPlatform::take_tx`]), or a
//! [`Link`](crate::link::Link) joined with [`SimPlatform::attach_link`]: a
//! TAP device (feature `tap`) or a unix-socket wire. A link takes
//! precedence over the peer while attached. [`SimPlatform::capture`]
//! records everything the port sends and receives in a pcap file.
#![deny(unsafe_code)]

/// `Platform` for a wrapper of [`SimPlatform`] (in its field `sim`) that
/// is its own DMA allocator and MMIO window and leaves configuration
/// space, MSI-X and the clock to the platform it wraps.
macro_rules! platform_over_sim {
    ($t:ty) => {
        impl cxos_drivers::Platform for $t {
            type Dma = $t;
            type Mmio = $t;
            type Config = $crate::harness::SimPlatform;
            type Msix = $crate::harness::SimPlatform;
            type Clock = $crate::harness::SimPlatform;
            fn dma(&self) -> &Self {
                self
            }
            fn mmio(&self) -> &Self {
                self
            }
            fn config(&self) -> &$crate::harness::SimPlatform {
                &self.sim
            }
            fn msix(&self) -> &$crate::harness::SimPlatform {
                &self.sim
            }
            fn clock(&self) -> &$crate::harness::SimPlatform {
                &self.sim
            }
        }
    };
}

pub mod bench;
pub mod dma;
pub mod inspect;
pub mod mem;
pub mod msix;
pub mod order;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use cxos_drivers::{Clock, ConfigSpace, DmaAlloc, Mmio, Msix, PciAddress, PlatformError};

pub use self::bench::{BenchDma, BenchPlatform};
pub use self::dma::{HostDmaSpace, SimDma};
pub use self::mem::{
    CountingAlloc, allocations_total, live_allocations, live_bytes, thread_allocations,
};
use self::msix::Msix as MsixState;
pub use self::order::{OrderError, OrderLog, Recording, Step};
pub use crate::faults::Fault;
use crate::function::Function;
use crate::link::{Direction, Link, LinkPort, LinkStats, Pcap};
use crate::pci_config::{BAR0_SIZE, MSIX_VECTORS};
use crate::personality::Personality;
use crate::sanitizer::Violation;

/// Where device work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Inside the BAR write that triggers it.
    Synchronous,
    /// On the model's own thread.
    Threaded,
}

/// Wakes the model thread.
#[derive(Debug, Default)]
struct Kick {
    flag: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Kick {
    fn kick(&self) {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_one();
    }
}

/// Frames this port transmitted with no peer wired, oldest first.
const TX_LOG_MAX: usize = 4096;

struct Shared {
    dev: Mutex<Function>,
    /// The port at the other end of the cable (itself for loopback); none:
    /// transmitted frames go to `tx_log`.
    peer: Mutex<Option<Weak<Shared>>>,
    /// Frames in flight between this port's outbox and their receiver
    /// (reused: no allocation per batch).
    batch: Mutex<Vec<Vec<u8>>>,
    tx_log: Mutex<std::collections::VecDeque<Vec<u8>>>,
    /// A link the port is joined to (takes precedence over `peer`).
    link: Mutex<Option<LinkPort>>,
    /// Capture of both directions.
    pcap: Mutex<Option<Arc<Pcap>>>,
    /// Whether `link` / `pcap` are set: the packet path looks here first
    /// and takes no lock for what is not in use.
    linked: AtomicBool,
    capturing: AtomicBool,
    space: Arc<HostDmaSpace>,
    msix: Arc<MsixState>,
    mode: Mode,
    kick: Arc<Kick>,
    start: Instant,
    pci_address: PciAddress,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.kick.stop.store(true, Ordering::Release);
        self.kick.kick();
    }
}

/// One PCI function of a fresh adapter model, link up, at 01:00.0.
/// Clones share the device and its memory.
#[derive(Clone)]
pub struct SimPlatform {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for SimPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPlatform")
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// Choices beyond the part and the mode, for tests with several adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// PCI address the platform reports.
    pub pci_address: PciAddress,
    /// Permanent MAC of the port.
    pub mac: [u8; 6],
}

impl SimConfig {
    /// 01:00.0 with the part's default MAC.
    pub fn default_for(p: Personality) -> SimConfig {
        SimConfig {
            pci_address: PciAddress::new(0, 1, 0, 0),
            mac: crate::cmd::vport::default_mac(p),
        }
    }
}

impl SimPlatform {
    pub fn new(p: Personality, mode: Mode) -> SimPlatform {
        SimPlatform::with_config(p, mode, SimConfig::default_for(p))
    }

    pub fn with_config(p: Personality, mode: Mode, config: SimConfig) -> SimPlatform {
        let space = Arc::new(HostDmaSpace::default());
        let msix = Arc::new(MsixState::default());
        let dev = Function::with_mac(p, config.mac, space.clone(), msix.clone());
        let kick = Arc::new(Kick::default());
        let inner = Arc::new(Shared {
            dev: Mutex::new(dev),
            peer: Mutex::new(None),
            batch: Mutex::new(Vec::with_capacity(256)),
            tx_log: Mutex::new(std::collections::VecDeque::new()),
            link: Mutex::new(None),
            pcap: Mutex::new(None),
            linked: AtomicBool::new(false),
            capturing: AtomicBool::new(false),
            space,
            msix,
            mode,
            kick: kick.clone(),
            start: Instant::now(),
            pci_address: config.pci_address,
        });
        if mode == Mode::Threaded {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name(format!("mlx5-sim {}", p.short_name()))
                .spawn(move || model_thread(weak, kick))
                .expect("spawn the model thread");
        }
        SimPlatform { inner }
    }

    /// Two adapters with their ports wired back to back: what one transmits
    /// arrives at the other. `b` has the next PCI bus (02:00.0) and its
    /// default MAC with the last byte incremented, so the MACs differ even
    /// for the same part.
    pub fn pair(a: Personality, b: Personality, mode: Mode) -> (SimPlatform, SimPlatform) {
        let pa = SimPlatform::new(a, mode);
        let mut cb = SimConfig::default_for(b);
        cb.pci_address = PciAddress::new(0, 2, 0, 0);
        if cb.mac == pa.mac() {
            cb.mac[5] = cb.mac[5].wrapping_add(1);
        }
        let pb = SimPlatform::with_config(b, mode, cb);
        *lock(&pa.inner.peer) = Some(Arc::downgrade(&pb.inner));
        *lock(&pb.inner.peer) = Some(Arc::downgrade(&pa.inner));
        (pa, pb)
    }

    /// A board with `ports` ports of part `p` (at most
    /// [`Personality::max_ports`]): one function per port at
    /// `bus`:00.<port>, sharing firmware, serial and system image GUID,
    /// each with its own MAC (consecutive from `mac`), vport, queues,
    /// steering, counters and cable; no port is cabled ([`SimPlatform::cable`]).
    pub fn adapter(
        p: Personality,
        mode: Mode,
        ports: u8,
        bus: u8,
        mac: [u8; 6],
    ) -> Vec<SimPlatform> {
        let ports = ports.clamp(1, p.max_ports());
        (0..ports)
            .map(|port| {
                let s = SimPlatform::with_config(
                    p,
                    mode,
                    SimConfig {
                        pci_address: PciAddress::new(0, bus, 0, port),
                        mac: crate::adapter::port_mac(mac, port),
                    },
                );
                s.with_model(|f| f.identity = crate::adapter::Identity::new(p, port, ports));
                s
            })
            .collect()
    }

    /// Cables port `a` to port `b` (of the same or another board): what
    /// one transmits arrives at the other.
    pub fn cable(a: &SimPlatform, b: &SimPlatform) {
        *lock(&a.inner.peer) = Some(Arc::downgrade(&b.inner));
        *lock(&b.inner.peer) = Some(Arc::downgrade(&a.inner));
    }

    /// One adapter whose port is looped back to itself.
    pub fn new_loopback(p: Personality, mode: Mode) -> SimPlatform {
        let s = SimPlatform::new(p, mode);
        *lock(&s.inner.peer) = Some(Arc::downgrade(&s.inner));
        s
    }

    /// The port's permanent MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.dev().mac
    }

    /// Port counters as the model's port saw the traffic.
    pub fn port_stats(&self) -> crate::wire::PortStats {
        self.dev().nic.wire.stats.clone()
    }

    /// A frame arrives at this port from the wire.
    pub fn inject_rx(&self, frame: &[u8]) {
        capture_rx(&self.inner, frame);
        let mut d = self.dev();
        d.receive(frame);
        wake_for_timer(&self.inner, d);
    }

    /// Frames that arrive together (one burst: CQE compression applies).
    pub fn inject_rx_burst(&self, frames: &[&[u8]]) {
        for f in frames {
            capture_rx(&self.inner, f);
        }
        let mut d = self.dev();
        d.receive_burst(frames.iter().copied());
        wake_for_timer(&self.inner, d);
    }

    /// Joins the port to `link` (replacing an earlier link): frames the
    /// port transmits go to the link, frames from the link arrive at the
    /// port (put in by the link's reader thread). Works in both modes.
    /// [`SimPlatform::set_link`] pulls the cable at both ends: a TAP shows
    /// NO-CARRIER, a unix wire's other model sees its link go down too.
    pub fn attach_link(&self, link: Link) -> io::Result<()> {
        let weak = Arc::downgrade(&self.inner);
        let carrier = weak.clone();
        let port = LinkPort::start_with_carrier(
            link,
            Box::new(move |frame| {
                if let Some(shared) = weak.upgrade() {
                    capture_rx(&shared, frame);
                    let mut d = lock(&shared.dev);
                    d.receive(frame);
                    wake_for_timer(&shared, d);
                }
            }),
            // The peer's cable pulled is ours too (not echoed back).
            Box::new(move |up| {
                if let Some(shared) = carrier.upgrade() {
                    lock(&shared.dev).set_link(up);
                }
            }),
        )?;
        let old = {
            let mut link = lock(&self.inner.link);
            self.inner.linked.store(true, Ordering::Release);
            link.replace(port)
        };
        drop(old);
        Ok(())
    }

    /// Joins the port to a TAP device (see [`SimPlatform::attach_link`]).
    #[cfg(feature = "tap")]
    pub fn attach_tap(&self, tap: crate::link::TapDevice) -> io::Result<()> {
        self.attach_link(Link::Tap(tap))
    }

    /// Unplugs the link (its threads end); its last counters. The port
    /// goes back to its peer (or the tx log).
    pub fn detach_link(&self) -> Option<LinkStats> {
        let port = {
            let mut link = lock(&self.inner.link);
            self.inner.linked.store(false, Ordering::Release);
            link.take()?
        };
        let stats = port.stats();
        drop(port);
        Some(stats)
    }

    /// The attached link's counters.
    pub fn link_stats(&self) -> Option<LinkStats> {
        lock(&self.inner.link).as_ref().map(LinkPort::stats)
    }

    /// Records every frame the port sends or receives from now on in a
    /// classic pcap file at `path` (created or truncated; flushed as it
    /// goes, so a reader sees it while the test runs).
    pub fn capture(&self, path: &Path) -> io::Result<()> {
        let pcap = Arc::new(Pcap::create(path)?);
        let mut slot = lock(&self.inner.pcap);
        *slot = Some(pcap);
        self.inner.capturing.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops capturing; the frames recorded.
    pub fn stop_capture(&self) -> Option<u64> {
        let mut slot = lock(&self.inner.pcap);
        self.inner.capturing.store(false, Ordering::Release);
        slot.take().map(|p| p.records())
    }

    /// With no peer wired: the frames the port transmitted, oldest first
    /// (the last 4096; older ones are dropped).
    pub fn take_tx(&self) -> Vec<Vec<u8>> {
        lock(&self.inner.tx_log).drain(..).collect()
    }

    fn dev(&self) -> MutexGuard<'_, Function> {
        // A panic while holding the lock is a model bug already reported by
        // the panicking test; keep going with the state as it is.
        self.inner.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the model (white-box inspection in tests). The model is
    /// locked meanwhile: `f` must not call back into this platform.
    pub fn with_model<R>(&self, f: impl FnOnce(&mut Function) -> R) -> R {
        f(&mut self.dev())
    }

    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    pub fn personality(&self) -> Personality {
        self.dev().personality
    }

    /// Live `SimDma` allocations: (regions, bytes asked for).
    pub fn dma_in_use(&self) -> (usize, usize) {
        self.inner.space.in_use()
    }

    /// Pages given with MANAGE_PAGES and not yet returned.
    pub fn pages_held(&self) -> usize {
        self.dev().pages.held()
    }

    pub fn sanitizer_violations(&self) -> Vec<Violation> {
        self.dev().violations()
    }

    /// Arm a data-path fault ([`crate::queue_faults`]); what was armed
    /// (with the queue chosen) or why not.
    pub fn inject_queue(&self, q: crate::queue_faults::QueueFault) -> Result<String, String> {
        crate::queue_faults::inject(&mut self.dev(), q)
    }

    pub fn inject(&self, f: Fault) {
        self.dev().inject(f);
    }

    pub fn clear_faults(&self) {
        self.dev().clear_faults();
    }

    /// The model asks for `num_pages` more pages (> 0) or offers to return
    /// some (< 0) through a page-request EQE (type 0x0b). Ignored before
    /// INIT_HCA, when the function has no regular pages.
    pub fn request_pages(&self, num_pages: i32) {
        self.dev().request_pages(num_pages);
    }

    /// Carrier up or down: a port-change EQE (type 0x09, sub_type 4 / 1)
    /// when the operational state changes.
    pub fn set_link(&self, up: bool) {
        self.dev().set_link(up);
        // A TAP shows the cable pulled too (NO-CARRIER).
        if let Some(link) = lock(&self.inner.link).as_ref() {
            link.set_carrier(up);
        }
    }

    /// Times the model signalled `vector` (whether or not it was deliverable).
    pub fn msix_count(&self, vector: u16) -> u64 {
        self.inner.msix.count(vector)
    }

    pub fn commands_executed(&self) -> u64 {
        self.dev().commands_executed
    }

    /// Function level reset, as a write of PCIe device control bit 15 does.
    pub fn function_reset(&self) {
        self.dev().reset();
        self.inner.msix.disable();
    }

    fn after_write(&self, mut d: MutexGuard<'_, Function>, work: bool) {
        if !work {
            if self.inner.mode == Mode::Synchronous {
                // No model thread: any write (a doorbell) lets the model
                // time its CQ moderation periods.
                d.cq_timers();
            }
            return;
        }
        match self.inner.mode {
            Mode::Synchronous => {
                d.process();
                carry_frames(&self.inner, d);
            }
            Mode::Threaded => {
                drop(d);
                self.inner.kick.kick();
            }
        }
    }

    /// Config write; a function level reset also resets the platform's
    /// MSI-X state (the function's table is cleared by FLR).
    fn config_write(&self, offset: u16, size: usize, value: u32) {
        let mut d = self.dev();
        let before = d.config_read(0x9e, 2);
        d.config_write(offset, size, value);
        let msix_was_on = before & 0x8000 != 0;
        let msix_now_on = d.config_read(0x9e, 2) & 0x8000 != 0;
        if msix_was_on && !msix_now_on {
            self.inner.msix.disable();
        }
    }

    fn is_msix(off: usize) -> bool {
        (0x2000..0x4000).contains(&off)
    }
}

fn model_thread(weak: Weak<Shared>, kick: Arc<Kick>) {
    // A CQ moderation period running: wake when it runs out.
    let mut timer: Option<Instant> = None;
    loop {
        {
            let mut flag = kick.flag.lock().unwrap_or_else(|e| e.into_inner());
            while !*flag && !kick.stop.load(Ordering::Acquire) {
                let now = Instant::now();
                if timer.is_some_and(|t| t <= now) {
                    break;
                }
                let wait = timer.map_or(Duration::from_millis(50), |t| {
                    (t - now).min(Duration::from_millis(50))
                });
                flag = kick
                    .cv
                    .wait_timeout(flag, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *flag = false;
        }
        if kick.stop.load(Ordering::Acquire) {
            return;
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let mut d = shared.dev.lock().unwrap_or_else(|e| e.into_inner());
        if d.has_work() {
            d.process();
        } else {
            d.cq_timers();
        }
        timer = d.next_cq_timer();
        carry_frames(&shared, d);
    }
}

/// Frames arrived outside the model thread: a CQ moderation period they
/// started needs the (sleeping) model thread to time it.
fn wake_for_timer(shared: &Shared, mut d: MutexGuard<'_, Function>) {
    if d.take_new_cq_timer() {
        drop(d);
        shared.kick.kick();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn capturing(shared: &Shared) -> Option<Arc<Pcap>> {
    if !shared.capturing.load(Ordering::Acquire) {
        return None;
    }
    lock(&shared.pcap).clone()
}

fn capture_rx(shared: &Shared, frame: &[u8]) {
    if let Some(p) = capturing(shared) {
        p.record(frame, Direction::In);
    }
}

/// Carry the frames `shared`'s port transmitted to its link, the peer's
/// port or the tx log, never holding both devices' locks: take the outbox,
/// release the sender, deliver (under the receiver's lock for a peer),
/// then give the buffers back to the sender's pool.
fn carry_frames<'a>(shared: &'a Shared, mut d: MutexGuard<'a, Function>) {
    while d.nic.wire.has_outgoing() {
        let mut batch = std::mem::take(&mut *lock(&shared.batch));
        d.nic.wire.take_outgoing(&mut batch);
        drop(d);
        if let Some(p) = capturing(shared) {
            p.record_all(&batch, Direction::Out);
        }
        let linked = shared.linked.load(Ordering::Acquire)
            && match lock(&shared.link).as_ref() {
                Some(link) => {
                    // Copied into the link's queue; never blocks.
                    link.send_batch(&batch);
                    true
                }
                None => false,
            };
        if !linked {
            match lock(&shared.peer).as_ref().and_then(Weak::upgrade) {
                Some(p) => {
                    if let Some(pcap) = capturing(&p) {
                        pcap.record_all(&batch, Direction::In);
                    }
                    // Sent back to back: one burst for the receiver (its
                    // compressing CQs write sessions).
                    let mut pd = lock(&p.dev);
                    pd.receive_burst(batch.iter().map(|f| &f[..]));
                    wake_for_timer(&p, pd);
                }
                None => {
                    let mut log = lock(&shared.tx_log);
                    for f in batch.drain(..) {
                        if log.len() == TX_LOG_MAX {
                            log.pop_front();
                        }
                        log.push_back(f);
                    }
                }
            }
        }
        d = lock(&shared.dev);
        d.nic.wire.recycle(&mut batch);
        *lock(&shared.batch) = batch;
    }
}

// Every part is a clone of the same function (an `Arc` inside): cheap to
// clone, and usable from any thread.
cxos_drivers::platform_of_one!(SimPlatform);

impl DmaAlloc for SimPlatform {
    type Region = SimDma;

    fn dma_alloc(&self, size: usize) -> Result<SimDma, PlatformError> {
        SimDma::new(&self.inner.space, size.max(1))
            .ok_or(PlatformError::OutOfDmaMemory { requested: size })
    }
}

impl Mmio for SimPlatform {
    fn bar0_len(&self) -> usize {
        BAR0_SIZE as usize
    }

    fn bar0_read_be32(&self, offset: usize) -> u32 {
        check_bar(offset, 4);
        if Self::is_msix(offset) {
            return self.inner.msix.bar_read32(offset);
        }
        self.dev().bar_read32(offset)
    }

    fn bar0_write_be32(&self, offset: usize, value: u32) {
        check_bar(offset, 4);
        if Self::is_msix(offset) {
            self.inner.msix.bar_write32(offset, value);
            return;
        }
        let mut d = self.dev();
        let work = d.bar_write32(offset, value);
        self.after_write(d, work);
    }

    fn bar0_read_be64(&self, offset: usize) -> u64 {
        check_bar(offset, 8);
        if Self::is_msix(offset) {
            let m = &self.inner.msix;
            return ((m.bar_read32(offset) as u64) << 32) | m.bar_read32(offset + 4) as u64;
        }
        self.dev().bar_read64(offset)
    }

    fn bar0_write_be64(&self, offset: usize, value: u64) {
        check_bar(offset, 8);
        if Self::is_msix(offset) {
            self.inner.msix.bar_write32(offset, (value >> 32) as u32);
            self.inner.msix.bar_write32(offset + 4, value as u32);
            return;
        }
        let mut d = self.dev();
        let work = d.bar_write64(offset, value);
        self.after_write(d, work);
    }

    // Real fences (the model may run on its own thread and reads the
    // memory with atomics); on x86-64 they cost no instruction. Recording
    // them is `order::Recording`'s job.
    #[inline]
    fn barrier_before_doorbell_record(&self) {
        fence(Ordering::Release);
    }

    #[inline]
    fn barrier_before_mmio_doorbell(&self) {
        fence(Ordering::Release);
    }

    #[inline]
    fn barrier_after_ownership_read(&self) {
        fence(Ordering::Acquire);
    }
}

impl ConfigSpace for SimPlatform {
    fn pci_address(&self) -> PciAddress {
        self.inner.pci_address
    }

    fn config_read16(&self, offset: u16) -> u16 {
        self.dev().config_read(offset, 2) as u16
    }

    fn config_write16(&self, offset: u16, value: u16) {
        self.config_write(offset, 2, value as u32);
    }

    fn config_read32(&self, offset: u16) -> u32 {
        self.dev().config_read(offset, 4)
    }

    fn config_write32(&self, offset: u16, value: u32) {
        self.config_write(offset, 4, value);
    }
}

impl Msix for SimPlatform {
    fn msix_table_size(&self) -> u16 {
        MSIX_VECTORS
    }

    fn msix_enable(&self, min: u16, wanted: u16) -> Result<u16, PlatformError> {
        let n = wanted.min(MSIX_VECTORS);
        if n < min || n == 0 {
            return Err(PlatformError::NoVectors {
                requested: min.max(wanted),
                available: MSIX_VECTORS,
            });
        }
        self.inner.msix.enable(n);
        // Message control: MSI-X enable (bit 15) in the capability at 0x9c.
        self.dev().config_write(0x9e, 2, 0x8000);
        Ok(n)
    }

    fn msix_disable(&self) {
        self.inner.msix.disable();
        self.dev().config_write(0x9e, 2, 0);
    }

    fn msix_take_pending(&self, vector: u16) -> bool {
        if self.inner.mode == Mode::Synchronous {
            // No model thread: moderation periods are checked whenever
            // the driver looks for an interrupt.
            self.dev().cq_timers();
        }
        self.inner.msix.take_pending(vector)
    }

    fn msix_count(&self, vector: u16) -> u64 {
        self.inner.msix.count(vector)
    }

    fn msix_set_masked(&self, vector: u16, masked: bool) {
        self.inner.msix.set_masked(vector, masked);
    }
}

impl Clock for SimPlatform {
    fn now_ns(&self) -> u64 {
        self.inner.start.elapsed().as_nanos() as u64
    }

    fn delay_us(&self, us: u64) {
        let until = Instant::now() + Duration::from_micros(us);
        if us >= 100 {
            std::thread::sleep(Duration::from_micros(us));
        }
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }

    fn relax(&self) {
        std::thread::yield_now();
    }
}

/// Driver bugs (misaligned or out-of-range BAR offsets) panic, per the contract.
fn check_bar(offset: usize, size: usize) {
    assert!(
        offset.is_multiple_of(size) && offset + size <= BAR0_SIZE as usize,
        "BAR0 access of {size} bytes at {offset:#x} is misaligned or out of range"
    );
}
