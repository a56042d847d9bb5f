//! TOML deserialization errors reworded for users: the dotted key of the offending value and what was expected,
//! e.g. `key `voltage.vmin_v`: expected a float, found a string "abc"` (shared by the hardware config and the model
//! manifest readers). Keys come from `serde_path_to_error`, lines from the span `toml` attaches to its errors.

/// A TOML or schema error of one file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlProblem {
    /// Dotted key path (`voltage.vmin_v`, `layers[2].name`); `None` for syntax errors.
    pub key: Option<String>,
    /// 1-based line of the offending text, 0 when unknown.
    pub line: usize,
    /// What is wrong, one line, without the key.
    pub message: String,
}

impl std::fmt::Display for TomlProblem {
    /// `key `K`: MESSAGE (line N)`, or `not valid TOML: MESSAGE (line N)` for syntax errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(k) => write!(f, "key `{k}`: {}", self.message)?,
            None => write!(f, "not valid TOML: {}", self.message)?,
        }
        if self.line > 0 {
            write!(f, " (line {})", self.line)?;
        }
        Ok(())
    }
}

/// Deserializes `text` into `T`, locating any error by key path and line.
pub fn from_toml_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlProblem> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        locate(&path, inner.message(), line)
    })
}

/// Deserializes an already parsed TOML table into `T` (no line information); `prefix` is the table's own key
/// path (`layers[3]`), prepended to the key of the error.
pub fn from_toml_table<T: serde::de::DeserializeOwned>(
    table: toml::Table,
    prefix: &str,
) -> Result<T, TomlProblem> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let path = match (prefix.is_empty(), path.as_str()) {
            (true, p) => p.to_string(),
            (false, ".") => prefix.to_string(),
            (false, p) => format!("{prefix}.{p}"),
        };
        locate(&path, e.inner().message(), 0)
    })
}

/// Rewords serde's message (`invalid type: string "abc", expected f64`) and fixes the key of missing fields.
fn locate(path: &str, message: &str, line: usize) -> TomlProblem {
    let message =
        crate::limits::printable(&message.split_whitespace().collect::<Vec<_>>().join(" "));
    let root = path == "." || path.is_empty();
    let join = |k: &str| {
        if root {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    let (key, message) = if let Some(field) = strip_ticks(message.strip_prefix("missing field ")) {
        (Some(join(field)), "missing (a required key)".to_string())
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        let expected = rest.split_once(", ").map(|(_, e)| e).unwrap_or("");
        let msg = match expected {
            "there are no fields" => "unknown key; this table takes no keys".to_string(),
            "" => "unknown key".to_string(),
            e => format!("unknown key; {e}"),
        };
        (Some(path.to_string()), msg)
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (found, expected) = rest.split_once(", ").unwrap_or((rest, ""));
        let found = found.trim_matches('`');
        (
            Some(path.to_string()),
            format!("unknown value \"{found}\"; {expected}"),
        )
    } else if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        match rest.rsplit_once(", expected ") {
            Some((found, expected)) => (
                Some(path.to_string()),
                format!(
                    "expected {}, found {}",
                    expected_name(expected),
                    found_name(found)
                ),
            ),
            None => (Some(path.to_string()), message.clone()),
        }
    } else if let Some(rest) = message.strip_prefix("invalid length ") {
        match rest.split_once(", expected ") {
            Some((n, expected)) => (
                Some(path.to_string()),
                format!("expected {}, found {n} values", expected_name(expected)),
            ),
            None => (Some(path.to_string()), message.clone()),
        }
    } else if root {
        (None, message.clone())
    } else {
        (Some(path.to_string()), message.clone())
    };
    TomlProblem { key, line, message }
}

fn strip_ticks(s: Option<&str>) -> Option<&str> {
    s.map(|s| s.trim_matches('`'))
}

/// serde's name of an expected Rust type, in TOML words.
fn expected_name(e: &str) -> String {
    match e {
        "f32" | "f64" => "a float".into(),
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" | "a borrowed string" | "string" => "a string".into(),
        "a sequence" | "sequence" => "an array".into(),
        "a map" | "map" => "a table".into(),
        e if e.starts_with("struct ") => "a table".into(),
        e if e.starts_with("an array of length ") => format!("an array of {} values", &e[19..]),
        e => e.to_string(),
    }
}

/// serde's description of the value found (`string "abc"`, ``integer `-4` ``), in TOML words.
fn found_name(f: &str) -> String {
    let value = |prefix: &str| f.strip_prefix(prefix).map(|v| v.trim_matches('`'));
    if let Some(v) = f.strip_prefix("string ") {
        format!("a string {v}")
    } else if let Some(v) = value("integer ") {
        format!("the integer {v}")
    } else if let Some(v) = value("floating point ") {
        format!("the float {v}")
    } else if let Some(v) = value("boolean ") {
        format!("the boolean {v}")
    } else {
        match f {
            "sequence" => "an array".into(),
            "map" => "a table".into(),
            f => f.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        x: f64,
        n: u32,
        pair: [u32; 2],
        #[serde(default)]
        flag: bool,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        sec: Inner,
    }

    fn err(text: &str) -> String {
        from_toml_str::<Outer>(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key_and_the_types() {
        let good = "name = \"a\"\n[sec]\nx = 1.5\nn = 3\npair = [1, 2]\n";
        from_toml_str::<Outer>(good).unwrap();
        let cases = [
            (
                "x = 1.5",
                "x = \"abc\"",
                "key `sec.x`: expected a float, found a string \"abc\" (line 3)",
            ),
            (
                "n = 3",
                "n = -3",
                "key `sec.n`: expected a non-negative integer, found the integer -3 (line 4)",
            ),
            (
                "n = 3",
                "n = 3.5",
                "key `sec.n`: expected a non-negative integer, found the float 3.5 (line 4)",
            ),
            (
                "n = 3",
                "n = [3]",
                "key `sec.n`: expected a non-negative integer, found an array (line 4)",
            ),
            (
                "pair = [1, 2]",
                "pair = [1]",
                "key `sec.pair`: expected an array of 2 values, found 1 values (line 5)",
            ),
            ("x = 1.5\n", "", "key `sec.x`: missing (a required key)"),
            (
                "n = 3",
                "n = 3\nm = 1",
                "key `sec.m`: unknown key; expected one of `x`, `n`, `pair`, `flag` (line 5)",
            ),
            (
                "name = \"a\"",
                "name = 1",
                "key `name`: expected a string, found the integer 1 (line 1)",
            ),
            ("name = \"a\"", "name = \"a\" 1", "not valid TOML: "),
            (
                "x = 1.5",
                "x = true",
                "key `sec.x`: expected a float, found the boolean true",
            ),
        ];
        for (from, to, want) in cases {
            let e = err(&good.replacen(from, to, 1));
            assert!(e.starts_with(want), "want {want:?}, got {e:?}");
            assert!(!e.contains('\n'), "{e}");
        }
        let t: toml::Table = toml::from_str("x = \"s\"\nn = 1\npair = [1, 2]\n").unwrap();
        let e = from_toml_table::<Inner>(t, "layers[3]")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "key `layers[3].x`: expected a float, found a string \"s\""
        );
    }
}
