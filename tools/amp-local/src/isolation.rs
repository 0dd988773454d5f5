//! Workspaces kept apart on the one Prometheus behind amp-local, as AMP keeps them apart.
//!
//! Writes: every series of a remote-write request gets the label `ampkit_workspace=<id>`
//! (a request whose series carry it already is refused). Reads: every expression is parsed
//! with a real PromQL parser and the workspace matcher is added to every vector and matrix
//! selector (inside subqueries, under `@` and `offset` too); `match[]` selectors likewise; and
//! the label is taken out of every answer, so a workspace sees neither another's series nor
//! the label itself. Rules: their expressions are confined the same way, and what they
//! produce is labelled with the workspace, so a recorded series is visible where it was made.

use std::cell::RefCell;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr, VectorSelector};
use prost::encoding::{WireType, encode_key, encode_varint};
use serde_json::Value;

pub use crate::alerting::WORKSPACE_LABEL as LABEL;

// ---- remote write ------------------------------------------------------------------------------
//
// The request is rewritten at the protobuf wire level rather than decoded into message types:
// every field of a series other than its labels (samples, exemplars, native histograms, and
// whatever a newer sender adds) is copied byte for byte, so nothing a type would not know is
// lost. prost's wire primitives do the varints and keys.

/// Why a remote-write body was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError {
    /// Not snappy, or not a protobuf `WriteRequest`.
    Malformed(String),
    /// A series already carries the workspace label.
    LabelTaken,
    /// A quota refused the whole request ([`crate::quotas`]).
    Quota(crate::quotas::Refusal),
}

/// `WriteRequest.timeseries` and `TimeSeries.labels` are field 1; `Label.name` is field 1.
const FIELD_ONE: u32 = 1;

thread_local! {
    /// The decompressed request, the rewritten one and its compressed form, kept from one
    /// request to the next on each thread: fresh buffers of a few hundred KiB per request
    /// cost more in page faults than the rewrite itself.
    static BUFFERS: RefCell<[Vec<u8>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// The snappy-compressed `WriteRequest` `body` with the workspace label on every series.
pub fn label_write_request(body: &[u8], workspace_id: &str) -> Result<Vec<u8>, WriteError> {
    label_write_request_admitted(body, workspace_id, |_| Ok(Vec::new()))
}

/// [`label_write_request`] after `admit` has seen the decompressed request (to read it with
/// [`scan_write_request`]): it answers which series go on (`keep[i]` for the i-th; an empty
/// list keeps every one), or refuses the whole request. A request with nothing kept is
/// still rewritten: its other fields (metadata) go on.
pub fn label_write_request_admitted(
    body: &[u8],
    workspace_id: &str,
    admit: impl FnOnce(&[u8]) -> Result<Vec<bool>, WriteError>,
) -> Result<Vec<u8>, WriteError> {
    BUFFERS.with_borrow_mut(|[raw, out, compressed]| {
        let malformed = |e: snap::Error| {
            WriteError::Malformed(format!("the body is not snappy-compressed: {e}"))
        };
        raw.resize(snap::raw::decompress_len(body).map_err(malformed)?, 0);
        let len = snap::raw::Decoder::new()
            .decompress(body, raw)
            .map_err(malformed)?;
        raw.truncate(len);
        let keep = admit(raw)?;
        out.clear();
        label_series_of(raw, workspace_id, &keep, out)?;
        compressed.resize(snap::raw::max_compress_len(out.len()), 0);
        let len = snap::raw::Encoder::new()
            .compress(out, compressed)
            .map_err(|e| WriteError::Malformed(format!("could not compress the request: {e}")))?;
        Ok(compressed[..len].to_vec())
    })
}

/// Every series of the raw `WriteRequest` that `keep` keeps, with the workspace label, into
/// `out`; every other field as it is.
fn label_series_of(
    raw: &[u8],
    workspace_id: &str,
    keep: &[bool],
    out: &mut Vec<u8>,
) -> Result<(), WriteError> {
    let ours = encode_label(workspace_id);
    let mut index = 0usize;
    for field in fields(raw) {
        let field = field?;
        if field.tag == FIELD_ONE && field.wire == WireType::LengthDelimited {
            let kept = keep.get(index).copied().unwrap_or(true);
            index += 1;
            if !kept {
                continue;
            }
            // The series is copied in two pieces around our label: no per-field copying, and
            // its new length is known before it is written.
            let series = field.value;
            let at = insertion_point(series)?;
            encode_key(FIELD_ONE, WireType::LengthDelimited, out);
            encode_varint((series.len() + ours.len()) as u64, out);
            out.extend_from_slice(&series[..at]);
            out.extend_from_slice(&ours);
            out.extend_from_slice(&series[at..]);
        } else {
            out.extend_from_slice(field.whole);
        }
    }
    Ok(())
}

/// One series of a remote-write request, as the quotas look at it: its labels (name, value;
/// as sent) and how many samples it carries (float samples and native histograms alike).
#[derive(Debug)]
pub struct SeriesScan<'a> {
    pub labels: Vec<(&'a [u8], &'a [u8])>,
    pub samples: usize,
}

/// What a remote-write request carries: its series in order, and its metadata entries.
#[derive(Debug, Default)]
pub struct WriteScan<'a> {
    pub series: Vec<SeriesScan<'a>>,
    pub metadata: usize,
}

/// `TimeSeries.samples` (2) and `TimeSeries.histograms` (4); `WriteRequest.metadata` (3).
const SAMPLES: u32 = 2;
const HISTOGRAMS: u32 = 4;
const METADATA: u32 = 3;

/// Read the decompressed `WriteRequest` for the quotas: labels and sample counts per series,
/// and the number of metadata entries.
pub fn scan_write_request(raw: &[u8]) -> Result<WriteScan<'_>, WriteError> {
    let mut scan = WriteScan::default();
    for field in fields(raw) {
        let field = field?;
        if field.wire != WireType::LengthDelimited {
            continue;
        }
        match field.tag {
            FIELD_ONE => {
                let mut series = SeriesScan {
                    labels: Vec::new(),
                    samples: 0,
                };
                for part in fields(field.value) {
                    let part = part?;
                    match part.tag {
                        FIELD_ONE if part.wire == WireType::LengthDelimited => {
                            series.labels.push(label_pair(part.value)?);
                        }
                        SAMPLES | HISTOGRAMS => series.samples += 1,
                        _ => {}
                    }
                }
                scan.series.push(series);
            }
            METADATA => scan.metadata += 1,
            _ => {}
        }
    }
    Ok(scan)
}

/// The name and value of an encoded `Label`.
fn label_pair(label: &[u8]) -> Result<(&[u8], &[u8]), WriteError> {
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    for field in fields(label) {
        let field = field?;
        match field.tag {
            1 => name = field.value,
            2 => value = field.value,
            _ => {}
        }
    }
    Ok((name, value))
}

/// Where in a series our label goes: before the first label whose name sorts after it (the
/// remote-write spec asks senders for sorted labels, and so do we), else at the end. Every
/// label is looked at, as one that is ours already refuses the request.
fn insertion_point(series: &[u8]) -> Result<usize, WriteError> {
    let mut at = None;
    for field in fields(series) {
        let field = field?;
        if field.tag == FIELD_ONE && field.wire == WireType::LengthDelimited {
            let name = label_name(field.value)?;
            if name == LABEL.as_bytes() {
                return Err(WriteError::LabelTaken);
            }
            if at.is_none() && name > LABEL.as_bytes() {
                at = Some(field.start);
            }
        }
    }
    Ok(at.unwrap_or(series.len()))
}

/// The name of an encoded `Label`.
fn label_name(label: &[u8]) -> Result<&[u8], WriteError> {
    // Every sender writes the name first, and names are short: key 0x0a, a one-byte length.
    // That case is read in place; anything else takes the general path.
    if let [0x0a, len, rest @ ..] = label
        && *len < 0x80
        && rest.len() >= usize::from(*len)
    {
        return Ok(&rest[..usize::from(*len)]);
    }
    for field in fields(label) {
        let field = field?;
        if field.tag == FIELD_ONE {
            return Ok(field.value);
        }
    }
    Ok(b"")
}

/// The `TimeSeries.labels` field for the workspace label, key included.
fn encode_label(workspace_id: &str) -> Vec<u8> {
    let mut label = Vec::new();
    for (tag, text) in [(1, LABEL), (2, workspace_id)] {
        encode_key(tag, WireType::LengthDelimited, &mut label);
        encode_varint(text.len() as u64, &mut label);
        label.extend_from_slice(text.as_bytes());
    }
    let mut field = Vec::with_capacity(label.len() + 4);
    encode_key(FIELD_ONE, WireType::LengthDelimited, &mut field);
    encode_varint(label.len() as u64, &mut field);
    field.extend_from_slice(&label);
    field
}

/// One field of a protobuf message: its number, wire type, the bytes of its value (for
/// length-delimited fields, without the length) and of the whole field, and where it starts.
struct Field<'a> {
    tag: u32,
    wire: WireType,
    value: &'a [u8],
    whole: &'a [u8],
    /// Where the field starts in its message.
    start: usize,
}

/// The fields of a message, in order.
fn fields(message: &[u8]) -> impl Iterator<Item = Result<Field<'_>, WriteError>> {
    let mut rest = message;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let field = next_field(message, &mut rest);
        if field.is_err() {
            rest = &[];
        }
        Some(field)
    })
}

fn next_field<'a>(message: &'a [u8], rest: &mut &'a [u8]) -> Result<Field<'a>, WriteError> {
    let bad = |what: &str| WriteError::Malformed(format!("not a remote-write request: {what}"));
    let start = message.len() - rest.len();
    let key = varint(rest).ok_or_else(|| bad("a field key is cut short"))?;
    let tag = u32::try_from(key >> 3).map_err(|_| bad("a field number is too large"))?;
    let wire = WireType::try_from(key & 0x07).map_err(|_| bad("an unknown wire type"))?;
    let len = match wire {
        WireType::Varint => {
            varint(rest).ok_or_else(|| bad("a number is cut short"))?;
            0
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited => varint(rest)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad("a length is cut short"))?,
        WireType::StartGroup | WireType::EndGroup => {
            return Err(bad("groups are not used by remote write"));
        }
    };
    if rest.len() < len {
        return Err(bad("a field runs past the end"));
    }
    let (value, tail) = rest.split_at(len);
    *rest = tail;
    let end = message.len() - rest.len();
    Ok(Field {
        tag,
        wire,
        value,
        whole: &message[start..end],
        start,
    })
}

/// A base-128 varint off the front of `bytes`. Read in place rather than through prost's
/// generic `Buf` decoder: the rewrite reads a dozen of them per series, and this is most of
/// its time.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

// ---- reads -------------------------------------------------------------------------------------

/// Parse PromQL. Backtick (raw) strings are rewritten as the double-quoted strings they mean
/// first: promql-parser 0.11 reads escapes inside them (`\`C:\\path\`\` fails with "unknown
/// escape sequence"), where Prometheus takes them literally.
fn parse(expr: &str) -> Result<Expr, String> {
    if !expr.contains('`') {
        return parser::parse(expr);
    }
    let mut out = String::with_capacity(expr.len() + 8);
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                // A quoted string, copied as it is (escapes included).
                out.push(c);
                while let Some(inner) = chars.next() {
                    out.push(inner);
                    if inner == '\\' {
                        out.extend(chars.next());
                    } else if inner == c {
                        break;
                    }
                }
            }
            '#' => {
                // A comment, to the end of the line.
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '`' => {
                out.push('"');
                for inner in chars.by_ref() {
                    match inner {
                        '`' => break,
                        '\\' => out.push_str("\\\\"),
                        '"' => out.push_str("\\\""),
                        '\n' => out.push_str("\\n"),
                        other => out.push(other),
                    }
                }
                out.push('"');
            }
            other => out.push(other),
        }
    }
    parser::parse(&out)
}

/// Function names the backing Prometheus (2.53) knows by another name than the parser
/// (which follows Prometheus 3): the query is parsed with the parser's name and sent on with
/// the one the user wrote, so that whatever the backing Prometheus accepts, a workspace does.
const RENAMED_FUNCTIONS: [(&str, &str); 1] = [("holt_winters", "double_exponential_smoothing")];

/// The default step of a subquery without one (`x[5m:]`): AMP's, a minute, as in a vanilla
/// Prometheus with the default evaluation interval. The Prometheus behind amp-local evaluates
/// rules every few seconds, and its own default would be that.
pub const DEFAULT_SUBQUERY_STEP: std::time::Duration = std::time::Duration::from_secs(60);

/// `text` with every call of the function `from` (the identifier, then `(`) renamed `to`;
/// strings and comments are copied as they are. `None` when there is no such call.
fn rename_calls(text: &str, from: &str, to: &str) -> Option<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = String::with_capacity(text.len() + 16);
    let mut renamed = false;
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        match c {
            '"' | '\'' | '`' => {
                // A string, to its closing quote (escapes skipped, except in raw strings);
                // an unterminated one runs to the end.
                let body = &rest[1..];
                let mut close = body.len();
                let mut chars = body.char_indices();
                while let Some((i, inner)) = chars.next() {
                    if inner == '\\' && c != '`' {
                        chars.next();
                    } else if inner == c {
                        close = i + 1;
                        break;
                    }
                }
                out.push_str(&rest[..1 + close]);
                rest = &rest[1 + close..];
                previous = Some(c);
            }
            '#' => {
                let end = rest.find('\n').unwrap_or(rest.len());
                out.push_str(&rest[..end]);
                rest = &rest[end..];
                previous = None;
            }
            _ if rest.starts_with(from)
                && !previous.is_some_and(is_ident)
                && rest[from.len()..].trim_start().starts_with('(') =>
            {
                out.push_str(to);
                rest = &rest[from.len()..];
                renamed = true;
                previous = from.chars().last();
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
                previous = Some(c);
            }
        }
    }
    renamed.then_some(out)
}

/// Function names to put back when a query is printed for the backing Prometheus:
/// (the parser's, the user's).
type NamesBack = Vec<(&'static str, &'static str)>;

/// Parse a query as the user wrote it, with the names to put back when it is printed.
fn parse_query(expr: &str) -> Result<(Expr, NamesBack), String> {
    let mut text = std::borrow::Cow::Borrowed(expr);
    let mut back = Vec::new();
    for (theirs, parsers) in RENAMED_FUNCTIONS {
        if let Some(renamed) = rename_calls(&text, theirs, parsers) {
            text = std::borrow::Cow::Owned(renamed);
            back.push((parsers, theirs));
        }
    }
    Ok((parse(&text)?, back))
}

/// The confined expression as text for the backing Prometheus, with the user's function names.
fn print(ast: &Expr, back: &[(&str, &str)]) -> String {
    let mut text = ast.to_string();
    for (parsers, theirs) in back {
        if let Some(renamed) = rename_calls(&text, parsers, theirs) {
            text = renamed;
        }
    }
    text
}

/// `expr` with the workspace matcher on every selector, as text Prometheus parses. `Err` is
/// the parser's message: an expression we cannot parse is never sent on unconfined.
pub fn confine_expr(expr: &str, workspace_id: &str) -> Result<String, String> {
    let (mut ast, back) = parse_query(expr)?;
    confine(&mut ast, workspace_id);
    Ok(print(&ast, &back))
}

/// A query (`query`, `query_range`) confined to the workspace, as sent to Prometheus.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfinedQuery {
    pub expr: String,
    /// Whether the answer may carry the workspace label, to be taken out here: only a range
    /// vector (an instant query of `x[5m]`) does. A vector expression is wrapped so that
    /// Prometheus drops the label itself (`label_replace` to the empty value), and the answer
    /// streams back untouched; scalars and strings have no labels.
    pub strip_answer: bool,
}

pub fn confine_query(expr: &str, workspace_id: &str) -> Result<ConfinedQuery, String> {
    let (mut ast, back) = parse_query(expr)?;
    confine(&mut ast, workspace_id);
    let text = print(&ast, &back);
    Ok(match ast.value_type() {
        ValueType::Vector => ConfinedQuery {
            expr: format!("label_replace({text}, \"{LABEL}\", \"\", \"\", \"\")"),
            strip_answer: false,
        },
        ValueType::Matrix => ConfinedQuery {
            expr: text,
            strip_answer: true,
        },
        ValueType::Scalar | ValueType::String => ConfinedQuery {
            expr: text,
            strip_answer: false,
        },
    })
}

/// A `match[]` series selector, confined. Prometheus takes only a vector selector there.
pub fn confine_selector(selector: &str, workspace_id: &str) -> Result<String, String> {
    match parse(selector)? {
        Expr::VectorSelector(mut vs) => {
            add_matcher(&mut vs, workspace_id);
            Ok(vs.to_string())
        }
        _ => Err(format!(
            "invalid parameter \"match[]\": {selector} is not a series selector"
        )),
    }
}

/// The selector of every series of a workspace.
pub fn workspace_selector(workspace_id: &str) -> String {
    let mut vs = VectorSelector::new(None, promql_parser::label::Matchers::empty());
    add_matcher(&mut vs, workspace_id);
    vs.to_string()
}

fn add_matcher(vs: &mut VectorSelector, workspace_id: &str) {
    let ours = Matcher::new(MatchOp::Equal, LABEL, workspace_id);
    // `{a="1" or b="2"}`: every alternative is confined.
    for group in &mut vs.matchers.or_matchers {
        group.push(ours.clone());
    }
    vs.matchers.matchers.push(ours);
}

fn confine(expr: &mut Expr, workspace_id: &str) {
    match expr {
        Expr::VectorSelector(vs) => add_matcher(vs, workspace_id),
        Expr::MatrixSelector(ms) => add_matcher(&mut ms.vs, workspace_id),
        Expr::Aggregate(agg) => {
            confine(&mut agg.expr, workspace_id);
            if let Some(param) = &mut agg.param {
                confine(param, workspace_id);
            }
        }
        Expr::Unary(unary) => confine(&mut unary.expr, workspace_id),
        Expr::Binary(binary) => {
            confine(&mut binary.lhs, workspace_id);
            confine(&mut binary.rhs, workspace_id);
        }
        Expr::Paren(paren) => confine(&mut paren.expr, workspace_id),
        Expr::Subquery(sub) => {
            sub.step.get_or_insert(DEFAULT_SUBQUERY_STEP);
            confine(&mut sub.expr, workspace_id);
        }
        Expr::Call(call) => {
            for arg in &mut call.args.args {
                confine(arg, workspace_id);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Which answer shape a read API gives, for taking the label out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `query`, `query_range`: `data.result[].metric`.
    Query,
    /// `series`: `data[]` label sets.
    Series,
    /// `labels`: `data[]` label names.
    Labels,
    /// `query_exemplars`: `data[].seriesLabels`.
    Exemplars,
}

/// A successful answer without the workspace label; anything else is left as it is.
pub fn strip_label(answer: Answer, body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let data = value.get_mut("data")?;
    let remove = |labels: &mut Value| {
        if let Some(map) = labels.as_object_mut() {
            map.remove(LABEL);
        }
    };
    match answer {
        Answer::Query => data
            .get_mut("result")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .for_each(|item| item.get_mut("metric").into_iter().for_each(remove)),
        Answer::Series => data.as_array_mut().into_iter().flatten().for_each(remove),
        Answer::Labels => {
            if let Some(names) = data.as_array_mut() {
                names.retain(|name| name != LABEL);
            }
        }
        Answer::Exemplars => data
            .as_array_mut()
            .into_iter()
            .flatten()
            .for_each(|item| item.get_mut("seriesLabels").into_iter().for_each(remove)),
    }
    serde_json::to_vec(&value).ok()
}

/// A query answer's warnings and infos without their `(line:column)`: Prometheus gives the
/// position in the query it evaluated, which is the confined one, not the one the user sent
/// (the workspace matcher and the wrapping shift every column). `None` when the answer has
/// neither (the common case, found without parsing it).
pub fn drop_annotation_positions(body: &[u8]) -> Option<Vec<u8>> {
    let has = |key: &[u8]| body.windows(key.len()).any(|w| w == key);
    if !has(b"\"warnings\"") && !has(b"\"infos\"") {
        return None;
    }
    let mut value: Value = serde_json::from_slice(body).ok()?;
    for key in ["warnings", "infos"] {
        for item in value
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(text) = item.as_str() {
                *item = Value::String(without_position(text).to_owned());
            }
        }
    }
    serde_json::to_vec(&value).ok()
}

/// `text` without a trailing ` (LINE:COLUMN)`.
fn without_position(text: &str) -> &str {
    let Some(open) = text.rfind(" (") else {
        return text;
    };
    let Some(inner) = text[open + 2..].strip_suffix(')') else {
        return text;
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    match inner.split_once(':') {
        Some((line, column)) if digits(line) && digits(column) => &text[..open],
        _ => text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A `WriteRequest` with the given series (label pairs), each with one sample, plus a
    /// metadata field, encoded by hand with prost's primitives.
    fn write_request(series: &[&[(&str, &str)]]) -> Vec<u8> {
        let mut request = Vec::new();
        for labels in series {
            let mut ts = Vec::new();
            for (name, value) in *labels {
                let mut label = Vec::new();
                for (tag, text) in [(1, name), (2, value)] {
                    encode_key(tag, WireType::LengthDelimited, &mut label);
                    encode_varint(text.len() as u64, &mut label);
                    label.extend_from_slice(text.as_bytes());
                }
                encode_key(1, WireType::LengthDelimited, &mut ts);
                encode_varint(label.len() as u64, &mut ts);
                ts.extend_from_slice(&label);
            }
            // samples: {value (double, 1), timestamp (int64, 2)}
            let mut sample = Vec::new();
            encode_key(1, WireType::SixtyFourBit, &mut sample);
            sample.extend_from_slice(&1.5f64.to_le_bytes());
            encode_key(2, WireType::Varint, &mut sample);
            encode_varint(1_700_000_000_000, &mut sample);
            encode_key(2, WireType::LengthDelimited, &mut ts);
            encode_varint(sample.len() as u64, &mut ts);
            ts.extend_from_slice(&sample);
            encode_key(1, WireType::LengthDelimited, &mut request);
            encode_varint(ts.len() as u64, &mut request);
            request.extend_from_slice(&ts);
        }
        // metadata (field 3) is copied untouched
        encode_key(3, WireType::LengthDelimited, &mut request);
        encode_varint(3, &mut request);
        request.extend_from_slice(b"abc");
        snap::raw::Encoder::new().compress_vec(&request).unwrap()
    }

    /// The label names of every series of a (compressed) request, and the whole raw request.
    fn decoded(body: &[u8]) -> (Vec<Vec<(String, String)>>, Vec<u8>) {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        let mut all = Vec::new();
        for field in fields(&raw) {
            let field = field.unwrap();
            if field.tag != 1 {
                continue;
            }
            let mut labels = Vec::new();
            for f in fields(field.value) {
                let f = f.unwrap();
                if f.tag == 1 {
                    let mut pair = (String::new(), String::new());
                    for part in fields(f.value) {
                        let part = part.unwrap();
                        let text = String::from_utf8(part.value.to_vec()).unwrap();
                        if part.tag == 1 {
                            pair.0 = text;
                        } else {
                            pair.1 = text;
                        }
                    }
                    labels.push(pair);
                }
            }
            all.push(labels);
        }
        (all, raw)
    }

    #[test]
    fn the_backing_prometheus_names_of_functions_are_kept() {
        let q = confine_query("holt_winters(rate(x[5m])[10m:], 0.5, 0.5)", "ws-1").unwrap();
        assert!(q.expr.contains("holt_winters(rate(x{"), "{}", q.expr);
        assert!(!q.expr.contains("double_exponential"), "{}", q.expr);
        // Only calls are renamed: a string, a longer name and a label stay as written.
        assert_eq!(
            rename_calls(
                r#"my_holt_winters(x) + holt_winters (y{a="holt_winters("}[1m], 1, 1)"#,
                "holt_winters",
                "des"
            ),
            Some(r#"my_holt_winters(x) + des (y{a="holt_winters("}[1m], 1, 1)"#.to_owned())
        );
        assert_eq!(
            rename_calls("x{holt_winters=\"1\"}", "holt_winters", "des"),
            None
        );
        assert_eq!(
            rename_calls("'it\\'s holt_winters(' + `raw`", "holt_winters", "des"),
            None
        );
    }

    #[test]
    fn annotation_positions_of_the_confined_query_are_dropped() {
        let answer = br#"{"status":"success","data":{"resultType":"vector","result":[]},"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"g\" (1:20)"],"warnings":["kept as is (not a position)"]}"#;
        let fixed: Value =
            serde_json::from_slice(&drop_annotation_positions(answer).unwrap()).unwrap();
        assert_eq!(
            fixed["infos"][0],
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"g\""
        );
        assert_eq!(fixed["warnings"][0], "kept as is (not a position)");
        assert_eq!(fixed["data"]["resultType"], "vector");
        assert_eq!(
            drop_annotation_positions(br#"{"status":"success","data":{}}"#),
            None
        );
    }

    #[test]
    fn a_subquery_without_a_step_gets_amps_default_step() {
        let q = confine_expr("max_over_time(deriv(x[1m])[2m:])", "ws-1").unwrap();
        assert!(q.ends_with("[2m:1m])"), "{q}");
        let kept = confine_expr("max_over_time(deriv(x[1m])[2m:15s])", "ws-1").unwrap();
        assert!(kept.ends_with("[2m:15s])"), "{kept}");
    }

    #[test]
    fn every_series_gets_the_label_in_name_order_and_the_rest_is_kept() {
        let body = write_request(&[
            &[("__name__", "up"), ("job", "envoy")],
            &[("__name__", "x"), ("zone", "a")],
        ]);
        let out = label_write_request(&body, "ws-1").unwrap();
        let (series, raw) = decoded(&out);
        let names = |i: usize| {
            series[i]
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(0), ["__name__", LABEL, "job"]);
        assert_eq!(names(1), ["__name__", LABEL, "zone"]);
        assert_eq!(series[0][1].1, "ws-1");
        // The samples and the metadata are still there, byte for byte.
        assert!(raw.windows(8).any(|w| w == 1.5f64.to_le_bytes().as_slice()));
        assert!(raw.ends_with(b"abc"));
        let (before, _) = decoded(&body);
        assert_eq!(before.len(), series.len());
    }

    /// Not a check: the cost of one bench-sized request (2000 series), for tuning.
    /// `cargo test --release -p amp-local --lib -- --ignored --nocapture rewrite_cost`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn rewrite_cost() {
        let names: Vec<String> = (0..2000).map(|i| format!("series_{i}")).collect();
        let series: Vec<Vec<(&str, &str)>> = names
            .iter()
            .map(|n| {
                vec![
                    ("__name__", "bench_metric"),
                    ("instance", "host:9090"),
                    ("job", "bench"),
                    ("series", n.as_str()),
                    ("worker", "3"),
                ]
            })
            .collect();
        let refs: Vec<&[(&str, &str)]> = series.iter().map(Vec::as_slice).collect();
        let body = write_request(&refs);
        let started = std::time::Instant::now();
        let rounds = 200;
        for _ in 0..rounds {
            std::hint::black_box(label_write_request(&body, "ws-1").unwrap());
        }
        let per = started.elapsed() / rounds;
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(snap::raw::Decoder::new().decompress_vec(&body).unwrap());
        }
        let decompress = started.elapsed() / rounds;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(snap::raw::Encoder::new().compress_vec(&raw).unwrap());
        }
        let compress = started.elapsed() / rounds;
        eprintln!(
            "{} bytes compressed, {} raw: rewrite {per:?} per request (decompress {decompress:?}, compress {compress:?})",
            body.len(),
            raw.len()
        );
    }

    #[test]
    fn a_series_that_carries_the_label_is_refused_and_garbage_is_malformed() {
        let body = write_request(&[&[("__name__", "up"), (LABEL, "ws-other")]]);
        assert_eq!(
            label_write_request(&body, "ws-1"),
            Err(WriteError::LabelTaken)
        );
        assert!(matches!(
            label_write_request(b"not snappy", "ws-1"),
            Err(WriteError::Malformed(_))
        ));
        let truncated = snap::raw::Encoder::new()
            .compress_vec(&[0x0a, 0x10, 0x01])
            .unwrap();
        assert!(matches!(
            label_write_request(&truncated, "ws-1"),
            Err(WriteError::Malformed(_))
        ));
    }

    #[test]
    fn every_selector_is_confined() {
        let m = format!("{LABEL}=\"ws-1\"");
        for (expr, selectors) in [
            ("up", 1),
            ("rate(x[5m])", 1),
            ("sum by (job) (rate(x{a=\"b\"}[1m] offset 5m))", 1),
            ("a or b unless c", 3),
            ("max_over_time(rate(x[1m])[10m:1m] @ 100)", 1),
            ("{__name__=~\".+\"}", 1),
            ("count by (__name__) ({job=~\".+\"})", 1),
            ("label_replace(up, \"x\", \"$1\", \"job\", \"(.*)\")", 1),
            ("topk(3, up) / on(job) group_left x", 2),
            ("vector(1) + scalar(y)", 1),
            ("1 + 2", 0),
        ] {
            let out = confine_expr(expr, "ws-1").unwrap();
            assert_eq!(out.matches(&m).count(), selectors, "{expr} -> {out}");
            // What we send is PromQL the parser takes again, with the same selectors.
            let again = confine_expr(&out, "ws-1").unwrap();
            assert_eq!(again.matches(&m).count(), selectors * 2, "{out}");
        }
    }

    #[test]
    fn an_explicit_matcher_on_the_label_cannot_reach_another_workspace() {
        let out = confine_expr(&format!("up{{{LABEL}=\"ws-2\"}}"), "ws-1").unwrap();
        assert!(
            out.contains("\"ws-2\"") && out.contains("\"ws-1\""),
            "{out}"
        );
    }

    #[test]
    fn special_characters_survive_the_round_trip() {
        for expr in [
            r#"label_replace(vector(1), "x", "a+b c&d=e%20f#g?h;i/j", "", "")"#,
            r#"label_replace(vector(2), "q", 'it\'s "quoted" {not a selector}', "", "")"#,
            "up{u=\"ünïcødé ☃ 日本\", r=~\"a\\\\.b|c\"}",
        ] {
            // The text we send parses back to exactly the confined tree: nothing was lost or
            // mis-escaped on the way.
            let out = confine_expr(expr, "ws-1").unwrap();
            let mut expected = parser::parse(expr).unwrap();
            confine(&mut expected, "ws-1");
            let back = parser::parse(&out).unwrap();
            assert_eq!(back.to_string(), expected.to_string());
            if !expr.contains("up{") {
                // No selector: the very same tree, string literals and all.
                assert_eq!(back, parser::parse(expr).unwrap(), "{out}");
            }
        }
    }

    #[test]
    fn vector_queries_drop_the_label_in_prometheus_and_range_vectors_here() {
        let q = confine_query("sum by (job) (up)", "ws-1").unwrap();
        assert!(
            q.expr.starts_with("label_replace(sum by (job) ("),
            "{}",
            q.expr
        );
        assert!(
            q.expr
                .ends_with(&format!(", \"{LABEL}\", \"\", \"\", \"\")")),
            "{}",
            q.expr
        );
        assert!(!q.strip_answer);
        assert!(confine_query("up[5m]", "ws-1").unwrap().strip_answer);
        let scalar = confine_query("scalar(up) * 2", "ws-1").unwrap();
        assert!(!scalar.strip_answer && !scalar.expr.starts_with("label_replace"));
        assert_eq!(confine_query("1 + 1", "ws-1").unwrap().expr, "1 + 1");
        // The wrapped text is PromQL again.
        parser::parse(&q.expr).unwrap();
    }

    #[test]
    fn raw_strings_are_taken_literally_as_prometheus_takes_them() {
        let expr = "label_replace(vector(4), \"raw\", `C:\\path\\to \"x\" =~ y`, \"\", \"\") # a `comment`";
        let out = confine_expr(expr, "ws-1").unwrap();
        let Expr::Call(call) = parser::parse(&out).unwrap() else {
            panic!("{out}");
        };
        let Expr::StringLiteral(raw) = call.args.args[2].as_ref() else {
            panic!("{out}");
        };
        assert_eq!(raw.val, "C:\\path\\to \"x\" =~ y");
        // Backticks inside ordinary strings are left alone.
        let quoted = confine_expr(
            "label_replace(vector(1), \"q\", \"a`b\", \"\", \"\")",
            "ws-1",
        )
        .unwrap();
        assert!(quoted.contains("\"a`b\""), "{quoted}");
    }

    #[test]
    fn match_selectors_must_be_selectors() {
        assert_eq!(
            confine_selector("up{job=\"a\"}", "ws-1").unwrap(),
            format!("up{{{LABEL}=\"ws-1\",job=\"a\"}}")
        );
        assert!(confine_selector("sum(up)", "ws-1").is_err());
        assert!(confine_selector("up{", "ws-1").is_err());
        assert_eq!(workspace_selector("ws-1"), format!("{{{LABEL}=\"ws-1\"}}"));
    }

    #[test]
    fn the_label_is_taken_out_of_answers() {
        let query = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","ampkit_workspace":"ws-1"},"value":[1,"1"]}]}}"#;
        let out: Value =
            serde_json::from_slice(&strip_label(Answer::Query, query).unwrap()).unwrap();
        assert_eq!(
            out["data"]["result"][0]["metric"],
            serde_json::json!({"__name__": "up"})
        );
        let labels = br#"{"status":"success","data":["__name__","ampkit_workspace","job"]}"#;
        let out: Value =
            serde_json::from_slice(&strip_label(Answer::Labels, labels).unwrap()).unwrap();
        assert_eq!(out["data"], serde_json::json!(["__name__", "job"]));
        let series =
            br#"{"status":"success","data":[{"__name__":"up","ampkit_workspace":"ws-1"}]}"#;
        let out: Value =
            serde_json::from_slice(&strip_label(Answer::Series, series).unwrap()).unwrap();
        assert_eq!(out["data"], serde_json::json!([{"__name__": "up"}]));
        assert!(strip_label(Answer::Query, b"not json").is_none());
    }
}
