use diesel::prelude::*;
use diesel::sql_types::Text;

use super::*;
use crate::db::DbConnection;

const POSTGRES_URL_VAR: &str = "SPACEDIGEST_TEST_POSTGRES_URL";

fn sqlite() -> DbConnection {
    DbConnection::Sqlite(
        SqliteConnection::establish(":memory:").expect("an in-memory SQLite database"),
    )
}

/// The PostgreSQL test server; a test that needs it is ignored, with its reason, in a
/// build without `SPACEDIGEST_TEST_POSTGRES_URL` (see `build.rs`).
fn postgres() -> DbConnection {
    let url = std::env::var(POSTGRES_URL_VAR)
        .unwrap_or_else(|_| panic!("this test needs PostgreSQL: set {POSTGRES_URL_VAR}"));
    DbConnection::Pg(PgConnection::establish(&url).expect("the PostgreSQL test server"))
}

macro_rules! each_variant_round_trips {
    ($conn:expr, $ty:ty) => {
        for &state in <$ty>::ALL {
            let written: $ty = diesel::select(state.into_sql::<Text>())
                .get_result($conn)
                .expect("a round trip");
            assert_eq!(written, state);
            let read: $ty = diesel::select(state.as_str().into_sql::<Text>())
                .get_result($conn)
                .expect("a stored text");
            assert_eq!(read, state);
            assert_eq!(<$ty>::parse(state.as_str()), Some(state));
        }
    };
}

fn stored_as<T>(conn: &mut DbConnection, text: &str) -> QueryResult<T>
where
    T: diesel::deserialize::FromSqlRow<Text, crate::db::MultiBackend> + 'static,
{
    diesel::select(text.into_sql::<Text>()).get_result::<T>(conn)
}

fn every_state_round_trips(mut conn: DbConnection) {
    let conn = &mut conn;
    each_variant_round_trips!(conn, SubscriptionStatus);
    each_variant_round_trips!(conn, EmailStatus);
    each_variant_round_trips!(conn, EmailKind);
    each_variant_round_trips!(conn, BounceKind);
    each_variant_round_trips!(conn, BounceSource);
}

#[test]
fn every_state_is_written_and_read_as_its_text_on_sqlite() {
    every_state_round_trips(sqlite());
}

#[test]
#[cfg_attr(
    not(spacedigest_test_backend = "postgres"),
    ignore = "PostgreSQL only: runs when SPACEDIGEST_TEST_POSTGRES_URL is set"
)]
fn every_state_is_written_and_read_as_its_text_on_postgres() {
    every_state_round_trips(postgres());
}

#[test]
fn an_unknown_stored_text_is_an_error_that_names_the_type_and_the_text_on_sqlite() {
    unknown_text_is_an_error(sqlite());
}

#[test]
#[cfg_attr(
    not(spacedigest_test_backend = "postgres"),
    ignore = "PostgreSQL only: runs when SPACEDIGEST_TEST_POSTGRES_URL is set"
)]
fn an_unknown_stored_text_is_an_error_that_names_the_type_and_the_text_on_postgres() {
    unknown_text_is_an_error(postgres());
}

fn unknown_text_is_an_error(mut conn: DbConnection) {
    let err = stored_as::<EmailStatus>(&mut conn, "delivered").expect_err("unknown text");
    assert!(
        matches!(err, diesel::result::Error::DeserializationError(_)),
        "{err:?}"
    );
    // diesel wraps the reason in the field it was reading: the whole chain says it.
    let mut message = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(inner) = cause {
        message.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    assert!(message.contains("EmailStatus"), "{message}");
    assert!(message.contains("\"delivered\""), "{message}");
    assert!(stored_as::<SubscriptionStatus>(&mut conn, "Pending").is_err());
}

#[test]
fn the_texts_are_the_ones_the_check_constraints_admit() {
    let texts = |all: &[&'static str]| all.join(",");
    assert_eq!(
        texts(
            &SubscriptionStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
        ),
        "pending,confirmed,unsubscribed"
    );
    assert_eq!(
        texts(
            &EmailStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
        ),
        "pending,paused,sent,failed,skipped,cancelled"
    );
    assert_eq!(
        texts(
            &BounceKind::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
        ),
        "hard,soft,complaint,cleared"
    );
    assert_eq!(
        texts(
            &BounceSource::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
        ),
        "smtp,webhook,console"
    );
    assert_eq!(EmailKind::Digest.to_string(), "digest");
}

#[test]
fn each_email_kind_goes_out_on_its_stream() {
    assert_eq!(EmailKind::Digest.stream(), MailStream::Digest);
    assert_eq!(EmailKind::Welcome.stream(), MailStream::Transactional);
    assert_eq!(EmailKind::Confirmation.stream(), MailStream::Transactional);
}
