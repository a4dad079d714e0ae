//! The kernel command line: space-separated `key=value` words.
//!
//! Known keys: `test=<name>` (run an in-kernel test suite instead of the
//! shell), `log=<filter>` (see [`crate::logfilter`]) and `attach=on|off`
//! (whether drivers attach the adapters they claim at boot; with `off`
//! they stay claimed and idle until the shell's `attach <pci>`). Unknown keys and
//! bad values never stop the boot: they produce a [`Diagnostic`] the kernel
//! prints, and the default stays in force.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::logfilter::LogFilter;

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `test=`: the test suite to run (the kernel checks the name).
    pub test: Option<String>,
    /// `log=`: per-target log levels.
    pub log: LogFilter,
    /// `attach=`: attach drivers at boot (default on).
    pub attach: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            test: None,
            log: LogFilter::default(),
            attach: true,
        }
    }
}

/// A problem found in the command line, printed in the contract's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diagnostic {
    UnknownKey(String),
    BadValue {
        key: String,
        value: String,
        /// What stays in force (the default or an earlier value).
        default: String,
        why: String,
    },
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey(k) => write!(f, "cmdline: unknown key '{k}' ignored"),
            Self::BadValue {
                key,
                value,
                default,
                ..
            } => write!(
                f,
                "cmdline: bad value '{value}' for '{key}', using {default}"
            ),
        }
    }
}

impl Diagnostic {
    /// Why a value was refused (printed on a second line).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::BadValue { why, .. } => Some(why),
            Self::UnknownKey(_) => None,
        }
    }
}

/// Parse the command line. Non-UTF-8 bytes are replaced before parsing.
pub fn parse(line: &str) -> (Config, Vec<Diagnostic>) {
    let mut config = Config::default();
    let mut diags = Vec::new();
    for (i, word) in line.split_ascii_whitespace().enumerate() {
        // Some loaders pass the kernel's own path first.
        if i == 0 && word.starts_with('/') {
            continue;
        }
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        match key {
            "test" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    diags.push(Diagnostic::BadValue {
                        key: key.into(),
                        value: value.into(),
                        default: config.test.clone().unwrap_or_else(|| "the shell".into()),
                        why: "a test name is expected".into(),
                    });
                } else {
                    config.test = Some(value.into());
                }
            }
            "log" => match LogFilter::parse(value) {
                Ok(f) if !value.is_empty() => config.log = f,
                Ok(_) => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: alloc::format!("{}", config.log),
                    why: "a level or target=level list is expected".into(),
                }),
                Err(e) => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: alloc::format!("{}", config.log),
                    why: alloc::format!("{e}"),
                }),
            },
            "attach" => match value {
                "on" => config.attach = true,
                "off" => config.attach = false,
                _ => diags.push(Diagnostic::BadValue {
                    key: key.into(),
                    value: value.into(),
                    default: (if config.attach { "on" } else { "off" }).into(),
                    why: "on or off is expected".into(),
                }),
            },
            _ => diags.push(Diagnostic::UnknownKey(key.into())),
        }
    }
    (config, diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::LevelFilter;

    #[test]
    fn known_keys() {
        let (c, d) = parse("test=selftest log=warn,pci=trace");
        assert!(d.is_empty());
        assert_eq!(c.test.as_deref(), Some("selftest"));
        assert_eq!(c.log.level_for("pci"), LevelFilter::Trace);
        assert_eq!(c.log.level_for("x"), LevelFilter::Warn);
    }

    #[test]
    fn empty_line_gives_defaults() {
        let (c, d) = parse("   ");
        assert!(d.is_empty());
        assert_eq!(c, Config::default());
        assert_eq!(c.log.level_for("anything"), LevelFilter::Info);
    }

    #[test]
    fn unknown_keys_are_reported() {
        let (c, d) = parse("foo=1 test=selftest bar");
        assert_eq!(c.test.as_deref(), Some("selftest"));
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].to_string(), "cmdline: unknown key 'foo' ignored");
        assert_eq!(d[1].to_string(), "cmdline: unknown key 'bar' ignored");
    }

    #[test]
    fn bad_values_keep_defaults() {
        let (c, d) = parse("log=loud test=");
        assert_eq!(c.log, LogFilter::default());
        assert_eq!(c.test, None);
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value 'loud' for 'log', using info"
        );
        assert!(d[0].reason().unwrap().contains("unknown level 'loud'"));
        assert_eq!(
            d[1].to_string(),
            "cmdline: bad value '' for 'test', using the shell"
        );
        let (c, d) = parse("log=");
        assert_eq!(c.log, LogFilter::default());
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn bad_value_names_what_stays_in_force() {
        let (c, d) = parse("test=selftest log=debug test log=x");
        assert_eq!(c.test.as_deref(), Some("selftest"));
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value '' for 'test', using selftest"
        );
        assert_eq!(
            d[1].to_string(),
            "cmdline: bad value 'x' for 'log', using debug"
        );
    }

    #[test]
    fn loader_path_is_skipped() {
        let (c, d) = parse("/boot/cxos test=selftest");
        assert!(d.is_empty());
        assert_eq!(c.test.as_deref(), Some("selftest"));
    }

    #[test]
    fn attach_is_on_unless_switched_off() {
        assert!(parse("").0.attach);
        let (c, d) = parse("attach=off");
        assert!(d.is_empty());
        assert!(!c.attach);
        assert!(parse("attach=off attach=on").0.attach);
        let (c, d) = parse("attach=off attach=maybe");
        assert!(!c.attach);
        assert_eq!(
            d[0].to_string(),
            "cmdline: bad value 'maybe' for 'attach', using off"
        );
        assert_eq!(d[0].reason(), Some("on or off is expected"));
    }

    #[test]
    fn last_value_wins() {
        let (c, _) = parse("log=debug log=error");
        assert_eq!(c.log.level_for("k"), LevelFilter::Error);
    }
}
