//! Folds clap's multi-line usage errors into the project's one-line form, keeping what tells the user what to fix:
//! the names of missing arguments, the "did you mean" suggestion, the rejected value with its flag, the allowed
//! values, and which `--help` to read.
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::values::ValueError;

/// `--vdd <V>` → `--vdd`: the flag as the user types it (positional `<FILE>` stays as it is).
fn flag_name(arg: &str) -> &str {
    if arg.starts_with('-') {
        arg.split([' ', '=']).next().unwrap_or(arg)
    } else {
        arg
    }
}

fn ctx_string(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join(", ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::StyledStrs(v) => Some(
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ContextValue::Number(n) => Some(n.to_string()),
        ContextValue::Bool(b) => Some(b.to_string()),
        ContextValue::None => None,
        _ => None,
    }
}

fn ctx_list(e: &clap::Error, kind: ContextKind) -> Vec<String> {
    match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    }
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The subcommand the user was in (`accelsim profile generate ...` → `["accelsim", "profile", "generate"]`) and
/// the names of its own subcommands: the words of `args` after the program name are followed down the command
/// tree as long as they name a subcommand.
fn command_path(root: &clap::Command, args: &[String]) -> (String, Vec<String>) {
    let mut cmd = root;
    let mut path = vec![root.get_name().to_string()];
    for a in args.iter().skip(1) {
        if a.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(a) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                cmd = sub;
            }
            None => break,
        }
    }
    let subs = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    (path.join(" "), subs)
}

/// What clap would print, reduced to its message lines (no usage, no "For more information").
fn rendered_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Usage:") || t.starts_with("For more information") {
            break;
        }
        if !t.is_empty() {
            parts.push(t.trim_start_matches("error: ").to_string());
        }
    }
    if parts.is_empty() {
        "invalid arguments".to_string()
    } else {
        parts.join(" ")
    }
}

/// The suggestions clap found (`did you mean '--offsets'?`, tips), as one clause or an empty string.
fn suggestions(e: &clap::Error) -> String {
    let mut s = String::new();
    for kind in [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedValue,
    ] {
        let v = ctx_list(e, kind);
        if !v.is_empty() {
            s.push_str(&format!("; did you mean {}?", quoted(&v)));
        }
    }
    if let Some(tips) = ctx_string(e, ContextKind::Suggested) {
        s.push_str(&format!("; tip: {tips}"));
    }
    s
}

/// One line for a clap error (without the leading `error: `), ending with the `--help` to read. `root` is the
/// whole command (`Cli::command()`), `args` the command line that failed (program name first).
pub fn one_line(e: &clap::Error, root: &clap::Command, args: &[String]) -> String {
    let arg = ctx_string(e, ContextKind::InvalidArg);
    let value = ctx_string(e, ContextKind::InvalidValue);
    let (path, subcommands) = command_path(root, args);
    let body = match (e.kind(), arg.as_deref(), value.as_deref()) {
        (ErrorKind::MissingRequiredArgument, _, _) => {
            let missing = ctx_list(e, ContextKind::InvalidArg);
            if missing.is_empty() {
                rendered_message(e)
            } else {
                format!(
                    "the following required arguments were not provided: {}",
                    missing.join(", ")
                )
            }
        }
        (ErrorKind::UnknownArgument, Some(a), _) => {
            format!("unexpected argument '{a}' found{}", suggestions(e))
        }
        (ErrorKind::InvalidSubcommand, _, _) => {
            let sub = ctx_string(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            let known = if subcommands.is_empty() || !suggestions(e).is_empty() {
                String::new()
            } else {
                format!(" (subcommands: {})", subcommands.join(", "))
            };
            format!("unrecognized subcommand '{sub}'{}{known}", suggestions(e))
        }
        (
            ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand,
            _,
            _,
        ) => {
            let valid = ctx_list(e, ContextKind::ValidSubcommand);
            let list = if valid.is_empty() { subcommands } else { valid };
            format!("'{path}' needs a subcommand: {}", list.join(", "))
        }
        (ErrorKind::InvalidValue, Some(a), Some("")) => {
            format!("{} needs a value ({a})", flag_name(a))
        }
        (ErrorKind::InvalidValue, Some(a), Some(v)) => {
            let valid = ctx_list(e, ContextKind::ValidValue);
            let allowed = if valid.is_empty() {
                String::new()
            } else {
                format!("; allowed {}", valid.join(", "))
            };
            format!(
                "{} {v} is not allowed{allowed}{}",
                flag_name(a),
                suggestions(e)
            )
        }
        (ErrorKind::ValueValidation, Some(a), Some(v)) => {
            let source = std::error::Error::source(e);
            match source.and_then(|s| s.downcast_ref::<ValueError>()) {
                // Our value parsers word the reason ("is out of range; allowed 1..=1024").
                Some(reason) => format!("{} {v} {reason}", flag_name(a)),
                None => match source {
                    Some(s) => format!("{} {v}: {s}", flag_name(a)),
                    None => format!("{} {v} is not a valid value", flag_name(a)),
                },
            }
        }
        (ErrorKind::ArgumentConflict, Some(a), _) => {
            let prior = ctx_list(e, ContextKind::PriorArg);
            if prior.iter().any(|p| p == a) {
                format!("{} was given more than once", flag_name(a))
            } else if prior.is_empty() {
                format!(
                    "{} cannot be used with one or more of the other arguments",
                    flag_name(a)
                )
            } else {
                let prior: Vec<&str> = prior.iter().map(|p| flag_name(p)).collect();
                format!("{} cannot be used with {}", flag_name(a), prior.join(", "))
            }
        }
        _ => rendered_message(e),
    };
    format!("{body} (see '{path} --help')")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{CommandFactory, Parser};

    fn err(args: &[&str]) -> String {
        let argv: Vec<String> = std::iter::once("accelsim")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let e = Cli::try_parse_from(&argv).expect_err("must not parse");
        let line = one_line(&e, &Cli::command(), &argv);
        assert_eq!(line.lines().count(), 1, "{line}");
        line
    }

    #[test]
    fn missing_required_arguments_are_named() {
        let m = err(&["cycles"]);
        assert!(m.contains("not provided: --topology <CSV>"), "{m}");
        assert!(m.ends_with("(see 'accelsim cycles --help')"), "{m}");
        let m = err(&["profile", "generate"]);
        for a in ["--style", "--seed", "--out"] {
            assert!(m.contains(a), "{m}");
        }
        assert!(m.contains("'accelsim profile generate --help'"), "{m}");
    }

    #[test]
    fn unknown_arguments_keep_the_suggestion() {
        let m = err(&["run", "--offset", "3", "--vdd", "0.9"]);
        assert!(
            m.contains("'--offset'") && m.contains("did you mean '--offsets'?"),
            "{m}"
        );
        let m = err(&["cycle"]);
        assert!(
            m.contains("'cycle'") && m.contains("did you mean 'cycles'?"),
            "{m}"
        );
        let m = err(&["frobnicate"]);
        assert!(m.contains("subcommands: quantize, inject"), "{m}");
    }

    #[test]
    fn missing_subcommands_are_listed() {
        let m = err(&[]);
        assert!(
            m.contains("'accelsim' needs a subcommand: quantize,"),
            "{m}"
        );
        let m = err(&["model"]);
        assert!(
            m.contains("'accelsim model' needs a subcommand: show"),
            "{m}"
        );
    }

    #[test]
    fn values_name_the_flag() {
        let m = err(&["run", "--vdd"]);
        assert!(m.starts_with("--vdd needs a value (--vdd <V>)"), "{m}");
        let m = err(&["run", "--vdd", "0.9", "--offsets", "0"]);
        assert!(
            m.starts_with("--offsets 0 is out of range; allowed 1..=1024"),
            "{m}"
        );
        let m = err(&["run", "--vdd", "0.9", "--vdd", "0.8"]);
        assert!(m.starts_with("--vdd was given more than once"), "{m}");
    }

    #[test]
    fn flag_names_drop_the_value_name() {
        assert_eq!(flag_name("--vdd <V>"), "--vdd");
        assert_eq!(flag_name("--vdd=<V>"), "--vdd");
        assert_eq!(flag_name("<FILE>"), "<FILE>");
    }
}
