//! What kind of failure each error is, and that causes are kept: the
//! kinds a caller branches on (a command line's exit status, a server's
//! response) for failures made on purpose.

use std::error::Error as _;

use tuneloop::core::{ArmSet, ErrorKind, TaskFeatures};
use tuneloop::gates::BudgetConfig;
use tuneloop::{Error, Optimizer, OptimizerSnapshot, RecommendOptions, TaskTypeConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn arms() -> Result<ArmSet, tuneloop::core::Error> {
    ArmSet::grid()
        .models(["m"])
        .temperatures([0.0, 0.7])
        .max_tokens([1_000])
        .build()
}

#[test]
fn a_spent_budget_is_refused_and_a_bad_call_is_bad_input() -> TestResult {
    let o = Optimizer::builder()
        .task_type("qa", TaskTypeConfig::new(arms()?))
        .budget(BudgetConfig {
            token_limit: Some(2_500),
            ..BudgetConfig::default()
        })
        .seed(1)
        .build()?;
    let features = TaskFeatures::default();
    let options = RecommendOptions::default();
    // Each decision reserves its arm's 1,000 tokens until it is recorded.
    let first = o.recommend("qa", &features, &options)?;
    let second = o.recommend("qa", &features, &options)?;
    let refused = o
        .recommend("qa", &features, &options)
        .err()
        .ok_or("a third reservation of 1,000 fit in 2,500 tokens")?;
    assert_eq!(refused.kind(), ErrorKind::Refused, "{refused}");
    drop((first, second));

    let unknown = o
        .recommend("no such task", &features, &options)
        .err()
        .ok_or("an unknown task type was served")?;
    assert_eq!(unknown.kind(), ErrorKind::BadInput, "{unknown}");
    Ok(())
}

#[test]
fn a_snapshot_that_cannot_be_read_is_io_and_one_that_does_not_parse_is_bad_input() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = OptimizerSnapshot::load(&dir.path().join("absent.json"))
        .err()
        .ok_or("a missing file loaded")?;
    assert_eq!(missing.kind(), ErrorKind::Io);
    let io = missing
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .ok_or("the I/O error is not the source")?;
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

    let torn = dir.path().join("torn.json");
    std::fs::write(&torn, b"{\"schema_version\": 1,\n \"task_types\": {")?;
    let bad = OptimizerSnapshot::load(&torn)
        .err()
        .ok_or("a torn file loaded")?;
    assert_eq!(bad.kind(), ErrorKind::BadInput);
    let json = bad
        .source()
        .and_then(|s| s.downcast_ref::<serde_json::Error>())
        .ok_or("the parse error is not the source")?;
    assert_eq!(json.line(), 2, "{json}");
    assert!(matches!(bad, Error::SnapshotFormat { .. }));
    Ok(())
}

#[test]
fn a_snapshot_without_task_types_is_refused_not_restored_as_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("empty.json");
    std::fs::write(
        &path,
        br#"{"schema_version": 1, "decision_counter": 0, "task_types": {}}"#,
    )?;
    let snapshot = OptimizerSnapshot::load(&path)?;
    let err = Optimizer::builder()
        .task_type("qa", TaskTypeConfig::new(arms()?))
        .restore(snapshot)
        .build()
        .err()
        .ok_or("an empty snapshot was restored")?;
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.to_string().contains("no task types"), "{err}");
    Ok(())
}
