//! Mergeable running aggregates for one metric in one window (or pane, or session).

use serde::{Deserialize, Serialize};

use super::metrics::Sample;
use super::sketch::{Distinct, Quantiles};

/// Count, sum, extremes, Welford mean/variance, first/last by event time and a weighted sum.
///
/// `first`/`last` are ordered by (event time, arrival ordinal): among events with the same
/// event time the one that arrived first is `first` and the one that arrived last is `last`,
/// so results do not depend on how a stream was split into batches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    count: u64,
    sum: f64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    first: (i64, u64, f64),
    last: (i64, u64, f64),
    weighted_sum: f64,
    weight: f64,
    /// Only for metrics that declare percentiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quantiles: Option<Box<Quantiles>>,
    /// Only for metrics that declare a distinct count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distinct: Option<Box<Distinct>>,
}

/// The aggregates of a closed window, as written to the lake.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregates {
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    /// Sample standard deviation (as SQL `stddev_samp`); absent below two values.
    pub stddev: Option<f64>,
    pub first: f64,
    pub last: f64,
    /// Σ value·weight / Σ weight (VWAP for prices weighted by quantity); absent for
    /// unweighted metrics.
    pub weighted_avg: Option<f64>,
    /// p50, p90, p95, p99 from the quantile sketch, for metrics that declare percentiles.
    pub percentiles: Option<[f64; 4]>,
    /// Distinct values, for metrics that declare it.
    pub distinct: Option<u64>,
    /// What merges rows of one window from several shards exactly (see `windows_merged`):
    /// Σ (x − mean)² (Chan, Golub and LeVeque's M2), the event time and shard-local arrival
    /// ordinal of the first and last values, and Σ value·weight and Σ weight.
    pub m2: f64,
    pub first_time_ms: i64,
    pub first_ordinal: u64,
    pub last_time_ms: i64,
    pub last_ordinal: u64,
    pub weighted_sum: f64,
    pub weight: f64,
    /// The quantile sketch and the distinct-count sketch themselves (their JSON, as in the
    /// state), for merging a window's rows from several shards; absent unless declared.
    pub quantile_sketch: Option<Vec<u8>>,
    pub distinct_sketch: Option<Vec<u8>>,
}

impl Accumulator {
    /// Adds one event's sample, feeding the sketches its metric declared.
    pub fn add_sample(&mut self, t_ms: i64, ordinal: u64, sample: &Sample) {
        self.add(t_ms, ordinal, sample.value, sample.weight);
        if sample.wants_quantiles() {
            self.quantiles
                .get_or_insert_with(Box::default)
                .add(sample.value);
        }
        if sample.wants_distinct() {
            self.distinct
                .get_or_insert_with(Box::default)
                .add_hash(sample.hash);
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn add(&mut self, t_ms: i64, ordinal: u64, value: f64, weight: f64) {
        if self.count == 0 {
            *self = Accumulator {
                count: 1,
                sum: value,
                mean: value,
                m2: 0.0,
                min: value,
                max: value,
                first: (t_ms, ordinal, value),
                last: (t_ms, ordinal, value),
                weighted_sum: value * weight,
                weight,
                quantiles: self.quantiles.take(),
                distinct: self.distinct.take(),
            };
            return;
        }
        self.count += 1;
        self.sum += value;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if (t_ms, ordinal) < (self.first.0, self.first.1) {
            self.first = (t_ms, ordinal, value);
        }
        if (t_ms, ordinal) >= (self.last.0, self.last.1) {
            self.last = (t_ms, ordinal, value);
        }
        self.weighted_sum += value * weight;
        self.weight += weight;
    }

    /// Folds `other` in (Chan et al.'s parallel variance update).
    pub fn merge(&mut self, other: &Accumulator) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        if let Some(q) = &other.quantiles {
            self.quantiles.get_or_insert_with(Box::default).merge(q);
        }
        if let Some(d) = &other.distinct {
            self.distinct.get_or_insert_with(Box::default).merge(d);
        }
        let n = (self.count + other.count) as f64;
        let delta = other.mean - self.mean;
        self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / n;
        self.mean += delta * other.count as f64 / n;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if (other.first.0, other.first.1) < (self.first.0, self.first.1) {
            self.first = other.first;
        }
        if (other.last.0, other.last.1) >= (self.last.0, self.last.1) {
            self.last = other.last;
        }
        self.weighted_sum += other.weighted_sum;
        self.weight += other.weight;
    }

    pub fn finish(&self, weighted: bool) -> Aggregates {
        let n = self.count as f64;
        Aggregates {
            count: self.count as i64,
            sum: self.sum,
            min: self.min,
            max: self.max,
            avg: self.sum / n,
            stddev: (self.count >= 2).then(|| (self.m2.max(0.0) / (n - 1.0)).sqrt()),
            first: self.first.2,
            last: self.last.2,
            weighted_avg: (weighted && self.weight > 0.0).then(|| self.weighted_sum / self.weight),
            percentiles: self.quantiles.as_ref().and_then(|q| {
                Some([
                    q.quantile(0.5)?,
                    q.quantile(0.9)?,
                    q.quantile(0.95)?,
                    q.quantile(0.99)?,
                ])
            }),
            distinct: self.distinct.as_ref().map(|d| d.estimate()),
            m2: self.m2.max(0.0),
            first_time_ms: self.first.0,
            first_ordinal: self.first.1,
            last_time_ms: self.last.0,
            last_ordinal: self.last.1,
            weighted_sum: self.weighted_sum,
            weight: self.weight,
            quantile_sketch: self
                .quantiles
                .as_ref()
                .and_then(|q| serde_json::to_vec(q).ok()),
            distinct_sketch: self
                .distinct
                .as_ref()
                .and_then(|d| serde_json::to_vec(d).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    proptest! {
        #[test]
        fn merge_equals_one_pass(values in prop::collection::vec((0i64..100, 1.0f64..1000.0, 1.0f64..10.0), 1..60), split in 0usize..60) {
            let split = split.min(values.len());
            let mut whole = Accumulator::default();
            let (mut a, mut b) = (Accumulator::default(), Accumulator::default());
            for (i, (t, v, w)) in values.iter().enumerate() {
                whole.add(*t, i as u64, *v, *w);
                if i < split { a.add(*t, i as u64, *v, *w) } else { b.add(*t, i as u64, *v, *w) }
            }
            a.merge(&b);
            let (x, y) = (whole.finish(true), a.finish(true));
            prop_assert_eq!(x.count, y.count);
            prop_assert_eq!((x.min, x.max, x.first, x.last), (y.min, y.max, y.first, y.last));
            prop_assert!(close(x.sum, y.sum) && close(x.avg, y.avg));
            prop_assert!(close(x.weighted_avg.unwrap(), y.weighted_avg.unwrap()));
            match (x.stddev, y.stddev) {
                (Some(p), Some(q)) => prop_assert!((p - q).abs() <= 1e-9 * x.avg.abs().max(1.0)),
                (p, q) => prop_assert_eq!(p, q),
            }
        }
    }

    #[test]
    fn first_and_last_follow_event_time_then_arrival() {
        let mut acc = Accumulator::default();
        acc.add(10, 0, 1.0, 1.0);
        acc.add(5, 1, 2.0, 1.0);
        acc.add(10, 2, 3.0, 1.0);
        acc.add(5, 3, 4.0, 1.0);
        let a = acc.finish(false);
        assert_eq!((a.first, a.last), (2.0, 3.0));
        assert_eq!(a.weighted_avg, None);
        assert!((a.stddev.unwrap() - 1.2909944487358056).abs() < 1e-12);
    }
}
