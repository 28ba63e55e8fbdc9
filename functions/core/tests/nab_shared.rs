//! NAB scoring on the two NAB categories shipped in `../shared/nab` (beside the repository), and
//! the no-look-ahead property of every detector.

use std::path::PathBuf;

use sluice_core::detect::calibrated::{Calibrated, Params};
use sluice_core::detect::{SeriesDetector, score_series};
use sluice_core::nab::{
    LabelledSeries, PROFILES, held_out, load_corpus, mean_over_folds, score_corpus,
};

/// Every shipped series.
fn corpus() -> Vec<LabelledSeries> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/nab");
    let out = load_corpus(&root)
        .unwrap_or_else(|e| panic!("NAB data expected at {}: {e:?}", root.display()));
    assert_eq!(out.len(), 23, "both shipped categories");
    out
}

#[test]
fn null_detector_scores_zero_and_perfect_detector_one_hundred() {
    let corpus = corpus();
    let null = score_corpus(&corpus, |s| vec![0.0; s.values.len()]);
    let perfect = score_corpus(&corpus, |s| {
        let mut scores = vec![0.0; s.values.len()];
        for &(start, _) in &s.windows {
            if let Some(i) = s.timestamps.iter().position(|&t| t >= start) {
                scores[i] = 1.0;
            }
        }
        scores
    });
    for (i, p) in PROFILES.iter().enumerate() {
        assert!(null[i].abs() < 1e-9, "{}: null {}", p.name, null[i]);
        assert!(
            (perfect[i] - 100.0).abs() < 1e-9,
            "{}: perfect {}",
            p.name,
            perfect[i]
        );
    }
}

#[test]
fn no_detector_looks_ahead() {
    let series = &corpus()[0];
    let (timestamps, values) = (&series.timestamps[..3000], &series.values[..3000]);
    let n = 1500;
    for detector in SeriesDetector::ALL {
        let original = score_series(detector, timestamps, values);
        let mut changed: Vec<f64> = values.to_vec();
        for x in &mut changed[n..] {
            *x = *x * 10.0 + 1e6;
        }
        let after = score_series(detector, timestamps, &changed);
        for i in 0..n {
            assert_eq!(
                original[i].0.score.to_bits(),
                after[i].0.score.to_bits(),
                "{} point {i} changed when later points changed",
                detector.name()
            );
        }
        assert_ne!(
            original[n].0.score,
            after[n].0.score,
            "{}: the changed point itself must matter",
            detector.name()
        );
    }
}

#[test]
fn default_detector_beats_the_windowed_gaussian_on_every_profile() {
    let corpus = corpus();
    let score = |d: SeriesDetector| {
        score_corpus(&corpus, |s| {
            score_series(d, &s.timestamps, &s.values)
                .into_iter()
                .map(|(v, _)| v.score)
                .collect()
        })
    };
    let default = score(SeriesDetector::parse("default").unwrap());
    let baseline = score(SeriesDetector::WindowedGaussian);
    for (i, p) in PROFILES.iter().enumerate() {
        assert!(
            default[i] > baseline[i],
            "{}: default {:.1} vs windowed Gaussian {:.1}",
            p.name,
            default[i],
            baseline[i]
        );
    }
}

/// The default detector with `p`, one score per point.
fn calibrated(p: Params, s: &LabelledSeries) -> Vec<f64> {
    Calibrated::scores(p, &s.timestamps, &s.values)
}

/// Held-out scores (leave one category out, `nab::held_out` over the sensitivity grid) of the
/// default detector before it found cycles (commit 35d5ff3, the same protocol), per profile: a
/// change may trade in-sample points, not these. Compared to 0.05 points, below what NAB's
/// scores resolve.
const HELD_OUT_BEFORE: [f64; 3] = [64.80, 62.15, 67.56];

#[test]
fn held_out_scores_do_not_fall_below_the_detector_before_cycles() {
    let corpus = corpus();
    let folds = held_out(&corpus, &Params::default().sensitivity_grid(), calibrated);
    assert_eq!(folds.len(), 2, "both categories held out in turn");
    let mean = mean_over_folds(&folds);
    for (i, p) in PROFILES.iter().enumerate() {
        assert!(
            mean[i] >= HELD_OUT_BEFORE[i] - 0.05,
            "{}: held-out {:.1} < {:.1} ({folds:?})",
            p.name,
            mean[i],
            HELD_OUT_BEFORE[i]
        );
    }
}

#[test]
fn in_sample_score_stays_above_fifty_five() {
    let corpus = corpus();
    let s = score_corpus(&corpus, |series| calibrated(Params::default(), series));
    assert!(s[0] >= 55.0, "standard profile {:.1}", s[0]);
}
