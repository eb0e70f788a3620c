//! Prompt refinement through `SimulatedProvider`s on tokio's paused clock:
//! the candidate loses 0.25 of quality for each required phrase its prompt
//! lacks, and the simulated interviewer appends its hints one at a time.

// Scores here are exact: 0, 1 or ratios of small integers.
#![allow(clippy::float_cmp)]

use std::sync::Arc;

use async_trait::async_trait;
use tuneloop_core::ParameterSet;
use tuneloop_eval::{Candidate, RefineConfig, Refiner, SessionRecorder, StopReason, Suite};
use tuneloop_providers::{
    Capabilities, FinishReason, GenerationRequest, GenerationResponse, Provider, ProviderError,
    SimulatedConfig, SimulatedProvider, SimulatedRole, Tier, Usage,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NEEDED: &str = "Answer with the city name only, no punctuation.";

fn params(model: &str) -> Result<ParameterSet, tuneloop_core::Error> {
    ParameterSet::builder(model)
        .temperature(0.3)
        .max_tokens(1024)
        .build()
}

fn capital_suite() -> Suite {
    let mut s = Suite::standard();
    s.cases.retain(|c| c.id == "capital");
    // The refinement starts from a prompt without the instruction.
    s.cases[0].prompt = "What is the capital of Australia?".into();
    s
}

fn candidate(id: &str, peak: f64, requires: &[&str]) -> Result<Candidate, tuneloop_core::Error> {
    let suite = capital_suite();
    let requires: Vec<String> = requires.iter().map(|s| (*s).to_owned()).collect();
    Ok(Candidate {
        provider: Arc::new(SimulatedProvider::new(SimulatedConfig {
            id: id.into(),
            peak_quality: peak,
            answers: suite.simulated_answers(|_| requires.clone()),
            ..SimulatedConfig::default()
        })),
        parameters: params("m")?,
    })
}

fn interviewer(hints: &[&str]) -> Result<Candidate, tuneloop_core::Error> {
    Ok(Candidate {
        provider: Arc::new(SimulatedProvider::new(SimulatedConfig {
            id: "interviewer".into(),
            role: SimulatedRole::Interviewer {
                hints: hints.iter().map(|s| (*s).to_owned()).collect(),
            },
            ..SimulatedConfig::default()
        })),
        parameters: params("coach")?,
    })
}

/// 20 calls a prompt and success at 0.99: a prompt without the needed
/// instruction (q ≤ 0.75) reaches it with probability 0.75^20 < 0.4%, one
/// with it at peak 1 (q = 1) always.
fn config() -> RefineConfig {
    RefineConfig {
        repetitions: 20,
        success_threshold: 0.99,
        ..RefineConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn refinement_finds_the_missing_instruction_and_records_everything() -> TestResult {
    let suite = capital_suite();
    let case = &suite.cases[0];
    let dir = tempfile::tempdir()?;
    let refiner = Refiner::new(interviewer(&["Think step by step.", NEEDED])?, config())?
        .record(SessionRecorder::new(dir.path()));
    // Peak 1: with the instruction q = 1 (always right), without it 0.75.
    let s = refiner
        .refine(case, &candidate("cand", 1.0, &[NEEDED])?)
        .await?;
    assert_eq!(s.stop_reason, StopReason::Success);
    // Iteration 1: the bare prompt; 2: plus "Think step by step." (no
    // gain); 3: plus the needed instruction: every answer right.
    assert_eq!(s.iterations.len(), 3);
    assert_eq!(s.interviews.len(), 2);
    assert!((s.initial_score - 0.75).abs() < 4.0 * (0.75f64 * 0.25 / 20.0).sqrt());
    assert_eq!(s.best_score, 1.0);
    assert!(s.best_prompt.contains(NEEDED) && s.best_prompt.starts_with(&case.prompt));
    assert!(
        s.interviews
            .iter()
            .all(|i| i.has_improvement && i.analysis.is_some())
    );

    let session_dir = SessionRecorder::new(dir.path()).session_dir(&s.id, &s.model);
    for f in [
        "session.json",
        "iteration_1.json",
        "iteration_2.json",
        "iteration_3.json",
        "interview_1.json",
        "interview_2.json",
        "report.md",
    ] {
        assert!(session_dir.join(f).is_file(), "missing {f}");
    }
    let stored: tuneloop_eval::RefineSession =
        serde_json::from_slice(&std::fs::read(session_dir.join("session.json"))?)?;
    assert_eq!(stored, s);
    let md = std::fs::read_to_string(session_dir.join("report.md"))?;
    assert!(md.contains("Success") && md.contains(NEEDED));

    // The refined prompt becomes an arm.
    let (arm, variant) = s.prompt_variant(&params("m")?, "capital-v2")?;
    assert_eq!(arm.prompt_variant(), Some("capital-v2"));
    assert_ne!(arm.arm_id(), params("m")?.arm_id());
    assert_eq!(variant.prompt, s.best_prompt);
    assert!(s.prompt_variant(&params("m")?, " ").is_err());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn it_stops_when_the_interviewer_has_nothing_new() -> TestResult {
    let suite = capital_suite();
    // The interviewer's only hint is already in the prompt.
    let refiner = Refiner::new(interviewer(&["capital of Australia"])?, config())?;
    let s = refiner
        .refine(&suite.cases[0], &candidate("cand", 0.25, &[NEEDED])?)
        .await?;
    assert_eq!(s.stop_reason, StopReason::NoProposal);
    assert_eq!((s.iterations.len(), s.interviews.len()), (1, 1));
    assert!(!s.interviews[0].has_improvement);
    assert!(s.interviews[0].reply.contains("No change"));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn it_stops_after_proposals_that_do_not_help() -> TestResult {
    let suite = capital_suite();
    let refiner = Refiner::new(
        interviewer(&["Be brief.", "Be kind.", "Be exact.", "Be quick."])?,
        config(),
    )?;
    // Nothing the interviewer suggests is what the model needs: with peak
    // 0.25 and the instruction missing, q = 0 and every score is 0; with
    // patience 2, two proposals end it.
    let s = refiner
        .refine(&suite.cases[0], &candidate("cand", 0.25, &[NEEDED])?)
        .await?;
    assert_eq!(s.stop_reason, StopReason::NoImprovement);
    assert_eq!(s.iterations.len(), 3);
    assert_eq!(s.best_score, 0.0);
    // With a large patience the iteration limit ends it: 5 tests, 4 interviews.
    let refiner = Refiner::new(
        interviewer(&["Be brief.", "Be kind.", "Be exact.", "Be quick."])?,
        RefineConfig {
            patience: 10,
            ..config()
        },
    )?;
    let s = refiner
        .refine(&suite.cases[0], &candidate("cand", 0.25, &[NEEDED])?)
        .await?;
    assert_eq!(s.stop_reason, StopReason::MaxIterations);
    assert_eq!((s.iterations.len(), s.interviews.len()), (5, 4));
    Ok(())
}

/// An interviewer that answers with prose and no prompt.
#[derive(Debug)]
struct Rambler(Capabilities);

#[async_trait]
impl Provider for Rambler {
    fn id(&self) -> &str {
        "rambler"
    }
    fn tier(&self) -> Tier {
        Tier::Local
    }
    fn capabilities(&self) -> &Capabilities {
        &self.0
    }
    async fn generate(&self, r: &GenerationRequest) -> Result<GenerationResponse, ProviderError> {
        Ok(GenerationResponse {
            text: "Honestly, prompts are an art. Try harder!".into(),
            usage: Usage {
                prompt_tokens: 1,
                completion_tokens: 1,
            },
            latency: std::time::Duration::ZERO,
            time_to_first_token: None,
            finish_reason: FinishReason::Stop,
            provider: "rambler".into(),
            model: r.model.clone(),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn unusable_or_failing_interviewers_are_recorded_not_fatal() -> TestResult {
    let suite = capital_suite();
    let rambler = Candidate {
        provider: Arc::new(Rambler(Capabilities {
            models: Vec::new(),
            context_window: 100_000,
        })),
        parameters: params("r")?,
    };
    let s = Refiner::new(rambler, config())?
        .refine(&suite.cases[0], &candidate("cand", 0.25, &[NEEDED])?)
        .await?;
    assert_eq!(s.stop_reason, StopReason::NoProposal);
    assert_eq!(s.interviews[0].improved_prompt, None);
    assert!(s.interviews[0].reply.contains("art"));

    let refused = Candidate {
        provider: Arc::new(SimulatedProvider::new(SimulatedConfig {
            id: "locked".into(),
            reject_credentials: true,
            ..SimulatedConfig::default()
        })),
        parameters: params("r")?,
    };
    // Peak 0.25 without the instruction: q = 0, the first prompt fails.
    let s = Refiner::new(refused, config())?
        .refine(&suite.cases[0], &candidate("cand", 0.25, &[NEEDED])?)
        .await?;
    assert_eq!(s.stop_reason, StopReason::InterviewerFailed);
    assert!(
        s.interviews[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("authentication"))
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn several_models_are_compared_best_first() -> TestResult {
    let suite = capital_suite();
    let dir = tempfile::tempdir()?;
    let refiner =
        Refiner::new(interviewer(&[NEEDED])?, config())?.record(SessionRecorder::new(dir.path()));
    // Peaks 1.0 and 0.6: after refinement q = 1.0 and 0.6.
    let (sessions, cmp) = refiner
        .compare(
            &suite.cases[0],
            &[
                candidate("weak", 0.6, &[NEEDED])?,
                candidate("strong", 1.0, &[NEEDED])?,
            ],
        )
        .await?;
    assert_eq!(sessions.len(), 2);
    assert_eq!(cmp.models[0].model, "strong/m");
    assert_eq!(cmp.models[0].best_score, 1.0);
    assert!(cmp.models[1].best_score < 1.0);
    assert!(
        dir.path()
            .join(format!("comparison_{}.json", cmp.id))
            .is_file()
    );
    assert!(
        Refiner::new(
            interviewer(&[])?,
            RefineConfig {
                success_threshold: 1.5,
                ..config()
            }
        )
        .is_err()
    );
    Ok(())
}
