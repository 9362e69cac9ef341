//! The typed states stored as text: each is an enum that diesel reads and writes as
//! `Text` on both backends, so a `match` on one is exhaustive and a typo does not compile.
//! They live below every table module that uses them, so no two of those modules need
//! each other for a state.
//!
//! A new one is one [`text_enum!`] invocation: its variants with their stored texts.

use crate::config::MailStream;

/// Declares an enum stored as `Text`: `as_str`, `parse`, `Display`, and `ToSql`/`FromSql`
/// for SQLite, PostgreSQL and the [`MultiBackend`](super::MultiBackend) of
/// [`DbConnection`](super::DbConnection). Reading a text that names no variant is a
/// deserialisation error naming the type and the text.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }

            /// The variant stored as `text`.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }

            fn from_stored(text: &str) -> diesel::deserialize::Result<Self> {
                Self::parse(text).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " {:?} stored"), text).into()
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::sqlite::Sqlite> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::sqlite::Sqlite>>::to_sql(self.as_str(), out)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, $crate::db::MultiBackend> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, $crate::db::MultiBackend>,
            ) -> diesel::serialize::Result {
                out.set_value((diesel::sql_types::Text, self));
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::sqlite::Sqlite> for $name {
            fn from_sql(
                value: diesel::sqlite::SqliteValue<'_, '_, '_>,
            ) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::sqlite::Sqlite,
                >>::from_sql(value)?;
                Self::from_stored(&text)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                Self::from_stored(std::str::from_utf8(value.as_bytes())?)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, $crate::db::MultiBackend> for $name {
            fn from_sql(
                value: <$crate::db::MultiBackend as diesel::backend::Backend>::RawValue<'_>,
            ) -> diesel::deserialize::Result<Self> {
                value.from_sql::<Self, diesel::sql_types::Text>()
            }
        }
    };
}

text_enum! {
    /// Where a subscription stands (`subscriptions.status`).
    pub enum SubscriptionStatus {
        /// Signed up, not yet confirmed: receives nothing but the confirmation email.
        Pending = "pending",
        /// Confirmed: receives the newsletter.
        Confirmed = "confirmed",
        /// Left: receives nothing until a new double opt-in.
        Unsubscribed = "unsubscribed",
    }
}

text_enum! {
    /// Where a queued email stands (`outbound_emails.status`).
    pub enum EmailStatus {
        /// Still to send (possibly retrying or claimed).
        Pending = "pending",
        /// Held back by an operator who paused the send; workers do not claim it.
        Paused = "paused",
        /// The server answered 250.
        Sent = "sent",
        /// Permanently refused, or retried until the give-up time.
        Failed = "failed",
        /// Not sent: the reader unsubscribed before their turn came.
        Skipped = "skipped",
        /// Not sent: an operator cancelled the send.
        Cancelled = "cancelled",
    }
}

impl EmailStatus {
    /// States from which an attempt's outcome may still be recorded: a send paused or
    /// cancelled while a copy was in flight records what really happened to that copy.
    pub const UNFINISHED: [Self; 3] = [Self::Pending, Self::Paused, Self::Cancelled];
}

text_enum! {
    /// What an email is for (`outbound_emails.kind`); decides nothing in the worker, but
    /// tells operators and limits apart.
    pub enum EmailKind {
        /// Double opt-in link.
        Confirmation = "confirmation",
        /// Sent once a subscription is confirmed, with its unsubscribe links.
        Welcome = "welcome",
        /// One day's digest to one subscriber; its body comes from the issue.
        Digest = "digest",
    }
}

impl EmailKind {
    /// The stream an email of this kind goes out on: digests are bulk, the rest transactional.
    pub fn stream(self) -> MailStream {
        match self {
            Self::Digest => MailStream::Digest,
            Self::Confirmation | Self::Welcome => MailStream::Transactional,
        }
    }
}

text_enum! {
    /// What a bounce event says about the subscriber's address (`bounce_events.kind`).
    pub enum BounceKind {
        /// Refused for good: counts 1.
        Hard = "hard",
        /// Failed for a while, until retries ran out: counts 0.5.
        Soft = "soft",
        /// The reader marked the mail as spam: unsubscribed from everything at once.
        Complaint = "complaint",
        /// The operator cleared the bounced mark; earlier bounces no longer count.
        Cleared = "cleared",
    }
}

text_enum! {
    /// Where a bounce event came from (`bounce_events.source`).
    pub enum BounceSource {
        /// The mail server's reply to our delivery.
        Smtp = "smtp",
        /// A report posted to `/webhooks/bounces`.
        Webhook = "webhook",
        /// An operator, in the console.
        Console = "console",
    }
}

#[cfg(test)]
#[path = "states_tests.rs"]
mod tests;
