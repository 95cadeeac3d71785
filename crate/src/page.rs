//! Where a notebook lives: the IDE page URL shapes of AI Studio and the Jupyter Server base
//! URL behind them, and the URL pieces the self-hosted servers' locator shares.

use serde::Serialize;

use crate::fields::is_identifier;

/// The one origin AI Studio serves notebooks from; its URL shapes are recognised only there
/// (a self-hosted JupyterHub path can look like them).
pub const AISTUDIO_ORIGIN: &str = "https://aistudio.baidu.com";

/// Whether a notebook page at `origin` can load the extension's hidden frame that hands its
/// carrier's MessagePort to the worker (`www/broker.html`): the manifest makes it
/// web-accessible to AI Studio's pages only, so elsewhere (a self-hosted server) it is not
/// asked for.
pub fn loads_port_broker(origin: &str) -> bool {
    origin == AISTUDIO_ORIGIN
}

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

/// Path segments that follow a Jupyter base URL on its pages.
pub(crate) const JUPYTER_PAGES: [(&str, NotebookPage); 3] = [
    ("lab", NotebookPage::Lab),
    ("notebooks", NotebookPage::ClassicNotebook),
    ("tree", NotebookPage::Tree),
];

/// An http(s) URL cut into what the locators need; query and fragment dropped.
pub(crate) struct UrlParts<'a> {
    pub(crate) scheme: &'a str,
    /// `host[:port]`, never empty, never with user info.
    pub(crate) authority: &'a str,
    /// Empty or starting with `/`.
    pub(crate) path: &'a str,
}

pub(crate) fn split_url(url: &str) -> Option<UrlParts<'_>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ai_studio_pages_load_the_port_broker() {
        // As www/manifest.json5's web_accessible_resources allows it.
        let manifest = include_str!("../../www/manifest.json5");
        assert!(manifest.contains(
            "{ resources: ['broker.html', 'broker.js'], matches: ['https://aistudio.baidu.com/*'] }"
        ));
        assert!(loads_port_broker("https://aistudio.baidu.com"));
        assert!(!loads_port_broker("https://jupyter.example.org"));
        assert!(!loads_port_broker("http://aistudio.baidu.com"));
    }

    #[test]
    fn identifiers_reject_empty_dots_and_escapes() {
        assert!(is_identifier("bd-gpu-01"));
        assert!(!is_identifier(""));
        assert!(!is_identifier(".."));
        assert!(!is_identifier("a%2Fb"));
    }
}
