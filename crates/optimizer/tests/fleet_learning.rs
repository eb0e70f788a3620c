//! Learning shared between optimizers through their sufficient statistics
//! (`begin_learning_sync` / `finish_learning_sync`), against an in-memory
//! store that keeps each member's contribution: the fleet's state equals
//! one learner fed every member's updates.

use std::collections::HashMap;
use std::sync::Arc;

use tuneloop::bandit::{LinUcbParams, PolicyConfig};
use tuneloop::core::{
    ArmSet, DefaultFeaturizer, Featurizer, ParameterSet, SufficientStatistics, TaskFeatures,
    TaskOutcome,
};
use tuneloop::counterfactual::MemoryLog;
use tuneloop::{Optimizer, RecommendOptions, TaskTypeConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn arms() -> Result<ArmSet, tuneloop::core::Error> {
    ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.3, 0.6, 0.9, 1.2])
        .max_tokens([256, 1024, 4096])
        .build()
}

fn outcome(p: &ParameterSet, noise: f64) -> TaskOutcome {
    let dk = (f64::from(p.max_tokens()) / 1024.0).log2();
    let q = 0.9 - 0.8 * (p.temperature() - 0.3).powi(2) - 0.05 * dk * dk + noise;
    TaskOutcome::success(q.clamp(0.0, 1.0), 500.0)
}

/// What a fleet's store keeps: each member's contribution; the fleet's
/// state is their sum.
#[derive(Default)]
struct Store {
    members: HashMap<usize, SufficientStatistics>,
}

impl Store {
    fn exchange(
        &mut self,
        member: usize,
        contribution: &SufficientStatistics,
    ) -> SufficientStatistics {
        self.members.insert(member, contribution.clone());
        self.sum(contribution)
    }

    fn sum(&self, like: &SufficientStatistics) -> SufficientStatistics {
        let mut total = like.zeros_like();
        for c in self.members.values() {
            assert!(total.accumulate(c).is_ok());
        }
        total
    }
}

fn sync(opt: &Optimizer, member: usize, store: &mut Store) -> TestResult {
    let round = opt.begin_learning_sync("code")?.ok_or("no statistics")?;
    let fleet = store.exchange(member, round.contribution());
    opt.finish_learning_sync(round, &fleet)?;
    Ok(())
}

#[test]
fn three_members_learn_as_one_learner_fed_every_update() -> TestResult {
    let logs: Vec<Arc<MemoryLog>> = (0..3).map(|_| Arc::new(MemoryLog::new())).collect();
    let opts = logs
        .iter()
        .enumerate()
        .map(|(i, log)| {
            Optimizer::builder()
                .task_type("code", TaskTypeConfig::new(arms()?))
                .seed(10 + i as u64)
                .decision_log(log.clone())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut store = Store::default();
    let task = TaskFeatures {
        title_length: 30,
        ..TaskFeatures::default()
    };
    for i in 0..3_000usize {
        let m = i % 3;
        let rec = opts[m].recommend_parameters("code", &task, &RecommendOptions::default())?;
        let noise = 0.05 * (((i * 7919) % 101) as f64 / 100.0 - 0.5);
        opts[m].record_outcome(rec.decision_id, &outcome(&rec.params, noise))?;
        // Members exchange at their own pace, one of them in halves with
        // updates in between (in flight while the store answers).
        if i % 101 == 0 {
            sync(&opts[m], m, &mut store)?;
        } else if i % 257 == 0 {
            let round = opts[0]
                .begin_learning_sync("code")?
                .ok_or("no statistics")?;
            let rec = opts[0].recommend_parameters("code", &task, &RecommendOptions::default())?;
            opts[0].record_outcome(rec.decision_id, &outcome(&rec.params, 0.0))?;
            let fleet = store.exchange(0, round.contribution());
            opts[0].finish_learning_sync(round, &fleet)?;
        }
    }
    for (m, opt) in opts.iter().enumerate() {
        sync(opt, m, &mut store)?;
    }
    // Everyone has heard everyone: a second round changes nothing and
    // every member holds the fleet's state.
    for (m, opt) in opts.iter().enumerate() {
        sync(opt, m, &mut store)?;
    }
    // One learner fed every logged update, from the logs.
    let featurizer = DefaultFeaturizer::default();
    let dim = featurizer.dim();
    let mut single =
        PolicyConfig::LinucbShared(LinUcbParams::default()).build_for_arms(&arms()?, dim)?;
    let mut updates = 0;
    for (opt, log) in opts.iter().zip(&logs) {
        opt.flush_log();
        for r in log.records() {
            let reward = r
                .resolution
                .recorded_reward()
                .ok_or("a record without its reward")?;
            let x = tuneloop::core::Features::new(r.context.clone())?;
            single.update(&x, r.arm, reward)?;
            updates += 1;
        }
    }
    assert!(updates > 3_000, "{updates} updates logged");
    let expected = single.statistics().ok_or("no statistics")?;
    let fleet = store.sum(&expected);
    assert_eq!(fleet.updates(), updates);
    let diff = fleet.max_difference(&expected);
    assert!(diff < 1e-9, "fleet differs from one learner by {diff}");
    for opt in &opts {
        let local = opt.learned_statistics("code")?.ok_or("no statistics")?;
        assert!(local.max_difference(&expected) < 1e-9);
    }
    // And so every member decides as that learner does.
    let x = featurizer.featurize(&task)?;
    let all = arms()?.all_indices();
    let one = single.distribution(&x, &all)?;
    let rec = opts[1].recommend_parameters("code", &task, &RecommendOptions::default())?;
    assert!((one.probability_of(rec.arm) - rec.propensity).abs() < 1e-9);
    Ok(())
}

#[test]
fn a_member_configured_differently_is_refused_and_keeps_its_learning() -> TestResult {
    let opt = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms()?))
        .build()?;
    let rec = opt.recommend_parameters(
        "code",
        &TaskFeatures::default(),
        &RecommendOptions::default(),
    )?;
    opt.record_outcome(rec.decision_id, &outcome(&rec.params, 0.0))?;
    let before = opt.learned_statistics("code")?.ok_or("no statistics")?;
    let round = opt.begin_learning_sync("code")?.ok_or("no statistics")?;
    let other = SufficientStatistics::zeros(1, before.dim + 1, None);
    let Err(e) = opt.finish_learning_sync(round, &other) else {
        return Err("statistics of another shape were installed".into());
    };
    assert!(e.to_string().contains("dimensions"), "{e}");
    assert_eq!(opt.learned_statistics("code")?, Some(before.clone()));
    // The next exchange still carries the update.
    let round = opt.begin_learning_sync("code")?.ok_or("no statistics")?;
    assert_eq!(round.contribution().updates(), 1);
    // A half from before a finished exchange is stale.
    let stale = opt.begin_learning_sync("code")?.ok_or("no statistics")?;
    opt.finish_learning_sync(round, &before)?;
    assert!(opt.finish_learning_sync(stale, &before).is_err());
    Ok(())
}
