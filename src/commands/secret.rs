//! `ingestor secret set|get|rm|list`: secrets in the OS keyring, by name.
//!
//! Values are read without echo from a terminal, or from stdin when it is not one; they
//! are printed only by `get --show`. `list` prints names, never values.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};

use crate::cli::{Cli, SecretCommand};
use crate::error::{SecretError, UsageError, EXIT_OK, EXIT_SECRET};
use crate::secrets::{self, Keyring, Secret};

/// Run `secret …`.
pub fn run(cli: &Cli, command: &SecretCommand) -> anyhow::Result<i32> {
    match command {
        SecretCommand::Set { name } => set(name),
        SecretCommand::Get { name, show } => get(name, *show),
        SecretCommand::Rm { name } => rm(name),
        SecretCommand::Generate { name, print } => generate(name, *print),
        SecretCommand::List => list(cli),
    }
}

fn checked(name: &str) -> Result<(), UsageError> {
    if secrets::valid_name(name) {
        Ok(())
    } else {
        Err(UsageError(format!(
            "`{name}` cannot name a secret: use letters, digits and `_` (it becomes the \
             variable {})",
            secrets::env_var(name)
        )))
    }
}

/// A keyring that did not answer is exit 5, naming the variable that works without it.
fn unavailable(name: &str, why: String) -> SecretError {
    SecretError::missing(name, Some(why))
}

fn set(name: &str) -> anyhow::Result<i32> {
    checked(name)?;
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value of secret `{name}`: "))?
    } else {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        // `echo token | ingestor secret set x` must not store the newline.
        let trimmed = text.strip_suffix('\n').unwrap_or(&text);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string()
    };
    if value.trim().is_empty() {
        return Err(UsageError(format!(
            "secret `{name}`: the value is empty; nothing stored"
        ))
        .into());
    }
    Keyring::set(name, &Secret::new(value)).map_err(|why| unavailable(name, why))?;
    eprintln!("secret `{name}` stored in the OS keyring");
    if std::env::var_os(secrets::env_var(name)).is_some() {
        eprintln!(
            "note: {} is set in this environment, and wins over the keyring",
            secrets::env_var(name)
        );
    }
    Ok(EXIT_OK)
}

/// A random key: 32 bytes from the OS, as 64 hex digits.
fn generate(name: &str, print: bool) -> anyhow::Result<i32> {
    checked(name)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random bytes: {e}"))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if print {
        outln!("{key}")?;
        return Ok(EXIT_OK);
    }
    if secrets::Keyring::get(name)
        .map_err(|why| unavailable(name, why))?
        .is_some()
    {
        return Err(UsageError(format!(
            "secret `{name}` is already in the OS keyring: a vault keyed with it would no \
             longer load; `ingestor secret rm {name}` first if you mean to replace it"
        ))
        .into());
    }
    Keyring::set(name, &Secret::new(key)).map_err(|why| unavailable(name, why))?;
    eprintln!(
        "a random 256-bit key is stored as secret `{name}` in the OS keyring; keep a copy \
         (`ingestor secret get {name} --show`): without it the vault cannot be extended or \
         rebuilt with the same keys"
    );
    Ok(EXIT_OK)
}

fn get(name: &str, show: bool) -> anyhow::Result<i32> {
    checked(name)?;
    let (value, origin) = secrets::locate(name)?;
    if show {
        outln!("{}", value.expose())?;
    } else {
        outln!("{name}: set ({}); --show prints it", origin.describe(name))?;
    }
    Ok(EXIT_OK)
}

fn rm(name: &str) -> anyhow::Result<i32> {
    checked(name)?;
    if Keyring::remove(name).map_err(|why| unavailable(name, why))? {
        eprintln!("secret `{name}` removed from the OS keyring");
        if std::env::var_os(secrets::env_var(name)).is_some() {
            eprintln!(
                "note: {} is still set in this environment",
                secrets::env_var(name)
            );
        }
        Ok(EXIT_OK)
    } else {
        eprintln!("error: secret `{name}` is not in the OS keyring");
        Ok(EXIT_SECRET)
    }
}

/// Every name the keyring holds for ingestor, and every name the project's definitions
/// use, with where each is set and who uses it.
fn list(cli: &Cli) -> anyhow::Result<i32> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Definitions that do not load (or no project here) only mean no "used by".
    if let Ok(defs) = crate::defs::Definitions::load(&cli.dir) {
        for (name, user) in defs.secret_names() {
            names.entry(name).or_default().push(user);
        }
    }
    let stored = Keyring::names();
    if let Ok(stored) = &stored {
        for name in stored {
            names.entry(name.clone()).or_default();
        }
    }
    let mut missing = false;
    for (name, users) in &names {
        // When the keyring cannot list its entries, a name is still looked up in it.
        let in_keyring = match &stored {
            Ok(s) => s.contains(name),
            Err(_) => matches!(Keyring::get(name), Ok(Some(_))),
        };
        let origin = if secrets::in_env(name) {
            "environment"
        } else if in_keyring {
            "keyring"
        } else {
            missing = true;
            "missing"
        };
        let used = if users.is_empty() {
            String::new()
        } else {
            format!("  used by {}", users.join(", "))
        };
        outln!("{name}\t{origin}{used}")?;
    }
    if let Err(why) = stored {
        eprintln!("warning: {why}; only names the definitions use are listed");
    }
    Ok(if missing { EXIT_SECRET } else { EXIT_OK })
}
