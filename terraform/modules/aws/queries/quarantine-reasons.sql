-- Why records were quarantined, with an example reason per code.
SELECT scenario, reason_code, COUNT(*) AS records, MIN(reason) AS example_reason
FROM quarantine
GROUP BY scenario, reason_code
ORDER BY records DESC
