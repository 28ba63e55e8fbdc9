//! E-commerce clickstream: interleaved user sessions walking a view → click → cart → purchase
//! funnel with abandonment at every step. Product popularity is skewed (a few best sellers) and
//! each product has a fixed price derived from the seed.

use serde::{Deserialize, Serialize};

use super::{AnomalyKind, PlantedAnomaly, ScenarioModel};
use crate::event::{Action, Click, Event, Payload, Scenario};
use crate::rng::Rng;

const USERS: usize = 2_000;
const PRODUCTS: usize = 400;
const ACTIVE_SESSIONS: usize = 48;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: usize,
    stage: Action,
    product: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fraud {
    user: usize,
    until_ms: i64,
    /// Chance that any one event is the fraudster's purchase.
    share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickstreamModel {
    prices: Vec<f64>,
    sessions: Vec<Session>,
    fraud: Option<Fraud>,
}

impl ClickstreamModel {
    pub fn new(seed: u64, _rng: &mut Rng) -> Self {
        let mut price_rng = Rng::derive(seed, "clickstream-prices");
        let prices = (0..PRODUCTS)
            .map(|_| (price_rng.log_normal(35.0, 0.8).clamp(2.0, 900.0) * 100.0).round() / 100.0)
            .collect();
        Self {
            prices,
            sessions: Vec::with_capacity(ACTIVE_SESSIONS),
            fraud: None,
        }
    }

    /// Skewed popularity: squaring a uniform favours low product numbers.
    fn popular_product(rng: &mut Rng) -> usize {
        let u = rng.uniform();
        ((u * u) * PRODUCTS as f64) as usize
    }

    fn event(&self, t: i64, id: String, user: usize, action: Action, product: usize) -> Event {
        let amount =
            matches!(action, Action::Cart | Action::Purchase).then(|| self.prices[product]);
        Event {
            event_id: id,
            event_time_ms: t,
            key: format!("user-{:04}", user + 1),
            payload: Payload::Click(Click {
                product_id: format!("sku-{:04}", product + 1),
                action,
                amount,
            }),
        }
    }
}

impl ScenarioModel for ClickstreamModel {
    fn next_event(&mut self, t: i64, id: String, rng: &mut Rng) -> Event {
        if let Some(f) = &self.fraud {
            if t >= f.until_ms {
                self.fraud = None;
            } else if rng.chance(f.share) {
                let user = f.user;
                let product = rng.below(PRODUCTS);
                let mut e = self.event(t, id, user, Action::Purchase, product);
                if let Payload::Click(c) = &mut e.payload {
                    c.amount = Some((rng.range(400.0, 2500.0) * 100.0).round() / 100.0);
                }
                return e;
            }
        }
        if self.sessions.len() < ACTIVE_SESSIONS || rng.chance(0.05) {
            let session = Session {
                user: rng.below(USERS),
                stage: Action::View,
                product: Self::popular_product(rng),
            };
            let e = self.event(t, id, session.user, Action::View, session.product);
            if self.sessions.len() < ACTIVE_SESSIONS {
                self.sessions.push(session);
            }
            return e;
        }
        let i = rng.below(self.sessions.len());
        let u = rng.uniform();
        let s = &mut self.sessions[i];
        let next = match s.stage {
            Action::View if u < 0.5 => Some(Action::View),
            Action::View if u < 0.8 => Some(Action::Click),
            Action::Click if u < 0.35 => Some(Action::Cart),
            Action::Click if u < 0.8 => Some(Action::View),
            Action::Cart if u < 0.5 => Some(Action::Purchase),
            Action::Cart if u < 0.75 => Some(Action::View),
            Action::Purchase if u < 0.3 => Some(Action::View),
            _ => None,
        };
        match next {
            Some(action) => {
                if action == Action::View {
                    s.product = Self::popular_product(rng);
                }
                s.stage = action;
                let (user, product) = (s.user, s.product);
                self.event(t, id, user, action, product)
            }
            None => {
                // The session ends; a new visitor takes its slot with a first view.
                let user = rng.below(USERS);
                let product = Self::popular_product(rng);
                self.sessions[i] = Session {
                    user,
                    stage: Action::View,
                    product,
                };
                self.event(t, id, user, Action::View, product)
            }
        }
    }

    fn plant(&mut self, kind: AnomalyKind, t: i64, rate: f64, rng: &mut Rng) -> PlantedAnomaly {
        let user = rng.below(USERS);
        let duration_s = rng.range(30.0, 90.0);
        let purchases = rng.range(10.0, 25.0);
        let share = (purchases / (rate * duration_s).max(1.0)).min(0.5);
        let until_ms = t + (duration_s * 1000.0) as i64;
        self.fraud = Some(Fraud {
            user,
            until_ms,
            share,
        });
        PlantedAnomaly {
            scenario: Scenario::Clickstream,
            key: format!("user-{:04}", user + 1),
            kind,
            start_ms: t,
            end_ms: until_ms,
            magnitude: purchases.round(),
        }
    }
}
