//! Which steps run and in what order: a sequence, a `dependsOn` DAG, `when` on a
//! step or a group, and `foreach` loops (paths, ranges, items, parallelism, break).

use serde_json::json;

use crate::api::ExecutionPhase::{Failed, Running, Succeeded};
use crate::engine::plan::scenario::Act::*;
use crate::engine::plan::scenario::{Case, block, case, step};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "sequential",
            vec![step("a"), step("b")],
            vec![
                Plan,
                States("a=Running b=Pending"),
                PhaseIs(Running),
                Events(&[]),
                Creates(1),
                Exit("a", 0, r#"{"x": 1}"#),
                Plan,
                States("a=Succeeded b=Running"),
                Events(&["StepSucceeded"]),
                Exit("b", 0, "{}"),
                Plan,
                States("a=Succeeded b=Succeeded"),
                PhaseIs(Succeeded),
                Events(&["StepSucceeded", "ExecutionSucceeded"]),
                RunMsg("2 steps succeeded, 0 skipped"),
                Plan,
                Events(&[]),
                Creates(0),
            ],
        ),
        case(
            "DAG: independent steps run together, a join waits for both",
            vec![
                step("a"),
                step("b").after(&[]),
                step("c").after(&["a", "b"]),
                step("d"),
            ],
            vec![
                Plan,
                States("a=Running b=Running c=Pending d=Pending"),
                Creates(2),
                Exit("b", 0, "{}"),
                Plan,
                States("a=Running b=Succeeded c=Pending d=Pending"),
                Exit("a", 0, "{}"),
                Plan,
                States("a=Succeeded b=Succeeded c=Running d=Pending"),
            ],
        ),
        case(
            "when false skips the step, the next one runs",
            vec![step("a").when("false"), step("b")],
            vec![
                Plan,
                States("a=Skipped b=Running"),
                Msg("a", "when rendered false: false"),
                Events(&["StepSkipped"]),
            ],
        ),
        case(
            "a group whose when is false skips all its steps",
            vec![
                block("g", vec![step("x"), step("y")]).when("false"),
                step("c"),
            ],
            vec![
                Plan,
                States("g.x=Skipped g.y=Skipped c=Running"),
                Msg("g.y", "block 'g': when rendered false: false"),
            ],
        ),
        case(
            "a group whose when holds runs its steps in order",
            vec![
                block("g", vec![step("x"), step("y")]).when("true"),
                step("c"),
            ],
            vec![
                Plan,
                States("g.x=Running g.y=Pending c=Pending"),
                Exit("g.x", 0, "{}"),
                Plan,
                States("g.x=Succeeded g.y=Running c=Pending"),
            ],
        ),
        case(
            "foreach over a list from a step's output, one item after the other",
            vec![
                step("list"),
                step("each").foreach_path("$.list.pods"),
                step("after"),
            ],
            vec![
                Plan,
                Exit("list", 0, r#"{"pods": ["p1", "p2"]}"#),
                Plan,
                States("list=Succeeded each[0]=Running each[1]=Pending after=Pending"),
                Exit("each[0]", 0, r#"{"n": 0}"#),
                Plan,
                States("list=Succeeded each[0]=Succeeded each[1]=Running after=Pending"),
                Exit("each[1]", 0, r#"{"n": 1}"#),
                Plan,
                States("list=Succeeded each[0]=Succeeded each[1]=Succeeded after=Running"),
            ],
        ),
        case(
            "(template) foreach renders each item into the step's env",
            vec![
                step("list"),
                step("each")
                    .foreach_path("pods")
                    .env("POD", "{{ .value }}/{{ .key }}"),
            ],
            vec![
                Plan,
                Exit("list", 0, r#"{"pods": ["p1", "p2"]}"#),
                Plan,
                Env("each[0]", "POD", "p1/0"),
                Exit("each[0]", 0, "{}"),
                Plan,
                Env("each[1]", "POD", "p2/1"),
            ],
        ),
        case(
            "(template) foreach over a range ends on break",
            vec![step("n").foreach_range(0, 4).break_when("{{ eq .key 1 }}")],
            vec![
                Plan,
                States("n[0]=Running n[1]=Pending n[2]=Pending n[3]=Pending"),
                Exit("n[0]", 0, "{}"),
                Plan,
                States("n[0]=Succeeded n[1]=Running n[2]=Pending n[3]=Pending"),
                Exit("n[1]", 0, "{}"),
                Plan,
                States("n[0]=Succeeded n[1]=Succeeded n[2]=Skipped n[3]=Skipped"),
                Msg("n[3]", "ended by break after item 1"),
                PhaseIs(Succeeded),
            ],
        ),
        case(
            "foreach over a range with a break that holds at once",
            vec![step("n").foreach_range(5, 8).break_when("true"), step("b")],
            vec![
                Plan,
                States("n[0]=Running n[1]=Pending n[2]=Pending b=Pending"),
                Exit("n[0]", 0, "{}"),
                Plan,
                States("n[0]=Succeeded n[1]=Skipped n[2]=Skipped b=Running"),
                Events(&["StepSucceeded", "StepSkipped"]),
            ],
        ),
        case(
            "foreach: parallelism, per-item when, no items",
            vec![
                step("p").foreach_range(0, 3).parallel(2),
                step("w")
                    .foreach_items(vec![json!("a"), json!("b")])
                    .item_when("false")
                    .after(&[]),
                step("z").foreach_items(vec![]).after(&[]),
            ],
            vec![
                Plan,
                States(
                    "p[0]=Running p[1]=Running p[2]=Pending w[0]=Skipped w[1]=Skipped z=Skipped",
                ),
            ],
        ),
        case(
            "a looped block runs its steps per item",
            vec![
                block("per", vec![step("x"), step("y")])
                    .foreach_items(vec![json!("a"), json!("b")]),
            ],
            vec![
                Plan,
                States("per[0].x=Running per[0].y=Pending per[1].x=Pending per[1].y=Pending"),
                Exit("per[0].x", 0, "{}"),
                Plan,
                Exit("per[0].y", 0, "{}"),
                Plan,
                States("per[0].x=Succeeded per[0].y=Succeeded per[1].x=Running per[1].y=Pending"),
            ],
        ),
        case(
            "a loop over a path that is not there fails, naming it",
            vec![step("list"), step("each").foreach_path("$.list.podz")],
            vec![
                Plan,
                Exit("list", 0, r#"{"pods": []}"#),
                Plan,
                States("list=Succeeded each=Failed"),
                Msg(
                    "each",
                    "foreach 'each': '$.list.podz' not found: no 'podz' in '.list' (there: pods)",
                ),
                PhaseIs(Failed),
            ],
        ),
    ]
}
