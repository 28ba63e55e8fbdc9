-- The view -> click -> cart -> purchase funnel: events and distinct shoppers per step.
SELECT action,
       COUNT(*) AS events,
       COUNT(DISTINCT user_id) AS shoppers,
       SUM(amount) AS amount
FROM clickstream
GROUP BY action
ORDER BY CASE action WHEN 'view' THEN 1 WHEN 'click' THEN 2 WHEN 'cart' THEN 3 ELSE 4 END
