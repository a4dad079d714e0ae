//! Reading the kernel's serial console: the line formats the kernel prints
//! (selftest results, PCI listing, panics), parsed so tests can check them.

/// Outcome of one in-kernel selftest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
    Skipped(String),
}

/// `selftest <name> ... ok|FAILED: <why>|skipped: <why>` lines, in order.
pub fn selftest_results(text: &str) -> Vec<(String, Outcome)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_end().strip_prefix("selftest ")?;
            let (name, result) = rest.split_once(" ... ")?;
            let outcome = if result == "ok" {
                Outcome::Ok
            } else if let Some(why) = result.strip_prefix("FAILED: ") {
                Outcome::Failed(why.to_string())
            } else if let Some(why) = result.strip_prefix("skipped: ") {
                Outcome::Skipped(why.to_string())
            } else {
                return None;
            };
            Some((name.to_string(), outcome))
        })
        .collect()
}

/// `selftest: <P> passed, <F> failed` → (P, F).
pub fn selftest_summary(text: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let rest = line.trim_end().strip_prefix("selftest: ")?;
        let (passed, failed) = rest.split_once(", ")?;
        let passed = passed.strip_suffix(" passed")?.parse().ok()?;
        let failed = failed.strip_suffix(" failed")?.parse().ok()?;
        Some((passed, failed))
    })
}

/// One `pci BB:DD.F VVVV:DDDD class CCSSPP caps...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciLine {
    pub address: String,
    pub id: String,
    pub class: String,
    pub capabilities: Vec<String>,
}

/// Every PCI function line.
pub fn pci_lines(text: &str) -> Vec<PciLine> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "pci" {
                return None;
            }
            let address = words.next()?;
            let id = words.next()?;
            if words.next()? != "class" {
                return None;
            }
            let class = words.next()?;
            let well_formed = address.len() == 7
                && address.as_bytes()[2] == b':'
                && address.as_bytes()[5] == b'.'
                && id.len() == 9
                && id.as_bytes()[4] == b':'
                && class.len() == 6
                && class.bytes().all(|b| b.is_ascii_hexdigit());
            well_formed.then(|| PciLine {
                address: address.to_string(),
                id: id.to_string(),
                class: class.to_string(),
                capabilities: words.map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The first line containing `needle`, if any.
pub fn line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines().find(|line| line.contains(needle))
}

/// The boot banner: `cxos <version> booted via <how>` → `<how>`.
pub fn boot_method(text: &str) -> Option<&str> {
    // Firmware may leave escape sequences on the same line before the banner.
    text.lines().find_map(|line| {
        let at = line.find("cxos ")?;
        let (_version, how) = line[at + "cxos ".len()..]
            .trim_end()
            .split_once(" booted via ")?;
        Some(how)
    })
}

/// `mem: <N> MiB usable, <N> frames free` → (MiB, frames).
pub fn mem_line(text: &str) -> Option<(u64, u64)> {
    text.lines().find_map(|line| {
        let rest = line.trim_end().strip_prefix("mem: ")?;
        let (mib, frames) = rest.split_once(" MiB usable, ")?;
        Some((
            mib.parse().ok()?,
            frames.strip_suffix(" frames free")?.parse().ok()?,
        ))
    })
}

/// A log line `[    1.234567] <LEVEL> <target>: <message>` → (LEVEL, target).
pub fn log_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?;
    let (stamp, rest) = rest.split_once("] ")?;
    let (secs, micros) = stamp.trim_start().split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if stamp.len() < 12 || !digits(secs) || micros.len() != 6 || !digits(micros) {
        return None;
    }
    let (level, rest) = rest.split_once(' ')?;
    if !["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level) {
        return None;
    }
    let (target, _message) = rest.split_once(": ")?;
    (!target.is_empty() && !target.contains(' ')).then_some((level, target))
}

/// Checks a selftest run: every `required` test reported `ok`, every
/// `skipped` test reported skipped, nothing FAILED, and the summary says 0 failed.
pub fn check_selftest(text: &str, required: &[&str], skipped: &[&str]) -> Result<(), String> {
    let results = selftest_results(text);
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(name, o)| match o {
            Outcome::Failed(why) => Some(format!("{name}: {why}")),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return Err(format!("selftests failed: {}", failed.join("; ")));
    }
    let find = |name: &str| results.iter().find(|(n, _)| n == name).map(|(_, o)| o);
    for name in required {
        match find(name) {
            Some(Outcome::Ok) => {}
            Some(other) => return Err(format!("selftest {name}: expected ok, got {other:?}")),
            None => return Err(format!("no `selftest {name} ...` line")),
        }
    }
    for name in skipped {
        match find(name) {
            Some(Outcome::Skipped(_)) => {}
            Some(other) => return Err(format!("selftest {name}: expected skipped, got {other:?}")),
            None => return Err(format!("no `selftest {name} ...` line")),
        }
    }
    match selftest_summary(text) {
        Some((passed, 0)) if passed > 0 => Ok(()),
        Some((passed, failed)) => Err(format!("summary: {passed} passed, {failed} failed")),
        None => Err("no `selftest: N passed, M failed` line".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "cxos 0.1.0 booted via pvh\n\
        mem: 510 MiB usable, 130000 frames free\n\
        pci 00:00.0 8086:29c0 class 060000\n\
        pci 00:02.0 8086:10d3 class 020000 pm msi pcie msix(5)\n\
        pci 00:03.0 1234:11e8 class 00ff00 msi pcie\n\
        [    0.001000] INFO kernel: ready\n\
        selftest frames ... ok\r\n\
        selftest dma ... FAILED: leaked 1 frame\n\
        selftest edu-msi ... skipped: no edu device\n\
        selftest: 1 passed, 1 failed\n";

    #[test]
    fn parses_selftest_lines() {
        assert_eq!(
            selftest_results(RUN),
            vec![
                ("frames".to_string(), Outcome::Ok),
                (
                    "dma".to_string(),
                    Outcome::Failed("leaked 1 frame".to_string())
                ),
                (
                    "edu-msi".to_string(),
                    Outcome::Skipped("no edu device".to_string())
                ),
            ]
        );
        assert_eq!(selftest_summary(RUN), Some((1, 1)));
        assert_eq!(selftest_summary("selftest: many passed, 0 failed"), None);
    }

    #[test]
    fn selftest_check_reports_failures_and_missing_tests() {
        let err = check_selftest(RUN, &["frames"], &[]).unwrap_err();
        assert!(err.contains("dma: leaked 1 frame"), "{err}");
        let good = "selftest frames ... ok\nselftest edu-msi ... skipped: none\nselftest: 1 passed, 0 failed\n";
        assert_eq!(check_selftest(good, &["frames"], &["edu-msi"]), Ok(()));
        assert!(
            check_selftest(good, &["frames", "timer"], &[])
                .unwrap_err()
                .contains("timer")
        );
        assert!(check_selftest(good, &["edu-msi"], &[]).is_err());
        assert!(check_selftest("selftest frames ... ok\n", &["frames"], &[]).is_err());
    }

    #[test]
    fn parses_pci_lines_and_capabilities() {
        let lines = pci_lines(RUN);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].address, "00:02.0");
        assert_eq!(lines[1].id, "8086:10d3");
        assert_eq!(lines[1].class, "020000");
        assert_eq!(lines[1].capabilities, ["pm", "msi", "pcie", "msix(5)"]);
        assert!(lines[0].capabilities.is_empty());
        assert!(pci_lines("pci: enumerating via ECAM\npci 0:2.0 x class y\n").is_empty());
    }

    #[test]
    fn parses_mem_and_log_lines() {
        assert_eq!(mem_line(RUN), Some((510, 130000)));
        assert_eq!(mem_line("mem: lots MiB usable, 1 frames free"), None);
        assert_eq!(
            log_line("[    0.001000] INFO kernel: ready"),
            Some(("INFO", "kernel"))
        );
        assert_eq!(
            log_line("[12345.123456] TRACE mlx5::cmd: op 0x100"),
            Some(("TRACE", "mlx5::cmd"))
        );
        assert_eq!(log_line("[    0.001000] NOTICE kernel: x"), None);
        assert_eq!(log_line("[    0.0010] INFO kernel: x"), None);
        assert_eq!(log_line("[0.001000] INFO kernel: x"), None);
        assert_eq!(log_line("pci 00:00.0 8086:29c0 class 060000"), None);
    }

    #[test]
    fn finds_the_boot_method() {
        assert_eq!(boot_method(RUN), Some("pvh"));
        assert_eq!(
            boot_method("GRUB\ncxos 0.1.0 booted via multiboot2\n"),
            Some("multiboot2")
        );
        assert_eq!(
            boot_method("\x1b[2J\x1b[01;01Hcxos 0.1.0 booted via multiboot2"),
            Some("multiboot2")
        );
        assert_eq!(boot_method("cxos> "), None);
        assert_eq!(
            line_with(RUN, "mem: "),
            Some("mem: 510 MiB usable, 130000 frames free")
        );
    }
}
