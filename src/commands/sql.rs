//! `ingestor sql`: run SQL against the vault and print the result.

use duckdb::arrow::array::{Array, AsArray};
use duckdb::arrow::datatypes::DataType;
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use duckdb::arrow::util::pretty::pretty_format_batches;
use duckdb::Connection;
use serde_json::{Map, Value};

use crate::cli::{Cli, SqlFormat};
use crate::db;
use crate::error::{UsageError, VaultError, EXIT_OK};
use crate::plan::Paths;

/// Run `sql`.
pub fn run(cli: &Cli, query: &str, format: SqlFormat) -> anyhow::Result<i32> {
    // `-`: the query comes on stdin (a file of SQL, a heredoc).
    let query = if query == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| UsageError(format!("cannot read the query from stdin: {e}")))?;
        text
    } else {
        query.to_string()
    };
    let conn = open_vault(cli)?;
    print_query(&conn, &query, format)?;
    Ok(EXIT_OK)
}

/// Open the project's existing vault, read-only; a missing vault is a usage error. Only
/// `ingestor.toml` is read: a broken tag or source file does not stop a query.
pub fn open_vault(cli: &Cli) -> anyhow::Result<Connection> {
    let project = Paths::load(cli)?;
    match db::open_read_only(&project.database)? {
        Some(conn) => Ok(conn),
        None => Err(UsageError(format!(
            "no vault at `{}` yet: run `ingestor sync` first",
            project.database.display()
        ))
        .into()),
    }
}

/// Run a query; its rows as JSON objects (the `--format json` of `sql`).
pub fn json_rows(conn: &Connection, query: &str) -> anyhow::Result<Value> {
    let batches = query_batches(conn, query)?;
    Ok(serde_json::from_str(&render(&batches, SqlFormat::Json)?)?)
}

/// Run a query and print its result on stdout in `format`.
pub fn print_query(conn: &Connection, query: &str, format: SqlFormat) -> anyhow::Result<()> {
    let batches = query_batches(conn, query)?;
    let text = render(&batches, format)?;
    out!("{text}")?;
    Ok(())
}

/// Run a query; its result as printable batches (at least one, for the column names).
fn query_batches(conn: &Connection, query: &str) -> anyhow::Result<Vec<RecordBatch>> {
    let mut stmt = conn
        .prepare(query)
        .map_err(|e| UsageError(format!("SQL error: {e}")))?;
    let arrow = stmt
        .query_arrow([])
        .map_err(|e| UsageError(format!("SQL error: {e}")))?;
    let schema = arrow.get_schema();
    let mut batches: Vec<RecordBatch> = arrow.collect();
    if batches.is_empty() {
        // No rows: still show the columns.
        batches.push(RecordBatch::new_empty(schema));
    }
    let batches = batches
        .iter()
        .map(displayable)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| VaultError::Refused(format!("cannot print the result: {e}")))?;
    Ok(batches)
}

/// A batch whose timestamps with a time zone print without a time-zone database.
/// DuckDB hands TIMESTAMPTZ over as an Arrow timestamp labelled with its session's zone
/// (`UTC`: this build has no ICU), and Arrow can only print zones it can look up. The
/// values are instants (microseconds since the epoch, in UTC) whatever the label, so
/// labelling them `+00:00` prints the same instant: `2026-01-02T10:00:00+00:00`.
fn displayable(batch: &RecordBatch) -> Result<RecordBatch, duckdb::arrow::error::ArrowError> {
    use duckdb::arrow::array::{make_array, ArrayRef};
    use duckdb::arrow::datatypes::{Field, Schema};
    const UTC: &str = "+00:00";
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        // The same values under another label: only the data type changes.
        let relabelled: Option<ArrayRef> = match column.data_type() {
            DataType::Timestamp(unit, Some(_)) => Some(make_array(
                column
                    .to_data()
                    .into_builder()
                    .data_type(DataType::Timestamp(*unit, Some(UTC.into())))
                    .build()?,
            )),
            _ => None,
        };
        match relabelled {
            Some(array) => {
                fields.push(Field::new(
                    field.name(),
                    array.data_type().clone(),
                    field.is_nullable(),
                ));
                columns.push(array);
            }
            None => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

/// Render batches as a table, CSV or JSON (an array of objects).
pub fn render(batches: &[RecordBatch], format: SqlFormat) -> anyhow::Result<String> {
    let render_err = |e: duckdb::arrow::error::ArrowError| {
        VaultError::Refused(format!("cannot print the result: {e}"))
    };
    match format {
        SqlFormat::Table => Ok(format!(
            "{}\n",
            pretty_format_batches(batches).map_err(render_err)?
        )),
        SqlFormat::Csv => {
            let mut out = csv::Writer::from_writer(Vec::new());
            if let Some(first) = batches.first() {
                let schema = first.schema();
                out.write_record(schema.fields().iter().map(|f| f.name().as_str()))?;
            }
            let options = FormatOptions::default();
            for batch in batches {
                let formatters = formatters(batch, &options).map_err(render_err)?;
                for row in 0..batch.num_rows() {
                    let cells: Vec<String> = formatters
                        .iter()
                        .zip(batch.columns())
                        .map(|(f, c)| {
                            if c.is_null(row) {
                                String::new()
                            } else {
                                f.value(row).to_string()
                            }
                        })
                        .collect();
                    out.write_record(&cells)?;
                }
            }
            Ok(String::from_utf8(
                out.into_inner().map_err(|e| e.into_error())?,
            )?)
        }
        SqlFormat::Json => {
            let options = FormatOptions::default();
            let mut rows = Vec::new();
            for batch in batches {
                let schema = batch.schema();
                let formatters = formatters(batch, &options).map_err(render_err)?;
                for row in 0..batch.num_rows() {
                    let mut obj = Map::new();
                    for (i, field) in schema.fields().iter().enumerate() {
                        let col = batch.column(i);
                        obj.insert(
                            field.name().clone(),
                            json_value(col.as_ref(), row, &formatters[i]),
                        );
                    }
                    rows.push(Value::Object(obj));
                }
            }
            Ok(format!("{}\n", serde_json::to_string_pretty(&rows)?))
        }
    }
}

/// One display formatter per column of `batch`.
fn formatters<'a>(
    batch: &'a RecordBatch,
    options: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>, duckdb::arrow::error::ArrowError> {
    batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), options))
        .collect()
}

/// Numbers and booleans are JSON numbers and booleans. A decimal is a number when it has
/// at most 15 significant digits (a JSON reader's double then gives back exactly the
/// digits printed), and a string otherwise, so that no digit is lost; dates and text are
/// strings.
fn json_value(col: &dyn Array, row: usize, formatter: &ArrayFormatter<'_>) -> Value {
    use duckdb::arrow::datatypes::{
        Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
        UInt16Type, UInt32Type, UInt64Type, UInt8Type,
    };
    if col.is_null(row) {
        return Value::Null;
    }
    let text = || formatter.value(row).to_string();
    match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Int8 => Value::from(col.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Value::from(col.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Value::from(col.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::from(col.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::from(col.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Value::from(col.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Value::from(col.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Value::from(col.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => Value::from(f64::from(col.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => Value::from(col.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, 0) => {
            // Whole numbers (DuckDB's HUGEINT sums arrive so) stay integers.
            let v = col.as_primitive::<Decimal128Type>().value(row);
            match i64::try_from(v) {
                Ok(v) => Value::from(v),
                Err(_) => Value::String(text()),
            }
        }
        DataType::Decimal128(_, _) => {
            let unscaled = col.as_primitive::<Decimal128Type>().value(row);
            let digits = unscaled
                .unsigned_abs()
                .to_string()
                .trim_end_matches('0')
                .len();
            match text().parse::<f64>() {
                Ok(v) if digits <= 15 && v.is_finite() => Value::from(v),
                _ => Value::String(text()),
            }
        }
        _ => Value::String(text()),
    }
}
