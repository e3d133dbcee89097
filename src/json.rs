//! JSON as a loader needs it, shared by the `json` and `api` readers.
//!
//! - Numbers keep their text: `12.30` stays `12.30`, so a decimal field is exact (no
//!   float on the way).
//! - Records are streamed from where a JSON pointer says (`/data`): the document is read
//!   once, front to back, with one record in memory at a time; values elsewhere in it
//!   (a next cursor, a sync token) are picked up on the way by their own pointers.
//! - A record flattens into columns: nested objects become `account.iban`, arrays stay
//!   compact JSON text, `null` is no value.
//! - Errors name the line and column; a document cut short says so.

use std::io::Read;

/// How deep arrays and objects may nest: deeper is refused, not a stack overflow.
const MAX_DEPTH: usize = 512;

/// A JSON value whose numbers are their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// The value as a column holds it: text for scalars, compact JSON for arrays and
    /// objects, `None` for null.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.clone()),
            Value::String(s) => Some(s.clone()),
            Value::Array(_) | Value::Object(_) => {
                let mut out = String::new();
                self.write_json(&mut out);
                Some(out)
            }
        }
    }

    /// Compact JSON text of the value.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(n),
            Value::String(s) => write_string(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON pointer (RFC 6901) as tokens: `""` is the whole document, `/data/items` two
/// tokens; `~1` is `/` and `~0` is `~` inside a token.
pub fn parse_pointer(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!(
            "`{text}` is not a JSON pointer: it starts with `/` (such as `/data`), or is \"\" for the whole document"
        ));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// A pointer as the user wrote it, for messages.
pub fn pointer_text(tokens: &[String]) -> String {
    if tokens.is_empty() {
        return "the document itself".into();
    }
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Where a JSON error is, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// A pull parser over any reader, one byte of lookahead, counting lines.
pub struct Parser<R: Read> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    line: u64,
    column: u64,
    depth: usize,
}

impl<R: Read> Parser<R> {
    /// A parser reading `input` from its start.
    pub fn new(input: R) -> Self {
        Parser {
            input,
            buf: vec![0; 64 * 1024],
            pos: 0,
            end: 0,
            line: 1,
            column: 1,
            depth: 0,
        }
    }

    fn error(&self, message: impl Into<String>) -> JsonError {
        JsonError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, JsonError> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = loop {
                match self.input.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(self.error(format!("cannot read: {e}"))),
                }
            };
            if self.end == 0 {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[self.pos]))
    }

    fn bump(&mut self) {
        if self.buf[self.pos] == b'\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        self.pos += 1;
    }

    fn next(&mut self, inside: &str) -> Result<u8, JsonError> {
        match self.peek()? {
            Some(b) => {
                self.bump();
                Ok(b)
            }
            None => Err(self.error(format!("the document ends inside {inside} (cut short?)"))),
        }
    }

    /// Skip whitespace; the next byte, if any.
    fn skip_ws(&mut self) -> Result<Option<u8>, JsonError> {
        while let Some(b) = self.peek()? {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.bump();
            } else {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// Skip spaces and tabs, not line ends (NDJSON).
    fn skip_blanks(&mut self) -> Result<Option<u8>, JsonError> {
        while let Some(b) = self.peek()? {
            if matches!(b, b' ' | b'\t' | b'\r') {
                self.bump();
            } else {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    fn expect(&mut self, want: u8, inside: &str) -> Result<(), JsonError> {
        self.skip_ws()?;
        let got = self.next(inside)?;
        if got == want {
            Ok(())
        } else {
            Err(self.error(format!(
                "expected `{}` in {inside}, found {}",
                want as char,
                shown(got)
            )))
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    /// Parse one value (after optional whitespace).
    pub fn value(&mut self) -> Result<Value, JsonError> {
        let Some(b) = self.skip_ws()? else {
            return Err(self.error("the document ends where a value was expected"));
        };
        Ok(match b {
            b'{' => {
                self.enter()?;
                let mut members = Vec::new();
                self.members(|p, key| {
                    let v = p.value()?;
                    members.push((key, v));
                    Ok(())
                })?;
                self.depth -= 1;
                Value::Object(members)
            }
            b'[' => {
                self.enter()?;
                let mut items = Vec::new();
                self.elements(|p, _| {
                    items.push(p.value()?);
                    Ok(())
                })?;
                self.depth -= 1;
                Value::Array(items)
            }
            b'"' => Value::String(self.string()?),
            b'-' | b'0'..=b'9' => Value::Number(self.number()?),
            b't' => self.literal("true", Value::Bool(true))?,
            b'f' => self.literal("false", Value::Bool(false))?,
            b'n' => self.literal("null", Value::Null)?,
            other => return Err(self.error(format!("expected a value, found {}", shown(other)))),
        })
    }

    /// Skip one value, checking its syntax, without keeping it.
    pub fn skip(&mut self) -> Result<(), JsonError> {
        match self.skip_ws()? {
            Some(b'{') => {
                self.enter()?;
                self.members(|p, _| p.skip())?;
                self.depth -= 1;
                Ok(())
            }
            Some(b'[') => {
                self.enter()?;
                self.elements(|p, _| p.skip())?;
                self.depth -= 1;
                Ok(())
            }
            _ => self.value().map(drop),
        }
    }

    /// The members of an object (at its `{`): `each(parser, key)` reads each value.
    fn members(
        &mut self,
        mut each: impl FnMut(&mut Self, String) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.bump(); // `{`
        if self.skip_ws()? == Some(b'}') {
            self.bump();
            return Ok(());
        }
        loop {
            match self.skip_ws()? {
                Some(b'"') => {}
                Some(other) => {
                    return Err(self.error(format!(
                        "expected a member name in an object, found {}",
                        shown(other)
                    )))
                }
                None => return Err(self.error("the document ends inside an object (cut short?)")),
            }
            let key = self.string()?;
            self.expect(b':', "an object")?;
            each(self, key)?;
            self.skip_ws()?;
            match self.next("an object")? {
                b',' => continue,
                b'}' => return Ok(()),
                other => {
                    return Err(self.error(format!(
                        "expected `,` or `}}` in an object, found {}",
                        shown(other)
                    )))
                }
            }
        }
    }

    /// The elements of an array (at its `[`): `each(parser, index)` reads each one.
    fn elements(
        &mut self,
        mut each: impl FnMut(&mut Self, usize) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.bump(); // `[`
        if self.skip_ws()? == Some(b']') {
            self.bump();
            return Ok(());
        }
        let mut i = 0;
        loop {
            each(self, i)?;
            i += 1;
            self.skip_ws()?;
            match self.next("an array")? {
                b',' => continue,
                b']' => return Ok(()),
                other => {
                    return Err(self.error(format!(
                        "expected `,` or `]` in an array, found {}",
                        shown(other)
                    )))
                }
            }
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        for &want in word.as_bytes() {
            let got = self.next("a literal")?;
            if got != want {
                return Err(self.error(format!("expected `{word}`, found {}", shown(got))));
            }
        }
        Ok(value)
    }

    fn number(&mut self) -> Result<String, JsonError> {
        let mut text = String::new();
        let digits = |p: &mut Self, text: &mut String| -> Result<usize, JsonError> {
            let mut n = 0;
            while let Some(b @ b'0'..=b'9') = p.peek()? {
                text.push(b as char);
                p.bump();
                n += 1;
            }
            Ok(n)
        };
        if self.peek()? == Some(b'-') {
            text.push('-');
            self.bump();
        }
        let start = text.len();
        if digits(self, &mut text)? == 0 {
            return Err(self.error("a number has no digits"));
        }
        if text[start..].len() > 1 && text.as_bytes()[start] == b'0' {
            return Err(self.error(format!("`{text}`: a number cannot start with 0")));
        }
        if self.peek()? == Some(b'.') {
            text.push('.');
            self.bump();
            if digits(self, &mut text)? == 0 {
                return Err(self.error(format!("`{text}`: no digits after the decimal point")));
            }
        }
        if let Some(e @ (b'e' | b'E')) = self.peek()? {
            text.push(e as char);
            self.bump();
            if let Some(s @ (b'+' | b'-')) = self.peek()? {
                text.push(s as char);
                self.bump();
            }
            if digits(self, &mut text)? == 0 {
                return Err(self.error(format!("`{text}`: no digits in the exponent")));
            }
        }
        Ok(text)
    }

    /// A string (at its opening quote), escapes resolved.
    fn string(&mut self) -> Result<String, JsonError> {
        self.bump(); // `"`
        let (line, column) = (self.line, self.column);
        let mut bytes = Vec::new();
        loop {
            // A line end is refused before it is taken, so the error names its line.
            match self.peek()? {
                Some(b'\n') => return Err(self.error("the line ends inside a string (cut short?)")),
                Some(0..=0x1f) => return Err(self.error("a control character inside a string")),
                _ => {}
            }
            let b = self.next("a string")?;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.next("a string")?;
                    match e {
                        b'"' => bytes.push(b'"'),
                        b'\\' => bytes.push(b'\\'),
                        b'/' => bytes.push(b'/'),
                        b'b' => bytes.push(8),
                        b'f' => bytes.push(12),
                        b'n' => bytes.push(b'\n'),
                        b'r' => bytes.push(b'\r'),
                        b't' => bytes.push(b'\t'),
                        b'u' => {
                            let c = self.escaped_char()?;
                            let mut tmp = [0; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                        }
                        other => {
                            return Err(self.error(format!("`\\{}` is not an escape", shown(other))))
                        }
                    }
                }
                _ => bytes.push(b),
            }
        }
        String::from_utf8(bytes).map_err(|_| JsonError {
            line,
            column,
            message: "a string that is not valid UTF-8".into(),
        })
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0;
        for _ in 0..4 {
            let b = self.next("a string")?;
            let d = (b as char)
                .to_digit(16)
                .ok_or_else(|| self.error("`\\u` needs four hex digits"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    /// The character of a `\uXXXX` escape (after the `u`), pairing surrogates.
    fn escaped_char(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.next("a string")? != b'\\' || self.next("a string")? != b'u' {
                return Err(self.error("an unpaired surrogate in `\\u` escapes"));
            }
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error("an unpaired surrogate in `\\u` escapes"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("an unpaired surrogate in `\\u` escapes"))
    }

    /// After the top value: only whitespace may follow.
    pub fn finish(&mut self) -> Result<(), JsonError> {
        match self.skip_ws()? {
            None => Ok(()),
            Some(b) => Err(self.error(format!("more after the end of the document: {}", shown(b)))),
        }
    }

    /// Stream the records of a document: every element of the array at `records` goes
    /// to `each` (with the line it starts on); the values at `captures` are kept. The
    /// whole document is read, so a body cut short fails even after its records.
    pub fn records(
        &mut self,
        records: &[String],
        captures: &mut [(Vec<String>, Option<Value>)],
        each: &mut dyn FnMut(Value, u64) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        let mut path = Vec::new();
        let mut found = false;
        self.walk(&mut path, records, captures, each, &mut found)?;
        self.finish()?;
        if !found {
            return Err(JsonError {
                line: self.line,
                column: self.column,
                message: format!("no records at `{}` in it", pointer_text(records)),
            });
        }
        Ok(())
    }

    fn walk(
        &mut self,
        path: &mut Vec<String>,
        records: &[String],
        captures: &mut [(Vec<String>, Option<Value>)],
        each: &mut dyn FnMut(Value, u64) -> Result<(), JsonError>,
        found: &mut bool,
    ) -> Result<(), JsonError> {
        let next = self.skip_ws()?;
        if path.as_slice() == records {
            *found = true;
            return match next {
                Some(b'[') => self.elements(|p, _| {
                    let line = p.skip_ws().map(|_| p.line)?;
                    let v = p.value()?;
                    each(v, line)
                }),
                // `"data": null` is how some APIs say "no records".
                Some(b'n') => self.value().map(drop),
                _ => {
                    let v = self.value()?;
                    Err(self.error(format!(
                        "the records at `{}` are {}, not an array",
                        pointer_text(records),
                        v.kind()
                    )))
                }
            };
        }
        if let Some(slot) = captures.iter_mut().find(|(p, _)| p == path) {
            slot.1 = Some(self.value()?);
            return Ok(());
        }
        let wanted = records.starts_with(path) || captures.iter().any(|(p, _)| p.starts_with(path));
        match next {
            Some(b'{') if wanted => {
                self.enter()?;
                self.members(|p, key| {
                    path.push(key);
                    let r = p.walk(path, records, captures, each, found);
                    path.pop();
                    r
                })?;
                self.depth -= 1;
                Ok(())
            }
            Some(b'[') if wanted => {
                self.enter()?;
                self.elements(|p, i| {
                    path.push(i.to_string());
                    let r = p.walk(path, records, captures, each, found);
                    path.pop();
                    r
                })?;
                self.depth -= 1;
                Ok(())
            }
            _ => self.skip(),
        }
    }

    /// Stream newline-delimited JSON: each non-blank line is one record.
    pub fn lines(
        &mut self,
        each: &mut dyn FnMut(Value, u64) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        while self.skip_ws()?.is_some() {
            let line = self.line;
            let v = self.value()?;
            each(v, line)?;
            match self.skip_blanks()? {
                None | Some(b'\n') => {}
                Some(b) => {
                    return Err(self.error(format!(
                        "more than one value on line {line} (found {}); each line holds one record",
                        shown(b)
                    )))
                }
            }
        }
        Ok(())
    }
}

fn shown(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// Flatten one record into (column, text) pairs: nested objects become `a.b` names,
/// arrays stay compact JSON text, null is `None`. An empty object adds nothing.
pub fn flatten(record: Value, out: &mut Vec<(String, Option<String>)>) -> Result<(), String> {
    match record {
        Value::Object(members) => {
            flatten_members(String::new(), members, out);
            Ok(())
        }
        other => Err(format!(
            "a record must be an object, this one is {}",
            other.kind()
        )),
    }
}

fn flatten_members(
    prefix: String,
    members: Vec<(String, Value)>,
    out: &mut Vec<(String, Option<String>)>,
) {
    for (key, v) in members {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match v {
            Value::Object(inner) => flatten_members(name, inner, out),
            other => {
                let text = other.to_text();
                out.push((name, text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Value, JsonError> {
        let mut p = Parser::new(text.as_bytes());
        let v = p.value()?;
        p.finish()?;
        Ok(v)
    }

    #[test]
    fn numbers_keep_their_text() {
        let v = parse(r#"{"a": 12.30, "b": -0.1e-7, "c": 123456789012345678901234567890}"#)
            .expect("parse");
        let mut cols = Vec::new();
        flatten(v, &mut cols).expect("flatten");
        let texts: Vec<&str> = cols
            .iter()
            .map(|(_, t)| t.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(
            texts,
            ["12.30", "-0.1e-7", "123456789012345678901234567890"]
        );
    }

    #[test]
    fn nested_objects_flatten_and_arrays_stay_json() {
        let v = parse(
            r#"{"id": 1, "account": {"iban": "DE89", "owner": {"name": "A \"B\""}}, "tags": ["x", 2, null], "note": null, "empty": {}}"#,
        )
        .expect("parse");
        let mut cols = Vec::new();
        flatten(v, &mut cols).expect("flatten");
        assert_eq!(
            cols,
            [
                ("id".to_string(), Some("1".to_string())),
                ("account.iban".into(), Some("DE89".into())),
                ("account.owner.name".into(), Some("A \"B\"".into())),
                ("tags".into(), Some(r#"["x",2,null]"#.into())),
                ("note".into(), None),
            ]
        );
    }

    #[test]
    fn escapes_and_surrogate_pairs() {
        let v = parse(r#""\u00e9\ud83d\ude00\n\/""#).expect("parse");
        assert_eq!(v, Value::String("é😀\n/".into()));
        assert!(parse(r#""\ud83d""#).is_err());
    }

    #[test]
    fn cut_short_and_bad_documents_name_the_place() {
        let e = parse("{\"a\": [1, 2,\n 3").expect_err("cut");
        assert!(e.message.contains("cut short"), "{e}");
        assert_eq!(e.line, 2);
        let e = parse("{\"a\": 01}").expect_err("leading zero");
        assert!(e.message.contains("start with 0"), "{e}");
        let e = parse("[1] x").expect_err("trailing");
        assert!(e.message.contains("more after the end"), "{e}");
        let e = parse("[NaN]").expect_err("nan");
        assert!(e.message.contains("expected a value"), "{e}");
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).expect_err("deep").message.contains("nested"));
    }

    #[test]
    fn records_stream_from_a_pointer_and_captures_are_kept() {
        let body =
            r#"{"meta": {"next": "c2"}, "data": [{"id": 1}, {"id": 2}], "after": [1, {"x": 2}]}"#;
        let mut p = Parser::new(body.as_bytes());
        let mut captures = vec![(parse_pointer("/meta/next").expect("ptr"), None)];
        let mut ids = Vec::new();
        p.records(
            &parse_pointer("/data").expect("ptr"),
            &mut captures,
            &mut |v, _| {
                let id = match v {
                    Value::Object(members) => {
                        members.into_iter().find(|(k, _)| k == "id").map(|(_, v)| v)
                    }
                    _ => None,
                };
                ids.push(id);
                Ok(())
            },
        )
        .expect("records");
        assert_eq!(
            ids,
            [
                Some(Value::Number("1".into())),
                Some(Value::Number("2".into()))
            ]
        );
        assert_eq!(captures[0].1, Some(Value::String("c2".into())));
        // A body cut after its records still fails.
        let mut p = Parser::new(&body.as_bytes()[..body.len() - 3]);
        let r = p.records(
            &parse_pointer("/data").expect("ptr"),
            &mut [],
            &mut |_, _| Ok(()),
        );
        assert!(r.is_err());
        // No array where the pointer says.
        let mut p = Parser::new(br#"{"items": []}"#.as_slice());
        let e = p
            .records(
                &parse_pointer("/data").expect("ptr"),
                &mut [],
                &mut |_, _| Ok(()),
            )
            .expect_err("missing");
        assert!(e.message.contains("no records at `/data`"), "{e}");
    }

    #[test]
    fn ndjson_is_one_record_a_line() {
        let text = "{\"a\": 1}\n\n{\"a\": 2}\r\n{\"a\": 3}";
        let mut p = Parser::new(text.as_bytes());
        let mut lines = Vec::new();
        p.lines(&mut |_, line| {
            lines.push(line);
            Ok(())
        })
        .expect("lines");
        assert_eq!(lines, [1, 3, 4]);
        let mut p = Parser::new("{\"a\": 1} {\"a\": 2}\n".as_bytes());
        assert!(p.lines(&mut |_, _| Ok(())).is_err());
    }

    #[test]
    fn pointers() {
        assert_eq!(parse_pointer("").expect("p"), Vec::<String>::new());
        assert_eq!(parse_pointer("/a~1b/c~0").expect("p"), ["a/b", "c~"]);
        assert!(parse_pointer("data").is_err());
        assert_eq!(pointer_text(&parse_pointer("/a~1b").expect("p")), "/a~1b");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Any bytes as JSON, as records or lines: values or a located error.
            #[test]
            fn any_bytes_parse_or_fail_with_a_place(
                bytes in proptest::collection::vec(
                    prop_oneof![
                        2 => any::<u8>(),
                        6 => prop::sample::select(b"{}[]:,\"\\ 0123456789.eE+-truefalsnu\n".to_vec()),
                    ],
                    0..300,
                ),
            ) {
                let mut p = Parser::new(bytes.as_slice());
                let _ = p.records(&[], &mut [], &mut |v, _| {
                    let mut out = Vec::new();
                    let _ = flatten(v, &mut out);
                    Ok(())
                });
                let mut p = Parser::new(bytes.as_slice());
                let _ = p.lines(&mut |_, _| Ok(()));
            }

            /// What serde_json writes, we read back with the same numbers' text.
            #[test]
            fn serde_json_documents_read_back(n in any::<i64>(), f in -1e12f64..1e12, s in "\\PC{0,20}") {
                let doc = serde_json::json!([{"n": n, "f": f, "s": s, "o": {"a": [1, null]}}]).to_string();
                let mut p = Parser::new(doc.as_bytes());
                let mut seen = Vec::new();
                p.records(&[], &mut [], &mut |v, _| {
                    let mut out = Vec::new();
                    flatten(v, &mut out).map_err(|m| JsonError { line: 0, column: 0, message: m })?;
                    seen.push(out);
                    Ok(())
                }).expect("valid JSON");
                prop_assert_eq!(seen.len(), 1);
                prop_assert_eq!(seen[0][0].1.clone(), Some(n.to_string()));
                prop_assert_eq!(seen[0][2].1.clone(), Some(s.clone()));
                prop_assert_eq!(seen[0][3].1.clone(), Some("[1,null]".to_string()));
            }
        }
    }
}
