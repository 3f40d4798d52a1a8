//! Template budgets: how much work one render may do, so that a template written by
//! a user (a Trigger's `when`, a step's env) cannot hold a thread or the memory of
//! the operator: `{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}` fails after
//! a million operations instead of running for hours.
//!
//! Part of `engine::template`. gtmpl evaluates the template, and it has no hook; but
//! every loop and every call of a rewritten template passes through our functions:
//! - `range` goes through `__iter`/`__entries`, which charge one operation per item
//!   before the loop starts (so an empty body is paid for too);
//! - every action starts with `__at`, and every function call goes through the
//!   `lazy!` wrapper (`funcs.rs`): one operation each;
//! - what is printed is counted by `__print`, the author's text inside a loop body by
//!   `__text` (emitted by the rewriter once per iteration), and a function's result
//!   text is checked against the output budget as it is made; `replace`, `printf`
//!   and `toJson` check their result size *before* they build it.
//!
//! The wall-clock bound is a deadline computed when the render starts (`time`), or
//! an earlier one the shell passes in for a whole batch ([`with_deadline`]); the
//! clock is read once per [`CLOCK_EVERY`] operations. With `time: None` and no
//! outer deadline a render is fully deterministic.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

/// Default operation budget of one render.
pub const MAX_OPS: u64 = 1_000_000;
/// Default output budget of one render (and of any text made on the way).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Default wall-clock budget of one render.
pub const MAX_TIME: Duration = Duration::from_secs(1);
/// Operations between two reads of the clock.
const CLOCK_EVERY: u64 = 1024;

/// What one render may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Range iterations, function calls and actions.
    pub ops: u64,
    /// Bytes of output, and of any one text a function makes.
    pub output_bytes: usize,
    /// Wall-clock time; None: no time bound (deterministic).
    pub time: Option<Duration>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            ops: MAX_OPS,
            output_bytes: MAX_OUTPUT_BYTES,
            time: Some(MAX_TIME),
        }
    }
}

/// Which bound a render went past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exceeded {
    Ops(u64),
    Output(usize),
    Time(Duration),
    /// The deadline of the batch the render is part of (see [`with_deadline`]).
    Deadline,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exceeded::Ops(n) => write!(
                f,
                "the template did more than {n} operations (the budget); a range over a large number is the usual cause"
            ),
            Exceeded::Output(n) => write!(
                f,
                "the template made more than {n} bytes of text (the budget); a range that prints, or a replace or printf width that multiplies text, is the usual cause"
            ),
            Exceeded::Time(t) => write!(
                f,
                "the template ran longer than {} ms (the budget); a range over a large number or over large data is the usual cause",
                t.as_millis()
            ),
            Exceeded::Deadline => write!(
                f,
                "the templates ran out of time together (the budget of one webhook request or one reconcile); a slow template in this playbook or trigger is the cause"
            ),
        }
    }
}

thread_local! {
    static OUTER_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `f` with every render on this thread ending by `deadline` at the latest.
/// The shell uses it around a batch of renders on a blocking thread (one webhook
/// request, one `plan`), so the batch as a whole is bounded too.
pub fn with_deadline<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OUTER_DEADLINE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(OUTER_DEADLINE.with(|d| d.replace(Some(deadline))));
    f()
}

/// The running count of one render. Once a bound is passed every further charge
/// fails too, so no function can carry on after an error it swallowed.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    budget: Budget,
    ops: u64,
    output: usize,
    /// When the render must end, and whether that is its own budget or the batch's.
    deadline: Option<(Instant, bool)>,
    next_clock: u64,
    exceeded: Option<Exceeded>,
}

impl Default for Meter {
    /// No bounds at all: the state between renders.
    fn default() -> Self {
        Self::new(
            Budget {
                ops: u64::MAX,
                output_bytes: usize::MAX,
                time: None,
            },
            None,
        )
    }
}

impl Meter {
    /// A meter for one render; `outer` is the batch deadline, if any.
    fn new(budget: Budget, outer: Option<Instant>) -> Self {
        let own = budget.time.map(|t| (Instant::now() + t, false));
        let deadline = match (own, outer) {
            (Some((mine, _)), Some(o)) if o < mine => Some((o, true)),
            (Some(mine), _) => Some(mine),
            (None, Some(o)) => Some((o, true)),
            (None, None) => None,
        };
        Self {
            budget,
            ops: 0,
            output: 0,
            deadline,
            next_clock: 0,
            exceeded: None,
        }
    }

    /// A meter for a render starting now, within the thread's batch deadline.
    pub(crate) fn start(budget: Budget) -> Self {
        Self::new(budget, OUTER_DEADLINE.with(Cell::get))
    }

    pub(crate) fn exceeded(&self) -> Option<&Exceeded> {
        self.exceeded.as_ref()
    }

    pub(crate) fn output_budget(&self) -> usize {
        self.budget.output_bytes
    }

    fn fail(&mut self, e: Exceeded) -> Result<(), Exceeded> {
        let first = self.exceeded.get_or_insert(e).clone();
        Err(first)
    }

    /// Charges `n` operations.
    pub(crate) fn ops(&mut self, n: u64) -> Result<(), Exceeded> {
        if let Some(e) = &self.exceeded {
            return Err(e.clone());
        }
        self.ops = self.ops.saturating_add(n);
        if self.ops > self.budget.ops {
            return self.fail(Exceeded::Ops(self.budget.ops));
        }
        if self.ops >= self.next_clock {
            self.next_clock = self.ops.saturating_add(CLOCK_EVERY);
            if let Some((at, outer)) = self.deadline
                && Instant::now() >= at
            {
                let e = match (outer, self.budget.time) {
                    (false, Some(t)) => Exceeded::Time(t),
                    _ => Exceeded::Deadline,
                };
                return self.fail(e);
            }
        }
        Ok(())
    }

    /// Charges `n` bytes of output.
    pub(crate) fn output(&mut self, n: usize) -> Result<(), Exceeded> {
        self.ops(1)?;
        self.output = self.output.saturating_add(n);
        if self.output > self.budget.output_bytes {
            return self.fail(Exceeded::Output(self.budget.output_bytes));
        }
        Ok(())
    }

    /// Checks one text a function made or is about to make (not output yet).
    pub(crate) fn text(&mut self, n: usize) -> Result<(), Exceeded> {
        if n > self.budget.output_bytes {
            return self.fail(Exceeded::Output(self.budget.output_bytes));
        }
        Ok(())
    }
}

/// The most bytes a Go `printf` format can pad to: the widths and precisions it
/// names, and with `*` the size of every integer argument (an overestimate that no
/// sensible format comes near). gtmpl would allocate `%1000000000d` at once.
pub(crate) fn printf_padding(format: &str, int_args: impl Iterator<Item = u64>) -> u64 {
    let mut total: u64 = 0;
    let mut star = false;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let mut n: u64 = 0;
        while let Some(&d) = chars.peek() {
            if d.is_ascii_alphabetic() || d == '%' {
                chars.next();
                break;
            }
            chars.next();
            match d.to_digit(10) {
                Some(v) => n = n.saturating_mul(10).saturating_add(u64::from(v)),
                None => {
                    total = total.saturating_add(n);
                    n = 0;
                    star |= d == '*';
                }
            }
        }
        total = total.saturating_add(n);
    }
    if star {
        total = int_args.fold(total, u64::saturating_add);
    }
    total
}

/// The length of `s` with every `old` replaced by `new`, without building it.
pub(crate) fn replaced_len(s: &str, old: &str, new: &str) -> usize {
    if old.is_empty() {
        return s.len();
    }
    let count = s.matches(old).count();
    (s.len() - count * old.len()).saturating_add(count.saturating_mul(new.len()))
}

/// JSON text of `v`, or None once it would pass `limit` bytes (nothing larger is
/// ever built: the writer stops there).
pub(crate) fn json_within(v: &serde_json::Value, pretty: bool, limit: usize) -> Option<String> {
    struct Capped {
        buf: Vec<u8>,
        limit: usize,
    }
    impl std::io::Write for Capped {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.buf.len() + b.len() > self.limit {
                return Err(std::io::Error::other("over the budget"));
            }
            self.buf.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Capped {
        buf: Vec::new(),
        limit,
    };
    let done = if pretty {
        serde_json::to_writer_pretty(&mut w, v)
    } else {
        serde_json::to_writer(&mut w, v)
    };
    done.ok()?;
    String::from_utf8(w.buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ops: u64, output_bytes: usize) -> Budget {
        Budget {
            ops,
            output_bytes,
            time: None,
        }
    }

    #[test]
    fn ops_past_the_budget_fail_and_stay_failed() {
        let mut m = Meter::new(budget(10, 100), None);
        assert_eq!(m.ops(10), Ok(()));
        assert_eq!(m.ops(1), Err(Exceeded::Ops(10)));
        // Sticky: even a charge of output fails with the first reason.
        assert_eq!(m.output(0), Err(Exceeded::Ops(10)));
        assert_eq!(m.exceeded(), Some(&Exceeded::Ops(10)));
    }

    #[test]
    fn output_and_single_texts_have_the_byte_budget() {
        let mut m = Meter::new(budget(1000, 100), None);
        assert_eq!(m.output(60), Ok(()));
        assert_eq!(m.text(100), Ok(()));
        assert_eq!(m.output(41), Err(Exceeded::Output(100)));
        let mut m = Meter::new(budget(1000, 100), None);
        assert_eq!(m.text(101), Err(Exceeded::Output(100)));
    }

    #[test]
    fn a_passed_deadline_stops_the_render_at_the_next_clock_read() {
        let past = Instant::now();
        let mut m = Meter::new(budget(u64::MAX, 100), Some(past));
        assert_eq!(m.ops(1), Err(Exceeded::Deadline));
        let mut m = Meter::new(
            Budget {
                time: Some(Duration::ZERO),
                ..budget(u64::MAX, 100)
            },
            None,
        );
        assert_eq!(m.ops(1), Err(Exceeded::Time(Duration::ZERO)));
        // The outer deadline is the thread's while `with_deadline` runs, only.
        let inner = with_deadline(past, || Meter::start(budget(5, 5)).deadline);
        assert_eq!(inner, Some((past, true)));
        assert_eq!(Meter::start(budget(5, 5)).deadline, None);
    }

    #[test]
    fn messages_name_the_budget_and_the_usual_cause() {
        assert_eq!(
            Exceeded::Ops(1_000_000).to_string(),
            "the template did more than 1000000 operations (the budget); a range over a large number is the usual cause"
        );
        assert!(
            Exceeded::Output(1_048_576)
                .to_string()
                .contains("1048576 bytes")
        );
        assert!(
            Exceeded::Time(Duration::from_secs(1))
                .to_string()
                .contains("1000 ms (the budget)")
        );
    }

    #[test]
    fn printf_padding_counts_widths_precisions_and_starred_arguments() {
        let none = std::iter::empty;
        assert_eq!(printf_padding("%s-%d", none()), 0);
        assert_eq!(printf_padding("%05d|%.3f|%%", none()), 8);
        assert_eq!(printf_padding("%1000000000d", none()), 1_000_000_000);
        assert_eq!(
            printf_padding("%*d", [7u64, 2_000_000].into_iter()),
            2_000_007
        );
        assert_eq!(printf_padding("%d", [2_000_000u64].into_iter()), 0);
    }

    #[test]
    fn replaced_len_is_the_length_of_the_replacement() {
        for (s, old, new) in [("aXbXc", "X", "YYY"), ("abc", "", "Z"), ("aaaa", "aa", "b")] {
            let want = if old.is_empty() {
                s.len()
            } else {
                s.replace(old, new).len()
            };
            assert_eq!(replaced_len(s, old, new), want, "{s} {old} {new}");
        }
    }

    #[test]
    fn json_within_stops_at_the_limit() {
        let v = serde_json::json!({"a": [1, 2, 3]});
        assert_eq!(
            json_within(&v, false, 100).as_deref(),
            Some(r#"{"a":[1,2,3]}"#)
        );
        assert_eq!(json_within(&v, false, 5), None);
        assert!(json_within(&v, true, 100).is_some_and(|s| s.contains('\n')));
    }
}
