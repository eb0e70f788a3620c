//! What a fleet shares through the store, against a real PostgreSQL:
//! members' learning, budget leases, outcomes left for another member.
//! `TUNELOOP_DATABASE_URL=$(scripts/local-postgres start) cargo test -p
//! tuneloop-store`; skipped without it.

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::{TestResult, fresh, server, sql};
use tuneloop::core::{DecisionId, SufficientStatistics, TaskOutcome};
use tuneloop_store::{Error, LeaseRequest, Store};

fn window() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default()
}

fn request<'a>(member: &'a str, used: u64, want: u64) -> LeaseRequest<'a> {
    LeaseRequest {
        budget: "default",
        member,
        window_start: window(),
        token_limit: Some(1_000),
        cost_limit_usd: Some(1.0),
        used_tokens: used,
        used_cost_usd: 0.0,
        margin_tokens: 10,
        margin_cost_usd: 0.0,
        want_tokens: want,
        want_cost_usd: 0.1,
        release: false,
        ttl: Duration::from_secs(60),
    }
}

fn statistics(
    values: &[(usize, [f64; 2], f64)],
) -> Result<SufficientStatistics, tuneloop::core::Error> {
    let mut s = SufficientStatistics::zeros(2, 2, None);
    for (block, x, r) in values {
        s.add(*block, x, *r)?;
    }
    Ok(s)
}

#[test]
fn the_fleets_learning_is_the_sum_of_its_members_latest_contributions() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "learning")?;
    let store = Store::connect(&url)?;
    let a1 = statistics(&[(0, [1.0, 2.0], 0.5)])?;
    let a2 = statistics(&[(0, [1.0, 2.0], 0.5), (1, [0.0, 1.0], 1.0)])?;
    let b = statistics(&[(1, [3.0, -1.0], 0.25)])?;
    store.exchange_learning("code", "m1", "a", &a1)?;
    store.exchange_learning("code", "m1", "a", &a2)?;
    let fleet = store.exchange_learning("code", "m1", "b", &b)?;
    // Reference: both members' observations added by hand.
    let expected = statistics(&[
        (0, [1.0, 2.0], 0.5),
        (1, [0.0, 1.0], 1.0),
        (1, [3.0, -1.0], 0.25),
    ])?;
    assert_eq!(fleet, expected);
    // An older contribution arriving late (a retried push) changes nothing.
    let again = store.exchange_learning("code", "m1", "a", &a1)?;
    assert_eq!(again, expected);
    // Task types and models are apart: a deployment with other arms
    // learns on its own.
    assert_eq!(store.learning("chat", "m1", &a1)?, a1.zeros_like());
    let wide = SufficientStatistics::zeros(2, 3, None);
    let other = store.exchange_learning("code", "m2", "c", &wide)?;
    assert_eq!(other, wide);
    assert_eq!(store.learning("code", "m1", &a1)?, expected);
    // A stored row of the model that does not fit is named.
    sql(
        &url,
        "UPDATE tuneloop_learning SET model = 'm1' WHERE member = 'c'",
    )?;
    let Err(e) = store.learning("code", "m1", &a1) else {
        return Err("statistics of another shape were summed".into());
    };
    assert!(matches!(e, Error::BadRecord { .. }), "{e}");
    assert!(e.to_string().contains("member `c`"), "{e}");
    sql(&url, "DELETE FROM tuneloop_learning WHERE member = 'c'")?;
    // So is a row edited into something that is not statistics.
    sql(
        &url,
        "UPDATE tuneloop_learning SET statistics = '{\"dim\": \"two\"}' WHERE member = 'b'",
    )?;
    let Err(e) = store.learning("code", "m1", &a1) else {
        return Err("a broken row was summed".into());
    };
    assert!(e.to_string().contains("member `b`"), "{e}");
    Ok(())
}

#[test]
fn leases_never_grant_past_the_limit_and_expired_ones_return() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "leases")?;
    let mut store = Store::connect(&url)?;
    let a = store.renew_lease(&request("a", 0, 400))?;
    let b = store.renew_lease(&request("b", 0, 400))?;
    let c = store.renew_lease(&request("c", 0, 400))?;
    assert_eq!(
        (a.granted_tokens, b.granted_tokens, c.granted_tokens),
        (400, 400, 200)
    );
    assert_eq!(c.fleet_granted_tokens, 1_000);
    // The cost limit holds too: 0.1 each.
    assert!((c.fleet_granted_cost_usd - 0.3).abs() < 1e-12);
    // Reporting use and asking for more, with nothing left: nothing more.
    let a = store.renew_lease(&request("a", 350, 100))?;
    assert_eq!(a.granted_tokens, 400);
    // c hands back what it did not use.
    let c = store.renew_lease(&LeaseRequest {
        release: true,
        ..request("c", 50, 0)
    })?;
    assert_eq!(c.granted_tokens, 50);
    let a = store.renew_lease(&request("a", 390, 200))?;
    assert_eq!(a.granted_tokens, 550);
    // b stops renewing: once its lease expires, what it did not report as
    // used, less its margin of 10, returns to the fleet.
    store.renew_lease(&LeaseRequest {
        ttl: Duration::from_millis(1),
        ..request("b", 120, 0)
    })?;
    std::thread::sleep(Duration::from_millis(20));
    let a = store.renew_lease(&request("a", 500, 500))?;
    assert_eq!(a.reclaimed, 1);
    // 1,000 − c's 50 − b's 120 used and 10 of margin = 820 for a.
    assert_eq!(a.granted_tokens, 820);
    let fleet = store.budget("default", window())?.ok_or("no budget")?;
    assert_eq!(fleet.granted_tokens, 1_000);
    assert_eq!((fleet.leases, fleet.reclaimed), (3, 1));
    assert_eq!(fleet.used_tokens, 500 + 120 + 50);
    assert!(store.budget("other", window())?.is_none());
    Ok(())
}

#[test]
fn members_leasing_at_once_are_served_one_after_another() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "concurrent")?;
    Store::connect(&url)?;
    let threads: Vec<_> = (0..8)
        .map(|m| {
            let url = url.clone();
            std::thread::spawn(move || -> Result<u64, Error> {
                let mut store = Store::connect(&url)?;
                let member = format!("m{m}");
                let mut granted = 0;
                for _ in 0..25 {
                    granted = store
                        .renew_lease(&request(&member, granted, 7))?
                        .granted_tokens;
                }
                Ok(granted)
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        total += t.join().map_err(|_| "a member panicked")??;
    }
    // 8 × 25 × 7 = 1,400 asked for, 1,000 there.
    assert_eq!(total, 1_000);
    Ok(())
}

#[test]
fn an_outcome_left_for_another_member_reaches_only_that_member() -> TestResult {
    let Some(url) = server() else { return Ok(()) };
    let url = fresh(&url, "outcomes")?;
    let store = Store::connect(&url)?;
    let mine = DecisionId::from_u128((7u128 << 64) | 3);
    let theirs = DecisionId::from_u128((8u128 << 64) | 3);
    let outcome = TaskOutcome::success(0.75, 900.0).with_cost(0.002);
    assert!(store.post_outcome(mine, &outcome)?);
    assert!(!store.post_outcome(mine, &TaskOutcome::success(0.1, 1.0))?);
    assert!(store.post_outcome(theirs, &outcome)?);
    let got = store.outcomes_for(7, 100)?;
    assert_eq!(got, vec![(mine, outcome)]);
    assert_eq!(store.forget_outcomes(&[mine])?, 1);
    assert!(store.outcomes_for(7, 100)?.is_empty());
    assert_eq!(store.outcomes_for(8, 100)?.len(), 1);
    sql(&url, "UPDATE tuneloop_outcomes SET outcome = '[1, 2]'")?;
    let Err(e) = store.outcomes_for(8, 100) else {
        return Err("a broken outcome was read".into());
    };
    assert!(e.to_string().contains(&theirs.to_string()), "{e}");
    Ok(())
}
