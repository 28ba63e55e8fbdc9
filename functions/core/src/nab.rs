//! Scoring detectors the way the Numenta Anomaly Benchmark does (Lavin & Ahmad, 2015; NAB's
//! sweeper), so figures are comparable with published NAB results.
//!
//! - Each labelled anomaly window counts once: the first detection in it earns
//!   `tp_weight · σ(position)`, where the scaled sigmoid is ≈ 0.99 at the window's start and
//!   falls towards 0 at its end; a window with no detection costs `fn_weight`.
//! - A detection outside every window costs `fp_weight · σ(distance past the previous window)`:
//!   little just after a window, the full weight far from one (or before the first window).
//! - The first 15% of each series (at most 750 rows) is probationary and not scored.
//! - A threshold turns scores into detections; per profile, the threshold that maximises the
//!   total over the corpus is used.
//! - Totals are normalised: 100 × (raw − null) / (perfect − null), where the null detector never
//!   fires and the perfect one fires on the first row of every window.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::time::{Offset, parse_timestamp_ms};

/// A scoring profile: NAB's cost matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub tp_weight: f64,
    pub fn_weight: f64,
    pub fp_weight: f64,
}

/// NAB's three published profiles (`config/profiles.json`).
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp_weight: 1.0,
        fn_weight: 1.0,
        fp_weight: 0.11,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp_weight: 1.0,
        fn_weight: 1.0,
        fp_weight: 0.22,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp_weight: 1.0,
        fn_weight: 2.0,
        fp_weight: 0.11,
    },
];

pub const PROBATIONARY_PERCENT: f64 = 0.15;

#[derive(Debug, Error, PartialEq)]
pub enum SeriesError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("the header must be `timestamp,value`, found {0:?}")]
    Header(String),
}

/// Parses NAB's `timestamp,value` CSV (`YYYY-MM-DD HH:MM:SS`, naive = UTC). Accepts CRLF line
/// endings, exponent notation and repeated or backward timestamps (kept in file order).
pub fn parse_series_csv(text: &str) -> Result<(Vec<i64>, Vec<f64>), SeriesError> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.trim().to_string())
        .unwrap_or_default();
    if header.replace(' ', "") != "timestamp,value" {
        return Err(SeriesError::Header(header));
    }
    let (mut timestamps, mut values) = (Vec::new(), Vec::new());
    for (i, raw) in lines {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |message: String| SeriesError::Line {
            line: i + 1,
            message,
        };
        let (ts, value) = line
            .split_once(',')
            .ok_or_else(|| bad(format!("expected `timestamp,value`, found {line:?}")))?;
        let t = parse_timestamp_ms(ts.trim(), Offset::AssumeUtc).map_err(|e| bad(e.to_string()))?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad(format!("{:?} is not a number", value.trim())))?;
        if !v.is_finite() {
            return Err(bad(format!("{v} is not a finite number")));
        }
        timestamps.push(t);
        values.push(v);
    }
    Ok((timestamps, values))
}

/// NAB's `labels/combined_windows.json`: series path → anomaly windows (UTC ms, inclusive).
pub fn parse_windows_json(
    text: &str,
) -> Result<std::collections::BTreeMap<String, Vec<(i64, i64)>>, SeriesError> {
    let raw: std::collections::BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(text)
        .map_err(|e| SeriesError::Line {
            line: e.line(),
            message: e.to_string(),
        })?;
    raw.into_iter()
        .map(|(name, windows)| {
            let parsed = windows
                .iter()
                .map(|(start, end)| {
                    let t = |s: &str| {
                        parse_timestamp_ms(s, Offset::AssumeUtc).map_err(|e| SeriesError::Line {
                            line: 0,
                            message: format!("{name}: {e}"),
                        })
                    };
                    Ok((t(start)?, t(end)?))
                })
                .collect::<Result<Vec<_>, SeriesError>>()?;
            Ok((name, parsed))
        })
        .collect()
}

/// NAB's scaled sigmoid of a relative position.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// Rows not scored at the start of a series of `len` rows.
pub fn probationary_rows(len: usize) -> usize {
    ((PROBATIONARY_PERCENT * len as f64).floor()).min(PROBATIONARY_PERCENT * 5000.0) as usize
}

/// One scored row: its anomaly score and what a detection there would be worth.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub score: f64,
    /// Window (index into the corpus' windows) the row lies in.
    pub window: Option<usize>,
    /// Unweighted credit: σ inside a window, σ past the previous window (negative) outside.
    pub credit: f64,
}

/// A labelled series and a detector's scores for it, turned into scorable points. Window ids
/// start at `first_window` so several series can share one corpus.
pub fn points(
    timestamps: &[i64],
    scores: &[f64],
    windows: &[(i64, i64)],
    first_window: usize,
) -> Vec<Point> {
    // Window limits as row indices (NAB measures positions in rows, not time).
    let limits: Vec<(usize, usize)> = windows
        .iter()
        .filter_map(|&(start, end)| {
            let left = timestamps.iter().position(|&t| t >= start)?;
            let right = timestamps.iter().rposition(|&t| t <= end)?;
            (left <= right).then_some((left, right))
        })
        .collect();
    let skip = probationary_rows(timestamps.len());
    let mut out = Vec::with_capacity(timestamps.len().saturating_sub(skip));
    for (i, &score) in scores.iter().enumerate().take(timestamps.len()).skip(skip) {
        let inside = limits.iter().position(|&(l, r)| l <= i && i <= r);
        let point = match inside {
            Some(w) => {
                let (l, r) = limits[w];
                let width = (r - l + 1) as f64;
                Point {
                    score,
                    window: Some(first_window + w),
                    credit: scaled_sigmoid(-((r - i + 1) as f64) / width),
                }
            }
            None => {
                let previous = limits.iter().rfind(|&&(_, r)| r < i);
                let credit = match previous {
                    Some(&(l, r)) => {
                        let width = (r - l + 1) as f64;
                        scaled_sigmoid((i - r) as f64 / (width - 1.0).max(1.0))
                    }
                    None => -1.0,
                };
                Point {
                    score,
                    window: None,
                    credit,
                }
            }
        };
        out.push(point);
    }
    out
}

/// Why a labelled corpus could not be loaded; every variant names the file.
#[derive(Debug, Error)]
pub enum CorpusError {
    /// The cause is the error's source, so an error chain prints it once.
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    Parse { path: PathBuf, source: SeriesError },
    #[error("no labelled series found under {}", .0.display())]
    Empty(PathBuf),
}

/// A NAB-layout corpus: every CSV under `root/data/` that `root/labels/combined_windows.json`
/// labels. Labelled files that are absent are skipped (a corpus may ship only some categories).
pub fn load_corpus(root: &Path) -> Result<Vec<LabelledSeries>, CorpusError> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path)
            .map(|text| (text, path.clone()))
            .map_err(|source| CorpusError::Read { path, source })
    };
    let (labels, labels_path) = read(root.join("labels/combined_windows.json"))?;
    let labels = parse_windows_json(&labels).map_err(|source| CorpusError::Parse {
        path: labels_path,
        source,
    })?;
    let mut series = Vec::new();
    for (name, windows) in labels {
        let path = root.join("data").join(&name);
        if !path.exists() {
            continue;
        }
        let (text, path) = read(path)?;
        let (timestamps, values) =
            parse_series_csv(&text).map_err(|source| CorpusError::Parse { path, source })?;
        series.push(LabelledSeries {
            name,
            timestamps,
            values,
            windows,
        });
    }
    if series.is_empty() {
        return Err(CorpusError::Empty(root.to_path_buf()));
    }
    Ok(series)
}

/// One labelled series of a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSeries {
    pub name: String,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// Anomaly windows, UTC ms, inclusive.
    pub windows: Vec<(i64, i64)>,
}

/// Normalised NAB score per profile (in [`PROFILES`] order) of per-series scores, with the
/// threshold chosen per profile over the whole corpus.
pub fn score_corpus(
    corpus: &[LabelledSeries],
    scores: impl Fn(&LabelledSeries) -> Vec<f64>,
) -> [f64; 3] {
    let (mut all, mut windows) = (Vec::new(), 0);
    for series in corpus {
        all.extend(points(
            &series.timestamps,
            &scores(series),
            &series.windows,
            windows,
        ));
        windows += series.windows.len();
    }
    PROFILES.map(|p| sweep(&all, windows, &p).normalized())
}

/// One fold of [`held_out`]: the category scored with settings chosen without it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// The category held out (the first path component of the series' names).
    pub category: String,
    /// How many of the grid's settings the other categories could not tell apart.
    pub tied: usize,
    /// The held-out category's score per profile, averaged over the tied settings.
    pub scores: [f64; 3],
}

/// Settings within this many points (standard profile) of the best on the training categories
/// cannot be told apart by them: the held-out score averages over all of them instead of
/// picking one by noise.
pub const TIE_POINTS: f64 = 1.0;

/// Leave one category out: for each category, the settings in `grid` are scored on the other
/// categories, every setting within [`TIE_POINTS`] of the best is taken as an equally likely
/// choice, and the held-out category is scored with each. This is how well a detector does on
/// series it was not tuned on, which is what a user's series always are.
///
/// `run(setting, series)` scores one series (one score per point). Returns the folds in category
/// order; the mean over folds is the held-out figure.
pub fn held_out<P: Copy>(
    corpus: &[LabelledSeries],
    grid: &[P],
    run: impl Fn(P, &LabelledSeries) -> Vec<f64>,
) -> Vec<Fold> {
    let category = |s: &LabelledSeries| s.name.split('/').next().unwrap_or("").to_string();
    let mut names: Vec<String> = corpus.iter().map(category).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|held| {
            let (test, train): (Vec<LabelledSeries>, Vec<LabelledSeries>) =
                corpus.iter().cloned().partition(|s| category(s) == held);
            let trained: Vec<(P, f64)> = grid
                .iter()
                .map(|&g| (g, score_corpus(&train, |s| run(g, s))[0]))
                .collect();
            let best = trained.iter().map(|t| t.1).fold(f64::MIN, f64::max);
            let chosen: Vec<P> = trained
                .iter()
                .filter(|t| t.1 >= best - TIE_POINTS)
                .map(|t| t.0)
                .collect();
            let mut scores = [0.0; 3];
            for &c in &chosen {
                let s = score_corpus(&test, |series| run(c, series));
                for (total, one) in scores.iter_mut().zip(s) {
                    *total += one / chosen.len() as f64;
                }
            }
            Fold {
                category: held,
                tied: chosen.len(),
                scores,
            }
        })
        .collect()
}

/// The held-out figure of [`held_out`]'s folds: their mean score per profile.
pub fn mean_over_folds(folds: &[Fold]) -> [f64; 3] {
    let mut mean = [0.0; 3];
    for f in folds {
        for (m, s) in mean.iter_mut().zip(f.scores) {
            *m += s / folds.len() as f64;
        }
    }
    mean
}

/// The result of sweeping thresholds for one profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sweep {
    pub threshold: f64,
    pub raw: f64,
    pub null: f64,
    pub perfect: f64,
}

impl Sweep {
    /// NAB's normalised score: 0 for the null detector, 100 for the perfect one.
    pub fn normalized(&self) -> f64 {
        100.0 * (self.raw - self.null) / (self.perfect - self.null)
    }
}

/// The threshold that maximises the profile's total over all points of a corpus with
/// `windows` windows.
pub fn sweep(points: &[Point], windows: usize, profile: &Profile) -> Sweep {
    let null = -profile.fn_weight * windows as f64;
    let perfect = profile.tp_weight * scaled_sigmoid(-1.0) * windows as f64;
    let mut order: Vec<&Point> = points.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut best_credit: Vec<Option<f64>> = vec![None; windows];
    let mut total = null;
    let mut best = Sweep {
        threshold: f64::INFINITY,
        raw: null,
        null,
        perfect,
    };
    let mut i = 0;
    while i < order.len() {
        let threshold = order[i].score;
        // Every point at this score becomes a detection together.
        while i < order.len() && order[i].score == threshold {
            let p = order[i];
            match p.window {
                Some(w) => {
                    // The first detection by time has the highest credit in its window.
                    let credit = profile.tp_weight * p.credit;
                    match best_credit[w] {
                        None => total += profile.fn_weight + credit,
                        Some(previous) if credit > previous => total += credit - previous,
                        Some(_) => {}
                    }
                    best_credit[w] = Some(best_credit[w].map_or(credit, |c| c.max(credit)));
                }
                None => total += profile.fp_weight * p.credit,
            }
            i += 1;
        }
        if total > best.raw {
            best = Sweep {
                threshold,
                raw: total,
                null,
                perfect,
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize) -> (Vec<i64>, Vec<(i64, i64)>) {
        let ts: Vec<i64> = (0..n as i64).map(|i| i * 300_000).collect();
        let windows = vec![(ts[400], ts[440]), (ts[700], ts[760])];
        (ts, windows)
    }

    #[test]
    fn null_is_zero_and_perfect_is_one_hundred() {
        let (ts, windows) = series(1000);
        let null = points(&ts, &vec![0.0; 1000], &windows, 0);
        let mut scores = vec![0.0; 1000];
        scores[400] = 1.0;
        scores[700] = 1.0;
        let perfect = points(&ts, &scores, &windows, 0);
        for profile in &PROFILES {
            assert!(sweep(&null, 2, profile).normalized().abs() < 1e-9);
            assert!((sweep(&perfect, 2, profile).normalized() - 100.0).abs() < 1e-9);
        }
    }

    #[test]
    fn late_detection_earns_less_and_false_positives_cost() {
        let (ts, windows) = series(1000);
        let score_at = |rows: &[usize]| {
            let mut s = vec![0.0; 1000];
            for &r in rows {
                s[r] = 1.0;
            }
            sweep(&points(&ts, &s, &windows, 0), 2, &PROFILES[0]).normalized()
        };
        let early = score_at(&[401, 701]);
        let late = score_at(&[439, 759]);
        let with_fp = score_at(&[401, 701, 200, 900]);
        assert!(early > late && late > 0.0, "{early} {late}");
        assert!(with_fp < early, "{with_fp} {early}");
        assert_eq!(
            score_at(&[200]),
            0.0,
            "a lone false positive: the best threshold is not to fire"
        );
        assert_eq!(score_at(&[100]), 0.0, "probationary rows are not scored");
    }

    #[test]
    fn csv_parsing_accepts_real_world_quirks_and_names_bad_lines() {
        let text = "timestamp,value\r\n2014-01-01 00:00:00,1.5e2\r\n2014-01-01 00:00:00,3\r\n2013-12-31 23:55:00,4\r\n";
        let (ts, vs) = parse_series_csv(text).unwrap();
        assert_eq!(vs, vec![150.0, 3.0, 4.0]);
        assert_eq!(ts[0], ts[1]);
        assert!(ts[2] < ts[1]);
        let err =
            parse_series_csv("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,abc\n")
                .unwrap_err();
        assert_eq!(
            err,
            SeriesError::Line {
                line: 3,
                message: "\"abc\" is not a number".into()
            }
        );
        assert!(matches!(
            parse_series_csv("time,v\n"),
            Err(SeriesError::Header(_))
        ));
    }
}
