output "athena_data_source_uid" {
  description = "uid of the Athena data source."
  value       = grafana_data_source.athena.uid
}

output "dashboard_urls" {
  description = "URL per imported dashboard."
  value = merge(
    { athena = grafana_dashboard.athena.url },
    { for d in grafana_dashboard.adx : "adx" => d.url },
  )
}
