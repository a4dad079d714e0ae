//! MSI / MSI-X for claimed functions, and the `cxos_drivers::platform`
//! traits for a claimed function (what the mlx5 driver runs on): DMA from
//! the kernel's pool, BAR0 through [`Bar0`], config space and MSI-X on
//! [`KernelPlatform`], time through [`KernelClock`].

use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, Ordering, compiler_fence};

use cxos_drivers::{Clock, PciAddress, Platform, PlatformError};
use cxos_kernel::dma::DmaPool;
use cxos_kernel::msi::{self, MsiMessage, MsixLayout};
use cxos_kernel::pci::{self, CAP_MSI, CAP_MSIX, ConfigSpace};
use spin::Mutex;
use volatile::VolatilePtr;

use crate::interrupts::{self, Role};
use crate::pcibus::{Device, Mmio};
use crate::{apic, memory, runtime, smp, time};

/// Enable MSI with one vector on `dev`; returns the vector.
pub fn msi_enable(dev: &Device, name: &'static str) -> Result<u8, String> {
    let cap = pci::find_capability(&dev.cfg, CAP_MSI)
        .ok_or_else(|| alloc::format!("{}: no MSI capability", dev.addr))?;
    let v = interrupts::alloc_vectors(1, 1, Role::Msi, name)
        .ok_or_else(|| String::from("no free interrupt vector"))?;
    msi::msi_enable(&dev.cfg, cap, MsiMessage::fixed(apic::bsp_apic_id(), v));
    Ok(v)
}

pub fn msi_disable(dev: &Device, vector: u8) {
    if let Some(cap) = pci::find_capability(&dev.cfg, CAP_MSI) {
        msi::msi_disable(&dev.cfg, cap);
    }
    interrupts::free_vectors(vector, 1);
}

/// An MSI-X table by the CPU vectors it sends, for [`route_vector`].
struct Routable {
    first: u8,
    count: u16,
    table: Mmio,
    table_offset: usize,
}

static ROUTABLE: Mutex<Vec<Routable>> = Mutex::new(Vec::new());

/// Deliver MSI-X vector `vector` to CPU `cpu`: its table entry gets that
/// CPU's APIC id (masked while rewritten, its mask state kept). IDs above
/// 255 are refused: cxos sets up no interrupt remapping, so no extended
/// destination ID is decoded.
pub fn route_vector(vector: u8, cpu: usize) -> Result<(), String> {
    let apic_id = smp::apic_id(cpu).ok_or_else(|| alloc::format!("no CPU {cpu} online"))?;
    let msg = MsiMessage::to_apic(apic_id, vector, false).map_err(|e| alloc::format!("{e}"))?;
    let tables = ROUTABLE.lock();
    let t = tables
        .iter()
        .find(|t| vector >= t.first && u16::from(vector - t.first) < t.count)
        .ok_or_else(|| alloc::format!("vector {vector:#04x} is no adapter's MSI-X vector"))?;
    let index = u16::from(vector - t.first);
    let masked = msi::msix_masked(&t.table, t.table_offset, index);
    msi::msix_write_entry(&t.table, t.table_offset, index, msg);
    if !masked {
        msi::msix_set_masked(&t.table, t.table_offset, index, false);
    }
    Ok(())
}

/// `msix=`: the most MSI-X vectors one function is given.
static MSIX_LIMIT: AtomicU16 = AtomicU16::new(u16::MAX);

/// Give each function at most `n` MSI-X vectors from now on (`msix=`).
pub fn limit_msix(n: u16) {
    MSIX_LIMIT.store(n.max(1), Ordering::Relaxed);
    log::info!(target: "pci", "msix={n}: at most {n} MSI-X vectors per function");
}

/// MSI-X vectors bound on one function: entry i -> `first + i`.
#[derive(Debug)]
pub struct Msix {
    cap: u16,
    layout: MsixLayout,
    table: Mmio,
    first: u8,
    count: u16,
}

impl Msix {
    /// Bind up to `wanted` (at least `min`) vectors of `dev`'s MSI-X table
    /// to fresh CPU vectors, program and enable them (all unmasked).
    pub fn enable(
        dev: &Device,
        min: u16,
        wanted: u16,
        name: &'static str,
    ) -> Result<Self, PlatformError> {
        let cap = pci::find_capability(&dev.cfg, CAP_MSIX).ok_or(PlatformError::MsixUnsupported)?;
        let layout = msi::msix_layout(&dev.cfg, cap);
        let table = dev
            .bar(layout.table_bar)
            .ok_or(PlatformError::MsixUnsupported)?;
        let table_end = layout.table_offset as usize + usize::from(layout.table_size) * 16;
        if table_end > table.len() {
            log::error!(target: "pci", "{}: MSI-X table past the end of BAR{}", dev.addr, layout.table_bar);
            return Err(PlatformError::MsixUnsupported);
        }
        let want = wanted
            .min(layout.table_size)
            .min(255)
            .min(MSIX_LIMIT.load(Ordering::Relaxed));
        let min = min.max(1);
        if want < min {
            return Err(PlatformError::NoVectors {
                requested: min,
                available: want,
            });
        }
        let mut n = want;
        let first = loop {
            if let Some(v) = interrupts::alloc_vectors(n as u8, 1, Role::MsiX, name) {
                break v;
            }
            if n == min {
                return Err(PlatformError::NoVectors {
                    requested: min,
                    available: interrupts::available_vectors(),
                });
            }
            n -= 1;
        };
        // MSI and MSI-X must not be enabled together (PCI 3.0 6.8.3.3).
        if let Some(msi_cap) = pci::find_capability(&dev.cfg, CAP_MSI) {
            msi::msi_disable(&dev.cfg, msi_cap);
        }
        // Function-masked while the table is written, then unmask entries.
        msi::msix_control(&dev.cfg, cap, true, true);
        for i in 0..n {
            let msg = MsiMessage::fixed(apic::bsp_apic_id(), first + i as u8);
            msi::msix_write_entry(&table, layout.table_offset as usize, i, msg);
            msi::msix_set_masked(&table, layout.table_offset as usize, i, false);
        }
        msi::msix_control(&dev.cfg, cap, true, false);
        ROUTABLE.lock().push(Routable {
            first,
            count: n,
            table,
            table_offset: layout.table_offset as usize,
        });
        Ok(Self {
            cap,
            layout,
            table,
            first,
            count: n,
        })
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    /// CPU vector of entry `index`.
    pub fn vector(&self, index: u16) -> Option<u8> {
        (index < self.count).then(|| self.first + index as u8)
    }

    /// Run `handler` from the main loop each time entry `index` fires
    /// (instead of polling [`Msix::take_pending`]).
    pub fn bind(&self, index: u16, handler: impl FnMut() + Send + 'static) -> bool {
        match self.vector(index) {
            Some(v) => {
                runtime::bind_vector(v, handler);
                true
            }
            None => false,
        }
    }

    pub fn take_pending(&self, index: u16) -> bool {
        self.vector(index).is_some_and(interrupts::take_pending)
    }

    /// Interrupts entry `index`'s vector took (every CPU, since boot).
    pub fn interrupts(&self, index: u16) -> u64 {
        self.vector(index).map_or(0, interrupts::count)
    }

    pub fn set_masked(&self, index: u16, masked: bool) {
        if index < self.count {
            msi::msix_set_masked(
                &self.table,
                self.layout.table_offset as usize,
                index,
                masked,
            );
        }
    }

    /// Disable MSI-X on the function and free the vectors.
    pub fn disable(self, dev: &Device) {
        for i in 0..self.count {
            msi::msix_set_masked(&self.table, self.layout.table_offset as usize, i, true);
        }
        msi::msix_control(&dev.cfg, self.cap, false, false);
        ROUTABLE.lock().retain(|t| t.first != self.first);
        for i in 0..self.count {
            runtime::unbind_vector(self.first + i as u8);
        }
        interrupts::free_vectors(self.first, self.count as u8);
    }
}

/// BAR0 of a claimed function as the driver sees it: big-endian registers
/// through `volatile`'s [`VolatilePtr`], and the barriers of the doorbell
/// protocol. A copy per queue: doorbells take no lock.
///
/// The barriers are compiler fences. On x86-64 the CPU keeps stores to
/// write-back memory in order and does not let an uncached store (every
/// BAR: `pcibus::claim` maps them uncached) pass them, nor loads pass
/// loads; what is left to prevent is the compiler moving plain or
/// volatile accesses across the barrier. Write-combining stores are
/// weakly ordered (Intel SDM vol. 3 11.3, "WC"): they may pass earlier
/// write-back stores and sit in a WC buffer. BlueFlame writes
/// ([`cxos_drivers::Mmio::bar0_write_bf`]) go through `bf`, a
/// write-combining alias of the BAR once [`KernelPlatform::map_blueflame`]
/// made one (`mmu::wc_alias`), so they are fenced on both sides: `sfence`
/// before (the WQE, its frames and the doorbell record are visible before
/// the device sees the write) and after (the WC buffer drained).
#[derive(Clone, Copy, Debug)]
pub struct Bar0 {
    base: u64,
    len: usize,
    /// Where BAR offset 0 is for BlueFlame writes: the write-combining
    /// alias, or `base` (uncached) without one.
    bf: u64,
}

impl Bar0 {
    fn new(bar: Mmio) -> Self {
        assert!(bar.base() != 0, "BAR0 mapped at address 0");
        Self {
            base: bar.base(),
            len: bar.len(),
            bf: bar.base(),
        }
    }

    /// The register at `offset` (bounds and alignment checked: a driver bug
    /// panics).
    fn at<T>(&self, offset: usize) -> VolatilePtr<'static, T> {
        let size = size_of::<T>();
        assert!(
            offset.checked_add(size).is_some_and(|e| e <= self.len) && offset.is_multiple_of(size),
            "BAR0 access at {offset:#x} (size {size}) outside BAR of {:#x} bytes or unaligned",
            self.len
        );
        // SAFETY: in bounds and aligned (checked above; the mapping is page
        // aligned), not null (checked in `new`), and mapped uncached for as
        // long as the kernel runs (BAR mappings are never removed).
        unsafe {
            VolatilePtr::new(NonNull::new_unchecked(
                (self.base as usize + offset) as *mut T,
            ))
        }
    }
}

impl cxos_drivers::Mmio for Bar0 {
    fn bar0_len(&self) -> usize {
        self.len
    }

    fn bar0_read_be32(&self, offset: usize) -> u32 {
        u32::from_be(self.at::<u32>(offset).read())
    }

    fn bar0_write_be32(&self, offset: usize, value: u32) {
        self.at::<u32>(offset).write(value.to_be());
    }

    fn bar0_read_be64(&self, offset: usize) -> u64 {
        u64::from_be(self.at::<u64>(offset).read())
    }

    fn bar0_write_be64(&self, offset: usize, value: u64) {
        self.at::<u64>(offset).write(value.to_be());
    }

    /// `sfence` (the earlier write-back stores first: WC stores may pass
    /// them), four 16-byte SSE2 stores (x86-64's baseline: no feature
    /// check) to the write-combining alias, then `sfence`: the
    /// write-combining buffers drained before the caller goes on.
    fn bar0_write_bf(&self, offset: usize, words: &[u64; 8]) {
        use core::arch::x86_64::{__m128i, _mm_sfence};
        assert!(
            offset.checked_add(64).is_some_and(|e| e <= self.len) && offset.is_multiple_of(64),
            "BlueFlame write at {offset:#x} outside BAR of {:#x} bytes or unaligned",
            self.len
        );
        compiler_fence(Ordering::SeqCst);
        // SAFETY: sfence has no preconditions (SSE is baseline on x86-64).
        unsafe { _mm_sfence() };
        for (k, pair) in words.chunks_exact(2).enumerate() {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&pair[0].to_be_bytes());
            b[8..].copy_from_slice(&pair[1].to_be_bytes());
            // SAFETY: [u8; 16] and __m128i have the same size and any bit
            // pattern is a valid __m128i.
            let v: __m128i = unsafe { core::mem::transmute(b) };
            let p = (self.bf as usize + offset + 16 * k) as *mut __m128i;
            // SAFETY: inside the BAR and 16-aligned (checked above: the
            // BAR mapping and its alias are page aligned, `offset`
            // 64-aligned), mapped for as long as the kernel runs (neither
            // is ever removed); a volatile store of a vector is one 16-byte
            // store.
            unsafe { p.write_volatile(v) };
        }
        // SAFETY: sfence has no preconditions (SSE is baseline on x86-64).
        unsafe { _mm_sfence() };
        compiler_fence(Ordering::SeqCst);
    }

    #[inline]
    fn barrier_before_doorbell_record(&self) {
        compiler_fence(Ordering::SeqCst);
    }

    #[inline]
    fn barrier_before_mmio_doorbell(&self) {
        compiler_fence(Ordering::SeqCst);
    }

    #[inline]
    fn barrier_after_ownership_read(&self) {
        compiler_fence(Ordering::SeqCst);
    }
}

/// The kernel's clock for drivers.
#[derive(Clone, Copy, Debug)]
pub struct KernelClock;

impl Clock for KernelClock {
    fn now_ns(&self) -> u64 {
        time::now_ns()
    }

    fn delay_us(&self, us: u64) {
        time::delay_us(us);
    }

    fn relax(&self) {
        runtime::relax();
    }
}

/// A claimed PCI function as a driver's [`Platform`]: DMA from the
/// kernel's pool, [`Bar0`], config space and MSI-X (this struct),
/// [`KernelClock`].
#[derive(Debug)]
pub struct KernelPlatform {
    dev: Device,
    bar0: Mmio,
    mmio: Bar0,
    dma: &'static DmaPool,
    msix: Mutex<Option<Msix>>,
    name: &'static str,
}

impl KernelPlatform {
    pub fn new(dev: Device, name: &'static str) -> Result<Self, String> {
        let bar0 = dev
            .bar(0)
            .ok_or_else(|| alloc::format!("{}: BAR0 is not a memory BAR", dev.addr))?;
        Ok(Self {
            dev,
            bar0,
            mmio: Bar0::new(bar0),
            dma: &memory::DMA,
            msix: Mutex::new(None),
            name,
        })
    }

    /// Map BAR0 a second time write-combining, in 4 KiB pages
    /// (`mmu::wc_alias`), and send BlueFlame writes through that alias
    /// (the driver writes only BlueFlame buffers through it: a UAR page's
    /// upper half, from offset 0x800, PRM "UAR Page Format"); every other
    /// access, the doorbell and EQ/CQ arm registers included, stays on the
    /// uncached identity mapping. Returns the alias's address. Before the driver takes its
    /// copies of the [`Bar0`].
    #[cfg_attr(not(feature = "mlx5"), allow(dead_code))]
    pub fn map_blueflame(&mut self) -> Result<u64, String> {
        let virt = crate::mmu::wc_alias(self.bar0.base(), self.bar0.len() as u64)
            .map_err(|e| alloc::format!("{e}"))?;
        self.mmio.bf = virt;
        Ok(virt)
    }

    /// Little-endian access to BAR0 for kernel-side users (tests).
    pub fn bar0(&self) -> Mmio {
        self.bar0
    }

    /// Bind a main-loop handler to MSI-X entry `index` (see [`Msix::bind`]).
    pub fn msix_bind(&self, index: u16, handler: impl FnMut() + Send + 'static) -> bool {
        self.msix
            .lock()
            .as_ref()
            .is_some_and(|m| m.bind(index, handler))
    }

    /// [`KernelPlatform::msix_bind`], the vector delivered to CPU `cpu`
    /// and its work run there (CPU 0 if `cpu` cannot take it).
    #[cfg_attr(not(feature = "mlx5"), allow(dead_code))]
    pub fn msix_bind_on(
        &self,
        index: u16,
        cpu: usize,
        handler: impl FnMut() + Send + 'static,
    ) -> bool {
        let Some(v) = self.msix.lock().as_ref().and_then(|m| m.vector(index)) else {
            return false;
        };
        let cpu = match u16::try_from(cpu) {
            Ok(c) if cxos_drivers::Msix::msix_set_cpu(self, index, c).is_ok() => cpu,
            _ => 0,
        };
        runtime::bind_vector_on(cpu, v, handler);
        true
    }

    /// Bus mastering on or off (off while no driver is attached, so a
    /// detached function cannot reach memory).
    #[cfg_attr(not(feature = "mlx5"), allow(dead_code))]
    pub fn set_bus_master(&self, on: bool) {
        let cmd = pci::command(&self.dev.cfg);
        let cmd = if on {
            cmd | pci::COMMAND_BUS_MASTER
        } else {
            cmd & !pci::COMMAND_BUS_MASTER
        };
        pci::set_command(&self.dev.cfg, cmd);
    }

    /// The CPU vectors bound so far.
    pub fn msix_vectors(&self) -> Vec<u8> {
        self.msix
            .lock()
            .as_ref()
            .map(|m| (0..m.count()).filter_map(|i| m.vector(i)).collect())
            .unwrap_or_default()
    }
}

impl Platform for KernelPlatform {
    type Dma = &'static DmaPool;
    type Mmio = Bar0;
    type Config = KernelPlatform;
    type Msix = KernelPlatform;
    type Clock = KernelClock;

    fn dma(&self) -> &&'static DmaPool {
        &self.dma
    }

    fn mmio(&self) -> &Bar0 {
        &self.mmio
    }

    fn config(&self) -> &Self {
        self
    }

    fn msix(&self) -> &Self {
        self
    }

    fn clock(&self) -> &KernelClock {
        &KernelClock
    }
}

impl cxos_drivers::ConfigSpace for KernelPlatform {
    fn pci_address(&self) -> PciAddress {
        self.dev.addr
    }

    fn config_read16(&self, offset: u16) -> u16 {
        self.dev.cfg.read16(offset)
    }

    fn config_write16(&self, offset: u16, value: u16) {
        self.dev.cfg.write16(offset, value);
    }

    fn config_read32(&self, offset: u16) -> u32 {
        self.dev.cfg.read32(offset)
    }

    fn config_write32(&self, offset: u16, value: u32) {
        self.dev.cfg.write32(offset, value);
    }
}

impl cxos_drivers::Msix for KernelPlatform {
    fn msix_table_size(&self) -> u16 {
        pci::find_capability(&self.dev.cfg, CAP_MSIX)
            .map_or(0, |c| pci::msix_table_size(&self.dev.cfg, c))
    }

    fn msix_enable(&self, min: u16, wanted: u16) -> Result<u16, PlatformError> {
        let mut slot = self.msix.lock();
        if let Some(old) = slot.take() {
            old.disable(&self.dev);
        }
        let m = Msix::enable(&self.dev, min, wanted, self.name)?;
        let n = m.count();
        *slot = Some(m);
        Ok(n)
    }

    fn msix_disable(&self) {
        if let Some(m) = self.msix.lock().take() {
            m.disable(&self.dev);
        }
    }

    fn msix_take_pending(&self, vector: u16) -> bool {
        self.msix
            .lock()
            .as_ref()
            .is_some_and(|m| m.take_pending(vector))
    }

    fn msix_count(&self, vector: u16) -> u64 {
        self.msix
            .lock()
            .as_ref()
            .map_or(0, |m| m.interrupts(vector))
    }

    fn msix_set_masked(&self, vector: u16, masked: bool) {
        if let Some(m) = self.msix.lock().as_ref() {
            m.set_masked(vector, masked);
        }
    }

    fn msix_set_cpu(&self, vector: u16, cpu: u16) -> Result<(), PlatformError> {
        let v = self
            .msix
            .lock()
            .as_ref()
            .and_then(|m| m.vector(vector))
            .ok_or(PlatformError::MsixUnsupported)?;
        route_vector(v, usize::from(cpu)).map_err(|_| PlatformError::NoSuchCpu { cpu })
    }
}
