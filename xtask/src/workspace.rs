//! Where things are: the workspace root and cargo's target directory.
//!
//! The target directory comes from `cargo metadata` so that
//! `CARGO_TARGET_DIR` and `build.target-dir` are honoured exactly as cargo
//! honours them.

use std::path::PathBuf;
use std::process::Command;

use crate::{Result, XtaskError};

/// Paths every subcommand needs.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory holding the workspace's Cargo.toml.
    pub root: PathBuf,
    /// cargo's target directory (`target_directory` of `cargo metadata`).
    pub target: PathBuf,
    /// Names of the workspace's bench targets (`[[bench]]`, `benches/*.rs`).
    pub bench_targets: Vec<String>,
}

impl Workspace {
    /// Asks cargo where the workspace and its target directory are.
    pub fn locate() -> Result<Self> {
        let out = Command::new(cargo())
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .map_err(|e| XtaskError::msg(format!("cannot run cargo metadata: {e}")))?;
        if !out.status.success() {
            return Err(XtaskError::msg(format!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Self::from_metadata(&String::from_utf8_lossy(&out.stdout))
    }

    /// Parses the output of `cargo metadata --format-version 1`.
    pub fn from_metadata(json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| XtaskError::msg(format!("cargo metadata: bad JSON: {e}")))?;
        let field = |name: &str| -> Result<PathBuf> {
            value[name]
                .as_str()
                .map(PathBuf::from)
                .ok_or_else(|| XtaskError::msg(format!("cargo metadata: no `{name}`")))
        };
        let bench_targets = value["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|package| package["targets"].as_array().into_iter().flatten())
            .filter(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "bench"))
            })
            .filter_map(|target| target["name"].as_str().map(str::to_string))
            .collect();
        Ok(Self {
            root: field("workspace_root")?,
            target: field("target_directory")?,
            bench_targets,
        })
    }

    /// `<target>/xtask`: everything xtask itself produces (ISOs, logs, firmware variables).
    pub fn xtask_dir(&self) -> PathBuf {
        self.target.join("xtask")
    }

    /// `<target>/xtask/logs`: serial logs of system tests.
    pub fn logs_dir(&self) -> PathBuf {
        self.xtask_dir().join("logs")
    }
}

/// The cargo that runs us (so `cargo +toolchain xtask` keeps its toolchain).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_root_and_target_from_metadata() {
        let json = r#"{"packages":[
            {"name":"mlx5","targets":[{"kind":["lib"],"name":"mlx5"},{"kind":["bench"],"name":"cmdq"}]},
            {"name":"xtask","targets":[{"kind":["bin"],"name":"xtask"}]}],
            "workspace_root":"/src/cxos","target_directory":"/tmp/t","version":1}"#;
        let ws = Workspace::from_metadata(json).unwrap();
        assert_eq!(ws.bench_targets, ["cmdq"]);
        assert_eq!(ws.root, PathBuf::from("/src/cxos"));
        assert_eq!(ws.target, PathBuf::from("/tmp/t"));
        assert_eq!(ws.logs_dir(), PathBuf::from("/tmp/t/xtask/logs"));
    }

    #[test]
    fn metadata_without_target_is_an_error() {
        assert!(Workspace::from_metadata(r#"{"workspace_root":"/x"}"#).is_err());
        assert!(Workspace::from_metadata("not json").is_err());
    }
}
