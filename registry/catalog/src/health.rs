//! How health reports and missed TTLs move an instance's status.
//!
//! The rules (flap damping, as in Consul's `success_before_passing` /
//! `failures_before_critical`):
//! - a `passing` report extends the success streak and ends the failure
//!   streak; the status turns `passing` once the streak reaches
//!   `successes_before_passing` (an instance already passing stays so);
//! - a `critical` report extends the failure streak and ends the success
//!   streak; the status turns `critical` once the streak reaches
//!   `failures_before_critical`;
//! - a `warning` report sets `warning` at once and ends both streaks (it is
//!   neither a success nor a failure), so leaving it takes a full streak;
//! - until a streak reaches its threshold the status stays what it was;
//! - a TTL check missed (no report within `ttl` seconds) counts as a
//!   `critical` report with output [`TTL_EXPIRED`]; once the instance is
//!   critical for that reason, further misses change nothing and are not
//!   written again;
//! - an instance with a TTL check starts `critical` until reports bring it
//!   up (Consul starts TTL checks critical); one without a check starts
//!   `passing`, and reports to it apply at once (thresholds of 1, no TTL).

use muster_types::catalog::{CheckSpec, HealthReport, HealthStatus, InstanceHealth};
use muster_types::limits::{MAX_LEASE_TTL_SECS, MIN_LEASE_TTL_SECS};

/// The output recorded when a TTL check was not reported in time.
pub const TTL_EXPIRED: &str = "TTL expired";

/// The output of a TTL-checked instance before its first report.
pub const AWAITING_FIRST_REPORT: &str = "awaiting the first health report";

/// Longest streak threshold accepted.
pub const MAX_STREAK_THRESHOLD: u32 = 1000;

/// A refused check spec: the field and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidCheck {
    pub field: &'static str,
    pub message: String,
}

/// Checks a TTL check's settings; the error names the field (under `check.`).
pub fn validate_check(check: &CheckSpec) -> Result<(), InvalidCheck> {
    let invalid = |field, message: String| Err(InvalidCheck { field, message });
    let ttl_range = MIN_LEASE_TTL_SECS as u64..=MAX_LEASE_TTL_SECS as u64;
    if !ttl_range.contains(&check.ttl) {
        return invalid(
            "check.ttl",
            format!(
                "check ttl must be between {} and {} seconds",
                ttl_range.start(),
                ttl_range.end()
            ),
        );
    }
    for (field, value) in [
        (
            "check.successes_before_passing",
            check.successes_before_passing,
        ),
        (
            "check.failures_before_critical",
            check.failures_before_critical,
        ),
    ] {
        if !(1..=MAX_STREAK_THRESHOLD).contains(&value) {
            return invalid(
                field,
                format!("{field} must be between 1 and {MAX_STREAK_THRESHOLD}"),
            );
        }
    }
    if let Some(after) = check.deregister_critical_after
        && !ttl_range.contains(&after)
    {
        return invalid(
            "check.deregister_critical_after",
            format!(
                "deregister_critical_after must be between {} and {} seconds",
                ttl_range.start(),
                ttl_range.end()
            ),
        );
    }
    Ok(())
}

/// The health of a newly registered instance (or one whose check changed).
pub fn initial_health(check: Option<&CheckSpec>, now_ms: u64) -> InstanceHealth {
    match check {
        None => InstanceHealth {
            status: HealthStatus::Passing,
            reported_at_ms: now_ms,
            ..InstanceHealth::default()
        },
        Some(_) => InstanceHealth {
            status: HealthStatus::Critical,
            output: AWAITING_FIRST_REPORT.into(),
            consecutive_successes: 0,
            consecutive_failures: 0,
            // The TTL runs from registration.
            reported_at_ms: now_ms,
            critical_since_ms: Some(now_ms),
        },
    }
}

/// The health after one report.
pub fn apply_report(
    health: &InstanceHealth,
    check: Option<&CheckSpec>,
    report: &HealthReport,
    now_ms: u64,
) -> InstanceHealth {
    let (successes_needed, failures_needed) = check.map_or((1, 1), |c| {
        (c.successes_before_passing, c.failures_before_critical)
    });
    let mut next = health.clone();
    next.output = report.output.clone();
    next.reported_at_ms = now_ms;
    match report.status {
        HealthStatus::Passing => {
            next.consecutive_successes = health.consecutive_successes.saturating_add(1);
            next.consecutive_failures = 0;
            if next.consecutive_successes >= successes_needed {
                next.status = HealthStatus::Passing;
            }
        }
        HealthStatus::Critical => {
            next.consecutive_failures = health.consecutive_failures.saturating_add(1);
            next.consecutive_successes = 0;
            if next.consecutive_failures >= failures_needed {
                next.status = HealthStatus::Critical;
            }
        }
        HealthStatus::Warning => {
            next.consecutive_successes = 0;
            next.consecutive_failures = 0;
            next.status = HealthStatus::Warning;
        }
    }
    next.critical_since_ms = match (health.status, next.status) {
        (HealthStatus::Critical, HealthStatus::Critical) => {
            health.critical_since_ms.or(Some(now_ms))
        }
        (_, HealthStatus::Critical) => Some(now_ms),
        _ => None,
    };
    next
}

/// What the leader's sweeper does with one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// Nothing to change.
    Keep,
    /// The TTL was missed: store this health.
    Expire(InstanceHealth),
    /// Critical for longer than `deregister_critical_after`: delete it.
    Deregister,
}

/// Decides the sweeper's action for an instance with a TTL check.
///
/// `grace_from_ms` is when this node became leader: a TTL is never counted
/// as missed sooner than one TTL after it, as a new leader cannot know
/// whether reports reached the old one (leases get the same grace).
pub fn sweep(check: &CheckSpec, health: &InstanceHealth, now_ms: u64, grace_from_ms: u64) -> Sweep {
    if let (Some(after), HealthStatus::Critical, Some(since)) = (
        check.deregister_critical_after,
        health.status,
        health.critical_since_ms,
    ) && now_ms >= since.saturating_add(after.saturating_mul(1000))
    {
        return Sweep::Deregister;
    }
    let deadline = health
        .reported_at_ms
        .max(grace_from_ms)
        .saturating_add(check.ttl.saturating_mul(1000));
    if now_ms < deadline {
        return Sweep::Keep;
    }
    if health.status == HealthStatus::Critical && health.output == TTL_EXPIRED {
        return Sweep::Keep;
    }
    let missed = HealthReport {
        status: HealthStatus::Critical,
        output: TTL_EXPIRED.into(),
    };
    Sweep::Expire(apply_report(health, Some(check), &missed, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(successes: u32, failures: u32) -> CheckSpec {
        CheckSpec {
            ttl: 5,
            successes_before_passing: successes,
            failures_before_critical: failures,
            deregister_critical_after: Some(60),
        }
    }

    fn report(status: HealthStatus) -> HealthReport {
        HealthReport {
            status,
            output: format!("{status:?}"),
        }
    }

    /// Applies reports in order and returns the status after each.
    fn run(
        check: &CheckSpec,
        start: InstanceHealth,
        reports: &[HealthStatus],
    ) -> Vec<HealthStatus> {
        let mut health = start;
        reports
            .iter()
            .enumerate()
            .map(|(i, status)| {
                health = apply_report(&health, Some(check), &report(*status), 1000 + i as u64);
                health.status
            })
            .collect()
    }

    use HealthStatus::{Critical as C, Passing as P, Warning as W};

    #[test]
    fn without_a_check_an_instance_starts_passing_and_reports_apply_at_once() {
        let health = initial_health(None, 7);
        assert_eq!(health.status, P);
        let critical = apply_report(&health, None, &report(C), 8);
        assert_eq!(critical.status, C);
        assert_eq!(critical.critical_since_ms, Some(8));
        assert_eq!(apply_report(&critical, None, &report(P), 9).status, P);
    }

    #[test]
    fn a_ttl_check_starts_critical_until_enough_passing_reports() {
        let check = check(2, 3);
        let start = initial_health(Some(&check), 100);
        assert_eq!(start.status, C);
        assert_eq!(start.critical_since_ms, Some(100));
        assert_eq!(start.output, AWAITING_FIRST_REPORT);
        assert_eq!(run(&check, start, &[P, P, P]), [C, P, P]);
    }

    #[test]
    fn failures_must_be_consecutive_to_turn_critical() {
        let check = check(1, 3);
        let passing = apply_report(
            &initial_health(Some(&check), 0),
            Some(&check),
            &report(P),
            1,
        );
        assert_eq!(passing.status, P);
        // Two failures, a success, then three failures.
        assert_eq!(
            run(&check, passing, &[C, C, P, C, C, C]),
            [P, P, P, P, P, C]
        );
    }

    #[test]
    fn successes_must_be_consecutive_to_recover() {
        let check = check(3, 1);
        let start = initial_health(Some(&check), 0);
        assert_eq!(run(&check, start, &[P, P, C, P, P, P]), [C, C, C, C, C, P]);
    }

    #[test]
    fn warning_is_immediate_and_resets_both_streaks() {
        let check = check(2, 2);
        let passing = InstanceHealth {
            status: P,
            ..InstanceHealth::default()
        };
        // Warning at once; after it, one pass is not enough, nor one failure.
        assert_eq!(run(&check, passing, &[W, P, C, P, P]), [W, W, W, W, P]);
    }

    #[test]
    fn critical_since_is_kept_while_critical_and_cleared_after() {
        let check = check(1, 1);
        let health = InstanceHealth::default();
        let critical = apply_report(&health, Some(&check), &report(C), 10);
        assert_eq!(critical.critical_since_ms, Some(10));
        let still = apply_report(&critical, Some(&check), &report(C), 20);
        assert_eq!(still.critical_since_ms, Some(10));
        let warning = apply_report(&still, Some(&check), &report(W), 30);
        assert_eq!(warning.critical_since_ms, None);
    }

    #[test]
    fn a_missed_ttl_is_a_failure_decided_once_per_ttl() {
        let check = check(1, 2);
        let passing = InstanceHealth {
            status: P,
            reported_at_ms: 0,
            ..InstanceHealth::default()
        };
        assert_eq!(sweep(&check, &passing, 4_999, 0), Sweep::Keep);
        let Sweep::Expire(first) = sweep(&check, &passing, 5_000, 0) else {
            panic!("the TTL was missed");
        };
        // One failure of two: still passing, and the TTL restarts.
        assert_eq!(first.status, P);
        assert_eq!(first.output, TTL_EXPIRED);
        assert_eq!(first.consecutive_failures, 1);
        assert_eq!(sweep(&check, &first, 9_999, 0), Sweep::Keep);
        let Sweep::Expire(second) = sweep(&check, &first, 10_000, 0) else {
            panic!("the TTL was missed again");
        };
        assert_eq!(second.status, C);
        assert_eq!(second.critical_since_ms, Some(10_000));
        // Critical for a missed TTL already: nothing new to write.
        assert_eq!(sweep(&check, &second, 30_000, 0), Sweep::Keep);
    }

    #[test]
    fn a_new_leader_gives_one_ttl_of_grace() {
        let check = check(1, 1);
        let health = InstanceHealth {
            status: P,
            reported_at_ms: 0,
            ..InstanceHealth::default()
        };
        // Long overdue, but this node leads since 50 s.
        assert_eq!(sweep(&check, &health, 54_000, 50_000), Sweep::Keep);
        assert!(matches!(
            sweep(&check, &health, 55_000, 50_000),
            Sweep::Expire(_)
        ));
    }

    #[test]
    fn critical_too_long_is_deregistered() {
        let check = check(1, 1);
        let health = initial_health(Some(&check), 1_000);
        assert!(matches!(
            sweep(&check, &health, 60_999, 0),
            Sweep::Expire(_)
        ));
        assert_eq!(sweep(&check, &health, 61_000, 0), Sweep::Deregister);
        let forever = CheckSpec {
            deregister_critical_after: None,
            ..check
        };
        assert_ne!(sweep(&forever, &health, 10_000_000, 0), Sweep::Deregister);
    }

    #[test]
    fn check_settings_are_validated_with_the_field() {
        assert!(validate_check(&check(1, 1)).is_ok());
        let field = |c: CheckSpec| validate_check(&c).unwrap_err().field;
        assert_eq!(
            field(CheckSpec {
                ttl: 0,
                ..check(1, 1)
            }),
            "check.ttl"
        );
        assert_eq!(field(check(0, 1)), "check.successes_before_passing");
        assert_eq!(field(check(1, 1001)), "check.failures_before_critical");
        assert_eq!(
            field(CheckSpec {
                deregister_critical_after: Some(0),
                ..check(1, 1)
            }),
            "check.deregister_critical_after"
        );
    }
}
