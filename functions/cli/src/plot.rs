//! `sluice detect --plot FILE.svg`: what the detector saw. The series, the detector's baseline
//! with a band of three spreads around it, and the flagged points, drawn with plotters' SVG
//! backend (no font or system library needed: SVG text is laid out by the viewer).

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use sluice_core::detect::{FLAG_SCORE, Verdict};

/// Spreads on each side of the baseline in the band.
pub const BAND_SPREADS: f64 = 3.0;

/// Writes the plot. `timestamps` are epoch milliseconds, one per value and verdict.
pub fn plot_svg(
    path: &Path,
    title: &str,
    timestamps: &[i64],
    values: &[f64],
    verdicts: &[Verdict],
) -> anyhow::Result<()> {
    anyhow::ensure!(!values.is_empty(), "nothing to plot: the series is empty");
    let x = |i: usize| timestamps[i] as f64;
    let band: Vec<(f64, f64, f64)> = verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| v.baseline.is_finite() && v.spread.is_finite())
        .map(|(i, v)| {
            (
                x(i),
                v.baseline - BAND_SPREADS * v.spread,
                v.baseline + BAND_SPREADS * v.spread,
            )
        })
        .collect();
    let ys = values
        .iter()
        .copied()
        .chain(band.iter().flat_map(|&(_, lo, hi)| [lo, hi]))
        .filter(|y| y.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    anyhow::ensure!(lo.is_finite(), "nothing to plot: no finite value");
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let (x0, x1) = (x(0), x(values.len() - 1).max(x(0) + 1.0));

    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))?;
        let time = |v: &f64| {
            chrono::DateTime::from_timestamp_millis(*v as i64)
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&time)
            .y_desc("value")
            .draw()?;
        let mut outline: Vec<(f64, f64)> = band.iter().map(|&(t, _, h)| (t, h)).collect();
        outline.extend(band.iter().rev().map(|&(t, l, _)| (t, l)));
        chart
            .draw_series(std::iter::once(Polygon::new(outline, BLUE.mix(0.15))))?
            .label(format!("baseline ± {BAND_SPREADS}·spread"))
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE.mix(0.15).filled())
            });
        chart
            .draw_series(LineSeries::new(
                verdicts
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.baseline.is_finite())
                    .map(|(i, v)| (x(i), v.baseline)),
                BLUE.mix(0.7),
            ))?
            .label("baseline")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE.mix(0.7)));
        chart
            .draw_series(LineSeries::new(
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| (x(i), *v)),
                BLACK,
            ))?
            .label("value")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
        let flagged: Vec<(f64, f64)> = verdicts
            .iter()
            .enumerate()
            .filter(|(i, v)| v.score >= FLAG_SCORE && values[*i].is_finite())
            .map(|(i, _)| (x(i), values[i]))
            .collect();
        let count = flagged.len();
        chart
            .draw_series(flagged.into_iter().map(|p| Circle::new(p, 5, RED.filled())))?
            .label(format!("flagged (score ≥ {FLAG_SCORE}): {count}"))
            .legend(|(x, y)| Circle::new((x + 8, y), 5, RED.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("drawing {}", path.display()))
}
