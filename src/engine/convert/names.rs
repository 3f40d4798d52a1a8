//! Kubernetes names for StackPulse identifiers: object names (DNS-1123 subdomains),
//! step ids (DNS labels), and ids for steps and blocks that had none.
//!
//! StackPulse allowed `redis_incident_enrichment`, repeated step ids and steps with no
//! id at all; the API server and our Job names need DNS names, unique per playbook.

use std::collections::BTreeSet;

/// Longest DNS label (a step id becomes part of Job and label values).
const LABEL_MAX: usize = 63;
/// Longest DNS subdomain (an object name).
const SUBDOMAIN_MAX: usize = 253;

/// True when `s` is a DNS-1123 label: what the Playbook CRD demands of step ids.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= LABEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// True when `s` is a DNS-1123 subdomain: what the API server demands of object names.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= SUBDOMAIN_MAX && !s.is_empty() && s.split('.').all(is_dns_label)
}

/// The closest DNS label to `s`: lowercase, every run of other characters becomes one
/// '-', trimmed to 63 characters. Empty when `s` has no letter or digit.
pub fn dns_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(LABEL_MAX);
    out.trim_end_matches('-').to_string()
}

/// The closest DNS subdomain to `s` (dots kept between labels).
pub fn dns_subdomain(s: &str) -> String {
    let labels: Vec<String> = s
        .split('.')
        .map(dns_label)
        .filter(|l| !l.is_empty())
        .collect();
    let mut out = labels.join(".");
    out.truncate(SUBDOMAIN_MAX);
    out.trim_end_matches(['-', '.']).to_string()
}

/// The base of a generated step id: the last path segment of the image without tag or
/// digest (`us-docker.pkg.dev/stackpulse/public/teams-message:v2` → `teams-message`),
/// because that is how people already call the step.
pub fn id_from_image(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let name = last.split(':').next().unwrap_or(last);
    let id = dns_label(name);
    if id.is_empty() {
        "step".to_string()
    } else {
        id
    }
}

/// Hands out step and block ids, unique across the whole playbook (blocks included,
/// since `dependsOn` and `.steps.<id>` name them in one namespace).
#[derive(Debug, Default)]
pub struct Ids {
    taken: BTreeSet<String>,
    /// Ids written in the source: a generated id never takes one of these, even when
    /// the step that wrote it comes later.
    reserved: BTreeSet<String>,
}

impl Ids {
    /// Reserve an id the source wrote explicitly (call for all of them first).
    pub fn reserve(&mut self, id: &str) {
        self.reserved.insert(dns_label(id));
    }

    /// Take `wanted` if free, else `wanted-2`, `wanted-3`, ...; `explicit` says the
    /// source wrote this id, so it may use its own reservation.
    pub fn take(&mut self, wanted: &str, explicit: bool) -> String {
        let base = match dns_label(wanted) {
            b if b.is_empty() => "step".to_string(),
            b => b,
        };
        let free = |id: &str, ids: &Ids| {
            !ids.taken.contains(id) && (explicit && id == base || !ids.reserved.contains(id))
        };
        let mut id = base.clone();
        let mut n = 2;
        while !free(&id, self) {
            let suffix = format!("-{n}");
            let mut stem = base.clone();
            stem.truncate(LABEL_MAX - suffix.len());
            id = format!("{}{suffix}", stem.trim_end_matches('-'));
            n += 1;
        }
        self.taken.insert(id.clone());
        id
    }
}
