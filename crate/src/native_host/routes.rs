//! Which browser's extension each message goes to when more than one is connected to the
//! keeper (two browsers, or two profiles, with the extension): a project's link belongs to
//! the extension that brought it up, and everything about that link goes to and comes from
//! that one; new links are asked of the newest. So a browser that starts later neither cuts
//! the sessions of one already running nor mixes its bytes into them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::message::ToExtension;

/// One extension's connection to the keeper, numbered by the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtensionId(pub u64);

/// The connected extensions and the owner of each project's link.
#[derive(Debug, Default)]
pub struct Routes {
    connected: BTreeSet<ExtensionId>,
    newest: Option<ExtensionId>,
    owners: BTreeMap<String, ExtensionId>,
}

impl Routes {
    /// An extension connected: the newest is asked for new links.
    pub fn came(&mut self, id: ExtensionId) {
        self.connected.insert(id);
        self.newest = Some(id);
    }

    /// An extension went: the projects whose link it carried (now down). The newest left
    /// becomes the one asked.
    pub fn gone(&mut self, id: ExtensionId) -> Vec<String> {
        self.connected.remove(&id);
        if self.newest == Some(id) {
            self.newest = self.connected.last().copied();
        }
        let projects: Vec<String> = self
            .owners
            .iter()
            .filter(|(_, owner)| **owner == id)
            .map(|(project, _)| project.clone())
            .collect();
        for project in &projects {
            self.owners.remove(project);
        }
        projects
    }

    /// Whether any extension is connected.
    pub fn any(&self) -> bool {
        !self.connected.is_empty()
    }

    /// A message from `id`: whether the switchboard takes it. `linkUp` makes `id` the
    /// project's owner; its link's messages count only from the owner, a refusal only from
    /// the one that was asked (the newest) or the owner.
    pub fn heard(&mut self, id: ExtensionId, message: &Value) -> bool {
        let Some(project) = message["project"].as_str() else {
            // `hello`, or a message the switchboard answers with an error.
            return true;
        };
        let owner = self.owners.get(project).copied();
        match message["kind"].as_str() {
            Some("linkUp") => {
                self.owners.insert(project.to_owned(), id);
                true
            }
            Some("linkDown") if owner == Some(id) => {
                self.owners.remove(project);
                true
            }
            Some("bytes" | "linkDown") => owner == Some(id),
            Some("noLink") => owner == Some(id) || self.newest == Some(id),
            _ => true,
        }
    }

    /// Where a message of the switchboard goes: a link's to its owner, the rest (and a link
    /// with no owner) to the newest. `None` with no extension connected.
    pub fn target(&self, message: &ToExtension) -> Option<ExtensionId> {
        let project = match message {
            ToExtension::Bytes { project, .. }
            | ToExtension::Drop { project, .. }
            | ToExtension::Status { project, .. } => Some(project),
            ToExtension::Hello { .. } | ToExtension::Want { .. } | ToExtension::Error { .. } => {
                None
            }
        };
        project
            .and_then(|project| self.owners.get(project).copied())
            .or(self.newest)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const A: ExtensionId = ExtensionId(1);
    const B: ExtensionId = ExtensionId(2);

    fn bytes(project: &str) -> ToExtension {
        ToExtension::Bytes {
            project: project.into(),
            link: 1,
            data: String::new(),
        }
    }

    #[test]
    fn a_link_stays_with_the_extension_that_brought_it_up() {
        let mut routes = Routes::default();
        routes.came(A);
        assert!(routes.heard(A, &json!({"kind": "linkUp", "project": "p", "link": 1})));
        routes.came(B);
        // New links are asked of the newest; p's link stays A's, both ways.
        let want = ToExtension::Want {
            project: "q".into(),
        };
        assert_eq!(routes.target(&want), Some(B));
        assert_eq!(routes.target(&bytes("p")), Some(A));
        assert_eq!(routes.target(&bytes("q")), Some(B));
        assert!(routes.heard(A, &json!({"kind": "bytes", "project": "p", "data": ""})));
        assert!(!routes.heard(B, &json!({"kind": "bytes", "project": "p", "data": ""})));
        assert!(!routes.heard(
            B,
            &json!({"kind": "linkDown", "project": "p", "reason": ""})
        ));
        assert!(!routes.heard(A, &json!({"kind": "noLink", "project": "q", "reason": ""})));
        assert!(routes.heard(B, &json!({"kind": "noLink", "project": "q", "reason": ""})));
        // The newer one going takes none of A's links down; A is asked again.
        assert_eq!(routes.gone(B), Vec::<String>::new());
        assert_eq!(routes.target(&want), Some(A));
        assert_eq!(routes.gone(A), vec!["p".to_owned()]);
        assert!(!routes.any());
        assert_eq!(routes.target(&bytes("p")), None);
    }

    #[test]
    fn a_later_link_up_moves_the_link() {
        let mut routes = Routes::default();
        routes.came(A);
        routes.heard(A, &json!({"kind": "linkUp", "project": "p", "link": 1}));
        routes.came(B);
        assert!(routes.heard(B, &json!({"kind": "linkUp", "project": "p", "link": 1})));
        assert_eq!(routes.target(&bytes("p")), Some(B));
        assert!(!routes.heard(A, &json!({"kind": "bytes", "project": "p", "data": ""})));
        assert_eq!(routes.gone(A), Vec::<String>::new());
        assert!(routes.heard(
            B,
            &json!({"kind": "linkDown", "project": "p", "reason": ""})
        ));
        assert_eq!(
            routes.target(&bytes("p")),
            Some(B),
            "the newest, with no owner"
        );
    }
}
