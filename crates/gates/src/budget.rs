//! Token and cost budgets per time window, with reservations: reserve on
//! recommendation, commit the actual on the outcome, release what expires.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration as StdDuration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tuneloop_core::duration;
use tuneloop_core::{ArmSet, DecisionId, ParameterSet, TaskOutcome};

use crate::error::{Error, Result, check};
use crate::gate::{Exclusion, Gate, GateContext, Reason};

/// Price of a model, in US dollars per thousand tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per 1,000 prompt tokens.
    pub prompt_per_1k_usd: f64,
    /// Per 1,000 completion tokens.
    pub completion_per_1k_usd: f64,
}

impl Price {
    /// What `prompt` and `completion` tokens cost, in US dollars.
    pub fn cost(&self, prompt: u64, completion: u64) -> f64 {
        prompt as f64 / 1000.0 * self.prompt_per_1k_usd
            + completion as f64 / 1000.0 * self.completion_per_1k_usd
    }
}

/// The window budgets apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Window {
    /// Fixed windows aligned to multiples of `length` since the Unix epoch
    /// (a day: calendar days in UTC). In JSON: `seconds`.
    Calendar {
        /// Length of a window, whole seconds, at least one.
        #[serde(rename = "seconds", with = "tuneloop_core::duration::seconds")]
        length: StdDuration,
    },
    /// The last `length` before now. In JSON: `seconds`.
    Rolling {
        /// Length of the window, at least a second.
        #[serde(rename = "seconds", with = "tuneloop_core::duration::seconds")]
        length: StdDuration,
    },
}

/// Configuration of a [`Budget`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// Hard limit of tokens per window (`None`: unlimited).
    pub token_limit: Option<u64>,
    /// Hard limit of cost per window, in USD (`None`: unlimited).
    pub cost_limit_usd: Option<f64>,
    /// The window (default: calendar days, UTC).
    pub window: Window,
    /// Fraction of a limit at which usage reports the soft limit reached
    /// (default 0.8).
    pub soft_fraction: f64,
    /// Time after which an uncommitted reservation is released (default 10
    /// minutes). In JSON: `reservation_ttl_seconds`.
    #[serde(
        rename = "reservation_ttl_seconds",
        with = "tuneloop_core::duration::seconds"
    )]
    pub reservation_ttl: StdDuration,
    /// Prices per model.
    pub prices: HashMap<String, Price>,
    /// Price of models not in `prices` (`None`: such a model is an error).
    pub default_price: Option<Price>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            token_limit: None,
            cost_limit_usd: None,
            window: Window::Calendar {
                length: StdDuration::from_secs(86_400),
            },
            soft_fraction: 0.8,
            reservation_ttl: StdDuration::from_secs(600),
            prices: HashMap::new(),
            default_price: None,
        }
    }
}

/// Where a budget stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens spent in the window.
    pub spent_tokens: u64,
    /// Cost spent in the window.
    pub spent_cost_usd: f64,
    /// Tokens held by open reservations.
    pub reserved_tokens: u64,
    /// Cost held by open reservations.
    pub reserved_cost_usd: f64,
    /// Tokens left (`None`: unlimited); never negative.
    pub remaining_tokens: Option<u64>,
    /// Cost left (`None`: unlimited); never negative.
    pub remaining_cost_usd: Option<f64>,
    /// Whether spent + reserved passed the soft fraction of a limit.
    pub soft_limit_reached: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Reservation {
    tokens: u64,
    cost: f64,
    expires: DateTime<Utc>,
}

/// The share of a budget a fleet granted this process for one calendar
/// window (see [`Budget::set_allowance`]): how much it may spend and
/// reserve in that window, in all, on top of nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Allowance {
    /// The window it is for; in any other window the allowance is zero.
    pub window_start: DateTime<Utc>,
    /// Tokens granted in the window so far (`None`: no token limit).
    pub tokens: Option<u64>,
    /// Cost granted in the window so far (`None`: no cost limit).
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Default)]
struct State {
    /// Set in fleet mode: the limits become what the fleet granted.
    allowance: Option<Allowance>,
    window_start: Option<DateTime<Utc>>,
    spent_tokens: u64,
    spent_cost: f64,
    /// Rolling windows only: spend events, oldest first.
    events: VecDeque<(DateTime<Utc>, u64, f64)>,
    reservations: HashMap<DecisionId, Reservation>,
    reserved_tokens: u64,
    reserved_cost: f64,
}

/// What a budget has spent in its window, to persist and restore.
/// Reservations are not included: they belong to pending decisions, which
/// do not survive a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSnapshot {
    /// Start of the current calendar window.
    pub window_start: Option<DateTime<Utc>>,
    /// Tokens spent in the window.
    pub spent_tokens: u64,
    /// Cost spent in the window.
    pub spent_cost_usd: f64,
    /// Rolling windows: the spend events still inside the window.
    pub events: Vec<(DateTime<Utc>, u64, f64)>,
}

impl State {
    /// Removes a reservation and what it held; `None` if there is none.
    fn take_reservation(&mut self, id: DecisionId) -> Option<Reservation> {
        let r = self.reservations.remove(&id)?;
        self.reserved_tokens = self.reserved_tokens.saturating_sub(r.tokens);
        self.reserved_cost = (self.reserved_cost - r.cost).max(0.0);
        Some(r)
    }
}

/// A thread-safe token and cost budget.
///
/// The hard limits bound what can be *reserved*: a reservation that would
/// pass a limit is refused, atomically, so concurrent callers never
/// overspend what they reserve. Committing records the actual usage (which
/// happened, so it is never refused); usage beyond its reservation (a
/// prompt longer than estimated) leaves the remainder at 0, never below.
///
/// ```
/// use chrono::Utc;
/// use tuneloop_core::DecisionId;
/// use tuneloop_gates::{Budget, BudgetConfig};
/// let budget = Budget::new(BudgetConfig { token_limit: Some(1_000), ..Default::default() })?;
/// let now = Utc::now();
/// budget.reserve(DecisionId::from_u128(1), 600, 0.0, now)?;
/// assert!(budget.reserve(DecisionId::from_u128(2), 600, 0.0, now).is_err());
/// budget.commit(DecisionId::from_u128(1), 350, 0.0, now)?;
/// assert_eq!(budget.usage(now).remaining_tokens, Some(650));
/// # Ok::<(), tuneloop_gates::Error>(())
/// ```
#[derive(Debug)]
pub struct Budget {
    config: BudgetConfig,
    state: Mutex<State>,
}

fn check_price(p: &Price) -> Result<()> {
    check(
        "prompt_per_1k_usd",
        p.prompt_per_1k_usd,
        p.prompt_per_1k_usd >= 0.0,
        "a finite price >= 0",
    )?;
    check(
        "completion_per_1k_usd",
        p.completion_per_1k_usd,
        p.completion_per_1k_usd >= 0.0,
        "a finite price >= 0",
    )?;
    Ok(())
}

impl Budget {
    /// A budget with nothing spent.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a NaN or negative limit or price, a
    /// window of non-positive length, a soft fraction outside `(0, 1]`.
    pub fn new(config: BudgetConfig) -> Result<Self> {
        if let Some(c) = config.cost_limit_usd {
            check("cost_limit_usd", c, c >= 0.0, "a finite cost limit >= 0")?;
        }
        let (Window::Calendar { length } | Window::Rolling { length }) = config.window;
        check(
            "window.seconds",
            length.as_secs_f64(),
            length >= StdDuration::from_secs(1) && length <= duration::MAX,
            "a window of at least 1 second and at most 100 years",
        )?;
        check(
            "soft_fraction",
            config.soft_fraction,
            config.soft_fraction > 0.0 && config.soft_fraction <= 1.0,
            "in (0, 1]",
        )?;
        check(
            "reservation_ttl_seconds",
            config.reservation_ttl.as_secs_f64(),
            config.reservation_ttl >= StdDuration::from_secs(1)
                && config.reservation_ttl <= duration::MAX,
            "a time to live of at least 1 second and at most 100 years",
        )?;
        for p in config.prices.values().chain(config.default_price.iter()) {
            check_price(p)?;
        }
        Ok(Budget {
            config,
            state: Mutex::new(State::default()),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// What a call with `params` would reserve: `prompt_tokens +
    /// max_tokens` tokens at the model's price.
    ///
    /// # Errors
    /// [`Error::UnknownModel`] when the model has no price and there is no
    /// default (only if a cost limit is set; without one, cost is 0).
    pub fn estimate(&self, params: &ParameterSet, prompt_tokens: u64) -> Result<(u64, f64)> {
        let price = if self.config.cost_limit_usd.is_some() {
            Some(self.price(params.model())?)
        } else {
            None
        };
        Ok(Self::estimate_at(params, prompt_tokens, price))
    }

    /// The cost of `outcome`, priced by this budget's price table for
    /// `model` when it comes without one (the shipped clients report
    /// tokens, not dollars); `None` when it has a cost of its own (the
    /// caller's wins) or the model has no price.
    pub fn price_outcome(&self, model: &str, outcome: &TaskOutcome) -> Option<f64> {
        if outcome.cost_usd > 0.0 || outcome.total_tokens() == 0 {
            return None;
        }
        let price = self.price(model).ok()?;
        Some(price.cost(outcome.prompt_tokens, outcome.completion_tokens))
    }

    /// The price of `model`.
    ///
    /// # Errors
    /// [`Error::UnknownModel`] when it has none and there is no default.
    pub fn price(&self, model: &str) -> Result<Price> {
        self.config
            .prices
            .get(model)
            .or(self.config.default_price.as_ref())
            .copied()
            .ok_or_else(|| Error::UnknownModel(model.to_owned()))
    }

    fn estimate_at(params: &ParameterSet, prompt_tokens: u64, price: Option<Price>) -> (u64, f64) {
        let completion = u64::from(params.max_tokens());
        let tokens = prompt_tokens.saturating_add(completion);
        let cost = price.map_or(0.0, |p| p.cost(prompt_tokens, completion));
        (tokens, cost)
    }

    /// Moves the window to `now` and releases expired reservations. A clock
    /// that goes backwards leaves the window where it is.
    fn roll(&self, st: &mut State, now: DateTime<Utc>) {
        match self.config.window {
            Window::Calendar { length } => {
                // At least 1 and at most 100 years of seconds (checked).
                let seconds = length.as_secs().clamp(1, i64::MAX as u64) as i64;
                let idx = now.timestamp().div_euclid(seconds);
                let start = Utc.timestamp_opt(idx.saturating_mul(seconds), 0).single();
                if let Some(start) = start
                    && st.window_start.is_none_or(|w| start > w)
                {
                    st.window_start = Some(start);
                    st.spent_tokens = 0;
                    st.spent_cost = 0.0;
                }
            }
            Window::Rolling { length } => {
                let horizon = duration::before(now, length).unwrap_or(DateTime::<Utc>::MIN_UTC);
                while let Some(&(t, tokens, cost)) = st.events.front() {
                    if t > horizon {
                        break;
                    }
                    st.events.pop_front();
                    st.spent_tokens = st.spent_tokens.saturating_sub(tokens);
                    st.spent_cost = (st.spent_cost - cost).max(0.0);
                }
            }
        }
        let expired: Vec<DecisionId> = st
            .reservations
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            st.take_reservation(id);
        }
    }

    /// The hard limits in force: the configuration's, or with an
    /// allowance the smaller of them and what the fleet granted for the
    /// current window (nothing for another window).
    fn limits(&self, st: &State) -> (Option<u64>, Option<f64>) {
        let (tokens, cost) = (self.config.token_limit, self.config.cost_limit_usd);
        let Some(a) = &st.allowance else {
            return (tokens, cost);
        };
        let current = Some(a.window_start) == st.window_start;
        (
            tokens.map(|l| {
                if current {
                    a.tokens.map_or(l, |g| g.min(l))
                } else {
                    0
                }
            }),
            cost.map(|l| {
                if current {
                    a.cost_usd.map_or(l, |g| g.min(l))
                } else {
                    0.0
                }
            }),
        )
    }

    fn usage_of(&self, st: &State) -> Usage {
        let (token_limit, cost_limit) = self.limits(st);
        let remaining_tokens = token_limit
            .map(|l| l.saturating_sub(st.spent_tokens.saturating_add(st.reserved_tokens)));
        let remaining_cost_usd =
            cost_limit.map(|l| (l - st.spent_cost - st.reserved_cost).max(0.0));
        let f = self.config.soft_fraction;
        let soft_tokens = token_limit.is_some_and(|l| {
            (st.spent_tokens.saturating_add(st.reserved_tokens)) as f64 >= f * l as f64
        });
        let soft_cost = cost_limit.is_some_and(|l| st.spent_cost + st.reserved_cost >= f * l);
        Usage {
            spent_tokens: st.spent_tokens,
            spent_cost_usd: st.spent_cost,
            reserved_tokens: st.reserved_tokens,
            reserved_cost_usd: st.reserved_cost,
            remaining_tokens,
            remaining_cost_usd,
            soft_limit_reached: soft_tokens || soft_cost,
        }
    }

    /// What has been spent, to persist.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        BudgetSnapshot {
            window_start: st.window_start,
            spent_tokens: st.spent_tokens,
            spent_cost_usd: st.spent_cost,
            events: st.events.iter().copied().collect(),
        }
    }

    /// Restores what a [`snapshot`](Self::snapshot) recorded (open
    /// reservations are kept).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a NaN or negative cost.
    pub fn restore(&self, s: &BudgetSnapshot) -> Result<()> {
        check(
            "spent_cost_usd",
            s.spent_cost_usd,
            s.spent_cost_usd >= 0.0,
            "a finite cost >= 0",
        )?;
        for &(_, _, c) in &s.events {
            check("events.cost", c, c >= 0.0, "a finite cost >= 0")?;
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.window_start = s.window_start;
        st.spent_tokens = s.spent_tokens;
        st.spent_cost = s.spent_cost_usd;
        st.events = s.events.iter().copied().collect();
        Ok(())
    }

    /// Limits this process to what a fleet granted it (fleet mode, see
    /// `tuneloop::fleet`): from now on the hard limits are the smaller of
    /// the configuration's and the allowance's, for the allowance's window
    /// only (in a later window nothing may be reserved until the fleet
    /// grants a share of it). Each call replaces the previous allowance.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a NaN or negative cost, or a budget
    /// over rolling windows (a fleet shares calendar windows only).
    pub fn set_allowance(&self, allowance: Allowance) -> Result<()> {
        if let Some(c) = allowance.cost_usd {
            check("allowance.cost_usd", c, c >= 0.0, "a finite cost >= 0")?;
        }
        if let Window::Rolling { length } = self.config.window {
            check(
                "window",
                length.as_secs_f64(),
                false,
                "calendar windows (a fleet cannot share a rolling window)",
            )?;
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.allowance = Some(allowance);
        Ok(())
    }

    /// The current window's start (calendar windows; `None` for rolling
    /// ones) and where the budget stands at `now`.
    pub fn window_usage(&self, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, Usage) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.roll(&mut st, now);
        (st.window_start, self.usage_of(&st))
    }

    /// Where the budget stands at `now`.
    pub fn usage(&self, now: DateTime<Utc>) -> Usage {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.roll(&mut st, now);
        self.usage_of(&st)
    }

    /// Why `tokens` and `cost` would not fit at `now`, if they would not.
    pub fn shortfall(&self, tokens: u64, cost: f64, now: DateTime<Utc>) -> Option<Reason> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.roll(&mut st, now);
        shortfall_of(&self.usage_of(&st), tokens, cost)
    }

    /// Reserves `tokens` and `cost` for decision `id`, atomically.
    ///
    /// # Errors
    /// [`Error::OverBudget`] when it would pass a hard limit (nothing is
    /// reserved), [`Error::DuplicateReservation`], or
    /// [`Error::InvalidSetting`] for a NaN or negative cost.
    pub fn reserve(
        &self,
        id: DecisionId,
        tokens: u64,
        cost: f64,
        now: DateTime<Utc>,
    ) -> Result<Usage> {
        self.hold(now).reserve(id, tokens, cost)
    }

    /// Holds the budget at `now` for one decision: while the hold lives,
    /// no other caller can reserve, commit or release, so the arms its
    /// [`gate`](BudgetHold::gate) lets through still fit when the chosen
    /// one is [reserved](BudgetHold::reserve). Keep it for the decision
    /// only: every other use of the budget waits for it.
    pub fn hold(&self, now: DateTime<Utc>) -> BudgetHold<'_> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.roll(&mut state, now);
        BudgetHold {
            budget: self,
            state,
            now,
        }
    }

    /// Replaces decision `id`'s reservation by its actual usage.
    ///
    /// # Errors
    /// [`Error::UnknownReservation`] (never made, already committed or
    /// released, or expired), [`Error::InvalidSetting`] for a NaN or
    /// negative cost; on error nothing changes.
    pub fn commit(
        &self,
        id: DecisionId,
        tokens: u64,
        cost: f64,
        now: DateTime<Utc>,
    ) -> Result<Usage> {
        check("cost", cost, cost >= 0.0, "a finite cost >= 0")?;
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.roll(&mut st, now);
        st.take_reservation(id)
            .ok_or(Error::UnknownReservation(id))?;
        st.spent_tokens = st.spent_tokens.saturating_add(tokens);
        st.spent_cost += cost;
        if matches!(self.config.window, Window::Rolling { .. }) {
            st.events.push_back((now, tokens, cost));
        }
        Ok(self.usage_of(&st))
    }

    /// Drops decision `id`'s reservation without spending it.
    ///
    /// # Errors
    /// [`Error::UnknownReservation`].
    pub fn release(&self, id: DecisionId, now: DateTime<Utc>) -> Result<Usage> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.roll(&mut st, now);
        st.take_reservation(id)
            .ok_or(Error::UnknownReservation(id))?;
        Ok(self.usage_of(&st))
    }
}

fn shortfall_of(u: &Usage, tokens: u64, cost: f64) -> Option<Reason> {
    if let Some(left) = u.remaining_tokens
        && tokens > left
    {
        return Some(Reason::OverBudget {
            tokens: true,
            needed: tokens as f64,
            available: left as f64,
        });
    }
    if let Some(left) = u.remaining_cost_usd
        && cost > left
    {
        return Some(Reason::OverBudget {
            tokens: false,
            needed: cost,
            available: left,
        });
    }
    None
}

/// A [`Budget`] held for one decision (see [`Budget::hold`]): the gate of
/// the decision and its reservation see the same state.
#[derive(Debug)]
pub struct BudgetHold<'a> {
    budget: &'a Budget,
    state: MutexGuard<'a, State>,
    now: DateTime<Utc>,
}

impl BudgetHold<'_> {
    /// Where the budget stands.
    pub fn usage(&self) -> Usage {
        self.budget.usage_of(&self.state)
    }

    /// A hard gate excluding the arms whose reservation would not fit what
    /// is left now, as [`BudgetGate`] does.
    pub fn gate(&self) -> HeldBudgetGate<'_> {
        HeldBudgetGate {
            budget: self.budget,
            usage: self.usage(),
        }
    }

    /// Reserves `tokens` and `cost` for decision `id`.
    ///
    /// # Errors
    /// As [`Budget::reserve`].
    pub fn reserve(&mut self, id: DecisionId, tokens: u64, cost: f64) -> Result<Usage> {
        check("cost", cost, cost >= 0.0, "a finite cost >= 0")?;
        let st = &mut *self.state;
        if st.reservations.contains_key(&id) {
            return Err(Error::DuplicateReservation(id));
        }
        if let Some(Reason::OverBudget {
            tokens: is_tokens,
            needed,
            available,
        }) = shortfall_of(&self.budget.usage_of(st), tokens, cost)
        {
            return Err(Error::OverBudget {
                resource: if is_tokens { "tokens" } else { "cost_usd" },
                needed,
                available,
            });
        }
        let expires = duration::after(self.now, self.budget.config.reservation_ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        st.reservations.insert(
            id,
            Reservation {
                tokens,
                cost,
                expires,
            },
        );
        st.reserved_tokens = st.reserved_tokens.saturating_add(tokens);
        st.reserved_cost += cost;
        Ok(self.budget.usage_of(st))
    }
}

/// The gate of a [`BudgetHold`]: [`BudgetGate`]'s rule against the held
/// usage.
#[derive(Debug, Clone, Copy)]
pub struct HeldBudgetGate<'a> {
    budget: &'a Budget,
    usage: Usage,
}

impl Gate for HeldBudgetGate<'_> {
    fn name(&self) -> &'static str {
        "budget"
    }
    fn is_hard(&self) -> bool {
        true
    }
    fn exclude(&self, ctx: &GateContext<'_>, arms: &ArmSet, arm: usize) -> Result<Option<Reason>> {
        let (tokens, cost) = self
            .budget
            .estimate(&arms.arm(arm)?.params, ctx.prompt_tokens)?;
        Ok(shortfall_of(&self.usage, tokens, cost))
    }
}

/// The [`Gate`] of a shared [`Budget`]: excludes the arms whose reservation
/// (prompt tokens + max_tokens at the model's price) would not fit, so that
/// a short budget restricts the choice to arms that fit. A hard gate.
#[derive(Debug, Clone)]
pub struct BudgetGate {
    budget: Arc<Budget>,
}

impl BudgetGate {
    /// A gate over `budget`.
    pub fn new(budget: Arc<Budget>) -> Self {
        BudgetGate { budget }
    }

    /// The rule against the budget's usage at the decision's time.
    fn at(&self, ctx: &GateContext<'_>) -> HeldBudgetGate<'_> {
        HeldBudgetGate {
            budget: &self.budget,
            usage: self.budget.usage(ctx.now),
        }
    }
}

impl Gate for BudgetGate {
    fn name(&self) -> &'static str {
        "budget"
    }
    fn is_hard(&self) -> bool {
        true
    }
    fn exclude(&self, ctx: &GateContext<'_>, arms: &ArmSet, arm: usize) -> Result<Option<Reason>> {
        self.at(ctx).exclude(ctx, arms, arm)
    }
    fn apply(
        &self,
        ctx: &GateContext<'_>,
        arms: &ArmSet,
        candidates: &mut Vec<usize>,
        excluded: &mut Vec<Exclusion>,
    ) -> Result<()> {
        // One lock for the whole set.
        self.at(ctx).apply(ctx, arms, candidates, excluded)
    }
}
