//! What a fleet shares besides its log: learned state (each member's
//! contribution of sufficient statistics), budget leases, and outcomes
//! recorded by a member other than the one that decided.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tuneloop_core::{DecisionId, Phase, SufficientStatistics, TaskOutcome};
use tuneloop_counterfactual::LoggedDecision;

use crate::{Error, Result, Store, parse_decision, query_error};

/// A member's report on one budget and what it asks for: the request of
/// [`Store::renew_lease`].
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRequest<'a> {
    /// The budget's name (one per optimizer configuration, say "default").
    pub budget: &'a str,
    /// The member asking.
    pub member: &'a str,
    /// The calendar window the lease is for.
    pub window_start: DateTime<Utc>,
    /// The fleet's token limit per window (`None`: unlimited). The last
    /// member to renew sets the limit of the window, so a new limit
    /// deployed mid-window applies from the next renewal on.
    pub token_limit: Option<u64>,
    /// The fleet's cost limit per window, USD (`None`: unlimited).
    pub cost_limit_usd: Option<f64>,
    /// Tokens this member spent and holds reserved in the window.
    pub used_tokens: u64,
    /// Cost this member spent and holds reserved in the window.
    pub used_cost_usd: f64,
    /// The most this member may use beyond what it reported, in tokens,
    /// before it reports again (it holds its reservations to that): when
    /// its lease is reclaimed, this much of it stays counted as spent.
    pub margin_tokens: u64,
    /// The same in cost.
    pub margin_cost_usd: f64,
    /// Tokens it asks for on top of what it was granted (0: only report).
    pub want_tokens: u64,
    /// Cost it asks for on top of what it was granted.
    pub want_cost_usd: f64,
    /// Hand back what is granted and not used (the member stops).
    pub release: bool,
    /// How long the lease lasts without a renewal.
    pub ttl: Duration,
}

/// What a member may spend in a window: the answer of
/// [`Store::renew_lease`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    /// Tokens granted to this member in the window, in all.
    pub granted_tokens: u64,
    /// Cost granted to this member in the window, in all.
    pub granted_cost_usd: f64,
    /// Tokens granted to the whole fleet in the window (this member's
    /// included), after reclaiming expired leases.
    pub fleet_granted_tokens: u64,
    /// Cost granted to the whole fleet in the window.
    pub fleet_granted_cost_usd: f64,
    /// Leases of other members that had expired and were reclaimed now.
    pub reclaimed: u64,
}

/// A budget's standing across the fleet, from [`Store::budget`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetBudget {
    /// The token limit of the window.
    pub token_limit: Option<u64>,
    /// The cost limit of the window.
    pub cost_limit_usd: Option<f64>,
    /// Tokens granted to all members.
    pub granted_tokens: u64,
    /// Cost granted to all members.
    pub granted_cost_usd: f64,
    /// Tokens members reported as spent or reserved.
    pub used_tokens: u64,
    /// Cost members reported as spent or reserved.
    pub used_cost_usd: f64,
    /// Members holding a lease, live or expired.
    pub leases: u64,
    /// Leases that expired and were reclaimed.
    pub reclaimed: u64,
}

/// A task type's rollout as the fleet's leader decided it: the answer of
/// [`Store::rollouts`].
#[derive(Debug, Clone, PartialEq)]
pub struct FleetRollout {
    /// The task type.
    pub task_type: String,
    /// The number of the leader's decision (1 for the first).
    pub generation: u64,
    /// The phase.
    pub phase: Phase,
    /// Whether promotion is held.
    pub held: bool,
    /// The member that decided.
    pub leader: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// One event of the fleet's rollout provenance, from
/// [`Store::rollout_events`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRollout {
    /// The decision it belongs to.
    pub generation: u64,
    /// The member that decided.
    pub leader: String,
    /// The event, as `RolloutEvent` serializes.
    pub event: serde_json::Value,
    /// When it was stored.
    pub recorded_at: DateTime<Utc>,
}

/// A place in the decision log: a record's `written_at` and decision id
/// (see [`Store::decisions_after`]).
pub type LogCursor = (DateTime<Utc>, DecisionId);

/// The advisory lock the fleet's leader holds ("tlleader" in ASCII).
const LEADER_LOCK: i64 = 0x746c_6c65_6164_6572;

fn parse_phase(s: &str) -> Option<Phase> {
    [Phase::Shadow, Phase::Canary, Phase::Guarded, Phase::General]
        .into_iter()
        .find(|p| p.as_str() == s)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn bad_learning(task_type: &str, member: &str, message: String) -> Error {
    Error::BadRecord {
        decision_id: format!("learning of `{task_type}` by member `{member}`"),
        message,
    }
}

/// The uuid range of a process's decision ids (see `tuneloop`'s ids: a
/// 64-bit per-process prefix and a counter).
fn id_range(prefix: u64) -> (String, String) {
    let lo = DecisionId::from_u128(u128::from(prefix) << 64);
    let hi = DecisionId::from_u128((u128::from(prefix) << 64) | u128::from(u64::MAX));
    (lo.to_string(), hi.to_string())
}

impl Store {
    /// Stores `contribution` as `member`'s learning of `task_type` with
    /// `model` (in place of what it stored before; an older contribution,
    /// with fewer updates, never replaces a newer one) and returns the
    /// fleet's state: the sum of every member's contribution of the same
    /// task type and model.
    ///
    /// `model` names what the statistics are of (the arms, the learner's
    /// kind and dimension): a deployment that changes them gets a new
    /// model, and its members learn apart from the old ones instead of
    /// summing statistics of different things.
    ///
    /// # Errors
    /// [`Error::BadRecord`] when a stored contribution is not valid
    /// statistics or does not fit this one (the message names the
    /// member), [`Error::Query`].
    pub fn exchange_learning(
        &self,
        task_type: &str,
        model: &str,
        member: &str,
        contribution: &SufficientStatistics,
    ) -> Result<SufficientStatistics> {
        let json = serde_json::to_string(contribution)
            .map_err(|e| bad_learning(task_type, member, e.to_string()))?;
        let updates = to_i64(contribution.updates());
        self.runtime.block_on(async {
            self.client
                .execute(
                    "INSERT INTO tuneloop_learning (task_type, model, member, updates, statistics)
                     VALUES ($1, $2, $3, $4, $5::text::json)
                     ON CONFLICT (task_type, model, member) DO UPDATE
                       SET updates = excluded.updates, statistics = excluded.statistics,
                           updated_at = now()
                       WHERE tuneloop_learning.updates <= excluded.updates",
                    &[&task_type, &model, &member, &updates, &json],
                )
                .await
                .map_err(query_error("storing a member's learning"))?;
            Ok(())
        })?;
        self.learning(task_type, model, contribution)
    }

    /// The fleet's learned state of `task_type` with `model`: the sum of
    /// every member's contribution, in the shape of `like` (zero when no
    /// member stored any).
    ///
    /// # Errors
    /// As [`exchange_learning`](Self::exchange_learning).
    pub fn learning(
        &self,
        task_type: &str,
        model: &str,
        like: &SufficientStatistics,
    ) -> Result<SufficientStatistics> {
        self.runtime.block_on(async {
            let rows = self
                .client
                .query(
                    "SELECT member, statistics::text FROM tuneloop_learning
                     WHERE task_type = $1 AND model = $2 ORDER BY member",
                    &[&task_type, &model],
                )
                .await
                .map_err(query_error("reading the fleet's learning"))?;
            let mut total = like.zeros_like();
            for row in &rows {
                let member: String = row.get(0);
                let text: String = row.get(1);
                let s: SufficientStatistics = serde_json::from_str(&text)
                    .map_err(|e| bad_learning(task_type, &member, e.to_string()))?;
                total
                    .accumulate(&s)
                    .map_err(|e| bad_learning(task_type, &member, e.to_string()))?;
            }
            Ok(total)
        })
    }

    /// The models `task_type` has learning stored for (one per deployment
    /// whose arms or learner differ), sorted.
    ///
    /// # Errors
    /// [`Error::Query`].
    pub fn learning_models(&self, task_type: &str) -> Result<Vec<String>> {
        self.runtime.block_on(async {
            let rows = self
                .client
                .query(
                    "SELECT DISTINCT model FROM tuneloop_learning WHERE task_type = $1 ORDER BY model",
                    &[&task_type],
                )
                .await
                .map_err(query_error("listing the learning's models"))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Reports a member's use of a budget's window, renews its lease and
    /// grants it what it asks for as far as the limit allows, in one
    /// transaction under the budget's row lock (members renewing together
    /// are served one after another). Leases of other members that
    /// expired are reclaimed first: each keeps what its member last
    /// reported as used plus its margin (what it may have used since),
    /// the rest returns to the fleet.
    ///
    /// The sum of every member's grant never passes the limit; a member
    /// that keeps its use within its grant and within its last report
    /// plus its margin (as `tuneloop::fleet` does through
    /// `Budget::set_allowance`) cannot overspend the fleet, even when it
    /// dies and its lease is reclaimed.
    ///
    /// # Errors
    /// [`Error::Query`].
    pub fn renew_lease(&mut self, req: &LeaseRequest<'_>) -> Result<Lease> {
        let ttl_ms = i64::try_from(req.ttl.as_millis()).unwrap_or(i64::MAX);
        let token_limit = req.token_limit.map(to_i64);
        let used_tokens = to_i64(req.used_tokens);
        self.runtime.block_on(async {
            let tx = self
                .client
                .transaction()
                .await
                .map_err(query_error("starting a lease renewal"))?;
            tx.execute(
                "INSERT INTO tuneloop_budgets (name, window_start, token_limit, cost_limit)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name, window_start) DO UPDATE
                   SET token_limit = excluded.token_limit, cost_limit = excluded.cost_limit",
                &[
                    &req.budget,
                    &req.window_start,
                    &token_limit,
                    &req.cost_limit_usd,
                ],
            )
            .await
            .map_err(query_error("locking the budget"))?;
            let reclaimed = tx
                .execute(
                    "UPDATE tuneloop_leases
                     SET granted_tokens = LEAST(granted_tokens, used_tokens + margin_tokens),
                         granted_cost = LEAST(granted_cost, used_cost + margin_cost),
                         reclaimed = true
                     WHERE budget = $1 AND window_start = $2 AND member <> $3
                       AND NOT reclaimed AND expires_at < now()
                       AND (granted_tokens > used_tokens + margin_tokens
                            OR granted_cost > used_cost + margin_cost)",
                    &[&req.budget, &req.window_start, &req.member],
                )
                .await
                .map_err(query_error("reclaiming expired leases"))?;
            let others = tx
                .query_one(
                    "SELECT coalesce(sum(granted_tokens), 0)::bigint,
                            coalesce(sum(granted_cost), 0)::float8
                     FROM tuneloop_leases
                     WHERE budget = $1 AND window_start = $2 AND member <> $3",
                    &[&req.budget, &req.window_start, &req.member],
                )
                .await
                .map_err(query_error("summing the fleet's leases"))?;
            let (others_tokens, others_cost): (i64, f64) = (others.get(0), others.get(1));
            let mine = tx
                .query_opt(
                    "SELECT granted_tokens, granted_cost FROM tuneloop_leases
                     WHERE budget = $1 AND window_start = $2 AND member = $3",
                    &[&req.budget, &req.window_start, &req.member],
                )
                .await
                .map_err(query_error("reading the member's lease"))?;
            let (had_tokens, had_cost) = mine.map_or((0i64, 0.0f64), |r| (r.get(0), r.get(1)));
            // What the member used is granted whatever happened (a lease
            // reclaimed while the member was cut off keeps its use).
            let base_tokens = had_tokens.max(used_tokens);
            let base_cost = had_cost.max(req.used_cost_usd);
            let (granted_tokens, granted_cost) = if req.release {
                (used_tokens, req.used_cost_usd)
            } else {
                let free_tokens = token_limit.map_or(i64::MAX, |l| {
                    l.saturating_sub(others_tokens)
                        .saturating_sub(base_tokens)
                        .max(0)
                });
                let free_cost = req
                    .cost_limit_usd
                    .map_or(f64::INFINITY, |l| (l - others_cost - base_cost).max(0.0));
                (
                    base_tokens.saturating_add(to_i64(req.want_tokens).min(free_tokens)),
                    base_cost + req.want_cost_usd.max(0.0).min(free_cost),
                )
            };
            tx.execute(
                "INSERT INTO tuneloop_leases (budget, window_start, member, granted_tokens,
                   granted_cost, used_tokens, used_cost, margin_tokens, margin_cost, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $10,
                         now() + $8 * interval '1 millisecond')
                 ON CONFLICT (budget, window_start, member) DO UPDATE
                   SET granted_tokens = excluded.granted_tokens,
                       granted_cost = excluded.granted_cost,
                       used_tokens = excluded.used_tokens, used_cost = excluded.used_cost,
                       margin_tokens = excluded.margin_tokens,
                       margin_cost = excluded.margin_cost,
                       expires_at = excluded.expires_at, reclaimed = false",
                &[
                    &req.budget,
                    &req.window_start,
                    &req.member,
                    &granted_tokens,
                    &granted_cost,
                    &used_tokens,
                    &req.used_cost_usd,
                    &(ttl_ms as f64),
                    &to_i64(req.margin_tokens),
                    &req.margin_cost_usd.max(0.0),
                ],
            )
            .await
            .map_err(query_error("writing the member's lease"))?;
            tx.commit()
                .await
                .map_err(query_error("committing a lease renewal"))?;
            Ok(Lease {
                granted_tokens: to_u64(granted_tokens),
                granted_cost_usd: granted_cost,
                fleet_granted_tokens: to_u64(others_tokens.saturating_add(granted_tokens)),
                fleet_granted_cost_usd: others_cost + granted_cost,
                reclaimed,
            })
        })
    }

    /// A budget's window across the fleet, if any member leased from it.
    ///
    /// # Errors
    /// [`Error::Query`].
    pub fn budget(&self, name: &str, window_start: DateTime<Utc>) -> Result<Option<FleetBudget>> {
        self.runtime.block_on(async {
            let client = &self.client;
            let Some(limits) = client
                .query_opt(
                    "SELECT token_limit, cost_limit FROM tuneloop_budgets
                     WHERE name = $1 AND window_start = $2",
                    &[&name, &window_start],
                )
                .await
                .map_err(query_error("reading a budget"))?
            else {
                return Ok(None);
            };
            let r = client
                .query_one(
                    "SELECT coalesce(sum(granted_tokens), 0)::bigint,
                            coalesce(sum(granted_cost), 0)::float8,
                            coalesce(sum(used_tokens), 0)::bigint,
                            coalesce(sum(used_cost), 0)::float8,
                            count(*), count(*) FILTER (WHERE reclaimed)
                     FROM tuneloop_leases WHERE budget = $1 AND window_start = $2",
                    &[&name, &window_start],
                )
                .await
                .map_err(query_error("summing a budget's leases"))?;
            Ok(Some(FleetBudget {
                token_limit: limits.get::<_, Option<i64>>(0).map(to_u64),
                cost_limit_usd: limits.get(1),
                granted_tokens: to_u64(r.get(0)),
                granted_cost_usd: r.get(1),
                used_tokens: to_u64(r.get(2)),
                used_cost_usd: r.get(3),
                leases: to_u64(r.get(4)),
                reclaimed: to_u64(r.get(5)),
            }))
        })
    }

    /// Leaves the outcome of `decision_id` for the member that decided it
    /// (which reads it with [`outcomes_for`](Self::outcomes_for) and
    /// records it as if it had been recorded there). An outcome already
    /// left for the same decision is kept; returns whether this one was
    /// stored.
    ///
    /// # Errors
    /// [`Error::Query`]; [`Error::BadRecord`] when it does not serialize.
    pub fn post_outcome(&self, decision_id: DecisionId, outcome: &TaskOutcome) -> Result<bool> {
        let json = serde_json::to_string(outcome).map_err(|e| Error::BadRecord {
            decision_id: format!("outcome of {decision_id}"),
            message: e.to_string(),
        })?;
        let id = decision_id.to_string();
        self.runtime.block_on(async {
            let client = &self.client;
            let n = client
                .execute(
                    "INSERT INTO tuneloop_outcomes (decision_id, outcome)
                     VALUES ($1::text::uuid, $2::text::json) ON CONFLICT (decision_id) DO NOTHING",
                    &[&id, &json],
                )
                .await
                .map_err(query_error("leaving an outcome"))?;
            Ok(n == 1)
        })
    }

    /// Outcomes left for decisions whose ids carry `prefix` (a process's
    /// decisions), at most `limit`, oldest first. They stay until
    /// [`forget_outcomes`](Self::forget_outcomes): a member that dies
    /// before recording them leaves them for an operator to see.
    ///
    /// # Errors
    /// [`Error::BadRecord`] naming an outcome that is not one,
    /// [`Error::Query`].
    pub fn outcomes_for(&self, prefix: u64, limit: u32) -> Result<Vec<(DecisionId, TaskOutcome)>> {
        let (lo, hi) = id_range(prefix);
        self.runtime.block_on(async {
            let client = &self.client;
            let rows = client
                .query(
                    "SELECT decision_id::text, outcome::text FROM tuneloop_outcomes
                     WHERE decision_id BETWEEN $1::text::uuid AND $2::text::uuid
                     ORDER BY posted_at LIMIT $3",
                    &[&lo, &hi, &i64::from(limit)],
                )
                .await
                .map_err(query_error("reading outcomes left for a member"))?;
            rows.iter()
                .map(|row| {
                    let id: String = row.get(0);
                    let text: String = row.get(1);
                    let bad = |message: String| Error::BadRecord {
                        decision_id: format!("outcome of {id}"),
                        message,
                    };
                    let decision: DecisionId = id.parse().map_err(|e| bad(format!("{e}")))?;
                    let outcome: TaskOutcome =
                        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
                    Ok((decision, outcome))
                })
                .collect()
        })
    }

    /// Removes the outcomes of these decisions (recorded by their member).
    ///
    /// # Errors
    /// [`Error::Query`].
    pub fn forget_outcomes(&self, ids: &[DecisionId]) -> Result<u64> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        self.runtime.block_on(async {
            let client = &self.client;
            client
                .execute(
                    "DELETE FROM tuneloop_outcomes WHERE decision_id = ANY($1::text[]::uuid[])",
                    &[&ids],
                )
                .await
                .map_err(query_error("removing recorded outcomes"))
        })
    }

    /// Tries to become (or checks that this connection still is) the
    /// fleet's leader: a session advisory lock, held until the connection
    /// closes, so a leader that dies frees it at once and the next member
    /// to try takes over.
    ///
    /// # Errors
    /// [`Error::Query`].
    pub fn try_lead(&mut self) -> Result<bool> {
        if self.leading {
            // Still ours as long as the session lives.
            if self.client.is_closed() {
                self.leading = false;
            } else {
                return Ok(true);
            }
        }
        let got: bool = self.runtime.block_on(async {
            self.client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                .await
                .map_err(query_error("trying the leader's lock"))
                .map(|r| r.get(0))
        })?;
        self.leading = got;
        Ok(got)
    }

    /// Whether this connection holds the leader's lock (as of the last
    /// [`try_lead`](Self::try_lead)).
    pub fn is_leading(&self) -> bool {
        self.leading && !self.client.is_closed()
    }

    /// Stores the leader's decision for `task_type` (the phase and hold)
    /// with the events that led to it, in one transaction; returns its
    /// generation.
    ///
    /// # Errors
    /// [`Error::Query`].
    pub fn publish_rollout(
        &mut self,
        task_type: &str,
        phase: Phase,
        held: bool,
        leader: &str,
        events: &[serde_json::Value],
    ) -> Result<u64> {
        let texts: Vec<String> = events.iter().map(ToString::to_string).collect();
        self.runtime.block_on(async {
            let tx = self
                .client
                .transaction()
                .await
                .map_err(query_error("starting a rollout decision"))?;
            let row = tx
                .query_one(
                    "INSERT INTO tuneloop_rollouts (task_type, generation, phase, held, leader)
                     VALUES ($1, 1, $2, $3, $4)
                     ON CONFLICT (task_type) DO UPDATE
                       SET generation = tuneloop_rollouts.generation + 1, phase = excluded.phase,
                           held = excluded.held, leader = excluded.leader, changed_at = now()
                     RETURNING generation",
                    &[&task_type, &phase.as_str(), &held, &leader],
                )
                .await
                .map_err(query_error("writing a rollout decision"))?;
            let generation: i64 = row.get(0);
            tx.execute(
                "INSERT INTO tuneloop_rollout_events (task_type, generation, leader, event)
                 SELECT $1, $2, $3, e::json FROM unnest($4::text[]) AS e",
                &[&task_type, &generation, &leader, &texts],
            )
            .await
            .map_err(query_error("writing rollout events"))?;
            tx.commit()
                .await
                .map_err(query_error("committing a rollout decision"))?;
            Ok(to_u64(generation))
        })
    }

    /// Every task type's rollout as the leader last decided it.
    ///
    /// # Errors
    /// [`Error::BadRecord`] naming a row whose phase is not one,
    /// [`Error::Query`].
    pub fn rollouts(&self) -> Result<Vec<FleetRollout>> {
        self.runtime.block_on(async {
            let rows = self
                .client
                .query(
                    "SELECT task_type, generation, phase, held, leader, changed_at
                     FROM tuneloop_rollouts ORDER BY task_type",
                    &[],
                )
                .await
                .map_err(query_error("reading the fleet's rollouts"))?;
            rows.iter()
                .map(|r| {
                    let task_type: String = r.get(0);
                    let phase: String = r.get(2);
                    let phase = parse_phase(&phase).ok_or_else(|| Error::BadRecord {
                        decision_id: format!("rollout of `{task_type}`"),
                        message: format!(
                            "phase `{phase}` is not one of shadow, canary, guarded, general"
                        ),
                    })?;
                    Ok(FleetRollout {
                        generation: to_u64(r.get(1)),
                        phase,
                        held: r.get(3),
                        leader: r.get(4),
                        changed_at: r.get(5),
                        task_type,
                    })
                })
                .collect()
        })
    }

    /// The fleet's rollout provenance of `task_type`: every event the
    /// leaders stored, oldest first.
    ///
    /// # Errors
    /// [`Error::BadRecord`], [`Error::Query`].
    pub fn rollout_events(&self, task_type: &str) -> Result<Vec<LoggedRollout>> {
        self.runtime.block_on(async {
            let rows = self
                .client
                .query(
                    "SELECT generation, leader, event::text, recorded_at
                     FROM tuneloop_rollout_events WHERE task_type = $1 ORDER BY id",
                    &[&task_type],
                )
                .await
                .map_err(query_error("reading rollout events"))?;
            rows.iter()
                .map(|r| {
                    let text: String = r.get(2);
                    let event = serde_json::from_str(&text).map_err(|e| Error::BadRecord {
                        decision_id: format!("rollout event of `{task_type}`"),
                        message: e.to_string(),
                    })?;
                    Ok(LoggedRollout {
                        generation: to_u64(r.get(0)),
                        leader: r.get(1),
                        event,
                        recorded_at: r.get(3),
                    })
                })
                .collect()
        })
    }

    /// Decisions other processes wrote after the `(written_at, decision
    /// id)` cursor `after`, oldest first, at most `limit`, leaving out
    /// those whose ids carry `exclude_prefix` (this process's) and those
    /// written less than `settle` ago (a batch still committing may carry
    /// an earlier time than one committed). With each, its cursor. Records
    /// are checked as [`decisions`](Self::decisions) checks them.
    ///
    /// # Errors
    /// [`Error::BadRecord`] naming a record that is not a decision,
    /// [`Error::Query`].
    pub fn decisions_after(
        &self,
        after: LogCursor,
        exclude_prefix: u64,
        settle: Duration,
        limit: u32,
    ) -> Result<Vec<(LogCursor, LoggedDecision)>> {
        let (lo, hi) = id_range(exclude_prefix);
        let settle_ms = settle.as_millis().min(i64::MAX as u128) as f64;
        let cursor_id = after.1.to_string();
        self.runtime.block_on(async {
            let rows = self
                .client
                .query(
                    "SELECT written_at, decision_id::text, record::text FROM tuneloop_decisions
                     WHERE (written_at, decision_id) > ($1, $2::text::uuid)
                       AND written_at < now() - $3 * interval '1 millisecond'
                       AND decision_id NOT BETWEEN $4::text::uuid AND $5::text::uuid
                     ORDER BY written_at, decision_id LIMIT $6",
                    &[
                        &after.0,
                        &cursor_id,
                        &settle_ms,
                        &lo,
                        &hi,
                        &i64::from(limit),
                    ],
                )
                .await
                .map_err(query_error("reading other members' decisions"))?;
            rows.iter()
                .map(|row| {
                    let at: DateTime<Utc> = row.get(0);
                    let d = parse_decision(&row.get::<_, String>(1), &row.get::<_, String>(2))?;
                    Ok(((at, d.decision_id), d))
                })
                .collect()
        })
    }

    /// The database's clock now (cursors are in its time).
    ///
    /// # Errors
    /// [`Error::Query`].
    pub fn now(&self) -> Result<DateTime<Utc>> {
        self.runtime.block_on(async {
            self.client
                .query_one("SELECT now()", &[])
                .await
                .map_err(query_error("reading the database's clock"))
                .map(|r| r.get(0))
        })
    }
}
