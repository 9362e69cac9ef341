//! The console's dashboard: the list, its last 30 days, the queue and the latest digests.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{Duration, NaiveDate};

use super::format::format_time;
use super::{Console, ConsoleError, Layout, render};
use crate::db::dashboard::{self, DayCount, Movement, PeopleCounts, QueueHealth};
use crate::db::states::SubscriptionStatus;
use crate::db::{self, digests, newsletters};

/// Days the chart covers, today included.
const CHART_DAYS: i64 = 30;
/// Digest issues listed.
const RECENT_ISSUES: i64 = 10;
/// "Failed recently" means within this many days.
const RECENT_FAILURE_DAYS: i64 = 7;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(dashboard));
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    people: PeopleCounts,
    /// Subscribers marked bounced: no email goes to them.
    bounced: i64,
    newsletters: Vec<NewsletterRow>,
    chart: Chart,
    queue: QueueHealth,
    oldest_pending_age: Option<String>,
    issues: Vec<IssueRow>,
}

struct NewsletterRow {
    title: String,
    confirmed: i64,
    pending: i64,
    unsubscribed: i64,
    total: i64,
}

struct IssueRow {
    id: i64,
    newsletter: String,
    issue_date: String,
    story_count: i32,
    fanned_out_at: Option<String>,
    sent: i64,
    failed: i64,
    remaining: i64,
}

async fn dashboard(console: Console) -> Result<HttpResponse, ConsoleError> {
    let now = db::now();
    let today = now.date();
    let chart_start = (today - Duration::days(CHART_DAYS - 1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or(now);
    let failures_since = now - Duration::days(RECENT_FAILURE_DAYS);
    let figures = db::run(console.pool(), move |conn| {
        let by_status = dashboard::subscriptions_by_status(conn)?;
        let people = dashboard::people(conn, &by_status)?;
        let bounced = crate::db::bounces::count_bounced(conn)?;
        let all = newsletters::all(conn)?;
        let signups = dashboard::per_day(conn, Movement::Signups, chart_start)?;
        let unsubs = dashboard::per_day(conn, Movement::Unsubscribes, chart_start)?;
        let queue = dashboard::queue_health(conn, failures_since)?;
        let recent = dashboard::recent_issues(conn, RECENT_ISSUES)?;
        let mut issues = Vec::with_capacity(recent.len());
        for issue in recent {
            let counts = digests::counts(conn, issue.id)?;
            issues.push(IssueRow {
                id: issue.id,
                newsletter: issue.newsletter,
                issue_date: issue.issue_date.format("%Y-%m-%d").to_string(),
                story_count: issue.story_count,
                fanned_out_at: issue.fanned_out_at.map(format_time),
                sent: counts.sent,
                failed: counts.failed,
                remaining: counts.remaining(),
            });
        }
        let newsletters = all
            .into_iter()
            .map(|n| {
                let count = |status: SubscriptionStatus| {
                    by_status
                        .iter()
                        .filter(|c| c.newsletter_id == n.id && c.status == status)
                        .map(|c| c.count)
                        .sum()
                };
                let (confirmed, pending, unsubscribed) = (
                    count(SubscriptionStatus::Confirmed),
                    count(SubscriptionStatus::Pending),
                    count(SubscriptionStatus::Unsubscribed),
                );
                NewsletterRow {
                    total: confirmed + pending + unsubscribed,
                    confirmed,
                    pending,
                    unsubscribed,
                    title: n.title,
                }
            })
            .collect();
        Ok((people, bounced, newsletters, signups, unsubs, queue, issues))
    })
    .await?;
    let (people, bounced, newsletters, signups, unsubs, queue, issues) = figures;
    render(&DashboardPage {
        layout: console.layout("dashboard"),
        people,
        bounced,
        newsletters,
        chart: Chart::build(today, &signups, &unsubs),
        oldest_pending_age: queue.oldest_pending.map(|at| format_age(now - at)),
        queue,
        issues,
    })
}

/// "3 min", "5 h 10 min", "2 days 4 h": precise enough to tell a stuck queue.
fn format_age(age: Duration) -> String {
    let minutes = age.num_minutes().max(0);
    match minutes {
        0 => "under a minute".into(),
        1..60 => format!("{minutes} min"),
        60..1440 => format!("{} h {} min", minutes / 60, minutes % 60),
        _ => {
            let days = minutes / 1440;
            format!(
                "{days} day{} {} h",
                if days == 1 { "" } else { "s" },
                (minutes % 1440) / 60
            )
        }
    }
}

/// The 30-day bar chart, laid out here so the template only places numbers; the page's
/// CSP forbids inline styles, so sizes are SVG attributes and colours come from classes.
struct Chart {
    width: u32,
    height: u32,
    plot_left: f64,
    plot_right: f64,
    baseline: f64,
    top: f64,
    middle: f64,
    max: i64,
    half: i64,
    days: Vec<ChartDay>,
    total_signups: i64,
    total_unsubs: i64,
    first_day: String,
    last_day: String,
}

struct ChartDay {
    date: String,
    label: Option<String>,
    label_x: f64,
    signups: i64,
    unsubs: i64,
    signups_x: f64,
    signups_y: f64,
    signups_height: f64,
    unsubs_x: f64,
    unsubs_y: f64,
    unsubs_height: f64,
    bar_width: f64,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Chart {
    const WIDTH: u32 = 720;
    const HEIGHT: u32 = 220;
    const LEFT: f64 = 40.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 28.0;

    fn build(today: NaiveDate, signups: &[DayCount], unsubs: &[DayCount]) -> Self {
        let count = |list: &[DayCount], day: NaiveDate| {
            list.iter()
                .filter(|c| c.day == day)
                .map(|c| c.count)
                .sum::<i64>()
        };
        let first = today - Duration::days(CHART_DAYS - 1);
        let figures: Vec<(NaiveDate, i64, i64)> = (0..CHART_DAYS)
            .map(|i| {
                let day = first + Duration::days(i);
                (day, count(signups, day), count(unsubs, day))
            })
            .collect();
        let peak = figures.iter().map(|&(_, s, u)| s.max(u)).max().unwrap_or(0);
        // An even scale, so the half-way grid line is a whole number.
        let max = if peak <= 1 { 2 } else { peak + peak % 2 };
        let plot_width = f64::from(Self::WIDTH) - Self::LEFT - Self::RIGHT;
        let plot_height = f64::from(Self::HEIGHT) - Self::TOP - Self::BOTTOM;
        let baseline = Self::TOP + plot_height;
        let slot = plot_width / CHART_DAYS as f64;
        let bar_width = round1(slot * 0.38);
        let scale = |n: i64| round1(plot_height * n as f64 / max as f64);
        let days = figures
            .iter()
            .enumerate()
            .map(|(i, &(day, s, u))| {
                let left = Self::LEFT + slot * i as f64;
                let (sh, uh) = (scale(s), scale(u));
                // Day labels every five days, counted back from today so today has one.
                let labelled = (CHART_DAYS - 1 - i as i64) % 5 == 0;
                ChartDay {
                    date: day.format("%Y-%m-%d").to_string(),
                    label: labelled.then(|| day.format("%b %-d").to_string()),
                    label_x: round1(left + slot / 2.0),
                    signups: s,
                    unsubs: u,
                    signups_x: round1(left + slot * 0.1),
                    signups_y: round1(baseline - sh),
                    signups_height: sh,
                    unsubs_x: round1(left + slot * 0.52),
                    unsubs_y: round1(baseline - uh),
                    unsubs_height: uh,
                    bar_width,
                }
            })
            .collect();
        Chart {
            width: Self::WIDTH,
            height: Self::HEIGHT,
            plot_left: Self::LEFT,
            plot_right: f64::from(Self::WIDTH) - Self::RIGHT,
            baseline,
            top: Self::TOP,
            middle: round1(Self::TOP + plot_height / 2.0),
            max,
            half: max / 2,
            days,
            total_signups: figures.iter().map(|f| f.1).sum(),
            total_unsubs: figures.iter().map(|f| f.2).sum(),
            first_day: first.format("%B %-d").to_string(),
            last_day: today.format("%B %-d, %Y").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_chart_has_thirty_days_scaled_to_the_busiest() {
        let today = day("2026-11-26");
        let signups = [
            DayCount {
                day: today,
                count: 8,
            },
            DayCount {
                day: day("2026-11-20"),
                count: 4,
            },
        ];
        let unsubs = [DayCount {
            day: today,
            count: 2,
        }];
        let chart = Chart::build(today, &signups, &unsubs);
        assert_eq!(chart.days.len(), 30);
        assert_eq!(chart.days[0].date, "2026-10-28");
        assert_eq!(chart.max, 8);
        let last = chart.days.last().unwrap();
        assert_eq!(last.signups_y, chart.top, "the busiest day reaches the top");
        assert_eq!(last.unsubs_height * 4.0, last.signups_height);
        assert!(last.label.is_some(), "today is labelled");
        assert_eq!(chart.days.iter().filter(|d| d.label.is_some()).count(), 6);
        assert_eq!((chart.total_signups, chart.total_unsubs), (12, 2));
    }

    #[test]
    fn an_empty_month_draws_flat_bars() {
        let chart = Chart::build(day("2026-03-01"), &[], &[]);
        assert!(chart.days.iter().all(|d| d.signups_height == 0.0));
        assert_eq!(chart.max, 2);
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_age(Duration::seconds(20)), "under a minute");
        assert_eq!(format_age(Duration::minutes(75)), "1 h 15 min");
        assert_eq!(format_age(Duration::hours(49)), "2 days 1 h");
    }
}

mod filters {
    use crate::web::admin::format::thousands_separated;

    /// `{{ n|thousands }}`: see [`thousands_separated`].
    #[askama::filter_fn]
    pub fn thousands(value: &i64, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(thousands_separated(*value))
    }
}
