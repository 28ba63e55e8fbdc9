terraform {
  required_version = ">= 1.5.0"

  required_providers {
    grafana = {
      source = "grafana/grafana"
      # grafana_data_source.json_data_encoded and grafana_dashboard.config_json as used here
      # exist throughout 3.x.
      version = ">= 3.0, < 4.0"
    }
  }
}
