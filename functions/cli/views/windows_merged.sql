-- windows_merged: one row per window of a key, however many shards wrote a part of it.
-- Producers that spread a key over shards (random partition keys) make each shard write its
-- own partial row; tumbling and hopping rows carry what merges them exactly: counts and sums
-- add, min/max of mins/maxes, avg from Σ count·avg, stddev by Chan et al.'s pairwise formula
-- from count, avg and m2, open/close from the earliest first_time / latest last_time (ties
-- broken by shard_id, then the arrival ordinal), VWAP from Σ weighted_sum / Σ weight_total.
-- A row whose window only one shard saw passes through unchanged (partials = 1).
-- Percentiles and distinct counts cannot be merged from their values: NULL when partials > 1
-- here; `sluice query` merges the rows' quantile_sketch / distinct_sketch instead.
-- Sliding and session windows are per event and per gap, not aligned: their rows are not
-- merged, and are marked partial when the key has rows of that window from several shards.
-- Runs unchanged on Athena (Trino) and DataFusion (`sluice query`).
WITH aligned AS (
  SELECT *,
         ROW_NUMBER() OVER (PARTITION BY scenario, scope, key, window_name, window_start, metric
                            ORDER BY first_time, shard_id, first_ordinal) AS first_rank,
         ROW_NUMBER() OVER (PARTITION BY scenario, scope, key, window_name, window_start, metric
                            ORDER BY last_time DESC, shard_id DESC, last_ordinal DESC) AS last_rank,
         SUM(count * avg) OVER (PARTITION BY scenario, scope, key, window_name, window_start, metric)
           / SUM(count) OVER (PARTITION BY scenario, scope, key, window_name, window_start, metric)
           AS merged_avg
  FROM windows
  WHERE window_kind IN ('tumbling', 'hopping')
),
unaligned AS (
  SELECT *,
         MIN(shard_id) OVER (PARTITION BY scenario, scope, key, window_name) AS min_shard,
         MAX(shard_id) OVER (PARTITION BY scenario, scope, key, window_name) AS max_shard
  FROM windows
  WHERE window_kind NOT IN ('tumbling', 'hopping')
)
SELECT key, window_name, window_kind, window_start, window_end, metric,
       SUM(count) AS count,
       SUM(sum) AS sum,
       MIN(min) AS min,
       MAX(max) AS max,
       CASE WHEN COUNT(*) = 1 THEN MAX(avg) ELSE MAX(merged_avg) END AS avg,
       CASE WHEN COUNT(*) = 1 THEN MAX(stddev)
            WHEN SUM(count) >= 2
            THEN SQRT((SUM(m2) + SUM(count * (avg - merged_avg) * (avg - merged_avg)))
                      / (SUM(count) - 1))
       END AS stddev,
       MAX(CASE WHEN first_rank = 1 THEN first END) AS first,
       MAX(CASE WHEN last_rank = 1 THEN last END) AS last,
       CASE WHEN COUNT(*) = 1 THEN MAX(weighted_avg)
            ELSE SUM(weighted_sum) / SUM(weight_total)
       END AS weighted_avg,
       scope,
       COUNT(*) AS partials,
       FALSE AS partial,
       CASE WHEN COUNT(*) = 1 THEN MAX(p50) END AS p50,
       CASE WHEN COUNT(*) = 1 THEN MAX(p90) END AS p90,
       CASE WHEN COUNT(*) = 1 THEN MAX(p95) END AS p95,
       CASE WHEN COUNT(*) = 1 THEN MAX(p99) END AS p99,
       CASE WHEN COUNT(*) = 1 THEN MAX(distinct_count) END AS distinct_count,
       scenario, dt, hour
FROM aligned
GROUP BY scenario, dt, hour, scope, key, window_name, window_kind, window_start, window_end, metric
UNION ALL
SELECT key, window_name, window_kind, window_start, window_end, metric,
       count, sum, min, max, avg, stddev, first, last, weighted_avg, scope,
       CAST(1 AS BIGINT) AS partials,
       min_shard <> max_shard AS partial,
       p50, p90, p95, p99, distinct_count,
       scenario, dt, hour
FROM unaligned
