//! [`ChatTemplate`]: the model's Jinja chat template (`tokenizer.chat_template`) rendered with
//! `minijinja` the way Hugging Face `transformers` renders it (`apply_chat_template`).
//!
//! As in `transformers`: blocks trim the newline after them and strip the whitespace before
//! them on their line (`trim_blocks`, `lstrip_blocks`); one trailing newline of the template
//! is dropped; `break`/`continue` work; `raise_exception(message)` fails the render with that
//! message; `strftime_now(format)` gives the current UTC date/time; Python string and dict
//! methods (`.strip()`, `.startswith()`, `.items()`, ...) work. The context has `messages`,
//! `add_generation_prompt`, and the texts of `bos_token`, `eos_token`, `unk_token` and
//! `pad_token` where the vocabulary has them.

use minijinja::{context, Environment, Error, ErrorKind, Value};
use serde::Serialize;

use super::{TextError, TokenizerSpec};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Who speaks: `system`, `user` or `assistant`.
    pub role: String,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A message from `role` with `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The template's name inside its environment (shown in error messages).
const NAME: &str = "chat_template";

/// A parsed chat template with the special-token texts it may use.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    unk_token: Option<String>,
    pad_token: Option<String>,
}

/// Describes a minijinja error: its kind, detail, template line and causes.
fn describe(error: &Error) -> String {
    let mut text = error.kind().to_string();
    if let Some(detail) = error.detail() {
        text.push_str(&format!(": {detail}"));
    }
    if let Some(line) = error.line() {
        text.push_str(&format!(" (line {line})"));
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl ChatTemplate {
    /// Parses the spec's `chat_template`; [`TextError::NoChatTemplate`] if it has none.
    pub fn new(spec: &TokenizerSpec) -> Result<Self, TextError> {
        let source = spec.chat_template.as_deref().ok_or(TextError::NoChatTemplate)?;
        let text_of = |id: Option<u32>| id.and_then(|id| spec.tokens.get(id as usize)).cloned();
        Self::from_source(
            source,
            text_of(spec.bos_token_id),
            text_of(spec.eos_token_id),
            text_of(spec.unknown_token_id),
            text_of(spec.padding_token_id),
        )
    }

    /// Parses a template given as text, with the special-token texts it may refer to.
    pub fn from_source(
        source: &str,
        bos_token: Option<String>,
        eos_token: Option<String>,
        unk_token: Option<String>,
        pad_token: Option<String>,
    ) -> Result<Self, TextError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_function("strftime_now", |format: String| {
            strftime_utc(&format, now_unix_seconds())
        });
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| TextError::Template(describe(&e)))?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
            unk_token,
            pad_token,
        })
    }

    /// Renders the conversation; with `add_generation_prompt` the text ends with the cue for
    /// the assistant's reply.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, TextError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| TextError::Template(describe(&e)))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
                unk_token => self.unk_token,
                pad_token => self.pad_token,
            })
            .map_err(|e| TextError::Template(describe(&e)))
    }
}

/// Seconds since the Unix epoch now (the browser's clock on wasm32).
fn now_unix_seconds() -> i64 {
    web_time::SystemTime::now()
        .duration_since(web_time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats a Unix time (UTC) with the common `strftime` fields: `%Y %y %m %d %e %H %M %S %b %B
/// %a %A %j %%`; any other field is an error naming it.
fn strftime_utc(format: &str, unix_seconds: i64) -> Result<String, Error> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const CUMULATIVE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let day_of_year = CUMULATIVE[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let month_name = MONTHS[(month - 1) as usize];
    let day_name = DAYS[days.rem_euclid(7) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let field = chars.next();
        out.push_str(&match field {
            Some('Y') => year.to_string(),
            Some('y') => format!("{:02}", year.rem_euclid(100)),
            Some('m') => format!("{month:02}"),
            Some('d') => format!("{day:02}"),
            Some('e') => format!("{day:>2}"),
            Some('H') => format!("{:02}", secs / 3600),
            Some('M') => format!("{:02}", secs / 60 % 60),
            Some('S') => format!("{:02}", secs % 60),
            Some('b') => month_name[..3].to_string(),
            Some('B') => month_name.to_string(),
            Some('a') => day_name[..3].to_string(),
            Some('A') => day_name.to_string(),
            Some('j') => format!("{day_of_year:03}"),
            Some('%') => "%".to_string(),
            other => {
                let field = other.map_or("%".to_string(), |f| format!("%{f}"));
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported field {field}"),
                ));
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_formats_known_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(strftime_utc("%Y-%m-%d %H:%M:%S", t).unwrap(), "2024-02-29 13:05:09");
        assert_eq!(
            strftime_utc("%d %b %Y, %A %j %%", t).unwrap(),
            "29 Feb 2024, Thursday 060 %"
        );
        assert_eq!(strftime_utc("%e %B %y %a", 0).unwrap(), " 1 January 70 Thu");
        assert!(strftime_utc("%Q", t).unwrap_err().to_string().contains("%Q"));
    }
}
