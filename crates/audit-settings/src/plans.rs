//! Plans and what they allow: retention bounds and SIEM destinations.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use audit_runtime::ConfigError;

use crate::model::{OrgSettings, Plan};

/// What one plan allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanPolicy {
    /// Retention of an organization on this plan without a custom value, in days.
    pub default_retention_days: u16,
    /// Shortest custom retention operators may set, in days.
    pub min_retention_days: u16,
    /// Longest custom retention operators may set, in days.
    pub max_retention_days: u16,
    /// Whether organizations on this plan may have active SIEM destinations and API tokens.
    pub streaming: bool,
}

/// An event already older than its organization's retention (see
/// [`PlansConfig::check_retained`]); the message is the reason about `$.occurred_at`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "is {days_ago} days in the past; organization `{org_id}` keeps its log for {retention_days} days, \
     so the event would be deleted as soon as it was stored"
)]
pub struct NotRetained {
    pub org_id: String,
    /// Whole days between `occurred_at` and now.
    pub days_ago: i64,
    pub retention_days: u16,
}

/// A custom retention outside its plan's bounds (see [`PlansConfig::check_retention`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{days} days is outside the {} plan's bounds ({min_days}–{max_days} days)", .plan.as_str())]
pub struct RetentionOutOfBounds {
    pub days: u16,
    pub plan: Plan,
    pub min_days: u16,
    pub max_days: u16,
}

/// The `[plans]` section: one policy per plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlansConfig {
    pub free: PlanPolicy,
    pub team: PlanPolicy,
    pub enterprise: PlanPolicy,
}

impl Default for PlansConfig {
    fn default() -> Self {
        let standard = PlanPolicy {
            default_retention_days: 90,
            min_retention_days: 1,
            max_retention_days: 90,
            streaming: false,
        };
        Self {
            free: standard.clone(),
            team: standard,
            enterprise: PlanPolicy {
                default_retention_days: 90,
                min_retention_days: 1,
                max_retention_days: 1095,
                streaming: true,
            },
        }
    }
}

impl PlansConfig {
    pub fn policy(&self, plan: Plan) -> &PlanPolicy {
        match plan {
            Plan::Free => &self.free,
            Plan::Team => &self.team,
            Plan::Enterprise => &self.enterprise,
        }
    }

    /// The retention that applies to an organization (its custom value or its plan's default).
    pub fn retention_days(&self, org: Option<&OrgSettings>) -> u16 {
        match org {
            Some(org) => org
                .retention_days
                .unwrap_or_else(|| self.policy(org.plan).default_retention_days),
            None => self.free.default_retention_days,
        }
    }

    /// Refuses an event that would be deleted as soon as it was stored: one whose
    /// `occurred_at` is already older than its organization's retention at `now` (rows expire
    /// `retention_days` after `occurred_at`). The gateway answers it with a 422, the indexer
    /// and the forwarder dead-letter it with this reason, so nobody is told "accepted" for an
    /// event that no reader will ever see.
    pub fn check_retained(
        &self,
        org_id: &str,
        org: Option<&OrgSettings>,
        occurred_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), NotRetained> {
        let retention_days = self.retention_days(org);
        let expires_at = occurred_at + time::Duration::days(i64::from(retention_days));
        if expires_at > now {
            return Ok(());
        }
        Err(NotRetained {
            org_id: org_id.to_owned(),
            days_ago: (now - occurred_at).whole_days(),
            retention_days,
        })
    }

    /// Checks a custom retention against the plan's bounds.
    pub fn check_retention(&self, plan: Plan, days: u16) -> Result<(), RetentionOutOfBounds> {
        let policy = self.policy(plan);
        if days < policy.min_retention_days || days > policy.max_retention_days {
            return Err(RetentionOutOfBounds {
                days,
                plan,
                min_days: policy.min_retention_days,
                max_days: policy.max_retention_days,
            });
        }
        Ok(())
    }

    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        for (name, policy) in [
            ("free", &self.free),
            ("team", &self.team),
            ("enterprise", &self.enterprise),
        ] {
            let key = format!("{section}.{name}");
            if policy.min_retention_days == 0 {
                return Err(ConfigError::invalid(
                    format!("{key}.min_retention_days"),
                    "must be at least 1",
                ));
            }
            if policy.min_retention_days > policy.max_retention_days {
                return Err(ConfigError::invalid(
                    format!("{key}.min_retention_days"),
                    "must not exceed max_retention_days",
                ));
            }
            if !(policy.min_retention_days..=policy.max_retention_days)
                .contains(&policy.default_retention_days)
            {
                return Err(ConfigError::invalid(
                    format!("{key}.default_retention_days"),
                    "must lie within min_retention_days..=max_retention_days",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn defaults_match_the_product() {
        let plans = PlansConfig::default();
        assert_eq!(plans.retention_days(None), 90);
        assert!(plans.check_retention(Plan::Enterprise, 1095).is_ok());
        assert!(plans.check_retention(Plan::Enterprise, 1096).is_err());
        assert_eq!(
            plans
                .check_retention(Plan::Team, 91)
                .unwrap_err()
                .to_string(),
            "91 days is outside the team plan's bounds (1–90 days)"
        );
        assert!(plans.validate("plans").is_ok());
    }

    #[test]
    fn events_older_than_their_organizations_retention_are_refused() {
        use time::macros::datetime;
        let plans = PlansConfig::default();
        let now = datetime!(2026-12-01 12:00 UTC);
        let mut enterprise = OrgSettings::new("org_big", now, "test");
        enterprise.plan = Plan::Enterprise;
        enterprise.retention_days = Some(1095);
        let old = datetime!(2025-06-01 00:00 UTC);
        let error = plans
            .check_retained("org_small", None, old, now)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "is 548 days in the past; organization `org_small` keeps its log for 90 days, \
             so the event would be deleted as soon as it was stored"
        );
        assert!(
            plans
                .check_retained("org_big", Some(&enterprise), old, now)
                .is_ok()
        );
        // The boundary: a row expires exactly `retention_days` after it occurred.
        let edge = now - time::Duration::days(90);
        assert!(plans.check_retained("org_small", None, edge, now).is_err());
        assert!(
            plans
                .check_retained("org_small", None, edge + time::Duration::SECOND, now)
                .is_ok()
        );
    }

    #[test]
    fn invalid_bounds_name_the_key() {
        let mut plans = PlansConfig::default();
        plans.team.default_retention_days = 400;
        let error = plans.validate("plans").unwrap_err().to_string();
        assert!(
            error.contains("plans.team.default_retention_days"),
            "{error}"
        );
    }
}
