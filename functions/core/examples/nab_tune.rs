//! Development aid: NAB scores of the default detector under parameter overrides, overall and per
//! category, so a change can be judged on both shipped categories at once.
//!
//! `cargo run --release -p sluice-core --example nab_tune -- [NAB_DIR] [name=value ...]`

use std::path::PathBuf;

use sluice_core::detect::calibrated::{Calibrated, Params};
use sluice_core::nab::{LabelledSeries, PROFILES, score_corpus};

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let root = match args.peek() {
        Some(a) if !a.contains('=') => PathBuf::from(args.next().unwrap_or_default()),
        _ => PathBuf::from("../shared/nab"),
    };
    let mut p = Params::default();
    for kv in args {
        let (k, v) = kv.split_once('=').expect("name=value");
        let v: f64 = v.parse().expect("number");
        match k {
            "scale_span" => p.scale_span = v,
            "spike_threshold" => p.spike_threshold = v,
            "baseline_span" => p.baseline_span = v,
            "cusum_slack" => p.cusum_slack = v,
            "cusum_threshold" => p.cusum_threshold = v,
            "refractory" => p.refractory = v as u32,
            "warmup" => p.warmup = v as u32,
            "seasonal_gain" => p.seasonal_gain = v,
            "seasonal_span" => p.seasonal_span = v,
            "rarity_span" => p.rarity_span = v,
            "rare" => p.rare = v,
            "density_span" => p.density_span = v,
            "density_threshold" => p.density_threshold = v,
            other => panic!("unknown parameter {other}"),
        }
    }
    if std::env::var_os("CYCLE").is_some() {
        // The cycle: one-minute points, 200 + 20 sin(2πi/600) + N(0, 2²), +60 at 2000.
        let seeds: u64 = std::env::var("SEEDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let period: f64 = std::env::var("PERIOD")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600.0);
        let sigma: f64 = std::env::var("SIGMA")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2.0);
        for seed in 1..=seeds {
            let mut r = sluice_core::rng::Rng::new(seed);
            let mut d = Calibrated::new(p);
            let mut out = Vec::new();
            for i in 0..2400i64 {
                let spike = if i == 2000 { 60.0 } else { 0.0 };
                let x = 200.0
                    + 20.0 * (2.0 * std::f64::consts::PI * i as f64 / period).sin()
                    + sigma * r.normal()
                    + spike;
                let v = d.update(i * 60_000, x);
                if v.flagged() || i == 2000 {
                    out.push(format!("{i}:{:.2}:{}", v.score, d.evidence().strongest()));
                }
            }
            println!("seed {seed}: {}", out.join(" "));
        }
        return;
    }
    if std::env::var_os("PLANTED").is_some() {
        use sluice_core::aggregate::AggregateConfig;
        use sluice_core::detect::DetectorKind;
        use sluice_core::evaluate::{run_scenario, score};
        use sluice_core::event::Scenario;
        let mut config = AggregateConfig::builtin();
        config.detect.detectors = vec![DetectorKind::Calibrated];
        for scenario in Scenario::ALL {
            let (mut planted, mut found, mut flags, mut good) = (0, 0, 0, 0);
            for seed in 1..=3 {
                let (truth, anomalies) =
                    run_scenario(scenario, seed, 50.0, 1_767_571_200_000, 1440, &config);
                let s = score(&truth, &anomalies, None, 10_000);
                planted += s.planted;
                found += s.found;
                flags += s.flags;
                good += s.true_flags;
            }
            let (p_, r) = (
                good as f64 / flags.max(1) as f64,
                found as f64 / planted.max(1) as f64,
            );
            println!(
                "{:12} planted {planted} found {found} flags {flags} precision {p_:.3} recall {r:.3} F1 {:.3}",
                scenario.as_str(),
                2.0 * p_ * r / (p_ + r).max(1e-9)
            );
        }
        return;
    }
    let corpus = sluice_core::nab::load_corpus(&root).expect("NAB corpus");
    if let Some(name) = std::env::var_os("SHOW") {
        let name = name.to_string_lossy().into_owned();
        for s in corpus.iter().filter(|s| s.name.contains(&name)) {
            let windows: Vec<(usize, usize)> = s
                .windows
                .iter()
                .map(|&(a, b)| {
                    let i = s.timestamps.iter().position(|&t| t >= a).unwrap_or(0);
                    let j = s.timestamps.iter().rposition(|&t| t <= b).unwrap_or(0);
                    (i, j)
                })
                .collect();
            println!("{} windows {windows:?}", s.name);
            let mut d = Calibrated::new(p);
            for (i, (&t, &x)) in s.timestamps.iter().zip(&s.values).enumerate() {
                let v = d.update(t, x);
                if v.flagged() {
                    print!("{i}:{:.2}:{} ", v.score, d.evidence().strongest());
                }
            }
            println!();
        }
        return;
    }
    if std::env::var_os("HELDOUT").is_some() {
        held_out(&corpus, p);
        return;
    }
    if std::env::var_os("STATE").is_some() {
        let sizes: Vec<usize> = corpus
            .iter()
            .map(|s| {
                let mut d = Calibrated::new(p);
                for (&t, &x) in s.timestamps.iter().zip(&s.values) {
                    d.update(t, x);
                }
                serde_json::to_vec(&d).map_or(0, |b| b.len())
            })
            .collect();
        println!(
            "state JSON bytes: min {:?} max {:?}",
            sizes.iter().min(),
            sizes.iter().max()
        );
    }
    let run = |s: &LabelledSeries| Calibrated::scores(p, &s.timestamps, &s.values);
    let show = |label: &str, part: &[LabelledSeries]| {
        let s = score_corpus(part, run);
        println!("{label:10} {:6.1} {:6.1} {:6.1}", s[0], s[1], s[2]);
    };
    println!(
        "{:10} {:>6} {:>6} {:>6}",
        "",
        PROFILES[0].name.get(..6).unwrap_or(""),
        "lowFP",
        "lowFN"
    );
    show("all", &corpus);
    if std::env::var_os("SERIES").is_some() {
        for s in &corpus {
            let mut d = Calibrated::new(p);
            let mut found_at = None;
            for (i, (&t, &x)) in s.timestamps.iter().zip(&s.values).enumerate() {
                d.update(t, x);
                if found_at.is_none() && d.cycle_ms().is_some() {
                    found_at = Some(i);
                }
            }
            let one = score_corpus(std::slice::from_ref(s), run);
            println!(
                "{:60} {:6.1} cycle {:?} min, found at point {:?} of {}",
                s.name,
                one[0],
                d.cycle_ms().map(|ms| ms / 60_000),
                found_at,
                s.values.len()
            );
        }
    }
    let art: Vec<LabelledSeries> = corpus
        .iter()
        .filter(|s| s.name.starts_with("artificial"))
        .cloned()
        .collect();
    let aws: Vec<LabelledSeries> = corpus
        .iter()
        .filter(|s| !s.name.starts_with("artificial"))
        .cloned()
        .collect();
    show("artificial", &art);
    show("aws", &aws);
    // Detections at the shipped flag score (0.5): windows found, missed, and false positives.
    let (mut found, mut missed, mut false_pos) = (0, 0, 0);
    for s in &corpus {
        let scores = run(s);
        let skip = sluice_core::nab::probationary_rows(s.values.len());
        let wins: Vec<(i64, i64)> = s.windows.clone();
        for &(a, b) in &wins {
            let hit = s
                .timestamps
                .iter()
                .zip(&scores)
                .any(|(&t, &v)| t >= a && t <= b && v >= 0.5);
            if hit { found += 1 } else { missed += 1 }
        }
        false_pos += s
            .timestamps
            .iter()
            .zip(&scores)
            .skip(skip)
            .filter(|&(&t, &v)| v >= 0.5 && !wins.iter().any(|&(a, b)| t >= a && t <= b))
            .count();
    }
    println!("at 0.5: {found} windows found, {missed} missed, {false_pos} false positives");
    if let Ok(spec) = std::env::var("TRACE") {
        // TRACE=name:from:to prints each point's evidence.
        let mut it = spec.split(':');
        let (name, from, to) = (
            it.next().unwrap_or(""),
            it.next().and_then(|v| v.parse().ok()).unwrap_or(0usize),
            it.next().and_then(|v| v.parse().ok()).unwrap_or(0usize),
        );
        if let Some(s) = corpus.iter().find(|s| s.name.contains(name)) {
            let mut d = Calibrated::new(p);
            for (i, (&t, &x)) in s.timestamps.iter().zip(&s.values).enumerate().take(to) {
                let v = d.update(t, x);
                if i >= from {
                    let e = d.evidence();
                    println!(
                        "{i} x={x:.4} score={:.3} base={:.4} spread={:.4} surprise={:.2} spike={:.2} burst={:.2} shift={:.2} seas={}",
                        v.score,
                        v.baseline,
                        v.spread,
                        e.surprise,
                        e.spike,
                        e.burst,
                        e.shift,
                        e.cyclic
                    );
                }
            }
        }
    }
    if std::env::var_os("PER_FILE").is_some() {
        for s in &corpus {
            let scores = run(s);
            let flags: Vec<usize> = scores
                .iter()
                .enumerate()
                .filter(|(_, v)| **v >= 0.5)
                .map(|(i, _)| i)
                .collect();
            let wins: Vec<(usize, usize)> = s
                .windows
                .iter()
                .filter_map(|&(a, b)| {
                    Some((
                        s.timestamps.iter().position(|&t| t >= a)?,
                        s.timestamps.iter().rposition(|&t| t <= b)?,
                    ))
                })
                .collect();
            println!(
                "{} n={} windows={:?} flags={:?}",
                s.name,
                s.values.len(),
                wins,
                flags
            );
        }
    }
}

/// [`sluice_core::nab::held_out`] over the default detector's sensitivity grid, per fold and
/// as the mean over folds.
fn held_out(corpus: &[LabelledSeries], base: Params) {
    let folds = sluice_core::nab::held_out(corpus, &base.sensitivity_grid(), |p, s| {
        Calibrated::scores(p, &s.timestamps, &s.values)
    });
    for f in &folds {
        println!(
            "held out {:24} ({:2} settings tie): {:5.1} {:5.1} {:5.1}",
            f.category, f.tied, f.scores[0], f.scores[1], f.scores[2]
        );
    }
    let mean = sluice_core::nab::mean_over_folds(&folds);
    println!(
        "held-out mean {:6.2} {:6.2} {:6.2}",
        mean[0], mean[1], mean[2]
    );
}
