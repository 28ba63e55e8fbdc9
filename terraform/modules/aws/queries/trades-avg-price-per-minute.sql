-- Average price per symbol per minute.
SELECT symbol,
       date_trunc('minute', event_time) AS minute,
       AVG(price) AS avg_price,
       COUNT(*) AS trades
FROM trades
GROUP BY symbol, date_trunc('minute', event_time)
ORDER BY minute, symbol
