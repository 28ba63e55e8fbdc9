-- Total quantity traded per symbol.
SELECT symbol, SUM(quantity) AS total_quantity, COUNT(*) AS trades
FROM trades
GROUP BY symbol
ORDER BY total_quantity DESC
