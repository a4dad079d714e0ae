//! The shell's CPU commands, parsed: `cpus` (list), `cpus ping <n>` (an
//! IPI round trip to CPU n), `cpus tlb <n>` (a TLB shootdown observed on
//! CPU n), and `irq <vector> cpu <n>` (deliver an MSI-X
//! vector to CPU n, as Linux's `/proc/irq/N/smp_affinity_list` does).

use alloc::string::String;
use alloc::vec::Vec;

/// `cpus [ping <n> | tlb <n>]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpusCommand {
    List,
    Ping(usize),
    Tlb(usize),
}

pub const CPUS_USAGE: &str = "usage: cpus [ping <cpu> | tlb <cpu>]";
pub const IRQ_USAGE: &str = "usage: irq [<vector> cpu <cpu>]";

pub fn parse_cpus(arg: &str) -> Result<CpusCommand, String> {
    let words: Vec<&str> = arg.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(CpusCommand::List),
        [what @ ("ping" | "tlb"), n] => {
            let cpu = n
                .parse()
                .map_err(|_| alloc::format!("cpus: bad CPU number '{n}'"))?;
            Ok(if *what == "ping" {
                CpusCommand::Ping(cpu)
            } else {
                CpusCommand::Tlb(cpu)
            })
        }
        _ => Err(CPUS_USAGE.into()),
    }
}

/// `irq <vector> cpu <n>`: the vector in hex (`0x31`, as `irq` lists it)
/// or decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqRoute {
    pub vector: u8,
    pub cpu: usize,
}

pub fn parse_irq_route(arg: &str) -> Result<IrqRoute, String> {
    let words: Vec<&str> = arg.split_whitespace().collect();
    let [v, "cpu", n] = words.as_slice() else {
        return Err(IRQ_USAGE.into());
    };
    let vector = match v.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => v.parse(),
    }
    .map_err(|_| alloc::format!("irq: bad vector '{v}'"))?;
    let cpu = n
        .parse()
        .map_err(|_| alloc::format!("irq: bad CPU number '{n}'"))?;
    Ok(IrqRoute { vector, cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_arguments() {
        assert_eq!(parse_cpus(""), Ok(CpusCommand::List));
        assert_eq!(parse_cpus("ping 3"), Ok(CpusCommand::Ping(3)));
        assert_eq!(parse_cpus("ping x"), Err("cpus: bad CPU number 'x'".into()));
        assert_eq!(parse_cpus("ping"), Err(CPUS_USAGE.into()));
        assert_eq!(parse_cpus("ping 1 2 3"), Err(CPUS_USAGE.into()));
        assert_eq!(parse_cpus("tlb 1"), Ok(CpusCommand::Tlb(1)));
        assert_eq!(
            parse_cpus("tlb -1"),
            Err("cpus: bad CPU number '-1'".into())
        );
        assert_eq!(parse_cpus("tlb"), Err(CPUS_USAGE.into()));
    }

    #[test]
    fn irq_route_arguments() {
        assert_eq!(
            parse_irq_route("0x31 cpu 1"),
            Ok(IrqRoute {
                vector: 0x31,
                cpu: 1
            })
        );
        assert_eq!(
            parse_irq_route("49 cpu 0"),
            Ok(IrqRoute { vector: 49, cpu: 0 })
        );
        assert_eq!(
            parse_irq_route("0x131 cpu 1"),
            Err("irq: bad vector '0x131'".into())
        );
        assert_eq!(
            parse_irq_route("0x31 cpu -1"),
            Err("irq: bad CPU number '-1'".into())
        );
        assert_eq!(parse_irq_route("0x31 1"), Err(IRQ_USAGE.into()));
        assert_eq!(parse_irq_route("0x31 cpu 1 2"), Err(IRQ_USAGE.into()));
    }
}
