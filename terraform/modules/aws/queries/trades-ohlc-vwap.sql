-- 1-minute candles (open, high, low, close) and VWAP per symbol.
SELECT key AS symbol,
       window_start,
       window_end,
       first AS open,
       max AS high,
       min AS low,
       last AS close,
       weighted_avg AS vwap,
       count AS trades
FROM windows
WHERE scenario = 'trades' AND window_name = 'tumbling_1m' AND metric = 'price'
ORDER BY symbol, window_end
