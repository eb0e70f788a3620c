//! The fleet's rollout: the leader decides on every member's outcomes read
//! from the log and publishes; the others follow.

use std::sync::Mutex;
use std::time::Duration;

use tuneloop_core::DecisionId;
use tuneloop_rollout::RolloutManager;

use super::{Worker, push_sample};
use crate::optimizer::{Optimizer, lock};

/// How old a decision in the log must be before the leader reads it: a
/// batch still committing may carry an earlier time than one committed.
const SETTLE: Duration = Duration::from_secs(2);

/// Decisions the leader reads per query.
const READ_BATCH: u32 = 5_000;

impl Worker {
    /// The task types with a rollout.
    pub(super) fn rollout_tasks(optimizer: &Optimizer) -> Vec<(&str, &Mutex<RolloutManager>)> {
        optimizer
            .task_types()
            .into_iter()
            .filter_map(|name| {
                let (_, task) = optimizer.task(name).ok()?;
                Some((name, task.rollout.as_ref()?))
            })
            .collect()
    }

    /// The fleet's rollouts: the member holding the leader's lock decides
    /// on every member's observations and publishes; the others follow.
    pub(super) fn rollouts(&mut self, optimizer: &Optimizer) {
        let tasks = Self::rollout_tasks(optimizer);
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
            for (_, r) in &tasks {
                lock(r).set_follower(!leading);
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

    fn lead(&mut self, optimizer: &Optimizer, tasks: &[(&str, &Mutex<RolloutManager>)]) {
        if self.cursor.is_none() {
            let Some(now) = self.with_store(|store, _| store.now()) else {
                return;
            };
            let start = now - chrono::Duration::from_std(SETTLE).unwrap_or_default();
            self.cursor = Some((start, DecisionId::from_u128(0)));
        }
        let prefix = optimizer.inner.ids.prefix;
        // The other members' outcomes, as their logs wrote them.
        for _ in 0..20 {
            let Some(after) = self.cursor else { return };
            let Some(batch) = self
                .with_store(|store, _| store.decisions_after(after, prefix, SETTLE, READ_BATCH))
            else {
                return;
            };
            let now = optimizer.inner.clock.now();
            for (cursor, record) in &batch {
                self.cursor = Some(*cursor);
                let (Some(outcome), Some(reward)) = (&record.outcome, record.reward) else {
                    continue;
                };
                let Ok((_, task)) = optimizer.task(&record.task_type) else {
                    continue;
                };
                // Only what was decided in the phase the rollout is in
                // counts for it (as a late outcome would not).
                let current = task.rollout.as_ref().map(|r| lock(r).phase());
                if record.reward_defaulted || record.phase != current {
                    continue;
                }
                if let Err(e) = optimizer.observe_rollout(task, record, outcome, reward, now) {
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
        for (name, r) in tasks {
            let (phase, held, events) = {
                let r = lock(r);
                let from = self.reported_events.get(*name).copied().unwrap_or(0);
                let history = r.history();
                let events: Vec<serde_json::Value> = history[from.min(history.len())..]
                    .iter()
                    .filter_map(|e| serde_json::to_value(e).ok())
                    .collect();
                (r.phase(), r.is_held(), (events, history.len()))
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

    pub(super) fn follow(
        &mut self,
        optimizer: &Optimizer,
        tasks: &[(&str, &Mutex<RolloutManager>)],
    ) {
        let Some(rows) = self.with_store(|store, _| store.rollouts()) else {
            return;
        };
        let now = optimizer.inner.clock.now();
        for row in rows {
            let Some((_, r)) = tasks.iter().find(|(n, _)| *n == row.task_type) else {
                continue;
            };
            let seen = self.generations.get(&row.task_type).copied().unwrap_or(0);
            if row.generation <= seen {
                continue;
            }
            let moved = lock(r)
                .follow(row.phase, row.held, row.generation, &row.leader, now)
                .is_some();
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
