//! go's `encoding/json` as go-livepeer's BYOC handlers run it on what a client sends: the syntax
//! check with its exact messages (`scanner.go`), then decoding into a go struct with go's rules
//! (keys matched exactly, then case-insensitively; the last duplicate wins; `null` changes
//! nothing; the first type error is the one reported, with go's wording).
//!
//! The double needs go's *text*, not only its verdict: `/ai/stream/start` answers a bad
//! `parameters` with the raw `encoding/json` message, and every route answers a bad `request`
//! with `Unable to unmarshal job request details err=<message>`.

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

/// go's `maxNestingDepth`.
const MAX_NESTING_DEPTH: usize = 10_000;
/// Depth below which the tree keeps only kinds.
const MAX_TREE_DEPTH: usize = 64;

/// go's `quoteChar`: how a byte is named in a syntax error.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".into(),
        b'"' => "'\"'".into(),
        b'\\' => r"'\\'".into(),
        0x07 => r"'\a'".into(),
        0x08 => r"'\b'".into(),
        0x0c => r"'\f'".into(),
        b'\n' => r"'\n'".into(),
        b'\r' => r"'\r'".into(),
        b'\t' => r"'\t'".into(),
        0x0b => r"'\v'".into(),
        c if c < 0x20 || c == 0x7f => format!(r"'\x{c:02x}'"),
        // `string(c)` is the rune U+00c0..; strconv.Quote escapes the unprintable ones.
        c if (0x80..=0xa0).contains(&c) || c == 0xad => format!(r"'\u{c:04x}'"),
        c => format!("'{}'", char::from(c)),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Clone, Copy, PartialEq)]
enum Step {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    Literal(&'static [u8], usize),
}

/// go's `scanner`, byte by byte.
struct Scanner {
    step: Step,
    stack: Vec<Parse>,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    fn error(c: u8, context: &str) -> Result<(), String> {
        Err(format!("invalid character {} {context}", quote_char(c)))
    }

    fn push(&mut self, p: Parse) -> Result<(), String> {
        self.stack.push(p);
        if self.stack.len() > MAX_NESTING_DEPTH {
            return Err("exceeded max depth".into());
        }
        Ok(())
    }

    fn pop(&mut self) {
        self.stack.pop();
        self.step = if self.stack.is_empty() { Step::EndTop } else { Step::EndValue };
    }

    fn feed(&mut self, c: u8) -> Result<(), String> {
        match self.step {
            Step::BeginValueOrEmpty => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b']' {
                    return self.end_value(c);
                }
                self.begin_value(c)
            }
            Step::BeginValue => self.begin_value(c),
            Step::BeginStringOrEmpty => {
                if is_space(c) {
                    return Ok(());
                }
                if c == b'}' {
                    if let Some(top) = self.stack.last_mut() {
                        *top = Parse::ObjectValue;
                    }
                    return self.end_value(c);
                }
                self.begin_string(c)
            }
            Step::BeginString => self.begin_string(c),
            Step::EndValue => self.end_value(c),
            Step::EndTop => {
                if is_space(c) {
                    Ok(())
                } else {
                    Self::error(c, "after top-level value")
                }
            }
            Step::InString => {
                match c {
                    b'"' => self.step = Step::EndValue,
                    b'\\' => self.step = Step::InStringEsc,
                    c if c < 0x20 => return Self::error(c, "in string literal"),
                    _ => {}
                }
                Ok(())
            }
            Step::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                    self.step = Step::InString;
                    Ok(())
                }
                b'u' => {
                    self.step = Step::InStringEscU(0);
                    Ok(())
                }
                _ => Self::error(c, "in string escape code"),
            },
            Step::InStringEscU(n) => {
                if !c.is_ascii_hexdigit() {
                    return Self::error(c, "in \\u hexadecimal character escape");
                }
                self.step = if n == 3 { Step::InString } else { Step::InStringEscU(n + 1) };
                Ok(())
            }
            Step::Neg => match c {
                b'0' => {
                    self.step = Step::Zero;
                    Ok(())
                }
                b'1'..=b'9' => {
                    self.step = Step::One;
                    Ok(())
                }
                _ => Self::error(c, "in numeric literal"),
            },
            Step::One => {
                if c.is_ascii_digit() {
                    return Ok(());
                }
                self.zero(c)
            }
            Step::Zero => self.zero(c),
            Step::Dot => {
                if c.is_ascii_digit() {
                    self.step = Step::Dot0;
                    return Ok(());
                }
                Self::error(c, "after decimal point in numeric literal")
            }
            Step::Dot0 => {
                if c.is_ascii_digit() {
                    return Ok(());
                }
                if c == b'e' || c == b'E' {
                    self.step = Step::E;
                    return Ok(());
                }
                self.end_value(c)
            }
            Step::E => {
                if c == b'+' || c == b'-' {
                    self.step = Step::ESign;
                    return Ok(());
                }
                self.e_sign(c)
            }
            Step::ESign => self.e_sign(c),
            Step::E0 => {
                if c.is_ascii_digit() {
                    return Ok(());
                }
                self.end_value(c)
            }
            Step::Literal(word, i) => {
                if c != word[i] {
                    let name = std::str::from_utf8(word).unwrap_or("");
                    return Self::error(c, &format!("in literal {name} (expecting {})", quote_char(word[i])));
                }
                self.step = if i + 1 == word.len() { Step::EndValue } else { Step::Literal(word, i + 1) };
                Ok(())
            }
        }
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            self.step = Step::BeginValue;
            return Ok(());
        }
        self.step = match c {
            b'{' => {
                self.push(Parse::ObjectKey)?;
                Step::BeginStringOrEmpty
            }
            b'[' => {
                self.push(Parse::ArrayValue)?;
                Step::BeginValueOrEmpty
            }
            b'"' => Step::InString,
            b'-' => Step::Neg,
            b'0' => Step::Zero,
            b'1'..=b'9' => Step::One,
            b't' => Step::Literal(b"true", 1),
            b'f' => Step::Literal(b"false", 1),
            b'n' => Step::Literal(b"null", 1),
            _ => return Self::error(c, "looking for beginning of value"),
        };
        Ok(())
    }

    fn begin_string(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            self.step = Step::BeginString;
            return Ok(());
        }
        if c == b'"' {
            self.step = Step::InString;
            return Ok(());
        }
        Self::error(c, "looking for beginning of object key string")
    }

    fn zero(&mut self, c: u8) -> Result<(), String> {
        match c {
            b'.' => {
                self.step = Step::Dot;
                Ok(())
            }
            b'e' | b'E' => {
                self.step = Step::E;
                Ok(())
            }
            _ => self.end_value(c),
        }
    }

    fn e_sign(&mut self, c: u8) -> Result<(), String> {
        if c.is_ascii_digit() {
            self.step = Step::E0;
            return Ok(());
        }
        Self::error(c, "in exponent of numeric literal")
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(&top) = self.stack.last() else {
            self.step = Step::EndTop;
            return self.feed(c);
        };
        if is_space(c) {
            self.step = Step::EndValue;
            return Ok(());
        }
        match top {
            Parse::ObjectKey => {
                if c == b':' {
                    *self.stack.last_mut().expect("non-empty") = Parse::ObjectValue;
                    self.step = Step::BeginValue;
                    return Ok(());
                }
                Self::error(c, "after object key")
            }
            Parse::ObjectValue => {
                if c == b',' {
                    *self.stack.last_mut().expect("non-empty") = Parse::ObjectKey;
                    self.step = Step::BeginString;
                    return Ok(());
                }
                if c == b'}' {
                    self.pop();
                    return Ok(());
                }
                Self::error(c, "after object key:value pair")
            }
            Parse::ArrayValue => {
                if c == b',' {
                    self.step = Step::BeginValue;
                    return Ok(());
                }
                if c == b']' {
                    self.pop();
                    return Ok(());
                }
                Self::error(c, "after array element")
            }
        }
    }
}

/// go's `checkValid`: `Ok` when `data` is one JSON value, else go's `SyntaxError` text.
pub(super) fn check_valid(data: &[u8]) -> Result<(), String> {
    let mut scan = Scanner { step: Step::BeginValue, stack: Vec::new() };
    for &c in data {
        scan.feed(c)?;
    }
    // go's `eof`: a space ends a pending number; anything still open is cut short.
    if scan.step != Step::EndTop {
        scan.feed(b' ')?;
    }
    if scan.step == Step::EndTop {
        Ok(())
    } else {
        Err("unexpected end of JSON input".into())
    }
}

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
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_read_as_go_writes_them() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "unexpected end of JSON input"),
            (b"   ", "unexpected end of JSON input"),
            (b"{\"a\":", "unexpected end of JSON input"),
            (b"x", "invalid character 'x' looking for beginning of value"),
            (b"{} x", "invalid character 'x' after top-level value"),
            (b"{x}", "invalid character 'x' looking for beginning of object key string"),
            (b"{\"a\" 1}", "invalid character '1' after object key"),
            (b"{\"a\":1 2}", "invalid character '2' after object key:value pair"),
            (b"[1 2]", "invalid character '2' after array element"),
            (b"\"a\tb\"", r"invalid character '\t' in string literal"),
            (b"\"\\x\"", "invalid character 'x' in string escape code"),
            (b"\"\\u12g4\"", "invalid character 'g' in \\u hexadecimal character escape"),
            (b"-a", "invalid character 'a' in numeric literal"),
            (b"1.e", "invalid character 'e' after decimal point in numeric literal"),
            // At the end go feeds a space, whose error wins over "unexpected end".
            (b"1e+", "invalid character ' ' in exponent of numeric literal"),
            (b"-", "invalid character ' ' in numeric literal"),
            (b"1ex", "invalid character 'x' in exponent of numeric literal"),
            (b"tru", "invalid character ' ' in literal true (expecting 'e')"),
            (b"\"abc", "unexpected end of JSON input"),
            (b"trUe", "invalid character 'U' in literal true (expecting 'u')"),
            (b"nul1", "invalid character '1' in literal null (expecting 'l')"),
            (b"'a'", r"invalid character '\'' looking for beginning of value"),
            (b"\x00", r"invalid character '\x00' looking for beginning of value"),
            (b"\xc3", r"invalid character 'Ã' looking for beginning of value"),
            (b"01", "invalid character '1' after top-level value"),
        ];
        for (input, want) in cases {
            assert_eq!(check_valid(input).unwrap_err(), *want, "{:?}", String::from_utf8_lossy(input));
        }
        for ok in [&b"null"[..], b" {} ", b"[1,-0.5e+3,\"\\u00e9\",true,false,null]", b"12"] {
            assert!(check_valid(ok).is_ok(), "{:?}", String::from_utf8_lossy(ok));
        }
        let deep = "[".repeat(10_001);
        assert_eq!(check_valid(deep.as_bytes()).unwrap_err(), "exceeded max depth");
    }

    #[test]
    fn struct_decoding_follows_go() {
        let d = |s: &str| unmarshal(s.as_bytes(), &JOB_REQUEST_DETAILS);
        assert_eq!(d("null").unwrap().str("stream_id"), "");
        assert_eq!(d(r#"{"STREAM_ID":"a","x":1}"#).unwrap().str("stream_id"), "a");
        // Exact match beats a folded one whatever the order; the last duplicate wins; null is a no-op.
        assert_eq!(d(r#"{"stream_id":"a","Stream_Id":"b"}"#).unwrap().str("stream_id"), "b");
        assert_eq!(d(r#"{"stream_id":"a","stream_id":null}"#).unwrap().str("stream_id"), "a");
        assert_eq!(
            d(r#""x""#).unwrap_err(),
            "json: cannot unmarshal string into Go value of type byoc.JobRequestDetails"
        );
        assert_eq!(
            d("[]").unwrap_err(),
            "json: cannot unmarshal array into Go value of type byoc.JobRequestDetails"
        );
        assert_eq!(
            d(r#"{"stream_id":5}"#).unwrap_err(),
            "json: cannot unmarshal number into Go struct field JobRequestDetails.stream_id of type string"
        );
        assert_eq!(d("").unwrap_err(), "unexpected end of JSON input");
        let p = |s: &str| unmarshal(s.as_bytes(), &JOB_PARAMETERS);
        assert_eq!(
            p(r#"{"enable_video_ingress":"yes"}"#).unwrap_err(),
            "json: cannot unmarshal string into Go struct field JobParameters.enable_video_ingress of type bool"
        );
        assert_eq!(
            p(r#"{"orchestrators":{"exclude":[1]}}"#).unwrap_err(),
            "json: cannot unmarshal number into Go struct field JobOrchestratorsFilter.orchestrators.exclude of type string"
        );
        assert_eq!(
            p(r#"{"orchestrators":"x"}"#).unwrap_err(),
            "json: cannot unmarshal string into Go struct field JobParameters.orchestrators of type byoc.JobOrchestratorsFilter"
        );
        // The first type error is reported, decoding goes on.
        assert_eq!(
            p(r#"{"enable_data_output":1,"enable_video_egress":"x"}"#).unwrap_err(),
            "json: cannot unmarshal number into Go struct field JobParameters.enable_data_output of type bool"
        );
        let ok = p(r#"{"enable_data_output":true,"orchestrators":{"include":["a"]}}"#).unwrap();
        assert!(ok.bool("enable_data_output"));
        assert_eq!(ok.field("orchestrators").unwrap().strings("include"), vec!["a".to_owned()]);
        let j = |s: &str| unmarshal(s.as_bytes(), &JOB_REQUEST);
        assert_eq!(j(r#"{"timeout_seconds":30}"#).unwrap().int("timeout_seconds"), 30);
        assert_eq!(
            j(r#"{"timeout_seconds":30.5}"#).unwrap_err(),
            "json: cannot unmarshal number 30.5 into Go struct field JobRequest.timeout_seconds of type int"
        );
        assert!(j(r#"{"timeout_seconds":"30"}"#).is_err());
        assert_eq!(j(r#"{"orchsearchtimeout":5}"#).unwrap().int("OrchSearchTimeout"), 5);
    }

    #[test]
    fn strings_unquote_as_go_does() {
        let Json::String(s) = parse(br#""a\u00e9\ud83d\ude00\ud800x\/""#).unwrap() else { panic!() };
        assert_eq!(s, "a\u{e9}\u{1f600}\u{fffd}x/");
        assert!(is_object_or_null(b"null") && is_object_or_null(b" {\"a\":[1]} "));
        assert!(!is_object_or_null(b"") && !is_object_or_null(b"[]") && !is_object_or_null(b"\"x\""));
    }

    #[test]
    fn go_base64_and_addresses() {
        assert_eq!(std_base64("YQ==").unwrap(), b"a");
        assert_eq!(std_base64("YR==").unwrap(), b"a", "trailing bits are not checked");
        assert_eq!(std_base64("YQ\r\n==").unwrap(), b"a");
        assert!(std_base64("YQ").is_none() && std_base64("Y Q==").is_none());
        let mut want = [0u8; 20];
        want[19] = 0xab;
        assert_eq!(hex_to_address("0xab"), want);
        assert_eq!(hex_to_address("ab"), want);
        want[19] = 0x0a;
        assert_eq!(hex_to_address("0Xa"), want);
        // Decoding stops at the first bad digit ("0azz": one byte).
        assert_eq!(hex_to_address("0xazz"), want);
        assert_eq!(hex_to_address(""), [0u8; 20]);
    }
}
