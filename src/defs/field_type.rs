//! Field types that tags and `[columns]` may declare, and their DuckDB and Arrow forms.

use std::fmt;
use std::str::FromStr;

use duckdb::arrow::datatypes::{DataType, TimeUnit};

/// Default precision and scale of `decimal`: DECIMAL(18,2) suits amounts of money and is
/// stored as a 64-bit integer by DuckDB. `decimal(p,s)` asks for another.
pub const DEFAULT_DECIMAL: (u8, u8) = (18, 2);

/// The type of a tag field or a typed source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Text,
    Integer,
    /// Exact decimal with (precision, scale).
    Decimal(u8, u8),
    Float,
    Boolean,
    Date,
    Timestamp,
    /// A time of day (a spreadsheet's time-only cell, a `14:30` column).
    Time,
}

impl FieldType {
    /// The DuckDB column type.
    pub fn sql(&self) -> String {
        match self {
            FieldType::Text => "VARCHAR".into(),
            FieldType::Integer => "BIGINT".into(),
            FieldType::Decimal(p, s) => format!("DECIMAL({p},{s})"),
            FieldType::Float => "DOUBLE".into(),
            FieldType::Boolean => "BOOLEAN".into(),
            FieldType::Date => "DATE".into(),
            FieldType::Timestamp => "TIMESTAMP".into(),
            FieldType::Time => "TIME".into(),
        }
    }

    /// The field type of an Arrow type a reader produces, if it has one.
    pub fn from_arrow(t: &DataType) -> Option<FieldType> {
        Some(match t {
            DataType::Utf8 => FieldType::Text,
            DataType::Int64 => FieldType::Integer,
            DataType::Float64 => FieldType::Float,
            DataType::Boolean => FieldType::Boolean,
            DataType::Date32 => FieldType::Date,
            DataType::Timestamp(TimeUnit::Microsecond, None) => FieldType::Timestamp,
            DataType::Time64(TimeUnit::Microsecond) => FieldType::Time,
            DataType::Decimal128(p, s) if *s >= 0 => FieldType::Decimal(*p, *s as u8),
            _ => return None,
        })
    }

    /// The Arrow type a column of this type is staged as.
    pub fn arrow(&self) -> DataType {
        match self {
            FieldType::Text => DataType::Utf8,
            FieldType::Integer => DataType::Int64,
            FieldType::Decimal(p, s) => DataType::Decimal128(*p, *s as i8),
            FieldType::Float => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Date => DataType::Date32,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            FieldType::Time => DataType::Time64(TimeUnit::Microsecond),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Text => f.write_str("text"),
            FieldType::Integer => f.write_str("integer"),
            FieldType::Decimal(p, s) => write!(f, "decimal({p},{s})"),
            FieldType::Float => f.write_str("float"),
            FieldType::Boolean => f.write_str("boolean"),
            FieldType::Date => f.write_str("date"),
            FieldType::Timestamp => f.write_str("timestamp"),
            FieldType::Time => f.write_str("time"),
        }
    }
}

/// What `FromStr` expects, for error messages.
pub const EXPECTED_TYPES: &str =
    "one of text, integer, decimal, decimal(p,s), float, boolean, date, timestamp, time";

impl FromStr for FieldType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let simple = match t.as_str() {
            "text" => Some(FieldType::Text),
            "integer" => Some(FieldType::Integer),
            "decimal" => Some(FieldType::Decimal(DEFAULT_DECIMAL.0, DEFAULT_DECIMAL.1)),
            "float" => Some(FieldType::Float),
            "boolean" => Some(FieldType::Boolean),
            "date" => Some(FieldType::Date),
            "timestamp" => Some(FieldType::Timestamp),
            "time" => Some(FieldType::Time),
            _ => None,
        };
        if let Some(ty) = simple {
            return Ok(ty);
        }
        let bad = || format!("unknown type `{s}`, expected {EXPECTED_TYPES}");
        let args = t
            .strip_prefix("decimal(")
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(bad)?;
        let (p, sc) = args.split_once(',').ok_or_else(bad)?;
        let p: u8 = p.trim().parse().map_err(|_| bad())?;
        let sc: u8 = sc.trim().parse().map_err(|_| bad())?;
        if !(1..=38).contains(&p) || sc > p {
            return Err(format!(
                "`{s}`: precision must be 1 to 38 and scale at most the precision"
            ));
        }
        Ok(FieldType::Decimal(p, sc))
    }
}

impl<'de> serde::Deserialize<'de> for FieldType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_and_decimal_arguments() {
        assert_eq!("TEXT".parse::<FieldType>(), Ok(FieldType::Text));
        assert_eq!(
            "decimal".parse::<FieldType>(),
            Ok(FieldType::Decimal(18, 2))
        );
        assert_eq!(
            "decimal(12, 4)".parse::<FieldType>(),
            Ok(FieldType::Decimal(12, 4))
        );
        assert!("decimal(4,5)".parse::<FieldType>().is_err());
        assert!("money".parse::<FieldType>().unwrap_err().contains("money"));
        assert_eq!(FieldType::Decimal(12, 4).sql(), "DECIMAL(12,4)");
        let time = "time".parse::<FieldType>().expect("time is a type");
        assert_eq!(
            (time.sql().as_str(), time.to_string().as_str()),
            ("TIME", "time")
        );
        assert_eq!(FieldType::from_arrow(&time.arrow()), Some(time));
    }
}
