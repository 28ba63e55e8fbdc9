-- 5-minute moving average and volatility (sample stddev) of each symbol's 1-minute close.
SELECT key AS symbol,
       window_end,
       last AS close,
       AVG(last) OVER (PARTITION BY key ORDER BY window_end
                       ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS moving_avg_5m,
       STDDEV_SAMP(last) OVER (PARTITION BY key ORDER BY window_end
                               ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS volatility_5m
FROM windows_merged
WHERE scenario = 'trades' AND window_name = 'tumbling_1m' AND metric = 'price'
ORDER BY symbol, window_end
