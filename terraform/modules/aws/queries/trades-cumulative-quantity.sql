-- Cumulative quantity traded per symbol, minute by minute.
SELECT symbol,
       minute,
       quantity,
       SUM(quantity) OVER (PARTITION BY symbol ORDER BY minute
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative_quantity
FROM (
    SELECT symbol, date_trunc('minute', event_time) AS minute, SUM(quantity) AS quantity
    FROM trades
    GROUP BY symbol, date_trunc('minute', event_time)
) per_minute
ORDER BY symbol, minute
