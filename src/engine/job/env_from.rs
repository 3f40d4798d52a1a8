//! A step's `envFrom`: whole Secrets as environment variables. The names were
//! rendered as templates (`render_step`); here each must be a Secret name, so a bad
//! one fails the step with what to change instead of the API server refusing the Job.

use k8s_openapi::api::core::v1::{EnvFromSource, SecretEnvSource};

use super::JobError;
use crate::api::EnvFrom;

/// The container's `envFrom`: each rendered name must be a Secret name, or the API
/// server would refuse the whole Job.
pub(super) fn env_from(step: &str, sources: &[EnvFrom]) -> Result<Vec<EnvFromSource>, JobError> {
    let mut out = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        let named = [
            ("secretRef", &s.secret_ref),
            ("integrationRef", &s.integration_ref),
        ];
        for (field, name) in named {
            let Some(name) = name else { continue };
            if !is_subdomain(name) {
                return Err(JobError::BadSecretName {
                    step: step.to_string(),
                    field: format!("envFrom[{i}].{field}"),
                    value: name.clone(),
                });
            }
            out.push(EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.clone(),
                    optional: None,
                }),
                ..Default::default()
            });
        }
    }
    Ok(out)
}

/// A DNS subdomain (RFC 1123), what a Secret's name must be.
fn is_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_names_must_be_secret_names() {
        let source = |name: &str| EnvFrom {
            integration_ref: Some(name.into()),
            ..Default::default()
        };
        let ok = env_from("notify", &[source("slack-prod.v1")]).expect("a Secret name");
        let names: Vec<_> = ok
            .iter()
            .filter_map(|e| e.secret_ref.as_ref().map(|s| s.name.clone()))
            .collect();
        assert_eq!(names, ["slack-prod.v1"]);
        for bad in ["<no value>", "", "Slack", "-a", "a..b", &"a".repeat(254)] {
            let err = env_from("notify", &[source(bad)]).expect_err(bad);
            assert!(
                err.to_string().starts_with(&format!(
                    "step 'notify': envFrom[0].integrationRef is '{bad}', which is not a Secret name"
                )),
                "{err}"
            );
        }
    }
}
