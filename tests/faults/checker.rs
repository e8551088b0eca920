//! The checker itself: it must be able to fail.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use agentcore_emulator::JobInfo;
    use serde_json::{Value, json};

    use crate::support::{
        invariants::{Invariant, Ledger},
        object::FINALIZER,
    };

    fn job(id: &str, token: Option<&str>, status: &str) -> JobInfo {
        JobInfo {
            id: id.to_owned(),
            arn: format!("arn:aws:bedrock-agentcore:us-west-2:123456789012:evaluation/{id}"),
            name: id.replace('-', "_"),
            account: "123456789012".to_owned(),
            region: "us-west-2".to_owned(),
            started_by: None,
            client_token: token.map(ToOwned::to_owned),
            status: status.to_owned(),
            outcome: agentcore_emulator::Outcome::Completed,
            tags: BTreeMap::new(),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            stop_calls: 0,
            delete_calls: 0,
            deleted_at: None,
        }
    }

    fn object(uid: &str, finalizer: bool, extra: Value) -> Value {
        let mut obj = json!({
            "metadata": {"namespace": "ns", "name": format!("obj-{uid}"), "uid": uid,
                         "finalizers": if finalizer { json!([FINALIZER]) } else { json!([]) }},
            "spec": {},
        });
        if let (Some(o), Value::Object(extra)) = (obj.as_object_mut(), extra) {
            for (k, v) in extra {
                o.insert(k, v);
            }
        }
        obj
    }

    #[test]
    fn checker_accepts_a_healthy_state() {
        let mut ledger = Ledger::default();
        let jobs = vec![job(
            "a-0123456789",
            Some("agentcore-operator-u1"),
            "IN_PROGRESS",
        )];
        ledger.sample(&jobs, &[object("u1", true, json!({}))], &jobs);
        let tally = ledger.final_tally(&jobs, &[object("u1", true, json!({}))]);
        assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
        assert_eq!(tally["ns"].orphans, 0);
    }

    #[test]
    fn checker_flags_a_finalizer_released_before_the_job_is_gone() {
        let mut ledger = Ledger::default();
        let jobs = vec![job(
            "a-0123456789",
            Some("agentcore-operator-u1"),
            "DELETING",
        )];
        ledger.sample(&jobs, &[object("u1", true, json!({}))], &jobs);
        ledger.sample(&jobs, &[], &jobs);
        assert_eq!(ledger.violations().len(), 1);
        assert_eq!(ledger.violations()[0].invariant, Invariant::I3);
        let tally = ledger.final_tally(&jobs, &[]);
        assert_eq!(tally["ns"].orphans, 1);
    }

    #[test]
    fn checker_flags_a_live_job_without_finalizer_or_object() {
        let mut ledger = Ledger::default();
        let jobs = vec![
            job("a-0123456789", Some("agentcore-operator-u1"), "PENDING"),
            job("b-0123456789", Some("agentcore-operator-u9"), "PENDING"),
        ];
        ledger.sample(&jobs, &[object("u1", false, json!({}))], &jobs);
        let kinds: Vec<_> = ledger.violations().iter().map(|v| v.invariant).collect();
        assert_eq!(kinds, vec![Invariant::I1, Invariant::I1]);
    }

    #[test]
    fn checker_ignores_jobs_that_appeared_or_vanished_between_the_two_job_lists() {
        let mut ledger = Ledger::default();
        let before = vec![job(
            "a-0123456789",
            Some("agentcore-operator-u1"),
            "DELETING",
        )];
        let after = vec![job("a-0123456789", Some("agentcore-operator-u1"), "GONE")];
        ledger.sample(&[], &[object("u1", true, json!({}))], &[]);
        ledger.sample(&before, &[], &after);
        assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
    }

    #[test]
    fn checker_flags_two_jobs_for_one_object() {
        let mut ledger = Ledger::default();
        let obj = object(
            "u1",
            true,
            json!({"status": {"batchEvaluationId": "b-0123456789"}}),
        );
        let jobs = vec![
            job("a-0123456789", Some("agentcore-operator-u1"), "GONE"),
            job("b-0123456789", None, "COMPLETED"),
        ];
        let tally = ledger.final_tally(&jobs, &[obj]);
        assert_eq!(tally["ns"].duplicates, 1);
        assert_eq!(ledger.violations()[0].invariant, Invariant::I2);
    }

    #[test]
    fn checker_lets_retained_and_force_released_jobs_outlive_their_objects() {
        let mut ledger = Ledger::default();
        let retained = object("u1", true, json!({"spec": {"deletionPolicy": "Retain"}}));
        let mut forced = object("u2", true, json!({}));
        forced["metadata"]["annotations"] = json!({"evals.agentcore.dev/force-release": "true"});
        let jobs = vec![
            job("a-0123456789", Some("agentcore-operator-u1"), "COMPLETED"),
            job("b-0123456789", Some("agentcore-operator-u2"), "IN_PROGRESS"),
            job("c-0123456789", None, "IN_PROGRESS"), // started by someone else
        ];
        ledger.sample(&jobs, &[retained, forced], &jobs);
        ledger.sample(&jobs, &[], &jobs);
        let tally = ledger.final_tally(&jobs, &[]);
        assert!(ledger.violations().is_empty(), "{:?}", ledger.violations());
        assert_eq!(tally["ns"].left_by_policy, 2);
        assert_eq!(tally["ns"].orphans, 0);
    }
}
