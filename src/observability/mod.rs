//! What the process counts for Prometheus: the reader's path (signups, confirmations,
//! unsubscribes), the delivery worker (sent, failed, retried, SMTP latency) and the web
//! server (request latency by route). Counting is an atomic increment on a label set that
//! borrows `'static` names, so the send path allocates nothing for it. The queue's gauges
//! are read from the database at scrape time ([`scrape`]), so every process reports the
//! shared queue truthfully.

pub mod listener;
pub mod scrape;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric name starts with this.
pub const PREFIX: &str = "spacedigest";

/// The email kinds stored in `outbound_emails.kind`; anything else is counted as `other`.
const KINDS: [&str; 3] = ["confirmation", "welcome", "digest"];

/// The `kind` label of an email, borrowed from [`KINDS`] so that counting allocates nothing.
pub fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|known| **known == kind)
        .copied()
        .unwrap_or("other")
}

/// How a reader left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeHow {
    /// A mailbox provider's RFC 8058 one-click POST.
    OneClick,
    /// The button on the page behind the emailed link.
    Button,
    /// An operator, in the console.
    Console,
}

impl UnsubscribeHow {
    const fn as_str(self) -> &'static str {
        match self {
            Self::OneClick => "one_click",
            Self::Button => "button",
            Self::Console => "console",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HowLabel {
    how: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    /// actix's match pattern (`/archive/{slug}`), never the path: bounded, and no tokens.
    route: String,
    status: u16,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// SMTP sends: 1 ms to about 33 s, doubling.
fn smtp_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// HTTP requests: 0.5 ms to about 16 s, doubling.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The process's counters and histograms; one per running application.
pub struct Metrics {
    registry: Registry,
    signups: Family<OutcomeLabel, Counter>,
    confirmations: Counter,
    unsubscribes: Family<HowLabel, Counter>,
    sent: Family<KindLabel, Counter>,
    failed: Family<KindLabel, Counter>,
    retried: Family<KindLabel, Counter>,
    smtp_send: Histograms<KindLabel>,
    requests: Histograms<RequestLabels>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let signups = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "signups",
            "Valid signups answered \"check your inbox\", by what they led to: confirmation_queued, already_subscribed, throttled (per-address limits)",
            signups.clone(),
        );
        let confirmations = Counter::default();
        registry.register(
            "confirmations",
            "Confirmation links used to confirm (repeats of a used link are not counted)",
            confirmations.clone(),
        );
        let unsubscribes = Family::<HowLabel, Counter>::default();
        registry.register(
            "unsubscribes",
            "Unsubscribes that changed something, by how: one_click (RFC 8058), button, console",
            unsubscribes.clone(),
        );
        let sent = Family::<KindLabel, Counter>::default();
        registry.register(
            "emails_sent",
            "Emails the SMTP server accepted (250), by kind",
            sent.clone(),
        );
        let failed = Family::<KindLabel, Counter>::default();
        registry.register(
            "emails_failed",
            "Emails that failed for good (a 5xx, or temporary failures until the give-up time), by kind",
            failed.clone(),
        );
        let retried = Family::<KindLabel, Counter>::default();
        registry.register(
            "emails_retried",
            "Attempts that failed temporarily (4xx, connection trouble, timeout) and were scheduled again, by kind",
            retried.clone(),
        );
        let smtp_send: Histograms<KindLabel> = Family::new_with_constructor(smtp_buckets);
        registry.register(
            "smtp_send_duration_seconds",
            "One SMTP send, from handing the message to the connection to the server's reply (connecting included when a new connection is needed), by kind",
            smtp_send.clone(),
        );
        let requests: Histograms<RequestLabels> = Family::new_with_constructor(request_buckets);
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by method, route pattern (unmatched for no route) and status",
            requests.clone(),
        );
        for kind in KINDS {
            // Present at zero from the start, so a rate() over them is defined.
            let label = KindLabel { kind };
            drop(sent.get_or_create(&label));
            drop(failed.get_or_create(&label));
            drop(retried.get_or_create(&label));
        }
        Self {
            registry,
            signups,
            confirmations,
            unsubscribes,
            sent,
            failed,
            retried,
            smtp_send,
            requests,
        }
    }

    /// A valid signup was answered; `outcome` is the signup outcome's label
    /// (`SignupOutcome::label`), so the counter needs no type of the reader's path.
    pub fn signup(&self, outcome: &'static str) {
        self.signups.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// A confirmation link confirmed a subscription.
    pub fn confirmation(&self) {
        self.confirmations.inc();
    }

    /// A reader left.
    pub fn unsubscribe(&self, how: UnsubscribeHow) {
        self.unsubscribes
            .get_or_create(&HowLabel { how: how.as_str() })
            .inc();
    }

    /// One SMTP send of an email of `kind` took `elapsed`, whatever its outcome.
    pub fn smtp_send(&self, kind: &str, elapsed: Duration) {
        self.smtp_send
            .get_or_create(&KindLabel {
                kind: kind_label(kind),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Outcomes the recorder has committed.
    pub fn delivered(&self, tally: &DeliveryTally) {
        for (i, kind) in LABELS.iter().enumerate() {
            let label = KindLabel { kind };
            let [sent, failed, retried] = tally.counts[i];
            if sent > 0 {
                self.sent.get_or_create(&label).inc_by(sent);
            }
            if failed > 0 {
                self.failed.get_or_create(&label).inc_by(failed);
            }
            if retried > 0 {
                self.retried.get_or_create(&label).inc_by(retried);
            }
        }
    }

    /// One HTTP request was answered; `route` is the match pattern, `None` when no route matched.
    pub fn request(&self, method: &str, route: Option<String>, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method_label(method),
            route: route.unwrap_or_else(|| "unmatched".to_owned()),
            status,
        };
        self.requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The process's metrics, in the registry's order.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// [`KINDS`] and `other`, in [`DeliveryTally`]'s order.
const LABELS: [&str; 4] = ["confirmation", "welcome", "digest", "other"];

/// Outcomes of one committed group, counted without allocating.
#[derive(Debug, Default)]
pub struct DeliveryTally {
    /// Per [`LABELS`] entry: sent, failed, retried.
    counts: [[u64; 3]; 4],
}

impl DeliveryTally {
    fn slot(kind: &str) -> usize {
        let label = kind_label(kind);
        LABELS.iter().position(|l| *l == label).unwrap_or(3)
    }

    /// An email of `kind` was accepted.
    pub fn sent(&mut self, kind: &str, count: u64) {
        self.counts[Self::slot(kind)][0] += count;
    }

    /// An email of `kind` failed for good.
    pub fn failed(&mut self, kind: &str) {
        self.counts[Self::slot(kind)][1] += 1;
    }

    /// An email of `kind` will be tried again.
    pub fn retried(&mut self, kind: &str) {
        self.counts[Self::slot(kind)][2] += 1;
    }
}

/// Methods as `'static` labels; anything unusual is `other` (bounded cardinality).
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_and_methods_are_bounded() {
        assert_eq!(kind_label("digest"), "digest");
        assert_eq!(kind_label("something-new"), "other");
        assert_eq!(method_label("BREW"), "other");
        let mut tally = DeliveryTally::default();
        tally.sent("digest", 3);
        tally.failed("bogus");
        tally.retried("welcome");
        assert_eq!(tally.counts[2][0], 3);
        assert_eq!(tally.counts[3][1], 1);
        assert_eq!(tally.counts[1][2], 1);
    }
}
