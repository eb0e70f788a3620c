//! The fleet's rollout: the leader decides on every member's outcomes read
//! from the log and publishes; the others follow.

use std::time::Duration;

use tuneloop::Optimizer;
use tuneloop_core::DecisionId;

use super::{Worker, lock, push_sample};

/// How old a decision in the log must be before the leader reads it: a
/// batch still committing may carry an earlier time than one committed.
const SETTLE: Duration = Duration::from_secs(2);

/// Decisions the leader reads per query.
const READ_BATCH: u32 = 5_000;

impl Worker {
    /// The fleet's rollouts: the member holding the leader's lock decides
    /// on every member's observations and publishes; the others follow.
    pub(super) fn rollouts(&mut self, optimizer: &Optimizer) {
        let tasks = optimizer.rollout_task_types();
        if tasks.is_empty() {
            return;
        }
        let Some(leading) = self.with_store(|store, _| store.try_lead()) else {
            return;
        };
        if leading != self.leading {
            if leading {
                // Take over from where the last leader left each rollout.
                self.follow(optimizer, &tasks);
            }
            for name in &tasks {
                let _ = optimizer.with_rollout(name, |r| r.set_follower(!leading));
            }
            self.leading = leading;
            lock(&self.shared.stats).leader = leading;
            // A new leader reads the others' decisions from now on.
            self.cursor = None;
        }
        if leading {
            self.lead(optimizer, &tasks);
        } else {
            self.follow(optimizer, &tasks);
        }
    }

    fn lead(&mut self, optimizer: &Optimizer, tasks: &[&str]) {
        if self.cursor.is_none() {
            let Some(now) = self.with_store(|store, _| store.now()) else {
                return;
            };
            let start = now - chrono::Duration::from_std(SETTLE).unwrap_or_default();
            self.cursor = Some((start, DecisionId::from_u128(0)));
        }
        let prefix = optimizer.decision_id_prefix();
        // The other members' outcomes, as their logs wrote them.
        for _ in 0..20 {
            let Some(after) = self.cursor else { return };
            let Some(batch) = self
                .with_store(|store, _| store.decisions_after(after, prefix, SETTLE, READ_BATCH))
            else {
                return;
            };
            for (cursor, record) in &batch {
                self.cursor = Some(*cursor);
                if let Err(e) = optimizer.observe_for_rollout(record) {
                    tracing::debug!(error = %e, "a member's outcome did not fit the rollout");
                }
            }
            if batch.len() < READ_BATCH as usize {
                break;
            }
        }
        let Some(published) = self.with_store(|store, _| store.rollouts()) else {
            return;
        };
        let member = self.config.member.clone();
        for name in tasks {
            let from = self.reported_events.get(*name).copied().unwrap_or(0);
            let Ok(Some((phase, held, events))) = optimizer.with_rollout(name, |r| {
                let history = r.history();
                let events: Vec<serde_json::Value> = history[from.min(history.len())..]
                    .iter()
                    .filter_map(|e| serde_json::to_value(e).ok())
                    .collect();
                (r.phase(), r.is_held(), (events, history.len()))
            }) else {
                continue;
            };
            let same = published
                .iter()
                .find(|p| p.task_type == *name)
                .is_some_and(|p| p.phase == phase && p.held == held);
            if same {
                continue;
            }
            let (events, upto) = events;
            let done = self
                .with_store(|store, _| store.publish_rollout(name, phase, held, &member, &events));
            if done.is_some() {
                self.reported_events.insert((*name).to_owned(), upto);
                lock(&self.shared.stats).published += 1;
            }
        }
    }

    pub(super) fn follow(&mut self, optimizer: &Optimizer, tasks: &[&str]) {
        let Some(rows) = self.with_store(|store, _| store.rollouts()) else {
            return;
        };
        let now = optimizer.now();
        for row in rows {
            if !tasks.contains(&row.task_type.as_str()) {
                continue;
            }
            let seen = self.generations.get(&row.task_type).copied().unwrap_or(0);
            if row.generation <= seen {
                continue;
            }
            let moved = optimizer
                .with_rollout(&row.task_type, |r| {
                    r.follow(row.phase, row.held, row.generation, &row.leader, now)
                })
                .is_ok_and(|e| e.flatten().is_some());
            // A decision that changes nothing here (one this process took
            // over as leader, say) is not a move and has no lag.
            if moved {
                let lag = (chrono::Utc::now() - row.changed_at).num_microseconds();
                let mut s = lock(&self.shared.stats);
                s.followed += 1;
                if let Some(us) = lag {
                    push_sample(&mut s.follow_ms, us as f64 / 1e3);
                }
            }
            self.generations.insert(row.task_type, row.generation);
        }
    }
}
