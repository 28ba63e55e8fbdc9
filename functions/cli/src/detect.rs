//! `sluice detect`: the aggregate function's detectors on any `timestamp,value` series, one
//! point at a time; and the NAB scoring behind `sluice detect-eval --nab DIR`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use sluice_core::detect::calibrated::{Calibrated, Params};
use sluice_core::detect::{DetectorKind, FLAG_SCORE, SeriesDetector, score_series};
use sluice_core::nab::{
    LabelledSeries, PROFILES, held_out, load_corpus, mean_over_folds, score_corpus,
};
use sluice_core::series::{SeriesOptions, read_series_csv};

#[derive(Args)]
pub struct DetectArgs {
    /// CSV with a header line: a time column (RFC 3339, `YYYY-MM-DD HH:MM:SS` or epoch
    /// seconds/milliseconds) and a value column. Rows whose value is empty or NaN are skipped
    /// and counted. NAB's `timestamp,value` files are read as they are.
    #[arg(long)]
    pub input: PathBuf,
    /// The time column (default: timestamp, time, date, datetime or ts; or the first of two).
    #[arg(long, value_name = "NAME")]
    pub time_column: Option<String>,
    /// The value column (default: value; or the other of two).
    #[arg(long, value_name = "NAME")]
    pub value_column: Option<String>,
    /// IANA zone of times written without an offset, such as Europe/Berlin (default: UTC).
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
    /// Where to write `timestamp,value,anomaly_score,detector,flagged,baseline,spread`.
    #[arg(long)]
    pub output: PathBuf,
    /// default (= calibrated), spike_dip, change_point, zscore or windowed_gaussian.
    #[arg(long, default_value = "default")]
    pub detector: String,
    /// Also draw the series, the detector's baseline band and the flagged points as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

fn detector(name: &str) -> anyhow::Result<SeriesDetector> {
    SeriesDetector::parse(name).with_context(|| {
        let names: Vec<&str> = SeriesDetector::ALL.iter().map(|d| d.name()).collect();
        format!(
            "unknown detector {name:?}; choose one of {}",
            names.join(", ")
        )
    })
}

pub fn detect(args: DetectArgs) -> anyhow::Result<()> {
    let chosen = detector(&args.detector)?;
    let zone = args
        .zone
        .as_deref()
        .map(|z| {
            z.parse::<chrono_tz::Tz>().map_err(|_| {
                anyhow::anyhow!("--zone {z:?} is not an IANA zone such as Europe/Berlin or UTC")
            })
        })
        .transpose()?;
    let options = SeriesOptions {
        time_column: args.time_column.clone(),
        value_column: args.value_column.clone(),
        zone,
    };
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let series =
        read_series_csv(&text, &options).with_context(|| format!("{}", args.input.display()))?;
    let (timestamps, values) = (&series.timestamps, &series.values);
    if values.is_empty() {
        anyhow::bail!(
            "{}: no row has a value ({} rows without one): nothing to score; is --value-column the right column?",
            args.input.display(),
            series.missing.len()
        );
    }
    let backwards = timestamps.windows(2).position(|w| w[1] < w[0]);
    // The default detector runs once: its verdicts, and the cycle it found.
    let (verdicts, cycle) = if chosen == SeriesDetector::Single(DetectorKind::Calibrated) {
        let (verdicts, d) = Calibrated::run(Params::default(), timestamps, values);
        (verdicts, Some((d.cycle_ms(), d.assumes_day())))
    } else {
        (score_series(chosen, timestamps, values), None)
    };
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(
        out,
        "timestamp,value,anomaly_score,detector,flagged,baseline,spread"
    )?;
    // The original timestamp text is kept, so rows line up with the input exactly.
    let stamps = series.stamps.iter().map(|s| csv_field(s));
    let mut flagged = 0;
    for ((stamp, value), (v, name)) in stamps.zip(values.iter()).zip(&verdicts) {
        let fired = v.score >= FLAG_SCORE;
        flagged += fired as usize;
        writeln!(
            out,
            "{stamp},{value},{:.6},{name},{},{},{}",
            v.score, fired as u8, v.baseline, v.spread
        )?;
    }
    out.flush()?;
    if let Some(plot) = &args.plot {
        let title = format!(
            "{} — detector {}",
            args.input
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            chosen.name()
        );
        let scored: Vec<_> = verdicts.iter().map(|(v, _)| *v).collect();
        crate::plot::plot_svg(plot, &title, timestamps, values, &scored).with_context(|| {
            format!(
                "the scores are written to {}, but the plot is not",
                args.output.display()
            )
        })?;
        eprintln!("plot → {}", plot.display());
    }
    eprintln!(
        "{} rows scored with {}; {flagged} flagged (score ≥ {FLAG_SCORE}) → {}",
        values.len(),
        chosen.name(),
        args.output.display()
    );
    match cycle {
        Some((Some(ms), _)) => eprintln!(
            "cycle: {:.1} hours (points are judged against its profile once it is found)",
            ms as f64 / 3_600_000.0
        ),
        Some((None, true)) => {
            eprintln!("cycle: none found (a day is assumed, and used where its profile fits)")
        }
        Some((None, false)) => eprintln!("cycle: none found"),
        None => {}
    }
    if let Some(i) = backwards {
        eprintln!(
            "warning: times go backwards after {}: rows are read in file order; sort the file, or split it if it holds several series",
            series.stamps[i]
        );
    }
    if let Some((line, value)) = series.missing.first() {
        let n = series.missing.len();
        eprintln!(
            "{n} row{} without a value skipped (the first on line {line}: {value:?}); the detector saw a gap there",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// `text` as one CSV field: quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// Held-out NAB scores per profile: leave one category out, the mean over folds. The default
/// detector is tuned on the other categories over its sensitivity grid; the others have fixed
/// settings, so theirs is the mean of their per-category scores.
fn held_out_scores(corpus: &[LabelledSeries], d: SeriesDetector) -> [f64; 3] {
    let folds = if d == SeriesDetector::Single(DetectorKind::Calibrated) {
        held_out(corpus, &Params::default().sensitivity_grid(), |p, s| {
            Calibrated::scores(p, &s.timestamps, &s.values)
        })
    } else {
        held_out(corpus, &[()], |(), s| {
            score_series(d, &s.timestamps, &s.values)
                .into_iter()
                .map(|(v, _)| v.score)
                .collect()
        })
    };
    mean_over_folds(&folds)
}

pub fn nab_table(root: &Path, json: bool) -> anyhow::Result<()> {
    let corpus = load_corpus(root)?;
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    if !json {
        println!(
            "\nNAB ({} series, {windows} windows under {}):",
            corpus.len(),
            root.display()
        );
        println!(
            "{:18} {:>9} {:>19} {:>19}   held out (leave one category out): {} / {} / {}",
            "detector",
            PROFILES[0].name,
            PROFILES[1].name,
            PROFILES[2].name,
            PROFILES[0].name,
            PROFILES[1].name,
            PROFILES[2].name
        );
    }
    for d in SeriesDetector::ALL {
        let started = std::time::Instant::now();
        let result = score_corpus(&corpus, |s| {
            score_series(d, &s.timestamps, &s.values)
                .into_iter()
                .map(|(v, _)| v.score)
                .collect()
        });
        let points: usize = corpus.iter().map(|s| s.values.len()).sum();
        let rate = points as f64 / started.elapsed().as_secs_f64();
        let held = held_out_scores(&corpus, d);
        if json {
            println!(
                "{}",
                serde_json::json!({"detector": d.name(), "standard": result[0], "reward_low_FP_rate": result[1], "reward_low_FN_rate": result[2], "held_out": {"standard": held[0], "reward_low_FP_rate": held[1], "reward_low_FN_rate": held[2]}})
            );
        } else {
            println!(
                "{:18} {:>9.1} {:>19.1} {:>19.1}   held out {:.1} / {:.1} / {:.1}   ({rate:.0} points/s incl. scoring)",
                d.name(),
                result[0],
                result[1],
                result[2],
                held[0],
                held[1],
                held[2]
            );
        }
    }
    Ok(())
}
