-- 1-minute candles (open, high, low, close) and VWAP per symbol: one candle per minute even
-- when a symbol's trades were spread over shards (windows_merged).
SELECT key AS symbol,
       window_start,
       window_end,
       first AS open,
       max AS high,
       min AS low,
       last AS close,
       weighted_avg AS vwap,
       count AS trades
FROM windows_merged
WHERE scenario = 'trades' AND window_name = 'tumbling_1m' AND metric = 'price'
ORDER BY symbol, window_end
