//! `ingestor check`: every source's inputs against its tags, reading only their headers.

use anyhow::Context;
use serde::Serialize;

use crate::cli::{CheckArgs, CheckFormat, Cli};
use crate::error::{exit_code, EXIT_OK};
use crate::plan::Project;
use crate::readers::OpenContext;
use crate::validate::Contract;

/// The result for one input (or for a source whose inputs cannot be listed).
#[derive(Debug, Serialize)]
struct Finding {
    source: String,
    path: String,
    ok: bool,
    error: Option<String>,
    exit_code: i32,
}

/// Run `check`.
pub fn run(cli: &Cli, args: &CheckArgs) -> anyhow::Result<i32> {
    let project = Project::load(cli)?;
    let mut findings = Vec::new();
    for source in project.defs.select(&args.sources)? {
        let paths = match source.reader.inputs(&project.defs.dir) {
            Ok(p) => p,
            Err(e) => {
                let e = anyhow::Error::new(e).context(format!("source `{}`", source.id));
                findings.push(Finding {
                    source: source.id.clone(),
                    path: source.reader.path().to_string(),
                    ok: false,
                    error: Some(format!("{e:#}")),
                    exit_code: exit_code(&e),
                });
                continue;
            }
        };
        for path in paths {
            let name = project.display(&path);
            let result = source
                .reader
                .open(&OpenContext::file(&path, &name))
                .map_err(anyhow::Error::new)
                .and_then(|r| {
                    Contract::new(&project.defs, source, &r.schema(), &name)
                        .map(|_| ())
                        .map_err(anyhow::Error::new)
                })
                .with_context(|| format!("source `{}`", source.id));
            let (ok, error, code) = match result {
                Ok(()) => (true, None, EXIT_OK),
                Err(e) => (false, Some(format!("{e:#}")), exit_code(&e)),
            };
            findings.push(Finding {
                source: source.id.clone(),
                path: name,
                ok,
                error,
                exit_code: code,
            });
        }
    }
    let code = findings
        .iter()
        .map(|f| f.exit_code)
        .max()
        .unwrap_or(EXIT_OK);
    match args.format {
        CheckFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": code == EXIT_OK,
                "exit_code": code,
                "inputs": findings,
            }))?
        )?,
        CheckFormat::Github => {
            for f in findings.iter().filter(|f| !f.ok) {
                outln!(
                    "::error file={},title=ingestor check: {}::{}",
                    f.path,
                    f.source,
                    f.error.as_deref().unwrap_or("").replace('\n', "%0A")
                )?;
            }
        }
        CheckFormat::Human => {
            for f in &findings {
                if f.ok {
                    if !cli.quiet {
                        outln!("ok    {:<16} {}", f.source, f.path)?;
                    }
                } else {
                    outln!(
                        "FAIL  {:<16} {}: {}",
                        f.source,
                        f.path,
                        f.error.as_deref().unwrap_or("")
                    )?;
                }
            }
        }
    }
    Ok(code)
}
