//! A vfio-user *client* that is a `cxos_drivers::Platform`: the driver runs
//! against the server over the socket exactly as QEMU presents the function
//! to a guest. BAR0 and config accesses are REGION_READ/WRITE messages,
//! driver memory is a shared file handed over with DMA_MAP (at a bus address
//! above 4 GiB), and MSI-X vectors are socket fds given with SET_IRQS. For
//! tests and benchmarks of the front end without QEMU.
//!
//! No `unsafe`: memory is reached with pread/pwrite on the shared file,
//! which sees the server's MAP_SHARED writes through the page cache.
//!
//! Test support: the platform traits have no error path for MMIO, so a
//! broken connection or a refused message panics (fails the test).
//!
//! Every part of the platform is the client itself (an `Arc` inside).
//! The barriers are fences: DMA memory is reached with system calls,
//! which are ordered already; the fences keep the compiler from moving
//! accesses across them.
#![deny(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{Ordering, fence};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cxos_drivers::{
    Clock, ConfigSpace, DmaAddr, DmaAlloc, DmaRegion, Mmio, Msix, PciAddress, PlatformError,
};
use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
};
use vfio_user::Client;

const PAGE: usize = 4096;
/// Guest RAM of the test: a sparse file, mapped at 4 GiB on the bus.
pub const RAM_SIZE: u64 = 256 << 20;
pub const RAM_BASE: u64 = 1 << 32;

/// The test's guest memory: a shared file and a page allocator over it.
#[derive(Debug)]
struct Ram {
    file: File,
    state: Mutex<Alloc>,
}

#[derive(Debug, Default)]
struct Alloc {
    next: u64,
    /// Freed runs by length in pages, reused for the same length.
    free: HashMap<usize, Vec<u64>>,
    live: usize,
}

impl Ram {
    fn alloc(self: &Arc<Self>, size: usize) -> Option<Dma> {
        let pages = size.div_ceil(PAGE).max(1);
        let off = {
            let mut a = self.state.lock().unwrap();
            let off = match a.free.get_mut(&pages).and_then(Vec::pop) {
                Some(off) => off,
                None => {
                    let off = a.next;
                    if off + (pages * PAGE) as u64 > RAM_SIZE {
                        return None;
                    }
                    a.next += (pages * PAGE) as u64;
                    off
                }
            };
            a.live += 1;
            off
        };
        self.file
            .write_all_at(&vec![0; pages * PAGE], off)
            .expect("zero DMA memory");
        Some(Dma {
            ram: self.clone(),
            off,
            len: size,
            pages,
        })
    }
}

/// One DMA region of the test's guest memory.
#[derive(Debug)]
pub struct Dma {
    ram: Arc<Ram>,
    off: u64,
    len: usize,
    pages: usize,
}

impl Drop for Dma {
    fn drop(&mut self) {
        let mut a = self.ram.state.lock().unwrap();
        a.free.entry(self.pages).or_default().push(self.off);
        a.live -= 1;
    }
}

impl Dma {
    fn at(&self, offset: usize, len: usize) -> u64 {
        assert!(offset + len <= self.len, "DMA access out of range");
        self.off + offset as u64
    }
    fn get<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut b = [0u8; N];
        self.read_bytes(offset, &mut b);
        b
    }
}

impl DmaRegion for Dma {
    fn device_addr(&self) -> DmaAddr {
        DmaAddr(RAM_BASE + self.off)
    }
    fn len(&self) -> usize {
        self.len
    }
    fn read_u8(&self, offset: usize) -> u8 {
        self.get::<1>(offset)[0]
    }
    fn write_u8(&self, offset: usize, value: u8) {
        self.write_bytes(offset, &[value]);
    }
    fn read_be16(&self, offset: usize) -> u16 {
        u16::from_be_bytes(self.get(offset))
    }
    fn write_be16(&self, offset: usize, value: u16) {
        self.write_bytes(offset, &value.to_be_bytes());
    }
    fn read_be32(&self, offset: usize) -> u32 {
        u32::from_be_bytes(self.get(offset))
    }
    fn write_be32(&self, offset: usize, value: u32) {
        self.write_bytes(offset, &value.to_be_bytes());
    }
    fn read_be64(&self, offset: usize) -> u64 {
        u64::from_be_bytes(self.get(offset))
    }
    fn write_be64(&self, offset: usize, value: u64) {
        self.write_bytes(offset, &value.to_be_bytes());
    }
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let at = self.at(offset, dst.len());
        self.ram
            .file
            .read_exact_at(dst, at)
            .expect("read DMA memory");
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        let at = self.at(offset, src.len());
        self.ram
            .file
            .write_all_at(src, at)
            .expect("write DMA memory");
    }
    fn fill(&self, offset: usize, len: usize, byte: u8) {
        self.write_bytes(offset, &vec![byte; len]);
    }
    fn with_bytes<R>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut b = vec![0; len];
        self.read_bytes(offset, &mut b);
        f(&b)
    }
    fn with_bytes_mut<R>(&self, offset: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut b = vec![0; len];
        self.read_bytes(offset, &mut b);
        let r = f(&mut b);
        self.write_bytes(offset, &b);
        r
    }
}

/// One MSI-X vector: the server writes 8 bytes to the peer of `rx` per signal.
#[derive(Debug)]
struct Vector {
    rx: UnixStream,
    masked: bool,
    /// Signals read off `rx` and not yet taken by `msix_take_pending`.
    fired: bool,
    /// Signals read off `rx` so far.
    count: u64,
}

impl Vector {
    /// Read the signals waiting on `rx`.
    fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = self.rx.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.fired = true;
            self.count += (n as u64 / 8).max(1);
        }
    }
}

/// The driver's platform as a vfio-user client, the way QEMU presents the
/// function to a guest. Clones share the connection (a guest reboot keeps
/// it while the driver starts over).
#[derive(Clone)]
pub struct VfioPlatform(Arc<Inner>);

struct Inner {
    client: Mutex<Client>,
    ram: Arc<Ram>,
    vectors: Mutex<Vec<Vector>>,
    start: Instant,
}

impl std::fmt::Debug for VfioPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VfioPlatform")
    }
}

impl VfioPlatform {
    /// Connects to the server at `socket` and hands it `ram_path` (created,
    /// truncated to [`RAM_SIZE`]) as guest memory.
    pub fn connect(socket: &Path, ram_path: &Path) -> Result<VfioPlatform, String> {
        let mut client = Client::new(socket)
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(ram_path)
            .and_then(|f| f.set_len(RAM_SIZE).map(|()| f))
            .map_err(|e| format!("cannot create {}: {e}", ram_path.display()))?;
        client
            .dma_map(0, RAM_BASE, RAM_SIZE, file.as_raw_fd())
            .map_err(|e| format!("DMA_MAP: {e}"))?;
        Ok(VfioPlatform(Arc::new(Inner {
            client: Mutex::new(client),
            ram: Arc::new(Ram {
                file,
                state: Mutex::default(),
            }),
            vectors: Mutex::default(),
            start: Instant::now(),
        })))
    }

    /// REGION_READ (panics if the server refuses: a test failure).
    pub fn read(&self, region: u32, offset: u64, data: &mut [u8]) {
        self.0
            .client
            .lock()
            .unwrap()
            .region_read(region, offset, data)
            .expect("REGION_READ");
    }

    /// REGION_WRITE (panics if the server refuses).
    pub fn write(&self, region: u32, offset: u64, data: &[u8]) {
        self.0
            .client
            .lock()
            .unwrap()
            .region_write(region, offset, data)
            .expect("REGION_WRITE");
    }
}

pub const BAR0: u32 = VFIO_PCI_BAR0_REGION_INDEX;
pub const CONFIG: u32 = VFIO_PCI_CONFIG_REGION_INDEX;

impl VfioPlatform {
    /// DEVICE_RESET, as QEMU sends it when the guest reboots.
    pub fn reset_device(&self) -> Result<(), String> {
        self.0
            .client
            .lock()
            .unwrap()
            .reset()
            .map_err(|e| format!("DEVICE_RESET: {e}"))
    }

    /// DMA regions handed out and not yet dropped.
    pub fn dma_live(&self) -> usize {
        self.0.ram.state.lock().unwrap().live
    }
}

cxos_drivers::platform_of_one!(VfioPlatform);

impl DmaAlloc for VfioPlatform {
    type Region = Dma;

    fn dma_alloc(&self, size: usize) -> Result<Dma, PlatformError> {
        self.0
            .ram
            .alloc(size)
            .ok_or(PlatformError::OutOfDmaMemory { requested: size })
    }
}

impl Mmio for VfioPlatform {
    fn bar0_len(&self) -> usize {
        32 << 20
    }
    fn bar0_read_be32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(BAR0, offset as u64, &mut b);
        u32::from_be_bytes(b)
    }
    fn bar0_write_be32(&self, offset: usize, value: u32) {
        self.write(BAR0, offset as u64, &value.to_be_bytes());
    }
    fn bar0_read_be64(&self, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        self.read(BAR0, offset as u64, &mut b);
        u64::from_be_bytes(b)
    }
    fn bar0_write_be64(&self, offset: usize, value: u64) {
        self.write(BAR0, offset as u64, &value.to_be_bytes());
    }
    fn barrier_before_doorbell_record(&self) {
        fence(Ordering::SeqCst);
    }
    fn barrier_before_mmio_doorbell(&self) {
        fence(Ordering::SeqCst);
    }
    fn barrier_after_ownership_read(&self) {
        fence(Ordering::SeqCst);
    }
}

impl ConfigSpace for VfioPlatform {
    fn pci_address(&self) -> PciAddress {
        PciAddress::new(0, 1, 0, 0)
    }
    fn config_read16(&self, offset: u16) -> u16 {
        let mut b = [0u8; 2];
        self.read(CONFIG, offset as u64, &mut b);
        u16::from_le_bytes(b)
    }
    fn config_write16(&self, offset: u16, value: u16) {
        self.write(CONFIG, offset as u64, &value.to_le_bytes());
    }
    fn config_read32(&self, offset: u16) -> u32 {
        let mut b = [0u8; 4];
        self.read(CONFIG, offset as u64, &mut b);
        u32::from_le_bytes(b)
    }
    fn config_write32(&self, offset: u16, value: u32) {
        self.write(CONFIG, offset as u64, &value.to_le_bytes());
    }
}

impl Msix for VfioPlatform {
    fn msix_table_size(&self) -> u16 {
        let ctl = self.config_read16(0x9e);
        (ctl & 0x7ff) + 1
    }
    fn msix_enable(&self, min: u16, wanted: u16) -> Result<u16, PlatformError> {
        let n = wanted.min(self.msix_table_size());
        if n < min || n == 0 {
            return Err(PlatformError::NoVectors {
                requested: min,
                available: n,
            });
        }
        let mut vectors = self.0.vectors.lock().unwrap();
        let mut client = self.0.client.lock().unwrap();
        // One vector per message, as QEMU does (the server takes one fd a message).
        for v in 0..n {
            let (rx, tx) = UnixStream::pair().unwrap();
            rx.set_nonblocking(true).unwrap();
            client
                .set_irqs(
                    VFIO_PCI_MSIX_IRQ_INDEX,
                    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                    v as u32,
                    1,
                    &[tx.as_raw_fd()],
                )
                .expect("SET_IRQS");
            vectors.push(Vector {
                rx,
                masked: false,
                fired: false,
                count: 0,
            });
        }
        drop(client);
        self.config_write16(0x9e, 0x8000);
        Ok(n)
    }
    fn msix_disable(&self) {
        self.0
            .client
            .lock()
            .unwrap()
            .set_irqs(
                VFIO_PCI_MSIX_IRQ_INDEX,
                VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                0,
                0,
                &[],
            )
            .expect("SET_IRQS disable");
        self.0.vectors.lock().unwrap().clear();
        self.config_write16(0x9e, 0);
    }
    fn msix_take_pending(&self, vector: u16) -> bool {
        let mut vectors = self.0.vectors.lock().unwrap();
        let Some(v) = vectors.get_mut(vector as usize) else {
            return false;
        };
        if v.masked {
            return false;
        }
        v.drain();
        core::mem::take(&mut v.fired)
    }
    fn msix_count(&self, vector: u16) -> u64 {
        let mut vectors = self.0.vectors.lock().unwrap();
        vectors.get_mut(vector as usize).map_or(0, |v| {
            v.drain();
            v.count
        })
    }
    fn msix_set_masked(&self, vector: u16, masked: bool) {
        if let Some(v) = self.0.vectors.lock().unwrap().get_mut(vector as usize) {
            v.masked = masked;
        }
    }
}

impl Clock for VfioPlatform {
    fn now_ns(&self) -> u64 {
        self.0.start.elapsed().as_nanos() as u64
    }
    fn delay_us(&self, us: u64) {
        std::thread::sleep(Duration::from_micros(us));
    }
    fn relax(&self) {
        std::thread::yield_now();
    }
}
