//! How a logged decision ended ([`Resolution`]), and the record's JSON:
//! the four fields that carry the resolution on the wire (`outcome`,
//! `reward`, `reward_defaulted`, `abandoned`, as every release wrote them)
//! are read into one value, so that a combination no writer makes is
//! refused when read and cannot be built.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tuneloop_core::{ArmId, Cohort, DecisionId, ParameterSet, Phase, TaskOutcome};

use crate::log::LoggedDecision;

/// Where a decision's life ended, as its record says.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// No outcome yet: a record written when the decision was made.
    Unresolved,
    /// The outcome arrived and the reward was computed from it: the
    /// learner learned it. `outcome` is `None` in logs that carry the
    /// reward alone (converted from another system, simulated).
    Recorded {
        /// What the call produced.
        outcome: Option<TaskOutcome>,
        /// The reward, in `[0, 1]`.
        reward: f64,
    },
    /// The outcome arrived, but the call was not made as the arm says (a
    /// completion longer than its `max_tokens`: the server ignored the
    /// limit): the reward is logged, and neither learned as the arm's nor
    /// used by off-policy evaluation as the arm's.
    Misapplied {
        /// What the call produced.
        outcome: Option<TaskOutcome>,
        /// The reward the outcome would earn.
        reward: f64,
        /// What differed from the arm.
        reason: String,
    },
    /// Given up before its time to live ran out (see [`AbandonReason`]):
    /// logged with the configured default reward, which no learner learns.
    Abandoned {
        /// Why.
        reason: AbandonReason,
        /// The configured default reward.
        default_reward: f64,
    },
    /// Its time to live passed without an outcome: logged with the
    /// configured default reward, which no learner learns.
    Expired {
        /// The configured default reward.
        default_reward: f64,
    },
}

impl Resolution {
    /// The reward the record carries: the learned one, or the default of
    /// an abandoned or expired decision; `None` while unresolved.
    pub fn reward(&self) -> Option<f64> {
        match self {
            Resolution::Unresolved => None,
            Resolution::Recorded { reward, .. } | Resolution::Misapplied { reward, .. } => {
                Some(*reward)
            }
            Resolution::Abandoned { default_reward, .. }
            | Resolution::Expired { default_reward } => Some(*default_reward),
        }
    }

    /// The reward of an outcome that arrived from a call made as the arm
    /// says: what a learner learns and an estimator uses. `None` for the
    /// rest.
    pub fn recorded_reward(&self) -> Option<f64> {
        match self {
            Resolution::Recorded { reward, .. } => Some(*reward),
            _ => None,
        }
    }

    /// The outcome, when it arrived and the log kept it.
    pub fn outcome(&self) -> Option<&TaskOutcome> {
        match self {
            Resolution::Recorded { outcome, .. } | Resolution::Misapplied { outcome, .. } => {
                outcome.as_ref()
            }
            _ => None,
        }
    }

    /// True for a decision abandoned or expired: its reward is the
    /// configured default, not a measurement.
    pub fn is_defaulted(&self) -> bool {
        matches!(
            self,
            Resolution::Abandoned { .. } | Resolution::Expired { .. }
        )
    }
}

/// Why a decision was given up before its time to live ran out. In the
/// log, the `abandoned` field holds its text ([`fmt::Display`]), read back
/// by [`AbandonReason::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbandonReason {
    /// Its handle was dropped unrecorded (`dropped unrecorded`).
    Dropped,
    /// Its episode was dropped unfinished (`episode dropped unfinished`).
    EpisodeDropped,
    /// The optimizer shut down while it was pending (`shutdown`).
    Shutdown,
    /// Its outcome was refused (`outcome refused: …`, with the error).
    OutcomeRefused(String),
    /// The caller's own reason, as given.
    Caller(String),
}

impl AbandonReason {
    const DROPPED: &'static str = "dropped unrecorded";
    const EPISODE_DROPPED: &'static str = "episode dropped unfinished";
    const SHUTDOWN: &'static str = "shutdown";
    const REFUSED: &'static str = "outcome refused: ";

    /// The reason whose text is `text` (the log's `abandoned` field): the
    /// texts the optimizer writes are its variants, any other text the
    /// caller's.
    pub fn parse(text: &str) -> Self {
        match text {
            Self::DROPPED => AbandonReason::Dropped,
            Self::EPISODE_DROPPED => AbandonReason::EpisodeDropped,
            Self::SHUTDOWN => AbandonReason::Shutdown,
            _ => match text.strip_prefix(Self::REFUSED) {
                Some(error) => AbandonReason::OutcomeRefused(error.to_owned()),
                None => AbandonReason::Caller(text.to_owned()),
            },
        }
    }
}

impl fmt::Display for AbandonReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbandonReason::Dropped => f.write_str(Self::DROPPED),
            AbandonReason::EpisodeDropped => f.write_str(Self::EPISODE_DROPPED),
            AbandonReason::Shutdown => f.write_str(Self::SHUTDOWN),
            AbandonReason::OutcomeRefused(e) => write!(f, "{}{e}", Self::REFUSED),
            AbandonReason::Caller(reason) => f.write_str(reason),
        }
    }
}

/// The record as written: every field of [`LoggedDecision`], the
/// resolution in its four wire fields.
#[derive(Deserialize)]
pub(crate) struct Wire {
    schema_version: u32,
    decision_id: DecisionId,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    episode_id: Option<DecisionId>,
    task_type: String,
    model: String,
    context_fingerprint: String,
    context: Vec<f64>,
    eligible: Vec<usize>,
    eligible_ids: Vec<ArmId>,
    arm: usize,
    arm_id: ArmId,
    params: ParameterSet,
    propensity: f64,
    propensity_estimated: bool,
    policy_kind: String,
    policy_version: u64,
    #[serde(default)]
    cohort: Option<Cohort>,
    #[serde(default)]
    phase: Option<Phase>,
    #[serde(default)]
    shadow_arm: Option<usize>,
    timestamp: DateTime<Utc>,
    #[serde(default)]
    outcome: Option<TaskOutcome>,
    #[serde(default)]
    reward: Option<f64>,
    #[serde(default)]
    reward_defaulted: bool,
    #[serde(default)]
    abandoned: Option<String>,
    #[serde(default)]
    misapplied: Option<String>,
}

/// A combination of the four resolution fields that no writer makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ResolutionError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

fn resolution(
    outcome: Option<TaskOutcome>,
    reward: Option<f64>,
    defaulted: bool,
    abandoned: Option<String>,
    misapplied: Option<String>,
) -> Result<Resolution, ResolutionError> {
    let bad = |field, problem| Err(ResolutionError { field, problem });
    if let Some(reason) = misapplied {
        return match (reward, defaulted, abandoned) {
            (Some(reward), false, None) => Ok(Resolution::Misapplied {
                outcome,
                reward,
                reason,
            }),
            _ => bad(
                "misapplied",
                "given without a reward, or beside reward_defaulted or abandoned",
            ),
        };
    }
    match (outcome, reward, defaulted, abandoned) {
        (None, None, false, None) => Ok(Resolution::Unresolved),
        (outcome, Some(reward), false, None) => Ok(Resolution::Recorded { outcome, reward }),
        (None, Some(default_reward), true, None) => Ok(Resolution::Expired { default_reward }),
        (None, Some(default_reward), true, Some(reason)) => Ok(Resolution::Abandoned {
            reason: AbandonReason::parse(&reason),
            default_reward,
        }),
        (Some(_), None, _, _) => bad("reward", "missing where an outcome is given"),
        (Some(_), _, true, _) => bad("reward_defaulted", "set where an outcome is given"),
        (None, None, true, _) => bad("reward_defaulted", "set without a reward"),
        (_, _, false, Some(_)) => bad("abandoned", "given without reward_defaulted"),
    }
}

impl TryFrom<Wire> for LoggedDecision {
    type Error = ResolutionError;

    fn try_from(w: Wire) -> Result<Self, ResolutionError> {
        Ok(LoggedDecision {
            resolution: resolution(
                w.outcome,
                w.reward,
                w.reward_defaulted,
                w.abandoned,
                w.misapplied,
            )?,
            schema_version: w.schema_version,
            decision_id: w.decision_id,
            request_id: w.request_id,
            episode_id: w.episode_id,
            task_type: w.task_type,
            model: w.model,
            context_fingerprint: w.context_fingerprint,
            context: w.context,
            eligible: w.eligible,
            eligible_ids: w.eligible_ids,
            arm: w.arm,
            arm_id: w.arm_id,
            params: w.params,
            propensity: w.propensity,
            propensity_estimated: w.propensity_estimated,
            policy_kind: w.policy_kind,
            policy_version: w.policy_version,
            cohort: w.cohort,
            phase: w.phase,
            shadow_arm: w.shadow_arm,
            timestamp: w.timestamp,
        })
    }
}

impl<'de> Deserialize<'de> for LoggedDecision {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LoggedDecision::try_from(Wire::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The record as written, borrowed from a [`LoggedDecision`] (nothing is
/// copied to write a record).
#[derive(Serialize)]
struct WireRef<'a> {
    schema_version: u32,
    decision_id: &'a DecisionId,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    episode_id: Option<&'a DecisionId>,
    task_type: &'a str,
    model: &'a str,
    context_fingerprint: &'a str,
    context: &'a [f64],
    eligible: &'a [usize],
    eligible_ids: &'a [ArmId],
    arm: usize,
    arm_id: &'a ArmId,
    params: &'a ParameterSet,
    propensity: f64,
    propensity_estimated: bool,
    policy_kind: &'a str,
    policy_version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cohort: Option<&'a Cohort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<&'a Phase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow_arm: Option<usize>,
    timestamp: &'a DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a TaskOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reward: Option<f64>,
    reward_defaulted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    abandoned: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    misapplied: Option<&'a str>,
}

impl Serialize for LoggedDecision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = &self.resolution;
        WireRef {
            schema_version: self.schema_version,
            decision_id: &self.decision_id,
            request_id: self.request_id.as_deref(),
            episode_id: self.episode_id.as_ref(),
            task_type: &self.task_type,
            model: &self.model,
            context_fingerprint: &self.context_fingerprint,
            context: &self.context,
            eligible: &self.eligible,
            eligible_ids: &self.eligible_ids,
            arm: self.arm,
            arm_id: &self.arm_id,
            params: &self.params,
            propensity: self.propensity,
            propensity_estimated: self.propensity_estimated,
            policy_kind: &self.policy_kind,
            policy_version: self.policy_version,
            cohort: self.cohort.as_ref(),
            phase: self.phase.as_ref(),
            shadow_arm: self.shadow_arm,
            timestamp: &self.timestamp,
            outcome: r.outcome(),
            reward: r.reward(),
            reward_defaulted: r.is_defaulted(),
            abandoned: match r {
                Resolution::Abandoned { reason, .. } => Some(reason.to_string()),
                _ => None,
            },
            misapplied: match r {
                Resolution::Misapplied { reason, .. } => Some(reason),
                _ => None,
            },
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The four wire fields of each resolution, as `docs/decision-log.md`
    /// lists them, and back.
    #[test]
    fn each_resolution_is_written_as_the_documented_fields_and_read_back() {
        let outcome = TaskOutcome::success(0.5, 10.0);
        let cases = [
            (Resolution::Unresolved, None, None, false, None),
            (
                Resolution::Recorded {
                    outcome: Some(outcome.clone()),
                    reward: 0.7,
                },
                Some(&outcome),
                Some(0.7),
                false,
                None,
            ),
            (
                Resolution::Recorded {
                    outcome: None,
                    reward: 0.7,
                },
                None,
                Some(0.7),
                false,
                None,
            ),
            (
                Resolution::Abandoned {
                    reason: AbandonReason::OutcomeRefused("quality 2 is not in [0, 1]".into()),
                    default_reward: 0.25,
                },
                None,
                Some(0.25),
                true,
                Some("outcome refused: quality 2 is not in [0, 1]"),
            ),
            (
                Resolution::Expired {
                    default_reward: 0.25,
                },
                None,
                Some(0.25),
                true,
                None,
            ),
        ];
        for (resolution, o, reward, defaulted, abandoned) in cases {
            assert_eq!(resolution.outcome(), o);
            assert_eq!(resolution.reward(), reward);
            assert_eq!(resolution.is_defaulted(), defaulted);
            let text = match &resolution {
                Resolution::Abandoned { reason, .. } => Some(reason.to_string()),
                _ => None,
            };
            assert_eq!(text.as_deref(), abandoned);
            let back = super::resolution(
                o.cloned(),
                reward,
                defaulted,
                abandoned.map(str::to_owned),
                None,
            );
            assert_eq!(back, Ok(resolution));
        }
    }

    #[test]
    fn the_optimizers_reasons_read_back_as_themselves_and_any_other_text_as_the_callers() {
        for reason in [
            AbandonReason::Dropped,
            AbandonReason::EpisodeDropped,
            AbandonReason::Shutdown,
            AbandonReason::OutcomeRefused("late".into()),
            AbandonReason::Caller("the user cancelled".into()),
        ] {
            assert_eq!(AbandonReason::parse(&reason.to_string()), reason);
        }
        assert_eq!(AbandonReason::Dropped.to_string(), "dropped unrecorded");
        assert_eq!(AbandonReason::Shutdown.to_string(), "shutdown");
    }
}
