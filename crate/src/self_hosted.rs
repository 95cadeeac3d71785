//! Jupyter servers of the user's own: checked as typed in the options, and the notebook a
//! page shows under one of them (before AI Studio's own shapes).

use serde::{Deserialize, Serialize};

use crate::fields::{
    is_project_id, is_user_name, normalize_host, FieldError, Rule, SELF_HOSTED_NAME_RULE,
    SELF_HOSTED_URL_RULE, USER_RULE,
};
use crate::page::{
    locate_notebook, split_url, NotebookLocation, UrlParts, AISTUDIO_ORIGIN, JUPYTER_PAGES,
};

/// The zone of every self-hosted location: such a server never moves between machines
/// the way an AI Studio project switches between CPU and GPU.
pub const SELF_HOSTED_ZONE: &str = "self-hosted";

/// A Jupyter server of the user's own, as typed in the options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct SelfHostedInput {
    /// The server's address: its base URL or any lab / notebook page under it.
    pub url: String,
    /// The name the project goes by (`ssh aistudio-<name>`).
    pub name: String,
    /// The Unix user the server's terminals and kernels run as.
    pub user: String,
}

/// A self-hosted Jupyter server the extension works with once the user granted its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct SelfHostedJupyter {
    /// The Jupyter Server base URL, `<origin>/<path>/`, ending in `/`.
    pub base_url: String,
    /// The project id the extension files everything under.
    pub name: String,
    /// The Unix user on the server (the `User` of its ssh config block).
    pub user: String,
    /// The match pattern for the optional host permission and the content script,
    /// `<scheme>://<host>/*` (match patterns carry no port: they match every port).
    pub origin_pattern: String,
}

impl SelfHostedInput {
    /// Checks every field; the base URL is cut from any page address under it.
    ///
    /// # Errors
    /// Every invalid field (`selfHosted.url`, `selfHosted.name`, `selfHosted.user`).
    pub fn validate(&self) -> Result<SelfHostedJupyter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut reject = |field: &'static str, value: &str, rule: Rule| {
            errors.push(FieldError::new(field, value, rule))
        };
        let server = jupyter_base(self.url.trim());
        if server.is_none() {
            reject("selfHosted.url", &self.url, SELF_HOSTED_URL_RULE);
        }
        let name = self.name.trim();
        if !is_project_id(name) || !name.bytes().any(|b| b.is_ascii_alphabetic()) {
            reject("selfHosted.name", &self.name, SELF_HOSTED_NAME_RULE);
        }
        let user = self.user.trim();
        if !is_user_name(user) {
            reject("selfHosted.user", &self.user, USER_RULE);
        }
        match server {
            Some((base_url, origin_pattern)) if errors.is_empty() => Ok(SelfHostedJupyter {
                base_url,
                name: name.to_owned(),
                user: user.to_owned(),
                origin_pattern,
            }),
            _ => Err(errors),
        }
    }
}

/// `(base URL, origin match pattern)` of a self-hosted server's address, or `None`.
fn jupyter_base(url: &str) -> Option<(String, String)> {
    let UrlParts {
        scheme,
        authority,
        path,
    } = split_url(url)?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (address, after) = v6.split_once(']')?;
            let port = if after.is_empty() {
                ""
            } else {
                after.strip_prefix(':')?
            };
            (format!("[{address}]"), port.to_owned())
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host.to_owned(), port.to_owned()),
            None => (authority.to_owned(), String::new()),
        },
    };
    let host = normalize_host(&host)?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]");
    if host == AISTUDIO_ORIGIN["https://".len()..]
        || !(scheme == "https" || (scheme == "http" && loopback))
    {
        return None;
    }
    let default_port = if scheme == "https" { "443" } else { "80" };
    let authority = match port.as_str() {
        "" => host.clone(),
        p if p == default_port => host.clone(),
        p => {
            p.parse::<u16>().ok().filter(|p| *p > 0)?;
            format!("{host}:{p}")
        }
    };
    let mut base = Vec::new();
    // `path` is empty or starts with `/`; its segments up to the first page name are the base.
    for segment in path.strip_prefix('/').unwrap_or(path).split('/') {
        if segment.is_empty() || JUPYTER_PAGES.iter().any(|(page, _)| *page == segment) {
            break;
        }
        let plain = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%@+".contains(&b));
        if !plain || segment == "." || segment == ".." {
            return None;
        }
        base.push(segment);
    }
    let path = base.iter().map(|s| format!("{s}/")).collect::<String>();
    Some((
        format!("{scheme}://{authority}/{path}"),
        format!("{scheme}://{host}/*"),
    ))
}

/// The notebook a page shows: an AI Studio notebook on AI Studio's origin, or a page under
/// one of the user's self-hosted servers. `None` for anything else.
pub fn locate_page(page_url: &str, self_hosted: &[SelfHostedJupyter]) -> Option<NotebookLocation> {
    if let Some(server) = self_hosted
        .iter()
        .find(|s| page_url.starts_with(&s.base_url))
    {
        let rest = page_url[server.base_url.len()..]
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        let page = JUPYTER_PAGES
            .iter()
            .find(|(name, _)| rest == *name || rest.starts_with(&format!("{name}/")))
            .map(|(_, page)| *page)?;
        let origin = split_url(&server.base_url)
            .map(|parts| format!("{}://{}", parts.scheme, parts.authority))?;
        return Some(NotebookLocation {
            origin,
            zone: SELF_HOSTED_ZONE.to_owned(),
            user_id: String::new(),
            project_id: server.name.clone(),
            base_url: server.base_url.clone(),
            page,
        });
    }
    let parts = split_url(page_url)?;
    (format!("{}://{}", parts.scheme, parts.authority) == AISTUDIO_ORIGIN)
        .then(|| locate_notebook(page_url))
        .flatten()
}
