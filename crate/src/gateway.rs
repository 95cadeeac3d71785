//! What AI Studio's gateway in front of a Jupyter Server answers, read before anything
//! parses a body: Jupyter's JSON, the restore window, a cold instance, an expired login or an
//! XSRF refusal. A real client logged all of these (zyzyj/ComfyUIMobile
//! `PlatformResponseGuard.kt`): an expired login comes back as 200 with an HTML login page
//! (or 401/403 with HTML, or a redirect), a cold instance as HTML or 502 before it is ready.
//! None of them may ever be read as a result.

use serde::{Deserialize, Serialize};

/// AI Studio answers this while it restores the persistent home after a start.
pub const RESTORING_STATUS: u16 = 492;

/// How much of a body the classification looks at: a login page names itself early.
pub const BODY_HEAD_CHARS: usize = 2048;

/// What marks an HTML page as a login page anywhere in it: Baidu's passport, a password field.
/// Guess from public material: the exact page has not been seen by us.
const LOGIN_PAGE_MARKERS: [&str; 3] =
    ["passport.baidu.com", "type=\"password\"", "type='password'"];
/// Words of a login page's title (a cold instance's page may merely link to a login).
const LOGIN_TITLE_WORDS: [&str; 5] = ["登录", "登錄", "login", "log in", "sign in"];

/// What an answer was, as `fetch` saw it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct AnswerSeen {
    /// The HTTP status (after redirects, which `fetch` follows).
    pub status: u16,
    /// The `Content-Type` header, empty when there is none.
    #[serde(default)]
    pub content_type: String,
    /// The first [`BODY_HEAD_CHARS`] characters of the body.
    #[serde(default)]
    pub body_head: String,
    /// Where a redirect `fetch` followed ended; `opaque` for one it was told not to follow
    /// (a redirect of `api/status`, which Jupyter never redirects, is the gateway's login).
    #[serde(default)]
    pub redirected_to: Option<String>,
    /// The Jupyter Server's base URL the request was for.
    pub base_url: String,
}

/// What an answer means for the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Answer {
    /// Jupyter's own JSON answer (a success, or Jupyter's JSON error): read it.
    Json,
    /// The restore window (HTTP 492): wait, then ask again.
    Restoring,
    /// The instance is not ready (502/503/504, or an HTML page that is no login page):
    /// AI Studio is still starting it; ask again with backoff.
    Starting,
    /// The login expired (a login page, an HTML 401/403, or a redirect away from the
    /// server): the user must log in again; asking again only finds out when they did.
    LoggedOut,
    /// Jupyter refused the XSRF token: read the cookie again and retry once.
    XsrfRefused,
    /// Anything else: an error to show, never a result.
    Failed,
}

impl Answer {
    /// How long to wait before asking again: `attempt` (1, 2, ...) answers like this in a
    /// row, `waited_ms` since the first of them. `None` where asking again cannot help.
    pub fn retry_after_ms(self, attempt: u32, waited_ms: u64) -> Option<u32> {
        match self {
            // A 492 is a tiny answer and most restores end within a minute: ask often at
            // first (SSH soon after it ends), then back off for the long ones.
            Self::Restoring => Some(match waited_ms {
                0..=59_999 => 100,
                60_000..=299_999 => 1_000,
                _ => 3_000,
            }),
            Self::Starting => Some(
                1_000u32
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
                    .min(15_000),
            ),
            // Polled slowly: it turns into a result once the user logged in in another tab.
            Self::LoggedOut => Some(15_000),
            Self::Json | Self::XsrfRefused | Self::Failed => None,
        }
    }
}

fn mentions(text: &str, words: &[&str]) -> bool {
    let lower = text.to_lowercase();
    words.iter().any(|word| lower.contains(word))
}

/// The text of an HTML page's `<title>`, if it has one early on.
fn title(html: &str) -> Option<String> {
    let lower = html.to_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    Some(lower[open_end..close].to_owned())
}

fn is_login_page(html: &str) -> bool {
    mentions(html, &LOGIN_PAGE_MARKERS)
        || title(html).is_some_and(|title| mentions(&title, &LOGIN_TITLE_WORDS))
}

/// Reads an answer (see the module's note for where each rule comes from).
pub fn classify_answer(seen: &AnswerSeen) -> Answer {
    let is_json = seen.content_type.to_ascii_lowercase().contains("json");
    let head: String = seen.body_head.chars().take(BODY_HEAD_CHARS).collect();
    let looks_html = seen.content_type.to_ascii_lowercase().contains("html")
        || head.trim_start().starts_with('<');
    let left_the_server = seen
        .redirected_to
        .as_deref()
        .is_some_and(|url| !url.starts_with(&seen.base_url));
    match seen.status {
        RESTORING_STATUS => Answer::Restoring,
        _ if left_the_server => Answer::LoggedOut,
        // Tornado's refusal names the token: "'_xsrf' argument missing from POST",
        // "XSRF cookie does not match POST argument".
        403 if mentions(&head, &["xsrf"]) => Answer::XsrfRefused,
        // The gateway's own, whatever its body (it may be JSON too): Jupyter is not up.
        502..=504 => Answer::Starting,
        _ if is_json => Answer::Json,
        401 | 403 if looks_html => Answer::LoggedOut,
        _ if looks_html && is_login_page(&head) => Answer::LoggedOut,
        _ if looks_html => Answer::Starting,
        _ => Answer::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let waits: Vec<_> = (1..=6)
            .map(|attempt| Answer::Starting.retry_after_ms(attempt, 0).unwrap())
            .collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
        assert_eq!(Answer::Starting.retry_after_ms(u32::MAX, 0), Some(15_000));
        assert_eq!(Answer::Failed.retry_after_ms(1, 0), None);
    }
}
