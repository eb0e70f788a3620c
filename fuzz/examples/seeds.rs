//! Writes the seed corpus of each fuzz target: real, valid inputs for the
//! fuzzer to mutate, so that mutations reach past the first parse.
//!
//! ```sh
//! cd fuzz && cargo run --example seeds
//! ```

use std::path::Path;
use std::sync::Arc;

use tuneloop::core::{ArmSet, ManualClock, ParameterSet, TaskFeatures, TaskOutcome};
use tuneloop::rollout::RolloutConfig;
use tuneloop::counterfactual::JsonlLog;
use tuneloop::{Optimizer, TaskTypeConfig};
use tuneloop_config::RuntimeConfig;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn write(target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn main() -> Result<()> {
    // A snapshot of an optimizer that has learned a little, and its log.
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("decisions.jsonl");
    let arms = ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.5, 1.0])
        .build()?;
    let o = Optimizer::builder()
        .task_type("code", TaskTypeConfig::new(arms).rollout(RolloutConfig::default()))
        .seed(1)
        .clock(Arc::new(ManualClock::new(chrono::DateTime::UNIX_EPOCH)))
        .decision_log(Arc::new(JsonlLog::open(&log, u64::MAX, 0)?))
        .build()?;
    for i in 0..8 {
        let rec = o.recommend_parameters("code", &TaskFeatures::default(), &Default::default())?;
        if i % 4 != 3 {
            o.record_outcome(rec.decision_id, &TaskOutcome::success(0.25 * f64::from(i % 4), 100.0))?;
        }
    }
    write("snapshot", "learned.json", serde_json::to_string_pretty(&o.snapshot()?)?.as_bytes())?;
    o.flush_log();
    write("decision_log", "decisions.jsonl", &std::fs::read(&log)?)?;

    // OPE rounds: the first byte picks plain (even) or gzip (odd).
    let rounds = concat!(
        r#"{"action": 1, "reward": 1.0, "propensity": 0.5, "target": [0.25, 0.75]}"#,
        "\n",
        r#"{"action": 0, "reward": 0.0, "propensity": 0.5, "target": [0.25, 0.75], "reward_hat": [0.1, 0.9]}"#,
        "\n"
    );
    write("ope_rounds", "plain", &[b"\0".as_slice(), rounds.as_bytes()].concat())?;

    // A suite with every scorer kind.
    let suite = r#"{"name": "seed", "description": "every scorer", "cases": [
  {"id": "a", "task_type": "qa", "prompt": "Capital of Australia?", "reference": "Canberra",
   "scorer": {"kind": "exact", "expected": "Canberra"}},
  {"id": "b", "task_type": "qa", "prompt": "Say hi", "system": "Be terse.",
   "scorer": {"kind": "contains", "all": ["hi"]}},
  {"id": "e", "task_type": "qa", "prompt": "JSON", "scorer": {"kind": "json", "required_keys": ["a.b"]}},
  {"id": "f", "task_type": "qa", "prompt": "2+2", "scorer": {"kind": "numeric", "expected": 4, "tolerance": 0.5}},
  {"id": "g", "task_type": "qa", "prompt": "List", "scorer": {"kind": "length", "min_words": 2, "max_lines": 3, "min_bullets": 1}},
  {"id": "c", "task_type": "code", "prompt": "A number", "scorer": {"kind": "regex", "pattern": "^[0-9]+$"}},
  {"id": "d", "task_type": "qa", "prompt": "Who won in 2090?", "restraint": true,
   "scorer": {"kind": "judge", "rubric": "declines"}}
]}"#;
    tuneloop_eval::Suite::parse(suite, "seed")?;
    write("suite", "every-scorer.json", suite.as_bytes())?;

    // A runtime configuration with every field set.
    let mut config = RuntimeConfig {
        default_parameters: Some(ParameterSet::builder("m").temperature(0.5).build()?),
        exploration_rate: 0.1,
        ..RuntimeConfig::default()
    };
    config.feature_flags.insert("learning".into(), true);
    config.provider_overrides.insert("p".into(), Default::default());
    write("runtime_config", "full.json", serde_json::to_string_pretty(&config)?.as_bytes())?;
    Ok(())
}
