//! Instructions per packet of the driver's packet paths, counted by
//! callgrind: each workload runs one bench binary of `drivers/mlx5` under
//! `valgrind --tool=callgrind --toggle-collect=<function>`, so only that
//! function (inclusive: the driver code inlined into it, the platform
//! accessors it calls) is counted. The benches run on the bench platform
//! (`mlx5_sim::harness::BenchPlatform`: the kernel's kind of accessors,
//! BAR writes posted and delivered to the model between the measured
//! calls), so none of the model's work is inside. The bench prints
//! `toggle: <function>: <n> packets`, the packets that went through the
//! function; the figure is the collected instruction count over that.
//!
//! The callgrind output of each workload is kept in
//! `<target>/xtask/callgrind/<figure>.out` for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::Figure;
use crate::provision::{self, HostPackage, Probe};
use crate::workspace::{Workspace, cargo};
use crate::{Result, XtaskError};

pub const VALGRIND: HostPackage = HostPackage {
    name: "valgrind",
    probe: Probe::Program("valgrind"),
};

/// Packets each workload moves after its warm-up.
const PACKETS: &str = "32000";

/// One measured function of one bench scenario.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Figure name (`mlx5.cg_<figure>`).
    pub figure: &'static str,
    /// Bench target of `drivers/mlx5`.
    pub bench: &'static str,
    /// Environment that picks the scenario.
    pub env: &'static [(&'static str, &'static str)],
    /// The `#[inline(never)]` function collected.
    pub function: &'static str,
}

type Env = &'static [(&'static str, &'static str)];

const fn w(
    figure: &'static str,
    bench: &'static str,
    env: Env,
    function: &'static str,
) -> Workload {
    Workload {
        figure,
        bench,
        env,
        function,
    }
}

const DP_PLAIN: Env = &[("CXOS_DP_BENCH", "plain")];
const DP_OFFLOAD: Env = &[("CXOS_DP_BENCH", "offload")];
const DP_OFFLOAD_PARSE: Env = &[("CXOS_DP_BENCH", "offload_parse")];
const DP_BURST: Env = &[("CXOS_DP_BENCH", "burst")];
const DP_BURST_OFFLOAD: Env = &[("CXOS_DP_BENCH", "burst_offload")];
const DP_BURST_COMP: Env = &[("CXOS_DP_BENCH", "burst_comp")];
const DP_BURST_WQE: Env = &[("CXOS_DP_BENCH", "burst"), ("CXOS_DP_TX_EMPW", "off")];
const DP_BURST_INLINE: Env = &[("CXOS_DP_BENCH", "burst"), ("CXOS_DP_TX_EMPW", "inline")];
const DP_BURST_MIXED: Env = &[("CXOS_DP_BENCH", "burst_mixed")];
const DP_BURST_MIXED_INLINE: Env = &[("CXOS_DP_BENCH", "burst_mixed"), ("CXOS_DP_TX_EMPW", "256")];
const DP_BURST_MIXED_WQE: Env = &[("CXOS_DP_BENCH", "burst_mixed"), ("CXOS_DP_TX_EMPW", "off")];
const DP_BURST_OFFLOAD_WQE: Env = &[
    ("CXOS_DP_BENCH", "burst_offload"),
    ("CXOS_DP_TX_EMPW", "off"),
];
const DP_BURST_LX_MPW: Env = &[("CXOS_DP_BENCH", "burst"), ("CXOS_DP_PART", "cx4lx")];
const DP_BURST_LX_WQE: Env = &[
    ("CXOS_DP_BENCH", "burst"),
    ("CXOS_DP_PART", "cx4lx"),
    ("CXOS_DP_TX_EMPW", "off"),
];
const DP_BURST_LX_MPW_INLINE: Env = &[
    ("CXOS_DP_BENCH", "burst"),
    ("CXOS_DP_PART", "cx4lx"),
    ("CXOS_DP_TX_EMPW", "inline"),
];
const DP_SINGLE: Env = &[("CXOS_DP_BENCH", "single")];
const DP_SINGLE_BF: Env = &[("CXOS_DP_BENCH", "single"), ("CXOS_DP_TX_BF", "on")];
const DP_CQ_EVERY1: Env = &[("CXOS_DP_BENCH", "selective"), ("CXOS_DP_TX_CQ_EVERY", "1")];
const DP_CQ_EVERY32: Env = &[
    ("CXOS_DP_BENCH", "selective"),
    ("CXOS_DP_TX_CQ_EVERY", "32"),
];
const DP_RX_EVENTS: Env = &[("CXOS_DP_BENCH", "moderation"), ("CXOS_DP_RX_FRAMES", "0")];
const DP_RX_MODERATED: Env = &[("CXOS_DP_BENCH", "moderation"), ("CXOS_DP_RX_FRAMES", "32")];
const DP_RSS1: Env = &[("CXOS_DP_BENCH", "rss1")];
const DP_RSS8: Env = &[("CXOS_DP_BENCH", "rss8")];
const VNIC_1: Env = &[("CXOS_VNIC_BENCH", "1")];
const VNIC_20: Env = &[("CXOS_VNIC_BENCH", "20")];
const VNIC_ALL: Env = &[("CXOS_VNIC_BENCH", "all")];
const VNIC_TX: Env = &[("CXOS_VNIC_BENCH", "tx")];
const VNIC_QS1: Env = &[("CXOS_VNIC_BENCH", "qs1")];
const VNIC_QS4: Env = &[("CXOS_VNIC_BENCH", "qs4")];

/// Every workload, in the order BENCHMARKS.md lists them.
pub const WORKLOADS: &[Workload] = &[
    w("tx_plain", "datapath", DP_PLAIN, "datapath::tx_batch"),
    w("rx_plain", "datapath", DP_PLAIN, "datapath::rx_batch"),
    w(
        "tx_offload",
        "datapath",
        DP_OFFLOAD,
        "datapath::tx_batch_offload",
    ),
    w("rx_offload", "datapath", DP_OFFLOAD, "datapath::rx_batch"),
    w(
        "tx_offload_parse",
        "datapath",
        DP_OFFLOAD_PARSE,
        "datapath::tx_batch_offload_parse",
    ),
    w("tx_burst", "datapath", DP_BURST, "datapath::tx_burst"),
    w(
        "tx_burst_wqe",
        "datapath",
        DP_BURST_WQE,
        "datapath::tx_burst",
    ),
    w(
        "tx_burst_inline",
        "datapath",
        DP_BURST_INLINE,
        "datapath::tx_burst",
    ),
    w(
        "tx_burst_lx_mpw",
        "datapath",
        DP_BURST_LX_MPW,
        "datapath::tx_burst",
    ),
    w(
        "tx_burst_lx_wqe",
        "datapath",
        DP_BURST_LX_WQE,
        "datapath::tx_burst",
    ),
    w(
        "tx_burst_lx_mpw_inline",
        "datapath",
        DP_BURST_LX_MPW_INLINE,
        "datapath::tx_burst",
    ),
    w("rx_burst", "datapath", DP_BURST, "datapath::rx_burst"),
    w(
        "tx_burst_mixed",
        "datapath",
        DP_BURST_MIXED,
        "datapath::tx_burst_mixed",
    ),
    w(
        "tx_burst_mixed_inline",
        "datapath",
        DP_BURST_MIXED_INLINE,
        "datapath::tx_burst_mixed",
    ),
    w(
        "tx_burst_mixed_wqe",
        "datapath",
        DP_BURST_MIXED_WQE,
        "datapath::tx_burst_mixed",
    ),
    w(
        "rx_burst_mixed",
        "datapath",
        DP_BURST_MIXED,
        "datapath::rx_burst_mixed",
    ),
    w(
        "rx_burst_comp",
        "datapath",
        DP_BURST_COMP,
        "datapath::rx_burst",
    ),
    w(
        "tx_burst_offload",
        "datapath",
        DP_BURST_OFFLOAD,
        "datapath::tx_burst_offload",
    ),
    w(
        "tx_burst_offload_wqe",
        "datapath",
        DP_BURST_OFFLOAD_WQE,
        "datapath::tx_burst_offload",
    ),
    w(
        "rx_burst_meta",
        "datapath",
        DP_BURST_OFFLOAD,
        "datapath::rx_burst_meta",
    ),
    w("tx_single", "datapath", DP_SINGLE, "datapath::tx_single"),
    w(
        "tx_single_bf",
        "datapath",
        DP_SINGLE_BF,
        "datapath::tx_single",
    ),
    w(
        "tx_cq_every1",
        "datapath",
        DP_CQ_EVERY1,
        "datapath::tx_burst",
    ),
    w(
        "tx_cq_every32",
        "datapath",
        DP_CQ_EVERY32,
        "datapath::tx_burst",
    ),
    w("rx_events", "datapath", DP_RX_EVENTS, "datapath::rx_events"),
    w(
        "rx_events_moderated",
        "datapath",
        DP_RX_MODERATED,
        "datapath::rx_events",
    ),
    w("rx_rss1", "datapath", DP_RSS1, "datapath::rx_batch"),
    w("rx_rss8", "datapath", DP_RSS8, "datapath::rx_batch"),
    w("rx_vnic1", "vnic", VNIC_1, "vnic::rx_batch"),
    w("rx_vnic20", "vnic", VNIC_20, "vnic::rx_batch"),
    w("rx_vnic20_all", "vnic", VNIC_ALL, "vnic::rx_all"),
    w("tx_vnic", "vnic", VNIC_TX, "vnic::vnic_tx_batch"),
    w("rx_qs1", "vnic", VNIC_QS1, "vnic::qs_batch"),
    w("rx_qs4", "vnic", VNIC_QS4, "vnic::qs_batch"),
    w(
        "tx_events",
        "datapath",
        &[
            ("CXOS_DP_BENCH", "tx_moderation"),
            ("CXOS_DP_TX_FRAMES", "0"),
        ],
        "datapath::tx_one",
    ),
    w(
        "tx_events_moderated",
        "datapath",
        &[
            ("CXOS_DP_BENCH", "tx_moderation"),
            ("CXOS_DP_TX_FRAMES", "32"),
        ],
        "datapath::tx_one",
    ),
    w(
        "rx_burst_cyclic",
        "datapath",
        &[("CXOS_DP_BENCH", "burst_cyclic")],
        "datapath::rx_burst",
    ),
];

/// Runs the workloads whose figure name contains `filter` (all when
/// empty), printing each figure as it comes.
pub fn figures(ws: &Workspace, filter: &str) -> Result<Vec<Figure>> {
    provision::ensure(&[VALGRIND])?;
    let chosen: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| w.figure.contains(filter))
        .collect();
    let mut benches: Vec<&str> = chosen.iter().map(|w| w.bench).collect();
    benches.dedup();
    let exes = build(ws, &benches)?;
    let dir = ws.xtask_dir().join("callgrind");
    std::fs::create_dir_all(&dir)?;
    let mut out = Vec::new();
    for w in chosen {
        let exe = exes
            .iter()
            .find(|(name, _)| name == w.bench)
            .map(|(_, p)| p)
            .ok_or_else(|| XtaskError::msg(format!("bench {} was not built", w.bench)))?;
        let per_packet = measure(exe, w, &dir.join(format!("{}.out", w.figure)))?;
        let figure = Figure {
            name: format!("mlx5.cg_{}", w.figure),
            value: format!("{per_packet:.1}"),
            unit: "instructions/packet".into(),
        };
        println!("{figure}");
        out.push(figure);
    }
    Ok(out)
}

/// Builds the bench binaries of `drivers/mlx5` and returns (target name,
/// executable).
fn build(ws: &Workspace, benches: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut cmd = Command::new(cargo());
    cmd.args(["bench", "-p", "mlx5", "--no-run", "--message-format=json"]);
    for b in benches {
        cmd.args(["--bench", b]);
    }
    let out = cmd
        .current_dir(&ws.root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| XtaskError::msg(format!("cannot run cargo bench: {e}")))?;
    if !out.status.success() {
        return Err(XtaskError::msg(format!(
            "cargo bench --no-run failed ({})",
            out.status
        )));
    }
    Ok(executables(&String::from_utf8_lossy(&out.stdout)))
}

/// (target name, executable) of every bench artifact in cargo's JSON
/// messages.
fn executables(json_lines: &str) -> Vec<(String, PathBuf)> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .filter_map(|v| {
            let name = v["target"]["name"].as_str()?.to_string();
            let exe = v["executable"].as_str()?;
            Some((name, PathBuf::from(exe)))
        })
        .collect()
}

/// One workload under callgrind: collected instructions per packet.
fn measure(exe: &Path, w: &Workload, out_file: &Path) -> Result<f64> {
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(format!("--toggle-collect={}", w.function))
        .arg(exe)
        .env("CXOS_DP_PACKETS", PACKETS)
        .env("CXOS_VNIC_PACKETS", PACKETS);
    for (k, v) in w.env {
        cmd.env(k, v);
    }
    let run = cmd
        .output()
        .map_err(|e| XtaskError::msg(format!("cannot run valgrind: {e}")))?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    if !run.status.success() {
        return Err(XtaskError::msg(format!(
            "{} under callgrind failed ({}):\n{stdout}\n{}",
            w.figure,
            run.status,
            String::from_utf8_lossy(&run.stderr)
        )));
    }
    let packets = toggled_packets(&stdout, w.function).ok_or_else(|| {
        XtaskError::msg(format!("{}: no `toggle: {}` line", w.figure, w.function))
    })?;
    let text = std::fs::read_to_string(out_file)?;
    let ir = collected(&text).ok_or_else(|| {
        XtaskError::msg(format!("{}: no totals in {}", w.figure, out_file.display()))
    })?;
    Ok(ir as f64 / packets as f64)
}

/// The packets of the last `toggle: <function>: <n> packets` line.
fn toggled_packets(stdout: &str, function: &str) -> Option<u64> {
    let prefix = format!("toggle: {function}: ");
    stdout
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .find_map(|rest| rest.strip_suffix(" packets")?.trim().parse().ok())
}

/// The collected Ir of a callgrind output file (`totals:` or, in older
/// formats, `summary:`).
fn collected(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toggle_lines_totals_and_artifacts() {
        let out = "toggle: datapath::tx_batch: 10 packets\nbench: x: 1 ns\n\
                   toggle: datapath::rx_batch: 7 packets\ntoggle: datapath::tx_batch: 35200 packets\n";
        assert_eq!(toggled_packets(out, "datapath::tx_batch"), Some(35200));
        assert_eq!(toggled_packets(out, "datapath::rx_batch"), Some(7));
        assert_eq!(toggled_packets(out, "vnic::rx_all"), None);
        let cg = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 10528440\ntotals: 10528440\n";
        assert_eq!(collected(cg), Some(10_528_440));
        let json = r#"{"reason":"compiler-artifact","target":{"name":"datapath"},"executable":"/t/datapath-1"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executables(json),
            vec![("datapath".to_string(), PathBuf::from("/t/datapath-1"))]
        );
    }

    #[test]
    fn every_workload_picks_a_scenario() {
        for w in WORKLOADS {
            assert!(!w.env.is_empty(), "{}", w.figure);
        }
    }
}
