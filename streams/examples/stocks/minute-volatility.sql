-- Athena: the 1-minute mean, volatility and VWAP of each symbol's close, with the day's raw
-- quote count beside it (the raw table is `stocks`, its columns lower-cased).
SELECT w.key AS symbol,
       w.window_end,
       w.avg AS mean_close,
       w.stddev AS volatility,
       w.weighted_avg AS vwap,
       q.quotes
FROM windows w
JOIN (
    SELECT index AS symbol, dt, count(*) AS quotes
    FROM stocks
    GROUP BY index, dt
) q ON q.symbol = w.key AND q.dt = w.dt
WHERE w.scenario = 'stocks'
  AND w.window_name = 'tumbling_1m'
  AND w.metric = 'Close'
  AND w.scope = 'key'
ORDER BY w.window_end, symbol
