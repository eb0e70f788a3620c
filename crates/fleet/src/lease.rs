//! The budget's lease: report use, renew, ask for a slice.

use std::time::Instant;

use tuneloop_gates::Allowance;
use tuneloop_store::LeaseRequest;

use tuneloop::Optimizer;

use super::{Worker, lock};

impl Worker {
    /// Reports use, renews the lease and asks for a slice when less than
    /// half a slice is left; with `release`, hands back the unused part.
    pub(super) fn renew_lease(&mut self, optimizer: &Optimizer, release: bool, only_if_low: bool) {
        let Some(budget) = optimizer.budget() else {
            return;
        };
        let now = optimizer.now();
        let (Some(window), usage) = budget.window_usage(now) else {
            return;
        };
        let config = budget.config();
        let used_tokens = usage.spent_tokens.saturating_add(usage.reserved_tokens);
        let used_cost = usage.spent_cost_usd + usage.reserved_cost_usd;
        let slice = self.config.lease_slice;
        let token_slice = config
            .token_limit
            .map_or(0, |l| ((l as f64 * slice).ceil() as u64).max(1));
        let cost_slice = config.cost_limit_usd.map_or(0.0, |l| l * slice);
        // Left of the grant of this window (nothing before the first).
        let granted = self.granted.filter(|(w, _)| *w == window).map(|(_, l)| l);
        let left_tokens = granted.map_or(0, |l| l.granted_tokens.saturating_sub(used_tokens));
        let left_cost = granted.map_or(0.0, |l| l.granted_cost_usd - used_cost);
        let low_tokens =
            config.token_limit.is_some() && left_tokens.saturating_mul(2) < token_slice;
        let low_cost = config.cost_limit_usd.is_some() && 2.0 * left_cost < cost_slice;
        // The margin: what this member may use beyond its last report;
        // half of it unreported is reported at once.
        let margin = self.config.lease_margin;
        let margin_tokens = config
            .token_limit
            .map_or(0, |l| ((l as f64 * margin).ceil() as u64).max(1));
        let margin_cost = config.cost_limit_usd.map_or(0.0, |l| l * margin);
        let (reported_tokens, reported_cost) = self.reported;
        let unreported = (token_slice > 0
            && used_tokens
                .saturating_sub(reported_tokens)
                .saturating_mul(2)
                >= margin_tokens)
            || (cost_slice > 0.0 && 2.0 * (used_cost - reported_cost) >= margin_cost);
        if only_if_low && !unreported && (self.dry || !(low_tokens || low_cost)) {
            return;
        }
        // What was used when the last grant came (nothing in a new window).
        let since = self
            .granted
            .filter(|(w, _)| *w == window)
            .map_or((0, 0.0), |_| self.used_at_grant);
        let (name, member) = (self.config.budget.clone(), self.config.member.clone());
        let req = LeaseRequest {
            budget: &name,
            member: &member,
            window_start: window,
            token_limit: config.token_limit,
            cost_limit_usd: config.cost_limit_usd,
            used_tokens,
            used_cost_usd: used_cost,
            margin_tokens,
            margin_cost_usd: margin_cost,
            // A slice, or twice what went since the last grant when that
            // is more: a busy member asks less often.
            want_tokens: if low_tokens {
                token_slice.max(used_tokens.saturating_sub(since.0).saturating_mul(2))
            } else {
                0
            },
            want_cost_usd: if low_cost {
                cost_slice.max(2.0 * (used_cost - since.1))
            } else {
                0.0
            },
            release,
            ttl: self.config.lease_ttl,
        };
        let sent = Instant::now();
        let lease = self.with_store(|store, _| store.renew_lease(&req));
        match lease {
            Some(lease) => {
                // Within the grant, and within the report plus the margin:
                // what the fleet keeps counted if this process dies now.
                let allowance = Allowance {
                    window_start: window,
                    tokens: config.token_limit.map(|_| {
                        lease
                            .granted_tokens
                            .min(used_tokens.saturating_add(margin_tokens))
                    }),
                    cost_usd: config
                        .cost_limit_usd
                        .map(|_| lease.granted_cost_usd.min(used_cost + margin_cost)),
                };
                if let Err(e) = budget.set_allowance(allowance) {
                    self.fail(&e.to_string());
                }
                self.lease_deadline = Some(sent + self.config.lease_ttl.mul_f64(0.75));
                // Asked and got nothing more: the fleet's limit is
                // reached; ask again at the next sync, not every check.
                let before = granted.map(|l| (l.granted_tokens, l.granted_cost_usd));
                self.dry = (low_tokens || low_cost)
                    && before == Some((lease.granted_tokens, lease.granted_cost_usd));
                if !self.dry {
                    self.used_at_grant = (used_tokens, used_cost);
                }
                self.reported = (used_tokens, used_cost);
                self.granted = Some((window, lease));
                let mut s = lock(&self.shared.stats);
                s.renewals += 1;
                s.lease = Some(lease);
            }
            None => {
                if self.lease_deadline.is_some_and(|d| Instant::now() >= d) {
                    // Unrenewed for too long: the fleet may reclaim the
                    // lease, so reserve nothing more than what is used.
                    self.lease_deadline = None;
                    let _ = budget.set_allowance(Allowance {
                        window_start: window,
                        tokens: Some(used_tokens),
                        cost_usd: Some(used_cost),
                    });
                    lock(&self.shared.stats).lease_lapses += 1;
                }
            }
        }
    }
}
