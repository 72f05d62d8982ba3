//! go's `encoding/json` as go-livepeer's BYOC handlers run it on what a client sends: the syntax
//! check with its exact messages (`scanner.go`), then decoding into a go struct with go's rules
//! (keys matched exactly, then case-insensitively; the last duplicate wins; `null` changes
//! nothing; the first type error is the one reported, with go's wording).
//!
//! The double needs go's *text*, not only its verdict: `/ai/stream/start` answers a bad
//! `parameters` with the raw `encoding/json` message, and every route answers a bad `request`
//! with `Unable to unmarshal job request details err=<message>`.

mod scanner;

use scanner::{check_valid, is_space};

/// A JSON value as go sees it. Values nested deeper than [`MAX_TREE_DEPTH`] keep only their kind:
/// no go struct the double decodes is that deep, and go only names the kind in its errors.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    /// The literal text, as go's `literalStore` sees it.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Keys in document order, duplicates kept.
    Object(Vec<(String, Json)>),
    /// An array or object too deep to keep (true: object).
    Deep(bool),
}

/// Depth below which the tree keeps only kinds.
const MAX_TREE_DEPTH: usize = 64;

/// Builds the tree of input [`check_valid`] accepted.
struct Builder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Builder<'_> {
    fn skip_space(&mut self) {
        while self.pos < self.data.len() && is_space(self.data[self.pos]) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Json {
        self.skip_space();
        let c = self.data[self.pos];
        match c {
            b'{' | b'[' if depth >= MAX_TREE_DEPTH => {
                self.skip_nested();
                Json::Deep(c == b'{')
            }
            b'{' => {
                self.pos += 1;
                let mut fields = Vec::new();
                loop {
                    self.skip_space();
                    if self.data[self.pos] == b'}' {
                        self.pos += 1;
                        return Json::Object(fields);
                    }
                    if self.data[self.pos] == b',' {
                        self.pos += 1;
                        self.skip_space();
                    }
                    let key = self.string();
                    self.skip_space();
                    self.pos += 1; // ':'
                    let v = self.value(depth + 1);
                    fields.push((key, v));
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    match self.data[self.pos] {
                        b']' => {
                            self.pos += 1;
                            return Json::Array(items);
                        }
                        b',' => self.pos += 1,
                        _ => items.push(self.value(depth + 1)),
                    }
                }
            }
            b'"' => Json::String(self.string()),
            b't' => {
                self.pos += 4;
                Json::Bool(true)
            }
            b'f' => {
                self.pos += 5;
                Json::Bool(false)
            }
            b'n' => {
                self.pos += 4;
                Json::Null
            }
            _ => {
                let start = self.pos;
                while self.pos < self.data.len()
                    && matches!(self.data[self.pos], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    self.pos += 1;
                }
                Json::Number(String::from_utf8_lossy(&self.data[start..self.pos]).into_owned())
            }
        }
    }

    /// Skips a (valid) array or object without building it.
    fn skip_nested(&mut self) {
        let mut depth = 0usize;
        let mut in_string = false;
        while self.pos < self.data.len() {
            let c = self.data[self.pos];
            self.pos += 1;
            if in_string {
                match c {
                    b'\\' => self.pos += 1,
                    b'"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// A string literal, unquoted as go does (bad UTF-8 and lone surrogates become U+FFFD).
    fn string(&mut self) -> String {
        self.pos += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.data[self.pos];
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.data[self.pos];
                    self.pos += 1;
                    let simple = match e {
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        other => Some(other),
                    };
                    if let Some(b) = simple {
                        out.push(b);
                        continue;
                    }
                    let unit = self.hex4();
                    let ch = if (0xd800..0xdc00).contains(&unit)
                        && self.data.get(self.pos..self.pos + 2) == Some(b"\\u")
                    {
                        let save = self.pos;
                        self.pos += 2;
                        let low = self.hex4();
                        if (0xdc00..0xe000).contains(&low) {
                            char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
                        } else {
                            self.pos = save;
                            None
                        }
                    } else {
                        char::from_u32(unit)
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.unwrap_or('\u{fffd}').encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn hex4(&mut self) -> u32 {
        let digits = std::str::from_utf8(&self.data[self.pos..self.pos + 4]).unwrap_or("0");
        self.pos += 4;
        u32::from_str_radix(digits, 16).unwrap_or(0xfffd)
    }
}

/// Parses `data` as go's `json.Unmarshal` would before decoding: go's syntax error, or the tree.
pub(super) fn parse(data: &[u8]) -> Result<Json, String> {
    check_valid(data)?;
    Ok(Builder { data, pos: 0 }.value(0))
}

/// A go type the double decodes into.
#[derive(Debug, Clone, Copy)]
pub(super) enum GoType {
    String,
    Bool,
    /// go's `int`/`int64` (`time.Duration` too).
    Int,
    StringSlice,
    Struct(&'static GoStruct),
}

/// A go struct: its package-qualified name and its JSON fields.
#[derive(Debug)]
pub(super) struct GoStruct {
    /// `reflect.Type.Name()`.
    pub(super) name: &'static str,
    /// `reflect.Type.String()`.
    pub(super) qualified: &'static str,
    pub(super) fields: &'static [(&'static str, GoType)],
}

impl GoType {
    fn type_string(self) -> &'static str {
        match self {
            GoType::String => "string",
            GoType::Bool => "bool",
            GoType::Int => "int",
            GoType::StringSlice => "[]string",
            GoType::Struct(s) => s.qualified,
        }
    }
}

/// A decoded value, with go's zero values filled in.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum GoValue {
    String(String),
    Bool(bool),
    Int(i64),
    StringSlice(Vec<String>),
    Struct(Vec<(&'static str, GoValue)>),
}

impl GoValue {
    fn zero(t: GoType) -> GoValue {
        match t {
            GoType::String => GoValue::String(String::new()),
            GoType::Bool => GoValue::Bool(false),
            GoType::Int => GoValue::Int(0),
            GoType::StringSlice => GoValue::StringSlice(Vec::new()),
            GoType::Struct(s) => {
                GoValue::Struct(s.fields.iter().map(|(n, t)| (*n, GoValue::zero(*t))).collect())
            }
        }
    }

    /// A field of a struct value.
    pub(super) fn field(&self, name: &str) -> Option<&GoValue> {
        match self {
            GoValue::Struct(fields) => fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string field ("" when absent).
    pub(super) fn str(&self, name: &str) -> String {
        match self.field(name) {
            Some(GoValue::String(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// A bool field.
    pub(super) fn bool(&self, name: &str) -> bool {
        matches!(self.field(name), Some(GoValue::Bool(true)))
    }

    /// An int field.
    pub(super) fn int(&self, name: &str) -> i64 {
        match self.field(name) {
            Some(GoValue::Int(i)) => *i,
            _ => 0,
        }
    }

    /// A []string field.
    pub(super) fn strings(&self, name: &str) -> Vec<String> {
        match self.field(name) {
            Some(GoValue::StringSlice(v)) => v.clone(),
            _ => Vec::new(),
        }
    }
}

/// `bytes.EqualFold` for a key against an (ASCII) field name.
fn fold_eq(key: &str, field: &str) -> bool {
    let folded = key.chars().map(|c| match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    });
    folded.eq(field.chars().map(|c| c.to_ascii_lowercase()))
}

/// Where a type error happened: go's `errorContext`.
#[derive(Clone, Default)]
struct Context {
    strukt: Option<&'static str>,
    stack: Vec<&'static str>,
}

struct Decoder {
    first_error: Option<String>,
}

impl Decoder {
    fn type_error(&mut self, what: &str, t: GoType, ctx: &Context) {
        if self.first_error.is_some() {
            return;
        }
        let msg = match ctx.strukt {
            Some(s) => format!(
                "json: cannot unmarshal {what} into Go struct field {s}.{} of type {}",
                ctx.stack.join("."),
                t.type_string()
            ),
            None => format!("json: cannot unmarshal {what} into Go value of type {}", t.type_string()),
        };
        self.first_error = Some(msg);
    }

    fn kind(v: &Json) -> &'static str {
        match v {
            Json::Null => "null",
            Json::Bool(_) => "bool",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) | Json::Deep(false) => "array",
            Json::Object(_) | Json::Deep(true) => "object",
        }
    }

    /// Decodes `v` into `into` (of type `t`), as go's `d.value`.
    fn value(&mut self, v: &Json, t: GoType, into: &mut GoValue, ctx: &Context) {
        match (v, t, into) {
            (Json::Null, GoType::StringSlice, slot) => *slot = GoValue::StringSlice(Vec::new()),
            (Json::Null, _, _) => {}
            (Json::Bool(b), GoType::Bool, slot) => *slot = GoValue::Bool(*b),
            (Json::String(s), GoType::String, slot) => *slot = GoValue::String(s.clone()),
            (Json::Number(n), GoType::Int, slot) => match n.parse::<i64>() {
                Ok(i) => *slot = GoValue::Int(i),
                Err(_) => self.type_error(&format!("number {n}"), t, ctx),
            },
            (Json::Array(items), GoType::StringSlice, slot) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let mut s = GoValue::String(String::new());
                    self.value(item, GoType::String, &mut s, ctx);
                    out.push(match s {
                        GoValue::String(s) => s,
                        _ => String::new(),
                    });
                }
                *slot = GoValue::StringSlice(out);
            }
            (Json::Object(fields), GoType::Struct(st), GoValue::Struct(slots)) => {
                for (key, value) in fields {
                    let found = st
                        .fields
                        .iter()
                        .position(|(n, _)| *n == key)
                        .or_else(|| st.fields.iter().position(|(n, _)| fold_eq(key, n)));
                    let Some(i) = found else { continue };
                    let (name, ft) = st.fields[i];
                    let mut inner = ctx.clone();
                    inner.strukt = Some(st.name);
                    inner.stack.push(name);
                    self.value(value, ft, &mut slots[i].1, &inner);
                }
            }
            (other, t, _) => {
                let what = Self::kind(other);
                self.type_error(what, t, ctx);
            }
        }
    }
}

/// go's `json.Unmarshal(data, &v)` for a struct `v`: the decoded struct (zero values where
/// nothing was given), or go's error text.
pub(super) fn unmarshal(data: &[u8], st: &'static GoStruct) -> Result<GoValue, String> {
    let tree = parse(data)?;
    let t = GoType::Struct(st);
    let mut out = GoValue::zero(t);
    let mut d = Decoder { first_error: None };
    d.value(&tree, t, &mut out, &Context::default());
    match d.first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// go's `JobRequest` (`byoc/types.go`).
pub(super) static JOB_REQUEST: GoStruct = GoStruct {
    name: "JobRequest",
    qualified: "byoc.JobRequest",
    fields: &[
        ("id", GoType::String),
        ("request", GoType::String),
        ("parameters", GoType::String),
        ("capability", GoType::String),
        ("capability_url", GoType::String),
        ("sender", GoType::String),
        ("sig", GoType::String),
        ("timeout_seconds", GoType::Int),
        // Untagged `time.Duration` fields: matched by their go names.
        ("OrchSearchTimeout", GoType::Int),
        ("OrchSearchRespTimeout", GoType::Int),
    ],
};

/// go's `JobRequestDetails`.
pub(super) static JOB_REQUEST_DETAILS: GoStruct = GoStruct {
    name: "JobRequestDetails",
    qualified: "byoc.JobRequestDetails",
    fields: &[("stream_id", GoType::String)],
};

/// go's `JobOrchestratorsFilter`.
static JOB_ORCHESTRATORS_FILTER: GoStruct = GoStruct {
    name: "JobOrchestratorsFilter",
    qualified: "byoc.JobOrchestratorsFilter",
    fields: &[("exclude", GoType::StringSlice), ("include", GoType::StringSlice)],
};

/// go's `JobParameters`.
pub(super) static JOB_PARAMETERS: GoStruct = GoStruct {
    name: "JobParameters",
    qualified: "byoc.JobParameters",
    fields: &[
        ("orchestrators", GoType::Struct(&JOB_ORCHESTRATORS_FILTER)),
        ("enable_video_ingress", GoType::Bool),
        ("enable_video_egress", GoType::Bool),
        ("enable_data_output", GoType::Bool),
    ],
};

/// go's `JobSender` (the `Livepeer-Eth-Address` header).
pub(super) static JOB_SENDER: GoStruct = GoStruct {
    name: "JobSender",
    qualified: "byoc.JobSender",
    fields: &[("addr", GoType::String), ("sig", GoType::String)],
};

/// go's `json.Unmarshal(data, &map[string]interface{})`: an object or `null`, else an error.
pub(super) fn is_object_or_null(data: &[u8]) -> bool {
    matches!(parse(data), Ok(Json::Object(_) | Json::Null))
}

/// go's `base64.StdEncoding.DecodeString`: padded standard alphabet, `\r` and `\n` skipped,
/// trailing bits not checked.
pub(super) fn std_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{general_purpose::GeneralPurpose, general_purpose::GeneralPurposeConfig};
    use base64::Engine;
    const GO_STD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    GO_STD.decode(cleaned).ok()
}

/// go-ethereum's `common.HexToAddress`: an optional `0x`/`0X`, a leading `0` added to odd
/// lengths, the bytes hex-decoded up to the first bad digit, the last 20 kept (left-padded).
pub(super) fn hex_to_address(s: &str) -> [u8; 20] {
    let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let padded = if s.len() % 2 == 1 { format!("0{s}") } else { s.to_owned() };
    let mut bytes = Vec::with_capacity(padded.len() / 2);
    for pair in padded.as_bytes().chunks(2) {
        let Ok(b) = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("zz"), 16) else { break };
        bytes.push(b);
    }
    let mut out = [0u8; 20];
    let take = bytes.len().min(20);
    out[20 - take..].copy_from_slice(&bytes[bytes.len() - take..]);
    out
}

#[cfg(test)]
mod tests;
