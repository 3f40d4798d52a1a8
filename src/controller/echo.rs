//! The reconcile a status write of our own would cause, skipped.
//!
//! Each status write comes back as a watch event of the Execution, which would
//! reconcile it again: about one reconcile per step for nothing, queued ahead of the
//! ones that matter (a pod that ended). A plan applied (with the uids of the Jobs it
//! created) is what the next plan on the same run would be (the scenario tests plan
//! again after every apply and check it). So a watch event whose object is exactly
//! the version our write produced (its resourceVersion) does not reconcile. Any other version does: someone else's change, or one of ours
//! the watch showed before the write's answer came back.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The resourceVersion of the last status write of each Execution, by uid, until its
/// watch event comes.
#[derive(Default)]
pub struct Echoes(Mutex<HashMap<String, String>>);

impl Echoes {
    /// Our write made `resource_version` of the Execution `uid`.
    pub fn wrote(&self, uid: &str, resource_version: Option<String>) {
        let mut map = self.lock();
        match resource_version {
            Some(rv) => map.insert(uid.to_string(), rv),
            None => map.remove(uid),
        };
    }

    /// Whether the watch event of Execution `uid` at `resource_version` is only the
    /// echo of our last write. Either way the record of that write is done with.
    pub fn is_echo(&self, uid: &str, resource_version: Option<&str>) -> bool {
        let written = self.lock().remove(uid);
        written.is_some() && written.as_deref() == resource_version
    }

    /// The Execution `uid` is gone.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_version_written_is_an_echo_and_only_once() {
        let echoes = Echoes::default();
        assert!(!echoes.is_echo("u", Some("5")), "nothing written");
        echoes.wrote("u", Some("7".into()));
        assert!(!echoes.is_echo("other", Some("7")), "another run");
        assert!(echoes.is_echo("u", Some("7")));
        assert!(
            !echoes.is_echo("u", Some("7")),
            "a second event of it reconciles"
        );

        // Someone else's change seen first: it reconciles, and so does our write's.
        echoes.wrote("u", Some("9".into()));
        assert!(!echoes.is_echo("u", Some("8")));
        assert!(!echoes.is_echo("u", Some("9")));

        echoes.wrote("u", None);
        assert!(!echoes.is_echo("u", None), "no version, never an echo");
        echoes.wrote("u", Some("10".into()));
        echoes.forget("u");
        assert!(!echoes.is_echo("u", Some("10")));
    }
}
