//! Decision handles, abandoning, shutdown and expiry sweeps from async code.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tuneloop::core::{ArmSet, ManualClock, TaskFeatures, TaskOutcome};
use tuneloop::counterfactual::{AbandonReason, DecisionLog, LoggedDecision, MemoryLog, Resolution};
use tuneloop::{DROPPED, Error, Optimizer, RecommendOptions, SHUTDOWN, TaskTypeConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn clock() -> ManualClock {
    ManualClock::new(
        Utc.timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or_default(),
    )
}

fn optimizer(c: &ManualClock, log: Arc<dyn DecisionLog>) -> Result<Optimizer, Error> {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    Optimizer::builder()
        .task_type("qa", TaskTypeConfig::new(arms))
        .seed(5)
        .clock(Arc::new(c.clone()))
        .decision_ttl(Duration::from_secs(60), 0.25)
        .decision_log(log)
        .build()
}

fn ask(o: &Optimizer) -> Result<tuneloop::Decision, Error> {
    o.recommend("qa", &TaskFeatures::default(), &RecommendOptions::default())
}

#[test]
fn a_handle_is_recorded_abandoned_dropped_or_handed_over_exactly_once() -> TestResult {
    let c = clock();
    let log = Arc::new(MemoryLog::new());
    let o = optimizer(&c, log.clone())?;

    let recorded = ask(&o)?;
    let recorded_id = recorded.id();
    let r = recorded.record(&TaskOutcome::success(1.0, 100.0))?;
    assert!(r.reward > 0.25);

    let abandoned = ask(&o)?;
    let abandoned_id = abandoned.id();
    abandoned.abandon("the user cancelled")?;

    let dropped_id = ask(&o)?.id(); // the handle is dropped here

    let refused = ask(&o)?;
    let refused_id = refused.id();
    let bad = TaskOutcome::success(1.5, 100.0); // quality outside [0, 1]
    assert!(refused.record(&bad).is_err());

    let later = ask(&o)?.into_recommendation();
    assert_eq!(o.pending(), 1, "only the handed-over decision waits");
    o.record_outcome(later.decision_id, &TaskOutcome::success(0.5, 100.0))?;
    assert_eq!(o.pending(), 0);

    let k = o.counters();
    assert_eq!((k.recommendations, k.outcomes, k.abandoned), (5, 2, 3));
    o.flush_log();
    let records = log.records();
    assert_eq!(records.len(), 5);
    let find = |id| {
        records
            .iter()
            .find(|r: &&LoggedDecision| r.decision_id == id)
            .ok_or("not logged")
    };
    let rec = find(recorded_id)?;
    assert!(matches!(
        rec.resolution,
        Resolution::Recorded {
            outcome: Some(_),
            ..
        }
    ));
    for (id, reason) in [
        (
            abandoned_id,
            AbandonReason::Caller("the user cancelled".into()),
        ),
        (dropped_id, AbandonReason::Dropped),
    ] {
        let r = find(id)?;
        assert_eq!(
            r.resolution,
            Resolution::Abandoned {
                reason: reason.clone(),
                default_reward: 0.25
            }
        );
        // In the log, the reason's text.
        let line = serde_json::to_value(r)?;
        assert_eq!(line["abandoned"], reason.to_string());
        assert_eq!(line["reward_defaulted"], true);
    }
    assert_eq!(DROPPED, AbandonReason::Dropped.to_string());
    let r = find(refused_id)?;
    assert!(
        matches!(
            &r.resolution,
            Resolution::Abandoned { reason: AbandonReason::OutcomeRefused(e), .. } if e.contains("quality")
        ),
        "{r:?}"
    );
    // Abandoning twice, or what was recorded, is an error naming the id.
    assert!(
        matches!(o.abandon(recorded_id, "late"), Err(Error::UnknownDecision(id)) if id == recorded_id)
    );
    Ok(())
}

/// A sink that hands each record to a task of the async runtime through a
/// channel of one slot, as a sink that forwards to an async client would.
#[derive(Debug)]
struct ForwardingLog(tokio::sync::mpsc::Sender<LoggedDecision>);

impl DecisionLog for ForwardingLog {
    fn append(&self, record: &LoggedDecision) -> tuneloop::counterfactual::Result<()> {
        self.0
            .blocking_send(record.clone())
            .map_err(|e| tuneloop::counterfactual::Error::Io {
                path: "forward".into(),
                source: std::io::Error::other(e.to_string()),
            })
    }
}

/// Runs `f` on a current-thread runtime in a thread of its own, and fails
/// (instead of hanging the test run) if it does not finish in 60 s.
fn on_current_thread_runtime<F, T>(f: F) -> Result<T, Box<dyn std::error::Error>>
where
    F: FnOnce(&tokio::runtime::Runtime) -> T + Send + 'static,
    T: Send + 'static,
{
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            let _ = done.send(f(&rt));
        }
    });
    Ok(wait
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the runtime's only thread was blocked: it hung")?)
}

#[test]
fn dropping_the_last_handle_inside_a_current_thread_runtime_does_not_block_it() -> TestResult {
    const N: usize = 20;
    let received = on_current_thread_runtime(|rt| {
        rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel(1);
            let consumer = tokio::spawn(async move {
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                n
            });
            let c = clock();
            let o = optimizer(&c, Arc::new(ForwardingLog(tx)))?;
            for _ in 0..N {
                ask(&o)?.record(&TaskOutcome::success(0.9, 100.0))?;
            }
            // The writer is stuck until the consumer runs, which needs this
            // thread: a drop that waited for the writer would never return.
            drop(o);
            Ok::<usize, Error>(consumer.await.unwrap_or(0))
        })
    })??;
    assert_eq!(received, N, "the writer drained on its own after the drop");
    Ok(())
}

#[test]
fn shutdown_awaits_the_writer_on_a_current_thread_runtime() -> TestResult {
    const N: usize = 20;
    let (received, abandoned, counters) = on_current_thread_runtime(|rt| {
        rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<LoggedDecision>(1);
            let consumer = tokio::spawn(async move {
                let mut reasons = Vec::new();
                while let Some(r) = rx.recv().await {
                    reasons.push(r.resolution);
                }
                reasons
            });
            let c = clock();
            let o = optimizer(&c, Arc::new(ForwardingLog(tx)))?;
            for _ in 0..N {
                ask(&o)?.record(&TaskOutcome::success(0.9, 100.0))?;
            }
            let waiting = ask(&o)?.into_recommendation();
            let abandoned = o.shutdown().await;
            // After the shutdown: nothing more is logged, the rest works.
            ask(&o)?.record(&TaskOutcome::success(0.9, 100.0))?;
            let counters = o.counters();
            drop(o);
            let reasons = consumer.await.unwrap_or_default();
            let _ = waiting;
            Ok::<_, Error>((reasons, abandoned, counters))
        })
    })??;
    assert_eq!(abandoned, 1);
    assert_eq!(
        received.len(),
        N + 1,
        "every record before the shutdown, and only those"
    );
    assert_eq!(
        received
            .iter()
            .filter(|r| matches!(
                r,
                Resolution::Abandoned {
                    reason: AbandonReason::Shutdown,
                    ..
                }
            ))
            .inspect(|r| assert_eq!(r.reward(), Some(0.25), "{SHUTDOWN}: the default reward"))
            .count(),
        1
    );
    assert_eq!(counters.log_dropped, 1, "the record after the shutdown");
    Ok(())
}

#[test]
fn the_expiry_sweep_task_runs_on_the_runtime_clock_and_ends_with_the_optimizer() -> TestResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    rt.block_on(async {
        let c = clock();
        let log = Arc::new(MemoryLog::new());
        let o = optimizer(&c, log.clone())?;
        let sweeps = tokio::spawn(o.expiry_sweeps(Duration::from_secs(10)));
        let _waiting = ask(&o)?.into_recommendation();
        c.advance(chrono::Duration::seconds(61)); // past the 60 s time to live
        assert_eq!(o.pending(), 1, "no sweep yet");
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(o.pending(), 0);
        assert_eq!(o.counters().expired, 1);
        drop(o);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(sweeps.is_finished(), "the loop ends with the last handle");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

/// Excludes arms hotter than a limit; hard or soft.
#[derive(Debug)]
struct AtMost {
    name: &'static str,
    temperature: f64,
    hard: bool,
}

impl tuneloop::gates::Gate for AtMost {
    fn name(&self) -> &'static str {
        self.name
    }
    fn is_hard(&self) -> bool {
        self.hard
    }
    fn exclude(
        &self,
        _: &tuneloop::gates::GateContext<'_>,
        arms: &ArmSet,
        arm: usize,
    ) -> tuneloop::gates::Result<Option<tuneloop::gates::Reason>> {
        let t = arms.arm(arm)?.params.temperature();
        Ok((t > self.temperature).then_some(tuneloop::gates::Reason::Custom { why: "too hot" }))
    }
}

#[test]
fn custom_gates_compose_after_the_built_in_ones_in_order() -> TestResult {
    use tuneloop::gates::{Constraints, Parameter, Reason, Rule};
    // Arms at temperatures 0.0, 0.25, ..., 1.0; the incumbent is 0.5.
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.25, 0.5, 0.75, 1.0])
        .build()?;
    let floor_of_0_25 = Constraints::new(vec![Rule::ParameterRange {
        task_type: None,
        parameter: Parameter::Temperature,
        min: Some(0.25),
        max: None,
    }]);
    let build = |shared_limit: f64, own: AtMost| {
        Optimizer::builder()
            .task_type(
                "qa",
                TaskTypeConfig::new(arms.clone())
                    .incumbent(2)
                    .constraints(floor_of_0_25.clone())
                    .gate(own),
            )
            .gate(AtMost {
                name: "shared",
                temperature: shared_limit,
                hard: false,
            })
            .seed(1)
            .build()
    };
    let o = build(
        0.75,
        AtMost {
            name: "own",
            temperature: 0.5,
            hard: false,
        },
    )?;
    for _ in 0..50 {
        let d = ask_qa(&o)?;
        let rec = d.recommendation();
        let t = rec.params.temperature();
        assert!((0.25..=0.5).contains(&t), "{t}");
        // Each gate sees only what the ones before it let through: the
        // constraint takes 0.0, the shared gate 1.0, the task's own 0.75.
        let by: Vec<(&str, usize)> = rec.reasons.iter().map(|e| (e.gate, e.arm)).collect();
        assert_eq!(
            by,
            [("constraints", 0), ("shared", 4), ("own", 3)],
            "{by:?}"
        );
        assert!(matches!(
            rec.reasons[2].reason,
            Reason::Custom { why: "too hot" }
        ));
        d.abandon("test")?;
    }
    // A soft gate that excludes everything yields to the incumbent; a hard
    // one does not.
    let soft = build(
        0.75,
        AtMost {
            name: "own",
            temperature: -1.0,
            hard: false,
        },
    )?;
    let d = ask_qa(&soft)?;
    assert!(d.recommendation().fell_back_to_incumbent && d.recommendation().arm == 2);
    d.abandon("test")?;
    let hard = build(
        0.75,
        AtMost {
            name: "own",
            temperature: 0.25,
            hard: true,
        },
    )?;
    let d = ask_qa(&hard)?;
    assert_eq!(d.recommendation().arm, 1, "only 0.25 passes every gate");
    d.abandon("test")?;
    let none = build(
        0.75,
        AtMost {
            name: "own",
            temperature: -1.0,
            hard: true,
        },
    )?;
    assert!(ask_qa(&none).is_err(), "a hard gate is never crossed");
    Ok(())
}

fn ask_qa(o: &Optimizer) -> Result<tuneloop::Decision, Error> {
    o.recommend("qa", &TaskFeatures::default(), &RecommendOptions::default())
}

/// A caller's own context: a bias and one signal.
struct Ticket {
    urgent: bool,
}

impl tuneloop::Context for Ticket {
    fn features(
        &self,
        _: &dyn tuneloop::core::Featurizer,
    ) -> Result<tuneloop::core::Features, tuneloop::core::Error> {
        tuneloop::core::Features::new(vec![1.0, f64::from(u8::from(self.urgent))])
    }
}

#[test]
fn an_optimizer_learns_from_a_context_type_of_the_callers_own() -> TestResult {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 1.0])
        .build()?;
    let o = Optimizer::builder()
        .task_type("triage", TaskTypeConfig::new(arms))
        .context_dim(2)
        .seed(3)
        .build()?;
    // Urgent tickets want temperature 0, the others 1: learnable only
    // from the context.
    for i in 0..600 {
        let ticket = Ticket { urgent: i % 2 == 0 };
        let d = o.recommend("triage", &ticket, &RecommendOptions::default())?;
        let cold = d.params().temperature() == 0.0;
        let q = if cold == ticket.urgent { 0.9 } else { 0.1 };
        d.record(&TaskOutcome::success(q, 100.0))?;
    }
    let mut right = 0;
    for i in 0..200 {
        let ticket = Ticket { urgent: i % 2 == 0 };
        let d = o.recommend("triage", &ticket, &RecommendOptions::default())?;
        right += usize::from((d.params().temperature() == 0.0) == ticket.urgent);
        d.abandon("evaluation")?;
    }
    assert!(right >= 180, "{right} of 200 right");
    // TaskFeatures are refused with a message that says what to call.
    let err = o
        .recommend(
            "triage",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("Context"), "{err}");
    Ok(())
}

/// Which step of a two-step episode a decision is: context [1, step].
struct Step(u8);

impl tuneloop::Context for Step {
    fn features(
        &self,
        _: &dyn tuneloop::core::Featurizer,
    ) -> Result<tuneloop::core::Features, tuneloop::core::Error> {
        tuneloop::core::Features::new(vec![1.0, f64::from(self.0)])
    }
}

/// Arm 0 with probability `p` at step 0 and `q` at step 1.
#[derive(Debug)]
struct ByStep {
    p: f64,
    q: f64,
}

impl tuneloop::core::Policy for ByStep {
    fn kind(&self) -> &'static str {
        "by-step"
    }
    fn version(&self) -> u64 {
        0
    }
    fn context_dim(&self) -> usize {
        2
    }
    fn num_arms(&self) -> usize {
        2
    }
    fn distribution(
        &self,
        x: &tuneloop::core::Features,
        _: &[usize],
    ) -> tuneloop::core::Result<tuneloop::core::ActionDistribution> {
        let p = if x.as_slice()[1] == 0.0 {
            self.p
        } else {
            self.q
        };
        tuneloop::core::ActionDistribution::new(vec![0, 1], vec![p, 1.0 - p], false)
    }
    fn update(
        &mut self,
        _: &tuneloop::core::Features,
        _: usize,
        _: f64,
    ) -> tuneloop::core::Result<()> {
        Ok(())
    }
    fn snapshot(&self) -> tuneloop::core::Result<tuneloop::core::PolicySnapshot> {
        Err(tuneloop::core::Error::InvalidConfig {
            field: "snapshot",
            reason: "a test policy".into(),
        })
    }
}

#[test]
fn episodes_credit_every_decision_and_are_evaluated_whole() -> TestResult {
    // Two steps, arms 0 and 1 at each; the best first arm depends on the
    // second: (0, 0) pays 1, (0, 1) 0, (1, 0) 0.4, (1, 1) 0.6.
    let pay = |a: usize, b: usize| [[1.0, 0.0], [0.4, 0.6]][a][b];
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 1.0])
        .build()?;
    let log = Arc::new(MemoryLog::new());
    let o = Optimizer::builder()
        .task_type(
            "step",
            TaskTypeConfig::new(arms).policy(tuneloop::bandit::PolicyConfig::Uniform),
        )
        .context_dim(2)
        .seed(9)
        // The reward is the quality alone, so the closed form is in quality.
        .reward(
            tuneloop::core::RewardFunction::builder()
                .quality_weight(1.0)
                .latency_weight(0.0)
                .cost_weight(0.0)
                .build()?,
        )
        .decision_log(log.clone())
        .build()?;
    const N: usize = 20_000;
    for _ in 0..N {
        let mut episode = o.episode();
        let first = episode.recommend("step", &Step(0), &RecommendOptions::default())?;
        let second = episode.recommend("step", &Step(1), &RecommendOptions::default())?;
        let done = episode.finish(&TaskOutcome::success(pay(first.arm, second.arm), 100.0))?;
        assert_eq!(done.decisions, 2);
    }
    // A dropped episode abandons its decisions.
    let mut dropped = o.episode();
    dropped.recommend("step", &Step(0), &RecommendOptions::default())?;
    drop(dropped);
    assert_eq!(o.pending(), 0);
    let k = o.counters();
    assert_eq!((k.outcomes, k.abandoned), (2 * N as u64, 1));
    o.flush_log();
    let records = log.records();
    assert_eq!(records.len(), 2 * N + 1);
    let by_episode = records[..2 * N].chunks(2);
    for pair in by_episode {
        assert!(pair[0].episode_id.is_some() && pair[0].episode_id == pair[1].episode_id);
        assert_eq!(pair[0].resolution, pair[1].resolution);
    }
    assert!(matches!(
        records[2 * N].resolution,
        Resolution::Abandoned {
            reason: AbandonReason::EpisodeDropped,
            ..
        }
    ));
    assert_eq!(
        tuneloop::EPISODE_DROPPED,
        AbandonReason::EpisodeDropped.to_string()
    );
    // Offline: the candidates' values to their closed form.
    let value = |p: f64, q: f64| p * q * 1.0 + (1.0 - p) * q * 0.4 + (1.0 - p) * (1.0 - q) * 0.6;
    let evaluator = tuneloop::counterfactual::OfflineEvaluator::default();
    for (p, q) in [(1.0, 1.0), (0.0, 0.0), (0.7, 0.2)] {
        let e = evaluator.evaluate_episodes(&records[..2 * N], &ByStep { p, q })?;
        assert_eq!(
            (e.episodes, e.decisions, e.skipped_inconsistent),
            (N, 2 * N, 0)
        );
        let snipw = &e.candidate[1].1;
        let se = (snipw.normal_high - snipw.normal_low) / (2.0 * 1.96);
        assert!(
            (snipw.estimate - value(p, q)).abs() <= 4.0 * se + 1e-9,
            "({p}, {q}): {} vs {}",
            snipw.estimate,
            value(p, q)
        );
    }
    Ok(())
}

#[test]
fn an_episode_charges_the_budget_once() -> TestResult {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 1.0])
        .build()?;
    let o = Optimizer::builder()
        .task_type("step", TaskTypeConfig::new(arms))
        .budget(tuneloop::gates::BudgetConfig {
            token_limit: Some(1_000_000),
            ..tuneloop::gates::BudgetConfig::default()
        })
        .seed(2)
        .build()?;
    let mut episode = o.episode();
    for _ in 0..3 {
        episode.recommend(
            "step",
            &TaskFeatures::default(),
            &RecommendOptions::default(),
        )?;
    }
    // One outcome for the whole episode: 300 tokens in all.
    episode.finish(&TaskOutcome::success(0.8, 900.0).with_tokens(200, 100))?;
    let spent = o.snapshot()?.budget.ok_or("no budget")?;
    assert_eq!(spent.spent_tokens, 300, "charged once, not three times");
    Ok(())
}

#[test]
fn a_prompt_variant_without_a_prompt_is_refused_when_built_and_the_prompt_rides_on_the_decision()
-> TestResult {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0])
        .prompt_variants([None, Some("concise"), Some("step-by-step")])
        .build()?;
    // A typo in a registered name: `step-by-step` has no prompt.
    let misspelt = TaskTypeConfig::new(arms.clone())
        .prompt("concise", "Answer in one line.")
        .prompt("step_by_step", "Think step by step.");
    let err = Optimizer::builder()
        .task_type("qa", misspelt)
        .build()
        .err()
        .ok_or("an arm with an unregistered variant was accepted")?;
    assert!(matches!(&err, Error::PromptMissing { variant, .. } if variant == "step-by-step"));
    let message = err.to_string();
    assert!(
        message.contains("`qa`") && message.contains("concise, step_by_step"),
        "{message}"
    );

    let config = TaskTypeConfig::new(arms)
        .prompt("concise", "Answer in one line.")
        .prompt("step-by-step", "Think step by step.");
    let o = Optimizer::builder()
        .task_type("qa", config)
        .seed(3)
        .build()?;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let d = ask(&o)?;
        let expected = match d.params().prompt_variant() {
            None => None,
            Some("concise") => Some("Answer in one line."),
            Some("step-by-step") => Some("Think step by step."),
            Some(other) => return Err(format!("unexpected variant {other}").into()),
        };
        assert_eq!(d.prompt(), expected);
        *seen
            .entry(d.params().prompt_variant().map(str::to_owned))
            .or_insert(0) += 1;
        d.abandon("not called")?;
    }
    assert_eq!(seen.len(), 3, "every arm was tried: {seen:?}");
    Ok(())
}

#[test]
fn a_task_handle_decides_as_its_name_does_and_an_unknown_name_fails_once() -> TestResult {
    let c = clock();
    let by_name = optimizer(&c, Arc::new(MemoryLog::new()))?;
    let by_handle = optimizer(&c, Arc::new(MemoryLog::new()))?;
    assert!(matches!(by_handle.task("q a"), Err(Error::UnknownTaskType(t)) if t == "q a"));
    let qa = by_handle.task("qa")?;
    assert_eq!(qa.name(), "qa");
    let (features, options) = (TaskFeatures::default(), RecommendOptions::default());
    for i in 0..300u32 {
        // Same seed, same calls: the same arms with the same propensities.
        let a = by_name.recommend("qa", &features, &options)?;
        let b = qa.recommend(&features, &options)?;
        assert_eq!(a.recommendation().arm, b.recommendation().arm, "call {i}");
        assert_eq!(
            a.recommendation().propensity.to_bits(),
            b.recommendation().propensity.to_bits()
        );
        let quality = f64::from(u8::from((a.params().temperature() - 0.5).abs() < 1e-9));
        a.record(&TaskOutcome::success(quality, 100.0))?;
        b.record(&TaskOutcome::success(quality, 100.0))?;
    }
    let (learned_a, learned_b) = (by_name.learned("qa", &features)?, qa.learned(&features)?);
    assert_eq!(learned_a.choice, learned_b.choice);
    let middle = by_handle.learned("qa", &features)?.arms[1].mean_reward;
    // The middle arm (temperature 0.5) had quality 1 every time; its reward
    // is above the others' (quality 0) whatever the cost and latency terms.
    let others = by_handle.learned("qa", &features)?.arms[0].mean_reward;
    assert!(middle > others, "{middle:?} vs {others:?}");

    // A handle of one optimizer given to another is looked up by name there:
    // the decision is the other's.
    let d = by_name.recommend(&qa, &features, &options)?;
    assert_eq!((by_name.pending(), by_handle.pending()), (1, 0));
    d.abandon("not called")?;
    Ok(())
}

#[test]
fn an_answer_longer_than_its_arms_limit_is_logged_as_misapplied_and_not_learned() -> TestResult {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0])
        .max_tokens([8, 48])
        .build()?;
    let log = Arc::new(MemoryLog::new());
    let o = Optimizer::builder()
        .task_type("qa", TaskTypeConfig::new(arms))
        .decision_log(log.clone())
        .seed(1)
        .build()?;
    let (features, options) = (TaskFeatures::default(), RecommendOptions::default());
    let (mut over, mut within) = (0, 0);
    for _ in 0..40 {
        let d = o.recommend("qa", &features, &options)?;
        let limit = u64::from(d.params().max_tokens());
        // The server ignored the 8-token limit (99 tokens back); the
        // 48-token arm's answers keep to their limit.
        let tokens = if limit == 8 { 99 } else { 40 };
        if tokens > limit {
            over += 1;
        } else {
            within += 1;
        }
        d.record(&TaskOutcome::success(1.0, 100.0).with_tokens(10, tokens))?;
    }
    // Once misapplied, the 8-token arm is no longer chosen: its outcomes
    // would never be learned, so an optimistic learner would choose it for
    // ever.
    assert_eq!((over, within), (1, 39));
    assert_eq!(o.counters().misapplied, over);
    let learned = o.learned("qa", &features)?;
    let tally = |max: u32| {
        learned
            .arms
            .iter()
            .find(|a| a.params.max_tokens() == max)
            .map(|a| a.tally.outcomes)
    };
    assert_eq!(
        (tally(8), tally(48)),
        (Some(0), Some(within)),
        "nothing learned of the 8-token arm"
    );
    o.flush_log();
    let records = log.records();
    let misapplied: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.resolution {
            Resolution::Misapplied {
                reason, outcome, ..
            } => Some((reason, outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(misapplied.len() as u64, over);
    assert!(misapplied.iter().all(|(reason, outcome)| {
        reason.contains("99 tokens over the arm's max_tokens 8")
            && outcome.as_ref().is_some_and(|o| o.completion_tokens == 99)
    }));
    // Offline evaluation leaves them out too, and says so.
    let e = tuneloop::counterfactual::OfflineEvaluator::default().evaluate(
        &records,
        &tuneloop::bandit::Uniform::new(2, records[0].context.len())?,
    )?;
    assert_eq!(
        (e.rounds as u64, e.skipped_misapplied as u64),
        (within, over)
    );
    Ok(())
}
