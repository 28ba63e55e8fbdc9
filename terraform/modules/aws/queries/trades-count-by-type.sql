-- Transaction count by trade type and side.
SELECT trade_type, side, COUNT(*) AS trades
FROM trades
GROUP BY trade_type, side
ORDER BY trade_type, side
