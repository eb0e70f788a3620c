//! Rollout vocabulary shared by the rollout, the facade and the decision
//! log: which policy's choice a request got ([`Cohort`]) and the stage a
//! rollout is in ([`Phase`]). Both serialize as snake_case strings
//! (`"baseline"`, `"canary"`, ...), the names the decision log stores.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which policy's choice a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cohort {
    /// The policy in use.
    Baseline,
    /// The policy being rolled out.
    Candidate,
}

/// A stage of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The candidate's choice is computed and logged; the baseline's is applied.
    Shadow,
    /// A small share of requests gets the candidate.
    Canary,
    /// A larger share.
    Guarded,
    /// Everyone: the rollout is complete.
    General,
}

impl Cohort {
    /// Its name, as the decision log stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Cohort::Baseline => "baseline",
            Cohort::Candidate => "candidate",
        }
    }
}

impl fmt::Display for Cohort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Phase {
    /// Its name, as the decision log stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Shadow => "shadow",
            Phase::Canary => "canary",
            Phase::Guarded => "guarded",
            Phase::General => "general",
        }
    }

    /// The phase a promotion leads to, `None` after [`Phase::General`].
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Shadow => Some(Phase::Canary),
            Phase::Canary => Some(Phase::Guarded),
            Phase::Guarded => Some(Phase::General),
            Phase::General => None,
        }
    }

    /// The phase before this one (shadow stays shadow).
    pub fn previous(self) -> Phase {
        match self {
            Phase::Shadow | Phase::Canary => Phase::Shadow,
            Phase::Guarded => Phase::Canary,
            Phase::General => Phase::Guarded,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_logs_strings() -> serde_json::Result<()> {
        assert_eq!(serde_json::to_string(&Cohort::Baseline)?, "\"baseline\"");
        assert_eq!(serde_json::to_string(&Phase::General)?, "\"general\"");
        assert_eq!(serde_json::from_str::<Phase>("\"canary\"")?, Phase::Canary);
        assert!(serde_json::from_str::<Cohort>("\"Candidate\"").is_err());
        for p in [Phase::Shadow, Phase::Canary, Phase::Guarded, Phase::General] {
            assert_eq!(serde_json::to_string(&p)?, format!("\"{p}\""));
        }
        for c in [Cohort::Baseline, Cohort::Candidate] {
            assert_eq!(serde_json::to_string(&c)?, format!("\"{c}\""));
        }
        Ok(())
    }

    #[test]
    fn phases_step_in_order() {
        assert_eq!(Phase::Shadow.next(), Some(Phase::Canary));
        assert_eq!(Phase::General.next(), None);
        assert_eq!(Phase::Canary.previous(), Phase::Shadow);
        assert_eq!(Phase::Shadow.previous(), Phase::Shadow);
    }
}
