//! Snapshot files of arbitrary content: refused with an error, or restored
//! into an optimizer that then serves and learns, never a panic. Seed the
//! corpus with a real snapshot (`fuzz/README.md`) so that mutations reach
//! the restore.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tuneloop::core::{ArmSet, ManualClock, TaskFeatures, TaskOutcome};
use tuneloop::rollout::RolloutConfig;
use tuneloop::{Optimizer, OptimizerSnapshot, TaskTypeConfig};

fn optimizer(snapshot: Option<OptimizerSnapshot>) -> Result<Optimizer, tuneloop::Error> {
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    let mut b = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms).rollout(RolloutConfig::default()))
        .seed(1)
        .clock(Arc::new(ManualClock::new(chrono::DateTime::UNIX_EPOCH)));
    if let Some(s) = snapshot {
        b = b.restore(s);
    }
    b.build()
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("snapshot.json");
    std::fs::write(&path, data).expect("a temporary file");
    let Ok(snapshot) = OptimizerSnapshot::load(&path) else {
        return;
    };
    let Ok(o) = optimizer(Some(snapshot)) else {
        return;
    };
    for _ in 0..4 {
        let rec = o.recommend_parameters("code", &TaskFeatures::default(), &Default::default());
        if let Ok(rec) = rec {
            let _ = o.record_outcome(rec.decision_id, &TaskOutcome::success(0.5, 100.0));
        }
    }
    let _ = o.snapshot();
});
