//! Benchmark runs: every case of a suite, on every provider × parameter set
//! it serves, repeated, with bounded concurrency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tuneloop_core::ParameterSet;
use tuneloop_providers::{GenerationRequest, Message, Provider, Tier};

use crate::error::{Error, Result};
use crate::scorer::Judge;
use crate::suite::{Case, Suite};

/// Longest answer text kept in a [`CallRecord`], in characters.
pub const ANSWER_KEPT_CHARS: usize = 2_000;

/// What a benchmark runs.
#[derive(Debug, Clone)]
pub struct BenchmarkConfig {
    /// The providers to compare.
    pub providers: Vec<Arc<dyn Provider>>,
    /// The parameter sets to compare; each runs on every provider that
    /// serves its model.
    pub parameter_sets: Vec<ParameterSet>,
    /// Calls per case, provider and parameter set (default 3).
    pub repetitions: u32,
    /// Calls in flight at once (default 8).
    pub concurrency: usize,
    /// Time allowed for one call (default 60 s); a call that takes longer
    /// fails with quality 0.
    pub timeout: Duration,
    /// Who grades judge-scored cases.
    pub judge: Option<Judge>,
}

impl BenchmarkConfig {
    /// A configuration with the defaults above.
    pub fn new(providers: Vec<Arc<dyn Provider>>, parameter_sets: Vec<ParameterSet>) -> Self {
        BenchmarkConfig {
            providers,
            parameter_sets,
            repetitions: 3,
            concurrency: 8,
            timeout: Duration::from_secs(60),
            judge: None,
        }
    }

    fn validate(&self, suite: &Suite) -> Result<()> {
        if self.providers.is_empty() {
            return Err(Error::setting("providers", "no provider"));
        }
        if self.parameter_sets.is_empty() {
            return Err(Error::setting("parameter_sets", "no parameter set"));
        }
        if self.repetitions == 0 {
            return Err(Error::setting("repetitions", "must be at least 1"));
        }
        if self.concurrency == 0 {
            return Err(Error::setting("concurrency", "must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(Error::setting("timeout", "must be positive"));
        }
        if self.judge.is_none()
            && let Some(c) = suite.cases.iter().find(|c| c.scorer.needs_judge())
        {
            return Err(Error::setting(
                "judge",
                format!(
                    "case {:?} has a judge scorer and no judge is configured",
                    c.id
                ),
            ));
        }
        Ok(())
    }
}

/// One call of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The round (run) it belongs to.
    pub round: u32,
    /// The case.
    pub case_id: String,
    /// The case's task type.
    pub task_type: String,
    /// Whether the case checks restraint.
    #[serde(default)]
    pub restraint: bool,
    /// The provider.
    pub provider: String,
    /// The provider's tier.
    pub tier: Tier,
    /// The model.
    pub model: String,
    /// The parameter set's arm id (hex).
    pub arm: String,
    /// Which repetition (0-based).
    pub repetition: u32,
    /// Milliseconds from the start of the run to the start of the call.
    pub started_ms: f64,
    /// Latency of the call in milliseconds.
    pub latency_ms: f64,
    /// Prompt tokens billed (0 on failure).
    pub prompt_tokens: u64,
    /// Completion tokens billed (0 on failure).
    pub completion_tokens: u64,
    /// The score in `[0, 1]` (0 when the call or the scoring failed).
    pub quality: f64,
    /// Whether the call answered and the answer could be scored.
    pub success: bool,
    /// What failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer (its first [`ANSWER_KEPT_CHARS`] characters).
    #[serde(default)]
    pub answer: String,
}

/// Every call of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkRun {
    /// The suite's name.
    pub suite: String,
    /// The round number.
    pub round: u32,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// Calls, in (case, provider, parameter set, repetition) order.
    pub calls: Vec<CallRecord>,
    /// The parameter sets, by arm id.
    pub parameters: BTreeMap<String, ParameterSet>,
    /// Provider × parameter set pairs not run (the provider does not serve
    /// the model).
    pub skipped: Vec<String>,
}

/// A progress callback: `(done, total)` calls.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Send + Sync);

/// The request a case makes with these parameters.
pub fn case_request(
    case: &Case,
    prompt: &str,
    params: &ParameterSet,
    id: String,
) -> GenerationRequest {
    let mut messages = Vec::with_capacity(2);
    if let Some(s) = &case.system {
        messages.push(Message::system(s.clone()));
    }
    messages.push(Message::user(prompt.to_owned()));
    GenerationRequest::new(id, messages, params).with_task_type(case.task_type.clone())
}

/// The result of one call: latency, tokens, answer or error.
pub(crate) struct CallResult {
    pub(crate) latency_ms: f64,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) answer: Result<String, String>,
}

/// Calls `provider` with a timeout, measuring latency on tokio's clock
/// (virtual time when the runtime's clock is paused).
pub(crate) async fn call(
    provider: &dyn Provider,
    request: &GenerationRequest,
    timeout: Duration,
) -> CallResult {
    let start = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(timeout, provider.generate(request)).await;
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Ok(r)) => CallResult {
            latency_ms,
            prompt_tokens: r.usage.prompt_tokens,
            completion_tokens: r.usage.completion_tokens,
            answer: Ok(r.text),
        },
        Ok(Err(e)) => CallResult {
            latency_ms,
            prompt_tokens: 0,
            completion_tokens: 0,
            answer: Err(e.to_string()),
        },
        Err(_) => CallResult {
            latency_ms,
            prompt_tokens: 0,
            completion_tokens: 0,
            answer: Err(format!("{}: no answer within {timeout:?}", provider.id())),
        },
    }
}

/// Runs every case of `suite` on every provider × parameter set it serves,
/// `repetitions` times, at most `concurrency` calls at once; reports
/// `(done, total)` to `progress` as calls finish.
///
/// Needs a tokio runtime. With simulated providers, run it on a runtime
/// whose clock is paused: latencies are then simulated, not waited for.
///
/// # Errors
/// [`Error::Setting`] for an empty or invalid configuration, and for a
/// judge-scored suite without a judge.
pub async fn run_benchmark(
    suite: &Suite,
    config: &BenchmarkConfig,
    round: u32,
    progress: Option<Progress<'_>>,
) -> Result<BenchmarkRun> {
    config.validate(suite)?;
    let started_at = Utc::now();
    let origin = tokio::time::Instant::now();
    let mut parameters = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut pairs = Vec::new();
    for p in &config.providers {
        for ps in &config.parameter_sets {
            if p.capabilities().serves(ps.model()) {
                parameters.insert(ps.arm_id().to_string(), ps.clone());
                pairs.push((p.clone(), ps.clone()));
            } else {
                skipped.push(format!("{} does not serve {}", p.id(), ps.model()));
            }
        }
    }
    if pairs.is_empty() {
        return Err(Error::setting(
            "parameter_sets",
            "no provider serves the model of any parameter set",
        ));
    }
    let total = suite.cases.len() * pairs.len() * config.repetitions as usize;
    let permits = Arc::new(Semaphore::new(config.concurrency));
    let mut tasks = JoinSet::new();
    let mut index = 0usize;
    for (ci, case) in suite.cases.iter().enumerate() {
        for (pi, (provider, params)) in pairs.iter().enumerate() {
            for rep in 0..config.repetitions {
                let (case, provider, params) = (case.clone(), provider.clone(), params.clone());
                let (permits, judge, timeout) =
                    (permits.clone(), config.judge.clone(), config.timeout);
                let order = (ci, pi, rep);
                index += 1;
                let id = format!(
                    "r{round}-{}-{}-{}-{rep}",
                    case.id,
                    provider.id(),
                    params.arm_id()
                );
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await.ok();
                    let started_ms = origin.elapsed().as_secs_f64() * 1000.0;
                    let request = case_request(&case, &case.prompt, &params, id);
                    let result = call(provider.as_ref(), &request, timeout).await;
                    let (quality, success, error, answer) = match result.answer {
                        Ok(text) => {
                            match case
                                .scorer
                                .score(
                                    &case.prompt,
                                    &text,
                                    case.reference.as_deref(),
                                    judge.as_ref(),
                                )
                                .await
                            {
                                Ok(q) => (q, true, None, text),
                                Err(e) => (0.0, false, Some(e.to_string()), text),
                            }
                        }
                        Err(e) => (0.0, false, Some(e), String::new()),
                    };
                    let record = CallRecord {
                        round,
                        case_id: case.id.clone(),
                        task_type: case.task_type.clone(),
                        restraint: case.restraint,
                        provider: provider.id().to_owned(),
                        tier: provider.tier(),
                        model: params.model().to_owned(),
                        arm: params.arm_id().to_string(),
                        repetition: rep,
                        started_ms,
                        latency_ms: result.latency_ms,
                        prompt_tokens: result.prompt_tokens,
                        completion_tokens: result.completion_tokens,
                        quality,
                        success,
                        error,
                        answer: answer.chars().take(ANSWER_KEPT_CHARS).collect(),
                    };
                    (order, record)
                });
            }
        }
    }
    debug_assert_eq!(index, total);
    let mut calls = Vec::with_capacity(total);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => calls.push(done),
            // A task can only fail by panicking inside a provider or a
            // judge; that is a bug of theirs, re-raised here.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => continue,
        }
        if let Some(report) = progress {
            report(calls.len(), total);
        }
    }
    calls.sort_by_key(|(order, _)| *order);
    Ok(BenchmarkRun {
        suite: suite.name.clone(),
        round,
        started_at,
        calls: calls.into_iter().map(|(_, r)| r).collect(),
        parameters,
        skipped,
    })
}
