//! `serve --config FILE`: the node's options from a TOML file. Its keys are `serve`'s long
//! options, with `_` or `-` (`listen`, `public_url`, `auth_webhook`, `drain_timeout`,
//! `orchestrator`, `signer`...), plural for a list (`orchestrators`, `auth_tokens`); a list
//! repeats the option, `true` sets a flag. Precedence:
//! flags, then environment variables, then the file, then the defaults; lists add up.
//!
//! The file is turned into options placed before the command line's, which `serve` lets later
//! options override.

use std::collections::HashSet;
use std::ffi::OsString;

use toml_edit::{DocumentMut, Item, Value};

/// Options whose environment variable, when set, wins over the file.
const FROM_ENV: [(&str, &str); 2] =
    [("auth-token", "LIVEPEER_GATEWAY_TOKENS"), ("auth-webhook-key", "LIVEPEER_AUTH_WEBHOOK_KEY")];

/// `args` with `serve --config FILE` replaced by the file's options; other commands as they are.
/// `known` are `serve`'s long option names. Errors say which file and key are wrong.
pub fn expand(args: Vec<OsString>, known: &HashSet<String>) -> Result<Vec<OsString>, String> {
    if args.get(1).is_none_or(|a| a != "serve") {
        return Ok(args);
    }
    let mut rest = Vec::with_capacity(args.len());
    let mut file = None;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy().into_owned();
        if text == "--config" {
            file = Some(iter.next().ok_or("--config needs a file")?);
        } else if let Some(path) = text.strip_prefix("--config=") {
            file = Some(OsString::from(path));
        } else {
            rest.push(arg);
        }
    }
    let Some(file) = file else { return Ok(rest) };
    let path = std::path::Path::new(&file);
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let from_file = options(&text, known).map_err(|e| format!("{}: {e}", path.display()))?;
    // `livepeer-gateway serve`, the file's options, then the command line's.
    let mut out: Vec<OsString> = rest.drain(..2).collect();
    out.extend(from_file.into_iter().map(OsString::from));
    out.extend(rest);
    Ok(out)
}

/// The options a TOML text stands for.
fn options(text: &str, known: &HashSet<String>) -> Result<Vec<String>, String> {
    let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.message().to_owned())?;
    let mut out = Vec::new();
    for (key, item) in doc.iter() {
        let mut name = key.replace('_', "-");
        // A list reads better plural: `orchestrators = [...]`, `auth_tokens = [...]`.
        if !known.contains(&name) {
            if let Some(singular) = name.strip_suffix('s').filter(|s| known.contains(*s)) {
                name = singular.to_owned();
            }
        }
        if name == "config" || !known.contains(&name) {
            return Err(format!("unknown key `{key}` (the keys are serve's long options)"));
        }
        if FROM_ENV.iter().any(|(option, env)| *option == name && std::env::var_os(env).is_some()) {
            continue;
        }
        let Item::Value(value) = item else {
            return Err(format!("`{key}` must be a value, not a table"));
        };
        let values: Vec<&Value> = match value {
            Value::Array(list) => list.iter().collect(),
            single => vec![single],
        };
        for value in values {
            match value {
                Value::Boolean(b) if *b.value() => out.push(format!("--{name}")),
                Value::Boolean(_) => {}
                Value::String(s) => out.push(format!("--{name}={}", s.value())),
                Value::Integer(i) => out.push(format!("--{name}={}", i.value())),
                Value::Float(f) => out.push(format!("--{name}={}", f.value())),
                _ => return Err(format!("`{key}` must be a string, a number, a boolean or a list of them")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> HashSet<String> {
        ["listen", "orchestrator", "drain-timeout", "json", "auth-webhook"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn keys_become_options_before_the_command_lines() {
        let text =
            "listen = \"0.0.0.0:1\"\norchestrators = [\"a:1\", \"b:2\"]\ndrain_timeout = 2.5\njson = true\n";
        assert_eq!(
            options(text, &known()).unwrap(),
            [
                "--listen=0.0.0.0:1",
                "--orchestrator=a:1",
                "--orchestrator=b:2",
                "--drain-timeout=2.5",
                "--json"
            ]
        );
        assert!(options("nope = 1", &known()).unwrap_err().contains("unknown key `nope`"));
        assert!(options("listen = {a = 1}", &known()).unwrap_err().contains("listen"));
        assert!(options("listen = ", &known()).is_err());
    }

    #[test]
    fn only_serve_reads_a_config_and_the_command_line_comes_last() {
        let dir = std::env::temp_dir().join(format!("lpgw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:1\"\n").unwrap();
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let expanded = expand(
            args(&["lg", "serve", "--config", file.to_str().unwrap(), "--listen=1.2.3.4:5"]),
            &known(),
        );
        assert_eq!(expanded.unwrap(), args(&["lg", "serve", "--listen=0.0.0.0:1", "--listen=1.2.3.4:5"]));
        assert_eq!(
            expand(args(&["lg", "runners", "--config", "x"]), &known()).unwrap(),
            args(&["lg", "runners", "--config", "x"])
        );
        assert!(expand(args(&["lg", "serve", "--config", "/nonexistent.toml"]), &known())
            .unwrap_err()
            .contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
