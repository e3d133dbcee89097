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
        // An API source is checked on what its last sync fetched, from the lake: `check`
        // makes no request.
        let listed = if source.reader.kind().remote().is_some() {
            let last = project
                .lake
                .manifest()
                .ok()
                .and_then(|m| m.loads().filter(|l| l.source == source.id).last().cloned());
            match last {
                Some(load) => Ok(vec![(project.lake.path_of(&load.hash), load.name)]),
                None => {
                    if !cli.quiet && args.format == CheckFormat::Human {
                        eprintln!(
                            "note: source `{}` is an API not synced yet: nothing to check \
                             until its first sync",
                            source.id
                        );
                    }
                    Ok(Vec::new())
                }
            }
        } else {
            source.reader.inputs(&project.defs.dir).map(|paths| {
                paths
                    .into_iter()
                    .map(|p| {
                        let name = project.display(&p);
                        (p, name)
                    })
                    .collect()
            })
        };
        let paths = match listed {
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
        for (path, name) in paths {
            let ctx = OpenContext {
                lake: Some(&project.lake),
                ..OpenContext::file(&path, &name)
            };
            let result = source
                .reader
                .open(&ctx)
                .map_err(anyhow::Error::new)
                .and_then(|r| {
                    project.check_width(&name, r.columns().len())?;
                    if r.no_records() {
                        return Ok(());
                    }
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
        CheckFormat::Junit => out!("{}", junit(&findings))?,
        CheckFormat::Github => {
            // The annotation goes on the source's definition, which a pull request changes
            // (an input is often not in the repository at all); the message names the input.
            let sources_dir = project.defs.dir.join(&project.defs.project.sources);
            for f in findings.iter().filter(|f| !f.ok) {
                let definition = project.display(&sources_dir.join(format!("{}.toml", f.source)));
                outln!(
                    "::error file={definition},title=ingestor check: {}::{}: {}",
                    f.source,
                    f.path,
                    f.error
                        .as_deref()
                        .unwrap_or("")
                        .replace('%', "%25")
                        .replace('\n', "%0A")
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

/// The findings as JUnit XML: one test suite per source, one test case per input, a
/// failure with the message where the input breaks the contract or cannot be read.
fn junit(findings: &[Finding]) -> String {
    let esc = |s: &str| {
        // XML 1.0 has no place for other control characters, whatever an input held.
        let s: String = s
            .chars()
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
            .collect();
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    };
    let mut sources: Vec<&str> = findings.iter().map(|f| f.source.as_str()).collect();
    sources.dedup();
    let failures = findings.iter().filter(|f| !f.ok).count();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ingestor check\" \
         tests=\"{}\" failures=\"{failures}\">\n",
        findings.len()
    );
    for source in sources {
        let cases: Vec<&Finding> = findings.iter().filter(|f| f.source == source).collect();
        let failed = cases.iter().filter(|f| !f.ok).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">\n",
            esc(source),
            cases.len()
        ));
        for f in cases {
            let name = format!(
                "  <testcase classname=\"{}\" name=\"{}\"",
                esc(source),
                esc(&f.path)
            );
            match &f.error {
                None => xml.push_str(&format!("  {name}/>\n")),
                Some(e) => xml.push_str(&format!(
                    "  {name}>\n      <failure message=\"{}\" type=\"exit {}\">{}</failure>\n    </testcase>\n",
                    esc(e),
                    f.exit_code,
                    esc(e)
                )),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}
