//! `ingestor inspect FILE [--source NAME]`: what the PDF reader extracts, line by line,
//! with page, line, x and y; with a source, what its rules make of each line.

use std::path::Path;

use crate::cli::Cli;
use crate::error::{ReadError, UsageError, EXIT_OK};
use crate::readers::pdf::{marks, Mark};
use crate::readers::ReaderConfig;
use crate::secrets::{SecretStore, Secrets};

/// Run `inspect`.
pub fn run(cli: &Cli, file: &Path, source: Option<&str>) -> anyhow::Result<i32> {
    let path = if file.is_absolute() || file.exists() {
        file.to_path_buf()
    } else {
        cli.dir.join(file)
    };
    let name = file.display().to_string();
    let is_pdf = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
    if !is_pdf {
        return Err(UsageError(format!(
            "`{name}`: inspect shows what the PDF reader extracts; for other files, `check` \
             shows their columns"
        ))
        .into());
    }
    let config = match source {
        None => None,
        Some(id) => {
            let defs = crate::defs::Definitions::load(&cli.dir)?;
            let s = defs
                .sources
                .get(id)
                .ok_or_else(|| UsageError(format!("no source `{id}`")))?;
            match &s.reader {
                ReaderConfig::Pdf(c) => Some(c.clone()),
                _ => return Err(UsageError(format!("source `{id}` is not a PDF source")).into()),
            }
        }
    };
    let bytes = std::fs::read(&path).map_err(|source| ReadError::Io {
        path: name.clone(),
        source,
    })?;
    let invalid = |message: String| ReadError::Invalid {
        path: name.clone(),
        message,
    };
    let doc = match crate::pdf::open(&bytes, None) {
        Err(crate::pdf::PdfError::NeedsPassword) => {
            let secret = config
                .as_ref()
                .and_then(|c| c.password_secret.clone())
                .ok_or_else(|| {
                    invalid(
                        "is encrypted with a password: give --source with a `password_secret`"
                            .into(),
                    )
                })?;
            let password = Secrets.get(&secret)?;
            crate::pdf::open(&bytes, Some(password.expose())).map_err(|e| invalid(e.to_string()))?
        }
        other => other.map_err(|e| invalid(e.to_string()))?,
    };
    let pages = crate::pdf::pages(&doc).map_err(|e| invalid(e.to_string()))?;
    let marked = match &config {
        Some(c) => Some(marks(c, &pages).map_err(|(k, m)| UsageError(format!("`{k}`: {m}")))?),
        None => None,
    };
    outln!(
        "page line      x      y  {}text",
        if marked.is_some() { "mark  " } else { "" }
    )?;
    for (p, page) in pages.iter().enumerate() {
        for (i, line) in page.lines.iter().enumerate() {
            let mark = marked
                .as_ref()
                .map(|m| format!("{:<5} ", m[p][i].as_str()))
                .unwrap_or_default();
            outln!(
                "{:>4} {:>4} {:>6.1} {:>6.1}  {mark}{}",
                page.number,
                i + 1,
                line.x,
                line.y,
                crate::validate::shorten_to(&line.text, 200)
            )?;
        }
    }
    if pages.iter().all(|p| p.lines.is_empty()) {
        eprintln!("note: no text layer (scanned?): its pages are images");
    }
    if let Some(m) = &marked {
        let lost = m
            .iter()
            .flatten()
            .filter(|k| matches!(k, Mark::Lost | Mark::Unmapped))
            .count();
        let rows = m.iter().flatten().filter(|k| **k == Mark::Row).count();
        eprintln!("{rows} rows; {lost} lines a sync would fail on (LOST, NOMAP)");
    }
    Ok(EXIT_OK)
}
