//! What happened after a call ([`TaskOutcome`]) and what it was worth
//! ([`RewardFunction`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Why a call failed, as far as the caller can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// A failure that may pass on retry (a 5xx, a dropped connection).
    Transient,
    /// The backend asked the caller to slow down.
    RateLimited,
    /// No answer within the deadline.
    Timeout,
    /// The prompt plus `max_tokens` exceeds the model's context window.
    ContextLength,
    /// Credentials were refused.
    Authentication,
    /// A failure that retrying will not fix (a 4xx, an unknown model).
    Permanent,
    /// An answer arrived but was unusable (failed to parse, failed checks).
    InvalidOutput,
    /// Anything else.
    Other,
}

/// Why the model stopped generating, as the server reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// It finished (or met a stop sequence).
    Stop,
    /// It reached `max_tokens`: the answer may be cut short.
    Length,
    /// It called a tool.
    ToolCalls,
    /// A content filter stopped it.
    ContentFilter,
    /// A reason of the server's own.
    Other,
}

/// The observed result of one LLM call.
///
/// ```
/// use tuneloop_core::TaskOutcome;
/// let ok = TaskOutcome::success(0.9, 850.0).with_tokens(1200, 300).with_cost(0.0021);
/// assert!(ok.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// Quality of the answer, in `[0, 1]` (0 for a failure).
    pub quality: f64,
    /// Wall-clock latency of the call, in milliseconds, `>= 0`.
    pub latency_ms: f64,
    /// Prompt tokens billed.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens billed.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Cost of the call in US dollars, `>= 0`.
    #[serde(default)]
    pub cost_usd: f64,
    /// Whether the call produced a usable answer.
    pub success: bool,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// Why generation stopped, when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Time from sending the request to the first generated token, in
    /// milliseconds, when the answer was streamed; at most `latency_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_token_ms: Option<f64>,
}

/// Which latency a [`RewardFunction`] or an SLO watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyMetric {
    /// The whole call: [`TaskOutcome::latency_ms`].
    #[default]
    Total,
    /// Time to the first token of a streamed answer
    /// ([`TaskOutcome::time_to_first_token_ms`]); the whole call's latency
    /// for an outcome that was not streamed.
    FirstToken,
}

impl TaskOutcome {
    /// A successful call with this quality and latency; no tokens, no cost.
    pub fn success(quality: f64, latency_ms: f64) -> Self {
        TaskOutcome {
            quality,
            latency_ms,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
            success: true,
            error_class: None,
            finish_reason: None,
            time_to_first_token_ms: None,
        }
    }

    /// A failed call: quality 0.
    pub fn failure(class: ErrorClass, latency_ms: f64) -> Self {
        TaskOutcome {
            quality: 0.0,
            latency_ms,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
            success: false,
            error_class: Some(class),
            finish_reason: None,
            time_to_first_token_ms: None,
        }
    }

    /// Sets the token counts.
    pub fn with_tokens(mut self, prompt: u64, completion: u64) -> Self {
        self.prompt_tokens = prompt;
        self.completion_tokens = completion;
        self
    }

    /// Sets why generation stopped.
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        self.finish_reason = Some(reason);
        self
    }

    /// Sets the time to the first token of a streamed answer, in ms.
    pub fn with_time_to_first_token(mut self, ms: f64) -> Self {
        self.time_to_first_token_ms = Some(ms);
        self
    }

    /// The latency `metric` names, in ms.
    pub fn latency(&self, metric: LatencyMetric) -> f64 {
        match metric {
            LatencyMetric::Total => self.latency_ms,
            LatencyMetric::FirstToken => self.time_to_first_token_ms.unwrap_or(self.latency_ms),
        }
    }

    /// Completion tokens per second after the first token, for a streamed
    /// answer with tokens and time after its first one.
    ///
    /// ```
    /// use tuneloop_core::TaskOutcome;
    /// let o = TaskOutcome::success(1.0, 1100.0).with_tokens(20, 61).with_time_to_first_token(100.0);
    /// // 60 tokens after the first, in 1 s.
    /// assert_eq!(o.tokens_per_second(), Some(60.0));
    /// ```
    pub fn tokens_per_second(&self) -> Option<f64> {
        let first = self.time_to_first_token_ms?;
        let after = self.latency_ms - first;
        (self.completion_tokens > 1 && after > 0.0)
            .then(|| (self.completion_tokens - 1) as f64 / (after / 1000.0))
    }

    /// Sets the cost.
    pub fn with_cost(mut self, cost_usd: f64) -> Self {
        self.cost_usd = cost_usd;
        self
    }

    /// Total tokens, saturating.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Checks every field's range.
    ///
    /// # Errors
    /// [`Error::InvalidOutcome`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, value, expected| {
            Err(Error::InvalidOutcome {
                field,
                value,
                expected,
            })
        };
        if !(self.quality.is_finite() && (0.0..=1.0).contains(&self.quality)) {
            return bad("quality", self.quality, "0 <= quality <= 1");
        }
        if !(self.latency_ms.is_finite() && self.latency_ms >= 0.0) {
            return bad("latency_ms", self.latency_ms, "a finite latency >= 0");
        }
        if !(self.cost_usd.is_finite() && self.cost_usd >= 0.0) {
            return bad("cost_usd", self.cost_usd, "a finite cost >= 0");
        }
        if let Some(t) = self.time_to_first_token_ms
            && !(t.is_finite() && t >= 0.0 && t <= self.latency_ms)
        {
            return bad(
                "time_to_first_token_ms",
                t,
                "a finite time >= 0 and at most latency_ms",
            );
        }
        Ok(())
    }
}

/// Turns a [`TaskOutcome`] into a reward in `[0, 1]`.
///
/// With weights `w_q, w_l, w_c >= 0` (not all zero), a latency scale `L > 0`
/// ms, a cost scale `C > 0` USD and a failure penalty `p` in `[0, 1]`:
///
/// ```text
/// base   = (w_q · quality + w_l · L / (L + latency_ms) + w_c · C / (C + cost_usd)) / (w_q + w_l + w_c)
/// reward = base                 if success
///        = base · (1 − p)       otherwise
/// ```
///
/// Each term is in `[0, 1]`, so the reward is too. Latency and cost scores
/// are 1 at zero, 1/2 at the scale, and fall smoothly beyond it. Defaults:
/// `w_q = 0.7, w_l = 0.15, w_c = 0.15, L = 2000 ms, C = $0.01, p = 1` (a
/// failed call earns nothing).
///
/// ```
/// use tuneloop_core::{RewardFunction, TaskOutcome};
/// let f = RewardFunction::builder().quality_weight(1.0).latency_weight(0.0).cost_weight(0.0).build()?;
/// assert!((f.reward(&TaskOutcome::success(0.8, 100.0))? - 0.8).abs() < 1e-12);
/// # Ok::<(), tuneloop_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RewardFunctionBuilder", into = "RewardFunctionBuilder")]
pub struct RewardFunction {
    quality_weight: f64,
    latency_weight: f64,
    cost_weight: f64,
    latency_scale_ms: f64,
    cost_scale_usd: f64,
    failure_penalty: f64,
    latency_metric: LatencyMetric,
}

impl Default for RewardFunction {
    fn default() -> Self {
        RewardFunction {
            quality_weight: 0.7,
            latency_weight: 0.15,
            cost_weight: 0.15,
            latency_scale_ms: 2000.0,
            cost_scale_usd: 0.01,
            failure_penalty: 1.0,
            latency_metric: LatencyMetric::Total,
        }
    }
}

impl RewardFunction {
    /// A builder starting from the defaults.
    pub fn builder() -> RewardFunctionBuilder {
        RewardFunction::default().into()
    }

    /// The reward of `outcome`, in `[0, 1]`.
    ///
    /// # Errors
    /// [`Error::InvalidOutcome`] if the outcome is out of range.
    pub fn reward(&self, outcome: &TaskOutcome) -> Result<f64> {
        outcome.validate()?;
        let total = self.quality_weight + self.latency_weight + self.cost_weight;
        let latency =
            self.latency_scale_ms / (self.latency_scale_ms + outcome.latency(self.latency_metric));
        let cost = self.cost_scale_usd / (self.cost_scale_usd + outcome.cost_usd);
        let base = (self.quality_weight * outcome.quality
            + self.latency_weight * latency
            + self.cost_weight * cost)
            / total;
        let r = if outcome.success {
            base
        } else {
            base * (1.0 - self.failure_penalty)
        };
        // Rounding can leave r a hair outside [0, 1]; the contract is exact.
        Ok(r.clamp(0.0, 1.0))
    }
}

/// Builds a checked [`RewardFunction`]; also its serialized form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardFunctionBuilder {
    quality_weight: f64,
    latency_weight: f64,
    cost_weight: f64,
    latency_scale_ms: f64,
    cost_scale_usd: f64,
    failure_penalty: f64,
    #[serde(default, skip_serializing_if = "is_total")]
    latency_metric: LatencyMetric,
}

fn is_total(m: &LatencyMetric) -> bool {
    *m == LatencyMetric::Total
}

impl From<RewardFunction> for RewardFunctionBuilder {
    fn from(f: RewardFunction) -> Self {
        RewardFunctionBuilder {
            quality_weight: f.quality_weight,
            latency_weight: f.latency_weight,
            cost_weight: f.cost_weight,
            latency_scale_ms: f.latency_scale_ms,
            cost_scale_usd: f.cost_scale_usd,
            failure_penalty: f.failure_penalty,
            latency_metric: f.latency_metric,
        }
    }
}

impl TryFrom<RewardFunctionBuilder> for RewardFunction {
    type Error = Error;
    fn try_from(b: RewardFunctionBuilder) -> Result<Self> {
        b.build()
    }
}

impl RewardFunctionBuilder {
    /// Weight of quality, `>= 0`.
    pub fn quality_weight(mut self, v: f64) -> Self {
        self.quality_weight = v;
        self
    }
    /// Weight of the latency score, `>= 0`.
    pub fn latency_weight(mut self, v: f64) -> Self {
        self.latency_weight = v;
        self
    }
    /// Weight of the cost score, `>= 0`.
    pub fn cost_weight(mut self, v: f64) -> Self {
        self.cost_weight = v;
        self
    }
    /// Latency at which the latency score is 1/2, in ms, `> 0`.
    pub fn latency_scale_ms(mut self, v: f64) -> Self {
        self.latency_scale_ms = v;
        self
    }
    /// Cost at which the cost score is 1/2, in USD, `> 0`.
    pub fn cost_scale_usd(mut self, v: f64) -> Self {
        self.cost_scale_usd = v;
        self
    }
    /// Which latency the latency score uses (default the whole call's;
    /// [`LatencyMetric::FirstToken`] for streamed answers, where the user
    /// waits for the first token, not the last).
    pub fn latency_metric(mut self, v: LatencyMetric) -> Self {
        self.latency_metric = v;
        self
    }
    /// Fraction of the reward a failed call loses, in `[0, 1]`.
    pub fn failure_penalty(mut self, v: f64) -> Self {
        self.failure_penalty = v;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad setting.
    pub fn build(self) -> Result<RewardFunction> {
        let bad = |field: &'static str, v: f64, what: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: format!("{v} is not {what}"),
            })
        };
        for (field, v) in [
            ("quality_weight", self.quality_weight),
            ("latency_weight", self.latency_weight),
            ("cost_weight", self.cost_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, v, "a finite weight >= 0");
            }
        }
        let total = self.quality_weight + self.latency_weight + self.cost_weight;
        if total <= 0.0 {
            return bad("quality_weight", total, "part of a positive weight sum");
        }
        for (field, v) in [
            ("latency_scale_ms", self.latency_scale_ms),
            ("cost_scale_usd", self.cost_scale_usd),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(field, v, "a finite scale > 0");
            }
        }
        if !(self.failure_penalty.is_finite() && (0.0..=1.0).contains(&self.failure_penalty)) {
            return bad("failure_penalty", self.failure_penalty, "in [0, 1]");
        }
        Ok(RewardFunction {
            quality_weight: self.quality_weight,
            latency_weight: self.latency_weight,
            cost_weight: self.cost_weight,
            latency_scale_ms: self.latency_scale_ms,
            cost_scale_usd: self.cost_scale_usd,
            failure_penalty: self.failure_penalty,
            latency_metric: self.latency_metric,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_token_latency_is_checked_and_can_drive_the_reward() -> Result<()> {
        let streamed = TaskOutcome::success(1.0, 3000.0).with_time_to_first_token(1000.0);
        assert!(streamed.validate().is_ok());
        let late = TaskOutcome::success(1.0, 100.0).with_time_to_first_token(200.0);
        assert!(matches!(
            late.validate(),
            Err(Error::InvalidOutcome {
                field: "time_to_first_token_ms",
                ..
            })
        ));
        // Latency only, scale 1000 ms: L / (L + latency).
        let f = RewardFunction::builder()
            .quality_weight(0.0)
            .latency_weight(1.0)
            .cost_weight(0.0)
            .latency_scale_ms(1000.0);
        let total = f.clone().build()?;
        let first = f.latency_metric(LatencyMetric::FirstToken).build()?;
        assert!((total.reward(&streamed)? - 0.25).abs() < 1e-12);
        assert!((first.reward(&streamed)? - 0.5).abs() < 1e-12);
        // Not streamed: the whole call's latency.
        let plain = TaskOutcome::success(1.0, 3000.0);
        assert!((first.reward(&plain)? - 0.25).abs() < 1e-12);
        Ok(())
    }
    use proptest::prelude::*;

    #[test]
    fn default_reward_matches_the_formula_by_hand() -> Result<()> {
        let f = RewardFunction::default();
        // quality 0.8, latency = L (score 1/2), cost = C (score 1/2):
        // 0.7·0.8 + 0.15·0.5 + 0.15·0.5 = 0.71
        let o = TaskOutcome::success(0.8, 2000.0).with_cost(0.01);
        assert!((f.reward(&o)? - 0.71).abs() < 1e-12);
        // A failure with the default penalty earns nothing.
        assert!(
            f.reward(&TaskOutcome::failure(ErrorClass::Timeout, 10.0))?
                .abs()
                < 1e-15
        );
        // Perfect, instant and free: exactly 1.
        assert!((f.reward(&TaskOutcome::success(1.0, 0.0))? - 1.0).abs() < 1e-15);
        Ok(())
    }

    #[test]
    fn failure_penalty_scales_the_base() -> Result<()> {
        let f = RewardFunction::builder()
            .failure_penalty(0.25)
            .quality_weight(0.0)
            .cost_weight(0.0)
            .latency_weight(1.0)
            .build()?;
        let o = TaskOutcome::failure(ErrorClass::Transient, 2000.0);
        assert!((f.reward(&o)? - 0.375).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn bad_outcomes_and_configs_are_named() {
        let f = RewardFunction::default();
        let cases = [
            (TaskOutcome::success(1.5, 1.0), "quality"),
            (TaskOutcome::success(f64::NAN, 1.0), "quality"),
            (TaskOutcome::success(0.5, -1.0), "latency_ms"),
            (TaskOutcome::success(0.5, f64::INFINITY), "latency_ms"),
            (TaskOutcome::success(0.5, 1.0).with_cost(-0.1), "cost_usd"),
        ];
        for (o, field) in cases {
            assert!(
                matches!(f.reward(&o), Err(Error::InvalidOutcome { field: f, .. }) if f == field),
                "{field}"
            );
        }
        let configs = [
            (
                RewardFunction::builder().quality_weight(-1.0),
                "quality_weight",
            ),
            (
                RewardFunction::builder().cost_weight(f64::NAN),
                "cost_weight",
            ),
            (
                RewardFunction::builder()
                    .quality_weight(0.0)
                    .latency_weight(0.0)
                    .cost_weight(0.0),
                "quality_weight",
            ),
            (
                RewardFunction::builder().latency_scale_ms(0.0),
                "latency_scale_ms",
            ),
            (
                RewardFunction::builder().failure_penalty(1.1),
                "failure_penalty",
            ),
        ];
        for (b, field) in configs {
            assert!(
                matches!(b.build(), Err(Error::InvalidConfig { field: f, .. }) if f == field),
                "{field}"
            );
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let json = serde_json::to_string(&RewardFunction::default()).unwrap_or_default();
        assert_eq!(
            serde_json::from_str::<RewardFunction>(&json).ok(),
            Some(RewardFunction::default())
        );
        let bad = json.replace("\"failure_penalty\":1.0", "\"failure_penalty\":2.0");
        assert!(serde_json::from_str::<RewardFunction>(&bad).is_err());
    }

    proptest! {
        #[test]
        fn reward_is_always_in_unit_interval(
            q in 0.0f64..=1.0, lat in 0.0f64..1e12, cost in 0.0f64..1e9,
            success in any::<bool>(),
            wq in 0.0f64..10.0, wl in 0.0f64..10.0, wc in 0.0f64..10.0,
            ls in 1e-6f64..1e7, cs in 1e-9f64..1e3, p in 0.0f64..=1.0,
        ) {
            prop_assume!(wq + wl + wc > 0.0);
            let f = RewardFunction::builder().quality_weight(wq).latency_weight(wl).cost_weight(wc)
                .latency_scale_ms(ls).cost_scale_usd(cs).failure_penalty(p).build()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let o = TaskOutcome { success, ..TaskOutcome::success(q, lat).with_cost(cost) };
            let r = f.reward(&o).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!((0.0..=1.0).contains(&r), "{}", r);
        }

        #[test]
        fn reward_never_panics(q in any::<f64>(), lat in any::<f64>(), cost in any::<f64>()) {
            let o = TaskOutcome::success(q, lat).with_cost(cost);
            let _ = RewardFunction::default().reward(&o);
        }
    }
}
