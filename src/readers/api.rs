//! `type = "api"`: HTTP JSON APIs.
//!
//! One sync of an API source is one unit. `fetch` makes the requests, page by page, from
//! the cursor the source's last load saved; every response body goes into the lake as it
//! arrives, untouched. When the last page is in, a small page list (the unit document:
//! the pages' URLs without secrets, their lake objects, the cursor the sync started from)
//! is stored too, and its hash is the unit's. The pipeline then loads that unit like a
//! file: `open` reads the bodies back from the lake (no network; so `rebuild` replays API
//! units offline), and the new cursor is the reader's end state, committed in the unit's
//! transaction. A failure or a crash at any page leaves the vault and the cursor as they
//! were; an unchanged response (same bodies, same cursor) is an unchanged unit, skipped.
//!
//! Nothing is guessed: pagination is the one the source names, with explicit stop rules;
//! a repeated cursor or URL, or `max_pages`, stops with an error rather than looping.

use std::collections::HashSet;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::json::{Document, Layout, RecordsReader, Track};
use super::{InputReader, OpenContext, ReaderKind, ValueFormat};
use crate::error::ReadError;
use crate::json::{self, Parser, Value};
use crate::lake::Lake;
use crate::secrets::{Secret, SecretStore};

/// Largest response body kept, after gzip: a page is far smaller.
const MAX_BODY_BYTES: u64 = 512 << 20;

/// `[reader] type = "api"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// The first request's URL (http or https).
    pub url: String,
    /// Query parameters of the first request.
    #[serde(default)]
    pub params: IndexMap<String, toml::Value>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// JSON pointer to the array of records in each body; `""` is the body itself.
    #[serde(default)]
    pub records: String,
    /// How the next page is found.
    #[serde(default)]
    pub paginate: Paginate,
    /// Credentials, from a secret.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Only what changed since the last sync.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// Time allowed for one request, as `30s`, `2m` (default 30s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Most pages one sync fetches (default 10000); more is an error, not a silent stop.
    #[serde(default)]
    pub max_pages: Option<u32>,
    /// Retries of a request after a connection error, 408, 429 or 5xx (default 5).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Most time spent waiting between retries of one request (default 2m).
    #[serde(default)]
    pub max_retry_wait: Option<String>,
    /// Decimal separator of numbers written as strings.
    #[serde(default)]
    pub decimal_separator: Option<String>,
    /// Thousands separator of numbers written as strings.
    #[serde(default)]
    pub thousands_separator: Option<String>,
    /// chrono format of dates written as strings; ISO 8601 when omitted.
    #[serde(default)]
    pub date_format: Option<super::DateFormats>,
    /// chrono format of timestamps written as strings; ISO 8601 / RFC 3339 when omitted.
    #[serde(default)]
    pub timestamp_format: Option<String>,
}

/// `paginate = { type = ..., ... }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paginate {
    /// One request.
    #[default]
    None,
    /// The `Link` header's `rel="next"` URL; stop when there is none.
    LinkHeader,
    /// The URL at a JSON pointer of the body; stop on null, empty or missing.
    NextUrl { path: String },
    /// The value at `path` sent as `param`; stop on null, empty or missing.
    Cursor { param: String, path: String },
    /// Page numbers in `param` from `start` (default 1); stop on an empty page, or one
    /// with fewer than `page_size` records when that is given.
    Page {
        param: String,
        #[serde(default)]
        start: Option<i64>,
        #[serde(default)]
        page_size: Option<u64>,
    },
    /// Offsets in `param` from 0, `limit` records a page sent as `limit_param`; stop on a
    /// page with fewer than `limit` records.
    Offset {
        param: String,
        limit_param: String,
        limit: u64,
    },
}

/// `auth = { type = ..., secret = ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// `Authorization: Bearer <secret>`.
    Bearer { secret: String },
    /// `Authorization: Basic base64(username:secret)`.
    Basic { username: String, secret: String },
    /// A header of its own holding the secret.
    Header { name: String, secret: String },
    /// A query parameter holding the secret (masked in every URL ingestor shows or keeps).
    Query { param: String, secret: String },
}

impl Auth {
    fn secret(&self) -> &str {
        match self {
            Auth::Bearer { secret }
            | Auth::Basic { secret, .. }
            | Auth::Header { secret, .. }
            | Auth::Query { secret, .. } => secret,
        }
    }
}

/// `incremental = { param = ..., field = ... | token = ... }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// The query parameter the saved cursor is sent as.
    pub param: String,
    /// The cursor is the largest value of this column (flattened name) over the sync.
    #[serde(default)]
    pub field: Option<String>,
    /// The cursor is the value at this JSON pointer of the last page (a sync token).
    #[serde(default)]
    pub token: Option<String>,
    /// The value sent on the first sync, before any cursor was saved.
    #[serde(default)]
    pub initial: Option<String>,
}

/// A duration option: `500ms`, `30s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit() && c != '.')?);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

impl ReaderKind for ApiConfig {
    fn path(&self) -> &str {
        &self.url
    }

    fn extensions(&self) -> &'static [&'static str] {
        &[]
    }

    fn check(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return err(
                "url",
                format!("`{}` is not an http:// or https:// URL", self.url),
            );
        }
        json::parse_pointer(&self.records).map_err(|e| ("records".to_string(), e))?;
        for (k, v) in &self.params {
            if scalar(v).is_none() {
                return err(
                    &format!("params.{k}"),
                    "expected a string or a number".into(),
                );
            }
        }
        for (key, d) in [
            ("timeout", &self.timeout),
            ("max_retry_wait", &self.max_retry_wait),
        ] {
            if let Some(d) = d {
                if parse_duration(d).is_none() {
                    return err(
                        key,
                        format!("`{d}` is not a duration such as `30s` or `2m`"),
                    );
                }
            }
        }
        match &self.paginate {
            Paginate::NextUrl { path } | Paginate::Cursor { path, .. } => {
                json::parse_pointer(path).map_err(|e| ("paginate.path".to_string(), e))?;
            }
            Paginate::Offset { limit: 0, .. } => {
                return err("paginate.limit", "must be at least 1".into());
            }
            _ => {}
        }
        if let Some(auth) = &self.auth {
            if !crate::secrets::valid_name(auth.secret()) {
                return err(
                    "auth.secret",
                    "a secret name: letters, digits and `_`".into(),
                );
            }
        }
        if let Some(inc) = &self.incremental {
            match (&inc.field, &inc.token) {
                (Some(_), None) => {}
                (None, Some(t)) => {
                    json::parse_pointer(t).map_err(|e| ("incremental.token".to_string(), e))?;
                }
                _ => {
                    return err(
                        "incremental",
                        "give one of `field` (the largest value of a column) or `token` (a \
                         JSON pointer to the server's sync token)"
                            .into(),
                    )
                }
            }
        }
        if self.max_pages == Some(0) {
            return err("max_pages", "must be at least 1".into());
        }
        super::json::text_options!(self).check()?;
        super::json::every_format_has_a_year(self.date_format.as_ref())
    }

    fn value_format(&self) -> ValueFormat {
        super::json::text_options!(self).value_format()
    }

    fn open(&self, ctx: &OpenContext<'_>) -> Result<Box<dyn InputReader>, ReadError> {
        Ok(Box::new(self.open_unit(ctx)?))
    }

    fn secrets(&self) -> Vec<&str> {
        self.auth.iter().map(|a| a.secret()).collect()
    }

    fn remote(&self) -> Option<&ApiConfig> {
        Some(self)
    }
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The unit document: what one sync fetched, as the lake keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct UnitDoc {
    /// Marks the document and its layout.
    ingestor_api_unit: u32,
    /// The first request's URL, without secrets.
    url: String,
    /// The cursor the sync started from.
    state: Option<String>,
    pages: Vec<PageRef>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PageRef {
    /// The request's URL, without secrets.
    url: String,
    /// The body's lake object.
    body: String,
}

/// The objects an API unit document names (its pages' bodies), if `bytes` is one.
pub fn unit_objects(bytes: &[u8]) -> Option<Vec<String>> {
    if !bytes.starts_with(b"{") {
        return None;
    }
    let doc: UnitDoc = serde_json::from_slice(bytes).ok()?;
    Some(doc.pages.into_iter().map(|p| p.body).collect())
}

/// What `fetch` needs besides the config.
pub struct FetchContext<'a> {
    pub source: &'a str,
    pub lake: &'a Lake,
    pub secrets: &'a dyn SecretStore,
    /// The cursor the source's last load saved.
    pub state: Option<&'a str>,
    /// Told each page as it arrives.
    pub on_page: &'a dyn Fn(usize),
}

/// One sync's unit, in the lake.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The unit document's hash.
    pub hash: String,
    pub size: u64,
    /// How messages name the unit: the URL without secrets.
    pub name: String,
}

/// One request, as built.
struct Request {
    url: String,
    headers: Vec<(String, String)>,
    /// The URL as shown and kept: secrets masked.
    shown: String,
}

impl ApiConfig {
    /// The cursor a sync starts from: the saved one, else `initial`.
    fn start_state(&self, saved: Option<&str>) -> Option<String> {
        let inc = self.incremental.as_ref()?;
        saved.map(str::to_string).or_else(|| inc.initial.clone())
    }

    /// Query parameters of a built request (not the next-URL kinds): `params`, the
    /// incremental cursor, and the page's own.
    fn params(&self, state: Option<&str>, page: &[(String, String)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .params
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
            .collect();
        let mut set = |k: &str, v: &str| match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        };
        if let (Some(inc), Some(s)) = (&self.incremental, state) {
            set(&inc.param, s);
        }
        for (k, v) in page {
            set(k, v);
        }
        out
    }

    /// A request for `url`, with the auth and headers every request carries.
    fn request(&self, url: String, secret: Option<&Secret>) -> Request {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut url = url;
        let mut shown = url.clone();
        match (&self.auth, secret) {
            (Some(Auth::Bearer { .. }), Some(s)) => {
                headers.push(("Authorization".into(), format!("Bearer {}", s.expose())));
            }
            (Some(Auth::Basic { username, .. }), Some(s)) => {
                let token = base64(format!("{username}:{}", s.expose()).as_bytes());
                headers.push(("Authorization".into(), format!("Basic {token}")));
            }
            (Some(Auth::Header { name, .. }), Some(s)) => {
                headers.push((name.clone(), s.expose().to_string()));
            }
            (Some(Auth::Query { param, .. }), Some(s)) => {
                let (with, masked) = (
                    with_params(&url, &[(param.clone(), s.expose().to_string())]),
                    with_encoded_params(&shown, &[(encode(param), "***".into())]),
                );
                url = with;
                shown = masked;
            }
            _ => {}
        }
        Request {
            url,
            headers,
            shown: strip_userinfo(&shown),
        }
    }

    /// The source's URL as messages show it: without `user:password@`.
    pub fn shown_url(&self) -> String {
        strip_userinfo(&self.url)
    }

    /// The first request a sync would make, secrets masked (`sync --dry-run`).
    pub fn first_request(&self, state: Option<&str>) -> String {
        let state = self.start_state(state);
        let url = with_params(
            &self.url,
            &self.params(state.as_deref(), &self.first_page()),
        );
        let req = self.request(url, Some(&Secret::new("***")));
        let headers: Vec<String> = req
            .headers
            .iter()
            .map(|(k, v)| {
                let auth_header = match &self.auth {
                    Some(Auth::Bearer { .. }) | Some(Auth::Basic { .. }) => {
                        k.eq_ignore_ascii_case("authorization")
                    }
                    Some(Auth::Header { name, .. }) => k.eq_ignore_ascii_case(name),
                    _ => false,
                };
                if auth_header {
                    let scheme = v
                        .split(' ')
                        .next()
                        .filter(|s| *s == "Bearer" || *s == "Basic");
                    format!(
                        "{k}: {}***",
                        scheme.map(|s| format!("{s} ")).unwrap_or_default()
                    )
                } else {
                    format!("{k}: {v}")
                }
            })
            .collect();
        if headers.is_empty() {
            format!("GET {}", req.shown)
        } else {
            format!("GET {} ({})", req.shown, headers.join("; "))
        }
    }

    /// The page parameters of the first request.
    fn first_page(&self) -> Vec<(String, String)> {
        match &self.paginate {
            Paginate::Page { param, start, .. } => {
                vec![(param.clone(), start.unwrap_or(1).to_string())]
            }
            Paginate::Offset {
                param,
                limit_param,
                limit,
            } => vec![
                (param.clone(), "0".into()),
                (limit_param.clone(), limit.to_string()),
            ],
            _ => Vec::new(),
        }
    }

    /// Fetch one sync's pages into the lake; the unit they make.
    pub fn fetch(&self, ctx: &FetchContext<'_>) -> anyhow::Result<Fetched> {
        let secret = match &self.auth {
            Some(auth) => Some(ctx.secrets.get(auth.secret())?),
            None => None,
        };
        let state = self.start_state(ctx.state);
        let timeout = self
            .timeout
            .as_deref()
            .and_then(parse_duration)
            .unwrap_or(Duration::from_secs(30));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(format!("ingestor/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let policy = Retry {
            retries: self.retries.unwrap_or(5),
            max_wait: self
                .max_retry_wait
                .as_deref()
                .and_then(parse_duration)
                .unwrap_or(Duration::from_secs(120)),
        };
        let max_pages = self.max_pages.unwrap_or(10_000) as usize;
        let records = json::parse_pointer(&self.records).map_err(|m| invalid(&self.url, m))?;
        let capture = match &self.paginate {
            Paginate::NextUrl { path } | Paginate::Cursor { path, .. } => {
                Some(json::parse_pointer(path).map_err(|m| invalid(&self.url, m))?)
            }
            _ => None,
        };
        let mut page_params = self.first_page();
        let mut url = with_params(&self.url, &self.params(state.as_deref(), &page_params));
        let mut seen_urls = HashSet::new();
        let mut seen_cursors = HashSet::new();
        let mut pages = Vec::new();
        let mut first_shown = None;
        loop {
            // The secret goes only where the source says: a next link to another host
            // (or from https to http) is refused, not followed with the credentials.
            if secret.is_some() && origin(&url) != origin(&self.url) {
                return Err(invalid(
                    &strip_userinfo(&url),
                    format!(
                        "the server sent a next page on another origin than `{}`; its \
                         credentials are not sent there",
                        origin(&self.shown_url())
                    ),
                )
                .into());
            }
            let req = self.request(url.clone(), secret.as_ref());
            first_shown.get_or_insert_with(|| req.shown.clone());
            let n = pages.len() + 1;
            if n > max_pages {
                return Err(invalid(
                    &req.shown,
                    format!(
                        "stopped at page {n}: more than max_pages = {max_pages}; raise \
                         max_pages if the API really has that many"
                    ),
                )
                .into());
            }
            if !seen_urls.insert(req.url.clone()) {
                return Err(invalid(
                    &req.shown,
                    format!("page {n} would request the same URL again: stopped rather than loop"),
                )
                .into());
            }
            let reply = send(&agent, &req, &policy, self.auth.as_ref())?;
            // Read it now: a body that is not JSON or is cut short fails the sync here.
            let mut count = 0u64;
            let mut captures: Vec<(Vec<String>, Option<Value>)> =
                capture.iter().map(|p| (p.clone(), None)).collect();
            Parser::new(reply.body.as_slice())
                .records(&records, &mut captures, &mut |_, _| {
                    count += 1;
                    Ok(())
                })
                .map_err(|e| ReadError::Malformed {
                    path: format!("{} (page {n})", req.shown),
                    line: e.line,
                    message: format!("column {}: {}", e.column, e.message),
                })?;
            let (hash, _) = ctx.lake.store_bytes(&reply.body, &req.shown, ctx.source)?;
            pages.push(PageRef {
                url: req.shown.clone(),
                body: hash,
            });
            (ctx.on_page)(n);
            let captured = captures.into_iter().next().and_then(|(_, v)| v);
            let next: Option<String> = match &self.paginate {
                Paginate::None => None,
                Paginate::LinkHeader => reply.next_link.map(|link| resolve(&url, &link)),
                Paginate::NextUrl { .. } => text_of(captured).map(|link| resolve(&url, &link)),
                Paginate::Cursor { param, .. } => match text_of(captured) {
                    None => None,
                    Some(cursor) => {
                        if !seen_cursors.insert(cursor.clone()) {
                            return Err(invalid(
                                &req.shown,
                                format!(
                                    "page {n} gave cursor `{}` a second time: stopped rather \
                                     than loop",
                                    crate::validate::shorten(&cursor)
                                ),
                            )
                            .into());
                        }
                        set_param(&mut page_params, param, cursor);
                        Some(with_params(
                            &self.url,
                            &self.params(state.as_deref(), &page_params),
                        ))
                    }
                },
                Paginate::Page {
                    param, page_size, ..
                } => {
                    let short = page_size.is_some_and(|size| count < size);
                    if count == 0 || short {
                        None
                    } else {
                        let next = page_params
                            .iter()
                            .find(|(k, _)| k == param)
                            .and_then(|(_, v)| v.parse::<i64>().ok())
                            .unwrap_or(1)
                            .saturating_add(1);
                        set_param(&mut page_params, param, next.to_string());
                        Some(with_params(
                            &self.url,
                            &self.params(state.as_deref(), &page_params),
                        ))
                    }
                }
                Paginate::Offset { param, limit, .. } => {
                    if count < *limit {
                        None
                    } else {
                        let next = page_params
                            .iter()
                            .find(|(k, _)| k == param)
                            .and_then(|(_, v)| v.parse::<u64>().ok())
                            .unwrap_or(0)
                            .saturating_add(*limit);
                        set_param(&mut page_params, param, next.to_string());
                        Some(with_params(
                            &self.url,
                            &self.params(state.as_deref(), &page_params),
                        ))
                    }
                }
            };
            match next {
                Some(u) => url = u,
                None => break,
            }
        }
        let name = self.shown_url();
        let doc = UnitDoc {
            ingestor_api_unit: 1,
            url: first_shown.unwrap_or_else(|| name.clone()),
            state,
            pages,
        };
        let bytes = serde_json::to_vec_pretty(&doc)?;
        let (hash, _) =
            ctx.lake
                .store_bytes(&bytes, &format!("{name} (pages of one sync)"), ctx.source)?;
        Ok(Fetched {
            hash,
            size: bytes.len() as u64,
            name,
        })
    }

    /// Open a unit the lake holds: its page list, then each page's body.
    fn open_unit(&self, ctx: &OpenContext<'_>) -> Result<RecordsReader, ReadError> {
        let bad = |m: String| ReadError::Invalid {
            path: ctx.name.to_string(),
            message: m,
        };
        let bytes = std::fs::read(ctx.path).map_err(|source| ReadError::Io {
            path: ctx.name.to_string(),
            source,
        })?;
        let doc: UnitDoc = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not the page list of an API sync: {e}")))?;
        let lake = ctx
            .lake
            .ok_or_else(|| bad("the pages of an API sync are read from the lake".into()))?;
        let records = json::parse_pointer(&self.records).map_err(&bad)?;
        let mut documents = Vec::with_capacity(doc.pages.len());
        for (i, page) in doc.pages.iter().enumerate() {
            if !crate::lake::is_hash(&page.body) {
                return Err(bad(format!("page {} names no lake object", i + 1)));
            }
            let path = lake.path_of(&page.body);
            // The body is what was fetched, or the unit fails: a damaged lake is not data.
            let (hash, _) = crate::lake::hash_file(&path, &page.url)?;
            if hash != page.body {
                return Err(bad(format!(
                    "the lake copy of page {} is damaged (`{}`); run `ingestor lake verify`",
                    i + 1,
                    path.display()
                )));
            }
            documents.push(Document {
                path,
                name: format!("{} (page {})", page.url, i + 1),
                layout: Layout::Records(records.clone()),
            });
        }
        let token = match &self.incremental {
            Some(Incremental { token: Some(t), .. }) => vec![json::parse_pointer(t).map_err(&bad)?],
            _ => Vec::new(),
        };
        let track = match &self.incremental {
            Some(Incremental {
                field: Some(field), ..
            }) => Some(Track {
                column: field,
                later,
            }),
            _ => None,
        };
        let mut reader = RecordsReader::open(documents, true, &token, track)?;
        let end = match &self.incremental {
            Some(Incremental { field: Some(_), .. }) => {
                match (reader.scan().latest.clone(), doc.state) {
                    (Some(s), Some(start)) if !later(&s, &start) => Some(start),
                    (Some(s), _) => Some(s),
                    (None, _) => None,
                }
            }
            Some(Incremental { token: Some(_), .. }) => reader
                .scan()
                .captured
                .last()
                .and_then(|c| c.first().cloned().flatten())
                .and_then(|v| text_of(Some(v))),
            _ => None,
        };
        reader.set_end_state(end);
        Ok(reader)
    }
}

/// Whether cursor value `a` comes after `b`: as numbers when both are, else as text
/// (ISO 8601 timestamps in one format sort as text).
fn later(a: &str, b: &str) -> bool {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => x > y,
        _ => a > b,
    }
}

/// The text of a captured value; `None` for null, empty, arrays and objects.
fn text_of(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n),
        _ => None,
    }
}

fn set_param(params: &mut Vec<(String, String)>, key: &str, value: String) {
    match params.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => params.push((key.to_string(), value)),
    }
}

fn invalid(url: &str, message: String) -> ReadError {
    ReadError::Invalid {
        path: url.to_string(),
        message,
    }
}

/// How requests are retried.
struct Retry {
    retries: u32,
    max_wait: Duration,
}

/// A successful response.
struct Reply {
    body: Vec<u8>,
    next_link: Option<String>,
}

/// Send a request, retrying connection errors, 408, 429 and 5xx with exponential backoff
/// and jitter, honouring `Retry-After`.
fn send(
    agent: &ureq::Agent,
    req: &Request,
    policy: &Retry,
    auth: Option<&Auth>,
) -> Result<Reply, ReadError> {
    let mut waited = Duration::ZERO;
    let mut attempt = 0u32;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 | 1)
        .unwrap_or(0x9E37_79B9);
    loop {
        let mut call = agent.get(&req.url);
        for (k, v) in &req.headers {
            call = call.header(k, v);
        }
        let (last, retry_after) = match call.call() {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    let next_link = resp
                        .headers()
                        .get_all("link")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(next_link);
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(MAX_BODY_BYTES)
                        .read_to_vec()
                        .map_err(|e| {
                            invalid(&req.shown, format!("cannot read the response: {e}"))
                        })?;
                    return Ok(Reply { body, next_link });
                }
                if status == 401 || status == 403 {
                    let whose = auth
                        .map(|a| format!("the credentials of secret `{}`", a.secret()))
                        .unwrap_or_else(|| "the request (no `auth` is set)".into());
                    return Err(invalid(
                        &req.shown,
                        format!("the server refused {whose}: HTTP {status}"),
                    ));
                }
                let retryable = status == 408 || status == 429 || (500..600).contains(&status);
                if !retryable {
                    return Err(invalid(&req.shown, format!("HTTP {status}")));
                }
                let after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after);
                (format!("HTTP {status}"), after)
            }
            Err(e) => {
                let retryable = matches!(
                    e,
                    ureq::Error::Io(_)
                        | ureq::Error::ConnectionFailed
                        | ureq::Error::HostNotFound
                        | ureq::Error::Timeout(_)
                        | ureq::Error::Protocol(_)
                );
                // ureq's messages may hold the URL; the shown URL is the one without secrets.
                let what = describe_error(&e);
                if !retryable {
                    return Err(invalid(&req.shown, what));
                }
                (what, None)
            }
        };
        // Exponential backoff from 0.5 s with jitter (half to all of it), at most 30 s a
        // wait; the server's Retry-After, when it sends one, is the wait.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let jitter = 0.5 + (seed % 1000) as f64 / 2000.0;
        let backoff = Duration::from_secs_f64((0.5 * 2f64.powi(attempt as i32)).min(30.0) * jitter);
        let wait = retry_after.unwrap_or(backoff);
        if attempt >= policy.retries || waited.saturating_add(wait) > policy.max_wait {
            return Err(invalid(
                &req.shown,
                format!(
                    "gave up after {} attempt{}: {last}{}",
                    attempt + 1,
                    if attempt == 0 { "" } else { "s" },
                    if waited.saturating_add(wait) > policy.max_wait && attempt < policy.retries {
                        format!(
                            " (the next wait, {:.1} s, would pass max_retry_wait)",
                            wait.as_secs_f64()
                        )
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        std::thread::sleep(wait);
        waited = waited.saturating_add(wait);
        attempt += 1;
    }
}

/// A transport error in words, without the URL (which may hold a query secret).
fn describe_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::BodyExceedsLimit(n) => format!("the response is larger than {n} bytes"),
        ureq::Error::Decompress(what, _) => format!("the {what} response cannot be decompressed"),
        ureq::Error::TooManyRedirects => "too many redirects".into(),
        ureq::Error::BadUri(_) => "not a valid URL".into(),
        ureq::Error::Protocol(p) => format!("HTTP protocol error: {p}"),
        ureq::Error::Tls(t) => format!("TLS error: {t}"),
        ureq::Error::Rustls(r) => format!("TLS error: {r}"),
        other => format!(
            "request failed: {}",
            other.to_string().split(" for url").next().unwrap_or("")
        ),
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let left = when.signed_duration_since(chrono::Utc::now());
    Some(left.to_std().unwrap_or(Duration::ZERO))
}

/// The `rel="next"` URL of one `Link` header value.
fn next_link(header: &str) -> Option<String> {
    // Links are separated by commas outside `<…>`: a URL may hold commas itself.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in header.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth <= 0 => {
                parts.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&header[start..]);
    parts.into_iter().find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .filter_map(|p| p.split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
            .then(|| target.to_string())
    })
}

/// `link` made absolute against `base`.
fn resolve(base: &str, link: &str) -> String {
    if link.starts_with("http://") || link.starts_with("https://") {
        return link.to_string();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let origin_end = base[scheme_end..]
        .find(['/', '?', '#'])
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let origin = &base[..origin_end];
    if let Some(rest) = link.strip_prefix("//") {
        return format!("{}{rest}", &base[..scheme_end]);
    }
    if link.starts_with('/') {
        return format!("{origin}{link}");
    }
    let path_end = base[origin_end..]
        .find(['?', '#'])
        .map(|i| origin_end + i)
        .unwrap_or(base.len());
    if link.starts_with('?') {
        return format!("{}{link}", &base[..path_end]);
    }
    let dir_end = base[origin_end..path_end]
        .rfind('/')
        .map(|i| origin_end + i + 1)
        .unwrap_or(path_end);
    if dir_end == path_end && !base[origin_end..path_end].ends_with('/') {
        return format!("{origin}/{link}");
    }
    format!("{}{link}", &base[..dir_end])
}

/// `url` with query parameters added (or replaced where the URL already has them).
fn with_params(url: &str, params: &[(String, String)]) -> String {
    let encoded: Vec<(String, String)> =
        params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    with_encoded_params(url, &encoded)
}

/// `with_params` for keys and values already percent-encoded (or a mask, `***`).
fn with_encoded_params(url: &str, params: &[(String, String)]) -> String {
    if params.is_empty() {
        return url.to_string();
    }
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, q),
        None => (base, ""),
    };
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or("");
            !params.iter().any(|(k, _)| k == key)
        })
        .map(str::to_string)
        .collect();
    pairs.extend(params.iter().map(|(k, v)| format!("{k}={v}")));
    let mut out = format!("{path}?{}", pairs.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Percent-encode a query key or value (RFC 3986 unreserved characters stay).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Scheme, host and port of a URL, lower case (`https://api.x:443`), without userinfo.
fn origin(url: &str) -> String {
    let url = strip_userinfo(url);
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_ascii_lowercase();
    };
    let end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    url[..end].to_ascii_lowercase()
}

/// A URL without `user:password@`.
fn strip_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map(|i| scheme_end + i)
        .unwrap_or(url.len());
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end], &url[scheme_end + at + 1..]),
        None => url.to_string(),
    }
}

/// Standard base64 with padding (HTTP Basic auth).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_relative_urls() {
        let h = r#"<https://api.x/tx?page=2>; rel="next", <https://api.x/tx?page=9>; rel="last""#;
        assert_eq!(next_link(h).as_deref(), Some("https://api.x/tx?page=2"));
        assert_eq!(next_link(r#"<https://api.x/tx?page=1>; rel="prev""#), None);
        assert_eq!(
            next_link(r#"<https://api.x/tx?fields=a,b&page=2>; rel="next""#).as_deref(),
            Some("https://api.x/tx?fields=a,b&page=2")
        );
        assert_eq!(
            origin("https://u:p@API.x:8443/v1?a=1"),
            "https://api.x:8443"
        );
        assert_ne!(origin("http://api.x/tx"), origin("https://api.x/tx"));
        let base = "https://api.x/v1/tx?page=1";
        assert_eq!(resolve(base, "/v1/tx?page=2"), "https://api.x/v1/tx?page=2");
        assert_eq!(resolve(base, "?page=2"), "https://api.x/v1/tx?page=2");
        assert_eq!(resolve(base, "more?c=1"), "https://api.x/v1/more?c=1");
        assert_eq!(resolve(base, "https://b.y/z"), "https://b.y/z");
    }

    #[test]
    fn params_are_encoded_and_replaced() {
        let url = with_params(
            "https://api.x/tx?limit=5&a=1",
            &[("limit".into(), "100".into()), ("q".into(), "a b&c".into())],
        );
        assert_eq!(url, "https://api.x/tx?a=1&limit=100&q=a%20b%26c");
        assert_eq!(
            strip_userinfo("https://u:p@api.x/tx?a=1"),
            "https://api.x/tx?a=1"
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn basic_auth_is_base64() {
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn cursors_compare_as_numbers_or_text() {
        assert!(later("10", "9"));
        assert!(later("2026-01-02T00:00:00Z", "2026-01-01T23:59:59Z"));
        assert!(!later("2026-01-01", "2026-01-01"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
    }

    #[test]
    fn the_first_request_masks_secrets() {
        let config: ApiConfig = toml::from_str(
            r#"url = "https://api.x/tx"
               params = { limit = 100 }
               auth = { type = "query", param = "key", secret = "k" }
               incremental = { field = "updated", param = "since" }"#,
        )
        .expect("config");
        assert_eq!(
            config.first_request(Some("2026-01-01")),
            "GET https://api.x/tx?limit=100&since=2026-01-01&key=***"
        );
        let bearer: ApiConfig = toml::from_str(
            "url = \"https://api.x/tx\"\nauth = { type = \"bearer\", secret = \"t\" }",
        )
        .expect("config");
        assert_eq!(
            bearer.first_request(None),
            "GET https://api.x/tx (Authorization: Bearer ***)"
        );
    }
}
