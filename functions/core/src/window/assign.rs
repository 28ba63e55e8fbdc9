//! Pure window arithmetic. Windows are aligned to the Unix epoch and are half-open
//! `[start, end)`, as in Flink, Spark, Arroyo and SQL `date_trunc`/`time_bucket`.

/// Start of the epoch-aligned bin of width `width_ms` containing `t_ms`.
pub fn bin_start(t_ms: i64, width_ms: i64) -> i64 {
    t_ms.div_euclid(width_ms) * width_ms
}

/// Starts of every hopping window `[s, s + size)` with `s` a multiple of `hop` that contains
/// `t`, oldest first. Tumbling windows are the case `hop == size` (exactly one window).
pub fn hopping_starts(t_ms: i64, size_ms: i64, hop_ms: i64) -> impl Iterator<Item = i64> {
    let newest = bin_start(t_ms, hop_ms);
    // The oldest window still containing t starts after t - size.
    let oldest = bin_start(t_ms - size_ms, hop_ms) + hop_ms;
    (0..)
        .map(move |i| oldest + i * hop_ms)
        .take_while(move |s| *s <= newest)
}

/// Whether an event at `t` extends a session spanning `[first, last]` with inactivity `gap`:
/// it must fall strictly within `gap` of the session's events.
pub fn joins_session(t_ms: i64, first_ms: i64, last_ms: i64, gap_ms: i64) -> bool {
    t_ms > first_ms - gap_ms && t_ms < last_ms + gap_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn negative_times_round_down() {
        assert_eq!(bin_start(-1, 1000), -1000);
        assert_eq!(bin_start(999, 1000), 0);
        assert_eq!(bin_start(1000, 1000), 1000);
    }

    proptest! {
        #[test]
        fn hopping_windows_are_exactly_those_containing_t(
            t in -10_000_000i64..10_000_000,
            hop in 1i64..5_000,
            factor in 1i64..8,
        ) {
            let size = hop * factor;
            let starts: Vec<i64> = hopping_starts(t, size, hop).collect();
            // Every window contains t, is aligned, and there are exactly size/hop of them.
            prop_assert_eq!(starts.len() as i64, factor);
            for s in &starts {
                prop_assert!(*s <= t && t < s + size);
                prop_assert_eq!(s.rem_euclid(hop), 0);
            }
            // Neighbouring aligned windows do not contain t.
            let before = starts[0] - hop;
            let after = starts[starts.len() - 1] + hop;
            prop_assert!(!(before <= t && t < before + size));
            prop_assert!(!(after <= t && t < after + size));
        }

        #[test]
        fn tumbling_is_hopping_with_hop_equal_size(t in -10_000_000i64..10_000_000, size in 1i64..100_000) {
            let starts: Vec<i64> = hopping_starts(t, size, size).collect();
            prop_assert_eq!(starts, vec![bin_start(t, size)]);
        }
    }
}
