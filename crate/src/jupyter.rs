//! Where an AI Studio notebook lives: the IDE page URL shapes and the Jupyter Server base URL behind them.

use serde::{Deserialize, Serialize};

pub use crate::fields::is_project_id;
use crate::fields::{
    is_identifier, is_user_name, normalize_host, FieldError, Rule, SELF_HOSTED_NAME_RULE,
    SELF_HOSTED_URL_RULE, USER_RULE,
};

/// The path segment between the zone and the user id in every AI Studio notebook URL.
const USER_SEGMENT: &str = "user";

/// Which page of a project's IDE a URL shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum NotebookPage {
    /// `<base>home`: AI Studio's IDE shell, which embeds the lab (`#codelab`) or VS Code (`#vscode`).
    IdeHome,
    /// `<base>lab...`: JupyterLab itself, as loaded in the IDE's iframe.
    Lab,
    /// `<base>notebooks/<name>.ipynb`: the older notebook shape.
    ClassicNotebook,
    /// `<base>tree...`: the file browser of a self-hosted Jupyter Notebook (classic or 7).
    Tree,
}

/// A notebook page recognised from its URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(target_arch = "wasm32", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
pub struct NotebookLocation {
    /// `scheme://host[:port]` of the page, which is also the Jupyter Server's origin.
    pub origin: String,
    /// The cluster the container runs in, such as `bd-gpu-01`. Not a reliable CPU/GPU
    /// signal: a V100 has been seen under a `cpu` zone, so only a probe in the container decides.
    pub zone: String,
    /// The AI Studio account id in the URL; empty for a self-hosted server.
    pub user_id: String,
    /// The project id, which names the project throughout the extension.
    pub project_id: String,
    /// The Jupyter Server base URL, `<origin>/<zone>/user/<uid>/<projectId>/`, ending in `/`.
    pub base_url: String,
    /// Which page shape the URL had.
    pub page: NotebookPage,
}

/// Recognises an AI Studio notebook page URL and derives its Jupyter Server base URL.
///
/// Known shapes, after `<origin>/<zone>/user/<uid>/<projectId>/`: `home` (with or
/// without a `#codelab` / `#vscode` fragment), `lab` and anything below it, and
/// `notebooks/<path>`. Anything else, including other AI Studio pages, is `None`.
pub fn locate_notebook(page_url: &str) -> Option<NotebookLocation> {
    let UrlParts {
        scheme,
        authority,
        path,
    } = split_url(page_url)?;
    let mut segments = path.strip_prefix('/')?.split('/');
    let zone = segments.next().filter(|s| is_identifier(s))?;
    segments.next().filter(|s| *s == USER_SEGMENT)?;
    let user_id = segments.next().filter(|s| is_identifier(s))?;
    let project_id = segments.next().filter(|s| is_identifier(s))?;
    let page = match (segments.next()?, segments.next()) {
        ("home", None | Some("")) => NotebookPage::IdeHome,
        ("lab", _) => NotebookPage::Lab,
        ("notebooks", Some(name)) if !name.is_empty() => NotebookPage::ClassicNotebook,
        _ => return None,
    };

    let origin = format!("{scheme}://{authority}");
    let base_url = format!("{origin}/{zone}/{USER_SEGMENT}/{user_id}/{project_id}/");
    Some(NotebookLocation {
        origin,
        zone: zone.to_owned(),
        user_id: user_id.to_owned(),
        project_id: project_id.to_owned(),
        base_url,
        page,
    })
}

/// An http(s) URL cut into what the locators need; query and fragment dropped.
struct UrlParts<'a> {
    scheme: &'a str,
    /// `host[:port]`, never empty, never with user info.
    authority: &'a str,
    /// Empty or starting with `/`.
    path: &'a str,
}

fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path_and_more) = rest.split_at(authority_end);
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let path = path_and_more.split(['?', '#']).next().unwrap_or_default();
    Some(UrlParts {
        scheme,
        authority,
        path,
    })
}

/// The one origin AI Studio serves notebooks from; its URL shapes are recognised only there
/// (a self-hosted JupyterHub path can look like them).
pub const AISTUDIO_ORIGIN: &str = "https://aistudio.baidu.com";

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

/// Path segments that follow a Jupyter base URL on its pages.
const JUPYTER_PAGES: [(&str, NotebookPage); 3] = [
    ("lab", NotebookPage::Lab),
    ("notebooks", NotebookPage::ClassicNotebook),
    ("tree", NotebookPage::Tree),
];

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
        if !is_project_id(name) || name.len() > 64 || !name.bytes().any(|b| b.is_ascii_alphabetic())
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_reject_empty_dots_and_escapes() {
        assert!(is_identifier("bd-gpu-01"));
        assert!(!is_identifier(""));
        assert!(!is_identifier(".."));
        assert!(!is_identifier("a%2Fb"));
    }
}
