//! System telemetry: hosts sampled in turn, CPU following a daily load curve (peak at 14:00
//! UTC) plus AR(1) noise, memory drifting slowly, errors as a Poisson count that grows with
//! load, latency log-normal around a load-dependent median.

use serde::{Deserialize, Serialize};

use super::{AnomalyKind, PlantedAnomaly, ScenarioModel};
use crate::event::{Event, Payload, Scenario, Telemetry};
use crate::rng::Rng;
use crate::time::MS_PER_DAY;

const HOSTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HostState {
    host: String,
    base_cpu: f64,
    noise: f64,
    mem: f64,
    cpu_spike_until_ms: i64,
    cpu_spike_level: f64,
    storm_until_ms: i64,
    storm_errors: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryModel {
    hosts: Vec<HostState>,
    next_host: usize,
}

impl TelemetryModel {
    pub fn new(_seed: u64, rng: &mut Rng) -> Self {
        let hosts = (1..=HOSTS)
            .map(|i| HostState {
                host: format!("host-{i:02}"),
                base_cpu: rng.range(20.0, 45.0),
                noise: 0.0,
                mem: rng.range(40.0, 70.0),
                cpu_spike_until_ms: i64::MIN,
                cpu_spike_level: 0.0,
                storm_until_ms: i64::MIN,
                storm_errors: 0.0,
            })
            .collect();
        Self {
            hosts,
            next_host: 0,
        }
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl ScenarioModel for TelemetryModel {
    fn next_event(&mut self, t: i64, event_id: String, rng: &mut Rng) -> Event {
        let h = &mut self.hosts[self.next_host];
        self.next_host = (self.next_host + 1) % HOSTS;
        let day_fraction = t.rem_euclid(MS_PER_DAY) as f64 / MS_PER_DAY as f64;
        let daily = 15.0 * (std::f64::consts::TAU * (day_fraction - 14.0 / 24.0)).cos();
        h.noise = 0.9 * h.noise + 2.0 * rng.normal();
        let mut cpu = (h.base_cpu + daily + h.noise).clamp(0.5, 99.0);
        if t < h.cpu_spike_until_ms {
            cpu = (h.cpu_spike_level + rng.normal()).clamp(85.0, 100.0);
        }
        h.mem = (h.mem + 0.2 * rng.normal() + 0.001 * (60.0 - h.mem)).clamp(5.0, 98.0);
        let storm = t < h.storm_until_ms;
        let errors = if storm {
            rng.poisson(h.storm_errors)
        } else {
            rng.poisson(0.02 + 0.001 * cpu)
        };
        let mut latency = rng.log_normal(30.0 + 0.6 * cpu, 0.25);
        if storm {
            latency *= 3.0;
        }
        Event {
            event_id,
            event_time_ms: t,
            key: h.host.clone(),
            payload: Payload::Telemetry(Telemetry {
                cpu_pct: round1(cpu),
                mem_pct: round1(h.mem),
                error_count: errors as i64,
                latency_ms: round1(latency),
            }),
        }
    }

    fn plant(&mut self, kind: AnomalyKind, t: i64, _rate: f64, rng: &mut Rng) -> PlantedAnomaly {
        let h = &mut self.hosts[rng.below(HOSTS)];
        let (magnitude, duration_ms) = match kind {
            AnomalyKind::CpuSpike => {
                h.cpu_spike_level = rng.range(92.0, 99.0);
                let d = rng.range(60_000.0, 180_000.0) as i64;
                h.cpu_spike_until_ms = t + d;
                (h.cpu_spike_level, d)
            }
            _ => {
                h.storm_errors = rng.range(8.0, 20.0);
                let d = rng.range(60_000.0, 120_000.0) as i64;
                h.storm_until_ms = t + d;
                (h.storm_errors, d)
            }
        };
        PlantedAnomaly {
            scenario: Scenario::Telemetry,
            key: h.host.clone(),
            kind,
            start_ms: t,
            end_ms: t + duration_ms,
            magnitude,
        }
    }
}
