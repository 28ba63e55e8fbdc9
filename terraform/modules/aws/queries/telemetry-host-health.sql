-- Per-host CPU, errors and latency per minute.
SELECT host,
       date_trunc('minute', event_time) AS minute,
       ROUND(AVG(cpu_pct), 1) AS avg_cpu,
       MAX(cpu_pct) AS max_cpu,
       SUM(error_count) AS errors,
       ROUND(AVG(latency_ms), 1) AS avg_latency_ms,
       MAX(latency_ms) AS max_latency_ms
FROM telemetry
GROUP BY host, date_trunc('minute', event_time)
ORDER BY minute, host
