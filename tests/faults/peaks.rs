//! The peak-rate bound: the most AWS operations one object made within one second, as the
//! emulator counted them per object (`RunningEmulator::object_ops`: Start by client token, Get,
//! Stop and Delete by the job they name; SDK retries are attempts, not operations). A row with
//! lifecycles must have a measurement: without one the bound is not checked, so the row fails.

use std::collections::BTreeMap;

use agentcore_emulator::ObjectOps;

use crate::support::{invariants::Ledger, report::Row};

/// Most AWS operations one object can make in any one second without a hot loop: three
/// requeued reconciles (0.45 s apart) and two event-triggered ones, three operations each.
pub const PEAK_OPS_BOUND: u32 = 15;

/// Per namespace: the highest per-object peak of the objects the ledger knows in it.
pub fn by_namespace(ops: &BTreeMap<String, ObjectOps>, ledger: &Ledger) -> BTreeMap<String, u32> {
    let mut peaks: BTreeMap<String, u32> = BTreeMap::new();
    for (subject, o) in ops {
        if let Some(ns) = ledger.namespace_of_subject(subject) {
            let peak = peaks.entry(ns.to_owned()).or_default();
            *peak = (*peak).max(o.peak_per_second);
        }
    }
    peaks
}

/// Sets the row's peak from its namespaces' peaks; a row with lifecycles and no measurement
/// fails, unless it says why none can exist.
pub fn check_row(row: &mut Row, peaks: &BTreeMap<String, u32>) {
    if row.lifecycles == 0 {
        return;
    }
    if let Some(why) = row.peak_unmeasurable {
        row.note(format!("no per-object peak: {why}"));
        return;
    }
    let peak = row
        .namespaces
        .iter()
        .filter_map(|ns| peaks.get(ns).copied())
        .max();
    match peak {
        Some(p) => row.peak = Some((p, row.peak_bound.unwrap_or(PEAK_OPS_BOUND))),
        None => row.fail(format!(
            "no per-object AWS operation count from the emulator for {:?}: the peak bound could not be checked",
            row.namespaces
        )),
    }
}

#[cfg(test)]
mod tests {
    use agentcore_emulator::Operation;
    use serde_json::json;

    use super::*;
    use crate::support::object::FINALIZER;

    fn ops(peak: u32) -> ObjectOps {
        ObjectOps {
            operations: [(Operation::GetBatchEvaluation, u64::from(peak))].into(),
            attempts: u64::from(peak),
            peak_per_second: peak,
        }
    }

    fn row(ns: &str) -> Row {
        let mut row = Row::new("scenario", &[ns]);
        row.lifecycles = 1;
        row
    }

    #[test]
    fn a_row_without_a_measurement_fails() {
        let mut missing = row("ns");
        check_row(&mut missing, &BTreeMap::new());
        assert_eq!(missing.peak, None);
        assert!(!missing.clean(), "a missing peak must fail the row");

        let mut measured = row("ns");
        check_row(&mut measured, &[("ns".to_owned(), 4)].into());
        assert_eq!(measured.peak, Some((4, PEAK_OPS_BOUND)));
        assert!(measured.clean());

        let mut over = row("ns");
        check_row(&mut over, &[("ns".to_owned(), PEAK_OPS_BOUND + 1)].into());
        assert!(!over.clean(), "a peak over the bound fails the row");

        let mut exempt = row("ns");
        exempt.peak_unmeasurable = Some("no emulator behind the endpoint");
        check_row(&mut exempt, &BTreeMap::new());
        assert!(exempt.clean() && exempt.peak.is_none());

        let mut quiet = Row::new("quiet", &["ns"]);
        check_row(&mut quiet, &BTreeMap::new());
        assert!(
            quiet.clean(),
            "rows without lifecycles have no peak to check"
        );
    }

    #[test]
    fn peaks_are_attributed_by_token_or_recorded_id() {
        let mut ledger = Ledger::default();
        ledger.record_objects(&[
            json!({"metadata": {"namespace": "a", "name": "x", "uid": "u1", "finalizers": [FINALIZER]}}),
            json!({"metadata": {"namespace": "b", "name": "y", "uid": "u2"},
                   "spec": {"adoptBatchEvaluationId": "ghost-0123456789"}}),
        ]);
        let measured: BTreeMap<String, ObjectOps> = [
            ("agentcore-operator-u1".to_owned(), ops(3)),
            ("ghost-0123456789".to_owned(), ops(2)),
            ("someone-elses-token".to_owned(), ops(9)),
        ]
        .into();
        let peaks = by_namespace(&measured, &ledger);
        assert_eq!(peaks, [("a".to_owned(), 3), ("b".to_owned(), 2)].into());
    }
}
