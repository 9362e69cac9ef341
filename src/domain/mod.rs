//! Validated domain values: once parsed, each type is valid everywhere it is used.

pub mod day;
mod newsletter_slug;
mod newsletter_title;
mod send_time;
mod subscriber_email;
mod subscriber_name;
mod time_zone;

pub use day::{day_bounds_utc, today_in};
pub use newsletter_slug::{NewsletterSlug, NewsletterSlugError, default_slug};
pub use newsletter_title::{NewsletterTitle, NewsletterTitleError};
pub use send_time::{SendTime, SendTimeError};
pub use subscriber_email::{EmailError, SubscriberEmail};
pub use subscriber_name::{NameError, SubscriberName};
pub use time_zone::{NewsletterTimeZone, TimeZoneError};
