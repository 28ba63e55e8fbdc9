//! The aggregate function's pure core: window engine plus detectors, with one snapshot.

use serde::{Deserialize, Serialize};

use crate::detect::{Anomaly, DetectConfig, DetectorBank, DetectorState};
use crate::event::Event;
use crate::window::{ClosedWindow, EngineConfig, Placement, WindowEngine, WindowState};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateConfig {
    pub engine: EngineConfig,
    pub detect: DetectConfig,
}

impl Default for AggregateConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default_windows(),
            detect: DetectConfig::default_series(),
        }
    }
}

impl AggregateConfig {
    /// Checks the combination: valid window specs, and the detection window is computed for
    /// every scenario whose series it feeds.
    pub fn validate(&self) -> Result<(), String> {
        for def in &self.engine.windows {
            def.spec
                .validate()
                .map_err(|why| format!("window {}: {why}", def.spec.name()))?;
        }
        if self.engine.allowed_lateness_ms < 0 {
            return Err("allowed lateness must not be negative".into());
        }
        for series in &self.detect.series {
            let computed =
                self.engine.windows.iter().any(|d| {
                    d.spec == self.detect.window && d.scenarios.contains(&series.scenario)
                });
            if !computed {
                return Err(format!(
                    "detection window {} is not computed for {}",
                    self.detect.window.name(),
                    series.scenario
                ));
            }
        }
        Ok(())
    }
}

/// Everything the aggregate function carries from one invocation to the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AggregatorState {
    pub windows: WindowState,
    pub detectors: DetectorState,
}

/// What closed during one call.
#[derive(Debug, Default)]
pub struct Output {
    pub windows: Vec<ClosedWindow>,
    pub anomalies: Vec<Anomaly>,
}

pub struct Aggregator {
    engine: WindowEngine,
    detectors: DetectorBank,
    window_names: Vec<String>,
    window_kinds: Vec<&'static str>,
}

impl Aggregator {
    pub fn new(config: AggregateConfig) -> Self {
        Self::restore(config, AggregatorState::default())
    }

    pub fn restore(config: AggregateConfig, state: AggregatorState) -> Self {
        let specs: Vec<_> = config.engine.windows.iter().map(|d| d.spec).collect();
        let window_names = specs.iter().map(|s| s.name()).collect();
        let window_kinds = specs.iter().map(|s| s.kind()).collect();
        Self {
            detectors: DetectorBank::restore(config.detect, &specs, state.detectors),
            engine: WindowEngine::restore(config.engine, state.windows),
            window_names,
            window_kinds,
        }
    }

    pub fn snapshot(&self) -> AggregatorState {
        AggregatorState {
            windows: self.engine.snapshot(),
            detectors: self.detectors.snapshot(),
        }
    }

    pub fn push(&mut self, event: &Event) -> Placement {
        self.engine.push(event)
    }

    /// Closes what the watermark has passed and runs the detectors on it.
    pub fn advance(&mut self, out: &mut Output) {
        let from = out.windows.len();
        self.engine.advance(&mut out.windows);
        self.detectors
            .observe(&out.windows[from..], &mut out.anomalies);
    }

    /// End of data: closes every open window.
    pub fn flush(&mut self, out: &mut Output) {
        let from = out.windows.len();
        self.engine.flush(&mut out.windows);
        self.detectors
            .observe(&out.windows[from..], &mut out.anomalies);
    }

    pub fn watermark_ms(&self, scenario: crate::event::Scenario) -> Option<i64> {
        self.engine.watermark_ms(scenario)
    }

    /// `window` column values, indexed like the engine's window definitions.
    pub fn window_names(&self) -> &[String] {
        &self.window_names
    }

    pub fn window_kinds(&self) -> &[&'static str] {
        &self.window_kinds
    }

    pub fn detection_window_name(&self) -> String {
        self.detectors_window().name()
    }

    fn detectors_window(&self) -> crate::window::WindowSpec {
        self.detectors.window()
    }
}
