-- The 50 most recent anomaly flags, with what each point was compared to.
SELECT scenario, key, metric, detector, direction, window_end,
       ROUND(score, 3) AS score, value, baseline, spread
FROM anomalies
ORDER BY window_end DESC, scenario, key, metric, detector
LIMIT 50
