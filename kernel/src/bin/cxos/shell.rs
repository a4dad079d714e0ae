//! The serial console shell. Input arrives by interrupt into the UART ring;
//! the shell runs from the main loop whenever an interrupt woke it.

use alloc::string::String;

use cxos_kernel::pci;

use crate::{
    interrupts, logger, memory, pcibus, power, print, println, registry, runtime, serial, time,
};

#[cfg(feature = "net")]
use crate::netcmd;

const PROMPT: &str = "cxos> ";
const MAX_LINE: usize = 256;

pub struct Shell {
    line: String,
    /// The previous byte was '\r' (a following '\n' is not a second Enter).
    after_cr: bool,
    /// The network app running in the foreground: no prompt until it
    /// ends; Ctrl-C aborts it, other input is dropped.
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    foreground: Option<u32>,
    /// Ctrl-C was the last byte: a line end right after it belongs to it.
    #[cfg_attr(not(feature = "net"), allow(dead_code))]
    after_interrupt: bool,
}

impl Shell {
    pub fn start() -> Self {
        print!("{PROMPT}");
        let mut shell = Self {
            line: String::new(),
            after_cr: false,
            foreground: None,
            after_interrupt: false,
        };
        serial::poll_rx();
        shell.poll();
        shell
    }

    /// Consume every received byte.
    pub fn poll(&mut self) {
        #[cfg(feature = "net")]
        if !self.poll_foreground() {
            return;
        }
        while let Some(b) = serial::read_byte() {
            let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
            let after_interrupt = core::mem::take(&mut self.after_interrupt);
            match b {
                b'\n' if after_cr => {}
                b'\r' | b'\n' if after_interrupt => {}
                b'\r' | b'\n' => {
                    println!();
                    let line = core::mem::take(&mut self.line);
                    #[cfg(feature = "net")]
                    if let Some(id) = netcmd::execute(line.trim()) {
                        self.foreground = id;
                        if id.is_some() {
                            return;
                        }
                        print!("{PROMPT}");
                        continue;
                    }
                    execute(line.trim());
                    print!("{PROMPT}");
                }
                0x08 | 0x7f if self.line.pop().is_some() => print!("\x08 \x08"),
                0x20..=0x7e if self.line.len() < MAX_LINE => {
                    self.line.push(b as char);
                    print!("{}", b as char);
                }
                _ => {}
            }
        }
    }
}

impl Shell {
    /// While a foreground app runs: Ctrl-C aborts it, other input is
    /// dropped; when it has ended, the prompt. True when the shell takes
    /// commands again.
    #[cfg(feature = "net")]
    fn poll_foreground(&mut self) -> bool {
        let Some(id) = self.foreground else {
            return true;
        };
        while let Some(b) = serial::read_byte() {
            if b == 0x03 {
                println!("^C");
                crate::netstack::abort(id);
                self.after_interrupt = true;
                break;
            }
        }
        match crate::netstack::take_result(id) {
            Some(v) => {
                if !v.ok {
                    println!("failed: {}", v.summary);
                }
                self.foreground = None;
                print!("{PROMPT}");
                true
            }
            None => false,
        }
    }
}

const HELP: &str = "commands:
  help                  this list
  lspci                 PCI functions with capabilities
  mem                   heap, frame and DMA usage
  irq                   interrupt vectors and counts (with each adapter's MSI-X)
  phys                  network adapters: PCI address, part, firmware, MAC, link, MTU
  phys <pci>            one adapter in detail: capabilities, EQs, pages, commands
  detach <pci>          detach the driver from an adapter (e.g. detach 01:00.0)
  attach <pci>          attach a detached adapter again
  rings [<pci>]         each port's queues (SQ, RQ, CQs, EQ), its VNICs' queues too
  stats [<pci>]         each port's packet counters, drops and faults
  flows [<pci>]         each port's flow tables, groups and entries as programmed, and as the adapter reports them
  uptime                time since boot";

/// The rest of `help`, after the network commands.
const HELP_TAIL: &str = "  log <target>=<level>  change a log level (or: log <level>)
  reboot                reset the machine
  poweroff              leave";

fn execute(line: &str) {
    let (cmd, arg) = line
        .split_once(' ')
        .map_or((line, ""), |(c, a)| (c, a.trim()));
    match cmd {
        "" => {}
        "help" => {
            println!("{HELP}");
            #[cfg(feature = "net")]
            println!("{}", netcmd::HELP);
            println!("{HELP_TAIL}");
        }
        "lspci" => {
            for f in pcibus::functions() {
                match f.claimed_by {
                    Some(owner) => println!("{} [{owner}]", f.line),
                    None => println!("{}", f.line),
                }
            }
        }
        "mem" => {
            let h = memory::heap_stats();
            let f = memory::frame_stats();
            let d = memory::dma_stats();
            println!(
                "heap: {} bytes used of {} ({} allocations, {} failed)",
                h.used, h.size, h.allocations, h.failures
            );
            println!(
                "frames: {} free, {} used ({} MiB usable)",
                f.free,
                f.used,
                f.usable_bytes >> 20
            );
            println!(
                "dma: {} regions, {} bytes ({} allocations, {} failed)",
                d.regions, d.bytes, d.allocations, d.failures
            );
        }
        "irq" => {
            for (v, role, owner, count) in interrupts::vector_table() {
                println!("irq {v:#04x} {role} {owner}: {count}");
            }
            println!(
                "irq spurious: {}",
                interrupts::count(interrupts::SPURIOUS_VECTOR)
            );
            for line in registry::irq_lines() {
                println!("{line}");
            }
        }
        "phys" if !arg.is_empty() => match pci::parse_address(arg) {
            Err(e) => println!("usage: phys [<pci>] ({e})"),
            Ok(addr) => match registry::report(addr) {
                Ok(report) => print!("{report}"),
                Err(e) => println!("phys: {e}"),
            },
        },
        "phys" => {
            let lines = registry::phys_lines();
            if lines.is_empty() {
                println!("phys: no network adapters");
            }
            for line in lines {
                println!("{line}");
            }
        }
        "detach" | "attach" => match pci::parse_address(arg) {
            Err(e) => println!("usage: {cmd} <pci> ({e})"),
            Ok(addr) if cmd == "detach" => match registry::detach(addr) {
                Ok(report) => println!("{report}"),
                Err(e) => println!("detach: {e}"),
            },
            Ok(addr) => {
                if let Err(e) = registry::attach(addr) {
                    println!("attach: {e}");
                }
            }
        },
        "rings" | "stats" | "flows" => {
            let which = match cmd {
                "rings" => registry::PortReport::Rings,
                "stats" => registry::PortReport::Stats,
                _ => registry::PortReport::Flows,
            };
            let only = if arg.is_empty() {
                Ok(None)
            } else {
                pci::parse_address(arg).map(Some)
            };
            match only {
                Err(e) => println!("usage: {cmd} [<pci>] ({e})"),
                Ok(only) => match registry::port_report(which, only) {
                    Ok(text) => print!("{text}"),
                    Err(e) => println!("{cmd}: {e}"),
                },
            }
        }
        "uptime" => {
            let ns = time::now_ns();
            println!(
                "uptime: {}.{:06} s, {} timers",
                ns / 1_000_000_000,
                (ns / 1000) % 1_000_000,
                runtime::active_timers()
            );
        }
        "log" => match logger::apply(arg) {
            Ok(f) if !arg.is_empty() => println!("log: {f}"),
            Ok(_) => println!("usage: log <target>=<level> | log <level>"),
            Err(e) => println!("log: {e}"),
        },
        "poweroff" => power::poweroff(),
        "reboot" => power::reboot(),
        other => println!("unknown command '{other}' (try help)"),
    }
}
