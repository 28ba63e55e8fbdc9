-- Each symbol's share of the traded volume, in percent.
SELECT symbol,
       SUM(quantity) AS quantity,
       ROUND(100.0 * CAST(SUM(quantity) AS DOUBLE) / CAST(SUM(SUM(quantity)) OVER () AS DOUBLE), 2) AS share_pct
FROM trades
GROUP BY symbol
ORDER BY share_pct DESC
