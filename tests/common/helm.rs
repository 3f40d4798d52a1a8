//! Helm on the local control plane: the pinned `helm` binary that `build.sh` made,
//! and a release of the repository's chart that is uninstalled when dropped (its
//! cluster-scoped objects outlive the test's namespace).

use std::path::Path;
use std::process::Command;

use super::TestNamespace;

/// A value of the local cluster's `env` file (`BIN_DIR`, `AUDIT_LOG`, `REAL_NODE_NETNS`,
/// ...); panics naming what to do when the cluster or the value is missing.
pub fn cluster_env(key: &str) -> String {
    let env = super::local_cluster_env().unwrap_or_else(|| {
        panic!(
            "this test needs the local control plane (its helm, audit log and real node): {}",
            super::START_HINT
        )
    });
    env.get(key).cloned().unwrap_or_else(|| {
        panic!(
            "the local cluster's env file has no {key}: it was started by an older \
             tests/cluster/up.sh; restart it (tests/cluster/down.sh, then up.sh)"
        )
    })
}

/// The pinned `helm`, with KUBECONFIG set to the test cluster's.
pub fn helm() -> Command {
    let bin = Path::new(&cluster_env("BIN_DIR")).join("helm");
    assert!(
        bin.is_file(),
        "{} is missing: run tests/cluster/build.sh",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.env("KUBECONFIG", super::kubeconfig_path());
    cmd
}

/// Runs `cmd` and returns its stdout; panics with its output when it fails.
pub fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Helm release of the chart named after its namespace, uninstalled when dropped.
pub struct Release {
    pub name: String,
    pub namespace: String,
    uninstalled: bool,
}

impl Release {
    /// `helm install` with `--set` for each of `values`.
    pub fn install(ns: &TestNamespace, values: &[&str]) -> Self {
        let args: Vec<String> = values
            .iter()
            .flat_map(|v| ["--set".into(), v.to_string()])
            .collect();
        Self::install_with(ns, &args)
    }

    /// `helm install` with these arguments (`--set`, `--set-json`, `-f`, ...).
    pub fn install_with(ns: &TestNamespace, args: &[String]) -> Self {
        let release = Release {
            name: ns.name.clone(),
            namespace: ns.name.clone(),
            uninstalled: false,
        };
        run(release.command("install", args), "helm install");
        release
    }

    /// `helm upgrade` of the release with these arguments (values are not reused).
    pub fn upgrade(&self, args: &[String]) {
        run(self.command("upgrade", args), "helm upgrade");
    }

    /// `helm uninstall --wait`: returns once the release's objects are deleted.
    pub fn uninstall(&mut self) {
        let mut cmd = helm();
        cmd.args([
            "uninstall",
            &self.name,
            "--namespace",
            &self.namespace,
            "--wait",
        ]);
        run(cmd, "helm uninstall");
        self.uninstalled = true;
    }

    /// The chart's full name: its Deployment, ServiceAccount, ClusterRole, Lease, ...
    pub fn fullname(&self) -> String {
        format!("{}-playbook-operator", self.name)
    }

    fn command(&self, verb: &str, args: &[String]) -> Command {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/playbook-operator");
        let mut cmd = helm();
        cmd.arg(verb)
            .arg(&self.name)
            .arg(&chart)
            .args(["--namespace", &self.namespace])
            .args(args);
        cmd
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.uninstalled {
            let mut cmd = helm();
            cmd.args(["uninstall", &self.name, "--namespace", &self.namespace]);
            let _ = cmd.output();
        }
    }
}
