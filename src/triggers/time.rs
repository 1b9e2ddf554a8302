//! Time schedulers: the cron-like fields of a `time` scheduler as a croner
//! pattern, and the decision the megatron takes at each tick: is a due time
//! inside (last check, now]?
//!
//! A megatron that was down over several due times starts one build, not a
//! burst, and says how many it skipped.

use crate::config::spec::SchedulerSpec;
use crate::config::zone::parse_zone;
use crate::megatron::queue::StartRequest;
use crate::megatron::state::State;
use crate::sync::read;
use chrono::{DateTime, FixedOffset, Utc};
use std::str::FromStr;

/// A time scheduler's schedule.
#[derive(Debug, Clone)]
pub struct TimeSchedule {
    /// The croner pattern: minute hour day-of-month month day-of-week.
    pub pattern: String,
    cron: croner::Cron,
}

/// What a check of a schedule found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The latest due time in the window: the one build to start.
    pub at: DateTime<Utc>,
    /// Earlier due times in the window that get no build of their own.
    pub skipped: u32,
}

impl TimeSchedule {
    /// The schedule of a `time` scheduler; `None` for other types.
    pub fn of(spec: &SchedulerSpec) -> Option<Result<TimeSchedule, String>> {
        match spec {
            SchedulerSpec::Time {
                month,
                day_of_month,
                day_of_week,
                hour,
                minute,
                ..
            } => Some(TimeSchedule::parse(&format!(
                "{minute} {hour} {day_of_month} {month} {day_of_week}"
            ))),
            _ => None,
        }
    }

    pub fn parse(pattern: &str) -> Result<TimeSchedule, String> {
        let cron = croner::Cron::from_str(pattern)
            .map_err(|e| format!("invalid schedule {pattern:?}: {e}"))?;
        Ok(TimeSchedule {
            pattern: pattern.to_string(),
            cron,
        })
    }

    /// The first due time strictly after `after`, in the given zone.
    pub fn next_after(&self, after: DateTime<Utc>, zone: FixedOffset) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The due times in (last, now]: the latest is the one to build, the
    /// others are counted as skipped (at most `limit` are looked at).
    pub fn due(&self, last: DateTime<Utc>, now: DateTime<Utc>, zone: FixedOffset) -> Option<Due> {
        const LIMIT: u32 = 10_000;
        let mut found: Option<Due> = None;
        let mut cursor = last;
        for _ in 0..LIMIT {
            match self.next_after(cursor, zone) {
                Some(at) if at <= now => {
                    found = Some(match found {
                        None => Due { at, skipped: 0 },
                        Some(previous) => Due {
                            at,
                            skipped: previous.skipped + 1,
                        },
                    });
                    cursor = at;
                }
                _ => break,
            }
        }
        found
    }
}

impl State {
    /// One pass of the time schedulers at `now`: every repo's time
    /// schedulers whose due time passed since their last check start their
    /// builders, once however many due times passed. The first check of a
    /// scheduler only records the time. Returns the builds started.
    pub fn time_pass(&self, now: DateTime<Utc>) -> crate::megatron::error::Result<usize> {
        let zone = parse_zone(&read(&self.cybertron).spec.time_zone)
            .unwrap_or_else(|_| FixedOffset::east_opt(0).expect("zero offset"));
        let graphs: Vec<_> = read(&self.repos)
            .values()
            .filter_map(|r| r.graph.clone())
            .collect();
        let now_ms = now.timestamp_millis().max(0) as u64;
        let mut started = 0;
        for graph in graphs {
            for (name, scheduler) in &graph.graph.schedulers {
                let Some(Ok(schedule)) = TimeSchedule::of(&scheduler.spec) else {
                    continue;
                };
                let repo = &graph.repo;
                let last = self.store.time_checked(repo, name)?;
                self.store.set_time_checked(repo, name, now_ms)?;
                let Some(last) =
                    last.and_then(|ms| DateTime::<Utc>::from_timestamp_millis(ms as i64))
                else {
                    continue;
                };
                let Some(due) = schedule.due(last, now, zone) else {
                    continue;
                };
                let skipped = if due.skipped > 0 {
                    tracing::warn!(scheduler = %name, repo = %repo, skipped = due.skipped, "due times missed while the megatron was down; building once");
                    format!(
                        "; {} earlier due times missed while the megatron was down",
                        due.skipped
                    )
                } else {
                    String::new()
                };
                for builder in &scheduler.builders {
                    let request = StartRequest {
                        builder: builder.clone(),
                        parameters: scheduler.spec.parameters().clone(),
                        revision: None,
                        branch: None,
                        pins: Default::default(),
                        reason: format!(
                            "time scheduler {name} ({}) due at {}{skipped}",
                            schedule.pattern,
                            due.at.with_timezone(&zone).format("%Y-%m-%d %H:%M %:z")
                        ),
                        by: None,
                        trigger: crate::config::secrets::TriggerKind::Time,
                    };
                    match self.start_build(request) {
                        Ok(_) => started += 1,
                        Err(e) => {
                            tracing::error!(builder = %builder, error = %e, "starting a timed build")
                        }
                    }
                }
            }
        }
        // No flush here: a build started was flushed by start_build, and a
        // check time lost to a crash only makes the next check look back a
        // little further (sled writes it out within half a second anyway).
        Ok(started)
    }
}

/// Runs the time schedulers forever, checking at the megatron's background
/// interval against the real clock.
pub async fn time_loop(state: std::sync::Arc<State>) {
    let mut tick = tokio::time::interval(state.timing.lease_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.blocking(|s| s.time_pass(Utc::now())).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(builds = n, "time schedulers started builds");
                state.queue_changed.notify_waiters();
                state.announce();
            }
            Err(e) => tracing::error!(error = %e, "running the time schedulers"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn utc() -> FixedOffset {
        parse_zone("UTC").expect("utc")
    }

    #[test]
    fn next_fire_times_follow_the_fields() {
        // (pattern, after, next)
        let table = [
            ("0 3 * * *", "2026-11-25T02:59:00Z", "2026-11-25T03:00:00Z"),
            ("0 3 * * *", "2026-11-25T03:00:00Z", "2026-11-26T03:00:00Z"),
            ("15 * * * *", "2026-11-25T10:20:00Z", "2026-11-25T11:15:00Z"),
            (
                "*/10 * * * *",
                "2026-11-25T10:21:00Z",
                "2026-11-25T10:30:00Z",
            ),
            (
                "0 9-17 * * *",
                "2026-11-25T17:30:00Z",
                "2026-11-26T09:00:00Z",
            ),
            (
                "0 1,13 * * *",
                "2026-11-25T02:00:00Z",
                "2026-11-25T13:00:00Z",
            ),
            // 2026-11-25 is a Wednesday; 1-5 is Monday to Friday.
            (
                "0 0 * * 1-5",
                "2026-11-27T01:00:00Z",
                "2026-11-30T00:00:00Z",
            ),
            ("0 0 * * 0", "2026-11-25T00:00:00Z", "2026-11-29T00:00:00Z"),
            ("30 6 1 * *", "2026-11-25T00:00:00Z", "2026-12-01T06:30:00Z"),
            ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            (
                "0 12 * 1,7 *",
                "2026-11-25T00:00:00Z",
                "2027-01-01T12:00:00Z",
            ),
        ];
        for (pattern, after, next) in table {
            let schedule = TimeSchedule::parse(pattern).expect(pattern);
            assert_eq!(
                schedule.next_after(at(after), utc()),
                Some(at(next)),
                "{pattern} after {after}"
            );
        }
    }

    #[test]
    fn the_zone_shifts_the_hours() {
        let schedule = TimeSchedule::parse("0 3 * * *").expect("pattern");
        let plus_two = parse_zone("+02:00").expect("zone");
        assert_eq!(
            schedule.next_after(at("2026-11-25T00:00:00Z"), plus_two),
            Some(at("2026-11-25T01:00:00Z"))
        );
    }

    #[test]
    fn a_window_over_many_due_times_fires_once_and_counts_the_rest() {
        let schedule = TimeSchedule::parse("0 * * * *").expect("pattern");
        let due = schedule.due(
            at("2026-11-25T00:30:00Z"),
            at("2026-11-25T05:10:00Z"),
            utc(),
        );
        assert_eq!(
            due,
            Some(Due {
                at: at("2026-11-25T05:00:00Z"),
                skipped: 4
            })
        );
        assert_eq!(
            schedule.due(
                at("2026-11-25T05:00:00Z"),
                at("2026-11-25T05:59:59Z"),
                utc()
            ),
            None
        );
        let exactly = schedule.due(
            at("2026-11-25T05:59:59Z"),
            at("2026-11-25T06:00:00Z"),
            utc(),
        );
        assert_eq!(exactly.map(|d| d.skipped), Some(0));
        let _ = Utc.timestamp_opt(0, 0);
    }

    #[test]
    fn scheduler_specs_become_patterns() {
        let spec = SchedulerSpec::Time {
            parameters: Default::default(),
            month: "*".into(),
            day_of_month: "*".into(),
            day_of_week: "1-5".into(),
            hour: "3".into(),
            minute: "0".into(),
        };
        let schedule = TimeSchedule::of(&spec)
            .expect("a time scheduler")
            .expect("valid");
        assert_eq!(schedule.pattern, "0 3 * * 1-5");
        assert!(TimeSchedule::of(&SchedulerSpec::Force {
            parameters: Default::default()
        })
        .is_none());
    }
}
