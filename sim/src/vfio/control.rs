//! The control socket: a unix stream socket speaking lines, for tests and
//! people operating a running model.
//!
//! Each request is one line; each reply is zero or more lines of data and
//! then one final line that starts with `ok` or `error: `, so a client reads
//! until such a line. Requests that concern a port take its number right
//! after the verb, default 0 (`mlx5-sim --ports 2` has ports 0 and 1: `link
//! 1 down`, `module 1`, `fault 1 health 5`, `stats 1`). Requests:
//!
//! - `help`: the list below.
//! - `adapter`: the board (`adapter <part> firmware <v> psid <psid> serial
//!   <s> system-image-guid <hex> ports <n>`), then per port `port <i> mac
//!   <mac> port-guid <hex> link up|down`.
//! - `link [<port>] down` / `link [<port>] up`: the port's carrier goes away / comes back (a
//!   port-change event through the model when the operational state changes;
//!   a TAP wire's interface shows NO-CARRIER while down, a unix wire's other
//!   model goes down and up with it).
//! - `stats`: `firmware <major.minor.subminor> psid <psid>`, `commands
//!   <n>`, `msix <vector> <n>` per vector signalled,
//!   `msix-dropped <n>`, `interrupts-lost <n>` (`fault lost-interrupt`),
//!   `dma maps <n> unmaps <n> live <n> bytes <n>`,
//!   `mmio reads <n> writes <n> dropped <n>`, `config reads <n> writes <n>`,
//!   `resets <n>`, `vfio-clients <n> refused <n>` (clients disconnected
//!   for breaking the protocol), `set-irqs <n> vectors <n>`, `link up|down`,
//!   the fast path line, the transmit engine's rate
//!   (`crate::datapath::tx_engine_line`), and with a
//!   wire `wire tx <n> rx <n> connected yes|no`.
//! - `wire`: the cable: `wire <tap:IF|unix:PATH|none> connected yes|no
//!   connects <n> peer-carrier-changes <n>`, `wire tx frames <n> bytes <n> dropped-queue <n>
//!   dropped-no-peer <n> errors <n>`, `wire rx frames <n> bytes <n>`, the
//!   port's own counters `port tx frames <n> bytes <n> dropped-link-down <n>
//!   dropped-outbox-full <n>`, `port rx frames <n> bytes <n> delivered <n>
//!   dropped <n>`, the reasons `port-drops no-wqe <n> no-steering <n>
//!   not-ready <n> link-down <n> bad-length <n> too-long <n> wqe-error <n>`,
//!   and `pcap <file> records <n> lost <n>` when capturing.
//! - `pages`: `ok <n> pages held`.
//! - `objects`: one line `<kind> <n>` per kind of object the driver holds
//!   (uars, eqs, cqs, sqs, rqs, tises, tirs, rqts, flow-tables,
//!   flow-counters, q-counters, mkeys, pds, tds), `left-at-teardown <n>`
//!   (objects still alive at the last TEARDOWN_HCA / DISABLE_HCA: what a
//!   driver failed to destroy), then `ok <n> objects`.
//! - `pages request <n>`: a page-request event asking for `n` more pages
//!   (`n` > 0) or offering `-n` back (`n` < 0); ignored before INIT_HCA.
//! - `sanitizer`: one line per violation, then `ok <n> violations`.
//! - `module [<port>]`: what the cage holds (`module <port> <cage> empty`
//!   or `module <port> <cage> <kind> (<what>) <state>`), then the link.
//! - `module [<port>] remove`: the module leaves the cage (PORT_MODULE
//!   unplugged, the link goes down, the wire's other end sees no carrier).
//! - `module [<port>] insert <kind>`: kinds `10g-dac`, `10g-sr`, `25g-dac`,
//!   `1g-copper`, `40g-qsfp`, `100g-sr4`, `100g-dac`, `200g-dac`; one that
//!   cannot work in the cage is refused with the reason.
//! - `module [<port>] error <type>`: the module reports error `type`
//!   (`power-budget`, `long-range`, `bus-stuck`, `bad-eeprom`,
//!   `part-number`, `unknown-identifier`, `high-temperature`, `bad-cable`,
//!   `power-slot`); the link goes down until the module is replaced.
//! - `led [<port>]`: `ok led off`, `ok led on`, or `ok led beacon <s>s`
//!   (seconds left) as MLCR last set it.
//! - `inject [<port>] <hex>`: the frame (hex digits, no separators) arrives at the
//!   port as if from the wire (captured like one); `ok injected <n> bytes`.
//! - `fault no-completion <opcode>`: the next command with this opcode never completes.
//! - `fault status <opcode> <status> <syndrome>`: the next one fails with these.
//! - `fault health <syndrome>`: health syndrome set, health counter stops.
//! - `fault health-counter-stops`: the health counter stops.
//! - `fault initializing-stuck`: `initializing` never clears.
//! - `fault internal-error`: an internal error event (type 0x08) on the
//!   EQ subscribed to it (the driver's answer is a function reset).
//! - `fault sq-bad-lkey|sq-bad-addr|sq-bad-opcode|rq-bad-lkey|rq-bad-addr|eq-stall|cq-overflow|cq-overflow-lost-event|wq-catastrophic|wq-invalid-request|wq-access-error|sq-stall|lost-interrupt ...`:
//!   data-path faults (`queue_faults`: arguments, defaults, what the model
//!   does); `ok armed <kind> <queue>=<n> ...` names the queue chosen.
//! - `fault clear`: every fault disarmed.
//!
//! Numbers are decimal or `0x` hexadecimal.
//!
//! Clients are untrusted: a line longer than [`MAX_LINE`] or not UTF-8
//! gets an `error:` line and the connection closed; at most [`MAX_CLIENTS`]
//! are served at once (one more gets an `error:` line and is closed).
#![deny(unsafe_code)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::server::Shared;
use crate::faults::Fault;
use crate::pci_config::MSIX_VECTORS;

/// One parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Help,
    /// `adapter`: the board and its ports.
    Adapter,
    Link {
        up: bool,
    },
    /// `module`: what is plugged.
    ModuleShow,
    Module(ModuleRequest),
    Led,
    Stats,
    Wire,
    Pages,
    Objects,
    /// A page-request event: the model asks for `n` more pages (> 0) or
    /// offers `-n` back (< 0); ignored before INIT_HCA.
    RequestPages(i32),
    Sanitizer,
    /// A frame arrives at the port as if from the wire.
    Inject(Vec<u8>),
    Fault(Fault),
    /// A data-path fault ([`crate::queue_faults`]).
    QueueFault(crate::queue_faults::QueueFault),
    ClearFaults,
}

/// What `module remove|insert|error` asks of the cage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRequest {
    Remove,
    Insert(crate::module::ModuleKind),
    Error(u8),
}

/// What `help` prints.
pub const HELP: &str = "\
help
adapter
link [<port>] down|up
module [<port>]
module [<port>] remove
module [<port>] insert 10g-dac|10g-sr|25g-dac|1g-copper|40g-qsfp|100g-sr4|100g-dac|200g-dac
module [<port>] error power-budget|long-range|bus-stuck|bad-eeprom|part-number|unknown-identifier|high-temperature|bad-cable|power-slot
led [<port>]
stats
wire
pages
pages request <n>
objects
sanitizer
inject [<port>] <hex bytes of one Ethernet frame>
fault no-completion <opcode>
fault status <opcode> <status> <syndrome>
fault health <syndrome>
fault health-counter-stops
fault initializing-stuck
fault internal-error
fault sq-bad-lkey|sq-bad-addr|sq-bad-opcode [sqn=<n>] [count=<n>]
fault rq-bad-lkey|rq-bad-addr [rqn=<n>] [count=<n>]
fault eq-stall [eqn=<n>] [sticky]
fault cq-overflow [cqn=<n>|rx]
fault cq-overflow-lost-event [cqn=<n>]
fault wq-catastrophic|wq-invalid-request|wq-access-error [sqn=<n>|rqn=<n>]
fault sq-stall [sqn=<n>]
fault lost-interrupt [eqn=<n>] [count=<n>]
fault clear";

/// A decimal or `0x` hexadecimal number that fits `T`.
fn number<T: TryFrom<u64>>(word: Option<&str>, what: &str) -> Result<T, String> {
    let word = word.ok_or_else(|| format!("missing {what}"))?;
    let parsed = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => word.parse::<u64>(),
    };
    parsed
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("bad {what} '{word}'"))
}

/// A decimal number, possibly negative, that fits an i32.
fn signed(word: Option<&str>, what: &str) -> Result<i32, String> {
    let word = word.ok_or_else(|| format!("missing {what}"))?;
    word.parse::<i32>()
        .map_err(|_| format!("bad {what} '{word}'"))
}

/// The bytes of a frame written as hexadecimal digits (no separators).
fn hex_frame(word: Option<&str>) -> Result<Vec<u8>, String> {
    let word = word.ok_or("missing frame (hex bytes)")?;
    if word.len() % 2 != 0 || word.len() / 2 > crate::link::unix::FRAME_MAX {
        return Err(format!(
            "a frame is 1 to {} bytes in pairs of hex digits",
            crate::link::unix::FRAME_MAX
        ));
    }
    (0..word.len())
        .step_by(2)
        .map(|i| {
            word.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad hex at {i}"))
        })
        .collect()
}

/// The optional port number right after a verb (every verb takes one):
/// consumed when the next word is a decimal number and at least `more`
/// words follow it; `ports` is how many the model has.
fn port<'a>(
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str> + Clone>,
    more: usize,
    ports: usize,
) -> Result<usize, String> {
    let Some(w) = words.peek().copied() else {
        return Ok(0);
    };
    if !w.bytes().all(|b| b.is_ascii_digit()) || words.clone().count() <= more {
        return Ok(0);
    }
    let n: usize = w.parse().map_err(|_| format!("bad port '{w}'"))?;
    if n >= ports {
        return Err(match ports {
            1 => format!("no port {n}: the model has port 0 only"),
            _ => format!("no port {n}: the model has ports 0-{}", ports - 1),
        });
    }
    words.next();
    Ok(n)
}

/// Parses one request line (surrounding blanks ignored) for a one-port
/// model.
pub fn parse(line: &str) -> Result<Request, String> {
    parse_on(line, 1).map(|(_, req)| req)
}

/// Parses one request line for a model with `ports` ports: the port it
/// names (0 when it names none) and the request.
pub fn parse_on(line: &str, ports: usize) -> Result<(usize, Request), String> {
    let mut words = line.split_whitespace().peekable();
    let Some(verb) = words.next() else {
        return Err("empty request (try help)".into());
    };
    // Verbs that need a word after the port: `link 1 down`, `inject 1 <hex>`,
    // `fault 1 <kind>`; the others may end at it (`module 1`, `stats 1`).
    let more = usize::from(matches!(verb, "link" | "inject" | "fault"));
    let at = port(&mut words, more, ports)?;
    let req = match verb {
        "adapter" => Request::Adapter,
        "help" => Request::Help,
        "stats" => Request::Stats,
        "wire" => Request::Wire,
        "pages" => match words.next() {
            None => Request::Pages,
            Some("request") => Request::RequestPages(signed(words.next(), "page count")?),
            Some(other) => return Err(format!("unexpected '{other}' (try help)")),
        },
        "sanitizer" => Request::Sanitizer,
        "objects" => Request::Objects,
        "inject" => Request::Inject(hex_frame(words.next())?),
        "led" => Request::Led,
        "module" => match words.next() {
            None => Request::ModuleShow,
            Some("remove") => Request::Module(ModuleRequest::Remove),
            Some("insert") => {
                let kind = words.next().ok_or_else(|| {
                    format!(
                        "usage: module insert <kind> ({})",
                        crate::module::ModuleKind::names()
                    )
                })?;
                Request::Module(ModuleRequest::Insert(
                    crate::module::ModuleKind::from_name(kind).ok_or_else(|| {
                        format!(
                            "unknown module '{kind}' (one of {})",
                            crate::module::ModuleKind::names()
                        )
                    })?,
                ))
            }
            Some("error") => {
                let names = || crate::module::ERROR_TYPES.map(|(n, _)| n).join(", ");
                let t = words
                    .next()
                    .ok_or_else(|| format!("usage: module error <type> ({})", names()))?;
                let v = crate::module::ERROR_TYPES
                    .iter()
                    .find(|(n, _)| *n == t)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| format!("unknown module error '{t}' (one of {})", names()))?;
                Request::Module(ModuleRequest::Error(v))
            }
            Some(other) => {
                return Err(format!(
                    "unexpected '{other}': module [<port>] remove|insert <kind>|error <type>"
                ));
            }
        },
        "link" => match words.next() {
            Some("up") => Request::Link { up: true },
            Some("down") => Request::Link { up: false },
            _ => return Err("usage: link [<port>] down|up".into()),
        },
        "fault" => match words.next() {
            Some("no-completion") => Request::Fault(Fault::CommandNoCompletion {
                opcode: number(words.next(), "opcode")?,
            }),
            Some("status") => Request::Fault(Fault::CommandStatus {
                opcode: number(words.next(), "opcode")?,
                status: number(words.next(), "status")?,
                syndrome: number(words.next(), "syndrome")?,
            }),
            Some("health") => {
                Request::Fault(Fault::HealthSyndrome(number(words.next(), "syndrome")?))
            }
            Some("health-counter-stops") => Request::Fault(Fault::HealthCounterStops),
            Some("initializing-stuck") => Request::Fault(Fault::InitializingStuck),
            Some("internal-error") => Request::Fault(Fault::InternalError),
            Some("clear") => Request::ClearFaults,
            Some(k) if let Some(q) = crate::queue_faults::parse(k, &mut words) => {
                Request::QueueFault(q?)
            }
            Some(other) => return Err(format!("unknown fault '{other}' (try help)")),
            None => return Err("usage: fault <kind> ... (try help)".into()),
        },
        other => return Err(format!("unknown request '{other}' (try help)")),
    };
    match words.next() {
        Some(extra) => Err(format!("unexpected '{extra}'")),
        None => Ok((at, req)),
    }
}

/// Carries out `req` on the model; returns the reply (final line included,
/// every line ending in a newline).
pub fn execute(req: Request, s: &Shared) -> String {
    let mut out = String::new();
    match req {
        Request::Help => {
            out.push_str(HELP);
            out.push_str("\nok\n");
        }
        Request::Adapter => adapter(&[s], &mut out),
        Request::Link { up } => {
            let state = if s.set_link(up) { "up" } else { "down" };
            let _ = writeln!(out, "ok link {state}");
        }
        Request::ModuleShow => {
            let d = s.dev();
            let p = &d.phys_port;
            let what = match &p.module {
                None => String::from("empty"),
                Some(m) => {
                    let state = match p.module_oper() {
                        crate::module::oper::PLUGGED_ENABLED => "enabled",
                        crate::module::oper::PLUGGED_DISABLED => "disabled",
                        crate::module::oper::PLUGGED_ERROR => "error",
                        _ => "initializing",
                    };
                    format!("{} {state}", m.describe())
                }
            };
            let _ = writeln!(out, "module {} {} {what}", d.identity.port, p.cage.name());
            if p.oper_up() {
                let _ = writeln!(out, "ok link up {}G", p.speed_mbps() as f64 / 1000.0);
            } else {
                out.push_str("ok link down\n");
            }
        }
        Request::Module(m) => match s.module(&m) {
            Ok(r) => {
                let _ = writeln!(out, "ok {r}");
            }
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
            }
        },
        Request::Led => {
            let b = s.dev().phys_port.beacon.now();
            match b {
                crate::phys_port::Beacon::Off => out.push_str("ok led off\n"),
                crate::phys_port::Beacon::On => out.push_str("ok led on\n"),
                crate::phys_port::Beacon::Until(_) => {
                    let _ = writeln!(out, "ok led beacon {}s", b.remain());
                }
            }
        }
        Request::RequestPages(n) => {
            s.dev().request_pages(n);
            let _ = writeln!(out, "ok requested {n} pages");
        }
        Request::Stats => {
            let (commands, link_up, p, lost) = {
                let d = s.dev();
                let lost = d.faults.queues.dropped_interrupts;
                (
                    d.commands_executed,
                    d.phys_port.oper_up(),
                    d.personality,
                    lost,
                )
            };
            let c = &s.counters;
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let (major, minor, sub) = p.fw_version();
            let _ = writeln!(out, "firmware {major}.{minor}.{sub} psid {}", p.psid());
            let _ = writeln!(out, "commands {commands}");
            for v in 0..MSIX_VECTORS {
                let count = s.irqs.signalled(v);
                if count > 0 {
                    let _ = writeln!(out, "msix {v} {count}");
                }
            }
            let _ = writeln!(out, "msix-dropped {}", s.irqs.dropped());
            let _ = writeln!(out, "interrupts-lost {lost}");
            let (live, bytes) = s.mem.mapped();
            let _ = writeln!(
                out,
                "dma maps {} unmaps {} live {live} bytes {bytes}",
                s.mem.stats.maps.load(Ordering::Relaxed),
                s.mem.stats.unmaps.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "mmio reads {} writes {} dropped {}",
                n(&c.bar_reads),
                n(&c.bar_writes),
                n(&c.bar_odd)
            );
            let _ = writeln!(
                out,
                "config reads {} writes {}",
                n(&c.config_reads),
                n(&c.config_writes)
            );
            let _ = writeln!(out, "resets {}", n(&c.resets));
            let _ = writeln!(
                out,
                "vfio-clients {} refused {}",
                n(&c.clients),
                n(&c.clients_refused)
            );
            let _ = writeln!(
                out,
                "set-irqs {} vectors {}",
                n(&c.set_irqs),
                s.irqs.enabled()
            );
            let _ = writeln!(out, "link {}", if link_up { "up" } else { "down" });
            let _ = writeln!(out, "{}", crate::datapath::fast_path_line(&s.dev().nic));
            let _ = writeln!(out, "{}", crate::datapath::tx_engine_line(&s.dev().nic));
            if let Some((_, w)) = s.link_stats() {
                let _ = writeln!(
                    out,
                    "wire tx {} rx {} connected {}",
                    w.tx_frames,
                    w.rx_frames,
                    yes_no(w.connected)
                );
            }
            out.push_str("ok\n");
        }
        Request::Wire => {
            match s.link_stats() {
                Some((name, w)) => {
                    let _ = writeln!(
                        out,
                        "wire {name} connected {} connects {} peer-carrier-changes {}",
                        yes_no(w.connected),
                        w.connects,
                        w.peer_carrier_changes
                    );
                    let _ = writeln!(
                        out,
                        "wire tx frames {} bytes {} dropped-queue {} dropped-no-peer {} errors {}",
                        w.tx_frames,
                        w.tx_bytes,
                        w.tx_dropped_queue_full,
                        w.tx_dropped_no_peer,
                        w.tx_errors
                    );
                    let _ = writeln!(out, "wire rx frames {} bytes {}", w.rx_frames, w.rx_bytes);
                }
                None => out.push_str("wire none connected no connects 0\n"),
            }
            let p = s.dev().nic.wire.stats.clone();
            let _ = writeln!(
                out,
                "port tx frames {} bytes {} dropped-link-down {} dropped-outbox-full {}",
                p.tx_frames, p.tx_bytes, p.tx_dropped_link_down, p.tx_dropped_outbox_full
            );
            let dropped = p.rx_dropped_no_steering
                + p.rx_dropped_no_wqe
                + p.rx_dropped_rq_not_ready
                + p.rx_dropped_link_down
                + p.rx_dropped_bad_length
                + p.rx_dropped_too_long
                + p.rx_dropped_wqe_error;
            let _ = writeln!(
                out,
                "port rx frames {} bytes {} delivered {} dropped {dropped}",
                p.rx_frames, p.rx_bytes, p.rx_delivered
            );
            let _ = writeln!(out, "port-drops {}", crate::datapath::rx_drop_reasons(&p));
            if let Some((path, records, lost)) = s.pcap_stats() {
                let _ = writeln!(out, "pcap {} records {records} lost {lost}", path.display());
            }
            out.push_str("ok\n");
        }
        Request::Pages => {
            let _ = writeln!(out, "ok {} pages held", s.dev().pages.held());
        }
        Request::Objects => {
            let d = s.dev();
            let objects = d.objects();
            for (kind, n) in objects {
                let _ = writeln!(out, "{kind} {n}");
            }
            let _ = writeln!(out, "left-at-teardown {}", d.left_at_teardown);
            let total: usize = objects.iter().map(|(_, n)| n).sum();
            let _ = writeln!(out, "ok {total} objects");
        }
        Request::Sanitizer => {
            let violations = s.dev().violations();
            for v in &violations {
                let _ = writeln!(out, "{v}");
            }
            let _ = writeln!(out, "ok {} violations", violations.len());
        }
        Request::Inject(frame) => {
            s.receive(&frame);
            let _ = writeln!(out, "ok injected {} bytes", frame.len());
        }
        Request::Fault(f) => {
            s.dev().inject(f);
            let _ = writeln!(out, "ok armed {f:?}");
        }
        Request::QueueFault(q) => match crate::queue_faults::inject(&mut s.dev(), q) {
            Ok(what) => {
                let _ = writeln!(out, "ok armed {what}");
            }
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
            }
        },
        Request::ClearFaults => {
            s.dev().clear_faults();
            out.push_str("ok faults cleared\n");
        }
    }
    out
}

/// Carries out `req` on port `at` of a model whose ports are `ports`.
pub fn execute_on(req: Request, at: usize, ports: &[Arc<Shared>]) -> String {
    match (req, ports.get(at)) {
        (Request::Adapter, _) => {
            let mut out = String::new();
            let all: Vec<&Shared> = ports.iter().map(|p| &**p).collect();
            adapter(&all, &mut out);
            out
        }
        (req, Some(s)) => execute(req, s),
        (_, None) => format!("error: no port {at}\n"),
    }
}

/// `adapter`: `adapter <part> firmware <v> psid <psid> serial <s>
/// system-image-guid <hex> ports <n>`, then `port <i> mac <mac>
/// port-guid <hex> link up|down` each.
fn adapter(ports: &[&Shared], out: &mut String) {
    let Some(first) = ports.first() else {
        out.push_str("error: no ports\n");
        return;
    };
    {
        let d = first.dev();
        let (major, minor, sub) = d.personality.fw_version();
        let _ = writeln!(
            out,
            "adapter {} firmware {major}.{minor}.{sub} psid {} serial {} system-image-guid {:016x} ports {}",
            d.personality.short_name(),
            d.personality.psid(),
            d.identity.serial,
            d.identity.system_image_guid,
            ports.len()
        );
    }
    for s in ports {
        let d = s.dev();
        let m = d.mac;
        let _ = writeln!(
            out,
            "port {} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} port-guid {:016x} link {}",
            d.identity.port,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            d.identity.port_guid(),
            if d.phys_port.oper_up() { "up" } else { "down" }
        );
    }
    let _ = writeln!(out, "ok {} ports", ports.len());
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Longest request line: `inject` and the hex digits of the largest frame,
/// with room for blanks. A longer line is refused and its connection
/// closed (the reader never holds more than this of one client's input).
pub const MAX_LINE: usize = 16 + 2 * crate::link::unix::FRAME_MAX;

/// Clients served at once; one more is told so and disconnected.
pub const MAX_CLIENTS: usize = 8;

/// Answers every line of one connection until the client closes it, sends
/// a line longer than [`MAX_LINE`] or a line that is not UTF-8.
fn serve_client(stream: UnixStream, ports: &[Arc<Shared>]) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // At most MAX_LINE + 1 bytes: a longer line is known to be too
        // long without reading the rest of it.
        match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if buf.len() > MAX_LINE {
            let _ = writer.write_all(
                format!("error: request longer than {MAX_LINE} bytes; closing\n").as_bytes(),
            );
            return;
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            let _ = writer.write_all(b"error: request is not UTF-8; closing\n");
            return;
        };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match parse_on(line, ports.len()) {
            Ok((at, req)) => execute_on(req, at, ports),
            Err(why) => format!("error: {why}\n"),
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// One request to the control socket at `path`, as a client sends it:
/// the reply's lines up to and including its final `ok` / `error: ` line
/// (fewer if the model closes the connection first). `timeout` bounds
/// each read.
pub fn ask(
    path: &Path,
    request: &str,
    timeout: Option<std::time::Duration>,
) -> std::io::Result<Vec<String>> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(timeout)?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut out = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let last = line.starts_with("ok") || line.starts_with("error:");
        out.push(line);
        if last {
            break;
        }
    }
    Ok(out)
}

/// A listening control socket; its thread ends with the process.
#[derive(Debug)]
pub struct Control {
    _listener_thread: std::thread::JoinHandle<()>,
}

/// One client slot of [`MAX_CLIENTS`], given back when its thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Binds `path` and answers clients, each on its own thread, at most
/// [`MAX_CLIENTS`] at once.
pub fn listen(path: &Path, s: Arc<Shared>) -> Result<Control, String> {
    listen_ports(path, vec![s])
}

/// [`listen`] for a model with several ports (requests name them).
pub fn listen_ports(path: &Path, ports: Vec<Arc<Shared>>) -> Result<Control, String> {
    let ports: Arc<[Arc<Shared>]> = ports.into();
    let listener = super::server::listen_at(path)
        .map_err(|e| format!("cannot bind the control socket {}: {e}", path.display()))?;
    let clients = Arc::new(AtomicUsize::new(0));
    let thread = std::thread::Builder::new()
        .name("mlx5-sim control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                    clients.fetch_sub(1, Ordering::AcqRel);
                    let _ = stream.write_all(
                        format!("error: {MAX_CLIENTS} control clients already; closing\n")
                            .as_bytes(),
                    );
                    continue;
                }
                let slot = Slot(clients.clone());
                let ports = ports.clone();
                let _ = std::thread::Builder::new()
                    .name("mlx5-sim control client".into())
                    .spawn(move || {
                        let _slot = slot;
                        serve_client(stream, &ports)
                    });
            }
        })
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    Ok(Control {
        _listener_thread: thread,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personality::Personality;

    #[test]
    fn parses_every_request() {
        assert_eq!(parse("help"), Ok(Request::Help));
        assert_eq!(parse("  link   down "), Ok(Request::Link { up: false }));
        assert_eq!(parse("link up"), Ok(Request::Link { up: true }));
        assert_eq!(parse("stats"), Ok(Request::Stats));
        assert_eq!(parse("wire"), Ok(Request::Wire));
        assert_eq!(parse("pages"), Ok(Request::Pages));
        assert_eq!(parse("pages request 16"), Ok(Request::RequestPages(16)));
        assert_eq!(parse("pages request -8"), Ok(Request::RequestPages(-8)));
        assert_eq!(parse("sanitizer"), Ok(Request::Sanitizer));
        assert_eq!(parse("objects"), Ok(Request::Objects));
        assert_eq!(
            parse("inject ffffffffffff02000000000188b5"),
            Ok(Request::Inject(vec![
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5
            ]))
        );
        assert_eq!(
            parse("fault no-completion 0x105"),
            Ok(Request::Fault(Fault::CommandNoCompletion { opcode: 0x105 }))
        );
        assert_eq!(
            parse("fault status 0x107 0x3 123"),
            Ok(Request::Fault(Fault::CommandStatus {
                opcode: 0x107,
                status: 3,
                syndrome: 123
            }))
        );
        assert_eq!(
            parse("fault health 0x8"),
            Ok(Request::Fault(Fault::HealthSyndrome(8)))
        );
        assert_eq!(
            parse("fault health-counter-stops"),
            Ok(Request::Fault(Fault::HealthCounterStops))
        );
        assert_eq!(
            parse("fault internal-error"),
            Ok(Request::Fault(Fault::InternalError))
        );
        assert_eq!(
            parse("fault initializing-stuck"),
            Ok(Request::Fault(Fault::InitializingStuck))
        );
        assert_eq!(parse("fault clear"), Ok(Request::ClearFaults));
    }

    #[test]
    fn rejects_bad_requests_with_a_reason() {
        for (line, why) in [
            ("", "empty request"),
            ("frob", "unknown request 'frob'"),
            ("link sideways", "usage: link [<port>] down|up"),
            ("link", "usage: link [<port>] down|up"),
            ("stats now", "unexpected 'now'"),
            ("wire up", "unexpected 'up'"),
            ("pages give", "unexpected 'give'"),
            ("pages request", "missing page count"),
            ("pages request x", "bad page count 'x'"),
            ("pages request 5000000000", "bad page count"),
            ("fault", "usage: fault"),
            ("fault melt", "unknown fault 'melt'"),
            ("fault no-completion", "missing opcode"),
            ("fault no-completion 0x10000", "bad opcode '0x10000'"),
            ("fault status 0x107 0x100 0", "bad status '0x100'"),
            ("fault status 0x107 1", "missing syndrome"),
            ("fault health -1", "bad syndrome '-1'"),
            ("fault health 0xzz", "bad syndrome '0xzz'"),
            ("inject", "missing frame"),
            ("inject abc", "pairs of hex digits"),
            ("inject 0g", "bad hex at 0"),
            ("inject ff\u{e9}\u{e9}", "bad hex at 2"),
            ("inject ff ff", "unexpected 'ff'"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(why), "{line:?}: {err}");
        }
    }

    #[test]
    fn arbitrary_lines_never_panic_and_always_get_a_final_line() {
        let words = [
            "help",
            "link",
            "up",
            "down",
            "stats",
            "wire",
            "pages",
            "request",
            "sanitizer",
            "inject",
            "ffff",
            "fault",
            "no-completion",
            "status",
            "health",
            "health-counter-stops",
            "initializing-stuck",
            "clear",
            "0x",
            "0x104",
            "-1",
            "4294967296",
            "99999999999999999999",
            "\u{1F600}",
            "",
            " ",
            "\t",
            "0",
            "65535",
            "ok",
        ];
        let s = Shared::new(Personality::ConnectX5);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            let mut line = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 6) {
                line.push_str(words[((x >> (8 * k)) % words.len() as u64) as usize]);
                line.push(' ');
            }
            let reply = match parse(&line) {
                Ok(req) => execute(req, &s),
                Err(why) => format!("error: {why}\n"),
            };
            let last = last_line(&reply);
            assert!(
                last.starts_with("ok") || last.starts_with("error: "),
                "{line:?} -> {reply:?}"
            );
        }
    }

    fn last_line(reply: &str) -> &str {
        reply.lines().last().unwrap_or("")
    }

    #[test]
    fn replies_end_with_an_ok_line() {
        let s = Shared::new(Personality::ConnectX6);
        let help = execute(Request::Help, &s);
        assert!(help.contains("fault no-completion <opcode>"));
        assert_eq!(last_line(&help), "ok");
        let stats = execute(Request::Stats, &s);
        assert!(
            stats.starts_with("firmware 20.39.1002 psid MT_0000000223\ncommands 0\n"),
            "{stats}"
        );
        assert!(
            stats.contains("\nmmio reads 0 writes 0 dropped 0\n"),
            "{stats}"
        );
        assert!(stats.contains("\nlink up\n"), "{stats}");
        assert_eq!(last_line(&stats), "ok");
        assert_eq!(execute(Request::Pages, &s), "ok 0 pages held\n");
        let wire = execute(Request::Wire, &s);
        assert!(
            wire.starts_with("wire none connected no connects 0\n"),
            "{wire}"
        );
        assert!(
            wire.contains("\nport rx frames 0 bytes 0 delivered 0 dropped 0\n"),
            "{wire}"
        );
        assert_eq!(last_line(&wire), "ok");
        assert_eq!(execute(Request::Sanitizer, &s), "ok 0 violations\n");
    }

    #[test]
    fn an_injected_frame_arrives_at_the_port() {
        let s = Shared::new(Personality::ConnectX5);
        let frame = "ffffffffffff020000000001".to_string() + "88b5" + &"00".repeat(46);
        let req = parse(&format!("inject {frame}")).unwrap();
        assert_eq!(execute(req, &s), "ok injected 60 bytes\n");
        // No driver: the port saw it and steering had nowhere to put it.
        let wire = execute(Request::Wire, &s);
        assert!(
            wire.contains("\nport rx frames 1 bytes 60 delivered 0 dropped 1\n"),
            "{wire}"
        );
    }

    #[test]
    fn objects_lists_every_kind_and_the_teardown_leftovers() {
        let s = Shared::new(Personality::ConnectX5);
        let reply = execute(Request::Objects, &s);
        let lines: Vec<&str> = reply.lines().collect();
        assert_eq!(lines.len(), 16, "{reply}");
        assert_eq!(lines[0], "uars 0");
        assert_eq!(lines[14], "left-at-teardown 0");
        assert_eq!(lines[15], "ok 0 objects");
    }

    #[test]
    fn link_and_faults_reach_the_model() {
        let s = Shared::new(Personality::ConnectX4Lx);
        assert_eq!(execute(Request::Link { up: false }, &s), "ok link down\n");
        assert!(!s.dev().phys_port.oper_up());
        assert!(execute(Request::Stats, &s).contains("\nlink down\n"));
        assert_eq!(execute(Request::Link { up: true }, &s), "ok link up\n");
        // initializing stuck shows in the init segment (0x1fc bit 31).
        execute(Request::Fault(Fault::InitializingStuck), &s);
        assert!(s.dev().iseg.stuck);
        execute(Request::Fault(Fault::HealthSyndrome(9)), &s);
        assert_eq!(s.dev().faults.health_syndrome, 9);
        assert_eq!(execute(Request::ClearFaults, &s), "ok faults cleared\n");
        assert!(!s.dev().iseg.stuck);
        assert_eq!(s.dev().faults.health_syndrome, 0);
    }

    #[test]
    fn module_and_led_requests_take_an_optional_port() {
        use crate::module::ModuleKind;
        assert_eq!(parse("module"), Ok(Request::ModuleShow));
        assert_eq!(parse("module 0"), Ok(Request::ModuleShow));
        assert_eq!(
            parse("module remove"),
            Ok(Request::Module(ModuleRequest::Remove))
        );
        assert_eq!(
            parse("module 0 insert 1g-copper"),
            Ok(Request::Module(ModuleRequest::Insert(ModuleKind::Copper1g)))
        );
        assert_eq!(
            parse("module error bus-stuck"),
            Ok(Request::Module(ModuleRequest::Error(2)))
        );
        assert_eq!(parse("link 0 down"), Ok(Request::Link { up: false }));
        assert_eq!(parse("led 0"), Ok(Request::Led));
        assert_eq!(parse("inject 0 00"), Ok(Request::Inject(vec![0])));
        assert_eq!(parse("inject 00"), Ok(Request::Inject(vec![0])));
        assert_eq!(
            parse("module 1 remove"),
            Err("no port 1: the model has port 0 only".into())
        );
        assert!(
            parse("module insert 400g")
                .unwrap_err()
                .contains("10g-dac, 10g-sr")
        );
        assert!(parse("module error hot").unwrap_err().contains("bus-stuck"));
        assert!(HELP.contains("module [<port>] insert") && HELP.contains("led [<port>]"));
        assert!(HELP.contains("fault sq-bad-lkey|sq-bad-addr|sq-bad-opcode [sqn=<n>] [count=<n>]"));
        assert!(HELP.contains(
            "fault wq-catastrophic|wq-invalid-request|wq-access-error [sqn=<n>|rqn=<n>]"
        ));
        assert_eq!(
            parse("fault eq-stall eqn=3"),
            Ok(Request::QueueFault(
                crate::queue_faults::QueueFault::EqStall {
                    eqn: Some(3),
                    sticky: false
                }
            ))
        );
        assert!(
            parse("fault sq-stall sqn=x")
                .unwrap_err()
                .contains("bad sqn")
        );
    }

    #[test]
    fn two_port_requests_name_their_port() {
        let p = Personality::ConnectX4Lx;
        let ports: Vec<Arc<Shared>> = (0..2)
            .map(|i| Shared::new_port(p, crate::adapter::Identity::new(p, i, 2)))
            .collect();
        assert_eq!(
            parse_on("link 1 down", 2),
            Ok((1, Request::Link { up: false }))
        );
        assert_eq!(
            parse_on("link down", 2),
            Ok((0, Request::Link { up: false }))
        );
        assert_eq!(parse_on("module 1", 2), Ok((1, Request::ModuleShow)));
        assert_eq!(
            parse_on("fault 1 health 5", 2),
            Ok((1, Request::Fault(Fault::HealthSyndrome(5))))
        );
        assert_eq!(parse_on("stats 1", 2), Ok((1, Request::Stats)));
        assert_eq!(
            parse_on("link 2 down", 2),
            Err("no port 2: the model has ports 0-1".into())
        );
        let run = |l: &str| {
            let (at, req) = parse_on(l, 2).unwrap();
            execute_on(req, at, &ports)
        };
        assert_eq!(run("link 1 down"), "ok link down\n");
        assert!(ports[0].dev().phys_port.oper_up());
        assert!(!ports[1].dev().phys_port.oper_up());
        assert!(run("module 1").starts_with("module 1 "));
        assert!(run("module").starts_with("module 0 "));
        let adapter = run("adapter");
        let lines: Vec<&str> = adapter.lines().collect();
        let guid = format!("{:016x}", ports[0].dev().identity.system_image_guid);
        assert!(
            lines[0].starts_with("adapter cx4lx firmware 14.32.1010 psid MT_2420110034 serial ")
                && lines[0].ends_with(&format!("system-image-guid {guid} ports 2")),
            "{adapter}"
        );
        assert!(
            lines[1].starts_with("port 0 mac 0c:42:a1:5e:00:11 ") && lines[1].ends_with(" link up")
        );
        assert!(
            lines[2].starts_with("port 1 mac 0c:42:a1:5e:00:12 ")
                && lines[2].ends_with(" link down")
        );
        assert_eq!(lines[3], "ok 2 ports");
        run("link 1 up");
        assert!(ports[1].dev().phys_port.oper_up());
    }

    #[test]
    fn module_requests_reach_the_cage_and_the_link() {
        let s = Shared::new(Personality::ConnectX4Lx);
        let show = |s: &Shared| execute(Request::ModuleShow, s);
        assert_eq!(
            show(&s),
            "module 0 SFP28 25g-dac (25G SFP28 passive copper (25GBASE-CR)) enabled\nok link up 25G\n"
        );
        let run = |s: &Shared, l: &str| execute(parse(l).unwrap(), s);
        assert_eq!(run(&s, "module remove"), "ok removed, link down\n");
        assert_eq!(run(&s, "module remove"), "error: the cage is empty\n");
        assert_eq!(show(&s), "module 0 SFP28 empty\nok link down\n");
        assert_eq!(
            run(&s, "module insert 100g-dac"),
            "error: 100g-dac is a QSFP module: it does not fit the SFP28 cage\n"
        );
        assert_eq!(
            run(&s, "module insert 1g-copper"),
            "ok inserted 1g-copper, link up 1G\n"
        );
        assert_eq!(
            run(&s, "module error high-temperature"),
            "ok error high-temperature, link down\n"
        );
        assert!(show(&s).contains("error high-temperature error\n"));
        assert_eq!(run(&s, "led"), "ok led off\n");
        s.dev().phys_port.beacon = crate::phys_port::Beacon::from_duration(90);
        assert!(run(&s, "led").starts_with("ok led beacon "));
        s.dev().phys_port.beacon = crate::phys_port::Beacon::On;
        assert_eq!(run(&s, "led"), "ok led on\n");
    }

    #[test]
    fn a_socket_client_gets_one_reply_per_line() {
        let dir = std::env::temp_dir().join(format!("mlx5-sim-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let _ = std::fs::remove_file(&path);
        let s = Shared::new(Personality::ConnectX5);
        let _control = listen(&path, s).unwrap();
        let mut stream = UnixStream::connect(&path).unwrap();
        stream.write_all(b"pages\nbogus\n\nsanitizer\n").unwrap();
        let mut lines = BufReader::new(stream).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ok 0 pages held");
        assert_eq!(
            lines.next().unwrap().unwrap(),
            "error: unknown request 'bogus' (try help)"
        );
        assert_eq!(lines.next().unwrap().unwrap(), "ok 0 violations");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_lines_and_too_many_clients_are_refused_and_the_socket_keeps_serving() {
        let dir = std::env::temp_dir().join(format!("mlx5-sim-ctl-bound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.sock");
        let _ = std::fs::remove_file(&path);
        let s = Shared::new(Personality::ConnectX5);
        let _control = listen(&path, s).unwrap();
        let reply = |stream: UnixStream| {
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            line
        };
        // A line without end: refused once MAX_LINE bytes are read.
        let mut long = UnixStream::connect(&path).unwrap();
        let _ = long.write_all(&vec![b'x'; MAX_LINE + 100]);
        assert_eq!(
            reply(long),
            format!("error: request longer than {MAX_LINE} bytes; closing\n")
        );
        // Not UTF-8.
        let mut bad = UnixStream::connect(&path).unwrap();
        bad.write_all(b"pa\xffges\n").unwrap();
        assert_eq!(reply(bad), "error: request is not UTF-8; closing\n");
        // A client served: asked `pages` and answered. The threads of the
        // clients closed above give their slots back as they end, after
        // the close was seen: until then a client may be refused and
        // closed, maybe before its request is written or read (a write
        // error, or a reset for the unread request); it is asked again.
        let served = || -> Option<UnixStream> {
            let mut c = UnixStream::connect(&path).unwrap();
            c.write_all(b"pages\n").ok()?;
            let mut line = String::new();
            BufReader::new(c.try_clone().unwrap())
                .read_line(&mut line)
                .ok()?;
            (line == "ok 0 pages held\n").then_some(c)
        };
        let patiently = || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                if let Some(c) = served() {
                    return Some(c);
                }
                if std::time::Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        };
        // MAX_CLIENTS held open (each answered once, so each is served):
        // one more is turned away.
        let held: Vec<_> = (0..MAX_CLIENTS)
            .map(|i| patiently().unwrap_or_else(|| panic!("client {i} never served")))
            .collect();
        let extra = UnixStream::connect(&path).unwrap();
        assert_eq!(
            reply(extra),
            format!("error: {MAX_CLIENTS} control clients already; closing\n")
        );
        // Once they leave, a new client is served.
        drop(held);
        let ok = patiently().is_some();
        assert!(ok, "served again after the others left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
