//! The webhooks' configuration as the e2e tests serve them: the Triggers of the test
//! namespace, one bearer-token file, everything else at `run`'s defaults. A test
//! changes what it exercises with struct update syntax.

use std::path::Path;

use playbook_operator::webhook::{self, auth::CredentialFiles, auth::LinesFile};

use super::TestNamespace;

/// `tokens` is a file of bearer tokens (it is opened here and read on each request).
pub async fn config(ns: &TestNamespace, tokens: &Path) -> webhook::Config {
    webhook::Config {
        namespace: Some(ns.name.clone()),
        requested_by: playbook_operator::cli::whoami(&ns.client)
            .await
            .expect("SelfSubjectReview"),
        credentials: CredentialFiles {
            tokens: Some(LinesFile::open(tokens).expect("the token file")),
            ..CredentialFiles::default()
        },
        max_body_bytes: webhook::DEFAULT_MAX_BODY_BYTES,
        queue: webhook::DEFAULT_QUEUE,
        concurrency: webhook::DEFAULT_CONCURRENCY,
        tenancy: Default::default(),
    }
}
