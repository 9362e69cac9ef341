//! Fixed PostgreSQL statements with bound arrays, prepared once per connection.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;

/// One bound value of a [`Statement`].
pub(super) trait Bind {
    /// Pushes the value as the next bind parameter.
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

/// A value with the SQL type it is bound as.
struct Typed<'a, ST, T: ?Sized>(&'a T, PhantomData<fn() -> ST>);

impl<ST, T> Bind for Typed<'_, ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg> + ?Sized,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(self.0)
    }
}

/// Binds `value` as SQL type `ST`.
pub(super) fn bind<'a, ST: 'a, T>(value: &'a T) -> Box<dyn Bind + 'a>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg> + ?Sized,
{
    Box::new(Typed(value, PhantomData))
}

/// `sql` with `{}` where each of `binds` goes, in order; rows of SQL type `ST`. Its
/// text never changes with the number of rows, so diesel prepares it once per
/// connection and the server plans it once, however large the group.
pub(super) struct Statement<'a, ST = ()> {
    sql: &'static str,
    binds: Vec<Box<dyn Bind + 'a>>,
    rows: PhantomData<fn() -> ST>,
}

impl<'a, ST> Statement<'a, ST> {
    /// The statement with its binds; their number must match the `{}` in `sql`.
    pub(super) fn new(sql: &'static str, binds: Vec<Box<dyn Bind + 'a>>) -> Self {
        debug_assert_eq!(sql.matches("{}").count(), binds.len(), "{sql}");
        Self {
            sql,
            binds,
            rows: PhantomData,
        }
    }
}

impl<ST> QueryId for Statement<'_, ST> {
    type QueryId = ();
    // No static id: diesel keys its statement cache on the SQL text instead.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST> Query for Statement<'_, ST> {
    type SqlType = ST;
}

impl<ST> RunQueryDsl<PgConnection> for Statement<'_, ST> {}

impl<ST> QueryFragment<Pg> for Statement<'_, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut pieces = self.sql.split("{}");
        out.push_sql(pieces.next().unwrap_or_default());
        for (bind, piece) in self.binds.iter().zip(pieces) {
            bind.push(&mut out)?;
            out.push_sql(piece);
        }
        Ok(())
    }
}
