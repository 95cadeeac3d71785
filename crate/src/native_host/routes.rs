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
    /// The extension that brought each project's link up last: its link, and the next one
    /// (after a reload it is the one with the notebook tab).
    owners: BTreeMap<String, ExtensionId>,
    /// The last extension that said `hello`: the answer goes to it.
    greeter: Option<ExtensionId>,
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
        if self.greeter == Some(id) {
            self.greeter = None;
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
    /// project's owner; the link's messages, and a refusal, count only from the one asked
    /// (the owner, else the newest).
    pub fn heard(&mut self, id: ExtensionId, message: &Value) -> bool {
        let Some(project) = message["project"].as_str() else {
            if message["kind"] == "hello" {
                self.greeter = Some(id);
            }
            // `hello`, or a message the switchboard answers with an error.
            return true;
        };
        match message["kind"].as_str() {
            Some("linkUp") => {
                self.owners.insert(project.to_owned(), id);
                true
            }
            Some("bytes" | "linkDown" | "noLink") => self.heard_bytes(id, project),
            _ => true,
        }
    }

    /// Bytes for `project`'s link from `id` (a `bytes` message, or a binary frame of the
    /// lane): whether they count (from the one asked for the link).
    pub fn heard_bytes(&self, id: ExtensionId, project: &str) -> bool {
        self.asked(project) == Some(id)
    }

    /// Who is asked for a project's link and hears of it: its owner while connected, else
    /// the newest.
    fn asked(&self, project: &str) -> Option<ExtensionId> {
        self.owners.get(project).copied().or(self.newest)
    }

    /// Where a message of the switchboard goes: a project's to the extension asked for its
    /// link, `hello`'s answer to the one that said it, an error to the newest. `None` with
    /// no extension connected.
    pub fn target(&self, message: &ToExtension) -> Option<ExtensionId> {
        match message {
            ToExtension::Bytes { project, .. }
            | ToExtension::Drop { project, .. }
            | ToExtension::Status { project, .. }
            | ToExtension::Want { project } => self.asked(project),
            ToExtension::Hello { .. } => self.greeter.or(self.newest),
            ToExtension::Error { .. } => self.newest,
        }
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
            data: super::super::Base64Bytes::default(),
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
        assert!(routes.heard_bytes(A, "p") && !routes.heard_bytes(B, "p"));
        assert!(!routes.heard(
            B,
            &json!({"kind": "linkDown", "project": "p", "reason": ""})
        ));
        assert!(!routes.heard(A, &json!({"kind": "noLink", "project": "q", "reason": ""})));
        assert!(routes.heard(B, &json!({"kind": "noLink", "project": "q", "reason": ""})));
        // A's tab reloads: its link goes down, and p's next link is still asked of A (the
        // browser with the tab), whose refusal counts and B's does not.
        assert!(routes.heard(
            A,
            &json!({"kind": "linkDown", "project": "p", "reason": ""})
        ));
        let want_p = ToExtension::Want {
            project: "p".into(),
        };
        assert_eq!(routes.target(&want_p), Some(A));
        assert!(!routes.heard(B, &json!({"kind": "noLink", "project": "p", "reason": ""})));
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
        assert_eq!(routes.target(&bytes("p")), Some(B), "the link's new owner");
    }

    #[test]
    fn hello_is_answered_to_the_one_that_said_it() {
        let mut routes = Routes::default();
        routes.came(A);
        routes.came(B);
        routes.heard(A, &json!({"kind": "hello"}));
        let hello = ToExtension::Hello {
            host: String::new(),
            version: String::new(),
            lane: None,
        };
        assert_eq!(routes.target(&hello), Some(A));
        routes.gone(A);
        assert_eq!(routes.target(&hello), Some(B));
    }
}
