//! [`Db`]: the one interface the store's SQL runs through, over either engine.
//!
//! The store's statements are written once, in SQL both engines accept (numbered `?N`
//! parameters, `ON CONFLICT`, `RETURNING`, `CAST(... AS BIGINT)` around sums), against
//! rusqlite's value types: parameters are `&dyn rusqlite::ToSql`, columns are read with
//! `rusqlite::types::FromSql`. On SQLite a [`Db`] is the connection itself (no conversion on
//! the hot path). On PostgreSQL it is a transaction of the `postgres` client: `?N` becomes
//! `$N`, each parameter is encoded for the type the server inferred for it, each column is
//! decoded into a SQLite value, and prepared statements are cached per connection. The few
//! places where the engines' SQL differs ask [`Db::dialect`] (see [`Dialect`]).

use std::cell::RefCell;
use std::collections::HashMap;

use postgres_types::{IsNull, ToSql as PgToSql, Type};
use rusqlite::types::{FromSql, ToSqlOutput, Value, ValueRef};
use rusqlite::ToSql;

/// Which engine's SQL a statement is for, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A byte-wise test that the text column `col` starts with the parameter `?{prefix}`,
    /// whose length in bytes is the parameter `?{len}`: no `LIKE` (case folding, wildcards)
    /// in key matching. Both engines compare text as bytes (SQLite by default, PostgreSQL
    /// with the `C` collation the schema gives every text column).
    pub(crate) fn prefix_test(self, col: &str, len: usize, prefix: usize) -> String {
        match self {
            Dialect::Sqlite => format!("substr(CAST({col} AS BLOB), 1, ?{len}) = CAST(?{prefix} AS BLOB)"),
            Dialect::Postgres => format!(
                "substr(convert_to({col}, 'UTF8'), 1, CAST(?{len} AS INTEGER)) = convert_to(CAST(?{prefix} AS TEXT), 'UTF8')"
            ),
        }
    }

    /// The text at a `$.a.b` (or `$[0].b`) path of a JSON text column (SQL NULL when absent).
    pub(crate) fn json_text(self, col: &str, path: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({col}, '{path}')"),
            Dialect::Postgres => format!("(CAST({col} AS JSONB) #>> '{}')", json_steps(path)),
        }
    }

    /// Whether the value at a `$.a.b` path of a JSON text column is `true`.
    pub(crate) fn json_is_true(self, col: &str, path: &str) -> String {
        match self {
            // SQLite's json_extract gives JSON `true` as the integer 1.
            Dialect::Sqlite => format!("json_extract({col}, '{path}') = 1"),
            Dialect::Postgres => format!("(CAST({col} AS JSONB) #> '{}') = 'true'", json_steps(path)),
        }
    }

    /// The 1-based position of `needle` in `haystack` (0 when absent).
    pub(crate) fn position(self, haystack: &str, needle: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, {needle})"),
            Dialect::Postgres => format!("strpos({haystack}, {needle})"),
        }
    }
}

/// `$.a.b` as PostgreSQL's path array `{a,b}`; `$[0].b` as `{0,b}`.
fn json_steps(path: &str) -> String {
    let dotted = path.trim_start_matches('$').replace('[', ".").replace(']', "");
    format!("{{{}}}", dotted.trim_start_matches('.').replace('.', ","))
}

/// A PostgreSQL connection with its statement cache (statements are prepared once per
/// connection, keyed by the store's SQL text).
pub(crate) struct PgConn {
    pub client: postgres::Client,
    pub statements: HashMap<String, postgres::Statement>,
}

/// What a PostgreSQL [`Db`] holds while one transaction runs.
pub(crate) struct PgTx<'a> {
    pub tx: postgres::Transaction<'a>,
    pub statements: &'a mut HashMap<String, postgres::Statement>,
    /// The SQLSTATE of the first statement that failed, if any: the transaction is aborted
    /// then, and the engine retries it when the failure was a serialization conflict.
    pub failure: Option<postgres::error::SqlState>,
}

enum Inner<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(RefCell<PgTx<'a>>),
}

/// A connection inside one transaction, on either engine.
pub(crate) struct Db<'a>(Inner<'a>);

/// A read snapshot guard from [`Db::snapshot`]: on SQLite, a deferred transaction that ends
/// when the guard is dropped.
pub(crate) struct Snapshot<'a>(Option<&'a rusqlite::Connection>);

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            // The transaction wrote nothing: ending it either way releases the snapshot.
            let _ = c.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
        }
    }
}

/// Parameters of a statement, as rusqlite's `params!` gives them.
pub(crate) type Params<'p> = &'p [&'p dyn ToSql];

impl<'a> Db<'a> {
    pub(crate) fn sqlite(c: &'a rusqlite::Connection) -> Self {
        Db(Inner::Sqlite(c))
    }

    pub(crate) fn postgres(tx: PgTx<'a>) -> Self {
        Db(Inner::Postgres(RefCell::new(tx)))
    }

    /// The PostgreSQL transaction back (to commit or roll back).
    pub(crate) fn into_postgres(self) -> Option<PgTx<'a>> {
        match self.0 {
            Inner::Postgres(tx) => Some(tx.into_inner()),
            Inner::Sqlite(_) => None,
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.0 {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Reads that follow see one snapshot until the guard is dropped. (A PostgreSQL [`Db`]
    /// is always inside a transaction already; a SQLite reader is not.)
    pub(crate) fn snapshot(&self) -> rusqlite::Result<Snapshot<'a>> {
        match &self.0 {
            // `BEGIN` and `ROLLBACK` are prepared once per connection and kept, not parsed on
            // every read as `Connection::unchecked_transaction` does (measured with perf: 2–3 %
            // of the server's CPU in 4 KiB GETs went to parsing them). Inside a transaction
            // already (a write's savepoint), its own snapshot holds.
            Inner::Sqlite(c) if c.is_autocommit() => {
                c.prepare_cached("BEGIN")?.execute([])?;
                Ok(Snapshot(Some(c)))
            }
            Inner::Sqlite(_) | Inner::Postgres(_) => Ok(Snapshot(None)),
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, p: Params<'_>) -> rusqlite::Result<usize> {
        match &self.0 {
            Inner::Sqlite(c) => c.prepare_cached(sql)?.execute(p),
            Inner::Postgres(tx) => {
                let mut tx = tx.borrow_mut();
                let n = tx.run(sql, p, |tx, st, args| tx.execute(st, args))?;
                Ok(n as usize)
            }
        }
    }

    /// The first row of a query (`QueryReturnedNoRows` without one, as rusqlite).
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        p: Params<'_>,
        f: impl FnOnce(&DbRow<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        match &self.0 {
            Inner::Sqlite(c) => c.prepare_cached(sql)?.query_row(p, |r| f(&DbRow::Sqlite(r))),
            Inner::Postgres(tx) => {
                let rows = tx.borrow_mut().run(sql, p, |tx, st, args| tx.query(st, args))?;
                match rows.first() {
                    Some(r) => f(&DbRow::Postgres(r)),
                    None => Err(rusqlite::Error::QueryReturnedNoRows),
                }
            }
        }
    }

    /// Every row of a query, mapped.
    pub(crate) fn query_map<T>(
        &self,
        sql: &str,
        p: Params<'_>,
        mut f: impl FnMut(&DbRow<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        match &self.0 {
            Inner::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let rows = st.query_map(p, |r| f(&DbRow::Sqlite(r)))?;
                rows.collect()
            }
            Inner::Postgres(tx) => {
                let rows = tx.borrow_mut().run(sql, p, |tx, st, args| tx.query(st, args))?;
                rows.iter().map(|r| f(&DbRow::Postgres(r))).collect()
            }
        }
    }
}

impl PgTx<'_> {
    /// Prepares (once per connection) and runs a statement with its parameters encoded,
    /// remembering the SQLSTATE of a failure.
    fn run<T>(
        &mut self,
        sql: &str,
        p: Params<'_>,
        f: impl FnOnce(
            &mut postgres::Transaction<'_>,
            &postgres::Statement,
            &[&(dyn postgres_types::ToSql + Sync)],
        ) -> Result<T, postgres::Error>,
    ) -> rusqlite::Result<T> {
        if let Some(code) = &self.failure {
            return Err(failed(format!("the transaction was aborted by an earlier error ({})", code.code())));
        }
        let args: Vec<PgArg> = p.iter().map(|v| PgArg::of(*v)).collect::<rusqlite::Result<_>>()?;
        let refs: Vec<&(dyn postgres_types::ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn postgres_types::ToSql + Sync)).collect();
        let (text, used) = numbered_params(sql);
        // PostgreSQL infers each parameter's type from where the statement uses it, and
        // refuses a statement that leaves one unused (a query shape that does not need every
        // value its caller numbers): those get the type of the value given, the others are
        // left to the server.
        let mut key = sql.to_owned();
        let types: Vec<Type> = (1..=args.len())
            .map(|n| {
                if used.contains(&n) {
                    return unspecified();
                }
                let ty = args[n - 1].natural_type();
                key.push_str(&format!("\0{n}:{ty}"));
                ty
            })
            .collect();
        let statement = match self.statements.get(&key) {
            Some(st) => st.clone(),
            None => {
                let st = self.tx.prepare_typed(&text, &types).map_err(|e| self.fail(e, Some(sql)))?;
                self.statements.insert(key, st.clone());
                st
            }
        };
        f(&mut self.tx, &statement, &refs).map_err(|e| self.fail(e, None))
    }

    /// Records a failed statement; `sql` when it failed to prepare (a fault in the store's
    /// SQL, named in the error so it can be found).
    fn fail(&mut self, e: postgres::Error, sql: Option<&str>) -> rusqlite::Error {
        self.failure = Some(e.code().cloned().unwrap_or(postgres::error::SqlState::CONNECTION_EXCEPTION));
        let mut message = match e.as_db_error() {
            Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
            None => format!("PostgreSQL: {e}"),
        };
        if let Some(sql) = sql {
            message.push_str(&format!(" in: {}", sql.split_whitespace().collect::<Vec<_>>().join(" ")));
        }
        failed(message)
    }
}

fn failed(message: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(message.into())
}

/// `?N` parameters as PostgreSQL's `$N` (the store's SQL has no `?` in its literals), and
/// the numbers used.
fn numbered_params(sql: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len());
    let mut used = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
            let mut n = 0usize;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                out.push(chars.next().unwrap());
                n = n * 10 + d as usize;
            }
            used.push(n);
        } else {
            out.push(c);
        }
    }
    (out, used)
}

/// A parameter type left for the server to infer (type OID 0 in the Parse message).
fn unspecified() -> Type {
    Type::new("unspecified".into(), 0, postgres_types::Kind::Pseudo, "pg_catalog".into())
}

/// One row, on either engine.
pub(crate) enum DbRow<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl DbRow<'_> {
    /// Column `i` as `T`, converted as rusqlite converts a SQLite value.
    pub(crate) fn get<T: FromSql>(&self, i: usize) -> rusqlite::Result<T> {
        match self {
            DbRow::Sqlite(r) => r.get(i),
            DbRow::Postgres(r) => {
                let v = pg_value(r, i)?;
                T::column_result(ValueRef::from(&v)).map_err(|e| match e {
                    rusqlite::types::FromSqlError::InvalidType => {
                        rusqlite::Error::InvalidColumnType(i, r.columns()[i].name().to_owned(), v.data_type())
                    }
                    other => rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(other)),
                })
            }
        }
    }
}

/// A PostgreSQL column as the SQLite value it stands for (booleans are integers, as in
/// SQLite).
fn pg_value(r: &postgres::Row, i: usize) -> rusqlite::Result<Value> {
    let ty = r.columns()[i].type_().clone();
    let bad = |e: postgres::Error| failed(format!("PostgreSQL column {i}: {e}"));
    let v = match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i).map_err(bad)?.map(Value::Integer),
        Type::INT4 => r.try_get::<_, Option<i32>>(i).map_err(bad)?.map(|v| Value::Integer(v.into())),
        Type::INT2 => r.try_get::<_, Option<i16>>(i).map_err(bad)?.map(|v| Value::Integer(v.into())),
        Type::BOOL => r.try_get::<_, Option<bool>>(i).map_err(bad)?.map(|v| Value::Integer(v.into())),
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map_err(bad)?.map(Value::Real),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            r.try_get::<_, Option<String>>(i).map_err(bad)?.map(Value::Text)
        }
        Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i).map_err(bad)?.map(Value::Blob),
        other => {
            return Err(failed(format!(
                "PostgreSQL column {i} has type {other}, which the store does not read (cast it to BIGINT or TEXT)"
            )))
        }
    };
    Ok(v.unwrap_or(Value::Null))
}

/// A parameter, encoded for whatever type PostgreSQL inferred for its place.
#[derive(Debug)]
struct PgArg(Value);

impl PgArg {
    /// The type a value has when nothing in the statement says otherwise.
    fn natural_type(&self) -> Type {
        match self.0 {
            Value::Integer(_) => Type::INT8,
            Value::Real(_) => Type::FLOAT8,
            Value::Blob(_) => Type::BYTEA,
            Value::Null | Value::Text(_) => Type::TEXT,
        }
    }

    fn of(v: &dyn ToSql) -> rusqlite::Result<Self> {
        Ok(PgArg(match v.to_sql()? {
            ToSqlOutput::Borrowed(r) => r.into(),
            ToSqlOutput::Owned(v) => v,
            _ => return Err(failed("a parameter kind PostgreSQL is not given".into())),
        }))
    }
}

impl PgToSql for PgArg {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mismatch = || format!("a {} value for a PostgreSQL {ty} parameter", self.0.data_type()).into();
        match (&self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Integer(i), &Type::INT8) => PgToSql::to_sql(&i, ty, out),
            (Value::Integer(i), &Type::INT4) => PgToSql::to_sql(&i32::try_from(*i)?, ty, out),
            (Value::Integer(i), &Type::INT2) => PgToSql::to_sql(&i16::try_from(*i)?, ty, out),
            (Value::Integer(i), &Type::BOOL) => PgToSql::to_sql(&(*i != 0), ty, out),
            (Value::Integer(i), &Type::FLOAT8) => PgToSql::to_sql(&(*i as f64), ty, out),
            (Value::Real(f), &Type::FLOAT8) => PgToSql::to_sql(&f, ty, out),
            (Value::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::NAME | &Type::BPCHAR | &Type::UNKNOWN) => {
                PgToSql::to_sql(&s.as_str(), ty, out)
            }
            (Value::Blob(b), &Type::BYTEA) => PgToSql::to_sql(&b.as_slice(), ty, out),
            _ => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres_types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_parameters_become_dollars() {
        assert_eq!(
            super::numbered_params("SELECT ?1, ?12 WHERE a = '$.x' AND b = ? AND c = ?1"),
            ("SELECT $1, $12 WHERE a = '$.x' AND b = ? AND c = $1".to_owned(), vec![1, 12, 1])
        );
    }

    #[test]
    fn json_paths_become_postgres_path_arrays() {
        assert_eq!(super::json_steps("$.acl.owner"), "{acl,owner}");
        assert_eq!(super::json_steps("$[0].blob"), "{0,blob}");
        assert_eq!(super::json_steps("$.a[2].b"), "{a,2,b}");
    }
}
