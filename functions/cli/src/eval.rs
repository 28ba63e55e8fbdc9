//! `sluice detect-eval`: how well the per-key detectors find the anomalies the generators
//! plant, per scenario and detector.

use anyhow::Context;
use clap::Args;
use sluice_core::aggregate::{AggregateConfig, DEFAULT_ALLOWED_LATENESS_MS};
use sluice_core::detect::DetectorKind;
use sluice_core::evaluate::{run_scenario, score};

#[derive(Args)]
pub struct EvalArgs {
    /// Event-time minutes generated per scenario.
    #[arg(long, default_value_t = 1440)]
    pub minutes: i64,
    /// Events per second per scenario.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Seeds to average over (comma-separated).
    #[arg(long, default_value = "1,2,3", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Print one JSON object per row instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also score every detector on a NAB corpus (a directory with data/ and labels/).
    #[arg(long)]
    pub nab: Option<std::path::PathBuf>,
    /// The definitions whose detectors are scored: those of the scenarios with a generator.
    #[command(flatten)]
    pub streams: crate::local::StreamsArg,
}

pub fn detect_eval(args: EvalArgs) -> anyhow::Result<()> {
    // Every detector runs side by side, so each row compares like with like.
    let streams = args.streams.load()?;
    let scenarios = crate::local::generated_scenarios("all", &streams)?;
    if scenarios.is_empty() {
        anyhow::bail!(
            "none of the loaded streams ({}) has a generator that plants anomalies (trades, telemetry, clickstream)",
            streams.names().join(", ")
        );
    }
    let mut config = AggregateConfig::new(streams, &[], DEFAULT_ALLOWED_LATENESS_MS)?;
    config.detect.detectors = DetectorKind::ALL.to_vec();
    // One detection window (the shipped definitions' 10 s) of delay is allowed.
    let grace_ms = 10_000;
    let start_ms = sluice_core::time::parse_timestamp_ms(
        "2026-01-05T00:00:00Z",
        sluice_core::time::Offset::Required,
    )
    .context("start time")?;
    if !args.json {
        println!(
            "{:12} {:13} {:>8} {:>6} {:>6} {:>6} {:>9} {:>7} {:>6}",
            "scenario",
            "detector",
            "planted",
            "found",
            "flags",
            "true",
            "precision",
            "recall",
            "F1"
        );
    }
    for scenario in scenarios {
        let mut runs = Vec::new();
        for &seed in &args.seeds {
            runs.push(run_scenario(
                scenario,
                seed,
                args.rate,
                start_ms,
                args.minutes,
                &config,
            ));
        }
        let choices: Vec<Option<DetectorKind>> = DetectorKind::ALL
            .iter()
            .copied()
            .map(Some)
            .chain([None])
            .collect();
        for detector in choices {
            let mut total = sluice_core::evaluate::Score {
                planted: 0,
                found: 0,
                flags: 0,
                true_flags: 0,
            };
            for (truth, anomalies) in &runs {
                let s = score(truth, anomalies, detector, grace_ms);
                total.planted += s.planted;
                total.found += s.found;
                total.flags += s.flags;
                total.true_flags += s.true_flags;
            }
            let name = detector.map_or("any", |d| d.as_str());
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"scenario": scenario.as_str(), "detector": name, "planted": total.planted,
                        "found": total.found, "flags": total.flags, "true_flags": total.true_flags,
                        "precision": total.precision(), "recall": total.recall(), "f1": total.f1()})
                );
            } else {
                println!(
                    "{:12} {:13} {:>8} {:>6} {:>6} {:>6} {:>9.3} {:>7.3} {:>6.3}",
                    scenario.as_str(),
                    name,
                    total.planted,
                    total.found,
                    total.flags,
                    total.true_flags,
                    total.precision(),
                    total.recall(),
                    total.f1()
                );
            }
        }
    }
    if let Some(root) = &args.nab {
        crate::detect::nab_table(root, args.json)?;
    }
    Ok(())
}
