//! Prompt refinement with an interviewer model.
//!
//! Run a case's prompt → score it → below the success threshold, show an
//! interviewer model (any [`Provider`]) the prompt, the weakest answer and
//! its score, and ask for an analysis and an improved prompt → rerun with
//! it. Stop at the threshold, when the interviewer proposes nothing new or
//! fails, after `patience` proposals that did not beat the best score, or
//! at the iteration limit. The best prompt found is kept, and can become a
//! `prompt_variant` arm of the optimizer.
//!
//! Every step can be recorded in a session folder:
//!
//! ```text
//! OUT/session_<id>_<model>/
//!   session.json        the whole session
//!   iteration_1.json    each test: prompt, answers, scores, latency
//!   interview_1.json    each interview: request, reply, parsed prompt
//!   report.md           a summary for people
//! OUT/comparison_<id>.json   several models side by side
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tuneloop_core::ParameterSet;
use tuneloop_providers::{GenerationRequest, Message, PROMPT_CLOSE, PROMPT_OPEN, Provider};

use crate::error::{Error, Result};
use crate::runner::{call, case_request};
use crate::scorer::Judge;
use crate::suite::Case;

/// How refinement runs and stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefineConfig {
    /// Stop when the mean score reaches this (default 0.95).
    pub success_threshold: f64,
    /// Most prompts tested, the first included (default 5).
    pub max_iterations: u32,
    /// Calls per tested prompt; their mean is its score (default 3).
    pub repetitions: u32,
    /// Stop after this many proposed prompts in a row that did not beat
    /// the best score (default 2).
    pub patience: u32,
    /// A proposal counts as an improvement only if it beats the best score
    /// by more than this (default 0.02), so noise is not chased.
    pub min_improvement: f64,
    /// Time allowed for one call (default a minute; more than zero, at
    /// most 100 years). In JSON: `timeout_seconds`.
    #[serde(rename = "timeout_seconds", with = "tuneloop_core::duration::seconds")]
    pub timeout: Duration,
}

impl Default for RefineConfig {
    fn default() -> Self {
        RefineConfig {
            success_threshold: 0.95,
            max_iterations: 5,
            repetitions: 3,
            patience: 2,
            min_improvement: 0.02,
            timeout: Duration::from_secs(60),
        }
    }
}

impl RefineConfig {
    fn validate(&self) -> Result<()> {
        if !(self.success_threshold.is_finite() && (0.0..=1.0).contains(&self.success_threshold)) {
            return Err(Error::setting(
                "success_threshold",
                format!("{} is not in [0, 1]", self.success_threshold),
            ));
        }
        for (name, v) in [
            ("max_iterations", self.max_iterations),
            ("repetitions", self.repetitions),
            ("patience", self.patience),
        ] {
            if v == 0 {
                return Err(Error::setting(name, "must be at least 1"));
            }
        }
        if !(self.min_improvement.is_finite() && (0.0..=1.0).contains(&self.min_improvement)) {
            return Err(Error::setting(
                "min_improvement",
                format!("{} is not in [0, 1]", self.min_improvement),
            ));
        }
        if self.timeout.is_zero() || self.timeout > tuneloop_core::duration::MAX {
            return Err(Error::setting(
                "timeout",
                format!("{:?} is not in (0, 100 years]", self.timeout),
            ));
        }
        Ok(())
    }
}

/// A model under test: a provider and the parameters it is called with.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// The parameters (the model among them).
    pub parameters: ParameterSet,
}

/// One tested prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestIteration {
    /// 1-based.
    pub iteration: u32,
    /// The prompt tested.
    pub prompt: String,
    /// Each answer (empty for a failed call).
    pub outputs: Vec<String>,
    /// Each answer's score (0 for a failure).
    pub scores: Vec<f64>,
    /// Mean score.
    pub score: f64,
    /// Mean latency in milliseconds.
    pub latency_ms: f64,
    /// Whether every call answered and was scored.
    pub success: bool,
    /// The first failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the test finished.
    pub timestamp: DateTime<Utc>,
}

/// One conversation with the interviewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interview {
    /// After which iteration.
    pub iteration: u32,
    /// The interviewer's provider and model.
    pub interviewer: String,
    /// What it was asked.
    pub request: String,
    /// Its reply (empty if the call failed).
    pub reply: String,
    /// The analysis part of the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<String>,
    /// The improved prompt read from the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub improved_prompt: Option<String>,
    /// Whether the reply held a usable prompt different from the current.
    pub has_improvement: bool,
    /// The call's failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When.
    pub timestamp: DateTime<Utc>,
}

/// Why refinement stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The score reached the success threshold.
    Success,
    /// The interviewer proposed no usable new prompt.
    NoProposal,
    /// `patience` proposals in a row did not beat the best score.
    NoImprovement,
    /// The interviewer's call failed.
    InterviewerFailed,
    /// The iteration limit was reached.
    MaxIterations,
}

/// A whole refinement of one case on one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefineSession {
    /// A unique id.
    pub id: String,
    /// The case.
    pub case_id: String,
    /// Provider and model under test (`provider/model`).
    pub model: String,
    /// The parameters of the calls.
    pub parameters: ParameterSet,
    /// The interviewer (`provider/model`).
    pub interviewer: String,
    /// The settings.
    pub config: RefineConfig,
    /// Every tested prompt.
    pub iterations: Vec<TestIteration>,
    /// Every interview.
    pub interviews: Vec<Interview>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// The first prompt's score.
    pub initial_score: f64,
    /// The best score.
    pub best_score: f64,
    /// The prompt with the best score.
    pub best_prompt: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

impl RefineSession {
    /// The best prompt as an arm of the optimizer: `base` with
    /// `prompt_variant` set to `name`. Keep the returned [`PromptVariant`]
    /// where the agent looks prompts up by variant name.
    ///
    /// # Errors
    /// [`Error::Setting`] if `name` is empty.
    pub fn prompt_variant(
        &self,
        base: &ParameterSet,
        name: &str,
    ) -> Result<(ParameterSet, PromptVariant)> {
        if name.trim().is_empty() {
            return Err(Error::setting("prompt_variant", "empty name"));
        }
        let arm = base
            .to_builder()
            .prompt_variant(Some(name))
            .build()
            .map_err(|e| Error::setting("prompt_variant", e.to_string()))?;
        Ok((
            arm,
            PromptVariant {
                name: name.to_owned(),
                prompt: self.best_prompt.clone(),
                case_id: self.case_id.clone(),
                score: self.best_score,
                session: self.id.clone(),
            },
        ))
    }

    /// The session as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Prompt refinement: case `{}` on `{}`\n\n\
             - interviewer: `{}`\n- stopped: {:?}\n- score: {:.3} → {:.3} in {} iteration(s)\n\
             - started {}, finished {}\n\n## Iterations\n\n| # | score | latency (ms) | prompt |\n|---|---|---|---|\n",
            self.case_id,
            self.model,
            self.interviewer,
            self.stop_reason,
            self.initial_score,
            self.best_score,
            self.iterations.len(),
            self.started_at.to_rfc3339(),
            self.finished_at.to_rfc3339(),
        );
        for it in &self.iterations {
            s.push_str(&format!(
                "| {} | {:.3} | {:.0} | {} |\n",
                it.iteration,
                it.score,
                it.latency_ms,
                it.prompt.replace('\n', " ⏎ ").replace('|', "\\|")
            ));
        }
        s.push_str("\n## Interviews\n\n");
        for iv in &self.interviews {
            s.push_str(&format!(
                "### After iteration {}\n\n{}\n\nImproved prompt: {}\n\n",
                iv.iteration,
                iv.analysis.as_deref().unwrap_or("(no analysis)"),
                match (&iv.improved_prompt, &iv.error) {
                    (_, Some(e)) => format!("none — the call failed: {e}"),
                    (Some(p), None) if iv.has_improvement => format!("\n\n```text\n{p}\n```"),
                    _ => "none usable".into(),
                }
            ));
        }
        s.push_str(&format!(
            "## Best prompt\n\n```text\n{}\n```\n",
            self.best_prompt
        ));
        s
    }
}

/// A refined prompt registered as an arm's `prompt_variant`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptVariant {
    /// The variant name (the arm's `prompt_variant`).
    pub name: String,
    /// The prompt text.
    pub prompt: String,
    /// The case it was refined on.
    pub case_id: String,
    /// Its score.
    pub score: f64,
    /// The session that found it.
    pub session: String,
}

/// Where a session's files go: a folder per session under a root.
#[derive(Debug, Clone)]
pub struct SessionRecorder {
    root: PathBuf,
}

impl SessionRecorder {
    /// Records under `root` (created when the first file is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SessionRecorder { root: root.into() }
    }

    /// The folder of a session.
    pub fn session_dir(&self, session_id: &str, model: &str) -> PathBuf {
        let safe: String = model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join(format!("session_{session_id}_{safe}"))
    }

    fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
        let json = serde_json::to_vec_pretty(value).map_err(|e| Error::io(path, e.into()))?;
        tuneloop_core::fs::write_atomic(path, &json).map_err(|e| Error::io(path, e))
    }

    fn write_iteration(&self, s: &RefineSession, it: &TestIteration) -> Result<()> {
        let dir = self.session_dir(&s.id, &s.model);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Self::write_json(&dir.join(format!("iteration_{}.json", it.iteration)), it)
    }

    fn write_interview(&self, s: &RefineSession, iv: &Interview) -> Result<()> {
        let dir = self.session_dir(&s.id, &s.model);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Self::write_json(&dir.join(format!("interview_{}.json", iv.iteration)), iv)
    }

    /// Writes `session.json` and `report.md`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn write_session(&self, s: &RefineSession) -> Result<PathBuf> {
        let dir = self.session_dir(&s.id, &s.model);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Self::write_json(&dir.join("session.json"), s)?;
        let md = dir.join("report.md");
        tuneloop_core::fs::write_atomic(&md, s.markdown().as_bytes())
            .map_err(|e| Error::io(&md, e))?;
        Ok(dir)
    }

    /// Writes `comparison_<id>.json`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn write_comparison(&self, c: &Comparison) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let path = self.root.join(format!("comparison_{}.json", c.id));
        Self::write_json(&path, c)?;
        Ok(path)
    }
}

/// Several models refined on the same case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// A unique id.
    pub id: String,
    /// The case.
    pub case_id: String,
    /// One row per model, best final score first.
    pub models: Vec<ComparisonRow>,
}

/// One model's refinement, in short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// `provider/model`.
    pub model: String,
    /// The session id.
    pub session: String,
    /// First score.
    pub initial_score: f64,
    /// Best score.
    pub best_score: f64,
    /// Prompts tested.
    pub iterations: u32,
    /// Mean latency over every test, in milliseconds.
    pub mean_latency_ms: f64,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// The best prompt.
    pub best_prompt: String,
}

/// Reads the improved prompt from an interviewer's reply, trying in turn:
/// text between `<prompt>` and `</prompt>`; a line `IMPROVED PROMPT:` and
/// what follows up to a line starting `REASONING:` (or the end); a fenced
/// code block. Returns `(analysis, prompt)`; the prompt is `None` when no
/// usable (non-empty) text is found.
pub fn parse_interview(reply: &str) -> (Option<String>, Option<String>) {
    let analysis = reply
        .lines()
        .find_map(|l| {
            let t = l.trim_start();
            (find_ascii_ci(t, "analysis:") == Some(0))
                .then(|| t["analysis:".len()..].trim().to_owned())
        })
        .filter(|a| !a.is_empty());
    let clean = |s: &str| {
        let t = s.trim().trim_matches('`').trim();
        (!t.is_empty()).then(|| t.to_owned())
    };
    if let Some(start) = reply.find(PROMPT_OPEN) {
        let rest = &reply[start + PROMPT_OPEN.len()..];
        if let Some(end) = rest.find(PROMPT_CLOSE) {
            return (analysis, clean(&rest[..end]));
        }
    }
    if let Some(i) = find_ascii_ci(reply, "improved prompt:") {
        let rest = &reply[i + "improved prompt:".len()..];
        let end = find_ascii_ci(rest, "reasoning:").unwrap_or(rest.len());
        return (analysis, clean(&rest[..end]));
    }
    if let Some(start) = reply.find("```") {
        let rest = &reply[start + 3..];
        let body = rest.find('\n').map_or(rest, |i| &rest[i + 1..]);
        if let Some(end) = body.find("```") {
            return (analysis, clean(&body[..end]));
        }
    }
    (analysis, None)
}

/// The byte offset of the first ASCII-case-insensitive match of the ASCII
/// `needle` in `hay`. Matching on the original bytes (not on a lowercased
/// copy, whose offsets differ after some non-ASCII letters) keeps the
/// offset on a character boundary of `hay`.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Refines prompts of cases on candidates with an interviewer.
///
/// ```
/// use std::sync::Arc;
/// use tuneloop_core::ParameterSet;
/// use tuneloop_eval::{Candidate, RefineConfig, Refiner, StopReason, Suite};
/// use tuneloop_providers::{SimulatedConfig, SimulatedProvider, SimulatedRole};
///
/// let mut suite = Suite::standard();
/// suite.cases.retain(|c| c.id == "capital");
/// let need = "Answer with the city name only.";
/// suite.cases[0].prompt = "What is the capital of Australia?".into();
/// // A model that needs the instruction, an interviewer that suggests it.
/// let model = Candidate {
///     provider: Arc::new(SimulatedProvider::new(SimulatedConfig {
///         peak_quality: 1.0,
///         answers: suite.simulated_answers(|_| vec![need.to_owned()]),
///         ..SimulatedConfig::default()
///     })),
///     parameters: ParameterSet::builder("m").temperature(0.3).max_tokens(1024).build()?,
/// };
/// let interviewer = Candidate {
///     provider: Arc::new(SimulatedProvider::new(SimulatedConfig {
///         id: "coach".into(),
///         role: SimulatedRole::Interviewer { hints: vec![need.to_owned()] },
///         ..SimulatedConfig::default()
///     })),
///     parameters: ParameterSet::builder("coach").build()?,
/// };
/// let refiner = Refiner::new(interviewer, RefineConfig { repetitions: 20, success_threshold: 0.99, ..RefineConfig::default() })?;
/// let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?;
/// let session = rt.block_on(refiner.refine(&suite.cases[0], &model))?;
/// assert_eq!(session.stop_reason, StopReason::Success);
/// assert!(session.best_prompt.ends_with(need));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Refiner {
    interviewer: Candidate,
    judge: Option<Judge>,
    config: RefineConfig,
    recorder: Option<SessionRecorder>,
}

impl Refiner {
    /// A refiner asking `interviewer` for better prompts.
    ///
    /// # Errors
    /// [`Error::Setting`] for settings out of range.
    pub fn new(interviewer: Candidate, config: RefineConfig) -> Result<Self> {
        config.validate()?;
        Ok(Refiner {
            interviewer,
            judge: None,
            config,
            recorder: None,
        })
    }

    /// Grades judge-scored cases with `judge`.
    #[must_use]
    pub fn judge(mut self, judge: Judge) -> Self {
        self.judge = Some(judge);
        self
    }

    /// Records sessions under a folder.
    #[must_use]
    pub fn record(mut self, recorder: SessionRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    async fn test(
        &self,
        case: &Case,
        candidate: &Candidate,
        prompt: &str,
        iteration: u32,
    ) -> TestIteration {
        let timeout = self.config.timeout;
        let (mut outputs, mut scores, mut latency, mut error) = (Vec::new(), Vec::new(), 0.0, None);
        for rep in 0..self.config.repetitions {
            // Request ids name the case, model, iteration and repetition
            // (not the session's time-derived id), so a refinement on a
            // seeded simulator replays exactly.
            let id = format!(
                "refine-{}-{}-{}-{iteration}-{rep}",
                case.id,
                candidate.provider.id(),
                candidate.parameters.model()
            );
            let request = case_request(case, prompt, &candidate.parameters, id);
            let r = call(candidate.provider.as_ref(), &request, timeout).await;
            latency += r.latency_ms;
            match r.answer {
                Ok(text) => {
                    match case
                        .scorer
                        .score(
                            prompt,
                            &text,
                            case.reference.as_deref(),
                            self.judge.as_ref(),
                        )
                        .await
                    {
                        Ok(q) => scores.push(q),
                        Err(e) => {
                            scores.push(0.0);
                            error.get_or_insert(e.to_string());
                        }
                    }
                    outputs.push(text);
                }
                Err(e) => {
                    outputs.push(String::new());
                    scores.push(0.0);
                    error.get_or_insert(e);
                }
            }
        }
        let n = f64::from(self.config.repetitions);
        TestIteration {
            iteration,
            prompt: prompt.to_owned(),
            score: scores.iter().sum::<f64>() / n,
            outputs,
            scores,
            latency_ms: latency / n,
            success: error.is_none(),
            error,
            timestamp: Utc::now(),
        }
    }

    async fn interview(&self, case: &Case, candidate: &Candidate, it: &TestIteration) -> Interview {
        // Show the weakest answer: it says most about what goes wrong.
        let worst = it
            .scores
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let request_text = format!(
            "You are an expert in prompting language models. The model {model} answered \
             the prompt below and scored {score:.2} out of 1 (scoring: {scorer}).\n\
             CURRENT PROMPT:\n{PROMPT_OPEN}\n{prompt}\n{PROMPT_CLOSE}\n\
             MODEL OUTPUT:\n{output}\n\
             Reply with:\nANALYSIS: what went wrong, in one paragraph\n\
             then the complete improved prompt between {PROMPT_OPEN} and {PROMPT_CLOSE}\n\
             REASONING: why the change helps.",
            model = candidate.parameters.model(),
            score = it.score,
            scorer = serde_json::to_string(&case.scorer).unwrap_or_default(),
            prompt = it.prompt,
            output = it.outputs.get(worst).map_or("", String::as_str),
        );
        let request = GenerationRequest::new(
            format!(
                "interview-{}-{}-{}",
                case.id,
                candidate.provider.id(),
                it.iteration
            ),
            vec![Message::user(request_text.clone())],
            &self.interviewer.parameters,
        )
        .with_task_type("interview");
        let r = call(
            self.interviewer.provider.as_ref(),
            &request,
            self.config.timeout,
        )
        .await;
        let interviewer = format!(
            "{}/{}",
            self.interviewer.provider.id(),
            self.interviewer.parameters.model()
        );
        match r.answer {
            Ok(reply) => {
                let (analysis, improved) = parse_interview(&reply);
                let has_improvement = improved
                    .as_deref()
                    .is_some_and(|p| p.trim() != it.prompt.trim());
                Interview {
                    iteration: it.iteration,
                    interviewer,
                    request: request_text,
                    reply,
                    analysis,
                    improved_prompt: improved,
                    has_improvement,
                    error: None,
                    timestamp: Utc::now(),
                }
            }
            Err(e) => Interview {
                iteration: it.iteration,
                interviewer,
                request: request_text,
                reply: String::new(),
                analysis: None,
                improved_prompt: None,
                has_improvement: false,
                error: Some(e),
                timestamp: Utc::now(),
            },
        }
    }

    /// Refines `case`'s prompt on `candidate`.
    ///
    /// Failures of the candidate score 0 and failures of the interviewer
    /// end the session with [`StopReason::InterviewerFailed`]; neither is
    /// an error.
    ///
    /// # Errors
    /// [`Error::Io`] if a session file cannot be written.
    pub async fn refine(&self, case: &Case, candidate: &Candidate) -> Result<RefineSession> {
        let started_at = Utc::now();
        let model = format!(
            "{}/{}",
            candidate.provider.id(),
            candidate.parameters.model()
        );
        let id = session_id(&case.id, &model, started_at);
        let mut session = RefineSession {
            id: id.clone(),
            case_id: case.id.clone(),
            model,
            parameters: candidate.parameters.clone(),
            interviewer: format!(
                "{}/{}",
                self.interviewer.provider.id(),
                self.interviewer.parameters.model()
            ),
            config: self.config.clone(),
            iterations: Vec::new(),
            interviews: Vec::new(),
            stop_reason: StopReason::MaxIterations,
            initial_score: 0.0,
            best_score: f64::NEG_INFINITY,
            best_prompt: case.prompt.clone(),
            started_at,
            finished_at: started_at,
        };
        let mut prompt = case.prompt.clone();
        let mut misses = 0;
        for iteration in 1..=self.config.max_iterations {
            let it = self.test(case, candidate, &prompt, iteration).await;
            if let Some(r) = &self.recorder {
                r.write_iteration(&session, &it)?;
            }
            if iteration == 1 {
                session.initial_score = it.score;
            }
            if iteration > 1 && it.score <= session.best_score + self.config.min_improvement {
                misses += 1;
            } else {
                misses = 0;
            }
            if it.score > session.best_score {
                session.best_score = it.score;
                session.best_prompt = it.prompt.clone();
            }
            let score = it.score;
            session.iterations.push(it);
            if score >= self.config.success_threshold {
                session.stop_reason = StopReason::Success;
                break;
            }
            if misses >= self.config.patience {
                session.stop_reason = StopReason::NoImprovement;
                break;
            }
            if iteration == self.config.max_iterations {
                session.stop_reason = StopReason::MaxIterations;
                break;
            }
            let last = session.iterations.last().cloned();
            let Some(last) = last else { break };
            let iv = self.interview(case, candidate, &last).await;
            if let Some(r) = &self.recorder {
                r.write_interview(&session, &iv)?;
            }
            let next = iv
                .has_improvement
                .then(|| iv.improved_prompt.clone())
                .flatten();
            let failed = iv.error.is_some();
            session.interviews.push(iv);
            match next {
                Some(p) => prompt = p,
                None => {
                    session.stop_reason = if failed {
                        StopReason::InterviewerFailed
                    } else {
                        StopReason::NoProposal
                    };
                    break;
                }
            }
        }
        session.finished_at = Utc::now();
        if let Some(r) = &self.recorder {
            r.write_session(&session)?;
        }
        Ok(session)
    }

    /// Refines `case` on every candidate and compares them (best final
    /// score first); with a recorder, also writes the comparison file.
    ///
    /// # Errors
    /// As [`refine`](Self::refine).
    pub async fn compare(
        &self,
        case: &Case,
        candidates: &[Candidate],
    ) -> Result<(Vec<RefineSession>, Comparison)> {
        let mut sessions = Vec::with_capacity(candidates.len());
        for c in candidates {
            sessions.push(self.refine(case, c).await?);
        }
        let mut models: Vec<ComparisonRow> = sessions
            .iter()
            .map(|s| ComparisonRow {
                model: s.model.clone(),
                session: s.id.clone(),
                initial_score: s.initial_score,
                best_score: s.best_score,
                iterations: s.iterations.len() as u32,
                mean_latency_ms: s.iterations.iter().map(|i| i.latency_ms).sum::<f64>()
                    / s.iterations.len().max(1) as f64,
                stop_reason: s.stop_reason,
                best_prompt: s.best_prompt.clone(),
            })
            .collect();
        models.sort_by(|a, b| {
            b.best_score
                .total_cmp(&a.best_score)
                .then(a.model.cmp(&b.model))
        });
        let comparison = Comparison {
            id: session_id(&case.id, "comparison", Utc::now()),
            case_id: case.id.clone(),
            models,
        };
        if let Some(r) = &self.recorder {
            r.write_comparison(&comparison)?;
        }
        Ok((sessions, comparison))
    }
}

fn session_id(case: &str, model: &str, at: DateTime<Utc>) -> String {
    let mut h = tuneloop_core::hash::StableHasher::new();
    h.write_str(case);
    h.write_str(model);
    h.write_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
    format!("{:08x}", h.finish() >> 32)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // scores are exact ratios of small integers
mod tests {
    use super::*;

    #[test]
    fn interview_replies_are_read_in_three_forms() {
        let (a, p) = parse_interview(
            "ANALYSIS: too vague.\n<prompt>\nSay only the city.\n</prompt>\nREASONING: x",
        );
        assert_eq!(a.as_deref(), Some("too vague."));
        assert_eq!(p.as_deref(), Some("Say only the city."));
        let (_, p) = parse_interview(
            "Analysis: meh\nImproved prompt: Name the city only.\nReasoning: shorter",
        );
        assert_eq!(p.as_deref(), Some("Name the city only."));
        let (_, p) = parse_interview("Try this:\n```text\nName the city.\n```\n");
        assert_eq!(p.as_deref(), Some("Name the city."));
        assert_eq!(parse_interview("I have no idea."), (None, None));
        // Letters whose lowercase is longer (İ is 2 bytes, i̇ is 3) before
        // the heading must not shift the cut.
        let (_, p) = parse_interview("İİİ ÅNGSTRÖM\nIMPROVED PROMPT: Say Canberra.\nREASONING: ok");
        assert_eq!(p.as_deref(), Some("Say Canberra."));
        let (a, _) = parse_interview("  Analysis:   terse  ");
        assert_eq!(a.as_deref(), Some("terse"));
        assert_eq!(parse_interview("<prompt>   </prompt>").1, None);
    }
}
