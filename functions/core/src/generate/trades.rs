//! Stock trades: per-symbol geometric Brownian motion with Poisson jumps and Markov-switching
//! volatility regimes (calm, volatile, crisis).
//!
//! Volatility is deliberately extreme (about 1% per minute when calm, 5% in a crisis) so that a
//! few minutes of data show the behaviour a trading desk alerts on. Planted shocks sit on top of
//! the latent price and revert when they end, as a flash crash does.

use serde::{Deserialize, Serialize};

use super::{AnomalyKind, PlantedAnomaly, ScenarioModel};
use crate::event::{Event, Payload, Scenario, Side, Trade, TradeType};
use crate::rng::Rng;
use crate::time::MS_PER_MINUTE;

/// (symbol, reference price, annualised volatility)
const SYMBOLS: [(&str, f64, f64); 6] = [
    ("AAPL", 190.0, 0.25),
    ("MSFT", 420.0, 0.22),
    ("GOOGL", 170.0, 0.28),
    ("TSLA", 250.0, 0.60),
    ("AMZN", 185.0, 0.30),
    ("NVDA", 120.0, 0.50),
];
/// Trading seconds in a year, to turn annual volatility into volatility per √second.
const SECONDS_PER_TRADING_YEAR: f64 = 252.0 * 6.5 * 3600.0;
/// How much wilder than a real market the synthetic one is.
const EXTREME: f64 = 10.0;
/// (volatility multiplier, probability of entering) for calm, volatile, crisis.
const REGIMES: [(f64, f64); 3] = [(1.0, 0.6), (2.5, 0.3), (5.0, 0.1)];
const MEAN_REGIME_MS: f64 = 8.0 * MS_PER_MINUTE as f64;
/// Natural jumps: mean one per 10 minutes per symbol, 1.5% typical size.
const JUMPS_PER_SECOND: f64 = 1.0 / 600.0;
const JUMP_SIZE: f64 = 0.015;
/// Pull of the log price back to its reference: half-life of about 1.4 hours.
const REVERSION_PER_SECOND: f64 = 1.0 / 7200.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SymbolState {
    symbol: String,
    reference: f64,
    log_price: f64,
    sigma_per_sqrt_s: f64,
    regime: usize,
    regime_until_ms: i64,
    last_ms: i64,
    shock: f64,
    shock_until_ms: i64,
    volume_mult: f64,
    volume_until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradesModel {
    symbols: Vec<SymbolState>,
}

impl TradesModel {
    pub fn new(_seed: u64, rng: &mut Rng) -> Self {
        let symbols = SYMBOLS
            .iter()
            .map(|&(symbol, reference, vol)| SymbolState {
                symbol: symbol.to_string(),
                reference,
                log_price: (reference * rng.range(0.97, 1.03)).ln(),
                sigma_per_sqrt_s: vol / SECONDS_PER_TRADING_YEAR.sqrt() * EXTREME,
                regime: 0,
                regime_until_ms: i64::MIN,
                last_ms: i64::MIN,
                shock: 1.0,
                shock_until_ms: i64::MIN,
                volume_mult: 1.0,
                volume_until_ms: i64::MIN,
            })
            .collect();
        Self { symbols }
    }
}

fn pick_regime(rng: &mut Rng) -> usize {
    let u = rng.uniform();
    let mut acc = 0.0;
    for (i, (_, p)) in REGIMES.iter().enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    0
}

impl ScenarioModel for TradesModel {
    fn next_event(&mut self, t: i64, event_id: String, rng: &mut Rng) -> Event {
        let s = &mut self.symbols[rng.below(SYMBOLS.len())];
        if t >= s.regime_until_ms {
            s.regime = pick_regime(rng);
            s.regime_until_ms = t + rng.exponential(MEAN_REGIME_MS).max(60_000.0) as i64;
        }
        if s.last_ms != i64::MIN && t > s.last_ms {
            let dt = (t - s.last_ms) as f64 / 1000.0;
            let sigma = s.sigma_per_sqrt_s * REGIMES[s.regime].0;
            s.log_price += -0.5 * sigma * sigma * dt + sigma * dt.sqrt() * rng.normal()
                - REVERSION_PER_SECOND * dt * (s.log_price - s.reference.ln());
            if rng.chance(JUMPS_PER_SECOND * dt) {
                s.log_price += JUMP_SIZE * REGIMES[s.regime].0.sqrt() * rng.normal();
            }
        }
        s.last_ms = s.last_ms.max(t);
        let shock = if t < s.shock_until_ms { s.shock } else { 1.0 };
        let price = ((s.log_price.exp() * shock) * 100.0).round().max(1.0) / 100.0;
        let mut quantity = rng.log_normal(100.0, 1.0).round().max(1.0);
        if rng.chance(0.3) {
            quantity = ((quantity / 100.0).round() * 100.0).max(100.0);
        }
        if t < s.volume_until_ms {
            quantity = (quantity * s.volume_mult).round();
        }
        let trade_type = match rng.uniform() {
            u if u < 0.55 => TradeType::Market,
            u if u < 0.95 => TradeType::Limit,
            _ => TradeType::Stop,
        };
        Event {
            event_id,
            event_time_ms: t,
            key: s.symbol.clone(),
            payload: Payload::Trade(Trade {
                side: if rng.chance(0.5) {
                    Side::Buy
                } else {
                    Side::Sell
                },
                price,
                quantity: quantity as i64,
                trade_type,
            }),
        }
    }

    fn plant(&mut self, kind: AnomalyKind, t: i64, _rate: f64, rng: &mut Rng) -> PlantedAnomaly {
        let s = &mut self.symbols[rng.below(SYMBOLS.len())];
        let (magnitude, duration_s) = match kind {
            AnomalyKind::PriceSpike | AnomalyKind::PriceCrash => {
                let m = rng.range(0.08, 0.15);
                s.shock = if kind == AnomalyKind::PriceSpike {
                    1.0 + m
                } else {
                    1.0 - m
                };
                let d = rng.range(20.0, 60.0);
                s.shock_until_ms = t + (d * 1000.0) as i64;
                (m, d)
            }
            _ => {
                let m = rng.range(20.0, 50.0);
                s.volume_mult = m;
                let d = rng.range(30.0, 90.0);
                s.volume_until_ms = t + (d * 1000.0) as i64;
                (m, d)
            }
        };
        PlantedAnomaly {
            scenario: Scenario::Trades,
            key: s.symbol.clone(),
            kind,
            start_ms: t,
            end_ms: t + (duration_s * 1000.0) as i64,
            magnitude,
        }
    }
}
