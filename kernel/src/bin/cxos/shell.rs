//! The serial console shell. Input arrives by interrupt into the UART ring;
//! the shell runs from the main loop whenever an interrupt woke it.

use alloc::string::String;

#[cfg(feature = "net")]
use cxos_kernel::shellcmd;
use cxos_kernel::shellcmd::{Command, HELP, HELP_TAIL};

use crate::{
    cpuscmd, drivers, interrupts, logger, memory, pcibus, power, print, println, runtime, serial,
    time,
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
    #[cfg(feature = "net")]
    foreground: Option<crate::netstack::AppId>,
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
            #[cfg(feature = "net")]
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
                    match Command::parse(&line) {
                        #[cfg(feature = "net")]
                        Command::Net(cmd) => {
                            if let Some(id) = netcmd::execute(cmd) {
                                self.foreground = Some(id);
                                return;
                            }
                        }
                        cmd => execute(cmd),
                    }
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

fn execute(cmd: Command<'_>) {
    match cmd {
        Command::Nothing => {}
        Command::Help => {
            println!("{HELP}");
            #[cfg(feature = "net")]
            println!("{}", shellcmd::NET_HELP);
            println!("{HELP_TAIL}");
        }
        Command::Lspci => {
            for f in pcibus::functions() {
                match f.claimed_by {
                    Some(owner) => println!("{} [{owner}]", f.line),
                    None => println!("{}", f.line),
                }
            }
        }
        Command::Mem => {
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
        Command::Irq => {
            for (v, role, owner, count) in interrupts::vector_table() {
                let per_cpu = cpuscmd::per_cpu_counts(v);
                println!("irq {v:#04x} {role} {owner}{per_cpu}: {count}");
            }
            println!(
                "irq spurious: {}",
                interrupts::count(interrupts::SPURIOUS_VECTOR)
            );
            for line in drivers::irq_lines() {
                println!("{line}");
            }
        }
        Command::Phys(Some(addr)) => match drivers::report(addr) {
            Ok(report) => print!("{report}"),
            Err(e) => println!("phys: {e}"),
        },
        Command::Phys(None) => {
            let lines = drivers::phys_lines();
            if lines.is_empty() {
                println!("phys: no network adapters");
            }
            for line in lines {
                println!("{line}");
            }
        }
        Command::Detach(addr) => match drivers::detach(addr) {
            Ok(report) => println!("{report}"),
            Err(e) => println!("detach: {e}"),
        },
        Command::Attach(addr) => {
            if let Err(e) = drivers::attach(addr) {
                println!("attach: {e}");
            }
        }
        Command::Report(which, only) => match drivers::port_report(which, only) {
            Ok(text) => print!("{text}"),
            Err(e) => println!("{}: {e}", which.command()),
        },
        Command::Port(cmd) => match drivers::port_command(cmd) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                let name = match cmd {
                    cxos_kernel::shellcmd::PortCommand::Traninfo { .. } => "traninfo",
                    cxos_kernel::shellcmd::PortCommand::Led(..) => "led",
                    cxos_kernel::shellcmd::PortCommand::Speed(..) => "speed",
                };
                println!("{name}: {e}");
            }
        },
        Command::Faults(verbose) => {
            #[cfg(feature = "mlx5")]
            for l in crate::mlx5nic::faults::lines(verbose) {
                println!("{l}");
            }
            #[cfg(not(feature = "mlx5"))]
            let _ = verbose;
        }
        Command::IrqRoute(r) => cpuscmd::irq_route(r),
        Command::Cpus(c) => cpuscmd::cpus(c),
        Command::Uptime => {
            let ns = time::now_ns();
            println!(
                "uptime: {}.{:06} s, {} timers",
                ns / 1_000_000_000,
                (ns / 1000) % 1_000_000,
                runtime::active_timers()
            );
        }
        Command::Log(arg) => match logger::apply(arg) {
            Ok(f) if !arg.is_empty() => println!("log: {f}"),
            Ok(_) => println!("usage: log <target>=<level> | log <level>"),
            Err(e) => println!("log: {e}"),
        },
        Command::Poweroff => power::poweroff(),
        Command::Reboot => power::reboot(),
        // Run by `Shell::poll` (`netcmd`), which keeps the foreground app.
        #[cfg(feature = "net")]
        Command::Net(_) => {}
        Command::Refused(line) => println!("{line}"),
        Command::Unknown(other) => println!("unknown command '{other}' (try help)"),
    }
}
