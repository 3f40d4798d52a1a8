//! The order of a playbook's entries: who waits for whom.
//!
//! An entry without `dependsOn` waits for the entry before it (StackPulse playbooks
//! are sequential); `dependsOn: [...]` names the entries it waits for, which makes
//! the playbook a DAG; `[]` starts it with the run. Steps inside a block follow the
//! same rule among themselves. Lint, the Playbook reconciler and the planner all
//! use [`validate_graph`], so a cycle is reported the same way everywhere.

use std::collections::{BTreeSet, HashMap};

use crate::api::PlaybookSpec;

/// Who waits for whom, by position in `spec.steps` (and in each block's `steps`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Graph {
    /// For each entry of `spec.steps`, the entries it waits for.
    pub deps: Vec<Vec<usize>>,
    /// For each entry, per step of its block (empty for a plain step), the block
    /// steps it waits for.
    pub inner: Vec<Vec<Vec<usize>>>,
    /// Entry id → position in `spec.steps`.
    pub index: HashMap<String, usize>,
}

impl Graph {
    pub fn new(pb: &PlaybookSpec) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let top: Vec<_> = pb
            .steps
            .iter()
            .map(|e| (e.step.id.as_str(), e.step.depends_on.as_deref()))
            .collect();
        let deps = scope_deps(&top, None, &mut errors);
        let mut inner = Vec::with_capacity(pb.steps.len());
        for entry in &pb.steps {
            let steps = entry.steps.as_deref().unwrap_or_default();
            let nodes: Vec<_> = steps
                .iter()
                .map(|s| (s.id.as_str(), s.depends_on.as_deref()))
                .collect();
            inner.push(scope_deps(&nodes, Some(&entry.step.id), &mut errors));
        }
        let index = pb
            .steps
            .iter()
            .enumerate()
            .map(|(i, e)| (e.step.id.clone(), i))
            .collect();
        if errors.is_empty() {
            Ok(Self { deps, inner, index })
        } else {
            Err(errors)
        }
    }
}

/// Checks that every `dependsOn` names an entry of its scope, that ids are unique
/// and that nothing waits for itself, directly or through a cycle. Returns every
/// problem found, each naming the steps involved.
pub fn validate_graph(pb: &PlaybookSpec) -> Result<(), Vec<String>> {
    let mut errors = Graph::new(pb).err().unwrap_or_default();
    errors.extend(finally_problems(pb).into_iter().map(|(_, message)| message));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What is wrong with `spec.finally`, as (field path, message). Finally steps run in
/// order after the main ones, and their Jobs and outputs are named after their ids,
/// so those must not repeat any other id.
pub fn finally_problems(pb: &PlaybookSpec) -> Vec<(String, String)> {
    let main: BTreeSet<&str> = pb.steps.iter().map(|e| e.step.id.as_str()).collect();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for (i, entry) in pb.finally.iter().enumerate() {
        let id = entry.step.id.as_str();
        if main.contains(id) {
            problems.push((
                format!("spec.finally[{i}].id"),
                format!("finally step '{id}': id '{id}' is also a step's id: ids must be unique in a playbook"),
            ));
        } else if !seen.insert(id) {
            problems.push((
                format!("spec.finally[{i}].id"),
                format!("finally step '{id}': duplicate id: ids must be unique in a playbook"),
            ));
        }
        if entry.step.depends_on.is_some() {
            problems.push((
                format!("spec.finally[{i}].dependsOn"),
                format!("finally step '{id}': dependsOn is not allowed: finally steps run in order, each after the one before"),
            ));
        }
    }
    problems
}

/// Resolves the dependencies of one scope (the top level, or one block), pushing
/// every problem found to `errors`.
fn scope_deps(
    nodes: &[(&str, Option<&[String]>)],
    block: Option<&str>,
    errors: &mut Vec<String>,
) -> Vec<Vec<usize>> {
    let start = errors.len();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut reported = BTreeSet::new();
    for (i, (id, _)) in nodes.iter().enumerate() {
        if position.insert(id, i).is_some() && reported.insert(*id) {
            errors.push(match block {
                Some(b) => format!(
                    "block '{b}': duplicate step id '{id}': step ids must be unique within a block"
                ),
                None => format!("duplicate step id '{id}': step ids must be unique in a playbook"),
            });
        }
    }
    let mut deps = Vec::with_capacity(nodes.len());
    for (i, (id, depends_on)) in nodes.iter().enumerate() {
        let Some(names) = depends_on else {
            deps.push(if i == 0 { vec![] } else { vec![i - 1] });
            continue;
        };
        let mut mine = Vec::new();
        for name in names.iter() {
            match position.get(name.as_str()) {
                Some(&j) => mine.push(j),
                None => errors.push(match block {
                    Some(b) => format!(
                        "step '{b}.{id}': dependsOn names '{name}', which is not a step of block '{b}' (a block's steps depend only on each other; put dependsOn on the block)"
                    ),
                    None => format!("step '{id}': dependsOn names '{name}', which is not a step of this playbook"),
                }),
            }
        }
        mine.sort_unstable();
        mine.dedup();
        deps.push(mine);
    }
    if errors.len() == start {
        for cycle in cycles(&deps) {
            let names: Vec<&str> = cycle.iter().map(|&i| nodes[i].0).collect();
            let path = format!("{} → {}", names.join(" → "), names[0]);
            errors.push(match block {
                Some(b) => format!("block '{b}': dependsOn cycle: {path}"),
                None => format!("dependsOn cycle: {path}"),
            });
        }
    }
    deps
}

/// Every elementary cycle found by a depth-first walk, once per set of nodes, each
/// written from its smallest position so the message is stable.
fn cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn walk(
        n: usize,
        deps: &[Vec<usize>],
        mark: &mut [Mark],
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        mark[n] = Mark::OnPath;
        path.push(n);
        for &d in &deps[n] {
            match mark[d] {
                Mark::New => walk(d, deps, mark, path, found),
                Mark::OnPath => {
                    // The path from `d` to `n` plus the edge back to `d` is a cycle, in
                    // the direction of `dependsOn`: "a → c" reads "a depends on c".
                    let from = path.iter().position(|&p| p == d).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[from..].to_vec();
                    let min = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, v)| **v)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    cycle.rotate_left(min);
                    found.push(cycle);
                }
                Mark::Done => {}
            }
        }
        path.pop();
        mark[n] = Mark::Done;
    }
    let mut mark = vec![Mark::New; deps.len()];
    let mut found = Vec::new();
    for n in 0..deps.len() {
        if mark[n] == Mark::New {
            walk(n, deps, &mut mark, &mut Vec::new(), &mut found);
        }
    }
    let mut seen = BTreeSet::new();
    found.retain(|c| seen.insert(c.iter().copied().collect::<BTreeSet<_>>()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PlaybookStep, Step};
    use pretty_assertions::assert_eq;

    fn entry(id: &str, deps: Option<&[&str]>) -> PlaybookStep {
        let depends_on = deps.map(|d| d.iter().map(|s| s.to_string()).collect());
        PlaybookStep {
            step: Step {
                id: id.into(),
                image: "x".into(),
                depends_on,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pb(steps: Vec<PlaybookStep>) -> PlaybookSpec {
        PlaybookSpec {
            steps,
            ..Default::default()
        }
    }

    #[test]
    fn sequential_by_default_and_dag_with_depends_on() {
        let g = Graph::new(&pb(vec![
            entry("a", None),
            entry("b", None),
            entry("c", Some(&[])),
            entry("d", Some(&["a", "c", "a"])),
        ]));
        assert_eq!(
            g.map(|g| g.deps),
            Ok(vec![vec![], vec![0], vec![], vec![0, 2]])
        );
    }

    #[test]
    fn problems_name_the_steps() {
        let cases: Vec<(Vec<PlaybookStep>, Vec<&str>)> = vec![
            (
                vec![entry("a", Some(&["nope"]))],
                vec!["step 'a': dependsOn names 'nope', which is not a step of this playbook"],
            ),
            (
                vec![entry("a", Some(&["a"]))],
                vec!["dependsOn cycle: a → a"],
            ),
            (
                vec![
                    entry("a", Some(&["c"])),
                    entry("b", None),
                    entry("c", None),
                    entry("d", None),
                ],
                vec!["dependsOn cycle: a → c → b → a"],
            ),
            (
                vec![entry("a", None), entry("a", None)],
                vec!["duplicate step id 'a': step ids must be unique in a playbook"],
            ),
        ];
        for (steps, want) in cases {
            assert_eq!(
                validate_graph(&pb(steps)),
                Err(want.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            );
        }
    }

    #[test]
    fn block_steps_depend_within_their_block() {
        let mut block = entry("blk", None);
        block.step.image.clear();
        block.steps = Some(vec![
            Step {
                id: "x".into(),
                ..Default::default()
            },
            Step {
                id: "y".into(),
                depends_on: Some(vec!["outside".into()]),
                ..Default::default()
            },
        ]);
        let err = validate_graph(&pb(vec![entry("outside", None), block]))
            .expect_err("outside the block");
        assert_eq!(err.len(), 1);
        assert!(
            err[0].starts_with(
                "step 'blk.y': dependsOn names 'outside', which is not a step of block 'blk'"
            ),
            "{err:?}"
        );
    }
}
