//! Per-target log levels: `info,mlx5::cmd=trace`.
//!
//! A bare level sets the default; `target=level` sets the level of a target
//! and of its sub-targets (`mlx5` covers `mlx5::cmd`); the longest matching
//! target wins.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use log::LevelFilter;

/// Parse one level word (case-insensitive).
pub fn parse_level(word: &str) -> Option<LevelFilter> {
    let levels = [
        ("off", LevelFilter::Off),
        ("error", LevelFilter::Error),
        ("warn", LevelFilter::Warn),
        ("info", LevelFilter::Info),
        ("debug", LevelFilter::Debug),
        ("trace", LevelFilter::Trace),
    ];
    levels
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|&(_, l)| l)
}

/// Why a filter specification was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    BadLevel(String),
    BadTarget(String),
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadLevel(l) => write!(
                f,
                "unknown level '{l}' (off, error, warn, info, debug, trace)"
            ),
            Self::BadTarget(t) => write!(f, "bad target '{t}'"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFilter {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Default for LogFilter {
    fn default() -> Self {
        Self::new(LevelFilter::Info)
    }
}

fn valid_target(t: &str) -> bool {
    !t.is_empty()
        && t.split("::").all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

impl LogFilter {
    pub const fn new(default: LevelFilter) -> Self {
        Self {
            default,
            targets: Vec::new(),
        }
    }

    /// Parse a comma-separated specification; all or nothing.
    pub fn parse(spec: &str) -> Result<Self, FilterError> {
        let mut f = Self::default();
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            f.apply(item)?;
        }
        Ok(f)
    }

    /// Apply one `level` or `target=level` directive.
    pub fn apply(&mut self, item: &str) -> Result<(), FilterError> {
        match item.split_once('=') {
            None => {
                self.default =
                    parse_level(item).ok_or_else(|| FilterError::BadLevel(item.to_string()))?;
            }
            Some((target, level)) => {
                let level =
                    parse_level(level).ok_or_else(|| FilterError::BadLevel(level.to_string()))?;
                if !valid_target(target) {
                    return Err(FilterError::BadTarget(target.to_string()));
                }
                self.set(target, level);
            }
        }
        Ok(())
    }

    pub fn set(&mut self, target: &str, level: LevelFilter) {
        match self.targets.iter_mut().find(|(t, _)| t == target) {
            Some(entry) => entry.1 = level,
            None => self.targets.push((target.to_string(), level)),
        }
    }

    pub fn set_default(&mut self, level: LevelFilter) {
        self.default = level;
    }

    /// The level that applies to `target`.
    pub fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(t, _)| {
                target == t
                    || (target.starts_with(t.as_str()) && target[t.len()..].starts_with("::"))
            })
            .max_by_key(|(t, _)| t.len())
            .map_or(self.default, |&(_, l)| l)
    }

    /// The most verbose level of any target (for `log::set_max_level`).
    pub fn max_level(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|&(_, l)| l)
            .fold(self.default, core::cmp::max)
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.default.as_str().to_ascii_lowercase())?;
        for (t, l) in &self.targets {
            write!(f, ",{t}={}", l.as_str().to_ascii_lowercase())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_targets() {
        let f = LogFilter::parse("warn,mlx5=debug,mlx5::cmd=trace").unwrap();
        assert_eq!(f.level_for("kernel"), LevelFilter::Warn);
        assert_eq!(f.level_for("mlx5"), LevelFilter::Debug);
        assert_eq!(f.level_for("mlx5::eq"), LevelFilter::Debug);
        assert_eq!(f.level_for("mlx5::cmd"), LevelFilter::Trace);
        assert_eq!(f.level_for("mlx5::cmdx"), LevelFilter::Debug);
        assert_eq!(f.level_for("mlx5x"), LevelFilter::Warn);
        assert_eq!(f.max_level(), LevelFilter::Trace);
        assert_eq!(f.to_string(), "warn,mlx5=debug,mlx5::cmd=trace");
    }

    #[test]
    fn bad_specs_are_refused() {
        assert_eq!(
            LogFilter::parse("loud"),
            Err(FilterError::BadLevel("loud".into()))
        );
        assert_eq!(
            LogFilter::parse("pci=verbose"),
            Err(FilterError::BadLevel("verbose".into()))
        );
        assert_eq!(
            LogFilter::parse("a::=info"),
            Err(FilterError::BadTarget("a::".into()))
        );
        assert_eq!(
            LogFilter::parse("=info"),
            Err(FilterError::BadTarget("".into()))
        );
    }

    #[test]
    fn runtime_change_overrides() {
        let mut f = LogFilter::parse("info").unwrap();
        f.apply("pci=TRACE").unwrap();
        f.apply("pci=off").unwrap();
        assert_eq!(f.level_for("pci"), LevelFilter::Off);
        assert_eq!(f.max_level(), LevelFilter::Info);
    }
}
